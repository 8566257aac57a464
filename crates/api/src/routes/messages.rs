//! Message routes (spec §5.3, §6.4): list and search a folder, read a message, its source, text
//! and attachments, change flags and labels, move, delete, upload, and the bulk variants. Each
//! handler reads its input and calls the account's mail backend; no protocol is spoken here.

use axum::Json;
use axum::body::Body;
use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use serde_json::{Map, Value, json};

use emailengine_mail::{
    DetailsOptions, FlagChanges, MessagePage, MessageUpdate, Page, Search, TextType, Upload,
};

use crate::error::{ApiError, ApiResult};
use crate::extract::{JsonObject, QueryParams};
use crate::mail::AccountMail;
use crate::reference;
use crate::state::AppState;

const DEFAULT_MAX_BYTES: i64 = 5 * 1024 * 1024;

fn page_cursor(page: usize) -> String {
    format!(
        "imap_{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(json!({"page": page}).to_string())
    )
}

fn parse_cursor(cursor: &str) -> ApiResult<usize> {
    let bad =
        || ApiError::field("cursor", "is not a valid cursor").with("code", "InvalidCursorType");
    let raw = cursor.strip_prefix("imap_").ok_or_else(bad)?;
    // Past the prefix a cursor is opaque: one that does not decode starts from the first page.
    Ok(base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(raw)
        .ok()
        .and_then(|bytes| serde_json::from_slice::<Value>(&bytes).ok())
        .and_then(|v| v.get("page").and_then(Value::as_u64))
        .map_or(0, |p| p.min(1_048_576) as usize))
}

/// `page`, `pageSize` and `cursor` of a listing.
fn paging(query: &mut QueryParams) -> ApiResult<Page> {
    let mut page = query.int("page", 0, 1_048_576, 0) as usize;
    let size = query.int("pageSize", 1, 1000, 20) as usize;
    if let Some(c) = query.string("cursor", 1024) {
        page = parse_cursor(&c)?;
    }
    Ok(Page { page, size })
}

/// A page of messages with EmailEngine's paging fields and cursors.
fn message_page(p: MessagePage) -> Json<Value> {
    let cursor = |page: usize, exists: bool| {
        if exists {
            Value::from(page_cursor(page))
        } else {
            Value::Null
        }
    };
    Json(json!({
        "total": p.total, "page": p.page, "pages": p.pages,
        "nextPageCursor": cursor(p.page + 1, p.page + 1 < p.pages),
        "prevPageCursor": cursor(p.page.saturating_sub(1), p.page > 0),
        "messages": p.messages,
    }))
}

