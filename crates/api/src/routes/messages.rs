//! Message routes (spec §5.3, §6.4): list and search a folder, read a message, its source, text
//! and attachments, change flags, move and delete. Reads run on pooled command sessions, never
//! on the account's IDLE connection.

use axum::Json;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use futures_util::StreamExt;
use serde_json::{Map, Value, json};

use emailengine_core::ids::{MessageId, decode_attachment_id, decode_text_id};
use emailengine_imap::PooledSession;
use emailengine_imap::folders::encode_path;
use emailengine_imap::message::{self, Fetched};
use emailengine_imap::sync::{fetch_summaries, flag_text};

use crate::error::{ApiError, ApiResult};
use crate::extract::{JsonObject, QueryParams};
use crate::routes::accounts::load;
use crate::routes::mailboxes::{folders, imap_failed, op_error};
use crate::state::AppState;

const DEFAULT_MAX_BYTES: i64 = 5 * 1024 * 1024;

fn message_not_found() -> ApiError {
    ApiError::not_found("Requested message was not found").with("code", "MessageNotFound")
}

/// A message id resolved to its folder.
pub(crate) struct Located {
    pub(crate) id: MessageId,
    path: String,
    uid_validity: u64,
}

pub(crate) async fn locate(state: &AppState, account: &str, id: &str) -> ApiResult<Located> {
    let id = MessageId::decode(id).ok_or_else(message_not_found)?;
    let (uid_validity, path) = state
        .store
        .mailbox_by_id(account, id.mailbox)
        .await?
        .ok_or_else(message_not_found)?;
    Ok(Located {
        id,
        path,
        uid_validity,
    })
}

/// Opens the message's folder read-only, checking the folder is the same generation.
pub(crate) async fn open(
    state: &AppState,
    account: &str,
    at: &Located,
    write: bool,
) -> ApiResult<PooledSession> {
    let mut s = state.engine.session(account).await.map_err(op_error)?;
    let mailbox = s
        .open_folder(&at.path, write)
        .await
        .map_err(imap_failed(&mut s))?;
    if mailbox.uid_validity != at.uid_validity {
        return Err(message_not_found());
    }
    Ok(s)
}

/// Fetches one message with its whole source.
pub(crate) async fn fetch_full(s: &mut PooledSession, uid: u32) -> ApiResult<(Fetched, Vec<u8>)> {
    let result = s
        .uid_fetch_all(
            uid.to_string(),
            "(UID FLAGS RFC822.SIZE INTERNALDATE BODY.PEEK[])",
        )
        .await;
    let fetched = result.map_err(imap_failed(s))?;
    let f = fetched
        .iter()
        .find(|f| f.uid == Some(uid))
        .ok_or_else(message_not_found)?;
    let source = f.body().unwrap_or_default().to_vec();
    Ok((
        Fetched {
            uid,
            flags: f.flags().filter_map(|x| flag_text(&x)).collect(),
            size: f.size.unwrap_or(source.len() as u32),
            internal_date: f.internal_date().map(|d| d.timestamp_millis()),
            modseq: f.modseq.unwrap_or(0),
            header: Vec::new(),
        },
        source,
    ))
}

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
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(raw)
        .map_err(|_| bad())?;
    let v: Value = serde_json::from_slice(&bytes).map_err(|_| bad())?;
    v.get("page")
        .and_then(Value::as_u64)
        .map(|p| p as usize)
        .ok_or_else(bad)
}

/// List messages in a folder
///
/// Newest first. Page with `page`/`pageSize` or the returned cursors.
#[utoipa::path(get, path = "/v1/account/{account}/messages", tag = "Message",
    params(("account" = String, Path, description = "Account id"),
        ("path" = String, Query, description = "Folder path"),
        ("page" = Option<u32>, Query, description = "Page number, from 0"),
        ("pageSize" = Option<u32>, Query, description = "Messages per page (1..1000, default 20)"),
        ("cursor" = Option<String>, Query, description = "Cursor from a previous page")),
    responses((status = 200, description = "`{total, page, pages, nextPageCursor, prevPageCursor, messages}`", body = Object)),
    security(("bearerAuth" = [])))]
