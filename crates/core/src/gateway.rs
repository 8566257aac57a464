//! SMTP gateways as EmailEngine stores them (spec §22): the `gateway:<id>` hash holds `gateway`
//! and `deliveries` as plain strings, `pass` as a `$wd01$` secret (or cleartext without a
//! secret), and every other field msgpack-encoded.

use std::collections::BTreeMap;

use rmpv::Value;
use serde_json::json;

use crate::msgpack;
use crate::secret::FieldCipher;

#[derive(Debug, Clone, PartialEq, Default)]
pub struct Gateway {
    pub id: String,
    pub name: String,
    pub host: String,
    pub port: u16,
    pub secure: bool,
    pub user: Option<String>,
    /// Cleartext, once read with the cipher.
    pub pass: Option<String>,
    pub deliveries: u64,
    /// ms since the epoch.
    pub last_use: Option<i64>,
    pub last_error: Option<serde_json::Value>,
}

fn field_str(fields: &BTreeMap<String, Vec<u8>>, name: &str) -> Option<String> {
    msgpack::decode(fields.get(name)?)?
        .as_str()
        .map(str::to_string)
}

impl Gateway {
    /// Reads a stored hash. `pass` is decrypted; a value that no secret opens is an error.
    pub fn from_fields(
        id: &str,
        fields: &BTreeMap<String, Vec<u8>>,
        cipher: Option<&FieldCipher>,
    ) -> crate::Result<Self> {
        let plain = |name: &str| {
            fields
                .get(name)
                .and_then(|v| String::from_utf8(v.clone()).ok())
        };
        let value = |name: &str| fields.get(name).and_then(|v| msgpack::decode(v));
        let pass = match plain("pass").filter(|p| !p.is_empty()) {
            None => None,
            Some(p) => Some(match cipher {
                Some(c) => c.decrypt(&p)?,
                None if crate::secret::is_encrypted(&p) => {
                    return Err(crate::Error::InvalidValue(
                        "the gateway password is encrypted, but no encryption secret is configured"
                            .into(),
                    ));
                }
                None => p,
            }),
        };
        Ok(Self {
            id: plain("gateway").unwrap_or_else(|| id.to_string()),
            name: field_str(fields, "name").unwrap_or_default(),
            host: field_str(fields, "host").unwrap_or_default(),
            port: value("port")
                .and_then(|v| v.as_u64())
                .and_then(|p| u16::try_from(p).ok())
                .unwrap_or(0),
            secure: value("secure").and_then(|v| v.as_bool()).unwrap_or(false),
            user: field_str(fields, "user").filter(|u| !u.is_empty()),
            pass,
            deliveries: plain("deliveries")
                .and_then(|d| d.parse().ok())
                .unwrap_or(0),
            last_use: value("lastUse").and_then(|v| msgpack::read_date(&v)),
            last_error: value("lastError")
                .filter(|v| !v.is_nil())
                .map(|v| msgpack::to_json(&v)),
        })
    }

    /// The hash fields to write for the configuration (not the delivery counters): `pass`
    /// encrypted when a cipher is given.
    pub fn config_fields(&self, cipher: Option<&FieldCipher>) -> Vec<(String, Vec<u8>)> {
        let packed = |v: Value| msgpack::encode(&v);
        let mut out = vec![
            ("gateway".to_string(), self.id.clone().into_bytes()),
            ("name".to_string(), packed(Value::from(self.name.as_str()))),
            ("host".to_string(), packed(Value::from(self.host.as_str()))),
            ("port".to_string(), packed(Value::from(self.port))),
            ("secure".to_string(), packed(Value::Boolean(self.secure))),
            (
                "user".to_string(),
                packed(self.user.as_deref().map_or(Value::Nil, Value::from)),
            ),
        ];
        if let Some(p) = &self.pass {
            let stored = match cipher {
                Some(c) => c.encrypt(p),
                None => p.clone(),
            };
            out.push(("pass".to_string(), stored.into_bytes()));
        }
        out
    }

