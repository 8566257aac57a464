//! Hosted authentication (spec §16): `POST /v1/authentication/form` signs a setup link; the
//! public pages behind it let the end user pick an OAuth2 app (consent at the provider, back
//! at `/oauth`) or enter IMAP/SMTP settings; the account is created and the browser sent to
//! the caller's `redirectUrl` with `account` and `state`. Links are HMAC-signed with the
//! `serviceSecret` setting, expire after a day and work once; a bad link creates nothing.
//! Pages are self-contained HTML (no outside assets), native forms with labels.

mod imap;

use std::collections::HashMap;

use axum::Json;
use axum::Router;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use serde_json::{Map, Value, json};

use emailengine_core::account::{self, AccountInput};
use emailengine_core::signed;
use emailengine_core::units::{iso_time, parse_iso_time};
use emailengine_oauth::app::storage::decode_data;
use emailengine_oauth::app::{OAuthApp, Provider};
use emailengine_oauth::provider::{AuthorizeRequest, authorize_url};

use crate::error::{ApiError, ApiResult};
use crate::extract::JsonObject;
use crate::routes::accounts::register;
use crate::state::AppState;

/// A setup link lives a day, less a minute of slack for clocks.
const LINK_TTL_MS: i64 = 86_400_000 - 60_000;
const DRAFT_TTL_SECS: u64 = 86_400;
const EXPIRED: &str = "Invalid or expired account setup URL";

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/accounts/new", get(new_get).post(new_post))
        .route("/accounts/new/imap", post(imap::discover))
        .route("/accounts/new/imap/test", post(imap::test))
        .route("/accounts/new/imap/server", post(imap::create))
        .route("/oauth", get(oauth_callback))
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

fn nonce() -> String {
    use base64::Engine as _;
    let mut b = [0u8; 16];
    rand::fill(&mut b);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b)
}

fn nonce_is_valid(n: &str) -> bool {
    let body = n.trim_end_matches('=');
    (21..=22).contains(&body.len())
        && n.len() - body.len() <= 2
        && body
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_-+/".contains(&b))
}

/// The secret that signs setup links; minted (16 random bytes, hex) on first use.
async fn link_secret(state: &AppState) -> ApiResult<Vec<u8>> {
    let read = || async {
        state
            .settings
            .get_one("serviceSecret")
            .await
            .map(|v| v.and_then(|v| v.as_str().map(|s| s.as_bytes().to_vec())))
    };
    if let Some(secret) = read().await?.filter(|s| !s.is_empty()) {
        return Ok(secret);
    }
    let mut b = [0u8; 16];
    rand::fill(&mut b);
    state
        .settings
        .set_if_missing("serviceSecret", &Value::from(hex::encode(b)))
        .await?;
    read()
        .await?
        .ok_or_else(|| ApiError::internal("Service secret not set"))
}

async fn service_url(state: &AppState) -> ApiResult<Option<String>> {
    Ok(state
        .settings
        .get_one("serviceUrl")
        .await?
        .and_then(|v| v.as_str().map(|s| s.trim_end_matches('/').to_string()))
        .filter(|s| !s.is_empty()))
}

fn is_falsy(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::Bool(b) => !b,
        Value::String(s) => s.is_empty(),
        Value::Array(a) => a.is_empty(),
        Value::Number(n) => n.as_f64() == Some(0.0),
        Value::Object(_) => false,
    }
}

/// Generate a hosted authentication link
///
/// Answers `{url}`: a page of this server (under the `serviceUrl` setting) where the end user
/// adds an account, then is sent to `redirectUrl` with `account` and `state`.
#[utoipa::path(post, path = "/v1/authentication/form", tag = "Account",
    request_body(content = Object, description = "`account`, `name`, `email`, `expectedEmail`, `delegated`, `syncFrom`, `notifyFrom`, `subconnections`, `path`, `redirectUrl` (required), `type`"),
    responses((status = 200, description = "`{url}`", body = Object), (status = 400, description = "Invalid input"),
        (status = 500, description = "The `serviceUrl` setting is not set (`MissingServiceURLSetup`)")),
    extensions(("x-ee-group" = json!("admin")), ("x-ee-action" = json!("write"))),
    security(("bearerAuth" = [])))]
