//! The signed assertion of Google's service-account flow (RFC 7523, spec §15.2): an RS256 JWT
//! with header `{"alg":"RS256","typ":"JWT"}` and claims `{iss, scope, sub, aud, iat, exp}`,
//! valid for one hour. Built byte for byte here so the output is reproducible; only the RSA
//! signature comes from `jsonwebtoken` (aws-lc-rs).

use base64::Engine as _;
use jsonwebtoken::{Algorithm, EncodingKey};
use serde_json::json;

const HEADER: &str = r#"{"alg":"RS256","typ":"JWT"}"#;
pub const ASSERTION_LIFETIME_SECS: i64 = 3600;

/// Who the assertion speaks for and what it asks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AssertionClaims<'a> {
    /// The numeric service client id (or the impersonated service account's e-mail).
    pub iss: &'a str,
    /// Space-separated scopes.
    pub scope: &'a str,
    /// The mailbox the token acts as (domain-wide delegation).
    pub sub: &'a str,
    /// The token endpoint.
    pub aud: &'a str,
    /// Issue time, seconds since the epoch.
    pub iat: i64,
}

/// Signs an assertion with a PEM RSA private key (PKCS#1 or PKCS#8).
pub fn service_account_assertion(
    key_pem: &str,
    claims: &AssertionClaims<'_>,
) -> Result<String, String> {
    let key = EncodingKey::from_rsa_pem(key_pem.as_bytes())
        .map_err(|_| "the service key is not a PEM RSA private key".to_string())?;
    let body = json!({
        "iss": claims.iss,
        "scope": claims.scope,
        "sub": claims.sub,
        "aud": claims.aud,
        "iat": claims.iat,
        "exp": claims.iat + ASSERTION_LIFETIME_SECS,
    });
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let input = format!("{}.{}", b64.encode(HEADER), b64.encode(body.to_string()));
    let signature = jsonwebtoken::crypto::sign(input.as_bytes(), &key, Algorithm::RS256)
        .map_err(|_| "the service key cannot sign RS256".to_string())?;
    Ok(format!("{input}.{signature}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = include_str!("../../testdata/service-key.pem");
    const PUBLIC_KEY: &str = include_str!("../../testdata/service-key.pub.pem");

    fn claims() -> AssertionClaims<'static> {
        AssertionClaims {
            iss: "109876543210987654321",
            scope: "https://mail.google.com/",
            sub: "ann@example.com",
            aud: "https://oauth2.googleapis.com/token",
            iat: 1_700_000_000,
        }
    }

    /// Made with `openssl dgst -sha256 -sign testdata/service-key.pem` over the same input
    /// (RSASSA-PKCS1-v1_5 is deterministic).
    const GOLDEN: &str = "eyJhbGciOiJSUzI1NiIsInR5cCI6IkpXVCJ9.eyJpc3MiOiIxMDk4NzY1NDMyMTA5ODc2NTQzMjEiLCJzY29wZSI6Imh0dHBzOi8vbWFpbC5nb29nbGUuY29tLyIsInN1YiI6ImFubkBleGFtcGxlLmNvbSIsImF1ZCI6Imh0dHBzOi8vb2F1dGgyLmdvb2dsZWFwaXMuY29tL3Rva2VuIiwiaWF0IjoxNzAwMDAwMDAwLCJleHAiOjE3MDAwMDM2MDB9.gh9TdYvPOoni14eDjHdQAhhe9tXDBWuZNNyJ9WuEcjKoQFHQTzj58mFYSuS8hW_uiuC1_XsXWqOEfVhiqnX5_v03O2GOBUTMCViwFUg6tD4mu6d7dpWyChj9Tg9Y2H-qZGz67en2dy7pRbbFD1ZJBC71ZjRLhJztPAwBInVyOKWh61I6KODghKCkf5nVDSHCBByIamMGQmUZD2d2Jluz3CQub0aQ_hEfpwXJszcU6uu0yELKoUvML0zEga6wk2ieYszQuvNbsWHoYLNv8LK9WFz7d7cCk97doKYDfbbDV3yOusVd5kagsg-B7m2NBEU5ojVVZfXMHyzhK07BxDGMXA";

    #[test]
    fn assertion_golden_vector() {
        assert_eq!(service_account_assertion(KEY, &claims()).unwrap(), GOLDEN);
    }

    #[test]
    fn assertion_verifies_and_carries_the_claims() {
        let jwt = service_account_assertion(KEY, &claims()).unwrap();
        let mut validation = jsonwebtoken::Validation::new(Algorithm::RS256);
        validation.set_audience(&["https://oauth2.googleapis.com/token"]);
        validation.validate_exp = false;
        let key = jsonwebtoken::DecodingKey::from_rsa_pem(PUBLIC_KEY.as_bytes()).unwrap();
        let data = jsonwebtoken::decode::<serde_json::Value>(&jwt, &key, &validation).unwrap();
        assert_eq!(
            data.claims,
            json!({"iss": "109876543210987654321", "scope": "https://mail.google.com/",
                "sub": "ann@example.com", "aud": "https://oauth2.googleapis.com/token",
                "iat": 1_700_000_000, "exp": 1_700_003_600})
        );
        let header = jwt.split('.').next().unwrap();
        assert_eq!(header, "eyJhbGciOiJSUzI1NiIsInR5cCI6IkpXVCJ9");
    }

    #[test]
    fn bad_keys_are_reported() {
        assert!(service_account_assertion("not a key", &claims()).is_err());
    }
}
