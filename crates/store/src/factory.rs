//! Opens the backend the configuration names: Redis when a Redis URL is configured, the
//! embedded store in a data directory otherwise. Callers get `Arc<dyn Store>` and never name a
//! backend type.

use std::path::PathBuf;
use std::sync::Arc;

use crate::redis::{RedisStore, redact_url};
use crate::sqlite::SqliteStore;
use crate::{Result, Store, StoreError};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreConfig {
    /// EmailEngine's Redis layout, with its optional key prefix (`EENGINE_REDIS_PREFIX`).
    Redis { url: String, prefix: String },
    /// The embedded store in this data directory.
    Embedded { dir: PathBuf },
}

impl StoreConfig {
    /// The store named for humans: the directory, or the Redis URL without its password.
    pub fn location(&self) -> String {
        match self {
            Self::Redis { url, .. } => redact_url(url),
            Self::Embedded { dir } => dir.display().to_string(),
        }
    }
}

/// Who opens the store: a server owns the accounts, so only one server may open an embedded
/// data directory; command-line tools may open it beside a running server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Server,
    Tool,
    /// A tool that must not run beside a server on the same embedded store (`migrate`).
    ExclusiveTool,
}

/// Opens the configured store.
pub async fn open(config: &StoreConfig, role: Role) -> Result<Arc<dyn Store>> {
    match config {
        StoreConfig::Redis { url, prefix } => RedisStore::connect(url, prefix)
            .await
            .map(|s| Arc::new(s) as Arc<dyn Store>)
            .map_err(|e| {
                StoreError::Open(format!(
                    "Failed to establish connection to Redis using {}: {}",
                    redact_url(url),
                    e.detail()
                ))
            }),
        StoreConfig::Embedded { dir } => {
            let dir = dir.clone();
            let readers = if role == Role::Server { 2 } else { 0 };
            let store = tokio::task::spawn_blocking(move || SqliteStore::open(&dir, readers))
                .await
                .map_err(|e| {
                    StoreError::Backend(format!("cannot open the embedded store: {e}"))
                })??;
            if role != Role::Tool {
                store.lock_for_server()?;
            }
            Ok(Arc::new(store))
        }
    }
}
