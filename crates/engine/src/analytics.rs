//! Analytics computed from transactions, in HouseF3's `AnalyticsData` shape:
//!
//! - `cash_flow`: per account and month, inflow, outflow, net and count;
//! - `category_trends`: per month, totals and counts per primary category, per currency.
//!
//! Sums are exact decimals. Analytics are derived data: they are recomputed after every restore
//! and import (the design's post-import regeneration) and can be recomputed any time; records of
//! types fzip does not compute are kept as they are.

use std::collections::BTreeMap;

use fzip_model::{AnalyticType, AnalyticsRecord, Extras, RawJson, Transaction};
use fzip_store::{ProfileWriter, StoreError};
use rust_decimal::Decimal as Exact;
use serde::Serialize;
use serde_json::json;

use crate::error::EngineError;
use crate::{Engine, now_ms};

/// The analytics types fzip computes (and replaces when it recomputes).
pub const COMPUTED: [AnalyticType; 2] = [AnalyticType::CashFlow, AnalyticType::CategoryTrends];

#[derive(Default)]
struct Sums {
    inflow: Exact,
    outflow: Exact,
    count: u64,
    /// Amounts too large or too precise for exact sums (28 digits).
    unsummed: u64,
    currency: Option<String>,
    mixed_currencies: bool,
}

impl Sums {
    fn add(&mut self, t: &Transaction) {
        self.count += 1;
        let currency = t.currency.as_ref().map(|c| c.as_str().to_string());
        match (&self.currency, &currency) {
            (None, Some(c)) if self.count == 1 => self.currency = Some(c.clone()),
            (Some(a), Some(b)) if a != b => self.mixed_currencies = true,
            _ => {}
        }
        let Some(v) = t.amount.to_rust_decimal() else {
            self.unsummed += 1;
            return;
        };
        let target = if v.is_sign_negative() {
            &mut self.outflow
        } else {
            &mut self.inflow
        };
        match target.checked_add(v) {
            Some(sum) => *target = sum,
            None => self.unsummed += 1,
        }
    }

    fn net(&self) -> Option<Exact> {
        self.inflow.checked_add(self.outflow)
    }
}

/// Accumulates analytics over transactions in any order.
#[derive(Default)]
pub struct Builder {
    cash: BTreeMap<(String, String), Sums>,
    categories: BTreeMap<(String, String, String), Sums>,
    latest: Option<i64>,
}

fn month(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|d| d.format("%Y-%m").to_string())
        .unwrap_or_else(|| "unknown".into())
}

impl Builder {
    pub fn add(&mut self, t: &Transaction) {
        let m = month(t.date);
        self.cash
            .entry((t.account_id.clone(), m.clone()))
            .or_default()
            .add(t);
        let currency = t
            .currency
            .as_ref()
            .map_or("unknown", |c| c.as_str())
            .to_string();
        let category = t
            .primary_category_id
            .clone()
            .unwrap_or_else(|| "uncategorized".into());
        self.categories
            .entry((m, currency, category))
            .or_default()
            .add(t);
        self.latest = Some(self.latest.map_or(t.date, |l| l.max(t.date)));
    }

    /// The records, in a stable order.
    pub fn finish(self, user: &str) -> Vec<AnalyticsRecord> {
        let computed = chrono::DateTime::from_timestamp_millis(now_ms())
            .unwrap_or_default()
            .to_rfc3339();
        let through = self
            .latest
            .and_then(chrono::DateTime::from_timestamp_millis)
            .map(|d| d.format("%Y-%m-%d").to_string())
            .unwrap_or_default();
        let record = |t: AnalyticType,
                      period: String,
                      account: Option<String>,
                      data: serde_json::Value| AnalyticsRecord {
            user_id: Some(user.to_string()),
            analytic_type: t,
            time_period: period,
            account_id: account,
            data: RawJson::from_value(&data).unwrap_or_else(|_| {
                RawJson::from_text("{}").unwrap_or_else(|_| unreachable_json())
            }),
            computed_date: computed.clone(),
            data_through_date: through.clone(),
            ttl: None,
            extras: Extras::new(),
        };
        let mut out = Vec::new();
        for ((account, m), s) in &self.cash {
            let mut data = json!({
                "inflow": s.inflow.to_string(),
                "outflow": s.outflow.to_string(),
                "net": s.net().map(|n| n.to_string()),
                "transactionCount": s.count,
            });
            if let Some(c) = &s.currency {
                data["currency"] = json!(c);
            }
            if s.mixed_currencies {
                data["mixedCurrencies"] = json!(true);
            }
            if s.unsummed > 0 {
                data["unsummedTransactions"] = json!(s.unsummed);
            }
            out.push(record(
                AnalyticType::CashFlow,
                m.clone(),
                Some(account.clone()),
                data,
            ));
        }
        let mut by_month: BTreeMap<String, serde_json::Map<String, serde_json::Value>> =
            BTreeMap::new();
        for ((m, currency, category), s) in &self.categories {
            let currencies = by_month.entry(m.clone()).or_default();
            let entry = currencies
                .entry(currency.clone())
                .or_insert_with(|| json!({}));
            entry[category] = json!({
                "total": s.net().map(|n| n.to_string()),
                "count": s.count,
            });
        }
        for (m, currencies) in by_month {
            out.push(record(
                AnalyticType::CategoryTrends,
                m,
                None,
                json!({ "currencies": currencies }),
            ));
        }
        out
    }
}

