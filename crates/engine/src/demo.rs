//! A realistic, deterministic demo profile.
//!
//! For a seed and sizes the profile is always the same, byte for byte: accounts of every type in
//! several currencies (JPY with no decimals; Kuwaiti dinars with three, in HouseF3's `other`, since
//! demo profiles use only the currency codes HouseF3 knows), a three-level category hierarchy
//! with rules of every condition, CSV file maps, statement files whose bytes are real-looking CSV
//! and OFX rendered from their transactions, and transactions with memos, check numbers, FIT ids,
//! suggested and confirmed category assignments, negative amounts and non-ASCII descriptions.
//!
//! Everything is written in one store transaction, like a restore; statement files stream
//! through a temporary file, so memory does not grow with the profile.

use std::io::{BufWriter, Seek, SeekFrom, Write};
use std::time::Instant;

use fzip_model::{
    Account, AccountType, AssignmentStatus, Category, CategoryAssignment, CategoryRule,
    CategoryType, Confidence, Currency, DateRange, Decimal, Extras, FieldMapping, FileFormat,
    FileMap, ProcessingStatus, RuleCondition, RuleInheritanceMode, Score, Transaction,
    TransactionFile, transaction_hash,
};
use fzip_store::{BlobStore, ProfileWriter, StoredFile};
use rand_chacha::ChaCha8Rng;
use rand_chacha::rand_core::{Rng, SeedableRng};
use serde::Serialize;

use crate::Engine;
use crate::backup::batch_prefix;
use crate::error::EngineError;
use crate::progress::Progress;

/// Sizes and seed of a demo profile.
#[derive(Clone, Copy, Debug)]
pub struct DemoOptions {
    pub transactions: u64,
    pub files: u64,
    pub seed: u64,
}

impl Default for DemoOptions {
    fn default() -> Self {
        DemoOptions {
            transactions: 2_000,
            files: 10,
            seed: 1,
        }
    }
}

/// What was created.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DemoReport {
    pub user_id: String,
    pub seed: u64,
    pub accounts: u64,
    pub categories: u64,
    pub category_rules: u64,
    pub file_maps: u64,
    pub transaction_files: u64,
    pub transactions: u64,
    pub analytics: u64,
    pub file_bytes: u64,
    pub duration_ms: u64,
}

/// 2022-01-01T00:00:00Z: every date of the demo counts from here, so it does not depend on today.
const EPOCH_2022: i64 = 1_640_995_200_000;
const DAY: i64 = 86_400_000;

struct Gen {
    rng: ChaCha8Rng,
}

impl Gen {
    fn below(&mut self, n: u64) -> u64 {
        if n == 0 {
            return 0;
        }
        ((self.rng.next_u64() as u128 * n as u128) >> 64) as u64
    }
    fn range(&mut self, lo: i64, hi: i64) -> i64 {
        lo + self.below((hi - lo).max(1) as u64) as i64
    }
    fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len() as u64) as usize]
    }
    fn uuid(&mut self) -> String {
        let mut bytes = [0u8; 16];
        bytes[..8].copy_from_slice(&self.rng.next_u64().to_le_bytes());
        bytes[8..].copy_from_slice(&self.rng.next_u64().to_le_bytes());
        uuid::Builder::from_random_bytes(bytes)
            .into_uuid()
            .to_string()
    }
    fn hex8(&mut self) -> String {
        format!("{:08x}", self.rng.next_u64() as u32)
    }
}

struct AccountSpec {
    name: &'static str,
    kind: AccountType,
    institution: Option<&'static str>,
    currency: &'static str,
    locale: Locale,
    format: FileFormat,
}

impl AccountSpec {
    /// Digits after the decimal point in this account's amounts: its currency's, or the three
    /// of the Kuwaiti account's dinars.
    fn digits(&self) -> u32 {
        match self.locale {
            Locale::Kw => 3,
            _ => Currency::parse(self.currency).map_or(2, |c| c.minor_digits()),
        }
    }
}

#[derive(Clone, Copy, PartialEq)]
enum Locale {
    Us,
    De,
    Fr,
    Uk,
    Jp,
    Ch,
    Kw,
    Ca,
}

