//! The kinds of entity a profile holds, and the [`Entity`] trait they share.

use std::borrow::Cow;
use std::collections::BTreeMap;

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::housef3_compat;
use crate::validate::{self, SchemaIssue};
use crate::{Account, AnalyticsRecord, Category, Decimal, FileMap, Transaction, TransactionFile};

/// The six entity collections of a profile, in the order a restore writes them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum EntityKind {
    FileMaps,
    Accounts,
    Categories,
    TransactionFiles,
    Transactions,
    Analytics,
}

impl EntityKind {
    pub const ALL: [EntityKind; 6] = [
        EntityKind::FileMaps,
        EntityKind::Accounts,
        EntityKind::Categories,
        EntityKind::TransactionFiles,
        EntityKind::Transactions,
        EntityKind::Analytics,
    ];

    /// The data file stem: `data/{stem}.json`.
    pub fn stem(self) -> &'static str {
        match self {
            EntityKind::Accounts => "accounts",
            EntityKind::Transactions => "transactions",
            EntityKind::Categories => "categories",
            EntityKind::FileMaps => "file_maps",
            EntityKind::TransactionFiles => "transaction_files",
            EntityKind::Analytics => "analytics",
        }
    }

    /// The camelCase collection name used in summaries: `fileMaps`.
    pub fn camel(self) -> &'static str {
        match self {
            EntityKind::Accounts => "accounts",
            EntityKind::Transactions => "transactions",
            EntityKind::Categories => "categories",
            EntityKind::FileMaps => "fileMaps",
            EntityKind::TransactionFiles => "transactionFiles",
            EntityKind::Analytics => "analytics",
        }
    }

    /// One entity, for messages: `transaction file`.
    pub fn singular(self) -> &'static str {
        match self {
            EntityKind::Accounts => "account",
            EntityKind::Transactions => "transaction",
            EntityKind::Categories => "category",
            EntityKind::FileMaps => "file map",
            EntityKind::TransactionFiles => "transaction file",
            EntityKind::Analytics => "analytics record",
        }
    }

    /// The key holding the identifier.
    pub fn id_key(self) -> &'static str {
        match self {
            EntityKind::Accounts => "accountId",
            EntityKind::Transactions => "transactionId",
            EntityKind::Categories => "categoryId",
            EntityKind::FileMaps => "fileMapId",
            EntityKind::TransactionFiles => "fileId",
            EntityKind::Analytics => "analyticType|timePeriod|accountId",
        }
    }

    /// The count key in a HouseF3 manifest's `dataSummary` (`accountsCount`).
    pub fn count_key(self) -> &'static str {
        match self {
            EntityKind::Accounts => "accountsCount",
            EntityKind::Transactions => "transactionsCount",
            EntityKind::Categories => "categoriesCount",
            EntityKind::FileMaps => "fileMapsCount",
            EntityKind::TransactionFiles => "transactionFilesCount",
            EntityKind::Analytics => "analyticsCount",
        }
    }

    /// The count key in the design documents' snake_case `data_summary` (`accounts_count`).
    pub fn snake_count_key(self) -> &'static str {
        match self {
            EntityKind::Accounts => "accounts_count",
            EntityKind::Transactions => "transactions_count",
            EntityKind::Categories => "categories_count",
            EntityKind::FileMaps => "file_maps_count",
            EntityKind::TransactionFiles => "transaction_files_count",
            EntityKind::Analytics => "analytics_count",
        }
    }
}

impl std::fmt::Display for EntityKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.stem())
    }
}

/// Keys HouseF3's exporter derives from the entity at export time (`exportMetadata.exportedAt`,
/// `computedFields.accountAge`, …). They are kept and written back like any unknown key, but a
/// profile comparison ignores them unless asked to be strict.
pub const EXPORT_DERIVED_KEYS: &[&str] = &[
    "exportMetadata",
    "computedFields",
    "hierarchyInfo",
    "fileStatusInfo",
    "categoryAssignments",
    "dateFormatted",
    "uploadDateFormatted",
    "processedDateFormatted",
    "validationInfo",
];

