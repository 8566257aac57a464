//! OAuth2 applications (spec §14): the client registrations that OAuth2 accounts name in
//! `oauth2.provider`, stored as EmailEngine stores them (`oapp:*`, secrets `$wd01$`-encrypted).
//! All routes are admin-only.

use axum::Json;
use axum::extract::{Path, State};
use serde_json::{Value, json};

use emailengine_oauth::app::storage::{
    decode_data, decode_meta, decode_record, encode_data, encode_meta,
};
use emailengine_oauth::app::validate::{apply_update, validate_create, validate_update};
use emailengine_oauth::app::view::api_view;
use emailengine_oauth::app::{BaseScopes, OAuthApp, app_id};

use crate::error::{ApiError, ApiResult};
use crate::extract::{JsonObject, QueryParams};
use crate::state::AppState;

fn not_found() -> ApiError {
    ApiError::not_found("Document was not found").with("code", "NotFound")
}

fn corrupt(e: impl std::fmt::Display) -> ApiError {
    ApiError::internal(e.to_string()).with("code", "InternalConfigError")
}

fn is_pubsub(app: &OAuthApp) -> bool {
    app.base_scopes == Some(BaseScopes::Pubsub)
}

/// List OAuth2 applications
#[utoipa::path(get, path = "/v1/oauth2", tag = "OAuth2 Applications",
    params(("page" = Option<u32>, Query, minimum = 0, maximum = 1048576, description = "Page number, from 0"),
        ("pageSize" = Option<u32>, Query, minimum = 1, maximum = 1000, description = "Entries per page (1..1000, default 20)")),
    responses((status = 200, description = "`{total, page, pages, apps: [app]}` (secrets shown as `******`)", body = Object)),
    extensions(("x-ee-group" = json!("admin")), ("x-ee-action" = json!("read"))),
    security(("bearerAuth" = [])))]
pub async fn list(State(state): State<AppState>, mut query: QueryParams) -> ApiResult<Json<Value>> {
    let page = query.int("page", 0, 1_048_576, 0) as usize;
    let page_size = query.int("pageSize", 1, 1000, 20) as usize;
    query.finish()?;
    let mut ids = state.store.app_ids().await?;
    ids.sort_unstable_by(|a, b| b.cmp(a));
    let total = ids.len();
    let mut apps = Vec::new();
    for id in ids.iter().skip(page * page_size).take(page_size) {
        if let Some((data, meta)) = state.store.app(id).await? {
            let app = decode_record(&data).map_err(corrupt)?;
            let meta = meta.map(|m| decode_meta(&m));
            apps.push(Value::Object(api_view(&app, meta.as_ref())));
        }
    }
    Ok(Json(json!({
        "total": total, "page": page, "pages": total.div_ceil(page_size), "apps": apps,
    })))
}

/// Get an OAuth2 application
#[utoipa::path(get, path = "/v1/oauth2/{app}", tag = "OAuth2 Applications",
    params(("app" = String, Path, description = "App id")),
    responses((status = 200, description = "The app (secrets shown as `******`) and `accounts`: the number of accounts using it", body = Object),
        (status = 404, description = "Not found")),
    extensions(("x-ee-group" = json!("admin")), ("x-ee-action" = json!("read"))),
    security(("bearerAuth" = [])))]
pub async fn get_one(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    let (data, meta) = state.store.app(&id).await?.ok_or_else(not_found)?;
    let app = decode_record(&data).map_err(corrupt)?;
    let meta = meta.map(|m| decode_meta(&m));
    let mut view = api_view(&app, meta.as_ref());
    view.insert(
        "accounts".into(),
        json!(state.store.app_account_count(&id).await?),
    );
    Ok(Json(Value::Object(view)))
}

/// Register an OAuth2 application
///
/// Providers: `gmail`, `gmailService`, `outlook`, `outlookService`, `mailRu`, and `oauth2`
/// (any standards-compliant authorization server). Fields of other providers must be absent.
#[utoipa::path(post, path = "/v1/oauth2", tag = "OAuth2 Applications",
    request_body(content = Object, description = "The app record (spec §14.3)"),
    responses((status = 200, description = "`{id, created: true}`", body = Object), (status = 400, description = "Invalid input")),
    extensions(("x-ee-group" = json!("admin")), ("x-ee-action" = json!("write"))),
    security(("bearerAuth" = [])))]
pub async fn create(
    State(state): State<AppState>,
    JsonObject(body): JsonObject,
) -> ApiResult<Json<Value>> {
    let mut app = validate_create(&body).map_err(ApiError::invalid_input)?;
    let now = chrono::Utc::now().timestamp_millis();
    let counter = state.store.increment_setting("idcount").await?;
    let id = app_id(now as u64, counter as u32);
    let iso = emailengine_core::units::iso_time(now).unwrap_or_default();
    app.id = Some(id.clone());
    app.created = Some(iso.clone());
    app.updated = Some(iso);
    let data = encode_data(&app, state.cipher.as_deref());
    state
        .store
        .put_app(&id, &data, None, is_pubsub(&app))
        .await?;
    Ok(Json(json!({"id": id, "created": true})))
}

/// Update an OAuth2 application
///
/// Any subset of the app's fields (its `provider` cannot change); an empty secret keeps the
/// stored one.
#[utoipa::path(put, path = "/v1/oauth2/{app}", tag = "OAuth2 Applications",
    params(("app" = String, Path, description = "App id")),
    request_body(content = Object, description = "Fields to change"),
    responses((status = 200, description = "`{id, updated: true}`", body = Object),
        (status = 400, description = "Invalid input"), (status = 404, description = "Not found")),
    extensions(("x-ee-group" = json!("admin")), ("x-ee-action" = json!("write"))),
    security(("bearerAuth" = [])))]
pub async fn update(
    State(state): State<AppState>,
    Path(id): Path<String>,
    JsonObject(body): JsonObject,
) -> ApiResult<Json<Value>> {
    let (data, meta) = state.store.app(&id).await?.ok_or_else(not_found)?;
    let stored = decode_data(&data, state.cipher.as_deref()).map_err(corrupt)?;
    let changes = validate_update(stored.provider, &body).map_err(ApiError::invalid_input)?;
    let now = emailengine_core::units::iso_time(chrono::Utc::now().timestamp_millis())
        .unwrap_or_default();
    let app = apply_update(&stored, &changes, &now).map_err(ApiError::invalid_input)?;
    let data = encode_data(&app, state.cipher.as_deref());
    // An edit clears the app's authentication flag: the next token request tells anew.
    let meta = meta.map(|m| {
        let mut meta = decode_meta(&m);
        meta.auth_flag = None;
        encode_meta(&meta)
    });
    state
        .store
        .put_app(&id, &data, meta.as_deref(), is_pubsub(&app))
        .await?;
    Ok(Json(json!({"id": id, "updated": true})))
}

/// Delete an OAuth2 application
///
/// Accounts that use it are kept (they report `type: "oauth2"` until given another app).
#[utoipa::path(delete, path = "/v1/oauth2/{app}", tag = "OAuth2 Applications",
    params(("app" = String, Path, description = "App id")),
    responses((status = 200, description = "`{id, deleted, accounts}`", body = Object)),
    extensions(("x-ee-group" = json!("admin")), ("x-ee-action" = json!("destructive"))),
    security(("bearerAuth" = [])))]
pub async fn delete(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    let removed = state.store.delete_app(&id).await?;
    Ok(Json(json!({
        "id": id, "deleted": removed.is_some(), "accounts": removed.unwrap_or(0),
    })))
}
