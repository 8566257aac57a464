//! The `$wd01$` format EmailEngine uses for secrets at rest (spec §8): AES-256-GCM with a key
//! derived by scrypt (N=16384, r=8, p=1) from the service secret and a per-value random salt.
//! `$wd01$aes-256-gcm$<tagHex>$<ivHex>$<saltHex>$<ciphertextHex>`.
//! Values not in this shape are cleartext and pass through unchanged, so mixed stores work.

use std::collections::HashMap;
use std::sync::Mutex;

use aes_gcm::aead::{AeadInOut, KeyInit};
use aes_gcm::{Aes256Gcm, Nonce, Tag};

use crate::{Error, Result};

const PREFIX: &str = "wd01";
const ALGORITHM: &str = "aes-256-gcm";
const KEY_CACHE_LIMIT: usize = 1500;

/// Encrypts and decrypts secret fields with one service secret. Derived keys are cached per
/// salt, because scrypt is deliberately slow (tens of milliseconds per derivation).
pub struct FieldCipher {
    secret: String,
    keys: Mutex<HashMap<[u8; 16], [u8; 32]>>,
}

impl std::fmt::Debug for FieldCipher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("FieldCipher(<secret>)")
    }
}

impl FieldCipher {
    pub fn new(secret: impl Into<String>) -> Self {
        Self {
            secret: secret.into(),
            keys: Mutex::new(HashMap::new()),
        }
    }

    fn key(&self, salt: &[u8; 16]) -> [u8; 32] {
        if let Some(k) = self.keys.lock().ok().and_then(|m| m.get(salt).copied()) {
            return k;
        }
        let key = derive_key(&self.secret, salt);
        if let Ok(mut cache) = self.keys.lock() {
            if cache.len() >= KEY_CACHE_LIMIT {
                cache.clear();
            }
            cache.insert(*salt, key);
        }
        key
    }

    pub fn encrypt(&self, plaintext: &str) -> String {
        let mut salt = [0u8; 16];
        let mut iv = [0u8; 12];
        rand::fill(&mut salt);
        rand::fill(&mut iv);
        let key = self.key(&salt);
        let cipher = Aes256Gcm::new(&key.into());
        let mut buffer = plaintext.as_bytes().to_vec();
        let nonce = Nonce::from(iv);
        // Encryption only fails for inputs beyond GCM's 64 GiB limit.
        let tag = cipher
            .encrypt_inout_detached(&nonce, b"", buffer.as_mut_slice().into())
            .unwrap_or_default();
        format!(
            "${PREFIX}${ALGORITHM}${}${}${}${}",
            hex::encode(tag),
            hex::encode(iv),
            hex::encode(salt),
            hex::encode(buffer)
        )
    }

    /// Decrypts a `$wd01$` value; anything else is returned as it is.
    pub fn decrypt(&self, value: &str) -> Result<String> {
        let Some(parts) = parse(value) else {
            return Ok(value.to_string());
        };
        let key = self.key(&parts.salt);
        let cipher = Aes256Gcm::new(&key.into());
        let mut buffer = parts.ciphertext;
        cipher
            .decrypt_inout_detached(
                &Nonce::from(parts.iv),
                b"",
                buffer.as_mut_slice().into(),
                &Tag::from(parts.tag),
            )
            .map_err(|_| Error::Decrypt)?;
        String::from_utf8(buffer).map_err(|_| Error::Decrypt)
    }
}

/// Re-encrypts one value for secret rotation: an encrypted value is opened with the first of
/// `old` that fits (cleartext passes as it is), then sealed with `new`, or left in cleartext
/// when there is no new secret.
pub fn rotate(value: &str, old: &[FieldCipher], new: Option<&FieldCipher>) -> Result<String> {
    let plain = if is_encrypted(value) {
        old.iter()
            .find_map(|c| c.decrypt(value).ok())
            .ok_or(Error::Decrypt)?
    } else {
        value.to_string()
    };
    Ok(match new {
        Some(c) => c.encrypt(&plain),
        None => plain,
    })
}

/// True when the value is in the `$wd01$` shape.
pub fn is_encrypted(value: &str) -> bool {
    parse(value).is_some()
}