const ACCOUNTS: &[AccountSpec] = &[
    AccountSpec {
        name: "Everyday Checking",
        kind: AccountType::Checking,
        institution: Some("Chase"),
        currency: "USD",
        locale: Locale::Us,
        format: FileFormat::Csv,
    },
    AccountSpec {
        name: "Girokonto Müller",
        kind: AccountType::Checking,
        institution: Some("Sparkasse Köln-Bonn"),
        currency: "EUR",
        locale: Locale::De,
        format: FileFormat::Csv,
    },
    AccountSpec {
        name: "High-Yield Savings",
        kind: AccountType::Savings,
        institution: Some("Ally Bank"),
        currency: "USD",
        locale: Locale::Us,
        format: FileFormat::Ofx,
    },
    AccountSpec {
        name: "Livret A — Épargne",
        kind: AccountType::Savings,
        institution: Some("La Banque Postale"),
        currency: "EUR",
        locale: Locale::Fr,
        format: FileFormat::Csv,
    },
    AccountSpec {
        name: "Sapphire Preferred ✈️",
        kind: AccountType::CreditCard,
        institution: Some("JPMorgan Chase"),
        currency: "USD",
        locale: Locale::Us,
        format: FileFormat::Ofx,
    },
    AccountSpec {
        name: "楽天カード",
        kind: AccountType::CreditCard,
        institution: Some("楽天カード株式会社"),
        currency: "JPY",
        locale: Locale::Jp,
        format: FileFormat::Csv,
    },
    AccountSpec {
        name: "Brokerage Cash",
        kind: AccountType::Investment,
        institution: Some("Fidelity"),
        currency: "USD",
        locale: Locale::Us,
        format: FileFormat::Ofx,
    },
    AccountSpec {
        name: "Depot Zürich",
        kind: AccountType::Investment,
        institution: Some("UBS"),
        currency: "CHF",
        locale: Locale::Ch,
        format: FileFormat::Csv,
    },
    AccountSpec {
        name: "Mortgage",
        kind: AccountType::Loan,
        institution: Some("Nationwide"),
        currency: "GBP",
        locale: Locale::Uk,
        format: FileFormat::Ofx,
    },
    AccountSpec {
        name: "Car Loan",
        kind: AccountType::Loan,
        institution: Some("TD Canada Trust"),
        currency: "CAD",
        locale: Locale::Ca,
        format: FileFormat::Csv,
    },
    AccountSpec {
        name: "Kuwait Salary Account",
        kind: AccountType::Other,
        institution: Some("National Bank of Kuwait"),
        // Kuwaiti dinars, in HouseF3's `other` (its currency enum has no KWD): three decimals.
        currency: "other",
        locale: Locale::Kw,
        format: FileFormat::Csv,
    },
    AccountSpec {
        name: "Cash Wallet 財布",
        kind: AccountType::Other,
        institution: None,
        currency: "JPY",
        locale: Locale::Jp,
        format: FileFormat::Csv,
    },
];

fn merchants(locale: Locale) -> &'static [&'static str] {
    match locale {
        Locale::Us => &[
            "AMAZON MKTPLACE PMTS",
            "WHOLE FOODS MARKET #10234",
            "SHELL OIL 57442",
            "STARBUCKS STORE 08831",
            "NETFLIX.COM",
            "UBER *TRIP",
            "CVS/PHARMACY #2931",
            "COMCAST CABLE",
            "TRADER JOE'S #552",
            "Blue Bottle Coffee",
            "DELTA AIR LINES",
            "APPLE.COM/BILL",
            "Chipotle 1123",
            "COSTCO WHSE #0451",
        ],
        Locale::De => &[
            "REWE Markt GmbH",
            "LIDL sagt Danke",
            "Müller Drogerie",
            "Deutsche Bahn Fahrkarte",
            "Bäckerei Schäfer",
            "Telekom Deutschland",
            "Stadtwerke Köln Strom",
            "Kartenzahlung Aral Tankstelle",
            "Apotheke am Dom",
            "Spotify AB",
            "Miete Wohnung Müllerstraße 12",
        ],
        Locale::Fr => &[
            "Carrefour Market Nîmes",
            "Café de Flore Paris",
            "SNCF Voyageurs",
            "Boulangerie Pâtisserie Émile",
            "Loyer Appartement — Virement SEPA",
            "Free Mobile",
            "Pharmacie Côté Seine",
            "Monoprix Châtelet",
        ],
        Locale::Uk => &[
            "TESCO STORES 3297",
            "Pret A Manger",
            "TfL Travel Charge",
            "Sainsbury's S/MKT",
            "British Gas",
            "Greggs plc",
            "MORTGAGE PAYMENT — Nationwide",
        ],
        Locale::Jp => &[
            "セブン-イレブン 渋谷店",
            "ローソン 新宿三丁目",
            "寿司 Sushi Zanmai 築地",
            "JR東日本 Suica チャージ",
            "ユニクロ 銀座店",
            "スターバックス 表参道",
            "Amazon.co.jp",
            "東京電力 電気料金",
        ],
        Locale::Ch => &[
            "Migros Zürich HB",
            "Coop Pronto",
            "SBB CFF FFS Billett",
            "Sprüngli Confiseur",
            "Swisscom Rechnung",
            "Dividende Nestlé SA",
        ],
        Locale::Kw => &[
            "Sultan Center — Salmiya",
            "Alghanim Electronics",
            "KNPC Fuel Station",
            "Talabat طلبات",
            "Zain Kuwait",
            "Avenues Mall — H&M",
        ],
        Locale::Ca => &[
            "Tim Hortons #2231",
            "LOBLAWS 1044",
            "PETRO-CANADA 88213",
            "Société de transport de Montréal",
            "Car Loan Payment — TD",
            "Canadian Tire #0152",
        ],
    }
}

