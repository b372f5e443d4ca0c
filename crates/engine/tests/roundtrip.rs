//! Backup → verify → restore → backup → diff, for demo profiles and HouseF3's own packages.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::fs::File;

use common::Env;
use fzip_engine::{
    DemoOptions, DiffOptions, EngineError, NoProgress, RestoreOptions, demo_profile, diff, restore,
};
use fzip_format::{Limits, Severity};
use fzip_model::{Entity, EntityKind};
use fzip_store::DEFAULT_BATCH;
use serde_json::Value;

fn demo_profile_round_trips_exactly(env: Env) {
    let report = demo_profile(
        &env.engine,
        "alice",
        &DemoOptions {
            transactions: 3_000,
            files: 7,
            seed: 42,
        },
        &NoProgress,
    )
    .unwrap();
    assert_eq!(report.transactions, 3_000);
    assert_eq!(report.transaction_files, 7);
    let a = env.backup("alice", "alice.fzip");

    let mut reader = fzip_engine::open_package(&a, Limits::default()).unwrap();
    let v = fzip_engine::verify(&mut reader, &NoProgress).unwrap();
    assert!(v.valid, "{:?}", v.problems);
    assert_eq!(v.errors + v.warnings, 0, "{:?}", v.problems);
    assert!(v.housef3_warnings.is_empty(), "{:?}", v.housef3_warnings);
    assert_eq!(v.counts.transactions, 3_000);

    let r = restore(
        &env.engine,
        "bob",
        &a,
        &RestoreOptions::default(),
        &NoProgress,
    )
    .unwrap();
    assert_eq!(r.restored.transactions, 3_000);
    assert_eq!(r.files_restored, 7);
    let b = env.backup("bob", "bob.fzip");
    for strict in [false, true] {
        let d = diff(
            &a,
            &b,
            Limits::default(),
            DiffOptions { strict },
            &NoProgress,
        )
        .unwrap();
        assert!(d.equal, "{d:?}");
    }
    // Same bytes, in bob's own blobs.
    assert_eq!(
        env.file_hashes("alice").values().collect::<Vec<_>>().len(),
        7
    );
    let (ha, hb) = (env.file_hashes("alice"), env.file_hashes("bob"));
    assert_eq!(ha, hb);
    assert!(
        env.user_blobs("bob")
            .iter()
            .all(|k| k.starts_with("users/bob/"))
    );
}

