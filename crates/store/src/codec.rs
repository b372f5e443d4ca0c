//! One relational mapping of the entities, shared by every SQL backend.
//!
//! Each entity is one row of its own table. Scalars get columns (decimals as exact TEXT, times
//! as integer milliseconds, `transactionHash` as a 64-bit integer holding the same bits); lists
//! and nested objects of one entity (category assignments, rules, field mappings, `dateRange`)
//! are JSON text columns; keys fzip does not know are kept in an `extra` JSON column. The first
//! column of every table is `user_id`.

use std::borrow::Cow;

use fzip_model::{
    Account, AccountType, AnalyticType, AnalyticsRecord, Category, CategoryType, Currency,
    DateRange, Decimal, Extras, FieldMapping, FileFormat, FileMap, ProcessingStatus, RawJson,
    RuleInheritanceMode, Transaction, TransactionFile,
};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::{StoreError, StoredFile};

/// A value bound to a statement.
#[derive(Debug, Clone, PartialEq)]
pub enum SqlValue<'a> {
    Null,
    Int(i64),
    Text(Cow<'a, str>),
    Bool(bool),
}

impl<'a> SqlValue<'a> {
    fn text(s: &'a str) -> Self {
        SqlValue::Text(Cow::Borrowed(s))
    }
    fn opt_text(s: Option<&'a str>) -> Self {
        s.map_or(SqlValue::Null, SqlValue::text)
    }
    fn opt_int(v: Option<i64>) -> Self {
        v.map_or(SqlValue::Null, SqlValue::Int)
    }
    fn extras(e: &Extras) -> Self {
        if e.is_empty() {
            SqlValue::Null
        } else {
            SqlValue::Text(Cow::Owned(e.to_json()))
        }
    }
    fn json<T: Serialize>(v: &T) -> Self {
        SqlValue::Text(Cow::Owned(serde_json::to_string(v).unwrap_or_default()))
    }
}

/// Reads columns of one result row by position.
pub trait SqlRow {
    fn int(&self, index: usize) -> Result<Option<i64>, StoreError>;
    fn text(&self, index: usize) -> Result<Option<String>, StoreError>;
    fn boolean(&self, index: usize) -> Result<Option<bool>, StoreError>;
}

/// A table: its name and columns, `user_id` first.
#[derive(Debug)]
pub struct Table {
    pub name: &'static str,
    pub columns: &'static [&'static str],
    /// The columns that identify a row within a user's profile.
    pub key: &'static [&'static str],
}

impl Table {
    /// `INSERT INTO t (c1, …) VALUES (p(1), …)` with the backend's placeholder style.
    pub fn insert_sql(&self, placeholder: impl Fn(usize) -> String) -> String {
        let params: Vec<String> = (1..=self.columns.len()).map(placeholder).collect();
        format!(
            "INSERT INTO {} ({}) VALUES ({})",
            self.name,
            self.columns.join(", "),
            params.join(", ")
        )
    }

    /// `INSERT … ON CONFLICT (user_id, key) DO UPDATE SET …`: an insert that replaces the row
    /// with the same id (SQLite and PostgreSQL alike).
    pub fn upsert_sql(&self, placeholder: impl Fn(usize) -> String) -> String {
        let updates: Vec<String> = self
            .columns
            .iter()
            .filter(|c| **c != "user_id" && !self.key.contains(c))
            .map(|c| format!("{c} = excluded.{c}"))
            .collect();
        format!(
            "{} ON CONFLICT (user_id, {}) DO UPDATE SET {}",
            self.insert_sql(placeholder),
            self.key.join(", "),
            updates.join(", ")
        )
    }

    /// `SELECT c1, … FROM t`.
    pub fn select_sql(&self) -> String {
        format!("SELECT {} FROM {}", self.columns.join(", "), self.name)
    }
}

/// An entity with a relational mapping.
pub trait RowCodec: Sized {
    const TABLE: Table;
    /// Values for every column after `user_id`, in order.
    fn encode<'a>(&'a self, out: &mut Vec<SqlValue<'a>>) -> Result<(), StoreError>;
    /// The entity from a row of all columns, `user_id` first.
    fn decode(row: &dyn SqlRow) -> Result<Self, StoreError>;
}

fn corrupt(table: &str, column: &str, message: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt(format!("{table}.{column}: {message}"))
}

struct Cols<'r> {
    row: &'r dyn SqlRow,
    table: &'static Table,
    i: usize,
}

