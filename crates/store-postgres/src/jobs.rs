//! Jobs and the audit trail in PostgreSQL, shared by every server process: workers claim jobs
//! with `FOR UPDATE SKIP LOCKED`, so two servers never take the same job, and a job whose
//! lease lapsed (its server died) is taken over by the next claim.

use fzip_store::jobs::{
    AuditRecord, Job, JobCursor, JobPage, JobStatus, JobStore, JobType, ProgressAck, UserLoad, Work,
};
use fzip_store::{Result, StoreError};
use postgres::error::SqlState;
use postgres::types::ToSql;

use crate::pool::{PgTarget, Pool};
use crate::text::encode;
use crate::{get_text, migrate, pg_err};

/// Jobs in a PostgreSQL database (the one holding the profiles, or another).
#[derive(Debug)]
pub struct PgJobStore {
    pool: Pool,
}

const COLUMNS: &str = "job_id, user_id, job_type, status, progress, current_phase, created_at, \
     updated_at, completed_at, expires_at, params, package_key, package_size, package_sha256, \
     uploaded_at, results, error, error_code, work, cancel_requested, attempts, lease_owner, \
     lease_until, idempotency_key, version";

fn corrupt(what: &str, value: &str) -> StoreError {
    StoreError::Corrupt(format!("jobs: {what} {value:?}"))
}

fn req(row: &postgres::Row, i: usize, what: &str) -> Result<String> {
    get_text(row, i)?.ok_or_else(|| corrupt(what, "NULL"))
}

fn job_from_row(row: &postgres::Row) -> Result<Job> {
    let job_type = req(row, 2, "job type")?;
    let status = req(row, 3, "status")?;
    let params = req(row, 10, "params")?;
    let results = req(row, 15, "results")?;
    let int = |i: usize| -> Result<Option<i64>> { row.try_get(i).map_err(pg_err) };
    Ok(Job {
        job_id: req(row, 0, "job id")?,
        user_id: req(row, 1, "user id")?,
        job_type: JobType::parse(&job_type).ok_or_else(|| corrupt("job type", &job_type))?,
        status: JobStatus::parse(&status).ok_or_else(|| corrupt("job status", &status))?,
        progress: row.try_get::<_, i32>(4).map_err(pg_err)?.clamp(0, 100) as u8,
        current_phase: req(row, 5, "phase")?,
        created_at: row.try_get(6).map_err(pg_err)?,
        updated_at: row.try_get(7).map_err(pg_err)?,
        completed_at: int(8)?,
        expires_at: int(9)?,
        params: serde_json::from_str(&params).map_err(|_| corrupt("params", &params))?,
        package_key: get_text(row, 11)?,
        package_size: int(12)?.map(|n| n.max(0) as u64),
        package_sha256: get_text(row, 13)?,
        uploaded_at: int(14)?,
        results: serde_json::from_str(&results).map_err(|_| corrupt("results", &results))?,
        error: get_text(row, 16)?,
        error_code: get_text(row, 17)?,
        work: match get_text(row, 18)? {
            None => None,
            Some(w) => Some(Work::parse(&w).ok_or_else(|| corrupt("work", &w))?),
        },
        cancel_requested: row.try_get(19).map_err(pg_err)?,
        attempts: row.try_get::<_, i32>(20).map_err(pg_err)?.max(0) as u32,
        lease_owner: get_text(row, 21)?,
        lease_until: int(22)?,
        idempotency_key: get_text(row, 23)?,
        version: row.try_get(24).map_err(pg_err)?,
    })
}

fn json(v: &impl serde::Serialize) -> String {
    serde_json::to_string(v).unwrap_or_else(|_| "{}".into())
}

fn t(s: &str) -> String {
    encode(s).into_owned()
}

fn ot(s: &Option<String>) -> Option<String> {
    s.as_deref().map(t)
}

impl PgJobStore {
    /// Connects to the database at `url` and checks that its schema is current.
    pub fn open(url: &str) -> Result<Self> {
        let target = PgTarget::parse(url)?;
        let pool = Pool::new(target, 16);
        {
            let mut conn = pool.get()?;
            migrate::check(&pool.target, &mut conn.client)?;
        }
        Ok(PgJobStore { pool })
    }

    fn query(&self, sql: &str, params: &[&(dyn ToSql + Sync)]) -> Result<Vec<Job>> {
        let mut conn = self.pool.get()?;
        let statement = conn.prepared(sql)?;
        let rows = conn.client.query(&statement, params).map_err(pg_err)?;
        rows.iter().map(job_from_row).collect()
    }

