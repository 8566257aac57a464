//! Stored message templates (spec §18): public ones (no account) and per-account ones, kept in
//! EmailEngine's layout; the template id embeds its owner. Group `template`.

use axum::Json;
use axum::extract::{Extension, Path, State};
use serde_json::{Map, Value, json};

use emailengine_core::validation::FieldError;
use emailengine_sending::template::{TemplateContent, TemplateFormat};
use emailengine_sending::template_store::{
    TemplateMeta, decode_content, decode_template_id, encode_content, encode_template_id,
};

use crate::auth::AuthContext;
use crate::error::{ApiError, ApiResult};
use crate::extract::{JsonObject, QueryParams};
use crate::state::AppState;

/// The request body of template writes, for the OpenAPI document.
fn template_body(create: bool) -> Value {
    let text = |max: u32| json!({"type": ["string", "null"], "maxLength": max});
    let mut body = json!({
        "type": "object",
        "additionalProperties": false,
        "properties": {
            "name": {"type": "string", "minLength": 1, "maxLength": 256},
            "description": text(1024),
            "format": {"enum": ["html", "markdown"]},
            "content": {
                "type": "object",
                "additionalProperties": false,
                "properties": {
                    "subject": text(10_240), "text": text(5_242_880), "html": text(5_242_880),
                    "previewText": text(1024),
                },
            },
        },
    });
    if create {
        body["properties"]["account"] =
            json!({"type": ["string", "null"], "minLength": 1, "maxLength": 256});
        body["required"] = json!(["account", "name", "content"]);
    }
    body
}

fn not_found() -> ApiError {
    ApiError::not_found("Document was not found").with("code", "NotFound")
}

/// The owner a template id names; `Err` for an id that is not one of ours.
fn owner(id: &str) -> ApiResult<Option<String>> {
    decode_template_id(id)
        .map(|t| t.account)
        .map_err(|_| not_found())
}

fn text(
    body: &Map<String, Value>,
    key: &str,
    max: usize,
    errors: &mut Vec<FieldError>,
) -> Option<String> {
    match body.get(key) {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) if s.chars().count() <= max => Some(s.clone()),
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

fn format_of(body: &Map<String, Value>, errors: &mut Vec<FieldError>) -> Option<TemplateFormat> {
    match body.get("format") {
        None => None,
        Some(Value::String(f)) => TemplateFormat::parse(f).or_else(|| {
            errors.push(FieldError::about(
                "format",
                "must be one of [html, markdown]",
            ));
            None
        }),
        Some(_) => {
            errors.push(FieldError::about(
                "format",
                "must be one of [html, markdown]",
            ));
            None
        }
    }
}

fn content_of(body: &Map<String, Value>, errors: &mut Vec<FieldError>) -> Option<TemplateContent> {
    let value = body.get("content")?;
    let Value::Object(map) = value else {
        errors.push(FieldError::about("content", "must be of type object"));
        return None;
    };
    for key in map.keys() {
        if !["subject", "text", "html", "previewText"].contains(&key.as_str()) {
            errors.push(FieldError::about(
                &format!("content.{key}"),
                "is not allowed",
            ));
        }
    }
    let field = |k: &str, max: usize, errors: &mut Vec<FieldError>| text(map, k, max, errors);
    Some(TemplateContent {
        subject: field("subject", 10_240, errors),
        text: field("text", 5 * 1024 * 1024, errors),
        html: field("html", 5 * 1024 * 1024, errors),
        preview_text: field("previewText", 1024, errors),
    })
}

fn unknown_keys(body: &Map<String, Value>, allowed: &[&str], errors: &mut Vec<FieldError>) {
    for key in body.keys() {
        if !allowed.contains(&key.as_str()) {
            errors.push(FieldError::about(key, "is not allowed"));
        }
    }
}

/// Create a template
///
/// `account` is required (`null` for a public template); a token bound to an account always
/// creates templates for that account.
#[utoipa::path(post, path = "/v1/templates/template", tag = "Templates",
    responses((status = 200, description = "`{created: true, account, id}`", body = Object),
        (status = 400, description = "Invalid input"), (status = 404, description = "Account not found")),
    extensions(("x-ee-group" = json!("template")), ("x-ee-action" = json!("write")),
        ("x-ee-body" = json!(template_body(true)))),
    security(("bearerAuth" = [])))]
