//! The signed URLs themselves: package downloads (with `Range` and `ETag`) and package uploads
//! (a plain `PUT` of the file, or the form `POST` HouseF3's client sends: fields, then `file`).
//!
//! No bearer token here: the signed URL is the permission, bound to user, blob, job and expiry.

use axum::body::Body;
use axum::extract::{Multipart, Path, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use futures::{Stream, StreamExt, TryStreamExt};
use fzip_engine::jobs::{self, statuses};
use fzip_engine::now_ms;
use object_store::buffered::BufWriter;
use object_store::path::Path as BlobPath;
use object_store::{GetOptions, GetRange, ObjectStoreExt};
use sha2::{Digest, Sha256};
use tokio::io::AsyncWriteExt;

use crate::error::{ApiError, ApiResult};
use crate::limits;
use crate::signing::Grant;
use crate::state::AppState;

fn forbidden(e: crate::signing::SignError) -> ApiError {
    ApiError::forbidden(e.to_string())
}

fn blob_path(key: &str) -> ApiResult<BlobPath> {
    BlobPath::parse(key).map_err(ApiError::internal)
}

/// `GET`/`HEAD /fzip/files/{token}`.
pub async fn download(
    State(state): State<AppState>,
    Path(token): Path<String>,
    method: Method,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let grant = state
        .signer
        .verify(&token, "get", now_ms())
        .map_err(forbidden)?;
    tracing::Span::current().record("job_id", grant.job.as_str());
    let job = state
        .blocking({
            let g = grant.clone();
            move |s| Ok(s.jobs.get_job(&g.user, &g.job)?)
        })
        .await?;
    let Some(job) = job.filter(|j| j.package_key.as_deref() == Some(grant.key.as_str())) else {
        return Err(ApiError::gone(
            "this package is no longer available (deleted or expired)",
        ));
    };
    let store = state.engine.blobs.object_store();
    let path = blob_path(&grant.key)?;
    let meta = match store.head(&path).await {
        Ok(m) => m,
        Err(object_store::Error::NotFound { .. }) => {
            return Err(ApiError::gone(
                "this package is no longer available (deleted or expired)",
            ));
        }
        Err(e) => return Err(ApiError::internal(e)),
    };
    let size = meta.size;
    let etag = format!(
        "\"{}\"",
        job.package_sha256
            .clone()
            .or(meta.e_tag.clone())
            .unwrap_or_else(|| format!("{size}"))
    );
    if let Some(inm) = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        && inm.split(',').any(|t| t.trim() == etag || t.trim() == "*")
    {
        return Ok(with_headers(
            StatusCode::NOT_MODIFIED.into_response(),
            &etag,
            &grant,
            None,
        ));
    }
    // A single byte range, unless If-Range names another version.
    let if_range_ok = headers
        .get(header::IF_RANGE)
        .and_then(|v| v.to_str().ok())
        .is_none_or(|v| v == etag);
    let range = match headers.get(header::RANGE).and_then(|v| v.to_str().ok()) {
        Some(r) if if_range_ok => match parse_range(r, size) {
            Some(r) => Some(r),
            None => {
                let mut resp = ApiError::new(
                    StatusCode::RANGE_NOT_SATISFIABLE,
                    "RANGE_NOT_SATISFIABLE",
                    format!("the range {r:?} does not fit a {size}-byte package"),
                )
                .into_response();
                if let Ok(v) = HeaderValue::from_str(&format!("bytes */{size}")) {
                    resp.headers_mut().insert(header::CONTENT_RANGE, v);
                }
                return Ok(resp);
            }
        },
        _ => None,
    };
    let (status, start, end) = match range {
        Some((a, b)) => (StatusCode::PARTIAL_CONTENT, a, b),
        None => (StatusCode::OK, 0, size),
    };
    let body = if method == Method::HEAD || end == start {
        Body::empty()
    } else {
        let options = GetOptions::new().with_range(Some(GetRange::Bounded(start..end)));
        let result = store
            .get_opts(&path, options)
            .await
            .map_err(ApiError::internal)?;
        Body::from_stream(result.into_stream())
    };
    let mut resp = Response::new(body);
    *resp.status_mut() = status;
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/zip"),
    );
    if let Ok(v) = HeaderValue::from_str(&(end - start).to_string()) {
        h.insert(header::CONTENT_LENGTH, v);
    }
    if status == StatusCode::PARTIAL_CONTENT
        && let Ok(v) = HeaderValue::from_str(&format!("bytes {start}-{}/{size}", end - 1))
    {
        h.insert(header::CONTENT_RANGE, v);
    }
    if method == Method::GET && range.is_none() {
        state.audit(&grant.user, "package.fetch", Some(&grant.job), "ok", None);
    }
    Ok(with_headers(resp, &etag, &grant, Some(size)))
}

