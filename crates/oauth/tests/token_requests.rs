//! What each provider's token requests look like on the wire, and the external token
//! provider's request, checked against a loopback server that records what it receives. No
//! outside services needed.

use std::collections::BTreeMap;
use std::time::Duration;

use base64::Engine as _;
use emailengine_oauth::app::{OAuthApp, Provider};
use emailengine_oauth::auth_server::{self, Proto, ServerCredentials};
use emailengine_oauth::provider::{Endpoints, ProviderTable};
use emailengine_oauth::token::TokenClient;
use reqwest::Url;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::mpsc;

/// One request as the server saw it.
struct Captured {
    method: String,
    target: String,
    headers: BTreeMap<String, String>,
    form: Vec<(String, String)>,
}

/// A loopback HTTP server that answers every request with `status` and the JSON `reply`.
async fn recording_server(
    status: u16,
    reply: &'static str,
) -> (String, mpsc::UnboundedReceiver<Captured>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            let mut data = Vec::new();
            let mut buf = [0u8; 8192];
            let head_end = loop {
                let n = socket.read(&mut buf).await.unwrap();
                data.extend_from_slice(&buf[..n]);
                if let Some(at) = data.windows(4).position(|w| w == b"\r\n\r\n") {
                    break at;
                }
            };
            let head = String::from_utf8(data[..head_end].to_vec()).unwrap();
            let mut lines = head.split("\r\n");
            let mut first = lines.next().unwrap().split(' ');
            let (method, target) = (
                first.next().unwrap().to_string(),
                first.next().unwrap().to_string(),
            );
            let headers: BTreeMap<String, String> = lines
                .filter_map(|l| l.split_once(": "))
                .map(|(k, v)| (k.to_ascii_lowercase(), v.to_string()))
                .collect();
            let length: usize = headers
                .get("content-length")
                .map_or(0, |l| l.parse().unwrap());
            while data.len() < head_end + 4 + length {
                let n = socket.read(&mut buf).await.unwrap();
                data.extend_from_slice(&buf[..n]);
            }
            let body = String::from_utf8(data[head_end + 4..].to_vec()).unwrap();
            let form = Url::parse(&format!("http://x/?{body}"))
                .unwrap()
                .query_pairs()
                .into_owned()
                .collect();
            tx.send(Captured {
                method,
                target,
                headers,
                form,
            })
            .unwrap();
            let answer = format!(
                "HTTP/1.1 {status} X\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{reply}",
                reply.len()
            );
            socket.write_all(answer.as_bytes()).await.unwrap();
        }
    });
    (base, rx)
}

const TOKEN_REPLY: &str = r#"{"access_token":"at-1","expires_in":3600,"token_type":"Bearer"}"#;

fn client() -> TokenClient {
    TokenClient::new("emailengine-oauth-tests", Duration::from_secs(5)).unwrap()
}

fn endpoints(base: &str) -> Endpoints {
    Endpoints {
        authorize: format!("{base}/authorize"),
        token: format!("{base}/token"),
        revoke: None,
        userinfo: None,
        introspection: None,
    }
}

fn app(provider: Provider) -> OAuthApp {
    let mut app = OAuthApp::new(provider);
    app.client_id = Some("cid".into());
    app.client_secret = Some("s3cret".into());
    app.redirect_url = Some("https://ee.example/oauth".into());
    app
}

fn pairs(v: &[(&str, &str)]) -> Vec<(String, String)> {
    v.iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[tokio::test]
async fn google_refresh_sends_the_client_in_the_body_and_no_scope() {
    let (base, mut seen) = recording_server(200, TOKEN_REPLY).await;
    let grant = client()
        .refresh(&app(Provider::Gmail), &endpoints(&base), "rt-1")
        .await
        .unwrap();
    assert_eq!(grant.access_token, "at-1");
    let request = seen.recv().await.unwrap();
    assert_eq!(
        (request.method.as_str(), request.target.as_str()),
        ("POST", "/token")
    );
    assert_eq!(
        request.headers["content-type"],
        "application/x-www-form-urlencoded"
    );
    assert!(!request.headers.contains_key("authorization"));
    assert_eq!(
        request.form,
        pairs(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", "rt-1"),
            ("client_id", "cid"),
            ("client_secret", "s3cret"),
        ])
    );
}

#[tokio::test]
async fn microsoft_code_exchange_sends_the_scopes() {
    let (base, mut seen) = recording_server(200, TOKEN_REPLY).await;
    let mut outlook = app(Provider::Outlook);
    outlook.authority = Some("common".into());
    client()
        .exchange_code(&outlook, &endpoints(&base), "code-1")
        .await
        .unwrap();
    assert_eq!(
        seen.recv().await.unwrap().form,
        pairs(&[
            ("grant_type", "authorization_code"),
            ("code", "code-1"),
            ("redirect_uri", "https://ee.example/oauth"),
            (
                "scope",
                "https://outlook.office.com/IMAP.AccessAsUser.All https://outlook.office.com/SMTP.Send offline_access openid profile"
            ),
            ("client_id", "cid"),
            ("client_secret", "s3cret"),
        ])
    );
}

