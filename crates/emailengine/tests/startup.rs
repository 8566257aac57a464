//! Server start-up: prepared token, settings and password; logs; fatal errors.

mod common;

use common::*;

#[tokio::test]
async fn prepared_token_is_imported_once_and_logged_without_its_value() {
    let env = Env::new("prepared-token").var("EENGINE_PREPARED_TOKEN", TEST_EXPORT);
    let server = env.start(&[]).await;
    let (status, _) = server.get("/v1/stats", Some(TEST_TOKEN)).await;
    assert_eq!(status, 200);
    let (code, log) = server.stop();
    assert_eq!(code, 0);
    let line = log
        .lines()
        .find(|l| l.contains("Imported prepared token"))
        .expect("import logged");
    let entry: serde_json::Value = serde_json::from_str(line).unwrap();
    assert_eq!(entry["level"], 20);
    assert_eq!(entry["token"], TEST_TOKEN_ID);
    for field in ["time", "pid", "hostname"] {
        assert!(entry.get(field).is_some(), "pino field {field}");
    }
    assert!(
        !log.contains(TEST_TOKEN),
        "token value must never be logged"
    );

    // Second start: skipped, and the token keeps working.
    let server = env.start(&["--preparedToken", TEST_EXPORT]).await;
    assert_eq!(server.get("/v1/stats", Some(TEST_TOKEN)).await.0, 200);
    let (_, log) = server.stop();
    assert!(log.contains("Skipped prepared token"), "{log}");
}

#[test]
fn invalid_prepared_values_stop_startup() {
    let cases = [
        (
            "EENGINE_PREPARED_TOKEN",
            "not-an-export",
            "Invalid API token provided",
        ),
        (
            "EENGINE_SETTINGS",
            "{not json",
            "Invalid settings configuration provided",
        ),
        (
            "EENGINE_SETTINGS",
            "{\"webhooksEnabled\": \"perhaps\"}",
            "Invalid settings configuration provided",
        ),
        (
            "EENGINE_PREPARED_PASSWORD",
            "cGxhaW4",
            "Invalid password hash provided",
        ),
    ];
    for (var, value, message) in cases {
        let env = Env::new("prepared-bad")
            .var(var, value)
            .var("EENGINE_PORT", "1");
        let out = env.cli(&[]);
        assert_eq!(out.code, 1, "{var}: {}", out.stdout);
        let fatal = out
            .stdout
            .lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .find(|l| l["level"] == 60)
            .unwrap_or_else(|| panic!("no fatal line: {}", out.stdout));
        assert_eq!(fatal["msg"], message);
        assert!(out.elapsed.as_secs() < 5);
    }
}

#[tokio::test]
async fn prepared_settings_password_and_encrypted_service_secret() {
    let hash = {
        let env = Env::new("pw-source");
        env.cli(&["password", "-p", "prepared-pass", "-r"]).stdout
    };
    let env = Env::new("prepared-settings")
        .var(
            "EENGINE_SETTINGS",
            r#"{"webhooksEnabled": true, "webhooks": "http://127.0.0.1:9/hook", "unknownKey": 1}"#,
        )
        .var("EENGINE_PREPARED_PASSWORD", &hash)
        .var("EENGINE_SECRET", "a-long-service-secret");
    let token = env.issue(&[]);
    let server = env.start(&[]).await;
    let (_, body) = server
        .get(
            "/v1/settings?webhooksEnabled=true&webhooks=true&serviceSecret=true",
            Some(&token),
        )
        .await;
    assert_eq!(
        body,
        serde_json::json!({"webhooksEnabled": true, "webhooks": "http://127.0.0.1:9/hook", "serviceSecret": true})
    );
    let raw = env
        .store()
        .await
        .raw_settings(&["serviceSecret", "authData", "unknownKey"])
        .await
        .unwrap();
    let secret = raw[0].as_deref().unwrap();
    assert!(
        secret.starts_with("$wd01$aes-256-gcm$"),
        "serviceSecret is encrypted: {secret}"
    );
    assert!(
        raw[1]
            .as_deref()
            .unwrap()
            .contains("$pbkdf2-sha256$i=600000$")
    );
    assert!(raw[2].is_none(), "unknown prepared keys are dropped");
    let log = server.log();
    assert!(log.contains("Unknown keys in prepared settings were ignored"));
    assert!(!log.contains("a-long-service-secret"));
}

#[tokio::test]
async fn settings_stay_readable_after_restart_with_the_same_secret() {
    let env = Env::new("secret-restart").var("EENGINE_SECRET", "s3cret-value");
    let token = env.issue(&[]);
    let server = env.start(&[]).await;
    server.stop();
    let server = env.start(&[]).await;
    let (status, body) = server
        .get("/v1/settings?serviceSecret=true", Some(&token))
        .await;
    assert_eq!(
        (status, body),
        (200, serde_json::json!({"serviceSecret": true}))
    );
    let run = env.store().await.raw_settings(&["run"]).await.unwrap();
    assert_eq!(
        run,
        [Some("2".to_string())],
        "each start increments the run counter"
    );
}
