//! The job routes of both design documents: backup/restore and the earlier export/import.
//!
//! Long work never runs inside a request: requests create or move jobs (through the state machine
//! in [`fzip_engine::jobs`]) and workers do the work. Another user's job behaves exactly like a
//! missing one, and so does a job of another family (a restore id on a backup route).

use std::collections::HashMap;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use fzip_engine::jobs::{self, CancelOutcome, statuses};
use fzip_engine::now_ms;
use fzip_store::Presign;
use fzip_store::jobs::{Job, JobCursor, Work};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use utoipa::ToSchema;

use crate::error::{ApiError, ApiResult};
use crate::signing::Grant;
use crate::state::{AppState, Family};
use crate::views::{self, DownloadLink};

/// A JSON body whose errors are problem documents; an empty body reads as the default.
pub struct JsonBody<T>(pub T);

impl<T: DeserializeOwned + Default, S: Send + Sync> FromRequest<S> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        let bytes = Bytes::from_request(req, state)
            .await
            .map_err(|e| ApiError::bad_request(format!("cannot read the request body: {e}")))?;
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(JsonBody(T::default()));
        }
        serde_json::from_slice(&bytes).map(JsonBody).map_err(|e| {
            ApiError::bad_request(format!(
                "the request body is not valid JSON for this route: {e}"
            ))
        })
    }
}

/// `POST /fzip/backup` (and `/fzip/export`).
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(default, rename_all = "camelCase")]
pub struct BackupRequest {
    #[serde(alias = "include_analytics")]
    pub include_analytics: bool,
    /// `complete` (default), `accounts_only`, `transactions_only`, `categories_only`, `selective`.
    #[serde(alias = "backup_type", alias = "exportType", alias = "export_type")]
    pub backup_type: Option<String>,
    pub description: Option<String>,
    #[serde(alias = "account_ids")]
    pub account_ids: Option<Vec<String>>,
    /// Earliest transaction date, ms.
    #[serde(alias = "date_range_start")]
    pub date_range_start: Option<i64>,
    /// Latest transaction date, ms.
    #[serde(alias = "date_range_end")]
    pub date_range_end: Option<i64>,
    #[serde(alias = "category_ids")]
    pub category_ids: Option<Vec<String>>,
    /// Finish even when a statement file cannot be read (it is named in the manifest).
    #[serde(alias = "continue_on_missing_files")]
    pub continue_on_missing_files: bool,
    /// Back up even a profile that holds nothing (otherwise the job fails with
    /// `PROFILE_EMPTY`: an empty profile is usually the wrong user).
    #[serde(alias = "allow_empty")]
    pub allow_empty: bool,
}

/// `POST /fzip/restore`, `/fzip/restore/upload-url` (and the import equivalents).
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(default, rename_all = "camelCase")]
pub struct RestoreRequest {
    /// Stop after validation.
    #[serde(alias = "validate_only")]
    pub validate_only: bool,
    /// Imports only: `fail_on_conflict` (default), `overwrite`, `skip_existing`.
    #[serde(alias = "merge_strategy")]
    pub merge_strategy: Option<String>,
}

const BACKUP_TYPES: &[&str] = &[
    "complete",
    "accounts_only",
    "transactions_only",
    "categories_only",
    "selective",
    "date_range",
];
const MERGE_STRATEGIES: &[&str] = &["fail_on_conflict", "overwrite", "skip_existing"];

/// The longest `description` a backup takes, in characters.
pub const MAX_DESCRIPTION_CHARS: usize = 1_000;

/// A request's `Idempotency-Key`, scoped to the route it came with (`scope`): the same key
/// sent to another route starts another job. (The store scopes keys to the user.)
fn idempotency_key(headers: &HeaderMap, scope: &str) -> ApiResult<Option<String>> {
    match headers.get("idempotency-key") {
        None => Ok(None),
        Some(v) => {
            let key = v
                .to_str()
                .ok()
                .map(str::trim)
                .filter(|k| !k.is_empty() && k.len() <= 200)
                .ok_or_else(|| {
                    ApiError::bad_request("Idempotency-Key must be 1–200 visible characters")
                })?;
            Ok(Some(format!("{scope}:{key}")))
        }
    }
}

/// A 202 with `Location` pointing at the job's status.
fn accepted(family: Family, job: &Job, body: Value) -> Response {
    let location = format!("/fzip/{}/{}/status", family.segment(), job.job_id);
    let mut r = (StatusCode::ACCEPTED, axum::Json(body)).into_response();
    if let Ok(v) = HeaderValue::from_str(&location) {
        r.headers_mut().insert(header::LOCATION, v);
    }
    r
}

/// A user's job of a family, or 404.
fn load(state: &AppState, user: &str, family: Family, id: &str) -> ApiResult<Job> {
    match state.jobs.get_job(user, id)? {
        Some(j) if j.job_type == family.job_type() => Ok(j),
        found => {
            if found.is_none() {
                note_foreign(state, user, id);
            }
            Err(ApiError::not_found(format!(
                "FZIP {} job {id} not found",
                family.noun()
            )))
        }
    }
}

