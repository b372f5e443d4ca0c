//! Writes the seed corpora of the fuzz targets (`fuzz/`, one folder per target): the HouseF3
//! fixture package, packages fzip wrote (given as arguments), the hostile archives of
//! `crates/format/tests/hostile.rs`, a design-document package, the manifests and data arrays
//! inside all of them, decimals, tokens and signed URLs. The checked-in corpora
//! (`fuzz/corpus/`) grew from these seeds and were minimised with `cargo fuzz cmin`; see the
//! README's "Reliability" section.
//!
//! `cargo run -p fzip-testkit --example fuzz_seeds -- OUT_DIR [PACKAGE.fzip…]`
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use fzip_testkit::{RawEntry, housef3_fixture, raw_zip, read_entries};

const MANIFEST: &str = r#"{"backupFormatVersion":"1.0","backupTimestamp":"2026-01-01T00:00:00.000000+00:00","userId":"u","housef3Version":"2.5.0","packageFormat":"fzip","dataSummary":{"accountsCount":0,"transactionsCount":0,"categoriesCount":0,"fileMapsCount":0,"transactionFilesCount":0,"analyticsIncluded":false},"checksums":{}}"#;
const DESIGN_MANIFEST: &str = r#"{"export_format_version":"1.0","export_timestamp":"2024-01-15T10:30:00Z","user_id":"user_12345","housef3_version":"2.5.0","package_format":"fzip","data_summary":{"accounts_count":1,"transactions_count":0}}"#;
const ACCOUNT: &str = r#"{"accountId":"6f1c2a7e-0c1b-4f4e-9a57-2b6f1e0d9c11","userId":"u","accountName":"Checking","accountType":"checking","institution":"Bank","balance":"1200.50","currency":"USD","isActive":true,"createdAt":1700000000000,"updatedAt":1700000000000,"custom":{"x":[1,2]}}"#;

fn base() -> Vec<RawEntry> {
    let mut v = vec![RawEntry::deflated("manifest.json", MANIFEST.as_bytes())];
    for stem in [
        "accounts",
        "transactions",
        "categories",
        "file_maps",
        "transaction_files",
    ] {
        v.push(RawEntry::deflated(&format!("data/{stem}.json"), b"[]"));
    }
    v
}

fn with(extra: RawEntry) -> Vec<u8> {
    let mut e = base();
    e.push(extra);
    raw_zip(&e)
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    gz.write_all(data).unwrap();
    gz.finish().unwrap()
}

