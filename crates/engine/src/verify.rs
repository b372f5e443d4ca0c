//! Deep validation of a package: every entry read and checked, every entity parsed against the
//! schema, every reference inside the package resolved, every count compared with the manifest.
//!
//! Memory stays flat: the small collections (accounts, categories, file maps, files) are indexed
//! in memory, while transactions are streamed; duplicate transaction ids are found with a
//! fixed-size Bloom filter whose candidates are confirmed exactly in a second pass.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::hash::BuildHasher;
use std::io::{Read, Seek};

use fzip_format::{
    Dialect, ElementError, PackageError, PackageReader, Problem, ProblemKind, ReadError, Severity,
    format_checksum,
};
use fzip_model::{
    Account, AnalyticsRecord, Category, Entity, EntityCounts, EntityKind, FileMap, Transaction,
    TransactionFile,
};
use serde::Serialize;

use crate::error::EngineError;
use crate::progress::Progress;

/// At most this many problems are listed; the rest are counted.
const MAX_LISTED_PROBLEMS: usize = 200;
/// At most this many HouseF3 compatibility warnings are listed; the rest are counted.
const MAX_LISTED_HOUSEF3_WARNINGS: usize = 100;
/// At most this many unresolved ids are kept per collection.
const MAX_UNRESOLVED: usize = 10_000;

/// What a reference points at.
#[derive(Clone, Copy, Debug)]
enum Target {
    Account,
    Category,
    FileMap,
    File,
}

impl Target {
    /// The collection key (as in `selection.externalReferences`).
    fn key(self) -> &'static str {
        match self {
            Target::Account => "accounts",
            Target::Category => "categories",
            Target::FileMap => "fileMaps",
            Target::File => "transactionFiles",
        }
    }

    fn noun(self) -> &'static str {
        match self {
            Target::Account => "account",
            Target::Category => "category",
            Target::FileMap => "file map",
            Target::File => "transaction file",
        }
    }
}

/// What the manifest says about the package.
#[derive(Clone, Debug, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PackageInfo {
    pub package_kind: String,
    pub format_version: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timestamp: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub job_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub backup_type: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub generator: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

/// A statement file in the package.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct FileReport {
    pub file_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub file_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub file_format: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub entry: Option<String>,
    /// Bytes in the package (`None` when the package holds no bytes for this file).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub size: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
}

/// One account as the restore preview shows it.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AccountPreview {
    pub account_id: String,
    pub account_name: String,
    pub account_type: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub currency: Option<String>,
    pub transaction_count: u64,
}

/// A category as the restore preview shows it.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CategoryPreview {
    pub category_id: String,
    pub name: String,
    pub transaction_count: u64,
}

/// A category as HouseF3's restore summary lists it: its level in the hierarchy (roots are 0)
/// and how many direct children it has.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CategoryNode {
    pub category_id: String,
    pub name: String,
    pub level: u64,
    pub children: u64,
}

/// At most this many categories are listed in the preview (parents first).
const PREVIEW_CATEGORIES: usize = 500;

/// What a restore of the package would bring.
#[derive(Clone, Debug, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Preview {
    pub accounts: Vec<AccountPreview>,
    /// Levels of the category hierarchy (1 when all categories are roots, 0 when none).
    pub category_depth: u64,
    pub root_categories: u64,
    /// The categories most transactions have as primary category.
    pub top_categories: Vec<CategoryPreview>,
    /// Categories by (level, name), parents before children, at most 500.
    pub categories: Vec<CategoryNode>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub first_transaction_date: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_transaction_date: Option<i64>,
    pub file_bytes: u64,
    /// Uncompressed bytes of the package entry holding the file maps (0 without one).
    pub file_maps_bytes: u64,
}

/// A value the package holds that HouseF3's own models would refuse
/// ([`fzip_model::housef3_compat`]): fzip restores it as it is, HouseF3 would drop or refuse the
/// entity. A warning only: it never makes a package invalid.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Housef3Warning {
    /// The data entry holding the entity.
    pub entry: String,
    /// The kind of entity: `account`, `transaction`, `category`, `transaction file`.
    pub entity: String,
    pub id: String,
    /// The JSON key path within the entity, such as `currency` or `categories[0].confidence`.
    pub field: String,
    pub message: String,
}

