//! Property: any profile written into a package reads back exactly (same JSON text, field for
//! field), whatever its strings, decimals, optional fields and unknown keys.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::Cursor;

use fzip_format::{Limits, Manifest, PackageReader, PackageWriter, WriterOptions};
use fzip_model::*;
use proptest::collection::vec;
use proptest::option;
use proptest::prelude::*;

fn uuid() -> impl Strategy<Value = String> {
    any::<u128>().prop_map(|n| {
        let h = format!("{n:032x}");
        format!(
            "{}-{}-{}-{}-{}",
            &h[0..8],
            &h[8..12],
            &h[12..16],
            &h[16..20],
            &h[20..32]
        )
    })
}

fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-zA-Z0-9 ]{0,20}",
        "\\PC{0,30}",
        // Any character at all: NUL, C0 and C1 controls, DEL, emoji, U+10FFFF.
        "(?s).{0,30}",
        "[\\x00-\\x1f\\x7f\\u{80}-\\u{9f}\\u{10FFFF}a😀]{1,12}",
        Just("Café — Müller & Söhne \"quoted\" \\ back\nslash".to_string()),
        Just("楽天カード ✈️ 💶".to_string()),
    ]
}

fn decimal() -> impl Strategy<Value = Decimal> {
    prop_oneof![
        (any::<i64>(), 0u32..6).prop_map(|(m, s)| Decimal::from_minor(m, s)),
        (-999i64..999, -9i32..9).prop_map(|(m, e)| Decimal::parse(&format!("{m}E{e:+}")).unwrap()),
        Just(Decimal::parse("-0.00").unwrap()),
        Just(Decimal::parse("1E-7").unwrap()),
        Just(Decimal::parse(".5").unwrap()),
    ]
}

fn millis() -> impl Strategy<Value = i64> {
    0i64..4_102_444_800_000
}

fn json_leaf() -> impl Strategy<Value = serde_json::Value> {
    prop_oneof![
        Just(serde_json::Value::Null),
        any::<bool>().prop_map(serde_json::Value::Bool),
        any::<i64>().prop_map(|n| serde_json::json!(n)),
        any::<u64>().prop_map(|n| serde_json::json!(n)),
        (-1e12f64..1e12).prop_map(|f| serde_json::json!(f)),
        text().prop_map(serde_json::Value::String),
    ]
}

fn json_value() -> impl Strategy<Value = serde_json::Value> {
    json_leaf().prop_recursive(2, 12, 4, |inner| {
        prop_oneof![
            vec(inner.clone(), 0..4).prop_map(serde_json::Value::Array),
            vec(("[a-z]{1,6}", inner), 0..4)
                .prop_map(|kv| serde_json::Value::Object(kv.into_iter().collect())),
        ]
    })
}

/// Unknown keys: prefixed so they never collide with a known key.
fn extras() -> impl Strategy<Value = Extras> {
    vec(("zz[a-zA-Z]{1,8}", json_value()), 0..3).prop_map(|kv| {
        let mut e = Extras::new();
        for (k, v) in kv {
            e.insert(k, serde_json::value::to_raw_value(&v).unwrap());
        }
        e
    })
}

fn currency() -> impl Strategy<Value = Currency> {
    prop_oneof![
        Just("USD"),
        Just("JPY"),
        Just("KWD"),
        Just("other"),
        Just("EUR")
    ]
    .prop_map(|c| Currency::parse(c).unwrap())
}

fn account() -> impl Strategy<Value = Account> {
    (
        (
            uuid(),
            text(),
            proptest::sample::select(AccountType::ALL.to_vec()),
            option::of(text()),
        ),
        (
            option::of(decimal()),
            option::of(currency()),
            option::of(text()),
            any::<bool>(),
        ),
        (
            option::of(uuid()),
            option::of(millis()),
            option::of(millis()),
            millis(),
            millis(),
        ),
        extras(),
    )
        .prop_map(
            |((id, name, t, inst), (bal, cur, notes, active), (map, first, last, c, u), extras)| {
                Account {
                    account_id: id,
                    user_id: Some("u".into()),
                    account_name: name,
                    account_type: t,
                    institution: inst,
                    balance: bal,
                    currency: cur,
                    notes,
                    is_active: active,
                    default_file_map_id: map,
                    first_transaction_date: first,
                    last_transaction_date: last,
                    imports_start_date: first,
                    imports_end_date: None,
                    created_at: c,
                    updated_at: u,
                    extras,
                }
            },
        )
}

/// HouseF3's whole numbers, and the design documents' floats kept as written.
fn confidence() -> impl Strategy<Value = Confidence> {
    prop_oneof![
        (0i32..=100).prop_map(Confidence::whole),
        (0u32..=10_000, 1usize..4).prop_map(|(n, d)| {
            let text = format!("{}.{:0d$}", n / 10_000, n % 10_000, d = d);
            Confidence::parse(&text).unwrap()
        }),
        Just(Confidence::parse("0.950").unwrap()),
        Just(Confidence::parse("9.5e1").unwrap()),
    ]
}

