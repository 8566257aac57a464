//! One contract, two backends: every case here runs against the embedded store (a fresh data
//! directory) and against Redis (a private key prefix on the Redis named by
//! `EE_TEST_REDIS_URL`, or on a `redis-server` this test starts), and must behave the same.

use std::collections::BTreeMap;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use emailengine_core::token::{ImportedToken, TokenAccess, TokenRecord};
use emailengine_store::{
    Change, DeadEvent, LoggedEvent, MailboxGeneration, Role, Store, StoreConfig, migrate, open,
};

struct RedisServer {
    url: String,
    _child: Option<Child>,
}

fn redis_url() -> String {
    static REDIS: OnceLock<RedisServer> = OnceLock::new();
    REDIS
        .get_or_init(|| {
            if let Ok(url) = std::env::var("EE_TEST_REDIS_URL") {
                return RedisServer { url, _child: None };
            }
            let port = std::net::TcpListener::bind("127.0.0.1:0")
                .and_then(|l| l.local_addr())
                .map(|a| a.port())
                .expect("free port");
            let child = Command::new("redis-server")
                .args([
                    "--port",
                    &port.to_string(),
                    "--bind",
                    "127.0.0.1",
                    "--save",
                    "",
                    "--appendonly",
                    "no",
                ])
                .stdout(Stdio::null())
                .spawn()
                .expect("redis-server must be installed, or EE_TEST_REDIS_URL set");
            let deadline = Instant::now() + Duration::from_secs(10);
            while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
                assert!(Instant::now() < deadline, "redis-server did not start");
                std::thread::sleep(Duration::from_millis(20));
            }
            RedisServer {
                url: format!("redis://127.0.0.1:{port}/0"),
                _child: Some(child),
            }
        })
        .url
        .clone()
}

