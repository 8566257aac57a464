//! Settings, stats, health, OpenAPI and request limits over HTTP.

mod common;

use common::*;
use reqwest::Method;
use serde_json::json;

#[tokio::test]
async fn settings_round_trip_with_masking() {
    let env = Env::new("settings");
    let token = env.issue(&[]);
    let server = env.start(&[]).await;
    let (status, body) = server.send(Method::POST, "/v1/settings", Some(&token), Some(json!({
        "webhooks": "https://user:pw@hooks.example.com/in",
        "webhooksEnabled": true,
        "webhookEvents": ["messageNew", "messageSent"],
        "webhooksCustomHeaders": [{"key": "Authorization", "value": "Bearer x"}, {"key": "X-Team", "value": "mail"}],
        "notifyTextSize": 2048,
        "serviceUrl": "https://ee.example.com"
    }))).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["updated"].as_array().unwrap().len(), 6);

    // Stored as EmailEngine stores it: one JSON string per field.
    let raw = env
        .store()
        .await
        .raw_settings(&["webhookEvents"])
        .await
        .unwrap();
    assert_eq!(raw, [Some("[\"messageNew\",\"messageSent\"]".to_string())]);

    let (status, body) = server.get("/v1/settings?webhooks=true&webhooksEnabled=true&webhookEvents=true&webhooksCustomHeaders=true&notifyTextSize=true&serviceSecret=true&notifyText=true", Some(&token)).await;
    assert_eq!(status, 200);
    assert_eq!(
        body,
        json!({
            "webhooks": "https://******:******@hooks.example.com/in",
            "webhooksEnabled": true,
            "webhookEvents": ["messageNew", "messageSent"],
            "webhooksCustomHeaders": [{"key": "Authorization", "value": "******"}, {"key": "X-Team", "value": "******"}],
            "notifyTextSize": 2048,
            "serviceSecret": true
        })
    );
    let (_, body) = server
        .get("/v1/settings?eventTypes=true", Some(&token))
        .await;
    assert!(
        body["eventTypes"]
            .as_array()
            .unwrap()
            .contains(&json!("messageNew"))
    );
    let (status, body) = server.get("/v1/settings?bogus=true", Some(&token)).await;
    assert_eq!(
        (status, body["fields"][0]["message"].clone()),
        (400, json!("\"bogus\" is not allowed"))
    );
}

async fn settings_of(env: &Env) -> Vec<Option<String>> {
    env.store()
        .await
        .raw_settings(&["webhooks", "webhooksCustomHeaders", "notifyTextSize"])
        .await
        .unwrap()
}

