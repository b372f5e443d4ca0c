//! The command line, as others script against it.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

/// FZIP backup, restore, export and import for personal-finance profiles.
///
/// Exit codes: 0 success, 1 error or differences, 2 usage, 3 invalid package, 4 profile not
/// empty.
#[derive(Debug, Parser)]
#[command(name = "fzip", version, propagate_version = true)]
pub struct Cli {
    /// Where the embedded store keeps its database and blobs.
    #[arg(
        long,
        global = true,
        env = "FZIP_DATA_DIR",
        default_value = "fzip-data"
    )]
    pub data_dir: PathBuf,

    /// The database: `sqlite://PATH/fzip.db` (jobs in `jobs.db` beside it) or
    /// `postgres://USER[:PASSWORD]@HOST[:PORT]/DATABASE[?schema=NAME]`. Default: SQLite in the
    /// data directory.
    #[arg(long, global = true, env = "FZIP_DATABASE_URL", value_name = "URL")]
    pub database_url: Option<String>,

    /// Blob storage for statement files and packages: `file:///PATH` or
    /// `s3://BUCKET[/PREFIX]` (endpoint, region and credentials from the AWS environment
    /// variables). Default: the `blobs` folder in the data directory.
    #[arg(long, global = true, env = "FZIP_BLOB_STORE", value_name = "URL")]
    pub blob_store: Option<String>,

    /// Longest wait, in seconds, for one blob storage operation (one request with its retries,
    /// or one step of a streaming read or write) before it fails: a store that stops answering
    /// fails the job instead of holding it.
    #[arg(
        long,
        global = true,
        env = "FZIP_BLOB_TIMEOUT_SECS",
        default_value_t = 60,
        value_name = "SECS"
    )]
    pub blob_timeout_secs: u64,

    /// Print one JSON document instead of text (and no progress bars).
    #[arg(long, global = true)]
    pub json: bool,

    /// No progress bars.
    #[arg(long, short, global = true)]
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
    #[arg(long, global = true, env = "FZIP_MAX_ENTRY_SIZE", value_name = "BYTES")]
    pub max_entry_size: Option<u64>,
    /// Largest uncompressed total accepted in a package, in bytes.
    #[arg(long, global = true, env = "FZIP_MAX_TOTAL_SIZE", value_name = "BYTES")]
    pub max_total_size: Option<u64>,
    /// Most entries accepted in a package.
    #[arg(long, global = true, env = "FZIP_MAX_ENTRIES", value_name = "N")]
    pub max_entries: Option<usize>,
    /// Highest compression ratio accepted for an entry over 1 MiB (zip bombs reach 1000).
    #[arg(long, global = true, env = "FZIP_MAX_RATIO", value_name = "N")]
    pub max_ratio: Option<u64>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Fill an empty profile with realistic, deterministic demo data.
    DemoProfile {
        #[arg(long)]
        user: String,
        #[arg(long, default_value_t = 2_000)]
        transactions: u64,
        /// Statement files (the transactions are spread over them).
        #[arg(long, default_value_t = 10)]
        files: u64,
        #[arg(long, default_value_t = 1)]
        seed: u64,
    },
    /// Back up a profile into a package.
    Backup {
        #[arg(long)]
        user: String,
        /// The package to write (written to FILE.partial, renamed when complete).
        #[arg(short, long, value_name = "FILE")]
        output: PathBuf,
        #[arg(long)]
        description: Option<String>,
        /// Include analytics records.
        #[arg(long)]
        include_analytics: bool,
        /// Finish even when a statement file cannot be read (it is named in the manifest).
        #[arg(long)]
        continue_on_missing_files: bool,
        /// DEFLATE level 0–9 (5 by default: 1.5x faster than 6 for packages 2% larger).
        #[arg(long, default_value_t = fzip_format::DEFAULT_COMPRESSION_LEVEL, value_parser = clap::value_parser!(i64).range(0..=9))]
        compression_level: i64,
        /// Overwrite FILE if it exists.
        #[arg(long)]
        force: bool,
        /// What to back up: complete, accounts_only, transactions_only, categories_only,
        /// selective.
        #[arg(long = "type", default_value = "complete", value_parser = ["complete", "accounts_only", "transactions_only", "categories_only", "selective"])]
        backup_type: String,
        /// Only these accounts (comma-separated ids).
        #[arg(long, value_delimiter = ',')]
        accounts: Option<Vec<String>>,
        /// Only transactions from this date (ms since the epoch, or YYYY-MM-DD).
        #[arg(long)]
        from: Option<String>,
        /// Only transactions up to this date (ms, or YYYY-MM-DD: the whole day).
        #[arg(long)]
        to: Option<String>,
        /// Only these categories and their transactions (comma-separated ids).
        #[arg(long, value_delimiter = ',')]
        categories: Option<Vec<String>>,
    },
    /// Import a package into a live profile, merging by a strategy (all or nothing).
    Import {
        file: PathBuf,
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
    Analytics {
        #[arg(long)]
        user: String,
        /// Recompute them from the transactions first.
        #[arg(long)]
        recompute: bool,
    },
    /// Restore a package into an empty profile (all or nothing).
    Restore {
        file: PathBuf,
        #[arg(long)]
        user: String,
        /// Validate the package and the target profile, write nothing.
        #[arg(long)]
        validate_only: bool,
    },
    /// Check a package completely: exit 0 when valid, 3 when not, saying why.
    Verify { file: PathBuf },
    /// Show what a package holds: manifest, counts, date range, files with SHA-256.
    Inspect { file: PathBuf },
    /// Compare the profiles two packages hold: exit 0 when the same, 1 otherwise.
    Diff {
        a: PathBuf,
        b: PathBuf,
        /// Also compare keys HouseF3's exporter derives at export time.
        #[arg(long)]
        strict: bool,
    },
    /// Look at or clear a profile.
    Profile {
        #[command(subcommand)]
        command: ProfileCommand,
    },
    /// Delete statement-file blobs no profile refers to (left by killed restores).
    Gc {
        /// Keep unreferenced blobs younger than this, in case a restore is still writing them.
        #[arg(long, default_value_t = 24)]
        min_age_hours: u64,
    },
    /// Apply pending database migrations.
    Migrate,
    /// Run the HTTP service: the FZIP API, background jobs, signed URLs, metrics.
    Serve(ServeArgs),
    /// Benchmark: build demo profiles and time backup, verify, restore, import and diff (median
    /// of several runs, peak memory of each); prints a table and writes JSON.
    Bench(BenchArgs),
    /// Print a bearer token for a user (embedded HS256 mode), and nothing else.
    Token {
        #[arg(long)]
        user: String,
        /// How long the token is valid.
        #[arg(long, default_value_t = 24)]
        ttl_hours: u64,
    },
    /// Show the audit trail: who did what, when, with what outcome.
    Audit {
        /// One user's records (all users when absent).
        #[arg(long)]
        user: Option<String>,
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
    /// The address clients reach the server at, for signed URLs (default: each request's Host).
    #[arg(long, env = "FZIP_PUBLIC_URL")]
    pub public_url: Option<String>,
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
}

#[derive(Debug, Subcommand)]
pub enum ProfileCommand {
    /// Counts of what a profile holds.
    Summary {
        #[arg(long)]
        user: String,
    },
    /// Delete everything in a profile, statement files included.
    Clear {
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
