//! Writing a package: entity arrays and statement files stream into the ZIP one at a time, each
//! hashed as it goes; the manifest, holding every entry's checksum, is written last.

use std::collections::{BTreeMap, HashSet};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use fzip_model::EntityKind;
use serde::Serialize;
use sha2::{Digest, Sha256};
use zip::write::SimpleFileOptions;
use zip::{CompressionMethod, ZipWriter};

use crate::checksum::{Sha256Digest, format_checksum};
use crate::error::PackageError;
use crate::manifest::Manifest;
use crate::names::{check_entry_name, file_entry_name};

/// The DEFLATE level backups use unless told otherwise. HouseF3 uses 6; on transaction JSON
/// (zlib-rs, this project's 2-core machine) level 5 compresses 1.5x faster (147 vs 99 MB/s) for
/// packages 2% larger (ratio 0.157 vs 0.154), see BENCHMARKS.md.
pub const DEFAULT_COMPRESSION_LEVEL: i64 = 5;

/// Options for a [`PackageWriter`].
#[derive(Debug, Clone, Copy)]
pub struct WriterOptions {
    /// DEFLATE level 0–9 (default [`DEFAULT_COMPRESSION_LEVEL`]).
    pub compression_level: i64,
    /// Entry modification time, ms since the epoch (the backup time).
    pub timestamp_ms: i64,
}

impl Default for WriterOptions {
    fn default() -> Self {
        WriterOptions {
            compression_level: DEFAULT_COMPRESSION_LEVEL,
            timestamp_ms: 0,
        }
    }
}

/// One written entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WrittenEntry {
    pub name: String,
    pub size: u64,
    pub sha256: Sha256Digest,
    /// Elements written, for data entries.
    pub elements: u64,
}

/// Totals of a finished package.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PackageStats {
    pub entries: u64,
    /// Bytes of all entries before compression (manifest excluded).
    pub uncompressed_bytes: u64,
    /// Size of the finished package (the end of the archive: truncate the output to it).
    pub package_bytes: u64,
}

/// Tracks how far the ZIP has been written (the ZIP writer seeks back to patch headers).
///
/// Once the package is abandoned (its [`PackageWriter`] dropped without `finish`, after a
/// failure), writes and seeks go nowhere: the ZIP writer's own drop then has nothing to fail
/// on (and nothing to print), and the caller deletes the unfinished output.
struct Tracked<W> {
    inner: W,
    pos: u64,
    high: Arc<AtomicU64>,
    abandoned: Arc<AtomicBool>,
}

impl<W: Write> Write for Tracked<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if self.abandoned.load(Ordering::Relaxed) {
            return Ok(buf.len());
        }
        let n = self.inner.write(buf)?;
        self.pos += n as u64;
        self.high.fetch_max(self.pos, Ordering::Relaxed);
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        if self.abandoned.load(Ordering::Relaxed) {
            return Ok(());
        }
        self.inner.flush()
    }
}

impl<W: Seek> Seek for Tracked<W> {
    fn seek(&mut self, pos: SeekFrom) -> io::Result<u64> {
        if self.abandoned.load(Ordering::Relaxed) {
            self.pos = match pos {
                SeekFrom::Start(n) => n,
                SeekFrom::Current(d) => self.pos.saturating_add_signed(d),
                SeekFrom::End(_) => self.pos,
            };
            return Ok(self.pos);
        }
        self.pos = self.inner.seek(pos)?;
        Ok(self.pos)
    }
}

/// Marks the output abandoned when the [`PackageWriter`] is dropped; declared before the ZIP
/// writer in [`PackageWriter`], so it is dropped first.
struct AbandonOnDrop(Arc<AtomicBool>);

impl Drop for AbandonOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

/// Errors of writing to the output are [`PackageError::Output`]: the disk, not the package.
fn output(e: impl Into<PackageError>) -> PackageError {
    match e.into() {
        PackageError::Io(e) | PackageError::Zip(zip::result::ZipError::Io(e)) => {
            PackageError::Output(e)
        }
        other => other,
    }
}

/// Writes an FZIP package to a seekable output.
pub struct PackageWriter<W: Write + Seek> {
    // Dropped before `zip` (fields drop in order): see [`Tracked`].
    _abandon: AbandonOnDrop,
    zip: ZipWriter<Tracked<W>>,
    high: Arc<AtomicU64>,
    options: WriterOptions,
    checksums: BTreeMap<String, String>,
    names: HashSet<String>,
    stats: PackageStats,
}

/// Extensions of formats that are already compressed; stored rather than deflated.
const STORED_EXTENSIONS: &[&str] = &[
    "pdf", "xlsx", "xls", "zip", "gz", "png", "jpg", "jpeg", "docx", "7z", "bz2", "xz",
];

impl<W: Write + Seek> PackageWriter<W> {
    pub fn new(inner: W, options: WriterOptions) -> Self {
        let high = Arc::new(AtomicU64::new(0));
        let abandoned = Arc::new(AtomicBool::new(false));
        PackageWriter {
            _abandon: AbandonOnDrop(abandoned.clone()),
            zip: ZipWriter::new(Tracked {
                inner,
                pos: 0,
                high: high.clone(),
                abandoned,
            }),
            high,
            options,
            checksums: BTreeMap::new(),
            names: HashSet::new(),
            stats: PackageStats::default(),
        }
    }

