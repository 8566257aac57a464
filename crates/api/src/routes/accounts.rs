//! Account routes (spec §5.1, §6.2–§6.3): register, list, show, update, delete accounts, and
//! ask their connection to reconnect, resync or rebuild its index.

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::{Path, State};
use serde::Serialize;
use serde_json::{Map, Value, json};
use utoipa::ToSchema;

use emailengine_core::account::{
    self, AccountInput, AccountRecord, ServerSettings, encrypt_secrets,
};
use emailengine_mail::Verified;

use crate::error::{ApiError, ApiResult};
use crate::extract::{JsonObject, QueryParams};
use crate::state::AppState;

pub fn account_not_found() -> ApiError {
    ApiError::not_found("Account record was not found for requested ID")
        .with("code", "AccountNotFound")
}

/// Loads an account's fields or answers 404.
pub async fn load(state: &AppState, account: &str) -> ApiResult<BTreeMap<String, String>> {
    state
        .store
        .account(account)
        .await?
        .ok_or_else(account_not_found)
}

fn stored_fields(state: &AppState, input: &AccountInput) -> BTreeMap<String, String> {
    let mut fields = input.fields.clone();
    for (key, value) in [
        ("imap", &input.imap),
        ("smtp", &input.smtp),
        ("oauth2", &input.oauth2),
    ] {
        if let Some(v) = value {
            let mut v = v.clone();
            encrypt_secrets(&mut v, state.cipher.as_deref());
            fields.insert(key.into(), v.to_string());
        }
    }
    fields
}

#[derive(Serialize, ToSchema)]
pub struct Registered {
    pub account: String,
    /// `new` or `existing`.
    pub state: &'static str,
}

/// Register an account
///
/// Takes EmailEngine's payload (`account`, `name`, `email`, `imap`, `smtp`, `path`,
/// `notifyFrom`, `syncFrom`, `copy`, `logs`, `webhooks`, …). A null `account` gets a generated id.
/// `expectedEmail` pins the account to one address: an `email` or IMAP/SMTP login user that is
/// another address is refused with 403 `AccountIdentityMismatch`.
#[utoipa::path(post, path = "/v1/account", tag = "Account",
    request_body(content = Object, description = "Account settings"),
    responses((status = 200, body = Registered), (status = 400, description = "Invalid input"),
        (status = 403, description = "The login identity is not the pinned `expectedEmail`")),
    extensions(("x-ee-group" = json!("admin")), ("x-ee-action" = json!("write"))),
    security(("bearerAuth" = [])))]
pub async fn create(
    State(state): State<AppState>,
    JsonObject(body): JsonObject,
) -> ApiResult<Json<Value>> {
    if body
        .get("oauth2")
        .and_then(|o| o.get("authorize"))
        .and_then(Value::as_bool)
        == Some(true)
    {
        let redirect = crate::routes::hosted::authorize_account(&state, body).await?;
        return Ok(Json(json!({"redirect": redirect})));
    }
    let input = account::parse_input(&body, true).map_err(ApiError::invalid_input)?;
    if let Some(expected) = input.fields.get("expectedEmail") {
        check_identity(
            expected,
            input.fields.get("email").map(String::as_str),
            &[input.imap.as_ref(), input.smtp.as_ref()],
        )?;
    }
    let (account, is_new) = register(&state, &input).await?;
    Ok(Json(json!(Registered {
        account,
        state: if is_new { "new" } else { "existing" },
    })))
}

/// Stores a validated new account (an OAuth2 one linked to its app under its user), announces
/// it and starts its connection; answers its id and whether it is new.
pub async fn register(state: &AppState, input: &AccountInput) -> ApiResult<(String, bool)> {
    let id = input.account.clone().unwrap_or_else(|| {
        let mut b = [0u8; 8];
        rand::fill(&mut b);
        hex::encode(b)
    });
    if let Some(oauth2) = &input.oauth2 {
        link_oauth2_user(state, &id, oauth2).await?;
    }
    let mut fields = stored_fields(state, input);
    fields.insert("account".into(), id.clone());
    let is_new = state.store.put_account(&id, &fields).await?;
    if is_new {
        state
            .events
            .emit(&id, "accountAdded", None, None, json!({"account": id}))
            .await;
    }
    tracing::info!(account = %id, new = is_new, "Account registered");
    state.mail.start(&id);
    Ok((id, is_new))
}

