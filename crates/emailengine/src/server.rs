//! Server start-up and shutdown: raise the descriptor limit, validate prepared configuration,
//! open the store, apply prepared settings, password and token, then serve the API until
//! SIGINT/SIGTERM, flushing buffered activity on the way out. Any start-up failure is one fatal
//! log line and exit 1.

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;

use emailengine_api::{ApiConfig, AppState};
use emailengine_core::secret::FieldCipher;
use emailengine_core::token::{ImportedToken, decode_export};
use emailengine_core::{password, settings};
use emailengine_delivery::{Submitter, WebhookConfig, Webhooks};
use emailengine_imap::{Engine, EngineConfig};
use emailengine_mail::MailRegistry;
use emailengine_mail::oauth::OAuthLogins;
use emailengine_store::{Role, Settings, Store};

use crate::config::Config;
use crate::descriptors::{self, ConnectionBudget};
use crate::http::Limits;
use crate::logging::FATAL;

/// How often buffered token access times and API counters are written.
const ACTIVITY_FLUSH: Duration = Duration::from_secs(5);

fn fatal(msg: &str, err: &dyn std::fmt::Display) -> ExitCode {
    tracing::error!(target: FATAL, err = %err, "{msg}");
    ExitCode::FAILURE
}

/// Prepared inputs, decoded before anything is written so a bad value changes nothing.
struct Prepared {
    token: Option<ImportedToken>,
    password: Option<String>,
    license: Option<emailengine_core::license::License>,
    settings: Vec<(String, Value)>,
}

fn decode_prepared(config: &Config) -> Result<Prepared, ExitCode> {
    let token = match &config.prepared_token {
        None => None,
        Some(raw) => match decode_export(raw) {
            Ok(t) => Some(t),
            Err(e) => {
                tracing::error!(target: FATAL, inputLength = raw.len(), err = %e, "Invalid API token provided");
                return Err(ExitCode::FAILURE);
            }
        },
    };
    let password = match &config.prepared_password {
        None => None,
        Some(raw) => Some(
            password::decode_prepared(raw)
                .map_err(|e| fatal("Invalid password hash provided", &e))?,
        ),
    };
    let settings = match &config.prepared_settings {
        None => Vec::new(),
        Some(raw) => {
            let invalid =
                |e: &dyn std::fmt::Display| fatal("Invalid settings configuration provided", e);
            let parsed: Value = serde_json::from_str(raw).map_err(|e| invalid(&e))?;
            let Value::Object(map) = parsed else {
                return Err(invalid(&"settings must be a JSON object"));
            };
            let (known, unknown) = settings::split_unknown(map);
            if !unknown.is_empty() {
                tracing::error!(keys = ?unknown, "Unknown keys in prepared settings were ignored");
            }
            settings::validate(&known).map_err(|errors| {
                let text = errors
                    .iter()
                    .map(|e| e.message.as_str())
                    .collect::<Vec<_>>()
                    .join("; ");
                invalid(&text)
            })?
        }
    };
    let license = match &config.prepared_license {
        None => None,
        Some(raw) => match emailengine_core::license::License::parse(raw) {
            Ok(l) => Some(l),
            Err(e) => {
                tracing::error!(target: FATAL, err = %e, "Failed to register prepared license key");
                return Err(ExitCode::from(13));
            }
        },
    };
    Ok(Prepared {
        token,
        password,
        license,
        settings,
    })
}

