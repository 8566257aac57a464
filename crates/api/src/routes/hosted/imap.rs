//! The IMAP arm of hosted authentication (spec §16.3): the address and password first, then
//! the server settings — prefilled by discovery (`GET /v1/autoconfig`'s lookups) or by a
//! well-known provider picked from a list — with a connection test, then the account.
//! Every step re-checks the signed link; discovery and tests count against its probe cap.

use std::collections::HashMap;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};

use emailengine_autoconfig::{Discovered, PRESETS};
use emailengine_core::account;
use emailengine_core::units::iso_time;

use super::{
    EXPIRED, Link, Refusal, check_link, claim_nonce, error_page, esc, finish, form_fields, hidden,
    now_ms, open_link, page,
};
use crate::routes::accounts::verify_servers;
use crate::state::AppState;

/// Discoveries and connection tests allowed per setup link.
const PROBE_LIMIT: u64 = 50;
const PROBE_TTL_SECS: u64 = 86_400;
const TOO_MANY: &str =
    "Too many attempts for this setup link. Request a new setup link to continue.";

/// Counts one discovery or test against the link's cap.
async fn probe(state: &AppState, link: &Link) -> Result<(), Refusal> {
    let n = link.nonce().unwrap_or_default();
    let count = state
        .store
        .count_transient(&format!("account:form:probe:{n}"), PROBE_TTL_SECS)
        .await
        .map_err(Refusal::internal)?;
    if count > PROBE_LIMIT {
        return Err(Refusal::new(StatusCode::TOO_MANY_REQUESTS, TOO_MANY));
    }
    Ok(())
}

fn error_line(error: Option<&str>) -> String {
    error
        .map(|e| format!("<p class=\"error\" role=\"alert\">{}</p>", esc(e)))
        .unwrap_or_default()
}

/// The pinned address (`expectedEmail`) wins over anything typed.
fn address(link: &Link, typed: Option<&str>) -> String {
    link.text("expectedEmail")
        .or_else(|| typed.map(str::to_string))
        .or_else(|| link.text("email"))
        .unwrap_or_default()
}

/// Step one: name, address and password.
pub(super) fn credentials_form(link: &Link, error: Option<&str>) -> Response {
    let pinned = link.text("expectedEmail").is_some();
    let readonly = if pinned { " readonly" } else { "" };
    page(
        StatusCode::OK,
        "Add an email account",
        &format!(
            "<h1>Add an email account</h1>{}\
             <form method=\"post\" action=\"/accounts/new/imap\">{}\
             <label for=\"name\">Your name</label><input id=\"name\" name=\"name\" value=\"{}\" autocomplete=\"name\">\
             <label for=\"email\">Email address</label><input id=\"email\" name=\"email\" type=\"email\" value=\"{}\" required autocomplete=\"email\"{readonly}>\
             <label for=\"password\">Password</label><input id=\"password\" name=\"password\" type=\"password\" required maxlength=\"1024\" autocomplete=\"current-password\">\
             <button type=\"submit\">Continue</button></form>",
            error_line(error),
            hidden(link),
            esc(&link.text("name").unwrap_or_default()),
            esc(&address(link, None)),
        ),
    )
}

/// One server's fields, as the form names them (`imap_host`, `smtp_auth_user`, …).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
struct ServerFields {
    user: String,
    pass: String,
    host: String,
    port: String,
    secure: bool,
}

impl ServerFields {
    /// Reads `<prefix>_*`; the address and the step-one password stand in for missing
    /// credentials.
    fn read(params: &HashMap<String, String>, prefix: &str, email: &str) -> Self {
        let get = |k: &str| params.get(&format!("{prefix}_{k}")).map(|v| v.trim());
        let user = get("auth_user")
            .filter(|v| !v.is_empty())
            .unwrap_or(email)
            .to_string();
        let pass = params
            .get(&format!("{prefix}_auth_pass"))
            .filter(|v| !v.is_empty())
            .or_else(|| params.get("password"))
            .cloned()
            .unwrap_or_default();
        Self {
            user,
            pass,
            host: get("host").unwrap_or_default().to_string(),
            port: get("port").unwrap_or_default().to_string(),
            secure: get("secure").is_some_and(|v| v == "true" || v == "on"),
        }
    }