pub async fn create(
    State(state): State<AppState>,
    Extension(ctx): Extension<AuthContext>,
    JsonObject(body): JsonObject,
) -> ApiResult<Json<Value>> {
    let mut errors = Vec::new();
    unknown_keys(
        &body,
        &["account", "name", "description", "format", "content"],
        &mut errors,
    );
    let account = match body.get("account") {
        Some(Value::Null) => None,
        Some(Value::String(a)) if !a.is_empty() && a.len() <= 256 => Some(a.clone()),
        Some(_) => {
            errors.push(FieldError::about("account", "must be a string"));
            None
        }
        None => {
            errors.push(FieldError::about("account", "is required"));
            None
        }
    };
    let name = text(&body, "name", 256, &mut errors).filter(|n| !n.is_empty());
    if name.is_none() && !errors.iter().any(|e| e.key == "name") {
        errors.push(FieldError::about("name", "is required"));
    }
    let description = text(&body, "description", 1024, &mut errors);
    let format = format_of(&body, &mut errors).unwrap_or_default();
    let content = content_of(&body, &mut errors);
    if content.is_none() && !errors.iter().any(|e| e.key.starts_with("content")) {
        errors.push(FieldError::about("content", "is required"));
    }
    if !errors.is_empty() {
        return Err(ApiError::invalid_input(errors));
    }
    // A bound token writes into its own account, whatever the body says.
    let account = ctx.account.clone().or(account);
    if let Some(a) = &account
        && !state.store.account_exists(a).await?
    {
        return Err(
            ApiError::not_found("Account record was not found for requested ID")
                .with("code", "AccountNotFound"),
        );
    }
    let now = chrono::Utc::now().timestamp_millis();
    let counter = state.store.increment_setting("idcount").await?;
    let id = encode_template_id(now as u64, counter as u32, account.as_deref().unwrap_or(""));
    let meta = TemplateMeta {
        id: id.clone(),
        name: name.unwrap_or_default(),
        description,
        format,
        created: now,
        updated: None,
    };
    let content = content.unwrap_or_default();
    state
        .store
        .put_template(
            account.as_deref(),
            &id,
            &meta.encode(),
            &encode_content(&content),
        )
        .await?;
    Ok(Json(json!({"created": true, "account": account, "id": id})))
}

/// List templates
///
/// Without `account`, the public templates; with it, that account's. Sorted by id, newest
/// first.
#[utoipa::path(get, path = "/v1/templates", tag = "Templates",
    params(("account" = Option<String>, Query, max_length = 256, description = "Account id"),
        ("page" = Option<u32>, Query, minimum = 0, maximum = 1048576, description = "Page number, from 0"),
        ("pageSize" = Option<u32>, Query, minimum = 1, maximum = 1000, description = "Entries per page (1..1000, default 20)")),
    responses((status = 200, description = "`{account, total, page, pages, templates: [{id, name, description, format, created, updated?}]}`", body = Object)),
    extensions(("x-ee-group" = json!("template")), ("x-ee-action" = json!("read")), ("x-ee-account" = json!("query"))),
    security(("bearerAuth" = [])))]
pub async fn list(State(state): State<AppState>, mut query: QueryParams) -> ApiResult<Json<Value>> {
    let account = query.string("account", 256).filter(|a| !a.is_empty());
    let page = query.int("page", 0, 1_048_576, 0) as usize;
    let page_size = query.int("pageSize", 1, 1000, 20) as usize;
    query.finish()?;
    let mut ids = state.store.template_ids(account.as_deref()).await?;
    ids.sort_unstable_by(|a, b| b.cmp(a));
    let total = ids.len();
    let mut templates = Vec::new();
    for id in ids.iter().skip(page * page_size).take(page_size) {
        if let Some((meta, _)) = state.store.template(account.as_deref(), id).await?
            && let Ok(meta) = TemplateMeta::decode(&meta)
        {
            templates.push(meta.to_json());
        }
    }
    Ok(Json(json!({
        "account": account, "total": total, "page": page,
        "pages": total.div_ceil(page_size), "templates": templates,
    })))
}

/// A stored template by id: its owning account (`None`: public), record and content.
pub(crate) async fn load(
    state: &AppState,
    id: &str,
) -> ApiResult<(Option<String>, TemplateMeta, TemplateContent)> {
    let account = owner(id)?;
    let (meta, content) = state
        .store
        .template(account.as_deref(), id)
        .await?
        .ok_or_else(not_found)?;
    let meta = TemplateMeta::decode(&meta).map_err(|_| not_found())?;
    let content = decode_content(&content).map_err(|_| not_found())?;
    Ok((account, meta, content))
}

/// Get a template
#[utoipa::path(get, path = "/v1/templates/template/{template}", tag = "Templates",
    params(("template" = String, Path, pattern = "^[A-Za-z0-9_-]+$", description = "Template id")),
    responses((status = 200, description = "`{account, id, name, description, format, created, updated?, content}`", body = Object),
        (status = 404, description = "Not found")),
    extensions(("x-ee-group" = json!("template")), ("x-ee-action" = json!("read")), ("x-ee-account" = json!("template"))),
    security(("bearerAuth" = [])))]
