//! Logins of OAuth2 accounts (spec §15.2–§15.6): the app's IMAP/SMTP servers with a current
//! access token, renewed when it expires within 30 s or after a server refused it. One renewal
//! per account at a time across processes (the store lock `oauth:<account>`), the account
//! re-read under the lock so a renewal another process made is used, not repeated; rotated
//! refresh tokens are stored sealed. Accounts with `useAuthServer` ask the external token
//! provider instead. Nothing here logs a token.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use emailengine_core::account::{AccountRecord, ServerSettings, TokenLogin, TokenMechanism};
use emailengine_core::secret::FieldCipher;
use emailengine_oauth::app::storage::decode_data;
use emailengine_oauth::app::{OAuthApp, Provider, SaslMechanism};
use emailengine_oauth::auth_server::{self, Proto, ServerCredentials};
use emailengine_oauth::provider::{Endpoints, MailServer, ProviderTable};
use emailengine_oauth::refresh::{
    apply_grant, invalidate_access_token, needs_refresh, stored_tokens,
};
use emailengine_oauth::token::{TokenClient, TokenError};
use emailengine_store::{Settings, Store, StoreError};

/// How long a renewal may hold the account's lock, and how long others wait for it.
const LOCK_TTL_MS: u64 = 5 * 60 * 1000;
const LOCK_WAIT: Duration = Duration::from_secs(60);
/// Longest `delegatedAccount` chain followed.
const MAX_DELEGATION_HOPS: usize = 20;
/// How long a generic app's discovered endpoints are reused.
const DISCOVERY_TTL: Duration = Duration::from_secs(600);

/// What the token is for: the auth server is told, and IMAP and SMTP log in as different
/// users for shared mailboxes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    Imap,
    Smtp,
    Api,
}

/// Why an OAuth2 account has no usable login.
#[derive(Debug, thiserror::Error)]
pub enum LoginError {
    #[error("Missing or disabled OAuth2 app")]
    AppNotFound,
    /// The token endpoint refused or failed (`ETokenRefresh`).
    #[error("{0}")]
    Renew(Box<TokenError>),
    /// Neither a usable access token nor a refresh token is stored.
    #[error("Missing refresh token")]
    NoRefreshToken,
    #[error("{0}")]
    AuthServer(emailengine_oauth::Error),
    #[error("Authentication server requested but not set")]
    AuthServerUnset,
    #[error("Failed to get renewal lock")]
    Lock,
    /// A `delegatedAccount` chain that loops, is too long or names a missing account.
    #[error("{0}")]
    Delegation(&'static str),
    /// The app names no server for the protocol.
    #[error("The OAuth2 app has no {0} server")]
    NoServer(&'static str),
    /// Discovery of a generic app's endpoints failed, or a stored value is unreadable.
    #[error("{0}")]
    Config(emailengine_oauth::Error),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl LoginError {
    /// Worth retrying unchanged (network, 5xx, store): a connection error, not an
    /// authentication error.
    pub fn is_transient(&self) -> bool {
        match self {
            LoginError::Renew(e) => e.is_transient(),
            LoginError::AuthServer(e) | LoginError::Config(e) => e.is_transient(),
            LoginError::Store(_) | LoginError::Lock => true,
            _ => false,
        }
    }

    /// `serverResponseCode` of the state and webhook this error causes.
    pub fn code(&self) -> &'static str {
        match self {
            LoginError::Renew(_) | LoginError::NoRefreshToken => "OauthRenewError",
            LoginError::AuthServer(_) | LoginError::AuthServerUnset => "HTTPRequestError",
            LoginError::AppNotFound => "AppNotFound",
            _ => "InternalConfigError",
        }
    }

    /// `{response, serverResponseCode, tokenRequest?}` as EmailEngine reports it.
    pub fn detail(&self) -> Value {
        let mut detail = json!({"response": self.to_string(), "serverResponseCode": self.code()});
        if let LoginError::Renew(e) = self {
            detail["tokenRequest"] = e.token_request();
        }
        detail
    }
}

/// A current access token of an OAuth2 account.
#[derive(Clone)]
pub struct AccountToken {
    pub access_token: String,
    /// Who logs in with it for the protocol asked.
    pub user: String,
    pub app: Arc<OAuthApp>,
    pub expires_ms: Option<i64>,
    pub scopes: Vec<String>,
    /// Served as stored, without a renewal.
    pub cached: bool,
    /// From the external token provider (no expiry is tracked).
    pub from_auth_server: bool,
}

impl std::fmt::Debug for AccountToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AccountToken")
            .field("user", &self.user)
            .field("expires_ms", &self.expires_ms)
            .field("cached", &self.cached)
            .finish_non_exhaustive()
    }
}