fn income(locale: Locale) -> &'static str {
    match locale {
        Locale::De => "Gehalt ACME GmbH",
        Locale::Fr => "Virement Salaire — Société Générale",
        Locale::Jp => "給与振込 株式会社サンプル",
        Locale::Kw => "PAYROLL — Kuwait Petroleum Corp.",
        Locale::Ch => "Lohnzahlung Novartis AG",
        _ => "PAYROLL DIRECT DEPOSIT ACME CORP",
    }
}

/// A rule of a demo category: field, condition, value, amountMin, amountMax.
type RuleSpec = (
    &'static str,
    RuleCondition,
    &'static str,
    Option<&'static str>,
    Option<&'static str>,
);

/// A demo file map: name, mappings (source, target, transformation), description, reverse.
type MapSpec<'a> = (
    &'a str,
    &'a [(&'a str, &'a str, Option<&'a str>)],
    Option<&'a str>,
    bool,
);

struct CategorySpec {
    name: &'static str,
    kind: CategoryType,
    icon: Option<&'static str>,
    color: Option<&'static str>,
    parent: Option<usize>,
    rules: &'static [RuleSpec],
}

use RuleCondition as C;

const CATEGORIES: &[CategorySpec] = &[
    // 0
    CategorySpec {
        name: "Income",
        kind: CategoryType::Income,
        icon: Some("💰"),
        color: Some("#2E7D32"),
        parent: None,
        rules: &[],
    },
    CategorySpec {
        name: "Salary",
        kind: CategoryType::Income,
        icon: Some("🏢"),
        color: Some("#388E3C"),
        parent: Some(0),
        rules: &[
            ("description", C::Contains, "PAYROLL", None, None),
            ("description", C::StartsWith, "Gehalt", None, None),
        ],
    },
    CategorySpec {
        name: "Interest & Dividends",
        kind: CategoryType::Income,
        icon: Some("📈"),
        color: None,
        parent: Some(0),
        rules: &[(
            "description",
            C::Regex,
            "(?i)(interest|dividende)",
            None,
            None,
        )],
    },
    // 3
    CategorySpec {
        name: "Housing",
        kind: CategoryType::Expense,
        icon: Some("🏠"),
        color: Some("#5D4037"),
        parent: None,
        rules: &[],
    },
    CategorySpec {
        name: "Rent & Mortgage",
        kind: CategoryType::Expense,
        icon: None,
        color: Some("#6D4C41"),
        parent: Some(3),
        rules: &[
            ("description", C::Contains, "Miete", None, None),
            ("description", C::Contains, "MORTGAGE", None, None),
            (
                "amount",
                C::AmountGreater,
                "large-payment",
                Some("1000.00"),
                None,
            ),
        ],
    },
    CategorySpec {
        name: "Utilities",
        kind: CategoryType::Expense,
        icon: Some("💡"),
        color: None,
        parent: Some(3),
        rules: &[],
    },
    CategorySpec {
        name: "Electricity",
        kind: CategoryType::Expense,
        icon: Some("⚡"),
        color: None,
        parent: Some(5),
        rules: &[(
            "description",
            C::Regex,
            "(?i)(strom|电力|電気|british gas)",
            None,
            None,
        )],
    },
    CategorySpec {
        name: "Internet & Phone",
        kind: CategoryType::Expense,
        icon: Some("📶"),
        color: None,
        parent: Some(5),
        rules: &[
            ("description", C::Equals, "COMCAST CABLE", None, None),
            ("description", C::EndsWith, "Mobile", None, None),
        ],
    },
    // 8
    CategorySpec {
        name: "Food & Drink",
        kind: CategoryType::Expense,
        icon: Some("🍽️"),
        color: Some("#F9A825"),
        parent: None,
        rules: &[],
    },
    CategorySpec {
        name: "Groceries",
        kind: CategoryType::Expense,
        icon: Some("🛒"),
        color: None,
        parent: Some(8),
        rules: &[
            ("description", C::Contains, "LIDL", None, None),
            ("description", C::Contains, "Carrefour", None, None),
            ("description", C::StartsWith, "Migros", None, None),
        ],
    },
    CategorySpec {
        name: "Restaurants",
        kind: CategoryType::Expense,
        icon: Some("🍣"),
        color: None,
        parent: Some(8),
        rules: &[("description", C::Contains, "Sushi", None, None)],
    },
    CategorySpec {
        name: "Coffee",
        kind: CategoryType::Expense,
        icon: Some("☕"),
        color: Some("#795548"),
        parent: Some(10),
        rules: &[
            ("description", C::EndsWith, "Coffee", None, None),
            ("description", C::Contains, "STARBUCKS", None, None),
        ],
    },
    // 12
    CategorySpec {
        name: "Transport",
        kind: CategoryType::Expense,
        icon: Some("🚆"),
        color: Some("#1565C0"),
        parent: None,
        rules: &[],
    },
    CategorySpec {
        name: "Fuel",
        kind: CategoryType::Expense,
        icon: Some("⛽"),
        color: None,
        parent: Some(12),
        rules: &[(
            "description",
            C::Regex,
            "(?i)(shell|aral|petro|knpc)",
            None,
            None,
        )],
    },
    CategorySpec {
        name: "Public Transit",
        kind: CategoryType::Expense,
        icon: Some("🚇"),
        color: None,
        parent: Some(12),
        rules: &[
            ("description", C::Contains, "Bahn", None, None),
            ("description", C::Contains, "SNCF", None, None),
        ],
    },
    // 15
    CategorySpec {
        name: "Shopping",
        kind: CategoryType::Expense,
        icon: Some("🛍️"),
        color: Some("#AD1457"),
        parent: None,
        rules: &[("description", C::Contains, "AMAZON", None, None)],
    },
    CategorySpec {
        name: "Health",
        kind: CategoryType::Expense,
        icon: Some("⚕️"),
        color: None,
        parent: None,
        rules: &[("description", C::Regex, "(?i)(pharma|apothek)", None, None)],
    },
    CategorySpec {
        name: "Entertainment",
        kind: CategoryType::Expense,
        icon: Some("🎬"),
        color: Some("#6A1B9A"),
        parent: None,
        rules: &[],
    },
    CategorySpec {
        name: "Streaming",
        kind: CategoryType::Expense,
        icon: Some("📺"),
        color: None,
        parent: Some(17),
        rules: &[
            (
                "amount",
                C::AmountBetween,
                "subscription",
                Some("5.00"),
                Some("20.00"),
            ),
            ("description", C::Equals, "NETFLIX.COM", None, None),
        ],
    },
    // 19
    CategorySpec {
        name: "Bank Fees",
        kind: CategoryType::Expense,
        icon: Some("🏦"),
        color: None,
        parent: None,
        rules: &[
            ("amount", C::AmountLess, "small-fee", None, Some("5.00")),
            ("memo", C::Contains, "Gebühr", None, None),
        ],
    },
    CategorySpec {
        name: "Transfers",
        kind: CategoryType::Transfer,
        icon: Some("🔁"),
        color: Some("#455A64"),
        parent: None,
        rules: &[],
    },
    CategorySpec {
        name: "Card Payments",
        kind: CategoryType::Transfer,
        icon: None,
        color: None,
        parent: Some(20),
        rules: &[(
            "description",
            C::StartsWith,
            "Payment Thank You",
            None,
            None,
        )],
    },
    CategorySpec {
        name: "Loan Payments",
        kind: CategoryType::Transfer,
        icon: None,
        color: None,
        parent: Some(20),
        rules: &[("description", C::Contains, "Loan Payment", None, None)],
    },
];

