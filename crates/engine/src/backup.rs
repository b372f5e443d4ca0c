//! Backup: a consistent snapshot of one profile (or a selected part of it), streamed into a
//! package, with a quality assessment measured while it runs.
//!
//! Rows come out of the store in pages and go straight into the ZIP; statement files stream from
//! blob storage through SHA-256 into their entries and are compared with the hash recorded when
//! they were stored. The manifest, written last, records every entry's checksum, what was
//! selected, which references point outside the package, and the quality block.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::io::{Seek, Write};
use std::sync::atomic::{AtomicBool, Ordering as AtomicOrdering};
use std::time::Instant;

use fzip_format::{DataSummary, Manifest, PackageError, PackageWriter, WriterOptions};
use fzip_model::{
    Account, AnalyticsRecord, Category, EntityCounts, EntityKind, FileMap, Transaction,
};
use fzip_store::{BlobStore, DEFAULT_BATCH, StoreError, StoredFile};
use serde::Serialize;
use serde_json::{Value, json};

use crate::error::EngineError;
use crate::progress::Progress;
use crate::{Engine, now_ms};

/// What a backup holds (`backupType`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum BackupType {
    #[default]
    Complete,
    AccountsOnly,
    TransactionsOnly,
    CategoriesOnly,
    Selective,
}

impl BackupType {
    pub const NAMES: [&'static str; 5] = [
        "complete",
        "accounts_only",
        "transactions_only",
        "categories_only",
        "selective",
    ];

    pub fn parse(text: &str) -> Option<Self> {
        Some(match text {
            "complete" => BackupType::Complete,
            "accounts_only" => BackupType::AccountsOnly,
            "transactions_only" => BackupType::TransactionsOnly,
            "categories_only" => BackupType::CategoriesOnly,
            "selective" => BackupType::Selective,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            BackupType::Complete => "complete",
            BackupType::AccountsOnly => "accounts_only",
            BackupType::TransactionsOnly => "transactions_only",
            BackupType::CategoriesOnly => "categories_only",
            BackupType::Selective => "selective",
        }
    }

    /// The collections a backup of this type holds (analytics only when asked for).
    pub fn collections(self) -> &'static [EntityKind] {
        use EntityKind::*;
        match self {
            BackupType::Complete | BackupType::Selective => &[
                Accounts,
                Categories,
                FileMaps,
                TransactionFiles,
                Transactions,
                Analytics,
            ],
            BackupType::AccountsOnly => &[Accounts, Analytics],
            BackupType::TransactionsOnly => &[Transactions],
            BackupType::CategoriesOnly => &[Categories],
        }
    }
}

/// What to select: a backup type and filters (all optional).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Selection {
    pub backup_type: BackupType,
    /// Only these accounts (and their transactions, statement files, file maps).
    pub account_ids: Option<BTreeSet<String>>,
    /// Only transactions (and statement files) dated from this time, ms.
    pub date_from: Option<i64>,
    /// … up to this time, ms.
    pub date_to: Option<i64>,
    /// Only these categories (with their ancestors) and the transactions assigned to them.
    pub category_ids: Option<BTreeSet<String>>,
}

impl Selection {
    pub fn complete() -> Self {
        Selection::default()
    }

    fn has_filters(&self) -> bool {
        self.account_ids.is_some()
            || self.date_from.is_some()
            || self.date_to.is_some()
            || self.category_ids.is_some()
    }

    /// True when the package holds less than the whole profile.
    pub fn is_partial(&self) -> bool {
        self.backup_type != BackupType::Complete || self.has_filters()
    }

    fn includes(&self, kind: EntityKind) -> bool {
        self.backup_type.collections().contains(&kind)
    }

    fn in_range(&self, date: i64) -> bool {
        self.date_from.is_none_or(|f| date >= f) && self.date_to.is_none_or(|t| date <= t)
    }

    fn manifest_value(
        &self,
        externals: &Externals,
        included: &EntityCounts,
        include_analytics: bool,
    ) -> Value {
        let collections: Vec<&str> = self
            .backup_type
            .collections()
            .iter()
            .filter(|k| **k != EntityKind::Analytics || include_analytics)
            .map(|k| k.camel())
            .collect();
        json!({
            "backupType": self.backup_type.as_str(),
            "partial": self.is_partial(),
            "filters": {
                "accountIds": self.account_ids,
                "dateRangeStart": self.date_from,
                "dateRangeEnd": self.date_to,
                "categoryIds": self.category_ids,
            },
            "collections": collections,
            "counts": included,
            "externalReferences": externals.to_value(),
        })
    }
}

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
    /// DEFLATE level 1–9; 0 stores entries uncompressed.
    pub compression_level: i64,
    pub selection: Selection,
    /// Write a package even when the profile holds nothing (otherwise that fails with
    /// [`EngineError::ProfileEmpty`]: an empty profile is usually a mistyped user id).
    pub allow_empty: bool,
}

