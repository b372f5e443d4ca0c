//! The scale-out store: profiles and jobs in PostgreSQL, shared by any number of `fzip serve`
//! processes. The tables are the ones the SQLite store has (see [`fzip_store::codec`]).
//!
//! - **Snapshots** are `REPEATABLE READ, READ ONLY` transactions: a backup sees the profile as of
//!   its first query, whatever is committed afterwards. Rows stream through server-side cursors
//!   (`DECLARE … CURSOR` / `FETCH`), a page at a time.
//! - **Writes** (restore, import) are one transaction holding a per-user advisory lock, so two
//!   writers of one profile queue up and a restore's emptiness check cannot be raced. Bulk
//!   inserts go through `COPY … FROM STDIN`; upserts through multi-row
//!   `INSERT … ON CONFLICT DO UPDATE`.
//! - **Jobs** ([`PgJobStore`]) are claimed with `FOR UPDATE SKIP LOCKED`.
//! - **Schema** changes are explicit: `fzip migrate` ([`migrate`]); opening a store whose schema
//!   is behind fails with a message saying so.
#![forbid(unsafe_code)]

use std::collections::HashSet;
use std::io::Write;

use bytes::BytesMut;
use fzip_model::{
    Account, AnalyticType, AnalyticsRecord, Category, EntityCounts, FileMap, Transaction,
};
use fzip_store::codec::{RowCodec, SqlRow, SqlValue};
use fzip_store::{
    ProfileSnapshot, ProfileStore, ProfileSummary, ProfileWriter, Result, StoreError, StoredFile,
};
use postgres::error::SqlState;
use postgres::types::{IsNull, ToSql, Type, to_sql_checked};

mod jobs;
mod migrate;
mod pool;
mod text;
pub mod tls;

pub use jobs::PgJobStore;
pub use pool::PgTarget;

use pool::{Pool, Pooled};

/// How rows are inserted in bulk.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum BulkMode {
    /// `COPY … FROM STDIN`: the default.
    #[default]
    Copy,
    /// One prepared `INSERT` per row (only for measuring what `COPY` saves).
    RowByRow,
}

/// Profiles in a PostgreSQL database.
#[derive(Debug)]
pub struct PgStore {
    pool: Pool,
    bulk: BulkMode,
}

/// The message of a driver error, with the server's detail when there is one.
pub(crate) fn error_text(e: &postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => match db.detail() {
            Some(detail) => format!("{} ({detail})", db.message()),
            None => db.message().to_string(),
        },
        None => match std::error::Error::source(e) {
            Some(source) => format!("{e}: {source}"),
            None => e.to_string(),
        },
    }
}

pub(crate) fn pg_err(e: postgres::Error) -> StoreError {
    StoreError::Database(error_text(&e))
}

/// Applies pending schema migrations to the database at `url`; returns those applied.
pub fn migrate(url: &str) -> Result<Vec<String>> {
    migrate::migrate(&PgTarget::parse(url)?)
}

pub(crate) fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

impl PgStore {
    /// Connects to the database at `url` (`postgres://…[?schema=NAME]`) and checks that its
    /// schema is current (`fzip migrate` makes it so).
    pub fn open(url: &str) -> Result<Self> {
        let target = PgTarget::parse(url)?;
        let bulk = if target.row_by_row {
            BulkMode::RowByRow
        } else {
            BulkMode::Copy
        };
        Self::open_with(target, bulk)
    }

    pub fn open_with(target: PgTarget, bulk: BulkMode) -> Result<Self> {
        let pool = Pool::new(target, 8);
        {
            let mut conn = pool.get()?;
            migrate::check(&pool.target, &mut conn.client)?;
        }
        Ok(PgStore { pool, bulk })
    }

    pub fn target(&self) -> &PgTarget {
        &self.pool.target
    }
}

/// Binds a codec value.
#[derive(Debug)]
struct Bind<'a>(&'a SqlValue<'a>);

