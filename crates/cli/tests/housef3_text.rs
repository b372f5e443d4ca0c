//! The binary with HouseF3 backups whose strings hold NUL, control characters, CR/LF and emoji
//! (on SQLite + folder and on PostgreSQL + S3), and `verify`/`inspect` warning about values
//! HouseF3's own models would refuse.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use serde_json::Value;
use support::Env;

fn s(p: &std::path::Path) -> &str {
    p.to_str().unwrap()
}

#[test]
fn housef3_control_characters_restore_and_back_up_identically_on_both_backends() {
    let Some(bytes) = fzip_testkit::housef3_with_awkward_text() else {
        eprintln!("HouseF3 fixtures not found; skipped");
        return;
    };
    for env in [Some(Env::new()), Env::postgres_s3("text")]
        .into_iter()
        .flatten()
    {
        let package = env.path("awkward.fzip");
        std::fs::write(&package, &bytes).unwrap();
        env.cli_ok(&["verify", s(&package)]);
        env.cli_ok(&["restore", s(&package), "--user", "dana"]);
        assert_eq!(env.summary("dana")["transactions"], 200);
        let again = env.path("again.fzip");
        env.cli_ok(&["backup", "--user", "dana", "-o", s(&again)]);
        let (code, out) = env.cli(&["diff", "--strict", s(&package), s(&again)]);
        assert_eq!(code, 0, "{out}");
    }
}

const KWD_ACCOUNT: usize = 0;

#[test]
fn verify_and_inspect_warn_about_values_housef3_would_refuse() {
    let Some(dir) = fzip_testkit::housef3_fixture("small") else {
        eprintln!("HouseF3 fixtures not found; skipped");
        return;
    };
    let mut id = String::new();
    let bytes = fzip_testkit::edit_housef3_data(
        &std::fs::read(dir.join("backup.fzip")).unwrap(),
        "accounts",
        |accounts| {
            accounts[KWD_ACCOUNT]["currency"] = "KWD".into();
            id = accounts[KWD_ACCOUNT]["accountId"]
                .as_str()
                .unwrap()
                .to_string();
        },
    );
    let env = Env::new();
    let package = env.path("kwd.fzip");
    std::fs::write(&package, &bytes).unwrap();
    let line = format!("WARN account {id}: currency \"KWD\" is not one of HouseF3's currencies");
    for command in ["verify", "inspect"] {
        let (code, out) = env.cli(&[command, s(&package)]);
        assert_eq!(code, 0, "a warning never refuses: {out}");
        assert!(out.contains(&line), "{command}: {out}");
        let (code, out) = env.cli(&["--json", command, s(&package)]);
        assert_eq!(code, 0, "{out}");
        let v: Value = serde_json::from_str(&out).unwrap();
        assert_eq!(v["valid"], true);
        let w = v["housef3Warnings"].as_array().unwrap();
        assert_eq!(w.len(), 1, "{w:?}");
        assert_eq!(w[0]["entity"], "account");
        assert_eq!(w[0]["id"], id.as_str());
        assert_eq!(w[0]["field"], "currency");
        assert_eq!(w[0]["entry"], "data/accounts.json.gz");
    }
    // fzip keeps the value: it restores.
    env.cli_ok(&["restore", s(&package), "--user", "kw"]);
}

#[test]
fn a_demo_profile_holds_nothing_housef3_would_refuse() {
    let env = Env::new();
    env.cli_ok(&[
        "demo-profile",
        "--user",
        "demo",
        "--transactions",
        "2000",
        "--files",
        "12",
    ]);
    let package = env.path("demo.fzip");
    env.cli_ok(&["backup", "--user", "demo", "-o", s(&package)]);
    let out = env.cli_ok(&["verify", s(&package)]);
    assert!(!out.contains("HouseF3 would refuse"), "{out}");
    let v: Value = serde_json::from_str(&env.cli_ok(&["--json", "verify", s(&package)])).unwrap();
    assert_eq!(v["housef3Warnings"], serde_json::json!([]), "{v}");
    // Every account's currency is one HouseF3 knows.
    for a in v["preview"]["accounts"].as_array().unwrap() {
        let c = a["currency"].as_str().unwrap();
        assert!(fzip_model::Currency::HOUSEF3.contains(&c), "{c}");
    }
}
