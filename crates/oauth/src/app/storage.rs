//! The Redis form of an app (spec §14.5): hash `oapp:c` holds `<id>:data` = msgpack map of the
//! record and `<id>:meta` = msgpack map of [`AppMeta`]. Secrets are sealed in `$wd01$` form
//! when a service secret is configured. Records are read leniently: a field of an unexpected
//! type is kept untyped in `extra` (and written back as it was), never fatal.

use emailengine_core::msgpack::{self, key_string};
use emailengine_core::secret::{FieldCipher, is_encrypted};
use rmpv::Value;
use serde_json::{Map, Value as Json};

use super::{APP_KEYS, AppMeta, Flag, OAuthApp};
use crate::{Error, Result};

/// The msgpack bytes of `<id>:data`, secrets sealed with `cipher` (cleartext without one).
pub fn encode_data(app: &OAuthApp, cipher: Option<&FieldCipher>) -> Vec<u8> {
    let mut sealed = app.clone();
    seal_secrets(&mut sealed, cipher);
    msgpack::encode(&to_msgpack(&sealed))
}

/// Reads `<id>:data` and opens its secrets. Without a cipher a sealed secret is an error.
pub fn decode_data(bytes: &[u8], cipher: Option<&FieldCipher>) -> Result<OAuthApp> {
    let mut app = decode_record(bytes)?;
    open_secrets(&mut app, cipher)?;
    Ok(app)
}

/// Reads `<id>:data` leaving secrets as stored, for callers that only show or copy them.
pub fn decode_record(bytes: &[u8]) -> Result<OAuthApp> {
    let Some(Value::Map(entries)) = msgpack::decode(bytes) else {
        return Err(Error::MalformedRecord);
    };
    let mut known = Map::new();
    let mut raw_known = Vec::new();
    let mut extra = Vec::new();
    for (k, v) in entries {
        let key = key_string(&k);
        if !APP_KEYS.contains(&key.as_str()) {
            extra.push((key, v));
            continue;
        }
        let json = if key == "accessTokenExpires" {
            date_json(&v)
        } else {
            msgpack::to_json(&v)
        };
        // JavaScript writes `null` for fields it means to leave unset.
        if !json.is_null() {
            known.insert(key.clone(), json);
            raw_known.push((key, v));
        }
    }
    let mut app = match serde_json::from_value::<OAuthApp>(Json::Object(known.clone())) {
        Ok(app) => app,
        Err(_) => {
            let provider = known
                .get("provider")
                .cloned()
                .ok_or(Error::MalformedRecord)?;
            let mut good = Map::new();
            good.insert("provider".into(), provider.clone());
            for (key, raw) in raw_known {
                let Some(json) = known.get(&key) else {
                    continue;
                };
                let mut probe = Map::new();
                probe.insert("provider".into(), provider.clone());
                probe.insert(key.clone(), json.clone());
                if serde_json::from_value::<OAuthApp>(Json::Object(probe)).is_ok() {
                    good.insert(key, json.clone());
                } else {
                    extra.push((key, raw));
                }
            }
            serde_json::from_value::<OAuthApp>(Json::Object(good))
                .map_err(|_| Error::MalformedRecord)?
        }
    };
    app.extra = extra;
    Ok(app)
}

/// Seals every cleartext secret field (no-op without a cipher; sealed values stay as they are).
pub fn seal_secrets(app: &mut OAuthApp, cipher: Option<&FieldCipher>) {
    let Some(c) = cipher else { return };
    for field in secret_fields(app) {
        if let Some(value) = field
            && !is_encrypted(value)
        {
            *value = c.encrypt(value);
        }
    }
}

/// Opens every sealed secret field; cleartext passes through.
pub fn open_secrets(app: &mut OAuthApp, cipher: Option<&FieldCipher>) -> Result<()> {
    for value in secret_fields(app).into_iter().flatten() {
        *value = match cipher {
            Some(c) => c.decrypt(value)?,
            None if is_encrypted(value) => return Err(emailengine_core::Error::Decrypt.into()),
            None => continue,
        };
    }
    Ok(())
}