pub async fn list(
    State(state): State<AppState>,
    Path(account): Path<String>,
    mut query: QueryParams,
) -> ApiResult<Json<Value>> {
    let path = query.required_string("path", 1024);
    let mut page = query.int("page", 0, 1_048_576, 0) as usize;
    let page_size = query.int("pageSize", 1, 1000, 20) as usize;
    let cursor = query.string("cursor", 1024);
    query.finish()?;
    if let Some(c) = cursor {
        page = parse_cursor(&c)?;
    }
    load(&state, &account).await?;
    let mut s = state.engine.session(&account).await.map_err(op_error)?;
    let mailbox = s.open_folder(&path, false).await.map_err(|e| match e {
        async_imap::error::Error::No(_) => {
            ApiError::not_found("Mailbox was not found").with("code", "NotFound")
        }
        e => imap_failed(&mut s)(e),
    })?;
    let total = mailbox.exists as usize;
    let pages = total.div_ceil(page_size).max(1);
    let mut messages = Vec::new();
    let seq_max = total.saturating_sub(page * page_size);
    if seq_max >= 1 {
        let seq_min = seq_max.saturating_sub(page_size - 1).max(1);
        let mailbox_id = state
            .store
            .mailbox_id(&account, mailbox.uid_validity, &path)
            .await?;
        let mut fetched =
            match fetch_summaries(s.in_folder(), &format!("{seq_min}:{seq_max}"), false).await {
                Ok(f) => f,
                Err(e) => return Err(imap_failed(&mut s)(e)),
            };
        fetched.sort_by_key(|f| std::cmp::Reverse(f.uid));
        messages = fetched
            .iter()
            .map(|f| message::list_entry(mailbox_id, &path, f))
            .collect();
    }
    Ok(message_page(messages, total, page, pages))
}

/// A page of messages with EmailEngine's paging fields and cursors.
fn message_page(messages: Vec<Value>, total: usize, page: usize, pages: usize) -> Json<Value> {
    let cursor = |p: usize, exists: bool| {
        if exists {
            Value::from(page_cursor(p))
        } else {
            Value::Null
        }
    };
    Json(json!({
        "total": total, "page": page, "pages": pages,
        "nextPageCursor": cursor(page + 1, page + 1 < pages),
        "prevPageCursor": cursor(page.saturating_sub(1), page > 0),
        "messages": messages,
    }))
}

/// Builds an IMAP SEARCH query from EmailEngine's search object.
fn search_query(search: &Map<String, Value>) -> ApiResult<String> {
    let quote = |s: &str| format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""));
    let date = |key: &str, v: &Value| -> ApiResult<String> {
        let ms = v
            .as_str()
            .and_then(emailengine_core::units::parse_iso_time)
            .or_else(|| {
                v.as_str().and_then(|s| {
                    chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d")
                        .ok()
                        .and_then(|d| d.and_hms_opt(0, 0, 0))
                        .map(|d| d.and_utc().timestamp_millis())
                })
            })
            .ok_or_else(|| ApiError::field(&format!("search.{key}"), "must be a valid date"))?;
        let d = chrono::DateTime::from_timestamp_millis(ms)
            .ok_or_else(|| ApiError::field(&format!("search.{key}"), "must be a valid date"))?;
        Ok(d.format("%-d-%b-%Y").to_string())
    };
    let mut terms = Vec::new();
    for (key, v) in search {
        let flag = |set: &str, unset: &str| -> ApiResult<String> {
            match v.as_bool() {
                Some(true) => Ok(set.to_string()),
                Some(false) => Ok(unset.to_string()),
                None => Err(ApiError::field(
                    &format!("search.{key}"),
                    "must be a boolean",
                )),
            }
        };
        let text = || -> ApiResult<String> {
            v.as_str()
                .map(quote)
                .ok_or_else(|| ApiError::field(&format!("search.{key}"), "must be a string"))
        };
        terms.push(match key.as_str() {
            "seen" => flag("SEEN", "UNSEEN")?,
            "answered" => flag("ANSWERED", "UNANSWERED")?,
            "flagged" => flag("FLAGGED", "UNFLAGGED")?,
            "deleted" => flag("DELETED", "UNDELETED")?,
            "draft" => flag("DRAFT", "UNDRAFT")?,
            "from" | "to" | "cc" | "bcc" | "subject" | "body" | "text" => {
                format!("{} {}", key.to_uppercase(), text()?)
            }
            "since" => format!("SINCE {}", date(key, v)?),
            "before" => format!("BEFORE {}", date(key, v)?),
            "sentSince" => format!("SENTSINCE {}", date(key, v)?),
            "sentBefore" => format!("SENTBEFORE {}", date(key, v)?),
            "larger" | "smaller" => format!(
                "{} {}",
                key.to_uppercase(),
                v.as_u64()
                    .ok_or_else(|| ApiError::field(&format!("search.{key}"), "must be a number"))?
            ),
            "uid" => {
                let set = v
                    .as_str()
                    .filter(|s| {
                        !s.is_empty()
                            && s.bytes()
                                .all(|b| b.is_ascii_digit() || b == b':' || b == b',' || b == b'*')
                    })
                    .ok_or_else(|| ApiError::field("search.uid", "must be a UID range"))?;
                format!("UID {set}")
            }
            "keyword" | "unKeyword" => {
                let k = v
                    .as_str()
                    .filter(|s| {
                        !s.is_empty()
                            && s.bytes()
                                .all(|b| b.is_ascii_graphic() && !b"(){%*\"\\]".contains(&b))
                    })
                    .ok_or_else(|| {
                        ApiError::field(&format!("search.{key}"), "must be a keyword")
                    })?;
                format!(
                    "{} {k}",
                    if key == "keyword" {
                        "KEYWORD"
                    } else {
                        "UNKEYWORD"
                    }
                )
            }
            "header" => {
                let Value::Object(h) = v else {
                    return Err(ApiError::field("search.header", "must be of type object"));
                };
                h.iter()
                    .map(|(name, val)| {
                        if name.is_empty()
                            || !name.bytes().all(|b| b.is_ascii_graphic() && b != b':')
                        {
                            return Err(ApiError::field(
                                "search.header",
                                "has an invalid header name",
                            ));
                        }
                        Ok(format!(
                            "HEADER {} {}",
                            quote(name),
                            quote(val.as_str().unwrap_or(""))
                        ))
                    })
                    .collect::<ApiResult<Vec<_>>>()?
                    .join(" ")
            }
            other => {
                return Err(ApiError::field(
                    &format!("search.{other}"),
                    "is not allowed",
                ));
            }
        });
    }
    Ok(if terms.is_empty() {
        "ALL".into()
    } else {
        terms.join(" ")
    })
}

