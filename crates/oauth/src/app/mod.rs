//! OAuth2 applications as EmailEngine keeps them (spec §14.3): the typed record with every API
//! and stored-only field, the provider vocabulary, the app id codec and the `meta` record.
//! Validation of API input lives in [`validate`], the Redis codecs in [`storage`], and the API
//! response shape in [`view`].

pub mod storage;
pub mod validate;
pub mod view;

use base64::Engine as _;
use serde::{Deserialize, Serialize};

/// `provider` of an app (spec §14.1), plus `oauth2`: any standards-compliant server of our own.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
pub enum Provider {
    #[default]
    #[serde(rename = "gmail")]
    Gmail,
    #[serde(rename = "gmailService")]
    GmailService,
    #[serde(rename = "outlook")]
    Outlook,
    #[serde(rename = "outlookService")]
    OutlookService,
    #[serde(rename = "mailRu")]
    MailRu,
    #[serde(rename = "oauth2")]
    Generic,
}

impl Provider {
    pub const ALL: [Provider; 6] = [
        Provider::Gmail,
        Provider::GmailService,
        Provider::Outlook,
        Provider::OutlookService,
        Provider::MailRu,
        Provider::Generic,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Provider::Gmail => "gmail",
            Provider::GmailService => "gmailService",
            Provider::Outlook => "outlook",
            Provider::OutlookService => "outlookService",
            Provider::MailRu => "mailRu",
            Provider::Generic => "oauth2",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Provider::ALL.into_iter().find(|p| p.as_str() == text)
    }

    /// Application-only providers: tokens come without a user's consent, so there is no
    /// authorize URL and no refresh token.
    pub fn is_service(self) -> bool {
        matches!(self, Provider::GmailService | Provider::OutlookService)
    }

    pub fn is_google(self) -> bool {
        matches!(self, Provider::Gmail | Provider::GmailService)
    }

    pub fn is_microsoft(self) -> bool {
        matches!(self, Provider::Outlook | Provider::OutlookService)
    }
}

/// `baseScopes` (spec §14.2); an app without it behaves as `imap`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BaseScopes {
    #[default]
    Imap,
    Api,
    Pubsub,
}

impl BaseScopes {
    pub fn as_str(self) -> &'static str {
        match self {
            BaseScopes::Imap => "imap",
            BaseScopes::Api => "api",
            BaseScopes::Pubsub => "pubsub",
        }
    }
}

/// Microsoft cloud of an `outlook`/`outlookService` app.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum Cloud {
    #[default]
    #[serde(rename = "global")]
    Global,
    #[serde(rename = "gcc-high")]
    GccHigh,
    #[serde(rename = "dod")]
    Dod,
    #[serde(rename = "china")]
    China,
}

impl Cloud {
    pub fn as_str(self) -> &'static str {
        match self {
            Cloud::Global => "global",
            Cloud::GccHigh => "gcc-high",
            Cloud::Dod => "dod",
            Cloud::China => "china",
        }
    }
}

/// How a `gmailService` app proves itself: a service-account key, or Workload Identity
/// Federation (`externalAccount`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum AuthMethod {
    #[default]
    ServiceKey,
    ExternalAccount,
}

impl AuthMethod {
    pub fn as_str(self) -> &'static str {
        match self {
            AuthMethod::ServiceKey => "serviceKey",
            AuthMethod::ExternalAccount => "externalAccount",
        }
    }
}

/// The SASL mechanism a generic app forces; without one the client picks (spec §15.4).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum SaslMechanism {
    #[serde(rename = "XOAUTH2")]
    XOAuth2,
    #[serde(rename = "OAUTHBEARER")]
    OAuthBearer,
}

impl SaslMechanism {
    pub fn as_str(self) -> &'static str {
        match self {
            SaslMechanism::XOAuth2 => "XOAUTH2",
            SaslMechanism::OAuthBearer => "OAUTHBEARER",
        }
    }
}

