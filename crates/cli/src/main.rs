//! `fzip`: the command-line tool.
#![forbid(unsafe_code)]

mod backends;
mod bench;
mod cli;
mod output;
mod progress;

use std::fs::{self, File, OpenOptions};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, anyhow};
use clap::Parser;
use fzip_engine::backup::{BackupType, Selection};
use fzip_engine::{
    BackupOptions, CancelFlag, DemoOptions, DiffOptions, Engine, EngineError, ImportOptions,
    MergeStrategy, RestoreOptions,
};
use fzip_format::{Limits, PackageError};
use fzip_server::{AuthConfig, ServerConfig};
use serde_json::json;

use crate::cli::{Cli, Command, ProfileCommand, ServeArgs};
use crate::output::Out;
use crate::progress::Bar;

/// How a command ended, beyond success.
pub enum Failure {
    /// Bad arguments (exit 2).
    Usage(String),
    /// The package is invalid or unreadable (exit 3).
    Invalid {
        message: String,
        report: Option<serde_json::Value>,
    },
    /// The target profile is not empty (exit 4).
    NotEmpty {
        message: String,
        summary: serde_json::Value,
    },
    /// Differences were found and reported (exit 1, nothing more to print).
    Different,
    /// An import met conflicts under fail_on_conflict (exit 1, with the report).
    Conflict {
        message: String,
        report: serde_json::Value,
    },
    /// Anything else (exit 1).
    Error(anyhow::Error),
}

impl From<anyhow::Error> for Failure {
    fn from(e: anyhow::Error) -> Self {
        Failure::Error(e)
    }
}

impl From<EngineError> for Failure {
    fn from(e: EngineError) -> Self {
        let message = e.to_string();
        match e {
            EngineError::InvalidPackage(report) => Failure::Invalid {
                message,
                report: serde_json::to_value(&*report).ok(),
            },
            EngineError::Package(p) => Failure::Invalid {
                message: package_message(&p),
                report: None,
            },
            EngineError::ImportConflict(report) => Failure::Conflict {
                message,
                report: serde_json::to_value(&*report).unwrap_or_default(),
            },
            EngineError::ProfileNotEmpty { summary, .. } => Failure::NotEmpty {
                message,
                summary: serde_json::to_value(&*summary).unwrap_or_default(),
            },
            other => Failure::Error(anyhow!(other)),
        }
    }
}

fn package_message(p: &PackageError) -> String {
    format!("invalid package: {p}")
}

type Outcome = Result<(), Failure>;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let serving = matches!(cli.command, Command::Serve(_));
    init_logging(&cli, serving);
    let out = Out::new(cli.json);
    let cancel = Arc::new(CancelFlag::default());
    if !serving {
        let cancel = cancel.clone();
        // A second Ctrl-C ends the process at once; the database stays consistent either way.
        let _ = ctrlc::set_handler(move || {
            if cancel.is_set() {
                std::process::exit(130);
            }
            cancel.cancel();
        });
    }
    let result = run(&cli, &out, cancel);
    bench::report_peak_rss();
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure::Different) => ExitCode::from(1),
        Err(Failure::Usage(message)) => {
            out.error("USAGE", &message, None);
            ExitCode::from(2)
        }
        Err(Failure::Invalid { message, report }) => {
            out.invalid(&message, report.as_ref());
            ExitCode::from(3)
        }
        Err(Failure::NotEmpty { message, summary }) => {
            out.error(
                "PROFILE_NOT_EMPTY",
                &message,
                Some(json!({ "profileSummary": summary })),
            );
            ExitCode::from(4)
        }
        Err(Failure::Conflict { message, report }) => {
            out.conflicts(&message, &report);
            ExitCode::from(1)
        }
        Err(Failure::Error(e)) => {
            out.error("ERROR", &format!("{e:#}"), None);
            ExitCode::from(1)
        }
    }
}

/// Logs go to stderr: warnings for commands, `info` with job ids for the server (`FZIP_LOG`
/// overrides; `--log-format json` for structured lines).
fn init_logging(cli: &Cli, serving: bool) {
    let default = if serving { "info" } else { "warn" };
    let filter = tracing_subscriber::EnvFilter::try_from_env("FZIP_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let json = matches!(&cli.command, Command::Serve(a) if a.log_format == "json");
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr);
    if json {
        builder
            .json()
            .with_current_span(true)
            .with_span_list(true)
            .init();
    } else {
        builder.init();
    }
}

