//! How the API shows an app (spec §14.4): the stored record with secrets masked, listing flags
//! derived from `enabled`, and the `meta` record flattened into `lastError` / `pubSubError`.
//! `GET /v1/oauth2/{app}` adds `accounts`; the caller inserts it.

use emailengine_core::msgpack;
use serde_json::{Map, Value, json};

use super::{AppMeta, OAuthApp, SECRET_KEYS};

pub const MASK: &str = "******";

/// The app object of `GET /v1/oauth2` and `GET /v1/oauth2/{app}`.
pub fn api_view(app: &OAuthApp, meta: Option<&AppMeta>) -> Map<String, Value> {
    let mut out = match serde_json::to_value(app) {
        Ok(Value::Object(map)) => map,
        _ => Map::new(),
    };
    for (k, v) in &app.extra {
        out.entry(k.clone()).or_insert_with(|| msgpack::to_json(v));
    }
    for key in SECRET_KEYS {
        if let Some(v) = out.get_mut(*key)
            && !v.is_null()
        {
            *v = Value::String(MASK.into());
        }
    }
    if let Some(ms) = app.access_token_expires {
        let iso = emailengine_core::units::iso_time(ms).map_or(Value::Null, Value::String);
        out.insert("accessTokenExpires".into(), iso);
    }
    if out
        .get("extraScopes")
        .and_then(Value::as_array)
        .is_some_and(Vec::is_empty)
    {
        out.remove("extraScopes");
    }
    // Service apps own no user-facing button but always work.
    if app.provider.is_service() {
        out.insert("enabled".into(), Value::Bool(true));
        out.insert("includeInListing".into(), Value::Bool(false));
    } else {
        out.insert(
            "includeInListing".into(),
            Value::Bool(app.enabled.unwrap_or(false)),
        );
    }
    if let Some(meta) = meta {
        if let Some(flag) = &meta.auth_flag {
            out.insert("lastError".into(), json!({"response": flag.message}));
        }
        if let Some(flag) = &meta.pub_sub_flag {
            out.insert(
                "pubSubError".into(),
                json!({"message": flag.message, "description": flag.description}),
            );
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::app::{Flag, Provider};

    #[test]
    fn secrets_are_masked_and_flags_derived() {
        let mut app = OAuthApp::new(Provider::Gmail);
        app.id = Some("AAABhaBPHscAAAAH".into());
        app.client_id = Some("cid".into());
        app.client_secret = Some("$wd01$whatever".into());
        app.extra_scopes = Some(vec![]);
        app.skip_scopes = Some(vec![]);
        app.access_token_expires = Some(1_700_000_000_000);
        app.extra = vec![("legacy".into(), rmpv::Value::from(1))];
        let meta = AppMeta {
            auth_flag: Some(Flag {
                message: "API has not been used".into(),
                description: None,
                code: None,
            }),
            pub_sub_flag: Some(Flag {
                message: "topic missing".into(),
                description: None,
                code: None,
            }),
            ..Default::default()
        };
        let view = Value::Object(api_view(&app, Some(&meta)));
        assert_eq!(
            view,
            json!({
                "id": "AAABhaBPHscAAAAH",
                "provider": "gmail",
                "clientId": "cid",
                "clientSecret": "******",
                "skipScopes": [],
                "accessTokenExpires": "2023-11-14T22:13:20.000Z",
                "legacy": 1,
                "includeInListing": false,
                "lastError": {"response": "API has not been used"},
                "pubSubError": {"message": "topic missing", "description": null}
            })
        );
    }

    #[test]
    fn service_apps_are_always_enabled_and_never_listed() {
        let mut app = OAuthApp::new(Provider::OutlookService);
        app.enabled = Some(false);
        app.client_secret = Some("plain".into());
        let view = api_view(&app, None);
        assert_eq!(view["enabled"], json!(true));
        assert_eq!(view["includeInListing"], json!(false));
        assert_eq!(view["clientSecret"], json!("******"));
        let mut app = OAuthApp::new(Provider::Outlook);
        app.enabled = Some(true);
        assert_eq!(api_view(&app, None)["includeInListing"], json!(true));
    }
}
