//! The audit trail of what the command line changes: `backup`, `restore`, `import` and
//! `profile clear` append a record to the job store beside the profile store, as the service's
//! workers do (`backup.backup`, `restore.restore`, …, with `source` `cli`).

use fzip_store::jobs::AuditRecord;

use crate::backends::{Database, MissingStore, Open};
use crate::cli::{Cli, Command, ProfileCommand};
use crate::{Failure, Outcome};

/// The record of a command that changes or reads out a profile, once it ran (`None` for the
/// other commands).
fn record_for(cli: &Cli, result: &Outcome, cancelled: bool) -> Option<AuditRecord> {
    let (user, action, detail) = match &cli.command {
        Command::Backup { user, output, .. } => {
            (user, "backup.backup", format!("to {}", output.display()))
        }
        Command::Restore {
            user,
            file,
            validate_only,
        } => (
            user,
            if *validate_only {
                "restore.validate"
            } else {
                "restore.restore"
            },
            format!("from {}", file.display()),
        ),
        Command::Import {
            user,
            file,
            merge_strategy,
            dry_run,
        } => (
            user,
            "import.import",
            format!(
                "from {}, {merge_strategy}{}",
                file.display(),
                if *dry_run { ", dry run" } else { "" }
            ),
        ),
        Command::Profile {
            command: ProfileCommand::Clear { user, .. },
        } => (user, "profile.clear", String::new()),
        _ => return None,
    };
    let outcome = match result {
        Ok(()) => "ok",
        // Refused before anything was attempted: no store to write to, or bad arguments.
        Err(Failure::Usage(_)) => return None,
        Err(Failure::Error(e)) if e.downcast_ref::<MissingStore>().is_some() => return None,
        Err(Failure::Error(_)) if cancelled => "CANCELLED",
        Err(Failure::Error(e)) => crate::error_code(e),
        Err(Failure::Invalid { .. }) => "INVALID_PACKAGE",
        Err(Failure::NotEmpty { .. }) => "PROFILE_NOT_EMPTY",
        Err(Failure::Conflict { .. }) => "IMPORT_CONFLICT",
        Err(Failure::Different) => "DIFFERENT",
        Err(Failure::Coded { code, .. }) => code,
    };
    Some(AuditRecord {
        at: fzip_engine::now_ms(),
        user_id: user.clone(),
        action: action.into(),
        job_id: None,
        outcome: outcome.into(),
        detail: (!detail.is_empty()).then_some(detail),
        source: Some("cli".into()),
    })
}

/// Appends the record of this run, if it has one. The operation is over by now, so a record
/// that cannot be written is a warning, not a failure of the command.
pub fn record_cli(cli: &Cli, result: &Outcome, cancelled: bool) {
    let Some(record) = record_for(cli, result, cancelled) else {
        return;
    };
    let written = Database::from_cli(cli).and_then(|db| {
        // Only beside a store that is there: a refused command creates nothing.
        db.profile_store(Open::Existing)?;
        db.job_store()?
            .append_audit(&record)
            .map_err(anyhow::Error::from)
    });
    if let Err(e) = written {
        eprintln!(
            "warning: could not write the audit record of {}: {e:#}",
            record.action
        );
    }
}
