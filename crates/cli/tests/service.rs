//! `fzip serve` end to end: a real server process driven over HTTP, as HouseF3's web client and
//! scripts would drive it.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use reqwest::blocking::{Client, Response};
use serde_json::{Value, json};

mod support;

use support::{Env, FZIP, Server};

/// Servers for these tests: any port, and leases of 2 s so that a dead server's jobs are taken
/// over quickly.
trait Serve {
    fn serve(&self, extra: &[&str]) -> Server;
    /// A server with its own data directory and extra environment.
    fn serve_with(&self, extra: &[&str], vars: &[(&str, &str)], data: &Path) -> Server;
}

impl Serve for Env {
    fn serve(&self, extra: &[&str]) -> Server {
        self.serve_with(extra, &[], &self.data())
    }

    fn serve_with(&self, extra: &[&str], vars: &[(&str, &str)], data: &Path) -> Server {
        let args = [&["--lease-secs", "2"], extra].concat();
        self.serve_on("127.0.0.1:0", &args, vars, data)
    }
}

fn client() -> Client {
    Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(120))
        .build()
        .unwrap()
}

fn json_of(r: Response) -> (StatusCode, Value) {
    let status = r.status();
    let text = r.text().unwrap();
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

struct Api<'a> {
    server: &'a Server,
    http: Client,
    token: String,
}

impl<'a> Api<'a> {
    fn new(server: &'a Server, token: String) -> Self {
        Api {
            server,
            http: client(),
            token,
        }
    }

    fn get(&self, path: &str) -> (StatusCode, Value) {
        json_of(
            self.http
                .get(self.server.url(path))
                .bearer_auth(&self.token)
                .send()
                .unwrap(),
        )
    }

    fn post(&self, path: &str, body: Value) -> (StatusCode, Value) {
        json_of(
            self.http
                .post(self.server.url(path))
                .bearer_auth(&self.token)
                .json(&body)
                .send()
                .unwrap(),
        )
    }

    fn delete(&self, path: &str) -> StatusCode {
        self.http
            .delete(self.server.url(path))
            .bearer_auth(&self.token)
            .send()
            .unwrap()
            .status()
    }

