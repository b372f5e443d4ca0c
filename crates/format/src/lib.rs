//! The FZIP package format: a ZIP archive holding `manifest.json`, `data/*.json` entity arrays
//! and `files/{fileId}/{fileName}` statement files.
//!
//! - [`PackageWriter`] streams entities and files into a package and writes the manifest, the
//!   commit record, last.
//! - [`PackageReader`] opens packages of three dialects (fzip's own, HouseF3's, and the design
//!   documents'), refuses unsafe archives, and streams entities with every checksum verified.
//!
//! This crate does no I/O beyond the `Read`/`Write`/`Seek` it is given, and knows nothing of
//! databases.
#![forbid(unsafe_code)]

pub mod checksum;
mod error;
pub mod json_array;
mod limits;
pub mod manifest;
pub mod names;
mod reader;
mod writer;

pub use checksum::{Sha256Digest, format_checksum, parse_checksum};
pub use error::PackageError;
pub use limits::Limits;
pub use manifest::{DataSummary, Dialect, Manifest, ManifestChecksum, ParsedManifest};
pub use reader::{
    DataEntry, ElementError, EntryInfo, EntryReader, PackageReader, Problem, ProblemKind,
    ReadError, Severity,
};
pub use writer::{
    DEFAULT_COMPRESSION_LEVEL, EntityArrayWriter, PackageStats, PackageWriter, WriterOptions,
    WrittenEntry,
};
