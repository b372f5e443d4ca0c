//! Errors of the store layer.

use fzip_model::EntityCounts;

use crate::ProfileSummary;

/// Why a store operation failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A restore needs an empty profile and this one is not.
    #[error("the profile of {user} is not empty: {}", describe(&.summary.counts))]
    ProfileNotEmpty {
        user: String,
        summary: Box<ProfileSummary>,
    },
    /// The same identifier twice in one profile.
    #[error("duplicate {kind} id {id}")]
    Duplicate { kind: &'static str, id: String },
    /// A stored row cannot be turned back into an entity.
    #[error("stored data is damaged: {0}")]
    Corrupt(String),
    /// The database refused or failed.
    #[error("database error: {0}")]
    Database(String),
    /// Blob storage failed.
    #[error("blob storage error: {0}")]
    Blob(String),
    /// A blob that should exist does not.
    #[error("blob {0} does not exist")]
    BlobNotFound(String),
    /// The schema is newer than this program.
    #[error("{0}")]
    Schema(String),
    #[error("I/O error: {0}")]
    Io(#[from] std::io::Error),
}

/// `5 accounts, 2847 transactions, …` (only non-zero counts), or `empty`.
pub fn describe(c: &EntityCounts) -> String {
    let parts: Vec<String> = [
        (c.accounts, "account"),
        (c.transactions, "transaction"),
        (c.categories, "category"),
        (c.file_maps, "file map"),
        (c.transaction_files, "transaction file"),
        (c.analytics, "analytics record"),
    ]
    .iter()
    .filter(|(n, _)| *n > 0)
    .map(|(n, what)| {
        let plural = if *n == 1 {
            what.to_string()
        } else if let Some(stem) = what.strip_suffix('y') {
            format!("{stem}ies")
        } else {
            format!("{what}s")
        };
        format!("{n} {plural}")
    })
    .collect();
    if parts.is_empty() {
        "empty".into()
    } else {
        parts.join(", ")
    }
}