fn with_headers(mut resp: Response, etag: &str, grant: &Grant, _size: Option<u64>) -> Response {
    let h = resp.headers_mut();
    if let Ok(v) = HeaderValue::from_str(etag) {
        h.insert(header::ETAG, v);
    }
    h.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("private, no-store"),
    );
    if let Some(name) = &grant.name {
        let safe: String = name
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || "._-".contains(c) {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        if let Ok(v) = HeaderValue::from_str(&format!("attachment; filename=\"{safe}\"")) {
            h.insert(header::CONTENT_DISPOSITION, v);
        }
    }
    resp
}

/// `bytes=a-b`, `bytes=a-`, `bytes=-n` as a half-open range within `size`.
fn parse_range(text: &str, size: u64) -> Option<(u64, u64)> {
    let spec = text.trim().strip_prefix("bytes=")?;
    if spec.contains(',') {
        return None; // one range only
    }
    let (a, b) = spec.split_once('-')?;
    let (a, b) = (a.trim(), b.trim());
    let (start, end) = if a.is_empty() {
        let n: u64 = b.parse().ok()?;
        if n == 0 {
            return None;
        }
        (size.saturating_sub(n), size)
    } else {
        let start: u64 = a.parse().ok()?;
        let end = if b.is_empty() {
            size
        } else {
            b.parse::<u64>().ok()?.saturating_add(1).min(size)
        };
        (start, end)
    };
    (start < end && start < size).then_some((start, end))
}

/// Streams `body` into the blob at `key`, refusing more than `max` bytes (with `over`) and,
/// from its first bytes on, anything that is not a package: nothing is stored then. Returns
/// (size, sha256).
async fn store_stream<S, E>(
    state: &AppState,
    key: &str,
    body: S,
    max: u64,
    over: &(dyn Fn() -> ApiError + Sync),
) -> ApiResult<(u64, String)>
where
    S: Stream<Item = Result<Bytes, E>> + Unpin,
    E: std::fmt::Display,
{
    let store = state.engine.blobs.object_store();
    let path = blob_path(key)?;
    let mut writer = BufWriter::with_capacity(store, path, 8 << 20);
    let mut hasher = Sha256::new();
    let mut size: u64 = 0;
    let mut body = body;
    // The first bytes, until they tell a package from anything else.
    let mut head: Option<Vec<u8>> = Some(Vec::with_capacity(limits::MAGIC_LEN));
    let result: ApiResult<()> = async {
        while let Some(chunk) = body.next().await {
            let chunk =
                chunk.map_err(|e| ApiError::bad_request(format!("the upload broke off: {e}")))?;
            size += chunk.len() as u64;
            if size > max {
                return Err(over());
            }
            if let Some(h) = &mut head {
                let take = (limits::MAGIC_LEN - h.len()).min(chunk.len());
                h.extend_from_slice(&chunk[..take]);
                match limits::looks_like_package(h) {
                    Some(true) => head = None,
                    Some(false) => return Err(limits::not_a_package()),
                    None => {}
                }
            }
            hasher.update(&chunk);
            writer.put(chunk).await.map_err(ApiError::internal)?;
        }
        if head.is_some() && size > 0 {
            return Err(limits::not_a_package()); // too short to tell: not a package
        }
        Ok(())
    }
    .await;
    match result {
        Ok(()) => {
            writer.shutdown().await.map_err(ApiError::internal)?;
            Ok((size, hex::encode(hasher.finalize())))
        }
        Err(e) => {
            let _ = writer.abort().await;
            Err(e)
        }
    }
}

fn too_large(max: u64) -> ApiError {
    ApiError::too_large(format!(
        "the package is larger than this server accepts ({max} bytes); ask the operator to raise --max-upload-bytes"
    ))
}

