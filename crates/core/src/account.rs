//! Email accounts as EmailEngine stores them in `iad:<account>` (spec §5.1, §6.3, §7.2): a hash
//! of plain-string fields and JSON-string fields; IMAP/SMTP passwords and OAuth tokens inside
//! the JSON are `$wd01$`-encrypted when a secret is set. This module validates the API payload,
//! turns it into hash fields and back, and masks secrets for display.

use std::collections::BTreeMap;

use serde_json::{Map, Value};

use crate::connection::ConnectionState;
use crate::secret::FieldCipher;
use crate::settings::MASK;
use crate::units::parse_iso_time;
use crate::validation::FieldError;

/// Fields stored as JSON text; every other field is a plain string.
pub const JSON_FIELDS: &[&str] = &[
    "imap",
    "smtp",
    "oauth2",
    "path",
    "subconnections",
    "webhooksCustomHeaders",
    "lastErrorState",
    "syncError",
    "smtpStatus",
    "imapServerInfo",
    "outlookSubscription",
    "webhookErrorFlag",
    "watchResponse",
];

/// Secret keys inside `imap`, `smtp` and `oauth2` (and their `auth` objects).
const SECRET_KEYS: &[&str] = &["pass", "accessToken", "refreshToken"];

/// Settings of one IMAP or SMTP server, read from the stored JSON.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerSettings {
    pub host: String,
    pub port: u16,
    /// Implicit TLS from the first byte.
    pub secure: bool,
    /// STARTTLS is required even if `secure` is false (`tls.requireTLS` / EmailEngine default
    /// is opportunistic); `Some(false)` disables it (`ignoreTLS`).
    pub starttls: Option<bool>,
    pub user: String,
    pub pass: String,
    /// Accept certificates that do not verify (`tls.rejectUnauthorized: false`).
    pub accept_invalid_certs: bool,
    pub disabled: bool,
    /// Never ENABLE IMAP4rev2, even where the server offers it (`disableIMAP4rev2`).
    pub disable_imap4rev2: bool,
    /// The source address to bind (chosen per connection from `localAddresses`, spec §23).
    pub local_address: Option<std::net::IpAddr>,
    /// Log in with this OAuth2 access token instead of the password (`auth.accessToken`, or
    /// the token of an OAuth2 account).
    pub token: Option<TokenLogin>,
}

/// The SASL mechanisms that carry an OAuth2 access token (spec §15.4).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenMechanism {
    XOAuth2,
    OAuthBearer,
}

/// An OAuth2 access token that replaces the password at login.
#[derive(Clone, PartialEq, Eq)]
pub struct TokenLogin {
    pub access_token: String,
    /// The mechanism the account's app asks for; `None`: OAUTHBEARER where the server offers
    /// it, else XOAUTH2 (IMAP), XOAUTH2 (SMTP).
    pub mechanism: Option<TokenMechanism>,
}

impl std::fmt::Debug for TokenLogin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenLogin")
            .field("access_token", &"<redacted>")
            .field("mechanism", &self.mechanism)
            .finish()
    }
}

impl ServerSettings {
    /// Reads settings from the stored JSON (secrets already decrypted).
    pub fn from_json(v: &Value) -> Option<Self> {
        let host = v.get("host")?.as_str()?.to_string();
        let port = v
            .get("port")?
            .as_u64()
            .filter(|p| (1..=65535).contains(p))? as u16;
        let auth = v.get("auth");
        let text = |o: Option<&Value>, k: &str| {
            o.and_then(|o| o.get(k))
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string()
        };
        let flag = |k: &str| v.get(k).and_then(Value::as_bool);
        let tls = v.get("tls");
        Some(Self {
            host,
            port,
            secure: flag("secure").unwrap_or(false),
            starttls: if flag("ignoreTLS") == Some(true) {
                Some(false)
            } else if flag("requireTLS") == Some(true) {
                Some(true)
            } else {
                None
            },
            user: text(auth, "user"),
            pass: text(auth, "pass"),
            accept_invalid_certs: tls
                .and_then(|t| t.get("rejectUnauthorized"))
                .and_then(Value::as_bool)
                == Some(false),
            disabled: flag("disabled").unwrap_or(false),
            disable_imap4rev2: flag("disableIMAP4rev2").unwrap_or(false),
            local_address: None,
            token: Some(text(auth, "accessToken"))
                .filter(|t| !t.is_empty())
                .map(|access_token| TokenLogin {
                    access_token,
                    mechanism: None,
                }),
        })
    }
}

/// Names of `iad:<account>` fields read one at a time on hot paths (a whole record costs more).
pub mod field {
    pub const NOTIFY_FROM: &str = "notifyFrom";
    pub const WEBHOOKS: &str = "webhooks";
}

