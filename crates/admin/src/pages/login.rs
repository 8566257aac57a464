//! Getting in and out: the first-password setup, the password log-in (throttled per address),
//! the TOTP step, and logging out.

use std::net::{IpAddr, Ipv6Addr};
use std::time::Duration;

use askama::Template;
use axum::extract::{Extension, Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use serde::Deserialize;

use emailengine_core::password;

use crate::Admin;
use crate::credentials;
use crate::form::FormData;
use crate::guard::{self, SessionChange, Visit};
use crate::lockout::Verdict;
use crate::pages::{Layout, error_page, render, safe_next, see_other, with_session};
use crate::session::{Session, Stage};

pub const MAX_PASSWORD: usize = 256;

#[derive(Template)]
#[template(path = "setup.html")]
struct SetupPage {
    layout: Layout,
    allowed: bool,
}

#[derive(Template)]
#[template(path = "login.html")]
struct LoginPage {
    layout: Layout,
    next: String,
}

#[derive(Template)]
#[template(path = "totp.html")]
struct TotpPage {
    layout: Layout,
    next: String,
}

#[derive(Debug, Deserialize, Default)]
pub struct LoginQuery {
    next: Option<String>,
    notice: Option<String>,
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// The address failures are counted against (in-process callers have none).
fn throttle_key(visit: &Visit) -> IpAddr {
    visit.client.unwrap_or(IpAddr::V6(Ipv6Addr::UNSPECIFIED))
}

/// Asks the throttle before a secret is checked: waits as long as it says, or answers with the
/// lock-out page.
pub async fn throttled(admin: &Admin, visit: &Visit) -> Option<Response> {
    let verdict = match admin.throttle.lock() {
        Ok(mut t) => t.check(throttle_key(visit), now_ms()),
        Err(_) => Verdict::Proceed(Duration::ZERO),
    };
    match verdict {
        Verdict::Proceed(delay) => {
            tokio::time::sleep(delay).await;
            None
        }
        Verdict::Locked(left) => {
            let minutes = left.as_secs().div_ceil(60).max(1);
            tracing::warn!(remoteAddress = ?visit.client, "Admin sign-in refused: address locked out");
            Some(error_page(
                StatusCode::TOO_MANY_REQUESTS,
                "Too many failed attempts",
                &format!(
                    "Signing in from your address is locked after repeated failures. Try again in {minutes} minute{}.",
                    if minutes == 1 { "" } else { "s" }
                ),
            ))
        }
    }
}

pub fn record_failure(admin: &Admin, visit: &Visit) {
    if let Ok(mut t) = admin.throttle.lock()
        && t.fail(throttle_key(visit), now_ms())
    {
        tracing::warn!(remoteAddress = ?visit.client, "Admin sign-in locked out for this address after repeated failures");
    }
}

pub fn record_success(admin: &Admin, visit: &Visit) {
    if let Ok(mut t) = admin.throttle.lock() {
        t.succeed(throttle_key(visit));
    }
}

/// The checks a new password must pass; the message to show otherwise.
pub fn new_password_problem(
    password: Option<&str>,
    repeated: Option<&str>,
) -> Option<&'static str> {
    let Some(pw) = password else {
        return Some("Enter a password.");
    };
    let length = pw.chars().count();
    if length < password::MIN_LENGTH {
        return Some("The password must have at least 8 characters.");
    }
    if length > MAX_PASSWORD {
        return Some("The password must have at most 256 characters.");
    }
    if Some(pw) != repeated {
        return Some("The two passwords differ.");
    }
    None
}

/// PBKDF2 with 600,000 rounds, off the async workers.
pub async fn hash(password: String) -> Option<String> {
    tokio::task::spawn_blocking(move || password::hash_password(&password))
        .await
        .ok()
}

pub async fn setup_form(
    State(admin): State<Admin>,
    Extension(visit): Extension<Visit>,
) -> Response {
    let allowed = guard::may_set_up(&admin, &visit);
    render(&SetupPage {
        layout: Layout::new(&visit, ""),
        allowed,
    })
}

pub async fn setup(
    State(admin): State<Admin>,
    Extension(visit): Extension<Visit>,
    Extension(form): Extension<FormData>,
) -> Response {
    if !guard::may_set_up(&admin, &visit) {
        tracing::warn!(remoteAddress = ?visit.client, "Refused to set the first admin password from another machine");
        return error_page(
            StatusCode::FORBIDDEN,
            "Not from here",
            "The first admin password can only be set from the server's own machine.",
        );
    }
    if let Some(problem) = new_password_problem(form.raw("password"), form.raw("password2")) {
        return render(&SetupPage {
            layout: Layout::new(&visit, "").with_error(problem),
            allowed: true,
        });
    }
    let Some(hashed) = hash(form.raw("password").unwrap_or_default().to_string()).await else {
        return error_page(
            StatusCode::INTERNAL_SERVER_ERROR,
            "Something went wrong",
            "The password could not be stored.",
        );
    };
    match credentials::store_first_password(&admin.app.settings, &hashed).await {
        Ok(Some(version)) => {
            tracing::info!(remoteAddress = ?visit.client, "Admin password set");
            let session = Session::new(Stage::SignedIn, version, false, now_ms());
            with_session(
                see_other("/admin?notice=password-saved"),
                SessionChange::Start(session),
            )
        }
        Ok(None) => see_other("/admin/login"),
        Err(e) => {
            tracing::error!(err = %e, "Failed to store the admin password");
            error_page(
                StatusCode::INTERNAL_SERVER_ERROR,
                "Something went wrong",
                "The password could not be stored.",
            )
        }
    }
}

pub async fn login_form(
    Extension(visit): Extension<Visit>,
    Query(q): Query<LoginQuery>,
) -> Response {
    render(&LoginPage {
        layout: Layout::new(&visit, "").with_notice(q.notice.as_deref()),
        next: safe_next(q.next.as_deref()),
    })
}

pub async fn login(
    State(admin): State<Admin>,
    Extension(visit): Extension<Visit>,
    Extension(form): Extension<FormData>,
) -> Response {
    let next = safe_next(form.text("next").as_deref());
    let Some(auth) = visit.auth.clone() else {
        return see_other("/admin/setup");
    };
    if let Some(refused) = throttled(&admin, &visit).await {
        return refused;
    }
    let candidate = form.raw("password").unwrap_or_default();
    let user_ok = form.text("username").is_none_or(|u| u == auth.user);
    let fits = (1..=MAX_PASSWORD).contains(&candidate.chars().count());
    // The hash is checked whatever the user name, so a wrong name takes as long as a wrong
    // password.
    let password_ok = fits && auth.verify(candidate.to_string()).await;
    if !(user_ok && password_ok) {
        record_failure(&admin, &visit);
        tracing::warn!(remoteAddress = ?visit.client, "Failed admin sign-in");
        return render(&LoginPage {
            layout: Layout::new(&visit, "")
                .with_error("Failed to authenticate. Check the password and try again."),
            next,
        });
    }
    record_success(&admin, &visit);
    let remember = form.checked("remember");
    let now = now_ms();
    if visit.totp_enabled {
        let pending = Session::new(Stage::NeedsTotp, auth.password_version, remember, now);
        let to = format!("/admin/totp?next={}", crate::api::enc(&next));
        return with_session(see_other(&to), SessionChange::Start(pending));
    }
    tracing::info!(remoteAddress = ?visit.client, "Admin signed in");
    let session = Session::new(Stage::SignedIn, auth.password_version, remember, now);
    with_session(see_other(&next), SessionChange::Start(session))
}

pub async fn totp_form(
    Extension(visit): Extension<Visit>,
    Query(q): Query<LoginQuery>,
) -> Response {
    render(&TotpPage {
        layout: Layout::new(&visit, ""),
        next: safe_next(q.next.as_deref()),
    })
}

pub async fn totp(
    State(admin): State<Admin>,
    Extension(visit): Extension<Visit>,
    Extension(form): Extension<FormData>,
) -> Response {
    let next = safe_next(form.text("next").as_deref());
    if let Some(refused) = throttled(&admin, &visit).await {
        return refused;
    }
    let seed = match credentials::existing_totp_seed(&admin.app.settings).await {
        Ok(seed) => seed,
        Err(e) => {
            tracing::error!(err = %e, "Failed to read the TOTP seed");
            return error_page(
                StatusCode::INTERNAL_SERVER_ERROR,
                "Something went wrong",
                "Try again in a moment.",
            );
        }
    };
    let code = form.text("code").unwrap_or_default();
    let now_secs = u64::try_from(chrono::Utc::now().timestamp()).unwrap_or(0);
    let step = seed
        .as_deref()
        .and_then(|s| crate::totp::matching_step(s, &code, now_secs));
    let fresh = step.is_some_and(|s| admin.replay.lock().is_ok_and(|mut g| g.accept(s)));
    if !fresh {
        record_failure(&admin, &visit);
        tracing::warn!(remoteAddress = ?visit.client, reused = step.is_some(), "Failed admin TOTP step");
        let message = if step.is_some() {
            "This code was used already. Wait for the next one."
        } else {
            "Invalid verification code."
        };
        return render(&TotpPage {
            layout: Layout::new(&visit, "").with_error(message),
            next,
        });
    }
    record_success(&admin, &visit);
    tracing::info!(remoteAddress = ?visit.client, "Admin signed in with a second factor");
    let session = Session::new(
        Stage::SignedIn,
        visit.session.password_version,
        visit.session.remember,
        now_ms(),
    );
    with_session(see_other(&next), SessionChange::Start(session))
}

pub async fn logout(State(admin): State<Admin>, Extension(visit): Extension<Visit>) -> Response {
    if let Err(e) = guard::end_session(&admin, &visit.session).await {
        tracing::error!(err = %e, "Failed to record a logout");
    }
    tracing::info!(remoteAddress = ?visit.client, "Admin logged out");
    with_session(
        see_other("/admin/login?notice=logged-out"),
        SessionChange::End,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn password_rules() {
        assert_eq!(new_password_problem(None, None), Some("Enter a password."));
        assert!(new_password_problem(Some("short"), Some("short")).is_some());
        assert_eq!(
            new_password_problem(Some("long enough"), Some("long enougH")),
            Some("The two passwords differ.")
        );
        assert_eq!(
            new_password_problem(Some("long enough"), Some("long enough")),
            None
        );
        let long = "x".repeat(257);
        assert!(new_password_problem(Some(&long), Some(&long)).is_some());
    }
}
