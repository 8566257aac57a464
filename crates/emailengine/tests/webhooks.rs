//! Webhook delivery to a real HTTP receiver (a small axum server in the test): signatures,
//! order, retries, the give-up list, and a crash while deliveries are pending.

mod common;

use std::sync::atomic::Ordering;
use std::time::Duration;

use common::*;
use reqwest::Method;
use serde_json::{Value, json};

async fn configure(server: &Server, token: &str, url: &str) {
    let (status, body) = server.send(Method::POST, "/v1/settings", Some(token), Some(json!({
        "webhooks": url, "webhooksEnabled": true, "webhookEvents": ["*"], "serviceSecret": "test-secret",
        "webhooksCustomHeaders": [{"key": "X-Team", "value": "mail"}]
    }))).await;
    assert_eq!(status, 200, "{body}");
}

/// Registers an account that cannot connect: it yields accountAdded and connectError events.
async fn add_unreachable(server: &Server, token: &str, name: &str) {
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let (status, _) = server.send(Method::POST, "/v1/account", Some(token), Some(json!({
        "account": name, "name": name,
        "imap": {"host": "127.0.0.1", "port": closed, "secure": false, "auth": {"user": "u", "pass": "p"}}
    }))).await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn events_are_posted_signed_with_emailengine_headers() {
    let receiver = Receiver::default();
    let url = receiver.start().await;
    let env = Env::new("wh-signed");
    let token = env.issue(&[]);
    let server = env.start(&[]).await;
    configure(&server, &token, &url).await;
    add_unreachable(&server, &token, "acme").await;
    let hits = wait_for("two webhooks", 10, || async {
        let e = receiver.events();
        (e.len() >= 2).then_some(e)
    })
    .await;
    let names: Vec<&str> = hits
        .iter()
        .map(|(_, b)| b["event"].as_str().unwrap())
        .collect();
    assert_eq!(&names[..2], ["accountAdded", "connectError"]);
    let raw = receiver.hits.lock().unwrap()[0].1.clone();
    let (headers, body) = &hits[0];
    assert_eq!(body["account"], "acme");
    assert_eq!(body["data"], json!({"account": "acme"}));
    assert!(body["date"].is_string());
    let h = |k: &str| {
        headers
            .get(k)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string()
    };
    assert_eq!(
        h("x-ee-wh-signature"),
        hmac_b64("test-secret", &[&raw], true)
    );
    let id = h("webhook-id");
    let ts = h("webhook-timestamp");
    assert_eq!(
        h("webhook-signature"),
        format!(
            "v1,{}",
            hmac_b64(
                "test-secret",
                &[id.as_bytes(), b".", ts.as_bytes(), b".", &raw],
                false
            )
        )
    );
    assert_eq!(h("x-ee-wh-event-id"), id);
    assert_eq!(h("x-ee-wh-attempts-made"), "1");
    assert!(h("x-ee-wh-queued-time").ends_with('s'));
    assert_eq!(h("x-team"), "mail");
    assert_eq!(h("content-type"), "application/json");
    assert_eq!(
        h("authorization"),
        "Basic dXNlcjpwQHNz",
        "basic auth from the URL's userinfo"
    );
    // The per-event counters and metrics see the deliveries.
    let text = server
        .http
        .get(server.url("/metrics"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        text.contains("webhooks{status=\"success\",event=\"accountAdded\"} 1"),
        "{text}"
    );
}

#[tokio::test]
async fn failing_receiver_gets_every_event_in_order_after_it_recovers() {
    let receiver = Receiver::default();
    receiver.fail_first.store(4, Ordering::SeqCst);
    let url = receiver.start().await;
    let env = Env::new("wh-retry").var("EENGINE_WEBHOOK_RETRY_DELAY", "50ms");
    let token = env.issue(&[]);
    let server = env.start(&[]).await;
    configure(&server, &token, &url).await;
    for name in ["a1", "a2", "a3"] {
        add_unreachable(&server, &token, name).await;
    }
    let hits = wait_for("six webhooks", 20, || async {
        let e = receiver.events();
        (e.len() >= 6).then_some(e)
    })
    .await;
    for account in ["a1", "a2", "a3"] {
        let order: Vec<&str> = hits
            .iter()
            .filter(|(_, b)| b["account"] == account)
            .map(|(_, b)| b["event"].as_str().unwrap())
            .take(2)
            .collect();
        assert_eq!(
            order,
            ["accountAdded", "connectError"],
            "order for {account}"
        );
    }
    let retried = hits
        .iter()
        .any(|(h, _)| h.get("x-ee-wh-attempts-made").is_some_and(|v| v != "1"));
    assert!(retried, "retries are visible in X-EE-Wh-Attempts-Made");
    let ids: std::collections::HashSet<String> = hits
        .iter()
        .map(|(h, _)| h["webhook-id"].to_str().unwrap().to_string())
        .collect();
    assert_eq!(ids.len(), hits.len(), "no duplicates");
}

#[tokio::test]
async fn deliveries_past_the_retry_window_are_kept_and_can_be_resent() {
    let receiver = Receiver::default();
    receiver.down.store(true, Ordering::SeqCst);
    let url = receiver.start().await;
    let env = Env::new("wh-dead")
        .var("EENGINE_WEBHOOK_RETRY_DELAY", "50ms")
        .var("EENGINE_WEBHOOK_RETRY_WINDOW", "600ms");
    let token = env.issue(&[]);
    let server = env.start(&[]).await;
    configure(&server, &token, &url).await;
    add_unreachable(&server, &token, "gone").await;
    let failed = wait_for("given-up deliveries", 15, || async {
        let (_, list) = server.get("/v1/webhooks/failed", Some(&token)).await;
        (list["total"].as_u64().unwrap_or(0) >= 2).then_some(list)
    })
    .await;
    let first = &failed["events"][1];
    assert_eq!(first["event"], "accountAdded");
    assert_eq!(first["reason"], "HTTP 500");
    assert_eq!(first["payload"]["account"], "gone");
    receiver.down.store(false, Ordering::SeqCst);
    let id = first["id"].as_str().unwrap();
    let (status, body) = server
        .send(
            Method::POST,
            &format!("/v1/webhooks/failed/{id}/resend"),
            Some(&token),
            None,
        )
        .await;
    assert_eq!((status, body["queued"].clone()), (200, json!(true)));
    let hits = wait_for("the re-sent event", 10, || async {
        let e = receiver.events();
        (!e.is_empty()).then_some(e)
    })
    .await;
    assert_eq!(hits[0].1["event"], "accountAdded");
    let (_, list) = server.get("/v1/webhooks/failed", Some(&token)).await;
    assert_eq!(list["total"], 1);
}

#[tokio::test]
async fn a_killed_server_delivers_pending_events_after_restart() {
    let receiver = Receiver::default();
    receiver.down.store(true, Ordering::SeqCst);
    let url = receiver.start().await;
    let env = Env::new("wh-kill").var("EENGINE_WEBHOOK_RETRY_DELAY", "100ms");
    let token = env.issue(&[]);
    let server = env.start(&[]).await;
    configure(&server, &token, &url).await;
    for name in ["k1", "k2"] {
        add_unreachable(&server, &token, name).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    server.kill();
    receiver.down.store(false, Ordering::SeqCst);
    let server = env.start(&[]).await;
    let hits = wait_for("four webhooks after restart", 20, || async {
        let e = receiver.events();
        (e.iter()
            .filter(|(_, b)| b["event"] == "accountAdded")
            .count()
            >= 2)
            .then_some(e)
    })
    .await;
    let added: Vec<&Value> = hits
        .iter()
        .filter(|(_, b)| b["event"] == "accountAdded")
        .map(|(_, b)| &b["account"])
        .collect();
    assert_eq!(
        added.len(),
        2,
        "each accountAdded delivered once: {added:?}"
    );
    drop(server);
}

#[tokio::test]
async fn the_egress_policy_refuses_forbidden_targets_without_retrying() {
    let receiver = Receiver::default();
    let url = receiver.start().await;
    let port = url
        .rsplit(':')
        .next()
        .unwrap()
        .trim_end_matches("/hook")
        .to_string();
    let env = Env::new("wh-egress").var("EENGINE_WEBHOOK_EGRESS_POLICY", "private");
    let token = env.issue(&[]);
    let server = env.start(&[]).await;
    configure(&server, &token, &url).await;
    // One target by address (checked before connecting), one by name (checked at resolution).
    for (name, host) in [("by-ip", "127.0.0.1"), ("by-name", "localhost")] {
        let closed = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let (status, _) = server.send(Method::POST, "/v1/account", Some(&token), Some(json!({
            "account": name, "name": name, "webhooks": format!("http://{host}:{port}/hook"),
            "imap": {"host": "127.0.0.1", "port": closed, "secure": false, "auth": {"user": "u", "pass": "p"}}
        }))).await;
        assert_eq!(status, 200);
    }
    let failed = wait_for("refused deliveries", 15, || async {
        let (_, list) = server
            .get("/v1/webhooks/failed?pageSize=100", Some(&token))
            .await;
        (list["total"].as_u64().unwrap_or(0) >= 4).then_some(list)
    })
    .await;
    for entry in failed["events"].as_array().unwrap() {
        assert!(
            entry["reason"]
                .as_str()
                .unwrap()
                .starts_with("EGRESSPOLICY"),
            "{entry}"
        );
    }
    assert!(receiver.events().is_empty(), "nothing reached the receiver");
}

#[tokio::test]
async fn events_logged_while_webhooks_are_off_are_settled_unless_the_queue_is_paused() {
    let receiver = Receiver::default();
    let url = receiver.start().await;
    let env = Env::new("wh-off");
    let token = env.issue(&[]);
    let server = env.start(&[]).await;
    let settings = |enabled: bool| json!({"webhooks": url, "webhooksEnabled": enabled, "webhookEvents": ["*"]});
    let (status, _) = server
        .send(
            Method::POST,
            "/v1/settings",
            Some(&token),
            Some(settings(false)),
        )
        .await;
    assert_eq!(status, 200);
    let waiting = || async {
        let (status, info) = server.get("/v1/settings/queue/notify", Some(&token)).await;
        assert_eq!(status, 200, "{info}");
        info["jobs"]["waiting"].as_u64().unwrap()
    };
    let pause = |paused: bool| {
        server.send(
            Method::PUT,
            "/v1/settings/queue/notify",
            Some(&token),
            Some(json!({ "paused": paused })),
        )
    };

    // Switched off: the events are settled (skipped) without a delivery.
    add_unreachable(&server, &token, "quiet").await;
    wait_for("the events of a switched-off hook settled", 10, || async {
        (waiting().await == 0).then_some(())
    })
    .await;

    // Switched off but paused: held like any paused job, settled once resumed.
    assert_eq!(pause(true).await.0, 200);
    add_unreachable(&server, &token, "held").await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(waiting().await >= 1, "a paused queue keeps its events");
    assert_eq!(pause(false).await.0, 200);
    wait_for("the held events settled", 10, || async {
        (waiting().await == 0).then_some(())
    })
    .await;

    // Switched on: the next events are delivered, none of the earlier ones.
    let (status, _) = server
        .send(
            Method::POST,
            "/v1/settings",
            Some(&token),
            Some(settings(true)),
        )
        .await;
    assert_eq!(status, 200);
    add_unreachable(&server, &token, "loud").await;
    let hits = wait_for("the webhooks of the account added after", 10, || async {
        let e = receiver.events();
        (e.len() >= 2).then_some(e)
    })
    .await;
    let accounts: Vec<&str> = hits
        .iter()
        .map(|(_, b)| b["account"].as_str().unwrap())
        .collect();
    assert!(accounts.iter().all(|a| *a == "loud"), "{accounts:?}");
}
