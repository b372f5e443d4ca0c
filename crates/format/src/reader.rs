//! Reading a package of any dialect, safely.
//!
//! [`PackageReader::open`] checks the whole archive before anything is read from it: entry
//! names, symlinks, duplicates, encryption, compression methods, sizes and ratios against
//! [`Limits`], local/central header agreement, and the manifest. Reading an entry then verifies
//! its ZIP CRC-32, its declared size, and the manifest's SHA-256 for it.

use std::collections::{BTreeMap, HashMap};
use std::io::{self, Read, Seek};

use fzip_model::{Entity, EntityKind};
use serde::Serialize;
use sha2::{Digest, Sha256};
use zip::ZipArchive;
use zip::result::ZipError;

use crate::checksum::{Sha256Digest, format_checksum};
use crate::error::PackageError;
use crate::json_array::{ArrayError, for_each_element};
use crate::limits::Limits;
use crate::manifest::{Dialect, ManifestChecksum, ParsedManifest};
use crate::names::check_entry_name;

/// How serious a finding is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// The package must not be restored.
    Error,
    /// Worth knowing; the package can still be restored.
    Warning,
}

/// What a finding is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum ProblemKind {
    /// The archive, the manifest, checksums, sizes, counts.
    #[default]
    Integrity,
    /// An entity does not fit the schema.
    Schema,
    /// An entity refers to something the package does not hold.
    Reference,
    /// Ids repeat, or category parents form a cycle.
    Consistency,
}

/// A finding about a package.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Problem {
    pub severity: Severity,
    pub kind: ProblemKind,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub entry: Option<String>,
    pub message: String,
}

impl Problem {
    pub fn error(entry: Option<&str>, message: impl Into<String>) -> Self {
        Problem {
            severity: Severity::Error,
            kind: ProblemKind::Integrity,
            entry: entry.map(str::to_string),
            message: message.into(),
        }
    }

    pub fn warning(entry: Option<&str>, message: impl Into<String>) -> Self {
        Problem {
            severity: Severity::Warning,
            kind: ProblemKind::Integrity,
            entry: entry.map(str::to_string),
            message: message.into(),
        }
    }

    /// The same finding, of another kind.
    pub fn of_kind(mut self, kind: ProblemKind) -> Self {
        self.kind = kind;
        self
    }
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let level = match self.severity {
            Severity::Error => "error",
            Severity::Warning => "warning",
        };
        match &self.entry {
            Some(e) => write!(f, "{level}: {e}: {}", self.message),
            None => write!(f, "{level}: {}", self.message),
        }
    }
}

/// One entry of the archive.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct EntryInfo {
    pub name: String,
    pub size: u64,
    pub compressed_size: u64,
    pub method: String,
    pub crc32: u32,
    #[serde(skip)]
    pub is_dir: bool,
}

/// Where an entity collection is stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DataEntry {
    pub name: String,
    /// `data/X.json.gz` (HouseF3): the entry holds a gzip stream.
    pub gzip: bool,
}

/// One entity that could not be read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ElementError {
    /// Position in the array, from 0.
    pub index: u64,
    /// The entity's identifier, when it could be found.
    pub id: Option<String>,
    pub message: String,
}

impl std::fmt::Display for ElementError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.id {
            Some(id) => write!(f, "element {} ({id}): {}", self.index, self.message),
            None => write!(f, "element {}: {}", self.index, self.message),
        }
    }
}

/// Why streaming entities stopped.
#[derive(Debug)]
pub enum ReadError<E> {
    /// The data file itself is damaged or unreadable.
    Package(PackageError),
    /// The callback returned an error.
    Callback(E),
}

impl<E> From<PackageError> for ReadError<E> {
    fn from(e: PackageError) -> Self {
        ReadError::Package(e)
    }
}

/// An open package.
pub struct PackageReader<R: Read + Seek> {
    zip: ZipArchive<R>,
    limits: Limits,
    entries: Vec<EntryInfo>,
    index: HashMap<String, usize>,
    manifest: ParsedManifest,
    manifest_bytes: Vec<u8>,
    data: BTreeMap<EntityKind, DataEntry>,
    files: BTreeMap<String, String>,
    problems: Vec<Problem>,
}

