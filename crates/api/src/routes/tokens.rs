//! Access-token routes (spec §3.7): provision, list, inspect and delete tokens, plus the
//! deprecated `/v1/token` aliases. All of them are in the never-grantable `admin` group.

use axum::Json;
use axum::extract::{Extension, Path, State};
use serde::Serialize;
use serde_json::{Map, Value};
use utoipa::ToSchema;

use emailengine_core::auth::Restrictions;
use emailengine_core::permissions::Permissions;
use emailengine_core::token::{TokenRecord, TokenValue, is_hex64};
use emailengine_core::units::{iso_time, parse_iso_time};
use emailengine_core::validation::FieldError;
use emailengine_store::StoredToken;

use crate::auth::AuthContext;
use crate::error::{ApiError, ApiResult};
use crate::extract::{JsonObject, QueryParams};
use crate::state::AppState;

/// Scopes a token may be given over the API (`*` and `metrics` only via the CLI).
const API_SCOPES: [&str; 4] = ["api", "smtp", "imap-proxy", "mcp"];
const MAX_METADATA: usize = 1024 * 1024;

#[derive(Serialize, ToSchema)]
pub struct ProvisionedToken {
    /// The token value. It is shown only here and never stored.
    pub token: String,
    /// The token id (SHA-256 of the token bytes).
    pub id: String,
}

/// The request body of `POST /v1/tokens`, for the OpenAPI document only: the handler validates
/// the JSON field by field to report every problem in EmailEngine's shape.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct ProvisionRequest {
    /// Bind the token to this account; it then only works on that account's routes.
    account: Option<String>,
    /// What the token is for (required, up to 1024 characters).
    description: String,
    /// `api`, `smtp`, `imap-proxy`, `mcp` (default `["api"]`).
    scopes: Option<Vec<String>>,
    /// Free-form JSON text kept with the token.
    metadata: Option<String>,
    /// `{addresses: [cidr], referrers: [glob], rateLimit: {maxRequests, timeWindow}}`.
    #[schema(value_type = Option<Object>)]
    restrictions: Option<Value>,
    /// `{actions: [...], groups: [...]}`; required when no account is given.
    #[schema(value_type = Option<Object>)]
    permissions: Option<Value>,
    /// Expiry as an ISO 8601 date in the future.
    expires: Option<String>,
    /// IP address of the end user the token is made for.
    ip: Option<String>,
}

/// Provision an access token
#[utoipa::path(post, path = "/v1/tokens", tag = "Access Tokens",
    request_body = ProvisionRequest,
    responses((status = 200, body = ProvisionedToken), (status = 400, description = "Invalid input"),
        (status = 404, description = "Account not found")),
    extensions(("x-ee-group" = json!("admin")), ("x-ee-action" = json!("write"))),
    security(("bearerAuth" = [])))]
pub async fn provision(
    State(state): State<AppState>,
    Extension(ctx): Extension<AuthContext>,
    JsonObject(body): JsonObject,
) -> ApiResult<Json<ProvisionedToken>> {
    if ctx.preauth {
        return Err(ApiError::forbidden(
            "Can not provision an access token for an unauthenticated request",
        ));
    }
    let mut record = parse_provision(&body).map_err(ApiError::invalid_input)?;
    record.created = chrono::Utc::now().timestamp_millis();
    record.remote_address = ctx.remote.map(|r| r.to_string());
    if let Some(account) = &record.account
        && !state.store.account_exists(account).await?
    {
        return Err(
            ApiError::not_found("Account record was not found for requested ID")
                .with("code", "AccountNotFound"),
        );
    }
    let value = TokenValue::generate();
    let id = value.id();
    state.store.put_token(&id, &record).await?;
    tracing::info!(token = %id, account = ?record.account, scopes = ?record.scopes,
        description = ?record.description, "Provisioned new access token");
    Ok(Json(ProvisionedToken {
        token: value.to_hex(),
        id,
    }))
}

