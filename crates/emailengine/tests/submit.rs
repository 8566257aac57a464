//! Sending mail: through a real Postfix into a real Dovecot, and through an in-process SMTP
//! server for the faults (permanent refusals, temporary failures, an outage).

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::*;
use reqwest::Method;
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

fn account(name: &str, user: &str, smtp_port: u16) -> Value {
    let (imap, _) = mail_ports();
    json!({
        "account": name, "name": format!("User {name}"), "email": user,
        "imap": {"host": "127.0.0.1", "port": imap, "secure": false, "auth": {"user": user, "pass": "pass"}},
        "smtp": {"host": "127.0.0.1", "port": smtp_port, "secure": false, "auth": {"user": user, "pass": "pass"}}
    })
}

async fn connected(server: &Server, token: &str, name: &str) {
    wait_for(&format!("{name} connected"), 20, || async {
        let (_, b) = server
            .get(&format!("/v1/account/{name}"), Some(token))
            .await;
        (b["state"] == "connected").then_some(())
    })
    .await;
}

#[tokio::test]
async fn send_from_a_to_b_through_postfix() {
    let (_, smtp) = mail_ports();
    let env = Env::new("submit-ab");
    let a = format!("{}-a@example.com", env.prefix);
    let b = format!("{}-b@example.com", env.prefix);
    let token = env.issue(&[]);
    let server = env.start(&[]).await;
    let receiver = Receiver::default();
    let hook = receiver.start().await;
    let (status, _) = server
        .send(
            Method::POST,
            "/v1/settings",
            Some(&token),
            Some(json!({"webhooks": hook, "webhooksEnabled": true, "serviceSecret": "shared-secret"})),
        )
        .await;
    assert_eq!(status, 200);
    server
        .send(
            Method::POST,
            "/v1/account",
            Some(&token),
            Some(account("a", &a, smtp)),
        )
        .await;
    server
        .send(
            Method::POST,
            "/v1/account",
            Some(&token),
            Some(account("b", &b, smtp)),
        )
        .await;
    connected(&server, &token, "a").await;
    connected(&server, &token, "b").await;

    let (status, queued) = server.send(Method::POST, "/v1/account/a/submit", Some(&token), Some(json!({
        "to": [{"name": "Bee", "address": &b}], "bcc": ["hidden@example.com"], "subject": "Hello B",
        "text": "plain body", "html": "<p>html body</p>",
        "attachments": [{"filename": "a.txt", "content": "YXR0YWNoZWQ=", "contentType": "text/plain"}]
    }))).await;
    assert_eq!(status, 200, "{queued}");
    assert_eq!(queued["response"], "Queued for delivery");
    assert_eq!(queued["queueId"].as_str().unwrap().len(), 19);
    let message_id = queued["messageId"].as_str().unwrap().to_string();

    let sent = wait_for("messageSent", 15, || async {
        env.events_of("a", "messageSent").await.into_iter().next()
    })
    .await;
    assert_eq!(sent.payload["data"]["messageId"], message_id.as_str());
    assert_eq!(sent.payload["data"]["queueId"], queued["queueId"]);
    assert!(
        sent.payload["data"]["response"]
            .as_str()
            .unwrap()
            .starts_with("250"),
        "{}",
        sent.payload
    );
    let new = wait_for("B's messageNew", 15, || async {
        env.events_of("b", "messageNew")
            .await
            .into_iter()
            .find(|e| e.payload["data"]["subject"] == "Hello B")
    })
    .await;
    assert_eq!(new.payload["data"]["messageId"], message_id.as_str());
    let id = new.payload["data"]["id"].as_str().unwrap();
    let (_, msg) = server
        .get(&format!("/v1/account/b/message/{id}"), Some(&token))
        .await;
    assert_eq!(msg["from"]["address"], a.as_str());
    assert_eq!(msg["attachments"][0]["filename"], "a.txt");
    let source = server
        .http
        .get(server.url(&format!("/v1/account/b/message/{id}/source")))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        !source.contains("hidden@example.com"),
        "Bcc never reaches the message"
    );
    // A copy is in A's Sent folder.
    let copy = wait_for("the Sent copy", 10, || async {
        let (_, list) = server
            .get("/v1/account/a/messages?path=Sent", Some(&token))
            .await;
        (list["total"].as_u64() == Some(1)).then_some(list)
    })
    .await;
    assert_eq!(copy["messages"][0]["subject"], "Hello B");
    let (_, outbox) = server.get("/v1/outbox", Some(&token)).await;
    assert_eq!(outbox["total"], 0);

    // B's messageNew and A's messageSent reach the webhook receiver, signed.
    let hits = wait_for("both webhooks", 15, || async {
        let hits = receiver.hits.lock().unwrap().clone();
        let found = |account: &str, event: &str| {
            hits.iter()
                .find(|(_, b)| {
                    let v: Value = serde_json::from_slice(b).unwrap();
                    v["account"] == account && v["event"] == event
                })
                .cloned()
        };
        Some((found("b", "messageNew")?, found("a", "messageSent")?))
    })
    .await;
    for (headers, body) in [hits.0, hits.1] {
        let body: &[u8] = &body;
        let h = |k: &str| headers[k].to_str().unwrap().to_string();
        assert_eq!(
            h("x-ee-wh-signature"),
            hmac_b64("shared-secret", &[body], true)
        );
        let signed = [h("webhook-id"), h("webhook-timestamp")];
        assert_eq!(
            h("webhook-signature"),
            format!(
                "v1,{}",
                hmac_b64(
                    "shared-secret",
                    &[signed[0].as_bytes(), b".", signed[1].as_bytes(), b".", body],
                    false
                )
            )
        );
    }

    // A reply threads onto the original.
    let (status, _) = server
        .send(
            Method::POST,
            "/v1/account/b/submit",
            Some(&token),
            Some(json!({
                "reference": {"message": id, "action": "reply"}, "text": "thanks"
            })),
        )
        .await;
    assert_eq!(status, 200);
    let reply = wait_for("A receives the reply", 15, || async {
        env.events_of("a", "messageNew")
            .await
            .into_iter()
            .find(|e| e.payload["data"]["subject"] == "Re: Hello B")
    })
    .await;
    assert_eq!(reply.payload["data"]["inReplyTo"], message_id.as_str());
}

