//! Jobs and the audit trail in their own SQLite file (`jobs.db`).

use std::path::Path;

use fzip_store::jobs::{
    AuditRecord, Job, JobCursor, JobPage, JobStatus, JobStore, JobType, ProgressAck, UserLoad, Work,
};
use fzip_store::{Result, StoreError};
use rusqlite::{OptionalExtension, Row, params, params_from_iter};

use crate::pool::Pool;
use crate::{db_err, ensure_parent};

mod job_migrations {
    refinery::embed_migrations!("migrations/jobs");
}

/// Jobs in one SQLite database file.
#[derive(Debug)]
pub struct SqliteJobStore {
    pool: Pool,
}

const COLUMNS: &str = "job_id, user_id, job_type, status, progress, current_phase, created_at, \
     updated_at, completed_at, expires_at, params, package_key, package_size, package_sha256, \
     uploaded_at, results, error, error_code, work, cancel_requested, attempts, lease_owner, \
     lease_until, idempotency_key, version";

fn corrupt(what: &str, value: &str) -> rusqlite::Error {
    rusqlite::Error::InvalidColumnType(0, format!("{what} {value:?}"), rusqlite::types::Type::Text)
}

fn job_from_row(row: &Row<'_>) -> rusqlite::Result<Job> {
    let job_type: String = row.get(2)?;
    let status: String = row.get(3)?;
    let work: Option<String> = row.get(18)?;
    let params: String = row.get(10)?;
    let results: String = row.get(15)?;
    Ok(Job {
        job_id: row.get(0)?,
        user_id: row.get(1)?,
        job_type: JobType::parse(&job_type).ok_or_else(|| corrupt("job type", &job_type))?,
        status: JobStatus::parse(&status).ok_or_else(|| corrupt("job status", &status))?,
        progress: row.get::<_, i64>(4)?.clamp(0, 100) as u8,
        current_phase: row.get(5)?,
        created_at: row.get(6)?,
        updated_at: row.get(7)?,
        completed_at: row.get(8)?,
        expires_at: row.get(9)?,
        params: serde_json::from_str(&params).map_err(|_| corrupt("params", &params))?,
        package_key: row.get(11)?,
        package_size: row.get::<_, Option<i64>>(12)?.map(|n| n.max(0) as u64),
        package_sha256: row.get(13)?,
        uploaded_at: row.get(14)?,
        results: serde_json::from_str(&results).map_err(|_| corrupt("results", &results))?,
        error: row.get(16)?,
        error_code: row.get(17)?,
        work: match work {
            None => None,
            Some(w) => Some(Work::parse(&w).ok_or_else(|| corrupt("work", &w))?),
        },
        cancel_requested: row.get::<_, i64>(19)? != 0,
        attempts: row.get::<_, i64>(20)?.max(0) as u32,
        lease_owner: row.get(21)?,
        lease_until: row.get(22)?,
        idempotency_key: row.get(23)?,
        version: row.get(24)?,
    })
}

fn json(v: &impl serde::Serialize) -> String {
    serde_json::to_string(v).unwrap_or_else(|_| "{}".into())
}

impl SqliteJobStore {
    /// Opens (creating if needed) the jobs database at `path` and applies pending migrations.
    pub fn open(path: &Path) -> Result<Self> {
        Self::migrate(path)?;
        Ok(SqliteJobStore {
            pool: Pool::new(path, 16),
        })
    }

    /// Applies pending migrations and returns the names of those applied.
    pub fn migrate(path: &Path) -> Result<Vec<String>> {
        ensure_parent(path)?;
        let mut conn = Pool::new(path, 0).open()?;
        let report = job_migrations::migrations::runner()
            .run(&mut conn)
            .map_err(|e| StoreError::Schema(format!("migrating {}: {e}", path.display())))?;
        Ok(report
            .applied_migrations()
            .iter()
            .map(|m| m.to_string())
            .collect())
    }
}

impl JobStore for SqliteJobStore {
    fn create_job(&self, job: &Job) -> Result<Job> {
        let conn = self.pool.get()?;
        let inserted = conn.execute(
            &format!(
                "INSERT INTO jobs ({COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, \
                 ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19, ?20, ?21, ?22, ?23, ?24, ?25)
                 ON CONFLICT (user_id, idempotency_key) WHERE idempotency_key IS NOT NULL DO NOTHING"
            ),
            params![
                job.job_id,
                job.user_id,
                job.job_type.as_str(),
                job.status.as_str(),
                job.progress as i64,
                job.current_phase,
                job.created_at,
                job.updated_at,
                job.completed_at,
                job.expires_at,
                json(&job.params),
                job.package_key,
                job.package_size.map(|n| n as i64),
                job.package_sha256,
                job.uploaded_at,
                json(&job.results),
                job.error,
                job.error_code,
                job.work.map(|w| w.as_str()),
                job.cancel_requested as i64,
                job.attempts as i64,
                job.lease_owner,
                job.lease_until,
                job.idempotency_key,
                job.version,
            ],
        );
        match inserted {
            Ok(1) => Ok(job.clone()),
            Ok(_) => {
                // The idempotency key was used before: hand back that job.
                let key = job.idempotency_key.as_deref().unwrap_or("");
                conn.query_row(
                    &format!(
                        "SELECT {COLUMNS} FROM jobs WHERE user_id = ?1 AND idempotency_key = ?2"
                    ),
                    params![job.user_id, key],
                    job_from_row,
                )
                .map_err(db_err)
            }
            Err(rusqlite::Error::SqliteFailure(e, _))
                if e.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_PRIMARYKEY =>
            {
                Err(StoreError::Duplicate {
                    kind: "job",
                    id: job.job_id.clone(),
                })
            }
            Err(e) => Err(db_err(e)),
        }
    }