impl<'r> Cols<'r> {
    fn new(row: &'r dyn SqlRow, table: &'static Table) -> Self {
        Cols { row, table, i: 0 }
    }
    fn name(&self) -> &'static str {
        self.table.columns.get(self.i).copied().unwrap_or("?")
    }
    fn err(&self, m: impl std::fmt::Display) -> StoreError {
        corrupt(self.table.name, self.name(), m)
    }
    fn opt_text(&mut self) -> Result<Option<String>, StoreError> {
        let v = self.row.text(self.i)?;
        self.i += 1;
        Ok(v)
    }
    fn text(&mut self) -> Result<String, StoreError> {
        let name = self.name();
        self.opt_text()?
            .ok_or_else(|| corrupt(self.table.name, name, "is NULL"))
    }
    fn opt_int(&mut self) -> Result<Option<i64>, StoreError> {
        let v = self.row.int(self.i)?;
        self.i += 1;
        Ok(v)
    }
    fn int(&mut self) -> Result<i64, StoreError> {
        let name = self.name();
        self.opt_int()?
            .ok_or_else(|| corrupt(self.table.name, name, "is NULL"))
    }
    fn boolean(&mut self) -> Result<bool, StoreError> {
        let name = self.name();
        let v = self.row.boolean(self.i)?;
        self.i += 1;
        v.ok_or_else(|| corrupt(self.table.name, name, "is NULL"))
    }
    fn opt_decimal(&mut self) -> Result<Option<Decimal>, StoreError> {
        let here = self.i;
        match self.opt_text()? {
            None => Ok(None),
            Some(t) => Decimal::parse(&t).map(Some).map_err(|e| {
                corrupt(
                    self.table.name,
                    self.table.columns.get(here).copied().unwrap_or("?"),
                    e,
                )
            }),
        }
    }
    fn decimal(&mut self) -> Result<Decimal, StoreError> {
        let name = self.name();
        self.opt_decimal()?
            .ok_or_else(|| corrupt(self.table.name, name, "is NULL"))
    }
    fn parsed<T>(&mut self, parse: impl Fn(&str) -> Option<T>) -> Result<T, StoreError> {
        let t = self.text()?;
        parse(&t).ok_or_else(|| {
            corrupt(
                self.table.name,
                self.table.columns[self.i - 1],
                format!("unknown value {t:?}"),
            )
        })
    }
    fn opt_parsed<T>(
        &mut self,
        parse: impl Fn(&str) -> Option<T>,
    ) -> Result<Option<T>, StoreError> {
        match self.opt_text()? {
            None => Ok(None),
            Some(t) => parse(&t).map(Some).ok_or_else(|| {
                corrupt(
                    self.table.name,
                    self.table.columns[self.i - 1],
                    format!("unknown value {t:?}"),
                )
            }),
        }
    }
    fn json<T: DeserializeOwned>(&mut self) -> Result<Option<T>, StoreError> {
        match self.opt_text()? {
            None => Ok(None),
            Some(t) => serde_json::from_str(&t)
                .map(Some)
                .map_err(|e| corrupt(self.table.name, self.table.columns[self.i - 1], e)),
        }
    }
    fn extras(&mut self) -> Result<Extras, StoreError> {
        match self.opt_text()? {
            None => Ok(Extras::new()),
            Some(t) => Extras::from_json(&t).map_err(|e| self.err(e)),
        }
    }
}

fn opt_currency(c: &Option<Currency>) -> SqlValue<'_> {
    SqlValue::opt_text(c.as_ref().map(Currency::as_str))
}

fn opt_decimal(d: &Option<Decimal>) -> SqlValue<'_> {
    SqlValue::opt_text(d.as_ref().map(Decimal::as_str))
}

impl RowCodec for Account {
    const TABLE: Table = Table {
        name: "accounts",
        columns: &[
            "user_id",
            "account_id",
            "account_name",
            "account_type",
            "institution",
            "balance",
            "currency",
            "notes",
            "is_active",
            "default_file_map_id",
            "first_transaction_date",
            "last_transaction_date",
            "imports_start_date",
            "imports_end_date",
            "created_at",
            "updated_at",
            "extra",
        ],
        key: &["account_id"],
    };

