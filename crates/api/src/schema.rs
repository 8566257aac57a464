//! JSON Schema fragments that request bodies share, for the `x-ee-body` declarations in the
//! route annotations. Each mirrors what the handlers accept, so `/swagger.json` describes the
//! validation exactly; the project's schemathesis run (`tests/api_contract.rs`) holds them to it.

use serde_json::{Value, json};

/// Folder names: no control characters (servers echo names back in their answers).
pub const FOLDER: &str = r"^[^\u0000-\u001f\u007f]+$";

/// A folder path: a string, or its segments.
pub fn folder_path() -> Value {
    json!({"anyOf": [
        {"type": "string", "minLength": 1, "maxLength": 1024, "pattern": FOLDER},
        {"type": "array", "minItems": 1, "items": {"type": "string", "minLength": 1, "pattern": FOLDER}},
    ]})
}

/// A boolean as EmailEngine's search schema reads one (`Y`/`N`, `true`/`false`, `1`/`0`).
fn loose_boolean() -> Value {
    json!({"anyOf": [{"type": "boolean"}, {"enum": ["true", "false", "Y", "N", "1", "0"]}]})
}

fn text(max: u32) -> Value {
    json!({"type": "string", "maxLength": max})
}

fn date() -> Value {
    json!({"anyOf": [
        {"type": "string", "format": "date"},
        {"type": "string", "format": "date-time"},
        {"type": "integer", "minimum": 0, "maximum": 8_000_000_000_000_000i64},
    ]})
}

/// An IMAP sequence or UID set of numbers below a billion.
const SET: &str = r"^([0-9]{1,9}|\*)(:([0-9]{1,9}|\*))?(,([0-9]{1,9}|\*)(:([0-9]{1,9}|\*))?)*$";
/// An IMAP atom: printable ASCII without `(){%*"\]`.
pub const ATOM: &str = r#"^[!#$&'+-\[^-z|}~]+$"#;

/// EmailEngine's search object (every key of its schema).
pub fn search() -> Value {
    let size = json!({"type": "integer", "minimum": 0, "maximum": 1_073_741_824});
    json!({
        "type": "object",
        "additionalProperties": false,
        "properties": {
            "seq": {"type": "string", "maxLength": 256, "pattern": SET},
            "uid": {"type": "string", "maxLength": 256, "pattern": SET},
            "answered": loose_boolean(), "deleted": loose_boolean(), "draft": loose_boolean(),
            "unseen": loose_boolean(), "flagged": loose_boolean(), "seen": loose_boolean(),
            "from": text(256), "to": text(256), "cc": text(256), "bcc": text(256),
            "body": text(256), "subject": text(256), "text": text(256),
            "larger": size, "smaller": size,
            "modseq": {"type": "integer", "minimum": 0},
            "before": date(), "since": date(), "sentBefore": date(), "sentSince": date(),
            "emailId": text(256), "threadId": text(256), "gmraw": text(1024),
            "keyword": {"type": "string", "maxLength": 256, "pattern": ATOM},
            "unKeyword": {"type": "string", "maxLength": 256, "pattern": ATOM},
            "header": {
                "type": "object",
                "propertyNames": {"pattern": "^[!-9;-~]+$"},
                "additionalProperties": {"anyOf": [text(256), {"const": true}]},
            },
        },
    })
}

/// A message flag: a system flag or a keyword.
pub fn flag() -> Value {
    json!({"anyOf": [
        {"enum": ["\\Seen", "\\Answered", "\\Flagged", "\\Deleted", "\\Draft"]},
        {"type": "string", "maxLength": 255, "pattern": ATOM},
    ]})
}

fn changes(item: Value) -> Value {
    let list = json!({"type": ["array", "null"], "items": item});
    json!({
        "type": "object",
        "additionalProperties": false,
        "properties": {"add": list, "delete": list, "set": list},
    })
}

/// Flag and label changes of a message update.
pub fn message_update() -> Value {
    json!({
        "type": "object",
        "additionalProperties": false,
        "properties": {
            "flags": changes(flag()),
            "labels": changes(json!({"type": "string", "minLength": 1, "maxLength": 255})),
        },
    })
}
