//! Token requests against real authorization servers (spec §15.2, §16.5): refresh, the
//! authorization-code exchange, client credentials (`outlookService`, generic apps), the
//! service-account assertion (`gmailService`), plus OpenID discovery, introspection and
//! revocation. Form-encoded POSTs over reqwest/rustls; results are [`TokenGrant`]s, failures
//! [`TokenError`]s. Client authentication follows each provider: secrets in the body for
//! Google and Microsoft, HTTP Basic for Mail.ru's exchange and for generic servers (the method
//! RFC 6749 §2.3.1 requires every server to support).

mod error;
mod grant;
pub mod jwt;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use serde_json::{Map, Value};

pub use error::{Grant, TokenError};
pub use grant::{DEFAULT_EXPIRES_IN_SECS, TokenGrant};

use crate::app::{AuthMethod, OAuthApp, Provider};
use crate::provider::{self, Endpoints, ProviderTable};
use crate::{Error, Result};
use error::RequestContext;

/// Largest response body read from an authorization server.
const MAX_RESPONSE_BYTES: usize = 1 << 20;

/// The answer of an introspection endpoint (RFC 7662).
#[derive(Debug, Clone, PartialEq)]
pub struct Introspection {
    pub active: bool,
    /// Every member of the answer (`sub`, `scope`, `exp`, `client_id`, ...).
    pub claims: Map<String, Value>,
}

/// An HTTP client for authorization servers. Cheap to clone.
#[derive(Debug, Clone)]
pub struct TokenClient {
    http: reqwest::Client,
}

/// How the client proves itself on a request.
enum ClientAuth {
    /// `client_id` and `client_secret` as form fields.
    Body,
    /// `Authorization: Basic` with both form-urlencoded (RFC 6749 §2.3.1).
    Basic,
}

