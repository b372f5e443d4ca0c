//! Jobs (backups, restores, exports, imports) and the audit trail, as the service stores them.
//!
//! The job table is the source of truth for every long operation: requests create jobs, workers
//! claim them with a lease, and status requests read them. Business transitions go through
//! [`JobStore::update_job`], a compare-and-set on `version`, so concurrent requests never lose an
//! update; progress goes through [`JobStore::report_progress`], which never conflicts and tells the
//! worker whether a cancel was asked for.

use fzip_model::string_enum;
use serde::{Deserialize, Serialize};

use crate::Result;

string_enum! {
    /// What a job does.
    pub enum JobType {
        Backup = "backup",
        Restore = "restore",
        /// The earlier design's export: a backup under another name.
        Export = "export",
        /// The earlier design's import: a restore that merges into a live profile.
        Import = "import",
    }
}

impl JobType {
    /// Backups and exports produce packages; restores and imports consume them.
    pub fn produces_package(self) -> bool {
        matches!(self, JobType::Backup | JobType::Export)
    }
}

string_enum! {
    /// Job statuses, with HouseF3's exact strings for backup and restore; exports and imports
    /// mirror them with their own prefix.
    pub enum JobStatus {
        BackupInitiated = "backup_initiated",
        BackupProcessing = "backup_processing",
        BackupCompleted = "backup_completed",
        BackupFailed = "backup_failed",
        BackupExpired = "backup_expired",
        ExportInitiated = "export_initiated",
        ExportProcessing = "export_processing",
        ExportCompleted = "export_completed",
        ExportFailed = "export_failed",
        ExportExpired = "export_expired",
        RestoreUploaded = "restore_uploaded",
        RestoreValidating = "restore_validating",
        RestoreValidationPassed = "restore_validation_passed",
        RestoreValidationFailed = "restore_validation_failed",
        RestoreAwaitingConfirmation = "restore_awaiting_confirmation",
        RestoreProcessing = "restore_processing",
        RestoreCompleted = "restore_completed",
        RestoreFailed = "restore_failed",
        RestoreCanceled = "restore_canceled",
        ImportUploaded = "import_uploaded",
        ImportValidating = "import_validating",
        ImportValidationPassed = "import_validation_passed",
        ImportValidationFailed = "import_validation_failed",
        ImportAwaitingConfirmation = "import_awaiting_confirmation",
        ImportProcessing = "import_processing",
        ImportCompleted = "import_completed",
        ImportFailed = "import_failed",
        ImportCanceled = "import_canceled",
    }
}

string_enum! {
    /// Work a job waits for a worker to do.
    pub enum Work {
        Backup = "backup",
        Validate = "validate",
        Restore = "restore",
        Import = "import",
    }
}

/// One job.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Job {
    pub job_id: String,
    pub user_id: String,
    pub job_type: JobType,
    pub status: JobStatus,
    /// 0–100.
    pub progress: u8,
    pub current_phase: String,
    pub created_at: i64,
    pub updated_at: i64,
    pub completed_at: Option<i64>,
    /// When the package (or the upload URL) stops being available.
    pub expires_at: Option<i64>,
    /// Options the job was created with (backupType, includeAnalytics, description, filters,
    /// validateOnly, mergeStrategy, …), as the client sent them.
    pub params: serde_json::Value,
    /// Where the job's package is in blob storage.
    pub package_key: Option<String>,
    pub package_size: Option<u64>,
    pub package_sha256: Option<String>,
    pub uploaded_at: Option<i64>,
    /// Results by name: `validationResults`, `summary`, `restoreResults`, `validation`,
    /// `checksums`, … (absent keys are absent).
    pub results: serde_json::Map<String, serde_json::Value>,
    pub error: Option<String>,
    /// A stable code for the error (`VALIDATION_FAILED`, `PROFILE_NOT_EMPTY`, …).
    pub error_code: Option<String>,
    /// Work waiting for (or held by) a worker.
    pub work: Option<Work>,
    pub cancel_requested: bool,
    /// How many times a worker has started this job's current work.
    pub attempts: u32,
    pub lease_owner: Option<String>,
    pub lease_until: Option<i64>,
    pub idempotency_key: Option<String>,
    /// Incremented by every [`JobStore::update_job`].
    pub version: i64,
}

impl Job {
    /// A new job with nothing done yet.
    pub fn new(
        job_id: &str,
        user_id: &str,
        job_type: JobType,
        status: JobStatus,
        now: i64,
    ) -> Self {
        Job {
            job_id: job_id.to_string(),
            user_id: user_id.to_string(),
            job_type,
            status,
            progress: 0,
            current_phase: String::new(),
            created_at: now,
            updated_at: now,
            completed_at: None,
            expires_at: None,
            params: serde_json::Value::Object(Default::default()),
            package_key: None,
            package_size: None,
            package_sha256: None,
            uploaded_at: None,
            results: Default::default(),
            error: None,
            error_code: None,
            work: None,
            cancel_requested: false,
            attempts: 0,
            lease_owner: None,
            lease_until: None,
            idempotency_key: None,
            version: 0,
        }
    }

