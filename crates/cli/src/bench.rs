//! `fzip bench`: the standard benchmark. For each profile size it builds a demo profile and
//! times, as the median of several runs, each in a process of its own (so peak memory is that
//! phase's alone): backup, deep verify, restore into an empty profile, import with each merge
//! strategy into a half-overlapping profile, and diff. It prints a table and writes JSON.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use anyhow::{Context, bail};
use serde::Serialize;
use serde_json::{Value, json};

use crate::cli::{BenchArgs, Cli};

/// One run of one phase.
#[derive(Debug, Clone, Serialize)]
struct Run {
    seconds: f64,
    peak_rss_kib: u64,
}

/// The runs of one phase at one size, summarised.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
struct Phase {
    size: u64,
    phase: String,
    runs: Vec<Run>,
    median_seconds: f64,
    min_seconds: f64,
    max_seconds: f64,
    peak_rss_mib: f64,
    /// Rows (transactions) per second, from the median.
    rows_per_second: f64,
    /// Package megabytes (10^6 bytes) per second, from the median.
    package_mb_per_second: f64,
}

/// Everything measured at one size.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
struct SizeReport {
    transactions: u64,
    files: u64,
    package_bytes: u64,
    uncompressed_bytes: u64,
    statement_bytes: u64,
    demo_seconds: f64,
    phases: Vec<Phase>,
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    match v.len() {
        0 => 0.0,
        n if n % 2 == 1 => v[n / 2],
        n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    }
}

/// Runs this same program with `args`, returning (seconds, peak RSS, stdout, exit code).
struct Child<'a> {
    exe: PathBuf,
    global: Vec<String>,
    data_dir: &'a Path,
}

impl Child<'_> {
    fn run(&self, args: &[&str], ok_codes: &[i32]) -> anyhow::Result<(Run, String)> {
        let started = Instant::now();
        let out = Command::new(&self.exe)
            .args(&self.global)
            .arg("--data-dir")
            .arg(self.data_dir)
            .arg("-q")
            .args(args)
            .env("FZIP_REPORT_PEAK_RSS", "1")
            .output()
            .with_context(|| format!("cannot run {}", self.exe.display()))?;
        let seconds = started.elapsed().as_secs_f64();
        let stderr = String::from_utf8_lossy(&out.stderr);
        let code = out.status.code().unwrap_or(-1);
        if !ok_codes.contains(&code) {
            bail!(
                "fzip {} exited with {code}: {}",
                args.join(" "),
                stderr.trim()
            );
        }
        let peak_rss_kib = stderr
            .lines()
            .find_map(|l| l.strip_prefix("fzip-peak-rss-kib: "))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0);
        Ok((
            Run {
                seconds,
                peak_rss_kib,
            },
            String::from_utf8_lossy(&out.stdout).into_owned(),
        ))
    }

    fn json(&self, args: &[&str]) -> anyhow::Result<Value> {
        let mut all = vec!["--json"];
        all.extend_from_slice(args);
        let (_, stdout) = self.run(&all, &[0])?;
        serde_json::from_str(&stdout).context("unreadable JSON from fzip")
    }
}

fn phase(size: u64, name: &str, runs: Vec<Run>, package_bytes: u64) -> Phase {
    let secs: Vec<f64> = runs.iter().map(|r| r.seconds).collect();
    let med = median(secs.clone());
    let per = |n: f64| if med > 0.0 { n / med } else { 0.0 };
    Phase {
        size,
        phase: name.to_string(),
        median_seconds: med,
        min_seconds: secs.iter().copied().fold(f64::INFINITY, f64::min),
        max_seconds: secs.iter().copied().fold(0.0, f64::max),
        peak_rss_mib: runs.iter().map(|r| r.peak_rss_kib).max().unwrap_or(0) as f64 / 1024.0,
        rows_per_second: per(size as f64),
        package_mb_per_second: per(package_bytes as f64 / 1e6),
        runs,
    }
}

/// The machine, for the record.
fn machine() -> Value {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|t| {
            t.lines()
                .find_map(|l| l.strip_prefix("model name"))
                .map(|v| v.trim_start_matches([' ', '\t', ':']).to_string())
        })
        .unwrap_or_else(|| "unknown".into());
    let mem_kib = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|t| {
            t.lines()
                .find_map(|l| l.strip_prefix("MemTotal:"))
                .and_then(|v| v.split_whitespace().next().map(str::to_string))
        })
        .and_then(|v| v.parse::<u64>().ok())
        .unwrap_or(0);
    json!({
        "cpu": cpu,
        "cores": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1),
        "memoryGiB": (mem_kib as f64 / 1024.0 / 1024.0 * 10.0).round() / 10.0,
        "os": std::env::consts::OS,
        "fzip": env!("CARGO_PKG_VERSION"),
    })
}

