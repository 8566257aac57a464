//! The runtime settings EmailEngine keeps in its `settings` hash (JSON values): which keys exist,
//! what each accepts, which are stored encrypted, and how they are shown back (credentials in
//! URLs and custom header values masked, and masked echoes resolved). Validation mirrors Joi with `convert: true`.

use serde_json::{Map, Value};

use crate::validation::FieldError;

/// What a setting accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Bool,
    /// An integer within bounds.
    Int {
        min: i64,
        max: i64,
    },
    /// An http(s) URL; the empty string clears it.
    HttpUrl,
    Text {
        max: usize,
    },
    TextList {
        max: usize,
    },
    /// `[{key, value}]` header pairs.
    Headers,
    /// `{all: bool, maxLogLines: int}`.
    Logs,
    /// One of fixed words.
    OneOf(&'static [&'static str]),
    /// IP addresses without a prefix length.
    IpList,
}

pub struct SettingDef {
    pub key: &'static str,
    pub kind: Kind,
}

const fn def(key: &'static str, kind: Kind) -> SettingDef {
    SettingDef { key, kind }
}

/// Every setting this server accepts over `POST /v1/settings` and `EENGINE_SETTINGS`.
pub const SETTINGS: &[SettingDef] = &[
    def("webhooksEnabled", Kind::Bool),
    def("webhooks", Kind::HttpUrl),
    def("webhookEvents", Kind::TextList { max: 256 }),
    def("webhooksCustomHeaders", Kind::Headers),
    def("notifyText", Kind::Bool),
    def(
        "notifyTextSize",
        Kind::Int {
            min: 0,
            max: 1 << 40,
        },
    ),
    def("notifyHeaders", Kind::TextList { max: 256 }),
    def("notifyWebSafeHtml", Kind::Bool),
    def("notifyCalendarEvents", Kind::Bool),
    def("notifyAttachments", Kind::Bool),
    def(
        "notifyAttachmentSize",
        Kind::Int {
            min: 0,
            max: 1 << 40,
        },
    ),
    def("inboxNewOnly", Kind::Bool),
    def("serviceUrl", Kind::HttpUrl),
    def("serviceSecret", Kind::Text { max: 1024 }),
    def("deliveryAttempts", Kind::Int { min: 0, max: 1000 }),
    def("imapIndexer", Kind::Text { max: 16 }),
    def("ignoreMailCertErrors", Kind::Bool),
    def("enableApiProxy", Kind::Bool),
    def("tokenAuditLog", Kind::Bool),
    def("logs", Kind::Logs),
    def("locale", Kind::Text { max: 32 }),
    def("timezone", Kind::Text { max: 64 }),
    def("trackClicks", Kind::Bool),
    def("trackOpens", Kind::Bool),
    def("trackSentMessages", Kind::Bool),
    def("localAddresses", Kind::IpList),
    def("proxyEnabled", Kind::Bool),
    def("proxyUrl", Kind::Text { max: 1024 }),
    def("smtpStrategy", Kind::OneOf(ADDRESS_STRATEGIES)),
    def("imapStrategy", Kind::OneOf(ADDRESS_STRATEGIES)),
    def("enableOAuthTokensApi", Kind::Bool),
    def("authServer", Kind::HttpUrl),
];

/// How a connection picks its source address among `localAddresses` (spec §23).
pub const ADDRESS_STRATEGIES: &[&str] = &["default", "dedicated", "random"];

/// Settings whose whole JSON value is stored in `$wd01$` form when a service secret is set.
pub const ENCRYPTED_KEYS: &[&str] = &[
    "gmailClientSecret",
    "outlookClientSecret",
    "mailRuClientSecret",
    "cookiePassword",
    "smtpServerPassword",
    "imapProxyServerPassword",
    "serviceSecret",
    "gmailServiceKey",
    "gmailServiceExternalAccount",
    "documentStorePassword",
    "openAiAPIKey",
    "totpSeed",
];

/// Webhook event names (spec §9.1), as `GET /v1/settings?eventTypes=true` lists them.
pub const EVENT_TYPES: &[&str] = &[
    "messageNew",
    "messageDeleted",
    "messageUpdated",
    "messageMissing",
    "messageSent",
    "messageDeliveryError",
    "messageFailed",
    "messageBounce",
    "messageComplaint",
    "mailboxReset",
    "mailboxDeleted",
    "mailboxNew",
    "authenticationError",
    "authenticationSuccess",
    "connectError",
    "accountAdded",
    "accountInitialized",
    "accountDeleted",
    "trackOpen",
    "trackClick",
    "listUnsubscribe",
    "listSubscribe",
    "exportCompleted",
    "exportFailed",
];

