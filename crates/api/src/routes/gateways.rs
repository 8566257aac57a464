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

/// The request body of gateway writes, for the OpenAPI document.
fn gateway_body(create: bool) -> Value {
    let optional = |max: u32| json!({"type": ["string", "null"], "maxLength": max});
    let mut body = json!({
        "type": "object",
        "additionalProperties": false,
        "properties": {
            "name": {"type": "string", "minLength": 1, "maxLength": 256},
            "host": {"type": "string", "minLength": 1, "maxLength": 256},
            "port": {"type": "integer", "minimum": 1, "maximum": 65535},
            "secure": {"type": ["boolean", "null"]},
            "user": optional(1024),
            "pass": optional(1024),
        },
    });
    if create {
        body["properties"]["gateway"] =
            json!({"type": ["string", "null"], "minLength": 1, "maxLength": 256});
        body["required"] = json!(["gateway", "name", "host", "port"]);
    }
    body
}

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
    if let Some(user) = string("user", 1024, false) {
        gateway.user = user;
    }
    if let Some(pass) = string("pass", 1024, false) {
        gateway.pass = pass;
    }
    // The name and the host are never empty.
    for (key, slot) in [("name", &mut gateway.name), ("host", &mut gateway.host)] {
        match body.get(key) {
            None if create => errors.push(FieldError::about(key, "is required")),
            None => {}
            Some(Value::String(s)) if !s.is_empty() && s.chars().count() <= 256 => {
                *slot = s.clone()
            }
            Some(_) => errors.push(FieldError::about(
                key,
                "must be a string of 1 to 256 characters",
            )),
        }
    }
    match body.get("port") {
        None if create => errors.push(FieldError::about("port", "is required")),
        None => {}
        // An integral number, as JSON Schema's `integer` (32924.0 included).
        Some(v) => match v
            .as_f64()
            .filter(|f| f.fract() == 0.0 && (1.0..=65535.0).contains(f))
            .map(|f| f as u16)
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
    params(("page" = Option<u32>, Query, minimum = 0, maximum = 1048576, description = "Page number, from 0"),
        ("pageSize" = Option<u32>, Query, minimum = 1, maximum = 1000, description = "Entries per page (1..1000, default 20)")),
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
    responses((status = 200, description = "`{gateway, state: new|existing}`", body = Object),
        (status = 400, description = "Invalid input")),
    extensions(("x-ee-group" = json!("admin")), ("x-ee-action" = json!("write")),
        ("x-ee-body" = json!(gateway_body(true)))),
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
    responses((status = 200, description = "`{gateway}`", body = Object), (status = 404, description = "Not found")),
    extensions(("x-ee-group" = json!("admin")), ("x-ee-action" = json!("write")),
        ("x-ee-body" = json!(gateway_body(false)))),
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
