//! "Send test webhook": one POST of a test event to a URL the operator typed, with the headers
//! real deliveries carry and under the same egress policy, reporting what the receiver answered.
//! (Real deliveries, with retries and signatures, belong to `emailengine-delivery`.)

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine as _;
use serde::Serialize;

use emailengine_delivery::EgressPolicy;

/// What the receiver did with the test event.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct TestOutcome {
    pub success: bool,
    /// The URL posted to, with any password in it masked.
    pub target: String,
    /// Milliseconds until the answer.
    pub duration: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status_code: Option<u16>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// Drops the addresses the egress policy refuses, so the check and the connection use the
/// same answer.
struct PolicyResolver(EgressPolicy);

impl reqwest::dns::Resolve for PolicyResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let policy = self.0;
        Box::pin(async move {
            let addrs: Vec<SocketAddr> = tokio::net::lookup_host((name.as_str(), 0))
                .await?
                .filter(|a| policy.allows(a.ip()))
                .collect();
            if addrs.is_empty() {
                return Err("the host resolves only to addresses the egress policy blocks".into());
            }
            Ok(Box::new(addrs.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

/// The test event, shaped like a real webhook envelope.
pub fn test_payload(service_url: Option<&str>) -> serde_json::Value {
    let mut nonce = [0u8; 16];
    rand::fill(&mut nonce);
    serde_json::json!({
        "serviceUrl": service_url,
        "account": null,
        "date": emailengine_core::units::iso_time(chrono::Utc::now().timestamp_millis()),
        "event": "test",
        "data": {"nonce": base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(nonce)},
    })
}

pub async fn send(
    url: &str,
    headers: &[(String, String)],
    payload: &serde_json::Value,
    policy: EgressPolicy,
    timeout: Duration,
) -> TestOutcome {
    let target = emailengine_core::settings::mask_url_credentials(url);
    let fail = |error: String, duration: u64| TestOutcome {
        success: false,
        target: target.clone(),
        duration,
        status_code: None,
        error: Some(error),
    };
    let Ok(parsed) = reqwest::Url::parse(url) else {
        return fail("Webhook URL is not valid".into(), 0);
    };
    if !matches!(parsed.scheme(), "http" | "https") {
        return fail("Webhook URL must be http or https".into(), 0);
    }
    if let Some(ip) = parsed
        .host_str()
        .map(|h| h.trim_matches(['[', ']']))
        .and_then(|h| h.parse::<IpAddr>().ok())
        && !policy.allows(ip)
    {
        return fail(
            format!("EGRESSPOLICY: {ip} is not an allowed webhook target"),
            0,
        );
    }
    let client = match reqwest::Client::builder()
        .dns_resolver(Arc::new(PolicyResolver(policy)))
        .timeout(timeout)
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(format!(
            "emailengine-rs/{} (EmailEngine {} compatible)",
            emailengine_core::VERSION,
            emailengine_core::COMPAT_VERSION
        ))
        .build()
    {
        Ok(c) => c,
        Err(e) => return fail(e.to_string(), 0),
    };
    // Credentials leave the URL (the client would otherwise send them on its own) and become
    // Basic auth, unless a custom Authorization header is given.
    let mut bare = parsed.clone();
    let _ = bare.set_username("");
    let _ = bare.set_password(None);
    let mut req = client.post(bare).header("Content-Type", "application/json");
    // A custom Authorization header wins over credentials in the URL.
    let custom_auth = headers
        .iter()
        .any(|(k, _)| k.eq_ignore_ascii_case("authorization"));
    if !parsed.username().is_empty() && !custom_auth {
        let decode = |s: &str| {
            percent_encoding::percent_decode_str(s)
                .decode_utf8_lossy()
                .into_owned()
        };
        req = req.basic_auth(decode(parsed.username()), parsed.password().map(decode));
    }
    for (k, v) in headers {
        req = req.header(k.as_str(), v.as_str());
    }
    let start = Instant::now();
    let result = req.body(payload.to_string()).send().await;
    let duration = start.elapsed().as_millis() as u64;
    match result {
        Ok(resp) => {
            let status = resp.status();
            TestOutcome {
                success: status.is_success(),
                target,
                duration,
                status_code: Some(status.as_u16()),
                error: (!status.is_success()).then(|| {
                    format!(
                        "HTTP {} {}",
                        status.as_u16(),
                        status.canonical_reason().unwrap_or_default()
                    )
                }),
            }
        }
        Err(e) if e.is_timeout() => fail("ETIMEDOUT: the receiver did not answer".into(), duration),
        Err(e) => fail(format!("Could not reach the receiver: {e}"), duration),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn refused_targets_are_not_contacted() {
        let out = send(
            "http://169.254.169.254/latest",
            &[],
            &test_payload(None),
            EgressPolicy::LinkLocal,
            Duration::from_secs(1),
        )
        .await;
        assert!(!out.success);
        assert_eq!(
            out.error.as_deref(),
            Some("EGRESSPOLICY: 169.254.169.254 is not an allowed webhook target")
        );
        let out = send(
            "ftp://x/",
            &[],
            &test_payload(None),
            EgressPolicy::Off,
            Duration::from_secs(1),
        )
        .await;
        assert_eq!(
            out.error.as_deref(),
            Some("Webhook URL must be http or https")
        );
    }

    #[test]
    fn payload_shape() {
        let p = test_payload(Some("https://ee.example"));
        assert_eq!(p["event"], "test");
        assert_eq!(p["account"], serde_json::Value::Null);
        assert_eq!(p["data"]["nonce"].as_str().unwrap().len(), 22);
    }
}