/// The queues `GET|PUT /v1/settings/queue/{queue}` know (spec §25.2).
pub const QUEUES: &[&str] = &["notify", "submit", "documents"];

/// The raw `settings` field that holds whether a queue is paused (`"true"` when it is). It is
/// in the shared store, so a pause holds for every instance.
pub fn queue_paused_key(queue: &str) -> String {
    format!("queuePaused:{queue}")
}

pub fn is_encrypted_key(key: &str) -> bool {
    ENCRYPTED_KEYS.contains(&key)
}

pub fn definition(key: &str) -> Option<&'static SettingDef> {
    SETTINGS.iter().find(|d| d.key == key)
}

/// Validates a settings object. Returns the converted values in input order, or every field
/// error found. Unknown keys are errors here; callers that must drop them (prepared settings)
/// use [`split_unknown`] first.
pub fn validate(input: &Map<String, Value>) -> Result<Vec<(String, Value)>, Vec<FieldError>> {
    let mut ok = Vec::new();
    let mut errors = Vec::new();
    for (key, value) in input {
        match definition(key) {
            None => errors.push(FieldError::about(key, "is not allowed")),
            Some(def) => match convert(key, def.kind, value) {
                Ok(v) => ok.push((key.clone(), v)),
                Err(e) => errors.push(e),
            },
        }
    }
    if errors.is_empty() {
        Ok(ok)
    } else {
        Err(errors)
    }
}

/// Separates keys this server does not know from the ones it does.
pub fn split_unknown(input: Map<String, Value>) -> (Map<String, Value>, Vec<String>) {
    let mut known = Map::new();
    let mut unknown = Vec::new();
    for (k, v) in input {
        if definition(&k).is_some() {
            known.insert(k, v);
        } else {
            unknown.push(k);
        }
    }
    (known, unknown)
}

