//! An S3-compatible server for tests, running in-process.
//!
//! [`S3Server::start`] serves the S3 API of [`s3s_fs`] over a fresh temporary folder on
//! `127.0.0.1:<random port>`. It checks SigV4 signatures (headers and presigned URLs) against one
//! fixed pair of credentials, supports multipart uploads and conditional puts
//! (`If-None-Match: *`, `If-Match`). A bucket is a subfolder of the root folder.
//!
//! It also answers CORS the way a bucket with a permissive CORS rule does (any origin may `GET`,
//! `PUT`, `POST`, `HEAD` and `DELETE` with any header; `ETag` is exposed), so a web page on
//! another origin can upload to a presigned URL, as fzip's page does in its browser test.
//!
//! The server runs on its own tokio runtime in a dedicated thread, so it works from plain
//! synchronous `#[test]` functions, from `#[tokio::test]` functions and alongside any runtime the
//! caller creates later. It listens on a real TCP port, so a child process can reach it too (pass it
//! [`S3Server::env`]). Dropping the [`S3Server`] stops the server and deletes the folder.
//!
//! ```no_run
//! let server = fzip_test_s3::S3Server::start("packages")?;
//! let mut child = std::process::Command::new("fzip");
//! child.envs(server.env());
//! # Ok::<(), fzip_test_s3::Error>(())
//! ```

use std::future::Future;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::thread::JoinHandle;
use std::time::Duration;

use http::header::{self, HeaderMap, HeaderValue};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto::Builder as ConnBuilder;
use s3s::auth::SimpleAuth;
use s3s::service::S3ServiceBuilder;
use tokio::sync::oneshot;

/// Access key every [`S3Server`] accepts.
pub const ACCESS_KEY: &str = "fzip-test-key";
/// Secret key every [`S3Server`] accepts.
pub const SECRET_KEY: &str = "fzip-test-secret";
/// Region reported by [`S3Server::region`]. The server accepts signatures for any region.
pub const REGION: &str = "us-east-1";

/// How long a dropped server waits for in-flight requests before it abandons them.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(2);

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The bucket name is not a plain S3 bucket name.
    #[error("invalid bucket name {0:?}: use 3-63 characters among a-z, 0-9, '-' and '.'")]
    InvalidBucket(String),
    /// Creating the folder, the runtime, the socket or the thread failed.
    #[error("starting the test S3 server: {context}: {source}")]
    Io {
        /// What was being done.
        context: &'static str,
        /// The underlying error.
        source: std::io::Error,
    },
    /// `s3s_fs` refused the root folder.
    #[error("starting the test S3 server: s3s-fs: {0}")]
    Backend(String),
}

fn io(context: &'static str) -> impl FnOnce(std::io::Error) -> Error {
    move |source| Error::Io { context, source }
}

/// An S3-compatible server over a temporary folder; stops when dropped.
#[derive(Debug)]
pub struct S3Server {
    addr: SocketAddr,
    bucket: String,
    shutdown: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
    // Declared last so the folder outlives the server thread (which is joined in `Drop`).
    root: tempfile::TempDir,
}

