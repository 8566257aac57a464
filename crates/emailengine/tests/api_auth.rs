//! Authentication and authorization over HTTP: every 401/403/429 body of spec §3.8–§4.

mod common;

use common::*;
use serde_json::json;

#[tokio::test]
async fn missing_and_bad_tokens() {
    let env = Env::new("auth-401");
    let server = env.start(&[]).await;
    let r = server
        .http
        .get(server.url("/v1/stats"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["www-authenticate"], "Bearer");
    let (status, body) = into_json(r).await;
    assert_eq!(status, 401);
    assert_eq!(
        body,
        json!({"statusCode":401,"error":"Unauthorized","message":"Missing authentication"})
    );

    for bad in ["abc", &"g".repeat(64), &"a".repeat(64), &"a".repeat(65)] {
        let r = server
            .http
            .get(server.url("/v1/stats"))
            .bearer_auth(bad)
            .send()
            .await
            .unwrap();
        assert_eq!(
            r.headers()["www-authenticate"],
            "Bearer error=\"Bad token\""
        );
        let (status, body) = into_json(r).await;
        assert_eq!(
            (status, body),
            (
                401,
                json!({"statusCode":401,"error":"Unauthorized","message":"Bad token"})
            ),
            "{bad}"
        );
    }
    let (status, _) = server.get("/metrics", Some(&"a".repeat(64))).await;
    assert_eq!(status, 401);
    let r = server
        .http
        .get(server.url("/v1/stats"))
        .header("Authorization", "Basic dXNlcjpwYXNz")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
}

#[tokio::test]
async fn bearer_header_and_query_parameter() {
    let env = Env::new("auth-ways");
    let token = env.issue(&["-s", "api"]);
    let server = env.start(&[]).await;
    let (status, _) = server.get("/v1/stats", Some(&token)).await;
    assert_eq!(status, 200);
    let r = server
        .http
        .get(server.url(&format!("/v1/stats?access_token={token}")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let r = server
        .http
        .get(server.url("/v1/stats"))
        .header("Authorization", format!("bEaReR {token}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "scheme is case-insensitive");
    // The token value never reaches the log, not even from the query string.
    let log = server.log();
    assert!(!log.contains(&token), "token value in log");
    assert!(
        log.contains("\"tokenId\""),
        "requests are logged with the token id"
    );
}

#[tokio::test]
async fn scopes() {
    let env = Env::new("auth-scopes");
    let metrics_only = env.issue(&["-s", "metrics"]);
    let api_only = env.issue(&["-s", "api"]);
    let smtp_only = env.issue(&["-s", "smtp"]);
    let server = env.start(&[]).await;

    let (status, body) = server.get("/v1/stats", Some(&metrics_only)).await;
    assert_eq!(status, 403);
    assert_eq!(
        body,
        json!({"statusCode":403,"error":"Forbidden","message":"Unauthorized scope","requestedScope":"api"})
    );
    let (status, body) = server.get("/metrics", Some(&api_only)).await;
    assert_eq!(
        (status, body["requestedScope"].clone()),
        (403, json!("metrics"))
    );
    let (status, _) = server.get("/v1/settings", Some(&smtp_only)).await;
    assert_eq!(status, 403);

    let r = server
        .http
        .get(server.url("/metrics"))
        .bearer_auth(&metrics_only)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(
        r.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain")
    );
    let text = r.text().await.unwrap();
    assert!(
        text.contains("api_call{method=\"get\",statusCode=\"403\",route=\"/v1/stats\"} 1"),
        "{text}"
    );
    assert!(text.contains("process_resident_memory_bytes"));
}

#[tokio::test]
async fn account_bound_tokens_stay_in_their_account() {
    let env = Env::new("auth-bound");
    let bound = env.issue(&["-s", "api", "-a", "acme"]);
    let root = env.issue(&[]);
    let server = env.start(&[]).await;
    let denied = json!({"statusCode":403,"error":"Forbidden","message":"Unauthorized account"});
    for path in [
        "/v1/stats",
        "/v1/settings?webhooks=true",
        "/v1/tokens",
        "/v1/tokens?account=other",
        "/v1/tokens/account/other",
        &format!("/v1/tokens/{}", "a".repeat(64)),
    ] {
        let (status, body) = server.get(path, Some(&bound)).await;
        assert_eq!((status, &body), (403, &denied), "{path}");
    }
    // Its own account's routes are open to it (the admin group still needs an unnarrowed token).
    let (status, body) = server.get("/v1/tokens?account=acme", Some(&bound)).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["total"], 1);
    let (status, body) = server.get("/v1/tokens/account/acme", Some(&bound)).await;
    assert_eq!(
        (status, body["tokens"].as_array().map(Vec::len)),
        (200, Some(1))
    );
    for (method, path) in [
        (reqwest::Method::POST, "/v1/settings"),
        (reqwest::Method::DELETE, "/v1/tokens/{}"),
    ] {
        let path = path.replace("{}", &"b".repeat(64));
        let (status, body) = server
            .send(method, &path, Some(&bound), Some(json!({})))
            .await;
        assert_eq!((status, &body), (403, &denied), "{path}");
    }
    let (status, _) = server.get("/v1/stats", Some(&root)).await;
    assert_eq!(status, 200);
}

async fn put_record(env: &Env, id: &str, record: rmpv::Value) {
    let mut bytes = Vec::new();
    rmpv::encode::write_value(&mut bytes, &record).unwrap();
    env.store()
        .await
        .put_raw_token(&emailengine_store::RawToken {
            id: id.to_string(),
            record: bytes,
            access: Some(vec![0x80]),
        })
        .await
        .unwrap();
}

fn map(entries: Vec<(&str, rmpv::Value)>) -> rmpv::Value {
    rmpv::Value::Map(
        entries
            .into_iter()
            .map(|(k, v)| (rmpv::Value::from(k), v))
            .collect(),
    )
}

fn strings(items: &[&str]) -> rmpv::Value {
    rmpv::Value::Array(items.iter().map(|s| rmpv::Value::from(*s)).collect())
}

#[tokio::test]
async fn records_written_by_emailengine_authenticate() {
    // Older EmailEngine releases wrote `created` as a number; legacy tokens have no scopes.
    let env = Env::new("auth-legacy");
    put_record(
        &env,
        TEST_TOKEN_ID,
        map(vec![
            ("created", rmpv::Value::from(1_600_000_000_000u64)),
            ("description", rmpv::Value::from("legacy")),
        ]),
    )
    .await;
    let server = env.start(&[]).await;
    let (status, _) = server.get("/v1/stats", Some(TEST_TOKEN)).await;
    assert_eq!(status, 200, "a record without scopes is unrestricted");
    let (status, _) = server.get("/metrics", Some(TEST_TOKEN)).await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn restrictions_addresses_referrers_rate_limit() {
    let env = Env::new("auth-restrict");
    let ids = ["1", "2", "3", "4"].map(|n| {
        let t = n.repeat(64);
        let id = sha256_id(&t);
        (t, id)
    });
    put_record(
        &env,
        &ids[0].1,
        map(vec![
            ("created", rmpv::Value::from(1u64)),
            ("scopes", strings(&["api"])),
            (
                "restrictions",
                map(vec![("addresses", strings(&["10.0.0.0/8"]))]),
            ),
        ]),
    )
    .await;
    put_record(
        &env,
        &ids[1].1,
        map(vec![
            ("created", rmpv::Value::from(1u64)),
            ("scopes", strings(&["api"])),
            (
                "restrictions",
                map(vec![
                    ("addresses", strings(&["127.0.0.1/32", "::1"])),
                    ("referrers", strings(&["https://*.example.com/*"])),
                ]),
            ),
        ]),
    )
    .await;
    put_record(
        &env,
        &ids[2].1,
        map(vec![
            ("created", rmpv::Value::from(1u64)),
            ("scopes", strings(&["api"])),
            (
                "restrictions",
                map(vec![(
                    "rateLimit",
                    map(vec![
                        ("maxRequests", rmpv::Value::from(2)),
                        ("timeWindow", rmpv::Value::from(3600)),
                    ]),
                )]),
            ),
        ]),
    )
    .await;
    put_record(
        &env,
        &ids[3].1,
        map(vec![
            ("created", rmpv::Value::from(1u64)),
            ("scopes", strings(&["api"])),
            ("expires", rmpv::Value::from(1_000u64)),
        ]),
    )
    .await;
    let server = env.start(&[]).await;

    let (status, body) = server.get("/v1/stats", Some(&ids[0].0)).await;
    assert_eq!(
        (status, body),
        (
            403,
            json!({"statusCode":403,"error":"Forbidden","message":"Unauthorized address","remoteAddress":"127.0.0.1"})
        )
    );

    let (status, body) = server.get("/v1/stats", Some(&ids[1].0)).await;
    assert_eq!(
        (status, body),
        (
            403,
            json!({"statusCode":403,"error":"Forbidden","message":"Unauthorized referrer"})
        )
    );
    let r = server
        .http
        .get(server.url("/v1/stats"))
        .bearer_auth(&ids[1].0)
        .header("Referer", "https://app.example.com/page")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);

    for remaining in ["1", "0"] {
        let r = server
            .http
            .get(server.url("/v1/stats"))
            .bearer_auth(&ids[2].0)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        assert_eq!(r.headers()["x-ratelimit-limit"], "2");
        assert_eq!(r.headers()["x-ratelimit-remaining"], remaining);
        assert!(r.headers().contains_key("x-ratelimit-reset"));
    }
    let r = server
        .http
        .get(server.url("/v1/stats"))
        .bearer_auth(&ids[2].0)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 429);
    assert_eq!(r.headers()["x-ratelimit-limit"], "2");
    let (_, body) = into_json(r).await;
    assert_eq!(body["message"], "Rate limit exceeded");
    assert_eq!(body["error"], "Too Many Requests");
    assert!(
        body["ttl"]
            .as_u64()
            .is_some_and(|t| (1..=3600).contains(&t)),
        "{body}"
    );

    // An expired token is refused and removed.
    let (status, body) = server.get("/v1/stats", Some(&ids[3].0)).await;
    assert_eq!((status, body["message"].clone()), (401, json!("Bad token")));
    let store = env.store().await;
    let mut gone = false;
    for _ in 0..50 {
        let exists = store.token_ids(None).await.unwrap().contains(&ids[3].1);
        if !exists {
            gone = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert!(gone, "expired token reaped");
}

#[tokio::test]
async fn narrowed_permissions() {
    let env = Env::new("auth-perms");
    let t = "5".repeat(64);
    put_record(
        &env,
        &sha256_id(&t),
        map(vec![
            ("created", rmpv::Value::from(1u64)),
            ("scopes", strings(&["api"])),
            (
                "permissions",
                map(vec![
                    ("actions", strings(&["read"])),
                    ("groups", strings(&["diagnostics"])),
                ]),
            ),
        ]),
    )
    .await;
    let m = "6".repeat(64);
    put_record(
        &env,
        &sha256_id(&m),
        map(vec![
            ("created", rmpv::Value::from(1u64)),
            ("scopes", strings(&["api"])),
            ("permissions", map(vec![])),
        ]),
    )
    .await;
    let server = env.start(&[]).await;
    let (status, _) = server.get("/v1/stats", Some(&t)).await;
    assert_eq!(status, 200);
    let (status, body) = server.get("/v1/settings?webhooks=true", Some(&t)).await;
    assert_eq!(
        (status, body),
        (
            403,
            json!({"statusCode":403,"error":"Forbidden","message":"Unauthorized permission","requiredPermission":{"action":"read","group":"admin"}})
        )
    );
    let (status, _) = server.get("/v1/stats", Some(&m)).await;
    assert_eq!(status, 403, "malformed permissions deny everything");
}

#[tokio::test]
async fn disabled_tokens_let_requests_without_a_token_in() {
    let env = Env::new("auth-preauth").var("EENGINE_REQUIRE_API_AUTH", "false");
    let server = env.start(&[]).await;
    let (status, _) = server.get("/v1/stats", None).await;
    assert_eq!(status, 200);
    // A token presented anyway is still checked.
    let (status, _) = server.get("/v1/stats", Some(&"a".repeat(64))).await;
    assert_eq!(status, 401);
    // Unauthenticated callers cannot mint tokens.
    let (status, body) = server
        .send(
            reqwest::Method::POST,
            "/v1/tokens",
            None,
            Some(json!({"description": "x", "account": "a"})),
        )
        .await;
    assert_eq!(
        (status, body["message"].clone()),
        (
            403,
            json!("Can not provision an access token for an unauthenticated request")
        )
    );
}

fn sha256_id(token_hex: &str) -> String {
    emailengine_core::token::TokenValue::parse(token_hex)
        .unwrap()
        .id()
}