pub fn bench(cli: &Cli, args: &BenchArgs) -> anyhow::Result<()> {
    let exe = std::env::current_exe().context("cannot find the fzip executable")?;
    let root = match &args.dir {
        Some(d) => d.clone(),
        None => std::env::temp_dir().join(format!("fzip-bench-{}", std::process::id())),
    };
    std::fs::create_dir_all(&root).with_context(|| format!("cannot create {}", root.display()))?;
    let mut global: Vec<String> = Vec::new();
    if let Some(url) = &cli.database_url {
        global.extend(["--database-url".into(), url.clone()]);
    }
    if let Some(b) = &cli.blob_store {
        global.extend(["--blob-store".into(), b.clone()]);
    }
    let runs = args.runs.max(1);
    let mut reports = Vec::new();
    for &size in &args.sizes {
        let files = if args.files > 0 {
            args.files
        } else {
            (size * 200 / 1_000_000).max(1)
        };
        let dir = root.join(size.to_string());
        if dir.exists() {
            std::fs::remove_dir_all(&dir)
                .with_context(|| format!("cannot clear {}", dir.display()))?;
        }
        std::fs::create_dir_all(&dir)?;
        let data = dir.join("data");
        let child = Child {
            exe: exe.clone(),
            global: global.clone(),
            data_dir: &data,
        };
        let tag = format!("b{size}x{}", std::process::id());
        let user = |name: &str| format!("{tag}-{name}");
        let path = |name: &str| dir.join(name).display().to_string();
        eprintln!("== {size} transactions, {files} statement files");
        if cli.database_url.is_some() {
            child.run(&["migrate"], &[0])?;
        }
        let (demo, _) = child.run(
            &[
                "demo-profile",
                "--user",
                &user("src"),
                "--transactions",
                &size.to_string(),
                "--files",
                &files.to_string(),
            ],
            &[0],
        )?;
        eprintln!("   demo profile   {:>8.2} s", demo.seconds);
        let mut phases = Vec::new();

        // Backup.
        let mut backup_runs = Vec::new();
        let package = path("package.fzip");
        let mut backup_report = Value::Null;
        for i in 0..runs {
            let out = path(&format!("backup-{i}.fzip"));
            let (run, stdout) = child.run(
                &["--json", "backup", "--user", &user("src"), "-o", &out],
                &[0],
            )?;
            backup_report = serde_json::from_str(&stdout).unwrap_or(Value::Null);
            if i == 0 {
                std::fs::rename(&out, &package)?;
            } else {
                std::fs::remove_file(&out)?;
            }
            backup_runs.push(run);
        }
        let package_bytes = std::fs::metadata(&package)?.len();
        let uncompressed = backup_report["uncompressedBytes"].as_u64().unwrap_or(0);
        let statement_bytes = backup_report["fileBytes"].as_u64().unwrap_or(0);
        phases.push(phase(size, "backup", backup_runs, package_bytes));
        report_line(phases.last());

        // Deep verify.
        let mut verify_runs = Vec::new();
        for _ in 0..runs {
            verify_runs.push(child.run(&["verify", &package], &[0])?.0);
        }
        phases.push(phase(size, "verify", verify_runs, package_bytes));
        report_line(phases.last());

        // Restore into empty profiles.
        let mut restore_runs = Vec::new();
        for i in 0..runs {
            let target = user(&format!("restore{i}"));
            restore_runs.push(
                child
                    .run(&["restore", &package, "--user", &target], &[0])?
                    .0,
            );
        }
        phases.push(phase(size, "restore", restore_runs, package_bytes));
        report_line(phases.last());

        // Import into a half-overlapping profile: one that holds the older half.
        let summary = child.json(&["profile", "summary", "--user", &user("src")])?;
        let (first, last) = (
            summary["firstTransactionDate"].as_i64().unwrap_or(0),
            summary["lastTransactionDate"].as_i64().unwrap_or(0),
        );
        let half = path("half.fzip");
        child.run(
            &[
                "backup",
                "--user",
                &user("src"),
                "-o",
                &half,
                "--type",
                "selective",
                "--to",
                &((first + last) / 2).to_string(),
            ],
            &[0],
        )?;
        for strategy in ["fail_on_conflict", "skip_existing", "overwrite"] {
            let mut import_runs = Vec::new();
            for i in 0..runs {
                let target = user(&format!("{strategy}{i}"));
                child.run(&["restore", &half, "--user", &target], &[0])?;
                // Conflicts end fail_on_conflict with exit 1, after the whole package was
                // checked against the profile.
                let ok: &[i32] = if strategy == "fail_on_conflict" {
                    &[0, 1]
                } else {
                    &[0]
                };
                let (run, _) = child.run(
                    &["import", &package, "--user", &target, "--merge", strategy],
                    ok,
                )?;
                import_runs.push(run);
                if args.keep_profiles {
                    continue;
                }
                child.run(&["profile", "clear", "--user", &target, "--yes"], &[0])?;
            }
            phases.push(phase(
                size,
                &format!("import {strategy}"),
                import_runs,
                package_bytes,
            ));
            report_line(phases.last());
        }

        // Diff of the package and a backup of its restore.
        let restored = path("restored.fzip");
        child.run(
            &["backup", "--user", &user("restore0"), "-o", &restored],
            &[0],
        )?;
        let mut diff_runs = Vec::new();
        for _ in 0..runs {
            diff_runs.push(child.run(&["diff", &package, &restored], &[0])?.0);
        }
        phases.push(phase(size, "diff", diff_runs, package_bytes));
        report_line(phases.last());

        reports.push(SizeReport {
            transactions: size,
            files,
            package_bytes,
            uncompressed_bytes: uncompressed,
            statement_bytes,
            demo_seconds: demo.seconds,
            phases,
        });
        if !args.keep_profiles {
            // Profiles in a shared database are removed; the embedded store goes with its folder.
            if cli.database_url.is_some() {
                for name in std::iter::once("src".to_string())
                    .chain((0..runs).map(|i| format!("restore{i}")))
                {
                    child.run(&["profile", "clear", "--user", &user(&name), "--yes"], &[0])?;
                }
            }
            std::fs::remove_dir_all(&dir).ok();
        }
    }
    let document = json!({
        "machine": machine(),
        "backend": {
            "database": cli.database_url.as_deref().map(redact).unwrap_or_else(|| "sqlite (embedded)".into()),
            "blobs": cli.blob_store.clone().unwrap_or_else(|| "local folder".into()),
        },
        "runsPerPhase": runs,
        "sizes": reports,
    });
    let json_path = &args.json_out;
    std::fs::write(json_path, serde_json::to_vec_pretty(&document)?)
        .with_context(|| format!("cannot write {}", json_path.display()))?;
    if cli.json {
        // One document on stdout, as every command prints with --json.
        crate::output::Out::new(true).document(&document);
    } else {
        print_table(&reports);
        println!("\nJSON: {}", json_path.display());
    }
    if args.dir.is_none() && !args.keep_profiles {
        std::fs::remove_dir_all(&root).ok();
    }
    Ok(())
}

