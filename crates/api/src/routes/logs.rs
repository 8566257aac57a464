//! `GET /v1/logs/{account}` (spec §25.1): an account's protocol log as a download, one JSON
//! object per line, oldest first. Lines are redacted when they are written, not here.

use axum::extract::{Path, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};

use crate::error::ApiResult;
use crate::state::AppState;

/// Download an account's protocol log
///
/// Kept while the account's `logs` flag (or the `logs.all` setting) is on, at most
/// `logs.maxLogLines` lines (default 10 000) of at most 2 KiB each; passwords, tokens and
/// `AUTHENTICATE` payloads are never in it.
#[utoipa::path(get, path = "/v1/logs/{account}", tag = "Logs",
    params(("account" = String, Path, description = "Account id")),
    responses((status = 200, description = "NDJSON: `{level, t, cid, lo, msg, src}` per line", content_type = "text/plain", body = String)),
    extensions(("x-ee-group" = json!("logs")), ("x-ee-action" = json!("read"))),
    security(("bearerAuth" = [])))]
pub async fn account_log(
    State(state): State<AppState>,
    Path(account): Path<String>,
) -> ApiResult<Response> {
    let entries = state.store.account_log(&account).await?;
    let mut body = String::new();
    for raw in &entries {
        let line = match emailengine_core::msgpack::decode(raw) {
            Some(v) => emailengine_core::msgpack::to_json(&v),
            None => serde_json::json!({"error": "Failed to decode log entry"}),
        };
        body.push_str(&line.to_string());
        body.push('\n');
    }
    if entries.is_empty() {
        body = format!("No logs found for {account}\n");
    }
    let filename = account.replace(
        |c: char| !c.is_ascii_alphanumeric() && c != '-' && c != '_' && c != '.',
        "_",
    );
    Ok((
        [
            (
                header::CONTENT_TYPE,
                "text/plain; charset=utf-8".to_string(),
            ),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"logs.{filename}.txt\""),
            ),
        ],
        body,
    )
        .into_response())
}
