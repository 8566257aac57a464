//! What each provider is at the other end (spec §14.1, §14.2): authorization and token
//! endpoints per provider and Microsoft cloud, the scopes an app asks for, the authorize URL a
//! user is sent to, and the IMAP/SMTP servers its accounts use. Configuration can replace the
//! endpoints and mail servers of any provider ([`ProviderTable`]), for tests and sovereign
//! clouds. Pure: discovery of generic endpoints is done by [`crate::token::TokenClient`].

use std::collections::HashMap;

use reqwest::Url;

use crate::app::{BaseScopes, Cloud, OAuthApp, Provider};
use crate::{Error, Result};

/// The URLs of one authorization server. Microsoft URLs may hold `{authority}`, replaced by the
/// app's `authority` (tenant) when resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoints {
    pub authorize: String,
    pub token: String,
    pub revoke: Option<String>,
    pub userinfo: Option<String>,
    pub introspection: Option<String>,
}

/// One IMAP or SMTP server; `secure` = TLS from the first byte (else STARTTLS or plain).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MailServer {
    pub host: String,
    pub port: u16,
    pub secure: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct MailServers {
    pub imap: Option<MailServer>,
    pub smtp: Option<MailServer>,
}

/// What configuration replaces of one built-in provider (`None`: keep the public value).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ProviderOverride {
    pub authorize: Option<String>,
    pub token: Option<String>,
    pub revoke: Option<String>,
    pub userinfo: Option<String>,
    pub imap: Option<MailServer>,
    pub smtp: Option<MailServer>,
}

/// Provider endpoints and mail servers with configured replacements. The default table is
/// the providers' public services.
#[derive(Debug, Clone, Default)]
pub struct ProviderTable {
    endpoints: HashMap<Provider, Endpoints>,
    mail: HashMap<Provider, MailServers>,
}

impl ProviderTable {
    /// Replaces the endpoints of a provider (all clouds). A generic app's own URLs still win.
    pub fn with_endpoints(mut self, provider: Provider, endpoints: Endpoints) -> Self {
        self.endpoints.insert(provider, endpoints);
        self
    }

    /// Replaces the mail servers of a provider (all clouds).
    pub fn with_mail_servers(mut self, provider: Provider, servers: MailServers) -> Self {
        self.mail.insert(provider, servers);
        self
    }

    /// Points some of a built-in provider's endpoints and servers elsewhere, keeping the
    /// public (global cloud) values for what the override leaves out.
    pub fn with_override(self, provider: Provider, o: ProviderOverride) -> Self {
        if provider == Provider::Generic {
            return self;
        }
        let probe = OAuthApp::new(provider);
        let mut endpoints = self
            .endpoints
            .get(&provider)
            .cloned()
            .unwrap_or_else(|| default_endpoints(provider, Cloud::Global));
        let touched = o.authorize.is_some()
            || o.token.is_some()
            || o.revoke.is_some()
            || o.userinfo.is_some();
        if let Some(v) = o.authorize {
            endpoints.authorize = v;
        }
        if let Some(v) = o.token {
            endpoints.token = v;
        }
        if o.revoke.is_some() {
            endpoints.revoke = o.revoke;
        }
        if o.userinfo.is_some() {
            endpoints.userinfo = o.userinfo;
        }
        let mut servers = self.mail_servers(&probe);
        let mail_touched = o.imap.is_some() || o.smtp.is_some();
        if o.imap.is_some() {
            servers.imap = o.imap;
        }
        if o.smtp.is_some() {
            servers.smtp = o.smtp;
        }
        let table = if touched {
            self.with_endpoints(provider, endpoints)
        } else {
            self
        };
        if mail_touched {
            table.with_mail_servers(provider, servers)
        } else {
            table
        }
    }

    /// The endpoints of an app, or `None` for a generic app that names only an `issuer` (its
    /// endpoints come from OpenID discovery).
    pub fn endpoints(&self, app: &OAuthApp) -> Option<Endpoints> {
        if app.provider == Provider::Generic {
            return generic_endpoints(app, None);
        }
        let base = self
            .endpoints
            .get(&app.provider)
            .cloned()
            .unwrap_or_else(|| default_endpoints(app.provider, app.cloud()));
        let authority = app.authority.as_deref().unwrap_or("common");
        let fill = |url: String| url.replace("{authority}", authority);
        Some(Endpoints {
            authorize: fill(base.authorize),
            token: fill(base.token),
            revoke: base.revoke.map(fill),
            userinfo: base.userinfo.map(fill),
            introspection: base.introspection.map(fill),
        })
    }

