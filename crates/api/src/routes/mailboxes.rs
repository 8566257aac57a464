//! Mailbox routes (spec §5.2): list folders (with counters), create, rename or (un)subscribe,
//! delete. The account's mail backend does the work.

use axum::Json;
use serde_json::{Map, Value, json};

use emailengine_mail::{FolderPath, FolderUpdate};

use crate::error::{ApiError, ApiResult};
use crate::extract::{JsonObject, QueryParams};
use crate::mail::AccountMail;

/// List mailboxes
#[utoipa::path(get, path = "/v1/account/{account}/mailboxes", tag = "Mailbox",
    params(("account" = String, Path, description = "Account id"),
        ("counters" = Option<bool>, Query, description = "Include message counts (STATUS)")),
    responses((status = 200, description = "`{mailboxes: [...]}`", body = Object)),
    extensions(("x-ee-group" = json!("mailbox")), ("x-ee-action" = json!("read"))),
    security(("bearerAuth" = [])))]
pub async fn list(
    AccountMail(mail): AccountMail,
    mut query: QueryParams,
) -> ApiResult<Json<Value>> {
    let counters = query.bool("counters").unwrap_or(false);
    query.finish()?;
    Ok(Json(json!({ "mailboxes": mail.folders(counters).await? })))
}

/// A folder path: a string, or a list of path segments joined with the server's delimiter.
fn path_arg(body: &Map<String, Value>, key: &str) -> ApiResult<Option<FolderPath>> {
    match body.get(key) {
        None => Ok(None),
        Some(Value::String(s))
            if crate::extract::is_folder_name(s) && s.chars().count() <= 1024 =>
        {
            Ok(Some(FolderPath::Path(s.clone())))
        }
        Some(Value::Array(parts))
            if !parts.is_empty()
                && parts
                    .iter()
                    .all(|p| p.as_str().is_some_and(crate::extract::is_folder_name)) =>
        {
            Ok(Some(FolderPath::Segments(
                parts
                    .iter()
                    .filter_map(Value::as_str)
                    .map(str::to_string)
                    .collect(),
            )))
        }
        _ => Err(ApiError::field(
            key,
            "must be a string or an array of strings",
        )),
    }
}

fn only(body: &Map<String, Value>, allowed: &[&str]) -> ApiResult<()> {
    match body.keys().find(|k| !allowed.contains(&k.as_str())) {
        Some(k) => Err(ApiError::field(k, "is not allowed")),
        None => Ok(()),
    }
}

/// Create a mailbox
#[utoipa::path(post, path = "/v1/account/{account}/mailbox", tag = "Mailbox",
    params(("account" = String, Path, description = "Account id")),
    request_body(content = Object, description = "`{path}`: a path or a list of path segments"),
    responses((status = 200, description = "`{path, created}`", body = Object)),
    extensions(("x-ee-group" = json!("mailbox")), ("x-ee-action" = json!("write")),
        ("x-ee-body" = json!({"type": "object", "additionalProperties": false, "required": ["path"],
            "properties": {"path": crate::schema::folder_path()}}))),
    security(("bearerAuth" = [])))]
pub async fn create(
    AccountMail(mail): AccountMail,
    JsonObject(body): JsonObject,
) -> ApiResult<Json<Value>> {
    only(&body, &["path"])?;
    let path = path_arg(&body, "path")?.ok_or_else(|| ApiError::field("path", "is required"))?;
    Ok(Json(mail.create_folder(&path).await?))
}

/// Rename or (un)subscribe a mailbox
#[utoipa::path(put, path = "/v1/account/{account}/mailbox", tag = "Mailbox",
    params(("account" = String, Path, description = "Account id")),
    request_body(content = Object, description = "`{path, newPath?, subscribed?}`: at least one of `newPath` and `subscribed`"),
    responses((status = 200, description = "`{path, newPath?, renamed?, subscribed?}`", body = Object)),
    extensions(("x-ee-group" = json!("mailbox")), ("x-ee-action" = json!("write")),
        ("x-ee-body" = json!({"type": "object", "additionalProperties": false, "required": ["path"],
            "anyOf": [{"required": ["newPath"]}, {"required": ["subscribed"]}],
            "properties": {"path": crate::schema::folder_path(), "newPath": crate::schema::folder_path(),
                "subscribed": {"type": "boolean"}}}))),
    security(("bearerAuth" = [])))]
pub async fn rename(
    AccountMail(mail): AccountMail,
    JsonObject(body): JsonObject,
) -> ApiResult<Json<Value>> {
    only(&body, &["path", "newPath", "subscribed"])?;
    let path = path_arg(&body, "path")?.ok_or_else(|| ApiError::field("path", "is required"))?;
    let new_path = path_arg(&body, "newPath")?;
    let subscribed = match body.get("subscribed") {
        None => None,
        Some(Value::Bool(b)) => Some(*b),
        Some(_) => return Err(ApiError::field("subscribed", "must be a boolean")),
    };
    if new_path.is_none() && subscribed.is_none() {
        return Err(ApiError::invalid_input(vec![
            emailengine_core::validation::FieldError::new(
                "value",
                "\"value\" must contain at least one of [newPath, subscribed]",
            ),
        ]));
    }
    let update = FolderUpdate {
        path,
        new_path,
        subscribed,
    };
    Ok(Json(mail.update_folder(&update).await?))
}

/// Delete a mailbox
#[utoipa::path(delete, path = "/v1/account/{account}/mailbox", tag = "Mailbox",
    params(("account" = String, Path, description = "Account id"), ("path" = String, Query, min_length = 1, max_length = 1024, pattern = "^[^\\u0000-\\u001f\\u007f]+$", description = "Folder to delete")),
    responses((status = 200, description = "`{path, deleted}`", body = Object)),
    extensions(("x-ee-group" = json!("mailbox")), ("x-ee-action" = json!("destructive"))),
    security(("bearerAuth" = [])))]
pub async fn delete(
    AccountMail(mail): AccountMail,
    mut query: QueryParams,
) -> ApiResult<Json<Value>> {
    let path = query.folder("path");
    query.finish()?;
    Ok(Json(mail.delete_folder(&path).await?))
}