    /// The fields a delivery outcome sets: `lastUse` now, and `lastError` (nil on success).
    pub fn outcome_fields(
        now_ms: i64,
        error: Option<&serde_json::Value>,
    ) -> Vec<(String, Vec<u8>)> {
        vec![
            (
                "lastUse".to_string(),
                msgpack::encode(&msgpack::timestamp(now_ms)),
            ),
            (
                "lastError".to_string(),
                msgpack::encode(&error.map_or(Value::Nil, msgpack::from_json)),
            ),
        ]
    }

    /// The listing entry of `GET /v1/gateways`.
    pub fn summary_json(&self) -> serde_json::Value {
        json!({
            "gateway": self.id, "name": self.name, "deliveries": self.deliveries,
            "lastUse": self.last_use.and_then(crate::units::iso_time),
            "lastError": self.last_error,
        })
    }

    /// `GET /v1/gateway/{gateway}`: the password masked.
    pub fn details_json(&self) -> serde_json::Value {
        let mut out = json!({
            "gateway": self.id, "name": self.name, "host": self.host, "port": self.port,
            "user": self.user, "secure": self.secure, "deliveries": self.deliveries,
            "lastUse": self.last_use.and_then(crate::units::iso_time),
            "lastError": self.last_error,
        });
        if self.pass.is_some() {
            out["pass"] = json!("******");
        }
        out
    }
}

/// A new gateway id: 16 characters of `[0-9a-z]`.
pub fn new_gateway_id() -> String {
    const ALPHABET: &[u8] = b"0123456789abcdefghijklmnopqrstuvwxyz";
    (0..16)
        .map(|_| ALPHABET[rand::random_range(0..ALPHABET.len())] as char)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gateway() -> Gateway {
        Gateway {
            id: "g1".into(),
            name: "Relay".into(),
            host: "smtp.example.com".into(),
            port: 587,
            secure: false,
            user: Some("u".into()),
            pass: Some("secret".into()),
            ..Default::default()
        }
    }

    #[test]
    fn round_trip_with_and_without_a_secret() {
        for cipher in [None, Some(FieldCipher::new("k"))] {
            let g = gateway();
            let fields: BTreeMap<String, Vec<u8>> =
                g.config_fields(cipher.as_ref()).into_iter().collect();
            assert_eq!(fields["gateway"], b"g1");
            assert_eq!(fields["port"], vec![0xcd, 0x02, 0x4b], "msgpack uint16 587");
            let stored_pass = String::from_utf8(fields["pass"].clone()).unwrap();
            assert_eq!(crate::secret::is_encrypted(&stored_pass), cipher.is_some());
            assert_eq!(
                Gateway::from_fields("g1", &fields, cipher.as_ref()).unwrap(),
                g
            );
        }
    }

    #[test]
    fn outcomes_and_masking() {
        let mut fields: BTreeMap<String, Vec<u8>> =
            gateway().config_fields(None).into_iter().collect();
        fields.insert("deliveries".into(), b"4".to_vec());
        let err = json!({"response": "535 no", "responseCode": 535});
        fields.extend(Gateway::outcome_fields(1_700_000_000_000, Some(&err)));
        let g = Gateway::from_fields("g1", &fields, None).unwrap();
        assert_eq!(g.deliveries, 4);
        assert_eq!(g.last_use, Some(1_700_000_000_000));
        assert_eq!(g.last_error, Some(err));
        let shown = g.details_json();
        assert_eq!(shown["pass"], "******");
        assert_eq!(shown["lastUse"], "2023-11-14T22:13:20.000Z");
        fields.extend(Gateway::outcome_fields(1_700_000_000_000, None));
        assert_eq!(
            Gateway::from_fields("g1", &fields, None)
                .unwrap()
                .last_error,
            None
        );
    }

    #[test]
    fn ids() {
        let id = new_gateway_id();
        assert_eq!(id.len(), 16);
        assert!(
            id.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
        );
    }
}
