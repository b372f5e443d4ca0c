//! Values fzip keeps but HouseF3's own models would refuse (`housef3-fzip-as-built.md` §2).
//!
//! fzip accepts more than HouseF3 does: any three-letter currency code, the design documents'
//! fractional assignment confidence (`0.95`), their `amount_range` rule condition, transactions
//! without a statement file. Such a package restores into fzip exactly, but HouseF3 would drop or
//! refuse the entities holding them. These checks are cheap (one entity at a time, no lookups), so
//! `verify` and `inspect` run them in their streaming pass and *warn*, naming the entity and the
//! field; they never make a package invalid. The length limits, UUIDs, ranges and required keys
//! HouseF3 enforces are schema errors already ([`crate::validate`]).

use crate::validate::SchemaIssue;
use crate::{Account, Category, Currency, RuleCondition, Transaction, TransactionFile};

fn issue(issues: &mut Vec<SchemaIssue>, field: String, message: String) {
    issues.push(SchemaIssue { field, message });
}

fn currency(issues: &mut Vec<SchemaIssue>, field: &str, value: Option<&Currency>) {
    if let Some(c) = value
        && !Currency::HOUSEF3.contains(&c.as_str())
    {
        issue(
            issues,
            field.to_string(),
            format!(
                "{:?} is not one of HouseF3's currencies ({})",
                c.as_str(),
                Currency::HOUSEF3.join(", ")
            ),
        );
    }
}

/// What HouseF3's `Account` model would refuse.
pub fn account(a: &Account) -> Vec<SchemaIssue> {
    let mut issues = Vec::new();
    currency(&mut issues, "currency", a.currency.as_ref());
    issues
}

/// What HouseF3's `Transaction` model would refuse.
pub fn transaction(t: &Transaction) -> Vec<SchemaIssue> {
    let mut issues = Vec::new();
    currency(&mut issues, "currency", t.currency.as_ref());
    if t.file_id.is_none() {
        issue(
            &mut issues,
            "fileId".into(),
            "is missing; HouseF3 requires every transaction to name its statement file".into(),
        );
    }
    for (i, a) in t.categories.iter().enumerate() {
        if a.confidence.as_whole().is_none() {
            issue(
                &mut issues,
                format!("categories[{i}].confidence"),
                format!(
                    "{} is not a whole number; HouseF3 expects an integer from 0 to 100",
                    a.confidence
                ),
            );
        }
    }
    issues
}

/// What HouseF3's `Category` model would refuse.
pub fn category(k: &Category) -> Vec<SchemaIssue> {
    let mut issues = Vec::new();
    for (i, r) in k.rules.iter().enumerate() {
        if r.condition == RuleCondition::AmountRange {
            issue(
                &mut issues,
                format!("rules[{i}].condition"),
                "\"amount_range\" is the design documents' name; HouseF3 knows only \"amount_between\"".into(),
            );
        }
    }
    issues
}

/// What HouseF3's `TransactionFile` model would refuse.
pub fn transaction_file(f: &TransactionFile) -> Vec<SchemaIssue> {
    let mut issues = Vec::new();
    currency(&mut issues, "currency", f.currency.as_ref());
    issues
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn foreign_currency_and_design_forms_are_named() {
        let a: Account = serde_json::from_str(r#"{"accountId":"a","accountName":"n","accountType":"other","currency":"KWD","createdAt":1,"updatedAt":1}"#).unwrap();
        let fields: Vec<_> = account(&a).into_iter().map(|i| i.field).collect();
        assert_eq!(fields, ["currency"]);
        let t: Transaction = serde_json::from_str(r#"{"transactionId":"t","accountId":"a","date":1,"description":"d","amount":"1","currency":"other","categories":[{"categoryId":"c","confidence":95,"assignedAt":1},{"categoryId":"c","confidence":0.95,"assignedAt":1}],"createdAt":1,"updatedAt":1}"#).unwrap();
        let fields: Vec<_> = transaction(&t).into_iter().map(|i| i.field).collect();
        assert_eq!(fields, ["fileId", "categories[1].confidence"]);
        for code in Currency::HOUSEF3 {
            let a = Account {
                currency: Currency::parse(code),
                ..a.clone()
            };
            assert!(account(&a).is_empty(), "{code}");
        }
    }
}