    fn discovered(found: Option<&emailengine_autoconfig::Server>, email: &str, pass: &str) -> Self {
        match found {
            Some(s) => Self {
                user: s.user.clone(),
                pass: pass.to_string(),
                host: s.host.clone(),
                port: s.port.to_string(),
                secure: s.secure,
            },
            None => Self {
                user: email.to_string(),
                pass: pass.to_string(),
                ..Self::default()
            },
        }
    }

    /// `{host, port, secure, auth}` for the account, or `None` when incomplete.
    fn settings(&self) -> Option<Value> {
        let port: u16 = self.port.parse().ok().filter(|p| *p > 0)?;
        if self.host.is_empty() || self.pass.is_empty() || self.pass.len() > 1024 {
            return None;
        }
        Some(
            json!({"host": self.host, "port": port, "secure": self.secure,
            "auth": {"user": self.user, "pass": self.pass}}),
        )
    }

    fn fieldset(&self, prefix: &str, legend: &str) -> String {
        let id = |k: &str| format!("{prefix}_{k}");
        format!(
            "<fieldset><legend>{legend}</legend>\
             <label for=\"{u}\">Username</label><input id=\"{u}\" name=\"{u}\" value=\"{}\" required autocomplete=\"username\">\
             <label for=\"{p}\">Password</label><input id=\"{p}\" name=\"{p}\" type=\"password\" value=\"{}\" required maxlength=\"1024\" autocomplete=\"current-password\">\
             <label for=\"{h}\">Server</label><input id=\"{h}\" name=\"{h}\" value=\"{}\" required>\
             <label for=\"{o}\">Port</label><input id=\"{o}\" name=\"{o}\" type=\"number\" min=\"1\" max=\"65535\" value=\"{}\" required>\
             <label><input type=\"checkbox\" id=\"{s}\" name=\"{s}\" value=\"true\"{}> Use TLS from the start</label>\
             </fieldset>",
            esc(&self.user),
            esc(&self.pass),
            esc(&self.host),
            esc(&self.port),
            if self.secure { " checked" } else { "" },
            u = id("auth_user"),
            p = id("auth_pass"),
            h = id("host"),
            o = id("port"),
            s = id("secure"),
        )
    }
}

/// The settings a form post carries.
struct Fields {
    name: String,
    email: String,
    imap: ServerFields,
    smtp: ServerFields,
}

impl Fields {
    fn read(params: &HashMap<String, String>, link: &Link) -> Self {
        let typed = params.get("email").map(|e| e.trim());
        let email = address(link, typed);
        Self {
            name: params
                .get("name")
                .map(|n| n.trim().to_string())
                .unwrap_or_default(),
            imap: ServerFields::read(params, "imap", &email),
            smtp: ServerFields::read(params, "smtp", &email),
            email,
        }
    }
}

/// The well-known providers, for the form's preset list (filled in by a few lines of script).
fn preset_options() -> String {
    let mut options =
        String::from("<option value=\"\">Choose a provider, or enter the settings below</option>");
    for p in PRESETS {
        options.push_str(&format!(
            "<option value=\"{}\" data-imap-host=\"{}\" data-imap-port=\"{}\" data-imap-secure=\"{}\" \
             data-smtp-host=\"{}\" data-smtp-port=\"{}\" data-smtp-secure=\"{}\">{}</option>",
            esc(p.id),
            esc(p.imap.host),
            p.imap.port,
            p.imap.secure,
            esc(p.smtp.host),
            p.smtp.port,
            p.smtp.secure,
            esc(p.name)
        ));
    }
    options
}

/// Fills the fields from the chosen preset and runs the connection test in place.
const SERVER_FORM_SCRIPT: &str = r#"(function(){
var f=document.getElementById('servers'),p=document.getElementById('preset'),out=document.getElementById('test-result');
function set(n,v){var e=f.elements[n];if(!e||v===undefined)return;if(e.type==='checkbox'){e.checked=v==='true';}else{e.value=v;}}
p.addEventListener('change',function(){var o=p.options[p.selectedIndex];if(!o||!o.value)return;
['imap','smtp'].forEach(function(k){set(k+'_host',o.dataset[k+'Host']);set(k+'_port',o.dataset[k+'Port']);set(k+'_secure',o.dataset[k+'Secure']);});});
document.getElementById('test').addEventListener('click',function(){out.textContent='Testing the settings…';
fetch('/accounts/new/imap/test',{method:'POST',headers:{'content-type':'application/x-www-form-urlencoded'},body:new URLSearchParams(new FormData(f))})
.then(function(r){return r.json();}).then(function(j){var t=[];
['imap','smtp'].forEach(function(k){var r=j[k];if(r){t.push(k.toUpperCase()+': '+(r.success?'connected':(r.error||'failed')));}});
out.textContent=t.length?t.join('. '):(j.message||'The test failed');}).catch(function(){out.textContent='The test failed';});});
})();"#;