fn redact(url: &str) -> String {
    fzip_store_postgres::PgTarget::parse(url)
        .map(|t| t.describe().to_string())
        .unwrap_or_else(|_| "postgres".into())
}

fn report_line(p: Option<&Phase>) {
    if let Some(p) = p {
        eprintln!(
            "   {:<24} {:>8.2} s  {:>7.1} MiB",
            p.phase, p.median_seconds, p.peak_rss_mib
        );
    }
}

fn print_table(reports: &[SizeReport]) {
    println!(
        "\n{:>9}  {:<24} {:>9} {:>9} {:>9} {:>10} {:>11} {:>9}",
        "txns", "phase", "median s", "min s", "max s", "peak MiB", "rows/s", "pkg MB/s"
    );
    for r in reports {
        println!(
            "{:>9}  package {:.1} MB ({:.1} MB uncompressed, {} statement files of {:.1} MB); demo profile built in {:.2} s",
            r.transactions,
            r.package_bytes as f64 / 1e6,
            r.uncompressed_bytes as f64 / 1e6,
            r.files,
            r.statement_bytes as f64 / 1e6,
            r.demo_seconds,
        );
        for p in &r.phases {
            println!(
                "{:>9}  {:<24} {:>9.2} {:>9.2} {:>9.2} {:>10.1} {:>11.0} {:>9.1}",
                p.size,
                p.phase,
                p.median_seconds,
                p.min_seconds,
                p.max_seconds,
                p.peak_rss_mib,
                p.rows_per_second,
                p.package_mb_per_second
            );
        }
    }
}

/// Prints this process's peak resident memory (for `fzip bench`), when asked to.
pub fn report_peak_rss() {
    if std::env::var_os("FZIP_REPORT_PEAK_RSS").is_none() {
        return;
    }
    let peak = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|t| {
            t.lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))
                .and_then(|v| v.split_whitespace().next().map(str::to_string))
        });
    match peak {
        Some(kib) => eprintln!("fzip-peak-rss-kib: {kib}"),
        None => eprintln!("fzip-peak-rss-kib: 0"),
    }
}