impl TokenClient {
    /// A client with its own connection pool; redirects are not followed (a token endpoint
    /// that redirects is misconfigured, and following would resend the credentials).
    pub fn new(user_agent: &str, timeout: Duration) -> Result<Self> {
        let http = reqwest::Client::builder()
            .user_agent(user_agent)
            .timeout(timeout)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| Error::http(format!("HTTP client setup failed: {e}"), false))?;
        Ok(Self { http })
    }

    /// Wraps a client the caller configured (proxy, resolver, pool).
    pub fn from_client(http: reqwest::Client) -> Self {
        Self { http }
    }

    /// The endpoints of an app: the table's, or for a generic app its own URLs over those of
    /// its issuer's discovery document.
    pub async fn endpoints(&self, table: &ProviderTable, app: &OAuthApp) -> Result<Endpoints> {
        if let Some(endpoints) = table.endpoints(app) {
            return Ok(endpoints);
        }
        let issuer = app
            .issuer
            .as_deref()
            .ok_or(Error::MissingEndpoint { what: "token" })?;
        let discovered = self.discover(issuer).await?;
        provider::generic_endpoints(app, Some(&discovered))
            .ok_or(Error::MissingEndpoint { what: "token" })
    }

    /// Reads `<issuer>/.well-known/openid-configuration` (OpenID Connect Discovery 1.0). The
    /// document must name the same issuer.
    pub async fn discover(&self, issuer: &str) -> Result<Endpoints> {
        let issuer = issuer.trim_end_matches('/');
        let url = format!("{issuer}/.well-known/openid-configuration");
        let fail = |why: String, transient| {
            Error::http(
                format!("OpenID discovery failed for {issuer}: {why}"),
                transient,
            )
        };
        let response = self
            .http
            .get(&url)
            .header("accept", "application/json")
            .send()
            .await
            .map_err(|e| fail(e.without_url().to_string(), true))?;
        let status = response.status();
        if !status.is_success() {
            return Err(fail(
                format!("HTTP {}", status.as_u16()),
                status.is_server_error(),
            ));
        }
        let body = read_json(response).await.map_err(|e| fail(e, false))?;
        let text = |k: &str| body.get(k).and_then(Value::as_str).map(str::to_string);
        if text("issuer").as_deref().map(|s| s.trim_end_matches('/')) != Some(issuer) {
            return Err(fail("the document names another issuer".into(), false));
        }
        let required = |k: &str| text(k).ok_or_else(|| fail(format!("no {k}"), false));
        Ok(Endpoints {
            authorize: required("authorization_endpoint")?,
            token: required("token_endpoint")?,
            revoke: text("revocation_endpoint"),
            userinfo: text("userinfo_endpoint"),
            introspection: text("introspection_endpoint"),
        })
    }

    /// Renews an access token with a refresh token (no `scope`: the grant keeps its scopes).
    pub async fn refresh(
        &self,
        app: &OAuthApp,
        endpoints: &Endpoints,
        refresh_token: &str,
    ) -> Result<TokenGrant, Box<TokenError>> {
        let grant = Grant::RefreshToken;
        let form = vec![
            ("grant_type", grant.grant_type().to_string()),
            ("refresh_token", refresh_token.to_string()),
        ];
        self.request(app, endpoints, grant, form, Some(client_auth(app, false)))
            .await
    }

    /// Exchanges an authorization code from the `/oauth` callback.
    pub async fn exchange_code(
        &self,
        app: &OAuthApp,
        endpoints: &Endpoints,
        code: &str,
    ) -> Result<TokenGrant, Box<TokenError>> {
        let grant = Grant::AuthorizationCode;
        let mut form = vec![
            ("grant_type", grant.grant_type().to_string()),
            ("code", code.to_string()),
            ("redirect_uri", app.redirect_url.clone().unwrap_or_default()),
        ];
        if app.provider == Provider::Outlook {
            form.push(("scope", provider::scopes(app).join(" ")));
        }
        self.request(app, endpoints, grant, form, Some(client_auth(app, true)))
            .await
    }

    /// An application token without a user (`outlookService`: `<graph>/.default`; generic:
    /// the app's scopes without the user-only `openid` and `offline_access`).
    pub async fn client_credentials(
        &self,
        app: &OAuthApp,
        endpoints: &Endpoints,
    ) -> Result<TokenGrant, Box<TokenError>> {
        let grant = Grant::ClientCredentials;
        if !matches!(app.provider, Provider::OutlookService | Provider::Generic) {
            return Err(Box::new(TokenError::configuration(
                app.provider,
                grant,
                "client credentials are for outlookService and oauth2 apps",
            )));
        }
        let scope = app_scopes(app).join(" ");
        let mut form = vec![("grant_type", grant.grant_type().to_string())];
        if !scope.is_empty() {
            form.push(("scope", scope));
        }
        self.request(app, endpoints, grant, form, Some(client_auth(app, false)))
            .await
    }

    /// A `gmailService` token for one mailbox: an RS256 assertion signed with the app's
    /// service key. Workload Identity Federation (`externalAccount`) is not supported here.
    pub async fn service_account(
        &self,
        app: &OAuthApp,
        endpoints: &Endpoints,
        user: &str,
    ) -> Result<TokenGrant, Box<TokenError>> {
        let grant = Grant::JwtBearer;
        let config = |why: &str| Box::new(TokenError::configuration(app.provider, grant, why));
        if app.provider != Provider::GmailService {
            return Err(config("service-account tokens are for gmailService apps"));
        }
        if app.auth_method == Some(AuthMethod::ExternalAccount) {
            return Err(config("external account credentials are not supported"));
        }
        let key = app
            .service_key
            .as_deref()
            .ok_or_else(|| config("no service key"))?;
        let iss = app
            .service_client
            .as_deref()
            .ok_or_else(|| config("no service client"))?;
        let scope = provider::scopes(app).join(" ");
        let claims = jwt::AssertionClaims {
            iss,
            scope: &scope,
            sub: user,
            aud: &endpoints.token,
            iat: now_ms() / 1000,
        };
        let assertion = jwt::service_account_assertion(key, &claims).map_err(|e| config(&e))?;
        let form = vec![
            ("grant_type", grant.grant_type().to_string()),
            ("assertion", assertion),
        ];
        self.request(app, endpoints, grant, form, None).await
    }

    /// Asks the introspection endpoint about a token (RFC 7662), authenticated as the app.
    pub async fn introspect(
        &self,
        app: &OAuthApp,
        endpoints: &Endpoints,
        token: &str,
    ) -> Result<Introspection> {
        let url = endpoints
            .introspection
            .as_deref()
            .ok_or(Error::MissingEndpoint {
                what: "introspection",
            })?;
        let form = vec![("token", token.to_string())];
        let response = self
            .post_form(app, url, form, Some(client_auth(app, false)))
            .send()
            .await
            .map_err(|e| Error::http(format!("Introspection failed: {}", e.without_url()), true))?;
        let status = response.status();
        if !status.is_success() {
            return Err(Error::http(
                format!("Introspection failed: HTTP {}", status.as_u16()),
                status.is_server_error(),
            ));
        }
        let body = read_json(response)
            .await
            .map_err(|e| Error::http(format!("Introspection failed: {e}"), false))?;
        let Value::Object(claims) = body else {
            return Err(Error::http(
                "Introspection failed: not a JSON object",
                false,
            ));
        };
        Ok(Introspection {
            active: claims.get("active") == Some(&Value::Bool(true)),
            claims,
        })
    }

    /// Revokes a token (RFC 7009); `hint` is `access_token` or `refresh_token`.
    pub async fn revoke(
        &self,
        app: &OAuthApp,
        endpoints: &Endpoints,
        token: &str,
        hint: Option<&str>,
    ) -> Result<()> {
        let url = endpoints
            .revoke
            .as_deref()
            .ok_or(Error::MissingEndpoint { what: "revocation" })?;
        let mut form = vec![("token", token.to_string())];
        if let Some(h) = hint {
            form.push(("token_type_hint", h.to_string()));
        }
        let response = self
            .post_form(app, url, form, Some(client_auth(app, false)))
            .send()
            .await
            .map_err(|e| Error::http(format!("Revocation failed: {}", e.without_url()), true))?;
        let status = response.status();
        if status.is_success() {
            Ok(())
        } else {
            Err(Error::http(
                format!("Revocation failed: HTTP {}", status.as_u16()),
                status.is_server_error(),
            ))
        }
    }

    fn post_form(
        &self,
        app: &OAuthApp,
        url: &str,
        mut form: Vec<(&'static str, String)>,
        auth: Option<ClientAuth>,
    ) -> reqwest::RequestBuilder {
        let client_id = app.client_id.clone().unwrap_or_default();
        let mut request = self.http.post(url).header("accept", "application/json");
        match auth {
            Some(ClientAuth::Body) => {
                form.push(("client_id", client_id));
                if let Some(secret) = &app.client_secret {
                    form.push(("client_secret", secret.clone()));
                }
            }
            Some(ClientAuth::Basic) => {
                let pair = format!(
                    "{}:{}",
                    form_encode(&client_id),
                    form_encode(app.client_secret.as_deref().unwrap_or_default())
                );
                let encoded = base64::engine::general_purpose::STANDARD.encode(pair);
                request = request.header("authorization", format!("Basic {encoded}"));
            }
            None => {}
        }
        request.form(&form)
    }

    async fn request(
        &self,
        app: &OAuthApp,
        endpoints: &Endpoints,
        grant: Grant,
        form: Vec<(&'static str, String)>,
        auth: Option<ClientAuth>,
    ) -> Result<TokenGrant, Box<TokenError>> {
        let context = request_context(app, endpoints, grant);
        let response = match self
            .post_form(app, &endpoints.token, form, auth)
            .send()
            .await
        {
            Ok(r) => r,
            Err(e) => {
                let detail = e.without_url().to_string();
                return Err(Box::new(TokenError::network(
                    app.provider,
                    grant,
                    detail,
                    context,
                )));
            }
        };
        let status = response.status().as_u16();
        let body = read_json(response).await.ok();
        if (200..300).contains(&status)
            && let Some(grant) = body
                .as_ref()
                .and_then(|b| TokenGrant::from_response(b, now_ms()))
        {
            return Ok(grant);
        }
        Err(Box::new(TokenError::from_response(
            app.provider,
            grant,
            status,
            body,
            context,
            app.client_secret.as_deref(),
        )))
    }
}

/// How the app authenticates; `code_exchange` because Mail.ru wants Basic only there.
fn client_auth(app: &OAuthApp, code_exchange: bool) -> ClientAuth {
    match app.provider {
        Provider::MailRu if code_exchange => ClientAuth::Basic,
        Provider::Generic if app.client_secret.is_some() => ClientAuth::Basic,
        _ => ClientAuth::Body,
    }
}

/// The scopes a request names: the app's, minus what only makes sense with a user.
fn app_scopes(app: &OAuthApp) -> Vec<String> {
    let mut scopes = provider::scopes(app);
    if app.provider == Provider::Generic {
        scopes.retain(|s| s != "openid" && s != "offline_access");
    }
    scopes
}

fn request_context(app: &OAuthApp, endpoints: &Endpoints, grant: Grant) -> RequestContext {
    let google = app.provider == Provider::GmailService;
    RequestContext {
        url: endpoints.token.clone(),
        client_id: app.client_id.clone().or_else(|| app.service_client.clone()),
        scopes: if grant == Grant::ClientCredentials {
            app_scopes(app)
        } else {
            provider::scopes(app)
        },
        authority: app
            .provider
            .is_microsoft()
            .then(|| app.authority.clone())
            .flatten(),
        service_client: google.then(|| app.service_client.clone()).flatten(),
        google_project_id: app.google_project_id.clone(),
        service_client_email: google.then(|| app.service_client_email.clone()).flatten(),
        signer: google.then(|| app.auth_method.unwrap_or_default().as_str().to_string()),
        secret_hint: None,
    }
}

async fn read_json(response: reqwest::Response) -> Result<Value, String> {
    let bytes = response
        .bytes()
        .await
        .map_err(|e| e.without_url().to_string())?;
    if bytes.len() > MAX_RESPONSE_BYTES {
        return Err("the response is too large".into());
    }
    serde_json::from_slice(&bytes).map_err(|_| "the response is not JSON".into())
}

fn form_encode(value: &str) -> String {
    percent_encoding::utf8_percent_encode(value, FORM).to_string()
}

/// application/x-www-form-urlencoded: everything but `*-._` and alphanumerics is escaped.
const FORM: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'*')
    .remove(b'-')
    .remove(b'.')
    .remove(b'_');

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn basic_credentials_are_form_encoded_first() {
        assert_eq!(form_encode("a b:c/é"), "a%20b%3Ac%2F%C3%A9");
        assert_eq!(form_encode("emailengine-test"), "emailengine-test");
    }

    #[test]
    fn client_credentials_scopes_drop_user_scopes() {
        let mut app = OAuthApp::new(Provider::Generic);
        app.scopes = Some(vec![
            "openid".into(),
            "offline_access".into(),
            "mail".into(),
        ]);
        assert_eq!(app_scopes(&app), ["mail"]);
        let svc = OAuthApp::new(Provider::OutlookService);
        assert_eq!(app_scopes(&svc), ["https://graph.microsoft.com/.default"]);
    }
}
