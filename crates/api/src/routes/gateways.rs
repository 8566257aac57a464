//! SMTP gateways (spec §22): relays a submission can name (`gateway`) to be sent through
//! instead of the account's own SMTP server. Reads are group `gateway`; writes are admin.

use axum::Json;
use axum::extract::{Path, State};
use serde_json::{Map, Value, json};

use emailengine_core::gateway::{Gateway, new_gateway_id};
use emailengine_core::validation::FieldError;

use crate::error::{ApiError, ApiResult};
use crate::extract::{JsonObject, QueryParams};
use crate::state::AppState;

fn not_found() -> ApiError {
    ApiError::not_found("Gateway record was not found for requested ID").with("code", "NotFound")
}

/// Loads a gateway with its password readable.
pub async fn load(state: &AppState, id: &str) -> ApiResult<Option<Gateway>> {
    let Some(fields) = state.store.gateway(id).await? else {
        return Ok(None);
    };
    Gateway::from_fields(id, &fields, state.cipher.as_deref())
        .map(Some)
        .map_err(|e| ApiError::internal(e.to_string()).with("code", "InternalConfigError"))
}

/// Validates the fields of a create (all required ones present) or an edit (any subset) onto
/// `gateway`.
fn apply(
    body: &Map<String, Value>,
    gateway: &mut Gateway,
    create: bool,
) -> Result<(), Vec<FieldError>> {
    let mut errors = Vec::new();
    let allowed: &[&str] = if create {
        &["gateway", "name", "user", "pass", "host", "port", "secure"]
    } else {
        &["name", "user", "pass", "host", "port", "secure"]
    };
    for key in body.keys() {
        if !allowed.contains(&key.as_str()) {
            errors.push(FieldError::about(key, "is not allowed"));
        }
    }
    let mut string = |key: &str, max: usize, required: bool| -> Option<Option<String>> {
        match body.get(key) {
            None if required => {
                errors.push(FieldError::about(key, "is required"));
                None
            }
            None => None,
            Some(Value::Null) if !required => Some(None),
            Some(Value::String(s)) if !s.is_empty() && s.chars().count() <= max => {
                Some(Some(s.clone()))
            }
            Some(Value::String(s)) if s.is_empty() && !required => Some(None),
            Some(_) => {
                errors.push(FieldError::about(
                    key,
                    &format!("must be a string of at most {max} characters"),
                ));
                None
            }
        }
    };
    if let Some(Some(name)) = string("name", 256, create) {
        gateway.name = name;
    }
    if let Some(user) = string("user", 1024, false) {
        gateway.user = user;
    }
    if let Some(pass) = string("pass", 1024, false) {
        gateway.pass = pass;
    }
    if let Some(Some(host)) = string("host", 256, create) {
        gateway.host = host;
    }
    match body.get("port") {
        None if create => errors.push(FieldError::about("port", "is required")),
        None => {}
        Some(v) => match v
            .as_u64()
            .and_then(|p| u16::try_from(p).ok())
            .filter(|p| *p > 0)
        {
            Some(p) => gateway.port = p,
            None => errors.push(FieldError::about("port", "must be a valid port")),
        },
    }
    match body.get("secure") {
        None | Some(Value::Null) => {}
        Some(Value::Bool(b)) => gateway.secure = *b,
        Some(_) => errors.push(FieldError::about("secure", "must be a boolean")),
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(errors)
    }
}

/// List SMTP gateways
#[utoipa::path(get, path = "/v1/gateways", tag = "SMTP Gateways",
    params(("page" = Option<u32>, Query, description = "Page number, from 0"),
        ("pageSize" = Option<u32>, Query, description = "Entries per page (1..1000, default 20)")),
    responses((status = 200, description = "`{total, page, pages, gateways: [{gateway, name, deliveries, lastUse, lastError}]}`", body = Object)),
    extensions(("x-ee-group" = json!("gateway")), ("x-ee-action" = json!("read"))),
    security(("bearerAuth" = [])))]
pub async fn list(State(state): State<AppState>, mut query: QueryParams) -> ApiResult<Json<Value>> {
    let page = query.int("page", 0, 1_048_576, 0) as usize;
    let page_size = query.int("pageSize", 1, 1000, 20) as usize;
    query.finish()?;
    let mut ids = state.store.gateway_ids().await?;
    ids.sort();
    let total = ids.len();
    let mut gateways = Vec::new();
    for id in ids.iter().skip(page * page_size).take(page_size) {
        if let Some(g) = load(&state, id).await? {
            gateways.push(g.summary_json());
        }
    }
    Ok(Json(json!({
        "total": total, "page": page, "pages": total.div_ceil(page_size), "gateways": gateways,
    })))
}

