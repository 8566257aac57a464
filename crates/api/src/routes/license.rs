//! `GET|POST|DELETE /v1/license` (spec §5.8): this server needs no licence, but clients and
//! deployments written for EmailEngine set one. The key is kept and reported, never enforced.

use axum::Json;
use axum::extract::State;
use serde_json::Value;

use emailengine_core::license::{self, LICENSE_KEY_FIELD, License};
use emailengine_core::validation::FieldError;

use crate::error::{ApiError, ApiResult};
use crate::extract::JsonObject;
use crate::state::AppState;

async fn stored(state: &AppState) -> ApiResult<Option<License>> {
    let raw = state.store.raw_settings(&[LICENSE_KEY_FIELD]).await?;
    Ok(raw
        .into_iter()
        .next()
        .flatten()
        .and_then(|t| License::parse(&t).ok()))
}

/// Show the licence
///
/// `{active, type, details, suspended}`; without a key `active` is false and nothing is limited.
#[utoipa::path(get, path = "/v1/license", tag = "License",
    responses((status = 200, description = "`{active, type, details, suspended}`", body = Object)),
    extensions(("x-ee-group" = json!("admin")), ("x-ee-action" = json!("read"))),
    security(("bearerAuth" = [])))]
pub async fn get_license(State(state): State<AppState>) -> ApiResult<Json<Value>> {
    Ok(Json(license::describe(stored(&state).await?.as_ref())))
}

/// Register a licence key
#[utoipa::path(post, path = "/v1/license", tag = "License",
    responses((status = 200, description = "`{active, type, details, suspended}`", body = Object),
        (status = 400, description = "Invalid input")),
    extensions(("x-ee-group" = json!("admin")), ("x-ee-action" = json!("write")),
        ("x-ee-body" = json!({"type": "object", "additionalProperties": false, "required": ["license"],
            "properties": {"license": {"type": "string", "minLength": 1, "maxLength": 10240, "pattern": "\\S"}}}))),
    security(("bearerAuth" = [])))]
pub async fn set_license(
    State(state): State<AppState>,
    JsonObject(body): JsonObject,
) -> ApiResult<Json<Value>> {
    let mut errors: Vec<FieldError> = body
        .keys()
        .filter(|k| *k != "license")
        .map(|k| FieldError::about(k, "is not allowed"))
        .collect();
    let key = match body.get("license") {
        None => {
            errors.push(FieldError::about("license", "is required"));
            None
        }
        Some(Value::String(s)) => match License::parse(s) {
            Ok(l) => Some(l),
            Err(e) => {
                errors.push(FieldError::new("license", e.to_string()));
                None
            }
        },
        Some(_) => {
            errors.push(FieldError::about("license", "must be a string"));
            None
        }
    };
    let Some(key) = key.filter(|_| errors.is_empty()) else {
        return Err(ApiError::invalid_input(errors));
    };
    state
        .store
        .put_raw_settings(&[(LICENSE_KEY_FIELD.to_string(), key.text().to_string())])
        .await?;
    tracing::info!(key = %key.fingerprint(), "License key registered");
    Ok(Json(license::describe(Some(&key))))
}

/// Remove the licence key
#[utoipa::path(delete, path = "/v1/license", tag = "License",
    responses((status = 200, description = "`{active: false, type, details: false, suspended}`", body = Object)),
    extensions(("x-ee-group" = json!("admin")), ("x-ee-action" = json!("destructive"))),
    security(("bearerAuth" = [])))]
pub async fn delete_license(State(state): State<AppState>) -> ApiResult<Json<Value>> {
    state
        .store
        .put_raw_settings(&[(LICENSE_KEY_FIELD.to_string(), String::new())])
        .await?;
    Ok(Json(license::describe(None)))
}
