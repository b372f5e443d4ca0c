//! The web page of `fzip serve`, driven in a real headless Chromium (over the DevTools protocol)
//! against real server processes, on SQLite + a blob folder and on PostgreSQL + S3.
//!
//! One user signs in, backs up, watches the backup complete, downloads it (checked with
//! `fzip verify`) and looks at the charts; another signs in, uploads the package, reads the
//! summary, confirms, reads the results, and then meets `PROFILE_NOT_EMPTY` on a second attempt;
//! a third uploads a damaged package and reads the problems. The server is also restarted under
//! the page, which must say so and recover by itself. Screenshots of every tab and state are saved
//! in `target/browser-artifacts/<backend>/`.
//!
//! Needs Chromium (`apt-get install -y chromium`, or `FZIP_CHROMIUM=/path/to/chrome`); without it
//! the test fails, unless `FZIP_SKIP_BROWSER=1` says to skip it (it then says so loudly).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine as _;
use chromiumoxide::cdp::browser_protocol::browser::{
    SetDownloadBehaviorBehavior, SetDownloadBehaviorParams,
};
use chromiumoxide::cdp::browser_protocol::dom::SetFileInputFilesParams;
use chromiumoxide::cdp::browser_protocol::emulation::{
    ClearDeviceMetricsOverrideParams, SetDeviceMetricsOverrideParams,
};
use chromiumoxide::cdp::browser_protocol::log::{EventEntryAdded, LogEntryLevel, LogEntrySource};
#[allow(deprecated)] // Its successor (…ByRule) answers "Invalid parameters" in Chromium 156.
use chromiumoxide::cdp::browser_protocol::network::EmulateNetworkConditionsParams;
use chromiumoxide::cdp::browser_protocol::page::{
    CaptureScreenshotFormat, CaptureScreenshotParams, Viewport,
};
use chromiumoxide::cdp::js_protocol::runtime::{EvaluateParams, EventExceptionThrown};
use chromiumoxide::{Browser, BrowserConfig, Page};
use futures::StreamExt;
use serde_json::{Value, json};

mod support;

use support::{Env, Server};

const TRANSACTIONS: u64 = 18_000;
const FILES: u64 = 36;

/// `fzip serve` on `listen` (`127.0.0.1:0` for any port).
fn serve(env: &Env, listen: &str) -> Server {
    env.serve_on(listen, &[], &[], &env.data())
}

fn http() -> reqwest::blocking::Client {
    reqwest::blocking::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(60))
        .build()
        .unwrap()
}

/// `GET path` as the token's user. (The blocking client runs on a thread of its own, so this
/// also works inside the browser's async code.)
fn get_json(server: &Server, token: &str, path: &str) -> Value {
    std::thread::scope(|scope| {
        scope
            .spawn(|| get_json_here(server, token, path))
            .join()
            .unwrap()
    })
}

fn get_json_here(server: &Server, token: &str, path: &str) -> Value {
    let r = http()
        .get(server.url(path))
        .bearer_auth(token)
        .send()
        .unwrap();
    assert!(r.status().is_success(), "GET {path}: {}", r.status());
    r.json().unwrap()
}

// ---------------------------------------------------------------------------------------------
// The browser
// ---------------------------------------------------------------------------------------------

