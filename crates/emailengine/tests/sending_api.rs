//! Templates, blocklists and SMTP gateways over HTTP (spec §18, §20.4, §22), with EmailEngine's
//! shapes and errors.

mod common;

use common::*;
use reqwest::Method;
use serde_json::{Value, json};

async fn add_account(server: &Server, token: &str, account: &str) {
    let (status, body) = server
        .send(
            Method::POST,
            "/v1/account",
            Some(token),
            Some(json!({"account": account, "name": account, "smtp": {"host": "127.0.0.1", "port": 9}})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
}

#[tokio::test]
async fn templates_are_created_listed_updated_and_deleted() {
    let env = Env::new("templates");
    let token = env.issue(&[]);
    let server = env.start(&[]).await;
    add_account(&server, &token, "ann").await;

    let (status, created) = server
        .send(
            Method::POST,
            "/v1/templates/template",
            Some(&token),
            Some(json!({"account": "ann", "name": "Welcome", "content": {"subject": "Hi {{params.name}}", "html": "<p>Hello</p>"}})),
        )
        .await;
    assert_eq!(status, 200, "{created}");
    assert_eq!(
        (created["created"].clone(), created["account"].clone()),
        (json!(true), json!("ann"))
    );
    let id = created["id"].as_str().unwrap().to_string();
    // The id embeds its owner: 8 bytes of time, 4 of counter, then the account.
    use base64::Engine as _;
    let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(&id)
        .unwrap();
    assert_eq!(&raw[12..], b"ann");

    let (_, public) = server
        .send(
            Method::POST,
            "/v1/templates/template",
            Some(&token),
            Some(json!({"account": null, "name": "Public", "format": "markdown", "content": {"text": "x"}})),
        )
        .await;
    assert_eq!(public["account"], Value::Null);

    let (_, list) = server.get("/v1/templates?account=ann", Some(&token)).await;
    assert_eq!(list["total"], 1);
    assert_eq!(list["templates"][0]["id"], id.as_str());
    assert_eq!(list["templates"][0]["name"], "Welcome");
    assert_eq!(list["templates"][0]["format"], "html");
    let (_, list) = server.get("/v1/templates", Some(&token)).await;
    assert_eq!(
        (list["total"].clone(), list["account"].clone()),
        (json!(1), Value::Null),
        "public only"
    );
    assert_eq!(list["templates"][0]["format"], "markdown");

    let (status, one) = server
        .get(&format!("/v1/templates/template/{id}"), Some(&token))
        .await;
    assert_eq!(status, 200);
    assert_eq!(
        one["content"],
        json!({"subject": "Hi {{params.name}}", "html": "<p>Hello</p>"})
    );
    assert_eq!(one["account"], "ann");

    let (status, updated) = server
        .send(
            Method::PUT,
            &format!("/v1/templates/template/{id}"),
            Some(&token),
            Some(json!({"name": "Welcome 2", "content": {"text": "plain"}})),
        )
        .await;
    assert_eq!(
        (status, updated),
        (200, json!({"updated": true, "account": "ann", "id": id}))
    );
    let (_, one) = server
        .get(&format!("/v1/templates/template/{id}"), Some(&token))
        .await;
    assert_eq!(
        one["content"],
        json!({"text": "plain"}),
        "content replaced whole"
    );
    assert_eq!(one["name"], "Welcome 2");
    assert!(one["updated"].is_string());

    // Errors in EmailEngine's shapes.
    let (status, body) = server
        .send(
            Method::POST,
            "/v1/templates/template",
            Some(&token),
            Some(json!({"account": "ghost", "name": "x", "content": {}})),
        )
        .await;
    assert_eq!(
        (status, body["message"].clone()),
        (404, json!("Account record was not found for requested ID"))
    );
    let (status, body) = server
        .send(
            Method::POST,
            "/v1/templates/template",
            Some(&token),
            Some(json!({"name": "x", "bogus": 1})),
        )
        .await;
    assert_eq!(status, 400);
    let keys: Vec<&str> = body["fields"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["key"].as_str().unwrap())
        .collect();
    assert!(
        keys.contains(&"account") && keys.contains(&"content") && keys.contains(&"bogus"),
        "{body}"
    );
    let (status, _) = server
        .get("/v1/templates/template/nope", Some(&token))
        .await;
    assert_eq!(status, 404);
    let (status, body) = server
        .send(
            Method::DELETE,
            "/v1/templates/account/ann",
            Some(&token),
            None,
        )
        .await;
    assert_eq!(
        (status, body["code"].clone()),
        (400, json!("ForceRequired"))
    );

    let (status, body) = server
        .send(
            Method::DELETE,
            &format!("/v1/templates/template/{id}"),
            Some(&token),
            None,
        )
        .await;
    assert_eq!(
        (status, body),
        (200, json!({"deleted": true, "account": "ann", "id": id}))
    );
    let (status, _) = server
        .get(&format!("/v1/templates/template/{id}"), Some(&token))
        .await;
    assert_eq!(status, 404);
    let (status, body) = server
        .send(
            Method::DELETE,
            "/v1/templates/account/ann?force=true",
            Some(&token),
            None,
        )
        .await;
    assert_eq!(
        (status, body),
        (200, json!({"flushed": true, "account": "ann"}))
    );
}

#[tokio::test]
async fn blocklists_hold_addresses_per_list() {
    let env = Env::new("blocklists");
    let token = env.issue(&[]);
    let server = env.start(&[]).await;
    add_account(&server, &token, "ann").await;

    let add = |recipient: &'static str| {
        server.send(
            Method::POST,
            "/v1/blocklist/test-list",
            Some(&token),
            Some(json!({"account": "ann", "recipient": recipient})),
        )
    };
    let (status, body) = add("Someone@Example.com").await;
    assert_eq!(
        (status, body),
        (200, json!({"success": true, "added": true}))
    );
    let (_, body) = add("someone@example.com").await;
    assert_eq!(
        body,
        json!({"success": true, "added": false}),
        "the same address"
    );
    add("other@example.com").await;

    let (_, lists) = server.get("/v1/blocklists", Some(&token)).await;
    assert_eq!(
        lists["blocklists"],
        json!([{"listId": "test-list", "count": 2}])
    );
    let (_, entries) = server.get("/v1/blocklist/test-list", Some(&token)).await;
    assert_eq!(entries["total"], 2);
    let first = &entries["addresses"][0];
    assert_eq!(first["recipient"], "other@example.com");
    assert_eq!(
        (
            first["account"].clone(),
            first["source"].clone(),
            first["reason"].clone()
        ),
        (json!("ann"), json!("api"), json!("block"))
    );
    assert!(first["created"].as_str().unwrap().ends_with('Z'));

    let (status, _) = server.get("/v1/blocklist/unknown-list", Some(&token)).await;
    assert_eq!(status, 404);
    let (status, _) = server
        .get("/v1/blocklist/not%20a%20host", Some(&token))
        .await;
    assert_eq!(status, 400);
    let (status, body) = server
        .send(
            Method::POST,
            "/v1/blocklist/test-list",
            Some(&token),
            Some(json!({"account": "ann", "recipient": "nope"})),
        )
        .await;
    assert_eq!(
        (status, body["fields"][0]["key"].clone()),
        (400, json!("recipient"))
    );

    let (status, body) = server
        .send(
            Method::DELETE,
            "/v1/blocklist/test-list?recipient=SOMEONE@example.com",
            Some(&token),
            None,
        )
        .await;
    assert_eq!((status, body), (200, json!({"deleted": true})));
    let (_, lists) = server.get("/v1/blocklists", Some(&token)).await;
    assert_eq!(lists["blocklists"][0]["count"], 1);
}

#[tokio::test]
async fn gateways_store_relays_with_masked_passwords() {
    let env = Env::new("gateways").var("EENGINE_SECRET", "gateway-secret");
    let token = env.issue(&[]);
    let server = env.start(&[]).await;
    let (status, created) = server
        .send(
            Method::POST,
            "/v1/gateway",
            Some(&token),
            Some(json!({"gateway": null, "name": "Relay", "host": "127.0.0.1", "port": 2525, "user": "u", "pass": "hunter2"})),
        )
        .await;
    assert_eq!(status, 200, "{created}");
    assert_eq!(created["state"], "new");
    let id = created["gateway"].as_str().unwrap().to_string();
    assert_eq!(id.len(), 16);
    assert!(
        id.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
    );

    let (status, one) = server.get(&format!("/v1/gateway/{id}"), Some(&token)).await;
    assert_eq!(status, 200);
    assert_eq!(
        one,
        json!({"gateway": id, "name": "Relay", "host": "127.0.0.1", "port": 2525, "user": "u",
               "pass": "******", "secure": false, "deliveries": 0, "lastUse": null, "lastError": null})
    );
    // The password is stored encrypted.
    let stored = env.store().await.gateway(&id).await.unwrap().unwrap();
    assert!(String::from_utf8_lossy(&stored["pass"]).starts_with("$wd01$"));

    let (status, body) = server
        .send(
            Method::PUT,
            &format!("/v1/gateway/edit/{id}"),
            Some(&token),
            Some(json!({"port": 2526, "pass": null})),
        )
        .await;
    assert_eq!((status, body), (200, json!({"gateway": id})));
    let (_, one) = server.get(&format!("/v1/gateway/{id}"), Some(&token)).await;
    assert_eq!(one["port"], 2526);
    assert!(one.get("pass").is_none(), "removed: {one}");

    let (_, list) = server.get("/v1/gateways", Some(&token)).await;
    assert_eq!(
        list["gateways"],
        json!([{"gateway": id, "name": "Relay", "deliveries": 0, "lastUse": null, "lastError": null}])
    );
    let (status, _) = server
        .send(
            Method::POST,
            "/v1/gateway",
            Some(&token),
            Some(json!({"gateway": "g", "name": "x"})),
        )
        .await;
    assert_eq!(status, 400);
    let (status, body) = server
        .send(
            Method::DELETE,
            &format!("/v1/gateway/{id}"),
            Some(&token),
            None,
        )
        .await;
    assert_eq!(
        (status, body),
        (200, json!({"gateway": id, "deleted": true}))
    );
    let (status, body) = server.get(&format!("/v1/gateway/{id}"), Some(&token)).await;
    assert_eq!(
        (status, body["message"].clone()),
        (404, json!("Gateway record was not found for requested ID"))
    );
}
