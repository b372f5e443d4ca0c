//! The command line's own conventions: a missing store is an error (never an empty profile
//! made up on the spot), contradictory selections are refused, `--json` means one JSON document
//! whatever happens, Ctrl-C exits 130 after a clean cancel, a closed stdout is no panic, every
//! command's help is complete, and what the CLI changes — and what the service refuses — is in
//! the audit trail.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use serde_json::Value;

use support::{Env, FZIP};

/// `fzip` with `FZIP_DATA_DIR` set to `data` and no token secret in the environment.
fn fzip(data: &Path, args: &[&str]) -> Command {
    let mut c = Command::new(FZIP);
    c.env("FZIP_DATA_DIR", data)
        .env_remove("FZIP_LOG")
        .env_remove("FZIP_JWT_SECRET")
        .env_remove("FZIP_DATABASE_URL")
        .env_remove("FZIP_BLOB_STORE")
        .args(args);
    c
}

fn run(data: &Path, args: &[&str]) -> Output {
    fzip(data, args).output().unwrap()
}

fn describe(args: &[&str], out: &Output) -> String {
    format!(
        "fzip {args:?} exited with {:?}\nstdout: {}\nstderr: {}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn expect(data: &Path, code: i32, args: &[&str]) -> Output {
    let out = run(data, args);
    assert_eq!(out.status.code(), Some(code), "{}", describe(args, &out));
    out
}

/// The whole of stdout as exactly one JSON document (trailing text would fail to parse).
fn one_document(args: &[&str], out: &Output) -> Value {
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("not one JSON document ({e}): {}", describe(args, out)))
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// A data directory with a demo profile for `alice` and a package of it.
struct Demo {
    dir: tempfile::TempDir,
}

impl Demo {
    fn new(transactions: &str) -> Demo {
        let dir = tempfile::tempdir().unwrap();
        let demo = Demo { dir };
        let data = demo.data();
        expect(
            &data,
            0,
            &[
                "demo-profile",
                "--user",
                "alice",
                "--transactions",
                transactions,
                "--files",
                "2",
            ],
        );
        demo
    }

    fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn backup(&self, user: &str, name: &str) -> PathBuf {
        let file = self.path(name);
        expect(&self.data(), 0, &["backup", "--user", user, "-o", s(&file)]);
        file
    }

    fn summary(&self, user: &str) -> Value {
        let args = ["--json", "profile", "summary", "--user", user];
        let out = expect(&self.data(), 0, &args);
        one_document(&args, &out)
    }
}

// ---------------------------------------------------------------------------------------------
// A missing store is an error
// ---------------------------------------------------------------------------------------------

#[test]
fn commands_on_a_missing_store_fail_and_create_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let missing = tmp.path().join("missing").join("dir");
    let package = tmp.path().join("out.fzip");
    let commands: Vec<Vec<&str>> = vec![
        vec!["backup", "--user", "alice", "-o", s(&package)],
        vec!["profile", "summary", "--user", "alice"],
        vec!["profile", "clear", "--user", "alice", "--yes"],
        vec!["analytics", "--user", "alice"],
        vec!["analytics", "--user", "alice", "--recompute"],
        vec!["audit"],
        vec!["gc"],
    ];
    for args in &commands {
        let out = expect(&missing, 1, args);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains(s(&missing.join("fzip.db"))) && err.contains("fzip restore"),
            "the message names the path looked at and how to create a store: {err}"
        );
        let mut json = vec!["--json"];
        json.extend_from_slice(args);
        let out = expect(&missing, 1, &json);
        let doc = one_document(&json, &out);
        assert_eq!(doc["error"], "STORE_NOT_FOUND", "{doc}");
        assert!(
            !tmp.path().join("missing").exists(),
            "fzip {args:?} created the folder"
        );
        assert!(!package.exists() && !tmp.path().join("out.fzip.partial").exists());
    }

    // An existing but empty folder is no store either.
    std::fs::create_dir_all(&missing).unwrap();
    for args in &commands {
        expect(&missing, 1, args);
    }
    assert_eq!(
        std::fs::read_dir(&missing).unwrap().count(),
        0,
        "nothing was created"
    );

    // The commands that create a store still do.
    expect(
        &missing,
        0,
        &[
            "demo-profile",
            "--user",
            "alice",
            "--transactions",
            "10",
            "--files",
            "1",
        ],
    );
    expect(
        &missing,
        0,
        &["backup", "--user", "alice", "-o", s(&package)],
    );
    let other = tmp.path().join("other");
    expect(&other, 0, &["restore", s(&package), "--user", "bob"]);
    let third = tmp.path().join("third");
    expect(&third, 0, &["import", s(&package), "--user", "carol"]);
}

