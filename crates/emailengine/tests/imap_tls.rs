//! Implicit TLS to IMAP: a TLS front (rustls, self-signed certificate made with openssl) before
//! the test Dovecot. An account that accepts invalid certificates connects and syncs; one that
//! does not is refused with a connection error.

mod common;

use std::sync::Arc;

use common::*;
use reqwest::Method;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use serde_json::json;

/// Starts a TLS terminator on a free port that forwards to the test Dovecot; returns its port.
async fn tls_front(dir: &std::path::Path) -> u16 {
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    let status = std::process::Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=localhost",
            "-keyout",
        ])
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .expect("openssl is installed");
    assert!(status.success());
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&cert)
        .unwrap()
        .map(Result::unwrap)
        .collect();
    let key = PrivateKeyDer::from_pem_file(&key).unwrap();
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::aws_lc_rs::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(certs, key)
    .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let (imap, _) = mail_ports();
    tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                return;
            };
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(mut tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let Ok(mut backend) = tokio::net::TcpStream::connect(("127.0.0.1", imap)).await
                else {
                    return;
                };
                let _ = tokio::io::copy_bidirectional(&mut tls, &mut backend).await;
            });
        }
    });
    port
}

#[tokio::test]
async fn implicit_tls_with_and_without_certificate_checks() {
    let dir = std::env::temp_dir().join(format!("ee-tls-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let port = tls_front(&dir).await;
    let env = Env::new("imap-tls");
    let user = format!("{}@example.com", env.prefix);
    let token = env.issue(&[]);
    let server = env.start(&[]).await;
    let account = |name: &str, accept_invalid: bool| {
        let mut imap = json!({"host": "127.0.0.1", "port": port, "secure": true, "auth": {"user": &user, "pass": "pass"}});
        if accept_invalid {
            imap["tls"] = json!({"rejectUnauthorized": false});
        }
        json!({"account": name, "name": name, "email": &user, "imap": imap})
    };
    server
        .send(
            Method::POST,
            "/v1/account",
            Some(&token),
            Some(account("trusting", true)),
        )
        .await;
    server
        .send(
            Method::POST,
            "/v1/account",
            Some(&token),
            Some(account("strict", false)),
        )
        .await;
    wait_for("the trusting account connected over TLS", 20, || async {
        let (_, b) = server.get("/v1/account/trusting", Some(&token)).await;
        (b["state"] == "connected").then_some(())
    })
    .await;
    let strict = wait_for("the strict account refused", 20, || async {
        let (_, b) = server.get("/v1/account/strict", Some(&token)).await;
        (b["state"] == "connectError").then_some(b)
    })
    .await;
    let error = strict["lastError"]["response"]
        .as_str()
        .unwrap_or_default()
        .to_lowercase();
    assert!(error.contains("certificate"), "{strict}");

    send_mail(
        "bob@example.com",
        &user,
        "Subject: over tls\r\n\r\nhello\r\n",
    );
    wait_for("messageNew over TLS", 10, || async {
        env.events_of("trusting", "messageNew")
            .await
            .into_iter()
            .next()
    })
    .await;
    let (status, list) = server
        .get("/v1/account/trusting/messages?path=INBOX", Some(&token))
        .await;
    assert_eq!((status, list["total"].clone()), (200, json!(1)));
    let _ = std::fs::remove_dir_all(&dir);
}
