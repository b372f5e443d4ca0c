//! Comparing the profiles two packages hold.
//!
//! Entities are compared by id with all their fields (decimals by value and scale); statement
//! files by content hash. Package metadata (timestamps, job ids), the owner `userId`, the storage
//! location `s3Key`, and (unless strict) the keys HouseF3's exporter derives at export time are
//! ignored.
//!
//! Each entity is reduced to a 128-bit digest of its canonical JSON; two sorted digest lists are
//! compared, so memory is 16 bytes per entity. Only when they differ are the packages read again
//! to name the differing entities.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fs::File;
use std::path::Path;

use fzip_format::{Limits, PackageReader, ReadError, format_checksum};
use fzip_model::{
    Account, AnalyticsRecord, Category, Entity, FileMap, Transaction, TransactionFile,
};
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::error::EngineError;
use crate::progress::Progress;
use crate::restore::open_package;

/// How closely to compare.
#[derive(Clone, Copy, Debug, Default)]
pub struct DiffOptions {
    /// Also compare the keys HouseF3's exporter derives (`exportMetadata`, `computedFields`, …).
    pub strict: bool,
}

/// One differing field.
#[derive(Clone, Debug, Serialize)]
pub struct FieldDifference {
    pub field: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub a: Option<serde_json::Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub b: Option<serde_json::Value>,
}

/// One differing entity.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct EntityDifference {
    pub id: String,
    /// `changed`, `only_in_a` or `only_in_b`.
    pub change: &'static str,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub fields: Vec<FieldDifference>,
}

/// The comparison of one collection.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CollectionDiff {
    pub collection: &'static str,
    pub count_a: u64,
    pub count_b: u64,
    pub changed: u64,
    pub only_in_a: u64,
    pub only_in_b: u64,
    /// The first differences, for reading.
    pub examples: Vec<EntityDifference>,
}

/// A statement file that differs.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct FileDifference {
    pub file_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sha256_a: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sha256_b: Option<String>,
}

/// The result of comparing two packages.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DiffReport {
    pub equal: bool,
    pub collections: Vec<CollectionDiff>,
    pub files_a: u64,
    pub files_b: u64,
    pub file_differences: Vec<FileDifference>,
}

const EXAMPLES: usize = 20;

type Digest128 = [u8; 16];

fn digest_of<T: Entity>(entity: &T, strict: bool) -> Digest128 {
    let text = entity.canonical_json(strict);
    let full = Sha256::digest(text.as_bytes());
    let mut d = [0u8; 16];
    d.copy_from_slice(&full[..16]);
    d
}

fn read_err(path: &Path, e: ReadError<EngineError>) -> EngineError {
    match e {
        ReadError::Callback(e) => e,
        ReadError::Package(p) => EngineError::Other(format!("{}: {p}", path.display())),
    }
}

/// All digests of one collection, sorted.
fn digests<T: Entity>(
    reader: &mut PackageReader<File>,
    path: &Path,
    strict: bool,
    progress: &dyn Progress,
) -> Result<Vec<Digest128>, EngineError> {
    let mut out = Vec::new();
    reader
        .read_entities::<T, EngineError>(|item| {
            let entity = item
                .map_err(|e| EngineError::Other(format!("{}: {}: {e}", path.display(), T::KIND)))?;
            out.push(digest_of(&entity, strict));
            if out.len() % 8192 == 0 {
                progress.advance(8192);
                if progress.is_cancelled() {
                    return Err(EngineError::Cancelled);
                }
            }
            Ok(())
        })
        .map_err(|e| read_err(path, e))?;
    out.sort_unstable();
    Ok(out)
}

/// Digests in `a` and not in `b` (as multisets).
fn minus(a: &[Digest128], b: &[Digest128]) -> HashSet<Digest128> {
    let (mut i, mut j) = (0, 0);
    let mut out = HashSet::new();
    while i < a.len() {
        if j >= b.len() || a[i] < b[j] {
            out.insert(a[i]);
            i += 1;
        } else if a[i] > b[j] {
            j += 1;
        } else {
            i += 1;
            j += 1;
        }
    }
    out
}

/// The canonical JSON (as a value) of entities whose digest is in `wanted`, by id.
fn collect<T: Entity>(
    reader: &mut PackageReader<File>,
    path: &Path,
    strict: bool,
    wanted: &HashSet<Digest128>,
) -> Result<BTreeMap<String, serde_json::Value>, EngineError> {
    let mut out = BTreeMap::new();
    reader
        .read_entities::<T, EngineError>(|item| {
            if let Ok(entity) = item
                && wanted.contains(&digest_of(&entity, strict))
            {
                let value = serde_json::from_str(&entity.canonical_json(strict))
                    .unwrap_or(serde_json::Value::Null);
                out.insert(entity.id().into_owned(), value);
            }
            Ok(())
        })
        .map_err(|e| read_err(path, e))?;
    Ok(out)
}