    fn encode<'a>(&'a self, out: &mut Vec<SqlValue<'a>>) -> Result<(), StoreError> {
        out.extend([
            SqlValue::text(&self.account_id),
            SqlValue::text(&self.account_name),
            SqlValue::text(self.account_type.as_str()),
            SqlValue::opt_text(self.institution.as_deref()),
            opt_decimal(&self.balance),
            opt_currency(&self.currency),
            SqlValue::opt_text(self.notes.as_deref()),
            SqlValue::Bool(self.is_active),
            SqlValue::opt_text(self.default_file_map_id.as_deref()),
            SqlValue::opt_int(self.first_transaction_date),
            SqlValue::opt_int(self.last_transaction_date),
            SqlValue::opt_int(self.imports_start_date),
            SqlValue::opt_int(self.imports_end_date),
            SqlValue::Int(self.created_at),
            SqlValue::Int(self.updated_at),
            SqlValue::extras(&self.extras),
        ]);
        Ok(())
    }

    fn decode(row: &dyn SqlRow) -> Result<Self, StoreError> {
        static T: Table = Account::TABLE;
        let mut c = Cols::new(row, &T);
        Ok(Account {
            user_id: Some(c.text()?),
            account_id: c.text()?,
            account_name: c.text()?,
            account_type: c.parsed(AccountType::parse)?,
            institution: c.opt_text()?,
            balance: c.opt_decimal()?,
            currency: c.opt_parsed(Currency::parse)?,
            notes: c.opt_text()?,
            is_active: c.boolean()?,
            default_file_map_id: c.opt_text()?,
            first_transaction_date: c.opt_int()?,
            last_transaction_date: c.opt_int()?,
            imports_start_date: c.opt_int()?,
            imports_end_date: c.opt_int()?,
            created_at: c.int()?,
            updated_at: c.int()?,
            extras: c.extras()?,
        })
    }
}

impl RowCodec for Transaction {
    const TABLE: Table = Table {
        name: "transactions",
        columns: &[
            "user_id",
            "transaction_id",
            "account_id",
            "file_id",
            "date",
            "description",
            "amount",
            "currency",
            "balance",
            "import_order",
            "transaction_type",
            "memo",
            "check_number",
            "fit_id",
            "status",
            "status_date",
            "created_at",
            "updated_at",
            "transaction_hash",
            "categories",
            "primary_category_id",
            "extra",
        ],
        key: &["transaction_id"],
    };

    fn encode<'a>(&'a self, out: &mut Vec<SqlValue<'a>>) -> Result<(), StoreError> {
        out.extend([
            SqlValue::text(&self.transaction_id),
            SqlValue::text(&self.account_id),
            SqlValue::opt_text(self.file_id.as_deref()),
            SqlValue::Int(self.date),
            SqlValue::text(&self.description),
            SqlValue::text(self.amount.as_str()),
            opt_currency(&self.currency),
            opt_decimal(&self.balance),
            SqlValue::opt_int(self.import_order),
            SqlValue::opt_text(self.transaction_type.as_deref()),
            SqlValue::opt_text(self.memo.as_deref()),
            SqlValue::opt_text(self.check_number.as_deref()),
            SqlValue::opt_text(self.fit_id.as_deref()),
            SqlValue::opt_text(self.status.as_deref()),
            SqlValue::opt_text(self.status_date.as_deref()),
            SqlValue::Int(self.created_at),
            SqlValue::Int(self.updated_at),
            // The same 64 bits; read back with `as u64`.
            SqlValue::opt_int(self.transaction_hash.map(|h| h as i64)),
            if self.categories.is_empty() {
                SqlValue::Null
            } else {
                SqlValue::json(&self.categories)
            },
            SqlValue::opt_text(self.primary_category_id.as_deref()),
            SqlValue::extras(&self.extras),
        ]);
        Ok(())
    }

    fn decode(row: &dyn SqlRow) -> Result<Self, StoreError> {
        static T: Table = Transaction::TABLE;
        let mut c = Cols::new(row, &T);
        Ok(Transaction {
            user_id: Some(c.text()?),
            transaction_id: c.text()?,
            account_id: c.text()?,
            file_id: c.opt_text()?,
            date: c.int()?,
            description: c.text()?,
            amount: c.decimal()?,
            currency: c.opt_parsed(Currency::parse)?,
            balance: c.opt_decimal()?,
            import_order: c.opt_int()?,
            transaction_type: c.opt_text()?,
            memo: c.opt_text()?,
            check_number: c.opt_text()?,
            fit_id: c.opt_text()?,
            status: c.opt_text()?,
            status_date: c.opt_text()?,
            created_at: c.int()?,
            updated_at: c.int()?,
            transaction_hash: c.opt_int()?.map(|h| h as u64),
            categories: c.json()?.unwrap_or_default(),
            primary_category_id: c.opt_text()?,
            extras: c.extras()?,
        })
    }
}

