//! `fzip`: the command-line tool.
#![forbid(unsafe_code)]

// First, so that its `println!`/`eprintln!` (which never panic on a closed pipe) are the ones
// every module uses.
#[macro_use]
mod stdio;

mod audit;
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

use crate::backends::{MissingStore, Open};
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
    /// An engine error with a stable code of its own: `PROFILE_EMPTY` (exit 1), and the
    /// infrastructure failures `DISK_FULL` / `STORAGE_UNAVAILABLE` (exit 5).
    Coded {
        code: &'static str,
        message: String,
        exit: u8,
    },
    /// Anything else (exit 1).
    Error(anyhow::Error),
}

/// Exit status of infrastructure failures: the disk, the database or blob storage failed.
const EXIT_INFRASTRUCTURE: u8 = 5;

impl From<anyhow::Error> for Failure {
    fn from(e: anyhow::Error) -> Self {
        Failure::Error(e)
    }
}

impl From<EngineError> for Failure {
    fn from(e: EngineError) -> Self {
        let message = e.to_string();
        if let Some(code) = e.code() {
            let exit = match e {
                EngineError::Unavailable { .. } => EXIT_INFRASTRUCTURE,
                _ => 1,
            };
            return Failure::Coded {
                code,
                message,
                exit,
            };
        }
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
    p.to_string()
}

type Outcome = Result<(), Failure>;

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => return usage_error(&e),
    };
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
    let result = run(&cli, &out, cancel.clone());
    audit::record_cli(&cli, &result, cancel.is_set());
    bench::report_peak_rss();
    let succeeded = result.is_ok();
    let code = match result {
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
        Err(Failure::Coded {
            code,
            message,
            exit,
        }) => {
            out.error(code, &message, None);
            ExitCode::from(exit)
        }
        // Ctrl-C: the operation stopped cleanly (rolled back, the partial file removed).
        Err(Failure::Error(e)) if cancel.is_set() => {
            out.error("CANCELLED", &format!("interrupted by Ctrl-C: {e:#}"), None);
            ExitCode::from(130)
        }
        Err(Failure::Error(e)) => {
            out.error(error_code(&e), &format!("{e:#}"), None);
            ExitCode::from(1)
        }
    };
    match stdio::take_stdout_error() {
        Some(e) if succeeded => {
            eprintln!("error: cannot write the output: {e}");
            ExitCode::from(1)
        }
        _ => code,
    }
}

/// The stable `error` code of a failure that has no variant of its own.
fn error_code(e: &anyhow::Error) -> &'static str {
    if e.downcast_ref::<MissingStore>().is_some() {
        "STORE_NOT_FOUND"
    } else if e.downcast_ref::<NoSecret>().is_some() {
        "NO_TOKEN_SECRET"
    } else {
        "ERROR"
    }
}