impl std::fmt::Display for Housef3Warning {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} {}: {} {}",
            self.entity, self.id, self.field, self.message
        )
    }
}

/// The result of checking a package.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct VerifyReport {
    pub valid: bool,
    pub dialect: Dialect,
    pub package: PackageInfo,
    /// Counts the manifest declares.
    pub declared_counts: BTreeMap<String, u64>,
    /// Entities actually in the package.
    pub counts: EntityCounts,
    pub category_rules: u64,
    pub files: Vec<FileReport>,
    pub preview: Preview,
    /// Errors and warnings, errors first; at most 200 are listed.
    pub problems: Vec<Problem>,
    pub problems_omitted: u64,
    pub errors: u64,
    pub warnings: u64,
    /// Values HouseF3's models would refuse (at most 100 listed; they do not count as
    /// `warnings` and never make the package invalid).
    pub housef3_warnings: Vec<Housef3Warning>,
    pub housef3_warnings_omitted: u64,
    /// The quality block the manifest carries, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub quality: Option<serde_json::Value>,
    /// The processing summary the manifest carries, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub processing_summary: Option<serde_json::Value>,
    /// Ids the package's entities refer to but the package does not hold (declared external
    /// references included), by collection: an import resolves them against the profile.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub unresolved: BTreeMap<String, BTreeSet<String>>,
}

impl VerifyReport {
    pub fn error_count(&self) -> u64 {
        self.errors
    }
}

/// Collects problems with a cap.
#[derive(Default)]
struct Findings {
    problems: Vec<Problem>,
    omitted: u64,
    errors: u64,
    warnings: u64,
}

impl Findings {
    fn push(&mut self, p: Problem) {
        match p.severity {
            Severity::Error => self.errors += 1,
            Severity::Warning => self.warnings += 1,
        }
        if self.problems.len() < MAX_LISTED_PROBLEMS {
            self.problems.push(p);
        } else {
            self.omitted += 1;
        }
    }
    fn error(&mut self, entry: &str, message: String) {
        self.push(Problem::error(Some(entry), message));
    }
    fn schema_error(&mut self, entry: &str, message: String) {
        self.push(Problem::error(Some(entry), message).of_kind(ProblemKind::Schema));
    }
    fn reference_error(&mut self, entry: &str, message: String) {
        let kind = if message.contains("refers to no") {
            ProblemKind::Reference
        } else {
            ProblemKind::Consistency
        };
        self.push(Problem::error(Some(entry), message).of_kind(kind));
    }
    fn warning(&mut self, entry: &str, message: String) {
        self.push(Problem::warning(Some(entry), message));
    }
}

/// A fixed-size Bloom filter over strings.
struct Bloom {
    bits: Vec<u64>,
    m: u64,
    k: u32,
    a: std::collections::hash_map::RandomState,
    b: std::collections::hash_map::RandomState,
}

impl Bloom {
    fn new(expected: u64) -> Self {
        // 32 bits per element, between 1 MiB and 8 MiB.
        let m = (expected.saturating_mul(32)).clamp(8 << 20, 64 << 20);
        Bloom {
            bits: vec![0; (m / 64) as usize],
            m,
            k: 7,
            a: Default::default(),
            b: Default::default(),
        }
    }

    fn hashes(&self, item: &str) -> (u64, u64) {
        (self.a.hash_one(item), self.b.hash_one(item) | 1)
    }

    /// Adds `item`; true when it may have been there already.
    fn insert(&mut self, item: &str) -> bool {
        let (h1, h2) = self.hashes(item);
        let mut present = true;
        for i in 0..self.k as u64 {
            let bit = h1.wrapping_add(i.wrapping_mul(h2)) % self.m;
            let (word, mask) = ((bit / 64) as usize, 1u64 << (bit % 64));
            if self.bits[word] & mask == 0 {
                present = false;
                self.bits[word] |= mask;
            }
        }
        present
    }
}

/// References that point outside a partial package, by collection (from the manifest's
/// `selection.externalReferences`).
#[derive(Default)]
struct External {
    accounts: HashSet<String>,
    categories: HashSet<String>,
    file_maps: HashSet<String>,
    files: HashSet<String>,
}

