//! Bearer JWTs: the user is the `sub` claim.
//!
//! - HS256 with a shared secret (the embedded default; `fzip token --user U` mints tokens).
//! - RS256 with the identity provider's keys from a JWKS URL, with issuer and audience checks.
//!   Cognito access tokens carry the app client in `client_id` instead of `aud`; either matches.
//!   The key set is fetched at first use and kept for its `Cache-Control: max-age` (clamped to
//!   5 minutes … 24 hours; 1 hour without one); it is fetched again when that lapses or a token
//!   names a key not seen yet, but at most once per 30 s (5 s after a failed fetch), by one
//!   request at a time: tokens with invented `kid`s never make a fetch each. While the key set
//!   cannot be fetched, the keys already held keep working, and a token they cannot check gets
//!   503 with `Retry-After`.
//!
//! With an issuer configured, a token without `iss` is refused; `exp` and `nbf` are checked
//! with [`CLOCK_SKEW_SECS`] of allowance for clocks that disagree.

use std::path::Path;
use std::sync::RwLock;
use std::time::{Duration, Instant};

use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{
    Algorithm, DecodingKey, EncodingKey, Header, Validation, decode, decode_header, encode,
};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::config::AuthConfig;
use crate::error::ApiError;

/// Claims fzip reads.
#[derive(Debug, Serialize, Deserialize)]
pub struct Claims {
    pub sub: String,
    pub exp: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iat: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iss: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aud: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
}

enum Mode {
    Hs256 {
        key: DecodingKey,
        validation: Validation,
        audience: String,
    },
    Jwks {
        url: String,
        validation: Validation,
        audience: Option<String>,
        keys: RwLock<KeyCache>,
        /// Held by the one request fetching the key set.
        fetching: tokio::sync::Mutex<()>,
        client: reqwest::Client,
    },
}

/// Checks bearer tokens.
pub struct Authenticator {
    mode: Mode,
}

/// The key set held, and when it was last fetched or tried.
#[derive(Default)]
struct KeyCache {
    set: Option<JwkSet>,
    /// When `set` goes stale.
    fresh_until: Option<Instant>,
    /// The last fetch attempt, and whether it failed.
    attempted: Option<(Instant, bool)>,
}

/// Least time between two fetches of the key set (a token naming an unknown key waits for it).
const REFETCH_EVERY: Duration = Duration::from_secs(30);
/// Least time between fetches while the key set cannot be fetched.
const RETRY_FAILED_EVERY: Duration = Duration::from_secs(5);
/// How long a key set is kept without `Cache-Control: max-age`, and the bounds put on one.
const KEY_TTL_DEFAULT: Duration = Duration::from_secs(3600);
const KEY_TTL_MIN: Duration = Duration::from_secs(300);
const KEY_TTL_MAX: Duration = Duration::from_secs(24 * 3600);

/// Seconds of allowance on `exp` and `nbf` for clocks that disagree.
pub const CLOCK_SKEW_SECS: u64 = 30;

impl KeyCache {
    /// When the next fetch may start (now if it may).
    fn next_fetch(&self, now: Instant) -> Option<Duration> {
        let (at, failed) = self.attempted?;
        let wait = if failed {
            RETRY_FAILED_EVERY
        } else {
            REFETCH_EVERY
        };
        let due = at + wait;
        (due > now).then(|| due - now)
    }

    fn key(&self, kid: &str) -> Option<jsonwebtoken::jwk::Jwk> {
        self.set.as_ref().and_then(|s| s.find(kid)).cloned()
    }

    fn fresh(&self, now: Instant) -> bool {
        self.fresh_until.is_some_and(|t| now < t)
    }

    fn last_failed(&self) -> bool {
        self.attempted.is_some_and(|(_, failed)| failed)
    }
}

/// `Cache-Control: max-age=N`, within bounds.
fn key_ttl(headers: &reqwest::header::HeaderMap) -> Duration {
    let max_age = headers
        .get_all(reqwest::header::CACHE_CONTROL)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|d| d.trim().strip_prefix("max-age="))
        .find_map(|n| n.trim().parse::<u64>().ok());
    max_age
        .map(Duration::from_secs)
        .unwrap_or(KEY_TTL_DEFAULT)
        .clamp(KEY_TTL_MIN, KEY_TTL_MAX)
}

fn base_validation(alg: Algorithm, issuer: Option<&str>) -> Validation {
    let mut v = Validation::new(alg);
    if issuer.is_some() {
        v.set_required_spec_claims(&["exp", "sub", "iss"]);
    } else {
        v.set_required_spec_claims(&["exp", "sub"]);
    }
    v.leeway = CLOCK_SKEW_SECS;
    v.validate_nbf = true;
    // The audience is checked by hand: Cognito puts it in `aud` or in `client_id`.
    v.validate_aud = false;
    if let Some(iss) = issuer {
        v.set_issuer(&[iss]);
    }
    v
}

