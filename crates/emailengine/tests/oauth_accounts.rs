//! OAuth2 accounts end to end: a real authorization server (oidc-provider), a Dovecot whose
//! logins are bearer tokens checked by introspection against it, and a Postfix listener whose
//! SMTP AUTH asks that Dovecot — all started by scripts/test.sh (or scripts/devenv.sh) through
//! scripts/oauthenv.sh. The user signs in and consents on the server's own pages, over HTTP as a
//! browser would; the tokens go into `POST /v1/account`, and the account syncs and sends.
//!
//! Without `EE_TEST_OAUTH_URL` / `EE_TEST_OAUTH_IMAP` / `EE_TEST_OAUTH_SMTP` the tests skip.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use base64::Engine as _;
use common::*;
use emailengine_oauth::app::{OAuthApp, Provider};
use emailengine_oauth::provider::{AuthorizeRequest, Endpoints, ProviderTable, authorize_url};
use emailengine_oauth::token::{TokenClient, TokenGrant};
use reqwest::{Method, Url};
use serde_json::{Value, json};

const REDIRECT: &str = "http://127.0.0.1:3000/oauth";
const SCOPES: &[&str] = &["openid", "offline_access", "email", "mail"];

struct OAuthEnv {
    url: String,
    client_id: String,
    client_secret: String,
    imap: (String, u16),
    smtp: (String, u16),
    /// `DIR/dovecot/home` of scripts/oauthenv.sh: `<domain>/<local>/Maildir`.
    maildir: String,
    dovecot_log: String,
    postfix_log: String,
}

fn host_port(text: &str) -> (String, u16) {
    let (h, p) = text.rsplit_once(':').unwrap();
    (h.to_string(), p.parse().unwrap())
}

fn oauth_env(test: &str) -> Option<OAuthEnv> {
    let var = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
    let (Some(url), Some(imap), Some(smtp)) = (
        var("EE_TEST_OAUTH_URL"),
        var("EE_TEST_OAUTH_IMAP"),
        var("EE_TEST_OAUTH_SMTP"),
    ) else {
        eprintln!("skipping {test}: the OAuth2 test services are not running (scripts/devenv.sh)");
        return None;
    };
    let dir = var("EE_TEST_OAUTH_DIR").unwrap();
    Some(OAuthEnv {
        url,
        client_id: var("EE_TEST_OAUTH_CLIENT_ID").unwrap(),
        client_secret: var("EE_TEST_OAUTH_CLIENT_SECRET").unwrap(),
        imap: host_port(&imap),
        smtp: host_port(&smtp),
        maildir: var("EE_TEST_OAUTH_MAILDIR").unwrap(),
        dovecot_log: format!("{dir}/dovecot.log"),
        postfix_log: var("EE_TEST_POSTFIX_LOG").unwrap(),
    })
}

/// The app body for `POST /v1/oauth2`: the generic provider pointed at the test server.
fn app_body(env: &OAuthEnv, name: &str, mechanism: Option<&str>) -> Value {
    let mut body = json!({
        "name": name, "provider": "oauth2", "enabled": true,
        "clientId": env.client_id, "clientSecret": env.client_secret, "redirectUrl": REDIRECT,
        "issuer": env.url, "scopes": SCOPES,
        "imapHost": env.imap.0, "imapPort": env.imap.1, "imapSecure": false,
        "smtpHost": env.smtp.0, "smtpPort": env.smtp.1, "smtpSecure": false,
    });
    if let Some(m) = mechanism {
        body["saslMechanism"] = Value::from(m);
    }
    body
}

fn test_app(env: &OAuthEnv) -> OAuthApp {
    let mut app = OAuthApp::new(Provider::Generic);
    app.id = Some("AAABhaBPHscAAAAH".into());
    app.client_id = Some(env.client_id.clone());
    app.client_secret = Some(env.client_secret.clone());
    app.redirect_url = Some(REDIRECT.into());
    app.issuer = Some(env.url.clone());
    app.scopes = Some(SCOPES.iter().map(|s| s.to_string()).collect());
    app
}

/// Signs in as `user` on the server's pages and consents, following redirects and forms as a
/// browser would; returns the grant of the code delivered to the redirect URI.
async fn sign_in(env: &OAuthEnv, user: &str) -> TokenGrant {
    sign_in_with(&test_app(env), &ProviderTable::default(), user).await
}

