//! Selective backups hold exactly what was selected, stay self-consistent, verify, restore and
//! import; backups carry a measured quality block; analytics survive a round trip; a backup is
//! one consistent snapshot.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::collections::{BTreeSet, HashMap, HashSet};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};

use common::Env;
use fzip_engine::backup::{BackupType, Selection};
use fzip_engine::{
    BackupOptions, DemoOptions, Engine, ImportOptions, MergeStrategy, NoProgress, Progress,
    RestoreOptions, VerifyReport, analytics, backup, demo_profile, import, restore,
};
use fzip_format::{Limits, Severity};
use fzip_model::*;
use fzip_store::{DEFAULT_BATCH, StoredFile};

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

struct Data {
    accounts: Vec<Account>,
    categories: Vec<Category>,
    maps: Vec<FileMap>,
    files: Vec<StoredFile>,
    transactions: Vec<Transaction>,
}

fn data(engine: &Engine, user: &str) -> Data {
    let mut s = engine.store.snapshot(user).unwrap();
    Data {
        accounts: all(|n| s.next_accounts(n).unwrap()),
        categories: all(|n| s.next_categories(n).unwrap()),
        maps: all(|n| s.next_file_maps(n).unwrap()),
        files: all(|n| s.next_transaction_files(n).unwrap()),
        transactions: all(|n| s.next_transactions(n).unwrap()),
    }
}

fn check(path: &Path) -> VerifyReport {
    let mut r = fzip_engine::open_package(path, Limits::default()).unwrap();
    fzip_engine::verify(&mut r, &NoProgress).unwrap()
}

fn ids<T: Entity>(rows: &[T]) -> BTreeSet<String> {
    rows.iter().map(|e| e.id().into_owned()).collect()
}

/// The ids a package holds, by collection, read back through the restore of it.
fn restored_ids(env: &Env, user: &str) -> [BTreeSet<String>; 5] {
    let d = data(&env.engine, user);
    [
        ids(&d.accounts),
        ids(&d.categories),
        ids(&d.maps),
        d.files.iter().map(|f| f.file.file_id.clone()).collect(),
        ids(&d.transactions),
    ]
}

fn setup(env: &Env) -> Data {
    demo_profile(
        &env.engine,
        "alice",
        &DemoOptions {
            transactions: 3_000,
            files: 6,
            seed: 5,
        },
        &NoProgress,
    )
    .unwrap();
    data(&env.engine, "alice")
}

