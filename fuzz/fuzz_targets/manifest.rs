//! The manifest parser on arbitrary bytes, and fzip's own manifests with arbitrary text in
//! them: what fzip writes must read back with a valid self-checksum.
#![no_main]

use fzip_format::{Dialect, Manifest, ManifestChecksum, ParsedManifest};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(parsed) = ParsedManifest::parse(data) {
        let _ = parsed.get("dataSummary");
        let _ = parsed.dialect.as_str();
    }
    // Up to three texts (user, job, description) separated by NUL.
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let mut parts = text.splitn(3, '\0');
    let user = parts.next().unwrap_or("");
    let job = parts.next().unwrap_or("job");
    let description = parts.next();
    let mut manifest = Manifest::new(user, job, 1_700_000_000_000);
    manifest.description = description.map(str::to_string);
    let bytes = manifest.to_bytes().expect("a manifest serialises");
    let parsed = ParsedManifest::parse(&bytes)
        .unwrap_or_else(|e| panic!("fzip's own manifest does not parse: {e}"));
    assert_eq!(parsed.dialect, Dialect::Fzip);
    assert_eq!(parsed.manifest_checksum, ManifestChecksum::Valid);
    assert_eq!(parsed.user_id.as_deref(), Some(user));
    assert_eq!(parsed.job_id.as_deref(), Some(job));
});
