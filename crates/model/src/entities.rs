//! The entities of a financial profile, with HouseF3's exact JSON keys and enum strings
//! (`housef3-fzip-as-built.md` §2).
//!
//! Money is [`Decimal`], timestamps are integer milliseconds since the Unix epoch (`i64`),
//! `transactionHash` is `u64`. Keys fzip does not know are kept in `extras`.

use std::fmt;

use serde::de::{self, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::{Decimal, RawJson, entity, string_enum};

/// Milliseconds since the Unix epoch (UTC).
pub type Millis = i64;

string_enum! {
    /// `accountType`.
    pub enum AccountType {
        Checking = "checking",
        Savings = "savings",
        CreditCard = "credit_card",
        Investment = "investment",
        Loan = "loan",
        Other = "other",
    }
}

string_enum! {
    /// Category `type` (upper case on the wire).
    pub enum CategoryType {
        Income = "INCOME",
        Expense = "EXPENSE",
        Transfer = "TRANSFER",
    }
}

string_enum! {
    /// Category rule `condition`. `amount_range` is the design documents' spelling of
    /// `amount_between`; it is accepted and kept as written.
    pub enum RuleCondition {
        Contains = "contains",
        StartsWith = "starts_with",
        EndsWith = "ends_with",
        Equals = "equals",
        Regex = "regex",
        AmountGreater = "amount_greater",
        AmountLess = "amount_less",
        AmountBetween = "amount_between",
        AmountRange = "amount_range",
    }
}

string_enum! {
    /// Category `ruleInheritanceMode`.
    pub enum RuleInheritanceMode {
        Additive = "additive",
        Override = "override",
        Disabled = "disabled",
    }
}

string_enum! {
    /// Category assignment `status`.
    pub enum AssignmentStatus {
        Suggested = "suggested",
        Confirmed = "confirmed",
    }
}

string_enum! {
    /// Transaction file `processingStatus`.
    pub enum ProcessingStatus {
        Pending = "pending",
        Processing = "processing",
        Processed = "processed",
        Error = "error",
        NeedsMapping = "needs_mapping",
    }
}

string_enum! {
    /// Transaction file `fileFormat`.
    pub enum FileFormat {
        Csv = "csv",
        Ofx = "ofx",
        Qfx = "qfx",
        Qif = "qif",
        Pdf = "pdf",
        Xlsx = "xlsx",
        Other = "other",
        Json = "json",
        Excel = "excel",
    }
}

string_enum! {
    /// Analytics `analyticType`.
    pub enum AnalyticType {
        CashFlow = "cash_flow",
        CategoryTrends = "category_trends",
        BudgetPerformance = "budget_performance",
        FinancialHealth = "financial_health",
        CreditUtilization = "credit_utilization",
        PaymentPatterns = "payment_patterns",
        AccountEfficiency = "account_efficiency",
        MerchantAnalysis = "merchant_analysis",
        GoalProgress = "goal_progress",
        Recommendations = "recommendations",
    }
}

/// A currency code: HouseF3's `USD, EUR, GBP, CAD, JPY, AUD, CHF, CNY, other`, and any other
/// three-letter ISO 4217 code (so that, for example, `KWD` with three decimals can be kept).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Currency(String);

impl Currency {
    /// The codes HouseF3's enum knows.
    pub const HOUSEF3: &'static [&'static str] = &[
        "USD", "EUR", "GBP", "CAD", "JPY", "AUD", "CHF", "CNY", "other",
    ];

    pub fn parse(code: &str) -> Option<Self> {
        let iso = code.len() == 3 && code.bytes().all(|b| b.is_ascii_uppercase());
        (iso || code == "other").then(|| Currency(code.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Digits after the decimal point in everyday amounts of this currency.
    pub fn minor_digits(&self) -> u32 {
        match self.0.as_str() {
            "JPY" | "KRW" | "VND" | "CLP" | "ISK" | "HUF" => 0,
            "KWD" | "BHD" | "OMR" | "JOD" | "TND" | "LYD" | "IQD" => 3,
            _ => 2,
        }
    }
}

impl fmt::Display for Currency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl Serialize for Currency {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for Currency {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Currency;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a three-letter currency code such as \"USD\", or \"other\"")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Currency, E> {
                Currency::parse(v).ok_or_else(|| {
                    E::custom(format_args!(
                        "unknown currency {v:?}: expected a three-letter ISO 4217 code such as \"USD\", or \"other\""
                    ))
                })
            }
        }
        d.deserialize_str(V)
    }
}

/// A rule's priority or confidence on HouseF3's 0–100 scale (an integer in HouseF3 and in the
/// design documents); whole-number floats (`95.0`) are accepted. An assignment's confidence is a
/// [`Confidence`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct Score(pub i32);

impl<'de> Deserialize<'de> for Score {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Score;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a whole number from 0 to 100")
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Score, E> {
                i32::try_from(v)
                    .map(Score)
                    .map_err(|_| E::custom(format_args!("{v} is out of range")))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Score, E> {
                i32::try_from(v)
                    .map(Score)
                    .map_err(|_| E::custom(format_args!("{v} is out of range")))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Score, E> {
                if v.fract() == 0.0 && v.abs() <= i32::MAX as f64 {
                    Ok(Score(v as i32))
                } else {
                    Err(E::custom(format_args!(
                        "{v} is not a whole number (confidence and priority are 0–100)"
                    )))
                }
            }
        }
        d.deserialize_any(V)
    }
}

/// A category assignment's `confidence`. HouseF3 writes a whole number from 0 to 100; the design
/// documents describe it as a float (`0.95`). Either is kept as the exact number text it was
/// written with (`0.95` stays `0.95`, `95` stays `95`), so a package round-trips byte for byte;
/// the schema accepts any number from 0 to 100.
#[derive(Clone, Debug)]
pub struct Confidence(ConfidenceRepr);

#[derive(Clone, Debug)]
enum ConfidenceRepr {
    /// An integer written in its plain form (`95`): HouseF3's own values.
    Whole(i32),
    /// Any other JSON number, as written (`0.95`, `95.0`, `9.5e1`).
    Written(Box<serde_json::value::RawValue>),
}

impl Confidence {
    /// A whole-number confidence, as HouseF3 writes it.
    pub fn whole(n: i32) -> Self {
        Confidence(ConfidenceRepr::Whole(n))
    }

    /// The confidence a JSON number text stands for; `None` when `text` is not a JSON number.
    pub fn parse(text: &str) -> Option<Self> {
        let raw = serde_json::value::RawValue::from_string(text.to_string()).ok()?;
        Self::from_raw(raw)
    }

    fn from_raw(raw: Box<serde_json::value::RawValue>) -> Option<Self> {
        let text = raw.get();
        // Valid JSON starting with a digit or a minus sign is a number.
        if !text.starts_with(|c: char| c == '-' || c.is_ascii_digit()) {
            return None;
        }
        Some(match text.parse::<i32>() {
            Ok(n) if n.to_string() == text => Confidence(ConfidenceRepr::Whole(n)),
            _ => Confidence(ConfidenceRepr::Written(raw)),
        })
    }

    /// The value when it is written as a plain integer (HouseF3's form).
    pub fn as_whole(&self) -> Option<i32> {
        match &self.0 {
            ConfidenceRepr::Whole(n) => Some(*n),
            ConfidenceRepr::Written(_) => None,
        }
    }

    /// The value as a float, for range checks only (infinite when the text is out of range).
    pub fn value(&self) -> f64 {
        match &self.0 {
            ConfidenceRepr::Whole(n) => f64::from(*n),
            ConfidenceRepr::Written(raw) => raw.get().parse().unwrap_or(f64::NAN),
        }
    }

    /// The number text as written.
    pub fn text(&self) -> std::borrow::Cow<'_, str> {
        match &self.0 {
            ConfidenceRepr::Whole(n) => std::borrow::Cow::Owned(n.to_string()),
            ConfidenceRepr::Written(raw) => std::borrow::Cow::Borrowed(raw.get()),
        }
    }
}