pub async fn form(
    State(state): State<AppState>,
    JsonObject(body): JsonObject,
) -> ApiResult<Json<Value>> {
    const KEYS: &[&str] = &[
        "account",
        "name",
        "email",
        "expectedEmail",
        "delegated",
        "syncFrom",
        "notifyFrom",
        "subconnections",
        "path",
        "redirectUrl",
        "type",
    ];
    let mut errors = Vec::new();
    for key in body.keys().filter(|k| !KEYS.contains(&k.as_str())) {
        errors.push(emailengine_core::validation::FieldError::about(
            key,
            "is not allowed",
        ));
    }
    let text = |k: &str, max: usize, errors: &mut Vec<_>| match body.get(k) {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) if s.chars().count() <= max => Some(s.clone()),
        Some(_) => {
            errors.push(emailengine_core::validation::FieldError::about(
                k,
                &format!("must be a string of at most {max} characters"),
            ));
            None
        }
    };
    let redirect = text("redirectUrl", 2048, &mut errors);
    match &redirect {
        Some(r) if emailengine_core::settings::is_http_url(r) => {}
        Some(_) => errors.push(emailengine_core::validation::FieldError::about(
            "redirectUrl",
            "must be a valid uri with a scheme matching the http|https pattern",
        )),
        None => errors.push(emailengine_core::validation::FieldError::about(
            "redirectUrl",
            "is required",
        )),
    }
    let mut blob = Map::new();
    for key in ["account", "name", "email", "expectedEmail"] {
        if let Some(v) = text(key, 256, &mut errors) {
            blob.insert(key.into(), Value::String(v));
        }
    }
    for key in ["syncFrom", "notifyFrom"] {
        if let Some(v) = text(key, 64, &mut errors) {
            match parse_iso_time(&v).and_then(iso_time) {
                Some(t) => {
                    blob.insert(key.into(), Value::String(t));
                }
                None => errors.push(emailengine_core::validation::FieldError::about(
                    key,
                    "must be in ISO 8601 date format",
                )),
            }
        }
    }
    for key in ["subconnections", "path"] {
        match body.get(key) {
            None | Some(Value::Null) => {}
            Some(Value::Array(items)) if items.iter().all(Value::is_string) => {
                let wildcard = key == "path" && items.iter().any(|i| i == "*");
                if !wildcard {
                    blob.insert(key.into(), Value::Array(items.clone()));
                }
            }
            Some(_) => errors.push(emailengine_core::validation::FieldError::about(
                key,
                "must be an array of strings",
            )),
        }
    }
    match body.get("delegated") {
        None | Some(Value::Null) | Some(Value::Bool(_)) => {}
        Some(_) => errors.push(emailengine_core::validation::FieldError::about(
            "delegated",
            "must be a boolean",
        )),
    }
    let kind = text("type", 256, &mut errors);
    if !errors.is_empty() {
        return Err(ApiError::invalid_input(errors));
    }
    let Some(base) = service_url(&state).await? else {
        return Err(ApiError::internal("An internal server error occurred")
            .with("code", "MissingServiceURLSetup"));
    };
    blob.insert("redirectUrl".into(), Value::from(redirect));
    if let Some(d) = body.get("delegated") {
        blob.insert("delegated".into(), d.clone());
    }
    let link = setup_link(&state, blob, kind).await?;
    Ok(Json(json!({"url": format!("{base}{link}")})))
}

/// Signs a setup blob (adding its nonce `n` and time `t`) into the server-relative link
/// `/accounts/new?data=…&sig=…[&type=…]`. `kind` preselects IMAP or an OAuth2 app; without
/// one, IMAP is chosen when no app is offered. Shared by the API and the admin pages.
pub async fn setup_link(
    state: &AppState,
    mut blob: Map<String, Value>,
    kind: Option<String>,
) -> ApiResult<String> {
    blob.insert("n".into(), Value::from(nonce()));
    blob.insert("t".into(), Value::from(now_ms()));
    blob.retain(|_, v| !is_falsy(v));
    let apps = listed_apps(state).await?;
    let kind = match kind {
        Some(k) if k == "imap" => Some(k),
        Some(k) if apps.iter().any(|a| a.id.as_deref() == Some(k.as_str())) => Some(k),
        _ if apps.is_empty() => Some("imap".to_string()),
        _ => None,
    };
    let signed = signed::sign(&link_secret(state).await?, &Value::Object(blob));
    let mut link = format!("/accounts/new?{}", signed.query());
    if let Some(k) = kind {
        link.push_str("&type=");
        link.push_str(&url::form_urlencoded::byte_serialize(k.as_bytes()).collect::<String>());
    }
    Ok(link)
}

