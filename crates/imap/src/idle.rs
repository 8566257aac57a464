//! A connected account: the sync after login, then the main folder kept in IDLE without
//! interruption. Changes IDLE announces (and periodic or requested resyncs) are synced on a
//! command session borrowed from the account's pool, so the IDLE never has a gap and its
//! notifications arrive without the delay servers add to a freshly started IDLE. A store outage
//! is waited out on the open session: the sync is repeated until the store takes it.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use async_imap::extensions::idle::IdleResponse;
use serde_json::json;
use tokio::sync::mpsc;

use emailengine_core::account::{AccountRecord, ServerSettings};
use emailengine_core::connection::ConnectionState;
use emailengine_mail::events::EventBatch;

use crate::account::{Wake, wait_command};
use emailengine_store::Change;

use crate::command::FolderStat;
use crate::connect::{Abilities, Session};
use crate::folders::{Folder, encode_path};
use crate::registry::{Command, Engine};
use crate::sync::SyncError;

/// How long to wait before repeating a sync the store could not take.
pub(crate) const STORE_RETRY: Duration = Duration::from_secs(1);

/// How long a background sync waits for a command session.
const SYNC_WAIT: Duration = Duration::from_secs(300);

/// A sync to run from the IDLE loop; `All` covers `Main`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Resync {
    Main,
    All,
}

pub(crate) enum Flow {
    Stop,
    Reconnect,
    /// Restart the IDLE command (servers end long IDLEs).
    Renew,
}

/// A session that ended with an error; `connected` tells whether the account had reached
/// `connected` on it.
pub(crate) struct Ended {
    pub error: SyncError,
    pub connected: bool,
}

fn before(error: impl Into<SyncError>) -> Ended {
    Ended {
        error: error.into(),
        connected: false,
    }
}

fn after(error: impl Into<SyncError>) -> Ended {
    Ended {
        error: error.into(),
        connected: true,
    }
}

/// What a LIST-STATUS answer lets the sync skip: a folder whose counters (HIGHESTMODSEQ
/// included) match the stored ones has not changed; a new folder with no messages only needs
/// its status recorded. Both save opening the folder.
enum Shortcut {
    Unchanged,
    NewAndEmpty(Vec<(String, String)>),
    Open,
}

fn shortcut(
    stat: Option<&FolderStat>,
    stored: &BTreeMap<String, String>,
    condstore: bool,
) -> Shortcut {
    let Some(stat) = stat else {
        return Shortcut::Open;
    };
    let num = |k: &str| stored.get(k).and_then(|v| v.parse::<u64>().ok());
    if stored.is_empty() {
        if stat.messages != 0 {
            return Shortcut::Open;
        }
        let (Some(validity), Some(next)) = (stat.uid_validity, stat.uid_next) else {
            return Shortcut::Open;
        };
        let mut fields = vec![
            ("uidValidity".to_string(), validity.to_string()),
            ("messages".to_string(), "0".to_string()),
            ("uidNext".to_string(), next.to_string()),
            ("initialUidNext".to_string(), next.to_string()),
            (
                "lastFullSync".to_string(),
                emailengine_core::units::iso_time(chrono::Utc::now().timestamp_millis())
                    .unwrap_or_default(),
            ),
        ];
        if let Some(m) = stat.highest_modseq {
            fields.push(("highestModseq".to_string(), m.to_string()));
        }
        return Shortcut::NewAndEmpty(fields);
    }
    let same = condstore
        && stat.highest_modseq.is_some()
        && num("highestModseq") == stat.highest_modseq
        && num("uidValidity") == stat.uid_validity.map(u64::from)
        && num("uidNext") == stat.uid_next.map(u64::from)
        && num("messages") == Some(u64::from(stat.messages));
    if same {
        Shortcut::Unchanged
    } else {
        Shortcut::Open
    }
}

