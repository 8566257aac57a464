//! When an account's token must be renewed and how a renewal is stored (spec §15.1, §15.2),
//! over the account's `oauth2` JSON object: `accessToken`/`refreshToken` top level and
//! `$wd01$`-sealed, `expires`/`generated` as ISO times. The same rules for the app-level token
//! of service and Pub/Sub apps. Pure: the caller holds the renewal lock and does the request.

use emailengine_core::account::{decrypt_secrets, encrypt_secrets};
use emailengine_core::secret::FieldCipher;
use emailengine_core::units::{iso_time, parse_iso_time};
use serde_json::{Map, Value};

use crate::app::OAuthApp;
use crate::token::TokenGrant;

/// A token that expires sooner than this is renewed before use.
pub const REFRESH_MARGIN_MS: i64 = 30_000;

/// How far back `expires` is set when a server rejects a token as unusable.
const INVALIDATE_BACK_MS: i64 = 24 * 3600 * 1000;

/// True when the stored token is missing, has no readable expiry, or expires within 30 s.
pub fn needs_refresh(oauth2: &Value, now_ms: i64) -> bool {
    let has_token = oauth2
        .get("accessToken")
        .and_then(Value::as_str)
        .is_some_and(|t| !t.is_empty());
    let expires = oauth2
        .get("expires")
        .and_then(Value::as_str)
        .and_then(parse_iso_time);
    match (has_token, expires) {
        (true, Some(e)) => e < now_ms.saturating_add(REFRESH_MARGIN_MS),
        _ => true,
    }
}

/// Stores a renewal in the account's `oauth2` object: `accessToken`, `expires`, `generated`,
/// `tokenType`; `refreshToken` + `refreshTokenGenerated` when the server rotated it; `scope`
/// when the server named scopes. `userFlag` is cleared. Tokens are sealed with `cipher`.
pub fn apply_grant(
    oauth2: &mut Value,
    grant: &TokenGrant,
    now_ms: i64,
    cipher: Option<&FieldCipher>,
) {
    if !oauth2.is_object() {
        *oauth2 = Value::Object(Map::new());
    }
    let Value::Object(obj) = oauth2 else { return };
    let now = iso_time(now_ms).map_or(Value::Null, Value::String);
    obj.insert(
        "accessToken".into(),
        Value::from(grant.access_token.as_str()),
    );
    obj.insert(
        "expires".into(),
        iso_time(grant.expires_at_ms).map_or(Value::Null, Value::String),
    );
    obj.insert("generated".into(), now.clone());
    if let Some(rt) = &grant.refresh_token {
        obj.insert("refreshToken".into(), Value::from(rt.as_str()));
        obj.insert("refreshTokenGenerated".into(), now);
    }
    if !grant.scope.is_empty() {
        obj.insert("scope".into(), Value::from(grant.scope.clone()));
    }
    obj.insert("tokenType".into(), Value::from(grant.token_type.as_str()));
    obj.remove("userFlag");
    encrypt_secrets(oauth2, cipher);
}

/// Moves `expires` a day back so the next use renews the token (after an IMAP server said
/// `invalid_request` to it).
pub fn invalidate_access_token(oauth2: &mut Value, now_ms: i64) {
    if let Value::Object(obj) = oauth2
        && let Some(t) = iso_time(now_ms - INVALIDATE_BACK_MS)
    {
        obj.insert("expires".into(), Value::String(t));
    }
}

/// The tokens of an `oauth2` object, opened.
#[derive(Clone, PartialEq, Eq)]
pub struct StoredTokens {
    pub access_token: Option<String>,
    pub refresh_token: Option<String>,
    pub expires_ms: Option<i64>,
}

impl std::fmt::Debug for StoredTokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let redact = |s: &Option<String>| s.as_ref().map(|_| "<redacted>");
        f.debug_struct("StoredTokens")
            .field("access_token", &redact(&self.access_token))
            .field("refresh_token", &redact(&self.refresh_token))
            .field("expires_ms", &self.expires_ms)
            .finish()
    }
}

/// Reads and decrypts the tokens of an `oauth2` object (top level, or under `auth`).
pub fn stored_tokens(
    oauth2: &Value,
    cipher: Option<&FieldCipher>,
) -> Result<StoredTokens, emailengine_core::Error> {
    let mut open = oauth2.clone();
    decrypt_secrets(&mut open, cipher)?;
    let text = |k: &str| {
        open.get(k)
            .or_else(|| open.get("auth").and_then(|a| a.get(k)))
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .map(str::to_string)
    };
    Ok(StoredTokens {
        access_token: text("accessToken"),
        refresh_token: text("refreshToken"),
        expires_ms: open
            .get("expires")
            .and_then(Value::as_str)
            .and_then(parse_iso_time),
    })
}

/// True when a service or Pub/Sub app's cached token must be renewed (same 30 s margin).
pub fn app_needs_refresh(app: &OAuthApp, now_ms: i64) -> bool {
    match (&app.access_token, app.access_token_expires) {
        (Some(t), Some(e)) if !t.is_empty() => e < now_ms.saturating_add(REFRESH_MARGIN_MS),
        _ => true,
    }
}

