//! The command-line tools, run as a user runs them, on the store of the test run (and the
//! token keys checked in EmailEngine's Redis layout).

mod common;

use common::*;
use redis::AsyncCommands;

#[tokio::test]
async fn issue_export_import_list_delete() {
    let env = Env::new("cli-flow");
    let token = env.issue(&["-d", "my token", "-s", "*"]);
    assert_eq!(token.len(), 64, "stdout is the bare token: {token:?}");
    assert!(token.bytes().all(|b| b.is_ascii_hexdigit()));

    // One stored token, bound to no account, its access entry an empty msgpack map.
    let store = env.store().await;
    let ids = store.token_ids(None).await.unwrap();
    assert_eq!(ids.len(), 1);
    let raw = store.raw_tokens().await.unwrap();
    assert_eq!(raw[0].access.as_deref(), Some(&[0x80u8][..]));
    let stored = store.token(&ids[0]).await.unwrap().unwrap();
    assert_eq!(stored.account, None);
    assert_eq!(stored.description.as_deref(), Some("my token"));

    let export = env.cli(&["tokens", "export", "-t", &token]);
    assert_eq!(export.code, 0, "{}", export.stderr);
    assert!(export.stdout.starts_with("hKJpZNlA"), "{}", export.stdout);
    assert!(!export.stdout.ends_with('\n'));
    // Export by id gives the same string.
    let by_id = env.cli(&["tokens", "export", "-t", &ids[0]]);
    assert_eq!(by_id.stdout, export.stdout);

    // Import into a fresh prefix; the original token value then works there.
    let other = Env::new("cli-flow-target");
    let imported = other.cli(&["tokens", "import", "-t", &export.stdout]);
    assert_eq!(
        (imported.code, imported.stderr.trim()),
        (0, "Token was imported")
    );
    let again = other.cli(&["tokens", "import", "-t", &export.stdout]);
    assert_eq!(
        (again.code, again.stderr.trim()),
        (0, "Token was not imported")
    );
    let server = other.start(&[]).await;
    let (status, _) = server.get("/v1/stats", Some(&token)).await;
    assert_eq!(status, 200);

    let list = env.cli(&["tokens", "list"]);
    assert_eq!(list.code, 0);
    assert!(list.stdout.contains(&ids[0]) && list.stdout.contains("my token"));
    assert!(
        !list.stdout.contains(&token),
        "list never shows token values"
    );

    let deleted = env.cli(&["tokens", "delete", "-t", &token]);
    assert_eq!(
        (deleted.code, deleted.stderr.trim()),
        (0, "Token was deleted")
    );
    assert!(store.token_ids(None).await.unwrap().is_empty());
    assert!(store.raw_tokens().await.unwrap().is_empty());
    let missing = env.cli(&["tokens", "delete", "-t", &token]);
    assert_eq!(
        (missing.code, missing.stderr.trim()),
        (1, "Token was not found")
    );
}

