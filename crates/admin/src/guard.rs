//! The middleware in front of every admin page: opens the session cookie, refuses any POST that
//! lacks this session's CSRF token or comes from another origin, sends visitors who may not see
//! a page to the setup, log-in or TOTP step, writes the session cookie back when a handler
//! starts or ends a session, and adds the security headers (a `default-src 'self'` CSP among
//! them) to every answer.

use std::collections::HashMap;
use std::net::IpAddr;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};
use serde_json::Value;

use emailengine_store::{Settings, StoreError};

use crate::credentials::AuthData;
use crate::form::FormData;
use crate::pages::error_page;
use crate::session::{self, Session, Stage};
use crate::{Admin, csrf};

/// Largest form body accepted.
const MAX_FORM: usize = 256 * 1024;

/// Everything a handler knows about the visit.
#[derive(Debug, Clone)]
pub struct Visit {
    pub session: Session,
    /// This session's CSRF token, for the forms of the page.
    pub csrf: String,
    /// The visitor's address (the proxy's `X-Forwarded-For` when trusted).
    pub client: Option<IpAddr>,
    /// Whether the page was served over https (directly or by a trusted proxy).
    pub secure: bool,
    /// The `Host` the visitor used (the proxy's `X-Forwarded-Host` when trusted).
    pub host: String,
    pub auth: Option<AuthData>,
    pub totp_enabled: bool,
}

/// Set by a handler on its response to start a new session or end the current one.
#[derive(Debug, Clone)]
pub enum SessionChange {
    Start(Session),
    End,
}

/// Sessions that were logged out before they expired, kept (in the `adminEndedSessions`
/// setting, so a restart does not revive them) until they would have expired anyway.
#[derive(Default)]
pub struct EndedSessions {
    ended: tokio::sync::Mutex<Option<HashMap<String, i64>>>,
}

const ENDED_KEY: &str = "adminEndedSessions";

impl EndedSessions {
    async fn loaded<'a>(
        &self,
        guard: &'a mut Option<HashMap<String, i64>>,
        settings: &Settings,
    ) -> Result<&'a mut HashMap<String, i64>, StoreError> {
        if guard.is_none() {
            let stored = settings.get_one(ENDED_KEY).await?;
            let map = match stored {
                Some(Value::Object(m)) => m
                    .into_iter()
                    .filter_map(|(k, v)| Some((k, v.as_i64()?)))
                    .collect(),
                _ => HashMap::new(),
            };
            *guard = Some(map);
        }
        Ok(guard.get_or_insert_with(HashMap::new))
    }

    pub async fn contains(&self, settings: &Settings, sid: &str) -> Result<bool, StoreError> {
        let mut guard = self.ended.lock().await;
        Ok(self.loaded(&mut guard, settings).await?.contains_key(sid))
    }

    pub async fn end(
        &self,
        settings: &Settings,
        session: &Session,
        now_ms: i64,
    ) -> Result<(), StoreError> {
        let mut guard = self.ended.lock().await;
        let map = self.loaded(&mut guard, settings).await?;
        map.retain(|_, expires| *expires > now_ms);
        map.insert(session.sid.clone(), session.expires);
        let json: serde_json::Map<String, Value> = map
            .iter()
            .map(|(k, v)| (k.clone(), Value::from(*v)))
            .collect();
        settings
            .set(&[(ENDED_KEY.into(), Value::Object(json))])
            .await
    }
}

/// Which kind of page a path is, for the access rules.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Area {
    Setup,
    Login,
    Totp,
    /// The live change stream: open while no password is set, as EmailEngine's is.
    Changes,
    Private,
}

fn area(path: &str) -> Area {
    match path {
        "/admin/setup" => Area::Setup,
        "/admin/login" => Area::Login,
        "/admin/totp" => Area::Totp,
        "/admin/changes" => Area::Changes,
        _ => Area::Private,
    }
}

/// What the rules say about a visit.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Access {
    Allow,
    Redirect(String),
}

fn decide(area: Area, stage: Stage, password_set: bool, wanted: &str) -> Access {
    let login = format!("/admin/login?next={}", crate::api::enc(wanted));
    match (password_set, area, stage) {
        (false, Area::Setup | Area::Changes, _) => Access::Allow,
        (false, _, _) => Access::Redirect("/admin/setup".into()),
        (true, Area::Setup, _) => Access::Redirect("/admin/login".into()),
        (true, Area::Login, Stage::SignedIn) => Access::Redirect("/admin".into()),
        (true, Area::Login, _) => Access::Allow,
        (true, Area::Totp, Stage::NeedsTotp) => Access::Allow,
        (true, Area::Totp, _) => Access::Redirect("/admin/login".into()),
        (true, Area::Private | Area::Changes, Stage::SignedIn) => Access::Allow,
        (true, Area::Private | Area::Changes, _) => Access::Redirect(login),
    }
}