fn unique(name: &str) -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    format!(
        "c{}-{}-{name}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

async fn embedded(name: &str) -> Arc<dyn Store> {
    let dir = std::env::temp_dir().join(unique(name));
    open(&StoreConfig::Embedded { dir }, Role::Server)
        .await
        .expect("open embedded store")
}

/// The embedded store as a command-line tool opens it: one connection used in place.
async fn embedded_tool(name: &str) -> Arc<dyn Store> {
    let dir = std::env::temp_dir().join(unique(name));
    open(&StoreConfig::Embedded { dir }, Role::Tool)
        .await
        .expect("open embedded store")
}

async fn redis(name: &str) -> Arc<dyn Store> {
    open(
        &StoreConfig::Redis {
            url: redis_url(),
            prefix: unique(name),
        },
        Role::Tool,
    )
    .await
    .expect("connect to Redis")
}

/// Runs one contract case on both backends.
macro_rules! contract {
    ($($name:ident),* $(,)?) => {
        mod embedded_store {
            $(#[tokio::test] async fn $name() { super::$name(super::embedded(stringify!($name)).await.as_ref()).await; })*
        }
        mod embedded_tool {
            $(#[tokio::test] async fn $name() { super::$name(super::embedded_tool(stringify!($name)).await.as_ref()).await; })*
        }
        mod redis_store {
            $(#[tokio::test] async fn $name() { super::$name(super::redis(stringify!($name)).await.as_ref()).await; })*
        }
    };
}

contract!(
    tokens,
    token_import_and_expiry,
    rate_limits,
    settings,
    stats,
    accounts,
    account_state,
    mailbox_index,
    event_log,
    event_log_waits,
    dead_events,
    outbox,
    idempotency,
    bounce_records,
    commit_is_one_unit,
    templates,
    blocklists,
    gateways,
    oauth_apps,
    transient_keys_and_locks,
    webhook_routes,
    token_audit_log,
    account_logs,
);

fn record(account: Option<&str>, description: &str) -> TokenRecord {
    TokenRecord {
        created: 1_700_000_000_000,
        account: account.map(str::to_string),
        scopes: Some(vec!["api".into()]),
        description: Some(description.into()),
        ..Default::default()
    }
}

async fn tokens(s: &dyn Store) {
    assert_eq!(s.token("a".repeat(64).as_str()).await.unwrap(), None);
    s.put_token("t1", &record(None, "root")).await.unwrap();
    s.put_token("t2", &record(Some("ann"), "bound"))
        .await
        .unwrap();
    assert_eq!(
        s.token("t1").await.unwrap().unwrap().description.as_deref(),
        Some("root")
    );
    let mut all = s.token_ids(None).await.unwrap();
    all.sort();
    assert_eq!(all, vec!["t1", "t2"]);
    assert_eq!(s.token_ids(Some("ann")).await.unwrap(), vec!["t2"]);
    assert!(s.token_ids(Some("bob")).await.unwrap().is_empty());

    let listed = s
        .tokens(&["t2".into(), "missing".into(), "t1".into()])
        .await
        .unwrap();
    assert_eq!(
        listed.iter().map(|t| t.id.as_str()).collect::<Vec<_>>(),
        ["t2", "t1"]
    );
    assert_eq!(listed[0].access, TokenAccess::default());

    // Access entries coalesced by the API are written for live tokens only.
    let used = TokenAccess {
        time: Some(1_700_000_100_000),
        ip: Some("127.0.0.1".into()),
    };
    s.record_access(&[("t1".into(), used.clone()), ("gone".into(), used.clone())])
        .await
        .unwrap();
    let listed = s.tokens(&["t1".into(), "gone".into()]).await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].access, used);

    // Raw copies keep the bytes.
    let raw = s.raw_tokens().await.unwrap();
    assert_eq!(
        raw.iter().map(|t| t.id.as_str()).collect::<Vec<_>>(),
        ["t1", "t2"]
    );
    assert_eq!(raw[0].record, record(None, "root").encode());
    assert_eq!(raw[0].access.as_deref(), Some(used.encode().as_slice()));

    assert!(s.delete_token("t2").await.unwrap());
    assert!(!s.delete_token("t2").await.unwrap());
    assert!(s.token_ids(Some("ann")).await.unwrap().is_empty());
    s.put_raw_token(&raw[1]).await.unwrap();
    assert_eq!(s.token_ids(Some("ann")).await.unwrap(), vec!["t2"]);
}

async fn token_import_and_expiry(s: &dyn Store) {
    let now = 1_800_000_000_000;
    let live = ImportedToken {
        id: "imp".into(),
        record: record(None, "first"),
    };
    assert!(s.import_token(&live, now).await.unwrap());
    assert_eq!(s.token("imp").await.unwrap().unwrap().created, now);
    let again = ImportedToken {
        id: "imp".into(),
        record: record(None, "second"),
    };
    assert!(
        !s.import_token(&again, now).await.unwrap(),
        "a live token is kept"
    );
    // An expired token with the same id is replaced, as EmailEngine's import does.
    let mut expiring = record(None, "old");
    expiring.expires = Some(now - 1);
    s.put_token("exp", &expiring).await.unwrap();
    let fresh = ImportedToken {
        id: "exp".into(),
        record: record(None, "new"),
    };
    assert!(s.import_token(&fresh, now).await.unwrap());
    assert_eq!(
        s.token("exp")
            .await
            .unwrap()
            .unwrap()
            .description
            .as_deref(),
        Some("new")
    );
}

async fn rate_limits(s: &dyn Store) {
    assert_eq!(s.count_request("tok", 60, 7).await.unwrap(), 1);
    assert_eq!(s.count_request("tok", 60, 7).await.unwrap(), 2);
    assert_eq!(
        s.count_request("tok", 60, 8).await.unwrap(),
        1,
        "a new window starts at 1"
    );
    assert_eq!(s.count_request("other", 60, 7).await.unwrap(), 1);
    assert_eq!(s.count_request("tok", 30, 7).await.unwrap(), 1);
}

async fn settings(s: &dyn Store) {
    assert_eq!(s.raw_settings(&["a", "b"]).await.unwrap(), vec![None, None]);
    s.put_raw_settings(&[("a".into(), "1".into()), ("b".into(), "\"x\"".into())])
        .await
        .unwrap();
    assert_eq!(
        s.raw_settings(&["b", "a", "c"]).await.unwrap(),
        vec![Some("\"x\"".into()), Some("1".into()), None]
    );
    assert!(!s.put_raw_setting_if_missing("a", "2").await.unwrap());
    assert!(s.put_raw_setting_if_missing("c", "3").await.unwrap());
    assert_eq!(
        s.raw_settings(&["a", "c"]).await.unwrap(),
        vec![Some("1".into()), Some("3".into())]
    );
    assert_eq!(s.next_run().await.unwrap(), 1);
    assert_eq!(s.next_run().await.unwrap(), 2);
    let all: BTreeMap<String, String> = s.all_raw_settings().await.unwrap().into_iter().collect();
    assert_eq!(
        all,
        BTreeMap::from([
            ("a".into(), "1".into()),
            ("b".into(), "\"x\"".into()),
            ("c".into(), "3".into()),
            ("run".into(), "2".into()),
        ])
    );
}

async fn stats(s: &dyn Store) {
    let t = 1_734_953_814_623; // 2024-12-23 11:36:54 UTC
    s.add_counters(
        &[
            ("events:messageNew".into(), 2),
            ("apiCall:success".into(), 0),
        ],
        t,
    )
    .await
    .unwrap();
    s.add_counters(&[("events:messageNew".into(), 3)], t - 120_000)
        .await
        .unwrap();
    s.add_counters(&[("events:messageNew".into(), 5)], t - 7_200_000)
        .await
        .unwrap();
    let last_minute = s.counters(60, t).await.unwrap();
    assert_eq!(last_minute.get("events:messageNew"), Some(&2));
    assert_eq!(
        last_minute.get("apiCall:success"),
        None,
        "zero deltas register nothing"
    );
    assert_eq!(
        s.counters(300, t).await.unwrap().get("events:messageNew"),
        Some(&5)
    );
    assert_eq!(
        s.counters(3 * 3600, t)
            .await
            .unwrap()
            .get("events:messageNew"),
        Some(&10)
    );
    // A counter seen before is reported with 0 outside its minutes.
    assert_eq!(
        s.counters(60, t + 3_600_000)
            .await
            .unwrap()
            .get("events:messageNew"),
        Some(&0)
    );
}

fn fields(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

async fn accounts(s: &dyn Store) {
    assert_eq!(s.account_count().await.unwrap(), 0);
    assert!(
        s.put_account("ann", &fields(&[("account", "ann"), ("name", "Ann")]))
            .await
            .unwrap()
    );
    assert!(
        !s.put_account("ann", &fields(&[("email", "ann@x")]))
            .await
            .unwrap()
    );
    assert!(
        s.put_account("bob", &fields(&[("account", "bob")]))
            .await
            .unwrap()
    );
    assert!(s.account_exists("ann").await.unwrap());
    assert!(!s.account_exists("cat").await.unwrap());
    assert_eq!(s.account_count().await.unwrap(), 2);
    let mut ids = s.account_ids().await.unwrap();
    ids.sort();
    assert_eq!(ids, ["ann", "bob"]);
    assert_eq!(
        s.account("ann").await.unwrap().unwrap(),
        fields(&[("account", "ann"), ("email", "ann@x"), ("name", "Ann")])
    );
    assert_eq!(s.account("cat").await.unwrap(), None);
    assert!(
        !s.update_account("cat", &fields(&[("name", "C")]))
            .await
            .unwrap()
    );
    assert!(
        !s.account_exists("cat").await.unwrap(),
        "update never registers"
    );
    assert!(
        s.update_account("ann", &fields(&[("name", "Anne")]))
            .await
            .unwrap()
    );
    assert_eq!(
        s.account_field("ann", "name").await.unwrap().as_deref(),
        Some("Anne")
    );
    assert_eq!(s.account_field("ann", "nope").await.unwrap(), None);
    assert_eq!(
        s.account_summaries(
            &["bob".into(), "ann".into(), "cat".into()],
            &["name", "account"]
        )
        .await
        .unwrap(),
        vec![
            vec![None, Some("bob".into())],
            vec![Some("Anne".into()), Some("ann".into())],
            vec![None, None],
        ]
    );

    // Deleting an account removes its bound tokens and its index, not other accounts' data.
    s.put_token("ann-token", &record(Some("ann"), "a"))
        .await
        .unwrap();
    s.put_token("bob-token", &record(Some("bob"), "b"))
        .await
        .unwrap();
    s.put_listing("ann", &[("INBOX".into(), vec![1])])
        .await
        .unwrap();
    s.apply_folder_changes("ann", "INBOX", &[(1, vec![1, 2])], &[])
        .await
        .unwrap();
    s.put_folder_status("ann", "INBOX", &[("path".into(), "INBOX".into())])
        .await
        .unwrap();
    assert!(s.delete_account("ann").await.unwrap());
    assert!(!s.delete_account("ann").await.unwrap());
    assert_eq!(s.token("ann-token").await.unwrap(), None);
    assert!(s.token("bob-token").await.unwrap().is_some());
    assert!(s.listing("ann").await.unwrap().is_empty());
    assert!(s.folder_index("ann", "INBOX").await.unwrap().is_empty());
    assert!(s.indexed_folders("ann").await.unwrap().is_empty());
    assert_eq!(s.account_count().await.unwrap(), 1);
}

fn state(account: &str, state: &str, run: i64, error: Option<&str>) -> Change {
    Change::AccountState {
        account: account.into(),
        state: state.into(),
        run,
        error: error.map(str::to_string),
    }
}

async fn account_state(s: &dyn Store) {
    s.commit(vec![state("ghost", "connected", 1, None)])
        .await
        .unwrap();
    assert_eq!(
        s.account("ghost").await.unwrap(),
        None,
        "no record for an unknown account"
    );
    s.put_account("ann", &fields(&[("account", "ann")]))
        .await
        .unwrap();
    s.commit(vec![state("ann", "connecting", 3, None)])
        .await
        .unwrap();
    s.commit(vec![state(
        "ann",
        "authenticationError",
        2,
        Some("{\"response\":\"no\"}"),
    )])
    .await
    .unwrap();
    let f = s.account("ann").await.unwrap().unwrap();
    assert_eq!(f["state"], "authenticationError");
    assert_eq!(f["runIndex"], "3", "the run index only grows");
    assert_eq!(f["state:count:connecting"], "1");
    assert_eq!(f["lastErrorState"], "{\"response\":\"no\"}");
    assert_eq!(f["lastError:errorCount"], "1");
    s.commit(vec![state("ann", "connected", 4, None)])
        .await
        .unwrap();
    let f = s.account("ann").await.unwrap().unwrap();
    assert_eq!(f["state"], "connected");
    assert_eq!(f["runIndex"], "4");
    assert!(!f.contains_key("lastErrorState"));
    assert!(!f.contains_key("lastError:errorCount"));
    // With an event in the same write: one event id, and the state landed.
    let ids = s
        .commit(vec![
            state("ann", "syncing", 4, None),
            Change::Event {
                account: "ann".into(),
                event: "authenticationSuccess".into(),
                payload: "{}".into(),
            },
        ])
        .await
        .unwrap();
    assert_eq!(ids.len(), 1);
    let f = s.account("ann").await.unwrap().unwrap();
    assert_eq!(f["state"], "syncing");
    assert_eq!(f["state:count:syncing"], "1");
}

async fn mailbox_index(s: &dyn Store) {
    s.put_account("ann", &fields(&[("account", "ann")]))
        .await
        .unwrap();
    let inbox = s.mailbox_id("ann", 7, "INBOX").await.unwrap();
    let sent = s.mailbox_id("ann", 7, "Sent").await.unwrap();
    assert_eq!((inbox, sent), (1, 2));
    assert_eq!(s.mailbox_id("ann", 7, "INBOX").await.unwrap(), 1, "stable");
    assert_eq!(
        s.mailbox_id("ann", 8, "INBOX").await.unwrap(),
        3,
        "a new generation"
    );
    assert_eq!(
        s.account_field("ann", "listRegistry")
            .await
            .unwrap()
            .as_deref(),
        Some("3")
    );
    assert_eq!(
        s.mailbox_by_id("ann", 2).await.unwrap(),
        Some((7, "Sent".into()))
    );
    assert_eq!(s.mailbox_by_id("ann", 9).await.unwrap(), None);
    let registry = s.mailbox_registry("ann").await.unwrap();
    assert_eq!(
        registry,
        vec![
            MailboxGeneration {
                id: 1,
                uid_validity: 7,
                path: "INBOX".into()
            },
            MailboxGeneration {
                id: 2,
                uid_validity: 7,
                path: "Sent".into()
            },
            MailboxGeneration {
                id: 3,
                uid_validity: 8,
                path: "INBOX".into()
            },
        ]
    );
    s.put_mailbox_registry("bob", &registry).await.unwrap();
    assert_eq!(s.mailbox_registry("bob").await.unwrap(), registry);
    assert_eq!(s.mailbox_id("bob", 7, "Sent").await.unwrap(), 2);

    s.put_listing(
        "ann",
        &[("INBOX".into(), vec![1]), ("Sent".into(), vec![2])],
    )
    .await
    .unwrap();
    s.put_listing("ann", &[("INBOX".into(), vec![3])])
        .await
        .unwrap();
    assert_eq!(
        s.listing("ann").await.unwrap(),
        vec![("INBOX".into(), vec![3])],
        "replaced whole"
    );

    s.apply_folder_changes(
        "ann",
        "INBOX",
        &[(5, vec![5]), (2, vec![2]), (9, vec![9])],
        &[],
    )
    .await
    .unwrap();
    s.apply_folder_changes("ann", "inbox", &[(5, vec![55])], &[9])
        .await
        .unwrap();
    assert_eq!(
        s.folder_index("ann", "INBOX").await.unwrap(),
        vec![(2, vec![2]), (5, vec![55])],
        "INBOX is case-insensitive; entries ordered by UID"
    );
    assert_eq!(
        s.folder_entries("ann", "INBOX").await.unwrap(),
        vec![vec![2], vec![55]]
    );
    s.put_folder_status(
        "ann",
        "INBOX",
        &[
            ("path".into(), "INBOX".into()),
            ("uidNext".into(), "10".into()),
        ],
    )
    .await
    .unwrap();
    s.put_folder_status("ann", "INBOX", &[("uidNext".into(), "11".into())])
        .await
        .unwrap();
    s.put_folder_status("ann", "Sent", &[("path".into(), "Sent".into())])
        .await
        .unwrap();
    assert_eq!(
        s.folder_status("ann", "INBOX").await.unwrap(),
        fields(&[("path", "INBOX"), ("uidNext", "11")])
    );
    assert_eq!(s.indexed_folders("ann").await.unwrap(), ["INBOX", "Sent"]);
    s.reset_folder("ann", "INBOX").await.unwrap();
    assert!(s.folder_index("ann", "INBOX").await.unwrap().is_empty());
    assert!(s.folder_status("ann", "INBOX").await.unwrap().is_empty());
    assert_eq!(s.indexed_folders("ann").await.unwrap(), ["Sent"]);

    // A flush drops listing and folder indexes but keeps the id registry (ids stay stable).
    s.flush_account_index("ann").await.unwrap();
    assert!(s.listing("ann").await.unwrap().is_empty());
    assert!(s.indexed_folders("ann").await.unwrap().is_empty());
    assert_eq!(s.mailbox_id("ann", 7, "Sent").await.unwrap(), 2);
}

async fn event_log(s: &dyn Store) {
    let before = chrono::Utc::now().timestamp_millis();
    s.ensure_event_group("g").await.unwrap();
    s.ensure_event_group("g").await.unwrap();
    let a1 = s
        .append_event("ann", "messageNew", "{\"n\":1}")
        .await
        .unwrap();
    let b1 = s
        .append_event("bob", "messageNew", "{\"n\":2}")
        .await
        .unwrap();
    let a2 = s
        .append_event("ann", "messageDeleted", "{\"n\":3}")
        .await
        .unwrap();
    assert_eq!(s.events_pending_count("g").await.unwrap(), 3);

    let read = s.next_events("g", "c1", 2, 0).await.unwrap();
    assert_eq!(
        read.iter().map(|e| e.id.clone()).collect::<Vec<_>>(),
        [a1.clone(), b1.clone()]
    );
    assert_eq!(read[0].account, "ann");
    assert_eq!(read[0].event, "messageNew");
    assert_eq!(read[0].payload, "{\"n\":1}");
    assert!(read[0].queued_at >= before && read[0].queued_at <= before + 60_000);

    // Read but not acknowledged (a crash): read again as pending for the same consumer only.
    assert_eq!(s.pending_events("g", "c1", 10).await.unwrap().len(), 2);
    assert!(s.pending_events("g", "c2", 10).await.unwrap().is_empty());
    s.ack_events("g", std::slice::from_ref(&a1)).await.unwrap();
    assert_eq!(s.pending_events("g", "c1", 10).await.unwrap()[0].id, b1);
    assert_eq!(
        s.events_pending_count("g").await.unwrap(),
        2,
        "one pending, one unread"
    );

    let undelivered = s.undelivered_events("g").await.unwrap();
    assert_eq!(
        undelivered.iter().map(|e| e.id.clone()).collect::<Vec<_>>(),
        [b1.clone(), a2.clone()]
    );
    assert_eq!(
        s.undelivered_events("nobody").await.unwrap().len(),
        3,
        "no group: everything"
    );

    let rest = s.next_events("g", "c1", 10, 0).await.unwrap();
    assert_eq!(rest.len(), 1);
    assert_eq!(rest[0].id, a2);
    assert!(s.next_events("g", "c1", 10, 0).await.unwrap().is_empty());
    s.ack_events("g", &[]).await.unwrap();
    assert_eq!(s.events_pending_count("g").await.unwrap(), 2);
    // Several at once, with an id the group never read.
    s.ack_events("g", &[b1.clone(), a2.clone(), "1-1".to_string()])
        .await
        .unwrap();
    assert_eq!(s.events_pending_count("g").await.unwrap(), 0);
    assert!(s.undelivered_events("g").await.unwrap().is_empty());

    let recent = s.recent_events(Some("ann"), 10).await.unwrap();
    assert_eq!(
        recent.iter().map(|e| e.id.clone()).collect::<Vec<_>>(),
        [a2.clone(), a1.clone()]
    );
    assert_eq!(s.recent_events(None, 1).await.unwrap()[0].id, a2);

    // Imported events keep their ids and times and are not duplicated by a second import.
    let imported = LoggedEvent {
        id: "9999999999999-1".into(),
        account: "cat".into(),
        event: "accountAdded".into(),
        payload: "{}".into(),
        queued_at: 9_999_999_999_999,
    };
    s.import_events(std::slice::from_ref(&imported))
        .await
        .unwrap();
    s.import_events(std::slice::from_ref(&imported))
        .await
        .unwrap();
    let undelivered = s.undelivered_events("g").await.unwrap();
    assert_eq!(undelivered, vec![imported]);
}

async fn event_log_waits(s: &dyn Store) {
    s.ensure_event_group("g").await.unwrap();
    let start = Instant::now();
    assert!(s.next_events("g", "c", 10, 300).await.unwrap().is_empty());
    assert!(
        start.elapsed() >= Duration::from_millis(250),
        "waited for the block time"
    );
    let (read, _) = tokio::join!(s.next_events("g", "c", 10, 5_000), async {
        tokio::time::sleep(Duration::from_millis(100)).await;
        s.append_event("ann", "messageNew", "{}").await.unwrap()
    });
    assert_eq!(read.unwrap().len(), 1);
    assert!(
        start.elapsed() < Duration::from_secs(3),
        "woken by the append"
    );
}

async fn dead_events(s: &dyn Store) {
    let event = |id: &str| LoggedEvent {
        id: id.into(),
        account: "ann".into(),
        event: "messageNew".into(),
        payload: format!("{{\"id\":\"{id}\"}}"),
        queued_at: 1_000,
    };
    for (id, at) in [("1-1", 10), ("2-1", 30), ("3-1", 20)] {
        s.put_dead_event(&DeadEvent {
            event: event(id),
            reason: format!("HTTP 500 {id}"),
            at,
        })
        .await
        .unwrap();
    }
    let (total, page) = s.dead_events(0, 2).await.unwrap();
    assert_eq!(total, 3);
    assert_eq!(
        page,
        vec![
            DeadEvent {
                event: event("2-1"),
                reason: "HTTP 500 2-1".into(),
                at: 30
            },
            DeadEvent {
                event: event("3-1"),
                reason: "HTTP 500 3-1".into(),
                at: 20
            },
        ]
    );
    assert_eq!(s.dead_events(2, 10).await.unwrap().1[0].event.id, "1-1");
    assert_eq!(s.dead_event("3-1").await.unwrap(), Some(event("3-1")));
    // Re-sending: the event goes back to the log as the dead entry leaves, in one commit.
    let ids = s
        .commit(vec![
            Change::Event {
                account: "ann".into(),
                event: "messageNew".into(),
                payload: event("3-1").payload,
            },
            Change::RemoveDeadEvent { id: "3-1".into() },
        ])
        .await
        .unwrap();
    assert_eq!(ids.len(), 1);
    assert_eq!(s.dead_event("3-1").await.unwrap(), None);
    assert_eq!(s.dead_events(0, 0).await.unwrap().0, 2);
}

async fn outbox(s: &dyn Store) {
    s.put_outbox("ann", "q1", b"one", 100).await.unwrap();
    s.put_outbox("bob", "q2", b"two", 50).await.unwrap();
    s.put_outbox("ann", "q3", b"three", 500).await.unwrap();
    let (total, list) = s.list_outbox(0, 10).await.unwrap();
    assert_eq!(total, 3);
    assert_eq!(
        list.iter().map(|i| i.queue_id.as_str()).collect::<Vec<_>>(),
        ["q2", "q1", "q3"]
    );
    assert_eq!(s.list_outbox(1, 1).await.unwrap().1[0].queue_id, "q1");

    let claimed = s.claim_due("me", 200, 1_000, 10).await.unwrap();
    assert_eq!(
        claimed
            .iter()
            .map(|i| i.queue_id.as_str())
            .collect::<Vec<_>>(),
        ["q2", "q1"]
    );
    assert_eq!(claimed[0].account, "bob");
    assert_eq!(claimed[0].entry, b"two");
    assert_eq!(claimed[0].due, 1_200);
    assert!(
        s.claim_due("other", 300, 1_000, 10)
            .await
            .unwrap()
            .is_empty(),
        "leased"
    );
    assert_eq!(s.outbox_item("q1").await.unwrap().unwrap().due, 1_200);

    // A restarted instance takes back what its last run held.
    assert_eq!(s.release_leases("me", 400).await.unwrap(), 2);
    assert_eq!(s.release_leases("me", 400).await.unwrap(), 0);
    assert_eq!(s.claim_due("other", 450, 1_000, 1).await.unwrap().len(), 1);

    assert!(s.remove_outbox("q1").await.unwrap());
    assert!(!s.remove_outbox("q1").await.unwrap());
    assert_eq!(s.outbox_item("q1").await.unwrap(), None);
    assert_eq!(s.list_outbox(0, 0).await.unwrap().0, 2);
}

async fn idempotency(s: &dyn Store) {
    assert_eq!(s.idempotent("ann", "k", "first", 60).await.unwrap(), None);
    assert_eq!(
        s.idempotent("ann", "k", "second", 60)
            .await
            .unwrap()
            .as_deref(),
        Some("first")
    );
    assert_eq!(
        s.idempotent("bob", "k", "bob's", 60).await.unwrap(),
        None,
        "per account"
    );
}

async fn bounce_records(s: &dyn Store) {
    let append = |id: &str, record: &[u8]| Change::AppendBounce {
        account: "ann".into(),
        message_id: id.into(),
        record: record.to_vec(),
    };
    s.commit(vec![append("<a@x>", b"\x81\xa1i\x01")])
        .await
        .unwrap();
    s.commit(vec![
        append("<a@x>", b"\x81\xa1i\x02"),
        append("<b@x>", b"B"),
    ])
    .await
    .unwrap();
    let ids = ["<a@x>".to_string(), "<none@x>".into(), "<b@x>".into()];
    assert_eq!(
        s.bounce_records("ann", &ids).await.unwrap(),
        vec![
            Some(b"\x81\xa1i\x01\x81\xa1i\x02".to_vec()),
            None,
            Some(b"B".to_vec())
        ]
    );
    assert_eq!(
        s.bounce_records("bob", &ids[..1]).await.unwrap(),
        vec![None]
    );
    s.put_account("ann", &fields(&[("account", "ann")]))
        .await
        .unwrap();
    s.delete_account("ann").await.unwrap();
    assert_eq!(
        s.bounce_records("ann", &ids[..1]).await.unwrap(),
        vec![None]
    );
}

async fn commit_is_one_unit(s: &dyn Store) {
    s.ensure_event_group("g").await.unwrap();
    s.put_outbox("ann", "q1", b"entry", 0).await.unwrap();
    let ids = s
        .commit(vec![
            Change::FolderEntries {
                account: "ann".into(),
                path: "INBOX".into(),
                upsert: vec![(1, vec![1]), (2, vec![2])],
                remove: vec![],
            },
            Change::Event {
                account: "ann".into(),
                event: "messageNew".into(),
                payload: "{\"uid\":1}".into(),
            },
            Change::Event {
                account: "ann".into(),
                event: "messageNew".into(),
                payload: "{\"uid\":2}".into(),
            },
            Change::FolderStatus {
                account: "ann".into(),
                path: "INBOX".into(),
                fields: vec![
                    ("path".into(), "INBOX".into()),
                    ("uidNext".into(), "3".into()),
                ],
            },
            Change::RemoveOutbox {
                queue_id: "q1".into(),
            },
        ])
        .await
        .unwrap();
    assert_eq!(ids.len(), 2);
    let read = s.next_events("g", "c", 10, 0).await.unwrap();
    assert_eq!(read.iter().map(|e| e.id.clone()).collect::<Vec<_>>(), ids);
    assert_eq!(read[1].payload, "{\"uid\":2}");
    assert_eq!(s.folder_index("ann", "INBOX").await.unwrap().len(), 2);
    assert_eq!(
        s.folder_status("ann", "INBOX").await.unwrap()["uidNext"],
        "3"
    );
    assert_eq!(s.outbox_item("q1").await.unwrap(), None);
    assert!(s.commit(vec![]).await.unwrap().is_empty());
}

async fn templates(s: &dyn Store) {
    s.put_template(None, "p1", b"meta-p1", b"content-p1")
        .await
        .unwrap();
    s.put_template(Some("ann"), "a1", b"meta-a1", b"content-a1")
        .await
        .unwrap();
    s.put_template(Some("ann"), "a2", b"meta-a2", b"content-a2")
        .await
        .unwrap();
    assert_eq!(s.template_ids(None).await.unwrap(), ["p1"]);
    let mut ids = s.template_ids(Some("ann")).await.unwrap();
    ids.sort();
    assert_eq!(ids, ["a1", "a2"]);
    assert_eq!(
        s.template(Some("ann"), "a1").await.unwrap(),
        Some((b"meta-a1".to_vec(), b"content-a1".to_vec()))
    );
    assert_eq!(s.template(None, "a1").await.unwrap(), None, "per account");
    s.put_template(Some("ann"), "a1", b"meta-2", b"content-2")
        .await
        .unwrap();
    assert_eq!(
        s.template(Some("ann"), "a1").await.unwrap().unwrap().0,
        b"meta-2"
    );
    assert!(s.delete_template(Some("ann"), "a1").await.unwrap());
    assert!(!s.delete_template(Some("ann"), "a1").await.unwrap());
    assert_eq!(s.delete_account_templates("ann").await.unwrap(), 1);
    assert!(s.template_ids(Some("ann")).await.unwrap().is_empty());
    assert_eq!(s.template_ids(None).await.unwrap(), ["p1"]);
    assert_eq!(s.increment_setting("idcount").await.unwrap(), 1);
    assert_eq!(s.increment_setting("idcount").await.unwrap(), 2);
}

async fn blocklists(s: &dyn Store) {
    assert!(
        s.put_blocklist_entry("news", "a@x", "{\"n\":1}")
            .await
            .unwrap()
    );
    assert!(
        !s.put_blocklist_entry("news", "a@x", "{\"n\":2}")
            .await
            .unwrap(),
        "replaced"
    );
    assert!(s.put_blocklist_entry("news", "b@x", "{}").await.unwrap());
    assert!(s.put_blocklist_entry("other", "a@x", "{}").await.unwrap());
    assert_eq!(
        s.blocklists().await.unwrap(),
        vec![("news".into(), 2), ("other".into(), 1)]
    );
    assert_eq!(
        s.blocklist_entries("news").await.unwrap(),
        vec![
            ("a@x".into(), "{\"n\":2}".into()),
            ("b@x".into(), "{}".into())
        ]
    );
    assert_eq!(
        s.blocklist_entry("news", "a@x").await.unwrap().as_deref(),
        Some("{\"n\":2}")
    );
    assert_eq!(s.blocklist_entry("news", "c@x").await.unwrap(), None);
    assert!(s.remove_blocklist_entry("other", "a@x").await.unwrap());
    assert!(!s.remove_blocklist_entry("other", "a@x").await.unwrap());
    assert_eq!(
        s.blocklists().await.unwrap(),
        vec![("news".into(), 2)],
        "an empty list is gone"
    );
}

async fn gateways(s: &dyn Store) {
    let f = |pairs: &[(&str, &[u8])]| -> Vec<(String, Vec<u8>)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_vec()))
            .collect()
    };
    assert!(
        s.put_gateway(
            "g1",
            &f(&[("gateway", b"g1"), ("name", b"\xa1n"), ("pass", b"pw")]),
            &[]
        )
        .await
        .unwrap()
    );
    assert!(
        !s.put_gateway("g1", &f(&[("host", b"\xa1h")]), &["pass"])
            .await
            .unwrap()
    );
    assert_eq!(s.gateway_ids().await.unwrap(), ["g1"]);
    let g = s.gateway("g1").await.unwrap().unwrap();
    assert_eq!(g.keys().collect::<Vec<_>>(), ["gateway", "host", "name"]);
    s.count_gateway_delivery("g1").await.unwrap();
    s.count_gateway_delivery("g1").await.unwrap();
    assert_eq!(s.gateway("g1").await.unwrap().unwrap()["deliveries"], b"2");
    assert_eq!(s.gateway("g2").await.unwrap(), None);
    assert!(s.delete_gateway("g1").await.unwrap());
    assert!(!s.delete_gateway("g1").await.unwrap());
    assert_eq!(s.gateway("g1").await.unwrap(), None);
}

