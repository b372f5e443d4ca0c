//! Opening a package: ZIP structure, the three dialects, safe names, the manifest against the
//! entries, and the limits (with the defaults and with tight ones).
#![no_main]

use std::io::Cursor;

use fzip_format::{Limits, PackageReader};
use libfuzzer_sys::fuzz_target;

/// Limits small enough for the fuzzer's inputs to reach every limit check.
fn tight() -> Limits {
    Limits {
        max_entries: 12,
        max_entry_size: 8 << 10,
        max_total_size: 32 << 10,
        max_ratio: 20,
        ratio_floor: 512,
        max_manifest_size: 4 << 10,
        max_entity_size: 1 << 10,
    }
}

fuzz_target!(|data: &[u8]| {
    let default = PackageReader::open(Cursor::new(data), Limits::default());
    let tight = PackageReader::open(Cursor::new(data), tight());
    if let Ok(reader) = &default {
        // Everything the reader reports must be consistent with itself.
        for entry in reader.entries() {
            assert!(reader.entry_info(&entry.name).is_some(), "{}", entry.name);
        }
        for name in reader.file_entries().values() {
            assert!(reader.entry_info(name).is_some(), "{name}");
        }
        let _ = reader.problems().iter().map(ToString::to_string).count();
    }
    // Tighter limits only ever refuse more.
    if tight.is_ok() {
        assert!(
            default.is_ok(),
            "opens under tight limits but not the defaults: {:?}",
            default.err()
        );
    }
});