/// Get an SMTP gateway
#[utoipa::path(get, path = "/v1/gateway/{gateway}", tag = "SMTP Gateways",
    params(("gateway" = String, Path, description = "Gateway id")),
    responses((status = 200, description = "`{gateway, name, host, port, user, pass?, secure, deliveries, lastUse, lastError}` (the password shown as `******`)", body = Object),
        (status = 404, description = "Not found")),
    extensions(("x-ee-group" = json!("gateway")), ("x-ee-action" = json!("read"))),
    security(("bearerAuth" = [])))]
pub async fn get_one(
    State(state): State<AppState>,
    Path(gateway): Path<String>,
) -> ApiResult<Json<Value>> {
    let g = load(&state, &gateway).await?.ok_or_else(not_found)?;
    Ok(Json(g.details_json()))
}

/// Register an SMTP gateway
///
/// `gateway: null` generates an id; an existing id gets its fields overwritten.
#[utoipa::path(post, path = "/v1/gateway", tag = "SMTP Gateways",
    request_body(content = Object, description = "`{gateway, name, host, port, secure?, user?, pass?}`"),
    responses((status = 200, description = "`{gateway, state: new|existing}`", body = Object),
        (status = 400, description = "Invalid input")),
    extensions(("x-ee-group" = json!("admin")), ("x-ee-action" = json!("write"))),
    security(("bearerAuth" = [])))]
pub async fn create(
    State(state): State<AppState>,
    JsonObject(body): JsonObject,
) -> ApiResult<Json<Value>> {
    let id = match body.get("gateway") {
        None => return Err(ApiError::field("gateway", "is required")),
        Some(Value::Null) => new_gateway_id(),
        Some(Value::String(s)) if !s.is_empty() && s.len() <= 256 => s.clone(),
        Some(_) => return Err(ApiError::field("gateway", "must be a string")),
    };
    let mut gateway = Gateway {
        id: id.clone(),
        ..Default::default()
    };
    apply(&body, &mut gateway, true).map_err(ApiError::invalid_input)?;
    let added = state
        .store
        .put_gateway(&id, &gateway.config_fields(state.cipher.as_deref()), &[])
        .await?;
    Ok(Json(
        json!({"gateway": id, "state": if added { "new" } else { "existing" }}),
    ))
}

/// Update an SMTP gateway
#[utoipa::path(put, path = "/v1/gateway/edit/{gateway}", tag = "SMTP Gateways",
    params(("gateway" = String, Path, description = "Gateway id")),
    request_body(content = Object, description = "Any of `{name, host, port, secure, user, pass}` (`pass: null` removes it)"),
    responses((status = 200, description = "`{gateway}`", body = Object), (status = 404, description = "Not found")),
    extensions(("x-ee-group" = json!("admin")), ("x-ee-action" = json!("write"))),
    security(("bearerAuth" = [])))]
pub async fn update(
    State(state): State<AppState>,
    Path(id): Path<String>,
    JsonObject(body): JsonObject,
) -> ApiResult<Json<Value>> {
    let mut gateway = load(&state, &id).await?.ok_or_else(not_found)?;
    apply(&body, &mut gateway, false).map_err(ApiError::invalid_input)?;
    let remove: &[&str] = if gateway.pass.is_none() {
        &["pass"]
    } else {
        &[]
    };
    state
        .store
        .put_gateway(&id, &gateway.config_fields(state.cipher.as_deref()), remove)
        .await?;
    Ok(Json(json!({"gateway": id})))
}

/// Delete an SMTP gateway
#[utoipa::path(delete, path = "/v1/gateway/{gateway}", tag = "SMTP Gateways",
    params(("gateway" = String, Path, description = "Gateway id")),
    responses((status = 200, description = "`{gateway, deleted: true}`", body = Object), (status = 404, description = "Not found")),
    extensions(("x-ee-group" = json!("gateway")), ("x-ee-action" = json!("destructive"))),
    security(("bearerAuth" = [])))]
pub async fn delete(
    State(state): State<AppState>,
    Path(gateway): Path<String>,
) -> ApiResult<Json<Value>> {
    if !state.store.delete_gateway(&gateway).await? {
        return Err(not_found());
    }
    Ok(Json(json!({"gateway": gateway, "deleted": true})))
}
