//! The CLI never reports an empty or broken backup as a good one: empty profiles, honest
//! figures, damaged packages in plain words, infrastructure failures apart from package errors,
//! quality that reflects what is missing (issue 11, section 3).
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

    fn run(&self, args: &[&str]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_fzip"))
            .env("FZIP_DATA_DIR", self.path("data"))
            .env_remove("FZIP_LOG")
            .env_remove("FZIP_DATABASE_URL")
            .env_remove("FZIP_BLOB_STORE")
            .args(args)
            .output()
            .unwrap()
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

    /// `--json ARGS`, expecting exit `code`: the one JSON document on stdout.
    fn json(&self, code: i32, args: &[&str]) -> Value {
        let mut all = vec!["--json"];
        all.extend_from_slice(args);
        let out = self.expect(code, &all);
        serde_json::from_slice(&out.stdout)
            .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stdout)))
    }

    fn demo(&self, user: &str, transactions: u64, files: u64) {
        self.expect(
            0,
            &[
                "-q",
                "demo-profile",
                "--user",
                user,
                "--transactions",
                &transactions.to_string(),
                "--files",
                &files.to_string(),
            ],
        );
    }
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// The number after `label` in `text` (`compression saved 84.1 %` → 84.1).
fn number_after(text: &str, label: &str) -> f64 {
    let at = text
        .find(label)
        .unwrap_or_else(|| panic!("no {label:?} in {text}"));
    let rest = text[at + label.len()..].trim_start();
    let end = rest
        .find(|c: char| !(c.is_ascii_digit() || c == '.' || c == '-'))
        .unwrap_or(rest.len());
    rest[..end]
        .parse()
        .unwrap_or_else(|_| panic!("no number after {label:?} in {text}"))
}

#[test]
fn an_empty_profile_is_refused_unless_allowed_and_never_graded_well() {
    let f = Fzip::new();
    f.demo("alice", 50, 1); // the store exists; "nobody" holds nothing
    let out = f.path("nobody.fzip");
    let refused = f.expect(1, &["backup", "--user", "nobody", "-o", s(&out)]);
    let message = stderr(&refused);
    assert!(message.contains("holds nothing"), "{message}");
    assert!(message.contains("--allow-empty"), "{message}");
    assert!(!out.exists() && !f.path("nobody.fzip.partial").exists());
    let doc = f.json(1, &["backup", "--user", "nobody", "-o", s(&out)]);
    assert_eq!(doc["error"], "PROFILE_EMPTY", "{doc}");

    // Allowed: written, but graded poor, completeness 0, and no negative compression figure.
    let done = f.expect(
        0,
        &["backup", "--user", "nobody", "-o", s(&out), "--allow-empty"],
    );
    let printed = text(&done);
    assert!(printed.contains("backup quality: poor"), "{printed}");
    assert_eq!(
        number_after(&printed, "compression saved"),
        0.0,
        "{printed}"
    );
    assert!(
        !printed.contains("-1") && !printed.contains("excellent"),
        "{printed}"
    );
    let report = f.json(
        0,
        &[
            "backup",
            "--user",
            "nobody",
            "-o",
            s(&out),
            "--allow-empty",
            "--force",
        ],
    );
    let q = &report["validation"];
    assert_eq!(q["overall_quality"], "poor", "{q}");
    assert_eq!(q["completeness_score"], 0.0, "{q}");
    assert_eq!(q["compression_ratio"], 0.0, "{q}");
    // The package itself is valid (an empty profile restores as one).
    f.expect(0, &["verify", s(&out)]);
}