/// Search messages
#[utoipa::path(post, path = "/v1/account/{account}/search", tag = "Message",
    params(("account" = String, Path, description = "Account id"),
        ("path" = String, Query, description = "Folder path"),
        ("page" = Option<u32>, Query, description = "Page number, from 0"),
        ("pageSize" = Option<u32>, Query, description = "Messages per page (1..1000, default 20)")),
    request_body(content = Object, description = "`{search: {seen, flagged, from, to, subject, body, since, before, header, uid, …}}`"),
    responses((status = 200, description = "Same shape as the message list", body = Object)),
    security(("bearerAuth" = [])))]
pub async fn search(
    State(state): State<AppState>,
    Path(account): Path<String>,
    mut query: QueryParams,
    JsonObject(body): JsonObject,
) -> ApiResult<Json<Value>> {
    let path = query.required_string("path", 1024);
    let page = query.int("page", 0, 1_048_576, 0) as usize;
    let page_size = query.int("pageSize", 1, 1000, 20) as usize;
    query.finish()?;
    let criteria = match body.get("search") {
        Some(Value::Object(m)) => search_query(m)?,
        None => "ALL".into(),
        _ => return Err(ApiError::field("search", "must be of type object")),
    };
    load(&state, &account).await?;
    let mut s = state.engine.session(&account).await.map_err(op_error)?;
    let mailbox = s
        .open_folder(&path, false)
        .await
        .map_err(imap_failed(&mut s))?;
    let uids = s
        .in_folder()
        .uid_search(&criteria)
        .await
        .map_err(imap_failed(&mut s))?;
    let mut uids: Vec<u32> = uids.into_iter().collect();
    uids.sort_unstable_by(|a, b| b.cmp(a));
    let total = uids.len();
    let pages = total.div_ceil(page_size).max(1);
    let chunk: Vec<u32> = uids
        .into_iter()
        .skip(page * page_size)
        .take(page_size)
        .collect();
    let mut messages = Vec::new();
    if !chunk.is_empty() {
        let mailbox_id = state
            .store
            .mailbox_id(&account, mailbox.uid_validity, &path)
            .await?;
        let mut sorted = chunk.clone();
        sorted.sort_unstable();
        let mut fetched = match fetch_summaries(
            s.in_folder(),
            &emailengine_imap::sync::uid_set(&sorted),
            true,
        )
        .await
        {
            Ok(f) => f,
            Err(e) => return Err(imap_failed(&mut s)(e)),
        };
        fetched.sort_by_key(|f| std::cmp::Reverse(f.uid));
        messages = fetched
            .iter()
            .map(|f| message::list_entry(mailbox_id, &path, f))
            .collect();
    }
    Ok(message_page(messages, total, page, pages))
}

/// Get message information
#[utoipa::path(get, path = "/v1/account/{account}/message/{message}", tag = "Message",
    params(("account" = String, Path, description = "Account id"), ("message" = String, Path, description = "Message id"),
        ("maxBytes" = Option<u32>, Query, description = "Longest text returned, in bytes"),
        ("markAsSeen" = Option<bool>, Query, description = "Set the \\Seen flag")),
    responses((status = 200, description = "Message details", body = Object), (status = 404, description = "Not found")),
    security(("bearerAuth" = [])))]