async fn oauth_apps(s: &dyn Store) {
    s.put_app("app1", b"data1", None, false).await.unwrap();
    s.put_app("app2", b"data2", Some(b"meta2"), true)
        .await
        .unwrap();
    let mut ids = s.app_ids().await.unwrap();
    ids.sort();
    assert_eq!(ids, ["app1", "app2"]);
    assert_eq!(
        s.app("app1").await.unwrap(),
        Some((b"data1".to_vec(), None))
    );
    s.put_app_meta("app1", b"meta1").await.unwrap();
    s.put_app("app1", b"data1b", None, false).await.unwrap();
    assert_eq!(
        s.app("app1").await.unwrap(),
        Some((b"data1b".to_vec(), Some(b"meta1".to_vec()))),
        "meta kept"
    );
    assert_eq!(
        s.link_app_account("app1", "ann", "Ann@X").await.unwrap(),
        None
    );
    assert_eq!(
        s.link_app_account("app1", "ann", "ann@x").await.unwrap(),
        None,
        "same account again"
    );
    assert_eq!(
        s.link_app_account("app1", "bob", "ANN@x")
            .await
            .unwrap()
            .as_deref(),
        Some("ann")
    );
    assert_eq!(
        s.link_app_account("app1", "bob", "bob@x").await.unwrap(),
        None
    );
    assert_eq!(s.app_account_count("app1").await.unwrap(), 2);
    s.unlink_app_account("app1", "bob", "bob@x").await.unwrap();
    assert_eq!(s.app_account_count("app1").await.unwrap(), 1);
    assert_eq!(s.delete_app("app1").await.unwrap(), Some(1));
    assert_eq!(s.delete_app("app1").await.unwrap(), None);
    assert_eq!(s.app("app1").await.unwrap(), None);
    assert_eq!(s.app_account_count("app1").await.unwrap(), 0);
}