/// What every entity type offers the package and store layers.
pub trait Entity: Serialize + DeserializeOwned + Clone + PartialEq + Send + Sync + 'static {
    const KIND: EntityKind;

    /// The identifier within the profile.
    fn id(&self) -> Cow<'_, str>;

    /// Schema rules beyond JSON types.
    fn validate(&self) -> Vec<SchemaIssue>;

    /// Values fzip keeps but HouseF3's models would refuse ([`crate::housef3_compat`]): warnings,
    /// never errors.
    fn housef3_issues(&self) -> Vec<SchemaIssue> {
        Vec::new()
    }

    /// The owner (`userId`) written in the entity, if any.
    fn owner(&self) -> Option<&str>;

    /// Makes `user` the owner.
    fn set_owner(&mut self, user: &str);

    /// The entity with its decimals in value-and-scale form, no owner and no storage location:
    /// what a profile comparison looks at.
    fn comparable(&self) -> Self;

    /// A canonical JSON text (sorted keys, normalised decimals, owner and storage location
    /// removed, and unless `strict` the export-derived keys removed). Two entities hold the same
    /// data exactly when their canonical texts are equal.
    fn canonical_json(&self, strict: bool) -> String {
        let value = serde_json::to_value(self.comparable()).unwrap_or(serde_json::Value::Null);
        let mut out = String::new();
        write_canonical(
            &value,
            if strict { &[] } else { EXPORT_DERIVED_KEYS },
            &mut out,
        );
        out
    }
}

fn write_canonical(value: &serde_json::Value, ignore: &[&str], out: &mut String) {
    use serde_json::Value;
    match value {
        Value::Object(map) => {
            let sorted: BTreeMap<&String, &Value> = map
                .iter()
                .filter(|(k, _)| !ignore.contains(&k.as_str()))
                .collect();
            out.push('{');
            for (i, (k, v)) in sorted.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&serde_json::to_string(k).unwrap_or_default());
                out.push(':');
                write_canonical(v, ignore, out);
            }
            out.push('}');
        }
        Value::Array(items) => {
            out.push('[');
            for (i, v) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_canonical(v, ignore, out);
            }
            out.push(']');
        }
        other => out.push_str(&serde_json::to_string(other).unwrap_or_default()),
    }
}

fn canon(d: &Decimal) -> Decimal {
    Decimal::parse(&d.canonical()).unwrap_or_else(|_| d.clone())
}

fn canon_opt(d: &Option<Decimal>) -> Option<Decimal> {
    d.as_ref().map(canon)
}

impl Entity for Account {
    const KIND: EntityKind = EntityKind::Accounts;
    fn id(&self) -> Cow<'_, str> {
        Cow::Borrowed(&self.account_id)
    }
    fn validate(&self) -> Vec<SchemaIssue> {
        validate::validate_account(self)
    }
    fn housef3_issues(&self) -> Vec<SchemaIssue> {
        housef3_compat::account(self)
    }
    fn owner(&self) -> Option<&str> {
        self.user_id.as_deref()
    }
    fn set_owner(&mut self, user: &str) {
        self.user_id = Some(user.to_string());
    }
    fn comparable(&self) -> Self {
        let mut c = self.clone();
        c.user_id = None;
        c.balance = canon_opt(&self.balance);
        c
    }
}

impl Entity for Transaction {
    const KIND: EntityKind = EntityKind::Transactions;
    fn id(&self) -> Cow<'_, str> {
        Cow::Borrowed(&self.transaction_id)
    }
    fn validate(&self) -> Vec<SchemaIssue> {
        validate::validate_transaction(self)
    }
    fn housef3_issues(&self) -> Vec<SchemaIssue> {
        housef3_compat::transaction(self)
    }
    fn owner(&self) -> Option<&str> {
        self.user_id.as_deref()
    }
    fn set_owner(&mut self, user: &str) {
        self.user_id = Some(user.to_string());
    }
    fn comparable(&self) -> Self {
        let mut c = self.clone();
        c.user_id = None;
        c.amount = canon(&self.amount);
        c.balance = canon_opt(&self.balance);
        c
    }
}

