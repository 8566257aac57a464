//! One outgoing message, from payload to queueable bytes (spec §17.1 order of processing):
//! stored template, default sender, list headers or blocklist skip, Handlebars rendering,
//! pre-header, reference, MIME build (or the raw message's own bytes), then open and click
//! tracking. Mail merge runs this once per entry.

use serde_json::{Map, Value, json};

use emailengine_core::account::AccountRecord;
use emailengine_core::compose::{self, Mailbox};
use emailengine_mail::MailBackend;
use emailengine_sending::lists::{self, Unsubscription};
use emailengine_sending::template::{
    self, RenderRequest, TemplateContent, TemplateContext, TemplateFormat, TemplateRecipient,
    TemplateRenderer,
};
use emailengine_sending::tracking::Tracker;

use super::raw;
use super::request::Options;
use crate::error::{ApiError, ApiResult};
use crate::state::AppState;

/// What every message of one request shares.
pub struct Shared<'a> {
    pub state: &'a AppState,
    pub account_id: &'a str,
    pub account: &'a AccountRecord,
    pub options: &'a Options,
    pub template: Option<(TemplateFormat, TemplateContent)>,
    /// `baseUrl` of the payload, else the `serviceUrl` setting.
    pub base_url: Option<url::Url>,
    pub secret: Vec<u8>,
    pub track_clicks: bool,
    pub track_opens: bool,
    pub renderer: &'a TemplateRenderer,
    /// The account's mail backend, for `reference` (opened only when needed).
    pub mail: Option<std::sync::Arc<dyn MailBackend>>,
}

/// A message ready to queue.
#[derive(Debug)]
pub struct Prepared {
    pub message_id: String,
    pub subject: Option<String>,
    pub raw: Vec<u8>,
    pub envelope_from: String,
    pub envelope_to: Vec<String>,
    /// Milliseconds, from the payload or a raw message's `X-EE-Send-At`.
    pub send_at: Option<i64>,
    pub attempts: Option<u32>,
    pub gateway: Option<String>,
    pub reference: Option<Value>,
}

/// The outcome for one message.
#[derive(Debug)]
pub enum Built {
    Message(Box<Prepared>),
    /// A list message to a blocklisted address: not sent.
    Skipped {
        reason: String,
        list_id: String,
    },
}

fn render_error(e: emailengine_sending::Error) -> ApiError {
    let field = match &e {
        emailengine_sending::Error::Render { field, .. } => field.as_str().to_string(),
        _ => "render".into(),
    };
    ApiError::new(axum::http::StatusCode::UNPROCESSABLE_ENTITY, e.to_string())
        .with("code", "RenderFailed")
        .with("fields", json!([{"message": e.to_string(), "key": field}]))
}

fn text_field(payload: &Map<String, Value>, key: &str) -> Option<String> {
    payload.get(key).and_then(Value::as_str).map(str::to_string)
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".into())
}

fn domain_of(address: &str) -> String {
    address
        .rsplit_once('@')
        .map(|(_, d)| d.to_string())
        .filter(|d| !d.is_empty())
        .unwrap_or_else(hostname)
}

