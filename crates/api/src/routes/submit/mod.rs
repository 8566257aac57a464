//! Sending (spec §5.4, §17): queue messages for delivery through the account's SMTP server
//! or a gateway — composed, raw, from a template, or one per mail-merge recipient — send a
//! stored draft, and inspect or cancel queued messages.

use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::{Extension, Json};
use base64::Engine;
use serde_json::{Value, json};

use emailengine_core::account::AccountRecord;
use emailengine_delivery::OutboxEntry;
use emailengine_delivery::submit::new_queue_id;
use emailengine_sending::template::TemplateRenderer;
use emailengine_store::Change;

use self::message::Built;
use self::request::Options;
use crate::auth::AuthContext;
use crate::error::{ApiError, ApiResult};
use crate::extract::{JsonObject, QueryParams};
use crate::mail::AccountMail;
use crate::routes::accounts::load;
use crate::state::AppState;

mod message;
mod raw;
mod request;

const IDEMPOTENCY_TTL: u64 = 24 * 3600;

/// The `Idempotency-Key` header: at most 1024 characters, surrounding quotes stripped.
fn idempotency_key(headers: &HeaderMap) -> ApiResult<Option<String>> {
    let Some(key) = headers
        .get("idempotency-key")
        .and_then(|v| v.to_str().ok())
        .map(|k| k.trim().trim_matches('"').to_string())
        .filter(|k| !k.is_empty())
    else {
        return Ok(None);
    };
    if key.len() > 1024 {
        return Err(ApiError::field(
            "Idempotency-Key",
            "must be at most 1024 characters",
        ));
    }
    Ok(Some(key))
}

/// A queue entry for a prepared message.
fn entry(p: &message::Prepared, o: &Options, now: i64, gateway: Option<String>) -> OutboxEntry {
    OutboxEntry {
        queue_id: new_queue_id(now),
        message_id: p.message_id.clone(),
        envelope_from: p.envelope_from.clone(),
        envelope_to: p.envelope_to.clone(),
        subject: p.subject.clone(),
        raw: p.raw.clone(),
        created: now,
        send_at: p.send_at.unwrap_or(now).max(now),
        attempts_made: 0,
        max_attempts: p.attempts.unwrap_or(o.attempts),
        copy: o.copy.unwrap_or(true),
        last_error: None,
        gateway: p.gateway.clone().or(gateway),
        dsn: o.dsn.clone(),
        local_address: o.local_address.clone(),
        proxy: o.proxy.clone(),
        sent_mail_path: o.sent_mail_path.clone(),
        feedback_key: o.feedback_key.clone(),
    }
}

fn queued_json(e: &OutboxEntry) -> Value {
    json!({
        "messageId": e.message_id, "queueId": e.queue_id,
        "sendAt": emailengine_core::units::iso_time(e.send_at),
    })
}

/// Stores queue entries all at once: a request either queues everything or nothing.
async fn enqueue(state: &AppState, account: &str, entries: &[OutboxEntry]) -> ApiResult<()> {
    let changes = entries
        .iter()
        .map(|e| Change::PutOutbox {
            account: account.to_string(),
            queue_id: e.queue_id.clone(),
            entry: e.encode(),
            due: e.send_at,
        })
        .collect();
    state.store.commit(changes).await?;
    tracing::info!(
        account,
        messages = entries.len(),
        "Messages queued for delivery"
    );
    Ok(())
}

/// Answers from the idempotency record when the key was seen, else records `response`.
async fn idempotent(
    state: &AppState,
    account: &str,
    key: Option<&str>,
    response: &mut Value,
) -> ApiResult<Option<Value>> {
    let Some(key) = key else {
        return Ok(None);
    };
    if let Some(previous) = state
        .store
        .idempotent(account, key, &response.to_string(), IDEMPOTENCY_TTL)
        .await?
    {
        let mut earlier: Value = serde_json::from_str(&previous).unwrap_or(Value::Null);
        earlier["idempotency"] = json!({"key": key, "status": "HIT"});
        return Ok(Some(earlier));
    }
    response["idempotency"] = json!({"key": key, "status": "MISS"});
    Ok(None)
}