impl Default for BackupOptions {
    fn default() -> Self {
        BackupOptions {
            job_id: None,
            description: None,
            include_analytics: false,
            continue_on_missing_files: false,
            compression_level: fzip_format::DEFAULT_COMPRESSION_LEVEL,
            selection: Selection::complete(),
            allow_empty: false,
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
    pub backup_type: BackupType,
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
    /// `"sha256:<hex>"` of every entry, as in the manifest.
    pub checksums: BTreeMap<String, String>,
    /// The quality assessment (the manifest's `validation` block).
    pub validation: Value,
    /// What was selected and which references point outside (partial backups).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub selection: Option<Value>,
}

/// References from included entities to entities the package does not hold.
#[derive(Default)]
struct Externals {
    accounts: BTreeSet<String>,
    categories: BTreeSet<String>,
    file_maps: BTreeSet<String>,
    files: BTreeSet<String>,
}

impl Externals {
    fn is_empty(&self) -> bool {
        self.accounts.is_empty()
            && self.categories.is_empty()
            && self.file_maps.is_empty()
            && self.files.is_empty()
    }

    fn count(&self) -> usize {
        self.accounts.len() + self.categories.len() + self.file_maps.len() + self.files.len()
    }

    fn to_value(&self) -> Value {
        json!({
            "accounts": self.accounts,
            "categories": self.categories,
            "fileMaps": self.file_maps,
            "transactionFiles": self.files,
        })
    }
}

/// Which entities go into the package, decided before the transactions stream by.
struct Included {
    accounts: HashSet<String>,
    categories: HashSet<String>,
    file_maps: HashSet<String>,
    files: HashSet<String>,
}

fn note(set: &HashSet<String>, target: Option<&str>, out: &mut BTreeSet<String>) {
    if let Some(t) = target
        && !set.contains(t)
    {
        out.insert(t.to_string());
    }
}

/// Writes one entity array.
fn write_array<W: Write + Seek, T: Serialize>(
    writer: &mut PackageWriter<W>,
    kind: EntityKind,
    rows: &[T],
    progress: &dyn Progress,
) -> Result<u64, EngineError> {
    progress.phase(&format!("writing_{}", kind.stem()), rows.len() as u64);
    let mut array = writer.begin_entities(kind, 0)?;
    for row in rows {
        array.push(row)?;
    }
    progress.advance(rows.len() as u64);
    Ok(array.finish()?.elements)
}

fn read_all<T>(
    mut next: impl FnMut(usize) -> Result<Vec<T>, StoreError>,
) -> Result<Vec<T>, EngineError> {
    let mut out = Vec::new();
    loop {
        let batch = next(DEFAULT_BATCH)?;
        if batch.is_empty() {
            return Ok(out);
        }
        out.extend(batch);
    }
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

/// The selected categories and all their ancestors.
fn with_ancestors(categories: &[Category], wanted: &BTreeSet<String>) -> HashSet<String> {
    let parent: HashMap<&str, Option<&str>> = categories
        .iter()
        .map(|c| (c.category_id.as_str(), c.parent_category_id.as_deref()))
        .collect();
    let mut out = HashSet::new();
    for id in wanted {
        let mut cur = Some(id.as_str());
        while let Some(c) = cur {
            if !parent.contains_key(c) || !out.insert(c.to_string()) {
                break;
            }
            cur = parent.get(c).copied().flatten();
        }
    }
    out
}

/// One batch of transactions serialized for [`EntityArrayWriter::push_serialized`].
struct Serialized {
    bytes: Vec<u8>,
    /// Transactions in `bytes`.
    count: u64,
    /// Transactions read from the store for it (the selection may have left some out).
    scanned: u64,
}

/// The reading half of the transaction stream: pages transactions out of the snapshot, notes
/// references to what the backup leaves out, and serializes the selected ones.
fn serialize_transactions(
    snap: &mut dyn fzip_store::ProfileSnapshot,
    sel: &Selection,
    included: &Included,
    externals: &mut Externals,
    stop: &AtomicBool,
    send: &std::sync::mpsc::SyncSender<Result<Serialized, EngineError>>,
) -> Result<(), EngineError> {
    loop {
        if stop.load(AtomicOrdering::Relaxed) {
            return Ok(());
        }
        let batch = snap.next_transactions(DEFAULT_BATCH)?;
        if batch.is_empty() {
            return Ok(());
        }
        let mut out = Serialized {
            bytes: Vec::with_capacity(batch.len() * 700),
            count: 0,
            scanned: batch.len() as u64,
        };
        for t in batch.iter().filter(|t| transaction_selected(t, sel)) {
            note(
                &included.accounts,
                Some(&t.account_id),
                &mut externals.accounts,
            );
            note(&included.files, t.file_id.as_deref(), &mut externals.files);
            note(
                &included.categories,
                t.primary_category_id.as_deref(),
                &mut externals.categories,
            );
            for a in &t.categories {
                note(
                    &included.categories,
                    Some(&a.category_id),
                    &mut externals.categories,
                );
            }
            if out.count > 0 {
                out.bytes.extend_from_slice(b",\n");
            }
            serde_json::to_writer(&mut out.bytes, t).map_err(PackageError::from)?;
            out.count += 1;
        }
        if send.send(Ok(out)).is_err() {
            // The writing half gave up; it reports why.
            return Ok(());
        }
    }
}

fn transaction_selected(t: &Transaction, sel: &Selection) -> bool {
    sel.account_ids
        .as_ref()
        .is_none_or(|a| a.contains(&t.account_id))
        && sel.in_range(t.date)
        && sel.category_ids.as_ref().is_none_or(|c| {
            t.primary_category_id
                .as_ref()
                .is_some_and(|p| c.contains(p))
                || t.categories.iter().any(|a| c.contains(&a.category_id))
        })
}

/// The later design's quality assessment, from what the backup measured.
///
/// - `data_integrity_score`: the share of the selected statement files whose bytes were read in
///   full and matched the hash recorded when they were stored (100 when there are none).
/// - `completeness_score`: the share of what the package should hold that it holds: the rows of
///   the snapshot (of the collections read) plus the statement files' bytes. A profile that
///   holds nothing scores 0: completeness of nothing is not 100.
/// - `overall_quality`: the lower score graded at 95 / 85 / 70 (excellent / good / fair, else
///   poor); never excellent when a statement file is missing or damaged, always poor for an
///   empty profile.
/// - `files_processed` counts the statement files in the package, `files_failed` those left out
///   (`files_expected` = both).
/// - `compression_ratio`: space saved, see [`compression_ratio`].
#[allow(clippy::too_many_arguments)]
fn assess(
    expected: &EntityCounts,
    scanned: &EntityCounts,
    scanned_kinds: &[EntityKind],
    files_expected: u64,
    failed: &[FailedFile],
    externals: &Externals,
    partial: bool,
    uncompressed: u64,
    compressed: u64,
    seconds: f64,
) -> Value {
    let mut issues: Vec<String> = Vec::new();
    let mut recommendations: BTreeSet<&str> = BTreeSet::new();
    let (mut want, mut got) = (0u64, 0u64);
    for kind in scanned_kinds {
        let (e, s) = (expected.get(*kind), scanned.get(*kind));
        want += e;
        got += s.min(e);
        if s != e {
            issues.push(format!("{}: expected {e}, got {s}", kind.stem()));
            recommendations.insert("Retry the backup");
        }
    }
    let failed_count = failed.len() as u64;
    let files_included = files_expected.saturating_sub(failed_count);
    let empty = expected.total() == 0;
    let completeness = if empty {
        issues.push("the profile holds nothing: the package is empty".into());
        recommendations.insert("Check the user id: an empty profile is usually a mistyped one");
        0.0
    } else {
        let (want, got) = (want + files_expected, got + files_included);
        if want == 0 {
            100.0
        } else {
            100.0 * got as f64 / want as f64
        }
    };
    let integrity = if files_expected == 0 {
        100.0
    } else {
        100.0 * files_included as f64 / files_expected as f64
    };
    for f in failed {
        issues.push(format!(
            "statement file {} ({}) is not in the package: {}",
            f.file_id, f.file_name, f.reason
        ));
        if f.reason.contains("changed or damaged") {
            recommendations.insert("Check blob storage for corruption: stored statement bytes no longer match the hash recorded at upload");
        } else {
            recommendations
                .insert("Restore or re-upload the missing statement files, then back up again");
        }
    }
    if !partial && !externals.is_empty() {
        issues.push(format!(
            "{} references point to entities the profile does not hold (listed in selection.externalReferences)",
            externals.count()
        ));
        recommendations.insert("Review the profile's dangling references (a partial package may have been restored into it)");
    }
    let ratio = crate::backup::compression_ratio(uncompressed, compressed);
    let round = |x: f64| (x * 10.0).round() / 10.0;
    let lower = integrity.min(completeness);
    let overall = if empty {
        "poor"
    } else if lower >= 95.0 && failed.is_empty() {
        "excellent"
    } else if lower >= 85.0 {
        "good"
    } else if lower >= 70.0 {
        "fair"
    } else {
        "poor"
    };
    json!({
        "overall_quality": overall,
        "data_integrity_score": round(integrity),
        "completeness_score": round(completeness),
        "files_processed": files_included,
        "files_failed": failed_count,
        "files_expected": files_expected,
        "compression_ratio": ratio,
        "processing_time_seconds": round(seconds),
        "issues": issues,
        "recommendations": recommendations.into_iter().collect::<Vec<_>>(),
        "entities_expected": want,
        "entities_scanned": got,
    })
}

/// Backs up `user`'s profile (or the selected part) into `out` and returns the output with the
/// report. The output is a complete package only when this returns `Ok`. When `out` is a file,
/// truncate it to `report.package_bytes` afterwards.
pub fn backup<W: Write + Seek>(
    engine: &Engine,
    user: &str,
    out: W,
    options: &BackupOptions,
    progress: &dyn Progress,
) -> Result<(W, BackupReport), EngineError> {
    let started = Instant::now();
    let now = now_ms();
    let sel = &options.selection;
    let job_id = options
        .job_id
        .clone()
        .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
    let mut snap = engine.store.snapshot(user)?;
    let expected = snap.summary()?.counts;
    if expected.total() == 0 && !options.allow_empty {
        return Err(EngineError::ProfileEmpty {
            user: user.to_string(),
        });
    }
    let mut writer = PackageWriter::new(
        out,
        WriterOptions {
            compression_level: options.compression_level,
            timestamp_ms: now,
        },
    );

    // The small collections, and what of them is included.
    progress.phase("collecting_data", 0);
    let mut scanned = EntityCounts::default();
    let accounts: Vec<Account> = read_all(|m| snap.next_accounts(m))?;
    let categories: Vec<Category> = read_all(|m| snap.next_categories(m))?;
    let maps: Vec<FileMap> = read_all(|m| snap.next_file_maps(m))?;
    let files: Vec<StoredFile> = read_all(|m| snap.next_transaction_files(m))?;
    scanned.accounts = accounts.len() as u64;
    scanned.categories = categories.len() as u64;
    scanned.file_maps = maps.len() as u64;
    scanned.transaction_files = files.len() as u64;

    let accounts: Vec<Account> = if sel.includes(EntityKind::Accounts) {
        accounts
            .into_iter()
            .filter(|a| {
                sel.account_ids
                    .as_ref()
                    .is_none_or(|ids| ids.contains(&a.account_id))
            })
            .collect()
    } else {
        Vec::new()
    };
    let categories: Vec<Category> = if sel.includes(EntityKind::Categories) {
        match &sel.category_ids {
            Some(wanted) => {
                let keep = with_ancestors(&categories, wanted);
                categories
                    .into_iter()
                    .filter(|c| keep.contains(&c.category_id))
                    .collect()
            }
            None => categories,
        }
    } else {
        Vec::new()
    };
    let account_ids: HashSet<String> = accounts.iter().map(|a| a.account_id.clone()).collect();
    let files: Vec<StoredFile> = if sel.includes(EntityKind::TransactionFiles) {
        files
            .into_iter()
            .filter(|f| {
                sel.account_ids.is_none()
                    || f.file
                        .account_id
                        .as_ref()
                        .is_some_and(|a| account_ids.contains(a))
            })
            .filter(|f| match &f.file.date_range {
                Some(r) => {
                    sel.date_from.is_none_or(|from| r.end_date >= from)
                        && sel.date_to.is_none_or(|to| r.start_date <= to)
                }
                None => true,
            })
            .collect()
    } else {
        Vec::new()
    };
    let maps: Vec<FileMap> = if sel.includes(EntityKind::FileMaps) {
        if sel.account_ids.is_some() {
            let used: HashSet<&str> = accounts
                .iter()
                .filter_map(|a| a.default_file_map_id.as_deref())
                .chain(files.iter().filter_map(|f| f.file.file_map_id.as_deref()))
                .collect();
            maps.into_iter()
                .filter(|m| {
                    used.contains(m.file_map_id.as_str())
                        || m.account_id
                            .as_ref()
                            .is_some_and(|a| account_ids.contains(a))
                })
                .collect()
        } else {
            maps
        }
    } else {
        Vec::new()
    };
    let included = Included {
        accounts: account_ids,
        categories: categories.iter().map(|c| c.category_id.clone()).collect(),
        file_maps: maps.iter().map(|m| m.file_map_id.clone()).collect(),
        files: files.iter().map(|f| f.file.file_id.clone()).collect(),
    };
    let mut externals = Externals::default();
    for a in &accounts {
        note(
            &included.file_maps,
            a.default_file_map_id.as_deref(),
            &mut externals.file_maps,
        );
    }
    for c in &categories {
        note(
            &included.categories,
            c.parent_category_id.as_deref(),
            &mut externals.categories,
        );
    }
    for m in &maps {
        note(
            &included.accounts,
            m.account_id.as_deref(),
            &mut externals.accounts,
        );
    }
    for f in &files {
        note(
            &included.accounts,
            f.file.account_id.as_deref(),
            &mut externals.accounts,
        );
        note(
            &included.file_maps,
            f.file.file_map_id.as_deref(),
            &mut externals.file_maps,
        );
    }

    let metadata: Vec<_> = files.iter().map(|f| &f.file).collect();
    let mut counts = EntityCounts {
        accounts: write_array(&mut writer, EntityKind::Accounts, &accounts, progress)?,
        categories: write_array(
            &mut writer,
            EntityKind::Categories,
            &parents_first(categories),
            progress,
        )?,
        file_maps: write_array(&mut writer, EntityKind::FileMaps, &maps, progress)?,
        transaction_files: write_array(
            &mut writer,
            EntityKind::TransactionFiles,
            &metadata,
            progress,
        )?,
        ..Default::default()
    };

    // Transactions stream through on two threads: one reads them from the store, notes their
    // references and serializes them; this one hashes and compresses (DEFLATE is the larger half).
    progress.phase("writing_transactions", expected.transactions);
    let take_transactions = sel.includes(EntityKind::Transactions);
    let mut array = writer.begin_entities(
        EntityKind::Transactions,
        expected.transactions.saturating_mul(1024),
    )?;
    if take_transactions {
        let stop = AtomicBool::new(false);
        let snap_ref = &mut snap;
        let externals_ref = &mut externals;
        let included_ref = &included;
        let stop_ref = &stop;
        std::thread::scope(|scope| -> Result<(), EngineError> {
            // A few batches in flight: memory stays a few megabytes whatever the profile size.
            let (send, recv) = std::sync::mpsc::sync_channel::<Result<Serialized, EngineError>>(3);
            scope.spawn(move || {
                let result = serialize_transactions(
                    snap_ref.as_mut(),
                    sel,
                    included_ref,
                    externals_ref,
                    stop_ref,
                    &send,
                );
                if let Err(e) = result {
                    let _ = send.send(Err(e));
                }
            });
            let result = (|| {
                for batch in recv.iter() {
                    let batch = batch?;
                    if progress.is_cancelled() {
                        return Err(EngineError::Cancelled);
                    }
                    array.push_serialized(&batch.bytes, batch.count)?;
                    scanned.transactions += batch.scanned;
                    progress.advance(batch.scanned);
                }
                Ok(())
            })();
            // On a failure here the reader stops at its next batch (and its sends fail once
            // `recv` is dropped at the end of this scope).
            stop.store(true, AtomicOrdering::Relaxed);
            drop(recv);
            result
        })?;
    }
    counts.transactions = array.finish()?.elements;

    let include_analytics = options.include_analytics && sel.includes(EntityKind::Analytics);
    if include_analytics {
        let records: Vec<AnalyticsRecord> = read_all(|m| snap.next_analytics(m))?;
        scanned.analytics = records.len() as u64;
        let records: Vec<AnalyticsRecord> = records
            .into_iter()
            .filter(|r| {
                sel.account_ids.is_none()
                    || r.account_id
                        .as_ref()
                        .is_none_or(|a| included.accounts.contains(a))
            })
            .collect();
        for r in &records {
            note(
                &included.accounts,
                r.account_id.as_deref(),
                &mut externals.accounts,
            );
        }
        counts.analytics = write_array(&mut writer, EntityKind::Analytics, &records, progress)?;
    }

    // Statement files.
    let files_expected = files.len() as u64;
    let total_bytes: u64 = files
        .iter()
        .map(|f| f.content_size.unwrap_or(f.file.file_size))
        .sum();
    progress.phase("writing_files", total_bytes);
    let mut failed = Vec::new();
    let mut files_written = 0u64;
    let mut file_bytes = 0u64;
    for stored in &files {
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
            // Blob storage itself failing (down, unreachable, refusing) is not one missing file:
            // the backup stops as an infrastructure failure, even with continue-on-missing-files.
            Err(e @ (StoreError::Blob(_) | StoreError::Io(_))) => return Err(e.into()),
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

    // Completeness: every row the snapshot held was read.
    let mut scanned_kinds = vec![
        EntityKind::Accounts,
        EntityKind::Categories,
        EntityKind::FileMaps,
        EntityKind::TransactionFiles,
    ];
    if take_transactions {
        scanned_kinds.push(EntityKind::Transactions);
    }
    if include_analytics {
        scanned_kinds.push(EntityKind::Analytics);
    }
    for kind in &scanned_kinds {
        if scanned.get(*kind) != expected.get(*kind) {
            return Err(EngineError::Other(format!(
                "the backup read {} {} but the profile held {} when it started; nothing was written, please retry",
                scanned.get(*kind),
                kind.stem(),
                expected.get(*kind)
            )));
        }
    }
    drop(snap);

    let elapsed = started.elapsed().as_secs_f64();
    let uncompressed = writer.uncompressed_bytes();
    let compressed = writer.bytes_written().max(1);
    let validation = assess(
        &expected,
        &scanned,
        &scanned_kinds,
        files_expected,
        &failed,
        &externals,
        sel.is_partial(),
        uncompressed,
        compressed,
        elapsed,
    );
    let selection = (sel.is_partial() || !externals.is_empty())
        .then(|| sel.manifest_value(&externals, &counts, include_analytics));

    let mut manifest = Manifest::new(user, &job_id, now);
    manifest.backup_type = sel.backup_type.as_str().to_string();
    manifest.include_analytics = options.include_analytics;
    manifest.description = options.description.clone();
    manifest.data_summary = DataSummary::from_counts(&counts, files_written, file_bytes);
    manifest.data_summary.analytics_included = include_analytics && counts.analytics > 0;
    manifest.processing_summary = Some(json!({
        "data_files_created": 5 + u64::from(include_analytics),
        "transaction_files_processed": files_written,
        "transaction_files_failed": failed.len(),
        "failed_files": failed,
        "total_original_size": file_bytes,
        "total_uncompressed_size": uncompressed,
        "total_compressed_size": compressed,
        "compression_ratio": compression_ratio(uncompressed, compressed),
        "total_entities_processed": counts.total(),
        "processing_time": elapsed,
        "processing_time_seconds": elapsed,
    }));
    manifest.validation = Some(validation.clone());
    manifest.selection = selection.clone();
    let (out, stats) = writer.finish(&mut manifest)?;
    Ok((
        out,
        BackupReport {
            job_id,
            user_id: user.to_string(),
            backup_type: sel.backup_type,
            counts,
            files_written,
            file_bytes,
            files_failed: failed,
            package_bytes: stats.package_bytes,
            uncompressed_bytes: stats.uncompressed_bytes,
            duration_ms: started.elapsed().as_millis() as u64,
            manifest_checksum: manifest.manifest_checksum.clone(),
            entries: stats.entries + 1,
            checksums: manifest.checksums.clone(),
            validation,
            selection,
        },
    ))
}

/// Space saved by compression, in percent of the uncompressed size: the design's
/// `compression_ratio`, and the one compression figure fzip shows anywhere (73.5 means the
/// package's entries take 26.5 % of their uncompressed size). `compressed` counts the entries
/// as stored, their ZIP headers included, so tiny packages would come out negative: the figure
/// is clamped to 0–100 (0 when nothing was saved, or there was nothing to compress).
pub fn compression_ratio(uncompressed: u64, compressed: u64) -> f64 {
    if uncompressed == 0 {
        return 0.0;
    }
    let saved = 1.0 - compressed as f64 / uncompressed as f64;
    ((saved * 1000.0).round() / 10.0).clamp(0.0, 100.0)
}

/// Blob keys for a user's statement files written by `batch`.
pub fn batch_prefix(user: &str, batch: &str) -> String {
    BlobStore::key(["users", user, "files", batch])
}