/// Step two: the servers, editable, with the provider list and the test button.
fn server_form(
    link: &Link,
    fields: &Fields,
    found: Option<&Discovered>,
    error: Option<&str>,
) -> Response {
    let hint = match found.and_then(|d| d.app_password) {
        Some(p) => format!(
            "<p role=\"note\">{} asks for an app password here, not your usual password. \
             <a href=\"{}\">How to make one</a>.</p>",
            esc(p.name),
            esc(p.app_password.unwrap_or_default())
        ),
        None => String::new(),
    };
    let status = match found {
        Some(d) if d.imap.is_some() => {
            "<p>We found your mail servers. Check them, test them, then add the account.</p>"
        }
        Some(_) => "<p>We could not find your mail servers. Pick your provider or enter them.</p>",
        None => "",
    };
    page(
        if error.is_some() {
            StatusCode::BAD_REQUEST
        } else {
            StatusCode::OK
        },
        "Add an email account",
        &format!(
            "<h1>Add an email account</h1>{}{status}{hint}\
             <form method=\"post\" action=\"/accounts/new/imap/server\" id=\"servers\">{}\
             <input type=\"hidden\" name=\"name\" value=\"{}\"><input type=\"hidden\" name=\"email\" value=\"{}\">\
             <label for=\"preset\">Provider</label><select id=\"preset\">{}</select>\
             {}{}\
             <p id=\"test-result\" role=\"status\" aria-live=\"polite\"></p>\
             <button type=\"button\" id=\"test\">Test settings</button>\
             <button type=\"submit\">Add account</button></form><script>{SERVER_FORM_SCRIPT}</script>",
            error_line(error),
            hidden(link),
            esc(&fields.name),
            esc(&fields.email),
            preset_options(),
            fields.imap.fieldset("imap", "Incoming mail (IMAP)"),
            fields.smtp.fieldset("smtp", "Outgoing mail (SMTP)"),
        ),
    )
}

/// `POST /accounts/new/imap`: discovery for the address, then the server form.
pub(super) async fn discover(State(state): State<AppState>, body: axum::body::Bytes) -> Response {
    let params = form_fields(&body);
    let link = match open_link(&state, &params).await {
        Ok(l) => l,
        Err(r) => return r,
    };
    let fields = Fields::read(&params, &link);
    let password = params.get("password").cloned().unwrap_or_default();
    if !emailengine_core::compose::is_email(&fields.email)
        || password.is_empty()
        || password.len() > 1024
    {
        return credentials_form(&link, Some("Enter your email address and password."));
    }
    if let Err(r) = probe(&state, &link).await {
        return r.page();
    }
    let found = state.discovery.discover(&fields.email).await;
    let fields = Fields {
        imap: ServerFields::discovered(found.imap.as_ref(), &fields.email, &password),
        smtp: ServerFields::discovered(found.smtp.as_ref(), &fields.email, &password),
        ..fields
    };
    server_form(&link, &fields, Some(&found), None)
}

/// `POST /accounts/new/imap/test`: tries the settings, answering as `/v1/verifyAccount` does.
pub(super) async fn test(State(state): State<AppState>, body: axum::body::Bytes) -> Response {
    let params = form_fields(&body);
    let link = match check_link(&state, &params).await {
        Ok(l) => l,
        Err(r) => return r.json(),
    };
    if let Err(r) = probe(&state, &link).await {
        return r.json();
    }
    let fields = Fields::read(&params, &link);
    let invalid = |what: &str| json!({"success": false, "error": format!("Enter the {what} server, port and password"), "code": "InvalidSettings"});
    let imap = fields.imap.settings();
    let smtp = fields.smtp.settings();
    let mut out: Map<String, Value> =
        verify_servers(&state, imap.as_ref(), smtp.as_ref(), false).await;
    if imap.is_none() {
        out.insert("imap".into(), invalid("IMAP"));
    }
    if smtp.is_none() {
        out.insert("smtp".into(), invalid("SMTP"));
    }
    axum::Json(Value::Object(out)).into_response()
}