pub async fn get_one(
    State(state): State<AppState>,
    Path((account, message_id)): Path<(String, String)>,
    mut query: QueryParams,
) -> ApiResult<Json<Value>> {
    let max_bytes = query.int("maxBytes", 0, 1 << 40, DEFAULT_MAX_BYTES) as usize;
    let mark_seen = query.bool("markAsSeen").unwrap_or(false);
    let _ = query.string("textType", 16);
    query.finish()?;
    load(&state, &account).await?;
    let at = locate(&state, &account, &message_id).await?;
    let mut s = open(&state, &account, &at, mark_seen).await?;
    let (fetched, source) = fetch_full(&mut s, at.id.uid).await?;
    if mark_seen && !fetched.flags.iter().any(|f| f == "\\Seen") {
        let r = s
            .uid_store_all(at.id.uid.to_string(), "+FLAGS.SILENT (\\Seen)")
            .await;
        r.map_err(imap_failed(&mut s))?;
    }
    Ok(Json(message::details(
        at.id.mailbox,
        &at.path,
        &fetched,
        &source,
        max_bytes,
    )))
}

/// Download raw message
#[utoipa::path(get, path = "/v1/account/{account}/message/{message}/source", tag = "Message",
    params(("account" = String, Path, description = "Account id"), ("message" = String, Path, description = "Message id")),
    responses((status = 200, description = "RFC 822 source", content_type = "message/rfc822")),
    security(("bearerAuth" = [])))]
pub async fn source(
    State(state): State<AppState>,
    Path((account, message_id)): Path<(String, String)>,
) -> ApiResult<Response> {
    load(&state, &account).await?;
    let at = locate(&state, &account, &message_id).await?;
    let mut s = open(&state, &account, &at, false).await?;
    let uid = at.id.uid;
    // The first chunk is read before answering, so a missing message is still a 404.
    let first = fetch_chunk(&mut s, uid, 0)
        .await?
        .ok_or_else(message_not_found)?;
    let done = (first.len() as u64) < SOURCE_CHUNK;
    let next = first.len() as u64;
    // The rest is read from the server in chunks as the client reads it, so a large message
    // never sits in memory whole.
    let rest =
        futures_util::stream::unfold((s, next, done), move |(mut s, offset, done)| async move {
            if done {
                return None;
            }
            let query = format!("(UID BODY.PEEK[]<{offset}.{SOURCE_CHUNK}>)");
            let result = s.uid_fetch_all(uid.to_string(), &query).await;
            match result {
                Ok(fetched) => {
                    let bytes = fetched
                        .iter()
                        .find_map(|f| f.body().map(<[u8]>::to_vec))
                        .unwrap_or_default();
                    if bytes.is_empty() {
                        return None;
                    }
                    let last = (bytes.len() as u64) < SOURCE_CHUNK;
                    let next = offset + bytes.len() as u64;
                    Some((
                        Ok::<_, std::io::Error>(axum::body::Bytes::from(bytes)),
                        (s, next, last),
                    ))
                }
                Err(e) => {
                    s.discard();
                    Some((Err(std::io::Error::other(e.to_string())), (s, offset, true)))
                }
            }
        });
    let body =
        futures_util::stream::once(async move { Ok(axum::body::Bytes::from(first)) }).chain(rest);
    Ok((
        [(header::CONTENT_TYPE, "message/rfc822")],
        Body::from_stream(body),
    )
        .into_response())
}

/// The section path a FETCH response names for a body part (`2.1`) or its MIME header.
fn section_path(numbers: &[u32], mime: bool) -> imap_proto::SectionPath {
    imap_proto::SectionPath::Part(
        numbers.to_vec(),
        mime.then_some(imap_proto::MessageSection::Mime),
    )
}

/// One body section of a message; `None` when the server returned no such message or part.
async fn fetch_section(
    s: &mut PooledSession,
    uid: u32,
    item: &str,
    path: imap_proto::SectionPath,
) -> ApiResult<Option<Vec<u8>>> {
    let query = format!("(UID {item})");
    let result = s.uid_fetch_all(uid.to_string(), &query).await;
    let fetched = result.map_err(imap_failed(s))?;
    Ok(fetched
        .iter()
        .find(|f| f.uid == Some(uid))
        .and_then(|f| f.section(&path).map(<[u8]>::to_vec)))
}

/// One chunk of a message source; `None` when the server returned no such message.
async fn fetch_chunk(s: &mut PooledSession, uid: u32, offset: u64) -> ApiResult<Option<Vec<u8>>> {
    let query = format!("(UID BODY.PEEK[]<{offset}.{SOURCE_CHUNK}>)");
    let result = s.uid_fetch_all(uid.to_string(), &query).await;
    let fetched = result.map_err(imap_failed(s))?;
    Ok(fetched
        .iter()
        .find(|f| f.uid == Some(uid))
        .map(|f| f.body().unwrap_or_default().to_vec()))
}

/// Bytes per IMAP partial fetch when streaming a source (EmailEngine's default chunk size).
const SOURCE_CHUNK: u64 = 1_000_000;

/// Download an attachment
#[utoipa::path(get, path = "/v1/account/{account}/attachment/{attachment}", tag = "Message",
    params(("account" = String, Path, description = "Account id"), ("attachment" = String, Path, description = "Attachment id")),
    responses((status = 200, description = "Attachment content with its content type")),
    security(("bearerAuth" = [])))]
