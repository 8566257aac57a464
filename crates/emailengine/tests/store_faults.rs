//! The store under faults, as a user meets them: the CLI writing beside a running server, a
//! server restarted and killed mid-write, a second server on the same data directory, data
//! directories that cannot be used, and Redis restarted in the middle of a sync.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use common::*;
use reqwest::Method;
use serde_json::{Value, json};

fn imap_account(account: &str, user: &str) -> Value {
    let (imap, _) = mail_ports();
    json!({
        "account": account, "name": account, "email": user,
        "imap": {"host": "127.0.0.1", "port": imap, "secure": false, "auth": {"user": user, "pass": "pass"}}
    })
}

async fn wait_connected(server: &Server, token: &str, account: &str, secs: u64) {
    wait_for(&format!("{account} connected"), secs, || async {
        let (status, body) = server
            .get(&format!("/v1/account/{account}"), Some(token))
            .await;
        (status == 200 && body["state"] == "connected").then_some(())
    })
    .await;
}

/// The seed workflow of EmailEngine's documentation, in another terminal while the server runs:
/// every CLI command takes effect on the running server at once.
#[tokio::test]
async fn the_cli_works_beside_a_running_server() {
    let env = Env::new("cli-beside");
    let server = env.start(&[]).await;
    let token = env.issue(&["-d", "my token", "-s", "*"]);
    let (status, _) = server.get("/v1/stats", Some(&token)).await;
    assert_eq!(
        status, 200,
        "a token issued while the server runs works at once"
    );

    let export = env.cli(&["tokens", "export", "-t", &token]);
    assert_eq!(export.code, 0, "{}", export.stderr);
    let again = env.cli(&["tokens", "import", "-t", &export.stdout]);
    assert_eq!(again.stderr.trim(), "Token was not imported");
    let list = env.cli(&["tokens", "list"]);
    assert!(list.stdout.contains("my token"), "{}", list.stdout);

    let password = env.cli(&["password", "-p", "correct horse battery"]);
    assert_eq!(password.code, 0, "{}", password.stderr);
    let stored = env.store().await.raw_settings(&["authData"]).await.unwrap();
    assert!(stored[0].as_deref().unwrap().contains("$pbkdf2-sha256$"));

    let deleted = env.cli(&["tokens", "delete", "-t", &token]);
    assert_eq!(deleted.code, 0, "{}", deleted.stderr);
    let (status, _) = server.get("/v1/stats", Some(&token)).await;
    assert_eq!(
        status, 401,
        "a token deleted while the server runs is refused at once"
    );
}

/// Everything a user set up is there after a restart: token, account, index, settings.
#[tokio::test]
async fn a_restart_keeps_tokens_accounts_indexes_and_settings() {
    let env = Env::new("restart-keeps");
    let user = format!("{}@example.com", env.prefix);
    fill_maildir(&user, 25, "old");
    let token = env.issue(&[]);
    let server = env.start(&[]).await;
    let (status, _) = server
        .send(
            Method::POST,
            "/v1/account",
            Some(&token),
            Some(imap_account("ann", &user)),
        )
        .await;
    assert_eq!(status, 200);
    wait_connected(&server, &token, "ann", 20).await;
    let (status, _) = server
        .send(
            Method::POST,
            "/v1/settings",
            Some(&token),
            Some(json!({"serviceUrl": "https://ee.example.com", "notifyTextSize": 1234})),
        )
        .await;
    assert_eq!(status, 200);
    let (_, before) = server
        .get(
            "/v1/account/ann/messages?path=INBOX&pageSize=100",
            Some(&token),
        )
        .await;
    assert_eq!(before["total"], 25);
    let (code, _) = server.stop();
    assert_eq!(code, 0);

    let server = env.start(&[]).await;
    let (status, settings) = server
        .get(
            "/v1/settings?serviceUrl=true&notifyTextSize=true",
            Some(&token),
        )
        .await;
    assert_eq!(status, 200, "the token survived");
    assert_eq!(
        settings,
        json!({"serviceUrl": "https://ee.example.com", "notifyTextSize": 1234})
    );
    wait_connected(&server, &token, "ann", 20).await;
    let (_, after) = server
        .get(
            "/v1/account/ann/messages?path=INBOX&pageSize=100",
            Some(&token),
        )
        .await;
    assert_eq!(
        after["messages"], before["messages"],
        "same ids, same index"
    );
    assert!(
        env.events_of("ann", "messageNew").await.is_empty(),
        "messages there before the account was added are never reported"
    );
}