impl ToSql for Bind<'_> {
    fn to_sql(
        &self,
        ty: &Type,
        out: &mut BytesMut,
    ) -> std::result::Result<IsNull, Box<dyn std::error::Error + Sync + Send>> {
        match self.0 {
            SqlValue::Null => Ok(IsNull::Yes),
            SqlValue::Int(i) if *ty == Type::INT4 => i32::try_from(*i)?.to_sql(ty, out),
            SqlValue::Int(i) => i.to_sql(ty, out),
            SqlValue::Bool(b) => b.to_sql(ty, out),
            SqlValue::Text(t) => text::encode(t).as_ref().to_sql(ty, out),
        }
    }

    fn accepts(_ty: &Type) -> bool {
        true
    }

    to_sql_checked!();
}

/// A text parameter in its stored form.
#[derive(Debug)]
pub(crate) struct Txt<'a>(pub(crate) &'a str);

impl ToSql for Txt<'_> {
    fn to_sql(
        &self,
        ty: &Type,
        out: &mut BytesMut,
    ) -> std::result::Result<IsNull, Box<dyn std::error::Error + Sync + Send>> {
        text::encode(self.0).as_ref().to_sql(ty, out)
    }

    fn accepts(ty: &Type) -> bool {
        <&str as ToSql>::accepts(ty)
    }

    to_sql_checked!();
}

/// Reads codec columns from a row.
struct Row<'a>(&'a postgres::Row);

impl SqlRow for Row<'_> {
    fn int(&self, index: usize) -> Result<Option<i64>> {
        let ty = self.0.columns().get(index).map(|c| c.type_().clone());
        match ty {
            Some(Type::INT4) => Ok(self
                .0
                .try_get::<_, Option<i32>>(index)
                .map_err(pg_err)?
                .map(i64::from)),
            _ => self.0.try_get(index).map_err(pg_err),
        }
    }
    fn text(&self, index: usize) -> Result<Option<String>> {
        match self.0.try_get::<_, Option<String>>(index).map_err(pg_err)? {
            None => Ok(None),
            Some(s) => text::decode(s).map(Some).ok_or_else(|| {
                StoreError::Corrupt(format!("column {index} holds a damaged escaped string"))
            }),
        }
    }
    fn boolean(&self, index: usize) -> Result<Option<bool>> {
        self.0.try_get(index).map_err(pg_err)
    }
}

/// Reads a stored text column.
pub(crate) fn get_text(row: &postgres::Row, index: usize) -> Result<Option<String>> {
    Row(row).text(index)
}

fn summary(conn: &mut Pooled<'_>, user: &str) -> Result<ProfileSummary> {
    let statement = conn.prepared(
        "SELECT
            (SELECT COUNT(*) FROM accounts WHERE user_id = $1),
            (SELECT COUNT(*) FROM transactions WHERE user_id = $1),
            (SELECT COUNT(*) FROM categories WHERE user_id = $1),
            (SELECT COUNT(*) FROM file_maps WHERE user_id = $1),
            (SELECT COUNT(*) FROM transaction_files WHERE user_id = $1),
            (SELECT COUNT(*) FROM analytics WHERE user_id = $1),
            (SELECT COALESCE(SUM(json_array_length(rules::json)), 0)::BIGINT
               FROM categories WHERE user_id = $1),
            (SELECT COUNT(content_size) FROM transaction_files
               WHERE user_id = $1 AND s3_key IS NOT NULL),
            (SELECT COALESCE(SUM(content_size), 0)::BIGINT FROM transaction_files
               WHERE user_id = $1 AND s3_key IS NOT NULL),
            (SELECT MIN(date) FROM transactions WHERE user_id = $1),
            (SELECT MAX(date) FROM transactions WHERE user_id = $1)",
    )?;
    let row = conn
        .client
        .query_one(&statement, &[&Txt(user)])
        .map_err(pg_err)?;
    let n =
        |i: usize| -> Result<u64> { Ok(row.try_get::<_, i64>(i).map_err(pg_err)?.max(0) as u64) };
    Ok(ProfileSummary {
        counts: EntityCounts {
            accounts: n(0)?,
            transactions: n(1)?,
            categories: n(2)?,
            file_maps: n(3)?,
            transaction_files: n(4)?,
            analytics: n(5)?,
        },
        category_rules: n(6)?,
        files_with_content: n(7)?,
        file_bytes: n(8)?,
        first_transaction_date: row.try_get(9).map_err(pg_err)?,
        last_transaction_date: row.try_get(10).map_err(pg_err)?,
    })
}