fn limits(cli: &Cli) -> Limits {
    let mut l = Limits::default();
    if let Some(v) = cli.limits.max_entry_size {
        l.max_entry_size = v;
    }
    if let Some(v) = cli.limits.max_total_size {
        l.max_total_size = v;
    }
    if let Some(v) = cli.limits.max_entries {
        l.max_entries = v;
    }
    if let Some(v) = cli.limits.max_ratio {
        l.max_ratio = v;
    }
    l
}

/// The engine on the configured database and blob storage.
fn engine(cli: &Cli) -> anyhow::Result<Engine> {
    let dir = &cli.data_dir;
    fs::create_dir_all(dir)
        .with_context(|| format!("cannot create the data directory {}", dir.display()))?;
    let store = backends::Database::from_cli(cli)?.profile_store()?;
    let blobs = backends::blob_store(cli)?;
    let mut engine = Engine::new(store, blobs);
    engine.limits = limits(cli);
    Ok(engine)
}

fn run(cli: &Cli, out: &Out, cancel: Arc<CancelFlag>) -> Outcome {
    let bar = || Bar::new(!cli.json && !cli.quiet, cancel.clone());
    match &cli.command {
        Command::DemoProfile {
            user,
            transactions,
            files,
            seed,
        } => {
            let engine = engine(cli)?;
            let bar = bar();
            let report = fzip_engine::demo_profile(
                &engine,
                user,
                &DemoOptions {
                    transactions: *transactions,
                    files: *files,
                    seed: *seed,
                },
                &bar,
            )?;
            bar.finish();
            out.demo(&report);
            Ok(())
        }
        Command::Backup {
            user,
            output,
            description,
            include_analytics,
            continue_on_missing_files,
            compression_level,
            force,
            backup_type,
            accounts,
            from,
            to,
            categories,
        } => {
            let selection = Selection {
                backup_type: BackupType::parse(backup_type).unwrap_or_default(),
                account_ids: accounts.as_ref().map(|a| a.iter().cloned().collect()),
                date_from: from.as_deref().map(|d| parse_date(d, false)).transpose()?,
                date_to: to.as_deref().map(|d| parse_date(d, true)).transpose()?,
                category_ids: categories.as_ref().map(|c| c.iter().cloned().collect()),
            };
            let engine = engine(cli)?;
            if output.exists() && !force {
                return Err(Failure::Usage(format!(
                    "{} already exists; choose another name or pass --force to overwrite it",
                    output.display()
                )));
            }
            let partial = partial_path(output);
            let file = OpenOptions::new()
                .create(true)
                .write(true)
                .truncate(true)
                .open(&partial)
                .with_context(|| format!("cannot write {}", partial.display()))?;
            let options = BackupOptions {
                job_id: None,
                description: description.clone(),
                include_analytics: *include_analytics,
                continue_on_missing_files: *continue_on_missing_files,
                compression_level: *compression_level,
                selection,
            };
            let bar = bar();
            let result = fzip_engine::backup(&engine, user, file, &options, &bar);
            bar.finish();
            let (file, report) = match result {
                Ok(v) => v,
                Err(e) => {
                    let _ = fs::remove_file(&partial);
                    return Err(e.into());
                }
            };
            let finish = (|| -> anyhow::Result<()> {
                file.set_len(report.package_bytes)?;
                file.sync_all()?;
                drop(file);
                fs::rename(&partial, output)?;
                if let Some(dir) = output.parent().filter(|d| !d.as_os_str().is_empty())
                    && let Ok(d) = File::open(dir)
                {
                    let _ = d.sync_all();
                }
                Ok(())
            })();
            if let Err(e) = finish {
                let _ = fs::remove_file(&partial);
                return Err(Failure::Error(
                    e.context(format!("cannot finish {}", output.display())),
                ));
            }
            out.backup(&report, output);
            Ok(())
        }
        Command::Restore {
            file,
            user,
            validate_only,
        } => {
            let engine = engine(cli)?;
            require_file(file)?;
            let bar = bar();
            let report = fzip_engine::restore(
                &engine,
                user,
                file,
                &RestoreOptions {
                    validate_only: *validate_only,
                    ..Default::default()
                },
                &bar,
            )?;
            bar.finish();
            out.restore(&report, file);
            Ok(())
        }
        Command::Verify { file } => {
            require_file(file)?;
            let mut reader = fzip_engine::open_package(file, limits(cli))?;
            let bar = bar();
            let report = fzip_engine::verify(&mut reader, &bar)?;
            bar.finish();
            out.verify(&report, file);
            if report.valid {
                Ok(())
            } else {
                Err(Failure::Invalid {
                    message: String::new(),
                    report: None,
                })
            }
        }
        Command::Inspect { file } => {
            require_file(file)?;
            let mut reader = fzip_engine::open_package(file, limits(cli))?;
            let manifest = reader.manifest().raw.clone();
            let entries = reader.entries().to_vec();
            let package_bytes = fs::metadata(file).map(|m| m.len()).unwrap_or(0);
            let bar = bar();
            let report = fzip_engine::verify(&mut reader, &bar)?;
            bar.finish();
            out.inspect(&report, &manifest, &entries, package_bytes, file);
            Ok(())
        }
        Command::Diff { a, b, strict } => {
            require_file(a)?;
            require_file(b)?;
            let bar = bar();
            let report =
                fzip_engine::diff(a, b, limits(cli), DiffOptions { strict: *strict }, &bar)?;
            bar.finish();
            out.diff(&report);
            if report.equal {
                Ok(())
            } else {
                Err(Failure::Different)
            }
        }
        Command::Profile { command } => match command {
            ProfileCommand::Summary { user } => {
                let engine = engine(cli)?;
                let summary = engine.store.summary(user).map_err(EngineError::from)?;
                out.summary(user, &summary);
                Ok(())
            }
            ProfileCommand::Clear { user, yes } => {
                if !yes {
                    return Err(Failure::Usage(format!(
                        "clearing deletes every account, transaction and statement file of {user}; pass --yes to confirm"
                    )));
                }
                let engine = engine(cli)?;
                let summary = fzip_engine::clear_profile(&engine, user)?;
                out.cleared(user, &summary);
                Ok(())
            }
        },
        Command::Gc { min_age_hours } => {
            let engine = engine(cli)?;
            let report =
                fzip_engine::gc(&engine, (*min_age_hours as i64).saturating_mul(3_600_000))?;
            out.gc(&report);
            Ok(())
        }
        Command::Import {
            file,
            user,
            merge_strategy,
            dry_run,
        } => {
            let engine = engine(cli)?;
            require_file(file)?;
            let merge = MergeStrategy::parse(merge_strategy).ok_or_else(|| {
                Failure::Usage(format!("unknown merge strategy {merge_strategy:?}"))
            })?;
            let bar = bar();
            let report = fzip_engine::import(
                &engine,
                user,
                file,
                &ImportOptions {
                    merge,
                    dry_run: *dry_run,
                    batch_id: None,
                    job_id: None,
                },
                &bar,
            )?;
            bar.finish();
            out.import(&report, file);
            Ok(())
        }
        Command::Analytics { user, recompute } => {
            let engine = engine(cli)?;
            if *recompute {
                fzip_engine::analytics::recompute(&engine, user)?;
            }
            let records = fzip_engine::analytics::load(&engine, user)?;
            out.analytics(user, &records);
            Ok(())
        }
        Command::Serve(args) => serve(cli, args),
        Command::Bench(args) => bench::bench(cli, args).map_err(Failure::Error),
        Command::Token { user, ttl_hours } => {
            let secret = jwt_secret(cli)?;
            let token = fzip_server::auth::mint_token(
                &secret,
                user,
                Duration::from_secs(ttl_hours.saturating_mul(3600)),
            )
            .context("cannot sign the token")?;
            println!("{token}");
            Ok(())
        }
        Command::Audit { user, limit } => {
            let jobs = backends::Database::from_cli(cli)?.job_store()?;
            let records = jobs
                .list_audit(user.as_deref(), *limit)
                .map_err(|e| anyhow!(e))?;
            out.audit(&records);
            Ok(())
        }
        Command::Migrate => {
            fs::create_dir_all(&cli.data_dir)
                .with_context(|| format!("cannot create {}", cli.data_dir.display()))?;
            let database = backends::Database::from_cli(cli)?;
            let applied = database.migrate()?;
            out.migrated(&database.describe(), &applied);
            Ok(())
        }
    }
}

