//! What the commands print: text for people, or one JSON document with `--json`.

use std::path::Path;

use fzip_engine::backup::BackupReport;
use fzip_engine::diff::DiffReport;
use fzip_engine::{DemoReport, GcReport, RestoreReport, VerifyReport};
use fzip_format::{EntryInfo, Severity};
use fzip_model::EntityCounts;
use fzip_store::ProfileSummary;
use serde::Serialize;
use serde_json::{Value, json};

pub struct Out {
    json: bool,
}

/// Problems listed in text output; the rest are counted.
const MAX_SHOWN_PROBLEMS: usize = 20;

fn bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1024.0 && u + 1 < UNITS.len() {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

fn date(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|d| d.format("%Y-%m-%d").to_string())
        .unwrap_or_else(|| ms.to_string())
}

fn seconds(ms: u64) -> String {
    format!("{:.1} s", ms as f64 / 1000.0)
}

fn counts_line(c: &EntityCounts) -> String {
    let mut parts = vec![
        format!("{} accounts", c.accounts),
        format!("{} transactions", c.transactions),
        format!("{} categories", c.categories),
        format!("{} file maps", c.file_maps),
        format!("{} transaction files", c.transaction_files),
    ];
    if c.analytics > 0 {
        parts.push(format!("{} analytics records", c.analytics));
    }
    parts.join(", ")
}

impl Out {
    pub fn new(json: bool) -> Self {
        Out { json }
    }

    fn print_json<T: Serialize>(&self, value: &T) {
        match serde_json::to_string_pretty(value) {
            Ok(text) => println!("{text}"),
            Err(e) => eprintln!("error: cannot print the result as JSON: {e}"),
        }
    }

    /// A failure: text on stderr, or a JSON document on stdout.
    pub fn error(&self, code: &str, message: &str, extra: Option<Value>) {
        if self.json {
            let mut doc = json!({ "error": code, "message": message });
            if let (Some(Value::Object(extra)), Some(obj)) = (extra, doc.as_object_mut()) {
                obj.extend(extra);
            }
            self.print_json(&doc);
        } else {
            eprintln!("error: {message}");
        }
    }

    /// An invalid package: the reason, and the validation report when there is one.
    pub fn invalid(&self, message: &str, report: Option<&Value>) {
        if message.is_empty() {
            return; // `verify` printed its report already
        }
        if self.json {
            let mut doc = json!({ "error": "INVALID_PACKAGE", "message": message });
            if let (Some(report), Some(obj)) = (report, doc.as_object_mut()) {
                obj.insert("validation".into(), report.clone());
            }
            self.print_json(&doc);
            return;
        }
        eprintln!("error: {message}");
        if let Some(problems) = report
            .and_then(|r| r.get("problems"))
            .and_then(Value::as_array)
        {
            for p in problems.iter().take(MAX_SHOWN_PROBLEMS) {
                let sev = p.get("severity").and_then(Value::as_str).unwrap_or("");
                let entry = p.get("entry").and_then(Value::as_str);
                let msg = p.get("message").and_then(Value::as_str).unwrap_or("");
                match entry {
                    Some(e) => eprintln!("  {sev}: {e}: {msg}"),
                    None => eprintln!("  {sev}: {msg}"),
                }
            }
            let total = ["errors", "warnings"]
                .iter()
                .filter_map(|k| report.and_then(|r| r.get(*k)).and_then(Value::as_u64))
                .sum::<u64>()
                .max(problems.len() as u64);
            let shown = problems.len().min(MAX_SHOWN_PROBLEMS) as u64;
            if total > shown {
                eprintln!("  … and {} more", total - shown);
            }
        }
    }

    pub fn demo(&self, r: &DemoReport) {
        if self.json {
            return self.print_json(r);
        }
        println!(
            "Created a demo profile for {} (seed {}): {} accounts, {} transactions, {} categories ({} rules), {} file maps, {} statement files ({}) in {}.",
            r.user_id,
            r.seed,
            r.accounts,
            r.transactions,
            r.categories,
            r.category_rules,
            r.file_maps,
            r.transaction_files,
            bytes(r.file_bytes),
            seconds(r.duration_ms)
        );
    }

