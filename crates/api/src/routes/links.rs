//! The public link routes that messages carry (spec §19, §20.3): `/redirect` for tracked
//! clicks, `/open.gif` for opens, and the unsubscribe endpoints — the RFC 8058 one-click POST,
//! the subscription page and its form. No token: each link is signed with `serviceSecret`,
//! and a link that does not verify changes nothing and sends no event.

use std::collections::HashMap;
use std::net::IpAddr;

use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use serde_json::json;

use emailengine_sending::lists::{self, BlocklistEntry, BlocklistSource, Unsubscription};
use emailengine_sending::tracking::{self, OPEN_GIF, OPEN_GIF_HEADERS};

use crate::state::AppState;

fn form_map(body: &[u8]) -> HashMap<String, String> {
    url::form_urlencoded::parse(body).into_owned().collect()
}

fn query_map(query: Option<&str>) -> HashMap<String, String> {
    url::form_urlencoded::parse(query.unwrap_or_default().as_bytes())
        .into_owned()
        .collect()
}

fn user_agent(headers: &HeaderMap) -> Option<String> {
    headers
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
}

/// The caller as the link routes report it: `X-Forwarded-For` when the API trusts a proxy.
pub struct Caller {
    pub remote: Option<IpAddr>,
    pub user_agent: Option<String>,
}

impl<S: Send + Sync> axum::extract::FromRequestParts<S> for Caller
where
    AppState: axum::extract::FromRef<S>,
{
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &S,
    ) -> Result<Self, Self::Rejection> {
        let app = <AppState as axum::extract::FromRef<S>>::from_ref(state);
        Ok(Self {
            remote: crate::auth::client_ip_of(
                &parts.headers,
                &parts.extensions,
                app.config.trust_proxy,
            ),
            user_agent: user_agent(&parts.headers),
        })
    }
}

fn error_page(status: StatusCode, message: &str) -> Response {
    let body = format!(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>{status}</title></head>\
         <body><h1>{}</h1><p>{}</p></body></html>",
        status.as_u16(),
        html_escape::encode_text(message)
    );
    (status, Html(body)).into_response()
}

fn link_error(e: emailengine_sending::Error) -> Response {
    error_page(StatusCode::FORBIDDEN, &e.to_string())
}

fn internal(e: impl std::fmt::Debug) -> Response {
    tracing::error!(err = ?e, "Link route failed");
    error_page(StatusCode::SERVICE_UNAVAILABLE, "Service unavailable")
}

/// The link of a tracking query (`data`, `sig`) checked with `verify` against `serviceSecret`;
/// the error page to answer when it does not verify.
async fn verified<T>(
    state: &AppState,
    query: Option<&str>,
    verify: impl Fn(&[u8], &str, &str) -> emailengine_sending::Result<T>,
) -> Result<T, Response> {
    let q = query_map(query);
    let secret = state.service_secret().await.map_err(internal)?;
    let data = q.get("data").map_or("", String::as_str);
    let sig = q.get("sig").map_or("", String::as_str);
    verify(&secret, data, sig).map_err(link_error)
}

/// A tracked link: verifies it, sends `trackClick`, redirects to the original URL.
pub async fn redirect(
    State(state): State<AppState>,
    caller: Caller,
    RawQuery(query): RawQuery,
) -> Response {
    let click = match verified(&state, query.as_deref(), tracking::verify_click).await {
        Ok(c) => c,
        Err(r) => return r,
    };
    let Ok(location) = HeaderValue::from_str(&click.url) else {
        return error_page(StatusCode::FORBIDDEN, "Invalid query");
    };
    if let Some(account) = &click.account {
        state
            .events
            .emit(
                account,
                "trackClick",
                None,
                None,
                json!({
                    "messageId": click.message_id, "url": click.url,
                    "remoteAddress": caller.remote.map(|r| r.to_string()),
                    "userAgent": caller.user_agent,
                }),
            )
            .await;
    }
    (StatusCode::FOUND, [(header::LOCATION, location)]).into_response()
}