fn method_name(m: zip::CompressionMethod) -> String {
    match m {
        zip::CompressionMethod::Stored => "stored".into(),
        zip::CompressionMethod::Deflated => "deflate".into(),
        zip::CompressionMethod::Lzma => "lzma".into(),
        other => format!("{other:?}").to_lowercase(),
    }
}

fn zip_err(e: ZipError) -> PackageError {
    match e {
        ZipError::InvalidArchive(m) => PackageError::NotZip(m.into_owned()),
        ZipError::UnsupportedArchive(m) => PackageError::Unsafe(m.to_string()),
        ZipError::Io(e) => PackageError::Io(e),
        other => PackageError::NotZip(other.to_string()),
    }
}

impl<R: Read + Seek> PackageReader<R> {
    /// Opens a package and checks its structure. Errors here mean the archive must not be read
    /// at all; softer findings are in [`PackageReader::problems`].
    pub fn open(reader: R, limits: Limits) -> Result<Self, PackageError> {
        let mut zip = ZipArchive::new(reader).map_err(zip_err)?;
        if zip.len() > limits.max_entries {
            return Err(PackageError::Unsafe(format!(
                "the archive holds {} entries; the limit is {}",
                zip.len(),
                limits.max_entries
            )));
        }
        if zip.has_duplicate_names() {
            return Err(PackageError::Unsafe(
                "two entries of the archive have the same name".into(),
            ));
        }
        let mut entries = Vec::with_capacity(zip.len());
        let mut total: u64 = 0;
        for i in 0..zip.len() {
            let e = zip.by_index_raw(i).map_err(zip_err)?;
            let raw = e.name_raw().to_vec();
            let name = match String::from_utf8(raw) {
                Ok(n) => n,
                Err(_) => e.name().map_err(zip_err)?.into_owned(),
            };
            check_entry_name(&name).map_err(PackageError::Unsafe)?;
            if e.is_symlink() {
                return Err(PackageError::Unsafe(format!("{name:?} is a symbolic link")));
            }
            if e.encrypted() {
                return Err(PackageError::Unsafe(format!(
                    "{name:?} is encrypted; FZIP packages are not"
                )));
            }
            let method = e.compression();
            if !matches!(
                method,
                zip::CompressionMethod::Stored
                    | zip::CompressionMethod::Deflated
                    | zip::CompressionMethod::Lzma
            ) {
                return Err(PackageError::Unsafe(format!(
                    "{name:?} uses compression method {method:?}; fzip reads stored, DEFLATE and LZMA entries"
                )));
            }
            let size = e.size();
            let compressed = e.compressed_size();
            if size > limits.max_entry_size {
                return Err(PackageError::Unsafe(format!(
                    "{name:?} is {size} bytes uncompressed; the limit for one entry is {}",
                    limits.max_entry_size
                )));
            }
            if size > limits.ratio_floor && size / compressed.max(1) > limits.max_ratio {
                return Err(PackageError::Unsafe(format!(
                    "{name:?} expands {compressed} bytes to {size} (ratio {}:1, limit {}:1), as a zip bomb does",
                    size / compressed.max(1),
                    limits.max_ratio
                )));
            }
            total = total.saturating_add(size);
            if total > limits.max_total_size {
                return Err(PackageError::Unsafe(format!(
                    "the entries add up to more than {} bytes uncompressed",
                    limits.max_total_size
                )));
            }
            entries.push(EntryInfo {
                is_dir: e.is_dir(),
                name,
                size,
                compressed_size: compressed,
                method: method_name(method),
                crc32: e.crc32(),
            });
        }
        zip.validate_header_consistency()
            .map_err(|e| PackageError::Unsafe(format!("the archive's headers disagree: {e}")))?;

        let index: HashMap<String, usize> = entries
            .iter()
            .enumerate()
            .map(|(i, e)| (e.name.clone(), i))
            .collect();
        let Some(&mi) = index.get("manifest.json") else {
            return Err(PackageError::NoManifest);
        };
        if entries[mi].size > limits.max_manifest_size {
            return Err(PackageError::Unsafe(format!(
                "manifest.json is {} bytes; the limit is {}",
                entries[mi].size, limits.max_manifest_size
            )));
        }
        let mut manifest_bytes = Vec::new();
        {
            let file = zip.by_index(mi).map_err(zip_err)?;
            file.take(limits.max_manifest_size + 1)
                .read_to_end(&mut manifest_bytes)
                .map_err(|e| PackageError::Entry {
                    entry: "manifest.json".into(),
                    message: format!("cannot be read: {e}"),
                })?;
        }
        let manifest = ParsedManifest::parse(&manifest_bytes).map_err(PackageError::BadManifest)?;

        let mut reader = PackageReader {
            zip,
            limits,
            entries,
            index,
            manifest,
            manifest_bytes,
            data: BTreeMap::new(),
            files: BTreeMap::new(),
            problems: Vec::new(),
        };
        reader.classify();
        Ok(reader)
    }

