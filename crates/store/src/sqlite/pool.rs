//! The threads that own the SQLite connections. SQLite calls block, so they never run on the
//! async workers: one writer thread (every write is one IMMEDIATE transaction, so a half-done
//! write never becomes visible) and a few reader threads, fed through channels; each call gets
//! its answer back on a oneshot channel. WAL mode lets the readers, the writer and other
//! processes (the CLI) use the database at the same time.

use std::path::Path;
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rusqlite::{Connection, OpenFlags, Transaction, TransactionBehavior};

use crate::{Result, StoreError};

type Job = Box<dyn FnOnce(&mut Connection) + Send>;

/// How long a write waits for another process holding the write lock.
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

pub(crate) struct Pool {
    writer: mpsc::Sender<Job>,
    readers: mpsc::Sender<Job>,
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
    Ok(conn)
}

impl Pool {
    /// Starts the writer (owning `writer`) and `readers` reader threads on new connections.
    pub(crate) fn start(path: &Path, writer: Connection, readers: usize) -> Result<Self> {
        let (wtx, wrx) = mpsc::channel::<Job>();
        spawn_worker("sqlite-writer", writer, Arc::new(Mutex::new(wrx)))?;
        let (rtx, rrx) = mpsc::channel::<Job>();
        let shared = Arc::new(Mutex::new(rrx));
        for i in 0..readers.max(1) {
            let conn = connect(path)?;
            spawn_worker(&format!("sqlite-reader-{i}"), conn, shared.clone())?;
        }
        Ok(Self {
            writer: wtx,
            readers: rtx,
        })
    }

    /// Runs a read on a reader connection.
    pub(crate) async fn read<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> rusqlite::Result<T> + Send + 'static,
    {
        run(&self.readers, move |conn| f(conn).map_err(StoreError::from)).await
    }

    /// Runs a write as one IMMEDIATE transaction: committed when `f` succeeds, rolled back
    /// when it fails.
    pub(crate) async fn write<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Transaction<'_>) -> Result<T> + Send + 'static,
    {
        run(&self.writer, move |conn| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let out = f(&tx)?;
            tx.commit()?;
            Ok(out)
        })
        .await
    }
}

async fn run<T, F>(queue: &mpsc::Sender<Job>, f: F) -> Result<T>
where
    T: Send + 'static,
    F: FnOnce(&mut Connection) -> Result<T> + Send + 'static,
{
    let (tx, rx) = tokio::sync::oneshot::channel();
    let job: Job = Box::new(move |conn| {
        let _ = tx.send(f(conn));
    });
    queue
        .send(job)
        .map_err(|_| StoreError::Backend("the embedded store is closed".into()))?;
    rx.await
        .map_err(|_| StoreError::Backend("the embedded store worker stopped".into()))?
}

fn spawn_worker(
    name: &str,
    mut conn: Connection,
    jobs: Arc<Mutex<mpsc::Receiver<Job>>>,
) -> Result<()> {
    std::thread::Builder::new()
        .name(name.to_string())
        .spawn(move || {
            loop {
                // The lock is held only while waiting for the next job, so readers take jobs
                // from the shared queue one at a time.
                let job = match jobs.lock() {
                    Ok(rx) => rx.recv(),
                    Err(_) => return,
                };
                match job {
                    Ok(job) => job(&mut conn),
                    Err(_) => return,
                }
            }
        })
        .map(drop)
        .map_err(|e| StoreError::Backend(format!("cannot start a store thread: {e}")))
}
