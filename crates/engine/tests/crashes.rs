//! A job's commit marker decides its outcome: a restore or import that committed before its
//! process died is completed on every path (resumed, given up on after too many attempts, or
//! failed), and one that did not is failed saying what happened; a running restore's blobs are
//! safe from `gc` whatever the age setting. On SQLite + folder and PostgreSQL + S3 (the job
//! table is SQLite's in both: the engine sees only the `JobStore` interface).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::path::Path;
use std::sync::Arc;

use common::Env;
use fzip_engine::jobs::{self, MAX_ATTEMPTS, Worker};
use fzip_engine::{CancelFlag, DemoOptions, NoProgress, Progress, RestoreOptions, demo_profile};
use fzip_store::StoreError;
use fzip_store::jobs::{Job, JobStatus, JobStore, JobType, Work};
use fzip_store_sqlite::SqliteJobStore;

fn transition(e: jobs::TransitionError) -> StoreError {
    StoreError::Database(e.to_string())
}

fn demo(env: &Env, user: &str, transactions: u64, files: u64) {
    demo_profile(
        &env.engine,
        user,
        &DemoOptions {
            transactions,
            files,
            seed: 5,
        },
        &NoProgress,
    )
    .unwrap();
}

/// A restore job for `user` whose package (a backup of `from`) is uploaded and confirmed.
fn confirmed_restore(env: &Env, jobs: &dyn JobStore, from: &str, user: &str, id: &str) {
    let package = env.backup(from, &format!("{id}.fzip"));
    let key = jobs::upload_key(user, id);
    let (size, _) = env
        .engine
        .blobs
        .put_reader(&key, std::fs::File::open(&package).unwrap())
        .unwrap();
    let mut job = Job::new(id, user, JobType::Restore, JobStatus::RestoreUploaded, 1);
    jobs.create_job(&job).unwrap();
    jobs::modify::<(), StoreError>(jobs, user, id, |j| {
        jobs::package_uploaded(j, &key, size, None, 2).map_err(transition)?;
        j.status = JobStatus::RestoreAwaitingConfirmation;
        j.work = None;
        jobs::start(j, None, 3).map_err(transition)
    })
    .unwrap();
    job = jobs.get_job(user, id).unwrap().unwrap();
    assert_eq!(
        (job.status, job.work),
        (JobStatus::RestoreProcessing, Some(Work::Restore))
    );
}

/// Claims the job `n` times, each after the previous lease lapsed (a server died holding it),
/// and returns the last claim.
fn claim_times(jobs: &dyn JobStore, n: u32) -> Job {
    let mut last = None;
    for i in 0..n {
        last = jobs
            .claim_job("w-dead", 1_000 + i as i64 * 10_000, 1_000)
            .unwrap();
    }
    last.unwrap()
}

fn run(env: &Env, jobs: &dyn JobStore, job: Job, tmp: &Path) -> &'static str {
    let shutdown = CancelFlag::default();
    let worker = Worker {
        engine: &env.engine,
        jobs,
        id: "w-live",
        tmp_dir: tmp,
        package_ttl_ms: 3_600_000,
        lease_ms: 30_000,
        shutdown: &shutdown,
        max_attempts: MAX_ATTEMPTS,
    };
    jobs::run(&worker, job).unwrap()
}