/// Arguments clap refused (exit 2), or `--help`/`--version` (exit 0); with `--json` anywhere
/// before `--`, as one JSON document like every other outcome.
fn usage_error(e: &clap::Error) -> ExitCode {
    use clap::error::ErrorKind;
    let json = std::env::args_os()
        .skip(1)
        .take_while(|a| a != "--")
        .any(|a| a == "--json");
    let informational = matches!(e.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayVersion);
    let code = if informational {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(2)
    };
    let text = e.render().to_string();
    if json {
        let doc = if e.kind() == ErrorKind::DisplayVersion {
            json!({ "version": text.trim_end() })
        } else if informational {
            json!({ "help": text.trim_end() })
        } else {
            let message = text
                .trim_end()
                .trim_start_matches("error: ")
                .replace("\n\nFor more information, try '--help'.", "");
            json!({ "error": "USAGE", "message": message })
        };
        Out::new(true).document(&doc);
    } else if informational {
        println!("{}", text.trim_end());
    } else {
        // clap writes to stderr with the terminal's colours; a failure to write is ignored.
        let _ = e.print();
    }
    code
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

/// The engine on the configured database and blob storage; with [`Open::Existing`] only on a
/// store that is there already.
fn engine(cli: &Cli, open: Open) -> anyhow::Result<Engine> {
    let dir = &cli.data_dir;
    if open == Open::Create {
        fs::create_dir_all(dir)
            .with_context(|| format!("cannot create the data directory {}", dir.display()))?;
    }
    let store = backends::Database::from_cli(cli)?.profile_store(open)?;
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
            let engine = engine(cli, Open::Create)?;
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
            allow_empty,
            backup_type,
            accounts,
            from,
            to,
            categories,
        } => {
            let selection = selection(backup_type.as_deref(), accounts, from, to, categories)?;
            let engine = engine(cli, Open::Existing)?;
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
                allow_empty: *allow_empty,
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
                // Syncing or renaming the finished package failed: the disk, not the package.
                let full = e
                    .downcast_ref::<std::io::Error>()
                    .is_some_and(|io| io.kind() == std::io::ErrorKind::StorageFull);
                return Err(EngineError::unavailable(
                    fzip_engine::Resource::Disk,
                    full,
                    format!("cannot finish {}: {e:#}", output.display()),
                )
                .into());
            }
            out.backup(&report, output);
            Ok(())
        }
        Command::Restore {
            file,
            user,
            validate_only,
        } => {
            let engine = engine(cli, Open::Create)?;
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
                let engine = engine(cli, Open::Existing)?;
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
                let engine = engine(cli, Open::Existing)?;
                let summary = fzip_engine::clear_profile(&engine, user)?;
                out.cleared(user, &summary);
                Ok(())
            }
        },
        Command::Gc { min_age_hours } => {
            let engine = engine(cli, Open::Existing)?;
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
            let engine = engine(cli, Open::Create)?;
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
            let engine = engine(cli, Open::Existing)?;
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
            let secret = jwt_secret(cli, Open::Existing)?;
            let ttl = Duration::from_secs(ttl_hours.saturating_mul(3600));
            let token = fzip_server::auth::mint_token(&secret, user, ttl)
                .context("cannot sign the token")?;
            let expires_at = fzip_engine::now_ms().saturating_add(ttl.as_millis() as i64);
            out.token(user, &token, expires_at);
            Ok(())
        }
        Command::Audit { user, limit } => {
            let database = backends::Database::from_cli(cli)?;
            // The audit trail is part of the store: none there, nothing invented.
            database.profile_store(Open::Existing)?;
            let jobs = database.job_store()?;
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

/// `fzip token` found no secret to sign with (`NO_TOKEN_SECRET`).
#[derive(Debug)]
struct NoSecret(String);

impl std::fmt::Display for NoSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for NoSecret {}

/// The HS256 token secret: `FZIP_JWT_SECRET` (servers sharing work must share it), or a secret
/// generated once in the data directory, by `serve` ([`Open::Create`]) only: a token signed
/// with a secret the server does not have would be refused.
fn jwt_secret(cli: &Cli, open: Open) -> Result<Vec<u8>, Failure> {
    let path = cli.data_dir.join(JWT_SECRET_FILE);
    match std::env::var("FZIP_JWT_SECRET") {
        Ok(k) if k.len() >= 32 => Ok(k.into_bytes()),
        Ok(_) => Err(Failure::Usage(
            "FZIP_JWT_SECRET must be at least 32 characters".into(),
        )),
        Err(_) if open == Open::Existing && !path.is_file() => {
            Err(Failure::Error(anyhow::Error::new(NoSecret(format!(
                "no token secret at {}; nothing was created. `fzip serve --data-dir {}` makes \
                 one on its first start (then run `fzip token` again with the same --data-dir), \
                 or set FZIP_JWT_SECRET to the servers' secret",
                path.display(),
                cli.data_dir.display()
            )))))
        }
        Err(_) => fzip_server::auth::load_or_create_secret(&path)
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
    let engine = engine(cli, Open::Create)?;
    let jobs = backends::Database::from_cli(cli)?.job_store()?;
    let auth = match &args.jwks_url {
        Some(url) => AuthConfig::Jwks {
            url: url.clone(),
            issuer: args.jwt_issuer.clone(),
            audience: args.jwt_audience.clone(),
        },
        None => AuthConfig::Hs256 {
            secret: jwt_secret(cli, Open::Create)?,
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
    config.cors_origins = args.cors_origin.clone();
    config.allowed_hosts = args.allowed_hosts.clone();
    if let (Some(cert), Some(key)) = (&args.tls_cert, &args.tls_key) {
        config.tls = Some(fzip_server::TlsFiles {
            cert: cert.clone(),
            key: key.clone(),
        });
    }
    config.max_connections = args.max_connections.max(1);
    config.header_timeout = Duration::from_secs(args.header_timeout_secs.max(1));
    config.idle_timeout = Duration::from_secs(args.idle_timeout_secs.max(1));
    config.check().map_err(|e| Failure::Usage(e.to_string()))?;
    if let Some(files) = &config.tls {
        // A certificate that cannot be used is said before anything listens.
        fzip_server::listen::tls_acceptor(files).map_err(|e| Failure::Error(e.into()))?;
    }
    config.workers = args.workers.max(1);
    config.package_ttl = Duration::from_secs(args.package_ttl_hours.saturating_mul(3600));
    config.url_ttl = Duration::from_secs(args.url_ttl_secs.max(1));
    config.max_upload_bytes = args.max_upload_bytes;
    config.shutdown_grace = Duration::from_secs(args.shutdown_grace_secs);
    config.lease = Duration::from_secs(args.lease_secs.max(1));
    config.max_attempts = args.max_attempts.max(1);
    config.limits = limits(cli);
    config.user_limits = fzip_server::config::UserLimits {
        max_active_jobs: args.max_jobs_per_user.max(1),
        max_open_uploads: args.max_open_uploads_per_user.max(1),
        max_concurrent_uploads: args.max_concurrent_uploads_per_user.max(1),
        max_staged_bytes: args.max_staged_bytes_per_user,
        max_running: args.max_running_per_user.map(|n| n.max(1)),
    };
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
            // Links use the address actually bound (port 0 is given one).
            config.listen = addr;
            let scheme = if config.tls.is_some() {
                "https"
            } else {
                "http"
            };
            eprintln!(
                "fzip listening on {scheme}://{addr} (data in {})",
                config.data_dir.display()
            );
            let state = fzip_server::new_state(config, engine, jobs);
            fzip_server::run(listener, state, fzip_server::shutdown_signal())
                .await
                .map_err(anyhow::Error::from)
        })
        .map_err(Failure::Error)
}

/// The selection `backup`'s options name. A filter (`--accounts`, `--from`, `--to`,
/// `--categories`) makes the backup selective when `--type` is not given, and is refused with
/// any other `--type` than `selective`; so is a date range that ends before it starts (usage
/// errors, exit 2). Nothing is ever silently a "complete (partial)" backup.
fn selection(
    backup_type: Option<&str>,
    accounts: &Option<Vec<String>>,
    from: &Option<String>,
    to: &Option<String>,
    categories: &Option<Vec<String>>,
) -> Result<Selection, Failure> {
    let date_from = from.as_deref().map(|d| parse_date(d, false)).transpose()?;
    let date_to = to.as_deref().map(|d| parse_date(d, true)).transpose()?;
    if let (Some(f), Some(t), Some(from), Some(to)) = (date_from, date_to, from, to)
        && f > t
    {
        return Err(Failure::Usage(format!(
            "--from {from} is after --to {to}: the date range would select nothing; swap them"
        )));
    }
    let filters: Vec<&str> = [
        (accounts.is_some(), "--accounts"),
        (from.is_some(), "--from"),
        (to.is_some(), "--to"),
        (categories.is_some(), "--categories"),
    ]
    .into_iter()
    .filter_map(|(given, name)| given.then_some(name))
    .collect();
    let backup_type = match backup_type {
        None if filters.is_empty() => BackupType::Complete,
        None => BackupType::Selective,
        Some(name) => {
            let kind = BackupType::parse(name)
                .ok_or_else(|| Failure::Usage(format!("unknown backup type {name:?}")))?;
            if kind != BackupType::Selective && !filters.is_empty() {
                return Err(Failure::Usage(format!(
                    "{} narrow a selective backup, but --type is {name}: drop --type (a filter \
                     implies selective) or pass --type selective",
                    filters.join(", ")
                )));
            }
            kind
        }
    };
    Ok(Selection {
        backup_type,
        account_ids: accounts.as_ref().map(|a| a.iter().cloned().collect()),
        date_from,
        date_to,
        category_ids: categories.as_ref().map(|c| c.iter().cloned().collect()),
    })
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
