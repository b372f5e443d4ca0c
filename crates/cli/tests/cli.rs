//! The `fzip` binary as people and scripts use it: commands, outputs and exit codes.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

struct Fzip {
    dir: tempfile::TempDir,
}

impl Fzip {
    fn new() -> Self {
        Fzip {
            dir: tempfile::tempdir().unwrap(),
        }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_fzip"));
        c.env("FZIP_DATA_DIR", self.path("data"))
            .env_remove("FZIP_LOG")
            .args(args);
        c
    }

    fn run(&self, args: &[&str]) -> Output {
        self.cmd(args).output().unwrap()
    }

    /// Runs and expects exit code `code`.
    fn expect(&self, code: i32, args: &[&str]) -> Output {
        let out = self.run(args);
        assert_eq!(
            out.status.code(),
            Some(code),
            "fzip {args:?}\nstdout: {}\nstderr: {}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        out
    }

    fn json(&self, args: &[&str]) -> Value {
        let mut all = vec!["--json"];
        all.extend_from_slice(args);
        let out = self.expect(0, &all);
        serde_json::from_slice(&out.stdout).unwrap()
    }
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

#[test]
fn round_trip_of_a_demo_profile() {
    let f = Fzip::new();
    f.expect(
        0,
        &[
            "demo-profile",
            "--user",
            "alice",
            "--transactions",
            "20000",
            "--files",
            "10",
        ],
    );
    let a = f.path("alice.fzip");
    f.expect(0, &["backup", "--user", "alice", "-o", s(&a)]);
    let out = f.expect(0, &["verify", s(&a)]);
    assert!(text(&out).contains("VALID"), "{}", text(&out));
    f.expect(0, &["restore", s(&a), "--user", "bob"]);
    let b = f.path("bob.fzip");
    f.expect(0, &["backup", "--user", "bob", "-o", s(&b)]);
    let out = f.expect(0, &["diff", s(&a), s(&b)]);
    assert!(text(&out).contains("same profile"));

    // The summaries agree too.
    let sa = f.json(&["profile", "summary", "--user", "alice"]);
    let sb = f.json(&["profile", "summary", "--user", "bob"]);
    for key in [
        "accounts",
        "transactions",
        "categories",
        "categoryRules",
        "fileMaps",
        "transactionFiles",
        "fileBytes",
    ] {
        assert_eq!(sa[key], sb[key], "{key}");
    }
    assert_eq!(sa["transactions"], 20000);

    // A changed profile differs: exit 1 and the difference is named.
    let c = f.path("carol.fzip");
    f.expect(
        0,
        &[
            "demo-profile",
            "--user",
            "carol",
            "--transactions",
            "20000",
            "--files",
            "10",
            "--seed",
            "2",
        ],
    );
    f.expect(0, &["backup", "--user", "carol", "-o", s(&c)]);
    let out = f.expect(1, &["diff", s(&a), s(&c)]);
    assert!(text(&out).contains("different"), "{}", text(&out));

    // No silent overwrite of an existing package.
    let out = f.expect(2, &["backup", "--user", "alice", "-o", s(&a)]);
    assert!(text(&out).contains("--force"));
}

#[test]
fn housef3_fixtures_restore_and_round_trip() {
    for name in ["small", "medium"] {
        let Some(dir) = fzip_testkit_path(name) else {
            continue;
        };
        let f = Fzip::new();
        let package = dir.join("backup.fzip");
        f.expect(0, &["verify", s(&package)]);
        f.expect(0, &["restore", s(&package), "--user", "fresh"]);
        let expected: Value =
            serde_json::from_slice(&std::fs::read(dir.join("expected.json")).unwrap()).unwrap();
        let summary = f.json(&["profile", "summary", "--user", "fresh"]);
        let c = &expected["counts"];
        assert_eq!(summary["accounts"], c["accounts"]);
        assert_eq!(summary["transactions"], c["transactions"]);
        assert_eq!(summary["categories"], c["categories"]);
        assert_eq!(summary["categoryRules"], c["categoryRules"]);
        assert_eq!(summary["fileMaps"], c["fileMaps"]);
        assert_eq!(summary["transactionFiles"], c["transactionFiles"]);

        let again = f.path("again.fzip");
        f.expect(0, &["backup", "--user", "fresh", "-o", s(&again)]);
        f.expect(0, &["diff", s(&package), s(&again)]);
        f.expect(0, &["diff", "--strict", s(&package), s(&again)]);

        // Every original file's SHA-256, as the re-backup's manifest records it.
        let inspect = f.json(&["inspect", s(&again)]);
        let files = inspect["files"].as_array().unwrap();
        for (file_id, info) in expected["files"].as_object().unwrap() {
            let ours = files
                .iter()
                .find(|x| x["fileId"] == file_id.as_str())
                .unwrap();
            assert_eq!(
                ours["sha256"],
                format!("sha256:{}", info["sha256"].as_str().unwrap())
            );
            assert_eq!(ours["size"], info["bytes"]);
            let manifest_sum = &inspect["manifest"]["checksums"][ours["entry"].as_str().unwrap()];
            assert_eq!(manifest_sum, &ours["sha256"]);
        }
    }
}

fn fzip_testkit_path(name: &str) -> Option<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../../shared/fixtures/housef3")
        .join(name);
    dir.join("backup.fzip").exists().then_some(dir)
}

#[test]
fn restoring_into_a_non_empty_profile_exits_4_and_changes_nothing() {
    let f = Fzip::new();
    f.expect(
        0,
        &[
            "demo-profile",
            "--user",
            "alice",
            "--transactions",
            "500",
            "--files",
            "2",
        ],
    );
    f.expect(
        0,
        &[
            "demo-profile",
            "--user",
            "bob",
            "--transactions",
            "40",
            "--files",
            "1",
            "--seed",
            "9",
        ],
    );
    let a = f.path("a.fzip");
    f.expect(0, &["backup", "--user", "alice", "-o", s(&a)]);
    let before = f.path("before.fzip");
    f.expect(0, &["backup", "--user", "bob", "-o", s(&before)]);
    let out = f.expect(4, &["restore", s(&a), "--user", "bob"]);
    let t = text(&out);
    assert!(
        t.contains("not empty") && t.contains("40 transactions") && t.contains("profile clear"),
        "{t}"
    );
    let out = f.expect(4, &["--json", "restore", s(&a), "--user", "bob"]);
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc["error"], "PROFILE_NOT_EMPTY");
    assert_eq!(doc["profileSummary"]["transactions"], 40);
    let after = f.path("after.fzip");
    f.expect(0, &["backup", "--user", "bob", "-o", s(&after)]);
    f.expect(0, &["diff", "--strict", s(&before), s(&after)]);
}

