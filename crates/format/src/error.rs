//! Errors of the package layer.

use std::io;

/// Why a package could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum PackageError {
    /// The input is not a ZIP archive at all.
    #[error("not a ZIP archive: {0}")]
    NotZip(String),
    /// The archive is refused for safety: a path escaping its folder, a symlink, a duplicate
    /// name, a size or ratio over the limits, an encrypted or unsupported entry.
    #[error("unsafe package: {0}")]
    Unsafe(String),
    /// There is no `manifest.json`.
    #[error(
        "the package has no manifest.json: it is not an FZIP package, or the backup that wrote it did not finish"
    )]
    NoManifest,
    /// `manifest.json` cannot be used.
    #[error("bad manifest: {0}")]
    BadManifest(String),
    /// Reading one entry failed: damaged bytes, a checksum mismatch, invalid JSON.
    #[error("{entry}: {message}")]
    Entry { entry: String, message: String },
    /// The source of an entry failed while the package was written.
    #[error("reading the source of {entry} failed: {source}")]
    Source { entry: String, source: io::Error },
    #[error("ZIP error: {0}")]
    Zip(#[from] zip::result::ZipError),
    #[error("I/O error: {0}")]
    Io(#[from] io::Error),
    #[error("JSON error: {0}")]
    Json(#[from] serde_json::Error),
}

impl PackageError {
    /// The entry the error concerns, if any.
    pub fn entry(&self) -> Option<&str> {
        match self {
            PackageError::Entry { entry, .. } | PackageError::Source { entry, .. } => Some(entry),
            _ => None,
        }
    }
}
