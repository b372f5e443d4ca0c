//! Backup: a consistent snapshot of one profile, streamed into a package.
//!
//! Rows come out of the store in pages and go straight into the ZIP; statement files stream from
//! blob storage through SHA-256 into their entries. The manifest, written last, records every
//! entry's checksum and what the backup measured.

use std::collections::HashMap;
use std::io::{Seek, Write};
use std::time::Instant;

use fzip_format::{DataSummary, Manifest, PackageError, PackageWriter, WriterOptions};
use fzip_model::{Category, EntityCounts, EntityKind};
use fzip_store::{BlobStore, DEFAULT_BATCH, StoreError, StoredFile};
use serde::Serialize;
use serde_json::json;

use crate::error::EngineError;
use crate::progress::Progress;
use crate::{Engine, now_ms};

/// What to back up and how.
#[derive(Clone, Debug)]
pub struct BackupOptions {
    /// The job this backup belongs to (a new id when `None`).
    pub job_id: Option<String>,
    pub description: Option<String>,
    /// Include analytics records (`data/analytics.json`).
    pub include_analytics: bool,
    /// Finish the backup when a statement file cannot be read (it is named in the manifest)
    /// instead of failing.
    pub continue_on_missing_files: bool,
    /// DEFLATE level 0–9.
    pub compression_level: i64,
}

impl Default for BackupOptions {
    fn default() -> Self {
        BackupOptions {
            job_id: None,
            description: None,
            include_analytics: false,
            continue_on_missing_files: false,
            compression_level: 6,
        }
    }
}

/// A statement file the backup could not include.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct FailedFile {
    pub file_id: String,
    pub file_name: String,
    pub reason: String,
}

/// What a backup wrote.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct BackupReport {
    pub job_id: String,
    pub user_id: String,
    /// Entities written.
    pub counts: EntityCounts,
    /// Statement files written, and their bytes.
    pub files_written: u64,
    pub file_bytes: u64,
    pub files_failed: Vec<FailedFile>,
    pub package_bytes: u64,
    pub uncompressed_bytes: u64,
    pub duration_ms: u64,
    pub manifest_checksum: String,
    pub entries: u64,
}

/// Copies one collection from the snapshot into a data entry.
fn copy_collection<W: Write + Seek, T: Serialize>(
    writer: &mut PackageWriter<W>,
    kind: EntityKind,
    total: u64,
    size_hint: u64,
    progress: &dyn Progress,
    mut next: impl FnMut() -> Result<Vec<T>, StoreError>,
) -> Result<u64, EngineError> {
    progress.phase(&format!("writing_{}", kind.stem()), total);
    let mut array = writer.begin_entities(kind, size_hint)?;
    loop {
        if progress.is_cancelled() {
            return Err(EngineError::Cancelled);
        }
        let batch = next()?;
        if batch.is_empty() {
            break;
        }
        for row in &batch {
            array.push(row)?;
        }
        progress.advance(batch.len() as u64);
    }
    Ok(array.finish()?.elements)
}

/// Categories with parents before children, then by name (HouseF3's order), so a reader that
/// inserts in order never meets a child before its parent.
fn parents_first(mut categories: Vec<Category>) -> Vec<Category> {
    let parent: HashMap<String, Option<String>> = categories
        .iter()
        .map(|c| (c.category_id.clone(), c.parent_category_id.clone()))
        .collect();
    let depth = |id: &str| -> usize {
        let mut d = 0;
        let mut cur = parent.get(id).cloned().flatten();
        while let Some(p) = cur {
            d += 1;
            if d > parent.len() {
                break; // a cycle; validation elsewhere reports it
            }
            cur = parent.get(&p).cloned().flatten();
        }
        d
    };
    categories
        .sort_by_cached_key(|c| (depth(&c.category_id), c.name.clone(), c.category_id.clone()));
    categories
}