fn setting_bool(v: &Option<Value>) -> Option<bool> {
    v.as_ref().and_then(Value::as_bool)
}

/// Submit a message for delivery
///
/// Takes EmailEngine's whole payload (spec §17): content (`from`, `to`, `cc`, `bcc`,
/// `replyTo`, `subject`, `text`, `html`, `previewText`, `attachments`, `headers`,
/// `messageId`), a complete `raw` message, a stored `template` with `render` parameters, a
/// `mailMerge` list (one message per recipient, `listId` for list mail), `reference`, tracking
/// (`trackClicks`, `trackOpens`, `trackingEnabled`, `baseUrl`), delivery options (`envelope`,
/// `sendAt`, `deliveryAttempts`, `copy`, `sentMailPath`, `gateway`, `dsn`, `proxy`,
/// `localAddress`, `feedbackKey`) and `dryRun`; and the `Idempotency-Key` header.
#[utoipa::path(post, path = "/v1/account/{account}/submit", tag = "Submit",
    params(("account" = String, Path, description = "Account id")),
    request_body(content = Object, description = "Message fields and delivery options"),
    responses((status = 200, description = "`{response, messageId, queueId, sendAt}`, `{mailMerge: [...]}` or, for a dry run, `{response, messageId, preview}`", body = Object)),
    extensions(("x-ee-group" = json!("submit")), ("x-ee-action" = json!("send"))),
    security(("bearerAuth" = [])))]
