//! `emailengine migrate` between Redis and the embedded store, as a team moving its data would
//! run it: Redis → embedded → Redis leaves the Redis data as it was (compared key by key), and
//! a server on either side serves the same accounts and tokens.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use common::*;
use redis::AsyncCommands;
use reqwest::Method;
use serde_json::{Value, json};

/// Every key under a prefix with its type and contents, prefix removed. Keys that `migrate`
/// does not copy by design are left out: per-minute stats, rate-limit windows, idempotency
/// keys (24 h dedupe windows), and the event stream itself (only its undelivered events are
/// copied; compared separately).
async fn dump(prefix: &str) -> BTreeMap<String, (String, Vec<Vec<Vec<u8>>>)> {
    let mut r = redis().await;
    let keys: Vec<String> = {
        let mut iter: redis::AsyncIter<String> = r.scan_match(format!("{prefix}:*")).await.unwrap();
        let mut keys = Vec::new();
        while let Some(k) = iter.next_item().await {
            keys.push(k.unwrap());
        }
        keys
    };
    let mut out = BTreeMap::new();
    for key in keys {
        let name = key[prefix.len() + 1..].to_string();
        if name.starts_with("stats:")
            || name.starts_with("rl:")
            || name.starts_with("idempotency:")
            || name == "events"
        {
            continue;
        }
        let kind: String = redis::cmd("TYPE")
            .arg(&key)
            .query_async(&mut r)
            .await
            .unwrap();
        let mut rows: Vec<Vec<Vec<u8>>> = match kind.as_str() {
            "hash" => {
                let all: Vec<(Vec<u8>, Vec<u8>)> = r.hgetall(&key).await.unwrap();
                all.into_iter().map(|(k, v)| vec![k, v]).collect()
            }
            "set" => {
                let all: Vec<Vec<u8>> = r.smembers(&key).await.unwrap();
                all.into_iter().map(|m| vec![m]).collect()
            }
            "zset" => {
                let all: Vec<(Vec<u8>, f64)> = r.zrange_withscores(&key, 0, -1).await.unwrap();
                all.into_iter()
                    .map(|(m, s)| vec![m, s.to_string().into_bytes()])
                    .collect()
            }
            "string" => {
                let v: Vec<u8> = r.get(&key).await.unwrap();
                vec![vec![v]]
            }
            other => panic!("unexpected key type {other} for {name}"),
        };
        rows.sort();
        out.insert(name, (kind, rows));
    }
    out
}

fn migrate(args: &[&str]) -> CliOutput {
    // Any environment will do: `migrate` names both stores itself.
    Env::redis("migrate-cli").cli(&[&["migrate"], args].concat())
}