async fn transient_keys_and_locks(s: &dyn Store) {
    assert!(
        s.put_transient("account:add:n1", "draft", 60, true)
            .await
            .unwrap()
    );
    assert!(
        !s.put_transient("account:add:n1", "other", 60, true)
            .await
            .unwrap(),
        "taken"
    );
    assert_eq!(
        s.transient("account:add:n1").await.unwrap().as_deref(),
        Some("draft")
    );
    assert_eq!(
        s.take_transient("account:add:n1").await.unwrap().as_deref(),
        Some("draft")
    );
    assert_eq!(
        s.take_transient("account:add:n1").await.unwrap(),
        None,
        "taken once"
    );
    assert!(s.put_transient("short", "v", 1, false).await.unwrap());
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    assert_eq!(s.transient("short").await.unwrap(), None, "expired");
    assert!(
        s.put_transient("short", "v", 60, true).await.unwrap(),
        "an expired key is free again"
    );
    s.remove_transient("short").await.unwrap();
    assert_eq!(s.transient("short").await.unwrap(), None);
    assert_eq!(s.count_transient("probe:n", 60).await.unwrap(), 1);
    assert_eq!(s.count_transient("probe:n", 60).await.unwrap(), 2);

    assert!(s.try_lock("oauth:ann", "me", 10_000).await.unwrap());
    assert!(!s.try_lock("oauth:ann", "you", 10_000).await.unwrap());
    s.unlock("oauth:ann", "you").await.unwrap();
    assert!(
        !s.try_lock("oauth:ann", "you", 10_000).await.unwrap(),
        "only the owner unlocks"
    );
    s.unlock("oauth:ann", "me").await.unwrap();
    assert!(s.try_lock("oauth:ann", "you", 200).await.unwrap());
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        s.try_lock("oauth:ann", "me", 200).await.unwrap(),
        "an expired lock is free"
    );
}

