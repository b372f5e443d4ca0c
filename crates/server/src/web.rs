//! The web page at `/`: one HTML document, one script, one stylesheet and an icon, compiled into
//! the binary (no build step, nothing fetched at run time). The page signs in with a bearer token
//! and then uses the API exactly as any other client does.
//!
//! Every asset is sent with an `ETag` (answered with 304 when it matches) and `Cache-Control:
//! no-cache`, so a new server version is picked up at once. The page gets a strict
//! Content-Security-Policy: scripts and styles only from this origin (no inline code), and
//! `connect-src` limited to this origin plus, when blob storage hands out presigned URLs, the
//! object store's origin (uploads go straight there).

use std::sync::OnceLock;
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use fzip_store::Presign;
use sha2::{Digest, Sha256};

use crate::state::AppState;

/// A compiled-in file.
struct Asset {
    body: &'static str,
    content_type: &'static str,
    etag: String,
}

struct Assets {
    index: Asset,
    script: Asset,
    style: Asset,
    icon: Asset,
}

fn asset(body: &'static str, content_type: &'static str) -> Asset {
    let digest = hex::encode(Sha256::digest(body.as_bytes()));
    Asset {
        body,
        content_type,
        etag: format!("\"{}\"", &digest[..32]),
    }
}

fn assets() -> &'static Assets {
    static ASSETS: OnceLock<Assets> = OnceLock::new();
    ASSETS.get_or_init(|| Assets {
        index: asset(
            include_str!("../web/index.html"),
            "text/html; charset=utf-8",
        ),
        script: asset(
            include_str!("../web/app.js"),
            "text/javascript; charset=utf-8",
        ),
        style: asset(include_str!("../web/app.css"), "text/css; charset=utf-8"),
        icon: asset(include_str!("../web/icon.svg"), "image/svg+xml"),
    })
}

/// The page's routes: `/`, `/app.js`, `/app.css`, `/icon.svg`.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/", get(index))
        .route(
            "/app.js",
            get(|h: HeaderMap| async move { serve(&assets().script, &h, None) }),
        )
        .route(
            "/app.css",
            get(|h: HeaderMap| async move { serve(&assets().style, &h, None) }),
        )
        .route(
            "/icon.svg",
            get(|h: HeaderMap| async move { serve(&assets().icon, &h, None) }),
        )
}

async fn index(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let object_store = if state.engine.blobs.can_presign() {
        state
            .blocking(|s| Ok(presigned_origin(s)))
            .await
            .ok()
            .flatten()
    } else {
        None
    };
    let csp = content_security_policy(object_store.as_deref());
    serve(&assets().index, &headers, Some(&csp))
}

/// The scheme, host and port presigned URLs point at (the S3 endpoint), if any.
fn presigned_origin(state: &AppState) -> Option<String> {
    let url = state
        .engine
        .blobs
        .presigned_url(Presign::Put, "csp-probe", Duration::from_secs(60))
        .ok()??;
    origin_of(&url)
}

/// `https://host:port` of an absolute http(s) URL.
fn origin_of(url: &str) -> Option<String> {
    let (scheme, rest) = url.split_once("://")?;
    if scheme != "http" && scheme != "https" {
        return None;
    }
    let authority = rest.split(['/', '?', '#']).next()?;
    let host = authority.rsplit('@').next()?;
    let ok = !host.is_empty()
        && host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || ".-:[]".contains(c));
    ok.then(|| format!("{scheme}://{host}"))
}

/// The page's policy: nothing inline, nothing from elsewhere, except that the browser may talk
/// to the object store presigned uploads go to.
fn content_security_policy(object_store: Option<&str>) -> String {
    let connect = match object_store {
        Some(origin) => format!("'self' {origin}"),
        None => "'self'".to_string(),
    };
    format!(
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
         connect-src {connect}; form-action 'none'; frame-ancestors 'none'; base-uri 'none'"
    )
}

fn serve(asset: &Asset, headers: &HeaderMap, csp: Option<&str>) -> Response {
    let fresh = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.split(',')
                .any(|t| t.trim() == asset.etag || t.trim() == "*")
        });
    let mut response = if fresh {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        asset.body.into_response()
    };
    let h = response.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(asset.content_type),
    );
    if let Ok(v) = HeaderValue::from_str(&asset.etag) {
        h.insert(header::ETAG, v);
    }
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    if let Some(csp) = csp
        && let Ok(v) = HeaderValue::from_str(csp)
    {
        h.insert(header::CONTENT_SECURITY_POLICY, v);
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origins() {
        assert_eq!(
            origin_of("http://127.0.0.1:9000/bucket/key?X-Amz-Signature=1").as_deref(),
            Some("http://127.0.0.1:9000")
        );
        assert_eq!(
            origin_of("https://b.s3.eu-west-1.amazonaws.com/k").as_deref(),
            Some("https://b.s3.eu-west-1.amazonaws.com")
        );
        assert_eq!(origin_of("ftp://x/y"), None);
        assert_eq!(origin_of("https://a b/"), None);
        assert_eq!(origin_of("https:///x"), None);
    }

    #[test]
    fn the_policy_allows_no_inline_code() {
        let csp = content_security_policy(Some("http://127.0.0.1:9000"));
        assert!(csp.contains("script-src 'self';"));
        assert!(!csp.contains("unsafe"));
        assert!(csp.contains("connect-src 'self' http://127.0.0.1:9000;"));
        assert!(content_security_policy(None).contains("connect-src 'self';"));
    }

    #[test]
    fn the_page_has_no_inline_script_or_style() {
        let html = assets().index.body;
        assert!(html.contains("<script src=\"/app.js\" defer></script>"));
        assert!(!html.contains("<script>"), "inline scripts break the CSP");
        assert!(!html.contains("style="), "inline styles break the CSP");
        assert!(!html.contains("onclick"), "inline handlers break the CSP");
    }
}
