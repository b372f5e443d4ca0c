//! Prometheus metrics: jobs by type and outcome, durations, package sizes, entities processed,
//! HTTP requests.

use std::sync::OnceLock;
use std::time::Instant;

use axum::extract::{MatchedPath, Request};
use axum::middleware::Next;
use axum::response::Response;
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// The process-wide recorder (installed on first use).
pub fn handle() -> PrometheusHandle {
    HANDLE
        .get_or_init(|| {
            let recorder = PrometheusBuilder::new().build_recorder();
            let handle = recorder.handle();
            if metrics::set_global_recorder(recorder).is_err() {
                tracing::warn!("a metrics recorder was already installed; /metrics may be empty");
            }
            handle
        })
        .clone()
}

/// The method label: one of the methods the API knows, or `other` (a client may send any token
/// as a method; each distinct label would be a new time series kept forever).
fn method_label(method: &axum::http::Method) -> &'static str {
    use axum::http::Method;
    match *method {
        Method::GET => "GET",
        Method::HEAD => "HEAD",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::PATCH => "PATCH",
        Method::OPTIONS => "OPTIONS",
        _ => "other",
    }
}

/// The status label: its class (`2xx`, `4xx`, …).
fn status_label(status: axum::http::StatusCode) -> &'static str {
    match status.as_u16() {
        100..=199 => "1xx",
        200..=299 => "2xx",
        300..=399 => "3xx",
        400..=499 => "4xx",
        _ => "5xx",
    }
}

/// Counts requests by method, route and status class, and times them. Every label comes from a
/// fixed set: known methods or `other`, the route's template (`/fzip/backup/{id}/status`, never
/// the path a client sent) or `other` when no route matched, and the status class.
pub async fn track(request: Request, next: Next) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| "other".into());
    let method = method_label(request.method());
    let started = Instant::now();
    let response = next.run(request).await;
    let status = status_label(response.status());
    metrics::counter!("fzip_http_requests_total", "method" => method, "route" => route.clone(), "status" => status)
        .increment(1);
    metrics::histogram!("fzip_http_request_seconds", "method" => method, "route" => route)
        .record(started.elapsed().as_secs_f64());
    response
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::{Method, StatusCode};

    #[test]
    fn labels_come_from_fixed_sets() {
        assert_eq!(method_label(&Method::GET), "GET");
        let made_up = Method::from_bytes(b"X-MADE-UP-1234").unwrap_or(Method::TRACE);
        assert_eq!(method_label(&made_up), "other");
        assert_eq!(method_label(&Method::TRACE), "other");
        assert_eq!(status_label(StatusCode::NOT_FOUND), "4xx");
        assert_eq!(status_label(StatusCode::SERVICE_UNAVAILABLE), "5xx");
        assert_eq!(status_label(StatusCode::OK), "2xx");
    }
}