#[test]
fn the_compression_figure_is_one_number_and_level_0_stores_entries() {
    let f = Fzip::new();
    f.demo("alice", 2000, 2);
    let a = f.path("a.fzip");
    let report = f.json(0, &["backup", "--user", "alice", "-o", s(&a)]);
    let ratio = report["validation"]["compression_ratio"].as_f64().unwrap();
    assert!(ratio > 50.0 && ratio < 100.0, "{ratio}");
    // The same figure, with the same meaning, in the manifest's processing summary.
    let inspect = f.json(0, &["inspect", s(&a)]);
    let manifest = &inspect["manifest"];
    assert_eq!(manifest["validation"]["compression_ratio"], ratio);
    assert_eq!(
        manifest["processingSummary"]["compression_ratio"], ratio,
        "{}",
        manifest["processingSummary"]
    );
    // Space saved, in percent: the package is about (100 - ratio) % of the data.
    let (package, data) = (
        report["packageBytes"].as_f64().unwrap(),
        report["uncompressedBytes"].as_f64().unwrap(),
    );
    let saved = 100.0 * (1.0 - package / data);
    assert!(
        (saved - ratio).abs() < 2.0,
        "saved {saved} vs figure {ratio}"
    );
    let shown = text(&f.expect(0, &["verify", s(&a)]));
    assert_eq!(number_after(&shown, "compression saved"), ratio, "{shown}");

    // Level 0: stored entries, a valid package, nothing saved.
    let stored = f.path("stored.fzip");
    let report = f.json(
        0,
        &[
            "backup",
            "--user",
            "alice",
            "-o",
            s(&stored),
            "--compression-level",
            "0",
        ],
    );
    assert_eq!(report["validation"]["compression_ratio"], 0.0);
    let inspect = f.json(0, &["inspect", s(&stored)]);
    let entries = inspect["entries"].as_array().unwrap();
    assert!(!entries.is_empty());
    for e in entries {
        assert_eq!(e["method"], "stored", "{e}");
    }
    f.expect(0, &["verify", s(&stored)]);
    f.expect(0, &["restore", s(&stored), "--user", "bob"]);
}

/// A copy of `package` whose transactions all refer to an account that does not exist (its
/// checksum then no longer matches either).
fn with_broken_references(package: &Path, to: &Path) {
    let bytes = std::fs::read(package).unwrap();
    let mut entries = fzip_testkit::read_entries(&bytes);
    let (_, data) = entries
        .iter_mut()
        .find(|(name, _)| name == "data/transactions.json")
        .unwrap();
    let text = String::from_utf8(data.clone()).unwrap();
    let mut out = String::new();
    let key = "\"accountId\":\"";
    let mut rest = text.as_str();
    while let Some(at) = rest.find(key) {
        let start = at + key.len();
        let end = start + rest[start..].find('"').unwrap();
        out.push_str(&rest[..start]);
        out.push_str("no-such-account");
        rest = &rest[end..];
    }
    out.push_str(rest);
    *data = out.into_bytes();
    std::fs::write(to, fzip_testkit::rebuild(&entries)).unwrap();
}

