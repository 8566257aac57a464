//! The core routes EmailEngine clients rely on beyond accounts and messages: queue pause,
//! webhook routes, licence, server signatures and the token audit log, driven over HTTP.

mod common;

use std::time::Duration;

use common::*;
use reqwest::Method;
use serde_json::json;

const NEW_ROUTES: &[(&str, &str)] = &[
    ("GET", "/v1/settings/queue/notify"),
    ("PUT", "/v1/settings/queue/notify"),
    ("GET", "/v1/webhookRoutes"),
    ("GET", "/v1/webhookRoutes/webhookRoute/r1"),
    ("GET", "/v1/license"),
    ("POST", "/v1/license"),
    ("DELETE", "/v1/license"),
    ("GET", "/v1/account/nobody/server-signatures"),
    (
        "GET",
        "/v1/tokens/0000000000000000000000000000000000000000000000000000000000000000/log",
    ),
];

#[tokio::test]
async fn new_routes_answer_401_without_a_token() {
    let env = Env::new("core-401");
    let server = env.start(&[]).await;
    for (method, path) in NEW_ROUTES {
        let m = Method::from_bytes(method.as_bytes()).unwrap();
        let (status, body) = server.send(m, path, None, None).await;
        assert_eq!(
            (status, body["message"].clone()),
            (401, json!("Missing authentication")),
            "{method} {path}"
        );
    }
}

/// A `/v1` path this server does not serve (an EmailEngine route not implemented here, or a
/// wrong method) asks for a credential first, as every EmailEngine route does, then is 404.
#[tokio::test]
async fn unserved_v1_paths_want_a_token_before_they_404() {
    let env = Env::new("core-unserved");
    let admin = env.issue(&[]);
    let server = env.start(&[]).await;
    for (method, path) in [
        (Method::GET, "/v1/account/a/exports"),
        (Method::GET, "/v1/no/such/route"),
        (Method::DELETE, "/v1/stats"),
    ] {
        let (status, body) = server.send(method.clone(), path, None, None).await;
        assert_eq!(
            (status, body["message"].clone()),
            (401, json!("Missing authentication")),
            "{path}"
        );
        let (status, _) = server
            .send(
                method.clone(),
                path,
                Some("0000000000000000000000000000000000000000000000000000000000000000"),
                None,
            )
            .await;
        assert_eq!(status, 401, "{path} with an unknown token");
        let (status, body) = server.send(method, path, Some(&admin), None).await;
        assert_eq!(
            (status, body["message"].clone()),
            (404, json!("Not Found")),
            "{path}"
        );
    }
    let (status, _) = server.get("/no-such-page", None).await;
    assert_eq!(status, 404, "outside /v1 nothing is asked");
}

#[tokio::test]
async fn paused_notify_queue_holds_webhooks_until_resumed() {
    let receiver = Receiver::default();
    let url = receiver.start().await;
    let env = Env::new("core-queue");
    let token = env.issue(&[]);
    let server = env.start(&[]).await;
    let (status, _) = server
        .send(
            Method::POST,
            "/v1/settings",
            Some(&token),
            Some(json!({
                "webhooks": url, "webhooksEnabled": true, "webhookEvents": ["*"]
            })),
        )
        .await;
    assert_eq!(status, 200);
    let (status, body) = server
        .send(
            Method::PUT,
            "/v1/settings/queue/notify",
            Some(&token),
            Some(json!({"paused": true})),
        )
        .await;
    assert_eq!(
        (status, body),
        (200, json!({"queue": "notify", "paused": true}))
    );
    let (status, body) = server
        .send(
            Method::PUT,
            "/v1/settings/queue/submit",
            Some(&token),
            Some(json!({})),
        )
        .await;
    assert_eq!(
        (status, body),
        (200, json!({"queue": "submit", "paused": false}))
    );
    let (status, _) = server.get("/v1/settings/queue/bogus", Some(&token)).await;
    assert_eq!(status, 400);

    let (status, _) = server
        .send(
            Method::POST,
            "/v1/account",
            Some(&token),
            Some(json!({
                "account": "held", "name": "Held",
                "smtp": {"host": "127.0.0.1", "port": 1, "secure": false}
            })),
        )
        .await;
    assert_eq!(status, 200);
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(receiver.events().is_empty(), "no webhook while paused");
    let (status, info) = server.get("/v1/settings/queue/notify", Some(&token)).await;
    assert_eq!(status, 200);
    assert_eq!(info["paused"], true);
    assert_eq!(info["jobs"]["paused"], 0);
    assert!(info["jobs"]["waiting"].as_u64().unwrap() >= 1, "{info}");

    let (status, _) = server
        .send(
            Method::PUT,
            "/v1/settings/queue/notify",
            Some(&token),
            Some(json!({"paused": false})),
        )
        .await;
    assert_eq!(status, 200);
    let hits = wait_for("the held webhook", 10, || async {
        let e = receiver.events();
        (!e.is_empty()).then_some(e)
    })
    .await;
    assert_eq!(hits[0].1["event"], "accountAdded");
}