/// Enabled three-legged apps, the choices of the hosted form.
async fn listed_apps(state: &AppState) -> ApiResult<Vec<OAuthApp>> {
    let mut apps = Vec::new();
    for id in state.store.app_ids().await? {
        if let Some((data, _)) = state.store.app(&id).await?
            && let Ok(app) = decode_data(&data, state.cipher.as_deref())
            && app.enabled == Some(true)
            && !app.provider.is_service()
        {
            apps.push(app);
        }
    }
    apps.sort_by(|a, b| a.id.cmp(&b.id));
    Ok(apps)
}

fn esc(s: &str) -> String {
    html_escape::encode_double_quoted_attribute(s).to_string()
}

/// A complete page: inline styles only, nothing fetched from elsewhere.
fn page(status: StatusCode, title: &str, body: &str) -> Response {
    let html = format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>{}</title><style>\
         body{{font-family:system-ui,sans-serif;max-width:34rem;margin:3rem auto;padding:0 1rem;color:#1b1b1b}}\
         label{{display:block;margin:.8rem 0 .2rem;font-weight:600}}\
         input,select{{width:100%;padding:.45rem;box-sizing:border-box;font:inherit}}\
         input[type=checkbox]{{width:auto}}\
         button{{display:block;width:100%;margin:.6rem 0;padding:.7rem;font:inherit;cursor:pointer}}\
         button:focus,input:focus,select:focus,a:focus{{outline:3px solid #1a5fb4;outline-offset:2px}}\
         fieldset{{margin:1rem 0;border:1px solid #bbb}}.error{{color:#a51d2d}}\
         </style></head><body><main>{body}</main></body></html>",
        esc(title)
    );
    // The server form carries the typed password back; no copy of a page stays in caches.
    (
        status,
        [(axum::http::header::CACHE_CONTROL, "no-store")],
        Html(html),
    )
        .into_response()
}

fn error_page(status: StatusCode, message: &str) -> Response {
    page(
        status,
        "Account setup failed",
        &format!(
            "<h1>Account setup failed</h1><p class=\"error\" role=\"alert\">{}</p>",
            esc(message)
        ),
    )
}

fn internal(e: impl std::fmt::Display) -> Response {
    tracing::error!(err = %e, "Hosted authentication failed");
    error_page(
        StatusCode::INTERNAL_SERVER_ERROR,
        "Temporary error, please try again",
    )
}

/// A verified setup link.
struct Link {
    data: String,
    sig: String,
    blob: Map<String, Value>,
}

impl Link {
    fn text(&self, key: &str) -> Option<String> {
        self.blob
            .get(key)
            .and_then(Value::as_str)
            .map(str::to_string)
    }
    fn nonce(&self) -> Option<String> {
        self.text("n")
    }
}

/// Why a setup link was refused: shown as a page on the hosted pages, as EmailEngine's JSON
/// error on the connection-test route.
struct Refusal {
    status: StatusCode,
    message: &'static str,
}

impl Refusal {
    const fn new(status: StatusCode, message: &'static str) -> Self {
        Self { status, message }
    }

    fn internal(e: impl std::fmt::Display) -> Self {
        tracing::error!(err = %e, "Hosted authentication failed");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "Temporary error, please try again",
        )
    }

    fn page(&self) -> Response {
        error_page(self.status, self.message)
    }

    fn json(&self) -> Response {
        ApiError::new(self.status, self.message).into_response()
    }
}

/// Checks a link's signature (constant time), age and single use.
async fn check_link(state: &AppState, params: &HashMap<String, String>) -> Result<Link, Refusal> {
    let (Some(data), Some(sig)) = (params.get("data"), params.get("sig")) else {
        return Err(Refusal::new(
            StatusCode::BAD_REQUEST,
            "Invalid request. Check your input and try again.",
        ));
    };
    let secret = link_secret(state)
        .await
        .map_err(|e| Refusal::internal(e.message()))?;
    let blob = match signed::verify(&secret, data, sig) {
        Ok(Value::Object(blob)) => blob,
        _ => {
            return Err(Refusal::new(
                StatusCode::FORBIDDEN,
                "Signature validation failed",
            ));
        }
    };
    let link = Link {
        data: data.clone(),
        sig: sig.clone(),
        blob,
    };
    let t = link.blob.get("t").and_then(Value::as_i64);
    let (Some(n), Some(t)) = (link.nonce(), t) else {
        return Err(Refusal::new(StatusCode::FORBIDDEN, EXPIRED));
    };
    if t < now_ms() - LINK_TTL_MS {
        return Err(Refusal::new(StatusCode::FORBIDDEN, EXPIRED));
    }
    match state.store.transient(&format!("account:form:{n}")).await {
        Ok(None) => Ok(link),
        Ok(Some(_)) => Err(Refusal::new(StatusCode::FORBIDDEN, EXPIRED)),
        Err(e) => Err(Refusal::internal(e)),
    }
}

async fn open_link(state: &AppState, params: &HashMap<String, String>) -> Result<Link, Response> {
    check_link(state, params).await.map_err(|r| r.page())
}

fn hidden(link: &Link) -> String {
    format!(
        "<input type=\"hidden\" name=\"data\" value=\"{}\"><input type=\"hidden\" name=\"sig\" value=\"{}\">",
        esc(&link.data),
        esc(&link.sig)
    )
}

fn form_fields(body: &[u8]) -> HashMap<String, String> {
    url::form_urlencoded::parse(body).into_owned().collect()
}

async fn new_get(
    State(state): State<AppState>,
    Query(params): Query<HashMap<String, String>>,
) -> Response {
    let link = match open_link(&state, &params).await {
        Ok(l) => l,
        Err(r) => return r,
    };
    if let Some(kind) = params.get("type") {
        return choose(&state, link, kind).await;
    }
    let apps = match listed_apps(&state).await {
        Ok(a) => a,
        Err(e) => return internal(e.message()),
    };
    let mut buttons = String::new();
    for app in &apps {
        let label = app
            .title
            .clone()
            .or_else(|| app.name.clone())
            .unwrap_or_else(|| app.provider.as_str().to_string());
        buttons.push_str(&format!(
            "<button type=\"submit\" name=\"type\" value=\"{}\">Sign in with {}</button>",
            esc(app.id.as_deref().unwrap_or_default()),
            esc(&label)
        ));
    }
    buttons.push_str(
        "<button type=\"submit\" name=\"type\" value=\"imap\">Other: IMAP and SMTP settings</button>",
    );
    page(
        StatusCode::OK,
        "Add an email account",
        &format!(
            "<h1>Add an email account</h1><p>Choose how to connect your mailbox.</p>\
             <form method=\"post\" action=\"/accounts/new\">{}{buttons}</form>",
            hidden(&link)
        ),
    )
}

async fn new_post(State(state): State<AppState>, body: axum::body::Bytes) -> Response {
    let params = form_fields(&body);
    let link = match open_link(&state, &params).await {
        Ok(l) => l,
        Err(r) => return r,
    };
    let kind = params.get("type").cloned().unwrap_or_else(|| "imap".into());
    choose(&state, link, &kind).await
}

/// The chosen method: an enabled app's consent page, or the IMAP/SMTP form.
async fn choose(state: &AppState, link: Link, kind: &str) -> Response {
    if kind != "imap" {
        let app = match listed_apps(state).await {
            Ok(apps) => apps.into_iter().find(|a| a.id.as_deref() == Some(kind)),
            Err(e) => return internal(e.message()),
        };
        if let Some(app) = app {
            return start_oauth(state, &link, &app).await;
        }
    }
    imap::credentials_form(&link, None)
}

async fn start_oauth(state: &AppState, link: &Link, app: &OAuthApp) -> Response {
    let Some(n) = link.nonce().filter(|n| nonce_is_valid(n)) else {
        return error_page(
            StatusCode::BAD_REQUEST,
            "Invalid request. Check your input and try again.",
        );
    };
    let mut draft = Map::new();
    for key in ["account", "name", "email", "syncFrom", "path"] {
        if let Some(v) = link.blob.get(key) {
            draft.insert(key.into(), v.clone());
        }
    }
    draft.insert(
        "notifyFrom".into(),
        link.blob
            .get("notifyFrom")
            .cloned()
            .unwrap_or_else(|| Value::from(iso_time(now_ms()))),
    );
    draft.insert("oauth2".into(), json!({"provider": app.id}));
    draft.insert(
        "_meta".into(),
        json!({"redirectUrl": link.blob.get("redirectUrl"), "expectedEmail": link.blob.get("expectedEmail"),
            "n": n, "t": link.blob.get("t")}),
    );
    if link.blob.get("delegated") == Some(&Value::Bool(true)) {
        draft.insert("delegated".into(), Value::Bool(true));
    } else {
        draft.insert("copy".into(), Value::Bool(false));
    }
    let key = format!("account:add:{n}");
    if let Err(e) = state
        .store
        .put_transient(
            &key,
            &Value::Object(draft).to_string(),
            DRAFT_TTL_SECS,
            false,
        )
        .await
    {
        return internal(e);
    }
    let endpoints = match state.oauth.endpoints(app).await {
        Ok(e) => e,
        Err(e) => return internal(e),
    };
    match authorize_url(
        app,
        &endpoints,
        &AuthorizeRequest {
            state: key,
            login_hint: link.text("email"),
            prompt: None,
        },
    ) {
        Ok(url) => Redirect::to(&url).into_response(),
        Err(e) => error_page(StatusCode::BAD_REQUEST, &e.to_string()),
    }
}

/// `POST /v1/account` with `oauth2.authorize: true` (spec §15.1): the body is kept as a draft
/// (its `oauth2.redirectUrl` as `_meta.redirectUrl`) and the answer is the provider's consent
/// URL; `/oauth` creates the account from the draft.
pub async fn authorize_account(
    state: &AppState,
    mut body: Map<String, Value>,
) -> ApiResult<String> {
    let mut redirect_url = None;
    if let Some(Value::Object(o)) = body.get_mut("oauth2") {
        o.remove("authorize");
        redirect_url = o.remove("redirectUrl");
    }
    if let Some(r) = &redirect_url
        && !r
            .as_str()
            .is_some_and(emailengine_core::settings::is_http_url)
    {
        return Err(ApiError::field(
            "oauth2.redirectUrl",
            "must be a valid uri with a scheme matching the http|https pattern",
        ));
    }
    // Checked as a complete account would be, the user still to come from the provider.
    let mut probe = body.clone();
    if let Some(Value::Object(o)) = probe.get_mut("oauth2") {
        o.insert("auth".into(), json!({"user": "user@example.com"}));
    }
    account::parse_input(&probe, true).map_err(ApiError::invalid_input)?;
    let app_id = body["oauth2"]["provider"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let app = state.oauth.app(&app_id).await.map_err(|_| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "Invalid or missing OAuth2 provider",
        )
        .with("code", "InvalidProvider")
    })?;
    if app.provider.is_service() {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "Application-only OAuth providers do not support interactive authorization",
        ));
    }
    body.insert("_meta".into(), json!({"redirectUrl": redirect_url}));
    let key = format!("account:add:{}", nonce());
    state
        .store
        .put_transient(
            &key,
            &Value::Object(body.clone()).to_string(),
            DRAFT_TTL_SECS,
            false,
        )
        .await?;
    let endpoints = state
        .oauth
        .endpoints(&app)
        .await
        .map_err(|e| ApiError::new(StatusCode::SERVICE_UNAVAILABLE, e.to_string()))?;
    authorize_url(
        &app,
        &endpoints,
        &AuthorizeRequest {
            state: key,
            login_hint: body
                .get("email")
                .and_then(Value::as_str)
                .map(str::to_string),
            prompt: None,
        },
    )
    .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, e.to_string()))
}