fn convert(key: &str, kind: Kind, value: &Value) -> Result<Value, FieldError> {
    match kind {
        Kind::Bool => match value {
            Value::Bool(_) => Ok(value.clone()),
            Value::String(s) if s == "true" => Ok(Value::Bool(true)),
            Value::String(s) if s == "false" => Ok(Value::Bool(false)),
            _ => Err(FieldError::about(key, "must be a boolean")),
        },
        Kind::Int { min, max } => {
            let n = match value {
                Value::Number(n) => n.as_i64().or_else(|| {
                    n.as_f64()
                        .filter(|f| f.fract() == 0.0 && f.abs() < 9e15)
                        .map(|f| f as i64)
                }),
                Value::String(s) => s.trim().parse::<i64>().ok(),
                _ => None,
            }
            .ok_or_else(|| FieldError::about(key, "must be a number"))?;
            if n < min {
                return Err(FieldError::about(
                    key,
                    &format!("must be greater than or equal to {min}"),
                ));
            }
            if n > max {
                return Err(FieldError::about(
                    key,
                    &format!("must be less than or equal to {max}"),
                ));
            }
            Ok(Value::from(n))
        }
        Kind::HttpUrl => match value {
            Value::Null => Ok(Value::Null),
            Value::String(s) if s.is_empty() => Ok(Value::String(String::new())),
            Value::String(s) if is_http_url(s) => Ok(Value::String(s.clone())),
            Value::String(_) => Err(FieldError::about(
                key,
                "must be a valid uri with a scheme matching the http|https pattern",
            )),
            _ => Err(FieldError::about(key, "must be a string")),
        },
        Kind::Text { max } => text(key, value, max).map(Value::String),
        Kind::TextList { max } => {
            let Value::Array(items) = value else {
                return Err(FieldError::about(key, "must be an array"));
            };
            items
                .iter()
                .enumerate()
                .map(|(i, v)| text(&format!("{key}[{i}]"), v, max).map(Value::String))
                .collect::<Result<Vec<_>, _>>()
                .map(Value::Array)
        }
        Kind::Headers => {
            let Value::Array(items) = value else {
                return Err(FieldError::about(key, "must be an array"));
            };
            let mut out = Vec::with_capacity(items.len());
            for (i, item) in items.iter().enumerate() {
                let at = format!("{key}[{i}]");
                let Value::Object(h) = item else {
                    return Err(FieldError::about(&at, "must be of type object"));
                };
                if let Some(extra) = h.keys().find(|k| *k != "key" && *k != "value") {
                    return Err(FieldError::about(
                        &format!("{at}.{extra}"),
                        "is not allowed",
                    ));
                }
                let name = text(
                    &format!("{at}.key"),
                    h.get("key").unwrap_or(&Value::Null),
                    1024,
                )?;
                if name.is_empty() || !name.bytes().all(|b| b.is_ascii_graphic() && b != b':') {
                    return Err(FieldError::about(
                        &format!("{at}.key"),
                        "must be a valid header name",
                    ));
                }
                let v = text(
                    &format!("{at}.value"),
                    h.get("value").unwrap_or(&Value::String(String::new())),
                    10240,
                )?;
                if v.bytes().any(|b| b == b'\r' || b == b'\n') {
                    return Err(FieldError::about(
                        &format!("{at}.value"),
                        "must not contain line breaks",
                    ));
                }
                out.push(serde_json::json!({"key": name, "value": v}));
            }
            Ok(Value::Array(out))
        }
        Kind::OneOf(words) => match value {
            Value::String(w) if words.contains(&w.as_str()) => Ok(Value::String(w.clone())),
            _ => Err(FieldError::about(
                key,
                &format!("must be one of [{}]", words.join(", ")),
            )),
        },
        Kind::IpList => {
            let Value::Array(items) = value else {
                return Err(FieldError::about(key, "must be an array"));
            };
            items
                .iter()
                .enumerate()
                .map(
                    |(i, v)| match v.as_str().map(|s| s.parse::<std::net::IpAddr>()) {
                        Some(Ok(ip)) => Ok(Value::String(ip.to_string())),
                        _ => Err(FieldError::about(
                            &format!("{key}[{i}]"),
                            "must be a valid ip address without a CIDR",
                        )),
                    },
                )
                .collect::<Result<Vec<_>, _>>()
                .map(Value::Array)
        }
        Kind::Logs => {
            let Value::Object(map) = value else {
                return Err(FieldError::about(key, "must be of type object"));
            };
            let mut out = Map::new();
            for (k, v) in map {
                let at = format!("{key}.{k}");
                let converted = match k.as_str() {
                    "all" => convert(&at, Kind::Bool, v)?,
                    "maxLogLines" => convert(
                        &at,
                        Kind::Int {
                            min: 0,
                            max: 1_000_000,
                        },
                        v,
                    )?,
                    _ => return Err(FieldError::about(&at, "is not allowed")),
                };
                out.insert(k.clone(), converted);
            }
            Ok(Value::Object(out))
        }
    }
}

fn text(key: &str, value: &Value, max: usize) -> Result<String, FieldError> {
    let Value::String(s) = value else {
        return Err(FieldError::about(key, "must be a string"));
    };
    if s.chars().count() > max {
        return Err(FieldError::about(
            key,
            &format!("length must be less than or equal to {max} characters long"),
        ));
    }
    Ok(s.clone())
}

/// An absolute http(s) URL with a host and no whitespace.
pub fn is_http_url(s: &str) -> bool {
    let rest = s
        .strip_prefix("https://")
        .or_else(|| s.strip_prefix("http://"));
    let Some(rest) = rest else { return false };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    let host = authority.rsplit('@').next().unwrap_or("");
    !host.is_empty()
        && !host.starts_with(':')
        && !s.chars().any(|c| c.is_whitespace() || c.is_control())
}

/// What a masked secret looks like in every answer.
pub const MASK: &str = "******";

/// The userinfo of a URL (`user:pass` of `scheme://user:pass@host/...`), with its byte range.
fn userinfo(url: &str) -> Option<(usize, usize)> {
    let after = url.find("://")? + 3;
    let authority_end = url[after..]
        .find(['/', '?', '#'])
        .map_or(url.len(), |i| after + i);
    let at = url[after..authority_end].rfind('@')?;
    Some((after, after + at))
}

/// A URL with both parts of its userinfo replaced by `******` (`******:******@host`), as
/// EmailEngine shows webhook and proxy URLs.
pub fn mask_url_credentials(url: &str) -> String {
    let Some((start, end)) = userinfo(url) else {
        return url.to_string();
    };
    let masked = if url[start..end].contains(':') {
        format!("{MASK}:{MASK}")
    } else {
        MASK.to_string()
    };
    format!("{}{}{}", &url[..start], masked, &url[end..])
}

