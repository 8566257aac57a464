//! Tests against the real authorization server (oidc-provider) that `scripts/oauthenv.sh`
//! starts, and, when it also started one, a Dovecot that checks tokens by introspection.
//!
//!   eval "$(scripts/oauthenv.sh start /tmp/oauthenv)"  # exports EE_TEST_OAUTH_*
//!   cargo test -p emailengine-oauth
//!   scripts/oauthenv.sh stop /tmp/oauthenv
//!
//! Without `EE_TEST_OAUTH_URL` the server tests skip with a note; the Dovecot tests also need
//! `EE_TEST_OAUTH_IMAP`. A user signs in and consents through the server's development pages
//! over plain HTTP, as a browser would.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use emailengine_oauth::app::{OAuthApp, Provider, SaslMechanism};
use emailengine_oauth::provider::{AuthorizeRequest, Endpoints, ProviderTable, authorize_url};
use emailengine_oauth::sasl::{self, BearerChallenge};
use emailengine_oauth::token::{TokenClient, TokenGrant};
use reqwest::Url;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

const REDIRECT: &str = "http://127.0.0.1:3000/oauth";

struct TestEnv {
    url: String,
    client_id: String,
    client_secret: String,
    imap: Option<String>,
}

/// The server's coordinates, or `None` (with a note) when the tests run without it.
fn env(test: &str) -> Option<TestEnv> {
    let var = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
    let Some(url) = var("EE_TEST_OAUTH_URL") else {
        eprintln!(
            "skipping {test}: EE_TEST_OAUTH_URL is unset (run scripts/oauthenv.sh start DIR and export what it prints)"
        );
        return None;
    };
    Some(TestEnv {
        url,
        client_id: var("EE_TEST_OAUTH_CLIENT_ID").unwrap_or_else(|| "emailengine-test".into()),
        client_secret: var("EE_TEST_OAUTH_CLIENT_SECRET")
            .unwrap_or_else(|| "emailengine-test-secret".into()),
        imap: var("EE_TEST_OAUTH_IMAP"),
    })
}

/// A generic app for the test client that finds its endpoints by discovery.
fn generic_app(env: &TestEnv, scopes: &[&str]) -> OAuthApp {
    let mut app = OAuthApp::new(Provider::Generic);
    app.id = Some("AAABhaBPHscAAAAH".into());
    app.name = Some("Test server".into());
    app.client_id = Some(env.client_id.clone());
    app.client_secret = Some(env.client_secret.clone());
    app.redirect_url = Some(REDIRECT.into());
    app.issuer = Some(env.url.clone());
    app.scopes = Some(scopes.iter().map(|s| s.to_string()).collect());
    app.imap_host = Some("127.0.0.1".into());
    app.imap_port = Some(143);
    app
}

fn client() -> TokenClient {
    TokenClient::new("emailengine-oauth-tests", Duration::from_secs(10)).unwrap()
}

