//! Blob storage: statement files and packages, in a local folder or S3, through `object_store`.
//!
//! The engine is synchronous; [`BlobStore`] gives it streaming `Read`/`Write`-style access and
//! runs `object_store`'s futures on a small runtime of its own. Keys are built from encoded path
//! parts, so no user id, file id or file name can add or escape a path level.

use std::cell::RefCell;
use std::io::{self, Read};
use std::path::{Path as FsPath, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use futures::{StreamExt, TryStreamExt};
use object_store::aws::{AmazonS3, AmazonS3Builder, AmazonS3ConfigKey};
use object_store::buffered::BufWriter;
use object_store::local::LocalFileSystem;
use object_store::path::{Path, PathPart};
use object_store::prefix::PrefixStore;
use object_store::signer::Signer;
use object_store::{
    ClientConfigKey, GetOptions, GetRange, ObjectStore, ObjectStoreExt, RetryConfig,
};
use sha2::{Digest, Sha256};
use tokio::io::AsyncWriteExt;
use tokio::runtime::Runtime;

use crate::StoreError;

/// A stored object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlobMeta {
    pub key: String,
    pub size: u64,
    /// Last modification, ms since the epoch.
    pub modified_ms: i64,
}

/// The longest identifier kept in its hex form (`~` and two hex digits a byte, stored as
/// `%7E…`): 3 + 2 × 125 = 253 bytes leaves room for the `#N` suffix a folder store's staging
/// file adds, within the 255-byte file names of common file systems.
const MAX_HEX_PART: usize = 125;

/// One safe path level: kept as is when it is made of `[A-Za-z0-9._-]` (and is not `.`/`..`
/// or hidden, at most 128 bytes), otherwise `~` followed by the hex of its bytes; an identifier
/// too long for that to fit a file name becomes `~~` and the hex of its SHA-256 (so any id
/// length works; ids that fitted before keep their keys).
fn key_part(part: &str) -> String {
    let plain = !part.is_empty()
        && part.len() <= 128
        && !part.starts_with('.')
        && part
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.');
    if plain {
        part.to_string()
    } else if part.len() <= MAX_HEX_PART {
        format!("~{}", hex::encode(part.as_bytes()))
    } else {
        format!("~~{}", hex::encode(Sha256::digest(part.as_bytes())))
    }
}

/// Shuts the runtime down without blocking, so dropping the store is safe anywhere.
struct RuntimeGuard(Option<Runtime>);

impl Drop for RuntimeGuard {
    fn drop(&mut self) {
        if let Some(rt) = self.0.take() {
            rt.shutdown_background();
        }
    }
}

/// Where an S3 bucket is; `None` fields come from the AWS environment variables.
#[derive(Clone, Debug, Default)]
pub struct S3Options {
    pub bucket: String,
    /// Keys live under this prefix (no leading or trailing `/`); empty for the bucket root.
    pub prefix: String,
    /// `http(s)://host:port` of an S3-compatible server.
    pub endpoint: Option<String>,
    pub region: Option<String>,
    pub access_key_id: Option<String>,
    pub secret_access_key: Option<String>,
}

/// What a presigned URL allows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Presign {
    Get,
    Put,
}

/// Signs URLs that reach objects directly (S3), keys relative to a prefix.
#[derive(Clone)]
struct Presigner {
    s3: Arc<AmazonS3>,
    prefix: Option<Path>,
}

/// How long one blob operation (one request with its retries, or one step of a streaming read
/// or write) may take before it fails, unless configured otherwise.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(60);

/// After this long, a waiting operation says so (see [`report_waits`]), and again as it goes on.
const NOTE_WAIT_AFTER: Duration = Duration::from_secs(3);

/// A blob operation that is still waiting for the store (slow, or being retried).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BlobWait {
    /// What is being done (`reading users/…`).
    pub what: String,
    /// How long it has waited so far.
    pub waited: Duration,
    /// When it gives up.
    pub limit: Duration,
}

/// Where a thread's waiting blob operations are shown (see [`report_waits`]).
pub type WaitCell = Arc<Mutex<Option<BlobWait>>>;

