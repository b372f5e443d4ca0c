//! Jobs: the state machine every request and worker goes through, and the work a worker does.
//!
//! Every status change is one of the transitions below, applied with a compare-and-set on the
//! job's version ([`modify`]), so concurrent requests and workers never lose an update.
//!
//! ```text
//! backup/export:  initiated ─▶ processing ─▶ completed ─▶ expired
//!                                  └────────▶ failed
//! restore/import: uploaded ─▶ validating ─▶ awaiting_confirmation ─▶ processing ─▶ completed
//!                    │            │   └──▶ validation_passed (validateOnly)    ├──▶ failed
//!                    │            └──────▶ validation_failed                    └──▶ canceled
//!                    └─ cancel from any non-terminal state ─▶ canceled
//!                 retry: failed | validation_failed ─▶ validating
//! ```

use std::io::{Seek, SeekFrom};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use fzip_format::{ProblemKind, Severity};
use fzip_store::blob::WaitCell;
use fzip_store::jobs::{Job, JobStatus, JobStore, JobType, Work};
use fzip_store::{BlobStore, StoreError, describe};
use serde_json::{Value, json};

use crate::backup::{BackupOptions, BackupType, Selection, backup};
use crate::error::{EngineError, Resource};
use crate::import::{ImportOptions, ImportReport, MergeStrategy, import};
use crate::progress::{CancelFlag, Progress};
use crate::restore::{RestoreOptions, restore};
use crate::verify::{VerifyReport, verify};
use crate::{Engine, now_ms};

/// Why a transition is not allowed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TransitionError {
    /// The job is in a state the operation does not apply to (an HTTP 409).
    #[error("{0}")]
    Conflict(String),
    /// The restore target is not empty.
    #[error("{0}")]
    ProfileNotEmpty(String),
}

/// Statuses of a job type, by role.
#[derive(Clone, Copy, Debug)]
pub struct Statuses {
    pub initial: JobStatus,
    pub validating: JobStatus,
    pub validation_passed: JobStatus,
    pub validation_failed: JobStatus,
    pub awaiting: JobStatus,
    pub processing: JobStatus,
    pub completed: JobStatus,
    pub failed: JobStatus,
    pub canceled_or_expired: JobStatus,
}

/// The statuses a job type uses.
pub fn statuses(t: JobType) -> Statuses {
    use JobStatus::*;
    match t {
        JobType::Backup => Statuses {
            initial: BackupInitiated,
            validating: BackupProcessing,
            validation_passed: BackupProcessing,
            validation_failed: BackupFailed,
            awaiting: BackupProcessing,
            processing: BackupProcessing,
            completed: BackupCompleted,
            failed: BackupFailed,
            canceled_or_expired: BackupExpired,
        },
        JobType::Export => Statuses {
            initial: ExportInitiated,
            validating: ExportProcessing,
            validation_passed: ExportProcessing,
            validation_failed: ExportFailed,
            awaiting: ExportProcessing,
            processing: ExportProcessing,
            completed: ExportCompleted,
            failed: ExportFailed,
            canceled_or_expired: ExportExpired,
        },
        JobType::Restore => Statuses {
            initial: RestoreUploaded,
            validating: RestoreValidating,
            validation_passed: RestoreValidationPassed,
            validation_failed: RestoreValidationFailed,
            awaiting: RestoreAwaitingConfirmation,
            processing: RestoreProcessing,
            completed: RestoreCompleted,
            failed: RestoreFailed,
            canceled_or_expired: RestoreCanceled,
        },
        JobType::Import => Statuses {
            initial: ImportUploaded,
            validating: ImportValidating,
            validation_passed: ImportValidationPassed,
            validation_failed: ImportValidationFailed,
            awaiting: ImportAwaitingConfirmation,
            processing: ImportProcessing,
            completed: ImportCompleted,
            failed: ImportFailed,
            canceled_or_expired: ImportCanceled,
        },
    }
}

/// True for statuses nothing moves out of (except retry of failures, and deletion).
pub fn is_terminal(s: JobStatus) -> bool {
    use JobStatus::*;
    matches!(
        s,
        BackupCompleted
            | BackupFailed
            | BackupExpired
            | ExportCompleted
            | ExportFailed
            | ExportExpired
            | RestoreValidationPassed
            | RestoreValidationFailed
            | RestoreCompleted
            | RestoreFailed
            | RestoreCanceled
            | ImportValidationPassed
            | ImportValidationFailed
            | ImportCompleted
            | ImportFailed
            | ImportCanceled
    )
}

fn conflict(job: &Job, what: &str) -> TransitionError {
    TransitionError::Conflict(format!(
        "cannot {what} {} job {}: it is {}",
        job.job_type.as_str(),
        job.job_id,
        job.status.as_str()
    ))
}

/// The package of a restore/import job arrived. With `auto_validate` (the upload-URL flow)
/// validation is queued at once; otherwise it waits for the explicit upload call.
pub fn package_uploaded(
    job: &mut Job,
    key: &str,
    size: u64,
    sha256: Option<&str>,
    now: i64,
) -> Result<(), TransitionError> {
    let s = statuses(job.job_type);
    if job.job_type.produces_package() || job.status != s.initial || job.package_key.is_some() {
        return Err(conflict(job, "upload a package to"));
    }
    job.package_key = Some(key.to_string());
    job.package_size = Some(size);
    job.package_sha256 = sha256.map(str::to_string);
    job.uploaded_at = Some(now);
    job.updated_at = now;
    if job.param_bool("autoValidate") {
        queue_validation(job, now);
    }
    Ok(())
}

fn queue_validation(job: &mut Job, now: i64) {
    let s = statuses(job.job_type);
    job.status = s.validating;
    job.work = Some(Work::Validate);
    // Attempts are counted per piece of work.
    job.attempts = 0;
    job.progress = 10;
    job.current_phase = "parsing_package".into();
    job.error = None;
    job.error_code = None;
    job.results.clear();
    job.completed_at = None;
    job.cancel_requested = false;
    job.updated_at = now;
}

/// `POST …/{id}/upload`: start validating the uploaded package.
pub fn begin_validation(job: &mut Job, now: i64) -> Result<(), TransitionError> {
    let s = statuses(job.job_type);
    if job.job_type.produces_package() || job.status != s.initial {
        return Err(conflict(job, "validate"));
    }
    if job.package_key.is_none() {
        return Err(TransitionError::Conflict(format!(
            "job {} has no package yet: upload it first",
            job.job_id
        )));
    }
    queue_validation(job, now);
    Ok(())
}

/// `POST …/{id}/start`: the user confirmed; restore (or import) the validated package.
/// `profile_empty` is checked again here for restores.
pub fn start(
    job: &mut Job,
    profile_empty: Option<String>,
    now: i64,
) -> Result<(), TransitionError> {
    let s = statuses(job.job_type);
    if job.status != s.awaiting {
        return Err(conflict(job, "start"));
    }
    if job.job_type == JobType::Restore
        && let Some(what) = profile_empty
    {
        return Err(TransitionError::ProfileNotEmpty(what));
    }
    job.status = s.processing;
    job.work = Some(if job.job_type == JobType::Import {
        Work::Import
    } else {
        Work::Restore
    });
    // The validation's attempts do not count against the restore's.
    job.attempts = 0;
    job.progress = 45;
    job.current_phase = "Starting restore...".into();
    job.results.remove("summary");
    job.updated_at = now;
    Ok(())
}

/// What a cancel request did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CancelOutcome {
    /// The job is canceled.
    Canceled,
    /// A worker is writing; it was asked to stop and will roll back.
    Requested,
}