    /// Polls a job's status until `done` says so (or 120 s pass).
    fn wait(&self, path: &str, done: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            let (code, v) = self.get(path);
            assert_eq!(code, StatusCode::OK, "{path}: {v}");
            if done(&v) {
                return v;
            }
            assert!(
                Instant::now() < deadline,
                "timed out waiting on {path}: {v}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn backup(&self) -> String {
        let (code, v) = self.post("/fzip/backup", json!({ "description": "e2e" }));
        assert_eq!(code, StatusCode::ACCEPTED, "{v}");
        v["backupId"].as_str().unwrap().to_string()
    }

    fn wait_backup(&self, id: &str) -> Value {
        let v = self.wait(&format!("/fzip/backup/{id}/status"), |v| {
            v["status"] != "backup_initiated" && v["status"] != "backup_processing"
        });
        assert_eq!(v["status"], "backup_completed", "{v}");
        v
    }

    /// Downloads a completed backup through the redirect.
    fn download(&self, id: &str, to: &Path) {
        let r = self
            .http
            .get(self.server.url(&format!("/fzip/backup/{id}/download")))
            .bearer_auth(&self.token)
            .send()
            .unwrap();
        assert_eq!(r.status(), StatusCode::FOUND);
        let location = r.headers()["location"].to_str().unwrap().to_string();
        let bytes = client().get(&location).send().unwrap();
        assert_eq!(bytes.status(), StatusCode::OK);
        assert_eq!(bytes.headers()["content-type"], "application/zip");
        std::fs::write(to, bytes.bytes().unwrap()).unwrap();
    }

    /// HouseF3's upload flow: upload-url, then the form POST (fields first, then `file`).
    fn upload_form(&self, family: &str, package: &Path, body: Value) -> String {
        let (code, v) = self.post(&format!("/fzip/{family}/upload-url"), body);
        assert_eq!(code, StatusCode::ACCEPTED, "{v}");
        if v["method"] == "PUT" {
            // Presigned straight into S3: the server notices the upload when polled.
            let r = client()
                .put(v["url"].as_str().unwrap())
                .header("content-type", "application/zip")
                .body(std::fs::read(package).unwrap())
                .send()
                .unwrap();
            assert!(r.status().is_success(), "{}", r.text().unwrap_or_default());
            return v["jobId"].as_str().unwrap().to_string();
        }
        let mut form = reqwest::blocking::multipart::Form::new();
        for (k, val) in v["fields"].as_object().unwrap() {
            form = form.text(k.clone(), val.as_str().unwrap().to_string());
        }
        form = form.file("file", package).unwrap();
        let r = client()
            .post(v["url"].as_str().unwrap())
            .multipart(form)
            .send()
            .unwrap();
        assert_eq!(
            r.status(),
            StatusCode::NO_CONTENT,
            "{}",
            r.text().unwrap_or_default()
        );
        v["jobId"].as_str().unwrap().to_string()
    }

    fn wait_restore(&self, family: &str, id: &str, until: &[&str]) -> Value {
        self.wait(&format!("/fzip/{family}/{id}/status"), |v| {
            until.iter().any(|s| v["status"] == *s)
        })
    }
}

fn backup_download_restore_end_to_end(env: Env) {
    env.cli_ok(&[
        "demo-profile",
        "--user",
        "alice",
        "--transactions",
        "3000",
        "--files",
        "4",
    ]);
    let server = env.serve(&[]);
    let alice = Api::new(&server, env.token("alice"));
    let bob = Api::new(&server, env.token("bob"));

    // Backup, polled to completion.
    let id = alice.backup();
    let status = alice.wait_backup(&id);
    assert_eq!(status["progress"], 100);
    assert_eq!(status["dataSummary"]["transactions"], 3000);
    for key in [
        "packageSize",
        "expiresAt",
        "completedAt",
        "downloadUrl",
        "packageSha256",
        "manifestChecksum",
    ] {
        assert!(status.get(key).is_some(), "status lacks {key}: {status}");
    }
    for (k, v) in status.as_object().unwrap() {
        assert!(!v.is_null(), "{k} is null; absent values must be omitted");
    }
    // The quality block, measured.
    let q = &status["validation"];
    assert_eq!(q["overall_quality"], "excellent", "{status}");
    assert_eq!(q["files_processed"], 4);
    assert_eq!(q["files_failed"], 0);
    assert_eq!(q["completeness_score"], 100.0);
    let list = alice.get("/fzip/backup").1;
    assert_eq!(list["total"], 1);
    assert_eq!(list["backups"][0]["backupId"], id.as_str());

    // Download through the redirect; the bytes pass `fzip verify`.
    let package = env.path("alice.fzip");
    alice.download(&id, &package);
    let verify = env.cli_ok(&["verify", package.to_str().unwrap()]);
    assert!(verify.contains("VALID"), "{verify}");
    // JSON form of the download route.
    let r = alice
        .http
        .get(server.url(&format!("/fzip/backup/{id}/download")))
        .bearer_auth(&alice.token)
        .header("accept", "application/json")
        .send()
        .unwrap();
    let (code, d) = json_of(r);
    assert_eq!(code, StatusCode::OK);
    assert!(d["downloadUrl"].as_str().unwrap().starts_with("http"));
    assert_eq!(d["filename"], format!("backup_{id}.fzip"));
    assert!(d["expiresAt"].is_i64());

    // Upload into bob's restore (HouseF3's form POST), validation, summary, start, completed.
    let rid = bob.upload_form("restore", &package, json!({}));
    let v = bob.wait_restore(
        "restore",
        &rid,
        &["restore_awaiting_confirmation", "restore_validation_failed"],
    );
    assert_eq!(v["status"], "restore_awaiting_confirmation", "{v}");
    let vr = &v["validationResults"];
    assert_eq!(
        (
            vr["profileEmpty"].clone(),
            vr["schemaValid"].clone(),
            vr["businessValid"].clone(),
            vr["ready"].clone()
        ),
        (json!(true), json!(true), json!(true), json!(true))
    );
    let summary = &v["summary"];
    assert_eq!(summary["transactions"]["count"], 3000);
    assert_eq!(summary["accounts"]["items"].as_array().unwrap().len(), 12);
    // Issue 11: `dateRange` is HouseF3's (YYYY-MM-DD text); the milliseconds are `dateRangeMs`.
    assert!(summary["transactions"]["dateRangeMs"]["earliest"].is_i64());
    assert!(summary["transactions"]["dateRange"]["earliest"].is_string());
    assert_eq!(
        summary["transactionFiles"]["items"]
            .as_array()
            .unwrap()
            .len(),
        4
    );
    let (code, started) = bob.post(&format!("/fzip/restore/{rid}/start"), json!({}));
    assert_eq!(code, StatusCode::ACCEPTED, "{started}");
    let done = bob.wait_restore("restore", &rid, &["restore_completed", "restore_failed"]);
    assert_eq!(done["status"], "restore_completed", "{done}");
    assert_eq!(done["restoreResults"]["transactions"]["created"], 3000);
    assert!(
        done.get("summary").is_none(),
        "the summary is shown only while awaiting confirmation"
    );

    // Bob now holds alice's profile.
    let bob_pkg = env.path("bob.fzip");
    env.cli_ok(&["backup", "--user", "bob", "-o", bob_pkg.to_str().unwrap()]);
    env.cli_ok(&["diff", package.to_str().unwrap(), bob_pkg.to_str().unwrap()]);

    // A second restore into bob: 409 PROFILE_NOT_EMPTY with what is there.
    let (code, err) = bob.post("/fzip/restore", json!({}));
    assert_eq!(code, StatusCode::CONFLICT);
    assert_eq!(err["error"], "PROFILE_NOT_EMPTY");
    assert_eq!(err["profileSummary"]["transactions_count"], 3000);
    assert!(err["suggestion"].is_string());
    assert_eq!(err["status"], 409);

    // The plain PUT upload works too (carol), with the legacy POST /fzip/restore flow.
    let carol = Api::new(&server, env.token("carol"));
    let (code, created) = carol.post("/fzip/restore", json!({}));
    assert_eq!(code, StatusCode::ACCEPTED, "{created}");
    let cid = created["restoreId"].as_str().unwrap().to_string();
    let put_url = created["uploadUrl"]["url"].as_str().unwrap();
    let r = client()
        .put(put_url)
        .body(std::fs::read(&package).unwrap())
        .send()
        .unwrap();
    assert!(r.status().is_success(), "{}", r.status());
    let uploaded = carol.get(&format!("/fzip/restore/{cid}/status")).1;
    assert_eq!(
        uploaded["status"], "restore_uploaded",
        "the legacy flow waits for /upload"
    );
    let (code, _) = carol.post(&format!("/fzip/restore/{cid}/upload"), json!({}));
    assert_eq!(code, StatusCode::ACCEPTED);
    carol.wait_restore("restore", &cid, &["restore_awaiting_confirmation"]);
    // Restores are listed, newest first.
    let list = carol.get("/fzip/restore").1;
    assert_eq!(list["restoreJobs"][0]["restoreId"], cid.as_str());
    assert!(list.get("nextEvaluatedKey").is_none());
    // Deleting the restore job deletes its package too.
    assert_eq!(
        carol.delete(&format!("/fzip/restore/{cid}")),
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        carol.get(&format!("/fzip/restore/{cid}/status")).0,
        StatusCode::NOT_FOUND
    );
    assert!(
        !env.blobs().join("uploads/carol").exists()
            || std::fs::read_dir(env.blobs().join("uploads/carol"))
                .unwrap()
                .next()
                .is_none()
    );

    // Deleting a backup deletes its package; its download is then gone.
    assert_eq!(alice.delete(&format!("/fzip/backup/{id}")), StatusCode::OK);
    assert_eq!(
        alice.get(&format!("/fzip/backup/{id}/download")).0,
        StatusCode::NOT_FOUND
    );
    let packages = env.blobs().join("packages/alice");
    assert!(!packages.exists() || std::fs::read_dir(&packages).unwrap().next().is_none());
}

fn other_users_ids_are_not_found_and_tokens_are_checked(env: Env) {
    env.cli_ok(&[
        "demo-profile",
        "--user",
        "alice",
        "--transactions",
        "200",
        "--files",
        "2",
    ]);
    let server = env.serve(&["--url-ttl-secs", "2"]);
    let alice = Api::new(&server, env.token("alice"));
    let bob = Api::new(&server, env.token("bob"));
    let backup = alice.backup();
    alice.wait_backup(&backup);
    let package = env.path("a.fzip");
    alice.download(&backup, &package);
    // An awaiting restore of alice's.
    let env2_user = Api::new(&server, env.token("dave"));
    let restore = env2_user.upload_form("restore", &package, json!({}));
    env2_user.wait_restore("restore", &restore, &["restore_awaiting_confirmation"]);
    let before_backup = alice.get(&format!("/fzip/backup/{backup}/status")).1;
    let before_restore = env2_user.get(&format!("/fzip/restore/{restore}/status")).1;

    // Every route, with bob's token and the others' ids: 404, and nothing changes.
    for path in [
        format!("/fzip/backup/{backup}/status"),
        format!("/fzip/backup/{backup}/download"),
        format!("/fzip/export/{backup}/status"),
        format!("/fzip/restore/{restore}/status"),
        format!("/fzip/import/{restore}/status"),
        format!("/api/fzip/backup/{backup}/status"),
    ] {
        assert_eq!(bob.get(&path).0, StatusCode::NOT_FOUND, "GET {path}");
    }
    for path in [
        format!("/fzip/restore/{restore}/start"),
        format!("/fzip/restore/{restore}/cancel"),
        format!("/fzip/restore/{restore}/retry"),
        format!("/fzip/restore/{restore}/upload"),
        format!("/fzip/import/{restore}/start"),
    ] {
        assert_eq!(
            bob.post(&path, json!({})).0,
            StatusCode::NOT_FOUND,
            "POST {path}"
        );
    }
    assert_eq!(
        bob.delete(&format!("/fzip/backup/{backup}")),
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        bob.delete(&format!("/fzip/restore/{restore}")),
        StatusCode::NOT_FOUND
    );
    // A job of another family is not found either (even for its owner).
    assert_eq!(
        alice.get(&format!("/fzip/restore/{backup}/status")).0,
        StatusCode::NOT_FOUND
    );
    assert_eq!(bob.get("/fzip/backup").1["total"], 0);
    assert_eq!(
        alice.get(&format!("/fzip/backup/{backup}/status")).1["status"],
        before_backup["status"]
    );
    let after = env2_user.get(&format!("/fzip/restore/{restore}/status")).1;
    assert_eq!(after["status"], before_restore["status"]);
    assert_eq!(after["updatedAt"], before_restore["updatedAt"]);
    assert!(env.summary("bob")["empty"].as_bool().unwrap());

    // No, forged, expired and wrong-audience tokens: 401 with a problem document.
    let http = client();
    let r = http.get(server.url("/fzip/backup")).send().unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(r.headers()["content-type"], "application/problem+json");
    assert!(r.headers().contains_key("www-authenticate"));
    let secret = std::fs::read_to_string(env.data().join("jwt-secret")).unwrap();
    let now = chrono_now();
    let sign = |claims: Value, key: &[u8]| {
        jsonwebtoken::encode(
            &jsonwebtoken::Header::default(),
            &claims,
            &jsonwebtoken::EncodingKey::from_secret(key),
        )
        .unwrap()
    };
    let cases = [
        (
            "forged",
            sign(
                json!({"sub": "alice", "exp": now + 600, "iss": "fzip", "aud": "fzip"}),
                b"not-the-secret-not-the-secret-xx",
            ),
        ),
        (
            "expired",
            sign(
                json!({"sub": "alice", "exp": now - 600, "iss": "fzip", "aud": "fzip"}),
                secret.trim().as_bytes(),
            ),
        ),
        (
            "wrong audience",
            sign(
                json!({"sub": "alice", "exp": now + 600, "iss": "fzip", "aud": "someone-else"}),
                secret.trim().as_bytes(),
            ),
        ),
        (
            "wrong issuer",
            sign(
                json!({"sub": "alice", "exp": now + 600, "iss": "evil", "aud": "fzip"}),
                secret.trim().as_bytes(),
            ),
        ),
        (
            "no sub",
            sign(
                json!({"exp": now + 600, "iss": "fzip", "aud": "fzip"}),
                secret.trim().as_bytes(),
            ),
        ),
        ("garbage", "not.a.token".to_string()),
    ];
    for (what, token) in cases {
        let r = http
            .get(server.url("/fzip/backup"))
            .bearer_auth(&token)
            .send()
            .unwrap();
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED, "{what}");
        let (_, body) = json_of(r);
        assert_eq!(body["error"], "UNAUTHORIZED", "{what}");
    }

