//! How a request presenting a token is judged (spec §3.8–§3.9, §4): scopes, account binding,
//! address and referrer restrictions and the fixed-window rate limit. The decisions are pure;
//! the API layer gathers the inputs (route policy, client address, headers, counters).

use std::net::IpAddr;

use serde_json::Value;

use crate::permissions::{self, Action, Group};
use crate::token::TokenRecord;

/// Why a token was refused after it was found valid.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Denial {
    Scope { requested: String },
    Permission { action: Action, group: Group },
    Account,
    Address { remote: String },
    Referrer,
}

/// What a route demands of a token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RoutePolicy {
    /// The scope the route is tagged with (`api` for `/v1/*`, `metrics` for `/metrics`).
    pub scope: &'static str,
    pub group: Group,
    pub action: Action,
}

/// Scope check: a legacy record without `scopes` passes, `*` passes, otherwise the route's scope
/// must be listed.
pub fn scope_allows(record: &TokenRecord, scope: &str) -> bool {
    match &record.scopes {
        None => true,
        Some(scopes) => scopes.iter().any(|s| s == "*" || s == scope),
    }
}

/// Checks scope, then permissions, then the account binding (spec §3.9 steps 4–6).
/// `route_account` is the account the request names (`None` when the route names none).
pub fn authorize(
    record: &TokenRecord,
    policy: RoutePolicy,
    route_account: Option<&str>,
) -> Result<(), Denial> {
    if !scope_allows(record, policy.scope) {
        return Err(Denial::Scope {
            requested: policy.scope.to_string(),
        });
    }
    if !permissions::stored_allows(record.permissions.as_ref(), policy.action, policy.group) {
        return Err(Denial::Permission {
            action: policy.action,
            group: policy.group,
        });
    }
    if let Some(bound) = &record.account
        && route_account != Some(bound.as_str())
    {
        return Err(Denial::Account);
    }
    Ok(())
}

/// A token's `restrictions` object, parsed.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Restrictions {
    pub addresses: Option<Vec<IpNet>>,
    pub referrers: Option<Vec<String>>,
    pub rate_limit: Option<RateLimit>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimit {
    pub max_requests: u64,
    /// Window length in seconds.
    pub time_window: u64,
}

impl Restrictions {
    /// Parses and validates a restrictions object; the error names the bad field.
    pub fn parse(value: &Value) -> Result<Self, String> {
        let Value::Object(map) = value else {
            return Err("\"restrictions\" must be an object".into());
        };
        let mut out = Restrictions::default();
        for (key, v) in map {
            if v.is_null() {
                continue;
            }
            match key.as_str() {
                "addresses" => {
                    let list = string_list(v, "addresses")?;
                    out.addresses = Some(
                        list.iter()
                            .map(|a| {
                                IpNet::parse(a).ok_or_else(|| {
                                    format!("\"restrictions.addresses\" holds an invalid address \"{a}\"")
                                })
                            })
                            .collect::<Result<_, _>>()?,
                    );
                }
                "referrers" => out.referrers = Some(string_list(v, "referrers")?),
                "rateLimit" => {
                    let positive = |k: &str| {
                        v.get(k)
                            .and_then(Value::as_u64)
                            .filter(|n| *n >= 1)
                            .ok_or_else(|| {
                                format!("\"restrictions.rateLimit.{k}\" must be a positive integer")
                            })
                    };
                    out.rate_limit = Some(RateLimit {
                        max_requests: positive("maxRequests")?,
                        time_window: positive("timeWindow")?,
                    });
                }
                other => return Err(format!("\"restrictions.{other}\" is not allowed")),
            }
        }
        Ok(out)
    }

    /// Reads the restrictions of a stored record. A stored object that does not parse keeps
    /// whatever restrictions it names closed: unparseable means nobody passes.
    pub fn of_record(record: &TokenRecord) -> Result<Option<Self>, String> {
        match &record.restrictions {
            None | Some(Value::Null) => Ok(None),
            Some(v) => Restrictions::parse(v).map(Some),
        }
    }

