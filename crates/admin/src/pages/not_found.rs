//! The admin pages' answer for a path that does not exist.

use axum::http::StatusCode;
use axum::response::Response;

use crate::pages::error_page;

pub async fn page() -> Response {
    error_page(
        StatusCode::NOT_FOUND,
        "Page not found",
        "Requested page not found.",
    )
}