async fn sign_in_with(app: &OAuthApp, table: &ProviderTable, user: &str) -> TokenGrant {
    let client = TokenClient::new("emailengine-tests", Duration::from_secs(10)).unwrap();
    let endpoints: Endpoints = client.endpoints(table, app).await.unwrap();
    let start = authorize_url(
        app,
        &endpoints,
        &AuthorizeRequest {
            state: "account:add:test".into(),
            login_hint: None,
            prompt: None,
        },
    )
    .unwrap();
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let mut cookies = BTreeMap::new();
    let mut next = Url::parse(&start).unwrap();
    let mut form: Option<Vec<(&str, String)>> = None;
    for _ in 0..20 {
        let cookie_header = cookies
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("; ");
        let request = match form.take() {
            Some(fields) => http.post(next.clone()).form(&fields),
            None => http.get(next.clone()),
        };
        let response = request
            .header("cookie", cookie_header)
            .send()
            .await
            .unwrap();
        for value in response.headers().get_all("set-cookie") {
            let pair = value.to_str().unwrap().split(';').next().unwrap();
            let (name, value) = pair.split_once('=').unwrap();
            if value.is_empty() {
                cookies.remove(name);
            } else {
                cookies.insert(name.to_string(), value.to_string());
            }
        }
        if response.status().is_redirection() {
            let location = response.headers()["location"].to_str().unwrap();
            next = next.join(location).unwrap();
            if next.as_str().starts_with(REDIRECT) {
                let query: BTreeMap<String, String> = next.query_pairs().into_owned().collect();
                let code = &query["code"];
                return client.exchange_code(app, &endpoints, code).await.unwrap();
            }
            continue;
        }
        let page = response.text().await.unwrap();
        let action = page
            .split("action=\"")
            .nth(1)
            .and_then(|rest| rest.split('"').next())
            .expect("the page has a form");
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
    panic!("the sign-in did not reach the redirect URI");
}

async fn create_app(server: &Server, token: &str, body: Value) -> String {
    let (status, created) = server
        .send(Method::POST, "/v1/oauth2", Some(token), Some(body))
        .await;
    assert_eq!(status, 200, "{created}");
    created["id"].as_str().unwrap().to_string()
}

fn account_body(account: &str, app: &str, user: &str, grant: &TokenGrant) -> Value {
    json!({
        "account": account, "name": format!("OAuth {account}"), "email": user,
        "oauth2": {
            "provider": app, "auth": {"user": user},
            "accessToken": grant.access_token,
            "refreshToken": grant.refresh_token,
            "expires": emailengine_core::units::iso_time(grant.expires_at_ms),
        }
    })
}

async fn wait_state(server: &Server, token: &str, account: &str, want: &str) -> Value {
    wait_for(&format!("{account} to reach {want}"), 30, || async {
        let (status, body) = server
            .get(&format!("/v1/account/{account}"), Some(token))
            .await;
        (status == 200 && body["state"] == want).then_some(body)
    })
    .await
}

/// Writes a message into the token Dovecot's mailbox of `user`, as a delivery would.
fn deliver(env: &OAuthEnv, user: &str, subject: &str) {
    let (local, domain) = user.split_once('@').unwrap();
    let home = std::path::Path::new(&env.maildir).join(domain).join(local);
    let dir = home.join("Maildir");
    for sub in ["cur", "new", "tmp"] {
        std::fs::create_dir_all(dir.join(sub)).unwrap();
    }
    let body = format!(
        "From: bob@example.com\r\nTo: {user}\r\nSubject: {subject}\r\nMessage-ID: <{subject}@test>\r\nDate: Mon, 1 Jan 2024 00:00:00 +0000\r\n\r\nhello\r\n"
    );
    std::fs::write(dir.join("new").join(format!("{subject}.test")), body).unwrap();
    let status = std::process::Command::new("chown")
        .args(["-R", "vmail:vmail"])
        .arg(std::path::Path::new(&env.maildir).join(domain))
        .status()
        .unwrap();
    assert!(status.success());
}

/// Lines of a log file that mention `needle`.
fn log_lines(path: &str, needle: &str) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter(|l| l.contains(needle))
        .map(str::to_string)
        .collect()
}

