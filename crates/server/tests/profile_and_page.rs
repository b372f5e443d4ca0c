//! The routes the web page adds (`/fzip/profile…`) and the page's own assets, on an in-process
//! server over SQLite and a blob folder.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use fzip_engine::{DemoOptions, Engine, NoProgress};
use fzip_server::{AuthConfig, ServerConfig};
use fzip_store::BlobStore;
use fzip_store_sqlite::{SqliteJobStore, SqliteStore};
use serde_json::Value;

const SECRET: &[u8] = b"a-test-secret-of-at-least-32-bytes!!";

struct Setup {
    _dir: tempfile::TempDir,
    engine: Engine,
    server: fzip_server::RunningServer,
}

async fn setup() -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(SqliteStore::open(&dir.path().join("fzip.db")).unwrap());
    let blobs = BlobStore::local(&dir.path().join("blobs")).unwrap();
    let engine = Engine::new(store, blobs);
    let jobs = Arc::new(SqliteJobStore::open(&dir.path().join("jobs.db")).unwrap());
    let auth = AuthConfig::Hs256 {
        secret: SECRET.to_vec(),
        issuer: fzip_server::auth::EMBEDDED_ISSUER.into(),
        audience: fzip_server::auth::EMBEDDED_AUDIENCE.into(),
    };
    let listen: SocketAddr = "127.0.0.1:0".parse().unwrap();
    let config = ServerConfig::new(listen, dir.path().to_path_buf(), auth, SECRET.to_vec());
    let server = fzip_server::start(config, engine.clone(), jobs)
        .await
        .unwrap();
    Setup {
        _dir: dir,
        engine,
        server,
    }
}

fn token(user: &str) -> String {
    fzip_server::auth::mint_token(SECRET, user, Duration::from_secs(600)).unwrap()
}

