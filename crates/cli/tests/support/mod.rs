//! What the tests that drive real `fzip` processes share: a data directory on the embedded
//! store or on PostgreSQL + S3, the CLI run on it, and `fzip serve` processes whose log is kept.
// Each test binary uses its own part of this module.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use serde_json::Value;

pub const FZIP: &str = env!("CARGO_BIN_EXE_fzip");

/// A data directory, the database and blob storage, and the servers started on them.
pub struct Env {
    dir: tempfile::TempDir,
    /// Environment of every `fzip` this test runs (which database, which blob storage).
    pub vars: Vec<(String, String)>,
    /// Where the blob storage keeps its objects on disk (a folder, or the S3 server's).
    blob_root: PathBuf,
    /// The S3 endpoint, on PostgreSQL + S3.
    pub s3: Option<String>,
    _guards: Vec<Box<dyn std::any::Any>>,
}

impl Env {
    /// The embedded default: SQLite and a blob folder in the data directory.
    pub fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let blob_root = dir.path().join("data").join("blobs");
        Env {
            dir,
            vars: Vec::new(),
            blob_root,
            s3: None,
            _guards: Vec::new(),
        }
    }

    /// PostgreSQL (a schema of its own, migrated) and S3 (a server of its own, checking
    /// signatures), blobs under `prefix`; `None` when PostgreSQL is missing and
    /// `FZIP_SKIP_POSTGRES=1`.
    pub fn postgres_s3(prefix: &str) -> Option<Self> {
        let schema = fzip_store_postgres::testing::TestSchema::create().unwrap()?;
        let s3 = fzip_test_s3::S3Server::start("fzip").unwrap();
        let mut vars = vec![
            ("FZIP_DATABASE_URL".to_string(), schema.url.clone()),
            ("FZIP_BLOB_STORE".to_string(), format!("s3://fzip/{prefix}")),
        ];
        vars.extend(s3.env());
        let blob_root = s3.object_path(prefix);
        Some(Env {
            dir: tempfile::tempdir().unwrap(),
            vars,
            blob_root,
            s3: Some(s3.endpoint()),
            _guards: vec![Box::new(schema), Box::new(s3)],
        })
    }

    pub fn blobs(&self) -> &Path {
        &self.blob_root
    }

    pub fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Runs the CLI on this data directory and returns (exit code, stdout and stderr).
    pub fn cli(&self, args: &[&str]) -> (i32, String) {
        let out = Command::new(FZIP)
            .env("FZIP_DATA_DIR", self.data())
            .envs(self.vars.iter().cloned())
            .args(args)
            .output()
            .unwrap();
        (
            out.status.code().unwrap_or(-1),
            format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ),
        )
    }

    pub fn cli_ok(&self, args: &[&str]) -> String {
        let (code, out) = self.cli(args);
        assert_eq!(code, 0, "fzip {args:?}: {out}");
        out
    }

    pub fn token(&self, user: &str) -> String {
        self.cli_ok(&["token", "--user", user]).trim().to_string()
    }

    pub fn summary(&self, user: &str) -> Value {
        serde_json::from_str(&self.cli_ok(&["--json", "profile", "summary", "--user", user]))
            .unwrap()
    }

    /// `fzip serve --listen LISTEN ARGS…` on `data` with extra environment `vars`; returns once
    /// it listens.
    pub fn serve_on(
        &self,
        listen: &str,
        args: &[&str],
        vars: &[(&str, &str)],
        data: &Path,
    ) -> Server {
        let mut child = Command::new(FZIP)
            .env("FZIP_DATA_DIR", data)
            .envs(self.vars.iter().cloned())
            .envs(vars.iter().map(|(k, v)| (k.to_string(), v.to_string())))
            .env("FZIP_LOG", "info")
            .args(["serve", "--listen", listen, "--shutdown-grace-secs", "2"])
            .args(args)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stderr = child.stderr.take().unwrap();
        let mut lines = BufReader::new(stderr).lines();
        let base = loop {
            let line = lines
                .next()
                .expect("the server exited before listening")
                .unwrap();
            if let Some(rest) = line.split("fzip listening on ").nth(1) {
                break rest.split_whitespace().next().unwrap().to_string();
            }
        };
        // Keep draining the log so the server never blocks on a full pipe.
        let log = Arc::new(Mutex::new(String::new()));
        let sink = log.clone();
        let drain = std::thread::spawn(move || {
            for line in lines.map_while(Result::ok) {
                let mut l = sink.lock().unwrap();
                l.push_str(&line);
                l.push('\n');
            }
        });
        Server {
            child,
            base,
            log,
            drain: Some(drain),
        }
    }
}

/// A running `fzip serve`, killed when dropped.
pub struct Server {
    pub child: Child,
    pub base: String,
    /// Everything it logged so far.
    pub log: Arc<Mutex<String>>,
    drain: Option<JoinHandle<()>>,
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop();
    }
}

impl Server {
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// `host:port`.
    pub fn addr(&self) -> String {
        self.base.trim_start_matches("http://").to_string()
    }

    /// Kills the server and waits for the last line of its log.
    pub fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        // The pipe is closed now: wait for the drain to read what was left in it.
        if let Some(drain) = self.drain.take() {
            let _ = drain.join();
        }
    }

    /// Kills the server and returns everything it logged, up to its last line.
    pub fn kill(mut self) -> String {
        self.stop();
        self.log.lock().unwrap().clone()
    }
}
