//! Mail merge (spec §17.5): one submit payload with a `mailMerge` list becomes one independent
//! payload per entry, each then sent through the normal per-message pipeline.
//!
//! Validation of the payload (forbidden top-level keys, address shapes) happens before this.

use serde_json::{Map, Value};

use crate::{Error, Result};

/// The payload of one mail-merge entry.
#[derive(Debug, Clone, PartialEq)]
pub struct MergedMessage {
    /// The entry's `to`, as the response entry reports it.
    pub to: Value,
    pub payload: Map<String, Value>,
}

/// Expands `mailMerge`: each entry gets a deep copy of the payload without `mailMerge`,
/// `messageId` and `to`, with `to: [entry.to]`, the entry's `messageId` and `sendAt` when
/// given, and the entry's `params` replacing `render.params` (which creates `render` and so
/// switches rendering on; see [`crate::template::RenderRequest`]).
pub fn expand_mail_merge(payload: &Map<String, Value>) -> Result<Vec<MergedMessage>> {
    let invalid = |why: &str| Error::InvalidMailMerge(why.to_string());
    let entries = payload
        .get("mailMerge")
        .and_then(Value::as_array)
        .filter(|e| !e.is_empty())
        .ok_or_else(|| invalid("\"mailMerge\" must be a non-empty array"))?;
    let mut shared = payload.clone();
    for key in ["mailMerge", "messageId", "to"] {
        shared.remove(key);
    }
    entries
        .iter()
        .enumerate()
        .map(|(i, entry)| {
            let entry = entry
                .as_object()
                .ok_or_else(|| invalid(&format!("\"mailMerge[{i}]\" must be an object")))?;
            let to = entry
                .get("to")
                .filter(|t| !t.is_null())
                .ok_or_else(|| invalid(&format!("\"mailMerge[{i}].to\" is required")))?;
            let mut message = shared.clone();
            message.insert("to".into(), Value::Array(vec![to.clone()]));
            for key in ["messageId", "sendAt"] {
                if let Some(v) = entry.get(key).filter(|v| !v.is_null()) {
                    message.insert(key.into(), v.clone());
                }
            }
            if let Some(params) = entry.get("params").filter(|p| !p.is_null()) {
                let render = message
                    .entry("render")
                    .or_insert_with(|| Value::Object(Map::new()));
                if !render.is_object() {
                    *render = Value::Object(Map::new());
                }
                if let Some(r) = render.as_object_mut() {
                    r.insert("params".into(), params.clone());
                }
            }
            Ok(MergedMessage {
                to: to.clone(),
                payload: message,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::template::{RenderRequest, TemplateFormat};
    use serde_json::json;

    fn expand(v: Value) -> Result<Vec<MergedMessage>> {
        expand_mail_merge(v.as_object().unwrap())
    }

    #[test]
    fn entries_become_independent_payloads() {
        let out = expand(json!({
            "from": {"address": "a@example.com"},
            "subject": "Hi {{params.name}}",
            "messageId": "<top@example.com>",
            "sendAt": "2030-01-01T00:00:00Z",
            "listId": "test-list",
            "render": {"format": "markdown", "params": {"name": "shared"}},
            "attachments": [{"content": "aGk="}],
            "mailMerge": [
                {"to": {"name": "Bob", "address": "bob@example.com"}, "params": {"name": "Bob"}},
                {"to": {"address": "carol@example.com"}, "messageId": "<c@example.com>", "sendAt": "2031-01-01T00:00:00Z"}
            ]
        }))
        .unwrap();
        assert_eq!(out.len(), 2);
        assert_eq!(
            out[0].to,
            json!({"name": "Bob", "address": "bob@example.com"})
        );
        assert_eq!(
            Value::Object(out[0].payload.clone()),
            json!({
                "from": {"address": "a@example.com"},
                "subject": "Hi {{params.name}}",
                "sendAt": "2030-01-01T00:00:00Z",
                "listId": "test-list",
                "render": {"format": "markdown", "params": {"name": "Bob"}},
                "attachments": [{"content": "aGk="}],
                "to": [{"name": "Bob", "address": "bob@example.com"}]
            })
        );
        assert_eq!(
            Value::Object(out[1].payload.clone()),
            json!({
                "from": {"address": "a@example.com"},
                "subject": "Hi {{params.name}}",
                "sendAt": "2031-01-01T00:00:00Z",
                "listId": "test-list",
                "render": {"format": "markdown", "params": {"name": "shared"}},
                "attachments": [{"content": "aGk="}],
                "to": [{"address": "carol@example.com"}],
                "messageId": "<c@example.com>"
            })
        );
    }

    #[test]
    fn params_replace_instead_of_merging() {
        let out = expand(json!({
            "render": {"params": {"a": 1, "b": 2}},
            "mailMerge": [{"to": "x@example.com", "params": {"b": 3}}]
        }))
        .unwrap();
        assert_eq!(out[0].payload["render"], json!({"params": {"b": 3}}));
    }

    #[test]
    fn rendering_condition() {
        let out = expand(json!({
            "subject": "{{params.name}}",
            "mailMerge": [
                {"to": "a@example.com", "params": {"name": "A"}},
                {"to": "b@example.com"}
            ]
        }))
        .unwrap();
        assert_eq!(
            RenderRequest::from_payload(&out[0].payload),
            Some(RenderRequest {
                format: TemplateFormat::Html,
                params: json!({"name": "A"})
            }),
            "params create render"
        );
        assert_eq!(
            RenderRequest::from_payload(&out[1].payload),
            None,
            "placeholders stay literal"
        );
        let with_list =
            expand(json!({"listId": "l", "mailMerge": [{"to": "b@example.com"}]})).unwrap();
        assert!(RenderRequest::from_payload(&with_list[0].payload).is_some());
    }

    #[test]
    fn malformed_lists_are_refused() {
        for bad in [
            json!({}),
            json!({"mailMerge": []}),
            json!({"mailMerge": {"to": "a@example.com"}}),
            json!({"mailMerge": ["a@example.com"]}),
            json!({"mailMerge": [{"params": {}}]}),
        ] {
            assert!(
                matches!(expand(bad.clone()), Err(Error::InvalidMailMerge(_))),
                "{bad}"
            );
        }
    }
}
