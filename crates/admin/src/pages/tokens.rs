//! Access tokens: the list (description, scopes, account, created, last use and address), the
//! "Generate token" form whose result is shown once with a copy button, and delete. Issue and
//! delete are `POST /v1/tokens` and `DELETE /v1/tokens/{id}`, so the UI grants exactly what the
//! API grants (an instance-wide token is always narrowed by permissions).

use askama::Template;
use axum::extract::{Extension, Query, State};
use axum::http::{Method, StatusCode};
use axum::response::Response;
use serde::Deserialize;
use serde_json::{Map, Value, json};

use emailengine_core::permissions::{Action, Group};
use emailengine_core::token::is_hex64;

use crate::Admin;
use crate::api::enc;
use crate::form::FormData;
use crate::guard::Visit;
use crate::pages::{
    Layout, PageQuery, api_page, error_page, page_number, render, see_other, text_of, when_iso,
};

/// Scopes the API issues tokens for, with what they open.
const SCOPES: [(&str, &str); 4] = [
    ("api", "the REST API"),
    ("smtp", "the SMTP submission server"),
    ("imap-proxy", "the IMAP proxy"),
    ("mcp", "the MCP endpoint"),
];
/// Account ids offered as suggestions in the form.
const SUGGESTED_ACCOUNTS: usize = 200;

pub struct TokenRow {
    pub id: String,
    pub short_id: String,
    pub description: String,
    pub scopes: String,
    pub account: String,
    pub created: String,
    pub last_used: String,
    pub last_ip: String,
}

#[derive(Template)]
#[template(path = "tokens.html")]
struct ListPage {
    layout: Layout,
    tokens: Vec<TokenRow>,
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
    let body = match api_page(&admin, &visit, "/v1/tokens", page, "Tokens").await {
        Ok(b) => b,
        Err(r) => return r,
    };
    let tokens = body["tokens"]
        .as_array()
        .map(|list| {
            list.iter()
                .map(|t| {
                    let id = text_of(t, "id");
                    let scopes = t["scopes"]
                        .as_array()
                        .map(|s| {
                            s.iter()
                                .filter_map(Value::as_str)
                                .collect::<Vec<_>>()
                                .join(", ")
                        })
                        .unwrap_or_else(|| "all (legacy token)".into());
                    TokenRow {
                        short_id: id.chars().take(12).collect(),
                        id,
                        description: text_of(t, "description"),
                        scopes,
                        account: text_of(t, "account"),
                        created: when_iso(t["created"].as_str()),
                        last_used: when_iso(t["access"]["time"].as_str()),
                        last_ip: text_of(&t["access"], "ip"),
                    }
                })
                .collect()
        })
        .unwrap_or_default();
    render(&ListPage {
        layout: Layout::new(&visit, "/admin/tokens").with_notice(q.notice.as_deref()),
        tokens,
        total: body["total"].as_u64().unwrap_or(0),
        page,
        pages: body["pages"].as_u64().unwrap_or(1) as usize,
        pager_base: "/admin/tokens?".into(),
    })
}

#[derive(Template)]
#[template(path = "token_new.html")]
struct NewPage {
    layout: Layout,
    /// The new token, on the page that shows it once.
    token: Option<String>,
    description: String,
    account: String,
    account_ids: Vec<String>,
    scopes: Vec<(&'static str, &'static str, bool)>,
    actions: Vec<(&'static str, bool)>,
    groups: Vec<(&'static str, bool)>,
}

#[derive(Debug, Deserialize, Default)]
pub struct NewQuery {
    account: Option<String>,
}

fn grantable_groups() -> impl Iterator<Item = &'static str> {
    Group::ALL
        .into_iter()
        .filter(|g| *g != Group::Admin)
        .map(Group::as_str)
}

async fn form_page(
    admin: &Admin,
    visit: &Visit,
    form: Option<&FormData>,
    account: String,
) -> NewPage {
    let mut account_ids = admin.app.store.account_ids().await.unwrap_or_default();
    account_ids.sort_unstable();
    account_ids.truncate(SUGGESTED_ACCOUNTS);
    let chosen = |name: &str, value: &str, default: bool| {
        form.map_or(default, |f| f.all(name).iter().any(|v| v == value))
    };
    NewPage {
        layout: Layout::new(visit, "/admin/tokens"),
        token: None,
        description: form.and_then(|f| f.text("description")).unwrap_or_default(),
        account,
        account_ids,
        scopes: SCOPES
            .iter()
            .map(|(s, label)| (*s, *label, chosen("scopes", s, *s == "api")))
            .collect(),
        actions: Action::ALL
            .iter()
            .map(|a| (a.as_str(), chosen("actions", a.as_str(), true)))
            .collect(),
        groups: grantable_groups()
            .map(|g| (g, chosen("groups", g, true)))
            .collect(),
    }
}

pub async fn new_form(
    State(admin): State<Admin>,
    Extension(visit): Extension<Visit>,
    Query(q): Query<NewQuery>,
) -> Response {
    let page = form_page(&admin, &visit, None, q.account.unwrap_or_default()).await;
    render(&page)
}

/// The `POST /v1/tokens` body for the form.
pub fn provision_request(form: &FormData) -> Value {
    let mut body = Map::new();
    body.insert(
        "description".into(),
        Value::String(form.text("description").unwrap_or_default()),
    );
    body.insert("scopes".into(), json!(form.all("scopes")));
    if let Some(account) = form.text("account") {
        body.insert("account".into(), Value::String(account));
    }
    body.insert(
        "permissions".into(),
        json!({"actions": form.all("actions"), "groups": form.all("groups")}),
    );
    Value::Object(body)
}

pub async fn create(
    State(admin): State<Admin>,
    Extension(visit): Extension<Visit>,
    Extension(form): Extension<FormData>,
) -> Response {
    let answer = admin
        .api
        .call(
            Method::POST,
            "/v1/tokens",
            Some(&provision_request(&form)),
            visit.client,
        )
        .await;
    let account = form.text("account").unwrap_or_default();
    let mut page = form_page(&admin, &visit, Some(&form), account).await;
    if !answer.is_ok() {
        page.layout = page
            .layout
            .with_error(format!("No token was generated. {}", answer.problem()));
        return render(&page);
    }
    tracing::info!(token = %text_of(&answer.body, "id"), remoteAddress = ?visit.client, "Access token generated from the admin pages");
    page.token = Some(text_of(&answer.body, "token"));
    render(&page)
}

pub async fn delete(
    State(admin): State<Admin>,
    Extension(visit): Extension<Visit>,
    Extension(form): Extension<FormData>,
) -> Response {
    let id = form.text("token").unwrap_or_default();
    if !is_hex64(&id) {
        return error_page(
            StatusCode::BAD_REQUEST,
            "No such token",
            "The token id is not valid.",
        );
    }
    let answer = admin
        .api
        .call(
            Method::DELETE,
            &format!("/v1/tokens/{}", enc(&id)),
            None,
            visit.client,
        )
        .await;
    if !answer.is_ok() {
        return error_page(
            answer.status,
            "The token was not deleted",
            &answer.problem(),
        );
    }
    see_other("/admin/tokens?notice=token-deleted")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_shape() {
        let f = FormData::parse(
            b"csrf=x&description=CI+token&scopes=api&scopes=smtp&account=&actions=read&groups=diagnostics&groups=account",
        );
        assert_eq!(
            provision_request(&f),
            json!({"description": "CI token", "scopes": ["api", "smtp"],
                "permissions": {"actions": ["read"], "groups": ["diagnostics", "account"]}})
        );
        assert_eq!(grantable_groups().count(), 13);
    }
}
