//! The HTTP API of emailengine-rs: EmailEngine's routes, authentication and error shapes, with
//! an OpenAPI document generated from the handlers.
//!
//! [`router`] builds the whole application; [`auth`] judges tokens; [`error`] is the only place
//! failures become responses; handlers live in [`routes`], one module per route family.

pub mod auth;
pub mod error;
pub mod extract;
pub mod mail;
pub mod openapi;
pub mod reference;
pub mod routes;
pub mod schema;
pub mod state;

use std::time::Instant;

use axum::Router;
use axum::extract::{DefaultBodyLimit, MatchedPath, Request};
use axum::http::StatusCode;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use utoipa::OpenApi as _;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use utoipa_swagger_ui::SwaggerUi;

pub use state::{ApiConfig, AppState};

use crate::auth::AuthContext;
use crate::error::ApiError;
use crate::extract::BodyLimit;
use crate::routes::{
    accounts, autoconfig, blocklists, changes, gateways, health, hosted, license, logs, mailboxes,
    messages, metrics, oauth2, queues, settings, stats, submit, templates, tokens, webhook_routes,
    webhooks,
};

/// The authenticated routes, with the OpenAPI document their annotations make.
fn api_routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(openapi::ApiDoc::openapi())
        .routes(routes!(stats::stats))
        .routes(routes!(settings::get_settings, settings::set_settings))
        .routes(routes!(queues::get_queue, queues::set_queue))
        .routes(routes!(
            license::get_license,
            license::set_license,
            license::delete_license
        ))
        .routes(routes!(tokens::provision, tokens::list))
        .routes(routes!(tokens::provision_deprecated))
        .routes(routes!(tokens::get_one, tokens::delete))
        .routes(routes!(tokens::audit_log))
        .routes(routes!(tokens::delete_deprecated))
        .routes(routes!(tokens::list_for_account))
        .routes(routes!(metrics::metrics))
        .routes(routes!(accounts::create))
        .routes(routes!(accounts::list))
        .routes(routes!(
            accounts::get_one,
            accounts::update,
            accounts::delete
        ))
        .routes(routes!(accounts::oauth_token))
        .routes(routes!(autoconfig::autoconfig))
        .routes(routes!(hosted::form))
        .routes(routes!(accounts::reconnect))
        .routes(routes!(accounts::sync))
        .routes(routes!(accounts::flush))
        .routes(routes!(accounts::verify))
        .routes(routes!(accounts::server_signatures))
        .routes(routes!(changes::changes))
        .routes(routes!(logs::account_log))
        .routes(routes!(mailboxes::list))
        .routes(routes!(
            mailboxes::create,
            mailboxes::rename,
            mailboxes::delete
        ))
        .routes(routes!(messages::list, messages::bulk_update))
        .routes(routes!(messages::bulk_move))
        .routes(routes!(messages::bulk_delete))
        .routes(routes!(messages::upload))
        .routes(routes!(submit::submit))
        .routes(routes!(submit::submit_stored))
        .routes(routes!(submit::outbox))
        .routes(routes!(submit::outbox_item, submit::outbox_delete))
        .routes(routes!(webhooks::list_failed))
        .routes(routes!(webhook_routes::list))
        .routes(routes!(webhook_routes::get_one))
        .routes(routes!(webhooks::resend_failed))
        .routes(routes!(messages::search))
        .routes(routes!(
            messages::get_one,
            messages::update,
            messages::delete
        ))
        .routes(routes!(messages::source))
        .routes(routes!(messages::move_message))
        .routes(routes!(messages::attachment))
        .routes(routes!(messages::text))
        .routes(routes!(templates::create))
        .routes(routes!(templates::list))
        .routes(routes!(
            templates::get_one,
            templates::update,
            templates::delete
        ))
        .routes(routes!(templates::flush))
        .routes(routes!(blocklists::list))
        .routes(routes!(
            blocklists::addresses,
            blocklists::add,
            blocklists::remove
        ))
        .routes(routes!(gateways::list))
        .routes(routes!(gateways::create))
        .routes(routes!(gateways::get_one, gateways::delete))
        .routes(routes!(gateways::update))
        .routes(routes!(oauth2::list, oauth2::create))
        .routes(routes!(oauth2::get_one, oauth2::update, oauth2::delete))
}

/// The whole OpenAPI document, as `/swagger.json` serves it.
pub fn openapi_document() -> utoipa::openapi::OpenApi {
    let (_, doc) = api_routes()
        .routes(routes!(health::health))
        .split_for_parts();
    doc
}

