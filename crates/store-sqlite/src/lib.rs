//! The embedded profile store: one SQLite database file (WAL mode), schema managed by refinery
//! migrations, tables per entity as described in [`fzip_store::codec`].
//!
//! - Snapshots are read transactions: in WAL mode a reader sees the database as of its first
//!   read, whatever is committed afterwards.
//! - Restores are one `BEGIN IMMEDIATE` transaction: the emptiness check and every insert happen
//!   under the write lock, and nothing is visible until `COMMIT`.
#![forbid(unsafe_code)]

use std::collections::HashSet;
use std::path::Path;

use fzip_model::{
    Account, AnalyticType, AnalyticsRecord, Category, EntityCounts, FileMap, Transaction,
};
use fzip_store::codec::{RowCodec, SqlRow, SqlValue};
use fzip_store::{
    ProfileSnapshot, ProfileStore, ProfileSummary, ProfileWriter, Result, StoreError, StoredFile,
};
use rusqlite::types::{ToSqlOutput, ValueRef};
use rusqlite::{Connection, ToSql, params};

mod jobs;
mod pool;

pub use jobs::SqliteJobStore;

use pool::{Pool, Pooled};

mod profile_migrations {
    refinery::embed_migrations!("migrations/profiles");
}

/// Profiles in one SQLite database file.
#[derive(Debug)]
pub struct SqliteStore {
    pool: Pool,
}

pub(crate) fn db_err(e: rusqlite::Error) -> StoreError {
    StoreError::Database(e.to_string())
}

/// Creates the folder of a database file.
pub(crate) fn ensure_parent(path: &Path) -> Result<()> {
    if let Some(dir) = path.parent()
        && !dir.as_os_str().is_empty()
    {
        std::fs::create_dir_all(dir)?;
    }
    Ok(())
}

impl SqliteStore {
    /// Opens (creating if needed) the database at `path` and applies pending migrations.
    pub fn open(path: &Path) -> Result<Self> {
        Self::migrate(path)?;
        Ok(SqliteStore {
            pool: Pool::new(path, 8),
        })
    }

    /// Opens the database at `path` only if one is there (a file holding fzip's schema
    /// history), applying pending migrations; `None` when there is none, and nothing is created.
    pub fn open_existing(path: &Path) -> Result<Option<Self>> {
        if !pool::holds_schema(path)? {
            return Ok(None);
        }
        Self::open(path).map(Some)
    }

    /// Applies pending migrations and returns the names of those applied.
    pub fn migrate(path: &Path) -> Result<Vec<String>> {
        ensure_parent(path)?;
        let mut conn = Pool::new(path, 0).open()?;
        let report = profile_migrations::migrations::runner()
            .run(&mut conn)
            .map_err(|e| StoreError::Schema(format!("migrating {}: {e}", path.display())))?;
        Ok(report
            .applied_migrations()
            .iter()
            .map(|m| m.to_string())
            .collect())
    }

    pub fn path(&self) -> &Path {
        self.pool.path()
    }

    fn connect(&self) -> Result<Pooled<'_>> {
        self.pool.get()
    }
}

/// Binds a codec value.
struct Bind<'a>(&'a SqlValue<'a>);

impl ToSql for Bind<'_> {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(match self.0 {
            SqlValue::Null => ToSqlOutput::Borrowed(ValueRef::Null),
            SqlValue::Int(i) => ToSqlOutput::Borrowed(ValueRef::Integer(*i)),
            SqlValue::Bool(b) => ToSqlOutput::Borrowed(ValueRef::Integer(i64::from(*b))),
            SqlValue::Text(t) => ToSqlOutput::Borrowed(ValueRef::Text(t.as_bytes())),
        })
    }
}

/// Reads codec columns from a row.
struct Row<'a, 'b>(&'a rusqlite::Row<'b>);