/// Adds `bounces` to messages whose Message-ID has bounce records (spec §21.4).
async fn with_bounces(state: &AppState, account: &str, messages: &mut [Value]) -> ApiResult<()> {
    let ids: Vec<String> = messages
        .iter()
        .filter_map(|m| {
            m.get("messageId")
                .and_then(Value::as_str)
                .map(str::to_string)
        })
        .collect();
    if ids.is_empty() {
        return Ok(());
    }
    let records = state.store.bounce_records(account, &ids).await?;
    let mut found = ids.into_iter().zip(records);
    for m in messages.iter_mut() {
        if m.get("messageId").and_then(Value::as_str).is_none() {
            continue;
        }
        let Some((_, Some(bytes))) = found.next() else {
            continue;
        };
        match emailengine_feedback::bounce_listing(&bytes) {
            Ok(list) if !list.is_empty() => {
                m["bounces"] = serde_json::to_value(list).unwrap_or(Value::Null);
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(account, err = %e, "Unreadable bounce records"),
        }
    }
    Ok(())
}

/// The `search` object of a request body.
fn search_of(body: &Map<String, Value>, required: bool) -> ApiResult<Search> {
    match body.get("search") {
        Some(Value::Object(m)) => Search::from_json("search", m).map_err(ApiError::invalid_input),
        None if !required => Ok(Search::default()),
        None => Err(ApiError::field("search", "is required")),
        _ => Err(ApiError::field("search", "must be of type object")),
    }
}

/// Refuses body keys outside `allowed`, as Joi does.
fn only(body: &Map<String, Value>, allowed: &[&str]) -> ApiResult<()> {
    let errors: Vec<_> = body
        .keys()
        .filter(|k| !allowed.contains(&k.as_str()))
        .map(|k| emailengine_core::validation::FieldError::about(k, "is not allowed"))
        .collect();
    if errors.is_empty() {
        Ok(())
    } else {
        Err(ApiError::invalid_input(errors))
    }
}

/// Reading options: `maxBytes`, `textType`, `webSafeHtml`, `markAsSeen`.
fn read_options(query: &mut QueryParams, mark: bool) -> DetailsOptions {
    let max_bytes = query.int("maxBytes", 0, 1 << 40, DEFAULT_MAX_BYTES) as usize;
    let text_type = match query.string("textType", 16) {
        None => TextType::All,
        Some(t) => TextType::parse(&t).unwrap_or_else(|| {
            query.reject("textType", "must be one of [html, plain, *]");
            TextType::All
        }),
    };
    let web_safe_html = query.bool("webSafeHtml").unwrap_or(false);
    let embed = query.bool("embedAttachedImages").unwrap_or(false);
    let _ = query.bool("preProcessHtml");
    let mark_as_seen = mark && query.bool("markAsSeen").unwrap_or(false);
    DetailsOptions {
        max_bytes,
        text_type,
        web_safe_html: web_safe_html || embed,
        mark_as_seen,
    }
}

/// List messages in a folder
///
/// Newest first. Page with `page`/`pageSize` or the returned cursors.
#[utoipa::path(get, path = "/v1/account/{account}/messages", tag = "Message",
    params(("account" = String, Path, description = "Account id"),
        ("path" = String, Query, min_length = 1, max_length = 1024, pattern = "^[^\\u0000-\\u001f\\u007f]+$", description = "Folder path"),
        ("page" = Option<u32>, Query, minimum = 0, maximum = 1048576, description = "Page number, from 0"),
        ("pageSize" = Option<u32>, Query, minimum = 1, maximum = 1000, description = "Messages per page (1..1000, default 20)"),
        ("cursor" = Option<String>, Query, pattern = "^imap_[A-Za-z0-9_-]*$", max_length = 1024, description = "Cursor from a previous page")),
    responses((status = 200, description = "`{total, page, pages, nextPageCursor, prevPageCursor, messages}`", body = Object)),
    extensions(("x-ee-group" = json!("message")), ("x-ee-action" = json!("read"))),
    security(("bearerAuth" = [])))]
pub async fn list(
    State(state): State<AppState>,
    AccountMail(mail): AccountMail,
    axum::extract::Path(account): axum::extract::Path<String>,
    mut query: QueryParams,
) -> ApiResult<Json<Value>> {
    let path = query.folder("path");
    let page = paging(&mut query)?;
    query.finish()?;
    let mut listed = mail.list(&path, page).await?;
    with_bounces(&state, &account, &mut listed.messages).await?;
    Ok(message_page(listed))
}

/// Search messages
#[utoipa::path(post, path = "/v1/account/{account}/search", tag = "Message",
    params(("account" = String, Path, description = "Account id"),
        ("path" = String, Query, min_length = 1, max_length = 1024, pattern = "^[^\\u0000-\\u001f\\u007f]+$", description = "Folder path"),
        ("page" = Option<u32>, Query, minimum = 0, maximum = 1048576, description = "Page number, from 0"),
        ("pageSize" = Option<u32>, Query, minimum = 1, maximum = 1000, description = "Messages per page (1..1000, default 20)"),
        ("cursor" = Option<String>, Query, pattern = "^imap_[A-Za-z0-9_-]*$", max_length = 1024, description = "Cursor from a previous page")),
    request_body(content = Object, description = "`{search: {seq, uid, answered, deleted, draft, unseen, flagged, seen, from, to, cc, bcc, body, subject, larger, smaller, modseq, before, since, sentBefore, sentSince, emailId, threadId, header, gmraw}}`"),
    responses((status = 200, description = "Same shape as the message list", body = Object)),
    extensions(("x-ee-group" = json!("message")), ("x-ee-action" = json!("read")),
        ("x-ee-body" = json!({"type": "object", "additionalProperties": false,
            "properties": {"search": crate::schema::search(), "documentQuery": {"type": "object"}}}))),
    security(("bearerAuth" = [])))]
