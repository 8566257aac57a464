//! Authentication and authorization of API requests (spec §3.8–§4): find the token, judge it
//! against the route's policy, the bound account and the token's restrictions, and answer with
//! EmailEngine's 401/403/429 bodies. Each route's policy comes from [`route_spec`].

use std::net::{IpAddr, SocketAddr};

use axum::extract::{ConnectInfo, FromRequestParts, MatchedPath, RawPathParams, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use emailengine_core::auth::{self, Denial, Restrictions, RoutePolicy};
use emailengine_core::permissions::{Action, Group};
use emailengine_core::token::{TokenRecord, TokenValue};

use crate::error::ApiError;
use crate::state::AppState;

/// Where a route names the account a bound token must match.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AccountSource {
    /// The `{account}` path parameter.
    Path,
    /// The `account` query parameter (`GET /v1/tokens`).
    Query,
    /// The route names no account: bound tokens are refused.
    None,
}

#[derive(Debug, Clone, Copy)]
pub struct RouteSpec {
    pub policy: RoutePolicy,
    pub account: AccountSource,
}

const fn spec(
    scope: &'static str,
    group: Group,
    action: Action,
    account: AccountSource,
) -> RouteSpec {
    RouteSpec {
        policy: RoutePolicy {
            scope,
            group,
            action,
        },
        account,
    }
}

/// The policy of each authenticated route, by method and route template (spec §5).
/// Routes not listed get the strictest policy: scope `api`, group `admin`.
pub fn route_spec(method: &Method, path: &str) -> RouteSpec {
    use AccountSource as A;
    use Action::*;
    use Group::*;
    let m = method.as_str();
    match (m, path) {
        ("GET", "/metrics") => spec("metrics", Diagnostics, Read, A::None),
        ("GET", "/v1/stats") => spec("api", Diagnostics, Read, A::None),
        ("GET", "/v1/settings") => spec("api", Admin, Read, A::None),
        ("POST", "/v1/settings") => spec("api", Admin, Write, A::None),
        ("GET", "/v1/tokens") => spec("api", Admin, Read, A::Query),
        ("GET", "/v1/tokens/account/{account}") => spec("api", Admin, Read, A::Path),
        ("GET", "/v1/tokens/{token}") => spec("api", Admin, Read, A::None),
        ("DELETE", "/v1/tokens/{token}" | "/v1/token/{token}") => {
            spec("api", Admin, Destructive, A::None)
        }
        ("POST", "/v1/account") => spec("api", Admin, Write, A::None),
        ("GET", "/v1/accounts") => spec("api", Account, Read, A::None),
        ("POST", "/v1/verifyAccount") => spec("api", Admin, Read, A::None),
        ("GET", "/v1/account/{account}") => spec("api", Account, Read, A::Path),
        ("PUT", "/v1/account/{account}") => spec("api", Admin, Write, A::Path),
        ("DELETE", "/v1/account/{account}") => spec("api", Account, Destructive, A::Path),
        ("PUT", "/v1/account/{account}/reconnect" | "/v1/account/{account}/sync") => {
            spec("api", Account, Write, A::Path)
        }
        ("PUT", "/v1/account/{account}/flush") => spec("api", Account, Destructive, A::Path),
        ("GET", "/v1/account/{account}/mailboxes") => spec("api", Mailbox, Read, A::Path),
        ("POST" | "PUT", "/v1/account/{account}/mailbox") => spec("api", Mailbox, Write, A::Path),
        ("DELETE", "/v1/account/{account}/mailbox") => spec("api", Mailbox, Destructive, A::Path),
        ("GET" | "POST", "/v1/account/{account}/messages" | "/v1/account/{account}/search")
        | (
            "GET",
            "/v1/account/{account}/message/{message}"
            | "/v1/account/{account}/message/{message}/source"
            | "/v1/account/{account}/text/{text}"
            | "/v1/account/{account}/attachment/{attachment}",
        ) => spec("api", Message, Read, A::Path),
        (
            "PUT",
            "/v1/account/{account}/message/{message}"
            | "/v1/account/{account}/message/{message}/move",
        ) => spec("api", Message, Write, A::Path),
        ("DELETE", "/v1/account/{account}/message/{message}")
        | ("PUT", "/v1/account/{account}/messages/delete") => {
            spec("api", Message, Destructive, A::Path)
        }
        (
            "POST",
            "/v1/account/{account}/submit" | "/v1/account/{account}/message/{message}/submit",
        ) => spec("api", Submit, Send, A::Path),
        ("GET", "/v1/outbox" | "/v1/outbox/{queueId}") => spec("api", Outbox, Read, A::None),
        ("DELETE", "/v1/outbox/{queueId}") => spec("api", Outbox, Destructive, A::None),
        ("GET", "/v1/webhooks/failed") => spec("api", Webhook, Read, A::None),
        ("GET", "/v1/templates") => spec("api", Template, Read, A::Query),
        ("POST", "/v1/templates/template") => spec("api", Template, Write, A::None),
        ("GET", "/v1/templates/template/{template}") => spec("api", Template, Read, A::None),
        ("PUT", "/v1/templates/template/{template}") => spec("api", Template, Write, A::None),
        ("DELETE", "/v1/templates/template/{template}" | "/v1/templates/account/{account}") => {
            spec("api", Template, Destructive, A::None)
        }
        ("GET", "/v1/blocklists" | "/v1/blocklist/{listId}") => {
            spec("api", Blocklist, Read, A::None)
        }
        ("POST", "/v1/blocklist/{listId}") => spec("api", Blocklist, Write, A::None),
        ("DELETE", "/v1/blocklist/{listId}") => spec("api", Blocklist, Destructive, A::None),
        ("GET", "/v1/gateways" | "/v1/gateway/{gateway}") => spec("api", Gateway, Read, A::None),
        ("DELETE", "/v1/gateway/{gateway}") => spec("api", Gateway, Destructive, A::None),
        ("POST", "/v1/webhooks/failed/{event}/resend") => spec("api", Webhook, Write, A::None),
        (_, p) if p.contains("{account}") => spec("api", Admin, Write, A::Path),
        _ => spec("api", Admin, Write, A::None),
    }
}