#[test]
fn demo_profile_is_deterministic_and_covers_the_model() {
    let env = Env::new();
    let options = DemoOptions {
        transactions: 2_000,
        files: 12,
        seed: 7,
    };
    demo_profile(&env.engine, "a", &options, &NoProgress).unwrap();
    demo_profile(&env.engine, "b", &options, &NoProgress).unwrap();
    let pa = env.backup("a", "a.fzip");
    let pb = env.backup("b", "b.fzip");
    assert!(
        diff(
            &pa,
            &pb,
            Limits::default(),
            DiffOptions { strict: true },
            &NoProgress
        )
        .unwrap()
        .equal
    );

    let mut snap = env.engine.store.snapshot("a").unwrap();
    let accounts = snap.next_accounts(100).unwrap();
    let types: std::collections::BTreeSet<_> = accounts.iter().map(|a| a.account_type).collect();
    assert_eq!(
        types.len(),
        fzip_model::AccountType::ALL.len(),
        "every account type"
    );
    let currencies: std::collections::BTreeSet<_> = accounts
        .iter()
        .filter_map(|a| a.currency.as_ref().map(|c| c.as_str().to_string()))
        .collect();
    assert!(
        currencies.contains("JPY") && currencies.contains("other"),
        "{currencies:?}"
    );
    // Only codes HouseF3 knows, so the demo profile loads into HouseF3.
    assert!(
        currencies
            .iter()
            .all(|c| fzip_model::Currency::HOUSEF3.contains(&c.as_str())),
        "{currencies:?}"
    );
    let categories = snap.next_categories(100).unwrap();
    let conditions: std::collections::BTreeSet<_> = categories
        .iter()
        .flat_map(|c| c.rules.iter().map(|r| r.condition))
        .collect();
    assert!(
        conditions.len() >= 8,
        "rules of every condition: {conditions:?}"
    );
    assert!(categories.iter().any(|c| c.parent_category_id.is_some()));
    let mut txs = Vec::new();
    loop {
        let b = snap.next_transactions(DEFAULT_BATCH).unwrap();
        if b.is_empty() {
            break;
        }
        txs.extend(b);
    }
    assert!(txs.iter().any(|t| t.memo.is_some()));
    assert!(txs.iter().any(|t| t.check_number.is_some()));
    assert!(txs.iter().any(|t| t.fit_id.is_some()));
    assert!(txs.iter().any(|t| t.amount.is_negative()));
    assert!(txs.iter().any(|t| !t.description.is_ascii()));
    assert!(txs.iter().any(|t| {
        t.categories
            .iter()
            .any(|c| c.status == fzip_model::AssignmentStatus::Suggested)
    }));
    assert!(txs.iter().any(|t| {
        t.categories
            .iter()
            .any(|c| c.status == fzip_model::AssignmentStatus::Confirmed && c.is_manual)
    }));
    assert!(
        txs.iter()
            .any(|t| t.amount.as_str().split('.').nth(1).map(str::len) == Some(3)),
        "three-decimal (Kuwaiti dinar) amounts"
    );
    assert!(
        txs.iter()
            .any(|t| t.currency.as_ref().map(|c| c.as_str()) == Some("JPY")
                && !t.amount.as_str().contains('.'))
    );
    for t in &txs {
        assert!(t.validate().is_empty(), "{:?}", t.validate());
    }
    // Statement bytes are real-looking CSV and OFX.
    let files = snap.next_transaction_files(100).unwrap();
    let mut kinds = std::collections::BTreeSet::new();
    for f in &files {
        let mut bytes = Vec::new();
        std::io::Read::read_to_end(
            &mut env
                .engine
                .blobs
                .open(f.file.s3_key.as_ref().unwrap())
                .unwrap(),
            &mut bytes,
        )
        .unwrap();
        let text = String::from_utf8(bytes).unwrap();
        if text.starts_with("OFXHEADER") {
            assert!(text.contains("<STMTTRN>") && text.contains("</OFX>"));
            kinds.insert("ofx");
        } else {
            assert!(text.lines().count() as i64 > f.file.transaction_count.unwrap_or(0));
            kinds.insert("csv");
        }
    }
    assert_eq!(kinds.len(), 2);
}

/// Every key HouseF3 stored for an entity must come back with the same value.
fn assert_contains_groundtruth(kind: &str, ours: &Value, truth: &Value) {
    let (Value::Object(o), Value::Object(t)) = (ours, truth) else {
        panic!("{kind}: not objects")
    };
    for (k, tv) in t {
        if k == "userId" || k == "s3Key" {
            continue;
        }
        let ov = o
            .get(k)
            .unwrap_or_else(|| panic!("{kind}: field {k} was lost ({tv})"));
        same_value(&format!("{kind}.{k}"), ov, tv);
    }
}

fn same_value(path: &str, ours: &Value, truth: &Value) {
    match (ours, truth) {
        (Value::Number(n), Value::String(s)) => assert_eq!(&n.to_string(), s, "{path}"),
        (Value::Object(_), Value::Object(_)) => assert_contains_groundtruth(path, ours, truth),
        (Value::Array(a), Value::Array(b)) => {
            assert_eq!(a.len(), b.len(), "{path}");
            for (i, (x, y)) in a.iter().zip(b).enumerate() {
                same_value(&format!("{path}[{i}]"), x, y);
            }
        }
        _ => assert_eq!(ours, truth, "{path}"),
    }
}

