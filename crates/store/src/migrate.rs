//! Copies everything a server needs from one store to another through the store traits, so it
//! works between any two backends: settings, tokens, accounts (fields as stored, secrets still
//! encrypted), mailbox indexes, the outbox, undelivered events, given-up deliveries, templates,
//! suppression lists, SMTP gateways, OAuth2 apps (with the accounts linked to them) and custom
//! webhook routes. Values are copied as stored (msgpack records, JSON strings, index entries), never re-encoded.
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
    pub templates: usize,
    pub blocklist_entries: usize,
    pub gateways: usize,
    pub apps: usize,
    pub webhook_routes: usize,
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
            "{} settings, {} tokens, {} accounts, {} mailbox ids, {} folder indexes with {} messages, {} queued messages, {} undelivered events, {} given-up webhooks, {} templates, {} blocklist entries, {} SMTP gateways, {} OAuth2 apps, {} webhook routes",
            self.settings,
            self.tokens,
            self.accounts,
            self.mailboxes,
            self.folders,
            self.messages,
            self.outbox,
            self.events,
            self.dead_events,
            self.templates,
            self.blocklist_entries,
            self.gateways,
            self.apps,
            self.webhook_routes
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
        templates: store.template_ids(None).await?.len(),
        blocklist_entries: store
            .blocklists()
            .await?
            .iter()
            .map(|(_, n)| *n as usize)
            .sum(),
        gateways: store.gateway_ids().await?.len(),
        apps: store.app_ids().await?.len(),
        webhook_routes: store.webhook_route_ids().await?.len(),
        ..Default::default()
    };
    for account in store.account_ids().await? {
        inv.accounts += 1;
        inv.templates += store.template_ids(Some(&account)).await?.len();
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

    for owner in std::iter::once(None).chain(from.account_ids().await?.into_iter().map(Some)) {
        for id in from.template_ids(owner.as_deref()).await? {
            if let Some((meta, content)) = from.template(owner.as_deref(), &id).await? {
                to.put_template(owner.as_deref(), &id, &meta, &content)
                    .await?;
                done.templates += 1;
            }
        }
    }
    for (list, _) in from.blocklists().await? {
        for (address, record) in from.blocklist_entries(&list).await? {
            to.put_blocklist_entry(&list, &address, &record).await?;
            done.blocklist_entries += 1;
        }
    }
    for id in from.webhook_route_ids().await? {
        if let Some(route) = from.webhook_route(&id).await? {
            to.put_webhook_route(&id, &route).await?;
            done.webhook_routes += 1;
        }
    }
    for id in from.gateway_ids().await? {
        if let Some(fields) = from.gateway(&id).await? {
            let fields: Vec<(String, Vec<u8>)> = fields.into_iter().collect();
            to.put_gateway(&id, &fields, &[]).await?;
            done.gateways += 1;
        }
    }
    for id in from.app_ids().await? {
        if let Some((data, meta)) = from.app(&id).await? {
            let pubsub = emailengine_core::msgpack::decode(&data)
                .and_then(|v| {
                    v.as_map()?
                        .iter()
                        .find(|(k, _)| k.as_str() == Some("baseScopes"))
                        .and_then(|(_, v)| v.as_str().map(|s| s == "pubsub"))
                })
                .unwrap_or(false);
            to.put_app(&id, &data, meta.as_deref(), pubsub).await?;
            for (account, user) in from.app_accounts(&id).await? {
                to.link_app_account(&id, &account, &user).await?;
            }
            done.apps += 1;
        }
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