    fn get_job(&self, user: &str, job_id: &str) -> Result<Option<Job>> {
        let conn = self.pool.get()?;
        let mut stmt = conn
            .prepare_cached(&format!(
                "SELECT {COLUMNS} FROM jobs WHERE job_id = ?1 AND user_id = ?2"
            ))
            .map_err(db_err)?;
        stmt.query_row(params![job_id, user], job_from_row)
            .optional()
            .map_err(db_err)
    }

    fn job_exists(&self, job_id: &str) -> Result<bool> {
        let conn = self.pool.get()?;
        conn.query_row(
            "SELECT EXISTS (SELECT 1 FROM jobs WHERE job_id = ?1)",
            params![job_id],
            |r| r.get::<_, bool>(0),
        )
        .map_err(db_err)
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
        let conn = self.pool.get()?;
        let type_list = types.iter().map(|_| "?").collect::<Vec<_>>().join(", ");
        let mut args: Vec<rusqlite::types::Value> = vec![user.to_string().into()];
        args.extend(
            types
                .iter()
                .map(|t| rusqlite::types::Value::from(t.as_str().to_string())),
        );
        let total: i64 = conn
            .query_row(
                &format!(
                    "SELECT COUNT(*) FROM jobs WHERE user_id = ? AND job_type IN ({type_list})"
                ),
                params_from_iter(args.iter()),
                |r| r.get(0),
            )
            .map_err(db_err)?;
        let mut sql =
            format!("SELECT {COLUMNS} FROM jobs WHERE user_id = ? AND job_type IN ({type_list})");
        if let Some(c) = cursor {
            sql.push_str(" AND (created_at, job_id) < (?, ?)");
            args.push(c.created_at.into());
            args.push(c.job_id.clone().into());
        }
        sql.push_str(" ORDER BY created_at DESC, job_id DESC LIMIT ? OFFSET ?");
        // One more than asked, to know whether there is a next page.
        args.push(((limit + 1) as i64).into());
        args.push((if cursor.is_some() { 0 } else { offset } as i64).into());
        let mut stmt = conn.prepare(&sql).map_err(db_err)?;
        let mut jobs: Vec<Job> = stmt
            .query_map(params_from_iter(args.iter()), job_from_row)
            .map_err(db_err)?
            .collect::<rusqlite::Result<_>>()
            .map_err(db_err)?;
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
            total: total as u64,
            next,
        })
    }

    fn update_job(&self, job: &Job) -> Result<bool> {
        let conn = self.pool.get()?;
        let n = conn
            .execute(
                "UPDATE jobs SET status = ?3, progress = ?4, current_phase = ?5, updated_at = ?6,
                     completed_at = ?7, expires_at = ?8, params = ?9, package_key = ?10,
                     package_size = ?11, package_sha256 = ?12, uploaded_at = ?13, results = ?14,
                     error = ?15, error_code = ?16, work = ?17, cancel_requested = ?18,
                     attempts = ?19, version = version + 1
                 WHERE job_id = ?1 AND version = ?2",
                params![
                    job.job_id,
                    job.version,
                    job.status.as_str(),
                    job.progress as i64,
                    job.current_phase,
                    job.updated_at,
                    job.completed_at,
                    job.expires_at,
                    json(&job.params),
                    job.package_key,
                    job.package_size.map(|n| n as i64),
                    job.package_sha256,
                    job.uploaded_at,
                    json(&job.results),
                    job.error,
                    job.error_code,
                    job.work.map(|w| w.as_str()),
                    job.cancel_requested as i64,
                    job.attempts as i64,
                ],
            )
            .map_err(db_err)?;
        Ok(n == 1)
    }

    fn delete_job(&self, user: &str, job_id: &str) -> Result<bool> {
        let conn = self.pool.get()?;
        let n = conn
            .execute(
                "DELETE FROM jobs WHERE job_id = ?1 AND user_id = ?2",
                params![job_id, user],
            )
            .map_err(db_err)?;
        Ok(n == 1)
    }

    fn claim_job_fair(
        &self,
        worker: &str,
        now: i64,
        lease_ms: i64,
        max_running_per_user: u32,
    ) -> Result<Option<Job>> {
        let conn = self.pool.get()?;
        // One statement under SQLite's write lock: the count of running jobs and the claim
        // cannot interleave with another claim.
        let mut stmt = conn
            .prepare_cached(&format!(
                "UPDATE jobs SET lease_owner = ?1, lease_until = ?2 + ?3, attempts = attempts + 1,
                     version = version + 1
                 WHERE job_id = (
                     SELECT j.job_id FROM jobs j
                     LEFT JOIN (
                         SELECT user_id, COUNT(*) AS n FROM jobs
                         WHERE work IS NOT NULL AND lease_until IS NOT NULL AND lease_until >= ?2
                         GROUP BY user_id) r ON r.user_id = j.user_id
                     WHERE j.work IS NOT NULL AND (j.lease_until IS NULL OR j.lease_until < ?2)
                       AND COALESCE(r.n, 0) < ?4
                     ORDER BY COALESCE(r.n, 0), j.created_at, j.job_id LIMIT 1)
                 RETURNING {COLUMNS}"
            ))
            .map_err(db_err)?;
        stmt.query_row(
            params![worker, now, lease_ms, i64::from(max_running_per_user)],
            job_from_row,
        )
        .optional()
        .map_err(db_err)
    }

    fn user_load(&self, user: &str, now: i64) -> Result<UserLoad> {
        let conn = self.pool.get()?;
        let mut stmt = conn
            .prepare_cached(
                "SELECT
                     COALESCE(SUM(work IS NOT NULL), 0),
                     COALESCE(SUM(work IS NULL AND package_key IS NULL
                         AND status IN ('restore_uploaded', 'import_uploaded')
                         AND (expires_at IS NULL OR expires_at > ?2)), 0),
                     COALESCE(SUM(CASE WHEN package_key IS NOT NULL
                         THEN MAX(COALESCE(package_size, 0), 0) ELSE 0 END), 0)
                 FROM jobs WHERE user_id = ?1",
            )
            .map_err(db_err)?;
        stmt.query_row(params![user, now], |r| {
            Ok(UserLoad {
                active_jobs: r.get::<_, i64>(0)?.max(0) as u64,
                open_uploads: r.get::<_, i64>(1)?.max(0) as u64,
                staged_bytes: r.get::<_, i64>(2)?.max(0) as u64,
            })
        })
        .map_err(db_err)
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
        let conn = self.pool.get()?;
        let mut stmt = conn
            .prepare_cached(
                "UPDATE jobs SET progress = ?3, current_phase = ?4, updated_at = ?5, lease_until = ?6
                 WHERE job_id = ?1 AND lease_owner = ?2
                 RETURNING cancel_requested",
            )
            .map_err(db_err)?;
        let cancel: Option<i64> = stmt
            .query_row(
                params![job_id, worker, progress as i64, phase, now, lease_until],
                |r| r.get(0),
            )
            .optional()
            .map_err(db_err)?;
        Ok(match cancel {
            Some(c) => ProgressAck {
                cancel_requested: c != 0,
                still_owner: true,
            },
            None => ProgressAck {
                cancel_requested: false,
                still_owner: false,
            },
        })
    }

    fn release_job(&self, job_id: &str, worker: &str) -> Result<()> {
        let conn = self.pool.get()?;
        conn.execute(
            "UPDATE jobs SET lease_owner = NULL, lease_until = NULL WHERE job_id = ?1 AND lease_owner = ?2",
            params![job_id, worker],
        )
        .map_err(db_err)?;
        Ok(())
    }

    fn expiring_jobs(&self, now: i64, limit: u64) -> Result<Vec<Job>> {
        let conn = self.pool.get()?;
        let mut stmt = conn
            .prepare_cached(&format!(
                "SELECT {COLUMNS} FROM jobs
                 WHERE package_key IS NOT NULL AND expires_at IS NOT NULL AND expires_at < ?1
                 ORDER BY expires_at LIMIT ?2"
            ))
            .map_err(db_err)?;
        stmt.query_map(params![now, limit as i64], job_from_row)
            .map_err(db_err)?
            .collect::<rusqlite::Result<_>>()
            .map_err(db_err)
    }

    fn append_audit(&self, r: &AuditRecord) -> Result<()> {
        let conn = self.pool.get()?;
        conn.execute(
            "INSERT INTO audit (at, user_id, action, job_id, outcome, detail, source)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            params![
                r.at, r.user_id, r.action, r.job_id, r.outcome, r.detail, r.source
            ],
        )
        .map_err(db_err)?;
        Ok(())
    }

    fn list_audit(&self, user: Option<&str>, limit: u64) -> Result<Vec<AuditRecord>> {
        let conn = self.pool.get()?;
        let mut stmt = conn
            .prepare_cached(
                "SELECT at, user_id, action, job_id, outcome, detail, source FROM audit
                 WHERE ?1 IS NULL OR user_id = ?1 ORDER BY id DESC LIMIT ?2",
            )
            .map_err(db_err)?;
        stmt.query_map(params![user, limit as i64], |r| {
            Ok(AuditRecord {
                at: r.get(0)?,
                user_id: r.get(1)?,
                action: r.get(2)?,
                job_id: r.get(3)?,
                outcome: r.get(4)?,
                detail: r.get(5)?,
                source: r.get(6)?,
            })
        })
        .map_err(db_err)?
        .collect::<rusqlite::Result<_>>()
        .map_err(db_err)
    }
}
