//! The admin web interface of emailengine-rs (`/admin`): server-rendered pages whose templates,
//! styles and script are compiled into the binary, behind a password log-in with optional TOTP.
//!
//! Start at [`router`]. [`guard`] runs before every page: it opens the session cookie
//! ([`session`]), checks CSRF ([`csrf`]) and decides who may see what. Pages live in [`pages`],
//! one module per area; every change they make goes through the API in-process ([`api`]), so
//! the UI has no second implementation of token issue, account creation or settings writes.

pub mod api;
pub mod assets;
pub mod credentials;
pub mod csrf;
pub mod form;
pub mod guard;
pub mod lockout;
pub mod pages;
pub mod session;
pub mod totp;
pub mod webhook_test;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::middleware;
use axum::routing::{get, post};
use tokio::sync::OnceCell;

use emailengine_api::AppState;
use emailengine_delivery::EgressPolicy;

use crate::lockout::{Limits, Throttle};
use crate::session::Keys;
use crate::totp::ReplayGuard;

/// How the admin interface is run, from the server configuration.
#[derive(Debug, Clone)]
pub struct AdminConfig {
    /// Honour `X-Forwarded-For` / `X-Forwarded-Proto` / `X-Forwarded-Host` (`api.proxy`).
    pub trust_proxy: bool,
    /// Let the first password be set from any address, not only from this machine
    /// (`admin.remoteSetup` / `EENGINE_ADMIN_REMOTE_SETUP`).
    pub remote_setup: bool,
    /// The server's log level, shown on the settings page.
    pub log_level: String,
    /// Which webhook targets "send test webhook" may reach, as for real deliveries.
    pub webhook_egress: EgressPolicy,
    pub webhook_timeout: Duration,
    /// Failed log-in throttling.
    pub limits: Limits,
}

impl Default for AdminConfig {
    fn default() -> Self {
        Self {
            trust_proxy: false,
            remote_setup: false,
            log_level: "info".into(),
            webhook_egress: EgressPolicy::default(),
            webhook_timeout: Duration::from_secs(30),
            limits: Limits::default(),
        }
    }
}

/// What every admin handler shares.
#[derive(Clone)]
pub struct Admin(Arc<Inner>);

pub struct Inner {
    pub app: AppState,
    pub api: api::Api,
    pub config: AdminConfig,
    keys: OnceCell<Keys>,
    pub throttle: Mutex<Throttle>,
    pub replay: Mutex<ReplayGuard>,
    pub ended: guard::EndedSessions,
}

impl std::ops::Deref for Admin {
    type Target = Inner;
    fn deref(&self) -> &Inner {
        &self.0
    }
}

impl Admin {
    pub fn new(app: AppState, config: AdminConfig) -> Self {
        let api = api::Api::new(emailengine_api::router(app.clone()));
        Self(Arc::new(Inner {
            api,
            throttle: Mutex::new(Throttle::new(config.limits)),
            replay: Mutex::new(ReplayGuard::default()),
            ended: guard::EndedSessions::default(),
            keys: OnceCell::new(),
            config,
            app,
        }))
    }

    /// The cookie and CSRF keys, derived once from `cookiePassword` (minted on first use).
    pub async fn keys(&self) -> Result<&Keys, emailengine_store::StoreError> {
        self.keys
            .get_or_try_init(|| async {
                credentials::cookie_password(&self.app.settings)
                    .await
                    .map(|pw| Keys::derive(&pw))
            })
            .await
    }
}

/// The `/admin` routes, to merge beside the API's router.
pub fn router(app: AppState, config: AdminConfig) -> Router {
    let admin = Admin::new(app, config);
    use pages::*;
    let guarded = Router::new()
        .route("/admin", get(dashboard::page))
        .route("/admin/", get(dashboard::page))
        .route("/admin/setup", get(login::setup_form).post(login::setup))
        .route("/admin/login", get(login::login_form).post(login::login))
        .route("/admin/totp", get(login::totp_form).post(login::totp))
        .route("/admin/logout", post(login::logout))
        .route(
            "/admin/account/password",
            get(security::password_form).post(security::change_password),
        )
        .route("/admin/account/logout-all", post(security::logout_all))
        .route("/admin/account/security", get(security::page))
        .route("/admin/account/totp/enable", post(security::enable_totp))
        .route("/admin/account/totp/disable", post(security::disable_totp))
        .route("/admin/accounts", get(accounts::list))
        .route(
            "/admin/accounts/new",
            get(accounts::new_form).post(accounts::hosted_form),
        )
        .route("/admin/accounts/new/settings", post(accounts::create))
        .route("/admin/accounts/verify", post(accounts::verify))
        .route("/admin/accounts/states", get(accounts::states))
        .route("/admin/accounts/{account}", get(accounts::detail))
        .route(
            "/admin/accounts/{account}/reconnect",
            post(accounts::reconnect),
        )
        .route("/admin/accounts/{account}/sync", post(accounts::sync))
        .route("/admin/accounts/{account}/delete", post(accounts::delete))
        .route("/admin/tokens", get(tokens::list))
        .route(
            "/admin/tokens/new",
            get(tokens::new_form).post(tokens::create),
        )
        .route("/admin/tokens/delete", post(tokens::delete))
        .route("/admin/webhooks", get(webhooks::page).post(webhooks::save))
        .route("/admin/webhooks/test", post(webhooks::test))
        .route(
            "/admin/webhooks/failed/{event}/resend",
            post(webhooks::resend),
        )
        .route("/admin/changes", get(changes::stream))
        .route("/admin/dashboard/states", get(dashboard::states))
        .route("/admin/config/oauth", get(oauth::list))
        .route(
            "/admin/config/oauth/new",
            get(oauth::new_form).post(oauth::create),
        )
        .route("/admin/config/oauth/edit/{app}", get(oauth::edit_form))
        .route("/admin/config/oauth/edit", post(oauth::update))
        .route("/admin/config/oauth/delete", post(oauth::delete))
        .route("/admin/outbox", get(outbox::list))
        .route("/admin/outbox/{queue}/cancel", post(outbox::cancel))
        .route("/admin/settings", get(settings::page).post(settings::save))
        .route("/admin/{*rest}", get(not_found::page).post(not_found::page))
        .layer(middleware::from_fn_with_state(admin.clone(), guard::guard))
        .with_state(admin);
    Router::new()
        .route("/admin/assets/{file}", get(assets::serve))
        .merge(guarded)
}
