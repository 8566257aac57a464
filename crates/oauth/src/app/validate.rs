//! API input for apps (spec §14.1, §14.3, §14.4): `POST /v1/oauth2` bodies become an
//! [`OAuthApp`], `PUT /v1/oauth2/{app}` bodies become [`AppChanges`] merged by
//! [`apply_update`]. Each provider owns a set of fields; fields of other providers must be
//! absent, `false` or `null`. Messages follow Joi with `convert: true`, every error reported.

use emailengine_core::validation::FieldError;
use serde_json::{Map, Value};

use super::{OAuthApp, Provider, SECRET_KEYS};

/// What a field accepts.
#[derive(Clone, Copy)]
enum Kind {
    Text(usize),
    Bool,
    Url,
    Host,
    Port,
    /// An array of strings, or one whitespace-separated string (the admin form's shape).
    ScopeList,
    OneOf(&'static [&'static str]),
    Pattern(fn(&str) -> bool, &'static str),
    /// Workload Identity Federation credentials as JSON text.
    ExternalAccount,
}

const PROVIDERS: &str = "[gmail, gmailService, outlook, outlookService, mailRu, oauth2]";
const PROJECT_ID_PATTERN: &str = "/^[a-z][a-z0-9-]{4,28}[a-z0-9]$/";
const PUBSUB_NAME_PATTERN: &str = "/^(?!goog)[A-Za-z][A-Za-z0-9\\-_.~+%]{2,254}$/";
const DIGITS_PATTERN: &str = "/^\\d+$/";
const APP_ID_PATTERN: &str = "/^[A-Za-z0-9_-]+$/";

/// Every field an API body may carry, and what it accepts.
const FIELDS: &[(&str, Kind)] = &[
    ("name", Kind::Text(256)),
    ("description", Kind::Text(1024)),
    ("title", Kind::Text(256)),
    ("enabled", Kind::Bool),
    ("baseScopes", Kind::OneOf(&["imap", "api", "pubsub"])),
    ("extraScopes", Kind::ScopeList),
    ("skipScopes", Kind::ScopeList),
    ("clientId", Kind::Text(256)),
    ("clientSecret", Kind::Text(256)),
    ("redirectUrl", Kind::Url),
    ("pubSubApp", Kind::Pattern(is_app_id, APP_ID_PATTERN)),
    ("serviceClient", Kind::Pattern(is_digits, DIGITS_PATTERN)),
    ("serviceClientEmail", Kind::Text(256)),
    ("serviceKey", Kind::Text(100 * 1024)),
    (
        "authMethod",
        Kind::OneOf(&["serviceKey", "externalAccount"]),
    ),
    ("externalAccount", Kind::ExternalAccount),
    (
        "googleProjectId",
        Kind::Pattern(is_project_id, PROJECT_ID_PATTERN),
    ),
    ("googleWorkspaceAccounts", Kind::Bool),
    (
        "googleTopicName",
        Kind::Pattern(is_pubsub_name, PUBSUB_NAME_PATTERN),
    ),
    (
        "googleSubscriptionName",
        Kind::Pattern(is_pubsub_name, PUBSUB_NAME_PATTERN),
    ),
    ("authority", Kind::Text(256)),
    (
        "cloud",
        Kind::OneOf(&["global", "gcc-high", "dod", "china"]),
    ),
    ("issuer", Kind::Url),
    ("authorizeUrl", Kind::Url),
    ("tokenUrl", Kind::Url),
    ("revokeUrl", Kind::Url),
    ("introspectionUrl", Kind::Url),
    ("userinfoUrl", Kind::Url),
    ("scopes", Kind::ScopeList),
    ("imapHost", Kind::Host),
    ("imapPort", Kind::Port),
    ("imapSecure", Kind::Bool),
    ("smtpHost", Kind::Host),
    ("smtpPort", Kind::Port),
    ("smtpSecure", Kind::Bool),
    ("saslMechanism", Kind::OneOf(&["XOAUTH2", "OAUTHBEARER"])),
];

const COMMON: &[&str] = &[
    "name",
    "description",
    "title",
    "enabled",
    "baseScopes",
    "extraScopes",
    "skipScopes",
];

