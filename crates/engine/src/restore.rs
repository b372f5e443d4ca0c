//! Restore: a package into an empty profile, all or nothing.
//!
//! 1. The profile must be empty (checked first, and again under the write lock).
//! 2. The whole package is validated ([`crate::verify`]) before anything is written.
//! 3. One store transaction receives every row; statement files go to the restoring user's own
//!    blob keys under a fresh batch. The package's `userId` and `s3Key` are only where the data
//!    came from: every entity takes the restoring user as owner.
//! 4. On any failure or cancellation the transaction rolls back and the batch's blobs are
//!    deleted. A killed process leaves only unreferenced blobs, which `fzip gc` removes.

use std::collections::HashMap;
use std::fs::File;
use std::io::{Read, Seek};
use std::path::Path;
use std::time::Instant;

use fzip_format::{Limits, PackageError, PackageReader, ReadError, format_checksum};
use fzip_model::{
    Account, AnalyticsRecord, Category, Entity, EntityCounts, FileMap, Transaction, TransactionFile,
};
use fzip_store::{BlobStore, ProfileWriter, StoredFile};
use serde::Serialize;

use crate::Engine;
use crate::backup::batch_prefix;
use crate::error::EngineError;
use crate::progress::Progress;
use crate::verify::{VerifyReport, verify};

/// How to restore.
#[derive(Clone, Debug, Default)]
pub struct RestoreOptions {
    /// Validate only; write nothing.
    pub validate_only: bool,
    /// Names the blob batch (a new id when `None`).
    pub batch_id: Option<String>,
    /// The job doing the restore: recorded in the same transaction as the rows, so that after a
    /// crash [`fzip_store::ProfileStore::job_committed`] tells whether the restore committed.
    pub job_id: Option<String>,
}

/// What a restore did.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RestoreReport {
    pub user_id: String,
    pub validate_only: bool,
    pub validation: VerifyReport,
    /// Entities written (all zero for a validation only).
    pub restored: EntityCounts,
    pub files_restored: u64,
    pub file_bytes: u64,
    /// Transaction files restored without bytes (the package had none for them).
    pub files_without_content: Vec<String>,
    /// Analytics records recomputed from the restored transactions.
    pub analytics_recomputed: u64,
    pub duration_ms: u64,
}

const BATCH: usize = 1_000;

/// Opens a package file with the given safety limits.
pub fn open_package(path: &Path, limits: Limits) -> Result<PackageReader<File>, EngineError> {
    let file = File::open(path)
        .map_err(|e| EngineError::Other(format!("cannot open {}: {e}", path.display())))?;
    Ok(PackageReader::open(file, limits)?)
}

/// Restores the package at `path` into `user`'s empty profile.
pub fn restore(
    engine: &Engine,
    user: &str,
    path: &Path,
    options: &RestoreOptions,
    progress: &dyn Progress,
) -> Result<RestoreReport, EngineError> {
    let started = Instant::now();
    let before = engine.store.summary(user)?;
    if !before.is_empty() {
        return Err(EngineError::ProfileNotEmpty {
            user: user.to_string(),
            summary: Box::new(before),
        });
    }
    let mut reader = open_package(path, engine.limits)?;
    let validation = verify(&mut reader, progress)?;
    if !validation.valid {
        return Err(EngineError::InvalidPackage(Box::new(validation)));
    }
    drop(reader);
    if options.validate_only {
        return Ok(RestoreReport {
            user_id: user.to_string(),
            validate_only: true,
            validation,
            restored: EntityCounts::default(),
            files_restored: 0,
            file_bytes: 0,
            files_without_content: Vec::new(),
            analytics_recomputed: 0,
            duration_ms: started.elapsed().as_millis() as u64,
        });
    }

    let batch = options
        .batch_id
        .clone()
        .unwrap_or_else(|| uuid::Uuid::new_v4().simple().to_string());
    let mut reader = open_package(path, engine.limits)?;
    // Keeps the batch's blobs safe from `fzip gc` until the transaction refers to them (or
    // they were taken back); released when this function returns.
    let _lease = crate::batch::BatchLease::acquire(&engine.blobs, &batch_prefix(user, &batch))?;
    let mut tx = engine.store.begin_restore(user)?;
    let mut outcome = Outcome::default();
    let result = write_all(
        engine,
        user,
        &batch,
        &mut reader,
        tx.as_mut(),
        &validation,
        progress,
        &mut outcome,
    );
    let result = result.and_then(|()| {
        if let Some(job) = &options.job_id {
            tx.mark_job(job)?;
        }
        // The last moment a cancel can still take effect.
        progress.phase("committing", 0);
        if progress.is_cancelled() {
            return Err(EngineError::Cancelled);
        }
        tx.commit().map_err(EngineError::from)
    });
    if let Err(e) = result {
        // The transaction rolled back (or never committed); take the blobs back too.
        let prefix = batch_prefix(user, &batch);
        if let Err(cleanup) = engine.blobs.delete_prefix(&prefix) {
            tracing::warn!(%cleanup, prefix, "could not delete the blobs of a failed restore; `fzip gc` will");
        }
        return Err(e);
    }
    progress.phase("completed", 0);
    Ok(RestoreReport {
        user_id: user.to_string(),
        validate_only: false,
        validation,
        restored: outcome.counts,
        files_restored: outcome.files,
        file_bytes: outcome.file_bytes,
        files_without_content: outcome.without_content,
        analytics_recomputed: outcome.analytics_recomputed,
        duration_ms: started.elapsed().as_millis() as u64,
    })
}

