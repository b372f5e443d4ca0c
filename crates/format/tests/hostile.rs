//! Unsafe or broken archives are refused with an error that says what is wrong.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::Cursor;

use fzip_format::{Limits, PackageError, PackageReader, Severity};
use fzip_testkit::{RawEntry, raw_zip};

const MANIFEST: &str = r#"{"backupFormatVersion":"1.0","backupTimestamp":"2026-01-01T00:00:00.000000+00:00","userId":"u","housef3Version":"2.5.0","packageFormat":"fzip","dataSummary":{"accountsCount":0,"transactionsCount":0,"categoriesCount":0,"fileMapsCount":0,"transactionFilesCount":0,"analyticsIncluded":false},"checksums":{}}"#;

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

fn open(bytes: Vec<u8>) -> Result<PackageReader<Cursor<Vec<u8>>>, PackageError> {
    PackageReader::open(Cursor::new(bytes), Limits::default())
}

fn refused(entries: Vec<RawEntry>, expect: &str) {
    match open(raw_zip(&entries)) {
        Ok(r) => panic!("accepted; problems: {:?}", r.problems()),
        Err(e) => {
            let text = e.to_string();
            assert!(text.contains(expect), "{text:?} should mention {expect:?}");
        }
    }
}

#[test]
fn a_clean_package_opens() {
    let r = open(raw_zip(&base())).unwrap();
    assert!(
        r.problems().iter().all(|p| p.severity == Severity::Warning),
        "{:?}",
        r.problems()
    );
}

#[test]
fn path_traversal() {
    let mut e = base();
    e.push(RawEntry::stored("files/../../x", b"evil"));
    refused(e, "escapes its folder");
}

#[test]
fn absolute_path() {
    let mut e = base();
    e.push(RawEntry::stored("/etc/cron.d/x", b"evil"));
    refused(e, "absolute path");
}

#[test]
fn backslash_and_drive_letters() {
    let mut e = base();
    e.push(RawEntry::stored("files\\..\\x", b"evil"));
    refused(e, "backslash");
    let mut e = base();
    e.push(RawEntry::stored("C:/x", b"evil"));
    refused(e, "drive letter");
}

#[test]
fn symlink() {
    let mut e = base();
    let mut link = RawEntry::stored("files/abc/statement.csv", b"/etc/passwd");
    link.unix_mode = Some(0o120777);
    e.push(link);
    refused(e, "symbolic link");
}

#[test]
fn duplicate_names() {
    let mut e = base();
    e.push(RawEntry::deflated("data/accounts.json", b"[]"));
    refused(e, "same name");
}

#[test]
fn encrypted_entry() {
    let mut e = base();
    let mut enc = RawEntry::stored("files/abc/a.csv", b"xxxx");
    enc.flags |= 1;
    e.push(enc);
    refused(e, "encrypted");
}

#[test]
fn unsupported_method() {
    let mut e = base();
    let mut b = RawEntry::stored("files/abc/a.csv", b"BZh9");
    b.method = 12;
    e.push(b);
    refused(e, "compression method");
}

#[test]
fn zip_bomb_ratio() {
    let mut e = base();
    e.push(RawEntry::deflated(
        "files/abc/bomb.csv",
        &vec![0u8; 64 << 20],
    ));
    refused(e, "zip bomb");
}

#[test]
fn lying_declared_size_is_caught_while_reading() {
    let mut e = base();
    let mut liar = RawEntry::deflated("files/abc/a.csv", &vec![b'a'; 10_000]);
    liar.declared_size = Some(100);
    e.push(liar);
    let mut r = open(raw_zip(&e)).unwrap();
    let err = r
        .open_entry("files/abc/a.csv")
        .and_then(|x| x.finish())
        .unwrap_err();
    assert!(err.to_string().contains("files/abc/a.csv"), "{err}");
}

#[test]
fn limits_on_size_and_count() {
    let mut e = base();
    e.push(RawEntry::stored("files/abc/a.csv", &vec![1u8; 5000]));
    let bytes = raw_zip(&e);
    let limits = Limits {
        max_entry_size: 4000,
        ..Limits::default()
    };
    let err = PackageReader::open(Cursor::new(bytes.clone()), limits)
        .err()
        .unwrap();
    assert!(err.to_string().contains("limit for one entry"), "{err}");
    let limits = Limits {
        max_total_size: 4000,
        ..Limits::default()
    };
    let err = PackageReader::open(Cursor::new(bytes.clone()), limits)
        .err()
        .unwrap();
    assert!(err.to_string().contains("add up to more than"), "{err}");
    let limits = Limits {
        max_entries: 3,
        ..Limits::default()
    };
    let err = PackageReader::open(Cursor::new(bytes), limits)
        .err()
        .unwrap();
    assert!(err.to_string().contains("entries; the limit is 3"), "{err}");
}

#[test]
fn gzip_bomb_inside_an_entry() {
    use std::io::Write;
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    gz.write_all(b"[").unwrap();
    gz.write_all(&vec![b' '; 300 << 20]).unwrap();
    gz.write_all(b"]").unwrap();
    let gz = gz.finish().unwrap();
    let mut e: Vec<RawEntry> = base()
        .into_iter()
        .filter(|x| x.name != b"data/transactions.json")
        .collect();
    e.push(RawEntry::stored("data/transactions.json.gz", &gz));
    let mut r = open(raw_zip(&e)).unwrap();
    let err = r
        .read_entities::<fzip_model::Transaction, ()>(|_| Ok(()))
        .err()
        .unwrap();
    let text = match err {
        fzip_format::ReadError::Package(p) => p.to_string(),
        fzip_format::ReadError::Callback(()) => String::new(),
    };
    assert!(
        text.contains("zip bomb") && text.contains("data/transactions.json.gz"),
        "{text}"
    );
}

#[test]
fn missing_or_bad_manifest() {
    let e: Vec<RawEntry> = base().into_iter().skip(1).collect();
    assert!(matches!(open(raw_zip(&e)), Err(PackageError::NoManifest)));
    let mut e = base();
    e[0] = RawEntry::deflated("manifest.json", b"{not json");
    refused(e, "not valid JSON");
    let mut e = base();
    e[0] = RawEntry::deflated("manifest.json", br#"{"backupFormatVersion":"9.0"}"#);
    refused(e, "1.x");
}

#[test]
fn not_a_zip() {
    assert!(matches!(
        open(b"PK\x03\x04 not really".to_vec()),
        Err(PackageError::NotZip(_))
    ));
    assert!(matches!(open(Vec::new()), Err(PackageError::NotZip(_))));
}

#[test]
fn truncated_archive() {
    let bytes = raw_zip(&base());
    assert!(open(bytes[..bytes.len() - 30].to_vec()).is_err());
}

#[test]
fn local_header_that_disagrees_with_the_central_directory() {
    let mut bytes = raw_zip(&base());
    // Rename the first local header's file name: "manifest.json" -> "manifesT.json".
    let at = 30 + "manifes".len();
    bytes[at] = b'T';
    let err = open(bytes).err().unwrap();
    assert!(err.to_string().contains("disagree"), "{err}");
}