/// The fields that belong to a provider besides [`COMMON`].
fn own_fields(provider: Provider) -> &'static [&'static str] {
    match provider {
        Provider::Gmail => &[
            "clientId",
            "clientSecret",
            "redirectUrl",
            "pubSubApp",
            "googleProjectId",
            "googleWorkspaceAccounts",
        ],
        Provider::GmailService => &[
            "serviceClient",
            "serviceClientEmail",
            "serviceKey",
            "authMethod",
            "externalAccount",
            "googleProjectId",
            "googleTopicName",
            "googleSubscriptionName",
            "pubSubApp",
        ],
        Provider::Outlook => &[
            "clientId",
            "clientSecret",
            "redirectUrl",
            "authority",
            "cloud",
        ],
        Provider::OutlookService => &["clientId", "clientSecret", "authority", "cloud"],
        Provider::MailRu => &["clientId", "clientSecret", "redirectUrl"],
        Provider::Generic => &[
            "clientId",
            "clientSecret",
            "redirectUrl",
            "issuer",
            "authorizeUrl",
            "tokenUrl",
            "revokeUrl",
            "introspectionUrl",
            "userinfoUrl",
            "scopes",
            "imapHost",
            "imapPort",
            "imapSecure",
            "smtpHost",
            "smtpPort",
            "smtpSecure",
            "saslMechanism",
        ],
    }
}

fn base_scopes_for(provider: Provider) -> &'static [&'static str] {
    match provider {
        Provider::GmailService => &["imap", "api", "pubsub"],
        Provider::Generic => &["imap"],
        _ => &["imap", "api"],
    }
}

/// Fields a complete app of this provider must have, given what it holds so far.
fn required_fields(provider: Provider, app: &Map<String, Value>) -> Vec<&'static str> {
    let mut required = vec!["name"];
    match provider {
        Provider::Gmail | Provider::MailRu => {
            required.extend(["clientId", "clientSecret", "redirectUrl"])
        }
        Provider::Outlook => {
            required.extend(["clientId", "clientSecret", "redirectUrl", "authority"])
        }
        Provider::OutlookService => required.extend(["clientId", "clientSecret", "authority"]),
        Provider::GmailService => {
            required.extend(["serviceClient", "serviceClientEmail"]);
            if app.get("authMethod").and_then(Value::as_str) == Some("externalAccount") {
                required.push("externalAccount");
            } else {
                required.push("serviceKey");
            }
        }
        Provider::Generic => {
            required.extend(["clientId", "redirectUrl", "imapHost", "imapPort"]);
            if !app.contains_key("issuer") {
                required.extend(["authorizeUrl", "tokenUrl"]);
            }
        }
    }
    required
}

/// Microsoft's multi-tenant authorities, which the client-credentials grant cannot use.
const SHARED_AUTHORITIES: &[&str] = &["common", "organizations", "consumers"];

/// Validates a `POST /v1/oauth2` body into a new app (without `id`, `created`, `updated`).
pub fn validate_create(body: &Map<String, Value>) -> Result<OAuthApp, Vec<FieldError>> {
    let mut errors = Vec::new();
    let provider = match body.get("provider") {
        None | Some(Value::Null) => {
            errors.push(FieldError::about("provider", "is required"));
            None
        }
        Some(Value::String(s)) => Provider::parse(s).or_else(|| {
            errors.push(FieldError::about(
                "provider",
                &format!("must be one of {PROVIDERS}"),
            ));
            None
        }),
        Some(_) => {
            errors.push(FieldError::about("provider", "must be a string"));
            None
        }
    };
    let mut clean = Map::new();
    for (key, value) in body {
        if key == "provider" {
            continue;
        }
        let Some(kind) = kind_of(key) else {
            errors.push(FieldError::about(key, "is not allowed"));
            continue;
        };
        let Some(provider) = provider else { continue };
        if !belongs_to(provider, key) {
            check_foreign(key, value, &mut errors);
            continue;
        }
        if let Some(v) = convert(provider, key, kind, value, &mut errors) {
            clean.insert(key.clone(), v);
        }
    }
    let Some(provider) = provider else {
        return Err(errors);
    };
    clean.insert("provider".into(), Value::from(provider.as_str()));
    clean.entry("enabled").or_insert(Value::Bool(false));
    if provider.is_microsoft() {
        clean.entry("cloud").or_insert(Value::from("global"));
    }
    if provider == Provider::GmailService {
        clean
            .entry("authMethod")
            .or_insert(Value::from("serviceKey"));
    }
    check_complete(provider, &clean, &mut errors);
    finish(clean, errors)
}

