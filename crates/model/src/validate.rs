//! Schema rules beyond JSON types: identifier formats, lengths and ranges HouseF3's models
//! enforce. Each rule violation is reported with the field it concerns.

use crate::{
    Account, AnalyticsRecord, Category, CategoryAssignment, CategoryRule, FileMap, Transaction,
    TransactionFile,
};

/// One schema rule violation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SchemaIssue {
    /// The JSON key path, such as `categories[0].confidence`.
    pub field: String,
    pub message: String,
}

impl std::fmt::Display for SchemaIssue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.field, self.message)
    }
}

/// True for a lowercase or uppercase hyphenated UUID (`8-4-4-4-12` hex digits).
pub fn is_uuid(text: &str) -> bool {
    let b = text.as_bytes();
    b.len() == 36
        && b.iter().enumerate().all(|(i, &c)| match i {
            8 | 13 | 18 | 23 => c == b'-',
            _ => c.is_ascii_hexdigit(),
        })
}

struct Checker<'a> {
    issues: &'a mut Vec<SchemaIssue>,
    prefix: String,
}

impl Checker<'_> {
    fn issue(&mut self, field: &str, message: impl Into<String>) {
        self.issues.push(SchemaIssue {
            field: format!("{}{}", self.prefix, field),
            message: message.into(),
        });
    }

    fn uuid(&mut self, field: &str, value: &str) {
        if !is_uuid(value) {
            self.issue(field, format!("{value:?} is not a UUID"));
        }
    }

    fn opt_uuid(&mut self, field: &str, value: Option<&str>) {
        if let Some(v) = value {
            self.uuid(field, v);
        }
    }

    fn text(&mut self, field: &str, value: &str, min: usize, max: usize) {
        let n = value.chars().count();
        if n < min {
            self.issue(field, "must not be empty");
        } else if n > max {
            self.issue(
                field,
                format!("is {n} characters long; at most {max} are allowed"),
            );
        }
    }

    fn opt_text(&mut self, field: &str, value: Option<&str>, max: usize) {
        if let Some(v) = value {
            self.text(field, v, 0, max);
        }
    }

    fn millis(&mut self, field: &str, value: i64) {
        if value < 0 {
            self.issue(field, format!("{value} is a negative timestamp"));
        }
    }

    fn opt_millis(&mut self, field: &str, value: Option<i64>) {
        if let Some(v) = value {
            self.millis(field, v);
        }
    }

    fn score(&mut self, field: &str, value: i32) {
        if !(0..=100).contains(&value) {
            self.issue(field, format!("{value} is outside 0–100"));
        }
    }

    fn count(&mut self, field: &str, value: Option<i64>) {
        if let Some(v) = value
            && v < 0
        {
            self.issue(field, format!("{v} is negative"));
        }
    }
}

/// Longest identifier accepted where HouseF3 does not require a UUID (rule ids, user ids).
pub const MAX_ID_LEN: usize = 128;

pub fn validate_account(a: &Account) -> Vec<SchemaIssue> {
    let mut issues = Vec::new();
    let mut c = Checker {
        issues: &mut issues,
        prefix: String::new(),
    };
    c.uuid("accountId", &a.account_id);
    c.text("accountName", &a.account_name, 1, 100);
    c.opt_text("institution", a.institution.as_deref(), 100);
    c.opt_text("notes", a.notes.as_deref(), 1000);
    c.opt_uuid("defaultFileMapId", a.default_file_map_id.as_deref());
    if a.balance.is_some() && a.currency.is_none() {
        c.issue("currency", "is required when balance is set");
    }
    c.opt_millis("firstTransactionDate", a.first_transaction_date);
    c.opt_millis("lastTransactionDate", a.last_transaction_date);
    c.opt_millis("importsStartDate", a.imports_start_date);
    c.opt_millis("importsEndDate", a.imports_end_date);
    c.millis("createdAt", a.created_at);
    c.millis("updatedAt", a.updated_at);
    issues
}

fn validate_assignment(c: &mut Checker<'_>, a: &CategoryAssignment) {
    c.uuid("categoryId", &a.category_id);
    let v = a.confidence.value();
    if !(0.0..=100.0).contains(&v) {
        c.issue("confidence", format!("{} is outside 0–100", a.confidence));
    }
    c.millis("assignedAt", a.assigned_at);
    c.opt_millis("confirmedAt", a.confirmed_at);
    c.opt_text("ruleId", a.rule_id.as_deref(), MAX_ID_LEN);
}