#[test]
fn token_never_writes_a_secret() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let out = expect(&data, 1, &["token", "--user", "alice"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(s(&data.join("jwt-secret"))) && err.contains("fzip serve"),
        "{err}"
    );
    assert!(out.stdout.is_empty(), "no token is printed");
    assert!(!data.exists(), "no secret, no folder was made");
    let args = ["--json", "token", "--user", "alice"];
    let doc = one_document(&args, &expect(&data, 1, &args));
    assert_eq!(doc["error"], "NO_TOKEN_SECRET");
    assert!(!data.exists());

    // With the server's secret (from the environment, or the file `serve` makes) it signs.
    let out = fzip(&data, &args)
        .env("FZIP_JWT_SECRET", "0123456789abcdef0123456789abcdef")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", describe(&args, &out));
    let doc = one_document(&args, &out);
    assert_eq!(doc["userId"], "alice");
    assert_eq!(doc["token"].as_str().unwrap().split('.').count(), 3);
    assert!(doc["expiresAt"].as_i64().unwrap() > 0);
    assert!(!data.exists());
    std::fs::create_dir_all(&data).unwrap();
    std::fs::write(data.join("jwt-secret"), "fedcba9876543210fedcba9876543210").unwrap();
    let out = expect(&data, 0, &["token", "--user", "alice"]);
    assert_eq!(
        String::from_utf8_lossy(&out.stdout)
            .trim()
            .split('.')
            .count(),
        3
    );
}

#[test]
fn postgres_without_fzip_tables_is_a_missing_store() {
    let Some(schema) = fzip_store_postgres::testing::TestSchema::create().unwrap() else {
        return; // FZIP_SKIP_POSTGRES=1: said so loudly by the helper
    };
    // A schema of the same database that nobody migrated.
    let bare = schema.url.replace(
        &format!("schema={}", schema.name),
        &format!("schema={}_bare", schema.name),
    );
    assert_ne!(bare, schema.url);
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    for args in [
        vec!["profile", "summary", "--user", "alice"],
        vec!["audit"],
        vec![
            "backup",
            "--user",
            "alice",
            "-o",
            s(&tmp.path().join("a.fzip")),
        ],
    ] {
        let out = fzip(&data, &args)
            .env("FZIP_DATABASE_URL", &bare)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(1), "{}", describe(&args, &out));
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("fzip migrate"), "{err}");
    }
    assert!(!data.exists());
}

// ---------------------------------------------------------------------------------------------
// Selections that contradict themselves
// ---------------------------------------------------------------------------------------------

#[test]
fn contradictory_selections_are_usage_errors_and_filters_imply_selective() {
    let demo = Demo::new("200");
    let data = demo.data();
    let out_file = demo.path("sel.fzip");
    let o = s(&out_file);
    for args in [
        vec![
            "backup",
            "--user",
            "alice",
            "-o",
            o,
            "--from",
            "2024-02-01",
            "--to",
            "2024-01-31",
        ],
        vec![
            "backup",
            "--user",
            "alice",
            "-o",
            o,
            "--from",
            "1700000000001",
            "--to",
            "1700000000000",
        ],
        vec![
            "backup",
            "--user",
            "alice",
            "-o",
            o,
            "--type",
            "complete",
            "--from",
            "2024-01-01",
        ],
        vec![
            "backup",
            "--user",
            "alice",
            "-o",
            o,
            "--type",
            "accounts_only",
            "--accounts",
            "a1",
        ],
        vec![
            "backup",
            "--user",
            "alice",
            "-o",
            o,
            "--type",
            "transactions_only",
            "--to",
            "2024-01-01",
        ],
    ] {
        let out = expect(&data, 2, &args);
        assert!(
            String::from_utf8_lossy(&out.stderr).contains("--"),
            "{}",
            describe(&args, &out)
        );
        let mut json = vec!["--json"];
        json.extend_from_slice(&args);
        let doc = one_document(&json, &expect(&data, 2, &json));
        assert_eq!(doc["error"], "USAGE");
        assert!(!out_file.exists());
    }
    // One day (from = to) is a range, and a filter alone makes the backup selective.
    let args = [
        "--json",
        "backup",
        "--user",
        "alice",
        "-o",
        o,
        "--from",
        "2024-01-01",
        "--to",
        "2024-01-01",
    ];
    let doc = one_document(&args, &expect(&data, 0, &args));
    assert_eq!(doc["selection"]["backupType"], "selective", "{doc}");
    let args = ["--json", "inspect", o];
    let doc = one_document(&args, &expect(&data, 0, &args));
    assert_eq!(doc["manifest"]["selection"]["backupType"], "selective");
}