async fn submit_and_wait(env: &Env, server: &Server, token: &str, account: &str, to: &str) {
    let (status, body) = server
        .send(
            Method::POST,
            &format!("/v1/account/{account}/submit"),
            Some(token),
            Some(json!({
                "from": {"address": to}, "to": [{"address": to}],
                "subject": format!("sent by {account}"), "text": "hi",
            })),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    wait_for(&format!("{account} messageSent"), 30, || async {
        env.events_of(account, "messageSent")
            .await
            .into_iter()
            .next()
    })
    .await;
}

#[tokio::test]
async fn oauth2_accounts_sync_and_send_with_xoauth2_and_oauthbearer() {
    let Some(oauth) = oauth_env("oauth2_accounts_sync_and_send_with_xoauth2_and_oauthbearer")
    else {
        return;
    };
    let env = Env::new("oauth-acct").var("EENGINE_SECRET", "oauth-test-secret");
    let token = env.issue(&[]);
    let server = env.start(&[]).await;
    let default_app = create_app(&server, &token, app_body(&oauth, "Default", None)).await;
    let bearer_app = create_app(
        &server,
        &token,
        app_body(&oauth, "Bearer", Some("OAUTHBEARER")),
    )
    .await;
    let xoauth_app = create_app(&server, &token, app_body(&oauth, "X", Some("XOAUTH2"))).await;

    for (account, app, mechanism, smtp_mechanism) in [
        ("oa-default", &default_app, "OAUTHBEARER", "XOAUTH2"),
        ("oa-bearer", &bearer_app, "OAUTHBEARER", "OAUTHBEARER"),
        ("oa-xoauth", &xoauth_app, "XOAUTH2", "XOAUTH2"),
    ] {
        let user = format!("{}-{account}@example.com", env.prefix);
        let grant = sign_in(&oauth, &user).await;
        let (status, body) = server
            .send(
                Method::POST,
                "/v1/account",
                Some(&token),
                Some(account_body(account, app, &user, &grant)),
            )
            .await;
        assert_eq!(
            (status, body),
            (200, json!({"account": account, "state": "new"}))
        );
        let info = wait_state(&server, &token, account, "connected").await;
        assert_eq!(info["oauth2"]["accessToken"], "******");
        assert_eq!(info["oauth2"]["refreshToken"], "******");
        assert_eq!(info["type"], "oauth2");
        assert_eq!(info["app"], app.as_str());
        let logins = log_lines(&oauth.dovecot_log, &format!("user=<{user}>"));
        assert!(
            logins
                .iter()
                .any(|l| l.contains("Login:") && l.contains(&format!("method={mechanism}"))),
            "{account}: {logins:?}"
        );

        // Stored as EmailEngine stores it: tokens sealed with the service secret.
        let stored = env.store().await.account(account).await.unwrap().unwrap();
        let oauth2: Value = serde_json::from_str(&stored["oauth2"]).unwrap();
        assert_eq!(oauth2["provider"], app.as_str());
        assert_eq!(oauth2["auth"], json!({"user": user}));
        for key in ["accessToken", "refreshToken"] {
            assert!(
                oauth2[key].as_str().unwrap().starts_with("$wd01$"),
                "{key}: {oauth2}"
            );
        }
        assert!(!server.log().contains(&grant.access_token));
        assert!(
            !server
                .log()
                .contains(grant.refresh_token.as_deref().unwrap())
        );

        let subject = format!("{}-{account}-in", env.prefix);
        deliver(&oauth, &user, &subject);
        let new = wait_for(&format!("{account} messageNew"), 30, || async {
            env.events_of(account, "messageNew")
                .await
                .into_iter()
                .next()
        })
        .await;
        assert_eq!(new.payload["data"]["subject"], subject.as_str());

        submit_and_wait(&env, &server, &token, account, &user).await;
        let auths = log_lines(&oauth.postfix_log, &format!("sasl_username={user}"));
        assert!(
            auths
                .iter()
                .any(|l| l.contains(&format!("sasl_method={smtp_mechanism}"))),
            "{account}: {auths:?}"
        );
    }

    // The same user of the same app cannot be registered twice.
    let user = format!("{}-oa-default@example.com", env.prefix);
    let (status, body) = server
        .send(
            Method::POST,
            "/v1/account",
            Some(&token),
            Some(json!({"account": "oa-twin", "name": "Twin",
                "oauth2": {"provider": default_app, "auth": {"user": user.to_uppercase()}}})),
        )
        .await;
    assert_eq!(status, 400);
    assert_eq!(body["code"], "AccountAlreadyExists");
    assert_eq!(body["existingAccount"], "oa-default");
    // Once that account is deleted, its user is free again.
    let (status, _) = server
        .send(Method::DELETE, "/v1/account/oa-default", Some(&token), None)
        .await;
    assert_eq!(status, 200);
    let (status, body) = server
        .send(
            Method::POST,
            "/v1/account",
            Some(&token),
            Some(json!({"account": "oa-twin", "name": "Twin",
                "oauth2": {"provider": default_app, "auth": {"user": user}}})),
        )
        .await;
    assert_eq!(
        (status, body),
        (200, json!({"account": "oa-twin", "state": "new"}))
    );
    let (status, body) = server
        .send(
            Method::POST,
            "/v1/account",
            Some(&token),
            Some(json!({"account": "oa-none", "name": "None",
                "oauth2": {"provider": "AAAAAAAAAAAAAAAA", "auth": {"user": "x@example.com"}}})),
        )
        .await;
    assert_eq!(status, 400);
    assert_eq!(body["message"], "Invalid or missing OAuth2 provider");
}

#[tokio::test]
async fn oauth_token_api_is_gated_and_renews_expired_tokens() {
    let Some(oauth) = oauth_env("oauth_token_api_is_gated_and_renews_expired_tokens") else {
        return;
    };
    let env = Env::new("oauth-token-api");
    let token = env.issue(&[]);
    let server = env.start(&[]).await;
    let app = create_app(&server, &token, app_body(&oauth, "Tokens", None)).await;
    let user = format!("{}@example.com", env.prefix);
    let grant = sign_in(&oauth, &user).await;
    let mut body = account_body("tok", &app, &user, &grant);
    // Expired: the first use renews it.
    body["oauth2"]["expires"] = Value::from("2024-01-01T00:00:00.000Z");
    let (status, _) = server
        .send(Method::POST, "/v1/account", Some(&token), Some(body))
        .await;
    assert_eq!(status, 200);

    let (status, body) = server
        .get("/v1/account/tok/oauth-token", Some(&token))
        .await;
    assert_eq!(
        (status, body),
        (
            403,
            json!({"statusCode": 403, "error": "Forbidden", "message": "Disabled API endpoint",
                "code": "ApiEndpointDisabled"})
        )
    );
    let (status, _) = server
        .send(
            Method::POST,
            "/v1/settings",
            Some(&token),
            Some(json!({"enableOAuthTokensApi": true})),
        )
        .await;
    assert_eq!(status, 200);
    wait_state(&server, &token, "tok", "connected").await;
    let (status, first) = server
        .get("/v1/account/tok/oauth-token", Some(&token))
        .await;
    assert_eq!(status, 200, "{first}");
    assert_eq!(first["account"], "tok");
    assert_eq!(first["user"], user.as_str());
    assert_eq!(first["provider"], "oauth2");
    assert_eq!(first["app"], app.as_str());
    assert_eq!(first["registeredScopes"], json!(SCOPES));
    assert_eq!(first["cached"], true, "the connection renewed it already");
    assert_ne!(first["accessToken"], grant.access_token.as_str());
    let stored = env.store().await.account("tok").await.unwrap().unwrap();
    let oauth2: Value = serde_json::from_str(&stored["oauth2"]).unwrap();
    assert_ne!(
        oauth2["refreshToken"],
        grant.refresh_token.as_deref().unwrap(),
        "the rotated refresh token is stored"
    );
    assert!(oauth2["refreshTokenGenerated"].is_string());
    assert_eq!(oauth2["accessToken"], first["accessToken"]);
    assert_eq!(oauth2["expires"], first["expires"]);

    let (status, body) = server
        .get("/v1/account/nobody/oauth-token", Some(&token))
        .await;
    assert_eq!(status, 404, "{body}");
}

async fn client_and_endpoints(env: &OAuthEnv) -> (TokenClient, Endpoints) {
    let client = TokenClient::new("emailengine-tests", Duration::from_secs(10)).unwrap();
    let endpoints = client
        .endpoints(&ProviderTable::default(), &test_app(env))
        .await
        .unwrap();
    (client, endpoints)
}

/// How many renewals the server's log reports.
fn renewals(server: &Server) -> usize {
    server
        .log()
        .lines()
        .filter(|l| l.contains("Renewed the OAuth2 access token"))
        .count()
}

#[tokio::test]
async fn a_revoked_refresh_token_is_one_authentication_error_with_backoff() {
    let Some(oauth) = oauth_env("a_revoked_refresh_token_is_one_authentication_error_with_backoff")
    else {
        return;
    };
    let env = Env::new("oauth-revoked");
    let token = env.issue(&[]);
    let server = env.start(&[]).await;
    let app = create_app(&server, &token, app_body(&oauth, "Revoked", None)).await;
    let user = format!("{}@example.com", env.prefix);
    let grant = sign_in(&oauth, &user).await;
    let (client, endpoints) = client_and_endpoints(&oauth).await;
    let refresh_token = grant.refresh_token.clone().unwrap();
    client
        .revoke(
            &test_app(&oauth),
            &endpoints,
            &refresh_token,
            Some("refresh_token"),
        )
        .await
        .unwrap();
    let mut body = account_body("rv", &app, &user, &grant);
    body["oauth2"]["expires"] = Value::from("2024-01-01T00:00:00.000Z");
    let (status, _) = server
        .send(Method::POST, "/v1/account", Some(&token), Some(body))
        .await;
    assert_eq!(status, 200);
    let info = wait_state(&server, &token, "rv", "authenticationError").await;
    let last = &info["lastError"];
    assert_eq!(last["serverResponseCode"], "OauthRenewError");
    assert_eq!(
        last["response"],
        "Token request failed for oauth2 (refresh_token, HTTP 400): invalid_grant - grant request is invalid"
    );
    assert_eq!(last["tokenRequest"]["grant"], "refresh_token");
    assert_eq!(last["tokenRequest"]["status"], 400);
    // Retries back off (2 s, 4 s, 8 s …): over 9 s at most 4 attempts, one webhook.
    tokio::time::sleep(Duration::from_secs(9)).await;
    let attempts = server
        .log()
        .lines()
        .filter(|l| l.contains("No OAuth2 login for the account"))
        .count();
    assert!((2..=4).contains(&attempts), "{attempts} attempts");
    let events = env.events_of("rv", "authenticationError").await;
    assert_eq!(events.len(), 1);
    assert_eq!(
        events[0].payload["data"]["serverResponseCode"],
        "OauthRenewError"
    );
    assert_eq!(
        events[0].payload["data"]["tokenRequest"]["response"]["error"],
        "invalid_grant"
    );
    assert!(env.events_of("rv", "connectError").await.is_empty());
    assert!(!server.log().contains(&refresh_token));
    assert!(!server.log().contains(&oauth.client_secret));
}

#[tokio::test]
async fn short_lived_tokens_are_renewed_while_the_account_stays_connected() {
    let Some(oauth) = oauth_env("short_lived_tokens_are_renewed_while_the_account_stays_connected")
    else {
        return;
    };
    let env = Env::new("oauth-short");
    let token = env.issue(&[]);
    let server = env.start(&[]).await;
    // Tokens carrying the scope "short-lived" live OAUTH_SHORT_TTL seconds (3 by default).
    let mut body = app_body(&oauth, "Short", None);
    body["scopes"] = json!(["openid", "offline_access", "email", "mail", "short-lived"]);
    let app = create_app(&server, &token, body).await;
    let user = format!("{}@example.com", env.prefix);
    let mut short = test_app(&oauth);
    short.scopes = Some(
        ["openid", "offline_access", "email", "mail", "short-lived"]
            .map(String::from)
            .to_vec(),
    );
    let grant = sign_in_with(&short, &ProviderTable::default(), &user).await;
    assert!(grant.expires_at_ms - chrono::Utc::now().timestamp_millis() < 30_000);
    let (status, _) = server
        .send(
            Method::POST,
            "/v1/account",
            Some(&token),
            Some(account_body("sh", &app, &user, &grant)),
        )
        .await;
    assert_eq!(status, 200);
    wait_state(&server, &token, "sh", "connected").await;
    for round in 0..3 {
        // Past the token's lifetime: new mail still arrives on the open connection, and a
        // new command connection logs in with a renewed token.
        tokio::time::sleep(Duration::from_secs(4)).await;
        let subject = format!("{}-short-{round}", env.prefix);
        deliver(&oauth, &user, &subject);
        wait_for(&format!("messageNew {subject}"), 30, || async {
            env.events_of("sh", "messageNew")
                .await
                .into_iter()
                .find(|e| e.payload["data"]["subject"] == subject.as_str())
        })
        .await;
        let (status, list) = server
            .get("/v1/account/sh/messages?path=INBOX", Some(&token))
            .await;
        assert_eq!(status, 200, "{list}");
        assert_eq!(list["total"], round + 1);
    }
    assert!(renewals(&server) >= 2, "{}", renewals(&server));
    let info = wait_state(&server, &token, "sh", "connected").await;
    assert_eq!(info["lastError"], Value::Null);
    assert!(env.events_of("sh", "authenticationError").await.is_empty());
}

/// A TCP relay in front of the authorization server that can be switched off, standing in for
/// an authorization server that is down (connections are refused by a closed port).
struct Relay {
    port: u16,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    target: String,
}

impl Relay {
    async fn start(target: &str) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let mut relay = Self {
            port,
            stop: None,
            target: target.to_string(),
        };
        relay.serve(listener);
        relay
    }

    fn serve(&mut self, listener: tokio::net::TcpListener) {
        let (tx, mut rx) = tokio::sync::oneshot::channel();
        let target = self.target.clone();
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = &mut rx => return,
                    Ok((mut inbound, _)) = listener.accept() => {
                        let target = target.clone();
                        tokio::spawn(async move {
                            if let Ok(mut outbound) = tokio::net::TcpStream::connect(&target).await {
                                let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                            }
                        });
                    }
                }
            }
        });
        self.stop = Some(tx);
    }

    fn down(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }

    async fn up(&mut self) {
        let listener = loop {
            match tokio::net::TcpListener::bind(("127.0.0.1", self.port)).await {
                Ok(l) => break l,
                Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
            }
        };
        self.serve(listener);
    }
}