    /// Sorts entries into data files, statement files and the rest, and checks them against the
    /// manifest.
    fn classify(&mut self) {
        let fzip = self.manifest.dialect == Dialect::Fzip;
        let mut problems = Vec::new();
        for w in &self.manifest.warnings {
            problems.push(Problem::warning(Some("manifest.json"), w.clone()));
        }
        match &self.manifest.manifest_checksum {
            ManifestChecksum::Valid => {}
            ManifestChecksum::Absent if fzip => problems.push(Problem::error(
                Some("manifest.json"),
                "has no manifestChecksum although it was written by fzip",
            )),
            ManifestChecksum::Absent => {}
            ManifestChecksum::Mismatch { expected, actual } => problems.push(Problem::error(
                Some("manifest.json"),
                format!("was changed after it was written: manifestChecksum says {expected}, the manifest hashes to {actual}"),
            )),
            ManifestChecksum::Malformed(m) => {
                problems.push(Problem::error(Some("manifest.json"), m.clone()))
            }
        }

        for kind in EntityKind::ALL {
            let plain = format!("data/{}.json", kind.stem());
            let gz = format!("data/{}.json.gz", kind.stem());
            match (
                self.index.contains_key(&plain),
                self.index.contains_key(&gz),
            ) {
                (true, true) => problems.push(Problem::error(
                    Some(&plain),
                    format!(
                        "both {plain} and {gz} are present; which one holds the data is ambiguous"
                    ),
                )),
                (true, false) => {
                    self.data.insert(
                        kind,
                        DataEntry {
                            name: plain,
                            gzip: false,
                        },
                    );
                }
                (false, true) => {
                    self.data.insert(
                        kind,
                        DataEntry {
                            name: gz,
                            gzip: true,
                        },
                    );
                }
                (false, false) => {
                    let declared = self
                        .manifest
                        .declared_counts
                        .get(&kind)
                        .copied()
                        .unwrap_or(0);
                    if kind == EntityKind::Analytics {
                        if declared > 0 || self.manifest.analytics_included == Some(true) {
                            problems.push(Problem::error(
                                Some(&plain),
                                "is missing although the manifest says analytics are included",
                            ));
                        }
                    } else if declared > 0 || fzip {
                        problems.push(Problem::error(
                            Some(&plain),
                            format!(
                                "is missing (the manifest declares {declared} {})",
                                kind.stem()
                            ),
                        ));
                    } else {
                        problems.push(Problem::warning(Some(&plain), "is missing; read as empty"));
                    }
                }
            }
        }

        for e in &self.entries {
            if e.is_dir || e.name == "manifest.json" {
                continue;
            }
            let name = e.name.as_str();
            let is_data = self.data.values().any(|d| d.name == name);
            let parts: Vec<&str> = name.split('/').collect();
            if is_data {
            } else if parts.len() >= 3 && parts[0] == "files" {
                let file_id = parts[1].to_string();
                if let Some(previous) = self.files.get(&file_id) {
                    problems.push(Problem::error(
                        Some(name),
                        format!("is a second file for fileId {file_id} (the first is {previous})"),
                    ));
                } else {
                    self.files.insert(file_id, name.to_string());
                }
            } else if fzip {
                // Listed or not, fzip never writes other entries.
                problems.push(Problem::error(Some(name), "is not part of the FZIP layout"));
            } else {
                problems.push(Problem::warning(
                    Some(name),
                    "is not part of the FZIP layout; ignored",
                ));
            }
            if fzip && !self.manifest.checksums.contains_key(name) {
                problems.push(Problem::error(
                    Some(name),
                    "is not listed in the manifest's checksums (it was added or renamed after the backup was made)",
                ));
            }
        }
        for name in self.manifest.checksums.keys() {
            if !self.index.contains_key(name) {
                problems.push(Problem::error(
                    Some(name),
                    "is listed in the manifest but missing from the package",
                ));
            }
        }
        if !fzip && self.manifest.checksums.is_empty() {
            problems.push(Problem::warning(
                None,
                "the manifest holds no checksums (HouseF3 never writes them); integrity rests on each entry's ZIP CRC-32",
            ));
        }
        self.problems = problems;
    }