fn assignment() -> impl Strategy<Value = CategoryAssignment> {
    (
        uuid(),
        confidence(),
        any::<bool>(),
        any::<bool>(),
        millis(),
        option::of(millis()),
        option::of("rule_[0-9a-f]{8}"),
        extras(),
    )
        .prop_map(
            |(id, conf, confirmed, manual, at, cat, rule, extras)| CategoryAssignment {
                category_id: id,
                confidence: conf,
                status: if confirmed {
                    AssignmentStatus::Confirmed
                } else {
                    AssignmentStatus::Suggested
                },
                is_manual: manual,
                assigned_at: at,
                confirmed_at: cat,
                rule_id: rule,
                extras,
            },
        )
}

fn transaction() -> impl Strategy<Value = Transaction> {
    (
        (
            uuid(),
            uuid(),
            option::of(uuid()),
            millis(),
            text(),
            decimal(),
        ),
        (
            option::of(currency()),
            option::of(decimal()),
            option::of(any::<i64>()),
            option::of(text()),
            option::of(text()),
        ),
        (
            option::of("[0-9]{1,6}"),
            option::of("[A-Z0-9]{1,20}"),
            option::of(text()),
            option::of(any::<u64>()),
        ),
        (
            vec(assignment(), 0..3),
            option::of(uuid()),
            millis(),
            millis(),
            extras(),
        ),
    )
        .prop_map(
            |(
                (id, acc, file, date, desc, amount),
                (cur, bal, order, ty, memo),
                (chk, fit, status, hash),
                (cats, primary, c, u, extras),
            )| Transaction {
                user_id: Some("u".into()),
                file_id: file,
                transaction_id: id,
                account_id: acc,
                date,
                description: desc,
                amount,
                currency: cur,
                balance: bal,
                import_order: order,
                transaction_type: ty,
                memo,
                check_number: chk,
                fit_id: fit,
                status_date: status.as_ref().map(|s| format!("{s}#{date}")),
                status,
                created_at: c,
                updated_at: u,
                transaction_hash: hash,
                categories: cats,
                primary_category_id: primary,
                extras,
            },
        )
}

fn rule() -> impl Strategy<Value = CategoryRule> {
    (
        (
            "rule_[0-9a-f]{8}",
            "description|memo|amount|payee",
            proptest::sample::select(RuleCondition::ALL.to_vec()),
            text(),
        ),
        (any::<bool>(), 0i32..=100, any::<bool>(), 0i32..=100),
        (
            option::of((0u32..1_000_000).prop_map(|n| Decimal::from_minor(n as i64, 2))),
            option::of(Just(Decimal::parse("5.00").unwrap())),
        ),
        (any::<bool>(), any::<bool>(), extras()),
    )
        .prop_map(
            |((id, field, cond, value), (cs, pr, en, conf), (min, max), (multi, auto, extras))| {
                CategoryRule {
                    rule_id: id,
                    field_to_match: field,
                    condition: cond,
                    value,
                    case_sensitive: cs,
                    priority: Score(pr),
                    enabled: en,
                    confidence: Score(conf),
                    amount_min: min,
                    amount_max: max,
                    allow_multiple_matches: multi,
                    auto_suggest: auto,
                    extras,
                }
            },
        )
}

fn category() -> impl Strategy<Value = Category> {
    (
        (
            uuid(),
            text(),
            proptest::sample::select(CategoryType::ALL.to_vec()),
            option::of(uuid()),
        ),
        (
            option::of(text()),
            option::of("#[0-9A-F]{6}"),
            vec(rule(), 0..3),
        ),
        (
            millis(),
            millis(),
            any::<bool>(),
            proptest::sample::select(RuleInheritanceMode::ALL.to_vec()),
            extras(),
        ),
    )
        .prop_map(
            |((id, name, t, parent), (icon, color, rules), (c, u, inherit, mode, extras))| {
                Category {
                    user_id: Some("u".into()),
                    name,
                    category_type: t,
                    category_id: id,
                    parent_category_id: parent,
                    icon,
                    color,
                    rules,
                    created_at: c,
                    updated_at: u,
                    inherit_parent_rules: inherit,
                    rule_inheritance_mode: mode,
                    extras,
                }
            },
        )
}

fn file_map() -> impl Strategy<Value = FileMap> {
    (
        uuid(),
        text(),
        vec((text(), text(), option::of(text()), extras()), 1..4),
        option::of(uuid()),
        option::of(text()),
        any::<bool>(),
        (millis(), millis(), extras()),
    )
        .prop_map(|(id, name, maps, acc, desc, rev, (c, u, extras))| FileMap {
            file_map_id: id,
            user_id: Some("u".into()),
            name,
            mappings: maps
                .into_iter()
                .map(|(s, t, x, e)| FieldMapping {
                    source_field: s,
                    target_field: t,
                    transformation: x,
                    extras: e,
                })
                .collect(),
            account_id: acc,
            description: desc,
            reverse_amounts: rev,
            created_at: c,
            updated_at: u,
            extras,
        })
}