/// Expected content of a selection, computed here independently of the backup code.
fn expected(d: &Data, sel: &Selection) -> [BTreeSet<String>; 5] {
    let t = sel.backup_type;
    let has = |k: EntityKind| match t {
        BackupType::Complete | BackupType::Selective => true,
        BackupType::AccountsOnly => k == EntityKind::Accounts,
        BackupType::TransactionsOnly => k == EntityKind::Transactions,
        BackupType::CategoriesOnly => k == EntityKind::Categories,
    };
    let accounts: BTreeSet<String> = if has(EntityKind::Accounts) {
        d.accounts
            .iter()
            .filter(|a| {
                sel.account_ids
                    .as_ref()
                    .is_none_or(|s| s.contains(&a.account_id))
            })
            .map(|a| a.account_id.clone())
            .collect()
    } else {
        BTreeSet::new()
    };
    let parent: HashMap<&str, Option<&str>> = d
        .categories
        .iter()
        .map(|c| (c.category_id.as_str(), c.parent_category_id.as_deref()))
        .collect();
    let categories: BTreeSet<String> = if !has(EntityKind::Categories) {
        BTreeSet::new()
    } else if let Some(wanted) = &sel.category_ids {
        let mut out = BTreeSet::new();
        for w in wanted {
            let mut cur = Some(w.as_str());
            while let Some(c) = cur {
                out.insert(c.to_string());
                cur = parent[c];
            }
        }
        out
    } else {
        ids(&d.categories)
    };
    let files: Vec<&StoredFile> = if has(EntityKind::TransactionFiles) {
        d.files
            .iter()
            .filter(|f| {
                sel.account_ids
                    .as_ref()
                    .is_none_or(|s| f.file.account_id.as_ref().is_some_and(|a| s.contains(a)))
            })
            .filter(|f| {
                let r = f.file.date_range.as_ref().unwrap();
                sel.date_from.is_none_or(|from| r.end_date >= from)
                    && sel.date_to.is_none_or(|to| r.start_date <= to)
            })
            .collect()
    } else {
        Vec::new()
    };
    let maps: BTreeSet<String> = if !has(EntityKind::FileMaps) {
        BTreeSet::new()
    } else if let Some(s) = &sel.account_ids {
        let used: HashSet<&str> = d
            .accounts
            .iter()
            .filter(|a| s.contains(&a.account_id))
            .filter_map(|a| a.default_file_map_id.as_deref())
            .chain(files.iter().filter_map(|f| f.file.file_map_id.as_deref()))
            .collect();
        d.maps
            .iter()
            .filter(|m| {
                used.contains(m.file_map_id.as_str())
                    || m.account_id.as_ref().is_some_and(|a| s.contains(a))
            })
            .map(|m| m.file_map_id.clone())
            .collect()
    } else {
        ids(&d.maps)
    };
    let transactions: BTreeSet<String> = if has(EntityKind::Transactions) {
        d.transactions
            .iter()
            .filter(|t| {
                sel.account_ids
                    .as_ref()
                    .is_none_or(|s| s.contains(&t.account_id))
            })
            .filter(|t| {
                sel.date_from.is_none_or(|f| t.date >= f) && sel.date_to.is_none_or(|x| t.date <= x)
            })
            .filter(|t| {
                sel.category_ids.as_ref().is_none_or(|s| {
                    t.primary_category_id
                        .as_ref()
                        .is_some_and(|p| s.contains(p))
                        || t.categories.iter().any(|a| s.contains(&a.category_id))
                })
            })
            .map(|t| t.transaction_id.clone())
            .collect()
    } else {
        BTreeSet::new()
    };
    [
        accounts,
        categories,
        maps,
        files.iter().map(|f| f.file.file_id.clone()).collect(),
        transactions,
    ]
}