/// Caches an app-level token in the app record (sealed when the record is encoded).
pub fn apply_app_grant(app: &mut OAuthApp, grant: &TokenGrant) {
    app.access_token = Some(grant.access_token.clone());
    app.access_token_expires = Some(grant.expires_at_ms);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::app::Provider;
    use serde_json::json;

    const NOW: i64 = 1_700_000_000_000;

    fn grant(refresh: Option<&str>, scope: &[&str]) -> TokenGrant {
        TokenGrant::from_response(
            &json!({"access_token": "new-at", "expires_in": 3600, "refresh_token": refresh,
                "scope": scope.join(" "), "token_type": "Bearer"}),
            NOW,
        )
        .unwrap()
    }

    #[test]
    fn refresh_decision() {
        let at = |expires: &str| json!({"accessToken": "t", "expires": expires});
        assert!(needs_refresh(&json!({}), NOW));
        assert!(needs_refresh(&json!({"accessToken": "t"}), NOW));
        assert!(needs_refresh(
            &json!({"accessToken": "", "expires": "2099-01-01T00:00:00Z"}),
            NOW
        ));
        assert!(needs_refresh(&at("not a date"), NOW));
        // NOW is 2023-11-14T22:13:20.000Z.
        assert!(needs_refresh(&at("2023-11-14T22:13:49.999Z"), NOW));
        assert!(!needs_refresh(&at("2023-11-14T22:13:50.000Z"), NOW));
        assert!(!needs_refresh(&at("2023-11-14T23:13:20.000Z"), NOW));
    }

    #[test]
    fn grant_is_merged_and_sealed() {
        let cipher = FieldCipher::new("secret");
        let mut oauth2 = json!({"provider": "AAABhaBPHscAAAAH", "auth": {"user": "ann@example.com"},
            "accessToken": "old", "refreshToken": "rt-1", "expires": "2023-01-01T00:00:00.000Z",
            "scope": ["a"], "userFlag": {"message": "x"}});
        apply_grant(&mut oauth2, &grant(None, &[]), NOW, Some(&cipher));
        assert_eq!(oauth2["expires"], "2023-11-14T23:13:20.000Z");
        assert_eq!(oauth2["generated"], "2023-11-14T22:13:20.000Z");
        assert_eq!(
            oauth2["scope"],
            json!(["a"]),
            "no scope in the answer keeps the old one"
        );
        assert_eq!(oauth2["tokenType"], "Bearer");
        assert!(oauth2.get("userFlag").is_none());
        assert!(oauth2.get("refreshTokenGenerated").is_none());
        assert!(
            oauth2["accessToken"]
                .as_str()
                .unwrap()
                .starts_with("$wd01$")
        );
        assert!(
            oauth2["refreshToken"]
                .as_str()
                .unwrap()
                .starts_with("$wd01$")
        );
        let tokens = stored_tokens(&oauth2, Some(&cipher)).unwrap();
        assert_eq!(tokens.access_token.as_deref(), Some("new-at"));
        assert_eq!(tokens.refresh_token.as_deref(), Some("rt-1"));
        assert_eq!(tokens.expires_ms, Some(NOW + 3_600_000));
        assert!(stored_tokens(&oauth2, None).is_err());

        apply_grant(
            &mut oauth2,
            &grant(Some("rt-2"), &["openid", "mail"]),
            NOW,
            Some(&cipher),
        );
        assert_eq!(oauth2["refreshTokenGenerated"], "2023-11-14T22:13:20.000Z");
        assert_eq!(oauth2["scope"], json!(["openid", "mail"]));
        let tokens = stored_tokens(&oauth2, Some(&cipher)).unwrap();
        assert_eq!(tokens.refresh_token.as_deref(), Some("rt-2"));
        assert_eq!(oauth2["auth"], json!({"user": "ann@example.com"}));
    }

    #[test]
    fn cleartext_without_a_cipher_and_invalidation() {
        let mut oauth2 = Value::Null;
        apply_grant(&mut oauth2, &grant(Some("rt"), &[]), NOW, None);
        assert_eq!(oauth2["accessToken"], "new-at");
        assert_eq!(oauth2["refreshToken"], "rt");
        assert!(!needs_refresh(&oauth2, NOW));
        invalidate_access_token(&mut oauth2, NOW);
        assert_eq!(oauth2["expires"], "2023-11-13T22:13:20.000Z");
        assert!(needs_refresh(&oauth2, NOW));
        assert!(!format!("{:?}", stored_tokens(&oauth2, None).unwrap()).contains("new-at"));
    }

    #[test]
    fn app_level_tokens() {
        let mut app = OAuthApp::new(Provider::OutlookService);
        assert!(app_needs_refresh(&app, NOW));
        apply_app_grant(&mut app, &grant(None, &[]));
        assert!(!app_needs_refresh(&app, NOW));
        assert!(app_needs_refresh(
            &app,
            NOW + 3_600_000 - REFRESH_MARGIN_MS + 1
        ));
    }
}
