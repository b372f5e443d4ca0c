//! Every string of a HouseF3 backup comes back exactly — NUL, control characters, CR/LF, emoji —
//! and so does the design documents' fractional `confidence`; values HouseF3 would refuse are
//! warned about, never refused. On SQLite + folder and on PostgreSQL + S3.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::io::Cursor;

use common::{Env, on_every_backend};
use fzip_engine::{DiffOptions, NoProgress, RestoreOptions, diff, restore};
use fzip_format::{Limits, PackageReader};
use fzip_model::{Entity, Transaction};
use fzip_store::DEFAULT_BATCH;
use fzip_testkit::{AWKWARD_TEXT, housef3_with_awkward_text, read_entries, rebuild};

fn verify_bytes(bytes: &[u8]) -> fzip_engine::VerifyReport {
    let mut r = PackageReader::open(Cursor::new(bytes.to_vec()), Limits::default()).unwrap();
    fzip_engine::verify(&mut r, &NoProgress).unwrap()
}

fn transactions(env: &Env, user: &str) -> Vec<Transaction> {
    let mut snap = env.engine.store.snapshot(user).unwrap();
    let mut out = Vec::new();
    loop {
        let b = snap.next_transactions(DEFAULT_BATCH).unwrap();
        if b.is_empty() {
            return out;
        }
        out.extend(b);
    }
}

/// The text of one data entry of an fzip package.
fn entry_text(package: &std::path::Path, name: &str) -> String {
    let (_, data) = read_entries(&std::fs::read(package).unwrap())
        .into_iter()
        .find(|(n, _)| n == name)
        .unwrap();
    String::from_utf8(data).unwrap()
}

fn housef3_control_characters_round_trip(env: Env) {
    let Some(bytes) = housef3_with_awkward_text() else {
        eprintln!("HouseF3 fixtures not found; skipped");
        return;
    };
    let package = env.path("awkward.fzip");
    std::fs::write(&package, &bytes).unwrap();
    let v = verify_bytes(&bytes);
    assert!(v.valid, "{:?}", v.problems);

    restore(
        &env.engine,
        "dana",
        &package,
        &RestoreOptions::default(),
        &NoProgress,
    )
    .unwrap();
    // The strings reached the store as they were.
    let txs = transactions(&env, "dana");
    assert_eq!(txs.len(), 200);
    for text in AWKWARD_TEXT {
        assert!(
            txs.iter().any(|t| t.memo.as_deref() == Some(*text)),
            "{text:?}"
        );
        assert!(
            txs.iter().any(|t| t.description.ends_with(text)),
            "{text:?}"
        );
    }
    assert!(txs.iter().any(|t| t.description.contains('\0')));
    assert!(txs.iter().all(|t| {
        t.check_number
            .as_deref()
            .is_some_and(|c| c.starts_with('\u{1}') && c.ends_with('\0'))
    }));
    let mut snap = env.engine.store.snapshot("dana").unwrap();
    let accounts = snap.next_accounts(DEFAULT_BATCH).unwrap();
    assert!(
        accounts
            .iter()
            .all(|a| a.account_name.ends_with("\0\u{1}\u{7f}\r\n😀"))
    );
    drop(snap);

    // Backed up again: every string identical, exporter keys included.
    let again = env.backup("dana", "again.fzip");
    let d = diff(
        &package,
        &again,
        Limits::default(),
        DiffOptions { strict: true },
        &NoProgress,
    )
    .unwrap();
    assert!(d.equal, "{d:?}");
    // Written as JSON escapes, read back as the characters.
    let json = entry_text(&again, "data/transactions.json");
    assert!(!json.contains('\0') && !json.contains('\u{1}'));
    assert!(json.contains("\\u0000") && json.contains("\\u0001") && json.contains("\\r\\n"));
    assert!(json.contains('😀'));

    // And once more through fzip's own package.
    restore(
        &env.engine,
        "erin",
        &again,
        &RestoreOptions::default(),
        &NoProgress,
    )
    .unwrap();
    let third = env.backup("erin", "third.fzip");
    let d = diff(
        &again,
        &third,
        Limits::default(),
        DiffOptions { strict: true },
        &NoProgress,
    )
    .unwrap();
    assert!(d.equal, "{d:?}");
    let (a, b) = (transactions(&env, "dana"), transactions(&env, "erin"));
    let text = |mut t: Transaction| {
        t.set_owner("");
        serde_json::to_string(&t).unwrap()
    };
    assert_eq!(
        a.into_iter().map(text).collect::<Vec<_>>(),
        b.into_iter().map(text).collect::<Vec<_>>()
    );
}

