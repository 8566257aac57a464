//! The submit payload of spec §17.1 checked as a whole before anything is built: every key
//! known, each value of its type and bound, the exclusive and dependent fields (`raw` against
//! the content fields, `mailMerge` against the recipient fields, `listId` only with
//! `mailMerge`). Errors name the field, as EmailEngine's validation does.

use serde_json::{Map, Value};

use emailengine_core::compose;
use emailengine_core::validation::FieldError;
use emailengine_delivery::submit::Dsn;

/// Keys the submit route reads besides the compose fields of [`compose::KEYS`].
const SUBMIT_KEYS: &[&str] = &[
    "reference",
    "envelope",
    "raw",
    "previewText",
    "template",
    "render",
    "mailMerge",
    "trackingEnabled",
    "trackOpens",
    "trackClicks",
    "copy",
    "sentMailPath",
    "locale",
    "tz",
    "sendAt",
    "deliveryAttempts",
    "gateway",
    "listId",
    "dsn",
    "baseUrl",
    "proxy",
    "localAddress",
    "dryRun",
    "feedbackKey",
];

/// Keys a stored draft's submission takes.
pub const STORED_KEYS: &[&str] = &[
    "envelope",
    "sendAt",
    "deliveryAttempts",
    "copy",
    "sentMailPath",
    "gateway",
    "dsn",
    "proxy",
    "localAddress",
    "feedbackKey",
];

/// Recipient fields that a mail merge sets per entry.
const MERGE_FORBIDDEN: &[&str] = &["to", "cc", "bcc", "envelope", "raw", "render"];
const CONTENT_FIELDS: &[&str] = &["html", "text", "attachments"];
const PROXY_SCHEMES: &[&str] = &["http", "https", "socks", "socks4", "socks4a", "socks5"];
const DSN_NOTIFY: &[&str] = &["never", "success", "failure", "delay"];

/// The options of a submission that are not message content.
#[derive(Debug, Clone, Default)]
pub struct Options {
    pub envelope_from: Option<String>,
    pub envelope_to: Option<Vec<String>>,
    /// Milliseconds; `None` means now.
    pub send_at: Option<i64>,
    pub attempts: u32,
    /// `None`: the account's default (upload a copy).
    pub copy: Option<bool>,
    pub sent_mail_path: Option<String>,
    pub gateway: Option<String>,
    pub dsn: Option<Dsn>,
    pub proxy: Option<String>,
    pub local_address: Option<String>,
    pub feedback_key: Option<String>,
    pub dry_run: bool,
    pub base_url: Option<url::Url>,
    pub track_clicks: Option<bool>,
    pub track_opens: Option<bool>,
    pub template: Option<String>,
    pub list_id: Option<String>,
}

fn text<'a>(
    body: &'a Map<String, Value>,
    key: &str,
    max: usize,
    errors: &mut Vec<FieldError>,
) -> Option<&'a str> {
    match body.get(key) {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) if s.chars().count() <= max => Some(s),
        Some(Value::String(_)) => {
            errors.push(FieldError::about(
                key,
                &format!("length must be less than or equal to {max} characters long"),
            ));
            None
        }
        Some(_) => {
            errors.push(FieldError::about(key, "must be a string"));
            None
        }
    }
}

fn flag(body: &Map<String, Value>, key: &str, errors: &mut Vec<FieldError>) -> Option<bool> {
    match body.get(key) {
        None | Some(Value::Null) => None,
        Some(Value::Bool(b)) => Some(*b),
        Some(_) => {
            errors.push(FieldError::about(key, "must be a boolean"));
            None
        }
    }
}

fn present(body: &Map<String, Value>, key: &str) -> bool {
    body.get(key).is_some_and(|v| !v.is_null())
}

