//! The one place where failures become HTTP responses, in EmailEngine's JSON error shape:
//! `{"statusCode", "error", "message", ...extras}` (spec §4).

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};

use emailengine_core::validation::FieldError;
use emailengine_mail::MailError;
use emailengine_store::StoreError;

/// An error response. Boxed so that `Result<T, ApiError>` stays small on the happy path.
#[derive(Debug)]
pub struct ApiError(Box<ErrorBody>);

#[derive(Debug)]
struct ErrorBody {
    status: StatusCode,
    message: String,
    extras: Map<String, Value>,
    headers: Vec<(header::HeaderName, HeaderValue)>,
}

impl ApiError {
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Self(Box::new(ErrorBody {
            status,
            message: message.into(),
            extras: Map::new(),
            headers: Vec::new(),
        }))
    }

    pub fn with(mut self, key: &str, value: impl Into<Value>) -> Self {
        self.0.extras.insert(key.to_string(), value.into());
        self
    }

    pub fn header(mut self, name: header::HeaderName, value: HeaderValue) -> Self {
        self.0.headers.push((name, value));
        self
    }

    pub fn status(&self) -> StatusCode {
        self.0.status
    }

    /// The human-readable message (for HTML pages that show an API failure).
    pub fn message(&self) -> &str {
        &self.0.message
    }

    /// 401 without credentials: `Missing authentication`, challenge `Bearer`.
    pub fn missing_authentication() -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "Missing authentication")
            .header(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"))
    }

    /// 401 for a token that is malformed, unknown or expired.
    pub fn bad_token() -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "Bad token").header(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Bearer error=\"Bad token\""),
        )
    }

    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, message)
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, message)
    }

    /// 400 `Invalid input` with the failing fields.
    pub fn invalid_input(fields: Vec<FieldError>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "Invalid input").with(
            "fields",
            serde_json::to_value(fields).unwrap_or(Value::Array(Vec::new())),
        )
    }

    pub fn field(key: &str, rest: &str) -> Self {
        Self::invalid_input(vec![FieldError::about(key, rest)])
    }

    pub fn payload_too_large(limit: usize) -> Self {
        Self::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("Payload content length greater than maximum allowed: {limit}"),
        )
    }

    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, message)
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        tracing::error!(err = %e, "Storage request failed");
        match e {
            StoreError::Backend(_) | StoreError::Open(_) => Self::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "Storage backend unavailable",
            )
            .with("code", "StorageUnavailable"),
            StoreError::Data(msg) => Self::internal(msg).with("code", "InternalConfigError"),
        }
    }
}

impl From<MailError> for ApiError {
    fn from(e: MailError) -> Self {
        let message = e.to_string();
        match e {
            MailError::AccountNotFound => Self::not_found(message).with("code", "AccountNotFound"),
            MailError::NotConnected(state) => Self::new(StatusCode::SERVICE_UNAVAILABLE, message)
                .with("code", state.unavailable_code())
                .with("state", state.as_str()),
            MailError::Timeout => {
                Self::new(StatusCode::GATEWAY_TIMEOUT, message).with("code", "Timeout")
            }
            MailError::MessageNotFound => Self::not_found(message).with("code", "MessageNotFound"),
            MailError::MailboxNotFound => Self::not_found(message).with("code", "NotFound"),
            MailError::AttachmentNotFound => {
                Self::not_found(message).with("code", "AttachmentNotFound")
            }
            MailError::Invalid { code, .. } => {
                Self::new(StatusCode::BAD_REQUEST, message).with("code", code)
            }
            // The mail server said no to what the request asked: the request's fault, in the
            // server's words.
            MailError::Refused { code, .. } if code.as_deref() == Some("ALREADYEXISTS") => {
                Self::new(StatusCode::CONFLICT, message).with("code", "AlreadyExists")
            }
            MailError::Refused { code, .. } => Self::new(StatusCode::BAD_REQUEST, message)
                .with("code", code.unwrap_or_else(|| "CommandFailed".into())),
            MailError::Unsupported(_) => {
                Self::new(StatusCode::BAD_REQUEST, message).with("code", "UnsupportedOperation")
            }
            MailError::Connection(_) => {
                tracing::warn!(err = %message, "Mail server connection failed during a call");
                Self::new(StatusCode::SERVICE_UNAVAILABLE, message).with("code", "ConnectionError")
            }
            MailError::Store(e) => e.into(),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let e = *self.0;
        let mut body = Map::with_capacity(3 + e.extras.len());
        body.insert("statusCode".into(), json!(e.status.as_u16()));
        body.insert(
            "error".into(),
            json!(e.status.canonical_reason().unwrap_or("Error")),
        );
        body.insert("message".into(), json!(e.message));
        body.extend(e.extras);
        let mut response = (e.status, axum::Json(Value::Object(body))).into_response();
        for (name, value) in e.headers {
            response.headers_mut().insert(name, value);
        }
        response
    }
}

pub type ApiResult<T> = Result<T, ApiError>;

#[cfg(test)]
mod tests {
    use super::*;

    fn body(e: ApiError) -> (u16, Value) {
        let status = e.status().as_u16();
        let e = *e.0;
        let mut map = Map::new();
        map.insert("message".into(), json!(e.message));
        map.extend(e.extras);
        (status, Value::Object(map))
    }

    #[test]
    fn mail_failures_in_emailengine_shape() {
        // A failure of this server's own store is never a mail-server error.
        let (status, b) = body(MailError::Store(StoreError::Backend("down".into())).into());
        assert_eq!(
            (status, b["code"].clone()),
            (503, json!("StorageUnavailable"))
        );
        let (status, b) = body(MailError::Timeout.into());
        assert_eq!(
            (status, b),
            (
                504,
                json!({"message": "Timeout waiting for command response", "code": "Timeout"})
            )
        );
        let (status, b) = body(
            MailError::NotConnected(emailengine_core::connection::ConnectionState::ConnectError)
                .into(),
        );
        assert_eq!(
            (status, b["code"].clone(), b["state"].clone()),
            (503, json!("ConnectionError"), json!("connectError"))
        );
        let (status, b) = body(
            MailError::Refused {
                response: "Mailbox exists".into(),
                code: Some("ALREADYEXISTS".into()),
            }
            .into(),
        );
        assert_eq!(
            (status, b["message"].clone()),
            (409, json!("Mailbox exists"))
        );
    }
}
