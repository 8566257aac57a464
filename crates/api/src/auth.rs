//! Authentication and authorization of API requests (spec §3.8–§4): find the token, judge it
//! against the route's policy, the bound account and the token's restrictions, and answer with
//! EmailEngine's 401/403/429 bodies. Each route declares its policy once, in its OpenAPI
//! annotation (`x-ee-group`, `x-ee-action`, optional `x-ee-scope` and `x-ee-account`, as in
//! EmailEngine's own document); [`Policies`] reads them from the document the router is built
//! from, so the router, this table and `/swagger.json` cannot disagree.

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

/// Every route's policy, by method and route template, read from the OpenAPI document.
#[derive(Debug, Clone, Default)]
pub struct Policies(std::collections::HashMap<(Method, String), RouteSpec>);

/// Why a documented operation has no usable policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MissingPolicy {
    pub method: Method,
    pub path: String,
}

fn operations(
    item: &utoipa::openapi::PathItem,
) -> Vec<(Method, &utoipa::openapi::path::Operation)> {
    [
        (Method::GET, &item.get),
        (Method::PUT, &item.put),
        (Method::POST, &item.post),
        (Method::DELETE, &item.delete),
        (Method::PATCH, &item.patch),
        (Method::HEAD, &item.head),
        (Method::OPTIONS, &item.options),
    ]
    .into_iter()
    .filter_map(|(m, op)| op.as_ref().map(|op| (m, op)))
    .collect()
}

fn policy_of(path: &str, op: &utoipa::openapi::path::Operation) -> Option<RouteSpec> {
    let ext = op.extensions.as_ref()?;
    let text = |k: &str| ext.get(k).and_then(|v| v.as_str());
    let group = Group::parse(text("x-ee-group")?)?;
    let action = Action::parse(text("x-ee-action")?)?;
    let scope = match text("x-ee-scope") {
        None | Some("api") => "api",
        Some("metrics") => "metrics",
        Some(_) => return None,
    };
    let account = match text("x-ee-account") {
        Some("query") => AccountSource::Query,
        _ if path.contains("{account}") => AccountSource::Path,
        _ => AccountSource::None,
    };
    Some(RouteSpec {
        policy: RoutePolicy {
            scope,
            group,
            action,
        },
        account,
    })
}

impl Policies {
    /// Reads every operation's policy; operations marked `x-ee-auth: none` are public.
    /// Fails naming the operations that declare none.
    pub fn from_doc(doc: &utoipa::openapi::OpenApi) -> Result<Self, Vec<MissingPolicy>> {
        let mut table = std::collections::HashMap::new();
        let mut missing = Vec::new();
        for (path, item) in doc.paths.paths.iter() {
            for (method, op) in operations(item) {
                let public = op
                    .extensions
                    .as_ref()
                    .and_then(|e| e.get("x-ee-auth"))
                    .is_some_and(|v| v == "none");
                if public {
                    continue;
                }
                match policy_of(path, op) {
                    Some(spec) => {
                        table.insert((method, path.clone()), spec);
                    }
                    None => missing.push(MissingPolicy {
                        method,
                        path: path.clone(),
                    }),
                }
            }
        }
        if missing.is_empty() {
            Ok(Self(table))
        } else {
            Err(missing)
        }
    }

    /// The policy of a matched route; `None` for a route that declares none (refused).
    pub fn get(&self, method: &Method, path: &str) -> Option<RouteSpec> {
        self.0.get(&(method.clone(), path.to_string())).copied()
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
    /// The token is narrowed by a `permissions` record (or is a `sess_` token): it may not
    /// pick its own connection route (`proxy` on submit).
    pub restricted: bool,
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
    client_ip_of(req.headers(), req.extensions(), trust_proxy)
}

/// [`client_ip`] from a request's parts.
pub fn client_ip_of(
    headers: &HeaderMap,
    extensions: &axum::http::Extensions,
    trust_proxy: bool,
) -> Option<IpAddr> {
    if trust_proxy
        && let Some(ip) = headers
            .get("x-forwarded-for")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(',').next())
            .and_then(|v| v.trim().parse::<IpAddr>().ok())
    {
        return Some(ip);
    }
    extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip())
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// The answer to a `/v1` path this server does not serve: like every `/v1` route it first
/// wants a credential (401 without one, or with a token that is not valid), then 404. So a
/// client can never tell a route it may not call from one that does not exist.
pub async fn unknown_api_route(
    state: &AppState,
    headers: &HeaderMap,
    query: Option<&str>,
) -> ApiError {
    let not_found = ApiError::new(StatusCode::NOT_FOUND, "Not Found");
    let presented = match presented_token(headers, query) {
        Ok(t) => t.filter(|t| !t.is_empty()),
        Err(()) => return ApiError::missing_authentication(),
    };
    let Some(presented) = presented else {
        return match state.tokens_disabled().await {
            Ok(true) => not_found,
            Ok(false) => ApiError::missing_authentication(),
            Err(e) => e,
        };
    };
    let Ok(value) = TokenValue::parse(&presented) else {
        return ApiError::bad_token();
    };
    match state.store.token(&value.id()).await {
        Ok(Some(r)) if !r.is_expired(now_ms()) => not_found,
        Ok(_) => ApiError::bad_token(),
        Err(e) => ApiError::from(e),
    }
}

