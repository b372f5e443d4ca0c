//! Shared helpers for the engine's integration tests.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use fzip_engine::{BackupOptions, Engine, NoProgress, backup};
use fzip_store::{BlobStore, DEFAULT_BATCH};
use fzip_store_sqlite::SqliteStore;

/// An engine on fresh storage: SQLite and a blob folder, or PostgreSQL (a schema of its own)
/// and S3 (a server of its own).
pub struct Env {
    pub engine: Engine,
    pub dir: tempfile::TempDir,
    /// What must live as long as the engine (database schema, S3 server).
    _guards: Vec<Box<dyn std::any::Any>>,
}

impl Env {
    /// The embedded default: SQLite and a local blob folder.
    pub fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(&dir.path().join("fzip.db")).unwrap();
        let blobs = BlobStore::local(&dir.path().join("blobs")).unwrap();
        Env {
            engine: Engine::new(Arc::new(store), blobs),
            dir,
            _guards: Vec::new(),
        }
    }

    /// Scale-out: PostgreSQL and S3; `None` when PostgreSQL is missing and
    /// `FZIP_SKIP_POSTGRES=1` asks to skip (said loudly).
    pub fn postgres_s3() -> Option<Self> {
        let schema = fzip_store_postgres::testing::TestSchema::create().unwrap()?;
        let store = fzip_store_postgres::PgStore::open(&schema.url).unwrap();
        let s3 = fzip_test_s3::S3Server::start("fzip").unwrap();
        let blobs = BlobStore::s3_with(&fzip_store::S3Options {
            bucket: s3.bucket().to_string(),
            prefix: "test".into(),
            endpoint: Some(s3.endpoint()),
            region: Some(s3.region().to_string()),
            access_key_id: Some(s3.access_key().to_string()),
            secret_access_key: Some(s3.secret_key().to_string()),
        })
        .unwrap();
        Some(Env {
            engine: Engine::new(Arc::new(store), blobs),
            dir: tempfile::tempdir().unwrap(),
            _guards: vec![Box::new(schema), Box::new(s3)],
        })
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

/// Runs each named test function (taking an [`Env`]) once on SQLite + a blob folder and once
/// on PostgreSQL + S3.
#[allow(unused_macros)]
macro_rules! on_every_backend {
    ($($name:ident),* $(,)?) => {
        mod sqlite_local {
            $(
                #[test]
                fn $name() {
                    super::$name(crate::common::Env::new());
                }
            )*
        }
        mod postgres_s3 {
            $(
                #[test]
                fn $name() {
                    if let Some(env) = crate::common::Env::postgres_s3() {
                        super::$name(env);
                    }
                }
            )*
        }
    };
}
#[allow(unused_imports)]
pub(crate) use on_every_backend;

pub fn read(path: &Path) -> Vec<u8> {
    std::fs::read(path).unwrap()
}
