//! Sending parity end to end (spec §17–§23) through the real Postfix and Dovecot: stored
//! templates, a 100-recipient mail merge with list headers, raw messages, dry runs, open and
//! click tracking, one-click unsubscribe and the blocklist skip, a real DSN turned into
//! `messageBounce`, a gateway on a second SMTP listener and a chosen source address.

mod common;

use std::collections::HashSet;
use std::time::Duration;

use base64::Engine;
use common::*;
use reqwest::Method;
use serde_json::{Value, json};

fn gateway_port() -> u16 {
    std::env::var("EE_TEST_GATEWAY_PORT")
        .ok()
        .and_then(|p| p.parse().ok())
        .expect("EE_TEST_GATEWAY_PORT is not set: run the tests with scripts/test.sh")
}

/// A server with a token, `serviceUrl` pointing at itself and a known `serviceSecret`.
async fn setup(env: &Env) -> (Server, String) {
    let token = env.issue(&[]);
    let server = env.start(&[]).await;
    let (status, body) = server
        .send(
            Method::POST,
            "/v1/settings",
            Some(&token),
            Some(json!({"serviceUrl": server.url("/"), "serviceSecret": "test-secret"})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    (server, token)
}

/// An account that sends through the test Postfix (and, with `imap`, syncs its mailbox).
async fn add_account(
    server: &Server,
    token: &str,
    id: &str,
    user: &str,
    imap: bool,
    smtp_port: u16,
) {
    let (imap_port, _) = mail_ports();
    let mut body = json!({
        "account": id, "name": format!("Sender {id}"), "email": user,
        "smtp": {"host": "127.0.0.1", "port": smtp_port, "secure": false, "auth": {"user": user, "pass": "pass"}},
    });
    if imap {
        body["imap"] = json!({"host": "127.0.0.1", "port": imap_port, "secure": false, "auth": {"user": user, "pass": "pass"}});
    }
    let (status, answer) = server
        .send(Method::POST, "/v1/account", Some(token), Some(body))
        .await;
    assert_eq!(status, 200, "{answer}");
    if imap {
        wait_for(&format!("{id} connected"), 20, || async {
            let (_, b) = server.get(&format!("/v1/account/{id}"), Some(token)).await;
            (b["state"] == "connected").then_some(())
        })
        .await;
    }
}

/// Every message Dovecot delivered into a user's mailbox (raw files of `new/` and `cur/`).
fn delivered(user: &str) -> Vec<Vec<u8>> {
    let dir = maildir(user);
    let mut out = Vec::new();
    for sub in ["new", "cur"] {
        if let Ok(entries) = std::fs::read_dir(dir.join(sub)) {
            for e in entries.flatten() {
                if let Ok(bytes) = std::fs::read(e.path()) {
                    out.push(bytes);
                }
            }
        }
    }
    out
}

async fn wait_delivered(user: &str, count: usize) -> Vec<Vec<u8>> {
    wait_for(&format!("{count} message(s) for {user}"), 30, || async {
        let found = delivered(user);
        (found.len() >= count).then_some(found)
    })
    .await
}

fn parse(raw: &[u8]) -> mail_parser::Message<'_> {
    mail_parser::MessageParser::new()
        .parse(raw)
        .expect("a message")
}

fn header<'a>(m: &'a mail_parser::Message<'a>, name: &str) -> Option<String> {
    m.header_raw(name).map(|v| v.trim().to_string())
}

async fn submit(server: &Server, token: &str, account: &str, body: Value) -> (u16, Value) {
    server
        .send(
            Method::POST,
            &format!("/v1/account/{account}/submit"),
            Some(token),
            Some(body),
        )
        .await
}

async fn outbox_total(server: &Server, token: &str) -> u64 {
    let (_, outbox) = server.get("/v1/outbox", Some(token)).await;
    outbox["total"].as_u64().unwrap()
}