#[tokio::test]
async fn webhook_routes_stored_in_emailengine_layout_are_listed() {
    use emailengine_core::msgpack;
    let env = Env::new("core-whroutes");
    let token = env.issue(&[]);
    let meta = json!({"id": "r1", "name": "Sales", "description": "to CRM", "created": "2024-01-01T00:00:00.000Z",
        "updated": "2024-01-02T00:00:00.000Z", "enabled": true, "targetUrl": "https://u:p@crm.example/hook"});
    let content = json!({"fn": "return true;", "map": "payload"});
    env.store()
        .await
        .put_webhook_route(
            "r1",
            &emailengine_store::StoredWebhookRoute {
                meta: msgpack::encode(&msgpack::from_json(&meta)),
                content: Some(msgpack::encode(&msgpack::from_json(&content))),
                tcount: Some(3),
            },
        )
        .await
        .unwrap();
    let server = env.start(&[]).await;
    let (status, list) = server.get("/v1/webhookRoutes", Some(&token)).await;
    assert_eq!(status, 200);
    let summary = json!({"id": "r1", "name": "Sales", "description": "to CRM",
        "created": "2024-01-01T00:00:00.000Z", "updated": "2024-01-02T00:00:00.000Z", "enabled": true,
        "targetUrl": "https://******:******@crm.example/hook", "tcount": 3});
    assert_eq!(
        list,
        json!({"total": 1, "page": 0, "pages": 1, "webhooks": [summary.clone()]})
    );
    let (status, one) = server
        .get("/v1/webhookRoutes/webhookRoute/r1", Some(&token))
        .await;
    assert_eq!(status, 200);
    let mut expected = summary;
    expected["content"] = content;
    assert_eq!(one, expected);
    let (status, _) = server
        .get("/v1/webhookRoutes/webhookRoute/nope", Some(&token))
        .await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn license_is_accepted_reported_and_never_limits() {
    let env = Env::new("core-license").var(
        "EENGINE_PREPARED_LICENSE",
        "-----BEGIN LICENSE-----\nprepared\n-----END LICENSE-----",
    );
    let token = env.issue(&[]);
    let server = env.start(&[]).await;
    let (status, body) = server.get("/v1/license", Some(&token)).await;
    assert_eq!(
        (status, body["active"].clone()),
        (200, json!(true)),
        "{body}"
    );
    let prepared = body["details"]["key"].clone();
    let (status, body) = server
        .send(
            Method::POST,
            "/v1/license",
            Some(&token),
            Some(json!({"license": "another key"})),
        )
        .await;
    assert_eq!((status, body["active"].clone()), (200, json!(true)));
    assert_ne!(body["details"]["key"], prepared);
    let (status, _) = server
        .send(
            Method::POST,
            "/v1/license",
            Some(&token),
            Some(json!({"license": ""})),
        )
        .await;
    assert_eq!(status, 400);
    let (status, body) = server
        .send(Method::DELETE, "/v1/license", Some(&token), None)
        .await;
    assert_eq!(
        (status, body["active"].clone(), body["details"].clone()),
        (200, json!(false), json!(false))
    );
    // Nothing is limited without a key.
    let (status, _) = server.get("/v1/stats", Some(&token)).await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn server_signatures_and_token_audit_log() {
    let env = Env::new("core-audit");
    let admin = env.issue(&[]);
    let server = env.start(&[]).await;
    let (status, _) = server.send(Method::POST, "/v1/account", Some(&admin), Some(json!({
        "account": "sig", "name": "Sig", "smtp": {"host": "127.0.0.1", "port": 1, "secure": false}
    }))).await;
    assert_eq!(status, 200);
    let (status, body) = server
        .get("/v1/account/sig/server-signatures", Some(&admin))
        .await;
    assert_eq!(
        (status, body),
        (200, json!({"signatures": [], "signaturesSupported": false}))
    );
    let (status, _) = server
        .get("/v1/account/nobody/server-signatures", Some(&admin))
        .await;
    assert_eq!(status, 404);

    let (status, _) = server
        .send(
            Method::POST,
            "/v1/settings",
            Some(&admin),
            Some(json!({"tokenAuditLog": true})),
        )
        .await;
    assert_eq!(status, 200);
    let (status, minted) = server
        .send(
            Method::POST,
            "/v1/tokens",
            Some(&admin),
            Some(json!({
                "description": "narrow", "permissions": {"groups": ["account"], "actions": ["read"]}
            })),
        )
        .await;
    assert_eq!(status, 200, "{minted}");
    let narrow = minted["token"].as_str().unwrap();
    let id = minted["id"].as_str().unwrap();
    let (status, _) = server.get("/v1/accounts", Some(narrow)).await;
    assert_eq!(status, 200);
    let (status, _) = server.get("/v1/stats", Some(narrow)).await;
    assert_eq!(status, 403);
    let (status, log) = server
        .get(&format!("/v1/tokens/{id}/log"), Some(&admin))
        .await;
    assert_eq!(status, 200, "{log}");
    assert_eq!(
        (log["token"].as_str(), log["total"].as_u64()),
        (Some(id), Some(2))
    );
    let entries = log["entries"].as_array().unwrap();
    let short = |e: &serde_json::Value| {
        (
            e["method"].clone(),
            e["path"].clone(),
            e["group"].clone(),
            e["action"].clone(),
            e["status"].clone(),
            e["reason"].clone(),
        )
    };
    assert_eq!(
        entries.iter().map(short).collect::<Vec<_>>(),
        [
            (
                json!("GET"),
                json!("/v1/stats"),
                json!("diagnostics"),
                json!("read"),
                json!("denied"),
                json!("group")
            ),
            (
                json!("GET"),
                json!("/v1/accounts"),
                json!("account"),
                json!("read"),
                json!("allowed"),
                json!(null)
            ),
        ]
    );
    assert!(entries[0]["time"].as_str().unwrap().ends_with('Z'));
    assert_eq!(entries[0]["ip"], "127.0.0.1");
}
