//! The command line, as others script against it.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

/// FZIP backup, restore, export and import for personal-finance profiles.
///
/// Exit codes: 0 success, 1 error or differences, 2 usage, 3 invalid package, 4 profile not
/// empty, 5 infrastructure failure (disk full, database or blob storage failing), 130
/// interrupted by Ctrl-C.
#[derive(Debug, Parser)]
#[command(name = "fzip", version, propagate_version = true, after_help = MAIN_HELP)]
pub struct Cli {
    /// Where the embedded store keeps its database and blobs.
    #[arg(
        long,
        global = true,
        env = "FZIP_DATA_DIR",
        default_value = "fzip-data",
        help_heading = GLOBAL
    )]
    pub data_dir: PathBuf,

    /// The database: `sqlite://PATH/fzip.db` (jobs in `jobs.db` beside it) or
    /// `postgres://USER[:PASSWORD]@HOST[:PORT]/DATABASE[?schema=NAME]`. Default: SQLite in the
    /// data directory.
    #[arg(
        long,
        global = true,
        env = "FZIP_DATABASE_URL",
        value_name = "URL",
        help_heading = GLOBAL
    )]
    pub database_url: Option<String>,

    /// Blob storage for statement files and packages: `file:///PATH` or
    /// `s3://BUCKET[/PREFIX]` (endpoint, region and credentials from the AWS environment
    /// variables). Default: the `blobs` folder in the data directory.
    #[arg(
        long,
        global = true,
        env = "FZIP_BLOB_STORE",
        value_name = "URL",
        help_heading = GLOBAL
    )]
    pub blob_store: Option<String>,

    /// Longest wait, in seconds, for one blob storage operation (one request with its retries,
    /// or one step of a streaming read or write) before it fails: a store that stops answering
    /// fails the job instead of holding it.
    #[arg(
        long,
        global = true,
        help_heading = GLOBAL,
        env = "FZIP_BLOB_TIMEOUT_SECS",
        default_value_t = 60,
        value_name = "SECS"
    )]
    pub blob_timeout_secs: u64,

    /// Print exactly one JSON document on stdout instead of text, errors included (and no
    /// progress bars).
    #[arg(long, global = true, help_heading = GLOBAL)]
    pub json: bool,

    /// No progress bars.
    #[arg(long, short, global = true, help_heading = GLOBAL)]
    pub quiet: bool,

    #[command(flatten)]
    pub limits: LimitArgs,

    #[command(subcommand)]
    pub command: Command,
}

/// Safety limits for reading packages.
#[derive(Debug, Args)]
pub struct LimitArgs {
    /// Largest uncompressed entry accepted in a package, in bytes.
    #[arg(long, global = true, env = "FZIP_MAX_ENTRY_SIZE", value_name = "BYTES", help_heading = LIMITS)]
    pub max_entry_size: Option<u64>,
    /// Largest uncompressed total accepted in a package, in bytes.
    #[arg(long, global = true, env = "FZIP_MAX_TOTAL_SIZE", value_name = "BYTES", help_heading = LIMITS)]
    pub max_total_size: Option<u64>,
    /// Most entries accepted in a package.
    #[arg(long, global = true, env = "FZIP_MAX_ENTRIES", value_name = "N", help_heading = LIMITS)]
    pub max_entries: Option<usize>,
    /// Highest compression ratio accepted for an entry over 1 MiB (zip bombs reach 1000).
    #[arg(long, global = true, env = "FZIP_MAX_RATIO", value_name = "N", help_heading = LIMITS)]
    pub max_ratio: Option<u64>,
}

/// The heading of the options every command takes.
const GLOBAL: &str = "Global options";
/// The heading of the package safety limits (global too).
const LIMITS: &str = "Package limits (global options)";

/// Exit codes, shown in every command's help.
macro_rules! exit_codes {
    ($($line:literal),* $(,)?) => {
        concat!(
            "Exit codes:\n",
            $("  ", $line, "\n",)*
            "  1    error (message on stderr, or the JSON document's `error` code)\n",
            "  2    usage: bad or contradictory arguments\n",
            "  130  interrupted by Ctrl-C (the operation stopped cleanly; nothing was changed)",
        )
    };
}

