//! fzip's operations on profiles and packages.
//!
//! - [`backup()`]: store → package, from a consistent snapshot.
//! - [`verify()`]: everything that can be checked about a package, before anything is written.
//! - [`restore()`]: package → empty profile, all or nothing.
//! - [`diff()`]: do two packages hold the same profile?
//! - [`demo_profile()`]: a realistic, deterministic profile to try things with.
//! - [`gc()`]: removes blobs no profile refers to (left by killed restores).
//!
//! The engine talks to the store only through [`fzip_store::ProfileStore`] and
//! [`fzip_store::BlobStore`], and to packages only through [`fzip_format`].
#![forbid(unsafe_code)]

pub mod analytics;
pub mod backup;
pub mod batch;
pub mod demo;
pub mod diff;
mod error;
pub mod import;
pub mod jobs;
pub mod progress;
pub mod restore;
pub mod verify;

use std::sync::Arc;

use fzip_format::Limits;
use fzip_store::{BlobStore, ProfileStore};
use serde::Serialize;

pub use backup::{BackupOptions, BackupReport, backup};
pub use demo::{DemoOptions, DemoReport, demo_profile};
pub use diff::{DiffOptions, DiffReport, diff};
pub use error::{EngineError, Resource, invalid_summary};
pub use import::{ImportOptions, ImportReport, MergeStrategy, import};
pub use progress::{CancelFlag, NoProgress, Progress};
pub use restore::{RestoreOptions, RestoreReport, open_package, restore};
pub use verify::{Housef3Warning, VerifyReport, verify};

/// What every operation works on.
#[derive(Clone)]
pub struct Engine {
    pub store: Arc<dyn ProfileStore>,
    pub blobs: BlobStore,
    pub limits: Limits,
}

impl Engine {
    pub fn new(store: Arc<dyn ProfileStore>, blobs: BlobStore) -> Self {
        Engine {
            store,
            blobs,
            limits: Limits::default(),
        }
    }
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// What a garbage collection removed.
#[derive(Clone, Debug, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct GcReport {
    pub examined: u64,
    pub deleted: u64,
    pub deleted_bytes: u64,
    pub kept_recent: u64,
    /// Unreferenced blobs kept because a running restore or import holds a lease on their
    /// batch (they are referenced once it commits, or taken back if it fails).
    pub kept_in_use: u64,
    /// Half-written objects (a writer killed midway) among the deleted.
    pub deleted_partial: u64,
}

/// Deletes statement-file blobs that no profile refers to and that are older than
/// `min_age_ms`, and half-written ones left by killed writers. Blobs of a batch a running
/// restore or import holds a lease on ([`batch`]) are kept whatever their age.
pub fn gc(engine: &Engine, min_age_ms: i64) -> Result<GcReport, EngineError> {
    // The order matters: blobs are listed first, then leases, then references. A blob listed
    // was written under a lease; if that lease is gone when read, its writer has finished, and
    // its rows (if it committed) are among the references read after.
    let listed = engine.blobs.list("users")?;
    let partial = engine.blobs.list_partial("users")?;
    let leased = batch::live_prefixes(&engine.blobs)?;
    let referenced = engine.store.referenced_blob_keys()?;
    let now = now_ms();
    let mut report = GcReport::default();
    for (meta, is_partial) in listed
        .into_iter()
        .map(|m| (m, false))
        .chain(partial.into_iter().map(|m| (m, true)))
    {
        report.examined += 1;
        if !is_partial && referenced.contains(&meta.key) {
            continue;
        }
        if batch::protected(&leased, &meta.key) {
            report.kept_in_use += 1;
            continue;
        }
        if now - meta.modified_ms < min_age_ms {
            report.kept_recent += 1;
            continue;
        }
        if is_partial {
            engine.blobs.delete_partial(&meta.key)?;
            report.deleted_partial += 1;
        } else {
            engine.blobs.delete(&meta.key)?;
        }
        report.deleted += 1;
        report.deleted_bytes += meta.size;
    }
    Ok(report)
}

/// Deletes a user's profile rows and statement files (half-written ones included, except
/// those of a restore or import still writing). Returns what was there.
pub fn clear_profile(
    engine: &Engine,
    user: &str,
) -> Result<fzip_store::ProfileSummary, EngineError> {
    let (summary, keys) = engine.store.clear_profile(user)?;
    for key in keys {
        engine.blobs.delete(&key)?;
    }
    let prefix = BlobStore::user_prefix(user);
    engine.blobs.delete_prefix(&prefix)?;
    let leased = batch::live_prefixes(&engine.blobs)?;
    for meta in engine.blobs.list_partial(&prefix)? {
        if !batch::protected(&leased, &meta.key) {
            engine.blobs.delete_partial(&meta.key)?;
        }
    }
    Ok(summary)
}
