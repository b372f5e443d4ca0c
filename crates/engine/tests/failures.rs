//! What goes wrong goes wrong cleanly: damaged packages are refused naming what is damaged,
//! broken references are listed, cancelled or failed restores leave nothing behind, and backups
//! notice missing or altered statement files.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::io::Cursor;
use std::sync::atomic::{AtomicU64, Ordering};

use common::{Env, read};
use fzip_engine::{
    BackupOptions, DemoOptions, EngineError, NoProgress, Progress, RestoreOptions, backup,
    demo_profile, restore,
};
use fzip_format::{Limits, Manifest, PackageReader, PackageWriter, Severity, WriterOptions};
use fzip_model::*;
use fzip_store::DEFAULT_BATCH;
use fzip_testkit::{flip_byte_in_entry, locate_entries, read_entries, rebuild};

fn demo(env: &Env, user: &str, transactions: u64, files: u64) {
    demo_profile(
        &env.engine,
        user,
        &DemoOptions {
            transactions,
            files,
            seed: 3,
        },
        &NoProgress,
    )
    .unwrap();
}

fn assert_untouched(env: &Env, user: &str) {
    assert!(
        env.engine.store.summary(user).unwrap().is_empty(),
        "rows were written"
    );
    assert!(
        env.user_blobs(user).is_empty(),
        "blobs were left: {:?}",
        env.user_blobs(user)
    );
}

#[test]
fn a_flipped_byte_in_any_entry_is_refused_naming_it() {
    let env = Env::new();
    demo(&env, "alice", 400, 3);
    let good = read(&env.backup("alice", "a.fzip"));
    let entries = locate_entries(&good);
    assert!(entries.len() >= 9);
    for e in &entries {
        let bad = flip_byte_in_entry(&good, &e.name);
        let path = env.path("bad.fzip");
        std::fs::write(&path, &bad).unwrap();
        let err = restore(
            &env.engine,
            "bob",
            &path,
            &RestoreOptions::default(),
            &NoProgress,
        )
        .unwrap_err();
        let text = match &err {
            EngineError::InvalidPackage(report) => report
                .problems
                .iter()
                .filter(|p| p.severity == Severity::Error)
                .map(|p| p.to_string())
                .collect::<Vec<_>>()
                .join("\n"),
            other => other.to_string(),
        };
        assert!(
            text.contains(&e.name),
            "flipping a byte of {} gave: {text}",
            e.name
        );
        assert_untouched(&env, "bob");
    }
}

#[test]
fn missing_and_extra_entries_are_refused() {
    let env = Env::new();
    demo(&env, "alice", 200, 2);
    let good = read(&env.backup("alice", "a.fzip"));
    let all = read_entries(&good);
    for name in ["data/transactions.json", "data/accounts.json"] {
        let without: Vec<_> = all.iter().filter(|(n, _)| n != name).cloned().collect();
        let path = env.path("missing.fzip");
        std::fs::write(&path, rebuild(&without)).unwrap();
        let err = restore(
            &env.engine,
            "bob",
            &path,
            &RestoreOptions::default(),
            &NoProgress,
        )
        .unwrap_err();
        let EngineError::InvalidPackage(report) = err else {
            panic!("{err}")
        };
        assert!(
            report
                .problems
                .iter()
                .any(|p| p.entry.as_deref() == Some(name)),
            "{:?}",
            report.problems
        );
        assert_untouched(&env, "bob");
    }
    let file_entry = all
        .iter()
        .find(|(n, _)| n.starts_with("files/"))
        .unwrap()
        .0
        .clone();
    let without: Vec<_> = all
        .iter()
        .filter(|(n, _)| *n != file_entry)
        .cloned()
        .collect();
    let path = env.path("missing-file.fzip");
    std::fs::write(&path, rebuild(&without)).unwrap();
    let err = restore(
        &env.engine,
        "bob",
        &path,
        &RestoreOptions::default(),
        &NoProgress,
    )
    .unwrap_err();
    assert!(
        err.to_string().contains(&file_entry)
            || matches!(&err, EngineError::InvalidPackage(r) if r.problems.iter().any(|p| p.entry.as_deref() == Some(file_entry.as_str()))),
        "{err}"
    );

    let mut extra = all.clone();
    extra.push(("files/added/after.csv".into(), b"x".to_vec()));
    let path = env.path("extra.fzip");
    std::fs::write(&path, rebuild(&extra)).unwrap();
    let err = restore(
        &env.engine,
        "bob",
        &path,
        &RestoreOptions::default(),
        &NoProgress,
    )
    .unwrap_err();
    let EngineError::InvalidPackage(report) = err else {
        panic!("{err}")
    };
    assert!(
        report
            .problems
            .iter()
            .any(|p| p.entry.as_deref() == Some("files/added/after.csv"))
    );
    assert_untouched(&env, "bob");
}