/// The hostile archives of `hostile.rs`, scaled down to seed size.
fn hostile() -> Vec<(&'static str, Vec<u8>)> {
    let mut out = vec![("clean", raw_zip(&base()))];
    out.push((
        "traversal",
        with(RawEntry::stored("files/../../x", b"evil")),
    ));
    out.push(("absolute", with(RawEntry::stored("/etc/cron.d/x", b"evil"))));
    out.push(("backslash", with(RawEntry::stored("files\\..\\x", b"evil"))));
    out.push(("drive", with(RawEntry::stored("C:/x", b"evil"))));
    let mut link = RawEntry::stored("files/abc/statement.csv", b"/etc/passwd");
    link.unix_mode = Some(0o120777);
    out.push(("symlink", with(link)));
    out.push((
        "duplicate",
        with(RawEntry::deflated("data/accounts.json", b"[]")),
    ));
    let mut enc = RawEntry::stored("files/abc/a.csv", b"xxxx");
    enc.flags |= 1;
    out.push(("encrypted", with(enc)));
    let mut bz = RawEntry::stored("files/abc/a.csv", b"BZh9");
    bz.method = 12;
    out.push(("method", with(bz)));
    out.push((
        "bomb",
        with(RawEntry::deflated(
            "files/abc/bomb.csv",
            &vec![0u8; 2 << 20],
        )),
    ));
    let mut liar = RawEntry::deflated("files/abc/a.csv", &[b'a'; 3000]);
    liar.declared_size = Some(100);
    out.push(("lying-size", with(liar)));
    let mut bad_crc = RawEntry::stored("files/abc/a.csv", b"a,b\n1,2\n");
    bad_crc.crc = Some(7);
    out.push(("bad-crc", with(bad_crc)));
    let mut gz = base();
    gz.retain(|x| x.name != b"data/transactions.json");
    let mut bomb = b"[".to_vec();
    bomb.extend(std::iter::repeat_n(b' ', 4 << 20));
    bomb.push(b']');
    gz.push(RawEntry::stored("data/transactions.json.gz", &gzip(&bomb)));
    out.push(("gzip-bomb", raw_zip(&gz)));
    let mut none = base();
    none.remove(0);
    out.push(("no-manifest", raw_zip(&none)));
    let mut bad = base();
    bad[0] = RawEntry::deflated("manifest.json", b"{not json");
    out.push(("bad-manifest", raw_zip(&bad)));
    bad[0] = RawEntry::deflated("manifest.json", br#"{"backupFormatVersion":"9.0"}"#);
    out.push(("manifest-version", raw_zip(&bad)));
    out.push(("not-a-zip", b"PK\x03\x04 not really".to_vec()));
    let clean = raw_zip(&base());
    out.push(("truncated", clean[..clean.len() - 30].to_vec()));
    let mut renamed = clean.clone();
    renamed[30 + "manifes".len()] = b'T';
    out.push(("local-header", renamed));
    // A design-document export: snake_case manifest, `{"accounts": [...]}` wrappers.
    let design = vec![
        RawEntry::deflated("manifest.json", DESIGN_MANIFEST.as_bytes()),
        RawEntry::deflated(
            "accounts.json",
            format!(r#"{{"accounts":[{ACCOUNT}]}}"#).as_bytes(),
        ),
        RawEntry::stored("transactions.json", br#"{"transactions":[]}"#),
    ];
    out.push(("design-doc", raw_zip(&design)));
    // An entity array with one account, an unknown key and a gzip data file.
    let mut one = base();
    one.retain(|x| x.name != b"data/accounts.json");
    one.push(RawEntry::stored(
        "data/accounts.json.gz",
        &gzip(format!("[{ACCOUNT}]").as_bytes()),
    ));
    out.push(("one-account-gz", raw_zip(&one)));
    out
}

fn write(dir: &Path, name: &str, bytes: &[u8]) {
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(dir.join(name), bytes).unwrap();
}

fn main() {
    let mut args = std::env::args().skip(1);
    let out = PathBuf::from(args.next().expect("usage: fuzz_seeds OUT_DIR [PACKAGE…]"));
    let mut packages: Vec<(String, Vec<u8>)> = Vec::new();
    if let Some(dir) = housef3_fixture("small") {
        packages.push((
            "housef3-small.fzip".into(),
            std::fs::read(dir.join("backup.fzip")).unwrap(),
        ));
    }
    for path in args {
        let name = Path::new(&path)
            .file_name()
            .unwrap()
            .to_string_lossy()
            .into_owned();
        packages.push((name, std::fs::read(&path).unwrap()));
    }
    for (name, bytes) in hostile() {
        packages.push((format!("hostile-{name}.zip"), bytes));
    }
    for target in ["package_open", "package_entities"] {
        for (name, bytes) in &packages {
            write(&out.join(target), name, bytes);
        }
    }

    // Manifests and data arrays from the packages that have them.
    let manifests = out.join("manifest");
    let arrays = out.join("json_array");
    let mut seen = std::collections::HashSet::new();
    // Some hostile archives are not readable by the testkit's simple walker: skip them quietly.
    std::panic::set_hook(Box::new(|_| {}));
    for (name, bytes) in &packages {
        let Ok(entries) = std::panic::catch_unwind(|| read_entries(bytes)) else {
            continue;
        };
        for (entry, data) in entries {
            let data = if entry.ends_with(".gz") {
                let mut plain = Vec::new();
                if flate2::read::GzDecoder::new(&data[..])
                    .read_to_end(&mut plain)
                    .is_err()
                {
                    continue;
                }
                plain
            } else {
                data
            };
            if !seen.insert(data.clone()) {
                continue;
            }
            let flat = format!("{name}-{}", entry.replace('/', "_"));
            if entry == "manifest.json" {
                write(&manifests, &flat, &data);
            } else if entry.contains(".json") && data.len() <= 16 << 10 {
                write(&arrays, &flat, &data);
            }
        }
    }
    let _ = std::panic::take_hook();
    write(&manifests, "design-doc.json", DESIGN_MANIFEST.as_bytes());
    write(&manifests, "fields.txt", b"alice\0job-1\0a description");
    write(
        &arrays,
        "wrapper.json",
        format!(r#"{{"meta":{{"n":[1,"]"]}},"accounts":[{ACCOUNT},{{}}]}}"#).as_bytes(),
    );
    write(
        &arrays,
        "bom.json",
        format!("\u{feff} [ {ACCOUNT} ,\n{{\"s\":\"\\\"]}}\"}} ]").as_bytes(),
    );
    write(
        &arrays,
        "nested.json",
        br#"[{"a":{"b":[{"c":"\\"}]}},{"d":"}{"}]"#,
    );

    let decimals = out.join("decimal");
    for (i, d) in [
        "10.50\n1.050E+1",
        "-3.5\n-3.50",
        "100\n1E+2",
        "1E-7\n0.0000001",
        "-1.45E+3\n-1450",
        "0.000\n-0",
        ".5\n5.",
        "+2\n2",
        "1.23456789012345678901234567891\n1",
        "1E+9999\n1E-9999",
        "-0.00\n0.00",
        "007.10\n7.1",
    ]
    .iter()
    .enumerate()
    {
        write(&decimals, &format!("d{i}"), d.as_bytes());
    }

    let tokens = out.join("bearer_token");
    let valid = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiJmdXp6LXVzZXIiLCJleHAiOjQxMDI0NDQ4MDAsImlzcyI6ImZ6aXAiLCJhdWQiOiJmemlwIn0.1W0NBVJQNWS46bTyPHUfIV94QRe95SVITP2lLXih_TA";
    write(&tokens, "valid", format!("Bearer {valid}").as_bytes());
    write(&tokens, "lower", format!("bearer  {valid} ").as_bytes());
    write(&tokens, "none-alg", b"Bearer eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0.eyJzdWIiOiJmdXp6LXVzZXIiLCJleHAiOjQxMDI0NDQ4MDB9.");
    write(&tokens, "basic", b"Basic YWxpY2U6c2VjcmV0");

    let urls = out.join("signed_url");
    let url = "eyJvcCI6ImdldCIsImtleSI6InBhY2thZ2VzL2Z1enotdXNlci9qb2ItMS5memlwIiwidXNlciI6ImZ1enotdXNlciIsImpvYiI6ImpvYi0xIiwiZXhwIjo0MTAyNDQ0ODAwMDAwLCJuYW1lIjoiYmFja3VwX2pvYi0xLmZ6aXAifQ.Kcxv7uXMHYOsbFlZrdTPlTBIv0zCY-TYG_2CVyU6A-M";
    write(&urls, "download", format!("/fzip/files/{url}").as_bytes());
    write(
        &urls,
        "upload",
        format!("/fzip/upload/{url}?part=1").as_bytes(),
    );
    write(
        &urls,
        "fields",
        b"put\0uploads/alice/j.fzip\0alice\0j\0backup.fzip",
    );
    write(&urls, "nonsense", b"nonsense");
}