#[test]
fn damaged_packages_say_what_it_means_first_and_lists_are_capped() {
    let f = Fzip::new();
    f.demo("alice", 500, 1);
    let a = f.path("a.fzip");
    f.expect(0, &["backup", "--user", "alice", "-o", s(&a)]);
    let bytes = std::fs::read(&a).unwrap();

    // A download cut short, a text file renamed, flipped bytes.
    let truncated = f.path("truncated.fzip");
    std::fs::write(&truncated, &bytes[..bytes.len() / 2]).unwrap();
    let renamed = f.path("notes.fzip");
    std::fs::write(&renamed, "{\"a\": 1, \"b\" 2}\nsome notes\n").unwrap();
    let flipped = f.path("flipped.fzip");
    std::fs::write(
        &flipped,
        fzip_testkit::flip_byte_in_entry(&bytes, "data/transactions.json"),
    )
    .unwrap();
    for (path, what) in [
        (&truncated, "truncated"),
        (&renamed, "renamed"),
        (&flipped, "flipped"),
    ] {
        for command in ["verify", "restore"] {
            let mut args = vec![command, s(path)];
            if command == "restore" {
                args.extend(["--user", "bob"]);
            }
            let out = f.expect(3, &args);
            let all = text(&out);
            let first = all
                .lines()
                .find(|l| l.starts_with("error:") || l.contains("INVALID"))
                .unwrap_or_else(|| panic!("{what} {command}: {all}"));
            let plain = ["incomplete or damaged", "damaged or incomplete"];
            assert!(
                plain.iter().any(|p| all.contains(p)),
                "{what} {command}: {all}"
            );
            assert!(
                all.contains("download or copy it again"),
                "{what} {command}: {all}"
            );
            // The user's words come before the technical detail.
            if let Some(detail) = ["EOCD", "expected", "checksum", "CRC"]
                .iter()
                .filter_map(|d| first.find(d))
                .min()
            {
                let words = plain.iter().filter_map(|p| first.find(p)).min();
                assert!(
                    words.is_some_and(|w| w < detail),
                    "{what} {command}: {first}"
                );
            }
            // An invalid package never shows a grade of its own making.
            assert!(!all.contains("backup quality"), "{what} {command}: {all}");
        }
    }

    // Inspect shows what a damaged package holds (exit 0), but says what the damage means and
    // shows no grade.
    let out = text(&f.expect(0, &["inspect", s(&flipped)]));
    assert!(out.contains("download or copy it again"), "{out}");
    assert!(!out.contains("backup quality"), "{out}");

    // Verify's summary says what it read, and what the manifest declares there should be.
    let out = text(&f.expect(3, &["verify", s(&flipped)]));
    let read = out.lines().find(|l| l.trim_start().starts_with("read: "));
    assert!(read.is_some_and(|l| l.contains("12 accounts")), "{out}");
    let declared = out
        .lines()
        .find(|l| l.contains("the manifest declares:"))
        .unwrap_or_else(|| panic!("{out}"));
    assert!(declared.contains("500 transactions"), "{out}");

    // Hundreds of problems: the first 20 and a count, in the CLI.
    let broken = f.path("broken.fzip");
    with_broken_references(&a, &broken);
    let out = f.expect(3, &["restore", s(&broken), "--user", "bob"]);
    let err = stderr(&out);
    let listed = err
        .lines()
        .filter(|l| l.contains("no-such-account"))
        .count();
    assert!(listed <= 21, "{listed} lines: {err}");
    assert!(err.contains("more"), "{err}");
    assert!(err.len() < 6000, "{} characters: {err}", err.len());
    let out = text(&f.expect(3, &["verify", s(&broken)]));
    assert!(out.lines().count() < 40, "{out}");
    assert!(out.contains("and 48") || out.contains("more"), "{out}");
}

#[test]
fn a_full_disk_is_an_infrastructure_failure_not_an_invalid_package() {
    let f = Fzip::new();
    f.demo("alice", 2000, 2);
    // The package goes to FILE.partial first: make that a device that is always full.
    let out = f.path("full.fzip");
    std::os::unix::fs::symlink("/dev/full", f.path("full.fzip.partial")).unwrap();
    let failed = f.expect(5, &["backup", "--user", "alice", "-o", s(&out)]);
    let err = stderr(&failed);
    assert!(err.contains("disk is full"), "{err}");
    assert!(err.contains("nothing was written"), "{err}");
    assert!(!err.contains("invalid package"), "{err}");
    assert!(!err.contains("ZipWriter"), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(!out.exists());

    std::os::unix::fs::symlink("/dev/full", f.path("full.fzip.partial")).unwrap();
    let doc = f.json(5, &["backup", "--user", "alice", "-o", s(&out)]);
    assert_eq!(doc["error"], "DISK_FULL", "{doc}");
}

#[test]
fn blob_storage_failing_during_a_restore_is_not_an_invalid_package() {
    let f = Fzip::new();
    f.demo("alice", 300, 2);
    let a = f.path("a.fzip");
    f.expect(0, &["backup", "--user", "alice", "-o", s(&a)]);
    // Bob's statement files cannot be stored: where his folder would go, there is a file.
    std::fs::write(f.path("data/blobs/users/bob"), b"in the way").unwrap();
    let out = f.expect(5, &["restore", s(&a), "--user", "bob"]);
    let err = stderr(&out);
    assert!(err.contains("blob storage failed"), "{err}");
    assert!(err.contains("nothing was written"), "{err}");
    assert!(!err.contains("invalid"), "{err}");
    let doc = f.json(5, &["restore", s(&a), "--user", "bob"]);
    assert_eq!(doc["error"], "STORAGE_UNAVAILABLE", "{doc}");
    // All or nothing: bob's profile is still empty.
    let summary = f.json(0, &["profile", "summary", "--user", "bob"]);
    assert_eq!(summary["empty"], true, "{summary}");
}

#[test]
fn a_backup_missing_a_statement_file_is_never_excellent_and_counts_what_it_holds() {
    let f = Fzip::new();
    f.demo("alice", 500, 4);
    // Remove the bytes of one statement file from blob storage.
    let mut stack = vec![f.path("data/blobs/users/alice")];
    let mut blobs = Vec::new();
    while let Some(dir) = stack.pop() {
        for e in std::fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                blobs.push(p);
            }
        }
    }
    assert_eq!(blobs.len(), 4, "{blobs:?}");
    std::fs::remove_file(&blobs[0]).unwrap();

    let a = f.path("a.fzip");
    let out = f.expect(
        0,
        &[
            "backup",
            "--user",
            "alice",
            "-o",
            s(&a),
            "--continue-on-missing-files",
        ],
    );
    let printed = text(&out);
    assert!(
        printed.contains("3 statement files included, 1 missing or damaged"),
        "{printed}"
    );
    assert!(!printed.contains("excellent"), "{printed}");
    let report = f.json(
        0,
        &[
            "backup",
            "--user",
            "alice",
            "-o",
            s(&a),
            "--continue-on-missing-files",
            "--force",
        ],
    );
    let q = &report["validation"];
    assert_ne!(q["overall_quality"], "excellent", "{q}");
    assert_eq!(q["files_processed"], 3, "{q}");
    assert_eq!(q["files_failed"], 1, "{q}");
    assert_eq!(report["filesWritten"], 3);
    assert!(q["completeness_score"].as_f64().unwrap() < 100.0, "{q}");
    assert!(q["data_integrity_score"].as_f64().unwrap() < 100.0, "{q}");
}