impl From<i32> for Confidence {
    fn from(n: i32) -> Self {
        Confidence::whole(n)
    }
}

impl PartialEq for Confidence {
    fn eq(&self, other: &Self) -> bool {
        match (&self.0, &other.0) {
            (ConfidenceRepr::Whole(a), ConfidenceRepr::Whole(b)) => a == b,
            _ => self.text() == other.text(),
        }
    }
}

impl Eq for Confidence {}

impl std::hash::Hash for Confidence {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.text().hash(state);
    }
}

impl fmt::Display for Confidence {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text())
    }
}

impl Serialize for Confidence {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match &self.0 {
            ConfidenceRepr::Whole(n) => s.serialize_i32(*n),
            ConfidenceRepr::Written(raw) => raw.serialize(s),
        }
    }
}

impl<'de> Deserialize<'de> for Confidence {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw = Box::<serde_json::value::RawValue>::deserialize(d)?;
        let shown: String = raw.get().chars().take(40).collect();
        Confidence::from_raw(raw).ok_or_else(|| {
            de::Error::custom(format_args!(
                "confidence {shown} is not a number (expected 0–100, such as 95 or 0.95)"
            ))
        })
    }
}

entity! {
    /// A financial account (`data/accounts.json`).
    pub struct Account {
        account_id: String => "accountId" [req],
        user_id: Option<String> => "userId" [opt],
        account_name: String => "accountName" [req],
        account_type: AccountType => "accountType" [req],
        institution: Option<String> => "institution" [opt],
        balance: Option<Decimal> => "balance" [opt],
        currency: Option<Currency> => "currency" [opt],
        notes: Option<String> => "notes" [opt],
        is_active: bool => "isActive" [default(true)],
        default_file_map_id: Option<String> => "defaultFileMapId" [opt],
        first_transaction_date: Option<Millis> => "firstTransactionDate" [opt],
        last_transaction_date: Option<Millis> => "lastTransactionDate" [opt],
        imports_start_date: Option<Millis> => "importsStartDate" [opt],
        imports_end_date: Option<Millis> => "importsEndDate" [opt],
        created_at: Millis => "createdAt" [req],
        updated_at: Millis => "updatedAt" [req],
    }
}

