//! The behaviour every [`ProfileStore`] backend must have, as one suite of tests.
//!
//! A backend's test file invokes [`store_conformance_tests!`] with a function that makes a fresh,
//! empty store (its own database file, database or schema); every test below then runs against
//! it. The same suite runs against SQLite and PostgreSQL.
#![forbid(unsafe_code)]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::any::Any;
use std::sync::Arc;
use std::time::Duration;

use fzip_model::*;
use fzip_store::{ProfileStore, StoreError, StoredFile};

/// A store for one test, and whatever must live as long as it (a temporary folder, a schema).
pub struct Fixture {
    pub store: Arc<dyn ProfileStore>,
    pub guard: Box<dyn Any + Send>,
}

/// A fixture, or none when the backend is skipped.
pub trait MaybeFixture<F> {
    fn fixture(self) -> Option<F>;
}

impl MaybeFixture<Fixture> for Fixture {
    fn fixture(self) -> Option<Fixture> {
        Some(self)
    }
}

impl MaybeFixture<JobFixture> for JobFixture {
    fn fixture(self) -> Option<JobFixture> {
        Some(self)
    }
}

impl<F> MaybeFixture<F> for Option<F> {
    fn fixture(self) -> Option<F> {
        self
    }
}

/// Generates one `#[test]` per conformance check, each with a fresh store from `$make`.
#[macro_export]
macro_rules! store_conformance_tests {
    ($make:expr) => {
        $crate::store_conformance_tests!(@tests $make;
            empty_profile,
            round_trip_every_field,
            paging_returns_everything_once_in_order,
            restore_requires_an_empty_profile,
            dropped_writer_rolls_back,
            duplicate_ids_are_refused,
            users_are_isolated,
            snapshot_is_consistent,
            clear_returns_blob_keys,
            concurrent_restores_serialise,
            job_marks_commit_with_the_rows,
            writer_reads_and_upserts,
            awkward_text_round_trips,
        );
    };
    (@tests $make:expr; $($name:ident),* $(,)?) => {
        $(
            #[test]
            fn $name() {
                // A backend that is skipped (its server is missing and skipping was asked for)
                // says so loudly where it makes its fixture.
                let Some(fixture) = $crate::MaybeFixture::fixture(($make)()) else {
                    return;
                };
                $crate::$name(&*fixture.store);
                drop(fixture);
            }
        )*
    };
}

fn uuid(n: u64, kind: u8) -> String {
    format!("{kind:02x}000000-0000-4000-8000-{n:012x}")
}

/// A small profile that uses every field and enum.
pub struct Sample {
    pub accounts: Vec<Account>,
    pub categories: Vec<Category>,
    pub file_maps: Vec<FileMap>,
    pub files: Vec<StoredFile>,
    pub transactions: Vec<Transaction>,
    pub analytics: Vec<AnalyticsRecord>,
}

fn extras(json: &str) -> Extras {
    Extras::from_json(json).unwrap()
}