const ACCOUNT: &str = "a0000000-0000-4000-8000-000000000001";
const CATEGORY: &str = "c0000000-0000-4000-8000-000000000001";

/// Confidences as the design documents write them (floats), with HouseF3's integers beside them.
const CONFIDENCES: &[&str] = &["0.95", "0.950", "95", "87.5", "1E-1", "100", "0", "9.5e1"];

/// A package in the design documents' form: snake_case manifest, `{"transactions": [...]}`
/// wrappers, fractional assignment confidences.
fn design_doc_package(account_currency: &str) -> Vec<u8> {
    let txs: Vec<serde_json::Value> = CONFIDENCES
        .iter()
        .enumerate()
        .map(|(i, _)| {
            serde_json::json!({
                "transactionId": format!("70000000-0000-4000-8000-00000000000{i}"),
                "accountId": ACCOUNT,
                "fileId": null,
                "date": 1_700_000_000_000i64 + i as i64,
                "description": format!("coffee {i}"),
                "amount": "-3.50",
                "currency": "EUR",
                "categories": [{
                    "categoryId": CATEGORY, "confidence": format!("<{i}>"), "status": "suggested",
                    "isManual": false, "assignedAt": 1_700_000_000_000i64,
                }],
                "createdAt": 1_700_000_000_000i64,
                "updatedAt": 1_700_000_000_000i64,
            })
        })
        .collect();
    let data = |key: &str, items: serde_json::Value| {
        serde_json::to_vec(&serde_json::json!({ key: items })).unwrap()
    };
    // The confidences go in as written (a `serde_json::Value` would make them floats).
    let mut tx_text = String::from_utf8(data("transactions", serde_json::json!(txs))).unwrap();
    for (i, c) in CONFIDENCES.iter().enumerate() {
        tx_text = tx_text.replace(&format!("\"<{i}>\""), c);
    }
    let manifest = serde_json::json!({
        "backup_format_version": "1.0",
        "backup_timestamp": "2024-01-15T10:30:00Z",
        "user_id": "user_12345",
        "housef3_version": "2.5.0",
        "package_format": "fzip",
        "data_summary": {
            "accounts_count": 1,
            "transactions_count": CONFIDENCES.len(),
            "categories_count": 1,
        },
        "checksums": {},
    });
    rebuild(&[
        (
            "manifest.json".into(),
            serde_json::to_vec(&manifest).unwrap(),
        ),
        (
            "data/accounts.json".into(),
            data(
                "accounts",
                serde_json::json!([{
                    "accountId": ACCOUNT, "accountName": "Compte courant", "accountType": "checking",
                    "balance": "12.500", "currency": account_currency, "isActive": true,
                    "createdAt": 1_700_000_000_000i64, "updatedAt": 1_700_000_000_000i64,
                }]),
            ),
        ),
        (
            "data/categories.json".into(),
            data(
                "categories",
                serde_json::json!([{
                    "categoryId": CATEGORY, "name": "Café", "type": "EXPENSE", "rules": [],
                    "createdAt": 1_700_000_000_000i64, "updatedAt": 1_700_000_000_000i64,
                }]),
            ),
        ),
        ("data/transactions.json".into(), tx_text.into_bytes()),
    ])
}

/// Every `"confidence":NUMBER` of a JSON text, as written.
fn confidences(json: &str) -> Vec<String> {
    json.split("\"confidence\":")
        .skip(1)
        .map(|rest| {
            rest.chars()
                .take_while(|c| c.is_ascii_digit() || "+-.eE".contains(*c))
                .collect()
        })
        .collect()
}