/// Takes the per-user write lock of the current transaction.
fn lock_profile(conn: &mut Pooled<'_>, user: &str) -> Result<()> {
    let statement =
        conn.prepared("SELECT pg_advisory_xact_lock(hashtextextended('fzip:profile:' || $1, 0))")?;
    conn.client
        .execute(&statement, &[&Txt(user)])
        .map_err(pg_err)?;
    Ok(())
}

impl ProfileStore for PgStore {
    fn describe(&self) -> String {
        self.pool.target.describe().to_string()
    }

    fn summary(&self, user: &str) -> Result<ProfileSummary> {
        let mut conn = self.pool.get()?;
        summary(&mut conn, user)
    }

    fn snapshot(&self, user: &str) -> Result<Box<dyn ProfileSnapshot + '_>> {
        let mut conn = self.pool.get()?;
        conn.begin("BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY")?;
        // The first query fixes the snapshot.
        let summary = summary(&mut conn, user)?;
        Ok(Box::new(Snapshot {
            conn,
            user: user.to_string(),
            open: HashSet::new(),
            done: HashSet::new(),
            summary,
        }))
    }

    fn begin_restore(&self, user: &str) -> Result<Box<dyn ProfileWriter + '_>> {
        let mut conn = self.pool.get()?;
        conn.begin("BEGIN")?;
        lock_profile(&mut conn, user)?;
        let existing = summary(&mut conn, user)?;
        if !existing.is_empty() {
            return Err(StoreError::ProfileNotEmpty {
                user: user.to_string(),
                summary: Box::new(existing),
            });
        }
        Ok(Box::new(Writer {
            conn,
            user: user.to_string(),
            bulk: self.bulk,
        }))
    }

    fn begin_write(&self, user: &str) -> Result<Box<dyn ProfileWriter + '_>> {
        let mut conn = self.pool.get()?;
        conn.begin("BEGIN")?;
        lock_profile(&mut conn, user)?;
        Ok(Box::new(Writer {
            conn,
            user: user.to_string(),
            bulk: self.bulk,
        }))
    }

    fn clear_profile(&self, user: &str) -> Result<(ProfileSummary, Vec<String>)> {
        let mut conn = self.pool.get()?;
        conn.begin("BEGIN")?;
        lock_profile(&mut conn, user)?;
        let before = summary(&mut conn, user)?;
        let rows = conn
            .client
            .query(
                "SELECT s3_key FROM transaction_files WHERE user_id = $1 AND s3_key IS NOT NULL",
                &[&Txt(user)],
            )
            .map_err(pg_err)?;
        let mut keys = Vec::with_capacity(rows.len());
        for row in &rows {
            if let Some(k) = get_text(row, 0)? {
                keys.push(k);
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
            conn.client
                .execute(
                    &format!("DELETE FROM {table} WHERE user_id = $1"),
                    &[&Txt(user)],
                )
                .map_err(pg_err)?;
        }
        conn.commit()?;
        Ok((before, keys))
    }

    fn referenced_blob_keys(&self) -> Result<HashSet<String>> {
        let mut conn = self.pool.get()?;
        let rows = conn
            .client
            .query(
                "SELECT s3_key FROM transaction_files WHERE s3_key IS NOT NULL",
                &[],
            )
            .map_err(pg_err)?;
        let mut out = HashSet::with_capacity(rows.len());
        for row in &rows {
            if let Some(k) = get_text(row, 0)? {
                out.insert(k);
            }
        }
        Ok(out)
    }

    fn job_committed(&self, user: &str, job_id: &str) -> Result<bool> {
        let mut conn = self.pool.get()?;
        let row = conn
            .client
            .query_one(
                "SELECT COUNT(*) FROM job_log WHERE user_id = $1 AND job_id = $2",
                &[&Txt(user), &Txt(job_id)],
            )
            .map_err(pg_err)?;
        Ok(row.try_get::<_, i64>(0).map_err(pg_err)? > 0)
    }
}

/// A consistent read of one profile: a repeatable-read transaction with one server-side cursor
/// per collection.
struct Snapshot<'a> {
    conn: Pooled<'a>,
    user: String,
    open: HashSet<&'static str>,
    done: HashSet<&'static str>,
    summary: ProfileSummary,
}