    // Signed URLs: a tampered one gets 403, and so does an expired one.
    let d = alice
        .http
        .get(server.url(&format!("/fzip/backup/{backup}/download?format=json")))
        .bearer_auth(&alice.token)
        .send()
        .unwrap();
    let url = json_of(d).1["downloadUrl"].as_str().unwrap().to_string();
    assert_eq!(http.get(&url).send().unwrap().status(), StatusCode::OK);
    let mut tampered = url.clone().into_bytes();
    let at = tampered.len() - 40;
    tampered[at] = if tampered[at] == b'0' { b'1' } else { b'0' };
    let tampered = String::from_utf8(tampered).unwrap();
    assert_eq!(
        http.get(&tampered).send().unwrap().status(),
        StatusCode::FORBIDDEN
    );
    std::thread::sleep(Duration::from_millis(2500));
    assert_eq!(
        http.get(&url).send().unwrap().status(),
        StatusCode::FORBIDDEN
    );
}

fn chrono_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

fn cancel_retry_and_restart(env: Env) {
    env.cli_ok(&[
        "-q",
        "demo-profile",
        "--user",
        "alice",
        "--transactions",
        "200000",
        "--files",
        "10",
    ]);
    let package = env.path("big.fzip");
    env.cli_ok(&[
        "-q",
        "backup",
        "--user",
        "alice",
        "-o",
        package.to_str().unwrap(),
    ]);
    let server = env.serve(&[]);
    let bob = Api::new(&server, env.token("bob"));

    // Cancel during the restore of 200,000 transactions: bob's profile stays empty.
    let rid = bob.upload_form("restore", &package, json!({}));
    bob.wait_restore("restore", &rid, &["restore_awaiting_confirmation"]);
    let (code, _) = bob.post(&format!("/fzip/restore/{rid}/start"), json!({}));
    assert_eq!(code, StatusCode::ACCEPTED);
    bob.wait(&format!("/fzip/restore/{rid}/status"), |v| {
        v["status"] != "restore_processing" || v["currentPhase"] == "restoring_transactions"
    });
    let (code, canceled) = bob.post(&format!("/fzip/restore/{rid}/cancel"), json!({}));
    assert_eq!(code, StatusCode::OK, "{canceled}");
    assert_eq!(canceled["status"], "restore_canceled");
    let final_status = bob.get(&format!("/fzip/restore/{rid}/status")).1;
    assert_eq!(final_status["status"], "restore_canceled");
    assert!(final_status["completedAt"].is_i64());
    assert!(
        env.summary("bob")["empty"].as_bool().unwrap(),
        "a canceled restore left data behind"
    );
    // Canceling again: the job is terminal → 409.
    assert_eq!(
        bob.post(&format!("/fzip/restore/{rid}/cancel"), json!({}))
            .0,
        StatusCode::CONFLICT
    );

    // Retry after a failed validation: bob's profile is not empty, so validation fails; once it
    // is cleared, a retry validates again and the restore can go ahead.
    env.cli_ok(&[
        "-q",
        "demo-profile",
        "--user",
        "bob",
        "--transactions",
        "10",
        "--files",
        "1",
    ]);
    let small = env.path("small.fzip");
    env.cli_ok(&[
        "-q",
        "demo-profile",
        "--user",
        "erin",
        "--transactions",
        "300",
        "--files",
        "2",
    ]);
    env.cli_ok(&[
        "-q",
        "backup",
        "--user",
        "erin",
        "-o",
        small.to_str().unwrap(),
    ]);
    let rid2 = bob.upload_form("restore", &small, json!({}));
    let failed = bob.wait_restore(
        "restore",
        &rid2,
        &["restore_validation_failed", "restore_awaiting_confirmation"],
    );
    assert_eq!(failed["status"], "restore_validation_failed", "{failed}");
    assert_eq!(failed["errorCode"], "PROFILE_NOT_EMPTY");
    assert_eq!(failed["validationResults"]["profileEmpty"], false);
    assert_eq!(
        bob.post(&format!("/fzip/restore/{rid2}/start"), json!({}))
            .0,
        StatusCode::CONFLICT
    );
    env.cli_ok(&["profile", "clear", "--user", "bob", "--yes"]);
    let (code, _) = bob.post(&format!("/fzip/restore/{rid2}/retry"), json!({}));
    assert_eq!(code, StatusCode::ACCEPTED);
    let again = bob.wait_restore(
        "restore",
        &rid2,
        &["restore_awaiting_confirmation", "restore_validation_failed"],
    );
    assert_eq!(again["status"], "restore_awaiting_confirmation", "{again}");
    assert!(again.get("error").is_none());

    // A server killed mid-job, then restarted: the job ends (completed or failed), never stuck.
    let alice = Api::new(&server, env.token("alice"));
    let id = alice.backup();
    alice.wait(&format!("/fzip/backup/{id}/status"), |v| {
        v["status"] == "backup_processing"
    });
    drop(alice);
    drop(bob);
    server.kill();
    let server = env.serve(&[]);
    let alice = Api::new(&server, env.token("alice"));
    let v = alice.wait(&format!("/fzip/backup/{id}/status"), |v| {
        v["status"] == "backup_completed" || v["status"] == "backup_failed"
    });
    assert_eq!(v["status"], "backup_completed", "{v}");
    let log = server.log.lock().unwrap().clone();
    assert!(
        log.contains(&id) && log.contains("attempt=2"),
        "the job was not picked up again:\n{log}"
    );
}

