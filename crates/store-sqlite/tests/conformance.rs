//! The store conformance suite, against SQLite.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;

use fzip_store_conformance::{Fixture, store_conformance_tests};
use fzip_store_sqlite::SqliteStore;

fn sqlite() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(&dir.path().join("fzip.db")).unwrap();
    Fixture {
        store: Arc::new(store),
        guard: Box::new(dir),
    }
}

store_conformance_tests!(sqlite);

fn sqlite_jobs() -> fzip_store_conformance::JobFixture {
    let dir = tempfile::tempdir().unwrap();
    let store = fzip_store_sqlite::SqliteJobStore::open(&dir.path().join("jobs.db")).unwrap();
    fzip_store_conformance::JobFixture {
        store: Arc::new(store),
        guard: Box::new(dir),
    }
}

mod jobs {
    use super::sqlite_jobs;
    fzip_store_conformance::job_store_conformance_tests!(sqlite_jobs);
}
