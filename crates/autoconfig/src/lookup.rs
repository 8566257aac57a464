//! The network side of discovery: one DNS resolver (the system's, or a configured name server)
//! for MX, SRV and the HTTP fetches, and the HTTP clients for autoconfig files and Autodiscover.
//! Fetches aimed at hosts named by the address's domain never reach private addresses unless
//! allowed, since anyone holding a setup link chooses that domain.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use futures_util::stream::FuturesUnordered;
use hickory_resolver::TokioResolver;
use hickory_resolver::config::{NameServerConfig, ResolverConfig};
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hickory_resolver::proto::rr::RData;

use emailengine_core::network::EgressPolicy;

use crate::{Address, Discovered, Server, Source, autodiscover, clientconfig, providers};

/// Largest discovery document read.
const MAX_DOCUMENT: usize = 256 * 1024;

#[derive(Debug, Clone)]
pub struct DiscoveryConfig {
    /// The DNS server to ask (`None`: the system's resolver configuration).
    pub nameserver: Option<SocketAddr>,
    /// Mozilla's ISPDB base URL; the domain is appended.
    pub ispdb_url: String,
    /// Lookups that may touch the network (the provider table is always consulted).
    pub sources: Vec<Source>,
    /// Time allowed for each lookup.
    pub timeout: Duration,
    /// Whether fetches for an address's domain may reach loopback and private addresses.
    pub allow_private: bool,
}

impl Default for DiscoveryConfig {
    fn default() -> Self {
        Self {
            nameserver: None,
            ispdb_url: "https://autoconfig.thunderbird.net/v1.1/".into(),
            sources: Source::LOOKUPS.to_vec(),
            timeout: Duration::from_secs(5),
            allow_private: false,
        }
    }
}

pub struct Discovery {
    resolver: Option<Arc<TokioResolver>>,
    /// For URLs built from the address's domain (policy-checked resolution, no IP redirects).
    domain_http: reqwest::Client,
    /// For the operator's ISPDB URL.
    ispdb_http: reqwest::Client,
    config: DiscoveryConfig,
}

/// The webhooks' `private` egress policy, and no multicast.
fn allowed(ip: IpAddr, allow_private: bool) -> bool {
    allow_private || (EgressPolicy::Private.allows(ip) && !ip.is_multicast())
}

/// Resolves hosts for domain-derived fetches through the discovery resolver and drops the
/// addresses the policy refuses (the check and the connection use the same answer).
struct PolicyResolver {
    resolver: Option<Arc<TokioResolver>>,
    allow_private: bool,
}