fn collect<T: Entity>(snap_next: &mut dyn FnMut() -> Vec<T>) -> Vec<T> {
    let mut out = Vec::new();
    loop {
        let b = snap_next();
        if b.is_empty() {
            return out;
        }
        out.extend(b);
    }
}

fn housef3_packages_restore_completely(env: Env) {
    for name in ["small", "medium"] {
        let Some(dir) = fzip_testkit::housef3_fixture(name) else {
            eprintln!("HouseF3 fixture {name} not found; skipped");
            continue;
        };
        let package = dir.join("backup.fzip");
        let user = format!("restored-{name}");
        restore(
            &env.engine,
            &user,
            &package,
            &RestoreOptions::default(),
            &NoProgress,
        )
        .unwrap();

        let expected: Value =
            serde_json::from_reader(File::open(dir.join("expected.json")).unwrap()).unwrap();
        let c = &expected["counts"];
        let s = env.engine.store.summary(&user).unwrap();
        assert_eq!(s.counts.accounts, c["accounts"].as_u64().unwrap());
        assert_eq!(s.counts.transactions, c["transactions"].as_u64().unwrap());
        assert_eq!(s.counts.categories, c["categories"].as_u64().unwrap());
        assert_eq!(s.category_rules, c["categoryRules"].as_u64().unwrap());
        assert_eq!(s.counts.file_maps, c["fileMaps"].as_u64().unwrap());
        assert_eq!(
            s.counts.transaction_files,
            c["transactionFiles"].as_u64().unwrap()
        );

        // Every original file, byte for byte, in the restoring user's blobs.
        let hashes = env.file_hashes(&user);
        for (file_id, info) in expected["files"].as_object().unwrap() {
            assert_eq!(
                hashes.get(file_id).map(String::as_str),
                info["sha256"].as_str(),
                "{file_id}"
            );
        }
        assert!(
            env.user_blobs(&user)
                .iter()
                .all(|k| k.starts_with(&format!("users/{user}/")))
        );

        // Everything HouseF3 stored before its backup is in the restored profile.
        let truth: Value = serde_json::from_reader(flate2::read::GzDecoder::new(
            File::open(dir.join("groundtruth.json.gz")).unwrap(),
        ))
        .unwrap();
        let items = &truth["items"];
        let mut snap = env.engine.store.snapshot(&user).unwrap();
        let check = |kind: EntityKind, ours: Vec<(String, Value)>, table: &str| {
            let table = items[table].as_object().unwrap();
            assert_eq!(ours.len(), table.len(), "{kind}");
            for (id, v) in ours {
                let t = table
                    .get(&id)
                    .unwrap_or_else(|| panic!("{kind} {id} not in ground truth"));
                assert_contains_groundtruth(&format!("{kind} {id}"), &v, t);
                assert_eq!(v["userId"], Value::String(user.clone()));
            }
        };
        let pairs = |v: Vec<(String, Value)>| v;
        let accounts = collect(&mut || snap.next_accounts(DEFAULT_BATCH).unwrap());
        check(
            EntityKind::Accounts,
            pairs(
                accounts
                    .iter()
                    .map(|e| (e.id().into_owned(), serde_json::to_value(e).unwrap()))
                    .collect(),
            ),
            "accounts",
        );
        let categories = collect(&mut || snap.next_categories(DEFAULT_BATCH).unwrap());
        check(
            EntityKind::Categories,
            categories
                .iter()
                .map(|e| (e.id().into_owned(), serde_json::to_value(e).unwrap()))
                .collect(),
            "categories",
        );
        let maps = collect(&mut || snap.next_file_maps(DEFAULT_BATCH).unwrap());
        check(
            EntityKind::FileMaps,
            maps.iter()
                .map(|e| (e.id().into_owned(), serde_json::to_value(e).unwrap()))
                .collect(),
            "file_maps",
        );
        let txs = collect(&mut || snap.next_transactions(DEFAULT_BATCH).unwrap());
        check(
            EntityKind::Transactions,
            txs.iter()
                .map(|e| (e.id().into_owned(), serde_json::to_value(e).unwrap()))
                .collect(),
            "transactions",
        );
        let mut files = Vec::new();
        loop {
            let b = snap.next_transaction_files(DEFAULT_BATCH).unwrap();
            if b.is_empty() {
                break;
            }
            files.extend(b.into_iter().map(|f| f.file));
        }
        check(
            EntityKind::TransactionFiles,
            files
                .iter()
                .map(|e| (e.id().into_owned(), serde_json::to_value(e).unwrap()))
                .collect(),
            "transaction_files",
        );
        drop(snap);

        // Backing the restored profile up again gives the same profile, exporter keys included.
        let again = env.backup(&user, "again.fzip");
        let d = diff(
            &package,
            &again,
            Limits::default(),
            DiffOptions { strict: true },
            &NoProgress,
        )
        .unwrap();
        assert!(d.equal, "{d:?}");
    }
}