/// Which folders a sync after login covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Scope {
    /// Every folder (reconnects, restarts, full resyncs).
    All,
    /// The main folder only, from a listing that opens no folder: an account's first
    /// connection. Opening every folder of a fresh mailbox is most of what a server spends on
    /// a new account (Dovecot builds an index for each), so that waits until the account is in
    /// IDLE and other accounts have connected; see [`Deferred`].
    Main,
}

/// What a sync after login leaves behind.
struct Synced {
    folders: Vec<Folder>,
    /// The folder the session has open: the last one synced.
    selected: Option<String>,
}

/// The sync after login (and every full resync): folder list and the folders of `scope`.
/// Folders the server refuses to open are skipped (and logged), so one broken folder never
/// takes the account down. `report_since` is passed to the first sync of each folder (see
/// [`crate::sync::sync_folder`]).
async fn initial_sync(
    engine: &Engine,
    account: &str,
    session: &mut Session,
    abilities: &Abilities,
    scope: Scope,
    report_since: Option<i64>,
) -> Result<Synced, SyncError> {
    let condstore = abilities.condstore;
    let listing = engine
        .refresh_folders(
            account,
            session,
            crate::folders::Counters::for_server(abilities, scope == Scope::All),
        )
        .await?;
    let main = main_folder(&listing.folders).map(|f| f.path);
    let sink = engine.events();
    let mut recorded = sink.batch().await;
    let mut selected = None;
    for folder in listing
        .folders
        .iter()
        .filter(|f| f.selectable() && (scope == Scope::All || Some(&f.path) == main.as_ref()))
    {
        let stored = if listing.stats.is_empty() {
            BTreeMap::new()
        } else {
            sink.store.folder_status(account, &folder.path).await?
        };
        match shortcut(listing.stats.get(&folder.path), &stored, condstore) {
            Shortcut::Unchanged => continue,
            Shortcut::NewAndEmpty(mut fields) => {
                fields.insert(0, ("path".to_string(), folder.path.clone()));
                recorded.change(Change::FolderStatus {
                    account: account.to_string(),
                    path: folder.path.clone(),
                    fields,
                });
                continue;
            }
            Shortcut::Open => {}
        }
        match engine
            .sync_locked(session, account, folder, *abilities, report_since)
            .await
        {
            Ok(report) => {
                selected = Some(folder.path.clone());
                tracing::debug!(account, path = %folder.path, ?report, "Folder synced");
            }
            Err(SyncError::Imap(e)) if !e.breaks_session() => {
                // A refused SELECT leaves no folder open (RFC 3501 §6.3.1).
                selected = None;
                tracing::warn!(account, path = %folder.path, err = %e, "Folder skipped: the server refused to open it");
            }
            Err(e) => return Err(e),
        }
    }
    sink.commit(recorded).await?;
    Ok(Synced {
        folders: listing.folders,
        selected,
    })
}

/// Syncs every folder (on a command session).
async fn sync_all(
    engine: &Engine,
    account: &str,
    session: &mut Session,
    abilities: &Abilities,
    report_since: Option<i64>,
) -> Result<(), SyncError> {
    initial_sync(
        engine,
        account,
        session,
        abilities,
        Scope::All,
        report_since,
    )
    .await
    .map(drop)
}

/// The main folder: INBOX, else the first folder that can be opened.
fn main_folder(folders: &[Folder]) -> Option<Folder> {
    folders
        .iter()
        .find(|f| f.path == "INBOX" && f.selectable())
        .or_else(|| folders.iter().find(|f| f.selectable()))
        .cloned()
}

/// An account's first connection syncs only the folder list and the main folder before it
/// reports `connected` ([`Scope::Main`]); this is the indexing of the other folders it still
/// owes.
struct Deferred {
    /// When the folder list was read (ms, down to the second as servers date messages): a
    /// message the server dated at or after it arrived after the account connected and is
    /// reported when its folder is first indexed.
    since_ms: i64,
    /// When the account reported `connected`.
    since: Instant,
}

