//! The mailbox and message API as an EmailEngine client sees it, against the real Dovecot:
//! every answer compared with EmailEngine's (spec §5–§6, §13), the web-safe HTML options, and
//! the per-account connection cap counted on the wire by a proxy in front of Dovecot.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use common::*;
use reqwest::Method;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

fn payload(account: &str, user: &str, imap_port: u16) -> Value {
    let (_, smtp) = mail_ports();
    json!({
        "account": account, "name": format!("User {account}"), "email": user,
        "imap": {"host": "127.0.0.1", "port": imap_port, "secure": false, "auth": {"user": user, "pass": "pass"}},
        "smtp": {"host": "127.0.0.1", "port": smtp, "secure": false, "auth": {"user": user, "pass": "pass"}}
    })
}

async fn connected(server: &Server, token: &str, account: &str) {
    wait_for(&format!("{account} connected"), 20, || async {
        let (_, b) = server
            .get(&format!("/v1/account/{account}"), Some(token))
            .await;
        (b["state"] == "connected").then_some(())
    })
    .await;
}

async fn new_message(env: &Env, account: &str, subject: &str) -> Value {
    wait_for(&format!("messageNew {subject}"), 15, || async {
        env.events_of(account, "messageNew")
            .await
            .into_iter()
            .find(|e| e.payload["data"]["subject"] == subject)
            .map(|e| e.payload["data"].clone())
    })
    .await
}

const HTML_MAIL: &str = "From: Bob <bob@example.com>\r\nTo: {to}\r\nSubject: pictures\r\nMessage-ID: <pictures@example.com>\r\nMIME-Version: 1.0\r\nContent-Type: multipart/related; boundary=R\r\n\r\n--R\r\nContent-Type: multipart/alternative; boundary=A\r\n\r\n--A\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nPlain words\r\n--A\r\nContent-Type: text/html; charset=utf-8\r\n\r\n<p>Hi<script>alert(1)</script><img src=\"cid:logo@example.com\"></p>\r\n--A--\r\n--R\r\nContent-Type: image/png\r\nContent-ID: <logo@example.com>\r\nContent-Disposition: inline; filename=logo.png\r\nContent-Transfer-Encoding: base64\r\n\r\nUE5H\r\n--R--\r\n";

