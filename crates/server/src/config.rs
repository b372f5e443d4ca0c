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
    /// On shutdown, how long running jobs may take to finish before they are stopped and put
    /// back in the queue.
    pub shutdown_grace: Duration,
    /// How often expired packages are looked for.
    pub sweep_interval: Duration,
    pub limits: Limits,
    /// A name for this process in job leases (host and pid by default).
    pub worker_name: String,
    /// Origins (`https://app.example.com`) whose pages may call the API from the browser: their
    /// preflights are answered and responses carry the CORS headers. None by default.
    pub cors_origins: Vec<String>,
    /// What one user may have at once.
    pub user_limits: UserLimits,
}

/// What one user may have at once; past a limit, requests get 429 with a stable `error` code.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UserLimits {
    /// Jobs with work queued or running (`TOO_MANY_JOBS`).
    pub max_active_jobs: u64,
    /// Restore and import jobs waiting for their upload (`TOO_MANY_UPLOADS`).
    pub max_open_uploads: u64,
    /// Uploads streaming into this server at the same time (`TOO_MANY_UPLOADS`).
    pub max_concurrent_uploads: usize,
    /// Bytes of packages kept for the user: backups made and packages uploaded
    /// (`STORAGE_LIMIT`).
    pub max_staged_bytes: u64,
    /// Jobs of one user running at once, across every server sharing the job table; `None`:
    /// one less than `workers` (at least 1), so a worker stays free for other users.
    pub max_running: Option<u32>,
}

impl Default for UserLimits {
    fn default() -> Self {
        UserLimits {
            max_active_jobs: 20,
            max_open_uploads: 10,
            max_concurrent_uploads: 2,
            max_staged_bytes: 20 << 30,
            max_running: None,
        }
    }
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
            shutdown_grace: Duration::from_secs(20),
            sweep_interval: Duration::from_secs(60),
            limits: Limits::default(),
            worker_name: format!("fzip-{}", std::process::id()),
            cors_origins: Vec::new(),
            user_limits: UserLimits::default(),
        }
    }

    /// How many of one user's jobs may run at once.
    pub fn max_running_per_user(&self) -> u32 {
        self.user_limits.max_running.unwrap_or_else(|| {
            u32::try_from(self.workers.saturating_sub(1).max(1)).unwrap_or(u32::MAX)
        })
    }
}
