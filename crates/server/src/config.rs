//! How a server is set up.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use fzip_format::Limits;

/// Who may call the API.
#[derive(Clone, Debug)]
pub enum AuthConfig {
    /// Tokens signed with a shared secret (HS256): the embedded default. `fzip token` mints them.
    Hs256 {
        secret: Vec<u8>,
        issuer: String,
        audience: String,
    },
    /// Tokens signed by an identity provider (RS256) whose public keys are at a JWKS URL, as
    /// Cognito issues them.
    Jwks {
        url: String,
        issuer: Option<String>,
        audience: Option<String>,
    },
}

/// Everything a server needs to know.
#[derive(Clone, Debug)]
pub struct ServerConfig {
    pub listen: SocketAddr,
    /// Where staging files go (`{data_dir}/tmp`).
    pub data_dir: PathBuf,
    /// The server's address as clients reach it, for signed URLs (`https://fzip.example.com`).
    /// Without it, URLs are built from each request's `Host`.
    pub public_url: Option<String>,
    pub auth: AuthConfig,
    /// Key for signed download and upload URLs.
    pub url_signing_key: Vec<u8>,
    /// How long a finished backup stays downloadable.
    pub package_ttl: Duration,
    /// How long a signed URL is valid.
    pub url_ttl: Duration,
    /// Largest package accepted for upload.
    pub max_upload_bytes: u64,
    /// Jobs run at the same time in this process.
    pub workers: usize,
    /// How long a worker's claim on a job lasts without a heartbeat.
    pub lease: Duration,
    /// How many times one piece of a job's work may be started (after a crash, the job is
    /// picked up again) before the job is failed.
    pub max_attempts: u32,
    /// On shutdown, how long running jobs may take to finish before they are stopped and put
    /// back in the queue.
    pub shutdown_grace: Duration,
    /// How often expired packages are looked for.
    pub sweep_interval: Duration,
    pub limits: Limits,
    /// A name for this process in job leases (host and pid by default).
    pub worker_name: String,
}

impl ServerConfig {
    /// Defaults for the embedded setup.
    pub fn new(
        listen: SocketAddr,
        data_dir: PathBuf,
        auth: AuthConfig,
        url_signing_key: Vec<u8>,
    ) -> Self {
        ServerConfig {
            listen,
            data_dir,
            public_url: None,
            auth,
            url_signing_key,
            package_ttl: Duration::from_secs(7 * 24 * 3600),
            url_ttl: Duration::from_secs(3600),
            max_upload_bytes: 2 << 30,
            workers: 2,
            lease: Duration::from_secs(30),
            max_attempts: fzip_engine::jobs::MAX_ATTEMPTS,
            shutdown_grace: Duration::from_secs(20),
            sweep_interval: Duration::from_secs(60),
            limits: Limits::default(),
            worker_name: format!("fzip-{}", std::process::id()),
        }
    }
}