    pub fn backup(&self, r: &BackupReport, path: &Path) {
        if self.json {
            let mut v = serde_json::to_value(r).unwrap_or_default();
            if let Some(o) = v.as_object_mut() {
                o.insert("output".into(), json!(path.display().to_string()));
            }
            return self.print_json(&v);
        }
        println!(
            "Backed up {} to {} in {}.",
            r.user_id,
            path.display(),
            seconds(r.duration_ms)
        );
        println!("  {}", counts_line(&r.counts));
        println!(
            "  {} statement files ({})",
            r.files_written,
            bytes(r.file_bytes)
        );
        for f in &r.files_failed {
            println!(
                "  NOT INCLUDED: statement file {} ({}): {}",
                f.file_id, f.file_name, f.reason
            );
        }
        println!(
            "  package {} ({} uncompressed), {} entries, manifest {}",
            bytes(r.package_bytes),
            bytes(r.uncompressed_bytes),
            r.entries,
            r.manifest_checksum
        );
        if let Some(sel) = &r.selection {
            selection_lines(sel);
        }
        quality_lines(&r.validation);
    }

    pub fn restore(&self, r: &RestoreReport, path: &Path) {
        if self.json {
            return self.print_json(r);
        }
        let v = &r.validation;
        if r.validate_only {
            println!(
                "{} is valid and can be restored into {}'s empty profile: {}.",
                path.display(),
                r.user_id,
                counts_line(&v.counts)
            );
        } else {
            println!(
                "Restored {} into {} in {}.",
                path.display(),
                r.user_id,
                seconds(r.duration_ms)
            );
            println!("  {}", counts_line(&r.restored));
            println!(
                "  {} statement files ({})",
                r.files_restored,
                bytes(r.file_bytes)
            );
            if !r.files_without_content.is_empty() {
                println!(
                    "  {} transaction files had no bytes in the package: {}",
                    r.files_without_content.len(),
                    r.files_without_content.join(", ")
                );
            }
        }
        for p in v
            .problems
            .iter()
            .filter(|p| p.severity == Severity::Warning)
            .take(20)
        {
            println!("  {p}");
        }
    }

    pub fn verify(&self, r: &VerifyReport, path: &Path) {
        if self.json {
            return self.print_json(r);
        }
        if r.valid {
            println!(
                "{}: VALID ({} package, {} warnings)",
                path.display(),
                r.dialect.as_str(),
                r.warnings
            );
        } else {
            println!(
                "{}: INVALID ({} errors, {} warnings)",
                path.display(),
                r.errors,
                r.warnings
            );
            // What it means first; the problems below are the detail.
            println!("  {}", fzip_engine::invalid_summary(r, 0));
        }
        if r.valid {
            println!("  {}", counts_line(&r.counts));
        } else {
            // What was read before the damage, and what the manifest says there should be.
            println!("  read: {}", counts_line(&r.counts));
            let declared = declared_line(&r.declared_counts);
            if !declared.is_empty() {
                println!("  the manifest declares: {declared}");
            }
        }
        println!(
            "  {} statement files ({})",
            r.files.iter().filter(|f| f.size.is_some()).count(),
            bytes(r.preview.file_bytes)
        );
        if let Some(q) = r.quality.as_ref().filter(|_| r.valid) {
            quality_lines(q);
        }
        for p in r.problems.iter().take(MAX_SHOWN_PROBLEMS) {
            println!("  {p}");
        }
        let shown = r.problems.len().min(MAX_SHOWN_PROBLEMS) as u64;
        let more = (r.errors + r.warnings).saturating_sub(shown);
        if more > 0 {
            println!("  … and {more} more");
        }
        housef3_lines(r);
    }

