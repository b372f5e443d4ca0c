//! Property: any valid profile survives store → backup → restore → store unchanged, field for
//! field and byte for byte.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::Env;
use fzip_engine::{DiffOptions, NoProgress, RestoreOptions, diff, restore};
use fzip_format::Limits;
use fzip_model::*;
use fzip_store::{BlobStore, DEFAULT_BATCH, StoredFile};
use proptest::collection::vec;
use proptest::option;
use proptest::prelude::*;

fn id(kind: u8, n: usize) -> String {
    format!("{kind:02x}{n:06x}-0000-4000-8000-000000000000")
}

fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-zA-Z0-9 ]{0,12}",
        "\\PC{0,16}",
        // Any character at all: NUL, C0 and C1 controls, DEL, emoji, U+10FFFF.
        "(?s).{0,16}",
        "[\\x00-\\x1f\\x7f\\u{80}-\\u{9f}\\u{10FFFF}a😀]{1,8}",
        Just("Müller — \"Café\" \\ ✈️\n".to_string())
    ]
}

fn decimal() -> impl Strategy<Value = Decimal> {
    prop_oneof![
        (any::<i64>(), 0u32..5).prop_map(|(m, s)| Decimal::from_minor(m, s)),
        (-99i64..99, -8i32..8).prop_map(|(m, e)| Decimal::parse(&format!("{m}E{e:+}")).unwrap()),
    ]
}

fn extras() -> impl Strategy<Value = Extras> {
    option::of((
        "zz[a-z]{1,5}",
        any::<f64>().prop_filter("finite", |f| f.is_finite()),
        text(),
    ))
    .prop_map(|x| {
        let mut e = Extras::new();
        if let Some((k, f, s)) = x {
            e.insert(
                k,
                serde_json::value::to_raw_value(&serde_json::json!({ "f": f, "s": s })).unwrap(),
            );
        }
        e
    })
}

/// account, file, category, description, amount, memo, extras, hash.
type TxShape = (
    usize,
    Option<usize>,
    Option<usize>,
    String,
    Decimal,
    Option<String>,
    Extras,
    u64,
);

#[derive(Debug, Clone)]
struct Shape {
    accounts: Vec<(String, Option<Decimal>, Extras)>,
    categories: Vec<(String, Option<usize>)>,
    files: Vec<(String, Vec<u8>)>,
    transactions: Vec<TxShape>,
}

fn shape() -> impl Strategy<Value = Shape> {
    (1usize..4, 0usize..5, 0usize..3).prop_flat_map(|(na, nc, nf)| {
        (
            vec(
                (
                    text().prop_filter("name", |s| !s.is_empty() && s.chars().count() <= 100),
                    option::of(decimal()),
                    extras(),
                ),
                na..=na,
            ),
            (0..nc)
                .map(|i| {
                    (
                        text().prop_filter("name", |s| !s.is_empty()),
                        option::of(0..i.max(1)).prop_map(move |p| p.filter(|_| i > 0)),
                    )
                })
                .collect::<Vec<_>>(),
            vec(
                (
                    text().prop_filter("name", |s| !s.is_empty()),
                    vec(any::<u8>(), 0..2000),
                ),
                nf..=nf,
            ),
            vec(
                (
                    0..na,
                    option::of(0..nf.max(1)),
                    option::of(0..nc.max(1)),
                    text(),
                    decimal(),
                    option::of(text()),
                    extras(),
                    any::<u64>(),
                ),
                0..40,
            ),
        )
            .prop_map(move |(accounts, categories, files, txs)| Shape {
                accounts,
                categories,
                files,
                transactions: txs
                    .into_iter()
                    .map(|(a, f, c, d, amt, memo, x, h)| {
                        (
                            a,
                            f.filter(|_| nf > 0),
                            c.filter(|_| nc > 0),
                            d,
                            amt,
                            memo,
                            x,
                            h,
                        )
                    })
                    .collect(),
            })
    })
}