/// Checks the keys and the delivery options of a submit payload (`stored`: a draft's
/// submission, which takes only [`STORED_KEYS`]). Content fields are checked when each
/// message is built.
pub fn options(body: &Map<String, Value>, stored: bool) -> Result<Options, Vec<FieldError>> {
    let mut errors = Vec::new();
    for key in body.keys() {
        let known = if stored {
            STORED_KEYS.contains(&key.as_str())
        } else {
            compose::KEYS.contains(&key.as_str()) || SUBMIT_KEYS.contains(&key.as_str())
        };
        if !known {
            errors.push(FieldError::about(key, "is not allowed"));
        }
    }
    let now = chrono::Utc::now().timestamp_millis();
    let mut o = Options {
        attempts: 10,
        ..Default::default()
    };
    let merge = present(body, "mailMerge");
    if merge {
        for key in MERGE_FORBIDDEN {
            if present(body, key) {
                errors.push(FieldError::about(key, "is not allowed"));
            }
        }
        match body.get("mailMerge") {
            Some(Value::Array(entries)) if !entries.is_empty() => {
                for (i, entry) in entries.iter().enumerate() {
                    merge_entry(i, entry, &mut errors);
                }
            }
            Some(Value::Array(_)) => errors.push(FieldError::about(
                "mailMerge",
                "must contain at least 1 items",
            )),
            Some(_) => errors.push(FieldError::about("mailMerge", "must be an array")),
            None => {}
        }
    }
    if present(body, "raw") {
        for key in CONTENT_FIELDS {
            if present(body, key) {
                errors.push(FieldError::new(
                    "raw",
                    format!("\"raw\" conflicts with \"{key}\": give either a raw message or its content fields"),
                ));
            }
        }
        if !matches!(body.get("raw"), Some(Value::String(_))) {
            errors.push(FieldError::about("raw", "must be a base64 encoded string"));
        }
    }
    if let Some(list) = text(body, "listId", 256, &mut errors) {
        if !merge {
            errors.push(FieldError::about("listId", "is not allowed"));
        } else if !crate::routes::blocklists::valid_list_id(list) {
            errors.push(FieldError::about("listId", "must contain a valid hostname"));
        } else {
            o.list_id = Some(list.to_string());
        }
    }
    if let Some(env) = body.get("envelope").filter(|v| !v.is_null()) {
        match env {
            Value::Object(e) => {
                match e.get("from") {
                    None | Some(Value::Null) => {}
                    Some(Value::String(f)) if f.is_empty() || compose::is_email(f) => {
                        o.envelope_from = Some(f.clone());
                    }
                    Some(_) => {
                        errors.push(FieldError::about("envelope.from", "must be a valid email"))
                    }
                }
                let list: Vec<&Value> = match e.get("to") {
                    None | Some(Value::Null) => Vec::new(),
                    Some(Value::Array(items)) => items.iter().collect(),
                    Some(v) => vec![v],
                };
                let mut to = Vec::new();
                for (i, v) in list.into_iter().enumerate() {
                    match v.as_str().filter(|a| compose::is_email(a)) {
                        Some(a) => to.push(a.to_string()),
                        None => errors.push(FieldError::about(
                            &format!("envelope.to[{i}]"),
                            "must be a valid email",
                        )),
                    }
                }
                if e.get("to").is_some_and(|v| !v.is_null()) {
                    o.envelope_to = Some(to);
                }
            }
            _ => errors.push(FieldError::about("envelope", "must be of type object")),
        }
    }
    match body.get("sendAt") {
        None | Some(Value::Null) => {}
        Some(v) => match v.as_str().and_then(emailengine_core::units::parse_iso_time) {
            Some(t) => o.send_at = Some(t.max(now)),
            None => errors.push(FieldError::about(
                "sendAt",
                "must be in ISO 8601 date format",
            )),
        },
    }
    match body.get("deliveryAttempts") {
        None | Some(Value::Null) => {}
        Some(v) => match v
            .as_u64()
            .or_else(|| {
                v.as_f64()
                    .filter(|f| f.fract() == 0.0 && *f >= 0.0)
                    .map(|f| f as u64)
            })
            .filter(|n| (1..=100).contains(n))
        {
            Some(n) => o.attempts = n as u32,
            None => errors.push(FieldError::about(
                "deliveryAttempts",
                "must be a number between 1 and 100",
            )),
        },
    }
    o.copy = flag(body, "copy", &mut errors);
    o.dry_run = flag(body, "dryRun", &mut errors).unwrap_or(false);
    let tracking = flag(body, "trackingEnabled", &mut errors);
    o.track_clicks = flag(body, "trackClicks", &mut errors).or(tracking);
    o.track_opens = flag(body, "trackOpens", &mut errors).or(tracking);
    o.sent_mail_path = text(body, "sentMailPath", 1024, &mut errors).map(str::to_string);
    o.gateway = text(body, "gateway", 256, &mut errors).map(str::to_string);
    o.template = text(body, "template", 256, &mut errors).map(str::to_string);
    o.feedback_key = text(body, "feedbackKey", 1024, &mut errors).map(str::to_string);
    for key in ["locale", "tz"] {
        text(body, key, 100, &mut errors);
    }
    text(body, "previewText", 1024, &mut errors);
    if let Some(base) = text(body, "baseUrl", 1024, &mut errors) {
        match url::Url::parse(base) {
            Ok(u) if matches!(u.scheme(), "http" | "https") => o.base_url = Some(u),
            _ => errors.push(FieldError::about("baseUrl", "must be a valid uri")),
        }
    }
    if let Some(proxy) = text(body, "proxy", 1024, &mut errors) {
        match url::Url::parse(proxy) {
            Ok(u) if PROXY_SCHEMES.contains(&u.scheme()) && u.host_str().is_some() => {
                o.proxy = Some(proxy.to_string());
            }
            _ => errors.push(FieldError::about(
                "proxy",
                "must be a valid uri with a scheme matching the http|https|socks|socks4|socks4a|socks5 pattern",
            )),
        }
    }
    if let Some(addr) = text(body, "localAddress", 64, &mut errors) {
        match addr.parse::<std::net::IpAddr>() {
            Ok(_) => o.local_address = Some(addr.to_string()),
            Err(_) => errors.push(FieldError::about(
                "localAddress",
                "must be a valid ip address without a CIDR",
            )),
        }
    }
    match body.get("render") {
        None | Some(Value::Null) | Some(Value::Bool(false)) => {}
        Some(Value::Object(r)) => {
            for key in r.keys() {
                if key != "format" && key != "params" {
                    errors.push(FieldError::about(
                        &format!("render.{key}"),
                        "is not allowed",
                    ));
                }
            }
            match r.get("format") {
                None | Some(Value::Null) => {}
                Some(Value::String(f)) if f == "html" || f == "markdown" => {}
                Some(_) => errors.push(FieldError::about(
                    "render.format",
                    "must be one of [html, markdown]",
                )),
            }
            if r.get("params")
                .is_some_and(|p| !p.is_null() && !p.is_object())
            {
                errors.push(FieldError::about("render.params", "must be of type object"));
            }
        }
        Some(_) => errors.push(FieldError::about("render", "must be of type object")),
    }
    if let Some(d) = body.get("dsn").filter(|v| !v.is_null()) {
        o.dsn = dsn(d, &mut errors);
    }
    if errors.is_empty() {
        Ok(o)
    } else {
        Err(errors)
    }
}

