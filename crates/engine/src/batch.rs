//! Leases on blob batches: what keeps a running restore's (or import's) statement files safe
//! from [`crate::gc`] before its transaction commits and refers to them.
//!
//! A writer puts a small lease object under `leases/` naming its batch prefix and an expiry,
//! renews it while it works, and deletes it once its transaction committed or rolled back (and
//! its blobs were taken back). The collector lists blobs first and reads leases afterwards, so
//! any blob it saw was written under a lease it then sees (or by a writer that has finished, whose
//! rows it then reads). A writer that died stops renewing; its lease expires after
//! [`LEASE_TTL`] and its blobs become garbage.

use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use fzip_store::{BlobStore, StoreError};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::now_ms;

/// How long a lease lasts without renewal (a dead writer's blobs are kept this long).
pub const LEASE_TTL: Duration = Duration::from_secs(15 * 60);
/// How often a live writer renews its lease.
const RENEW_EVERY: Duration = Duration::from_secs(60);

/// Where leases are kept (not under `users/`, which the collector sweeps).
pub const LEASE_PREFIX: &str = "leases";

#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct LeaseRecord {
    /// The blob prefix the lease protects (`users/{user}/files/{batch}`).
    prefix: String,
    /// Until when, ms since the epoch (the writer's clock).
    until: i64,
}

fn lease_key(prefix: &str) -> String {
    // A fixed-length name whatever the user and batch ids are.
    let digest = hex::encode(Sha256::digest(prefix.as_bytes()));
    BlobStore::key([LEASE_PREFIX, &digest])
}

fn write(blobs: &BlobStore, key: &str, prefix: &str) -> Result<(), StoreError> {
    let record = LeaseRecord {
        prefix: prefix.to_string(),
        until: now_ms().saturating_add(LEASE_TTL.as_millis() as i64),
    };
    let body = serde_json::to_vec(&record).map_err(|e| StoreError::Blob(e.to_string()))?;
    blobs.put_bytes(key, &body)
}

/// A held lease on a blob prefix; renewed on a thread of its own, deleted when dropped.
pub struct BatchLease {
    blobs: BlobStore,
    key: String,
    stop: Arc<(Mutex<bool>, Condvar)>,
    renewer: Option<std::thread::JoinHandle<()>>,
}

impl BatchLease {
    /// Takes a lease on `prefix` (a batch's blob prefix) before anything is written under it.
    pub fn acquire(blobs: &BlobStore, prefix: &str) -> Result<BatchLease, StoreError> {
        let key = lease_key(prefix);
        write(blobs, &key, prefix)?;
        let stop = Arc::new((Mutex::new(false), Condvar::new()));
        let renewer = {
            let (blobs, key, prefix, stop) =
                (blobs.clone(), key.clone(), prefix.to_string(), stop.clone());
            std::thread::Builder::new()
                .name("fzip-lease".into())
                .spawn(move || {
                    let (lock, cv) = &*stop;
                    let mut stopped = lock.lock().unwrap_or_else(|p| p.into_inner());
                    loop {
                        let (guard, timeout) = cv
                            .wait_timeout(stopped, RENEW_EVERY)
                            .unwrap_or_else(|p| p.into_inner());
                        stopped = guard;
                        if *stopped {
                            return;
                        }
                        if timeout.timed_out()
                            && let Err(e) = write(&blobs, &key, &prefix)
                        {
                            tracing::warn!(error = %e, %prefix, "could not renew a batch lease");
                        }
                    }
                })?
        };
        Ok(BatchLease {
            blobs: blobs.clone(),
            key,
            stop,
            renewer: Some(renewer),
        })
    }
}

impl Drop for BatchLease {
    fn drop(&mut self) {
        {
            let (lock, cv) = &*self.stop;
            *lock.lock().unwrap_or_else(|p| p.into_inner()) = true;
            cv.notify_all();
        }
        if let Some(h) = self.renewer.take() {
            let _ = h.join();
        }
        if let Err(e) = self.blobs.delete(&self.key) {
            tracing::warn!(error = %e, key = %self.key, "could not delete a batch lease; it expires by itself");
        }
    }
}

/// The blob prefixes live leases protect now (each ending in `/`). Unreadable lease objects
/// protect nothing; expired ones are deleted.
pub fn live_prefixes(blobs: &BlobStore) -> Result<Vec<String>, StoreError> {
    let now = now_ms();
    let mut live = Vec::new();
    for meta in blobs.list(LEASE_PREFIX)? {
        let mut body = Vec::new();
        let read = blobs
            .open(&meta.key)
            .and_then(|mut r| std::io::Read::read_to_end(&mut r, &mut body).map_err(Into::into));
        match read {
            Ok(_) => {}
            Err(StoreError::BlobNotFound(_)) => continue, // released meanwhile
            Err(e) => return Err(e),
        }
        match serde_json::from_slice::<LeaseRecord>(&body) {
            Ok(r) if r.until > now => live.push(format!("{}/", r.prefix.trim_end_matches('/'))),
            Ok(_) => {
                let _ = blobs.delete(&meta.key);
            }
            Err(e) => {
                tracing::warn!(key = %meta.key, error = %e, "ignoring an unreadable batch lease")
            }
        }
    }
    Ok(live)
}

/// True when `key` is under one of `prefixes` (as [`live_prefixes`] returns them).
pub fn protected(prefixes: &[String], key: &str) -> bool {
    prefixes.iter().any(|p| key.starts_with(p.as_str()))
}