// ---------------------------------------------------------------------------------------------
// --json everywhere
// ---------------------------------------------------------------------------------------------

#[test]
fn json_usage_errors_are_one_document() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    for args in [
        vec!["--json", "backup"],
        vec!["--json", "no-such-command"],
        vec!["backup", "--json", "--user"],
        vec![
            "--json",
            "backup",
            "--user",
            "a",
            "-o",
            "x.fzip",
            "--compression-level",
            "12",
        ],
        vec![
            "--json",
            "backup",
            "--user",
            "a",
            "-o",
            "x.fzip",
            "--type",
            "everything",
        ],
        vec!["--json", "profile"],
        vec!["--json"],
    ] {
        let out = expect(&data, 2, &args);
        let doc = one_document(&args, &out);
        assert_eq!(doc["error"], "USAGE", "{doc}");
        assert!(!doc["message"].as_str().unwrap().is_empty());
    }
    // Help and version are successes, and with --json a document too.
    for (args, key) in [
        (vec!["--json", "--help"], "help"),
        (vec!["--json", "backup", "--help"], "help"),
        (vec!["--json", "--version"], "version"),
    ] {
        let out = expect(&data, 0, &args);
        let doc = one_document(&args, &out);
        assert!(doc[key].as_str().unwrap().contains("fzip"), "{doc}");
    }
    // Without --json, clap's own words on stderr.
    let out = expect(&data, 2, &["backup"]);
    assert!(out.stdout.is_empty());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--user"));
    assert!(!data.exists());
}

#[test]
fn bench_with_json_prints_one_document() {
    let tmp = tempfile::tempdir().unwrap();
    let json_out = tmp.path().join("bench.json");
    let work = tmp.path().join("work");
    let args = [
        "--json",
        "bench",
        "--sizes",
        "50",
        "--files",
        "1",
        "--runs",
        "1",
        "--dir",
        s(&work),
        "--json-out",
        s(&json_out),
    ];
    let out = expect(&tmp.path().join("data"), 0, &args);
    let doc = one_document(&args, &out);
    assert_eq!(doc["sizes"][0]["transactions"], 50, "{doc}");
    let written: Value = serde_json::from_slice(&std::fs::read(&json_out).unwrap()).unwrap();
    assert_eq!(written, doc);
}

// ---------------------------------------------------------------------------------------------
// Ctrl-C, a closed stdout, help
// ---------------------------------------------------------------------------------------------

#[test]
fn ctrl_c_during_a_restore_exits_130_and_changes_nothing() {
    let demo = Demo::new("60000");
    let package = demo.backup("alice", "alice.fzip");
    let data = demo.data();
    let mut child = fzip(&data, &["restore", s(&package), "--user", "bob"])
        .env("FZIP_LOG", "fzip::progress=debug")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut log = BufReader::new(child.stderr.take().unwrap()).lines();
    // The restore is writing rows once it reports this phase (validation is over).
    let mut seen = String::new();
    for line in log.by_ref() {
        let line = line.unwrap();
        seen.push_str(&line);
        seen.push('\n');
        if line.contains("restoring_transactions") {
            break;
        }
    }
    assert!(
        seen.contains("restoring_transactions"),
        "no restore phase: {seen}"
    );
    let status = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let rest: Vec<String> = log.map_while(Result::ok).collect();
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(130), "log: {seen}{}", rest.join("\n"));
    let message = rest.join("\n");
    assert!(
        message.contains("Ctrl-C") && message.contains("nothing was changed"),
        "{message}"
    );
    assert!(!message.contains("panicked"));
    assert_eq!(
        demo.summary("bob")["empty"],
        true,
        "the restore was rolled back"
    );
    // The interrupted restore is in the audit trail.
    let args = ["--json", "audit", "--user", "bob"];
    let doc = one_document(&args, &expect(&data, 0, &args));
    assert_eq!(doc["records"][0]["action"], "restore.restore");
    assert_eq!(doc["records"][0]["outcome"], "CANCELLED");
}