#[allow(clippy::panic)]
fn unreachable_json() -> RawJson {
    panic!("\"{{}}\" is JSON")
}

/// Recomputes the analytics fzip computes, inside `writer`'s transaction. Returns how many
/// records there are now.
pub fn recompute_in(writer: &mut dyn ProfileWriter, user: &str) -> Result<u64, EngineError> {
    let mut builder = Builder::default();
    writer.scan_transactions(i64::MIN, i64::MAX, &mut |t| {
        builder.add(&t);
        Ok::<(), StoreError>(())
    })?;
    let records = builder.finish(user);
    writer.replace_analytics(&COMPUTED, &records)?;
    Ok(records.len() as u64)
}

/// What a recomputation produced.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AnalyticsReport {
    pub user_id: String,
    pub records: u64,
}

/// Recomputes a profile's analytics in its own transaction.
pub fn recompute(engine: &Engine, user: &str) -> Result<AnalyticsReport, EngineError> {
    let mut writer = engine.store.begin_write(user)?;
    let records = recompute_in(writer.as_mut(), user)?;
    writer.commit()?;
    Ok(AnalyticsReport {
        user_id: user.to_string(),
        records,
    })
}

/// The analytics a profile holds now.
pub fn load(engine: &Engine, user: &str) -> Result<Vec<AnalyticsRecord>, EngineError> {
    let mut snap = engine.store.snapshot(user)?;
    let mut out = Vec::new();
    loop {
        let batch = snap.next_analytics(fzip_store::DEFAULT_BATCH)?;
        if batch.is_empty() {
            return Ok(out);
        }
        out.extend(batch);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tx(account: &str, date: i64, amount: &str, category: Option<&str>) -> Transaction {
        let mut t: Transaction = serde_json::from_value(json!({
            "transactionId": "t", "accountId": account, "date": date, "description": "d",
            "amount": amount, "currency": "EUR", "createdAt": 0, "updatedAt": 0,
        }))
        .unwrap();
        t.primary_category_id = category.map(str::to_string);
        t
    }

    #[test]
    fn monthly_sums_are_exact() {
        let mut b = Builder::default();
        // 2023-01-15 and 2023-01-31, 2023-02-01 (UTC).
        b.add(&tx("a", 1_673_740_800_000, "-10.50", Some("food")));
        b.add(&tx("a", 1_675_123_200_000, "0.1", Some("food")));
        b.add(&tx("a", 1_675_209_600_000, "2500.00", None));
        b.add(&tx("b", 1_673_740_800_000, "-1E-7", None));
        let records = b.finish("u");
        let cash: Vec<_> = records
            .iter()
            .filter(|r| r.analytic_type == AnalyticType::CashFlow)
            .collect();
        assert_eq!(cash.len(), 3);
        let jan_a: serde_json::Value = serde_json::from_str(cash[0].data.get()).unwrap();
        assert_eq!(cash[0].time_period, "2023-01");
        assert_eq!(jan_a["inflow"], "0.1");
        assert_eq!(jan_a["outflow"], "-10.50");
        assert_eq!(jan_a["net"], "-10.40");
        assert_eq!(jan_a["transactionCount"], 2);
        let trends: Vec<_> = records
            .iter()
            .filter(|r| r.analytic_type == AnalyticType::CategoryTrends)
            .collect();
        assert_eq!(trends.len(), 2);
        let jan: serde_json::Value = serde_json::from_str(trends[0].data.get()).unwrap();
        assert_eq!(jan["currencies"]["EUR"]["food"]["total"], "-10.40");
        assert_eq!(
            jan["currencies"]["EUR"]["uncategorized"]["total"],
            "-0.0000001"
        );
        assert!(records.iter().all(|r| r.data_through_date == "2023-02-01"));
    }
}