/// Resolves OAuth2 accounts' logins; one per process, shared by IMAP, SMTP and the API.
pub struct OAuthLogins {
    store: Arc<dyn Store>,
    settings: Settings,
    cipher: Option<Arc<FieldCipher>>,
    tokens: TokenClient,
    http: reqwest::Client,
    providers: ProviderTable,
    /// Names this process as the holder of renewal locks.
    owner: String,
    discovered: Mutex<HashMap<String, (Instant, Endpoints)>>,
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

impl OAuthLogins {
    pub fn new(
        store: Arc<dyn Store>,
        settings: Settings,
        cipher: Option<Arc<FieldCipher>>,
        http: reqwest::Client,
        providers: ProviderTable,
    ) -> Self {
        let mut nonce = [0u8; 8];
        rand::fill(&mut nonce);
        Self {
            store,
            settings,
            cipher,
            tokens: TokenClient::from_client(http.clone()),
            http,
            providers,
            owner: format!("{}:{:016x}", std::process::id(), u64::from_le_bytes(nonce)),
            discovered: Mutex::new(HashMap::new()),
        }
    }

    pub fn providers(&self) -> &ProviderTable {
        &self.providers
    }

    pub fn token_client(&self) -> &TokenClient {
        &self.tokens
    }

    /// The app an OAuth2 account names, secrets opened.
    pub async fn app(&self, id: &str) -> Result<Arc<OAuthApp>, LoginError> {
        let (data, _) = self.store.app(id).await?.ok_or(LoginError::AppNotFound)?;
        decode_data(&data, self.cipher.as_deref())
            .map(Arc::new)
            .map_err(LoginError::Config)
    }

    /// The token endpoints of an app (a generic app's discovery is reused for 10 min).
    pub async fn endpoints(&self, app: &OAuthApp) -> Result<Endpoints, LoginError> {
        if let Some(e) = self.providers.endpoints(app) {
            return Ok(e);
        }
        let key = app.id.clone().unwrap_or_default();
        if let Ok(cache) = self.discovered.lock()
            && let Some((at, e)) = cache.get(&key)
            && at.elapsed() < DISCOVERY_TTL
        {
            return Ok(e.clone());
        }
        let endpoints = self
            .tokens
            .endpoints(&self.providers, app)
            .await
            .map_err(LoginError::Config)?;
        if let Ok(mut cache) = self.discovered.lock() {
            cache.insert(key, (Instant::now(), endpoints.clone()));
        }
        Ok(endpoints)
    }

    /// The signed-in user's claims from the provider's userinfo endpoint (OpenID Connect), for
    /// the address of an account created by the hosted form.
    pub async fn userinfo(&self, endpoints: &Endpoints, access_token: &str) -> Option<Value> {
        let url = endpoints.userinfo.as_deref()?;
        let response = self
            .http
            .get(url)
            .bearer_auth(access_token)
            .header("accept", "application/json")
            .send()
            .await
            .ok()?;
        if !response.status().is_success() {
            return None;
        }
        response.json().await.ok()
    }