fn a_restore_that_committed_on_its_last_attempt_is_completed(env: Env) {
    let jobs = SqliteJobStore::open(&env.path("jobs.db")).unwrap();
    demo(&env, "alice", 120, 2);
    confirmed_restore(&env, &jobs, "alice", "bob", "job-1");
    // Its last allowed attempt committed (with the job's marker) and the process died before
    // recording it: the restore ran, the job row still says processing.
    let package = env.path("job-1.fzip");
    fzip_engine::restore(
        &env.engine,
        "bob",
        &package,
        &RestoreOptions {
            validate_only: false,
            batch_id: Some("job-1".into()),
            job_id: Some("job-1".into()),
        },
        &NoProgress,
    )
    .unwrap();
    let job = claim_times(&jobs, MAX_ATTEMPTS + 1);
    assert_eq!(job.attempts, MAX_ATTEMPTS + 1);
    assert_eq!(run(&env, &jobs, job, env.dir.path()), "completed");
    let job = jobs.get_job("bob", "job-1").unwrap().unwrap();
    assert_eq!(job.status, JobStatus::RestoreCompleted, "{job:?}");
    assert!(job.error.is_none() && job.work.is_none(), "{job:?}");
    assert_eq!(
        job.results["restoreResults"]["transactions_restored"], 120,
        "{job:?}"
    );
}

fn a_restore_interrupted_too_often_fails_saying_what_happened(env: Env) {
    let jobs = SqliteJobStore::open(&env.path("jobs.db")).unwrap();
    demo(&env, "alice", 50, 1);
    confirmed_restore(&env, &jobs, "alice", "bob", "job-2");
    let job = claim_times(&jobs, MAX_ATTEMPTS + 1);
    assert_eq!(run(&env, &jobs, job, env.dir.path()), "failed");
    let job = jobs.get_job("bob", "job-2").unwrap().unwrap();
    assert_eq!(job.status, JobStatus::RestoreFailed);
    assert_eq!(job.error_code.as_deref(), Some("INTERRUPTED"));
    let message = job.error.unwrap();
    assert!(
        message.contains("restore was started 3 times") && message.contains("nothing was restored"),
        "{message}"
    );
    assert!(env.engine.store.summary("bob").unwrap().is_empty());
}

fn the_validation_does_not_count_as_a_restore_attempt(env: Env) {
    let jobs = SqliteJobStore::open(&env.path("jobs.db")).unwrap();
    demo(&env, "alice", 30, 1);
    let mut job = Job::new("v", "bob", JobType::Restore, JobStatus::RestoreUploaded, 1);
    job.package_key = Some("k".into());
    jobs.create_job(&job).unwrap();
    jobs::modify::<(), StoreError>(&jobs, "bob", "v", |j| {
        jobs::begin_validation(j, 2).map_err(transition)
    })
    .unwrap();
    assert_eq!(claim_times(&jobs, 2).attempts, 2, "two validation attempts");
    jobs::modify::<(), StoreError>(&jobs, "bob", "v", |j| {
        j.status = JobStatus::RestoreAwaitingConfirmation;
        j.work = None;
        jobs::start(j, None, 3).map_err(transition)
    })
    .unwrap();
    let claimed = jobs.claim_job("w", 1_000_000, 1_000).unwrap().unwrap();
    assert_eq!(claimed.attempts, 1, "the restore's first attempt");
}

/// Counts progress reports and runs `gc(0)` at the moment statement files were written but
/// not yet committed.
struct GcMidway<'a> {
    engine: &'a fzip_engine::Engine,
    ran: std::sync::atomic::AtomicBool,
}

impl Progress for GcMidway<'_> {
    fn phase(&self, name: &str, _total: u64) {
        if name.starts_with("restoring_transactions")
            && !self.ran.swap(true, std::sync::atomic::Ordering::SeqCst)
        {
            let r = fzip_engine::gc(self.engine, 0).unwrap();
            assert_eq!(r.deleted, 0, "gc deleted a running restore's files: {r:?}");
            assert!(r.kept_in_use >= 3, "{r:?}");
        }
    }
    fn advance(&self, _n: u64) {}
    fn is_cancelled(&self) -> bool {
        false
    }
}

