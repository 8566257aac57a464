//! The connection budget of an account and its command sessions. Every IMAP connection of an
//! account — the IDLE one, subconnections, and the command sessions that serve API calls and
//! background syncs — holds a slot of one semaphore, so the account never has more connections
//! than its cap. Command sessions are lent out and come back when dropped; a caller that finds
//! none free waits for one until its deadline, then gets [`MailError::Timeout`].

use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore};

use emailengine_mail::MailError;

use crate::connect::Session;
use crate::error::ImapError;

/// One connection's share of the account's budget; returned when dropped.
pub struct Slot {
    permit: Option<OwnedSemaphorePermit>,
    pool: Arc<AccountPool>,
}

impl Slot {
    /// Gives the slot up for good: the server refused a connection, so the account's budget
    /// shrinks to what the server allows.
    pub fn forget(mut self) {
        if let Some(p) = self.permit.take() {
            p.forget();
        }
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.pool.open.fetch_sub(1, Ordering::SeqCst);
    }
}

/// A command session waiting to be lent, with the folder it has open.
struct Parked {
    session: Session,
    selected: Option<Selected>,
    slot: Slot,
    since: Instant,
}

/// The budget and the parked command sessions of one account.
pub struct AccountPool {
    permits: Arc<Semaphore>,
    /// Connections open now (slots handed out).
    open: AtomicUsize,
    parked: Mutex<Vec<Parked>>,
    returned: Notify,
}

impl AccountPool {
    pub fn new(cap: usize) -> Arc<Self> {
        Arc::new(Self {
            permits: Arc::new(Semaphore::new(cap.max(1))),
            open: AtomicUsize::new(0),
            parked: Mutex::new(Vec::new()),
            returned: Notify::new(),
        })
    }

    /// Connections the account holds now.
    pub fn open(&self) -> usize {
        self.open.load(Ordering::SeqCst)
    }

    fn slot(self: &Arc<Self>, permit: OwnedSemaphorePermit) -> Slot {
        self.open.fetch_add(1, Ordering::SeqCst);
        Slot {
            permit: Some(permit),
            pool: self.clone(),
        }
    }

    fn unpark(&self) -> Option<Parked> {
        self.parked.lock().ok()?.pop()
    }

    /// A parked session whose connection is still open; ones the server closed meanwhile (or
    /// that it wrote to unasked, as before a BYE) are dropped on the way.
    async fn unpark_live(&self) -> Option<Parked> {
        while let Some(p) = self.unpark() {
            if crate::connect::still_open(&p.session).await {
                return Some(p);
            }
        }
        None
    }

    /// A slot for a long-lived connection (IDLE): parked command sessions are closed to make
    /// room, and otherwise it waits for one to come back.
    pub async fn reserve(self: &Arc<Self>) -> Slot {
        loop {
            let returned = self.returned.notified();
            tokio::pin!(returned);
            returned.as_mut().enable();
            if let Ok(p) = self.permits.clone().try_acquire_owned() {
                return self.slot(p);
            }
            if let Some(parked) = self.unpark() {
                drop(parked);
                continue;
            }
            tokio::select! {
                _ = &mut returned => {}
                p = self.permits.clone().acquire_owned() => {
                    if let Ok(p) = p {
                        return self.slot(p);
                    }
                }
            }
        }
    }

    /// A slot for an optional connection (a subconnection), if at least one more stays free
    /// for command sessions.
    pub fn reserve_spare(self: &Arc<Self>) -> Option<Slot> {
        if self.permits.available_permits() < 2 {
            return None;
        }
        self.permits
            .clone()
            .try_acquire_owned()
            .ok()
            .map(|p| self.slot(p))
    }

    /// Closes every parked session (a reconnect or new settings).
    pub fn clear(&self) {
        if let Ok(mut parked) = self.parked.lock() {
            parked.clear();
        }
    }

    /// Closes sessions parked longer than `quiet`.
    pub fn close_quiet(&self, quiet: Duration) {
        if let Ok(mut parked) = self.parked.lock() {
            parked.retain(|p| p.since.elapsed() < quiet);
        }
    }