mod support;

#[test]
fn the_service_fails_a_backup_of_an_empty_profile_with_profile_empty() {
    let env = support::Env::new();
    env.cli_ok(&[
        "-q",
        "demo-profile",
        "--user",
        "alice",
        "--transactions",
        "20",
    ]);
    let server = env.serve_on("127.0.0.1:0", &[], &[], &env.data());
    let token = env.token("nobody");
    let http = reqwest::blocking::Client::new();
    let run = |body: Value| -> Value {
        let created: Value = http
            .post(server.url("/fzip/backup"))
            .bearer_auth(&token)
            .json(&body)
            .send()
            .unwrap()
            .json()
            .unwrap();
        let id = created["backupId"].as_str().unwrap().to_string();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
        loop {
            let v: Value = http
                .get(server.url(&format!("/fzip/backup/{id}/status")))
                .bearer_auth(&token)
                .send()
                .unwrap()
                .json()
                .unwrap();
            let status = v["status"].as_str().unwrap_or("").to_string();
            if status != "backup_initiated" && status != "backup_processing" {
                return v;
            }
            assert!(std::time::Instant::now() < deadline, "{v}");
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
    };
    let refused = run(serde_json::json!({}));
    assert_eq!(refused["status"], "backup_failed", "{refused}");
    assert_eq!(refused["errorCode"], "PROFILE_EMPTY", "{refused}");
    let allowed = run(serde_json::json!({ "allowEmpty": true }));
    assert_eq!(allowed["status"], "backup_completed", "{allowed}");
    assert_eq!(
        allowed["validation"]["overall_quality"], "poor",
        "{allowed}"
    );
}

#[test]
fn blob_storage_failing_during_a_backup_is_an_infrastructure_failure_not_missing_files() {
    let f = Fzip::new();
    f.demo("alice", 300, 2);
    // Alice's statement files cannot be read: where her blob folder is, there is now a file
    // (a store that fails, not a file that is missing).
    let folder = f.path("data/blobs/users/alice");
    std::fs::rename(&folder, f.path("alice-blobs-moved")).unwrap();
    std::fs::write(&folder, b"in the way").unwrap();
    let a = f.path("a.fzip");
    // Even when asked to continue past missing files: a failing store is not a missing file.
    let doc = f.json(
        5,
        &[
            "backup",
            "--user",
            "alice",
            "-o",
            s(&a),
            "--continue-on-missing-files",
        ],
    );
    assert_eq!(doc["error"], "STORAGE_UNAVAILABLE", "{doc}");
    assert!(!a.exists(), "no package may be left behind");
}