#[tokio::test]
async fn mailbox_and_message_answers_match_emailengine() {
    let (imap, _) = mail_ports();
    let env = Env::new("mail-api");
    let user = format!("{}@example.com", env.prefix);
    let token = env.issue(&[]);
    let server = env.start(&[]).await;
    server
        .send(
            Method::POST,
            "/v1/account",
            Some(&token),
            Some(payload("ann", &user, imap)),
        )
        .await;
    connected(&server, &token, "ann").await;

    // An empty folder has no pages.
    let (_, empty) = server
        .get("/v1/account/ann/messages?path=Junk", Some(&token))
        .await;
    assert_eq!(
        (empty["total"].clone(), empty["pages"].clone()),
        (json!(0), json!(0))
    );
    for path in [
        "/v1/outbox",
        "/v1/accounts?state=paused",
        "/v1/tokens?account=nobody",
    ] {
        let (_, list) = server.get(path, Some(&token)).await;
        assert_eq!(
            (list["total"].clone(), list["pages"].clone()),
            (json!(0), json!(0)),
            "{path}"
        );
    }

    send_mail("bob@example.com", &user, &HTML_MAIL.replace("{to}", &user));
    let id = new_message(&env, "ann", "pictures").await["id"]
        .as_str()
        .unwrap()
        .to_string();

    // Every search key works; `unseen` among them.
    let (status, found) = server
        .send(Method::POST, "/v1/account/ann/search?path=INBOX", Some(&token),
            Some(json!({"search": {"unseen": true, "header": {"Message-ID": "pictures@example.com"}, "larger": 10, "since": "2000-01-01"}})))
        .await;
    assert_eq!((status, found["total"].clone()), (200, json!(1)), "{found}");

    // Details: the folder's special use, inline parts, text types, web-safe HTML.
    let (_, msg) = server
        .get(&format!("/v1/account/ann/message/{id}"), Some(&token))
        .await;
    assert_eq!(msg["messageSpecialUse"], "\\Inbox");
    assert_eq!(msg["attachments"][0]["inline"], true, "{msg}");
    assert!(
        msg["text"]["html"].as_str().unwrap().contains("<script>"),
        "as stored without webSafeHtml"
    );
    let (_, safe) = server
        .get(
            &format!("/v1/account/ann/message/{id}?webSafeHtml=true"),
            Some(&token),
        )
        .await;
    assert_eq!(
        safe["text"]["html"],
        "<p>Hi<img src=\"data:image/png;base64,UE5H\"></p>"
    );
    let (_, plain) = server
        .get(
            &format!("/v1/account/ann/message/{id}?textType=plain"),
            Some(&token),
        )
        .await;
    assert_eq!(
        plain["text"]["plain"].as_str().map(str::trim),
        Some("Plain words")
    );
    assert!(plain["text"].get("html").is_none(), "{plain}");
    let text_id = msg["text"]["id"].as_str().unwrap();
    let (_, html_only) = server
        .get(
            &format!("/v1/account/ann/text/{text_id}?textType=html"),
            Some(&token),
        )
        .await;
    assert!(
        html_only.get("plain").is_none() && html_only["html"].is_string(),
        "{html_only}"
    );

    // The source downloads as a file.
    let r = server
        .http
        .get(server.url(&format!("/v1/account/ann/message/{id}/source")))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.headers()["content-disposition"],
        "attachment; filename=message.eml"
    );
    let attachment = msg["attachments"][0]["id"].as_str().unwrap();
    let r = server
        .http
        .get(server.url(&format!("/v1/account/ann/attachment/{attachment}")))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.headers()["content-disposition"],
        "attachment; filename=\"logo.png\"; filename*=utf-8''logo.png"
    );
    assert_eq!(r.bytes().await.unwrap().as_ref(), b"PNG");

    // A move names where the message landed.
    let (status, moved) = server
        .send(
            Method::PUT,
            &format!("/v1/account/ann/message/{id}/move"),
            Some(&token),
            Some(json!({"path": "Junk"})),
        )
        .await;
    assert_eq!(status, 200, "{moved}");
    assert_eq!(moved["path"], "Junk");
    let new_id = moved["id"].as_str().expect("the new id").to_string();
    assert_eq!(moved["uid"], 1);
    let (status, again) = server
        .get(&format!("/v1/account/ann/message/{new_id}"), Some(&token))
        .await;
    assert_eq!(
        (status, again["messageSpecialUse"].clone()),
        (200, json!("\\Junk"))
    );

    // An upload reports the folder generation; a reference whose Message-ID differs is a 404.
    let (status, up) = server
        .send(Method::POST, "/v1/account/ann/message", Some(&token),
            Some(json!({"path": "Drafts", "flags": ["\\Draft"], "to": [{"address": "bob@example.com"}], "subject": "draft one", "text": "hello"})))
        .await;
    assert_eq!(status, 200, "{up}");
    assert!(
        up["uidValidity"]
            .as_str()
            .is_some_and(|v| v.parse::<u64>().is_ok()),
        "{up}"
    );
    let draft = up["id"].as_str().unwrap().to_string();
    let (status, refused) = server
        .send(Method::POST, "/v1/account/ann/message", Some(&token),
            Some(json!({"path": "Drafts", "subject": "re", "text": "x",
                "reference": {"message": new_id, "action": "reply", "messageId": "<other@example.com>"}})))
        .await;
    assert_eq!(
        (status, refused["code"].clone()),
        (404, json!("MessageNotFound")),
        "{refused}"
    );

    // Only drafts are sent as stored; the sent draft leaves Drafts; idempotency is reported.
    let (status, not_draft) = server
        .send(
            Method::POST,
            &format!("/v1/account/ann/message/{new_id}/submit"),
            Some(&token),
            Some(json!({})),
        )
        .await;
    assert_eq!(
        (status, not_draft["code"].clone()),
        (400, json!("MessageNotDraft")),
        "{not_draft}"
    );
    let r = server
        .http
        .post(server.url(&format!("/v1/account/ann/message/{draft}/submit")))
        .bearer_auth(&token)
        .header("Idempotency-Key", "draft-1")
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    let (status, sent) = into_json(r).await;
    assert_eq!(status, 200, "{sent}");
    assert_eq!(
        sent["idempotency"],
        json!({"key": "draft-1", "status": "MISS"})
    );
    let (_, drafts) = server
        .get("/v1/account/ann/messages?path=Drafts", Some(&token))
        .await;
    assert_eq!(drafts["total"], 0, "{drafts}");

    // Folders: rename shows at once; subscription-only updates; rename with subscription.
    server
        .send(
            Method::POST,
            "/v1/account/ann/mailbox",
            Some(&token),
            Some(json!({"path": "Old"})),
        )
        .await;
    let (status, renamed) = server
        .send(
            Method::PUT,
            "/v1/account/ann/mailbox",
            Some(&token),
            Some(json!({"path": "Old", "newPath": "New", "subscribed": true})),
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(
        renamed,
        json!({"path": "Old", "newPath": "New", "renamed": true, "subscribed": true})
    );
    let (_, boxes) = server.get("/v1/account/ann/mailboxes", Some(&token)).await;
    let paths: Vec<&str> = boxes["mailboxes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["path"].as_str().unwrap())
        .collect();
    assert!(
        paths.contains(&"New") && !paths.contains(&"Old"),
        "{paths:?}"
    );
    let (status, unsub) = server
        .send(
            Method::PUT,
            "/v1/account/ann/mailbox",
            Some(&token),
            Some(json!({"path": "New", "subscribed": false})),
        )
        .await;
    assert_eq!(
        (status, unsub),
        (200, json!({"path": "New", "subscribed": false}))
    );
    let (_, boxes) = server.get("/v1/account/ann/mailboxes", Some(&token)).await;
    let new = boxes["mailboxes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["path"] == "New")
        .cloned()
        .unwrap();
    assert_eq!(new["subscribed"], false);

    // verifyAccount lists folders with their special use when asked.
    let (status, verified) = server
        .send(Method::POST, "/v1/verifyAccount", Some(&token), Some(json!({"mailboxes": true,
            "imap": {"host": "127.0.0.1", "port": imap, "secure": false, "auth": {"user": user, "pass": "pass"}}})))
        .await;
    assert_eq!(
        (status, verified["imap"]["success"].clone()),
        (200, json!(true))
    );
    let sent_box = verified["mailboxes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["path"] == "Sent")
        .cloned()
        .unwrap();
    assert_eq!(sent_box["specialUse"], "\\Sent");
    let (status, _) = server
        .send(Method::POST, "/v1/verifyAccount", Some(&token), None)
        .await;
    assert_eq!(status, 400);
}

/// A TCP proxy to Dovecot that counts concurrent connections and can hold back the server's
/// answers (so sessions stay busy).
#[derive(Clone, Default)]
struct Proxy {
    open: Arc<AtomicUsize>,
    most: Arc<AtomicUsize>,
    frozen: Arc<AtomicBool>,
}

impl Proxy {
    async fn start(&self, target: u16) -> u16 {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let this = self.clone();
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let now = this.open.fetch_add(1, Ordering::SeqCst) + 1;
                this.most.fetch_max(now, Ordering::SeqCst);
                let this = this.clone();
                tokio::spawn(async move {
                    let server = tokio::net::TcpStream::connect(("127.0.0.1", target))
                        .await
                        .unwrap();
                    let (mut cr, mut cw) = client.into_split();
                    let (mut sr, mut sw) = server.into_split();
                    let up = tokio::spawn(async move { tokio::io::copy(&mut cr, &mut sw).await });
                    let frozen = this.frozen.clone();
                    let mut buf = vec![0u8; 65536];
                    loop {
                        let n = match sr.read(&mut buf).await {
                            Ok(0) | Err(_) => break,
                            Ok(n) => n,
                        };
                        while frozen.load(Ordering::SeqCst) {
                            tokio::time::sleep(Duration::from_millis(10)).await;
                        }
                        if cw.write_all(&buf[..n]).await.is_err() {
                            break;
                        }
                    }
                    up.abort();
                    this.open.fetch_sub(1, Ordering::SeqCst);
                });
            }
        });
        port
    }
}