/// Provision an access token (deprecated alias of `POST /v1/tokens`)
#[utoipa::path(post, path = "/v1/token", tag = "Access Tokens",
    request_body = ProvisionRequest,
    responses((status = 200, body = ProvisionedToken)),
    extensions(("x-ee-group" = json!("admin")), ("x-ee-action" = json!("write"))),
    security(("bearerAuth" = [])))]
pub async fn provision_deprecated(
    state: State<AppState>,
    ctx: Extension<AuthContext>,
    body: JsonObject,
) -> ApiResult<Json<ProvisionedToken>> {
    provision(state, ctx, body).await
}

fn parse_provision(body: &Map<String, Value>) -> Result<TokenRecord, Vec<FieldError>> {
    let mut errors = Vec::new();
    let mut record = TokenRecord::default();
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
    for key in body.keys() {
        if ![
            "account",
            "description",
            "scopes",
            "metadata",
            "restrictions",
            "permissions",
            "expires",
            "ip",
        ]
        .contains(&key.as_str())
        {
            errors.push(FieldError::about(key, "is not allowed"));
        }
    }
    record.account = string("account", 256, &mut errors).filter(|a| !a.is_empty());
    record.description = string("description", 1024, &mut errors);
    if record.description.as_deref().is_none_or(str::is_empty)
        && !errors.iter().any(|e| e.key == "description")
    {
        errors.push(FieldError::about("description", "is required"));
    }
    record.scopes = Some(match body.get("scopes") {
        None | Some(Value::Null) => vec!["api".to_string()],
        Some(v) => {
            let items: Vec<&Value> = match v {
                Value::Array(a) => a.iter().collect(),
                single => vec![single],
            };
            let mut scopes = Vec::new();
            for (i, item) in items.iter().enumerate() {
                match item.as_str() {
                    Some(s) if API_SCOPES.contains(&s) => scopes.push(s.to_string()),
                    _ => errors.push(FieldError::about(
                        &format!("scopes[{i}]"),
                        "must be one of [api, smtp, imap-proxy, mcp]",
                    )),
                }
            }
            if scopes.is_empty() && errors.is_empty() {
                errors.push(FieldError::about("scopes", "must contain at least 1 items"));
            }
            scopes
        }
    });
    record.metadata = string("metadata", MAX_METADATA, &mut errors);
    if let Some(m) = &record.metadata
        && serde_json::from_str::<Value>(m).is_err()
    {
        errors.push(FieldError::about("metadata", "must be valid JSON"));
    }
    match body.get("restrictions") {
        None | Some(Value::Null) => {}
        Some(v) => match Restrictions::parse(v) {
            Ok(_) => record.restrictions = Some(v.clone()),
            Err(e) => errors.push(FieldError::new("restrictions", e)),
        },
    }
    match body.get("permissions") {
        None | Some(Value::Null) => {}
        Some(v) if !requested_permission_errors(v).is_empty() => {
            errors.extend(requested_permission_errors(v));
        }
        Some(v) => match Permissions::parse(v) {
            Ok(_) => record.permissions = Some(v.clone()),
            Err(e) => errors.push(FieldError::new(
                "permissions",
                format!("\"permissions\" {e}"),
            )),
        },
    }
    if record.account.is_none()
        && record.permissions.is_none()
        && !errors.iter().any(|e| e.key == "permissions")
    {
        errors.push(FieldError::new(
            "permissions",
            "A token with no account must set permissions, so that an instance-wide credential is always a narrowed one",
        ));
    }
    if let Some(expires) = string("expires", 64, &mut errors) {
        match parse_iso_time(&expires) {
            None => errors.push(FieldError::about(
                "expires",
                "must be in ISO 8601 date format",
            )),
            Some(ms) if ms <= chrono::Utc::now().timestamp_millis() => {
                errors.push(FieldError::about("expires", "must be greater than \"now\""))
            }
            Some(ms) => record.expires = Some(ms),
        }
    }
    record.ip = string("ip", 64, &mut errors);
    if let Some(ip) = &record.ip
        && ip.parse::<std::net::IpAddr>().is_err()
    {
        errors.push(FieldError::about("ip", "must be a valid ip address"));
    }
    if errors.is_empty() {
        Ok(record)
    } else {
        Err(errors)
    }
}

