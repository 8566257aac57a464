//! `GET /v1/stats`: server, store and account counts (spec §6.1).

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::State;
use serde::Serialize;
use utoipa::ToSchema;

use crate::error::ApiResult;
use crate::extract::QueryParams;
use crate::state::AppState;

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Stats {
    /// EmailEngine API version this server is compatible with.
    pub version: &'static str,
    pub license: &'static str,
    /// Registered accounts.
    pub accounts: u64,
    /// Version of the Redis server (with the embedded store: `embedded (SQLite <version>)`).
    pub redis: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub redis_software: Option<String>,
    pub redis_cluster: bool,
    pub redis_warnings: Vec<serde_json::Value>,
    pub arch: &'static str,
    /// Event and call counters summed over the requested window.
    pub counters: BTreeMap<String, u64>,
    pub queues: BTreeMap<&'static str, QueueStats>,
    /// Accounts by connection state.
    pub connections: BTreeMap<&'static str, u64>,
    /// Round-trip time of a PING to Redis (or a query to the embedded store), in milliseconds.
    pub redis_ping: f64,
    /// Which store this server uses and where its data lives.
    pub store: StoreInfo,
    pub build: Build,
}

#[derive(Serialize, ToSchema)]
pub struct StoreInfo {
    /// `embedded` or `redis`.
    #[serde(rename = "type")]
    pub kind: &'static str,
    /// The data directory, or the Redis URL without its password.
    pub location: String,
    pub version: String,
}

#[derive(Serialize, ToSchema, Default)]
#[serde(rename_all = "camelCase")]
pub struct QueueStats {
    pub active: u64,
    pub delayed: u64,
    pub waiting: u64,
    pub paused: u64,
    pub is_paused: bool,
    pub total: u64,
}

#[derive(Serialize, ToSchema)]
pub struct Build {
    pub implementation: &'static str,
    pub version: &'static str,
}

/// The counters EmailEngine always reports, even before their first increment.
const COUNTERS: [&str; 9] = [
    "events:messageNew",
    "events:messageDeleted",
    "events:connectError",
    "webhooks:success",
    "webhooks:fail",
    "apiCall:success",
    "apiCall:fail",
    "submit:success",
    "submit:fail",
];

/// Account states reported under `connections` (spec §12.1).
const STATES: [&str; 9] = [
    "init",
    "connected",
    "connecting",
    "syncing",
    "authenticationError",
    "connectError",
    "unset",
    "disconnected",
    "paused",
];

/// Return server stats
#[utoipa::path(get, path = "/v1/stats", tag = "Stats",
    params(("seconds" = Option<u32>, Query, minimum = 0, maximum = 604800, description = "Counter window in seconds (0..604800, default 3600)")),
    responses((status = 200, body = Stats)),
    extensions(("x-ee-group" = json!("diagnostics")), ("x-ee-action" = json!("read"))),
    security(("bearerAuth" = [])))]
pub async fn stats(
    State(state): State<AppState>,
    mut query: QueryParams,
) -> ApiResult<Json<Stats>> {
    let seconds = query.int("seconds", 0, 604_800, 3600) as u64;
    query.finish()?;
    let now = chrono::Utc::now().timestamp_millis();
    let (accounts, counters, ping, info, notify, outbox) = tokio::join!(
        state.store.account_count(),
        state.store.counters(seconds, now),
        state.store.ping(),
        state.backend_info(),
        state.store.events_pending_count("webhooks"),
        state.store.list_outbox(0, 0),
    );
    let (notify_paused, submit_paused) = (
        crate::routes::queues::is_paused(&state, "notify")
            .await
            .unwrap_or(false),
        crate::routes::queues::is_paused(&state, "submit")
            .await
            .unwrap_or(false),
    );
    let notify = notify.unwrap_or(0);
    let submit = outbox.map(|(total, _)| total).unwrap_or(0);
    let accounts = accounts?;
    let mut all_counters: BTreeMap<String, u64> =
        COUNTERS.iter().map(|c| (c.to_string(), 0)).collect();
    all_counters.extend(counters?);
    // Live states from the connection engine; accounts without a running connection count as
    // disconnected, as EmailEngine counts unassigned accounts.
    let mut connections: BTreeMap<&'static str, u64> = STATES.iter().map(|s| (*s, 0)).collect();
    let mut assigned = 0;
    for (state_name, n) in state.mail.state_counts() {
        if let Some(slot) = STATES
            .iter()
            .find(|s| **s == state_name.as_str())
            .and_then(|s| connections.get_mut(s))
        {
            *slot += n;
            assigned += n;
        }
    }
    if let Some(d) = connections.get_mut("disconnected") {
        *d += accounts.saturating_sub(assigned);
    }
    let described = state.store.describe();
    let (redis, redis_software) = match described.kind {
        "redis" => (info.version.clone(), info.software.clone()),
        _ => (format!("embedded (SQLite {})", info.version), None),
    };
    Ok(Json(Stats {
        version: emailengine_core::COMPAT_VERSION,
        license: "MIT OR Apache-2.0",
        accounts,
        redis,
        redis_software,
        redis_cluster: info.cluster,
        redis_warnings: Vec::new(),
        arch: std::env::consts::ARCH,
        counters: all_counters,
        queues: [
            ("notify", notify, notify_paused),
            ("submit", submit, submit_paused),
        ]
        .into_iter()
        .map(|(q, waiting, is_paused)| {
            (
                q,
                QueueStats {
                    waiting,
                    total: waiting,
                    is_paused,
                    ..Default::default()
                },
            )
        })
        .collect(),
        connections,
        redis_ping: (ping?.as_secs_f64() * 1000.0 * 1000.0).round() / 1000.0,
        store: StoreInfo {
            kind: described.kind,
            location: described.location,
            version: info.version,
        },
        build: Build {
            implementation: "emailengine-rs",
            version: emailengine_core::VERSION,
        },
    }))
}
