//! The one place that owns each account's IMAP connections. Every account gets an actor (a
//! tokio task fed by a command channel) that connects, syncs, keeps the main folder in IDLE and
//! reconnects with jittered backoff; API reads and writes borrow sessions from a small
//! per-account pool beside the IDLE connection, so a long download never stalls the push.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_imap::extensions::idle::IdleResponse;
use serde_json::{Value, json};
use tokio::sync::mpsc;

use emailengine_core::account::{ServerSettings, decrypt_secrets};
use emailengine_core::secret::FieldCipher;
use emailengine_store::{Change, Settings, Store};

use crate::connect::{ConnectError, Session, connect};
use crate::events::EventSink;
use crate::folders::{Folder, encode_path, list_folders};
use crate::sync::{SyncError, sync_folder};

/// Tuning of the engine.
#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// How often folders other than the main one are resynced.
    pub resync_interval: Duration,
    /// Longest single IDLE before it is renewed (servers drop IDLE after ~30 min).
    pub idle_renew: Duration,
    /// Command sessions kept per account for API calls.
    pub pool_size: usize,
}

impl Default for EngineConfig {
    fn default() -> Self {
        Self {
            resync_interval: Duration::from_secs(900),
            idle_renew: Duration::from_secs(25 * 60),
            pool_size: 2,
        }
    }
}

enum Command {
    Reconnect,
    Sync,
    Stop,
}

type FolderLock = Arc<tokio::sync::Mutex<()>>;

/// A command session waiting in the pool, with the folder it has open.
type IdleSession = (Session, Option<Selected>);

struct Handle {
    tx: mpsc::UnboundedSender<Command>,
    task: tokio::task::JoinHandle<()>,
}

struct Inner {
    sink: EventSink,
    cipher: Option<Arc<FieldCipher>>,
    run: i64,
    config: EngineConfig,
    actors: Mutex<HashMap<String, Handle>>,
    states: Mutex<HashMap<String, String>>,
    pools: Mutex<HashMap<String, Vec<IdleSession>>>,
    /// One lock per (account, folder): two connections never sync the same folder at once,
    /// which would report the same change twice.
    folder_locks: Mutex<HashMap<(String, String), FolderLock>>,
}

#[derive(Clone)]
pub struct Engine(Arc<Inner>);

/// Why an API operation on an account could not run.
#[derive(Debug, thiserror::Error)]
pub enum OpError {
    #[error("Requested account is not yet initialized")]
    NotConnected(String),
    #[error("{0}")]
    Imap(String),
    #[error("{0}")]
    NotFound(String),
}

impl From<async_imap::error::Error> for OpError {
    fn from(e: async_imap::error::Error) -> Self {
        OpError::Imap(e.to_string())
    }
}

impl From<emailengine_store::StoreError> for OpError {
    fn from(e: emailengine_store::StoreError) -> Self {
        OpError::Imap(e.to_string())
    }
}

impl Engine {
    pub fn new(
        store: Arc<dyn Store>,
        settings: Settings,
        cipher: Option<Arc<FieldCipher>>,
        run: i64,
        config: EngineConfig,
    ) -> Self {
        Self(Arc::new(Inner {
            sink: EventSink { store, settings },
            cipher,
            run,
            config,
            actors: Mutex::new(HashMap::new()),
            states: Mutex::new(HashMap::new()),
            pools: Mutex::new(HashMap::new()),
            folder_locks: Mutex::new(HashMap::new()),
        }))
    }

    pub fn events(&self) -> &EventSink {
        &self.0.sink
    }

    /// Starts an actor for every registered account.
    pub async fn start_all(&self) -> Result<usize, emailengine_store::StoreError> {
        let ids = self.0.sink.store.account_ids().await?;
        for id in &ids {
            self.start(id);
        }
        Ok(ids.len())
    }

    /// Starts (or restarts) the actor of one account.
    pub fn start(&self, account: &str) {
        let (tx, rx) = mpsc::unbounded_channel();
        let engine = self.clone();
        let name = account.to_string();
        let task = tokio::spawn(async move { engine.run_account(name, rx).await });
        let old = self
            .0
            .actors
            .lock()
            .ok()
            .and_then(|mut a| a.insert(account.to_string(), Handle { tx, task }));
        if let Some(old) = old {
            let _ = old.tx.send(Command::Stop);
        }
        self.drop_pool(account);
    }