#[tokio::test]
async fn an_authorization_server_that_is_down_is_retried_until_it_returns() {
    let Some(oauth) = oauth_env("an_authorization_server_that_is_down_is_retried_until_it_returns")
    else {
        return;
    };
    let env = Env::new("oauth-down");
    let token = env.issue(&[]);
    let server = env.start(&[]).await;
    let target = oauth.url.trim_start_matches("http://").to_string();
    let mut relay = Relay::start(&target).await;
    let mut body = app_body(&oauth, "Down", None);
    body["tokenUrl"] = Value::from(format!("http://127.0.0.1:{}/token", relay.port));
    let app = create_app(&server, &token, body).await;
    let user = format!("{}@example.com", env.prefix);
    let grant = sign_in(&oauth, &user).await;
    relay.down();
    let mut body = account_body("dn", &app, &user, &grant);
    body["oauth2"]["expires"] = Value::from("2024-01-01T00:00:00.000Z");
    let (status, _) = server
        .send(Method::POST, "/v1/account", Some(&token), Some(body))
        .await;
    assert_eq!(status, 200);
    // A token endpoint that cannot be reached is a connection problem, not a refused login.
    let info = wait_state(&server, &token, "dn", "connectError").await;
    assert_eq!(info["lastError"]["serverResponseCode"], "OauthRenewError");
    // While it is down the account stays in connectError (never authenticationError).
    for _ in 0..10 {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let (_, info) = server.get("/v1/account/dn", Some(&token)).await;
        assert_eq!(info["state"], "connectError");
    }
    let attempts = server
        .log()
        .lines()
        .filter(|l| l.contains("No OAuth2 login for the account"))
        .count();
    assert!((2..=4).contains(&attempts), "{attempts} attempts in 5 s");
    relay.up().await;
    let info = wait_state(&server, &token, "dn", "connected").await;
    assert_eq!(info["lastError"], Value::Null);
    assert_eq!(renewals(&server), 1);
    assert!(env.events_of("dn", "authenticationError").await.is_empty());
    assert_eq!(env.events_of("dn", "connectError").await.len(), 1);
}