/// `POST …/{id}/cancel`: restores and imports only.
pub fn cancel(job: &mut Job, now: i64) -> Result<CancelOutcome, TransitionError> {
    let s = statuses(job.job_type);
    if job.job_type.produces_package() {
        return Err(TransitionError::Conflict(format!(
            "{} jobs cannot be canceled; delete the job instead",
            job.job_type.as_str()
        )));
    }
    if is_terminal(job.status) {
        return Err(conflict(job, "cancel"));
    }
    if job.status == s.processing {
        job.cancel_requested = true;
        job.updated_at = now;
        return Ok(CancelOutcome::Requested);
    }
    job.status = s.canceled_or_expired;
    job.work = None;
    job.cancel_requested = true;
    job.current_phase = "canceled".into();
    job.error = Some("Canceled by user".into());
    job.error_code = Some("CANCELED".into());
    job.completed_at = Some(now);
    job.updated_at = now;
    Ok(CancelOutcome::Canceled)
}

/// `POST …/{id}/retry`: a failed restore (or import) validates and runs again.
pub fn retry(job: &mut Job, now: i64) -> Result<(), TransitionError> {
    let s = statuses(job.job_type);
    if job.job_type.produces_package() {
        return Err(TransitionError::Conflict(
            "only restore and import jobs can be retried; start a new backup instead".into(),
        ));
    }
    if job.status != s.failed && job.status != s.validation_failed {
        return Err(conflict(job, "retry"));
    }
    if job.package_key.is_none() {
        return Err(TransitionError::Conflict(format!(
            "job {} has no package to retry with: upload it again",
            job.job_id
        )));
    }
    queue_validation(job, now);
    Ok(())
}

/// The package of a completed backup passed its expiry.
pub fn expire(job: &mut Job, now: i64) {
    let s = statuses(job.job_type);
    if job.status == s.completed && job.job_type.produces_package() {
        job.status = s.canceled_or_expired;
    }
    job.package_key = None;
    job.updated_at = now;
}

/// Applies `change` to the current version of a job until the compare-and-set succeeds (other
/// writers may be updating the job at the same time). Returns the stored job, or `None` when the
/// job no longer exists.
pub fn modify<T, E: From<StoreError>>(
    jobs: &dyn JobStore,
    user: &str,
    job_id: &str,
    mut change: impl FnMut(&mut Job) -> Result<T, E>,
) -> Result<Option<(Job, T)>, E> {
    for _ in 0..50 {
        let Some(mut job) = jobs.get_job(user, job_id)? else {
            return Ok(None);
        };
        let out = change(&mut job)?;
        if jobs.update_job(&job)? {
            job.version += 1;
            return Ok(Some((job, out)));
        }
    }
    Err(E::from(StoreError::Database(format!(
        "job {job_id} kept changing under concurrent updates; try again"
    ))))
}

// ---------------------------------------------------------------------------------------------
// Workers
// ---------------------------------------------------------------------------------------------

/// What a worker needs to run jobs.
pub struct Worker<'a> {
    pub engine: &'a Engine,
    pub jobs: &'a dyn JobStore,
    /// This worker's name in leases.
    pub id: &'a str,
    /// Where packages are staged while they are written or read.
    pub tmp_dir: &'a Path,
    /// How long a finished backup's package stays downloadable.
    pub package_ttl_ms: i64,
    pub lease_ms: i64,
    /// Set when the process is shutting down: running work stops and goes back to the queue.
    pub shutdown: &'a CancelFlag,
    /// How many times one piece of work may be started ([`MAX_ATTEMPTS`] by default); the
    /// next claim fails the job instead.
    pub max_attempts: u32,
}

/// How a job's work ended: `completed`, `validated`, `invalid`, `failed`, `canceled`,
/// `abandoned` (the job was deleted or canceled before the work began), `requeued` (stopped by a
/// shutdown; it resumes later), or `skipped` (there was no work).
pub type Outcome = &'static str;

/// How many times a job's work may be started before it is failed instead of resumed.
pub const MAX_ATTEMPTS: u32 = 3;

/// Names staging files `{job id}.{random}.staging`, so a look at `{data-dir}/tmp` says whose
/// they are; a live one is locked (an advisory lock its process holds while the file lives).
const STAGING_SUFFIX: &str = ".staging";
/// A staging file this young is left alone even when unlocked (its creator, in another
/// process, may be about to lock it).
const STAGING_GRACE: Duration = Duration::from_secs(2);
/// Staging files of this process are created and swept one at a time.
static STAGING: Mutex<()> = Mutex::new(());

/// A new staging file for `job` in `dir`, locked for as long as it lives (it is deleted when
/// dropped; a process killed meanwhile leaves it unlocked for [`remove_dead_staging`]).
pub fn staging_file(dir: &Path, job_id: &str) -> std::io::Result<tempfile::NamedTempFile> {
    let _one_at_a_time = STAGING.lock().unwrap_or_else(|p| p.into_inner());
    let id: String = job_id
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_')
        .take(64)
        .collect();
    let file = tempfile::Builder::new()
        .prefix(&format!("{id}."))
        .suffix(STAGING_SUFFIX)
        .tempfile_in(dir)?;
    file.as_file().lock()?;
    Ok(file)
}

/// Deletes the staging files in `dir` no live process holds (left by a server that was killed,
/// or crashed, while a job ran); returns how many. Files of jobs running in this or another
/// server sharing the folder are locked and kept.
pub fn remove_dead_staging(dir: &Path) -> std::io::Result<u64> {
    let _one_at_a_time = STAGING.lock().unwrap_or_else(|p| p.into_inner());
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(e),
    };
    let mut removed = 0;
    for entry in entries {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().into_owned();
        // Ours, and those of versions that named them `.tmpXXXXXX`.
        if !(name.ends_with(STAGING_SUFFIX) || name.starts_with(".tmp")) {
            continue;
        }
        let Ok(meta) = entry.metadata() else {
            continue;
        };
        let old_enough = meta
            .modified()
            .ok()
            .and_then(|m| m.elapsed().ok())
            .is_some_and(|age| age >= STAGING_GRACE);
        if !meta.is_file() || !old_enough {
            continue;
        }
        let file = match std::fs::File::open(entry.path()) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e),
        };
        match file.try_lock() {
            Ok(()) => match std::fs::remove_file(entry.path()) {
                Ok(()) => removed += 1,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(e),
            },
            Err(std::fs::TryLockError::WouldBlock) => {}
            Err(std::fs::TryLockError::Error(e)) => return Err(e),
        }
    }
    Ok(removed)
}

/// Where a backup's package is kept.
pub fn package_key(job: &Job) -> String {
    BlobStore::key(["packages", &job.user_id, &format!("{}.fzip", job.job_id)])
}

/// Where an uploaded package is kept.
pub fn upload_key(user: &str, job_id: &str) -> String {
    BlobStore::key(["uploads", user, &format!("{job_id}.fzip")])
}