fn fractional_confidence_round_trips_exactly(env: Env) {
    let bytes = design_doc_package("EUR");
    let package = env.path("design.fzip");
    std::fs::write(&package, &bytes).unwrap();
    let v = verify_bytes(&bytes);
    assert!(v.valid, "{:?}", v.problems);
    assert_eq!(v.dialect.as_str(), "design-doc");

    restore(
        &env.engine,
        "fay",
        &package,
        &RestoreOptions::default(),
        &NoProgress,
    )
    .unwrap();
    let mut got: Vec<String> = transactions(&env, "fay")
        .iter()
        .map(|t| t.categories[0].confidence.text().into_owned())
        .collect();
    got.sort();
    let mut want: Vec<String> = CONFIDENCES.iter().map(|c| c.to_string()).collect();
    want.sort();
    assert_eq!(got, want);

    // Byte for byte in fzip's package, and again after a second round trip.
    let again = env.backup("fay", "again.fzip");
    let first = entry_text(&again, "data/transactions.json");
    let mut written = confidences(&first);
    written.sort();
    assert_eq!(written, want);
    let d = diff(
        &package,
        &again,
        Limits::default(),
        DiffOptions { strict: true },
        &NoProgress,
    )
    .unwrap();
    assert!(d.equal, "{d:?}");
    restore(
        &env.engine,
        "gus",
        &again,
        &RestoreOptions::default(),
        &NoProgress,
    )
    .unwrap();
    let third = env.backup("gus", "third.fzip");
    assert_eq!(
        confidences(&entry_text(&third, "data/transactions.json")),
        confidences(&first)
    );

    // fzip keeps them; HouseF3 expects integers, so verify warns (the package stays valid).
    let fields: Vec<&str> = v
        .housef3_warnings
        .iter()
        .map(|w| w.field.as_str())
        .filter(|f| f.ends_with("confidence"))
        .collect();
    assert_eq!(
        fields.len(),
        CONFIDENCES
            .iter()
            .filter(|c| c.parse::<i32>().is_err())
            .count(),
        "{:?}",
        v.housef3_warnings
    );
    assert!(fields.iter().all(|f| *f == "categories[0].confidence"));
}

on_every_backend!(
    housef3_control_characters_round_trip,
    fractional_confidence_round_trips_exactly
);

#[test]
fn values_housef3_would_refuse_are_warned_about_naming_entity_and_field() {
    let v = verify_bytes(&design_doc_package("KWD"));
    assert!(v.valid, "{:?}", v.problems);
    assert_eq!(v.errors, 0);
    let kwd: Vec<_> = v
        .housef3_warnings
        .iter()
        .filter(|w| w.entity == "account")
        .collect();
    assert_eq!(kwd.len(), 1, "{:?}", v.housef3_warnings);
    assert_eq!(kwd[0].id, ACCOUNT);
    assert_eq!(kwd[0].field, "currency");
    assert_eq!(kwd[0].entry, "data/accounts.json");
    let shown = kwd[0].to_string();
    assert!(
        shown.contains("account") && shown.contains("currency") && shown.contains("\"KWD\""),
        "{shown}"
    );
    // The design documents' transactions carry no fileId: HouseF3 requires one.
    assert!(
        v.housef3_warnings
            .iter()
            .any(|w| w.entity == "transaction" && w.field == "fileId")
    );
    // A HouseF3 package of its own making draws none.
    if let Some(dir) = fzip_testkit::housef3_fixture("medium") {
        let v = verify_bytes(&std::fs::read(dir.join("backup.fzip")).unwrap());
        assert!(v.valid);
        assert!(v.housef3_warnings.is_empty(), "{:?}", v.housef3_warnings);
    }
}

#[test]
fn housef3_warnings_are_bounded() {
    // 250 fractional confidences: 100 listed, the rest counted.
    let mut entries = read_entries(&design_doc_package("EUR"));
    let (_, tx) = entries
        .iter_mut()
        .find(|(n, _)| n == "data/transactions.json")
        .unwrap();
    let mut doc: serde_json::Value = serde_json::from_slice(tx).unwrap();
    let one = doc["transactions"][0].clone();
    let many: Vec<serde_json::Value> = (0..250)
        .map(|i| {
            let mut t = one.clone();
            t["transactionId"] = format!("80000000-0000-4000-8000-{i:012}").into();
            t
        })
        .collect();
    doc["transactions"] = many.into();
    *tx = serde_json::to_vec(&doc).unwrap();
    let (_, m) = entries
        .iter_mut()
        .find(|(n, _)| n == "manifest.json")
        .unwrap();
    let mut manifest: serde_json::Value = serde_json::from_slice(m).unwrap();
    manifest["data_summary"]["transactions_count"] = 250.into();
    *m = serde_json::to_vec(&manifest).unwrap();
    let v = verify_bytes(&rebuild(&entries));
    assert!(v.valid, "{:?}", v.problems);
    // Each transaction: no fileId, and 0.95.
    assert_eq!(v.housef3_warnings.len(), 100);
    assert_eq!(v.housef3_warnings_omitted, 400);
}