/// `PUT` or `POST /fzip/upload/{token}`.
pub async fn upload(
    State(state): State<AppState>,
    Path(token): Path<String>,
    request: Request,
) -> ApiResult<Response> {
    let grant = state
        .signer
        .verify(&token, "put", now_ms())
        .map_err(forbidden)?;
    tracing::Span::current().record("job_id", grant.job.as_str());
    let max = state.config.max_upload_bytes;
    if let Some(len) = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
        && len > max.saturating_add(64 << 10)
    {
        return Err(refuse(request, too_large(max)).await);
    }
    // The job must still be waiting for its package.
    let job = state
        .blocking({
            let g = grant.clone();
            move |s| Ok(s.jobs.get_job(&g.user, &g.job)?)
        })
        .await?;
    let Some(job) = job else {
        let gone = ApiError::not_found("the job this upload belongs to no longer exists");
        return Err(refuse(request, gone).await);
    };
    if job.status != statuses(job.job_type).initial || job.package_key.is_some() {
        let late = ApiError::conflict(format!(
            "job {} does not expect an upload now (it is {})",
            job.job_id,
            job.status.as_str()
        ));
        return Err(refuse(request, late).await);
    }
    // Per-user limits: uploads at once, and the storage the user's packages take.
    let user_limits = state.config.user_limits.clone();
    let _slot = match state
        .limiter
        .start_upload(&grant.user, user_limits.max_concurrent_uploads)
    {
        Ok(slot) => slot,
        Err(e) => return Err(refuse(request, e).await),
    };
    let staged = state
        .blocking({
            let user = grant.user.clone();
            move |s| Ok(s.jobs.user_load(&user, now_ms())?.staged_bytes)
        })
        .await?;
    let room = user_limits.max_staged_bytes.saturating_sub(staged);
    let (max, over): (u64, Box<dyn Fn() -> ApiError + Send + Sync>) = if room < max {
        let limit = user_limits.max_staged_bytes;
        (room, Box::new(move || limits::storage_limit(staged, limit)))
    } else {
        (max, Box::new(move || too_large(max)))
    };
    if let Some(len) = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
        && len > max.saturating_add(64 << 10)
    {
        return Err(refuse(request, over()).await);
    }
    let is_form = request
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| ct.starts_with("multipart/form-data"));
    let method = request.method().clone();
    let (size, sha) = if method == Method::POST && is_form {
        let mut form = Multipart::from_request(request, &state)
            .await
            .map_err(|e| {
                ApiError::bad_request(format!("the form is not valid multipart data: {e}"))
            })?;
        let mut stored = None;
        while let Some(field) = form.next_field().await.map_err(|e| {
            ApiError::bad_request(format!("the form is not valid multipart data: {e}"))
        })? {
            let name = field.name().unwrap_or("").to_string();
            if name == "file" {
                let stream = field.map_err(|e| e.to_string());
                match store_stream(&state, &grant.key, Box::pin(stream), max, &over).await {
                    Ok(v) => stored = Some(v),
                    Err(e) => {
                        // Refused midway (over a limit, not a package): read and drop what the
                        // client is still sending, for at most a second, so that it gets the
                        // answer rather than a reset connection.
                        let drain = async { while let Ok(Some(_)) = form.next_field().await {} };
                        let _ =
                            tokio::time::timeout(std::time::Duration::from_secs(1), drain).await;
                        return Err(e);
                    }
                }
                break;
            }
            let value = field.text().await.unwrap_or_default();
            if name == "key" && value != grant.key {
                return Err(ApiError::forbidden(
                    "the form's key does not match the signed URL",
                ));
            }
        }
        stored.ok_or_else(|| {
            ApiError::bad_request(
                "the form has no `file` field (send the fields first, then `file`)",
            )
        })?
    } else if method == Method::PUT || method == Method::POST {
        let stream = request.into_body().into_data_stream();
        store_stream(&state, &grant.key, stream, max, &over).await?
    } else {
        return Err(ApiError::bad_request("upload with PUT, or POST a form"));
    };
    if size == 0 {
        let _ = delete_blob(&state, &grant.key).await;
        return Err(ApiError::bad_request("the upload is empty"));
    }
    let result = state
        .blocking({
            let (g, sha) = (grant.clone(), sha.clone());
            move |s| {
                let ttl = s.config.package_ttl.as_millis() as i64;
                jobs::modify(s.jobs.as_ref(), &g.user, &g.job, |j| {
                    let now = now_ms();
                    jobs::package_uploaded(j, &g.key, size, Some(&sha), now)
                        .map_err(ApiError::from)?;
                    // The uploaded package is kept as long as a backup's would be.
                    j.expires_at = Some(now.saturating_add(ttl));
                    Ok::<(), ApiError>(())
                })
            }
        })
        .await;
    match result {
        Ok(Some(_)) => {}
        Ok(None) => {
            let _ = delete_blob(&state, &grant.key).await;
            return Err(ApiError::not_found(
                "the job this upload belongs to no longer exists",
            ));
        }
        Err(e) => {
            let _ = delete_blob(&state, &grant.key).await;
            return Err(e);
        }
    }
    state.audit(
        &grant.user,
        "package.upload",
        Some(&grant.job),
        "ok",
        Some(format!("{size} bytes")),
    );
    metrics::histogram!("fzip_upload_bytes").record(size as f64);
    state.work_ready.notify_waiters();
    let mut resp = StatusCode::NO_CONTENT.into_response();
    if let Ok(v) = HeaderValue::from_str(&format!("\"{sha}\"")) {
        resp.headers_mut().insert(header::ETAG, v);
    }
    Ok(resp)
}

