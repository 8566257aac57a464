//! A failed token request (spec §15.5): transient (network, timeout, 5xx) or permanent (the
//! server refused, or answered without a token), EmailEngine's message and `tokenRequest`
//! object, and the problem flags Microsoft's `AADSTS` codes map to. Nothing here holds a token;
//! the client secret appears only in its partial form, and only when the server blamed it.

use serde_json::{Map, Value, json};

use crate::app::{Flag, Provider};

/// The grant of a token request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Grant {
    RefreshToken,
    AuthorizationCode,
    ClientCredentials,
    /// Service-account assertion (RFC 7523), Google's two-legged flow.
    JwtBearer,
}

impl Grant {
    /// The `grant_type` form value.
    pub fn grant_type(self) -> &'static str {
        match self {
            Grant::RefreshToken => "refresh_token",
            Grant::AuthorizationCode => "authorization_code",
            Grant::ClientCredentials => "client_credentials",
            Grant::JwtBearer => "urn:ietf:params:oauth:grant-type:jwt-bearer",
        }
    }

    /// The name in messages and `tokenRequest.grant`. EmailEngine knows three names; the
    /// service-account assertion renews a token, so it reports as `refresh_token` (inferred).
    pub fn reported(self) -> &'static str {
        match self {
            Grant::RefreshToken | Grant::JwtBearer => "refresh_token",
            Grant::AuthorizationCode => "authorization_code",
            Grant::ClientCredentials => "client_credentials",
        }
    }
}