/// Builds one message from its payload (a mail-merge entry's own copy, or the request's).
pub async fn build(shared: &Shared<'_>, mut payload: Map<String, Value>) -> ApiResult<Built> {
    let o = shared.options;
    if let Some((format, content)) = &shared.template {
        template::apply_template(&mut payload, *format, content);
    }
    let default_from = shared.account.email.clone().map(|address| Mailbox {
        name: shared.account.name.clone(),
        address,
    });
    if payload.get("raw").is_some_and(|r| !r.is_null()) {
        return build_raw(shared, &payload, default_from.as_ref());
    }
    if payload.get("from").is_none_or(Value::is_null)
        && let Some(f) = &default_from
    {
        payload.insert("from".into(), json!({"name": f.name, "address": f.address}));
    }
    let from_address = payload
        .get("from")
        .and_then(|f| f.get("address").or(Some(f)))
        .and_then(Value::as_str)
        .map(str::to_string)
        .ok_or_else(|| ApiError::field("from", "is required"))?;

    // List headers, or the skip of a blocklisted recipient.
    let recipients = compose::parse(&payload).map_err(ApiError::invalid_input)?;
    let mut template_rcpt = None;
    let list_id = o.list_id.as_deref();
    if let (Some(base), Some(list)) = (&shared.base_url, list_id)
        && lists::list_applies(true, Some(list), recipients.to.len())
    {
        let rcpt = &recipients.to[0];
        let key = lists::normalize_address(&rcpt.address);
        if let Some(record) = shared.state.store.blocklist_entry(list, &key).await? {
            let reason = serde_json::from_str::<Value>(&record)
                .ok()
                .and_then(|r| r.get("reason").and_then(Value::as_str).map(str::to_string))
                .unwrap_or_else(|| "block".into());
            return Ok(Built::Skipped {
                reason,
                list_id: list.to_string(),
            });
        }
        let message_id = match text_field(&payload, "messageId") {
            Some(m) => m,
            None => {
                let id = new_message_id(&domain_of(&from_address));
                payload.insert("messageId".into(), Value::from(id.as_str()));
                id
            }
        };
        let unsub = Unsubscription {
            account: shared.account_id.to_string(),
            list_id: list.to_string(),
            recipient: rcpt.address.clone(),
            message_id: Some(message_id),
        };
        let headers = lists::list_headers(&shared.secret, base, &hostname(), &unsub)
            .map_err(|e| ApiError::field("baseUrl", &e.to_string()))?;
        let extra = payload
            .entry("headers")
            .or_insert_with(|| Value::Object(Map::new()));
        if let Some(h) = extra.as_object_mut() {
            h.insert("List-ID".into(), Value::from(headers.list_id));
            h.insert(
                "List-Unsubscribe".into(),
                Value::from(headers.list_unsubscribe),
            );
            h.insert(
                "List-Unsubscribe-Post".into(),
                Value::from(headers.list_unsubscribe_post),
            );
        }
        template_rcpt = Some(TemplateRecipient {
            name: rcpt.name.clone(),
            address: rcpt.address.clone(),
            unsubscribe_url: headers.unsubscribe_url,
        });
    }

    // Rendering.
    let rendered = RenderRequest::from_payload(&payload);
    if let Some(request) = &rendered {
        let content = TemplateContent {
            subject: text_field(&payload, "subject"),
            text: text_field(&payload, "text"),
            html: text_field(&payload, "html"),
            preview_text: text_field(&payload, "previewText"),
        };
        let context = TemplateContext {
            params: request.params.clone(),
            account_name: shared.account.name.clone(),
            account_email: shared.account.email.clone(),
            service_url: shared.base_url.as_ref().map(|u| u.to_string()),
            recipient: template_rcpt,
        };
        let out = shared
            .renderer
            .render(&content, request.format, &context)
            .map_err(render_error)?;
        for (key, value) in [
            ("subject", out.subject),
            ("text", out.text),
            ("html", out.html),
            ("previewText", out.preview_text),
        ] {
            if let Some(v) = value {
                payload.insert(key.into(), Value::from(v));
            }
        }
    }
    if let (Some(html), Some(preview)) = (
        text_field(&payload, "html"),
        text_field(&payload, "previewText"),
    ) {
        let preview = if rendered.is_some() {
            preview
        } else {
            template::escape_html(&preview)
        };
        payload.insert(
            "html".into(),
            Value::from(template::preview_text_html(&html, &preview)),
        );
    }

    let mut c = compose::parse(&payload).map_err(ApiError::invalid_input)?;
    let mut reference = None;
    if let Some(Value::Object(r)) = payload.get("reference") {
        let mail = shared
            .mail
            .as_deref()
            .ok_or_else(|| ApiError::internal("No mail connection for the reference"))?;
        let found = crate::reference::apply(mail, r, &mut c).await?;
        let mut answer = json!({"success": found});
        if let Some(m) = r.get("message") {
            answer["message"] = m.clone();
        }
        reference = Some(answer);
    }
    if c.html.is_some() && c.text.is_none() {
        c.text = c.html.as_deref().map(html_to_text);
    }
    let message_id = c.ensure_message_id(&domain_of(&from_address));
    let now = chrono::Utc::now();
    let date = o.send_at.map_or(now.timestamp(), |ms| ms / 1000);
    let raw = c.build(date);
    let envelope_to = o.envelope_to.clone().unwrap_or_else(|| {
        unique(
            [&c.to, &c.cc, &c.bcc]
                .into_iter()
                .flatten()
                .map(|m| m.address.clone()),
        )
    });
    let prepared = Prepared {
        raw: track(shared, &raw, &message_id, None),
        message_id,
        subject: c.subject.clone(),
        envelope_from: o.envelope_from.clone().unwrap_or(from_address),
        envelope_to,
        send_at: payload
            .get("sendAt")
            .and_then(Value::as_str)
            .and_then(emailengine_core::units::parse_iso_time)
            .or(o.send_at),
        attempts: None,
        gateway: None,
        reference,
    };
    Ok(Built::Message(Box::new(prepared)))
}