    pub fn inspect(
        &self,
        r: &VerifyReport,
        manifest: &serde_json::Map<String, Value>,
        entries: &[EntryInfo],
        package_bytes: u64,
        path: &Path,
    ) {
        if self.json {
            return self.print_json(&json!({
                "file": path.display().to_string(),
                "packageBytes": package_bytes,
                "valid": r.valid,
                "dialect": r.dialect,
                "manifest": manifest,
                "counts": r.counts,
                "categoryRules": r.category_rules,
                "transactionDateRange": {
                    "first": r.preview.first_transaction_date,
                    "last": r.preview.last_transaction_date,
                },
                "files": r.files,
                "quality": r.quality,
                "preview": r.preview,
                "entries": entries,
                "problems": r.problems,
                "housef3Warnings": r.housef3_warnings,
                "housef3WarningsOmitted": r.housef3_warnings_omitted,
            }));
        }
        println!(
            "{} ({}, {} dialect)",
            path.display(),
            bytes(package_bytes),
            r.dialect.as_str()
        );
        let p = &r.package;
        println!("  {} format {}", p.package_kind, p.format_version);
        if let Some(g) = &p.generator {
            println!("  written by {g}");
        }
        if let Some(u) = &p.user_id {
            println!("  user       {u}");
        }
        if let Some(t) = &p.timestamp {
            println!("  taken at   {t}");
        }
        if let Some(j) = &p.job_id {
            println!("  job        {j}");
        }
        if let Some(b) = &p.backup_type {
            println!("  type       {b}");
        }
        if let Some(d) = &p.description {
            println!("  note       {d}");
        }
        println!("  {}", counts_line(&r.counts));
        println!("  {} category rules", r.category_rules);
        if let (Some(a), Some(b)) = (
            r.preview.first_transaction_date,
            r.preview.last_transaction_date,
        ) {
            println!("  transactions from {} to {}", date(a), date(b));
        }
        if !r.preview.accounts.is_empty() {
            println!("  accounts:");
            for a in &r.preview.accounts {
                println!(
                    "    {} ({}, {}) {} transactions",
                    a.account_name,
                    a.account_type,
                    a.currency.as_deref().unwrap_or("-"),
                    a.transaction_count
                );
            }
        }
        if !r.files.is_empty() {
            println!("  statement files:");
            for f in &r.files {
                println!(
                    "    {}  {}  {}  {}",
                    f.file_id,
                    f.size.map(bytes).unwrap_or_else(|| "no bytes".into()),
                    f.sha256.as_deref().unwrap_or("-"),
                    f.file_name.as_deref().unwrap_or("")
                );
            }
        }
        if let Some(sel) = manifest.get("selection") {
            selection_lines(sel);
        }
        if let Some(q) = &r.quality {
            quality_lines(q);
        }
        println!(
            "  {}: {} errors, {} warnings",
            if r.valid { "valid" } else { "INVALID" },
            r.errors,
            r.warnings
        );
        if !r.valid {
            println!("  {}", fzip_engine::invalid_summary(r, 0));
        }
        for p in r.problems.iter().take(20) {
            println!("    {p}");
        }
        housef3_lines(r);
    }

    pub fn diff(&self, r: &DiffReport) {
        if self.json {
            return self.print_json(r);
        }
        if r.equal {
            println!("The packages hold the same profile.");
            for c in &r.collections {
                println!("  {:<18} {}", c.collection, c.count_a);
            }
            println!("  {:<18} {}", "statement files", r.files_a);
            return;
        }
        println!("The packages hold different profiles.");
        for c in &r.collections {
            if c.count_a == c.count_b && c.changed + c.only_in_a + c.only_in_b == 0 {
                continue;
            }
            println!(
                "  {}: {} in A, {} in B; {} changed, {} only in A, {} only in B",
                c.collection, c.count_a, c.count_b, c.changed, c.only_in_a, c.only_in_b
            );
            for e in &c.examples {
                println!("    {} {}", e.change, e.id);
                for f in e.fields.iter().take(10) {
                    println!(
                        "      {}: {} → {}",
                        f.field,
                        f.a.as_ref()
                            .map(Value::to_string)
                            .unwrap_or_else(|| "(absent)".into()),
                        f.b.as_ref()
                            .map(Value::to_string)
                            .unwrap_or_else(|| "(absent)".into())
                    );
                }
            }
        }
        for f in &r.file_differences {
            println!(
                "  statement file {}: {} → {}",
                f.file_id,
                f.sha256_a.as_deref().unwrap_or("(absent)"),
                f.sha256_b.as_deref().unwrap_or("(absent)")
            );
        }
    }