/// An account record read from its `iad:<account>` fields: the typed view every crate reads
/// instead of spelling field names. The raw fields are kept, so values this server does not
/// model survive and [`AccountRecord::display`] shows them.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AccountRecord {
    pub account: String,
    pub name: Option<String>,
    pub email: Option<String>,
    /// The stored connection state (`state`).
    pub state: Option<ConnectionState>,
    /// Folders to sync (`path`); empty means all.
    pub path: Vec<String>,
    /// Extra folders watched on their own connections (`subconnections`).
    pub subconnections: Vec<String>,
    /// `notifyFrom` as ms since the epoch.
    pub notify_from: Option<i64>,
    /// `copy`: upload sent mail to the Sent folder (`None`: the default, yes).
    pub copy: Option<bool>,
    /// The account's own webhook URL (`webhooks`).
    pub webhooks: Option<String>,
    /// `lastErrorState`, as stored.
    pub last_error: Option<Value>,
    /// True once the account reached `connected` at least once (`state:count:connected`).
    pub was_connected: bool,
    /// `logs`: keep a protocol log of the account's IMAP connection.
    pub logs: bool,
    fields: BTreeMap<String, String>,
}

impl AccountRecord {
    /// Reads the record from its stored hash fields.
    pub fn from_fields(account: &str, fields: BTreeMap<String, String>) -> Self {
        let text = |k: &str| fields.get(k).filter(|v| *v != "null").cloned();
        let list = |k: &str| -> Vec<String> {
            match fields
                .get(k)
                .and_then(|v| serde_json::from_str::<Value>(v).ok())
            {
                Some(Value::Array(items)) => items
                    .iter()
                    .filter_map(|i| i.as_str().map(str::to_string))
                    .collect(),
                Some(Value::String(s)) if s != "*" => vec![s],
                _ => Vec::new(),
            }
        };
        Self {
            account: text("account").unwrap_or_else(|| account.to_string()),
            name: text("name"),
            email: text("email"),
            state: fields.get("state").map(|s| ConnectionState::parse(s)),
            path: list("path"),
            subconnections: list("subconnections"),
            notify_from: text(field::NOTIFY_FROM).and_then(|v| parse_iso_time(&v)),
            copy: fields.get("copy").and_then(|v| v.parse().ok()),
            webhooks: text(field::WEBHOOKS).filter(|w| !w.is_empty()),
            last_error: fields
                .get("lastErrorState")
                .and_then(|e| serde_json::from_str(e).ok()),
            was_connected: fields.contains_key("state:count:connected"),
            logs: fields.get("logs").is_some_and(|v| v == "true"),
            fields,
        }
    }

    fn connection(&self, key: &str) -> Option<Value> {
        self.fields
            .get(key)
            .and_then(|raw| serde_json::from_str::<Value>(raw).ok())
            .filter(Value::is_object)
    }

    /// IMAP settings with secrets decrypted; `Ok(None)` when the account has none.
    pub fn imap(
        &self,
        cipher: Option<&FieldCipher>,
    ) -> Result<Option<ServerSettings>, crate::Error> {
        self.server("imap", cipher)
    }

    /// SMTP settings with secrets decrypted; `Ok(None)` when the account has none.
    pub fn smtp(
        &self,
        cipher: Option<&FieldCipher>,
    ) -> Result<Option<ServerSettings>, crate::Error> {
        self.server("smtp", cipher)
    }

    fn server(
        &self,
        key: &str,
        cipher: Option<&FieldCipher>,
    ) -> Result<Option<ServerSettings>, crate::Error> {
        let Some(mut v) = self.connection(key) else {
            return Ok(None);
        };
        decrypt_secrets(&mut v, cipher)?;
        Ok(ServerSettings::from_json(&v))
    }

    pub fn has_imap(&self) -> bool {
        self.connection("imap").is_some()
    }

    /// The account's own proxy URL for outgoing connections (`proxy`), when set.
    pub fn proxy(&self) -> Option<&str> {
        self.fields
            .get("proxy")
            .map(|p| p.trim_matches('"'))
            .filter(|p| !p.is_empty())
    }

    /// True when the account can send: an `smtp` block, or OAuth2 (the app names the server).
    pub fn has_smtp(&self) -> bool {
        self.connection("smtp").is_some() || self.oauth2().is_some()
    }

    /// The stored `oauth2` object (tokens still sealed); `None` for password accounts.
    pub fn oauth2(&self) -> Option<Value> {
        self.connection("oauth2")
    }

    /// The OAuth2 app id an OAuth2 account names (`oauth2.provider`).
    pub fn oauth2_app(&self) -> Option<String> {
        self.oauth2()?.get("provider")?.as_str().map(str::to_string)
    }