#[test]
fn a_closed_stdout_is_not_a_panic() {
    let demo = Demo::new("300");
    let a = demo.backup("alice", "a.fzip");
    expect(
        &demo.data(),
        0,
        &[
            "demo-profile",
            "--user",
            "zed",
            "--transactions",
            "300",
            "--seed",
            "2",
        ],
    );
    let b = demo.backup("zed", "b.fzip");
    for (args, code) in [
        (vec!["diff", s(&a), s(&b)], 1),
        (vec!["inspect", s(&a)], 0),
        (vec!["--json", "inspect", s(&a)], 0),
        (vec!["--help"], 0),
    ] {
        let mut child = fzip(&demo.data(), &args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        // Close the reading end before the child writes: `| head -0`.
        drop(child.stdout.take());
        let out = child.wait_with_output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!err.contains("panicked"), "fzip {args:?}: {err}");
        assert_eq!(out.status.code(), Some(code), "fzip {args:?}: {err}");
    }
}

/// Every command, as `fzip … --help` takes it.
const COMMANDS: &[&[&str]] = &[
    &["demo-profile"],
    &["backup"],
    &["import"],
    &["analytics"],
    &["restore"],
    &["verify"],
    &["inspect"],
    &["diff"],
    &["profile"],
    &["profile", "summary"],
    &["profile", "clear"],
    &["gc"],
    &["migrate"],
    &["serve"],
    &["bench"],
    &["token"],
    &["audit"],
];