fn transaction_file() -> impl Strategy<Value = TransactionFile> {
    (
        (uuid(), text(), millis(), any::<u32>(), option::of(text())),
        (
            proptest::sample::select(ProcessingStatus::ALL.to_vec()),
            option::of(millis()),
            option::of(proptest::sample::select(FileFormat::ALL.to_vec())),
            option::of(uuid()),
            option::of(uuid()),
        ),
        (
            option::of(0i64..100_000),
            option::of((millis(), millis())),
            option::of(text()),
            option::of(decimal()),
            option::of(decimal()),
        ),
        (
            option::of(currency()),
            option::of(0i64..100),
            option::of(0i64..100_000),
            millis(),
            millis(),
            extras(),
        ),
    )
        .prop_map(
            |(
                (id, name, up, size, key),
                (status, processed, fmt, acc, map),
                (records, range, err, open, close),
                (cur, dups, count, c, u, extras),
            )| TransactionFile {
                file_id: id,
                user_id: Some("u".into()),
                file_name: name,
                upload_date: up,
                file_size: size as u64,
                s3_key: key,
                processing_status: status,
                processed_date: processed,
                file_format: fmt,
                account_id: acc,
                file_map_id: map,
                record_count: records,
                date_range: range.map(|(a, b)| DateRange {
                    start_date: a,
                    end_date: b,
                    extras: Extras::new(),
                }),
                error_message: err,
                opening_balance: open,
                closing_balance: close,
                currency: cur,
                duplicate_count: dups,
                transaction_count: count,
                created_at: c,
                updated_at: u,
                extras,
            },
        )
}

fn analytics() -> impl Strategy<Value = AnalyticsRecord> {
    (
        proptest::sample::select(AnalyticType::ALL.to_vec()),
        "[0-9]{4}-[0-9]{2}",
        option::of(uuid()),
        json_value(),
        extras(),
    )
        .prop_map(|(t, period, acc, data, extras)| AnalyticsRecord {
            user_id: Some("u".into()),
            analytic_type: t,
            time_period: period,
            account_id: acc,
            data: RawJson::from_value(&serde_json::json!({ "value": data })).unwrap(),
            computed_date: "2026-01-01T00:00:00+00:00".into(),
            data_through_date: "2025-12-31".into(),
            ttl: None,
            extras,
        })
}

fn write_read<T: Entity>(items: &[T]) -> Vec<T> {
    let mut w = PackageWriter::new(Cursor::new(Vec::new()), WriterOptions::default());
    let mut arr = w.begin_entities(T::KIND, 0).unwrap();
    for i in items {
        arr.push(i).unwrap();
    }
    arr.finish().unwrap();
    let mut m = Manifest::new("u", "job", 0);
    let (cursor, _) = w.finish(&mut m).unwrap();
    let mut r = PackageReader::open(Cursor::new(cursor.into_inner()), Limits::default()).unwrap();
    let mut out = Vec::new();
    r.read_entities::<T, ()>(|item| {
        out.push(item.unwrap());
        Ok(())
    })
    .map_err(|_| "read failed")
    .unwrap();
    out
}

fn same_json<T: Entity + std::fmt::Debug>(a: &[T], b: &[T]) {
    assert_eq!(a.len(), b.len());
    for (x, y) in a.iter().zip(b) {
        assert_eq!(
            serde_json::to_string(x).unwrap(),
            serde_json::to_string(y).unwrap()
        );
        assert_eq!(x, y);
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn accounts_round_trip(items in vec(account(), 0..6)) {
        same_json(&items, &write_read(&items));
    }

    #[test]
    fn transactions_round_trip(items in vec(transaction(), 0..12)) {
        same_json(&items, &write_read(&items));
    }

    #[test]
    fn categories_round_trip(items in vec(category(), 0..6)) {
        same_json(&items, &write_read(&items));
    }

    #[test]
    fn file_maps_round_trip(items in vec(file_map(), 0..4)) {
        same_json(&items, &write_read(&items));
    }

    #[test]
    fn transaction_files_round_trip(items in vec(transaction_file(), 0..6)) {
        same_json(&items, &write_read(&items));
    }

    #[test]
    fn analytics_round_trip(items in vec(analytics(), 0..4)) {
        same_json(&items, &write_read(&items));
    }

    /// The element scanner splits any array of objects exactly where serde_json would.
    #[test]
    fn scanner_matches_serde(values in vec(json_value(), 0..8), pretty in any::<bool>()) {
        let objects: Vec<serde_json::Value> = values.into_iter().map(|v| serde_json::json!({ "v": v, "s": "]}\"{[" })).collect();
        let text = if pretty { serde_json::to_string_pretty(&objects).unwrap() } else { serde_json::to_string(&objects).unwrap() };
        let mut got = Vec::new();
        fzip_format::json_array::for_each_element::<_, ()>(text.as_bytes(), &[], 1 << 20, |_, b| {
            got.push(serde_json::from_slice::<serde_json::Value>(b).unwrap());
            Ok(())
        }).map_err(|_| "scan failed").unwrap();
        prop_assert_eq!(got, objects);
    }
}