    /// Lends a command session: a parked one, a new one while the budget allows (opened by
    /// `open`), or the next one returned before `deadline`.
    pub async fn lend<F, Fut>(
        self: &Arc<Self>,
        deadline: tokio::time::Instant,
        mut open: F,
    ) -> Result<PooledSession, MailError>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<Session, MailError>>,
    {
        loop {
            let returned = self.returned.notified();
            tokio::pin!(returned);
            returned.as_mut().enable();
            if let Some(p) = self.unpark_live().await {
                return Ok(PooledSession {
                    session: Some(p.session),
                    selected: p.selected,
                    slot: Some(p.slot),
                    pool: self.clone(),
                    broken: false,
                });
            }
            let permit = match self.permits.clone().try_acquire_owned() {
                Ok(p) => p,
                Err(_) => tokio::select! {
                    _ = &mut returned => continue,
                    p = self.permits.clone().acquire_owned() => match p {
                        Ok(p) => p,
                        Err(_) => return Err(MailError::Timeout),
                    },
                    _ = tokio::time::sleep_until(deadline) => return Err(MailError::Timeout),
                },
            };
            let slot = self.slot(permit);
            match open().await {
                Ok(session) => {
                    return Ok(PooledSession {
                        session: Some(session),
                        selected: None,
                        slot: Some(slot),
                        pool: self.clone(),
                        broken: false,
                    });
                }
                // The server would not take one more connection while others are open: it
                // allows fewer than the cap, so the budget shrinks and the call waits.
                Err(MailError::Connection(e)) if self.open() > 1 => {
                    tracing::warn!(err = %e, open = self.open() - 1, "Server refused another connection; lowering this account's connection cap");
                    slot.forget();
                }
                Err(e) => return Err(e),
            }
        }
    }
}

/// The folder a command session has open, kept so the next call on the same folder can skip
/// re-opening it (re-opening a large folder costs the server far more than the call itself).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Selected {
    pub path: String,
    pub writable: bool,
    pub uid_validity: u64,
    /// Messages in the folder, kept current from EXISTS/EXPUNGE responses.
    pub exists: u32,
    pub uid_next: Option<u32>,
}

/// A command session lent from an account's pool; it goes back when dropped, unless it was
/// marked broken after an error.
pub struct PooledSession {
    session: Option<Session>,
    selected: Option<Selected>,
    slot: Option<Slot>,
    pool: Arc<AccountPool>,
    broken: bool,
}

impl PooledSession {
    fn live(&mut self) -> &mut Session {
        // Present from lending until drop.
        match self.session.as_mut() {
            Some(s) => s,
            None => unreachable!("a pooled session holds its connection until dropped"),
        }
    }

    /// The session, forgetting the open folder (the caller may change it).
    pub fn get(&mut self) -> &mut Session {
        self.selected = None;
        self.live()
    }

    /// The session, keeping the open folder (for FETCH/STORE/SEARCH in it).
    pub fn in_folder(&mut self) -> &mut Session {
        self.live()
    }

    /// Closes the session instead of parking it: after an I/O or protocol error, or when it is
    /// not wanted again soon.
    pub fn discard(&mut self) {
        self.broken = true;
    }

    /// Retires the session when `e` broke it, and passes the error on.
    pub fn check<T>(&mut self, r: Result<T, ImapError>) -> Result<T, ImapError> {
        // A server that reports a bug of its own, or answers BAD (servers count those and
        // hang up after a few), may close the connection right after: it is not lent again.
        if let Err(e) = &r
            && (e.breaks_session()
                || e.code() == Some("SERVERBUG")
                || matches!(e, ImapError::Refused { status: "BAD", .. }))
        {
            self.discard();
        }
        r
    }

    /// Opens a folder (read-only unless `writable`), or refreshes it with NOOP when this
    /// session already has it open.
    pub async fn open_folder(&mut self, path: &str, writable: bool) -> Result<Selected, ImapError> {
        use async_imap::types::UnsolicitedResponse;
        if let Some(mut sel) = self.selected.clone()
            && sel.path == path
            && (sel.writable || !writable)
        {
            let r = self.live().noop().await.map_err(ImapError::from);
            self.check(r)?;
            let session = self.live();
            while let Ok(response) = session.unsolicited_responses.try_recv() {
                match response {
                    UnsolicitedResponse::Exists(n) => sel.exists = n,
                    UnsolicitedResponse::Expunge(_) => sel.exists = sel.exists.saturating_sub(1),
                    _ => {}
                }
            }
            self.selected = Some(sel.clone());
            return Ok(sel);
        }
        self.selected = None;
        let encoded = crate::folders::encode_path(path);
        let session = self.live();
        let r = if writable {
            session.select(&encoded).await
        } else {
            session.examine(&encoded).await
        }
        .map_err(ImapError::from);
        let mailbox = self.check(r)?;
        let session = self.live();
        while session.unsolicited_responses.try_recv().is_ok() {}
        let sel = Selected {
            path: path.to_string(),
            writable,
            uid_validity: u64::from(mailbox.uid_validity.unwrap_or(0)),
            exists: mailbox.exists,
            uid_next: mailbox.uid_next,
        };
        self.selected = Some(sel.clone());
        Ok(sel)
    }
}

impl Drop for PooledSession {
    fn drop(&mut self) {
        let (Some(session), Some(slot)) = (self.session.take(), self.slot.take()) else {
            return;
        };
        if self.broken {
            return;
        }
        if let Ok(mut parked) = self.pool.parked.lock() {
            parked.push(Parked {
                session,
                selected: self.selected.take(),
                slot,
                since: Instant::now(),
            });
        }
        self.pool.returned.notify_one();
    }
}
