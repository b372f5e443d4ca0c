//! Per-user limits: jobs queued or running, open upload URLs, uploads streaming at once, bytes
//! of packages kept. Past a limit a request gets 429 with a stable `error` code, the limit, and
//! a `Retry-After` where waiting helps.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use fzip_engine::now_ms;
use fzip_store::jobs::Job;
use serde_json::json;

use crate::error::{ApiError, ApiResult};
use crate::state::{AppState, Family};

/// What the limits keep in this process.
#[derive(Default)]
pub struct Limiter {
    /// Held while a job is checked against the limits and created, so concurrent requests of
    /// this process cannot all pass the check before any of them is stored.
    creating: Mutex<()>,
    /// Uploads streaming now, per user.
    uploading: Arc<Mutex<HashMap<String, usize>>>,
}

/// An upload's place among its user's concurrent uploads; given back when dropped.
pub struct UploadSlot {
    user: String,
    uploading: Arc<Mutex<HashMap<String, usize>>>,
}

impl Drop for UploadSlot {
    fn drop(&mut self) {
        if let Ok(mut map) = self.uploading.lock()
            && let Some(n) = map.get_mut(&self.user)
        {
            *n = n.saturating_sub(1);
            if *n == 0 {
                map.remove(&self.user);
            }
        }
    }
}

/// Bytes as people read them.
pub fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["bytes", "KiB", "MiB", "GiB", "TiB"];
    let mut value = n as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{n} bytes")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

/// 429 `STORAGE_LIMIT`: the user's kept packages fill their share.
pub fn storage_limit(staged: u64, max: u64) -> ApiError {
    ApiError::too_many(
        "STORAGE_LIMIT",
        format!(
            "Your backups and uploaded packages already take {} of the {} this server keeps per user; delete backups or restore jobs you no longer need, then try again.",
            human_bytes(staged),
            human_bytes(max)
        ),
        None,
    )
    .with("limit", json!(max))
}

impl Limiter {
    /// Stores `job` if its user is within the limits for a new job of `family`.
    pub fn create_job(&self, state: &AppState, family: Family, job: &Job) -> ApiResult<Job> {
        let limits = &state.config.user_limits;
        let _turn = self
            .creating
            .lock()
            .map_err(|_| ApiError::internal("the job-creation lock is poisoned"))?;
        let load = state.jobs.user_load(&job.user_id, now_ms())?;
        if load.active_jobs >= limits.max_active_jobs {
            return Err(ApiError::too_many(
                "TOO_MANY_JOBS",
                format!(
                    "You already have {} backups, restores or imports queued or running, the most this server allows at once; wait for some to finish (or cancel or delete them), then try again.",
                    load.active_jobs
                ),
                Some(30),
            )
            .with("limit", json!(limits.max_active_jobs)));
        }
        if job.job_type.produces_package() {
            if load.staged_bytes >= limits.max_staged_bytes {
                return Err(storage_limit(load.staged_bytes, limits.max_staged_bytes));
            }
        } else if load.open_uploads >= limits.max_open_uploads {
            let ttl = state.config.url_ttl.as_secs().max(1);
            return Err(ApiError::too_many(
                "TOO_MANY_UPLOADS",
                format!(
                    "You already have {} {} jobs waiting for their package, the most this server allows; upload to one of them or delete those you do not need (an unused upload URL lapses after {ttl} s), then try again.",
                    load.open_uploads,
                    family.noun()
                ),
                Some(ttl.min(60)),
            )
            .with("limit", json!(limits.max_open_uploads)));
        }
        Ok(state.jobs.create_job(job)?)
    }

    /// A place for one more of `user`'s uploads streaming now, or 429.
    pub fn start_upload(&self, user: &str, max: usize) -> ApiResult<UploadSlot> {
        let mut map = self
            .uploading
            .lock()
            .map_err(|_| ApiError::internal("the upload-count lock is poisoned"))?;
        let n = map.entry(user.to_string()).or_insert(0);
        if *n >= max {
            return Err(ApiError::too_many(
                "TOO_MANY_UPLOADS",
                format!(
                    "You already have {n} uploads in progress, the most this server takes at once per user; wait for one to finish, then try again."
                ),
                Some(5),
            )
            .with("limit", json!(max)));
        }
        *n += 1;
        Ok(UploadSlot {
            user: user.to_string(),
            uploading: self.uploading.clone(),
        })
    }
}

/// What a package's first bytes must be: a ZIP (a local file header, or the end record of an
/// empty archive) or an age-encrypted file.
const PACKAGE_MAGIC: [&[u8]; 3] = [b"PK\x03\x04", b"PK\x05\x06", b"age-encryption.org/v1"];

/// Whether `head` (a package's first bytes, all of them when shorter) can start a package:
/// `Some(true)` yes, `Some(false)` no, `None` not enough bytes yet to tell.
pub fn looks_like_package(head: &[u8]) -> Option<bool> {
    let mut undecided = false;
    for magic in PACKAGE_MAGIC {
        if head.starts_with(magic) {
            return Some(true);
        }
        if magic.starts_with(head) {
            undecided = true;
        }
    }
    if undecided { None } else { Some(false) }
}

/// The longest magic: how many bytes decide [`looks_like_package`].
pub const MAGIC_LEN: usize = 21;

/// 400 `NOT_A_PACKAGE`.
pub fn not_a_package() -> ApiError {
    ApiError::new(
        axum::http::StatusCode::BAD_REQUEST,
        "NOT_A_PACKAGE",
        "This is not an FZIP package: a package is a ZIP file (or an age-encrypted one), and this upload starts with other bytes. Nothing was kept; upload the .fzip file a backup produced.",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn package_magic() {
        assert_eq!(looks_like_package(b"PK\x03\x04rest"), Some(true));
        assert_eq!(looks_like_package(b"PK\x05\x06\0\0"), Some(true));
        assert_eq!(
            looks_like_package(b"age-encryption.org/v1\n-> X25519"),
            Some(true)
        );
        assert_eq!(looks_like_package(b"PK"), None);
        assert_eq!(looks_like_package(b"age-enc"), None);
        assert_eq!(looks_like_package(b""), None);
        assert_eq!(looks_like_package(&[0u8; 64]), Some(false));
        assert_eq!(looks_like_package(b"PK\x01\x02"), Some(false));
        assert_eq!(looks_like_package(b"{\"accounts\": []}"), Some(false));
        assert_eq!(
            MAGIC_LEN,
            PACKAGE_MAGIC.iter().map(|m| m.len()).max().unwrap_or(0)
        );
    }

    #[test]
    fn upload_slots_are_counted_per_user_and_given_back() {
        let limiter = Limiter::default();
        let a = limiter.start_upload("alice", 2).unwrap();
        let _b = limiter.start_upload("alice", 2).unwrap();
        let refused = limiter.start_upload("alice", 2).err().unwrap();
        assert_eq!(refused.code, "TOO_MANY_UPLOADS");
        assert_eq!(refused.retry_after, Some(5));
        let _other = limiter.start_upload("bob", 2).unwrap();
        drop(a);
        assert!(limiter.start_upload("alice", 2).is_ok());
    }
}