pub async fn search(
    AccountMail(mail): AccountMail,
    mut query: QueryParams,
    JsonObject(body): JsonObject,
) -> ApiResult<Json<Value>> {
    let path = query.folder("path");
    let page = paging(&mut query)?;
    query.finish()?;
    only(&body, &["search", "documentQuery"])?;
    if body.get("documentQuery").is_some_and(|q| !q.is_object()) {
        return Err(ApiError::field("documentQuery", "must be of type object"));
    }
    let search = search_of(&body, false)?;
    Ok(message_page(mail.search(&path, &search, page).await?))
}

/// Get message information
#[utoipa::path(get, path = "/v1/account/{account}/message/{message}", tag = "Message",
    params(("account" = String, Path, description = "Account id"), ("message" = String, Path, description = "Message id"),
        ("maxBytes" = Option<u32>, Query, description = "Longest text returned, in bytes"),
        ("textType" = Option<String>, Query, pattern = "^(plain|html|\\*)$", description = "`plain`, `html` or `*` (both)"),
        ("webSafeHtml" = Option<bool>, Query, description = "Sanitised HTML with inline images embedded"),
        ("embedAttachedImages" = Option<bool>, Query, description = "Embed `cid:` images as data URLs"),
        ("preProcessHtml" = Option<bool>, Query, description = "Accepted for compatibility"),
        ("markAsSeen" = Option<bool>, Query, description = "Set the \\Seen flag")),
    responses((status = 200, description = "Message details", body = Object), (status = 404, description = "Not found")),
    extensions(("x-ee-group" = json!("message")), ("x-ee-action" = json!("read"))),
    security(("bearerAuth" = [])))]
pub async fn get_one(
    State(state): State<AppState>,
    AccountMail(mail): AccountMail,
    axum::extract::Path((account, message)): axum::extract::Path<(String, String)>,
    mut query: QueryParams,
) -> ApiResult<Json<Value>> {
    let options = read_options(&mut query, true);
    query.finish()?;
    let mut details = [mail.message(&message, &options).await?];
    with_bounces(&state, &account, &mut details).await?;
    let [details] = details;
    Ok(Json(details))
}

/// Download raw message
#[utoipa::path(get, path = "/v1/account/{account}/message/{message}/source", tag = "Message",
    params(("account" = String, Path, description = "Account id"), ("message" = String, Path, description = "Message id")),
    responses((status = 200, description = "RFC 822 source", content_type = "message/rfc822")),
    extensions(("x-ee-group" = json!("message")), ("x-ee-action" = json!("read"))),
    security(("bearerAuth" = [])))]
pub async fn source(
    AccountMail(mail): AccountMail,
    axum::extract::Path((_account, message)): axum::extract::Path<(String, String)>,
) -> ApiResult<Response> {
    let body = mail.source(&message).await?;
    Ok((
        [
            (header::CONTENT_TYPE, "message/rfc822"),
            (
                header::CONTENT_DISPOSITION,
                "attachment; filename=message.eml",
            ),
        ],
        Body::from_stream(body),
    )
        .into_response())
}

/// `attachment; filename="…"; filename*=utf-8''…`: a plain fallback and the exact name.
fn content_disposition(name: &str) -> String {
    let plain: String = name
        .chars()
        .map(|c| {
            if c.is_ascii() && !c.is_control() && c != '"' && c != '\\' {
                c
            } else {
                '_'
            }
        })
        .collect();
    let mut exact = String::new();
    for b in name.bytes() {
        if b.is_ascii_alphanumeric() || b"!#$&+-.^_`|~".contains(&b) {
            exact.push(b as char);
        } else {
            exact.push_str(&format!("%{b:02X}"));
        }
    }
    format!("attachment; filename=\"{plain}\"; filename*=utf-8''{exact}")
}

/// Download an attachment
#[utoipa::path(get, path = "/v1/account/{account}/attachment/{attachment}", tag = "Message",
    params(("account" = String, Path, description = "Account id"), ("attachment" = String, Path, description = "Attachment id")),
    responses((status = 200, description = "Attachment content with its content type")),
    extensions(("x-ee-group" = json!("message")), ("x-ee-action" = json!("read"))),
    security(("bearerAuth" = [])))]
