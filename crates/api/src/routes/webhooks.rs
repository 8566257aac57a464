//! Webhook deliveries that were given up after their retry window, listed and re-sent.
//! (EmailEngine has no such routes; its failed jobs are only visible in its admin UI.)

use axum::Json;
use axum::extract::{Path, State};
use serde_json::{Value, json};

use crate::error::{ApiError, ApiResult};
use crate::extract::QueryParams;
use crate::state::AppState;

/// List given-up webhook deliveries
#[utoipa::path(get, path = "/v1/webhooks/failed", tag = "Webhooks",
    params(("page" = Option<u32>, Query, minimum = 0, maximum = 1048576, description = "Page number, from 0"),
        ("pageSize" = Option<u32>, Query, minimum = 1, maximum = 1000, description = "Entries per page (1..1000, default 20)")),
    responses((status = 200, description = "`{total, page, pages, events: [{id, account, event, reason, queued, failed, payload}]}`", body = Object)),
    extensions(("x-ee-group" = json!("webhook")), ("x-ee-action" = json!("read"))),
    security(("bearerAuth" = [])))]
pub async fn list_failed(
    State(state): State<AppState>,
    mut query: QueryParams,
) -> ApiResult<Json<Value>> {
    let page = query.int("page", 0, 1_048_576, 0) as usize;
    let page_size = query.int("pageSize", 1, 1000, 20) as usize;
    query.finish()?;
    let (total, events) = state.store.dead_events(page * page_size, page_size).await?;
    let events: Vec<Value> = events
        .into_iter()
        .map(|d| {
            let e = d.event;
            json!({
                "id": e.id, "account": e.account, "event": e.event, "reason": d.reason,
                "queued": emailengine_core::units::iso_time(e.queued_at),
                "failed": emailengine_core::units::iso_time(d.at),
                "payload": serde_json::from_str::<Value>(&e.payload).unwrap_or(Value::Null),
            })
        })
        .collect();
    Ok(Json(json!({
        "total": total, "page": page, "pages": (total as usize).div_ceil(page_size), "events": events,
    })))
}

/// Re-send a given-up webhook delivery
///
/// Queues the event again (under a new event id) and removes it from the list.
#[utoipa::path(post, path = "/v1/webhooks/failed/{event}/resend", tag = "Webhooks",
    params(("event" = String, Path, description = "Event id from the list")),
    responses((status = 200, description = "`{queued: true, id}`", body = Object), (status = 404, description = "Not in the list")),
    extensions(("x-ee-group" = json!("webhook")), ("x-ee-action" = json!("write"))),
    security(("bearerAuth" = [])))]
pub async fn resend_failed(
    State(state): State<AppState>,
    Path(event): Path<String>,
) -> ApiResult<Json<Value>> {
    match emailengine_delivery::Webhooks::resend_dead(state.store.as_ref(), &event).await? {
        Some(id) => Ok(Json(json!({"queued": true, "id": id}))),
        None => Err(ApiError::not_found("Requested event was not found").with("code", "NotFound")),
    }
}
