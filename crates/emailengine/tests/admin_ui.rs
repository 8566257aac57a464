//! The admin web interface, end to end: a real headless Chromium driven over WebDriver walks
//! through it as an operator would (first password, log-out and log-in, Generate token, an IMAP
//! account whose badge turns `connected` from the change stream without a reload, live dashboard
//! counts, webhooks with a test post and a re-sent given-up delivery, OAuth2 applications,
//! the hosted form, TOTP), with a screenshot of every page kept under `target/screenshots/` (or
//! `$EE_ARTIFACTS`). The security properties (CSRF, lock-out, cookie flags, secrets never
//! shown) and the change stream's wire format (`/v1/changes`, `/admin/changes`) are checked
//! over plain HTTP as well, where a browser would hide them.
//!
//! WebDriver: `EE_WEBDRIVER_URL` (scripts/test.sh starts chromedriver), else a chromedriver on
//! PATH is started here. Mail: Dovecot and Postfix from scripts/test.sh.

mod common;

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::http::{HeaderMap, StatusCode};
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{Value, json};

use common::{Env, Server, artifacts, mail_ports};

const PASSWORD: &str = "correct horse battery";
/// Secrets the pages must never show.
const IMAP_SECRET: &str = "Imap-Secret-4242";
const HOOK_SECRET: &str = "Hook-Pass-9911";
const HEADER_SECRET: &str = "Header-Secret-7733";
const SERVICE_SECRET: &str = "Service-Secret-5150";
const OAUTH_SECRET: &str = "OAuth-Client-Secret-6060";

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

/// A chromedriver: the one scripts/test.sh started, or our own.
struct Driver {
    url: String,
    child: Option<Child>,
}