pub async fn attachment(
    AccountMail(mail): AccountMail,
    axum::extract::Path((_account, attachment)): axum::extract::Path<(String, String)>,
) -> ApiResult<Response> {
    let download = mail.attachment(&attachment).await?;
    let mut response = (
        [(header::CONTENT_TYPE, download.content_type)],
        Body::from_stream(download.body),
    )
        .into_response();
    if let Some(name) = download.filename
        && let Ok(v) = content_disposition(&name).parse()
    {
        response
            .headers_mut()
            .insert(header::CONTENT_DISPOSITION, v);
    }
    Ok(response)
}

/// Get message text
#[utoipa::path(get, path = "/v1/account/{account}/text/{text}", tag = "Message",
    params(("account" = String, Path, description = "Account id"), ("text" = String, Path, description = "Text id"),
        ("maxBytes" = Option<u32>, Query, description = "Longest text returned, in bytes"),
        ("textType" = Option<String>, Query, pattern = "^(plain|html|\\*)$", description = "`plain`, `html` or `*` (both)")),
    responses((status = 200, description = "`{plain, html, hasMore}`", body = Object)),
    extensions(("x-ee-group" = json!("message")), ("x-ee-action" = json!("read"))),
    security(("bearerAuth" = [])))]
pub async fn text(
    AccountMail(mail): AccountMail,
    axum::extract::Path((_account, text)): axum::extract::Path<(String, String)>,
    mut query: QueryParams,
) -> ApiResult<Json<Value>> {
    let options = read_options(&mut query, false);
    query.finish()?;
    Ok(Json(mail.text(&text, &options).await?))
}

/// A system flag, or a keyword that is an IMAP atom (see [`crate::schema::flag`]).
fn is_flag(s: &str) -> bool {
    const SYSTEM: [&str; 5] = ["\\Seen", "\\Answered", "\\Flagged", "\\Deleted", "\\Draft"];
    SYSTEM.contains(&s)
        || (!s.is_empty()
            && s.len() <= 255
            && s.bytes()
                .all(|b| b.is_ascii_graphic() && !b"(){%*\"\\]".contains(&b)))
}

fn flag_list(v: Option<&Value>, key: &str) -> ApiResult<Option<Vec<String>>> {
    string_list(v, key, is_flag)
}

fn label_list(v: Option<&Value>, key: &str) -> ApiResult<Option<Vec<String>>> {
    string_list(v, key, |s| !s.is_empty() && s.chars().count() <= 255)
}

fn string_list(
    v: Option<&Value>,
    key: &str,
    valid: fn(&str) -> bool,
) -> ApiResult<Option<Vec<String>>> {
    match v {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Array(items)) => items
            .iter()
            .map(|f| {
                f.as_str()
                    .filter(|s| valid(s))
                    .map(str::to_string)
                    .ok_or_else(|| ApiError::field(key, "must be an array of flags"))
            })
            .collect::<ApiResult<Vec<_>>>()
            .map(Some),
        Some(_) => Err(ApiError::field(key, "must be an array")),
    }
}

/// Reads one list of a changes object (flags or labels).
type ListReader = fn(Option<&Value>, &str) -> ApiResult<Option<Vec<String>>>;

fn changes(v: Option<&Value>, key: &str, list: ListReader) -> ApiResult<FlagChanges> {
    match v {
        None => Ok(FlagChanges::default()),
        Some(Value::Object(m)) => {
            only(m, &["add", "delete", "set"])
                .map_err(|_| ApiError::field(key, "must only have the keys add, delete and set"))?;
            Ok(FlagChanges {
                add: list(m.get("add"), &format!("{key}.add"))?,
                delete: list(m.get("delete"), &format!("{key}.delete"))?,
                set: list(m.get("set"), &format!("{key}.set"))?,
            })
        }
        Some(_) => Err(ApiError::field(key, "must be of type object")),
    }
}

fn message_update(body: &Map<String, Value>, prefix: &str) -> ApiResult<MessageUpdate> {
    only(body, &["flags", "labels"])?;
    Ok(MessageUpdate {
        flags: changes(body.get("flags"), &format!("{prefix}flags"), flag_list)?,
        labels: changes(body.get("labels"), &format!("{prefix}labels"), label_list)?,
    })
}

