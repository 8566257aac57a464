//! Sending (spec §5.4): queue a message for delivery through the account's SMTP server, send a
//! stored draft, and inspect or cancel queued messages.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use serde_json::{Map, Value, json};

use emailengine_core::compose::{self, Compose, Mailbox};
use emailengine_core::validation::FieldError;
use emailengine_delivery::OutboxEntry;
use emailengine_delivery::submit::new_queue_id;

use emailengine_core::account::AccountRecord;

use crate::error::{ApiError, ApiResult};
use crate::extract::{JsonObject, QueryParams};
use crate::mail::AccountMail;
use crate::routes::accounts::load;
use crate::state::AppState;

const SUBMIT_KEYS: &[&str] = &[
    "envelope",
    "sendAt",
    "deliveryAttempts",
    "copy",
    "reference",
];
const IDEMPOTENCY_TTL: u64 = 24 * 3600;

/// Delivery options shared by both submit routes.
struct Options {
    envelope_from: Option<String>,
    envelope_to: Option<Vec<String>>,
    send_at: i64,
    attempts: u32,
    copy: bool,
}

fn options(body: &Map<String, Value>, errors: &mut Vec<FieldError>) -> Options {
    let now = chrono::Utc::now().timestamp_millis();
    let mut o = Options {
        envelope_from: None,
        envelope_to: None,
        send_at: now,
        attempts: 10,
        copy: true,
    };
    if let Some(env) = body.get("envelope").filter(|v| !v.is_null()) {
        match env {
            Value::Object(e) => {
                o.envelope_from = e.get("from").and_then(Value::as_str).map(str::to_string);
                o.envelope_to = match e.get("to") {
                    Some(Value::Array(items)) => Some(
                        items
                            .iter()
                            .filter_map(Value::as_str)
                            .map(str::to_string)
                            .collect(),
                    ),
                    Some(Value::String(s)) => Some(vec![s.clone()]),
                    _ => None,
                };
            }
            _ => errors.push(FieldError::about("envelope", "must be of type object")),
        }
    }
    match body.get("sendAt") {
        None | Some(Value::Null) => {}
        Some(v) => match v.as_str().and_then(emailengine_core::units::parse_iso_time) {
            Some(t) => o.send_at = t.max(now),
            None => errors.push(FieldError::about(
                "sendAt",
                "must be in ISO 8601 date format",
            )),
        },
    }
    match body.get("deliveryAttempts") {
        None | Some(Value::Null) => {}
        Some(v) => match v
            .as_u64()
            .or_else(|| {
                v.as_f64()
                    .filter(|f| f.fract() == 0.0 && *f >= 0.0)
                    .map(|f| f as u64)
            })
            .filter(|n| (1..=100).contains(n))
        {
            Some(n) => o.attempts = n as u32,
            None => errors.push(FieldError::about(
                "deliveryAttempts",
                "must be a number between 1 and 100",
            )),
        },
    }
    match body.get("copy") {
        None | Some(Value::Null) => {}
        Some(Value::Bool(b)) => o.copy = *b,
        Some(_) => errors.push(FieldError::about("copy", "must be a boolean")),
    }
    o
}

/// A built message and its envelope, ready to queue.
struct Outgoing {
    message_id: String,
    subject: Option<String>,
    raw: Vec<u8>,
    from: String,
    to: Vec<String>,
}

