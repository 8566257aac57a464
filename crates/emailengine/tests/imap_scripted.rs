//! IMAP servers that misbehave in ways Dovecot will not: an in-process server on loopback,
//! scripted per test, that records every command it receives. Each test asserts what
//! EmailEngine answers (spec §13): states, `lastError`, backoff, and the commands sent.

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::*;
use reqwest::Method;
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;

/// How the scripted server answers.
#[derive(Clone)]
struct Script {
    capabilities: &'static str,
    /// LIST and LSUB answer BAD.
    broken_list: bool,
    /// INBOX holds one message, with Gmail's ids and labels.
    gmail_message: bool,
    /// The connection is closed (no BYE) once IDLE has begun.
    drop_in_idle: bool,
}

impl Script {
    /// A well-behaved server offering `capabilities`, with an empty INBOX.
    fn offering(capabilities: &'static str) -> Self {
        Self {
            capabilities,
            broken_list: false,
            gmail_message: false,
            drop_in_idle: false,
        }
    }
}

const GMAIL_HEADER: &str =
    "From: a@example.com\r\nSubject: gmail thread\r\nMessage-ID: <g@example.com>\r\n\r\n";

/// A FETCH answer for the one Gmail message, with the items the command asked for.
fn gmail_fetch(rest: &str) -> String {
    let upper = rest.to_ascii_uppercase();
    if upper.contains("X-GM-THRID") {
        return "* 1 FETCH (UID 1 X-GM-THRID 1766466000123456789)\r\n".into();
    }
    let mut items = String::from("UID 1 FLAGS (\\Seen)");
    if upper.contains("RFC822.SIZE") {
        items.push_str(" RFC822.SIZE 64 INTERNALDATE \"01-Jan-2024 00:00:00 +0000\"");
    }
    if upper.contains("X-GM-MSGID") {
        items.push_str(" X-GM-MSGID 1766466000999 X-GM-LABELS (\\Important)");
    }
    if upper.contains("BODY.PEEK[HEADER]") {
        items.push_str(&format!(
            " BODY[HEADER] {{{}}}\r\n{GMAIL_HEADER}",
            GMAIL_HEADER.len()
        ));
    } else if upper.contains("BODY.PEEK[]") {
        let source = format!("{GMAIL_HEADER}hello\r\n");
        items.push_str(&format!(" BODY[] {{{}}}\r\n{source}", source.len()));
    }
    format!("* 1 FETCH ({items})\r\n")
}

/// Every command line received, and the number of connections accepted.
#[derive(Clone, Default)]
struct Log {
    commands: Arc<Mutex<Vec<String>>>,
    connections: Arc<Mutex<usize>>,
}

impl Log {
    fn commands(&self) -> Vec<String> {
        self.commands.lock().unwrap().clone()
    }
    fn connections(&self) -> usize {
        *self.connections.lock().unwrap()
    }
}