impl External {
    fn from_manifest(reader_raw: &serde_json::Map<String, serde_json::Value>) -> Self {
        let refs = reader_raw
            .get("selection")
            .and_then(|s| s.get("externalReferences"));
        let set = |key: &str| -> HashSet<String> {
            refs.and_then(|r| r.get(key))
                .and_then(|v| v.as_array())
                .map(|a| {
                    a.iter()
                        .filter_map(|v| v.as_str().map(str::to_string))
                        .collect()
                })
                .unwrap_or_default()
        };
        External {
            accounts: set("accounts"),
            categories: set("categories"),
            file_maps: set("fileMaps"),
            files: set("transactionFiles"),
        }
    }
}

struct Checker<'p> {
    progress: &'p dyn Progress,
    findings: Findings,
    housef3: Vec<Housef3Warning>,
    housef3_omitted: u64,
    external: External,
    counts: EntityCounts,
    category_rules: u64,
    file_maps: HashMap<String, Option<String>>,
    accounts: HashMap<String, AccountPreview>,
    account_order: Vec<String>,
    categories: HashMap<String, (String, Option<String>)>,
    files: BTreeMap<String, FileReport>,
    file_sizes: HashMap<String, u64>,
    bloom: Bloom,
    bloom_candidates: HashSet<String>,
    primary_counts: HashMap<String, u64>,
    first_date: Option<i64>,
    last_date: Option<i64>,
    analytics_keys: HashSet<String>,
    limit_index: u64,
    /// Every referenced id the package does not hold (declared external or not), by collection.
    unresolved: BTreeMap<&'static str, BTreeSet<String>>,
}

impl Checker<'_> {
    fn entry_name<R: Read + Seek + Send>(reader: &PackageReader<R>, kind: EntityKind) -> String {
        reader
            .data_entry(kind)
            .map(|d| d.name.clone())
            .unwrap_or_else(|| format!("data/{}.json", kind.stem()))
    }

    fn schema(
        &mut self,
        entry: &str,
        kind: EntityKind,
        id: &str,
        issues: Vec<fzip_model::SchemaIssue>,
    ) {
        for i in issues {
            self.findings
                .schema_error(entry, format!("{} {id}: {i}", kind.singular()));
        }
    }

    fn housef3(
        &mut self,
        entry: &str,
        kind: EntityKind,
        id: &str,
        issues: Vec<fzip_model::SchemaIssue>,
    ) {
        for i in issues {
            if self.housef3.len() < MAX_LISTED_HOUSEF3_WARNINGS {
                self.housef3.push(Housef3Warning {
                    entry: entry.to_string(),
                    entity: kind.singular().to_string(),
                    id: id.to_string(),
                    field: i.field,
                    message: i.message,
                });
            } else {
                self.housef3_omitted += 1;
            }
        }
    }

    fn element_error(&mut self, entry: &str, kind: EntityKind, e: ElementError) {
        let who = match &e.id {
            Some(id) => format!("{} {id} (element {})", kind.singular(), e.index),
            None => format!("{} at element {}", kind.singular(), e.index),
        };
        self.findings.schema_error(
            entry,
            format!("{who} does not fit the schema: {}", e.message),
        );
    }

    /// Reports `what.field = target` when `resolves` is false (the target is neither in the
    /// package nor a declared external reference).
    fn holds(&self, t: Target, id: &str) -> bool {
        match t {
            Target::Account => self.accounts.contains_key(id),
            Target::Category => self.categories.contains_key(id),
            Target::FileMap => self.file_maps.contains_key(id),
            Target::File => self.files.contains_key(id),
        }
    }

    fn declared_external(&self, t: Target, id: &str) -> bool {
        match t {
            Target::Account => self.external.accounts.contains(id),
            Target::Category => self.external.categories.contains(id),
            Target::FileMap => self.external.file_maps.contains(id),
            Target::File => self.external.files.contains(id),
        }
    }

    /// Checks one reference: a target the package does not hold is recorded as unresolved, and
    /// is an error unless the manifest declares it as an external reference.
    fn refer(
        &mut self,
        entry: &str,
        what: &dyn Fn() -> String,
        field: &str,
        target: Option<&str>,
        t: Target,
    ) {
        let Some(id) = target else { return };
        if self.holds(t, id) {
            return;
        }
        let set = self.unresolved.entry(t.key()).or_default();
        if set.len() < MAX_UNRESOLVED {
            set.insert(id.to_string());
        }
        if !self.declared_external(t, id) {
            self.findings.reference_error(
                entry,
                format!(
                    "{}: {field} {id} refers to no {} in the package",
                    what(),
                    t.noun()
                ),
            );
        }
    }

    fn too_many(&mut self, entry: &str, kind: EntityKind, n: u64) -> bool {
        if n > self.limit_index {
            self.findings.error(
                entry,
                format!(
                    "holds more than {} {}; this is over the limit fzip indexes in memory",
                    self.limit_index,
                    kind.stem()
                ),
            );
            return true;
        }
        false
    }
}

