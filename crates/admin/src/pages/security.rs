//! The admin's own security: turning TOTP on (seed shown as a QR code until it is on) and off,
//! changing the password, and logging out everywhere. Each of these bumps `passwordVersion`,
//! which ends every other session; the current one is renewed.

use askama::Template;
use axum::extract::{Extension, Query, State};
use axum::http::StatusCode;
use axum::response::Response;

use crate::Admin;
use crate::credentials;
use crate::form::FormData;
use crate::guard::{SessionChange, Visit};
use crate::pages::login::{hash, new_password_problem, record_failure, record_success, throttled};
use crate::pages::{Layout, NoticeQuery, error_page, render, see_other, with_session};
use crate::session::{Session, Stage};

#[derive(Template)]
#[template(path = "security.html")]
struct SecurityPage {
    layout: Layout,
    totp_enabled: bool,
    secret: String,
    qr_svg: String,
}

#[derive(Template)]
#[template(path = "password.html")]
struct PasswordPage {
    layout: Layout,
}

fn failed() -> Response {
    error_page(
        StatusCode::INTERNAL_SERVER_ERROR,
        "Something went wrong",
        "The change could not be stored. Try again in a moment.",
    )
}

/// The label authenticator apps show: the service host, or the host the admin used.
fn totp_label(visit: &Visit) -> String {
    format!("EmailEngine {}", visit.host)
}

async fn security_page(admin: &Admin, visit: &Visit, layout: Layout) -> Response {
    if visit.totp_enabled {
        return render(&SecurityPage {
            layout,
            totp_enabled: true,
            secret: String::new(),
            qr_svg: String::new(),
        });
    }
    let seed = match credentials::totp_seed(&admin.app.settings).await {
        Ok(s) => s,
        Err(e) => {
            tracing::error!(err = %e, "Failed to prepare a TOTP seed");
            return failed();
        }
    };
    let uri = crate::totp::otpauth_uri(&totp_label(visit), &seed);
    render(&SecurityPage {
        layout,
        totp_enabled: false,
        secret: crate::totp::base32_secret(&seed),
        qr_svg: crate::totp::qr_svg(&uri).unwrap_or_default(),
    })
}

pub async fn page(
    State(admin): State<Admin>,
    Extension(visit): Extension<Visit>,
    Query(q): Query<NoticeQuery>,
) -> Response {
    let layout = Layout::new(&visit, "/admin/account/security").with_notice(q.notice.as_deref());
    security_page(&admin, &visit, layout).await
}

/// Ends every other session and renews this one under the new version.
fn renewed(visit: &Visit, version: i64, to: &str) -> Response {
    let session = Session::new(
        Stage::SignedIn,
        version,
        visit.session.remember,
        chrono::Utc::now().timestamp_millis(),
    );
    with_session(see_other(to), SessionChange::Start(session))
}

pub async fn enable_totp(
    State(admin): State<Admin>,
    Extension(visit): Extension<Visit>,
    Extension(form): Extension<FormData>,
) -> Response {
    let Some(auth) = visit.auth.clone() else {
        return see_other("/admin/setup");
    };
    if let Some(refused) = throttled(&admin, &visit).await {
        return refused;
    }
    let seed = match credentials::existing_totp_seed(&admin.app.settings).await {
        Ok(Some(seed)) => seed,
        Ok(None) => return see_other("/admin/account/security"),
        Err(_) => return failed(),
    };
    let now_secs = u64::try_from(chrono::Utc::now().timestamp()).unwrap_or(0);
    let code = form.text("code").unwrap_or_default();
    let accepted = crate::totp::matching_step(&seed, &code, now_secs)
        .is_some_and(|step| admin.replay.lock().is_ok_and(|mut g| g.accept(step)));
    if !accepted {
        record_failure(&admin, &visit);
        let layout = Layout::new(&visit, "/admin/account/security")
            .with_error("Invalid verification code. Check the time on your device and try again.");
        return security_page(&admin, &visit, layout).await;
    }
    record_success(&admin, &visit);
    if credentials::set_totp(&admin.app.settings, true)
        .await
        .is_err()
    {
        return failed();
    }
    match credentials::bump_version(&admin.app.settings, &auth).await {
        Ok(version) => {
            tracing::info!(remoteAddress = ?visit.client, "Admin two-factor authentication turned on");
            renewed(&visit, version, "/admin/account/security?notice=totp-on")
        }
        Err(_) => failed(),
    }
}

pub async fn disable_totp(
    State(admin): State<Admin>,
    Extension(visit): Extension<Visit>,
    Extension(form): Extension<FormData>,
) -> Response {
    let Some(auth) = visit.auth.clone() else {
        return see_other("/admin/setup");
    };
    if let Some(refused) = throttled(&admin, &visit).await {
        return refused;
    }
    let candidate = form.raw("password").unwrap_or_default().to_string();
    if !auth.verify(candidate).await {
        record_failure(&admin, &visit);
        let layout =
            Layout::new(&visit, "/admin/account/security").with_error("The password is not right.");
        return security_page(&admin, &visit, layout).await;
    }
    record_success(&admin, &visit);
    if credentials::set_totp(&admin.app.settings, false)
        .await
        .is_err()
    {
        return failed();
    }
    tracing::info!(remoteAddress = ?visit.client, "Admin two-factor authentication turned off");
    see_other("/admin/account/security?notice=totp-off")
}

pub async fn password_form(Extension(visit): Extension<Visit>) -> Response {
    render(&PasswordPage {
        layout: Layout::new(&visit, "/admin/account/security"),
    })
}

pub async fn change_password(
    State(admin): State<Admin>,
    Extension(visit): Extension<Visit>,
    Extension(form): Extension<FormData>,
) -> Response {
    let Some(auth) = visit.auth.clone() else {
        return see_other("/admin/setup");
    };
    let page_with = |error: &str| {
        render(&PasswordPage {
            layout: Layout::new(&visit, "/admin/account/security").with_error(error),
        })
    };
    if let Some(refused) = throttled(&admin, &visit).await {
        return refused;
    }
    let current = form.raw("password0").unwrap_or_default().to_string();
    if !auth.verify(current).await {
        record_failure(&admin, &visit);
        return page_with("The current password is not right.");
    }
    record_success(&admin, &visit);
    if let Some(problem) = new_password_problem(form.raw("password"), form.raw("password2")) {
        return page_with(problem);
    }
    let Some(hashed) = hash(form.raw("password").unwrap_or_default().to_string()).await else {
        return failed();
    };
    match credentials::store_password(&admin.app.settings, &hashed, false).await {
        Ok(version) => {
            tracing::info!(remoteAddress = ?visit.client, "Admin password changed");
            renewed(
                &visit,
                version,
                "/admin/account/security?notice=password-saved",
            )
        }
        Err(_) => failed(),
    }
}

pub async fn logout_all(
    State(admin): State<Admin>,
    Extension(visit): Extension<Visit>,
) -> Response {
    let Some(auth) = visit.auth.clone() else {
        return see_other("/admin/setup");
    };
    match credentials::bump_version(&admin.app.settings, &auth).await {
        Ok(_) => {
            tracing::info!(remoteAddress = ?visit.client, "Admin logged out everywhere");
            with_session(
                see_other("/admin/login?notice=logged-out"),
                SessionChange::End,
            )
        }
        Err(_) => failed(),
    }
}