    /// The account type EmailEngine reports (spec §6.2); an OAuth2 account reads `oauth2`
    /// here, and the API names its provider once it has read the app.
    pub fn kind(&self) -> &'static str {
        if self.oauth2().is_some() {
            "oauth2"
        } else if self.has_imap() {
            "imap"
        } else if self.has_smtp() {
            "sending"
        } else {
            "invalid"
        }
    }

    /// The account as the API shows it, secrets masked.
    pub fn display(&self) -> Map<String, Value> {
        display(&self.fields)
    }
}

/// Applies `f` to every secret string of an `imap`/`smtp`/`oauth2` object.
fn map_secrets(
    v: &mut Value,
    f: &mut dyn FnMut(&str) -> Result<String, crate::Error>,
) -> Result<(), crate::Error> {
    let Value::Object(obj) = v else { return Ok(()) };
    for key in SECRET_KEYS {
        if let Some(Value::String(s)) = obj.get_mut(*key) {
            *s = f(s)?;
        }
    }
    if let Some(Value::Object(auth)) = obj.get_mut("auth") {
        for key in SECRET_KEYS {
            if let Some(Value::String(s)) = auth.get_mut(*key) {
                *s = f(s)?;
            }
        }
    }
    Ok(())
}

/// Encrypts the secrets of a connection object in place (no-op without a cipher).
pub fn encrypt_secrets(v: &mut Value, cipher: Option<&FieldCipher>) {
    if let Some(c) = cipher {
        let _ = map_secrets(v, &mut |s| {
            Ok(if crate::secret::is_encrypted(s) {
                s.to_string()
            } else {
                c.encrypt(s)
            })
        });
    }
}

/// Decrypts the secrets of a connection object in place. Without a cipher, encrypted values
/// cannot be read and are an error.
pub fn decrypt_secrets(v: &mut Value, cipher: Option<&FieldCipher>) -> Result<(), crate::Error> {
    map_secrets(v, &mut |s| match cipher {
        Some(c) => c.decrypt(s),
        None if crate::secret::is_encrypted(s) => Err(crate::Error::Decrypt),
        None => Ok(s.to_string()),
    })
}

/// Rotates the secrets of a connection object (see [`crate::secret::rotate`]).
pub fn rotate_secrets(
    v: &mut Value,
    old: &[FieldCipher],
    new: Option<&FieldCipher>,
) -> Result<(), crate::Error> {
    map_secrets(v, &mut |s| crate::secret::rotate(s, old, new))
}

/// Replaces secrets with `******` for display.
pub fn mask_secrets(v: &mut Value) {
    let _ = map_secrets(v, &mut |_| Ok(MASK.to_string()));
}

/// The first address an account would act as that is not its pinned `expectedEmail`: its
/// `email`, or a login user of its IMAP/SMTP settings that is an address (compared without
/// case). `None` when every identity matches.
pub fn foreign_identity(
    expected: &str,
    email: Option<&str>,
    logins: &[Option<&Value>],
) -> Option<String> {
    let expected = expected.trim().to_lowercase();
    let users = logins.iter().filter_map(|l| {
        l.and_then(|v| v.get("auth"))
            .and_then(|a| a.get("user"))
            .and_then(Value::as_str)
            .filter(|u| u.contains('@'))
    });
    email
        .into_iter()
        .chain(users)
        .find(|id| id.trim().to_lowercase() != expected)
        .map(str::to_string)
}

/// Puts the stored secrets back where an update sent the `******` it was shown, so a client's
/// read-modify-write of an account keeps its passwords. `key` names the object (`imap`, `smtp`)
/// in errors. A mask is refused when nothing is stored at that place or when the object now
/// points at another host: the stored secret must not be sent to a different server.
pub fn restore_masked_secrets(
    key: &str,
    submitted: &mut Value,
    stored: Option<&Value>,
) -> Result<(), FieldError> {
    let host = |v: Option<&Value>| {
        v.and_then(|v| v.get("host"))
            .and_then(Value::as_str)
            .map(str::to_ascii_lowercase)
    };
    let same_host = host(Some(submitted)) == host(stored);
    let Value::Object(obj) = submitted else {
        return Ok(());
    };
    let restore = |place: &mut Map<String, Value>,
                   prefix: String,
                   stored: Option<&Value>|
     -> Result<(), FieldError> {
        for secret in SECRET_KEYS {
            if place.get(*secret).and_then(Value::as_str) != Some(MASK) {
                continue;
            }
            let real = stored
                .and_then(|s| s.get(*secret))
                .filter(|_| same_host)
                .filter(|v| v.is_string())
                .ok_or_else(|| {
                    FieldError::about(
                        &format!("{prefix}.{secret}"),
                        "is masked but does not stand for a stored secret of this server",
                    )
                })?;
            place.insert((*secret).to_string(), real.clone());
        }
        Ok(())
    };
    restore(obj, key.to_string(), stored)?;
    if let Some(Value::Object(auth)) = obj.get_mut("auth") {
        restore(
            auth,
            format!("{key}.auth"),
            stored.and_then(|s| s.get("auth")),
        )?;
    }
    Ok(())
}

