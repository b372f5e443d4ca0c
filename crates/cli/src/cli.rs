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
        /// DEFLATE level 0–9.
        #[arg(long, default_value_t = 6, value_parser = clap::value_parser!(i64).range(0..=9))]
        compression_level: i64,
        /// Overwrite FILE if it exists.
        #[arg(long)]
        force: bool,
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