thread_local! {
    static WAIT_CELL: RefCell<Option<WaitCell>> = const { RefCell::new(None) };
}

/// While the returned guard lives, every blob operation of this thread that waits longer than a
/// few seconds writes what it waits for into `cell` (and clears it when it ends), so that
/// whoever reports progress can say that the store is being waited for.
pub fn report_waits(cell: WaitCell) -> WaitReporting {
    let previous = WAIT_CELL.with(|c| c.borrow_mut().replace(cell));
    WaitReporting { previous }
}

/// Stops [`report_waits`] when dropped.
pub struct WaitReporting {
    previous: Option<WaitCell>,
}

impl Drop for WaitReporting {
    fn drop(&mut self) {
        let previous = self.previous.take();
        WAIT_CELL.with(|c| *c.borrow_mut() = previous);
    }
}

fn set_wait(cell: &Option<WaitCell>, wait: Option<BlobWait>) {
    if let Some(cell) = cell {
        *cell.lock().unwrap_or_else(|p| p.into_inner()) = wait;
    }
}

/// Blob storage with a synchronous, streaming interface.
#[derive(Clone)]
pub struct BlobStore {
    store: Arc<dyn ObjectStore>,
    runtime: Arc<RuntimeGuard>,
    description: String,
    presigner: Option<Presigner>,
    /// The bound of each operation (see [`DEFAULT_TIMEOUT`]).
    timeout: Duration,
    /// A local store, where half-written objects can be found.
    local: Option<Arc<LocalFileSystem>>,
}

impl std::fmt::Debug for BlobStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.description)
    }
}

fn blob_err(e: object_store::Error) -> StoreError {
    match e {
        object_store::Error::NotFound { path, .. } => StoreError::BlobNotFound(path),
        other => StoreError::Blob(other.to_string()),
    }
}

const CHUNK: usize = 1 << 20;