/// A scripted SMTP server: `script(rcpt)` decides the reply to RCPT TO; messages it accepts are
/// recorded.
#[derive(Clone, Default)]
struct FakeSmtp {
    accepted: Arc<Mutex<Vec<String>>>,
    connections: Arc<std::sync::atomic::AtomicUsize>,
    rcpt_replies: Arc<Mutex<Vec<&'static str>>>,
}

impl FakeSmtp {
    async fn serve(self, listener: tokio::net::TcpListener) {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            let this = self.clone();
            this.connections
                .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            tokio::spawn(async move {
                let (r, mut w) = stream.into_split();
                let mut lines = BufReader::new(r).lines();
                let _ = w.write_all(b"220 fake ESMTP\r\n").await;
                let mut in_data = false;
                let mut data = String::new();
                while let Ok(Some(line)) = lines.next_line().await {
                    if in_data {
                        if line == "." {
                            in_data = false;
                            this.accepted
                                .lock()
                                .unwrap()
                                .push(std::mem::take(&mut data));
                            let _ = w.write_all(b"250 2.0.0 Ok: queued as FAKE123\r\n").await;
                        } else {
                            data.push_str(&line);
                            data.push('\n');
                        }
                        continue;
                    }
                    let upper = line.to_ascii_uppercase();
                    let reply: String = if upper.starts_with("EHLO") {
                        "250-fake\r\n250 8BITMIME\r\n".into()
                    } else if upper.starts_with("MAIL") {
                        "250 ok\r\n".into()
                    } else if upper.starts_with("RCPT") {
                        let next = this.rcpt_replies.lock().unwrap().pop();
                        format!("{}\r\n", next.unwrap_or("250 ok"))
                    } else if upper.starts_with("DATA") {
                        in_data = true;
                        "354 go\r\n".into()
                    } else if upper.starts_with("QUIT") {
                        let _ = w.write_all(b"221 bye\r\n").await;
                        return;
                    } else {
                        "250 ok\r\n".into()
                    };
                    if w.write_all(reply.as_bytes()).await.is_err() {
                        return;
                    }
                }
            });
        }
    }
}