/// A validated `PUT /v1/oauth2/{app}` body: the fields to set, and `null` for fields to clear.
#[derive(Debug, Clone, PartialEq)]
pub struct AppChanges(pub Map<String, Value>);

/// Validates a `PUT /v1/oauth2/{app}` body against the stored app's provider. `provider` and
/// `baseScopes` cannot change. An empty secret leaves the stored one in place; `null` or an
/// empty string clears an optional field. `tenant` replaces `authority` when that is `"tenant"`.
pub fn validate_update(
    provider: Provider,
    body: &Map<String, Value>,
) -> Result<AppChanges, Vec<FieldError>> {
    let mut errors = Vec::new();
    let mut changes = Map::new();
    let mut tenant = None;
    for (key, value) in body {
        if key == "tenant" {
            tenant = text(key, value, 256, &mut errors);
            continue;
        }
        let kind = match kind_of(key) {
            Some(kind) if key != "baseScopes" => kind,
            _ => {
                errors.push(FieldError::about(key, "is not allowed"));
                continue;
            }
        };
        if !belongs_to(provider, key) {
            check_foreign(key, value, &mut errors);
            continue;
        }
        let empty = value.is_null() || value.as_str().is_some_and(str::is_empty);
        if empty {
            if SECRET_KEYS.contains(&key.as_str()) {
                continue;
            }
            let always_required = required_fields(provider, &Map::new());
            if always_required.contains(&key.as_str()) {
                errors.push(FieldError::about(key, "is not allowed to be empty"));
            } else {
                changes.insert(key.clone(), Value::Null);
            }
            continue;
        }
        if let Some(v) = convert(provider, key, kind, value, &mut errors) {
            changes.insert(key.clone(), v);
        }
    }
    if changes.get("authority").and_then(Value::as_str) == Some("tenant") {
        match tenant {
            Some(t) if !t.is_empty() => {
                changes.insert("authority".into(), Value::String(t));
            }
            _ => errors.push(FieldError::about("tenant", "is required")),
        }
    }
    if errors.is_empty() {
        Ok(AppChanges(changes))
    } else {
        Err(errors)
    }
}

/// Merges validated changes into a stored app (shallow; absent keys kept) and stamps `updated`.
/// A `gmailService` app that already holds a key or external-account credential keeps its
/// `authMethod`. The caller also clears the app's `meta.authFlag`.
pub fn apply_update(
    stored: &OAuthApp,
    changes: &AppChanges,
    now_iso: &str,
) -> Result<OAuthApp, Vec<FieldError>> {
    let mut merged = match serde_json::to_value(stored) {
        Ok(Value::Object(map)) => map,
        _ => Map::new(),
    };
    for (k, v) in &changes.0 {
        if v.is_null() {
            merged.remove(k);
        } else {
            merged.insert(k.clone(), v.clone());
        }
    }
    let holds_credential = stored.service_key.is_some() || stored.external_account.is_some();
    if stored.provider == Provider::GmailService && holds_credential {
        match stored.auth_method {
            Some(m) => merged.insert("authMethod".into(), Value::from(m.as_str())),
            None => merged.remove("authMethod"),
        };
    }
    merged.insert("updated".into(), Value::from(now_iso));
    let mut errors = Vec::new();
    check_complete(stored.provider, &merged, &mut errors);
    let mut app = finish(merged, errors)?;
    app.extra = stored.extra.clone();
    Ok(app)
}

fn finish(clean: Map<String, Value>, errors: Vec<FieldError>) -> Result<OAuthApp, Vec<FieldError>> {
    if !errors.is_empty() {
        return Err(errors);
    }
    // Every value was converted to the shape the record expects, so this only fails on a bug.
    serde_json::from_value(Value::Object(clean)).map_err(|e| {
        vec![FieldError::new(
            "provider",
            format!("invalid app record: {e}"),
        )]
    })
}

