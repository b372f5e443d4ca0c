//! Test helpers: ZIP archives built byte by byte (so tests can make the hostile ones no ZIP
//! library will write), surgery on existing packages, and the shared fixtures.
#![forbid(unsafe_code)]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::Write;
use std::path::{Path, PathBuf};

/// The HouseF3 fixtures folder (`shared/fixtures/housef3`), if present.
pub fn housef3_fixture(name: &str) -> Option<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../../shared/fixtures/housef3")
        .join(name);
    dir.join("backup.fzip").exists().then_some(dir)
}

/// One entry of a hand-made archive.
#[derive(Clone, Debug)]
pub struct RawEntry {
    pub name: Vec<u8>,
    pub data: Vec<u8>,
    /// 0 stored, 8 deflate, or any other method number (the data is taken as already encoded).
    pub method: u16,
    /// Uncompressed size to declare (defaults to the data length for stored entries).
    pub declared_size: Option<u32>,
    pub crc: Option<u32>,
    pub flags: u16,
    /// Unix mode in the high 16 bits of the external attributes, when set.
    pub unix_mode: Option<u32>,
}

impl RawEntry {
    pub fn stored(name: &str, data: &[u8]) -> Self {
        RawEntry {
            name: name.as_bytes().to_vec(),
            data: data.to_vec(),
            method: 0,
            declared_size: None,
            crc: None,
            flags: 0x0800,
            unix_mode: None,
        }
    }

    /// A DEFLATE entry holding `plain`.
    pub fn deflated(name: &str, plain: &[u8]) -> Self {
        let mut enc =
            flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::default());
        enc.write_all(plain).unwrap();
        let data = enc.finish().unwrap();
        let mut crc = flate2::Crc::new();
        crc.update(plain);
        RawEntry {
            name: name.as_bytes().to_vec(),
            data,
            method: 8,
            declared_size: Some(plain.len() as u32),
            crc: Some(crc.sum()),
            flags: 0x0800,
            unix_mode: None,
        }
    }
}

/// Builds a ZIP archive exactly as described, duplicates and all.
pub fn raw_zip(entries: &[RawEntry]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut central = Vec::new();
    for e in entries {
        let crc = e.crc.unwrap_or_else(|| {
            let mut c = flate2::Crc::new();
            c.update(&e.data);
            c.sum()
        });
        let size = e.declared_size.unwrap_or(e.data.len() as u32);
        let offset = out.len() as u32;
        // Local file header.
        out.extend_from_slice(&0x04034b50u32.to_le_bytes());
        out.extend_from_slice(&20u16.to_le_bytes());
        out.extend_from_slice(&e.flags.to_le_bytes());
        out.extend_from_slice(&e.method.to_le_bytes());
        out.extend_from_slice(&0u16.to_le_bytes());
        out.extend_from_slice(&0x5821u16.to_le_bytes());
        out.extend_from_slice(&crc.to_le_bytes());
        out.extend_from_slice(&(e.data.len() as u32).to_le_bytes());
        out.extend_from_slice(&size.to_le_bytes());
        out.extend_from_slice(&(e.name.len() as u16).to_le_bytes());
        out.extend_from_slice(&0u16.to_le_bytes());
        out.extend_from_slice(&e.name);
        out.extend_from_slice(&e.data);
        // Central directory header.
        central.extend_from_slice(&0x02014b50u32.to_le_bytes());
        let made_by: u16 = if e.unix_mode.is_some() {
            (3 << 8) | 20
        } else {
            20
        };
        central.extend_from_slice(&made_by.to_le_bytes());
        central.extend_from_slice(&20u16.to_le_bytes());
        central.extend_from_slice(&e.flags.to_le_bytes());
        central.extend_from_slice(&e.method.to_le_bytes());
        central.extend_from_slice(&0u16.to_le_bytes());
        central.extend_from_slice(&0x5821u16.to_le_bytes());
        central.extend_from_slice(&crc.to_le_bytes());
        central.extend_from_slice(&(e.data.len() as u32).to_le_bytes());
        central.extend_from_slice(&size.to_le_bytes());
        central.extend_from_slice(&(e.name.len() as u16).to_le_bytes());
        central.extend_from_slice(&0u16.to_le_bytes());
        central.extend_from_slice(&0u16.to_le_bytes());
        central.extend_from_slice(&0u16.to_le_bytes());
        central.extend_from_slice(&0u16.to_le_bytes());
        central.extend_from_slice(&(e.unix_mode.unwrap_or(0) << 16).to_le_bytes());
        central.extend_from_slice(&offset.to_le_bytes());
        central.extend_from_slice(&e.name);
    }
    let cd_offset = out.len() as u32;
    out.extend_from_slice(&central);
    out.extend_from_slice(&0x06054b50u32.to_le_bytes());
    out.extend_from_slice(&0u16.to_le_bytes());
    out.extend_from_slice(&0u16.to_le_bytes());
    out.extend_from_slice(&(entries.len() as u16).to_le_bytes());
    out.extend_from_slice(&(entries.len() as u16).to_le_bytes());
    out.extend_from_slice(&(central.len() as u32).to_le_bytes());
    out.extend_from_slice(&cd_offset.to_le_bytes());
    out.extend_from_slice(&0u16.to_le_bytes());
    out
}