/// Whether the userinfo of a URL carries the mask, i.e. the client sent back a shown value.
pub fn has_masked_credentials(url: &str) -> bool {
    userinfo(url).is_some_and(|(start, end)| url[start..end].contains(MASK))
}

/// How a stored setting is shown by `GET /v1/settings`: secret settings as set-or-not, URL
/// credentials and every custom header value masked.
pub fn display_value(key: &str, value: Value) -> Value {
    if is_encrypted_key(key) {
        return Value::Bool(!value.is_null());
    }
    match (key, value) {
        ("webhooks" | "serviceUrl", Value::String(s)) => Value::String(mask_url_credentials(&s)),
        ("webhooksCustomHeaders", Value::Array(items)) => Value::Array(
            items
                .into_iter()
                .map(|mut h| {
                    if let Some(v) = h.get_mut("value") {
                        *v = Value::String(MASK.into());
                    }
                    h
                })
                .collect(),
        ),
        (_, v) => v,
    }
}

/// Settings whose shown form hides part of the stored value, so a client's read-modify-write
/// sends masks back.
pub fn is_masked_key(key: &str) -> bool {
    is_encrypted_key(key) || matches!(key, "webhooks" | "serviceUrl" | "webhooksCustomHeaders")
}

/// What a submitted value of a masked setting means against the stored one.
#[derive(Debug, Clone, PartialEq)]
pub enum Submitted {
    /// The shown form came back unchanged: nothing to write.
    Echo,
    /// A value to validate and write, with any masked parts filled in from the stored value.
    Write(Value),
}