    /// Address and referrer checks (spec §3.9 step 7, without the rate limit).
    pub fn check(&self, remote: Option<IpAddr>, referer: Option<&str>) -> Result<(), Denial> {
        if let Some(nets) = &self.addresses {
            let allowed = remote.is_some_and(|ip| nets.iter().any(|n| n.contains(ip)));
            if !allowed {
                return Err(Denial::Address {
                    remote: remote.map(|ip| ip.to_string()).unwrap_or_default(),
                });
            }
        }
        if let Some(patterns) = &self.referrers {
            let allowed = referer.is_some_and(|r| patterns.iter().any(|p| glob_match(p, r)));
            if !allowed {
                return Err(Denial::Referrer);
            }
        }
        Ok(())
    }
}

fn string_list(v: &Value, key: &str) -> Result<Vec<String>, String> {
    let Value::Array(items) = v else {
        return Err(format!("\"restrictions.{key}\" must be an array"));
    };
    items
        .iter()
        .map(|i| {
            i.as_str()
                .map(str::to_string)
                .ok_or_else(|| format!("\"restrictions.{key}\" must hold strings"))
        })
        .collect()
}

/// An IPv4 or IPv6 network (`addr/prefix`); a bare address is a one-address network.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IpNet {
    addr: IpAddr,
    prefix: u8,
}

impl IpNet {
    pub fn parse(text: &str) -> Option<Self> {
        let (addr, prefix) = match text.trim().split_once('/') {
            Some((a, p)) => (a.parse::<IpAddr>().ok()?, Some(p.parse::<u8>().ok()?)),
            None => (text.trim().parse::<IpAddr>().ok()?, None),
        };
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = prefix.unwrap_or(max);
        (prefix <= max).then_some(IpNet { addr, prefix })
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = canonical(ip);
        match (canonical(self.addr), ip) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = u32::MAX.checked_shl(32 - self.prefix as u32).unwrap_or(0);
                u32::from(net) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = u128::MAX.checked_shl(128 - self.prefix as u32).unwrap_or(0);
                u128::from(net) & mask == u128::from(ip) & mask
            }
            _ => false,
        }
    }
}

/// IPv4-mapped IPv6 addresses (`::ffff:1.2.3.4`) are compared as IPv4.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

