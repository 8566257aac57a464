//! The signed `data`/`sig` pair that EmailEngine puts into public links (spec §16.2): tracking
//! redirects and open pixels, unsubscribe links and hosted-authentication forms. `data` carries
//! the exact JSON bytes, `sig` their HMAC-SHA256 under the `serviceSecret` setting.
//!
//! Only the codec lives here; what a blob must contain, expiry and nonces belong to the callers.

use base64::Engine as _;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;
use thiserror::Error;

const ENCODE: GeneralPurpose = base64::engine::general_purpose::URL_SAFE_NO_PAD;

/// Accepts what Node's `base64url` decoder accepts in practice: stray bits in the last
/// character (padding is stripped before decoding).
const DECODE: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::URL_SAFE,
    GeneralPurposeConfig::new()
        .with_decode_padding_mode(DecodePaddingMode::RequireNone)
        .with_decode_allow_trailing_bits(true),
);

/// Why a signed pair was refused.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum SignedError {
    /// `data` or `sig` is not base64, or the signature does not match.
    #[error("Signature validation failed")]
    Signature,
    /// Correctly signed bytes that are not JSON (only a holder of the secret can produce these).
    #[error("Signed data is not JSON")]
    NotJson,
}

/// A signed blob as it goes into a link's query string.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedData {
    /// base64url (no padding) of the JSON bytes.
    pub data: String,
    /// base64url (no padding) of HMAC-SHA256(secret, JSON bytes).
    pub sig: String,
}

impl SignedData {
    /// `data=<data>&sig=<sig>`; both parts are URL-safe as they are.
    pub fn query(&self) -> String {
        format!("data={}&sig={}", self.data, self.sig)
    }
}

/// Signs `payload` serialised as compact JSON with its keys in the order they were inserted.
pub fn sign(secret: &[u8], payload: &serde_json::Value) -> SignedData {
    let json = payload.to_string();
    SignedData {
        data: ENCODE.encode(json.as_bytes()),
        sig: ENCODE.encode(mac(secret, json.as_bytes())),
    }
}

/// Checks `sig` against `data` in constant time and returns the JSON `data` carries.
pub fn verify(secret: &[u8], data: &str, sig: &str) -> Result<serde_json::Value, SignedError> {
    let bytes = decode_lenient(data).ok_or(SignedError::Signature)?;
    let given = decode_lenient(sig).ok_or(SignedError::Signature)?;
    let expected = mac(secret, &bytes);
    if !bool::from(given.ct_eq(&expected)) {
        return Err(SignedError::Signature);
    }
    serde_json::from_slice(&bytes).map_err(|_| SignedError::NotJson)
}

fn mac(secret: &[u8], message: &[u8]) -> [u8; 32] {
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(secret)
        .expect("HMAC hashes long keys and pads short ones, so it takes keys of every length");
    mac.update(message);
    mac.finalize().into_bytes().into()
}