    pub fn mail_servers(&self, app: &OAuthApp) -> MailServers {
        if let Some(servers) = self.mail.get(&app.provider) {
            return servers.clone();
        }
        let server = |host: &str, port: u16, secure: bool| {
            Some(MailServer {
                host: host.to_string(),
                port,
                secure,
            })
        };
        match app.provider {
            Provider::Gmail | Provider::GmailService => MailServers {
                imap: server("imap.gmail.com", 993, true),
                smtp: server("smtp.gmail.com", 465, true),
            },
            Provider::Outlook | Provider::OutlookService => {
                let (imap, smtp) = match app.cloud() {
                    Cloud::Global => ("outlook.office365.com", "smtp.office365.com"),
                    Cloud::GccHigh => ("outlook.office365.us", "smtp.office365.us"),
                    Cloud::Dod => ("outlook-dod.office365.us", "outlook-dod.office365.us"),
                    Cloud::China => ("partner.outlook.cn", "partner.outlook.cn"),
                };
                MailServers {
                    imap: server(imap, 993, true),
                    smtp: server(smtp, 587, false),
                }
            }
            Provider::MailRu => MailServers {
                imap: server("imap.mail.ru", 993, true),
                smtp: server("smtp.mail.ru", 465, true),
            },
            Provider::Generic => {
                let pick =
                    |host: &Option<String>, port: Option<u16>, secure: Option<bool>, tls_port| {
                        let (host, port) = (host.clone()?, port?);
                        Some(MailServer {
                            host,
                            port,
                            secure: secure.unwrap_or(port == tls_port),
                        })
                    };
                MailServers {
                    imap: pick(&app.imap_host, app.imap_port, app.imap_secure, 993),
                    smtp: pick(&app.smtp_host, app.smtp_port, app.smtp_secure, 465),
                }
            }
        }
    }
}

/// A generic app's endpoints: its own URLs over the discovered ones.
pub(crate) fn generic_endpoints(
    app: &OAuthApp,
    discovered: Option<&Endpoints>,
) -> Option<Endpoints> {
    let own = |v: &Option<String>| v.clone();
    Some(Endpoints {
        authorize: own(&app.authorize_url).or_else(|| discovered.map(|d| d.authorize.clone()))?,
        token: own(&app.token_url).or_else(|| discovered.map(|d| d.token.clone()))?,
        revoke: own(&app.revoke_url).or_else(|| discovered.and_then(|d| d.revoke.clone())),
        userinfo: own(&app.userinfo_url).or_else(|| discovered.and_then(|d| d.userinfo.clone())),
        introspection: own(&app.introspection_url)
            .or_else(|| discovered.and_then(|d| d.introspection.clone())),
    })
}

fn default_endpoints(provider: Provider, cloud: Cloud) -> Endpoints {
    let s = |v: &str| v.to_string();
    match provider {
        Provider::Gmail | Provider::GmailService => Endpoints {
            authorize: s("https://accounts.google.com/o/oauth2/v2/auth"),
            token: s("https://oauth2.googleapis.com/token"),
            revoke: Some(s("https://oauth2.googleapis.com/revoke")),
            userinfo: None,
            introspection: None,
        },
        Provider::Outlook | Provider::OutlookService => {
            let login = microsoft_login_host(cloud);
            Endpoints {
                authorize: format!("https://{login}/{{authority}}/oauth2/v2.0/authorize"),
                token: format!("https://{login}/{{authority}}/oauth2/v2.0/token"),
                revoke: None,
                userinfo: Some(format!("https://{}/v1.0/me", graph_host(cloud))),
                introspection: None,
            }
        }
        Provider::MailRu => Endpoints {
            authorize: s("https://oauth.mail.ru/login"),
            token: s("https://oauth.mail.ru/token"),
            revoke: None,
            userinfo: Some(s("https://oauth.mail.ru/userinfo")),
            introspection: None,
        },
        // Generic apps carry their own URLs; an empty default keeps the table total.
        Provider::Generic => Endpoints {
            authorize: String::new(),
            token: String::new(),
            revoke: None,
            userinfo: None,
            introspection: None,
        },
    }
}