/// A user asked for a job id that is not theirs: when it is another user's job, the audit trail
/// counts it (the answer stays the 404 of a missing job).
fn note_foreign(state: &AppState, user: &str, id: &str) {
    match state.jobs.job_exists(id) {
        Ok(true) => state.refused(
            crate::refusals::JOB_FOREIGN,
            user,
            "asked for another user's job",
        ),
        Ok(false) => {}
        Err(e) => tracing::warn!(error = %e, "could not check a job's owner for the audit trail"),
    }
}

/// Applies a state-machine transition to a user's job of a family.
fn transition<T>(
    state: &AppState,
    user: &str,
    family: Family,
    id: &str,
    change: impl FnMut(&mut Job) -> Result<T, ApiError>,
) -> ApiResult<(Job, T)> {
    let mut change = change;
    let result = jobs::modify(state.jobs.as_ref(), user, id, |job| {
        if job.job_type != family.job_type() {
            return Err(ApiError::not_found(format!(
                "FZIP {} job {id} not found",
                family.noun()
            )));
        }
        change(job)
    })?;
    result.ok_or_else(|| {
        note_foreign(state, user, id);
        ApiError::not_found(format!("FZIP {} job {id} not found", family.noun()))
    })
}

// ---------------------------------------------------------------------------------------------
// Backups and exports
// ---------------------------------------------------------------------------------------------

pub async fn create_package_job(
    state: AppState,
    user: String,
    family: Family,
    headers: HeaderMap,
    body: BackupRequest,
) -> ApiResult<Response> {
    let backup_type = body
        .backup_type
        .clone()
        .unwrap_or_else(|| "complete".into());
    if !BACKUP_TYPES.contains(&backup_type.as_str()) {
        return Err(ApiError::bad_request(format!(
            "backupType {backup_type:?} is not one of {}",
            BACKUP_TYPES.join(", ")
        )));
    }
    if let (Some(a), Some(b)) = (body.date_range_start, body.date_range_end)
        && a > b
    {
        return Err(ApiError::bad_request(
            "dateRangeStart is after dateRangeEnd",
        ));
    }
    for (name, ids) in [
        ("accountIds", &body.account_ids),
        ("categoryIds", &body.category_ids),
    ] {
        if let Some(ids) = ids
            && (ids.is_empty()
                || ids.len() > 10_000
                || ids.iter().any(|i| i.is_empty() || i.len() > 128))
        {
            return Err(ApiError::bad_request(format!(
                "{name} must list 1 to 10000 ids of at most 128 characters"
            )));
        }
    }
    // The earlier design's `date_range`: a selective backup by dates alone.
    let requested_type = (backup_type == "date_range").then(|| backup_type.clone());
    if requested_type.is_some() {
        if body.date_range_start.is_none() && body.date_range_end.is_none() {
            return Err(ApiError::bad_request(
                "backupType date_range needs dateRangeStart or dateRangeEnd (ms); \
                 for a whole profile use complete",
            ));
        }
        if body.account_ids.is_some() || body.category_ids.is_some() {
            return Err(ApiError::bad_request(
                "backupType date_range selects by dates only; to select accounts or categories \
                 as well use selective",
            ));
        }
    }
    let run_type = if requested_type.is_some() {
        "selective".to_string()
    } else {
        backup_type
    };
    if let Some(d) = &body.description {
        let n = d.chars().count();
        if n > MAX_DESCRIPTION_CHARS {
            return Err(ApiError::bad_request(format!(
                "description is too long ({n} characters); at most {MAX_DESCRIPTION_CHARS} are kept"
            ))
            .with("field", json!("description")));
        }
    }
    let key = idempotency_key(&headers, family.segment())?;
    let now = now_ms();
    let id = uuid::Uuid::new_v4().to_string();
    let mut job = Job::new(
        &id,
        &user,
        family.job_type(),
        statuses(family.job_type()).initial,
        now,
    );
    job.params = json!({
        "backupType": run_type,
        "requestedBackupType": requested_type,
        "includeAnalytics": body.include_analytics,
        "description": body.description,
        "continueOnMissingFiles": body.continue_on_missing_files,
        "allowEmpty": body.allow_empty,
        "accountIds": body.account_ids,
        "dateRangeStart": body.date_range_start,
        "dateRangeEnd": body.date_range_end,
        "categoryIds": body.category_ids,
    });
    job.work = Some(Work::Backup);
    job.current_phase = "queued".into();
    job.idempotency_key = key;
    let stored = state
        .blocking(move |s| s.limiter.create_job(s, family, &job))
        .await?;
    if stored.job_id == id {
        state.audit(
            &user,
            &format!("{}.create", family.noun()),
            Some(&id),
            "ok",
            None,
        );
        metrics::counter!("fzip_jobs_created_total", "type" => family.noun()).increment(1);
        state.work_ready.notify_waiters();
    }
    let mut body = views::accepted(&stored, family, &format!("FZIP {} started", family.noun()));
    let summary = state
        .blocking(move |s| Ok(s.engine.store.summary(&user)?))
        .await;
    match summary {
        Ok(summary) => views::Estimate::of(&summary).insert_into(&mut body, now_ms()),
        Err(e) => tracing::warn!(error = %e.detail, "cannot estimate the backup's size"),
    }
    Ok(accepted(family, &stored, body))
}

