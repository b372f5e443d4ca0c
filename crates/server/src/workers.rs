//! Workers run jobs off the request path; the sweeper removes expired packages and the
//! staging files of jobs that no live process runs any more.

use std::time::Duration;

use fzip_engine::jobs::{self, Worker};
use fzip_engine::now_ms;
use fzip_store::jobs::{AuditRecord, Job, JobStatus};
use tokio::task::JoinHandle;

use crate::state::AppState;

/// Starts `n` workers.
pub fn spawn(state: &AppState, n: usize) -> Vec<JoinHandle<()>> {
    (0..n.max(1))
        .map(|i| tokio::spawn(worker_loop(state.clone(), i)))
        .collect()
}

/// Metrics and the audit trail of a finished piece of work.
fn record_finish(state: &AppState, job: &Job, outcome: &str, seconds: f64) {
    let t = job.job_type.as_str();
    metrics::counter!("fzip_jobs_total", "type" => t, "outcome" => outcome.to_string())
        .increment(1);
    metrics::histogram!("fzip_job_duration_seconds", "type" => t).record(seconds);
    let work = job.work.map(|w| w.as_str()).unwrap_or("none");
    let record = AuditRecord {
        at: now_ms(),
        user_id: job.user_id.clone(),
        action: format!("{t}.{work}"),
        job_id: Some(job.job_id.clone()),
        outcome: outcome.to_string(),
        detail: None,
        source: Some("worker".into()),
    };
    if let Err(e) = state.jobs.append_audit(&record) {
        tracing::warn!(error = %e, "could not write an audit record");
    }
}