    /// Stops an account's actor and closes its sessions.
    pub async fn stop(&self, account: &str) {
        let handle = self
            .0
            .actors
            .lock()
            .ok()
            .and_then(|mut a| a.remove(account));
        if let Some(h) = handle {
            let _ = h.tx.send(Command::Stop);
            if tokio::time::timeout(Duration::from_secs(5), h.task)
                .await
                .is_err()
            {
                tracing::warn!(account, "Account connection did not stop in time");
            }
        }
        self.drop_pool(account);
        if let Ok(mut s) = self.0.states.lock() {
            s.remove(account);
        }
        if let Ok(mut l) = self.0.folder_locks.lock() {
            l.retain(|(a, _), _| a != account);
        }
    }

    /// Stops every actor (server shutdown).
    pub async fn shutdown(&self) {
        let accounts: Vec<String> = self
            .0
            .actors
            .lock()
            .map(|a| a.keys().cloned().collect())
            .unwrap_or_default();
        for a in accounts {
            self.stop(&a).await;
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

    pub fn reconnect(&self, account: &str) -> bool {
        self.drop_pool(account);
        self.send(account, Command::Reconnect)
    }

    pub fn sync(&self, account: &str) -> bool {
        self.send(account, Command::Sync)
    }

    /// The live connection state of an account, if its actor runs.
    pub fn state(&self, account: &str) -> Option<String> {
        self.0.states.lock().ok()?.get(account).cloned()
    }

    /// Accounts by live connection state.
    pub fn state_counts(&self) -> BTreeMap<String, u64> {
        let mut out = BTreeMap::new();
        if let Ok(states) = self.0.states.lock() {
            for s in states.values() {
                *out.entry(s.clone()).or_insert(0) += 1;
            }
        }
        out
    }

    fn drop_pool(&self, account: &str) {
        if let Ok(mut p) = self.0.pools.lock() {
            p.remove(account);
        }
    }

    async fn set_state(&self, account: &str, state: &str, error: Option<Value>) {
        if let Ok(mut s) = self.0.states.lock() {
            s.insert(account.to_string(), state.to_string());
        }
        let err = error.map(|e| e.to_string());
        if let Err(e) = self
            .0
            .sink
            .store
            .set_account_state(account, state, self.0.run, err.as_deref())
            .await
        {
            tracing::warn!(account, state, err = %e, "Failed to store account state");
        }
        tracing::info!(account, state, "Account state changed");
    }

    /// The account's IMAP settings: `Ok(None)` when the account record is gone,
    /// `Ok(Some(None))` when it has no usable IMAP settings.
    async fn imap_settings(&self, account: &str) -> Result<Option<Option<ServerSettings>>, String> {
        let fields = self
            .0
            .sink
            .store
            .account(account)
            .await
            .map_err(|e| e.to_string())?;
        let Some(fields) = fields else {
            return Ok(None);
        };
        let Some(raw) = fields.get("imap") else {
            return Ok(Some(None));
        };
        let mut imap: Value = serde_json::from_str(raw).map_err(|e| e.to_string())?;
        decrypt_secrets(&mut imap, self.0.cipher.as_deref()).map_err(|e| e.to_string())?;
        Ok(Some(ServerSettings::from_json(&imap)))
    }

    /// Borrows a command session for an API call (opened on demand, returned on drop).
    pub async fn session(&self, account: &str) -> Result<PooledSession, OpError> {
        let state = self.state(account).unwrap_or_else(|| "disconnected".into());
        if !matches!(state.as_str(), "connected" | "syncing" | "connecting") {
            return Err(OpError::NotConnected(state));
        }
        let pooled = self
            .0
            .pools
            .lock()
            .ok()
            .and_then(|mut p| p.get_mut(account).and_then(Vec::pop));
        let (session, selected) = match pooled {
            Some(s) => s,
            None => {
                let settings = self
                    .imap_settings(account)
                    .await
                    .map_err(OpError::Imap)?
                    .flatten()
                    .ok_or_else(|| OpError::NotConnected("unset".into()))?;
                let session = connect(&settings)
                    .await
                    .map_err(|e| OpError::Imap(e.to_string()))?;
                (session, None)
            }
        };
        Ok(PooledSession {
            session: Some(session),
            selected,
            account: account.to_string(),
            engine: self.clone(),
            broken: false,
        })
    }

    async fn run_account(self, account: String, mut rx: mpsc::UnboundedReceiver<Command>) {
        let mut attempt: u32 = 0;
        let mut last_error: Option<String> = None;
        loop {
            let settings = match self.imap_settings(&account).await {
                Ok(None) => {
                    tracing::info!(account, "Account record is gone; its connection stops");
                    if let Ok(mut s) = self.0.states.lock() {
                        s.remove(&account);
                    }
                    return;
                }
                Ok(Some(Some(s))) if !s.disabled => s,
                Ok(Some(Some(_))) => {
                    self.set_state(&account, "disconnected", None).await;
                    if matches!(wait_command(&mut rx, None).await, Wake::Stop) {
                        return;
                    }
                    continue;
                }
                Ok(Some(None)) => {
                    self.set_state(&account, "unset", None).await;
                    if matches!(wait_command(&mut rx, None).await, Wake::Stop) {
                        return;
                    }
                    continue;
                }
                Err(e) => {
                    tracing::error!(account, err = %e, "Failed to load account settings");
                    self.set_state(&account, "connectError", Some(json!({"response": e})))
                        .await;
                    attempt += 1;
                    if matches!(
                        wait_command(&mut rx, Some(backoff(attempt))).await,
                        Wake::Stop
                    ) {
                        return;
                    }
                    continue;
                }
            };
            self.set_state(&account, "connecting", None).await;
            let session = match connect(&settings).await {
                Ok(s) => s,
                Err(err) => {
                    let (state, event) = match &err {
                        ConnectError::Auth(_) => ("authenticationError", "authenticationError"),
                        ConnectError::Network(_) => ("connectError", "connectError"),
                    };
                    let detail = json!({"response": err.to_string(), "serverResponseCode": match err {
                        ConnectError::Auth(_) => "AUTHENTICATIONFAILED", ConnectError::Network(_) => "ConnectionError" }});
                    self.set_state(&account, state, Some(detail.clone())).await;
                    if last_error.as_deref() != Some(&err.to_string()) {
                        self.0.sink.emit(&account, event, None, None, detail).await;
                        last_error = Some(err.to_string());
                    }
                    attempt += 1;
                    tracing::warn!(account, err = %err, attempt, "IMAP connection failed");
                    if matches!(
                        wait_command(&mut rx, Some(backoff(attempt))).await,
                        Wake::Stop
                    ) {
                        return;
                    }
                    continue;
                }
            };
            if last_error.take().is_some() || attempt == 0 {
                self.0
                    .sink
                    .emit(
                        &account,
                        "authenticationSuccess",
                        None,
                        None,
                        json!({"user": settings.user}),
                    )
                    .await;
            }
            attempt = 0;
            match self.connected(&account, &settings, session, &mut rx).await {
                Ok(Flow::Stop) => return,
                Ok(Flow::Reconnect | Flow::Renew) => continue,
                Err(e) => {
                    tracing::warn!(account, err = %e, "IMAP session ended");
                    self.set_state(
                        &account,
                        "disconnected",
                        Some(json!({"response": e.to_string()})),
                    )
                    .await;
                    attempt += 1;
                    if matches!(
                        wait_command(&mut rx, Some(backoff(attempt))).await,
                        Wake::Stop
                    ) {
                        return;
                    }
                    continue;
                }
            }
        }
    }

    /// Syncs everything once, then keeps the main folder in IDLE without interruption: changes
    /// it announces are synced on a second connection (opened on first need, closed after a
    /// quiet spell), so the IDLE never has a gap and its notifications arrive without the delay
    /// servers add to a freshly started IDLE.
    async fn connected(
        &self,
        account: &str,
        settings: &ServerSettings,
        mut session: Session,
        rx: &mut mpsc::UnboundedReceiver<Command>,
    ) -> Result<Flow, crate::sync::SyncError> {
        self.set_state(account, "syncing", None).await;
        let condstore = session.capabilities().await?.has_str("CONDSTORE");
        // A store outage is waited out on the open IMAP session: the sync is repeated until
        // the store takes it, instead of dropping a healthy mail connection.
        let (folders, first_time) = loop {
            match self.initial_sync(account, &mut session, condstore).await {
                Ok(done) => break done,
                Err(SyncError::Store(e)) => {
                    tracing::warn!(account, err = %e, "Store unavailable during sync; retrying");
                    match wait_command(rx, Some(STORE_RETRY)).await {
                        Wake::Stop => return Ok(Flow::Stop),
                        Wake::Reconnect => return Ok(Flow::Reconnect),
                        Wake::Other => {}
                    }
                }
                Err(e) => return Err(e),
            }
        };
        let main = folders
            .iter()
            .find(|f| f.path == "INBOX")
            .cloned()
            .or_else(|| folders.first().cloned());
        self.set_state(account, "connected", None).await;
        if first_time {
            self.0
                .sink
                .emit(
                    account,
                    "accountInitialized",
                    None,
                    None,
                    json!({"initialized": true}),
                )
                .await;
        }
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
        let _subconnections = self
            .start_subconnections(account, settings, &folders, &main, condstore)
            .await;
        let mut worker = SyncWorker {
            settings,
            session: None,
            last_used: Instant::now(),
        };
        let mut last_full = Instant::now();
        let mut pending: Option<Resync> = None;
        loop {
            session.select(encode_path(&main.path)).await?;
            while session.unsolicited_responses.try_recv().is_ok() {}
            let idle_started = Instant::now();
            let mut idle = session.idle();
            idle.init().await?;
            let flow = loop {
                let until_resync = self
                    .0
                    .config
                    .resync_interval
                    .saturating_sub(last_full.elapsed());
                let until_renew = self
                    .0
                    .config
                    .idle_renew
                    .saturating_sub(idle_started.elapsed());
                let timeout = until_resync
                    .min(until_renew)
                    .min(SYNC_SESSION_IDLE)
                    .min(if pending.is_some() {
                        STORE_RETRY
                    } else {
                        Duration::MAX
                    })
                    .max(Duration::from_secs(1));
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
                let outcome = outcome?;
                let wanted = match command {
                    Some(Command::Stop) => break Flow::Stop,
                    Some(Command::Reconnect) => break Flow::Reconnect,
                    Some(Command::Sync) => Some(Resync::All),
                    None => match outcome {
                        IdleResponse::NewData(_) => {
                            tracing::debug!(account, "IDLE notification");
                            Some(Resync::Main)
                        }
                        _ if last_full.elapsed() >= self.0.config.resync_interval => {
                            Some(Resync::All)
                        }
                        _ if pending.is_some() => pending,
                        _ if idle_started.elapsed() >= self.0.config.idle_renew => {
                            break Flow::Renew;
                        }
                        _ => None,
                    },
                };
                // A sync the store refused is owed: the next one covers it too.
                if let Some(resync) = wanted.max(pending.take()) {
                    let session = worker.session().await?;
                    let result = match resync {
                        Resync::Main => self
                            .sync_locked(session, account, &main, condstore)
                            .await
                            .map(drop),
                        Resync::All => self.sync_all(account, session, condstore).await,
                    };
                    match result {
                        Ok(()) if resync == Resync::All => last_full = Instant::now(),
                        Ok(()) => {}
                        Err(SyncError::Store(e)) => {
                            tracing::warn!(account, err = %e, "Store unavailable during sync; retrying");
                            pending = Some(resync);
                        }
                        Err(e) => return Err(e),
                    }
                }
                worker.close_if_quiet().await;
            };
            session = idle.done().await?;
            match flow {
                Flow::Renew => continue,
                flow => {
                    let _ = session.logout().await;
                    worker.close().await;
                    return Ok(flow);
                }
            }
        }
    }

    /// The sync after login: folder list, every folder, and whether this is the account's first
    /// connection ever (then `accountInitialized` is sent).
    async fn initial_sync(
        &self,
        account: &str,
        session: &mut Session,
        condstore: bool,
    ) -> Result<(Vec<Folder>, bool), SyncError> {
        let folders = self.refresh_folders(account, session).await?;
        for folder in folders.iter().filter(|f| !f.no_select) {
            let report = self
                .sync_locked(session, account, folder, condstore)
                .await?;
            tracing::debug!(account, path = %folder.path, ?report, "Folder synced");
        }
        let first_time = self
            .0
            .sink
            .store
            .account_field(account, "state:count:connected")
            .await?
            .is_none();
        Ok((folders, first_time))
    }

    /// Extra folders the account asked to watch on their own IDLE connections
    /// (`subconnections`); the returned guard stops them.
    async fn start_subconnections(
        &self,
        account: &str,
        settings: &ServerSettings,
        folders: &[Folder],
        main: &Folder,
        condstore: bool,
    ) -> TaskGuard {
        let wanted: Vec<String> = self
            .0
            .sink
            .store
            .account_field(account, "subconnections")
            .await
            .ok()
            .flatten()
            .and_then(|raw| serde_json::from_str::<Vec<String>>(&raw).ok())
            .unwrap_or_default();
        let mut tasks = Vec::new();
        for path in wanted {
            let Some(folder) = folders
                .iter()
                .find(|f| f.path == path && f.path != main.path && !f.no_select)
            else {
                tracing::warn!(account, path, "Subconnection folder not found");
                continue;
            };
            let (engine, account, settings, folder) = (
                self.clone(),
                account.to_string(),
                settings.clone(),
                folder.clone(),
            );
            tasks.push(tokio::spawn(async move {
                let mut attempt = 0;
                loop {
                    match engine.watch_folder(&account, &settings, &folder, condstore).await {
                        Ok(()) => attempt = 0,
                        Err(e) => {
                            attempt += 1;
                            tracing::warn!(account, path = %folder.path, err = %e, "Subconnection failed");
                        }
                    }
                    tokio::time::sleep(backoff(attempt.max(1))).await;
                }
            }));
        }
        TaskGuard(tasks)
    }

    /// One subconnection: IDLE on a folder, syncing it on this same connection after each change.
    async fn watch_folder(
        &self,
        account: &str,
        settings: &ServerSettings,
        folder: &Folder,
        condstore: bool,
    ) -> Result<(), crate::sync::SyncError> {
        let mut session = connect(settings).await.map_err(|e| {
            crate::sync::SyncError::Imap(async_imap::error::Error::Io(std::io::Error::other(
                e.to_string(),
            )))
        })?;
        loop {
            self.sync_locked(&mut session, account, folder, condstore)
                .await?;
            while session.unsolicited_responses.try_recv().is_ok() {}
            let mut idle = session.idle();
            idle.init().await?;
            let (fut, _stop) = idle.wait_with_timeout(self.0.config.idle_renew);
            let outcome = fut.await;
            session = idle.done().await?;
            outcome?;
        }
    }

    /// Syncs a folder while holding its lock.
    async fn sync_locked(
        &self,
        session: &mut Session,
        account: &str,
        folder: &Folder,
        condstore: bool,
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
        sync_folder(session, &self.0.sink, account, folder, condstore).await
    }

    async fn sync_all(
        &self,
        account: &str,
        session: &mut Session,
        condstore: bool,
    ) -> Result<(), crate::sync::SyncError> {
        let folders = self.refresh_folders(account, session).await?;
        for folder in folders.iter().filter(|f| !f.no_select) {
            self.sync_locked(session, account, folder, condstore)
                .await?;
        }
        Ok(())
    }

    /// Lists folders, stores the listing, reports folders that appeared or vanished.
    async fn refresh_folders(
        &self,
        account: &str,
        session: &mut Session,
    ) -> Result<Vec<Folder>, crate::sync::SyncError> {
        let folders = list_folders(session).await?;
        let sink = &self.0.sink;
        let previous: Vec<Folder> = sink
            .store
            .listing(account)
            .await?
            .iter()
            .filter_map(|(_, b)| Folder::from_listing_entry(b))
            .collect();
        // The folder events, the dropped indexes and the new listing land together.
        let mut batch = sink.batch().await;
        if !previous.is_empty() {
            for f in folders
                .iter()
                .filter(|f| !previous.iter().any(|p| p.path == f.path))
            {
                batch.event(
                    account,
                    "mailboxNew",
                    Some(&f.path),
                    f.special_use.as_deref(),
                    json!({"path": f.path, "name": f.name, "specialUse": f.special_use}),
                );
            }
            for p in previous
                .iter()
                .filter(|p| !folders.iter().any(|f| f.path == p.path))
            {
                batch.event(
                    account,
                    "mailboxDeleted",
                    Some(&p.path),
                    p.special_use.as_deref(),
                    json!({"path": p.path, "name": p.name, "specialUse": p.special_use}),
                );
                batch.change(Change::ResetFolder {
                    account: account.to_string(),
                    path: p.path.clone(),
                });
            }
        }
        batch.change(Change::Listing {
            account: account.to_string(),
            entries: folders
                .iter()
                .map(|f| {
                    (
                        emailengine_core::ids::normalize_path(&f.path),
                        f.listing_entry(),
                    )
                })
                .collect(),
        });
        sink.commit(batch).await?;
        Ok(folders)
    }
}

/// How long to wait before repeating a sync the store could not take.
const STORE_RETRY: Duration = Duration::from_secs(1);

/// A sync to run from the IDLE loop; `All` covers `Main`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Resync {
    Main,
    All,
}

enum Flow {
    Stop,
    Reconnect,
    /// Restart the IDLE command (servers end long IDLEs).
    Renew,
}

/// Aborts the tasks it holds when dropped.
struct TaskGuard(Vec<tokio::task::JoinHandle<()>>);

impl Drop for TaskGuard {
    fn drop(&mut self) {
        for t in &self.0 {
            t.abort();
        }
    }
}

/// A sync connection unused this long is closed.
const SYNC_SESSION_IDLE: Duration = Duration::from_secs(300);

/// The second connection an account syncs on while its main connection stays in IDLE.
struct SyncWorker<'a> {
    settings: &'a ServerSettings,
    session: Option<Session>,
    last_used: Instant,
}