/// Each account has one owner: a second server on the same data directory refuses to start.
#[tokio::test]
async fn a_second_server_on_the_same_data_directory_refuses_to_start() {
    let env = Env::on("two-servers", Backend::Embedded);
    let server = env.start(&[]).await;
    let second = env.cli(&["--api.port=1"]);
    assert_eq!(second.code, 1, "{}", second.stdout);
    let fatal = second
        .stdout
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .find(|l| l["level"] == 60)
        .unwrap_or_else(|| panic!("no fatal line: {}", second.stdout));
    let msg = fatal["msg"].as_str().unwrap();
    assert!(
        msg.contains("already using the data directory") && msg.contains("(pid "),
        "{msg}"
    );
    assert!(second.elapsed < Duration::from_secs(5));
    // The first one is unaffected, and the CLI still works beside it.
    let token = env.issue(&[]);
    assert_eq!(server.get("/v1/stats", Some(&token)).await.0, 200);
}

fn one_line_failure(out: &CliOutput, what: &str) -> String {
    assert_eq!(out.code, 1, "{what}: {} {}", out.stdout, out.stderr);
    assert_eq!(out.stderr.lines().count(), 1, "{what}: {}", out.stderr);
    assert!(!out.stderr.contains("panicked"), "{what}: {}", out.stderr);
    out.stderr.trim().to_string()
}

/// A data directory that cannot be used: one clear line and exit 1, from the CLI and the server.
#[test]
fn unusable_data_directories_fail_with_one_clear_line() {
    let base = std::env::temp_dir().join(unique_prefix("bad-dirs"));
    std::fs::create_dir_all(&base).unwrap();

    // A path that is a file.
    let file = base.join("a-file");
    std::fs::write(&file, "not a directory").unwrap();
    let env = Env::on("bad-file", Backend::Embedded).var("EENGINE_DB_PATH", file.to_str().unwrap());
    let line = one_line_failure(&env.cli(&["tokens", "issue"]), "file");
    assert!(
        line.contains("is not a directory") && line.contains("a-file"),
        "{line}"
    );

    // A corrupt database file.
    let corrupt = base.join("corrupt");
    std::fs::create_dir_all(&corrupt).unwrap();
    std::fs::write(corrupt.join("emailengine.db"), vec![0x5au8; 8192]).unwrap();
    let env =
        Env::on("bad-db", Backend::Embedded).var("EENGINE_DB_PATH", corrupt.to_str().unwrap());
    let line = one_line_failure(&env.cli(&["tokens", "list"]), "corrupt");
    assert!(line.contains("file is not a database"), "{line}");
    let server = env.cli(&["--api.port=1"]);
    assert_eq!(server.code, 1);
    assert!(
        server.stdout.contains("file is not a database") && !server.stdout.contains("panicked"),
        "{}",
        server.stdout
    );

    // A directory this user may not write to (as root, run the command as nobody).
    let locked = base.join("locked");
    std::fs::create_dir_all(&locked).unwrap();
    let mut perms = std::fs::metadata(&locked).unwrap().permissions();
    std::os::unix::fs::PermissionsExt::set_mode(&mut perms, 0o500);
    std::fs::set_permissions(&locked, perms).unwrap();
    let data = locked.join("data");
    let out = if running_as_root() {
        let mut perms = std::fs::metadata(&base).unwrap().permissions();
        std::os::unix::fs::PermissionsExt::set_mode(&mut perms, 0o755);
        std::fs::set_permissions(&base, perms).unwrap();
        let output = std::process::Command::new("setpriv")
            .args([
                "--reuid=65534",
                "--regid=65534",
                "--clear-groups",
                BIN,
                "tokens",
                "issue",
            ])
            .env_clear()
            .env("EENGINE_DB_PATH", &data)
            .output()
            .expect("setpriv");
        CliOutput {
            code: output.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
            elapsed: Duration::ZERO,
        }
    } else {
        Env::on("bad-perm", Backend::Embedded)
            .var("EENGINE_DB_PATH", data.to_str().unwrap())
            .cli(&["tokens", "issue"])
    };
    let line = one_line_failure(&out, "unwritable");
    assert!(
        line.contains("Cannot create the data directory") && line.contains("ermission denied"),
        "{line}"
    );

    // No HOME and no path: told what to set.
    let out = std::process::Command::new(BIN)
        .args(["tokens", "issue"])
        .env_clear()
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("EENGINE_DB_PATH"));
    let _ = std::fs::remove_dir_all(&base);
}