    pub fn manifest(&self) -> &ParsedManifest {
        &self.manifest
    }

    /// `manifest.json` exactly as stored.
    pub fn manifest_bytes(&self) -> &[u8] {
        &self.manifest_bytes
    }

    pub fn dialect(&self) -> Dialect {
        self.manifest.dialect
    }

    pub fn entries(&self) -> &[EntryInfo] {
        &self.entries
    }

    pub fn limits(&self) -> Limits {
        self.limits
    }

    /// Structural findings from opening the package.
    pub fn problems(&self) -> &[Problem] {
        &self.problems
    }

    /// True when opening found an error-level problem.
    pub fn has_errors(&self) -> bool {
        self.problems.iter().any(|p| p.severity == Severity::Error)
    }

    /// Where each entity collection is stored.
    pub fn data_entry(&self, kind: EntityKind) -> Option<&DataEntry> {
        self.data.get(&kind)
    }

    /// Statement file entries, by fileId.
    pub fn file_entries(&self) -> &BTreeMap<String, String> {
        &self.files
    }

    /// The entry holding a statement file's bytes.
    pub fn file_entry(&self, file_id: &str) -> Option<&str> {
        self.files.get(file_id).map(String::as_str)
    }

    pub fn entry_info(&self, name: &str) -> Option<&EntryInfo> {
        self.index.get(name).map(|&i| &self.entries[i])
    }

    /// Opens an entry for reading. The reader checks the entry's size, CRC-32 and (where the
    /// manifest has one) SHA-256 when it reaches the end, and fails there on a mismatch.
    pub fn open_entry(&mut self, name: &str) -> Result<EntryReader<'_, R>, PackageError> {
        let Some(&i) = self.index.get(name) else {
            return Err(PackageError::Entry {
                entry: name.to_string(),
                message: "no such entry".into(),
            });
        };
        let declared = self.entries[i].size;
        let expected = self.manifest.checksums.get(name).copied();
        let file = self.zip.by_index(i).map_err(|e| PackageError::Entry {
            entry: name.to_string(),
            message: e.to_string(),
        })?;
        Ok(EntryReader {
            inner: file,
            name: name.to_string(),
            declared,
            count: 0,
            hasher: Sha256::new(),
            expected,
            digest: None,
        })
    }

    /// Streams the entities of one collection. Each element arrives parsed, or as an
    /// [`ElementError`] when it does not fit the schema; reading goes on after such an element.
    /// Returns the number of elements. An absent collection reads as empty.
    ///
    /// The entry is inflated and hashed on a second thread while this one splits and parses
    /// the JSON (a few 256 KiB chunks in flight), so the two halves of the work overlap.
    pub fn read_entities<T: Entity, E>(
        &mut self,
        mut on_item: impl FnMut(Result<T, ElementError>) -> Result<(), E>,
    ) -> Result<u64, ReadError<E>>
    where
        R: Send,
    {
        let Some(data) = self.data.get(&T::KIND).cloned() else {
            return Ok(0);
        };
        let limits = self.limits;
        let kind = T::KIND;
        let keys = [kind.stem(), kind.camel()];
        let name = data.name.clone();
        let entry = self.open_entry(&name)?;
        let compressed = entry.compressed_size();
        std::thread::scope(|scope| {
            let (chunks, recycled, feeder) = read_ahead(scope, entry);
            let mut ahead = ReadAhead {
                chunks,
                recycled,
                current: Vec::new(),
                pos: 0,
                at_end: false,
            };
            let result = if data.gzip {
                let cap = limits.max_entry_size.min(
                    limits
                        .ratio_floor
                        .max(limits.max_ratio.saturating_mul(compressed)),
                );
                let gz = flate2::read::GzDecoder::new(&mut ahead);
                let limited = CappedReader {
                    inner: gz,
                    left: cap,
                    cap,
                };
                for_each_element(limited, &keys, limits.max_entity_size, |i, bytes| {
                    on_item(parse_element::<T>(i, bytes))
                })
            } else {
                for_each_element(&mut ahead, &keys, limits.max_entity_size, |i, bytes| {
                    on_item(parse_element::<T>(i, bytes))
                })
            };
            let count = match result {
                Ok(n) => n,
                Err(Err(e)) => return Err(ReadError::Callback(e)),
                Err(Ok(e)) => {
                    let message = match e {
                        ArrayError::Io(e) => e.to_string(),
                        other if data.gzip => format!("(after gunzip) {other}"),
                        other => other.to_string(),
                    };
                    return Err(ReadError::Package(PackageError::Entry {
                        entry: name,
                        message,
                    }));
                }
            };
            // The rest of the entry (nothing, for a well-formed one) is read, so that its size
            // and checksum are checked to the end.
            io::copy(&mut ahead, &mut io::sink()).map_err(|e| {
                ReadError::Package(PackageError::Entry {
                    entry: name.clone(),
                    message: e.to_string(),
                })
            })?;
            drop(ahead);
            match feeder.join() {
                Ok(Ok(())) => Ok(count),
                Ok(Err(e)) => Err(ReadError::Package(e)),
                Err(_) => Err(ReadError::Package(PackageError::Entry {
                    entry: name,
                    message: "the thread inflating it failed".into(),
                })),
            }
        })
    }
}