/// Checks that an OAuth2 account names a known app and links it under its user; another
/// account holding the same user of that app is refused (spec §15.1).
async fn link_oauth2_user(state: &AppState, account: &str, oauth2: &Value) -> ApiResult<()> {
    let invalid = || {
        ApiError::new(
            axum::http::StatusCode::BAD_REQUEST,
            "Invalid or missing OAuth2 provider",
        )
        .with("code", "InvalidProvider")
    };
    let app = oauth2["provider"].as_str().ok_or_else(invalid)?;
    if state.store.app(app).await?.is_none() {
        return Err(invalid());
    }
    let user = oauth2["auth"]["user"]
        .as_str()
        .unwrap_or_default()
        .to_lowercase();
    match state.store.link_app_account(app, account, &user).await? {
        Some(existing) if existing != account => Err(ApiError::new(
            axum::http::StatusCode::BAD_REQUEST,
            "Another account for the same OAuth2 user already exists",
        )
        .with("code", "AccountAlreadyExists")
        .with("existingAccount", existing)),
        _ => Ok(()),
    }
}

/// Get the OAuth2 access token of an account
///
/// Answers the account's current access token, renewed first when it expires within 30 s.
/// Disabled unless the `enableOAuthTokensApi` setting is true.
#[utoipa::path(get, path = "/v1/account/{account}/oauth-token", tag = "Account",
    params(("account" = String, Path, description = "Account id")),
    responses((status = 200, description = "`{account, user, accessToken, provider, app?, registeredScopes, expires, cached}`", body = Object),
        (status = 403, description = "Disabled API endpoint, not an OAuth2 account, or the renewal failed"),
        (status = 404, description = "Unknown account")),
    extensions(("x-ee-group" = json!("admin")), ("x-ee-action" = json!("read"))),
    security(("bearerAuth" = [])))]
pub async fn oauth_token(
    State(state): State<AppState>,
    Path(account): Path<String>,
) -> ApiResult<Json<Value>> {
    let enabled = state.settings.get_one("enableOAuthTokensApi").await? == Some(Value::Bool(true));
    if !enabled {
        return Err(
            ApiError::forbidden("Disabled API endpoint").with("code", "ApiEndpointDisabled")
        );
    }
    let record = AccountRecord::from_fields(&account, load(&state, &account).await?);
    if record.oauth2().is_none() {
        return Err(ApiError::forbidden("Not an OAuth2 account").with("code", "AccountNotOAuth2"));
    }
    use emailengine_mail::oauth::{LoginError, Protocol};
    let token = match state.oauth.token(&account, Protocol::Api).await {
        Ok(t) => t,
        Err(LoginError::Renew(e)) => {
            return Err(ApiError::forbidden(e.to_string())
                .with("code", "OauthRenewError")
                .with("authenticationFailed", true)
                .with("tokenRequest", e.token_request()));
        }
        Err(LoginError::AppNotFound) => {
            return Err(
                ApiError::not_found("Missing or disabled OAuth2 app").with("code", "AppNotFound")
            );
        }
        Err(e) if e.is_transient() => {
            return Err(
                ApiError::new(axum::http::StatusCode::SERVICE_UNAVAILABLE, e.to_string())
                    .with("code", e.code()),
            );
        }
        Err(e) => return Err(ApiError::forbidden(e.to_string()).with("code", e.code())),
    };
    let provider = token.app.provider.as_str();
    let app_id = token.app.id.clone().unwrap_or_default();
    let mut out = json!({
        "account": account,
        "user": token.user,
        "accessToken": token.access_token,
        "provider": provider,
        "registeredScopes": token.scopes,
        "cached": token.cached,
    });
    if app_id != provider {
        out["app"] = Value::from(app_id);
    }
    if !token.from_auth_server
        && let Some(expires) = token.expires_ms.and_then(emailengine_core::units::iso_time)
    {
        out["expires"] = Value::from(expires);
    }
    Ok(Json(out))
}

#[derive(Serialize, ToSchema)]
pub struct AccountUpdated {
    pub account: String,
}