impl SyncWorker<'_> {
    async fn session(&mut self) -> Result<&mut Session, crate::sync::SyncError> {
        self.last_used = Instant::now();
        if self.session.is_none() {
            let session = connect(self.settings).await.map_err(|e| {
                crate::sync::SyncError::Imap(async_imap::error::Error::Io(std::io::Error::other(
                    e.to_string(),
                )))
            })?;
            self.session = Some(session);
        }
        Ok(self.session.as_mut().expect("just opened"))
    }

    async fn close_if_quiet(&mut self) {
        if self.session.is_some() && self.last_used.elapsed() >= SYNC_SESSION_IDLE {
            self.close().await;
        }
    }

    async fn close(&mut self) {
        if let Some(mut s) = self.session.take() {
            let _ = s.logout().await;
        }
    }
}

/// What ended a wait for commands.
enum Wake {
    /// A stop command, or the engine dropped the account's channel.
    Stop,
    Reconnect,
    /// A sync request or the timeout: carry on.
    Other,
}

/// Waits for a command, or until `timeout` passes.
async fn wait_command(
    rx: &mut mpsc::UnboundedReceiver<Command>,
    timeout: Option<Duration>,
) -> Wake {
    let command = match timeout {
        None => rx.recv().await,
        Some(t) => match tokio::time::timeout(t, rx.recv()).await {
            Ok(c) => c,
            Err(_) => return Wake::Other,
        },
    };
    match command {
        None | Some(Command::Stop) => Wake::Stop,
        Some(Command::Reconnect) => Wake::Reconnect,
        Some(Command::Sync) => Wake::Other,
    }
}