/// A client reads the settings page, changes one field and posts everything back: the masked
/// URL credentials, header values and service secret stay what they were.
#[tokio::test]
async fn settings_read_modify_write_keeps_every_secret() {
    let env = Env::new("settings-rmw");
    let token = env.issue(&[]);
    let server = env.start(&[]).await;
    let secrets = json!({
        "webhooks": "https://hookuser:hookpass@hooks.example.com/in",
        "webhooksCustomHeaders": [{"key": "Authorization", "value": "Bearer s3cret"}, {"key": "X-Team", "value": "mail"}],
        "serviceSecret": "0123456789abcdef",
        "notifyTextSize": 1024
    });
    let (status, body) = server
        .send(Method::POST, "/v1/settings", Some(&token), Some(secrets))
        .await;
    assert_eq!(status, 200, "{body}");
    let read = "/v1/settings?webhooks=true&webhooksCustomHeaders=true&serviceSecret=true&notifyTextSize=true";
    let (_, mut page) = server.get(read, Some(&token)).await;
    assert_eq!(
        page,
        json!({
            "webhooks": "https://******:******@hooks.example.com/in",
            "webhooksCustomHeaders": [{"key": "Authorization", "value": "******"}, {"key": "X-Team", "value": "******"}],
            "serviceSecret": true,
            "notifyTextSize": 1024
        })
    );
    page["notifyTextSize"] = json!(4096);
    let (status, body) = server
        .send(
            Method::POST,
            "/v1/settings",
            Some(&token),
            Some(page.clone()),
        )
        .await;
    assert_eq!(
        (status, body),
        (200, json!({"updated": ["notifyTextSize"]}))
    );
    assert_eq!(
        settings_of(&env).await,
        [
            Some("\"https://hookuser:hookpass@hooks.example.com/in\"".to_string()),
            Some("[{\"key\":\"Authorization\",\"value\":\"Bearer s3cret\"},{\"key\":\"X-Team\",\"value\":\"mail\"}]".to_string()),
            Some("4096".to_string()),
        ]
    );

    // One header changed, the other echoed masked: the masked one keeps its value.
    let (status, body) = server
        .send(Method::POST, "/v1/settings", Some(&token), Some(json!({
            "webhooksCustomHeaders": [{"key": "Authorization", "value": "******"}, {"key": "X-Team", "value": "ops"}]
        })))
        .await;
    assert_eq!(
        (status, body),
        (200, json!({"updated": ["webhooksCustomHeaders"]}))
    );
    assert_eq!(
        settings_of(&env).await[1].as_deref(),
        Some(
            "[{\"key\":\"Authorization\",\"value\":\"Bearer s3cret\"},{\"key\":\"X-Team\",\"value\":\"ops\"}]"
        )
    );

    // A mask over another destination would send the stored credentials elsewhere: refused.
    for bad in [
        json!({"webhooks": "https://******:******@attacker.example/in"}),
        json!({"webhooksCustomHeaders": [{"key": "X-Api-Key", "value": "******"}]}),
    ] {
        let (status, body) = server
            .send(Method::POST, "/v1/settings", Some(&token), Some(bad))
            .await;
        assert_eq!(
            (status, body["message"].clone()),
            (400, json!("Invalid input")),
            "{body}"
        );
    }
    assert_eq!(
        settings_of(&env).await[0].as_deref(),
        Some("\"https://hookuser:hookpass@hooks.example.com/in\"")
    );

    // The service secret still signs webhooks: an echo of `true` did not replace it.
    let raw = env
        .store()
        .await
        .raw_settings(&["serviceSecret"])
        .await
        .unwrap();
    let secret: String = match raw[0].as_deref() {
        Some(s) if s.starts_with('"') => serde_json::from_str(s).unwrap(),
        other => panic!("serviceSecret stored as {other:?}"),
    };
    assert_eq!(secret, "0123456789abcdef");
}

#[tokio::test]
async fn settings_input_errors() {
    let env = Env::new("settings-bad");
    let token = env.issue(&[]);
    let server = env.start(&["--api.maxBodySize=1k"]).await;
    let (status, body) = server
        .send(
            Method::POST,
            "/v1/settings",
            Some(&token),
            Some(json!({"webhooksEnabled": "maybe", "notifyTextSize": "x"})),
        )
        .await;
    assert_eq!(status, 400);
    assert_eq!(
        body["fields"],
        json!([
            {"message": "\"webhooksEnabled\" must be a boolean", "key": "webhooksEnabled"},
            {"message": "\"notifyTextSize\" must be a number", "key": "notifyTextSize"}
        ])
    );
    let r = server
        .http
        .post(server.url("/v1/settings"))
        .bearer_auth(&token)
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    let (status, body) = into_json(r).await;
    assert_eq!(
        (status, body["message"].clone()),
        (400, json!("Invalid input"))
    );
    let big = json!({"serviceUrl": format!("https://example.com/{}", "a".repeat(2000))});
    let (status, body) = server
        .send(Method::POST, "/v1/settings", Some(&token), Some(big))
        .await;
    assert_eq!(status, 413);
    assert_eq!(body["error"], "Payload Too Large");
    assert_eq!(
        body["message"],
        "Payload content length greater than maximum allowed: 1024"
    );
    // Nothing was written by the rejected requests.
    let url = env
        .store()
        .await
        .raw_settings(&["serviceUrl"])
        .await
        .unwrap();
    assert_eq!(url, [None]);
}

