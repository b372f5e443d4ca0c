//! Errors of the package layer.

use std::io;

/// Why a package could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum PackageError {
    /// The input is not a ZIP archive at all.
    #[error(
        "the file is not a readable FZIP package: it is incomplete or damaged (a download or copy that did not finish), or not a package at all; download or copy it again (detail: {0})"
    )]
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
    #[error(
        "the package's manifest.json cannot be used: the file is damaged or is not an FZIP package; download or copy it again (detail: {0})"
    )]
    BadManifest(String),
    /// Reading one entry failed: damaged bytes, a checksum mismatch, invalid JSON.
    #[error("the package is damaged or incomplete: {entry}: {message}; download or copy it again")]
    Entry { entry: String, message: String },
    /// The source of an entry failed while the package was written.
    #[error("reading the source of {entry} failed: {source}")]
    Source { entry: String, source: io::Error },
    /// Writing the package to its output failed (a full disk, a failing device): nothing is
    /// wrong with the package's content.
    #[error("writing the package failed: {0}")]
    Output(io::Error),
    #[error(
        "the package cannot be read as a ZIP archive: it is incomplete or damaged; download or copy it again (detail: {0})"
    )]
    Zip(#[from] zip::result::ZipError),
    #[error(
        "the package cannot be read: it is incomplete or damaged; download or copy it again (detail: {0})"
    )]
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
