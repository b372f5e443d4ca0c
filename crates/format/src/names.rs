//! Entry names: what the reader accepts, and how the writer makes file names safe.

/// Why an entry name is refused.
pub fn check_entry_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("an entry has an empty name".into());
    }
    if name.len() > 4096 {
        return Err(format!("entry name is {} bytes long", name.len()));
    }
    if name.starts_with('/') {
        return Err(format!("{name:?} is an absolute path"));
    }
    if name.contains('\\') {
        return Err(format!("{name:?} contains a backslash"));
    }
    let bytes = name.as_bytes();
    if bytes.len() >= 2 && bytes[1] == b':' && bytes[0].is_ascii_alphabetic() {
        return Err(format!("{name:?} starts with a drive letter"));
    }
    if name.chars().any(|c| c.is_control()) {
        return Err(format!("{name:?} contains a control character"));
    }
    let trimmed = name.strip_suffix('/').unwrap_or(name);
    for part in trimmed.split('/') {
        match part {
            "" => return Err(format!("{name:?} has an empty path component")),
            "." | ".." => return Err(format!("{name:?} escapes its folder ({part:?} component)")),
            _ => {}
        }
    }
    Ok(())
}

/// Longest file name component written, in bytes.
const MAX_COMPONENT: usize = 200;

/// A file name that is one safe path component: separators, control and reserved characters
/// become `_`, `.`/`..`/empty become `file`, and it is cut to 200 bytes keeping the extension.
pub fn safe_component(name: &str) -> String {
    let mut out: String = name
        .chars()
        .map(|c| match c {
            '/' | '\\' | ':' | '*' | '?' | '"' | '<' | '>' | '|' => '_',
            c if c.is_control() => '_',
            c => c,
        })
        .collect();
    let trimmed = out.trim_matches(|c: char| c == ' ');
    if trimmed.len() != out.len() {
        out = trimmed.to_string();
    }
    if out.is_empty() || out.chars().all(|c| c == '.') {
        out = if out.is_empty() {
            "file".into()
        } else {
            out.replace('.', "_")
        };
    }
    if out.len() > MAX_COMPONENT {
        let ext = match out.rfind('.') {
            Some(i) if out.len() - i <= 16 && i > 0 => out[i..].to_string(),
            _ => String::new(),
        };
        let mut cut = MAX_COMPONENT - ext.len();
        while !out.is_char_boundary(cut) {
            cut -= 1;
        }
        out = format!("{}{}", &out[..cut], ext);
    }
    out
}

/// The entry holding a statement file's bytes: `files/{fileId}/{fileName}`, both made safe.
pub fn file_entry_name(file_id: &str, file_name: &str) -> String {
    format!(
        "files/{}/{}",
        safe_component(file_id),
        safe_component(file_name)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_unsafe_names() {
        for bad in [
            "",
            "/etc/passwd",
            "files/../../x",
            "..",
            "a/./b",
            "a//b",
            "C:/x",
            "a\\b",
            "a\u{0}b",
            "files/x/\n",
        ] {
            assert!(check_entry_name(bad).is_err(), "{bad:?}");
        }
        for good in [
            "manifest.json",
            "data/accounts.json.gz",
            "files/abc/Umsätze 2023.csv",
            "data/",
        ] {
            assert!(check_entry_name(good).is_ok(), "{good:?}");
        }
    }

    #[test]
    fn safe_components() {
        assert_eq!(safe_component("../../etc/passwd"), ".._.._etc_passwd");
        assert_eq!(safe_component(".."), "__");
        assert_eq!(safe_component(""), "file");
        assert_eq!(
            safe_component("Umsätze_Girokonto.csv"),
            "Umsätze_Girokonto.csv"
        );
        assert_eq!(safe_component("a\tb:c?.ofx"), "a_b_c_.ofx");
        let long = format!("{}.csv", "ä".repeat(300));
        let s = safe_component(&long);
        assert!(s.len() <= 200 && s.ends_with(".csv"), "{s}");
        for n in ["x/y", "..", "a\\..\\b", " . "] {
            assert!(check_entry_name(&file_entry_name("id", n)).is_ok(), "{n:?}");
        }
    }
}