/// Streams one collection through `visit`, recording damaged entries and schema errors.
fn stream<T: Entity, R: Read + Seek + Send>(
    reader: &mut PackageReader<R>,
    c: &mut Checker<'_>,
    mut visit: impl FnMut(&mut Checker<'_>, &str, T),
) -> Result<(), EngineError> {
    let entry = Checker::entry_name(reader, T::KIND);
    if reader.data_entry(T::KIND).is_none() {
        return Ok(());
    }
    // The manifest's count is the phase's total (0 when it declares none).
    let declared = reader
        .manifest()
        .declared_counts
        .get(&T::KIND)
        .copied()
        .unwrap_or(0);
    c.progress
        .phase(&format!("verifying_{}", T::KIND.stem()), declared);
    let mut n: u64 = 0;
    let result = reader.read_entities::<T, EngineError>(|item| {
        if c.progress.is_cancelled() {
            return Err(EngineError::Cancelled);
        }
        n += 1;
        if n.is_multiple_of(4096) {
            c.progress.advance(4096);
        }
        *c.counts.get_mut(T::KIND) += 1;
        match item {
            Ok(entity) => {
                let issues = entity.validate();
                if !issues.is_empty() {
                    let id = entity.id().into_owned();
                    c.schema(&entry, T::KIND, &id, issues);
                }
                let compat = entity.housef3_issues();
                if !compat.is_empty() {
                    let id = entity.id().into_owned();
                    c.housef3(&entry, T::KIND, &id, compat);
                }
                visit(c, &entry, entity);
            }
            Err(e) => c.element_error(&entry, T::KIND, e),
        }
        Ok(())
    });
    c.progress.advance(n % 4096);
    match result {
        Ok(_) => Ok(()),
        Err(ReadError::Callback(e)) => Err(e),
        Err(ReadError::Package(e)) => {
            let (entry_name, message) = match &e {
                PackageError::Entry { entry, message } => (entry.clone(), message.clone()),
                other => (entry.clone(), other.to_string()),
            };
            c.findings.error(&entry_name, message);
            Ok(())
        }
    }
}

/// Checks a whole package. Fails only on cancellation; everything wrong with the package is in
/// the report's problems, and `valid` is false when any of them is an error.
pub fn verify<R: Read + Seek + Send>(
    reader: &mut PackageReader<R>,
    progress: &dyn Progress,
) -> Result<VerifyReport, EngineError> {
    let manifest = reader.manifest().clone();
    let limits = reader.limits();
    let declared_tx = manifest
        .declared_counts
        .get(&EntityKind::Transactions)
        .copied()
        .unwrap_or(0);
    let mut c = Checker {
        progress,
        findings: Findings::default(),
        housef3: Vec::new(),
        housef3_omitted: 0,
        external: External::from_manifest(&manifest.raw),
        counts: EntityCounts::default(),
        category_rules: 0,
        file_maps: HashMap::new(),
        accounts: HashMap::new(),
        account_order: Vec::new(),
        categories: HashMap::new(),
        files: BTreeMap::new(),
        file_sizes: HashMap::new(),
        bloom: Bloom::new(declared_tx),
        bloom_candidates: HashSet::new(),
        primary_counts: HashMap::new(),
        first_date: None,
        last_date: None,
        analytics_keys: HashSet::new(),
        limit_index: limits.max_entries as u64 * 10,
        unresolved: BTreeMap::new(),
    };
    for p in reader.problems() {
        c.findings.push(p.clone());
    }

    // File maps, then accounts (file map ↔ account refer to each other both ways).
    let mut map_accounts: Vec<(String, String)> = Vec::new();
    stream::<FileMap, R>(reader, &mut c, |c, entry, m| {
        if c.too_many(entry, EntityKind::FileMaps, c.file_maps.len() as u64) {
            return;
        }
        if c.file_maps
            .insert(m.file_map_id.clone(), m.account_id.clone())
            .is_some()
        {
            c.findings
                .reference_error(entry, format!("file map {} appears twice", m.file_map_id));
        }
        if let Some(a) = m.account_id {
            map_accounts.push((m.file_map_id, a));
        }
    })?;
    stream::<Account, R>(reader, &mut c, |c, entry, a| {
        if c.too_many(entry, EntityKind::Accounts, c.accounts.len() as u64) {
            return;
        }
        let what = || format!("account {}", a.account_id);
        c.refer(
            entry,
            &what,
            "defaultFileMapId",
            a.default_file_map_id.as_deref(),
            Target::FileMap,
        );
        let preview = AccountPreview {
            account_id: a.account_id.clone(),
            account_name: a.account_name.clone(),
            account_type: a.account_type.as_str().to_string(),
            currency: a.currency.as_ref().map(|c| c.as_str().to_string()),
            transaction_count: 0,
        };
        if c.accounts.insert(a.account_id.clone(), preview).is_some() {
            c.findings
                .reference_error(entry, format!("account {} appears twice", a.account_id));
        } else {
            c.account_order.push(a.account_id);
        }
    })?;
    let maps_entry = Checker::entry_name(reader, EntityKind::FileMaps);
    for (map, account) in map_accounts {
        let what = || format!("file map {map}");
        c.refer(
            &maps_entry,
            &what,
            "accountId",
            Some(&account),
            Target::Account,
        );
    }

    stream::<Category, R>(reader, &mut c, |c, entry, k| {
        if c.too_many(entry, EntityKind::Categories, c.categories.len() as u64) {
            return;
        }
        c.category_rules += k.rules.len() as u64;
        if c.categories
            .insert(
                k.category_id.clone(),
                (k.name.clone(), k.parent_category_id.clone()),
            )
            .is_some()
        {
            c.findings
                .reference_error(entry, format!("category {} appears twice", k.category_id));
        }
    })?;
    let categories_entry = Checker::entry_name(reader, EntityKind::Categories);
    let (depth, roots) = check_hierarchy(&mut c, &categories_entry);

    stream::<TransactionFile, R>(reader, &mut c, |c, entry, f| {
        if c.too_many(entry, EntityKind::TransactionFiles, c.files.len() as u64) {
            return;
        }
        let what = || format!("transaction file {}", f.file_id);
        c.refer(
            entry,
            &what,
            "accountId",
            f.account_id.as_deref(),
            Target::Account,
        );
        c.refer(
            entry,
            &what,
            "fileMapId",
            f.file_map_id.as_deref(),
            Target::FileMap,
        );
        c.file_sizes.insert(f.file_id.clone(), f.file_size);
        let report = FileReport {
            file_id: f.file_id.clone(),
            file_name: Some(f.file_name.clone()),
            file_format: f.file_format.map(|x| x.as_str().to_string()),
            entry: None,
            size: None,
            sha256: None,
        };
        if c.files.insert(f.file_id.clone(), report).is_some() {
            c.findings.reference_error(
                entry,
                format!("transaction file {} appears twice", f.file_id),
            );
        }
    })?;

    stream::<Transaction, R>(reader, &mut c, |c, entry, t| {
        if c.bloom.insert(&t.transaction_id) {
            c.bloom_candidates.insert(t.transaction_id.clone());
        }
        check_transaction(c, entry, &t);
    })?;
    if !c.bloom_candidates.is_empty() {
        confirm_duplicates(reader, &mut c)?;
    }

    stream::<AnalyticsRecord, R>(reader, &mut c, |c, entry, a| {
        if !c.analytics_keys.insert(a.key()) {
            c.findings
                .reference_error(entry, format!("analytics record {} appears twice", a.key()));
        }
        if let Some(acc) = &a.account_id
            && !c.accounts.contains_key(acc)
            && !c.external.accounts.contains(acc)
        {
            c.findings.warning(
                entry,
                format!(
                    "analytics record {} refers to account {acc}, which is not in the package",
                    a.key()
                ),
            );
        }
    })?;

    check_files(reader, &mut c, &manifest)?;
    check_counts(&mut c, &manifest.declared_counts);

    let mut top: Vec<CategoryPreview> = c
        .primary_counts
        .iter()
        .filter_map(|(id, n)| {
            c.categories.get(id).map(|(name, _)| CategoryPreview {
                category_id: id.clone(),
                name: name.clone(),
                transaction_count: *n,
            })
        })
        .collect();
    top.sort_by(|a, b| {
        b.transaction_count
            .cmp(&a.transaction_count)
            .then(a.name.cmp(&b.name))
    });
    top.truncate(10);
    let accounts: Vec<AccountPreview> = c
        .account_order
        .iter()
        .filter_map(|id| c.accounts.get(id).cloned())
        .take(200)
        .collect();
    let file_bytes = c.files.values().filter_map(|f| f.size).sum();
    let file_maps_bytes = reader.entry_info(&maps_entry).map(|e| e.size).unwrap_or(0);
    let category_nodes = category_nodes(&c.categories);

    let mut findings = c.findings;
    let (housef3_warnings, housef3_warnings_omitted) = (c.housef3, c.housef3_omitted);
    findings
        .problems
        .sort_by_key(|p| matches!(p.severity, Severity::Warning));
    let info = PackageInfo {
        package_kind: manifest.package_kind.to_string(),
        format_version: manifest.format_version.clone(),
        user_id: manifest.user_id.clone(),
        timestamp: manifest.timestamp.clone(),
        job_id: manifest.job_id.clone(),
        backup_type: manifest.backup_type.clone(),
        generator: manifest
            .get("fzip")
            .and_then(|f| f.get("generator"))
            .and_then(|g| g.as_str())
            .map(str::to_string)
            .or_else(|| {
                manifest
                    .app_version
                    .as_ref()
                    .map(|v| format!("HouseF3 {v}"))
            }),
        description: manifest
            .get("description")
            .and_then(|d| d.as_str())
            .map(str::to_string),
    };
    Ok(VerifyReport {
        valid: findings.errors == 0,
        dialect: manifest.dialect,
        package: info,
        declared_counts: manifest
            .declared_counts
            .iter()
            .map(|(k, v)| (k.camel().to_string(), *v))
            .collect(),
        counts: c.counts,
        category_rules: c.category_rules,
        files: c.files.into_values().collect(),
        preview: Preview {
            accounts,
            category_depth: depth,
            root_categories: roots,
            top_categories: top,
            categories: category_nodes,
            first_transaction_date: c.first_date,
            last_transaction_date: c.last_date,
            file_bytes,
            file_maps_bytes,
        },
        problems: findings.problems,
        problems_omitted: findings.omitted,
        errors: findings.errors,
        warnings: findings.warnings,
        housef3_warnings,
        housef3_warnings_omitted,
        // A quality grade is the writer's claim: shown only when the package proves valid.
        quality: manifest
            .get("validation")
            .cloned()
            .filter(|_| findings.errors == 0),
        processing_summary: manifest.get("processingSummary").cloned(),
        unresolved: c
            .unresolved
            .iter()
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect(),
    })
}

fn check_transaction(c: &mut Checker<'_>, entry: &str, t: &Transaction) {
    let what = || format!("transaction {}", t.transaction_id);
    if let Some(a) = c.accounts.get_mut(&t.account_id) {
        a.transaction_count += 1;
    }
    c.refer(
        entry,
        &what,
        "accountId",
        Some(&t.account_id),
        Target::Account,
    );
    c.refer(entry, &what, "fileId", t.file_id.as_deref(), Target::File);
    for a in &t.categories {
        c.refer(
            entry,
            &what,
            "category assignment",
            Some(&a.category_id),
            Target::Category,
        );
    }
    if let Some(p) = &t.primary_category_id {
        c.refer(entry, &what, "primaryCategoryId", Some(p), Target::Category);
        *c.primary_counts.entry(p.clone()).or_default() += 1;
    }
    c.first_date = Some(c.first_date.map_or(t.date, |d| d.min(t.date)));
    c.last_date = Some(c.last_date.map_or(t.date, |d| d.max(t.date)));
}

/// Each category's level (roots are 0; a parent outside the package ends the walk, and so does a
/// cycle) and number of direct children, by (level, name), the first [`PREVIEW_CATEGORIES`].
fn category_nodes(categories: &HashMap<String, (String, Option<String>)>) -> Vec<CategoryNode> {
    let mut children: HashMap<&str, u64> = HashMap::new();
    for (_, parent) in categories.values() {
        if let Some(p) = parent {
            *children.entry(p.as_str()).or_default() += 1;
        }
    }
    let mut nodes: Vec<CategoryNode> = categories
        .iter()
        .map(|(id, (name, _))| {
            let mut level = 0u64;
            let mut current = id;
            while let Some((_, Some(parent))) = categories.get(current) {
                if !categories.contains_key(parent) || level as usize >= categories.len() {
                    break;
                }
                level += 1;
                current = parent;
            }
            CategoryNode {
                category_id: id.clone(),
                name: name.clone(),
                level,
                children: children.get(id.as_str()).copied().unwrap_or(0),
            }
        })
        .collect();
    nodes.sort_by(|a, b| {
        (a.level, &a.name, &a.category_id).cmp(&(b.level, &b.name, &b.category_id))
    });
    nodes.truncate(PREVIEW_CATEGORIES);
    nodes
}

/// Parents exist, no cycles. Returns (depth, roots).
fn check_hierarchy(c: &mut Checker<'_>, entry: &str) -> (u64, u64) {
    let mut depth_max = 0u64;
    let mut roots = 0u64;
    let ids: Vec<String> = c.categories.keys().cloned().collect();
    let mut reported_cycle: HashSet<String> = HashSet::new();
    for id in ids {
        let mut seen = HashSet::new();
        let mut current = id.clone();
        let mut depth = 1u64;
        loop {
            if !seen.insert(current.clone()) {
                if reported_cycle.insert(current.clone()) {
                    c.findings.reference_error(
                        entry,
                        format!("category {id}: its parents form a cycle through {current}"),
                    );
                }
                break;
            }
            let Some((_, parent)) = c.categories.get(&current) else {
                break;
            };
            match parent.clone() {
                None => break,
                Some(p) if c.categories.contains_key(&p) => {
                    current = p;
                    depth += 1;
                }
                Some(p) => {
                    if current == id {
                        let what = || format!("category {id}");
                        c.refer(entry, &what, "parentCategoryId", Some(&p), Target::Category);
                    }
                    break;
                }
            }
        }
        if c.categories.get(&id).is_some_and(|(_, p)| p.is_none()) {
            roots += 1;
        }
        depth_max = depth_max.max(depth);
    }
    (depth_max, roots)
}

/// Re-reads transactions to find which Bloom candidates really repeat.
fn confirm_duplicates<R: Read + Seek + Send>(
    reader: &mut PackageReader<R>,
    c: &mut Checker<'_>,
) -> Result<(), EngineError> {
    let mut seen: HashMap<String, u64> = HashMap::new();
    let candidates = std::mem::take(&mut c.bloom_candidates);
    let result = reader.read_entities::<Transaction, EngineError>(|item| {
        if let Ok(t) = item
            && candidates.contains(&t.transaction_id)
        {
            *seen.entry(t.transaction_id).or_default() += 1;
        }
        Ok(())
    });
    if let Err(ReadError::Callback(e)) = result {
        return Err(e);
    }
    let entry = Checker::entry_name(reader, EntityKind::Transactions);
    let mut dups: Vec<_> = seen.into_iter().filter(|(_, n)| *n > 1).collect();
    dups.sort();
    for (id, n) in dups {
        c.findings
            .reference_error(&entry, format!("transaction {id} appears {n} times"));
    }
    Ok(())
}

/// Reads every statement file entry and matches files with their metadata.
fn check_files<R: Read + Seek + Send>(
    reader: &mut PackageReader<R>,
    c: &mut Checker<'_>,
    manifest: &fzip_format::ParsedManifest,
) -> Result<(), EngineError> {
    let failed: HashSet<String> = manifest
        .get("processingSummary")
        .and_then(|p| p.get("failed_files"))
        .and_then(|f| f.as_array())
        .map(|a| {
            a.iter()
                .filter_map(|f| f.get("fileId").and_then(|v| v.as_str()).map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    let entries: Vec<(String, String)> = reader
        .file_entries()
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let total: u64 = entries
        .iter()
        .filter_map(|(_, e)| reader.entry_info(e).map(|i| i.size))
        .sum();
    c.progress.phase("verifying_files", total);
    for (file_id, entry) in entries {
        if c.progress.is_cancelled() {
            return Err(EngineError::Cancelled);
        }
        let result = reader.open_entry(&entry).and_then(|r| r.finish());
        match result {
            Ok((size, digest)) => {
                c.progress.advance(size);
                match c.files.get_mut(&file_id) {
                    Some(f) => {
                        f.entry = Some(entry.clone());
                        f.size = Some(size);
                        f.sha256 = Some(format_checksum(&digest));
                        if let Some(&meta) = c.file_sizes.get(&file_id)
                            && meta != size
                        {
                            c.findings.warning(
                                &entry,
                                format!("holds {size} bytes but the file's metadata says fileSize {meta}"),
                            );
                        }
                    }
                    None => c.findings.warning(
                        &entry,
                        format!("belongs to no transaction file in the package (fileId {file_id}); it is ignored"),
                    ),
                }
            }
            Err(e) => {
                let message = match e {
                    PackageError::Entry { message, .. } => message,
                    other => other.to_string(),
                };
                c.findings.error(&entry, message);
            }
        }
    }
    let dialect = manifest.dialect;
    let entry = "data/transaction_files.json";
    let missing: Vec<(String, Option<String>)> = c
        .files
        .values()
        .filter(|f| f.entry.is_none() && !reader.file_entries().contains_key(&f.file_id))
        .map(|f| (f.file_id.clone(), f.file_name.clone()))
        .collect();
    for (id, name) in missing {
        let name = name.unwrap_or_default();
        if failed.contains(&id) {
            c.findings.warning(
                entry,
                format!("transaction file {id} ({name}) has no bytes in the package: the backup could not read them; its metadata restores without the original file"),
            );
        } else if dialect == Dialect::Fzip {
            c.findings.error(
                entry,
                format!(
                    "transaction file {id} ({name}) has no bytes in the package (files/{id}/…)"
                ),
            );
        } else {
            c.findings.warning(
                entry,
                format!("transaction file {id} ({name}) has no bytes in the package; its metadata restores without the original file"),
            );
        }
    }
    Ok(())
}

fn check_counts(c: &mut Checker<'_>, declared: &BTreeMap<EntityKind, u64>) {
    for (kind, n) in declared {
        let actual = c.counts.get(*kind);
        if actual != *n {
            c.findings.error(
                "manifest.json",
                format!(
                    "dataSummary.{} says {n} but the package holds {actual} {}",
                    kind.count_key(),
                    kind.stem()
                ),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn category_nodes_have_levels_and_children() {
        let mut c: HashMap<String, (String, Option<String>)> = HashMap::new();
        c.insert("r".into(), ("Root".into(), None));
        c.insert("a".into(), ("A".into(), Some("r".into())));
        c.insert("b".into(), ("B".into(), Some("r".into())));
        c.insert("aa".into(), ("AA".into(), Some("a".into())));
        c.insert("o".into(), ("Orphan".into(), Some("missing".into())));
        c.insert("x".into(), ("X".into(), Some("y".into())));
        c.insert("y".into(), ("Y".into(), Some("x".into())));
        let nodes = category_nodes(&c);
        let by: HashMap<&str, (u64, u64)> = nodes
            .iter()
            .map(|n| (n.name.as_str(), (n.level, n.children)))
            .collect();
        assert_eq!(by["Root"], (0, 2));
        assert_eq!(by["A"], (1, 1));
        assert_eq!(by["AA"], (2, 0));
        assert_eq!(by["Orphan"], (0, 0));
        // A cycle ends the walk instead of looping.
        assert!(by["X"].0 <= 7 && by["Y"].1 == 1);
        assert_eq!(nodes[0].level, 0, "parents first");
    }
}
