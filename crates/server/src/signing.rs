//! Signed URLs for downloads and uploads: what they allow (operation, blob key, user, job,
//! expiry) travels in the URL, with an HMAC-SHA256 over it. Changing any byte, or using the URL
//! after it expires, gets 403.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, KeyInit, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

/// What a signed URL allows.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Grant {
    /// `get` or `put`.
    pub op: String,
    /// The blob key.
    pub key: String,
    pub user: String,
    pub job: String,
    /// Expiry, ms since the epoch.
    pub exp: i64,
    /// File name to download as.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

/// Why a signed URL is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignError {
    #[error("the signed URL is malformed")]
    Malformed,
    #[error("the signed URL's signature does not match: it was changed")]
    BadSignature,
    #[error("the signed URL has expired; ask for a new one")]
    Expired,
    #[error("the signed URL does not allow this operation")]
    WrongOperation,
}

/// Signs and checks URL grants.
#[derive(Clone)]
pub struct UrlSigner {
    key: Vec<u8>,
}

type HmacSha256 = Hmac<Sha256>;

impl UrlSigner {
    pub fn new(key: &[u8]) -> Self {
        UrlSigner { key: key.to_vec() }
    }

    fn mac(&self) -> HmacSha256 {
        // HMAC takes keys of any length.
        match HmacSha256::new_from_slice(&self.key) {
            Ok(m) => m,
            Err(_) => HmacSha256::new_from_slice(b"fzip").unwrap_or_else(|_| unreachable_hmac()),
        }
    }

    /// A token for the URL path: `base64(grant).base64(hmac)`.
    pub fn sign(&self, grant: &Grant) -> String {
        let body = URL_SAFE_NO_PAD.encode(serde_json::to_vec(grant).unwrap_or_default());
        let mut mac = self.mac();
        mac.update(body.as_bytes());
        let sig = URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes());
        format!("{body}.{sig}")
    }

    /// The grant of a token, if it is intact, unexpired, and for `op`.
    pub fn verify(&self, token: &str, op: &str, now_ms: i64) -> Result<Grant, SignError> {
        let (body, sig) = token.split_once('.').ok_or(SignError::Malformed)?;
        let sig = URL_SAFE_NO_PAD
            .decode(sig)
            .map_err(|_| SignError::Malformed)?;
        let mut mac = self.mac();
        mac.update(body.as_bytes());
        mac.verify_slice(&sig)
            .map_err(|_| SignError::BadSignature)?;
        let json = URL_SAFE_NO_PAD
            .decode(body)
            .map_err(|_| SignError::Malformed)?;
        let grant: Grant = serde_json::from_slice(&json).map_err(|_| SignError::Malformed)?;
        if grant.exp < now_ms {
            return Err(SignError::Expired);
        }
        if grant.op != op {
            return Err(SignError::WrongOperation);
        }
        Ok(grant)
    }
}

#[allow(clippy::panic)]
fn unreachable_hmac() -> HmacSha256 {
    panic!("HMAC accepts keys of any length")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn grant(exp: i64) -> Grant {
        Grant {
            op: "get".into(),
            key: "packages/alice/j.fzip".into(),
            user: "alice".into(),
            job: "j".into(),
            exp,
            name: Some("backup_j.fzip".into()),
        }
    }

    #[test]
    fn round_trip_and_tampering() {
        let s = UrlSigner::new(b"k");
        let t = s.sign(&grant(2_000));
        assert_eq!(s.verify(&t, "get", 1_000).unwrap(), grant(2_000));
        assert_eq!(s.verify(&t, "get", 3_000), Err(SignError::Expired));
        assert_eq!(s.verify(&t, "put", 1_000), Err(SignError::WrongOperation));
        // Flip one character of the grant, or of the signature.
        for at in [3, t.len() - 3] {
            let mut bytes = t.clone().into_bytes();
            bytes[at] = if bytes[at] == b'A' { b'B' } else { b'A' };
            let tampered = String::from_utf8(bytes).unwrap();
            assert!(s.verify(&tampered, "get", 1_000).is_err());
        }
        // Another key.
        assert_eq!(
            UrlSigner::new(b"other").verify(&t, "get", 1_000),
            Err(SignError::BadSignature)
        );
        assert_eq!(s.verify("nonsense", "get", 0), Err(SignError::Malformed));
    }
}