fn merge_entry(i: usize, entry: &Value, errors: &mut Vec<FieldError>) {
    let at = |k: &str| format!("mailMerge[{i}].{k}");
    let Some(e) = entry.as_object() else {
        errors.push(FieldError::about(
            &format!("mailMerge[{i}]"),
            "must be of type object",
        ));
        return;
    };
    for key in e.keys() {
        if !["to", "messageId", "params", "sendAt"].contains(&key.as_str()) {
            errors.push(FieldError::about(&at(key), "is not allowed"));
        }
    }
    let address = match e.get("to") {
        Some(Value::String(a)) => Some(a.as_str()),
        Some(Value::Object(m)) => m.get("address").and_then(Value::as_str),
        None | Some(Value::Null) => {
            errors.push(FieldError::about(&at("to"), "is required"));
            return;
        }
        Some(_) => None,
    };
    if !address.is_some_and(compose::is_email) {
        errors.push(FieldError::about(&at("to"), "must be a valid email"));
    }
    if e.get("params")
        .is_some_and(|p| !p.is_null() && !p.is_object())
    {
        errors.push(FieldError::about(&at("params"), "must be of type object"));
    }
    if let Some(s) = e.get("sendAt").filter(|v| !v.is_null())
        && s.as_str()
            .and_then(emailengine_core::units::parse_iso_time)
            .is_none()
    {
        errors.push(FieldError::about(
            &at("sendAt"),
            "must be in ISO 8601 date format",
        ));
    }
    if let Some(m) = e.get("messageId").filter(|v| !v.is_null())
        && m.as_str().is_none_or(|m| m.len() > 996)
    {
        errors.push(FieldError::about(&at("messageId"), "must be a string"));
    }
}