/// Resolves the masks in a submitted setting. An exact echo of the shown value is [`Submitted::Echo`];
/// masked header values are filled in from the stored header of the same name; a mask that
/// does not stand for the stored credentials (other host or path, unknown header, nothing
/// stored) is an error, so a literal `******` is never stored in place of a secret.
pub fn resolve_masked(
    key: &str,
    submitted: &Value,
    stored: Option<&Value>,
) -> Result<Submitted, FieldError> {
    let shown = stored.map(|v| display_value(key, v.clone()));
    if stored.is_some() && shown.as_ref() == Some(submitted) {
        return Ok(Submitted::Echo);
    }
    let mismatch = || {
        FieldError::about(
            key,
            "masked credentials do not match the stored value; send the full value",
        )
    };
    match (key, submitted) {
        (_, Value::String(s)) if is_encrypted_key(key) && s == MASK => match stored {
            Some(_) => Ok(Submitted::Echo),
            None => Err(mismatch()),
        },
        ("webhooks" | "serviceUrl", Value::String(s)) if has_masked_credentials(s) => {
            Err(mismatch())
        }
        ("webhooksCustomHeaders", Value::Array(items)) => {
            let known: Vec<(&str, &Value)> = stored
                .and_then(Value::as_array)
                .map(|a| {
                    a.iter()
                        .filter_map(|h| Some((h.get("key")?.as_str()?, h.get("value")?)))
                        .collect()
                })
                .unwrap_or_default();
            let mut out = Vec::with_capacity(items.len());
            for (i, item) in items.iter().enumerate() {
                let mut item = item.clone();
                let masked = item.get("value").and_then(Value::as_str) == Some(MASK);
                if let (true, Some(name), Value::Object(fields)) = (
                    masked,
                    items[i].get("key").and_then(Value::as_str),
                    &mut item,
                ) {
                    let real = known
                        .iter()
                        .find(|(k, _)| k.eq_ignore_ascii_case(name))
                        .map(|(_, v)| (*v).clone())
                        .ok_or_else(|| {
                            FieldError::about(
                                &format!("{key}[{i}].value"),
                                "is masked but no stored header of that name exists",
                            )
                        })?;
                    fields.insert("value".into(), real);
                }
                out.push(item);
            }
            let merged = Value::Array(out);
            if stored == Some(&merged) {
                Ok(Submitted::Echo)
            } else {
                Ok(Submitted::Write(merged))
            }
        }
        _ => Ok(Submitted::Write(submitted.clone())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn obj(v: Value) -> Map<String, Value> {
        v.as_object().cloned().unwrap()
    }

    #[test]
    fn converts_and_validates() {
        let ok = validate(&obj(json!({
            "webhooksEnabled": "true",
            "notifyTextSize": "1024",
            "webhooks": "https://user:pw@example.com/hook",
            "webhookEvents": ["*"],
            "webhooksCustomHeaders": [{"key": "X-A", "value": "1"}]
        })))
        .unwrap();
        assert_eq!(ok[0], ("webhooksEnabled".into(), json!(true)));
        assert_eq!(ok[1], ("notifyTextSize".into(), json!(1024)));
    }

    #[test]
    fn reports_every_bad_field_joi_style() {
        let errors = validate(&obj(json!({
            "webhooksEnabled": 3,
            "webhooks": "ftp://x",
            "nope": 1,
            "notifyTextSize": -1,
            "webhooksCustomHeaders": [{"key": "Bad Name", "value": "x"}]
        })))
        .unwrap_err();
        let messages: Vec<_> = errors.iter().map(|e| e.message.as_str()).collect();
        assert_eq!(
            messages,
            [
                "\"webhooksEnabled\" must be a boolean",
                "\"webhooks\" must be a valid uri with a scheme matching the http|https pattern",
                "\"nope\" is not allowed",
                "\"notifyTextSize\" must be greater than or equal to 0",
                "\"webhooksCustomHeaders[0].key\" must be a valid header name",
            ]
        );
        assert_eq!(errors[2].key, "nope");
    }

    #[test]
    fn masking() {
        assert_eq!(
            mask_url_credentials("https://u:p@h.example/x?y"),
            "https://******:******@h.example/x?y"
        );
        assert_eq!(
            mask_url_credentials("https://token@h.example/"),
            "https://******@h.example/"
        );
        assert_eq!(
            mask_url_credentials("https://h.example/a@b"),
            "https://h.example/a@b"
        );
        assert_eq!(display_value("serviceSecret", json!("abc")), json!(true));
        let headers = display_value(
            "webhooksCustomHeaders",
            json!([{"key": "Authorization", "value": "Bearer x"}, {"key": "X-Team", "value": "a"}]),
        );
        assert_eq!(
            headers,
            json!([{"key": "Authorization", "value": "******"}, {"key": "X-Team", "value": "******"}])
        );
    }

    #[test]
    fn masked_echoes_keep_the_stored_secret() {
        let url = json!("https://u:p@h.example/in");
        let echo = json!("https://******:******@h.example/in");
        assert_eq!(
            resolve_masked("webhooks", &echo, Some(&url)),
            Ok(Submitted::Echo)
        );
        let elsewhere = json!("https://******:******@other.example/in");
        let err = resolve_masked("webhooks", &elsewhere, Some(&url)).unwrap_err();
        assert_eq!(err.key, "webhooks");
        assert!(resolve_masked("webhooks", &echo, None).is_err());
        let fresh = json!("https://a:b@other.example/in");
        assert_eq!(
            resolve_masked("webhooks", &fresh, Some(&url)),
            Ok(Submitted::Write(fresh.clone()))
        );

        let stored =
            json!([{"key": "Authorization", "value": "Bearer x"}, {"key": "X-Team", "value": "a"}]);
        let echo = display_value("webhooksCustomHeaders", stored.clone());
        assert_eq!(
            resolve_masked("webhooksCustomHeaders", &echo, Some(&stored)),
            Ok(Submitted::Echo)
        );
        let partly =
            json!([{"key": "authorization", "value": "******"}, {"key": "X-New", "value": "n"}]);
        assert_eq!(
            resolve_masked("webhooksCustomHeaders", &partly, Some(&stored)),
            Ok(Submitted::Write(
                json!([{"key": "authorization", "value": "Bearer x"}, {"key": "X-New", "value": "n"}])
            ))
        );
        let unknown = json!([{"key": "X-Other", "value": "******"}]);
        let err = resolve_masked("webhooksCustomHeaders", &unknown, Some(&stored)).unwrap_err();
        assert_eq!(err.key, "webhooksCustomHeaders[0].value");

        let secret = json!("0123abcd");
        for shown in [json!(true), json!("******")] {
            assert_eq!(
                resolve_masked("serviceSecret", &shown, Some(&secret)),
                Ok(Submitted::Echo)
            );
        }
        assert!(resolve_masked("serviceSecret", &json!("******"), None).is_err());
        assert_eq!(
            resolve_masked("serviceSecret", &json!("new"), Some(&secret)),
            Ok(Submitted::Write(json!("new")))
        );
    }

    #[test]
    fn urls() {
        assert!(is_http_url("http://127.0.0.1:8080/hook"));
        assert!(!is_http_url("http://"));
        assert!(!is_http_url("https:// bad"));
        assert!(!is_http_url("javascript:alert(1)"));
    }
}