async fn worker_loop(state: AppState, index: usize) {
    let name = format!("{}-w{index}", state.config.worker_name);
    let lease_ms = state.config.lease.as_millis() as i64;
    loop {
        if state.stopping() {
            return;
        }
        let claimed = {
            let (st, name) = (state.clone(), name.clone());
            let per_user = st.config.max_running_per_user();
            tokio::task::spawn_blocking(move || {
                st.jobs.claim_job_fair(&name, now_ms(), lease_ms, per_user)
            })
            .await
        };
        let job = match claimed {
            Ok(Ok(Some(job))) => job,
            Ok(Ok(None)) => {
                // Nothing to do: wait for new work, a timeout (other servers may queue work), or
                // shutdown.
                tokio::select! {
                    _ = state.work_ready.notified() => {}
                    _ = tokio::time::sleep(Duration::from_millis(500)) => {}
                }
                continue;
            }
            Ok(Err(e)) => {
                tracing::warn!(error = %e, worker = %name, "claiming a job failed");
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
            Err(e) => {
                tracing::error!(error = %e, worker = %name, "the claim task failed");
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        let (user, id) = (job.user_id.clone(), job.job_id.clone());
        let job_id = id.clone();
        metrics::gauge!("fzip_jobs_running").increment(1.0);
        let st = state.clone();
        let worker_name = name.clone();
        let result = tokio::task::spawn_blocking(move || {
            let tmp = st.config.data_dir.join("tmp");
            if let Err(e) = std::fs::create_dir_all(&tmp) {
                tracing::error!(error = %e, "cannot create the staging folder");
            }
            let worker = Worker {
                engine: &st.engine,
                jobs: st.jobs.as_ref(),
                id: &worker_name,
                tmp_dir: &tmp,
                package_ttl_ms: st.config.package_ttl.as_millis() as i64,
                lease_ms,
                shutdown: &st.abort_work,
                max_attempts: st.config.max_attempts.max(1),
            };
            let started = std::time::Instant::now();
            let claimed = job.clone();
            let r = jobs::run(&worker, job);
            if let Ok(outcome) = &r
                && *outcome != "requeued"
            {
                record_finish(&st, &claimed, outcome, started.elapsed().as_secs_f64());
            }
            // A package found invalid is not kept.
            if claimed.work == Some(fzip_store::jobs::Work::Validate)
                && let Err(e) = crate::files::discard_invalid_upload(&st, &user, &id)
            {
                tracing::warn!(error = %e, job_id = %id, "could not delete an invalid upload");
            }
            // Package sizes and entity counts, for metrics.
            if let Ok(Some(done)) = st.jobs.get_job(&user, &id) {
                record_results(&done);
            }
            r
        })
        .await;
        metrics::gauge!("fzip_jobs_running").decrement(1.0);
        match result {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => tracing::error!(error = %e, %job_id, "job ended with an error"),
            Err(e) => tracing::error!(error = %e, %job_id, "job task failed"),
        }
    }
}

fn record_results(job: &Job) {
    let t = job.job_type.as_str();
    let done = matches!(
        job.status,
        JobStatus::BackupCompleted
            | JobStatus::ExportCompleted
            | JobStatus::RestoreCompleted
            | JobStatus::ImportCompleted
    );
    if !done {
        return;
    }
    if let Some(size) = job.package_size {
        metrics::histogram!("fzip_package_bytes", "type" => t).record(size as f64);
    }
    let counts = job
        .results
        .get("dataSummary")
        .or_else(|| job.results.get("restoreResults"));
    if let Some(c) = counts {
        let n: u64 = [
            "accounts",
            "transactions",
            "categories",
            "fileMaps",
            "transactionFiles",
            "analytics",
        ]
        .iter()
        .filter_map(|k| {
            c.get(k).and_then(|v| {
                v.as_u64()
                    .or_else(|| v.get("created").and_then(|x| x.as_u64()))
            })
        })
        .sum::<u64>()
            + ["file_maps", "transaction_files"]
                .iter()
                .filter_map(|k| {
                    c.get(k)
                        .and_then(|v| v.get("created"))
                        .and_then(|x| x.as_u64())
                })
                .sum::<u64>();
        metrics::counter!("fzip_entities_processed_total", "type" => t).increment(n);
    }
}

/// How often staging files of dead jobs are looked for (it is one look at a folder).
const STAGING_SWEEP: Duration = Duration::from_secs(5);

/// Removes the staging files in `{data-dir}/tmp` that no live job holds (those of a server that
/// was killed while it worked); returns how many. Files of jobs running in this server or in
/// another one sharing the data directory are locked by their process and kept.
pub fn sweep_staging(state: &AppState) -> u64 {
    let tmp = state.config.data_dir.join("tmp");
    match jobs::remove_dead_staging(&tmp) {
        Ok(n) => {
            if n > 0 {
                tracing::info!(removed = n, dir = %tmp.display(), "removed staging files of interrupted jobs");
            }
            n
        }
        Err(e) => {
            tracing::warn!(error = %e, dir = %tmp.display(), "cleaning the staging folder failed");
            0
        }
    }
}

/// Removes packages past their expiry every `interval`, and dead staging files at start and
/// every few seconds.
pub fn spawn_sweeper(state: &AppState) -> JoinHandle<()> {
    let state = state.clone();
    tokio::spawn(async move {
        let mut last_packages = tokio::time::Instant::now();
        loop {
            let st = state.clone();
            let _ = tokio::task::spawn_blocking(move || sweep_staging(&st)).await;
            tokio::time::sleep(STAGING_SWEEP.min(state.config.sweep_interval)).await;
            if state.stopping() {
                return;
            }
            if last_packages.elapsed() < state.config.sweep_interval {
                continue;
            }
            last_packages = tokio::time::Instant::now();
            let st = state.clone();
            match tokio::task::spawn_blocking(move || {
                st.flush_refusals(now_ms());
                sweep(&st)
            })
            .await
            {
                Ok(Ok(n)) if n > 0 => tracing::info!(expired = n, "removed expired packages"),
                Ok(Ok(_)) => {}
                Ok(Err(e)) => tracing::warn!(error = %e, "sweeping expired packages failed"),
                Err(e) => tracing::warn!(error = %e, "the sweeper task failed"),
            }
        }
    })
}

/// One pass of the sweeper; returns how many packages were removed.
pub fn sweep(state: &AppState) -> Result<u64, fzip_store::StoreError> {
    let now = now_ms();
    let mut removed = 0;
    for job in state.jobs.expiring_jobs(now, 100)? {
        if job.work.is_some() {
            continue; // in use
        }
        let Some(key) = job.package_key.clone() else {
            continue;
        };
        // A restore or import that committed is completed, never expired (its commit marker
        // decides).
        if let Err(e) = jobs::complete_committed(&state.engine, state.jobs.as_ref(), &job) {
            tracing::warn!(error = %e, job_id = %job.job_id, "could not check a job's commit marker");
            continue;
        }
        state.engine.blobs.delete(&key)?;
        let s = jobs::statuses(job.job_type);
        jobs::modify::<(), fzip_store::StoreError>(
            state.jobs.as_ref(),
            &job.user_id,
            &job.job_id,
            |j| {
                let awaiting = j.status == s.awaiting || j.status == s.initial;
                jobs::expire(j, now);
                if awaiting && !j.job_type.produces_package() {
                    j.status = s.canceled_or_expired;
                    j.error = Some("the uploaded package expired before the restore was confirmed; upload it again".into());
                    j.error_code = Some("EXPIRED".into());
                    j.completed_at = Some(now);
                }
                Ok(())
            },
        )?;
        removed += 1;
    }
    Ok(removed)
}