const JWT_SECRET_FILE: &str = "jwt-secret";

/// The HS256 token secret: `FZIP_JWT_SECRET` (servers sharing work must share it), or a secret
/// generated once in the data directory.
fn jwt_secret(cli: &Cli) -> Result<Vec<u8>, Failure> {
    match std::env::var("FZIP_JWT_SECRET") {
        Ok(k) if k.len() >= 32 => Ok(k.into_bytes()),
        Ok(_) => Err(Failure::Usage(
            "FZIP_JWT_SECRET must be at least 32 characters".into(),
        )),
        Err(_) => fzip_server::auth::load_or_create_secret(&cli.data_dir.join(JWT_SECRET_FILE))
            .with_context(|| {
                format!(
                    "cannot read or create the token secret in {}",
                    cli.data_dir.display()
                )
            })
            .map_err(Failure::Error),
    }
}
const URL_KEY_FILE: &str = "url-signing-key";

/// `fzip serve`: the HTTP service on the embedded store.
fn serve(cli: &Cli, args: &ServeArgs) -> Outcome {
    let engine = engine(cli)?;
    let jobs = backends::Database::from_cli(cli)?.job_store()?;
    let auth = match &args.jwks_url {
        Some(url) => AuthConfig::Jwks {
            url: url.clone(),
            issuer: args.jwt_issuer.clone(),
            audience: args.jwt_audience.clone(),
        },
        None => AuthConfig::Hs256 {
            secret: jwt_secret(cli)?,
            issuer: fzip_server::auth::EMBEDDED_ISSUER.into(),
            audience: fzip_server::auth::EMBEDDED_AUDIENCE.into(),
        },
    };
    let url_key = match std::env::var("FZIP_URL_SIGNING_KEY") {
        Ok(k) if k.len() >= 32 => k.into_bytes(),
        Ok(_) => {
            return Err(Failure::Usage(
                "FZIP_URL_SIGNING_KEY must be at least 32 characters".into(),
            ));
        }
        Err(_) => fzip_server::auth::load_or_create_secret(&cli.data_dir.join(URL_KEY_FILE))
            .context("cannot read or create the URL signing key")?,
    };
    let mut config = ServerConfig::new(args.listen, cli.data_dir.clone(), auth, url_key);
    config.public_url = args.public_url.clone();
    config.workers = args.workers.max(1);
    config.package_ttl = Duration::from_secs(args.package_ttl_hours.saturating_mul(3600));
    config.url_ttl = Duration::from_secs(args.url_ttl_secs.max(1));
    config.max_upload_bytes = args.max_upload_bytes;
    config.shutdown_grace = Duration::from_secs(args.shutdown_grace_secs);
    config.lease = Duration::from_secs(args.lease_secs.max(1));
    config.max_attempts = args.max_attempts.max(1);
    config.limits = limits(cli);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("fzip-serve")
        .build()
        .context("cannot start the async runtime")?;
    runtime
        .block_on(async move {
            let listener = tokio::net::TcpListener::bind(config.listen)
                .await
                .with_context(|| format!("cannot listen on {}", config.listen))?;
            let addr = listener.local_addr()?;
            eprintln!(
                "fzip listening on http://{addr} (data in {})",
                config.data_dir.display()
            );
            let state = fzip_server::new_state(config, engine, jobs);
            fzip_server::run(listener, state, fzip_server::shutdown_signal())
                .await
                .map_err(anyhow::Error::from)
        })
        .map_err(Failure::Error)
}

/// A date option: milliseconds since the epoch, or `YYYY-MM-DD` (UTC; an end date covers the
/// whole day).
fn parse_date(text: &str, end_of_day: bool) -> Result<i64, Failure> {
    if let Ok(ms) = text.parse::<i64>() {
        return Ok(ms);
    }
    let day = chrono::NaiveDate::parse_from_str(text, "%Y-%m-%d").map_err(|_| {
        Failure::Usage(format!(
            "{text:?} is not a date: give milliseconds since the epoch or YYYY-MM-DD"
        ))
    })?;
    let start = day
        .and_hms_opt(0, 0, 0)
        .map(|t| t.and_utc().timestamp_millis())
        .unwrap_or(0);
    Ok(if end_of_day {
        start + 86_400_000 - 1
    } else {
        start
    })
}

fn require_file(path: &Path) -> Result<(), Failure> {
    if path.is_file() {
        Ok(())
    } else {
        Err(Failure::Error(anyhow!(
            "{} does not exist or is not a file",
            path.display()
        )))
    }
}

fn partial_path(output: &Path) -> PathBuf {
    let mut name = output
        .file_name()
        .map(|n| n.to_os_string())
        .unwrap_or_default();
    name.push(".partial");
    output.with_file_name(name)
}