impl SqlRow for Row<'_, '_> {
    fn int(&self, index: usize) -> Result<Option<i64>> {
        self.0.get(index).map_err(db_err)
    }
    fn text(&self, index: usize) -> Result<Option<String>> {
        self.0.get(index).map_err(db_err)
    }
    fn boolean(&self, index: usize) -> Result<Option<bool>> {
        Ok(self
            .0
            .get::<_, Option<i64>>(index)
            .map_err(db_err)?
            .map(|v| v != 0))
    }
}

fn summary(conn: &Connection, user: &str) -> Result<ProfileSummary> {
    let count = |table: &str| -> Result<u64> {
        conn.query_row(
            &format!("SELECT COUNT(*) FROM {table} WHERE user_id = ?1"),
            params![user],
            |r| r.get::<_, i64>(0),
        )
        .map(|n| n as u64)
        .map_err(db_err)
    };
    let counts = EntityCounts {
        accounts: count("accounts")?,
        transactions: count("transactions")?,
        categories: count("categories")?,
        file_maps: count("file_maps")?,
        transaction_files: count("transaction_files")?,
        analytics: count("analytics")?,
    };
    let category_rules: i64 = conn
        .query_row(
            "SELECT COALESCE(SUM(json_array_length(rules)), 0) FROM categories WHERE user_id = ?1",
            params![user],
            |r| r.get(0),
        )
        .map_err(db_err)?;
    let (files_with_content, file_bytes): (i64, i64) = conn
        .query_row(
            "SELECT COUNT(content_size), COALESCE(SUM(content_size), 0)
             FROM transaction_files WHERE user_id = ?1 AND s3_key IS NOT NULL",
            params![user],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .map_err(db_err)?;
    let (first, last): (Option<i64>, Option<i64>) = conn
        .query_row(
            "SELECT MIN(date), MAX(date) FROM transactions WHERE user_id = ?1",
            params![user],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .map_err(db_err)?;
    Ok(ProfileSummary {
        counts,
        category_rules: category_rules as u64,
        files_with_content: files_with_content as u64,
        file_bytes: file_bytes as u64,
        first_transaction_date: first,
        last_transaction_date: last,
    })
}

impl ProfileStore for SqliteStore {
    fn describe(&self) -> String {
        format!("sqlite://{}", self.path().display())
    }

    fn summary(&self, user: &str) -> Result<ProfileSummary> {
        let conn = self.connect()?;
        summary(&conn, user)
    }

    fn snapshot(&self, user: &str) -> Result<Box<dyn ProfileSnapshot + '_>> {
        let conn = self.connect()?;
        conn.execute_batch("BEGIN DEFERRED").map_err(db_err)?;
        let mut snap = Snapshot {
            conn,
            user: user.to_string(),
            cursors: Default::default(),
            summary: None,
        };
        // The first read fixes the snapshot.
        snap.summary = Some(summary(&snap.conn, user)?);
        Ok(Box::new(snap))
    }

    fn begin_restore(&self, user: &str) -> Result<Box<dyn ProfileWriter + '_>> {
        let conn = self.connect()?;
        conn.execute_batch("BEGIN IMMEDIATE").map_err(db_err)?;
        let writer = Writer {
            conn,
            user: user.to_string(),
            done: false,
        };
        let existing = summary(&writer.conn, user)?;
        if !existing.is_empty() {
            return Err(StoreError::ProfileNotEmpty {
                user: user.to_string(),
                summary: Box::new(existing),
            });
        }
        Ok(Box::new(writer))
    }

    fn begin_write(&self, user: &str) -> Result<Box<dyn ProfileWriter + '_>> {
        let conn = self.connect()?;
        conn.execute_batch("BEGIN IMMEDIATE").map_err(db_err)?;
        Ok(Box::new(Writer {
            conn,
            user: user.to_string(),
            done: false,
        }))
    }

    fn clear_profile(&self, user: &str) -> Result<(ProfileSummary, Vec<String>)> {
        let conn = self.connect()?;
        conn.execute_batch("BEGIN IMMEDIATE").map_err(db_err)?;
        let result = (|| {
            let before = summary(&conn, user)?;
            let mut keys = Vec::new();
            {
                let mut stmt = conn
                    .prepare("SELECT s3_key FROM transaction_files WHERE user_id = ?1 AND s3_key IS NOT NULL")
                    .map_err(db_err)?;
                let rows = stmt
                    .query_map(params![user], |r| r.get::<_, String>(0))
                    .map_err(db_err)?;
                for key in rows {
                    keys.push(key.map_err(db_err)?);
                }
            }
            for table in [
                "transactions",
                "transaction_files",
                "categories",
                "file_maps",
                "accounts",
                "analytics",
                "job_log",
            ] {
                conn.execute(
                    &format!("DELETE FROM {table} WHERE user_id = ?1"),
                    params![user],
                )
                .map_err(db_err)?;
            }
            Ok((before, keys))
        })();
        match result {
            Ok(v) => {
                conn.execute_batch("COMMIT").map_err(db_err)?;
                Ok(v)
            }
            Err(e) => {
                let _ = conn.execute_batch("ROLLBACK");
                Err(e)
            }
        }
    }

    fn job_committed(&self, user: &str, job_id: &str) -> Result<bool> {
        let conn = self.connect()?;
        let n: i64 = conn
            .query_row(
                "SELECT COUNT(*) FROM job_log WHERE user_id = ?1 AND job_id = ?2",
                params![user, job_id],
                |r| r.get(0),
            )
            .map_err(db_err)?;
        Ok(n > 0)
    }

    fn referenced_blob_keys(&self) -> Result<HashSet<String>> {
        let conn = self.connect()?;
        let mut stmt = conn
            .prepare("SELECT s3_key FROM transaction_files WHERE s3_key IS NOT NULL")
            .map_err(db_err)?;
        let rows = stmt
            .query_map([], |r| r.get::<_, String>(0))
            .map_err(db_err)?;
        rows.map(|r| r.map_err(db_err)).collect()
    }
}

