//! OAuth2 applications (`/admin/config/oauth`): the list, a form per provider to register an
//! app, the edit form, and delete. Everything goes through `/v1/oauth2`, so validation and
//! storage are the API's. Secrets (client secret, service key) are write-only: the form says
//! whether one is stored, never shows it, and a blank field on edit keeps the stored one.

use askama::Template;
use axum::extract::{Extension, Path, Query, State};
use axum::http::{Method, StatusCode};
use axum::response::Response;
use serde::Deserialize;
use serde_json::{Map, Value};

use crate::Admin;
use crate::api::enc;
use crate::form::FormData;
use crate::guard::Visit;
use crate::pages::{
    Layout, PageQuery, api_page, error_page, page_number, render, see_other, text_of,
};

const ACTIVE: &str = "/admin/config/oauth";

/// How a field is entered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Input {
    Text,
    Url,
    Number,
    /// Write-only: never filled in from the stored app.
    Secret,
    /// Write-only, several lines (a service key).
    SecretBlock,
    Check,
    Choice(&'static [&'static str]),
}

/// One field of the app form: its API name, label and input.
pub struct Field {
    pub name: &'static str,
    pub label: &'static str,
    pub input: Input,
}

const fn field(name: &'static str, label: &'static str, input: Input) -> Field {
    Field { name, label, input }
}

const CLOUDS: &[&str] = &["global", "gcc-high", "dod", "china"];

/// The providers the form offers: API name, label, and the fields besides the common ones.
const PROVIDERS: &[(&str, &str, &[Field])] = &[
    (
        "gmail",
        "Gmail",
        &[
            field("clientId", "Client ID", Input::Text),
            field("clientSecret", "Client secret", Input::Secret),
            field("redirectUrl", "Redirect URL", Input::Url),
            field("googleProjectId", "Google Cloud project ID", Input::Text),
            field("pubSubApp", "Pub/Sub app ID", Input::Text),
            field(
                "googleWorkspaceAccounts",
                "Only Google Workspace accounts",
                Input::Check,
            ),
        ],
    ),
    (
        "gmailService",
        "Gmail service account",
        &[
            field("serviceClient", "Service client ID", Input::Text),
            field("serviceClientEmail", "Service account email", Input::Text),
            field("serviceKey", "Private key (PEM)", Input::SecretBlock),
            field("googleProjectId", "Google Cloud project ID", Input::Text),
        ],
    ),
    (
        "outlook",
        "Outlook / Microsoft 365",
        &[
            field("clientId", "Application (client) ID", Input::Text),
            field("clientSecret", "Client secret", Input::Secret),
            field("redirectUrl", "Redirect URL", Input::Url),
            field(
                "authority",
                "Authority (common, organizations, consumers or a tenant ID)",
                Input::Text,
            ),
            field("cloud", "Cloud", Input::Choice(CLOUDS)),
        ],
    ),
    (
        "outlookService",
        "Outlook service (client credentials)",
        &[
            field("clientId", "Application (client) ID", Input::Text),
            field("clientSecret", "Client secret", Input::Secret),
            field("authority", "Tenant ID", Input::Text),
            field("cloud", "Cloud", Input::Choice(CLOUDS)),
        ],
    ),
    (
        "mailRu",
        "Mail.ru",
        &[
            field("clientId", "Client ID", Input::Text),
            field("clientSecret", "Client secret", Input::Secret),
            field("redirectUrl", "Redirect URL", Input::Url),
        ],
    ),
    (
        "oauth2",
        "Other OAuth2 server",
        &[
            field("clientId", "Client ID", Input::Text),
            field("clientSecret", "Client secret", Input::Secret),
            field("redirectUrl", "Redirect URL", Input::Url),
            field("issuer", "Issuer (OpenID discovery)", Input::Url),
            field("authorizeUrl", "Authorization URL", Input::Url),
            field("tokenUrl", "Token URL", Input::Url),
            field("scopes", "Scopes (space separated)", Input::Text),
            field("imapHost", "IMAP server", Input::Text),
            field("imapPort", "IMAP port", Input::Number),
            field("imapSecure", "IMAP uses TLS from the start", Input::Check),
            field("smtpHost", "SMTP server", Input::Text),
            field("smtpPort", "SMTP port", Input::Number),
            field("smtpSecure", "SMTP uses TLS from the start", Input::Check),
        ],
    ),
];

