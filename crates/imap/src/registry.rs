//! The registry of account connections: one actor per account ([`crate::account`]), their
//! live states, their connection budgets ([`crate::pool`]), and the locks that keep two
//! connections from syncing the same folder at once. It is the IMAP side's
//! [`MailRegistry`]: the API finds an account's [`MailBackend`] here.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use serde_json::Value;
use tokio::sync::mpsc;

use emailengine_core::account::{AccountRecord, ServerSettings};
use emailengine_core::connection::ConnectionState;
use emailengine_core::secret::FieldCipher;
use emailengine_mail::changes::StateChange;
use emailengine_mail::events::{EventBatch, EventSink};
use emailengine_mail::oauth::{OAuthLogins, Protocol};
use emailengine_mail::{MailBackend, MailError, MailRegistry, Verified};
use emailengine_store::{Change, Settings, Store, StoreError};

use crate::connect::{ConnectError, Session, connect};
use crate::pool::{AccountPool, PooledSession};

/// Tuning of the engine.
#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// How often folders other than the main one are resynced.
    pub resync_interval: Duration,
    /// Longest single IDLE before it is renewed (servers drop IDLE after ~30 min).
    pub idle_renew: Duration,
    /// Most IMAP connections one account may hold: IDLE, subconnections and command sessions
    /// together. Gmail allows 15 per user, Dovecot 10 per user and address by default.
    pub max_connections: usize,
    /// Command sessions unused this long are closed.
    pub session_quiet: Duration,
}

impl Default for EngineConfig {
    fn default() -> Self {
        Self {
            resync_interval: Duration::from_secs(900),
            idle_renew: Duration::from_secs(25 * 60),
            max_connections: 8,
            session_quiet: Duration::from_secs(300),
        }
    }
}

pub(crate) enum Command {
    Reconnect,
    Sync,
    Stop,
}

type Lock = Arc<tokio::sync::Mutex<()>>;

/// How long a stopping account connection may take (its LOGOUT) before it is aborted.
const STOP_WAIT: Duration = Duration::from_secs(5);

/// Longest an account's deferred folder indexing waits for other accounts to finish connecting.
const DEFER_LIMIT: Duration = Duration::from_secs(30);

/// Deferred folder indexings running at once, engine-wide.
const BACKGROUND_SYNCS: usize = 16;

/// Whether a state is part of getting an account connected (not yet in IDLE).
fn starting(state: ConnectionState) -> bool {
    matches!(
        state,
        ConnectionState::Connecting | ConnectionState::Syncing
    )
}

struct Handle {
    tx: mpsc::UnboundedSender<Command>,
    task: tokio::task::JoinHandle<()>,
}

pub(crate) struct Inner {
    pub(crate) sink: EventSink,
    /// Logins of OAuth2 accounts.
    pub(crate) oauth: Arc<OAuthLogins>,
    pub(crate) cipher: Option<Arc<FieldCipher>>,
    pub(crate) run: i64,
    pub(crate) config: EngineConfig,
    actors: Mutex<HashMap<String, Handle>>,
    states: Mutex<HashMap<String, ConnectionState>>,
    pools: Mutex<HashMap<String, Arc<AccountPool>>>,
    /// One lock per (account, folder): two connections never sync the same folder at once,
    /// which would report the same change twice.
    folder_locks: Mutex<HashMap<(String, String), Lock>>,
    /// One lock per account around folder-list refreshes, for the same reason.
    listing_locks: Mutex<HashMap<String, Lock>>,
    /// What each account's server offers, as read on its main connection.
    abilities: Mutex<HashMap<String, crate::connect::Abilities>>,
    /// Accounts whose live state is `connecting` or `syncing`, kept with `states`.
    starting: std::sync::atomic::AtomicUsize,
    /// Slots for deferred folder indexing (see [`Engine::background_slot`]).
    background: Arc<tokio::sync::Semaphore>,
}

/// Owner of every account's IMAP connections.
#[derive(Clone)]
pub struct Engine(pub(crate) Arc<Inner>);

impl Engine {
    pub fn new(
        store: Arc<dyn Store>,
        settings: Settings,
        cipher: Option<Arc<FieldCipher>>,
        run: i64,
        config: EngineConfig,
        oauth: Arc<OAuthLogins>,
    ) -> Self {
        Self(Arc::new(Inner {
            sink: EventSink::new(store, settings),
            oauth,
            cipher,
            run,
            config,
            actors: Mutex::new(HashMap::new()),
            states: Mutex::new(HashMap::new()),
            pools: Mutex::new(HashMap::new()),
            folder_locks: Mutex::new(HashMap::new()),
            listing_locks: Mutex::new(HashMap::new()),
            abilities: Mutex::new(HashMap::new()),
            starting: Default::default(),
            background: Arc::new(tokio::sync::Semaphore::new(BACKGROUND_SYNCS)),
        }))
    }