pub async fn attachment(
    State(state): State<AppState>,
    Path((account, attachment_id)): Path<(String, String)>,
) -> ApiResult<Response> {
    load(&state, &account).await?;
    let not_found = || {
        ApiError::not_found("Requested attachment was not found").with("code", "AttachmentNotFound")
    };
    let (id, part) = decode_attachment_id(&attachment_id).ok_or_else(not_found)?;
    let at = locate(&state, &account, &id.encode()).await?;
    let mut s = open(&state, &account, &at, false).await?;
    let uid = at.id.uid;
    let numbers: Vec<u32> = part.split('.').filter_map(|n| n.parse().ok()).collect();
    // Only this part is read from the server: its MIME header first, then its body.
    let mime = fetch_section(
        &mut s,
        uid,
        &format!("BODY.PEEK[{part}.MIME]"),
        section_path(&numbers, true),
    )
    .await?
    .filter(|m| !m.is_empty())
    .ok_or_else(not_found)?;
    let (content_type, filename, encoding) = message::part_header(&mime);
    let body = if encoding == "base64" {
        // Base64 bodies are decoded as they stream in, chunk by chunk.
        let first = fetch_section(
            &mut s,
            uid,
            &format!("BODY.PEEK[{part}]<0.{SOURCE_CHUNK}>"),
            section_path(&numbers, false),
        )
        .await?
        .ok_or_else(not_found)?;
        let mut decoder = message::Base64Stream::default();
        let mut head = decoder.push(&first);
        let done = (first.len() as u64) < SOURCE_CHUNK;
        if done {
            head.extend(decoder.finish());
        }
        let part_for_rest = part.clone();
        let rest = futures_util::stream::unfold(
            (s, first.len() as u64, done, decoder),
            move |(mut s, offset, done, mut decoder)| {
                let (part, numbers) = (part_for_rest.clone(), numbers.clone());
                async move {
                    if done {
                        return None;
                    }
                    let query = format!("BODY.PEEK[{part}]<{offset}.{SOURCE_CHUNK}>");
                    match fetch_section(&mut s, uid, &query, section_path(&numbers, false)).await {
                        Ok(Some(bytes)) if !bytes.is_empty() => {
                            let last = (bytes.len() as u64) < SOURCE_CHUNK;
                            let mut out = decoder.push(&bytes);
                            if last {
                                out.extend(decoder.finish());
                            }
                            let next = offset + bytes.len() as u64;
                            Some((
                                Ok::<_, std::io::Error>(axum::body::Bytes::from(out)),
                                (s, next, last, decoder),
                            ))
                        }
                        Ok(_) => Some((
                            Ok(axum::body::Bytes::from(decoder.finish())),
                            (s, offset, true, decoder),
                        )),
                        Err(e) => Some((
                            Err(std::io::Error::other(e.status().to_string())),
                            (s, offset, true, decoder),
                        )),
                    }
                }
            },
        );
        Body::from_stream(
            futures_util::stream::once(async move { Ok(axum::body::Bytes::from(head)) })
                .chain(rest),
        )
    } else {
        let raw = fetch_section(
            &mut s,
            uid,
            &format!("BODY.PEEK[{part}]"),
            section_path(&numbers, false),
        )
        .await?
        .ok_or_else(not_found)?;
        Body::from(message::decode_part(&mime, &raw))
    };
    let mut response = ([(header::CONTENT_TYPE, content_type)], body).into_response();
    if let Some(name) = filename {
        let safe: String = name
            .chars()
            .filter(|c| !c.is_control() && *c != '"' && *c != '\\')
            .collect();
        if let Ok(v) = format!("attachment; filename=\"{safe}\"").parse() {
            response
                .headers_mut()
                .insert(header::CONTENT_DISPOSITION, v);
        }
    }
    Ok(response)
}

/// Get message text
#[utoipa::path(get, path = "/v1/account/{account}/text/{text}", tag = "Message",
    params(("account" = String, Path, description = "Account id"), ("text" = String, Path, description = "Text id"),
        ("maxBytes" = Option<u32>, Query, description = "Longest text returned, in bytes")),
    responses((status = 200, description = "`{plain, html, hasMore}`", body = Object)),
    security(("bearerAuth" = [])))]
pub async fn text(
    State(state): State<AppState>,
    Path((account, text_id)): Path<(String, String)>,
    mut query: QueryParams,
) -> ApiResult<Json<Value>> {
    let max_bytes = query.int("maxBytes", 0, 1 << 40, DEFAULT_MAX_BYTES) as usize;
    query.finish()?;
    load(&state, &account).await?;
    let (id, parts) = decode_text_id(&text_id).ok_or_else(message_not_found)?;
    let at = locate(&state, &account, &id.encode()).await?;
    let mut s = open(&state, &account, &at, false).await?;
    let (_, source) = fetch_full(&mut s, at.id.uid).await?;
    Ok(Json(message::texts(&source, &parts, max_bytes)))
}