struct Parts {
    tag: [u8; 16],
    iv: [u8; 12],
    salt: [u8; 16],
    ciphertext: Vec<u8>,
}

fn parse(value: &str) -> Option<Parts> {
    if !value.starts_with('$') {
        return None;
    }
    let parts: Vec<&str> = value.split('$').collect();
    if parts.len() != 7 || parts[1..].iter().any(|p| p.is_empty()) || parts[1] != PREFIX {
        return None;
    }
    if parts[2] != ALGORITHM {
        return None;
    }
    let mut tag = [0u8; 16];
    let mut iv = [0u8; 12];
    let mut salt = [0u8; 16];
    hex::decode_to_slice(parts[3], &mut tag).ok()?;
    hex::decode_to_slice(parts[4], &mut iv).ok()?;
    hex::decode_to_slice(parts[5], &mut salt).ok()?;
    let ciphertext = hex::decode(parts[6]).ok()?;
    Some(Parts {
        tag,
        iv,
        salt,
        ciphertext,
    })
}

fn derive_key(secret: &str, salt: &[u8]) -> [u8; 32] {
    let mut key = [0u8; 32];
    // N=16384 (log2 14), r=8, p=1 are valid constants; scrypt only fails for bad params or lengths.
    if let Ok(params) = scrypt::Params::new(14, 8, 1) {
        let _ = scrypt::scrypt(secret.as_bytes(), salt, &params, &mut key);
    }
    key
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_shape() {
        let c = FieldCipher::new("secret");
        let enc = c.encrypt("hunter22");
        assert!(enc.starts_with("$wd01$aes-256-gcm$"));
        assert_eq!(enc.split('$').count(), 7);
        assert_eq!(c.decrypt(&enc).unwrap(), "hunter22");
        assert_eq!(FieldCipher::new("other").decrypt(&enc), Err(Error::Decrypt));
    }

    #[test]
    fn rotation() {
        let old = FieldCipher::new("old");
        let new = FieldCipher::new("new");
        let sealed = old.encrypt("pw");
        let rotated = rotate(
            &sealed,
            &[FieldCipher::new("wrong"), FieldCipher::new("old")],
            Some(&new),
        )
        .unwrap();
        assert_eq!(new.decrypt(&rotated).unwrap(), "pw");
        assert_eq!(
            rotate(&sealed, &[FieldCipher::new("old")], None).unwrap(),
            "pw"
        );
        assert_eq!(
            new.decrypt(&rotate("plain", &[], Some(&new)).unwrap())
                .unwrap(),
            "plain"
        );
        assert_eq!(
            rotate(&sealed, &[FieldCipher::new("wrong")], None),
            Err(Error::Decrypt)
        );
    }

    #[test]
    fn cleartext_passes_through() {
        let c = FieldCipher::new("secret");
        for v in ["plain", "$notours", "$wd01$aes-256-gcm$zz$zz$zz$zz", ""] {
            assert_eq!(c.decrypt(v).unwrap(), v);
        }
    }

    #[test]
    fn decrypts_a_value_made_by_node_crypto() {
        // Made with Node's crypto.scryptSync(secret, salt, 32) and aes-256-gcm, secret "secret",
        // plaintext "pass", salt 00..0f, iv 00..0b: the primitives EmailEngine uses.
        let node = "$wd01$aes-256-gcm$63a2a9722db0bfc7299bb3e5f729c6f7$000102030405060708090a0b$000102030405060708090a0b0c0d0e0f$8c97276f";
        assert_eq!(FieldCipher::new("secret").decrypt(node).unwrap(), "pass");
    }

    #[test]
    fn scrypt_parameters_match_rfc_7914() {
        // RFC 7914 §12: "pleaseletmein", "SodiumChloride", N=16384, r=8, p=1 (first 32 bytes).
        assert_eq!(
            hex::encode(derive_key("pleaseletmein", b"SodiumChloride")),
            "7023bdcb3afd7348461c06cd81fd38ebfda8fbba904f8e3ea9b543f6545da1f2"
        );
    }
}