impl RowCodec for Category {
    const TABLE: Table = Table {
        name: "categories",
        columns: &[
            "user_id",
            "category_id",
            "name",
            "category_type",
            "parent_category_id",
            "icon",
            "color",
            "rules",
            "created_at",
            "updated_at",
            "inherit_parent_rules",
            "rule_inheritance_mode",
            "extra",
        ],
        key: &["category_id"],
    };

    fn encode<'a>(&'a self, out: &mut Vec<SqlValue<'a>>) -> Result<(), StoreError> {
        out.extend([
            SqlValue::text(&self.category_id),
            SqlValue::text(&self.name),
            SqlValue::text(self.category_type.as_str()),
            SqlValue::opt_text(self.parent_category_id.as_deref()),
            SqlValue::opt_text(self.icon.as_deref()),
            SqlValue::opt_text(self.color.as_deref()),
            SqlValue::json(&self.rules),
            SqlValue::Int(self.created_at),
            SqlValue::Int(self.updated_at),
            SqlValue::Bool(self.inherit_parent_rules),
            SqlValue::text(self.rule_inheritance_mode.as_str()),
            SqlValue::extras(&self.extras),
        ]);
        Ok(())
    }

    fn decode(row: &dyn SqlRow) -> Result<Self, StoreError> {
        static T: Table = Category::TABLE;
        let mut c = Cols::new(row, &T);
        Ok(Category {
            user_id: Some(c.text()?),
            category_id: c.text()?,
            name: c.text()?,
            category_type: c.parsed(CategoryType::parse)?,
            parent_category_id: c.opt_text()?,
            icon: c.opt_text()?,
            color: c.opt_text()?,
            rules: c.json()?.unwrap_or_default(),
            created_at: c.int()?,
            updated_at: c.int()?,
            inherit_parent_rules: c.boolean()?,
            rule_inheritance_mode: c.parsed(RuleInheritanceMode::parse)?,
            extras: c.extras()?,
        })
    }
}

impl RowCodec for FileMap {
    const TABLE: Table = Table {
        name: "file_maps",
        columns: &[
            "user_id",
            "file_map_id",
            "name",
            "mappings",
            "account_id",
            "description",
            "reverse_amounts",
            "created_at",
            "updated_at",
            "extra",
        ],
        key: &["file_map_id"],
    };

    fn encode<'a>(&'a self, out: &mut Vec<SqlValue<'a>>) -> Result<(), StoreError> {
        out.extend([
            SqlValue::text(&self.file_map_id),
            SqlValue::text(&self.name),
            SqlValue::json(&self.mappings),
            SqlValue::opt_text(self.account_id.as_deref()),
            SqlValue::opt_text(self.description.as_deref()),
            SqlValue::Bool(self.reverse_amounts),
            SqlValue::Int(self.created_at),
            SqlValue::Int(self.updated_at),
            SqlValue::extras(&self.extras),
        ]);
        Ok(())
    }

    fn decode(row: &dyn SqlRow) -> Result<Self, StoreError> {
        static T: Table = FileMap::TABLE;
        let mut c = Cols::new(row, &T);
        Ok(FileMap {
            user_id: Some(c.text()?),
            file_map_id: c.text()?,
            name: c.text()?,
            mappings: c.json::<Vec<FieldMapping>>()?.unwrap_or_default(),
            account_id: c.opt_text()?,
            description: c.opt_text()?,
            reverse_amounts: c.boolean()?,
            created_at: c.int()?,
            updated_at: c.int()?,
            extras: c.extras()?,
        })
    }
}

impl RowCodec for StoredFile {
    const TABLE: Table = Table {
        name: "transaction_files",
        columns: &[
            "user_id",
            "file_id",
            "file_name",
            "upload_date",
            "file_size",
            "s3_key",
            "processing_status",
            "processed_date",
            "file_format",
            "account_id",
            "file_map_id",
            "record_count",
            "date_range",
            "error_message",
            "opening_balance",
            "closing_balance",
            "currency",
            "duplicate_count",
            "transaction_count",
            "created_at",
            "updated_at",
            "content_sha256",
            "content_size",
            "extra",
        ],
        key: &["file_id"],
    };