fn field_differences(a: &serde_json::Value, b: &serde_json::Value) -> Vec<FieldDifference> {
    let empty = serde_json::Map::new();
    let ma = a.as_object().unwrap_or(&empty);
    let mb = b.as_object().unwrap_or(&empty);
    let keys: std::collections::BTreeSet<&String> = ma.keys().chain(mb.keys()).collect();
    keys.into_iter()
        .filter(|k| ma.get(*k) != mb.get(*k))
        .map(|k| FieldDifference {
            field: k.clone(),
            a: ma.get(k).cloned(),
            b: mb.get(k).cloned(),
        })
        .collect()
}

fn compare<T: Entity>(
    ra: &mut PackageReader<File>,
    rb: &mut PackageReader<File>,
    pa: &Path,
    pb: &Path,
    options: DiffOptions,
    progress: &dyn Progress,
) -> Result<CollectionDiff, EngineError> {
    progress.phase(&format!("comparing_{}", T::KIND.stem()), 0);
    let da = digests::<T>(ra, pa, options.strict, progress)?;
    let db = digests::<T>(rb, pb, options.strict, progress)?;
    let mut diff = CollectionDiff {
        collection: T::KIND.stem(),
        count_a: da.len() as u64,
        count_b: db.len() as u64,
        changed: 0,
        only_in_a: 0,
        only_in_b: 0,
        examples: Vec::new(),
    };
    if da == db {
        return Ok(diff);
    }
    let wa = minus(&da, &db);
    let wb = minus(&db, &da);
    let ea = collect::<T>(ra, pa, options.strict, &wa)?;
    let eb = collect::<T>(rb, pb, options.strict, &wb)?;
    for (id, va) in &ea {
        match eb.get(id) {
            Some(vb) => {
                diff.changed += 1;
                if diff.examples.len() < EXAMPLES {
                    diff.examples.push(EntityDifference {
                        id: id.clone(),
                        change: "changed",
                        fields: field_differences(va, vb),
                    });
                }
            }
            None => {
                diff.only_in_a += 1;
                if diff.examples.len() < EXAMPLES {
                    diff.examples.push(EntityDifference {
                        id: id.clone(),
                        change: "only_in_a",
                        fields: Vec::new(),
                    });
                }
            }
        }
    }
    for id in eb.keys().filter(|id| !ea.contains_key(*id)) {
        diff.only_in_b += 1;
        if diff.examples.len() < EXAMPLES {
            diff.examples.push(EntityDifference {
                id: id.clone(),
                change: "only_in_b",
                fields: Vec::new(),
            });
        }
    }
    // Entities that repeat within one package show up only in the counts.
    if diff.changed + diff.only_in_a + diff.only_in_b == 0 {
        diff.changed = wa.len().max(wb.len()) as u64;
    }
    Ok(diff)
}

/// SHA-256 of every statement file, by fileId.
fn file_hashes(
    reader: &mut PackageReader<File>,
    path: &Path,
) -> Result<HashMap<String, String>, EngineError> {
    let entries: Vec<(String, String)> = reader
        .file_entries()
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let mut out = HashMap::new();
    for (file_id, entry) in entries {
        let (_, digest) = reader
            .open_entry(&entry)
            .and_then(|r| r.finish())
            .map_err(|e| EngineError::Other(format!("{}: {e}", path.display())))?;
        out.insert(file_id, format_checksum(&digest));
    }
    Ok(out)
}

/// Compares the profiles held by the packages at `a` and `b`.
pub fn diff(
    a: &Path,
    b: &Path,
    limits: Limits,
    options: DiffOptions,
    progress: &dyn Progress,
) -> Result<DiffReport, EngineError> {
    let mut ra = open_package(a, limits)?;
    let mut rb = open_package(b, limits)?;
    let collections = vec![
        compare::<Account>(&mut ra, &mut rb, a, b, options, progress)?,
        compare::<Category>(&mut ra, &mut rb, a, b, options, progress)?,
        compare::<FileMap>(&mut ra, &mut rb, a, b, options, progress)?,
        compare::<TransactionFile>(&mut ra, &mut rb, a, b, options, progress)?,
        compare::<Transaction>(&mut ra, &mut rb, a, b, options, progress)?,
        compare::<AnalyticsRecord>(&mut ra, &mut rb, a, b, options, progress)?,
    ];
    progress.phase("comparing_files", 0);
    let fa = file_hashes(&mut ra, a)?;
    let fb = file_hashes(&mut rb, b)?;
    let mut ids: Vec<&String> = fa.keys().chain(fb.keys()).collect();
    ids.sort();
    ids.dedup();
    let file_differences: Vec<FileDifference> = ids
        .into_iter()
        .filter(|id| fa.get(*id) != fb.get(*id))
        .map(|id| FileDifference {
            file_id: id.clone(),
            sha256_a: fa.get(id).cloned(),
            sha256_b: fb.get(id).cloned(),
        })
        .collect();
    let equal = file_differences.is_empty()
        && collections
            .iter()
            .all(|c| c.count_a == c.count_b && c.changed + c.only_in_a + c.only_in_b == 0);
    Ok(DiffReport {
        equal,
        collections,
        files_a: fa.len() as u64,
        files_b: fb.len() as u64,
        file_differences,
    })
}