#[tokio::test]
async fn a_template_mail_merge_reaches_a_hundred_mailboxes() {
    let (_, smtp) = mail_ports();
    let env = Env::new("merge100");
    let (server, token) = setup(&env).await;
    let sender = format!("{}-sender@example.com", env.prefix);
    add_account(&server, &token, "m", &sender, false, smtp).await;
    let (status, created) = server
        .send(
            Method::POST,
            "/v1/templates/template",
            Some(&token),
            Some(json!({"account": "m", "name": "welcome", "content": {
                "subject": "Hi {{params.name}}",
                "text": "Dear {{params.name}}, unsubscribe at {{rcpt.unsubscribeUrl}}",
                "html": "<p>Dear {{params.name}}</p>{{#if params.vip}}<p>VIP</p>{{/if}}"
            }})),
        )
        .await;
    assert_eq!(status, 200, "{created}");
    let template = created["id"].as_str().unwrap().to_string();

    let recipients: Vec<String> = (0..100)
        .map(|i| format!("{}-r{i}@example.com", env.prefix))
        .collect();
    let merge: Vec<Value> = recipients
        .iter()
        .enumerate()
        .map(|(i, r)| json!({"to": {"name": format!("R {i}"), "address": r}, "params": {"name": format!("R{i} <b>"), "vip": i % 10 == 0}}))
        .collect();
    let (status, answer) = submit(
        &server,
        &token,
        "m",
        json!({"template": template, "mailMerge": merge, "listId": "news"}),
    )
    .await;
    assert_eq!(status, 200, "{answer}");
    let entries = answer["mailMerge"].as_array().unwrap();
    assert_eq!(entries.len(), 100);
    let queue_ids: HashSet<&str> = entries
        .iter()
        .map(|e| e["queueId"].as_str().unwrap())
        .collect();
    assert_eq!(queue_ids.len(), 100, "one queue entry per recipient");
    assert!(entries.iter().all(|e| e["success"] == true));

    let mut message_ids = HashSet::new();
    for (i, r) in recipients.iter().enumerate() {
        let raw = &wait_delivered(r, 1).await[0];
        let m = parse(raw);
        assert_eq!(
            m.subject(),
            Some(format!("Hi R{i} <b>").as_str()),
            "text fields are not escaped"
        );
        let html = m.body_html(0).unwrap();
        assert!(
            html.contains(&format!("<p>Dear R{i} &lt;b&gt;</p>")),
            "{html}"
        );
        assert_eq!(html.contains("VIP"), i % 10 == 0);
        let text = m.body_text(0).unwrap();
        assert!(text.contains("/unsubscribe?data="), "{text}");
        assert_eq!(header(&m, "List-ID").as_deref(), Some("<news.127.0.0.1>"));
        assert_eq!(
            header(&m, "List-Unsubscribe-Post").as_deref(),
            Some("List-Unsubscribe=One-Click")
        );
        assert!(
            header(&m, "List-Unsubscribe")
                .unwrap()
                .contains("/unsubscribe?data=")
        );
        message_ids.insert(m.message_id().unwrap().to_string());
    }
    assert_eq!(message_ids.len(), 100, "distinct messages");
}