/// The open pixel: verifies it, sends `trackOpen`, answers the 1×1 GIF.
pub async fn open_gif(
    State(state): State<AppState>,
    caller: Caller,
    RawQuery(query): RawQuery,
) -> Response {
    let open = match verified(&state, query.as_deref(), tracking::verify_open).await {
        Ok(o) => o,
        Err(r) => return r,
    };
    if let Some(account) = &open.account {
        state
            .events
            .emit(
                account,
                "trackOpen",
                None,
                None,
                json!({
                    "messageId": open.message_id,
                    "remoteAddress": caller.remote.map(|r| r.to_string()),
                    "userAgent": caller.user_agent,
                }),
            )
            .await;
    }
    let mut response = (StatusCode::OK, OPEN_GIF.to_vec()).into_response();
    for (name, value) in OPEN_GIF_HEADERS {
        if let (Ok(n), Ok(v)) = (
            header::HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_str(value),
        ) {
            response.headers_mut().insert(n, v);
        }
    }
    response
}

/// Puts the link's recipient on its list and sends `listUnsubscribe` when the address was
/// not there yet. True when it was added.
pub async fn unsubscribe_address(
    state: &AppState,
    unsub: &Unsubscription,
    source: BlocklistSource,
    caller: &Caller,
) -> crate::error::ApiResult<bool> {
    let entry = BlocklistEntry {
        recipient: unsub.recipient.clone(),
        account: Some(unsub.account.clone()),
        source,
        reason: "unsubscribe".into(),
        message_id: unsub.message_id.clone(),
        remote_address: caller.remote.map(|r| r.to_string()),
        user_agent: caller.user_agent.clone(),
        created: emailengine_core::units::iso_time(chrono::Utc::now().timestamp_millis())
            .unwrap_or_default(),
    };
    let record = serde_json::to_string(&entry).unwrap_or_default();
    let added = state
        .store
        .put_blocklist_entry(
            &unsub.list_id,
            &lists::normalize_address(&unsub.recipient),
            &record,
        )
        .await?;
    if added {
        list_event(state, "listUnsubscribe", unsub, caller).await;
    }
    Ok(added)
}

async fn list_event(state: &AppState, event: &str, unsub: &Unsubscription, caller: &Caller) {
    state
        .events
        .emit(
            &unsub.account,
            event,
            None,
            None,
            json!({
                "recipient": unsub.recipient, "messageId": unsub.message_id, "listId": unsub.list_id,
                "remoteAddress": caller.remote.map(|r| r.to_string()), "userAgent": caller.user_agent,
            }),
        )
        .await;
}

fn text(body: &'static str) -> Response {
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        body,
    )
        .into_response()
}

/// RFC 8058 one-click unsubscribe: `POST /unsubscribe?data&sig` with the form field
/// `List-Unsubscribe=One-Click`.
pub async fn one_click(
    State(state): State<AppState>,
    caller: Caller,
    RawQuery(query): RawQuery,
    body: axum::body::Bytes,
) -> Response {
    let form = form_map(&body);
    if form.get("List-Unsubscribe").map(String::as_str) != Some("One-Click") {
        return crate::error::ApiError::field("List-Unsubscribe", "must be [One-Click]")
            .into_response();
    }
    let q = query_map(query.as_deref());
    let secret = match state.service_secret().await {
        Ok(s) => s,
        Err(e) => return internal(e),
    };
    let unsub = match lists::verify_unsubscribe(
        &secret,
        q.get("data").map_or("", String::as_str),
        q.get("sig").map_or("", String::as_str),
    ) {
        Ok(u) => u,
        Err(emailengine_sending::Error::SignatureValidation) => {
            return text("data validation failed");
        }
        Err(_) => return text("not ok"),
    };
    match state.store.account(&unsub.account).await {
        Ok(Some(_)) => {}
        Ok(None) => return text("unknown account"),
        Err(e) => return internal(e),
    }
    match unsubscribe_address(&state, &unsub, BlocklistSource::OneClick, &caller).await {
        Ok(_) => text("ok"),
        Err(e) => internal(e),
    }
}

/// Verifies the link of the subscription page and its form, and that its account exists.
async fn page_link(
    state: &AppState,
    data: &str,
    sig: &str,
) -> Result<(Unsubscription, String, String), Response> {
    let secret = state.service_secret().await.map_err(internal)?;
    let unsub = lists::verify_unsubscribe(&secret, data, sig).map_err(link_error)?;
    match state.store.account(&unsub.account).await {
        Ok(Some(_)) => Ok((unsub, data.to_string(), sig.to_string())),
        Ok(None) => Err(error_page(
            StatusCode::NOT_FOUND,
            "Account record was not found",
        )),
        Err(e) => Err(internal(e)),
    }
}