/// Reconnect delay: 2 s doubling to 5 min, with ±30 % jitter.
fn backoff(attempt: u32) -> Duration {
    let base = 2_000u64
        .saturating_mul(1 << attempt.min(8).saturating_sub(1))
        .min(300_000);
    let jitter = (rand::random::<f64>() * 0.6) + 0.7;
    Duration::from_millis((base as f64 * jitter) as u64)
}

/// A command session borrowed from an account's pool; returned when dropped unless marked
/// broken after an error.
pub struct PooledSession {
    session: Option<Session>,
    selected: Option<Selected>,
    account: String,
    engine: Engine,
    broken: bool,
}

/// The folder a pooled session has open, kept so the next call on the same folder can skip
/// re-opening it (re-opening a large folder costs the server far more than the call itself).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Selected {
    pub path: String,
    pub writable: bool,
    pub uid_validity: u64,
    /// Messages in the folder, kept current from EXISTS/EXPUNGE responses.
    pub exists: u32,
}

impl PooledSession {
    pub fn get(&mut self) -> &mut Session {
        // Forgetting the selection: the caller may issue commands that change it.
        self.selected = None;
        self.session
            .as_mut()
            .expect("session is present until drop")
    }

    /// Opens a folder (read-only unless `writable`), or refreshes it with NOOP when this
    /// session already has it open.
    pub async fn open_folder(
        &mut self,
        path: &str,
        writable: bool,
    ) -> async_imap::error::Result<Selected> {
        use async_imap::types::UnsolicitedResponse;
        let session = self
            .session
            .as_mut()
            .expect("session is present until drop");
        if let Some(sel) = self.selected.as_mut()
            && sel.path == path
            && (sel.writable || !writable)
        {
            session.noop().await?;
            while let Ok(response) = session.unsolicited_responses.try_recv() {
                match response {
                    UnsolicitedResponse::Exists(n) => sel.exists = n,
                    UnsolicitedResponse::Expunge(_) => sel.exists = sel.exists.saturating_sub(1),
                    _ => {}
                }
            }
            return Ok(sel.clone());
        }
        self.selected = None;
        let encoded = crate::folders::encode_path(path);
        let mailbox = if writable {
            session.select(&encoded).await?
        } else {
            session.examine(&encoded).await?
        };
        while session.unsolicited_responses.try_recv().is_ok() {}
        let sel = Selected {
            path: path.to_string(),
            writable,
            uid_validity: mailbox.uid_validity.unwrap_or(0) as u64,
            exists: mailbox.exists,
        };
        self.selected = Some(sel.clone());
        Ok(sel)
    }