/// What the request was, for `tokenRequest` (no secrets).
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct RequestContext {
    pub url: String,
    pub client_id: Option<String>,
    pub scopes: Vec<String>,
    pub authority: Option<String>,
    pub service_client: Option<String>,
    pub google_project_id: Option<String>,
    pub service_client_email: Option<String>,
    pub signer: Option<String>,
    /// `<first 8 chars>... (<length>B)` of the client secret.
    pub secret_hint: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct TokenError {
    pub provider: Provider,
    pub grant: Grant,
    /// HTTP status, when the server answered.
    pub status: Option<u16>,
    /// The OAuth `error` code (or our own for odd answers, e.g. `invalid_response`).
    pub error: Option<String>,
    pub error_description: Option<String>,
    /// The server's JSON answer, token fields removed.
    pub response: Option<Value>,
    /// App-level problem (shown on the app until the next success).
    pub flag: Option<Flag>,
    /// Account-level problem (stored as `oauth2.userFlag`).
    pub user_flag: Option<Flag>,
    transient: bool,
    /// Why a request that got no answer failed (network) or was never sent (configuration).
    detail: Option<String>,
    pub(crate) context: RequestContext,
}

impl TokenError {
    /// The server answered with an error status or without a token.
    pub(crate) fn from_response(
        provider: Provider,
        grant: Grant,
        status: u16,
        body: Option<Value>,
        mut context: RequestContext,
        client_secret: Option<&str>,
    ) -> Self {
        let field = |k: &str| {
            body.as_ref()
                .and_then(|b| b.get(k))
                .and_then(Value::as_str)
                .map(str::to_string)
        };
        let ok = (200..300).contains(&status);
        let error = field("error").or_else(|| Some("invalid_response".to_string()));
        let error_description = field("error_description").or_else(|| {
            (ok && field("error").is_none()).then(|| "The response holds no access token".into())
        });
        let (flag, user_flag) = if provider.is_microsoft() {
            microsoft_flags(error.as_deref(), error_description.as_deref())
        } else {
            (None, None)
        };
        let secret_blamed = error.as_deref() == Some("invalid_client")
            || flag.as_ref().is_some_and(|f| {
                matches!(
                    f.code.as_deref(),
                    Some(SECRET_EXPIRED_FLAG) | Some(SECRET_INVALID_FLAG)
                )
            });
        if secret_blamed {
            context.secret_hint = client_secret.map(partial_secret);
        }
        Self {
            provider,
            grant,
            status: Some(status),
            error,
            error_description,
            response: body.map(strip_tokens),
            flag,
            user_flag,
            transient: status >= 500 || status == 408 || status == 429,
            detail: None,
            context,
        }
    }

    /// No answer: connection refused, reset, DNS, TLS or timeout.
    pub(crate) fn network(
        provider: Provider,
        grant: Grant,
        detail: String,
        context: RequestContext,
    ) -> Self {
        Self {
            provider,
            grant,
            status: None,
            error: None,
            error_description: None,
            response: None,
            flag: None,
            user_flag: None,
            transient: true,
            detail: Some(detail),
            context,
        }
    }

    /// The request could not be built from the app (a bad key, an unsupported method).
    pub(crate) fn configuration(provider: Provider, grant: Grant, detail: &str) -> Self {
        Self {
            transient: false,
            ..Self::network(
                provider,
                grant,
                detail.to_string(),
                RequestContext::default(),
            )
        }
    }

    /// Worth retrying unchanged: network failures, timeouts, 5xx, 408 and 429.
    pub fn is_transient(&self) -> bool {
        self.transient
    }

    /// EmailEngine's error code for a failed renewal.
    pub fn code(&self) -> &'static str {
        "ETokenRefresh"
    }

    /// The `tokenRequest` object of webhooks and API errors (spec §15.5).
    pub fn token_request(&self) -> Value {
        let c = &self.context;
        let mut out = Map::new();
        out.insert("url".into(), Value::from(c.url.as_str()));
        out.insert("method".into(), Value::from("post"));
        out.insert("grant".into(), Value::from(self.grant.reported()));
        out.insert("provider".into(), Value::from(self.provider.as_str()));
        out.insert(
            "status".into(),
            self.status.map_or(Value::Null, Value::from),
        );
        out.insert(
            "clientId".into(),
            c.client_id.clone().map_or(Value::Null, Value::from),
        );
        out.insert("scopes".into(), Value::from(c.scopes.clone()));
        let optional = [
            ("authority", &c.authority),
            ("serviceClient", &c.service_client),
            ("googleProjectId", &c.google_project_id),
            ("serviceClientEmail", &c.service_client_email),
            ("signer", &c.signer),
        ];
        for (key, value) in optional {
            if let Some(v) = value {
                out.insert(key.into(), Value::from(v.as_str()));
            }
        }
        let response = self.response.clone().unwrap_or_else(
            || json!({"error": self.error, "error_description": self.error_description}),
        );
        out.insert("response".into(), response);
        if let Some(hint) = &c.secret_hint {
            out.insert("clientSecret".into(), Value::from(hint.as_str()));
        }
        let flag_json = |f: &Flag| serde_json::to_value(f).unwrap_or(Value::Null);
        if let Some(f) = &self.flag {
            out.insert("flag".into(), flag_json(f));
        }
        if let Some(f) = &self.user_flag {
            out.insert("userFlag".into(), flag_json(f));
        }
        Value::Object(out)
    }
}

impl std::fmt::Display for TokenError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (provider, grant) = (self.provider.as_str(), self.grant.reported());
        match self.status {
            Some(status) => {
                write!(
                    f,
                    "Token request failed for {provider} ({grant}, HTTP {status}): "
                )?;
                f.write_str(self.error.as_deref().unwrap_or("invalid_response"))?;
                if let Some(d) = &self.error_description {
                    write!(f, " - {d}")?;
                }
                Ok(())
            }
            None => write!(
                f,
                "Token request failed for {provider} ({grant}): {}",
                self.detail.as_deref().unwrap_or("no response")
            ),
        }
    }
}

impl std::error::Error for TokenError {}

/// `<first 8 chars>... (<length>B)`: enough for an admin to tell which secret was sent.
pub(crate) fn partial_secret(secret: &str) -> String {
    let head: String = secret.chars().take(8).collect();
    format!("{head}... ({}B)", secret.len())
}

