//! `manifest.json`: what fzip writes, and how the three dialects are read.
//!
//! fzip writes HouseF3's keys in HouseF3's order (so HouseF3 can restore fzip packages) and adds
//! what HouseF3 only promised: a `sha256:` checksum for every entry, `processingSummary`, and
//! `manifestChecksum`, a hash of the manifest itself. The manifest is written last and is the
//! commit record of the package.

use std::collections::BTreeMap;

use fzip_model::{EntityCounts, EntityKind};
use serde::Serialize;
use serde_json::{Map, Value};

use crate::checksum::{Sha256Digest, format_checksum, parse_checksum, sha256};

/// The package format version fzip writes in `backupFormatVersion`.
pub const FORMAT_VERSION: &str = "1.0";
/// The HouseF3 data-model version fzip's entities correspond to.
pub const HOUSEF3_VERSION: &str = "2.5.0";
/// fzip's own manifest extension version (`fzip.formatVersion`).
pub const FZIP_FORMAT_VERSION: &str = "1";
/// The key holding the manifest's own checksum.
pub const MANIFEST_CHECKSUM_KEY: &str = "manifestChecksum";

/// How a package was written.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Dialect {
    /// Written by fzip: plain JSON data, a checksum for every entry, a manifest checksum.
    Fzip,
    /// Written by HouseF3's backup code: gzip data files, empty `checksums`.
    Housef3,
    /// As the design documents describe: snake_case manifest keys, `{"accounts": [...]}` wrappers.
    DesignDoc,
}

impl Dialect {
    pub fn as_str(self) -> &'static str {
        match self {
            Dialect::Fzip => "fzip",
            Dialect::Housef3 => "housef3",
            Dialect::DesignDoc => "design-doc",
        }
    }
}

/// Counts as HouseF3 writes them in `dataSummary`, plus fzip's additions.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DataSummary {
    pub accounts_count: u64,
    pub transactions_count: u64,
    pub categories_count: u64,
    pub file_maps_count: u64,
    pub transaction_files_count: u64,
    pub analytics_included: bool,
    pub analytics_count: u64,
    /// Statement files whose bytes are in the package (`files/...`).
    pub files_count: u64,
    /// Total bytes of those statement files.
    pub file_bytes: u64,
}

impl DataSummary {
    pub fn from_counts(counts: &EntityCounts, files_count: u64, file_bytes: u64) -> Self {
        DataSummary {
            accounts_count: counts.accounts,
            transactions_count: counts.transactions,
            categories_count: counts.categories,
            file_maps_count: counts.file_maps,
            transaction_files_count: counts.transaction_files,
            analytics_included: counts.analytics > 0,
            analytics_count: counts.analytics,
            files_count,
            file_bytes,
        }
    }
}

/// HouseF3's `compatibility` block.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Compatibility {
    pub minimum_version: String,
    pub supported_versions: Vec<String>,
}

impl Default for Compatibility {
    fn default() -> Self {
        Compatibility {
            minimum_version: "2.0.0".into(),
            supported_versions: vec!["2.0.0".into(), HOUSEF3_VERSION.into()],
        }
    }
}

/// What fzip adds to identify itself.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct FzipInfo {
    pub format_version: String,
    pub generator: String,
}

impl Default for FzipInfo {
    fn default() -> Self {
        FzipInfo {
            format_version: FZIP_FORMAT_VERSION.into(),
            generator: format!("fzip {}", env!("CARGO_PKG_VERSION")),
        }
    }
}

/// The manifest fzip writes. Keys and their order follow HouseF3's `FZIPManifest`; fzip's
/// additions come after.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Manifest {
    pub backup_format_version: String,
    /// ISO-8601 with microseconds and `+00:00`, as HouseF3 writes it.
    pub backup_timestamp: String,
    pub user_id: String,
    pub housef3_version: String,
    pub package_format: String,
    pub data_summary: DataSummary,
    /// `"sha256:<hex>"` of every entry's content, keyed by entry name. Filled by the writer.
    pub checksums: BTreeMap<String, String>,
    pub compatibility: Compatibility,
    pub job_id: String,
    pub backup_type: String,
    pub include_analytics: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Processing figures, snake_case as HouseF3 computes them.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub processing_summary: Option<Value>,
    /// The backup quality assessment (later design's validation block).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub validation: Option<Value>,
    /// For partial packages: what was selected and which references point outside the package.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub selection: Option<Value>,
    pub fzip: FzipInfo,
    /// Filled by the writer.
    pub manifest_checksum: String,
}