impl BlobStore {
    /// Wraps any object store.
    pub fn new(
        store: Arc<dyn ObjectStore>,
        description: impl Into<String>,
    ) -> Result<Self, StoreError> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("fzip-blob")
            .enable_all()
            .build()?;
        Ok(BlobStore {
            store,
            runtime: Arc::new(RuntimeGuard(Some(runtime))),
            description: description.into(),
            presigner: None,
            timeout: DEFAULT_TIMEOUT,
            local: None,
        })
    }

    /// Bounds every operation by `timeout` (a single request with its retries, or one step of
    /// a streaming read or write). On S3, set it with [`BlobStore::s3_with_timeout`] so that the
    /// client's own retries stop in time too.
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout.max(Duration::from_millis(100));
        self
    }

    /// The bound of each operation.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// An S3 bucket (or any S3-compatible server), optionally under a key prefix. Endpoint,
    /// region and credentials come from the usual AWS environment variables
    /// (`AWS_ENDPOINT_URL`, `AWS_REGION`, `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`,
    /// `AWS_SESSION_TOKEN`, …). Requests use path-style addressing unless
    /// `AWS_VIRTUAL_HOSTED_STYLE_REQUEST=true`; an `http://` endpoint is allowed as given.
    pub fn s3(bucket: &str, prefix: &str) -> Result<Self, StoreError> {
        Self::s3_with(&S3Options {
            bucket: bucket.to_string(),
            prefix: prefix.to_string(),
            ..Default::default()
        })
    }

    /// An S3 bucket with settings given here (each overriding its environment variable).
    pub fn s3_with(options: &S3Options) -> Result<Self, StoreError> {
        Self::s3_with_timeout(options, DEFAULT_TIMEOUT)
    }

    /// An S3 bucket whose every request, retries included, ends within `timeout`: a server
    /// that accepts connections and never answers fails the operation then, with a message.
    pub fn s3_with_timeout(options: &S3Options, timeout: Duration) -> Result<Self, StoreError> {
        let timeout = timeout.max(Duration::from_millis(100));
        let bucket = options.bucket.as_str();
        let prefix = options.prefix.as_str();
        let ms = |d: Duration| format!("{}ms", d.as_millis());
        // One request waits at most half the bound (and 30 s, object_store's default), a
        // connection at most 5 s. The bound itself is enforced around each operation (which
        // stops its retries and says why); the client's own retry limit lies beyond it.
        let mut builder = AmazonS3Builder::from_env()
            .with_bucket_name(bucket)
            .with_config(
                AmazonS3ConfigKey::Client(ClientConfigKey::Timeout),
                ms((timeout / 2).min(Duration::from_secs(30))),
            )
            .with_config(
                AmazonS3ConfigKey::Client(ClientConfigKey::ConnectTimeout),
                ms(timeout.min(Duration::from_secs(5))),
            )
            .with_retry(RetryConfig {
                retry_timeout: timeout.saturating_mul(2),
                ..RetryConfig::default()
            });
        let endpoint = options
            .endpoint
            .clone()
            .or_else(|| std::env::var("AWS_ENDPOINT_URL_S3").ok())
            .or_else(|| std::env::var("AWS_ENDPOINT_URL").ok())
            .or_else(|| std::env::var("AWS_ENDPOINT").ok())
            .filter(|e| !e.is_empty());
        if let Some(endpoint) = &endpoint {
            builder = builder.with_endpoint(endpoint);
            if endpoint.starts_with("http://") {
                builder = builder.with_allow_http(true);
            }
        }
        if let Some(region) = &options.region {
            builder = builder.with_region(region);
        }
        if let Some(key) = &options.access_key_id {
            builder = builder.with_access_key_id(key);
        }
        if let Some(secret) = &options.secret_access_key {
            builder = builder.with_secret_access_key(secret);
        }
        let s3 = Arc::new(builder.build().map_err(|e| {
            StoreError::Blob(format!(
                "S3 bucket {bucket}: {e} (set AWS_REGION, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY and, for S3-compatible servers, AWS_ENDPOINT_URL)"
            ))
        })?);
        let prefix = prefix.trim_matches('/');
        let (store, prefix_path): (Arc<dyn ObjectStore>, Option<Path>) = if prefix.is_empty() {
            (s3.clone(), None)
        } else {
            let path = Self::path(prefix)?;
            (
                Arc::new(PrefixStore::new(s3.clone(), path.clone())),
                Some(path),
            )
        };
        let description = match (&endpoint, prefix.is_empty()) {
            (Some(e), true) => format!("s3://{bucket} at {e}"),
            (Some(e), false) => format!("s3://{bucket}/{prefix} at {e}"),
            (None, true) => format!("s3://{bucket}"),
            (None, false) => format!("s3://{bucket}/{prefix}"),
        };
        let mut blobs = Self::new(store, description)?.with_timeout(timeout);
        blobs.presigner = Some(Presigner {
            s3,
            prefix: prefix_path,
        });
        Ok(blobs)
    }

    /// True when clients can be handed presigned URLs that reach objects directly.
    pub fn can_presign(&self) -> bool {
        self.presigner.is_some()
    }

    /// A URL through which a client can `GET` or `PUT` the object at `key` for `ttl`, signed
    /// by the object store (S3 signature V4); `None` when the store cannot sign (a local
    /// folder: the server signs its own URLs then).
    pub fn presigned_url(
        &self,
        method: Presign,
        key: &str,
        ttl: std::time::Duration,
    ) -> Result<Option<String>, StoreError> {
        let Some(p) = &self.presigner else {
            return Ok(None);
        };
        let relative = Self::path(key)?;
        let full = match &p.prefix {
            Some(prefix) => Path::from_iter(prefix.parts().chain(relative.parts())),
            None => relative,
        };
        let method = match method {
            Presign::Get => http::Method::GET,
            Presign::Put => http::Method::PUT,
        };
        let url = self
            .bounded("signing a URL", p.s3.signed_url(method, &full, ttl))?
            .map_err(blob_err)?;
        Ok(Some(url.to_string()))
    }

    /// A folder on the local disk (created if missing).
    pub fn local(root: &FsPath) -> Result<Self, StoreError> {
        std::fs::create_dir_all(root)?;
        let fs = Arc::new(
            LocalFileSystem::new_with_prefix(root)
                .map_err(blob_err)?
                .with_automatic_cleanup(true),
        );
        let mut blobs = Self::new(fs.clone(), format!("file://{}", root.display()))?;
        blobs.local = Some(fs);
        Ok(blobs)
    }

    /// The underlying `object_store`, for async callers.
    pub fn object_store(&self) -> Arc<dyn ObjectStore> {
        self.store.clone()
    }

    pub fn describe(&self) -> &str {
        &self.description
    }

    /// Runs one operation to its end, or fails it once it has waited [`BlobStore::timeout`];
    /// while it waits, says so to the thread's [`report_waits`] cell.
    fn bounded<F: std::future::Future>(&self, what: &str, f: F) -> Result<F::Output, StoreError> {
        // The guard only loses its runtime while being dropped.
        let Some(rt) = &self.runtime.0 else {
            return Ok(futures::executor::block_on(f));
        };
        let limit = self.timeout;
        let cell = WAIT_CELL.with(|c| c.borrow().clone());
        let mut noted = false;
        let out = rt.block_on(async {
            let started = tokio::time::Instant::now();
            let mut f = std::pin::pin!(f);
            loop {
                let waited = started.elapsed();
                if waited >= limit {
                    return None;
                }
                match tokio::time::timeout((limit - waited).min(NOTE_WAIT_AFTER), &mut f).await {
                    Ok(v) => return Some(v),
                    Err(_) => {
                        noted = true;
                        set_wait(
                            &cell,
                            Some(BlobWait {
                                what: what.to_string(),
                                waited: started.elapsed(),
                                limit,
                            }),
                        );
                    }
                }
            }
        });
        if noted {
            set_wait(&cell, None);
        }
        out.ok_or_else(|| {
            StoreError::Blob(format!(
                "blob storage ({}) did not answer within {} s while {what} (requests were retried until then); check that it is reachable, or allow longer with --blob-timeout-secs (FZIP_BLOB_TIMEOUT_SECS)",
                self.description,
                limit.as_secs_f64()
            ))
        })
    }

    fn path(key: &str) -> Result<Path, StoreError> {
        Path::parse(key).map_err(|e| StoreError::Blob(format!("bad blob key {key:?}: {e}")))
    }

    /// Builds a key from parts. Each part becomes exactly one path level made of
    /// `[A-Za-z0-9._-]` only (anything else is hex-encoded behind a `~`), so no user id or file
    /// id can add a level, escape one, or trip a backend's path handling.
    pub fn key<'a>(parts: impl IntoIterator<Item = &'a str>) -> String {
        Path::from_iter(parts.into_iter().map(|p| PathPart::from(key_part(p)))).to_string()
    }

    /// Where a restore or demo batch keeps a user's statement file. The file's name stays in its
    /// metadata; keys are built from identifiers only.
    pub fn file_key(user: &str, batch: &str, file_id: &str) -> String {
        Self::key(["users", user, "files", batch, file_id])
    }

    /// The prefix of every blob of a user.
    pub fn user_prefix(user: &str) -> String {
        Self::key(["users", user])
    }

    /// Stores everything `reader` yields under `key`, streaming, and returns (size, SHA-256).
    /// The object appears only when complete.
    pub fn put_reader(&self, key: &str, reader: impl Read) -> Result<(u64, [u8; 32]), StoreError> {
        self.put_reader_as(key, reader, None)
    }

    /// [`BlobStore::put_reader`], recording the object's content type (served with presigned
    /// downloads), where the store keeps one.
    pub fn put_reader_as(
        &self,
        key: &str,
        mut reader: impl Read,
        content_type: Option<&str>,
    ) -> Result<(u64, [u8; 32]), StoreError> {
        let path = Self::path(key)?;
        let mut writer = BufWriter::with_capacity(self.store.clone(), path, 8 * CHUNK);
        if let Some(ct) = content_type
            && self.presigner.is_some()
        {
            let mut attributes = object_store::Attributes::new();
            attributes.insert(object_store::Attribute::ContentType, ct.to_string().into());
            writer = writer.with_attributes(attributes);
        }
        let mut hasher = Sha256::new();
        let mut size = 0u64;
        let result = (|| -> Result<(), StoreError> {
            loop {
                let mut buf = vec![0u8; CHUNK];
                let n = loop {
                    match reader.read(&mut buf) {
                        Ok(n) => break n,
                        Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                        Err(e) => return Err(StoreError::Io(e)),
                    }
                };
                if n == 0 {
                    return Ok(());
                }
                buf.truncate(n);
                hasher.update(&buf);
                size += n as u64;
                self.bounded(&format!("writing {key}"), writer.put(Bytes::from(buf)))?
                    .map_err(blob_err)?;
            }
        })();
        match result {
            Ok(()) => {
                self.bounded(&format!("writing {key}"), writer.shutdown())?
                    .map_err(|e| StoreError::Blob(e.to_string()))?;
                Ok((size, hasher.finalize().into()))
            }
            Err(e) => {
                let _ = self.bounded(&format!("abandoning {key}"), writer.abort());
                Err(e)
            }
        }
    }

    /// Stores a byte slice.
    pub fn put_bytes(&self, key: &str, bytes: &[u8]) -> Result<(), StoreError> {
        let path = Self::path(key)?;
        let payload = Bytes::copy_from_slice(bytes);
        self.bounded(
            &format!("writing {key}"),
            self.store.put(&path, payload.into()),
        )?
        .map_err(blob_err)?;
        Ok(())
    }

    /// A streaming reader over a blob.
    pub fn open(&self, key: &str) -> Result<BlobReader<'_>, StoreError> {
        let path = Self::path(key)?;
        let result = self
            .bounded(&format!("reading {key}"), self.store.get(&path))?
            .map_err(blob_err)?;
        let size = result.meta.size;
        Ok(BlobReader {
            store: self,
            what: format!("reading {key}"),
            stream: result.into_stream().boxed(),
            chunk: Bytes::new(),
            size,
        })
    }

    /// The first `n` bytes of a blob (fewer when it is shorter), fetched as a byte range.
    pub fn read_prefix(&self, key: &str, n: u64) -> Result<Vec<u8>, StoreError> {
        let path = Self::path(key)?;
        let Some(meta) = self.head(key)? else {
            return Err(StoreError::BlobNotFound(key.to_string()));
        };
        let end = n.min(meta.size);
        if end == 0 {
            return Ok(Vec::new());
        }
        let options = GetOptions::new().with_range(Some(GetRange::Bounded(0..end)));
        let bytes = self
            .bounded(&format!("reading the start of {key}"), async {
                let result = self.store.get_opts(&path, options).await?;
                result.bytes().await
            })?
            .map_err(blob_err)?;
        Ok(bytes.to_vec())
    }

    /// Size and date of a blob, or `None` when it does not exist.
    pub fn head(&self, key: &str) -> Result<Option<BlobMeta>, StoreError> {
        let path = Self::path(key)?;
        match self.bounded(&format!("looking up {key}"), self.store.head(&path))? {
            Ok(meta) => Ok(Some(BlobMeta {
                key: meta.location.to_string(),
                size: meta.size,
                modified_ms: meta.last_modified.timestamp_millis(),
            })),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(blob_err(e)),
        }
    }

    /// Deletes a blob; a missing one is not an error.
    pub fn delete(&self, key: &str) -> Result<(), StoreError> {
        let path = Self::path(key)?;
        match self.bounded(&format!("deleting {key}"), self.store.delete(&path))? {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(blob_err(e)),
        }
    }

    /// Every blob under a prefix.
    pub fn list(&self, prefix: &str) -> Result<Vec<BlobMeta>, StoreError> {
        let path = Self::path(prefix)?;
        let mut stream = self.store.list(Some(&path));
        let what = format!("listing {prefix}");
        let mut out = Vec::new();
        // Each page of the listing is bounded, not the whole of it.
        while let Some(meta) = self.bounded(&what, stream.try_next())?.map_err(blob_err)? {
            out.push(BlobMeta {
                key: meta.location.to_string(),
                size: meta.size,
                modified_ms: meta.last_modified.timestamp_millis(),
            });
        }
        Ok(out)
    }

    /// Half-written objects under a prefix: a local store writes an object into `KEY#N` and
    /// renames it when complete, so a writer killed midway leaves `KEY#N` behind, which
    /// [`BlobStore::list`] does not show. On S3 an object appears only when complete (an
    /// abandoned multipart upload is not an object; a bucket lifecycle rule removes those), so
    /// this is empty there.
    pub fn list_partial(&self, prefix: &str) -> Result<Vec<BlobMeta>, StoreError> {
        let Some(fs) = &self.local else {
            return Ok(Vec::new());
        };
        let start = Self::path(prefix)?;
        let dir = fs.path_to_filesystem(&start).map_err(blob_err)?;
        let mut out = Vec::new();
        let mut pending: Vec<(PathBuf, String)> = vec![(dir, start.to_string())];
        while let Some((dir, key)) = pending.pop() {
            let entries = match std::fs::read_dir(&dir) {
                Ok(e) => e,
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => return Err(StoreError::Io(e)),
            };
            for entry in entries {
                let entry = entry?;
                // The store names folders and files by the (already encoded) key parts.
                let name = entry.file_name().to_string_lossy().into_owned();
                let child = if key.is_empty() {
                    name.clone()
                } else {
                    format!("{key}/{name}")
                };
                let meta = entry.metadata()?;
                if meta.is_dir() {
                    pending.push((entry.path(), child));
                } else if is_staged_upload(&name) {
                    let modified_ms = meta
                        .modified()
                        .ok()
                        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                        .map_or(0, |d| d.as_millis() as i64);
                    out.push(BlobMeta {
                        key: child,
                        size: meta.len(),
                        modified_ms,
                    });
                }
            }
        }
        Ok(out)
    }

    /// Deletes a half-written object [`BlobStore::list_partial`] found; a missing one is not an
    /// error.
    pub fn delete_partial(&self, key: &str) -> Result<(), StoreError> {
        let Some(fs) = &self.local else {
            return Ok(());
        };
        let (parent, name) = key.rsplit_once('/').unwrap_or(("", key));
        if !is_staged_upload(name) {
            return Err(StoreError::Blob(format!(
                "{key:?} is not a half-written object"
            )));
        }
        let path = fs
            .path_to_filesystem(&Self::path(parent)?)
            .map_err(blob_err)?
            .join(name);
        match std::fs::remove_file(&path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(StoreError::Io(e)),
        }
    }

    /// Deletes every blob under a prefix; returns how many.
    pub fn delete_prefix(&self, prefix: &str) -> Result<u64, StoreError> {
        let mut n = 0;
        for meta in self.list(prefix)? {
            self.delete(&meta.key)?;
            n += 1;
        }
        Ok(n)
    }
}