fn parse_list_query(q: &HashMap<String, String>) -> ApiResult<(u64, u64, Option<JobCursor>)> {
    let limit = match q.get("limit") {
        None => 20,
        Some(v) => v
            .parse::<u64>()
            .ok()
            .filter(|n| (1..=100).contains(n))
            .ok_or_else(|| ApiError::bad_request("limit must be a whole number from 1 to 100"))?,
    };
    let offset = match q.get("offset") {
        None => 0,
        Some(v) => v
            .parse::<u64>()
            .map_err(|_| ApiError::bad_request("offset must be a whole number"))?,
    };
    let cursor = match q
        .get("cursor")
        .or_else(|| q.get("lastEvaluatedKey"))
        .filter(|c| !c.is_empty())
    {
        None => None,
        Some(c) => Some(decode_cursor(c).ok_or_else(|| {
            ApiError::bad_request(
                "the cursor is not one this server gave out; start from the first page",
            )
        })?),
    };
    Ok((limit, offset, cursor))
}

fn encode_cursor(c: &JobCursor) -> String {
    URL_SAFE_NO_PAD.encode(format!("{}:{}", c.created_at, c.job_id))
}

fn decode_cursor(text: &str) -> Option<JobCursor> {
    let raw = URL_SAFE_NO_PAD.decode(text).ok()?;
    let raw = String::from_utf8(raw).ok()?;
    let (t, id) = raw.split_once(':')?;
    Some(JobCursor {
        created_at: t.parse().ok()?,
        job_id: id.to_string(),
    })
}

pub async fn list_jobs(
    state: AppState,
    user: String,
    family: Family,
    q: HashMap<String, String>,
) -> ApiResult<Response> {
    let (limit, offset, cursor) = parse_list_query(&q)?;
    let page = state
        .blocking(move |s| {
            Ok(s.jobs
                .list_jobs(&user, &[family.job_type()], cursor.as_ref(), offset, limit)?)
        })
        .await?;
    let now = now_ms();
    let items: Vec<Value> = page
        .jobs
        .iter()
        .map(|j| views::list_item(j, family, now))
        .collect();
    let mut body = json!({
        family.list_key(): items,
        "total": page.total,
        "limit": limit,
        "hasMore": page.next.is_some(),
        "packageFormat": "fzip",
    });
    if let Some(obj) = body.as_object_mut() {
        if matches!(family, Family::Backup | Family::Export) {
            obj.insert("offset".into(), json!(offset));
        }
        if let Some(next) = &page.next {
            let c = encode_cursor(next);
            obj.insert("nextCursor".into(), json!(c));
            obj.insert("nextEvaluatedKey".into(), json!(c));
            if page.jobs.len() as u64 == limit {
                obj.insert("nextOffset".into(), json!(offset + limit));
            }
        }
    }
    Ok(axum::Json(body).into_response())
}

/// The base URL clients reach this server at: never taken from a header only the client
/// vouches for (see [`crate::config::ServerConfig::link_base`]).
pub fn base_url(state: &AppState, headers: &HeaderMap) -> String {
    let host = headers.get(header::HOST).and_then(|h| h.to_str().ok());
    state.config.link_base(host)
}

fn download_link(state: &AppState, headers: &HeaderMap, job: &Job) -> Option<DownloadLink> {
    let key = job.package_key.clone()?;
    let now = now_ms();
    let mut expires = now + state.config.url_ttl.as_millis() as i64;
    if let Some(e) = job.expires_at {
        expires = expires.min(e);
    }
    let filename = views::package_filename(job);
    if state.engine.blobs.can_presign() {
        // Straight from object storage (S3 signature V4).
        let ttl = Duration::from_millis((expires - now).max(1000) as u64);
        return match state.engine.blobs.presigned_url(Presign::Get, &key, ttl) {
            Ok(Some(url)) => Some(DownloadLink {
                url,
                expires_at: expires,
                filename,
            }),
            Ok(None) => None,
            Err(e) => {
                tracing::warn!(error = %e, "cannot presign a download URL");
                None
            }
        };
    }
    let token = state.signer.sign(&Grant {
        op: "get".into(),
        key,
        user: job.user_id.clone(),
        job: job.job_id.clone(),
        exp: expires,
        name: Some(filename.clone()),
    });
    Some(DownloadLink {
        url: format!("{}/fzip/files/{token}", base_url(state, headers)),
        expires_at: expires,
        filename,
    })
}

pub async fn job_status(
    state: AppState,
    user: String,
    family: Family,
    id: String,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let (job, link) = state
        .blocking(move |s| {
            let job = detect_upload(s, load(s, &user, family, &id)?)?;
            let completed =
                views::effective_status(&job, now_ms()) == statuses(job.job_type).completed;
            let link = if family_produces(family) && completed {
                download_link(s, &headers, &job)
            } else {
                None
            };
            Ok((job, link))
        })
        .await?;
    tracing::Span::current().record("job_id", job.job_id.as_str());
    Ok(axum::Json(views::status(&job, family, now_ms(), link)).into_response())
}