    fn execute(&self, sql: &str, params: &[&(dyn ToSql + Sync)]) -> Result<u64> {
        let mut conn = self.pool.get()?;
        let statement = conn.prepared(sql)?;
        conn.client.execute(&statement, params).map_err(pg_err)
    }
}

impl JobStore for PgJobStore {
    fn create_job(&self, job: &Job) -> Result<Job> {
        let mut conn = self.pool.get()?;
        let sql = format!(
            "INSERT INTO jobs ({COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, \
             $12, $13, $14, $15, $16, $17, $18, $19, $20, $21, $22, $23, $24, $25)
             ON CONFLICT (user_id, idempotency_key) WHERE idempotency_key IS NOT NULL DO NOTHING"
        );
        let statement = conn.prepared(&sql)?;
        let inserted = conn.client.execute(
            &statement,
            &[
                &t(&job.job_id),
                &t(&job.user_id),
                &job.job_type.as_str(),
                &job.status.as_str(),
                &i32::from(job.progress),
                &t(&job.current_phase),
                &job.created_at,
                &job.updated_at,
                &job.completed_at,
                &job.expires_at,
                &t(&json(&job.params)),
                &ot(&job.package_key),
                &job.package_size.map(|n| n as i64),
                &ot(&job.package_sha256),
                &job.uploaded_at,
                &t(&json(&job.results)),
                &ot(&job.error),
                &ot(&job.error_code),
                &job.work.map(|w| w.as_str()),
                &job.cancel_requested,
                &(job.attempts.min(i32::MAX as u32) as i32),
                &ot(&job.lease_owner),
                &job.lease_until,
                &ot(&job.idempotency_key),
                &job.version,
            ],
        );
        match inserted {
            Ok(1) => Ok(job.clone()),
            Ok(_) => {
                // The idempotency key was used before: hand back that job.
                let key = job.idempotency_key.as_deref().unwrap_or("");
                drop(conn);
                self.query(
                    &format!(
                        "SELECT {COLUMNS} FROM jobs WHERE user_id = $1 AND idempotency_key = $2"
                    ),
                    &[&t(&job.user_id), &t(key)],
                )?
                .into_iter()
                .next()
                .ok_or_else(|| StoreError::Database("an idempotent job vanished".into()))
            }
            Err(e) if e.code() == Some(&SqlState::UNIQUE_VIOLATION) => Err(StoreError::Duplicate {
                kind: "job",
                id: job.job_id.clone(),
            }),
            Err(e) => Err(pg_err(e)),
        }
    }

    fn get_job(&self, user: &str, job_id: &str) -> Result<Option<Job>> {
        Ok(self
            .query(
                &format!("SELECT {COLUMNS} FROM jobs WHERE job_id = $1 AND user_id = $2"),
                &[&t(job_id), &t(user)],
            )?
            .into_iter()
            .next())
    }

    fn job_exists(&self, job_id: &str) -> Result<bool> {
        let mut conn = self.pool.get()?;
        let row = conn
            .client
            .query_one(
                "SELECT EXISTS (SELECT 1 FROM jobs WHERE job_id = $1)",
                &[&t(job_id)],
            )
            .map_err(pg_err)?;
        Ok(row.get(0))
    }

    fn list_jobs(
        &self,
        user: &str,
        types: &[JobType],
        cursor: Option<&JobCursor>,
        offset: u64,
        limit: u64,
    ) -> Result<JobPage> {
        if types.is_empty() {
            return Ok(JobPage::default());
        }
        let names: Vec<&str> = types.iter().map(|t| t.as_str()).collect();
        let user = t(user);
        let total: i64 = {
            let mut conn = self.pool.get()?;
            let statement = conn
                .prepared("SELECT COUNT(*) FROM jobs WHERE user_id = $1 AND job_type = ANY($2)")?;
            conn.client
                .query_one(&statement, &[&user, &names])
                .map_err(pg_err)?
                .try_get(0)
                .map_err(pg_err)?
        };
        // One more than asked, to know whether there is a next page.
        let take = (limit.saturating_add(1)).min(i64::MAX as u64) as i64;
        let mut jobs = match cursor {
            Some(c) => self.query(
                &format!(
                    "SELECT {COLUMNS} FROM jobs WHERE user_id = $1 AND job_type = ANY($2)
                     AND (created_at, job_id) < ($3, $4)
                     ORDER BY created_at DESC, job_id DESC LIMIT $5"
                ),
                &[&user, &names, &c.created_at, &t(&c.job_id), &take],
            )?,
            None => self.query(
                &format!(
                    "SELECT {COLUMNS} FROM jobs WHERE user_id = $1 AND job_type = ANY($2)
                     ORDER BY created_at DESC, job_id DESC LIMIT $3 OFFSET $4"
                ),
                &[&user, &names, &take, &(offset.min(i64::MAX as u64) as i64)],
            )?,
        };
        let next = if jobs.len() as u64 > limit {
            jobs.truncate(limit as usize);
            jobs.last().map(|j| JobCursor {
                created_at: j.created_at,
                job_id: j.job_id.clone(),
            })
        } else {
            None
        };
        Ok(JobPage {
            jobs,
            total: total.max(0) as u64,
            next,
        })
    }

