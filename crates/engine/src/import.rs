//! Import: a package merged into a live profile (the earlier design's import), all or nothing.
//!
//! Every entity of the package is matched by id against the profile:
//!
//! | profile has the id? | `fail_on_conflict` | `skip_existing` | `overwrite` |
//! |---|---|---|---|
//! | no | created | created | created |
//! | yes, same content | conflict | unchanged | unchanged |
//! | yes, other content | conflict | skipped | updated |
//!
//! Any conflict under `fail_on_conflict` imports nothing and lists every conflict. Transactions
//! new by id but with the content of an existing one (same account, date, amount and description,
//! or same FIT id on the account) are imported and reported as possible duplicates: two equal
//! tickets on one day are not silently dropped.
//!
//! The plan is made inside the write transaction, so a dry run and a real import of the same
//! package into the same profile do exactly the same thing. References must resolve in the merged
//! profile (package ∪ profile) and the merged category hierarchy must have no cycle; otherwise
//! nothing is imported. Analytics are recomputed from the merged transactions.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::hash::{BuildHasher, Hasher};
use std::io::{Read, Seek};
use std::path::Path;
use std::time::Instant;

use fzip_format::{PackageError, PackageReader, ProblemKind, ReadError, Severity, format_checksum};
use fzip_model::{
    Account, AnalyticsRecord, Category, Entity, EntityCounts, EntityKind, FileMap, Transaction,
    TransactionFile,
};
use fzip_store::{BlobStore, ProfileWriter, StoreError, StoredFile};
use serde::Serialize;

use crate::Engine;
use crate::backup::batch_prefix;
use crate::error::EngineError;
use crate::progress::Progress;
use crate::restore::open_package;
use crate::verify::{VerifyReport, verify};

/// What to do with entities whose id the profile already has.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum MergeStrategy {
    FailOnConflict,
    Overwrite,
    SkipExisting,
}

impl MergeStrategy {
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "fail_on_conflict" => Some(MergeStrategy::FailOnConflict),
            "overwrite" => Some(MergeStrategy::Overwrite),
            "skip_existing" => Some(MergeStrategy::SkipExisting),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            MergeStrategy::FailOnConflict => "fail_on_conflict",
            MergeStrategy::Overwrite => "overwrite",
            MergeStrategy::SkipExisting => "skip_existing",
        }
    }
}

/// How to import.
#[derive(Clone, Debug)]
pub struct ImportOptions {
    pub merge: MergeStrategy,
    /// Report only; write nothing.
    pub dry_run: bool,
    /// Names the blob batch of new statement files (a new id when `None`).
    pub batch_id: Option<String>,
    /// The job doing the import, recorded with its rows (see restore).
    pub job_id: Option<String>,
}

/// One id conflict.
#[derive(Clone, Debug, Serialize, PartialEq, Eq, PartialOrd, Ord)]
#[serde(rename_all = "camelCase")]
pub struct Conflict {
    pub collection: String,
    pub id: String,
    /// The entity's name, where it has one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

/// A transaction that may already be in the profile under another id.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct PossibleDuplicate {
    pub transaction_id: String,
    /// The profile's transaction it resembles.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub existing_transaction_id: Option<String>,
    pub reason: String,
}

/// What an import did (or, for a dry run, would do).
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ImportReport {
    pub user_id: String,
    pub merge_strategy: MergeStrategy,
    pub dry_run: bool,
    pub created: EntityCounts,
    pub updated: EntityCounts,
    pub unchanged: EntityCounts,
    pub skipped: EntityCounts,
    pub conflicts: EntityCounts,
    /// Every conflict (the first 1,000 are listed; `conflictsOmitted` counts the rest).
    pub conflict_list: Vec<Conflict>,
    pub conflicts_omitted: u64,
    pub possible_duplicates: Vec<PossibleDuplicate>,
    pub possible_duplicates_total: u64,
    /// Statement files whose bytes were written (new or replaced), and their size.
    pub files_written: u64,
    pub file_bytes: u64,
    pub analytics_recomputed: u64,
    pub validation: VerifyReport,
    pub duration_ms: u64,
}

impl ImportReport {
    pub fn conflict_count(&self) -> u64 {
        self.conflicts.total()
    }