async fn queue(
    state: &AppState,
    account: &str,
    headers: &HeaderMap,
    out: Outgoing,
    o: &Options,
) -> ApiResult<Json<Value>> {
    let Outgoing {
        message_id,
        subject,
        raw,
        from,
        to,
    } = out;
    if to.is_empty() {
        return Err(ApiError::field("to", "must contain at least 1 recipient"));
    }
    let now = chrono::Utc::now().timestamp_millis();
    let queue_id = new_queue_id(now);
    let mut response = json!({
        "response": "Queued for delivery", "messageId": message_id, "queueId": queue_id,
        "sendAt": emailengine_core::units::iso_time(o.send_at),
    });
    if let Some(key) = headers
        .get("idempotency-key")
        .and_then(|v| v.to_str().ok())
        .filter(|k| !k.is_empty())
    {
        if key.len() > 1024 {
            return Err(ApiError::field(
                "Idempotency-Key",
                "must be at most 1024 characters",
            ));
        }
        if let Some(previous) = state
            .store
            .idempotent(account, key, &response.to_string(), IDEMPOTENCY_TTL)
            .await?
        {
            let mut earlier: Value = serde_json::from_str(&previous).unwrap_or(Value::Null);
            earlier["idempotency"] = json!({"key": key, "status": "HIT"});
            return Ok(Json(earlier));
        }
        response["idempotency"] = json!({"key": key, "status": "MISS"});
    }
    let entry = OutboxEntry {
        queue_id: queue_id.clone(),
        message_id,
        envelope_from: from,
        envelope_to: to,
        subject,
        raw,
        created: now,
        send_at: o.send_at,
        attempts_made: 0,
        max_attempts: o.attempts,
        copy: o.copy,
        last_error: None,
    };
    state
        .store
        .put_outbox(account, &queue_id, &entry.encode(), o.send_at)
        .await?;
    tracing::info!(account, queueId = %queue_id, "Message queued for delivery");
    Ok(Json(response))
}

fn addresses(list: &[Mailbox]) -> Vec<String> {
    list.iter().map(|m| m.address.clone()).collect()
}

/// Submit a message for delivery
///
/// Takes EmailEngine's payload: `from` (default: the account's address), `to`, `cc`, `bcc`,
/// `replyTo`, `subject`, `text`, `html`, `attachments` (base64 `content`, optional `cid`),
/// `headers`, `messageId`, `reference` (`{message, action: reply|reply-all|forward}`),
/// `envelope`, `sendAt`, `deliveryAttempts`, `copy`; and the `Idempotency-Key` header.
#[utoipa::path(post, path = "/v1/account/{account}/submit", tag = "Submit",
    params(("account" = String, Path, description = "Account id")),
    request_body(content = Object, description = "Message fields and delivery options"),
    responses((status = 200, description = "`{response, messageId, queueId, sendAt}`", body = Object)),
    extensions(("x-ee-group" = json!("submit")), ("x-ee-action" = json!("send"))),
    security(("bearerAuth" = [])))]
pub async fn submit(
    State(state): State<AppState>,
    Path(account): Path<String>,
    headers: HeaderMap,
    JsonObject(body): JsonObject,
) -> ApiResult<Json<Value>> {
    let mut errors = Vec::new();
    for key in body.keys() {
        if !compose::KEYS.contains(&key.as_str()) && !SUBMIT_KEYS.contains(&key.as_str()) {
            errors.push(FieldError::about(key, "is not allowed"));
        }
    }
    let o = options(&body, &mut errors);
    let mut c: Compose = match compose::parse(&body) {
        Ok(c) => c,
        Err(mut e) => {
            errors.append(&mut e);
            Compose::default()
        }
    };
    if !errors.is_empty() {
        return Err(ApiError::invalid_input(errors));
    }
    let record = AccountRecord::from_fields(&account, load(&state, &account).await?);
    if !record.has_smtp() {
        return Err(ApiError::new(
            axum::http::StatusCode::BAD_REQUEST,
            "Account has no SMTP settings",
        )
        .with("code", "NoSMTP"));
    }
    if c.from.is_none() {
        let address = record
            .email
            .clone()
            .ok_or_else(|| ApiError::field("from", "is required"))?;
        c.from = Some(Mailbox {
            name: record.name.clone(),
            address,
        });
    }
    if let Some(Value::Object(reference)) = body.get("reference") {
        let mail = state
            .mail
            .backend(&account, state.config.command_timeout)
            .await?;
        crate::reference::apply(mail.as_ref(), reference, &mut c).await?;
    }
    let from = c
        .from
        .as_ref()
        .map(|f| f.address.clone())
        .unwrap_or_default();
    let host = from
        .split_once('@')
        .map(|(_, d)| d.to_string())
        .unwrap_or_else(|| "emailengine.local".into());
    let message_id = c.ensure_message_id(&host);
    let raw = c.build(chrono::Utc::now().timestamp());
    let to = o
        .envelope_to
        .clone()
        .unwrap_or_else(|| [addresses(&c.to), addresses(&c.cc), addresses(&c.bcc)].concat());
    let envelope_from = o.envelope_from.clone().unwrap_or(from);
    let out = Outgoing {
        message_id,
        subject: c.subject.clone(),
        raw,
        from: envelope_from,
        to,
    };
    queue(&state, &account, &headers, out, &o).await
}