/// Chunks handed from the inflating thread to the parsing one.
const AHEAD_CHUNK: usize = 256 * 1024;

type Chunk = io::Result<Vec<u8>>;

/// What [`read_ahead`] returns: the chunks, where used buffers go back, and the thread.
type Feeder<'scope> = (
    std::sync::mpsc::Receiver<Chunk>,
    std::sync::mpsc::Sender<Vec<u8>>,
    std::thread::ScopedJoinHandle<'scope, Result<(), PackageError>>,
);

/// Starts a scoped thread that reads `entry` (inflating and hashing it) into chunks. An empty
/// chunk marks the end, sent only after the entry's size and checksum were found right; a
/// damaged entry arrives as an error. Used buffers come back through the second channel.
fn read_ahead<'scope, 'env, R: Read + Send + 'env>(
    scope: &'scope std::thread::Scope<'scope, 'env>,
    mut entry: EntryReader<'env, R>,
) -> Feeder<'scope> {
    let (send, chunks) = std::sync::mpsc::sync_channel::<Chunk>(4);
    let (recycle, recycled) = std::sync::mpsc::channel::<Vec<u8>>();
    let feeder = scope.spawn(move || {
        loop {
            let mut buf = recycled
                .try_recv()
                .unwrap_or_else(|_| Vec::with_capacity(AHEAD_CHUNK));
            buf.resize(AHEAD_CHUNK, 0);
            let mut filled = 0;
            let mut failed = None;
            while filled < buf.len() {
                match entry.read(&mut buf[filled..]) {
                    Ok(0) => break,
                    Ok(n) => filled += n,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => {
                        failed = Some(e);
                        break;
                    }
                }
            }
            if let Some(e) = failed {
                let _ = send.send(Err(e));
                return Ok(());
            }
            buf.truncate(filled);
            if filled == 0 {
                // The end: size and checksum were checked by the last read.
                entry.finish()?;
                let _ = send.send(Ok(buf));
                return Ok(());
            }
            if send.send(Ok(buf)).is_err() {
                // The parsing side stopped (its callback said so); it reports why.
                return Ok(());
            }
        }
    });
    (chunks, recycle, feeder)
}

/// The parsing side of [`read_ahead`].
struct ReadAhead {
    chunks: std::sync::mpsc::Receiver<Chunk>,
    recycled: std::sync::mpsc::Sender<Vec<u8>>,
    current: Vec<u8>,
    pos: usize,
    at_end: bool,
}

