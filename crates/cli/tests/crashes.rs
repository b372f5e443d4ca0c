//! Crashes and garbage collection against real `fzip serve` processes, on SQLite + folder and
//! on PostgreSQL + S3:
//!
//! - a restore whose server is killed twice (at random points, and right after the commit of its
//!   last allowed attempt) ends with a status that matches the profile: completed and whole, or
//!   failed and empty; and no staging file is left behind;
//! - `fzip gc --min-age-hours 0`, looping while restores run, deletes nothing they need;
//! - half-written blobs and staging files of killed writers are removed.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use fzip_store::ProfileStore;
use fzip_store::jobs::{JobStatus, JobStore};
use reqwest::StatusCode;
use reqwest::blocking::Client;
use serde_json::{Value, json};

mod support;

use support::{Env, Server};

fn client() -> Client {
    Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(60))
        .build()
        .unwrap()
}

fn json_of(r: reqwest::blocking::Response) -> (StatusCode, Value) {
    let status = r.status();
    let text = r.text().unwrap();
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

/// The stores the servers use, opened by the test itself, to look at jobs and commit markers
/// while no server is running (or at the very moment one is killed).
struct Stores {
    profiles: Arc<dyn ProfileStore>,
    jobs: Arc<dyn JobStore>,
}

fn stores(env: &Env) -> Stores {
    match env
        .vars
        .iter()
        .find(|(k, _)| k == "FZIP_DATABASE_URL")
        .map(|(_, v)| v.clone())
    {
        Some(url) => Stores {
            profiles: Arc::new(fzip_store_postgres::PgStore::open(&url).unwrap()),
            jobs: Arc::new(fzip_store_postgres::PgJobStore::open(&url).unwrap()),
        },
        None => {
            std::fs::create_dir_all(env.data()).unwrap();
            Stores {
                profiles: Arc::new(
                    fzip_store_sqlite::SqliteStore::open(&env.data().join("fzip.db")).unwrap(),
                ),
                jobs: Arc::new(
                    fzip_store_sqlite::SqliteJobStore::open(&env.data().join("jobs.db")).unwrap(),
                ),
            }
        }
    }
}

/// A small random source (xorshift), seeded from the clock and printed, so a failing run can
/// be repeated with `FZIP_CRASH_SEED`.
struct Rng(u64);

impl Rng {
    fn new() -> Self {
        let seed = std::env::var("FZIP_CRASH_SEED")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| {
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .unwrap()
                    .as_nanos() as u64
                    | 1
            });
        eprintln!("FZIP_CRASH_SEED={seed}");
        Rng(seed)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n.max(1)
    }
}

/// A user's view of a server.
struct Api {
    base: String,
    http: Client,
    token: String,
}

impl Api {
    fn new(server: &Server, token: String) -> Self {
        Api {
            base: server.base.clone(),
            http: client(),
            token,
        }
    }

    fn get(&self, path: &str) -> (StatusCode, Value) {
        json_of(
            self.http
                .get(format!("{}{path}", self.base))
                .bearer_auth(&self.token)
                .send()
                .unwrap(),
        )
    }

    fn post(&self, path: &str, body: Value) -> (StatusCode, Value) {
        json_of(
            self.http
                .post(format!("{}{path}", self.base))
                .bearer_auth(&self.token)
                .json(&body)
                .send()
                .unwrap(),
        )
    }

