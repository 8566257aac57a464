//! Webhook settings (URL, switch, events, custom headers, what message events include), "send
//! test webhook", and the deliveries that were given up, with re-send. Settings are shown as
//! `GET /v1/settings` shows them (credentials masked) and written with `POST /v1/settings`; a
//! masked value sent back unchanged keeps the stored secret.

use askama::Template;
use axum::Json;
use axum::extract::{Extension, Path, Query, State};
use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};

use emailengine_core::settings::{EVENT_TYPES, mask_url_credentials};

use crate::Admin;
use crate::api::enc;
use crate::form::FormData;
use crate::guard::Visit;
use crate::pages::{
    Layout, PAGE_SIZE, PageQuery, error_page, page_number, render, see_other, text_of, when_iso,
};
use crate::webhook_test;

const MASK: &str = "******";
const SHOWN: [&str; 12] = [
    "webhooksEnabled",
    "webhooks",
    "webhookEvents",
    "webhooksCustomHeaders",
    "inboxNewOnly",
    "notifyHeaders",
    "notifyText",
    "notifyWebSafeHtml",
    "notifyTextSize",
    "notifyAttachments",
    "notifyAttachmentSize",
    "notifyCalendarEvents",
];

pub struct FailedRow {
    pub path: String,
    pub account: String,
    pub event: String,
    pub reason: String,
    pub failed: String,
}

