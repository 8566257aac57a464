//! The admin password hash (spec §1 `password`): PBKDF2-SHA256, 600000 iterations, 16-byte salt,
//! as a PHC string `$pbkdf2-sha256$i=600000$<salt>$<hash>` (standard base64, no padding),
//! and the base64url wrapping `EENGINE_PREPARED_PASSWORD` takes.

use base64::Engine as _;
use sha2::Sha256;

use crate::{Error, Result};

pub const ITERATIONS: u32 = 600_000;
pub const MIN_LENGTH: usize = 8;

/// Hashes a password into a PHC string.
pub fn hash_password(password: &str) -> String {
    let mut salt = [0u8; 16];
    rand::fill(&mut salt);
    hash_with(password, &salt, ITERATIONS)
}

fn hash_with(password: &str, salt: &[u8], iterations: u32) -> String {
    let mut out = [0u8; 32];
    pbkdf2::pbkdf2_hmac::<Sha256>(password.as_bytes(), salt, iterations, &mut out);
    let b64 = base64::engine::general_purpose::STANDARD_NO_PAD;
    format!(
        "$pbkdf2-sha256$i={iterations}${}${}",
        b64.encode(salt),
        b64.encode(out)
    )
}

/// Checks a password against a PHC string, in constant time.
pub fn verify_password(password: &str, phc: &str) -> bool {
    let parts: Vec<&str> = phc.split('$').collect();
    let [_, id, params, salt, hash] = parts.as_slice() else {
        return false;
    };
    if *id != "pbkdf2-sha256" {
        return false;
    }
    let Some(iterations) = params
        .split(',')
        .find_map(|p| p.strip_prefix("i="))
        .and_then(|i| i.parse::<u32>().ok())
        .filter(|i| (1..=10_000_000).contains(i))
    else {
        return false;
    };
    let b64 = base64::engine::general_purpose::STANDARD_NO_PAD;
    let (Ok(salt), Ok(expected)) = (b64.decode(salt), b64.decode(hash)) else {
        return false;
    };
    let mut out = vec![0u8; expected.len().clamp(1, 64)];
    pbkdf2::pbkdf2_hmac::<Sha256>(password.as_bytes(), &salt, iterations, &mut out);
    subtle::ConstantTimeEq::ct_eq(out.as_slice(), expected.as_slice()).into()
}

/// The form `password --hash` prints: base64url of the PHC string.
pub fn encode_prepared(phc: &str) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(phc)
}

/// Decodes `EENGINE_PREPARED_PASSWORD`: base64url of a PHC string that starts with `$pbkdf2`.
pub fn decode_prepared(text: &str) -> Result<String> {
    let cleaned = text
        .trim()
        .trim_end_matches('=')
        .replace('+', "-")
        .replace('/', "_");
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(cleaned)
        .map_err(|_| Error::InvalidPasswordHash)?;
    let phc = String::from_utf8(bytes).map_err(|_| Error::InvalidPasswordHash)?;
    if !phc.starts_with("$pbkdf2") {
        return Err(Error::InvalidPasswordHash);
    }
    Ok(phc)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_and_verify() {
        let phc = hash_with("correct horse", b"0123456789abcdef", 1000);
        assert!(phc.starts_with("$pbkdf2-sha256$i=1000$"));
        assert!(verify_password("correct horse", &phc));
        assert!(!verify_password("wrong horse", &phc));
        assert!(!verify_password("x", "garbage"));
    }

    #[test]
    fn rfc_style_vector() {
        // PBKDF2-HMAC-SHA256("password", "salt", 1, 32) from RFC 7914 §11 family of vectors.
        let phc = hash_with("password", b"salt", 1);
        let hash = phc.rsplit('$').next().unwrap();
        let bytes = base64::engine::general_purpose::STANDARD_NO_PAD
            .decode(hash)
            .unwrap();
        assert_eq!(
            hex::encode(bytes),
            "120fb6cffcf8b32c43e7225256c4f837a86548c92ccc35480805987cb70be17b"
        );
    }

    #[test]
    fn prepared_form() {
        let phc = hash_with("password1", b"0123456789abcdef", 1000);
        assert_eq!(decode_prepared(&encode_prepared(&phc)).unwrap(), phc);
        assert!(decode_prepared(&encode_prepared("plain")).is_err());
        assert!(decode_prepared("***").is_err());
    }
}