#[test]
fn path_traversal_is_refused_and_nothing_written() {
    let env = Env::new();
    demo(&env, "alice", 100, 1);
    let mut all = read_entries(&read(&env.backup("alice", "a.fzip")));
    all.push(("files/../../x".into(), b"evil".to_vec()));
    let path = env.path("evil.fzip");
    std::fs::write(&path, rebuild(&all)).unwrap();
    let err = restore(
        &env.engine,
        "bob",
        &path,
        &RestoreOptions::default(),
        &NoProgress,
    )
    .unwrap_err();
    assert!(err.to_string().contains("files/../../x"), "{err}");
    assert_untouched(&env, "bob");
    assert!(!env.dir.path().join("x").exists());
}

/// Cancels once `after` units of `phase` are done.
struct CancelDuring {
    phase: &'static str,
    after: u64,
    current: std::sync::Mutex<String>,
    done: AtomicU64,
}

impl Progress for CancelDuring {
    fn phase(&self, name: &str, _: u64) {
        *self.current.lock().unwrap() = name.to_string();
        self.done.store(0, Ordering::SeqCst);
    }
    fn advance(&self, n: u64) {
        self.done.fetch_add(n, Ordering::SeqCst);
    }
    fn is_cancelled(&self) -> bool {
        *self.current.lock().unwrap() == self.phase
            && self.done.load(Ordering::SeqCst) >= self.after
    }
}

fn a_cancelled_restore_leaves_the_profile_empty(env: Env) {
    demo(&env, "alice", 5_000, 4);
    let a = env.backup("alice", "a.fzip");
    for (phase, after) in [("restoring_transactions", 2_000), ("restoring_files", 1)] {
        let cancel = CancelDuring {
            phase,
            after,
            current: Default::default(),
            done: AtomicU64::new(0),
        };
        let err = restore(&env.engine, "bob", &a, &RestoreOptions::default(), &cancel).unwrap_err();
        assert!(matches!(err, EngineError::Cancelled), "{err}");
        assert_untouched(&env, "bob");
    }
    // And the same package restores fine afterwards.
    restore(
        &env.engine,
        "bob",
        &a,
        &RestoreOptions::default(),
        &NoProgress,
    )
    .unwrap();
    assert_eq!(
        env.engine.store.summary("bob").unwrap().counts.transactions,
        5_000
    );
}

/// Builds a package from hand-made entities.
fn package(
    accounts: &[Account],
    categories: &[Category],
    maps: &[FileMap],
    files: &[TransactionFile],
    txs: &[Transaction],
) -> Vec<u8> {
    let mut w = PackageWriter::new(Cursor::new(Vec::new()), WriterOptions::default());
    fn put<T: Entity, W: std::io::Write + std::io::Seek>(w: &mut PackageWriter<W>, items: &[T]) {
        let mut a = w.begin_entities(T::KIND, 0).unwrap();
        for i in items {
            a.push(i).unwrap();
        }
        a.finish().unwrap();
    }
    put(&mut w, accounts);
    put(&mut w, categories);
    put(&mut w, maps);
    put(&mut w, files);
    put(&mut w, txs);
    let mut m = Manifest::new("someone", "job", 0);
    m.data_summary.accounts_count = accounts.len() as u64;
    m.data_summary.categories_count = categories.len() as u64;
    m.data_summary.file_maps_count = maps.len() as u64;
    m.data_summary.transaction_files_count = files.len() as u64;
    m.data_summary.transactions_count = txs.len() as u64;
    w.finish(&mut m).unwrap().0.into_inner()
}

fn id(n: u32) -> String {
    format!("00000000-0000-4000-8000-{n:012}")
}

fn sample_account(n: u32) -> Account {
    serde_json::from_value(serde_json::json!({
        "accountId": id(n), "accountName": "A", "accountType": "checking", "createdAt": 1, "updatedAt": 1
    }))
    .unwrap()
}

