//! fzip's HTTP service: `fzip serve`.
//!
//! - [`routes`]: the FZIP API of both design documents (backup/restore and export/import), with
//!   HouseF3's status strings, phases and key names, documented at `/openapi.json`.
//! - [`files`]: signed package download (Range, ETag) and upload (PUT, or HouseF3's form POST).
//! - [`auth`]: bearer JWTs (HS256 with a local secret, or RS256 from a JWKS URL).
//! - [`workers`]: jobs run in a pool of workers, claimed with leases from the job table, never
//!   inside a request; the sweeper removes expired packages.
//! - [`web`]: the web page at `/` (compiled-in HTML, script and stylesheet) that drives the API.
//!
//! Requests and workers touch profiles only through [`fzip_engine`].
#![forbid(unsafe_code)]

mod api;
pub mod auth;
pub mod config;
mod error;
mod files;
mod limits;
pub mod listen;
mod metrics;
mod refusals;
mod routes;
pub mod signing;
mod state;
mod views;
mod web;
pub mod workers;

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use axum::Router;
use axum::http::{HeaderName, HeaderValue, Method, Request, header};
use fzip_engine::{CancelFlag, Engine};
use fzip_store::jobs::JobStore;
use tokio::net::TcpListener;
use tower_http::cors::{AllowOrigin, CorsLayer};
use tower_http::trace::TraceLayer;

pub use config::{AuthConfig, ServerConfig, TlsFiles};
pub use state::AppState;