#[derive(Template)]
#[template(path = "webhooks.html")]
struct WebhooksPage {
    layout: Layout,
    enabled: bool,
    url: String,
    custom_headers: String,
    all_events: bool,
    events: Vec<(&'static str, bool)>,
    inbox_new_only: bool,
    headers_all: bool,
    notify_headers: String,
    notify_text: bool,
    web_safe_html: bool,
    text_size: String,
    attachments: bool,
    attachment_size: String,
    calendar: bool,
    failed: Vec<FailedRow>,
    page: usize,
    pages: usize,
    pager_base: String,
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default()
}

/// `[{key, value}]` as `Key: value` lines.
fn header_lines(v: &Value) -> String {
    v.as_array()
        .map(|items| {
            items
                .iter()
                .map(|h| format!("{}: {}", text_of(h, "key"), text_of(h, "value")))
                .collect::<Vec<_>>()
                .join("\n")
        })
        .unwrap_or_default()
}

async fn show(admin: &Admin, visit: &Visit, page: usize, layout: Layout) -> Response {
    let query: Vec<String> = SHOWN.iter().map(|k| format!("{k}=true")).collect();
    let settings_path = format!("/v1/settings?{}", query.join("&"));
    let failed_path = format!("/v1/webhooks/failed?page={}&pageSize={PAGE_SIZE}", page - 1);
    let (settings, failed) = tokio::join!(
        admin.api.get(&settings_path, visit.client),
        admin.api.get(&failed_path, visit.client),
    );
    if !settings.is_ok() {
        return error_page(
            StatusCode::BAD_GATEWAY,
            "Settings unavailable",
            &settings.problem(),
        );
    }
    let s = &settings.body;
    let flag = |k: &str| s[k] == Value::Bool(true);
    let number = |k: &str| s[k].as_i64().map(|n| n.to_string()).unwrap_or_default();
    let chosen = strings(&s["webhookEvents"]);
    let headers = strings(&s["notifyHeaders"]);
    let failed_rows = failed.body["events"]
        .as_array()
        .map(|list| {
            list.iter()
                .map(|e| FailedRow {
                    path: enc(&text_of(e, "id")),
                    account: text_of(e, "account"),
                    event: text_of(e, "event"),
                    reason: text_of(e, "reason"),
                    failed: when_iso(e["failed"].as_str()),
                })
                .collect()
        })
        .unwrap_or_default();
    render(&WebhooksPage {
        layout,
        enabled: flag("webhooksEnabled"),
        url: text_of(s, "webhooks"),
        custom_headers: header_lines(&s["webhooksCustomHeaders"]),
        all_events: chosen.iter().any(|e| e == "*") || s.get("webhookEvents").is_none(),
        events: EVENT_TYPES
            .iter()
            .map(|e| (*e, chosen.iter().any(|c| c == e)))
            .collect(),
        inbox_new_only: flag("inboxNewOnly"),
        headers_all: headers.iter().any(|h| h == "*"),
        notify_headers: headers
            .iter()
            .filter(|h| *h != "*")
            .cloned()
            .collect::<Vec<_>>()
            .join("\n"),
        notify_text: flag("notifyText"),
        web_safe_html: flag("notifyWebSafeHtml"),
        text_size: number("notifyTextSize"),
        attachments: flag("notifyAttachments"),
        attachment_size: number("notifyAttachmentSize"),
        calendar: flag("notifyCalendarEvents"),
        failed: failed_rows,
        page,
        pages: failed.body["pages"].as_u64().unwrap_or(1) as usize,
        pager_base: "/admin/webhooks?".into(),
    })
}

pub async fn page(
    State(admin): State<Admin>,
    Extension(visit): Extension<Visit>,
    Query(q): Query<PageQuery>,
) -> Response {
    let layout = Layout::new(&visit, "/admin/webhooks").with_notice(q.notice.as_deref());
    show(&admin, &visit, page_number(q.page.as_deref()), layout).await
}

/// The stored URL and custom headers, to put back what the page only showed masked.
struct Stored {
    url: Option<String>,
    headers: Vec<(String, String)>,
}

async fn stored(admin: &Admin) -> Stored {
    let values = admin
        .app
        .settings
        .get(&["webhooks", "webhooksCustomHeaders"])
        .await
        .unwrap_or_default();
    let get = |i: usize| values.get(i).cloned().flatten().unwrap_or(Value::Null);
    Stored {
        url: get(0).as_str().map(str::to_string),
        headers: get(1)
            .as_array()
            .map(|items| {
                items
                    .iter()
                    .map(|h| (text_of(h, "key"), text_of(h, "value")))
                    .collect()
            })
            .unwrap_or_default(),
    }
}

/// The URL the form means: the stored one when the masked form of it came back unchanged.
fn unmask_url(submitted: &str, stored: Option<&str>) -> String {
    match stored {
        Some(real) if submitted.contains(MASK) && mask_url_credentials(real) == submitted => {
            real.to_string()
        }
        _ => submitted.to_string(),
    }
}

/// `Key: value` lines as header pairs; a `******` value keeps the stored value of that header.
fn parse_headers(text: &str, stored: &[(String, String)]) -> Vec<(String, String)> {
    text.lines()
        .filter_map(|line| {
            let (k, v) = line.split_once(':')?;
            let (k, v) = (k.trim(), v.trim());
            if k.is_empty() {
                return None;
            }
            let value = if v == MASK {
                stored
                    .iter()
                    .find(|(sk, _)| sk.eq_ignore_ascii_case(k))
                    .map_or(v, |(_, sv)| sv.as_str())
            } else {
                v
            };
            Some((k.to_string(), value.to_string()))
        })
        .collect()
}

/// The `POST /v1/settings` body for the form.
fn settings_request(form: &FormData, stored: &Stored) -> Value {
    let mut body = Map::new();
    let flag = |k: &str| Value::Bool(form.checked(k));
    body.insert("webhooksEnabled".into(), flag("webhooksEnabled"));
    let url = form.text("webhooks").unwrap_or_default();
    body.insert(
        "webhooks".into(),
        Value::String(unmask_url(&url, stored.url.as_deref())),
    );
    let events = if form.checked("notifyAll") {
        vec!["*".to_string()]
    } else {
        form.all("events")
    };
    body.insert("webhookEvents".into(), json!(events));
    let headers: Vec<Value> = parse_headers(
        &form.text("customHeaders").unwrap_or_default(),
        &stored.headers,
    )
    .into_iter()
    .map(|(key, value)| json!({"key": key, "value": value}))
    .collect();
    body.insert("webhooksCustomHeaders".into(), Value::Array(headers));
    let notify_headers: Vec<String> = if form.checked("headersAll") {
        vec!["*".into()]
    } else {
        form.text("notifyHeaders")
            .unwrap_or_default()
            .lines()
            .map(|l| l.trim().to_ascii_lowercase())
            .filter(|l| !l.is_empty())
            .collect()
    };
    body.insert("notifyHeaders".into(), json!(notify_headers));
    for key in [
        "inboxNewOnly",
        "notifyText",
        "notifyWebSafeHtml",
        "notifyAttachments",
        "notifyCalendarEvents",
    ] {
        body.insert(key.into(), flag(key));
    }
    for key in ["notifyTextSize", "notifyAttachmentSize"] {
        if let Some(v) = form.text(key) {
            body.insert(key.into(), Value::String(v));
        }
    }
    Value::Object(body)
}

pub async fn save(
    State(admin): State<Admin>,
    Extension(visit): Extension<Visit>,
    Extension(form): Extension<FormData>,
) -> Response {
    let stored = stored(&admin).await;
    let answer = admin
        .api
        .call(
            Method::POST,
            "/v1/settings",
            Some(&settings_request(&form, &stored)),
            visit.client,
        )
        .await;
    if !answer.is_ok() {
        let layout = Layout::new(&visit, "/admin/webhooks")
            .with_error(format!("The settings were not saved. {}", answer.problem()));
        return show(&admin, &visit, 1, layout).await;
    }
    see_other("/admin/webhooks?notice=saved")
}

/// "Send test webhook": posts a test event to the URL in the form; answers JSON.
pub async fn test(State(admin): State<Admin>, Extension(form): Extension<FormData>) -> Response {
    let stored = stored(&admin).await;
    let url = unmask_url(
        &form.text("webhooks").unwrap_or_default(),
        stored.url.as_deref(),
    );
    if url.is_empty() {
        return Json(json!({"success": false, "target": "", "error": "Webhook URL is not set"}))
            .into_response();
    }
    let headers = parse_headers(
        &form.text("customHeaders").unwrap_or_default(),
        &stored.headers,
    );
    let service_url = admin
        .app
        .settings
        .get_one("serviceUrl")
        .await
        .ok()
        .flatten()
        .and_then(|v| v.as_str().map(str::to_string));
    let outcome = webhook_test::send(
        &url,
        &headers,
        &webhook_test::test_payload(service_url.as_deref()),
        admin.config.webhook_egress,
        admin.config.webhook_timeout,
    )
    .await;
    tracing::info!(target_url = %outcome.target, success = outcome.success, statusCode = ?outcome.status_code, "Test webhook sent from the admin pages");
    Json(outcome).into_response()
}

pub async fn resend(
    State(admin): State<Admin>,
    Extension(visit): Extension<Visit>,
    Path(event): Path<String>,
) -> Response {
    let answer = admin
        .api
        .call(
            Method::POST,
            &format!("/v1/webhooks/failed/{}/resend", enc(&event)),
            None,
            visit.client,
        )
        .await;
    if !answer.is_ok() {
        return error_page(
            answer.status,
            "The event was not re-sent",
            &answer.problem(),
        );
    }
    see_other("/admin/webhooks?notice=resent#failed")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masked_values_keep_the_stored_secret() {
        let real = "https://user:s3cret@hooks.example/in";
        assert_eq!(
            unmask_url("https://******:******@hooks.example/in", Some(real)),
            real
        );
        assert_eq!(
            unmask_url("https://other.example/x", Some(real)),
            "https://other.example/x"
        );
        let stored = vec![("Authorization".to_string(), "Bearer abc".to_string())];
        assert_eq!(
            parse_headers(
                "authorization: ******\nX-Team: mail\nbroken line\n: novalue",
                &stored
            ),
            vec![
                ("authorization".to_string(), "Bearer abc".to_string()),
                ("X-Team".to_string(), "mail".to_string())
            ]
        );
    }

    #[test]
    fn settings_body() {
        let f = FormData::parse(
            b"webhooksEnabled=1&webhooks=http%3A%2F%2Fh%2Fx&events=messageNew&events=messageSent&notifyHeaders=X-A%0D%0AReceived&notifyTextSize=1024",
        );
        let body = settings_request(
            &f,
            &Stored {
                url: None,
                headers: vec![],
            },
        );
        assert_eq!(body["webhooksEnabled"], true);
        assert_eq!(body["webhooks"], "http://h/x");
        assert_eq!(body["webhookEvents"], json!(["messageNew", "messageSent"]));
        assert_eq!(body["notifyHeaders"], json!(["x-a", "received"]));
        assert_eq!(body["notifyTextSize"], "1024");
        assert_eq!(body["notifyText"], false);
    }
}