/// Fills `user`'s empty profile with a demo profile.
pub fn demo_profile(
    engine: &Engine,
    user: &str,
    options: &DemoOptions,
    progress: &dyn Progress,
) -> Result<DemoReport, EngineError> {
    let started = Instant::now();
    let batch = format!("demo-{}", options.seed);
    let _lease = crate::batch::BatchLease::acquire(&engine.blobs, &batch_prefix(user, &batch))?;
    let mut tx = engine.store.begin_restore(user)?;
    let result = fill(engine, user, &batch, options, tx.as_mut(), progress);
    let result = result.and_then(|report| {
        tx.commit()?;
        Ok(report)
    });
    match result {
        Ok(mut report) => {
            report.duration_ms = started.elapsed().as_millis() as u64;
            Ok(report)
        }
        Err(e) => {
            let _ = engine.blobs.delete_prefix(&batch_prefix(user, &batch));
            Err(e)
        }
    }
}

fn fill(
    engine: &Engine,
    user: &str,
    batch: &str,
    options: &DemoOptions,
    tx: &mut dyn ProfileWriter,
    progress: &dyn Progress,
) -> Result<DemoReport, EngineError> {
    let mut g = Gen {
        rng: ChaCha8Rng::seed_from_u64(options.seed),
    };
    let owner = Some(user.to_string());

    // File maps.
    let map_specs: [MapSpec<'_>; 3] = [
        (
            "Chase CSV (Date, Description, Amount)",
            &[
                ("Transaction Date", "date", None),
                ("Description", "description", None),
                ("Amount", "amount", None),
                ("Memo", "memo", None),
            ],
            Some("Comma-separated, US dates, negative amounts are debits"),
            false,
        ),
        (
            "Sparkasse CSV-CAMT (Buchungstag; Betrag)",
            &[
                ("Buchungstag", "date", None),
                (
                    "Beguenstigter/Zahlungspflichtiger",
                    "description",
                    Some("value.strip()"),
                ),
                ("Betrag", "amount", None),
                ("Saldo", "balance", None),
                ("Verwendungszweck", "memo", None),
            ],
            Some("Semikolon-getrennt, Dezimalkomma, UTF-8 mit BOM"),
            false,
        ),
        (
            "Generic CSV — Datum/Beschreibung/Betrag",
            &[
                ("Datum", "date", None),
                ("Beschreibung", "description", None),
                ("Betrag", "amount", Some("-value")),
            ],
            None,
            true,
        ),
    ];
    let mut file_maps = Vec::new();
    for (i, (name, mappings, description, reverse)) in map_specs.iter().enumerate() {
        let created = EPOCH_2022 - 200 * DAY + i as i64 * DAY;
        file_maps.push(FileMap {
            file_map_id: g.uuid(),
            user_id: owner.clone(),
            name: name.to_string(),
            mappings: mappings
                .iter()
                .map(|(s, t, x)| FieldMapping {
                    source_field: s.to_string(),
                    target_field: t.to_string(),
                    transformation: x.map(str::to_string),
                    extras: Extras::new(),
                })
                .collect(),
            account_id: None,
            description: description.map(str::to_string),
            reverse_amounts: *reverse,
            created_at: created,
            updated_at: created + DAY,
            extras: Extras::new(),
        });
    }

    // Accounts.
    let mut accounts = Vec::new();
    for (i, spec) in ACCOUNTS.iter().enumerate() {
        let currency = Currency::parse(spec.currency);
        let created = EPOCH_2022 - 180 * DAY + i as i64 * 3_600_000;
        let default_map = match (spec.format, spec.locale) {
            (FileFormat::Csv, Locale::De) => Some(file_maps[1].file_map_id.clone()),
            (FileFormat::Csv, Locale::Us | Locale::Ca) => Some(file_maps[0].file_map_id.clone()),
            _ => None,
        };
        accounts.push(Account {
            account_id: g.uuid(),
            user_id: owner.clone(),
            account_name: spec.name.to_string(),
            account_type: spec.kind,
            institution: spec.institution.map(str::to_string),
            balance: None,
            currency,
            notes: match i {
                1 => Some("Hauptkonto — Gehalt & Miete".into()),
                5 => Some("ポイント還元 1%".into()),
                10 => Some("Kuwaiti dinars (KWD), three decimals: 1 KWD = 1000 fils".into()),
                _ => None,
            },
            is_active: i != 9,
            default_file_map_id: default_map,
            first_transaction_date: None,
            last_transaction_date: None,
            imports_start_date: None,
            imports_end_date: None,
            created_at: created,
            updated_at: created,
            extras: Extras::new(),
        });
    }
    file_maps[1].account_id = Some(accounts[1].account_id.clone());
    file_maps[0].account_id = Some(accounts[0].account_id.clone());

    // Categories.
    let mut categories: Vec<Category> = Vec::new();
    for (i, spec) in CATEGORIES.iter().enumerate() {
        let created = EPOCH_2022 - 150 * DAY + i as i64 * 60_000;
        let id = g.uuid();
        let rules = spec
            .rules
            .iter()
            .enumerate()
            .map(|(r, (field, condition, value, min, max))| CategoryRule {
                rule_id: format!("rule_{}", g.hex8()),
                field_to_match: field.to_string(),
                condition: *condition,
                value: value.to_string(),
                case_sensitive: r % 3 == 1,
                priority: Score(10 + (r as i32 * 20) % 90),
                enabled: !(i == 16 && r == 0),
                confidence: Score(if r == 0 { 100 } else { 80 }),
                amount_min: min.and_then(|m| Decimal::parse(m).ok()),
                amount_max: max.and_then(|m| Decimal::parse(m).ok()),
                allow_multiple_matches: r % 2 == 0,
                auto_suggest: true,
                extras: Extras::new(),
            })
            .collect();
        categories.push(Category {
            user_id: owner.clone(),
            name: spec.name.to_string(),
            category_type: spec.kind,
            category_id: id,
            parent_category_id: spec.parent.map(|p| categories[p].category_id.clone()),
            icon: spec.icon.map(str::to_string),
            color: spec.color.map(str::to_string),
            rules,
            created_at: created,
            updated_at: created + 7 * DAY,
            inherit_parent_rules: i % 5 != 4,
            rule_inheritance_mode: match i % 7 {
                3 => RuleInheritanceMode::Override,
                6 => RuleInheritanceMode::Disabled,
                _ => RuleInheritanceMode::Additive,
            },
            extras: Extras::new(),
        });
    }
    let leaf_categories: Vec<usize> = (0..categories.len())
        .filter(|&i| !CATEGORIES.iter().any(|c| c.parent == Some(i)))
        .collect();

    // Statement files and their transactions, one file at a time.
    let files = options.files;
    if files == 0 && options.transactions > 0 {
        return Err(EngineError::Other(
            "--files must be at least 1 when there are transactions: every transaction comes from a statement file".into(),
        ));
    }
    let files = files.max(1);
    let per_file = options.transactions / files;
    let extra = options.transactions % files;
    progress.phase("generating_transactions", options.transactions);
    let mut stored: Vec<StoredFile> = Vec::new();
    let mut total_tx = 0u64;
    let mut file_bytes = 0u64;
    let mut balances: Vec<i64> = ACCOUNTS.iter().map(|_| 0).collect();
    let mut spill = tempfile::tempfile()?;
    for f in 0..options.files {
        if progress.is_cancelled() {
            return Err(EngineError::Cancelled);
        }
        let a = (f as usize) % ACCOUNTS.len();
        let spec = &ACCOUNTS[a];
        let account = &accounts[a];
        let digits = spec.digits();
        let n = per_file + u64::from(f < extra);
        // Statements spread over three years; each account's statements follow each other.
        let month = (f * 36 / files) as i64;
        let start = EPOCH_2022 + month * 30 * DAY;
        let span = 30 * DAY;
        let file_id = g.uuid();
        let upload = start + span + 2 * DAY + g.range(0, 8 * 3_600_000);
        let format = spec.format;
        let ext = match format {
            FileFormat::Ofx => "ofx",
            _ => "csv",
        };
        let date_label = chrono::DateTime::from_timestamp_millis(start)
            .unwrap_or_default()
            .format("%Y-%m")
            .to_string();
        let file_name = match spec.locale {
            Locale::De => format!("Umsätze_Girokonto_{date_label}.{ext}"),
            Locale::Fr => format!("Relevé_{date_label}.{ext}"),
            Locale::Jp => format!("利用明細_{date_label}.{ext}"),
            _ => format!(
                "{}_Activity_{date_label}.{ext}",
                spec.name.split_whitespace().next().unwrap_or("Bank")
            ),
        };
        let opening = balances[a];
        let mut dates: Vec<i64> = (0..n).map(|_| start + g.range(0, span)).collect();
        dates.sort_unstable();

        // Render the statement while generating the transactions.
        spill.set_len(0)?;
        spill.seek(SeekFrom::Start(0))?;
        let mut out = BufWriter::with_capacity(256 * 1024, &mut spill);
        let mut statement = Statement::new(format, spec.locale, digits);
        statement.header(&mut out, account, opening)?;
        let mut batch_rows: Vec<Transaction> = Vec::with_capacity(1000);
        let mut duplicates = 0i64;
        for (i, date) in dates.iter().enumerate() {
            let expense = !g.chance(12);
            let (description, amount_units) = if expense {
                let m = *g.pick(merchants(spec.locale));
                let magnitude = match digits {
                    0 => g.range(100, 25_000),
                    3 => g.range(250, 95_000),
                    _ => g.range(99, 45_000),
                };
                (m.to_string(), -magnitude)
            } else {
                let magnitude = match digits {
                    0 => g.range(150_000, 450_000),
                    3 => g.range(800_000, 2_400_000),
                    _ => g.range(150_000, 650_000),
                };
                (income(spec.locale).to_string(), magnitude)
            };
            balances[a] += amount_units;
            let amount = Decimal::from_minor(amount_units, digits);
            let balance = Decimal::from_minor(balances[a], digits);
            let status = if g.chance(2) {
                duplicates += 1;
                "duplicate"
            } else {
                "new"
            };
            let created = upload + 4_000 + i as i64;
            let mut categories_of_tx = Vec::new();
            let mut primary = None;
            let roll = g.below(100);
            if roll < 40 {
                let cat = &categories[*g.pick(&leaf_categories)];
                let manual = g.chance(30);
                let assigned = created + 1_000;
                categories_of_tx.push(CategoryAssignment {
                    category_id: cat.category_id.clone(),
                    confidence: Confidence::whole(if manual {
                        100
                    } else {
                        70 + g.below(30) as i32
                    }),
                    status: AssignmentStatus::Confirmed,
                    is_manual: manual,
                    assigned_at: assigned,
                    confirmed_at: Some(assigned + g.range(DAY, 20 * DAY)),
                    rule_id: if manual {
                        None
                    } else {
                        cat.rules.first().map(|r| r.rule_id.clone())
                    },
                    extras: Extras::new(),
                });
                primary = Some(cat.category_id.clone());
            } else if roll < 75 {
                for _ in 0..(1 + g.below(2)) {
                    let cat = &categories[*g.pick(&leaf_categories)];
                    if categories_of_tx
                        .iter()
                        .any(|c: &CategoryAssignment| c.category_id == cat.category_id)
                    {
                        continue;
                    }
                    categories_of_tx.push(CategoryAssignment {
                        category_id: cat.category_id.clone(),
                        confidence: Confidence::whole(40 + g.below(55) as i32),
                        status: AssignmentStatus::Suggested,
                        is_manual: false,
                        assigned_at: created + 1_000,
                        confirmed_at: None,
                        rule_id: cat.rules.first().map(|r| r.rule_id.clone()),
                        extras: Extras::new(),
                    });
                }
            }
            let check_number = (spec.kind == AccountType::Checking && expense && g.chance(3))
                .then(|| (1000 + g.below(9000)).to_string());
            let memo = g.chance(40).then(|| match spec.locale {
                Locale::De => format!("Kartenzahlung girocard {}", g.hex8().to_uppercase()),
                Locale::Fr => format!("Paiement CB {} — réf. {}", &date_label, g.below(99_999)),
                Locale::Jp => format!("ご利用店舗 {}", g.below(9999)),
                _ => format!("POS {} REF#{}", g.below(9999), g.hex8()),
            });
            let fit_id = (format == FileFormat::Ofx)
                .then(|| format!("{}{:010}", date_label.replace('-', ""), total_tx + i as u64));
            let currency = Currency::parse(spec.currency);
            let hash = transaction_hash(&account.account_id, *date, &amount, &description);
            let t = Transaction {
                user_id: owner.clone(),
                file_id: Some(file_id.clone()),
                transaction_id: g.uuid(),
                account_id: account.account_id.clone(),
                date: *date,
                description,
                amount,
                currency,
                balance: Some(balance),
                import_order: Some(i as i64 + 1),
                transaction_type: Some(
                    if check_number.is_some() {
                        "CHECK"
                    } else if expense {
                        "DEBIT"
                    } else {
                        "CREDIT"
                    }
                    .to_string(),
                ),
                memo,
                check_number,
                fit_id,
                status: Some(status.to_string()),
                status_date: Some(format!("{status}#{date}")),
                created_at: created,
                updated_at: if categories_of_tx.iter().any(|c| c.confirmed_at.is_some()) {
                    categories_of_tx[0].confirmed_at.unwrap_or(created)
                } else {
                    created
                },
                transaction_hash: Some(hash),
                categories: categories_of_tx,
                primary_category_id: primary,
                extras: Extras::new(),
            };
            statement.row(&mut out, &t)?;
            batch_rows.push(t);
            if batch_rows.len() == 1000 {
                tx.insert_transactions(&batch_rows)?;
                progress.advance(batch_rows.len() as u64);
                batch_rows.clear();
            }
        }
        if !batch_rows.is_empty() {
            tx.insert_transactions(&batch_rows)?;
            progress.advance(batch_rows.len() as u64);
        }
        statement.footer(&mut out, balances[a], start + span)?;
        out.flush()?;
        drop(out);
        total_tx += n;

        spill.seek(SeekFrom::Start(0))?;
        let key = BlobStore::file_key(user, batch, &file_id);
        let (size, digest) = engine.blobs.put_reader(&key, &mut spill)?;
        file_bytes += size;
        let currency = Currency::parse(spec.currency);
        stored.push(StoredFile {
            file: TransactionFile {
                file_id,
                user_id: owner.clone(),
                file_name,
                upload_date: upload,
                file_size: size,
                s3_key: Some(key),
                processing_status: ProcessingStatus::Processed,
                processed_date: Some(upload + 4_000),
                file_format: Some(format),
                account_id: Some(account.account_id.clone()),
                file_map_id: account.default_file_map_id.clone(),
                record_count: Some(n as i64),
                date_range: (!dates.is_empty()).then(|| DateRange {
                    start_date: dates[0],
                    end_date: dates[dates.len() - 1],
                    extras: Extras::new(),
                }),
                error_message: None,
                opening_balance: Some(Decimal::from_minor(opening, digits)),
                closing_balance: Some(Decimal::from_minor(balances[a], digits)),
                currency,
                duplicate_count: Some(duplicates),
                transaction_count: Some(n as i64),
                created_at: upload,
                updated_at: upload + 4_000,
                extras: Extras::new(),
            },
            content_sha256: Some(digest),
            content_size: Some(size),
        });
    }

    // Account balances and dates follow from their transactions.
    for (i, account) in accounts.iter_mut().enumerate() {
        let digits = ACCOUNTS[i].digits();
        account.balance = Some(Decimal::from_minor(balances[i], digits));
        let own: Vec<&StoredFile> = stored
            .iter()
            .filter(|s| s.file.account_id.as_deref() == Some(account.account_id.as_str()))
            .collect();
        account.first_transaction_date = own
            .iter()
            .filter_map(|s| s.file.date_range.as_ref().map(|r| r.start_date))
            .min();
        account.last_transaction_date = own
            .iter()
            .filter_map(|s| s.file.date_range.as_ref().map(|r| r.end_date))
            .max();
        account.imports_start_date = account.first_transaction_date;
        account.imports_end_date = account.last_transaction_date;
        if let Some(last) = own.iter().map(|s| s.file.updated_at).max() {
            account.updated_at = last;
        }
    }

    tx.insert_file_maps(&file_maps)?;
    tx.insert_accounts(&accounts)?;
    tx.insert_categories(&categories)?;
    tx.insert_transaction_files(&stored)?;
    progress.phase("computing_analytics", 0);
    let analytics = crate::analytics::recompute_in(tx, user)?;
    Ok(DemoReport {
        user_id: user.to_string(),
        seed: options.seed,
        accounts: accounts.len() as u64,
        categories: categories.len() as u64,
        category_rules: categories.iter().map(|c| c.rules.len() as u64).sum(),
        file_maps: file_maps.len() as u64,
        transaction_files: stored.len() as u64,
        transactions: total_tx,
        analytics,
        file_bytes,
        duration_ms: 0,
    })
}

