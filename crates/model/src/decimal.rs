//! Exact decimal numbers for money.
//!
//! HouseF3 writes money as the text of a Python `Decimal` (`str(Decimal)`): `"10.50"`, `"-3.5"`,
//! `"100"`, `"1E-7"`, `"-1.45E+3"`. fzip keeps that text exactly, so `"10.50"` is written back as
//! `"10.50"` and never passes through a float. Two decimals are equal when they have the same
//! value *and* the same scale (the Python `Decimal` coefficient/exponent pair): `"10.5"` equals
//! `"1.05E+1"` but not `"10.50"`.

use std::fmt;
use std::hash::{Hash, Hasher};

use serde::de::{self, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Longest decimal text accepted, in bytes.
pub const MAX_DECIMAL_LEN: usize = 64;
/// Largest exponent magnitude accepted (`1E+9999`).
pub const MAX_EXPONENT: i64 = 9_999;
/// Python's default `Decimal` context precision, used by `normalize()`.
const PYTHON_PRECISION: usize = 28;

/// Why a text is not a decimal number.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecimalError {
    #[error("empty decimal")]
    Empty,
    #[error("decimal {0:?} is longer than {MAX_DECIMAL_LEN} characters")]
    TooLong(String),
    #[error("{0:?} is not a decimal number (expected digits such as \"-12.50\" or \"1E-7\")")]
    Syntax(String),
    #[error("decimal {0:?} has an exponent beyond ±{MAX_EXPONENT}")]
    Exponent(String),
}

/// An exact decimal number, kept as the text it was written with.
#[derive(Clone)]
pub struct Decimal {
    text: Box<str>,
}

/// The value of a decimal as sign, coefficient digits and exponent (value = ±digits × 10^exponent).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecimalParts {
    pub negative: bool,
    /// Coefficient digits without leading zeros; `"0"` for zero.
    pub digits: String,
    pub exponent: i64,
}

impl Decimal {
    /// Parses and keeps `text`, which must be a finite decimal number.
    pub fn parse(text: &str) -> Result<Self, DecimalError> {
        parse_parts(text)?;
        Ok(Decimal { text: text.into() })
    }

    /// A decimal from an integer number of minor units: `from_minor(-1050, 2)` is `"-10.50"`.
    pub fn from_minor(units: i64, scale: u32) -> Self {
        let negative = units < 0;
        let abs = units.unsigned_abs().to_string();
        let scale = scale as usize;
        let text = if scale == 0 {
            abs
        } else if abs.len() > scale {
            format!(
                "{}.{}",
                &abs[..abs.len() - scale],
                &abs[abs.len() - scale..]
            )
        } else {
            format!("0.{}{}", "0".repeat(scale - abs.len()), abs)
        };
        let text = if negative { format!("-{text}") } else { text };
        Decimal { text: text.into() }
    }

    /// The exact text.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// Sign, coefficient and exponent.
    pub fn parts(&self) -> DecimalParts {
        // The text was validated on construction.
        parse_parts(&self.text).unwrap_or(DecimalParts {
            negative: false,
            digits: "0".into(),
            exponent: 0,
        })
    }

    /// True when the value is below zero.
    pub fn is_negative(&self) -> bool {
        let p = self.parts();
        p.negative && p.digits != "0"
    }

    /// A key that is equal for two decimals exactly when they have the same value and scale:
    /// `"-1050E-2"` for `"-10.50"`.
    pub fn canonical(&self) -> String {
        let p = self.parts();
        let sign = if p.negative && p.digits != "0" {
            "-"
        } else {
            ""
        };
        format!("{sign}{}E{}", p.digits, p.exponent)
    }

    /// The text of Python's `str(Decimal(text).normalize())`, which HouseF3 hashes:
    /// `"-1450.00"` → `"-1.45E+3"`, `"100"` → `"1E+2"`, `"-8.51"` → `"-8.51"`, `"0.00"` → `"0"`.
    pub fn python_normalized(&self) -> String {
        let p = self.parts();
        let (digits, exponent) = python_normalize(&p.digits, p.exponent);
        let sign = if p.negative { "-" } else { "" };
        format!("{sign}{}", python_sci_string(&digits, exponent))
    }

    /// The value as a `rust_decimal::Decimal` for arithmetic, if it fits (28 significant digits).
    pub fn to_rust_decimal(&self) -> Option<rust_decimal::Decimal> {
        let p = self.parts();
        let mut digits = p.digits.clone();
        let mut exponent = p.exponent;
        if exponent > 0 {
            if exponent > 28 {
                return None;
            }
            digits.push_str(&"0".repeat(exponent as usize));
            exponent = 0;
        }
        let scale = u32::try_from(-exponent).ok()?;
        if scale > 28 {
            return None;
        }
        let mantissa: i128 = digits.parse().ok()?;
        let mantissa = if p.negative { -mantissa } else { mantissa };
        rust_decimal::Decimal::try_from_i128_with_scale(mantissa, scale).ok()
    }

    /// A decimal holding the exact text of a `rust_decimal::Decimal` (its scale is kept).
    pub fn from_rust_decimal(value: rust_decimal::Decimal) -> Self {
        Decimal {
            text: value.to_string().into(),
        }
    }
}