/// Signs in as `user` and consents, following the server's redirects and forms like a
/// browser would; returns the authorization code delivered to the redirect URI.
async fn authorize_as(app: &OAuthApp, endpoints: &Endpoints, user: &str) -> String {
    let state = "account:add:test-nonce";
    let start = authorize_url(
        app,
        endpoints,
        &AuthorizeRequest {
            state: state.into(),
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
                assert_eq!(query.get("state").map(String::as_str), Some(state));
                return query
                    .get("code")
                    .cloned()
                    .expect("the redirect carries a code");
            }
            continue;
        }
        let status = response.status();
        let page = response.text().await.unwrap();
        assert!(status.is_success(), "unexpected {status}: {page}");
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

const USER: &str = "alice@example.com";
const SCOPES: &[&str] = &["openid", "offline_access", "email", "mail"];

/// An app, its discovered endpoints, and a fresh grant for `user`.
async fn signed_in(
    env: &TestEnv,
    user: &str,
    scopes: &[&str],
) -> (OAuthApp, Endpoints, TokenGrant) {
    let app = generic_app(env, scopes);
    let client = client();
    let endpoints = client
        .endpoints(&ProviderTable::default(), &app)
        .await
        .unwrap();
    let code = authorize_as(&app, &endpoints, user).await;
    let grant = client.exchange_code(&app, &endpoints, &code).await.unwrap();
    (app, endpoints, grant)
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

#[tokio::test]
async fn discovery_names_the_server_endpoints() {
    let Some(env) = env("discovery_names_the_server_endpoints") else {
        return;
    };
    let endpoints = client().discover(&format!("{}/", env.url)).await.unwrap();
    let at = |path: &str| format!("{}{path}", env.url);
    assert_eq!(
        endpoints,
        Endpoints {
            authorize: at("/auth"),
            token: at("/token"),
            revoke: Some(at("/token/revocation")),
            userinfo: Some(at("/me")),
            introspection: Some(at("/token/introspection")),
        }
    );
    let err = client().discover("http://127.0.0.1:1").await.unwrap_err();
    assert!(err.is_transient(), "{err}");
}

#[tokio::test]
async fn authorization_code_flow_yields_tokens_and_identity() {
    let Some(env) = env("authorization_code_flow_yields_tokens_and_identity") else {
        return;
    };
    let before = now_ms();
    let (_, _, grant) = signed_in(&env, USER, SCOPES).await;
    assert!(!grant.access_token.is_empty());
    assert!(
        grant.refresh_token.is_some(),
        "offline_access yields a refresh token"
    );
    assert_eq!(grant.scope, SCOPES);
    assert_eq!(grant.token_type, "Bearer");
    assert!(grant.expires_at_ms > before + 50_000, "{grant:?}");
    let claims = grant.id_token_claims.unwrap();
    assert_eq!(claims["sub"], USER);
    assert_eq!(claims["aud"], env.client_id.as_str());
    assert_eq!(claims["iss"], env.url.as_str());
}

#[tokio::test]
async fn refresh_rotates_the_refresh_token() {
    let Some(env) = env("refresh_rotates_the_refresh_token") else {
        return;
    };
    let (app, endpoints, first) = signed_in(&env, USER, SCOPES).await;
    let old = first.refresh_token.unwrap();
    let renewed = client().refresh(&app, &endpoints, &old).await.unwrap();
    let new = renewed
        .refresh_token
        .clone()
        .expect("rotation issues a new refresh token");
    assert_ne!(new, old);
    assert_ne!(renewed.access_token, first.access_token);
    assert_eq!(renewed.scope, SCOPES);
    let again = client().refresh(&app, &endpoints, &new).await.unwrap();
    assert!(again.refresh_token.is_some());
    // A rotated-out refresh token is refused (and oidc-provider revokes the grant for reuse).
    let err = client().refresh(&app, &endpoints, &old).await.unwrap_err();
    assert!(!err.is_transient());
    assert_eq!(err.status, Some(400));
    assert_eq!(err.error.as_deref(), Some("invalid_grant"));
}

#[tokio::test]
async fn revoked_refresh_token_is_a_permanent_failure() {
    let Some(env) = env("revoked_refresh_token_is_a_permanent_failure") else {
        return;
    };
    let (app, endpoints, grant) = signed_in(&env, USER, SCOPES).await;
    let refresh_token = grant.refresh_token.unwrap();
    client()
        .revoke(&app, &endpoints, &refresh_token, Some("refresh_token"))
        .await
        .unwrap();
    let err = client()
        .refresh(&app, &endpoints, &refresh_token)
        .await
        .unwrap_err();
    assert!(!err.is_transient());
    assert_eq!(err.code(), "ETokenRefresh");
    assert_eq!(
        err.to_string(),
        "Token request failed for oauth2 (refresh_token, HTTP 400): invalid_grant - grant request is invalid"
    );
    let request = err.token_request();
    assert_eq!(
        request,
        serde_json::json!({
            "url": format!("{}/token", env.url),
            "method": "post",
            "grant": "refresh_token",
            "provider": "oauth2",
            "status": 400,
            "clientId": env.client_id,
            "scopes": SCOPES,
            "response": {"error": "invalid_grant", "error_description": "grant request is invalid"}
        })
    );
    assert!(!request.to_string().contains(&env.client_secret));
}

#[tokio::test]
async fn client_credentials_grant() {
    let Some(env) = env("client_credentials_grant") else {
        return;
    };
    let app = generic_app(&env, &["openid", "offline_access", "mail"]);
    let client = client();
    let endpoints = client
        .endpoints(&ProviderTable::default(), &app)
        .await
        .unwrap();
    let grant = client.client_credentials(&app, &endpoints).await.unwrap();
    assert_eq!(grant.scope, ["mail"]);
    assert!(grant.refresh_token.is_none());
    let mut wrong = app.clone();
    wrong.client_secret = Some("wrong-secret-value".into());
    let err = client
        .client_credentials(&wrong, &endpoints)
        .await
        .unwrap_err();
    assert_eq!(err.status, Some(401));
    assert_eq!(err.error.as_deref(), Some("invalid_client"));
    assert_eq!(err.token_request()["clientSecret"], "wrong-se... (18B)");
}

#[tokio::test]
async fn introspection_reports_live_and_revoked_tokens() {
    let Some(env) = env("introspection_reports_live_and_revoked_tokens") else {
        return;
    };
    let (app, endpoints, grant) = signed_in(&env, "bob@example.com", SCOPES).await;
    let client = client();
    let live = client
        .introspect(&app, &endpoints, &grant.access_token)
        .await
        .unwrap();
    assert!(live.active);
    assert_eq!(live.claims["sub"], "bob@example.com");
    assert_eq!(live.claims["client_id"], env.client_id.as_str());
    assert_eq!(live.claims["scope"], SCOPES.join(" "));
    client
        .revoke(&app, &endpoints, &grant.access_token, Some("access_token"))
        .await
        .unwrap();
    let dead = client
        .introspect(&app, &endpoints, &grant.access_token)
        .await
        .unwrap();
    assert!(!dead.active);
    assert_eq!(
        dead.claims,
        serde_json::json!({"active": false})
            .as_object()
            .cloned()
            .unwrap()
    );
}

/// A token endpoint on a port where nothing listens, as when the server is down.
fn stopped_server() -> Endpoints {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    Endpoints {
        authorize: format!("http://127.0.0.1:{port}/auth"),
        token: format!("http://127.0.0.1:{port}/token"),
        revoke: None,
        userinfo: None,
        introspection: None,
    }
}

#[tokio::test]
async fn a_stopped_server_is_a_transient_failure() {
    let app = generic_app(
        &TestEnv {
            url: "http://127.0.0.1:1".into(),
            client_id: "c".into(),
            client_secret: "s".into(),
            imap: None,
        },
        SCOPES,
    );
    let err = client()
        .refresh(&app, &stopped_server(), "rt")
        .await
        .unwrap_err();
    assert!(err.is_transient());
    assert_eq!(err.status, None);
    assert!(
        err.to_string()
            .starts_with("Token request failed for oauth2 (refresh_token): "),
        "{err}"
    );
}

#[tokio::test]
async fn a_failing_server_is_a_transient_failure() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        use tokio::io::AsyncReadExt;
        while let Ok((mut socket, _)) = listener.accept().await {
            let mut buf = [0u8; 4096];
            let _ = socket.read(&mut buf).await;
            let body = r#"{"error":"temporarily_unavailable"}"#;
            let reply = format!(
                "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = socket.write_all(reply.as_bytes()).await;
        }
    });
    let mut app = OAuthApp::new(Provider::OutlookService);
    app.client_id = Some("c".into());
    app.client_secret = Some("s".into());
    app.authority = Some("tenant-1".into());
    let endpoints = Endpoints {
        token: format!("http://127.0.0.1:{port}/{{authority}}/token"),
        ..stopped_server()
    };
    let table = ProviderTable::default().with_endpoints(Provider::OutlookService, endpoints);
    let resolved = table.endpoints(&app).unwrap();
    assert_eq!(
        resolved.token,
        format!("http://127.0.0.1:{port}/tenant-1/token")
    );
    let err = client()
        .client_credentials(&app, &resolved)
        .await
        .unwrap_err();
    assert!(err.is_transient());
    assert_eq!(
        err.to_string(),
        "Token request failed for outlookService (client_credentials, HTTP 503): temporarily_unavailable"
    );
    assert_eq!(
        err.token_request()["scopes"],
        serde_json::json!(["https://graph.microsoft.com/.default"])
    );
    assert_eq!(err.token_request()["authority"], "tenant-1");
}