entity! {
    /// One category assignment of a transaction (`categories[]`).
    pub struct CategoryAssignment {
        category_id: String => "categoryId" [req],
        confidence: Confidence => "confidence" [default(Confidence::whole(100))],
        status: AssignmentStatus => "status" [default(AssignmentStatus::Suggested)],
        is_manual: bool => "isManual" [default(false)],
        assigned_at: Millis => "assignedAt" [req],
        confirmed_at: Option<Millis> => "confirmedAt" [opt],
        rule_id: Option<String> => "ruleId" [opt],
    }
}

entity! {
    /// A transaction (`data/transactions.json`).
    pub struct Transaction {
        user_id: Option<String> => "userId" [opt],
        file_id: Option<String> => "fileId" [opt],
        transaction_id: String => "transactionId" [req],
        account_id: String => "accountId" [req],
        date: Millis => "date" [req],
        description: String => "description" [req],
        amount: Decimal => "amount" [req],
        currency: Option<Currency> => "currency" [opt],
        balance: Option<Decimal> => "balance" [opt],
        import_order: Option<i64> => "importOrder" [opt],
        transaction_type: Option<String> => "transactionType" [opt],
        memo: Option<String> => "memo" [opt],
        check_number: Option<String> => "checkNumber" [opt],
        fit_id: Option<String> => "fitId" [opt],
        status: Option<String> => "status" [opt],
        status_date: Option<String> => "statusDate" [opt],
        created_at: Millis => "createdAt" [req],
        updated_at: Millis => "updatedAt" [req],
        transaction_hash: Option<u64> => "transactionHash" [opt],
        categories: Vec<CategoryAssignment> => "categories" [default(Vec::new())],
        primary_category_id: Option<String> => "primaryCategoryId" [opt],
    }
}

entity! {
    /// A categorisation rule of a category (`rules[]`).
    pub struct CategoryRule {
        rule_id: String => "ruleId" [req],
        field_to_match: String => "fieldToMatch" [req],
        condition: RuleCondition => "condition" [req],
        value: String => "value" [req],
        case_sensitive: bool => "caseSensitive" [default(false)],
        priority: Score => "priority" [default(Score(0))],
        enabled: bool => "enabled" [default(true)],
        confidence: Score => "confidence" [default(Score(100))],
        amount_min: Option<Decimal> => "amountMin" [opt],
        amount_max: Option<Decimal> => "amountMax" [opt],
        allow_multiple_matches: bool => "allowMultipleMatches" [default(true)],
        auto_suggest: bool => "autoSuggest" [default(true)],
    }
}

