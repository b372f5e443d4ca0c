//! Errors of engine operations.

use fzip_format::PackageError;
use fzip_store::{ProfileSummary, StoreError};

use crate::verify::VerifyReport;

/// Why an operation failed. Each variant says what was wrong; the messages say what to do.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// The package failed validation; nothing was written.
    #[error("{}; nothing was written", invalid_summary(.0, 1))]
    InvalidPackage(Box<VerifyReport>),
    /// The package could not be opened or read.
    #[error("{0}")]
    Package(PackageError),
    /// A backup of a profile that holds nothing, without `allow_empty`.
    #[error(
        "the profile of {user} holds nothing (no accounts, transactions, categories, file maps or statement files), so there is nothing to back up; check the user id (a mistyped --user gives an empty profile), or pass --allow-empty (allowEmpty in the service) to write an empty package anyway; nothing was written"
    )]
    ProfileEmpty { user: String },
    /// The disk, the database or blob storage failed: nothing is wrong with the package or the
    /// profile, and nothing was written.
    #[error("{}", unavailable_message(*.resource, *.full, .detail))]
    Unavailable {
        resource: Resource,
        /// The disk (or the database's disk) is full.
        full: bool,
        detail: String,
    },
    /// The target profile is not empty.
    #[error("the profile of {user} is not empty ({}); restore needs an empty profile: use another user, or clear this one with `fzip profile clear --user {user} --yes`", fzip_store::describe(&.summary.counts))]
    ProfileNotEmpty {
        user: String,
        summary: Box<ProfileSummary>,
    },
    /// A statement file's bytes could not be read from blob storage during a backup.
    #[error("{0}")]
    MissingFiles(String),
    /// `fail_on_conflict` met entities whose ids the profile already has; nothing was imported.
    #[error("{} entities of the package already exist in the profile ({}); nothing was imported. Import with --merge skip_existing or --merge overwrite, or see the report for every conflict", .0.conflict_count(), first_conflicts(.0))]
    ImportConflict(Box<crate::import::ImportReport>),
    /// The operation was cancelled; nothing was changed.
    #[error("cancelled; nothing was changed")]
    Cancelled,
    #[error("{0}")]
    Store(StoreError),
    #[error("I/O error: {0}")]
    Io(#[from] std::io::Error),
    #[error("{0}")]
    Other(String),
}

/// What failed in an [`EngineError::Unavailable`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Resource {
    /// A local file (the package being written, a staging file).
    Disk,
    Database,
    BlobStorage,
}

impl Resource {
    /// Stable name, as in `--json` output (`resource`).
    pub fn as_str(self) -> &'static str {
        match self {
            Resource::Disk => "disk",
            Resource::Database => "database",
            Resource::BlobStorage => "blob_storage",
        }
    }
}

fn unavailable_message(resource: Resource, full: bool, detail: &str) -> String {
    let what = match (resource, full) {
        (Resource::Disk, true) => "the disk is full",
        (Resource::Disk, false) => "writing to the disk failed",
        (Resource::Database, true) => "the database's disk is full",
        (Resource::Database, false) => "the database failed",
        (Resource::BlobStorage, true) => "blob storage is full",
        (Resource::BlobStorage, false) => "blob storage failed",
    };
    let todo = match (resource, full) {
        (_, true) => "free some space (or write somewhere else) and try again",
        (Resource::Disk, false) => "check the disk and the path, then try again",
        (Resource::Database, false) => {
            "check that the database is running and reachable, then try again"
        }
        (Resource::BlobStorage, false) => {
            "check that blob storage is reachable and writable, then try again"
        }
    };
    format!(
        "{what}, so nothing was written (the package and the profile are fine); {todo} ({detail})"
    )
}

/// True for the I/O errors of a full disk or quota.
pub(crate) fn is_full(e: &std::io::Error) -> bool {
    matches!(
        e.kind(),
        std::io::ErrorKind::StorageFull | std::io::ErrorKind::QuotaExceeded
    )
}

impl EngineError {
    /// An infrastructure failure of `resource`.
    pub fn unavailable(resource: Resource, full: bool, detail: impl std::fmt::Display) -> Self {
        EngineError::Unavailable {
            resource,
            full,
            detail: detail.to_string(),
        }
    }

    /// The stable code of errors that have one of their own (`PROFILE_EMPTY`, `DISK_FULL`,
    /// `STORAGE_UNAVAILABLE`); callers choose for the others.
    pub fn code(&self) -> Option<&'static str> {
        match self {
            EngineError::ProfileEmpty { .. } => Some("PROFILE_EMPTY"),
            EngineError::Unavailable { full: true, .. } => Some("DISK_FULL"),
            EngineError::Unavailable { .. } => Some("STORAGE_UNAVAILABLE"),
            _ => None,
        }
    }
}

impl From<PackageError> for EngineError {
    fn from(e: PackageError) -> Self {
        match e {
            // Writing the package failed: the disk, not the package.
            PackageError::Output(io) => {
                let full = is_full(&io);
                EngineError::unavailable(Resource::Disk, full, io)
            }
            other => EngineError::Package(other),
        }
    }
}

fn first_conflicts(report: &crate::import::ImportReport) -> String {
    let list: Vec<String> = report
        .conflict_list
        .iter()
        .take(3)
        .map(|c| format!("{} {}", c.collection, c.id))
        .collect();
    let more = report.conflict_count().saturating_sub(list.len() as u64);
    if more > 0 {
        format!("{} and {more} more", list.join(", "))
    } else {
        list.join(", ")
    }
}

/// What an invalid package means for the user, then its first `listed` errors and how many
/// more there are: `the file is damaged or incomplete …: e1; e2; and 7 more errors`.
pub fn invalid_summary(report: &VerifyReport, listed: usize) -> String {
    let errors: Vec<&fzip_format::Problem> = report
        .problems
        .iter()
        .filter(|p| p.severity == fzip_format::Severity::Error)
        .collect();
    let damaged = errors
        .iter()
        .any(|p| p.kind == fzip_format::ProblemKind::Integrity);
    let meaning = if damaged {
        "the package is damaged or incomplete (changed, cut short or corrupted since it was written): download or copy it again, or use another backup"
    } else {
        "the package is invalid: its data does not fit the FZIP format or refers to entities it does not hold (it was written by a faulty exporter or edited)"
    };
    let shown: Vec<String> = errors.iter().take(listed).map(|p| p.to_string()).collect();
    let more = report.error_count().saturating_sub(shown.len() as u64);
    let mut out = meaning.to_string();
    if !shown.is_empty() {
        out.push_str(" — ");
        out.push_str(&shown.join("; "));
    }
    if more > 0 && listed > 0 {
        out.push_str(&format!(
            "; and {more} more error{}",
            if more == 1 { "" } else { "s" }
        ));
    }
    out
}

impl From<StoreError> for EngineError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::ProfileNotEmpty { user, summary } => {
                EngineError::ProfileNotEmpty { user, summary }
            }
            StoreError::Database(m) => {
                let full = m.contains("disk is full") || m.contains("No space left");
                EngineError::unavailable(Resource::Database, full, m)
            }
            StoreError::Blob(m) => {
                let full = m.contains("No space left") || m.contains("disk quota");
                EngineError::unavailable(Resource::BlobStorage, full, m)
            }
            StoreError::Io(io) => {
                let full = is_full(&io);
                EngineError::unavailable(Resource::Disk, full, io)
            }
            other => EngineError::Store(other),
        }
    }
}