    pub fn summary(&self, user: &str, s: &ProfileSummary) {
        if self.json {
            let mut v = serde_json::to_value(s).unwrap_or_default();
            if let Some(o) = v.as_object_mut() {
                o.insert("userId".into(), json!(user));
                o.insert("empty".into(), json!(s.is_empty()));
            }
            return self.print_json(&v);
        }
        if s.is_empty() {
            println!("The profile of {user} is empty.");
            return;
        }
        let c = &s.counts;
        println!("Profile of {user}:");
        println!("  accounts           {}", c.accounts);
        println!("  transactions       {}", c.transactions);
        println!(
            "  categories         {} ({} rules)",
            c.categories, s.category_rules
        );
        println!("  file maps          {}", c.file_maps);
        println!(
            "  transaction files  {} ({} with stored bytes, {})",
            c.transaction_files,
            s.files_with_content,
            bytes(s.file_bytes)
        );
        println!("  analytics records  {}", c.analytics);
        if let (Some(a), Some(b)) = (s.first_transaction_date, s.last_transaction_date) {
            println!("  transactions from {} to {}", date(a), date(b));
        }
    }

    pub fn cleared(&self, user: &str, s: &ProfileSummary) {
        if self.json {
            return self.print_json(&json!({ "userId": user, "deleted": s }));
        }
        println!(
            "Cleared the profile of {user}: deleted {}.",
            fzip_store::describe(&s.counts)
        );
    }

    pub fn gc(&self, r: &GcReport) {
        if self.json {
            return self.print_json(r);
        }
        println!(
            "Examined {} blobs: deleted {} unreferenced ({}; {} half-written), kept {} recent ones and {} of restores or imports still running.",
            r.examined,
            r.deleted,
            bytes(r.deleted_bytes),
            r.deleted_partial,
            r.kept_recent,
            r.kept_in_use
        );
    }

    pub fn import(&self, r: &fzip_engine::ImportReport, path: &Path) {
        if self.json {
            return self.print_json(r);
        }
        let verb = if r.dry_run {
            "Would import"
        } else {
            "Imported"
        };
        println!(
            "{verb} {} into {} ({} merge) in {}.",
            path.display(),
            r.user_id,
            r.merge_strategy_str(),
            seconds(r.duration_ms)
        );
        println!(
            "  {:<18} {:>9} {:>9} {:>9} {:>9} {:>9}",
            "", "created", "updated", "unchanged", "skipped", "conflicts"
        );
        for kind in fzip_model::EntityKind::ALL {
            let row = [
                &r.created,
                &r.updated,
                &r.unchanged,
                &r.skipped,
                &r.conflicts,
            ]
            .map(|c| c.get(kind));
            if row.iter().all(|n| *n == 0) {
                continue;
            }
            println!(
                "  {:<18} {:>9} {:>9} {:>9} {:>9} {:>9}",
                kind.stem(),
                row[0],
                row[1],
                row[2],
                row[3],
                row[4]
            );
        }
        println!(
            "  {} statement files written ({})",
            r.files_written,
            bytes(r.file_bytes)
        );
        if r.possible_duplicates_total > 0 {
            println!(
                "  {} imported transactions look like ones the profile already had (kept, not dropped):",
                r.possible_duplicates_total
            );
            for d in r.possible_duplicates.iter().take(20) {
                println!(
                    "    {} resembles {} ({})",
                    d.transaction_id,
                    d.existing_transaction_id.as_deref().unwrap_or("?"),
                    d.reason
                );
            }
        }
        if !r.dry_run {
            println!("  {} analytics records recomputed", r.analytics_recomputed);
        }
    }

