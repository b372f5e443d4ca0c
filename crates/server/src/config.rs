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

/// A certificate chain and its private key, PEM files.
#[derive(Clone, Debug)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
}

pub const DEFAULT_MAX_CONNECTIONS: usize = 4096;
pub const DEFAULT_HEADER_TIMEOUT_SECS: u64 = 15;
pub const DEFAULT_IDLE_TIMEOUT_SECS: u64 = 60;

/// A setting that cannot work.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error(
        "fzip serve --listen {listen} accepts connections from other machines, and links in its answers must not be built from what a client claims its Host is: add --public-url URL (the address clients reach, e.g. https://fzip.example.com) or --allowed-host HOST (repeatable), or listen on 127.0.0.1"
    )]
    LinksNeedAHost { listen: SocketAddr },
    #[error("--allowed-host {0:?} is not HOST[:PORT] or http(s)://HOST[:PORT]")]
    BadAllowedHost(String),
    #[error("--public-url {0:?} must start with http:// or https://")]
    BadPublicUrl(String),
}

/// Everything a server needs to know.
#[derive(Clone, Debug)]
pub struct ServerConfig {
    pub listen: SocketAddr,
    /// Where staging files go (`{data_dir}/tmp`).
    pub data_dir: PathBuf,
    /// The server's address as clients reach it, for signed URLs (`https://fzip.example.com`).
    pub public_url: Option<String>,
    /// Without `public_url`: the `Host` names links may be built from (`HOST[:PORT]`, or
    /// `https://HOST[:PORT]` to give the scheme too). A request naming another host gets links
    /// to the first. Without either, links use the listen address (loopback only: see
    /// [`ServerConfig::check`]).
    pub allowed_hosts: Vec<String>,
    /// Serve HTTPS with this certificate chain and private key (PEM files).
    pub tls: Option<TlsFiles>,
    /// Most connections open at once (lowered to fit the open-file limit); more wait in the
    /// kernel's queue until one closes.
    pub max_connections: usize,
    /// How long a client may take to send a request's headers (and a TLS handshake).
    pub header_timeout: Duration,
    /// A connection on which nothing moves for this long is closed.
    pub idle_timeout: Duration,
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
            allowed_hosts: Vec::new(),
            tls: None,
            max_connections: DEFAULT_MAX_CONNECTIONS,
            header_timeout: Duration::from_secs(DEFAULT_HEADER_TIMEOUT_SECS),
            idle_timeout: Duration::from_secs(DEFAULT_IDLE_TIMEOUT_SECS),
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

impl ServerConfig {
    /// Refuses settings that would let a client's headers decide where links point.
    pub fn check(&self) -> Result<(), ConfigError> {
        if let Some(url) = &self.public_url
            && !(url.starts_with("http://") || url.starts_with("https://"))
        {
            return Err(ConfigError::BadPublicUrl(url.clone()));
        }
        for entry in &self.allowed_hosts {
            if split_host(entry).is_none() {
                return Err(ConfigError::BadAllowedHost(entry.clone()));
            }
        }
        if self.public_url.is_none()
            && self.allowed_hosts.is_empty()
            && !self.listen.ip().is_loopback()
        {
            return Err(ConfigError::LinksNeedAHost {
                listen: self.listen,
            });
        }
        Ok(())
    }

    /// The base of links in answers (`https://fzip.example.com`), for a request that named
    /// `host`: `public_url`; else the allowed host it named, or the first allowed host; else the
    /// listen address. Never a host or scheme only the client vouches for.
    pub fn link_base(&self, host: Option<&str>) -> String {
        if let Some(url) = &self.public_url {
            return url.trim_end_matches('/').to_string();
        }
        let scheme = if self.tls.is_some() { "https" } else { "http" };
        let allowed: Vec<(Option<&str>, &str)> = self
            .allowed_hosts
            .iter()
            .filter_map(|h| split_host(h))
            .collect();
        if let Some(first) = allowed.first() {
            let named = host.map(str::trim);
            let (s, h) = allowed
                .iter()
                .find(|(_, h)| named.is_some_and(|n| n.eq_ignore_ascii_case(h)))
                .unwrap_or(first);
            return format!("{}://{h}", s.unwrap_or(scheme));
        }
        format!("{scheme}://{}", self.listen)
    }
}

/// `https://host:port` → (`Some("https")`, `host:port`); `host` → (`None`, `host`).
fn split_host(entry: &str) -> Option<(Option<&str>, &str)> {
    let (scheme, host) = match entry.split_once("://") {
        Some((s @ ("http" | "https"), h)) => (Some(s), h),
        Some(_) => return None,
        None => (None, entry),
    };
    let host = host.trim_end_matches('/');
    let valid = !host.is_empty()
        && host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-.:[]_".contains(c));
    valid.then_some((scheme, host))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(listen: &str) -> ServerConfig {
        ServerConfig::new(
            listen
                .parse()
                .unwrap_or_else(|_| SocketAddr::from(([127, 0, 0, 1], 1))),
            PathBuf::from("."),
            AuthConfig::Jwks {
                url: "http://127.0.0.1:1/jwks".into(),
                issuer: None,
                audience: None,
            },
            vec![0; 32],
        )
    }

    #[test]
    fn links_never_follow_a_forged_host() {
        let mut c = config("127.0.0.1:8080");
        assert!(c.check().is_ok());
        assert_eq!(c.link_base(Some("evil.example")), "http://127.0.0.1:8080");
        c.allowed_hosts = vec![
            "fzip.example.com".into(),
            "https://other.example:8443".into(),
        ];
        assert_eq!(c.link_base(Some("evil.example")), "http://fzip.example.com");
        assert_eq!(
            c.link_base(Some("OTHER.example:8443")),
            "https://other.example:8443"
        );
        c.public_url = Some("https://fzip.example.com/".into());
        assert_eq!(
            c.link_base(Some("other.example:8443")),
            "https://fzip.example.com"
        );
    }

    #[test]
    fn listening_beyond_loopback_needs_a_trusted_host() {
        let mut c = config("0.0.0.0:8080");
        let e = c.check().map(|_| ()).unwrap_err();
        assert!(e.to_string().contains("--public-url"), "{e}");
        c.allowed_hosts = vec!["fzip.example.com".into()];
        assert!(c.check().is_ok());
        c.allowed_hosts = vec!["ftp://x".into()];
        assert!(c.check().is_err());
    }
}