#[tokio::test]
async fn two_processes_renewing_the_same_account_renew_once() {
    let Some(oauth) = oauth_env("two_processes_renewing_the_same_account_renew_once") else {
        return;
    };
    // Two servers on one Redis store, as EmailEngine runs several workers.
    let env = Env::redis("oauth-twice");
    let token = env.issue(&[]);
    let first = env.start(&[]).await;
    let app = create_app(&first, &token, app_body(&oauth, "Twice", None)).await;
    let (status, _) = first
        .send(
            Method::POST,
            "/v1/settings",
            Some(&token),
            Some(json!({"enableOAuthTokensApi": true})),
        )
        .await;
    assert_eq!(status, 200);
    let user = format!("{}@example.com", env.prefix);
    let grant = sign_in(&oauth, &user).await;
    // Stored straight into the store (no connection starts yet), already expired.
    let mut body = account_body("tw", &app, &user, &grant);
    body["oauth2"]["expires"] = Value::from("2024-01-01T00:00:00.000Z");
    let mut fields = std::collections::BTreeMap::new();
    fields.insert("account".to_string(), "tw".to_string());
    fields.insert("name".to_string(), "Twice".to_string());
    fields.insert("oauth2".to_string(), body["oauth2"].to_string());
    let store = env.store().await;
    store.put_account("tw", &fields).await.unwrap();
    store.link_app_account(&app, "tw", &user).await.unwrap();
    let second = env.start(&[]).await;
    let ask = |server: &Server| {
        let url = server.url("/v1/account/tw/oauth-token");
        let token = token.clone();
        async move {
            let r = reqwest::Client::new()
                .get(url)
                .bearer_auth(token)
                .send()
                .await
                .unwrap();
            into_json(r).await
        }
    };
    let mut asks = Vec::new();
    for _ in 0..4 {
        asks.push(tokio::spawn(ask(&first)));
        asks.push(tokio::spawn(ask(&second)));
    }
    let mut tokens = std::collections::BTreeSet::new();
    for a in asks {
        let (status, body) = a.await.unwrap();
        assert_eq!(status, 200, "{body}");
        tokens.insert(body["accessToken"].as_str().unwrap().to_string());
    }
    assert_eq!(tokens.len(), 1, "every caller got the one renewed token");
    assert_eq!(renewals(&first) + renewals(&second), 1);
    // The rotated refresh token was stored: a reuse of the old one would have revoked the
    // grant, and a forced renewal works.
    let stored = store.account("tw").await.unwrap().unwrap();
    let oauth2: Value = serde_json::from_str(&stored["oauth2"]).unwrap();
    assert_ne!(
        oauth2["refreshToken"],
        grant.refresh_token.as_deref().unwrap()
    );
}

