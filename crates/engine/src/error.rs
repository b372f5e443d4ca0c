//! Errors of engine operations.

use fzip_format::PackageError;
use fzip_store::{ProfileSummary, StoreError};

use crate::verify::VerifyReport;

/// Why an operation failed. Each variant says what was wrong; the messages say what to do.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// The package failed validation; nothing was written.
    #[error("the package is invalid ({}); nothing was written", first_error(.0))]
    InvalidPackage(Box<VerifyReport>),
    /// The package could not be opened or read.
    #[error("{0}")]
    Package(#[from] PackageError),
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

fn first_error(report: &VerifyReport) -> String {
    let n = report.error_count();
    match report
        .problems
        .iter()
        .find(|p| p.severity == fzip_format::Severity::Error)
    {
        Some(p) if n > 1 => format!("{p}; and {} more", n - 1),
        Some(p) => p.to_string(),
        None => "no details".into(),
    }
}

impl From<StoreError> for EngineError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::ProfileNotEmpty { user, summary } => {
                EngineError::ProfileNotEmpty { user, summary }
            }
            other => EngineError::Store(other),
        }
    }
}
