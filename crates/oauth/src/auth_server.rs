//! The external token provider (spec §15.6): with setting `authServer` and an account's
//! `useAuthServer`, credentials come from `GET <authServer>?account=<id>&proto=<imap|smtp|api>`
//! on every use, authenticated with HTTP Basic from the URL's userinfo. The answer is
//! `{user, accessToken}` or `{user, pass}`; nothing is cached or refreshed here.

use base64::Engine as _;
use reqwest::Url;
use serde_json::Value;

use crate::{Error, Result};

/// What the credentials are for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Proto {
    Imap,
    Smtp,
    Api,
}

impl Proto {
    pub fn as_str(self) -> &'static str {
        match self {
            Proto::Imap => "imap",
            Proto::Smtp => "smtp",
            Proto::Api => "api",
        }
    }
}

/// The request to make: the URL without userinfo, and the Basic header built from it.
#[derive(Clone, PartialEq, Eq)]
pub struct AuthServerRequest {
    pub url: String,
    pub authorization: Option<String>,
}

impl std::fmt::Debug for AuthServerRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuthServerRequest")
            .field("url", &self.url)
            .field(
                "authorization",
                &self.authorization.as_ref().map(|_| "<redacted>"),
            )
            .finish()
    }
}

/// Builds the request for one account; `account` and `proto` are appended to any query.
pub fn build_request(auth_server: &str, account: &str, proto: Proto) -> Result<AuthServerRequest> {
    let mut url = Url::parse(auth_server).map_err(|_| Error::InvalidUrl {
        what: "authentication server",
    })?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(Error::InvalidUrl {
            what: "authentication server",
        });
    }
    let decode = |s: &str| {
        percent_encoding::percent_decode_str(s)
            .decode_utf8_lossy()
            .into_owned()
    };
    let authorization = (!url.username().is_empty() || url.password().is_some()).then(|| {
        let pair = format!(
            "{}:{}",
            decode(url.username()),
            decode(url.password().unwrap_or_default())
        );
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(pair)
        )
    });
    // Both setters only fail for URLs that cannot have userinfo, which http(s) URLs can.
    let _ = url.set_username("");
    let _ = url.set_password(None);
    url.query_pairs_mut()
        .append_pair("account", account)
        .append_pair("proto", proto.as_str());
    Ok(AuthServerRequest {
        url: url.into(),
        authorization,
    })
}

/// Credentials handed out by the server.
#[derive(Clone, PartialEq, Eq)]
pub enum ServerCredentials {
    AccessToken { user: String, access_token: String },
    Password { user: String, pass: String },
}

impl ServerCredentials {
    pub fn user(&self) -> &str {
        match self {
            ServerCredentials::AccessToken { user, .. }
            | ServerCredentials::Password { user, .. } => user,
        }
    }
}

impl std::fmt::Debug for ServerCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kind = match self {
            ServerCredentials::AccessToken { .. } => "AccessToken",
            ServerCredentials::Password { .. } => "Password",
        };
        f.debug_struct(kind)
            .field("user", &self.user())
            .finish_non_exhaustive()
    }
}

/// Validates the server's answer. Messages never echo values (they are credentials).
pub fn parse_response(status: u16, status_text: &str, body: &[u8]) -> Result<ServerCredentials> {
    if !(200..300).contains(&status) {
        return Err(Error::http(
            format!("Invalid response: {status} {status_text}"),
            status >= 500,
        ));
    }
    let invalid = |why: &str| Error::http(why.to_string(), false);
    let Ok(Value::Object(obj)) = serde_json::from_slice::<Value>(body) else {
        return Err(invalid("\"value\" must be of type object"));
    };
    let text = |key: &str, max: usize| -> Result<Option<String>> {
        match obj.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) if s.chars().count() > max => Err(invalid(&format!(
                "\"{key}\" length must be less than or equal to {max} characters long"
            ))),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(_) => Err(invalid(&format!("\"{key}\" must be a string"))),
        }
    };
    let user = text("user", 256)?
        .filter(|u| !u.is_empty())
        .ok_or_else(|| invalid("\"user\" is required"))?;
    let access_token = text("accessToken", 16384)?.filter(|t| !t.is_empty());
    match access_token {
        Some(access_token) => {
            if !matches!(
                obj.get("pass"),
                None | Some(Value::Null) | Some(Value::Bool(false))
            ) {
                return Err(invalid("\"pass\" must be one of [false, null]"));
            }
            Ok(ServerCredentials::AccessToken { user, access_token })
        }
        None => match obj.get("pass") {
            Some(Value::String(pass)) => Ok(ServerCredentials::Password {
                user,
                pass: pass.clone(),
            }),
            Some(Value::Null | Value::Bool(false)) | None => {
                Err(invalid("\"accessToken\" or \"pass\" is required"))
            }
            Some(_) => Err(invalid("\"pass\" must be a string")),
        },
    }
}

