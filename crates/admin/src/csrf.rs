//! Cross-site request forgery defences for every state-changing admin request: a token bound to
//! the session (HMAC of its id, so another session's token never fits) that each form carries,
//! and a check that the request's `Origin` (or, failing that, `Referer`) is this server.
//! Pure functions; the middleware in [`crate::guard`] applies them to every POST.

use hmac::{KeyInit, Mac};
use subtle::ConstantTimeEq;

use crate::session::Keys;

/// The form field that carries the token.
pub const FIELD: &str = "csrf";

/// The CSRF token of a session: hex HMAC-SHA256 of its id under the CSRF key.
pub fn token(keys: &Keys, sid: &str) -> String {
    hex::encode(mac(keys, sid))
}

fn mac(keys: &Keys, sid: &str) -> [u8; 32] {
    let mut m = <hmac::Hmac<sha2::Sha256> as KeyInit>::new_from_slice(&keys.csrf)
        .expect("HMAC takes keys of any length");
    m.update(b"csrf\0");
    m.update(sid.as_bytes());
    m.finalize().into_bytes().into()
}

/// Whether `presented` is the token of session `sid` (constant time).
pub fn verify(keys: &Keys, sid: &str, presented: &str) -> bool {
    let Ok(bytes) = hex::decode(presented.trim()) else {
        return false;
    };
    bytes.ct_eq(&mac(keys, sid)).into()
}

/// The origin of a URL: `scheme://host[:port]`, lower-case, default ports dropped.
pub fn origin_of(url: &str) -> Option<String> {
    let parsed = url::Url::parse(url).ok()?;
    match parsed.origin() {
        url::Origin::Tuple(..) => Some(parsed.origin().ascii_serialization()),
        url::Origin::Opaque(_) => None,
    }
}

/// Whether a request comes from one of `allowed` origins: its `Origin` header when present
/// (browsers send it on every form POST), else its `Referer`. A request with neither is
/// refused, so a stripped header cannot open the door.
pub fn same_origin(origin: Option<&str>, referer: Option<&str>, allowed: &[String]) -> bool {
    let claimed = match (origin, referer) {
        (Some(o), _) if o != "null" => origin_of(o),
        (Some(_), _) => None,
        (None, Some(r)) => origin_of(r),
        (None, None) => None,
    };
    claimed.is_some_and(|c| allowed.contains(&c))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_bound_to_their_session() {
        let keys = Keys::derive("pw");
        let a = "aa".repeat(32);
        let b = "bb".repeat(32);
        let ta = token(&keys, &a);
        assert_eq!(ta.len(), 64);
        assert_eq!(ta, token(&keys, &a));
        assert!(verify(&keys, &a, &ta));
        assert!(!verify(&keys, &b, &ta), "another session's token");
        assert!(!verify(&keys, &a, &token(&Keys::derive("other"), &a)));
        assert!(!verify(&keys, &a, ""));
        assert!(!verify(&keys, &a, "zz"));
        assert!(!verify(&keys, &a, &ta[..62]));
    }

    #[test]
    fn golden_token() {
        // HMAC-SHA256(key = SHA-256("emailengine-admin-csrf\0pw"), "csrf\0" ‖ sid).
        let keys = Keys::derive("pw");
        let expected = {
            use sha2::Digest;
            let key = sha2::Sha256::digest(b"emailengine-admin-csrf\0pw");
            let mut m = <hmac::Hmac<sha2::Sha256> as KeyInit>::new_from_slice(&key).unwrap();
            m.update(b"csrf\0sid");
            hex::encode(m.finalize().into_bytes())
        };
        assert_eq!(token(&keys, "sid"), expected);
    }

    #[test]
    fn origins() {
        let allowed = vec!["http://127.0.0.1:3000".to_string()];
        assert!(same_origin(Some("http://127.0.0.1:3000"), None, &allowed));
        assert!(same_origin(
            None,
            Some("http://127.0.0.1:3000/admin/tokens?x=1"),
            &allowed
        ));
        assert!(!same_origin(Some("http://evil.example"), None, &allowed));
        // Origin wins over a matching Referer.
        assert!(!same_origin(
            Some("http://evil.example"),
            Some("http://127.0.0.1:3000/admin"),
            &allowed
        ));
        assert!(!same_origin(Some("null"), None, &allowed));
        assert!(!same_origin(None, None, &allowed));
        assert!(!same_origin(Some("http://127.0.0.1:3001"), None, &allowed));
        assert!(!same_origin(Some("https://127.0.0.1:3000"), None, &allowed));
        assert_eq!(
            origin_of("HTTPS://Example.COM:443/x").as_deref(),
            Some("https://example.com")
        );
        assert_eq!(origin_of("data:text/plain,x"), None);
    }
}
