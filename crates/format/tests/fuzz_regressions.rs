//! Inputs the fuzz targets (`fuzz/`) found to break an invariant, kept as ordinary tests.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use fzip_format::{Manifest, ManifestChecksum, ParsedManifest};

/// `manifest` target: a description (or user id) holding the text of the checksum placeholder
/// (`sha256:` and 64 zeros) got the real checksum written into it instead of into
/// `manifestChecksum`, so fzip wrote a package that it then called damaged.
#[test]
fn a_description_holding_the_checksum_placeholder_keeps_the_manifest_valid() {
    let placeholder = format!("sha256:{}", "0".repeat(64));
    for (user, description) in [
        ("alice", placeholder.clone()),
        (placeholder.as_str(), "monthly".to_string()),
    ] {
        let mut m = Manifest::new(user, "job-1", 1_700_000_000_000);
        m.description = Some(description.clone());
        let bytes = m.to_bytes().unwrap();
        let parsed = ParsedManifest::parse(&bytes).unwrap();
        assert_eq!(parsed.manifest_checksum, ManifestChecksum::Valid);
        assert_eq!(parsed.user_id.as_deref(), Some(user));
        assert_eq!(
            parsed.get("description").and_then(|v| v.as_str()),
            Some(description.as_str())
        );
    }
}