/// The sign-in address the provider vouches for: the ID token's `email`, else the userinfo
/// endpoint's, else a subject that is an address.
async fn identity(
    state: &AppState,
    app: &OAuthApp,
    grant: &emailengine_oauth::token::TokenGrant,
) -> Option<String> {
    let claims = grant.id_token_claims.clone().unwrap_or_default();
    let claim = |c: &Map<String, Value>, k: &str| {
        c.get(k)
            .and_then(Value::as_str)
            .filter(|v| v.contains('@'))
            .map(str::to_string)
    };
    let mut keys = vec!["email"];
    if app.provider == Provider::Outlook {
        keys.extend(["preferred_username", "upn"]);
    }
    if let Some(found) = keys.iter().find_map(|k| claim(&claims, k)) {
        return Some(found);
    }
    let endpoints = state.oauth.endpoints(app).await.ok()?;
    let info = state
        .oauth
        .userinfo(&endpoints, &grant.access_token)
        .await?;
    let info = info.as_object()?;
    claim(info, "email")
        .or_else(|| claim(info, "sub"))
        .or_else(|| claim(&claims, "sub"))
}

async fn oauth_callback(
    State(state): State<AppState>,
    Query(params): Query<HashMap<String, String>>,
) -> Response {
    let bad = |m: &str| error_page(StatusCode::BAD_REQUEST, &format!("Oauth failed: {m}"));
    if let Some(error) = params.get("error") {
        return bad(error);
    }
    let Some(code) = params.get("code") else {
        return bad("no code received");
    };
    let Some(key) = params
        .get("state")
        .filter(|s| s.starts_with("account:add:"))
    else {
        return bad("invalid state received");
    };
    if !nonce_is_valid(&key["account:add:".len()..]) {
        return bad("invalid state format");
    }
    let draft = match state.store.take_transient(key).await {
        Ok(Some(d)) => d,
        Ok(None) => return bad("session expired"),
        Err(e) => return internal(e),
    };
    let Ok(Value::Object(draft)) = serde_json::from_str::<Value>(&draft) else {
        return bad("invalid session");
    };
    let app_id = draft["oauth2"]["provider"].as_str().unwrap_or_default();
    let app = match state.oauth.app(app_id).await {
        Ok(a) => a,
        Err(_) => return error_page(StatusCode::NOT_FOUND, "Missing or disabled OAuth2 app"),
    };
    let endpoints = match state.oauth.endpoints(&app).await {
        Ok(e) => e,
        Err(e) => return internal(e),
    };
    let grant = match state
        .oauth
        .token_client()
        .exchange_code(&app, &endpoints, code)
        .await
    {
        Ok(g) => g,
        Err(e) => {
            tracing::warn!(err = %e, "Authorization code exchange failed");
            return bad("did not get token");
        }
    };
    let Some(email) = identity(&state, &app, &grant).await else {
        return bad("failed to retrieve account email address");
    };
    let meta = &draft["_meta"];
    if let Some(expected) = meta["expectedEmail"].as_str()
        && !expected.eq_ignore_ascii_case(&email)
    {
        // The grant is for someone else: give it back rather than keep it unused.
        let given = grant
            .refresh_token
            .as_deref()
            .unwrap_or(&grant.access_token);
        if let Err(e) = state
            .oauth
            .token_client()
            .revoke(&app, &endpoints, given, None)
            .await
        {
            tracing::warn!(err = %e, "Failed to revoke a grant for the wrong identity");
        }
        return error_page(
            StatusCode::FORBIDDEN,
            &format!("You signed in as {email}, but this link is for {expected}."),
        );
    }
    if let Some(n) = meta["n"].as_str() {
        match claim_nonce(&state, n).await {
            Ok(true) => {}
            Ok(false) => return error_page(StatusCode::FORBIDDEN, EXPIRED),
            Err(r) => return r,
        }
    }
    let mut body: Map<String, Value> = draft
        .iter()
        .filter(|(k, _)| !["_meta", "delegated", "oauth2"].contains(&k.as_str()))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    body.entry("name")
        .or_insert_with(|| Value::from(email.clone()));
    let delegated = draft.get("delegated") == Some(&Value::Bool(true));
    body.insert("email".into(), Value::from(email.clone()));
    let mut auth = json!({"user": email});
    if delegated && let Some(shared) = draft.get("email").and_then(Value::as_str) {
        auth["delegatedUser"] = Value::from(shared);
        body.insert("email".into(), Value::from(shared));
    }
    body.insert(
        "oauth2".into(),
        json!({"provider": app_id, "auth": auth, "accessToken": grant.access_token,
            "refreshToken": grant.refresh_token, "expires": iso_time(grant.expires_at_ms)}),
    );
    let mut input = match account::parse_input(&body, true) {
        Ok(i) => i,
        Err(errors) => {
            release_nonce(&state, meta["n"].as_str()).await;
            let text: Vec<String> = errors.into_iter().map(|e| e.message).collect();
            return error_page(StatusCode::BAD_REQUEST, &text.join("; "));
        }
    };
    if let Some(Value::Object(o)) = input.oauth2.as_mut() {
        o.insert("scope".into(), Value::from(grant.scope.clone()));
        o.insert("tokenType".into(), Value::from(grant.token_type.clone()));
        o.insert("generated".into(), Value::from(iso_time(now_ms())));
    }
    finish(
        &state,
        &input,
        meta["redirectUrl"].as_str(),
        meta["n"].as_str(),
    )
    .await
}