/// Required fields of a complete app, and the rules that span fields.
fn check_complete(provider: Provider, app: &Map<String, Value>, errors: &mut Vec<FieldError>) {
    for key in required_fields(provider, app) {
        if !app.contains_key(key) && !errors.iter().any(|e| e.key == key) {
            errors.push(FieldError::about(key, "is required"));
        }
    }
    if provider == Provider::OutlookService
        && let Some(authority) = app.get("authority").and_then(Value::as_str)
        && SHARED_AUTHORITIES.contains(&authority.to_ascii_lowercase().as_str())
    {
        errors.push(FieldError::new(
            "authority",
            "Client credentials flow requires a specific tenant ID; \"common\", \
             \"organizations\" and \"consumers\" cannot be used",
        ));
    }
}

fn kind_of(key: &str) -> Option<Kind> {
    FIELDS
        .iter()
        .find(|(k, _)| *k == key)
        .map(|(_, kind)| *kind)
}

fn belongs_to(provider: Provider, key: &str) -> bool {
    COMMON.contains(&key) || own_fields(provider).contains(&key)
}

/// Another provider's field: only `false` and `null` are accepted (Joi `valid(false, null)`).
fn check_foreign(key: &str, value: &Value, errors: &mut Vec<FieldError>) {
    if !matches!(value, Value::Null | Value::Bool(false)) {
        errors.push(FieldError::about(key, "must be one of [false, null]"));
    }
}

/// Converts one owned field; `None` when it is invalid (error recorded) or empty.
fn convert(
    provider: Provider,
    key: &str,
    kind: Kind,
    value: &Value,
    errors: &mut Vec<FieldError>,
) -> Option<Value> {
    if value.is_null() {
        return None;
    }
    match kind {
        Kind::Text(max) => {
            let s = text(key, value, max, errors)?;
            if s.is_empty() {
                if key == "name" {
                    errors.push(FieldError::about(key, "is not allowed to be empty"));
                }
                return None;
            }
            Some(Value::String(s))
        }
        Kind::Bool => match value {
            Value::Bool(_) => Some(value.clone()),
            Value::String(s) if s == "true" => Some(Value::Bool(true)),
            Value::String(s) if s == "false" => Some(Value::Bool(false)),
            _ => {
                errors.push(FieldError::about(key, "must be a boolean"));
                None
            }
        },
        Kind::Url => {
            let s = non_empty_text(key, value, 2048, errors)?;
            if emailengine_core::settings::is_http_url(&s) {
                Some(Value::String(s))
            } else {
                errors.push(FieldError::about(
                    key,
                    "must be a valid uri with a scheme matching the http|https pattern",
                ));
                None
            }
        }
        Kind::Host => {
            let s = non_empty_text(key, value, 253, errors)?;
            if is_hostname(&s) {
                Some(Value::String(s))
            } else {
                errors.push(FieldError::about(key, "must be a valid hostname"));
                None
            }
        }
        Kind::Port => {
            let port = match value {
                Value::Number(n) => n.as_u64(),
                Value::String(s) => s.trim().parse::<u64>().ok(),
                _ => None,
            };
            match port {
                Some(p) if (1..=65535).contains(&p) => Some(Value::from(p)),
                _ => {
                    errors.push(FieldError::about(key, "must be a valid port"));
                    None
                }
            }
        }
        Kind::ScopeList => scope_list(key, value, errors),
        Kind::OneOf(values) => {
            let values = if key == "baseScopes" {
                base_scopes_for(provider)
            } else {
                values
            };
            match value.as_str() {
                Some(s) if values.contains(&s) => Some(value.clone()),
                _ => {
                    errors.push(FieldError::about(
                        key,
                        &format!("must be one of [{}]", values.join(", ")),
                    ));
                    None
                }
            }
        }
        Kind::Pattern(matches, pattern) => {
            // Numeric ids arrive as numbers from some clients.
            let s = match value {
                Value::Number(n) if key == "serviceClient" => n.to_string(),
                _ => non_empty_text(key, value, 256, errors)?,
            };
            if matches(&s) {
                Some(Value::String(s))
            } else {
                errors.push(FieldError::about(
                    key,
                    &format!("with value \"{s}\" fails to match the required pattern: {pattern}"),
                ));
                None
            }
        }
        Kind::ExternalAccount => {
            let s = non_empty_text(key, value, 64 * 1024, errors)?;
            if is_external_account(&s) {
                Some(Value::String(s))
            } else {
                errors.push(FieldError::about(
                    key,
                    "must be a Workload Identity Federation JSON object of type \"external_account\"",
                ));
                None
            }
        }
    }
}

