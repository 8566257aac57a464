//! Accounts: the list (search, state filter, paging), one account's state, folders and recent
//! events with reconnect / sync / delete, and adding an account either through the hosted
//! authentication form (a signed link, as `POST /v1/authentication/form` makes) or with
//! IMAP/SMTP settings and a "test connection" step. Reads and actions go through the API
//! (`/v1/accounts`, `/v1/account`, `/v1/verifyAccount`), so the pages show what API clients
//! see, secrets masked. States on these pages follow the live change stream (`admin.js`).

use askama::Template;
use axum::Json;
use axum::extract::{Extension, Path, Query, State};
use axum::http::{Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Map, Value, json};

use crate::Admin;
use crate::api::enc;
use crate::form::FormData;
use crate::guard::Visit;
use crate::pages::dashboard::event_detail;
use crate::pages::{
    Layout, NoticeQuery, error_page, page_number, render, see_other, text_of, when,
};

const PAGE_SIZE: usize = 20;
const EVENTS_SHOWN: usize = 20;
const STATES: [&str; 9] = [
    "connected",
    "connecting",
    "syncing",
    "init",
    "authenticationError",
    "connectError",
    "disconnected",
    "paused",
    "unset",
];

pub struct AccountRow {
    pub id: String,
    pub path: String,
    pub name: String,
    pub email: String,
    pub state: String,
    pub error: String,
}

#[derive(Template)]
#[template(path = "accounts.html")]
struct ListPage {
    layout: Layout,
    accounts: Vec<AccountRow>,
    total: u64,
    page: usize,
    pages: usize,
    pager_base: String,
    query: String,
    state: String,
    all_states: &'static [&'static str],
}

#[derive(Debug, Deserialize, Default)]
pub struct ListQuery {
    query: Option<String>,
    state: Option<String>,
    page: Option<String>,
    notice: Option<String>,
}

/// The error text of an account's `lastError`.
fn error_text(v: &Value) -> String {
    match v {
        Value::Null => String::new(),
        Value::String(s) => s.clone(),
        Value::Object(o) => o
            .get("response")
            .or_else(|| o.get("message"))
            .or_else(|| o.get("serverResponseCode"))
            .map(|v| v.as_str().map_or_else(|| v.to_string(), str::to_string))
            .unwrap_or_default(),
        other => other.to_string(),
    }
}

pub async fn list(
    State(admin): State<Admin>,
    Extension(visit): Extension<Visit>,
    Query(q): Query<ListQuery>,
) -> Response {
    let page = page_number(q.page.as_deref());
    let query = q.query.unwrap_or_default().trim().to_string();
    let state = q
        .state
        .filter(|s| STATES.contains(&s.as_str()))
        .unwrap_or_default();
    let mut path = format!("/v1/accounts?page={}&pageSize={PAGE_SIZE}", page - 1);
    let mut pager_base = String::from("/admin/accounts?");
    if !query.is_empty() {
        path.push_str(&format!("&query={}", enc(&query)));
        pager_base.push_str(&format!("query={}&", enc(&query)));
    }
    if !state.is_empty() {
        path.push_str(&format!("&state={}", enc(&state)));
        pager_base.push_str(&format!("state={}&", enc(&state)));
    }
    let answer = admin.api.get(&path, visit.client).await;
    if !answer.is_ok() {
        return error_page(
            StatusCode::BAD_GATEWAY,
            "Accounts unavailable",
            &answer.problem(),
        );
    }
    let accounts = answer.body["accounts"]
        .as_array()
        .map(|list| {
            list.iter()
                .map(|a| {
                    let id = text_of(a, "account");
                    AccountRow {
                        path: enc(&id),
                        id,
                        name: text_of(a, "name"),
                        email: text_of(a, "email"),
                        state: text_of(a, "state"),
                        error: error_text(&a["lastError"]),
                    }
                })
                .collect()
        })
        .unwrap_or_default();
    render(&ListPage {
        layout: Layout::new(&visit, "/admin/accounts").with_notice(q.notice.as_deref()),
        accounts,
        total: answer.body["total"].as_u64().unwrap_or(0),
        page,
        pages: answer.body["pages"].as_u64().unwrap_or(1) as usize,
        pager_base,
        query,
        state,
        all_states: &STATES,
    })
}