fn build_raw(
    shared: &Shared<'_>,
    payload: &Map<String, Value>,
    default_from: Option<&Mailbox>,
) -> ApiResult<Built> {
    let o = shared.options;
    let host = default_from.map_or_else(hostname, |f| domain_of(&f.address));
    let now = chrono::Utc::now().timestamp_millis();
    let m = raw::prepare(payload, default_from, &host, now)?;
    let from = o
        .envelope_from
        .clone()
        .or(m.from.clone())
        .ok_or_else(|| ApiError::field("raw", "must have a From address or an envelope"))?;
    let tracked = track(shared, &m.raw, &m.message_id, m.controls.tracking);
    Ok(Built::Message(Box::new(Prepared {
        message_id: m.message_id,
        subject: m.subject,
        raw: tracked,
        envelope_from: from,
        envelope_to: o.envelope_to.clone().unwrap_or(m.recipients),
        send_at: o.send_at.or(m.controls.send_at.map(|t| t.max(now))),
        attempts: m.controls.attempts.filter(|n| (1..=100).contains(n)),
        gateway: m.controls.gateway,
        reference: None,
    })))
}

/// Open and click tracking (none for a dry run). `header_flag` is a raw message's
/// `X-EE-Tracking-Enabled`, which stands in for `trackingEnabled`.
fn track(shared: &Shared<'_>, raw: &[u8], message_id: &str, header_flag: Option<bool>) -> Vec<u8> {
    let clicks = header_flag.map_or(shared.track_clicks, |f| {
        shared.options.track_clicks.unwrap_or(f)
    });
    let opens = header_flag.map_or(shared.track_opens, |f| {
        shared.options.track_opens.unwrap_or(f)
    });
    let Some(base) = &shared.base_url else {
        return raw.to_vec();
    };
    if shared.options.dry_run || (!clicks && !opens) {
        return raw.to_vec();
    }
    match Tracker::new(&shared.secret, base, shared.account_id, message_id) {
        Ok(t) => t.track_message(raw, clicks, opens),
        Err(_) => raw.to_vec(),
    }
}

fn unique(addresses: impl Iterator<Item = String>) -> Vec<String> {
    let mut seen = std::collections::HashSet::new();
    addresses
        .filter(|a| seen.insert(a.to_ascii_lowercase()))
        .collect()
}

fn new_message_id(domain: &str) -> String {
    let mut r = [0u8; 16];
    rand::fill(&mut r);
    let h = hex::encode(r);
    format!(
        "<{}-{}-{}-{}-{}@{domain}>",
        &h[..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..]
    )
}

/// A plain-text alternative for an HTML-only message: tags dropped, block ends as line
/// breaks, entities decoded.
pub fn html_to_text(html: &str) -> String {
    let mut out = String::with_capacity(html.len());
    let mut rest = html;
    let mut skip_until: Option<&str> = None;
    while let Some(open) = rest.find('<') {
        if skip_until.is_none() {
            out.push_str(&rest[..open]);
        }
        let Some(close) = rest[open..].find('>') else {
            rest = "";
            break;
        };
        let tag = rest[open + 1..open + close].trim().to_ascii_lowercase();
        let name = tag
            .trim_start_matches('/')
            .split(|c: char| c.is_whitespace() || c == '/')
            .next()
            .unwrap_or("");
        match skip_until {
            Some(end) if tag.starts_with('/') && name == end => skip_until = None,
            Some(_) => {}
            None if !tag.starts_with('/')
                && (name == "style" || name == "script" || name == "head") =>
            {
                skip_until = Some(match name {
                    "style" => "style",
                    "script" => "script",
                    _ => "head",
                });
            }
            None => {
                if matches!(
                    name,
                    "br" | "p" | "div" | "tr" | "li" | "h1" | "h2" | "h3" | "h4" | "table"
                ) && (name == "br" || tag.starts_with('/'))
                {
                    out.push('\n');
                }
            }
        }
        rest = &rest[open + close + 1..];
    }
    if skip_until.is_none() {
        out.push_str(rest);
    }
    let decoded = html_escape::decode_html_entities(&out).to_string();
    let mut lines: Vec<&str> = decoded.lines().map(str::trim).collect();
    while lines.last().is_some_and(|l| l.is_empty()) {
        lines.pop();
    }
    let mut text = String::new();
    let mut blank = false;
    for l in lines {
        if l.is_empty() {
            if !blank && !text.is_empty() {
                text.push('\n');
            }
            blank = true;
            continue;
        }
        blank = false;
        text.push_str(l);
        text.push('\n');
    }
    text.trim_end().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn html_becomes_text() {
        assert_eq!(
            html_to_text(
                "<html><head><style>p{}</style></head><body><p>Hello &amp; <b>you</b></p><p>Line<br>two</p></body></html>"
            ),
            "Hello & you\nLine\ntwo"
        );
    }

    #[test]
    fn list_message_ids_are_uuid_shaped() {
        let id = new_message_id("example.com");
        assert_eq!(id.len(), 1 + 36 + 1 + "example.com".len() + 1);
        assert!(id.ends_with("@example.com>"));
    }
}
