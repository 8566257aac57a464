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
    let app = test_app(env);
    let client = TokenClient::new("emailengine-tests", Duration::from_secs(10)).unwrap();
    let endpoints: Endpoints = client
        .endpoints(&ProviderTable::default(), &app)
        .await
        .unwrap();
    let start = authorize_url(
        &app,
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
                return client.exchange_code(&app, &endpoints, code).await.unwrap();
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