pub fn validate_transaction(t: &Transaction) -> Vec<SchemaIssue> {
    let mut issues = Vec::new();
    let mut c = Checker {
        issues: &mut issues,
        prefix: String::new(),
    };
    c.uuid("transactionId", &t.transaction_id);
    c.uuid("accountId", &t.account_id);
    c.opt_uuid("fileId", t.file_id.as_deref());
    c.millis("date", t.date);
    c.text("description", &t.description, 0, 1000);
    c.opt_text("transactionType", t.transaction_type.as_deref(), 50);
    c.opt_text("memo", t.memo.as_deref(), 1000);
    c.opt_text("checkNumber", t.check_number.as_deref(), 50);
    c.opt_text("fitId", t.fit_id.as_deref(), 100);
    c.opt_text("status", t.status.as_deref(), 50);
    c.opt_text("statusDate", t.status_date.as_deref(), 200);
    c.opt_uuid("primaryCategoryId", t.primary_category_id.as_deref());
    c.millis("createdAt", t.created_at);
    c.millis("updatedAt", t.updated_at);
    for (i, a) in t.categories.iter().enumerate() {
        let mut inner = Checker {
            issues: c.issues,
            prefix: format!("categories[{i}]."),
        };
        validate_assignment(&mut inner, a);
    }
    issues
}

fn validate_rule(c: &mut Checker<'_>, r: &CategoryRule) {
    c.text("ruleId", &r.rule_id, 1, MAX_ID_LEN);
    c.text("fieldToMatch", &r.field_to_match, 1, 100);
    c.text("value", &r.value, 0, 1000);
    c.score("priority", r.priority.0);
    c.score("confidence", r.confidence.0);
    for (field, v) in [("amountMin", &r.amount_min), ("amountMax", &r.amount_max)] {
        if let Some(v) = v
            && v.is_negative()
        {
            c.issue(field, format!("{v} is negative; rule amounts must be ≥ 0"));
        }
    }
}

pub fn validate_category(k: &Category) -> Vec<SchemaIssue> {
    let mut issues = Vec::new();
    let mut c = Checker {
        issues: &mut issues,
        prefix: String::new(),
    };
    c.uuid("categoryId", &k.category_id);
    c.text("name", &k.name, 1, 255);
    c.opt_uuid("parentCategoryId", k.parent_category_id.as_deref());
    if k.parent_category_id.as_deref() == Some(k.category_id.as_str()) {
        c.issue("parentCategoryId", "a category cannot be its own parent");
    }
    c.opt_text("icon", k.icon.as_deref(), 100);
    c.opt_text("color", k.color.as_deref(), 100);
    c.millis("createdAt", k.created_at);
    c.millis("updatedAt", k.updated_at);
    let mut seen = std::collections::HashSet::new();
    for (i, r) in k.rules.iter().enumerate() {
        let mut inner = Checker {
            issues: c.issues,
            prefix: format!("rules[{i}]."),
        };
        validate_rule(&mut inner, r);
        if !seen.insert(r.rule_id.as_str()) {
            inner.issue(
                "ruleId",
                format!("{:?} appears twice in this category", r.rule_id),
            );
        }
    }
    issues
}

pub fn validate_file_map(m: &FileMap) -> Vec<SchemaIssue> {
    let mut issues = Vec::new();
    let mut c = Checker {
        issues: &mut issues,
        prefix: String::new(),
    };
    c.uuid("fileMapId", &m.file_map_id);
    c.text("name", &m.name, 1, 255);
    c.opt_uuid("accountId", m.account_id.as_deref());
    c.opt_text("description", m.description.as_deref(), 1000);
    c.millis("createdAt", m.created_at);
    c.millis("updatedAt", m.updated_at);
    if m.mappings.is_empty() {
        c.issue("mappings", "must hold at least one mapping");
    }
    for (i, f) in m.mappings.iter().enumerate() {
        let mut inner = Checker {
            issues: c.issues,
            prefix: format!("mappings[{i}]."),
        };
        inner.text("sourceField", &f.source_field, 1, 255);
        inner.text("targetField", &f.target_field, 1, 255);
        inner.opt_text("transformation", f.transformation.as_deref(), 1000);
    }
    issues
}