const MAIN_HELP: &str = concat!(
    "Examples:\n",
    "  fzip demo-profile --user alice\n",
    "  fzip backup --user alice -o alice.fzip\n",
    "  fzip restore alice.fzip --user bob\n",
    "  fzip COMMAND --help     (each command's options, an example and its exit codes)\n\n",
    "Only serve, migrate, demo-profile, restore and import create a store (the data directory \
     or the database); every other command fails on a missing one.\n\n",
    exit_codes![
        "0    success",
        "3    invalid package",
        "4    profile not empty"
    ],
);

const DEMO_HELP: &str = concat!(
    "Example:\n  fzip demo-profile --user alice --transactions 20000 --files 10\n\n",
    "Creates the store when there is none.\n\n",
    exit_codes![
        "0    the profile was filled",
        "4    the profile is not empty"
    ],
);

const BACKUP_HELP: &str = concat!(
    "Examples:\n",
    "  fzip backup --user alice -o alice.fzip\n",
    "  fzip backup --user alice -o 2023.fzip --from 2023-01-01 --to 2023-12-31\n\n",
    "A filter (--accounts, --from, --to, --categories) makes the backup selective when --type \
     is not given; with another --type it is refused. The store must exist.\n\n",
    exit_codes!["0    the package is written"],
);

const IMPORT_HELP: &str = concat!(
    "Example:\n  fzip import 2023.fzip --user carol --merge skip_existing --dry-run\n\n",
    "Creates the store when there is none.\n\n",
    exit_codes![
        "0    imported (or, with --dry-run, would import)",
        "1    conflicts under fail_on_conflict: nothing was imported (the report lists them)",
        "3    invalid package",
    ],
);

const ANALYTICS_HELP: &str = concat!(
    "Example:\n  fzip analytics --user alice --recompute\n\n",
    exit_codes!["0    the analytics are shown"],
);

const RESTORE_HELP: &str = concat!(
    "Examples:\n  fzip restore alice.fzip --user bob\n  fzip restore alice.fzip --user bob --validate-only\n\n",
    "Creates the store when there is none.\n\n",
    exit_codes![
        "0    restored (or, with --validate-only, restorable)",
        "3    invalid package: nothing was written",
        "4    the profile is not empty: nothing was written",
    ],
);

const VERIFY_HELP: &str = concat!(
    "Example:\n  fzip verify alice.fzip\n\n",
    exit_codes!["0    valid", "3    invalid (the report says why)"],
);

const INSPECT_HELP: &str = concat!(
    "Example:\n  fzip inspect alice.fzip\n\n",
    exit_codes!["0    shown", "3    the package cannot be read"],
);

const DIFF_HELP: &str = concat!(
    "Example:\n  fzip diff alice.fzip bob.fzip\n\n",
    "Exit 1 also means: the packages hold different profiles (the differences are printed).\n\n",
    exit_codes![
        "0    both packages hold the same profile",
        "3    a package cannot be read"
    ],
);

const PROFILE_HELP: &str = concat!(
    "Examples:\n  fzip profile summary --user alice\n  fzip profile clear --user alice --yes\n\n",
    exit_codes!["0    done"],
);

const SUMMARY_HELP: &str = concat!(
    "Example:\n  fzip profile summary --user alice\n\n",
    exit_codes!["0    shown (also for an empty profile)"],
);

const CLEAR_HELP: &str = concat!(
    "Example:\n  fzip profile clear --user alice --yes\n\n",
    exit_codes!["0    the profile is empty now"],
);

const GC_HELP: &str = concat!(
    "Example:\n  fzip gc --min-age-hours 48\n\n",
    exit_codes!["0    done"],
);