#[tokio::test]
async fn a_built_in_provider_pointed_elsewhere_by_configuration() {
    let Some(oauth) = oauth_env("a_built_in_provider_pointed_elsewhere_by_configuration") else {
        return;
    };
    use emailengine_oauth::provider::{MailServer, ProviderOverride};
    let (imap_port, smtp_port) = (oauth.imap.1.to_string(), oauth.smtp.1.to_string());
    // Gmail's endpoints and servers replaced by the test services, as for a sovereign cloud.
    let env = Env::new("oauth-override")
        .var(
            "EENGINE_OAUTH_GMAIL_AUTHORIZE_URL",
            &format!("{}/auth", oauth.url),
        )
        .var(
            "EENGINE_OAUTH_GMAIL_TOKEN_URL",
            &format!("{}/token", oauth.url),
        )
        .var("EENGINE_OAUTH_GMAIL_IMAP_HOST", &oauth.imap.0)
        .var("EENGINE_OAUTH_GMAIL_IMAP_PORT", &imap_port)
        .var("EENGINE_OAUTH_GMAIL_SMTP_HOST", &oauth.smtp.0)
        .var("EENGINE_OAUTH_GMAIL_SMTP_PORT", &smtp_port);
    let token = env.issue(&[]);
    let server = env.start(&[]).await;
    let var = |k: &str| std::env::var(k).unwrap();
    let (client_id, client_secret) = (
        var("EE_TEST_OAUTH_POST_CLIENT_ID"),
        var("EE_TEST_OAUTH_POST_CLIENT_SECRET"),
    );
    let app = create_app(
        &server,
        &token,
        json!({"name": "Gmail here", "provider": "gmail", "enabled": true,
            "clientId": client_id, "clientSecret": client_secret, "redirectUrl": REDIRECT,
            "extraScopes": ["offline_access"]}),
    )
    .await;
    let mut gmail = OAuthApp::new(Provider::Gmail);
    gmail.client_id = Some(client_id);
    gmail.client_secret = Some(client_secret);
    gmail.redirect_url = Some(REDIRECT.into());
    gmail.extra_scopes = Some(vec!["offline_access".into()]);
    let table = ProviderTable::default().with_override(
        Provider::Gmail,
        ProviderOverride {
            authorize: Some(format!("{}/auth", oauth.url)),
            token: Some(format!("{}/token", oauth.url)),
            imap: Some(MailServer {
                host: oauth.imap.0.clone(),
                port: oauth.imap.1,
                secure: false,
            }),
            ..Default::default()
        },
    );
    let user = format!("{}@example.com", env.prefix);
    let grant = sign_in_with(&gmail, &table, &user).await;
    assert!(grant.refresh_token.is_some());
    let mut body = account_body("gm", &app, &user, &grant);
    body["oauth2"]["expires"] = Value::from("2024-01-01T00:00:00.000Z");
    let (status, _) = server
        .send(Method::POST, "/v1/account", Some(&token), Some(body))
        .await;
    assert_eq!(status, 200);
    let info = wait_state(&server, &token, "gm", "connected").await;
    assert_eq!(info["type"], "gmail");
    assert_eq!(renewals(&server), 1, "renewed at the configured token URL");
    submit_and_wait(&env, &server, &token, "gm", &user).await;
    let auths = log_lines(&oauth.postfix_log, &format!("sasl_username={user}"));
    assert!(
        auths.iter().any(|l| l.contains("sasl_method=XOAUTH2")),
        "{auths:?}"
    );
}