    fn update_job(&self, job: &Job) -> Result<bool> {
        let n = self.execute(
            "UPDATE jobs SET status = $3, progress = $4, current_phase = $5, updated_at = $6,
                 completed_at = $7, expires_at = $8, params = $9, package_key = $10,
                 package_size = $11, package_sha256 = $12, uploaded_at = $13, results = $14,
                 error = $15, error_code = $16, work = $17, cancel_requested = $18,
                 attempts = $19, version = version + 1
             WHERE job_id = $1 AND version = $2",
            &[
                &t(&job.job_id),
                &job.version,
                &job.status.as_str(),
                &i32::from(job.progress),
                &t(&job.current_phase),
                &job.updated_at,
                &job.completed_at,
                &job.expires_at,
                &t(&json(&job.params)),
                &ot(&job.package_key),
                &job.package_size.map(|n| n as i64),
                &ot(&job.package_sha256),
                &job.uploaded_at,
                &t(&json(&job.results)),
                &ot(&job.error),
                &ot(&job.error_code),
                &job.work.map(|w| w.as_str()),
                &job.cancel_requested,
                &(job.attempts.min(i32::MAX as u32) as i32),
            ],
        )?;
        Ok(n == 1)
    }

    fn delete_job(&self, user: &str, job_id: &str) -> Result<bool> {
        let n = self.execute(
            "DELETE FROM jobs WHERE job_id = $1 AND user_id = $2",
            &[&t(job_id), &t(user)],
        )?;
        Ok(n == 1)
    }

    fn claim_job_fair(
        &self,
        worker: &str,
        now: i64,
        lease_ms: i64,
        max_running_per_user: u32,
    ) -> Result<Option<Job>> {
        let mut conn = self.pool.get()?;
        conn.begin("BEGIN")?;
        // Claims take turns, across every server: the claim below then reads every claim
        // committed before it (READ COMMITTED takes its snapshot per statement), so two claims
        // at once cannot both see a user under the limit and both take one of their jobs.
        // `SKIP LOCKED` still passes over jobs a request is updating.
        let lock =
            conn.prepared("SELECT pg_advisory_xact_lock(hashtextextended('fzip:claim', 0))")?;
        conn.client.execute(&lock, &[]).map_err(pg_err)?;
        let statement = conn.prepared(&format!(
            "UPDATE jobs SET lease_owner = $1, lease_until = $2 + $3,
                 attempts = attempts + 1, version = version + 1
             WHERE job_id = (
                 SELECT j.job_id FROM jobs j
                 LEFT JOIN (
                     SELECT user_id, COUNT(*) AS n FROM jobs
                     WHERE work IS NOT NULL AND lease_until IS NOT NULL AND lease_until >= $2
                     GROUP BY user_id) r ON r.user_id = j.user_id
                 WHERE j.work IS NOT NULL AND (j.lease_until IS NULL OR j.lease_until < $2)
                   AND COALESCE(r.n, 0) < $4
                 ORDER BY COALESCE(r.n, 0), j.created_at, j.job_id LIMIT 1
                 FOR UPDATE OF j SKIP LOCKED)
             RETURNING {COLUMNS}"
        ))?;
        let rows = conn
            .client
            .query(
                &statement,
                &[
                    &t(worker),
                    &now,
                    &lease_ms,
                    &i64::from(max_running_per_user),
                ],
            )
            .map_err(pg_err)?;
        let job = rows.first().map(job_from_row).transpose()?;
        conn.commit()?;
        Ok(job)
    }

