//! Input validation failures in EmailEngine's shape: a list of `{message, key}` pairs with
//! Joi-style messages (`"pageSize" must be less than or equal to 1000`).

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct FieldError {
    pub message: String,
    pub key: String,
}

impl FieldError {
    pub fn new(key: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            key: key.into(),
            message: message.into(),
        }
    }

    /// `"<key>" <rest>`, the Joi convention.
    pub fn about(key: &str, rest: &str) -> Self {
        Self::new(key, format!("\"{key}\" {rest}"))
    }
}