/// A full store copied embedded → Redis → embedded arrives unchanged.
#[tokio::test]
async fn migrate_round_trip() {
    let a = embedded("migrate-a").await;
    a.put_raw_settings(&[("serviceSecret".into(), "\"s\"".into())])
        .await
        .unwrap();
    a.next_run().await.unwrap();
    a.put_token("t1", &record(None, "root")).await.unwrap();
    a.put_token("t2", &record(Some("ann"), "bound"))
        .await
        .unwrap();
    a.put_account(
        "ann",
        &fields(&[("account", "ann"), ("imap", "{\"host\":\"h\"}")]),
    )
    .await
    .unwrap();
    a.mailbox_id("ann", 7, "INBOX").await.unwrap();
    a.put_listing("ann", &[("INBOX".into(), vec![1, 2])])
        .await
        .unwrap();
    a.apply_folder_changes("ann", "INBOX", &[(1, vec![1]), (4, vec![4])], &[])
        .await
        .unwrap();
    a.put_folder_status(
        "ann",
        "INBOX",
        &[
            ("path".into(), "INBOX".into()),
            ("uidNext".into(), "5".into()),
        ],
    )
    .await
    .unwrap();
    a.put_outbox("ann", "q1", b"entry", 123).await.unwrap();
    a.ensure_event_group(migrate::WEBHOOK_GROUP).await.unwrap();
    let delivered = a
        .append_event("ann", "messageNew", "{\"a\":1}")
        .await
        .unwrap();
    a.append_event("ann", "messageNew", "{\"a\":2}")
        .await
        .unwrap();
    a.next_events(migrate::WEBHOOK_GROUP, "c", 1, 0)
        .await
        .unwrap();
    a.ack_events(migrate::WEBHOOK_GROUP, std::slice::from_ref(&delivered))
        .await
        .unwrap();
    a.put_template(Some("ann"), "t1", b"meta", b"content")
        .await
        .unwrap();
    a.put_template(None, "t2", b"meta2", b"content2")
        .await
        .unwrap();
    a.put_blocklist_entry("news", "a@x", "{}").await.unwrap();
    a.put_gateway(
        "g1",
        &[
            ("gateway".into(), b"g1".to_vec()),
            ("deliveries".into(), b"3".to_vec()),
        ],
        &[],
    )
    .await
    .unwrap();
    a.put_webhook_route(
        "wh1",
        &emailengine_store::StoredWebhookRoute {
            meta: b"meta".to_vec(),
            content: Some(b"content".to_vec()),
            tcount: Some(2),
        },
    )
    .await
    .unwrap();
    a.put_app("app1", b"data", Some(b"meta"), false)
        .await
        .unwrap();
    a.link_app_account("app1", "ann", "ann@x").await.unwrap();
    a.put_dead_event(&DeadEvent {
        event: LoggedEvent {
            id: "5-5".into(),
            account: "ann".into(),
            event: "x".into(),
            payload: "{}".into(),
            queued_at: 5,
        },
        reason: "HTTP 500".into(),
        at: 77,
    })
    .await
    .unwrap();

    let inventory = migrate::inventory(a.as_ref()).await.unwrap();
    assert_eq!(
        inventory,
        migrate::Inventory {
            settings: 2,
            tokens: 2,
            accounts: 1,
            mailboxes: 1,
            folders: 1,
            messages: 2,
            outbox: 1,
            events: 1,
            dead_events: 1,
            templates: 2,
            blocklist_entries: 1,
            gateways: 1,
            apps: 1,
            webhook_routes: 1,
        }
    );
    let r = redis("migrate-r").await;
    assert!(migrate::inventory(r.as_ref()).await.unwrap().is_empty());
    assert_eq!(
        migrate::copy(a.as_ref(), r.as_ref()).await.unwrap(),
        inventory
    );
    assert_eq!(
        migrate::copy(a.as_ref(), r.as_ref()).await.unwrap(),
        inventory,
        "twice is safe"
    );
    assert_eq!(migrate::inventory(r.as_ref()).await.unwrap(), inventory);
    let b = embedded("migrate-b").await;
    migrate::copy(r.as_ref(), b.as_ref()).await.unwrap();

    for s in [&r, &b] {
        assert_eq!(
            s.all_raw_settings().await.unwrap(),
            a.all_raw_settings().await.unwrap()
        );
        assert_eq!(s.raw_tokens().await.unwrap(), a.raw_tokens().await.unwrap());
        assert_eq!(
            s.account("ann").await.unwrap(),
            a.account("ann").await.unwrap()
        );
        assert_eq!(
            s.mailbox_registry("ann").await.unwrap(),
            a.mailbox_registry("ann").await.unwrap()
        );
        assert_eq!(
            s.listing("ann").await.unwrap(),
            a.listing("ann").await.unwrap()
        );
        assert_eq!(
            s.folder_index("ann", "INBOX").await.unwrap(),
            a.folder_index("ann", "INBOX").await.unwrap()
        );
        assert_eq!(
            s.folder_status("ann", "INBOX").await.unwrap(),
            a.folder_status("ann", "INBOX").await.unwrap()
        );
        assert_eq!(
            s.list_outbox(0, 10).await.unwrap(),
            a.list_outbox(0, 10).await.unwrap()
        );
        assert_eq!(
            s.undelivered_events(migrate::WEBHOOK_GROUP).await.unwrap(),
            a.undelivered_events(migrate::WEBHOOK_GROUP).await.unwrap()
        );
        assert_eq!(
            s.webhook_route("wh1").await.unwrap(),
            a.webhook_route("wh1").await.unwrap()
        );
        assert_eq!(
            s.dead_events(0, 10).await.unwrap(),
            a.dead_events(0, 10).await.unwrap()
        );
        assert_eq!(
            s.template(Some("ann"), "t1").await.unwrap(),
            a.template(Some("ann"), "t1").await.unwrap()
        );
        assert_eq!(s.template_ids(None).await.unwrap(), ["t2"]);
        assert_eq!(
            s.blocklist_entries("news").await.unwrap(),
            a.blocklist_entries("news").await.unwrap()
        );
        assert_eq!(
            s.gateway("g1").await.unwrap(),
            a.gateway("g1").await.unwrap()
        );
        assert_eq!(s.app("app1").await.unwrap(), a.app("app1").await.unwrap());
        assert_eq!(
            s.link_app_account("app1", "bob", "ANN@x")
                .await
                .unwrap()
                .as_deref(),
            Some("ann")
        );
        // The copied registry counter keeps new ids unique.
        assert_eq!(s.mailbox_id("ann", 7, "Sent").await.unwrap(), 2);
    }
}