impl S3Server {
    /// Starts a server with a fresh temporary root folder and the credentials [`ACCESS_KEY`] /
    /// [`SECRET_KEY`]; creates `bucket` (a subfolder) up front.
    ///
    /// The port is bound before this returns, so the server accepts connections at once.
    pub fn start(bucket: &str) -> Result<S3Server, Error> {
        check_bucket_name(bucket)?;
        let root = tempfile::Builder::new()
            .prefix("fzip-test-s3-")
            .tempdir()
            .map_err(io("creating the root folder"))?;
        std::fs::create_dir(root.path().join(bucket)).map_err(io("creating the bucket folder"))?;

        let fs =
            s3s_fs::FileSystem::new(root.path()).map_err(|e| Error::Backend(format!("{e:?}")))?;
        let service = {
            let mut builder = S3ServiceBuilder::new(fs);
            builder.set_auth(SimpleAuth::from_single(ACCESS_KEY, SECRET_KEY));
            builder.build()
        };

        let std_listener =
            std::net::TcpListener::bind(("127.0.0.1", 0)).map_err(io("binding 127.0.0.1:0"))?;
        std_listener
            .set_nonblocking(true)
            .map_err(io("making the socket non-blocking"))?;
        let addr = std_listener
            .local_addr()
            .map_err(io("reading the bound address"))?;

        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("fzip-test-s3")
            .enable_all()
            .build()
            .map_err(io("building the tokio runtime"))?;
        let listener = {
            let _guard = runtime.enter();
            tokio::net::TcpListener::from_std(std_listener)
                .map_err(io("registering the socket with tokio"))?
        };

        let (shutdown_tx, shutdown_rx) = oneshot::channel();
        let thread = std::thread::Builder::new()
            .name(format!("fzip-test-s3-{}", addr.port()))
            .spawn(move || {
                runtime.block_on(serve(listener, service, shutdown_rx));
                // Abandon whatever is still running (e.g. blocking file I/O) after a short wait.
                runtime.shutdown_timeout(SHUTDOWN_GRACE);
            })
            .map_err(io("spawning the server thread"))?;

        Ok(S3Server {
            addr,
            bucket: bucket.to_owned(),
            shutdown: Some(shutdown_tx),
            thread: Some(thread),
            root,
        })
    }

    /// Base URL of the server, `http://127.0.0.1:PORT` (no trailing slash).
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The socket address the server listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Access key id the server accepts.
    pub fn access_key(&self) -> &str {
        ACCESS_KEY
    }

    /// Secret access key the server accepts.
    pub fn secret_key(&self) -> &str {
        SECRET_KEY
    }

    /// Region to sign requests for (`us-east-1`; the server does not check it).
    pub fn region(&self) -> &str {
        REGION
    }

    /// The bucket created by [`S3Server::start`].
    pub fn bucket(&self) -> &str {
        &self.bucket
    }

    /// The root folder; each bucket is a subfolder of it.
    pub fn root(&self) -> &Path {
        self.root.path()
    }

    /// Where the object `key` of the default bucket lives on disk (whether or not it exists).
    pub fn object_path(&self, key: &str) -> PathBuf {
        self.root.path().join(&self.bucket).join(key)
    }

    /// Creates another bucket (a subfolder of the root). Creating an existing bucket is not an
    /// error.
    pub fn create_bucket(&self, bucket: &str) -> Result<(), Error> {
        check_bucket_name(bucket)?;
        std::fs::create_dir_all(self.root.path().join(bucket))
            .map_err(io("creating the bucket folder"))
    }

    /// Environment variables that make `object_store`'s `AmazonS3Builder::from_env()` (and a
    /// child `fzip` process) talk to this server: `AWS_ENDPOINT_URL` and `AWS_ENDPOINT`,
    /// `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_REGION` and `AWS_DEFAULT_REGION`,
    /// `AWS_ALLOW_HTTP=true`.
    ///
    /// The bucket is not included: name it in the URL (`s3://BUCKET/...`). A child process also
    /// inherits the parent's other `AWS_*` variables (e.g. `AWS_SESSION_TOKEN`,
    /// `AWS_ENDPOINT_URL_S3`, which would override `AWS_ENDPOINT_URL`); remove those if they
    /// may be set.
    pub fn env(&self) -> Vec<(String, String)> {
        let endpoint = self.endpoint();
        [
            ("AWS_ENDPOINT_URL", endpoint.as_str()),
            ("AWS_ENDPOINT", endpoint.as_str()),
            ("AWS_ACCESS_KEY_ID", ACCESS_KEY),
            ("AWS_SECRET_ACCESS_KEY", SECRET_KEY),
            ("AWS_REGION", REGION),
            ("AWS_DEFAULT_REGION", REGION),
            ("AWS_ALLOW_HTTP", "true"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
    }
}

impl Drop for S3Server {
    fn drop(&mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            // The receiver is gone only if the server thread already ended.
            let _ = shutdown.send(());
        }
        if let Some(thread) = self.thread.take() {
            // A panic in the server thread has already been reported on stderr.
            let _ = thread.join();
        }
    }
}

/// Accepts connections until `shutdown` fires (or its sender is dropped), then gives open
/// connections [`SHUTDOWN_GRACE`] to finish.
async fn serve(
    listener: tokio::net::TcpListener,
    service: s3s::service::S3Service,
    mut shutdown: oneshot::Receiver<()>,
) {
    let http = ConnBuilder::new(TokioExecutor::new());
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    loop {
        let socket = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((socket, _)) => socket,
                // Per-connection errors (e.g. the peer reset before accept): keep serving,
                // but do not spin if the error persists (e.g. out of file descriptors).
                Err(_) => {
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                }
            },
            _ = &mut shutdown => break,
        };
        let _ = socket.set_nodelay(true);
        let conn = http.serve_connection(TokioIo::new(socket), Cors(service.clone()));
        let conn = graceful.watch(conn.into_owned());
        tokio::spawn(async move {
            let _ = conn.await;
        });
    }
    drop(listener);
    let _ = tokio::time::timeout(SHUTDOWN_GRACE, graceful.shutdown()).await;
}