fn build(env: &Env, user: &str, s: &Shape) {
    let accounts: Vec<Account> = s
        .accounts
        .iter()
        .enumerate()
        .map(|(i, (name, balance, extras))| Account {
            account_id: id(1, i),
            user_id: Some(user.into()),
            account_name: name.clone(),
            account_type: AccountType::ALL[i % 6],
            institution: None,
            currency: balance.as_ref().map(|_| Currency::parse("EUR").unwrap()),
            balance: balance.clone(),
            notes: None,
            is_active: true,
            default_file_map_id: None,
            first_transaction_date: None,
            last_transaction_date: None,
            imports_start_date: None,
            imports_end_date: None,
            created_at: 1,
            updated_at: 2,
            extras: extras.clone(),
        })
        .collect();
    let categories: Vec<Category> = s
        .categories
        .iter()
        .enumerate()
        .map(|(i, (name, parent))| {
            let mut c: Category = serde_json::from_value(serde_json::json!({
                "categoryId": id(2, i), "name": name, "type": "EXPENSE", "createdAt": 1, "updatedAt": 1
            }))
            .unwrap();
            c.parent_category_id = parent.map(|p| id(2, p));
            c
        })
        .collect();
    let mut w = env.engine.store.begin_restore(user).unwrap();
    let mut files = Vec::new();
    for (i, (name, bytes)) in s.files.iter().enumerate() {
        let key = BlobStore::file_key(user, "prop", &id(4, i));
        let (size, digest) = env.engine.blobs.put_reader(&key, &bytes[..]).unwrap();
        let mut f: TransactionFile = serde_json::from_value(serde_json::json!({
            "fileId": id(4, i), "fileName": name, "uploadDate": i, "fileSize": size,
            "processingStatus": "processed", "createdAt": 1, "updatedAt": 1
        }))
        .unwrap();
        f.s3_key = Some(key);
        files.push(StoredFile {
            file: f,
            content_sha256: Some(digest),
            content_size: Some(size),
        });
    }
    let txs: Vec<Transaction> = s
        .transactions
        .iter()
        .enumerate()
        .map(
            |(i, (a, f, c, desc, amount, memo, extras, hash))| Transaction {
                user_id: Some(user.into()),
                file_id: f.map(|f| id(4, f)),
                transaction_id: id(5, i),
                account_id: id(1, *a),
                date: (i as i64) * 1000,
                description: desc.clone(),
                amount: amount.clone(),
                currency: None,
                balance: None,
                import_order: None,
                transaction_type: None,
                memo: memo.clone(),
                check_number: None,
                fit_id: None,
                status: None,
                status_date: None,
                created_at: 1,
                updated_at: 1,
                transaction_hash: Some(*hash),
                categories: c
                    .map(|c| {
                        vec![CategoryAssignment {
                            category_id: id(2, c),
                            confidence: if c % 2 == 1 {
                                Confidence::parse("0.950").unwrap()
                            } else {
                                Confidence::whole(50)
                            },
                            status: AssignmentStatus::Suggested,
                            is_manual: true,
                            assigned_at: 5,
                            confirmed_at: None,
                            rule_id: None,
                            extras: Extras::new(),
                        }]
                    })
                    .unwrap_or_default(),
                primary_category_id: c.map(|c| id(2, c)),
                extras: extras.clone(),
            },
        )
        .collect();
    w.insert_accounts(&accounts).unwrap();
    w.insert_categories(&categories).unwrap();
    w.insert_transaction_files(&files).unwrap();
    w.insert_transactions(&txs).unwrap();
    w.commit().unwrap();
}

/// Every entity's exact JSON text (so `0.950` and `"10.50"` must come back as written), without
/// the owner and the storage location.
fn dump(env: &Env, user: &str) -> Vec<String> {
    let mut snap = env.engine.store.snapshot(user).unwrap();
    let mut out = Vec::new();
    fn text<T: Entity>(mut e: T) -> String {
        e.set_owner("");
        serde_json::to_string(&e).unwrap()
    }
    out.extend(
        snap.next_accounts(DEFAULT_BATCH)
            .unwrap()
            .into_iter()
            .map(text),
    );
    out.extend(
        snap.next_categories(DEFAULT_BATCH)
            .unwrap()
            .into_iter()
            .map(text),
    );
    out.extend(
        snap.next_transaction_files(DEFAULT_BATCH)
            .unwrap()
            .into_iter()
            .map(|mut f| {
                f.file.s3_key = None;
                text(f.file)
            }),
    );
    out.extend(
        snap.next_transactions(DEFAULT_BATCH)
            .unwrap()
            .into_iter()
            .map(text),
    );
    out.sort();
    out
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    #[test]
    fn any_profile_survives_backup_and_restore(s in shape()) {
        let env = Env::new();
        build(&env, "alice", &s);
        let a = env.backup("alice", "a.fzip");
        restore(&env.engine, "bob", &a, &RestoreOptions::default(), &NoProgress).unwrap();
        prop_assert_eq!(dump(&env, "alice"), dump(&env, "bob"));
        prop_assert_eq!(env.file_hashes("alice"), env.file_hashes("bob"));
        let b = env.backup("bob", "b.fzip");
        let d = diff(&a, &b, Limits::default(), DiffOptions { strict: true }, &NoProgress).unwrap();
        prop_assert!(d.equal, "{:?}", d);
    }
}