/// A submitted webhook/proxy URL with masked credentials: the stored URL when it is an exact
/// echo of the shown one, else an error (the mask would stand for credentials of another target).
pub fn restore_masked_url(
    key: &str,
    submitted: &str,
    stored: Option<&str>,
) -> Result<String, FieldError> {
    if !crate::settings::has_masked_credentials(submitted) {
        return Ok(submitted.to_string());
    }
    match stored {
        Some(real) if crate::settings::mask_url_credentials(real) == submitted => {
            Ok(real.to_string())
        }
        _ => Err(FieldError::about(
            key,
            "masked credentials do not match the stored value; send the full value",
        )),
    }
}

/// The account as the API shows it (`GET /v1/account/{account}`), from its hash fields.
pub fn display(fields: &BTreeMap<String, String>) -> Map<String, Value> {
    let mut out = Map::new();
    for (k, raw) in fields {
        if k.starts_with('_') || k.contains(':') || k == "runIndex" || k == "listRegistry" {
            continue;
        }
        let value = if JSON_FIELDS.contains(&k.as_str()) {
            serde_json::from_str(raw).unwrap_or(Value::Null)
        } else {
            match (k.as_str(), raw.as_str()) {
                ("copy" | "logs", "true") => Value::Bool(true),
                ("copy" | "logs", "false") => Value::Bool(false),
                (_, "null") => Value::Null,
                _ => Value::String(raw.clone()),
            }
        };
        out.insert(k.clone(), value);
    }
    for k in ["imap", "smtp", "oauth2"] {
        if let Some(v) = out.get_mut(k) {
            mask_secrets(v);
        }
    }
    for key in ["webhooks", "proxy"] {
        if let Some(Value::String(url)) = out.get(key) {
            let masked = crate::settings::mask_url_credentials(url);
            out.insert(key.into(), Value::String(masked));
        }
    }
    out
}

/// What `POST /v1/account` and `PUT /v1/account/{account}` accept, validated.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AccountInput {
    /// `None` on create means "generate one".
    pub account: Option<String>,
    /// Hash fields to write, already in stored form (secrets not yet encrypted).
    pub fields: BTreeMap<String, String>,
    /// Connection objects to store as JSON, secrets still in cleartext.
    pub imap: Option<Value>,
    pub smtp: Option<Value>,
    /// The `oauth2` object in stored form (`expires` normalised), tokens still in cleartext.
    pub oauth2: Option<Value>,
}

const ALLOWED: &[&str] = &[
    "account",
    "name",
    "email",
    "imap",
    "smtp",
    "oauth2",
    "path",
    "notifyFrom",
    "syncFrom",
    "copy",
    "logs",
    "webhooks",
    "subconnections",
    "proxy",
    "smtpEhloName",
    "imapIndexer",
    "locale",
    "tz",
    "expectedEmail",
];