/// Marks a link as used; false when it already was.
async fn claim_nonce(state: &AppState, n: &str) -> Result<bool, Response> {
    state
        .store
        .put_transient(
            &format!("account:form:{n}"),
            &now_ms().to_string(),
            DRAFT_TTL_SECS,
            true,
        )
        .await
        .map_err(internal)
}

async fn release_nonce(state: &AppState, n: Option<&str>) {
    if let Some(n) = n
        && let Err(e) = state
            .store
            .remove_transient(&format!("account:form:{n}"))
            .await
    {
        tracing::warn!(err = %e, "Failed to release a setup link");
    }
}

/// Creates the account and sends the browser on with a page (not a 302, so SameSite cookies of
/// the caller's site survive the hop).
async fn finish(
    state: &AppState,
    input: &AccountInput,
    redirect_url: Option<&str>,
    n: Option<&str>,
) -> Response {
    let (account, is_new) = match register(state, input).await {
        Ok(r) => r,
        Err(e) => {
            release_nonce(state, n).await;
            return error_page(e.status(), e.message());
        }
    };
    let base = match service_url(state).await {
        Ok(b) => b.unwrap_or_default(),
        Err(e) => return internal(e.message()),
    };
    let target = match redirect_url {
        Some(r) => {
            let joined = url::Url::parse(&base)
                .ok()
                .and_then(|b| b.join(r).ok())
                .or_else(|| url::Url::parse(r).ok());
            match joined {
                Some(mut url) => {
                    let kept: Vec<(String, String)> = url
                        .query_pairs()
                        .into_owned()
                        .filter(|(k, _)| k != "account" && k != "state")
                        .collect();
                    url.query_pairs_mut()
                        .clear()
                        .extend_pairs(kept)
                        .append_pair("account", &account)
                        .append_pair("state", if is_new { "new" } else { "existing" });
                    url.to_string()
                }
                None => format!("/admin/accounts/{account}"),
            }
        }
        None => format!("/admin/accounts/{account}"),
    };
    let t = esc(&target);
    let html = format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta http-equiv=\"refresh\" content=\"0;URL='{t}'\"><title>Account added</title></head>\
         <body><main><h1>Account added</h1><p><a href=\"{t}\" id=\"continue\">Click here to continue</a></p></main></body></html>"
    );
    (StatusCode::OK, Html(html)).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nonces_have_emailengine_format() {
        let n = nonce();
        assert_eq!(n.len(), 22);
        assert!(nonce_is_valid(&n));
        assert!(nonce_is_valid("AAAAAAAAAAAAAAAAAAAAAA=="));
        assert!(!nonce_is_valid("short"));
        assert!(!nonce_is_valid("AAAAAAAAAAAAAAAAAAAAA\"<"));
    }

    #[test]
    fn falsy_values_are_dropped_from_blobs() {
        for v in [json!(null), json!(false), json!(""), json!([]), json!(0)] {
            assert!(is_falsy(&v), "{v}");
        }
        for v in [json!(true), json!("x"), json!(["a"]), json!(1), json!({})] {
            assert!(!is_falsy(&v), "{v}");
        }
    }
}
