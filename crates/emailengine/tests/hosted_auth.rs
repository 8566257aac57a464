//! Hosted authentication end to end: `POST /v1/authentication/form` signs a setup link; a real
//! headless Chromium (WebDriver) opens it, picks the OAuth2 app, signs in and consents at the
//! real authorization server (oidc-provider from scripts/oauthenv.sh), comes back through
//! `/oauth` and lands on the caller's `redirectUrl` with the new account's id; the account then
//! syncs and sends through the token-checking Dovecot and Postfix. The IMAP arm, tampered and
//! expired links are checked over plain HTTP.
//!
//! Needs the services of scripts/test.sh (or scripts/devenv.sh); the OAuth2 parts skip without
//! `EE_TEST_OAUTH_URL`.

mod common;

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine as _;
use common::dns;
use common::*;
use fantoccini::{Client, ClientBuilder, Locator};
use reqwest::Method;
use serde_json::{Value, json};

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::URL_SAFE_NO_PAD;

async fn setup(env: &Env) -> (Server, String) {
    let token = env.issue(&[]);
    let server = env.start(&[]).await;
    (server, token)
}

async fn set_settings(server: &Server, token: &str, settings: Value) {
    let (status, body) = server
        .send(Method::POST, "/v1/settings", Some(token), Some(settings))
        .await;
    assert_eq!(status, 200, "{body}");
}

async fn form_url(server: &Server, token: &str, body: Value) -> (u16, Value) {
    server
        .send(
            Method::POST,
            "/v1/authentication/form",
            Some(token),
            Some(body),
        )
        .await
}

fn query_of(url: &str) -> std::collections::BTreeMap<String, String> {
    reqwest::Url::parse(url)
        .unwrap()
        .query_pairs()
        .into_owned()
        .collect()
}

async fn get_page(url: &str) -> (u16, String) {
    let r = reqwest::get(url).await.unwrap();
    assert_eq!(
        r.headers()
            .get("cache-control")
            .and_then(|v| v.to_str().ok()),
        Some("no-store"),
        "{url}"
    );
    (r.status().as_u16(), r.text().await.unwrap())
}

async fn post_form(url: &str, fields: &[(&str, &str)]) -> (u16, String) {
    let r = reqwest::Client::new()
        .post(url)
        .form(fields)
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.text().await.unwrap())
}