fn strip_tokens(mut body: Value) -> Value {
    if let Value::Object(map) = &mut body {
        for key in ["access_token", "refresh_token", "id_token"] {
            map.remove(key);
        }
    }
    body
}

const SECRET_EXPIRED_FLAG: &str = "OUTLOOK_CLIENT_SECRET_EXPIRED_OR_NOT_VALID";
const SECRET_INVALID_FLAG: &str = "OUTLOOK_CLIENT_SECRET_INVALID";

/// App- and account-level flags for a Microsoft identity platform error.
pub(crate) fn microsoft_flags(
    error: Option<&str>,
    description: Option<&str>,
) -> (Option<Flag>, Option<Flag>) {
    let codes = description.map(aadsts_codes).unwrap_or_default();
    let has = |code: &str| codes.iter().any(|c| c == code);
    let flag = |code: &str, message: &str| Flag {
        message: message.to_string(),
        description: description.map(str::to_string),
        code: Some(code.to_string()),
    };
    let app = if has("AADSTS7000222") {
        Some(flag(
            SECRET_EXPIRED_FLAG,
            "The client secret of the Outlook app has expired or is not valid",
        ))
    } else if has("AADSTS700016") {
        Some(flag(
            "OUTLOOK_APP_ID_INVALID",
            "The Outlook app (client ID) was not found in the directory",
        ))
    } else if has("AADSTS7000215") {
        Some(flag(
            SECRET_INVALID_FLAG,
            "The client secret of the Outlook app is not valid",
        ))
    } else {
        None
    };
    let user = (error == Some("invalid_grant")).then(|| {
        // AADSTS50173 / AADSTS50133: the grant died with a password change or reset.
        if has("AADSTS50173") || has("AADSTS50133") {
            flag(
                "OUTLOOK_USER_PASSWORD_CHANGED",
                "The user's password changed, sign in again to renew access",
            )
        } else {
            flag(
                "OUTLOOK_TOKEN_RENEWAL_FAILED",
                "Microsoft refused to renew the access token, sign in again",
            )
        }
    });
    (app, user)
}

/// `AADSTS<digits>` codes in a Microsoft error description, whole codes only.
fn aadsts_codes(description: &str) -> Vec<String> {
    let mut codes = Vec::new();
    let mut rest = description;
    while let Some(at) = rest.find("AADSTS") {
        let tail = &rest[at + 6..];
        let digits: String = tail.chars().take_while(char::is_ascii_digit).collect();
        if !digits.is_empty() {
            codes.push(format!("AADSTS{digits}"));
        }
        rest = &tail[digits.len()..];
    }
    codes
}

#[cfg(test)]
mod tests {
    use super::*;

    fn context() -> RequestContext {
        RequestContext {
            url: "https://login.microsoftonline.com/common/oauth2/v2.0/token".into(),
            client_id: Some("cid".into()),
            scopes: vec!["offline_access".into()],
            authority: Some("common".into()),
            ..Default::default()
        }
    }

    #[test]
    fn message_and_token_request_for_a_refused_refresh() {
        let body = json!({"error": "invalid_grant",
            "error_description": "AADSTS50173: The provided grant has expired due to it being revoked."});
        let err = TokenError::from_response(
            Provider::Outlook,
            Grant::RefreshToken,
            400,
            Some(body),
            context(),
            Some("secret-value-123"),
        );
        assert!(!err.is_transient());
        assert_eq!(
            err.to_string(),
            "Token request failed for outlook (refresh_token, HTTP 400): invalid_grant - AADSTS50173: The provided grant has expired due to it being revoked."
        );
        assert_eq!(
            err.token_request(),
            json!({
                "url": "https://login.microsoftonline.com/common/oauth2/v2.0/token",
                "method": "post",
                "grant": "refresh_token",
                "provider": "outlook",
                "status": 400,
                "clientId": "cid",
                "scopes": ["offline_access"],
                "authority": "common",
                "response": {"error": "invalid_grant",
                    "error_description": "AADSTS50173: The provided grant has expired due to it being revoked."},
                "userFlag": {
                    "message": "The user's password changed, sign in again to renew access",
                    "description": "AADSTS50173: The provided grant has expired due to it being revoked.",
                    "code": "OUTLOOK_USER_PASSWORD_CHANGED"
                }
            })
        );
    }