/// Update message flags and labels
#[utoipa::path(put, path = "/v1/account/{account}/message/{message}", tag = "Message",
    params(("account" = String, Path, description = "Account id"), ("message" = String, Path, description = "Message id")),
    request_body(content = Object, description = "`{flags: {add, delete, set}, labels: {add, delete, set}}`"),
    responses((status = 200, description = "`{flags: {add, delete, set}}`", body = Object)),
    extensions(("x-ee-group" = json!("message")), ("x-ee-action" = json!("write")),
        ("x-ee-body" = json!(crate::schema::message_update()))),
    security(("bearerAuth" = [])))]
pub async fn update(
    AccountMail(mail): AccountMail,
    axum::extract::Path((_account, message)): axum::extract::Path<(String, String)>,
    JsonObject(body): JsonObject,
) -> ApiResult<Json<Value>> {
    let update = message_update(&body, "")?;
    Ok(Json(mail.update(&message, &update).await?))
}

fn target_path(body: &Map<String, Value>) -> ApiResult<String> {
    match body.get("path") {
        Some(Value::String(p))
            if crate::extract::is_folder_name(p) && p.chars().count() <= 1024 =>
        {
            Ok(p.clone())
        }
        None => Err(ApiError::field("path", "is required")),
        Some(_) => Err(ApiError::field("path", "must be a folder path")),
    }
}

/// Move a message
#[utoipa::path(put, path = "/v1/account/{account}/message/{message}/move", tag = "Message",
    params(("account" = String, Path, description = "Account id"), ("message" = String, Path, description = "Message id")),
    request_body(content = Object, description = "`{path}`: the destination folder"),
    responses((status = 200, description = "`{path, id, uid}`", body = Object)),
    extensions(("x-ee-group" = json!("message")), ("x-ee-action" = json!("write")),
        ("x-ee-body" = json!({"type": "object", "additionalProperties": false, "required": ["path"],
            "properties": {"path": {"type": "string", "minLength": 1, "maxLength": 1024, "pattern": crate::schema::FOLDER}}}))),
    security(("bearerAuth" = [])))]
pub async fn move_message(
    AccountMail(mail): AccountMail,
    axum::extract::Path((_account, message)): axum::extract::Path<(String, String)>,
    JsonObject(body): JsonObject,
) -> ApiResult<Json<Value>> {
    only(&body, &["path"])?;
    let target = target_path(&body)?;
    let moved = mail.move_message(&message, &target).await?;
    let mut out = json!({"path": moved.path});
    if let (Some(id), Some(uid)) = (moved.id, moved.uid) {
        out["id"] = json!(id);
        out["uid"] = json!(uid);
    }
    Ok(Json(out))
}

/// Delete a message
///
/// Moves it to Trash, or deletes it for good when it is already in Trash or `force=true`.
#[utoipa::path(delete, path = "/v1/account/{account}/message/{message}", tag = "Message",
    params(("account" = String, Path, description = "Account id"), ("message" = String, Path, description = "Message id"),
        ("force" = Option<bool>, Query, description = "Delete for good instead of moving to Trash")),
    responses((status = 200, description = "`{deleted, moved?}`", body = Object)),
    extensions(("x-ee-group" = json!("message")), ("x-ee-action" = json!("destructive"))),
    security(("bearerAuth" = [])))]
pub async fn delete(
    AccountMail(mail): AccountMail,
    axum::extract::Path((_account, message)): axum::extract::Path<(String, String)>,
    mut query: QueryParams,
) -> ApiResult<Json<Value>> {
    let force = query.bool("force").unwrap_or(false);
    query.finish()?;
    Ok(Json(mail.delete(&message, force).await?.answer()))
}

const UPLOAD_KEYS: &[&str] = &["path", "flags", "raw", "reference", "internalDate"];

/// The raw message of an upload: base64 as EmailEngine takes it, or RFC 822 text.
fn raw_message(raw: &str) -> Vec<u8> {
    let compact: String = raw.chars().filter(|c| !c.is_ascii_whitespace()).collect();
    match base64::engine::general_purpose::STANDARD.decode(&compact) {
        Ok(bytes) if !compact.is_empty() && bytes.contains(&b':') => bytes,
        _ => raw.replace("\r\n", "\n").replace('\n', "\r\n").into_bytes(),
    }
}