#[tokio::test]
async fn raw_messages_keep_their_body_and_dry_runs_queue_nothing() {
    let (_, smtp) = mail_ports();
    let env = Env::new("rawdry");
    let (server, token) = setup(&env).await;
    let sender = format!("{}-s@example.com", env.prefix);
    let rcpt = format!("{}-raw@example.com", env.prefix);
    add_account(&server, &token, "r", &sender, false, smtp).await;
    let body = "Line one\r\n  indented   spaces  \r\n\r\n.leading dot\r\nünïcödé bytes\r\n\r\n\r\n";
    let source = format!(
        "From: Raw Sender <{sender}>\r\nTo: {rcpt}\r\nBcc: {}-hidden@example.com\r\nSubject: raw one\r\nX-EE-Tracking-Enabled: false\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n{body}",
        env.prefix
    );
    let (status, queued) = submit(
        &server,
        &token,
        "r",
        json!({"raw": base64::engine::general_purpose::STANDARD.encode(&source)}),
    )
    .await;
    assert_eq!(status, 200, "{queued}");
    let raw = &wait_delivered(&rcpt, 1).await[0];
    // Dovecot stores with LF line ends; the body is otherwise byte for byte.
    let text = String::from_utf8_lossy(raw).replace("\r\n", "\n");
    let at = text.find("\n\n").unwrap();
    assert_eq!(
        &text[at + 2..],
        body.replace("\r\n", "\n"),
        "body byte for byte"
    );
    assert!(!text.contains("hidden@example.com") && !text.contains("X-EE-"));
    assert_eq!(
        parse(raw).message_id().map(|m| format!("<{m}>")),
        queued["messageId"].as_str().map(str::to_string)
    );
    // The Bcc address got its copy from the envelope.
    wait_delivered(&format!("{}-hidden@example.com", env.prefix), 1).await;

    // A dry run returns the message and queues nothing.
    let before = outbox_total(&server, &token).await;
    let (status, dry) = submit(
        &server,
        &token,
        "r",
        json!({"to": [{"address": rcpt}], "subject": "dry", "html": "<p>x <a href=\"https://example.org/\">l</a></p>",
            "headers": {"X-Custom": "yes"}, "dryRun": true, "trackClicks": true, "trackOpens": true}),
    )
    .await;
    assert_eq!(status, 200, "{dry}");
    assert_eq!(dry["response"], "Dry run");
    let preview = base64::engine::general_purpose::STANDARD
        .decode(dry["preview"].as_str().unwrap())
        .unwrap();
    let m = parse(&preview);
    assert_eq!(header(&m, "X-Custom").as_deref(), Some("yes"));
    assert!(
        !m.body_html(0).unwrap().contains("open.gif"),
        "no tracking in a dry run"
    );
    assert!(
        m.body_text(0).unwrap().contains('x'),
        "text generated from HTML"
    );
    assert_eq!(outbox_total(&server, &token).await, before);
}