async fn webhook_routes(s: &dyn Store) {
    use emailengine_store::StoredWebhookRoute;
    assert!(s.webhook_route_ids().await.unwrap().is_empty());
    assert_eq!(s.webhook_route("r1").await.unwrap(), None);
    let full = StoredWebhookRoute {
        meta: b"meta-1".to_vec(),
        content: Some(b"content-1".to_vec()),
        tcount: Some(7),
    };
    let bare = StoredWebhookRoute {
        meta: b"meta-2".to_vec(),
        content: None,
        tcount: None,
    };
    s.put_webhook_route("r1", &full).await.unwrap();
    s.put_webhook_route("r2", &bare).await.unwrap();
    let mut ids = s.webhook_route_ids().await.unwrap();
    ids.sort();
    assert_eq!(ids, ["r1", "r2"]);
    assert_eq!(s.webhook_route("r1").await.unwrap(), Some(full));
    assert_eq!(s.webhook_route("r2").await.unwrap(), Some(bare));
}

async fn token_audit_log(s: &dyn Store) {
    assert_eq!(s.token_audit("t1", 0, 10).await.unwrap(), (0, vec![]));
    for i in 0..5u8 {
        s.push_token_audit("t1", &[i], 3, 60).await.unwrap();
    }
    s.push_token_audit("t2", b"other", 3, 60).await.unwrap();
    assert_eq!(
        s.token_audit("t1", 0, 10).await.unwrap(),
        (3, vec![vec![4], vec![3], vec![2]]),
        "newest first, trimmed to the bound"
    );
    assert_eq!(s.token_audit("t1", 1, 1).await.unwrap(), (3, vec![vec![3]]));
    s.delete_token_audit("t1").await.unwrap();
    assert_eq!(s.token_audit("t1", 0, 10).await.unwrap(), (0, vec![]));
    assert_eq!(s.token_audit("t2", 0, 10).await.unwrap().0, 1);
}

async fn account_logs(s: &dyn Store) {
    assert!(s.account_log("ann").await.unwrap().is_empty());
    s.push_account_log("ann", &[vec![1], vec![2]], 3)
        .await
        .unwrap();
    s.push_account_log("ann", &[vec![3], vec![4]], 3)
        .await
        .unwrap();
    s.push_account_log("bob", &[vec![9]], 3).await.unwrap();
    assert_eq!(
        s.account_log("ann").await.unwrap(),
        [vec![2], vec![3], vec![4]],
        "oldest first, the newest kept"
    );
    s.push_account_log("ann", &[], 3).await.unwrap();
    let fields = std::collections::BTreeMap::from([("account".to_string(), "ann".to_string())]);
    s.put_account("ann", &fields).await.unwrap();
    assert!(s.delete_account("ann").await.unwrap());
    assert!(
        s.account_log("ann").await.unwrap().is_empty(),
        "removed with the account"
    );
    assert_eq!(s.account_log("bob").await.unwrap(), [vec![9]]);
}