pub async fn submit(
    State(state): State<AppState>,
    Path(account): Path<String>,
    Extension(ctx): Extension<AuthContext>,
    headers: HeaderMap,
    JsonObject(body): JsonObject,
) -> ApiResult<Json<Value>> {
    let o = request::options(&body, false).map_err(ApiError::invalid_input)?;
    if o.proxy.is_some() && ctx.restricted {
        return Err(ApiError::forbidden(
            "A token with restricted permissions can not override the connection route",
        ));
    }
    let key = idempotency_key(&headers)?;
    let record = AccountRecord::from_fields(&account, load(&state, &account).await?);
    let gateway = match &o.gateway {
        Some(id) => match state.store.gateway(id).await? {
            Some(_) => Some(id.clone()),
            None => {
                tracing::warn!(account, gateway = %id, "Requested gateway was not found");
                None
            }
        },
        None => None,
    };
    if !record.has_smtp() && gateway.is_none() {
        return Err(
            ApiError::not_found("SMTP configuration not found").with("code", "SMTPUnavailable")
        );
    }
    let template = match &o.template {
        Some(id) => {
            let missing = || {
                ApiError::not_found(format!("Requested template was not found [{id}]"))
                    .with("code", "TemplateNotFound")
            };
            let (owner, meta, content) = crate::routes::templates::load(&state, id)
                .await
                .map_err(|_| missing())?;
            if owner.as_deref().is_some_and(|o| o != account) {
                return Err(missing());
            }
            Some((meta.format, content))
        }
        None => None,
    };
    let settings = state
        .settings
        .get(&[
            "serviceUrl",
            "serviceSecret",
            "trackClicks",
            "trackOpens",
            "trackSentMessages",
        ])
        .await?;
    let base_url = o.base_url.clone().or_else(|| {
        settings[0]
            .as_ref()
            .and_then(Value::as_str)
            .and_then(|u| url::Url::parse(u).ok())
    });
    let secret = settings[1]
        .as_ref()
        .and_then(Value::as_str)
        .unwrap_or_default()
        .as_bytes()
        .to_vec();
    let legacy = setting_bool(&settings[4]);
    let track_clicks = o
        .track_clicks
        .or(setting_bool(&settings[2]))
        .or(legacy)
        .unwrap_or(false);
    let track_opens = o
        .track_opens
        .or(setting_bool(&settings[3]))
        .or(legacy)
        .unwrap_or(false);
    let mail = if body.get("reference").is_some_and(Value::is_object) {
        Some(
            state
                .mail
                .backend(&account, state.config.command_timeout)
                .await?,
        )
    } else {
        None
    };
    let renderer = TemplateRenderer::new();
    let shared = message::Shared {
        state: &state,
        account_id: &account,
        account: &record,
        options: &o,
        template,
        base_url,
        secret,
        track_clicks,
        track_opens,
        renderer: &renderer,
        mail,
    };
    let now = chrono::Utc::now().timestamp_millis();

    if body.contains_key("mailMerge") {
        let merged = emailengine_sending::merge::expand_mail_merge(&body)
            .map_err(|e| ApiError::field("mailMerge", &e.to_string()))?;
        let mut built = Vec::with_capacity(merged.len());
        for m in merged {
            let to = m.to.clone();
            built.push((to, message::build(&shared, m.payload).await?));
        }
        let mut entries = Vec::new();
        let mut queue_ids = std::collections::HashSet::with_capacity(built.len());
        let mut results = Vec::with_capacity(built.len());
        for (to, b) in &built {
            match b {
                Built::Skipped { reason, list_id } => results.push(json!({
                    "success": true, "to": to, "skipped": {"reason": reason, "listId": list_id},
                })),
                Built::Message(p) if o.dry_run => results.push(json!({
                    "success": true, "to": to, "messageId": p.message_id,
                })),
                Built::Message(p) => {
                    let mut e = entry(p, &o, now, gateway.clone());
                    // Queue ids carry 32 random bits per millisecond: a large merge would lose
                    // an entry to a repeated id now and then.
                    while !queue_ids.insert(e.queue_id.clone()) {
                        e.queue_id = new_queue_id(now);
                    }
                    let mut r = queued_json(&e);
                    r["success"] = json!(true);
                    r["to"] = to.clone();
                    results.push(r);
                    entries.push(e);
                }
            }
        }
        let mut response = json!({"mailMerge": results});
        if o.dry_run {
            return Ok(Json(response));
        }
        if let Some(earlier) = idempotent(&state, &account, key.as_deref(), &mut response).await? {
            return Ok(Json(earlier));
        }
        enqueue(&state, &account, &entries).await?;
        return Ok(Json(response));
    }

    let Built::Message(p) = message::build(&shared, body.clone()).await? else {
        return Err(ApiError::internal("A single message was skipped"));
    };
    if p.envelope_to.is_empty() {
        return Err(ApiError::field("to", "must contain at least 1 recipient"));
    }
    if o.dry_run {
        let mut response = json!({
            "response": "Dry run", "messageId": p.message_id,
            "preview": base64::engine::general_purpose::STANDARD.encode(&p.raw),
        });
        if let Some(r) = &p.reference {
            response["reference"] = r.clone();
        }
        return Ok(Json(response));
    }
    let e = entry(&p, &o, now, gateway);
    let mut response = queued_json(&e);
    response["response"] = json!("Queued for delivery");
    if let Some(r) = &p.reference {
        response["reference"] = r.clone();
    }
    if let Some(earlier) = idempotent(&state, &account, key.as_deref(), &mut response).await? {
        return Ok(Json(earlier));
    }
    enqueue(&state, &account, std::slice::from_ref(&e)).await?;
    Ok(Json(response))
}