/// Who made a request, for handlers and the request log.
#[derive(Debug, Clone, Default)]
pub struct AuthContext {
    pub token_id: Option<String>,
    pub account: Option<String>,
    /// Accepted without a token because the `disableTokens` setting is on.
    pub preauth: bool,
    pub remote: Option<IpAddr>,
}

/// Marks a request the admin web interface makes inside this process on behalf of a signed-in
/// admin; such a request is let through as an unrestricted, non-preauth caller. Only code in
/// this process can attach a request extension, so no network request can carry it.
#[derive(Debug, Clone, Copy)]
pub struct AdminSession {
    /// The admin's address, recorded as the caller's (e.g. on tokens it provisions).
    pub remote: Option<IpAddr>,
}

/// The token presented: `Authorization: Bearer …` first, then `?access_token=`.
/// `Err(())` when an Authorization header is present but is not a bearer credential.
fn presented_token(headers: &HeaderMap, query: Option<&str>) -> Result<Option<String>, ()> {
    if let Some(value) = headers.get(axum::http::header::AUTHORIZATION) {
        let text = value.to_str().map_err(|_| ())?.trim();
        let (scheme, rest) = text.split_once(' ').ok_or(())?;
        if !scheme.eq_ignore_ascii_case("bearer") {
            return Err(());
        }
        return Ok(Some(rest.trim().to_string()));
    }
    Ok(query.and_then(|q| {
        crate::extract::parse_query_raw(q)
            .find(|(k, _)| k == "access_token")
            .map(|(_, v)| v)
    }))
}