    /// A string parameter.
    pub fn param_str(&self, key: &str) -> Option<&str> {
        self.params.get(key).and_then(|v| v.as_str())
    }

    /// A boolean parameter (false when absent).
    pub fn param_bool(&self, key: &str) -> bool {
        self.params
            .get(key)
            .and_then(|v| v.as_bool())
            .unwrap_or(false)
    }
}

/// What a worker learns when it reports progress.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ProgressAck {
    /// Someone asked for the job to stop.
    pub cancel_requested: bool,
    /// The worker still holds the job's lease.
    pub still_owner: bool,
}

/// One audit record: who did what, when, with what outcome.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AuditRecord {
    pub at: i64,
    pub user_id: String,
    /// `backup.create`, `restore.start`, `package.download`, …
    pub action: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub job_id: Option<String>,
    /// `ok`, or the error code.
    pub outcome: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    /// Where the request came from, when known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
}

/// A page of jobs.
#[derive(Clone, Debug, Default)]
pub struct JobPage {
    pub jobs: Vec<Job>,
    /// Jobs of these types the user has in all.
    pub total: u64,
    /// Where the next page starts, when there is one.
    pub next: Option<JobCursor>,
}

/// A position in a newest-first job listing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JobCursor {
    pub created_at: i64,
    pub job_id: String,
}

/// What one user has in flight (see [`JobStore::user_load`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct UserLoad {
    /// Jobs with work queued or running.
    pub active_jobs: u64,
    /// Restore and import jobs still waiting for their package, whose upload URL has not
    /// expired.
    pub open_uploads: u64,
    /// Bytes of the packages the user's jobs keep (backups made, packages uploaded).
    pub staged_bytes: u64,
}

/// Where jobs and audit records live.
pub trait JobStore: Send + Sync {
    /// Stores a new job. When the job carries an idempotency key the user already used, nothing
    /// is stored and the existing job is returned.
    fn create_job(&self, job: &Job) -> Result<Job>;

    /// A user's job; `None` for another user's job as for a missing one.
    fn get_job(&self, user: &str, job_id: &str) -> Result<Option<Job>>;

    /// A user's jobs of the given types, newest first, after `cursor` (or skipping `offset`).
    fn list_jobs(
        &self,
        user: &str,
        types: &[JobType],
        cursor: Option<&JobCursor>,
        offset: u64,
        limit: u64,
    ) -> Result<JobPage>;

    /// Writes `job` if its `version` is still the stored one, and bumps the version. Returns
    /// `false` (writing nothing) when someone else changed the job first.
    fn update_job(&self, job: &Job) -> Result<bool>;

    /// Whether a job with this id exists, whoever's it is (for the audit trail only: requests
    /// still see another user's job as missing).
    fn job_exists(&self, job_id: &str) -> Result<bool>;

    /// Deletes a user's job; false when there was none.
    fn delete_job(&self, user: &str, job_id: &str) -> Result<bool>;

    /// Claims a job with work whose lease is free or expired, for `lease_ms`, fairly across
    /// users: only users with fewer than `max_running_per_user` jobs running (leased) are
    /// considered; among them those with the fewest running come first, then the oldest
    /// waiting job (so one user's queue never delays another's first job by more than a job's
    /// length). A job's own expired lease does not count it as running.
    fn claim_job_fair(
        &self,
        worker: &str,
        now: i64,
        lease_ms: i64,
        max_running_per_user: u32,
    ) -> Result<Option<Job>>;

    /// [`JobStore::claim_job_fair`] with no limit per user.
    fn claim_job(&self, worker: &str, now: i64, lease_ms: i64) -> Result<Option<Job>> {
        self.claim_job_fair(worker, now, lease_ms, u32::MAX)
    }

    /// What a user has in flight, for per-user limits.
    fn user_load(&self, user: &str, now: i64) -> Result<UserLoad>;

    /// Records progress of the job a worker holds (without conflicting with other updates).
    fn report_progress(
        &self,
        job_id: &str,
        worker: &str,
        progress: u8,
        phase: &str,
        now: i64,
        lease_until: i64,
    ) -> Result<ProgressAck>;

    /// Gives up a worker's lease (after finishing the job's work, or to let another take it).
    fn release_job(&self, job_id: &str, worker: &str) -> Result<()>;

    /// Jobs whose package expires before `now` and still has one.
    fn expiring_jobs(&self, now: i64, limit: u64) -> Result<Vec<Job>>;

    fn append_audit(&self, record: &AuditRecord) -> Result<()>;

    /// Audit records, newest first, of one user or of all.
    fn list_audit(&self, user: Option<&str>, limit: u64) -> Result<Vec<AuditRecord>>;
}