/// Where the next page of each collection starts.
#[derive(Default)]
struct Cursors {
    accounts: Option<String>,
    categories: Option<String>,
    file_maps: Option<String>,
    files: Option<(i64, String)>,
    transactions: Option<String>,
    analytics: Option<String>,
    done: HashSet<&'static str>,
}

struct Snapshot<'a> {
    conn: Pooled<'a>,
    user: String,
    cursors: Cursors,
    summary: Option<ProfileSummary>,
}

impl Snapshot<'_> {
    /// One page of a collection ordered by a single text key.
    fn page_by_key<T: RowCodec>(
        &mut self,
        key_col: &str,
        cursor: fn(&mut Cursors) -> &mut Option<String>,
        key_of: fn(&T) -> String,
        max: usize,
    ) -> Result<Vec<T>> {
        let table = T::TABLE.name;
        if self.cursors.done.contains(table) {
            return Ok(Vec::new());
        }
        let after = cursor(&mut self.cursors).clone();
        // Two statements rather than `(?2 IS NULL OR …)`, which would stop SQLite from seeking
        // the index to the cursor (every page would scan from the start).
        let sql = match after {
            None => format!(
                "{} WHERE user_id = ?1 ORDER BY {key_col} LIMIT ?3",
                T::TABLE.select_sql()
            ),
            Some(_) => format!(
                "{} WHERE user_id = ?1 AND {key_col} > ?2 ORDER BY {key_col} LIMIT ?3",
                T::TABLE.select_sql()
            ),
        };
        let mut stmt = self.conn.prepare_cached(&sql).map_err(db_err)?;
        let mut rows = stmt
            .query(params![self.user, after, max as i64])
            .map_err(db_err)?;
        let mut out = Vec::new();
        while let Some(row) = rows.next().map_err(db_err)? {
            out.push(T::decode(&Row(row))?);
        }
        match out.last() {
            Some(last) if out.len() == max => *cursor(&mut self.cursors) = Some(key_of(last)),
            _ => {
                self.cursors.done.insert(table);
            }
        }
        Ok(out)
    }

    /// One page of a collection ordered newest first by (time, id).
    fn page_by_time<T: RowCodec>(
        &mut self,
        time_col: &str,
        id_col: &str,
        cursor: fn(&mut Cursors) -> &mut Option<(i64, String)>,
        key_of: fn(&T) -> (i64, String),
        max: usize,
    ) -> Result<Vec<T>> {
        let table = T::TABLE.name;
        if self.cursors.done.contains(table) {
            return Ok(Vec::new());
        }
        let after = cursor(&mut self.cursors).clone();
        let (t, id) = match &after {
            Some((t, id)) => (Some(*t), Some(id.clone())),
            None => (None, None),
        };
        let sql = match after {
            None => format!(
                "{} WHERE user_id = ?1 ORDER BY {time_col} DESC, {id_col} DESC LIMIT ?4",
                T::TABLE.select_sql()
            ),
            Some(_) => format!(
                "{} WHERE user_id = ?1 AND ({time_col}, {id_col}) < (?2, ?3)
                 ORDER BY {time_col} DESC, {id_col} DESC LIMIT ?4",
                T::TABLE.select_sql()
            ),
        };
        let mut stmt = self.conn.prepare_cached(&sql).map_err(db_err)?;
        let mut rows = stmt
            .query(params![self.user, t, id, max as i64])
            .map_err(db_err)?;
        let mut out = Vec::new();
        while let Some(row) = rows.next().map_err(db_err)? {
            out.push(T::decode(&Row(row))?);
        }
        match out.last() {
            Some(last) if out.len() == max => *cursor(&mut self.cursors) = Some(key_of(last)),
            _ => {
                self.cursors.done.insert(table);
            }
        }
        Ok(out)
    }
}