/// Anchored glob where `*` matches any run of characters (including none).
pub fn glob_match(pattern: &str, text: &str) -> bool {
    let (p, t) = (pattern.as_bytes(), text.as_bytes());
    let (mut pi, mut ti) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        if pi < p.len() && p[pi] == b'*' {
            star = Some((pi, ti));
            pi += 1;
        } else if pi < p.len() && p[pi] == t[ti] {
            pi += 1;
            ti += 1;
        } else if let Some((sp, st)) = star {
            pi = sp + 1;
            ti = st + 1;
            star = Some((sp, st + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|c| *c == b'*')
}

/// The fixed window a request falls in (spec §3.9): buckets count from 2000-01-01.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateWindow {
    pub bucket: i64,
    /// Seconds until the bucket ends (at least 1).
    pub ttl: u64,
    /// Epoch seconds when the bucket ends.
    pub reset: i64,
}

const RATE_EPOCH_MS: i64 = 946_684_800_000;

pub fn rate_window(now_ms: i64, window_secs: u64) -> RateWindow {
    let width = (window_secs.max(1) * 1000) as i64;
    let bucket = (now_ms - RATE_EPOCH_MS).div_euclid(width);
    let end_ms = RATE_EPOCH_MS + (bucket + 1) * width;
    RateWindow {
        bucket,
        ttl: ((end_ms - now_ms + 999) / 1000).max(1) as u64,
        reset: end_ms.div_euclid(1000),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn record(scopes: Option<&[&str]>, account: Option<&str>) -> TokenRecord {
        TokenRecord {
            scopes: scopes.map(|s| s.iter().map(|x| x.to_string()).collect()),
            account: account.map(str::to_string),
            ..Default::default()
        }
    }

    const API: RoutePolicy = RoutePolicy {
        scope: "api",
        group: Group::Diagnostics,
        action: Action::Read,
    };

    #[test]
    fn scopes() {
        assert!(authorize(&record(Some(&["*"]), None), API, None).is_ok());
        assert!(authorize(&record(None, None), API, None).is_ok(), "legacy");
        assert!(authorize(&record(Some(&["api"]), None), API, None).is_ok());
        assert_eq!(
            authorize(&record(Some(&["metrics"]), None), API, None),
            Err(Denial::Scope {
                requested: "api".into()
            })
        );
        assert!(authorize(&record(Some(&[]), None), API, None).is_err());
    }

    #[test]
    fn bound_tokens_only_reach_their_account() {
        let r = record(Some(&["api"]), Some("a1"));
        assert!(authorize(&r, API, Some("a1")).is_ok());
        assert_eq!(authorize(&r, API, Some("a2")), Err(Denial::Account));
        assert_eq!(authorize(&r, API, None), Err(Denial::Account));
    }

    #[test]
    fn networks() {
        let n = IpNet::parse("10.1.0.0/16").unwrap();
        assert!(n.contains("10.1.200.3".parse().unwrap()));
        assert!(n.contains("::ffff:10.1.0.9".parse().unwrap()));
        assert!(!n.contains("10.2.0.1".parse().unwrap()));
        assert!(
            IpNet::parse("0.0.0.0/0")
                .unwrap()
                .contains("8.8.8.8".parse().unwrap())
        );
        assert!(
            IpNet::parse("::1")
                .unwrap()
                .contains("::1".parse().unwrap())
        );
        assert!(
            IpNet::parse("fe80::/10")
                .unwrap()
                .contains("fe80::1".parse().unwrap())
        );
        for bad in ["", "1.2.3.4/33", "300.0.0.1", "::/129", "abc", "1.2.3.4/x"] {
            assert!(IpNet::parse(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn restrictions_check() {
        let r = Restrictions::parse(
            &json!({"addresses": ["127.0.0.1/32"], "referrers": ["https://*.example.com/*"]}),
        )
        .unwrap();
        let local = Some("127.0.0.1".parse().unwrap());
        assert!(r.check(local, Some("https://app.example.com/x")).is_ok());
        assert_eq!(r.check(local, None), Err(Denial::Referrer));
        assert_eq!(
            r.check(local, Some("https://example.org/")),
            Err(Denial::Referrer)
        );
        assert_eq!(
            r.check(
                Some("10.0.0.1".parse().unwrap()),
                Some("https://a.example.com/")
            ),
            Err(Denial::Address {
                remote: "10.0.0.1".into()
            })
        );
        assert!(
            Restrictions::parse(&json!({"rateLimit": {"maxRequests": 0, "timeWindow": 1}}))
                .is_err()
        );
        assert!(Restrictions::parse(&json!({"other": 1})).is_err());
    }

    #[test]
    fn globs() {
        assert!(glob_match("*", ""));
        assert!(glob_match("a*c", "abbbc"));
        assert!(!glob_match("a*c", "abbbd"));
        assert!(glob_match("*.x.*", "a.x.b"));
        assert!(!glob_match("abc", "abcd"));
    }

    #[test]
    fn rate_windows() {
        let w = rate_window(RATE_EPOCH_MS + 61_500, 60);
        assert_eq!(w.bucket, 1);
        assert_eq!(w.ttl, 59);
        assert_eq!(w.reset, (RATE_EPOCH_MS + 120_000) / 1000);
    }

    proptest::proptest! {
        #[test]
        fn glob_and_net_parsers_never_panic(p in "\\PC{0,20}", t in "\\PC{0,20}") {
            let _ = glob_match(&p, &t);
            let _ = IpNet::parse(&p);
        }
    }
}