fn text(key: &str, value: &Value, max: usize, errors: &mut Vec<FieldError>) -> Option<String> {
    let Value::String(s) = value else {
        errors.push(FieldError::about(key, "must be a string"));
        return None;
    };
    if s.chars().count() > max {
        errors.push(FieldError::about(
            key,
            &format!("length must be less than or equal to {max} characters long"),
        ));
        return None;
    }
    Some(s.clone())
}

/// Text for fields where the empty string means "not given".
fn non_empty_text(
    key: &str,
    value: &Value,
    max: usize,
    errors: &mut Vec<FieldError>,
) -> Option<String> {
    text(key, value, max, errors).filter(|s| !s.is_empty())
}

fn scope_list(key: &str, value: &Value, errors: &mut Vec<FieldError>) -> Option<Value> {
    let items: Vec<String> = match value {
        Value::String(s) => s.split_whitespace().map(str::to_string).collect(),
        Value::Array(items) => {
            let mut out = Vec::with_capacity(items.len());
            for (i, item) in items.iter().enumerate() {
                out.push(text(&format!("{key}[{i}]"), item, 255, errors)?);
            }
            out
        }
        _ => {
            errors.push(FieldError::about(key, "must be an array"));
            return None;
        }
    };
    for (i, item) in items.iter().enumerate() {
        if item.chars().count() > 255 {
            errors.push(FieldError::about(
                &format!("{key}[{i}]"),
                "length must be less than or equal to 255 characters long",
            ));
            return None;
        }
    }
    Some(Value::from(items))
}

fn is_digits(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit())
}