#[tokio::test]
async fn connections_per_account_stay_under_the_cap_and_waits_end_in_504() {
    let (imap, _) = mail_ports();
    let proxy = Proxy::default();
    let port = proxy.start(imap).await;
    let env = Env::new("mail-cap").var("EENGINE_IMAP_MAX_CONNECTIONS", "4");
    let user = format!("{}@example.com", env.prefix);
    let token = env.issue(&[]);
    let server = env.start(&[]).await;
    server
        .send(
            Method::POST,
            "/v1/account",
            Some(&token),
            Some(payload("cap", &user, port)),
        )
        .await;
    connected(&server, &token, "cap").await;
    send_mail("bob@example.com", &user, &HTML_MAIL.replace("{to}", &user));
    let id = new_message(&env, "cap", "pictures").await["id"]
        .as_str()
        .unwrap()
        .to_string();

    // Thirty calls at once: all answered, queued on at most four connections.
    let calls: Vec<_> = (0..30)
        .map(|i| {
            let (http, url, token) = (
                server.http.clone(),
                server.url(&format!(
                    "/v1/account/cap/message/{id}?maxBytes={}",
                    100 + i
                )),
                token.clone(),
            );
            tokio::spawn(async move {
                http.get(url)
                    .bearer_auth(token)
                    .send()
                    .await
                    .unwrap()
                    .status()
                    .as_u16()
            })
        })
        .collect();
    for c in calls {
        assert_eq!(c.await.unwrap(), 200);
    }
    assert!(
        proxy.most.load(Ordering::SeqCst) <= 4,
        "{} connections",
        proxy.most.load(Ordering::SeqCst)
    );

    // With every session busy, a call that will wait 100 ms gets EmailEngine's 504.
    proxy.frozen.store(true, Ordering::SeqCst);
    let busy: Vec<_> = (0..3)
        .map(|_| {
            let (http, url, token) = (
                server.http.clone(),
                server.url(&format!("/v1/account/cap/message/{id}")),
                token.clone(),
            );
            tokio::spawn(async move {
                http.get(url)
                    .bearer_auth(token)
                    .send()
                    .await
                    .unwrap()
                    .status()
                    .as_u16()
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let started = std::time::Instant::now();
    let r = server
        .http
        .get(server.url(&format!("/v1/account/cap/message/{id}")))
        .bearer_auth(&token)
        .header("x-ee-timeout", "100")
        .send()
        .await
        .unwrap();
    let (status, body) = into_json(r).await;
    assert_eq!(status, 504, "{body}");
    assert_eq!(
        body,
        json!({"statusCode": 504, "error": "Gateway Timeout", "message": "Timeout waiting for command response", "code": "Timeout"})
    );
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    proxy.frozen.store(false, Ordering::SeqCst);
    for c in busy {
        assert_eq!(c.await.unwrap(), 200);
    }
    assert!(
        proxy.most.load(Ordering::SeqCst) <= 4,
        "{} connections",
        proxy.most.load(Ordering::SeqCst)
    );
}

#[tokio::test]
async fn messages_of_one_conversation_share_a_thread_id() {
    use base64::Engine as _;
    let (imap, _) = mail_ports();
    let env = Env::new("mail-threads");
    let user = format!("{}@example.com", env.prefix);
    let token = env.issue(&[]);
    let server = env.start(&[]).await;
    let (status, body) = server
        .send(
            Method::POST,
            "/v1/account",
            Some(&token),
            Some(payload("th", &user, imap)),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    connected(&server, &token, "th").await;
    let raw = |id: &str, parents: &str, subject: &str| {
        base64::engine::general_purpose::STANDARD.encode(format!(
            "From: a@example.com\r\nTo: {user}\r\nSubject: {subject}\r\nMessage-ID: <{id}>\r\n{parents}\r\nbody\r\n"
        ))
    };
    for (path, id, parents, subject) in [
        ("INBOX", "root@t.example", "", "start"),
        (
            "INBOX",
            "reply@t.example",
            "In-Reply-To: <root@t.example>\r\nReferences: <root@t.example>\r\n",
            "Re: start",
        ),
        ("INBOX", "other@t.example", "", "unrelated"),
        // Deeper in the conversation and in another folder: References starts at the root.
        (
            "Drafts",
            "draft@t.example",
            "In-Reply-To: <reply@t.example>\r\nReferences: <root@t.example> <reply@t.example>\r\n",
            "Re: Re: start",
        ),
    ] {
        let (status, up) = server
            .send(
                Method::POST,
                "/v1/account/th/message",
                Some(&token),
                Some(json!({"path": path, "raw": raw(id, parents, subject)})),
            )
            .await;
        assert_eq!(status, 200, "{up}");
    }
    let threads = |list: &Value| -> std::collections::HashMap<String, String> {
        list["messages"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| {
                (
                    m["subject"].as_str().unwrap().to_string(),
                    m["threadId"].as_str().unwrap_or("").to_string(),
                )
            })
            .collect()
    };
    let (_, inbox) = server
        .get("/v1/account/th/messages?path=INBOX", Some(&token))
        .await;
    let inbox = threads(&inbox);
    let (_, drafts) = server
        .get("/v1/account/th/messages?path=Drafts", Some(&token))
        .await;
    let drafts = threads(&drafts);
    let root = inbox["start"].clone();
    assert!(
        root.len() == 17
            && root.starts_with('T')
            && root[1..].chars().all(|c| c.is_ascii_hexdigit()),
        "{root}"
    );
    assert_eq!(inbox["Re: start"], root);
    assert_eq!(
        drafts["Re: Re: start"], root,
        "the same thread in another folder"
    );
    assert_ne!(inbox["unrelated"], root);
    assert!(!inbox["unrelated"].is_empty());
    // The webhook and the details carry it too.
    let event = new_message(&env, "th", "Re: start").await;
    assert_eq!(event["threadId"], root.as_str());
    let (status, details) = server
        .get(
            &format!("/v1/account/th/message/{}", event["id"].as_str().unwrap()),
            Some(&token),
        )
        .await;
    assert_eq!(status, 200, "{details}");
    assert_eq!(details["threadId"], root.as_str());
}