fn legacy_export_and_import_routes(env: Env) {
    env.cli_ok(&[
        "demo-profile",
        "--user",
        "alice",
        "--transactions",
        "500",
        "--files",
        "2",
    ]);
    let server = env.serve(&[]);
    let alice = Api::new(&server, env.token("alice"));
    let (code, v) = alice.post(
        "/fzip/export",
        json!({ "includeAnalytics": false, "description": "Monthly backup" }),
    );
    assert_eq!(code, StatusCode::ACCEPTED, "{v}");
    let id = v["exportId"].as_str().unwrap().to_string();
    let done = alice.wait(&format!("/fzip/export/{id}/status"), |v| {
        v["status"] == "export_completed" || v["status"] == "export_failed"
    });
    assert_eq!(done["status"], "export_completed");
    assert_eq!(done["exportId"], id.as_str());
    let list = alice.get("/fzip/export").1;
    assert_eq!(list["exports"][0]["exportId"], id.as_str());
    let r = alice
        .http
        .get(server.url(&format!("/fzip/export/{id}/download")))
        .bearer_auth(&alice.token)
        .send()
        .unwrap();
    assert_eq!(r.status(), StatusCode::FOUND);
    let bytes = client()
        .get(r.headers()["location"].to_str().unwrap())
        .send()
        .unwrap()
        .bytes()
        .unwrap();
    let package = env.path("export.fzip");
    std::fs::write(&package, &bytes).unwrap();
    assert!(
        env.cli_ok(&["verify", package.to_str().unwrap()])
            .contains("VALID")
    );

    // Imports: the routes, the merge strategy, a preview of the merge, then the merge.
    let bob = Api::new(&server, env.token("bob"));
    assert_eq!(
        bob.post(
            "/fzip/import",
            json!({ "mergeStrategy": "merge_everything" })
        )
        .0,
        StatusCode::BAD_REQUEST
    );
    assert_eq!(
        bob.post("/fzip/restore", json!({ "mergeStrategy": "overwrite" }))
            .0,
        StatusCode::BAD_REQUEST
    );
    let import = |merge: &str| {
        let iid = bob.upload_form("import", &package, json!({ "mergeStrategy": merge }));
        let v = bob.wait_restore(
            "import",
            &iid,
            &["import_awaiting_confirmation", "import_validation_failed"],
        );
        (iid, v)
    };
    let (iid, v) = import("skip_existing");
    assert_eq!(v["status"], "import_awaiting_confirmation", "{v}");
    assert_eq!(v["importId"], iid.as_str());
    assert_eq!(v["mergeStrategy"], "skip_existing");
    assert_eq!(v["importPreview"]["created"]["transactions"], 500, "{v:#}");
    assert_eq!(v["importPreview"]["dryRun"], true);
    let (code, _) = bob.post(&format!("/fzip/import/{iid}/start"), json!({}));
    assert_eq!(code, StatusCode::ACCEPTED);
    let v = bob.wait_restore("import", &iid, &["import_completed", "import_failed"]);
    assert_eq!(v["status"], "import_completed", "{v}");
    assert_eq!(v["importResults"]["created"]["transactions"], 500, "{v}");
    assert_eq!(v["importResults"]["created"], v["importPreview"]["created"]);
    assert_eq!(v["restoreResults"]["transactions"]["created"], 500);
    assert_eq!(
        bob.get("/fzip/import").1["importJobs"][0]["importId"],
        iid.as_str()
    );
    assert_eq!(env.summary("bob")["transactions"], 500);

    // The same package again under fail_on_conflict: refused at validation, every conflict
    // listed, nothing changed.
    let (_, v) = import("fail_on_conflict");
    assert_eq!(v["status"], "import_validation_failed", "{v}");
    assert_eq!(v["errorCode"], "IMPORT_CONFLICT");
    assert_eq!(v["importPreview"]["conflicts"]["transactions"], 500, "{v}");
    assert!(v["error"].as_str().unwrap().contains("fail_on_conflict"));
    // And under skip_existing: everything is already there.
    let (iid, v) = import("skip_existing");
    assert_eq!(v["importPreview"]["unchanged"]["transactions"], 500, "{v}");
    bob.post(&format!("/fzip/import/{iid}/start"), json!({}));
    let v = bob.wait_restore("import", &iid, &["import_completed", "import_failed"]);
    assert_eq!(v["importResults"]["created"]["transactions"], 0, "{v}");
    assert_eq!(env.summary("bob")["transactions"], 500);
}