fn sample_category(n: u32, parent: Option<u32>) -> Category {
    let mut c: Category = serde_json::from_value(serde_json::json!({
        "categoryId": id(n), "name": "C", "type": "EXPENSE", "createdAt": 1, "updatedAt": 1
    }))
    .unwrap();
    c.parent_category_id = parent.map(id);
    c
}

fn sample_tx(n: u32, account: u32, category: Option<u32>) -> Transaction {
    let mut t: Transaction = serde_json::from_value(serde_json::json!({
        "transactionId": id(n), "accountId": id(account), "date": 1, "description": "d",
        "amount": "-1.00", "createdAt": 1, "updatedAt": 1
    }))
    .unwrap();
    t.primary_category_id = category.map(id);
    t
}

#[test]
fn broken_references_are_all_listed() {
    let env = Env::new();
    let accounts = vec![sample_account(1)];
    // 11 → 12 → 11 is a cycle; 13's parent does not exist.
    let categories = vec![
        sample_category(10, None),
        sample_category(11, Some(12)),
        sample_category(12, Some(11)),
        sample_category(13, Some(99)),
    ];
    let txs = vec![
        sample_tx(100, 1, Some(10)),
        sample_tx(101, 7, None),     // unknown account
        sample_tx(102, 1, Some(55)), // unknown category
        sample_tx(100, 1, None),     // duplicate id
    ];
    let bytes = package(&accounts, &categories, &[], &[], &txs);
    let path = env.path("refs.fzip");
    std::fs::write(&path, &bytes).unwrap();
    let err = restore(
        &env.engine,
        "bob",
        &path,
        &RestoreOptions::default(),
        &NoProgress,
    )
    .unwrap_err();
    let EngineError::InvalidPackage(report) = err else {
        panic!("{err}")
    };
    let text: Vec<String> = report.problems.iter().map(|p| p.to_string()).collect();
    let has = |needle: &str| text.iter().any(|t| t.contains(needle));
    assert!(has("cycle"), "{text:#?}");
    assert!(
        has(&format!(
            "parentCategoryId {} refers to no category",
            id(99)
        )),
        "{text:#?}"
    );
    assert!(
        has(&format!("accountId {} refers to no account", id(7))),
        "{text:#?}"
    );
    assert!(
        has(&format!(
            "primaryCategoryId {} refers to no category",
            id(55)
        )),
        "{text:#?}"
    );
    assert!(
        has(&format!("transaction {} appears 2 times", id(100))),
        "{text:#?}"
    );
    assert!(!has("dataSummary"), "{text:#?}");
    assert_untouched(&env, "bob");

    // A schema error names the entity and the field.
    let mut bad = sample_tx(200, 1, None);
    bad.categories.push(
        serde_json::from_value(
            serde_json::json!({"categoryId": id(10), "confidence": 250, "assignedAt": 1}),
        )
        .unwrap(),
    );
    let bytes = package(&accounts, &categories[..1], &[], &[], &[bad]);
    let mut r = PackageReader::open(Cursor::new(bytes), Limits::default()).unwrap();
    let v = fzip_engine::verify(&mut r, &NoProgress).unwrap();
    assert!(!v.valid);
    assert!(v.problems.iter().any(|p| p.message.contains(&id(200)) && p.message.contains("categories[0].confidence")), "{:?}", v.problems);
}

#[test]
fn counts_that_disagree_with_the_manifest_are_refused() {
    let bytes = package(
        &[sample_account(1)],
        &[],
        &[],
        &[],
        &[sample_tx(1, 1, None)],
    );
    // Rewrite dataSummary: the manifest checksum then fails too, and both are reported.
    let mut entries = read_entries(&bytes);
    for (name, data) in &mut entries {
        if name == "manifest.json" {
            let text = String::from_utf8(data.clone())
                .unwrap()
                .replace("\"transactionsCount\": 1", "\"transactionsCount\": 2");
            *data = text.into_bytes();
        }
    }
    let mut r = PackageReader::open(Cursor::new(rebuild(&entries)), Limits::default()).unwrap();
    let v = fzip_engine::verify(&mut r, &NoProgress).unwrap();
    assert!(!v.valid);
    let text = format!("{:?}", v.problems);
    assert!(
        text.contains("transactionsCount says 2 but the package holds 1"),
        "{text}"
    );
    assert!(text.contains("was changed after it was written"), "{text}");
}