/// Update an account
///
/// Connection settings given here replace the stored ones; the connection is restarted. Secrets
/// sent back as the `******` the account was shown with keep their stored values.
#[utoipa::path(put, path = "/v1/account/{account}", tag = "Account",
    params(("account" = String, Path, description = "Account id")),
    request_body(content = Object, description = "Fields to change"),
    responses((status = 200, body = AccountUpdated), (status = 404, description = "Unknown account")),
    extensions(("x-ee-group" = json!("admin")), ("x-ee-action" = json!("write"))),
    security(("bearerAuth" = [])))]
pub async fn update(
    State(state): State<AppState>,
    Path(account): Path<String>,
    JsonObject(body): JsonObject,
) -> ApiResult<Json<AccountUpdated>> {
    let mut input = account::parse_input(&body, false).map_err(ApiError::invalid_input)?;
    let stored = load(&state, &account).await?;
    restore_masked(&mut input, &stored).map_err(ApiError::invalid_input)?;
    let field = |k: &str| input.fields.get(k).or_else(|| stored.get(k));
    if let Some(expected) = field("expectedEmail") {
        let stored_login =
            |k: &str| -> Option<Value> { stored.get(k).and_then(|s| serde_json::from_str(s).ok()) };
        let (imap, smtp) = (stored_login("imap"), stored_login("smtp"));
        check_identity(
            expected,
            field("email").map(String::as_str),
            &[
                input.imap.as_ref().or(imap.as_ref()),
                input.smtp.as_ref().or(smtp.as_ref()),
            ],
        )?;
    }
    if let Some(oauth2) = &input.oauth2 {
        link_oauth2_user(&state, &account, oauth2).await?;
    }
    let fields = stored_fields(&state, &input);
    if !state.store.update_account(&account, &fields).await? {
        return Err(account_not_found());
    }
    if input.imap.is_some() || input.oauth2.is_some() || input.fields.contains_key("path") {
        state.mail.start(&account);
    }
    Ok(Json(AccountUpdated { account }))
}

/// Refuses an account pinned to `expectedEmail` that would sign in as another mailbox.
fn check_identity(expected: &str, email: Option<&str>, logins: &[Option<&Value>]) -> ApiResult<()> {
    match account::foreign_identity(expected, email, logins) {
        None => Ok(()),
        Some(other) => Err(ApiError::forbidden(format!(
            "Account identity {other} does not match the expected address {expected}"
        ))
        .with("code", "AccountIdentityMismatch")),
    }
}

/// Puts stored secrets back where the update echoed the masks `GET /v1/account` showed.
fn restore_masked(
    input: &mut AccountInput,
    stored: &BTreeMap<String, String>,
) -> Result<(), Vec<emailengine_core::validation::FieldError>> {
    let mut errors = Vec::new();
    for (key, value) in [("imap", &mut input.imap), ("smtp", &mut input.smtp)] {
        if let Some(v) = value {
            let old: Option<Value> = stored.get(key).and_then(|s| serde_json::from_str(s).ok());
            if let Err(e) = account::restore_masked_secrets(key, v, old.as_ref()) {
                errors.push(e);
            }
        }
    }
    for key in ["webhooks", "proxy"] {
        if let Some(url) = input.fields.get_mut(key) {
            match account::restore_masked_url(key, url, stored.get(key).map(String::as_str)) {
                Ok(real) => *url = real,
                Err(e) => errors.push(e),
            }
        }
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(errors)
    }
}

#[derive(Serialize, ToSchema)]
pub struct AccountDeleted {
    pub account: String,
    pub deleted: bool,
}

/// Remove an account
///
/// Disconnects it and removes its record, indexes and account-bound tokens.
#[utoipa::path(delete, path = "/v1/account/{account}", tag = "Account",
    params(("account" = String, Path, description = "Account id")),
    responses((status = 200, body = AccountDeleted), (status = 404, description = "Unknown account")),
    extensions(("x-ee-group" = json!("account")), ("x-ee-action" = json!("destructive"))),
    security(("bearerAuth" = [])))]
pub async fn delete(
    State(state): State<AppState>,
    Path(account): Path<String>,
) -> ApiResult<Json<AccountDeleted>> {
    let record = AccountRecord::from_fields(&account, load(&state, &account).await?);
    state.mail.stop(&account).await;
    if let Some(oauth2) = record.oauth2()
        && let Some(app) = oauth2["provider"].as_str()
    {
        let user = oauth2["auth"]["user"].as_str().unwrap_or_default();
        state.store.unlink_app_account(app, &account, user).await?;
    }
    let deleted = state.store.delete_account(&account).await?;
    if deleted {
        state
            .events
            .emit(
                &account,
                "accountDeleted",
                None,
                None,
                json!({"account": account}),
            )
            .await;
    }
    Ok(Json(AccountDeleted { account, deleted }))
}

