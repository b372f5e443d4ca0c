//! `Decimal` parsing: a decimal keeps its text exactly, survives JSON, and compares by value and
//! scale. The input is one or two texts separated by a newline.
#![no_main]

use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::str::FromStr;

use fzip_model::Decimal;
use libfuzzer_sys::fuzz_target;

fn hash_of(d: &Decimal) -> u64 {
    let mut h = DefaultHasher::new();
    d.hash(&mut h);
    h.finish()
}

/// The value as `rust_decimal`, when it has no positive exponent (whose scale `rust_decimal`
/// cannot keep) and fits.
fn exact(d: &Decimal) -> Option<rust_decimal::Decimal> {
    (d.parts().exponent <= 0)
        .then(|| d.to_rust_decimal())
        .flatten()
}

fn check_one(text: &str) -> Option<Decimal> {
    let Ok(d) = Decimal::parse(text) else {
        assert!(Decimal::from_str(text).is_err());
        return None;
    };
    assert_eq!(d.as_str(), text);
    assert_eq!(d.to_string(), text);
    assert_eq!(d, d.clone());
    let parts = d.parts();
    assert!(!parts.digits.is_empty() && parts.digits.bytes().all(|b| b.is_ascii_digit()));
    assert!(
        parts.digits == "0" || !parts.digits.starts_with('0'),
        "{parts:?}"
    );
    // JSON keeps the text.
    let json = serde_json::to_string(&d).expect("a decimal serialises");
    let back: Decimal = serde_json::from_str(&json).expect("a decimal reads back");
    assert_eq!(back.as_str(), text);
    // The canonical form has the same value and scale.
    if let Ok(c) = Decimal::parse(&d.canonical()) {
        assert_eq!(c, d, "canonical {}", d.canonical());
        assert_eq!(hash_of(&c), hash_of(&d));
    }
    // Python's normalize() keeps the value (it rounds only beyond 28 digits).
    // (Its text may need an exponent beyond what fzip reads: `1000000E+9999` is `1E+10005`.)
    match Decimal::parse(&d.python_normalized()) {
        Ok(normalized) if parts.digits.len() <= 28 => {
            if let (Some(a), Some(b)) = (d.to_rust_decimal(), normalized.to_rust_decimal()) {
                assert_eq!(
                    a,
                    b,
                    "normalize changed the value: {}",
                    d.python_normalized()
                );
            }
        }
        Ok(_) | Err(fzip_model::DecimalError::Exponent(_)) => {}
        Err(e) => panic!("normalized {text:?} is not a decimal: {e}"),
    }
    // rust_decimal agrees on the value and the scale.
    if let Some(r) = exact(&d) {
        assert_eq!(i64::from(r.scale()), -parts.exponent);
        assert_eq!(Decimal::from_rust_decimal(r), d, "via rust_decimal: {r}");
        assert_eq!(r.is_sign_negative() && !r.is_zero(), d.is_negative());
    }
    Some(d)
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let (a, b) = text.split_once('\n').unwrap_or((text, "0"));
    let (Some(x), Some(y)) = (check_one(a), check_one(b)) else {
        return;
    };
    // Equal exactly when value and scale are equal.
    let equal = x == y;
    assert_eq!(equal, y == x);
    assert_eq!(equal, x.canonical() == y.canonical());
    if equal {
        assert_eq!(hash_of(&x), hash_of(&y));
    }
    if let (Some(rx), Some(ry)) = (exact(&x), exact(&y)) {
        assert_eq!(
            equal,
            rx == ry && rx.scale() == ry.scale(),
            "{a:?} vs {b:?}"
        );
    }
});