/// Fields every provider has.
const COMMON: &[Field] = &[
    field("name", "Name", Input::Text),
    field("description", "Description", Input::Text),
    field("extraScopes", "Extra scopes (space separated)", Input::Text),
];

fn provider(name: &str) -> Option<&'static (&'static str, &'static str, &'static [Field])> {
    PROVIDERS.iter().find(|(n, _, _)| *n == name)
}

/// One field as the template shows it.
pub struct FieldView {
    pub name: &'static str,
    pub label: &'static str,
    pub input: Input,
    /// The stored value (never for secrets).
    pub value: String,
    pub checked: bool,
    /// For secrets: whether one is stored.
    pub stored: bool,
    pub choices: &'static [&'static str],
}

impl FieldView {
    pub fn is_secret(&self) -> bool {
        matches!(self.input, Input::Secret | Input::SecretBlock)
    }
    pub fn kind(&self) -> &'static str {
        match self.input {
            Input::Url => "url",
            Input::Number => "number",
            Input::Secret => "password",
            Input::Check => "checkbox",
            Input::SecretBlock => "textarea",
            Input::Choice(_) => "select",
            Input::Text => "text",
        }
    }
}

/// The form's fields, filled from an app (the API's view, secrets masked) or a submitted form.
fn field_views(
    fields: &[&'static Field],
    app: &Value,
    submitted: Option<&FormData>,
) -> Vec<FieldView> {
    fields
        .iter()
        .map(|f| {
            let stored = app.get(f.name).is_some_and(|v| !v.is_null());
            let value = match (f.input, submitted) {
                (Input::Secret | Input::SecretBlock, _) => String::new(),
                (_, Some(form)) => form.text(f.name).unwrap_or_default(),
                _ => match app.get(f.name) {
                    Some(Value::Array(items)) => items
                        .iter()
                        .filter_map(Value::as_str)
                        .collect::<Vec<_>>()
                        .join(" "),
                    _ => text_of(app, f.name),
                },
            };
            let checked = match submitted {
                Some(form) => form.checked(f.name),
                None => app.get(f.name) == Some(&Value::Bool(true)),
            };
            FieldView {
                name: f.name,
                label: f.label,
                input: f.input,
                value,
                checked,
                stored,
                choices: match f.input {
                    Input::Choice(c) => c,
                    _ => &[],
                },
            }
        })
        .collect()
}

fn all_fields(own: &'static [Field]) -> Vec<&'static Field> {
    COMMON.iter().chain(own.iter()).collect()
}

/// The API body for the submitted form. Empty secrets are left out (the stored one stays);
/// on edit an empty text field is sent empty, which clears it.
fn app_request(form: &FormData, own: &'static [Field], creating: bool) -> Value {
    let mut body = Map::new();
    for f in all_fields(own) {
        let value = match f.input {
            Input::Check => Some(Value::Bool(form.checked(f.name))),
            Input::Secret | Input::SecretBlock => form
                .raw(f.name)
                .filter(|v| !v.trim().is_empty())
                .map(|v| Value::String(v.to_string())),
            Input::Number => form
                .text(f.name)
                .map(|v| v.parse::<u64>().map_or(Value::String(v), Value::from)),
            _ => match form.text(f.name) {
                Some(v) => Some(Value::String(v)),
                None if creating => None,
                None => Some(Value::String(String::new())),
            },
        };
        if let Some(v) = value {
            body.insert(f.name.into(), v);
        }
    }
    body.insert("enabled".into(), Value::Bool(form.checked("enabled")));
    Value::Object(body)
}

pub struct AppRow {
    pub id: String,
    pub path: String,
    pub name: String,
    pub provider: String,
    pub enabled: bool,
    pub error: String,
}

#[derive(Template)]
#[template(path = "oauth_apps.html")]
struct ListPage {
    layout: Layout,
    apps: Vec<AppRow>,
    total: u64,
    page: usize,
    pages: usize,
    pager_base: String,
    providers: Vec<(&'static str, &'static str)>,
}

pub async fn list(
    State(admin): State<Admin>,
    Extension(visit): Extension<Visit>,
    Query(q): Query<PageQuery>,
) -> Response {
    let page = page_number(q.page.as_deref());
    let body = match api_page(&admin, &visit, "/v1/oauth2", page, "OAuth2 applications").await {
        Ok(b) => b,
        Err(r) => return r,
    };
    let apps = body["apps"]
        .as_array()
        .map(|list| {
            list.iter()
                .map(|a| {
                    let id = text_of(a, "id");
                    let kind = text_of(a, "provider");
                    AppRow {
                        path: enc(&id),
                        id,
                        name: text_of(a, "name"),
                        provider: provider(&kind).map_or(kind, |(_, label, _)| label.to_string()),
                        enabled: a["enabled"] == Value::Bool(true),
                        error: text_of(&a["lastError"], "response"),
                    }
                })
                .collect()
        })
        .unwrap_or_default();
    render(&ListPage {
        layout: Layout::new(&visit, ACTIVE).with_notice(q.notice.as_deref()),
        apps,
        total: body["total"].as_u64().unwrap_or(0),
        page,
        pages: body["pages"].as_u64().unwrap_or(1).max(1) as usize,
        pager_base: format!("{ACTIVE}?"),
        providers: PROVIDERS.iter().map(|(n, l, _)| (*n, *l)).collect(),
    })
}

#[derive(Template)]
#[template(path = "oauth_app.html")]
struct FormPage {
    layout: Layout,
    /// `None` while creating.
    id: Option<String>,
    provider: &'static str,
    provider_label: &'static str,
    enabled: bool,
    fields: Vec<FieldView>,
    accounts: Option<u64>,
}

#[derive(Debug, Deserialize, Default)]
pub struct NewQuery {
    provider: Option<String>,
}

fn unknown_provider() -> Response {
    error_page(
        StatusCode::NOT_FOUND,
        "Unknown provider",
        "Pick a provider from the OAuth2 applications page.",
    )
}

pub async fn new_form(Extension(visit): Extension<Visit>, Query(q): Query<NewQuery>) -> Response {
    let Some((name, label, own)) = q.provider.as_deref().and_then(provider) else {
        return unknown_provider();
    };
    render(&FormPage {
        layout: Layout::new(&visit, ACTIVE),
        id: None,
        provider: name,
        provider_label: label,
        enabled: true,
        fields: field_views(&all_fields(own), &Value::Null, None),
        accounts: None,
    })
}

pub async fn create(
    State(admin): State<Admin>,
    Extension(visit): Extension<Visit>,
    Extension(form): Extension<FormData>,
) -> Response {
    let Some((name, label, own)) = form.text("provider").as_deref().and_then(provider) else {
        return unknown_provider();
    };
    let mut body = app_request(&form, own, true);
    if let Value::Object(map) = &mut body {
        map.insert("provider".into(), Value::from(*name));
    }
    let answer = admin
        .api
        .call(Method::POST, "/v1/oauth2", Some(&body), visit.client)
        .await;
    if !answer.is_ok() {
        return render(&FormPage {
            layout: Layout::new(&visit, ACTIVE).with_error(format!(
                "The application was not saved. {}",
                answer.problem()
            )),
            id: None,
            provider: name,
            provider_label: label,
            enabled: form.checked("enabled"),
            fields: field_views(&all_fields(own), &Value::Null, Some(&form)),
            accounts: None,
        });
    }
    let id = text_of(&answer.body, "id");
    tracing::info!(app = %id, remoteAddress = ?visit.client, "OAuth2 application added from the admin pages");
    see_other(&format!("{ACTIVE}?notice=app-saved"))
}

/// The stored app as the API shows it, and its provider's form.
async fn stored_app(
    admin: &Admin,
    visit: &Visit,
    id: &str,
) -> Result<
    (
        Value,
        &'static (&'static str, &'static str, &'static [Field]),
    ),
    Response,
> {
    let answer = admin
        .api
        .get(&format!("/v1/oauth2/{}", enc(id)), visit.client)
        .await;
    if answer.status == StatusCode::NOT_FOUND {
        return Err(error_page(
            StatusCode::NOT_FOUND,
            "No such application",
            "There is no OAuth2 application with this id.",
        ));
    }
    if !answer.is_ok() {
        return Err(error_page(
            StatusCode::BAD_GATEWAY,
            "Application unavailable",
            &answer.problem(),
        ));
    }
    let kind = text_of(&answer.body, "provider");
    let Some(p) = provider(&kind) else {
        return Err(unknown_provider());
    };
    Ok((answer.body, p))
}

pub async fn edit_form(
    State(admin): State<Admin>,
    Extension(visit): Extension<Visit>,
    Path(id): Path<String>,
) -> Response {
    let (app, (name, label, own)) = match stored_app(&admin, &visit, &id).await {
        Ok(found) => found,
        Err(page) => return page,
    };
    render(&FormPage {
        layout: Layout::new(&visit, ACTIVE),
        id: Some(id),
        provider: name,
        provider_label: label,
        enabled: app["enabled"] == Value::Bool(true),
        fields: field_views(&all_fields(own), &app, None),
        accounts: app["accounts"].as_u64(),
    })
}

pub async fn update(
    State(admin): State<Admin>,
    Extension(visit): Extension<Visit>,
    Extension(form): Extension<FormData>,
) -> Response {
    let id = form.text("app").unwrap_or_default();
    let (app, (name, label, own)) = match stored_app(&admin, &visit, &id).await {
        Ok(found) => found,
        Err(page) => return page,
    };
    let answer = admin
        .api
        .call(
            Method::PUT,
            &format!("/v1/oauth2/{}", enc(&id)),
            Some(&app_request(&form, own, false)),
            visit.client,
        )
        .await;
    if !answer.is_ok() {
        return render(&FormPage {
            layout: Layout::new(&visit, ACTIVE).with_error(format!(
                "The application was not saved. {}",
                answer.problem()
            )),
            id: Some(id),
            provider: name,
            provider_label: label,
            enabled: form.checked("enabled"),
            fields: field_views(&all_fields(own), &app, Some(&form)),
            accounts: app["accounts"].as_u64(),
        });
    }
    tracing::info!(app = %id, remoteAddress = ?visit.client, "OAuth2 application updated from the admin pages");
    see_other(&format!("{ACTIVE}?notice=app-saved"))
}

pub async fn delete(
    State(admin): State<Admin>,
    Extension(visit): Extension<Visit>,
    Extension(form): Extension<FormData>,
) -> Response {
    let id = form.text("app").unwrap_or_default();
    let answer = admin
        .api
        .call(
            Method::DELETE,
            &format!("/v1/oauth2/{}", enc(&id)),
            None,
            visit.client,
        )
        .await;
    if !answer.is_ok() {
        return error_page(
            answer.status,
            "The application was not deleted",
            &answer.problem(),
        );
    }
    tracing::info!(app = %id, remoteAddress = ?visit.client, "OAuth2 application deleted from the admin pages");
    see_other(&format!("{ACTIVE}?notice=app-deleted"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn own(name: &str) -> &'static [Field] {
        provider(name).unwrap().2
    }

    #[test]
    fn create_body_leaves_out_blank_fields() {
        let form = FormData::parse(
            b"provider=gmail&name=Mail&description=&clientId=cid&clientSecret=s3cret&redirectUrl=https%3A%2F%2Fee.example%2Foauth&enabled=1&extraScopes=",
        );
        assert_eq!(
            app_request(&form, own("gmail"), true),
            json!({"name": "Mail", "clientId": "cid", "clientSecret": "s3cret",
                "redirectUrl": "https://ee.example/oauth", "googleWorkspaceAccounts": false,
                "enabled": true})
        );
    }

    #[test]
    fn edit_body_keeps_a_blank_secret_and_clears_blank_text() {
        let form = FormData::parse(b"app=x&name=Mail&clientId=cid&clientSecret=&redirectUrl=https%3A%2F%2Fee.example%2Foauth");
        let body = app_request(&form, own("mailRu"), false);
        assert_eq!(
            body,
            json!({"name": "Mail", "description": "", "extraScopes": "", "clientId": "cid",
                "redirectUrl": "https://ee.example/oauth", "enabled": false})
        );
        assert!(body.get("clientSecret").is_none());
    }

    #[test]
    fn ports_are_numbers() {
        let form = FormData::parse(b"imapPort=993&smtpPort=x");
        let body = app_request(&form, own("oauth2"), true);
        assert_eq!(body["imapPort"], json!(993));
        assert_eq!(body["smtpPort"], json!("x"));
    }

    #[test]
    fn secrets_are_never_filled_in() {
        let app = json!({"clientId": "cid", "clientSecret": "******", "extraScopes": ["a", "b"]});
        let views = field_views(&all_fields(own("gmail")), &app, None);
        let secret = views.iter().find(|f| f.name == "clientSecret").unwrap();
        assert_eq!((secret.value.as_str(), secret.stored), ("", true));
        let scopes = views.iter().find(|f| f.name == "extraScopes").unwrap();
        assert_eq!(scopes.value, "a b");
        let id = views.iter().find(|f| f.name == "clientId").unwrap();
        assert_eq!(id.value, "cid");
    }
}