/// With presigned uploads the package goes straight to object storage, so the server learns
/// of it when asked: a job still waiting for its package whose upload key now holds an object
/// takes it as its package (and, in the upload-URL flow, starts validating it).
fn detect_upload(s: &AppState, job: Job) -> ApiResult<Job> {
    let st = statuses(job.job_type);
    if !s.engine.blobs.can_presign()
        || job.job_type.produces_package()
        || job.status != st.initial
        || job.package_key.is_some()
    {
        return Ok(job);
    }
    let key = jobs::upload_key(&job.user_id, &job.job_id);
    let Some(meta) = s.engine.blobs.head(&key)? else {
        return Ok(job);
    };
    // What a server-side upload refuses at once, checked now: the size, the first bytes, the
    // user's storage. A refused upload is deleted and its job fails, saying why.
    let max = s.config.max_upload_bytes;
    let refusal = if meta.size == 0 {
        None
    } else if meta.size > max {
        Some((
            "PACKAGE_TOO_LARGE",
            format!(
                "the uploaded package ({} bytes) is larger than this server accepts ({max} bytes); it was deleted",
                meta.size
            ),
        ))
    } else if crate::limits::looks_like_package(
        &s.engine
            .blobs
            .read_prefix(&key, crate::limits::MAGIC_LEN as u64)?,
    ) != Some(true)
    {
        Some(("NOT_A_PACKAGE", crate::limits::not_a_package().detail))
    } else {
        let staged = s.jobs.user_load(&job.user_id, now_ms())?.staged_bytes;
        let limit = s.config.user_limits.max_staged_bytes;
        (staged.saturating_add(meta.size) > limit).then(|| {
            (
                "STORAGE_LIMIT",
                format!(
                    "The uploaded package ({}) does not fit: your backups and uploaded packages already take {} of the {} this server keeps per user. It was deleted; delete backups or restore jobs you no longer need, then upload it again.",
                    crate::limits::human_bytes(meta.size),
                    crate::limits::human_bytes(staged),
                    crate::limits::human_bytes(limit)
                ),
            )
        })
    };
    if refusal.is_some() || meta.size == 0 {
        s.engine.blobs.delete(&key)?;
    }
    if meta.size == 0 {
        return Ok(job);
    }
    let ttl = s.config.package_ttl.as_millis() as i64;
    let updated = jobs::modify(s.jobs.as_ref(), &job.user_id, &job.job_id, |j| {
        let now = now_ms();
        if j.status != st.initial || j.package_key.is_some() {
            return Ok::<(), ApiError>(()); // another request got there first
        }
        if let Some((code, message)) = &refusal {
            j.status = st.failed;
            j.error = Some(message.clone());
            j.error_code = Some((*code).into());
            j.completed_at = Some(now);
            j.updated_at = now;
            return Ok(());
        }
        jobs::package_uploaded(j, &key, meta.size, None, now).map_err(ApiError::from)?;
        j.expires_at = Some(now.saturating_add(ttl));
        Ok(())
    })?;
    let job = match updated {
        Some((j, ())) => j,
        None => return Ok(job),
    };
    if job.work.is_some() {
        s.work_ready.notify_waiters();
    }
    s.audit(
        &job.user_id,
        "package.upload",
        Some(&job.job_id),
        refusal.as_ref().map_or("ok", |(code, _)| *code),
        Some(format!("{} bytes, presigned", meta.size)),
    );
    Ok(job)
}

fn family_produces(f: Family) -> bool {
    matches!(f, Family::Backup | Family::Export)
}

/// Whether a download request is an API call wanting `{downloadUrl, …}` rather than the file:
/// `?format=json`, an `Accept` naming `application/json`, or a `Content-Type: application/json`
/// (HouseF3's client sends it on every call, with no `Accept`; no browser navigation and no
/// `curl -L` sends one). Anything else gets the 302 to the file.
fn wants_json(headers: &HeaderMap, q: &HashMap<String, String>) -> bool {
    let names_json = |name: header::HeaderName| {
        headers
            .get_all(name)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .any(|v| v.to_ascii_lowercase().contains("application/json"))
    };
    q.get("format").is_some_and(|f| f == "json")
        || names_json(header::ACCEPT)
        || names_json(header::CONTENT_TYPE)
}