/// Decodes base64 in either alphabet, with or without padding, ignoring whitespace.
fn decode_lenient(text: &str) -> Option<Vec<u8>> {
    let cleaned: Vec<u8> = text
        .trim_end_matches(|c: char| c == '=' || c.is_ascii_whitespace())
        .bytes()
        .filter(|b| !b.is_ascii_whitespace())
        .map(|b| match b {
            b'+' => b'-',
            b'/' => b'_',
            b => b,
        })
        .collect();
    DECODE.decode(cleaned).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    // Vectors computed with Python's `hmac` and `base64` modules.
    const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef";
    const CLICK_DATA: &str = "eyJhY3QiOiJjbGljayIsInVybCI6Imh0dHBzOi8vZXhhbXBsZS5jb20vP2E9MSZiPTIiLCJhY2MiOiJleGFtcGxlIiwibXNnIjoiPHRlc3RAZXhhbXBsZS5jb20-In0";
    const CLICK_SIG: &str = "Mtr8eQDqtHS_Ew4vRwk2yuOPo2PGAlm6BAIJ-G3Idxo";

    fn click() -> serde_json::Value {
        json!({"act": "click", "url": "https://example.com/?a=1&b=2", "acc": "example", "msg": "<test@example.com>"})
    }

    #[test]
    fn signs_like_python_hmac() {
        let signed = sign(SECRET, &click());
        assert_eq!(signed.data, CLICK_DATA);
        assert_eq!(signed.sig, CLICK_SIG);
        assert_eq!(signed.query(), format!("data={CLICK_DATA}&sig={CLICK_SIG}"));

        let open = sign(
            SECRET,
            &json!({"act": "open", "acc": "example", "msg": "<test@example.com>"}),
        );
        assert_eq!(
            open.data,
            "eyJhY3QiOiJvcGVuIiwiYWNjIjoiZXhhbXBsZSIsIm1zZyI6Ijx0ZXN0QGV4YW1wbGUuY29tPiJ9"
        );
        assert_eq!(open.sig, "fUzm4AkA4EXknFGRyFSweuzATmBNSdNRtFt1hJ3NUCY");
    }

    #[test]
    fn non_ascii_is_signed_as_utf8() {
        let signed = sign(SECRET, &json!({"n": "õ€", "t": 1}));
        assert_eq!(signed.data, "eyJuIjoiw7XigqwiLCJ0IjoxfQ");
        assert_eq!(signed.sig, "8IRCadjDMoPn6xb6J1T7GHANi5KCASz2F5_giKhzQjs");
    }

    #[test]
    fn key_order_is_kept() {
        let a = sign(SECRET, &json!({"b": 1, "a": 2}));
        let b = sign(SECRET, &json!({"a": 2, "b": 1}));
        assert_ne!(a.data, b.data);
        assert_eq!(a.data, ENCODE.encode(br#"{"b":1,"a":2}"#));
    }

    #[test]
    fn verify_returns_the_payload() {
        assert_eq!(verify(SECRET, CLICK_DATA, CLICK_SIG), Ok(click()));
    }

    #[test]
    fn verify_accepts_padding_and_the_standard_alphabet() {
        let std_data = format!("{}==", CLICK_DATA.replace('-', "+").replace('_', "/"));
        let std_sig = format!("{}=", CLICK_SIG.replace('-', "+").replace('_', "/"));
        assert_eq!(verify(SECRET, &std_data, &std_sig), Ok(click()));
    }

    #[test]
    fn verify_refuses_tampering() {
        let mut sig = CLICK_SIG.to_string();
        sig.replace_range(0..1, "N");
        assert_eq!(
            verify(SECRET, CLICK_DATA, &sig),
            Err(SignedError::Signature)
        );
        assert_eq!(
            verify(b"other secret", CLICK_DATA, CLICK_SIG),
            Err(SignedError::Signature)
        );
        assert_eq!(
            verify(SECRET, &CLICK_DATA[1..], CLICK_SIG),
            Err(SignedError::Signature)
        );
        assert_eq!(
            verify(SECRET, CLICK_DATA, &CLICK_SIG[..40]),
            Err(SignedError::Signature)
        );
        assert_eq!(verify(SECRET, "", ""), Err(SignedError::Signature));
        assert_eq!(verify(SECRET, "!!", CLICK_SIG), Err(SignedError::Signature));
    }

    #[test]
    fn signed_non_json_is_told_apart() {
        let data = ENCODE.encode(b"not json");
        let sig = ENCODE.encode(mac(SECRET, b"not json"));
        assert_eq!(verify(SECRET, &data, &sig), Err(SignedError::NotJson));
    }

    proptest::proptest! {
        #[test]
        fn sign_then_verify_round_trips(text in "\\PC{0,64}", n in proptest::num::i64::ANY) {
            let value = json!({"text": text, "n": n});
            let signed = sign(SECRET, &value);
            proptest::prop_assert_eq!(verify(SECRET, &signed.data, &signed.sig), Ok(value));
        }

        #[test]
        fn verify_never_panics(data in "\\PC{0,80}", sig in "\\PC{0,60}") {
            let _ = verify(SECRET, &data, &sig);
        }
    }
}
