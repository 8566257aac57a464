//! The threads that own the SQLite connections. SQLite calls block, so they never run on the
//! async workers: one writer thread and a few reader threads, fed through channels; each call
//! gets its answer back on a oneshot channel. WAL mode lets the readers, the writer and other
//! processes (the CLI) use the database at the same time.
//!
//! Writes are group-committed: the writer takes every write waiting in its queue, runs each in
//! a savepoint of one transaction (a failing write rolls back alone, so each stays atomic), and
//! answers them only after the transaction committed. A server also checkpoints the WAL on a
//! thread of its own, so the fsync that a checkpoint needs never holds up the writer.

use std::path::Path;
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rusqlite::{Connection, OpenFlags, TransactionBehavior};

use crate::{Result, StoreError};

type ReadJob = Box<dyn FnOnce(&mut Connection) + Send>;

/// A write runs inside a savepoint and returns whether it succeeded and how to answer once the
/// outcome of the whole transaction is known (`None`: committed).
type WriteJob = Box<dyn FnOnce(Option<&Connection>) -> (bool, Answer) + Send>;
type Answer = Box<dyn FnOnce(Option<&StoreError>) + Send>;

/// How long a write waits for another process holding the write lock.
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);
/// Writes committed together at most.
const GROUP_MAX: usize = 256;
/// How often the checkpointer moves committed pages from the WAL into the database.
const CHECKPOINT_EVERY: Duration = Duration::from_millis(500);
/// The WAL is truncated back to this size after a checkpoint that emptied it.
const WAL_SIZE_LIMIT: i64 = 64 * 1024 * 1024;

pub(crate) enum Pool {
    /// A long-lived process: the connections live on threads of their own.
    Threads {
        writer: mpsc::Sender<WriteJob>,
        readers: mpsc::Sender<ReadJob>,
        /// Dropping it stops the checkpointer.
        _checkpointer: Option<mpsc::Sender<()>>,
    },
    /// A short-lived tool: one connection, used on the caller's thread (starting threads would
    /// cost it more than the few calls it makes).
    Inline(Mutex<Connection>),
}

impl From<rusqlite::Error> for StoreError {
    fn from(e: rusqlite::Error) -> Self {
        match e {
            rusqlite::Error::SqliteFailure(code, _)
                if matches!(
                    code.code,
                    rusqlite::ErrorCode::DatabaseBusy
                        | rusqlite::ErrorCode::DatabaseLocked
                        | rusqlite::ErrorCode::SystemIoFailure
                        | rusqlite::ErrorCode::DiskFull
                        | rusqlite::ErrorCode::CannotOpen
                        | rusqlite::ErrorCode::ReadOnly
                ) =>
            {
                StoreError::Backend(e.to_string())
            }
            other => StoreError::Data(other.to_string()),
        }
    }
}

/// Opens one connection with the settings every connection needs.
pub(crate) fn connect(path: &Path) -> rusqlite::Result<Connection> {
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_CREATE
            | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    conn.busy_timeout(BUSY_TIMEOUT)?;
    // WAL: readers never block the writer; NORMAL: a commit survives a crash of the process
    // (the WAL is in the OS's hands), and the database is never left inconsistent.
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "NORMAL")?;
    conn.pragma_update(None, "temp_store", "MEMORY")?;
    conn.pragma_update(None, "journal_size_limit", WAL_SIZE_LIMIT)?;
    conn.set_prepared_statement_cache_capacity(64);
    Ok(conn)
}

impl Pool {
    /// One connection used in place, for a short-lived tool.
    pub(crate) fn inline(conn: Connection) -> Self {
        Self::Inline(Mutex::new(conn))
    }

    /// Starts the writer (owning `writer`), `readers` reader threads on new connections, and a
    /// thread that checkpoints the WAL.
    pub(crate) fn start(path: &Path, writer: Connection, readers: usize) -> Result<Self> {
        writer.pragma_update(None, "wal_autocheckpoint", 0)?;
        let (ctx, crx) = mpsc::channel::<()>();
        let conn = connect(path)?;
        spawn("sqlite-checkpoint", move || checkpoint_loop(conn, crx))?;
        let (wtx, wrx) = mpsc::channel::<WriteJob>();
        spawn("sqlite-writer", move || write_loop(writer, wrx))?;
        let (rtx, rrx) = mpsc::channel::<ReadJob>();
        let shared = Arc::new(Mutex::new(rrx));
        for i in 0..readers.max(1) {
            let mut conn = connect(path)?;
            let jobs = shared.clone();
            spawn(&format!("sqlite-reader-{i}"), move || {
                loop {
                    // The lock is held only while waiting, so readers take turns at the queue.
                    let job = match jobs.lock() {
                        Ok(rx) => rx.recv(),
                        Err(_) => return,
                    };
                    match job {
                        Ok(job) => job(&mut conn),
                        Err(_) => return,
                    }
                }
            })?;
        }
        Ok(Self::Threads {
            writer: wtx,
            readers: rtx,
            _checkpointer: Some(ctx),
        })
    }