fn selective_backups_through_the_api(env: Env) {
    env.cli_ok(&[
        "demo-profile",
        "--user",
        "alice",
        "--transactions",
        "1000",
        "--files",
        "2",
    ]);
    let server = env.serve(&[]);
    let alice = Api::new(&server, env.token("alice"));
    let (code, v) = alice.post(
        "/fzip/backup",
        json!({ "backupType": "transactions_only", "dateRangeStart": 1_672_531_200_000i64 }),
    );
    assert_eq!(code, StatusCode::ACCEPTED, "{v}");
    let id = v["backupId"].as_str().unwrap().to_string();
    let status = alice.wait_backup(&id);
    assert_eq!(status["backupType"], "transactions_only", "{status}");
    assert_eq!(status["filters"]["dateRangeStart"], 1_672_531_200_000i64);
    assert_eq!(status["selection"]["partial"], true);
    assert_eq!(status["dataSummary"]["accounts"], 0);
    let package = env.path("tx.fzip");
    alice.download(&id, &package);
    let inspect: Value =
        serde_json::from_str(&env.cli_ok(&["--json", "inspect", package.to_str().unwrap()]))
            .unwrap();
    assert_eq!(inspect["valid"], true);
    assert_eq!(
        inspect["manifest"]["selection"]["backupType"],
        "transactions_only"
    );
    let held = inspect["counts"]["transactions"].as_u64().unwrap();
    assert!(held > 0 && held < 1000, "{held}");
    // Back into the profile it came from: every transaction is already there.
    let iid = alice.upload_form(
        "import",
        &package,
        json!({ "mergeStrategy": "skip_existing" }),
    );
    let v = alice.wait_restore(
        "import",
        &iid,
        &["import_awaiting_confirmation", "import_validation_failed"],
    );
    assert_eq!(v["status"], "import_awaiting_confirmation", "{v}");
    assert_eq!(v["importPreview"]["unchanged"]["transactions"], held);
    // A transactions-only package into a profile without its accounts cannot be imported.
    let carol = Api::new(&server, env.token("carol"));
    let iid = carol.upload_form(
        "import",
        &package,
        json!({ "mergeStrategy": "skip_existing" }),
    );
    let v = carol.wait_restore(
        "import",
        &iid,
        &["import_awaiting_confirmation", "import_validation_failed"],
    );
    assert_eq!(v["status"], "import_validation_failed", "{v}");
    assert!(
        v["error"]
            .as_str()
            .unwrap()
            .contains("neither the package nor the profile"),
        "{v}"
    );
}

