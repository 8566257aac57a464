//! Custom webhook routes, read side (spec §5.7): routes stored in EmailEngine's layout
//! (`wh:i`, `wh:c` msgpack `meta` / `content`) listed and shown. Writing them is the admin UI's.

use axum::Json;
use axum::extract::{Path, State};
use serde_json::{Map, Value, json};

use emailengine_core::msgpack;
use emailengine_store::StoredWebhookRoute;

use crate::error::{ApiError, ApiResult};
use crate::extract::QueryParams;
use crate::state::AppState;

/// The listing fields of a route, from its stored `meta` (unknown fields are left out).
fn summary(id: &str, route: &StoredWebhookRoute) -> Map<String, Value> {
    let meta = msgpack::decode(&route.meta)
        .map(|v| msgpack::to_json(&v))
        .unwrap_or(Value::Null);
    let mut out = Map::new();
    out.insert("id".into(), Value::from(id));
    for key in [
        "name",
        "description",
        "created",
        "updated",
        "enabled",
        "targetUrl",
    ] {
        if let Some(v) = meta.get(key) {
            let v = match (key, v) {
                ("targetUrl", Value::String(url)) => {
                    Value::from(emailengine_core::settings::mask_url_credentials(url))
                }
                _ => v.clone(),
            };
            out.insert(key.into(), v);
        }
    }
    out.insert("tcount".into(), Value::from(route.tcount.unwrap_or(0)));
    out
}

/// List webhook routes
#[utoipa::path(get, path = "/v1/webhookRoutes", tag = "Webhooks",
    params(("page" = Option<u32>, Query, minimum = 0, maximum = 1048576, description = "Page number, from 0"),
        ("pageSize" = Option<u32>, Query, minimum = 1, maximum = 1000, description = "Routes per page (1..1000, default 20)")),
    responses((status = 200, description = "`{total, page, pages, webhooks: [{id, name, description, created, updated, enabled, targetUrl, tcount}]}`", body = Object)),
    extensions(("x-ee-group" = json!("webhook")), ("x-ee-action" = json!("read"))),
    security(("bearerAuth" = [])))]
pub async fn list(State(state): State<AppState>, mut query: QueryParams) -> ApiResult<Json<Value>> {
    let page = query.int("page", 0, 1_048_576, 0) as usize;
    let page_size = query.int("pageSize", 1, 1000, 20) as usize;
    query.finish()?;
    let mut ids = state.store.webhook_route_ids().await?;
    ids.sort();
    let total = ids.len();
    let mut webhooks = Vec::new();
    for id in ids.iter().skip(page * page_size).take(page_size) {
        if let Some(route) = state.store.webhook_route(id).await? {
            webhooks.push(Value::Object(summary(id, &route)));
        }
    }
    Ok(Json(json!({
        "total": total, "page": page, "pages": total.div_ceil(page_size), "webhooks": webhooks,
    })))
}

/// Show a webhook route
#[utoipa::path(get, path = "/v1/webhookRoutes/webhookRoute/{webhookRoute}", tag = "Webhooks",
    params(("webhookRoute" = String, Path, description = "Webhook route id")),
    responses((status = 200, description = "The listing fields and `content: {fn, map}`", body = Object),
        (status = 404, description = "Unknown route")),
    extensions(("x-ee-group" = json!("webhook")), ("x-ee-action" = json!("read"))),
    security(("bearerAuth" = [])))]
pub async fn get_one(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    let Some(route) = state.store.webhook_route(&id).await? else {
        return Err(
            ApiError::not_found("Requested webhook route was not found").with("code", "NotFound")
        );
    };
    let mut out = summary(&id, &route);
    let content = route
        .content
        .as_deref()
        .and_then(msgpack::decode)
        .map(|v| msgpack::to_json(&v))
        .unwrap_or_else(|| json!({}));
    let pick = |k: &str| content.get(k).cloned().unwrap_or(Value::Null);
    out.insert(
        "content".into(),
        json!({"fn": pick("fn"), "map": pick("map")}),
    );
    Ok(Json(Value::Object(out)))
}