/// A sample profile with `transactions` transactions.
pub fn sample(transactions: u64) -> Sample {
    let accounts: Vec<Account> = AccountType::ALL
        .iter()
        .enumerate()
        .map(|(i, t)| Account {
            account_id: uuid(i as u64, 1),
            user_id: None,
            account_name: format!("Konto {i} — Müller"),
            account_type: *t,
            institution: (i % 2 == 0).then(|| "Sparkasse Köln-Bonn".into()),
            balance: (i % 3 != 2).then(|| Decimal::parse(["2500.75", "-0.10", "1E-7", "100"][i % 4]).unwrap()),
            currency: (i % 3 != 2).then(|| Currency::parse(["EUR", "JPY", "KWD", "other"][i % 4]).unwrap()),
            notes: (i == 1).then(|| "notes\nwith \"quotes\"".into()),
            is_active: i != 3,
            default_file_map_id: (i == 0).then(|| uuid(0, 3)),
            first_transaction_date: Some(1_600_000_000_000),
            last_transaction_date: None,
            imports_start_date: (i == 2).then_some(1_600_000_000_001),
            imports_end_date: (i == 2).then_some(1_700_000_000_001),
            created_at: 1_600_000_000_000 + i as i64,
            updated_at: 1_700_000_000_000,
            extras: if i == 0 {
                extras(r#"{"exportMetadata":{"exportedAt":"2026-11-21T10:55:44.477468+00:00","dataVersion":"1.0"},"computedFields":{"accountAge":1634,"x":5.983889528193326}}"#)
            } else {
                Extras::new()
            },
        })
        .collect();
    let categories: Vec<Category> = (0..4)
        .map(|i| Category {
            user_id: None,
            name: format!("Kategorie {i} 💶"),
            category_type: CategoryType::ALL[i % 3],
            category_id: uuid(i as u64, 2),
            parent_category_id: (i > 0).then(|| uuid(i as u64 - 1, 2)),
            icon: Some("💶".into()),
            color: (i % 2 == 0).then(|| "#00BBF9".into()),
            rules: RuleCondition::ALL
                .iter()
                .take(i * 3)
                .enumerate()
                .map(|(r, c)| CategoryRule {
                    rule_id: format!("rule_{r:08x}"),
                    field_to_match: "description".into(),
                    condition: *c,
                    value: "ATM".into(),
                    case_sensitive: r % 2 == 0,
                    priority: Score(r as i32),
                    enabled: true,
                    confidence: Score(90),
                    amount_min: (r == 1).then(|| Decimal::parse("5.00").unwrap()),
                    amount_max: (r == 2).then(|| Decimal::parse("10").unwrap()),
                    allow_multiple_matches: false,
                    auto_suggest: true,
                    extras: Extras::new(),
                })
                .collect(),
            created_at: 1,
            updated_at: 2,
            inherit_parent_rules: i != 2,
            rule_inheritance_mode: RuleInheritanceMode::ALL[i % 3],
            extras: extras(r#"{"hierarchyInfo":{"depth":0,"fullPath":["a"]}}"#),
        })
        .collect();
    let file_maps = vec![FileMap {
        file_map_id: uuid(0, 3),
        user_id: None,
        name: "Sparkasse CSV".into(),
        mappings: vec![FieldMapping {
            source_field: "Betrag".into(),
            target_field: "amount".into(),
            transformation: Some("-value".into()),
            extras: extras(r#"{"validationInfo":{"isRequired":false}}"#),
        }],
        account_id: Some(uuid(0, 1)),
        description: None,
        reverse_amounts: true,
        created_at: 3,
        updated_at: 4,
        extras: Extras::new(),
    }];
    let files: Vec<StoredFile> = (0..3)
        .map(|i| StoredFile {
            file: TransactionFile {
                file_id: uuid(i, 4),
                user_id: None,
                file_name: format!("Umsätze_{i}.csv"),
                upload_date: 1_700_000_000_000 + i as i64,
                file_size: 1234 + i,
                s3_key: (i != 2).then(|| format!("users/u/files/b/{i}/Ums%C3%A4tze.csv")),
                processing_status: ProcessingStatus::ALL[i as usize],
                processed_date: Some(1_700_000_000_100),
                file_format: Some(FileFormat::ALL[i as usize]),
                account_id: Some(uuid(0, 1)),
                file_map_id: (i == 0).then(|| uuid(0, 3)),
                record_count: Some(10),
                date_range: Some(DateRange {
                    start_date: 1_600_000_000_000,
                    end_date: 1_600_000_100_000,
                    extras: Extras::new(),
                }),
                error_message: (i == 1).then(|| "bad row 3".into()),
                opening_balance: Some(Decimal::parse("2195.21").unwrap()),
                closing_balance: Some(Decimal::parse("-6624.410").unwrap()),
                currency: Some(Currency::parse("EUR").unwrap()),
                duplicate_count: Some(0),
                transaction_count: Some(10),
                created_at: 5,
                updated_at: 6,
                extras: extras(r#"{"fileStatusInfo":{"isProcessed":"processed"}}"#),
            },
            content_sha256: (i != 2).then_some([i as u8; 32]),
            content_size: (i != 2).then_some(1234 + i),
        })
        .collect();
    let transactions: Vec<Transaction> = (0..transactions)
        .map(|i| Transaction {
            user_id: None,
            file_id: Some(uuid(i % 3, 4)),
            transaction_id: uuid(i, 5),
            account_id: uuid(i % 6, 1),
            date: 1_600_000_000_000 + (i as i64 % 97) * 86_400_000,
            description: format!("Café #{i} \u{2014} Müllerstraße"),
            amount: Decimal::from_minor(-(i as i64) * 7 - 1, (i % 4) as u32),
            currency: Some(Currency::parse("EUR").unwrap()),
            balance: (i % 5 != 0).then(|| Decimal::parse("-1.45E+3").unwrap()),
            import_order: Some(i as i64),
            transaction_type: Some("POS".into()),
            memo: (i % 2 == 0).then(|| "Kartenzahlung".into()),
            check_number: (i % 50 == 0).then(|| "1042".into()),
            fit_id: Some(format!("2023{i:012}")),
            status: Some("new".into()),
            status_date: Some(format!("new#{}", 1_600_000_000_000i64)),
            created_at: 7,
            updated_at: 8,
            transaction_hash: Some(if i == 0 {
                u64::MAX
            } else {
                i.wrapping_mul(0x9E37_79B9_7F4A_7C15)
            }),
            categories: if i % 3 == 0 {
                Vec::new()
            } else {
                vec![CategoryAssignment {
                    category_id: uuid(i % 4, 2),
                    // The design documents' fractional form, kept as written.
                    confidence: if i % 4 == 1 {
                        Confidence::parse("0.950").unwrap()
                    } else {
                        Confidence::whole(97)
                    },
                    status: AssignmentStatus::Confirmed,
                    is_manual: i % 2 == 0,
                    assigned_at: 9,
                    confirmed_at: Some(10),
                    rule_id: Some("rule_b3a22937".into()),
                    extras: Extras::new(),
                }]
            },
            primary_category_id: (i % 3 != 0).then(|| uuid(i % 4, 2)),
            extras: if i == 1 {
                extras(r#"{"dateFormatted":"2023-02-04T00:00:00+00:00"}"#)
            } else {
                Extras::new()
            },
        })
        .collect();
    let analytics = vec![AnalyticsRecord {
        user_id: None,
        analytic_type: AnalyticType::CashFlow,
        time_period: "2023-01".into(),
        account_id: Some(uuid(0, 1)),
        data: RawJson::from_text(r#"{"inflow":"10.50","outflow":"-3.5"}"#).unwrap(),
        computed_date: "2026-01-01T00:00:00+00:00".into(),
        data_through_date: "2023-01-31".into(),
        ttl: None,
        extras: Extras::new(),
    }];
    Sample {
        accounts,
        categories,
        file_maps,
        files,
        transactions,
        analytics,
    }
}

fn write(store: &dyn ProfileStore, user: &str, s: &Sample) {
    let mut w = store.begin_restore(user).unwrap();
    w.insert_file_maps(&s.file_maps).unwrap();
    w.insert_accounts(&s.accounts).unwrap();
    w.insert_categories(&s.categories).unwrap();
    w.insert_transaction_files(&s.files).unwrap();
    for chunk in s.transactions.chunks(700) {
        w.insert_transactions(chunk).unwrap();
    }
    w.insert_analytics(&s.analytics).unwrap();
    w.commit().unwrap();
}

fn drain<T>(mut next: impl FnMut(usize) -> fzip_store::Result<Vec<T>>, max: usize) -> Vec<T> {
    let mut out = Vec::new();
    loop {
        let batch = next(max).unwrap();
        if batch.is_empty() {
            return out;
        }
        assert!(batch.len() <= max);
        out.extend(batch);
    }
}

fn owned<T: Entity>(items: &[T], user: &str) -> Vec<String> {
    let mut v: Vec<String> = items
        .iter()
        .map(|e| {
            let mut e = e.clone();
            e.set_owner(user);
            serde_json::to_string(&e).unwrap()
        })
        .collect();
    v.sort();
    v
}

fn texts<T: serde::Serialize>(items: &[T]) -> Vec<String> {
    let mut v: Vec<String> = items
        .iter()
        .map(|e| serde_json::to_string(e).unwrap())
        .collect();
    v.sort();
    v
}

pub fn empty_profile(store: &dyn ProfileStore) {
    let s = store.summary("nobody").unwrap();
    assert!(s.is_empty());
    let mut snap = store.snapshot("nobody").unwrap();
    assert!(snap.next_transactions(10).unwrap().is_empty());
    assert!(snap.next_accounts(10).unwrap().is_empty());
}

pub fn round_trip_every_field(store: &dyn ProfileStore) {
    let s = sample(60);
    write(store, "alice", &s);
    let summary = store.summary("alice").unwrap();
    assert_eq!(summary.counts.accounts, 6);
    assert_eq!(summary.counts.transactions, 60);
    assert_eq!(summary.counts.categories, 4);
    assert_eq!(summary.category_rules, 3 + 6 + 9);
    assert_eq!(summary.files_with_content, 2);
    assert_eq!(summary.file_bytes, 1234 + 1235);
    let mut snap = store.snapshot("alice").unwrap();
    assert_eq!(snap.summary().unwrap(), summary);
    let accounts = drain(|m| snap.next_accounts(m), 4);
    let categories = drain(|m| snap.next_categories(m), 3);
    let maps = drain(|m| snap.next_file_maps(m), 3);
    let files = drain(|m| snap.next_transaction_files(m), 2);
    let txs = drain(|m| snap.next_transactions(m), 7);
    let analytics = drain(|m| snap.next_analytics(m), 7);
    assert_eq!(texts(&accounts), owned(&s.accounts, "alice"));
    assert_eq!(texts(&categories), owned(&s.categories, "alice"));
    assert_eq!(texts(&maps), owned(&s.file_maps, "alice"));
    assert_eq!(texts(&txs), owned(&s.transactions, "alice"));
    assert_eq!(texts(&analytics), owned(&s.analytics, "alice"));
    let mut expected_files: Vec<StoredFile> = s.files.clone();
    for f in &mut expected_files {
        f.file.user_id = Some("alice".into());
    }
    for f in &files {
        let e = expected_files
            .iter()
            .find(|e| e.file.file_id == f.file.file_id)
            .unwrap();
        assert_eq!(f, e);
        assert_eq!(
            serde_json::to_string(&f.file).unwrap(),
            serde_json::to_string(&e.file).unwrap()
        );
    }
    assert_eq!(files.len(), 3);
    // Statement files newest first (transactions come in key order; see
    // `paging_returns_everything_once_in_order`).
    assert!(
        files
            .windows(2)
            .all(|w| w[0].file.upload_date >= w[1].file.upload_date)
    );
    assert_eq!(
        txs.iter()
            .find(|t| t.transaction_id == uuid(0, 5))
            .unwrap()
            .transaction_hash,
        Some(u64::MAX)
    );
}

pub fn paging_returns_everything_once_in_order(store: &dyn ProfileStore) {
    let s = sample(5_003);
    write(store, "alice", &s);
    let mut snap = store.snapshot("alice").unwrap();
    let txs = drain(|m| snap.next_transactions(m), 1000);
    assert_eq!(txs.len(), 5_003);
    let mut ids: Vec<&str> = txs.iter().map(|t| t.transaction_id.as_str()).collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 5_003);
    // Key order (the store's collation of the id): stable from one snapshot to the next.
    drop(snap);
    let mut snap = store.snapshot("alice").unwrap();
    let second = drain(|m| snap.next_transactions(m), 700);
    assert!(
        txs.iter()
            .map(|t| &t.transaction_id)
            .eq(second.iter().map(|t| &t.transaction_id)),
        "two snapshots page transactions in the same order"
    );
}

pub fn restore_requires_an_empty_profile(store: &dyn ProfileStore) {
    write(store, "alice", &sample(3));
    match store.begin_restore("alice") {
        Err(StoreError::ProfileNotEmpty { user, summary }) => {
            assert_eq!(user, "alice");
            assert_eq!(summary.counts.transactions, 3);
            assert_eq!(summary.counts.accounts, 6);
        }
        Err(e) => panic!("{e}"),
        Ok(_) => panic!("a restore into a non-empty profile was allowed"),
    }
}

pub fn dropped_writer_rolls_back(store: &dyn ProfileStore) {
    let s = sample(50);
    {
        let mut w = store.begin_restore("alice").unwrap();
        w.insert_accounts(&s.accounts).unwrap();
        w.insert_transactions(&s.transactions).unwrap();
        // Dropped without commit.
    }
    assert!(store.summary("alice").unwrap().is_empty());
    // And the profile can be restored afterwards.
    write(store, "alice", &s);
    assert_eq!(store.summary("alice").unwrap().counts.transactions, 50);
}

pub fn duplicate_ids_are_refused(store: &dyn ProfileStore) {
    let s = sample(5);
    let mut w = store.begin_restore("alice").unwrap();
    w.insert_transactions(&s.transactions).unwrap();
    match w.insert_transactions(&s.transactions[2..3]) {
        Err(StoreError::Duplicate { kind, id }) => {
            assert_eq!(kind, "transaction");
            assert_eq!(id, s.transactions[2].transaction_id);
        }
        other => panic!("expected a duplicate error, got {:?}", other.err()),
    }
    drop(w);
    assert!(store.summary("alice").unwrap().is_empty());
}

pub fn users_are_isolated(store: &dyn ProfileStore) {
    let s = sample(20);
    write(store, "alice", &s);
    // Bob restores the very same ids.
    write(store, "bob", &s);
    let mut snap = store.snapshot("bob").unwrap();
    let txs = drain(|m| snap.next_transactions(m), 100);
    assert!(txs.iter().all(|t| t.user_id.as_deref() == Some("bob")));
    drop(snap);
    let (cleared, keys) = store.clear_profile("alice").unwrap();
    assert_eq!(cleared.counts.transactions, 20);
    assert_eq!(keys.len(), 2);
    assert!(store.summary("alice").unwrap().is_empty());
    assert_eq!(store.summary("bob").unwrap().counts.transactions, 20);
    assert!(store.summary("carol").unwrap().is_empty());
}

pub fn snapshot_is_consistent(store: &dyn ProfileStore) {
    write(store, "alice", &sample(3_000));
    let mut snap = store.snapshot("alice").unwrap();
    let first = snap.next_transactions(1_000).unwrap();
    // Another connection changes the profile completely while the snapshot is open.
    store.clear_profile("alice").unwrap();
    write(store, "alice", &sample(10));
    let mut all = first;
    all.extend(drain(|m| snap.next_transactions(m), 1_000));
    assert_eq!(all.len(), 3_000);
    assert_eq!(snap.summary().unwrap().counts.transactions, 3_000);
    drop(snap);
    assert_eq!(store.summary("alice").unwrap().counts.transactions, 10);
}

pub fn clear_returns_blob_keys(store: &dyn ProfileStore) {
    write(store, "alice", &sample(2));
    let referenced = store.referenced_blob_keys().unwrap();
    assert_eq!(referenced.len(), 2);
    let (_, mut keys) = store.clear_profile("alice").unwrap();
    keys.sort();
    let mut expected: Vec<String> = referenced.into_iter().collect();
    expected.sort();
    assert_eq!(keys, expected);
    assert!(store.referenced_blob_keys().unwrap().is_empty());
}

/// Two restores into the same empty profile at once: exactly one wins, the other sees a
/// non-empty profile.
pub fn concurrent_restores_serialise(store: &dyn ProfileStore) {
    let s = sample(10);
    std::thread::scope(|scope| {
        let first = scope.spawn(|| {
            let mut w = store.begin_restore("alice").unwrap();
            w.insert_accounts(&s.accounts).unwrap();
            std::thread::sleep(Duration::from_millis(300));
            w.commit().unwrap();
        });
        std::thread::sleep(Duration::from_millis(100));
        let second = store.begin_restore("alice");
        assert!(
            matches!(second, Err(StoreError::ProfileNotEmpty { .. })),
            "{:?}",
            second.err()
        );
        first.join().unwrap();
    });
    assert_eq!(store.summary("alice").unwrap().counts.accounts, 6);
}

pub fn job_marks_commit_with_the_rows(store: &dyn ProfileStore) {
    let s = sample(5);
    {
        let mut w = store.begin_restore("alice").unwrap();
        w.insert_accounts(&s.accounts).unwrap();
        w.mark_job("job-1").unwrap();
        // Rolled back.
    }
    assert!(!store.job_committed("alice", "job-1").unwrap());
    let mut w = store.begin_restore("alice").unwrap();
    w.insert_accounts(&s.accounts).unwrap();
    w.mark_job("job-2").unwrap();
    w.commit().unwrap();
    assert!(store.job_committed("alice", "job-2").unwrap());
    assert!(!store.job_committed("bob", "job-2").unwrap());
    store.clear_profile("alice").unwrap();
    assert!(!store.job_committed("alice", "job-2").unwrap());
}

pub fn writer_reads_and_upserts(store: &dyn ProfileStore) {
    let s = sample(30);
    write(store, "alice", &s);
    write(store, "bob", &s);
    let mut w = store.begin_write("alice").unwrap();
    assert_eq!(
        texts(&w.all_accounts().unwrap()),
        owned(&s.accounts, "alice")
    );
    assert_eq!(
        texts(&w.all_categories().unwrap()),
        owned(&s.categories, "alice")
    );
    assert_eq!(
        texts(&w.all_file_maps().unwrap()),
        owned(&s.file_maps, "alice")
    );
    assert_eq!(w.all_transaction_files().unwrap().len(), 3);
    let ids = vec![
        uuid(3, 5),
        uuid(7, 5),
        "00000000-0000-4000-8000-ffffffffffff".to_string(),
    ];
    let found = w.transactions_by_id(&ids).unwrap();
    assert_eq!(found.len(), 2);
    assert!(found.iter().all(|t| t.user_id.as_deref() == Some("alice")));
    let mut in_range = 0;
    w.scan_transactions(
        1_600_000_000_000,
        1_600_000_000_000 + 86_400_000,
        &mut |t| {
            assert!(t.date <= 1_600_000_000_000 + 86_400_000);
            in_range += 1;
            Ok(())
        },
    )
    .unwrap();
    assert_eq!(
        in_range,
        s.transactions
            .iter()
            .filter(|t| t.date <= 1_600_000_000_000 + 86_400_000)
            .count()
    );
    // Replace one account, add another.
    let mut changed = s.accounts[1].clone();
    changed.account_name = "Renamed".into();
    let mut added = s.accounts[0].clone();
    added.account_id = uuid(99, 1);
    w.upsert_accounts(&[changed, added]).unwrap();
    let mut tx = s.transactions[4].clone();
    tx.description = "changed".into();
    w.upsert_transactions(&[tx]).unwrap();
    let mut record = s.analytics[0].clone();
    record.time_period = "2024-02".into();
    w.replace_analytics(&[AnalyticType::CashFlow], &[record])
        .unwrap();
    // The writer sees its own writes.
    assert_eq!(w.all_accounts().unwrap().len(), 7);
    w.commit().unwrap();
    let mut snap = store.snapshot("alice").unwrap();
    let accounts = drain(|m| snap.next_accounts(m), 100);
    assert_eq!(accounts.len(), 7);
    assert_eq!(
        accounts
            .iter()
            .find(|a| a.account_id == uuid(1, 1))
            .unwrap()
            .account_name,
        "Renamed"
    );
    let txs = drain(|m| snap.next_transactions(m), 100);
    assert_eq!(txs.len(), 30);
    assert_eq!(
        txs.iter()
            .find(|t| t.transaction_id == uuid(4, 5))
            .unwrap()
            .description,
        "changed"
    );
    let analytics = drain(|m| snap.next_analytics(m), 100);
    assert_eq!(analytics.len(), 1);
    assert_eq!(analytics[0].time_period, "2024-02");
    drop(snap);
    // Bob's copy is untouched.
    let mut snap = store.snapshot("bob").unwrap();
    assert_eq!(drain(|m| snap.next_accounts(m), 100).len(), 6);
    assert_eq!(
        drain(|m| snap.next_analytics(m), 100)[0].time_period,
        "2023-01"
    );
}

// ---------------------------------------------------------------------------------------------
// Job stores
// ---------------------------------------------------------------------------------------------

use fzip_store::jobs::{AuditRecord, Job, JobCursor, JobStatus, JobStore, JobType, Work};

/// A job store for one test, and whatever must live as long as it.
pub struct JobFixture {
    pub store: Arc<dyn JobStore>,
    pub guard: Box<dyn Any + Send>,
}

/// Generates one `#[test]` per job-store check, each with a fresh store from `$make`.
#[macro_export]
macro_rules! job_store_conformance_tests {
    ($make:expr) => {
        $crate::job_store_conformance_tests!(@tests $make;
            jobs_belong_to_their_user,
            idempotency_keys_return_the_first_job,
            listing_is_newest_first_with_cursor_and_total,
            updates_are_compare_and_set,
            claims_respect_work_and_leases,
            concurrent_claims_never_share_a_job,
            claims_are_fair_across_users,
            concurrent_claims_keep_the_per_user_limit,
            user_load_counts_what_a_user_has_in_flight,
            progress_reports_carry_cancellation,
            expiring_jobs_are_found,
            audit_records_are_kept_per_user,
        );
    };
    (@tests $make:expr; $($name:ident),* $(,)?) => {
        $(
            #[test]
            fn $name() {
                let Some(fixture) = $crate::MaybeFixture::fixture(($make)()) else {
                    return;
                };
                $crate::$name(&*fixture.store);
                drop(fixture);
            }
        )*
    };
}

fn job(id: &str, user: &str, t: JobType, created: i64) -> Job {
    let status = match t {
        JobType::Backup => JobStatus::BackupInitiated,
        JobType::Export => JobStatus::ExportInitiated,
        JobType::Restore => JobStatus::RestoreUploaded,
        JobType::Import => JobStatus::ImportUploaded,
    };
    let mut j = Job::new(id, user, t, status, created);
    j.params = serde_json::json!({ "backupType": "complete", "description": "Müller ✈️" });
    j
}

pub fn jobs_belong_to_their_user(store: &dyn JobStore) {
    let mut j = job("j1", "alice", JobType::Backup, 10);
    j.results.insert(
        "validation".into(),
        serde_json::json!({ "overall_quality": "excellent" }),
    );
    j.package_size = Some(u64::MAX >> 2);
    store.create_job(&j).unwrap();
    let back = store.get_job("alice", "j1").unwrap().unwrap();
    assert_eq!(back, j);
    assert!(store.get_job("bob", "j1").unwrap().is_none());
    assert!(!store.delete_job("bob", "j1").unwrap());
    assert!(store.get_job("alice", "j1").unwrap().is_some());
    assert!(matches!(
        store.create_job(&j),
        Err(StoreError::Duplicate { .. })
    ));
    assert!(store.delete_job("alice", "j1").unwrap());
    assert!(store.get_job("alice", "j1").unwrap().is_none());
}

pub fn idempotency_keys_return_the_first_job(store: &dyn JobStore) {
    let mut a = job("a", "alice", JobType::Backup, 1);
    a.idempotency_key = Some("key-1".into());
    assert_eq!(store.create_job(&a).unwrap().job_id, "a");
    let mut b = job("b", "alice", JobType::Backup, 2);
    b.idempotency_key = Some("key-1".into());
    assert_eq!(store.create_job(&b).unwrap().job_id, "a");
    assert!(store.get_job("alice", "b").unwrap().is_none());
    // Another user may use the same key.
    let mut c = job("c", "bob", JobType::Backup, 3);
    c.idempotency_key = Some("key-1".into());
    assert_eq!(store.create_job(&c).unwrap().job_id, "c");
}

pub fn listing_is_newest_first_with_cursor_and_total(store: &dyn JobStore) {
    for i in 0..25 {
        let t = if i % 5 == 0 {
            JobType::Restore
        } else {
            JobType::Backup
        };
        store
            .create_job(&job(&format!("j{i:02}"), "alice", t, 1000 + i))
            .unwrap();
    }
    store
        .create_job(&job("other", "bob", JobType::Backup, 5000))
        .unwrap();
    let page = store
        .list_jobs("alice", &[JobType::Backup], None, 0, 7)
        .unwrap();
    assert_eq!(page.total, 20);
    assert_eq!(page.jobs.len(), 7);
    assert_eq!(page.jobs[0].job_id, "j24");
    assert!(
        page.jobs
            .windows(2)
            .all(|w| w[0].created_at > w[1].created_at)
    );
    let mut seen: Vec<String> = page.jobs.iter().map(|j| j.job_id.clone()).collect();
    let mut cursor: Option<JobCursor> = page.next;
    while let Some(c) = cursor {
        let p = store
            .list_jobs("alice", &[JobType::Backup], Some(&c), 0, 7)
            .unwrap();
        seen.extend(p.jobs.iter().map(|j| j.job_id.clone()));
        cursor = p.next;
    }
    assert_eq!(seen.len(), 20);
    let mut dedup = seen.clone();
    dedup.sort();
    dedup.dedup();
    assert_eq!(dedup.len(), 20);
    // Offsets work too.
    let p = store
        .list_jobs("alice", &[JobType::Backup], None, 14, 7)
        .unwrap();
    assert_eq!(p.jobs.len(), 6);
    assert!(p.next.is_none());
    let both = store
        .list_jobs("alice", &[JobType::Backup, JobType::Restore], None, 0, 100)
        .unwrap();
    assert_eq!(both.total, 25);
    assert!(
        store
            .list_jobs("carol", &[JobType::Backup], None, 0, 10)
            .unwrap()
            .jobs
            .is_empty()
    );
}

pub fn updates_are_compare_and_set(store: &dyn JobStore) {
    let j = store
        .create_job(&job("j", "alice", JobType::Restore, 1))
        .unwrap();
    let mut first = j.clone();
    first.status = JobStatus::RestoreValidating;
    first.work = Some(Work::Validate);
    assert!(store.update_job(&first).unwrap());
    let mut stale = j.clone();
    stale.status = JobStatus::RestoreCanceled;
    assert!(
        !store.update_job(&stale).unwrap(),
        "a stale version must not overwrite"
    );
    let now = store.get_job("alice", "j").unwrap().unwrap();
    assert_eq!(now.status, JobStatus::RestoreValidating);
    assert_eq!(now.version, j.version + 1);
    assert_eq!(now.work, Some(Work::Validate));
}

pub fn claims_respect_work_and_leases(store: &dyn JobStore) {
    store
        .create_job(&job("idle", "alice", JobType::Backup, 1))
        .unwrap();
    assert!(
        store.claim_job("w1", 100, 1000).unwrap().is_none(),
        "no work, no claim"
    );
    let mut j = store.get_job("alice", "idle").unwrap().unwrap();
    j.work = Some(Work::Backup);
    assert!(store.update_job(&j).unwrap());
    let claimed = store.claim_job("w1", 100, 1000).unwrap().unwrap();
    assert_eq!(claimed.job_id, "idle");
    assert_eq!(claimed.lease_owner.as_deref(), Some("w1"));
    assert_eq!(claimed.lease_until, Some(1100));
    assert_eq!(claimed.attempts, 1);
    assert!(
        store.claim_job("w2", 500, 1000).unwrap().is_none(),
        "lease still held"
    );
    // The lease runs out: another worker takes the job over.
    let taken = store.claim_job("w2", 1200, 1000).unwrap().unwrap();
    assert_eq!(taken.lease_owner.as_deref(), Some("w2"));
    assert_eq!(taken.attempts, 2);
    assert!(
        !store
            .report_progress("idle", "w1", 50, "x", 1300, 2300)
            .unwrap()
            .still_owner
    );
    store.release_job("idle", "w2").unwrap();
    let again = store.claim_job("w3", 1300, 1000).unwrap().unwrap();
    assert_eq!(again.lease_owner.as_deref(), Some("w3"));
    // Finished work is never claimed again.
    let mut done = again.clone();
    done.work = None;
    done.status = JobStatus::BackupCompleted;
    assert!(store.update_job(&done).unwrap());
    store.release_job("idle", "w3").unwrap();
    assert!(store.claim_job("w4", 9_999_999, 1000).unwrap().is_none());
    // New work starts its count of attempts again (the engine sets it; the store keeps it).
    let mut next = store.get_job("alice", "idle").unwrap().unwrap();
    assert_eq!(next.attempts, 3);
    next.work = Some(Work::Validate);
    next.attempts = 0;
    assert!(store.update_job(&next).unwrap());
    assert_eq!(store.get_job("alice", "idle").unwrap().unwrap().attempts, 0);
    assert_eq!(
        store
            .claim_job("w5", 9_999_999, 1000)
            .unwrap()
            .unwrap()
            .attempts,
        1
    );
}

pub fn concurrent_claims_never_share_a_job(store: &dyn JobStore) {
    for i in 0..40 {
        let mut j = job(&format!("c{i:02}"), "alice", JobType::Backup, i);
        j.work = Some(Work::Backup);
        store.create_job(&j).unwrap();
    }
    let claimed = std::sync::Mutex::new(Vec::new());
    std::thread::scope(|s| {
        for w in 0..4 {
            let claimed = &claimed;
            s.spawn(move || {
                while let Some(j) = store.claim_job(&format!("w{w}"), 1_000, 60_000).unwrap() {
                    claimed.lock().unwrap().push(j.job_id);
                }
            });
        }
    });
    let mut ids = claimed.into_inner().unwrap();
    assert_eq!(ids.len(), 40);
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 40, "a job was claimed twice");
}

fn queued(store: &dyn JobStore, id: &str, user: &str, created: i64) {
    let mut j = job(id, user, JobType::Backup, created);
    j.work = Some(Work::Backup);
    store.create_job(&j).unwrap();
}

fn claim_id(store: &dyn JobStore, now: i64, cap: u32) -> Option<String> {
    store
        .claim_job_fair("w", now, 10_000, cap)
        .unwrap()
        .map(|j| j.job_id)
}

/// The fair claim: users under the per-user limit only, fewest running first, then the oldest
/// waiting job; a lapsed lease does not count as running.
pub fn claims_are_fair_across_users(store: &dyn JobStore) {
    for i in 0..6 {
        queued(store, &format!("a{i}"), "alice", i);
    }
    queued(store, "b0", "bob", 100);
    queued(store, "c0", "carol", 200);
    // At most one running each: one job of every user, oldest waiting first, then nothing.
    let claims: Vec<Option<String>> = (0..4).map(|_| claim_id(store, 1_000, 1)).collect();
    assert_eq!(
        claims,
        [Some("a0"), Some("b0"), Some("c0"), None].map(|s| s.map(str::to_string)),
        "alice's queue must not hold back bob's and carol's jobs"
    );
    // alice's job ends: her next one is claimed.
    let mut done = store.get_job("alice", "a0").unwrap().unwrap();
    done.work = None;
    done.status = JobStatus::BackupCompleted;
    assert!(store.update_job(&done).unwrap());
    store.release_job("a0", "w").unwrap();
    assert_eq!(claim_id(store, 1_000, 1).as_deref(), Some("a1"));
    // Two each: alice and bob both run one, so the older waiting job (alice's) goes first,
    // then bob's; alice is then at the limit.
    queued(store, "b1", "bob", 300);
    assert_eq!(claim_id(store, 1_000, 2).as_deref(), Some("a2"));
    assert_eq!(claim_id(store, 1_000, 2).as_deref(), Some("b1"));
    assert_eq!(claim_id(store, 1_000, 2), None);
    // Fewest running first: carol (one running) before alice (two) even though alice's
    // waiting job is older.
    queued(store, "c1", "carol", 400);
    assert_eq!(claim_id(store, 1_000, 3).as_deref(), Some("c1"));
    assert_eq!(claim_id(store, 1_000, 3).as_deref(), Some("a3"));
    // Every lease lapsed (their servers died): nobody counts as running, the oldest job is
    // taken over first, and its user is then at the limit again.
    let later = 1_000_000;
    assert_eq!(claim_id(store, later, 1).as_deref(), Some("a1"));
    assert_eq!(claim_id(store, later, 1).as_deref(), Some("b0"));
    assert_eq!(claim_id(store, later, 1).as_deref(), Some("c0"));
    assert_eq!(claim_id(store, later, 1), None);
    // No limit: every job is claimable.
    assert!(store.claim_job("w", later, 10_000).unwrap().is_some());
}

/// Claims racing on several connections never take more of one user's jobs than the limit.
pub fn concurrent_claims_keep_the_per_user_limit(store: &dyn JobStore) {
    for u in 0..3 {
        for i in 0..8 {
            queued(store, &format!("u{u}-{i}"), &format!("user{u}"), i * 3 + u);
        }
    }
    let claimed = std::sync::Mutex::new(Vec::new());
    std::thread::scope(|s| {
        for w in 0..8 {
            let claimed = &claimed;
            s.spawn(move || {
                for _ in 0..3 {
                    if let Some(j) = store
                        .claim_job_fair(&format!("w{w}"), 1_000, 60_000, 2)
                        .unwrap()
                    {
                        claimed.lock().unwrap().push(j.user_id);
                    }
                }
            });
        }
    });
    let users = claimed.into_inner().unwrap();
    for u in 0..3 {
        let n = users.iter().filter(|x| **x == format!("user{u}")).count();
        assert_eq!(
            n, 2,
            "user{u} holds {n} running jobs with a limit of 2: {users:?}"
        );
    }
}

pub fn user_load_counts_what_a_user_has_in_flight(store: &dyn JobStore) {
    assert_eq!(
        store.user_load("alice", 0).unwrap(),
        fzip_store::jobs::UserLoad::default()
    );
    queued(store, "q1", "alice", 1);
    queued(store, "q2", "alice", 2);
    let mut done = job("done", "alice", JobType::Backup, 3);
    done.status = JobStatus::BackupCompleted;
    done.package_key = Some("packages/alice/done.fzip".into());
    done.package_size = Some(1_000);
    store.create_job(&done).unwrap();
    // Waiting for its upload, with the URL valid until 500 / already expired.
    let mut open = job("open", "alice", JobType::Restore, 4);
    open.expires_at = Some(500);
    store.create_job(&open).unwrap();
    let mut stale = job("stale", "alice", JobType::Import, 5);
    stale.expires_at = Some(50);
    store.create_job(&stale).unwrap();
    let mut uploaded = job("up", "alice", JobType::Restore, 6);
    uploaded.package_key = Some("uploads/alice/up.fzip".into());
    uploaded.package_size = Some(234);
    uploaded.work = Some(Work::Validate);
    store.create_job(&uploaded).unwrap();
    queued(store, "other", "bob", 7);
    let load = store.user_load("alice", 100).unwrap();
    assert_eq!(
        (load.active_jobs, load.open_uploads, load.staged_bytes),
        (3, 1, 1_234),
        "{load:?}"
    );
    assert_eq!(store.user_load("bob", 100).unwrap().active_jobs, 1);
}

pub fn progress_reports_carry_cancellation(store: &dyn JobStore) {
    let mut j = job("p", "alice", JobType::Restore, 1);
    j.work = Some(Work::Restore);
    store.create_job(&j).unwrap();
    store.claim_job("w", 10, 1000).unwrap().unwrap();
    let ack = store
        .report_progress("p", "w", 42, "restoring_transactions", 20, 2000)
        .unwrap();
    assert!(ack.still_owner && !ack.cancel_requested);
    let mut current = store.get_job("alice", "p").unwrap().unwrap();
    assert_eq!(
        (current.progress, current.current_phase.as_str()),
        (42, "restoring_transactions")
    );
    current.cancel_requested = true;
    assert!(store.update_job(&current).unwrap());
    let ack = store
        .report_progress("p", "w", 43, "restoring_transactions", 30, 2000)
        .unwrap();
    assert!(ack.cancel_requested);
    // Progress reports never make a business update conflict.
    let before = store.get_job("alice", "p").unwrap().unwrap();
    store.report_progress("p", "w", 44, "x", 40, 2000).unwrap();
    let mut after = before.clone();
    after.status = JobStatus::RestoreCanceled;
    assert!(store.update_job(&after).unwrap());
}

pub fn expiring_jobs_are_found(store: &dyn JobStore) {
    let mut a = job("a", "alice", JobType::Backup, 1);
    a.package_key = Some("packages/alice/a.fzip".into());
    a.expires_at = Some(100);
    let mut b = job("b", "alice", JobType::Backup, 2);
    b.package_key = Some("packages/alice/b.fzip".into());
    b.expires_at = Some(1_000);
    let mut c = job("c", "alice", JobType::Backup, 3);
    c.expires_at = Some(50);
    for j in [&a, &b, &c] {
        store.create_job(j).unwrap();
    }
    let found: Vec<String> = store
        .expiring_jobs(500, 10)
        .unwrap()
        .into_iter()
        .map(|j| j.job_id)
        .collect();
    assert_eq!(found, vec!["a".to_string()]);
}

pub fn audit_records_are_kept_per_user(store: &dyn JobStore) {
    for (i, user) in ["alice", "bob", "alice"].iter().enumerate() {
        store
            .append_audit(&AuditRecord {
                at: i as i64,
                user_id: user.to_string(),
                action: "backup.create".into(),
                job_id: Some(format!("j{i}")),
                outcome: "ok".into(),
                detail: None,
                source: Some("127.0.0.1".into()),
            })
            .unwrap();
    }
    let alice = store.list_audit(Some("alice"), 10).unwrap();
    assert_eq!(alice.len(), 2);
    assert_eq!(alice[0].job_id.as_deref(), Some("j2"), "newest first");
    assert_eq!(store.list_audit(None, 10).unwrap().len(), 3);
}

/// Strings a database might mangle: NUL, control characters (C0, DEL, C1, line separators), backslashes, quotes, tabs and
/// newlines (which `COPY` treats specially), astral-plane characters, U+10FFFF.
pub fn awkward_text_round_trips(store: &dyn ProfileStore) {
    let awkward = [
        "nul \0 inside",
        "\0",
        "\u{10FFFF} leading mark",
        "tab\tnew\nline\rreturn",
        "controls \u{1}\u{7f}\u{1b}[0m\r\n\u{85}\u{2028} end",
        "back\\slash \\N \\. end",
        "quotes ' \" and ; -- comment",
        "astral 𝄞 😀 and combining é",
        "",
    ];
    let s = sample(awkward.len() as u64);
    let mut accounts = s.accounts.clone();
    let mut txs = s.transactions.clone();
    for (i, text) in awkward.iter().enumerate() {
        let n = accounts.len();
        let a = &mut accounts[i % n];
        a.account_name = format!("{}{text}", a.account_name);
        a.notes = Some(text.to_string());
        let t = &mut txs[i];
        t.description = text.to_string();
        t.memo = Some(format!("memo {text}"));
        t.extras = Extras::from_json(&serde_json::json!({ "note": text }).to_string()).unwrap();
    }
    for user in ["alice", "bob \0 user"] {
        let mut w = store.begin_restore(user).unwrap();
        w.insert_accounts(&accounts).unwrap();
        w.insert_transactions(&txs).unwrap();
        w.commit().unwrap();
        let mut snap = store.snapshot(user).unwrap();
        let got_accounts = drain(|m| snap.next_accounts(m), 3);
        let got_txs = drain(|m| snap.next_transactions(m), 3);
        drop(snap);
        assert_eq!(texts(&got_accounts), owned(&accounts, user));
        assert_eq!(texts(&got_txs), owned(&txs, user));
        // The upsert path too.
        let mut w = store.begin_write(user).unwrap();
        let mut changed = txs.clone();
        for t in &mut changed {
            t.description.push_str(" \0 again");
        }
        w.upsert_transactions(&changed).unwrap();
        let ids: Vec<String> = changed.iter().map(|t| t.transaction_id.clone()).collect();
        let back = w.transactions_by_id(&ids).unwrap();
        w.commit().unwrap();
        let mut back_texts = texts(&back);
        back_texts.sort();
        let mut want = owned(&changed, user);
        want.sort();
        assert_eq!(back_texts, want);
        assert_eq!(
            store.summary(user).unwrap().counts.transactions,
            txs.len() as u64
        );
    }
}