fn microsoft_login_host(cloud: Cloud) -> &'static str {
    match cloud {
        Cloud::Global => "login.microsoftonline.com",
        Cloud::GccHigh | Cloud::Dod => "login.microsoftonline.us",
        Cloud::China => "login.chinacloudapi.cn",
    }
}

/// The Microsoft Graph host of a cloud.
pub fn graph_host(cloud: Cloud) -> &'static str {
    match cloud {
        Cloud::Global => "graph.microsoft.com",
        Cloud::GccHigh => "graph.microsoft.us",
        Cloud::Dod => "dod-graph.microsoft.us",
        Cloud::China => "microsoftgraph.chinacloudapi.cn",
    }
}

/// The host on which a cloud's IMAP/SMTP scopes are defined.
fn outlook_scope_host(cloud: Cloud) -> &'static str {
    match cloud {
        Cloud::Global => "outlook.office.com",
        Cloud::GccHigh | Cloud::Dod => "outlook.office365.us",
        Cloud::China => "partner.outlook.cn",
    }
}

/// Prefixes under which a `skipScopes` entry also matches.
const SKIP_PREFIXES: &[&str] = &[
    "https://outlook.office.com/",
    "https://graph.microsoft.com/",
    "https://www.googleapis.com/auth/",
];

/// Default scopes of a generic app without `scopes`.
const GENERIC_DEFAULT_SCOPES: &[&str] = &["openid", "offline_access"];

/// The scopes an app requests (spec §14.2), in order.
pub fn scopes(app: &OAuthApp) -> Vec<String> {
    let base = app.base_scopes();
    let cloud = app.cloud();
    let defaults: Vec<String> = match app.provider {
        Provider::OutlookService => return vec![format!("https://{}/.default", graph_host(cloud))],
        Provider::Gmail | Provider::GmailService => vec![
            match base {
                BaseScopes::Imap => "https://mail.google.com/",
                BaseScopes::Api => "https://www.googleapis.com/auth/gmail.modify",
                BaseScopes::Pubsub => "https://www.googleapis.com/auth/pubsub",
            }
            .to_string(),
        ],
        Provider::Outlook => match base {
            BaseScopes::Api => {
                let graph = graph_host(cloud);
                vec![
                    format!("https://{graph}/Mail.ReadWrite"),
                    format!("https://{graph}/Mail.Send"),
                    "offline_access".into(),
                    format!("https://{graph}/User.Read"),
                ]
            }
            _ => {
                let host = outlook_scope_host(cloud);
                vec![
                    format!("https://{host}/IMAP.AccessAsUser.All"),
                    format!("https://{host}/SMTP.Send"),
                    "offline_access".into(),
                    "openid".into(),
                    "profile".into(),
                ]
            }
        },
        Provider::MailRu => vec!["userinfo".into(), "mail.imap".into()],
        Provider::Generic => match &app.scopes {
            Some(s) if !s.is_empty() => s.clone(),
            _ => GENERIC_DEFAULT_SCOPES
                .iter()
                .map(|s| s.to_string())
                .collect(),
        },
    };
    let mut list: Vec<String> = app
        .extra_scopes
        .iter()
        .flatten()
        .filter(|s| !defaults.contains(s))
        .fold(Vec::new(), |mut acc, s| {
            if !acc.contains(s) {
                acc.push(s.clone());
            }
            acc
        });
    list.extend(defaults);
    for skip in app.skip_scopes.iter().flatten() {
        list.retain(|s| s != skip && !SKIP_PREFIXES.iter().any(|p| *s == format!("{p}{skip}")));
    }
    if app.provider == Provider::Gmail {
        for s in ["openid", "email", "profile"] {
            if !list.iter().any(|x| x == s) {
                list.push(s.to_string());
            }
        }
    }
    list
}

/// What varies per authorization request.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuthorizeRequest {
    pub state: String,
    /// Prefills the provider's sign-in with this address.
    pub login_hint: Option<String>,
    /// Replaces the provider's default `prompt` (e.g. `select_account consent` to force consent).
    pub prompt: Option<String>,
}