fn send_only(name: &str, port: u16) -> Value {
    json!({"account": name, "name": name, "email": format!("{name}@example.com"),
           "smtp": {"host": "127.0.0.1", "port": port, "secure": false}})
}

#[tokio::test]
async fn permanent_refusal_fails_at_once_and_temporary_ones_retry() {
    let fake = FakeSmtp::default();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(fake.clone().serve(listener));
    let env = Env::new("submit-faults").var("EENGINE_SUBMIT_RETRY_DELAY", "100ms");
    let token = env.issue(&[]);
    let server = env.start(&[]).await;
    server
        .send(
            Method::POST,
            "/v1/account",
            Some(&token),
            Some(send_only("s", port)),
        )
        .await;

    fake.rcpt_replies
        .lock()
        .unwrap()
        .push("550 5.1.1 No such user");
    let (_, q) = server
        .send(
            Method::POST,
            "/v1/account/s/submit",
            Some(&token),
            Some(json!({"to": ["nobody@example.org"], "subject": "x", "text": "x"})),
        )
        .await;
    let failed = wait_for("messageFailed", 10, || async {
        env.events_of("s", "messageFailed").await.into_iter().next()
    })
    .await;
    assert_eq!(failed.payload["data"]["queueId"], q["queueId"]);
    assert!(
        failed.payload["data"]["error"]
            .as_str()
            .unwrap()
            .starts_with("550"),
        "{}",
        failed.payload
    );
    assert!(
        env.events_of("s", "messageDeliveryError").await.is_empty(),
        "5xx is not retried"
    );

    // 451 twice, then accepted.
    fake.rcpt_replies
        .lock()
        .unwrap()
        .extend(["451 4.3.0 try later", "451 4.3.0 try later"]);
    let (_, q) = server
        .send(
            Method::POST,
            "/v1/account/s/submit",
            Some(&token),
            Some(json!({"to": ["later@example.org"], "subject": "retry me", "text": "x"})),
        )
        .await;
    let sent = wait_for("messageSent after retries", 15, || async {
        env.events_of("s", "messageSent").await.into_iter().next()
    })
    .await;
    assert_eq!(sent.payload["data"]["queueId"], q["queueId"]);
    assert_eq!(
        sent.payload["data"]["response"],
        "250 2.0.0 Ok: queued as FAKE123"
    );
    let errors = env.events_of("s", "messageDeliveryError").await;
    assert_eq!(errors.len(), 2);
    assert_eq!(errors[1].payload["data"]["job"]["attemptsMade"], 2);
    assert_eq!(fake.accepted.lock().unwrap().len(), 1);
    assert_eq!(
        fake.connections.load(std::sync::atomic::Ordering::SeqCst),
        2,
        "one STARTTLS probe, then four transactions on one pooled session (RSET after each refusal)"
    );
}

