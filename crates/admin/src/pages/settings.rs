//! Service settings: the service URL, the service secret (write-only: the page says whether one
//! is set, never what it is), account protocol logging, and the server's log level (shown; it
//! is fixed at start). Read with `GET /v1/settings` and written with `POST /v1/settings`.

use askama::Template;
use axum::extract::{Extension, Query, State};
use axum::http::{Method, StatusCode};
use axum::response::Response;
use serde_json::{Map, Value, json};

use crate::Admin;
use crate::form::FormData;
use crate::guard::Visit;
use crate::pages::{Layout, NoticeQuery, error_page, render, see_other, text_of};

const DEFAULT_LOG_LINES: i64 = 10_000;

#[derive(Template)]
#[template(path = "settings.html")]
struct SettingsPage {
    layout: Layout,
    service_url: String,
    secret_set: bool,
    logs_all: bool,
    max_log_lines: i64,
    log_level: String,
}

async fn show(admin: &Admin, visit: &Visit, layout: Layout) -> Response {
    let answer = admin
        .api
        .get(
            "/v1/settings?serviceUrl=true&serviceSecret=true&logs=true",
            visit.client,
        )
        .await;
    if !answer.is_ok() {
        return error_page(
            StatusCode::BAD_GATEWAY,
            "Settings unavailable",
            &answer.problem(),
        );
    }
    let s = &answer.body;
    render(&SettingsPage {
        layout,
        service_url: text_of(s, "serviceUrl"),
        secret_set: s["serviceSecret"] == Value::Bool(true),
        logs_all: s["logs"]["all"] == Value::Bool(true),
        max_log_lines: s["logs"]["maxLogLines"]
            .as_i64()
            .unwrap_or(DEFAULT_LOG_LINES),
        log_level: admin.config.log_level.clone(),
    })
}

pub async fn page(
    State(admin): State<Admin>,
    Extension(visit): Extension<Visit>,
    Query(q): Query<NoticeQuery>,
) -> Response {
    let layout = Layout::new(&visit, "/admin/settings").with_notice(q.notice.as_deref());
    show(&admin, &visit, layout).await
}

/// The `POST /v1/settings` body for the form: an empty secret field keeps the stored secret.
fn settings_request(form: &FormData) -> Value {
    let mut body = Map::new();
    body.insert(
        "serviceUrl".into(),
        Value::String(form.text("serviceUrl").unwrap_or_default()),
    );
    if let Some(secret) = form.raw("serviceSecret") {
        body.insert("serviceSecret".into(), Value::String(secret.to_string()));
    }
    let lines = form
        .text("maxLogLines")
        .and_then(|n| n.parse::<i64>().ok())
        .unwrap_or(DEFAULT_LOG_LINES);
    body.insert(
        "logs".into(),
        json!({"all": form.checked("logsAll"), "maxLogLines": lines}),
    );
    Value::Object(body)
}

pub async fn save(
    State(admin): State<Admin>,
    Extension(visit): Extension<Visit>,
    Extension(form): Extension<FormData>,
) -> Response {
    let answer = admin
        .api
        .call(
            Method::POST,
            "/v1/settings",
            Some(&settings_request(&form)),
            visit.client,
        )
        .await;
    if !answer.is_ok() {
        let layout = Layout::new(&visit, "/admin/settings")
            .with_error(format!("The settings were not saved. {}", answer.problem()));
        return show(&admin, &visit, layout).await;
    }
    see_other("/admin/settings?notice=saved")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_secret_is_kept() {
        let body = settings_request(&FormData::parse(
            b"serviceUrl=https%3A%2F%2Fee.example&serviceSecret=&maxLogLines=50",
        ));
        assert_eq!(
            body,
            json!({"serviceUrl": "https://ee.example", "logs": {"all": false, "maxLogLines": 50}})
        );
        let body = settings_request(&FormData::parse(b"serviceSecret=n3w&logsAll=1"));
        assert_eq!(body["serviceSecret"], "n3w");
        assert_eq!(body["logs"], json!({"all": true, "maxLogLines": 10000}));
    }
}