fn is_app_id(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 256
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// `^[a-z][a-z0-9-]{4,28}[a-z0-9]$`
fn is_project_id(s: &str) -> bool {
    let b = s.as_bytes();
    (6..=30).contains(&b.len())
        && b[0].is_ascii_lowercase()
        && b[1..b.len() - 1]
            .iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
        && b.last()
            .is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
}

/// `^(?!goog)[A-Za-z][A-Za-z0-9\-_.~+%]{2,254}$`
fn is_pubsub_name(s: &str) -> bool {
    let b = s.as_bytes();
    !s.starts_with("goog")
        && (3..=255).contains(&b.len())
        && b[0].is_ascii_alphabetic()
        && b[1..]
            .iter()
            .all(|c| c.is_ascii_alphanumeric() || b"-_.~+%".contains(c))
}

fn is_hostname(s: &str) -> bool {
    !s.is_empty()
        && !s.starts_with(['-', '.'])
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-._:[]".contains(&b))
}

/// The shape of a Google external-account credential file.
fn is_external_account(s: &str) -> bool {
    let Ok(Value::Object(obj)) = serde_json::from_str::<Value>(s) else {
        return false;
    };
    let text = |k: &str| {
        obj.get(k)
            .and_then(Value::as_str)
            .is_some_and(|v| !v.is_empty())
    };
    obj.get("type").and_then(Value::as_str) == Some("external_account")
        && text("audience")
        && text("subject_token_type")
        && text("token_url")
        && obj.get("credential_source").is_some_and(Value::is_object)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::app::{AuthMethod, Cloud, SaslMechanism};
    use serde_json::json;

    fn obj(v: Value) -> Map<String, Value> {
        v.as_object().cloned().unwrap()
    }

    fn messages(errors: &[FieldError]) -> Vec<&str> {
        errors.iter().map(|e| e.message.as_str()).collect()
    }

    fn minimal(provider: &str) -> Value {
        match provider {
            "gmail" | "mailRu" => json!({"name": "A", "provider": provider, "clientId": "c",
                "clientSecret": "s", "redirectUrl": "https://ee.example/oauth"}),
            "outlook" => json!({"name": "A", "provider": "outlook", "clientId": "c",
                "clientSecret": "s", "redirectUrl": "https://ee.example/oauth",
                "authority": "common"}),
            "outlookService" => json!({"name": "A", "provider": "outlookService",
                "clientId": "c", "clientSecret": "s",
                "authority": "0f5c5e0c-1111-2222-3333-444455556666"}),
            "gmailService" => json!({"name": "A", "provider": "gmailService",
                "serviceClient": "1234567890", "serviceClientEmail": "sa@p.iam.gserviceaccount.com",
                "serviceKey": "-----BEGIN PRIVATE KEY-----\n..."}),
            "oauth2" => json!({"name": "A", "provider": "oauth2", "clientId": "c",
                "redirectUrl": "http://127.0.0.1/oauth", "issuer": "http://127.0.0.1:9180",
                "imapHost": "127.0.0.1", "imapPort": 993}),
            _ => unreachable!(),
        }
    }

    #[test]
    fn every_provider_accepts_its_minimal_set() {
        for p in [
            "gmail",
            "gmailService",
            "outlook",
            "outlookService",
            "mailRu",
            "oauth2",
        ] {
            let app = validate_create(&obj(minimal(p))).unwrap_or_else(|e| panic!("{p}: {e:?}"));
            assert_eq!(app.provider.as_str(), p);
            assert_eq!(app.enabled, Some(false));
        }
    }

    #[test]
    fn defaults_and_conversions() {
        let app = validate_create(&obj(json!({"name": "O", "provider": "outlook",
            "clientId": "c", "clientSecret": "s", "redirectUrl": "https://ee.example/oauth",
            "authority": "organizations", "enabled": "true",
            "extraScopes": " Calendars.Read  Contacts.Read ", "skipScopes": ["SMTP.Send"]})))
        .unwrap();
        assert_eq!(app.cloud, Some(Cloud::Global));
        assert_eq!(app.enabled, Some(true));
        assert_eq!(
            app.extra_scopes,
            Some(vec![
                "Calendars.Read".to_string(),
                "Contacts.Read".to_string()
            ])
        );
        assert_eq!(app.skip_scopes, Some(vec!["SMTP.Send".to_string()]));
        let svc = validate_create(&obj(minimal("gmailService"))).unwrap();
        assert_eq!(svc.auth_method, Some(AuthMethod::ServiceKey));
        let generic = validate_create(&obj(json!({"name": "G", "provider": "oauth2",
            "clientId": "c", "redirectUrl": "http://127.0.0.1/oauth",
            "authorizeUrl": "http://127.0.0.1:1/auth", "tokenUrl": "http://127.0.0.1:1/token",
            "imapHost": "mail.example", "imapPort": "143", "smtpPort": 587,
            "saslMechanism": "OAUTHBEARER", "scopes": "openid mail"})))
        .unwrap();
        assert_eq!(generic.imap_port, Some(143));
        assert_eq!(generic.sasl_mechanism, Some(SaslMechanism::OAuthBearer));
        assert_eq!(generic.scopes, Some(vec!["openid".into(), "mail".into()]));
    }

    #[test]
    fn missing_required_fields() {
        let mut body = obj(minimal("gmail"));
        body.remove("clientSecret");
        body.remove("name");
        let errors = validate_create(&body).unwrap_err();
        assert_eq!(
            messages(&errors),
            ["\"name\" is required", "\"clientSecret\" is required"]
        );
        assert_eq!(errors[1].key, "clientSecret");
        let errors = validate_create(&obj(json!({"name": "x"}))).unwrap_err();
        assert_eq!(messages(&errors), ["\"provider\" is required"]);
        let errors = validate_create(&obj(json!({"name": "x", "provider": "aol"}))).unwrap_err();
        assert_eq!(
            messages(&errors),
            [
                "\"provider\" must be one of [gmail, gmailService, outlook, outlookService, mailRu, oauth2]"
            ]
        );
        let mut generic = obj(minimal("oauth2"));
        generic.remove("issuer");
        assert_eq!(
            messages(&validate_create(&generic).unwrap_err()),
            ["\"authorizeUrl\" is required", "\"tokenUrl\" is required"]
        );
        let mut external = obj(minimal("gmailService"));
        external.remove("serviceKey");
        external.insert("authMethod".into(), json!("externalAccount"));
        assert_eq!(
            messages(&validate_create(&external).unwrap_err()),
            ["\"externalAccount\" is required"]
        );
    }

    #[test]
    fn foreign_fields_must_be_false_or_null() {
        let mut body = obj(minimal("gmailService"));
        body.insert("clientId".into(), json!(null));
        body.insert("redirectUrl".into(), json!(false));
        validate_create(&body).unwrap();
        body.insert("clientId".into(), json!("abc"));
        body.insert("imapHost".into(), json!("x"));
        let errors = validate_create(&body).unwrap_err();
        assert_eq!(
            messages(&errors),
            [
                "\"clientId\" must be one of [false, null]",
                "\"imapHost\" must be one of [false, null]"
            ]
        );
        let mut svc = obj(minimal("outlookService"));
        svc.insert("redirectUrl".into(), json!("https://ee.example/oauth"));
        assert_eq!(
            messages(&validate_create(&svc).unwrap_err()),
            ["\"redirectUrl\" must be one of [false, null]"]
        );
    }

    #[test]
    fn unknown_and_stored_only_keys_are_not_allowed() {
        let mut body = obj(minimal("outlook"));
        body.insert("tenant".into(), json!("t"));
        body.insert("accessToken".into(), json!("x"));
        body.insert("id".into(), json!("x"));
        assert_eq!(
            messages(&validate_create(&body).unwrap_err()),
            [
                "\"tenant\" is not allowed",
                "\"accessToken\" is not allowed",
                "\"id\" is not allowed"
            ]
        );
    }

    #[test]
    fn outlook_service_needs_a_tenant() {
        for shared in ["common", "organizations", "Consumers"] {
            let mut body = obj(minimal("outlookService"));
            body.insert("authority".into(), json!(shared));
            let errors = validate_create(&body).unwrap_err();
            assert_eq!(errors.len(), 1);
            assert_eq!(errors[0].key, "authority");
            assert!(
                errors[0]
                    .message
                    .starts_with("Client credentials flow requires a specific tenant ID; ")
            );
        }
    }

    #[test]
    fn value_checks_are_joi_style() {
        let mut body = obj(minimal("gmailService"));
        body.insert("googleProjectId".into(), json!("Bad_Project"));
        body.insert("googleTopicName".into(), json!("google-topic"));
        body.insert("serviceClient".into(), json!("12a"));
        body.insert("baseScopes".into(), json!("graph"));
        body.insert("enabled".into(), json!(3));
        body.insert("name".into(), json!("x".repeat(257)));
        body.insert(
            "externalAccount".into(),
            json!("{\"type\":\"service_account\"}"),
        );
        body.insert("extraScopes".into(), json!(["ok", 5]));
        let errors = validate_create(&body).unwrap_err();
        assert_eq!(
            messages(&errors),
            [
                "\"name\" length must be less than or equal to 256 characters long",
                "\"serviceClient\" with value \"12a\" fails to match the required pattern: /^\\d+$/",
                "\"googleProjectId\" with value \"Bad_Project\" fails to match the required pattern: /^[a-z][a-z0-9-]{4,28}[a-z0-9]$/",
                "\"googleTopicName\" with value \"google-topic\" fails to match the required pattern: /^(?!goog)[A-Za-z][A-Za-z0-9\\-_.~+%]{2,254}$/",
                "\"baseScopes\" must be one of [imap, api, pubsub]",
                "\"enabled\" must be a boolean",
                "\"externalAccount\" must be a Workload Identity Federation JSON object of type \"external_account\"",
                "\"extraScopes[1]\" must be a string",
            ]
        );
        let mut generic = obj(minimal("oauth2"));
        generic.insert("imapPort".into(), json!(70000));
        generic.insert("tokenUrl".into(), json!("ftp://x"));
        generic.insert("baseScopes".into(), json!("api"));
        assert_eq!(
            messages(&validate_create(&generic).unwrap_err()),
            [
                "\"imapPort\" must be a valid port",
                "\"tokenUrl\" must be a valid uri with a scheme matching the http|https pattern",
                "\"baseScopes\" must be one of [imap]",
            ]
        );
    }

    #[test]
    fn pattern_helpers() {
        assert!(is_project_id("my-project-1"));
        assert!(!is_project_id("my-project-"));
        assert!(!is_project_id("short"));
        assert!(is_pubsub_name("ee-pub-AAAB"));
        assert!(!is_pubsub_name("goog-topic"));
        assert!(!is_pubsub_name("1abc"));
        assert!(is_external_account(
            r#"{"type":"external_account","audience":"a","subject_token_type":"s","token_url":"t","credential_source":{"file":"/x"}}"#
        ));
    }

    fn stored_outlook() -> OAuthApp {
        let mut app = validate_create(&obj(minimal("outlook"))).unwrap();
        app.id = Some("AAABhaBPHscAAAAH".into());
        app.extra = vec![("legacy".into(), rmpv::Value::from(1))];
        app
    }

    #[test]
    fn updates_merge_shallowly() {
        let stored = stored_outlook();
        let changes = validate_update(
            Provider::Outlook,
            &obj(
                json!({"name": "B", "clientSecret": "", "authority": "tenant",
                "tenant": "contoso.onmicrosoft.com", "extraScopes": null}),
            ),
        )
        .unwrap();
        let app = apply_update(&stored, &changes, "2024-01-01T00:00:00.000Z").unwrap();
        assert_eq!(app.name.as_deref(), Some("B"));
        assert_eq!(
            app.client_secret.as_deref(),
            Some("s"),
            "empty secret keeps the stored one"
        );
        assert_eq!(app.authority.as_deref(), Some("contoso.onmicrosoft.com"));
        assert_eq!(app.updated.as_deref(), Some("2024-01-01T00:00:00.000Z"));
        assert_eq!(app.client_id, stored.client_id);
        assert_eq!(app.extra, stored.extra);
    }

    #[test]
    fn update_rejections() {
        let errors = validate_update(
            Provider::Outlook,
            &obj(
                json!({"provider": "gmail", "baseScopes": "api", "serviceKey": "k",
                "clientId": "", "authority": "tenant"}),
            ),
        )
        .unwrap_err();
        assert_eq!(
            messages(&errors),
            [
                "\"provider\" is not allowed",
                "\"baseScopes\" is not allowed",
                "\"serviceKey\" must be one of [false, null]",
                "\"clientId\" is not allowed to be empty",
                "\"tenant\" is required",
            ]
        );
        let mut svc = validate_create(&obj(minimal("outlookService"))).unwrap();
        svc.id = Some("x".into());
        let changes = validate_update(
            Provider::OutlookService,
            &obj(json!({"authority": "common"})),
        )
        .unwrap();
        let errors = apply_update(&svc, &changes, "2024-01-01T00:00:00.000Z").unwrap_err();
        assert_eq!(errors[0].key, "authority");
    }

    #[test]
    fn gmail_service_auth_method_is_pinned() {
        let stored = validate_create(&obj(minimal("gmailService"))).unwrap();
        let changes = validate_update(
            Provider::GmailService,
            &obj(json!({"authMethod": "externalAccount"})),
        )
        .unwrap();
        let app = apply_update(&stored, &changes, "2024-01-01T00:00:00.000Z").unwrap();
        assert_eq!(app.auth_method, Some(AuthMethod::ServiceKey));
    }

    proptest::proptest! {
        #[test]
        fn validation_never_panics(key in "[a-zA-Z]{1,20}", text in "\\PC{0,40}", n in proptest::num::i64::ANY) {
            for provider in ["gmail", "gmailService", "outlook", "outlookService", "mailRu", "oauth2"] {
                let mut body = obj(minimal(provider));
                body.insert(key.clone(), json!(text));
                let _ = validate_create(&body);
                body.insert(key.clone(), json!(n));
                let _ = validate_create(&body);
                let _ = validate_update(Provider::parse(provider).unwrap(), &body);
            }
        }
    }
}