fn flag_list(v: Option<&Value>, key: &str) -> ApiResult<Option<String>> {
    match v {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Array(items)) => {
            let flags = items
                .iter()
                .map(|f| {
                    f.as_str()
                        .filter(|s| {
                            !s.is_empty()
                                && s.bytes()
                                    .all(|b| b.is_ascii_graphic() && !b"(){%*\"]".contains(&b))
                        })
                        .map(str::to_string)
                        .ok_or_else(|| {
                            ApiError::field(&format!("flags.{key}"), "must hold valid flags")
                        })
                })
                .collect::<ApiResult<Vec<_>>>()?;
            Ok(Some(flags.join(" ")))
        }
        Some(_) => Err(ApiError::field(&format!("flags.{key}"), "must be an array")),
    }
}

/// Update message flags
#[utoipa::path(put, path = "/v1/account/{account}/message/{message}", tag = "Message",
    params(("account" = String, Path, description = "Account id"), ("message" = String, Path, description = "Message id")),
    request_body(content = Object, description = "`{flags: {add: [..], delete: [..], set: [..]}}`"),
    responses((status = 200, description = "`{flags: {add, delete, set}}`", body = Object)),
    security(("bearerAuth" = [])))]
pub async fn update(
    State(state): State<AppState>,
    Path((account, message_id)): Path<(String, String)>,
    JsonObject(body): JsonObject,
) -> ApiResult<Json<Value>> {
    let flags = match body.get("flags") {
        Some(Value::Object(f)) => f.clone(),
        None => Map::new(),
        Some(_) => return Err(ApiError::field("flags", "must be of type object")),
    };
    let planned = flag_plan(&flags)?;
    load(&state, &account).await?;
    let at = locate(&state, &account, &message_id).await?;
    let mut s = open(&state, &account, &at, true).await?;
    apply_flags(&mut s, &at.id.uid.to_string(), planned).await
}

/// STORE commands for a `{set, add, delete}` flags object, validated.
fn flag_plan(flags: &Map<String, Value>) -> ApiResult<Vec<(&'static str, String)>> {
    let mut planned = Vec::new();
    for (key, item) in [("set", "FLAGS"), ("add", "+FLAGS"), ("delete", "-FLAGS")] {
        if let Some(list) = flag_list(flags.get(key), key)? {
            planned.push((key, format!("{item}.SILENT ({list})")));
        }
    }
    Ok(planned)
}

/// Runs planned flag changes on a UID set (nothing to run on an empty set) and reports them.
async fn apply_flags(
    s: &mut PooledSession,
    set: &str,
    planned: Vec<(&'static str, String)>,
) -> ApiResult<Json<Value>> {
    let mut out = Map::new();
    for (key, command) in planned {
        if !set.is_empty() {
            let r = s.uid_store_all(set, &command).await;
            r.map_err(imap_failed(s))?;
        }
        out.insert(key.into(), Value::Bool(true));
    }
    Ok(Json(json!({"flags": out})))
}

/// Move a message
#[utoipa::path(put, path = "/v1/account/{account}/message/{message}/move", tag = "Message",
    params(("account" = String, Path, description = "Account id"), ("message" = String, Path, description = "Message id")),
    request_body(content = Object, description = "`{path}`: the destination folder"),
    responses((status = 200, description = "`{path}`", body = Object)),
    security(("bearerAuth" = [])))]
pub async fn move_message(
    State(state): State<AppState>,
    Path((account, message_id)): Path<(String, String)>,
    JsonObject(body): JsonObject,
) -> ApiResult<Json<Value>> {
    let target = body
        .get("path")
        .and_then(Value::as_str)
        .filter(|p| !p.is_empty())
        .ok_or_else(|| ApiError::field("path", "is required"))?
        .to_string();
    load(&state, &account).await?;
    let at = locate(&state, &account, &message_id).await?;
    let mut s = open(&state, &account, &at, true).await?;
    s.get()
        .uid_mv(at.id.uid.to_string(), encode_path(&target))
        .await
        .map_err(imap_failed(&mut s))?;
    Ok(Json(json!({"path": target})))
}

/// Delete a message
///
/// Moves it to Trash, or deletes it for good when it is already in Trash or `force=true`.
#[utoipa::path(delete, path = "/v1/account/{account}/message/{message}", tag = "Message",
    params(("account" = String, Path, description = "Account id"), ("message" = String, Path, description = "Message id"),
        ("force" = Option<bool>, Query, description = "Delete for good instead of moving to Trash")),
    responses((status = 200, description = "`{deleted, moved?}`", body = Object)),
    security(("bearerAuth" = [])))]
