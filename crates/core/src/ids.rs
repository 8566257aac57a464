//! Identifiers EmailEngine derives for mailboxes and messages (spec §7.2, §12.4), so an id is
//! the same whichever implementation produced it:
//! - message id: base64url (no padding) of `[u32 BE mailbox id][u32 BE UID]`;
//! - text id: base64url of the 8 id bytes + msgpack list of text part numbers;
//! - attachment id: base64url of the 8 id bytes + the ASCII body part number;
//! - path hash: SHA-1 of the normalized folder path, as a base-36 number;
//! - mailbox registry field: `[u64 BE UIDVALIDITY][path bytes]`.

use base64::Engine as _;
use rmpv::Value;
use sha1::{Digest, Sha1};

use crate::msgpack;

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::URL_SAFE_NO_PAD;

/// A message within an account: the registry id of its mailbox and its UID there.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct MessageId {
    pub mailbox: u32,
    pub uid: u32,
}

impl MessageId {
    fn bytes(self) -> [u8; 8] {
        let mut b = [0u8; 8];
        b[..4].copy_from_slice(&self.mailbox.to_be_bytes());
        b[4..].copy_from_slice(&self.uid.to_be_bytes());
        b
    }

    pub fn encode(self) -> String {
        B64.encode(self.bytes())
    }

    pub fn decode(text: &str) -> Option<Self> {
        let bytes = B64.decode(text.trim_end_matches('=')).ok()?;
        Self::from_prefix(&bytes).filter(|_| bytes.len() == 8)
    }

    fn from_prefix(bytes: &[u8]) -> Option<Self> {
        Some(Self {
            mailbox: u32::from_be_bytes(bytes.get(..4)?.try_into().ok()?),
            uid: u32::from_be_bytes(bytes.get(4..8)?.try_into().ok()?),
        })
    }
}

/// The id of a message's text parts (`text.id`).
pub fn encode_text_id(message: MessageId, parts: &[String]) -> String {
    let mut bytes = message.bytes().to_vec();
    let list = Value::Array(parts.iter().map(|p| Value::from(p.as_str())).collect());
    bytes.extend(msgpack::encode(&list));
    B64.encode(bytes)
}

pub fn decode_text_id(text: &str) -> Option<(MessageId, Vec<String>)> {
    let bytes = B64.decode(text.trim_end_matches('=')).ok()?;
    let id = MessageId::from_prefix(&bytes)?;
    let Value::Array(items) = msgpack::decode(bytes.get(8..)?)? else {
        return None;
    };
    let parts = items
        .iter()
        .map(|i| i.as_str().map(str::to_string))
        .collect::<Option<Vec<_>>>()?;
    Some((id, parts))
}

/// The id of an attachment: the message id bytes followed by the MIME part number.
pub fn encode_attachment_id(message: MessageId, part: &str) -> String {
    let mut bytes = message.bytes().to_vec();
    bytes.extend_from_slice(part.as_bytes());
    B64.encode(bytes)
}

pub fn decode_attachment_id(text: &str) -> Option<(MessageId, String)> {
    let bytes = B64.decode(text.trim_end_matches('=')).ok()?;
    let id = MessageId::from_prefix(&bytes)?;
    let part = std::str::from_utf8(bytes.get(8..)?).ok()?;
    let valid = !part.is_empty()
        && part
            .split('.')
            .all(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()));
    valid.then(|| (id, part.to_string()))
}

/// Upper-cases a leading `INBOX` path component, as IMAP treats it case-insensitively.
pub fn normalize_path(path: &str) -> String {
    let head = path.get(..5);
    match head {
        Some(h) if h.eq_ignore_ascii_case("INBOX") => {
            let rest = &path[5..];
            if rest.is_empty() || !rest.starts_with(|c: char| c.is_alphanumeric()) {
                format!("INBOX{rest}")
            } else {
                path.to_string()
            }
        }
        _ => path.to_string(),
    }
}

/// `BigInt('0x' + sha1(normalizedPath)).toString(36)`.
pub fn path_hash(path: &str) -> String {
    let digest = Sha1::digest(normalize_path(path).as_bytes());
    to_base36(&digest)
}

fn to_base36(bytes: &[u8]) -> String {
    let mut digits: Vec<u8> = bytes.to_vec();
    let mut out = Vec::new();
    while digits.iter().any(|d| *d != 0) {
        let mut rem = 0u32;
        for d in digits.iter_mut() {
            let cur = (rem << 8) | *d as u32;
            *d = (cur / 36) as u8;
            rem = cur % 36;
        }
        out.push(b"0123456789abcdefghijklmnopqrstuvwxyz"[rem as usize]);
    }
    if out.is_empty() {
        out.push(b'0');
    }
    out.reverse();
    String::from_utf8(out).unwrap_or_default()
}

/// The field of `iah:<account>` that names one mailbox generation.
pub fn mailbox_registry_field(uid_validity: u64, path: &str) -> Vec<u8> {
    let mut field = uid_validity.to_be_bytes().to_vec();
    field.extend_from_slice(path.as_bytes());
    field
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn message_id_matches_the_spec_example() {
        let id = MessageId {
            mailbox: 12,
            uid: 1838,
        };
        assert_eq!(id.encode(), "AAAADAAABy4");
        assert_eq!(MessageId::decode("AAAADAAABy4"), Some(id));
        assert_eq!(MessageId::decode("AAAADAAABy"), None);
        assert_eq!(MessageId::decode("!!"), None);
    }

    #[test]
    fn text_and_attachment_ids_round_trip() {
        let id = MessageId { mailbox: 1, uid: 2 };
        let t = encode_text_id(id, &["1".into(), "2.1".into()]);
        assert_eq!(
            decode_text_id(&t),
            Some((id, vec!["1".into(), "2.1".into()]))
        );
        let a = encode_attachment_id(id, "2");
        assert_eq!(decode_attachment_id(&a), Some((id, "2".into())));
        assert_eq!(decode_attachment_id(&id.encode()), None);
    }

    #[test]
    fn path_hash_is_base36_sha1() {
        // Expected values from Node: BigInt('0x' + sha1(path)).toString(36).
        assert_eq!(path_hash("INBOX"), "pp8vqhpyh90buw26yo4hutu54qvmb1o");
        assert_eq!(path_hash("inbox"), "pp8vqhpyh90buw26yo4hutu54qvmb1o");
        assert_eq!(path_hash("Sent"), "6aw6hg83r4c81bu0rkkgmqalu4p0jgr");
        assert_eq!(path_hash("Kaust/Alam"), "4rgm5uyetysdt6smcyn2o4sa8erdh4u");
        assert_eq!(to_base36(&[0x01, 0x00]), "74");
        assert_eq!(to_base36(&[0]), "0");
        assert_eq!(normalize_path("Inbox/Sub"), "INBOX/Sub");
        assert_eq!(normalize_path("Inboxes"), "Inboxes");
    }

    #[test]
    fn registry_field_layout() {
        let f = mailbox_registry_field(7, "INBOX");
        assert_eq!(&f[..8], &[0, 0, 0, 0, 0, 0, 0, 7]);
        assert_eq!(&f[8..], b"INBOX");
    }
}
