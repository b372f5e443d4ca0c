//! HouseF3's own packages (shared/fixtures/housef3) read completely and exactly.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::fs::File;
use std::path::PathBuf;

use fzip_format::{Dialect, Limits, PackageReader, Severity, format_checksum};
use fzip_model::{
    Account, Category, Entity, FileMap, Transaction, TransactionFile, transaction_hash,
};

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../../shared/fixtures/housef3")
        .join(name)
}

fn read_all<T: Entity>(r: &mut PackageReader<File>) -> Vec<T> {
    let mut out = Vec::new();
    r.read_entities::<T, ()>(|item| {
        out.push(item.unwrap_or_else(|e| panic!("{}: {e}", T::KIND)));
        Ok(())
    })
    .unwrap_or_else(|e| {
        panic!(
            "{:?}",
            match e {
                fzip_format::ReadError::Package(p) => p.to_string(),
                _ => "callback".into(),
            }
        )
    });
    out
}

fn check(name: &str) {
    let dir = fixture(name);
    if !dir.exists() {
        eprintln!("fixture {name} not found at {}; skipped", dir.display());
        return;
    }
    let expected: serde_json::Value =
        serde_json::from_reader(File::open(dir.join("expected.json")).unwrap()).unwrap();
    let mut r = PackageReader::open(
        File::open(dir.join("backup.fzip")).unwrap(),
        Limits::default(),
    )
    .unwrap();
    assert_eq!(r.dialect(), Dialect::Housef3);
    assert!(
        r.problems().iter().all(|p| p.severity == Severity::Warning),
        "{:?}",
        r.problems()
    );
    let accounts: Vec<Account> = read_all(&mut r);
    let transactions: Vec<Transaction> = read_all(&mut r);
    let categories: Vec<Category> = read_all(&mut r);
    let file_maps: Vec<FileMap> = read_all(&mut r);
    let files: Vec<TransactionFile> = read_all(&mut r);
    let counts = &expected["counts"];
    assert_eq!(accounts.len() as u64, counts["accounts"].as_u64().unwrap());
    assert_eq!(
        transactions.len() as u64,
        counts["transactions"].as_u64().unwrap()
    );
    assert_eq!(
        categories.len() as u64,
        counts["categories"].as_u64().unwrap()
    );
    assert_eq!(file_maps.len() as u64, counts["fileMaps"].as_u64().unwrap());
    assert_eq!(
        files.len() as u64,
        counts["transactionFiles"].as_u64().unwrap()
    );
    let rules: usize = categories.iter().map(|c| c.rules.len()).sum();
    assert_eq!(rules as u64, counts["categoryRules"].as_u64().unwrap());

    // Every schema rule holds on real HouseF3 data.
    for a in &accounts {
        assert!(a.validate().is_empty(), "{:?}", a.validate());
    }
    for t in &transactions {
        assert!(t.validate().is_empty(), "{:?}", t.validate());
    }
    for c in &categories {
        assert!(c.validate().is_empty(), "{:?}", c.validate());
    }
    // HouseF3's transactionHash is reproduced for every transaction with a currency.
    for t in &transactions {
        if t.currency.is_some() {
            assert_eq!(
                Some(transaction_hash(
                    &t.account_id,
                    t.date,
                    &t.amount,
                    &t.description
                )),
                t.transaction_hash,
                "{}",
                t.transaction_id
            );
        }
    }
    // Re-serialising each entity gives back the same JSON value (nothing lost, nothing added).
    let raw: serde_json::Value = {
        let mut entry = r.open_entry("data/transactions.json.gz").unwrap();
        let mut gz = flate2::read::GzDecoder::new(&mut entry);
        let v = serde_json::from_reader(&mut gz).unwrap();
        drop(gz);
        entry.finish().unwrap();
        v
    };
    for (t, original) in transactions.iter().zip(raw.as_array().unwrap()) {
        assert_eq!(&serde_json::to_value(t).unwrap(), original);
    }
    // Statement files: bytes match HouseF3's ground truth.
    for (file_id, info) in expected["files"].as_object().unwrap() {
        let entry = r.file_entry(file_id).unwrap().to_string();
        assert_eq!(entry, info["zipEntryInPackage"].as_str().unwrap());
        let reader = r.open_entry(&entry).unwrap();
        let (size, digest) = reader.finish().unwrap();
        assert_eq!(size, info["bytes"].as_u64().unwrap());
        assert_eq!(
            format_checksum(&digest),
            format!("sha256:{}", info["sha256"].as_str().unwrap())
        );
    }
}

#[test]
fn small_fixture() {
    check("small");
}

#[test]
fn medium_fixture() {
    check("medium");
}