#[tokio::test]
async fn tracked_links_and_one_click_unsubscribe() {
    let (_, smtp) = mail_ports();
    let env = Env::new("track");
    let (server, token) = setup(&env).await;
    let sender = format!("{}-s@example.com", env.prefix);
    let rcpt = format!("{}-t@example.com", env.prefix);
    add_account(&server, &token, "t", &sender, false, smtp).await;
    let (status, queued) = submit(
        &server,
        &token,
        "t",
        json!({"to": [{"address": rcpt}], "subject": "tracked",
            "html": "<html><body><p>Go <a href=\"https://example.org/page?a=1&amp;b=2\">here</a></p></body></html>",
            "trackClicks": true, "trackOpens": true}),
    )
    .await;
    assert_eq!(status, 200, "{queued}");
    let raw = &wait_delivered(&rcpt, 1).await[0];
    let html = parse(raw).body_html(0).unwrap().to_string();
    let link = |marker: &str| -> String {
        let start = html
            .find(&server.url(marker))
            .unwrap_or_else(|| panic!("{marker} in {html}"));
        let end = start + html[start..].find('"').unwrap();
        html_unescape(&html[start..end])
    };
    let redirect = link("/redirect");
    let pixel = link("/open.gif");
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let r = client
        .get(&redirect)
        .header("user-agent", "test-agent")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 302);
    assert_eq!(r.headers()["location"], "https://example.org/page?a=1&b=2");
    let click = wait_for("trackClick", 10, || async {
        env.events_of("t", "trackClick").await.into_iter().next()
    })
    .await;
    assert_eq!(
        click.payload["data"]["url"],
        "https://example.org/page?a=1&b=2"
    );
    assert_eq!(click.payload["data"]["messageId"], queued["messageId"]);
    assert_eq!(click.payload["data"]["userAgent"], "test-agent");
    assert_eq!(click.payload["data"]["remoteAddress"], "127.0.0.1");

    // One flipped character of the signature: refused, and no event.
    let tampered = {
        let at = redirect.find("sig=").unwrap() + 4;
        let mut t = redirect.clone().into_bytes();
        t[at] = if t[at] == b'A' { b'B' } else { b'A' };
        String::from_utf8(t).unwrap()
    };
    let r = client.get(&tampered).send().await.unwrap();
    assert_eq!(r.status(), 403);
    let r = client.get(&pixel).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], "image/gif");
    let gif = r.bytes().await.unwrap();
    assert_eq!(
        base64::engine::general_purpose::STANDARD.encode(&gif),
        "R0lGODlhAQABAIAAAAAAAP///yH5BAEAAAAALAAAAAABAAEAAAIBRAA7"
    );
    wait_for("trackOpen", 10, || async {
        env.events_of("t", "trackOpen").await.into_iter().next()
    })
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        env.events_of("t", "trackClick").await.len(),
        1,
        "the tampered link sent nothing"
    );

    // List mail: the one-click POST puts the address on the list; the next list mail skips it.
    let list_mail = |n: u32| json!({"mailMerge": [{"to": {"address": rcpt}}], "listId": "updates", "subject": format!("issue {n}"), "text": "news"});
    let (status, first) = submit(&server, &token, "t", list_mail(1)).await;
    assert_eq!(status, 200, "{first}");
    let list_copy = wait_for("the list message", 30, || async {
        delivered(&rcpt)
            .into_iter()
            .find(|m| String::from_utf8_lossy(m).contains("issue 1"))
    })
    .await;
    let unsubscribe = header(&parse(&list_copy), "List-Unsubscribe").unwrap();
    let url = unsubscribe.trim_matches(['<', '>']).to_string();
    let form = [("List-Unsubscribe", "One-Click")];
    let missing = client.post(&url).form(&[("x", "y")]).send().await.unwrap();
    assert_eq!(missing.status(), 400);
    for _ in 0..2 {
        let r = client.post(&url).form(&form).send().await.unwrap();
        assert_eq!(r.status(), 200);
        assert_eq!(r.text().await.unwrap(), "ok");
    }
    let (_, list) = server.get("/v1/blocklist/updates", Some(&token)).await;
    assert_eq!(list["total"], 1, "{list}");
    assert_eq!(list["addresses"][0]["source"], "one-click");
    let unsub = wait_for("listUnsubscribe", 10, || async {
        let e = env.events_of("t", "listUnsubscribe").await;
        (!e.is_empty()).then_some(e)
    })
    .await;
    assert_eq!(unsub.len(), 1, "one event for two clicks");
    assert_eq!(unsub[0].payload["data"]["recipient"], rcpt.as_str());
    assert_eq!(unsub[0].payload["data"]["listId"], "updates");
    let (status, second) = submit(&server, &token, "t", list_mail(2)).await;
    assert_eq!(status, 200, "{second}");
    assert_eq!(
        second["mailMerge"][0]["skipped"],
        json!({"reason": "unsubscribe", "listId": "updates"})
    );
    assert!(second["mailMerge"][0].get("queueId").is_none());

    // The subscription page, and subscribing again from it.
    let page = client.get(&url).send().await.unwrap();
    assert_eq!(page.status(), 200);
    let text = page.text().await.unwrap();
    assert!(
        text.contains("Subscription Management") && text.contains("is unsubscribed"),
        "{text}"
    );
    let query: std::collections::HashMap<String, String> = url::Url::parse(&url)
        .unwrap()
        .query_pairs()
        .into_owned()
        .collect();
    let r = client
        .post(server.url("/unsubscribe/address"))
        .form(&[
            ("action", "subscribe"),
            ("data", &query["data"]),
            ("sig", &query["sig"]),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.text().await.unwrap().contains("is subscribed"));
    wait_for("listSubscribe", 10, || async {
        env.events_of("t", "listSubscribe").await.into_iter().next()
    })
    .await;
    // Its last entry gone, the list is gone too (as in EmailEngine).
    let (status, _) = server.get("/v1/blocklist/updates", Some(&token)).await;
    assert_eq!(status, 404);
}