/// Backs up `user`'s profile into `out` and returns the output with the report. The output is
/// a complete package only when this returns `Ok`. When `out` is a file, truncate it to
/// `report.package_bytes` afterwards.
pub fn backup<W: Write + Seek>(
    engine: &Engine,
    user: &str,
    out: W,
    options: &BackupOptions,
    progress: &dyn Progress,
) -> Result<(W, BackupReport), EngineError> {
    let started = Instant::now();
    let now = now_ms();
    let job_id = options
        .job_id
        .clone()
        .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
    let mut snap = engine.store.snapshot(user)?;
    let expected = snap.summary()?;
    let mut writer = PackageWriter::new(
        out,
        WriterOptions {
            compression_level: options.compression_level,
            timestamp_ms: now,
        },
    );

    let mut counts = EntityCounts::default();
    counts.accounts = copy_collection(
        &mut writer,
        EntityKind::Accounts,
        expected.counts.accounts,
        0,
        progress,
        || snap.next_accounts(DEFAULT_BATCH),
    )?;

    let mut categories = Vec::new();
    loop {
        let batch = snap.next_categories(DEFAULT_BATCH)?;
        if batch.is_empty() {
            break;
        }
        categories.extend(batch);
    }
    let mut ordered = parents_first(categories).into_iter();
    counts.categories = copy_collection(
        &mut writer,
        EntityKind::Categories,
        expected.counts.categories,
        0,
        progress,
        || Ok(ordered.by_ref().take(DEFAULT_BATCH).collect()),
    )?;

    counts.file_maps = copy_collection(
        &mut writer,
        EntityKind::FileMaps,
        expected.counts.file_maps,
        0,
        progress,
        || snap.next_file_maps(DEFAULT_BATCH),
    )?;

    let mut stored_files: Vec<StoredFile> = Vec::new();
    loop {
        let batch = snap.next_transaction_files(DEFAULT_BATCH)?;
        if batch.is_empty() {
            break;
        }
        stored_files.extend(batch);
    }
    {
        let mut files = stored_files.iter().map(|f| f.file.clone());
        counts.transaction_files = copy_collection(
            &mut writer,
            EntityKind::TransactionFiles,
            expected.counts.transaction_files,
            0,
            progress,
            || Ok(files.by_ref().take(DEFAULT_BATCH).collect()),
        )?;
    }

    counts.transactions = copy_collection(
        &mut writer,
        EntityKind::Transactions,
        expected.counts.transactions,
        expected.counts.transactions.saturating_mul(1024),
        progress,
        || snap.next_transactions(DEFAULT_BATCH),
    )?;

    if options.include_analytics {
        counts.analytics = copy_collection(
            &mut writer,
            EntityKind::Analytics,
            expected.counts.analytics,
            0,
            progress,
            || snap.next_analytics(DEFAULT_BATCH),
        )?;
    }

    // Statement files.
    let total_bytes: u64 = stored_files
        .iter()
        .map(|f| f.content_size.unwrap_or(f.file.file_size))
        .sum();
    progress.phase("writing_files", total_bytes);
    let mut failed = Vec::new();
    let mut files_written = 0u64;
    let mut file_bytes = 0u64;
    for stored in &stored_files {
        if progress.is_cancelled() {
            return Err(EngineError::Cancelled);
        }
        let f = &stored.file;
        let fail = |reason: String| FailedFile {
            file_id: f.file_id.clone(),
            file_name: f.file_name.clone(),
            reason,
        };
        let Some(key) = &f.s3_key else {
            failed.push(fail(
                "no stored bytes (the original file was never kept)".into(),
            ));
            continue;
        };
        let result = match engine.blobs.open(key) {
            Ok(reader) => writer
                .add_file(
                    &f.file_id,
                    &f.file_name,
                    reader.size(),
                    stored.content_sha256,
                    reader,
                )
                .map_err(|e| match e {
                    PackageError::Source { source, .. } => format!("reading it failed: {source}"),
                    other => other.to_string(),
                }),
            Err(StoreError::BlobNotFound(_)) => Err(format!("missing from blob storage ({key})")),
            Err(e) => Err(format!("cannot be read from blob storage: {e}")),
        };
        match result {
            Ok(entry) => {
                files_written += 1;
                file_bytes += entry.size;
                progress.advance(entry.size);
            }
            Err(reason) => failed.push(fail(reason)),
        }
    }
    if !failed.is_empty() && !options.continue_on_missing_files {
        let list: Vec<String> = failed
            .iter()
            .map(|f| format!("{} ({}): {}", f.file_id, f.file_name, f.reason))
            .collect();
        return Err(EngineError::MissingFiles(format!(
            "{} statement file(s) could not be backed up: {}. Nothing was written; to back up everything else anyway, ask to continue on missing files (--continue-on-missing-files)",
            failed.len(),
            list.join("; ")
        )));
    }

    // Completeness: what was written is what the snapshot held.
    for kind in EntityKind::ALL {
        if kind == EntityKind::Analytics && !options.include_analytics {
            continue;
        }
        if counts.get(kind) != expected.counts.get(kind) {
            return Err(EngineError::Other(format!(
                "the backup wrote {} {} but the profile held {} when the backup started; nothing was written, please retry",
                counts.get(kind),
                kind.stem(),
                expected.counts.get(kind)
            )));
        }
    }
    drop(snap);

    let elapsed = started.elapsed().as_secs_f64();
    let uncompressed = writer.uncompressed_bytes();
    let compressed = writer.bytes_written().max(1);
    let mut manifest = Manifest::new(user, &job_id, now);
    manifest.include_analytics = options.include_analytics;
    manifest.description = options.description.clone();
    manifest.data_summary = DataSummary::from_counts(&counts, files_written, file_bytes);
    manifest.data_summary.analytics_included = options.include_analytics && counts.analytics > 0;
    let entities = counts.total();
    manifest.processing_summary = Some(json!({
        "data_files_created": 5 + u64::from(options.include_analytics),
        "transaction_files_processed": files_written,
        "transaction_files_failed": failed.len(),
        "failed_files": failed,
        "total_original_size": file_bytes,
        "total_uncompressed_size": uncompressed,
        "total_compressed_size": compressed,
        "compression_ratio": compression_ratio(uncompressed, compressed),
        "total_entities_processed": entities,
        "processing_time": elapsed,
        "processing_time_seconds": elapsed,
    }));
    let (out, stats) = writer.finish(&mut manifest)?;
    Ok((
        out,
        BackupReport {
            job_id,
            user_id: user.to_string(),
            counts,
            files_written,
            file_bytes,
            files_failed: failed,
            package_bytes: stats.package_bytes,
            uncompressed_bytes: stats.uncompressed_bytes,
            duration_ms: started.elapsed().as_millis() as u64,
            manifest_checksum: manifest.manifest_checksum.clone(),
            entries: stats.entries + 1,
        },
    ))
}

/// Space saved by compression, in percent (the design's `compression_ratio`: 73.5 means the
/// package is 26.5 % of the original size).
pub fn compression_ratio(uncompressed: u64, compressed: u64) -> f64 {
    if uncompressed == 0 {
        return 0.0;
    }
    let saved = 1.0 - compressed as f64 / uncompressed as f64;
    (saved * 1000.0).round() / 10.0
}

/// Blob keys for a user's statement files written by `batch`.
pub fn batch_prefix(user: &str, batch: &str) -> String {
    BlobStore::key(["users", user, "files", batch])
}