/// How a login attempt at the test Dovecot ended.
struct Login {
    mechanism: SaslMechanism,
    accepted: bool,
    /// The OAUTHBEARER error challenge Dovecot sent before refusing, if any.
    challenge: Option<BearerChallenge>,
}

/// One `AUTHENTICATE` with a token, the way an IMAP client of this server does it: the
/// mechanism from the greeting's capabilities, the initial response from [`sasl`].
async fn imap_login(addr: &str, forced: Option<SaslMechanism>, user: &str, token: &str) -> Login {
    let (host, port) = addr.rsplit_once(':').unwrap();
    let stream = TcpStream::connect(addr).await.unwrap();
    let (read, mut write) = stream.into_split();
    let mut lines = BufReader::new(read).lines();
    let greeting = lines.next_line().await.unwrap().unwrap();
    let capabilities: Vec<&str> = greeting
        .split("[CAPABILITY ")
        .nth(1)
        .and_then(|rest| rest.split(']').next())
        .unwrap()
        .split(' ')
        .collect();
    let mechanism = sasl::choose_imap_mechanism(&capabilities, forced).expect("advertised");
    let initial = match mechanism {
        SaslMechanism::OAuthBearer => sasl::oauthbearer(user, host, port.parse().unwrap(), token),
        SaslMechanism::XOAuth2 => sasl::xoauth2(user, token),
    };
    let command = format!("A AUTHENTICATE {} {initial}\r\n", mechanism.as_str());
    write.write_all(command.as_bytes()).await.unwrap();
    let mut challenge = None;
    loop {
        let line = lines.next_line().await.unwrap().unwrap();
        if let Some(data) = line.strip_prefix("+ ") {
            challenge = sasl::parse_challenge(data);
            let answer = match mechanism {
                SaslMechanism::OAuthBearer => format!("{}\r\n", sasl::OAUTHBEARER_ABORT),
                SaslMechanism::XOAuth2 => "\r\n".to_string(),
            };
            write.write_all(answer.as_bytes()).await.unwrap();
        } else if line.starts_with("A OK") {
            return Login {
                mechanism,
                accepted: true,
                challenge,
            };
        } else if line.starts_with("A NO") {
            assert!(line.contains("[AUTHENTICATIONFAILED]"), "{line}");
            return Login {
                mechanism,
                accepted: false,
                challenge,
            };
        }
    }
}