fn restore_into_a_non_empty_profile_changes_nothing(env: Env) {
    demo_profile(
        &env.engine,
        "alice",
        &DemoOptions {
            transactions: 300,
            files: 2,
            seed: 1,
        },
        &NoProgress,
    )
    .unwrap();
    demo_profile(
        &env.engine,
        "bob",
        &DemoOptions {
            transactions: 50,
            files: 1,
            seed: 2,
        },
        &NoProgress,
    )
    .unwrap();
    let a = env.backup("alice", "a.fzip");
    let before = env.backup("bob", "before.fzip");
    let blobs_before = env.user_blobs("bob");
    match restore(
        &env.engine,
        "bob",
        &a,
        &RestoreOptions::default(),
        &NoProgress,
    ) {
        Err(EngineError::ProfileNotEmpty { user, summary }) => {
            assert_eq!(user, "bob");
            assert_eq!(summary.counts.transactions, 50);
        }
        other => panic!("{:?}", other.map(|r| r.restored)),
    }
    let after = env.backup("bob", "after.fzip");
    assert!(
        diff(
            &before,
            &after,
            Limits::default(),
            DiffOptions { strict: true },
            &NoProgress
        )
        .unwrap()
        .equal
    );
    assert_eq!(env.user_blobs("bob"), blobs_before);
}

fn validate_only_writes_nothing(env: Env) {
    demo_profile(
        &env.engine,
        "alice",
        &DemoOptions {
            transactions: 100,
            files: 2,
            seed: 1,
        },
        &NoProgress,
    )
    .unwrap();
    let a = env.backup("alice", "a.fzip");
    let r = restore(
        &env.engine,
        "bob",
        &a,
        &RestoreOptions {
            validate_only: true,
            ..Default::default()
        },
        &NoProgress,
    )
    .unwrap();
    assert!(r.validate_only && r.validation.valid);
    assert_eq!(r.validation.counts.transactions, 100);
    assert!(env.engine.store.summary("bob").unwrap().is_empty());
    assert!(env.user_blobs("bob").is_empty());
}

#[test]
fn warnings_do_not_block_housef3_restores() {
    let Some(dir) = fzip_testkit::housef3_fixture("small") else {
        return;
    };
    let mut reader =
        fzip_engine::open_package(&dir.join("backup.fzip"), Limits::default()).unwrap();
    let v = fzip_engine::verify(&mut reader, &NoProgress).unwrap();
    assert!(v.valid);
    assert!(v.problems.iter().all(|p| p.severity == Severity::Warning));
    assert_eq!(v.preview.accounts.len(), 3);
    assert!(v.preview.category_depth >= 2);
    assert_eq!(v.files.len(), 2);
    assert!(v.files.iter().all(|f| f.sha256.is_some()));
}

common::on_every_backend!(
    demo_profile_round_trips_exactly,
    restore_into_a_non_empty_profile_changes_nothing,
    validate_only_writes_nothing,
    housef3_packages_restore_completely,
);