pub(crate) async fn connected(
    engine: &Engine,
    account: &str,
    settings: &ServerSettings,
    mut session: Session,
    record: &AccountRecord,
    logged_in: Option<EventBatch>,
    rx: &mut mpsc::UnboundedReceiver<Command>,
) -> Result<Flow, Ended> {
    engine
        .set_state_with(account, ConnectionState::Syncing, None, logged_in)
        .await;
    let abilities = Abilities::read(&mut session).await.map_err(before)?;
    abilities.introduce(&mut session, settings).await;
    engine.set_abilities(account, &abilities);
    // The account's first connection ever (the record as read for this connection).
    let first_time = !record.was_connected;
    // Messages dated from this second on count as arrived after the folder list was read.
    let listed_at = chrono::Utc::now().timestamp() * 1000;
    let scope = if first_time { Scope::Main } else { Scope::All };
    let synced = loop {
        match initial_sync(engine, account, &mut session, &abilities, scope, None).await {
            Ok(done) => break done,
            Err(SyncError::Store(e)) => {
                tracing::warn!(account, err = %e, "Store unavailable during sync; retrying");
                match wait_command(rx, Some(STORE_RETRY)).await {
                    Wake::Stop => return Ok(Flow::Stop),
                    Wake::Reconnect => return Ok(Flow::Reconnect),
                    Wake::Other => {}
                }
            }
            Err(e) => return Err(before(e)),
        }
    };
    let folders = synced.folders;
    let main = main_folder(&folders);
    // Whether the main folder is the one the session has open.
    let mut main_selected =
        matches!((&synced.selected, &main), (Some(open), Some(m)) if *open == m.path);
    let initialized = if first_time {
        let mut batch = engine.events().batch().await;
        batch.event(
            account,
            "accountInitialized",
            None,
            None,
            json!({"initialized": true}),
        );
        Some(batch)
    } else {
        None
    };
    engine
        .set_state_with(account, ConnectionState::Connected, None, initialized)
        .await;
    let mut deferred = first_time.then(|| Deferred {
        since_ms: listed_at,
        since: Instant::now(),
    });
    let Some(main) = main else {
        // Nothing to watch: only a stop or a reconnect ends the wait.
        loop {
            match wait_command(rx, None).await {
                Wake::Stop => return Ok(Flow::Stop),
                Wake::Reconnect => return Ok(Flow::Reconnect),
                Wake::Other => {}
            }
        }
    };
    let _subconnections = crate::subconnections::start(
        engine,
        account,
        settings,
        &record.subconnections,
        &folders,
        &main,
        abilities,
    );
    let quiet = engine.0.config.session_quiet;
    let mut last_full = Instant::now();
    let mut pending: Option<Resync> = deferred.as_ref().map(|_| Resync::All);
    // The deferred indexing is first tried at once: with no other account connecting it runs
    // right away, which keeps short the time a message can arrive before its folder's index.
    let mut try_now = deferred.is_some();
    loop {
        if !std::mem::take(&mut main_selected) {
            session
                .select(encode_path(&main.path))
                .await
                .map_err(after)?;
        }
        while session.unsolicited_responses.try_recv().is_ok() {}
        let idle_started = Instant::now();
        let mut idle = session.idle();
        idle.init().await.map_err(after)?;
        let flow = loop {
            let until_resync = engine
                .0
                .config
                .resync_interval
                .saturating_sub(last_full.elapsed());
            let until_renew = engine
                .0
                .config
                .idle_renew
                .saturating_sub(idle_started.elapsed());
            let timeout = until_resync
                .min(until_renew)
                .min(quiet)
                .min(if pending.is_some() {
                    STORE_RETRY
                } else {
                    Duration::MAX
                })
                .max(if std::mem::take(&mut try_now) {
                    Duration::ZERO
                } else {
                    Duration::from_secs(1)
                });
            let (outcome, command) = {
                let (fut, stop) = idle.wait_with_timeout(timeout);
                tokio::pin!(fut);
                let mut stop = Some(stop);
                let mut command = None;
                let outcome = loop {
                    tokio::select! {
                        r = &mut fut => break r,
                        c = rx.recv(), if command.is_none() => {
                            command = Some(c.unwrap_or(Command::Stop));
                            stop.take();
                        }
                    }
                };
                (outcome, command)
            };
            let outcome = outcome.map_err(after)?;
            let wanted = match command {
                Some(Command::Stop) => break Flow::Stop,
                Some(Command::Reconnect) => break Flow::Reconnect,
                Some(Command::Sync) => Some(Resync::All),
                None => match outcome {
                    // Nothing here interrupted the wait: the stream ended, so the connection
                    // is gone (async-imap reports a closed stream this way). Without this the
                    // wait would return at once, forever.
                    IdleResponse::ManualInterrupt => {
                        return Err(after(crate::error::ImapError::Connection(
                            "Connection to the mail server was lost".into(),
                        )));
                    }
                    IdleResponse::NewData(_) => {
                        tracing::debug!(account, "IDLE notification");
                        Some(Resync::Main)
                    }
                    _ if last_full.elapsed() >= engine.0.config.resync_interval => {
                        Some(Resync::All)
                    }
                    // An owed sync is added below (and a deferred one may have to wait).
                    _ if pending.is_some() => None,
                    _ if idle_started.elapsed() >= engine.0.config.idle_renew => {
                        break Flow::Renew;
                    }
                    _ => None,
                },
            };
            // A sync the store refused is owed: the next one covers it too.
            let mut due = wanted.max(pending.take());
            // The deferred indexing of the other folders waits for a background slot (asked-for
            // syncs do not); meanwhile a change in the main folder is still synced at once.
            let _slot = match &deferred {
                Some(d) if due == Some(Resync::All) && wanted != Some(Resync::All) => {
                    let slot = engine.background_slot(d.since);
                    if slot.is_none() {
                        pending = Some(Resync::All);
                        due = wanted;
                    }
                    slot
                }
                _ => None,
            };
            if let Some(resync) = due {
                let mut borrowed = match engine.session(account, SYNC_WAIT).await {
                    Ok(s) => s,
                    Err(e) => {
                        tracing::warn!(account, err = %e, "No session for a sync; it is owed");
                        pending = Some(resync);
                        continue;
                    }
                };
                let result = match resync {
                    Resync::Main => engine
                        .sync_locked(borrowed.get(), account, &main, abilities, None)
                        .await
                        .map(drop),
                    Resync::All => {
                        let since = deferred.as_ref().map(|d| d.since_ms);
                        sync_all(engine, account, borrowed.get(), &abilities, since).await
                    }
                };
                match result {
                    Ok(()) if resync == Resync::All => {
                        last_full = Instant::now();
                        if deferred.take().is_some() {
                            // A session opened for a new account's indexing is not kept
                            // waiting for API calls that may never come.
                            borrowed.discard();
                            tracing::debug!(account, "Folders indexed after connecting");
                        }
                    }
                    Ok(()) => {}
                    Err(SyncError::Store(e)) => {
                        tracing::warn!(account, err = %e, "Store unavailable during sync; retrying");
                        pending = Some(resync);
                    }
                    Err(SyncError::Imap(e)) if e.breaks_session() => {
                        // A broken command session is retired; the IDLE one carries on.
                        tracing::warn!(account, err = %e, "Sync failed on a command session");
                        borrowed.discard();
                        pending = Some(resync);
                    }
                    Err(e) => tracing::warn!(account, err = %e, "Sync refused by the server"),
                }
            }
            engine.pool(account).close_quiet(quiet);
        };
        session = idle.done().await.map_err(after)?;
        match flow {
            Flow::Renew => continue,
            flow => {
                let _ = session.logout().await;
                return Ok(flow);
            }
        }
    }
}