fn forwarded<'a>(headers: &'a HeaderMap, name: &str, trust_proxy: bool) -> Option<&'a str> {
    if !trust_proxy {
        return None;
    }
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(',').next())
        .map(str::trim)
        .filter(|v| !v.is_empty())
}

/// `same-origin` for CSP, frames refused, no MIME sniffing, no referrer to other sites, and
/// no caching of pages that may show a token once.
fn secure_headers(headers: &mut HeaderMap) {
    let set = |h: &mut HeaderMap, k: &'static str, v: &'static str| {
        h.insert(k, HeaderValue::from_static(v));
    };
    set(
        headers,
        "content-security-policy",
        "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'; object-src 'none'",
    );
    set(headers, "x-frame-options", "DENY");
    set(headers, "x-content-type-options", "nosniff");
    set(headers, "referrer-policy", "same-origin");
    if !headers.contains_key(header::CACHE_CONTROL) {
        set(headers, "cache-control", "no-store");
    }
}

pub async fn guard(State(admin): State<Admin>, req: Request, next: Next) -> Response {
    let mut response = match guarded(&admin, req, next).await {
        Ok(r) => r,
        Err(e) => {
            tracing::error!(err = %e, "Admin page failed");
            error_page(
                StatusCode::INTERNAL_SERVER_ERROR,
                "Something went wrong",
                "The server could not read its settings. Try again in a moment.",
            )
        }
    };
    secure_headers(response.headers_mut());
    response
}

async fn guarded(admin: &Admin, req: Request, next: Next) -> Result<Response, StoreError> {
    let now = chrono::Utc::now().timestamp_millis();
    let keys = admin.keys().await?.clone();
    let settings = &admin.app.settings;
    let values = settings
        .get(&["authData", "totpEnabled", "serviceUrl"])
        .await?;
    let value = |i: usize| values.get(i).cloned().flatten();
    let auth = value(0).as_ref().and_then(AuthData::from_setting);
    let totp_enabled = value(1) == Some(Value::Bool(true));
    let service_url = value(2).and_then(|v| v.as_str().map(str::to_string));

    let trust = admin.config.trust_proxy;
    let headers = req.headers();
    let secure = forwarded(headers, "x-forwarded-proto", trust)
        .is_some_and(|p| p.eq_ignore_ascii_case("https"));
    let host = forwarded(headers, "x-forwarded-host", trust)
        .or_else(|| headers.get(header::HOST).and_then(|v| v.to_str().ok()))
        .unwrap_or_default()
        .to_string();
    let client = emailengine_api::auth::client_ip(&req, trust);

    let from_cookie = axum_extra::extract::cookie::CookieJar::from_headers(headers)
        .get(session::COOKIE)
        .and_then(|c| keys.open(c.value()));
    let mut valid = None;
    if let Some(s) = from_cookie
        && !s.is_expired(now)
        && (s.stage == Stage::Anonymous
            || auth
                .as_ref()
                .is_some_and(|a| a.password_version == s.password_version))
        && !admin.ended.contains(settings, &s.sid).await?
    {
        valid = Some(s);
    }
    let fresh = valid.is_none();
    let session = valid.unwrap_or_else(|| Session::anonymous(now));

    let mut req = req;
    if req.method() == Method::POST {
        let allowed: Vec<String> = [
            csrf::origin_of(&format!(
                "{}://{host}",
                if secure { "https" } else { "http" }
            )),
            service_url.as_deref().and_then(csrf::origin_of),
        ]
        .into_iter()
        .flatten()
        .collect();
        let header_text = |h: &HeaderMap, name: header::HeaderName| {
            h.get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string)
        };
        let origin = header_text(req.headers(), header::ORIGIN);
        let referer = header_text(req.headers(), header::REFERER);
        let (parts, body) = req.into_parts();
        let Ok(bytes) = axum::body::to_bytes(body, MAX_FORM).await else {
            return Ok(error_page(
                StatusCode::PAYLOAD_TOO_LARGE,
                "Form too large",
                "The submitted form is larger than the server accepts.",
            ));
        };
        let form = FormData::parse(&bytes);
        let token_ok = !fresh
            && form
                .raw(csrf::FIELD)
                .is_some_and(|t| csrf::verify(&keys, &session.sid, t));
        let origin_ok = csrf::same_origin(origin.as_deref(), referer.as_deref(), &allowed);
        if !token_ok || !origin_ok {
            tracing::warn!(
                path = parts.uri.path(),
                tokenOk = token_ok,
                originOk = origin_ok,
                remoteAddress = ?client,
                "Refused an admin form without a valid CSRF token or from another origin"
            );
            return Ok(error_page(
                StatusCode::FORBIDDEN,
                "Request refused",
                "This form has expired or was sent from another site. Reload the page and try again.",
            ));
        }
        req = Request::from_parts(parts, Body::from(bytes));
        req.extensions_mut().insert(form);
    }

    let wanted = req
        .uri()
        .path_and_query()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| "/admin".into());
    let access = decide(
        area(req.uri().path()),
        session.stage,
        auth.is_some(),
        &wanted,
    );
    let mut response = match access {
        Access::Redirect(to) => {
            let mut r = Redirect::to(&to).into_response();
            if fresh {
                r.extensions_mut()
                    .insert(SessionChange::Start(session.clone()));
            }
            r
        }
        Access::Allow => {
            let visit = Visit {
                csrf: csrf::token(&keys, &session.sid),
                session: session.clone(),
                client,
                secure,
                host,
                auth,
                totp_enabled,
            };
            req.extensions_mut().insert(visit);
            let mut r = next.run(req).await;
            if fresh && r.extensions().get::<SessionChange>().is_none() {
                r.extensions_mut().insert(SessionChange::Start(session));
            }
            r
        }
    };
    if let Some(change) = response.extensions_mut().remove::<SessionChange>() {
        let cookie = match change {
            SessionChange::Start(s) => session::session_cookie(
                &keys.seal(&s),
                &s,
                secure,
                chrono::Utc::now().timestamp_millis(),
            ),
            SessionChange::End => session::removal_cookie(secure),
        };
        if let Ok(v) = HeaderValue::from_str(&cookie) {
            response.headers_mut().append(header::SET_COOKIE, v);
        }
    }
    Ok(response)
}