async fn get(s: &Setup, path: &str, user: Option<&str>) -> (u16, Value) {
    let mut req = reqwest::Client::new().get(format!("http://{}{path}", s.server.addr));
    if let Some(u) = user {
        req = req.bearer_auth(token(u));
    }
    let r = req.send().await.unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn profile_routes_show_only_the_callers_profile() {
    let s = setup().await;
    let engine = s.engine.clone();
    tokio::task::spawn_blocking(move || {
        let options = DemoOptions {
            transactions: 600,
            files: 3,
            ..DemoOptions::default()
        };
        fzip_engine::demo_profile(&engine, "alice", &options, &NoProgress).unwrap();
    })
    .await
    .unwrap();

    // No token, no profile.
    for path in ["/fzip/profile", "/fzip/profile/analytics"] {
        assert_eq!(get(&s, path, None).await.0, 401, "{path}");
    }

    let (code, alice) = get(&s, "/fzip/profile", Some("alice")).await;
    assert_eq!(code, 200);
    assert_eq!(alice["userId"], "alice");
    assert_eq!(alice["transactions"], 600);
    assert_eq!(alice["transactionFiles"], 3);
    assert_eq!(alice["empty"], false);
    assert!(alice["firstTransactionDate"].is_i64());
    let (_, bob) = get(&s, "/fzip/profile", Some("bob")).await;
    assert_eq!(bob["empty"], true);
    assert_eq!(bob["transactions"], 0);
    assert!(
        bob.get("firstTransactionDate").is_none(),
        "absent, not null"
    );

    let (code, analytics) = get(&s, "/fzip/profile/analytics", Some("alice")).await;
    assert_eq!(code, 200);
    let records = analytics["records"].as_array().unwrap();
    assert_eq!(records.len() as u64, alice["analytics"].as_u64().unwrap());
    assert!(records.iter().any(|r| r["analyticType"] == "cash_flow"
        && r["data"]["transactionCount"].is_u64()
        && r["accountId"].is_string()));
    assert!(
        records
            .iter()
            .any(|r| r["analyticType"] == "category_trends" && r["data"]["currencies"].is_object())
    );
    let accounts = analytics["accounts"].as_array().unwrap();
    assert_eq!(accounts.len() as u64, alice["accounts"].as_u64().unwrap());
    assert!(accounts.iter().all(|a| a["accountName"].is_string()));
    let categories = analytics["categories"].as_array().unwrap();
    assert_eq!(
        categories.len() as u64,
        alice["categories"].as_u64().unwrap()
    );
    assert!(categories.iter().any(|c| c["parentCategoryId"].is_string()));
    let text = analytics.to_string();
    assert!(!text.contains("null"), "absent values are omitted: {text}");
    // Every cash-flow record names an account the response labels.
    for r in records.iter().filter(|r| r["analyticType"] == "cash_flow") {
        assert!(accounts.iter().any(|a| a["accountId"] == r["accountId"]));
    }
    let (_, bobs) = get(&s, "/fzip/profile/analytics", Some("bob")).await;
    assert_eq!(bobs["records"].as_array().unwrap().len(), 0);
    assert_eq!(bobs["accounts"].as_array().unwrap().len(), 0);

    // Recompute: alice's records come back the same; bob's empty profile has none to compute.
    let http = reqwest::Client::new();
    let url = format!("http://{}/fzip/profile/analytics/recompute", s.server.addr);
    assert_eq!(http.post(&url).send().await.unwrap().status(), 401);
    let r = http
        .post(&url)
        .bearer_auth(token("alice"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let report: Value = r.json().await.unwrap();
    assert_eq!(report["records"], records.len());
    assert_eq!(report["userId"], "alice");
    let (_, again) = get(&s, "/fzip/profile/analytics", Some("alice")).await;
    let key = |r: &Value| {
        format!(
            "{}|{}|{}|{}",
            r["analyticType"], r["timePeriod"], r["accountId"], r["data"]
        )
    };
    let mut before: Vec<String> = records.iter().map(key).collect();
    let mut after: Vec<String> = again["records"]
        .as_array()
        .unwrap()
        .iter()
        .map(key)
        .collect();
    before.sort();
    after.sort();
    assert_eq!(before, after);
    let r = http
        .post(&url)
        .bearer_auth(token("bob"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.json::<Value>().await.unwrap()["records"], 0);

    // Documented, like every route; also under /api.
    let (_, doc) = get(&s, "/openapi.json", None).await;
    for (path, method) in [
        ("/fzip/profile", "get"),
        ("/fzip/profile/analytics", "get"),
        ("/fzip/profile/analytics/recompute", "post"),
    ] {
        assert!(doc["paths"][path][method].is_object(), "{method} {path}");
    }
    assert_eq!(get(&s, "/api/fzip/profile", Some("alice")).await.0, 200);

    s.server.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_page_is_served_with_a_strict_policy() {
    let s = setup().await;
    let http = reqwest::Client::new();
    let base = format!("http://{}", s.server.addr);
    let page = http.get(format!("{base}/")).send().await.unwrap();
    assert_eq!(page.status(), 200);
    let h = page.headers().clone();
    assert_eq!(h["content-type"], "text/html; charset=utf-8");
    assert_eq!(h["x-content-type-options"], "nosniff");
    assert_eq!(h["x-frame-options"], "DENY");
    assert_eq!(h["referrer-policy"], "no-referrer");
    let csp = h["content-security-policy"].to_str().unwrap();
    // A folder store signs its own URLs: the page talks to this origin only.
    assert!(csp.contains("connect-src 'self';"), "{csp}");
    assert!(csp.contains("script-src 'self';"), "{csp}");
    assert!(!csp.contains("unsafe"), "{csp}");
    let html = page.text().await.unwrap();
    assert!(html.contains("/app.js"));

    for (path, kind) in [
        ("/app.js", "text/javascript; charset=utf-8"),
        ("/app.css", "text/css; charset=utf-8"),
        ("/icon.svg", "image/svg+xml"),
    ] {
        let r = http.get(format!("{base}{path}")).send().await.unwrap();
        assert_eq!(r.status(), 200, "{path}");
        assert_eq!(r.headers()["content-type"], kind);
        let etag = r.headers()["etag"].clone();
        let body = r.bytes().await.unwrap();
        assert!(!body.is_empty());
        let again = http
            .get(format!("{base}{path}"))
            .header("if-none-match", etag)
            .send()
            .await
            .unwrap();
        assert_eq!(again.status(), 304, "{path}");
        assert!(again.bytes().await.unwrap().is_empty());
    }
    // The script never parses server or user text as HTML.
    let script = http
        .get(format!("{base}/app.js"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for risky in [
        "innerHTML",
        "outerHTML",
        "insertAdjacentHTML",
        "document.write",
        "eval(",
    ] {
        assert!(!script.contains(risky), "app.js uses {risky}");
    }
    // The page is not under /api, and unknown paths stay 404.
    assert_eq!(
        http.get(format!("{base}/nope"))
            .send()
            .await
            .unwrap()
            .status(),
        404
    );
    s.server.stop().await.unwrap();
}