/// Validates an account payload. `create` requires `name` and a connection; on update every
/// field is optional and `account` is not accepted.
pub fn parse_input(
    body: &Map<String, Value>,
    create: bool,
) -> Result<AccountInput, Vec<FieldError>> {
    let mut errors = Vec::new();
    let mut input = AccountInput::default();
    for key in body.keys() {
        if !ALLOWED.contains(&key.as_str()) || (!create && key == "account") {
            errors.push(FieldError::about(key, "is not allowed"));
        }
    }
    let string = |key: &str, max: usize, errors: &mut Vec<FieldError>| -> Option<String> {
        match body.get(key) {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) if s.chars().count() > max => {
                errors.push(FieldError::about(
                    key,
                    &format!("length must be less than or equal to {max} characters long"),
                ));
                None
            }
            Some(Value::String(s)) => Some(s.clone()),
            Some(_) => {
                errors.push(FieldError::about(key, "must be a string"));
                None
            }
        }
    };
    if create {
        input.account = string("account", 256, &mut errors).filter(|a| !a.is_empty());
        if let Some(a) = &input.account
            && a.contains(|c: char| c.is_control())
        {
            errors.push(FieldError::about(
                "account",
                "must not contain control characters",
            ));
        }
    }
    for key in ["name", "smtpEhloName", "locale", "tz", "proxy"] {
        if let Some(v) = string(key, 256, &mut errors) {
            input.fields.insert(key.into(), v);
        }
    }
    if create && !input.fields.contains_key("name") && !errors.iter().any(|e| e.key == "name") {
        errors.push(FieldError::about("name", "is required"));
    }
    if let Some(email) = string("email", 256, &mut errors) {
        if email.contains('@') && !email.contains(char::is_whitespace) {
            input.fields.insert("email".into(), email);
        } else {
            errors.push(FieldError::about("email", "must be a valid email"));
        }
    }
    if let Some(expected) = string("expectedEmail", 256, &mut errors) {
        if expected.contains('@') && !expected.contains(char::is_whitespace) {
            if create && !input.fields.contains_key("email") && !body.contains_key("email") {
                input.fields.insert("email".into(), expected.clone());
            }
            input.fields.insert("expectedEmail".into(), expected);
        } else {
            errors.push(FieldError::about("expectedEmail", "must be a valid email"));
        }
    }
    if let Some(w) = string("webhooks", 2048, &mut errors) {
        if w.is_empty() || crate::settings::is_http_url(&w) {
            input.fields.insert("webhooks".into(), w);
        } else {
            errors.push(FieldError::about(
                "webhooks",
                "must be a valid uri with a scheme matching the http|https pattern",
            ));
        }
    }
    if let Some(ix) = string("imapIndexer", 16, &mut errors) {
        if ix == "full" || ix == "fast" {
            input.fields.insert("imapIndexer".into(), ix);
        } else {
            errors.push(FieldError::about(
                "imapIndexer",
                "must be one of [full, fast]",
            ));
        }
    }
    for key in ["notifyFrom", "syncFrom"] {
        match body.get(key) {
            None => {}
            Some(Value::Null) => {
                input.fields.insert(key.into(), "null".into());
            }
            Some(Value::String(s)) => match parse_iso_time(s).and_then(crate::units::iso_time) {
                Some(t) => {
                    input.fields.insert(key.into(), t);
                }
                None => errors.push(FieldError::about(key, "must be in ISO 8601 date format")),
            },
            Some(_) => errors.push(FieldError::about(key, "must be in ISO 8601 date format")),
        }
    }
    for key in ["copy", "logs"] {
        match body.get(key) {
            None | Some(Value::Null) => {}
            Some(Value::Bool(b)) => {
                input.fields.insert(key.into(), b.to_string());
            }
            Some(_) => errors.push(FieldError::about(key, "must be a boolean")),
        }
    }
    for key in ["path", "subconnections"] {
        match body.get(key) {
            None => {}
            Some(Value::Null) => {
                input.fields.insert(key.into(), "null".into());
            }
            Some(Value::String(s)) if key == "path" => {
                input
                    .fields
                    .insert(key.into(), Value::from(s.as_str()).to_string());
            }
            Some(Value::Array(items)) if items.iter().all(Value::is_string) => {
                input
                    .fields
                    .insert(key.into(), Value::Array(items.clone()).to_string());
            }
            Some(_) => errors.push(FieldError::about(key, "must be an array of strings")),
        }
    }
    input.imap = connection(body, "imap", &mut errors);
    input.smtp = connection(body, "smtp", &mut errors);
    input.oauth2 = oauth2(body, &mut errors);
    if create
        && input.imap.is_none()
        && input.smtp.is_none()
        && input.oauth2.is_none()
        && !errors
            .iter()
            .any(|e| e.key == "imap" || e.key == "smtp" || e.key.starts_with("oauth2"))
    {
        errors.push(FieldError::new("imap", "\"imap\" or \"smtp\" is required"));
    }
    if errors.is_empty() {
        Ok(input)
    } else {
        Err(errors)
    }
}

