//! The account's mail backend as a handler argument: the `{account}` of the path, checked to
//! exist, with the caller's wait for a connection (EmailEngine's `x-ee-timeout` header, in ms,
//! else the configured command timeout).

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{FromRequestParts, RawPathParams};
use axum::http::request::Parts;

use emailengine_mail::MailBackend;

use crate::error::{ApiError, ApiResult};
use crate::routes::accounts::load;
use crate::state::AppState;

/// The backend serving the path's account.
pub struct AccountMail(pub Arc<dyn MailBackend>);

/// The wait a request asks for: `x-ee-timeout` in milliseconds, bounded to a day.
fn requested_wait(parts: &Parts) -> Option<Duration> {
    parts
        .headers
        .get("x-ee-timeout")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map(|ms| Duration::from_millis(ms.min(86_400_000)))
}

impl FromRequestParts<AppState> for AccountMail {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> ApiResult<Self> {
        let params = RawPathParams::from_request_parts(parts, state)
            .await
            .map_err(|_| ApiError::not_found("Not Found"))?;
        let account = params
            .iter()
            .find(|(k, _)| *k == "account")
            .map(|(_, v)| v.to_string())
            .ok_or_else(|| ApiError::not_found("Not Found"))?;
        load(state, &account).await?;
        let wait = requested_wait(parts).unwrap_or(state.config.command_timeout);
        Ok(AccountMail(state.mail.backend(&account, wait).await?))
    }
}
