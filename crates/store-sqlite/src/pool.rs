//! A few open connections kept for reuse, so short requests (status polls, summaries) do not pay
//! for opening the database each time.

use std::ops::{Deref, DerefMut};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use fzip_store::Result;
use rusqlite::{Connection, OpenFlags};

use crate::db_err;

/// Page cache per connection, in KiB. Small and fixed, so memory does not grow with profiles.
pub(crate) const CACHE_KIB: i64 = 8 * 1024;

/// True when `path` is a database file holding a migration history (refinery's), without
/// creating or changing anything (opened read-write without `CREATE`, since a read-only
/// connection cannot always read a WAL database).
pub(crate) fn holds_schema(path: &Path) -> Result<bool> {
    if !path.is_file() {
        return Ok(false);
    }
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(db_err)?;
    conn.busy_timeout(Duration::from_secs(60)).map_err(db_err)?;
    conn.query_row(
        "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = 'refinery_schema_history'",
        [],
        |r| r.get::<_, i64>(0),
    )
    .map(|n| n > 0)
    .map_err(db_err)
}

/// Connections to one database file.
#[derive(Debug)]
pub(crate) struct Pool {
    path: PathBuf,
    idle: Mutex<Vec<Connection>>,
    max_idle: usize,
}

impl Pool {
    pub(crate) fn new(path: &Path, max_idle: usize) -> Self {
        Pool {
            path: path.to_path_buf(),
            idle: Mutex::new(Vec::new()),
            max_idle,
        }
    }

    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// A new connection with fzip's settings.
    pub(crate) fn open(&self) -> Result<Connection> {
        let conn = Connection::open_with_flags(
            &self.path,
            OpenFlags::SQLITE_OPEN_READ_WRITE
                | OpenFlags::SQLITE_OPEN_CREATE
                | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(db_err)?;
        conn.busy_timeout(Duration::from_secs(60)).map_err(db_err)?;
        conn.execute_batch(&format!(
            "PRAGMA journal_mode = WAL;
             PRAGMA synchronous = FULL;
             PRAGMA foreign_keys = OFF;
             PRAGMA cache_size = -{CACHE_KIB};
             PRAGMA temp_store = FILE;"
        ))
        .map_err(db_err)?;
        Ok(conn)
    }

    /// A connection from the pool (or a new one).
    pub(crate) fn get(&self) -> Result<Pooled<'_>> {
        let reused = self
            .idle
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .pop();
        let conn = match reused {
            Some(c) => c,
            None => self.open()?,
        };
        Ok(Pooled {
            conn: Some(conn),
            pool: self,
        })
    }
}

/// A pooled connection; back to the pool when dropped (rolled back first if a transaction was
/// left open).
pub(crate) struct Pooled<'a> {
    conn: Option<Connection>,
    pool: &'a Pool,
}

impl Deref for Pooled<'_> {
    type Target = Connection;
    fn deref(&self) -> &Connection {
        // Only `Drop` takes the connection out.
        self.conn.as_ref().unwrap_or_else(|| unreachable_conn())
    }
}

impl DerefMut for Pooled<'_> {
    fn deref_mut(&mut self) -> &mut Connection {
        self.conn.as_mut().unwrap_or_else(|| unreachable_conn())
    }
}

#[allow(clippy::panic)]
fn unreachable_conn() -> ! {
    panic!("a pooled connection was used after it was returned")
}

impl Drop for Pooled<'_> {
    fn drop(&mut self) {
        let Some(conn) = self.conn.take() else { return };
        if !conn.is_autocommit() && conn.execute_batch("ROLLBACK").is_err() {
            return; // dropped, not reused
        }
        let mut idle = self
            .pool
            .idle
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if idle.len() < self.pool.max_idle {
            idle.push(conn);
        }
    }
}