    /// Polls a restore's status until it is one of `until` (or 120 s pass).
    fn wait_restore(&self, id: &str, until: &[&str]) -> Value {
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            let (code, v) = self.get(&format!("/fzip/restore/{id}/status"));
            assert_eq!(code, StatusCode::OK, "{v}");
            if until.iter().any(|s| v["status"] == *s) {
                return v;
            }
            assert!(Instant::now() < deadline, "timed out waiting: {v}");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Uploads a package (a form POST, or a presigned PUT on S3) and returns the restore id.
    fn upload(&self, package: &Path) -> String {
        let (code, v) = self.post("/fzip/restore/upload-url", json!({}));
        assert_eq!(code, StatusCode::ACCEPTED, "{v}");
        let id = v["jobId"].as_str().unwrap().to_string();
        if v["method"] == "PUT" {
            let r = client()
                .put(v["url"].as_str().unwrap())
                .header("content-type", "application/zip")
                .body(std::fs::read(package).unwrap())
                .send()
                .unwrap();
            assert!(r.status().is_success(), "{}", r.text().unwrap_or_default());
            return id;
        }
        let mut form = reqwest::blocking::multipart::Form::new();
        for (k, val) in v["fields"].as_object().unwrap() {
            form = form.text(k.clone(), val.as_str().unwrap().to_string());
        }
        form = form.file("file", package).unwrap();
        let r = client()
            .post(v["url"].as_str().unwrap())
            .multipart(form)
            .send()
            .unwrap();
        assert_eq!(r.status(), StatusCode::NO_CONTENT);
        id
    }

    /// Uploads, waits for the check, confirms; returns the restore id.
    fn start_restore(&self, package: &Path) -> String {
        let id = self.upload(package);
        let v = self.wait_restore(
            &id,
            &["restore_awaiting_confirmation", "restore_validation_failed"],
        );
        assert_eq!(v["status"], "restore_awaiting_confirmation", "{v}");
        let (code, v) = self.post(&format!("/fzip/restore/{id}/start"), json!({}));
        assert_eq!(code, StatusCode::ACCEPTED, "{v}");
        id
    }
}

/// A demo profile for `user` and its package.
fn package_of(env: &Env, user: &str, transactions: u32, files: u32) -> PathBuf {
    env.cli_ok(&[
        "-q",
        "demo-profile",
        "--user",
        user,
        "--transactions",
        &transactions.to_string(),
        "--files",
        &files.to_string(),
    ]);
    let package = env.path(&format!("{user}.fzip"));
    env.cli_ok(&[
        "-q",
        "backup",
        "--user",
        user,
        "-o",
        package.to_str().unwrap(),
    ]);
    package
}

/// The package's entity counts (as `fzip inspect --json` reports them).
fn counts_of(env: &Env, package: &Path) -> Value {
    let v: Value =
        serde_json::from_str(&env.cli_ok(&["--json", "inspect", package.to_str().unwrap()]))
            .unwrap();
    v["counts"].clone()
}

/// Staging files the servers left in `{data-dir}/tmp`.
fn staging_files(env: &Env) -> Vec<String> {
    match std::fs::read_dir(env.data().join("tmp")) {
        Ok(entries) => entries
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect(),
        Err(_) => Vec::new(),
    }
}

/// Statement files under `users/` in blob storage, half-written ones (`KEY#N`) included.
fn blob_files(root: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut pending = vec![root.join("users")];
    while let Some(dir) = pending.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for e in entries {
            let e = e.unwrap();
            if e.file_type().unwrap().is_dir() {
                pending.push(e.path());
            } else {
                out.push(e.path().strip_prefix(root).unwrap().display().to_string());
            }
        }
    }
    out.sort();
    out
}

/// Servers for these tests: leases of 1 s (a killed server's job is taken over quickly) and
/// two attempts per piece of work, so the second start of a restore is its last.
fn serve(env: &Env) -> Server {
    env.serve_on(
        "127.0.0.1:0",
        &["--lease-secs", "1", "--max-attempts", "2", "--workers", "2"],
        &[],
        &env.data(),
    )
}

