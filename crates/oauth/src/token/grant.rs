//! A successful token response (RFC 6749 §5.1) in the form the rest of the server stores:
//! absolute expiry, scopes split, and the ID token's claims when the server sent one.

use base64::Engine as _;
use serde_json::{Map, Value};

/// Lifetime assumed when a server leaves out `expires_in` (RFC 6749 makes it optional).
pub const DEFAULT_EXPIRES_IN_SECS: i64 = 3600;

#[derive(Clone, PartialEq)]
pub struct TokenGrant {
    pub access_token: String,
    /// Milliseconds since the epoch.
    pub expires_at_ms: i64,
    /// Present when the server issued (or rotated) a refresh token.
    pub refresh_token: Option<String>,
    /// The granted scopes; empty when the response did not say.
    pub scope: Vec<String>,
    pub token_type: String,
    /// Claims of the ID token. Its signature is not checked: the token came straight from the
    /// token endpoint over TLS, which OpenID Connect Core §3.1.3.7 accepts as proof of origin.
    pub id_token_claims: Option<Map<String, Value>>,
}

impl std::fmt::Debug for TokenGrant {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenGrant")
            .field("access_token", &"<redacted>")
            .field("expires_at_ms", &self.expires_at_ms)
            .field(
                "refresh_token",
                &self.refresh_token.as_ref().map(|_| "<redacted>"),
            )
            .field("scope", &self.scope)
            .field("token_type", &self.token_type)
            .field("id_token_claims", &self.id_token_claims.is_some())
            .finish()
    }
}

impl TokenGrant {
    /// Reads a token response received at `now_ms`; `None` without an `access_token`.
    pub fn from_response(body: &Value, now_ms: i64) -> Option<Self> {
        let text = |k: &str| {
            body.get(k)
                .and_then(Value::as_str)
                .filter(|s| !s.is_empty())
                .map(str::to_string)
        };
        let access_token = text("access_token")?;
        // Some servers send the lifetime as a string.
        let expires_in = match body.get("expires_in") {
            Some(Value::Number(n)) => n.as_f64().map(|f| f as i64),
            Some(Value::String(s)) => s.trim().parse::<i64>().ok(),
            _ => None,
        }
        .unwrap_or(DEFAULT_EXPIRES_IN_SECS);
        Some(Self {
            access_token,
            expires_at_ms: now_ms.saturating_add(expires_in.saturating_mul(1000)),
            refresh_token: text("refresh_token"),
            scope: text("scope")
                .map(|s| s.split_whitespace().map(str::to_string).collect())
                .unwrap_or_default(),
            token_type: text("token_type").unwrap_or_else(|| "Bearer".into()),
            id_token_claims: text("id_token").and_then(|t| jwt_claims(&t)),
        })
    }
}

/// The payload of a compact JWT, unverified.
pub(crate) fn jwt_claims(jwt: &str) -> Option<Map<String, Value>> {
    let payload = jwt.split('.').nth(1)?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload.trim_end_matches('='))
        .ok()?;
    match serde_json::from_slice(&bytes).ok()? {
        Value::Object(map) => Some(map),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn reads_a_full_response() {
        // An ID token from oidc-provider: {"sub":"alice@example.com","aud":"emailengine-test",...}
        let id_token = "eyJhbGciOiJSUzI1NiIsImtpZCI6InRlc3QifQ.eyJzdWIiOiJhbGljZUBleGFtcGxlLmNvbSIsImF1ZCI6ImVtYWlsZW5naW5lLXRlc3QiLCJleHAiOjE3OTYxNTk0NjIsImlhdCI6MTc5NjE1NTg2MiwiaXNzIjoiaHR0cDovLzEyNy4wLjAuMTo5OTExIn0.sig";
        let grant = TokenGrant::from_response(
            &json!({"access_token": "at", "expires_in": 60, "refresh_token": "rt",
                "scope": "openid offline_access  mail", "token_type": "Bearer",
                "id_token": id_token}),
            1_000_000,
        )
        .unwrap();
        assert_eq!(grant.access_token, "at");
        assert_eq!(grant.expires_at_ms, 1_060_000);
        assert_eq!(grant.refresh_token.as_deref(), Some("rt"));
        assert_eq!(grant.scope, ["openid", "offline_access", "mail"]);
        let claims = grant.id_token_claims.unwrap();
        assert_eq!(claims["sub"], "alice@example.com");
        assert_eq!(claims["aud"], "emailengine-test");
    }

    #[test]
    fn defaults_and_missing_tokens() {
        let grant =
            TokenGrant::from_response(&json!({"access_token": "at", "expires_in": "3599"}), 0)
                .unwrap();
        assert_eq!(grant.expires_at_ms, 3_599_000);
        assert_eq!(grant.token_type, "Bearer");
        assert!(grant.scope.is_empty() && grant.refresh_token.is_none());
        let grant = TokenGrant::from_response(&json!({"access_token": "at"}), 5).unwrap();
        assert_eq!(grant.expires_at_ms, 3_600_005);
        assert_eq!(
            TokenGrant::from_response(&json!({"access_token": ""}), 0),
            None
        );
        assert_eq!(TokenGrant::from_response(&json!({"error": "x"}), 0), None);
        assert_eq!(jwt_claims("only-one-part"), None);
        assert_eq!(jwt_claims("a.bm90IGpzb24.c"), None);
    }

    #[test]
    fn debug_hides_tokens() {
        let grant = TokenGrant::from_response(
            &json!({"access_token": "secret-at", "refresh_token": "secret-rt"}),
            0,
        )
        .unwrap();
        let text = format!("{grant:?}");
        assert!(!text.contains("secret"), "{text}");
    }
}
