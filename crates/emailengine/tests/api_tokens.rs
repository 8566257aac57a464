//! The token routes (spec §3.7) driven over HTTP.

mod common;

use common::*;
use reqwest::Method;
use serde_json::json;

async fn add_account(env: &Env, account: &str) {
    let fields = std::collections::BTreeMap::from([("account".to_string(), account.to_string())]);
    env.store()
        .await
        .put_account(account, &fields)
        .await
        .unwrap();
}

#[tokio::test]
async fn provision_use_list_and_delete() {
    let env = Env::new("tokens-api");
    add_account(&env, "acme").await;
    let admin = env.issue(&[]);
    let server = env.start(&[]).await;

    let (status, body) = server
        .send(
            Method::POST,
            "/v1/tokens",
            Some(&admin),
            Some(json!({
                "account": "acme", "description": "for acme", "scopes": ["api"],
                "metadata": "{\"team\":\"a\"}", "ip": "192.0.2.1",
                "restrictions": {"addresses": ["127.0.0.1"]}
            })),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let token = body["token"].as_str().unwrap().to_string();
    let id = body["id"].as_str().unwrap().to_string();
    assert_eq!(
        emailengine_core::token::TokenValue::parse(&token)
            .unwrap()
            .id(),
        id
    );

    // The new token is bound to acme.
    let (status, _) = server.get("/v1/tokens?account=acme", Some(&token)).await;
    assert_eq!(status, 200);
    let (status, _) = server.get("/v1/stats", Some(&token)).await;
    assert_eq!(status, 403);

    let (status, info) = server.get(&format!("/v1/tokens/{id}"), Some(&admin)).await;
    assert_eq!(status, 200);
    assert_eq!(info["account"], "acme");
    assert_eq!(info["description"], "for acme");
    assert_eq!(info["scopes"], json!(["api"]));
    assert_eq!(info["metadata"], "{\"team\":\"a\"}");
    assert_eq!(info["ip"], "192.0.2.1");
    assert_eq!(info["remoteAddress"], "127.0.0.1");
    assert_eq!(info["restrictions"], json!({"addresses": ["127.0.0.1"]}));
    assert!(info["created"].as_str().unwrap().ends_with('Z'));
    assert_eq!(
        info["access"]["ip"], "127.0.0.1",
        "last use is visible at once: {info}"
    );

    let (status, list) = server.get("/v1/tokens", Some(&admin)).await;
    assert_eq!(status, 200);
    assert_eq!(list["total"], 2);
    assert_eq!(list["account"], json!(null));
    let listed: Vec<&str> = list["tokens"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["id"].as_str().unwrap())
        .collect();
    let mut sorted = listed.clone();
    sorted.sort_unstable_by(|a, b| b.cmp(a));
    assert_eq!(listed, sorted, "sorted by id, descending");
    let (_, page) = server
        .get("/v1/tokens?pageSize=1&page=1", Some(&admin))
        .await;
    assert_eq!(
        (
            page["pages"].clone(),
            page["tokens"].as_array().unwrap().len()
        ),
        (json!(2), 1)
    );
    let (_, found) = server
        .get("/v1/tokens?query=FOR%20ACME", Some(&admin))
        .await;
    assert_eq!(found["total"], 1);

    // Delete by value through the deprecated alias, then by id again: false.
    let (status, body) = server
        .send(
            Method::DELETE,
            &format!("/v1/token/{token}"),
            Some(&admin),
            None,
        )
        .await;
    assert_eq!((status, body), (200, json!({"deleted": true})));
    let (_, body) = server
        .send(
            Method::DELETE,
            &format!("/v1/tokens/{id}"),
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(body, json!({"deleted": false}));
    let (status, body) = server.get(&format!("/v1/tokens/{id}"), Some(&admin)).await;
    assert_eq!(
        (status, body["message"].clone()),
        (404, json!("Requested access token was not found"))
    );
    let bound = env.store().await.token_ids(Some("acme")).await.unwrap();
    assert!(bound.is_empty());
    let (status, _) = server.get("/v1/tokens?account=acme", Some(&token)).await;
    assert_eq!(status, 401);
}

#[tokio::test]
async fn provision_validation() {
    let env = Env::new("tokens-invalid");
    add_account(&env, "acme").await;
    let admin = env.issue(&[]);
    let server = env.start(&[]).await;
    let cases = [
        (json!({"account": "acme"}), "\"description\" is required"),
        (
            json!({"account": "acme", "description": "x", "scopes": ["*"]}),
            "\"scopes[0]\" must be one of [api, smtp, imap-proxy, mcp]",
        ),
        (
            json!({"description": "x"}),
            "A token with no account must set permissions, so that an instance-wide credential is always a narrowed one",
        ),
        (
            json!({"description": "x", "permissions": {}}),
            "\"permissions\" must name \"actions\" or \"groups\"",
        ),
        (
            json!({"account": "acme", "description": "x", "expires": "2000-01-01T00:00:00Z"}),
            "\"expires\" must be greater than \"now\"",
        ),
        (
            json!({"account": "acme", "description": "x", "metadata": "{"}),
            "\"metadata\" must be valid JSON",
        ),
        (
            json!({"account": "acme", "description": "x", "restrictions": {"addresses": ["nope"]}}),
            "\"restrictions.addresses\" holds an invalid address \"nope\"",
        ),
        (
            json!({"account": "acme", "description": "x", "colour": "red"}),
            "\"colour\" is not allowed",
        ),
    ];
    for (body, message) in cases {
        let (status, resp) = server
            .send(Method::POST, "/v1/tokens", Some(&admin), Some(body.clone()))
            .await;
        assert_eq!(status, 400, "{body} -> {resp}");
        assert_eq!(resp["message"], "Invalid input");
        let messages: Vec<&str> = resp["fields"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| f["message"].as_str().unwrap())
            .collect();
        assert!(messages.contains(&message), "{body}: {messages:?}");
    }
    let (status, body) = server
        .send(
            Method::POST,
            "/v1/tokens",
            Some(&admin),
            Some(json!({"account": "ghost", "description": "x"})),
        )
        .await;
    assert_eq!(
        (status, body["message"].clone()),
        (404, json!("Account record was not found for requested ID"))
    );
    // A narrowed instance-wide token works within its narrowing and never on admin routes.
    let (status, body) = server
        .send(
            Method::POST,
            "/v1/token",
            Some(&admin),
            Some(
                json!({"description": "stats reader", "permissions": {"groups": ["diagnostics"]}}),
            ),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let narrowed = body["token"].as_str().unwrap();
    assert_eq!(server.get("/v1/stats", Some(narrowed)).await.0, 200);
    assert_eq!(server.get("/v1/tokens", Some(narrowed)).await.0, 403);
    let (status, _) = server.get("/v1/tokens/nothex", Some(&admin)).await;
    assert_eq!(status, 400);
}

/// EmailEngine validates the body before it looks the account up: an `admin` group or an empty
/// axis is a 400 whether the account exists or not.
#[tokio::test]
async fn permissions_are_validated_before_the_account() {
    let env = Env::new("tokens-order");
    add_account(&env, "acme").await;
    let admin = env.issue(&[]);
    let server = env.start(&[]).await;
    for account in ["acme", "missing"] {
        let (status, body) = server
            .send(Method::POST, "/v1/tokens", Some(&admin), Some(json!({
                "account": account, "description": "d", "permissions": {"groups": ["message", "admin"]}
            })))
            .await;
        assert_eq!(status, 400, "{account}: {body}");
        assert_eq!(body["fields"][0]["key"], "permissions.groups[1]");
        assert!(
            body["fields"][0]["message"]
                .as_str()
                .unwrap()
                .starts_with("\"TokenGroup\" must be one of [account, mailbox, message,"),
            "{body}"
        );
    }
    for permissions in [json!({"actions": []}), json!({"groups": []})] {
        let (status, body) = server
            .send(
                Method::POST,
                "/v1/tokens",
                Some(&admin),
                Some(json!({
                    "description": "d", "permissions": permissions
                })),
            )
            .await;
        assert_eq!(status, 400, "{body}");
    }
    let (status, body) = server
        .send(
            Method::POST,
            "/v1/tokens",
            Some(&admin),
            Some(json!({
                "account": "missing", "description": "d", "permissions": {"groups": ["message"]}
            })),
        )
        .await;
    assert_eq!(
        (status, body["message"].clone()),
        (404, json!("Account record was not found for requested ID"))
    );
}

/// `expectedEmail` pins an account: registering (or updating) it to sign in as another
/// mailbox is refused.
#[tokio::test]
async fn expected_email_pins_the_login() {
    let env = Env::new("expected-email");
    let admin = env.issue(&[]);
    let server = env.start(&[]).await;
    let imap = |user: &str| json!({"host": "127.0.0.1", "port": 1, "secure": false, "auth": {"user": user, "pass": "pw"}});
    let (status, body) = server
        .send(Method::POST, "/v1/account", Some(&admin), Some(json!({
            "account": "pin", "name": "Pinned", "expectedEmail": "ann@example.com", "imap": imap("bob@example.com")
        })))
        .await;
    assert_eq!(
        (status, body["code"].clone()),
        (403, json!("AccountIdentityMismatch")),
        "{body}"
    );
    let (status, _) = server.get("/v1/account/pin", Some(&admin)).await;
    assert_eq!(status, 404);

    let (status, body) = server
        .send(Method::POST, "/v1/account", Some(&admin), Some(json!({
            "account": "pin", "name": "Pinned", "expectedEmail": "ann@example.com", "imap": imap("ANN@example.com")
        })))
        .await;
    assert_eq!(status, 200, "{body}");
    let (_, info) = server.get("/v1/account/pin", Some(&admin)).await;
    assert_eq!(
        (info["expectedEmail"].clone(), info["email"].clone()),
        (json!("ann@example.com"), json!("ann@example.com"))
    );
    let (status, body) = server
        .send(
            Method::PUT,
            "/v1/account/pin",
            Some(&admin),
            Some(json!({"imap": imap("eve@example.com")})),
        )
        .await;
    assert_eq!(
        (status, body["code"].clone()),
        (403, json!("AccountIdentityMismatch")),
        "{body}"
    );
}
