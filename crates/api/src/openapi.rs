//! The OpenAPI document's frame: title, version and the bearer security scheme. Paths and
//! schemas come from the handlers' annotations.

use utoipa::Modify;
use utoipa::openapi::OpenApi as Doc;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};

#[derive(utoipa::OpenApi)]
#[openapi(
    info(
        title = "EmailEngine API",
        description = "EmailEngine-compatible REST API served by emailengine-rs. Authenticate with \
            `Authorization: Bearer <token>` or `?access_token=<token>`."
    ),
    modifiers(&Security)
)]
pub struct ApiDoc;

struct Security;

impl Modify for Security {
    fn modify(&self, doc: &mut Doc) {
        doc.info.version = emailengine_core::COMPAT_VERSION.to_string();
        let components = doc.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearerAuth",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

/// The document as served at `/swagger.json`. Each route's annotation declares its request body
/// schema (`x-ee-body`) beside its policy; it becomes the operation's `requestBody` here. Every
/// operation also gets the error answers its shape can produce, in EmailEngine's error shape:
/// 401/403/429 from the auth layer, 400 when it takes input, 404 for a path with identifiers,
/// 413 for a body, 503 when storage (or the account's connection) is unavailable, 504 when a
/// mail call waits too long for a connection.
pub fn finish(doc: &Doc) -> serde_json::Value {
    use serde_json::{Value, json};
    let mut doc = serde_json::to_value(doc).unwrap_or(Value::Null);
    let error = json!({
        "type": "object",
        "required": ["statusCode", "error", "message"],
        "properties": {
            "statusCode": {"type": "integer"},
            "error": {"type": "string"},
            "message": {"type": "string"},
            "code": {"type": "string"},
        },
    });
    if let Some(schemas) = doc
        .pointer_mut("/components")
        .and_then(Value::as_object_mut)
    {
        let s = schemas.entry("schemas").or_insert_with(|| json!({}));
        if let Some(s) = s.as_object_mut() {
            s.insert("Error".into(), error);
        }
    }
    let Some(paths) = doc.get_mut("paths").and_then(Value::as_object_mut) else {
        return doc;
    };
    for (path, item) in paths.iter_mut() {
        let Some(item) = item.as_object_mut() else {
            continue;
        };
        for (method, op) in item.iter_mut() {
            let Some(op) = op.as_object_mut() else {
                continue;
            };
            if let Some(body) = op.remove("x-ee-body") {
                // A body whose every field is optional may be left out altogether.
                let required = body.get("required").is_some();
                op.insert(
                    "requestBody".into(),
                    json!({"required": required, "content": {"application/json": {"schema": body}}}),
                );
            }
            let public = op.get("x-ee-auth").is_some_and(|v| v == "none");
            let has_params = op
                .get("parameters")
                .and_then(Value::as_array)
                .is_some_and(|p| !p.is_empty());
            let has_body = op.contains_key("requestBody");
            let mail = path.starts_with("/v1/account/{account}/")
                && op
                    .get("x-ee-group")
                    .is_some_and(|g| g == "message" || g == "mailbox" || g == "submit");
            let mut statuses: Vec<(&str, &str)> = Vec::new();
            if !public {
                statuses.extend([
                    ("401", "Missing or bad token"),
                    ("403", "The token may not use this route"),
                    ("429", "Rate limit exceeded"),
                ]);
            }
            if has_params || has_body {
                statuses.push(("400", "Invalid input"));
            }
            if path.contains('{') {
                statuses.push(("404", "Not found"));
            }
            if has_body || method == "post" || method == "put" {
                statuses.push(("413", "Payload too large"));
            }
            statuses.push(("500", "Internal error"));
            statuses.push(("503", "Storage or the account's connection unavailable"));
            if mail {
                statuses.push(("409", "The mail server has such a folder already"));
                statuses.push(("504", "No connection became free in time"));
            }
            let responses = op.entry("responses").or_insert_with(|| json!({}));
            let Some(responses) = responses.as_object_mut() else {
                continue;
            };
            for (status, description) in statuses {
                responses.entry(status).or_insert_with(|| {
                    json!({
                        "description": description,
                        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
                    })
                });
            }
        }
    }
    doc
}