    pub fn merge_strategy_str(&self) -> &'static str {
        self.merge_strategy.as_str()
    }
}

const MAX_LISTED: usize = 1_000;
const BATCH: usize = 1_000;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Action {
    Create,
    Update,
    Unchanged,
    Skip,
    Conflict,
}

fn decide(exists_same: Option<bool>, merge: MergeStrategy) -> Action {
    match (exists_same, merge) {
        (None, _) => Action::Create,
        (Some(_), MergeStrategy::FailOnConflict) => Action::Conflict,
        (Some(true), _) => Action::Unchanged,
        (Some(false), MergeStrategy::SkipExisting) => Action::Skip,
        (Some(false), MergeStrategy::Overwrite) => Action::Update,
    }
}

fn same<T: Entity>(a: &T, b: &T) -> bool {
    a.canonical_json(false) == b.canonical_json(false)
}

struct Tally<'r> {
    report: &'r mut ImportReport,
}

impl Tally<'_> {
    fn count(&mut self, kind: EntityKind, action: Action, id: &str, name: Option<&str>) {
        let r = &mut *self.report;
        let counts = match action {
            Action::Create => &mut r.created,
            Action::Update => &mut r.updated,
            Action::Unchanged => &mut r.unchanged,
            Action::Skip => &mut r.skipped,
            Action::Conflict => &mut r.conflicts,
        };
        *counts.get_mut(kind) += 1;
        if action == Action::Conflict {
            if r.conflict_list.len() < MAX_LISTED {
                r.conflict_list.push(Conflict {
                    collection: kind.camel().to_string(),
                    id: id.to_string(),
                    name: name.map(str::to_string),
                });
            } else {
                r.conflicts_omitted += 1;
            }
        }
    }
}

/// Merges one small collection: returns the rows to insert and to replace.
fn plan_small<T: Entity>(
    package: Vec<T>,
    existing: &HashMap<String, T>,
    merge: MergeStrategy,
    tally: &mut Tally<'_>,
    name: impl Fn(&T) -> Option<String>,
) -> (Vec<T>, Vec<T>) {
    let (mut create, mut update) = (Vec::new(), Vec::new());
    for entity in package {
        let id = entity.id().into_owned();
        let action = decide(existing.get(&id).map(|e| same(e, &entity)), merge);
        tally.count(T::KIND, action, &id, name(&entity).as_deref());
        match action {
            Action::Create => create.push(entity),
            Action::Update => update.push(entity),
            _ => {}
        }
    }
    (create, update)
}

fn read_all<T: Entity, R: Read + Seek + Send>(
    reader: &mut PackageReader<R>,
    user: &str,
) -> Result<Vec<T>, EngineError> {
    let mut out = Vec::new();
    reader
        .read_entities::<T, EngineError>(|item| {
            let mut e = item.map_err(|e| EngineError::Other(format!("{}: {e}", T::KIND)))?;
            e.set_owner(user);
            out.push(e);
            Ok(())
        })
        .map_err(|e| match e {
            ReadError::Callback(e) => e,
            ReadError::Package(p) => EngineError::Package(p),
        })?;
    Ok(out)
}

/// A 64-bit key of what makes two transactions look the same.
fn content_key(h: &std::collections::hash_map::RandomState, t: &Transaction) -> u64 {
    let mut s = h.build_hasher();
    s.write(t.account_id.as_bytes());
    s.write_i64(t.date);
    s.write(t.amount.canonical().as_bytes());
    s.write(t.description.as_bytes());
    s.finish()
}

fn fit_key(h: &std::collections::hash_map::RandomState, t: &Transaction) -> Option<u64> {
    let fit = t.fit_id.as_deref().filter(|f| !f.is_empty())?;
    let mut s = h.build_hasher();
    s.write(t.account_id.as_bytes());
    s.write(b"\0fit\0");
    s.write(fit.as_bytes());
    Some(s.finish())
}