/// Send a stored message
///
/// Queues a message already in a folder (a draft) as it is; recipients come from its headers
/// unless `envelope` names them.
#[utoipa::path(post, path = "/v1/account/{account}/message/{message}/submit", tag = "Submit",
    params(("account" = String, Path, description = "Account id"), ("message" = String, Path, description = "Message id")),
    request_body(content = Object, description = "Delivery options"),
    responses((status = 200, description = "`{response, messageId, queueId, sendAt}`", body = Object)),
    extensions(("x-ee-group" = json!("submit")), ("x-ee-action" = json!("send")),
        ("x-ee-body" = json!({"type": "object", "additionalProperties": false, "properties": {
            "envelope": {"type": ["object", "null"], "additionalProperties": false, "properties": {
                "from": {"anyOf": [{"type": "string", "maxLength": 998, "pattern": emailengine_core::compose::EMAIL_PATTERN}, {"const": ""}, {"type": "null"}]},
                "to": {"type": ["array", "null"], "items": {"type": "string", "maxLength": 998, "pattern": emailengine_core::compose::EMAIL_PATTERN}}}},
            "sendAt": {"type": ["string", "null"], "format": "date-time"},
            "deliveryAttempts": {"type": ["integer", "null"], "minimum": 1, "maximum": 100},
            "copy": {"type": ["boolean", "null"]},
            "sentMailPath": {"type": ["string", "null"], "maxLength": 1024},
            "gateway": {"type": ["string", "null"], "maxLength": 256},
            "dsn": {"anyOf": [{"type": "null"}, {"type": "object", "additionalProperties": false, "required": ["return"], "properties": {
                "id": {"type": ["string", "null"]},
                "return": {"enum": ["headers", "full"]},
                "notify": {"anyOf": [{"type": "null"},
                    {"type": "array", "items": {"enum": ["success", "failure", "delay"]}},
                    {"type": "array", "items": {"const": "never"}, "minItems": 1, "maxItems": 1}]},
                "recipient": {"type": ["string", "null"], "maxLength": 998, "pattern": emailengine_core::compose::EMAIL_PATTERN}}}]},
            "proxy": {"type": ["string", "null"], "maxLength": 1024, "pattern": "^(http|https|socks|socks4|socks4a|socks5)://[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?(:[0-9]{1,4})?/?$"},
            "localAddress": {"anyOf": [{"type": "null"}, {"type": "string", "format": "ipv4"}, {"type": "string", "format": "ipv6"}]},
            "feedbackKey": {"type": ["string", "null"], "maxLength": 1024}}}))),
    security(("bearerAuth" = [])))]
pub async fn submit_stored(
    State(state): State<AppState>,
    AccountMail(mail): AccountMail,
    Path((account, message)): Path<(String, String)>,
    Extension(ctx): Extension<AuthContext>,
    headers: HeaderMap,
    JsonObject(body): JsonObject,
) -> ApiResult<Json<Value>> {
    let o = request::options(&body, true).map_err(ApiError::invalid_input)?;
    if o.proxy.is_some() && ctx.restricted {
        return Err(ApiError::forbidden(
            "A token with restricted permissions can not override the connection route",
        ));
    }
    let key = idempotency_key(&headers)?;
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
    let envelope_to = o
        .envelope_to
        .clone()
        .unwrap_or_else(|| [list(parsed.to()), list(parsed.cc()), list(parsed.bcc())].concat());
    if envelope_to.is_empty() {
        return Err(ApiError::field("to", "must contain at least 1 recipient"));
    }
    let prepared = message::Prepared {
        envelope_from: o
            .envelope_from
            .clone()
            .or_else(|| list(parsed.from()).into_iter().next())
            .unwrap_or_default(),
        envelope_to,
        message_id: parsed
            .message_id()
            .map(|m| format!("<{m}>"))
            .unwrap_or_default(),
        subject: parsed.subject().map(str::to_string),
        // Bcc must not travel in the headers.
        raw: strip_bcc(&source),
        send_at: o.send_at,
        attempts: None,
        gateway: None,
        reference: None,
    };
    let now = chrono::Utc::now().timestamp_millis();
    let e = entry(&prepared, &o, now, o.gateway.clone());
    let mut response = queued_json(&e);
    response["response"] = json!("Queued for delivery");
    if let Some(earlier) = idempotent(&state, &account, key.as_deref(), &mut response).await? {
        return Ok(Json(earlier));
    }
    enqueue(&state, &account, std::slice::from_ref(&e)).await?;
    // Once queued, the draft has done its job: it leaves the Drafts folder, as in EmailEngine.
    if let Err(e) = mail.delete(&message, true).await {
        tracing::warn!(account, err = %e, "Failed to remove a submitted draft");
    }
    Ok(Json(response))
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