/// What a client may ask for beyond a well-formed narrowing: every axis names at least one
/// value (an empty list would mint a token that can do nothing), and `admin` is not a group
/// that can be granted. EmailEngine's schema labels the values `TokenAction` / `TokenGroup`.
fn requested_permission_errors(v: &Value) -> Vec<FieldError> {
    use emailengine_core::permissions::{Action, Group};
    let mut errors = Vec::new();
    let Value::Object(axes) = v else {
        return errors;
    };
    for (axis, label, allowed) in [
        (
            "actions",
            "TokenAction",
            Action::ALL.iter().map(|a| a.as_str()).collect::<Vec<_>>(),
        ),
        (
            "groups",
            "TokenGroup",
            Group::ALL
                .iter()
                .filter(|g| **g != Group::Admin)
                .map(|g| g.as_str())
                .collect(),
        ),
    ] {
        let Some(Value::Array(items)) = axes.get(axis) else {
            continue;
        };
        let at = format!("permissions.{axis}");
        if items.is_empty() {
            errors.push(FieldError::new(
                at.clone(),
                format!("\"{axis}\" must contain at least 1 items"),
            ));
        }
        for (i, item) in items.iter().enumerate() {
            if !item.as_str().is_some_and(|n| allowed.contains(&n)) {
                errors.push(FieldError::new(
                    format!("{at}[{i}]"),
                    format!("\"{label}\" must be one of [{}]", allowed.join(", ")),
                ));
            }
        }
    }
    errors
}

/// One token as the API lists it.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TokenInfo {
    pub id: String,
    pub account: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub metadata: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ip: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub remote_address: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scopes: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub restrictions: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub permissions: Option<Value>,
    pub created: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expires: Option<String>,
    pub access: AccessInfo,
}

#[derive(Serialize, ToSchema)]
pub struct AccessInfo {
    /// Last time the token was used.
    pub time: Option<String>,
    /// Address it was last used from.
    pub ip: Option<String>,
}

fn token_info(state: &AppState, stored: StoredToken) -> TokenInfo {
    let access = state
        .activity
        .pending_access(&stored.id)
        .unwrap_or(stored.access);
    let r = stored.record;
    TokenInfo {
        id: stored.id,
        account: r.account,
        description: r.description,
        metadata: r.metadata,
        ip: r.ip,
        remote_address: r.remote_address,
        scopes: r.scopes,
        restrictions: r.restrictions,
        permissions: r.permissions,
        created: iso_time(r.created),
        expires: r.expires.and_then(iso_time),
        access: AccessInfo {
            time: access.time.and_then(iso_time),
            ip: access.ip,
        },
    }
}

/// Loads tokens by id, dropping (and removing) expired ones.
async fn load_live(state: &AppState, ids: &[String]) -> ApiResult<Vec<StoredToken>> {
    let now = chrono::Utc::now().timestamp_millis();
    let (live, expired): (Vec<_>, Vec<_>) = state
        .store
        .tokens(ids)
        .await?
        .into_iter()
        .partition(|t| !t.record.is_expired(now));
    for t in expired {
        state.store.delete_token(&t.id).await?;
    }
    Ok(live)
}

#[derive(Serialize, ToSchema)]
pub struct TokenList {
    pub account: Option<String>,
    pub total: usize,
    pub page: usize,
    pub pages: usize,
    pub tokens: Vec<TokenInfo>,
}