impl ProfileSnapshot for Snapshot<'_> {
    fn summary(&mut self) -> Result<ProfileSummary> {
        match &self.summary {
            Some(s) => Ok(s.clone()),
            None => summary(&self.conn, &self.user),
        }
    }

    fn next_accounts(&mut self, max: usize) -> Result<Vec<Account>> {
        self.page_by_key(
            "account_id",
            |c| &mut c.accounts,
            |a: &Account| a.account_id.clone(),
            max,
        )
    }

    fn next_categories(&mut self, max: usize) -> Result<Vec<Category>> {
        self.page_by_key(
            "category_id",
            |c| &mut c.categories,
            |a: &Category| a.category_id.clone(),
            max,
        )
    }

    fn next_file_maps(&mut self, max: usize) -> Result<Vec<FileMap>> {
        self.page_by_key(
            "file_map_id",
            |c| &mut c.file_maps,
            |a: &FileMap| a.file_map_id.clone(),
            max,
        )
    }

    fn next_transaction_files(&mut self, max: usize) -> Result<Vec<StoredFile>> {
        self.page_by_time(
            "upload_date",
            "file_id",
            |c| &mut c.files,
            |f: &StoredFile| (f.file.upload_date, f.file.file_id.clone()),
            max,
        )
    }

    fn next_transactions(&mut self, max: usize) -> Result<Vec<Transaction>> {
        // Key order: a restore of the package then appends to the primary-key index.
        self.page_by_key(
            "transaction_id",
            |c| &mut c.transactions,
            |t: &Transaction| t.transaction_id.clone(),
            max,
        )
    }

    fn next_analytics(&mut self, max: usize) -> Result<Vec<AnalyticsRecord>> {
        self.page_by_key(
            "analytic_key",
            |c| &mut c.analytics,
            |a: &AnalyticsRecord| a.key(),
            max,
        )
    }
}

impl Drop for Snapshot<'_> {
    fn drop(&mut self) {
        let _ = self.conn.execute_batch("ROLLBACK");
    }
}

struct Writer<'a> {
    conn: Pooled<'a>,
    user: String,
    done: bool,
}

