//! Accounts, sync and the message API end to end: a real Dovecot, mail delivered by a real
//! Postfix over SMTP, everything observed over HTTP and in the event stream.

mod common;

use std::time::{Duration, Instant};

use common::*;
use reqwest::Method;
use serde_json::{Value, json};

fn account_payload(account: &str, user: &str, pass: &str) -> Value {
    let (imap, _) = mail_ports();
    json!({
        "account": account, "name": format!("User {account}"), "email": user,
        "imap": {"host": "127.0.0.1", "port": imap, "secure": false, "auth": {"user": user, "pass": pass}}
    })
}

async fn wait_state(server: &Server, token: &str, account: &str, want: &str) -> Value {
    wait_for(&format!("{account} to reach {want}"), 20, || async {
        let (status, body) = server
            .get(&format!("/v1/account/{account}"), Some(token))
            .await;
        (status == 200 && body["state"] == want).then_some(body)
    })
    .await
}

fn message_with_attachment(to: &str, subject: &str) -> String {
    format!(
        "From: Bob <bob@example.com>\r\nTo: {to}\r\nSubject: {subject}\r\nMessage-ID: <{subject}@example.com>\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=XX\r\n\r\n--XX\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nHello from Bob\r\n--XX\r\nContent-Type: application/octet-stream; name=data.bin\r\nContent-Disposition: attachment; filename=data.bin\r\nContent-Transfer-Encoding: base64\r\n\r\nAAECAwQ=\r\n--XX--\r\n"
    )
}

