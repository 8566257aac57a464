//! Every Redis key this server reads or writes, in one place, so the layout is visible at a
//! glance and matches EmailEngine's (spec §3.2, §6.1, §7). All keys carry the optional prefix
//! from `EENGINE_REDIS_PREFIX` (`"<p>:"`, or nothing).

#[derive(Debug, Clone, Default)]
pub struct Keys {
    prefix: String,
}

impl Keys {
    /// `prefix` is the raw `EENGINE_REDIS_PREFIX` value; it gains a `:` when non-empty.
    pub fn new(prefix: &str) -> Self {
        let p = prefix.trim();
        Self {
            prefix: if p.is_empty() {
                String::new()
            } else {
                format!("{p}:")
            },
        }
    }

    fn k(&self, name: &str) -> String {
        format!("{}{}", self.prefix, name)
    }

    /// Hash: token id → msgpack record.
    pub fn tokens(&self) -> String {
        self.k("tokens")
    }
    /// Hash: token id → msgpack `{time, ip}`.
    pub fn token_access(&self) -> String {
        self.k("tokens:access")
    }
    /// Set of ids of tokens bound to no account.
    pub fn root_tokens(&self) -> String {
        self.k("iat")
    }
    /// Set of ids of tokens bound to `account`.
    pub fn account_tokens(&self, account: &str) -> String {
        self.k(&format!("iat:{account}"))
    }
    /// The index set a token with this binding belongs to.
    pub fn token_index(&self, account: Option<&str>) -> String {
        account.map_or_else(|| self.root_tokens(), |a| self.account_tokens(a))
    }
    /// List: audit entries of one token.
    pub fn token_log(&self, id: &str) -> String {
        self.k(&format!("tokens:log:{id}"))
    }
    /// Counter for one fixed rate-limit window of one token.
    pub fn rate_limit(&self, window_secs: u64, bucket: i64, token_id: &str) -> String {
        self.k(&format!("rl:{window_secs}:{bucket}:api:{token_id}"))
    }
    /// Hash: setting name → JSON value.
    pub fn settings(&self) -> String {
        self.k("settings")
    }
    /// Set of all account ids.
    pub fn accounts(&self) -> String {
        self.k("ia:accounts")
    }
    /// Hash: the account record.
    pub fn account(&self, account: &str) -> String {
        self.k(&format!("iad:{account}"))
    }
    /// Hash: normalized folder path → msgpack listing entry.
    pub fn listing(&self, account: &str) -> String {
        self.k(&format!("ial:{account}"))
    }
    /// Hash: mailbox generation ↔ numeric id registry.
    pub fn mailbox_registry(&self, account: &str) -> String {
        self.k(&format!("iah:{account}"))
    }
    /// Hash: original Message-ID → concatenated msgpack bounce records.
    pub fn bounces(&self, account: &str) -> String {
        self.k(&format!("iar:b:{account}"))
    }
    /// Hash: sync status of one folder.
    pub fn folder_status(&self, account: &str, path_hash: &str) -> String {
        self.k(&format!("iam:{account}:h:{path_hash}"))
    }
    /// Sorted set: the message index of one folder, scored by UID.
    pub fn folder_index(&self, account: &str, path_hash: &str) -> String {
        self.k(&format!("iam:{account}:l:{path_hash}"))
    }
    /// Pattern matching every per-folder key of an account.
    pub fn folder_keys_pattern(&self, account: &str) -> String {
        self.k(&format!("iam:{account}:*"))
    }
    /// Stream: every event, in order, for webhook delivery.
    pub fn events(&self) -> String {
        self.k("events")
    }
    /// Hash: webhook deliveries given up, by event id (JSON `{event, reason}`).
    pub fn dead_events(&self) -> String {
        self.k("wh:dead")
    }
    /// Sorted set: dead event ids by the time they were given up.
    pub fn dead_events_index(&self) -> String {
        self.k("wh:dead:i")
    }
    /// Hash: queue id → msgpack outbox entry, per account.
    pub fn outbox(&self, account: &str) -> String {
        self.k(&format!("iaq:{account}"))
    }
    /// Sorted set: queue ids by the time their next attempt is due.
    pub fn outbox_due(&self) -> String {
        self.k("outbox:due")
    }
    /// Hash: queue id → the worker holding its lease.
    pub fn outbox_leases(&self) -> String {
        self.k("outbox:lease")
    }
    /// Hash: queue id → account.
    pub fn outbox_accounts(&self) -> String {
        self.k("outbox:q")
    }
    /// String with TTL: the response to a submission with this idempotency key.
    pub fn idempotency(&self, account: &str, key: &str) -> String {
        self.k(&format!("idempotency:{account}:{key}"))
    }
    /// Set of counter names that have per-minute hashes.
    pub fn stats_keys(&self) -> String {
        self.k("stats:keys")
    }
    /// Hash: `<YYYYMMDDHHmm>` → count, for one counter and one day.
    pub fn stats_day(&self, counter: &str, day: &str) -> String {
        self.k(&format!("stats:{counter}:{day}"))
    }
    /// List: an account's protocol log entries (msgpack), oldest first.
    pub fn account_log(&self, account: &str) -> String {
        self.k(&format!("iam:{account}:g"))
    }
    /// Set of custom webhook route ids.
    pub fn webhook_route_ids(&self) -> String {
        self.k("wh:i")
    }
    /// Hash: `<id>:meta` / `<id>:content` → msgpack, `<id>:tcount` → trigger count.
    pub fn webhook_routes(&self) -> String {
        self.k("wh:c")
    }
    /// Set of the template ids of an account (`""`: public templates).
    pub fn template_ids(&self, account: Option<&str>) -> String {
        self.k(&format!("tpl:{}:i", account.unwrap_or("")))
    }
    /// Hash: `<id>:meta` / `<id>:content` → msgpack, per account.
    pub fn templates(&self, account: Option<&str>) -> String {
        self.k(&format!("tpl:{}:c", account.unwrap_or("")))
    }
    /// Hash: list id → number of entries.
    pub fn blocklists(&self) -> String {
        self.k("lists:unsub:lists")
    }
    /// Hash: lower-cased address → JSON entry, per list.
    pub fn blocklist(&self, list: &str) -> String {
        self.k(&format!("lists:unsub:entries:{list}"))
    }
    /// Set of gateway ids.
    pub fn gateways(&self) -> String {
        self.k("gateways")
    }
    /// Hash: one gateway's fields.
    pub fn gateway(&self, id: &str) -> String {
        self.k(&format!("gateway:{id}"))
    }
    /// Set of OAuth2 app ids.
    pub fn apps(&self) -> String {
        self.k("oapp:i")
    }
    /// Hash: `<id>:data` / `<id>:meta` → msgpack.
    pub fn app_records(&self) -> String {
        self.k("oapp:c")
    }
    /// Set of Pub/Sub app ids.
    pub fn pubsub_apps(&self) -> String {
        self.k("oapp:sub")
    }
    /// Set of the accounts using an app.
    pub fn app_accounts(&self, app: &str) -> String {
        self.k(&format!("oapp:a:{app}"))
    }
    /// Hash: lower-cased OAuth2 user → account, per app.
    pub fn app_users(&self, app: &str) -> String {
        self.k(&format!("oapp:h:{app}"))
    }
    /// A short-lived key named by its caller (`account:add:<nonce>`, ...).
    pub fn transient(&self, name: &str) -> String {
        self.k(name)
    }
    /// A lock held across processes.
    pub fn lock(&self, name: &str) -> String {
        self.k(&format!("lock:{name}"))
    }
    /// Transient key of the `/health` probe.
    pub fn health_probe(&self, ms: i64) -> String {
        self.k(&format!("test:{ms}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_rules() {
        assert_eq!(Keys::new("").tokens(), "tokens");
        assert_eq!(Keys::new("  ").tokens(), "tokens");
        assert_eq!(Keys::new("ee").tokens(), "ee:tokens");
        assert_eq!(Keys::new("ee").account_tokens("a"), "ee:iat:a");
        assert_eq!(Keys::new("").rate_limit(60, 5, "id"), "rl:60:5:api:id");
    }
}