impl reqwest::dns::Resolve for PolicyResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let resolver = self.resolver.clone();
        let allow_private = self.allow_private;
        Box::pin(async move {
            let ips: Vec<IpAddr> = match resolver {
                Some(r) => r
                    .lookup_ip(format!("{}.", name.as_str()))
                    .await?
                    .iter()
                    .collect(),
                None => tokio::net::lookup_host((name.as_str(), 0))
                    .await?
                    .map(|a| a.ip())
                    .collect(),
            };
            let addrs: Vec<SocketAddr> = ips
                .into_iter()
                .filter(|ip| allowed(*ip, allow_private))
                .map(|ip| SocketAddr::new(ip, 0))
                .collect();
            if addrs.is_empty() {
                return Err("the host has no address discovery may contact".into());
            }
            Ok(Box::new(addrs.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

fn user_agent() -> String {
    format!("emailengine-rs/{}", env!("CARGO_PKG_VERSION"))
}

fn build_resolver(nameserver: Option<SocketAddr>) -> Option<TokioResolver> {
    let built = match nameserver {
        Some(addr) => {
            let mut server = NameServerConfig::udp_and_tcp(addr.ip());
            for connection in &mut server.connections {
                connection.port = addr.port();
            }
            let config = ResolverConfig::from_parts(None, vec![], vec![server]);
            TokioResolver::builder_with_config(config, TokioRuntimeProvider::default()).build()
        }
        None => TokioResolver::builder_tokio().and_then(|b| b.build()),
    };
    match built {
        Ok(r) => Some(r),
        Err(e) => {
            tracing::warn!(err = %e, "No DNS resolver for mail server discovery; MX and SRV lookups are off");
            None
        }
    }
}

impl Discovery {
    pub fn new(config: DiscoveryConfig) -> Self {
        let resolver = build_resolver(config.nameserver).map(Arc::new);
        let allow_private = config.allow_private;
        let domain_http = reqwest::Client::builder()
            .dns_resolver(Arc::new(PolicyResolver {
                resolver: resolver.clone(),
                allow_private,
            }))
            .redirect(reqwest::redirect::Policy::custom(move |attempt| {
                let literal_refused = match attempt.url().host() {
                    Some(url::Host::Ipv4(ip)) => !allowed(IpAddr::V4(ip), allow_private),
                    Some(url::Host::Ipv6(ip)) => !allowed(IpAddr::V6(ip), allow_private),
                    _ => false,
                };
                if attempt.previous().len() >= 3 || literal_refused {
                    attempt.stop()
                } else {
                    attempt.follow()
                }
            }))
            .timeout(config.timeout)
            .user_agent(user_agent())
            .build()
            .unwrap_or_default();
        let ispdb_http = reqwest::Client::builder()
            .timeout(config.timeout)
            .user_agent(user_agent())
            .build()
            .unwrap_or_default();
        Self {
            resolver,
            domain_http,
            ispdb_http,
            config,
        }
    }

    fn enabled(&self, source: Source) -> bool {
        self.config.sources.contains(&source)
    }

    /// The settings for `email`; `_source: "unknown"` when nothing answers in time.
    pub async fn discover(&self, email: &str) -> Discovered {
        let Some(address) = Address::parse(email) else {
            return Discovered::unknown();
        };
        if let Some(preset) = providers::by_domain(&address.domain) {
            return Discovered::from_preset(preset, &address);
        }
        if self.enabled(Source::Mx)
            && let Ok(Some(preset)) =
                tokio::time::timeout(self.config.timeout, self.mx_provider(&address.domain)).await
        {
            return Discovered::from_preset(preset, &address);
        }
        let mut lookups: FuturesUnordered<_> = Source::LOOKUPS
            .into_iter()
            .filter(|s| *s != Source::Mx && self.enabled(*s))
            .map(|source| {
                let address = &address;
                async move {
                    tokio::time::timeout(self.config.timeout, self.lookup(source, address))
                        .await
                        .ok()
                        .flatten()
                }
            })
            .collect();
        while let Some(found) = lookups.next().await {
            if let Some(found) = found {
                return found;
            }
        }
        Discovered::unknown()
    }

    async fn mx_provider(&self, domain: &str) -> Option<&'static providers::Preset> {
        let resolver = self.resolver.as_ref()?;
        let lookup = resolver.mx_lookup(format!("{domain}.")).await.ok()?;
        let mut hosts: Vec<(u16, String)> = lookup
            .answers()
            .iter()
            .filter_map(|r| match &r.data {
                RData::MX(mx) => Some((
                    mx.preference,
                    mx.exchange
                        .to_ascii()
                        .trim_end_matches('.')
                        .to_ascii_lowercase(),
                )),
                _ => None,
            })
            .collect();
        hosts.sort();
        hosts.iter().find_map(|(_, host)| providers::by_mx(host))
    }

    /// The preferred target of an SRV name (RFC 2782 order; "." means no service).
    async fn srv(&self, name: String) -> Option<(String, u16)> {
        let resolver = self.resolver.as_ref()?;
        let lookup = resolver.srv_lookup(name).await.ok()?;
        let mut targets: Vec<(u16, std::cmp::Reverse<u16>, String, u16)> = lookup
            .answers()
            .iter()
            .filter_map(|r| match &r.data {
                RData::SRV(srv) if !srv.target.is_root() && srv.port != 0 => Some((
                    srv.priority,
                    std::cmp::Reverse(srv.weight),
                    srv.target
                        .to_ascii()
                        .trim_end_matches('.')
                        .to_ascii_lowercase(),
                    srv.port,
                )),
                _ => None,
            })
            .collect();
        targets.sort();
        targets
            .into_iter()
            .next()
            .map(|(_, _, host, port)| (host, port))
    }

    /// RFC 6186 (and 8314 for implicit TLS): IMAP required, submission when published.
    async fn srv_servers(&self, address: &Address) -> Option<Discovered> {
        let domain = &address.domain;
        let first = |tls: String, plain: String| async move {
            match self.srv(tls).await {
                Some((host, port)) => Some((host, port, true)),
                None => self.srv(plain).await.map(|(h, p)| (h, p, false)),
            }
        };
        let (imap, smtp) = tokio::join!(
            first(
                format!("_imaps._tcp.{domain}."),
                format!("_imap._tcp.{domain}.")
            ),
            first(
                format!("_submissions._tcp.{domain}."),
                format!("_submission._tcp.{domain}.")
            ),
        );
        let server = |(host, port, secure): (String, u16, bool)| {
            Server::new(host, port, secure, address.email.clone())
        };
        Some(Discovered {
            imap: Some(server(imap?)),
            smtp: smtp.map(server),
            app_password: None,
            source: Source::Srv,
        })
    }

    async fn read(response: reqwest::Response) -> Option<String> {
        if !response.status().is_success() {
            return None;
        }
        let mut response = response;
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await.ok()? {
            if body.len() + chunk.len() > MAX_DOCUMENT {
                return None;
            }
            body.extend_from_slice(&chunk);
        }
        Some(String::from_utf8_lossy(&body).into_owned())
    }

    async fn client_config(
        &self,
        client: &reqwest::Client,
        url: &str,
        address: &Address,
        source: Source,
    ) -> Option<Discovered> {
        let response = client.get(url).send().await.ok()?;
        let text = Self::read(response).await?;
        let (imap, smtp) = clientconfig::parse(&text, address)?;
        Some(Discovered {
            imap: Some(imap),
            smtp,
            app_password: None,
            source,
        })
    }

    async fn autodiscover(&self, address: &Address) -> Option<Discovered> {
        let body = autodiscover::request(address);
        for url in [
            format!(
                "https://autodiscover.{}/autodiscover/autodiscover.xml",
                address.domain
            ),
            format!("https://{}/autodiscover/autodiscover.xml", address.domain),
        ] {
            let Ok(response) = self
                .domain_http
                .post(&url)
                .header("content-type", "text/xml; charset=utf-8")
                .body(body.clone())
                .send()
                .await
            else {
                continue;
            };
            if let Some((imap, smtp)) = Self::read(response)
                .await
                .and_then(|text| autodiscover::parse(&text, address))
            {
                return Some(Discovered {
                    imap: Some(imap),
                    smtp,
                    app_password: None,
                    source: Source::Autodiscover,
                });
            }
        }
        None
    }

    async fn lookup(&self, source: Source, address: &Address) -> Option<Discovered> {
        let domain = &address.domain;
        let found = match source {
            Source::Srv => self.srv_servers(address).await,
            Source::WellKnown => {
                let url = format!("http://{domain}/.well-known/autoconfig/mail/config-v1.1.xml");
                self.client_config(&self.domain_http, &url, address, source)
                    .await
            }
            Source::Autoconfig => {
                let mut url =
                    url::Url::parse(&format!("https://autoconfig.{domain}/mail/config-v1.1.xml"))
                        .ok()?;
                url.query_pairs_mut()
                    .append_pair("emailaddress", &address.email);
                self.client_config(&self.domain_http, url.as_str(), address, source)
                    .await
            }
            Source::Mozilla => {
                let base = self.config.ispdb_url.trim_end_matches('/');
                let url = format!("{base}/{domain}");
                self.client_config(&self.ispdb_http, &url, address, source)
                    .await
            }
            Source::Autodiscover => self.autodiscover(address).await,
            Source::Mx | Source::Unknown => None,
        };
        if found.is_none() {
            tracing::debug!(source = source.as_str(), domain = %domain, "Discovery lookup found nothing");
        }
        found
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn private_addresses_are_refused_unless_allowed() {
        for ip in [
            "127.0.0.1",
            "10.1.2.3",
            "192.168.0.1",
            "169.254.169.254",
            "::1",
            "fe80::1",
            "fd00::1",
            "::ffff:127.0.0.1",
            "0.0.0.0",
        ] {
            let ip: IpAddr = ip.parse().unwrap();
            assert!(!allowed(ip, false), "{ip}");
            assert!(allowed(ip, true), "{ip}");
        }
        for ip in ["93.184.216.34", "2606:4700::1111"] {
            assert!(allowed(ip.parse().unwrap(), false), "{ip}");
        }
    }
}