/// Upload a message
///
/// Appends a message to a folder, given as `raw` (base64 or RFC 822 text) or composed from
/// `from`, `to`, `subject`, `text`, `html`, `attachments`, `headers`; `reference` makes it a
/// reply to or forward of a stored message.
#[utoipa::path(post, path = "/v1/account/{account}/message", tag = "Message",
    params(("account" = String, Path, description = "Account id")),
    request_body(content = Object, description = "`{path, flags?, internalDate?, raw?, reference?, from?, to?, subject?, text?, html?, attachments?, headers?, messageId?}`"),
    responses((status = 200, description = "`{id, path, uid, uidValidity, messageId}`", body = Object)),
    extensions(("x-ee-group" = json!("message")), ("x-ee-action" = json!("write"))),
    security(("bearerAuth" = [])))]
pub async fn upload(
    AccountMail(mail): AccountMail,
    JsonObject(body): JsonObject,
) -> ApiResult<Json<Value>> {
    let unknown: Vec<_> = body
        .keys()
        .filter(|k| {
            !UPLOAD_KEYS.contains(&k.as_str())
                && !emailengine_core::compose::KEYS.contains(&k.as_str())
        })
        .map(|k| emailengine_core::validation::FieldError::about(k, "is not allowed"))
        .collect();
    if !unknown.is_empty() {
        return Err(ApiError::invalid_input(unknown));
    }
    let path = target_path(&body)?;
    let flags = flag_list(body.get("flags"), "flags")?.unwrap_or_default();
    // An ISO date or milliseconds since the epoch.
    let internal_date = match body.get("internalDate") {
        None | Some(Value::Null) => None,
        Some(v) => Some(
            v.as_str()
                .and_then(emailengine_core::units::parse_iso_time)
                .or_else(|| v.as_i64().filter(|ms| *ms >= 0))
                .ok_or_else(|| ApiError::field("internalDate", "must be a valid date"))?,
        ),
    };
    let (raw, message_id) = match body.get("raw") {
        Some(Value::String(raw)) => {
            let bytes = raw_message(raw);
            let id = mail_parser::MessageParser::new()
                .parse_headers(&bytes)
                .and_then(|m| m.message_id().map(|i| format!("<{i}>")));
            (bytes, id)
        }
        Some(_) => return Err(ApiError::field("raw", "must be a string")),
        None => {
            let mut c = emailengine_core::compose::parse(&body).map_err(ApiError::invalid_input)?;
            if let Some(Value::Object(r)) = body.get("reference") {
                reference::apply(mail.as_ref(), r, &mut c).await?;
            }
            let host = c
                .from
                .as_ref()
                .and_then(|f| f.address.split_once('@').map(|(_, d)| d.to_string()))
                .unwrap_or_else(|| "emailengine.local".into());
            let id = c.ensure_message_id(&host);
            (c.build(chrono::Utc::now().timestamp()), Some(id))
        }
    };
    let uploaded = mail
        .upload(&Upload {
            path,
            raw,
            flags,
            internal_date,
        })
        .await?;
    let mut out = json!({"path": uploaded.path, "messageId": message_id});
    if let (Some(id), Some(uid)) = (uploaded.id, uploaded.uid) {
        out["id"] = json!(id);
        out["uid"] = json!(uid);
    }
    if let Some(v) = uploaded.uid_validity {
        out["uidValidity"] = json!(v.to_string());
    }
    Ok(Json(out))
}

/// `?path=` of a bulk request.
fn bulk_path(query: &mut QueryParams) -> String {
    query.folder("path")
}

/// Update flags of many messages
#[utoipa::path(put, path = "/v1/account/{account}/messages", tag = "Message",
    params(("account" = String, Path, description = "Account id"), ("path" = String, Query, min_length = 1, max_length = 1024, pattern = "^[^\\u0000-\\u001f\\u007f]+$", description = "Folder path")),
    request_body(content = Object, description = "`{search: {...}, update: {flags: {add, delete, set}, labels: {...}}}`"),
    responses((status = 200, description = "`{flags: {add?, delete?, set?}}`", body = Object)),
    extensions(("x-ee-group" = json!("message")), ("x-ee-action" = json!("write")),
        ("x-ee-body" = json!({"type": "object", "additionalProperties": false, "required": ["search"],
            "properties": {"search": crate::schema::search(), "update": crate::schema::message_update()}}))),
    security(("bearerAuth" = [])))]