fn dsn(value: &Value, errors: &mut Vec<FieldError>) -> Option<Dsn> {
    let Some(d) = value.as_object() else {
        errors.push(FieldError::about("dsn", "must be of type object"));
        return None;
    };
    let before = errors.len();
    for key in d.keys() {
        if !["id", "return", "notify", "recipient"].contains(&key.as_str()) {
            errors.push(FieldError::about(&format!("dsn.{key}"), "is not allowed"));
        }
    }
    let ret = match d.get("return").and_then(Value::as_str) {
        Some(r @ ("headers" | "full")) => r.to_string(),
        Some(_) => {
            errors.push(FieldError::about(
                "dsn.return",
                "must be one of [headers, full]",
            ));
            String::new()
        }
        None => {
            errors.push(FieldError::about("dsn.return", "is required"));
            String::new()
        }
    };
    let notify: Vec<String> = match d.get("notify") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::String(s)) => vec![s.clone()],
        Some(Value::Array(a)) => a
            .iter()
            .map(|v| v.as_str().unwrap_or_default().to_string())
            .collect(),
        Some(_) => {
            errors.push(FieldError::about("dsn.notify", "must be an array"));
            Vec::new()
        }
    };
    if notify.iter().any(|n| !DSN_NOTIFY.contains(&n.as_str())) {
        errors.push(FieldError::about(
            "dsn.notify",
            "must be one of [never, success, failure, delay]",
        ));
    } else if notify.len() > 1 && notify.iter().any(|n| n == "never") {
        errors.push(FieldError::about(
            "dsn.notify",
            "can not combine \"never\" with other values",
        ));
    }
    let recipient = match d.get("recipient") {
        None | Some(Value::Null) => None,
        Some(Value::String(r)) if compose::is_email(r) => Some(r.clone()),
        Some(_) => {
            errors.push(FieldError::about("dsn.recipient", "must be a valid email"));
            None
        }
    };
    let id = match d.get("id") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s.clone()),
        Some(_) => {
            errors.push(FieldError::about("dsn.id", "must be a string"));
            None
        }
    };
    (errors.len() == before).then_some(Dsn {
        id,
        ret,
        notify,
        recipient,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn check(body: Value) -> Result<Options, Vec<String>> {
        options(body.as_object().unwrap(), false)
            .map_err(|e| e.into_iter().map(|f| f.key).collect())
    }

    #[test]
    fn exclusive_and_dependent_fields() {
        assert_eq!(
            check(json!({"raw": "eA==", "html": "<p>x</p>"})).unwrap_err(),
            ["raw"]
        );
        assert_eq!(check(json!({"listId": "news"})).unwrap_err(), ["listId"]);
        assert_eq!(
            check(json!({"mailMerge": [{"to": {"address": "a@x.com"}}], "to": [], "listId": "bad_list"}))
                .unwrap_err(),
            ["to", "listId"]
        );
        assert_eq!(
            check(
                json!({"mailMerge": [{"to": {"address": "a@x.com"}}, {"to": {"address": "nope"}}]})
            )
            .unwrap_err(),
            ["mailMerge[1].to"]
        );
        assert_eq!(check(json!({"foo": 1})).unwrap_err(), ["foo"]);
    }

    #[test]
    fn delivery_options() {
        let o = check(json!({
            "dsn": {"return": "headers", "notify": ["failure", "delay"], "recipient": "a@x.com"},
            "localAddress": "127.0.0.2", "proxy": "socks5://127.0.0.1:1080",
            "trackingEnabled": true, "trackOpens": false, "baseUrl": "https://ee.example.com/"
        }))
        .unwrap();
        assert_eq!(o.dsn.unwrap().notify, ["failure", "delay"]);
        assert_eq!((o.track_clicks, o.track_opens), (Some(true), Some(false)));
        assert_eq!(
            check(json!({"dsn": {"return": "full", "notify": ["never", "success"]}})).unwrap_err(),
            ["dsn.notify"]
        );
        assert_eq!(
            check(json!({"localAddress": "10.0.0.0/8", "proxy": "ftp://x"})).unwrap_err(),
            ["proxy", "localAddress"]
        );
    }
}