fn audience_matches(claims: &Claims, audience: &str) -> bool {
    let in_aud = match &claims.aud {
        Some(Value::String(a)) => a == audience,
        Some(Value::Array(list)) => list.iter().any(|a| a.as_str() == Some(audience)),
        _ => false,
    };
    in_aud || claims.client_id.as_deref() == Some(audience)
}

fn reason(e: &jsonwebtoken::errors::Error) -> String {
    use jsonwebtoken::errors::ErrorKind;
    match e.kind() {
        ErrorKind::ExpiredSignature => "the token has expired; sign in again".into(),
        ErrorKind::InvalidSignature => "the token's signature is not valid".into(),
        ErrorKind::InvalidIssuer => "the token was issued by someone else".into(),
        ErrorKind::InvalidAlgorithm => {
            "the token is signed with an algorithm this server does not accept".into()
        }
        ErrorKind::MissingRequiredClaim(c) => format!("the token has no `{c}` claim"),
        ErrorKind::ImmatureSignature => "the token is not valid yet".into(),
        _ => format!("the token is not valid ({e})"),
    }
}

impl Authenticator {
    pub fn new(config: &AuthConfig) -> Self {
        let mode = match config {
            AuthConfig::Hs256 {
                secret,
                issuer,
                audience,
            } => Mode::Hs256 {
                key: DecodingKey::from_secret(secret),
                validation: base_validation(Algorithm::HS256, Some(issuer)),
                audience: audience.clone(),
            },
            AuthConfig::Jwks {
                url,
                issuer,
                audience,
            } => Mode::Jwks {
                url: url.clone(),
                validation: base_validation(Algorithm::RS256, issuer.as_deref()),
                audience: audience.clone(),
                keys: RwLock::new(KeyCache::default()),
                fetching: tokio::sync::Mutex::new(()),
                client: reqwest::Client::builder()
                    .connect_timeout(Duration::from_secs(3))
                    .timeout(Duration::from_secs(5))
                    .build()
                    .unwrap_or_default(),
            },
        };
        Authenticator { mode }
    }

    /// The user a request's `Authorization` header speaks for.
    pub async fn authenticate(&self, header: Option<&str>) -> Result<String, ApiError> {
        let Some(header) = header else {
            return Err(ApiError::unauthorized(
                "no Authorization header: send `Authorization: Bearer <token>`",
            ));
        };
        let token = bearer_token(header).ok_or_else(|| {
            ApiError::unauthorized(
                "the Authorization header must be `Bearer <token>` or the bare token",
            )
        })?;
        let claims = match &self.mode {
            Mode::Hs256 {
                key,
                validation,
                audience,
            } => {
                let data = decode::<Claims>(token, key, validation)
                    .map_err(|e| ApiError::unauthorized(reason(&e)))?;
                if !audience_matches(&data.claims, audience) {
                    return Err(ApiError::unauthorized(
                        "the token is meant for another audience",
                    ));
                }
                data.claims
            }
            Mode::Jwks {
                url,
                validation,
                audience,
                keys,
                fetching,
                client,
            } => {
                let header = decode_header(token)
                    .map_err(|e| ApiError::unauthorized(format!("the token is malformed ({e})")))?;
                let kid = header.kid.ok_or_else(|| {
                    ApiError::unauthorized("the token names no signing key (`kid`)")
                })?;
                let key = jwks_key(url, keys, fetching, client, &kid).await?;
                let data = decode::<Claims>(token, &key, validation)
                    .map_err(|e| ApiError::unauthorized(reason(&e)))?;
                if let Some(aud) = audience
                    && !audience_matches(&data.claims, aud)
                {
                    return Err(ApiError::unauthorized(
                        "the token is meant for another audience",
                    ));
                }
                data.claims
            }
        };
        if claims.sub.is_empty() || claims.sub.len() > 256 {
            return Err(ApiError::unauthorized(
                "the token's `sub` is empty or too long",
            ));
        }
        Ok(claims.sub)
    }
}

