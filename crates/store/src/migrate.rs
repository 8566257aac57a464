//! Copies everything a server needs from one store to another through the store traits, so it
//! works between any two backends: settings, tokens, accounts (fields as stored, secrets still
//! encrypted), mailbox indexes, the outbox, undelivered events and given-up deliveries. Values
//! are copied as stored (msgpack records, JSON strings, index entries), never re-encoded.
//! Writes are upserts keyed as in the source, so running it twice gives the same target.

use std::fmt;

use crate::{Change, Result, Store};

/// The consumer group whose unacknowledged events are copied.
pub const WEBHOOK_GROUP: &str = "webhooks";

/// What a store holds, in the units `migrate` copies.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Inventory {
    pub settings: usize,
    pub tokens: usize,
    pub accounts: usize,
    pub mailboxes: usize,
    pub folders: usize,
    pub messages: usize,
    pub outbox: usize,
    pub events: usize,
    pub dead_events: usize,
}

impl Inventory {
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }
}

impl fmt::Display for Inventory {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} settings, {} tokens, {} accounts, {} mailbox ids, {} folder indexes with {} messages, {} queued messages, {} undelivered events, {} given-up webhooks",
            self.settings,
            self.tokens,
            self.accounts,
            self.mailboxes,
            self.folders,
            self.messages,
            self.outbox,
            self.events,
            self.dead_events
        )
    }
}

/// Counts what a store holds (reads the same data `copy` would).
pub async fn inventory(store: &dyn Store) -> Result<Inventory> {
    let mut inv = Inventory {
        settings: store.all_raw_settings().await?.len(),
        tokens: store.raw_tokens().await?.len(),
        outbox: store.list_outbox(0, 0).await?.0 as usize,
        events: store.undelivered_events(WEBHOOK_GROUP).await?.len(),
        dead_events: store.dead_events(0, 0).await?.0 as usize,
        ..Default::default()
    };
    for account in store.account_ids().await? {
        inv.accounts += 1;
        inv.mailboxes += store.mailbox_registry(&account).await?.len();
        for path in store.indexed_folders(&account).await? {
            inv.folders += 1;
            inv.messages += store.folder_index(&account, &path).await?.len();
        }
    }
    Ok(inv)
}

/// Copies `from` into `to` and returns what was copied.
pub async fn copy(from: &dyn Store, to: &dyn Store) -> Result<Inventory> {
    let mut done = Inventory::default();

    let settings = from.all_raw_settings().await?;
    to.put_raw_settings(&settings).await?;
    done.settings = settings.len();

    for token in from.raw_tokens().await? {
        to.put_raw_token(&token).await?;
        done.tokens += 1;
    }

    let mut accounts = from.account_ids().await?;
    accounts.sort();
    for account in &accounts {
        let Some(fields) = from.account(account).await? else {
            continue;
        };
        to.put_account(account, &fields).await?;
        done.accounts += 1;
        let registry = from.mailbox_registry(account).await?;
        to.put_mailbox_registry(account, &registry).await?;
        done.mailboxes += registry.len();
        let mut changes = vec![Change::Listing {
            account: account.clone(),
            entries: from.listing(account).await?,
        }];
        for path in from.indexed_folders(account).await? {
            let status = from.folder_status(account, &path).await?;
            let entries = from.folder_index(account, &path).await?;
            done.folders += 1;
            done.messages += entries.len();
            changes.push(Change::ResetFolder {
                account: account.clone(),
                path: path.clone(),
            });
            changes.push(Change::FolderEntries {
                account: account.clone(),
                path: path.clone(),
                upsert: entries,
                remove: Vec::new(),
            });
            changes.push(Change::FolderStatus {
                account: account.clone(),
                path,
                fields: status.into_iter().collect(),
            });
        }
        to.commit(changes).await?;
    }

    let (total, items) = from.list_outbox(0, usize::MAX / 2).await?;
    debug_assert_eq!(total as usize, items.len());
    let queued: Vec<Change> = items
        .into_iter()
        .map(|i| Change::PutOutbox {
            account: i.account,
            queue_id: i.queue_id,
            entry: i.entry,
            due: i.due,
        })
        .collect();
    done.outbox = queued.len();
    to.commit(queued).await?;

    let events = from.undelivered_events(WEBHOOK_GROUP).await?;
    to.import_events(&events).await?;
    done.events = events.len();

    let (_, dead) = from.dead_events(0, usize::MAX / 2).await?;
    for d in &dead {
        to.put_dead_event(d).await?;
    }
    done.dead_events = dead.len();
    Ok(done)
}