/// Renders a statement file.
struct Statement {
    format: FileFormat,
    locale: Locale,
    digits: u32,
}

impl Statement {
    fn new(format: FileFormat, locale: Locale, digits: u32) -> Self {
        Statement {
            format,
            locale,
            digits,
        }
    }

    fn money(&self, units: i64) -> String {
        let d = Decimal::from_minor(units, self.digits);
        if self.locale == Locale::De || self.locale == Locale::Fr {
            d.as_str().replace('.', ",")
        } else {
            d.as_str().to_string()
        }
    }

    fn header(
        &mut self,
        out: &mut impl Write,
        account: &Account,
        opening: i64,
    ) -> std::io::Result<()> {
        match self.format {
            FileFormat::Ofx => write!(
                out,
                "OFXHEADER:100\r\nDATA:OFXSGML\r\nVERSION:102\r\nSECURITY:NONE\r\nENCODING:USASCII\r\nCHARSET:1252\r\nCOMPRESSION:NONE\r\nOLDFILEUID:NONE\r\nNEWFILEUID:NONE\r\n\r\n<OFX>\r\n<SIGNONMSGSRSV1><SONRS><STATUS><CODE>0<SEVERITY>INFO</STATUS><LANGUAGE>ENG</SONRS></SIGNONMSGSRSV1>\r\n<BANKMSGSRSV1><STMTTRNRS><TRNUID>1<STMTRS><CURDEF>{}\r\n<BANKACCTFROM><ACCTID>{}<ACCTTYPE>CHECKING</BANKACCTFROM>\r\n<!-- opening balance {} -->\r\n<BANKTRANLIST>\r\n",
                account.currency.as_ref().map_or("USD", |c| c.as_str()),
                &account.account_id[..8],
                self.money(opening)
            ),
            _ if self.locale == Locale::De || self.locale == Locale::Fr => {
                out.write_all("\u{feff}".as_bytes())?;
                writeln!(
                    out,
                    "Auftragskonto;Buchungstag;Valutadatum;Buchungstext;Verwendungszweck;Beguenstigter/Zahlungspflichtiger;Betrag;Saldo;Waehrung"
                )
            }
            _ if self.locale == Locale::Jp => writeln!(
                out,
                "利用日,利用店名・商品名,利用者,支払方法,利用金額,残高,備考"
            ),
            _ => writeln!(
                out,
                "Transaction Date,Post Date,Description,Category,Type,Amount,Balance,Memo"
            ),
        }
    }