/// The key `kid` names: from the key set held while it is fresh; otherwise fetched (one
/// request at a time, at most once per [`REFETCH_EVERY`]); a stale key keeps working while the
/// key set cannot be fetched.
async fn jwks_key(
    url: &str,
    keys: &RwLock<KeyCache>,
    fetching: &tokio::sync::Mutex<()>,
    client: &reqwest::Client,
    kid: &str,
) -> Result<DecodingKey, ApiError> {
    // (the key, whether the set is fresh, how long until a fetch may start, whether the last
    // fetch failed)
    let read = || {
        let cache = keys.read().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        (
            cache.key(kid),
            cache.fresh(now),
            cache.next_fetch(now),
            cache.last_failed(),
        )
    };
    let (mut jwk, fresh, wait, _) = read();
    if jwk.is_none() || !fresh {
        if wait.is_none() {
            let _turn = fetching.lock().await;
            // Another request may have fetched while this one waited for its turn.
            if read().2.is_none() {
                fetch(url, keys, client).await;
            }
        }
        let (again, _, wait, failed) = read();
        jwk = again;
        if jwk.is_none() && failed {
            return Err(ApiError::unavailable(
                "the identity provider's signing keys cannot be fetched just now; try again shortly",
                wait.unwrap_or(RETRY_FAILED_EVERY).as_secs().max(1),
            ));
        }
    }
    let jwk =
        jwk.ok_or_else(|| ApiError::unauthorized(format!("no signing key {kid} is known")))?;
    DecodingKey::from_jwk(&jwk)
        .map_err(|e| ApiError::unauthorized(format!("signing key {kid} cannot be used ({e})")))
}

/// Fetches the key set into `keys`; a failure is logged and remembered (the keys held stay).
async fn fetch(url: &str, keys: &RwLock<KeyCache>, client: &reqwest::Client) {
    let result = async {
        let response = client
            .get(url)
            .send()
            .await
            .and_then(|r| r.error_for_status())
            .map_err(|e| format!("fetching the JWKS at {url}: {e}"))?;
        let ttl = key_ttl(response.headers());
        let set: JwkSet = response
            .json()
            .await
            .map_err(|e| format!("reading the JWKS at {url}: {e}"))?;
        Ok::<_, String>((set, ttl))
    }
    .await;
    let now = Instant::now();
    let mut cache = keys.write().unwrap_or_else(|p| p.into_inner());
    match result {
        Ok((set, ttl)) => {
            cache.set = Some(set);
            cache.fresh_until = Some(now + ttl);
            cache.attempted = Some((now, false));
        }
        Err(e) => {
            tracing::warn!(error = %e, "the identity provider's key set cannot be fetched; keeping the keys held");
            cache.attempted = Some((now, true));
        }
    }
}

/// The token of an `Authorization` header: `Bearer <token>` (any case), or the bare token as
/// HouseF3's web client sends it (API Gateway's JWT authorizer takes both). Another scheme
/// (`Basic …`) or an empty token is `None`.
fn bearer_token(header: &str) -> Option<&str> {
    let header = header.trim();
    let token = match header.split_once(' ') {
        Some((scheme, rest)) if scheme.eq_ignore_ascii_case("bearer") => rest.trim(),
        Some(_) => return None,
        None => header,
    };
    (!token.is_empty()).then_some(token)
}

/// The issuer and audience of tokens fzip mints itself.
pub const EMBEDDED_ISSUER: &str = "fzip";
pub const EMBEDDED_AUDIENCE: &str = "fzip";

/// Mints an HS256 token for `user`, valid for `ttl`.
pub fn mint_token(
    secret: &[u8],
    user: &str,
    ttl: Duration,
) -> Result<String, jsonwebtoken::errors::Error> {
    let now = chrono::Utc::now().timestamp().max(0) as u64;
    let claims = Claims {
        sub: user.to_string(),
        exp: now + ttl.as_secs(),
        iat: Some(now),
        iss: Some(EMBEDDED_ISSUER.into()),
        aud: Some(Value::String(EMBEDDED_AUDIENCE.into())),
        client_id: None,
    };
    encode(
        &Header::new(Algorithm::HS256),
        &claims,
        &EncodingKey::from_secret(secret),
    )
}