fn html_unescape(s: &str) -> String {
    s.replace("&amp;", "&").replace("&quot;", "\"")
}

#[tokio::test]
async fn a_refused_recipient_comes_back_as_a_bounce() {
    let (_, smtp) = mail_ports();
    let env = Env::new("bounce");
    let (server, token) = setup(&env).await;
    let sender = format!("{}-b@example.com", env.prefix);
    add_account(&server, &token, "b", &sender, true, smtp).await;
    let (status, queued) = submit(
        &server,
        &token,
        "b",
        json!({"to": [{"address": "refused@example.com"}], "subject": "to nobody", "text": "hello"}),
    )
    .await;
    assert_eq!(status, 200, "{queued}");
    let bounce = wait_for("messageBounce", 30, || async {
        env.events_of("b", "messageBounce").await.into_iter().next()
    })
    .await;
    let data = &bounce.payload["data"];
    assert_eq!(data["recipient"], "refused@example.com", "{data}");
    assert_eq!(data["action"], "failed");
    assert_eq!(data["messageId"], queued["messageId"]);
    assert!(
        data["response"]["status"]
            .as_str()
            .unwrap()
            .starts_with("5.1.1"),
        "{data}"
    );
    let dsn_id = data["bounceMessage"].as_str().unwrap().to_string();
    // The bounce's own messageNew came first and is marked.
    let events = env.events().await;
    let new_at = events
        .iter()
        .position(|e| e.event == "messageNew" && e.payload["data"]["id"] == dsn_id.as_str())
        .expect("messageNew of the DSN");
    let bounce_at = events
        .iter()
        .position(|e| e.event == "messageBounce")
        .unwrap();
    assert!(new_at < bounce_at, "messageNew before messageBounce");
    assert_eq!(events[new_at].payload["data"]["isBounce"], true);
    assert_eq!(
        events[new_at].payload["data"]["relatedMessageId"],
        queued["messageId"]
    );
    // The original in Sent lists the bounce.
    let original = wait_for("the Sent copy with its bounce", 15, || async {
        let (_, list) = server
            .get("/v1/account/b/messages?path=Sent", Some(&token))
            .await;
        list["messages"]
            .as_array()
            .and_then(|m| {
                m.iter()
                    .find(|m| m["messageId"] == queued["messageId"])
                    .cloned()
            })
            .filter(|m| m.get("bounces").is_some())
    })
    .await;
    assert_eq!(original["bounces"][0]["recipient"], "refused@example.com");
    assert_eq!(original["bounces"][0]["message"], dsn_id.as_str());
    // A message that is no bounce raises nothing.
    send_mail(
        &sender,
        &sender,
        "From: x@example.com\r\nSubject: plain\r\n\r\nplain\r\n",
    );
    wait_for("the plain message", 15, || async {
        env.events_of("b", "messageNew")
            .await
            .into_iter()
            .find(|e| e.payload["data"]["subject"] == "plain")
    })
    .await;
    assert_eq!(env.events_of("b", "messageBounce").await.len(), 1);
}