impl Writer<'_> {
    fn insert<T: RowCodec + HasId>(&mut self, rows: &[T]) -> Result<()> {
        self.write_rows(rows, false)
    }

    fn upsert<T: RowCodec + HasId>(&mut self, rows: &[T]) -> Result<()> {
        self.write_rows(rows, true)
    }

    fn all<T: RowCodec>(&mut self, order: &str) -> Result<Vec<T>> {
        let sql = format!(
            "{} WHERE user_id = ?1 ORDER BY {order}",
            T::TABLE.select_sql()
        );
        let mut stmt = self.conn.prepare_cached(&sql).map_err(db_err)?;
        let mut rows = stmt.query(params![self.user]).map_err(db_err)?;
        let mut out = Vec::new();
        while let Some(row) = rows.next().map_err(db_err)? {
            out.push(T::decode(&Row(row))?);
        }
        Ok(out)
    }

    fn write_rows<T: RowCodec + HasId>(&mut self, rows: &[T], upsert: bool) -> Result<()> {
        let sql = if upsert {
            T::TABLE.upsert_sql(|i| format!("?{i}"))
        } else {
            T::TABLE.insert_sql(|i| format!("?{i}"))
        };
        let mut stmt = self.conn.prepare_cached(&sql).map_err(db_err)?;
        let mut values: Vec<SqlValue<'_>> = Vec::with_capacity(T::TABLE.columns.len());
        for row in rows {
            values.clear();
            values.push(SqlValue::Text(self.user.as_str().into()));
            row.encode(&mut values)?;
            let binds: Vec<Bind<'_>> = values.iter().map(Bind).collect();
            match stmt.execute(rusqlite::params_from_iter(binds.iter())) {
                Ok(_) => {}
                Err(rusqlite::Error::SqliteFailure(e, _))
                    if e.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_PRIMARYKEY =>
                {
                    return Err(StoreError::Duplicate {
                        kind: T::KIND_NAME,
                        id: row.row_id(),
                    });
                }
                Err(e) => return Err(db_err(e)),
            }
        }
        Ok(())
    }
}

/// What a duplicate-key error names.
trait HasId {
    const KIND_NAME: &'static str;
    fn row_id(&self) -> String;
}

impl HasId for Account {
    const KIND_NAME: &'static str = "account";
    fn row_id(&self) -> String {
        self.account_id.clone()
    }
}
impl HasId for Category {
    const KIND_NAME: &'static str = "category";
    fn row_id(&self) -> String {
        self.category_id.clone()
    }
}
impl HasId for FileMap {
    const KIND_NAME: &'static str = "file map";
    fn row_id(&self) -> String {
        self.file_map_id.clone()
    }
}
impl HasId for StoredFile {
    const KIND_NAME: &'static str = "transaction file";
    fn row_id(&self) -> String {
        self.file.file_id.clone()
    }
}
impl HasId for Transaction {
    const KIND_NAME: &'static str = "transaction";
    fn row_id(&self) -> String {
        self.transaction_id.clone()
    }
}
impl HasId for AnalyticsRecord {
    const KIND_NAME: &'static str = "analytics record";
    fn row_id(&self) -> String {
        self.key()
    }
}

