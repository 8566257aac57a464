//! The outbox: messages queued for delivery (`GET /v1/outbox`) and cancelling one
//! (`DELETE /v1/outbox/{queueId}`).

use askama::Template;
use axum::extract::{Extension, Path, Query, State};
use axum::http::Method;
use axum::response::Response;
use serde_json::Value;

use crate::Admin;
use crate::api::enc;
use crate::guard::Visit;
use crate::pages::{
    Layout, PageQuery, api_page, error_page, page_number, render, see_other, text_of, when_iso,
};

pub struct MessageRow {
    pub path: String,
    pub account: String,
    pub subject: String,
    pub recipients: String,
    pub created: String,
    pub scheduled: String,
    pub attempts: String,
}

#[derive(Template)]
#[template(path = "outbox.html")]
struct OutboxPage {
    layout: Layout,
    messages: Vec<MessageRow>,
    total: u64,
    page: usize,
    pages: usize,
    pager_base: String,
}

pub async fn list(
    State(admin): State<Admin>,
    Extension(visit): Extension<Visit>,
    Query(q): Query<PageQuery>,
) -> Response {
    let page = page_number(q.page.as_deref());
    let body = match api_page(&admin, &visit, "/v1/outbox", page, "Outbox").await {
        Ok(b) => b,
        Err(r) => return r,
    };
    let messages = body["messages"]
        .as_array()
        .map(|list| {
            list.iter()
                .map(|m| MessageRow {
                    path: enc(&text_of(m, "queueId")),
                    account: text_of(m, "account"),
                    subject: text_of(m, "subject"),
                    recipients: m["envelope"]["to"]
                        .as_array()
                        .map(|to| {
                            to.iter()
                                .filter_map(Value::as_str)
                                .collect::<Vec<_>>()
                                .join(", ")
                        })
                        .unwrap_or_default(),
                    created: when_iso(m["created"].as_str()),
                    scheduled: when_iso(m["nextAttempt"].as_str()),
                    attempts: format!(
                        "{} of {}",
                        m["attemptsMade"].as_u64().unwrap_or(0),
                        m["attempts"].as_u64().unwrap_or(0)
                    ),
                })
                .collect()
        })
        .unwrap_or_default();
    render(&OutboxPage {
        layout: Layout::new(&visit, "/admin/outbox").with_notice(q.notice.as_deref()),
        messages,
        total: body["total"].as_u64().unwrap_or(0),
        page,
        pages: body["pages"].as_u64().unwrap_or(1) as usize,
        pager_base: "/admin/outbox?".into(),
    })
}

pub async fn cancel(
    State(admin): State<Admin>,
    Extension(visit): Extension<Visit>,
    Path(queue): Path<String>,
) -> Response {
    let answer = admin
        .api
        .call(
            Method::DELETE,
            &format!("/v1/outbox/{}", enc(&queue)),
            None,
            visit.client,
        )
        .await;
    if !answer.is_ok() {
        return error_page(
            answer.status,
            "The message was not cancelled",
            &answer.problem(),
        );
    }
    see_other("/admin/outbox?notice=cancelled")
}
