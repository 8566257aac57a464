//! One account's actor: reads the account's settings, reserves a slot of its connection budget,
//! connects, hands the session to [`crate::idle`], and reconnects with jittered backoff when the
//! session ends. Failures before the account is connected are reported as EmailEngine reports
//! them: the state (`authenticationError`, `connectError`) with the server's own text, and the
//! matching webhook when the error differs from the last one.

use std::time::Duration;

use serde_json::json;
use tokio::sync::mpsc;

use emailengine_core::connection::ConnectionState;

use emailengine_mail::oauth::Protocol;

use crate::connect::{ConnectError, connect_logged};
use crate::idle::{Ended, Flow};
use crate::registry::{Command, Engine};

/// What ended a wait for commands.
pub(crate) enum Wake {
    /// A stop command, or the engine dropped the account's channel.
    Stop,
    Reconnect,
    /// A sync request or the timeout: carry on.
    Other,
}

/// Waits for a command, or until `timeout` passes.
pub(crate) async fn wait_command(
    rx: &mut mpsc::UnboundedReceiver<Command>,
    timeout: Option<Duration>,
) -> Wake {
    let command = match timeout {
        None => rx.recv().await,
        Some(t) => match tokio::time::timeout(t, rx.recv()).await {
            Ok(c) => c,
            Err(_) => return Wake::Other,
        },
    };
    match command {
        None | Some(Command::Stop) => Wake::Stop,
        Some(Command::Reconnect) => Wake::Reconnect,
        Some(Command::Sync) => Wake::Other,
    }
}

/// Reconnect delay: 2 s doubling to 5 min, with ±30 % jitter.
pub(crate) fn backoff(attempt: u32) -> Duration {
    let base = 2_000u64
        .saturating_mul(1 << attempt.min(8).saturating_sub(1))
        .min(300_000);
    let jitter = (rand::random::<f64>() * 0.6) + 0.7;
    Duration::from_millis((base as f64 * jitter) as u64)
}

/// Records a failed connection: the state with `{response, serverResponseCode}`, and the event
/// named like the state when this error is not the one reported last.
async fn report(
    engine: &Engine,
    account: &str,
    state: ConnectionState,
    response: &str,
    code: &str,
    last_error: &mut Option<String>,
) {
    let detail = json!({"response": response, "serverResponseCode": code});
    report_detail(engine, account, state, detail, last_error).await;
}

/// [`report`] with a detail object of its own (an OAuth2 renewal adds `tokenRequest`).
async fn report_detail(
    engine: &Engine,
    account: &str,
    state: ConnectionState,
    detail: serde_json::Value,
    last_error: &mut Option<String>,
) {
    engine.set_state(account, state, Some(detail.clone())).await;
    let response = detail["response"].as_str().unwrap_or_default();
    let key = format!("{state}\0{response}");
    if last_error.as_deref() != Some(key.as_str()) {
        engine
            .events()
            .emit(account, state.as_str(), None, None, detail)
            .await;
        *last_error = Some(key);
    }
}