fn parse_parts(text: &str) -> Result<DecimalParts, DecimalError> {
    if text.is_empty() {
        return Err(DecimalError::Empty);
    }
    if text.len() > MAX_DECIMAL_LEN {
        return Err(DecimalError::TooLong(text.chars().take(80).collect()));
    }
    let syntax = || DecimalError::Syntax(text.to_string());
    let bytes = text.as_bytes();
    let mut i = 0;
    let mut negative = false;
    if let Some(&c) = bytes.first()
        && (c == b'-' || c == b'+')
    {
        negative = c == b'-';
        i = 1;
    }
    let int_start = i;
    while i < bytes.len() && bytes[i].is_ascii_digit() {
        i += 1;
    }
    let int_digits = &text[int_start..i];
    let mut frac_digits = "";
    if i < bytes.len() && bytes[i] == b'.' {
        i += 1;
        let frac_start = i;
        while i < bytes.len() && bytes[i].is_ascii_digit() {
            i += 1;
        }
        frac_digits = &text[frac_start..i];
    }
    if int_digits.is_empty() && frac_digits.is_empty() {
        return Err(syntax());
    }
    let mut exponent: i64 = 0;
    if i < bytes.len() && (bytes[i] == b'e' || bytes[i] == b'E') {
        i += 1;
        let exp_text = &text[i..];
        let (exp_negative, exp_digits) = match exp_text.as_bytes().first() {
            Some(b'-') => (true, &exp_text[1..]),
            Some(b'+') => (false, &exp_text[1..]),
            _ => (false, exp_text),
        };
        if exp_digits.is_empty() || !exp_digits.bytes().all(|b| b.is_ascii_digit()) {
            return Err(syntax());
        }
        let significant = exp_digits.trim_start_matches('0');
        if significant.len() > 6 {
            return Err(DecimalError::Exponent(text.to_string()));
        }
        let magnitude: i64 = if significant.is_empty() {
            0
        } else {
            significant.parse().map_err(|_| syntax())?
        };
        if magnitude > MAX_EXPONENT {
            return Err(DecimalError::Exponent(text.to_string()));
        }
        exponent = if exp_negative { -magnitude } else { magnitude };
        i = bytes.len();
    }
    if i != bytes.len() {
        return Err(syntax());
    }
    let mut digits = String::with_capacity(int_digits.len() + frac_digits.len());
    digits.push_str(int_digits);
    digits.push_str(frac_digits);
    let trimmed = digits.trim_start_matches('0');
    let digits = if trimmed.is_empty() {
        "0".to_string()
    } else {
        trimmed.to_string()
    };
    exponent -= frac_digits.len() as i64;
    if exponent.abs() > MAX_EXPONENT + MAX_DECIMAL_LEN as i64 {
        return Err(DecimalError::Exponent(text.to_string()));
    }
    Ok(DecimalParts {
        negative,
        digits,
        exponent,
    })
}

/// Python `Decimal.normalize()` in the default context: round to 28 digits (half even), strip
/// trailing zeros; zero becomes exponent 0.
fn python_normalize(digits: &str, exponent: i64) -> (String, i64) {
    if digits == "0" {
        return ("0".into(), 0);
    }
    let mut digits: Vec<u8> = digits.bytes().collect();
    let mut exponent = exponent;
    if digits.len() > PYTHON_PRECISION {
        let drop = digits.len() - PYTHON_PRECISION;
        let kept = &digits[..PYTHON_PRECISION];
        let first_dropped = digits[PYTHON_PRECISION];
        let rest_nonzero = digits[PYTHON_PRECISION + 1..].iter().any(|&d| d != b'0');
        let last_kept_odd = (kept[PYTHON_PRECISION - 1] - b'0') % 2 == 1;
        let round_up =
            first_dropped > b'5' || (first_dropped == b'5' && (rest_nonzero || last_kept_odd));
        let mut kept = kept.to_vec();
        exponent += drop as i64;
        if round_up {
            let mut idx = kept.len();
            loop {
                if idx == 0 {
                    kept.insert(0, b'1');
                    break;
                }
                idx -= 1;
                if kept[idx] == b'9' {
                    kept[idx] = b'0';
                } else {
                    kept[idx] += 1;
                    break;
                }
            }
            if kept.len() > PYTHON_PRECISION {
                kept.pop();
                exponent += 1;
            }
        }
        digits = kept;
    }
    while digits.len() > 1 && digits.last() == Some(&b'0') {
        digits.pop();
        exponent += 1;
    }
    (String::from_utf8_lossy(&digits).into_owned(), exponent)
}