/// Imports the package at `path` into `user`'s profile.
pub fn import(
    engine: &Engine,
    user: &str,
    path: &Path,
    options: &ImportOptions,
    progress: &dyn Progress,
) -> Result<ImportReport, EngineError> {
    let started = Instant::now();
    let mut reader = open_package(path, engine.limits)?;
    let validation = verify(&mut reader, progress)?;
    // References that leave the package are resolved against the profile below; everything
    // else must be right already.
    let fatal = validation
        .problems
        .iter()
        .any(|p| p.severity == Severity::Error && p.kind != ProblemKind::Reference);
    if fatal {
        return Err(EngineError::InvalidPackage(Box::new(validation)));
    }
    drop(reader);

    let batch = options
        .batch_id
        .clone()
        .unwrap_or_else(|| uuid::Uuid::new_v4().simple().to_string());
    let mut report = ImportReport {
        user_id: user.to_string(),
        merge_strategy: options.merge,
        dry_run: options.dry_run,
        created: EntityCounts::default(),
        updated: EntityCounts::default(),
        unchanged: EntityCounts::default(),
        skipped: EntityCounts::default(),
        conflicts: EntityCounts::default(),
        conflict_list: Vec::new(),
        conflicts_omitted: 0,
        possible_duplicates: Vec::new(),
        possible_duplicates_total: 0,
        files_written: 0,
        file_bytes: 0,
        analytics_recomputed: 0,
        validation,
        duration_ms: 0,
    };
    let mut reader = open_package(path, engine.limits)?;
    // Keeps the batch's new blobs safe from `fzip gc` until the transaction refers to them (or
    // they were taken back); released when this function returns. A dry run writes none.
    let _lease = if options.dry_run {
        None
    } else {
        Some(crate::batch::BatchLease::acquire(
            &engine.blobs,
            &batch_prefix(user, &batch),
        )?)
    };
    let mut tx = engine.store.begin_write(user)?;
    let mut written_blobs = false;
    let mut replaced_keys = Vec::new();
    let result = merge(
        engine,
        user,
        &batch,
        &mut reader,
        tx.as_mut(),
        options,
        progress,
        &mut report,
        &mut written_blobs,
        &mut replaced_keys,
    );
    let outcome = result.and_then(|()| {
        if report.conflict_count() > 0 && options.merge == MergeStrategy::FailOnConflict {
            report.duration_ms = started.elapsed().as_millis() as u64;
            return Err(EngineError::ImportConflict(Box::new(report.clone())));
        }
        if options.dry_run {
            return Ok(());
        }
        if let Some(job) = &options.job_id {
            tx.mark_job(job)?;
        }
        progress.phase("committing", 0);
        if progress.is_cancelled() {
            return Err(EngineError::Cancelled);
        }
        Ok(())
    });
    match outcome {
        Ok(()) if !options.dry_run => {
            tx.commit()?;
            for key in replaced_keys {
                if let Err(e) = engine.blobs.delete(&key) {
                    tracing::warn!(%key, error = %e, "could not delete a replaced statement file; `fzip gc` will");
                }
            }
        }
        Ok(()) => drop(tx),
        Err(e) => {
            drop(tx);
            if written_blobs {
                let _ = engine.blobs.delete_prefix(&batch_prefix(user, &batch));
            }
            return Err(e);
        }
    }
    report.duration_ms = started.elapsed().as_millis() as u64;
    Ok(report)
}