#[tokio::test]
async fn redis_to_embedded_to_redis_keeps_every_key() {
    // A Redis store with an account, its index, tokens, settings and a queued message.
    let source = Env::redis("mig-src");
    let user = format!("{}@example.com", source.prefix);
    fill_maildir(&user, 12, "migrate");
    let token = source.issue(&["-d", "admin"]);
    source.issue(&["-a", "ann", "-d", "bound"]);
    let server = source.start(&[]).await;
    let (imap, smtp) = mail_ports();
    let (status, body) = server
        .send(
            Method::POST,
            "/v1/account",
            Some(&token),
            Some(json!({
                "account": "ann", "name": "Ann", "email": user,
                "imap": {"host": "127.0.0.1", "port": imap, "secure": false, "auth": {"user": user, "pass": "pass"}},
                "smtp": {"host": "127.0.0.1", "port": smtp, "secure": false},
            })),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    wait_for("ann connected", 20, || async {
        let (_, b) = server.get("/v1/account/ann", Some(&token)).await;
        (b["state"] == "connected").then_some(())
    })
    .await;
    server
        .send(
            Method::POST,
            "/v1/settings",
            Some(&token),
            Some(json!({"serviceUrl": "https://ee.example.com", "webhooks": "https://u:p@hooks.example.com/x"})),
        )
        .await;
    let (status, queued) = server
        .send(
            Method::POST,
            "/v1/account/ann/submit",
            Some(&token),
            Some(json!({"to": [{"address": "bob@example.com"}], "subject": "later", "text": "x", "sendAt": "2099-01-01T00:00:00Z"})),
        )
        .await;
    assert_eq!(status, 200, "{queued}");
    let (_, before_list) = server
        .get(
            "/v1/account/ann/messages?path=INBOX&pageSize=50",
            Some(&token),
        )
        .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (code, _) = server.stop();
    assert_eq!(code, 0);
    let before = dump(&source.prefix).await;
    assert!(
        before.contains_key("iad:ann") && before.contains_key("tokens"),
        "{:?}",
        before.keys()
    );

    // Redis → a new embedded store.
    let embedded = Env::on("mig-dir", Backend::Embedded);
    let dir = embedded.data_dir.to_str().unwrap().to_string();
    let url = redis_url();
    let out = migrate(&[
        "--from",
        &url,
        "--from-prefix",
        &source.prefix,
        "--to",
        &dir,
    ]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(out.stdout.contains("2 tokens"), "{}", out.stdout);
    assert!(
        out.stdout.contains("1 accounts")
            && out.stdout.contains("12 messages")
            && out.stdout.contains("1 queued messages"),
        "{}",
        out.stdout
    );

    // A non-empty target is refused without --force; with it, a second run changes nothing.
    let again = migrate(&[
        "--from",
        &url,
        "--from-prefix",
        &source.prefix,
        "--to",
        &dir,
    ]);
    assert_eq!(again.code, 1);
    assert!(
        again.stderr.contains("is not empty") && again.stderr.contains("--force"),
        "{}",
        again.stderr
    );
    let forced = migrate(&[
        "--from",
        &url,
        "--from-prefix",
        &source.prefix,
        "--to",
        &dir,
        "--force",
    ]);
    assert_eq!(forced.code, 0, "{}", forced.stderr);
    assert_eq!(forced.stdout.lines().nth(1), out.stdout.lines().nth(1));

    // Embedded → another Redis prefix, equal to the start key by key.
    let target = Env::redis("mig-dst");
    let back = migrate(&["--from", &dir, "--to", &url, "--to-prefix", &target.prefix]);
    assert_eq!(back.code, 0, "{}", back.stderr);
    let after = dump(&target.prefix).await;
    assert_eq!(
        before.keys().collect::<Vec<_>>(),
        after.keys().collect::<Vec<_>>()
    );
    for (key, value) in &before {
        assert_eq!(
            Some(value),
            after.get(key),
            "key {key} differs after the round trip"
        );
    }
    eprintln!(
        "Redis → embedded → Redis: {} keys equal: {:?}",
        before.len(),
        before.keys().collect::<Vec<_>>()
    );
    let (src_store, dst_store) = (source.store().await, target.store().await);
    assert_eq!(
        src_store.undelivered_events("webhooks").await.unwrap(),
        dst_store.undelivered_events("webhooks").await.unwrap()
    );

    // A server on either copy serves the same accounts, tokens and messages.
    for env in [&embedded, &target] {
        let server = env.start(&[]).await;
        let (status, list) = server.get("/v1/accounts", Some(&token)).await;
        assert_eq!(status, 200, "the token works on the copy: {list}");
        assert_eq!(list["accounts"][0]["account"], "ann");
        let (_, outbox) = server.get("/v1/outbox", Some(&token)).await;
        assert_eq!(
            outbox["messages"][0]["queueId"], queued["queueId"],
            "{outbox}"
        );
        wait_for("ann connected on the copy", 20, || async {
            let (_, b) = server.get("/v1/account/ann", Some(&token)).await;
            (b["state"] == "connected").then_some(())
        })
        .await;
        let (_, msgs) = server
            .get(
                "/v1/account/ann/messages?path=INBOX&pageSize=50",
                Some(&token),
            )
            .await;
        assert_eq!(
            msgs["messages"], before_list["messages"],
            "same message ids"
        );
        let new: Vec<Value> = env
            .events_of("ann", "messageNew")
            .await
            .into_iter()
            .map(|e| e.payload)
            .collect();
        assert!(
            new.is_empty(),
            "a copied index reports nothing again: {new:?}"
        );
        drop(server);
    }
}