fn running_as_root() -> bool {
    std::process::Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

/// kill -9 while tokens are being issued (over the API and the CLI at once): every token that
/// was acknowledged works after the restart.
#[tokio::test]
async fn killed_while_issuing_tokens_nothing_acknowledged_is_lost() {
    let env = Env::new("kill-tokens");
    let root = env.issue(&[]);
    let server = env.start(&[]).await;
    let (status, body) = server
        .send(
            Method::POST,
            "/v1/account",
            Some(&root),
            Some(json!({"account": "acme", "name": "acme", "smtp": {"host": "127.0.0.1", "port": 9}})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let acknowledged = std::sync::Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let cli_env = env.clone();
    let cli_tokens = std::sync::Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let cli_out = cli_tokens.clone();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let stop_cli = stop.clone();
    let cli = std::thread::spawn(move || {
        while !stop_cli.load(Ordering::SeqCst) {
            let out = cli_env.cli(&["tokens", "issue", "-d", "cli loop"]);
            if out.code == 0 {
                cli_out.lock().unwrap().push(out.stdout);
            }
        }
    });
    let api = {
        let (base, root, acknowledged) = (server.base.clone(), root.clone(), acknowledged.clone());
        tokio::spawn(async move {
            let http = reqwest::Client::new();
            for i in 0.. {
                let r = http
                    .post(format!("{base}/v1/tokens"))
                    .bearer_auth(&root)
                    .json(&json!({"account": "acme", "description": format!("api {i}"), "scopes": ["api"]}))
                    .send()
                    .await;
                let Ok(r) = r else { break };
                if r.status() != 200 {
                    break;
                }
                let Ok(body) = r.json::<Value>().await else {
                    break;
                };
                if let Some(t) = body["token"].as_str() {
                    acknowledged.lock().unwrap().push(t.to_string());
                }
            }
        })
    };
    tokio::time::sleep(Duration::from_millis(1500)).await;
    server.kill();
    let _ = api.await;
    stop.store(true, Ordering::SeqCst);
    cli.join().unwrap();

    let server = env.start(&[]).await;
    let api_tokens = acknowledged.lock().unwrap().clone();
    let cli_tokens = cli_tokens.lock().unwrap().clone();
    assert!(
        api_tokens.len() > 20,
        "the API loop ran: {}",
        api_tokens.len()
    );
    assert!(!cli_tokens.is_empty(), "the CLI loop ran");
    for t in api_tokens.iter().chain(&cli_tokens) {
        let path = if api_tokens.contains(t) {
            "/v1/account/acme"
        } else {
            "/v1/stats"
        };
        let (status, body) = server.get(path, Some(t)).await;
        assert_eq!(status, 200, "token lost after kill -9: {body}");
    }
    eprintln!(
        "kill -9 during token writes: {} API and {} CLI tokens acknowledged, all present after restart",
        api_tokens.len(),
        cli_tokens.len()
    );
}

/// kill -9 while thousands of new messages are being reported: after the restart every
/// message is indexed and reported; the duplicates (at-least-once) are counted.
#[tokio::test]
async fn killed_mid_sync_every_new_message_is_reported_after_restart() {
    const NEW: usize = 5_000;
    let env = Env::new("kill-sync");
    let user = format!("{}@example.com", env.prefix);
    let token = env.issue(&[]);
    let server = env.start(&[]).await;
    server
        .send(
            Method::POST,
            "/v1/account",
            Some(&token),
            Some(imap_account("bulk", &user)),
        )
        .await;
    wait_connected(&server, &token, "bulk", 20).await;
    fill_maildir(&user, NEW, "bulk");
    let (status, _) = server
        .send(Method::PUT, "/v1/account/bulk/sync", Some(&token), None)
        .await;
    assert_eq!(status, 200);
    let store = env.store().await;
    let reported_before = wait_for("the first messageNew events", 30, || async {
        let n = env.events_of("bulk", "messageNew").await.len();
        (n >= 500).then_some(n)
    })
    .await;
    server.kill();
    let at_kill = env.events_of("bulk", "messageNew").await.len();
    assert!(
        at_kill < NEW,
        "killed mid-sync ({at_kill} of {NEW} reported)"
    );

    let server = env.start(&[]).await;
    wait_connected(&server, &token, "bulk", 60).await;
    let events = wait_for("every message reported", 60, || async {
        let e = env.events_of("bulk", "messageNew").await;
        let uids: BTreeSet<u64> = e
            .iter()
            .filter_map(|e| e.payload["data"]["uid"].as_u64())
            .collect();
        (uids.len() >= NEW).then_some(e)
    })
    .await;
    let mut per_uid: BTreeMap<u64, usize> = BTreeMap::new();
    for e in &events {
        *per_uid
            .entry(e.payload["data"]["uid"].as_u64().unwrap())
            .or_default() += 1;
    }
    assert_eq!(per_uid.len(), NEW, "every message reported");
    let duplicates: usize = per_uid.values().map(|n| n - 1).sum();
    let index = store.folder_index("bulk", "INBOX").await.unwrap();
    assert_eq!(index.len(), NEW, "every message indexed once");
    eprintln!(
        "kill -9 mid-sync: {reported_before}+ of {NEW} reported before the kill ({at_kill} at the kill), {NEW} after the restart, {duplicates} duplicates"
    );
    assert_eq!(
        duplicates, 0,
        "index entries and their events commit together, so nothing is reported twice"
    );
    drop(server);
}

/// Redis restarted while mail arrives, with webhooks on: the webhooks of the outage arrive
/// within seconds of Redis's return, and delivery goes on afterwards.
#[tokio::test]
async fn redis_restarted_mid_sync_every_message_new_is_delivered() {
    let mut redis = PrivateRedis::start("restart");
    let receiver = Receiver::default();
    let url = receiver.start().await;
    let env = Env::on_private_redis("redis-restart", &redis);
    let user = format!("{}@example.com", env.prefix);
    let token = env.issue(&[]);
    let server = env.start(&[]).await;
    let (status, _) = server
        .send(
            Method::POST,
            "/v1/settings",
            Some(&token),
            Some(
                json!({"webhooks": url, "webhooksEnabled": true, "webhookEvents": ["messageNew"]}),
            ),
        )
        .await;
    assert_eq!(status, 200);
    server
        .send(
            Method::POST,
            "/v1/account",
            Some(&token),
            Some(imap_account("ann", &user)),
        )
        .await;
    wait_connected(&server, &token, "ann", 20).await;
    send_mail(
        "bob@example.com",
        &user,
        "Subject: before\r\n\r\nbefore\r\n",
    );
    wait_for("the first webhook", 15, || async {
        (receiver.events().len() == 1).then_some(())
    })
    .await;

    redis.pause();
    for i in 0..3 {
        send_mail(
            "bob@example.com",
            &user,
            &format!("Subject: outage {i}\r\n\r\nx\r\n"),
        );
    }
    tokio::time::sleep(Duration::from_secs(10)).await;
    assert_eq!(
        receiver.events().len(),
        1,
        "nothing can be stored while Redis is down"
    );
    redis.resume();
    let back = Instant::now();
    let events = wait_for("the outage's messageNew webhooks", 30, || async {
        let e = receiver.events();
        (e.len() >= 4).then_some(e)
    })
    .await;
    let delay = back.elapsed();
    let subjects: BTreeSet<String> = events
        .iter()
        .map(|(_, b)| {
            b["data"]["subject"]
                .as_str()
                .unwrap_or_default()
                .to_string()
        })
        .collect();
    assert_eq!(
        subjects,
        BTreeSet::from(["before", "outage 0", "outage 1", "outage 2"].map(String::from))
    );
    eprintln!("Redis back: the outage's webhooks arrived {delay:?} later");
    assert!(delay < Duration::from_secs(15), "{delay:?}");
    // And the worker keeps delivering afterwards.
    send_mail("bob@example.com", &user, "Subject: after\r\n\r\nafter\r\n");
    wait_for("a webhook after the restart", 15, || async {
        receiver
            .events()
            .iter()
            .any(|(_, b)| b["data"]["subject"] == "after")
            .then_some(())
    })
    .await;
    drop(server);
}
