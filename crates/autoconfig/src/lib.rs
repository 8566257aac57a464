//! Mail server discovery: given an email address, find its IMAP and SMTP servers the way
//! EmailEngine's `GET /v1/autoconfig` does — a table of well-known providers (by domain, then by
//! MX host), else DNS SRV records, Thunderbird autoconfig files and Microsoft Autodiscover.

mod autodiscover;
mod clientconfig;
mod lookup;
mod providers;
mod xml;

use serde_json::{Value, json};

pub use lookup::{Discovery, DiscoveryConfig};
pub use providers::{PRESETS, Preset};

/// A provider's published server, as the preset table spells it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Endpoint {
    pub host: &'static str,
    pub port: u16,
    /// TLS from the first byte (else plain text, upgraded with STARTTLS when offered).
    pub secure: bool,
}

/// A discovered server for one address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Server {
    pub host: String,
    pub port: u16,
    pub secure: bool,
    pub user: String,
}

impl Server {
    pub fn new(host: String, port: u16, secure: bool, user: String) -> Self {
        Self {
            host,
            port,
            secure,
            user,
        }
    }

    fn from_endpoint(endpoint: Endpoint, user: &str) -> Self {
        Self::new(
            endpoint.host.to_string(),
            endpoint.port,
            endpoint.secure,
            user.to_string(),
        )
    }

    /// EmailEngine's shape: `{auth: {user}, host, port, secure}`.
    pub fn to_json(&self) -> Value {
        json!({"auth": {"user": self.user}, "host": self.host, "port": self.port, "secure": self.secure})
    }
}

/// An address split for lookups; the domain is lowercase ASCII (IDNA applied).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Address {
    pub email: String,
    pub local: String,
    pub domain: String,
}

impl Address {
    /// `None` unless it is `local@domain` with a DNS domain name (not an IP literal).
    pub fn parse(email: &str) -> Option<Self> {
        let email = email.trim();
        let (local, domain) = email.rsplit_once('@')?;
        if local.is_empty() || local.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return None;
        }
        let domain = match url::Host::parse(domain.trim_end_matches('.')).ok()? {
            url::Host::Domain(d) if d.contains('.') && d.len() <= 253 => d,
            _ => return None,
        };
        Some(Self {
            email: format!("{local}@{domain}"),
            local: local.to_string(),
            domain,
        })
    }
}

/// Which lookup found the settings (EmailEngine's `_source` values).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Source {
    /// The table of well-known providers, by address domain or MX host.
    Mx,
    Srv,
    WellKnown,
    Autoconfig,
    Mozilla,
    Autodiscover,
    Unknown,
}

impl Source {
    pub const LOOKUPS: [Source; 6] = [
        Source::Mx,
        Source::Srv,
        Source::WellKnown,
        Source::Autoconfig,
        Source::Mozilla,
        Source::Autodiscover,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Mx => "mx",
            Self::Srv => "srv",
            Self::WellKnown => "well-known",
            Self::Autoconfig => "autoconfig",
            Self::Mozilla => "mozilla",
            Self::Autodiscover => "autodiscover",
            Self::Unknown => "unknown",
        }
    }

    pub fn parse(name: &str) -> Option<Self> {
        Self::LOOKUPS
            .into_iter()
            .find(|s| s.as_str().eq_ignore_ascii_case(name.trim()))
    }
}

/// What discovery found for one address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Discovered {
    pub imap: Option<Server>,
    pub smtp: Option<Server>,
    /// The provider, when it is one that requires app passwords.
    pub app_password: Option<&'static Preset>,
    pub source: Source,
}

impl Discovered {
    pub fn unknown() -> Self {
        Self {
            imap: None,
            smtp: None,
            app_password: None,
            source: Source::Unknown,
        }
    }

    fn from_preset(preset: &'static Preset, address: &Address) -> Self {
        Self {
            imap: Some(Server::from_endpoint(preset.imap, &address.email)),
            smtp: Some(Server::from_endpoint(preset.smtp, &address.email)),
            app_password: preset.app_password.is_some().then_some(preset),
            source: Source::Mx,
        }
    }

    /// EmailEngine's answer: `{imap: {...} | false, smtp: {...} | false, appPassword?, _source}`.
    pub fn to_json(&self) -> Value {
        let server = |s: &Option<Server>| s.as_ref().map_or(Value::Bool(false), Server::to_json);
        let mut out = json!({"imap": server(&self.imap), "smtp": server(&self.smtp)});
        if let (Some(preset), Some(object)) = (self.app_password, out.as_object_mut()) {
            object.insert(
                "appPassword".into(),
                json!({"required": true, "provider": preset.id, "name": preset.name,
                    "instructions": preset.app_password}),
            );
        }
        if let Some(object) = out.as_object_mut() {
            object.insert("_source".into(), Value::from(self.source.as_str()));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_need_a_domain_name() {
        let a = Address::parse(" Ann.Lee@Bücher.Example ").unwrap();
        assert_eq!(a.domain, "xn--bcher-kva.example");
        assert_eq!(a.local, "Ann.Lee");
        assert_eq!(a.email, "Ann.Lee@xn--bcher-kva.example");
        for bad in [
            "nobody",
            "@example.com",
            "a@",
            "a@[127.0.0.1]",
            "a@127.0.0.1",
            "a@localhost",
            "a b@example.com",
        ] {
            assert_eq!(Address::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn answers_have_emailengine_shape() {
        assert_eq!(
            Discovered::unknown().to_json(),
            json!({"imap": false, "smtp": false, "_source": "unknown"})
        );
        let address = Address::parse("me@gmail.com").unwrap();
        let gmail = providers::by_domain("gmail.com").unwrap();
        assert_eq!(
            Discovered::from_preset(gmail, &address).to_json(),
            json!({
                "imap": {"auth": {"user": "me@gmail.com"}, "host": "imap.gmail.com", "port": 993, "secure": true},
                "smtp": {"auth": {"user": "me@gmail.com"}, "host": "smtp.gmail.com", "port": 465, "secure": true},
                "appPassword": {"required": true, "provider": "gmail", "name": "Gmail / Google Workspace",
                    "instructions": "https://support.google.com/accounts/answer/185833"},
                "_source": "mx"
            })
        );
    }

    #[test]
    fn source_names_round_trip() {
        for s in Source::LOOKUPS {
            assert_eq!(Source::parse(s.as_str()), Some(s));
        }
        assert_eq!(Source::parse("unknown"), None);
    }
}