#[tokio::test]
async fn stats_health_and_counters() {
    let env = Env::new("stats");
    let token = env.issue(&[]);
    let store = env.store().await;
    for a in ["a", "b"] {
        let fields = std::collections::BTreeMap::from([("account".to_string(), a.to_string())]);
        store.put_account(a, &fields).await.unwrap();
    }
    let server = env.start(&[]).await;
    let (status, body) = server.get("/health", None).await;
    let kind = match env.backend {
        Backend::Embedded => "embedded",
        Backend::Redis => "redis",
    };
    assert_eq!(
        (status, body),
        (200, json!({"success": true, "store": kind}))
    );
    let (status, stats) = server.get("/v1/stats", Some(&token)).await;
    assert_eq!(status, 200);
    assert_eq!(stats["version"], "2.79.2");
    assert_eq!(stats["accounts"], 2);
    let version = stats["store"]["version"].as_str().unwrap();
    assert!(version.starts_with(|c: char| c.is_ascii_digit()), "{stats}");
    assert_eq!(stats["store"]["type"], kind);
    match env.backend {
        Backend::Redis => {
            assert_eq!(stats["redis"], version);
            assert!(
                stats["store"]["location"]
                    .as_str()
                    .unwrap()
                    .starts_with("redis://")
            );
        }
        Backend::Embedded => {
            assert_eq!(stats["redis"], format!("embedded (SQLite {version})"));
            assert_eq!(
                stats["store"]["location"],
                env.data_dir.display().to_string()
            );
        }
    }
    // Accounts without IMAP settings: `unset` once their connection looked, else not yet
    // assigned (`disconnected`).
    let connections = &stats["connections"];
    assert_eq!(
        connections["unset"].as_u64().unwrap() + connections["disconnected"].as_u64().unwrap(),
        2,
        "{connections}"
    );
    assert!(stats["counters"]["apiCall:success"].is_u64());
    assert!(stats["redisPing"].is_number());
    let (status, body) = server.get("/v1/stats?seconds=abc", Some(&token)).await;
    assert_eq!(
        (status, body["fields"][0]["message"].clone()),
        (400, json!("\"seconds\" must be a number"))
    );
    let (status, _) = server.get("/v1/stats?seconds=604801", Some(&token)).await;
    assert_eq!(status, 400);
    // API call counters are flushed in batches and then reported.
    let (code, _) = server.stop();
    assert_eq!(code, 0);
    let server = env.start(&[]).await;
    let (_, stats) = server.get("/v1/stats", Some(&token)).await;
    assert!(
        stats["counters"]["apiCall:success"].as_u64().unwrap() >= 1,
        "{stats}"
    );
    assert!(
        stats["counters"]["apiCall:fail"].as_u64().unwrap() >= 2,
        "{stats}"
    );
}