/// Whether the first password may be set from this visit: from this machine (by address and
/// by the `Host` it used, so a rebound DNS name cannot stand in), unless configured otherwise.
pub fn may_set_up(admin: &Admin, visit: &Visit) -> bool {
    if admin.config.remote_setup {
        return true;
    }
    let host = visit
        .host
        .rsplit_once(':')
        .filter(|(_, port)| port.bytes().all(|b| b.is_ascii_digit()))
        .map_or(visit.host.as_str(), |(h, _)| h);
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let host_is_local = host.eq_ignore_ascii_case("localhost")
        || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback());
    visit.client.is_some_and(|ip| ip.is_loopback()) && host_is_local
}

/// Ends the visit's session for good (logout).
pub async fn end_session(admin: &Admin, session: &Session) -> Result<(), StoreError> {
    let now = chrono::Utc::now().timestamp_millis();
    admin.ended.end(&admin.app.settings, session, now).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn access_rules() {
        use Access::*;
        let r = |to: &str| Redirect(to.to_string());
        assert_eq!(
            decide(Area::Private, Stage::Anonymous, false, "/admin"),
            r("/admin/setup")
        );
        assert_eq!(
            decide(Area::Login, Stage::Anonymous, false, "/admin/login"),
            r("/admin/setup")
        );
        assert_eq!(decide(Area::Setup, Stage::Anonymous, false, "/x"), Allow);
        assert_eq!(
            decide(Area::Changes, Stage::Anonymous, false, "/admin/changes"),
            Allow
        );
        assert_eq!(
            decide(Area::Changes, Stage::Anonymous, true, "/admin/changes"),
            r("/admin/login?next=%2Fadmin%2Fchanges")
        );
        assert_eq!(
            decide(Area::Changes, Stage::SignedIn, true, "/admin/changes"),
            Allow
        );
        assert_eq!(
            decide(Area::Setup, Stage::SignedIn, true, "/x"),
            r("/admin/login")
        );
        assert_eq!(
            decide(
                Area::Private,
                Stage::Anonymous,
                true,
                "/admin/tokens?page=2"
            ),
            r("/admin/login?next=%2Fadmin%2Ftokens%3Fpage%3D2")
        );
        assert_eq!(
            decide(Area::Private, Stage::NeedsTotp, true, "/admin"),
            r("/admin/login?next=%2Fadmin")
        );
        assert_eq!(
            decide(Area::Private, Stage::SignedIn, true, "/admin"),
            Allow
        );
        assert_eq!(
            decide(Area::Totp, Stage::NeedsTotp, true, "/admin/totp"),
            Allow
        );
        assert_eq!(
            decide(Area::Totp, Stage::Anonymous, true, "/admin/totp"),
            r("/admin/login")
        );
        assert_eq!(
            decide(Area::Login, Stage::SignedIn, true, "/admin/login"),
            r("/admin")
        );
        assert_eq!(
            decide(Area::Login, Stage::NeedsTotp, true, "/admin/login"),
            Allow
        );
    }

    #[test]
    fn proxy_headers_only_when_trusted() {
        let mut h = HeaderMap::new();
        h.insert("x-forwarded-proto", HeaderValue::from_static("https, http"));
        assert_eq!(forwarded(&h, "x-forwarded-proto", true), Some("https"));
        assert_eq!(forwarded(&h, "x-forwarded-proto", false), None);
    }
}