/// Waits until the job is held by a worker of `server` (its attempt started there).
fn wait_claimed_by(stores: &Stores, user: &str, id: &str, server: &Server) {
    let owner = format!("fzip-{}-", server.child.id());
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let job = stores.jobs.get_job(user, id).unwrap().unwrap();
        if job.work.is_none()
            || job
                .lease_owner
                .as_deref()
                .is_some_and(|o| o.starts_with(&owner))
        {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "the job was never picked up: {job:?}"
        );
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// Where the second kill of a trial lands.
#[derive(Clone, Copy, Debug)]
enum Kill {
    /// After a random delay.
    Random,
    /// The moment the restore's commit marker is visible (its transaction committed), before
    /// the worker can record the job as completed.
    AfterCommit,
}

/// Kills `server` after a random delay below `max_ms`, or right after the job commits.
fn kill(
    server: Server,
    how: Kill,
    max_ms: u64,
    rng: &mut Rng,
    stores: &Stores,
    user: &str,
    id: &str,
) -> bool {
    match how {
        Kill::Random => {
            std::thread::sleep(Duration::from_millis(rng.below(max_ms)));
            drop(server);
            false
        }
        Kill::AfterCommit => {
            let deadline = Instant::now() + Duration::from_secs(60);
            loop {
                if stores.profiles.job_committed(user, id).unwrap() {
                    drop(server);
                    break;
                }
                let job = stores.jobs.get_job(user, id).unwrap().unwrap();
                if job.work.is_none() {
                    // Finished (or failed) before a commit was seen.
                    drop(server);
                    return false;
                }
                assert!(
                    Instant::now() < deadline,
                    "the restore never committed: {job:?}"
                );
            }
            // Killed after its commit: did it get to record the job as completed?
            let job = stores.jobs.get_job(user, id).unwrap().unwrap();
            job.status == JobStatus::RestoreProcessing
        }
    }
}

fn killed_twice(env: Env, label: &str) {
    const TRIALS: usize = 20;
    let mut rng = Rng::new();
    let stores = stores(&env);
    let package = package_of(&env, "source", 400, 3);
    let counts = counts_of(&env, &package);
    // How long one restore takes here, to spread the kills over it.
    let server = serve(&env);
    let api = Api::new(&server, env.token("calibration"));
    let started = Instant::now();
    let id = api.start_restore(&package);
    let v = api.wait_restore(&id, &["restore_completed", "restore_failed"]);
    assert_eq!(v["status"], "restore_completed", "{v}");
    let restore_ms = (started.elapsed().as_millis() as u64).max(50);
    drop(server);

    let (mut completed, mut failed, mut commit_hits) = (0, 0, 0);
    for trial in 0..TRIALS {
        let user = format!("t{trial}");
        let token = env.token(&user);
        let server = serve(&env);
        let id = Api::new(&server, token.clone()).start_restore(&package);
        // First kill: at a random point of the first attempt.
        wait_claimed_by(&stores, &user, &id, &server);
        kill(
            server,
            Kill::Random,
            restore_ms,
            &mut rng,
            &stores,
            &user,
            &id,
        );
        // Second kill, on the last allowed attempt: at random, or just after its commit.
        let server = serve(&env);
        wait_claimed_by(&stores, &user, &id, &server);
        let how = if trial % 2 == 0 {
            Kill::AfterCommit
        } else {
            Kill::Random
        };
        if kill(server, how, restore_ms, &mut rng, &stores, &user, &id) {
            commit_hits += 1;
        }
        // The next server settles the job.
        let server = serve(&env);
        let api = Api::new(&server, token);
        let v = api.wait_restore(&id, &["restore_completed", "restore_failed"]);
        let summary = env.summary(&user);
        let committed = stores.profiles.job_committed(&user, &id).unwrap();
        match v["status"].as_str() {
            Some("restore_completed") => {
                completed += 1;
                assert!(committed, "trial {trial}: completed without a commit: {v}");
                // (Analytics are recomputed by the restore, not copied.)
                for (k, n) in counts.as_object().unwrap() {
                    if k != "analytics" {
                        assert_eq!(&summary[k], n, "trial {trial}: {k} of {summary}");
                    }
                }
            }
            Some("restore_failed") => {
                failed += 1;
                assert!(
                    !committed,
                    "trial {trial}: failed although it committed: {v}"
                );
                assert_eq!(
                    summary["empty"], true,
                    "trial {trial}: failed but not empty: {summary}"
                );
                assert_eq!(v["errorCode"], "INTERRUPTED", "{v}");
                let message = v["error"].as_str().unwrap();
                assert!(
                    message.contains("started 2 times") && message.contains("nothing was restored"),
                    "{message}"
                );
            }
            other => panic!("trial {trial}: {other:?}: {v}"),
        }
        // No staging file is left once the server has looked (at start, then every few
        // seconds; a file of a killed server is removed once it is 2 s old).
        let deadline = Instant::now() + Duration::from_secs(30);
        while !staging_files(&env).is_empty() {
            assert!(
                Instant::now() < deadline,
                "trial {trial}: staging files left: {:?}",
                staging_files(&env)
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        drop(server);
    }
    eprintln!(
        "{label}: {TRIALS} trials killed twice: {completed} completed and whole, {failed} failed and empty; {commit_hits} of {} second kills landed between the commit and the job record",
        TRIALS / 2
    );
    assert!(
        commit_hits > 0,
        "no kill landed just after a commit; the trials did not test that case"
    );
}

#[test]
fn a_restore_killed_twice_ends_as_its_profile_is_sqlite() {
    killed_twice(Env::new(), "sqlite+folder");
}

#[test]
fn a_restore_killed_twice_ends_as_its_profile_is_postgres_s3() {
    if let Some(env) = Env::postgres_s3("crash") {
        killed_twice(env, "postgres+s3");
    }
}

fn gc_during_restores(env: Env, label: &str) {
    const RESTORES: usize = 10;
    let package = package_of(&env, "source", 3_000, 12);
    let server = env.serve_on("127.0.0.1:0", &["--workers", "2"], &[], &env.data());
    let stop = Arc::new(AtomicBool::new(false));
    let (runs, deleted) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    // `fzip gc --min-age-hours 0` in a loop while the restores run.
    let collector = {
        let (stop, runs, deleted) = (stop.clone(), runs.clone(), deleted.clone());
        let data = env.data();
        let vars = env.vars.clone();
        std::thread::spawn(move || {
            while !stop.load(Ordering::SeqCst) {
                let out = std::process::Command::new(support::FZIP)
                    .env("FZIP_DATA_DIR", &data)
                    .envs(vars.iter().cloned())
                    .args(["--json", "gc", "--min-age-hours", "0"])
                    .output()
                    .unwrap();
                assert!(
                    out.status.success(),
                    "{}",
                    String::from_utf8_lossy(&out.stderr)
                );
                let r: Value = serde_json::from_slice(&out.stdout).unwrap();
                runs.fetch_add(1, Ordering::SeqCst);
                deleted.fetch_add(r["deleted"].as_u64().unwrap(), Ordering::SeqCst);
            }
        })
    };
    let mut jobs = Vec::new();
    for i in 0..RESTORES {
        let user = format!("r{i}");
        let api = Api::new(&server, env.token(&user));
        let id = api.start_restore(&package);
        jobs.push((user, api, id));
    }
    let runs_before_end;
    {
        for (user, api, id) in &jobs {
            let v = api.wait_restore(id, &["restore_completed", "restore_failed"]);
            assert_eq!(v["status"], "restore_completed", "{user}: {v}");
        }
        runs_before_end = runs.load(Ordering::SeqCst);
        stop.store(true, Ordering::SeqCst);
    }
    collector.join().unwrap();
    // Every restored profile is the package's profile, statement files included (a backup
    // reads every one of them and fails on a missing one).
    for (user, _, _) in &jobs {
        let again = env.path(&format!("{user}-again.fzip"));
        env.cli_ok(&[
            "-q",
            "backup",
            "--user",
            user,
            "-o",
            again.to_str().unwrap(),
        ]);
        env.cli_ok(&["diff", package.to_str().unwrap(), again.to_str().unwrap()]);
        let files = env.summary(user)["filesWithContent"].as_u64().unwrap();
        assert_eq!(files, 12, "{user}");
    }
    eprintln!(
        "{label}: {RESTORES} restores with `gc --min-age-hours 0` looping: {runs_before_end} gc runs during them, {} blobs deleted (none needed)",
        deleted.load(Ordering::SeqCst)
    );
    assert!(runs_before_end >= 2, "gc hardly ran during the restores");
    drop(server);
}

#[test]
fn gc_looping_during_restores_deletes_nothing_they_need_sqlite() {
    gc_during_restores(Env::new(), "sqlite+folder");
}

#[test]
fn gc_looping_during_restores_deletes_nothing_they_need_postgres_s3() {
    if let Some(env) = Env::postgres_s3("gc") {
        gc_during_restores(env, "postgres+s3");
    }
}

#[test]
fn gc_and_profile_clear_remove_half_written_blobs_and_servers_remove_dead_staging_files() {
    let env = Env::new();
    package_of(&env, "alice", 50, 2);
    let files = blob_files(env.blobs());
    assert_eq!(files.len(), 2, "{files:?}");
    // What a writer killed midway leaves: the folder store's `KEY#N`, in alice's batch and in
    // one of a restore that never committed.
    let half = env.blobs().join(format!("{}#1", files[0]));
    std::fs::write(&half, b"half a statement").unwrap();
    let dead_batch = env.blobs().join("users/alice/files/dead-job");
    std::fs::create_dir_all(&dead_batch).unwrap();
    std::fs::write(dead_batch.join("f1#3"), b"half").unwrap();
    let (code, out) = env.cli(&["--json", "gc", "--min-age-hours", "0"]);
    assert_eq!(code, 0, "{out}");
    let r: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(
        (r["deleted"].as_u64(), r["deletedPartial"].as_u64()),
        (Some(2), Some(2)),
        "{r}"
    );
    assert_eq!(
        blob_files(env.blobs()),
        files,
        "gc removed a statement file in use"
    );
    // profile clear removes them too.
    std::fs::write(&half, b"half a statement").unwrap();
    env.cli_ok(&["profile", "clear", "--user", "alice", "--yes"]);
    assert!(
        blob_files(env.blobs()).is_empty(),
        "{:?}",
        blob_files(env.blobs())
    );

    // Staging files of a killed server are removed by the next one; a live one's are not.
    let tmp = env.data().join("tmp");
    std::fs::create_dir_all(&tmp).unwrap();
    std::fs::write(tmp.join("0f3c.abc123.staging"), b"dead").unwrap();
    std::fs::write(tmp.join(".tmpQ1w2e3"), b"dead, named by an older version").unwrap();
    let live = tmp.join("live.xyz.staging");
    let held = std::fs::File::create(&live).unwrap();
    held.lock().unwrap();
    std::thread::sleep(Duration::from_millis(2_100)); // older than the grace of a new file
    let server = serve(&env);
    let deadline = Instant::now() + Duration::from_secs(30);
    while staging_files(&env).len() != 1 {
        assert!(Instant::now() < deadline, "{:?}", staging_files(&env));
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(staging_files(&env), vec!["live.xyz.staging".to_string()]);
    drop(held);
    drop(server);
}