/// The URL to send a user to for consent (spec §14.2), with exactly the provider's parameters.
pub fn authorize_url(
    app: &OAuthApp,
    endpoints: &Endpoints,
    request: &AuthorizeRequest,
) -> Result<String> {
    if app.provider.is_service() {
        return Err(Error::NotInteractive);
    }
    let mut url = Url::parse(&endpoints.authorize).map_err(|_| Error::InvalidUrl {
        what: "authorization",
    })?;
    let scope = scopes(app).join(" ");
    let client_id = app.client_id.as_deref().unwrap_or_default();
    let redirect = app.redirect_url.as_deref().unwrap_or_default();
    {
        let mut q = url.query_pairs_mut();
        q.append_pair("client_id", client_id)
            .append_pair("response_type", "code")
            .append_pair("redirect_uri", redirect);
        match app.provider {
            Provider::Gmail => {
                q.append_pair("response_mode", "query")
                    .append_pair("scope", &scope)
                    .append_pair("access_type", "offline");
                if app.google_workspace_accounts == Some(true) {
                    q.append_pair("hd", "*");
                }
                if let Some(hint) = &request.login_hint {
                    q.append_pair("login_hint", hint);
                }
                q.append_pair("prompt", request.prompt.as_deref().unwrap_or("consent"))
                    .append_pair("state", &request.state);
            }
            Provider::Outlook => {
                q.append_pair("response_mode", "query")
                    .append_pair("client_info", "1")
                    .append_pair(
                        "prompt",
                        request.prompt.as_deref().unwrap_or("select_account"),
                    );
                if let Some(hint) = &request.login_hint {
                    q.append_pair("login_hint", hint);
                }
                q.append_pair("scope", &scope)
                    .append_pair("state", &request.state);
            }
            Provider::MailRu => {
                q.append_pair("scope", &scope)
                    .append_pair("state", &request.state)
                    .append_pair("prompt_force", "1");
            }
            Provider::Generic => {
                // Refresh tokens for `offline_access` need explicit consent (OIDC Core §11).
                q.append_pair("scope", &scope)
                    .append_pair("state", &request.state)
                    .append_pair("prompt", request.prompt.as_deref().unwrap_or("consent"));
                if let Some(hint) = &request.login_hint {
                    q.append_pair("login_hint", hint);
                }
            }
            Provider::GmailService | Provider::OutlookService => {}
        }
    }
    Ok(url.into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overrides_replace_only_what_they_name() {
        let table = ProviderTable::default().with_override(
            Provider::Outlook,
            ProviderOverride {
                token: Some("http://127.0.0.1:9/{authority}/token".into()),
                imap: Some(MailServer {
                    host: "127.0.0.1".into(),
                    port: 1143,
                    secure: false,
                }),
                ..Default::default()
            },
        );
        let mut app = OAuthApp::new(Provider::Outlook);
        app.authority = Some("contoso".into());
        let e = table.endpoints(&app).unwrap();
        assert_eq!(e.token, "http://127.0.0.1:9/contoso/token");
        assert_eq!(
            e.authorize,
            "https://login.microsoftonline.com/contoso/oauth2/v2.0/authorize"
        );
        let servers = table.mail_servers(&app);
        assert_eq!(servers.imap.unwrap().port, 1143);
        assert_eq!(
            servers.smtp.unwrap(),
            MailServer {
                host: "smtp.office365.com".into(),
                port: 587,
                secure: false
            }
        );
        let untouched =
            ProviderTable::default().with_override(Provider::Gmail, ProviderOverride::default());
        assert_eq!(
            untouched
                .endpoints(&OAuthApp::new(Provider::Gmail))
                .unwrap()
                .token,
            "https://oauth2.googleapis.com/token"
        );
    }

    fn app(provider: Provider) -> OAuthApp {
        let mut app = OAuthApp::new(provider);
        app.client_id = Some("cid".into());
        app.redirect_url = Some("https://ee.example/oauth".into());
        app
    }

    fn strs(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn default_scopes_per_provider() {
        assert_eq!(
            scopes(&app(Provider::Gmail)),
            strs(&["https://mail.google.com/", "openid", "email", "profile"])
        );
        let mut svc = app(Provider::GmailService);
        assert_eq!(scopes(&svc), strs(&["https://mail.google.com/"]));
        svc.base_scopes = Some(BaseScopes::Pubsub);
        assert_eq!(
            scopes(&svc),
            strs(&["https://www.googleapis.com/auth/pubsub"])
        );
        assert_eq!(
            scopes(&app(Provider::Outlook)),
            strs(&[
                "https://outlook.office.com/IMAP.AccessAsUser.All",
                "https://outlook.office.com/SMTP.Send",
                "offline_access",
                "openid",
                "profile"
            ])
        );
        let mut gov = app(Provider::Outlook);
        gov.cloud = Some(Cloud::GccHigh);
        gov.base_scopes = Some(BaseScopes::Api);
        assert_eq!(
            scopes(&gov),
            strs(&[
                "https://graph.microsoft.us/Mail.ReadWrite",
                "https://graph.microsoft.us/Mail.Send",
                "offline_access",
                "https://graph.microsoft.us/User.Read"
            ])
        );
        let mut svc = app(Provider::OutlookService);
        svc.extra_scopes = Some(strs(&["ignored"]));
        svc.cloud = Some(Cloud::China);
        assert_eq!(
            scopes(&svc),
            strs(&["https://microsoftgraph.chinacloudapi.cn/.default"])
        );
        let mut ru = app(Provider::MailRu);
        ru.base_scopes = Some(BaseScopes::Api);
        assert_eq!(scopes(&ru), strs(&["userinfo", "mail.imap"]));
        assert_eq!(
            scopes(&app(Provider::Generic)),
            strs(&["openid", "offline_access"])
        );
    }

    #[test]
    fn extra_scopes_are_prepended_and_skip_scopes_match_prefixes() {
        let mut a = app(Provider::Outlook);
        a.extra_scopes = Some(strs(&[
            "Calendars.Read",
            "offline_access",
            "Calendars.Read",
        ]));
        a.skip_scopes = Some(strs(&["SMTP.Send", "profile"]));
        assert_eq!(
            scopes(&a),
            strs(&[
                "Calendars.Read",
                "https://outlook.office.com/IMAP.AccessAsUser.All",
                "offline_access",
                "openid"
            ])
        );
        let mut g = app(Provider::Gmail);
        g.base_scopes = Some(BaseScopes::Api);
        g.skip_scopes = Some(strs(&["gmail.modify", "email"]));
        g.extra_scopes = Some(strs(&["https://www.googleapis.com/auth/gmail.labels"]));
        assert_eq!(
            scopes(&g),
            strs(&[
                "https://www.googleapis.com/auth/gmail.labels",
                "openid",
                "email",
                "profile"
            ]),
            "Gmail always ends with the OpenID scopes, even when skipped"
        );
    }

    fn query(url: &str) -> Vec<(String, String)> {
        Url::parse(url)
            .unwrap()
            .query_pairs()
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect()
    }

    fn pairs(v: &[(&str, &str)]) -> Vec<(String, String)> {
        v.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn google_authorize_url() {
        let mut a = app(Provider::Gmail);
        a.google_workspace_accounts = Some(true);
        let table = ProviderTable::default();
        let req = AuthorizeRequest {
            state: "account:add:abc".into(),
            login_hint: Some("ann@example.com".into()),
            prompt: None,
        };
        let url = authorize_url(&a, &table.endpoints(&a).unwrap(), &req).unwrap();
        assert!(url.starts_with("https://accounts.google.com/o/oauth2/v2/auth?client_id=cid&"));
        assert_eq!(
            query(&url),
            pairs(&[
                ("client_id", "cid"),
                ("response_type", "code"),
                ("redirect_uri", "https://ee.example/oauth"),
                ("response_mode", "query"),
                ("scope", "https://mail.google.com/ openid email profile"),
                ("access_type", "offline"),
                ("hd", "*"),
                ("login_hint", "ann@example.com"),
                ("prompt", "consent"),
                ("state", "account:add:abc"),
            ])
        );
    }

    #[test]
    fn microsoft_authorize_url_uses_cloud_and_authority() {
        let mut a = app(Provider::Outlook);
        a.authority = Some("contoso.onmicrosoft.com".into());
        a.cloud = Some(Cloud::Dod);
        let endpoints = ProviderTable::default().endpoints(&a).unwrap();
        assert_eq!(
            endpoints.token,
            "https://login.microsoftonline.us/contoso.onmicrosoft.com/oauth2/v2.0/token"
        );
        let url = authorize_url(
            &a,
            &endpoints,
            &AuthorizeRequest {
                state: "s".into(),
                ..Default::default()
            },
        )
        .unwrap();
        assert!(url.starts_with(
            "https://login.microsoftonline.us/contoso.onmicrosoft.com/oauth2/v2.0/authorize?"
        ));
        assert_eq!(
            query(&url),
            pairs(&[
                ("client_id", "cid"),
                ("response_type", "code"),
                ("redirect_uri", "https://ee.example/oauth"),
                ("response_mode", "query"),
                ("client_info", "1"),
                ("prompt", "select_account"),
                (
                    "scope",
                    "https://outlook.office365.us/IMAP.AccessAsUser.All https://outlook.office365.us/SMTP.Send offline_access openid profile"
                ),
                ("state", "s"),
            ])
        );
    }

    #[test]
    fn mail_ru_and_generic_authorize_urls() {
        let table = ProviderTable::default();
        let a = app(Provider::MailRu);
        let req = AuthorizeRequest {
            state: "s".into(),
            login_hint: Some("x@mail.ru".into()),
            prompt: None,
        };
        let url = authorize_url(&a, &table.endpoints(&a).unwrap(), &req).unwrap();
        assert_eq!(
            query(&url),
            pairs(&[
                ("client_id", "cid"),
                ("response_type", "code"),
                ("redirect_uri", "https://ee.example/oauth"),
                ("scope", "userinfo mail.imap"),
                ("state", "s"),
                ("prompt_force", "1"),
            ])
        );
        let mut g = app(Provider::Generic);
        g.authorize_url = Some("http://127.0.0.1:9180/auth?tenant=1".into());
        g.token_url = Some("http://127.0.0.1:9180/token".into());
        g.scopes = Some(strs(&["openid", "offline_access", "mail"]));
        let url = authorize_url(&g, &table.endpoints(&g).unwrap(), &req).unwrap();
        assert_eq!(
            query(&url),
            pairs(&[
                ("tenant", "1"),
                ("client_id", "cid"),
                ("response_type", "code"),
                ("redirect_uri", "https://ee.example/oauth"),
                ("scope", "openid offline_access mail"),
                ("state", "s"),
                ("prompt", "consent"),
                ("login_hint", "x@mail.ru"),
            ])
        );
        assert!(matches!(
            authorize_url(
                &app(Provider::GmailService),
                &table.endpoints(&a).unwrap(),
                &req
            ),
            Err(Error::NotInteractive)
        ));
    }

    #[test]
    fn overrides_replace_endpoints_and_servers() {
        let local = Endpoints {
            authorize: "http://127.0.0.1:9/{authority}/authorize".into(),
            token: "http://127.0.0.1:9/{authority}/token".into(),
            revoke: None,
            userinfo: None,
            introspection: None,
        };
        let imap = MailServer {
            host: "127.0.0.1".into(),
            port: 2143,
            secure: false,
        };
        let table = ProviderTable::default()
            .with_endpoints(Provider::OutlookService, local)
            .with_mail_servers(
                Provider::OutlookService,
                MailServers {
                    imap: Some(imap.clone()),
                    smtp: None,
                },
            );
        let mut a = app(Provider::OutlookService);
        a.authority = Some("tenant-1".into());
        assert_eq!(
            table.endpoints(&a).unwrap().token,
            "http://127.0.0.1:9/tenant-1/token"
        );
        assert_eq!(table.mail_servers(&a).imap, Some(imap));
        assert_eq!(
            ProviderTable::default()
                .endpoints(&app(Provider::Outlook))
                .unwrap()
                .authorize,
            "https://login.microsoftonline.com/common/oauth2/v2.0/authorize"
        );
    }

    #[test]
    fn default_mail_servers() {
        let table = ProviderTable::default();
        let mut o = app(Provider::Outlook);
        let s = table.mail_servers(&o);
        assert_eq!(
            (
                s.imap.unwrap().host,
                s.smtp.clone().unwrap().host,
                s.smtp.unwrap().secure
            ),
            (
                "outlook.office365.com".to_string(),
                "smtp.office365.com".to_string(),
                false
            )
        );
        o.cloud = Some(Cloud::China);
        assert_eq!(
            table.mail_servers(&o).smtp.unwrap().host,
            "partner.outlook.cn"
        );
        let g = table.mail_servers(&app(Provider::Gmail));
        assert_eq!(g.smtp.unwrap().port, 465);
        let mut generic = app(Provider::Generic);
        generic.imap_host = Some("127.0.0.1".into());
        generic.imap_port = Some(993);
        generic.smtp_host = Some("127.0.0.1".into());
        generic.smtp_port = Some(587);
        let s = table.mail_servers(&generic);
        assert!(s.imap.unwrap().secure);
        assert!(!s.smtp.unwrap().secure);
        assert_eq!(table.endpoints(&generic), None, "needs discovery");
    }
}
