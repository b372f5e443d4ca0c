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

/// SQLite compares text bytewise: a backup reads transactions in ascending id order, so that a
/// restore of it appends to the primary-key index.
#[test]
fn sqlite_pages_transactions_in_ascending_id_order() {
    let f = sqlite();
    let s = fzip_store_conformance::sample(3_001);
    let mut w = f.store.begin_restore("alice").unwrap();
    w.insert_accounts(&s.accounts).unwrap();
    w.insert_transactions(&s.transactions).unwrap();
    w.commit().unwrap();
    let mut snap = f.store.snapshot("alice").unwrap();
    let mut ids = Vec::new();
    loop {
        let batch = snap.next_transactions(500).unwrap();
        if batch.is_empty() {
            break;
        }
        ids.extend(batch.into_iter().map(|t| t.transaction_id));
    }
    assert_eq!(ids.len(), 3_001);
    assert!(ids.windows(2).all(|w| w[0] < w[1]));
}