    /// Bytes written so far.
    pub fn bytes_written(&self) -> u64 {
        self.high.load(Ordering::Relaxed)
    }

    fn file_options(&self, method: CompressionMethod, size_hint: u64) -> SimpleFileOptions {
        let time = chrono::DateTime::from_timestamp_millis(self.options.timestamp_ms)
            .unwrap_or_default()
            .naive_utc();
        use chrono::{Datelike, Timelike};
        let mtime = zip::DateTime::from_date_and_time(
            time.year().clamp(1980, 2107) as u16,
            time.month() as u8,
            time.day() as u8,
            time.hour() as u8,
            time.minute() as u8,
            time.second() as u8,
        )
        .unwrap_or_default();
        let mut o = SimpleFileOptions::default()
            .compression_method(method)
            .last_modified_time(mtime)
            .unix_permissions(0o644)
            // ZIP64 headers when the entry may pass 4 GiB.
            .large_file(size_hint >= 0xF000_0000);
        if method == CompressionMethod::Deflated {
            o = o.compression_level(Some(self.options.compression_level));
        }
        o
    }

    /// DEFLATE, or stored entries at compression level 0.
    fn compressed(&self) -> CompressionMethod {
        if self.options.compression_level <= 0 {
            CompressionMethod::Stored
        } else {
            CompressionMethod::Deflated
        }
    }

    fn start(
        &mut self,
        name: &str,
        method: CompressionMethod,
        size_hint: u64,
    ) -> Result<(), PackageError> {
        check_entry_name(name).map_err(PackageError::Unsafe)?;
        if name == "manifest.json" || !self.names.insert(name.to_string()) {
            return Err(PackageError::Unsafe(format!(
                "entry {name:?} was written twice"
            )));
        }
        let options = self.file_options(method, size_hint);
        self.zip.start_file(name, options).map_err(output)?;
        Ok(())
    }

    fn record(&mut self, entry: &WrittenEntry) {
        self.checksums
            .insert(entry.name.clone(), format_checksum(&entry.sha256));
        self.stats.entries += 1;
        self.stats.uncompressed_bytes += entry.size;
    }

    /// Starts `data/{stem}.json`. `size_hint` is the expected uncompressed size, used to decide
    /// on ZIP64 headers.
    pub fn begin_entities(
        &mut self,
        kind: EntityKind,
        size_hint: u64,
    ) -> Result<EntityArrayWriter<'_, W>, PackageError> {
        let name = format!("data/{}.json", kind.stem());
        self.start(&name, self.compressed(), size_hint)?;
        Ok(EntityArrayWriter {
            writer: self,
            name,
            buf: Vec::with_capacity(CHUNK + 4096),
            hasher: Sha256::new(),
            size: 0,
            count: 0,
        })
    }

    /// Writes the bytes of a statement file at `files/{fileId}/{fileName}` (made safe) and
    /// returns the entry with its size and SHA-256. When `expected` is given and the bytes hash
    /// differently, the entry is taken out of the archive again and an error returned.
    pub fn add_file(
        &mut self,
        file_id: &str,
        file_name: &str,
        size_hint: u64,
        expected: Option<Sha256Digest>,
        mut reader: impl Read,
    ) -> Result<WrittenEntry, PackageError> {
        let name = file_entry_name(file_id, file_name);
        let ext = file_name
            .rsplit('.')
            .next()
            .unwrap_or("")
            .to_ascii_lowercase();
        let method = if STORED_EXTENSIONS.contains(&ext.as_str()) {
            CompressionMethod::Stored
        } else {
            self.compressed()
        };
        self.start(&name, method, size_hint)?;
        let mut hasher = Sha256::new();
        let mut size = 0u64;
        let mut buf = vec![0u8; CHUNK];
        loop {
            let n = match reader.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    let _ = self.zip.abort_file();
                    self.names.remove(&name);
                    return Err(PackageError::Source {
                        entry: name,
                        source: e,
                    });
                }
            };
            hasher.update(&buf[..n]);
            self.zip.write_all(&buf[..n]).map_err(output)?;
            size += n as u64;
        }
        let sha256: Sha256Digest = hasher.finalize().into();
        if let Some(expected) = expected
            && expected != sha256
        {
            let _ = self.zip.abort_file();
            self.names.remove(&name);
            return Err(PackageError::Source {
                entry: name,
                source: io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!(
                        "the stored bytes hash to {} but {} was recorded when they were stored: they were changed or damaged",
                        format_checksum(&sha256),
                        format_checksum(&expected)
                    ),
                ),
            });
        }
        let entry = WrittenEntry {
            name,
            size,
            sha256,
            elements: 0,
        };
        self.record(&entry);
        Ok(entry)
    }

    /// Writes the manifest (with every entry's checksum and its own) and finishes the archive.
    pub fn finish(mut self, manifest: &mut Manifest) -> Result<(W, PackageStats), PackageError> {
        manifest.checksums = std::mem::take(&mut self.checksums);
        let bytes = manifest.to_bytes()?;
        let options = self.file_options(self.compressed(), bytes.len() as u64);
        self.zip
            .start_file("manifest.json", options)
            .map_err(output)?;
        self.zip.write_all(&bytes).map_err(output)?;
        let mut tracked = self.zip.finish().map_err(output)?;
        tracked.flush().map_err(output)?;
        // The end of the archive. An aborted entry may have left bytes beyond it; callers writing
        // to a file truncate it to this length.
        self.stats.package_bytes = tracked.pos;
        Ok((tracked.inner, self.stats))
    }

    /// The checksums recorded so far, by entry name.
    pub fn checksums(&self) -> &BTreeMap<String, String> {
        &self.checksums
    }

    /// Uncompressed bytes written so far (manifest excluded).
    pub fn uncompressed_bytes(&self) -> u64 {
        self.stats.uncompressed_bytes
    }
}