    pub fn events(&self) -> &EventSink {
        &self.0.sink
    }

    pub(crate) fn store(&self) -> &Arc<dyn Store> {
        &self.0.sink.store
    }

    /// Starts an actor for every registered account.
    pub async fn start_all(&self) -> Result<usize, StoreError> {
        let ids = self.store().account_ids().await?;
        for id in &ids {
            self.start_account(id);
        }
        Ok(ids.len())
    }

    fn start_account(&self, account: &str) {
        let (tx, rx) = mpsc::unbounded_channel();
        let engine = self.clone();
        let name = account.to_string();
        let task = tokio::spawn(async move { crate::account::run(engine, name, rx).await });
        let old = self
            .0
            .actors
            .lock()
            .ok()
            .and_then(|mut a| a.insert(account.to_string(), Handle { tx, task }));
        if let Some(old) = old {
            let _ = old.tx.send(Command::Stop);
        }
        self.pool(account).clear();
    }

    async fn stop_account(&self, account: &str) {
        let handle = self
            .0
            .actors
            .lock()
            .ok()
            .and_then(|mut a| a.remove(account));
        if let Some(h) = handle {
            let _ = h.tx.send(Command::Stop);
            Self::await_stop(account, h.task, tokio::time::Instant::now() + STOP_WAIT).await;
        }
        self.forget_account(account);
    }

    /// Waits for an actor told to stop until `deadline`, then aborts it.
    async fn await_stop(
        account: &str,
        mut task: tokio::task::JoinHandle<()>,
        deadline: tokio::time::Instant,
    ) {
        if tokio::time::timeout_at(deadline, &mut task).await.is_err() {
            tracing::warn!(account, "Account connection did not stop in time");
            task.abort();
        }
    }

    /// Drops what the engine kept for an account whose actor has ended.
    fn forget_account(&self, account: &str) {
        if let Ok(mut p) = self.0.pools.lock()
            && let Some(pool) = p.remove(account)
        {
            pool.clear();
        }
        self.forget_state(account);
        if let Ok(mut l) = self.0.folder_locks.lock() {
            l.retain(|(a, _), _| a != account);
        }
        if let Ok(mut l) = self.0.listing_locks.lock() {
            l.remove(account);
        }
        if let Ok(mut a) = self.0.abilities.lock() {
            a.remove(account);
        }
    }

    /// Stops every actor (server shutdown): all are told at once and given one shared
    /// deadline, so a thousand accounts stop in about the time of the slowest.
    pub async fn shutdown(&self) {
        let handles: Vec<(String, Handle)> = self
            .0
            .actors
            .lock()
            .map(|mut a| a.drain().collect())
            .unwrap_or_default();
        for (_, h) in &handles {
            let _ = h.tx.send(Command::Stop);
        }
        let deadline = tokio::time::Instant::now() + STOP_WAIT;
        for (account, h) in handles {
            Self::await_stop(&account, h.task, deadline).await;
            self.forget_account(&account);
        }
    }

    fn send(&self, account: &str, cmd: Command) -> bool {
        self.0
            .actors
            .lock()
            .ok()
            .and_then(|a| a.get(account).map(|h| h.tx.send(cmd).is_ok()))
            .unwrap_or(false)
    }

    pub(crate) fn live_state(&self, account: &str) -> Option<ConnectionState> {
        self.0.states.lock().ok()?.get(account).copied()
    }

    pub(crate) fn set_abilities(&self, account: &str, abilities: &crate::connect::Abilities) {
        if let Ok(mut a) = self.0.abilities.lock() {
            a.insert(account.to_string(), *abilities);
        }
    }

    /// What the account's server offers, once its main connection has asked.
    pub(crate) fn abilities(&self, account: &str) -> Option<crate::connect::Abilities> {
        self.0.abilities.lock().ok()?.get(account).cloned()
    }

    pub(crate) fn forget_state(&self, account: &str) {
        if let Ok(mut s) = self.0.states.lock()
            && s.remove(account).is_some_and(starting)
        {
            self.0
                .starting
                .fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
        }
    }

    /// A slot for indexing an account's other folders after it has reported `connected`, or
    /// `None` to try again later: while other accounts are still connecting (for up to
    /// [`DEFER_LIMIT`] after `since`), their logins and main folders go first, and only
    /// [`BACKGROUND_SYNCS`] indexings run at once.
    pub(crate) fn background_slot(
        &self,
        since: std::time::Instant,
    ) -> Option<tokio::sync::OwnedSemaphorePermit> {
        let busy = self.0.starting.load(std::sync::atomic::Ordering::Relaxed) > 0;
        if busy && since.elapsed() < DEFER_LIMIT {
            return None;
        }
        self.0.background.clone().try_acquire_owned().ok()
    }

