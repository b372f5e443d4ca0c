//! Import into a live profile: each merge strategy on a profile that overlaps the package in
//! accounts, categories, file maps, statement files and transactions; dry runs that report
//! exactly what the import then does; references kept valid; all or nothing.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use common::Env;
use fzip_engine::{
    BackupOptions, DemoOptions, DiffOptions, EngineError, ImportOptions, ImportReport,
    MergeStrategy, NoProgress, Progress, RestoreOptions, demo_profile, diff, import, restore,
};
use fzip_format::Limits;
use fzip_model::*;
use fzip_store::{BlobStore, DEFAULT_BATCH, ProfileWriter, StoredFile};
use serde_json::Value;
use sha2::Digest;

fn all<T>(mut next: impl FnMut(usize) -> Vec<T>) -> Vec<T> {
    let mut out = Vec::new();
    loop {
        let batch = next(DEFAULT_BATCH);
        if batch.is_empty() {
            return out;
        }
        out.extend(batch);
    }
}

/// Everything a profile holds, by id.
#[derive(Debug)]
struct Profile {
    accounts: BTreeMap<String, Account>,
    categories: BTreeMap<String, Category>,
    file_maps: BTreeMap<String, FileMap>,
    files: BTreeMap<String, StoredFile>,
    transactions: BTreeMap<String, Transaction>,
}

fn profile(env: &Env, user: &str) -> Profile {
    let mut s = env.engine.store.snapshot(user).unwrap();
    Profile {
        accounts: all(|n| s.next_accounts(n).unwrap())
            .into_iter()
            .map(|e| (e.account_id.clone(), e))
            .collect(),
        categories: all(|n| s.next_categories(n).unwrap())
            .into_iter()
            .map(|e| (e.category_id.clone(), e))
            .collect(),
        file_maps: all(|n| s.next_file_maps(n).unwrap())
            .into_iter()
            .map(|e| (e.file_map_id.clone(), e))
            .collect(),
        files: all(|n| s.next_transaction_files(n).unwrap())
            .into_iter()
            .map(|e| (e.file.file_id.clone(), e))
            .collect(),
        transactions: all(|n| s.next_transactions(n).unwrap())
            .into_iter()
            .map(|e| (e.transaction_id.clone(), e))
            .collect(),
    }
}

fn write(env: &Env, user: &str, f: impl FnOnce(&mut dyn ProfileWriter)) {
    let mut w = env.engine.store.begin_write(user).unwrap();
    f(w.as_mut());
    w.commit().unwrap();
}

fn tx_like(t: &Transaction, id: &str) -> Transaction {
    let mut n = t.clone();
    n.transaction_id = id.to_string();
    n.fit_id = None;
    n
}

/// Alice's package and Bob's profile, overlapping:
/// - Bob restored an earlier backup of Alice and then changed one account, category, file map
///   and statement file and five transactions, and added his own account and transactions (one
///   on the account he changed);
/// - Alice then added an account, a category, a file map, a statement file with bytes, and ten
///   transactions: one with the same content as a transaction Bob has, and two equal tickets.
struct Scenario {
    env: Env,
    package: PathBuf,
    changed_account: String,
    changed_category: String,
    changed_map: String,
    changed_file: String,
    changed_transactions: Vec<String>,
    lookalike_of: String,
    new_file: String,
}

const NEW: u64 = 10;
const BOB_ACCOUNT: &str = "b0b00000-0000-4000-8000-000000000001";
const NEW_ACCOUNT: &str = "a11ce000-0000-4000-8000-000000000001";
const NEW_CATEGORY: &str = "a11ce000-0000-4000-8000-000000000002";
const NEW_MAP: &str = "a11ce000-0000-4000-8000-000000000003";
const NEW_FILE: &str = "a11ce000-0000-4000-8000-000000000004";
const LOOKALIKE: &str = "a11ce000-0000-4000-8000-000000000005";

fn ticket(i: usize) -> String {
    format!("a11ce000-0000-4000-8000-0000000001{i:02}")
}

fn new_tx(i: usize) -> String {
    format!("a11ce000-0000-4000-8000-0000000002{i:02}")
}

fn bob_own(i: usize) -> String {
    format!("b0b00000-0000-4000-8000-0000000001{i:02}")
}

