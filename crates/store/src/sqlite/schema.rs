//! The embedded store's tables. Records keep EmailEngine's encodings (msgpack token records,
//! JSON settings, the binary index entries), so copying to and from Redis is byte for byte.
//! `PRAGMA user_version` holds the schema version; a newer file than this build knows is
//! refused rather than misread.

use rusqlite::Connection;

use crate::{Result, StoreError};

pub(crate) const VERSION: i64 = 1;

const SCHEMA_V1: &str = "
CREATE TABLE tokens (
  id TEXT PRIMARY KEY,
  record BLOB NOT NULL,
  access BLOB,
  account TEXT
);
CREATE INDEX tokens_account ON tokens(account);
CREATE TABLE rate_limits (
  key TEXT PRIMARY KEY,
  count INTEGER NOT NULL,
  expires INTEGER NOT NULL
) WITHOUT ROWID;
CREATE TABLE settings (
  key TEXT PRIMARY KEY,
  value TEXT NOT NULL
) WITHOUT ROWID;
CREATE TABLE stat_names (
  name TEXT PRIMARY KEY
) WITHOUT ROWID;
CREATE TABLE stats (
  name TEXT NOT NULL,
  minute INTEGER NOT NULL,
  count INTEGER NOT NULL,
  PRIMARY KEY (name, minute)
) WITHOUT ROWID;
CREATE TABLE accounts (
  account TEXT PRIMARY KEY
) WITHOUT ROWID;
CREATE TABLE account_fields (
  account TEXT NOT NULL,
  field TEXT NOT NULL,
  value TEXT NOT NULL,
  PRIMARY KEY (account, field)
) WITHOUT ROWID;
CREATE TABLE mailbox_ids (
  account TEXT NOT NULL,
  id INTEGER NOT NULL,
  uid_validity INTEGER NOT NULL,
  path TEXT NOT NULL,
  PRIMARY KEY (account, id),
  UNIQUE (account, uid_validity, path)
) WITHOUT ROWID;
CREATE TABLE listings (
  account TEXT NOT NULL,
  path TEXT NOT NULL,
  entry BLOB NOT NULL,
  PRIMARY KEY (account, path)
) WITHOUT ROWID;
CREATE TABLE folders (
  fid INTEGER PRIMARY KEY,
  account TEXT NOT NULL,
  path TEXT NOT NULL,
  UNIQUE (account, path)
);
CREATE TABLE folder_status (
  fid INTEGER NOT NULL,
  field TEXT NOT NULL,
  value TEXT NOT NULL,
  PRIMARY KEY (fid, field)
) WITHOUT ROWID;
CREATE TABLE messages (
  fid INTEGER NOT NULL,
  uid INTEGER NOT NULL,
  entry BLOB NOT NULL,
  PRIMARY KEY (fid, uid)
) WITHOUT ROWID;
CREATE TABLE events (
  seq INTEGER PRIMARY KEY AUTOINCREMENT,
  id TEXT NOT NULL UNIQUE,
  account TEXT NOT NULL,
  event TEXT NOT NULL,
  payload TEXT NOT NULL,
  queued_at INTEGER NOT NULL
);
CREATE INDEX events_account ON events(account, seq);
CREATE TABLE event_groups (
  name TEXT PRIMARY KEY,
  last_seq INTEGER NOT NULL
) WITHOUT ROWID;
CREATE TABLE event_pending (
  grp TEXT NOT NULL,
  seq INTEGER NOT NULL,
  consumer TEXT NOT NULL,
  PRIMARY KEY (grp, seq)
) WITHOUT ROWID;
CREATE TABLE dead_events (
  id TEXT PRIMARY KEY,
  account TEXT NOT NULL,
  event TEXT NOT NULL,
  payload TEXT NOT NULL,
  queued_at INTEGER NOT NULL,
  reason TEXT NOT NULL,
  at INTEGER NOT NULL
);
CREATE INDEX dead_events_at ON dead_events(at);
CREATE TABLE outbox (
  queue_id TEXT PRIMARY KEY,
  account TEXT NOT NULL,
  entry BLOB NOT NULL,
  due INTEGER NOT NULL,
  lease_owner TEXT
);
CREATE INDEX outbox_due ON outbox(due);
CREATE TABLE idempotency (
  account TEXT NOT NULL,
  key TEXT NOT NULL,
  value TEXT NOT NULL,
  expires INTEGER NOT NULL,
  PRIMARY KEY (account, key)
) WITHOUT ROWID;
CREATE TABLE templates (
  account TEXT NOT NULL,
  id TEXT NOT NULL,
  meta BLOB NOT NULL,
  content BLOB NOT NULL,
  PRIMARY KEY (account, id)
) WITHOUT ROWID;
CREATE TABLE blocklist (
  list TEXT NOT NULL,
  address TEXT NOT NULL,
  record TEXT NOT NULL,
  PRIMARY KEY (list, address)
) WITHOUT ROWID;
CREATE TABLE gateways (
  id TEXT NOT NULL,
  field TEXT NOT NULL,
  value BLOB NOT NULL,
  PRIMARY KEY (id, field)
) WITHOUT ROWID;
CREATE TABLE gateway_ids (
  id TEXT PRIMARY KEY
) WITHOUT ROWID;
CREATE TABLE apps (
  id TEXT PRIMARY KEY,
  data BLOB NOT NULL,
  meta BLOB,
  pubsub INTEGER NOT NULL DEFAULT 0
) WITHOUT ROWID;
CREATE TABLE app_accounts (
  app TEXT NOT NULL,
  account TEXT NOT NULL,
  user TEXT NOT NULL,
  PRIMARY KEY (app, account)
) WITHOUT ROWID;
CREATE UNIQUE INDEX app_users ON app_accounts(app, user);
CREATE TABLE transient (
  key TEXT PRIMARY KEY,
  value TEXT NOT NULL,
  expires INTEGER NOT NULL
) WITHOUT ROWID;
CREATE TABLE locks (
  name TEXT PRIMARY KEY,
  owner TEXT NOT NULL,
  expires INTEGER NOT NULL
) WITHOUT ROWID;
CREATE TABLE probe (
  key TEXT PRIMARY KEY,
  value TEXT NOT NULL
) WITHOUT ROWID;
";