/// One OAuth2 app. Field names are the stored and API names in camelCase; every field is
/// optional because each provider uses its own subset. Secrets (`clientSecret`, `serviceKey`,
/// `accessToken`, `externalAccount`) are plaintext in memory and sealed only by [`storage`].
/// `Default` exists for building records in code; `provider` is always set on purpose.
#[derive(Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OAuthApp {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    pub provider: Provider,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_secret: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub base_scopes: Option<BaseScopes>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pub_sub_app: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub extra_scopes: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub skip_scopes: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub service_client: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub google_project_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub google_workspace_accounts: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub google_topic_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub google_subscription_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub service_client_email: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub service_key: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub auth_method: Option<AuthMethod>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub external_account: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub authority: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cloud: Option<Cloud>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub redirect_url: Option<String>,
    /// Generic provider: OpenID issuer whose discovery document names the endpoints.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub issuer: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub authorize_url: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub token_url: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub revoke_url: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub introspection_url: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub userinfo_url: Option<String>,
    /// Generic provider: the scopes to request (default `openid offline_access`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scopes: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub imap_host: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub imap_port: Option<u16>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub imap_secure: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub smtp_host: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub smtp_port: Option<u16>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub smtp_secure: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sasl_mechanism: Option<SaslMechanism>,
    /// ISO time of creation (stored only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub created: Option<String>,
    /// ISO time of the last update (stored only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub updated: Option<String>,
    /// Cached app-level token of service and Pub/Sub apps.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub access_token: Option<String>,
    /// Expiry of `accessToken`, ms since the epoch (a msgpack timestamp when stored).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub access_token_expires: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pub_sub_topic: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pub_sub_subscription: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pub_sub_topic_managed: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pub_sub_subscription_managed: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pub_sub_iam_policy: Option<serde_json::Value>,
    /// Stored keys this implementation does not know, written back as they were read.
    #[serde(skip)]
    pub extra: Vec<(String, rmpv::Value)>,
}

/// The JSON/msgpack names of the typed fields of [`OAuthApp`], in field order.
pub const APP_KEYS: &[&str] = &[
    "id",
    "name",
    "description",
    "title",
    "provider",
    "enabled",
    "clientId",
    "clientSecret",
    "baseScopes",
    "pubSubApp",
    "extraScopes",
    "skipScopes",
    "serviceClient",
    "googleProjectId",
    "googleWorkspaceAccounts",
    "googleTopicName",
    "googleSubscriptionName",
    "serviceClientEmail",
    "serviceKey",
    "authMethod",
    "externalAccount",
    "authority",
    "cloud",
    "redirectUrl",
    "issuer",
    "authorizeUrl",
    "tokenUrl",
    "revokeUrl",
    "introspectionUrl",
    "userinfoUrl",
    "scopes",
    "imapHost",
    "imapPort",
    "imapSecure",
    "smtpHost",
    "smtpPort",
    "smtpSecure",
    "saslMechanism",
    "created",
    "updated",
    "accessToken",
    "accessTokenExpires",
    "pubSubTopic",
    "pubSubSubscription",
    "pubSubTopicManaged",
    "pubSubSubscriptionManaged",
    "pubSubIamPolicy",
];

/// The fields stored `$wd01$`-encrypted (EmailEngine's `ENCRYPTED_APP_KEYS`).
pub const SECRET_KEYS: &[&str] = &[
    "clientSecret",
    "serviceKey",
    "accessToken",
    "externalAccount",
];

impl OAuthApp {
    pub fn new(provider: Provider) -> Self {
        Self {
            provider,
            ..Default::default()
        }
    }

    pub fn base_scopes(&self) -> BaseScopes {
        self.base_scopes.unwrap_or_default()
    }

    pub fn cloud(&self) -> Cloud {
        self.cloud.unwrap_or_default()
    }

    /// Accounts of this app use the Gmail REST API or MS Graph instead of IMAP/SMTP.
    pub fn is_api_based(&self) -> bool {
        self.base_scopes() == BaseScopes::Api || self.provider == Provider::OutlookService
    }
}