fn scenario(env: Env) -> Scenario {
    demo_profile(
        &env.engine,
        "alice",
        &DemoOptions {
            transactions: 400,
            files: 3,
            seed: 9,
        },
        &NoProgress,
    )
    .unwrap();
    let p0 = env.backup("alice", "p0.fzip");
    restore(
        &env.engine,
        "bob",
        &p0,
        &RestoreOptions::default(),
        &NoProgress,
    )
    .unwrap();

    let a = profile(&env, "alice");
    let account = a.accounts.values().next().unwrap().clone();
    let category = a
        .categories
        .values()
        .find(|c| c.parent_category_id.is_some())
        .unwrap()
        .clone();
    let map = a.file_maps.values().next().unwrap().clone();
    let file = a.files.values().next().unwrap().clone();
    let txs: Vec<Transaction> = a.transactions.values().take(6).cloned().collect();
    let changed: Vec<Transaction> = txs[..5].to_vec();
    let lookalike_of = txs[5].transaction_id.clone();
    write(&env, "bob", |w| {
        let mut acc = account.clone();
        acc.account_name = "Bob's name for it".into();
        acc.set_owner("bob");
        w.upsert_accounts(&[acc.clone()]).unwrap();
        let mut cat = category.clone();
        cat.name = "Bob's category".into();
        cat.set_owner("bob");
        w.upsert_categories(&[cat]).unwrap();
        let mut m = map.clone();
        m.name = "Bob's map".into();
        m.set_owner("bob");
        w.upsert_file_maps(&[m]).unwrap();
        let mut f = w
            .all_transaction_files()
            .unwrap()
            .into_iter()
            .find(|x| x.file.file_id == file.file.file_id)
            .unwrap();
        f.file.file_name = "renamed-by-bob.csv".into();
        w.upsert_transaction_files(&[f]).unwrap();
        let mut mine: Vec<Transaction> = changed
            .iter()
            .map(|t| {
                let mut t = t.clone();
                t.description = format!("{} (edited by Bob)", t.description);
                t.set_owner("bob");
                t
            })
            .collect();
        w.upsert_transactions(&mine).unwrap();
        let mut own = acc.clone();
        own.account_id = BOB_ACCOUNT.into();
        own.default_file_map_id = None;
        w.insert_accounts(&[own]).unwrap();
        mine.clear();
        for i in 0..3 {
            let mut t = tx_like(&txs[0], &bob_own(i));
            t.description = format!("Bob's own {i}");
            t.account_id = if i == 0 {
                account.account_id.clone()
            } else {
                BOB_ACCOUNT.into()
            };
            t.file_id = None;
            t.set_owner("bob");
            mine.push(t);
        }
        w.insert_transactions(&mine).unwrap();
    });

    // Alice's additions.
    let bytes = b"Date,Amount,Description\n2024-01-02,-12.50,Ticket\n".to_vec();
    let key = BlobStore::file_key("alice", "manual", NEW_FILE);
    env.engine.blobs.put_bytes(&key, &bytes).unwrap();
    write(&env, "alice", |w| {
        let mut acc = account.clone();
        acc.account_id = NEW_ACCOUNT.into();
        acc.account_name = "Alice's new account".into();
        w.insert_accounts(&[acc]).unwrap();
        let mut cat = category.clone();
        cat.category_id = NEW_CATEGORY.into();
        cat.name = "Alice's new category".into();
        cat.rules.clear();
        w.insert_categories(&[cat]).unwrap();
        let mut m = map.clone();
        m.file_map_id = NEW_MAP.into();
        m.account_id = Some(NEW_ACCOUNT.into());
        w.insert_file_maps(&[m]).unwrap();
        let mut f = file.clone();
        f.file.file_id = NEW_FILE.into();
        f.file.file_name = "tickets.csv".into();
        f.file.file_size = bytes.len() as u64;
        f.file.account_id = Some(NEW_ACCOUNT.into());
        f.file.file_map_id = Some(NEW_MAP.into());
        f.file.s3_key = Some(key.clone());
        f.content_sha256 = Some(sha2::Sha256::digest(&bytes).into());
        f.content_size = Some(bytes.len() as u64);
        w.insert_transaction_files(&[f]).unwrap();
        let mut new = vec![tx_like(&txs[5], LOOKALIKE)];
        for i in 0..2 {
            let mut t = tx_like(&txs[0], &ticket(i));
            t.account_id = NEW_ACCOUNT.into();
            t.file_id = Some(NEW_FILE.into());
            t.description = "Bus ticket".into();
            t.amount = Decimal::parse("-2.80").unwrap();
            t.primary_category_id = Some(NEW_CATEGORY.into());
            t.categories.clear();
            new.push(t);
        }
        for i in 0..(NEW as usize - 3) {
            let mut t = tx_like(&txs[1], &new_tx(i));
            t.description = format!("New purchase {i}");
            t.date += 86_400_000 * (i as i64 + 1);
            new.push(t);
        }
        w.insert_transactions(&new).unwrap();
    });
    let options = BackupOptions {
        include_analytics: true,
        ..Default::default()
    };
    let package = env.backup_with("alice", "alice.fzip", &options);
    Scenario {
        env,
        package,
        changed_account: account.account_id,
        changed_category: category.category_id,
        changed_map: map.file_map_id,
        changed_file: file.file.file_id,
        changed_transactions: changed.into_iter().map(|t| t.transaction_id).collect(),
        lookalike_of,
        new_file: NEW_FILE.into(),
    }
}