const CHUNK: usize = 256 * 1024;

/// Streams one entity array: `[\n{…},\n{…}\n]\n`, one compact JSON object per line.
pub struct EntityArrayWriter<'a, W: Write + Seek> {
    writer: &'a mut PackageWriter<W>,
    name: String,
    buf: Vec<u8>,
    hasher: Sha256,
    size: u64,
    count: u64,
}

impl<W: Write + Seek> EntityArrayWriter<'_, W> {
    /// Appends one entity.
    pub fn push<T: Serialize>(&mut self, entity: &T) -> Result<(), PackageError> {
        self.buf
            .extend_from_slice(if self.count == 0 { b"[\n" } else { b",\n" });
        serde_json::to_writer(&mut self.buf, entity)?;
        self.count += 1;
        if self.buf.len() >= CHUNK {
            self.flush_buf()?;
        }
        Ok(())
    }

    /// Appends `count` entities that were serialized elsewhere (say, on another thread):
    /// `objects` holds them as compact JSON objects joined by `",\n"`, exactly the bytes
    /// [`EntityArrayWriter::push`] writes between the separator before the first and the end of
    /// the last. An empty batch (`count == 0`) writes nothing.
    pub fn push_serialized(&mut self, objects: &[u8], count: u64) -> Result<(), PackageError> {
        if count == 0 {
            return Ok(());
        }
        self.buf
            .extend_from_slice(if self.count == 0 { b"[\n" } else { b",\n" });
        self.buf.extend_from_slice(objects);
        self.count += count;
        if self.buf.len() >= CHUNK {
            self.flush_buf()?;
        }
        Ok(())
    }

    fn flush_buf(&mut self) -> Result<(), PackageError> {
        self.hasher.update(&self.buf);
        self.writer.zip.write_all(&self.buf).map_err(output)?;
        self.size += self.buf.len() as u64;
        self.buf.clear();
        Ok(())
    }

    /// Elements written so far.
    pub fn count(&self) -> u64 {
        self.count
    }

    /// Closes the array and records the entry's checksum.
    pub fn finish(mut self) -> Result<WrittenEntry, PackageError> {
        self.buf
            .extend_from_slice(if self.count == 0 { b"[]\n" } else { b"\n]\n" });
        self.flush_buf()?;
        let entry = WrittenEntry {
            name: std::mem::take(&mut self.name),
            size: self.size,
            sha256: std::mem::take(&mut self.hasher).finalize().into(),
            elements: self.count,
        };
        self.writer.record(&entry);
        Ok(entry)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use std::io::Cursor;

    fn sha_of(f: impl FnOnce(&mut EntityArrayWriter<'_, Cursor<Vec<u8>>>)) -> (String, u64) {
        let mut w = PackageWriter::new(Cursor::new(Vec::new()), WriterOptions::default());
        let mut array = w.begin_entities(EntityKind::Accounts, 0).unwrap();
        f(&mut array);
        let entry = array.finish().unwrap();
        (format_checksum(&entry.sha256), entry.elements)
    }

    #[test]
    fn serialized_batches_write_the_same_bytes_as_push() {
        let rows: Vec<serde_json::Value> = (0..7)
            .map(|i| serde_json::json!({"accountId": format!("a{i}"), "balance": "10.50"}))
            .collect();
        let direct = sha_of(|a| {
            for r in &rows {
                a.push(r).unwrap();
            }
        });
        let batched = sha_of(|a| {
            for chunk in [&rows[..3], &rows[3..3], &rows[3..]] {
                let mut bytes = Vec::new();
                for (i, r) in chunk.iter().enumerate() {
                    if i > 0 {
                        bytes.extend_from_slice(b",\n");
                    }
                    serde_json::to_writer(&mut bytes, r).unwrap();
                }
                a.push_serialized(&bytes, chunk.len() as u64).unwrap();
            }
        });
        assert_eq!(direct, batched);
        assert_eq!(direct.1, 7);
        let empty = sha_of(|a| a.push_serialized(b"", 0).unwrap());
        assert_eq!(empty, sha_of(|_| {}));
    }
}