/// Tables added within version 1: created when missing, so a file written by an earlier build
/// gains them on open and an earlier build reading a newer file simply ignores them.
const ADDITIONS_V1: &str = "
CREATE TABLE IF NOT EXISTS bounces (
  account TEXT NOT NULL,
  message_id TEXT NOT NULL,
  records BLOB NOT NULL,
  PRIMARY KEY (account, message_id)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS webhook_routes (
  id TEXT PRIMARY KEY,
  meta BLOB NOT NULL,
  content BLOB,
  tcount INTEGER
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS token_log (
  seq INTEGER PRIMARY KEY AUTOINCREMENT,
  id TEXT NOT NULL,
  entry BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS token_log_id ON token_log(id, seq);
CREATE TABLE IF NOT EXISTS account_log (
  seq INTEGER PRIMARY KEY AUTOINCREMENT,
  account TEXT NOT NULL,
  entry BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS account_log_account ON account_log(account, seq);
CREATE TABLE IF NOT EXISTS token_log_expiry (
  id TEXT PRIMARY KEY,
  expires INTEGER NOT NULL
) WITHOUT ROWID;
";

/// Creates the tables of a new database, or checks that an existing one is of a known version.
pub(crate) fn prepare(conn: &mut Connection) -> Result<()> {
    let version: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
    match version {
        0 => {
            let tx = conn.transaction()?;
            tx.execute_batch(SCHEMA_V1)?;
            tx.execute_batch(ADDITIONS_V1)?;
            tx.pragma_update(None, "user_version", VERSION)?;
            tx.commit()?;
            Ok(())
        }
        VERSION => {
            conn.execute_batch(ADDITIONS_V1)?;
            Ok(())
        }
        v => Err(StoreError::Data(format!(
            "the database has schema version {v}, newer than this build knows ({VERSION}); use a newer emailengine"
        ))),
    }
}