#[tokio::test]
async fn setup_links_are_signed_expire_and_work_once() {
    let env = Env::new("hosted-links");
    let (server, token) = setup(&env).await;
    let redirect = server.url("/health?from=test");
    let (status, body) = form_url(&server, &token, json!({"redirectUrl": redirect})).await;
    assert_eq!(status, 500);
    assert_eq!(body["code"], "MissingServiceURLSetup");
    let (status, body) = form_url(&server, &token, json!({"name": "x"})).await;
    assert_eq!(status, 400);
    assert_eq!(body["fields"][0]["message"], "\"redirectUrl\" is required");

    let secret = "hosted-links-secret";
    set_settings(
        &server,
        &token,
        json!({"serviceUrl": server.url(""), "serviceSecret": secret}),
    )
    .await;
    let (status, body) = form_url(
        &server,
        &token,
        json!({"account": "hosted-imap", "name": "Hosted", "redirectUrl": redirect,
            "delegated": false, "path": ["*"]}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let url = body["url"].as_str().unwrap().to_string();
    assert!(url.starts_with(&server.url("/accounts/new?data=")), "{url}");
    let query = query_of(&url);
    assert_eq!(query["type"], "imap", "no OAuth2 app is listed");
    // The signature is HMAC-SHA256 of the exact JSON under serviceSecret.
    let json_bytes = B64.decode(&query["data"]).unwrap();
    assert_eq!(hmac_b64(secret, &[&json_bytes], true), query["sig"]);
    let blob: Value = serde_json::from_slice(&json_bytes).unwrap();
    let keys: Vec<&str> = blob
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(
        keys,
        ["account", "name", "redirectUrl", "n", "t"],
        "falsy values dropped"
    );
    assert_eq!(blob["n"].as_str().unwrap().len(), 22);

    // Tampered: one byte of the data changed.
    let mut bytes = json_bytes.clone();
    let at = bytes.iter().position(|b| *b == b'H').unwrap();
    bytes[at] = b'J';
    let tampered = format!(
        "{}?data={}&sig={}&type=imap",
        server.url("/accounts/new"),
        B64.encode(&bytes),
        query["sig"]
    );
    let (status, page) = get_page(&tampered).await;
    assert_eq!(status, 403);
    assert!(page.contains("Signature validation failed"), "{page}");
    let (status, page) = post_form(
        &server.url("/accounts/new/imap/server"),
        &[("data", &B64.encode(&bytes)), ("sig", &query["sig"])],
    )
    .await;
    assert_eq!(status, 403, "{page}");

    // Expired: issued a day ago.
    let mut old = blob.clone();
    old["t"] = json!(chrono::Utc::now().timestamp_millis() - 86_400_000);
    let old_json = old.to_string();
    let expired = format!(
        "{}?data={}&sig={}",
        server.url("/accounts/new"),
        B64.encode(old_json.as_bytes()),
        hmac_b64(secret, &[old_json.as_bytes()], true)
    );
    let (status, page) = get_page(&expired).await;
    assert_eq!(status, 403);
    assert!(
        page.contains("Invalid or expired account setup URL"),
        "{page}"
    );

    // The IMAP arm: address and password, then the servers (discovery is off in tests, so
    // nothing is found), a connection test, then the account, then the caller's page.
    let (status, page) = get_page(&url).await;
    assert_eq!(status, 200);
    for label in [
        "<label for=\"email\">Email address</label>",
        "<label for=\"password\">Password</label>",
    ] {
        assert!(page.contains(label), "{label}: {page}");
    }
    for outside in ["<link", "src=", "http:", "https:"] {
        assert!(!page.contains(outside), "self-contained: {outside}");
    }
    let (imap, smtp) = mail_ports();
    let user = format!("{}@example.com", env.prefix);
    let (imap_port, smtp_port) = (imap.to_string(), smtp.to_string());
    let link = [
        ("data", query["data"].as_str()),
        ("sig", query["sig"].as_str()),
    ];
    let (status, page) = post_form(
        &server.url("/accounts/new/imap"),
        &[
            link[0],
            link[1],
            ("email", user.as_str()),
            ("password", "pass"),
        ],
    )
    .await;
    assert_eq!(status, 200, "{page}");
    for label in [
        "<label for=\"imap_host\">Server</label>",
        "<label for=\"smtp_auth_user\">Username</label>",
        "<label for=\"preset\">Provider</label>",
        "We could not find your mail servers",
        "data-imap-host=\"imap.gmail.com\"",
    ] {
        assert!(page.contains(label), "{label}: {page}");
    }
    assert!(
        page.contains(&format!(
            "id=\"imap_auth_user\" name=\"imap_auth_user\" value=\"{user}\""
        )),
        "the username is prefilled: {page}"
    );
    for outside in ["<link", "src=", "http:", "https:"] {
        assert!(!page.contains(outside), "self-contained: {outside}");
    }
    // The connection test answers as /v1/verifyAccount does.
    let servers = |pass: &'static str| {
        vec![
            ("imap_host", "127.0.0.1".to_string()),
            ("imap_port", imap_port.clone()),
            ("imap_auth_user", user.clone()),
            ("imap_auth_pass", pass.to_string()),
            ("smtp_host", "127.0.0.1".to_string()),
            ("smtp_port", smtp_port.clone()),
            ("smtp_auth_user", user.clone()),
            ("smtp_auth_pass", pass.to_string()),
        ]
    };
    let test_with = |extra: Vec<(&'static str, String)>, data: String, sig: String| {
        let server = &server;
        async move {
            let mut fields: Vec<(&str, String)> = vec![("data", data), ("sig", sig)];
            fields.extend(extra);
            let fields: Vec<(&str, &str)> = fields.iter().map(|(k, v)| (*k, v.as_str())).collect();
            let (status, body) = post_form(&server.url("/accounts/new/imap/test"), &fields).await;
            (status, serde_json::from_str::<Value>(&body).unwrap())
        }
    };
    let (status, result) =
        test_with(servers("pass"), query["data"].clone(), query["sig"].clone()).await;
    assert_eq!(status, 200);
    assert_eq!(
        result,
        json!({"imap": {"success": true}, "smtp": {"success": true}})
    );
    let (status, result) = test_with(
        servers("wrong"),
        query["data"].clone(),
        query["sig"].clone(),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(result["imap"]["success"], false, "{result}");
    assert_eq!(result["imap"]["code"], "AUTHENTICATIONFAILED", "{result}");
    let (status, result) =
        test_with(servers("pass"), B64.encode(&bytes), query["sig"].clone()).await;
    assert_eq!(status, 403, "a tampered link is refused in JSON");
    assert_eq!(result["message"], "Signature validation failed");
    let fields = [
        ("data", query["data"].as_str()),
        ("sig", query["sig"].as_str()),
        ("email", user.as_str()),
        ("password", "pass"),
        ("imap_host", "127.0.0.1"),
        ("imap_port", imap_port.as_str()),
        ("smtp_host", "127.0.0.1"),
        ("smtp_port", smtp_port.as_str()),
    ];
    let (status, page) = post_form(&server.url("/accounts/new/imap/server"), &fields).await;
    assert_eq!(status, 200, "{page}");
    let target = format!(
        "{}&amp;account=hosted-imap&amp;state=new",
        server.url("/health?from=test")
    );
    assert!(
        page.contains(&format!("content=\"0;URL='{target}'\"")),
        "{page}"
    );
    wait_for("hosted-imap connected", 20, || async {
        let (_, info) = server.get("/v1/account/hosted-imap", Some(&token)).await;
        (info["state"] == "connected").then_some(())
    })
    .await;
    let (_, info) = server.get("/v1/account/hosted-imap", Some(&token)).await;
    assert_eq!(info["name"], "Hosted");
    assert_eq!(info["email"], user.as_str());
    // Used once: the same link now fails and creates nothing more.
    let (status, page) = post_form(&server.url("/accounts/new/imap/server"), &fields).await;
    assert_eq!(status, 403);
    assert!(page.contains("Invalid or expired account setup URL"));
    let (_, list) = server.get("/v1/accounts", Some(&token)).await;
    assert_eq!(list["total"], 1);
}

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
            .expect("chromedriver (apt-get install chromium chromium-driver) or EE_WEBDRIVER_URL");
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

/// Waits until the browser's address starts with `prefix`.
async fn wait_url(c: &Client, prefix: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let url = c.current_url().await.unwrap().to_string();
        if url.starts_with(prefix) {
            return url;
        }
        assert!(Instant::now() < deadline, "stuck at {url}, wanted {prefix}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn a_browser_adds_an_oauth2_account_through_the_hosted_form() {
    let var = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
    let (Some(issuer), Some(imap), Some(smtp)) = (
        var("EE_TEST_OAUTH_URL"),
        var("EE_TEST_OAUTH_IMAP"),
        var("EE_TEST_OAUTH_SMTP"),
    ) else {
        eprintln!("skipping: the OAuth2 test services are not running (scripts/devenv.sh)");
        return;
    };
    let split = |s: &str| {
        let (h, p) = s.rsplit_once(':').unwrap();
        (h.to_string(), p.parse::<u16>().unwrap())
    };
    let ((imap_host, imap_port), (smtp_host, smtp_port)) = (split(&imap), split(&smtp));
    let env = Env::new("hosted-oauth");
    let (server, token) = setup(&env).await;
    set_settings(&server, &token, json!({"serviceUrl": server.url("")})).await;
    let (status, created) = server
        .send(
            Method::POST,
            "/v1/oauth2",
            Some(&token),
            Some(json!({
                "name": "Test IdP", "title": "Test IdP", "provider": "oauth2", "enabled": true,
                "clientId": var("EE_TEST_OAUTH_CLIENT_ID").unwrap(),
                "clientSecret": var("EE_TEST_OAUTH_CLIENT_SECRET").unwrap(),
                "redirectUrl": server.url("/oauth"), "issuer": issuer,
                "scopes": ["openid", "offline_access", "email", "mail"],
                "imapHost": imap_host, "imapPort": imap_port, "imapSecure": false,
                "smtpHost": smtp_host, "smtpPort": smtp_port, "smtpSecure": false,
            })),
        )
        .await;
    assert_eq!(status, 200, "{created}");
    let user = format!("{}@example.com", env.prefix);
    let (status, body) = form_url(
        &server,
        &token,
        json!({"redirectUrl": server.url("/health?from=hosted"), "email": user}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let url = body["url"].as_str().unwrap().to_string();
    assert!(!url.contains("type="), "{url}");

    let driver = Driver::get();
    let profile = tempdir_for(&env);
    let c = browser(&driver, &profile).await;
    c.goto(&url).await.unwrap();
    let button = c
        .find(Locator::XPath(
            "//button[normalize-space()='Sign in with Test IdP']",
        ))
        .await
        .unwrap();
    // Keyboard: the choice is a real button that takes focus and Enter.
    button.send_keys("\u{E007}").await.unwrap();
    wait_url(&c, &issuer).await;
    let login = c.find(Locator::Css("input[name=login]")).await.unwrap();
    login.clear().await.unwrap();
    login.send_keys(&user).await.unwrap();
    c.find(Locator::Css("input[name=password]"))
        .await
        .unwrap()
        .send_keys("any")
        .await
        .unwrap();
    c.find(Locator::Css("button[type=submit]"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    // Consent, then back through /oauth to the caller's page.
    let deadline = Instant::now() + Duration::from_secs(20);
    let landed = loop {
        let now = c.current_url().await.unwrap().to_string();
        if now.starts_with(&server.url("/health")) {
            break now;
        }
        if now.starts_with(&issuer)
            && let Ok(b) = c.find(Locator::Css("button[type=submit]")).await
        {
            let _ = b.click().await;
        }
        assert!(Instant::now() < deadline, "stuck at {now}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    c.close().await.unwrap();
    let query = query_of(&landed);
    assert_eq!(query["from"], "hosted");
    assert_eq!(query["state"], "new");
    let account = query["account"].clone();

    let info = wait_for("the hosted account to connect", 30, || async {
        let (_, info) = server
            .get(&format!("/v1/account/{account}"), Some(&token))
            .await;
        (info["state"] == "connected").then_some(info)
    })
    .await;
    assert_eq!(info["email"], user.as_str());
    assert_eq!(info["oauth2"]["auth"]["user"], user.as_str());
    assert_eq!(info["oauth2"]["accessToken"], "******");
    assert_eq!(info["type"], "oauth2");
    // It sends over XOAUTH2 through Postfix → Dovecot SASL.
    let (status, sent) = server
        .send(
            Method::POST,
            &format!("/v1/account/{account}/submit"),
            Some(&token),
            Some(json!({"from": {"address": user}, "to": [{"address": user}],
                "subject": "hosted", "text": "hi"})),
        )
        .await;
    assert_eq!(status, 200, "{sent}");
    wait_for("messageSent", 30, || async {
        env.events_of(&account, "messageSent")
            .await
            .into_iter()
            .next()
    })
    .await;
    // The callback link cannot be replayed.
    let (status, page) = get_page(&format!(
        "{}?code=x&state=account:add:AAAAAAAAAAAAAAAAAAAAAA",
        server.url("/oauth")
    ))
    .await;
    assert_eq!(status, 400);
    assert!(page.contains("Oauth failed: session expired"), "{page}");
}

/// The value a script or the user left in a form field.
async fn field_value(c: &Client, id: &str) -> String {
    c.find(Locator::Id(id))
        .await
        .unwrap()
        .prop("value")
        .await
        .unwrap()
        .unwrap_or_default()
}

async fn retype(c: &Client, id: &str, text: &str) {
    let field = c.find(Locator::Id(id)).await.unwrap();
    field.clear().await.unwrap();
    field.send_keys(text).await.unwrap();
}

#[tokio::test]
async fn a_browser_adds_an_imap_account_with_discovered_servers() {
    let (imap, smtp) = mail_ports();
    // The address's domain publishes its servers in SRV records (RFC 6186): the test Dovecot
    // and Postfix, in plain text.
    let resolver = dns::start(vec![
        dns::srv("_imap._tcp.discovered.test.", 0, imap, "127.0.0.1."),
        dns::srv("_submission._tcp.discovered.test.", 0, smtp, "127.0.0.1."),
    ])
    .await;
    let env = Env::new("hosted-discover")
        .var("EENGINE_AUTOCONFIG_SOURCES", "srv")
        .var("EENGINE_AUTOCONFIG_NAMESERVER", &resolver.addr.to_string());
    let (server, token) = setup(&env).await;
    set_settings(&server, &token, json!({"serviceUrl": server.url("")})).await;
    let (status, body) = form_url(
        &server,
        &token,
        json!({"account": "discovered", "redirectUrl": server.url("/health?from=imap")}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let url = body["url"].as_str().unwrap().to_string();
    let user = format!("{}@discovered.test", env.prefix);

    let driver = Driver::get();
    let profile = tempdir_for(&env);
    let c = browser(&driver, &profile).await;
    c.goto(&url).await.unwrap();
    retype(&c, "email", &user).await;
    retype(&c, "password", "pass").await;
    // Enter in the password field submits step one.
    c.find(Locator::Id("password"))
        .await
        .unwrap()
        .send_keys("\u{E007}")
        .await
        .unwrap();
    c.wait()
        .for_element(Locator::XPath(
            "//p[contains(., 'We found your mail servers')]",
        ))
        .await
        .unwrap();
    assert_eq!(field_value(&c, "imap_host").await, "127.0.0.1");
    assert_eq!(field_value(&c, "imap_port").await, imap.to_string());
    assert_eq!(field_value(&c, "smtp_port").await, smtp.to_string());
    assert_eq!(field_value(&c, "imap_auth_user").await, user);
    let png = c.screenshot().await.unwrap();
    std::fs::write(artifacts().join("hosted-imap-servers.png"), png).unwrap();

    // A preset fills the servers in (the page's own script).
    c.find(Locator::Id("preset"))
        .await
        .unwrap()
        .select_by_value("gmail")
        .await
        .unwrap();
    assert_eq!(field_value(&c, "imap_host").await, "imap.gmail.com");
    assert_eq!(field_value(&c, "smtp_port").await, "465");
    let secure = c.find(Locator::Id("imap_secure")).await.unwrap();
    assert!(secure.is_selected().await.unwrap());
    // Back to the discovered servers by hand, then the connection test in place.
    for (id, value) in [
        ("imap_host", "127.0.0.1".to_string()),
        ("imap_port", imap.to_string()),
        ("smtp_host", "127.0.0.1".to_string()),
        ("smtp_port", smtp.to_string()),
    ] {
        retype(&c, id, &value).await;
    }
    for id in ["imap_secure", "smtp_secure"] {
        let b = c.find(Locator::Id(id)).await.unwrap();
        if b.is_selected().await.unwrap() {
            b.click().await.unwrap();
        }
    }
    c.find(Locator::Id("test"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let text = c
            .find(Locator::Id("test-result"))
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        if text == "IMAP: connected. SMTP: connected" {
            break;
        }
        assert!(Instant::now() < deadline, "test result: {text}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    c.find(Locator::XPath("//button[normalize-space()='Add account']"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    let landed = wait_url(&c, &server.url("/health")).await;
    let landed = reqwest::Url::parse(&landed).unwrap();
    let q: std::collections::HashMap<String, String> = landed.query_pairs().into_owned().collect();
    assert_eq!(q.get("account").map(String::as_str), Some("discovered"));
    assert_eq!(q.get("state").map(String::as_str), Some("new"));
    c.close().await.unwrap();
    wait_for("discovered connected", 20, || async {
        let (_, info) = server.get("/v1/account/discovered", Some(&token)).await;
        (info["state"] == "connected").then_some(())
    })
    .await;
    let (_, info) = server.get("/v1/account/discovered", Some(&token)).await;
    assert_eq!(info["email"], user.as_str());
    assert_eq!(info["imap"]["host"], "127.0.0.1");
}

fn tempdir_for(env: &Env) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("ee-chrome-{}", env.prefix));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Follows a hosted-form link like a browser without scripts: redirects, the authorization
/// server's sign-in and consent forms, cookies per host; returns the final status and page.
async fn walk(start: &str, issuer: &str, user: &str) -> (u16, String) {
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let mut cookies = std::collections::BTreeMap::new();
    let mut next = reqwest::Url::parse(start).unwrap();
    let mut form: Option<Vec<(&str, String)>> = None;
    for _ in 0..30 {
        let on_issuer = next.as_str().starts_with(issuer);
        let mut request = match form.take() {
            Some(fields) => http.post(next.clone()).form(&fields),
            None => http.get(next.clone()),
        };
        if on_issuer {
            let header = cookies
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join("; ");
            request = request.header("cookie", header);
        }
        let response = request.send().await.unwrap();
        if on_issuer {
            for value in response.headers().get_all("set-cookie") {
                let pair = value.to_str().unwrap().split(';').next().unwrap();
                let (name, value) = pair.split_once('=').unwrap();
                cookies.insert(name.to_string(), value.to_string());
            }
        }
        let status = response.status().as_u16();
        if response.status().is_redirection() {
            let location = response.headers()["location"].to_str().unwrap().to_string();
            next = next.join(&location).unwrap();
            continue;
        }
        let page = response.text().await.unwrap();
        if !on_issuer {
            return (status, page);
        }
        let action = page
            .split("action=\"")
            .nth(1)
            .and_then(|rest| rest.split('"').next())
            .expect("a form at the authorization server");
        next = next.join(action).unwrap();
        form = Some(if page.contains("name=\"login\"") {
            vec![
                ("prompt", "login".into()),
                ("login", user.to_string()),
                ("password", "any".into()),
            ]
        } else {
            vec![("prompt", "consent".into())]
        });
    }
    panic!("the walk did not end");
}

#[tokio::test]
async fn a_pinned_address_refuses_another_identity_and_a_link_works_once() {
    let var = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
    let Some(issuer) = var("EE_TEST_OAUTH_URL") else {
        eprintln!("skipping: the OAuth2 test services are not running (scripts/devenv.sh)");
        return;
    };
    let env = Env::new("hosted-pinned");
    let (server, token) = setup(&env).await;
    set_settings(&server, &token, json!({"serviceUrl": server.url("")})).await;
    let (_, created) = server
        .send(
            Method::POST,
            "/v1/oauth2",
            Some(&token),
            Some(json!({
                "name": "Pinned IdP", "provider": "oauth2", "enabled": true,
                "clientId": var("EE_TEST_OAUTH_CLIENT_ID").unwrap(),
                "clientSecret": var("EE_TEST_OAUTH_CLIENT_SECRET").unwrap(),
                "redirectUrl": server.url("/oauth"), "issuer": issuer,
                "scopes": ["openid", "offline_access", "email", "mail"],
                "imapHost": "127.0.0.1", "imapPort": 1,
            })),
        )
        .await;
    let app = created["id"].as_str().unwrap().to_string();
    let pinned = format!("{}-pinned@example.com", env.prefix);
    let other = format!("{}-other@example.com", env.prefix);
    let (status, body) = form_url(
        &server,
        &token,
        json!({"redirectUrl": "https://app.example/done?x=1", "expectedEmail": pinned, "type": app}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let url = body["url"].as_str().unwrap().to_string();
    assert_eq!(query_of(&url)["type"], app.as_str());

    let (status, page) = walk(&url, &issuer, &other).await;
    assert_eq!(status, 403, "{page}");
    assert!(page.contains(&other) && page.contains(&pinned), "{page}");
    let (_, list) = server.get("/v1/accounts", Some(&token)).await;
    assert_eq!(list["total"], 0, "nothing created");

    // The same link, the right identity: the account, then the caller's page with its query.
    let (status, page) = walk(&url, &issuer, &pinned).await;
    assert_eq!(status, 200, "{page}");
    let (_, list) = server.get("/v1/accounts", Some(&token)).await;
    assert_eq!(list["total"], 1);
    let account = list["accounts"][0]["account"].as_str().unwrap().to_string();
    assert!(
        page.contains(&format!(
            "https://app.example/done?x=1&amp;account={account}&amp;state=new"
        )),
        "{page}"
    );
    // Used up: a third walk ends on the error page and creates nothing.
    let (status, page) = walk(&url, &issuer, &pinned).await;
    assert_eq!(status, 403, "{page}");
    assert!(page.contains("Invalid or expired account setup URL"));
    let (_, list) = server.get("/v1/accounts", Some(&token)).await;
    assert_eq!(list["total"], 1);
}

#[tokio::test]
async fn post_account_with_authorize_answers_the_consent_url() {
    let var = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
    let Some(issuer) = var("EE_TEST_OAUTH_URL") else {
        eprintln!("skipping: the OAuth2 test services are not running (scripts/devenv.sh)");
        return;
    };
    let env = Env::new("hosted-authorize");
    let (server, token) = setup(&env).await;
    let (_, created) = server
        .send(
            Method::POST,
            "/v1/oauth2",
            Some(&token),
            Some(json!({
                "name": "API IdP", "provider": "oauth2", "enabled": false,
                "clientId": var("EE_TEST_OAUTH_CLIENT_ID").unwrap(),
                "clientSecret": var("EE_TEST_OAUTH_CLIENT_SECRET").unwrap(),
                "redirectUrl": server.url("/oauth"), "issuer": issuer,
                "scopes": ["openid", "offline_access", "email", "mail"],
                "imapHost": "127.0.0.1", "imapPort": 1,
            })),
        )
        .await;
    let app = created["id"].as_str().unwrap().to_string();
    let (status, body) = server
        .send(
            Method::POST,
            "/v1/account",
            Some(&token),
            Some(json!({"account": "az", "name": "Authorized",
                "oauth2": {"provider": app, "authorize": true, "redirectUrl": "https://app.example/x"}})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let redirect = body["redirect"].as_str().unwrap().to_string();
    assert_eq!(body.as_object().unwrap().len(), 1, "{body}");
    assert!(
        redirect.starts_with(&format!("{issuer}/auth?")),
        "{redirect}"
    );
    let state = query_of(&redirect)["state"].clone();
    assert!(state.starts_with("account:add:"), "{state}");
    let (_, list) = server.get("/v1/accounts", Some(&token)).await;
    assert_eq!(list["total"], 0, "created only after consent");

    let user = format!("{}@example.com", env.prefix);
    let (status, page) = walk(&redirect, &issuer, &user).await;
    assert_eq!(status, 200, "{page}");
    assert!(
        page.contains("https://app.example/x?account=az&amp;state=new"),
        "{page}"
    );
    let (_, info) = server.get("/v1/account/az", Some(&token)).await;
    assert_eq!(info["name"], "Authorized");
    assert_eq!(info["email"], user.as_str());
    assert_eq!(info["oauth2"]["auth"]["user"], user.as_str());
    assert_eq!(info["oauth2"]["refreshToken"], "******");
    // The consent state is spent.
    let (status, page) = get_page(&format!("{}?code=x&state={state}", server.url("/oauth"))).await;
    assert_eq!(status, 400);
    assert!(page.contains("Oauth failed: session expired"));
}