#[derive(Default)]
struct Outcome {
    counts: EntityCounts,
    analytics_recomputed: u64,
    files: u64,
    file_bytes: u64,
    without_content: Vec<String>,
}

/// An entity read from the package, owned by the restoring user.
fn owned<T: Entity, E: std::fmt::Display>(
    item: Result<T, E>,
    user: &str,
) -> Result<T, EngineError> {
    let mut entity = item.map_err(|e| {
        EngineError::Other(format!(
            "{}: {e} (it passed validation; the package changed?)",
            T::KIND
        ))
    })?;
    entity.set_owner(user);
    Ok(entity)
}

/// Streams one collection into the writer in batches, with the restoring user as owner.
fn copy<T: Entity, R: Read + Seek + Send>(
    reader: &mut PackageReader<R>,
    user: &str,
    total: u64,
    progress: &dyn Progress,
    mut insert: impl FnMut(&[T]) -> Result<(), EngineError>,
) -> Result<u64, EngineError> {
    progress.phase(&format!("restoring_{}", T::KIND.stem()), total);
    let mut batch: Vec<T> = Vec::with_capacity(BATCH);
    let mut n = 0u64;
    let result = reader.read_entities::<T, EngineError>(|item| {
        batch.push(owned(item, user)?);
        if batch.len() == BATCH {
            if progress.is_cancelled() {
                return Err(EngineError::Cancelled);
            }
            insert(&batch)?;
            progress.advance(batch.len() as u64);
            n += batch.len() as u64;
            batch.clear();
        }
        Ok(())
    });
    match result {
        Ok(_) => {}
        Err(ReadError::Callback(e)) => return Err(e),
        Err(ReadError::Package(e)) => return Err(EngineError::Package(e)),
    }
    if !batch.is_empty() {
        insert(&batch)?;
        progress.advance(batch.len() as u64);
        n += batch.len() as u64;
    }
    Ok(n)
}

/// [`copy`] on two threads: a scoped thread reads and parses batches from the package (inflate,
/// JSON) while the calling thread runs `insert` (the store). A few batches are in flight at most.
fn copy_pipelined<T: Entity + Send, R: Read + Seek + Send>(
    reader: &mut PackageReader<R>,
    user: &str,
    total: u64,
    progress: &dyn Progress,
    mut insert: impl FnMut(&[T]) -> Result<(), EngineError>,
) -> Result<u64, EngineError> {
    progress.phase(&format!("restoring_{}", T::KIND.stem()), total);
    let stop = std::sync::atomic::AtomicBool::new(false);
    let stop = &stop;
    std::thread::scope(|scope| {
        let (send, recv) = std::sync::mpsc::sync_channel::<Result<Vec<T>, EngineError>>(3);
        let reading = scope.spawn(move || {
            let mut batch: Vec<T> = Vec::with_capacity(BATCH);
            let result = reader.read_entities::<T, EngineError>(|item| {
                batch.push(owned(item, user)?);
                if batch.len() == BATCH {
                    if stop.load(std::sync::atomic::Ordering::Relaxed) {
                        return Err(EngineError::Cancelled);
                    }
                    let full = std::mem::replace(&mut batch, Vec::with_capacity(BATCH));
                    // A failed send means the inserting side gave up; it reports why.
                    send.send(Ok(full)).map_err(|_| EngineError::Cancelled)?;
                }
                Ok(())
            });
            let result = match result {
                Ok(_) => Ok(batch),
                Err(ReadError::Callback(e)) => Err(e),
                Err(ReadError::Package(e)) => Err(EngineError::Package(e)),
            };
            let _ = send.send(result);
        });
        let mut n = 0u64;
        let mut result = Ok(());
        for batch in recv.iter() {
            let step = batch.and_then(|rows| {
                if progress.is_cancelled() {
                    return Err(EngineError::Cancelled);
                }
                insert(&rows)?;
                progress.advance(rows.len() as u64);
                n += rows.len() as u64;
                Ok(())
            });
            if let Err(e) = step {
                result = Err(e);
                break;
            }
        }
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        drop(recv);
        if reading.join().is_err() {
            return Err(EngineError::Other(
                "the thread reading the package failed; nothing was restored".into(),
            ));
        }
        result.map(|()| n)
    })
}