pub struct FolderRow {
    pub path: String,
    pub special_use: String,
    pub messages: String,
    pub unseen: String,
}

pub struct EventRow {
    pub time: String,
    pub event: String,
    pub detail: String,
}

#[derive(Template)]
#[template(path = "account.html")]
struct DetailPage {
    layout: Layout,
    id: String,
    path: String,
    state: String,
    last_error: Option<String>,
    name: String,
    email: String,
    servers: Vec<(&'static str, String)>,
    folders: Vec<FolderRow>,
    folders_note: Option<String>,
    events: Vec<EventRow>,
}

/// "host:port, TLS, user x" for a connection object; passwords are never part of it.
fn server_text(v: &Value) -> Option<String> {
    let host = v.get("host")?.as_str()?;
    let port = v.get("port").map(|p| p.to_string()).unwrap_or_default();
    let tls = if v.get("secure").and_then(Value::as_bool) == Some(true) {
        "TLS"
    } else {
        "plain or STARTTLS"
    };
    let user = v
        .get("auth")
        .and_then(|a| a.get("user"))
        .and_then(Value::as_str)
        .unwrap_or("—");
    Some(format!("{host}:{port}, {tls}, user {user}"))
}

pub async fn detail(
    State(admin): State<Admin>,
    Extension(visit): Extension<Visit>,
    Path(account): Path<String>,
    Query(q): Query<NoticeQuery>,
) -> Response {
    let path = enc(&account);
    let info = admin
        .api
        .get(&format!("/v1/account/{path}"), visit.client)
        .await;
    if info.status == StatusCode::NOT_FOUND {
        return error_page(
            StatusCode::NOT_FOUND,
            "No such account",
            "There is no account with this id.",
        );
    }
    if !info.is_ok() {
        return error_page(
            StatusCode::BAD_GATEWAY,
            "Account unavailable",
            &info.problem(),
        );
    }
    let a = &info.body;
    let state = text_of(a, "state");
    let with_counts = state == "connected";
    let mut mailboxes = admin
        .api
        .get(
            &format!("/v1/account/{path}/mailboxes?counters={with_counts}"),
            visit.client,
        )
        .await;
    if with_counts && !mailboxes.is_ok() {
        mailboxes = admin
            .api
            .get(&format!("/v1/account/{path}/mailboxes"), visit.client)
            .await;
    }
    let folders: Vec<FolderRow> = mailboxes.body["mailboxes"]
        .as_array()
        .map(|list| {
            list.iter()
                .map(|f| {
                    let messages = f["status"]["messages"]
                        .as_u64()
                        .or_else(|| f["messages"].as_u64());
                    FolderRow {
                        path: text_of(f, "path"),
                        special_use: text_of(f, "specialUse"),
                        messages: messages.map(|n| n.to_string()).unwrap_or_default(),
                        unseen: f["status"]["unseen"]
                            .as_u64()
                            .map(|n| n.to_string())
                            .unwrap_or_default(),
                    }
                })
                .collect()
        })
        .unwrap_or_default();
    let folders_note = if !mailboxes.is_ok() {
        Some(format!(
            "Folders are not available: {}",
            mailboxes.problem()
        ))
    } else if folders.is_empty() {
        Some("No folders are known yet; they are listed once the account has connected.".into())
    } else {
        None
    };
    let events = admin
        .app
        .store
        .recent_events(Some(&account), EVENTS_SHOWN)
        .await
        .unwrap_or_default()
        .into_iter()
        .map(|e| EventRow {
            time: when(Some(e.queued_at)),
            detail: event_detail(&e.payload),
            event: e.event,
        })
        .collect();
    let mut servers = Vec::new();
    if let Some(t) = server_text(&a["imap"]) {
        servers.push(("IMAP", t));
    }
    if let Some(t) = server_text(&a["smtp"]) {
        servers.push(("SMTP", t));
    }
    let last_error = Some(error_text(&a["lastError"])).filter(|e| !e.is_empty());
    render(&DetailPage {
        layout: Layout::new(&visit, "/admin/accounts").with_notice(q.notice.as_deref()),
        id: account,
        path,
        state,
        last_error,
        name: text_of(a, "name"),
        email: text_of(a, "email"),
        servers,
        folders,
        folders_note,
        events,
    })
}

/// Most accounts one `/admin/accounts/states` request reports (a page of the list or fewer).
const STATES_AT_ONCE: usize = 100;

/// `GET /admin/accounts/states?account=a&account=b`: the current state and last error of
/// each named account, as JSON. The pages' script asks once its change stream is open, so a
/// change between rendering and subscribing is not missed (the stream has no replay).
pub async fn states(
    State(admin): State<Admin>,
    Extension(visit): Extension<Visit>,
    uri: axum::http::Uri,
) -> Response {
    let query = FormData::parse(uri.query().unwrap_or_default().as_bytes());
    let mut accounts = Vec::new();
    for id in query.all("account").into_iter().take(STATES_AT_ONCE) {
        let answer = admin
            .api
            .get(&format!("/v1/account/{}", enc(&id)), visit.client)
            .await;
        if answer.is_ok() {
            accounts.push(json!({
                "account": id,
                "state": text_of(&answer.body, "state"),
                "error": error_text(&answer.body["lastError"]),
            }));
        }
    }
    Json(json!({ "accounts": accounts })).into_response()
}

async fn account_action(
    admin: &Admin,
    visit: &Visit,
    account: &str,
    action: &str,
    notice: &str,
) -> Response {
    let path = enc(account);
    let answer = admin
        .api
        .call(
            Method::PUT,
            &format!("/v1/account/{path}/{action}"),
            None,
            visit.client,
        )
        .await;
    if !answer.is_ok() {
        return error_page(answer.status, "The request failed", &answer.problem());
    }
    see_other(&format!("/admin/accounts/{path}?notice={notice}"))
}

pub async fn reconnect(
    State(admin): State<Admin>,
    Extension(visit): Extension<Visit>,
    Path(account): Path<String>,
) -> Response {
    account_action(&admin, &visit, &account, "reconnect", "reconnecting").await
}

pub async fn sync(
    State(admin): State<Admin>,
    Extension(visit): Extension<Visit>,
    Path(account): Path<String>,
) -> Response {
    account_action(&admin, &visit, &account, "sync", "syncing").await
}

pub async fn delete(
    State(admin): State<Admin>,
    Extension(visit): Extension<Visit>,
    Path(account): Path<String>,
) -> Response {
    let answer = admin
        .api
        .call(
            Method::DELETE,
            &format!("/v1/account/{}", enc(&account)),
            None,
            visit.client,
        )
        .await;
    if !answer.is_ok() {
        return error_page(
            answer.status,
            "The account was not deleted",
            &answer.problem(),
        );
    }
    tracing::info!(account = %account, remoteAddress = ?visit.client, "Account deleted from the admin pages");
    see_other("/admin/accounts?notice=account-deleted")
}

/// The add-account form's values (passwords are never put back into a page).
#[derive(Default)]
pub struct AccountValues {
    pub account: String,
    pub name: String,
    pub email: String,
    pub imap_host: String,
    pub imap_port: String,
    pub imap_secure: bool,
    pub imap_user: String,
    pub smtp_host: String,
    pub smtp_port: String,
    pub smtp_secure: bool,
    pub smtp_user: String,
}

impl AccountValues {
    fn from_form(f: &FormData) -> Self {
        let t = |k: &str| f.text(k).unwrap_or_default();
        Self {
            account: t("account"),
            name: t("name"),
            email: t("email"),
            imap_host: t("imap_host"),
            imap_port: t("imap_port"),
            imap_secure: f.checked("imap_secure"),
            imap_user: t("imap_user"),
            smtp_host: t("smtp_host"),
            smtp_port: t("smtp_port"),
            smtp_secure: f.checked("smtp_secure"),
            smtp_user: t("smtp_user"),
        }
    }
}

#[derive(Template)]
#[template(path = "account_new.html")]
struct NewPage {
    layout: Layout,
    values: AccountValues,
}

fn default_values() -> AccountValues {
    AccountValues {
        imap_port: "993".into(),
        imap_secure: true,
        smtp_port: "465".into(),
        smtp_secure: true,
        ..Default::default()
    }
}

pub async fn new_form(Extension(visit): Extension<Visit>) -> Response {
    render(&NewPage {
        layout: Layout::new(&visit, "/admin/accounts"),
        values: default_values(),
    })
}

/// `POST /admin/accounts/new {account?, name?}` (spec §16.6): signs a setup blob
/// `{account, name, n, t}` with the API's link code and sends the browser (302) to the hosted
/// form `/accounts/new?data=…&sig=…[&type=imap]`. Without a `redirectUrl` the form ends on
/// the new account's admin page.
pub async fn hosted_form(
    State(admin): State<Admin>,
    Extension(visit): Extension<Visit>,
    Extension(form): Extension<FormData>,
) -> Response {
    let mut blob = Map::new();
    for key in ["account", "name"] {
        if let Some(v) = form.text(key) {
            blob.insert(key.into(), Value::String(v));
        }
    }
    match emailengine_api::routes::hosted::setup_link(&admin.app, blob, None).await {
        Ok(link) => (StatusCode::FOUND, [(header::LOCATION, link)]).into_response(),
        Err(e) => render(&NewPage {
            layout: Layout::new(&visit, "/admin/accounts")
                .with_error(format!("The setup link was not made. {}", e.message())),
            values: default_values(),
        }),
    }
}

/// A connection object in the API's shape from the form fields with this prefix; `None` when
/// its server is left empty.
fn connection(f: &FormData, prefix: &str) -> Option<Value> {
    let host = f.text(&format!("{prefix}_host"))?;
    let port_text = f.text(&format!("{prefix}_port")).unwrap_or_default();
    let port = port_text
        .parse::<u64>()
        .map_or(Value::String(port_text), Value::from);
    Some(json!({
        "host": host,
        "port": port,
        "secure": f.checked(&format!("{prefix}_secure")),
        "auth": {
            "user": f.text(&format!("{prefix}_user")).unwrap_or_default(),
            "pass": f.raw(&format!("{prefix}_pass")).unwrap_or_default(),
        },
    }))
}

/// `POST /v1/verifyAccount` with the form's settings; answers JSON for the page's script.
pub async fn verify(
    State(admin): State<Admin>,
    Extension(visit): Extension<Visit>,
    Extension(form): Extension<FormData>,
) -> Response {
    let mut body = Map::new();
    for prefix in ["imap", "smtp"] {
        if let Some(c) = connection(&form, prefix) {
            body.insert(prefix.into(), c);
        }
    }
    let answer = admin
        .api
        .call(
            Method::POST,
            "/v1/verifyAccount",
            Some(&Value::Object(body)),
            visit.client,
        )
        .await;
    (answer.status, Json(answer.body)).into_response()
}

pub async fn create(
    State(admin): State<Admin>,
    Extension(visit): Extension<Visit>,
    Extension(form): Extension<FormData>,
) -> Response {
    let mut body = Map::new();
    body.insert(
        "account".into(),
        form.text("account").map_or(Value::Null, Value::String),
    );
    for key in ["name", "email"] {
        if let Some(v) = form.text(key) {
            body.insert(key.into(), Value::String(v));
        }
    }
    for prefix in ["imap", "smtp"] {
        if let Some(c) = connection(&form, prefix) {
            body.insert(prefix.into(), c);
        }
    }
    let answer = admin
        .api
        .call(
            Method::POST,
            "/v1/account",
            Some(&Value::Object(body)),
            visit.client,
        )
        .await;
    if !answer.is_ok() {
        return render(&NewPage {
            layout: Layout::new(&visit, "/admin/accounts")
                .with_error(format!("The account was not added. {}", answer.problem())),
            values: AccountValues::from_form(&form),
        });
    }
    let id = text_of(&answer.body, "account");
    tracing::info!(account = %id, remoteAddress = ?visit.client, "Account added from the admin pages");
    see_other(&format!(
        "/admin/accounts/{}?notice=account-added",
        enc(&id)
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connection_objects() {
        let f = FormData::parse(b"imap_host=mail.example&imap_port=993&imap_secure=1&imap_user=u&imap_pass=p+w&smtp_host=");
        assert_eq!(
            connection(&f, "imap"),
            Some(
                json!({"host": "mail.example", "port": 993, "secure": true, "auth": {"user": "u", "pass": "p w"}})
            )
        );
        assert_eq!(connection(&f, "smtp"), None);
    }

    #[test]
    fn server_text_never_shows_the_password() {
        let v = json!({"host": "h", "port": 993, "secure": true, "auth": {"user": "u", "pass": "******"}});
        assert_eq!(server_text(&v).as_deref(), Some("h:993, TLS, user u"));
    }
}