/// Asks the server for one account's credentials.
pub async fn fetch(
    http: &reqwest::Client,
    auth_server: &str,
    account: &str,
    proto: Proto,
) -> Result<ServerCredentials> {
    let request = build_request(auth_server, account, proto)?;
    let mut builder = http.get(&request.url).header("accept", "application/json");
    if let Some(auth) = &request.authorization {
        builder = builder.header("authorization", auth);
    }
    let response = builder
        .send()
        .await
        .map_err(|e| Error::http(e.without_url().to_string(), true))?;
    let status = response.status();
    let body = response
        .bytes()
        .await
        .map_err(|e| Error::http(e.without_url().to_string(), true))?;
    parse_response(
        status.as_u16(),
        status.canonical_reason().unwrap_or_default(),
        &body,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_carries_account_proto_and_basic_auth() {
        let req = build_request(
            "https://svc:p%40ss@auth.example/tokens?team=1",
            "acc one",
            Proto::Smtp,
        )
        .unwrap();
        assert_eq!(
            req.url,
            "https://auth.example/tokens?team=1&account=acc+one&proto=smtp"
        );
        // base64("svc:p@ss")
        assert_eq!(req.authorization.as_deref(), Some("Basic c3ZjOnBAc3M="));
        assert!(!format!("{req:?}").contains("c3Zj"));
        let plain = build_request("http://127.0.0.1:9/t", "a", Proto::Api).unwrap();
        assert_eq!(plain.url, "http://127.0.0.1:9/t?account=a&proto=api");
        assert_eq!(plain.authorization, None);
        assert!(build_request("ftp://x/", "a", Proto::Imap).is_err());
        assert!(build_request("not a url", "a", Proto::Imap).is_err());
    }

    #[test]
    fn responses_are_validated() {
        assert_eq!(
            parse_response(200, "OK", br#"{"user":"u","accessToken":"t","extra":1}"#).unwrap(),
            ServerCredentials::AccessToken {
                user: "u".into(),
                access_token: "t".into()
            }
        );
        assert_eq!(
            parse_response(200, "OK", br#"{"user":"u","pass":"p"}"#).unwrap(),
            ServerCredentials::Password {
                user: "u".into(),
                pass: "p".into()
            }
        );
        let message = |status, body: &[u8]| match parse_response(status, "Not Found", body) {
            Err(e) => e.to_string(),
            Ok(_) => String::new(),
        };
        assert_eq!(message(404, b""), "Invalid response: 404 Not Found");
        assert_eq!(
            message(200, br#"{"accessToken":"t"}"#),
            "\"user\" is required"
        );
        assert_eq!(
            message(
                200,
                br#"{"user":"u","accessToken":"secret-t","pass":"secret-p"}"#
            ),
            "\"pass\" must be one of [false, null]"
        );
        assert_eq!(
            message(200, br#"{"user":"u"}"#),
            "\"accessToken\" or \"pass\" is required"
        );
        assert_eq!(message(200, b"[]"), "\"value\" must be of type object");
        let long = format!(r#"{{"user":"{}","pass":"p"}}"#, "u".repeat(257));
        assert_eq!(
            message(200, long.as_bytes()),
            "\"user\" length must be less than or equal to 256 characters long"
        );
        assert!(
            parse_response(503, "Service Unavailable", b"")
                .unwrap_err()
                .is_transient()
        );
        assert!(
            !format!(
                "{:?}",
                parse_response(200, "OK", br#"{"user":"u","pass":"secret-p"}"#).unwrap()
            )
            .contains("secret")
        );
    }
}