#[allow(clippy::too_many_arguments)]
fn merge<R: Read + Seek + Send>(
    engine: &Engine,
    user: &str,
    batch: &str,
    reader: &mut PackageReader<R>,
    tx: &mut dyn ProfileWriter,
    options: &ImportOptions,
    progress: &dyn Progress,
    report: &mut ImportReport,
    written_blobs: &mut bool,
    replaced_keys: &mut Vec<String>,
) -> Result<(), EngineError> {
    let merge = options.merge;
    let write = !options.dry_run;
    progress.phase("planning", 0);

    // The profile as the transaction sees it.
    let p_accounts: HashMap<String, Account> = tx
        .all_accounts()?
        .into_iter()
        .map(|e| (e.account_id.clone(), e))
        .collect();
    let p_categories: HashMap<String, Category> = tx
        .all_categories()?
        .into_iter()
        .map(|e| (e.category_id.clone(), e))
        .collect();
    let p_maps: HashMap<String, FileMap> = tx
        .all_file_maps()?
        .into_iter()
        .map(|e| (e.file_map_id.clone(), e))
        .collect();
    let p_files: HashMap<String, StoredFile> = tx
        .all_transaction_files()?
        .into_iter()
        .map(|e| (e.file.file_id.clone(), e))
        .collect();

    // Small collections.
    let accounts: Vec<Account> = read_all(reader, user)?;
    let categories: Vec<Category> = read_all(reader, user)?;
    let maps: Vec<FileMap> = read_all(reader, user)?;
    let files: Vec<TransactionFile> = read_all(reader, user)?;
    let mut refs = Refs {
        accounts: p_accounts
            .keys()
            .cloned()
            .chain(accounts.iter().map(|a| a.account_id.clone()))
            .collect(),
        file_maps: p_maps
            .keys()
            .cloned()
            .chain(maps.iter().map(|m| m.file_map_id.clone()))
            .collect(),
        files: p_files
            .keys()
            .cloned()
            .chain(files.iter().map(|f| f.file_id.clone()))
            .collect(),
        categories: p_categories
            .keys()
            .cloned()
            .chain(categories.iter().map(|c| c.category_id.clone()))
            .collect(),
        problems: Vec::new(),
        omitted: 0,
    };
    let mut tally = Tally { report };
    let (new_maps, upd_maps) = plan_small(maps, &p_maps, merge, &mut tally, |m: &FileMap| {
        Some(m.name.clone())
    });
    let (new_accounts, upd_accounts) =
        plan_small(accounts, &p_accounts, merge, &mut tally, |a: &Account| {
            Some(a.account_name.clone())
        });
    let (new_cats, upd_cats) = plan_small(
        categories,
        &p_categories,
        merge,
        &mut tally,
        |c: &Category| Some(c.name.clone()),
    );
    let p_file_meta: HashMap<String, TransactionFile> = p_files
        .iter()
        .map(|(k, v)| (k.clone(), comparable_file(&v.file)))
        .collect();
    let package_files: Vec<TransactionFile> =
        files.into_iter().map(|f| comparable_file(&f)).collect();

    // Statement files compare by metadata and by bytes.
    let entries: BTreeMap<String, String> = reader.file_entries().clone();
    let mut new_files = Vec::new();
    let mut upd_files = Vec::new();
    for f in package_files {
        let id = f.file_id.clone();
        let mut same_bytes = || -> Result<bool, EngineError> {
            let Some(existing) = p_files.get(&id) else {
                return Ok(false);
            };
            let Some(entry) = entries.get(&id) else {
                return Ok(true);
            };
            let ours = existing.content_sha256.map(|d| format_checksum(&d));
            let theirs = match reader.manifest().checksums.get(entry) {
                Some(d) => Some(format_checksum(d)),
                None => Some(format_checksum(&reader.open_entry(entry)?.finish()?.1)),
            };
            Ok(ours == theirs)
        };
        let exists_same = match p_file_meta.get(&id) {
            None => None,
            Some(e) => Some(same(e, &f) && same_bytes()?),
        };
        let action = decide(exists_same, merge);
        tally.count(
            EntityKind::TransactionFiles,
            action,
            &id,
            Some(&f.file_name),
        );
        match action {
            Action::Create => new_files.push(f),
            Action::Update => upd_files.push(f),
            _ => {}
        }
    }

    // Every reference of what is written must resolve in the merged profile (the profile's
    // entities plus the package's, whatever happens to each), and the merged category
    // hierarchy must have no cycle.
    for a in new_accounts.iter().chain(&upd_accounts) {
        refs.check(
            "account",
            &a.account_id,
            "defaultFileMapId",
            a.default_file_map_id.as_deref(),
            Target::FileMap,
        );
    }
    for m in new_maps.iter().chain(&upd_maps) {
        refs.check(
            "file map",
            &m.file_map_id,
            "accountId",
            m.account_id.as_deref(),
            Target::Account,
        );
    }
    for f in new_files.iter().chain(&upd_files) {
        refs.check(
            "transaction file",
            &f.file_id,
            "accountId",
            f.account_id.as_deref(),
            Target::Account,
        );
        refs.check(
            "transaction file",
            &f.file_id,
            "fileMapId",
            f.file_map_id.as_deref(),
            Target::FileMap,
        );
    }
    let mut parents: HashMap<String, Option<String>> = p_categories
        .iter()
        .map(|(k, v)| (k.clone(), v.parent_category_id.clone()))
        .collect();
    for c in new_cats.iter().chain(upd_cats.iter()) {
        refs.check(
            "category",
            &c.category_id,
            "parentCategoryId",
            c.parent_category_id.as_deref(),
            Target::Category,
        );
        parents.insert(c.category_id.clone(), c.parent_category_id.clone());
    }
    for start in parents.keys() {
        let mut seen = HashSet::new();
        let mut cur = Some(start.clone());
        while let Some(c) = cur {
            if !seen.insert(c.clone()) {
                refs.problem(format!(
                    "after the merge, the parents of category {start} would form a cycle"
                ));
                break;
            }
            cur = parents.get(&c).cloned().flatten();
        }
    }
    refs.fail_if_any()?;

    // A dry run does every write inside the transaction and rolls it back, so it reports exactly
    // what the import would do; only statement bytes are not written. Under fail_on_conflict
    // with conflicts nothing is written, but every conflict is still counted.
    let conflicted = merge == MergeStrategy::FailOnConflict && tally.report.conflict_count() > 0;
    let write_blobs = write && !conflicted;
    let write = !conflicted;
    if write {
        tx.insert_file_maps(&new_maps)?;
        tx.upsert_file_maps(&upd_maps)?;
        tx.insert_accounts(&new_accounts)?;
        tx.upsert_accounts(&upd_accounts)?;
        tx.insert_categories(&new_cats)?;
        tx.upsert_categories(&upd_cats)?;
        // Statement file bytes go to the user's own keys under this import's batch.
        let file_bytes: u64 = new_files
            .iter()
            .chain(upd_files.iter())
            .filter_map(|f| entries.get(&f.file_id))
            .filter_map(|e| reader.entry_info(e).map(|i| i.size))
            .sum();
        progress.phase("importing_files", file_bytes);
        let mut stored = Vec::new();
        for (file, replacing) in new_files
            .into_iter()
            .map(|f| (f, false))
            .chain(upd_files.into_iter().map(|f| (f, true)))
        {
            if progress.is_cancelled() {
                return Err(EngineError::Cancelled);
            }
            let existing = p_files.get(&file.file_id);
            let mut file = file;
            let (sha, size) = match entries.get(&file.file_id) {
                Some(entry) if write_blobs => {
                    let key = BlobStore::file_key(user, batch, &file.file_id);
                    let r = reader.open_entry(entry)?;
                    *written_blobs = true;
                    let (size, digest) = engine.blobs.put_reader(&key, r).map_err(|e| match e {
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
                    if let Some(old) = existing.and_then(|e| e.file.s3_key.clone()) {
                        replaced_keys.push(old);
                    }
                    file.s3_key = Some(key);
                    tally.report.files_written += 1;
                    tally.report.file_bytes += size;
                    progress.advance(size);
                    (Some(digest), Some(size))
                }
                Some(entry) => {
                    // A dry run: what would be written.
                    let size = reader.entry_info(entry).map_or(0, |i| i.size);
                    tally.report.files_written += 1;
                    tally.report.file_bytes += size;
                    progress.advance(size);
                    (None, Some(size))
                }
                // No bytes in the package: keep the ones the profile has.
                None => match existing {
                    Some(e) => {
                        file.s3_key = e.file.s3_key.clone();
                        (e.content_sha256, e.content_size)
                    }
                    None => (None, None),
                },
            };
            file.user_id = Some(user.to_string());
            stored.push((
                StoredFile {
                    file,
                    content_sha256: sha,
                    content_size: size,
                },
                replacing,
            ));
        }
        let (ins, ups): (Vec<_>, Vec<_>) = stored.into_iter().partition(|(_, r)| !r);
        tx.insert_transaction_files(&ins.into_iter().map(|(f, _)| f).collect::<Vec<_>>())?;
        tx.upsert_transaction_files(&ups.into_iter().map(|(f, _)| f).collect::<Vec<_>>())?;
    }

    // Transactions: an index of the profile's transactions in the package's date range finds
    // content duplicates under other ids.
    progress.phase("planning_transactions", 0);
    let hasher = std::collections::hash_map::RandomState::new();
    let mut by_content: HashMap<u64, u32> = HashMap::new();
    let mut by_fit: HashMap<u64, u32> = HashMap::new();
    let v = &tally.report.validation.preview;
    if let (Some(from), Some(to)) = (v.first_transaction_date, v.last_transaction_date) {
        tx.scan_transactions(from, to, &mut |t| {
            *by_content.entry(content_key(&hasher, &t)).or_default() += 1;
            if let Some(k) = fit_key(&hasher, &t) {
                *by_fit.entry(k).or_default() += 1;
            }
            Ok::<(), StoreError>(())
        })?;
    }
    progress.phase(
        "importing_transactions",
        tally.report.validation.counts.transactions,
    );
    let mut pending: Vec<Transaction> = Vec::with_capacity(BATCH);
    let mut duplicates_to_name: Vec<(Transaction, &'static str)> = Vec::new();
    let mut flush = |pending: &mut Vec<Transaction>,
                     tx: &mut dyn ProfileWriter,
                     tally: &mut Tally<'_>|
     -> Result<(), EngineError> {
        if pending.is_empty() {
            return Ok(());
        }
        let ids: Vec<String> = pending.iter().map(|t| t.transaction_id.clone()).collect();
        let existing: HashMap<String, Transaction> = tx
            .transactions_by_id(&ids)?
            .into_iter()
            .map(|t| (t.transaction_id.clone(), t))
            .collect();
        let (mut create, mut update) = (Vec::new(), Vec::new());
        for t in pending.drain(..) {
            let action = decide(existing.get(&t.transaction_id).map(|e| same(e, &t)), merge);
            if matches!(action, Action::Create | Action::Update) {
                refs.check_transaction(&t);
            }
            tally.count(EntityKind::Transactions, action, &t.transaction_id, None);
            match action {
                Action::Create => {
                    let reason = if take(&mut by_content, content_key(&hasher, &t)) {
                        Some("same account, date, amount and description")
                    } else if fit_key(&hasher, &t).is_some_and(|k| take(&mut by_fit, k)) {
                        Some("same FIT id on the same account")
                    } else {
                        None
                    };
                    if let Some(reason) = reason {
                        tally.report.possible_duplicates_total += 1;
                        if duplicates_to_name.len() < MAX_LISTED {
                            duplicates_to_name.push((t.clone(), reason));
                        }
                    }
                    create.push(t);
                }
                Action::Update => update.push(t),
                _ => {}
            }
        }
        if write {
            tx.insert_transactions(&create)?;
            tx.upsert_transactions(&update)?;
        }
        progress.advance(ids.len() as u64);
        if progress.is_cancelled() {
            return Err(EngineError::Cancelled);
        }
        Ok(())
    };
    let result = reader.read_entities::<Transaction, EngineError>(|item| {
        let mut t = item.map_err(|e| EngineError::Other(format!("transactions: {e}")))?;
        t.set_owner(user);
        pending.push(t);
        if pending.len() == BATCH {
            flush(&mut pending, tx, &mut tally)?;
        }
        Ok(())
    });
    match result {
        Ok(_) => {}
        Err(ReadError::Callback(e)) => return Err(e),
        Err(ReadError::Package(e)) => return Err(EngineError::Package(e)),
    }
    flush(&mut pending, tx, &mut tally)?;
    refs.fail_if_any()?;

    // Name the profile transactions the possible duplicates resemble.
    // One scan over their dates (the store has no date index to seek per transaction).
    let mut existing: Vec<Option<String>> = vec![None; duplicates_to_name.len()];
    if let (Some(from), Some(to)) = (
        duplicates_to_name.iter().map(|(t, _)| t.date).min(),
        duplicates_to_name.iter().map(|(t, _)| t.date).max(),
    ) {
        let mut wanted: HashMap<(i64, &str), Vec<usize>> = HashMap::new();
        for (i, (t, _)) in duplicates_to_name.iter().enumerate() {
            wanted
                .entry((t.date, t.account_id.as_str()))
                .or_default()
                .push(i);
        }
        tx.scan_transactions(from, to, &mut |e| {
            if let Some(listed) = wanted.get(&(e.date, e.account_id.as_str())) {
                for &i in listed {
                    let t = &duplicates_to_name[i].0;
                    if existing[i].is_none()
                        && e.transaction_id != t.transaction_id
                        && (e.amount == t.amount && e.description == t.description
                            || (e.fit_id.is_some() && e.fit_id == t.fit_id))
                    {
                        existing[i] = Some(e.transaction_id.clone());
                    }
                }
            }
            Ok::<(), StoreError>(())
        })?;
    }
    for ((t, reason), existing_id) in duplicates_to_name.into_iter().zip(existing) {
        tally.report.possible_duplicates.push(PossibleDuplicate {
            transaction_id: t.transaction_id,
            existing_transaction_id: existing_id,
            reason: reason.to_string(),
        });
    }

    // Analytics records of the package, then the ones fzip computes, from the merged profile.
    let records: Vec<AnalyticsRecord> = read_all(reader, user)?;
    // Analytics are few: compare by key with what the profile holds.
    let existing_records: HashMap<String, AnalyticsRecord> = if records.is_empty() {
        HashMap::new()
    } else {
        tx.all_analytics()?
            .into_iter()
            .map(|r| (r.key(), r))
            .collect()
    };
    let (new_records, upd_records) =
        plan_small(records, &existing_records, merge, &mut tally, |_| None);
    if write {
        tx.insert_analytics(&new_records)?;
        // Replacing without deleting first: an upsert of these records.
        tx.replace_analytics(&[], &upd_records)?;
        progress.phase("regenerating_analytics", 0);
        tally.report.analytics_recomputed = crate::analytics::recompute_in(tx, user)?;
    }
    Ok(())
}

#[derive(Clone, Copy)]
enum Target {
    Account,
    Category,
    FileMap,
    File,
}

/// The ids of the merged profile, and the references that do not resolve in it.
struct Refs {
    accounts: HashSet<String>,
    categories: HashSet<String>,
    file_maps: HashSet<String>,
    files: HashSet<String>,
    problems: Vec<String>,
    omitted: u64,
}

impl Refs {
    fn problem(&mut self, message: String) {
        if self.problems.len() < 20 {
            self.problems.push(message);
        } else {
            self.omitted += 1;
        }
    }

    fn check(&mut self, what: &str, id: &str, field: &str, target: Option<&str>, t: Target) {
        let Some(target) = target else { return };
        let (set, noun) = match t {
            Target::Account => (&self.accounts, "account"),
            Target::Category => (&self.categories, "category"),
            Target::FileMap => (&self.file_maps, "file map"),
            Target::File => (&self.files, "transaction file"),
        };
        if !set.contains(target) {
            self.problem(format!(
                "{what} {id}: {field} {target} is a {noun} neither the package nor the profile holds"
            ));
        }
    }

    fn check_transaction(&mut self, t: &Transaction) {
        let id = &t.transaction_id;
        self.check(
            "transaction",
            id,
            "accountId",
            Some(&t.account_id),
            Target::Account,
        );
        self.check(
            "transaction",
            id,
            "fileId",
            t.file_id.as_deref(),
            Target::File,
        );
        self.check(
            "transaction",
            id,
            "primaryCategoryId",
            t.primary_category_id.as_deref(),
            Target::Category,
        );
        for a in &t.categories {
            self.check(
                "transaction",
                id,
                "category assignment",
                Some(&a.category_id),
                Target::Category,
            );
        }
    }

    fn fail_if_any(&mut self) -> Result<(), EngineError> {
        if self.problems.is_empty() {
            return Ok(());
        }
        let more = if self.omitted > 0 {
            format!(" (and {} more)", self.omitted)
        } else {
            String::new()
        };
        Err(EngineError::Other(format!(
            "the import cannot keep the profile's references valid, so nothing was imported: {}{more}. Import a package that holds what these refer to, or first import what they refer to",
            self.problems.join("; ")
        )))
    }
}

/// Takes one from a multiset count; true when there was one.
fn take(map: &mut HashMap<u64, u32>, key: u64) -> bool {
    match map.get_mut(&key) {
        Some(n) if *n > 0 => {
            *n -= 1;
            true
        }
        _ => false,
    }
}

/// A transaction file as compared: where its bytes are stored is not part of it.
fn comparable_file(f: &TransactionFile) -> TransactionFile {
    let mut c = f.clone();
    c.s3_key = None;
    c
}