/// Send a stored message
///
/// Queues a message already in a folder (a draft) as it is; recipients come from its headers
/// unless `envelope` names them.
#[utoipa::path(post, path = "/v1/account/{account}/message/{message}/submit", tag = "Submit",
    params(("account" = String, Path, description = "Account id"), ("message" = String, Path, description = "Message id")),
    request_body(content = Object, description = "`{envelope?, sendAt?, deliveryAttempts?, copy?}`"),
    responses((status = 200, description = "`{response, messageId, queueId, sendAt}`", body = Object)),
    extensions(("x-ee-group" = json!("submit")), ("x-ee-action" = json!("send")),
        ("x-ee-body" = json!({"type": "object", "additionalProperties": false, "properties": {
            "envelope": {"type": ["object", "null"]},
            "sendAt": {"type": ["string", "null"], "format": "date-time"},
            "deliveryAttempts": {"type": ["integer", "null"], "minimum": 1, "maximum": 100},
            "copy": {"type": ["boolean", "null"]}}}))),
    security(("bearerAuth" = [])))]
pub async fn submit_stored(
    State(state): State<AppState>,
    AccountMail(mail): AccountMail,
    Path((account, message)): Path<(String, String)>,
    headers: HeaderMap,
    JsonObject(body): JsonObject,
) -> ApiResult<Json<Value>> {
    let mut errors = Vec::new();
    for key in body.keys() {
        if !SUBMIT_KEYS.contains(&key.as_str()) || key == "reference" {
            errors.push(FieldError::about(key, "is not allowed"));
        }
    }
    let o = options(&body, &mut errors);
    if !errors.is_empty() {
        return Err(ApiError::invalid_input(errors));
    }
    let stored = mail.stored(&message).await?;
    if !stored.is_draft() {
        return Err(ApiError::new(
            axum::http::StatusCode::BAD_REQUEST,
            "Message is not a draft",
        )
        .with("code", "MessageNotDraft"));
    }
    let source = stored.source;
    let parsed = mail_parser::MessageParser::new()
        .parse_headers(&source)
        .ok_or_else(|| ApiError::field("message", "could not be read"))?;
    let list = |a: Option<&mail_parser::Address<'_>>| -> Vec<String> {
        a.map(|a| {
            a.iter()
                .filter_map(|x| x.address.as_deref().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
    };
    let to = o
        .envelope_to
        .clone()
        .unwrap_or_else(|| [list(parsed.to()), list(parsed.cc()), list(parsed.bcc())].concat());
    let from = o
        .envelope_from
        .clone()
        .or_else(|| list(parsed.from()).into_iter().next())
        .unwrap_or_default();
    let message_id = parsed
        .message_id()
        .map(|m| format!("<{m}>"))
        .unwrap_or_default();
    let subject = parsed.subject().map(str::to_string);
    // Bcc must not travel in the headers.
    let raw = strip_bcc(&source);
    let out = Outgoing {
        message_id,
        subject,
        raw,
        from,
        to,
    };
    let answer = queue(&state, &account, &headers, out, &o).await?;
    // Once queued, the draft has done its job: it leaves the Drafts folder, as in EmailEngine.
    if let Err(e) = mail.delete(&message, true).await {
        tracing::warn!(account, err = %e, "Failed to remove a submitted draft");
    }
    Ok(answer)
}

/// Removes `Bcc:` header lines (with their continuations) from a message's header block.
fn strip_bcc(source: &[u8]) -> Vec<u8> {
    let text = String::from_utf8_lossy(source);
    let (head, body) = match text.find("\r\n\r\n") {
        Some(i) => (&text[..i + 2], &text[i + 2..]),
        None => (&text[..], ""),
    };
    let mut out = String::with_capacity(source.len());
    let mut skipping = false;
    for line in head.split_inclusive("\r\n") {
        if line.starts_with(' ') || line.starts_with('\t') {
            if !skipping {
                out.push_str(line);
            }
            continue;
        }
        skipping = line.len() >= 4 && line[..4].eq_ignore_ascii_case("bcc:");
        if !skipping {
            out.push_str(line);
        }
    }
    out.push_str(body);
    out.into_bytes()
}

/// List queued messages
#[utoipa::path(get, path = "/v1/outbox", tag = "Outbox",
    params(("page" = Option<u32>, Query, minimum = 0, maximum = 1048576, description = "Page number, from 0"),
        ("pageSize" = Option<u32>, Query, minimum = 1, maximum = 1000, description = "Entries per page (1..1000, default 20)")),
    responses((status = 200, description = "`{total, page, pages, messages}`", body = Object)),
    extensions(("x-ee-group" = json!("outbox")), ("x-ee-action" = json!("read"))),
    security(("bearerAuth" = [])))]