/// Phases of each kind of work, as (engine phase prefix, from %, to %).
/// The percent band of a phase of `work`: the job's progress moves from the first to the second
/// number as the phase advances through its total. Bands follow the share of the work a phase
/// takes on a large profile (transactions dominate); `(0, 0)` for a phase with no band.
pub fn band(work: Work, phase: &str) -> (u8, u8) {
    let table: &[(&str, u8, u8)] = match work {
        Work::Backup => &[
            ("writing_accounts", 10, 14),
            ("writing_categories", 14, 16),
            ("writing_file_maps", 16, 17),
            ("writing_transaction_files", 17, 19),
            ("writing_transactions", 19, 70),
            ("writing_analytics", 70, 72),
            ("writing_files", 72, 92),
            ("uploading_package", 92, 99),
        ],
        Work::Validate => &[
            ("downloading_package", 10, 15),
            ("verifying_file_maps", 15, 16),
            ("verifying_accounts", 16, 17),
            ("verifying_categories", 17, 18),
            ("verifying_transaction_files", 18, 19),
            ("verifying_transactions", 19, 34),
            ("verifying_analytics", 34, 35),
            ("verifying_files", 35, 38),
            ("checking_profile", 38, 39),
            // The dry run an import's validation is.
            ("planning_transactions", 39, 40),
            ("planning", 38, 39),
            ("importing_files", 39, 39),
            ("importing_transactions", 40, 43),
            ("regenerating_analytics", 43, 44),
        ],
        // An import verifies the package in full (every transaction), plans the merge, then
        // streams the transactions again and recomputes the analytics.
        Work::Import => &[
            ("downloading_package", 45, 47),
            ("verifying_", 47, 62),
            ("planning_transactions", 70, 72),
            ("planning", 62, 64),
            ("importing_files", 64, 70),
            ("importing_transactions", 72, 94),
            ("regenerating_analytics", 94, 98),
            ("committing", 98, 99),
        ],
        Work::Restore => &[
            ("downloading_package", 45, 47),
            ("verifying_", 47, 50),
            ("restoring_file_maps", 50, 52),
            ("restoring_accounts", 52, 55),
            ("restoring_categories", 55, 58),
            ("restoring_transaction_files", 58, 60),
            ("restoring_files", 60, 70),
            ("restoring_transactions", 70, 97),
            ("restoring_analytics", 97, 98),
            ("committing", 98, 99),
        ],
    };
    table
        .iter()
        .find(|(p, _, _)| phase.starts_with(p))
        .map(|(_, a, b)| (*a, *b))
        .unwrap_or((0, 0))
}

struct ProgressState {
    phase: String,
    total: u64,
    done: u64,
    percent: u8,
    last_report: Instant,
}

/// Engine progress → the job row: percent and phase, at most every 250 ms and on every phase
/// change; each report renews the lease and brings back a cancel request.
pub struct JobProgress<'a> {
    jobs: &'a dyn JobStore,
    job_id: String,
    worker: String,
    work: Work,
    lease_ms: i64,
    shutdown: &'a CancelFlag,
    state: Mutex<ProgressState>,
    cancel_requested: AtomicBool,
    lost_lease: AtomicBool,
    /// A blob operation of the worker's thread still waiting for the store, if any.
    waits: WaitCell,
}

impl<'a> JobProgress<'a> {
    fn new(w: &'a Worker<'a>, job: &Job, work: Work, waits: WaitCell) -> Self {
        JobProgress {
            waits,
            jobs: w.jobs,
            job_id: job.job_id.clone(),
            worker: w.id.to_string(),
            work,
            lease_ms: w.lease_ms,
            shutdown: w.shutdown,
            state: Mutex::new(ProgressState {
                phase: job.current_phase.clone(),
                total: 0,
                done: 0,
                percent: job.progress,
                last_report: Instant::now(),
            }),
            cancel_requested: AtomicBool::new(false),
            lost_lease: AtomicBool::new(false),
        }
    }

    /// Writes the current progress (renewing the lease) and notes a cancel request.
    fn report(&self, state: &mut ProgressState) {
        let now = now_ms();
        let waiting = self.waits.lock().unwrap_or_else(|p| p.into_inner()).clone();
        let phase = match waiting {
            // The phase keeps its name first (so its progress band still applies).
            Some(wait) => format!(
                "{}: waiting for blob storage ({}) for {} s, retrying; gives up after {} s",
                state.phase,
                wait.what,
                wait.waited.as_secs(),
                wait.limit.as_secs()
            ),
            None => state.phase.clone(),
        };
        match self.jobs.report_progress(
            &self.job_id,
            &self.worker,
            state.percent,
            &phase,
            now,
            now + self.lease_ms,
        ) {
            Ok(ack) => {
                if ack.cancel_requested {
                    self.cancel_requested.store(true, Ordering::SeqCst);
                }
                if !ack.still_owner {
                    self.lost_lease.store(true, Ordering::SeqCst);
                }
            }
            Err(e) => {
                tracing::warn!(job_id = %self.job_id, error = %e, "could not record progress")
            }
        }
        state.last_report = Instant::now();
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, ProgressState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Reports now, whatever the time since the last report (keeps the lease alive).
    pub fn heartbeat(&self) {
        let mut s = self.lock();
        self.report(&mut s);
    }

    pub fn cancel_requested(&self) -> bool {
        self.cancel_requested.load(Ordering::SeqCst)
    }

    pub fn lost_lease(&self) -> bool {
        self.lost_lease.load(Ordering::SeqCst)
    }
}

impl Progress for JobProgress<'_> {
    fn phase(&self, name: &str, total: u64) {
        let mut s = self.lock();
        s.phase = name.to_string();
        s.total = total;
        s.done = 0;
        let (from, _) = band(self.work, name);
        s.percent = s.percent.max(from);
        self.report(&mut s);
    }

    fn advance(&self, n: u64) {
        let mut s = self.lock();
        s.done = s.done.saturating_add(n);
        let (from, to) = band(self.work, &s.phase);
        if s.total > 0 && to > from {
            let frac = (s.done.min(s.total) as f64) / (s.total as f64);
            let p = from + ((to - from) as f64 * frac) as u8;
            s.percent = s.percent.max(p);
        }
        if s.last_report.elapsed() >= Duration::from_millis(250) {
            self.report(&mut s);
        }
    }

    fn is_cancelled(&self) -> bool {
        self.cancel_requested() || self.shutdown.is_set() || self.lost_lease()
    }
}

/// Keeps a job's lease alive while long steps run without progress callbacks.
struct Heartbeat<'s> {
    stop: Arc<AtomicBool>,
    handle: Option<std::thread::ScopedJoinHandle<'s, ()>>,
}

impl Heartbeat<'_> {
    fn stop(mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

fn start_heartbeat<'scope, 'env>(
    scope: &'scope std::thread::Scope<'scope, 'env>,
    progress: &'env JobProgress<'env>,
    every: Duration,
) -> Heartbeat<'scope> {
    let stop = Arc::new(AtomicBool::new(false));
    let flag = stop.clone();
    let handle = scope.spawn(move || {
        let mut last = Instant::now();
        while !flag.load(Ordering::SeqCst) {
            std::thread::sleep(Duration::from_millis(50));
            if last.elapsed() >= every {
                progress.heartbeat();
                last = Instant::now();
            }
        }
    });
    Heartbeat {
        stop,
        handle: Some(handle),
    }
}

/// Runs the work of a claimed job to its end (or back to the queue on shutdown).
pub fn run(w: &Worker<'_>, job: Job) -> Result<Outcome, EngineError> {
    let Some(work) = job.work else {
        w.jobs.release_job(&job.job_id, w.id)?;
        return Ok("skipped");
    };
    let span =
        tracing::info_span!("job", job_id = %job.job_id, user = %job.user_id, work = work.as_str());
    let _enter = span.enter();
    let started = Instant::now();
    // A restore or import whose commit marker is in the profile has completed, whatever
    // happened to the process that committed it: the marker decides before anything else.
    if let Some(outcome) = complete_if_committed(w, &job)? {
        tracing::info!("the job had committed before it was interrupted; it is complete");
        w.jobs.release_job(&job.job_id, w.id)?;
        return Ok(outcome);
    }
    if job.attempts > w.max_attempts {
        tracing::warn!(
            attempts = job.attempts,
            "job interrupted too often; failing it"
        );
        let message = give_up_message(&job, work);
        let outcome = finish_failed(w, &job, &message, "INTERRUPTED")?;
        w.jobs.release_job(&job.job_id, w.id)?;
        return Ok(outcome);
    }
    tracing::info!(attempt = job.attempts, "job started");
    let waits = WaitCell::default();
    let _reporting = fzip_store::blob::report_waits(waits.clone());
    let progress = JobProgress::new(w, &job, work, waits);
    let result = std::thread::scope(|scope| {
        let hb = start_heartbeat(
            scope,
            &progress,
            Duration::from_millis((w.lease_ms / 3).max(100) as u64),
        );
        let r = match work {
            Work::Backup => run_backup(w, &job, &progress),
            Work::Validate if job.job_type == JobType::Import => {
                run_import_validation(w, &job, &progress)
            }
            Work::Validate => run_validation(w, &job, &progress),
            Work::Restore => run_restore(w, &job, &progress),
            Work::Import => run_import(w, &job, &progress),
        };
        hb.stop();
        r
    });
    let outcome = match &result {
        Ok(o) => *o,
        Err(e) => {
            tracing::error!(error = %e, "job failed unexpectedly");
            "error"
        }
    };
    w.jobs.release_job(&job.job_id, w.id)?;
    tracing::info!(
        outcome,
        seconds = started.elapsed().as_secs_f64(),
        "job ended"
    );
    result
}

