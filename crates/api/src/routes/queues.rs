//! `GET|PUT /v1/settings/queue/{queue}` (spec §25.2): the webhook (`notify`) and delivery
//! (`submit`) queues' depth, and a global pause that holds their workers.

use axum::Json;
use axum::extract::{Path, State};
use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;

use emailengine_core::settings::{QUEUES, queue_paused_key};
use emailengine_core::validation::FieldError;

use crate::error::{ApiError, ApiResult};
use crate::extract::JsonObject;
use crate::state::AppState;

#[derive(Serialize, ToSchema, Default)]
pub struct JobCounts {
    pub active: u64,
    pub delayed: u64,
    /// Always 0: paused jobs are counted as waiting, as BullMQ 6 counts them.
    pub paused: u64,
    pub waiting: u64,
}

#[derive(Serialize, ToSchema)]
pub struct QueueInfo {
    pub queue: String,
    pub jobs: JobCounts,
    pub paused: bool,
}

#[derive(Serialize, ToSchema)]
pub struct QueuePaused {
    pub queue: String,
    pub paused: bool,
}

fn known_queue(queue: &str) -> ApiResult<()> {
    if QUEUES.contains(&queue) {
        Ok(())
    } else {
        Err(ApiError::invalid_input(vec![FieldError::about(
            "queue",
            "must be one of [notify, submit, documents]",
        )]))
    }
}

/// Whether a queue is paused, from the shared settings.
pub async fn is_paused(state: &AppState, queue: &str) -> ApiResult<bool> {
    let raw = state
        .store
        .raw_settings(&[&queue_paused_key(queue)])
        .await?;
    Ok(raw.first().and_then(|v| v.as_deref()) == Some("true"))
}

async fn job_counts(state: &AppState, queue: &str) -> ApiResult<JobCounts> {
    let mut jobs = JobCounts::default();
    match queue {
        "notify" => jobs.waiting = state.store.events_pending_count("webhooks").await?,
        "submit" => {
            let now = chrono::Utc::now().timestamp_millis();
            let (total, items) = state.store.list_outbox(0, 10_000).await?;
            jobs.delayed = items.iter().filter(|i| i.due > now).count() as u64;
            jobs.waiting = total.saturating_sub(jobs.delayed);
        }
        _ => {}
    }
    Ok(jobs)
}

/// Show queue information
#[utoipa::path(get, path = "/v1/settings/queue/{queue}", tag = "Settings",
    params(("queue" = String, Path, pattern = "^(notify|submit|documents)$", description = "`notify`, `submit` or `documents`")),
    responses((status = 200, body = QueueInfo), (status = 400, description = "Unknown queue")),
    extensions(("x-ee-group" = json!("admin")), ("x-ee-action" = json!("read"))),
    security(("bearerAuth" = [])))]
pub async fn get_queue(
    State(state): State<AppState>,
    Path(queue): Path<String>,
) -> ApiResult<Json<QueueInfo>> {
    known_queue(&queue)?;
    let jobs = job_counts(&state, &queue).await?;
    let paused = is_paused(&state, &queue).await?;
    Ok(Json(QueueInfo {
        queue,
        jobs,
        paused,
    }))
}

/// Pause or resume a queue
///
/// `{paused: true}` holds the queue's worker on every instance (webhooks stay queued, outgoing
/// mail stays in the outbox) until `{paused: false}`; `{}` only reports.
#[utoipa::path(put, path = "/v1/settings/queue/{queue}", tag = "Settings",
    params(("queue" = String, Path, pattern = "^(notify|submit|documents)$", description = "`notify`, `submit` or `documents`")),
    responses((status = 200, body = QueuePaused), (status = 400, description = "Invalid input")),
    extensions(("x-ee-group" = json!("admin")), ("x-ee-action" = json!("write")),
        ("x-ee-body" = json!({"type": "object", "additionalProperties": false,
            "properties": {"paused": {"type": "boolean"}}}))),
    security(("bearerAuth" = [])))]
pub async fn set_queue(
    State(state): State<AppState>,
    Path(queue): Path<String>,
    JsonObject(body): JsonObject,
) -> ApiResult<Json<QueuePaused>> {
    known_queue(&queue)?;
    let mut errors = Vec::new();
    for key in body.keys().filter(|k| *k != "paused") {
        errors.push(FieldError::about(key, "is not allowed"));
    }
    let wanted = match body.get("paused") {
        None => None,
        Some(Value::Bool(b)) => Some(*b),
        Some(_) => {
            errors.push(FieldError::about("paused", "must be a boolean"));
            None
        }
    };
    if !errors.is_empty() {
        return Err(ApiError::invalid_input(errors));
    }
    if let Some(paused) = wanted {
        state
            .store
            .put_raw_settings(&[(queue_paused_key(&queue), paused.to_string())])
            .await?;
        tracing::info!(queue = %queue, paused, "Queue pause changed");
    }
    let paused = is_paused(&state, &queue).await?;
    Ok(Json(QueuePaused { queue, paused }))
}