    /// Runs a read on a reader connection.
    pub(crate) async fn read<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> rusqlite::Result<T> + Send + 'static,
    {
        let readers = match self {
            Self::Inline(conn) => {
                let conn = conn.lock().map_err(|_| closed())?;
                return f(&conn).map_err(StoreError::from);
            }
            Self::Threads { readers, .. } => readers,
        };
        let (tx, rx) = tokio::sync::oneshot::channel();
        let job: ReadJob = Box::new(move |conn| {
            let _ = tx.send(f(conn).map_err(StoreError::from));
        });
        readers.send(job).map_err(|_| closed())?;
        rx.await
            .map_err(|_| StoreError::Backend("the embedded store worker stopped".into()))?
    }

    /// Runs a write atomically: it is committed when `f` succeeds and rolled back when it
    /// fails; the answer comes once it is durable in the WAL.
    pub(crate) async fn write<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T> + Send + 'static,
    {
        let writer = match self {
            Self::Inline(conn) => {
                let mut conn = conn.lock().map_err(|_| closed())?;
                let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
                let out = f(&tx)?;
                tx.commit()?;
                return Ok(out);
            }
            Self::Threads { writer, .. } => writer,
        };
        let (tx, rx) = tokio::sync::oneshot::channel();
        let job: WriteJob = Box::new(move |conn| {
            let outcome = match conn {
                Some(conn) => f(conn),
                None => Err(StoreError::Backend(
                    "the embedded store could not start a transaction".into(),
                )),
            };
            let ok = outcome.is_ok();
            let answer: Answer = Box::new(move |failed| {
                let _ = tx.send(match (outcome, failed) {
                    (Ok(_), Some(e)) => Err(StoreError::Backend(e.to_string())),
                    (outcome, _) => outcome,
                });
            });
            (ok, answer)
        });
        writer.send(job).map_err(|_| closed())?;
        rx.await
            .map_err(|_| StoreError::Backend("the embedded store worker stopped".into()))?
    }
}

fn closed() -> StoreError {
    StoreError::Backend("the embedded store is closed".into())
}

fn spawn(name: &str, body: impl FnOnce() + Send + 'static) -> Result<()> {
    std::thread::Builder::new()
        .name(name.to_string())
        .spawn(body)
        .map(drop)
        .map_err(|e| StoreError::Backend(format!("cannot start a store thread: {e}")))
}

fn write_loop(mut conn: Connection, jobs: mpsc::Receiver<WriteJob>) {
    while let Ok(first) = jobs.recv() {
        let mut group = vec![first];
        while group.len() < GROUP_MAX {
            match jobs.try_recv() {
                Ok(job) => group.push(job),
                Err(_) => break,
            }
        }
        commit_group(&mut conn, group);
    }
}

/// Runs a group of writes in one transaction, each in its own savepoint; every write gets its
/// answer once the outcome of the transaction is known.
fn commit_group(conn: &mut Connection, group: Vec<WriteJob>) {
    let mut answers = Vec::with_capacity(group.len());
    let mut jobs = group.into_iter();
    let result = match conn.transaction_with_behavior(TransactionBehavior::Immediate) {
        Err(e) => Err(e),
        Ok(mut tx) => {
            let mut failure = None;
            for job in jobs.by_ref() {
                match tx.savepoint() {
                    Ok(sp) => {
                        let (ok, answer) = job(Some(&*sp));
                        answers.push(answer);
                        // A failed write's savepoint is rolled back when it is dropped.
                        if ok && let Err(e) = sp.commit() {
                            failure = Some(e);
                            break;
                        }
                    }
                    Err(e) => {
                        answers.push(job(None).1);
                        failure = Some(e);
                        break;
                    }
                }
            }
            match failure {
                Some(e) => Err(e),
                None => tx.commit(),
            }
        }
    };
    // Writes that never ran (the transaction could not go on) answer with the failure too.
    for job in jobs {
        answers.push(job(None).1);
    }
    let failed = result.err().map(StoreError::from);
    for answer in answers {
        answer(failed.as_ref());
    }
}

fn checkpoint_loop(conn: Connection, stop: mpsc::Receiver<()>) {
    while let Err(mpsc::RecvTimeoutError::Timeout) = stop.recv_timeout(CHECKPOINT_EVERY) {
        if let Err(e) = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(())) {
            tracing::warn!(err = %e, "WAL checkpoint failed");
        }
    }
}
