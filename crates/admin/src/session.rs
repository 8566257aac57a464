//! The admin session and its cookie: what a signed-in (or not yet signed-in) visitor carries,
//! sealed with AES-256-GCM under a key derived from the `cookiePassword` setting, and the cookie
//! attributes it travels with. Pure: no store access, time passed in.

use aes_gcm::aead::{AeadInOut, KeyInit};
use aes_gcm::{Aes256Gcm, Nonce, Tag};
use base64::Engine as _;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// The session cookie's name, as EmailEngine names it.
pub const COOKIE: &str = "ee";

/// How long a session lasts without "remember me" (the cookie itself ends with the browser).
pub const SESSION_TTL_MS: i64 = 12 * 3600 * 1000;
/// How long a "remember me" session lasts.
pub const REMEMBER_TTL_MS: i64 = 30 * 24 * 3600 * 1000;
/// How long a visitor has between the password step and the TOTP step.
pub const PENDING_TOTP_TTL_MS: i64 = 5 * 60 * 1000;

/// How far a visitor has got.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Stage {
    /// Not signed in: the session only carries the CSRF token of the log-in and setup forms.
    Anonymous,
    /// The password was right; the second factor is still due.
    NeedsTotp,
    SignedIn,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Session {
    /// 32 random bytes, hex: names the session (CSRF tokens are bound to it; logging out ends it).
    pub sid: String,
    pub stage: Stage,
    /// `authData.passwordVersion` when the session was made; a bump ends every older session.
    pub password_version: i64,
    /// When the session ends (ms).
    pub expires: i64,
    pub remember: bool,
}

impl Session {
    /// A new anonymous session.
    pub fn anonymous(now_ms: i64) -> Self {
        Self::new(Stage::Anonymous, 0, false, now_ms)
    }

    /// A new session (always a new id, so a visitor's pre-login id never becomes a signed-in
    /// one).
    pub fn new(stage: Stage, password_version: i64, remember: bool, now_ms: i64) -> Self {
        let mut sid = [0u8; 32];
        rand::fill(&mut sid);
        let ttl = match (stage, remember) {
            (Stage::NeedsTotp, _) => PENDING_TOTP_TTL_MS,
            (_, true) => REMEMBER_TTL_MS,
            (_, false) => SESSION_TTL_MS,
        };
        Self {
            sid: hex::encode(sid),
            stage,
            password_version,
            expires: now_ms.saturating_add(ttl),
            remember,
        }
    }

    pub fn is_expired(&self, now_ms: i64) -> bool {
        now_ms >= self.expires
    }
}

/// The keys derived from `cookiePassword`: one seals session cookies, one makes CSRF tokens.
#[derive(Clone)]
pub struct Keys {
    seal: [u8; 32],
    pub(crate) csrf: [u8; 32],
}

impl std::fmt::Debug for Keys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Keys(<secret>)")
    }
}

impl Keys {
    /// Derives both keys; separate labels keep a CSRF token from ever being a sealing key.
    pub fn derive(cookie_password: &str) -> Self {
        let derive = |label: &[u8]| -> [u8; 32] {
            let mut h = Sha256::new();
            h.update(label);
            h.update([0u8]);
            h.update(cookie_password.as_bytes());
            h.finalize().into()
        };
        Self {
            seal: derive(b"emailengine-admin-session"),
            csrf: derive(b"emailengine-admin-csrf"),
        }
    }

    /// `base64url(nonce ‖ tag ‖ ciphertext)` of the session's JSON; the cookie name is bound in
    /// as associated data.
    pub fn seal(&self, session: &Session) -> String {
        let mut nonce = [0u8; 12];
        rand::fill(&mut nonce);
        let mut buffer = serde_json::to_vec(session).unwrap_or_default();
        let cipher = Aes256Gcm::new(&self.seal.into());
        // Encryption only fails for inputs beyond GCM's 64 GiB limit.
        let tag = cipher
            .encrypt_inout_detached(
                &Nonce::from(nonce),
                COOKIE.as_bytes(),
                buffer.as_mut_slice().into(),
            )
            .unwrap_or_default();
        let mut out = Vec::with_capacity(12 + 16 + buffer.len());
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&tag);
        out.extend_from_slice(&buffer);
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(out)
    }

    /// Opens a sealed value; `None` for anything forged, altered, truncated or sealed under
    /// another key.
    pub fn open(&self, sealed: &str) -> Option<Session> {
        let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(sealed)
            .ok()?;
        if bytes.len() < 28 || bytes.len() > 4096 {
            return None;
        }
        let (nonce, rest) = bytes.split_at(12);
        let (tag, ciphertext) = rest.split_at(16);
        let nonce: [u8; 12] = nonce.try_into().ok()?;
        let tag: [u8; 16] = tag.try_into().ok()?;
        let mut buffer = ciphertext.to_vec();
        Aes256Gcm::new(&self.seal.into())
            .decrypt_inout_detached(
                &Nonce::from(nonce),
                COOKIE.as_bytes(),
                buffer.as_mut_slice().into(),
                &Tag::from(tag),
            )
            .ok()?;
        serde_json::from_slice(&buffer).ok()
    }
}