impl Read for ReadAhead {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.pos == self.current.len() {
            if self.at_end {
                return Ok(0);
            }
            let chunk = self.chunks.recv().map_err(|_| {
                io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "the entry ended early (the thread inflating it stopped)",
                )
            })??;
            if chunk.is_empty() {
                self.at_end = true;
            }
            let used = std::mem::replace(&mut self.current, chunk);
            let _ = self.recycled.send(used);
            self.pos = 0;
        }
        let n = buf.len().min(self.current.len() - self.pos);
        buf[..n].copy_from_slice(&self.current[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

fn parse_element<T: Entity>(index: u64, bytes: &[u8]) -> Result<T, ElementError> {
    serde_json::from_slice::<T>(bytes).map_err(|e| {
        let id = serde_json::from_slice::<serde_json::Value>(bytes)
            .ok()
            .and_then(|v| {
                v.get(T::KIND.id_key())
                    .and_then(|v| v.as_str())
                    .map(str::to_string)
            });
        ElementError {
            index,
            id,
            message: e.to_string(),
        }
    })
}

/// Fails once more than `cap` bytes come out (a gzip bomb inside an entry).
struct CappedReader<R> {
    inner: R,
    left: u64,
    cap: u64,
}

impl<R: Read> Read for CappedReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        if n as u64 > self.left {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!(
                    "gzip data expands beyond {} bytes, as a zip bomb does",
                    self.cap
                ),
            ));
        }
        self.left -= n as u64;
        Ok(n)
    }
}

/// Reads one entry and checks it at the end: declared size, CRC-32 (by the ZIP reader), and the
/// manifest's SHA-256.
pub struct EntryReader<'a, R: Read> {
    inner: zip::read::ZipFile<'a, R>,
    name: String,
    declared: u64,
    count: u64,
    hasher: Sha256,
    expected: Option<Sha256Digest>,
    digest: Option<Sha256Digest>,
}

impl<R: Read> EntryReader<'_, R> {
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Bytes of the stored (compressed) entry.
    pub fn compressed_size(&self) -> u64 {
        self.inner.compressed_size()
    }

    /// Uncompressed size declared by the archive.
    pub fn size(&self) -> u64 {
        self.declared
    }

    /// Reads the rest and returns (size, SHA-256), or the error that names what is wrong.
    pub fn finish(mut self) -> Result<(u64, Sha256Digest), PackageError> {
        io::copy(&mut self, &mut io::sink()).map_err(|e| PackageError::Entry {
            entry: self.name.clone(),
            message: e.to_string(),
        })?;
        match self.digest {
            Some(d) => Ok((self.count, d)),
            None => Err(PackageError::Entry {
                entry: self.name.clone(),
                message: "was not read to its end".into(),
            }),
        }
    }

    fn fail(&self, message: String) -> io::Error {
        io::Error::new(io::ErrorKind::InvalidData, message)
    }
}

impl<R: Read> Read for EntryReader<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.digest.is_some() || buf.is_empty() {
            return Ok(0);
        }
        let n = match self.inner.read(buf) {
            Ok(n) => n,
            Err(e) => {
                return Err(self.fail(format!(
                    "the stored bytes are damaged ({e}); the package is corrupt"
                )));
            }
        };
        if n == 0 {
            if self.count != self.declared {
                return Err(self.fail(format!(
                    "holds {} bytes but the archive declares {}",
                    self.count, self.declared
                )));
            }
            let digest: Sha256Digest = std::mem::take(&mut self.hasher).finalize().into();
            if let Some(expected) = self.expected
                && expected != digest
            {
                return Err(self.fail(format!(
                    "content does not match its checksum in the manifest (manifest {}, content {})",
                    format_checksum(&expected),
                    format_checksum(&digest)
                )));
            }
            self.digest = Some(digest);
            return Ok(0);
        }
        self.count += n as u64;
        if self.count > self.declared {
            return Err(self.fail(format!(
                "decompresses to more than the {} bytes the archive declares",
                self.declared
            )));
        }
        self.hasher.update(&buf[..n]);
        Ok(n)
    }
}