/// Why a job that kept being interrupted is failed, saying what happened and what it means.
fn give_up_message(job: &Job, work: Work) -> String {
    let interrupted = job.attempts.saturating_sub(1);
    let (what, consequence) = match work {
        Work::Backup => ("backup", "no package was kept; start a new backup"),
        Work::Validate => (
            "package check",
            "nothing was changed; retry the job to check the package again",
        ),
        Work::Restore => (
            "restore",
            "nothing was restored, the profile is as it was; retry the job to run it again",
        ),
        Work::Import => (
            "import",
            "nothing was imported, the profile is as it was; retry the job to run it again",
        ),
    };
    format!(
        "the {what} was started {interrupted} time{} and each time the server running it stopped (crashed, was killed, or lost the job's lease) before it finished, so it is not started again: {consequence}",
        if interrupted == 1 { "" } else { "s" }
    )
}

/// When `job` is a restore or import whose writes committed (its commit marker is in the
/// profile), records it as completed and returns the outcome; `None` otherwise. Every path that
/// would end such a job otherwise (resuming it, giving up on it, failing or canceling it) asks
/// this first, so the status never contradicts the profile.
pub fn complete_if_committed(w: &Worker<'_>, job: &Job) -> Result<Option<Outcome>, EngineError> {
    complete_committed(w.engine, w.jobs, job)
}

/// [`complete_if_committed`] for callers without a worker (the sweeper).
pub fn complete_committed(
    engine: &Engine,
    jobs: &dyn JobStore,
    job: &Job,
) -> Result<Option<Outcome>, EngineError> {
    if job.job_type.produces_package() || !engine.store.job_committed(&job.user_id, &job.job_id)? {
        return Ok(None);
    }
    let s = statuses(job.job_type);
    let results = if job.job_type == JobType::Restore {
        let summary = engine.store.summary(&job.user_id)?;
        Some(restore_results_from_counts(
            &summary.counts,
            summary.files_with_content,
            summary.file_bytes,
            0,
        ))
    } else {
        None
    };
    let now = now_ms();
    modify::<(), EngineError>(jobs, &job.user_id, &job.job_id, |j| {
        if j.status == s.completed {
            j.work = None;
            return Ok(());
        }
        j.status = s.completed;
        j.work = None;
        j.progress = 100;
        j.current_phase = "completed".into();
        j.completed_at = Some(now);
        j.cancel_requested = false;
        j.error = None;
        j.error_code = None;
        if let Some(r) = &results
            && !j.results.contains_key("restoreResults")
        {
            j.results.insert("restoreResults".into(), r.clone());
        }
        j.updated_at = now;
        Ok(())
    })?;
    Ok(Some("completed"))
}

/// Writes the final state of a job, unless it was deleted meanwhile.
fn finish(
    w: &Worker<'_>,
    job: &Job,
    change: impl FnMut(&mut Job) -> Result<(), EngineError>,
) -> Result<Option<Job>, EngineError> {
    Ok(modify(w.jobs, &job.user_id, &job.job_id, change)?.map(|(j, ())| j))
}

/// Errors a failed job's message lists; the rest are counted (the report holds them all).
const MAX_LISTED_ERRORS: usize = 20;

/// Fails a job, unless it is a restore or import that committed (then it is completed).
fn finish_failed(
    w: &Worker<'_>,
    job: &Job,
    message: &str,
    code: &str,
) -> Result<Outcome, EngineError> {
    if let Some(outcome) = complete_if_committed(w, job)? {
        return Ok(outcome);
    }
    let s = statuses(job.job_type);
    let failed = if job.work == Some(Work::Validate) {
        s.validation_failed
    } else {
        s.failed
    };
    finish(w, job, |j| {
        j.status = failed;
        j.work = None;
        j.error = Some(message.to_string());
        j.error_code = Some(code.to_string());
        j.completed_at = Some(now_ms());
        j.updated_at = now_ms();
        Ok(())
    })?;
    Ok("failed")
}

/// The shutdown flag stopped the work: leave the job as it is, to be picked up again.
fn requeue(job: &Job) -> Result<Outcome, EngineError> {
    tracing::info!(job_id = %job.job_id, "work interrupted by shutdown; the job goes back to the queue");
    Ok("requeued")
}

fn begin(
    w: &Worker<'_>,
    job: &Job,
    status: JobStatus,
    phase: &str,
    progress: u8,
) -> Result<bool, EngineError> {
    let mut still_wanted = true;
    finish(w, job, |j| {
        if j.work.is_none() || j.cancel_requested && !j.job_type.produces_package() {
            still_wanted = false;
            return Ok(());
        }
        j.status = status;
        j.current_phase = phase.to_string();
        j.progress = j.progress.max(progress);
        j.updated_at = now_ms();
        Ok(())
    })?;
    Ok(still_wanted)
}

fn run_backup(
    w: &Worker<'_>,
    job: &Job,
    progress: &JobProgress<'_>,
) -> Result<Outcome, EngineError> {
    let s = statuses(job.job_type);
    if !begin(w, job, s.processing, "collecting_data", 5)? {
        return Ok("abandoned");
    }
    let options = BackupOptions {
        job_id: Some(job.job_id.clone()),
        description: job.param_str("description").map(str::to_string),
        include_analytics: job.param_bool("includeAnalytics"),
        continue_on_missing_files: job.param_bool("continueOnMissingFiles"),
        compression_level: fzip_format::DEFAULT_COMPRESSION_LEVEL,
        selection: selection_from_params(&job.params),
        allow_empty: job.param_bool("allowEmpty"),
    };
    let staging = staging_file(w.tmp_dir, &job.job_id)?;
    let file = staging.reopen()?;
    let result = backup(w.engine, &job.user_id, file, &options, progress);
    let (mut file, report) = match result {
        Ok(v) => v,
        Err(EngineError::Cancelled) if w.shutdown.is_set() || progress.lost_lease() => {
            return requeue(job);
        }
        Err(EngineError::Cancelled) => {
            finish_failed(w, job, "the backup was stopped", "CANCELED")?;
            return Ok("canceled");
        }
        Err(e) => {
            let code = e.code().unwrap_or(match e {
                EngineError::MissingFiles(_) => "FILES_MISSING",
                _ => "BACKUP_FAILED",
            });
            return finish_failed(w, job, &e.to_string(), code);
        }
    };
    file.set_len(report.package_bytes)?;
    file.sync_all()?;
    // Post-backup validation: the package as written is read back and checked in full.
    let check = crate::restore::open_package(staging.path(), w.engine.limits)
        .and_then(|mut r| verify(&mut r, &crate::progress::NoProgress));
    let verification = match &check {
        Ok(r) => json!({
            "valid": r.valid,
            "errors": r.problems.iter().filter(|p| p.severity == Severity::Error).map(|p| p.to_string()).collect::<Vec<_>>(),
            "warnings": r.warnings,
        }),
        Err(e) => json!({ "valid": false, "errors": [e.to_string()] }),
    };
    if verification["valid"] != json!(true) {
        return finish_failed(
            w,
            job,
            &format!("the written package did not pass verification: {verification}"),
            "VALIDATION_FAILED",
        );
    }
    file.seek(SeekFrom::Start(0))?;
    progress.phase("uploading_package", 0);
    let key = package_key(job);
    let (size, digest) =
        match w
            .engine
            .blobs
            .put_reader_as(&key, &mut file, Some("application/zip"))
        {
            Ok(v) => v,
            Err(e) => {
                // Blob storage (or the staging disk) failed: the job fails with that code.
                let e = EngineError::from(e);
                let code = e.code().unwrap_or("BACKUP_FAILED");
                finish_failed(w, job, &e.to_string(), code)?;
                return Ok("failed");
            }
        };
    drop(staging);
    let sha = hex::encode(digest);
    let now = now_ms();
    let expires = now.saturating_add(w.package_ttl_ms);
    let stored = finish(w, job, |j| {
        j.status = s.completed;
        j.work = None;
        j.progress = 100;
        j.current_phase = "completed".into();
        j.completed_at = Some(now);
        j.expires_at = Some(expires);
        j.package_key = Some(key.clone());
        j.package_size = Some(size);
        j.package_sha256 = Some(sha.clone());
        j.error = None;
        j.error_code = None;
        j.results.insert("dataSummary".into(), json!(report.counts));
        j.results
            .insert("manifestChecksum".into(), json!(report.manifest_checksum));
        j.results
            .insert("filesFailed".into(), json!(report.files_failed));
        j.results
            .insert("processingTimeMs".into(), json!(report.duration_ms));
        j.results
            .insert("validation".into(), report.validation.clone());
        j.results
            .insert("checksums".into(), json!(report.checksums));
        j.results
            .insert("postBackupVerification".into(), verification.clone());
        if let Some(sel) = &report.selection {
            j.results.insert("selection".into(), sel.clone());
        }
        j.updated_at = now;
        Ok(())
    })?;
    if stored.is_none() {
        // Deleted while it ran: do not keep its package.
        let _ = w.engine.blobs.delete(&key);
        return Ok("abandoned");
    }
    Ok("completed")
}