#[tokio::test]
async fn openapi_and_docs() {
    let env = Env::new("openapi");
    let server = env.start(&[]).await;
    let (status, doc) = server.get("/swagger.json", None).await;
    assert_eq!(status, 200);
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
    for path in [
        "/v1/stats",
        "/v1/settings",
        "/v1/tokens",
        "/v1/tokens/{token}",
        "/v1/token",
        "/health",
        "/metrics",
    ] {
        assert!(
            doc["paths"].get(path).is_some(),
            "{path} missing from the OpenAPI document"
        );
    }
    assert!(doc["components"]["securitySchemes"]["bearerAuth"].is_object());
    let r = server.http.get(server.url("/docs/")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert!(
        r.text().await.unwrap().contains("swagger"),
        "Swagger UI page"
    );
    let (status, body) = server.get("/nowhere", None).await;
    assert_eq!(
        (status, body),
        (
            404,
            json!({"statusCode":404,"error":"Not Found","message":"Not Found"})
        )
    );
}

#[tokio::test]
async fn cors_for_configured_origins() {
    let env = Env::new("cors").var("EENGINE_CORS_ORIGIN", "https://app.example.com");
    let token = env.issue(&[]);
    let server = env.start(&[]).await;
    let preflight = server
        .http
        .request(Method::OPTIONS, server.url("/v1/stats"))
        .header("Origin", "https://app.example.com")
        .header("Access-Control-Request-Method", "GET")
        .header("Access-Control-Request-Headers", "authorization")
        .send()
        .await
        .unwrap();
    assert!(preflight.status().is_success(), "{}", preflight.status());
    assert_eq!(
        preflight.headers()["access-control-allow-origin"],
        "https://app.example.com"
    );
    assert_eq!(preflight.headers()["access-control-max-age"], "60");
    let r = server
        .http
        .get(server.url("/v1/stats"))
        .bearer_auth(&token)
        .header("Origin", "https://other.example.com")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(
        r.headers().get("access-control-allow-origin").is_none(),
        "other origins get no CORS headers"
    );
    // Without configuration there are no CORS headers at all.
    let plain = Env::new("cors-off");
    let server = plain.start(&[]).await;
    let r = server
        .http
        .get(server.url("/health"))
        .header("Origin", "https://app.example.com")
        .send()
        .await
        .unwrap();
    assert!(r.headers().get("access-control-allow-origin").is_none());
}

/// The same read-modify-write on an account: the masked IMAP/SMTP passwords and webhook URL
/// credentials shown by `GET /v1/account` keep their stored values when put back.
#[tokio::test]
async fn account_read_modify_write_keeps_passwords() {
    let env = Env::new("account-rmw");
    let token = env.issue(&[]);
    let server = env.start(&[]).await;
    let (status, body) = server.send(Method::POST, "/v1/account", Some(&token), Some(json!({
        "account": "rmw", "name": "RMW", "email": "rmw@example.com",
        "webhooks": "https://hu:hp@hooks.example.com/acct",
        "imap": {"host": "127.0.0.1", "port": 1, "secure": false, "auth": {"user": "rmw", "pass": "imap-pw"}},
        "smtp": {"host": "127.0.0.1", "port": 1, "secure": false, "auth": {"user": "rmw", "pass": "smtp-pw"}}
    }))).await;
    assert_eq!(status, 200, "{body}");
    let (_, shown) = server.get("/v1/account/rmw", Some(&token)).await;
    assert_eq!(shown["imap"]["auth"]["pass"], "******");
    assert_eq!(
        shown["webhooks"],
        "https://******:******@hooks.example.com/acct"
    );
    let (status, body) = server.send(Method::PUT, "/v1/account/rmw", Some(&token), Some(json!({
        "name": "Renamed", "imap": shown["imap"], "smtp": shown["smtp"], "webhooks": shown["webhooks"]
    }))).await;
    assert_eq!(status, 200, "{body}");
    let fields = env.store().await.account("rmw").await.unwrap().unwrap();
    let imap: serde_json::Value = serde_json::from_str(&fields["imap"]).unwrap();
    let smtp: serde_json::Value = serde_json::from_str(&fields["smtp"]).unwrap();
    assert_eq!(
        (imap["auth"]["pass"].clone(), smtp["auth"]["pass"].clone()),
        (json!("imap-pw"), json!("smtp-pw"))
    );
    assert_eq!(fields["webhooks"], "https://hu:hp@hooks.example.com/acct");
    assert_eq!(fields["name"], "Renamed");

    // Pointing the masked password at another server is refused.
    let mut elsewhere = shown["imap"].clone();
    elsewhere["host"] = json!("imap.attacker.example");
    let (status, body) = server
        .send(
            Method::PUT,
            "/v1/account/rmw",
            Some(&token),
            Some(json!({"imap": elsewhere})),
        )
        .await;
    assert_eq!(
        (status, body["fields"][0]["key"].clone()),
        (400, json!("imap.auth.pass"))
    );
}