#[test]
fn openapi_metrics_audit_and_conventions() {
    let env = Env::new();
    env.cli_ok(&[
        "demo-profile",
        "--user",
        "alice",
        "--transactions",
        "300",
        "--files",
        "2",
    ]);
    let server = env.serve(&[]);
    let http = client();
    let (code, doc) = json_of(http.get(server.url("/openapi.json")).send().unwrap());
    assert_eq!(code, StatusCode::OK);
    let paths = doc["paths"].as_object().unwrap();
    for (path, methods) in [
        ("/fzip/backup", &["get", "post"][..]),
        ("/fzip/backup/{id}/status", &["get"]),
        ("/fzip/backup/{id}/download", &["get"]),
        ("/fzip/backup/{id}", &["delete"]),
        ("/fzip/restore", &["get", "post"]),
        ("/fzip/restore/upload-url", &["post"]),
        ("/fzip/restore/{id}/upload", &["post"]),
        ("/fzip/restore/{id}/status", &["get"]),
        ("/fzip/restore/{id}/start", &["post"]),
        ("/fzip/restore/{id}/cancel", &["post"]),
        ("/fzip/restore/{id}/retry", &["post"]),
        ("/fzip/restore/{id}", &["delete"]),
        ("/fzip/export", &["get", "post"]),
        ("/fzip/export/{id}/status", &["get"]),
        ("/fzip/export/{id}/download", &["get"]),
        ("/fzip/export/{id}", &["delete"]),
        ("/fzip/import", &["get", "post"]),
        ("/fzip/import/upload-url", &["post"]),
        ("/fzip/import/{id}/upload", &["post"]),
        ("/fzip/import/{id}/status", &["get"]),
        ("/fzip/import/{id}/start", &["post"]),
        ("/fzip/import/{id}/cancel", &["post"]),
        ("/fzip/import/{id}/retry", &["post"]),
        ("/fzip/import/{id}", &["delete"]),
        ("/fzip/files/{token}", &["get"]),
        ("/fzip/upload/{token}", &["put", "post"]),
        ("/healthz", &["get"]),
        ("/metrics", &["get"]),
    ] {
        let item = paths
            .get(path)
            .unwrap_or_else(|| panic!("/openapi.json lacks {path}"));
        for m in methods {
            assert!(item.get(*m).is_some(), "{m} {path} missing");
        }
    }
    assert_eq!(
        http.get(server.url("/healthz")).send().unwrap().status(),
        StatusCode::OK
    );

    let metrics_before = http
        .get(server.url("/metrics"))
        .send()
        .unwrap()
        .text()
        .unwrap();
    let alice = Api::new(&server, env.token("alice"));
    // Idempotency-Key: the same key gives the same job.
    let r1 = alice
        .http
        .post(server.url("/fzip/backup"))
        .bearer_auth(&alice.token)
        .header("Idempotency-Key", "k-1")
        .json(&json!({}))
        .send()
        .unwrap();
    assert_eq!(r1.status(), StatusCode::ACCEPTED);
    let location = r1.headers()["location"].to_str().unwrap().to_string();
    let j1 = json_of(r1).1;
    assert_eq!(
        location,
        format!("/fzip/backup/{}/status", j1["backupId"].as_str().unwrap())
    );
    let r2 = alice
        .http
        .post(server.url("/fzip/backup"))
        .bearer_auth(&alice.token)
        .header("Idempotency-Key", "k-1")
        .json(&json!({}))
        .send()
        .unwrap();
    let j2 = json_of(r2).1;
    assert_eq!(j1["backupId"], j2["backupId"]);
    let id = j1["backupId"].as_str().unwrap().to_string();
    alice.wait_backup(&id);
    assert_eq!(alice.get("/fzip/backup").1["total"], 1);

    // Errors are problem documents with HouseF3's keys; bad input is 400, not 500.
    let r = alice
        .http
        .post(server.url("/fzip/backup"))
        .bearer_auth(&alice.token)
        .body("{not json")
        .send()
        .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert_eq!(r.headers()["content-type"], "application/problem+json");
    let (_, p) = json_of(r);
    for key in ["type", "title", "status", "detail", "error", "message"] {
        assert!(p.get(key).is_some(), "problem lacks {key}: {p}");
    }
    assert_eq!(
        alice
            .post("/fzip/backup", json!({ "backupType": "everything" }))
            .0,
        StatusCode::BAD_REQUEST
    );
    assert_eq!(alice.get("/fzip/backup?limit=0").0, StatusCode::BAD_REQUEST);
    assert_eq!(
        alice.get("/fzip/backup?cursor=zzz").0,
        StatusCode::BAD_REQUEST
    );
    // State machine: cancel of a backup, start of an uploaded restore, cancel of a terminal one.
    assert_eq!(
        alice
            .post(&format!("/fzip/restore/{id}/cancel"), json!({}))
            .0,
        StatusCode::NOT_FOUND
    );
    let (_, created) = alice.post("/fzip/import", json!({}));
    let iid = created["importId"].as_str().unwrap();
    let (code, e) = alice.post(&format!("/fzip/import/{iid}/start"), json!({}));
    assert_eq!(code, StatusCode::CONFLICT, "{e}");
    assert_eq!(
        alice
            .post(&format!("/fzip/import/{iid}/upload"), json!({}))
            .0,
        StatusCode::CONFLICT,
        "no package yet"
    );
    assert_eq!(
        alice
            .post(&format!("/fzip/import/{iid}/cancel"), json!({}))
            .0,
        StatusCode::OK
    );
    assert_eq!(
        alice
            .post(&format!("/fzip/import/{iid}/cancel"), json!({}))
            .0,
        StatusCode::CONFLICT
    );
    // Range and ETag on downloads.
    let d = alice
        .http
        .get(server.url(&format!("/fzip/backup/{id}/download?format=json")))
        .bearer_auth(&alice.token)
        .send()
        .unwrap();
    let url = json_of(d).1["downloadUrl"].as_str().unwrap().to_string();
    let full = http.get(&url).send().unwrap();
    let etag = full.headers()["etag"].to_str().unwrap().to_string();
    let full = full.bytes().unwrap();
    let part = http
        .get(&url)
        .header("range", "bytes=10-29")
        .send()
        .unwrap();
    assert_eq!(part.status(), StatusCode::PARTIAL_CONTENT);
    assert_eq!(
        part.headers()["content-range"].to_str().unwrap(),
        format!("bytes 10-29/{}", full.len())
    );
    assert_eq!(&part.bytes().unwrap()[..], &full[10..30]);
    let cached = http
        .get(&url)
        .header("if-none-match", &etag)
        .send()
        .unwrap();
    assert_eq!(cached.status(), StatusCode::NOT_MODIFIED);
    let bad = http
        .get(&url)
        .header("range", format!("bytes={}-", full.len() + 10))
        .send()
        .unwrap();
    assert_eq!(bad.status(), StatusCode::RANGE_NOT_SATISFIABLE);

    // Job metrics and audit records are written just after the answers: wait for them
    // (bounded).
    let deadline = Instant::now() + Duration::from_secs(10);
    let metrics_after = loop {
        let text = http
            .get(server.url("/metrics"))
            .send()
            .unwrap()
            .text()
            .unwrap();
        if text.contains("fzip_jobs_total{") || Instant::now() > deadline {
            break text;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(
        !metrics_before.contains("fzip_jobs_total{"),
        "{metrics_before}"
    );
    assert!(
        metrics_after.contains("fzip_jobs_total{type=\"backup\",outcome=\"completed\"} 1"),
        "{metrics_after}"
    );
    assert!(metrics_after.contains("fzip_job_duration_seconds"));
    assert!(metrics_after.contains("fzip_package_bytes"));
    assert!(metrics_after.contains("fzip_entities_processed_total"));

    let actions = || -> Vec<String> {
        let audit: Value =
            serde_json::from_str(&env.cli_ok(&["--json", "audit", "--user", "alice"])).unwrap();
        audit["records"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| {
                format!(
                    "{}:{}",
                    r["action"].as_str().unwrap(),
                    r["outcome"].as_str().unwrap()
                )
            })
            .collect()
    };
    let expected = [
        "backup.create:ok",
        "backup.backup:completed",
        "package.download:ok",
        "import.cancel:ok",
        "import.cancel:INVALID_STATE",
    ];
    let deadline = Instant::now() + Duration::from_secs(10);
    let actions = loop {
        let a = actions();
        if expected.iter().all(|e| a.iter().any(|x| x == e)) || Instant::now() > deadline {
            break a;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    for expected in expected {
        assert!(
            actions.iter().any(|a| a == expected),
            "audit lacks {expected}: {actions:?}"
        );
    }
}

#[test]
fn status_polls_stay_fast_during_a_large_backup() {
    let env = Env::new();
    env.cli_ok(&[
        "-q",
        "demo-profile",
        "--user",
        "alice",
        "--transactions",
        "200000",
        "--files",
        "10",
    ]);
    let server = env.serve(&[]);
    let alice = Api::new(&server, env.token("alice"));
    let id = alice.backup();
    let mut times = Vec::new();
    let mut phases = std::collections::BTreeSet::new();
    for _ in 0..200 {
        let t = Instant::now();
        let (code, v) = alice.get(&format!("/fzip/backup/{id}/status"));
        times.push(t.elapsed());
        assert_eq!(code, StatusCode::OK);
        phases.insert(v["currentPhase"].as_str().unwrap_or("").to_string());
        std::thread::sleep(Duration::from_millis(5));
    }
    times.sort();
    let p50 = times[times.len() / 2];
    let p99 = times[times.len() * 99 / 100];
    eprintln!(
        "status polls during a 200,000-transaction backup: p50 {p50:?}, p99 {p99:?}, phases seen {phases:?}"
    );
    alice.wait_backup(&id);
}

/// A minimal HTTP server handing out one JWKS document.
fn jwks_server(jwks: String) -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let mut stream = stream;
            let mut buf = [0u8; 4096];
            let _ = std::io::Read::read(&mut stream, &mut buf);
            let response = format!(
                "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{}",
                jwks.len(),
                jwks
            );
            let _ = std::io::Write::write_all(&mut stream, response.as_bytes());
        }
    });
    format!("http://{addr}/.well-known/jwks.json")
}