pub async fn run(config: Config) -> ExitCode {
    tracing::info!(
        version = emailengine_core::VERSION,
        compatible = emailengine_core::COMPAT_VERSION,
        "EmailEngine starting up"
    );
    let prepared = match decode_prepared(&config) {
        Ok(p) => p,
        Err(code) => return code,
    };
    let limits = match http_limits(&config) {
        Ok(l) => l,
        Err(code) => return code,
    };
    let store = match emailengine_store::open(&config.store, Role::Server).await {
        Ok(s) => s,
        Err(e) => {
            // The error names the store and the reason (never a password).
            tracing::error!(target: FATAL, location = %config.store.location(), "{}", e.detail());
            return ExitCode::FAILURE;
        }
    };
    let described = store.describe();
    tracing::info!(store = described.kind, location = %described.location, "Store opened");
    let cipher = config
        .service_secret
        .clone()
        .map(|s| Arc::new(FieldCipher::new(s)));
    let settings = Settings::new(store.clone(), cipher.clone());

    if let Err(e) = prepare_storage(&config, &store, &settings, prepared).await {
        return fatal("Application startup failed", &e);
    }

    let recorder = metrics_exporter_prometheus::PrometheusBuilder::new().build_recorder();
    let handle = recorder.handle();
    if metrics::set_global_recorder(recorder).is_err() {
        tracing::warn!("A metrics recorder was already installed");
    }

    let run = match store.next_run().await {
        Ok(r) => r,
        Err(e) => return fatal("Application startup failed", &e),
    };
    let oauth_http = match reqwest::Client::builder()
        .user_agent(format!(
            "emailengine-app/{} (+https://emailengine.app/)",
            emailengine_core::COMPAT_VERSION
        ))
        .timeout(Duration::from_secs(30))
        .build()
    {
        Ok(c) => c,
        Err(e) => return fatal("Application startup failed", &e),
    };
    let oauth = Arc::new(OAuthLogins::new(
        store.clone(),
        settings.clone(),
        cipher.clone(),
        oauth_http,
        config.oauth_providers.clone(),
    ));
    let engine = Engine::new(
        store.clone(),
        settings.clone(),
        cipher.clone(),
        run,
        EngineConfig {
            max_connections: config.imap_max_connections,
            ..EngineConfig::default()
        },
        oauth.clone(),
    );
    let mail: Arc<dyn MailRegistry> = Arc::new(engine.clone());
    let state = AppState::new(
        store.clone(),
        settings,
        mail.clone(),
        engine.events().clone(),
        cipher.clone(),
        oauth.clone(),
        ApiConfig {
            max_body_size: config.api_max_body_size,
            trust_proxy: config.api_proxy,
            cors_origins: config.cors_origins.clone(),
            cors_max_age: config.cors_max_age,
            command_timeout: Duration::from_millis(config.command_timeout_ms),
            autoconfig: config.autoconfig.clone(),
        },
        Some(handle),
    );
    let flusher = state.spawn_activity_flusher(ACTIVITY_FLUSH);
    let webhooks = Webhooks::new(
        store.clone(),
        state.settings.clone(),
        WebhookConfig {
            concurrency: config.webhook_concurrency,
            timeout: Duration::from_millis(config.webhook_timeout_ms),
            base_delay: Duration::from_millis(config.webhook_retry_delay_ms),
            retry_window: Duration::from_millis(config.webhook_retry_window_ms),
            max_delay: Duration::from_secs(3600)
                .min(Duration::from_millis(config.webhook_retry_window_ms)),
            consumer: crate::logging::hostname(),
            egress: config.webhook_egress,
        },
    )
    .spawn();
    let submitter = Submitter::new(
        store.clone(),
        mail,
        engine.events().clone(),
        cipher.clone(),
        oauth,
        Duration::from_millis(config.submit_retry_delay_ms),
        crate::logging::hostname(),
    )
    .spawn();
    let admin = emailengine_admin::AdminConfig {
        trust_proxy: config.api_proxy,
        remote_setup: config.admin_remote_setup,
        log_level: format!("{:?}", config.log_level).to_ascii_lowercase(),
        webhook_egress: config.webhook_egress,
        webhook_timeout: Duration::from_millis(config.webhook_timeout_ms),
        ..Default::default()
    };
    let app = emailengine_api::router(state.clone())
        .merge(emailengine_admin::router(state.clone(), admin));

    let addr = format!("{}:{}", config.api_host, config.api_port);
    let listener = match tokio::net::TcpListener::bind(&addr).await {
        Ok(l) => l,
        Err(e) => return fatal(&format!("Failed to bind API server to {addr}"), &e),
    };
    tracing::info!(host = %config.api_host, port = config.api_port, "API server listening");
    match engine.start_all().await {
        Ok(n) => tracing::info!(accounts = n, "Account connections started"),
        Err(e) => tracing::error!(err = %e, "Failed to start account connections"),
    }
    let feed = state.events.changes.clone();
    let stopping = async move {
        shutdown_signal().await;
        feed.close();
    };
    crate::http::serve(listener, app, limits, stopping).await;
    flusher.abort();
    webhooks.abort();
    submitter.abort();
    engine.shutdown().await;
    state.flush_activity().await;
    tracing::info!("EmailEngine stopped");
    ExitCode::SUCCESS
}