    fn row(&mut self, out: &mut impl Write, t: &Transaction) -> std::io::Result<()> {
        let date = chrono::DateTime::from_timestamp_millis(t.date).unwrap_or_default();
        let units = |d: &Decimal| d.as_str().to_string();
        match self.format {
            FileFormat::Ofx => write!(
                out,
                "<STMTTRN><TRNTYPE>{}<DTPOSTED>{}<TRNAMT>{}<FITID>{}<NAME>{}{}</STMTTRN>\r\n",
                t.transaction_type.as_deref().unwrap_or("OTHER"),
                date.format("%Y%m%d%H%M%S"),
                units(&t.amount),
                t.fit_id.as_deref().unwrap_or(""),
                sgml(&t.description),
                t.memo
                    .as_ref()
                    .map(|m| format!("<MEMO>{}", sgml(m)))
                    .unwrap_or_default()
            ),
            _ if self.locale == Locale::De || self.locale == Locale::Fr => writeln!(
                out,
                "DE44370501981234567890;{};{};{};{};{};{};{};EUR",
                date.format("%d.%m.%y"),
                date.format("%d.%m.%y"),
                if t.amount.is_negative() {
                    "KARTENZAHLUNG"
                } else {
                    "GUTSCHRIFT"
                },
                csv(t.memo.as_deref().unwrap_or(""), ';'),
                csv(&t.description, ';'),
                units(&t.amount).replace('.', ","),
                t.balance
                    .as_ref()
                    .map(|b| units(b).replace('.', ","))
                    .unwrap_or_default(),
            ),
            _ if self.locale == Locale::Jp => writeln!(
                out,
                "{},{},本人,1回払い,{},{},{}",
                date.format("%Y/%m/%d"),
                csv(&t.description, ','),
                units(&t.amount),
                t.balance.as_ref().map(units).unwrap_or_default(),
                csv(t.memo.as_deref().unwrap_or(""), ',')
            ),
            _ => writeln!(
                out,
                "{},{},{},,{},{},{},{}",
                date.format("%m/%d/%Y"),
                date.format("%m/%d/%Y"),
                csv(&t.description, ','),
                if t.amount.is_negative() {
                    "Sale"
                } else {
                    "Payment"
                },
                units(&t.amount),
                t.balance.as_ref().map(units).unwrap_or_default(),
                csv(t.memo.as_deref().unwrap_or(""), ',')
            ),
        }
    }

    fn footer(&mut self, out: &mut impl Write, closing: i64, as_of: i64) -> std::io::Result<()> {
        if self.format == FileFormat::Ofx {
            let date = chrono::DateTime::from_timestamp_millis(as_of).unwrap_or_default();
            write!(
                out,
                "</BANKTRANLIST>\r\n<LEDGERBAL><BALAMT>{}<DTASOF>{}</LEDGERBAL>\r\n</STMTRS></STMTTRNRS></BANKMSGSRSV1>\r\n</OFX>\r\n",
                self.money(closing),
                date.format("%Y%m%d")
            )?;
        }
        Ok(())
    }
}

fn csv(field: &str, separator: char) -> String {
    if field.contains(separator) || field.contains('"') || field.contains('\n') {
        format!("\"{}\"", field.replace('"', "\"\""))
    } else {
        field.to_string()
    }
}

fn sgml(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}
