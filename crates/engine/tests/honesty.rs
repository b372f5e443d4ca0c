//! The engine never reports an empty or broken backup as a good one: an empty profile is refused
//! (or graded poor when allowed), a full disk is an infrastructure failure, level 0 stores
//! entries, and an import's progress moves through all of its work (issue 11, section 3).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::sync::Mutex;

use common::Env;
use fzip_engine::jobs::band;
use fzip_engine::{
    BackupOptions, DemoOptions, EngineError, ImportOptions, MergeStrategy, NoProgress, Progress,
    Resource, backup, demo_profile, import, verify,
};
use fzip_format::{Limits, PackageReader};
use fzip_store::jobs::Work;

fn demo(env: &Env, user: &str, transactions: u64, files: u64) {
    demo_profile(
        &env.engine,
        user,
        &DemoOptions {
            transactions,
            files,
            seed: 11,
        },
        &NoProgress,
    )
    .unwrap();
}

fn empty_profiles_are_refused_unless_allowed_and_then_graded_poor(env: Env) {
    let err = backup(
        &env.engine,
        "nobody",
        std::io::Cursor::new(Vec::new()),
        &BackupOptions::default(),
        &NoProgress,
    )
    .err()
    .unwrap();
    assert!(matches!(err, EngineError::ProfileEmpty { .. }), "{err}");
    assert_eq!(err.code(), Some("PROFILE_EMPTY"));

    let path = env.backup_with(
        "nobody",
        "empty.fzip",
        &BackupOptions {
            allow_empty: true,
            ..Default::default()
        },
    );
    let mut reader =
        PackageReader::open(std::fs::File::open(&path).unwrap(), Limits::default()).unwrap();
    let report = verify(&mut reader, &NoProgress).unwrap();
    assert!(report.valid, "{:?}", report.problems);
    let q = report.quality.unwrap();
    assert_eq!(q["overall_quality"], "poor", "{q}");
    assert_eq!(q["completeness_score"], 0.0, "{q}");
    let ratio = q["compression_ratio"].as_f64().unwrap();
    assert!((0.0..=100.0).contains(&ratio), "{ratio}");
}

fn a_full_disk_is_reported_as_such(env: Env) {
    demo(&env, "alice", 500, 1);
    let full = std::fs::OpenOptions::new()
        .write(true)
        .open("/dev/full")
        .unwrap();
    let err = backup(
        &env.engine,
        "alice",
        full,
        &BackupOptions::default(),
        &NoProgress,
    )
    .err()
    .unwrap();
    assert!(
        matches!(
            err,
            EngineError::Unavailable {
                resource: Resource::Disk,
                full: true,
                ..
            }
        ),
        "{err:?}"
    );
    assert_eq!(err.code(), Some("DISK_FULL"));
    let message = err.to_string();
    assert!(message.starts_with("the disk is full"), "{message}");
    assert!(message.contains("nothing was written"), "{message}");
}

fn level_0_stores_every_entry(env: Env) {
    demo(&env, "alice", 300, 2);
    let path = env.backup_with(
        "alice",
        "stored.fzip",
        &BackupOptions {
            compression_level: 0,
            ..Default::default()
        },
    );
    let mut reader =
        PackageReader::open(std::fs::File::open(&path).unwrap(), Limits::default()).unwrap();
    assert!(reader.entries().iter().all(|e| e.method == "stored"));
    let report = verify(&mut reader, &NoProgress).unwrap();
    assert!(report.valid, "{:?}", report.problems);
    assert_eq!(report.counts.transactions, 300);
}

#[derive(Default)]
struct Recorder {
    events: Mutex<Vec<(String, u64, u64)>>,
}

impl Progress for Recorder {
    fn phase(&self, name: &str, total: u64) {
        self.events
            .lock()
            .unwrap()
            .push((name.to_string(), total, 0));
    }
    fn advance(&self, n: u64) {
        if let Some(last) = self.events.lock().unwrap().last_mut() {
            last.2 += n;
        }
    }
}

fn import_progress_moves_through_the_whole_import(env: Env) {
    const N: u64 = 3_000;
    demo(&env, "alice", N, 3);
    let path = env.backup("alice", "a.fzip");
    let recorder = Recorder::default();
    import(
        &env.engine,
        "carol",
        &path,
        &ImportOptions {
            merge: MergeStrategy::FailOnConflict,
            dry_run: false,
            batch_id: None,
            job_id: None,
        },
        &recorder,
    )
    .unwrap();
    let events = recorder.events.into_inner().unwrap();
    let names: Vec<&str> = events.iter().map(|(n, _, _)| n.as_str()).collect();

    // The long phases know their totals (from the manifest's counts) and reach them.
    for phase in ["verifying_transactions", "importing_transactions"] {
        let (_, total, done) = events
            .iter()
            .find(|(n, _, _)| n == phase)
            .unwrap_or_else(|| panic!("no {phase} in {names:?}"));
        assert_eq!((*total, *done), (N, N), "{phase}");
    }
    let (_, total, done) = events
        .iter()
        .find(|(n, _, _)| n == "importing_files")
        .unwrap_or_else(|| panic!("no importing_files in {names:?}"));
    assert!(
        *total > 0 && done == total,
        "importing_files {done} of {total}"
    );

    // The job's percentage, as the service computes it from these callbacks, has a band for
    // every phase, and moves through each of them in order.
    let mut percent = 45u8; // where an import's work starts, after its validation
    let mut seen = vec![percent];
    let mut last_band = (0u8, 0u8);
    for (name, total, done) in &events {
        let (from, to) = band(Work::Import, name);
        assert!(to > 0, "phase {name} has no band: {names:?}");
        assert!(
            from >= last_band.0,
            "{name} ({from}-{to}) goes back from {last_band:?}: {names:?}"
        );
        last_band = (from, to);
        percent = percent.max(from);
        seen.push(percent);
        if *total > 0 && to > from {
            // A few steps through the phase, as its advances arrive.
            for step in 1..=4u64 {
                let part = (*done).min(*total) * step / 4;
                let p = from + ((to - from) as f64 * part as f64 / *total as f64) as u8;
                percent = percent.max(p);
                seen.push(percent);
            }
        }
    }
    let at = |phase: &str| {
        let (from, to) = band(Work::Import, phase);
        (from, to)
    };
    // Transactions take the largest share, and the import ends near 100 %, not at 50.
    let (tx_from, tx_to) = at("importing_transactions");
    assert!(tx_to - tx_from >= 15, "{tx_from}-{tx_to}");
    assert!(*seen.last().unwrap() >= 98, "{seen:?}");
    let distinct: std::collections::BTreeSet<u8> = seen.iter().copied().collect();
    assert!(distinct.len() >= 10, "progress barely moves: {seen:?}");
    assert!(
        seen.iter().any(|p| (55..70).contains(p)) && seen.iter().any(|p| (75..94).contains(p)),
        "{seen:?}"
    );
}

common::on_every_backend!(
    empty_profiles_are_refused_unless_allowed_and_then_graded_poor,
    a_full_disk_is_reported_as_such,
    level_0_stores_every_entry,
    import_progress_moves_through_the_whole_import,
);