fn imap_env(test: &str) -> Option<(TestEnv, String)> {
    let env = env(test)?;
    let Some(imap) = env.imap.clone() else {
        eprintln!(
            "skipping {test}: EE_TEST_OAUTH_IMAP is unset (oauthenv.sh started without Dovecot)"
        );
        return None;
    };
    Some((env, imap))
}

#[tokio::test]
async fn dovecot_accepts_tokens_by_introspection() {
    let Some((env, imap)) = imap_env("dovecot_accepts_tokens_by_introspection") else {
        return;
    };
    let (_, _, grant) = signed_in(&env, "carol@example.com", SCOPES).await;
    let token = &grant.access_token;
    let login = imap_login(&imap, None, "carol@example.com", token).await;
    assert_eq!(
        login.mechanism,
        SaslMechanism::OAuthBearer,
        "preferred when advertised"
    );
    assert!(login.accepted);
    let login = imap_login(
        &imap,
        Some(SaslMechanism::XOAuth2),
        "carol@example.com",
        token,
    )
    .await;
    assert_eq!(login.mechanism, SaslMechanism::XOAuth2);
    assert!(login.accepted);
    // The token belongs to carol: Dovecot compares the introspected `sub` with the login name.
    let login = imap_login(
        &imap,
        Some(SaslMechanism::XOAuth2),
        "dave@example.com",
        token,
    )
    .await;
    assert!(!login.accepted);
    let login = imap_login(&imap, None, "carol@example.com", "not-a-token").await;
    assert!(!login.accepted);
}

#[tokio::test]
async fn dovecot_refuses_revoked_and_expired_tokens() {
    let Some((env, imap)) = imap_env("dovecot_refuses_revoked_and_expired_tokens") else {
        return;
    };
    let (app, endpoints, revoked) = signed_in(&env, "erin@example.com", SCOPES).await;
    assert!(
        imap_login(&imap, None, "erin@example.com", &revoked.access_token)
            .await
            .accepted
    );
    client()
        .revoke(
            &app,
            &endpoints,
            &revoked.access_token,
            Some("access_token"),
        )
        .await
        .unwrap();
    for forced in [Some(SaslMechanism::XOAuth2), None] {
        let login = imap_login(&imap, forced, "erin@example.com", &revoked.access_token).await;
        assert!(!login.accepted);
    }
    // Tokens with the scope "short-lived" live OAUTH_SHORT_TTL seconds (3 by default).
    let short: Vec<&str> = SCOPES.iter().copied().chain(["short-lived"]).collect();
    let (_, _, grant) = signed_in(&env, "erin@example.com", &short).await;
    let lifetime = grant.expires_at_ms - now_ms();
    assert!(lifetime < 30_000, "short-lived tokens live {lifetime} ms");
    assert!(
        imap_login(&imap, None, "erin@example.com", &grant.access_token)
            .await
            .accepted
    );
    tokio::time::sleep(Duration::from_millis((lifetime + 1500).max(0) as u64)).await;
    let login = imap_login(&imap, None, "erin@example.com", &grant.access_token).await;
    assert!(!login.accepted);
    assert_eq!(
        login.challenge.map(|c| c.status).as_deref(),
        Some("invalid_token")
    );
    let login = imap_login(
        &imap,
        Some(SaslMechanism::XOAuth2),
        "erin@example.com",
        &grant.access_token,
    )
    .await;
    assert!(!login.accepted);
}