fn each_selection_holds_exactly_what_was_selected_and_restores_and_imports(env: Env) {
    let d = setup(&env);
    // The account with the most transactions, a date window, a category with a parent.
    let mut per_account: HashMap<&str, usize> = HashMap::new();
    for t in &d.transactions {
        *per_account.entry(&t.account_id).or_default() += 1;
    }
    let busiest = per_account
        .iter()
        .max_by_key(|(id, n)| (**n, *id))
        .unwrap()
        .0
        .to_string();
    let (min, max) = d
        .transactions
        .iter()
        .fold((i64::MAX, i64::MIN), |(a, b), t| {
            (a.min(t.date), b.max(t.date))
        });
    let from = min + (max - min) * 3 / 10;
    let to = min + (max - min) * 6 / 10;
    let used: HashSet<&str> = d
        .transactions
        .iter()
        .filter_map(|t| t.primary_category_id.as_deref())
        .collect();
    let category = d
        .categories
        .iter()
        .find(|c| c.parent_category_id.is_some() && used.contains(c.category_id.as_str()))
        .unwrap()
        .category_id
        .clone();
    let one = |s: &str| Some(BTreeSet::from([s.to_string()]));
    let cases: Vec<(&str, Selection)> = vec![
        ("complete", Selection::complete()),
        (
            "accounts_only",
            Selection {
                backup_type: BackupType::AccountsOnly,
                ..Default::default()
            },
        ),
        (
            "transactions_only",
            Selection {
                backup_type: BackupType::TransactionsOnly,
                ..Default::default()
            },
        ),
        (
            "categories_only",
            Selection {
                backup_type: BackupType::CategoriesOnly,
                ..Default::default()
            },
        ),
        (
            "selective_account",
            Selection {
                backup_type: BackupType::Selective,
                account_ids: one(&busiest),
                ..Default::default()
            },
        ),
        (
            "selective_dates",
            Selection {
                backup_type: BackupType::Selective,
                date_from: Some(from),
                date_to: Some(to),
                ..Default::default()
            },
        ),
        (
            "selective_category",
            Selection {
                backup_type: BackupType::Selective,
                category_ids: one(&category),
                ..Default::default()
            },
        ),
        (
            "selective_all_filters",
            Selection {
                backup_type: BackupType::Selective,
                account_ids: one(&busiest),
                date_from: Some(from),
                date_to: Some(to),
                category_ids: None,
            },
        ),
    ];
    let mut nonempty_transactions = 0;
    for (i, (name, sel)) in cases.into_iter().enumerate() {
        let want = expected(&d, &sel);
        let options = BackupOptions {
            selection: sel.clone(),
            ..Default::default()
        };
        let path = env.backup_with("alice", &format!("{name}.fzip"), &options);
        let v = check(&path);
        assert!(v.valid, "{name}: {:?}", v.problems);
        assert_eq!(v.errors, 0, "{name}: {:?}", v.problems);
        let c = &v.counts;
        assert_eq!(
            [
                c.accounts,
                c.categories,
                c.file_maps,
                c.transaction_files,
                c.transactions
            ],
            want.clone().map(|s| s.len() as u64),
            "{name}: counts"
        );
        assert_eq!(
            v.package.backup_type.as_deref(),
            Some(sel.backup_type.as_str())
        );
        if want[4].len() > 10 && want[4].len() < d.transactions.len() {
            nonempty_transactions += 1;
        }
        // The manifest says what it holds and which filters made it.
        let r = fzip_engine::open_package(&path, Limits::default()).unwrap();
        let selection = r.manifest().raw.get("selection").cloned();
        if name == "complete" {
            // A whole profile needs no selection block (it holds no external references).
            assert!(selection.is_none(), "{selection:?}");
        } else {
            let selection = selection.unwrap();
            assert_eq!(selection["partial"], true, "{name}");
            assert_eq!(selection["backupType"], sel.backup_type.as_str());
            assert_eq!(
                selection["filters"]["dateRangeStart"],
                serde_json::json!(sel.date_from)
            );
            let counts = &selection["counts"];
            assert_eq!(counts["transactions"], want[4].len() as u64, "{name}");
        }

        // Restore into an empty profile: exactly the selected entities.
        let user = format!("restored-{i}");
        let report = restore(
            &env.engine,
            &user,
            &path,
            &RestoreOptions::default(),
            &NoProgress,
        )
        .unwrap();
        assert_eq!(report.restored.transactions, want[4].len() as u64);
        assert_eq!(restored_ids(&env, &user), want, "{name}: restored ids");
        assert_eq!(report.files_restored, want[3].len() as u64);

        // Import into the live profile it came from: all there already.
        let r = import(
            &env.engine,
            "alice",
            &path,
            &ImportOptions {
                merge: MergeStrategy::SkipExisting,
                dry_run: false,
                batch_id: None,
                job_id: None,
            },
            &NoProgress,
        )
        .unwrap();
        assert_eq!(r.created.total(), 0, "{name}");
        assert_eq!(r.skipped.total(), 0, "{name}");
        assert_eq!(
            r.unchanged.transactions,
            want[4].len() as u64,
            "{name}: {r:?}"
        );
    }
    assert!(
        nonempty_transactions >= 3,
        "the filters selected too little"
    );
    assert_eq!(data(&env.engine, "alice").transactions.len(), 3_000);
}