/// The `oauth2` object of an account payload (spec §15.1): the app id in `provider`, the
/// mailbox in `auth.user`, tokens and their expiry. Interactive authorization (`authorize`)
/// goes through the hosted form instead.
fn oauth2(body: &Map<String, Value>, errors: &mut Vec<FieldError>) -> Option<Value> {
    let value = body.get("oauth2")?;
    if value.is_null() || value == &Value::Bool(false) {
        return None;
    }
    let Value::Object(obj) = value else {
        errors.push(FieldError::about("oauth2", "must be of type object"));
        return None;
    };
    let before = errors.len();
    let mut out = Map::new();
    const KEYS: &[&str] = &[
        "provider",
        "auth",
        "accessToken",
        "refreshToken",
        "expires",
        "useAuthServer",
        "authority",
    ];
    let foreign: Vec<String> = obj
        .keys()
        .filter(|k| !KEYS.contains(&k.as_str()))
        .cloned()
        .collect();
    match bounded_text(obj, "oauth2.", "provider", 256, errors) {
        Some(p) => {
            out.insert("provider".into(), Value::String(p));
        }
        None if !obj.contains_key("provider") => {
            errors.push(FieldError::about("oauth2.provider", "is required"))
        }
        None => {}
    }
    match obj.get("auth") {
        Some(Value::Object(auth)) => {
            let mut stored = Map::new();
            for key in ["user", "delegatedUser", "delegatedAccount"] {
                if let Some(v) = bounded_text(auth, "oauth2.auth.", key, 256, errors) {
                    stored.insert(key.into(), Value::String(v));
                }
            }
            if !stored.contains_key("user") && !auth.contains_key("user") {
                errors.push(FieldError::about("oauth2.auth.user", "is required"));
            }
            if stored.contains_key("delegatedAccount") && !stored.contains_key("delegatedUser") {
                errors.push(FieldError::about(
                    "oauth2.auth.delegatedAccount",
                    "is not allowed without delegatedUser",
                ));
            }
            for key in auth.keys() {
                if !["user", "delegatedUser", "delegatedAccount"].contains(&key.as_str()) {
                    errors.push(FieldError::about(
                        &format!("oauth2.auth.{key}"),
                        "is not allowed",
                    ));
                }
            }
            out.insert("auth".into(), Value::Object(stored));
        }
        None => errors.push(FieldError::about("oauth2.auth", "is required")),
        Some(_) => errors.push(FieldError::about("oauth2.auth", "must be of type object")),
    }
    for key in ["accessToken", "refreshToken"] {
        if let Some(v) = bounded_text(obj, "oauth2.", key, 16384, errors) {
            out.insert(key.into(), Value::String(v));
        }
    }
    match obj.get("expires") {
        None | Some(Value::Null) => {}
        Some(Value::String(s)) => match parse_iso_time(s).and_then(crate::units::iso_time) {
            Some(t) => {
                out.insert("expires".into(), Value::String(t));
            }
            None => errors.push(FieldError::about(
                "oauth2.expires",
                "must be in ISO 8601 date format",
            )),
        },
        Some(_) => errors.push(FieldError::about(
            "oauth2.expires",
            "must be in ISO 8601 date format",
        )),
    }
    match obj.get("useAuthServer") {
        None | Some(Value::Null) => {}
        Some(Value::Bool(b)) => {
            out.insert("useAuthServer".into(), Value::Bool(*b));
        }
        Some(_) => errors.push(FieldError::about(
            "oauth2.useAuthServer",
            "must be a boolean",
        )),
    }
    for key in foreign {
        errors.push(FieldError::about(
            &format!("oauth2.{key}"),
            "is not allowed",
        ));
    }
    (errors.len() == before).then_some(Value::Object(out))
}

/// A string field of a nested object, at most `max` characters; wrong values are reported
/// under `<path><key>`.
fn bounded_text(
    o: &Map<String, Value>,
    path: &str,
    key: &str,
    max: usize,
    errors: &mut Vec<FieldError>,
) -> Option<String> {
    match o.get(key) {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) if s.chars().count() > max => {
            errors.push(FieldError::about(
                &format!("{path}{key}"),
                &format!("length must be less than or equal to {max} characters long"),
            ));
            None
        }
        Some(Value::String(s)) => Some(s.clone()),
        Some(_) => {
            errors.push(FieldError::about(
                &format!("{path}{key}"),
                "must be a string",
            ));
            None
        }
    }
}