#[tokio::test]
async fn an_account_in_emailengine_layout_connects() {
    let Some(oauth) = oauth_env("an_account_in_emailengine_layout_connects") else {
        return;
    };
    // Written as EmailEngine writes it: `iad:<account>` with the `oauth2` JSON, tokens sealed
    // with EENGINE_SECRET in `$wd01$` form, the app linked in `oapp:a` / `oapp:h`.
    const SECRET: &str = "layout-secret";
    let env = Env::new("oauth-layout").var("EENGINE_SECRET", SECRET);
    let token = env.issue(&[]);
    let server = env.start(&[]).await;
    let app = create_app(&server, &token, app_body(&oauth, "Layout", None)).await;
    let user = format!("{}@example.com", env.prefix);
    let grant = sign_in(&oauth, &user).await;
    server.stop();
    let cipher = emailengine_core::secret::FieldCipher::new(SECRET);
    let oauth2 = json!({
        "provider": app, "auth": {"user": user},
        "accessToken": cipher.encrypt(&grant.access_token),
        "refreshToken": cipher.encrypt(grant.refresh_token.as_deref().unwrap()),
        "expires": "2024-01-01T00:00:00.000Z", "scope": SCOPES, "tokenType": "Bearer",
        "generated": "2023-12-31T23:00:00.000Z",
    });
    let mut fields = BTreeMap::new();
    for (k, v) in [
        ("account", "ee"),
        ("name", "From EmailEngine"),
        ("email", user.as_str()),
        ("notifyFrom", "2024-01-01T00:00:00.000Z"),
    ] {
        fields.insert(k.to_string(), v.to_string());
    }
    fields.insert("oauth2".to_string(), oauth2.to_string());
    let store = env.store().await;
    store.put_account("ee", &fields).await.unwrap();
    store.link_app_account(&app, "ee", &user).await.unwrap();
    drop(store);
    let server = env.start(&[]).await;
    let info = wait_state(&server, &token, "ee", "connected").await;
    assert_eq!(info["oauth2"]["accessToken"], "******");
    assert_eq!(renewals(&server), 1);
    let stored = env.store().await.account("ee").await.unwrap().unwrap();
    let renewed: Value = serde_json::from_str(&stored["oauth2"]).unwrap();
    // What this server wrote back keeps the layout: same keys, tokens sealed again.
    for key in ["provider", "auth", "scope", "tokenType"] {
        assert_eq!(renewed[key], oauth2[key], "{key}");
    }
    for key in ["accessToken", "refreshToken"] {
        let sealed = renewed[key].as_str().unwrap();
        assert!(sealed.starts_with("$wd01$aes-256-gcm$"), "{key}");
        assert_eq!(sealed.split('$').count(), 7);
    }
    assert!(renewed["refreshTokenGenerated"].is_string());
    assert!(
        emailengine_core::units::parse_iso_time(renewed["expires"].as_str().unwrap()).unwrap()
            > chrono::Utc::now().timestamp_millis()
    );
}