#[tokio::test]
async fn mail_ru_code_exchange_authenticates_with_basic() {
    let (base, mut seen) = recording_server(200, TOKEN_REPLY).await;
    client()
        .exchange_code(&app(Provider::MailRu), &endpoints(&base), "code-2")
        .await
        .unwrap();
    let request = seen.recv().await.unwrap();
    // base64("cid:s3cret")
    assert_eq!(request.headers["authorization"], "Basic Y2lkOnMzY3JldA==");
    assert_eq!(
        request.form,
        pairs(&[
            ("grant_type", "authorization_code"),
            ("code", "code-2"),
            ("redirect_uri", "https://ee.example/oauth"),
        ])
    );
}

#[tokio::test]
async fn outlook_service_client_credentials() {
    let (base, mut seen) = recording_server(200, TOKEN_REPLY).await;
    let mut svc = app(Provider::OutlookService);
    svc.redirect_url = None;
    svc.authority = Some("tenant-1".into());
    svc.cloud = Some(emailengine_oauth::app::Cloud::GccHigh);
    let table = ProviderTable::default().with_endpoints(
        Provider::OutlookService,
        Endpoints {
            token: format!("{base}/{{authority}}/oauth2/v2.0/token"),
            ..endpoints(&base)
        },
    );
    client()
        .client_credentials(&svc, &table.endpoints(&svc).unwrap())
        .await
        .unwrap();
    let request = seen.recv().await.unwrap();
    assert_eq!(request.target, "/tenant-1/oauth2/v2.0/token");
    assert_eq!(
        request.form,
        pairs(&[
            ("grant_type", "client_credentials"),
            ("scope", "https://graph.microsoft.us/.default"),
            ("client_id", "cid"),
            ("client_secret", "s3cret"),
        ])
    );
}

#[tokio::test]
async fn gmail_service_sends_a_signed_assertion() {
    let (base, mut seen) = recording_server(200, TOKEN_REPLY).await;
    let mut svc = OAuthApp::new(Provider::GmailService);
    svc.service_client = Some("109876543210987654321".into());
    svc.service_client_email = Some("sa@project.iam.gserviceaccount.com".into());
    svc.service_key = Some(include_str!("../testdata/service-key.pem").into());
    let endpoints = endpoints(&base);
    client()
        .service_account(&svc, &endpoints, "ann@example.com")
        .await
        .unwrap();
    let request = seen.recv().await.unwrap();
    assert_eq!(
        request.form[0],
        (
            "grant_type".into(),
            "urn:ietf:params:oauth:grant-type:jwt-bearer".into()
        )
    );
    assert_eq!(request.form[1].0, "assertion");
    assert_eq!(request.form.len(), 2);
    let key =
        jsonwebtoken::DecodingKey::from_rsa_pem(include_bytes!("../testdata/service-key.pub.pem"))
            .unwrap();
    let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::RS256);
    validation.set_audience(&[endpoints.token.as_str()]);
    let claims = jsonwebtoken::decode::<serde_json::Value>(&request.form[1].1, &key, &validation)
        .unwrap()
        .claims;
    assert_eq!(claims["iss"], "109876543210987654321");
    assert_eq!(claims["sub"], "ann@example.com");
    assert_eq!(claims["scope"], "https://mail.google.com/");
    assert_eq!(
        claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap(),
        3600
    );
}

#[tokio::test]
async fn refused_refresh_builds_the_token_request_report() {
    let (base, _seen) = recording_server(
        400,
        r#"{"error":"invalid_grant","error_description":"Token has been expired or revoked."}"#,
    )
    .await;
    let mut gmail = app(Provider::Gmail);
    gmail.google_project_id = Some("my-project-1".into());
    let err = client()
        .refresh(&gmail, &endpoints(&base), "rt")
        .await
        .unwrap_err();
    assert!(!err.is_transient());
    assert_eq!(
        err.to_string(),
        "Token request failed for gmail (refresh_token, HTTP 400): invalid_grant - Token has been expired or revoked."
    );
    assert_eq!(
        err.token_request(),
        serde_json::json!({
            "url": format!("{base}/token"),
            "method": "post",
            "grant": "refresh_token",
            "provider": "gmail",
            "status": 400,
            "clientId": "cid",
            "scopes": ["https://mail.google.com/", "openid", "email", "profile"],
            "googleProjectId": "my-project-1",
            "response": {"error": "invalid_grant", "error_description": "Token has been expired or revoked."}
        })
    );
}

#[tokio::test]
async fn auth_server_request_and_answer() {
    let (base, mut seen) =
        recording_server(200, r#"{"user":"ann@example.com","accessToken":"at-9"}"#).await;
    let url = base.replace("http://", "http://svc:pw@") + "/creds?x=1";
    let http = reqwest::Client::new();
    let creds = auth_server::fetch(&http, &url, "acc-1", Proto::Imap)
        .await
        .unwrap();
    assert_eq!(
        creds,
        ServerCredentials::AccessToken {
            user: "ann@example.com".into(),
            access_token: "at-9".into()
        }
    );
    let request = seen.recv().await.unwrap();
    assert_eq!(
        (request.method.as_str(), request.target.as_str()),
        ("GET", "/creds?x=1&account=acc-1&proto=imap")
    );
    let basic = base64::engine::general_purpose::STANDARD.encode("svc:pw");
    assert_eq!(request.headers["authorization"], format!("Basic {basic}"));
    let (down, _seen) = recording_server(502, "{}").await;
    let err = auth_server::fetch(&http, &down, "acc-1", Proto::Api)
        .await
        .unwrap_err();
    assert_eq!(err.to_string(), "Invalid response: 502 Bad Gateway");
    assert!(err.is_transient());
}