fn secret_fields(app: &mut OAuthApp) -> [&mut Option<String>; 4] {
    [
        &mut app.client_secret,
        &mut app.service_key,
        &mut app.access_token,
        &mut app.external_account,
    ]
}

fn to_msgpack(app: &OAuthApp) -> Value {
    let json = serde_json::to_value(app).unwrap_or(Json::Null);
    let mut entries: Vec<(Value, Value)> = Vec::with_capacity(APP_KEYS.len());
    if let Json::Object(map) = json {
        for (k, v) in &map {
            let value = match (k.as_str(), v.as_i64()) {
                // A JavaScript Date, so EmailEngine compares it with Date.now() as it expects.
                ("accessTokenExpires", Some(ms)) => msgpack::timestamp(ms),
                _ => msgpack::from_json(v),
            };
            entries.push((Value::from(k.as_str()), value));
        }
    }
    for (k, v) in &app.extra {
        entries.push((Value::from(k.as_str()), v.clone()));
    }
    Value::Map(entries)
}

/// A stored date as JSON milliseconds: a timestamp extension, a number or an ISO string.
fn date_json(v: &Value) -> Json {
    let ms = match v {
        Value::String(s) => s.as_str().and_then(emailengine_core::units::parse_iso_time),
        other => msgpack::read_date(other),
    };
    ms.map_or(Json::Null, Json::from)
}

/// The msgpack bytes of `<id>:meta`.
pub fn encode_meta(meta: &AppMeta) -> Vec<u8> {
    let mut entries = Vec::new();
    let flag = |f: &Flag| msgpack::from_json(&serde_json::to_value(f).unwrap_or(Json::Null));
    if let Some(f) = &meta.auth_flag {
        entries.push((Value::from("authFlag"), flag(f)));
    }
    if let Some(v) = &meta.ttl_warning {
        entries.push((Value::from("ttlWarning"), v.clone()));
    }
    if let Some(v) = &meta.subscription_expiration {
        entries.push((Value::from("subscriptionExpiration"), v.clone()));
    }
    if let Some(f) = &meta.pub_sub_flag {
        entries.push((Value::from("pubSubFlag"), flag(f)));
    }
    for (k, v) in &meta.extra {
        entries.push((Value::from(k.as_str()), v.clone()));
    }
    msgpack::encode(&Value::Map(entries))
}

