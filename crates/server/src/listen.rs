//! The accept loop: HTTP/1.1 (over TLS when configured) with a connection limit and timeouts,
//! so that clients that open sockets and never finish a request cannot lock others out.
//!
//! - At most `max_connections` connections are open at once, a number kept below the process's
//!   open-file limit (whose soft value is raised to the hard one at start). When all are taken,
//!   the loop stops accepting: new connections wait in the kernel's queue (they are not refused,
//!   and the server never runs out of file descriptors) until a connection closes.
//! - A client has `header_timeout` to finish a TLS handshake and each request's headers.
//! - A connection on which no byte moves for `idle_timeout` is closed once its request (if one
//!   is running) is answered; one on which nothing moves for twice as long is dropped.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::Router;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, watch};
use tokio_rustls::TlsAcceptor;

use crate::ServerError;
use crate::config::{ServerConfig, TlsFiles};

/// File descriptors kept for everything that is not a connection (databases, blobs, staging
/// files, logs): at least this many, or a tenth of the limit.
const RESERVED_FDS: u64 = 128;

/// Raises the soft open-file limit to the hard one where allowed, and returns how many
/// connections fit below it.
pub fn connection_limit(configured: usize) -> usize {
    #[cfg(unix)]
    {
        let soft = match rlimit::increase_nofile_limit(u64::MAX) {
            Ok(n) => n,
            Err(e) => {
                tracing::warn!(error = %e, "cannot read or raise the open-file limit");
                rlimit::getrlimit(rlimit::Resource::NOFILE)
                    .map(|(soft, _)| soft)
                    .unwrap_or(1024)
            }
        };
        let reserve = RESERVED_FDS.max(soft / 10);
        let fits = usize::try_from(soft.saturating_sub(reserve).max(16)).unwrap_or(usize::MAX);
        if configured > fits {
            tracing::warn!(
                configured,
                open_file_limit = soft,
                using = fits,
                "--max-connections is above what the open-file limit allows; using less (raise `ulimit -n` for more)"
            );
            return fits;
        }
        configured.max(1)
    }
    #[cfg(not(unix))]
    {
        configured.max(1)
    }
}

/// Reads the certificate chain and key and makes the TLS acceptor (the same rustls crypto
/// provider, aws-lc-rs, as the PostgreSQL client's TLS).
pub fn tls_acceptor(files: &TlsFiles) -> Result<TlsAcceptor, ServerError> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let tls = |what: String| ServerError::Tls(what);
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&files.cert)
        .and_then(|it| it.collect::<Result<_, _>>())
        .map_err(|e| {
            tls(format!(
                "cannot read the certificate chain {} ({e}); give a PEM file with --tls-cert",
                files.cert.display()
            ))
        })?;
    if certs.is_empty() {
        return Err(tls(format!(
            "{} holds no certificate; give a PEM file with --tls-cert",
            files.cert.display()
        )));
    }
    let key = PrivateKeyDer::from_pem_file(&files.key).map_err(|e| {
        tls(format!(
            "cannot read the private key {} ({e}); give a PEM file with --tls-key",
            files.key.display()
        ))
    })?;
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| tls(format!("TLS setup failed ({e})")))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| {
            tls(format!(
                "the certificate {} and the key {} do not make a usable pair ({e})",
                files.cert.display(),
                files.key.display()
            ))
        })?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(TlsAcceptor::from(Arc::new(config)))
}

#[derive(Clone, Copy)]
struct Timeouts {
    header: Duration,
    idle: Duration,
}