/// The `Set-Cookie` value carrying a sealed session: `Path=/admin`, `HttpOnly`,
/// `SameSite=Lax`, `Secure` when the page was served over https; "remember me" sessions persist
/// in the browser until they expire, others end with it.
pub fn session_cookie(sealed: &str, session: &Session, secure: bool, now_ms: i64) -> String {
    let mut cookie = format!("{COOKIE}={sealed}; HttpOnly; SameSite=Lax");
    if secure {
        cookie.push_str("; Secure");
    }
    cookie.push_str("; Path=/admin");
    if session.remember {
        let secs = (session.expires - now_ms).max(0) / 1000;
        cookie.push_str(&format!("; Max-Age={secs}"));
    }
    cookie
}

/// The `Set-Cookie` value that removes the session cookie.
pub fn removal_cookie(secure: bool) -> String {
    let mut cookie = format!("{COOKIE}=; HttpOnly; SameSite=Lax");
    if secure {
        cookie.push_str("; Secure");
    }
    cookie.push_str("; Path=/admin; Max-Age=0; Expires=Thu, 01 Jan 1970 00:00:00 GMT");
    cookie
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Session {
        Session {
            sid: "ab".repeat(32),
            stage: Stage::SignedIn,
            password_version: 1_700_000_000_000,
            expires: 1_700_000_100_000,
            remember: false,
        }
    }

    #[test]
    fn seal_round_trip() {
        let keys = Keys::derive("cookie password");
        let sealed = keys.seal(&sample());
        assert_eq!(keys.open(&sealed), Some(sample()));
        // A fresh nonce each time: the same session never seals to the same text.
        assert_ne!(keys.seal(&sample()), sealed);
    }

    #[test]
    fn tampering_and_other_keys_are_refused() {
        let keys = Keys::derive("cookie password");
        let sealed = keys.seal(&sample());
        assert_eq!(Keys::derive("another password").open(&sealed), None);
        let mut bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(&sealed)
            .unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 1;
        let altered = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&bytes);
        assert_eq!(keys.open(&altered), None);
        assert_eq!(keys.open(&sealed[..20]), None);
        assert_eq!(keys.open("not base64 !"), None);
        assert_eq!(keys.open(""), None);
    }

    #[test]
    fn sealed_json_is_not_readable() {
        let keys = Keys::derive("cookie password");
        let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(keys.seal(&sample()))
            .unwrap();
        assert!(!String::from_utf8_lossy(&bytes).contains("signedIn"));
        // nonce (12) + tag (16) + the JSON's length.
        assert_eq!(
            bytes.len(),
            28 + serde_json::to_vec(&sample()).unwrap().len()
        );
    }

    #[test]
    fn lifetimes() {
        let now = 1_000_000;
        assert_eq!(
            Session::new(Stage::SignedIn, 5, false, now).expires,
            now + 12 * 3600 * 1000
        );
        assert_eq!(
            Session::new(Stage::SignedIn, 5, true, now).expires,
            now + 30 * 24 * 3600 * 1000
        );
        assert_eq!(
            Session::new(Stage::NeedsTotp, 5, true, now).expires,
            now + 300_000
        );
        let s = Session::anonymous(now);
        assert_eq!(s.sid.len(), 64);
        assert_ne!(s.sid, Session::anonymous(now).sid);
        assert!(!s.is_expired(s.expires - 1));
        assert!(s.is_expired(s.expires));
    }

    #[test]
    fn cookie_flags() {
        let session = sample();
        let c = session_cookie("v", &session, false, 0);
        assert_eq!(c, "ee=v; HttpOnly; SameSite=Lax; Path=/admin");
        let c = session_cookie("v", &session, true, 0);
        assert_eq!(c, "ee=v; HttpOnly; SameSite=Lax; Secure; Path=/admin");
        let remembered = Session {
            remember: true,
            expires: 90_000,
            ..sample()
        };
        let c = session_cookie("v", &remembered, true, 0);
        assert_eq!(
            c,
            "ee=v; HttpOnly; SameSite=Lax; Secure; Path=/admin; Max-Age=90"
        );
        assert_eq!(
            removal_cookie(false),
            "ee=; HttpOnly; SameSite=Lax; Path=/admin; Max-Age=0; Expires=Thu, 01 Jan 1970 00:00:00 GMT"
        );
    }
}