const MIGRATE_HELP: &str = concat!(
    "Example:\n  fzip migrate --database-url 'postgres://fzip@db.internal/fzip'\n\n",
    "Creates the store when there is none.\n\n",
    exit_codes!["0    the schema is current"],
);

const SERVE_HELP: &str = concat!(
    "Example:\n  fzip serve --listen 0.0.0.0:8080 --public-url https://fzip.example.com\n\n",
    "Creates the store, the token secret and the URL signing key when there are none. Stops \
     on SIGTERM or Ctrl-C after --shutdown-grace-secs.\n\n",
    exit_codes!["0    stopped"],
);

const BENCH_HELP: &str = concat!(
    "Example:\n  cargo run --release -p fzip -- bench --sizes 10000,100000 --runs 3\n\n",
    "With --json the results are the JSON document on stdout (and written to --json-out).\n\n",
    exit_codes!["0    done"],
);

const TOKEN_HELP: &str = concat!(
    "Example:\n  TOKEN=$(fzip token --user alice)\n\n",
    "Signs with FZIP_JWT_SECRET, or the secret `fzip serve` created in the data directory; \
     it never creates one (the server would refuse a token signed with another).\n\n",
    exit_codes!["0    the token is printed"],
);

const AUDIT_HELP: &str = concat!(
    "Example:\n  fzip audit --user alice --limit 20\n\n",
    exit_codes!["0    shown"],
);

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Fill an empty profile with realistic, deterministic demo data.
    #[command(after_help = DEMO_HELP)]
    DemoProfile {
        /// The user whose (empty) profile is filled.
        #[arg(long)]
        user: String,
        /// How many transactions to make.
        #[arg(long, default_value_t = 2_000)]
        transactions: u64,
        /// Statement files (the transactions are spread over them).
        #[arg(long, default_value_t = 10)]
        files: u64,
        /// Seed of the generator: the same seed makes the same profile.
        #[arg(long, default_value_t = 1)]
        seed: u64,
    },
    /// Back up a profile into a package.
    #[command(after_help = BACKUP_HELP)]
    Backup {
        /// The user whose profile is backed up.
        #[arg(long)]
        user: String,
        /// The package to write (written to FILE.partial, renamed when complete).
        #[arg(short, long, value_name = "FILE")]
        output: PathBuf,
        /// A note kept in the manifest.
        #[arg(long)]
        description: Option<String>,
        /// Include analytics records.
        #[arg(long)]
        include_analytics: bool,
        /// Finish even when a statement file cannot be read (it is named in the manifest).
        #[arg(long)]
        continue_on_missing_files: bool,
        /// DEFLATE level 1–9, or 0 to store entries uncompressed (5 by default: 1.5x faster
        /// than 6 for packages 2% larger).
        #[arg(long, default_value_t = fzip_format::DEFAULT_COMPRESSION_LEVEL, value_parser = clap::value_parser!(i64).range(0..=9))]
        compression_level: i64,
        /// Overwrite FILE if it exists.
        #[arg(long)]
        force: bool,
        /// Write a package even when the profile holds nothing (otherwise that fails with
        /// PROFILE_EMPTY: an empty profile is usually a mistyped --user).
        #[arg(long)]
        allow_empty: bool,
        /// What to back up (default: complete, or selective when a filter is given).
        #[arg(long = "type", value_parser = ["complete", "accounts_only", "transactions_only", "categories_only", "selective"])]
        backup_type: Option<String>,
        /// Only these accounts (comma-separated ids); implies --type selective.
        #[arg(long, value_delimiter = ',')]
        accounts: Option<Vec<String>>,
        /// Only transactions from this date (ms since the epoch, or YYYY-MM-DD); implies --type
        /// selective.
        #[arg(long)]
        from: Option<String>,
        /// Only transactions up to this date (ms, or YYYY-MM-DD: the whole day); implies --type
        /// selective.
        #[arg(long)]
        to: Option<String>,
        /// Only these categories and their transactions (comma-separated ids); implies --type
        /// selective.
        #[arg(long, value_delimiter = ',')]
        categories: Option<Vec<String>>,
    },
    /// Import a package into a live profile, merging by a strategy (all or nothing).
    #[command(after_help = IMPORT_HELP)]
    Import {
        /// The package to import.
        file: PathBuf,
        /// The user whose profile receives the package.
        #[arg(long)]
        user: String,
        /// What to do with entities whose id the profile already has.
        #[arg(long = "merge", default_value = "fail_on_conflict", value_parser = ["fail_on_conflict", "overwrite", "skip_existing"])]
        merge_strategy: String,
        /// Report what would be created, updated, skipped and conflicting; write nothing.
        #[arg(long)]
        dry_run: bool,
    },
    /// Show a profile's analytics (monthly cash flow per account, category totals per month).
    #[command(after_help = ANALYTICS_HELP)]
    Analytics {
        /// The user whose analytics are shown.
        #[arg(long)]
        user: String,
        /// Recompute them from the transactions first.
        #[arg(long)]
        recompute: bool,
    },
    /// Restore a package into an empty profile (all or nothing).
    #[command(after_help = RESTORE_HELP)]
    Restore {
        /// The package to restore.
        file: PathBuf,
        /// The user whose empty profile receives the package.
        #[arg(long)]
        user: String,
        /// Validate the package and the target profile, write nothing.
        #[arg(long)]
        validate_only: bool,
    },
    /// Check a package completely: exit 0 when valid, 3 when not, saying why.
    #[command(after_help = VERIFY_HELP)]
    Verify {
        /// The package to check.
        file: PathBuf,
    },
    /// Show what a package holds: manifest, counts, date range, files with SHA-256.
    #[command(after_help = INSPECT_HELP)]
    Inspect {
        /// The package to look into.
        file: PathBuf,
    },
    /// Compare the profiles two packages hold: exit 0 when the same, 1 otherwise.
    #[command(after_help = DIFF_HELP)]
    Diff {
        /// The first package.
        a: PathBuf,
        /// The second package.
        b: PathBuf,
        /// Also compare keys HouseF3's exporter derives at export time.
        #[arg(long)]
        strict: bool,
    },
    /// Look at or clear a profile.
    #[command(after_help = PROFILE_HELP)]
    Profile {
        #[command(subcommand)]
        command: ProfileCommand,
    },
    /// Delete statement-file blobs no profile refers to (left by killed restores).
    #[command(after_help = GC_HELP)]
    Gc {
        /// Keep unreferenced blobs younger than this, in case a restore is still writing them.
        #[arg(long, default_value_t = 24)]
        min_age_hours: u64,
    },
    /// Apply pending database migrations.
    #[command(after_help = MIGRATE_HELP)]
    Migrate,
    /// Run the HTTP service: the FZIP API, background jobs, signed URLs, metrics.
    #[command(after_help = SERVE_HELP)]
    Serve(ServeArgs),
    /// Benchmark: build demo profiles and time backup, verify, restore, import and diff (median
    /// of several runs, peak memory of each); prints a table and writes JSON.
    #[command(after_help = BENCH_HELP)]
    Bench(BenchArgs),
    /// Print a bearer token for a user (embedded HS256 mode), and nothing else.
    #[command(after_help = TOKEN_HELP)]
    Token {
        /// The user the token speaks for (its `sub`).
        #[arg(long)]
        user: String,
        /// How long the token is valid, in hours.
        #[arg(long, default_value_t = 24)]
        ttl_hours: u64,
    },
    /// Show the audit trail: who did what, when, with what outcome.
    #[command(after_help = AUDIT_HELP)]
    Audit {
        /// One user's records (all users when absent).
        #[arg(long)]
        user: Option<String>,
        /// Most records shown, newest first.
        #[arg(long, default_value_t = 100)]
        limit: u64,
    },
}