fn backup_fails_on_a_missing_statement_file_unless_asked_to_continue(env: Env) {
    demo(&env, "alice", 300, 3);
    let mut snap = env.engine.store.snapshot("alice").unwrap();
    let files = snap.next_transaction_files(DEFAULT_BATCH).unwrap();
    drop(snap);
    let victim = &files[1].file;
    env.engine
        .blobs
        .delete(victim.s3_key.as_ref().unwrap())
        .unwrap();

    let out = Cursor::new(Vec::new());
    let err = backup(
        &env.engine,
        "alice",
        out,
        &BackupOptions::default(),
        &NoProgress,
    )
    .err()
    .unwrap();
    assert!(matches!(err, EngineError::MissingFiles(_)), "{err}");
    assert!(
        err.to_string().contains(&victim.file_id) && err.to_string().contains(&victim.file_name),
        "{err}"
    );

    let options = BackupOptions {
        continue_on_missing_files: true,
        ..Default::default()
    };
    let path = env.backup_with("alice", "partial.fzip", &options);
    let mut r = fzip_engine::open_package(&path, Limits::default()).unwrap();
    let v = fzip_engine::verify(&mut r, &NoProgress).unwrap();
    assert!(v.valid, "{:?}", v.problems);
    assert!(
        v.problems
            .iter()
            .any(|p| p.severity == Severity::Warning && p.message.contains(&victim.file_id))
    );
    let summary = v.processing_summary.unwrap();
    assert_eq!(summary["transaction_files_failed"], 1);
    assert_eq!(
        summary["failed_files"][0]["fileId"],
        victim.file_id.as_str()
    );
    let r = restore(
        &env.engine,
        "bob",
        &path,
        &RestoreOptions::default(),
        &NoProgress,
    )
    .unwrap();
    assert_eq!(r.files_without_content, vec![victim.file_id.clone()]);
}

fn backup_notices_altered_statement_bytes(env: Env) {
    demo(&env, "alice", 100, 2);
    let mut snap = env.engine.store.snapshot("alice").unwrap();
    let files = snap.next_transaction_files(DEFAULT_BATCH).unwrap();
    drop(snap);
    let key = files[0].file.s3_key.clone().unwrap();
    env.engine.blobs.put_bytes(&key, b"tampered").unwrap();
    let err = backup(
        &env.engine,
        "alice",
        Cursor::new(Vec::new()),
        &BackupOptions::default(),
        &NoProgress,
    )
    .err()
    .unwrap();
    assert!(err.to_string().contains("changed or damaged"), "{err}");
    // Continuing leaves the damaged file out; the package is still valid and consistent.
    let options = BackupOptions {
        continue_on_missing_files: true,
        ..Default::default()
    };
    let path = env.backup_with("alice", "rest.fzip", &options);
    let mut r = fzip_engine::open_package(&path, Limits::default()).unwrap();
    let v = fzip_engine::verify(&mut r, &NoProgress).unwrap();
    assert!(v.valid, "{:?}", v.problems);
    assert_eq!(v.files.iter().filter(|f| f.size.is_some()).count(), 1);
}

fn gc_removes_only_unreferenced_old_blobs(env: Env) {
    demo(&env, "alice", 50, 2);
    env.engine
        .blobs
        .put_bytes("users/ghost/files/b/f/x.csv", b"orphan")
        .unwrap();
    let keep = fzip_engine::gc(&env.engine, 3_600_000).unwrap();
    assert_eq!((keep.deleted, keep.kept_recent), (0, 1));
    let r = fzip_engine::gc(&env.engine, 0).unwrap();
    assert_eq!(r.deleted, 1);
    assert_eq!(env.user_blobs("alice").len(), 2);
    assert!(env.user_blobs("ghost").is_empty());
}

fn clearing_a_profile_removes_rows_and_files(env: Env) {
    demo(&env, "alice", 50, 2);
    demo(&env, "bob", 50, 2);
    let s = fzip_engine::clear_profile(&env.engine, "alice").unwrap();
    assert_eq!(s.counts.transactions, 50);
    assert_untouched(&env, "alice");
    assert_eq!(
        env.engine.store.summary("bob").unwrap().counts.transactions,
        50
    );
    assert_eq!(env.user_blobs("bob").len(), 2);
}

common::on_every_backend!(
    a_cancelled_restore_leaves_the_profile_empty,
    backup_fails_on_a_missing_statement_file_unless_asked_to_continue,
    backup_notices_altered_statement_bytes,
    gc_removes_only_unreferenced_old_blobs,
    clearing_a_profile_removes_rows_and_files,
);