entity! {
    /// A category with its rules (`data/categories.json`).
    pub struct Category {
        user_id: Option<String> => "userId" [opt],
        name: String => "name" [req],
        category_type: CategoryType => "type" [req],
        category_id: String => "categoryId" [req],
        parent_category_id: Option<String> => "parentCategoryId" [opt],
        icon: Option<String> => "icon" [opt],
        color: Option<String> => "color" [opt],
        rules: Vec<CategoryRule> => "rules" [default(Vec::new())],
        created_at: Millis => "createdAt" [req],
        updated_at: Millis => "updatedAt" [req],
        inherit_parent_rules: bool => "inheritParentRules" [default(true)],
        rule_inheritance_mode: RuleInheritanceMode => "ruleInheritanceMode" [default(RuleInheritanceMode::Additive)],
    }
}

entity! {
    /// One column mapping of a file map (`mappings[]`).
    pub struct FieldMapping {
        source_field: String => "sourceField" [req],
        target_field: String => "targetField" [req],
        transformation: Option<String> => "transformation" [opt],
    }
}

entity! {
    /// A CSV field mapping configuration (`data/file_maps.json`).
    pub struct FileMap {
        file_map_id: String => "fileMapId" [req],
        user_id: Option<String> => "userId" [opt],
        name: String => "name" [req],
        mappings: Vec<FieldMapping> => "mappings" [req],
        account_id: Option<String> => "accountId" [opt],
        description: Option<String> => "description" [opt],
        reverse_amounts: bool => "reverseAmounts" [default(false)],
        created_at: Millis => "createdAt" [req],
        updated_at: Millis => "updatedAt" [req],
    }
}

entity! {
    /// The date range a statement file covers.
    pub struct DateRange {
        start_date: Millis => "startDate" [req],
        end_date: Millis => "endDate" [req],
    }
}

entity! {
    /// An original bank statement file's metadata (`data/transaction_files.json`). Its bytes
    /// travel in the package at `files/{fileId}/{fileName}`.
    pub struct TransactionFile {
        file_id: String => "fileId" [req],
        user_id: Option<String> => "userId" [opt],
        file_name: String => "fileName" [req],
        upload_date: Millis => "uploadDate" [req],
        file_size: u64 => "fileSize" [req],
        /// Where the bytes live in the owner's blob storage. In a package this is only where the
        /// bytes came from; a restore writes its own key.
        s3_key: Option<String> => "s3Key" [opt],
        processing_status: ProcessingStatus => "processingStatus" [req],
        processed_date: Option<Millis> => "processedDate" [opt],
        file_format: Option<FileFormat> => "fileFormat" [opt],
        account_id: Option<String> => "accountId" [opt],
        file_map_id: Option<String> => "fileMapId" [opt],
        record_count: Option<i64> => "recordCount" [opt],
        date_range: Option<DateRange> => "dateRange" [opt],
        error_message: Option<String> => "errorMessage" [opt],
        opening_balance: Option<Decimal> => "openingBalance" [opt],
        closing_balance: Option<Decimal> => "closingBalance" [opt],
        currency: Option<Currency> => "currency" [opt],
        duplicate_count: Option<i64> => "duplicateCount" [opt],
        transaction_count: Option<i64> => "transactionCount" [opt],
        created_at: Millis => "createdAt" [req],
        updated_at: Millis => "updatedAt" [req],
    }
}

entity! {
    /// A computed analytics record (`data/analytics.json`), HouseF3's `AnalyticsData`.
    pub struct AnalyticsRecord {
        user_id: Option<String> => "userId" [opt],
        analytic_type: AnalyticType => "analyticType" [req],
        time_period: String => "timePeriod" [req],
        account_id: Option<String> => "accountId" [opt],
        data: RawJson => "data" [req],
        computed_date: String => "computedDate" [req],
        data_through_date: String => "dataThroughDate" [req],
        ttl: Option<i64> => "ttl" [opt],
    }
}

