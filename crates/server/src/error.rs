//! Errors as RFC 9457 problem documents that also carry HouseF3's `error`/`message` keys.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use fzip_engine::EngineError;
use fzip_engine::jobs::TransitionError;
use fzip_store::StoreError;
use serde_json::{Map, Value, json};

/// An error answer.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    /// Stable machine code, such as `PROFILE_NOT_EMPTY`.
    pub code: &'static str,
    pub detail: String,
    pub extra: Map<String, Value>,
    pub www_authenticate: bool,
    /// Seconds for a `Retry-After` header, where waiting helps.
    pub retry_after: Option<u64>,
}

pub type ApiResult<T> = Result<T, ApiError>;

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, detail: impl Into<String>) -> Self {
        ApiError {
            status,
            code,
            detail: detail.into(),
            extra: Map::new(),
            www_authenticate: false,
            retry_after: None,
        }
    }

    /// 429: a per-user limit was reached; `retry_after` when waiting helps.
    pub fn too_many(
        code: &'static str,
        detail: impl Into<String>,
        retry_after: Option<u64>,
    ) -> Self {
        let mut e = Self::new(StatusCode::TOO_MANY_REQUESTS, code, detail);
        e.retry_after = retry_after;
        e
    }

    pub fn with(mut self, key: &str, value: Value) -> Self {
        self.extra.insert(key.to_string(), value);
        self
    }

    pub fn bad_request(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "BAD_REQUEST", detail)
    }

    pub fn unauthorized(detail: impl Into<String>) -> Self {
        let mut e = Self::new(StatusCode::UNAUTHORIZED, "UNAUTHORIZED", detail);
        e.www_authenticate = true;
        e
    }

    pub fn forbidden(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, "FORBIDDEN", detail)
    }

    pub fn not_found(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "NOT_FOUND", detail)
    }

    pub fn conflict(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, "CONFLICT", detail)
    }

    pub fn gone(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::GONE, "GONE", detail)
    }

    pub fn too_large(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::PAYLOAD_TOO_LARGE, "PAYLOAD_TOO_LARGE", detail)
    }

    pub fn unprocessable(code: &'static str, detail: impl Into<String>) -> Self {
        Self::new(StatusCode::UNPROCESSABLE_ENTITY, code, detail)
    }

    /// Something the server depends on is unreachable for now: 503 with `Retry-After`.
    pub fn unavailable(detail: impl Into<String>, retry_after_secs: u64) -> Self {
        let mut e = Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "SERVICE_UNAVAILABLE",
            detail,
        );
        e.retry_after = Some(retry_after_secs.max(1));
        e
    }

    /// An unexpected failure: logged in full, answered without internals.
    pub fn internal(err: impl std::fmt::Display) -> Self {
        tracing::error!(error = %err, "request failed");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "INTERNAL_ERROR",
            "the server failed to handle the request; it has been logged",
        )
    }

    fn title(&self) -> &'static str {
        self.status.canonical_reason().unwrap_or("Error")
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut body = json!({
            "type": format!("urn:fzip:problem:{}", self.code.to_ascii_lowercase().replace('_', "-")),
            "title": self.title(),
            "status": self.status.as_u16(),
            "detail": self.detail,
            "error": self.code,
            "message": self.detail,
        });
        if let Some(obj) = body.as_object_mut() {
            obj.extend(self.extra);
        }
        let mut response = (self.status, axum::Json(body)).into_response();
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        if let Some(secs) = self.retry_after
            && let Ok(v) = HeaderValue::from_str(&secs.to_string())
        {
            response.headers_mut().insert(header::RETRY_AFTER, v);
        }
        if self.www_authenticate {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer error=\"invalid_token\""),
            );
        }
        response
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            // The database or blob storage failing: 503 with the engine's code.
            StoreError::Database(_) | StoreError::Blob(_) => EngineError::from(e).into(),
            other => ApiError::internal(other),
        }
    }
}

impl From<EngineError> for ApiError {
    fn from(e: EngineError) -> Self {
        match e.code() {
            // Infrastructure failures: the service cannot do it now; nothing was written.
            Some(code @ ("DISK_FULL" | "STORAGE_UNAVAILABLE")) => {
                tracing::error!(error = %e, "storage failed");
                let what = match &e {
                    EngineError::Unavailable { resource, .. } => resource.as_str(),
                    _ => "storage",
                };
                ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    code,
                    format!(
                        "the server's {} failed, so nothing was written; try again later (the failure has been logged)",
                        what.replace('_', " ")
                    ),
                )
            }
            Some(code @ "PROFILE_EMPTY") => ApiError::unprocessable(code, e.to_string()),
            _ => ApiError::internal(e),
        }
    }
}

impl From<TransitionError> for ApiError {
    fn from(e: TransitionError) -> Self {
        match e {
            TransitionError::Conflict(m) => ApiError::new(StatusCode::CONFLICT, "INVALID_STATE", m),
            TransitionError::ProfileNotEmpty(m) => {
                ApiError::new(StatusCode::CONFLICT, "PROFILE_NOT_EMPTY", m)
            }
        }
    }
}

impl From<tokio::task::JoinError> for ApiError {
    fn from(e: tokio::task::JoinError) -> Self {
        ApiError::internal(e)
    }
}