/// The state shown for an account: the live one when its connection runs, else the stored one.
fn display_state(state: &AppState, account: &str, stored: Option<&String>) -> String {
    state
        .mail
        .state(account)
        .map(|s| s.as_str().to_string())
        .or_else(|| stored.cloned())
        .unwrap_or_else(|| "init".into())
}

/// Get account info
#[utoipa::path(get, path = "/v1/account/{account}", tag = "Account",
    params(("account" = String, Path, description = "Account id")),
    responses((status = 200, description = "Account details; secrets are masked", body = Object), (status = 404, description = "Unknown account")),
    extensions(("x-ee-group" = json!("account")), ("x-ee-action" = json!("read"))),
    security(("bearerAuth" = [])))]
pub async fn get_one(
    State(state): State<AppState>,
    Path(account): Path<String>,
) -> ApiResult<Json<Map<String, Value>>> {
    let record = AccountRecord::from_fields(&account, load(&state, &account).await?);
    let mut out = record.display();
    let stored = record.state.map(|s| s.as_str().to_string());
    let shown = display_state(&state, &account, stored.as_ref());
    out.insert("state".into(), Value::from(shown.clone()));
    out.insert("type".into(), Value::from(record.kind()));
    if let Some(app) = record.oauth2_app()
        && let Ok(found) = state.oauth.app(&app).await
    {
        out.insert("type".into(), Value::from(found.provider.as_str()));
        out.insert("app".into(), Value::from(app));
    }
    let last_error = match &record.last_error {
        Some(e) if shown != "connected" => e.clone(),
        _ => Value::Null,
    };
    out.insert("lastError".into(), last_error);
    for (key, default) in [
        ("copy", Value::Null),
        ("logs", Value::Bool(false)),
        ("notifyFrom", Value::Null),
        ("syncFrom", Value::Null),
    ] {
        out.entry(key).or_insert(default);
    }
    out.remove("lastErrorState");
    Ok(Json(out))
}

#[derive(Serialize, ToSchema)]
pub struct AccountList {
    pub total: usize,
    pub page: usize,
    pub pages: usize,
    /// The substring searched for, or `false`.
    #[schema(value_type = Value)]
    pub query: Value,
    pub state: String,
    #[schema(value_type = Vec<Object>)]
    pub accounts: Vec<Value>,
}

/// List accounts
#[utoipa::path(get, path = "/v1/accounts", tag = "Account",
    params(
        ("page" = Option<u32>, Query, minimum = 0, maximum = 1048576, description = "Page number, from 0"),
        ("pageSize" = Option<u32>, Query, minimum = 1, maximum = 1000, description = "Accounts per page (1..1000, default 20)"),
        ("state" = Option<String>, Query, max_length = 64, description = "Only accounts in this state (`errors` = authenticationError + connectError)"),
        ("query" = Option<String>, Query, max_length = 256, description = "Substring of account id, name or email"),
    ),
    responses((status = 200, body = AccountList)),
    extensions(("x-ee-group" = json!("account")), ("x-ee-action" = json!("read"))),
    security(("bearerAuth" = [])))]