/// The S3 service behind a bucket-style CORS rule that allows everything: preflights
/// (`OPTIONS` with `Access-Control-Request-Method`) are answered here, without authentication,
/// as S3 does; every other answer to a request with an `Origin` carries
/// `Access-Control-Allow-Origin` and exposes `ETag`.
#[derive(Clone)]
struct Cors(s3s::service::S3Service);

type CorsFuture =
    Pin<Box<dyn Future<Output = Result<s3s::HttpResponse, s3s::HttpError>> + Send + 'static>>;

impl hyper::service::Service<http::Request<Incoming>> for Cors {
    type Response = s3s::HttpResponse;
    type Error = s3s::HttpError;
    type Future = CorsFuture;

    fn call(&self, req: http::Request<Incoming>) -> Self::Future {
        let has_origin = req.headers().contains_key(header::ORIGIN);
        if req.method() == http::Method::OPTIONS
            && req
                .headers()
                .contains_key(header::ACCESS_CONTROL_REQUEST_METHOD)
        {
            let mut resp = http::Response::new(s3s::Body::empty());
            let h = resp.headers_mut();
            allow(h);
            h.insert(
                header::ACCESS_CONTROL_ALLOW_METHODS,
                HeaderValue::from_static("GET, PUT, POST, HEAD, DELETE"),
            );
            if let Some(asked) = req.headers().get(header::ACCESS_CONTROL_REQUEST_HEADERS) {
                h.insert(header::ACCESS_CONTROL_ALLOW_HEADERS, asked.clone());
            }
            h.insert(
                header::ACCESS_CONTROL_MAX_AGE,
                HeaderValue::from_static("600"),
            );
            return Box::pin(async move { Ok(resp) });
        }
        let answer = hyper::service::Service::call(&self.0, req);
        Box::pin(async move {
            let mut resp = answer.await?;
            if has_origin {
                allow(resp.headers_mut());
            }
            Ok(resp)
        })
    }
}

fn allow(h: &mut HeaderMap) {
    h.insert(
        header::ACCESS_CONTROL_ALLOW_ORIGIN,
        HeaderValue::from_static("*"),
    );
    h.insert(
        header::ACCESS_CONTROL_EXPOSE_HEADERS,
        HeaderValue::from_static("ETag"),
    );
}

/// Accepts the plain bucket names fzip's tests need: 3-63 characters among lowercase ASCII
/// letters, digits, `-` and `.`, starting and ending with a letter or digit.
fn check_bucket_name(bucket: &str) -> Result<(), Error> {
    let edge_ok = |c: Option<char>| c.is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit());
    let ok = (3..=63).contains(&bucket.len())
        && bucket
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '.')
        && edge_ok(bucket.chars().next())
        && edge_ok(bucket.chars().last())
        && !bucket.contains("..");
    if ok {
        Ok(())
    } else {
        Err(Error::InvalidBucket(bucket.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::check_bucket_name;

    #[test]
    fn bucket_names() {
        for good in ["abc", "fzip-packages", "a.b-c.1"] {
            assert!(check_bucket_name(good).is_ok(), "{good}");
        }
        for bad in [
            "",
            "ab",
            "UPPER",
            "a/b",
            "-abc",
            "abc-",
            "a..b",
            "../etc",
            &"a".repeat(64),
        ] {
            assert!(check_bucket_name(bad).is_err(), "{bad}");
        }
    }
}