    fn encode<'a>(&'a self, out: &mut Vec<SqlValue<'a>>) -> Result<(), StoreError> {
        let f = &self.file;
        let size = i64::try_from(f.file_size)
            .map_err(|_| StoreError::Corrupt(format!("fileSize {} is too large", f.file_size)))?;
        out.extend([
            SqlValue::text(&f.file_id),
            SqlValue::text(&f.file_name),
            SqlValue::Int(f.upload_date),
            SqlValue::Int(size),
            SqlValue::opt_text(f.s3_key.as_deref()),
            SqlValue::text(f.processing_status.as_str()),
            SqlValue::opt_int(f.processed_date),
            SqlValue::opt_text(f.file_format.map(|x| x.as_str())),
            SqlValue::opt_text(f.account_id.as_deref()),
            SqlValue::opt_text(f.file_map_id.as_deref()),
            SqlValue::opt_int(f.record_count),
            f.date_range.as_ref().map_or(SqlValue::Null, SqlValue::json),
            SqlValue::opt_text(f.error_message.as_deref()),
            opt_decimal(&f.opening_balance),
            opt_decimal(&f.closing_balance),
            opt_currency(&f.currency),
            SqlValue::opt_int(f.duplicate_count),
            SqlValue::opt_int(f.transaction_count),
            SqlValue::Int(f.created_at),
            SqlValue::Int(f.updated_at),
            self.content_sha256.map_or(SqlValue::Null, |d| {
                SqlValue::Text(Cow::Owned(hex::encode(d)))
            }),
            SqlValue::opt_int(self.content_size.and_then(|s| i64::try_from(s).ok())),
            SqlValue::extras(&f.extras),
        ]);
        Ok(())
    }

    fn decode(row: &dyn SqlRow) -> Result<Self, StoreError> {
        static T: Table = StoredFile::TABLE;
        let mut c = Cols::new(row, &T);
        let user_id = Some(c.text()?);
        let file_id = c.text()?;
        let file_name = c.text()?;
        let upload_date = c.int()?;
        let file_size = u64::try_from(c.int()?).map_err(|_| c.err("negative size"))?;
        let file = TransactionFile {
            file_id,
            user_id,
            file_name,
            upload_date,
            file_size,
            s3_key: c.opt_text()?,
            processing_status: c.parsed(ProcessingStatus::parse)?,
            processed_date: c.opt_int()?,
            file_format: c.opt_parsed(FileFormat::parse)?,
            account_id: c.opt_text()?,
            file_map_id: c.opt_text()?,
            record_count: c.opt_int()?,
            date_range: c.json::<DateRange>()?,
            error_message: c.opt_text()?,
            opening_balance: c.opt_decimal()?,
            closing_balance: c.opt_decimal()?,
            currency: c.opt_parsed(Currency::parse)?,
            duplicate_count: c.opt_int()?,
            transaction_count: c.opt_int()?,
            created_at: c.int()?,
            updated_at: c.int()?,
            extras: Extras::new(),
        };
        let content_sha256 = match c.opt_text()? {
            None => None,
            Some(h) => {
                let mut d = [0u8; 32];
                hex::decode_to_slice(&h, &mut d).map_err(|e| c.err(e))?;
                Some(d)
            }
        };
        let content_size = c.opt_int()?.and_then(|s| u64::try_from(s).ok());
        let extras = c.extras()?;
        Ok(StoredFile {
            file: TransactionFile { extras, ..file },
            content_sha256,
            content_size,
        })
    }
}

impl RowCodec for AnalyticsRecord {
    const TABLE: Table = Table {
        name: "analytics",
        columns: &[
            "user_id",
            "analytic_key",
            "analytic_type",
            "time_period",
            "account_id",
            "data",
            "computed_date",
            "data_through_date",
            "ttl",
            "extra",
        ],
        key: &["analytic_key"],
    };

    fn encode<'a>(&'a self, out: &mut Vec<SqlValue<'a>>) -> Result<(), StoreError> {
        out.extend([
            SqlValue::Text(Cow::Owned(self.key())),
            SqlValue::text(self.analytic_type.as_str()),
            SqlValue::text(&self.time_period),
            SqlValue::opt_text(self.account_id.as_deref()),
            SqlValue::text(self.data.get()),
            SqlValue::text(&self.computed_date),
            SqlValue::text(&self.data_through_date),
            SqlValue::opt_int(self.ttl),
            SqlValue::extras(&self.extras),
        ]);
        Ok(())
    }

    fn decode(row: &dyn SqlRow) -> Result<Self, StoreError> {
        static T: Table = AnalyticsRecord::TABLE;
        let mut c = Cols::new(row, &T);
        let user_id = Some(c.text()?);
        let _key = c.text()?;
        Ok(AnalyticsRecord {
            user_id,
            analytic_type: c.parsed(AnalyticType::parse)?,
            time_period: c.text()?,
            account_id: c.opt_text()?,
            data: {
                let t = c.text()?;
                RawJson::from_text(&t).map_err(|e| c.err(e))?
            },
            computed_date: c.text()?,
            data_through_date: c.text()?,
            ttl: c.opt_int()?,
            extras: c.extras()?,
        })
    }
}