impl Snapshot<'_> {
    /// The next page of a collection, in `order`.
    fn page<T: RowCodec>(&mut self, order: &str, max: usize) -> Result<Vec<T>> {
        let table = T::TABLE.name;
        if self.done.contains(table) {
            return Ok(Vec::new());
        }
        let cursor = format!("fzip_{table}");
        if !self.open.contains(table) {
            let sql = format!(
                "DECLARE {cursor} NO SCROLL CURSOR FOR {} WHERE user_id = $1 ORDER BY {order}",
                T::TABLE.select_sql()
            );
            self.conn
                .client
                .execute(&sql, &[&Txt(&self.user)])
                .map_err(pg_err)?;
            self.open.insert(table);
        }
        let rows = self
            .conn
            .client
            .query(&format!("FETCH FORWARD {} FROM {cursor}", max.max(1)), &[])
            .map_err(pg_err)?;
        if rows.len() < max.max(1) {
            self.done.insert(table);
            self.conn
                .client
                .batch_execute(&format!("CLOSE {cursor}"))
                .map_err(pg_err)?;
        }
        rows.iter().map(|r| T::decode(&Row(r))).collect()
    }
}

impl ProfileSnapshot for Snapshot<'_> {
    fn summary(&mut self) -> Result<ProfileSummary> {
        Ok(self.summary.clone())
    }
    fn next_accounts(&mut self, max: usize) -> Result<Vec<Account>> {
        self.page("account_id", max)
    }
    fn next_categories(&mut self, max: usize) -> Result<Vec<Category>> {
        self.page("category_id", max)
    }
    fn next_file_maps(&mut self, max: usize) -> Result<Vec<FileMap>> {
        self.page("file_map_id", max)
    }
    fn next_transaction_files(&mut self, max: usize) -> Result<Vec<StoredFile>> {
        self.page("upload_date DESC, file_id DESC", max)
    }
    fn next_transactions(&mut self, max: usize) -> Result<Vec<Transaction>> {
        self.page("transaction_id", max)
    }
    fn next_analytics(&mut self, max: usize) -> Result<Vec<AnalyticsRecord>> {
        self.page("analytic_key", max)
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

/// A unique violation names the row: `Key (user_id, account_id)=(alice, 123) already exists.`
fn duplicate_or(e: postgres::Error, kind: &'static str) -> StoreError {
    if e.code() == Some(&SqlState::UNIQUE_VIOLATION) {
        let id = e
            .as_db_error()
            .and_then(|d| d.detail())
            .and_then(|d| d.split_once(")=("))
            .and_then(|(_, rest)| rest.rsplit_once(") already exists"))
            .and_then(|(values, _)| values.split_once(", "))
            .map(|(_, id)| id.to_string())
            .unwrap_or_else(|| "?".into());
        return StoreError::Duplicate { kind, id };
    }
    pg_err(e)
}

/// Rows per multi-row upsert statement.
const UPSERT_ROWS: usize = 200;

struct Writer<'a> {
    conn: Pooled<'a>,
    user: String,
    bulk: BulkMode,
}