#[test]
fn rs256_tokens_from_a_jwks_url() {
    let pem =
        std::fs::read(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/test-rsa-key.pem"))
            .unwrap();
    let key = jsonwebtoken::EncodingKey::from_rsa_pem(&pem).unwrap();
    let mut jwk =
        jsonwebtoken::jwk::Jwk::from_encoding_key(&key, jsonwebtoken::Algorithm::RS256).unwrap();
    jwk.common.key_id = Some("test-key".into());
    let jwks = serde_json::to_string(&json!({ "keys": [jwk] })).unwrap();
    let url = jwks_server(jwks);
    let env = Env::new();
    let issuer = "https://cognito-idp.eu-west-1.amazonaws.com/eu-west-1_TEST";
    let server = env.serve(&[
        "--jwks-url",
        &url,
        "--jwt-issuer",
        issuer,
        "--jwt-audience",
        "app-client",
    ]);
    let now = chrono_now();
    let sign = |claims: Value, kid: &str| {
        let mut h = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256);
        h.kid = Some(kid.into());
        jsonwebtoken::encode(&h, &claims, &key).unwrap()
    };
    let http = client();
    let call = |token: &str| {
        http.get(server.url("/fzip/backup"))
            .bearer_auth(token)
            .send()
            .unwrap()
            .status()
    };
    // A Cognito ID token (aud) and an access token (client_id) are both accepted.
    assert_eq!(
        call(&sign(
            json!({"sub": "u1", "exp": now + 600, "iss": issuer, "aud": "app-client"}),
            "test-key"
        )),
        StatusCode::OK
    );
    assert_eq!(
        call(&sign(
            json!({"sub": "u1", "exp": now + 600, "iss": issuer, "client_id": "app-client", "token_use": "access"}),
            "test-key"
        )),
        StatusCode::OK
    );
    for (what, token) in [
        (
            "wrong issuer",
            sign(
                json!({"sub": "u1", "exp": now + 600, "iss": "https://evil", "aud": "app-client"}),
                "test-key",
            ),
        ),
        (
            "wrong audience",
            sign(
                json!({"sub": "u1", "exp": now + 600, "iss": issuer, "aud": "other"}),
                "test-key",
            ),
        ),
        (
            "expired",
            sign(
                json!({"sub": "u1", "exp": now - 600, "iss": issuer, "aud": "app-client"}),
                "test-key",
            ),
        ),
        (
            "unknown key",
            sign(
                json!({"sub": "u1", "exp": now + 600, "iss": issuer, "aud": "app-client"}),
                "other-key",
            ),
        ),
        (
            "HS256 with a shared secret",
            jsonwebtoken::encode(
                &jsonwebtoken::Header::default(),
                &json!({"sub": "u1", "exp": now + 600, "iss": issuer, "aud": "app-client"}),
                &jsonwebtoken::EncodingKey::from_secret(&[7u8; 32]),
            )
            .unwrap(),
        ),
    ] {
        assert_eq!(call(&token), StatusCode::UNAUTHORIZED, "{what}");
    }
}

fn graceful_shutdown_rolls_back_and_requeues_running_work(env: Env) {
    env.cli_ok(&[
        "-q",
        "demo-profile",
        "--user",
        "alice",
        "--transactions",
        "200000",
        "--files",
        "10",
    ]);
    let package = env.path("big.fzip");
    env.cli_ok(&[
        "-q",
        "backup",
        "--user",
        "alice",
        "-o",
        package.to_str().unwrap(),
    ]);
    let server = env.serve(&[]);
    let bob = Api::new(&server, env.token("bob"));
    let rid = bob.upload_form("restore", &package, json!({}));
    bob.wait_restore("restore", &rid, &["restore_awaiting_confirmation"]);
    assert_eq!(
        bob.post(&format!("/fzip/restore/{rid}/start"), json!({})).0,
        StatusCode::ACCEPTED
    );
    bob.wait(&format!("/fzip/restore/{rid}/status"), |v| {
        v["currentPhase"] == "restoring_transactions"
    });
    // SIGTERM: the server stops taking work, gives the restore 2 s, then stops it (rolling back)
    // and leaves it queued.
    let pid = server.child.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    let mut server = server;
    let code = server.child.wait().unwrap();
    assert!(code.success(), "the server did not stop cleanly: {code:?}");
    let log = server.log.lock().unwrap().clone();
    assert!(
        log.contains("work interrupted by shutdown") || log.contains("outcome=\"completed\""),
        "{log}"
    );
    if log.contains("work interrupted by shutdown") {
        assert!(
            env.summary("bob")["empty"].as_bool().unwrap(),
            "an interrupted restore left data behind"
        );
    }
    // The next start resumes it, and it completes exactly once.
    let server = env.serve(&[]);
    let bob = Api::new(&server, env.token("bob"));
    let done = bob.wait_restore("restore", &rid, &["restore_completed", "restore_failed"]);
    assert_eq!(done["status"], "restore_completed", "{done}");
    assert_eq!(env.summary("bob")["transactions"], 200000);
}