pub async fn download(
    state: AppState,
    user: String,
    family: Family,
    id: String,
    headers: HeaderMap,
    q: HashMap<String, String>,
) -> ApiResult<Response> {
    let job = state
        .blocking({
            let user = user.clone();
            move |s| load(s, &user, family, &id)
        })
        .await?;
    tracing::Span::current().record("job_id", job.job_id.as_str());
    let s = statuses(job.job_type);
    let now = now_ms();
    match views::effective_status(&job, now) {
        st if st == s.canceled_or_expired => {
            return Err(ApiError::gone(format!(
                "FZIP {} package {} has expired",
                family.noun(),
                job.job_id
            )));
        }
        st if st != s.completed => {
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                "NOT_READY",
                format!(
                    "FZIP {} {} is not completed yet (it is {})",
                    family.noun(),
                    job.job_id,
                    st.as_str()
                ),
            ));
        }
        _ => {}
    }
    let link = state
        .blocking({
            let (headers, job) = (headers.clone(), job.clone());
            move |s| Ok(download_link(s, &headers, &job))
        })
        .await?
        .ok_or_else(|| {
            ApiError::gone(format!(
                "FZIP {} package {} is no longer stored",
                family.noun(),
                job.job_id
            ))
        })?;
    state.audit(&user, "package.download", Some(&job.job_id), "ok", None);
    if wants_json(&headers, &q) {
        let mut body = json!({
            "downloadUrl": link.url,
            "filename": link.filename,
            "expiresAt": link.expires_at,
            "packageFormat": "fzip",
        });
        if let Some(o) = body.as_object_mut() {
            if let Some(size) = job.package_size {
                o.insert("packageSize".into(), json!(size));
            }
            if let Some(sha) = &job.package_sha256 {
                o.insert("sha256".into(), json!(sha));
            }
        }
        return Ok(axum::Json(body).into_response());
    }
    let mut r = StatusCode::FOUND.into_response();
    if let Ok(v) = HeaderValue::from_str(&link.url) {
        r.headers_mut().insert(header::LOCATION, v);
    }
    Ok(r)
}

/// Asks a running job to stop and waits (up to `wait`) for its worker to let go.
async fn stop_running(
    state: &AppState,
    user: &str,
    family: Family,
    id: &str,
    wait: Duration,
) -> ApiResult<Job> {
    let (job, ()) = state
        .blocking({
            let (user, id) = (user.to_string(), id.to_string());
            move |s| {
                transition(s, &user, family, &id, |j| {
                    if j.work.is_some() {
                        j.cancel_requested = true;
                    }
                    Ok(())
                })
            }
        })
        .await?;
    let deadline = tokio::time::Instant::now() + wait;
    let mut current = job;
    while current.work.is_some() && current.lease_until.is_some_and(|l| l > now_ms()) {
        if tokio::time::Instant::now() > deadline {
            return Err(ApiError::conflict(format!(
                "job {id} is still running; it was asked to stop, try again in a moment"
            )));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        current = state
            .blocking({
                let (user, id) = (user.to_string(), id.to_string());
                move |s| load(s, &user, family, &id)
            })
            .await?;
    }
    Ok(current)
}

pub async fn delete_job(
    state: AppState,
    user: String,
    family: Family,
    id: String,
) -> ApiResult<Response> {
    tracing::Span::current().record("job_id", id.as_str());
    let job = stop_running(&state, &user, family, &id, Duration::from_secs(30)).await?;
    if let Some(key) = &job.package_key {
        let store = state.engine.blobs.object_store();
        let path = object_store::path::Path::parse(key).map_err(ApiError::internal)?;
        use object_store::ObjectStoreExt;
        match store.delete(&path).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
            Err(e) => return Err(ApiError::internal(e)),
        }
    }
    let deleted = state
        .blocking({
            let (user, id) = (user.clone(), id.clone());
            move |s| Ok(s.jobs.delete_job(&user, &id)?)
        })
        .await?;
    if !deleted {
        return Err(ApiError::not_found(format!(
            "FZIP {} job {id} not found",
            family.noun()
        )));
    }
    state.audit(
        &user,
        &format!("{}.delete", family.noun()),
        Some(&id),
        "ok",
        None,
    );
    Ok(if family_produces(family) {
        axum::Json(json!({ "message": format!("FZIP {} deleted successfully", family.noun()) }))
            .into_response()
    } else {
        StatusCode::NO_CONTENT.into_response()
    })
}

// ---------------------------------------------------------------------------------------------
// Restores and imports
// ---------------------------------------------------------------------------------------------

fn profile_summary_json(s: &fzip_store::ProfileSummary) -> Value {
    json!({
        "accounts_count": s.counts.accounts,
        "transactions_count": s.counts.transactions,
        "categories_count": s.counts.categories,
        "file_maps_count": s.counts.file_maps,
        "transaction_files_count": s.counts.transaction_files,
        "analytics_count": s.counts.analytics,
    })
}

/// 409 `PROFILE_NOT_EMPTY`, with what the profile holds and what to do.
pub fn profile_not_empty(s: &fzip_store::ProfileSummary) -> ApiError {
    ApiError::new(
        StatusCode::CONFLICT,
        "PROFILE_NOT_EMPTY",
        format!(
            "Restore requires an empty financial profile. Current profile contains: {}.",
            fzip_store::describe(&s.counts)
        ),
    )
    .with("profileSummary", profile_summary_json(s))
    .with(
        "suggestion",
        json!("Please use a new user account or clear existing data before attempting restore."),
    )
}

