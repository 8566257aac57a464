//! `GET /v1/autoconfig` (spec §16.7): the IMAP and SMTP settings discovered for an address.

use axum::Json;
use axum::extract::State;
use serde_json::Value;

use crate::error::ApiResult;
use crate::extract::QueryParams;
use crate::state::AppState;

/// Discover mail server settings for an email address
///
/// Well-known providers by domain or MX host (`_source: "mx"`), else the first of DNS SRV
/// records, the domain's autoconfig files, Mozilla's ISPDB and Microsoft Autodiscover;
/// `{imap: false, smtp: false, _source: "unknown"}` when nothing answers.
#[utoipa::path(get, path = "/v1/autoconfig", tag = "Account",
    params(("email" = String, Query, min_length = 1, max_length = 512,
        pattern = "^[^@<>\\u0000-\\u0020\\u007f\\u00a0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000\\ufeff]+@[^@<>\\u0000-\\u0020\\u007f\\u00a0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000\\ufeff]+$",
        description = "Email address to discover servers for")),
    responses((status = 200, description = "`{imap: {auth: {user}, host, port, secure} | false, smtp: {...} | false, appPassword?, _source}`", body = Object),
        (status = 400, description = "Invalid input")),
    extensions(("x-ee-group" = json!("diagnostics")), ("x-ee-action" = json!("read"))),
    security(("bearerAuth" = [])))]
pub async fn autoconfig(
    State(state): State<AppState>,
    mut query: QueryParams,
) -> ApiResult<Json<Value>> {
    let keys: Vec<String> = query
        .keys()
        .filter(|k| *k != "email")
        .map(str::to_string)
        .collect();
    for key in keys {
        query.reject(&key, "is not allowed");
    }
    let email = query.required_string("email", 512);
    if !email.is_empty() && !is_address(&email) {
        query.reject("email", "must be a valid email");
    }
    query.finish()?;
    Ok(Json(state.discovery.discover(&email).await.to_json()))
}

/// `local@domain` with no spaces, controls or angle brackets: exactly the pattern the
/// document declares (JavaScript's `\s` spelled out), so the two cannot disagree.
fn is_address(text: &str) -> bool {
    let allowed = |c: char| {
        !matches!(c,
            '@' | '<' | '>' | '\u{0}'..='\u{20}' | '\u{7f}' | '\u{a0}' | '\u{1680}'
            | '\u{2000}'..='\u{200a}' | '\u{2028}' | '\u{2029}' | '\u{202f}' | '\u{205f}'
            | '\u{3000}' | '\u{feff}')
    };
    text.split_once('@').is_some_and(|(local, domain)| {
        !local.is_empty()
            && !domain.is_empty()
            && local.chars().all(allowed)
            && domain.chars().all(allowed)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_match_the_declared_pattern() {
        for ok in ["a@b", "ann.lee+x@example.com", "ü@bücher.example"] {
            assert!(is_address(ok), "{ok}");
        }
        for bad in [
            "",
            "a",
            "@b",
            "a@",
            "a@b@c",
            "a b@c",
            "a@b\u{a0}c",
            "<a>@b",
            "a@b\u{feff}",
            "a\u{1}@b",
        ] {
            assert!(!is_address(bad), "{bad:?}");
        }
    }
}
