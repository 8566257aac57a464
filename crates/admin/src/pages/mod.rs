//! The admin pages, one module per area, and what they share: the layout every page renders
//! into, notices shown after a redirect, and the error page.

pub mod accounts;
pub mod changes;
pub mod dashboard;
pub mod login;
pub mod not_found;
pub mod oauth;
pub mod outbox;
pub mod security;
pub mod settings;
pub mod tokens;
pub mod webhooks;

use askama::Template;
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Redirect, Response};
use serde::Deserialize;

use crate::guard::{SessionChange, Visit};

/// The main navigation: target and label.
const NAV: &[(&str, &str)] = &[
    ("/admin", "Dashboard"),
    ("/admin/accounts", "Accounts"),
    ("/admin/tokens", "Access tokens"),
    ("/admin/webhooks", "Webhooks"),
    ("/admin/config/oauth", "OAuth2 apps"),
    ("/admin/outbox", "Outbox"),
    ("/admin/settings", "Settings"),
    ("/admin/account/security", "Security"),
];

/// What the base template needs from every page.
pub struct Layout {
    pub csrf: String,
    /// The navigation entry to mark as current.
    pub active: &'static str,
    pub nav: &'static [(&'static str, &'static str)],
    pub signed_in: bool,
    pub notice: Option<String>,
    pub error: Option<String>,
}

impl Layout {
    pub fn new(visit: &Visit, active: &'static str) -> Self {
        Self {
            csrf: visit.csrf.clone(),
            active,
            nav: NAV,
            signed_in: visit.session.stage == crate::session::Stage::SignedIn,
            notice: None,
            error: None,
        }
    }

    /// The layout of a page shown to nobody in particular (errors).
    fn bare() -> Self {
        Self {
            csrf: String::new(),
            active: "",
            nav: NAV,
            signed_in: false,
            notice: None,
            error: None,
        }
    }

    pub fn with_notice(mut self, notice: Option<&str>) -> Self {
        self.notice = notice.and_then(notice_text).map(str::to_string);
        self
    }

    pub fn with_error(mut self, error: impl Into<String>) -> Self {
        self.error = Some(error.into());
        self
    }
}

/// `?notice=` after a redirect; only these fixed texts are ever shown.
#[derive(Debug, Deserialize, Default)]
pub struct NoticeQuery {
    pub notice: Option<String>,
}

fn notice_text(code: &str) -> Option<&'static str> {
    Some(match code {
        "saved" => "Settings saved.",
        "password-saved" => "Password saved.",
        "signed-in" => "Signed in.",
        "account-added" => "Account added. Its connection is starting.",
        "account-deleted" => "Account deleted.",
        "reconnecting" => "Reconnect requested.",
        "syncing" => "Sync requested.",
        "token-deleted" => "Token deleted.",
        "resent" => "The event was queued again.",
        "cancelled" => "The message was removed from the outbox.",
        "app-saved" => "OAuth2 application saved.",
        "app-deleted" => "OAuth2 application deleted.",
        "totp-on" => "Two-factor authentication is on.",
        "totp-off" => "Two-factor authentication is off.",
        "logged-out" => "You are logged out.",
        _ => return None,
    })
}

/// Renders a page; a template failure becomes the error page.
pub fn render(page: &impl Template) -> Response {
    match page.render() {
        Ok(html) => Html(html).into_response(),
        Err(e) => {
            tracing::error!(err = %e, "Failed to render an admin page");
            error_page(
                StatusCode::INTERNAL_SERVER_ERROR,
                "Something went wrong",
                "This page could not be shown.",
            )
        }
    }
}

#[derive(Template)]
#[template(path = "error.html")]
struct ErrorPage<'a> {
    layout: Layout,
    heading: &'a str,
    message: &'a str,
}

pub fn error_page(status: StatusCode, heading: &str, message: &str) -> Response {
    let page = ErrorPage {
        layout: Layout::bare(),
        heading,
        message,
    };
    let html = page
        .render()
        .unwrap_or_else(|_| format!("<!doctype html><title>{status}</title><p>{status}</p>"));
    (status, Html(html)).into_response()
}

/// A 303 to `to` (the browser follows with a GET).
pub fn see_other(to: &str) -> Response {
    Redirect::to(to).into_response()
}

/// A response that also starts or ends the session.
pub fn with_session(mut response: Response, change: SessionChange) -> Response {
    response.extensions_mut().insert(change);
    response
}

/// A `next` parameter that is safe to redirect to: a path inside `/admin`.
pub fn safe_next(next: Option<&str>) -> String {
    match next {
        Some(n) if n.starts_with("/admin") && !n.contains("//") && !n.contains('\\') => {
            n.to_string()
        }
        _ => "/admin".into(),
    }
}

/// A millisecond timestamp as the pages show it (UTC, to the second).
pub fn when(ms: Option<i64>) -> String {
    ms.and_then(chrono::DateTime::from_timestamp_millis)
        .map(|t| t.format("%Y-%m-%d %H:%M:%S UTC").to_string())
        .unwrap_or_else(|| "—".into())
}

/// An ISO 8601 time from the API, shown like [`when`].
pub fn when_iso(iso: Option<&str>) -> String {
    when(iso.and_then(emailengine_core::units::parse_iso_time))
}

/// A JSON field as display text; empty when absent.
pub fn text_of(v: &serde_json::Value, key: &str) -> String {
    match v.get(key) {
        Some(serde_json::Value::String(s)) => s.clone(),
        Some(serde_json::Value::Null) | None => String::new(),
        Some(other) => other.to_string(),
    }
}

/// Rows per page of the list pages.
pub const PAGE_SIZE: usize = 20;

/// `?page=` and the notice a redirect left: what every list page takes.
#[derive(Debug, Deserialize, Default)]
pub struct PageQuery {
    pub page: Option<String>,
    pub notice: Option<String>,
}

/// One page (1-based) of an API listing, or the error page saying `what` is unavailable.
pub async fn api_page(
    admin: &crate::Admin,
    visit: &Visit,
    path: &str,
    page: usize,
    what: &str,
) -> Result<serde_json::Value, Response> {
    let answer = admin
        .api
        .get(
            &format!("{path}?page={}&pageSize={PAGE_SIZE}", page - 1),
            visit.client,
        )
        .await;
    if !answer.is_ok() {
        return Err(error_page(
            StatusCode::BAD_GATEWAY,
            &format!("{what} unavailable"),
            &answer.problem(),
        ));
    }
    Ok(answer.body)
}

/// The 1-based page number of a `?page=` parameter.
pub fn page_number(raw: Option<&str>) -> usize {
    raw.and_then(|p| p.parse::<usize>().ok())
        .unwrap_or(1)
        .max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn next_stays_inside_admin() {
        assert_eq!(safe_next(Some("/admin/tokens?x=1")), "/admin/tokens?x=1");
        assert_eq!(safe_next(Some("//evil.example/admin")), "/admin");
        assert_eq!(safe_next(Some("https://evil.example")), "/admin");
        assert_eq!(safe_next(Some("/admin//evil.example")), "/admin");
        assert_eq!(safe_next(Some("/admin\\x")), "/admin");
        assert_eq!(safe_next(None), "/admin");
    }

    #[test]
    fn times() {
        assert_eq!(when(Some(1_734_953_814_623)), "2024-12-23 11:36:54 UTC");
        assert_eq!(when(None), "—");
        assert_eq!(
            when_iso(Some("2024-12-23T11:36:54.623Z")),
            "2024-12-23 11:36:54 UTC"
        );
    }
}