impl Writer<'_> {
    fn insert<T: RowCodec + HasId>(&mut self, rows: &[T]) -> Result<()> {
        if rows.is_empty() {
            return Ok(());
        }
        match self.bulk {
            BulkMode::Copy => self.copy_in(rows),
            BulkMode::RowByRow => self.insert_rows(rows),
        }
    }

    fn copy_in<T: RowCodec + HasId>(&mut self, rows: &[T]) -> Result<()> {
        let sql = format!(
            "COPY {} ({}) FROM STDIN",
            T::TABLE.name,
            T::TABLE.columns.join(", ")
        );
        let mut buf: Vec<u8> = Vec::with_capacity(64 * 1024);
        let mut values: Vec<SqlValue<'_>> = Vec::with_capacity(T::TABLE.columns.len());
        let mut writer = self.conn.client.copy_in(&sql).map_err(pg_err)?;
        for row in rows {
            values.clear();
            values.push(SqlValue::Text(self.user.as_str().into()));
            row.encode(&mut values)?;
            for (i, v) in values.iter().enumerate() {
                if i > 0 {
                    buf.push(b'\t');
                }
                text::copy_field(&mut buf, v);
            }
            buf.push(b'\n');
            if buf.len() >= 60 * 1024 {
                writer.write_all(&buf)?;
                buf.clear();
            }
        }
        writer.write_all(&buf)?;
        writer.finish().map_err(|e| duplicate_or(e, T::KIND_NAME))?;
        Ok(())
    }

    fn insert_rows<T: RowCodec + HasId>(&mut self, rows: &[T]) -> Result<()> {
        let sql = T::TABLE.insert_sql(|i| format!("${i}"));
        let statement = self.conn.prepared(&sql)?;
        let mut values: Vec<SqlValue<'_>> = Vec::with_capacity(T::TABLE.columns.len());
        for row in rows {
            values.clear();
            values.push(SqlValue::Text(self.user.as_str().into()));
            row.encode(&mut values)?;
            let binds: Vec<Bind<'_>> = values.iter().map(Bind).collect();
            let params: Vec<&(dyn ToSql + Sync)> =
                binds.iter().map(|b| b as &(dyn ToSql + Sync)).collect();
            self.conn
                .client
                .execute(&statement, &params)
                .map_err(|e| duplicate_or(e, T::KIND_NAME))?;
        }
        Ok(())
    }

    fn upsert<T: RowCodec + HasId>(&mut self, rows: &[T]) -> Result<()> {
        // One statement cannot touch a row twice: the last version of an id wins, as a
        // sequence of single-row upserts would have it.
        let mut seen = HashSet::new();
        let mut last: Vec<&T> = rows
            .iter()
            .rev()
            .filter(|r| seen.insert(r.row_id()))
            .collect();
        last.reverse();
        let columns = T::TABLE.columns.len();
        for chunk in last.chunks(UPSERT_ROWS) {
            let single = T::TABLE.upsert_sql(|i| format!("${i}"));
            // `INSERT … VALUES ($1…), ($n+1…), … ON CONFLICT …`
            let (head, tail) = single
                .split_once(" ON CONFLICT ")
                .unwrap_or((single.as_str(), ""));
            let (insert, _) = head.split_once(" VALUES ").unwrap_or((head, ""));
            let groups: Vec<String> = (0..chunk.len())
                .map(|r| {
                    let params: Vec<String> = (1..=columns)
                        .map(|c| format!("${}", r * columns + c))
                        .collect();
                    format!("({})", params.join(", "))
                })
                .collect();
            let sql = format!("{insert} VALUES {} ON CONFLICT {tail}", groups.join(", "));
            let statement = self.conn.prepared(&sql)?;
            let mut values: Vec<SqlValue<'_>> = Vec::with_capacity(columns * chunk.len());
            for row in chunk {
                values.push(SqlValue::Text(self.user.as_str().into()));
                row.encode(&mut values)?;
            }
            let binds: Vec<Bind<'_>> = values.iter().map(Bind).collect();
            let params: Vec<&(dyn ToSql + Sync)> =
                binds.iter().map(|b| b as &(dyn ToSql + Sync)).collect();
            self.conn
                .client
                .execute(&statement, &params)
                .map_err(|e| duplicate_or(e, T::KIND_NAME))?;
        }
        Ok(())
    }

    fn all<T: RowCodec>(&mut self, order: &str) -> Result<Vec<T>> {
        let sql = format!(
            "{} WHERE user_id = $1 ORDER BY {order}",
            T::TABLE.select_sql()
        );
        let statement = self.conn.prepared(&sql)?;
        let rows = self
            .conn
            .client
            .query(&statement, &[&Txt(&self.user)])
            .map_err(pg_err)?;
        rows.iter().map(|r| T::decode(&Row(r))).collect()
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
        if !types.is_empty() {
            let names: Vec<&str> = types.iter().map(|t| t.as_str()).collect();
            self.conn
                .client
                .execute(
                    "DELETE FROM analytics WHERE user_id = $1 AND analytic_type = ANY($2)",
                    &[&Txt(&self.user), &names],
                )
                .map_err(pg_err)?;
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
        let sql = format!(
            "{} WHERE user_id = $1 AND transaction_id = ANY($2)",
            Transaction::TABLE.select_sql()
        );
        let statement = self.conn.prepared(&sql)?;
        let mut out = Vec::new();
        for chunk in ids.chunks(5_000) {
            let stored: Vec<String> = chunk.iter().map(|i| text::encode(i).into_owned()).collect();
            let rows = self
                .conn
                .client
                .query(&statement, &[&Txt(&self.user), &stored])
                .map_err(pg_err)?;
            for r in &rows {
                out.push(Transaction::decode(&Row(r))?);
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
            "DECLARE fzip_scan NO SCROLL CURSOR FOR {} WHERE user_id = $1 AND date BETWEEN $2 AND $3",
            Transaction::TABLE.select_sql()
        );
        self.conn
            .client
            .execute(&sql, &[&Txt(&self.user), &from, &to])
            .map_err(pg_err)?;
        let result = (|| loop {
            let rows = self
                .conn
                .client
                .query("FETCH FORWARD 2000 FROM fzip_scan", &[])
                .map_err(pg_err)?;
            for r in &rows {
                f(Transaction::decode(&Row(r))?)?;
            }
            if rows.len() < 2000 {
                return Ok(());
            }
        })();
        // Closing fails only when the transaction is already aborted, which the caller sees.
        let _ = self.conn.client.batch_execute("CLOSE fzip_scan");
        result
    }
    fn mark_job(&mut self, job_id: &str) -> Result<()> {
        self.conn
            .client
            .execute(
                "INSERT INTO job_log (user_id, job_id, committed_at) VALUES ($1, $2, $3)",
                &[&Txt(&self.user), &Txt(job_id), &now_ms()],
            )
            .map_err(pg_err)?;
        Ok(())
    }
    fn commit(mut self: Box<Self>) -> Result<()> {
        self.conn.commit()
    }
}

pub mod testing {
    //! Test databases: each test gets its own schema in the server named by
    //! `FZIP_TEST_DATABASE_URL` (default `postgres://postgres@127.0.0.1:5432/test`), dropped
    //! when the test ends. A missing server fails the test, unless `FZIP_SKIP_POSTGRES=1` says
    //! to skip it, which is then reported loudly on stderr.

    use fzip_store::{Result, StoreError};

    use crate::pool::PgTarget;

    /// The server tests use.
    pub fn base_url() -> String {
        std::env::var("FZIP_TEST_DATABASE_URL")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into())
    }

    /// A schema of its own for one test, migrated; dropped with the value.
    pub struct TestSchema {
        /// The URL to open stores with (`…?schema=NAME`).
        pub url: String,
        pub name: String,
        target: PgTarget,
    }

    impl TestSchema {
        /// `Ok(None)` when PostgreSQL is unreachable and `FZIP_SKIP_POSTGRES=1` asks to skip.
        pub fn create() -> Result<Option<TestSchema>> {
            let base = base_url();
            let name = format!("fzip_t_{}_{}", std::process::id(), uuid_like_suffix());
            let sep = if base.contains('?') { '&' } else { '?' };
            let url = format!("{base}{sep}schema={name}");
            let target = PgTarget::parse(&url)?;
            if let Err(e) = target.connect() {
                if std::env::var("FZIP_SKIP_POSTGRES").is_ok_and(|v| v == "1") {
                    eprintln!(
                        "\n!!! SKIPPED (FZIP_SKIP_POSTGRES=1): PostgreSQL test, no server: {e}\n"
                    );
                    return Ok(None);
                }
                return Err(StoreError::Database(format!(
                    "PostgreSQL tests need a server at {} ({e}); start one, point \
                     FZIP_TEST_DATABASE_URL at one, or set FZIP_SKIP_POSTGRES=1 to skip them",
                    target.describe()
                )));
            }
            crate::migrate::migrate(&target)?;
            Ok(Some(TestSchema { url, name, target }))
        }
    }

    fn uuid_like_suffix() -> String {
        use std::sync::atomic::{AtomicU64, Ordering};
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        format!("{n}_{t:x}")
    }

    impl Drop for TestSchema {
        fn drop(&mut self) {
            if let Ok(mut c) = self.target.connect() {
                let _ =
                    c.batch_execute(&format!("DROP SCHEMA IF EXISTS \"{}\" CASCADE", self.name));
            }
        }
    }
}