#[tokio::test]
async fn gateways_and_local_addresses_carry_the_mail() {
    let (_, smtp) = mail_ports();
    let env = Env::new("gwla");
    let (server, token) = setup(&env).await;
    let sender = format!("{}-g@example.com", env.prefix);
    // The account's own SMTP server is down: only the gateway can carry the first message.
    add_account(&server, &token, "g", &sender, false, 9).await;
    let (status, gw) = server
        .send(
            Method::POST,
            "/v1/gateway",
            Some(&token),
            Some(json!({"gateway": null, "name": "second listener", "host": "127.0.0.1", "port": gateway_port()})),
        )
        .await;
    assert_eq!(status, 200, "{gw}");
    let gateway = gw["gateway"].as_str().unwrap().to_string();
    let via_gateway = format!("{}-via-gw@example.com", env.prefix);
    let (status, queued) = submit(
        &server,
        &token,
        "g",
        json!({"to": [{"address": via_gateway}], "subject": "gw", "text": "x", "gateway": gateway, "copy": false}),
    )
    .await;
    assert_eq!(status, 200, "{queued}");
    let raw = &wait_delivered(&via_gateway, 1).await[0];
    assert!(
        String::from_utf8_lossy(raw).contains("by gateway.example.com"),
        "{}",
        String::from_utf8_lossy(raw)
    );
    let stats = wait_for("gateway deliveries", 10, || async {
        let (_, g) = server
            .get(&format!("/v1/gateway/{gateway}"), Some(&token))
            .await;
        (g["deliveries"] == 1).then_some(g)
    })
    .await;
    assert!(stats["lastError"].is_null(), "{stats}");

    // localAddress: Postfix sees the connection from 127.0.0.2.
    let (_, _) = server
        .send(
            Method::PUT,
            "/v1/account/g",
            Some(&token),
            Some(json!({"smtp": {"host": "127.0.0.1", "port": smtp, "secure": false, "auth": {"user": sender, "pass": "pass"}}})),
        )
        .await;
    let bound = format!("{}-bound@example.com", env.prefix);
    let (status, queued) = submit(
        &server,
        &token,
        "g",
        json!({"to": [{"address": bound}], "subject": "bound", "text": "x", "localAddress": "127.0.0.2", "copy": false}),
    )
    .await;
    assert_eq!(status, 200, "{queued}");
    let raw = &wait_delivered(&bound, 1).await[0];
    let text = String::from_utf8_lossy(raw);
    assert!(text.contains("[127.0.0.2]"), "{text}");
    let sent = wait_for("messageSent", 10, || async {
        env.events_of("g", "messageSent")
            .await
            .into_iter()
            .find(|e| e.payload["data"]["queueId"] == queued["queueId"])
    })
    .await;
    assert_eq!(
        sent.payload["data"]["networkRouting"]["localAddress"],
        "127.0.0.2"
    );

    // The localAddresses setting: SMTP and IMAP connections bind to the configured address.
    let (status, body) = server
        .send(
            Method::POST,
            "/v1/settings",
            Some(&token),
            Some(json!({"localAddresses": ["127.0.0.3", "192.0.2.1"], "smtpStrategy": "dedicated", "imapStrategy": "random"})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let configured = format!("{}-configured@example.com", env.prefix);
    let (status, _) = submit(
        &server,
        &token,
        "g",
        json!({"to": [{"address": configured}], "subject": "configured", "text": "x", "copy": false}),
    )
    .await;
    assert_eq!(status, 200);
    let raw = &wait_delivered(&configured, 1).await[0];
    assert!(
        String::from_utf8_lossy(raw).contains("[127.0.0.3]"),
        "192.0.2.1 is not on this host; 127.0.0.3 is the one candidate"
    );
    let imap_user = format!("{}-imapbound@example.com", env.prefix);
    add_account(&server, &token, "ib", &imap_user, true, smtp).await;
    let log = std::path::PathBuf::from(std::env::var("EE_TEST_MAILDIR").unwrap())
        .join("../../dovecot.log");
    let login = std::fs::read_to_string(&log)
        .unwrap()
        .lines()
        .rev()
        .find(|l| l.contains("Login:") && l.contains(&imap_user))
        .map(str::to_string)
        .expect("Dovecot logged the login");
    assert!(login.contains("rip=127.0.0.3"), "{login}");
}

#[tokio::test]
async fn bad_input_is_refused_and_nothing_is_half_queued() {
    let env = Env::new("sendbad");
    let (server, token) = setup(&env).await;
    add_account(&server, &token, "x", "x@example.com", false, 9).await;
    let (status, created) = server
        .send(
            Method::POST,
            "/v1/templates/template",
            Some(&token),
            Some(json!({"account": "x", "name": "broken", "content": {"subject": "s", "html": "{{#if params.a}}never closed"}})),
        )
        .await;
    assert_eq!(status, 200, "{created}");
    let broken = created["id"].as_str().unwrap();
    let (status, answer) = submit(
        &server,
        &token,
        "x",
        json!({"to": [{"address": "a@example.com"}], "template": broken}),
    )
    .await;
    assert_eq!(status, 422, "{answer}");
    assert_eq!(answer["message"], "Failed rendering html template");
    let (status, answer) = submit(
        &server,
        &token,
        "x",
        json!({"template": broken, "mailMerge": [{"to": {"address": "a@example.com"}}, {"to": {"address": "b@example.com"}}]}),
    )
    .await;
    assert_eq!(status, 422, "{answer}");

    let (status, answer) = submit(
        &server,
        &token,
        "x",
        json!({"raw": base64::engine::general_purpose::STANDARD.encode("this is not a message at all")}),
    )
    .await;
    assert_eq!(status, 400, "{answer}");
    assert_eq!(answer["fields"][0]["key"], "raw");

    let (status, answer) = submit(
        &server,
        &token,
        "x",
        json!({"subject": "s", "text": "t", "mailMerge": [
            {"to": {"address": "ok1@example.com"}}, {"to": {"address": "not an address"}}, {"to": {"address": "ok2@example.com"}}]}),
    )
    .await;
    assert_eq!(status, 400, "{answer}");
    assert_eq!(answer["fields"][0]["key"], "mailMerge[1].to");
    for (body, key) in [
        (
            json!({"to": "a@example.com", "listId": "news", "text": "t"}),
            "listId",
        ),
        (json!({"raw": "eA==", "html": "<p>x</p>"}), "raw"),
        (
            json!({"to": "a@example.com", "text": "t", "unknownField": 1}),
            "unknownField",
        ),
        (
            json!({"to": "a@example.com", "text": "t", "dsn": {"return": "full", "notify": ["never", "delay"]}}),
            "dsn.notify",
        ),
    ] {
        let (status, answer) = submit(&server, &token, "x", body).await;
        assert_eq!(status, 400, "{answer}");
        assert_eq!(answer["fields"][0]["key"], key, "{answer}");
    }
    assert_eq!(outbox_total(&server, &token).await, 0, "nothing was queued");

    // A narrowed token may not choose its own route.
    let (status, issued) = server
        .send(
            Method::POST,
            "/v1/token",
            Some(&token),
            Some(json!({"description": "sender", "permissions": {"groups": ["submit"]}})),
        )
        .await;
    assert_eq!(status, 200, "{issued}");
    let narrowed = issued["token"].as_str().unwrap().to_string();
    let (status, answer) = submit(
        &server,
        &narrowed,
        "x",
        json!({"to": "a@example.com", "text": "t", "proxy": "socks5://127.0.0.1:1080"}),
    )
    .await;
    assert_eq!(status, 403, "{answer}");
    assert_eq!(
        answer["message"],
        "A token with restricted permissions can not override the connection route"
    );
}

/// A minimal tunnelling proxy on loopback (SOCKS5 without authentication and HTTP CONNECT),
/// counting the tunnels it opened; stands in for a proxy server between this server and SMTP.
async fn start_proxy() -> (u16, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let count = std::sync::Arc::new(AtomicUsize::new(0));
    let tunnels = count.clone();
    tokio::spawn(async move {
        while let Ok((mut client, _)) = listener.accept().await {
            let tunnels = tunnels.clone();
            tokio::spawn(async move {
                let mut first = [0u8; 1];
                client.read_exact(&mut first).await.ok()?;
                let (host, port) = if first[0] == 5 {
                    let mut n = [0u8; 1];
                    client.read_exact(&mut n).await.ok()?;
                    let mut methods = vec![0u8; n[0] as usize];
                    client.read_exact(&mut methods).await.ok()?;
                    client.write_all(&[5, 0]).await.ok()?;
                    let mut head = [0u8; 4];
                    client.read_exact(&mut head).await.ok()?;
                    let host = match head[3] {
                        1 => {
                            let mut ip = [0u8; 4];
                            client.read_exact(&mut ip).await.ok()?;
                            std::net::Ipv4Addr::from(ip).to_string()
                        }
                        3 => {
                            let mut len = [0u8; 1];
                            client.read_exact(&mut len).await.ok()?;
                            let mut name = vec![0u8; len[0] as usize];
                            client.read_exact(&mut name).await.ok()?;
                            String::from_utf8(name).ok()?
                        }
                        _ => return None,
                    };
                    let mut p = [0u8; 2];
                    client.read_exact(&mut p).await.ok()?;
                    client
                        .write_all(&[5, 0, 0, 1, 0, 0, 0, 0, 0, 0])
                        .await
                        .ok()?;
                    (host, u16::from_be_bytes(p))
                } else {
                    let mut head = vec![first[0]];
                    let mut b = [0u8; 1];
                    while !head.ends_with(b"\r\n\r\n") {
                        client.read_exact(&mut b).await.ok()?;
                        head.push(b[0]);
                    }
                    let text = String::from_utf8(head).ok()?;
                    let target = text.split_whitespace().nth(1)?.to_string();
                    let (h, p) = target.rsplit_once(':')?;
                    client
                        .write_all(b"HTTP/1.1 200 Connection established\r\n\r\n")
                        .await
                        .ok()?;
                    (h.to_string(), p.parse().ok()?)
                };
                let mut upstream = tokio::net::TcpStream::connect((host.as_str(), port))
                    .await
                    .ok()?;
                tunnels.fetch_add(1, Ordering::SeqCst);
                tokio::io::copy_bidirectional(&mut client, &mut upstream)
                    .await
                    .ok()?;
                Some(())
            });
        }
    });
    (port, count)
}

#[tokio::test]
async fn proxies_carry_the_smtp_session() {
    use std::sync::atomic::Ordering;
    let (_, smtp) = mail_ports();
    let env = Env::new("proxy");
    let (server, token) = setup(&env).await;
    let sender = format!("{}-p@example.com", env.prefix);
    add_account(&server, &token, "p", &sender, false, smtp).await;
    let (proxy_port, tunnels) = start_proxy().await;
    for (scheme, n) in [("socks5", 1), ("http", 2)] {
        let rcpt = format!("{}-via-{scheme}@example.com", env.prefix);
        let (status, queued) = submit(
            &server,
            &token,
            "p",
            json!({"to": [{"address": rcpt}], "subject": scheme, "text": "x", "copy": false,
                "proxy": format!("{scheme}://127.0.0.1:{proxy_port}")}),
        )
        .await;
        assert_eq!(status, 200, "{queued}");
        wait_delivered(&rcpt, 1).await;
        assert_eq!(
            tunnels.load(Ordering::SeqCst),
            n,
            "the {scheme} proxy carried it"
        );
        let sent = wait_for("messageSent", 10, || async {
            env.events_of("p", "messageSent")
                .await
                .into_iter()
                .find(|e| e.payload["data"]["queueId"] == queued["queueId"])
        })
        .await;
        assert_eq!(
            sent.payload["data"]["networkRouting"]["proxy"],
            format!("{scheme}://127.0.0.1:{proxy_port}")
        );
    }
    // The proxyUrl setting applies to messages that name none.
    let (status, _) = server
        .send(
            Method::POST,
            "/v1/settings",
            Some(&token),
            // `socks://` (SOCKS5 too) so the pooled session of the first message is not reused.
            Some(json!({"proxyEnabled": true, "proxyUrl": format!("socks://127.0.0.1:{proxy_port}")})),
        )
        .await;
    assert_eq!(status, 200);
    let rcpt = format!("{}-via-setting@example.com", env.prefix);
    let (status, _) = submit(
        &server,
        &token,
        "p",
        json!({"to": [{"address": rcpt}], "subject": "setting", "text": "x", "copy": false}),
    )
    .await;
    assert_eq!(status, 200);
    wait_delivered(&rcpt, 1).await;
    assert_eq!(tunnels.load(Ordering::SeqCst), 3);
}