/// Middleware for every authenticated route.
pub async fn authenticate(
    State((state, policies)): State<(AppState, std::sync::Arc<Policies>)>,
    mut req: Request,
    next: Next,
) -> Response {
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
    let Some(route_spec) = policies.get(req.method(), &route) else {
        tracing::error!(route, method = %req.method(), "Route has no declared policy; refused");
        return ApiError::forbidden("Unauthorized permission").into_response();
    };
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
    let method = req.method().as_str().to_string();
    let audit = Audit {
        state: &state,
        id: &id,
        record: &record,
        method: &method,
        route: &route,
        policy: route_spec.policy,
        account: route_account.as_deref(),
        remote,
    };
    if let Err(denial) = auth::authorize(&record, route_spec.policy, route_account.as_deref()) {
        audit
            .record("denied", Some(denial_reason(&record, &denial)))
            .await;
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
                audit
                    .record("denied", Some(denial_reason(&record, &denial)))
                    .await;
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
                    audit.record("denied", Some("rateLimit")).await;
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

    audit.record("allowed", None).await;
    let ctx = AuthContext {
        token_id: Some(id),
        account: record.account.clone(),
        preauth: false,
        remote,
        restricted: record.permissions.is_some() || presented.starts_with("sess_"),
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

/// Audit entries kept per token, and how long a token's log lives after its last entry
/// (EmailEngine's `EENGINE_TOKEN_LOG_ENTRIES` / `EENGINE_TOKEN_LOG_AGE` defaults).
pub const AUDIT_ENTRIES: usize = 1000;
pub const AUDIT_AGE_SECS: u64 = 604_800;

/// One request of a token, as the audit log (spec §3.12) records it.
struct Audit<'a> {
    state: &'a AppState,
    id: &'a str,
    record: &'a TokenRecord,
    method: &'a str,
    route: &'a str,
    policy: RoutePolicy,
    account: Option<&'a str>,
    remote: Option<IpAddr>,
}

impl Audit<'_> {
    /// Appends the entry when `tokenAuditLog` is on. A failed write is logged, never fatal.
    async fn record(&self, status: &str, reason: Option<&str>) {
        if !self.state.audit_enabled().await {
            return;
        }
        let account: Option<String> = self
            .account
            .or(self.record.account.as_deref())
            .map(|a| a.chars().take(256).collect());
        let entry = serde_json::json!({
            "time": now_ms(),
            "ip": self.remote.map(|r| r.to_string()),
            "method": self.method,
            "path": self.route,
            "action": self.policy.action.as_str(),
            "group": self.policy.group.as_str(),
            "account": account,
            "status": status,
            "reason": reason,
        });
        let bytes =
            emailengine_core::msgpack::encode(&emailengine_core::msgpack::from_json(&entry));
        if let Err(e) = self
            .state
            .store
            .push_token_audit(self.id, &bytes, AUDIT_ENTRIES, AUDIT_AGE_SECS)
            .await
        {
            tracing::warn!(token = %self.id, err = %e, "Failed to write a token audit entry");
        }
    }
}

/// The audit log's word for a denial.
fn denial_reason(record: &TokenRecord, denial: &Denial) -> &'static str {
    match denial {
        Denial::Scope { .. } => "scope",
        Denial::Account => "account",
        Denial::Address { .. } => "address",
        Denial::Referrer => "referrer",
        Denial::Permission { action, .. } => match record
            .permissions
            .as_ref()
            .map(emailengine_core::permissions::Permissions::parse)
        {
            Some(Err(_)) => "malformed",
            Some(Ok(p)) if p.actions.as_ref().is_some_and(|a| !a.contains(action)) => "action",
            Some(Ok(_)) => "group",
            None => "unclassified",
        },
    }
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
    fn every_route_declares_its_policy() {
        let doc = crate::openapi_document();
        let policies = match Policies::from_doc(&doc) {
            Ok(p) => p,
            Err(missing) => panic!("routes without a policy: {missing:?}"),
        };
        let expect =
            |m: Method, path: &str, group: Group, action: Action, account: AccountSource| {
                let spec = policies
                    .get(&m, path)
                    .unwrap_or_else(|| panic!("{m} {path}"));
                assert_eq!(
                    (spec.policy.group, spec.policy.action, spec.account),
                    (group, action, account),
                    "{m} {path}"
                );
            };
        use AccountSource as A;
        expect(
            Method::PUT,
            "/v1/account/{account}/messages",
            Group::Message,
            Action::Write,
            A::Path,
        );
        expect(
            Method::PUT,
            "/v1/account/{account}/messages/move",
            Group::Message,
            Action::Write,
            A::Path,
        );
        expect(
            Method::POST,
            "/v1/account/{account}/message",
            Group::Message,
            Action::Write,
            A::Path,
        );
        expect(
            Method::PUT,
            "/v1/account/{account}/messages/delete",
            Group::Message,
            Action::Destructive,
            A::Path,
        );
        expect(
            Method::POST,
            "/v1/account/{account}/search",
            Group::Message,
            Action::Read,
            A::Path,
        );
        expect(
            Method::GET,
            "/v1/tokens",
            Group::Admin,
            Action::Read,
            A::Query,
        );
        expect(
            Method::POST,
            "/v1/verifyAccount",
            Group::Admin,
            Action::Read,
            A::None,
        );
        expect(
            Method::DELETE,
            "/v1/account/{account}",
            Group::Account,
            Action::Destructive,
            A::Path,
        );
        assert_eq!(
            policies
                .get(&Method::GET, "/metrics")
                .map(|s| s.policy.scope),
            Some("metrics")
        );
        assert!(policies.get(&Method::GET, "/health").is_none());
    }

    /// Spec §5: the permission group and action of every route this server has.
    const SPEC: &[(&str, &str, &str, &str)] = &[
        ("POST", "/v1/account", "admin", "write"),
        ("GET", "/v1/accounts", "account", "read"),
        ("GET", "/v1/changes", "events", "read"),
        ("GET", "/v1/account/{account}", "account", "read"),
        ("PUT", "/v1/account/{account}", "admin", "write"),
        ("DELETE", "/v1/account/{account}", "account", "destructive"),
        ("GET", "/v1/account/{account}/oauth-token", "admin", "read"),
        ("POST", "/v1/authentication/form", "admin", "write"),
        ("PUT", "/v1/account/{account}/reconnect", "account", "write"),
        ("PUT", "/v1/account/{account}/sync", "account", "write"),
        (
            "PUT",
            "/v1/account/{account}/flush",
            "account",
            "destructive",
        ),
        ("POST", "/v1/verifyAccount", "admin", "read"),
        ("GET", "/v1/autoconfig", "diagnostics", "read"),
        ("GET", "/v1/account/{account}/mailboxes", "mailbox", "read"),
        ("POST", "/v1/account/{account}/mailbox", "mailbox", "write"),
        ("PUT", "/v1/account/{account}/mailbox", "mailbox", "write"),
        (
            "DELETE",
            "/v1/account/{account}/mailbox",
            "mailbox",
            "destructive",
        ),
        ("GET", "/v1/account/{account}/messages", "message", "read"),
        ("POST", "/v1/account/{account}/search", "message", "read"),
        (
            "GET",
            "/v1/account/{account}/message/{message}",
            "message",
            "read",
        ),
        (
            "PUT",
            "/v1/account/{account}/message/{message}",
            "message",
            "write",
        ),
        (
            "DELETE",
            "/v1/account/{account}/message/{message}",
            "message",
            "destructive",
        ),
        (
            "PUT",
            "/v1/account/{account}/message/{message}/move",
            "message",
            "write",
        ),
        (
            "GET",
            "/v1/account/{account}/message/{message}/source",
            "message",
            "read",
        ),
        ("POST", "/v1/account/{account}/message", "message", "write"),
        (
            "GET",
            "/v1/account/{account}/text/{text}",
            "message",
            "read",
        ),
        (
            "GET",
            "/v1/account/{account}/attachment/{attachment}",
            "message",
            "read",
        ),
        ("PUT", "/v1/account/{account}/messages", "message", "write"),
        (
            "PUT",
            "/v1/account/{account}/messages/move",
            "message",
            "write",
        ),
        (
            "PUT",
            "/v1/account/{account}/messages/delete",
            "message",
            "destructive",
        ),
        ("POST", "/v1/account/{account}/submit", "submit", "send"),
        (
            "POST",
            "/v1/account/{account}/message/{message}/submit",
            "submit",
            "send",
        ),
        ("GET", "/v1/outbox", "outbox", "read"),
        ("GET", "/v1/outbox/{queueId}", "outbox", "read"),
        ("DELETE", "/v1/outbox/{queueId}", "outbox", "destructive"),
        ("POST", "/v1/tokens", "admin", "write"),
        ("GET", "/v1/tokens", "admin", "read"),
        ("GET", "/v1/tokens/{token}", "admin", "read"),
        ("DELETE", "/v1/tokens/{token}", "admin", "destructive"),
        ("POST", "/v1/token", "admin", "write"),
        ("DELETE", "/v1/token/{token}", "admin", "destructive"),
        ("GET", "/v1/tokens/account/{account}", "admin", "read"),
        ("GET", "/v1/settings", "admin", "read"),
        ("POST", "/v1/settings", "admin", "write"),
        ("GET", "/v1/stats", "diagnostics", "read"),
        ("GET", "/metrics", "diagnostics", "read"),
        ("GET", "/v1/webhooks/failed", "webhook", "read"),
        (
            "POST",
            "/v1/webhooks/failed/{event}/resend",
            "webhook",
            "write",
        ),
        ("GET", "/v1/templates", "template", "read"),
        ("POST", "/v1/templates/template", "template", "write"),
        (
            "GET",
            "/v1/templates/template/{template}",
            "template",
            "read",
        ),
        (
            "PUT",
            "/v1/templates/template/{template}",
            "template",
            "write",
        ),
        (
            "DELETE",
            "/v1/templates/template/{template}",
            "template",
            "destructive",
        ),
        (
            "DELETE",
            "/v1/templates/account/{account}",
            "template",
            "destructive",
        ),
        ("GET", "/v1/blocklists", "blocklist", "read"),
        ("GET", "/v1/blocklist/{listId}", "blocklist", "read"),
        ("POST", "/v1/blocklist/{listId}", "blocklist", "write"),
        (
            "DELETE",
            "/v1/blocklist/{listId}",
            "blocklist",
            "destructive",
        ),
        ("GET", "/v1/gateways", "gateway", "read"),
        ("GET", "/v1/gateway/{gateway}", "gateway", "read"),
        ("DELETE", "/v1/gateway/{gateway}", "gateway", "destructive"),
        ("POST", "/v1/gateway", "admin", "write"),
        ("PUT", "/v1/gateway/edit/{gateway}", "admin", "write"),
        ("GET", "/v1/oauth2", "admin", "read"),
        ("POST", "/v1/oauth2", "admin", "write"),
        ("GET", "/v1/oauth2/{app}", "admin", "read"),
        ("PUT", "/v1/oauth2/{app}", "admin", "write"),
        ("DELETE", "/v1/oauth2/{app}", "admin", "destructive"),
        ("GET", "/v1/settings/queue/{queue}", "admin", "read"),
        ("PUT", "/v1/settings/queue/{queue}", "admin", "write"),
        ("GET", "/v1/webhookRoutes", "webhook", "read"),
        (
            "GET",
            "/v1/webhookRoutes/webhookRoute/{webhookRoute}",
            "webhook",
            "read",
        ),
        ("GET", "/v1/tokens/{token}/log", "admin", "read"),
        ("GET", "/v1/logs/{account}", "logs", "read"),
        ("GET", "/v1/license", "admin", "read"),
        ("POST", "/v1/license", "admin", "write"),
        ("DELETE", "/v1/license", "admin", "destructive"),
        (
            "GET",
            "/v1/account/{account}/server-signatures",
            "account",
            "read",
        ),
    ];

    #[test]
    fn every_route_has_the_policy_of_spec_section_5() {
        let doc = crate::openapi_document();
        let policies = Policies::from_doc(&doc).unwrap();
        let mut documented = 0;
        for (path, item) in doc.paths.paths.iter() {
            for (method, _) in operations(item) {
                if path == "/health" {
                    continue;
                }
                documented += 1;
                let spec = SPEC
                    .iter()
                    .find(|(m, p, _, _)| *m == method.as_str() && p == path)
                    .unwrap_or_else(|| panic!("{method} {path} is not in the table"));
                let got = policies.get(&method, path).unwrap();
                assert_eq!(
                    (got.policy.group.as_str(), got.policy.action.as_str()),
                    (spec.2, spec.3),
                    "{method} {path}"
                );
            }
        }
        assert_eq!(documented, SPEC.len(), "every route of the table is served");
    }

    #[test]
    fn an_operation_without_policy_is_reported() {
        let mut doc = crate::openapi_document();
        if let Some(item) = doc.paths.paths.get_mut("/v1/stats")
            && let Some(op) = item.get.as_mut()
        {
            op.extensions = None;
        }
        let missing = Policies::from_doc(&doc).unwrap_err();
        assert_eq!(
            missing,
            vec![MissingPolicy {
                method: Method::GET,
                path: "/v1/stats".into()
            }]
        );
    }
}