#[tokio::test]
async fn tokens_from_the_external_token_provider() {
    let Some(oauth) = oauth_env("tokens_from_the_external_token_provider") else {
        return;
    };
    let env = Env::new("oauth-authserver");
    let token = env.issue(&[]);
    let server = env.start(&[]).await;
    let app = create_app(&server, &token, app_body(&oauth, "AuthServer", None)).await;
    let user = format!("{}@example.com", env.prefix);
    let grant = sign_in(&oauth, &user).await;
    // The token provider: answers the user's live token, records what it was asked.
    let asked = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let seen = asked.clone();
    let (answer_user, answer_token) = (user.clone(), grant.access_token.clone());
    let provider = axum::Router::new().route(
        "/token",
        axum::routing::get(
            move |headers: axum::http::HeaderMap,
                  axum::extract::RawQuery(query): axum::extract::RawQuery| {
                let (seen, u, t) = (seen.clone(), answer_user.clone(), answer_token.clone());
                async move {
                    let auth = headers
                        .get("authorization")
                        .map(|v| v.to_str().unwrap().to_string());
                    seen.lock().unwrap().push((query.unwrap_or_default(), auth));
                    axum::Json(json!({"user": u, "accessToken": t}))
                }
            },
        ),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move { axum::serve(listener, provider).await.unwrap() });
    let (status, body) = server
        .send(
            Method::POST,
            "/v1/settings",
            Some(&token),
            Some(
                json!({"authServer": format!("http://ee:s3cret@127.0.0.1:{port}/token"),
                "enableOAuthTokensApi": true}),
            ),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let (status, _) = server
        .send(
            Method::POST,
            "/v1/account",
            Some(&token),
            Some(json!({"account": "as", "name": "Auth server",
                "oauth2": {"provider": app, "auth": {"user": user}, "useAuthServer": true}})),
        )
        .await;
    assert_eq!(status, 200);
    wait_state(&server, &token, "as", "connected").await;
    let (status, body) = server.get("/v1/account/as/oauth-token", Some(&token)).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["accessToken"], grant.access_token.as_str());
    assert_eq!(body["cached"], false);
    assert!(body.get("expires").is_none());
    let asked = asked.lock().unwrap().clone();
    let basic = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode("ee:s3cret")
    );
    assert!(
        asked.contains(&("account=as&proto=imap".to_string(), Some(basic.clone()))),
        "{asked:?}"
    );
    assert!(asked.contains(&("account=as&proto=api".to_string(), Some(basic))));
    assert_eq!(
        renewals(&server),
        0,
        "tokens from the provider are not renewed here"
    );
}

#[tokio::test]
async fn a_delegated_account_borrows_the_token_of_the_account_it_names() {
    let Some(oauth) = oauth_env("a_delegated_account_borrows_the_token_of_the_account_it_names")
    else {
        return;
    };
    let env = Env::new("oauth-delegated");
    let token = env.issue(&[]);
    let server = env.start(&[]).await;
    let (status, _) = server
        .send(
            Method::POST,
            "/v1/settings",
            Some(&token),
            Some(json!({"enableOAuthTokensApi": true})),
        )
        .await;
    assert_eq!(status, 200);
    let app = create_app(&server, &token, app_body(&oauth, "Delegation", None)).await;
    let user = format!("{}@example.com", env.prefix);
    let grant = sign_in(&oauth, &user).await;
    let (status, body) = server
        .send(
            Method::POST,
            "/v1/account",
            Some(&token),
            Some(account_body("owner", &app, &user, &grant)),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    // The mailbox is reached with the owner's token: no tokens of its own. Its IMAP login is
    // its delegatedUser (here the owner's mailbox, which the token-checking Dovecot accepts).
    let delegate = |account: &str, of: &str| {
        json!({"account": account, "name": account, "email": user,
            "oauth2": {"provider": app, "auth": {"user": format!("assistant-{account}@example.com"),
                "delegatedUser": user, "delegatedAccount": of}}})
    };
    let (status, body) = server
        .send(
            Method::POST,
            "/v1/account",
            Some(&token),
            Some(delegate("shared", "owner")),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    wait_state(&server, &token, "shared", "connected").await;
    let (status, shared) = server
        .get("/v1/account/shared/oauth-token", Some(&token))
        .await;
    assert_eq!(status, 200, "{shared}");
    let (_, owner) = server
        .get("/v1/account/owner/oauth-token", Some(&token))
        .await;
    assert_eq!(shared["accessToken"], owner["accessToken"]);
    assert_eq!(
        shared["user"],
        user.as_str(),
        "outside IMAP, the token's owner logs in"
    );
    assert_eq!(shared["account"], "shared");
    let stored = env.store().await.account("shared").await.unwrap().unwrap();
    let oauth2: Value = serde_json::from_str(&stored["oauth2"]).unwrap();
    assert!(oauth2.get("accessToken").is_none(), "{oauth2}");
    assert_eq!(oauth2["auth"]["delegatedAccount"], "owner");

    // A chain that comes back to itself, and one that ends nowhere, are refused.
    for (account, of) in [
        ("loop-a", "loop-b"),
        ("loop-b", "loop-a"),
        ("lost", "nobody"),
    ] {
        let (status, body) = server
            .send(
                Method::POST,
                "/v1/account",
                Some(&token),
                Some(delegate(account, of)),
            )
            .await;
        assert_eq!(status, 200, "{body}");
    }
    for (account, message) in [
        ("loop-a", "Delegation looping detected"),
        ("lost", "Delegated account not found"),
    ] {
        let (status, body) = server
            .get(&format!("/v1/account/{account}/oauth-token"), Some(&token))
            .await;
        assert_eq!(status, 403, "{body}");
        assert_eq!(body["message"], message);
    }
}