pub async fn bulk_update(
    AccountMail(mail): AccountMail,
    mut query: QueryParams,
    JsonObject(body): JsonObject,
) -> ApiResult<Json<Value>> {
    let path = bulk_path(&mut query);
    query.finish()?;
    only(&body, &["search", "update"])?;
    let search = search_of(&body, true)?;
    let update = match body.get("update") {
        Some(Value::Object(u)) => message_update(u, "update.")?,
        None => MessageUpdate::default(),
        Some(_) => return Err(ApiError::field("update", "must be of type object")),
    };
    Ok(Json(mail.bulk_update(&path, &search, &update).await?))
}

/// Move many messages
#[utoipa::path(put, path = "/v1/account/{account}/messages/move", tag = "Message",
    params(("account" = String, Path, description = "Account id"), ("path" = String, Query, min_length = 1, max_length = 1024, pattern = "^[^\\u0000-\\u001f\\u007f]+$", description = "Source folder")),
    request_body(content = Object, description = "`{search: {...}, path: <destination>}`"),
    responses((status = 200, description = "`{path, moved}`", body = Object)),
    extensions(("x-ee-group" = json!("message")), ("x-ee-action" = json!("write")),
        ("x-ee-body" = json!({"type": "object", "additionalProperties": false, "required": ["search", "path"],
            "properties": {"search": crate::schema::search(), "path": {"type": "string", "minLength": 1, "maxLength": 1024, "pattern": crate::schema::FOLDER}}}))),
    security(("bearerAuth" = [])))]
pub async fn bulk_move(
    AccountMail(mail): AccountMail,
    mut query: QueryParams,
    JsonObject(body): JsonObject,
) -> ApiResult<Json<Value>> {
    let path = bulk_path(&mut query);
    query.finish()?;
    only(&body, &["search", "path"])?;
    let target = target_path(&body)?;
    let search = search_of(&body, true)?;
    Ok(Json(mail.bulk_move(&path, &search, &target).await?))
}

/// Delete many messages
///
/// Moves the matching messages to Trash, or deletes them for good when the folder is Trash or
/// `force=true`.
#[utoipa::path(put, path = "/v1/account/{account}/messages/delete", tag = "Message",
    params(("account" = String, Path, description = "Account id"), ("path" = String, Query, min_length = 1, max_length = 1024, pattern = "^[^\\u0000-\\u001f\\u007f]+$", description = "Folder path"),
        ("force" = Option<bool>, Query, description = "Delete for good")),
    request_body(content = Object, description = "`{search: {...}}`"),
    responses((status = 200, description = "`{deleted, moved?}`", body = Object)),
    extensions(("x-ee-group" = json!("message")), ("x-ee-action" = json!("destructive")),
        ("x-ee-body" = json!({"type": "object", "additionalProperties": false, "required": ["search"],
            "properties": {"search": crate::schema::search()}}))),
    security(("bearerAuth" = [])))]
pub async fn bulk_delete(
    AccountMail(mail): AccountMail,
    mut query: QueryParams,
    JsonObject(body): JsonObject,
) -> ApiResult<Json<Value>> {
    let path = bulk_path(&mut query);
    let force = query.bool("force").unwrap_or(false);
    query.finish()?;
    only(&body, &["search"])?;
    let search = search_of(&body, true)?;
    Ok(Json(
        mail.bulk_delete(&path, &search, force).await?.answer(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dispositions_carry_the_exact_name() {
        assert_eq!(
            content_disposition("data.bin"),
            "attachment; filename=\"data.bin\"; filename*=utf-8''data.bin"
        );
        assert_eq!(
            content_disposition("résumé \"v2\".pdf"),
            "attachment; filename=\"r_sum_ _v2_.pdf\"; filename*=utf-8''r%C3%A9sum%C3%A9%20%22v2%22.pdf"
        );
    }

    #[test]
    fn raw_uploads_take_base64_or_text() {
        let text = "Subject: x\nFrom: a@b\n\nbody\n";
        assert_eq!(
            raw_message(text),
            b"Subject: x\r\nFrom: a@b\r\n\r\nbody\r\n"
        );
        let encoded = base64::engine::general_purpose::STANDARD.encode("Subject: y\r\n\r\nhi\r\n");
        assert_eq!(raw_message(&encoded), b"Subject: y\r\n\r\nhi\r\n");
    }
}