pub(crate) async fn run(engine: Engine, account: String, mut rx: mpsc::UnboundedReceiver<Command>) {
    let mut attempt: u32 = 0;
    let mut last_error: Option<String> = None;
    // An OAuth2 token the server refuses is renewed and tried once more before the refusal
    // counts (spec §15.2).
    let mut token_retried = false;
    loop {
        let (settings, record) = match engine.record(&account).await {
            Ok(None) => {
                tracing::info!(account, "Account record is gone; its connection stops");
                engine.forget_state(&account);
                return;
            }
            Ok(Some(record)) if record.oauth2().is_some() => {
                match engine
                    .0
                    .oauth
                    .server_settings(&record, Protocol::Imap)
                    .await
                {
                    Ok(Some(s)) => (s, record),
                    Ok(None) => continue,
                    Err(e) => {
                        let state = if e.is_transient() {
                            ConnectionState::ConnectError
                        } else {
                            ConnectionState::AuthenticationError
                        };
                        tracing::warn!(account, err = %e, attempt, "No OAuth2 login for the account");
                        report_detail(&engine, &account, state, e.detail(), &mut last_error).await;
                        attempt += 1;
                        if matches!(
                            wait_command(&mut rx, Some(backoff(attempt))).await,
                            Wake::Stop
                        ) {
                            return;
                        }
                        continue;
                    }
                }
            }
            Ok(Some(record)) => match record.imap(engine.0.cipher.as_deref()) {
                Ok(Some(s)) if !s.disabled => (s, record),
                Ok(found) => {
                    let state = if found.is_some() {
                        ConnectionState::Disconnected
                    } else {
                        ConnectionState::Unset
                    };
                    engine.set_state(&account, state, None).await;
                    if matches!(wait_command(&mut rx, None).await, Wake::Stop) {
                        return;
                    }
                    continue;
                }
                Err(e) => {
                    let text = e.to_string();
                    report(
                        &engine,
                        &account,
                        ConnectionState::ConnectError,
                        &text,
                        "InternalConfigError",
                        &mut last_error,
                    )
                    .await;
                    attempt += 1;
                    if matches!(
                        wait_command(&mut rx, Some(backoff(attempt))).await,
                        Wake::Stop
                    ) {
                        return;
                    }
                    continue;
                }
            },
            Err(e) => {
                tracing::error!(account, err = %e, "Failed to load account settings");
                attempt += 1;
                if matches!(
                    wait_command(&mut rx, Some(backoff(attempt))).await,
                    Wake::Stop
                ) {
                    return;
                }
                continue;
            }
        };
        // Both at once: one round trip to the store.
        let ((), (address, log)) = tokio::join!(
            engine.set_state(&account, ConnectionState::Connecting, None),
            engine.main_connection(&account, record.logs),
        );
        let pool = engine.pool(&account);
        let slot = tokio::select! {
            slot = pool.reserve() => slot,
            wake = wait_command(&mut rx, None) => match wake {
                Wake::Stop => return,
                _ => continue,
            },
        };
        let mut settings = settings;
        settings.local_address = address;
        // A stop or reconnect is taken while the server is still being reached (a server that
        // never answers would otherwise hold a deleted account until the connect timeout).
        let connecting = connect_logged(&settings, log);
        tokio::pin!(connecting);
        let connected = loop {
            tokio::select! {
                r = &mut connecting => break Some(r),
                wake = wait_command(&mut rx, None) => match wake {
                    Wake::Stop => return,
                    Wake::Reconnect => break None,
                    Wake::Other => {}
                },
            }
        };
        let Some(connected) = connected else {
            drop(slot);
            continue;
        };
        let session = match connected {
            Ok(s) => s,
            Err(ConnectError::Auth(_)) if !token_retried && settings.token.is_some() => {
                token_retried = true;
                if let Some(token) = &settings.token
                    && let Err(e) = engine
                        .0
                        .oauth
                        .invalidate(&account, &token.access_token)
                        .await
                {
                    tracing::warn!(account, err = %e, "Failed to mark the refused token for renewal");
                }
                drop(slot);
                continue;
            }
            Err(err) => {
                let (state, code) = match &err {
                    ConnectError::Auth(_) => {
                        (ConnectionState::AuthenticationError, "AUTHENTICATIONFAILED")
                    }
                    ConnectError::Network(_) => (ConnectionState::ConnectError, "ConnectionError"),
                };
                report(
                    &engine,
                    &account,
                    state,
                    &err.to_string(),
                    code,
                    &mut last_error,
                )
                .await;
                attempt += 1;
                tracing::warn!(account, err = %err, attempt, "IMAP connection failed");
                drop(slot);
                if matches!(
                    wait_command(&mut rx, Some(backoff(attempt))).await,
                    Wake::Stop
                ) {
                    return;
                }
                continue;
            }
        };
        token_retried = false;
        // Logged with the `syncing` state that follows the login.
        let logged_in = if last_error.is_some() || attempt == 0 {
            let mut batch = engine.events().batch().await;
            batch.event(
                &account,
                "authenticationSuccess",
                None,
                None,
                json!({"user": settings.user}),
            );
            Some(batch)
        } else {
            None
        };
        let outcome = crate::idle::connected(
            &engine, &account, &settings, session, &record, logged_in, &mut rx,
        )
        .await;
        drop(slot);
        match outcome {
            Ok(Flow::Stop) => return,
            Ok(Flow::Reconnect | Flow::Renew) => {
                attempt = 0;
                continue;
            }
            Err(Ended { error, connected }) => {
                tracing::warn!(account, err = %error, "IMAP session ended");
                if connected {
                    attempt = 0;
                    last_error = None;
                    engine
                        .set_state(
                            &account,
                            ConnectionState::Disconnected,
                            Some(json!({"response": error.to_string()})),
                        )
                        .await;
                } else {
                    // The server took the login but refused what follows (LIST, SELECT …).
                    let code = error.code().unwrap_or("ConnectionError").to_string();
                    report(
                        &engine,
                        &account,
                        ConnectionState::ConnectError,
                        &error.to_string(),
                        &code,
                        &mut last_error,
                    )
                    .await;
                }
                attempt += 1;
                if matches!(
                    wait_command(&mut rx, Some(backoff(attempt))).await,
                    Wake::Stop
                ) {
                    return;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_and_is_capped() {
        for a in 1..20 {
            let d = backoff(a);
            assert!(
                d >= Duration::from_millis(1_400) && d <= Duration::from_millis(390_000),
                "{a}: {d:?}"
            );
        }
        assert!(backoff(1) < Duration::from_secs(3));
    }
}