#[tokio::test]
async fn mail_queued_during_an_smtp_outage_is_sent_when_it_returns() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let env = Env::new("submit-outage").var("EENGINE_SUBMIT_RETRY_DELAY", "100ms");
    let token = env.issue(&[]);
    let server = env.start(&[]).await;
    server
        .send(
            Method::POST,
            "/v1/account",
            Some(&token),
            Some(send_only("o", port)),
        )
        .await;
    let (_, q) = server
        .send(
            Method::POST,
            "/v1/account/o/submit",
            Some(&token),
            Some(json!({"to": ["x@example.org"], "subject": "outage", "text": "x"})),
        )
        .await;
    wait_for("a delivery error", 10, || async {
        env.events_of("o", "messageDeliveryError")
            .await
            .into_iter()
            .next()
    })
    .await;
    let (status, item) = server
        .get(
            &format!("/v1/outbox/{}", q["queueId"].as_str().unwrap()),
            Some(&token),
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(item["progress"]["status"], "error");
    let fake = FakeSmtp::default();
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
        .await
        .unwrap();
    tokio::spawn(fake.clone().serve(listener));
    wait_for("messageSent after the outage", 20, || async {
        env.events_of("o", "messageSent").await.into_iter().next()
    })
    .await;
    assert_eq!(fake.accepted.lock().unwrap().len(), 1);
}

#[tokio::test]
async fn idempotency_key_queues_one_message() {
    let fake = FakeSmtp::default();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(fake.clone().serve(listener));
    let env = Env::new("submit-idem");
    let token = env.issue(&[]);
    let server = env.start(&[]).await;
    server
        .send(
            Method::POST,
            "/v1/account",
            Some(&token),
            Some(send_only("i", port)),
        )
        .await;
    let mut ids = Vec::new();
    for _ in 0..2 {
        let r = server
            .http
            .post(server.url("/v1/account/i/submit"))
            .bearer_auth(&token)
            .header("Idempotency-Key", "order-42")
            .json(&json!({"to": ["x@example.org"], "subject": "once", "text": "x"}))
            .send()
            .await
            .unwrap();
        let (_, body) = into_json(r).await;
        ids.push(body["queueId"].as_str().unwrap().to_string());
    }
    assert_eq!(ids[0], ids[1]);
    wait_for("messageSent", 10, || async {
        env.events_of("i", "messageSent").await.into_iter().next()
    })
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(fake.accepted.lock().unwrap().len(), 1);
    // Deleting a queued message cancels it.
    let (_, q) = server.send(Method::POST, "/v1/account/i/submit", Some(&token),
        Some(json!({"to": ["x@example.org"], "subject": "later", "text": "x", "sendAt": "2099-01-01T00:00:00Z"}))).await;
    let qid = q["queueId"].as_str().unwrap();
    let (_, list) = server.get("/v1/outbox", Some(&token)).await;
    assert_eq!(list["total"], 1);
    let (_, del) = server
        .send(
            Method::DELETE,
            &format!("/v1/outbox/{qid}"),
            Some(&token),
            None,
        )
        .await;
    assert_eq!(del, json!({"deleted": true}));
}

#[tokio::test]
async fn mail_queued_when_the_server_is_killed_is_sent_after_restart() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let env = Env::new("submit-kill").var("EENGINE_SUBMIT_RETRY_DELAY", "50ms");
    let token = env.issue(&[]);
    let server = env.start(&[]).await;
    server
        .send(
            Method::POST,
            "/v1/account",
            Some(&token),
            Some(send_only("k", port)),
        )
        .await;
    let mut queued = Vec::new();
    for i in 0..3 {
        let (_, q) = server
            .send(
                Method::POST,
                "/v1/account/k/submit",
                Some(&token),
                Some(
                    json!({"to": ["x@example.org"], "subject": format!("crash {i}"), "text": "x"}),
                ),
            )
            .await;
        queued.push(q["queueId"].as_str().unwrap().to_string());
    }
    wait_for("delivery errors", 10, || async {
        (env.events_of("k", "messageDeliveryError").await.len() >= 3).then_some(())
    })
    .await;
    server.kill();
    let fake = FakeSmtp::default();
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
        .await
        .unwrap();
    tokio::spawn(fake.clone().serve(listener));
    let _server = env.start(&[]).await;
    let sent = wait_for("all three sent after restart", 20, || async {
        let sent = env.events_of("k", "messageSent").await;
        (sent.len() >= 3).then_some(sent)
    })
    .await;
    let mut ids: Vec<String> = sent
        .iter()
        .map(|e| e.payload["data"]["queueId"].as_str().unwrap().to_string())
        .collect();
    ids.sort();
    queued.sort();
    assert_eq!(ids, queued);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        fake.accepted.lock().unwrap().len(),
        3,
        "each message handed to SMTP once"
    );
}

