//! `GET /v1/autoconfig` against lookups this test controls: a loopback DNS server (MX and SRV
//! records) and a loopback HTTP server standing in for Mozilla's ISPDB. Well-known providers
//! are found by domain without any lookup, custom domains by their MX hosts, then by SRV and
//! autoconfig files; an address nothing knows is `_source: "unknown"`.

mod common;

use common::dns;
use common::*;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const ISPDB_CONFIG: &str = r#"<?xml version="1.0"?>
<clientConfig version="1.1"><emailProvider id="ispdb.test">
  <domain>ispdb.test</domain>
  <incomingServer type="imap"><hostname>imap.%EMAILDOMAIN%</hostname><port>143</port>
    <socketType>STARTTLS</socketType><username>%EMAILLOCALPART%</username></incomingServer>
  <outgoingServer type="smtp"><hostname>smtp.ispdb.test</hostname><port>465</port>
    <socketType>SSL</socketType><username>%EMAILADDRESS%</username></outgoingServer>
</emailProvider></clientConfig>"#;

/// Serves `ISPDB_CONFIG` at `/v1.1/ispdb.test`, 404 elsewhere; answers `delay_ms` late.
async fn ispdb() -> (u16, tokio::task::JoinHandle<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let task = tokio::spawn(async move {
        loop {
            let Ok((mut socket, _)) = listener.accept().await else {
                return;
            };
            tokio::spawn(async move {
                let mut buf = vec![0u8; 4096];
                let n = socket.read(&mut buf).await.unwrap_or(0);
                let request = String::from_utf8_lossy(&buf[..n]).to_string();
                let path = request.split_whitespace().nth(1).unwrap_or("").to_string();
                let (status, body) = if path == "/v1.1/ispdb.test" {
                    ("200 OK", ISPDB_CONFIG)
                } else {
                    ("404 Not Found", "not here")
                };
                let reply = format!(
                    "HTTP/1.1 {status}\r\ncontent-type: text/xml\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = socket.write_all(reply.as_bytes()).await;
            });
        }
    });
    (port, task)
}

async fn discover(server: &Server, token: &str, email: &str) -> Value {
    let url = format!(
        "/v1/autoconfig?email={}",
        url::form_urlencoded::byte_serialize(email.as_bytes()).collect::<String>()
    );
    let (status, body) = server.get(&url, Some(token)).await;
    assert_eq!(status, 200, "{email}: {body}");
    body
}

#[tokio::test]
async fn discovery_finds_servers_by_provider_mx_srv_and_autoconfig_files() {
    let resolver = dns::start(vec![
        dns::mx("corp.test.", 10, "corp-test.mail.protection.outlook.com."),
        dns::mx("google-hosted.test.", 5, "aspmx.l.google.com."),
        dns::mx("google-hosted.test.", 1, "mx.self-hosted.test."),
        dns::srv("_imaps._tcp.srv.test.", 0, 993, "mail.srv.test."),
        dns::srv("_imap._tcp.srv.test.", 0, 143, "other.srv.test."),
        dns::srv("_submission._tcp.srv.test.", 0, 587, "smtp.srv.test."),
        // "." as the target: the service is not offered there.
        dns::srv("_imaps._tcp.none.test.", 0, 993, "."),
    ])
    .await;
    let (ispdb_port, _ispdb) = ispdb().await;
    let env = Env::new("autoconfig")
        .var("EENGINE_AUTOCONFIG_SOURCES", "mx,srv,mozilla")
        .var("EENGINE_AUTOCONFIG_NAMESERVER", &resolver.addr.to_string())
        .var(
            "EENGINE_AUTOCONFIG_ISPDB",
            &format!("http://127.0.0.1:{ispdb_port}/v1.1/"),
        )
        .var("EENGINE_AUTOCONFIG_TIMEOUT", "2s");
    let token = env.issue(&[]);
    let server = env.start(&[]).await;

    // A well-known provider by its domain, with the app-password note.
    let gmail = discover(&server, &token, "Someone@GMail.com").await;
    assert_eq!(
        gmail,
        json!({
            "imap": {"auth": {"user": "Someone@gmail.com"}, "host": "imap.gmail.com", "port": 993, "secure": true},
            "smtp": {"auth": {"user": "Someone@gmail.com"}, "host": "smtp.gmail.com", "port": 465, "secure": true},
            "appPassword": {"required": true, "provider": "gmail", "name": "Gmail / Google Workspace",
                "instructions": "https://support.google.com/accounts/answer/185833"},
            "_source": "mx"
        })
    );

    // A custom domain hosted at Microsoft 365, found by its MX host.
    let corp = discover(&server, &token, "ann@corp.test").await;
    assert_eq!(corp["_source"], "mx");
    assert_eq!(corp["imap"]["host"], "outlook.office365.com");
    assert_eq!(
        corp["smtp"],
        json!({"auth": {"user": "ann@corp.test"}, "host": "smtp.office365.com", "port": 587, "secure": false})
    );
    assert!(corp.get("appPassword").is_none());
    // The MX hosts are read in preference order; the first known one decides.
    let hosted = discover(&server, &token, "b@google-hosted.test").await;
    assert_eq!(hosted["imap"]["host"], "imap.gmail.com");

    // SRV (RFC 6186): implicit TLS preferred over STARTTLS.
    let srv = discover(&server, &token, "bob@srv.test").await;
    assert_eq!(
        srv,
        json!({
            "imap": {"auth": {"user": "bob@srv.test"}, "host": "mail.srv.test", "port": 993, "secure": true},
            "smtp": {"auth": {"user": "bob@srv.test"}, "host": "smtp.srv.test", "port": 587, "secure": false},
            "_source": "srv"
        })
    );

    // Mozilla's ISPDB (here on loopback), placeholders filled in.
    let ispdb = discover(&server, &token, "cy@ispdb.test").await;
    assert_eq!(
        ispdb,
        json!({
            "imap": {"auth": {"user": "cy"}, "host": "imap.ispdb.test", "port": 143, "secure": false},
            "smtp": {"auth": {"user": "cy@ispdb.test"}, "host": "smtp.ispdb.test", "port": 465, "secure": true},
            "_source": "mozilla"
        })
    );

    // Nothing anywhere (and a "." SRV target) is unknown, promptly.
    for email in ["dee@nothing.test", "e@none.test"] {
        let started = std::time::Instant::now();
        let unknown = discover(&server, &token, email).await;
        assert_eq!(
            unknown,
            json!({"imap": false, "smtp": false, "_source": "unknown"}),
            "{email}"
        );
        assert!(
            started.elapsed() < std::time::Duration::from_secs(3),
            "{email}"
        );
    }

    // Input is checked as EmailEngine checks it.
    for query in [
        "",
        "?email=",
        "?email=not-an-address",
        "?email=a@b.test&other=1",
    ] {
        let (status, body) = server
            .get(&format!("/v1/autoconfig{query}"), Some(&token))
            .await;
        assert_eq!(status, 400, "{query}: {body}");
        assert_eq!(body["error"], "Bad Request", "{query}");
    }
    let (status, _) = server.get("/v1/autoconfig?email=a@gmail.com", None).await;
    assert_eq!(status, 401);
    // The route is in the OpenAPI document with its query parameter.
    let (_, doc) = server.get("/swagger.json", None).await;
    assert_eq!(
        doc["paths"]["/v1/autoconfig"]["get"]["parameters"][0]["name"],
        "email"
    );
}
