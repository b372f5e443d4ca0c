//! Where profiles live: the [`ProfileStore`] interface every database backend implements, the
//! row codec those backends share, and [`BlobStore`], statement files and packages in object
//! storage (a local folder or S3) through `object_store`.
//!
//! The engine only sees these interfaces, so a backend slots in without touching it. Every
//! operation is scoped to one user id; nothing crosses users.
#![forbid(unsafe_code)]

pub mod blob;
pub mod codec;
mod error;
pub mod jobs;

use fzip_model::{
    Account, AnalyticType, AnalyticsRecord, Category, EntityCounts, FileMap, Transaction,
    TransactionFile,
};
use serde::Serialize;

pub use blob::{BlobMeta, BlobStore, Presign, S3Options};
pub use error::{StoreError, describe};
pub use jobs::{
    AuditRecord, Job, JobCursor, JobPage, JobStatus, JobStore, JobType, ProgressAck, Work,
};

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// What a profile holds.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ProfileSummary {
    #[serde(flatten)]
    pub counts: EntityCounts,
    pub category_rules: u64,
    /// Statement files with stored bytes, and their total size.
    pub files_with_content: u64,
    pub file_bytes: u64,
    /// Earliest and latest transaction dates (ms), when there are transactions.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub first_transaction_date: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_transaction_date: Option<i64>,
}

impl ProfileSummary {
    /// No accounts, transactions, categories, file maps, files or analytics.
    pub fn is_empty(&self) -> bool {
        self.counts.total() == 0
    }
}

/// A statement file's metadata with what the store knows of its bytes.
#[derive(Clone, Debug, PartialEq)]
pub struct StoredFile {
    /// `s3_key` is the blob key in this store, or `None` when no bytes are stored.
    pub file: TransactionFile,
    /// SHA-256 of the stored bytes, recorded when they were written.
    pub content_sha256: Option<[u8; 32]>,
    /// Size of the stored bytes.
    pub content_size: Option<u64>,
}

/// Rows handed out per call by a [`ProfileSnapshot`].
pub const DEFAULT_BATCH: usize = 2_000;

/// A consistent, read-only view of one profile at one moment (a database read transaction):
/// data written while it is open is not seen, so a backup never mixes before and after.
///
/// Each `next_*` call returns the next batch of at most `max` rows in a stable order, and an
/// empty batch when the collection is exhausted.
pub trait ProfileSnapshot: Send {
    /// Counts at the moment of the snapshot.
    fn summary(&mut self) -> Result<ProfileSummary>;
    fn next_accounts(&mut self, max: usize) -> Result<Vec<Account>>;
    fn next_categories(&mut self, max: usize) -> Result<Vec<Category>>;
    fn next_file_maps(&mut self, max: usize) -> Result<Vec<FileMap>>;
    fn next_transaction_files(&mut self, max: usize) -> Result<Vec<StoredFile>>;
    /// Transactions in the store's key order (ascending `transactionId`), so that restoring the
    /// package appends to the primary-key index rather than writing pages at random.
    fn next_transactions(&mut self, max: usize) -> Result<Vec<Transaction>>;
    fn next_analytics(&mut self, max: usize) -> Result<Vec<AnalyticsRecord>>;
}

/// An all-or-nothing write into one profile (one database transaction, under the profile's
/// write lock). Nothing is visible to anyone until [`ProfileWriter::commit`]; dropping the
/// writer without committing rolls back. Reads through the writer see its own writes.
pub trait ProfileWriter: Send {
    fn insert_accounts(&mut self, rows: &[Account]) -> Result<()>;
    fn insert_categories(&mut self, rows: &[Category]) -> Result<()>;
    fn insert_file_maps(&mut self, rows: &[FileMap]) -> Result<()>;
    fn insert_transaction_files(&mut self, rows: &[StoredFile]) -> Result<()>;
    fn insert_transactions(&mut self, rows: &[Transaction]) -> Result<()>;
    fn insert_analytics(&mut self, rows: &[AnalyticsRecord]) -> Result<()>;

    /// Inserts rows, replacing those with the same id.
    fn upsert_accounts(&mut self, rows: &[Account]) -> Result<()>;
    fn upsert_categories(&mut self, rows: &[Category]) -> Result<()>;
    fn upsert_file_maps(&mut self, rows: &[FileMap]) -> Result<()>;
    fn upsert_transaction_files(&mut self, rows: &[StoredFile]) -> Result<()>;
    fn upsert_transactions(&mut self, rows: &[Transaction]) -> Result<()>;

    /// Deletes the profile's analytics of the given types and inserts `rows`.
    fn replace_analytics(&mut self, types: &[AnalyticType], rows: &[AnalyticsRecord])
    -> Result<()>;

    /// The profile's small collections, as the transaction sees them.
    fn all_accounts(&mut self) -> Result<Vec<Account>>;
    fn all_categories(&mut self) -> Result<Vec<Category>>;
    fn all_file_maps(&mut self) -> Result<Vec<FileMap>>;
    fn all_transaction_files(&mut self) -> Result<Vec<StoredFile>>;
    fn all_analytics(&mut self) -> Result<Vec<AnalyticsRecord>>;
    /// The profile's transactions with these ids (those that exist).
    fn transactions_by_id(&mut self, ids: &[String]) -> Result<Vec<Transaction>>;
    /// Every transaction of the profile dated `from..=to`, in no particular order.
    fn scan_transactions(
        &mut self,
        from: i64,
        to: i64,
        f: &mut dyn FnMut(Transaction) -> Result<()>,
    ) -> Result<()>;

    /// Records, in the same transaction, that `job_id` wrote this profile; after a crash,
    /// [`ProfileStore::job_committed`] tells whether the job's writes were committed.
    fn mark_job(&mut self, job_id: &str) -> Result<()>;
    /// Makes every write visible at once.
    fn commit(self: Box<Self>) -> Result<()>;
}

/// A database holding profiles.
pub trait ProfileStore: Send + Sync {
    /// A short description for messages (`sqlite:/path/fzip.db`).
    fn describe(&self) -> String;

    /// What a user's profile holds now.
    fn summary(&self, user: &str) -> Result<ProfileSummary>;

    /// A consistent read-only view of a user's profile.
    fn snapshot(&self, user: &str) -> Result<Box<dyn ProfileSnapshot + '_>>;

    /// Starts an all-or-nothing write into a user's profile, which must be empty: the emptiness
    /// check happens inside the write transaction, so no other writer can slip in between.
    /// Fails with [`StoreError::ProfileNotEmpty`] otherwise.
    fn begin_restore(&self, user: &str) -> Result<Box<dyn ProfileWriter + '_>>;

    /// Starts an all-or-nothing write into a user's profile, whatever it holds (imports,
    /// analytics).
    fn begin_write(&self, user: &str) -> Result<Box<dyn ProfileWriter + '_>>;

    /// Deletes every row of a user's profile in one transaction and returns the blob keys its
    /// statement files used, so the caller can delete them.
    fn clear_profile(&self, user: &str) -> Result<(ProfileSummary, Vec<String>)>;

    /// Every blob key the store's rows refer to (for garbage collection of unreferenced blobs).
    fn referenced_blob_keys(&self) -> Result<std::collections::HashSet<String>>;

    /// True when a writer that called [`ProfileWriter::mark_job`] with `job_id` committed.
    fn job_committed(&self, user: &str, job_id: &str) -> Result<bool>;
}
