//! Schema migrations: SQL files embedded in the binary, applied in order in one transaction
//! under an advisory lock (so servers starting together do not race), recorded in
//! `fzip_schema_migrations`.

use fzip_store::{Result, StoreError};
use postgres::Client;

use crate::pg_err;
use crate::pool::PgTarget;

/// Every migration: version, name, SQL.
const MIGRATIONS: &[(i32, &str, &str)] = &[(
    1,
    "profiles_and_jobs",
    include_str!("../migrations/V1__profiles_and_jobs.sql"),
)];

/// "fzipmigr": the advisory lock migrations take.
const LOCK: i64 = 0x667a_6970_6d69_6772;

fn latest() -> i32 {
    MIGRATIONS.last().map_or(0, |m| m.0)
}

/// Applies pending migrations; returns the names of those applied.
pub fn migrate(target: &PgTarget) -> Result<Vec<String>> {
    let mut client = target.connect_plain()?;
    let mut tx = client.transaction().map_err(pg_err)?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&LOCK])
        .map_err(pg_err)?;
    if let Some(schema) = target.schema() {
        tx.batch_execute(&format!(
            "CREATE SCHEMA IF NOT EXISTS \"{schema}\"; SET LOCAL search_path TO \"{schema}\""
        ))
        .map_err(pg_err)?;
    }
    tx.batch_execute(
        "CREATE TABLE IF NOT EXISTS fzip_schema_migrations (
             version    INTEGER PRIMARY KEY,
             name       TEXT    NOT NULL,
             applied_at BIGINT  NOT NULL
         )",
    )
    .map_err(pg_err)?;
    let applied: Vec<i32> = tx
        .query(
            "SELECT version FROM fzip_schema_migrations ORDER BY version",
            &[],
        )
        .map_err(pg_err)?
        .iter()
        .map(|r| r.get(0))
        .collect();
    if let Some(newest) = applied.iter().max()
        && *newest > latest()
    {
        return Err(newer(target, *newest));
    }
    let mut names = Vec::new();
    for (version, name, sql) in MIGRATIONS {
        if applied.contains(version) {
            continue;
        }
        tx.batch_execute(sql).map_err(|e| {
            StoreError::Schema(format!(
                "migration V{version}__{name} failed on {}: {}",
                target.describe(),
                crate::error_text(&e)
            ))
        })?;
        tx.execute(
            "INSERT INTO fzip_schema_migrations (version, name, applied_at) VALUES ($1, $2, $3)",
            &[version, name, &crate::now_ms()],
        )
        .map_err(pg_err)?;
        names.push(format!("V{version}__{name}"));
    }
    tx.commit().map_err(pg_err)?;
    Ok(names)
}

fn newer(target: &PgTarget, version: i32) -> StoreError {
    StoreError::Schema(format!(
        "the database {} has schema version {version}, newer than this fzip knows ({}); use a newer fzip",
        target.describe(),
        latest()
    ))
}

/// Checks that the schema is exactly what this program expects.
pub fn check(target: &PgTarget, client: &mut Client) -> Result<()> {
    let exists: bool = client
        .query_one(
            "SELECT to_regclass('fzip_schema_migrations') IS NOT NULL",
            &[],
        )
        .map_err(pg_err)?
        .get(0);
    let hint = format!(
        "run `fzip migrate --database-url {}` (with the password) first",
        target.describe()
    );
    if !exists {
        return Err(StoreError::Schema(format!(
            "the database {} has no fzip schema yet: {hint}",
            target.describe()
        )));
    }
    let version: Option<i32> = client
        .query_one("SELECT MAX(version) FROM fzip_schema_migrations", &[])
        .map_err(pg_err)?
        .get(0);
    let version = version.unwrap_or(0);
    match version.cmp(&latest()) {
        std::cmp::Ordering::Equal => Ok(()),
        std::cmp::Ordering::Less => Err(StoreError::Schema(format!(
            "the database {} has schema version {version} and this fzip needs {}: {hint}",
            target.describe(),
            latest()
        ))),
        std::cmp::Ordering::Greater => Err(newer(target, version)),
    }
}