/// Raises the descriptor limit, sizes the API connection bound so the reserve stays free for
/// mail connections and the store, and logs the figures.
fn http_limits(config: &Config) -> Result<Limits, ExitCode> {
    let fd_limit = match descriptors::raise_to_hard() {
        Ok(limit) => Some(limit),
        Err(e) => {
            tracing::warn!(err = %e, "Cannot read the file descriptor limit");
            None
        }
    };
    let ConnectionBudget {
        api_connections,
        reserve,
        lowered,
    } = descriptors::budget(
        fd_limit.map(|l| l.soft),
        config.fd_reserve,
        config.api_max_connections,
    )
    .map_err(|e| fatal("Invalid connection limits", &e))?;
    if lowered {
        tracing::warn!(
            requested = config.api_max_connections,
            limit = api_connections,
            "API connection limit lowered to keep the descriptor reserve"
        );
    }
    tracing::info!(
        fdLimit = fd_limit.map(|l| l.soft),
        fdLimitRaisedFrom = fd_limit.and_then(|l| l.raised_from),
        fdReserve = reserve,
        maxConnections = api_connections,
        headerTimeout = config.api_header_timeout_ms,
        maxPayloadTimeout = config.api_payload_timeout_ms,
        keepAliveTimeout = config.api_keep_alive_timeout_ms,
        "API connection limit"
    );
    Ok(Limits {
        header_timeout: Duration::from_millis(config.api_header_timeout_ms),
        body_timeout: Duration::from_millis(config.api_payload_timeout_ms),
        keep_alive_timeout: Duration::from_millis(config.api_keep_alive_timeout_ms),
        max_connections: api_connections,
    })
}

/// Start-up writes, in EmailEngine's order: prepared settings, generated service secret, token
/// switch, prepared password, prepared licence, prepared token. (The run counter is taken next, by `run`.)
async fn prepare_storage(
    config: &Config,
    store: &Arc<dyn Store>,
    settings: &Settings,
    prepared: Prepared,
) -> Result<(), emailengine_store::StoreError> {
    if !prepared.settings.is_empty() {
        settings.set(&prepared.settings).await?;
        let keys: Vec<&str> = prepared.settings.iter().map(|(k, _)| k.as_str()).collect();
        tracing::info!(keys = ?keys, "Applied prepared settings");
    }
    let mut secret = [0u8; 16];
    rand::fill(&mut secret);
    if settings
        .set_if_missing("serviceSecret", &Value::String(hex::encode(secret)))
        .await?
    {
        tracing::info!("Generated a new service secret");
    }
    if let Some(required) = config.require_api_auth
        && settings
            .set_if_missing("disableTokens", &Value::Bool(!required))
            .await?
    {
        tracing::info!(
            disableTokens = !required,
            "Stored API authentication requirement"
        );
    }
    if let Some(hash) = &prepared.password {
        crate::commands::store_password(settings, hash).await?;
        tracing::info!("Imported prepared password");
    }
    if let Some(license) = &prepared.license {
        store
            .put_raw_settings(&[(
                emailengine_core::license::LICENSE_KEY_FIELD.to_string(),
                license.text().to_string(),
            )])
            .await?;
        tracing::info!(key = %license.fingerprint(), "Registered prepared license key");
    }
    if let Some(token) = &prepared.token {
        let now = chrono::Utc::now().timestamp_millis();
        if store.import_token(token, now).await? {
            tracing::debug!(token = %token.id, "Imported prepared token");
        } else {
            tracing::debug!(token = %token.id, "Skipped prepared token");
        }
    }
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
    tracing::info!("Shutting down");
}
