//! The SASL initial responses that log in with an OAuth2 token (spec §15.4): OAUTHBEARER
//! (RFC 7628) and Google's XOAUTH2, base64 as sent after `AUTHENTICATE <mech>` / `AUTH XOAUTH2`;
//! the choice of mechanism from a server's capabilities; and the error challenge a server
//! sends before failing. The strings contain the token: send them, never log them.

use base64::Engine as _;
use serde_json::Value;

use crate::app::SaslMechanism;

/// The client's answer to an OAUTHBEARER error challenge: a lone `^A`, which ends the exchange.
pub const OAUTHBEARER_ABORT: &str = "AQ==";

/// `base64("n,a=U," ^A "host=H" ^A "port=P" ^A "auth=Bearer T" ^A ^A)`
pub fn oauthbearer(user: &str, host: &str, port: u16, token: &str) -> String {
    let raw = format!("n,a={user},\x01host={host}\x01port={port}\x01auth=Bearer {token}\x01\x01");
    base64::engine::general_purpose::STANDARD.encode(raw)
}

/// `base64("user=U" ^A "auth=Bearer T" ^A ^A)`, for IMAP and SMTP alike.
pub fn xoauth2(user: &str, token: &str) -> String {
    let raw = format!("user={user}\x01auth=Bearer {token}\x01\x01");
    base64::engine::general_purpose::STANDARD.encode(raw)
}

/// The IMAP mechanism to use: OAUTHBEARER when advertised, else XOAUTH2 (or the older
/// `XOAUTH` name); a mechanism the app forces is used only when advertised. `capabilities` are
/// the server's capability atoms (`AUTH=XOAUTH2`, ...), in any case.
pub fn choose_imap_mechanism(
    capabilities: &[&str],
    forced: Option<SaslMechanism>,
) -> Option<SaslMechanism> {
    let has = |name: &str| {
        capabilities
            .iter()
            .any(|c| c.eq_ignore_ascii_case(&format!("AUTH={name}")))
    };
    let oauthbearer = has("OAUTHBEARER");
    let xoauth2 = has("XOAUTH2") || has("XOAUTH");
    match forced {
        Some(SaslMechanism::OAuthBearer) => oauthbearer.then_some(SaslMechanism::OAuthBearer),
        Some(SaslMechanism::XOAuth2) => xoauth2.then_some(SaslMechanism::XOAuth2),
        None if oauthbearer => Some(SaslMechanism::OAuthBearer),
        None if xoauth2 => Some(SaslMechanism::XOAuth2),
        None => None,
    }
}

/// The error a server explains in a `+ <base64 JSON>` continuation (RFC 7628 §3.2.2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BearerChallenge {
    /// `invalid_token`, `invalid_request`, `insufficient_scope`, or an HTTP status as text.
    pub status: String,
    pub scope: Option<String>,
    pub openid_configuration: Option<String>,
}

impl BearerChallenge {
    /// `invalid_request` means the token itself was unusable: the stored expiry is reset so
    /// the next connection refreshes first (spec §15.2).
    pub fn invalidates_token(&self) -> bool {
        self.status == "invalid_request"
    }
}

/// Reads the base64 text of an error continuation; `None` when it is not such a challenge.
pub fn parse_challenge(base64_text: &str) -> Option<BearerChallenge> {
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(base64_text.trim())
        .ok()?;
    let value: Value = serde_json::from_slice(&bytes).ok()?;
    let text = |k: &str| value.get(k).and_then(Value::as_str).map(str::to_string);
    Some(BearerChallenge {
        status: text("status")?,
        scope: text("scope"),
        openid_configuration: text("openid-configuration"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decoded(b64: &str) -> String {
        String::from_utf8(
            base64::engine::general_purpose::STANDARD
                .decode(b64)
                .unwrap(),
        )
        .unwrap()
    }

    #[test]
    fn oauthbearer_golden() {
        let s = oauthbearer("ann@example.com", "imap.example.com", 993, "ya29.tok");
        assert_eq!(
            s,
            "bixhPWFubkBleGFtcGxlLmNvbSwBaG9zdD1pbWFwLmV4YW1wbGUuY29tAXBvcnQ9OTkzAWF1dGg9QmVhcmVyIHlhMjkudG9rAQE="
        );
        assert_eq!(
            decoded(&s),
            "n,a=ann@example.com,\u{1}host=imap.example.com\u{1}port=993\u{1}auth=Bearer ya29.tok\u{1}\u{1}"
        );
    }

    #[test]
    fn xoauth2_golden() {
        // The example of Google's XOAUTH2 documentation.
        assert_eq!(
            xoauth2(
                "someuser@example.com",
                "ya29.vF9dft4qmTc2Nvb3RlckBhdHRhdmlzdGEuY29tCg"
            ),
            "dXNlcj1zb21ldXNlckBleGFtcGxlLmNvbQFhdXRoPUJlYXJlciB5YTI5LnZGOWRmdDRxbVRjMk52YjNSbGNrQmhkSFJoZG1semRHRXVZMjl0Q2cBAQ=="
        );
        assert_eq!(decoded(OAUTHBEARER_ABORT), "\u{1}");
    }

    #[test]
    fn mechanism_choice() {
        let both = ["IMAP4rev1", "AUTH=XOAUTH2", "auth=oauthbearer"];
        assert_eq!(
            choose_imap_mechanism(&both, None),
            Some(SaslMechanism::OAuthBearer)
        );
        assert_eq!(
            choose_imap_mechanism(&both, Some(SaslMechanism::XOAuth2)),
            Some(SaslMechanism::XOAuth2)
        );
        assert_eq!(
            choose_imap_mechanism(&["AUTH=XOAUTH"], None),
            Some(SaslMechanism::XOAuth2)
        );
        assert_eq!(
            choose_imap_mechanism(&["AUTH=XOAUTH2"], Some(SaslMechanism::OAuthBearer)),
            None
        );
        assert_eq!(choose_imap_mechanism(&["AUTH=PLAIN"], None), None);
    }

    #[test]
    fn challenges_from_dovecot() {
        // What Dovecot 2.3 sent for a revoked token and for an expired one (see oauthenv.sh).
        let revoked =
            parse_challenge("eyJzdGF0dXMiOiI0MDEiLCJzY2hlbWVzIjoiYmVhcmVyIiwic2NvcGUiOiJtYWlsIn0=")
                .unwrap();
        assert_eq!(revoked.status, "401");
        assert_eq!(revoked.scope.as_deref(), Some("mail"));
        let expired = parse_challenge("eyJzdGF0dXMiOiJpbnZhbGlkX3Rva2VuIn0=").unwrap();
        assert_eq!(expired.status, "invalid_token");
        assert!(!expired.invalidates_token());
        let bad_request = parse_challenge(
            &base64::engine::general_purpose::STANDARD.encode(r#"{"status":"invalid_request"}"#),
        )
        .unwrap();
        assert!(bad_request.invalidates_token());
        assert_eq!(parse_challenge("not base64!"), None);
        assert_eq!(
            parse_challenge("e30="),
            None,
            "an empty object has no status"
        );
    }
}