fn upload_grant(state: &AppState, job: &Job) -> (Grant, String) {
    let key = jobs::upload_key(&job.user_id, &job.job_id);
    let grant = Grant {
        op: "put".into(),
        key,
        user: job.user_id.clone(),
        job: job.job_id.clone(),
        exp: now_ms() + state.config.url_ttl.as_millis() as i64,
        name: None,
    };
    let token = state.signer.sign(&grant);
    (grant, token)
}

/// Where to upload a package. With object storage that presigns, a presigned `PUT` straight
/// into it; with `form_post` (HouseF3's upload-url flow, whose client always POSTs a multipart
/// form, which a presigned `PUT` cannot take) or without presigning, this server's own URL,
/// which takes a `PUT` or the form and streams it into blob storage.
fn upload_url_json(state: &AppState, headers: &HeaderMap, job: &Job, form_post: bool) -> Value {
    let (grant, token) = upload_grant(state, job);
    let ttl = state.config.url_ttl.as_secs();
    if !form_post && state.engine.blobs.can_presign() {
        // Straight into object storage: PUT the package, then call …/{id}/upload (or poll the
        // status, which notices the upload).
        match state
            .engine
            .blobs
            .presigned_url(Presign::Put, &grant.key, state.config.url_ttl)
        {
            Ok(Some(url)) => {
                return json!({
                    "url": url,
                    "putUrl": url,
                    "method": "PUT",
                    "headers": { "Content-Type": "application/zip" },
                    "fields": {},
                    "key": grant.key,
                    "expires": ttl,
                    "expiresIn": ttl,
                    "expiresAt": grant.exp,
                    "maxSize": state.config.max_upload_bytes,
                });
            }
            Ok(None) => {}
            Err(e) => {
                tracing::warn!(error = %e, "cannot presign an upload URL; the server takes the upload")
            }
        }
    }
    let url = format!("{}/fzip/upload/{token}", base_url(state, headers));
    json!({
        "url": url,
        "putUrl": url,
        "method": "POST",
        "fields": {
            "key": grant.key,
            "Content-Type": "application/zip",
            "x-amz-meta-userid": job.user_id,
            "x-amz-meta-restoreid": job.job_id,
        },
        "expires": ttl,
        "expiresIn": ttl,
        "expiresAt": grant.exp,
        "maxSize": state.config.max_upload_bytes,
    })
}

fn new_consumer_job(
    state: &AppState,
    user: &str,
    family: Family,
    body: &RestoreRequest,
    auto_validate: bool,
    key: Option<String>,
) -> ApiResult<Job> {
    let merge = match (family, &body.merge_strategy) {
        (Family::Import, None) => Some("fail_on_conflict".to_string()),
        (Family::Import, Some(m)) if MERGE_STRATEGIES.contains(&m.as_str()) => Some(m.clone()),
        (Family::Import, Some(m)) => {
            return Err(ApiError::bad_request(format!(
                "mergeStrategy {m:?} is not one of {}",
                MERGE_STRATEGIES.join(", ")
            )));
        }
        (_, Some(_)) => {
            return Err(ApiError::bad_request(
                "mergeStrategy belongs to imports (/fzip/import); a restore always needs an empty profile",
            ));
        }
        (_, None) => None,
    };
    let now = now_ms();
    let id = uuid::Uuid::new_v4().to_string();
    let mut job = Job::new(
        &id,
        user,
        family.job_type(),
        statuses(family.job_type()).initial,
        now,
    );
    job.params = json!({
        "validateOnly": body.validate_only,
        "autoValidate": auto_validate,
        "mergeStrategy": merge,
    });
    job.current_phase = "awaiting_upload".into();
    job.expires_at = Some(now + state.config.url_ttl.as_millis() as i64);
    job.idempotency_key = key;
    state.limiter.create_job(state, family, &job)
}

/// `POST /fzip/restore`: a restore job and where to upload its package.
pub async fn create_consumer_job(
    state: AppState,
    user: String,
    family: Family,
    headers: HeaderMap,
    body: RestoreRequest,
) -> ApiResult<Response> {
    let key = idempotency_key(&headers, family.segment())?;
    let job = state
        .blocking({
            let user = user.clone();
            move |s| {
                if family == Family::Restore {
                    let summary = s.engine.store.summary(&user)?;
                    if !summary.is_empty() {
                        return Err(profile_not_empty(&summary));
                    }
                }
                new_consumer_job(s, &user, family, &body, false, key)
            }
        })
        .await
        .inspect_err(|e| {
            if e.code == "PROFILE_NOT_EMPTY" {
                state.audit(
                    &user,
                    &format!("{}.create", family.noun()),
                    None,
                    e.code,
                    None,
                );
            }
        })?;
    state.audit(
        &user,
        &format!("{}.create", family.noun()),
        Some(&job.job_id),
        "ok",
        None,
    );
    metrics::counter!("fzip_jobs_created_total", "type" => family.noun()).increment(1);
    let mut body = views::accepted(
        &job,
        family,
        &format!(
            "FZIP {} job created successfully{}. Upload the package, then call /fzip/{}/{}/upload.",
            family.noun(),
            if family == Family::Restore {
                ". Financial profile verified as empty"
            } else {
                ""
            },
            family.segment(),
            job.job_id
        ),
    );
    if let Some(o) = body.as_object_mut() {
        let upload = state
            .blocking({
                let (headers, job) = (headers.clone(), job.clone());
                move |s| Ok(upload_url_json(s, &headers, &job, false))
            })
            .await?;
        o.insert("uploadUrl".into(), upload);
    }
    Ok(accepted(family, &job, body))
}