    pub fn conflicts(&self, message: &str, report: &Value) {
        if self.json {
            return self.print_json(
                &json!({ "error": "IMPORT_CONFLICT", "message": message, "report": report }),
            );
        }
        eprintln!("error: {message}");
        if let Some(list) = report.get("conflictList").and_then(Value::as_array) {
            for c in list.iter().take(50) {
                eprintln!(
                    "  {} {} {}",
                    c["collection"].as_str().unwrap_or(""),
                    c["id"].as_str().unwrap_or(""),
                    c.get("name").and_then(Value::as_str).unwrap_or("")
                );
            }
            let total = report["conflicts"]
                .as_object()
                .map_or(0, |o| o.values().filter_map(Value::as_u64).sum::<u64>());
            if total as usize > 50 {
                eprintln!("  … {} conflicts in all", total);
            }
        }
    }

    pub fn analytics(&self, user: &str, records: &[fzip_model::AnalyticsRecord]) {
        if self.json {
            return self.print_json(&json!({ "userId": user, "records": records }));
        }
        if records.is_empty() {
            println!(
                "The profile of {user} has no analytics (fzip analytics --user {user} --recompute computes them)."
            );
            return;
        }
        println!("Analytics of {user} ({} records):", records.len());
        for r in records {
            let data: Value = serde_json::from_str(r.data.get()).unwrap_or_default();
            match r.analytic_type {
                fzip_model::AnalyticType::CashFlow => println!(
                    "  cash flow  {}  {}  in {} out {} net {} {} ({} transactions)",
                    r.time_period,
                    r.account_id.as_deref().unwrap_or("-"),
                    data["inflow"].as_str().unwrap_or("?"),
                    data["outflow"].as_str().unwrap_or("?"),
                    data["net"].as_str().unwrap_or("?"),
                    data["currency"].as_str().unwrap_or(""),
                    data["transactionCount"]
                ),
                fzip_model::AnalyticType::CategoryTrends => {
                    if let Some(cur) = data["currencies"].as_object() {
                        for (currency, cats) in cur {
                            let n = cats.as_object().map_or(0, |c| c.len());
                            println!("  categories {}  {currency}: {n} categories", r.time_period);
                        }
                    }
                }
                other => println!("  {}  {}  {}", other, r.time_period, r.data.get()),
            }
        }
    }

    pub fn audit(&self, records: &[fzip_store::AuditRecord]) {
        if self.json {
            return self.print_json(&json!({ "records": records }));
        }
        if records.is_empty() {
            println!("No audit records.");
        }
        for r in records {
            let at = chrono::DateTime::from_timestamp_millis(r.at)
                .map(|d| d.format("%Y-%m-%d %H:%M:%S%.3fZ").to_string())
                .unwrap_or_default();
            println!(
                "{at}  {:<16} {:<22} {:<10} {}{}",
                r.user_id,
                r.action,
                r.outcome,
                r.job_id.as_deref().unwrap_or("-"),
                r.detail
                    .as_ref()
                    .map(|d| format!("  ({d})"))
                    .unwrap_or_default()
            );
        }
    }

    /// A document as it is (`--json` usage errors, help, bench results).
    pub fn document(&self, value: &Value) {
        self.print_json(value);
    }

    /// `fzip token`: the token alone on a line, or `{token, userId, expiresAt}`.
    pub fn token(&self, user: &str, token: &str, expires_at: i64) {
        if self.json {
            return self
                .print_json(&json!({ "token": token, "userId": user, "expiresAt": expires_at }));
        }
        println!("{token}");
    }

    pub fn migrated(&self, path: &str, applied: &[String]) {
        if self.json {
            return self.print_json(&json!({ "database": path, "applied": applied }));
        }
        if applied.is_empty() {
            println!("{path} is up to date.");
        } else {
            println!("Applied to {path}: {}", applied.join(", "));
        }
    }
}