pub async fn list(
    State(state): State<AppState>,
    mut query: QueryParams,
) -> ApiResult<Json<AccountList>> {
    let page = query.int("page", 0, 1_048_576, 0) as usize;
    let page_size = query.int("pageSize", 1, 1000, 20) as usize;
    let wanted_state = query.string("state", 64);
    let needle = query.string("query", 256);
    query.finish()?;
    let mut ids = state.store.account_ids().await?;
    ids.sort_unstable();
    const FIELDS: [&str; 6] = [
        "account",
        "name",
        "email",
        "state",
        "webhooks",
        "lastErrorState",
    ];
    let rows = state.store.account_summaries(&ids, &FIELDS).await?;
    let needle_lower = needle.as_deref().map(str::to_lowercase);
    let mut accounts = Vec::new();
    for (id, row) in ids.iter().zip(rows) {
        let get = |i: usize| row.get(i).cloned().flatten();
        let shown = display_state(&state, id, get(3).as_ref());
        if let Some(w) = &wanted_state {
            let matches = if w == "errors" {
                shown == "authenticationError" || shown == "connectError"
            } else {
                &shown == w
            };
            if !matches {
                continue;
            }
        }
        if let Some(n) = &needle_lower {
            let hit = [Some(id.clone()), get(1), get(2)]
                .iter()
                .flatten()
                .any(|v| v.to_lowercase().contains(n));
            if !hit {
                continue;
            }
        }
        let mut entry = json!({
            "account": id, "name": get(1), "email": get(2), "type": "imap", "state": shown,
        });
        if let Some(w) = get(4) {
            entry["webhooks"] = Value::from(emailengine_core::settings::mask_url_credentials(&w));
        }
        entry["lastError"] = if entry["state"] == "connected" {
            Value::Null
        } else {
            get(5)
                .and_then(|e| serde_json::from_str(&e).ok())
                .unwrap_or(Value::Null)
        };
        accounts.push(entry);
    }
    let total = accounts.len();
    let pages = total.div_ceil(page_size);
    let accounts = accounts
        .into_iter()
        .skip(page.saturating_mul(page_size))
        .take(page_size)
        .collect();
    Ok(Json(AccountList {
        total,
        page,
        pages,
        query: needle.map_or(Value::Bool(false), Value::from),
        state: wanted_state.unwrap_or_else(|| "*".into()),
        accounts,
    }))
}

/// Request reconnect
#[utoipa::path(put, path = "/v1/account/{account}/reconnect", tag = "Account",
    params(("account" = String, Path, description = "Account id")),
    responses((status = 200, description = "`{reconnect: true}`", body = Object), (status = 404, description = "Unknown account")),
    extensions(("x-ee-group" = json!("account")), ("x-ee-action" = json!("write"))),
    security(("bearerAuth" = [])))]
pub async fn reconnect(
    State(state): State<AppState>,
    Path(account): Path<String>,
) -> ApiResult<Json<Value>> {
    load(&state, &account).await?;
    if !state.mail.reconnect(&account) {
        state.mail.start(&account);
    }
    Ok(Json(json!({"reconnect": true})))
}

/// Request syncing
#[utoipa::path(put, path = "/v1/account/{account}/sync", tag = "Account",
    params(("account" = String, Path, description = "Account id")),
    responses((status = 200, description = "`{sync: true}`", body = Object), (status = 404, description = "Unknown account")),
    extensions(("x-ee-group" = json!("account")), ("x-ee-action" = json!("write"))),
    security(("bearerAuth" = [])))]
pub async fn sync(
    State(state): State<AppState>,
    Path(account): Path<String>,
) -> ApiResult<Json<Value>> {
    load(&state, &account).await?;
    if !state.mail.sync(&account) {
        state.mail.start(&account);
    }
    Ok(Json(json!({"sync": true})))
}

/// Rebuild the account's index
///
/// Drops the mailbox and message indexes and reconnects; the next sync rebuilds them without
/// reporting existing messages as new.
#[utoipa::path(put, path = "/v1/account/{account}/flush", tag = "Account",
    params(("account" = String, Path, description = "Account id")),
    responses((status = 200, description = "`{flush: true}`", body = Object), (status = 404, description = "Unknown account")),
    extensions(("x-ee-group" = json!("account")), ("x-ee-action" = json!("destructive"))),
    security(("bearerAuth" = [])))]
pub async fn flush(
    State(state): State<AppState>,
    Path(account): Path<String>,
) -> ApiResult<Json<Value>> {
    load(&state, &account).await?;
    state.mail.stop(&account).await;
    state.store.flush_account_index(&account).await?;
    state.mail.start(&account);
    Ok(Json(json!({"flush": true})))
}

/// Verify IMAP and SMTP settings
///
/// Connects with the given IMAP and SMTP settings and reports for each whether login works;
/// with `mailboxes: true` the IMAP folder list comes back too.
#[utoipa::path(post, path = "/v1/verifyAccount", tag = "Account",
    request_body(content = Object, description = "`{imap?, smtp?, mailboxes?}`: at least one of `imap` and `smtp`"),
    responses((status = 200, description = "`{imap?: {success, error?, code?}, smtp?: {...}, mailboxes?: [...]}`", body = Object),
        (status = 400, description = "Invalid input")),
    extensions(("x-ee-group" = json!("admin")), ("x-ee-action" = json!("read"))),
    security(("bearerAuth" = [])))]
