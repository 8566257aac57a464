//! The live change stream (spec §24.9): account connection states as they change, published by
//! the mail engine and read by `/admin/changes` and `/v1/changes`. One in-process broadcast with
//! no history: a consumer sees what happens after it subscribed, and one that falls behind
//! loses the oldest changes rather than holding up the engine that publishes them.

use std::sync::Arc;

use serde_json::{Value, json};
use tokio::sync::{broadcast, watch};

use emailengine_core::connection::ConnectionState;

/// Changes kept for a slow consumer before it starts skipping.
const BACKLOG: usize = 1024;

/// An account's connection reached a state; `error` is its `lastError` detail, if any.
#[derive(Debug, Clone, PartialEq)]
pub struct StateChange {
    pub account: String,
    pub state: ConnectionState,
    pub error: Option<Value>,
}

impl StateChange {
    /// The change as the stream sends it: `{account, type: "state", key, payload, stateLabel}`.
    pub fn to_json(&self) -> Value {
        let payload = match &self.error {
            Some(e) => json!({ "error": e }),
            None => Value::Null,
        };
        let label = state_label(self.state);
        json!({
            "account": self.account,
            "type": "state",
            "key": self.state.as_str(),
            "payload": payload,
            "stateLabel": {"type": label.tone, "name": label.name, "spinner": label.busy},
        })
    }
}

/// How a state is shown as a badge.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StateLabel {
    /// `success`, `info`, `warning`, `danger` or `secondary`.
    pub tone: &'static str,
    pub name: &'static str,
    /// The state is a step on the way to another (connecting, syncing).
    pub busy: bool,
}

pub fn state_label(state: ConnectionState) -> StateLabel {
    use ConnectionState as S;
    let (tone, name, busy) = match state {
        S::Init => ("info", "Initializing", true),
        S::Connecting => ("info", "Connecting", true),
        S::Syncing => ("info", "Syncing", true),
        S::Connected => ("success", "Connected", false),
        S::AuthenticationError => ("danger", "Authentication failed", false),
        S::ConnectError => ("danger", "Connection failed", false),
        S::Unset => ("secondary", "Not configured", false),
        S::Disconnected => ("warning", "Disconnected", false),
        S::Paused => ("secondary", "Paused", false),
    };
    StateLabel { tone, name, busy }
}

/// The publishing end, shared by whoever owns the server's event sink. Cloning shares the
/// same stream.
#[derive(Clone)]
pub struct ChangeFeed {
    changes: broadcast::Sender<Arc<StateChange>>,
    closed: Arc<watch::Sender<bool>>,
}

impl Default for ChangeFeed {
    fn default() -> Self {
        Self {
            changes: broadcast::channel(BACKLOG).0,
            closed: Arc::new(watch::channel(false).0),
        }
    }
}

/// One consumer's view of the stream, from the moment it subscribed.
pub struct ChangeReceiver {
    changes: broadcast::Receiver<Arc<StateChange>>,
    closed: watch::Receiver<bool>,
}

impl ChangeFeed {
    /// Sends a change to every current consumer; never waits, and costs nothing without one.
    pub fn publish(&self, change: StateChange) {
        let _ = self.changes.send(Arc::new(change));
    }

    pub fn subscribe(&self) -> ChangeReceiver {
        ChangeReceiver {
            changes: self.changes.subscribe(),
            closed: self.closed.subscribe(),
        }
    }

    /// Ends every open stream (server shutdown: open streams would otherwise keep their
    /// requests, and the shutdown, waiting forever).
    pub fn close(&self) {
        self.closed.send_replace(true);
    }
}

impl ChangeReceiver {
    /// The next change; `None` once the feed is closed. Changes a slow consumer missed are
    /// skipped.
    pub async fn next(&mut self) -> Option<Arc<StateChange>> {
        loop {
            if *self.closed.borrow() {
                return None;
            }
            tokio::select! {
                biased;
                _ = self.closed.wait_for(|closed| *closed) => return None,
                received = self.changes.recv() => match received {
                    Ok(change) => return Some(change),
                    Err(broadcast::error::RecvError::Lagged(missed)) => {
                        tracing::debug!(missed, "A change stream consumer fell behind");
                    }
                    Err(broadcast::error::RecvError::Closed) => return None,
                },
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn change(account: &str, state: ConnectionState) -> StateChange {
        StateChange {
            account: account.into(),
            state,
            error: None,
        }
    }

    #[test]
    fn wire_shape() {
        let c = StateChange {
            account: "ann".into(),
            state: ConnectionState::AuthenticationError,
            error: Some(json!({"response": "NO [AUTHENTICATIONFAILED]"})),
        };
        assert_eq!(
            c.to_json().to_string(),
            r#"{"account":"ann","type":"state","key":"authenticationError","payload":{"error":{"response":"NO [AUTHENTICATIONFAILED]"}},"stateLabel":{"type":"danger","name":"Authentication failed","spinner":false}}"#
        );
        assert_eq!(
            change("bob", ConnectionState::Connected)
                .to_json()
                .to_string(),
            r#"{"account":"bob","type":"state","key":"connected","payload":null,"stateLabel":{"type":"success","name":"Connected","spinner":false}}"#
        );
    }

    #[tokio::test]
    async fn consumers_see_changes_after_they_subscribed() {
        let feed = ChangeFeed::default();
        feed.publish(change("before", ConnectionState::Connecting));
        let mut a = feed.subscribe();
        let mut b = feed.subscribe();
        feed.publish(change("ann", ConnectionState::Connected));
        assert_eq!(a.next().await.unwrap().account, "ann");
        assert_eq!(b.next().await.unwrap().account, "ann");
    }

    #[tokio::test]
    async fn a_slow_consumer_skips_and_never_blocks_the_publisher() {
        let feed = ChangeFeed::default();
        let mut slow = feed.subscribe();
        for i in 0..BACKLOG + 10 {
            feed.publish(change(&format!("a{i}"), ConnectionState::Connected));
        }
        assert_eq!(slow.next().await.unwrap().account, "a10");
    }

    #[tokio::test]
    async fn closing_ends_every_stream() {
        let feed = ChangeFeed::default();
        let mut a = feed.subscribe();
        let waiting = tokio::spawn(async move { a.next().await });
        tokio::task::yield_now().await;
        feed.close();
        assert_eq!(waiting.await.unwrap(), None);
        assert!(feed.subscribe().next().await.is_none());
    }
}