/// The selection a backup job was created with (`backupType`, `accountIds`, `dateRangeStart`,
/// `dateRangeEnd`, `categoryIds`).
pub fn selection_from_params(p: &Value) -> Selection {
    let ids = |k: &str| -> Option<std::collections::BTreeSet<String>> {
        p.get(k)?.as_array().map(|a| {
            a.iter()
                .filter_map(|v| v.as_str().map(str::to_string))
                .collect()
        })
    };
    Selection {
        backup_type: p
            .get("backupType")
            .and_then(Value::as_str)
            .and_then(BackupType::parse)
            .unwrap_or_default(),
        account_ids: ids("accountIds"),
        date_from: p.get("dateRangeStart").and_then(Value::as_i64),
        date_to: p.get("dateRangeEnd").and_then(Value::as_i64),
        category_ids: ids("categoryIds"),
    }
}

/// Copies a job's package from blob storage into a staging file.
fn stage_package(
    w: &Worker<'_>,
    job: &Job,
    progress: &dyn Progress,
) -> Result<tempfile::NamedTempFile, EngineError> {
    let key = job
        .package_key
        .as_deref()
        .ok_or_else(|| EngineError::Other(format!("job {} has no package", job.job_id)))?;
    progress.phase("downloading_package", job.package_size.unwrap_or(0));
    // Failures here are the staging disk's or blob storage's, not the package's.
    let disk = |e: std::io::Error| {
        let full = crate::error::is_full(&e);
        EngineError::unavailable(Resource::Disk, full, e)
    };
    let staging = staging_file(w.tmp_dir, &job.job_id).map_err(disk)?;
    let mut out = staging.reopen().map_err(disk)?;
    let mut reader = w.engine.blobs.open(key)?;
    std::io::copy(&mut reader, &mut out).map_err(|e| {
        if crate::error::is_full(&e) {
            disk(e)
        } else {
            EngineError::unavailable(Resource::BlobStorage, false, e)
        }
    })?;
    out.sync_all().map_err(disk)?;
    Ok(staging)
}

/// The HouseF3-compatible validation results, from a verify report.
pub fn validation_results(report: &VerifyReport, profile_problem: Option<&str>) -> Value {
    let errors_of = |kinds: &[ProblemKind]| -> Vec<String> {
        report
            .problems
            .iter()
            .filter(|p| p.severity == Severity::Error && kinds.contains(&p.kind))
            .map(|p| p.to_string())
            .collect()
    };
    let schema_errors = errors_of(&[ProblemKind::Integrity, ProblemKind::Schema]);
    let business_errors = errors_of(&[ProblemKind::Reference, ProblemKind::Consistency]);
    let warnings: Vec<String> = report
        .problems
        .iter()
        .filter(|p| p.severity == Severity::Warning)
        .map(|p| p.to_string())
        .collect();
    let profile_errors: Vec<String> = profile_problem.map(str::to_string).into_iter().collect();
    let c = &report.counts;
    json!({
        "profileEmpty": profile_problem.is_none(),
        "schemaValid": schema_errors.is_empty(),
        "businessValid": business_errors.is_empty(),
        "ready": report.valid && profile_problem.is_none(),
        "schema": {
            "valid": schema_errors.is_empty(),
            "errors": schema_errors,
            "summary": {
                "accounts": c.accounts,
                "transactions": c.transactions,
                "categories": c.categories,
                "file_maps": c.file_maps,
                "transaction_files": c.transaction_files,
                "analytics": c.analytics,
            },
        },
        "business": { "valid": business_errors.is_empty(), "errors": business_errors },
        "profile": { "valid": profile_problem.is_none(), "errors": profile_errors },
        "warnings": warnings,
        "errorCount": report.errors,
        "warningCount": report.warnings,
        "dialect": report.dialect,
    })
}

/// The restore preview shown while a restore awaits confirmation: fzip's own keys
/// (`transactionFiles`, `fileMaps`, account ids and counts, top categories) and, beside them,
/// HouseF3's `FZIPRestoreSummary` shape (`accounts.items[].name/type`,
/// `categories.items[] {name, level, children}`, `file_maps` and `transaction_files` with
/// `totalSize` as text, `transactions.dateRange` as `YYYY-MM-DD`; the same range in milliseconds
/// is `transactions.dateRangeMs`).
pub fn restore_summary(report: &VerifyReport) -> Value {
    let c = &report.counts;
    let p = &report.preview;
    let mut file_types: Vec<&str> = report
        .files
        .iter()
        .filter_map(|f| f.file_format.as_deref())
        .collect();
    file_types.sort_unstable();
    file_types.dedup();
    let mut transactions = json!({ "count": c.transactions });
    if let (Some(first), Some(last)) = (p.first_transaction_date, p.last_transaction_date) {
        transactions["dateRangeMs"] = json!({ "earliest": first, "latest": last });
        if let (Some(a), Some(b)) = (iso_day(first), iso_day(last)) {
            transactions["dateRange"] = json!({ "earliest": a, "latest": b });
        }
    }
    json!({
        "accounts": {
            "count": c.accounts,
            "items": p.accounts.iter().map(|a| json!({
                "name": a.account_name,
                "type": a.account_type,
                "accountId": a.account_id,
                "accountName": a.account_name,
                "accountType": a.account_type,
                "currency": a.currency,
                "transactionCount": a.transaction_count,
            })).collect::<Vec<_>>(),
        },
        "categories": {
            "count": c.categories,
            "rules": report.category_rules,
            "hierarchyDepth": p.category_depth,
            "rootCategories": p.root_categories,
            "topCategories": p.top_categories,
            "items": p.categories.iter().map(|k| json!({
                "name": k.name,
                "level": k.level,
                "children": k.children,
                "categoryId": k.category_id,
            })).collect::<Vec<_>>(),
        },
        "fileMaps": { "count": c.file_maps },
        "file_maps": { "count": c.file_maps, "totalSize": human_size(p.file_maps_bytes) },
        "transactions": transactions,
        "transactionFiles": {
            "count": c.transaction_files,
            "totalSize": p.file_bytes,
            "items": report.files.iter().map(|f| json!({
                "fileId": f.file_id,
                "fileName": f.file_name,
                "fileFormat": f.file_format,
                "size": f.size,
                "sha256": f.sha256,
            })).collect::<Vec<_>>(),
        },
        "transaction_files": {
            "count": c.transaction_files,
            "totalSize": human_size(p.file_bytes),
            "fileTypes": file_types,
        },
        "analytics": { "count": c.analytics },
        "package": report.package,
    })
}