#[test]
fn every_command_help_shows_its_options_apart_an_example_and_exit_codes() {
    let tmp = tempfile::tempdir().unwrap();
    for command in COMMANDS {
        let mut args = command.to_vec();
        args.push("--help");
        let out = expect(tmp.path(), 0, &args);
        let help = String::from_utf8_lossy(&out.stdout).to_string();
        let global = help
            .find("Global options:")
            .unwrap_or_else(|| panic!("fzip {args:?}: no global options heading\n{help}"));
        let (own, globals) = help.split_at(global);
        assert!(own.contains("Options:"), "fzip {args:?}\n{help}");
        for global in ["--data-dir ", "--json ", "--database-url "] {
            assert!(globals.contains(global) && !own.contains(global), "{help}");
        }
        assert!(help.contains("Package limits"), "{help}");
        assert!(
            help.contains("Example"),
            "fzip {args:?}: no example\n{help}"
        );
        assert!(
            help.contains("Exit codes:") && help.contains("130"),
            "fzip {args:?}\n{help}"
        );
        // Every option line is followed by its description.
        let lines: Vec<&str> = help.lines().collect();
        for (i, line) in lines.iter().enumerate() {
            let t = line.trim_start();
            if t.starts_with("--") || (t.starts_with('-') && t.len() > 1 && !t.starts_with("- ")) {
                let inline = t
                    .split_once("  ")
                    .is_some_and(|(_, d)| !d.trim().is_empty());
                let next = lines.get(i + 1).map_or("", |l| l.trim());
                let below = !next.is_empty() && !next.starts_with('-');
                assert!(
                    inline || below,
                    "fzip {args:?}: {t:?} is not described\n{help}"
                );
            }
        }
    }
    let out = expect(tmp.path(), 0, &["backup", "--help"]);
    let help = String::from_utf8_lossy(&out.stdout);
    let own = &help[..help.find("Global options:").unwrap()];
    for flag in [
        "--user",
        "--output",
        "--type",
        "--from",
        "--to",
        "--accounts",
        "--categories",
    ] {
        assert!(
            own.contains(flag),
            "{flag} missing from backup's own options\n{help}"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Audit
// ---------------------------------------------------------------------------------------------

fn audit(data: &Path, user: &str) -> Vec<Value> {
    let args = ["--json", "audit", "--user", user, "--limit", "50"];
    let doc = one_document(&args, &expect(data, 0, &args));
    doc["records"].as_array().unwrap().clone()
}

/// The requests a summary row counts (its detail starts with the number).
fn counted(rows: &[&Value]) -> u64 {
    rows.iter()
        .map(|r| {
            let detail = r["detail"].as_str().unwrap();
            detail.split(' ').next().unwrap().parse::<u64>().unwrap()
        })
        .sum()
}

fn find<'a>(records: &'a [Value], action: &str, outcome: &str) -> &'a Value {
    records
        .iter()
        .find(|r| r["action"] == action && r["outcome"] == outcome)
        .unwrap_or_else(|| panic!("no {action} {outcome} record in {records:#?}"))
}

#[test]
fn cli_backup_restore_import_and_clear_are_audited() {
    let demo = Demo::new("100");
    let data = demo.data();
    let package = demo.backup("alice", "alice.fzip");
    expect(&data, 0, &["restore", s(&package), "--user", "bob"]);
    expect(&data, 4, &["restore", s(&package), "--user", "bob"]);
    expect(
        &data,
        0,
        &[
            "import",
            s(&package),
            "--user",
            "bob",
            "--merge",
            "skip_existing",
            "--dry-run",
        ],
    );
    expect(&data, 0, &["profile", "clear", "--user", "bob", "--yes"]);

    let alice = audit(&data, "alice");
    let backup = find(&alice, "backup.backup", "ok");
    assert_eq!(backup["source"], "cli");
    assert!(backup["detail"].as_str().unwrap().contains("alice.fzip"));
    let bob = audit(&data, "bob");
    find(&bob, "restore.restore", "ok");
    find(&bob, "restore.restore", "PROFILE_NOT_EMPTY");
    let import = find(&bob, "import.import", "ok");
    assert!(import["detail"].as_str().unwrap().contains("dry run"));
    // Newest first: the clear came last.
    assert_eq!(bob[0]["action"], "profile.clear");
    assert_eq!(bob.len(), 4, "{bob:#?}");
}

#[test]
fn refused_tokens_and_foreign_jobs_are_audited_in_summary() {
    let env = Env::new();
    let mut server = env.serve_on("127.0.0.1:0", &[], &[], &env.data());
    let http = reqwest::blocking::Client::new();
    let alice = env.token("alice");
    let bob = env.token("bob");
    let created: Value = http
        .post(server.url("/fzip/backup"))
        .bearer_auth(&alice)
        .json(&serde_json::json!({ "description": "mine" }))
        .send()
        .unwrap()
        .json()
        .unwrap();
    let id = created["backupId"].as_str().unwrap().to_string();
    let forged = format!("{alice}x");
    for _ in 0..25 {
        let r = http
            .get(server.url("/fzip/backup"))
            .bearer_auth(&forged)
            .send()
            .unwrap();
        assert_eq!(r.status(), 401);
    }
    for _ in 0..3 {
        let r = http
            .get(server.url(&format!("/fzip/backup/{id}/status")))
            .bearer_auth(&bob)
            .send()
            .unwrap();
        assert_eq!(r.status(), 404);
    }
    // A missing job is not another user's.
    let r = http
        .get(server.url("/fzip/backup/no-such-job/status"))
        .bearer_auth(&bob)
        .send()
        .unwrap();
    assert_eq!(r.status(), 404);
    // A clean shutdown writes the summary still counting.
    let status = Command::new("kill")
        .args(["-TERM", &server.child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    server.child.wait().unwrap();
    let log = server.kill();
    assert!(log.contains("stopped"), "{log}");

    let args = ["--json", "audit", "--limit", "1000"];
    let doc = one_document(&args, &expect(&env.data(), 0, &args));
    let all = doc["records"].as_array().unwrap();
    // One row per reason and minute (two if the requests straddled a minute), not one per request.
    let refused: Vec<&Value> = all
        .iter()
        .filter(|r| r["action"] == "auth.refused")
        .collect();
    assert!((1..=2).contains(&refused.len()), "summary rows: {all:#?}");
    assert_eq!(counted(&refused), 25, "{refused:#?}");
    for r in &refused {
        let detail = r["detail"].as_str().unwrap();
        assert!(
            !detail.contains(&forged) && !detail.contains(&alice),
            "the token is not stored"
        );
        assert_eq!(r["outcome"], "UNAUTHORIZED");
    }
    let foreign: Vec<&Value> = all
        .iter()
        .filter(|r| r["action"] == "job.foreign")
        .collect();
    assert!((1..=2).contains(&foreign.len()), "{all:#?}");
    assert_eq!(
        counted(&foreign),
        3,
        "the missing job is not counted: {foreign:#?}"
    );
    assert!(foreign.iter().all(|r| r["userId"] == "bob"));
}