impl ProfileWriter for Writer<'_> {
    fn insert_accounts(&mut self, rows: &[Account]) -> Result<()> {
        self.insert(rows)
    }
    fn insert_categories(&mut self, rows: &[Category]) -> Result<()> {
        self.insert(rows)
    }
    fn insert_file_maps(&mut self, rows: &[FileMap]) -> Result<()> {
        self.insert(rows)
    }
    fn insert_transaction_files(&mut self, rows: &[StoredFile]) -> Result<()> {
        self.insert(rows)
    }
    fn insert_transactions(&mut self, rows: &[Transaction]) -> Result<()> {
        self.insert(rows)
    }
    fn insert_analytics(&mut self, rows: &[AnalyticsRecord]) -> Result<()> {
        self.insert(rows)
    }
    fn upsert_accounts(&mut self, rows: &[Account]) -> Result<()> {
        self.upsert(rows)
    }
    fn upsert_categories(&mut self, rows: &[Category]) -> Result<()> {
        self.upsert(rows)
    }
    fn upsert_file_maps(&mut self, rows: &[FileMap]) -> Result<()> {
        self.upsert(rows)
    }
    fn upsert_transaction_files(&mut self, rows: &[StoredFile]) -> Result<()> {
        self.upsert(rows)
    }
    fn upsert_transactions(&mut self, rows: &[Transaction]) -> Result<()> {
        self.upsert(rows)
    }
    fn replace_analytics(
        &mut self,
        types: &[AnalyticType],
        rows: &[AnalyticsRecord],
    ) -> Result<()> {
        for t in types {
            self.conn
                .execute(
                    "DELETE FROM analytics WHERE user_id = ?1 AND analytic_type = ?2",
                    params![self.user, t.as_str()],
                )
                .map_err(db_err)?;
        }
        self.upsert(rows)
    }
    fn all_accounts(&mut self) -> Result<Vec<Account>> {
        self.all("account_id")
    }
    fn all_categories(&mut self) -> Result<Vec<Category>> {
        self.all("category_id")
    }
    fn all_file_maps(&mut self) -> Result<Vec<FileMap>> {
        self.all("file_map_id")
    }
    fn all_transaction_files(&mut self) -> Result<Vec<StoredFile>> {
        self.all("file_id")
    }
    fn all_analytics(&mut self) -> Result<Vec<AnalyticsRecord>> {
        self.all("analytic_key")
    }
    fn transactions_by_id(&mut self, ids: &[String]) -> Result<Vec<Transaction>> {
        let mut out = Vec::new();
        for chunk in ids.chunks(500) {
            let marks = vec!["?"; chunk.len()].join(", ");
            let sql = format!(
                "{} WHERE user_id = ? AND transaction_id IN ({marks})",
                Transaction::TABLE.select_sql()
            );
            let mut stmt = self.conn.prepare_cached(&sql).map_err(db_err)?;
            let args = std::iter::once(self.user.as_str()).chain(chunk.iter().map(String::as_str));
            let mut rows = stmt
                .query(rusqlite::params_from_iter(args))
                .map_err(db_err)?;
            while let Some(row) = rows.next().map_err(db_err)? {
                out.push(Transaction::decode(&Row(row))?);
            }
        }
        Ok(out)
    }
    fn scan_transactions(
        &mut self,
        from: i64,
        to: i64,
        f: &mut dyn FnMut(Transaction) -> Result<()>,
    ) -> Result<()> {
        let sql = format!(
            "{} WHERE user_id = ?1 AND date BETWEEN ?2 AND ?3",
            Transaction::TABLE.select_sql()
        );
        let mut stmt = self.conn.prepare_cached(&sql).map_err(db_err)?;
        let mut rows = stmt.query(params![self.user, from, to]).map_err(db_err)?;
        while let Some(row) = rows.next().map_err(db_err)? {
            f(Transaction::decode(&Row(row))?)?;
        }
        Ok(())
    }
    fn mark_job(&mut self, job_id: &str) -> Result<()> {
        self.conn
            .execute(
                "INSERT INTO job_log (user_id, job_id, committed_at) VALUES (?1, ?2, ?3)",
                params![self.user, job_id, now_ms()],
            )
            .map_err(db_err)?;
        Ok(())
    }
    fn commit(mut self: Box<Self>) -> Result<()> {
        self.conn.execute_batch("COMMIT").map_err(db_err)?;
        self.done = true;
        Ok(())
    }
}

impl Drop for Writer<'_> {
    fn drop(&mut self) {
        if !self.done {
            let _ = self.conn.execute_batch("ROLLBACK");
        }
    }
}

pub(crate) fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}