pub async fn verify(
    State(state): State<AppState>,
    JsonObject(body): JsonObject,
) -> ApiResult<Json<Value>> {
    let mut errors = Vec::new();
    for key in body.keys() {
        if !["imap", "smtp", "mailboxes", "proxy", "smtpEhloName"].contains(&key.as_str()) {
            errors.push(emailengine_core::validation::FieldError::about(
                key,
                "is not allowed",
            ));
        }
    }
    for key in ["imap", "smtp"] {
        if body
            .get(key)
            .is_some_and(|v| !v.is_object() && !v.is_null() && *v != Value::Bool(false))
        {
            errors.push(emailengine_core::validation::FieldError::about(
                key,
                "must be of type object",
            ));
        }
    }
    let mailboxes = match body.get("mailboxes") {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => *b,
        Some(_) => {
            errors.push(emailengine_core::validation::FieldError::about(
                "mailboxes",
                "must be a boolean",
            ));
            false
        }
    };
    let imap = body.get("imap").filter(|v| v.is_object());
    let smtp = body.get("smtp").filter(|v| v.is_object());
    if imap.is_none() && smtp.is_none() && errors.is_empty() {
        errors.push(emailengine_core::validation::FieldError::new(
            "value",
            "\"value\" must contain at least one of [imap, smtp]",
        ));
    }
    if !errors.is_empty() {
        return Err(ApiError::invalid_input(errors));
    }
    Ok(Json(Value::Object(
        verify_servers(&state, imap, smtp, mailboxes).await,
    )))
}

/// Tries IMAP and SMTP settings (`{host, port, secure, auth}` objects) as `/v1/verifyAccount`
/// does: `{imap: {success, error?, code?}, smtp: {...}, mailboxes?}` for the ones given.
pub async fn verify_servers(
    state: &AppState,
    imap: Option<&Value>,
    smtp: Option<&Value>,
    mailboxes: bool,
) -> Map<String, Value> {
    let mut out = Map::new();
    if let Some(imap) = imap {
        let result = match ServerSettings::from_json(imap) {
            None => {
                json!({"success": false, "error": "Invalid IMAP settings", "code": "InvalidSettings"})
            }
            Some(settings) => match state.mail.verify(&settings, mailboxes).await {
                Verified::Success { mailboxes } => {
                    if let Some(list) = mailboxes {
                        out.insert("mailboxes".into(), Value::Array(list));
                    }
                    json!({"success": true})
                }
                Verified::Failed { error, code } => {
                    json!({"success": false, "error": error, "code": code})
                }
            },
        };
        out.insert("imap".into(), result);
    }
    if let Some(smtp) = smtp {
        let result = match ServerSettings::from_json(smtp) {
            None => {
                json!({"success": false, "error": "Invalid SMTP settings", "code": "InvalidSettings"})
            }
            Some(settings) => match emailengine_delivery::submit::verify_smtp(&settings).await {
                Ok(()) => json!({"success": true}),
                Err((error, code)) => json!({"success": false, "error": error, "code": code}),
            },
        };
        out.insert("smtp".into(), result);
    }
    out
}

/// List the account's server-side signatures
///
/// Signatures are kept by API providers (Gmail's send-as settings); an IMAP/SMTP account has
/// none: `{signatures: [], signaturesSupported: false}`.
#[utoipa::path(get, path = "/v1/account/{account}/server-signatures", tag = "Account",
    params(("account" = String, Path, description = "Account id")),
    responses((status = 200, description = "`{signatures: [{address, signature}], signaturesSupported}`", body = Object),
        (status = 404, description = "Unknown account")),
    extensions(("x-ee-group" = json!("account")), ("x-ee-action" = json!("read"))),
    security(("bearerAuth" = [])))]
pub async fn server_signatures(
    State(state): State<AppState>,
    Path(account): Path<String>,
) -> ApiResult<Json<Value>> {
    load(&state, &account).await?;
    Ok(Json(
        json!({"signatures": [], "signaturesSupported": false}),
    ))
}