/// Reads a secret kept in the data directory, or creates it (32 random bytes, hex, mode 0600).
pub fn load_or_create_secret(path: &Path) -> std::io::Result<Vec<u8>> {
    if let Ok(text) = std::fs::read_to_string(path) {
        let text = text.trim();
        if text.len() >= 32 {
            return Ok(text.as_bytes().to_vec());
        }
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!(
                "{} holds less than 32 characters; delete it to have a new secret made",
                path.display()
            ),
        ));
    }
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let mut bytes = Vec::with_capacity(32);
    bytes.extend_from_slice(uuid::Uuid::new_v4().as_bytes());
    bytes.extend_from_slice(uuid::Uuid::new_v4().as_bytes());
    let text = hex::encode(bytes);
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    match options.open(path) {
        Ok(mut f) => {
            use std::io::Write;
            f.write_all(text.as_bytes())?;
            f.sync_all()?;
            Ok(text.into_bytes())
        }
        // Another process created it first: use theirs.
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            Ok(std::fs::read_to_string(path)?.trim().as_bytes().to_vec())
        }
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hs() -> (Vec<u8>, Authenticator) {
        let secret = b"0123456789abcdef0123456789abcdef".to_vec();
        let auth = Authenticator::new(&AuthConfig::Hs256 {
            secret: secret.clone(),
            issuer: EMBEDDED_ISSUER.into(),
            audience: EMBEDDED_AUDIENCE.into(),
        });
        (secret, auth)
    }

    #[tokio::test]
    async fn minted_tokens_authenticate() {
        let (secret, auth) = hs();
        let t = mint_token(&secret, "alice", Duration::from_secs(60)).unwrap();
        assert_eq!(
            auth.authenticate(Some(&format!("Bearer {t}")))
                .await
                .unwrap(),
            "alice"
        );
    }

    #[tokio::test]
    async fn bare_tokens_authenticate_like_bearer_ones() {
        let (secret, auth) = hs();
        let t = mint_token(&secret, "alice", Duration::from_secs(60)).unwrap();
        for header in [t.clone(), format!("bearer {t}"), format!("  Bearer   {t} ")] {
            assert_eq!(auth.authenticate(Some(&header)).await.unwrap(), "alice");
        }
        for header in ["", "Bearer", "Bearer  ", "Basic abc", "Token abc"] {
            assert!(auth.authenticate(Some(header)).await.is_err(), "{header:?}");
        }
        let forged = mint_token(
            b"another-secret-another-secret-xx",
            "alice",
            Duration::from_secs(60),
        )
        .unwrap();
        assert!(auth.authenticate(Some(&forged)).await.is_err());
    }

    #[tokio::test]
    async fn bad_tokens_are_refused() {
        let (secret, auth) = hs();
        assert!(auth.authenticate(None).await.is_err());
        assert!(auth.authenticate(Some("Basic abc")).await.is_err());
        let forged = mint_token(
            b"another-secret-another-secret-xx",
            "alice",
            Duration::from_secs(60),
        )
        .unwrap();
        assert!(
            auth.authenticate(Some(&format!("Bearer {forged}")))
                .await
                .is_err()
        );
        let now = chrono::Utc::now().timestamp() as u64;
        let expired = encode(
            &Header::new(Algorithm::HS256),
            &Claims {
                sub: "alice".into(),
                exp: now - 3600,
                iat: None,
                iss: Some("fzip".into()),
                aud: Some("fzip".into()),
                client_id: None,
            },
            &EncodingKey::from_secret(&secret),
        )
        .unwrap();
        let err = auth
            .authenticate(Some(&format!("Bearer {expired}")))
            .await
            .unwrap_err();
        assert!(err.detail.contains("expired"), "{}", err.detail);
        let wrong_aud = encode(
            &Header::new(Algorithm::HS256),
            &Claims {
                sub: "alice".into(),
                exp: now + 3600,
                iat: None,
                iss: Some("fzip".into()),
                aud: Some("other".into()),
                client_id: None,
            },
            &EncodingKey::from_secret(&secret),
        )
        .unwrap();
        let err = auth
            .authenticate(Some(&format!("Bearer {wrong_aud}")))
            .await
            .unwrap_err();
        assert!(err.detail.contains("audience"), "{}", err.detail);
    }

    #[tokio::test]
    async fn tokens_without_iss_or_not_yet_valid_are_refused() {
        let (secret, auth) = hs();
        let now = chrono::Utc::now().timestamp() as u64;
        let sign = |claims: Value| {
            let t = encode(
                &Header::new(Algorithm::HS256),
                &claims,
                &EncodingKey::from_secret(&secret),
            )
            .unwrap();
            format!("Bearer {t}")
        };
        let no_iss = sign(serde_json::json!({"sub": "alice", "exp": now + 600, "aud": "fzip"}));
        let err = auth.authenticate(Some(&no_iss)).await.unwrap_err();
        assert!(err.detail.contains("`iss`"), "{}", err.detail);
        let later = sign(serde_json::json!({
            "sub": "alice", "exp": now + 7200, "nbf": now + 3600, "iss": "fzip", "aud": "fzip"
        }));
        let err = auth.authenticate(Some(&later)).await.unwrap_err();
        assert!(err.detail.contains("not valid yet"), "{}", err.detail);
        // Within the clock-skew allowance.
        let skewed = sign(serde_json::json!({
            "sub": "alice", "exp": now + 600, "nbf": now + CLOCK_SKEW_SECS / 2, "iss": "fzip", "aud": "fzip"
        }));
        assert_eq!(auth.authenticate(Some(&skewed)).await.unwrap(), "alice");
    }

    #[test]
    fn secrets_are_kept() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("secret");
        let a = load_or_create_secret(&p).unwrap();
        let b = load_or_create_secret(&p).unwrap();
        assert_eq!(a, b);
        assert_eq!(a.len(), 64);
    }
}