impl Manifest {
    /// A manifest for a complete backup of `user_id` taken at `timestamp_ms`.
    pub fn new(user_id: &str, job_id: &str, timestamp_ms: i64) -> Self {
        Manifest {
            backup_format_version: FORMAT_VERSION.into(),
            backup_timestamp: iso_timestamp(timestamp_ms),
            user_id: user_id.into(),
            housef3_version: HOUSEF3_VERSION.into(),
            package_format: "fzip".into(),
            data_summary: DataSummary::default(),
            checksums: BTreeMap::new(),
            compatibility: Compatibility::default(),
            job_id: job_id.into(),
            backup_type: "complete".into(),
            include_analytics: false,
            description: None,
            processing_summary: None,
            validation: None,
            selection: None,
            fzip: FzipInfo::default(),
            manifest_checksum: String::new(),
        }
    }

    /// The manifest's bytes with `manifestChecksum` filled in.
    pub fn to_bytes(&mut self) -> Result<Vec<u8>, serde_json::Error> {
        self.manifest_checksum = placeholder();
        let mut bytes = serde_json::to_vec_pretty(self)?;
        let digest = sha256(&bytes);
        let real = format_checksum(&digest);
        let ph = placeholder();
        // The key and its quotes, which no string value can hold unescaped: a description
        // holding the placeholder's text must not receive the checksum.
        let field = format!("\"{MANIFEST_CHECKSUM_KEY}\": \"{ph}\"");
        if let Some(at) = find(&bytes, field.as_bytes()) {
            let at = at + field.len() - 1 - ph.len();
            bytes[at..at + ph.len()].copy_from_slice(real.as_bytes());
        }
        self.manifest_checksum = real;
        Ok(bytes)
    }
}

/// ISO-8601 UTC with microseconds and `+00:00`, like Python's `datetime.isoformat()`.
pub fn iso_timestamp(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .unwrap_or_default()
        .format("%Y-%m-%dT%H:%M:%S%.6f+00:00")
        .to_string()
}

fn placeholder() -> String {
    format!("sha256:{}", "0".repeat(64))
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// What checking `manifestChecksum` found.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ManifestChecksum {
    /// The manifest has none (HouseF3 and design-document packages).
    Absent,
    Valid,
    Mismatch {
        expected: String,
        actual: String,
    },
    Malformed(String),
}

/// A manifest of any dialect, normalised.
#[derive(Clone, Debug)]
pub struct ParsedManifest {
    pub dialect: Dialect,
    /// `backup` or `export` (from `backupFormatVersion` / `export_format_version`).
    pub package_kind: &'static str,
    pub format_version: String,
    pub timestamp: Option<String>,
    pub user_id: Option<String>,
    pub app_version: Option<String>,
    pub package_format: Option<String>,
    pub job_id: Option<String>,
    pub backup_type: Option<String>,
    pub include_analytics: Option<bool>,
    pub analytics_included: Option<bool>,
    /// Declared entity counts (`dataSummary`), where given.
    pub declared_counts: BTreeMap<EntityKind, u64>,
    /// Checksums by entry name (`accounts.json` keys are read as `data/accounts.json`).
    pub checksums: BTreeMap<String, Sha256Digest>,
    pub manifest_checksum: ManifestChecksum,
    /// Problems in the manifest that do not stop reading it.
    pub warnings: Vec<String>,
    /// The manifest as written.
    pub raw: Map<String, Value>,
}