/// Chromium's path; `None` (after a loud note) when `FZIP_SKIP_BROWSER=1`. Fails when missing.
fn chromium() -> Option<PathBuf> {
    if std::env::var("FZIP_SKIP_BROWSER").is_ok_and(|v| v == "1") {
        eprintln!("!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!");
        eprintln!("!!! SKIPPED: FZIP_SKIP_BROWSER=1; the web page was NOT tested in a browser");
        eprintln!("!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!");
        return None;
    }
    if let Ok(p) = std::env::var("FZIP_CHROMIUM") {
        let p = PathBuf::from(p);
        assert!(p.exists(), "FZIP_CHROMIUM={} does not exist", p.display());
        return Some(p);
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    for name in [
        "chromium",
        "chromium-browser",
        "google-chrome",
        "google-chrome-stable",
    ] {
        for dir in std::env::split_paths(&path) {
            let candidate = dir.join(name);
            if candidate.is_file() {
                return Some(candidate);
            }
        }
    }
    panic!(
        "the browser test needs Chromium, and none was found on PATH. Install it \
         (Debian/Ubuntu: `apt-get install -y chromium`; .ci/run does this), or point \
         FZIP_CHROMIUM at a Chrome/Chromium binary, or set FZIP_SKIP_BROWSER=1 to skip this test"
    );
}

/// Where screenshots go: `target/browser-artifacts/<backend>/`, emptied first.
fn artifacts(backend: &str) -> PathBuf {
    let target = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .parent()
        .unwrap()
        .to_path_buf();
    let dir = target.join("browser-artifacts").join(backend);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A page in Chromium, with what went wrong in it (script errors, refused resources).
struct Tab {
    page: Page,
    artifacts: PathBuf,
    /// Uncaught exceptions and console errors other than failed requests (a 409 the page
    /// handles is fine; a CSP violation or a script error is not).
    problems: Arc<Mutex<Vec<String>>>,
    shots: usize,
}

impl Tab {
    async fn eval(&self, js: &str) -> Value {
        let params = EvaluateParams::builder()
            .expression(js)
            .return_by_value(true)
            .await_promise(true)
            .build()
            .unwrap();
        match self.page.evaluate_expression(params).await {
            Ok(r) => r.value().cloned().unwrap_or(Value::Null),
            Err(e) => panic!("evaluating {js}: {e}"),
        }
    }

    /// Waits until `js` is truthy; on timeout saves a screenshot and fails with the page's text.
    async fn wait(&self, what: &str, js: &str) -> Value {
        self.wait_for(what, js, Duration::from_secs(120)).await
    }

    async fn wait_for(&self, what: &str, js: &str, timeout: Duration) -> Value {
        let deadline = Instant::now() + timeout;
        loop {
            let v = self.eval(js).await;
            let truthy = match &v {
                Value::Null => false,
                Value::Bool(b) => *b,
                Value::Number(n) => n.as_f64().is_some_and(|n| n != 0.0),
                Value::String(s) => !s.is_empty(),
                _ => true,
            };
            if truthy {
                return v;
            }
            if Instant::now() > deadline {
                let _ = self
                    .capture(&self.artifacts.join(format!("timeout-{}.png", slug(what))))
                    .await;
                let text = self.eval("document.body.innerText").await;
                panic!(
                    "timed out waiting for {what} ({js})\npage text:\n{}\nproblems: {:?}",
                    text.as_str().unwrap_or_default(),
                    self.problems.lock().unwrap()
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn text(&self, selector: &str) -> String {
        let js = format!(
            "(document.querySelector({}) || {{}}).textContent || ''",
            json!(selector)
        );
        self.eval(&js)
            .await
            .as_str()
            .unwrap_or_default()
            .to_string()
    }

    async fn click(&self, selector: &str) {
        self.page
            .find_element(selector)
            .await
            .unwrap_or_else(|e| panic!("no {selector}: {e}"))
            .click()
            .await
            .unwrap_or_else(|e| panic!("clicking {selector}: {e}"));
    }

    async fn type_into(&self, selector: &str, text: &str) {
        self.page
            .find_element(selector)
            .await
            .unwrap_or_else(|e| panic!("no {selector}: {e}"))
            .click()
            .await
            .unwrap()
            .type_str(text)
            .await
            .unwrap();
    }

    /// Chooses `file` in the file input `selector` (as a person picking it would).
    async fn choose_file(&self, selector: &str, file: &Path) {
        let input = self.page.find_element(selector).await.unwrap();
        self.page
            .execute(
                SetFileInputFilesParams::builder()
                    .file(file.to_str().unwrap())
                    .backend_node_id(input.backend_node_id)
                    .build()
                    .unwrap(),
            )
            .await
            .unwrap();
    }

    /// Drops `file` on the drop zone, as dragging it from a file manager would.
    async fn drop_file(&self, zone: &str, file: &Path) {
        let bytes = std::fs::read(file).unwrap();
        let b64 = base64::engine::general_purpose::STANDARD.encode(bytes);
        let name = file.file_name().unwrap().to_str().unwrap();
        let js = format!(
            "(() => {{
                const bin = atob({b64});
                const file = new File([Uint8Array.from(bin, c => c.charCodeAt(0))], {name},
                    {{ type: 'application/zip' }});
                const data = new DataTransfer();
                data.items.add(file);
                const zone = document.querySelector({zone});
                for (const type of ['dragenter', 'dragover', 'drop']) {{
                    zone.dispatchEvent(new DragEvent(type, {{ dataTransfer: data, bubbles: true, cancelable: true }}));
                }}
                return true;
            }})()",
            b64 = json!(b64),
            name = json!(name),
            zone = json!(zone),
        );
        assert_eq!(self.eval(&js).await, true);
    }

    async fn sign_in(&self, token: &str, user: &str) {
        self.wait(
            "the sign-in form",
            "!document.getElementById('signin').hidden",
        )
        .await;
        self.type_into("#token", token).await;
        self.click("#signin-button").await;
        self.wait(
            &format!("{user} signed in"),
            &format!(
                "document.getElementById('who-name').textContent === {}",
                json!(user)
            ),
        )
        .await;
    }

    async fn sign_out(&self) {
        self.click("#sign-out").await;
        self.wait(
            "the sign-in form",
            "!document.getElementById('signin').hidden",
        )
        .await;
    }

    async fn tab(&self, name: &str) {
        self.click(&format!("#tabs a[data-tab='{name}']")).await;
        self.wait(
            &format!("the {name} tab"),
            &format!("!document.getElementById('view-{name}').hidden"),
        )
        .await;
    }

    /// A full-page PNG, numbered in the order taken.
    async fn shot(&mut self, name: &str) -> PathBuf {
        self.shots += 1;
        let path = self.artifacts.join(format!("{:02}-{name}.png", self.shots));
        // Let progress bars and transitions settle.
        tokio::time::sleep(Duration::from_millis(400)).await;
        self.capture(&path).await;
        path
    }

    async fn capture(&self, path: &Path) {
        let metrics = self.page.layout_metrics().await.unwrap();
        let width = metrics.css_layout_viewport.client_width as f64;
        let height = metrics.css_content_size.height.max(100.0);
        let shot = self
            .page
            .execute(
                CaptureScreenshotParams::builder()
                    .format(CaptureScreenshotFormat::Png)
                    .capture_beyond_viewport(true)
                    .clip(Viewport {
                        x: 0.0,
                        y: 0.0,
                        width,
                        height,
                        scale: 1.0,
                    })
                    .build(),
            )
            .await
            .unwrap();
        let data: &str = shot.result.data.as_ref();
        let png = base64::engine::general_purpose::STANDARD
            .decode(data)
            .unwrap();
        std::fs::write(path, png).unwrap();
    }

    async fn phone(&self, on: bool) {
        if on {
            self.page
                .execute(SetDeviceMetricsOverrideParams::new(390, 844, 1.0, true))
                .await
                .unwrap();
        } else {
            self.page
                .execute(ClearDeviceMetricsOverrideParams::default())
                .await
                .unwrap();
        }
        // Let the page lay out (and redraw its charts) at the new width.
        tokio::time::sleep(Duration::from_millis(600)).await;
    }

    /// Limits uploads to `bytes_per_second` (None: no limit), so an upload's progress shows.
    #[allow(deprecated)]
    async fn throttle_uploads(&self, bytes_per_second: Option<f64>) {
        self.page
            .execute(EmulateNetworkConditionsParams::new(
                false,
                0.0,
                -1.0,
                bytes_per_second.unwrap_or(-1.0),
            ))
            .await
            .unwrap();
    }

    fn assert_no_problems(&self) {
        let problems = self.problems.lock().unwrap();
        assert!(
            problems.is_empty(),
            "the page reported problems:\n{}",
            problems.join("\n")
        );
    }
}

fn slug(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect()
}

fn digits(s: &str) -> u64 {
    s.chars()
        .filter(char::is_ascii_digit)
        .collect::<String>()
        .parse()
        .unwrap_or_else(|_| panic!("no number in {s:?}"))
}

/// The one downloaded file, once complete.
async fn downloaded(dir: &Path) -> PathBuf {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let files: Vec<PathBuf> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        let done: Vec<&PathBuf> = files
            .iter()
            .filter(|p| p.extension().is_none_or(|e| e != "crdownload"))
            .collect();
        if files.len() == 1 && done.len() == 1 && done[0].metadata().unwrap().len() > 0 {
            return done[0].clone();
        }
        assert!(
            Instant::now() < deadline,
            "no completed download in {}: {files:?}",
            dir.display()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

// ---------------------------------------------------------------------------------------------
// The test
// ---------------------------------------------------------------------------------------------

/// The page's own headers: a strict policy, no sniffing, revalidated caching.
fn check_headers(server: &Server, s3: Option<&str>) {
    let r = http().get(server.url("/")).send().unwrap();
    assert_eq!(r.status(), 200);
    let h = r.headers().clone();
    assert_eq!(h["content-type"], "text/html; charset=utf-8");
    assert_eq!(h["x-content-type-options"], "nosniff");
    let csp = h["content-security-policy"].to_str().unwrap().to_string();
    assert!(csp.contains("script-src 'self';"), "{csp}");
    assert!(csp.contains("default-src 'none'"), "{csp}");
    assert!(!csp.contains("unsafe-inline"), "{csp}");
    match s3 {
        Some(origin) => assert!(
            csp.contains(&format!("connect-src 'self' {origin};")),
            "uploads go to {origin}: {csp}"
        ),
        None => assert!(csp.contains("connect-src 'self';"), "{csp}"),
    }
    let html = r.text().unwrap();
    assert!(html.contains("<script src=\"/app.js\" defer></script>"));
    for (path, kind) in [
        ("/app.js", "text/javascript; charset=utf-8"),
        ("/app.css", "text/css; charset=utf-8"),
        ("/icon.svg", "image/svg+xml"),
    ] {
        let r = http().get(server.url(path)).send().unwrap();
        assert_eq!(r.status(), 200, "{path}");
        assert_eq!(r.headers()["content-type"], kind, "{path}");
        assert_eq!(r.headers()["x-content-type-options"], "nosniff");
        assert_eq!(r.headers()["cache-control"], "no-cache");
        let etag = r.headers()["etag"].clone();
        let again = http()
            .get(server.url(path))
            .header("if-none-match", etag)
            .send()
            .unwrap();
        assert_eq!(again.status(), 304, "{path} with its ETag");
    }
}

/// A copy of `package` whose first transactions refer to an account that does not exist.
fn damaged(package: &Path, to: &Path) {
    let bytes = std::fs::read(package).unwrap();
    let mut entries = fzip_testkit::read_entries(&bytes);
    let (_, data) = entries
        .iter_mut()
        .find(|(name, _)| name == "data/transactions.json")
        .expect("a transactions entry");
    let mut text = String::from_utf8(data.clone()).unwrap();
    let key = "\"accountId\":\"";
    let mut from = 0;
    for _ in 0..3 {
        let at = from + text[from..].find(key).expect("an accountId");
        let start = at + key.len();
        let end = start + text[start..].find('"').unwrap();
        text.replace_range(start..end, "no-such-account");
        from = start;
    }
    *data = text.into_bytes();
    std::fs::write(to, fzip_testkit::rebuild(&entries)).unwrap();
}

fn page_end_to_end(env: Env, backend: &str) {
    let Some(chrome) = chromium() else {
        return;
    };
    let started = Instant::now();
    let shots_dir = artifacts(backend);
    env.cli_ok(&[
        "-q",
        "demo-profile",
        "--user",
        "alice",
        "--transactions",
        &TRANSACTIONS.to_string(),
        "--files",
        &FILES.to_string(),
    ]);
    let mut server = serve(&env, "127.0.0.1:0");
    check_headers(&server, env.s3.as_deref());
    let alice_token = env.token("alice");
    let alice_profile = get_json(&server, &alice_token, "/fzip/profile");
    assert_eq!(alice_profile["transactions"], TRANSACTIONS);
    let alice_analytics = get_json(&server, &alice_token, "/fzip/profile/analytics");
    let account_names: Vec<String> = alice_analytics["accounts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["accountName"].as_str().unwrap().to_string())
        .collect();
    assert!(!account_names.is_empty());

    let downloads = tempfile::tempdir().unwrap();
    let user_data = tempfile::tempdir().unwrap();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let config = BrowserConfig::builder()
            .chrome_executable(&chrome)
            .new_headless_mode()
            .no_sandbox()
            .user_data_dir(user_data.path())
            .window_size(1280, 900)
            .viewport(None)
            .args([
                "disable-gpu",
                "disable-dev-shm-usage",
                "disable-background-networking",
                "disable-component-update",
                "disable-sync",
                "disable-quic",
                "no-first-run",
                "lang=en-US",
            ])
            .launch_timeout(Duration::from_secs(60))
            .request_timeout(Duration::from_secs(60))
            .build()
            .unwrap();
        let (mut browser, mut handler) = Browser::launch(config)
            .await
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", chrome.display()));
        let events = tokio::spawn(async move { while handler.next().await.is_some() {} });
        browser
            .execute(
                SetDownloadBehaviorParams::builder()
                    .behavior(SetDownloadBehaviorBehavior::Allow)
                    .download_path(downloads.path().to_str().unwrap())
                    .build()
                    .unwrap(),
            )
            .await
            .unwrap();
        let page = browser.new_page("about:blank").await.unwrap();
        page.enable_log().await.unwrap();
        let problems = Arc::new(Mutex::new(Vec::new()));
        let mut log = page.event_listener::<EventEntryAdded>().await.unwrap();
        let sink = problems.clone();
        tokio::spawn(async move {
            while let Some(e) = log.next().await {
                let entry = &e.entry;
                // Failed requests (the 409 of a non-empty profile, a stopped server) are shown
                // by the page itself; anything else at error level is a defect.
                if entry.level == LogEntryLevel::Error && entry.source != LogEntrySource::Network
                {
                    sink.lock().unwrap().push(format!("{:?}: {}", entry.source, entry.text));
                }
            }
        });
        let mut exceptions = page.event_listener::<EventExceptionThrown>().await.unwrap();
        let sink = problems.clone();
        tokio::spawn(async move {
            while let Some(e) = exceptions.next().await {
                let d = &e.exception_details;
                let what = d
                    .exception
                    .as_ref()
                    .and_then(|o| o.description.clone())
                    .unwrap_or_else(|| d.text.clone());
                sink.lock().unwrap().push(format!("uncaught: {what}"));
            }
        });
        let mut tab = Tab {
            page,
            artifacts: shots_dir.clone(),
            problems,
            shots: 0,
        };
        tab.page.goto(server.url("/")).await.unwrap();
        tab.shot("sign-in").await;
        // The policy is enforced: an injected inline script does not run, and the refusal is
        // seen (so the check for problems at the end would see one too).
        let ran = tab
            .eval(
                "(() => { window.injected = false; const s = document.createElement('script'); \
                 s.textContent = 'window.injected = true'; document.head.append(s); \
                 return window.injected; })()",
            )
            .await;
        assert_eq!(ran, false, "an inline script ran despite the policy");
        let deadline = Instant::now() + Duration::from_secs(10);
        while !tab
            .problems
            .lock()
            .unwrap()
            .iter()
            .any(|p| p.contains("Content Security Policy"))
        {
            assert!(
                Instant::now() < deadline,
                "the CSP refusal was not reported: {:?}",
                tab.problems.lock().unwrap()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        tab.problems.lock().unwrap().clear();

        // ---- alice: back up, watch it run, download it
        tab.sign_in(&alice_token, "alice").await;
        tab.wait(
            "the empty backup list",
            "document.querySelector('#backup-list .empty')",
        )
        .await;
        tab.type_into("#backup-description", "Before moving banks")
            .await;
        tab.click("#backup-analytics").await;
        tab.click("#backup-create").await;
        // While it runs the list shows a progress bar with the phase.
        let running = tab
            .wait_for(
                "a progress bar or the completed backup",
                "document.querySelector('#backup-list .job .progress') ? 'running' : \
                 (document.querySelector(\"#backup-list .job[data-status='backup_completed']\") ? 'done' : '')",
                Duration::from_secs(60),
            )
            .await;
        if running == "running" {
            let label = tab.text("#backup-list .job .progress-label").await;
            assert!(!label.trim().is_empty(), "a progress bar without text");
            tab.shot("backup-running").await;
        }
        tab.wait(
            "the backup to complete",
            "document.querySelector(\"#backup-list .job[data-status='backup_completed'] .download\")",
        )
        .await;
        let job = "#backup-list .job[data-status='backup_completed']";
        assert_eq!(
            tab.text(&format!("{job} .job-name")).await,
            "Before moving banks"
        );
        assert_eq!(
            tab.eval(&format!(
                "document.querySelector(\"{job} [data-quality]\").dataset.quality"
            ))
            .await,
            "excellent"
        );
        assert!(
            tab.text(&format!("{job} .size")).await.contains("MB")
                || tab.text(&format!("{job} .size")).await.contains("KB")
        );
        tab.click(&format!("{job} details.quality summary")).await;
        tab.wait(
            "the quality scores",
            &format!("document.querySelector(\"{job} details.quality\").open"),
        )
        .await;
        let scores = tab.text(&format!("{job} details.quality dl")).await;
        assert!(scores.contains("Data integrity100 / 100"), "{scores}");
        tab.shot("backups").await;

        tab.click(&format!("{job} .download")).await;
        let package = downloaded(downloads.path()).await;
        let verify = env.cli_ok(&["verify", package.to_str().unwrap()]);
        assert!(verify.contains("VALID"), "{verify}");
        let package = {
            let kept = env.path("alice.fzip");
            std::fs::copy(&package, &kept).unwrap();
            kept
        };

        // ---- the server restarts under the page: the page says so, then recovers
        let addr = server.addr();
        server.stop();
        tab.click("#backups-refresh").await;
        tab.wait(
            "the connection banner",
            "!document.getElementById('connection').hidden",
        )
        .await;
        assert!(
            tab.text("#connection-text")
                .await
                .contains("Cannot reach the server")
        );
        tab.shot("server-restarting").await;
        server = serve(&env, &addr);
        tab.wait_for(
            "the page to reconnect",
            "document.getElementById('connection').hidden && \
             document.querySelector(\"#backup-list .job[data-status='backup_completed']\")",
            Duration::from_secs(40),
        )
        .await;

        // ---- the profile, in numbers and pictures
        tab.tab("profile").await;
        tab.wait(
            "both charts",
            "document.querySelectorAll('#chart-cash svg .month rect[fill]').length > 0 && \
             document.querySelectorAll('#chart-spend svg .month rect[fill]').length > 0",
        )
        .await;
        assert_eq!(
            digits(&tab.text("[data-stat='transactions'] .value").await),
            TRANSACTIONS
        );
        assert_eq!(
            digits(&tab.text("[data-stat='accounts'] .value").await),
            account_names.len() as u64
        );
        let options = tab
            .eval("[...document.querySelectorAll('#cash-account option')].map(o => o.textContent).join('\\n')")
            .await;
        for name in &account_names {
            assert!(
                options.as_str().unwrap().contains(name.as_str()),
                "{name} missing from the account choice"
            );
        }
        let legend = tab.text("#chart-spend .legend").await;
        assert!(!legend.is_empty());
        // Each month says what it holds when hovered.
        let title = tab
            .text("#chart-cash svg .month title")
            .await;
        assert!(title.contains("in ") && title.contains("net "), "{title}");
        tab.shot("profile").await;

        // ---- the same at a phone's width
        tab.phone(true).await;
        let overflow = tab
            .eval("document.documentElement.scrollWidth > window.innerWidth + 1")
            .await;
        assert_eq!(overflow, false, "the profile tab scrolls sideways on a phone");
        tab.shot("phone-profile").await;
        tab.tab("backups").await;
        tab.wait(
            "the backup list",
            "document.querySelector(\"#backup-list .job[data-status='backup_completed']\")",
        )
        .await;
        let overflow = tab
            .eval("document.documentElement.scrollWidth > window.innerWidth + 1")
            .await;
        assert_eq!(overflow, false, "the backups tab scrolls sideways on a phone");
        tab.shot("phone-backups").await;
        tab.phone(false).await;

        // ---- bob: upload, summary, confirm, results
        tab.sign_out().await;
        let bob_token = env.token("bob");
        tab.sign_in(&bob_token, "bob").await;
        tab.tab("restore").await;
        tab.wait(
            "the drop zone",
            "document.getElementById('restore-stage').dataset.state === 'idle'",
        )
        .await;
        tab.shot("restore-choose").await;
        // A slow line, so the upload's byte progress can be watched.
        tab.throttle_uploads(Some(400_000.0)).await;
        tab.choose_file("#restore-file", &package).await;
        let size = std::fs::metadata(&package).unwrap().len() as f64;
        let first = tab
            .wait(
                "upload progress",
                "(p => p && p.value > 0 ? p.value : 0)\
                 (document.querySelector(\"#restore-stage[data-state='uploading'] progress\"))",
            )
            .await
            .as_f64()
            .unwrap();
        assert!(first < size, "the upload was not watched: {first} of {size}");
        let label = tab.text("#restore-stage .progress-label").await;
        assert!(label.contains(" of ") && label.contains('%'), "{label}");
        tab.shot("restore-uploading").await;
        let later = tab
            .wait(
                "more upload progress",
                &format!(
                    "(p => !p ? 1e18 : (p.value > {first} ? p.value : 0))\
                     (document.querySelector(\"#restore-stage[data-state='uploading'] progress\"))"
                ),
            )
            .await
            .as_f64()
            .unwrap();
        assert!(later > first);
        tab.throttle_uploads(None).await;
        let state = tab
            .wait(
                "the summary",
                "(s => ['summary', 'failed', 'error', 'not-empty'].includes(s) ? s : '')\
                 (document.getElementById('restore-stage').dataset.state)",
            )
            .await;
        assert_eq!(
            state,
            "summary",
            "{}",
            tab.text("#restore-stage").await
        );
        let summary = tab.text("#restore-stage").await;
        for name in &account_names {
            assert!(summary.contains(name.as_str()), "{name} not in the summary");
        }
        let bob_jobs = get_json(&server, &bob_token, "/fzip/restore");
        let rid = bob_jobs["restoreJobs"][0]["restoreId"]
            .as_str()
            .unwrap()
            .to_string();
        let status = get_json(&server, &bob_token, &format!("/fzip/restore/{rid}/status"));
        assert_eq!(status["status"], "restore_awaiting_confirmation");
        for f in status["summary"]["transactionFiles"]["items"]
            .as_array()
            .unwrap()
        {
            let name = f["fileName"].as_str().unwrap();
            assert!(summary.contains(name), "{name} not in the summary");
        }
        assert_eq!(
            status["summary"]["transactionFiles"]["items"]
                .as_array()
                .unwrap()
                .len() as u64,
            FILES
        );
        let counts = tab
            .eval("[...document.querySelectorAll('#restore-stage .summary-grid h4 .count')].map(e => e.textContent)")
            .await;
        assert!(
            counts
                .as_array()
                .unwrap()
                .iter()
                .any(|c| digits(c.as_str().unwrap()) == TRANSACTIONS),
            "{counts}"
        );
        assert!(summary.contains("levels deep") || summary.contains("level deep"));
        assert!(summary.contains("From "), "the date range: {summary}");
        tab.shot("restore-summary").await;

        tab.click("#restore-confirm").await;
        tab.wait(
            "the results",
            "(s => ['completed', 'failed', 'error', 'not-empty'].includes(s) ? s : '')\
             (document.getElementById('restore-stage').dataset.state)",
        )
        .await;
        assert_eq!(
            tab.eval("document.getElementById('restore-stage').dataset.state")
                .await,
            "completed",
            "{}",
            tab.text("#restore-stage").await
        );
        assert_eq!(
            digits(
                &tab.text("#restore-stage tr[data-entity='transactions'] td.num")
                    .await
            ),
            TRANSACTIONS
        );
        assert_eq!(
            digits(
                &tab.text("#restore-stage tr[data-entity='transaction_files'] td.num")
                    .await
            ),
            FILES
        );
        tab.shot("restore-results").await;
        if let Some(s3) = &env.s3 {
            // The package went straight to S3 (presigned PUT), not through the server.
            let audit = env.cli_ok(&["audit", "--user", "bob"]);
            assert!(audit.contains("presigned"), "{audit}");
            let backups = get_json(&server, &alice_token, "/fzip/backup");
            let id = backups["backups"][0]["backupId"].as_str().unwrap().to_string();
            let link = get_json(&server, &alice_token, &format!("/fzip/backup/{id}/download?format=json"));
            assert!(
                link["downloadUrl"].as_str().unwrap().starts_with(s3.as_str()),
                "downloads come from S3: {link}"
            );
        }
        // Bob holds alice's profile now, byte for byte.
        assert_eq!(env.summary("bob")["transactions"], TRANSACTIONS);
        let bob_pkg = env.path("bob.fzip");
        env.cli_ok(&[
            "-q",
            "backup",
            "--user",
            "bob",
            "--include-analytics",
            "-o",
            bob_pkg.to_str().unwrap(),
        ]);
        env.cli_ok(&["diff", package.to_str().unwrap(), bob_pkg.to_str().unwrap()]);

        // ---- a second attempt: PROFILE_NOT_EMPTY, with what the profile holds
        tab.click("#restore-stage .actions button:last-child").await;
        tab.wait(
            "the drop zone again",
            "document.getElementById('restore-stage').dataset.state === 'idle'",
        )
        .await;
        tab.choose_file("#restore-file", &package).await;
        tab.wait(
            "PROFILE_NOT_EMPTY",
            "document.querySelector(\"#restore-stage [data-error='PROFILE_NOT_EMPTY']\")",
        )
        .await;
        let error = tab.text("#restore-stage").await;
        assert!(error.contains("not empty"), "{error}");
        assert!(error.contains("transactions"), "{error}");
        let holds = tab
            .eval("[...document.querySelectorAll('#restore-stage ul.holds li')].map(e => e.textContent)")
            .await;
        assert!(
            holds
                .as_array()
                .unwrap()
                .iter()
                .any(|h| h.as_str().unwrap().contains("transaction")
                    && digits(h.as_str().unwrap()) == TRANSACTIONS),
            "{holds}"
        );
        assert!(error.contains("fzip profile clear --user bob --yes"), "{error}");
        assert!(tab.eval("!!document.getElementById('restore-retry')").await == true);
        tab.shot("restore-profile-not-empty").await;

        // ---- carol: a damaged package lists its problems, with Delete (no Retry)
        tab.sign_out().await;
        let carol_token = env.token("carol");
        tab.sign_in(&carol_token, "carol").await;
        tab.tab("restore").await;
        tab.wait(
            "the drop zone",
            "document.getElementById('restore-stage').dataset.state === 'idle'",
        )
        .await;
        let broken = env.path("broken.fzip");
        damaged(&package, &broken);
        tab.drop_file("#restore-stage .dropzone", &broken).await;
        tab.wait(
            "the validation failure",
            "document.getElementById('restore-stage').dataset.state === 'failed'",
        )
        .await;
        let problems = tab
            .eval("[...document.querySelectorAll('#restore-stage ul.problems li')].map(e => e.textContent)")
            .await;
        let problems = problems.as_array().unwrap();
        assert!(!problems.is_empty(), "no problems listed");
        assert!(
            problems
                .iter()
                .any(|p| p.as_str().unwrap().contains("no-such-account")),
            "{problems:?}"
        );
        // Checking an invalid package again cannot change the outcome: no Retry.
        assert!(tab.eval("!!document.getElementById('restore-retry')").await == false);
        tab.shot("restore-validation-failed").await;
        // Delete it (through the confirmation dialog): the stage and the job are gone.
        tab.click("#restore-stage button[data-action='delete']").await;
        tab.wait("the dialog", "document.getElementById('confirm').open")
            .await;
        tab.click("#confirm-yes").await;
        tab.wait(
            "the drop zone after deleting",
            "document.getElementById('restore-stage').dataset.state === 'idle'",
        )
        .await;
        let carol_jobs = get_json(&server, &carol_token, "/fzip/restore");
        assert_eq!(carol_jobs["restoreJobs"].as_array().unwrap().len(), 0);
        assert!(env.summary("carol")["empty"].as_bool().unwrap());

        tab.assert_no_problems();
        let _ = browser.close().await;
        let _ = browser.wait().await;
        events.abort();
    });
    drop(server);
    eprintln!(
        "browser test on {backend}: {:.1} s; screenshots in {}",
        started.elapsed().as_secs_f64(),
        shots_dir.display()
    );
}

#[test]
fn web_page_on_sqlite_and_folder() {
    page_end_to_end(Env::new(), "sqlite-folder");
}

#[test]
fn web_page_on_postgres_and_s3() {
    if let Some(env) = Env::postgres_s3("web") {
        page_end_to_end(env, "postgres-s3");
    }
}
