//! What every request and worker shares.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use fzip_engine::{CancelFlag, Engine};
use fzip_store::jobs::{AuditRecord, JobStore, JobType};
use metrics_exporter_prometheus::PrometheusHandle;
use tokio::sync::Notify;

use crate::auth::Authenticator;
use crate::config::ServerConfig;
use crate::error::ApiError;
use crate::signing::UrlSigner;

/// Shared state.
#[derive(Clone)]
pub struct AppState(pub Arc<Inner>);

pub struct Inner {
    pub engine: Engine,
    pub jobs: Arc<dyn JobStore>,
    pub auth: Authenticator,
    pub signer: UrlSigner,
    pub config: ServerConfig,
    /// Woken when a job gets work.
    pub work_ready: Notify,
    pub metrics: PrometheusHandle,
    /// Set on shutdown: running jobs stop and go back to the queue.
    pub abort_work: Arc<CancelFlag>,
    /// Set on shutdown: workers claim nothing new.
    pub stopping: AtomicBool,
    /// Per-user limits kept in this process.
    pub limiter: crate::limits::Limiter,
    /// Refused tokens and requests for other users' jobs, counted for the audit trail.
    pub refusals: crate::refusals::Refusals,
}

impl std::ops::Deref for AppState {
    type Target = Inner;
    fn deref(&self) -> &Inner {
        &self.0
    }
}

impl AppState {
    /// Runs blocking store work off the async threads.
    pub async fn blocking<T, F>(&self, f: F) -> Result<T, ApiError>
    where
        T: Send + 'static,
        F: FnOnce(&AppState) -> Result<T, ApiError> + Send + 'static,
    {
        let state = self.clone();
        tokio::task::spawn_blocking(move || f(&state)).await?
    }

    /// Records an audit entry; a failure to record is logged, not fatal to the request.
    pub fn audit(
        &self,
        user: &str,
        action: &str,
        job_id: Option<&str>,
        outcome: &str,
        detail: Option<String>,
    ) {
        let record = AuditRecord {
            at: fzip_engine::now_ms(),
            user_id: user.to_string(),
            action: action.to_string(),
            job_id: job_id.map(str::to_string),
            outcome: outcome.to_string(),
            detail,
            source: None,
        };
        let jobs = self.jobs.clone();
        tokio::task::spawn_blocking(move || {
            if let Err(e) = jobs.append_audit(&record) {
                tracing::warn!(error = %e, action = %record.action, "could not write an audit record");
            }
        });
    }

    /// Counts a refused request for the audit trail (summarised: see [`crate::refusals`]).
    pub fn refused(&self, action: &'static str, user: &str, reason: &str) {
        let done = self
            .refusals
            .note(fzip_engine::now_ms(), action, user, reason);
        if !done.is_empty() {
            let jobs = self.jobs.clone();
            tokio::task::spawn_blocking(move || write_all(jobs.as_ref(), &done));
        }
    }

    /// Writes the summaries of refused requests whose minute is over at `now` (blocking).
    pub fn flush_refusals(&self, now: i64) {
        write_all(self.jobs.as_ref(), &self.refusals.flush(now));
    }

    pub fn stopping(&self) -> bool {
        self.stopping.load(Ordering::SeqCst)
    }
}

fn write_all(jobs: &dyn JobStore, records: &[AuditRecord]) {
    for record in records {
        if let Err(e) = jobs.append_audit(record) {
            tracing::warn!(error = %e, action = %record.action, "could not write an audit record");
        }
    }
}

/// The API families: the later design's backup/restore and the earlier design's export/import.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Family {
    Backup,
    Export,
    Restore,
    Import,
}

impl Family {
    pub fn job_type(self) -> JobType {
        match self {
            Family::Backup => JobType::Backup,
            Family::Export => JobType::Export,
            Family::Restore => JobType::Restore,
            Family::Import => JobType::Import,
        }
    }

    /// `backupId`, `exportId`, `restoreId`, `importId`.
    pub fn id_key(self) -> &'static str {
        match self {
            Family::Backup => "backupId",
            Family::Export => "exportId",
            Family::Restore => "restoreId",
            Family::Import => "importId",
        }
    }

    /// The key of the list in list responses.
    pub fn list_key(self) -> &'static str {
        match self {
            Family::Backup => "backups",
            Family::Export => "exports",
            Family::Restore => "restoreJobs",
            Family::Import => "importJobs",
        }
    }

    /// The path segment under `/fzip`.
    pub fn segment(self) -> &'static str {
        match self {
            Family::Backup => "backup",
            Family::Export => "export",
            Family::Restore => "restore",
            Family::Import => "import",
        }
    }

    /// `backup`, `restore`, … for messages.
    pub fn noun(self) -> &'static str {
        self.segment()
    }
}

/// The authenticated user (the token's `sub`).
pub struct User(pub String);

impl FromRequestParts<AppState> for User {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let header = parts
            .headers
            .get(axum::http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok());
        let user = match state.auth.authenticate(header).await {
            Ok(user) => user,
            Err(e) => {
                state.refused(crate::refusals::AUTH_REFUSED, "-", &e.detail);
                return Err(e);
            }
        };
        tracing::Span::current().record("user", user.as_str());
        Ok(User(user))
    }
}