/// `POST /fzip/restore/upload-url`: HouseF3's flow; validation starts as soon as the upload
/// arrives.
pub async fn upload_url(
    state: AppState,
    user: String,
    family: Family,
    headers: HeaderMap,
    body: RestoreRequest,
) -> ApiResult<Response> {
    let key = idempotency_key(&headers, &format!("{}.upload-url", family.segment()))?;
    let job = state
        .blocking({
            let user = user.clone();
            move |s| new_consumer_job(s, &user, family, &body, true, key)
        })
        .await?;
    state.audit(
        &user,
        &format!("{}.upload_url", family.noun()),
        Some(&job.job_id),
        "ok",
        None,
    );
    metrics::counter!("fzip_jobs_created_total", "type" => family.noun()).increment(1);
    let mut body = state
        .blocking({
            let (headers, job) = (headers.clone(), job.clone());
            move |s| Ok(upload_url_json(s, &headers, &job, true))
        })
        .await?;
    if let Some(o) = body.as_object_mut() {
        o.insert(family.id_key().into(), json!(job.job_id));
        o.insert("jobId".into(), json!(job.job_id));
        o.insert("status".into(), json!(job.status.as_str()));
    }
    Ok(accepted(family, &job, body))
}

/// Moves a job through the state machine and answers 202 (or 200).
async fn simple_transition(
    state: AppState,
    user: String,
    family: Family,
    id: String,
    action: &'static str,
    message: &'static str,
    change: fn(&mut Job, i64) -> Result<(), jobs::TransitionError>,
) -> ApiResult<Response> {
    tracing::Span::current().record("job_id", id.as_str());
    let result = state
        .blocking({
            let (user, id) = (user.clone(), id.clone());
            move |s| transition(s, &user, family, &id, |j| Ok(change(j, now_ms())?))
        })
        .await;
    let outcome = match &result {
        Ok(_) => "ok",
        Err(e) => e.code,
    };
    state.audit(
        &user,
        &format!("{}.{action}", family.noun()),
        Some(&id),
        outcome,
        None,
    );
    let (job, ()) = result?;
    state.work_ready.notify_waiters();
    let body = views::accepted(&job, family, message);
    Ok(accepted(family, &job, body))
}

pub async fn begin_validation(
    state: AppState,
    user: String,
    family: Family,
    id: String,
) -> ApiResult<Response> {
    state
        .blocking({
            let (user, id) = (user.clone(), id.clone());
            move |s| detect_upload(s, load(s, &user, family, &id)?)
        })
        .await?;
    simple_transition(
        state,
        user,
        family,
        id,
        "upload",
        "FZIP restore processing started",
        jobs::begin_validation,
    )
    .await
}

pub async fn retry(
    state: AppState,
    user: String,
    family: Family,
    id: String,
) -> ApiResult<Response> {
    simple_transition(
        state,
        user,
        family,
        id,
        "retry",
        "FZIP restore validation restarted",
        jobs::retry,
    )
    .await
}

pub async fn start(
    state: AppState,
    user: String,
    family: Family,
    id: String,
) -> ApiResult<Response> {
    tracing::Span::current().record("job_id", id.as_str());
    let result = state
        .blocking({
            let (user, id) = (user.clone(), id.clone());
            move |s| {
                transition(s, &user, family, &id, |j| {
                    // Re-check the empty profile at the moment of confirmation.
                    if family == Family::Restore && j.status == statuses(j.job_type).awaiting {
                        let summary = s.engine.store.summary(&user)?;
                        if !summary.is_empty() {
                            return Err(profile_not_empty(&summary));
                        }
                    }
                    Ok(jobs::start(j, None, now_ms())?)
                })
            }
        })
        .await;
    let outcome = match &result {
        Ok(_) => "ok",
        Err(e) => e.code,
    };
    state.audit(
        &user,
        &format!("{}.start", family.noun()),
        Some(&id),
        outcome,
        None,
    );
    let (job, ()) = result?;
    state.work_ready.notify_waiters();
    let body = views::accepted(&job, family, "FZIP restore processing started");
    Ok(accepted(family, &job, body))
}