/// After a validation that found the uploaded package itself invalid (`VALIDATION_FAILED`):
/// its bytes are deleted, as nothing can come of them, and the job is kept with its report.
/// (A package refused because of the profile — not empty, conflicts — is kept for a retry.)
/// Runs on a blocking thread.
pub fn discard_invalid_upload(
    state: &AppState,
    user: &str,
    job_id: &str,
) -> Result<(), fzip_store::StoreError> {
    let Some(job) = state.jobs.get_job(user, job_id)? else {
        return Ok(());
    };
    let s = statuses(job.job_type);
    let invalid = |j: &fzip_store::jobs::Job| {
        !j.job_type.produces_package()
            && j.work.is_none()
            && (j.status == s.validation_failed || j.status == s.failed)
            && j.error_code.as_deref() == Some("VALIDATION_FAILED")
            && j.package_key.is_some()
    };
    if !invalid(&job) {
        return Ok(());
    }
    let Some(key) = job.package_key.clone() else {
        return Ok(());
    };
    state.engine.blobs.delete(&key)?;
    jobs::modify::<(), fzip_store::StoreError>(state.jobs.as_ref(), user, job_id, |j| {
        if invalid(j) && j.package_key.as_deref() == Some(key.as_str()) {
            j.package_key = None;
            j.updated_at = now_ms();
            if let Some(e) = &mut j.error {
                e.push_str(" (the uploaded package was deleted: upload a corrected one)");
            }
        }
        Ok(())
    })?;
    Ok(())
}

async fn delete_blob(state: &AppState, key: &str) -> ApiResult<()> {
    let store = state.engine.blobs.object_store();
    let path = blob_path(key)?;
    match store.delete(&path).await {
        Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
        Err(e) => Err(ApiError::internal(e)),
    }
}

use axum::extract::FromRequest;

/// An upload refused before its body was read: up to 1 MiB of the body is read (and dropped),
/// for at most a second, so that a client still sending a small package gets the answer instead
/// of a connection reset. Larger bodies are not read further: the connection closes.
async fn refuse(request: axum::extract::Request, error: ApiError) -> ApiError {
    use futures::StreamExt;
    let mut body = request.into_body().into_data_stream();
    let mut left: usize = 1 << 20;
    let _ = tokio::time::timeout(std::time::Duration::from_secs(1), async {
        while left > 0 {
            match body.next().await {
                Some(Ok(chunk)) => left = left.saturating_sub(chunk.len()),
                _ => break,
            }
        }
    })
    .await;
    error
}

#[cfg(test)]
mod tests {
    use super::parse_range;

    #[test]
    fn ranges() {
        assert_eq!(parse_range("bytes=0-9", 100), Some((0, 10)));
        assert_eq!(parse_range("bytes=90-", 100), Some((90, 100)));
        assert_eq!(parse_range("bytes=-10", 100), Some((90, 100)));
        assert_eq!(parse_range("bytes=95-200", 100), Some((95, 100)));
        assert_eq!(parse_range("bytes=100-", 100), None);
        assert_eq!(parse_range("bytes=5-2", 100), None);
        assert_eq!(parse_range("bytes=0-1,5-6", 100), None);
        assert_eq!(parse_range("items=0-1", 100), None);
    }
}