/// `fzip serve`.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Address to listen on.
    #[arg(long, env = "FZIP_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: std::net::SocketAddr,
    /// The address clients reach the server at, for signed URLs (https://fzip.example.com).
    /// Without it or --allowed-host, links use the listen address, and only a loopback address
    /// may be listened on.
    #[arg(long, env = "FZIP_PUBLIC_URL")]
    pub public_url: Option<String>,
    /// A Host name links may be built from (HOST[:PORT], or https://HOST[:PORT]); repeatable.
    /// A request naming another host gets links to the first.
    #[arg(
        long = "allowed-host",
        env = "FZIP_ALLOWED_HOSTS",
        value_delimiter = ','
    )]
    pub allowed_hosts: Vec<String>,
    /// Serve HTTPS with this certificate chain (PEM); needs --tls-key.
    #[arg(long, env = "FZIP_TLS_CERT", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// The private key of --tls-cert (PEM).
    #[arg(long, env = "FZIP_TLS_KEY", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// Most connections open at once (lowered to fit the open-file limit); more wait until one
    /// closes.
    #[arg(long, env = "FZIP_MAX_CONNECTIONS", default_value_t = fzip_server::config::DEFAULT_MAX_CONNECTIONS)]
    pub max_connections: usize,
    /// Seconds a client may take to send a request's headers (and the TLS handshake).
    #[arg(long, env = "FZIP_HEADER_TIMEOUT_SECS", default_value_t = fzip_server::config::DEFAULT_HEADER_TIMEOUT_SECS)]
    pub header_timeout_secs: u64,
    /// Seconds a connection may stay open with nothing moving on it.
    #[arg(long, env = "FZIP_IDLE_TIMEOUT_SECS", default_value_t = fzip_server::config::DEFAULT_IDLE_TIMEOUT_SECS)]
    pub idle_timeout_secs: u64,
    /// Jobs run at the same time.
    #[arg(long, env = "FZIP_WORKERS", default_value_t = 2)]
    pub workers: usize,
    /// How long a finished backup stays downloadable, in hours.
    #[arg(long, env = "FZIP_PACKAGE_TTL_HOURS", default_value_t = 168)]
    pub package_ttl_hours: u64,
    /// How long signed download and upload URLs are valid, in seconds.
    #[arg(long, env = "FZIP_URL_TTL_SECS", default_value_t = 3600)]
    pub url_ttl_secs: u64,
    /// Largest package accepted for upload, in bytes.
    #[arg(long, env = "FZIP_MAX_UPLOAD_BYTES", default_value_t = 2 << 30)]
    pub max_upload_bytes: u64,
    /// On shutdown, seconds running jobs get to finish before they are stopped and requeued.
    #[arg(long, env = "FZIP_SHUTDOWN_GRACE_SECS", default_value_t = 20)]
    pub shutdown_grace_secs: u64,
    /// Seconds a worker's claim on a job lasts without a heartbeat.
    #[arg(long, env = "FZIP_LEASE_SECS", default_value_t = 30)]
    pub lease_secs: u64,
    /// How many times a job's work (a backup, a package check, a restore, an import) is started
    /// before the job is failed instead of resumed after crashes.
    #[arg(long, env = "FZIP_MAX_ATTEMPTS", default_value_t = 3)]
    pub max_attempts: u32,
    /// Verify RS256 tokens with the keys at this JWKS URL (Cognito:
    /// https://cognito-idp.REGION.amazonaws.com/POOL/.well-known/jwks.json) instead of the local
    /// HS256 secret.
    #[arg(long, env = "FZIP_JWKS_URL")]
    pub jwks_url: Option<String>,
    /// Required `iss` of RS256 tokens.
    #[arg(long, env = "FZIP_JWT_ISSUER")]
    pub jwt_issuer: Option<String>,
    /// Required audience of RS256 tokens (`aud`, or Cognito's `client_id`).
    #[arg(long, env = "FZIP_JWT_AUDIENCE")]
    pub jwt_audience: Option<String>,
    /// Log lines as `text` or `json`.
    #[arg(long, env = "FZIP_LOG_FORMAT", default_value = "text")]
    pub log_format: String,
    /// Per user: jobs queued or running at once (more get 429 TOO_MANY_JOBS).
    #[arg(long, env = "FZIP_MAX_JOBS_PER_USER", default_value_t = 20)]
    pub max_jobs_per_user: u64,
    /// Per user: restore and import jobs waiting for their upload (429 TOO_MANY_UPLOADS).
    #[arg(long, env = "FZIP_MAX_OPEN_UPLOADS_PER_USER", default_value_t = 10)]
    pub max_open_uploads_per_user: u64,
    /// Per user: uploads streaming into this server at once (429 TOO_MANY_UPLOADS).
    #[arg(
        long,
        env = "FZIP_MAX_CONCURRENT_UPLOADS_PER_USER",
        default_value_t = 2
    )]
    pub max_concurrent_uploads_per_user: usize,
    /// Per user: bytes of packages kept (backups and uploads; 429 STORAGE_LIMIT).
    #[arg(long, env = "FZIP_MAX_STAGED_BYTES_PER_USER", default_value_t = 20 << 30)]
    pub max_staged_bytes_per_user: u64,
    /// Per user: jobs running at once across all servers (default: --workers minus 1, at
    /// least 1, so a worker stays free for other users).
    #[arg(long, env = "FZIP_MAX_RUNNING_PER_USER")]
    pub max_running_per_user: Option<u32>,
    /// Let pages from this origin (`https://app.example.com`) call the API from the browser:
    /// preflights are answered and responses carry CORS headers. Repeat for more origins
    /// (FZIP_CORS_ORIGINS: comma-separated). None by default.
    #[arg(long = "cors-origin", value_name = "ORIGIN", env = "FZIP_CORS_ORIGINS",
          value_delimiter = ',', value_parser = parse_origin)]
    pub cors_origin: Vec<String>,
}