/// Why the server could not run.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: String,
        source: std::io::Error,
    },
    #[error(transparent)]
    Config(#[from] config::ConfigError),
    #[error("{0}")]
    Tls(String),
    #[error("the server failed: {0}")]
    Io(#[from] std::io::Error),
}

/// The shared state of a server.
pub fn new_state(config: ServerConfig, engine: Engine, jobs: Arc<dyn JobStore>) -> AppState {
    AppState(Arc::new(state::Inner {
        auth: auth::Authenticator::new(&config.auth),
        signer: signing::UrlSigner::new(&config.url_signing_key),
        engine,
        jobs,
        config,
        work_ready: tokio::sync::Notify::new(),
        metrics: metrics::handle(),
        abort_work: Arc::new(CancelFlag::default()),
        stopping: std::sync::atomic::AtomicBool::new(false),
        limiter: limits::Limiter::default(),
        refusals: refusals::Refusals::default(),
    }))
}

/// Hides signed URL tokens from logs.
fn loggable_path(path: &str) -> String {
    for prefix in [
        "/fzip/files/",
        "/fzip/upload/",
        "/api/fzip/files/",
        "/api/fzip/upload/",
    ] {
        if path.starts_with(prefix) {
            return format!("{prefix}…");
        }
    }
    path.to_string()
}

/// CORS for the origins `serve --cors-origin` names (none: no CORS headers at all). Preflights
/// are answered here, before authentication; every other response, errors included, carries
/// `Access-Control-Allow-Origin` for a listed origin.
fn cors(origins: &[String]) -> Option<CorsLayer> {
    let origins: Vec<HeaderValue> = origins
        .iter()
        .filter_map(|o| match HeaderValue::from_str(o) {
            Ok(v) => Some(v),
            Err(_) => {
                tracing::warn!(origin = %o, "ignoring a CORS origin that is not a valid header value");
                None
            }
        })
        .collect();
    if origins.is_empty() {
        return None;
    }
    Some(
        CorsLayer::new()
            .allow_origin(AllowOrigin::list(origins))
            .allow_methods([
                Method::GET,
                Method::HEAD,
                Method::POST,
                Method::PUT,
                Method::DELETE,
            ])
            .allow_headers([
                header::AUTHORIZATION,
                header::CONTENT_TYPE,
                header::ACCEPT,
                header::RANGE,
                header::IF_NONE_MATCH,
                HeaderName::from_static("idempotency-key"),
            ])
            .expose_headers([
                header::LOCATION,
                header::ETAG,
                header::CONTENT_DISPOSITION,
                header::CONTENT_LENGTH,
                header::CONTENT_RANGE,
            ])
            .max_age(Duration::from_secs(600)),
    )
}

/// The HTTP application: every route under `/fzip` and again under `/api/fzip`.
pub fn app(state: AppState) -> Router {
    let (api, openapi) = routes::api();
    let api = api.merge(routes::openapi_route(openapi));
    let mut router = Router::new()
        .merge(api.clone())
        .nest("/api", api)
        .merge(web::router())
        .layer(axum::middleware::from_fn(metrics::track));
    if let Some(cors) = cors(&state.config.cors_origins) {
        router = router.layer(cors);
    }
    router
        .layer(
            TraceLayer::new_for_http().make_span_with(|req: &Request<_>| {
                tracing::info_span!(
                    "request",
                    method = %req.method(),
                    path = %loggable_path(req.uri().path()),
                    user = tracing::field::Empty,
                    job_id = tracing::field::Empty,
                )
            }),
        )
        .with_state(state)
}

/// A running server (for tests and embedding): its address and a way to stop it.
pub struct RunningServer {
    pub addr: std::net::SocketAddr,
    pub state: AppState,
    stop: tokio::sync::watch::Sender<bool>,
    handle: tokio::task::JoinHandle<Result<(), ServerError>>,
}

impl RunningServer {
    /// Stops gracefully and waits.
    pub async fn stop(self) -> Result<(), ServerError> {
        let _ = self.stop.send(true);
        self.handle
            .await
            .map_err(|e| ServerError::Io(std::io::Error::other(e)))?
    }
}

/// Binds and starts serving in the background.
pub async fn start(
    mut config: ServerConfig,
    engine: Engine,
    jobs: Arc<dyn JobStore>,
) -> Result<RunningServer, ServerError> {
    config.check()?;
    let listener = TcpListener::bind(config.listen)
        .await
        .map_err(|source| ServerError::Bind {
            addr: config.listen.to_string(),
            source,
        })?;
    let addr = listener.local_addr()?;
    // Links use the address actually bound (port 0 is given one).
    config.listen = addr;
    let state = new_state(config, engine, jobs);
    let (stop, mut stopped) = tokio::sync::watch::channel(false);
    let handle = tokio::spawn(run(listener, state.clone(), async move {
        let _ = stopped.changed().await;
    }));
    Ok(RunningServer {
        addr,
        state,
        stop,
        handle,
    })
}

/// Serves until `shutdown` resolves, then stops gracefully: no new requests or claims; running
/// jobs get `shutdown_grace` to finish, then are stopped (rolling back) and left in the queue for
/// the next start. Connections are served by [`listen::serve`] (limits, timeouts, TLS).
pub async fn run(
    listener: TcpListener,
    state: AppState,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<(), ServerError> {
    state.config.check()?;
    let tls = state
        .config
        .tls
        .as_ref()
        .map(listen::tls_acceptor)
        .transpose()?;
    std::fs::create_dir_all(state.config.data_dir.join("tmp"))?;
    let workers = workers::spawn(&state, state.config.workers);
    let sweeper = workers::spawn_sweeper(&state);
    tracing::info!(addr = %listener.local_addr()?, workers = state.config.workers, "serving");
    let served = listen::serve(
        listener,
        app(state.clone()),
        tls,
        &state.config,
        state.config.shutdown_grace,
        shutdown,
    )
    .await;
    tracing::info!("stopping: no new work is taken");
    state.stopping.store(true, Ordering::SeqCst);
    state.work_ready.notify_waiters();
    sweeper.abort();
    let grace = state.config.shutdown_grace;
    let all = futures::future::join_all(workers);
    tokio::pin!(all);
    if tokio::time::timeout(grace, &mut all).await.is_err() {
        tracing::warn!(
            ?grace,
            "running jobs did not finish in time; stopping them (they resume at the next start)"
        );
        state.abort_work.cancel();
        let _ = tokio::time::timeout(Duration::from_secs(60), &mut all).await;
    }
    // The summary of refused requests still counting.
    let st = state.clone();
    let _ = tokio::task::spawn_blocking(move || st.flush_refusals(i64::MAX)).await;
    tracing::info!("stopped");
    served
}

/// Resolves on Ctrl-C or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {}
        _ = term => {}
    }
}
