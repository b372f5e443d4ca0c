//! Shared helpers for the engine's integration tests.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use fzip_engine::{BackupOptions, Engine, NoProgress, backup};
use fzip_store::{BlobStore, DEFAULT_BATCH};
use fzip_store_sqlite::SqliteStore;

/// An engine on a fresh SQLite database and blob folder.
pub struct Env {
    pub dir: tempfile::TempDir,
    pub engine: Engine,
}

impl Env {
    pub fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(&dir.path().join("fzip.db")).unwrap();
        let blobs = BlobStore::local(&dir.path().join("blobs")).unwrap();
        Env {
            engine: Engine::new(Arc::new(store), blobs),
            dir,
        }
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Backs `user` up into `name` and returns its path.
    pub fn backup(&self, user: &str, name: &str) -> PathBuf {
        self.backup_with(user, name, &BackupOptions::default())
    }

    pub fn backup_with(&self, user: &str, name: &str, options: &BackupOptions) -> PathBuf {
        let path = self.path(name);
        let file = File::create(&path).unwrap();
        let (file, report) = backup(&self.engine, user, file, options, &NoProgress).unwrap();
        file.set_len(report.package_bytes).unwrap();
        path
    }

    /// Every blob under a user's prefix.
    pub fn user_blobs(&self, user: &str) -> Vec<String> {
        self.engine
            .blobs
            .list(&BlobStore::user_prefix(user))
            .unwrap()
            .into_iter()
            .map(|m| m.key)
            .collect()
    }

    /// SHA-256 (hex) of every statement file of a user, by fileId.
    pub fn file_hashes(&self, user: &str) -> std::collections::BTreeMap<String, String> {
        use sha2::Digest;
        let mut snap = self.engine.store.snapshot(user).unwrap();
        let mut out = std::collections::BTreeMap::new();
        loop {
            let batch = snap.next_transaction_files(DEFAULT_BATCH).unwrap();
            if batch.is_empty() {
                break;
            }
            for f in batch {
                if let Some(key) = &f.file.s3_key {
                    let mut bytes = Vec::new();
                    self.engine
                        .blobs
                        .open(key)
                        .unwrap()
                        .read_to_end(&mut bytes)
                        .unwrap();
                    out.insert(
                        f.file.file_id.clone(),
                        hex::encode(sha2::Sha256::digest(&bytes)),
                    );
                }
            }
        }
        out
    }
}

pub fn read(path: &Path) -> Vec<u8> {
    std::fs::read(path).unwrap()
}