pub async fn delete(
    State(state): State<AppState>,
    Path((account, message_id)): Path<(String, String)>,
    mut query: QueryParams,
) -> ApiResult<Json<Value>> {
    let force = query.bool("force").unwrap_or(false);
    query.finish()?;
    load(&state, &account).await?;
    let at = locate(&state, &account, &message_id).await?;
    let trash = folders(&state, &account)
        .await?
        .into_iter()
        .find(|f| f.special_use.as_deref() == Some("\\Trash"))
        .map(|f| f.path);
    let mut s = open(&state, &account, &at, true).await?;
    let uid = at.id.uid.to_string();
    let trash = trash.filter(|t| !force && *t != at.path);
    trash_or_expunge(&mut s, &uid, trash).await
}

/// Moves messages to Trash, or deletes them for good when `trash` is `None`.
async fn trash_or_expunge(
    s: &mut PooledSession,
    set: &str,
    trash: Option<String>,
) -> ApiResult<Json<Value>> {
    match trash {
        Some(trash) => {
            let r = s.get().uid_mv(set, encode_path(&trash)).await;
            r.map_err(imap_failed(s))?;
            Ok(Json(
                json!({"deleted": false, "moved": {"destination": trash}}),
            ))
        }
        None => {
            let r = s.uid_store_all(set, "+FLAGS.SILENT (\\Deleted)").await;
            r.map_err(imap_failed(s))?;
            let r = s.uid_expunge_all(set).await;
            r.map_err(imap_failed(s))?;
            Ok(Json(json!({"deleted": true})))
        }
    }
}

/// Upload a message
///
/// Appends a message to a folder, given as `raw` RFC 822 text or composed from `from`, `to`,
/// `subject`, `text`, `html`, `attachments`, `headers`.
#[utoipa::path(post, path = "/v1/account/{account}/message", tag = "Message",
    params(("account" = String, Path, description = "Account id")),
    request_body(content = Object, description = "`{path, flags?, raw?, from?, to?, subject?, text?, html?, attachments?, headers?, messageId?}`"),
    responses((status = 200, description = "`{id, path, uid, messageId}`", body = Object)),
    security(("bearerAuth" = [])))]
pub async fn upload(
    State(state): State<AppState>,
    Path(account): Path<String>,
    JsonObject(body): JsonObject,
) -> ApiResult<Json<Value>> {
    let path = body
        .get("path")
        .and_then(Value::as_str)
        .filter(|p| !p.is_empty())
        .ok_or_else(|| ApiError::field("path", "is required"))?
        .to_string();
    let flags = flag_list(body.get("flags"), "flags")?;
    let (source, message_id) = match body.get("raw") {
        Some(Value::String(raw)) => {
            let parsed = mail_parser::MessageParser::new().parse_headers(raw.as_bytes());
            let id = parsed
                .as_ref()
                .and_then(|m| m.message_id().map(|i| format!("<{i}>")));
            (
                raw.replace("\r\n", "\n").replace('\n', "\r\n").into_bytes(),
                id,
            )
        }
        Some(_) => return Err(ApiError::field("raw", "must be a string")),
        None => {
            let mut c = emailengine_core::compose::parse(&body).map_err(ApiError::invalid_input)?;
            let host = c
                .from
                .as_ref()
                .and_then(|f| f.address.split_once('@').map(|(_, d)| d.to_string()))
                .unwrap_or_else(|| "emailengine.local".into());
            let id = c.ensure_message_id(&host);
            (c.build(chrono::Utc::now().timestamp()), Some(id))
        }
    };
    load(&state, &account).await?;
    let mut s = state.engine.session(&account).await.map_err(op_error)?;
    let flags = flags.map(|f| format!("({f})"));
    // The new message's UID is found among those at or above the folder's UIDNEXT from before
    // the APPEND (narrowed by Message-ID when there is one).
    let uid_next = s
        .get()
        .status(encode_path(&path), "(UIDNEXT)")
        .await
        .map_err(imap_failed(&mut s))?
        .uid_next
        .unwrap_or(1);
    s.get()
        .append(encode_path(&path), flags.as_deref(), None, &source)
        .await
        .map_err(imap_failed(&mut s))?;
    let mut out = json!({"path": path, "messageId": message_id});
    {
        let mailbox = s
            .open_folder(&path, false)
            .await
            .map_err(imap_failed(&mut s))?;
        let mut criteria = format!("UID {uid_next}:*");
        if let Some(id) = &message_id {
            criteria.push_str(&format!(
                " HEADER Message-ID \"{}\"",
                id.replace(['"', '\\'], "")
            ));
        }
        let uids = s
            .in_folder()
            .uid_search(&criteria)
            .await
            .map_err(imap_failed(&mut s))?;
        if let Some(uid) = uids.into_iter().filter(|u| *u >= uid_next).max() {
            let mailbox_id = state
                .store
                .mailbox_id(&account, mailbox.uid_validity, &path)
                .await?;
            out["uid"] = json!(uid);
            out["id"] = json!(
                MessageId {
                    mailbox: mailbox_id,
                    uid
                }
                .encode()
            );
        }
    }
    Ok(Json(out))
}