/// `POST /accounts/new/imap/server`: creates the account and sends the browser on.
pub(super) async fn create(State(state): State<AppState>, body: axum::body::Bytes) -> Response {
    let params = form_fields(&body);
    let link = match open_link(&state, &params).await {
        Ok(l) => l,
        Err(r) => return r,
    };
    let fields = Fields::read(&params, &link);
    if !emailengine_core::compose::is_email(&fields.email) {
        return credentials_form(&link, Some("Enter your email address and password."));
    }
    let (Some(imap), Some(smtp)) = (fields.imap.settings(), fields.smtp.settings()) else {
        return server_form(
            &link,
            &fields,
            None,
            Some("Enter the server names, ports and passwords."),
        );
    };
    let mut body = Map::new();
    for key in ["account", "path", "syncFrom", "subconnections"] {
        if let Some(v) = link.blob.get(key) {
            body.insert(key.into(), v.clone());
        }
    }
    let name = Some(fields.name.clone())
        .filter(|n| !n.is_empty())
        .or_else(|| link.text("name"))
        .unwrap_or_else(|| fields.email.clone());
    body.insert("name".into(), Value::from(name));
    body.insert("email".into(), Value::from(fields.email.clone()));
    body.insert(
        "notifyFrom".into(),
        link.blob
            .get("notifyFrom")
            .cloned()
            .unwrap_or_else(|| Value::from(iso_time(now_ms()))),
    );
    body.insert("imap".into(), imap);
    body.insert("smtp".into(), smtp);
    let input = match account::parse_input(&body, true) {
        Ok(i) => i,
        Err(errors) => {
            let text: Vec<String> = errors.into_iter().map(|e| e.message).collect();
            return server_form(&link, &fields, None, Some(&text.join("; ")));
        }
    };
    let n = link.nonce().unwrap_or_default();
    match claim_nonce(&state, &n).await {
        Ok(true) => {}
        Ok(false) => return error_page(StatusCode::FORBIDDEN, EXPIRED),
        Err(r) => return r,
    }
    let redirect = link.text("redirectUrl");
    finish(&state, &input, redirect.as_deref(), Some(&n)).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn server_fields_fall_back_to_the_address_and_password() {
        let p = params(&[
            ("password", "pw"),
            ("imap_host", " imap.example.org "),
            ("imap_port", "993"),
            ("imap_secure", "true"),
            ("smtp_auth_user", "relay"),
            ("smtp_auth_pass", "other"),
            ("smtp_host", "smtp.example.org"),
            ("smtp_port", "587"),
        ]);
        let imap = ServerFields::read(&p, "imap", "a@example.org");
        assert_eq!(
            imap.settings(),
            Some(
                json!({"host": "imap.example.org", "port": 993, "secure": true,
                "auth": {"user": "a@example.org", "pass": "pw"}})
            )
        );
        let smtp = ServerFields::read(&p, "smtp", "a@example.org");
        assert_eq!(
            smtp.settings(),
            Some(
                json!({"host": "smtp.example.org", "port": 587, "secure": false,
                "auth": {"user": "relay", "pass": "other"}})
            )
        );
    }

    #[test]
    fn incomplete_servers_have_no_settings() {
        for p in [
            params(&[("imap_host", "h"), ("imap_port", "993")]),
            params(&[("password", "pw"), ("imap_port", "993")]),
            params(&[("password", "pw"), ("imap_host", "h"), ("imap_port", "0")]),
            params(&[("password", "pw"), ("imap_host", "h"), ("imap_port", "x")]),
        ] {
            assert_eq!(
                ServerFields::read(&p, "imap", "a@b.c").settings(),
                None,
                "{p:?}"
            );
        }
    }

    #[test]
    fn the_preset_list_names_every_provider_and_fetches_nothing() {
        let options = preset_options();
        for p in PRESETS {
            assert!(
                options.contains(&format!("data-imap-host=\"{}\"", p.imap.host)),
                "{}",
                p.id
            );
        }
        for outside in ["src=", "http:", "https:", "<link"] {
            assert!(
                !options.contains(outside) && !SERVER_FORM_SCRIPT.contains(outside),
                "{outside}"
            );
        }
    }
}
