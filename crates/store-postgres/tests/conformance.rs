//! The store conformance suite, against PostgreSQL (a schema of its own per test).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;

use fzip_store_conformance::{Fixture, JobFixture, store_conformance_tests};
use fzip_store_postgres::testing::TestSchema;
use fzip_store_postgres::{PgJobStore, PgStore};

fn postgres() -> Option<Fixture> {
    let schema = TestSchema::create().unwrap()?;
    let store = PgStore::open(&schema.url).unwrap();
    Some(Fixture {
        store: Arc::new(store),
        guard: Box::new(schema),
    })
}

store_conformance_tests!(postgres);

fn postgres_jobs() -> Option<JobFixture> {
    let schema = TestSchema::create().unwrap()?;
    let store = PgJobStore::open(&schema.url).unwrap();
    Some(JobFixture {
        store: Arc::new(store),
        guard: Box::new(schema),
    })
}

mod jobs {
    use super::postgres_jobs;
    fzip_store_conformance::job_store_conformance_tests!(postgres_jobs);
}
