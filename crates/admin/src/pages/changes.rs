//! `GET /admin/changes`: the live change stream for the pages' script. The same stream, from
//! the same feed, as the API's `GET /v1/changes`; only the credential differs (the admin
//! session here, checked by the guard).

use axum::extract::State;
use axum::response::Response;

use emailengine_api::routes::changes::{KEEP_ALIVE, event_stream};

use crate::Admin;

pub async fn stream(State(admin): State<Admin>) -> Response {
    event_stream(&admin.app.events.changes, KEEP_ALIVE)
}