impl Scenario {
    fn run(&self, merge: MergeStrategy, dry_run: bool) -> Result<ImportReport, EngineError> {
        import(
            &self.env.engine,
            "bob",
            &self.package,
            &ImportOptions {
                merge,
                dry_run,
                batch_id: None,
                job_id: None,
            },
            &NoProgress,
        )
    }

    fn bob_backup(&self, name: &str) -> PathBuf {
        self.env.backup("bob", name)
    }
}

fn same_packages(a: &Path, b: &Path) -> bool {
    diff(
        a,
        b,
        Limits::default(),
        DiffOptions { strict: true },
        &NoProgress,
    )
    .unwrap()
    .equal
}

/// The report without what differs between a dry run and the real thing by nature.
fn comparable(report: &ImportReport) -> Value {
    let mut v = serde_json::to_value(report).unwrap();
    let m = v.as_object_mut().unwrap();
    m.remove("dryRun");
    m.remove("durationMs");
    v
}

fn counts(v: [u64; 5]) -> [u64; 5] {
    v
}

fn five(c: &EntityCounts) -> [u64; 5] {
    [
        c.accounts,
        c.categories,
        c.file_maps,
        c.transaction_files,
        c.transactions,
    ]
}

/// Runs the dry run, then the import; checks that the dry run changed nothing and that both
/// reports agree.
fn dry_then_real(s: &Scenario, merge: MergeStrategy) -> ImportReport {
    let before = s.bob_backup(&format!("before-{}.fzip", merge.as_str()));
    let blobs_before = s.env.user_blobs("bob");
    let dry = s.run(merge, true).unwrap();
    assert!(dry.dry_run);
    let after_dry = s.bob_backup(&format!("after-dry-{}.fzip", merge.as_str()));
    assert!(
        same_packages(&before, &after_dry),
        "the dry run changed the profile"
    );
    assert_eq!(
        s.env.user_blobs("bob"),
        blobs_before,
        "the dry run wrote blobs"
    );
    let real = s.run(merge, false).unwrap();
    assert_eq!(
        comparable(&dry),
        comparable(&real),
        "the dry run did not predict the import"
    );
    real
}

fn fail_on_conflict_lists_every_conflict_and_imports_nothing(env: Env) {
    let s = scenario(env);
    let before = s.bob_backup("before.fzip");
    let blobs = s.env.user_blobs("bob");
    for dry_run in [true, false] {
        let err = s.run(MergeStrategy::FailOnConflict, dry_run).unwrap_err();
        let EngineError::ImportConflict(report) = err else {
            panic!("expected a conflict, got {err}")
        };
        // Everything of the earlier backup is in Bob's profile already, changed or not.
        assert_eq!(five(&report.conflicts), counts([12, 23, 3, 3, 400]));
        assert_eq!(
            report.conflict_list.len() as u64 + report.conflicts_omitted,
            report.conflicts.total()
        );
        assert!(
            report
                .conflict_list
                .iter()
                .any(|c| c.collection == "accounts" && c.id == s.changed_account)
        );
        assert_eq!(five(&report.created), counts([1, 1, 1, 1, NEW]));
        let after = s.bob_backup("after.fzip");
        assert!(same_packages(&before, &after), "rows changed");
        assert_eq!(s.env.user_blobs("bob"), blobs, "blobs changed");
    }
}