#[allow(clippy::too_many_arguments)]
fn write_all<R: Read + Seek + Send>(
    engine: &Engine,
    user: &str,
    batch: &str,
    reader: &mut PackageReader<R>,
    tx: &mut dyn ProfileWriter,
    validation: &VerifyReport,
    progress: &dyn Progress,
    out: &mut Outcome,
) -> Result<(), EngineError> {
    let c = &validation.counts;
    out.counts.file_maps = copy::<FileMap, R>(reader, user, c.file_maps, progress, |rows| {
        Ok(tx.insert_file_maps(rows)?)
    })?;
    out.counts.accounts = copy::<Account, R>(reader, user, c.accounts, progress, |rows| {
        Ok(tx.insert_accounts(rows)?)
    })?;
    out.counts.categories = copy::<Category, R>(reader, user, c.categories, progress, |rows| {
        Ok(tx.insert_categories(rows)?)
    })?;

    // Transaction files: metadata first (small), then their bytes into the user's blobs, then
    // the rows, which record where the bytes now are.
    let mut files: Vec<TransactionFile> = Vec::new();
    copy::<TransactionFile, R>(reader, user, c.transaction_files, progress, |rows| {
        files.extend_from_slice(rows);
        Ok(())
    })?;
    progress.phase("restoring_files", validation.preview.file_bytes);
    let mut stored = Vec::with_capacity(files.len());
    let entries: HashMap<String, String> = reader.file_entries().clone().into_iter().collect();
    for mut file in files {
        if progress.is_cancelled() {
            return Err(EngineError::Cancelled);
        }
        let (content_sha256, content_size) = match entries.get(&file.file_id) {
            Some(entry) => {
                let key = BlobStore::file_key(user, batch, &file.file_id);
                let reader = reader.open_entry(entry)?;
                let (size, digest) =
                    engine.blobs.put_reader(&key, reader).map_err(|e| match e {
                        // Reading the entry failed: the package.
                        fzip_store::StoreError::Io(e) => {
                            EngineError::Package(PackageError::Entry {
                                entry: entry.clone(),
                                message: format!("could not be read: {e}"),
                            })
                        }
                        // Writing it failed: blob storage, not the package.
                        other => EngineError::from(other),
                    })?;
                tracing::debug!(file_id = %file.file_id, %key, sha256 = %format_checksum(&digest), "restored statement file");
                file.s3_key = Some(key);
                out.files += 1;
                out.file_bytes += size;
                progress.advance(size);
                (Some(digest), Some(size))
            }
            None => {
                file.s3_key = None;
                out.without_content.push(file.file_id.clone());
                (None, None)
            }
        };
        stored.push(StoredFile {
            file,
            content_sha256,
            content_size,
        });
    }
    for chunk in stored.chunks(BATCH) {
        tx.insert_transaction_files(chunk)?;
    }
    out.counts.transaction_files = stored.len() as u64;

    // Analytics are computed as the transactions stream by: the restored profile holds
    // exactly the package's transactions.
    // They are read (inflated, parsed) on a second thread while this one inserts them.
    let mut analytics = crate::analytics::Builder::default();
    out.counts.transactions =
        copy_pipelined::<Transaction, R>(reader, user, c.transactions, progress, |rows| {
            for t in rows {
                analytics.add(t);
            }
            Ok(tx.insert_transactions(rows)?)
        })?;
    out.counts.analytics =
        copy::<AnalyticsRecord, R>(reader, user, c.analytics, progress, |rows| {
            Ok(tx.insert_analytics(rows)?)
        })?;

    // The design's post-restore regeneration: analytics follow from the restored transactions
    // (records of types fzip does not compute are kept as restored).
    progress.phase("restoring_analytics", 0);
    let records = analytics.finish(user);
    tx.replace_analytics(&crate::analytics::COMPUTED, &records)?;
    out.analytics_recomputed = records.len() as u64;

    for kind in fzip_model::EntityKind::ALL {
        if out.counts.get(kind) != c.get(kind) {
            return Err(EngineError::Other(format!(
                "restored {} {} but validation counted {}; nothing was restored",
                out.counts.get(kind),
                kind.stem(),
                c.get(kind)
            )));
        }
    }
    Ok(())
}