#[tokio::test]
async fn deliver_list_read_flag_move_delete() {
    let env = Env::new("imap-flow");
    let user = format!("{}@example.com", env.prefix);
    let token = env.issue(&[]);
    let server = env.start(&[]).await;

    let (status, body) = server
        .send(
            Method::POST,
            "/v1/account",
            Some(&token),
            Some(account_payload("ann", &user, "pass")),
        )
        .await;
    assert_eq!(
        (status, body),
        (200, json!({"account": "ann", "state": "new"}))
    );
    let info = wait_state(&server, &token, "ann", "connected").await;
    assert_eq!(info["imap"]["auth"]["pass"], "******");
    assert_eq!(info["lastError"], Value::Null);

    let sent_at = Instant::now();
    send_mail(
        "bob@example.com",
        &user,
        &message_with_attachment(&user, "first"),
    );
    let new = wait_for("messageNew", 10, || async {
        env.events_of("ann", "messageNew").await.into_iter().next()
    })
    .await;
    let latency = sent_at.elapsed();
    eprintln!("SMTP hand-off to messageNew: {latency:?}");
    let data = &new.payload["data"];
    assert_eq!(new.payload["event"], "messageNew");
    assert_eq!(new.payload["path"], "INBOX");
    assert_eq!(new.payload["specialUse"], "\\Inbox");
    assert_eq!(data["subject"], "first");
    assert_eq!(
        data["from"],
        json!({"name": "Bob", "address": "bob@example.com"})
    );
    let id = data["id"].as_str().unwrap().to_string();
    // A receiver fetches the text and the attachment by the ids in the webhook.
    assert!(data["text"]["id"].is_string(), "{data}");
    assert!(data["text"]["encodedSize"]["plain"].as_u64().unwrap() > 0);
    assert_eq!(data["attachments"][0]["filename"], "data.bin");
    let text_id = data["text"]["id"].as_str().unwrap();
    let (status, text) = server
        .get(&format!("/v1/account/ann/text/{text_id}"), Some(&token))
        .await;
    assert_eq!(status, 200, "{text}");
    assert_eq!(
        text["plain"].as_str().map(str::trim),
        Some("Hello from Bob")
    );
    let att = data["attachments"][0]["id"].as_str().unwrap();
    let r = server
        .http
        .get(server.url(&format!("/v1/account/ann/attachment/{att}")))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);

    let (status, list) = server
        .get("/v1/account/ann/messages?path=INBOX", Some(&token))
        .await;
    assert_eq!(status, 200, "{list}");
    assert_eq!(list["total"], 1);
    assert_eq!(list["messages"][0]["id"], id.as_str());

    let (status, msg) = server
        .get(&format!("/v1/account/ann/message/{id}"), Some(&token))
        .await;
    assert_eq!(status, 200, "{msg}");
    assert_eq!(
        msg["text"]["plain"].as_str().map(str::trim),
        Some("Hello from Bob")
    );
    assert_eq!(msg["attachments"][0]["filename"], "data.bin");
    let attachment = msg["attachments"][0]["id"].as_str().unwrap();
    let r = server
        .http
        .get(server.url(&format!("/v1/account/ann/attachment/{attachment}")))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(
        r.headers()["content-disposition"],
        "attachment; filename=\"data.bin\"; filename*=utf-8''data.bin"
    );
    assert_eq!(r.bytes().await.unwrap().as_ref(), &[0u8, 1, 2, 3, 4]);
    let r = server
        .http
        .get(server.url(&format!("/v1/account/ann/message/{id}/source")))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["content-type"], "message/rfc822");
    assert!(r.text().await.unwrap().contains("Subject: first"));
    let text_id = msg["text"]["id"].as_str().unwrap();
    let (_, text) = server
        .get(
            &format!("/v1/account/ann/text/{text_id}?maxBytes=5"),
            Some(&token),
        )
        .await;
    assert_eq!(
        (text["plain"].clone(), text["hasMore"].clone()),
        (json!("Hello"), json!(true))
    );

    // Flags: the change is made on the server and reported as messageUpdated.
    let (status, body) = server
        .send(
            Method::PUT,
            &format!("/v1/account/ann/message/{id}"),
            Some(&token),
            Some(json!({"flags": {"add": ["\\Flagged", "\\Seen"]}})),
        )
        .await;
    assert_eq!((status, body), (200, json!({"flags": {"add": true}})));
    server
        .send(Method::PUT, "/v1/account/ann/sync", Some(&token), None)
        .await;
    let updated = wait_for("messageUpdated", 10, || async {
        env.events_of("ann", "messageUpdated")
            .await
            .into_iter()
            .next()
    })
    .await;
    let mut added: Vec<String> =
        serde_json::from_value(updated.payload["data"]["changes"]["flags"]["added"].clone())
            .unwrap();
    added.sort();
    assert_eq!(added, ["\\Flagged", "\\Seen"]);
    let (_, search) = server
        .send(
            Method::POST,
            "/v1/account/ann/search?path=INBOX",
            Some(&token),
            Some(json!({"search": {"flagged": true, "subject": "first"}})),
        )
        .await;
    assert_eq!(search["total"], 1, "{search}");
    let (_, none) = server
        .send(
            Method::POST,
            "/v1/account/ann/search?path=INBOX",
            Some(&token),
            Some(json!({"search": {"seen": false}})),
        )
        .await;
    assert_eq!(none["total"], 0);

    // Delete moves to Trash; deleting there removes it for good.
    let (status, body) = server
        .send(
            Method::DELETE,
            &format!("/v1/account/ann/message/{id}"),
            Some(&token),
            None,
        )
        .await;
    assert_eq!(
        (status, body),
        (
            200,
            json!({"deleted": false, "moved": {"destination": "Trash"}})
        )
    );
    let (_, trash) = server
        .get("/v1/account/ann/messages?path=Trash", Some(&token))
        .await;
    assert_eq!(trash["total"], 1);
    let trashed = trash["messages"][0]["id"].as_str().unwrap().to_string();
    let (_, body) = server
        .send(
            Method::DELETE,
            &format!("/v1/account/ann/message/{trashed}"),
            Some(&token),
            None,
        )
        .await;
    assert_eq!(body, json!({"deleted": true}));
    let (_, trash) = server
        .get("/v1/account/ann/messages?path=Trash", Some(&token))
        .await;
    assert_eq!(trash["total"], 0);
    let deleted = wait_for("messageDeleted", 10, || async {
        env.events_of("ann", "messageDeleted")
            .await
            .into_iter()
            .find(|e| e.payload["data"]["id"] == id.as_str())
    })
    .await;
    assert_eq!(deleted.payload["path"], "INBOX");

    // Mailboxes with counters; create and remove one.
    let (_, boxes) = server
        .get("/v1/account/ann/mailboxes?counters=true", Some(&token))
        .await;
    let paths: Vec<&str> = boxes["mailboxes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["path"].as_str().unwrap())
        .collect();
    assert_eq!(paths[0], "INBOX");
    assert!(
        paths.contains(&"Trash") && paths.contains(&"Sent"),
        "{paths:?}"
    );
    let (status, body) = server
        .send(
            Method::POST,
            "/v1/account/ann/mailbox",
            Some(&token),
            Some(json!({"path": "Projects"})),
        )
        .await;
    assert_eq!((status, body["created"].clone()), (200, json!(true)));
    let (status, _) = server
        .send(
            Method::DELETE,
            "/v1/account/ann/mailbox?path=Projects",
            Some(&token),
            None,
        )
        .await;
    assert_eq!(status, 200);

    // Removing the account removes its data and its bound tokens.
    let bound = env.issue(&["-a", "ann", "-s", "api"]);
    let (status, body) = server
        .send(Method::DELETE, "/v1/account/ann", Some(&token), None)
        .await;
    assert_eq!(
        (status, body),
        (200, json!({"account": "ann", "deleted": true}))
    );
    assert_eq!(server.get("/v1/account/ann", Some(&token)).await.0, 404);
    assert_eq!(
        server
            .get("/v1/account/ann/messages?path=INBOX", Some(&bound))
            .await
            .0,
        401
    );
}