fn page(
    unsub: &Unsubscription,
    data: &str,
    sig: &str,
    listed: bool,
    notice: Option<&str>,
) -> Response {
    let e = |s: &str| html_escape::encode_double_quoted_attribute(s).to_string();
    let (state_text, action, button) = if listed {
        ("is unsubscribed from", "subscribe", "Subscribe again")
    } else {
        ("is subscribed to", "unsubscribe", "Unsubscribe")
    };
    let notice = notice
        .map(|n| format!("<p class=\"notice\">{}</p>", e(n)))
        .unwrap_or_default();
    let body = format!(
        "<!doctype html><html><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>Subscription Management</title>\
         <style>body{{font-family:system-ui,sans-serif;max-width:32rem;margin:3rem auto;padding:0 1rem}}\
         button{{padding:.5rem 1rem}}.notice{{color:#155724}}</style></head><body>\
         <h1>Subscription Management</h1>{notice}\
         <p><strong>{}</strong> {state_text} the list <strong>{}</strong>.</p>\
         <form method=\"post\" action=\"unsubscribe/address\">\
         <input type=\"hidden\" name=\"data\" value=\"{}\"><input type=\"hidden\" name=\"sig\" value=\"{}\">\
         <input type=\"hidden\" name=\"action\" value=\"{action}\">\
         <button type=\"submit\" id=\"{action}\">{button}</button></form></body></html>",
        e(&unsub.recipient),
        e(&unsub.list_id),
        e(data),
        e(sig),
    );
    (StatusCode::OK, Html(body)).into_response()
}

async fn is_listed(state: &AppState, unsub: &Unsubscription) -> Result<bool, Response> {
    state
        .store
        .blocklist_entry(&unsub.list_id, &lists::normalize_address(&unsub.recipient))
        .await
        .map(|e| e.is_some())
        .map_err(internal)
}

/// The subscription page of an unsubscribe link.
pub async fn unsubscribe_page(
    State(state): State<AppState>,
    RawQuery(query): RawQuery,
) -> Response {
    let q = query_map(query.as_deref());
    let (unsub, data, sig) = match page_link(
        &state,
        q.get("data").map_or("", String::as_str),
        q.get("sig").map_or("", String::as_str),
    )
    .await
    {
        Ok(l) => l,
        Err(r) => return r,
    };
    match is_listed(&state, &unsub).await {
        Ok(listed) => page(&unsub, &data, &sig, listed, None),
        Err(r) => r,
    }
}

/// The page's form: `action` subscribe or unsubscribe, with the link's `data` and `sig`.
pub async fn unsubscribe_form(
    State(state): State<AppState>,
    headers: HeaderMap,
    axum::extract::ConnectInfo(peer): axum::extract::ConnectInfo<std::net::SocketAddr>,
    body: axum::body::Bytes,
) -> Response {
    let form = form_map(&body);
    let field = |k: &str| form.get(k).map_or("", String::as_str);
    let (unsub, data, sig) = match page_link(&state, field("data"), field("sig")).await {
        Ok(l) => l,
        Err(r) => return r,
    };
    // The form reports the socket's address, not X-Forwarded-For (as EmailEngine does).
    let caller = Caller {
        remote: Some(peer.ip()),
        user_agent: user_agent(&headers),
    };
    let notice = match field("action") {
        "unsubscribe" => {
            match unsubscribe_address(&state, &unsub, BlocklistSource::Form, &caller).await {
                Ok(_) => "You have been unsubscribed.",
                Err(e) => return internal(e),
            }
        }
        "subscribe" => {
            let removed = state
                .store
                .remove_blocklist_entry(&unsub.list_id, &lists::normalize_address(&unsub.recipient))
                .await;
            match removed {
                Ok(true) => {
                    list_event(&state, "listSubscribe", &unsub, &caller).await;
                    "You have been subscribed again."
                }
                Ok(false) => "You are subscribed.",
                Err(e) => return internal(e),
            }
        }
        _ => {
            return error_page(StatusCode::BAD_REQUEST, "Unknown action");
        }
    };
    match is_listed(&state, &unsub).await {
        Ok(listed) => page(&unsub, &data, &sig, listed, Some(notice)),
        Err(r) => r,
    }
}

/// The public link routes, outside authentication.
pub fn router() -> axum::Router<AppState> {
    use axum::routing::{get, post};
    axum::Router::new()
        .route("/redirect", get(redirect))
        .route("/open.gif", get(open_gif))
        .route("/unsubscribe", post(one_click).get(unsubscribe_page))
        .route("/unsubscribe/address", post(unsubscribe_form))
}