fn gc_spares_a_running_restore_whatever_the_age(env: Env) {
    demo(&env, "alice", 200, 3);
    let package = env.backup("alice", "a.fzip");
    let progress = GcMidway {
        engine: &env.engine,
        ran: Default::default(),
    };
    fzip_engine::restore(
        &env.engine,
        "bob",
        &package,
        &RestoreOptions::default(),
        &progress,
    )
    .unwrap();
    assert!(progress.ran.load(std::sync::atomic::Ordering::SeqCst));
    assert_eq!(env.file_hashes("bob"), env.file_hashes("alice"));
    // Once it committed, nothing it wrote is garbage, and its lease is gone.
    let r = fzip_engine::gc(&env.engine, 0).unwrap();
    assert_eq!((r.deleted, r.kept_in_use), (0, 0), "{r:?}");
    assert!(env.engine.blobs.list("leases").unwrap().is_empty());
}

common::on_every_backend!(
    a_restore_that_committed_on_its_last_attempt_is_completed,
    a_restore_interrupted_too_often_fails_saying_what_happened,
    the_validation_does_not_count_as_a_restore_attempt,
    gc_spares_a_running_restore_whatever_the_age,
);

/// An S3 endpoint that accepts connections and never answers.
fn hanging_endpoint() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for conn in listener.incoming() {
            held.push(conn); // kept open, never answered
        }
    });
    format!("http://{addr}")
}

#[test]
fn a_hanging_blob_store_fails_within_its_timeout_and_says_so_while_waiting() {
    let blobs = fzip_store::BlobStore::s3_with_timeout(
        &fzip_store::S3Options {
            bucket: "b".into(),
            prefix: String::new(),
            endpoint: Some(hanging_endpoint()),
            region: Some("us-east-1".into()),
            access_key_id: Some("k".into()),
            secret_access_key: Some("s".into()),
        },
        std::time::Duration::from_secs(7),
    )
    .unwrap();
    let cell = fzip_store::blob::WaitCell::default();
    let seen = Arc::new(std::sync::Mutex::new(None));
    let (watch, seen2) = (cell.clone(), seen.clone());
    let worker = std::thread::spawn(move || {
        let _reporting = fzip_store::blob::report_waits(watch);
        blobs.head("users/alice/files/b/f")
    });
    // While the operation waits, it says what it waits for.
    while !worker.is_finished() {
        if let Some(w) = cell.lock().unwrap().clone() {
            *seen2.lock().unwrap() = Some(w);
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let err = worker.join().unwrap().unwrap_err().to_string();
    assert!(
        err.contains("did not answer within 7 s") && err.contains("FZIP_BLOB_TIMEOUT_SECS"),
        "{err}"
    );
    let wait = seen.lock().unwrap().clone().expect("no wait was reported");
    assert!(wait.what.contains("users/alice/files/b/f"), "{wait:?}");
    assert_eq!(wait.limit, std::time::Duration::from_secs(7));
    assert!(cell.lock().unwrap().is_none(), "the wait was not cleared");
}

#[test]
fn half_written_local_objects_are_listed_and_deleted() {
    let dir = tempfile::tempdir().unwrap();
    let blobs = fzip_store::BlobStore::local(dir.path()).unwrap();
    let key = fzip_store::BlobStore::file_key("a b", "batch", "f1");
    blobs.put_bytes(&key, b"whole").unwrap();
    let on_disk = std::fs::read_dir(dir.path().join("users"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path()
        .join("files/batch");
    std::fs::write(on_disk.join("f2#1"), b"half").unwrap();
    let prefix = fzip_store::BlobStore::user_prefix("a b");
    assert_eq!(
        blobs.list(&prefix).unwrap().len(),
        1,
        "the store's listing skips it"
    );
    let partial = blobs.list_partial(&prefix).unwrap();
    assert_eq!(partial.len(), 1, "{partial:?}");
    assert!(
        partial[0]
            .key
            .starts_with(&format!("{prefix}/files/batch/")),
        "{partial:?}"
    );
    blobs.delete_partial(&partial[0].key).unwrap();
    assert!(blobs.list_partial(&prefix).unwrap().is_empty());
    assert!(
        blobs.delete_partial(&key).is_err(),
        "only half-written objects"
    );
}