async fn serve(script: Script) -> (u16, Log) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let log = Log::default();
    let l = log.clone();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            *l.connections.lock().unwrap() += 1;
            let (script, l) = (script.clone(), l.clone());
            tokio::spawn(async move {
                let (read, mut write) = stream.into_split();
                let mut lines = BufReader::new(read).lines();
                let caps = script.capabilities;
                let _ = write
                    .write_all(format!("* OK [CAPABILITY {caps}] scripted ready\r\n").as_bytes())
                    .await;
                let mut idle_tag = None;
                while let Ok(Some(line)) = lines.next_line().await {
                    l.commands.lock().unwrap().push(line.clone());
                    if line == "DONE" {
                        if let Some(tag) = idle_tag.take() {
                            let _ = write
                                .write_all(format!("{tag} OK IDLE done\r\n").as_bytes())
                                .await;
                        }
                        continue;
                    }
                    let mut parts = line.splitn(3, ' ');
                    let tag = parts.next().unwrap_or("*").to_string();
                    let cmd = parts.next().unwrap_or("").to_ascii_uppercase();
                    let rest = parts.next().unwrap_or("");
                    let reply = match cmd.as_str() {
                        "LOGIN" => format!("{tag} OK Logged in\r\n"),
                        "CAPABILITY" => format!("* CAPABILITY {caps}\r\n{tag} OK done\r\n"),
                        "ID" => format!("* ID (\"name\" \"scripted\")\r\n{tag} OK ID done\r\n"),
                        "ENABLE" => format!("* ENABLED {}\r\n{tag} OK enabled\r\n", rest),
                        "LSUB" | "LIST" if script.broken_list => {
                            format!("{tag} BAD Error in IMAP command {cmd}: broken listing\r\n")
                        }
                        "LSUB" => format!("* LSUB () \"/\" INBOX\r\n{tag} OK done\r\n"),
                        "LIST" => format!(
                            "* LIST () \"/\" INBOX\r\n* LIST () \"/\" Gone\r\n* LIST (\\NonExistent) \"/\" Ghost\r\n{tag} OK done\r\n"
                        ),
                        "SELECT" | "EXAMINE" | "STATUS" if rest.starts_with("\"Gone\"") => {
                            format!("{tag} NO [NONEXISTENT] Mailbox doesn't exist: Gone\r\n")
                        }
                        "SELECT" | "EXAMINE" if script.gmail_message => format!(
                            "* 1 EXISTS\r\n* OK [UIDVALIDITY 7] ok\r\n* OK [UIDNEXT 2] ok\r\n{tag} OK [READ-WRITE] done\r\n"
                        ),
                        "UID" | "FETCH"
                            if script.gmail_message
                                && (cmd == "FETCH"
                                    || rest.to_ascii_uppercase().starts_with("FETCH")) =>
                        {
                            format!("{}{tag} OK done\r\n", gmail_fetch(rest))
                        }
                        "UID"
                            if script.gmail_message
                                && rest.to_ascii_uppercase().starts_with("SEARCH") =>
                        {
                            format!(
                                "* SEARCH{}\r\n{tag} OK done\r\n",
                                if script.gmail_message { " 1" } else { "" }
                            )
                        }
                        "SELECT" | "EXAMINE" => format!(
                            "* 0 EXISTS\r\n* OK [UIDVALIDITY 7] ok\r\n* OK [UIDNEXT 1] ok\r\n* OK [HIGHESTMODSEQ 1] ok\r\n{tag} OK [READ-WRITE] done\r\n"
                        ),
                        "NOOP" => format!("{tag} OK done\r\n"),
                        "LOGOUT" => format!("* BYE bye\r\n{tag} OK done\r\n"),
                        "IDLE" if script.drop_in_idle => {
                            let _ = write.write_all(b"+ idling\r\n").await;
                            return;
                        }
                        "IDLE" => {
                            idle_tag = Some(tag.clone());
                            "+ idling\r\n".to_string()
                        }
                        _ => format!("{tag} BAD unknown command\r\n"),
                    };
                    if write.write_all(reply.as_bytes()).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    (port, log)
}

fn account(name: &str, port: u16, extra: Value) -> Value {
    let mut imap = json!({"host": "127.0.0.1", "port": port, "secure": false, "auth": {"user": name, "pass": "x"}});
    if let (Value::Object(i), Value::Object(e)) = (&mut imap, extra) {
        i.extend(e);
    }
    json!({"account": name, "name": name, "email": format!("{name}@example.com"), "imap": imap})
}

/// A server with a token, and `body` added as an account.
async fn with_account(test: &str, args: &[&str], body: Value) -> (Env, Server, String) {
    let env = Env::new(test);
    let token = env.issue(&[]);
    let server = env.start(args).await;
    let (status, answer) = server
        .send(Method::POST, "/v1/account", Some(&token), Some(body))
        .await;
    assert_eq!(status, 200, "{answer}");
    (env, server, token)
}

/// Waits until the account reports `state`; its record then.
async fn wait_state(server: &Server, token: &str, account: &str, state: &str) -> Value {
    wait_for(state, 20, || async {
        let (_, body) = server
            .get(&format!("/v1/account/{account}"), Some(token))
            .await;
        (body["state"] == state).then_some(body)
    })
    .await
}

#[tokio::test]
async fn listing_refused_is_a_connect_error_with_the_servers_text_then_backoff() {
    let (port, log) = serve(Script {
        broken_list: true,
        ..Script::offering("IMAP4rev1 IDLE")
    })
    .await;
    let (env, server, token) =
        with_account("scripted-list", &[], account("bad", port, json!({}))).await;
    let info = wait_state(&server, &token, "bad", "connectError").await;
    assert_eq!(
        info["lastError"]["response"],
        "Error in IMAP command LSUB: broken listing"
    );
    assert_eq!(info["lastError"]["serverResponseCode"], "BAD");
    let events = env.events_of("bad", "connectError").await;
    assert_eq!(events.len(), 1, "one connectError webhook for one error");
    assert_eq!(
        events[0].payload["data"]["response"],
        "Error in IMAP command LSUB: broken listing"
    );
    // Backoff: 2 s, then 4 s (±30 %): at most three connections within five seconds.
    let first = log.connections();
    tokio::time::sleep(Duration::from_secs(5)).await;
    let later = log.connections();
    assert!(
        later - first <= 2,
        "{first} then {later} connections in 5 s"
    );
    let (_, again) = server.get("/v1/account/bad", Some(&token)).await;
    assert_ne!(again["state"], "connected");
}

#[tokio::test]
async fn id_and_enable_are_sent_and_a_missing_folder_is_skipped() {
    let (port, log) = serve(Script::offering(
        "IMAP4rev1 IDLE ID ENABLE CONDSTORE IMAP4rev2",
    ))
    .await;
    let (_env, server, token) =
        with_account("scripted-enable", &[], account("good", port, json!({}))).await;
    let info = wait_state(&server, &token, "good", "connected").await;
    assert_eq!(info["lastError"], Value::Null);
    let commands = log.commands();
    assert!(
        commands
            .iter()
            .any(|c| c.contains(" ID (\"name\" \"EmailEngine\"")),
        "{commands:?}"
    );
    assert!(
        commands
            .iter()
            .any(|c| c.ends_with("ENABLE CONDSTORE IMAP4rev2")),
        "{commands:?}"
    );
    // The other folders are indexed after `connected`, on a command session: the folder the
    // server says is gone is skipped there; `\NonExistent` is never opened.
    wait_for("the other folders indexed", 10, || async {
        log.commands()
            .iter()
            .any(|c| c.contains("SELECT \"Gone\""))
            .then_some(())
    })
    .await;
    let commands = log.commands();
    assert!(
        !commands.iter().any(|c| c.contains("\"Ghost\"")),
        "{commands:?}"
    );
    let settled = log.connections();
    assert!(
        settled <= 2,
        "{settled} connections: IDLE and one command session"
    );
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(
        log.connections(),
        settled,
        "the account stays on its connections"
    );
    let (status, boxes) = server.get("/v1/account/good/mailboxes", Some(&token)).await;
    assert_eq!(status, 200);
    let paths: Vec<&str> = boxes["mailboxes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["path"].as_str().unwrap())
        .collect();
    assert_eq!(paths, ["INBOX", "Ghost", "Gone"]);
}

#[tokio::test]
async fn disable_imap4rev2_is_honoured() {
    let (port, log) = serve(Script::offering(
        "IMAP4rev1 IDLE ENABLE CONDSTORE IMAP4rev2",
    ))
    .await;
    let env = Env::new("scripted-rev2");
    let token = env.issue(&[]);
    let server = env.start(&[]).await;
    server
        .send(
            Method::POST,
            "/v1/account",
            Some(&token),
            Some(account("plain", port, json!({"disableIMAP4rev2": true}))),
        )
        .await;
    wait_state(&server, &token, "plain", "connected").await;
    let commands = log.commands();
    let enables: Vec<&String> = commands.iter().filter(|c| c.contains("ENABLE")).collect();
    assert_eq!(enables.len(), 1, "{commands:?}");
    assert!(enables[0].ends_with("ENABLE CONDSTORE"), "{enables:?}");
    assert!(
        !commands.iter().any(|c| c.contains(" ID ")),
        "no ID when not offered"
    );
}

#[tokio::test]
async fn gmail_messages_carry_gmail_thread_ids_and_labels() {
    let (port, log) = serve(Script {
        gmail_message: true,
        ..Script::offering("IMAP4rev1 IDLE X-GM-EXT-1")
    })
    .await;
    let (_env, server, token) =
        with_account("scripted-gmail", &[], account("gm", port, json!({}))).await;
    wait_state(&server, &token, "gm", "connected").await;
    let (status, list) = server
        .get("/v1/account/gm/messages?path=INBOX", Some(&token))
        .await;
    assert_eq!(status, 200, "{list}");
    let entry = &list["messages"][0];
    assert_eq!(entry["subject"], "gmail thread", "{list}");
    assert_eq!(entry["threadId"], "1766466000123456789", "{entry}");
    assert_eq!(entry["emailId"], "1766466000999");
    assert_eq!(entry["labels"], json!(["\\Important"]));
    let (status, details) = server
        .get(
            &format!("/v1/account/gm/message/{}", entry["id"].as_str().unwrap()),
            Some(&token),
        )
        .await;
    assert_eq!(status, 200, "{details}");
    assert_eq!(details["threadId"], "1766466000123456789");
    assert!(
        log.commands()
            .iter()
            .any(|c| c.ends_with("UID FETCH 1 (UID X-GM-THRID)")),
        "{:?}",
        log.commands()
    );
}

#[tokio::test]
async fn a_connection_closed_during_idle_is_reconnected_at_once() {
    let (port, log) = serve(Script {
        drop_in_idle: true,
        ..Script::offering("IMAP4rev1 IDLE")
    })
    .await;
    let (_env, server, _token) = with_account(
        "scripted-drop",
        &["--log.level=debug"],
        account("dropped", port, json!({})),
    )
    .await;
    // Each IDLE ends with the server hanging up; the account reconnects (after its backoff)
    // instead of spinning on the dead connection.
    wait_for("a reconnection", 20, || async {
        (log.connections() >= 2).then_some(())
    })
    .await;
    let lines = server.log().lines().count();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let grown = server.log().lines().count() - lines;
    assert!(grown < 200, "{grown} log lines in 2 s: the engine spins");
}

#[tokio::test]
async fn shutdown_is_prompt_with_many_accounts_stuck_connecting() {
    // A server that accepts and never greets: every account waits in its connect.
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((stream, _)) = listener.accept().await {
            held.push(stream);
        }
    });
    let env = Env::new("scripted-stuck");
    let token = env.issue(&[]);
    let server = env.start(&[]).await;
    for i in 0..30 {
        let (status, _) = server
            .send(
                Method::POST,
                "/v1/account",
                Some(&token),
                Some(account(&format!("stuck{i}"), port, json!({}))),
            )
            .await;
        assert_eq!(status, 200);
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    // All are stopped together under one deadline (each used to get its own, in turn).
    let started = std::time::Instant::now();
    let (code, log) = server.stop();
    assert_eq!(code, 0, "{log}");
    assert!(
        started.elapsed() < Duration::from_secs(8),
        "{:?}",
        started.elapsed()
    );
}