/// Reads `<id>:meta`; anything unreadable is an empty meta record (it only carries flags).
pub fn decode_meta(bytes: &[u8]) -> AppMeta {
    let mut meta = AppMeta::default();
    let Some(Value::Map(entries)) = msgpack::decode(bytes) else {
        return meta;
    };
    let flag = |v: &Value| serde_json::from_value::<Flag>(msgpack::to_json(v)).ok();
    for (k, v) in entries {
        let key = key_string(&k);
        match key.as_str() {
            "authFlag" if !v.is_nil() => match flag(&v) {
                Some(f) => meta.auth_flag = Some(f),
                None => meta.extra.push((key, v)),
            },
            "pubSubFlag" if !v.is_nil() => match flag(&v) {
                Some(f) => meta.pub_sub_flag = Some(f),
                None => meta.extra.push((key, v)),
            },
            "ttlWarning" if !v.is_nil() => meta.ttl_warning = Some(v),
            "subscriptionExpiration" if !v.is_nil() => meta.subscription_expiration = Some(v),
            "authFlag" | "pubSubFlag" | "ttlWarning" | "subscriptionExpiration" => {}
            _ => meta.extra.push((key, v)),
        }
    }
    meta
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::app::{AuthMethod, BaseScopes, Cloud, Provider, SaslMechanism};

    /// An app with every typed field set (the values need not make sense together).
    pub(crate) fn full_app() -> OAuthApp {
        let s = |v: &str| Some(v.to_string());
        OAuthApp {
            id: s("AAABhaBPHscAAAAH"),
            name: s("n"),
            description: s("d"),
            title: s("t"),
            provider: Provider::Generic,
            enabled: Some(true),
            client_id: s("cid"),
            client_secret: s("cs"),
            base_scopes: Some(BaseScopes::Imap),
            pub_sub_app: s("p"),
            extra_scopes: Some(vec!["e".into()]),
            skip_scopes: Some(vec!["k".into()]),
            service_client: s("1"),
            google_project_id: s("project-1"),
            google_workspace_accounts: Some(false),
            google_topic_name: s("topic"),
            google_subscription_name: s("sub"),
            service_client_email: s("sa@example.com"),
            service_key: s("pem"),
            auth_method: Some(AuthMethod::ServiceKey),
            external_account: s("{}"),
            authority: s("common"),
            cloud: Some(Cloud::Global),
            redirect_url: s("http://127.0.0.1/oauth"),
            issuer: s("http://127.0.0.1:1"),
            authorize_url: s("http://127.0.0.1:1/auth"),
            token_url: s("http://127.0.0.1:1/token"),
            revoke_url: s("http://127.0.0.1:1/revoke"),
            introspection_url: s("http://127.0.0.1:1/introspect"),
            userinfo_url: s("http://127.0.0.1:1/me"),
            scopes: Some(vec!["openid".into()]),
            imap_host: s("127.0.0.1"),
            imap_port: Some(993),
            imap_secure: Some(true),
            smtp_host: s("127.0.0.1"),
            smtp_port: Some(465),
            smtp_secure: Some(true),
            sasl_mechanism: Some(SaslMechanism::OAuthBearer),
            created: s("2023-01-11T10:10:17.927Z"),
            updated: s("2023-01-11T10:10:17.927Z"),
            access_token: s("at"),
            access_token_expires: Some(1_700_000_000_000),
            pub_sub_topic: s("ee-pub"),
            pub_sub_subscription: s("ee-sub"),
            pub_sub_topic_managed: Some(true),
            pub_sub_subscription_managed: Some(true),
            pub_sub_iam_policy: Some(serde_json::json!({"bindings": []})),
            extra: vec![],
        }
    }

    fn hex(bytes: &[u8]) -> String {
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }

    fn unhex(s: &str) -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    fn gmail_app() -> OAuthApp {
        OAuthApp {
            id: Some("AAABhaBPHscAAAAH".into()),
            name: Some("Gmail".into()),
            provider: Provider::Gmail,
            enabled: Some(true),
            client_id: Some("cid".into()),
            client_secret: Some("sec".into()),
            redirect_url: Some("https://ee.example/oauth".into()),
            created: Some("2023-01-11T10:10:17.927Z".into()),
            access_token_expires: Some(1_700_000_000_000),
            ..Default::default()
        }
    }

    /// Bytes written by `@msgpack/msgpack` 3.x `encode()` for the same JavaScript object, with
    /// `accessTokenExpires: new Date(1700000000000)`.
    const GMAIL_DATA_HEX: &str = "89a26964b041414142686142504873634141414148a46e616d65a5476d61696ca870726f7669646572a5676d61696ca7656e61626c6564c3a8636c69656e744964a3636964ac636c69656e74536563726574a3736563ab726564697265637455726cb868747470733a2f2f65652e6578616d706c652f6f61757468a763726561746564b8323032332d30312d31315431303a31303a31372e3932375ab2616363657373546f6b656e45787069726573d6ff6553f100";

    #[test]
    fn data_record_golden_vector() {
        assert_eq!(hex(&encode_data(&gmail_app(), None)), GMAIL_DATA_HEX);
        assert_eq!(
            decode_data(&unhex(GMAIL_DATA_HEX), None).unwrap(),
            gmail_app()
        );
    }

    #[test]
    fn full_record_round_trips_with_unknown_keys() {
        let mut app = full_app();
        app.extra = vec![
            ("futureField".into(), Value::from(5)),
            ("when".into(), msgpack::timestamp(1_600_000_000_123)),
        ];
        let bytes = encode_data(&app, None);
        assert_eq!(decode_data(&bytes, None).unwrap(), app);
    }

    #[test]
    fn secrets_are_sealed_and_opened() {
        let cipher = FieldCipher::new("service-secret");
        let app = full_app();
        let bytes = encode_data(&app, Some(&cipher));
        let stored = decode_record(&bytes).unwrap();
        for value in [
            &stored.client_secret,
            &stored.service_key,
            &stored.access_token,
            &stored.external_account,
        ] {
            assert!(value.as_deref().unwrap().starts_with("$wd01$aes-256-gcm$"));
        }
        assert_eq!(
            stored.client_id.as_deref(),
            Some("cid"),
            "non-secrets stay clear"
        );
        assert_eq!(decode_data(&bytes, Some(&cipher)).unwrap(), app);
        assert!(matches!(
            decode_data(&bytes, None),
            Err(Error::Secret(emailengine_core::Error::Decrypt))
        ));
        assert!(matches!(
            decode_data(&bytes, Some(&FieldCipher::new("wrong"))),
            Err(Error::Secret(_))
        ));
    }

    #[test]
    fn lenient_reading() {
        let record = Value::Map(vec![
            (Value::from("provider"), Value::from("outlook")),
            (Value::from("enabled"), Value::from("yes")),
            (Value::from("pubSubApp"), Value::Nil),
            (
                Value::from("accessTokenExpires"),
                Value::from(1_700_000_000_000u64),
            ),
            (Value::from("name"), Value::from("x")),
        ]);
        let app = decode_record(&msgpack::encode(&record)).unwrap();
        assert_eq!(app.provider, Provider::Outlook);
        assert_eq!(app.name.as_deref(), Some("x"));
        assert_eq!(app.enabled, None);
        assert_eq!(app.pub_sub_app, None);
        assert_eq!(app.access_token_expires, Some(1_700_000_000_000));
        assert_eq!(app.extra, vec![("enabled".to_string(), Value::from("yes"))]);
        let iso = Value::Map(vec![
            (Value::from("provider"), Value::from("gmail")),
            (
                Value::from("accessTokenExpires"),
                Value::from("2023-11-14T22:13:20.000Z"),
            ),
        ]);
        assert_eq!(
            decode_record(&msgpack::encode(&iso))
                .unwrap()
                .access_token_expires,
            Some(1_700_000_000_000)
        );
        for bad in [
            msgpack::encode(&Value::from(1)),
            msgpack::encode(&Value::Map(vec![(Value::from("name"), Value::from("x"))])),
            msgpack::encode(&Value::Map(vec![(
                Value::from("provider"),
                Value::from("aol"),
            )])),
            vec![0xc1],
        ] {
            assert!(matches!(decode_record(&bad), Err(Error::MalformedRecord)));
        }
    }

    /// `@msgpack/msgpack` bytes of `{authFlag: {message: "m", description: "d"}, pubSubFlag:
    /// {message: "p"}}`.
    const META_HEX: &str = "82a861757468466c616782a76d657373616765a16dab6465736372697074696f6ea164aa707562537562466c616781a76d657373616765a170";

    #[test]
    fn meta_record_golden_vector() {
        let meta = AppMeta {
            auth_flag: Some(Flag {
                message: "m".into(),
                description: Some("d".into()),
                code: None,
            }),
            pub_sub_flag: Some(Flag {
                message: "p".into(),
                description: None,
                code: None,
            }),
            ..Default::default()
        };
        assert_eq!(hex(&encode_meta(&meta)), META_HEX);
        assert_eq!(decode_meta(&unhex(META_HEX)), meta);
        assert_eq!(decode_meta(b"\xc1"), AppMeta::default());
        let odd = Value::Map(vec![
            (Value::from("authFlag"), Value::from(3)),
            (Value::from("ttlWarning"), Value::from(true)),
        ]);
        let meta = decode_meta(&msgpack::encode(&odd));
        assert_eq!(meta.auth_flag, None);
        assert_eq!(meta.ttl_warning, Some(Value::from(true)));
        assert_eq!(decode_meta(&encode_meta(&meta)), meta);
    }

    proptest::proptest! {
        #[test]
        fn decoding_never_panics(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..200)) {
            let _ = decode_record(&bytes);
            let _ = decode_meta(&bytes);
        }

        #[test]
        fn names_and_secrets_round_trip(name in "\\PC{0,40}", secret in "\\PC{0,40}") {
            let mut app = gmail_app();
            app.name = Some(name);
            app.client_secret = Some(secret);
            proptest::prop_assert_eq!(decode_data(&encode_data(&app, None), None).unwrap(), app);
        }
    }
}