pub async fn outbox(
    State(state): State<AppState>,
    mut query: QueryParams,
) -> ApiResult<Json<Value>> {
    let page = query.int("page", 0, 1_048_576, 0) as usize;
    let page_size = query.int("pageSize", 1, 1000, 20) as usize;
    query.finish()?;
    let (total, items) = state.store.list_outbox(page * page_size, page_size).await?;
    let messages: Vec<Value> = items
        .iter()
        .filter_map(|i| OutboxEntry::decode(&i.entry).map(|e| e.to_json(&i.account, i.due)))
        .collect();
    Ok(Json(
        json!({"total": total, "page": page, "pages": (total as usize).div_ceil(page_size), "messages": messages}),
    ))
}

fn queue_not_found() -> ApiError {
    ApiError::not_found("Requested queue entry was not found").with("code", "NotFound")
}

/// Get a queued message
#[utoipa::path(get, path = "/v1/outbox/{queueId}", tag = "Outbox",
    params(("queueId" = String, Path, description = "Queue id")),
    responses((status = 200, description = "The outbox entry", body = Object), (status = 404, description = "Not queued")),
    extensions(("x-ee-group" = json!("outbox")), ("x-ee-action" = json!("read"))),
    security(("bearerAuth" = [])))]
pub async fn outbox_item(
    State(state): State<AppState>,
    Path(queue_id): Path<String>,
) -> ApiResult<Json<Value>> {
    let item = state
        .store
        .outbox_item(&queue_id)
        .await?
        .ok_or_else(queue_not_found)?;
    let entry = OutboxEntry::decode(&item.entry).ok_or_else(queue_not_found)?;
    Ok(Json(entry.to_json(&item.account, item.due)))
}

/// Cancel a queued message
#[utoipa::path(delete, path = "/v1/outbox/{queueId}", tag = "Outbox",
    params(("queueId" = String, Path, description = "Queue id")),
    responses((status = 200, description = "`{deleted}`", body = Object)),
    extensions(("x-ee-group" = json!("outbox")), ("x-ee-action" = json!("destructive"))),
    security(("bearerAuth" = [])))]
pub async fn outbox_delete(
    State(state): State<AppState>,
    Path(queue_id): Path<String>,
) -> ApiResult<Json<Value>> {
    Ok(Json(
        json!({"deleted": state.store.remove_outbox(&queue_id).await?}),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bcc_lines_are_removed() {
        let raw =
            b"From: a@x\r\nBcc: secret@x,\r\n other@x\r\nTo: b@x\r\n\r\nBcc: in body stays\r\n";
        let out = String::from_utf8(strip_bcc(raw)).unwrap();
        assert_eq!(out, "From: a@x\r\nTo: b@x\r\n\r\nBcc: in body stays\r\n");
    }
}
