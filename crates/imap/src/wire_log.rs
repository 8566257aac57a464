//! The protocol log of an account's main IMAP connection, when the account (or the `logs`
//! setting) asks for one: every line both ways, credentials hidden by
//! [`Redactor`](emailengine_core::protocol_log::Redactor), kept in the store's bounded list.
//! Logging never slows the connection: lines beyond what the writer keeps up with are dropped.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;

use emailengine_core::protocol_log::{self, MAX_LINE, Redactor, Source};
use emailengine_store::Store;

/// Lines waiting for the writer; more are dropped.
const QUEUE: usize = 4096;
/// Entries written in one store call at most, and how long a line may wait to be written.
const BATCH: usize = 200;
const FLUSH_EVERY: Duration = Duration::from_millis(300);

/// The capturing side, held by the connection's stream.
#[derive(Debug)]
pub struct WireLog {
    tx: mpsc::Sender<(Source, Vec<u8>)>,
    client: LineSplitter,
    server: LineSplitter,
}

impl WireLog {
    /// Starts the writer for one connection of `account`, keeping at most `max_lines` entries.
    pub fn start(store: Arc<dyn Store>, account: &str, max_lines: usize) -> Self {
        let (tx, rx) = mpsc::channel(QUEUE);
        let id = format!("{:012x}", rand::random::<u64>() & 0xffff_ffff_ffff);
        tokio::spawn(write_entries(store, account.to_string(), id, max_lines, rx));
        Self {
            tx,
            client: LineSplitter::default(),
            server: LineSplitter::default(),
        }
    }

    /// Bytes the client wrote.
    pub fn sent(&mut self, bytes: &[u8]) {
        let tx = &self.tx;
        self.client
            .feed(bytes, |line| drop(tx.try_send((Source::Client, line))));
    }

    /// Bytes the server sent.
    pub fn received(&mut self, bytes: &[u8]) {
        let tx = &self.tx;
        self.server
            .feed(bytes, |line| drop(tx.try_send((Source::Server, line))));
    }
}

/// Cuts a byte stream into lines, keeping at most [`MAX_LINE`] bytes of each.
#[derive(Debug, Default)]
struct LineSplitter {
    line: Vec<u8>,
}

impl LineSplitter {
    fn feed(&mut self, mut bytes: &[u8], mut emit: impl FnMut(Vec<u8>)) {
        while let Some(end) = bytes.iter().position(|b| *b == b'\n') {
            self.take(&bytes[..end]);
            emit(std::mem::take(&mut self.line));
            bytes = &bytes[end + 1..];
        }
        self.take(bytes);
    }

    fn take(&mut self, bytes: &[u8]) {
        let room = (MAX_LINE + 4).saturating_sub(self.line.len());
        self.line.extend_from_slice(&bytes[..bytes.len().min(room)]);
    }
}

async fn write_entries(
    store: Arc<dyn Store>,
    account: String,
    connection: String,
    max_lines: usize,
    mut rx: mpsc::Receiver<(Source, Vec<u8>)>,
) {
    let mut redactor = Redactor::default();
    let mut sequence: u64 = 0;
    let mut batch: Vec<Vec<u8>> = Vec::new();
    loop {
        let next = tokio::time::timeout(FLUSH_EVERY, rx.recv()).await;
        let closed = matches!(next, Ok(None));
        let quiet = next.is_err();
        if let Ok(Some((source, line))) = next {
            let text = String::from_utf8_lossy(&line);
            let msg = redactor.redact(source, &text);
            let at = chrono::Utc::now().timestamp_millis();
            let entry = protocol_log::entry(&connection, sequence, at, source, &msg);
            sequence += 1;
            batch.push(emailengine_core::msgpack::encode(
                &emailengine_core::msgpack::from_json(&entry),
            ));
        }
        if !batch.is_empty() && (closed || quiet || batch.len() >= BATCH) {
            if let Err(e) = store.push_account_log(&account, &batch, max_lines).await {
                tracing::warn!(account, err = %e, "Failed to keep protocol log lines");
            }
            batch.clear();
        }
        if closed {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_split_across_reads_and_cut() {
        let mut s = LineSplitter::default();
        let mut out = Vec::new();
        s.feed(b"* OK hel", |l| out.push(l));
        s.feed(b"lo\r\nA1 OK\r\n* 1 ", |l| out.push(l));
        assert_eq!(out, [b"* OK hello\r".to_vec(), b"A1 OK\r".to_vec()]);
        s.feed(&vec![b'x'; 10_000], |l| out.push(l));
        s.feed(b"\n", |l| out.push(l));
        assert_eq!(out[2].len(), MAX_LINE + 4);
    }
}
