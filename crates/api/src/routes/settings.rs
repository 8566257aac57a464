//! `GET /v1/settings` and `POST /v1/settings` over the `settings` hash (spec §5.6).

use axum::Json;
use axum::extract::State;
use serde::Serialize;
use serde_json::{Map, Value};
use utoipa::ToSchema;

use emailengine_core::settings::{self, EVENT_TYPES};

use crate::error::{ApiError, ApiResult};
use crate::extract::{JsonObject, QueryParams};
use crate::state::AppState;

/// Read settings
///
/// Each query parameter `<key>=true` returns that setting; `eventTypes=true` lists webhook event
/// names. Secret settings are reported as `true`/`false` (set or not), credentials in URLs and
/// custom header values as `******`. Unset settings are left out.
#[utoipa::path(get, path = "/v1/settings", tag = "Settings",
    params(
        ("eventTypes" = Option<bool>, Query, description = "Include the list of webhook event names"),
        ("webhooks" = Option<bool>, Query, description = "Include the webhook URL"),
        ("webhooksEnabled" = Option<bool>, Query, description = "Include the webhook switch"),
        ("serviceUrl" = Option<bool>, Query, description = "Include the public URL of this server"),
    ),
    responses((status = 200, description = "The requested settings", body = Object)),
    extensions(("x-ee-group" = json!("admin")), ("x-ee-action" = json!("read"))),
    security(("bearerAuth" = [])))]
pub async fn get_settings(
    State(state): State<AppState>,
    mut query: QueryParams,
) -> ApiResult<Json<Map<String, Value>>> {
    let mut wanted: Vec<String> = Vec::new();
    let keys: Vec<String> = query.keys().map(str::to_string).collect();
    let mut event_types = false;
    for key in keys {
        let known = key == "eventTypes"
            || settings::definition(&key).is_some()
            || settings::is_encrypted_key(&key);
        if !known {
            query.reject(&key, "is not allowed");
            continue;
        }
        if query.bool(&key) != Some(true) || wanted.contains(&key) {
            continue;
        }
        if key == "eventTypes" {
            event_types = true;
        } else {
            wanted.push(key);
        }
    }
    query.finish()?;
    let names: Vec<&str> = wanted.iter().map(String::as_str).collect();
    let values = state.settings.get(&names).await?;
    let mut out = Map::new();
    for (key, value) in names.iter().zip(values) {
        if let Some(v) = value {
            out.insert(key.to_string(), settings::display_value(key, v));
        } else if settings::is_encrypted_key(key) {
            out.insert(key.to_string(), Value::Bool(false));
        }
    }
    if event_types {
        out.insert(
            "eventTypes".into(),
            Value::Array(EVENT_TYPES.iter().map(|e| Value::from(*e)).collect()),
        );
    }
    Ok(Json(out))
}

#[derive(Serialize, ToSchema)]
pub struct SettingsUpdated {
    /// Keys that were written.
    pub updated: Vec<String>,
}

/// Set settings
///
/// Accepts any of the settings keys; each is validated, then all are written at once. A value
/// sent back exactly as `GET /v1/settings` shows it (masked URL credentials, masked header
/// values, `true` for a set secret) changes nothing and is not listed in `updated`; a mask that
/// does not stand for the stored value is refused with 400.
#[utoipa::path(post, path = "/v1/settings", tag = "Settings",
    request_body(content = Object, description = "Settings to write, e.g. {\"webhooks\": \"https://example.com/hook\", \"webhooksEnabled\": true}"),
    responses((status = 200, body = SettingsUpdated), (status = 400, description = "Invalid input")),
    extensions(("x-ee-group" = json!("admin")), ("x-ee-action" = json!("write"))),
    security(("bearerAuth" = [])))]
pub async fn set_settings(
    State(state): State<AppState>,
    JsonObject(body): JsonObject,
) -> ApiResult<Json<SettingsUpdated>> {
    if body.is_empty() {
        return Err(ApiError::invalid_input(vec![
            emailengine_core::validation::FieldError::new(
                "value",
                "\"value\" must have at least 1 key",
            ),
        ]));
    }
    let body = resolve_masks(&state, body).await?;
    let values = settings::validate(&body).map_err(ApiError::invalid_input)?;
    if !values.is_empty() {
        state.settings.set(&values).await?;
        state.events.forget_cached_settings();
    }
    if values.iter().any(|(k, _)| k == "tokenAuditLog") {
        *state.audit_enabled.write().await = None;
    }
    Ok(Json(SettingsUpdated {
        updated: values.into_iter().map(|(k, _)| k).collect(),
    }))
}

/// Drops settings sent back exactly as `GET /v1/settings` showed them and fills masked header
/// values from the stored ones, so a read-modify-write never stores `******` over a secret.
async fn resolve_masks(
    state: &AppState,
    body: Map<String, Value>,
) -> ApiResult<Map<String, Value>> {
    let masked: Vec<&str> = body
        .keys()
        .map(String::as_str)
        .filter(|k| settings::is_masked_key(k))
        .collect();
    if masked.is_empty() {
        return Ok(body);
    }
    let stored = state.settings.get(&masked).await?;
    let stored: Map<String, Value> = masked
        .iter()
        .zip(stored)
        .filter_map(|(k, v)| Some((k.to_string(), v?)))
        .collect();
    let mut out = Map::new();
    let mut errors = Vec::new();
    for (key, value) in body {
        if !settings::is_masked_key(&key) {
            out.insert(key, value);
            continue;
        }
        match settings::resolve_masked(&key, &value, stored.get(&key)) {
            Ok(settings::Submitted::Echo) => {}
            Ok(settings::Submitted::Write(v)) => {
                out.insert(key, v);
            }
            Err(e) => errors.push(e),
        }
    }
    if errors.is_empty() {
        Ok(out)
    } else {
        Err(ApiError::invalid_input(errors))
    }
}