impl ParsedManifest {
    /// Parses `manifest.json` bytes of any dialect.
    pub fn parse(bytes: &[u8]) -> Result<Self, String> {
        let value: Value = serde_json::from_slice(bytes)
            .map_err(|e| format!("manifest.json is not valid JSON: {e}"))?;
        let Value::Object(raw) = value else {
            return Err("manifest.json is not a JSON object".into());
        };
        let str_of = |keys: &[&str]| -> Option<String> {
            keys.iter()
                .find_map(|k| raw.get(*k))
                .and_then(|v| v.as_str().map(str::to_string))
        };
        let (format_version, package_kind, snake) = if let Some(v) =
            str_of(&["backupFormatVersion"])
        {
            (v, "backup", false)
        } else if let Some(v) = str_of(&["exportFormatVersion"]) {
            (v, "export", false)
        } else if let Some(v) = str_of(&["backup_format_version"]) {
            (v, "backup", true)
        } else if let Some(v) = str_of(&["export_format_version"]) {
            (v, "export", true)
        } else {
            return Err("manifest.json has no format version (backupFormatVersion, or backup_format_version / export_format_version in the design documents' form)".into());
        };
        if format_version.split('.').next() != Some("1") {
            return Err(format!(
                "manifest.json says format version {format_version:?}; this fzip reads version 1.x packages"
            ));
        }
        let is_fzip = raw.get("fzip").is_some_and(Value::is_object);
        let dialect = if is_fzip {
            Dialect::Fzip
        } else if snake {
            Dialect::DesignDoc
        } else {
            Dialect::Housef3
        };
        if let Some(fz) = raw
            .get("fzip")
            .and_then(|v| v.get("formatVersion"))
            .and_then(Value::as_str)
            && fz.split('.').next() != Some(FZIP_FORMAT_VERSION)
        {
            return Err(format!(
                "manifest.json was written by a newer fzip (fzip.formatVersion {fz:?}); upgrade fzip to read it"
            ));
        }

        let mut warnings = Vec::new();
        let timestamp = str_of(&[
            "backupTimestamp",
            "exportTimestamp",
            "backup_timestamp",
            "export_timestamp",
        ]);
        let user_id = str_of(&["userId", "user_id"]);
        let app_version = str_of(&["housef3Version", "housef3_version"]);
        for (name, present) in [
            ("timestamp", timestamp.is_some()),
            ("userId", user_id.is_some()),
            ("housef3Version", app_version.is_some()),
        ] {
            if !present {
                warnings.push(format!("manifest.json has no {name}"));
            }
        }

        let summary = raw
            .get("dataSummary")
            .or_else(|| raw.get("data_summary"))
            .and_then(Value::as_object);
        let mut declared_counts = BTreeMap::new();
        let mut analytics_included = None;
        if let Some(summary) = summary {
            for kind in EntityKind::ALL {
                let v = summary
                    .get(kind.count_key())
                    .or_else(|| summary.get(kind.snake_count_key()));
                if let Some(v) = v {
                    match v.as_u64() {
                        Some(n) => {
                            declared_counts.insert(kind, n);
                        }
                        None => warnings.push(format!(
                            "dataSummary.{} is not a whole number: {v}",
                            kind.count_key()
                        )),
                    }
                }
            }
            analytics_included = summary
                .get("analyticsIncluded")
                .or_else(|| summary.get("analytics_included"))
                .and_then(Value::as_bool);
        } else {
            warnings.push("manifest.json has no dataSummary; counts cannot be compared".into());
        }

        let mut checksums = BTreeMap::new();
        match raw.get("checksums") {
            None => {}
            Some(Value::Object(map)) => {
                for (name, v) in map {
                    let Some(text) = v.as_str() else {
                        return Err(format!("checksums[{name:?}] is not a string"));
                    };
                    let digest =
                        parse_checksum(text).map_err(|e| format!("checksums[{name:?}]: {e}"))?;
                    let name = if !name.contains('/') && name.ends_with(".json") {
                        format!("data/{name}")
                    } else {
                        name.clone()
                    };
                    checksums.insert(name, digest);
                }
            }
            Some(_) => return Err("manifest.json: checksums is not an object".into()),
        }

        let manifest_checksum = check_manifest_checksum(bytes, &raw);
        let get_str = |k: &[&str]| str_of(k);
        Ok(ParsedManifest {
            dialect,
            package_kind,
            format_version,
            timestamp,
            user_id,
            app_version,
            package_format: get_str(&["packageFormat", "package_format"]),
            job_id: get_str(&["jobId", "job_id"]),
            backup_type: get_str(&["backupType", "backup_type", "exportType", "export_type"]),
            include_analytics: raw
                .get("includeAnalytics")
                .or_else(|| raw.get("include_analytics"))
                .and_then(Value::as_bool),
            analytics_included,
            declared_counts,
            checksums,
            manifest_checksum,
            warnings,
            raw,
        })
    }

    /// A top-level manifest value.
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.raw.get(key)
    }
}