fn skip_existing_keeps_what_the_profile_has_and_adds_the_rest(env: Env) {
    let s = scenario(env);
    let r = dry_then_real(&s, MergeStrategy::SkipExisting);
    assert_eq!(five(&r.created), counts([1, 1, 1, 1, NEW]));
    assert_eq!(five(&r.skipped), counts([1, 1, 1, 1, 5]));
    assert_eq!(five(&r.unchanged), counts([11, 22, 2, 2, 395]));
    assert_eq!(r.updated.total() - r.updated.analytics, 0);
    assert_eq!(r.files_written, 1);

    let b = profile(&s.env, "bob");
    assert_eq!(
        b.accounts[&s.changed_account].account_name,
        "Bob's name for it"
    );
    assert_eq!(b.categories[&s.changed_category].name, "Bob's category");
    assert_eq!(b.file_maps[&s.changed_map].name, "Bob's map");
    assert_eq!(
        b.files[&s.changed_file].file.file_name,
        "renamed-by-bob.csv"
    );
    for id in &s.changed_transactions {
        assert!(b.transactions[id].description.ends_with("(edited by Bob)"));
    }
    assert_eq!(b.transactions.len() as u64, 400 + 3 + NEW);
    assert!(b.accounts.contains_key(NEW_ACCOUNT));
    assert!(b.accounts.contains_key(BOB_ACCOUNT));
    // The new statement file's bytes are Bob's own copy.
    let key = b.files[&s.new_file].file.s3_key.clone().unwrap();
    assert!(key.starts_with("users/bob/"), "{key}");
    assert_eq!(
        s.env.file_hashes("bob")[&s.new_file],
        s.env.file_hashes("alice")[&s.new_file]
    );
    // The two equal tickets are both there; the look-alike is reported, not dropped.
    assert!(b.transactions.contains_key(&ticket(0)));
    assert!(b.transactions.contains_key(&ticket(1)));
    assert!(b.transactions.contains_key(LOOKALIKE));
    assert_eq!(
        r.possible_duplicates_total, 1,
        "{:?}",
        r.possible_duplicates
    );
    let d = &r.possible_duplicates[0];
    assert_eq!(d.transaction_id, LOOKALIKE);
    assert_eq!(
        d.existing_transaction_id.as_deref(),
        Some(s.lookalike_of.as_str())
    );
    // The package verifies clean against the merged profile, and analytics are recomputed.
    assert!(r.analytics_recomputed > 0);
    let second = s.run(MergeStrategy::SkipExisting, false).unwrap();
    assert_eq!(second.created.total(), 0, "a second import adds nothing");
}

fn overwrite_replaces_what_the_profile_has_and_keeps_its_own(env: Env) {
    let s = scenario(env);
    let a = profile(&s.env, "alice");
    let r = dry_then_real(&s, MergeStrategy::Overwrite);
    assert_eq!(five(&r.created), counts([1, 1, 1, 1, NEW]));
    assert_eq!(five(&r.updated), counts([1, 1, 1, 1, 5]));
    assert_eq!(five(&r.unchanged), counts([11, 22, 2, 2, 395]));
    assert_eq!(r.skipped.total(), 0);

    let b = profile(&s.env, "bob");
    let owned = |mut e: Account| {
        e.set_owner("bob");
        e
    };
    assert_eq!(
        b.accounts[&s.changed_account],
        owned(a.accounts[&s.changed_account].clone())
    );
    assert_eq!(
        b.categories[&s.changed_category].name,
        a.categories[&s.changed_category].name
    );
    assert_eq!(
        b.file_maps[&s.changed_map].name,
        a.file_maps[&s.changed_map].name
    );
    assert_eq!(
        b.files[&s.changed_file].file.file_name,
        a.files[&s.changed_file].file.file_name
    );
    for id in &s.changed_transactions {
        assert_eq!(
            b.transactions[id].description,
            a.transactions[id].description
        );
    }
    // The overwritten account keeps Bob's own transaction on it; Bob's own data stays.
    assert_eq!(b.transactions[&bob_own(0)].account_id, s.changed_account);
    assert!(b.accounts.contains_key(BOB_ACCOUNT));
    assert_eq!(b.transactions.len() as u64, 400 + 3 + NEW);
    // The replaced statement file's bytes are Bob's and still match.
    assert_eq!(
        s.env.file_hashes("bob")[&s.changed_file],
        s.env.file_hashes("alice")[&s.changed_file]
    );
    let mut reader =
        fzip_engine::open_package(&s.bob_backup("after.fzip"), Limits::default()).unwrap();
    let v = fzip_engine::verify(&mut reader, &NoProgress).unwrap();
    assert!(v.valid, "{:?}", v.problems);
}