/// List access tokens
#[utoipa::path(get, path = "/v1/tokens", tag = "Access Tokens",
    params(
        ("account" = Option<String>, Query, description = "Only tokens bound to this account"),
        ("query" = Option<String>, Query, description = "Substring of id, description or account"),
        ("page" = Option<u32>, Query, minimum = 0, maximum = 1048576, description = "Page number, from 0"),
        ("pageSize" = Option<u32>, Query, minimum = 1, maximum = 1000, description = "Tokens per page (1..1000, default 20)"),
    ),
    responses((status = 200, body = TokenList)),
    extensions(("x-ee-group" = json!("admin")), ("x-ee-action" = json!("read")), ("x-ee-account" = json!("query"))),
    security(("bearerAuth" = [])))]
pub async fn list(
    State(state): State<AppState>,
    mut query: QueryParams,
) -> ApiResult<Json<TokenList>> {
    let page = query.int("page", 0, 1_048_576, 0) as usize;
    let page_size = query.int("pageSize", 1, 1000, 20) as usize;
    let account = query.string("account", 256);
    let needle = query.string("query", 256).map(|q| q.to_lowercase());
    query.finish()?;
    let mut ids = state.store.token_ids(account.as_deref()).await?;
    ids.sort_unstable_by(|a, b| b.cmp(a));
    let mut tokens = load_live(&state, &ids).await?;
    if let Some(n) = &needle {
        tokens.retain(|t| {
            t.id.contains(n.as_str())
                || t.record
                    .description
                    .as_deref()
                    .is_some_and(|d| d.to_lowercase().contains(n.as_str()))
                || t.record
                    .account
                    .as_deref()
                    .is_some_and(|a| a.to_lowercase().contains(n.as_str()))
        });
    }
    let total = tokens.len();
    let pages = total.div_ceil(page_size);
    let items = tokens
        .into_iter()
        .skip(page.saturating_mul(page_size))
        .take(page_size)
        .map(|t| token_info(&state, t))
        .collect();
    Ok(Json(TokenList {
        account,
        total,
        page,
        pages,
        tokens: items,
    }))
}

fn id_param(token: &str) -> ApiResult<()> {
    if is_hex64(token) {
        Ok(())
    } else {
        Err(ApiError::field(
            "token",
            "must be a 64-character hex string",
        ))
    }
}

/// Get access token details
#[utoipa::path(get, path = "/v1/tokens/{token}", tag = "Access Tokens",
    params(("token" = String, Path, pattern = "^[0-9a-fA-F]{64}$", description = "Token id")),
    responses((status = 200, body = TokenInfo), (status = 404, description = "Not found")),
    extensions(("x-ee-group" = json!("admin")), ("x-ee-action" = json!("read"))),
    security(("bearerAuth" = [])))]
pub async fn get_one(
    State(state): State<AppState>,
    Path(token): Path<String>,
) -> ApiResult<Json<TokenInfo>> {
    id_param(&token)?;
    let id = token.to_ascii_lowercase();
    load_live(&state, &[id])
        .await?
        .into_iter()
        .next()
        .map(|t| Json(token_info(&state, t)))
        .ok_or_else(|| {
            ApiError::not_found("Requested access token was not found").with("code", "NotFound")
        })
}

#[derive(Serialize, ToSchema)]
pub struct Deleted {
    pub deleted: bool,
}

/// Remove an access token
///
/// The path takes the token id or the token value itself.
#[utoipa::path(delete, path = "/v1/tokens/{token}", tag = "Access Tokens",
    params(("token" = String, Path, pattern = "^[0-9a-fA-F]{64}$", description = "Token id or value")),
    responses((status = 200, body = Deleted)),
    extensions(("x-ee-group" = json!("admin")), ("x-ee-action" = json!("destructive"))),
    security(("bearerAuth" = [])))]
pub async fn delete(
    State(state): State<AppState>,
    Path(token): Path<String>,
) -> ApiResult<Json<Deleted>> {
    id_param(&token)?;
    let as_id = token.to_ascii_lowercase();
    let mut deleted = state.store.delete_token(&as_id).await?;
    let mut id = as_id;
    if !deleted && let Ok(value) = TokenValue::parse(&token) {
        id = value.id();
        deleted = state.store.delete_token(&id).await?;
    }
    if deleted {
        state.store.delete_token_audit(&id).await?;
    }
    Ok(Json(Deleted { deleted }))
}

