//! The dashboard: accounts by state, webhook and outbox queue depths, the store and version,
//! uptime, the newest error events and the day's counters, from `GET /v1/stats` and the event
//! log.

use askama::Template;
use axum::Json;
use axum::extract::{Extension, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use crate::Admin;
use crate::guard::Visit;
use crate::pages::{Layout, NoticeQuery, error_page, render, text_of, when};

/// Events the dashboard lists as errors.
const ERROR_EVENTS: [&str; 6] = [
    "authenticationError",
    "connectError",
    "messageFailed",
    "messageDeliveryError",
    "messageBounce",
    "messageComplaint",
];
/// How far back the event log is searched for them.
const ERROR_SCAN: usize = 500;
const ERRORS_SHOWN: usize = 10;

pub struct EventRow {
    pub time: String,
    pub account: String,
    pub account_path: String,
    pub event: String,
    pub detail: String,
}

/// The short text of an event payload: its error or response, if any.
pub fn event_detail(payload: &str) -> String {
    let v: Value = serde_json::from_str(payload).unwrap_or(Value::Null);
    let data = v.get("data").unwrap_or(&Value::Null);
    for key in ["error", "response", "message", "path", "subject"] {
        let text = match data.get(key) {
            Some(Value::String(s)) => s.clone(),
            Some(Value::Object(o)) => o
                .get("response")
                .or_else(|| o.get("message"))
                .and_then(Value::as_str)
                .map(str::to_string)
                .unwrap_or_default(),
            _ => String::new(),
        };
        if !text.is_empty() {
            return text.chars().take(300).collect();
        }
    }
    String::new()
}

#[derive(Template)]
#[template(path = "dashboard.html")]
struct DashboardPage {
    layout: Layout,
    accounts_total: u64,
    states: Vec<(String, u64)>,
    webhooks_waiting: u64,
    webhooks_dead: u64,
    outbox_waiting: u64,
    version: String,
    store_kind: String,
    store_location: String,
    store_version: String,
    uptime: String,
    errors: Vec<EventRow>,
    counters: Vec<(String, u64)>,
}

pub fn uptime_text(secs: u64) -> String {
    let (d, h, m, s) = (secs / 86_400, secs / 3600 % 24, secs / 60 % 60, secs % 60);
    match (d, h) {
        (0, 0) => format!("{m} min {s} s"),
        (0, _) => format!("{h} h {m} min"),
        _ => format!("{d} d {h} h"),
    }
}

/// Accounts by connection state from `/v1/stats`, only the states some account is in.
fn states_of(stats: &Value) -> Vec<(String, u64)> {
    stats["connections"]
        .as_object()
        .map(|m| {
            m.iter()
                .filter_map(|(k, n)| Some((k.clone(), n.as_u64().filter(|n| *n > 0)?)))
                .collect()
        })
        .unwrap_or_default()
}

/// `GET /admin/dashboard/states`: the dashboard's account counts as JSON, which its script
/// fetches again when the change stream reports a state change.
pub async fn states(State(admin): State<Admin>, Extension(visit): Extension<Visit>) -> Response {
    let stats = admin.api.get("/v1/stats?seconds=60", visit.client).await;
    if !stats.is_ok() {
        return (stats.status, Json(json!({"error": stats.problem()}))).into_response();
    }
    let states: Vec<Value> = states_of(&stats.body)
        .into_iter()
        .map(|(state, count)| json!({"state": state, "count": count}))
        .collect();
    Json(json!({"accounts": stats.body["accounts"].as_u64().unwrap_or(0), "states": states}))
        .into_response()
}

pub async fn page(
    State(admin): State<Admin>,
    Extension(visit): Extension<Visit>,
    Query(q): Query<NoticeQuery>,
) -> Response {
    let (stats, recent, dead) = tokio::join!(
        admin.api.get("/v1/stats?seconds=86400", visit.client),
        admin.app.store.recent_events(None, ERROR_SCAN),
        admin.app.store.dead_events(0, 0),
    );
    if !stats.is_ok() {
        return error_page(
            StatusCode::BAD_GATEWAY,
            "Statistics unavailable",
            &stats.problem(),
        );
    }
    let s = &stats.body;
    let count = |v: &Value| v.as_u64().unwrap_or(0);
    let states = states_of(s);
    let errors = recent
        .unwrap_or_default()
        .into_iter()
        .filter(|e| ERROR_EVENTS.contains(&e.event.as_str()))
        .take(ERRORS_SHOWN)
        .map(|e| EventRow {
            time: when(Some(e.queued_at)),
            account_path: crate::api::enc(&e.account),
            detail: event_detail(&e.payload),
            account: e.account,
            event: e.event,
        })
        .collect();
    let counters = s["counters"]
        .as_object()
        .map(|m| m.iter().map(|(k, v)| (k.clone(), count(v))).collect())
        .unwrap_or_default();
    render(&DashboardPage {
        layout: Layout::new(&visit, "/admin").with_notice(q.notice.as_deref()),
        accounts_total: count(&s["accounts"]),
        states,
        webhooks_waiting: count(&s["queues"]["notify"]["waiting"]),
        webhooks_dead: dead.map(|(total, _)| total).unwrap_or(0),
        outbox_waiting: count(&s["queues"]["submit"]["total"]),
        version: format!(
            "{} {} (EmailEngine {} compatible)",
            text_of(&s["build"], "implementation"),
            text_of(&s["build"], "version"),
            text_of(s, "version")
        ),
        store_kind: text_of(&s["store"], "type"),
        store_location: text_of(&s["store"], "location"),
        store_version: text_of(&s["store"], "version"),
        uptime: uptime_text(admin.app.started.elapsed().as_secs()),
        errors,
        counters,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn states_in_use() {
        let stats = json!({"connections": {"connected": 2, "init": 0, "connectError": 1}});
        assert_eq!(
            states_of(&stats),
            vec![("connected".into(), 2), ("connectError".into(), 1)]
        );
        assert_eq!(states_of(&json!({})), vec![]);
    }

    #[test]
    fn uptime() {
        assert_eq!(uptime_text(59), "0 min 59 s");
        assert_eq!(uptime_text(3600 + 120), "1 h 2 min");
        assert_eq!(uptime_text(2 * 86_400 + 3 * 3600), "2 d 3 h");
    }

    #[test]
    fn details() {
        assert_eq!(
            event_detail(r#"{"data":{"error":{"response":"AUTHENTICATIONFAILED"}}}"#),
            "AUTHENTICATIONFAILED"
        );
        assert_eq!(event_detail(r#"{"data":{"error":"timeout"}}"#), "timeout");
        assert_eq!(event_detail("not json"), "");
    }
}