#[tokio::test]
async fn verify_account_checks_imap_and_smtp_logins() {
    let (imap, smtp) = mail_ports();
    let env = Env::new("verify");
    let token = env.issue(&[]);
    let server = env.start(&[]).await;
    let user = format!("{}@example.com", env.prefix);
    let (status, body) = server.send(Method::POST, "/v1/verifyAccount", Some(&token), Some(json!({
        "imap": {"host": "127.0.0.1", "port": imap, "secure": false, "auth": {"user": &user, "pass": "pass"}},
        "smtp": {"host": "127.0.0.1", "port": smtp, "secure": false, "auth": {"user": &user, "pass": "pass"}}
    }))).await;
    assert_eq!(
        (status, body),
        (
            200,
            json!({"imap": {"success": true}, "smtp": {"success": true}})
        )
    );
    let (_, body) = server.send(Method::POST, "/v1/verifyAccount", Some(&token), Some(json!({
        "imap": {"host": "127.0.0.1", "port": imap, "secure": false, "auth": {"user": &user, "pass": "wrong"}},
        "smtp": {"host": "127.0.0.1", "port": smtp, "secure": false, "auth": {"user": &user, "pass": "wrong"}}
    }))).await;
    assert_eq!(body["imap"]["code"], "AUTHENTICATIONFAILED");
    assert_eq!(body["smtp"]["code"], "EAUTH", "{body}");
}

/// `PUT /v1/settings/queue/submit {paused: true}` holds outgoing mail in the outbox until the
/// queue is resumed.
#[tokio::test]
async fn a_paused_submit_queue_holds_mail_until_resumed() {
    let (_, smtp) = mail_ports();
    let env = Env::new("submit-paused");
    let a = format!("{}-a@example.com", env.prefix);
    let token = env.issue(&[]);
    let server = env.start(&[]).await;
    server
        .send(
            Method::POST,
            "/v1/account",
            Some(&token),
            Some(account("a", &a, smtp)),
        )
        .await;
    connected(&server, &token, "a").await;
    let (status, _) = server
        .send(
            Method::PUT,
            "/v1/settings/queue/submit",
            Some(&token),
            Some(json!({"paused": true})),
        )
        .await;
    assert_eq!(status, 200);
    let (status, queued) = server
        .send(
            Method::POST,
            "/v1/account/a/submit",
            Some(&token),
            Some(json!({
                "to": [{"address": &a}], "subject": "held", "text": "held body"
            })),
        )
        .await;
    assert_eq!(status, 200, "{queued}");
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(
        env.events_of("a", "messageSent").await.is_empty(),
        "sent while paused"
    );
    let (_, info) = server.get("/v1/settings/queue/submit", Some(&token)).await;
    assert_eq!(
        (info["paused"].clone(), info["jobs"]["waiting"].clone()),
        (json!(true), json!(1)),
        "{info}"
    );
    let (_, stats) = server.get("/v1/stats", Some(&token)).await;
    assert_eq!(stats["queues"]["submit"]["isPaused"], true, "{stats}");
    let (status, _) = server
        .send(
            Method::PUT,
            "/v1/settings/queue/submit",
            Some(&token),
            Some(json!({"paused": false})),
        )
        .await;
    assert_eq!(status, 200);
    let sent = wait_for("messageSent after resume", 15, || async {
        env.events_of("a", "messageSent").await.into_iter().next()
    })
    .await;
    assert_eq!(sent.payload["data"]["queueId"], queued["queueId"]);
}