    /// Server settings for an OAuth2 account's IMAP or SMTP connection, with a current token;
    /// `Ok(None)` for an account without `oauth2`.
    pub async fn server_settings(
        &self,
        record: &AccountRecord,
        protocol: Protocol,
    ) -> Result<Option<ServerSettings>, LoginError> {
        if record.oauth2().is_none() {
            return Ok(None);
        }
        let token = self.token(&record.account, protocol).await?;
        let servers = self.providers.mail_servers(&token.app);
        let (server, name): (Option<MailServer>, _) = match protocol {
            Protocol::Smtp => (servers.smtp, "SMTP"),
            _ => (servers.imap, "IMAP"),
        };
        let server = server.ok_or(LoginError::NoServer(name))?;
        let mechanism = match (token.app.sasl_mechanism, protocol) {
            (Some(SaslMechanism::OAuthBearer), _) => Some(TokenMechanism::OAuthBearer),
            (Some(SaslMechanism::XOAuth2), _) | (None, Protocol::Smtp) => {
                Some(TokenMechanism::XOAuth2)
            }
            (None, _) => None,
        };
        Ok(Some(ServerSettings {
            host: server.host,
            port: server.port,
            secure: server.secure,
            starttls: None,
            user: token.user.clone(),
            pass: String::new(),
            accept_invalid_certs: false,
            disabled: false,
            disable_imap4rev2: false,
            local_address: None,
            token: Some(TokenLogin {
                access_token: token.access_token,
                mechanism,
            }),
        }))
    }

    /// The account's current access token, renewed first when needed. An account with
    /// `auth.delegatedAccount` borrows the token of the account at the end of that chain
    /// (renewed there); it logs in to IMAP as its own `delegatedUser`, elsewhere as the
    /// token's owner (spec §15.3).
    pub async fn token(
        &self,
        account: &str,
        protocol: Protocol,
    ) -> Result<AccountToken, LoginError> {
        let oauth2 = self.oauth2_of(account).await?;
        let Some((owner, owner_oauth2)) = self.token_owner(account, &oauth2).await? else {
            return self.own_token(account, oauth2, protocol).await;
        };
        let mut token = self.own_token(&owner, owner_oauth2, Protocol::Smtp).await?;
        if protocol == Protocol::Imap
            && let Some(shared) = auth_field(&oauth2, "delegatedUser")
        {
            token.user = shared.to_string();
        }
        Ok(token)
    }

    /// The account whose tokens a delegated account uses, with its `oauth2`; `None` when the
    /// account uses its own.
    async fn token_owner(
        &self,
        account: &str,
        oauth2: &Value,
    ) -> Result<Option<(String, Value)>, LoginError> {
        let mut seen = vec![account.to_string()];
        let mut current: Option<(String, Value)> = None;
        while let Some(next) = auth_field(
            current.as_ref().map_or(oauth2, |(_, o)| o),
            "delegatedAccount",
        )
        .filter(|n| !n.is_empty())
        .map(str::to_string)
        {
            if seen.contains(&next) {
                return Err(LoginError::Delegation("Delegation looping detected"));
            }
            if seen.len() > MAX_DELEGATION_HOPS {
                return Err(LoginError::Delegation("Too many delegation hops"));
            }
            let next_oauth2 = match self.oauth2_of(&next).await {
                Err(LoginError::AppNotFound) => {
                    return Err(LoginError::Delegation("Delegated account not found"));
                }
                other => other?,
            };
            seen.push(next.clone());
            current = Some((next, next_oauth2));
        }
        Ok(current)
    }

    async fn own_token(
        &self,
        account: &str,
        oauth2: Value,
        protocol: Protocol,
    ) -> Result<AccountToken, LoginError> {
        let app = self.app(&app_id(&oauth2)?).await?;
        if oauth2.get("useAuthServer").and_then(Value::as_bool) == Some(true)
            && let Some(token) = self
                .ask_auth_server(account, &oauth2, &app, protocol)
                .await?
        {
            return Ok(token);
        }
        if !needs_refresh(&oauth2, now_ms()) {
            return self.stored(&oauth2, app, protocol, true);
        }
        self.renew(account, app, protocol).await
    }

    /// Marks the stored token as unusable after a server refused `used`, so the next
    /// [`Self::token`] renews it. A token another process already replaced is left alone.
    pub async fn invalidate(&self, account: &str, used: &str) -> Result<(), LoginError> {
        let oauth2 = self.oauth2_of(account).await?;
        let (account, mut oauth2) = match self.token_owner(account, &oauth2).await? {
            Some(owner) => owner,
            None => (account.to_string(), oauth2),
        };
        let account = account.as_str();
        let tokens = stored_tokens(&oauth2, self.cipher.as_deref())
            .map_err(|e| LoginError::Config(e.into()))?;
        if tokens.access_token.as_deref() == Some(used) {
            invalidate_access_token(&mut oauth2, now_ms());
            self.write(account, &oauth2).await?;
        }
        Ok(())
    }