fn references_that_cannot_be_made_valid_fail_the_whole_import(env: Env) {
    let s = scenario(env);
    // Alice's transactions only, into Carol's profile that has none of her accounts.
    let options = BackupOptions {
        selection: fzip_engine::backup::Selection {
            backup_type: fzip_engine::backup::BackupType::TransactionsOnly,
            ..Default::default()
        },
        ..Default::default()
    };
    let partial = s.env.backup_with("alice", "tx-only.fzip", &options);
    demo_profile(
        &s.env.engine,
        "carol",
        &DemoOptions {
            transactions: 10,
            files: 1,
            seed: 77,
        },
        &NoProgress,
    )
    .unwrap();
    let before = s.env.backup("carol", "carol-before.fzip");
    for dry_run in [true, false] {
        let err = import(
            &s.env.engine,
            "carol",
            &partial,
            &ImportOptions {
                merge: MergeStrategy::SkipExisting,
                dry_run,
                batch_id: None,
                job_id: None,
            },
            &NoProgress,
        )
        .unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains("neither the package nor the profile holds")
                && text.contains("accountId"),
            "{text}"
        );
        assert!(same_packages(
            &before,
            &s.env.backup("carol", "carol-after.fzip")
        ));
    }
    // Into Bob, who has Alice's accounts (but not the new ones): still refused, because the
    // new transactions point at Alice's new account.
    let err = import(
        &s.env.engine,
        "bob",
        &partial,
        &ImportOptions {
            merge: MergeStrategy::SkipExisting,
            dry_run: false,
            batch_id: None,
            job_id: None,
        },
        &NoProgress,
    )
    .unwrap_err();
    assert!(err.to_string().contains(NEW_ACCOUNT), "{err}");
    // After the full package, the transactions-only one imports (everything exists).
    s.run(MergeStrategy::SkipExisting, false).unwrap();
    let r = import(
        &s.env.engine,
        "bob",
        &partial,
        &ImportOptions {
            merge: MergeStrategy::SkipExisting,
            dry_run: false,
            batch_id: None,
            job_id: None,
        },
        &NoProgress,
    )
    .unwrap();
    assert_eq!(r.created.total(), 0);
    assert_eq!(r.skipped.transactions, 5);
}

/// Cancels after the first transactions were written.
struct CancelDuringTransactions {
    writing: std::sync::atomic::AtomicBool,
}

impl Progress for CancelDuringTransactions {
    fn phase(&self, name: &str, _total: u64) {
        if name == "importing_transactions" {
            self.writing
                .store(true, std::sync::atomic::Ordering::SeqCst);
        }
    }
    fn advance(&self, _n: u64) {}
    fn is_cancelled(&self) -> bool {
        self.writing.load(std::sync::atomic::Ordering::SeqCst)
    }
}

fn a_cancelled_import_leaves_the_profile_as_it_was(env: Env) {
    let s = scenario(env);
    let before = s.bob_backup("before.fzip");
    let blobs = s.env.user_blobs("bob");
    let progress = CancelDuringTransactions {
        writing: false.into(),
    };
    let err = import(
        &s.env.engine,
        "bob",
        &s.package,
        &ImportOptions {
            merge: MergeStrategy::Overwrite,
            dry_run: false,
            batch_id: None,
            job_id: None,
        },
        &progress,
    )
    .unwrap_err();
    assert!(matches!(err, EngineError::Cancelled), "{err}");
    assert!(same_packages(&before, &s.bob_backup("after.fzip")));
    assert_eq!(
        s.env.user_blobs("bob"),
        blobs,
        "the new file's blob was left"
    );
}

common::on_every_backend!(
    fail_on_conflict_lists_every_conflict_and_imports_nothing,
    skip_existing_keeps_what_the_profile_has_and_adds_the_rest,
    overwrite_replaces_what_the_profile_has_and_keeps_its_own,
    references_that_cannot_be_made_valid_fail_the_whole_import,
    a_cancelled_import_leaves_the_profile_as_it_was,
);
