//! The API, called in-process: every action the admin pages take is a request to the same
//! router that serves `/v1`, marked with [`AdminSession`] so the API lets it through as the
//! signed-in admin. No token is minted for this and nothing leaves the process.

use std::net::IpAddr;

use axum::Router;
use axum::body::Body;
use axum::http::{Method, Request, StatusCode, header};
use serde_json::Value;
use tower::ServiceExt;

use emailengine_api::auth::AdminSession;

/// Largest API answer the admin pages read.
const MAX_ANSWER: usize = 16 * 1024 * 1024;

#[derive(Clone)]
pub struct Api {
    router: Router,
}

/// The API's answer: status and JSON body (`Null` when the body was not JSON).
#[derive(Debug, Clone)]
pub struct Answer {
    pub status: StatusCode,
    pub body: Value,
}

impl Answer {
    pub fn is_ok(&self) -> bool {
        self.status.is_success()
    }

    /// What went wrong, in words for the page: the API's message and the fields it names.
    pub fn problem(&self) -> String {
        let message = self
            .body
            .get("message")
            .and_then(Value::as_str)
            .unwrap_or("The request failed")
            .to_string();
        let fields: Vec<String> = self
            .body
            .get("fields")
            .and_then(Value::as_array)
            .map(|fields| {
                fields
                    .iter()
                    .filter_map(|f| f.get("message").and_then(Value::as_str))
                    .map(str::to_string)
                    .collect()
            })
            .unwrap_or_default();
        if fields.is_empty() {
            message
        } else {
            format!("{message}: {}", fields.join("; "))
        }
    }
}

impl Api {
    pub fn new(router: Router) -> Self {
        Self { router }
    }

    pub async fn get(&self, path: &str, caller: Option<IpAddr>) -> Answer {
        self.call(Method::GET, path, None, caller).await
    }

    /// One API request as the admin at `caller`.
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
        caller: Option<IpAddr>,
    ) -> Answer {
        let builder = Request::builder().method(method).uri(path);
        let request = match body {
            Some(json) => builder
                .header(header::CONTENT_TYPE, "application/json")
                .body(Body::from(json.to_string())),
            None => builder.body(Body::empty()),
        };
        let Ok(mut request) = request else {
            return failure("Invalid request path");
        };
        request
            .extensions_mut()
            .insert(AdminSession { remote: caller });
        let Ok(response) = self.router.clone().oneshot(request).await;
        let status = response.status();
        match axum::body::to_bytes(response.into_body(), MAX_ANSWER).await {
            Ok(bytes) => Answer {
                status,
                body: serde_json::from_slice(&bytes).unwrap_or(Value::Null),
            },
            Err(_) => failure("The API answer could not be read"),
        }
    }
}

fn failure(message: &str) -> Answer {
    Answer {
        status: StatusCode::INTERNAL_SERVER_ERROR,
        body: serde_json::json!({"message": message}),
    }
}

/// Everything but RFC 3986's unreserved characters.
const COMPONENT: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// A path segment or query value, percent-encoded for a request URI.
pub fn enc(text: &str) -> String {
    percent_encoding::utf8_percent_encode(text, COMPONENT).to_string()
}

#[cfg(test)]
mod tests {
    #[test]
    fn components() {
        assert_eq!(super::enc("ui-ann_1.x~"), "ui-ann_1.x~");
        assert_eq!(super::enc("a/b c?&=%"), "a%2Fb%20c%3F%26%3D%25");
        assert_eq!(super::enc("/admin?x=1"), "%2Fadmin%3Fx%3D1");
    }
}
