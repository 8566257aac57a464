//! Request inputs turned into EmailEngine's errors: JSON bodies (413 past the limit, 400 for
//! unreadable JSON) and query strings read field by field with Joi-style messages.

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::StatusCode;
use axum::http::request::Parts;
use serde_json::{Map, Value};

use emailengine_core::validation::FieldError;

use crate::error::ApiError;

/// Folder names never hold control characters (see [`crate::schema::FOLDER`]).
pub fn is_folder_name(name: &str) -> bool {
    !name.is_empty() && !name.chars().any(|c| c.is_control() && (c as u32) < 0x80)
}

/// A JSON object body.
pub struct JsonObject(pub Map<String, Value>);

impl<S: Send + Sync> FromRequest<S> for JsonObject {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        let limit = req
            .extensions()
            .get::<BodyLimit>()
            .map_or(usize::MAX, |l| l.0);
        let bytes = Bytes::from_request(req, state).await.map_err(|e| {
            if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::payload_too_large(limit)
            } else {
                ApiError::new(e.status(), e.body_text())
            }
        })?;
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(JsonObject(Map::new()));
        }
        match serde_json::from_slice::<Value>(&bytes) {
            Ok(Value::Object(map)) => Ok(JsonObject(map)),
            Ok(_) => Err(ApiError::field("value", "must be of type object")),
            Err(_) => Err(ApiError::invalid_input(vec![FieldError::new(
                "payload",
                "Invalid request payload JSON format",
            )])),
        }
    }
}

/// The body limit in force, recorded so the 413 message can name it.
#[derive(Clone, Copy)]
pub struct BodyLimit(pub usize);

/// Query parameters, read with conversions and Joi-style errors collected across fields.
pub struct QueryParams {
    pairs: Vec<(String, String)>,
    errors: Vec<FieldError>,
}

impl<S: Send + Sync> FromRequestParts<S> for QueryParams {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        let query = parts.uri.query().unwrap_or("");
        Ok(QueryParams {
            pairs: parse_query(query),
            errors: Vec::new(),
        })
    }
}

/// `a=1&b=x%20y` → pairs, with `+` as space and percent-decoding; `access_token` is left out.
pub fn parse_query(query: &str) -> Vec<(String, String)> {
    parse_query_raw(query)
        .filter(|(k, _)| k != "access_token")
        .collect()
}

/// Every decoded pair of a query string, `access_token` included.
pub fn parse_query_raw(query: &str) -> impl Iterator<Item = (String, String)> + '_ {
    query.split('&').filter(|p| !p.is_empty()).map(|pair| {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        (percent_decode(k), percent_decode(v))
    })
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => match (hex_digit(bytes[i + 1]), hex_digit(bytes[i + 2]))
            {
                (Some(hi), Some(lo)) => {
                    out.push(hi << 4 | lo);
                    i += 2;
                }
                _ => out.push(b'%'),
            },
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn hex_digit(b: u8) -> Option<u8> {
    (b as char).to_digit(16).map(|d| d as u8)
}

impl QueryParams {
    pub fn raw(&self, key: &str) -> Option<&str> {
        self.pairs
            .iter()
            .rev()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    pub fn keys(&self) -> impl Iterator<Item = &str> {
        self.pairs.iter().map(|(k, _)| k.as_str())
    }

    /// An integer within bounds, or the default when absent.
    pub fn int(&mut self, key: &str, min: i64, max: i64, default: i64) -> i64 {
        let Some(raw) = self.raw(key) else {
            return default;
        };
        match raw.trim().parse::<i64>() {
            Err(_) => {
                self.errors.push(FieldError::about(key, "must be a number"));
                default
            }
            Ok(n) if n < min => {
                self.errors.push(FieldError::about(
                    key,
                    &format!("must be greater than or equal to {min}"),
                ));
                default
            }
            Ok(n) if n > max => {
                self.errors.push(FieldError::about(
                    key,
                    &format!("must be less than or equal to {max}"),
                ));
                default
            }
            Ok(n) => n,
        }
    }

    /// A boolean (`true`/`false`), or `None` when absent.
    pub fn bool(&mut self, key: &str) -> Option<bool> {
        let raw = self.raw(key)?;
        match raw {
            "true" => Some(true),
            "false" => Some(false),
            _ => {
                self.errors
                    .push(FieldError::about(key, "must be a boolean"));
                None
            }
        }
    }

    /// A string up to `max` characters; empty counts as absent.
    pub fn string(&mut self, key: &str, max: usize) -> Option<String> {
        let raw = self.raw(key)?;
        if raw.is_empty() {
            return None;
        }
        if raw.chars().count() > max {
            self.errors.push(FieldError::about(
                key,
                &format!("length must be less than or equal to {max} characters long"),
            ));
            return None;
        }
        Some(raw.to_string())
    }

    /// A string that must be present; an empty string (with the error recorded) when absent.
    pub fn required_string(&mut self, key: &str, max: usize) -> String {
        let value = self.string(key, max);
        if value.is_none() && !self.errors.iter().any(|e| e.key == key) {
            self.reject(key, "is required");
        }
        value.unwrap_or_default()
    }

    /// A folder path: required, up to 1024 characters, no control characters.
    pub fn folder(&mut self, key: &str) -> String {
        let path = self.required_string(key, 1024);
        if !is_folder_name(&path) && !path.is_empty() {
            self.reject(key, "must not contain control characters");
        }
        path
    }

    pub fn reject(&mut self, key: &str, rest: &str) {
        self.errors.push(FieldError::about(key, rest));
    }

    /// Ends reading: 400 `Invalid input` if any field was wrong.
    pub fn finish(self) -> Result<(), ApiError> {
        if self.errors.is_empty() {
            Ok(())
        } else {
            Err(ApiError::invalid_input(self.errors))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_parsing() {
        let q = parse_query("a=1&b=x%20y+z&access_token=secret&c&d=%zz&e=%4");
        assert_eq!(
            q,
            vec![
                ("a".into(), "1".into()),
                ("b".into(), "x y z".into()),
                ("c".into(), "".into()),
                ("d".into(), "%zz".into()),
                ("e".into(), "%4".into()),
            ]
        );
    }

    #[test]
    fn percent_decoding_never_splits_characters() {
        assert_eq!(percent_decode("%C3%A9"), "é");
        assert_eq!(percent_decode("%é1"), "%é1");
    }
}