/// Show a token's audit log
///
/// Requests made with the token, newest first, while the `tokenAuditLog` setting is on
/// (up to 1000 entries, kept 7 days after the last one).
#[utoipa::path(get, path = "/v1/tokens/{token}/log", tag = "Access Tokens",
    params(("token" = String, Path, pattern = "^[0-9a-fA-F]{64}$", description = "Token id"),
        ("page" = Option<u32>, Query, minimum = 0, maximum = 1048576, description = "Page number, from 0"),
        ("pageSize" = Option<u32>, Query, minimum = 1, maximum = 200, description = "Entries per page (1..200, default 20)")),
    responses((status = 200, description = "`{token, total, page, pages, entries: [{time, ip, method, path, action, group, account, status, reason}]}`", body = Object),
        (status = 404, description = "Not found")),
    extensions(("x-ee-group" = json!("admin")), ("x-ee-action" = json!("read"))),
    security(("bearerAuth" = [])))]
pub async fn audit_log(
    State(state): State<AppState>,
    Path(token): Path<String>,
    mut query: QueryParams,
) -> ApiResult<Json<Value>> {
    let page = query.int("page", 0, 1_048_576, 0) as usize;
    let page_size = query.int("pageSize", 1, 200, 20) as usize;
    query.finish()?;
    id_param(&token)?;
    let id = token.to_ascii_lowercase();
    if state.store.token(&id).await?.is_none() {
        return Err(
            ApiError::not_found("Requested access token was not found").with("code", "NotFound")
        );
    }
    let (total, raw) = state
        .store
        .token_audit(&id, page * page_size, page_size)
        .await?;
    let entries: Vec<Value> = raw
        .iter()
        .filter_map(|b| emailengine_core::msgpack::decode(b))
        .map(|v| {
            let mut e = emailengine_core::msgpack::to_json(&v);
            if let Some(ms) = e.get("time").and_then(Value::as_i64) {
                e["time"] = iso_time(ms).map_or(Value::Null, Value::from);
            }
            e
        })
        .collect();
    Ok(Json(serde_json::json!({
        "token": id, "total": total, "page": page,
        "pages": (total as usize).div_ceil(page_size), "entries": entries,
    })))
}

/// Remove an access token (deprecated alias)
#[utoipa::path(delete, path = "/v1/token/{token}", tag = "Access Tokens",
    params(("token" = String, Path, pattern = "^[0-9a-fA-F]{64}$", description = "Token id or value")),
    responses((status = 200, body = Deleted)),
    extensions(("x-ee-group" = json!("admin")), ("x-ee-action" = json!("destructive"))),
    security(("bearerAuth" = [])))]
pub async fn delete_deprecated(
    state: State<AppState>,
    token: Path<String>,
) -> ApiResult<Json<Deleted>> {
    delete(state, token).await
}

#[derive(Serialize, ToSchema)]
pub struct AccountTokens {
    pub tokens: Vec<TokenInfo>,
}

/// List the tokens of an account (deprecated)
#[utoipa::path(get, path = "/v1/tokens/account/{account}", tag = "Access Tokens",
    params(("account" = String, Path, description = "Account id")),
    responses((status = 200, body = AccountTokens)),
    extensions(("x-ee-group" = json!("admin")), ("x-ee-action" = json!("read"))),
    security(("bearerAuth" = [])))]
pub async fn list_for_account(
    State(state): State<AppState>,
    Path(account): Path<String>,
) -> ApiResult<Json<AccountTokens>> {
    let mut ids = state.store.token_ids(Some(&account)).await?;
    ids.sort_unstable_by(|a, b| b.cmp(a));
    ids.truncate(1000);
    let tokens = load_live(&state, &ids).await?;
    Ok(Json(AccountTokens {
        tokens: tokens.into_iter().map(|t| token_info(&state, t)).collect(),
    }))
}