    /// Records a connection state: in memory for the API, in the store with the error, and on
    /// the live change stream.
    pub(crate) async fn set_state(
        &self,
        account: &str,
        state: ConnectionState,
        error: Option<Value>,
    ) {
        self.set_state_with(account, state, error, None).await;
    }

    /// [`Self::set_state`] with the events of `batch` in the same store write (the state and
    /// the events that announce it land together, in one round trip).
    pub(crate) async fn set_state_with(
        &self,
        account: &str,
        state: ConnectionState,
        error: Option<Value>,
        batch: Option<EventBatch>,
    ) {
        // The stored record (with `lastError`) first: a reader that sees the new live state
        // then finds its error detail too.
        let change = Change::AccountState {
            account: account.to_string(),
            state: state.as_str().to_string(),
            run: self.0.run,
            error: error.as_ref().map(Value::to_string),
        };
        let events = batch.as_ref().map_or(0, EventBatch::event_count);
        let stored = match batch {
            Some(mut batch) => {
                batch.change(change);
                self.events().commit(batch).await
            }
            None => self.store().commit(vec![change]).await.map(drop),
        };
        if let Err(e) = stored {
            // The events written with the state are lost with it.
            tracing::warn!(account, state = state.as_str(), events, err = %e, "Failed to store account state");
        }
        if let Ok(mut s) = self.0.states.lock() {
            let was = s.insert(account.to_string(), state).is_some_and(starting);
            let counter = &self.0.starting;
            match (was, starting(state)) {
                (false, true) => {
                    counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                }
                (true, false) => {
                    counter.fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
                }
                _ => {}
            }
        }
        self.0.sink.changes.publish(StateChange {
            account: account.to_string(),
            state,
            error,
        });
        tracing::info!(account, state = state.as_str(), "Account state changed");
    }

    /// The account's budget and parked sessions.
    pub(crate) fn pool(&self, account: &str) -> Arc<AccountPool> {
        let cap = self.0.config.max_connections;
        match self.0.pools.lock() {
            Ok(mut p) => p
                .entry(account.to_string())
                .or_insert_with(|| AccountPool::new(cap))
                .clone(),
            Err(_) => AccountPool::new(cap),
        }
    }

    /// The account record; `None` when it is gone.
    pub(crate) async fn record(&self, account: &str) -> Result<Option<AccountRecord>, StoreError> {
        Ok(self
            .store()
            .account(account)
            .await?
            .map(|f| AccountRecord::from_fields(account, f)))
    }

    /// For the account's main connection, read in one go: its source address (`imapStrategy`)
    /// and a protocol log when the account's `logs` flag or the `logs.all` setting asks for one
    /// and `logs.maxLogLines` is above zero.
    pub(crate) async fn main_connection(
        &self,
        account: &str,
        account_flag: bool,
    ) -> (Option<std::net::IpAddr>, Option<crate::wire_log::WireLog>) {
        let [addresses, strategy] = emailengine_mail::network::Protocol::Imap.address_settings();
        let raw = self
            .store()
            .raw_settings(&[addresses, strategy, "logs"])
            .await
            .unwrap_or_default();
        let address = emailengine_mail::network::choose(&raw, account, None).address;
        let setting = raw
            .get(2)
            .and_then(|v| v.as_deref())
            .and_then(|v| serde_json::from_str::<Value>(v).ok());
        let all = setting
            .as_ref()
            .and_then(|v| v.get("all"))
            .and_then(serde_json::Value::as_bool)
            .unwrap_or(false);
        let max_lines = setting
            .as_ref()
            .and_then(|v| v.get("maxLogLines"))
            .and_then(serde_json::Value::as_u64)
            .map_or(emailengine_core::protocol_log::DEFAULT_MAX_LINES, |n| {
                n as usize
            });
        let log = ((account_flag || all) && max_lines > 0).then(|| {
            crate::wire_log::WireLog::start(self.0.sink.store.clone(), account, max_lines)
        });
        (address, log)
    }

    /// The account's IMAP settings, decrypted.
    pub(crate) async fn imap_settings(&self, account: &str) -> Result<ServerSettings, MailError> {
        let record = self
            .record(account)
            .await?
            .ok_or(MailError::AccountNotFound)?;
        let resolved = if record.oauth2().is_some() {
            self.0
                .oauth
                .server_settings(&record, Protocol::Imap)
                .await
                .map_err(|e| MailError::Connection(e.to_string()))?
        } else {
            record
                .imap(self.0.cipher.as_deref())
                .map_err(|e| MailError::Connection(e.to_string()))?
        };
        let mut settings = resolved.ok_or(MailError::NotConnected(ConnectionState::Unset))?;
        settings.local_address = self.local_address(account).await;
        Ok(settings)
    }