/// The client address: the socket peer, or the left-most `X-Forwarded-For` entry when the
/// server is configured to sit behind a proxy.
pub fn client_ip(req: &Request, trust_proxy: bool) -> Option<IpAddr> {
    if trust_proxy
        && let Some(ip) = req
            .headers()
            .get("x-forwarded-for")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(',').next())
            .and_then(|v| v.trim().parse::<IpAddr>().ok())
    {
        return Some(ip);
    }
    req.extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip())
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// Middleware for every authenticated route.
pub async fn authenticate(State(state): State<AppState>, mut req: Request, next: Next) -> Response {
    if let Some(admin) = req.extensions().get::<AdminSession>().copied() {
        req.extensions_mut().insert(AuthContext {
            remote: admin.remote,
            ..Default::default()
        });
        return next.run(req).await;
    }
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|m| m.as_str().to_string())
        .unwrap_or_default();
    let route_spec = route_spec(req.method(), &route);
    let remote = client_ip(&req, state.config.trust_proxy);

    let presented = match presented_token(req.headers(), req.uri().query()) {
        Ok(t) => t,
        Err(()) => return ApiError::missing_authentication().into_response(),
    };
    let Some(presented) = presented.filter(|t| !t.is_empty()) else {
        return match state.tokens_disabled().await {
            Ok(true) => {
                req.extensions_mut().insert(AuthContext {
                    preauth: true,
                    remote,
                    ..Default::default()
                });
                next.run(req).await
            }
            Ok(false) => ApiError::missing_authentication().into_response(),
            Err(e) => e.into_response(),
        };
    };

    let Ok(value) = TokenValue::parse(&presented) else {
        return ApiError::bad_token().into_response();
    };
    let id = value.id();
    let record = match state.store.token(&id).await {
        Ok(Some(r)) => r,
        Ok(None) => return ApiError::bad_token().into_response(),
        Err(e) => return ApiError::from(e).into_response(),
    };
    let now = now_ms();
    if record.is_expired(now) {
        let store = state.store.clone();
        let expired = id.clone();
        tokio::spawn(async move {
            if let Err(e) = store.delete_token(&expired).await {
                tracing::warn!(token = %expired, err = %e, "Failed to remove expired token");
            }
        });
        return ApiError::bad_token().into_response();
    }
    state.activity.touch(&id, remote, now);

    let route_account = match route_spec.account {
        AccountSource::Path => {
            let (r, account) = path_account(req).await;
            req = r;
            account
        }
        AccountSource::Query => crate::extract::parse_query_raw(req.uri().query().unwrap_or(""))
            .find(|(k, _)| k == "account")
            .map(|(_, v)| v),
        AccountSource::None => None,
    };
    if let Err(denial) = auth::authorize(&record, route_spec.policy, route_account.as_deref()) {
        return deny(&id, &record, denial);
    }

    let mut limit_headers = None;
    match Restrictions::of_record(&record) {
        Ok(None) => {}
        Err(why) => {
            tracing::warn!(token = %id, err = %why, "Token restrictions are malformed; refusing");
            return ApiError::forbidden("Unauthorized address")
                .with(
                    "remoteAddress",
                    remote.map(|r| r.to_string()).unwrap_or_default(),
                )
                .into_response();
        }
        Ok(Some(restrictions)) => {
            let referer = req
                .headers()
                .get(axum::http::header::REFERER)
                .and_then(|v| v.to_str().ok());
            if let Err(denial) = restrictions.check(remote, referer) {
                return deny(&id, &record, denial);
            }
            if let Some(limit) = restrictions.rate_limit {
                let window = auth::rate_window(now, limit.time_window);
                let count = match state
                    .store
                    .count_request(&id, limit.time_window, window.bucket)
                    .await
                {
                    Ok(c) => c,
                    Err(e) => return ApiError::from(e).into_response(),
                };
                if count > limit.max_requests {
                    tracing::warn!(token = %id, "Rate limited");
                    return ApiError::new(StatusCode::TOO_MANY_REQUESTS, "Rate limit exceeded")
                        .with("ttl", window.ttl)
                        .header(
                            "x-ratelimit-limit".parse().expect("static header name"),
                            HeaderValue::from(limit.max_requests),
                        )
                        .header(
                            "x-ratelimit-reset".parse().expect("static header name"),
                            HeaderValue::from(window.reset),
                        )
                        .into_response();
                }
                limit_headers = Some((
                    limit.max_requests,
                    limit.max_requests.saturating_sub(count),
                    window.reset,
                ));
            }
        }
    }

    let ctx = AuthContext {
        token_id: Some(id),
        account: record.account.clone(),
        preauth: false,
        remote,
    };
    req.extensions_mut().insert(ctx.clone());
    let mut response = next.run(req).await;
    if let Some((limit, remaining, reset)) = limit_headers {
        let h = response.headers_mut();
        h.insert("x-ratelimit-limit", HeaderValue::from(limit));
        h.insert("x-ratelimit-remaining", HeaderValue::from(remaining));
        h.insert("x-ratelimit-reset", HeaderValue::from(reset));
    }
    response.extensions_mut().insert(ctx);
    response
}