pub async fn cancel(
    state: AppState,
    user: String,
    family: Family,
    id: String,
) -> ApiResult<Response> {
    tracing::Span::current().record("job_id", id.as_str());
    let result = state
        .blocking({
            let (user, id) = (user.clone(), id.clone());
            move |s| transition(s, &user, family, &id, |j| Ok(jobs::cancel(j, now_ms())?))
        })
        .await;
    let (mut job, outcome) = match result {
        Ok(v) => v,
        Err(e) => {
            state.audit(
                &user,
                &format!("{}.cancel", family.noun()),
                Some(&id),
                e.code,
                None,
            );
            return Err(e);
        }
    };
    if outcome == CancelOutcome::Requested {
        // A worker is writing: wait for it to roll back.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        let s = statuses(job.job_type);
        while job.status == s.processing && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(100)).await;
            job = state
                .blocking({
                    let (user, id) = (user.clone(), id.clone());
                    move |st| load(st, &user, family, &id)
                })
                .await?;
        }
        if job.status == s.completed {
            state.audit(
                &user,
                &format!("{}.cancel", family.noun()),
                Some(&id),
                "TOO_LATE",
                None,
            );
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                "INVALID_STATE",
                format!(
                    "{} job {id} completed before it could be canceled",
                    family.noun()
                ),
            ));
        }
        if job.status == s.processing {
            state.audit(
                &user,
                &format!("{}.cancel", family.noun()),
                Some(&id),
                "requested",
                None,
            );
            let body = json!({
                "jobId": id, family.id_key(): id, "status": job.status.as_str(),
                "message": "Cancel requested; the job is stopping",
            });
            return Ok((StatusCode::ACCEPTED, axum::Json(body)).into_response());
        }
    }
    state.audit(
        &user,
        &format!("{}.cancel", family.noun()),
        Some(&id),
        "ok",
        None,
    );
    Ok(axum::Json(json!({
        "jobId": id,
        family.id_key(): id,
        "status": job.status.as_str(),
        "message": format!("{} job canceled", if family == Family::Import { "Import" } else { "Restore" }),
    }))
    .into_response())
}

// ---------------------------------------------------------------------------------------------
// The profile (read-only, but for recomputing analytics)
// ---------------------------------------------------------------------------------------------

/// `GET /fzip/profile`: what the profile holds (the CLI's `fzip --json profile summary`).
pub async fn profile_summary(state: AppState, user: String) -> ApiResult<Response> {
    let summary = state
        .blocking({
            let user = user.clone();
            move |s| Ok(s.engine.store.summary(&user)?)
        })
        .await?;
    let mut body = serde_json::to_value(&summary).map_err(ApiError::internal)?;
    if let Some(o) = body.as_object_mut() {
        o.insert("userId".into(), json!(user));
        o.insert("empty".into(), json!(summary.is_empty()));
    }
    Ok(axum::Json(body).into_response())
}

/// `GET /fzip/profile/analytics`: the analytics records the profile holds (nothing is
/// computed), with the names of its accounts and categories to label them.
pub async fn profile_analytics(state: AppState, user: String) -> ApiResult<Response> {
    let body = state
        .blocking(move |s| {
            let records = fzip_engine::analytics::load(&s.engine, &user)?;
            let mut snapshot = s.engine.store.snapshot(&user)?;
            let mut accounts = Vec::new();
            loop {
                let batch = snapshot.next_accounts(fzip_store::DEFAULT_BATCH)?;
                if batch.is_empty() {
                    break;
                }
                accounts.extend(batch.into_iter().map(|a| {
                    json!({
                        "accountId": a.account_id,
                        "accountName": a.account_name,
                        "accountType": a.account_type.as_str(),
                        "currency": a.currency.as_ref().map(|c| c.as_str()),
                    })
                }));
            }
            let mut categories = Vec::new();
            loop {
                let batch = snapshot.next_categories(fzip_store::DEFAULT_BATCH)?;
                if batch.is_empty() {
                    break;
                }
                categories.extend(batch.into_iter().map(|c| {
                    json!({
                        "categoryId": c.category_id,
                        "name": c.name,
                        "type": c.category_type.as_str(),
                        "parentCategoryId": c.parent_category_id,
                    })
                }));
            }
            drop(snapshot);
            let mut body = json!({
                "userId": user,
                "records": records,
                "accounts": accounts,
                "categories": categories,
            });
            strip_nulls(&mut body);
            Ok(body)
        })
        .await?;
    Ok(axum::Json(body).into_response())
}

/// Absent values are omitted, never `null`.
fn strip_nulls(v: &mut Value) {
    match v {
        Value::Object(o) => {
            o.retain(|_, x| !x.is_null());
            o.values_mut().for_each(strip_nulls);
        }
        Value::Array(a) => a.iter_mut().for_each(strip_nulls),
        _ => {}
    }
}

/// `POST /fzip/profile/analytics/recompute`: recomputes the analytics fzip computes (one pass
/// over the profile's transactions, in its own transaction).
pub async fn recompute_analytics(state: AppState, user: String) -> ApiResult<Response> {
    let result = state
        .blocking({
            let user = user.clone();
            move |s| Ok(fzip_engine::analytics::recompute(&s.engine, &user)?)
        })
        .await;
    let outcome = match &result {
        Ok(_) => "ok",
        Err(e) => e.code,
    };
    state.audit(&user, "analytics.recompute", None, outcome, None);
    let report = result?;
    Ok(axum::Json(report).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip() {
        let c = JobCursor {
            created_at: 1234,
            job_id: "a:b".into(),
        };
        assert_eq!(decode_cursor(&encode_cursor(&c)), Some(c));
        assert_eq!(decode_cursor("!!"), None);
    }
}