fn check_manifest_checksum(bytes: &[u8], raw: &Map<String, Value>) -> ManifestChecksum {
    let Some(value) = raw.get(MANIFEST_CHECKSUM_KEY) else {
        return ManifestChecksum::Absent;
    };
    let Some(claimed) = value.as_str() else {
        return ManifestChecksum::Malformed("manifestChecksum is not a string".into());
    };
    if let Err(e) = parse_checksum(claimed) {
        return ManifestChecksum::Malformed(e);
    }
    let pattern = format!("\"{MANIFEST_CHECKSUM_KEY}\": \"{claimed}\"");
    let Some(at) = find(bytes, pattern.as_bytes()) else {
        return ManifestChecksum::Malformed(
            "manifestChecksum is not written as fzip writes it (the manifest was re-formatted)"
                .into(),
        );
    };
    let mut copy = bytes.to_vec();
    let hex_at = at + pattern.len() - 1 - 64;
    copy[hex_at..hex_at + 64].copy_from_slice("0".repeat(64).as_bytes());
    let actual = format_checksum(&sha256(&copy));
    if actual == claimed {
        ManifestChecksum::Valid
    } else {
        ManifestChecksum::Mismatch {
            expected: claimed.to_string(),
            actual,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fzip_manifest_round_trip_and_self_checksum() {
        let mut m = Manifest::new("alice", "job-1", 1_700_000_000_123);
        m.checksums
            .insert("data/accounts.json".into(), format_checksum(&sha256(b"[]")));
        m.data_summary.accounts_count = 3;
        let bytes = m.to_bytes().unwrap();
        let p = ParsedManifest::parse(&bytes).unwrap();
        assert_eq!(p.dialect, Dialect::Fzip);
        assert_eq!(p.manifest_checksum, ManifestChecksum::Valid);
        assert_eq!(p.declared_counts.get(&EntityKind::Accounts), Some(&3));
        assert_eq!(p.user_id.as_deref(), Some("alice"));
        assert_eq!(
            p.timestamp.as_deref(),
            Some("2023-11-14T22:13:20.123000+00:00")
        );

        // Any change to the manifest is detected.
        let text = String::from_utf8(bytes)
            .unwrap()
            .replace("\"accountsCount\": 3", "\"accountsCount\": 4");
        let p = ParsedManifest::parse(text.as_bytes()).unwrap();
        assert!(matches!(
            p.manifest_checksum,
            ManifestChecksum::Mismatch { .. }
        ));
    }

    #[test]
    fn housef3_manifest() {
        let text = r#"{"backupFormatVersion":"1.0","backupTimestamp":"2026-11-21T10:55:44.954109+00:00","userId":"u","housef3Version":"2.5.0","packageFormat":"fzip","dataSummary":{"accountsCount":3,"transactionsCount":200,"categoriesCount":22,"fileMapsCount":2,"transactionFilesCount":2,"analyticsIncluded":false},"checksums":{},"compatibility":{"minimumVersion":"2.0.0","supportedVersions":["2.0.0","2.5.0"]},"jobId":"j","backupType":"complete","includeAnalytics":false}"#;
        let p = ParsedManifest::parse(text.as_bytes()).unwrap();
        assert_eq!(p.dialect, Dialect::Housef3);
        assert_eq!(p.manifest_checksum, ManifestChecksum::Absent);
        assert_eq!(p.declared_counts.get(&EntityKind::Transactions), Some(&200));
        assert!(p.checksums.is_empty());
    }

    #[test]
    fn design_doc_manifest() {
        let text = r#"{"export_format_version":"1.0","export_timestamp":"2024-01-15T10:30:00Z","user_id":"user_12345","housef3_version":"2.5.0","package_format":"fzip","data_summary":{"accounts_count":5,"transactions_count":2847},"checksums":{"accounts.json":"sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"}}"#;
        let p = ParsedManifest::parse(text.as_bytes()).unwrap();
        assert_eq!(p.dialect, Dialect::DesignDoc);
        assert_eq!(p.package_kind, "export");
        assert_eq!(p.declared_counts.get(&EntityKind::Accounts), Some(&5));
        assert!(p.checksums.contains_key("data/accounts.json"));
    }

    #[test]
    fn refuses_unknown_versions_and_bad_checksums() {
        assert!(ParsedManifest::parse(br#"{"backupFormatVersion":"2.0"}"#).is_err());
        assert!(ParsedManifest::parse(br#"{"userId":"x"}"#).is_err());
        assert!(ParsedManifest::parse(br#"[1]"#).is_err());
        assert!(
            ParsedManifest::parse(br#"{"backupFormatVersion":"1.0","checksums":{"a":"md5:1"}}"#)
                .is_err()
        );
    }
}