/// An origin as browsers send it: `http(s)://host[:port]`, no path (a trailing `/` is dropped).
fn parse_origin(text: &str) -> Result<String, String> {
    let origin = text.trim().trim_end_matches('/');
    let rest = origin
        .strip_prefix("https://")
        .or_else(|| origin.strip_prefix("http://"))
        .ok_or_else(|| format!("{text:?} is not an origin: write it as https://host[:port]"))?;
    if rest.is_empty()
        || rest.contains(['/', '?', '#', '*', ' '])
        || !rest.chars().all(|c| c.is_ascii_graphic())
    {
        return Err(format!(
            "{text:?} is not an origin: only scheme, host and port, as https://app.example.com:8443"
        ));
    }
    Ok(origin.to_string())
}

#[derive(Debug, Subcommand)]
pub enum ProfileCommand {
    /// Counts of what a profile holds.
    #[command(after_help = SUMMARY_HELP)]
    Summary {
        /// The user whose profile is summarised.
        #[arg(long)]
        user: String,
    },
    /// Delete everything in a profile, statement files included.
    #[command(after_help = CLEAR_HELP)]
    Clear {
        /// The user whose profile is cleared.
        #[arg(long)]
        user: String,
        /// Confirm the deletion.
        #[arg(long)]
        yes: bool,
    },
}

#[derive(Debug, Args)]
pub struct BenchArgs {
    /// Profile sizes, in transactions.
    #[arg(long, value_delimiter = ',', default_values_t = [10_000u64, 100_000, 1_000_000])]
    pub sizes: Vec<u64>,
    /// Statement files per profile (default: 200 per million transactions, at least 1).
    #[arg(long, default_value_t = 0)]
    pub files: u64,
    /// Runs of each phase (the median is reported).
    #[arg(long, default_value_t = 3)]
    pub runs: usize,
    /// Where to build profiles and packages (default: a temporary folder, removed afterwards).
    #[arg(long)]
    pub dir: Option<PathBuf>,
    /// Where to write the JSON results.
    #[arg(long, default_value = "bench.json")]
    pub json_out: PathBuf,
    /// Keep the profiles and packages.
    #[arg(long)]
    pub keep_profiles: bool,
}