impl Entity for Category {
    const KIND: EntityKind = EntityKind::Categories;
    fn id(&self) -> Cow<'_, str> {
        Cow::Borrowed(&self.category_id)
    }
    fn validate(&self) -> Vec<SchemaIssue> {
        validate::validate_category(self)
    }
    fn housef3_issues(&self) -> Vec<SchemaIssue> {
        housef3_compat::category(self)
    }
    fn owner(&self) -> Option<&str> {
        self.user_id.as_deref()
    }
    fn set_owner(&mut self, user: &str) {
        self.user_id = Some(user.to_string());
    }
    fn comparable(&self) -> Self {
        let mut c = self.clone();
        c.user_id = None;
        for rule in &mut c.rules {
            rule.amount_min = canon_opt(&rule.amount_min);
            rule.amount_max = canon_opt(&rule.amount_max);
        }
        c
    }
}

impl Entity for FileMap {
    const KIND: EntityKind = EntityKind::FileMaps;
    fn id(&self) -> Cow<'_, str> {
        Cow::Borrowed(&self.file_map_id)
    }
    fn validate(&self) -> Vec<SchemaIssue> {
        validate::validate_file_map(self)
    }
    fn owner(&self) -> Option<&str> {
        self.user_id.as_deref()
    }
    fn set_owner(&mut self, user: &str) {
        self.user_id = Some(user.to_string());
    }
    fn comparable(&self) -> Self {
        let mut c = self.clone();
        c.user_id = None;
        c
    }
}

impl Entity for TransactionFile {
    const KIND: EntityKind = EntityKind::TransactionFiles;
    fn id(&self) -> Cow<'_, str> {
        Cow::Borrowed(&self.file_id)
    }
    fn validate(&self) -> Vec<SchemaIssue> {
        validate::validate_transaction_file(self)
    }
    fn housef3_issues(&self) -> Vec<SchemaIssue> {
        housef3_compat::transaction_file(self)
    }
    fn owner(&self) -> Option<&str> {
        self.user_id.as_deref()
    }
    fn set_owner(&mut self, user: &str) {
        self.user_id = Some(user.to_string());
    }
    fn comparable(&self) -> Self {
        let mut c = self.clone();
        c.user_id = None;
        c.s3_key = None;
        c.opening_balance = canon_opt(&self.opening_balance);
        c.closing_balance = canon_opt(&self.closing_balance);
        c
    }
}

impl Entity for AnalyticsRecord {
    const KIND: EntityKind = EntityKind::Analytics;
    fn id(&self) -> Cow<'_, str> {
        Cow::Owned(self.key())
    }
    fn validate(&self) -> Vec<SchemaIssue> {
        validate::validate_analytics(self)
    }
    fn owner(&self) -> Option<&str> {
        self.user_id.as_deref()
    }
    fn set_owner(&mut self, user: &str) {
        self.user_id = Some(user.to_string());
    }
    fn comparable(&self) -> Self {
        // When the record was computed is bookkeeping, not data: a restored profile recomputes
        // its analytics and must still compare equal.
        let mut c = self.clone();
        c.user_id = None;
        c.computed_date = String::new();
        c
    }
}

/// Entity counts of a profile or a package.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EntityCounts {
    pub accounts: u64,
    pub transactions: u64,
    pub categories: u64,
    pub file_maps: u64,
    pub transaction_files: u64,
    pub analytics: u64,
}

impl EntityCounts {
    pub fn get(&self, kind: EntityKind) -> u64 {
        match kind {
            EntityKind::Accounts => self.accounts,
            EntityKind::Transactions => self.transactions,
            EntityKind::Categories => self.categories,
            EntityKind::FileMaps => self.file_maps,
            EntityKind::TransactionFiles => self.transaction_files,
            EntityKind::Analytics => self.analytics,
        }
    }

    pub fn get_mut(&mut self, kind: EntityKind) -> &mut u64 {
        match kind {
            EntityKind::Accounts => &mut self.accounts,
            EntityKind::Transactions => &mut self.transactions,
            EntityKind::Categories => &mut self.categories,
            EntityKind::FileMaps => &mut self.file_maps,
            EntityKind::TransactionFiles => &mut self.transaction_files,
            EntityKind::Analytics => &mut self.analytics,
        }
    }

    pub fn total(&self) -> u64 {
        EntityKind::ALL.iter().map(|k| self.get(*k)).sum()
    }
}