impl std::fmt::Debug for OAuthApp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let redact = |s: &Option<String>| s.as_ref().map(|_| "<redacted>");
        f.debug_struct("OAuthApp")
            .field("id", &self.id)
            .field("name", &self.name)
            .field("provider", &self.provider)
            .field("enabled", &self.enabled)
            .field("clientId", &self.client_id)
            .field("clientSecret", &redact(&self.client_secret))
            .field("baseScopes", &self.base_scopes)
            .field("serviceClient", &self.service_client)
            .field("serviceKey", &redact(&self.service_key))
            .field("externalAccount", &redact(&self.external_account))
            .field("authority", &self.authority)
            .field("cloud", &self.cloud)
            .field("redirectUrl", &self.redirect_url)
            .field("issuer", &self.issuer)
            .field("tokenUrl", &self.token_url)
            .field("accessToken", &redact(&self.access_token))
            .finish_non_exhaustive()
    }
}

/// A problem recorded on an app or an account: `{message, description?, code?}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Flag {
    pub message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub code: Option<String>,
}

/// The `<id>:meta` record: problems and Pub/Sub state kept apart from the app itself.
/// `ttlWarning` and `subscriptionExpiration` are kept as stored (EmailEngine's own shapes).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AppMeta {
    pub auth_flag: Option<Flag>,
    pub ttl_warning: Option<rmpv::Value>,
    pub subscription_expiration: Option<rmpv::Value>,
    pub pub_sub_flag: Option<Flag>,
    pub extra: Vec<(String, rmpv::Value)>,
}

/// A new app id: base64url of `[u64 BE ms][u32 BE counter]` (16 characters), where the counter
/// is the `idcount` field of the settings hash.
pub fn app_id(now_ms: u64, counter: u32) -> String {
    let mut bytes = [0u8; 12];
    bytes[..8].copy_from_slice(&now_ms.to_be_bytes());
    bytes[8..].copy_from_slice(&counter.to_be_bytes());
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// The creation time (ms) and counter of an id made by [`app_id`]; `None` for other ids, such
/// as the provider names that migrated settings-based apps carry.
pub fn decode_app_id(id: &str) -> Option<(u64, u32)> {
    if id.len() != 16 {
        return None;
    }
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(id)
        .ok()?;
    let bytes: [u8; 12] = bytes.try_into().ok()?;
    let (ms, counter) = bytes.split_at(8);
    Some((
        u64::from_be_bytes(ms.try_into().ok()?),
        u32::from_be_bytes(counter.try_into().ok()?),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn app_id_golden_vector() {
        // The example id of spec §14.5.
        assert_eq!(
            decode_app_id("AAABhaBPHscAAAAH"),
            Some((1_673_431_817_927, 7))
        );
        assert_eq!(app_id(1_673_431_817_927, 7), "AAABhaBPHscAAAAH");
        assert_eq!(decode_app_id("gmail"), None);
        assert_eq!(decode_app_id("AAABhaBPHscAAAA!"), None);
    }

    #[test]
    fn typed_fields_match_the_key_list() {
        let full = storage::tests::full_app();
        let json = serde_json::to_value(&full).unwrap();
        let keys: Vec<&str> = json
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        assert_eq!(keys, APP_KEYS);
    }

    #[test]
    fn debug_output_hides_secrets() {
        let mut app = OAuthApp::new(Provider::Gmail);
        app.client_secret = Some("very-secret".into());
        app.access_token = Some("ya29.token".into());
        let text = format!("{app:?}");
        assert!(
            !text.contains("very-secret") && !text.contains("ya29"),
            "{text}"
        );
    }

    #[test]
    fn api_based_apps() {
        let mut app = OAuthApp::new(Provider::OutlookService);
        assert!(app.is_api_based());
        app.provider = Provider::GmailService;
        assert!(!app.is_api_based());
        app.base_scopes = Some(BaseScopes::Api);
        assert!(app.is_api_based());
    }

    proptest::proptest! {
        #[test]
        fn app_ids_round_trip(ms in 0u64..u64::MAX, counter in 0u32..u32::MAX) {
            let id = app_id(ms, counter);
            proptest::prop_assert_eq!(id.len(), 16);
            proptest::prop_assert_eq!(decode_app_id(&id), Some((ms, counter)));
        }
    }
}