fn a_date_window_imports_into_a_profile_holding_the_older_part(env: Env) {
    let d = setup(&env);
    let (min, max) = d
        .transactions
        .iter()
        .fold((i64::MAX, i64::MIN), |(a, b), t| {
            (a.min(t.date), b.max(t.date))
        });
    let cut = min + (max - min) / 2;
    let older = env.backup_with(
        "alice",
        "older.fzip",
        &BackupOptions {
            selection: Selection {
                backup_type: BackupType::Selective,
                date_to: Some(cut),
                ..Default::default()
            },
            ..Default::default()
        },
    );
    let newer = env.backup_with(
        "alice",
        "newer.fzip",
        &BackupOptions {
            selection: Selection {
                backup_type: BackupType::Selective,
                date_from: Some(cut + 1),
                ..Default::default()
            },
            ..Default::default()
        },
    );
    restore(
        &env.engine,
        "carol",
        &older,
        &RestoreOptions::default(),
        &NoProgress,
    )
    .unwrap();
    let before = data(&env.engine, "carol").transactions.len();
    let newer_count = d.transactions.iter().filter(|t| t.date > cut).count();
    assert_eq!(before + newer_count, 3_000);
    let run = |merge| {
        import(
            &env.engine,
            "carol",
            &newer,
            &ImportOptions {
                merge,
                dry_run: false,
                batch_id: None,
                job_id: None,
            },
            &NoProgress,
        )
    };
    // Accounts, categories and file maps are in both halves: fail_on_conflict refuses…
    let err = run(MergeStrategy::FailOnConflict).unwrap_err();
    assert!(
        matches!(err, fzip_engine::EngineError::ImportConflict(_)),
        "{err}"
    );
    // …and skip_existing adds the newer transactions.
    let r = run(MergeStrategy::SkipExisting).unwrap();
    assert_eq!(r.created.transactions, newer_count as u64);
    // Now Carol holds what Alice holds.
    let a = env.backup("alice", "alice.fzip");
    let c = env.backup("carol", "carol.fzip");
    let diff = fzip_engine::diff(
        &a,
        &c,
        Limits::default(),
        fzip_engine::DiffOptions { strict: false },
        &NoProgress,
    )
    .unwrap();
    assert!(diff.equal, "{diff:?}");
}

fn a_clean_backup_scores_excellent_and_a_missing_file_is_counted_and_named(env: Env) {
    let d = setup(&env);
    let path = env.backup("alice", "clean.fzip");
    let q = check(&path).quality.unwrap();
    assert_eq!(q["overall_quality"], "excellent");
    assert_eq!(q["data_integrity_score"], 100.0);
    assert_eq!(q["completeness_score"], 100.0);
    assert_eq!(q["files_processed"], 6);
    assert_eq!(q["files_failed"], 0);
    assert_eq!(q["entities_expected"], q["entities_scanned"]);
    assert!(q["compression_ratio"].as_f64().unwrap() > 0.0);
    assert!(q["issues"].as_array().unwrap().is_empty());

    let victim = &d.files[2].file;
    env.engine
        .blobs
        .delete(victim.s3_key.as_ref().unwrap())
        .unwrap();
    let err = backup(
        &env.engine,
        "alice",
        std::io::Cursor::new(Vec::new()),
        &BackupOptions::default(),
        &NoProgress,
    )
    .err()
    .unwrap();
    assert!(err.to_string().contains(&victim.file_id), "{err}");
    let path = env.backup_with(
        "alice",
        "partial.fzip",
        &BackupOptions {
            continue_on_missing_files: true,
            ..Default::default()
        },
    );
    let v = check(&path);
    let q = v.quality.unwrap();
    assert_eq!(q["files_failed"], 1);
    // What the package holds: 5 of the 6 statement files.
    assert_eq!(q["files_processed"], 5);
    assert_eq!(q["files_expected"], 6);
    let issues = q["issues"].to_string();
    assert!(
        issues.contains(&victim.file_id) && issues.contains(&victim.file_name),
        "{issues}"
    );
    assert!(q["data_integrity_score"].as_f64().unwrap() < 100.0);
    assert_ne!(q["overall_quality"], "excellent");
    assert!(!q["recommendations"].as_array().unwrap().is_empty());
    assert!(
        v.problems
            .iter()
            .any(|p| p.severity == Severity::Warning && p.message.contains(&victim.file_id))
    );
}

