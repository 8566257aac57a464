//! Faults a real server cannot be made to produce: an in-process IMAP server that answers a
//! malformed response in the middle of IDLE. The account must recover by itself.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use common::*;
use reqwest::Method;
use serde_json::json;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;

/// Serves a minimal mailbox. The first connection that enters IDLE gets an unparseable line.
async fn fake_imap(listener: TcpListener, connections: Arc<AtomicUsize>) {
    let garbage_sent = Arc::new(AtomicUsize::new(0));
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            return;
        };
        connections.fetch_add(1, Ordering::SeqCst);
        let garbage_sent = garbage_sent.clone();
        tokio::spawn(async move {
            let (read, mut write) = stream.into_split();
            let mut lines = BufReader::new(read).lines();
            let _ = write
                .write_all(b"* OK [CAPABILITY IMAP4rev1 IDLE] fake ready\r\n")
                .await;
            let mut idle_tag = None;
            while let Ok(Some(line)) = lines.next_line().await {
                if line == "DONE" {
                    if let Some(tag) = idle_tag.take() {
                        let _ = write
                            .write_all(format!("{tag} OK IDLE done\r\n").as_bytes())
                            .await;
                    }
                    continue;
                }
                let mut parts = line.splitn(3, ' ');
                let tag = parts.next().unwrap_or("*").to_string();
                let cmd = parts.next().unwrap_or("").to_ascii_uppercase();
                let reply = match cmd.as_str() {
                    "LOGIN" => format!("{tag} OK Logged in\r\n"),
                    "CAPABILITY" => format!("* CAPABILITY IMAP4rev1 IDLE\r\n{tag} OK done\r\n"),
                    "LSUB" => format!("{tag} OK done\r\n"),
                    "LIST" => format!("* LIST () \"/\" INBOX\r\n{tag} OK done\r\n"),
                    "SELECT" | "EXAMINE" => format!(
                        "* 0 EXISTS\r\n* OK [UIDVALIDITY 7] ok\r\n* OK [UIDNEXT 1] ok\r\n{tag} OK [READ-WRITE] done\r\n"
                    ),
                    "NOOP" => format!("{tag} OK done\r\n"),
                    "LOGOUT" => format!("* BYE bye\r\n{tag} OK done\r\n"),
                    "IDLE" => {
                        idle_tag = Some(tag.clone());
                        let first = garbage_sent.fetch_add(1, Ordering::SeqCst) == 0;
                        if first {
                            "+ idling\r\n* 1 FETCH (((( \u{1} not imap\r\n".to_string()
                        } else {
                            "+ idling\r\n".to_string()
                        }
                    }
                    _ => format!("{tag} BAD unknown\r\n"),
                };
                if write.write_all(reply.as_bytes()).await.is_err() {
                    return;
                }
            }
        });
    }
}

#[tokio::test]
async fn malformed_response_during_idle_does_not_take_the_account_down() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let connections = Arc::new(AtomicUsize::new(0));
    tokio::spawn(fake_imap(listener, connections.clone()));

    let env = Env::new("imap-fault");
    let token = env.issue(&[]);
    let server = env.start(&[]).await;
    server.send(Method::POST, "/v1/account", Some(&token), Some(json!({
        "account": "odd", "name": "Odd", "email": "odd@example.com",
        "imap": {"host": "127.0.0.1", "port": port, "secure": false, "auth": {"user": "odd", "pass": "x"}}
    }))).await;
    // The first session receives the bad line; a new one must take its place and settle into
    // IDLE again, with the failure logged.
    wait_for("a reconnect after the malformed response", 20, || async {
        (connections.load(Ordering::SeqCst) >= 2).then_some(())
    })
    .await;
    wait_for("the account connected again", 20, || async {
        let (_, body) = server.get("/v1/account/odd", Some(&token)).await;
        (body["state"] == "connected").then_some(())
    })
    .await;
    assert!(
        server.log().contains("IMAP session ended"),
        "the failure is logged"
    );
    let (status, list) = server
        .get("/v1/account/odd/messages?path=INBOX", Some(&token))
        .await;
    assert_eq!((status, list["total"].clone()), (200, json!(0)));
}