/// Python's `Decimal.__str__` (to-scientific-string) for a coefficient and exponent.
fn python_sci_string(digits: &str, exponent: i64) -> String {
    let n = digits.len() as i64;
    let leftdigits = exponent + n;
    let dotplace = if exponent <= 0 && leftdigits > -6 {
        leftdigits
    } else {
        1
    };
    let (intpart, fracpart) = if dotplace <= 0 {
        (
            "0".to_string(),
            format!(".{}{}", "0".repeat((-dotplace) as usize), digits),
        )
    } else if dotplace >= n {
        (
            format!("{}{}", digits, "0".repeat((dotplace - n) as usize)),
            String::new(),
        )
    } else {
        (
            digits[..dotplace as usize].to_string(),
            format!(".{}", &digits[dotplace as usize..]),
        )
    };
    let exp = if leftdigits == dotplace {
        String::new()
    } else {
        format!("E{:+}", leftdigits - dotplace)
    };
    format!("{intpart}{fracpart}{exp}")
}

impl PartialEq for Decimal {
    fn eq(&self, other: &Self) -> bool {
        self.text == other.text || self.canonical() == other.canonical()
    }
}

impl Eq for Decimal {}

impl Hash for Decimal {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.canonical().hash(state);
    }
}

impl fmt::Debug for Decimal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Decimal({})", self.text)
    }
}

impl fmt::Display for Decimal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl std::str::FromStr for Decimal {
    type Err = DecimalError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Decimal::parse(s)
    }
}

impl Serialize for Decimal {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.text)
    }
}

impl<'de> Deserialize<'de> for Decimal {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct DecimalVisitor;
        impl Visitor<'_> for DecimalVisitor {
            type Value = Decimal;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a decimal string such as \"-12.50\"")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Decimal, E> {
                Decimal::parse(v).map_err(E::custom)
            }
            // Integers written as JSON numbers are exact; floats are refused because their text
            // may already have lost digits somewhere upstream.
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Decimal, E> {
                Ok(Decimal::from_minor(v, 0))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Decimal, E> {
                Decimal::parse(&v.to_string()).map_err(E::custom)
            }
        }
        deserializer.deserialize_any(DecimalVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> Decimal {
        Decimal::parse(s).unwrap()
    }

    #[test]
    fn keeps_text() {
        for s in [
            "10.50", "-3.5", "100", "1E-7", "-1.45E+3", "0.000", ".5", "5.", "+2",
        ] {
            assert_eq!(d(s).as_str(), s);
        }
    }

    #[test]
    fn rejects_non_numbers() {
        for s in [
            "", "-", ".", "NaN", "Infinity", "1,5", "1.2.3", "1e", "1e+", " 1", "1 ", "0x10",
            "1E99999",
        ] {
            assert!(Decimal::parse(s).is_err(), "{s:?} should be refused");
        }
    }

    #[test]
    fn equality_is_value_and_scale() {
        assert_eq!(d("10.5"), d("1.05E+1"));
        assert_ne!(d("10.5"), d("10.50"));
        assert_eq!(d("-0.00"), d("0.00"));
        assert_ne!(d("100"), d("1E+2"));
        assert_eq!(d("007.10"), d("7.10"));
    }

    #[test]
    fn python_normalize_matches_housef3_vectors() {
        let cases = [
            ("-1450.00", "-1.45E+3"),
            ("-1180.00", "-1.18E+3"),
            ("-8.51", "-8.51"),
            ("-16.89", "-16.89"),
            ("100.00", "1E+2"),
            ("100", "1E+2"),
            ("0.00", "0"),
            ("-0.00", "-0"),
            ("1E-7", "1E-7"),
            ("0.0000001", "1E-7"),
            ("0.000001", "0.000001"),
            ("1.10", "1.1"),
            ("2500.75", "2500.75"),
            ("12345", "12345"),
            ("120", "1.2E+2"),
            ("-3.5", "-3.5"),
        ];
        for (input, want) in cases {
            assert_eq!(d(input).python_normalized(), want, "normalize({input})");
        }
    }

    #[test]
    fn python_normalize_rounds_to_28_digits() {
        // Decimal('1.23456789012345678901234567891').normalize() == Decimal('1.234567890123456789012345679')
        assert_eq!(
            d("1.23456789012345678901234567891").python_normalized(),
            "1.234567890123456789012345679"
        );
    }

    #[test]
    fn minor_units() {
        assert_eq!(Decimal::from_minor(-1050, 2).as_str(), "-10.50");
        assert_eq!(Decimal::from_minor(5, 3).as_str(), "0.005");
        assert_eq!(Decimal::from_minor(1200, 0).as_str(), "1200");
        assert_eq!(Decimal::from_minor(0, 2).as_str(), "0.00");
    }

    #[test]
    fn arithmetic_conversion() {
        assert_eq!(
            d("-1.45E+3").to_rust_decimal().map(|v| v.to_string()),
            Some("-1450".into())
        );
        assert_eq!(
            d("10.50").to_rust_decimal().map(|v| v.to_string()),
            Some("10.50".into())
        );
    }

    #[test]
    fn json_round_trip() {
        let v: Decimal = serde_json::from_str("\"-0.10\"").unwrap();
        assert_eq!(serde_json::to_string(&v).ok().as_deref(), Some("\"-0.10\""));
        let n: Decimal = serde_json::from_str("42").unwrap();
        assert_eq!(n.as_str(), "42");
        assert!(serde_json::from_str::<Decimal>("4.2").is_err());
    }
}