fn connection(body: &Map<String, Value>, key: &str, errors: &mut Vec<FieldError>) -> Option<Value> {
    let value = body.get(key)?;
    if value.is_null() || value == &Value::Bool(false) {
        return None;
    }
    let Value::Object(obj) = value else {
        errors.push(FieldError::about(key, "must be of type object"));
        return None;
    };
    match obj.get("host") {
        Some(Value::String(h)) if !h.is_empty() && !h.contains(char::is_whitespace) => {}
        None => errors.push(FieldError::about(&format!("{key}.host"), "is required")),
        _ => errors.push(FieldError::about(
            &format!("{key}.host"),
            "must be a valid hostname",
        )),
    }
    match obj.get("port") {
        Some(p) if p.as_u64().is_some_and(|p| (1..=65535).contains(&p)) => {}
        None => errors.push(FieldError::about(&format!("{key}.port"), "is required")),
        _ => errors.push(FieldError::about(
            &format!("{key}.port"),
            "must be a valid port",
        )),
    }
    for flag in ["secure", "disabled", "ignoreTLS", "requireTLS"] {
        if obj.get(flag).is_some_and(|v| !v.is_boolean()) {
            errors.push(FieldError::about(
                &format!("{key}.{flag}"),
                "must be a boolean",
            ));
        }
    }
    if let Some(auth) = obj.get("auth") {
        let Value::Object(a) = auth else {
            errors.push(FieldError::about(
                &format!("{key}.auth"),
                "must be of type object",
            ));
            return Some(value.clone());
        };
        for f in ["user", "pass", "accessToken"] {
            if a.get(f).is_some_and(|v| !v.is_string()) {
                errors.push(FieldError::about(
                    &format!("{key}.auth.{f}"),
                    "must be a string",
                ));
            }
        }
    }
    if let Some(tls) = obj.get("tls")
        && !tls.is_object()
    {
        errors.push(FieldError::about(
            &format!("{key}.tls"),
            "must be of type object",
        ));
    }
    Some(value.clone())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn obj(v: Value) -> Map<String, Value> {
        v.as_object().cloned().unwrap()
    }

    #[test]
    fn pinned_identity() {
        let imap = json!({"host": "h", "auth": {"user": "Ann@Example.com", "pass": "x"}});
        let other = json!({"host": "h", "auth": {"user": "bob@example.com"}});
        let plain = json!({"host": "h", "auth": {"user": "ann"}});
        assert_eq!(
            foreign_identity(
                "ann@example.com",
                Some("ann@example.com"),
                &[Some(&imap), Some(&plain)]
            ),
            None
        );
        assert_eq!(
            foreign_identity("ann@example.com", None, &[Some(&imap), Some(&other)]),
            Some("bob@example.com".to_string())
        );
        assert_eq!(
            foreign_identity("ann@example.com", Some("eve@example.com"), &[None]),
            Some("eve@example.com".to_string())
        );
        let input = parse_input(
            &obj(json!({"name": "A", "expectedEmail": "ann@example.com",
            "imap": {"host": "h", "port": 143}})),
            true,
        )
        .unwrap();
        assert_eq!(input.fields["email"], "ann@example.com");
        assert_eq!(input.fields["expectedEmail"], "ann@example.com");
    }

    #[test]
    fn masked_secrets_are_restored_only_for_the_same_server() {
        let stored =
            json!({"host": "mail.example", "port": 993, "auth": {"user": "u", "pass": "$wd01$x"}});
        let mut echo =
            json!({"host": "MAIL.example", "port": 143, "auth": {"user": "u", "pass": "******"}});
        restore_masked_secrets("imap", &mut echo, Some(&stored)).unwrap();
        assert_eq!(echo["auth"]["pass"], "$wd01$x");
        let mut elsewhere =
            json!({"host": "evil.example", "port": 993, "auth": {"user": "u", "pass": "******"}});
        let err = restore_masked_secrets("imap", &mut elsewhere, Some(&stored)).unwrap_err();
        assert_eq!(err.key, "imap.auth.pass");
        let mut nothing = json!({"host": "mail.example", "auth": {"pass": "******"}});
        assert!(restore_masked_secrets("smtp", &mut nothing, None).is_err());
        let mut fresh = json!({"host": "evil.example", "auth": {"pass": "new"}});
        restore_masked_secrets("imap", &mut fresh, Some(&stored)).unwrap();
        assert_eq!(fresh["auth"]["pass"], "new");

        let real = "https://u:p@hook.example/in";
        assert_eq!(
            restore_masked_url(
                "webhooks",
                "https://******:******@hook.example/in",
                Some(real)
            ),
            Ok(real.to_string())
        );
        assert!(
            restore_masked_url(
                "webhooks",
                "https://******:******@other.example/in",
                Some(real)
            )
            .is_err()
        );
        assert_eq!(
            restore_masked_url("webhooks", "https://a:b@other.example/", Some(real)),
            Ok("https://a:b@other.example/".to_string())
        );
    }

    #[test]
    fn payload_is_validated_and_converted() {
        let input = parse_input(&obj(json!({
            "account": "a1", "name": "Ann", "email": "ann@example.com",
            "notifyFrom": "2024-01-01T00:00:00Z", "copy": false, "path": ["INBOX"],
            "imap": {"host": "127.0.0.1", "port": 143, "secure": false, "auth": {"user": "ann", "pass": "pw"}}
        })), true).unwrap();
        assert_eq!(input.account.as_deref(), Some("a1"));
        assert_eq!(input.fields["notifyFrom"], "2024-01-01T00:00:00.000Z");
        assert_eq!(input.fields["copy"], "false");
        assert_eq!(input.fields["path"], "[\"INBOX\"]");
        let imap = ServerSettings::from_json(input.imap.as_ref().unwrap()).unwrap();
        assert_eq!(
            (imap.host.as_str(), imap.port, imap.pass.as_str()),
            ("127.0.0.1", 143, "pw")
        );
    }

    #[test]
    fn oauth2_payload_is_validated_and_normalised() {
        let input = parse_input(
            &obj(json!({
                "name": "Ann",
                "oauth2": {"provider": "AAABhaBPHscAAAAH", "auth": {"user": "ann@example.com"},
                    "accessToken": "at", "refreshToken": "rt", "expires": "2024-01-01T00:00:00Z",
                    "useAuthServer": false}
            })),
            true,
        )
        .unwrap();
        assert_eq!(
            input.oauth2,
            Some(
                json!({"provider": "AAABhaBPHscAAAAH", "auth": {"user": "ann@example.com"},
                "accessToken": "at", "refreshToken": "rt", "expires": "2024-01-01T00:00:00.000Z",
                "useAuthServer": false})
            )
        );
        let errors = parse_input(
            &obj(json!({"name": "Ann", "oauth2": {"auth": {"pass": "x"}, "expires": "soon", "scope": 1}})),
            true,
        )
        .unwrap_err();
        let messages: Vec<_> = errors.iter().map(|e| e.message.as_str()).collect();
        assert_eq!(
            messages,
            [
                "\"oauth2.provider\" is required",
                "\"oauth2.auth.user\" is required",
                "\"oauth2.auth.pass\" is not allowed",
                "\"oauth2.expires\" must be in ISO 8601 date format",
                "\"oauth2.scope\" is not allowed",
            ]
        );
        let mut fields = BTreeMap::new();
        fields.insert(
            "oauth2".to_string(),
            json!({"provider": "app1", "auth": {"user": "u"}}).to_string(),
        );
        let record = AccountRecord::from_fields("a", fields);
        assert_eq!(record.kind(), "oauth2");
        assert_eq!(record.oauth2_app().as_deref(), Some("app1"));
    }

    #[test]
    fn access_token_in_auth_is_a_token_login() {
        let s = ServerSettings::from_json(
            &json!({"host": "h", "port": 1, "auth": {"user": "u", "accessToken": "ya29.secret"}}),
        )
        .unwrap();
        let token = s.token.unwrap();
        assert_eq!(token.access_token, "ya29.secret");
        assert!(!format!("{token:?}").contains("ya29"));
    }

    #[test]
    fn errors_are_joi_style() {
        let errors = parse_input(&obj(json!({"imap": {"port": 0}, "bogus": 1})), true).unwrap_err();
        let messages: Vec<_> = errors.iter().map(|e| e.message.as_str()).collect();
        assert!(messages.contains(&"\"bogus\" is not allowed"));
        assert!(messages.contains(&"\"name\" is required"));
        assert!(messages.contains(&"\"imap.host\" is required"));
        assert!(messages.contains(&"\"imap.port\" must be a valid port"));
    }

    #[test]
    fn secrets_encrypt_decrypt_and_mask() {
        let cipher = FieldCipher::new("k");
        let mut v = json!({"host": "h", "port": 1, "auth": {"user": "u", "pass": "secret"}});
        encrypt_secrets(&mut v, Some(&cipher));
        assert!(v["auth"]["pass"].as_str().unwrap().starts_with("$wd01$"));
        let mut plain = v.clone();
        decrypt_secrets(&mut plain, Some(&cipher)).unwrap();
        assert_eq!(plain["auth"]["pass"], "secret");
        assert!(decrypt_secrets(&mut v.clone(), None).is_err());
        mask_secrets(&mut v);
        assert_eq!(v["auth"]["pass"], "******");
    }

    #[test]
    fn display_converts_fields() {
        let mut f = BTreeMap::new();
        f.insert("account".to_string(), "a".to_string());
        f.insert("copy".to_string(), "true".to_string());
        f.insert("notifyFrom".to_string(), "null".to_string());
        f.insert(
            "imap".to_string(),
            r#"{"host":"h","port":1,"auth":{"user":"u","pass":"p"}}"#.to_string(),
        );
        f.insert("state:count:connected".to_string(), "3".to_string());
        let d = display(&f);
        assert_eq!(d["copy"], json!(true));
        assert_eq!(d["notifyFrom"], Value::Null);
        assert_eq!(d["imap"]["auth"]["pass"], "******");
        assert!(!d.contains_key("state:count:connected"));
    }
}