    #[test]
    fn secret_problems_flag_the_app_and_show_a_partial_secret() {
        let body = json!({"error": "invalid_client",
            "error_description": "AADSTS7000222: The provided client secret keys are expired."});
        let err = TokenError::from_response(
            Provider::OutlookService,
            Grant::ClientCredentials,
            401,
            Some(body),
            context(),
            Some("abcdefghijklmnop"),
        );
        let req = err.token_request();
        assert_eq!(req["clientSecret"], "abcdefgh... (16B)");
        assert_eq!(req["flag"]["code"], SECRET_EXPIRED_FLAG);
        assert!(req.get("userFlag").is_none());
        assert!(!req.to_string().contains("ijklmnop"));
        let google = TokenError::from_response(
            Provider::Gmail,
            Grant::RefreshToken,
            400,
            Some(json!({"error": "invalid_grant", "error_description": "Bad Request"})),
            RequestContext::default(),
            Some("abcdefghijklmnop"),
        );
        assert!(google.token_request().get("clientSecret").is_none());
        assert!(google.flag.is_none() && google.user_flag.is_none());
    }

    #[test]
    fn flag_mapping_reads_whole_codes() {
        assert_eq!(
            aadsts_codes("AADSTS7000215: x; AADSTS700016 y AADSTS"),
            ["AADSTS7000215", "AADSTS700016"]
        );
        let (app, _) = microsoft_flags(
            Some("invalid_client"),
            Some("AADSTS7000215: Invalid client secret"),
        );
        assert_eq!(app.unwrap().code.as_deref(), Some(SECRET_INVALID_FLAG));
        let (app, _) = microsoft_flags(
            Some("unauthorized_client"),
            Some("AADSTS700016: Application not found"),
        );
        assert_eq!(app.unwrap().code.as_deref(), Some("OUTLOOK_APP_ID_INVALID"));
        let (app, _) = microsoft_flags(Some("x"), Some("AADSTS7000160: something else"));
        assert_eq!(app, None);
        let (_, user) = microsoft_flags(Some("invalid_grant"), Some("AADSTS70008: expired"));
        assert_eq!(
            user.unwrap().code.as_deref(),
            Some("OUTLOOK_TOKEN_RENEWAL_FAILED")
        );
    }

    #[test]
    fn transient_and_odd_answers() {
        let err = TokenError::from_response(
            Provider::Gmail,
            Grant::RefreshToken,
            503,
            None,
            RequestContext::default(),
            None,
        );
        assert!(err.is_transient());
        assert_eq!(
            err.to_string(),
            "Token request failed for gmail (refresh_token, HTTP 503): invalid_response"
        );
        let no_token = TokenError::from_response(
            Provider::Generic,
            Grant::AuthorizationCode,
            200,
            Some(json!({"token_type": "Bearer", "refresh_token": "rt"})),
            RequestContext::default(),
            None,
        );
        assert!(!no_token.is_transient());
        assert_eq!(
            no_token.to_string(),
            "Token request failed for oauth2 (authorization_code, HTTP 200): invalid_response - The response holds no access token"
        );
        assert_eq!(no_token.response, Some(json!({"token_type": "Bearer"})));
        let net = TokenError::network(
            Provider::Generic,
            Grant::ClientCredentials,
            "connection refused".into(),
            RequestContext::default(),
        );
        assert!(net.is_transient());
        assert_eq!(
            net.to_string(),
            "Token request failed for oauth2 (client_credentials): connection refused"
        );
        assert_eq!(net.token_request()["status"], Value::Null);
        assert_eq!(partial_secret("äbc"), "äbc... (4B)");
    }
}