pub fn validate_transaction_file(f: &TransactionFile) -> Vec<SchemaIssue> {
    let mut issues = Vec::new();
    let mut c = Checker {
        issues: &mut issues,
        prefix: String::new(),
    };
    c.uuid("fileId", &f.file_id);
    c.text("fileName", &f.file_name, 1, 1000);
    c.millis("uploadDate", f.upload_date);
    c.opt_millis("processedDate", f.processed_date);
    c.opt_uuid("accountId", f.account_id.as_deref());
    c.opt_uuid("fileMapId", f.file_map_id.as_deref());
    c.count("recordCount", f.record_count);
    c.count("duplicateCount", f.duplicate_count);
    c.count("transactionCount", f.transaction_count);
    c.opt_text("errorMessage", f.error_message.as_deref(), 10_000);
    if let Some(r) = &f.date_range {
        c.millis("dateRange.startDate", r.start_date);
        c.millis("dateRange.endDate", r.end_date);
        if r.end_date < r.start_date {
            c.issue("dateRange", "endDate is before startDate");
        }
    }
    c.millis("createdAt", f.created_at);
    c.millis("updatedAt", f.updated_at);
    issues
}

pub fn validate_analytics(a: &AnalyticsRecord) -> Vec<SchemaIssue> {
    let mut issues = Vec::new();
    let mut c = Checker {
        issues: &mut issues,
        prefix: String::new(),
    };
    c.text("timePeriod", &a.time_period, 1, 100);
    c.opt_uuid("accountId", a.account_id.as_deref());
    if !a.data.get().trim_start().starts_with('{') {
        c.issue("data", "must be a JSON object");
    }
    c.text("computedDate", &a.computed_date, 1, 100);
    c.text("dataThroughDate", &a.data_through_date, 1, 100);
    issues
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uuid_shape() {
        assert!(is_uuid("e633081f-a7ca-4ba9-b18a-98cf35ef27eb"));
        assert!(!is_uuid("e633081f-a7ca-4ba9-b18a-98cf35ef27e"));
        assert!(!is_uuid("../../etc/passwd-aaaaaaaaaaaaaaaaaaaaaa"));
    }

    #[test]
    fn any_text_is_allowed_nul_and_control_characters_included() {
        // HouseF3's models accept them, so its backups can hold them.
        let t: Transaction = serde_json::from_str(r#"{"transactionId":"e633081f-a7ca-4ba9-b18a-98cf35ef27eb","accountId":"e633081f-a7ca-4ba9-b18a-98cf35ef27eb","date":1,"description":"a\u0000b\u0001\u007f\r\n😀","memo":"\u0000","amount":"1","createdAt":1,"updatedAt":1}"#).unwrap();
        assert!(t.description.contains('\0'));
        assert_eq!(validate_transaction(&t), []);
    }

    #[test]
    fn assignment_confidence_is_any_number_from_0_to_100() {
        let tx = |conf: &str| -> Transaction {
            serde_json::from_str(&format!(r#"{{"transactionId":"e633081f-a7ca-4ba9-b18a-98cf35ef27eb","accountId":"e633081f-a7ca-4ba9-b18a-98cf35ef27eb","date":1,"description":"d","amount":"1","categories":[{{"categoryId":"e633081f-a7ca-4ba9-b18a-98cf35ef27eb","confidence":{conf},"assignedAt":1}}],"createdAt":1,"updatedAt":1}}"#)).unwrap()
        };
        for ok in ["0", "95", "100", "0.95", "99.5", "1e1"] {
            assert_eq!(validate_transaction(&tx(ok)), [], "{ok}");
        }
        for bad in ["-1", "-0.5", "100.01", "250", "1e400"] {
            let fields: Vec<_> = validate_transaction(&tx(bad))
                .into_iter()
                .map(|i| i.field)
                .collect();
            assert_eq!(fields, ["categories[0].confidence"], "{bad}");
        }
    }

    #[test]
    fn account_rules() {
        let a: Account = serde_json::from_str(r#"{"accountId":"nope","accountName":"","accountType":"loan","balance":"1.00","createdAt":-1,"updatedAt":0}"#).unwrap();
        let fields: Vec<_> = validate_account(&a).into_iter().map(|i| i.field).collect();
        assert_eq!(
            fields,
            ["accountId", "accountName", "currency", "createdAt"]
        );
    }
}