fn analytics_of_a_restored_profile_equal_those_of_its_source(env: Env) {
    setup(&env);
    analytics::recompute(&env.engine, "alice").unwrap();
    let source = analytics::load(&env.engine, "alice").unwrap();
    assert!(source.len() > 10, "{}", source.len());
    assert!(
        source
            .iter()
            .any(|r| r.analytic_type == AnalyticType::CashFlow)
    );
    assert!(
        source
            .iter()
            .any(|r| r.analytic_type == AnalyticType::CategoryTrends)
    );
    for include in [true, false] {
        let path = env.backup_with(
            "alice",
            &format!("a-{include}.fzip"),
            &BackupOptions {
                include_analytics: include,
                ..Default::default()
            },
        );
        assert_eq!(check(&path).counts.analytics > 0, include);
        let user = format!("bob-{include}");
        let r = restore(
            &env.engine,
            &user,
            &path,
            &RestoreOptions::default(),
            &NoProgress,
        )
        .unwrap();
        assert_eq!(r.analytics_recomputed, source.len() as u64);
        let restored = analytics::load(&env.engine, &user).unwrap();
        let canon = |rows: &[AnalyticsRecord]| -> BTreeSet<String> {
            rows.iter().map(|r| r.canonical_json(true)).collect()
        };
        assert_eq!(canon(&restored), canon(&source));
    }
}

/// Changes the profile from another connection once the backup is streaming transactions.
struct ChangeMidway<'a> {
    engine: &'a Engine,
    done: AtomicBool,
    account: Account,
    transaction: Transaction,
}

impl Progress for ChangeMidway<'_> {
    fn phase(&self, name: &str, _total: u64) {
        if name == "writing_transactions" && !self.done.swap(true, Ordering::SeqCst) {
            let mut w = self.engine.store.begin_write("alice").unwrap();
            let mut a = self.account.clone();
            a.account_name = "Renamed during the backup".into();
            w.upsert_accounts(&[a]).unwrap();
            let mut t = self.transaction.clone();
            t.transaction_id = "0dd00000-0000-4000-8000-000000000001".into();
            w.insert_transactions(&[t]).unwrap();
            let mut changed = self.transaction.clone();
            changed.amount = Decimal::parse("-999999.99").unwrap();
            w.upsert_transactions(&[changed]).unwrap();
            w.commit().unwrap();
        }
    }
}

fn a_backup_is_one_consistent_snapshot(env: Env) {
    let d = setup(&env);
    let last = d.transactions.last().unwrap().clone();
    let progress = ChangeMidway {
        engine: &env.engine,
        done: AtomicBool::new(false),
        account: d.accounts[0].clone(),
        transaction: last.clone(),
    };
    let path = env.path("during.fzip");
    let file = std::fs::File::create(&path).unwrap();
    let (file, report) = backup(
        &env.engine,
        "alice",
        file,
        &BackupOptions::default(),
        &progress,
    )
    .unwrap();
    file.set_len(report.package_bytes).unwrap();
    assert!(progress.done.load(Ordering::SeqCst));
    // The change was committed…
    let now = data(&env.engine, "alice");
    assert_eq!(now.transactions.len(), 3_001);
    // …but the package is the profile as it was when the backup began.
    restore(
        &env.engine,
        "snap",
        &path,
        &RestoreOptions::default(),
        &NoProgress,
    )
    .unwrap();
    let s = data(&env.engine, "snap");
    assert_eq!(s.transactions.len(), 3_000);
    let restored_last = s
        .transactions
        .iter()
        .find(|t| t.transaction_id == last.transaction_id)
        .unwrap();
    assert_eq!(restored_last.amount, last.amount);
    let acc = s
        .accounts
        .iter()
        .find(|a| a.account_id == d.accounts[0].account_id)
        .unwrap();
    assert_eq!(acc.account_name, d.accounts[0].account_name);
    assert_eq!(check(&path).quality.unwrap()["completeness_score"], 100.0);
}

common::on_every_backend!(
    each_selection_holds_exactly_what_was_selected_and_restores_and_imports,
    a_date_window_imports_into_a_profile_holding_the_older_part,
    a_clean_backup_scores_excellent_and_a_missing_file_is_counted_and_named,
    analytics_of_a_restored_profile_equal_those_of_its_source,
    a_backup_is_one_consistent_snapshot,
);