/// Serves `app` on `listener` until `shutdown` resolves; then stops accepting, lets open
/// connections finish their request (for at most `drain`), and returns.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    tls: Option<TlsAcceptor>,
    config: &ServerConfig,
    drain: Duration,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<(), ServerError> {
    let max = connection_limit(config.max_connections);
    let timeouts = Timeouts {
        header: config.header_timeout,
        idle: config.idle_timeout,
    };
    tracing::info!(
        max_connections = max,
        header_timeout = ?timeouts.header,
        idle_timeout = ?timeouts.idle,
        tls = tls.is_some(),
        "accepting connections"
    );
    let permits = Arc::new(Semaphore::new(max));
    let (close, closing) = watch::channel(false);
    tokio::pin!(shutdown);
    let mut full_since: Option<Instant> = None;
    loop {
        let permit = match permits.clone().try_acquire_owned() {
            Ok(p) => p,
            Err(_) => {
                if full_since.is_none_or(|t| t.elapsed() > Duration::from_secs(10)) {
                    tracing::warn!(
                        max_connections = max,
                        "all connections are taken; new ones wait until one closes"
                    );
                    full_since = Some(Instant::now());
                }
                tokio::select! {
                    _ = &mut shutdown => break,
                    p = permits.clone().acquire_owned() => match p {
                        Ok(p) => p,
                        Err(_) => break,
                    },
                }
            }
        };
        let stream = tokio::select! {
            _ = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(e) => {
                    if !is_connection_error(&e) {
                        // Out of file descriptors or memory: wait a little rather than spin.
                        tracing::warn!(error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                    continue;
                }
            },
        };
        let app = app.clone();
        let tls = tls.clone();
        let closing = closing.clone();
        tokio::spawn(async move {
            connection(stream, app, tls, timeouts, closing).await;
            drop(permit);
        });
    }
    drop(listener);
    let _ = close.send(true);
    let all = u32::try_from(max).unwrap_or(u32::MAX);
    if tokio::time::timeout(drain, permits.acquire_many(all))
        .await
        .is_err()
    {
        tracing::warn!(?drain, "some connections were still open at shutdown");
    }
    Ok(())
}

/// Errors of one connection that do not concern the listener.
fn is_connection_error(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionRefused
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
    )
}

async fn connection(
    stream: TcpStream,
    app: Router,
    tls: Option<TlsAcceptor>,
    timeouts: Timeouts,
    closing: watch::Receiver<bool>,
) {
    let _ = stream.set_nodelay(true);
    match tls {
        None => http(stream, app, timeouts, closing).await,
        Some(acceptor) => {
            match tokio::time::timeout(timeouts.header, acceptor.accept(stream)).await {
                Ok(Ok(stream)) => http(stream, app, timeouts, closing).await,
                Ok(Err(e)) => tracing::debug!(error = %e, "TLS handshake failed"),
                Err(_) => tracing::debug!("TLS handshake timed out"),
            }
        }
    }
}

/// Serves HTTP/1.1 on one connection until it closes, times out or the server stops.
async fn http<I>(io: I, app: Router, timeouts: Timeouts, mut closing: watch::Receiver<bool>)
where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let activity = Activity::new();
    let io = TokioIo::new(Watched {
        inner: io,
        activity: activity.clone(),
    });
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(timeouts.header)
        .keep_alive(true);
    let conn = builder.serve_connection(io, TowerToHyperService::new(app));
    tokio::pin!(conn);
    let mut ending = false;
    loop {
        tokio::select! {
            result = conn.as_mut() => {
                if let Err(e) = result {
                    tracing::debug!(error = %e, "connection ended");
                }
                return;
            }
            _ = closing.changed(), if !ending => {
                conn.as_mut().graceful_shutdown();
                ending = true;
            }
            _ = activity.idle_for(timeouts.idle), if !ending => {
                conn.as_mut().graceful_shutdown();
                ending = true;
            }
            _ = activity.idle_for(timeouts.idle * 2), if ending => {
                tracing::debug!("connection dropped: nothing moved on it");
                return;
            }
        }
    }
}

/// When a byte last moved on a connection.
#[derive(Clone)]
struct Activity {
    start: Instant,
    last_ms: Arc<AtomicU64>,
}

impl Activity {
    fn new() -> Self {
        Activity {
            start: Instant::now(),
            last_ms: Arc::new(AtomicU64::new(0)),
        }
    }

    fn touch(&self) {
        let ms = u64::try_from(self.start.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.last_ms.store(ms, Ordering::Relaxed);
    }

    /// Resolves once nothing has moved for `period`.
    async fn idle_for(&self, period: Duration) {
        loop {
            let last = self.start + Duration::from_millis(self.last_ms.load(Ordering::Relaxed));
            let quiet = last.elapsed();
            if quiet >= period {
                return;
            }
            tokio::time::sleep(period - quiet).await;
        }
    }
}

/// A connection's stream that records when bytes move.
struct Watched<I> {
    inner: I,
    activity: Activity,
}

impl<I: AsyncRead + Unpin> AsyncRead for Watched<I> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        if matches!(polled, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.activity.touch();
        }
        polled
    }
}

impl<I: AsyncWrite + Unpin> AsyncWrite for Watched<I> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write(cx, buf);
        if matches!(polled, Poll::Ready(Ok(n)) if n > 0) {
            self.activity.touch();
        }
        polled
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        if matches!(polled, Poll::Ready(Ok(n)) if n > 0) {
            self.activity.touch();
        }
        polled
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}
