//! `GET /health`: a write-read-delete round trip through the store, no authentication.

use axum::Json;
use axum::extract::State;
use serde::Serialize;
use utoipa::ToSchema;

use crate::error::{ApiError, ApiResult};
use crate::state::AppState;

#[derive(Serialize, ToSchema)]
pub struct Health {
    pub success: bool,
    /// `embedded` or `redis`.
    pub store: &'static str,
}

/// Health check
#[utoipa::path(get, path = "/health", tag = "Health",
    responses((status = 200, body = Health), (status = 500, description = "Storage unavailable")),
    extensions(("x-ee-auth" = json!("none"))))]
pub async fn health(State(state): State<AppState>) -> ApiResult<Json<Health>> {
    state.store.health_check().await.map_err(|e| {
        tracing::error!(err = %e, "Health check failed");
        ApiError::internal("Health check failed").with("code", "HealthCheckFailed")
    })?;
    Ok(Json(Health {
        success: true,
        store: state.store.describe().kind,
    }))
}