/// Values HouseF3's own models would refuse: warnings, listed after the problems.
fn housef3_lines(r: &VerifyReport) {
    let n = r.housef3_warnings.len() as u64 + r.housef3_warnings_omitted;
    if n == 0 {
        return;
    }
    println!("  HouseF3 would refuse {n} value(s) (fzip keeps and restores them as they are):");
    for w in r.housef3_warnings.iter().take(20) {
        println!("    WARN {w}");
    }
    if n > 20 {
        println!("    … and {} more", n - 20);
    }
}

/// The backup quality block (the manifest's `validation`), for reading.
fn quality_lines(q: &Value) {
    let Some(overall) = q.get("overall_quality").and_then(Value::as_str) else {
        return;
    };
    let num = |k: &str| q.get(k).cloned().unwrap_or(Value::Null);
    println!(
        "  backup quality: {overall} (data integrity {}, completeness {}); {} statement files included, {} missing or damaged; {}; {} s",
        num("data_integrity_score"),
        num("completeness_score"),
        num("files_processed"),
        num("files_failed"),
        space_saved(q.get("compression_ratio")),
        num("processing_time_seconds"),
    );
    for (label, key) in [("issue", "issues"), ("recommendation", "recommendations")] {
        for item in q.get(key).and_then(Value::as_array).into_iter().flatten() {
            if let Some(text) = item.as_str() {
                println!("    {label}: {text}");
            }
        }
    }
}

/// The counts a manifest declares (`dataSummary`), as [`counts_line`] words them.
fn declared_line(declared: &std::collections::BTreeMap<String, u64>) -> String {
    fzip_model::EntityKind::ALL
        .iter()
        .filter_map(|k| {
            declared
                .get(k.camel())
                .map(|n| format!("{n} {}", k.stem().replace('_', " ")))
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// The compression figure (`compression_ratio`: space saved, in percent of the uncompressed
/// size), as every output shows it.
fn space_saved(ratio: Option<&Value>) -> String {
    match ratio.and_then(Value::as_f64) {
        Some(r) => format!("compression saved {:.1} %", r.clamp(0.0, 100.0)),
        None => "compression not measured".into(),
    }
}

/// What a partial package holds and which filters made it.
fn selection_lines(sel: &Value) {
    let kind = sel.get("backupType").and_then(Value::as_str).unwrap_or("?");
    let partial = sel.get("partial").and_then(Value::as_bool).unwrap_or(false);
    let mut filters = Vec::new();
    if let Some(f) = sel.get("filters") {
        if let Some(ids) = f.get("accountIds").and_then(Value::as_array) {
            filters.push(format!("{} account(s)", ids.len()));
        }
        if let Some(ids) = f.get("categoryIds").and_then(Value::as_array) {
            filters.push(format!("{} categor(ies)", ids.len()));
        }
        let from = f.get("dateRangeStart").and_then(Value::as_i64);
        let to = f.get("dateRangeEnd").and_then(Value::as_i64);
        if from.is_some() || to.is_some() {
            filters.push(format!(
                "dates {} to {}",
                from.map(date).unwrap_or_else(|| "…".into()),
                to.map(date).unwrap_or_else(|| "…".into())
            ));
        }
    }
    println!(
        "  selection  {kind}{}{}",
        if partial { " (partial)" } else { "" },
        if filters.is_empty() {
            String::new()
        } else {
            format!(", filtered by {}", filters.join(", "))
        }
    );
    if let Some(ext) = sel.get("externalReferences").and_then(Value::as_object) {
        let refs: Vec<String> = ext
            .iter()
            .filter_map(|(k, v)| {
                let n = v.as_array().map_or(0, Vec::len);
                (n > 0).then(|| format!("{n} {k}"))
            })
            .collect();
        if !refs.is_empty() {
            println!(
                "  refers outside the package to {} (an import resolves them against the profile)",
                refs.join(", ")
            );
        }
    }
}
