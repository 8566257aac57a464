//! Suppression lists (spec §20.4): addresses that list mail (`listId` with a mail merge) skips.
//! Entries come from one-click unsubscribes, the unsubscribe page and these routes. Group
//! `blocklist`.

use axum::Json;
use axum::extract::{Path, State};
use serde_json::{Value, json};

use emailengine_core::validation::FieldError;
use emailengine_sending::lists::{BlocklistEntry, BlocklistSource, normalize_address};

use crate::error::{ApiError, ApiResult};
use crate::extract::{JsonObject, QueryParams};
use crate::state::AppState;

/// A list id is hostname-shaped (`test-list`, `news.example`).
pub fn valid_list_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 255
        && id.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        })
}

fn list_id(id: &str) -> ApiResult<()> {
    if valid_list_id(id) {
        Ok(())
    } else {
        Err(ApiError::field("listId", "must be a valid hostname"))
    }
}

fn unknown_list() -> ApiError {
    ApiError::not_found("Requested blocklist was not found").with("code", "NotFound")
}

/// List blocklists
#[utoipa::path(get, path = "/v1/blocklists", tag = "Blocklists",
    params(("page" = Option<u32>, Query, minimum = 0, maximum = 1048576, description = "Page number, from 0"),
        ("pageSize" = Option<u32>, Query, minimum = 1, maximum = 1000, description = "Entries per page (1..1000, default 20)")),
    responses((status = 200, description = "`{total, page, pages, blocklists: [{listId, count}]}`", body = Object)),
    extensions(("x-ee-group" = json!("blocklist")), ("x-ee-action" = json!("read"))),
    security(("bearerAuth" = [])))]
pub async fn list(State(state): State<AppState>, mut query: QueryParams) -> ApiResult<Json<Value>> {
    let page = query.int("page", 0, 1_048_576, 0) as usize;
    let page_size = query.int("pageSize", 1, 1000, 20) as usize;
    query.finish()?;
    let lists = state.store.blocklists().await?;
    let total = lists.len();
    let page_items: Vec<Value> = lists
        .into_iter()
        .skip(page * page_size)
        .take(page_size)
        .map(|(id, count)| json!({"listId": id, "count": count}))
        .collect();
    Ok(Json(json!({
        "total": total, "page": page, "pages": total.div_ceil(page_size), "blocklists": page_items,
    })))
}

/// List the addresses of a blocklist
#[utoipa::path(get, path = "/v1/blocklist/{listId}", tag = "Blocklists",
    params(("listId" = String, Path, max_length = 255, pattern = "^[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$", description = "List id (hostname-shaped)"),
        ("page" = Option<u32>, Query, minimum = 0, maximum = 1048576, description = "Page number, from 0"),
        ("pageSize" = Option<u32>, Query, minimum = 1, maximum = 1000, description = "Entries per page (1..1000, default 20)")),
    responses((status = 200, description = "`{listId, total, page, pages, addresses: [entry]}`", body = Object),
        (status = 404, description = "No such list")),
    extensions(("x-ee-group" = json!("blocklist")), ("x-ee-action" = json!("read"))),
    security(("bearerAuth" = [])))]
pub async fn addresses(
    State(state): State<AppState>,
    Path(list): Path<String>,
    mut query: QueryParams,
) -> ApiResult<Json<Value>> {
    let page = query.int("page", 0, 1_048_576, 0) as usize;
    let page_size = query.int("pageSize", 1, 1000, 20) as usize;
    query.finish()?;
    list_id(&list)?;
    let entries = state.store.blocklist_entries(&list).await?;
    if entries.is_empty() {
        return Err(unknown_list());
    }
    let total = entries.len();
    let addresses: Vec<Value> = entries
        .into_iter()
        .skip(page * page_size)
        .take(page_size)
        .filter_map(|(_, record)| serde_json::from_str(&record).ok())
        .collect();
    Ok(Json(json!({
        "listId": list, "total": total, "page": page, "pages": total.div_ceil(page_size),
        "addresses": addresses,
    })))
}