/// Builds the application: authenticated routes, `/health`, `/swagger.json`, the Swagger UI at
/// `/docs`, and JSON answers for unknown routes. Each route's policy is read from its OpenAPI
/// annotation; a route that declares none is refused to every token.
pub fn router(state: AppState) -> Router {
    let routes = api_routes();
    let policies = match auth::Policies::from_doc(routes.get_openapi()) {
        Ok(p) => p,
        Err(missing) => {
            tracing::error!(routes = ?missing, "Routes without a declared policy are refused");
            auth::Policies::default()
        }
    };
    let (app, api) = routes
        .route_layer(middleware::from_fn_with_state(
            (state.clone(), std::sync::Arc::new(policies)),
            auth::authenticate,
        ))
        .routes(routes!(health::health))
        .split_for_parts();
    let document = std::sync::Arc::new(openapi::finish(&api));
    let limit = state.config.max_body_size;
    let cors = cors_layer(&state.config);
    let app = app
        .route(
            "/swagger.json",
            axum::routing::get(move || {
                let doc = document.clone();
                async move { axum::Json(doc) }
            }),
        )
        .merge(routes::links::router())
        .merge(routes::hosted::router())
        .merge(SwaggerUi::new("/docs").config(utoipa_swagger_ui::Config::from("/swagger.json")))
        .fallback(not_found)
        .method_not_allowed_fallback(not_found)
        .layer(DefaultBodyLimit::max(limit))
        .layer(axum::Extension(BodyLimit(limit)))
        .layer(middleware::from_fn_with_state(limit, refuse_oversized))
        .layer(middleware::from_fn_with_state(state.clone(), observe))
        .with_state(state);
    match cors {
        Some(cors) => app.layer(cors),
        None => app,
    }
}

/// CORS for browser clients, when origins are configured. Preflight requests are answered here,
/// before authentication.
fn cors_layer(config: &ApiConfig) -> Option<tower_http::cors::CorsLayer> {
    use tower_http::cors::{AllowOrigin, Any, CorsLayer};
    if config.cors_origins.is_empty() {
        return None;
    }
    let origin = if config.cors_origins.iter().any(|o| o == "*") {
        AllowOrigin::any()
    } else {
        AllowOrigin::list(config.cors_origins.iter().filter_map(|o| o.parse().ok()))
    };
    Some(
        CorsLayer::new()
            .allow_origin(origin)
            .allow_methods(Any)
            .allow_headers(Any)
            .expose_headers(Any)
            .max_age(std::time::Duration::from_secs(config.cors_max_age)),
    )
}

/// Unknown paths: 404, except that a `/v1` path first asks for a credential (see
/// [`auth::unknown_api_route`]).
async fn not_found(
    axum::extract::State(state): axum::extract::State<AppState>,
    headers: axum::http::HeaderMap,
    uri: axum::http::Uri,
) -> ApiError {
    if uri.path().starts_with("/v1/") {
        return auth::unknown_api_route(&state, &headers, uri.query()).await;
    }
    ApiError::new(StatusCode::NOT_FOUND, "Not Found")
}

/// How much of an oversized body is read (and dropped) before the 413 is sent.
const DRAIN_LIMIT: u64 = 256 * 1024 * 1024;

/// A body announced larger than the limit gets its 413 after the body has been read and
/// dropped (up to a bound): clients that write the whole body before reading the answer
/// (Python's `urllib` and `requests`) then see the 413 instead of a broken pipe.
async fn refuse_oversized(
    axum::extract::State(limit): axum::extract::State<usize>,
    req: Request,
    next: Next,
) -> Response {
    let announced = req
        .headers()
        .get(axum::http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    match announced {
        Some(n) if n > limit as u64 => {
            if n <= DRAIN_LIMIT {
                use futures_util::StreamExt;
                let mut body = req.into_body().into_data_stream();
                while let Some(Ok(_)) = body.next().await {}
            }
            ApiError::payload_too_large(limit).into_response()
        }
        _ => next.run(req).await,
    }
}

/// Request log line, `api_call` metric and `apiCall:*` counters for every request. Paths are
/// logged without their query string, so an `access_token` parameter never reaches the log.
async fn observe(
    axum::extract::State(state): axum::extract::State<AppState>,
    req: Request,
    next: Next,
) -> Response {
    let start = Instant::now();
    let method = req.method().clone();
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|m| m.as_str().to_string());
    let path = req.uri().path().to_string();
    let response = next.run(req).await;
    let status = response.status();
    let route_label = route.as_deref().unwrap_or("*");
    ::metrics::counter!("api_call",
        "method" => method.as_str().to_ascii_lowercase(),
        "statusCode" => status.as_u16().to_string(),
        "route" => route_label.to_string())
    .increment(1);
    if route_label.starts_with("/v1/") {
        state.activity.api_call(status.as_u16() < 400);
    }
    let token = response
        .extensions()
        .get::<AuthContext>()
        .and_then(|c| c.token_id.as_deref());
    tracing::debug!(
        component = "api",
        method = method.as_str(),
        route = route_label,
        path = path.as_str(),
        statusCode = status.as_u16(),
        responseTime = start.elapsed().as_secs_f64() * 1000.0,
        tokenId = token,
        "API request"
    );
    response.into_response()
}