    /// UID FETCH in the open folder, collected.
    pub async fn uid_fetch_all(
        &mut self,
        set: impl AsRef<str>,
        query: impl AsRef<str>,
    ) -> async_imap::error::Result<Vec<async_imap::types::Fetch>> {
        use futures_util::TryStreamExt;
        self.in_folder()
            .uid_fetch(set.as_ref(), query.as_ref())
            .await?
            .try_collect()
            .await
    }

    /// UID STORE in the open folder, responses drained.
    pub async fn uid_store_all(
        &mut self,
        set: impl AsRef<str>,
        query: impl AsRef<str>,
    ) -> async_imap::error::Result<()> {
        use futures_util::TryStreamExt;
        let _: Vec<_> = self
            .in_folder()
            .uid_store(set.as_ref(), query.as_ref())
            .await?
            .try_collect()
            .await?;
        Ok(())
    }

    /// UID EXPUNGE in the open folder (the cached message count is dropped).
    pub async fn uid_expunge_all(&mut self, set: impl AsRef<str>) -> async_imap::error::Result<()> {
        use futures_util::TryStreamExt;
        let _: Vec<_> = self
            .get()
            .uid_expunge(set.as_ref())
            .await?
            .try_collect()
            .await?;
        Ok(())
    }

    /// The session, keeping the open folder (for FETCH/STORE/SEARCH on it).
    pub fn in_folder(&mut self) -> &mut Session {
        self.session
            .as_mut()
            .expect("session is present until drop")
    }

    /// Marks the session unusable (after an I/O or protocol error).
    pub fn discard(&mut self) {
        self.broken = true;
    }
}

impl Drop for PooledSession {
    fn drop(&mut self) {
        let Some(session) = self.session.take() else {
            return;
        };
        if self.broken {
            return;
        }
        let limit = self.engine.0.config.pool_size;
        if let Ok(mut pools) = self.engine.0.pools.lock() {
            let pool = pools.entry(self.account.clone()).or_default();
            if pool.len() < limit {
                pool.push((session, self.selected.take()));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_and_is_capped() {
        for a in 1..20 {
            let d = backoff(a);
            assert!(
                d >= Duration::from_millis(1_400) && d <= Duration::from_millis(390_000),
                "{a}: {d:?}"
            );
        }
        assert!(backoff(1) < Duration::from_secs(3));
    }
}