/// Add an address to a blocklist
///
/// `{account, recipient, reason?}` (reason defaults to `block`). No webhook is sent.
#[utoipa::path(post, path = "/v1/blocklist/{listId}", tag = "Blocklists",
    params(("listId" = String, Path, max_length = 255, pattern = "^[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$", description = "List id (hostname-shaped)")),
    responses((status = 200, description = "`{success: true, added}`", body = Object),
        (status = 400, description = "Invalid input"), (status = 404, description = "Account not found")),
    extensions(("x-ee-group" = json!("blocklist")), ("x-ee-action" = json!("write")),
        ("x-ee-body" = json!({"type": "object", "additionalProperties": false, "required": ["account", "recipient"],
            "properties": {
                "account": {"type": "string", "minLength": 1, "maxLength": 256},
                "recipient": {"type": "string", "maxLength": 998, "pattern": emailengine_core::compose::EMAIL_PATTERN},
                "reason": {"type": ["string", "null"], "minLength": 1, "maxLength": 256},
            }}))),
    security(("bearerAuth" = [])))]
pub async fn add(
    State(state): State<AppState>,
    Path(list): Path<String>,
    JsonObject(body): JsonObject,
) -> ApiResult<Json<Value>> {
    list_id(&list)?;
    let mut errors = Vec::new();
    for key in body.keys() {
        if !["account", "recipient", "reason"].contains(&key.as_str()) {
            errors.push(FieldError::about(key, "is not allowed"));
        }
    }
    let string = |k: &str| body.get(k).and_then(Value::as_str).map(str::to_string);
    let account = string("account");
    if account.as_deref().is_none_or(str::is_empty) {
        errors.push(FieldError::about("account", "is required"));
    }
    let recipient = string("recipient");
    match &recipient {
        None => errors.push(FieldError::about("recipient", "is required")),
        Some(r) if r.len() > 998 || !emailengine_core::compose::is_email(r) => {
            errors.push(FieldError::about("recipient", "must be a valid email"))
        }
        Some(_) => {}
    }
    let reason = match body.get("reason") {
        None | Some(Value::Null) => "block".to_string(),
        Some(Value::String(r)) if !r.is_empty() && r.len() <= 256 => r.clone(),
        Some(_) => {
            errors.push(FieldError::about("reason", "must be a string"));
            String::new()
        }
    };
    if !errors.is_empty() {
        return Err(ApiError::invalid_input(errors));
    }
    let (Some(account), Some(recipient)) = (account, recipient) else {
        return Err(ApiError::field("recipient", "is required"));
    };
    if !state.store.account_exists(&account).await? {
        return Err(
            ApiError::not_found("Account record was not found for requested ID")
                .with("code", "AccountNotFound"),
        );
    }
    let entry = BlocklistEntry {
        recipient: recipient.clone(),
        account: Some(account),
        source: BlocklistSource::Api,
        reason,
        message_id: None,
        remote_address: None,
        user_agent: None,
        created: emailengine_core::units::iso_time(chrono::Utc::now().timestamp_millis())
            .unwrap_or_default(),
    };
    let record = serde_json::to_string(&entry).map_err(|e| ApiError::internal(e.to_string()))?;
    let added = state
        .store
        .put_blocklist_entry(&list, &normalize_address(&recipient), &record)
        .await?;
    Ok(Json(json!({"success": true, "added": added})))
}

/// Remove an address from a blocklist
#[utoipa::path(delete, path = "/v1/blocklist/{listId}", tag = "Blocklists",
    params(("listId" = String, Path, max_length = 255, pattern = "^[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$", description = "List id (hostname-shaped)"),
        ("recipient" = String, Query, min_length = 1, max_length = 998, description = "The address to remove")),
    responses((status = 200, description = "`{deleted}`", body = Object), (status = 404, description = "No such list")),
    extensions(("x-ee-group" = json!("blocklist")), ("x-ee-action" = json!("destructive"))),
    security(("bearerAuth" = [])))]
pub async fn remove(
    State(state): State<AppState>,
    Path(list): Path<String>,
    mut query: QueryParams,
) -> ApiResult<Json<Value>> {
    let recipient = query.required_string("recipient", 998);
    query.finish()?;
    list_id(&list)?;
    if !state
        .store
        .blocklists()
        .await?
        .iter()
        .any(|(id, _)| *id == list)
    {
        return Err(unknown_list());
    }
    let deleted = state
        .store
        .remove_blocklist_entry(&list, &normalize_address(&recipient))
        .await?;
    Ok(Json(json!({"deleted": deleted})))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn list_ids_are_hostnames() {
        assert!(valid_list_id("test-list"));
        assert!(valid_list_id("news.example.com"));
        assert!(!valid_list_id(""));
        assert!(!valid_list_id("-x"));
        assert!(!valid_list_id("a..b"));
        assert!(!valid_list_id("a b"));
        assert!(!valid_list_id("ä"));
    }
}
