//! Mailbox routes (spec §5.2): list folders (with counters), create, rename, delete.

use axum::Json;
use axum::extract::{Path, State};
use serde_json::{Value, json};

use emailengine_imap::folders::{Folder, encode_path};
use emailengine_imap::{OpError, PooledSession};

use crate::error::{ApiError, ApiResult};
use crate::extract::{JsonObject, QueryParams};
use crate::routes::accounts::load;
use crate::state::AppState;

/// Maps an engine failure to EmailEngine's error answers.
pub fn op_error(e: OpError) -> ApiError {
    match e {
        OpError::NotConnected(state) => {
            let code = match state.as_str() {
                "authenticationError" => "AuthenticationFails",
                "connectError" => "ConnectionError",
                _ => "NotYetConnected",
            };
            ApiError::new(
                axum::http::StatusCode::SERVICE_UNAVAILABLE,
                "Requested account is not yet initialized",
            )
            .with("code", code)
            .with("state", state)
        }
        OpError::NotFound(msg) => ApiError::not_found(msg).with("code", "NotFound"),
        OpError::Imap(msg) => {
            tracing::warn!(err = %msg, "IMAP command failed");
            ApiError::new(axum::http::StatusCode::BAD_GATEWAY, msg).with("code", "IMAPError")
        }
    }
}

/// Turns an IMAP error into an API error and retires the session it happened on.
pub fn imap_failed(
    session: &mut PooledSession,
) -> impl FnOnce(async_imap::error::Error) -> ApiError + '_ {
    move |e| {
        match &e {
            async_imap::error::Error::No(_) | async_imap::error::Error::Bad(_) => {}
            _ => session.discard(),
        }
        op_error(OpError::Imap(e.to_string()))
    }
}

/// The stored folder listing, INBOX first, then by path.
pub async fn folders(state: &AppState, account: &str) -> ApiResult<Vec<Folder>> {
    let mut list: Vec<Folder> = state
        .store
        .listing(account)
        .await?
        .iter()
        .filter_map(|(_, b)| Folder::from_listing_entry(b))
        .collect();
    list.sort_by(|a, b| (a.path != "INBOX", &a.path).cmp(&(b.path != "INBOX", &b.path)));
    Ok(list)
}

/// List mailboxes
#[utoipa::path(get, path = "/v1/account/{account}/mailboxes", tag = "Mailbox",
    params(("account" = String, Path, description = "Account id"),
        ("counters" = Option<bool>, Query, description = "Include message counts (STATUS)")),
    responses((status = 200, description = "`{mailboxes: [...]}`", body = Object)),
    security(("bearerAuth" = [])))]
pub async fn list(
    State(state): State<AppState>,
    Path(account): Path<String>,
    mut query: QueryParams,
) -> ApiResult<Json<Value>> {
    let counters = query.bool("counters").unwrap_or(false);
    query.finish()?;
    load(&state, &account).await?;
    let folders = folders(&state, &account).await?;
    let mut session = if counters {
        Some(state.engine.session(&account).await.map_err(op_error)?)
    } else {
        None
    };
    let mut out = Vec::with_capacity(folders.len());
    for f in &folders {
        let mut v = f.to_json();
        let status = state.store.folder_status(&account, &f.path).await?;
        if let Some(n) = status.get("messages").and_then(|m| m.parse::<u64>().ok()) {
            v["messages"] = json!(n);
        }
        if let Some(n) = status.get("uidNext").and_then(|m| m.parse::<u64>().ok()) {
            v["uidNext"] = json!(n);
        }
        if let Some(s) = session.as_mut().filter(|_| !f.no_select) {
            let mb = s
                .get()
                .status(encode_path(&f.path), "(MESSAGES UNSEEN)")
                .await
                .map_err(imap_failed(s))?;
            v["status"] = json!({"messages": mb.exists, "unseen": mb.unseen.unwrap_or(0)});
        }
        out.push(v);
    }
    Ok(Json(json!({ "mailboxes": out })))
}