#[tokio::test]
async fn emailengine_test_token_imports_to_its_known_id() {
    let env = Env::new("cli-vector");
    let out = env.cli(&["tokens", "import", "-t", TEST_EXPORT]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let tokens = env.store().await.raw_tokens().await.unwrap();
    let raw = &tokens
        .iter()
        .find(|t| t.id == TEST_TOKEN_ID)
        .unwrap()
        .record;
    // Stored as a named msgpack map: created (timestamp ext), scopes, description.
    let value = rmpv::decode::read_value(&mut raw.as_slice()).unwrap();
    let map = value.as_map().expect("a msgpack map");
    let keys: Vec<&str> = map.iter().map(|(k, _)| k.as_str().unwrap()).collect();
    assert_eq!(keys, ["created", "scopes", "description"]);
    assert!(
        matches!(map[0].1, rmpv::Value::Ext(-1, _)),
        "created is a timestamp extension"
    );
    // Exporting it again gives EmailEngine's string except for the import time.
    let export = env.cli(&["tokens", "export", "-t", TEST_TOKEN]);
    assert_eq!(&export.stdout[..100], &TEST_EXPORT[..100]);
}

#[tokio::test]
async fn bound_token_is_indexed_under_its_account() {
    let env = Env::new("cli-bound");
    let token = env.issue(&["-a", "example", "-s", "api", "-s", "SMTP"]);
    let export = env.cli(&["tokens", "export", "-t", &token]);
    assert!(
        export.stdout.starts_with("haJpZNlA"),
        "5-key map: {}",
        export.stdout
    );
    let store = env.store().await;
    let bound = store.token_ids(Some("example")).await.unwrap();
    assert_eq!(bound.len(), 1);
    assert_eq!(store.token_ids(None).await.unwrap(), bound);
    assert_eq!(
        store.token(&bound[0]).await.unwrap().unwrap().scopes,
        Some(vec!["api".to_string(), "smtp".to_string()])
    );
}

/// The keys EmailEngine reads tokens from: `tokens`, `tokens:access`, `iat`, `iat:<account>`.
#[tokio::test]
async fn tokens_in_emailengine_redis_layout() {
    let env = Env::redis("cli-layout");
    let root = env.issue(&["-d", "root"]);
    env.issue(&["-a", "example"]);
    let mut r = redis().await;
    let mut ids: Vec<String> = r.hkeys(env.key("tokens")).await.unwrap();
    ids.sort();
    assert_eq!(ids.len(), 2);
    let root_ids: Vec<String> = r.smembers(env.key("iat")).await.unwrap();
    let bound: Vec<String> = r.smembers(env.key("iat:example")).await.unwrap();
    assert_eq!(root_ids.len(), 1);
    assert_eq!(bound.len(), 1);
    let mut both = [root_ids, bound].concat();
    both.sort();
    assert_eq!(both, ids);
    for id in &ids {
        let access: Vec<u8> = r.hget(env.key("tokens:access"), id).await.unwrap();
        assert_eq!(
            access,
            vec![0x80],
            "access entry starts as an empty msgpack map"
        );
    }
    // The id is the SHA-256 of the token's bytes.
    let value = emailengine_core::token::TokenValue::parse(&root).unwrap();
    assert!(ids.contains(&value.id()));
}

#[test]
fn bad_input_is_one_line_and_exit_1() {
    let env = Env::new("cli-errors");
    let cases: &[(&[&str], &str)] = &[
        (
            &["tokens", "issue", "-s", "root"],
            "Unknown scope: root. Allowed scopes: \"*\", \"api\", \"metrics\", \"smtp\", \"imap-proxy\", \"mcp\"",
        ),
        (&["tokens", "export", "-t", "xyz"], "Invalid token format"),
        (
            &["tokens", "export", "-t", &"a".repeat(64)],
            "Token was not found",
        ),
        (
            &["tokens", "import", "-t", "!!!"],
            "Invalid token export: not a base64url string",
        ),
        (
            &["tokens", "import", "-t", "wg"],
            "Invalid token export: token data is not a map",
        ),
        (
            &["tokens", "import"],
            "Missing export string. Pass it with -t/--token.",
        ),
        (
            &["tokens", "frob"],
            "Unknown tokens command: frob. Use issue, export, import, list or delete.",
        ),
        (
            &["frobnicate"],
            "Unknown command: frobnicate. Run \"emailengine help\" for the list of commands.",
        ),
        (
            &["password", "-p", "short"],
            "Password must be at least 8 characters",
        ),
        (
            &["--api.port=notaport"],
            "Invalid value for api.port: \"notaport\" is not a number",
        ),
    ];
    for (args, expected) in cases {
        let out = env.cli(args);
        assert_eq!(out.code, 1, "{args:?}: {}", out.stderr);
        assert_eq!(out.stderr.trim_end(), *expected, "{args:?}");
        assert_eq!(out.stderr.lines().count(), 1, "{args:?}");
        assert!(out.stdout.is_empty(), "{args:?} printed {:?}", out.stdout);
    }
}

#[test]
fn unreachable_redis_fails_fast() {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let env = Env::new("cli-noredis").var(
        "EENGINE_REDIS",
        &format!("redis://:hunter2@127.0.0.1:{port}/8"),
    );
    let out = env.cli(&["tokens", "issue"]);
    assert_eq!(out.code, 1);
    assert!(
        out.stderr.starts_with(&format!(
            "Failed to establish connection to Redis using redis://:***@127.0.0.1:{port}/8"
        )),
        "{}",
        out.stderr
    );
    assert!(
        !out.stderr.contains("hunter2"),
        "the password is never printed"
    );
    assert_eq!(out.stderr.lines().count(), 1);
    assert!(out.elapsed.as_secs() < 5, "took {:?}", out.elapsed);
}

#[tokio::test]
async fn password_hash_output_is_the_prepared_password_format() {
    let env = Env::new("cli-password");
    let out = env.cli(&["password", "-p", "correct horse", "--hash"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let decoded = base64_url_decode(&out.stdout);
    assert!(decoded.starts_with("$pbkdf2-sha256$i=600000$"), "{decoded}");
    let auth = env.store().await.raw_settings(&["authData"]).await.unwrap();
    let auth: serde_json::Value = serde_json::from_str(auth[0].as_deref().unwrap()).unwrap();
    assert_eq!(auth["user"], "admin");
    assert_eq!(auth["password"], decoded.as_str());
    let generated = env.cli(&["password"]);
    assert_eq!(
        generated.stdout.len(),
        32,
        "generated password: {:?}",
        generated.stdout
    );
}

fn base64_url_decode(s: &str) -> String {
    let alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut bits = 0u32;
    let mut n = 0;
    let mut out = Vec::new();
    for c in s.bytes() {
        let v = alphabet.iter().position(|a| *a == c).expect("base64url") as u32;
        bits = (bits << 6) | v;
        n += 6;
        if n >= 8 {
            n -= 8;
            out.push((bits >> n) as u8);
            bits &= (1 << n) - 1;
        }
    }
    String::from_utf8(out).unwrap()
}

#[test]
fn version_and_help() {
    let env = Env::new("cli-misc");
    let v = env.cli(&["version"]);
    assert_eq!(v.code, 0);
    assert!(v.stdout.starts_with("EmailEngine v2.79.2"));
    let v2 = env.cli(&["--version"]);
    assert_eq!(v2.stdout, v.stdout);
    let h = env.cli(&["help"]);
    assert_eq!(h.code, 0);
    assert!(h.stderr.contains("tokens issue"));
    let bad = env.cli(&["help", "nothing"]);
    assert_eq!(bad.code, 1);
}

#[tokio::test]
async fn encrypt_rotates_account_passwords_and_secret_settings() {
    let env = Env::new("cli-encrypt").var("EENGINE_SECRET", "old-secret");
    let store = env.store().await;
    let cipher = emailengine_core::secret::FieldCipher::new("old-secret");
    let imap = serde_json::json!({"host": "h", "port": 1, "auth": {"user": "u", "pass": cipher.encrypt("pw")}});
    let fields = std::collections::BTreeMap::from([("imap".to_string(), imap.to_string())]);
    store.put_account("a1", &fields).await.unwrap();
    store
        .put_raw_settings(&[("serviceSecret".into(), cipher.encrypt("\"s\""))])
        .await
        .unwrap();
    let imap_of = |s: std::sync::Arc<dyn emailengine_store::Store>| async move {
        s.account_field("a1", "imap").await.unwrap().unwrap()
    };

    // A wrong old secret changes nothing.
    let bad = Env {
        vars: vec![("EENGINE_SECRET".into(), "new-secret".into())],
        ..env.clone()
    };
    let out = bad.cli(&["encrypt", "--decrypt=wrong"]);
    assert_eq!(out.code, 1, "{}", out.stderr);
    assert_eq!(imap_of(store.clone()).await, imap.to_string());

    let out = bad.cli(&["encrypt", "--decrypt=old-secret"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(
        out.stderr.contains("a1: updated") && out.stderr.contains("Updated 1/1 accounts"),
        "{}",
        out.stderr
    );
    let stored: serde_json::Value = serde_json::from_str(&imap_of(store.clone()).await).unwrap();
    let new = emailengine_core::secret::FieldCipher::new("new-secret");
    assert_eq!(
        new.decrypt(stored["auth"]["pass"].as_str().unwrap())
            .unwrap(),
        "pw"
    );
    let secret = store.raw_settings(&["serviceSecret"]).await.unwrap();
    assert_eq!(new.decrypt(secret[0].as_deref().unwrap()).unwrap(), "\"s\"");
}