#[test]
fn damaged_packages_exit_3_naming_the_entry_and_write_nothing() {
    let f = Fzip::new();
    f.expect(
        0,
        &[
            "demo-profile",
            "--user",
            "alice",
            "--transactions",
            "300",
            "--files",
            "2",
        ],
    );
    let a = f.path("a.fzip");
    f.expect(0, &["backup", "--user", "alice", "-o", s(&a)]);
    let good = std::fs::read(&a).unwrap();
    let bad = f.path("bad.fzip");
    let mut cases: Vec<(String, Vec<u8>)> = Vec::new();
    for e in fzip_testkit::locate_entries(&good) {
        cases.push((
            e.name.clone(),
            fzip_testkit::flip_byte_in_entry(&good, &e.name),
        ));
    }
    let entries = fzip_testkit::read_entries(&good);
    let without: Vec<_> = entries
        .iter()
        .filter(|(n, _)| n != "data/categories.json")
        .cloned()
        .collect();
    cases.push((
        "data/categories.json".into(),
        fzip_testkit::rebuild(&without),
    ));
    let mut evil = entries.clone();
    evil.push(("files/../../x".into(), b"evil".to_vec()));
    cases.push(("files/../../x".into(), fzip_testkit::rebuild(&evil)));

    for (entry, bytes) in cases {
        std::fs::write(&bad, &bytes).unwrap();
        let out = f.expect(3, &["verify", s(&bad)]);
        assert!(
            text(&out).contains(&entry),
            "verify of damaged {entry}: {}",
            text(&out)
        );
        let out = f.expect(3, &["restore", s(&bad), "--user", "bob"]);
        assert!(
            text(&out).contains(&entry),
            "restore of damaged {entry}: {}",
            text(&out)
        );
        let summary = f.json(&["profile", "summary", "--user", "bob"]);
        assert_eq!(summary["empty"], true, "{entry}");
    }
    assert!(!f.path("x").exists() && !f.dir.path().parent().unwrap().join("x").exists());
    let blobs = f.path("data/blobs/users/bob");
    assert!(!blobs.exists() || std::fs::read_dir(&blobs).unwrap().next().is_none());
}