#[cfg(test)]
mod record_tests {
    use super::*;

    #[test]
    fn record_reads_emailengine_fields() {
        let mut f = BTreeMap::new();
        for (k, v) in [
            ("account", "ann"),
            ("name", "Ann"),
            ("email", "ann@example.com"),
            ("state", "connected"),
            ("path", "[\"INBOX\",\"Work\"]"),
            ("subconnections", "null"),
            ("notifyFrom", "2024-01-01T00:00:00.000Z"),
            ("copy", "false"),
            ("webhooks", ""),
            ("state:count:connected", "2"),
            (
                "imap",
                r#"{"host":"h","port":143,"auth":{"user":"u","pass":"p"}}"#,
            ),
        ] {
            f.insert(k.to_string(), v.to_string());
        }
        let r = AccountRecord::from_fields("ann", f);
        assert_eq!(r.state, Some(ConnectionState::Connected));
        assert_eq!(r.path, ["INBOX", "Work"]);
        assert!(r.subconnections.is_empty());
        assert_eq!(r.notify_from, Some(1_704_067_200_000));
        assert_eq!(r.copy, Some(false));
        assert_eq!(r.webhooks, None);
        assert!(r.was_connected);
        assert_eq!(r.kind(), "imap");
        let imap = r.imap(None).unwrap().unwrap();
        assert_eq!((imap.host.as_str(), imap.port), ("h", 143));
        assert_eq!(r.smtp(None).unwrap(), None);
        assert_eq!(r.display()["imap"]["auth"]["pass"], "******");
    }
}