/// UIDs matching a bulk request's `search` in the folder named by `?path=`.
async fn bulk_target(
    state: &AppState,
    account: &str,
    query: &mut QueryParams,
    body: &Map<String, Value>,
) -> ApiResult<(PooledSession, String, String)> {
    let path = query.required_string("path", 1024);
    let criteria = match body.get("search") {
        Some(Value::Object(m)) => search_query(m)?,
        None => return Err(ApiError::field("search", "is required")),
        _ => return Err(ApiError::field("search", "must be of type object")),
    };
    load(state, account).await?;
    let mut s = state.engine.session(account).await.map_err(op_error)?;
    s.open_folder(&path, true)
        .await
        .map_err(imap_failed(&mut s))?;
    let mut uids: Vec<u32> = s
        .in_folder()
        .uid_search(&criteria)
        .await
        .map_err(imap_failed(&mut s))?
        .into_iter()
        .collect();
    uids.sort_unstable();
    Ok((s, path, emailengine_imap::sync::uid_set(&uids)))
}

/// Update flags of many messages
#[utoipa::path(put, path = "/v1/account/{account}/messages", tag = "Message",
    params(("account" = String, Path, description = "Account id"), ("path" = String, Query, description = "Folder path")),
    request_body(content = Object, description = "`{search: {...}, update: {flags: {add, delete, set}}}`"),
    responses((status = 200, description = "`{flags: {add?, delete?, set?}}`", body = Object)),
    security(("bearerAuth" = [])))]
pub async fn bulk_update(
    State(state): State<AppState>,
    Path(account): Path<String>,
    mut query: QueryParams,
    JsonObject(body): JsonObject,
) -> ApiResult<Json<Value>> {
    let flags = body
        .get("update")
        .and_then(|u| u.get("flags"))
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    let planned = flag_plan(&flags)?;
    let (mut s, _, set) = bulk_target(&state, &account, &mut query, &body).await?;
    query.finish()?;
    apply_flags(&mut s, &set, planned).await
}

/// Move many messages
#[utoipa::path(put, path = "/v1/account/{account}/messages/move", tag = "Message",
    params(("account" = String, Path, description = "Account id"), ("path" = String, Query, description = "Source folder")),
    request_body(content = Object, description = "`{search: {...}, path: <destination>}`"),
    responses((status = 200, description = "`{path, moved}`", body = Object)),
    security(("bearerAuth" = [])))]
pub async fn bulk_move(
    State(state): State<AppState>,
    Path(account): Path<String>,
    mut query: QueryParams,
    JsonObject(body): JsonObject,
) -> ApiResult<Json<Value>> {
    let target = body
        .get("path")
        .and_then(Value::as_str)
        .filter(|p| !p.is_empty())
        .ok_or_else(|| ApiError::field("path", "is required"))?
        .to_string();
    let (mut s, _, set) = bulk_target(&state, &account, &mut query, &body).await?;
    query.finish()?;
    let moved = !set.is_empty();
    if moved {
        s.get()
            .uid_mv(&set, encode_path(&target))
            .await
            .map_err(imap_failed(&mut s))?;
    }
    Ok(Json(json!({"path": target, "moved": moved})))
}

/// Delete many messages
///
/// Moves the matching messages to Trash, or deletes them for good when the folder is Trash or
/// `force=true`.
#[utoipa::path(put, path = "/v1/account/{account}/messages/delete", tag = "Message",
    params(("account" = String, Path, description = "Account id"), ("path" = String, Query, description = "Folder path"),
        ("force" = Option<bool>, Query, description = "Delete for good")),
    request_body(content = Object, description = "`{search: {...}}`"),
    responses((status = 200, description = "`{deleted, moved?}`", body = Object)),
    security(("bearerAuth" = [])))]
pub async fn bulk_delete(
    State(state): State<AppState>,
    Path(account): Path<String>,
    mut query: QueryParams,
    JsonObject(body): JsonObject,
) -> ApiResult<Json<Value>> {
    let force = query.bool("force").unwrap_or(false);
    let trash = folders(&state, &account)
        .await?
        .into_iter()
        .find(|f| f.special_use.as_deref() == Some("\\Trash"))
        .map(|f| f.path);
    let (mut s, path, set) = bulk_target(&state, &account, &mut query, &body).await?;
    query.finish()?;
    if set.is_empty() {
        return Ok(Json(json!({"deleted": false})));
    }
    let trash = trash.filter(|t| !force && *t != path);
    trash_or_expunge(&mut s, &set, trash).await
}