    fn user_load(&self, user: &str, now: i64) -> Result<UserLoad> {
        let mut conn = self.pool.get()?;
        let statement = conn.prepared(
            "SELECT
                 COUNT(*) FILTER (WHERE work IS NOT NULL),
                 COUNT(*) FILTER (WHERE work IS NULL AND package_key IS NULL
                     AND status IN ('restore_uploaded', 'import_uploaded')
                     AND (expires_at IS NULL OR expires_at > $2)),
                 COALESCE(SUM(GREATEST(COALESCE(package_size, 0), 0))
                     FILTER (WHERE package_key IS NOT NULL), 0)::BIGINT
             FROM jobs WHERE user_id = $1",
        )?;
        let row = conn
            .client
            .query_one(&statement, &[&t(user), &now])
            .map_err(pg_err)?;
        let n = |i: usize| -> Result<u64> {
            Ok(row.try_get::<_, i64>(i).map_err(pg_err)?.max(0) as u64)
        };
        Ok(UserLoad {
            active_jobs: n(0)?,
            open_uploads: n(1)?,
            staged_bytes: n(2)?,
        })
    }

    fn report_progress(
        &self,
        job_id: &str,
        worker: &str,
        progress: u8,
        phase: &str,
        now: i64,
        lease_until: i64,
    ) -> Result<ProgressAck> {
        let mut conn = self.pool.get()?;
        let statement = conn.prepared(
            "UPDATE jobs SET progress = $3, current_phase = $4, updated_at = $5, lease_until = $6
             WHERE job_id = $1 AND lease_owner = $2
             RETURNING cancel_requested",
        )?;
        let rows = conn
            .client
            .query(
                &statement,
                &[
                    &t(job_id),
                    &t(worker),
                    &i32::from(progress),
                    &t(phase),
                    &now,
                    &lease_until,
                ],
            )
            .map_err(pg_err)?;
        Ok(match rows.first() {
            Some(row) => ProgressAck {
                cancel_requested: row.try_get(0).map_err(pg_err)?,
                still_owner: true,
            },
            None => ProgressAck {
                cancel_requested: false,
                still_owner: false,
            },
        })
    }

    fn release_job(&self, job_id: &str, worker: &str) -> Result<()> {
        self.execute(
            "UPDATE jobs SET lease_owner = NULL, lease_until = NULL
             WHERE job_id = $1 AND lease_owner = $2",
            &[&t(job_id), &t(worker)],
        )?;
        Ok(())
    }

    fn expiring_jobs(&self, now: i64, limit: u64) -> Result<Vec<Job>> {
        self.query(
            &format!(
                "SELECT {COLUMNS} FROM jobs
                 WHERE package_key IS NOT NULL AND expires_at IS NOT NULL AND expires_at < $1
                 ORDER BY expires_at LIMIT $2"
            ),
            &[&now, &(limit.min(i64::MAX as u64) as i64)],
        )
    }

    fn append_audit(&self, r: &AuditRecord) -> Result<()> {
        self.execute(
            "INSERT INTO audit (at, user_id, action, job_id, outcome, detail, source)
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
            &[
                &r.at,
                &t(&r.user_id),
                &t(&r.action),
                &ot(&r.job_id),
                &t(&r.outcome),
                &ot(&r.detail),
                &ot(&r.source),
            ],
        )?;
        Ok(())
    }

    fn list_audit(&self, user: Option<&str>, limit: u64) -> Result<Vec<AuditRecord>> {
        let mut conn = self.pool.get()?;
        let statement = conn.prepared(
            "SELECT at, user_id, action, job_id, outcome, detail, source FROM audit
             WHERE $1::TEXT IS NULL OR user_id = $1 ORDER BY id DESC LIMIT $2",
        )?;
        let rows = conn
            .client
            .query(
                &statement,
                &[&user.map(t), &(limit.min(i64::MAX as u64) as i64)],
            )
            .map_err(pg_err)?;
        rows.iter()
            .map(|r| {
                Ok(AuditRecord {
                    at: r.try_get(0).map_err(pg_err)?,
                    user_id: req(r, 1, "audit user")?,
                    action: req(r, 2, "audit action")?,
                    job_id: get_text(r, 3)?,
                    outcome: req(r, 4, "audit outcome")?,
                    detail: get_text(r, 5)?,
                    source: get_text(r, 6)?,
                })
            })
            .collect()
    }
}