impl Driver {
    fn get() -> Self {
        if let Ok(url) = std::env::var("EE_WEBDRIVER_URL") {
            return Self { url, child: None };
        }
        let port = free_port();
        let child = Command::new("chromedriver")
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver must be installed (apt-get install chromium chromium-driver), or set EE_WEBDRIVER_URL");
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "chromedriver did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
        Self {
            url: format!("http://127.0.0.1:{port}"),
            child: Some(child),
        }
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        if let Some(c) = &mut self.child {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// A headless Chromium with a fresh profile and everything that phones home turned off.
async fn browser(driver: &Driver, profile: &std::path::Path) -> Client {
    let mut caps = serde_json::Map::new();
    caps.insert(
        "goog:chromeOptions".into(),
        json!({
            "binary": std::env::var("EE_CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into()),
            "args": [
                "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                "--disable-background-networking", "--disable-component-update", "--disable-sync",
                "--disable-dev-shm-usage", "--window-size=1280,1000",
                format!("--user-data-dir={}", profile.display()),
            ],
        }),
    );
    ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
        .capabilities(caps)
        .connect(&driver.url)
        .await
        .expect("a WebDriver session")
}

/// One browser tab on the server under test, with the checks every page gets.
struct Ui {
    c: Client,
    base: String,
    shots: PathBuf,
    /// Page sources seen, for the "never shows a secret" check at the end.
    sources: Vec<(String, String)>,
}

impl Ui {
    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    async fn path(&self) -> String {
        let u = self.c.current_url().await.unwrap();
        match u.query() {
            Some(q) => format!("{}?{q}", u.path()),
            None => u.path().to_string(),
        }
    }

    async fn open(&mut self, path: &str) {
        self.c.goto(&self.url(path)).await.unwrap();
        self.checked().await;
    }

    /// Every request the page made went to this server; its source is kept.
    async fn checked(&mut self) {
        let names = self
            .c
            .execute(
                "return performance.getEntries().filter(e => e.entryType === 'navigation' || e.entryType === 'resource').map(e => e.name)",
                vec![],
            )
            .await
            .unwrap();
        let names = names.as_array().cloned().unwrap_or_default();
        assert!(!names.is_empty());
        for n in names {
            let n = n.as_str().unwrap_or_default();
            assert!(
                n.starts_with(&self.base),
                "a page requested something outside the server: {n}"
            );
        }
        let source = self.c.source().await.unwrap();
        let path = self.path().await;
        self.sources.push((path, source));
    }

    async fn shot(&self, name: &str) {
        let png = self.c.screenshot().await.unwrap();
        std::fs::write(self.shots.join(format!("admin-{name}.png")), png).unwrap();
    }

    async fn fill(&self, css: &str, text: &str) {
        let e = self.c.find(Locator::Css(css)).await.unwrap();
        e.clear().await.unwrap();
        e.send_keys(text).await.unwrap();
    }

    async fn set_checkbox(&self, css: &str, on: bool) {
        let e = self.c.find(Locator::Css(css)).await.unwrap();
        let checked = e.prop("checked").await.unwrap().as_deref() == Some("true");
        if checked != on {
            e.click().await.unwrap();
        }
    }

    async fn text(&self, css: &str) -> String {
        self.c
            .find(Locator::Css(css))
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }

    /// Clicks a submit button and waits for the next page to load.
    async fn submit(&mut self, css: &str) {
        let before: Value = self
            .c
            .execute("return performance.timeOrigin", vec![])
            .await
            .unwrap();
        self.c
            .find(Locator::Css(css))
            .await
            .unwrap()
            .click()
            .await
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let now = self
                .c
                .execute(
                    "return document.readyState === 'complete' ? performance.timeOrigin : null",
                    vec![],
                )
                .await;
            if let Ok(v) = now
                && !v.is_null()
                && v != before
            {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "no page load after clicking {css}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        self.checked().await;
    }

    /// Identifies the loaded document: it changes when the page is reloaded or left.
    async fn load_id(&self) -> Value {
        self.c
            .execute("return performance.timeOrigin", vec![])
            .await
            .unwrap()
    }

    /// Waits until the element's text contains `needle`; returns the text.
    async fn wait_text(&self, css: &str, needle: &str, secs: u64) -> String {
        let deadline = Instant::now() + Duration::from_secs(secs);
        loop {
            if let Ok(e) = self.c.find(Locator::Css(css)).await
                && let Ok(t) = e.text().await
                && t.contains(needle)
            {
                return t;
            }
            assert!(
                Instant::now() < deadline,
                "\"{needle}\" did not appear in {css}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Reloads the page until `css` contains `needle`.
    async fn reload_until(&mut self, css: &str, needle: &str, secs: u64) {
        let deadline = Instant::now() + Duration::from_secs(secs);
        loop {
            if let Ok(e) = self.c.find(Locator::Css(css)).await
                && let Ok(t) = e.text().await
                && t.contains(needle)
            {
                self.checked().await;
                return;
            }
            assert!(
                Instant::now() < deadline,
                "\"{needle}\" did not appear in {css} after reloading"
            );
            tokio::time::sleep(Duration::from_millis(300)).await;
            self.c.refresh().await.unwrap();
        }
    }

    async fn sign_in(&mut self, password: &str) {
        assert!(
            self.path().await.starts_with("/admin/login"),
            "{}",
            self.path().await
        );
        self.fill("#password", password).await;
        self.submit("form[action='/admin/login'] button[type=submit]")
            .await;
    }
}

/// A webhook receiver: `/hook` answers 200 and records; `/moved` answers 302 (a permanent
/// failure, so the delivery is given up at once).
#[derive(Clone, Default)]
struct Receiver {
    hits: Arc<Mutex<Vec<(HeaderMap, Value)>>>,
}

impl Receiver {
    async fn start(&self) -> String {
        let hits = self.hits.clone();
        let app = axum::Router::new()
            .route(
                "/hook",
                axum::routing::post(move |headers: HeaderMap, body: Bytes| {
                    let hits = hits.clone();
                    async move {
                        let v = serde_json::from_slice(&body).unwrap_or(Value::Null);
                        hits.lock().unwrap().push((headers, v));
                        StatusCode::OK
                    }
                }),
            )
            .route(
                "/moved",
                axum::routing::post(|| async {
                    (StatusCode::FOUND, [("location", "http://127.0.0.1:9/")])
                }),
            );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://127.0.0.1:{}", listener.local_addr().unwrap().port());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        base
    }

    fn events(&self) -> Vec<(HeaderMap, Value)> {
        self.hits.lock().unwrap().clone()
    }
}

fn base32_decode(text: &str) -> Vec<u8> {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    let mut out = Vec::new();
    let (mut buffer, mut bits) = (0u32, 0);
    for c in text.trim().bytes() {
        let v = ALPHABET.iter().position(|a| *a == c).unwrap() as u32;
        buffer = (buffer << 5) | v;
        bits += 5;
        if bits >= 8 {
            bits -= 8;
            out.push((buffer >> bits) as u8);
        }
    }
    out
}

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

#[tokio::test]
async fn operator_walks_through_the_admin_pages() {
    let env = Env::new("admin-ui");
    let server = env.start(&["--log.level=info"]).await;
    let receiver = Receiver::default();
    let hooks = receiver.start().await;
    let driver = Driver::get();
    let profile = tempdir("admin-ui-profile");
    let mut ui = Ui {
        c: browser(&driver, &profile).await,
        base: server.base.clone(),
        shots: artifacts(),
        sources: Vec::new(),
    };

    // First visit: no password yet, so the setup page; the new password signs us in.
    ui.open("/admin").await;
    assert_eq!(ui.path().await, "/admin/setup");
    ui.shot("01-setup").await;
    ui.fill("#password", PASSWORD).await;
    ui.fill("#password2", PASSWORD).await;
    ui.submit("form[action='/admin/setup'] button").await;
    assert_eq!(ui.path().await, "/admin?notice=password-saved");
    ui.shot("02-dashboard").await;
    // The session cookie is out of reach of scripts, and sent only to same-site requests.
    let cookies = ui.c.get_all_cookies().await.unwrap();
    let ee = cookies
        .iter()
        .find(|c| c.name() == "ee")
        .expect("ee cookie");
    assert_eq!(ee.http_only(), Some(true));
    assert_eq!(format!("{:?}", ee.same_site()), "Some(Lax)");
    assert_eq!(ee.path(), Some("/admin"));
    let visible: Value =
        ui.c.execute("return document.cookie", vec![])
            .await
            .unwrap();
    assert!(!visible.as_str().unwrap_or_default().contains("ee="));

    // Log out, log in.
    ui.submit("form.logout button").await;
    assert_eq!(ui.path().await, "/admin/login?notice=logged-out");
    ui.shot("03-login").await;
    ui.sign_in("not the password").await;
    assert!(
        ui.text("[role=alert]")
            .await
            .contains("Failed to authenticate")
    );
    ui.sign_in(PASSWORD).await;
    assert_eq!(ui.path().await, "/admin");

    // A phone-sized view of the dashboard.
    ui.c.set_window_size(390, 844).await.unwrap();
    ui.shot("04-dashboard-phone").await;
    ui.c.set_window_size(1280, 1000).await.unwrap();

    // Generate token → shown once → works on /v1/stats.
    ui.open("/admin/tokens").await;
    ui.submit("#generate-link").await;
    assert_eq!(ui.path().await, "/admin/tokens/new");
    ui.shot("05-token-form").await;
    ui.fill("#description", "browser test token").await;
    ui.submit("#generate-button").await;
    let token =
        ui.c.find(Locator::Css("#new-token"))
            .await
            .unwrap()
            .prop("value")
            .await
            .unwrap()
            .unwrap();
    assert_eq!(token.len(), 64, "{token}");
    ui.c.find(Locator::Css("#copy-button"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    ui.wait_text("#copy-status", "C", 5).await;
    ui.shot("06-token-shown").await;
    let (status, stats) = server.get("/v1/stats", Some(&token)).await;
    assert_eq!(status, 200, "{stats}");
    assert_eq!(stats["accounts"], 0);
    ui.open("/admin/tokens").await;
    let listed = ui.text("#tokens").await;
    assert!(listed.contains("browser test token"), "{listed}");
    assert!(listed.contains("127.0.0.1"), "last use address: {listed}");
    ui.shot("07-tokens").await;
    assert!(
        !ui.sources.last().unwrap().1.contains(&token),
        "the token list shows the token"
    );

    // Webhooks: send a test event to the receiver and see its answer.
    ui.open("/admin/webhooks").await;
    let hook_url = hooks.replace("http://", &format!("http://user:{HOOK_SECRET}@")) + "/hook";
    ui.fill("#webhooks", &hook_url).await;
    ui.fill(
        "#customHeaders",
        &format!("Authorization: Bearer {HEADER_SECRET}"),
    )
    .await;
    ui.c.find(Locator::Css("#test-webhook"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    let answer = ui.wait_text("#test-result", "HTTP 200", 15).await;
    assert!(answer.contains("Delivered"), "{answer}");
    ui.shot("08-webhook-test").await;
    let test_hits = receiver.events();
    assert_eq!(test_hits.len(), 1);
    assert_eq!(test_hits[0].1["event"], "test");
    assert_eq!(
        test_hits[0].0["authorization"],
        format!("Bearer {HEADER_SECRET}").as_str()
    );
    // Now point webhooks at a URL that answers 302, so deliveries are given up.
    ui.fill("#webhooks", &format!("{hooks}/moved")).await;
    ui.set_checkbox("input[name=webhooksEnabled]", true).await;
    ui.submit("#save-webhooks").await;
    assert_eq!(ui.path().await, "/admin/webhooks?notice=saved");

    // Add an IMAP account: test the connection, add it, watch it connect.
    let (imap, smtp) = mail_ports();
    let user = format!("{}@example.com", env.prefix);
    ui.open("/admin/accounts").await;
    ui.submit("a[href='/admin/accounts/new']").await;
    ui.fill("#account", "ui-ann").await;
    ui.fill("#name", "Ann from the UI").await;
    ui.fill("#email", &user).await;
    ui.fill("#imap_host", "127.0.0.1").await;
    ui.fill("#imap_port", &imap.to_string()).await;
    ui.set_checkbox("input[name=imap_secure]", false).await;
    ui.fill("#imap_user", &user).await;
    ui.fill("#imap_pass", "pass").await;
    ui.fill("#smtp_host", "127.0.0.1").await;
    ui.fill("#smtp_port", &smtp.to_string()).await;
    ui.set_checkbox("input[name=smtp_secure]", false).await;
    ui.fill("#smtp_user", &user).await;
    ui.fill("#smtp_pass", "pass").await;
    ui.c.find(Locator::Css("#verify-button"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    let verified = ui.wait_text("#verify-result", "IMAP OK", 20).await;
    assert!(verified.contains("SMTP OK"), "{verified}");
    ui.shot("09-account-verified").await;
    ui.submit("#add-button").await;
    assert_eq!(
        ui.path().await,
        "/admin/accounts/ui-ann?notice=account-added"
    );
    // The page follows the change stream: the badge turns `connected` without a reload.
    let loaded = ui.load_id().await;
    let first = ui.text("#account-state").await;
    ui.wait_text("#account-state", "connected", 30).await;
    assert_eq!(ui.load_id().await, loaded, "the page was reloaded");
    println!("account page rendered with state {first:?}");
    // A reconnect requested elsewhere shows on the open page as it happens.
    ui.c.execute(
        "window.seenStates = []; const b = document.getElementById('account-state'); \
         new MutationObserver(() => window.seenStates.push(b.textContent)).observe(b, {childList: true, characterData: true, subtree: true});",
        vec![],
    )
    .await
    .unwrap();
    let ui_token = env.issue(&["-d", "reconnect", "-s", "api"]);
    let (status, _) = server
        .send(
            reqwest::Method::PUT,
            "/v1/account/ui-ann/reconnect",
            Some(&ui_token),
            Some(json!({"reconnect": true})),
        )
        .await;
    assert_eq!(status, 200);
    let seen = common::wait_for("the reconnect on the page", 30, || {
        let c = ui.c.clone();
        async move {
            let seen = c.execute("return window.seenStates", vec![]).await.ok()?;
            let seen: Vec<String> = serde_json::from_value(seen).ok()?;
            (seen.len() >= 2 && seen.last().map(String::as_str) == Some("connected"))
                .then_some(seen)
        }
    })
    .await;
    assert_eq!(seen[0], "connecting", "{seen:?}");
    assert_eq!(ui.load_id().await, loaded, "the page was reloaded");
    assert_eq!(
        ui.c.find(Locator::Css("#account-state"))
            .await
            .unwrap()
            .attr("class")
            .await
            .unwrap()
            .as_deref(),
        Some("badge state-connected")
    );
    ui.reload_until("#folders", "INBOX", 15).await;
    ui.shot("10-account").await;

    // A second account, registered over the API with a password the pages must never show,
    // while the dashboard is open: its counts follow without a reload.
    ui.open("/admin").await;
    assert_eq!(ui.text("#accounts-total").await, "1");
    let dashboard = ui.load_id().await;
    let admin_token = env.issue(&["-d", "test", "-s", "*"]);
    let (status, _) = server
        .send(
            reqwest::Method::POST,
            "/v1/account",
            Some(&admin_token),
            Some(
                json!({"account": "ui-bob", "name": "Bob", "email": "bob@example.invalid",
                "imap": {"host": "127.0.0.1", "port": 9, "secure": false,
                    "auth": {"user": "bob", "pass": IMAP_SECRET}}}),
            ),
        )
        .await;
    assert_eq!(status, 200);
    ui.wait_text("#accounts-total", "2", 20).await;
    ui.wait_text("#account-states", "connectError 1", 30).await;
    assert!(ui.text("#account-states").await.contains("connected 1"));
    assert_eq!(ui.load_id().await, dashboard, "the dashboard was reloaded");
    ui.shot("11a-dashboard-live").await;
    ui.open("/admin/accounts").await;
    let list = ui.text("#accounts").await;
    assert!(list.contains("ui-ann") && list.contains("ui-bob"), "{list}");
    ui.shot("11-accounts").await;
    ui.open("/admin/accounts?query=bob").await;
    assert_eq!(ui.text("#account-count").await, "1 account");
    ui.open("/admin/accounts/ui-bob").await;
    ui.submit("form[action$='/reconnect'] button").await;
    assert_eq!(ui.text("[role=status]").await, "Reconnect requested.");
    ui.submit("form[action$='/sync'] button").await;
    assert_eq!(ui.text("[role=status]").await, "Sync requested.");
    ui.shot("12-account-failing").await;

    // The account's events were given up at the 302 target; re-send one to the receiver.
    ui.open("/admin/webhooks").await;
    ui.reload_until("#failed-table", "accountAdded", 30).await;
    ui.c.execute("document.getElementById('failed').scrollIntoView()", vec![])
        .await
        .unwrap();
    ui.shot("13-webhooks-failed").await;
    ui.fill("#webhooks", &format!("{hooks}/hook")).await;
    ui.submit("#save-webhooks").await;
    let before = receiver.events().len();
    let first_row = ui
        .text("#failed-table tbody tr:first-child td:nth-child(3)")
        .await;
    ui.submit("#failed-table tbody tr:first-child button").await;
    assert_eq!(ui.path().await, "/admin/webhooks?notice=resent");
    let resent = common::wait_for("the re-sent event", 20, || {
        let events = receiver.events();
        async move { (events.len() > before).then(|| events[before].1.clone()) }
    })
    .await;
    assert_eq!(resent["event"], first_row.as_str());

    // Outbox: a message queued for later, then cancelled.
    let later = chrono::Utc::now() + chrono::Duration::hours(1);
    let (status, queued) = server
        .send(
            reqwest::Method::POST,
            "/v1/account/ui-ann/submit",
            Some(&admin_token),
            Some(
                json!({"to": ["later@example.org"], "subject": "Held for later", "text": "x",
                "sendAt": later.to_rfc3339()}),
            ),
        )
        .await;
    assert_eq!(status, 200, "{queued}");
    ui.open("/admin/outbox").await;
    assert!(ui.text("#outbox").await.contains("Held for later"));
    ui.shot("14-outbox").await;
    ui.c.find(Locator::Css("#outbox button"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    ui.c.accept_alert().await.unwrap();
    ui.wait_text("[role=status]", "removed from the outbox", 10)
        .await;
    assert_eq!(ui.text("#outbox-count").await, "0 queued messages");

    // Service settings (the secret goes in, and never comes back out).
    ui.open("/admin/settings").await;
    ui.fill("#serviceSecret", SERVICE_SECRET).await;
    ui.submit("#save-settings").await;
    assert_eq!(ui.path().await, "/admin/settings?notice=saved");
    ui.shot("15-settings").await;

    // OAuth2 applications: register, edit (the secret kept), delete; the API sees each step.
    ui.open("/admin/config/oauth").await;
    ui.shot("15a-oauth-apps-empty").await;
    ui.submit("#new-gmail").await;
    assert_eq!(ui.path().await, "/admin/config/oauth/new?provider=gmail");
    ui.fill("#name", "Gmail from the UI").await;
    ui.fill("#clientId", "ui-client-id.apps.example").await;
    ui.fill("#clientSecret", OAUTH_SECRET).await;
    ui.fill("#redirectUrl", "https://ee.example/oauth").await;
    ui.shot("15b-oauth-app-new").await;
    ui.submit("#save-app").await;
    assert_eq!(ui.path().await, "/admin/config/oauth?notice=app-saved");
    assert!(ui.text("#apps").await.contains("Gmail from the UI"));
    let (status, apps) = server.get("/v1/oauth2", Some(&admin_token)).await;
    assert_eq!((status, apps["total"].clone()), (200, json!(1)), "{apps}");
    let app_id = apps["apps"][0]["id"].as_str().unwrap().to_string();
    let (status, app) = server
        .get(&format!("/v1/oauth2/{app_id}"), Some(&admin_token))
        .await;
    assert_eq!(status, 200);
    assert_eq!(
        (
            &app["provider"],
            &app["name"],
            &app["clientId"],
            &app["clientSecret"],
            &app["redirectUrl"],
            &app["enabled"]
        ),
        (
            &json!("gmail"),
            &json!("Gmail from the UI"),
            &json!("ui-client-id.apps.example"),
            &json!("******"),
            &json!("https://ee.example/oauth"),
            &json!(true)
        ),
        "{app}"
    );
    ui.open(&format!("/admin/config/oauth/edit/{app_id}")).await;
    assert!(
        ui.text("#clientSecret-status")
            .await
            .contains("set — leave empty to keep it")
    );
    assert_eq!(
        ui.c.find(Locator::Css("#clientSecret"))
            .await
            .unwrap()
            .prop("value")
            .await
            .unwrap()
            .as_deref(),
        Some("")
    );
    ui.shot("15c-oauth-app-edit").await;
    ui.fill("#name", "Gmail, renamed").await;
    ui.fill("#description", "edited in the browser").await;
    ui.submit("#save-app").await;
    assert_eq!(ui.path().await, "/admin/config/oauth?notice=app-saved");
    let (_, app) = server
        .get(&format!("/v1/oauth2/{app_id}"), Some(&admin_token))
        .await;
    assert_eq!(
        (
            &app["name"],
            &app["description"],
            &app["clientSecret"],
            &app["clientId"]
        ),
        (
            &json!("Gmail, renamed"),
            &json!("edited in the browser"),
            &json!("******"),
            &json!("ui-client-id.apps.example")
        ),
        "{app}"
    );
    let store = env.store().await;
    let (data, _) = store.app(&app_id).await.unwrap().unwrap();
    let stored = emailengine_oauth::app::storage::decode_data(&data, None).unwrap();
    assert_eq!(
        stored.client_secret.as_deref(),
        Some(OAUTH_SECRET),
        "the blank field kept the secret"
    );
    ui.shot("15d-oauth-apps").await;
    ui.c.find(Locator::Css(
        "form[action='/admin/config/oauth/delete'] button",
    ))
    .await
    .unwrap()
    .click()
    .await
    .unwrap();
    ui.c.accept_alert().await.unwrap();
    ui.wait_text("[role=status]", "OAuth2 application deleted.", 10)
        .await;
    ui.checked().await;
    assert_eq!(ui.text("#app-count").await, "0 applications");
    let (status, _) = server
        .get(&format!("/v1/oauth2/{app_id}"), Some(&admin_token))
        .await;
    assert_eq!(status, 404);

    // Add an account through the hosted form: the browser lands on the signed setup page.
    ui.open("/admin/accounts/new").await;
    ui.fill("#hosted-account", "ui-hosted").await;
    ui.fill("#hosted-name", "Hosted from the UI").await;
    ui.shot("15e-account-new").await;
    ui.submit("#hosted-button").await;
    let landed = ui.path().await;
    assert!(landed.starts_with("/accounts/new?data="), "{landed}");
    assert!(landed.ends_with("&type=imap"), "{landed}");
    ui.shot("15f-hosted-form").await;

    // TOTP: enable with a code from the shown key, then log in with a code.
    ui.open("/admin/account/security").await;
    ui.shot("16-security").await;
    let secret = ui.text("#totp-secret").await;
    let seed = String::from_utf8(base32_decode(&secret)).unwrap();
    assert_eq!(seed.len(), 20);
    let code = emailengine_admin::totp::code_at(&seed, unix_now()).unwrap();
    ui.fill("#code", &code).await;
    ui.submit("#enable-totp").await;
    assert!(ui.text("#totp-status").await.contains("on"));
    ui.shot("17-totp-on").await;
    ui.submit("form.logout button").await;
    ui.sign_in(PASSWORD).await;
    assert!(
        ui.path().await.starts_with("/admin/totp"),
        "{}",
        ui.path().await
    );
    ui.shot("18-totp-step").await;
    // The code just used is refused; the next step's code is accepted.
    ui.fill("#code", &code).await;
    ui.submit("form[action='/admin/totp'] button").await;
    assert!(ui.text("[role=alert]").await.contains("used already"));
    let next = emailengine_admin::totp::code_at(&seed, unix_now() + 30).unwrap();
    ui.fill("#code", &next).await;
    ui.submit("form[action='/admin/totp'] button").await;
    assert_eq!(ui.path().await, "/admin");

    // Every page: never a secret, never a request elsewhere (checked on each load).
    for path in [
        "/admin",
        "/admin/accounts",
        "/admin/accounts/ui-ann",
        "/admin/accounts/new",
        "/admin/config/oauth",
        "/admin/config/oauth/new?provider=oauth2",
        "/admin/tokens",
        "/admin/tokens/new",
        "/admin/webhooks",
        "/admin/outbox",
        "/admin/settings",
        "/admin/account/security",
        "/admin/account/password",
        "/admin/no-such-page",
    ] {
        ui.open(path).await;
    }
    ui.shot("19-not-found").await;
    ui.open("/admin/account/password").await;
    ui.shot("20-password").await;
    // Delete an account (after confirming).
    ui.open("/admin/accounts/ui-bob").await;
    ui.c.find(Locator::Css("form[action$='/delete'] button"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    ui.c.accept_alert().await.unwrap();
    ui.wait_text("[role=status]", "Account deleted.", 10).await;
    assert!(!ui.text("#accounts").await.contains("ui-bob"));
    // The hook URL with its password was saved before the 302 URL replaced it; the header is
    // still stored and shown masked.
    ui.open("/admin/webhooks").await;
    assert!(
        ui.sources
            .last()
            .unwrap()
            .1
            .contains("Authorization: ******")
    );
    for (path, source) in &ui.sources {
        for secret in [
            IMAP_SECRET,
            HOOK_SECRET,
            HEADER_SECRET,
            SERVICE_SECRET,
            OAUTH_SECRET,
            PASSWORD,
        ] {
            assert!(!source.contains(secret), "{path} shows a secret");
        }
    }
    ui.c.close().await.unwrap();
    let _ = std::fs::remove_dir_all(&profile);
    drop(server);
}

fn tempdir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("{}-{}-{}", name, std::process::id(), free_port()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A plain HTTP client with a cookie jar, for the checks a browser hides.
struct Visitor {
    http: reqwest::Client,
    jar: Arc<reqwest::cookie::Jar>,
    base: String,
}

impl Visitor {
    fn new(server: &Server) -> Self {
        let jar = Arc::new(reqwest::cookie::Jar::default());
        Self {
            http: reqwest::Client::builder()
                .cookie_provider(jar.clone())
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap(),
            jar,
            base: server.base.clone(),
        }
    }

    /// The `Cookie` header this visitor sends to the admin pages.
    fn cookie(&self) -> String {
        use reqwest::cookie::CookieStore;
        let url = format!("{}/admin", self.base).parse().unwrap();
        self.jar
            .cookies(&url)
            .map(|v| v.to_str().unwrap().to_string())
            .unwrap_or_default()
    }

    async fn get(&self, path: &str) -> reqwest::Response {
        self.http
            .get(format!("{}{path}", self.base))
            .send()
            .await
            .unwrap()
    }

    /// The CSRF token on a page.
    async fn csrf(&self, path: &str) -> String {
        let html = self.get(path).await.text().await.unwrap();
        let at = html.find("name=\"csrf\" value=\"").expect("a form") + 19;
        html[at..at + 64].to_string()
    }

    async fn post(
        &self,
        path: &str,
        form: &[(&str, &str)],
        origin: Option<&str>,
    ) -> reqwest::Response {
        let mut req = self.http.post(format!("{}{path}", self.base)).form(form);
        if let Some(o) = origin {
            req = req.header("origin", o);
        }
        req.send().await.unwrap()
    }

    async fn set_up(&self) {
        let csrf = self.csrf("/admin/setup").await;
        let r = self
            .post(
                "/admin/setup",
                &[
                    ("csrf", &csrf),
                    ("password", PASSWORD),
                    ("password2", PASSWORD),
                ],
                Some(&self.base),
            )
            .await;
        assert_eq!(r.status(), 303);
    }

    async fn sign_in(&self, remember: bool) -> reqwest::Response {
        let csrf = self.csrf("/admin/login").await;
        let mut form = vec![("csrf", csrf.as_str()), ("password", PASSWORD)];
        if remember {
            form.push(("remember", "1"));
        }
        let r = self.post("/admin/login", &form, Some(&self.base)).await;
        assert_eq!(r.status(), 303);
        assert_eq!(r.headers()["location"], "/admin");
        r
    }
}

async fn setting(env: &Env, key: &str) -> Option<Value> {
    let store = env.store().await;
    emailengine_store::Settings::new(store, None)
        .get_one(key)
        .await
        .unwrap()
}

#[tokio::test]
async fn forms_without_this_sessions_token_or_from_elsewhere_are_refused() {
    let env = Env::new("admin-csrf");
    let server = env.start(&[]).await;
    let a = Visitor::new(&server);
    a.set_up().await;
    let b = Visitor::new(&server);
    b.sign_in(false).await;
    let token_a = a.csrf("/admin/settings").await;
    let token_b = b.csrf("/admin/settings").await;
    assert_ne!(token_a, token_b);
    let base = server.base.as_str();
    let url = ("serviceUrl", "https://changed.example");
    for (why, form, origin) in [
        ("no token", vec![url], Some(base)),
        (
            "another session's token",
            vec![("csrf", token_b.as_str()), url],
            Some(base),
        ),
        (
            "a foreign origin",
            vec![("csrf", token_a.as_str()), url],
            Some("http://evil.example"),
        ),
        (
            "no origin or referer",
            vec![("csrf", token_a.as_str()), url],
            None,
        ),
    ] {
        let r = a.post("/admin/settings", &form, origin).await;
        assert_eq!(r.status(), 403, "{why}");
        assert!(r.text().await.unwrap().contains("Request refused"), "{why}");
        assert_eq!(
            setting(&env, "serviceUrl").await,
            None,
            "{why}: the setting changed"
        );
    }
    // A form with no session at all is refused too.
    let stranger = Visitor::new(&server);
    let r = stranger
        .post(
            "/admin/settings",
            &[("csrf", token_a.as_str()), url],
            Some(base),
        )
        .await;
    assert_eq!(r.status(), 403);
    // The real thing passes.
    let r = a
        .post(
            "/admin/settings",
            &[("csrf", token_a.as_str()), url],
            Some(base),
        )
        .await;
    assert_eq!(r.status(), 303);
    assert_eq!(
        setting(&env, "serviceUrl").await,
        Some(json!("https://changed.example"))
    );
}

#[tokio::test]
async fn ten_wrong_passwords_lock_the_address_out() {
    let env = Env::new("admin-lockout");
    let server = env.start(&[]).await;
    Visitor::new(&server).set_up().await;
    let v = Visitor::new(&server);
    let started = Instant::now();
    for _ in 0..10 {
        let csrf = v.csrf("/admin/login").await;
        let r = v
            .post(
                "/admin/login",
                &[("csrf", &csrf), ("password", "wrong password")],
                Some(&server.base),
            )
            .await;
        assert_eq!(r.status(), 200);
        assert!(r.text().await.unwrap().contains("Failed to authenticate"));
    }
    // Each failure made the next attempt wait 100 ms longer: 0.1 + 0.2 + … + 0.9 s.
    assert!(started.elapsed() >= Duration::from_millis(4500));
    let csrf = v.csrf("/admin/login").await;
    let r = v
        .post(
            "/admin/login",
            &[("csrf", &csrf), ("password", PASSWORD)],
            Some(&server.base),
        )
        .await;
    assert_eq!(r.status(), 429, "even the right password is refused now");
    assert!(r.text().await.unwrap().contains("Try again in 15 minutes"));
}

#[tokio::test]
async fn session_cookie_flags_and_endings() {
    let env = Env::new("admin-cookie");
    let server = env.start(&["--api.proxy=true"]).await;
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let r = http.get(server.url("/admin")).send().await.unwrap();
    let cookie = r.headers()["set-cookie"].to_str().unwrap().to_string();
    assert!(cookie.starts_with("ee="));
    assert!(
        cookie.ends_with("; HttpOnly; SameSite=Lax; Path=/admin"),
        "{cookie}"
    );
    assert_eq!(
        r.headers()["content-security-policy"].to_str().unwrap(),
        "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'; object-src 'none'"
    );
    // Behind a proxy that says the visitor used https, the cookie is Secure.
    let r = http
        .get(server.url("/admin"))
        .header("x-forwarded-proto", "https")
        .send()
        .await
        .unwrap();
    let cookie = r.headers()["set-cookie"].to_str().unwrap();
    assert!(
        cookie.ends_with("; HttpOnly; SameSite=Lax; Secure; Path=/admin"),
        "{cookie}"
    );

    let a = Visitor::new(&server);
    a.set_up().await;
    assert_eq!(a.get("/admin").await.status(), 200);
    // "Remember me" keeps the cookie for 30 days.
    let c = Visitor::new(&server);
    let r = c.sign_in(true).await;
    let remembered = r.headers()["set-cookie"].to_str().unwrap();
    let (flags, max_age) = remembered.rsplit_once("; Max-Age=").unwrap();
    assert!(
        flags.ends_with("; HttpOnly; SameSite=Lax; Path=/admin"),
        "{remembered}"
    );
    let max_age: i64 = max_age.parse().unwrap();
    assert!((2_591_990..=2_592_000).contains(&max_age), "{remembered}");

    // Logging out ends the session for good, even for a copy of its cookie.
    let copy = a.cookie();
    let csrf = a.csrf("/admin").await;
    let r = a
        .post("/admin/logout", &[("csrf", &csrf)], Some(&server.base))
        .await;
    assert_eq!(r.status(), 303);
    assert!(
        r.headers()["set-cookie"]
            .to_str()
            .unwrap()
            .contains("Max-Age=0")
    );
    let r = http
        .get(server.url("/admin"))
        .header("cookie", &copy)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303, "a logged-out cookie still works");
    assert_eq!(r.headers()["location"], "/admin/login?next=%2Fadmin");

    // "Log out everywhere" from b ends b and c.
    let b = Visitor::new(&server);
    b.sign_in(false).await;
    assert_eq!(c.get("/admin").await.status(), 200);
    let csrf = b.csrf("/admin/account/security").await;
    let r = b
        .post(
            "/admin/account/logout-all",
            &[("csrf", &csrf)],
            Some(&server.base),
        )
        .await;
    assert_eq!(r.status(), 303);
    assert_eq!(b.get("/admin").await.status(), 303);
    assert_eq!(c.get("/admin").await.status(), 303);
    Visitor::new(&server).sign_in(false).await;
}

#[tokio::test]
async fn first_password_only_from_this_machine() {
    let env = Env::new("admin-setup-remote");
    let server = env.start(&[]).await;
    let v = Visitor::new(&server);
    // A name that merely resolves to this machine (DNS rebinding) is not "this machine".
    let page = v
        .http
        .get(server.url("/admin/setup"))
        .header("host", "rebound.example")
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(page.contains("can only be set from a browser"), "{page}");
    let token = v.csrf("/admin/setup").await;
    let r = v
        .http
        .post(server.url("/admin/setup"))
        .header("host", "rebound.example")
        .header("origin", "http://rebound.example")
        .form(&[
            ("csrf", token.as_str()),
            ("password", PASSWORD),
            ("password2", PASSWORD),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    assert!(r.text().await.unwrap().contains("Not from here"));
    assert_eq!(setting(&env, "authData").await, None);
}

/// An open `text/event-stream` answer, read frame by frame.
struct EventStream {
    response: reqwest::Response,
    buffer: String,
}

impl EventStream {
    fn new(response: reqwest::Response) -> Self {
        Self {
            response,
            buffer: String::new(),
        }
    }

    /// The next frame, with its closing blank line.
    async fn frame(&mut self) -> String {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(end) = self.buffer.find("\n\n") {
                let frame = self.buffer[..end + 2].to_string();
                self.buffer.drain(..end + 2);
                return frame;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            let chunk = tokio::time::timeout(left, self.response.chunk())
                .await
                .expect("no frame within 30 s")
                .unwrap()
                .expect("the stream ended");
            self.buffer.push_str(std::str::from_utf8(&chunk).unwrap());
        }
    }

    /// Frames until one is `event: message` for this account and state; returns its JSON.
    async fn state(&mut self, account: &str, key: &str) -> Value {
        loop {
            let frame = self.frame().await;
            let Some(data) = frame.strip_prefix("event: message\ndata:") else {
                continue;
            };
            let change: Value = serde_json::from_str(data.trim_end()).unwrap();
            if change["account"] == account && change["key"] == key {
                return change;
            }
        }
    }
}

async fn open_stream(
    server: &Server,
    path: &str,
    token: Option<&str>,
    cookie: Option<&str>,
) -> reqwest::Response {
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let mut req = http.get(server.url(path));
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    if let Some(c) = cookie {
        req = req.header("cookie", c);
    }
    req.send().await.unwrap()
}

#[tokio::test]
async fn api_clients_and_the_admin_pages_read_one_change_stream() {
    let env = Env::new("admin-changes");
    let api = env.issue(&["-s", "api"]);
    let metrics_only = env.issue(&["-s", "metrics"]);
    let server = env.start(&[]).await;

    // Refused without a token, or with one that lacks the api scope.
    let r = open_stream(&server, "/v1/changes", None, None).await;
    assert_eq!(
        common::into_json(r).await,
        (
            401,
            json!({"statusCode":401,"error":"Unauthorized","message":"Missing authentication"})
        )
    );
    let r = open_stream(&server, "/v1/changes", Some(&metrics_only), None).await;
    assert_eq!(
        common::into_json(r).await,
        (
            403,
            json!({"statusCode":403,"error":"Forbidden","message":"Unauthorized scope","requestedScope":"api"})
        )
    );

    // Before a password is set, the admin stream is open, as EmailEngine's is.
    let r = open_stream(&server, "/admin/changes", None, None).await;
    assert_eq!(r.status(), 200);
    assert_eq!(
        EventStream::new(r).frame().await,
        ": EmailEngine v2.79.2\n\n"
    );

    let r = open_stream(&server, "/v1/changes", Some(&api), None).await;
    assert_eq!(r.status(), 200);
    for (name, value) in [
        ("content-type", "text/event-stream"),
        ("cache-control", "no-cache"),
        ("x-accel-buffering", "no"),
    ] {
        assert_eq!(r.headers()[name], value, "{name}");
    }
    let mut api_stream = EventStream::new(r);
    assert_eq!(api_stream.frame().await, ": EmailEngine v2.79.2\n\n");

    // With a password, the admin stream wants the session.
    let admin = Visitor::new(&server);
    admin.set_up().await;
    let r = open_stream(&server, "/admin/changes", None, None).await;
    assert_eq!(r.status(), 303);
    assert_eq!(
        r.headers()["location"],
        "/admin/login?next=%2Fadmin%2Fchanges"
    );
    let r = open_stream(&server, "/admin/changes", None, Some(&admin.cookie())).await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], "text/event-stream");
    let mut admin_stream = EventStream::new(r);
    assert_eq!(admin_stream.frame().await, ": EmailEngine v2.79.2\n\n");

    // An account connects, then reconnects: both consumers see the same frames.
    let (imap, _) = mail_ports();
    let user = format!("{}@example.com", env.prefix);
    let (status, body) = server
        .send(
            reqwest::Method::POST,
            "/v1/account",
            Some(&api),
            Some(json!({"account": "live", "name": "Live", "email": user,
                "imap": {"host": "127.0.0.1", "port": imap, "secure": false,
                    "auth": {"user": user, "pass": "pass"}}})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    api_stream.state("live", "connected").await;
    admin_stream.state("live", "connected").await;
    let (status, body) = server
        .send(
            reqwest::Method::PUT,
            "/v1/account/live/reconnect",
            Some(&api),
            Some(json!({"reconnect": true})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let connecting = "event: message\ndata:{\"account\":\"live\",\"type\":\"state\",\"key\":\"connecting\",\"payload\":null,\"stateLabel\":{\"type\":\"info\",\"name\":\"Connecting\",\"spinner\":true}}\n\n";
    for stream in [&mut api_stream, &mut admin_stream] {
        loop {
            let frame = stream.frame().await;
            if frame.contains("\"key\":\"connecting\"") {
                assert_eq!(frame, connecting);
                break;
            }
        }
        let connected = stream.state("live", "connected").await;
        assert_eq!(
            connected,
            json!({"account": "live", "type": "state", "key": "connected", "payload": null,
                "stateLabel": {"type": "success", "name": "Connected", "spinner": false}})
        );
    }

    // What the pages' script reads once its stream is open, to catch up on missed changes.
    let r = admin
        .get("/admin/accounts/states?account=live&account=nobody")
        .await;
    assert_eq!(
        common::into_json(r).await,
        (
            200,
            json!({"accounts": [{"account": "live", "state": "connected", "error": ""}]})
        )
    );

    // An account that cannot connect carries its error in the payload.
    let (status, _) = server
        .send(
            reqwest::Method::POST,
            "/v1/account",
            Some(&api),
            Some(
                json!({"account": "broken", "name": "Broken", "email": "b@example.invalid",
                "imap": {"host": "127.0.0.1", "port": imap, "secure": false,
                    "auth": {"user": user, "pass": "wrong password"}}}),
            ),
        )
        .await;
    assert_eq!(status, 200);
    let failed = api_stream.state("broken", "authenticationError").await;
    assert!(failed["payload"]["error"].is_object(), "{failed}");
    assert_eq!(failed["stateLabel"]["type"], "danger");

    // Open streams do not hold up the shutdown.
    let (code, _) = server.stop();
    assert_eq!(code, 0);
}

#[tokio::test]
async fn add_account_sends_the_browser_to_a_signed_hosted_form() {
    let env = Env::new("admin-hosted");
    let server = env.start(&[]).await;
    let v = Visitor::new(&server);
    v.set_up().await;
    let csrf = v.csrf("/admin/accounts/new").await;
    let r = v
        .post(
            "/admin/accounts/new",
            &[
                ("csrf", &csrf),
                ("account", "hosted-1"),
                ("name", "Hosted One"),
            ],
            Some(&server.base),
        )
        .await;
    assert_eq!(r.status(), 302);
    let location = r.headers()["location"].to_str().unwrap().to_string();
    let url = url::Url::parse(&format!("{}{location}", server.base)).unwrap();
    assert_eq!(url.path(), "/accounts/new");
    let query: Vec<(String, String)> = url.query_pairs().into_owned().collect();
    let names: Vec<&str> = query.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(names, ["data", "sig", "type"]);
    assert_eq!(query[2].1, "imap", "no OAuth2 app is registered");
    use base64::Engine as _;
    let blob: Value = serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(query[0].1.trim_end_matches('='))
            .unwrap(),
    )
    .unwrap();
    let keys: Vec<&str> = blob
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(keys, ["account", "name", "n", "t"]);
    assert_eq!(
        (&blob["account"], &blob["name"]),
        (&json!("hosted-1"), &json!("Hosted One"))
    );
    // The link works: the hosted form opens (and refuses a tampered signature).
    let page = server.http.get(server.url(&location)).send().await.unwrap();
    assert_eq!(page.status(), 200);
    let tampered = location.replace("sig=", "sig=A");
    let page = server.http.get(server.url(&tampered)).send().await.unwrap();
    assert_ne!(page.status(), 200);
    // Without the CSRF token nothing is signed.
    let r = v
        .post(
            "/admin/accounts/new",
            &[("account", "x")],
            Some(&server.base),
        )
        .await;
    assert_eq!(r.status(), 403);
}