#[tokio::test]
async fn restarts_never_repeat_and_never_miss_new_mail() {
    let env = Env::new("imap-restart");
    let user = format!("{}@example.com", env.prefix);
    let token = env.issue(&[]);
    // Mail that was there before the account was added is indexed, not reported.
    send_mail(
        "bob@example.com",
        &user,
        &message_with_attachment(&user, "old"),
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    let server = env.start(&[]).await;
    server
        .send(
            Method::POST,
            "/v1/account",
            Some(&token),
            Some(account_payload("ann", &user, "pass")),
        )
        .await;
    wait_state(&server, &token, "ann", "connected").await;
    send_mail(
        "bob@example.com",
        &user,
        &message_with_attachment(&user, "live"),
    );
    wait_for("live messageNew", 10, || async {
        env.events_of("ann", "messageNew")
            .await
            .into_iter()
            .find(|e| e.payload["data"]["subject"] == "live")
    })
    .await;
    server.stop();

    send_mail(
        "bob@example.com",
        &user,
        &message_with_attachment(&user, "while-down"),
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    let server = env.start(&[]).await;
    wait_state(&server, &token, "ann", "connected").await;
    wait_for("while-down messageNew", 10, || async {
        env.events_of("ann", "messageNew")
            .await
            .into_iter()
            .find(|e| e.payload["data"]["subject"] == "while-down")
    })
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let subjects: Vec<String> = env
        .events_of("ann", "messageNew")
        .await
        .iter()
        .map(|e| {
            e.payload["data"]["subject"]
                .as_str()
                .unwrap_or_default()
                .to_string()
        })
        .collect();
    assert_eq!(
        subjects,
        ["live", "while-down"],
        "each new message is reported exactly once"
    );
    let (_, list) = server
        .get("/v1/account/ann/messages?path=INBOX", Some(&token))
        .await;
    assert_eq!(list["total"], 3);
}

#[tokio::test]
async fn wrong_password_is_an_authentication_error() {
    let env = Env::new("imap-badpass");
    let user = format!("{}@example.com", env.prefix);
    let token = env.issue(&[]);
    let server = env.start(&[]).await;
    server
        .send(
            Method::POST,
            "/v1/account",
            Some(&token),
            Some(account_payload("eve", &user, "wrong")),
        )
        .await;
    let info = wait_state(&server, &token, "eve", "authenticationError").await;
    assert!(
        info["lastError"]["response"]
            .as_str()
            .is_some_and(|r| !r.is_empty()),
        "{info}"
    );
    let events = env.events_of("eve", "authenticationError").await;
    assert_eq!(events.len(), 1);
    let (status, body) = server
        .get("/v1/account/eve/messages?path=INBOX", Some(&token))
        .await;
    assert_eq!(
        (status, body["code"].clone()),
        (503, json!("AuthenticationFails"))
    );
    // A closed port is a connection error, told apart from a refused login.
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut payload = account_payload("gus", &user, "pass");
    payload["imap"]["port"] = json!(closed);
    server
        .send(Method::POST, "/v1/account", Some(&token), Some(payload))
        .await;
    wait_state(&server, &token, "gus", "connectError").await;
    let (_, stats) = server.get("/v1/stats", Some(&token)).await;
    assert_eq!(stats["connections"]["authenticationError"], 1);
    assert_eq!(stats["connections"]["connectError"], 1);
}

#[tokio::test]
async fn secrets_are_encrypted_at_rest_and_accounts_listed() {
    let env = Env::new("imap-secret").var("EENGINE_SECRET", "account-secret");
    let user = format!("{}@example.com", env.prefix);
    let token = env.issue(&[]);
    let server = env.start(&[]).await;
    server
        .send(
            Method::POST,
            "/v1/account",
            Some(&token),
            Some(account_payload("ann", &user, "pass")),
        )
        .await;
    wait_state(&server, &token, "ann", "connected").await;
    let raw = env
        .store()
        .await
        .account_field("ann", "imap")
        .await
        .unwrap()
        .unwrap();
    let imap: Value = serde_json::from_str(&raw).unwrap();
    assert!(
        imap["auth"]["pass"]
            .as_str()
            .unwrap()
            .starts_with("$wd01$aes-256-gcm$"),
        "{raw}"
    );
    let (_, list) = server.get("/v1/accounts?query=ANN", Some(&token)).await;
    assert_eq!(list["total"], 1);
    assert_eq!(list["accounts"][0]["state"], "connected");
    let (status, body) = server
        .send(
            Method::POST,
            "/v1/account",
            Some(&token),
            Some(json!({"name": "x"})),
        )
        .await;
    assert_eq!(
        (status, body["message"].clone()),
        (400, json!("Invalid input"))
    );
}

#[tokio::test]
async fn bound_tokens_reach_only_their_account_on_every_route() {
    let env = Env::new("imap-bound");
    let token = env.issue(&[]);
    let bound = env.issue(&["-a", "mine", "-s", "api"]);
    let server = env.start(&[]).await;
    let (_, doc) = server.get("/swagger.json", None).await;
    let mut checked = 0;
    for (path, item) in doc["paths"].as_object().unwrap() {
        if !path.contains("{account}") {
            continue;
        }
        for method in item.as_object().unwrap().keys() {
            let url = path.replace("{account}", "theirs").replace(['{', '}'], "");
            let m = Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
            let (status, body) = server.send(m, &url, Some(&bound), Some(json!({}))).await;
            assert_eq!(
                (status, &body["message"]),
                (403, &json!("Unauthorized account")),
                "{method} {url}"
            );
            checked += 1;
        }
    }
    assert!(checked >= 15, "only {checked} routes checked");
    // Its own account is reachable (404 because it does not exist, not 403).
    let (status, _) = server.get("/v1/account/mine", Some(&bound)).await;
    assert_eq!(status, 404);
    let _ = token;
}

#[tokio::test]
async fn upload_and_bulk_operations() {
    let env = Env::new("imap-bulk");
    let user = format!("{}@example.com", env.prefix);
    let token = env.issue(&[]);
    let server = env.start(&[]).await;
    server
        .send(
            Method::POST,
            "/v1/account",
            Some(&token),
            Some(account_payload("ann", &user, "pass")),
        )
        .await;
    wait_state(&server, &token, "ann", "connected").await;

    let (status, up) = server.send(Method::POST, "/v1/account/ann/message", Some(&token), Some(json!({
        "path": "INBOX", "flags": ["\\Seen"],
        "from": {"name": "Ann", "address": &user}, "to": [{"address": "bob@example.com"}],
        "subject": "uploaded", "text": "composed body",
        "attachments": [{"filename": "n.txt", "content": "bm90ZQ==", "contentType": "text/plain"}]
    }))).await;
    assert_eq!(status, 200, "{up}");
    let id = up["id"]
        .as_str()
        .expect("id of the uploaded message")
        .to_string();
    let (_, msg) = server
        .get(&format!("/v1/account/ann/message/{id}"), Some(&token))
        .await;
    assert_eq!(msg["subject"], "uploaded");
    assert_eq!(msg["unseen"], false);
    assert_eq!(msg["attachments"][0]["filename"], "n.txt");
    let att = msg["attachments"][0]["id"].as_str().unwrap();
    let r = server
        .http
        .get(server.url(&format!("/v1/account/ann/attachment/{att}")))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["content-type"], "text/plain");
    assert_eq!(r.text().await.unwrap(), "note");
    assert_eq!(msg["messageId"], up["messageId"]);
    let raw = "From: x@example.com\nSubject: raw upload\n\nraw body\n";
    let (status, _) = server
        .send(
            Method::POST,
            "/v1/account/ann/message",
            Some(&token),
            Some(json!({"path": "INBOX", "raw": raw})),
        )
        .await;
    assert_eq!(status, 200);

    let (status, body) = server
        .send(
            Method::PUT,
            "/v1/account/ann/messages?path=INBOX",
            Some(&token),
            Some(json!({"search": {"seen": false}, "update": {"flags": {"add": ["\\Flagged"]}}})),
        )
        .await;
    assert_eq!((status, body), (200, json!({"flags": {"add": true}})));
    let (_, flagged) = server
        .send(
            Method::POST,
            "/v1/account/ann/search?path=INBOX",
            Some(&token),
            Some(json!({"search": {"flagged": true}})),
        )
        .await;
    assert_eq!(flagged["total"], 1);
    assert_eq!(flagged["messages"][0]["subject"], "raw upload");

    let (status, body) = server
        .send(
            Method::PUT,
            "/v1/account/ann/messages/move?path=INBOX",
            Some(&token),
            Some(json!({"search": {"subject": "uploaded"}, "path": "Junk"})),
        )
        .await;
    assert_eq!(
        (status, body),
        (200, json!({"path": "Junk", "moved": true}))
    );
    let (_, junk) = server
        .get("/v1/account/ann/messages?path=Junk", Some(&token))
        .await;
    assert_eq!(junk["total"], 1);
    let (status, body) = server
        .send(
            Method::PUT,
            "/v1/account/ann/messages/delete?path=INBOX&force=true",
            Some(&token),
            Some(json!({"search": {}})),
        )
        .await;
    assert_eq!((status, body), (200, json!({"deleted": true})));
    let (_, inbox) = server
        .get("/v1/account/ann/messages?path=INBOX", Some(&token))
        .await;
    assert_eq!(inbox["total"], 0);
}

#[tokio::test]
async fn subconnections_watch_extra_folders() {
    let env = Env::new("imap-subconn");
    let user = format!("{}@example.com", env.prefix);
    let token = env.issue(&[]);
    let server = env.start(&[]).await;
    let mut payload = account_payload("ann", &user, "pass");
    payload["subconnections"] = json!(["Sent"]);
    server
        .send(Method::POST, "/v1/account", Some(&token), Some(payload))
        .await;
    wait_state(&server, &token, "ann", "connected").await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let raw = "From: x@example.com\nSubject: into sent\n\nbody\n";
    let (status, _) = server
        .send(
            Method::POST,
            "/v1/account/ann/message",
            Some(&token),
            Some(json!({"path": "Sent", "raw": raw})),
        )
        .await;
    assert_eq!(status, 200);
    let event = wait_for("messageNew in Sent", 10, || async {
        env.events_of("ann", "messageNew")
            .await
            .into_iter()
            .find(|e| e.payload["path"] == "Sent")
    })
    .await;
    assert_eq!(event.payload["specialUse"], "\\Sent");
    assert_eq!(event.payload["data"]["subject"], "into sent");
}

#[tokio::test]
async fn message_new_carries_text_and_headers_when_asked() {
    let env = Env::new("imap-notify");
    let user = format!("{}@example.com", env.prefix);
    let token = env.issue(&[]);
    let server = env.start(&[]).await;
    let (status, _) = server
        .send(
            Method::POST,
            "/v1/settings",
            Some(&token),
            Some(json!({
                "notifyText": true, "notifyTextSize": 5, "notifyHeaders": ["Message-ID", "X-Custom"]
            })),
        )
        .await;
    assert_eq!(status, 200);
    server
        .send(
            Method::POST,
            "/v1/account",
            Some(&token),
            Some(account_payload("ann", &user, "pass")),
        )
        .await;
    wait_state(&server, &token, "ann", "connected").await;
    send_mail(
        "bob@example.com",
        &user,
        &format!(
            "From: bob@example.com\r\nTo: {user}\r\nSubject: notify\r\nX-Custom: yes\r\nMessage-ID: <n1@example.com>\r\n\r\nHello there\r\n"
        ),
    );
    let event = wait_for("messageNew", 10, || async {
        env.events_of("ann", "messageNew").await.into_iter().next()
    })
    .await;
    let data = &event.payload["data"];
    assert_eq!(data["text"]["plain"], "Hello");
    assert_eq!(data["text"]["hasMore"], true);
    assert_eq!(data["headers"]["x-custom"], json!(["yes"]));
    assert_eq!(data["headers"]["message-id"], json!(["<n1@example.com>"]));
    assert!(data["headers"].get("subject").is_none());
}

#[tokio::test]
async fn large_sources_stream_in_chunks() {
    let env = Env::new("imap-large");
    let user = format!("{}@example.com", env.prefix);
    let token = env.issue(&[]);
    let server = env.start(&["--api.maxBodySize=10M"]).await;
    server
        .send(
            Method::POST,
            "/v1/account",
            Some(&token),
            Some(account_payload("ann", &user, "pass")),
        )
        .await;
    wait_state(&server, &token, "ann", "connected").await;
    let line = "0123456789abcdefghijklmnopqrstuvwxyz0123456789abcdefghijklmnopqrstuvwxyz\r\n";
    let raw = format!(
        "From: x@example.com\r\nSubject: big\r\n\r\n{}",
        line.repeat(35_000)
    );
    let (status, up) = server
        .send(
            Method::POST,
            "/v1/account/ann/message",
            Some(&token),
            Some(json!({"path": "INBOX", "raw": raw})),
        )
        .await;
    assert_eq!(status, 200, "{up}");
    assert!(raw.len() > 2_500_000);
    let id = up["id"].as_str().unwrap();
    let r = server
        .http
        .get(server.url(&format!("/v1/account/ann/message/{id}/source")))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let body = r.bytes().await.unwrap();
    assert_eq!(body.len(), raw.len(), "every chunk arrives");
    assert_eq!(body.as_ref(), raw.as_bytes());
    let (status, _) = server
        .get("/v1/account/ann/message/AAAAAQAAA-c/source", Some(&token))
        .await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn notify_from_limits_what_is_reported() {
    let env = Env::new("imap-notifyfrom");
    let user = format!("{}@example.com", env.prefix);
    let token = env.issue(&[]);
    let server = env.start(&[]).await;
    let mut payload = account_payload("ann", &user, "pass");
    payload["notifyFrom"] = json!("2100-01-01T00:00:00Z");
    server
        .send(Method::POST, "/v1/account", Some(&token), Some(payload))
        .await;
    wait_state(&server, &token, "ann", "connected").await;
    send_mail(
        "bob@example.com",
        &user,
        "Subject: before notifyFrom\r\n\r\nx\r\n",
    );
    wait_for("the message indexed", 10, || async {
        let (_, list) = server
            .get("/v1/account/ann/messages?path=INBOX", Some(&token))
            .await;
        (list["total"] == 1).then_some(())
    })
    .await;
    tokio::time::sleep(std::time::Duration::from_millis(800)).await;
    assert!(
        env.events_of("ann", "messageNew").await.is_empty(),
        "not reported before notifyFrom"
    );
    // Moving notifyFrom back reports later mail again.
    let (status, _) = server
        .send(
            Method::PUT,
            "/v1/account/ann",
            Some(&token),
            Some(json!({"notifyFrom": null})),
        )
        .await;
    assert_eq!(status, 200);
    send_mail("bob@example.com", &user, "Subject: after\r\n\r\nx\r\n");
    wait_for("messageNew after notifyFrom cleared", 10, || async {
        env.events_of("ann", "messageNew")
            .await
            .into_iter()
            .find(|e| e.payload["data"]["subject"] == "after")
    })
    .await;
}

/// Runs IMAP commands on a fresh connection to the test Dovecot (outside the server).
fn imap_commands(user: &str, commands: &[&str]) {
    use std::io::{BufRead, BufReader, Write};
    let (imap, _) = mail_ports();
    let stream = std::net::TcpStream::connect(("127.0.0.1", imap)).unwrap();
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut writer = stream;
    let mut line = String::new();
    reader.read_line(&mut line).unwrap();
    let all: Vec<String> = std::iter::once(format!("LOGIN {user} pass"))
        .chain(commands.iter().map(|c| c.to_string()))
        .chain(std::iter::once("LOGOUT".to_string()))
        .collect();
    for (i, command) in all.iter().enumerate() {
        let tag = format!("t{i}");
        writer
            .write_all(format!("{tag} {command}\r\n").as_bytes())
            .unwrap();
        loop {
            line.clear();
            reader.read_line(&mut line).unwrap();
            if line.starts_with(&tag) {
                assert!(line.starts_with(&format!("{tag} OK")), "{command}: {line}");
                break;
            }
        }
    }
}

#[tokio::test]
async fn a_recreated_folder_is_reset_and_changes_are_reported() {
    let env = Env::new("imap-reset");
    let user = format!("{}@example.com", env.prefix);
    let token = env.issue(&[]);
    let server = env.start(&[]).await;
    server
        .send(
            Method::POST,
            "/v1/account",
            Some(&token),
            Some(account_payload("ann", &user, "pass")),
        )
        .await;
    wait_state(&server, &token, "ann", "connected").await;
    imap_commands(&user, &["CREATE Projects"]);
    server
        .send(Method::PUT, "/v1/account/ann/sync", Some(&token), None)
        .await;
    let created = wait_for("mailboxNew", 10, || async {
        env.events_of("ann", "mailboxNew").await.into_iter().next()
    })
    .await;
    assert_eq!(created.payload["path"], "Projects");
    // Wait until the folder itself has been synced (its status stored), not just listed.
    wait_for("Projects synced", 10, || async {
        let (_, boxes) = server.get("/v1/account/ann/mailboxes", Some(&token)).await;
        boxes["mailboxes"]
            .as_array()?
            .iter()
            .any(|m| m["path"] == "Projects" && m["uidNext"].is_u64())
            .then_some(())
    })
    .await;
    // Deleted and created again between two syncs: same path, new UIDVALIDITY.
    imap_commands(&user, &["DELETE Projects", "CREATE Projects"]);
    server
        .send(Method::PUT, "/v1/account/ann/sync", Some(&token), None)
        .await;
    let reset = wait_for("mailboxReset", 10, || async {
        env.events_of("ann", "mailboxReset")
            .await
            .into_iter()
            .next()
    })
    .await;
    assert_eq!(reset.payload["path"], "Projects");
    assert_ne!(
        reset.payload["data"]["uidValidity"],
        reset.payload["data"]["prevUidValidity"]
    );
    imap_commands(&user, &["DELETE Projects"]);
    server
        .send(Method::PUT, "/v1/account/ann/sync", Some(&token), None)
        .await;
    wait_for("mailboxDeleted", 10, || async {
        env.events_of("ann", "mailboxDeleted")
            .await
            .into_iter()
            .next()
    })
    .await;
}

/// `logs: true` keeps the account's IMAP protocol log: NDJSON lines from both sides, the
/// LOGIN password hidden, at most `logs.maxLogLines` lines.
#[tokio::test]
async fn protocol_logs_are_kept_redacted_and_bounded() {
    let env = Env::new("imap-logs");
    let user = format!("{}@example.com", env.prefix);
    let token = env.issue(&[]);
    let server = env.start(&[]).await;
    let mut payload = account_payload("ann", &user, "pass");
    payload["logs"] = json!(true);
    let (status, _) = server
        .send(Method::POST, "/v1/account", Some(&token), Some(payload))
        .await;
    assert_eq!(status, 200);
    wait_state(&server, &token, "ann", "connected").await;
    let fetch = || async {
        let r = server
            .http
            .get(server.url("/v1/logs/ann"))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        assert_eq!(
            r.headers()["content-disposition"],
            "attachment; filename=\"logs.ann.txt\""
        );
        r.text().await.unwrap()
    };
    let text = wait_for("the login in the protocol log", 10, || async {
        let t = fetch().await;
        t.contains(" LOGIN ").then_some(t)
    })
    .await;
    let lines: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let login = lines
        .iter()
        .find(|l| l["src"] == "c" && l["msg"].as_str().unwrap().contains(" LOGIN "))
        .unwrap_or_else(|| panic!("no LOGIN line: {text}"));
    assert!(
        login["msg"]
            .as_str()
            .unwrap()
            .ends_with("\"(* value hidden *)\""),
        "{login}"
    );
    assert!(!text.contains("\"pass\""), "password leaked: {text}");
    assert!(!text.contains(&token));
    assert!(lines.iter().any(|l| l["src"] == "s"));
    eprintln!(
        "protocol log after connect and sync: {} lines, {} bytes; {}",
        lines.len(),
        text.len(),
        login["msg"]
    );
    for l in &lines {
        assert!(
            l["t"].is_i64() && l["cid"].is_string() && l["lo"].is_u64(),
            "{l}"
        );
    }

    // Bounded: with `maxLogLines: 5` a reconnect leaves at most five lines.
    let (status, _) = server
        .send(
            Method::POST,
            "/v1/settings",
            Some(&token),
            Some(json!({"logs": {"maxLogLines": 5}})),
        )
        .await;
    assert_eq!(status, 200);
    let (status, _) = server
        .send(
            Method::PUT,
            "/v1/account/ann/reconnect",
            Some(&token),
            Some(json!({"reconnect": true})),
        )
        .await;
    assert_eq!(status, 200);
    tokio::time::sleep(Duration::from_secs(3)).await;
    let text = fetch().await;
    assert!(text.lines().count() <= 5, "{text}");

    let r = server
        .http
        .get(server.url("/v1/logs/nobody"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.text().await.unwrap(), "No logs found for nobody\n");
}

fn keys(v: &Value) -> Vec<String> {
    let mut k: Vec<String> = v
        .as_object()
        .map(|o| o.keys().cloned().collect())
        .unwrap_or_default();
    k.sort();
    k
}

/// Every event one account's life emits, compared field by field with EmailEngine's envelope
/// and `data` (spec §9.1–§9.2): account events, the connection events, and messageNew,
/// messageUpdated and messageDeleted with the fields receivers read.
#[tokio::test]
async fn every_event_has_emailengine_fields() {
    let env = Env::new("imap-events");
    let user = format!("{}@example.com", env.prefix);
    let token = env.issue(&[]);
    let server = env.start(&[]).await;
    let (status, _) = server
        .send(
            Method::POST,
            "/v1/settings",
            Some(&token),
            Some(json!({
                "serviceUrl": "https://ee.example.com", "notifyText": true, "notifyTextSize": 5,
                "notifyAttachments": true, "notifyAttachmentSize": 1000
            })),
        )
        .await;
    assert_eq!(status, 200);
    let (status, _) = server
        .send(
            Method::POST,
            "/v1/account",
            Some(&token),
            Some(account_payload("ann", &user, "pass")),
        )
        .await;
    assert_eq!(status, 200);
    wait_state(&server, &token, "ann", "connected").await;
    send_mail(
        "bob@example.com",
        &user,
        &message_with_attachment(&user, "shapes"),
    );
    let new = wait_for("messageNew", 10, || async {
        env.events_of("ann", "messageNew").await.into_iter().next()
    })
    .await;
    let id = new.payload["data"]["id"].as_str().unwrap().to_string();
    server
        .send(
            Method::PUT,
            &format!("/v1/account/ann/message/{id}"),
            Some(&token),
            Some(json!({"flags": {"add": ["\\Flagged"]}})),
        )
        .await;
    server
        .send(Method::PUT, "/v1/account/ann/sync", Some(&token), None)
        .await;
    wait_for("messageUpdated", 10, || async {
        env.events_of("ann", "messageUpdated")
            .await
            .into_iter()
            .next()
    })
    .await;
    server
        .send(
            Method::DELETE,
            &format!("/v1/account/ann/message/{id}?force=true"),
            Some(&token),
            None,
        )
        .await;
    server
        .send(Method::PUT, "/v1/account/ann/sync", Some(&token), None)
        .await;
    wait_for("messageDeleted", 10, || async {
        env.events_of("ann", "messageDeleted")
            .await
            .into_iter()
            .next()
    })
    .await;
    let (status, _) = server
        .send(Method::DELETE, "/v1/account/ann", Some(&token), None)
        .await;
    assert_eq!(status, 200);
    wait_for("accountDeleted", 10, || async {
        env.events_of("ann", "accountDeleted")
            .await
            .into_iter()
            .next()
    })
    .await;

    let events = env.events().await;
    let ours: Vec<&Value> = events
        .iter()
        .filter(|e| e.account == "ann")
        .map(|e| &e.payload)
        .collect();
    let names: Vec<&str> = ours.iter().map(|e| e["event"].as_str().unwrap()).collect();
    assert_eq!(
        names,
        [
            "accountAdded",
            "authenticationSuccess",
            "accountInitialized",
            "messageNew",
            "messageUpdated",
            "messageDeleted",
            "accountDeleted"
        ],
        "in the order they happened"
    );
    let plain_envelope = ["account", "data", "date", "event", "serviceUrl"];
    let mailbox_envelope = [
        "account",
        "data",
        "date",
        "event",
        "path",
        "serviceUrl",
        "specialUse",
    ];
    for e in &ours {
        assert_eq!(e["serviceUrl"], "https://ee.example.com");
        assert_eq!(e["account"], "ann");
        assert!(e["date"].as_str().unwrap().ends_with('Z'));
        let expected: &[&str] = if e["event"].as_str().unwrap().starts_with("message") {
            assert_eq!(
                (e["path"].as_str(), e["specialUse"].as_str()),
                (Some("INBOX"), Some("\\Inbox"))
            );
            &mailbox_envelope
        } else {
            &plain_envelope
        };
        assert_eq!(keys(e), expected, "{e}");
    }
    let data = |name: &str| {
        ours.iter()
            .find(|e| e["event"] == name)
            .map(|e| e["data"].clone())
            .unwrap()
    };
    assert_eq!(data("accountAdded"), json!({"account": "ann"}));
    assert_eq!(data("accountDeleted"), json!({"account": "ann"}));
    assert_eq!(data("authenticationSuccess"), json!({"user": user}));
    assert_eq!(data("accountInitialized"), json!({"initialized": true}));

    let new = data("messageNew");
    assert_eq!(
        keys(&new),
        [
            "answered",
            "attachments",
            "date",
            "draft",
            "flagged",
            "flags",
            "from",
            "id",
            "messageId",
            "messageSpecialUse",
            "path",
            "seemsLikeNew",
            "size",
            "subject",
            "text",
            "threadId",
            "to",
            "uid",
            "unseen"
        ],
        "{new}"
    );
    assert_eq!(
        (
            new["subject"].clone(),
            new["path"].clone(),
            new["messageSpecialUse"].clone(),
            new["seemsLikeNew"].clone()
        ),
        (
            json!("shapes"),
            json!("INBOX"),
            json!("\\Inbox"),
            json!(true)
        )
    );
    assert_eq!(
        (
            new["unseen"].clone(),
            new["flagged"].clone(),
            new["answered"].clone(),
            new["draft"].clone()
        ),
        (json!(true), json!(false), json!(false), json!(false))
    );
    assert_eq!(
        new["from"],
        json!({"name": "Bob", "address": "bob@example.com"})
    );
    assert_eq!(new["to"], json!([{"address": user}]));
    assert_eq!(new["messageId"], "<shapes@example.com>");
    assert_eq!(
        keys(&new["text"]),
        ["encodedSize", "hasMore", "id", "plain"]
    );
    assert_eq!(
        (new["text"]["plain"].clone(), new["text"]["hasMore"].clone()),
        (json!("Hello"), json!(true))
    );
    assert_eq!(keys(&new["text"]["encodedSize"]), ["html", "plain"]);
    let attachment = &new["attachments"][0];
    assert_eq!(
        keys(attachment),
        [
            "content",
            "contentType",
            "embedded",
            "encodedSize",
            "filename",
            "id",
            "inline"
        ]
    );
    assert_eq!(
        (
            attachment["contentType"].clone(),
            attachment["filename"].clone(),
            attachment["content"].clone(),
            attachment["inline"].clone(),
            attachment["embedded"].clone()
        ),
        (
            json!("application/octet-stream"),
            json!("data.bin"),
            json!("AAECAwQ="),
            json!(false),
            json!(false)
        )
    );

    let updated = data("messageUpdated");
    assert_eq!(keys(&updated), ["changes", "id", "uid"]);
    assert_eq!(updated["id"], id.as_str());
    assert_eq!(updated["changes"]["flags"]["added"], json!(["\\Flagged"]));
    assert_eq!(updated["changes"]["flags"]["deleted"], json!([]));
    assert_eq!(data("messageDeleted"), json!({"id": id, "uid": new["uid"]}));
}

/// An account's first connection reports `connected` once its main folder is in IDLE and
/// indexes the other folders afterwards, after other accounts have connected. Mail filed in
/// such a folder meanwhile is still reported when the folder is first indexed; a message the
/// server dates from before (as a move keeps its date) is indexed quietly, as on any first sync.
#[tokio::test]
async fn other_folders_are_indexed_after_connected_and_mail_filed_meanwhile_is_reported() {
    let env = Env::new("imap-deferred");
    let user = format!("{}@example.com", env.prefix);
    let token = env.issue(&[]);
    let server = env.start(&[]).await;
    // A server that takes connections and never greets keeps an account `connecting`, which
    // holds back every other account's deferred indexing.
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let silent_port = silent.local_addr().unwrap().port();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = silent.accept().await {
            held.push(socket);
        }
    });
    let mut stuck = account_payload("stuck", "nobody@example.com", "pass");
    stuck["imap"]["port"] = json!(silent_port);
    let (status, body) = server
        .send(Method::POST, "/v1/account", Some(&token), Some(stuck))
        .await;
    assert_eq!(status, 200, "{body}");
    wait_state(&server, &token, "stuck", "connecting").await;
    let (status, body) = server
        .send(
            Method::POST,
            "/v1/account",
            Some(&token),
            Some(account_payload("ann", &user, "pass")),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    wait_state(&server, &token, "ann", "connected").await;

    let raw = |subject: &str| {
        use base64::Engine as _;
        base64::engine::general_purpose::STANDARD.encode(format!(
            "From: a@example.com\r\nTo: {user}\r\nSubject: {subject}\r\nMessage-ID: <{subject}@deferred.example>\r\n\r\nbody\r\n"
        ))
    };
    let (status, refused) = server
        .send(
            Method::POST,
            "/v1/account/ann/message",
            Some(&token),
            Some(json!({"path": "Sent", "raw": raw("bad date"), "internalDate": "yesterday"})),
        )
        .await;
    assert_eq!(status, 400, "{refused}");
    assert_eq!(refused["fields"][0]["key"], "internalDate", "{refused}");
    for (subject, date) in [
        ("filed now", Value::Null),
        ("filed long ago", json!("2020-01-02T03:04:05Z")),
    ] {
        let (status, up) = server
            .send(
                Method::POST,
                "/v1/account/ann/message",
                Some(&token),
                Some(json!({"path": "Sent", "raw": raw(subject), "internalDate": date})),
            )
            .await;
        assert_eq!(status, 200, "{up}");
    }
    let (_, listed) = server
        .get("/v1/account/ann/messages?path=Sent", Some(&token))
        .await;
    let dates: Vec<(&str, &str)> = listed["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            (
                m["subject"].as_str().unwrap(),
                m["date"].as_str().unwrap_or(""),
            )
        })
        .collect();
    assert!(
        dates.iter().any(|(s, _)| *s == "filed long ago"),
        "{dates:?}"
    );
    // While `stuck` is connecting, Sent waits for its index.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let early = env.events_of("ann", "messageNew").await;
    assert!(early.is_empty(), "{early:?}\n{}", server.log());

    let (status, _) = server
        .send(Method::DELETE, "/v1/account/stuck", Some(&token), None)
        .await;
    assert_eq!(status, 200);
    let new = wait_for("messageNew in Sent", 15, || async {
        env.events_of("ann", "messageNew").await.into_iter().next()
    })
    .await;
    assert_eq!(new.payload["path"], "Sent");
    assert_eq!(new.payload["data"]["subject"], "filed now");
    // Both were indexed by the same sync: the old-dated one quietly.
    let reported: Vec<Value> = env
        .events_of("ann", "messageNew")
        .await
        .into_iter()
        .map(|e| e.payload["data"]["subject"].clone())
        .collect();
    assert_eq!(reported, [json!("filed now")]);
}