/// Each of these runs once on SQLite + a blob folder (server-signed URLs) and once on
/// PostgreSQL + S3 (presigned URLs).
macro_rules! on_every_backend {
    ($($name:ident),* $(,)?) => {
        mod sqlite_local {
            $( #[test] fn $name() { super::$name(super::Env::new()); } )*
        }
        mod postgres_s3 {
            $(
                #[test]
                fn $name() {
                    if let Some(env) = super::Env::postgres_s3("svc") {
                        super::$name(env);
                    }
                }
            )*
        }
    };
}

on_every_backend!(
    backup_download_restore_end_to_end,
    other_users_ids_are_not_found_and_tokens_are_checked,
    cancel_retry_and_restart,
    legacy_export_and_import_routes,
    selective_backups_through_the_api,
    graceful_shutdown_rolls_back_and_requeues_running_work,
);

/// One interval during which a server ran a piece of a job's work.
#[derive(Debug, Clone)]
struct Run {
    server: &'static str,
    job: String,
    work: String,
    start: chrono::DateTime<chrono::Utc>,
    end: Option<chrono::DateTime<chrono::Utc>>,
}

/// The "job started" / "job ended" lines of a server's JSON log.
fn runs(server: &'static str, log: &str) -> Vec<Run> {
    let mut open: std::collections::HashMap<(String, String), Run> = Default::default();
    let mut out = Vec::new();
    for line in log.lines() {
        let Ok(v) = serde_json::from_str::<Value>(line) else {
            continue;
        };
        let message = v["fields"]["message"].as_str().unwrap_or("");
        let (Some(job), Some(work)) = (v["span"]["job_id"].as_str(), v["span"]["work"].as_str())
        else {
            continue;
        };
        let at: chrono::DateTime<chrono::Utc> = v["timestamp"].as_str().unwrap().parse().unwrap();
        let key = (job.to_string(), work.to_string());
        match message {
            "job started" => {
                open.insert(
                    key,
                    Run {
                        server,
                        job: job.to_string(),
                        work: work.to_string(),
                        start: at,
                        end: None,
                    },
                );
            }
            "job ended" => {
                if let Some(mut r) = open.remove(&key) {
                    r.end = Some(at);
                    out.push(r);
                }
            }
            _ => {}
        }
    }
    out.extend(open.into_values());
    out
}

/// Acceptance (scale-out): two servers on one PostgreSQL + S3 share 20 backups and 20
/// restores; every job finishes exactly once; killing one server mid-job lets the other take
/// its jobs over; no job ever runs on both at the same time.
#[test]
fn two_servers_share_the_work_and_survive_a_crash() {
    let Some(env) = Env::postgres_s3("svc") else {
        return;
    };
    const N: usize = 20;
    for i in 0..N {
        env.cli_ok(&[
            "-q",
            "demo-profile",
            "--user",
            &format!("u{i}"),
            "--transactions",
            &(3_000 + i * 10).to_string(),
            "--files",
            "2",
            "--seed",
            &i.to_string(),
        ]);
    }
    // Separate data directories; the secrets every server must share come from the
    // environment, as in a real deployment.
    let secrets = [
        ("FZIP_JWT_SECRET", "a-shared-jwt-secret-of-32-bytes-or-more"),
        (
            "FZIP_URL_SIGNING_KEY",
            "a-shared-url-signing-key-32-bytes-min",
        ),
    ];
    let (dir_a, dir_b) = (env.path("server-a"), env.path("server-b"));
    let args = ["--workers", "2", "--log-format", "json"];
    let a = env.serve_with(&args, &secrets, &dir_a);
    let b = env.serve_with(&args, &secrets, &dir_b);
    let token = |user: &str| {
        let out = Command::new(FZIP)
            .env("FZIP_DATA_DIR", &dir_a)
            .envs(secrets.iter().map(|(k, v)| (k.to_string(), v.to_string())))
            .args(["token", "--user", user])
            .output()
            .unwrap();
        String::from_utf8(out.stdout).unwrap().trim().to_string()
    };
    let via = |i: usize| if i.is_multiple_of(2) { &a } else { &b };

    // 20 backups, started through both servers.
    let mut backups = Vec::new();
    for i in 0..N {
        let api = Api::new(via(i), token(&format!("u{i}")));
        backups.push(api.backup());
    }
    let mut packages = Vec::new();
    for (i, id) in backups.iter().enumerate() {
        // Polled through the other server.
        let api = Api::new(via(i + 1), token(&format!("u{i}")));
        let status = api.wait_backup(id);
        assert_eq!(status["dataSummary"]["transactions"], 3_000 + i * 10);
        let package = env.path(&format!("u{i}.fzip"));
        api.download(id, &package);
        packages.push(package);
    }

    // 20 restores into empty profiles, uploaded straight to S3, confirmed through both.
    let mut restores = Vec::new();
    for (i, package) in packages.iter().enumerate() {
        let api = Api::new(via(i), token(&format!("r{i}")));
        let id = api.upload_form("restore", package, json!({}));
        restores.push(id);
    }
    for (i, id) in restores.iter().enumerate() {
        let api = Api::new(via(i + 1), token(&format!("r{i}")));
        let v = api.wait_restore("restore", id, &["restore_awaiting_confirmation"]);
        assert_eq!(v["summary"]["transactions"]["count"], 3_000 + i * 10);
    }
    for (i, id) in restores.iter().enumerate() {
        let api = Api::new(via(i), token(&format!("r{i}")));
        let (code, v) = api.post(&format!("/fzip/restore/{id}/start"), json!({}));
        assert_eq!(code, StatusCode::ACCEPTED, "{v}");
    }
    // Kill server A while it is restoring.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let log = a.log.lock().unwrap().clone();
        let busy = runs("a", &log)
            .iter()
            .any(|r| r.work == "restore" && r.end.is_none());
        if busy {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "server A never started a restore"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    let a_log_at_kill = a.kill();
    let killed_at = chrono::Utc::now();
    let interrupted: Vec<Run> = runs("a", &a_log_at_kill)
        .into_iter()
        .filter(|r| r.end.is_none())
        .collect();
    assert!(!interrupted.is_empty());

    // Server B finishes everything, the interrupted restores included.
    let mut completed_at = std::collections::HashMap::new();
    for (i, id) in restores.iter().enumerate() {
        let api = Api::new(&b, token(&format!("r{i}")));
        let v = api.wait_restore("restore", id, &["restore_completed", "restore_failed"]);
        assert_eq!(v["status"], "restore_completed", "{v}");
        completed_at.insert(id.clone(), v["completedAt"].as_i64());
    }
    for i in 0..N {
        let s = env.summary(&format!("r{i}"));
        assert_eq!(s["transactions"], 3_000 + i * 10, "r{i}: {s}");
        assert_eq!(s["transactionFiles"], 2);
        assert_eq!(s["filesWithContent"], 2);
    }

    // Every job's work ran to its end exactly once, and never on two servers at once.
    let b_log = b.log.lock().unwrap().clone();
    let mut all = runs("a", &a_log_at_kill);
    all.extend(runs("b", &b_log));
    for r in &interrupted {
        let taken_over = all.iter().any(|o| {
            o.server == "b"
                && o.job == r.job
                && o.work == r.work
                && o.start > killed_at - chrono::Duration::milliseconds(50)
                && o.end.is_some()
        });
        // A may have committed its work in the instant before the kill, before it could log
        // "job ended": then the job is complete and there is nothing to take over.
        let committed_by_a = completed_at
            .get(&r.job)
            .copied()
            .flatten()
            .is_some_and(|ms| ms <= killed_at.timestamp_millis());
        assert!(
            taken_over || committed_by_a,
            "server B did not take over {r:?} (completedAt {:?}, killed at {})",
            completed_at.get(&r.job),
            killed_at.timestamp_millis()
        );
    }
    for id in backups.iter().chain(&restores) {
        let mine: Vec<&Run> = all.iter().filter(|r| &r.job == id).collect();
        for (x, p) in mine.iter().enumerate() {
            for q in mine.iter().skip(x + 1) {
                let p_end = p.end.unwrap_or(killed_at);
                let q_end = q.end.unwrap_or(killed_at);
                assert!(
                    p_end <= q.start || q_end <= p.start,
                    "job {id} ran twice at once: {p:?} and {q:?}"
                );
            }
        }
        for work in ["backup", "validate", "restore"] {
            let finished = mine
                .iter()
                .filter(|r| r.work == work && r.end.is_some())
                .count();
            assert!(finished <= 1, "job {id}: {work} finished {finished} times");
        }
    }
    let per_server = |s: &str| all.iter().filter(|r| r.server == s).count();
    eprintln!(
        "runs: server A {} (killed during {}), server B {}",
        per_server("a"),
        interrupted.len(),
        per_server("b")
    );
    assert!(
        per_server("a") > 0 && per_server("b") > 0,
        "the work was not shared"
    );
}
