//! Reading a whole package as verify, restore and import do: open it, stream every entity of
//! every collection, and read every statement file to its end (sizes, CRC-32 and SHA-256 are
//! checked there). Every entity that parses must survive a JSON round trip unchanged (fzip is
//! lossless).
#![no_main]

use std::io::{self, Cursor};

use fzip_format::{Limits, PackageReader};
use fzip_model::{
    Account, AnalyticsRecord, Category, Entity, FileMap, Transaction, TransactionFile,
};
use libfuzzer_sys::fuzz_target;

fn round_trips<T: Entity + std::fmt::Debug>(item: &T) {
    let text = serde_json::to_string(item).expect("an entity serialises");
    let again: T = serde_json::from_str(&text).unwrap_or_else(|e| {
        panic!("an entity read from a package does not read back: {e}\n{text}")
    });
    assert_eq!(&again, item, "{text}");
    assert_eq!(
        serde_json::to_string(&again).ok().as_deref(),
        Some(text.as_str())
    );
    let _ = item.validate();
    let _ = item.canonical_json(false);
}

fn read_all<T: Entity + std::fmt::Debug>(reader: &mut PackageReader<Cursor<&[u8]>>) {
    let _ = reader.read_entities::<T, ()>(|item| {
        if let Ok(item) = item {
            round_trips(&item);
        }
        Ok(())
    });
}

fn read(data: &[u8], limits: Limits) {
    let Ok(mut reader) = PackageReader::open(Cursor::new(data), limits) else {
        return;
    };
    read_all::<FileMap>(&mut reader);
    read_all::<Account>(&mut reader);
    read_all::<Category>(&mut reader);
    read_all::<TransactionFile>(&mut reader);
    read_all::<Transaction>(&mut reader);
    read_all::<AnalyticsRecord>(&mut reader);
    let files: Vec<String> = reader.file_entries().values().cloned().collect();
    for name in files {
        if let Ok(mut entry) = reader.open_entry(&name) {
            if io::copy(&mut entry, &mut io::sink()).is_ok() {
                let _ = entry.finish();
            }
        }
    }
}

fuzz_target!(|data: &[u8]| {
    read(data, Limits::default());
    read(
        data,
        Limits {
            max_entries: 12,
            max_entry_size: 8 << 10,
            max_total_size: 32 << 10,
            max_ratio: 20,
            ratio_floor: 512,
            max_manifest_size: 4 << 10,
            max_entity_size: 1 << 10,
        },
    );
});