/// The `{account}` path parameter of the matched route.
async fn path_account(req: Request) -> (Request, Option<String>) {
    let (mut parts, body) = req.into_parts();
    let account = RawPathParams::from_request_parts(&mut parts, &())
        .await
        .ok()
        .and_then(|params| {
            params
                .iter()
                .find(|(k, _)| *k == "account")
                .map(|(_, v)| v.to_string())
        });
    (Request::from_parts(parts, body), account)
}

fn deny(id: &str, record: &TokenRecord, denial: Denial) -> Response {
    let err = match denial {
        Denial::Scope { requested } => {
            tracing::warn!(token = %id, requestedScope = %requested, "Trying to use invalid scope for a token");
            ApiError::forbidden("Unauthorized scope").with("requestedScope", requested)
        }
        Denial::Permission { action, group } => {
            tracing::warn!(token = %id, action = action.as_str(), group = group.as_str(), "Token permissions do not allow this operation");
            ApiError::forbidden("Unauthorized permission").with(
                "requiredPermission",
                serde_json::json!({"action": action.as_str(), "group": group.as_str()}),
            )
        }
        Denial::Account => {
            tracing::warn!(token = %id, tokenAccount = ?record.account, "Trying to use invalid account for a token");
            ApiError::forbidden("Unauthorized account")
        }
        Denial::Address { remote } => {
            tracing::warn!(token = %id, remoteAddress = %remote, "Trying to use invalid IP for a token");
            ApiError::forbidden("Unauthorized address").with("remoteAddress", remote)
        }
        Denial::Referrer => {
            tracing::warn!(token = %id, "Trying to use invalid referer for a token");
            ApiError::forbidden("Unauthorized referrer")
        }
    };
    err.into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_parsing() {
        let mut h = HeaderMap::new();
        assert_eq!(
            presented_token(&h, Some("access_token=abc")),
            Ok(Some("abc".into()))
        );
        h.insert("authorization", HeaderValue::from_static("bEaReR  xyz "));
        assert_eq!(
            presented_token(&h, Some("access_token=abc")),
            Ok(Some("xyz".into()))
        );
        h.insert("authorization", HeaderValue::from_static("Basic xyz"));
        assert_eq!(presented_token(&h, None), Err(()));
        h.insert("authorization", HeaderValue::from_static("Bearer"));
        assert_eq!(presented_token(&h, None), Err(()));
    }

    #[test]
    fn unknown_routes_get_the_strictest_policy() {
        let s = route_spec(&Method::GET, "/v1/whatever");
        assert_eq!(s.policy.group, Group::Admin);
        let s = route_spec(&Method::DELETE, "/v1/account/{account}");
        assert_eq!(s.account, AccountSource::Path);
        assert_eq!(s.policy.action, Action::Destructive);
        let s = route_spec(&Method::POST, "/v1/account/{account}/search");
        assert_eq!(
            (s.policy.group, s.policy.action),
            (Group::Message, Action::Read)
        );
    }
}
