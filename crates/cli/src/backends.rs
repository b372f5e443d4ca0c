//! Which database and which blob storage: the embedded default (SQLite files and a blob folder
//! under the data directory), or what `--database-url` / `--blob-store` name.

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, anyhow, bail};
use fzip_store::jobs::JobStore;
use fzip_store::{BlobStore, ProfileStore};
use fzip_store_postgres::{PgJobStore, PgStore};
use fzip_store_sqlite::{SqliteJobStore, SqliteStore};

use crate::cli::Cli;

/// Whether a command may create the store it opens. Only `serve`, `migrate`, `demo-profile`,
/// `restore` and `import` create one; every other command on a missing store fails, so a
/// mistyped `--data-dir` is never backed up as an empty profile.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Open {
    Create,
    Existing,
}

/// There is no store where the options point (`STORE_NOT_FOUND`).
#[derive(Debug)]
pub struct MissingStore(pub String);

impl std::fmt::Display for MissingStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for MissingStore {}

/// A database location.
pub enum Database {
    /// SQLite: the profile database file; the job database is `jobs.db` beside it.
    Sqlite { profiles: PathBuf, jobs: PathBuf },
    /// PostgreSQL: profiles and jobs in one database (or schema).
    Postgres { url: String },
}

impl Database {
    pub fn from_cli(cli: &Cli) -> anyhow::Result<Database> {
        match cli.database_url.as_deref() {
            None => Ok(Database::sqlite(&cli.data_dir.join("fzip.db"))),
            Some(url) if url.starts_with("postgres://") || url.starts_with("postgresql://") => {
                Ok(Database::Postgres {
                    url: url.to_string(),
                })
            }
            Some(url) => match url.strip_prefix("sqlite://") {
                Some(path) if !path.is_empty() => Ok(Database::sqlite(Path::new(path))),
                _ => bail!(
                    "--database-url {url:?} is neither sqlite://PATH/fzip.db nor postgres://USER@HOST/DATABASE"
                ),
            },
        }
    }

    fn sqlite(profiles: &Path) -> Database {
        let jobs = profiles
            .parent()
            .map_or_else(|| PathBuf::from("jobs.db"), |dir| dir.join("jobs.db"));
        Database::Sqlite {
            profiles: profiles.to_path_buf(),
            jobs,
        }
    }

    pub fn describe(&self) -> String {
        match self {
            Database::Sqlite { profiles, .. } => format!("sqlite://{}", profiles.display()),
            Database::Postgres { url } => fzip_store_postgres::PgTarget::parse(url)
                .map(|t| t.describe().to_string())
                .unwrap_or_else(|_| "postgres://…".into()),
        }
    }

    /// The profile store; with [`Open::Existing`] only one that is there already. (A
    /// PostgreSQL database without fzip's tables is refused either way: `fzip migrate` makes
    /// them.)
    pub fn profile_store(&self, open: Open) -> anyhow::Result<Arc<dyn ProfileStore>> {
        let cannot = |profiles: &Path| format!("cannot open the database {}", profiles.display());
        Ok(match self {
            Database::Sqlite { profiles, .. } if open == Open::Existing => {
                match SqliteStore::open_existing(profiles).with_context(|| cannot(profiles))? {
                    Some(store) => Arc::new(store),
                    None => return Err(missing_store(profiles).into()),
                }
            }
            Database::Sqlite { profiles, .. } => {
                ensure_parent(profiles)?;
                Arc::new(SqliteStore::open(profiles).with_context(|| cannot(profiles))?)
            }
            Database::Postgres { url } => Arc::new(
                PgStore::open(url)
                    .with_context(|| format!("cannot open the database {}", self.describe()))?,
            ),
        })
    }

    pub fn job_store(&self) -> anyhow::Result<Arc<dyn JobStore>> {
        Ok(match self {
            Database::Sqlite { jobs, .. } => {
                ensure_parent(jobs)?;
                Arc::new(
                    SqliteJobStore::open(jobs).with_context(|| {
                        format!("cannot open the job database {}", jobs.display())
                    })?,
                )
            }
            Database::Postgres { url } => Arc::new(
                PgJobStore::open(url)
                    .with_context(|| format!("cannot open the database {}", self.describe()))?,
            ),
        })
    }

    /// Applies pending schema migrations; returns what was applied.
    pub fn migrate(&self) -> anyhow::Result<Vec<String>> {
        match self {
            Database::Sqlite { profiles, jobs } => {
                ensure_parent(profiles)?;
                let mut applied = SqliteStore::migrate(profiles)
                    .with_context(|| format!("migrating {}", profiles.display()))?;
                applied.extend(
                    SqliteJobStore::migrate(jobs)
                        .with_context(|| format!("migrating {}", jobs.display()))?,
                );
                Ok(applied)
            }
            Database::Postgres { url } => fzip_store_postgres::migrate(url)
                .with_context(|| format!("migrating {}", self.describe())),
        }
    }
}

fn missing_store(profiles: &Path) -> MissingStore {
    let dir = profiles
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let what = if dir.is_dir() {
        format!("{} holds no fzip database", dir.display())
    } else {
        format!("{} does not exist", dir.display())
    };
    MissingStore(format!(
        "no fzip store at {} ({what}); nothing was created. Check --data-dir (FZIP_DATA_DIR) or \
         --database-url, or create the store: `fzip restore FILE --user U`, `fzip import FILE \
         --user U`, `fzip demo-profile --user U` and `fzip serve` create one, `fzip migrate` an \
         empty one",
        profiles.display()
    ))
}

fn ensure_parent(path: &Path) -> anyhow::Result<()> {
    if let Some(dir) = path.parent()
        && !dir.as_os_str().is_empty()
    {
        fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    Ok(())
}

/// The blob storage `--blob-store` names: `file:///path`, `s3://bucket[/prefix]`, or by default
/// the `blobs` folder in the data directory.
pub fn blob_store(cli: &Cli) -> anyhow::Result<BlobStore> {
    let spec = cli.blob_store.as_deref();
    let timeout = std::time::Duration::from_secs(cli.blob_timeout_secs.max(1));
    match spec {
        None => {
            let dir = cli.data_dir.join("blobs");
            BlobStore::local(&dir)
                .map(|b| b.with_timeout(timeout))
                .with_context(|| format!("cannot open blob storage in {}", dir.display()))
        }
        Some(s) if s.starts_with("s3://") => {
            let rest = &s["s3://".len()..];
            let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
            if bucket.is_empty() {
                bail!("--blob-store {s:?} names no bucket (s3://BUCKET[/PREFIX])");
            }
            let options = fzip_store::S3Options {
                bucket: bucket.to_string(),
                prefix: prefix.trim_matches('/').to_string(),
                ..Default::default()
            };
            BlobStore::s3_with_timeout(&options, timeout)
                .with_context(|| format!("cannot open blob storage {s}"))
        }
        Some(s) => match s.strip_prefix("file://") {
            Some(path) if !path.is_empty() => BlobStore::local(Path::new(path))
                .map(|b| b.with_timeout(timeout))
                .with_context(|| format!("cannot open blob storage in {path}")),
            _ => Err(anyhow!(
                "--blob-store {s:?} is neither file:///PATH nor s3://BUCKET[/PREFIX]"
            )),
        },
    }
}