/// `NAME#DIGITS`: a local store's object being written (our keys never hold `#`).
fn is_staged_upload(name: &str) -> bool {
    name.rsplit_once('#')
        .is_some_and(|(_, n)| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
}

/// Reads a blob as it streams in.
pub struct BlobReader<'a> {
    store: &'a BlobStore,
    what: String,
    stream: futures::stream::BoxStream<'static, object_store::Result<Bytes>>,
    chunk: Bytes,
    size: u64,
}

impl BlobReader<'_> {
    /// The blob's size.
    pub fn size(&self) -> u64 {
        self.size
    }
}

impl Read for BlobReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.chunk.is_empty() {
            let next = self
                .store
                .bounded(&self.what, self.stream.next())
                .map_err(|e| io::Error::new(io::ErrorKind::TimedOut, e.to_string()))?;
            match next {
                None => return Ok(0),
                Some(Ok(bytes)) => self.chunk = bytes,
                Some(Err(e)) => return Err(io::Error::other(e.to_string())),
            }
        }
        let n = buf.len().min(self.chunk.len());
        buf[..n].copy_from_slice(&self.chunk[..n]);
        self.chunk = self.chunk.slice(n..);
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_keep_parts_in_one_level() {
        let k = BlobStore::file_key("a/b", "batch", "../x");
        assert_eq!(
            k,
            format!(
                "users/%7E{}/files/batch/%7E{}",
                hex::encode("a/b"),
                hex::encode("../x")
            )
        );
        let k = BlobStore::file_key("alice", "b", "e633081f-a7ca-4ba9-b18a-98cf35ef27eb");
        assert_eq!(
            k,
            "users/alice/files/b/e633081f-a7ca-4ba9-b18a-98cf35ef27eb"
        );
        assert_eq!(BlobStore::key([".."]), format!("%7E{}", hex::encode("..")));
    }

    #[test]
    fn long_identifiers_get_a_short_form_that_fits_a_file_name() {
        // Keys that fitted a file name before are unchanged.
        let plain = "a".repeat(128);
        assert_eq!(BlobStore::key([plain.as_str()]), plain);
        let odd = "é".repeat(62); // 124 bytes
        assert_eq!(
            BlobStore::key([odd.as_str()]),
            format!("%7E{}", hex::encode(&odd))
        );
        // Longer ones (a 129-character `sub`, any length) get a short, distinct form.
        for n in [129, 200, 1_000, 100_000] {
            let id = "u".repeat(n);
            let key = BlobStore::key(["users", id.as_str(), "files"]);
            let level = key.split('/').nth(1).unwrap();
            assert!(level.len() + "#99".len() <= 255, "{n}: {level}");
            assert!(level.starts_with("%7E%7E"), "{level}");
            let other = format!("{id}x");
            assert_ne!(key, BlobStore::key(["users", other.as_str(), "files"]));
        }
        let dir = tempfile::tempdir().unwrap();
        let store = BlobStore::local(dir.path()).unwrap();
        let user = "s".repeat(129);
        let key = BlobStore::file_key(&user, "b", &"f".repeat(300));
        store.put_bytes(&key, b"statement").unwrap();
        assert_eq!(store.list(&BlobStore::user_prefix(&user)).unwrap().len(), 1);
    }

    #[test]
    fn odd_identifiers_store_and_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let store = BlobStore::local(dir.path()).unwrap();
        for (i, user) in [
            "H:",
            "'H:",
            "ὔ.÷𞸤ቘ",
            "a b",
            "%41",
            "..",
            "x#1",
            "C:\\x",
            "~616c",
        ]
        .iter()
        .enumerate()
        {
            let key = BlobStore::file_key(user, "b", &i.to_string());
            store.put_bytes(&key, user.as_bytes()).unwrap();
            let mut back = Vec::new();
            store.open(&key).unwrap().read_to_end(&mut back).unwrap();
            assert_eq!(back, user.as_bytes());
            assert_eq!(
                store.list(&BlobStore::user_prefix(user)).unwrap().len(),
                1,
                "{user:?}"
            );
        }
    }

    #[test]
    fn local_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let store = BlobStore::local(dir.path()).unwrap();
        let key = BlobStore::file_key("alice", "b1", "f1");
        let data: Vec<u8> = (0..3_000_000u32).map(|i| (i % 251) as u8).collect();
        let (size, digest) = store.put_reader(&key, &data[..]).unwrap();
        assert_eq!(size, data.len() as u64);
        assert_eq!(digest, <[u8; 32]>::from(Sha256::digest(&data)));
        let mut back = Vec::new();
        store.open(&key).unwrap().read_to_end(&mut back).unwrap();
        assert_eq!(back, data);
        assert_eq!(
            store.list(&BlobStore::user_prefix("alice")).unwrap().len(),
            1
        );
        assert_eq!(
            store.head(&key).unwrap().map(|m| m.size),
            Some(data.len() as u64)
        );
        assert_eq!(store.read_prefix(&key, 5).unwrap(), &data[..5]);
        assert_eq!(store.read_prefix(&key, 1 << 40).unwrap().len(), data.len());
        store.delete(&key).unwrap();
        store.delete(&key).unwrap();
        assert!(store.head(&key).unwrap().is_none());
        assert!(matches!(store.open(&key), Err(StoreError::BlobNotFound(_))));
    }
}