#[test]
fn usage_errors_exit_2() {
    let f = Fzip::new();
    f.expect(2, &["restore", "x.fzip"]);
    f.expect(2, &["no-such-command"]);
    f.expect(2, &["profile", "clear", "--user", "alice"]);
    f.expect(0, &["--help"]);
    // A missing file is an error, not an invalid package.
    f.expect(1, &["verify", "does-not-exist.fzip"]);
    // Not a package at all.
    std::fs::write(f.path("junk.fzip"), b"hello").unwrap();
    let out = f.expect(3, &["verify", s(&f.path("junk.fzip"))]);
    assert!(text(&out).contains("not a readable FZIP package"));
}

#[test]
fn json_output_is_one_document() {
    let f = Fzip::new();
    let demo = f.json(&[
        "demo-profile",
        "--user",
        "alice",
        "--transactions",
        "100",
        "--files",
        "2",
    ]);
    assert_eq!(demo["transactions"], 100);
    let a = f.path("a.fzip");
    let b = f.json(&["backup", "--user", "alice", "-o", s(&a)]);
    assert_eq!(b["counts"]["transactions"], 100);
    assert!(
        b["manifestChecksum"]
            .as_str()
            .unwrap()
            .starts_with("sha256:")
    );
    let v = f.json(&["verify", s(&a)]);
    assert_eq!(v["valid"], true);
    let i = f.json(&["inspect", s(&a)]);
    assert_eq!(i["manifest"]["packageFormat"], "fzip");
    assert_eq!(i["manifest"]["userId"], "alice");
    assert!(i["manifest"]["checksums"].as_object().unwrap().len() >= 7);
    let r = f.json(&["restore", s(&a), "--user", "bob", "--validate-only"]);
    assert_eq!(r["validateOnly"], true);
    let cleared = f.json(&["profile", "clear", "--user", "alice", "--yes"]);
    assert_eq!(cleared["deleted"]["transactions"], 100);
    assert_eq!(
        f.json(&["profile", "summary", "--user", "alice"])["empty"],
        true
    );
}

