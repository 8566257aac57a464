//! EmailEngine licence keys, as this server treats them: accepted, kept and reported, never
//! checked against a vendor and never a reason to limit anything (this server needs none).

use serde_json::{Value, json};
use sha2::{Digest, Sha256};

/// The raw `settings` field holding the licence key text, as EmailEngine keeps it. An empty
/// value means no key.
pub const LICENSE_KEY_FIELD: &str = "license";

/// The longest licence text accepted (EmailEngine keys are a few hundred bytes).
pub const MAX_LICENSE_LEN: usize = 10 * 1024;

/// Why a submitted licence text is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LicenseError {
    #[error("license key is empty")]
    Empty,
    #[error("license key is longer than {MAX_LICENSE_LEN} characters")]
    TooLong,
}

/// A licence key as stored: its text, trimmed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct License(String);

impl License {
    pub fn parse(text: &str) -> Result<Self, LicenseError> {
        let text = text.trim();
        if text.is_empty() {
            return Err(LicenseError::Empty);
        }
        if text.chars().count() > MAX_LICENSE_LEN {
            return Err(LicenseError::TooLong);
        }
        Ok(Self(text.to_string()))
    }

    pub fn text(&self) -> &str {
        &self.0
    }

    /// A short, stable name for the key (the key text itself is not echoed back).
    pub fn fingerprint(&self) -> String {
        hex::encode(&Sha256::digest(self.0.as_bytes())[..8])
    }
}

/// What `GET /v1/license` reports: the stored key, or that none is stored. Either way
/// everything works.
pub fn describe(license: Option<&License>) -> Value {
    match license {
        Some(l) => json!({
            "active": true,
            "type": "EmailEngine License",
            "details": {"key": l.fingerprint()},
            "suspended": false,
        }),
        None => json!({
            "active": false,
            "type": "MIT OR Apache-2.0",
            "details": false,
            "suspended": false,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_kept_and_described() {
        let l = License::parse("  -----BEGIN LICENSE-----\nabc\n-----END LICENSE-----\n").unwrap();
        assert_eq!(
            l.text(),
            "-----BEGIN LICENSE-----\nabc\n-----END LICENSE-----"
        );
        assert_eq!(l.fingerprint().len(), 16);
        assert_eq!(
            describe(Some(&l)),
            json!({"active": true, "type": "EmailEngine License",
                "details": {"key": l.fingerprint()}, "suspended": false})
        );
        assert_eq!(describe(None)["active"], false);
        assert_eq!(License::parse(" \n"), Err(LicenseError::Empty));
        assert_eq!(
            License::parse(&"a".repeat(MAX_LICENSE_LEN + 1)),
            Err(LicenseError::TooLong)
        );
    }
}