fn path_arg(
    body: &serde_json::Map<String, Value>,
    key: &str,
    delimiter: &str,
) -> ApiResult<String> {
    match body.get(key) {
        Some(Value::String(s)) if !s.is_empty() => Ok(s.clone()),
        Some(Value::Array(parts))
            if !parts.is_empty()
                && parts
                    .iter()
                    .all(|p| p.as_str().is_some_and(|s| !s.is_empty())) =>
        {
            Ok(parts
                .iter()
                .filter_map(Value::as_str)
                .collect::<Vec<_>>()
                .join(delimiter))
        }
        None | Some(Value::Null) => Err(ApiError::field(key, "is required")),
        _ => Err(ApiError::field(
            key,
            "must be a string or an array of strings",
        )),
    }
}

async fn delimiter(state: &AppState, account: &str) -> ApiResult<String> {
    Ok(folders(state, account)
        .await?
        .iter()
        .find_map(|f| f.delimiter.clone())
        .unwrap_or_else(|| "/".into()))
}

/// Create a mailbox
#[utoipa::path(post, path = "/v1/account/{account}/mailbox", tag = "Mailbox",
    params(("account" = String, Path, description = "Account id")),
    request_body(content = Object, description = "`{path}`: a path or a list of path segments"),
    responses((status = 200, description = "`{path, created}`", body = Object)),
    security(("bearerAuth" = [])))]
pub async fn create(
    State(state): State<AppState>,
    Path(account): Path<String>,
    JsonObject(body): JsonObject,
) -> ApiResult<Json<Value>> {
    load(&state, &account).await?;
    let path = path_arg(&body, "path", &delimiter(&state, &account).await?)?;
    let mut s = state.engine.session(&account).await.map_err(op_error)?;
    s.get()
        .create(encode_path(&path))
        .await
        .map_err(imap_failed(&mut s))?;
    let _ = s.get().subscribe(encode_path(&path)).await;
    state.engine.sync(&account);
    Ok(Json(json!({"path": path, "created": true})))
}

/// Rename a mailbox
#[utoipa::path(put, path = "/v1/account/{account}/mailbox", tag = "Mailbox",
    params(("account" = String, Path, description = "Account id")),
    request_body(content = Object, description = "`{path, newPath}`"),
    responses((status = 200, description = "`{path, newPath, renamed}`", body = Object)),
    security(("bearerAuth" = [])))]
pub async fn rename(
    State(state): State<AppState>,
    Path(account): Path<String>,
    JsonObject(body): JsonObject,
) -> ApiResult<Json<Value>> {
    load(&state, &account).await?;
    let delim = delimiter(&state, &account).await?;
    let path = path_arg(&body, "path", &delim)?;
    let new_path = path_arg(&body, "newPath", &delim)?;
    let mut s = state.engine.session(&account).await.map_err(op_error)?;
    s.get()
        .rename(encode_path(&path), encode_path(&new_path))
        .await
        .map_err(imap_failed(&mut s))?;
    state.engine.sync(&account);
    Ok(Json(
        json!({"path": path, "newPath": new_path, "renamed": true}),
    ))
}

/// Delete a mailbox
#[utoipa::path(delete, path = "/v1/account/{account}/mailbox", tag = "Mailbox",
    params(("account" = String, Path, description = "Account id"), ("path" = String, Query, description = "Folder to delete")),
    responses((status = 200, description = "`{path, deleted}`", body = Object)),
    security(("bearerAuth" = [])))]
pub async fn delete(
    State(state): State<AppState>,
    Path(account): Path<String>,
    mut query: QueryParams,
) -> ApiResult<Json<Value>> {
    let path = query.required_string("path", 1024);
    query.finish()?;
    load(&state, &account).await?;
    let mut s = state.engine.session(&account).await.map_err(op_error)?;
    s.get()
        .delete(encode_path(&path))
        .await
        .map_err(imap_failed(&mut s))?;
    state.engine.sync(&account);
    Ok(Json(json!({"path": path, "deleted": true})))
}