/// A millisecond timestamp as its UTC day, `YYYY-MM-DD`.
fn iso_day(ms: i64) -> Option<String> {
    chrono::DateTime::from_timestamp_millis(ms).map(|t| t.format("%Y-%m-%d").to_string())
}

/// Bytes as people read them: `812 B`, `1.5 KB`, `23.4 MB` (units of 1024).
pub fn human_size(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["KB", "MB", "GB", "TB", "PB"];
    if bytes < 1024 {
        return format!("{bytes} B");
    }
    let mut size = bytes as f64 / 1024.0;
    let mut unit = 0;
    while size >= 1024.0 && unit + 1 < UNITS.len() {
        size /= 1024.0;
        unit += 1;
    }
    format!("{size:.1} {}", UNITS[unit])
}

fn run_validation(
    w: &Worker<'_>,
    job: &Job,
    progress: &JobProgress<'_>,
) -> Result<Outcome, EngineError> {
    let s = statuses(job.job_type);
    if !begin(w, job, s.validating, "parsing_package", 10)? {
        return Ok("abandoned");
    }
    let staging = match stage_package(w, job, progress) {
        Ok(f) => f,
        Err(e) => {
            return finish_failed(
                w,
                job,
                &format!("the uploaded package cannot be read: {e}"),
                e.code().unwrap_or("PACKAGE_UNREADABLE"),
            );
        }
    };
    let report = match crate::restore::open_package(staging.path(), w.engine.limits)
        .and_then(|mut r| verify(&mut r, progress))
    {
        Ok(r) => r,
        Err(EngineError::Cancelled) if w.shutdown.is_set() || progress.lost_lease() => {
            return requeue(job);
        }
        Err(EngineError::Cancelled) => return Ok("canceled"),
        Err(e) => {
            let message = format!("Schema validation failed: {e}");
            return finish_failed(w, job, &message, "VALIDATION_FAILED");
        }
    };
    drop(staging);
    progress.phase("checking_profile", 0);
    let profile_problem = if job.job_type == JobType::Restore {
        let summary = w.engine.store.summary(&job.user_id)?;
        (!summary.is_empty()).then(|| {
            format!(
                "Profile not empty. Found: {}. FZIP restore requires a completely empty profile.",
                describe(&summary.counts)
            )
        })
    } else {
        None
    };
    let results = validation_results(&report, profile_problem.as_deref());
    let summary = restore_summary(&report);
    let validate_only = job.param_bool("validateOnly");
    let now = now_ms();
    let stored = finish(w, job, |j| {
        if j.status != s.validating {
            return Ok(()); // canceled meanwhile
        }
        j.work = None;
        j.results
            .insert("validationResults".into(), results.clone());
        j.results.insert(
            "validationReport".into(),
            json!({
                "problems": report.problems,
                "problemsOmitted": report.problems_omitted,
                "counts": report.counts,
                "package": report.package,
            }),
        );
        j.updated_at = now;
        if !report.valid {
            let schema = results["schema"]["errors"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            let summary = crate::error::invalid_summary(&report, MAX_LISTED_ERRORS);
            j.error = Some(if !schema.is_empty() {
                format!("Schema validation failed: {summary}")
            } else {
                format!("Business validation failed: {summary}")
            });
            j.error_code = Some("VALIDATION_FAILED".into());
            j.status = s.validation_failed;
            j.completed_at = Some(now);
            j.current_phase = "validation_failed".into();
        } else if let Some(problem) = &profile_problem {
            j.error = Some(format!("Profile validation failed: {problem}"));
            j.error_code = Some("PROFILE_NOT_EMPTY".into());
            j.status = s.validation_failed;
            j.completed_at = Some(now);
            j.current_phase = "validation_failed".into();
        } else if validate_only {
            j.status = s.validation_passed;
            j.progress = 100;
            j.current_phase = "validation_complete".into();
            j.results.insert("summary".into(), summary.clone());
            j.completed_at = Some(now);
        } else {
            j.status = s.awaiting;
            j.progress = 40;
            j.current_phase = "awaiting_user_confirmation".into();
            j.results.insert("summary".into(), summary.clone());
        }
        Ok(())
    })?;
    Ok(match stored {
        Some(j) if j.status == s.awaiting || j.status == s.validation_passed => "validated",
        Some(j) if j.status == s.validation_failed => "invalid",
        _ => "abandoned",
    })
}

fn run_restore(
    w: &Worker<'_>,
    job: &Job,
    progress: &JobProgress<'_>,
) -> Result<Outcome, EngineError> {
    let s = statuses(job.job_type);
    // (A restore that committed before the process stopped was completed by `run`.)
    if !begin(w, job, s.processing, "Starting restore...", 45)? {
        finish(w, job, |j| {
            if j.status == s.processing {
                j.status = s.canceled_or_expired;
                j.work = None;
                j.completed_at = Some(now_ms());
                j.current_phase = "canceled".into();
                j.error = Some("Canceled by user".into());
                j.error_code = Some("CANCELED".into());
            }
            Ok(())
        })?;
        return Ok("canceled");
    }
    let staging = match stage_package(w, job, progress) {
        Ok(f) => f,
        Err(e) => {
            return finish_failed(
                w,
                job,
                &format!(
                    "the uploaded package cannot be read: {e}; nothing was restored, the profile is as it was"
                ),
                e.code().unwrap_or("PACKAGE_UNREADABLE"),
            );
        }
    };
    let options = RestoreOptions {
        validate_only: false,
        batch_id: Some(job.job_id.clone()),
        job_id: Some(job.job_id.clone()),
    };
    let result = restore(w.engine, &job.user_id, staging.path(), &options, progress);
    drop(staging);
    let now = now_ms();
    match result {
        Ok(report) => {
            let results = restore_results_from_counts(
                &report.restored,
                report.files_restored,
                report.file_bytes,
                report.duration_ms,
            );
            finish(w, job, |j| {
                j.status = s.completed;
                j.work = None;
                j.progress = 100;
                j.current_phase = "completed".into();
                j.completed_at = Some(now);
                j.cancel_requested = false;
                j.error = None;
                j.error_code = None;
                j.results.insert("restoreResults".into(), results.clone());
                j.updated_at = now;
                Ok(())
            })?;
            Ok("completed")
        }
        Err(EngineError::Cancelled) if !progress.cancel_requested() => requeue(job),
        Err(EngineError::Cancelled) => {
            if let Some(outcome) = complete_if_committed(w, job)? {
                return Ok(outcome);
            }
            finish(w, job, |j| {
                j.status = s.canceled_or_expired;
                j.work = None;
                j.completed_at = Some(now);
                j.current_phase = "canceled".into();
                j.error = Some("Canceled by user; nothing was restored".into());
                j.error_code = Some("CANCELED".into());
                j.updated_at = now;
                Ok(())
            })?;
            Ok("canceled")
        }
        Err(e) => {
            let code = e.code().unwrap_or(match &e {
                EngineError::ProfileNotEmpty { .. } => "PROFILE_NOT_EMPTY",
                EngineError::InvalidPackage(_) | EngineError::Package(_) => "VALIDATION_FAILED",
                _ => "RESTORE_FAILED",
            });
            let message = format!("{e}; nothing was restored, the profile is as it was");
            finish_failed(w, job, &message, code)
        }
    }
}

/// Restore results in HouseF3's shape (`{accounts: {created, errors}}`, …) plus the design's
/// flat counts.
pub fn restore_results_from_counts(
    c: &fzip_model::EntityCounts,
    files: u64,
    file_bytes: u64,
    ms: u64,
) -> Value {
    let entry = |n: u64| json!({ "created": n, "errors": [] });
    json!({
        "accounts": entry(c.accounts),
        "categories": entry(c.categories),
        "file_maps": entry(c.file_maps),
        "transaction_files": entry(c.transaction_files),
        "transactions": entry(c.transactions),
        "analytics": entry(c.analytics),
        "files_restored": files,
        "file_bytes": file_bytes,
        "accounts_restored": c.accounts,
        "transactions_restored": c.transactions,
        "categories_restored": c.categories,
        "file_maps_restored": c.file_maps,
        "transaction_files_restored": c.transaction_files,
        // HouseF3's schema has this as text; the number is `processingTimeSeconds`.
        "total_processing_time": format!("{:.1}s", ms as f64 / 1000.0),
        "processingTimeSeconds": ms as f64 / 1000.0,
        "warnings": [],
    })
}

/// The merge strategy an import job asked for (fail_on_conflict when it named none).
fn merge_strategy(job: &Job) -> Result<MergeStrategy, String> {
    match job.param_str("mergeStrategy") {
        None => Ok(MergeStrategy::FailOnConflict),
        Some(m) => MergeStrategy::parse(m).ok_or_else(|| {
            format!("mergeStrategy {m:?} is not one of fail_on_conflict, overwrite, skip_existing")
        }),
    }
}

/// A package check for an import: references the profile resolves are not errors.
fn resolved_against_profile(report: &VerifyReport) -> VerifyReport {
    let mut r = report.clone();
    for p in &mut r.problems {
        if p.severity == Severity::Error && p.kind == ProblemKind::Reference {
            p.severity = Severity::Warning;
            p.message = format!("{} (the profile has it)", p.message);
            r.errors = r.errors.saturating_sub(1);
            r.warnings += 1;
        }
    }
    r.valid = r.errors == 0;
    r
}

/// The import report as a job stores it (the package check is stored on its own).
fn import_results(report: &ImportReport) -> Value {
    let mut v = serde_json::to_value(report).unwrap_or(Value::Null);
    if let Some(m) = v.as_object_mut() {
        m.remove("validation");
    }
    v
}

/// Validates an import: the package check plus a dry run of the merge against the profile as
/// it is now, so the preview says what the import would create, update, skip and conflict on.
fn run_import_validation(
    w: &Worker<'_>,
    job: &Job,
    progress: &JobProgress<'_>,
) -> Result<Outcome, EngineError> {
    let s = statuses(job.job_type);
    if !begin(w, job, s.validating, "parsing_package", 10)? {
        return Ok("abandoned");
    }
    let merge = match merge_strategy(job) {
        Ok(m) => m,
        Err(message) => {
            return finish_failed(w, job, &message, "INVALID_MERGE_STRATEGY");
        }
    };
    let staging = match stage_package(w, job, progress) {
        Ok(f) => f,
        Err(e) => {
            return finish_failed(
                w,
                job,
                &format!("the uploaded package cannot be read: {e}"),
                e.code().unwrap_or("PACKAGE_UNREADABLE"),
            );
        }
    };
    let options = ImportOptions {
        merge,
        dry_run: true,
        batch_id: None,
        job_id: None,
    };
    let result = import(w.engine, &job.user_id, staging.path(), &options, progress);
    drop(staging);
    let validate_only = job.param_bool("validateOnly");
    let now = now_ms();
    // (status, phase, error, code, validation report, import preview)
    let (report, preview, failure): (VerifyReport, Option<Value>, Option<(String, &str)>) =
        match result {
            Ok(r) => (
                resolved_against_profile(&r.validation),
                Some(import_results(&r)),
                None,
            ),
            Err(EngineError::ImportConflict(r)) => {
                let listed: Vec<String> = r
                    .conflict_list
                    .iter()
                    .take(10)
                    .map(|c| format!("{} {}", c.collection, c.id))
                    .collect();
                let message = format!(
                    "Import conflicts: {} entities of the package already exist in the profile and the merge strategy is fail_on_conflict ({}{}); choose skip_existing or overwrite, or import into another profile",
                    r.conflict_count(),
                    listed.join(", "),
                    if r.conflict_count() > listed.len() as u64 {
                        ", …"
                    } else {
                        ""
                    }
                );
                (
                    resolved_against_profile(&r.validation),
                    Some(import_results(&r)),
                    Some((message, "IMPORT_CONFLICT")),
                )
            }
            Err(EngineError::InvalidPackage(r)) => {
                let message = crate::error::invalid_summary(&r, MAX_LISTED_ERRORS);
                (
                    *r,
                    None,
                    Some((
                        format!("Schema validation failed: {message}"),
                        "VALIDATION_FAILED",
                    )),
                )
            }
            Err(EngineError::Cancelled) if w.shutdown.is_set() || progress.lost_lease() => {
                return requeue(job);
            }
            Err(EngineError::Cancelled) => return Ok("canceled"),
            Err(e) => {
                return finish_failed(
                    w,
                    job,
                    &format!("Validation failed: {e}"),
                    "VALIDATION_FAILED",
                );
            }
        };
    let results = validation_results(&report, None);
    let summary = restore_summary(&report);
    let stored = finish(w, job, |j| {
        if j.status != s.validating {
            return Ok(()); // canceled meanwhile
        }
        j.work = None;
        j.results
            .insert("validationResults".into(), results.clone());
        j.results.insert(
            "validationReport".into(),
            json!({
                "problems": report.problems,
                "problemsOmitted": report.problems_omitted,
                "counts": report.counts,
                "package": report.package,
            }),
        );
        if let Some(p) = &preview {
            j.results.insert("importPreview".into(), p.clone());
        }
        j.updated_at = now;
        if let Some((message, code)) = &failure {
            j.error = Some(message.clone());
            j.error_code = Some((*code).into());
            j.status = s.validation_failed;
            j.completed_at = Some(now);
            j.current_phase = "validation_failed".into();
        } else if validate_only {
            j.status = s.validation_passed;
            j.progress = 100;
            j.current_phase = "validation_complete".into();
            j.results.insert("summary".into(), summary.clone());
            j.completed_at = Some(now);
        } else {
            j.status = s.awaiting;
            j.progress = 40;
            j.current_phase = "awaiting_user_confirmation".into();
            j.results.insert("summary".into(), summary.clone());
        }
        Ok(())
    })?;
    Ok(match stored {
        Some(j) if j.status == s.awaiting || j.status == s.validation_passed => "validated",
        Some(j) if j.status == s.validation_failed => "invalid",
        _ => "abandoned",
    })
}

fn run_import(
    w: &Worker<'_>,
    job: &Job,
    progress: &JobProgress<'_>,
) -> Result<Outcome, EngineError> {
    let s = statuses(job.job_type);
    // (An import that committed before the process stopped was completed by `run`.)
    if !begin(w, job, s.processing, "Starting import...", 45)? {
        finish(w, job, |j| {
            if j.status == s.processing {
                j.status = s.canceled_or_expired;
                j.work = None;
                j.completed_at = Some(now_ms());
                j.current_phase = "canceled".into();
                j.error = Some("Canceled by user".into());
                j.error_code = Some("CANCELED".into());
            }
            Ok(())
        })?;
        return Ok("canceled");
    }
    let merge = match merge_strategy(job) {
        Ok(m) => m,
        Err(message) => {
            return finish_failed(w, job, &message, "INVALID_MERGE_STRATEGY");
        }
    };
    let staging = match stage_package(w, job, progress) {
        Ok(f) => f,
        Err(e) => {
            return finish_failed(
                w,
                job,
                &format!(
                    "the uploaded package cannot be read: {e}; nothing was imported, the profile is as it was"
                ),
                e.code().unwrap_or("PACKAGE_UNREADABLE"),
            );
        }
    };
    let options = ImportOptions {
        merge,
        dry_run: false,
        batch_id: Some(job.job_id.clone()),
        job_id: Some(job.job_id.clone()),
    };
    let result = import(w.engine, &job.user_id, staging.path(), &options, progress);
    drop(staging);
    let now = now_ms();
    match result {
        Ok(report) => {
            let legacy = restore_results_from_counts(
                &report.created,
                report.files_written,
                report.file_bytes,
                report.duration_ms,
            );
            let results = import_results(&report);
            finish(w, job, |j| {
                j.status = s.completed;
                j.work = None;
                j.progress = 100;
                j.current_phase = "completed".into();
                j.completed_at = Some(now);
                j.cancel_requested = false;
                j.error = None;
                j.error_code = None;
                j.results.insert("restoreResults".into(), legacy.clone());
                j.results.insert("importResults".into(), results.clone());
                j.updated_at = now;
                Ok(())
            })?;
            Ok("completed")
        }
        Err(EngineError::Cancelled) if !progress.cancel_requested() => requeue(job),
        Err(EngineError::Cancelled) => {
            if let Some(outcome) = complete_if_committed(w, job)? {
                return Ok(outcome);
            }
            finish(w, job, |j| {
                j.status = s.canceled_or_expired;
                j.work = None;
                j.completed_at = Some(now);
                j.current_phase = "canceled".into();
                j.error = Some("Canceled by user; nothing was imported".into());
                j.error_code = Some("CANCELED".into());
                j.updated_at = now;
                Ok(())
            })?;
            Ok("canceled")
        }
        Err(EngineError::ImportConflict(r)) => {
            let results = import_results(&r);
            finish(w, job, |j| {
                j.status = s.failed;
                j.work = None;
                j.completed_at = Some(now);
                j.current_phase = "failed".into();
                j.error = Some(format!(
                    "Import conflicts: {} entities of the package already exist in the profile (fail_on_conflict); nothing was imported",
                    r.conflict_count()
                ));
                j.error_code = Some("IMPORT_CONFLICT".into());
                j.results.insert("importResults".into(), results.clone());
                j.updated_at = now;
                Ok(())
            })?;
            Ok("failed")
        }
        Err(e) => {
            let code = e.code().unwrap_or(match &e {
                EngineError::InvalidPackage(_) | EngineError::Package(_) => "VALIDATION_FAILED",
                _ => "IMPORT_FAILED",
            });
            let message = format!("{e}; nothing was imported, the profile is as it was");
            finish_failed(w, job, &message, code)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use fzip_store::jobs::JobStatus as S;

    #[test]
    fn sizes_and_days_read_as_housef3_shows_them() {
        assert_eq!(human_size(0), "0 B");
        assert_eq!(human_size(1023), "1023 B");
        assert_eq!(human_size(1536), "1.5 KB");
        assert_eq!(human_size(25 << 20), "25.0 MB");
        assert_eq!(iso_day(1_705_312_500_000).as_deref(), Some("2024-01-15"));
    }

    fn restore_job(status: JobStatus) -> Job {
        let mut j = Job::new("j", "u", JobType::Restore, status, 0);
        j.package_key = Some("uploads/u/j.fzip".into());
        j
    }

    #[test]
    fn uploads_start_validation_only_where_they_should() {
        let mut j = Job::new("j", "u", JobType::Restore, S::RestoreUploaded, 0);
        assert!(begin_validation(&mut j, 1).is_err(), "no package yet");
        j.params = json!({ "autoValidate": true });
        package_uploaded(&mut j, "k", 10, Some("abc"), 1).unwrap();
        assert_eq!(
            (j.status, j.work),
            (S::RestoreValidating, Some(Work::Validate))
        );
        assert!(
            package_uploaded(&mut j, "k", 10, Some("abc"), 2).is_err(),
            "a second upload"
        );
        let mut b = Job::new("b", "u", JobType::Backup, S::BackupInitiated, 0);
        assert!(
            package_uploaded(&mut b, "k", 1, Some("x"), 1).is_err(),
            "backups take no uploads"
        );
    }

    #[test]
    fn start_only_from_awaiting_confirmation() {
        for s in [
            S::RestoreUploaded,
            S::RestoreValidating,
            S::RestoreValidationPassed,
            S::RestoreCompleted,
            S::RestoreFailed,
        ] {
            assert!(start(&mut restore_job(s), None, 1).is_err(), "{s}");
        }
        let mut j = restore_job(S::RestoreAwaitingConfirmation);
        assert!(matches!(
            start(&mut j, Some("2 accounts".into()), 1),
            Err(TransitionError::ProfileNotEmpty(_))
        ));
        start(&mut j, None, 1).unwrap();
        assert_eq!(
            (j.status, j.work),
            (S::RestoreProcessing, Some(Work::Restore))
        );
    }

    #[test]
    fn cancel_rules() {
        for s in [
            S::RestoreCompleted,
            S::RestoreFailed,
            S::RestoreCanceled,
            S::RestoreValidationFailed,
        ] {
            assert!(cancel(&mut restore_job(s), 1).is_err(), "{s} is terminal");
        }
        let mut j = restore_job(S::RestoreAwaitingConfirmation);
        assert_eq!(cancel(&mut j, 1), Ok(CancelOutcome::Canceled));
        assert_eq!(j.status, S::RestoreCanceled);
        assert!(j.completed_at.is_some() && j.work.is_none());
        let mut running = restore_job(S::RestoreProcessing);
        assert_eq!(cancel(&mut running, 1), Ok(CancelOutcome::Requested));
        assert_eq!(
            running.status,
            S::RestoreProcessing,
            "a running restore stops itself"
        );
        assert!(running.cancel_requested);
        let mut backup = Job::new("b", "u", JobType::Backup, S::BackupProcessing, 0);
        assert!(
            cancel(&mut backup, 1).is_err(),
            "cancel is for restores and imports"
        );
    }

    #[test]
    fn retry_only_after_failure() {
        assert!(retry(&mut restore_job(S::RestoreCompleted), 1).is_err());
        let mut j = restore_job(S::RestoreValidationFailed);
        j.error = Some("x".into());
        j.results.insert("validationResults".into(), json!({}));
        retry(&mut j, 1).unwrap();
        assert_eq!(
            (j.status, j.work),
            (S::RestoreValidating, Some(Work::Validate))
        );
        assert!(j.error.is_none() && j.results.is_empty());
        let mut no_package = restore_job(S::RestoreFailed);
        no_package.package_key = None;
        assert!(retry(&mut no_package, 1).is_err());
    }

    #[test]
    fn expiry_marks_backups_expired() {
        let mut b = Job::new("b", "u", JobType::Backup, S::BackupCompleted, 0);
        b.package_key = Some("k".into());
        expire(&mut b, 5);
        assert_eq!(b.status, S::BackupExpired);
        assert!(b.package_key.is_none());
    }

    #[test]
    fn import_statuses_mirror_restore() {
        let s = statuses(JobType::Import);
        assert_eq!(s.awaiting, S::ImportAwaitingConfirmation);
        assert_eq!(s.canceled_or_expired, S::ImportCanceled);
        let s = statuses(JobType::Export);
        assert_eq!(s.completed, S::ExportCompleted);
    }
}