impl AnalyticsRecord {
    /// The identity of an analytics record within one profile.
    pub fn key(&self) -> String {
        format!(
            "{}|{}|{}",
            self.analytic_type.as_str(),
            self.time_period,
            self.account_id.as_deref().unwrap_or("")
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn account_round_trip_keeps_extras_and_omits_none() {
        let text = r#"{"accountId":"e633081f-a7ca-4ba9-b18a-98cf35ef27eb","userId":"u1","accountName":"Girokonto Müller","accountType":"checking","balance":"6624.41","currency":"EUR","isActive":true,"createdAt":1654041600000,"updatedAt":1675414804000,"exportMetadata":{"exportedAt":"2026-11-21T10:55:44.477468+00:00","dataVersion":"1.0"}}"#;
        let a: Account = serde_json::from_str(text).unwrap();
        assert_eq!(a.balance.as_ref().map(|d| d.as_str()), Some("6624.41"));
        assert_eq!(a.extras.len(), 1);
        assert_eq!(serde_json::to_string(&a).unwrap(), text);
    }

    #[test]
    fn missing_required_field_is_named() {
        let err = serde_json::from_str::<Account>(
            r#"{"accountId":"x","accountType":"checking","createdAt":1,"updatedAt":2}"#,
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("accountName"), "{err}");
    }

    #[test]
    fn unknown_enum_is_refused_with_choices() {
        let err = serde_json::from_str::<AccountType>("\"brokerage\"")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("brokerage") && err.contains("credit_card"),
            "{err}"
        );
    }

    #[test]
    fn duplicate_keys_are_refused() {
        let err = serde_json::from_str::<DateRange>(r#"{"startDate":1,"startDate":2,"endDate":3}"#)
            .unwrap_err()
            .to_string();
        assert!(err.contains("duplicate"), "{err}");
    }

    #[test]
    fn transaction_hash_above_i64() {
        let t: Transaction = serde_json::from_str(r#"{"transactionId":"t","accountId":"a","date":1,"description":"d","amount":"-1.00","transactionHash":18446744073709551615,"createdAt":1,"updatedAt":1}"#).unwrap();
        assert_eq!(t.transaction_hash, Some(u64::MAX));
        assert!(t.categories.is_empty());
    }

    #[test]
    fn null_optional_reads_as_absent() {
        let f: FieldMapping =
            serde_json::from_str(r#"{"sourceField":"a","targetField":"b","transformation":null}"#)
                .unwrap();
        assert_eq!(f.transformation, None);
        assert_eq!(
            serde_json::to_string(&f).unwrap(),
            r#"{"sourceField":"a","targetField":"b"}"#
        );
    }

    #[test]
    fn score_accepts_whole_floats() {
        let s: Score = serde_json::from_str("95.0").unwrap();
        assert_eq!(s, Score(95));
        assert!(serde_json::from_str::<Score>("0.95").is_err());
    }

    #[test]
    fn confidence_keeps_the_number_as_written() {
        for text in [
            "95", "0", "100", "0.95", "95.0", "9.5e1", "0.950", "-0", "1E400",
        ] {
            let json = format!(
                r#"{{"categoryId":"c","confidence":{text},"status":"suggested","isManual":false,"assignedAt":1}}"#
            );
            let a: CategoryAssignment = serde_json::from_str(&json).unwrap();
            assert_eq!(a.confidence.text(), text);
            assert_eq!(serde_json::to_string(&a).unwrap(), json, "{text}");
            // Through a `Value` too (as tests build them), where it holds the number.
            let Ok(v) = serde_json::from_str::<serde_json::Value>(&json) else {
                continue;
            };
            let b: CategoryAssignment = serde_json::from_value(v).unwrap();
            assert_eq!(b.confidence.value(), a.confidence.value(), "{text}");
        }
        let whole: Confidence = serde_json::from_str("95").unwrap();
        assert_eq!(whole, Confidence::whole(95));
        assert_eq!(whole.as_whole(), Some(95));
        let frac: Confidence = serde_json::from_str("0.95").unwrap();
        assert_eq!(frac.as_whole(), None);
        assert_eq!(frac.value(), 0.95);
        assert_ne!(frac, Confidence::parse("0.950").unwrap());
        for bad in [r#""95""#, "true", "null", "[1]"] {
            let err = serde_json::from_str::<Confidence>(bad).unwrap_err();
            assert!(err.to_string().contains("not a number"), "{bad}: {err}");
        }
    }

    #[test]
    fn currency_codes() {
        assert!(Currency::parse("KWD").is_some());
        assert!(Currency::parse("other").is_some());
        assert!(Currency::parse("usd").is_none());
        assert_eq!(Currency::parse("JPY").map(|c| c.minor_digits()), Some(0));
    }
}