    /// The source address of the account's next IMAP connection (`imapStrategy`).
    pub(crate) async fn local_address(&self, account: &str) -> Option<std::net::IpAddr> {
        emailengine_mail::network::local_address(
            self.store().as_ref(),
            account,
            emailengine_mail::network::Protocol::Imap,
            None,
        )
        .await
        .address
    }

    /// Lends a command session for an API call or a background sync, waiting up to `wait`.
    pub async fn session(&self, account: &str, wait: Duration) -> Result<PooledSession, MailError> {
        let state = self
            .live_state(account)
            .unwrap_or(ConnectionState::Disconnected);
        if !state.is_usable() {
            return Err(MailError::NotConnected(state));
        }
        let deadline = tokio::time::Instant::now() + wait;
        self.pool(account)
            .lend(deadline, || async {
                let settings = self.imap_settings(account).await?;
                connect(&settings).await.map_err(MailError::from)
            })
            .await
    }

    fn lock_of(map: &Mutex<HashMap<String, Lock>>, key: &str) -> Lock {
        map.lock()
            .map(|mut l| l.entry(key.to_string()).or_default().clone())
            .unwrap_or_default()
    }

    /// Syncs a folder while holding its lock.
    pub(crate) async fn sync_locked(
        &self,
        session: &mut Session,
        account: &str,
        folder: &crate::folders::Folder,
        abilities: crate::connect::Abilities,
        report_since: Option<i64>,
    ) -> Result<crate::sync::SyncReport, crate::sync::SyncError> {
        let lock = self
            .0
            .folder_locks
            .lock()
            .map(|mut l| {
                l.entry((account.to_string(), folder.path.clone()))
                    .or_default()
                    .clone()
            })
            .unwrap_or_default();
        let _held = lock.lock().await;
        crate::sync::sync_folder(
            session,
            &self.0.sink,
            account,
            folder,
            abilities,
            report_since,
        )
        .await
    }

    /// Lists folders and records the listing, holding the account's listing lock.
    pub(crate) async fn refresh_folders(
        &self,
        account: &str,
        session: &mut Session,
        counters: crate::folders::Counters,
    ) -> Result<crate::folders::Listing, crate::sync::SyncError> {
        let lock = Self::lock_of(&self.0.listing_locks, account);
        let _held = lock.lock().await;
        crate::folders::refresh(session, &self.0.sink, account, counters).await
    }
}

#[async_trait]
impl MailRegistry for Engine {
    async fn backend(
        &self,
        account: &str,
        wait: Duration,
    ) -> Result<Arc<dyn MailBackend>, MailError> {
        Ok(Arc::new(crate::mail::ImapMail::new(
            self.clone(),
            account,
            wait,
        )))
    }

    fn start(&self, account: &str) {
        self.start_account(account);
    }

    async fn stop(&self, account: &str) {
        self.stop_account(account).await;
    }

    fn reconnect(&self, account: &str) -> bool {
        self.pool(account).clear();
        self.send(account, Command::Reconnect)
    }

    fn sync(&self, account: &str) -> bool {
        self.send(account, Command::Sync)
    }

    fn state(&self, account: &str) -> Option<ConnectionState> {
        self.live_state(account)
    }

    fn state_counts(&self) -> BTreeMap<ConnectionState, u64> {
        let mut out = BTreeMap::new();
        if let Ok(states) = self.0.states.lock() {
            for s in states.values() {
                *out.entry(*s).or_insert(0) += 1;
            }
        }
        out
    }

    async fn verify(&self, settings: &ServerSettings, mailboxes: bool) -> Verified {
        let mut session = match connect(settings).await {
            Ok(s) => s,
            Err(ConnectError::Auth(e)) => {
                return Verified::Failed {
                    error: e,
                    code: "AUTHENTICATIONFAILED",
                };
            }
            Err(e) => {
                return Verified::Failed {
                    error: e.to_string(),
                    code: "ConnectionError",
                };
            }
        };
        let listed = if mailboxes {
            match crate::folders::list_folders(&mut session).await {
                Ok(folders) => Some(
                    folders
                        .iter()
                        .map(crate::folders::Folder::to_json)
                        .collect(),
                ),
                Err(e) => {
                    return Verified::Failed {
                        error: e.to_string(),
                        code: "ListFailed",
                    };
                }
            }
        } else {
            None
        };
        let _ = session.logout().await;
        Verified::Success { mailboxes: listed }
    }
}
