//! OAuth2 applications (spec §14) over HTTP, stored as EmailEngine stores them.

mod common;

use common::*;
use reqwest::Method;
use serde_json::json;

#[tokio::test]
async fn apps_are_registered_masked_updated_and_deleted() {
    let env = Env::new("oauth-apps").var("EENGINE_SECRET", "app-secret");
    let token = env.issue(&[]);
    let server = env.start(&[]).await;
    let (status, created) = server
        .send(
            Method::POST,
            "/v1/oauth2",
            Some(&token),
            Some(json!({
                "name": "Gmail", "provider": "gmail", "enabled": true,
                "clientId": "cid.apps.googleusercontent.com", "clientSecret": "very-secret",
                "redirectUrl": "https://ee.example.com/oauth",
            })),
        )
        .await;
    assert_eq!(status, 200, "{created}");
    assert_eq!(created["created"], true);
    let id = created["id"].as_str().unwrap().to_string();
    assert_eq!(id.len(), 16, "base64url of 12 bytes");

    let (status, app) = server.get(&format!("/v1/oauth2/{id}"), Some(&token)).await;
    assert_eq!(status, 200);
    assert_eq!(app["clientSecret"], "******");
    assert_eq!(app["provider"], "gmail");
    assert_eq!(app["accounts"], 0);
    assert!(!app.to_string().contains("very-secret"));
    let (data, _) = env.store().await.app(&id).await.unwrap().unwrap();
    let raw = String::from_utf8_lossy(&data);
    assert!(
        raw.contains("$wd01$") && !raw.contains("very-secret"),
        "stored encrypted"
    );

    // A field of another provider, and a missing required one, are refused.
    let (status, body) = server
        .send(
            Method::POST,
            "/v1/oauth2",
            Some(&token),
            Some(json!({"name": "x", "provider": "gmail", "clientId": "c", "redirectUrl": "https://x/oauth", "authority": "common"})),
        )
        .await;
    assert_eq!(status, 400, "{body}");
    let keys: Vec<&str> = body["fields"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["key"].as_str().unwrap())
        .collect();
    assert!(
        keys.contains(&"clientSecret") && keys.contains(&"authority"),
        "{body}"
    );

    let (status, body) = server
        .send(
            Method::PUT,
            &format!("/v1/oauth2/{id}"),
            Some(&token),
            Some(json!({"name": "Google", "clientSecret": ""})),
        )
        .await;
    assert_eq!((status, body), (200, json!({"id": id, "updated": true})));
    let (_, list) = server.get("/v1/oauth2", Some(&token)).await;
    assert_eq!(list["total"], 1);
    assert_eq!(list["apps"][0]["name"], "Google");
    assert_eq!(
        list["apps"][0]["clientSecret"], "******",
        "an empty secret keeps the stored one"
    );

    let (status, body) = server
        .send(
            Method::DELETE,
            &format!("/v1/oauth2/{id}"),
            Some(&token),
            None,
        )
        .await;
    assert_eq!(
        (status, body),
        (200, json!({"id": id, "deleted": true, "accounts": 0}))
    );
    let (status, _) = server.get(&format!("/v1/oauth2/{id}"), Some(&token)).await;
    assert_eq!(status, 404);
    let (_, body) = server
        .send(
            Method::DELETE,
            &format!("/v1/oauth2/{id}"),
            Some(&token),
            None,
        )
        .await;
    assert_eq!(body, json!({"id": id, "deleted": false, "accounts": 0}));
}