    async fn oauth2_of(&self, account: &str) -> Result<Value, LoginError> {
        self.store
            .account_field(account, "oauth2")
            .await?
            .and_then(|raw| serde_json::from_str::<Value>(&raw).ok())
            .filter(Value::is_object)
            .ok_or(LoginError::AppNotFound)
    }

    async fn write(&self, account: &str, oauth2: &Value) -> Result<(), LoginError> {
        let mut fields = std::collections::BTreeMap::new();
        fields.insert("oauth2".to_string(), oauth2.to_string());
        self.store.update_account(account, &fields).await?;
        Ok(())
    }

    fn stored(
        &self,
        oauth2: &Value,
        app: Arc<OAuthApp>,
        protocol: Protocol,
        cached: bool,
    ) -> Result<AccountToken, LoginError> {
        let tokens = stored_tokens(oauth2, self.cipher.as_deref())
            .map_err(|e| LoginError::Config(e.into()))?;
        let access_token = tokens.access_token.ok_or(LoginError::NoRefreshToken)?;
        Ok(AccountToken {
            access_token,
            user: login_user(oauth2, protocol, None),
            app,
            expires_ms: tokens.expires_ms,
            scopes: scopes_of(oauth2),
            cached,
            from_auth_server: false,
        })
    }

    /// Renews under the account's lock; when another process renewed meanwhile, its token is
    /// used.
    async fn renew(
        &self,
        account: &str,
        app: Arc<OAuthApp>,
        protocol: Protocol,
    ) -> Result<AccountToken, LoginError> {
        let lock = format!("oauth:{account}");
        let deadline = Instant::now() + LOCK_WAIT;
        while !self.store.try_lock(&lock, &self.owner, LOCK_TTL_MS).await? {
            if Instant::now() >= deadline {
                return Err(LoginError::Lock);
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let outcome = self.renew_locked(account, app, protocol).await;
        if let Err(e) = self.store.unlock(&lock, &self.owner).await {
            tracing::warn!(account, err = %e, "Failed to release the token renewal lock");
        }
        outcome
    }

    async fn renew_locked(
        &self,
        account: &str,
        app: Arc<OAuthApp>,
        protocol: Protocol,
    ) -> Result<AccountToken, LoginError> {
        let mut oauth2 = self.oauth2_of(account).await?;
        let now = now_ms();
        if !needs_refresh(&oauth2, now) {
            return self.stored(&oauth2, app, protocol, true);
        }
        let tokens = stored_tokens(&oauth2, self.cipher.as_deref())
            .map_err(|e| LoginError::Config(e.into()))?;
        let endpoints = self.endpoints(&app).await?;
        let user = login_user(&oauth2, Protocol::Smtp, None);
        let result = match app.provider {
            Provider::GmailService => self.tokens.service_account(&app, &endpoints, &user).await,
            Provider::OutlookService => self.tokens.client_credentials(&app, &endpoints).await,
            _ => {
                let refresh_token = tokens.refresh_token.ok_or(LoginError::NoRefreshToken)?;
                self.tokens.refresh(&app, &endpoints, &refresh_token).await
            }
        };
        let provider = app.provider.as_str();
        let grant = match result {
            Ok(g) => {
                metrics::counter!("oauth2_token_refresh", "status" => "success", "provider" => provider, "statusCode" => "200").increment(1);
                g
            }
            Err(e) => {
                let status = e.status.map_or_else(|| "0".to_string(), |s| s.to_string());
                metrics::counter!("oauth2_token_refresh", "status" => "failure", "provider" => provider, "statusCode" => status).increment(1);
                return Err(LoginError::Renew(e));
            }
        };
        apply_grant(&mut oauth2, &grant, now, self.cipher.as_deref());
        self.write(account, &oauth2).await?;
        tracing::info!(account, provider, "Renewed the OAuth2 access token");
        let mut token = self.stored(&oauth2, app, protocol, false)?;
        token.access_token = grant.access_token;
        Ok(token)
    }

    /// A token from the external token provider; `None` when none is configured but the
    /// account still holds stored tokens (then those are used).
    async fn ask_auth_server(
        &self,
        account: &str,
        oauth2: &Value,
        app: &Arc<OAuthApp>,
        protocol: Protocol,
    ) -> Result<Option<AccountToken>, LoginError> {
        let server = self
            .settings
            .get_one("authServer")
            .await?
            .and_then(|v| v.as_str().map(str::to_string))
            .filter(|s| !s.is_empty());
        let Some(server) = server else {
            let tokens = stored_tokens(oauth2, self.cipher.as_deref())
                .map_err(|e| LoginError::Config(e.into()))?;
            if tokens.access_token.is_some() || tokens.refresh_token.is_some() {
                tracing::warn!(
                    account,
                    "useAuthServer is set but no authServer is configured; using stored tokens"
                );
                return Ok(None);
            }
            return Err(LoginError::AuthServerUnset);
        };
        let proto = match protocol {
            Protocol::Imap => Proto::Imap,
            Protocol::Smtp => Proto::Smtp,
            Protocol::Api => Proto::Api,
        };
        let credentials = auth_server::fetch(&self.http, &server, account, proto)
            .await
            .map_err(LoginError::AuthServer)?;
        let ServerCredentials::AccessToken { user, access_token } = credentials else {
            return Err(LoginError::AuthServer(emailengine_oauth::Error::Http {
                message: "The authentication server returned no access token".into(),
                transient: false,
            }));
        };
        Ok(Some(AccountToken {
            access_token,
            user: login_user(oauth2, protocol, Some(&user)),
            app: app.clone(),
            expires_ms: None,
            scopes: scopes_of(oauth2),
            cached: false,
            from_auth_server: true,
        }))
    }
}

fn app_id(oauth2: &Value) -> Result<String, LoginError> {
    oauth2
        .get("provider")
        .and_then(Value::as_str)
        .map(str::to_string)
        .ok_or(LoginError::AppNotFound)
}

fn auth_field<'a>(oauth2: &'a Value, key: &str) -> Option<&'a str> {
    oauth2
        .get("auth")
        .and_then(|a| a.get(key))
        .and_then(Value::as_str)
}

/// IMAP logs in as the shared mailbox (`delegatedUser`) when there is one; SMTP and the API
/// as the token's owner (spec §15.3).
fn login_user(oauth2: &Value, protocol: Protocol, owner: Option<&str>) -> String {
    let auth = oauth2.get("auth");
    let field = |k: &str| auth.and_then(|a| a.get(k)).and_then(Value::as_str);
    let owner = owner.or_else(|| field("user")).unwrap_or_default();
    match (protocol, field("delegatedUser")) {
        (Protocol::Imap, Some(shared)) => shared.to_string(),
        _ => owner.to_string(),
    }
}

fn scopes_of(oauth2: &Value) -> Vec<String> {
    match oauth2.get("scope") {
        Some(Value::Array(items)) => items
            .iter()
            .filter_map(|s| s.as_str().map(str::to_string))
            .collect(),
        Some(Value::String(s)) => s.split_whitespace().map(str::to_string).collect(),
        _ => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shared_mailboxes_log_in_as_the_mailbox_over_imap_only() {
        let oauth2 =
            json!({"auth": {"user": "me@example.com", "delegatedUser": "team@example.com"}});
        assert_eq!(
            login_user(&oauth2, Protocol::Imap, None),
            "team@example.com"
        );
        assert_eq!(login_user(&oauth2, Protocol::Smtp, None), "me@example.com");
        assert_eq!(
            login_user(&oauth2, Protocol::Smtp, Some("srv@example.com")),
            "srv@example.com"
        );
        let plain = json!({"auth": {"user": "me@example.com"}});
        assert_eq!(login_user(&plain, Protocol::Imap, None), "me@example.com");
        assert_eq!(scopes_of(&json!({"scope": ["a", "b"]})), ["a", "b"]);
        assert_eq!(scopes_of(&json!({"scope": "a b"})), ["a", "b"]);
    }

    #[test]
    fn errors_report_like_emailengine() {
        let e = LoginError::NoRefreshToken;
        assert!(!e.is_transient());
        assert_eq!(
            e.detail(),
            json!({"response": "Missing refresh token", "serverResponseCode": "OauthRenewError"})
        );
        assert_eq!(LoginError::AppNotFound.code(), "AppNotFound");
        assert!(LoginError::Lock.is_transient());
    }
}