/// An entry of an existing archive, as located in its bytes.
#[derive(Clone, Debug)]
pub struct Located {
    pub name: String,
    pub method: u16,
    pub compressed_size: u64,
    pub header_start: u64,
    pub data_start: u64,
}

fn u16_at(b: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([b[at], b[at + 1]])
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

/// Lists the entries of an archive (no ZIP64) by walking its central directory.
pub fn locate_entries(zip: &[u8]) -> Vec<Located> {
    let eocd = (0..zip.len() - 21)
        .rev()
        .find(|&i| u32_at(zip, i) == 0x06054b50)
        .expect("no end of central directory");
    let count = u16_at(zip, eocd + 10) as usize;
    let mut at = u32_at(zip, eocd + 16) as usize;
    let mut out = Vec::new();
    for _ in 0..count {
        assert_eq!(u32_at(zip, at), 0x02014b50);
        let method = u16_at(zip, at + 10);
        let compressed = u32_at(zip, at + 20) as u64;
        let name_len = u16_at(zip, at + 28) as usize;
        let extra_len = u16_at(zip, at + 30) as usize;
        let comment_len = u16_at(zip, at + 32) as usize;
        let header = u32_at(zip, at + 42) as usize;
        let name = String::from_utf8_lossy(&zip[at + 46..at + 46 + name_len]).into_owned();
        let local_name = u16_at(zip, header + 26) as usize;
        let local_extra = u16_at(zip, header + 28) as usize;
        out.push(Located {
            name,
            method,
            compressed_size: compressed,
            header_start: header as u64,
            data_start: (header + 30 + local_name + local_extra) as u64,
        });
        at += 46 + name_len + extra_len + comment_len;
    }
    out
}

/// A copy of the archive with one byte of `entry`'s stored data inverted (in the middle).
pub fn flip_byte_in_entry(zip: &[u8], entry: &str) -> Vec<u8> {
    let e = locate_entries(zip)
        .into_iter()
        .find(|e| e.name == entry)
        .unwrap_or_else(|| panic!("no entry {entry}"));
    assert!(e.compressed_size > 0, "{entry} is empty");
    let mut out = zip.to_vec();
    let at = (e.data_start + e.compressed_size / 2) as usize;
    out[at] ^= 0xFF;
    out
}

/// Every entry of an archive, decompressed (stored and DEFLATE only).
pub fn read_entries(zip: &[u8]) -> Vec<(String, Vec<u8>)> {
    locate_entries(zip)
        .into_iter()
        .map(|e| {
            let raw = &zip[e.data_start as usize..(e.data_start + e.compressed_size) as usize];
            let data = match e.method {
                0 => raw.to_vec(),
                8 => {
                    let mut d = flate2::read::DeflateDecoder::new(raw);
                    let mut v = Vec::new();
                    std::io::Read::read_to_end(&mut d, &mut v).unwrap();
                    v
                }
                m => panic!("method {m}"),
            };
            (e.name, data)
        })
        .collect()
}

/// Rebuilds an archive from entries, deflating each.
pub fn rebuild(entries: &[(String, Vec<u8>)]) -> Vec<u8> {
    let raw: Vec<RawEntry> = entries
        .iter()
        .map(|(n, d)| RawEntry::deflated(n, d))
        .collect();
    raw_zip(&raw)
}

/// Strings HouseF3's models accept, so its backups can hold them: NUL, other C0 controls, DEL,
/// CR/LF, C1 controls, line separators, emoji (astral, written by Python as surrogate pairs),
/// U+10FFFF, backslashes and quotes.
pub const AWKWARD_TEXT: &[&str] = &[
    "nul \0 inside",
    "\0",
    "\u{1}start of heading",
    "del \u{7f} here",
    "crlf\r\nnext line\rreturn\nnewline",
    "emoji 😀 💶 ✈️ 👩‍👩‍👧",
    "all \0\u{1}\u{7f}\r\n😀\t\u{1b}[0m\u{85}\u{2028}\u{10FFFF} \\ \" end",
    "\u{10FFFF} leading U+10FFFF",
];

/// JSON text as Python's `json.dumps` writes it (`ensure_ascii=True`, HouseF3's default): every
/// character outside printable ASCII as `\uXXXX` (astral characters as surrogate pairs).
pub fn python_json(value: &serde_json::Value) -> String {
    let text = serde_json::to_string(value).unwrap();
    let mut out = String::with_capacity(text.len());
    // serde_json escapes the C0 controls already; outside strings there is only ASCII.
    for c in text.chars() {
        if (' '..='~').contains(&c) {
            out.push(c);
        } else {
            let mut units = [0u16; 2];
            for u in c.encode_utf16(&mut units) {
                out.push_str(&format!("\\u{u:04x}"));
            }
        }
    }
    out
}

/// A copy of a HouseF3 package (`data/{stem}.json.gz` bare arrays, empty `checksums`) with the
/// entities of one data file changed by `edit`, rewritten as HouseF3 writes them.
pub fn edit_housef3_data(
    zip: &[u8],
    stem: &str,
    edit: impl FnOnce(&mut Vec<serde_json::Value>),
) -> Vec<u8> {
    let name = format!("data/{stem}.json.gz");
    let mut entries = read_entries(zip);
    let (_, data) = entries
        .iter_mut()
        .find(|(n, _)| *n == name)
        .unwrap_or_else(|| panic!("no entry {name}"));
    let mut items: Vec<serde_json::Value> =
        serde_json::from_reader(flate2::read::GzDecoder::new(&data[..])).unwrap();
    edit(&mut items);
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(python_json(&serde_json::Value::Array(items)).as_bytes())
        .unwrap();
    *data = gz.finish().unwrap();
    rebuild(&entries)
}

/// HouseF3's `small` fixture with [`AWKWARD_TEXT`] in every transaction's description, memo and
/// check number (and an unknown key), and in account names and notes, category names, file map
/// names and descriptions, and statement files' error messages; `None` without the fixtures.
pub fn housef3_with_awkward_text() -> Option<Vec<u8>> {
    use serde_json::Value;
    let dir = housef3_fixture("small")?;
    let zip = std::fs::read(dir.join("backup.fzip")).unwrap();
    let awkward = |i: usize| AWKWARD_TEXT[i % AWKWARD_TEXT.len()];
    let set = |v: &mut Value, key: &str, text: String| {
        v.as_object_mut()
            .unwrap()
            .insert(key.into(), Value::String(text));
    };
    let append = |v: &mut Value, key: &str, text: &str| {
        let old = v[key].as_str().unwrap_or("").to_string();
        v.as_object_mut()
            .unwrap()
            .insert(key.into(), Value::String(format!("{old} {text}")));
    };
    let zip = edit_housef3_data(&zip, "transactions", |txs| {
        for (i, t) in txs.iter_mut().enumerate() {
            append(t, "description", awkward(i));
            set(t, "memo", awkward(i + 1).to_string());
            set(t, "checkNumber", format!("\u{1}{i}\0"));
            set(t, "zzNote", awkward(i + 2).to_string());
        }
    });
    let zip = edit_housef3_data(&zip, "accounts", |accounts| {
        for (i, a) in accounts.iter_mut().enumerate() {
            append(a, "accountName", "\0\u{1}\u{7f}\r\n😀");
            set(a, "notes", AWKWARD_TEXT.concat() + &i.to_string());
        }
    });
    let zip = edit_housef3_data(&zip, "categories", |categories| {
        for (i, c) in categories.iter_mut().enumerate() {
            append(c, "name", awkward(i));
        }
    });
    let zip = edit_housef3_data(&zip, "file_maps", |maps| {
        for (i, m) in maps.iter_mut().enumerate() {
            append(m, "name", awkward(i));
            set(m, "description", awkward(i + 3).to_string());
        }
    });
    Some(edit_housef3_data(&zip, "transaction_files", |files| {
        for (i, f) in files.iter_mut().enumerate() {
            set(f, "errorMessage", awkward(i + 4).to_string());
        }
    }))
}
