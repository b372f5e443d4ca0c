//! Text as PostgreSQL stores it, and as `COPY … FROM STDIN` (text format) receives it.
//!
//! PostgreSQL `TEXT` cannot hold the NUL character, which JSON strings may carry (`"\u0000"`).
//! So that every string round-trips, a string that contains NUL — or starts with the marker
//! U+10FFFF — is stored as the marker followed by the string with `NUL → marker '0'` and
//! `marker → marker marker`. Every other string (all real data, in practice) is stored as is.

use std::borrow::Cow;

use fzip_store::codec::SqlValue;

const MARK: char = '\u{10FFFF}';

/// The stored form of `s`.
pub fn encode(s: &str) -> Cow<'_, str> {
    if !s.contains('\0') && !s.starts_with(MARK) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    out.push(MARK);
    for c in s.chars() {
        match c {
            '\0' => {
                out.push(MARK);
                out.push('0');
            }
            MARK => {
                out.push(MARK);
                out.push(MARK);
            }
            c => out.push(c),
        }
    }
    Cow::Owned(out)
}

/// The string whose stored form is `s`; `None` when `s` is not a valid stored form.
pub fn decode(s: String) -> Option<String> {
    let Some(rest) = s.strip_prefix(MARK) else {
        return Some(s);
    };
    let mut out = String::with_capacity(rest.len());
    let mut chars = rest.chars();
    while let Some(c) = chars.next() {
        if c == MARK {
            match chars.next() {
                Some('0') => out.push('\0'),
                Some(MARK) => out.push(MARK),
                _ => return None,
            }
        } else {
            out.push(c);
        }
    }
    Some(out)
}

/// Appends one field in `COPY` text format.
pub fn copy_field(out: &mut Vec<u8>, value: &SqlValue<'_>) {
    match value {
        SqlValue::Null => out.extend_from_slice(b"\\N"),
        SqlValue::Int(i) => out.extend_from_slice(i.to_string().as_bytes()),
        SqlValue::Bool(b) => out.push(if *b { b't' } else { b'f' }),
        SqlValue::Text(t) => {
            for b in encode(t).bytes() {
                match b {
                    b'\\' => out.extend_from_slice(b"\\\\"),
                    b'\n' => out.extend_from_slice(b"\\n"),
                    b'\r' => out.extend_from_slice(b"\\r"),
                    b'\t' => out.extend_from_slice(b"\\t"),
                    other => out.push(other),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_string_round_trips() {
        for s in [
            "",
            "plain",
            "nul\0inside",
            "\0",
            "\u{10FFFF}starts with the mark",
            "mark \u{10FFFF} inside",
            "\u{10FFFF}\0\u{10FFFF}0",
        ] {
            let stored = encode(s);
            assert!(!stored.contains('\0'), "{s:?}");
            assert_eq!(decode(stored.into_owned()).as_deref(), Some(s), "{s:?}");
        }
        assert!(matches!(encode("plain"), Cow::Borrowed(_)));
        assert_eq!(decode("\u{10FFFF}\u{10FFFF}x\u{10FFFF}".into()), None);
    }

    #[test]
    fn copy_fields_escape_what_copy_treats_specially() {
        let mut out = Vec::new();
        copy_field(&mut out, &SqlValue::Text("a\tb\\c\nd\re".into()));
        out.push(b'|');
        copy_field(&mut out, &SqlValue::Null);
        out.push(b'|');
        copy_field(&mut out, &SqlValue::Int(-42));
        out.push(b'|');
        copy_field(&mut out, &SqlValue::Bool(true));
        assert_eq!(out, b"a\\tb\\\\c\\nd\\re|\\N|-42|t");
    }
}