pub async fn get_one(
    State(state): State<AppState>,
    Path(template): Path<String>,
) -> ApiResult<Json<Value>> {
    let (account, meta, content) = load(&state, &template).await?;
    let mut out = Map::new();
    out.insert("account".into(), json!(account));
    if let Value::Object(m) = meta.to_json() {
        out.extend(m);
    }
    out.insert(
        "content".into(),
        serde_json::to_value(content).unwrap_or(Value::Null),
    );
    Ok(Json(Value::Object(out)))
}

/// Update a template
///
/// Any of `name`, `description`, `format`, `content` (replaced whole).
#[utoipa::path(put, path = "/v1/templates/template/{template}", tag = "Templates",
    params(("template" = String, Path, pattern = "^[A-Za-z0-9_-]+$", description = "Template id")),
    responses((status = 200, description = "`{updated: true, account, id}`", body = Object),
        (status = 400, description = "Invalid input"), (status = 404, description = "Not found")),
    extensions(("x-ee-group" = json!("template")), ("x-ee-action" = json!("write")), ("x-ee-account" = json!("template")),
        ("x-ee-body" = json!(template_body(false)))),
    security(("bearerAuth" = [])))]
pub async fn update(
    State(state): State<AppState>,
    Path(template): Path<String>,
    JsonObject(body): JsonObject,
) -> ApiResult<Json<Value>> {
    let mut errors = Vec::new();
    unknown_keys(
        &body,
        &["name", "description", "format", "content"],
        &mut errors,
    );
    let name = text(&body, "name", 256, &mut errors);
    let description = text(&body, "description", 1024, &mut errors);
    let format = format_of(&body, &mut errors);
    let content = content_of(&body, &mut errors);
    if !errors.is_empty() {
        return Err(ApiError::invalid_input(errors));
    }
    let (account, mut meta, stored) = load(&state, &template).await?;
    if let Some(n) = name {
        meta.name = n;
    }
    if body.contains_key("description") {
        meta.description = description;
    }
    if let Some(f) = format {
        meta.format = f;
    }
    meta.updated = Some(chrono::Utc::now().timestamp_millis());
    let content = content.unwrap_or(stored);
    state
        .store
        .put_template(
            account.as_deref(),
            &template,
            &meta.encode(),
            &encode_content(&content),
        )
        .await?;
    Ok(Json(
        json!({"updated": true, "account": account, "id": template}),
    ))
}

/// Delete a template
#[utoipa::path(delete, path = "/v1/templates/template/{template}", tag = "Templates",
    params(("template" = String, Path, pattern = "^[A-Za-z0-9_-]+$", description = "Template id")),
    responses((status = 200, description = "`{deleted, account, id}`", body = Object), (status = 404, description = "Not found")),
    extensions(("x-ee-group" = json!("template")), ("x-ee-action" = json!("destructive")), ("x-ee-account" = json!("template"))),
    security(("bearerAuth" = [])))]
pub async fn delete(
    State(state): State<AppState>,
    Path(template): Path<String>,
) -> ApiResult<Json<Value>> {
    let account = owner(&template)?;
    let deleted = state
        .store
        .delete_template(account.as_deref(), &template)
        .await?;
    if !deleted {
        return Err(not_found());
    }
    Ok(Json(
        json!({"deleted": true, "account": account, "id": template}),
    ))
}

/// Delete every template of an account
#[utoipa::path(delete, path = "/v1/templates/account/{account}", tag = "Templates",
    params(("account" = String, Path, description = "Account id"),
        ("force" = String, Query, pattern = "^true$", description = "Must be `true`")),
    responses((status = 200, description = "`{flushed: true, account}`", body = Object), (status = 400, description = "force missing")),
    extensions(("x-ee-group" = json!("template")), ("x-ee-action" = json!("destructive"))),
    security(("bearerAuth" = [])))]
pub async fn flush(
    State(state): State<AppState>,
    Path(account): Path<String>,
    mut query: QueryParams,
) -> ApiResult<Json<Value>> {
    let force = query.string("force", 5).as_deref() == Some("true");
    query.finish()?;
    if !force {
        return Err(ApiError::new(
            axum::http::StatusCode::BAD_REQUEST,
            "Templates are deleted only with force=true",
        )
        .with("code", "ForceRequired"));
    }
    state.store.delete_account_templates(&account).await?;
    Ok(Json(json!({"flushed": true, "account": account})))
}