/// Peak resident memory of a command, from `/usr/bin/time -v`, in KiB.
fn peak_rss(f: &Fzip, args: &[&str]) -> u64 {
    let out = Command::new("/usr/bin/time")
        .arg("-v")
        .arg(env!("CARGO_BIN_EXE_fzip"))
        .args(args)
        .env("FZIP_DATA_DIR", f.path("data"))
        .output()
        .expect("/usr/bin/time is needed (Debian package `time`)");
    assert!(out.status.success(), "{args:?}: {}", text(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    stderr
        .lines()
        .find_map(|l| {
            l.trim()
                .strip_prefix("Maximum resident set size (kbytes): ")
        })
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no RSS in {stderr}"))
}

#[test]
fn memory_stays_flat_as_profiles_grow() {
    if !Path::new("/usr/bin/time").exists() {
        panic!("/usr/bin/time is missing: install the Debian package `time` (.ci/run does)");
    }
    let f = Fzip::new();
    let mut figures = Vec::new();
    for n in [20_000u64, 200_000] {
        let user = format!("u{n}");
        let n_text = n.to_string();
        f.expect(
            0,
            &[
                "-q",
                "demo-profile",
                "--user",
                &user,
                "--transactions",
                &n_text,
                "--files",
                "10",
            ],
        );
        let pkg = f.path(&format!("{n}.fzip"));
        let backup = peak_rss(&f, &["-q", "backup", "--user", &user, "-o", s(&pkg)]);
        let restore = peak_rss(&f, &["-q", "restore", s(&pkg), "--user", &format!("r{n}")]);
        figures.push((n, backup, restore));
    }
    eprintln!("peak RSS (KiB): {figures:?}");
    let (_, b20, r20) = figures[0];
    let (_, b200, r200) = figures[1];
    for (what, small, large) in [("backup", b20, b200), ("restore", r20, r200)] {
        assert!(
            large < 100 * 1024,
            "{what} of 200k transactions peaked at {large} KiB"
        );
        assert!(
            (large as f64) <= small as f64 * 1.2,
            "{what}: {large} KiB at 200k vs {small} KiB at 20k is more than 20% growth"
        );
    }
}

#[test]
fn import_reports_conflicts_and_merges() {
    let f = Fzip::new();
    for (user, seed) in [("alice", "1"), ("bob", "2")] {
        f.expect(
            0,
            &[
                "demo-profile",
                "--user",
                user,
                "--transactions",
                "300",
                "--files",
                "2",
                "--seed",
                seed,
            ],
        );
    }
    let a = f.path("alice.fzip");
    f.expect(0, &["backup", "--user", "alice", "-o", s(&a)]);
    // Bob's profile is a different one: the default strategy adds it all.
    let dry = f.json(&["import", s(&a), "--user", "bob", "--dry-run"]);
    assert_eq!(dry["dryRun"], true);
    assert_eq!(dry["created"]["transactions"], 300);
    assert_eq!(
        f.json(&["profile", "summary", "--user", "bob"])["transactions"],
        300
    );
    let real = f.json(&["import", s(&a), "--user", "bob"]);
    assert_eq!(real["created"], dry["created"]);
    assert_eq!(
        f.json(&["profile", "summary", "--user", "bob"])["transactions"],
        600
    );
    // Again: every id conflicts; exit 1 and the conflicts are listed.
    let out = f.expect(1, &["import", s(&a), "--user", "bob"]);
    let t = text(&out);
    assert!(t.contains("conflict") && t.contains("skip_existing"), "{t}");
    let out = f.expect(1, &["--json", "import", s(&a), "--user", "bob"]);
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["error"], "IMPORT_CONFLICT");
    assert_eq!(v["report"]["conflicts"]["transactions"], 300);
    let skip = f.json(&["import", s(&a), "--user", "bob", "--merge", "skip_existing"]);
    assert_eq!(skip["unchanged"]["transactions"], 300);
    assert_eq!(skip["created"]["transactions"], 0);
    let analytics = f.expect(0, &["analytics", "--user", "bob"]);
    assert!(
        text(&analytics).contains("cash flow"),
        "{}",
        text(&analytics)
    );
}

/// Acceptance: killing the process in the middle of an import leaves the profile exactly as it
/// was (compared with `fzip diff` of backups taken before and after).
#[test]
fn killing_an_import_midway_changes_nothing() {
    use std::io::{BufRead, BufReader};
    use std::process::Stdio;
    let f = Fzip::new();
    for (user, n, seed) in [("alice", "60000", "1"), ("bob", "2000", "2")] {
        f.expect(
            0,
            &[
                "-q",
                "demo-profile",
                "--user",
                user,
                "--transactions",
                n,
                "--files",
                "4",
                "--seed",
                seed,
            ],
        );
    }
    let a = f.path("alice.fzip");
    f.expect(0, &["-q", "backup", "--user", "alice", "-o", s(&a)]);
    let before = f.path("bob-before.fzip");
    f.expect(0, &["-q", "backup", "--user", "bob", "-o", s(&before)]);

    let mut killed_while_writing = 0;
    for delay_ms in [0u64, 150, 400] {
        let mut child = f
            .cmd(&["import", s(&a), "--user", "bob", "--merge", "overwrite"])
            .env("FZIP_LOG", "fzip=debug")
            .stderr(Stdio::piped())
            .stdout(Stdio::null())
            .spawn()
            .unwrap();
        let stderr = child.stderr.take().unwrap();
        let mut lines = BufReader::new(stderr).lines();
        let mut seen = false;
        for line in lines.by_ref() {
            let line = line.unwrap();
            if line.contains("importing_transactions") {
                seen = true;
                break;
            }
        }
        assert!(seen, "the import never reached its transactions");
        std::thread::sleep(std::time::Duration::from_millis(delay_ms));
        if child.try_wait().unwrap().is_none() {
            killed_while_writing += 1;
        }
        child.kill().unwrap();
        child.wait().unwrap();
        let after = f.path(&format!("bob-after-{delay_ms}.fzip"));
        f.expect(0, &["-q", "backup", "--user", "bob", "-o", s(&after)]);
        let out = f.expect(0, &["diff", s(&before), s(&after)]);
        assert!(text(&out).contains("same profile"), "{}", text(&out));
    }
    assert!(
        killed_while_writing > 0,
        "the import finished before it could be killed"
    );
    // The profile still takes the import afterwards.
    let done = f.json(&["import", s(&a), "--user", "bob", "--merge", "overwrite"]);
    assert_eq!(done["created"]["transactions"], 60000);
}
