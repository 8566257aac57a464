//! Handlebars rendering of message content at submit time (spec §18.3): which fields are
//! escaped, Markdown after escaped Handlebars, the context object and EmailEngine's helpers
//! with JavaScript's comparison rules. Also the hidden pre-header for `previewText` (§17.1).
//!
//! Loading templates and deciding where content comes from is the caller's; see
//! [`apply_template`] for how a stored template overwrites payload fields.

use std::sync::LazyLock;

use handlebars::{Context, Handlebars};
use regex::Regex;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use crate::{Error, Result};

mod helpers;
mod js;
mod moment;

/// A content field that can hold a template; names are the API's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TemplateField {
    Subject,
    Text,
    Html,
    PreviewText,
}

impl TemplateField {
    pub fn as_str(self) -> &'static str {
        match self {
            TemplateField::Subject => "subject",
            TemplateField::Text => "text",
            TemplateField::Html => "html",
            TemplateField::PreviewText => "previewText",
        }
    }
}

impl std::fmt::Display for TemplateField {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How the `html` field of a template is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TemplateFormat {
    #[default]
    Html,
    Markdown,
}

impl TemplateFormat {
    pub fn as_str(self) -> &'static str {
        match self {
            TemplateFormat::Html => "html",
            TemplateFormat::Markdown => "markdown",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "html" => Some(TemplateFormat::Html),
            "markdown" => Some(TemplateFormat::Markdown),
            _ => None,
        }
    }
}

/// The content a template carries and a submit payload may hold (`previewText` on the wire).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TemplateContent {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub html: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub preview_text: Option<String>,
}

/// The recipient of a list message as templates see it (`rcpt`, spec §20.2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TemplateRecipient {
    pub name: Option<String>,
    pub address: String,
    pub unsubscribe_url: String,
}

/// Everything a template can refer to: `params`, `account`, `service` and, for list messages,
/// `rcpt`.
#[derive(Debug, Clone, PartialEq)]
pub struct TemplateContext {
    pub params: Value,
    pub account_name: Option<String>,
    pub account_email: Option<String>,
    /// The base URL (`baseUrl` of the payload, else the `serviceUrl` setting).
    pub service_url: Option<String>,
    pub recipient: Option<TemplateRecipient>,
}

impl TemplateContext {
    /// `{params, account: {name, email}, service: {url}, rcpt?: {name?, address, unsubscribeUrl}}`;
    /// absent values are left out, which renders the same as JavaScript's `undefined`.
    pub fn to_json(&self) -> Value {
        let mut account = Map::new();
        insert_some(&mut account, "name", &self.account_name);
        insert_some(&mut account, "email", &self.account_email);
        let mut service = Map::new();
        insert_some(&mut service, "url", &self.service_url);
        let mut context = Map::new();
        context.insert("params".into(), self.params.clone());
        context.insert("account".into(), Value::Object(account));
        context.insert("service".into(), Value::Object(service));
        if let Some(r) = &self.recipient {
            let mut rcpt = Map::new();
            insert_some(&mut rcpt, "name", &r.name);
            rcpt.insert("address".into(), Value::from(r.address.as_str()));
            rcpt.insert(
                "unsubscribeUrl".into(),
                Value::from(r.unsubscribe_url.as_str()),
            );
            context.insert("rcpt".into(), Value::Object(rcpt));
        }
        Value::Object(context)
    }
}

fn insert_some(map: &mut Map<String, Value>, key: &str, value: &Option<String>) {
    if let Some(v) = value {
        map.insert(key.into(), Value::from(v.as_str()));
    }
}

/// The rendering a submit payload asks for: `render` as an object, or forced by `listId`
/// (spec §18.3, §20.2). `render: false` and an absent `render` without `listId` mean the
/// placeholders stay literal.
#[derive(Debug, Clone, PartialEq)]
pub struct RenderRequest {
    pub format: TemplateFormat,
    /// `render.params`, or an empty object.
    pub params: Value,
}

impl RenderRequest {
    pub fn from_payload(payload: &Map<String, Value>) -> Option<Self> {
        let render = payload.get("render").and_then(Value::as_object);
        let list = payload
            .get("listId")
            .and_then(Value::as_str)
            .is_some_and(|l| !l.is_empty());
        if render.is_none() && !list {
            return None;
        }
        let format = render
            .and_then(|r| r.get("format"))
            .and_then(Value::as_str)
            .and_then(TemplateFormat::parse)
            .unwrap_or_default();
        let params = render
            .and_then(|r| r.get("params"))
            .filter(|p| !p.is_null())
            .cloned()
            .unwrap_or_else(|| json!({}));
        Some(Self { format, params })
    }
}

/// Overwrites the payload's content fields with the template's, and when the template has
/// HTML sets `render.format` to the template's format, which also switches rendering on.
pub fn apply_template(
    payload: &mut Map<String, Value>,
    format: TemplateFormat,
    content: &TemplateContent,
) {
    let fields = [
        ("subject", &content.subject),
        ("text", &content.text),
        ("html", &content.html),
        ("previewText", &content.preview_text),
    ];
    for (key, value) in fields {
        if let Some(v) = value {
            payload.insert(key.into(), Value::from(v.as_str()));
        }
    }
    if content.html.is_some() {
        let render = payload
            .entry("render")
            .or_insert_with(|| Value::Object(Map::new()));
        if !render.is_object() {
            *render = Value::Object(Map::new());
        }
        if let Some(r) = render.as_object_mut() {
            r.insert("format".into(), Value::from(format.as_str()));
        }
    }
}

/// Renders templates with EmailEngine's helpers. Build one and share it: the registries are
/// read-only after construction.
pub struct TemplateRenderer {
    escaped: Handlebars<'static>,
    plain: Handlebars<'static>,
}

impl Default for TemplateRenderer {
    fn default() -> Self {
        Self::new()
    }
}

impl TemplateRenderer {
    pub fn new() -> Self {
        let mut escaped = Handlebars::new();
        escaped.register_escape_fn(handlebars::html_escape);
        helpers::register(&mut escaped);
        let mut plain = Handlebars::new();
        plain.register_escape_fn(handlebars::no_escape);
        helpers::register(&mut plain);
        Self { escaped, plain }
    }

    /// Renders one field by its rules: `subject` and `text` unescaped, `previewText` escaped,
    /// `html` escaped and, for Markdown, converted to HTML afterwards.
    pub fn render_field(
        &self,
        field: TemplateField,
        source: &str,
        format: TemplateFormat,
        context: &Value,
    ) -> Result<String> {
        self.render_with(field, source, format, &Context::from(context.clone()))
    }

    /// Renders every field present in `content` with one context.
    pub fn render(
        &self,
        content: &TemplateContent,
        format: TemplateFormat,
        context: &TemplateContext,
    ) -> Result<TemplateContent> {
        let ctx = Context::from(context.to_json());
        let field = |f: TemplateField, source: &Option<String>| {
            source
                .as_deref()
                .map(|s| self.render_with(f, s, format, &ctx))
                .transpose()
        };
        Ok(TemplateContent {
            subject: field(TemplateField::Subject, &content.subject)?,
            text: field(TemplateField::Text, &content.text)?,
            html: field(TemplateField::Html, &content.html)?,
            preview_text: field(TemplateField::PreviewText, &content.preview_text)?,
        })
    }

    fn render_with(
        &self,
        field: TemplateField,
        source: &str,
        format: TemplateFormat,
        ctx: &Context,
    ) -> Result<String> {
        let registry = match field {
            TemplateField::Subject | TemplateField::Text => &self.plain,
            TemplateField::Html | TemplateField::PreviewText => &self.escaped,
        };
        let rendered = registry
            .render_template_with_context(source, ctx)
            .map_err(|e| Error::Render {
                field,
                reason: e.to_string(),
            })?;
        Ok(match (field, format) {
            (TemplateField::Html, TemplateFormat::Markdown) => markdown_to_html(&rendered),
            _ => rendered,
        })
    }
}

/// HTML escaping as Handlebars does it (`& < > " ' \` =`), for text inserted into HTML.
pub fn escape_html(text: &str) -> String {
    handlebars::html_escape(text)
}

/// Markdown with the GitHub extensions `marked` enables by default; raw HTML passes through.
fn markdown_to_html(markdown: &str) -> String {
    use pulldown_cmark::{Options, Parser, html};
    let options = Options::ENABLE_TABLES
        | Options::ENABLE_STRIKETHROUGH
        | Options::ENABLE_TASKLISTS
        | Options::ENABLE_GFM;
    let mut out = String::with_capacity(markdown.len() * 3 / 2);
    html::push_html(&mut out, Parser::new_ext(markdown, options));
    out
}

static BODY_OPEN: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"(?i)<body\b[^>]*>").expect("constant pattern"));

/// Inserts `preview` (HTML: escaped text) as a hidden pre-header right after `<body ...>`, or
/// at the start when the document has no body tag.
pub fn preview_text_html(html: &str, preview: &str) -> String {
    let div = format!(
        "<div style=\"display:none;font-size:1px;color:#ffffff;line-height:1px;max-height:0px;\
         max-width:0px;opacity:0;overflow:hidden;\">{preview}</div>"
    );
    let at = BODY_OPEN.find(html).map_or(0, |m| m.end());
    let mut out = String::with_capacity(html.len() + div.len());
    out.push_str(&html[..at]);
    out.push_str(&div);
    out.push_str(&html[at..]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn context(params: Value) -> TemplateContext {
        TemplateContext {
            params,
            account_name: Some("Ann".into()),
            account_email: Some("ann@example.com".into()),
            service_url: Some("https://ee.example.com".into()),
            recipient: None,
        }
    }

    fn render(source: &str, params: Value) -> String {
        TemplateRenderer::new()
            .render_field(
                TemplateField::Text,
                source,
                TemplateFormat::Html,
                &context(params).to_json(),
            )
            .unwrap()
    }

    #[test]
    fn renderer_can_be_shared_between_tasks() {
        fn shareable<T: Send + Sync>() {}
        shareable::<TemplateRenderer>();
    }

    #[test]
    fn html_escapes_params_and_text_does_not() {
        let renderer = TemplateRenderer::new();
        let content = TemplateContent {
            subject: Some("Hi {{params.name}}".into()),
            text: Some("Hello {{params.name}}".into()),
            html: Some("<p>Hello {{params.name}}</p>".into()),
            preview_text: Some("For {{params.name}}".into()),
        };
        let out = renderer
            .render(
                &content,
                TemplateFormat::Html,
                &context(json!({"name": "<b>Bob</b> & 'co'="})),
            )
            .unwrap();
        assert_eq!(out.subject.as_deref(), Some("Hi <b>Bob</b> & 'co'="));
        assert_eq!(out.text.as_deref(), Some("Hello <b>Bob</b> & 'co'="));
        assert_eq!(
            out.html.as_deref(),
            Some("<p>Hello &lt;b&gt;Bob&lt;/b&gt; &amp; &#x27;co&#x27;&#x3D;</p>")
        );
        assert_eq!(
            out.preview_text.as_deref(),
            Some("For &lt;b&gt;Bob&lt;/b&gt; &amp; &#x27;co&#x27;&#x3D;")
        );
        assert_eq!(
            renderer
                .render_field(
                    TemplateField::Html,
                    "{{{params.name}}}",
                    TemplateFormat::Html,
                    &context(json!({"name": "<b>x</b>"})).to_json()
                )
                .unwrap(),
            "<b>x</b>",
            "triple braces stay unescaped"
        );
    }

    #[test]
    fn markdown_is_escaped_then_converted() {
        let renderer = TemplateRenderer::new();
        let out = renderer
            .render_field(
                TemplateField::Html,
                "# Hello {{params.name}}\n\nSome **bold** text.",
                TemplateFormat::Markdown,
                &context(json!({"name": "<i>Bob</i>"})).to_json(),
            )
            .unwrap();
        assert_eq!(
            out,
            "<h1>Hello &lt;i&gt;Bob&lt;/i&gt;</h1>\n<p>Some <strong>bold</strong> text.</p>\n"
        );
        let text = renderer
            .render_field(
                TemplateField::Text,
                "**{{params.name}}**",
                TemplateFormat::Markdown,
                &context(json!({"name": "x"})).to_json(),
            )
            .unwrap();
        assert_eq!(text, "**x**", "only html is converted");
    }

    #[test]
    fn context_object_has_account_service_and_rcpt() {
        let mut ctx = context(json!({"a": 1}));
        ctx.recipient = Some(TemplateRecipient {
            name: None,
            address: "bob@example.com".into(),
            unsubscribe_url: "https://ee.example.com/unsubscribe?data=x&sig=y".into(),
        });
        assert_eq!(
            ctx.to_json().to_string(),
            r#"{"params":{"a":1},"account":{"name":"Ann","email":"ann@example.com"},"service":{"url":"https://ee.example.com"},"rcpt":{"address":"bob@example.com","unsubscribeUrl":"https://ee.example.com/unsubscribe?data=x&sig=y"}}"#
        );
        let out = TemplateRenderer::new()
            .render_field(
                TemplateField::Text,
                "{{account.name}} <{{account.email}}> {{service.url}} {{rcpt.address}} {{rcpt.unsubscribeUrl}}",
                TemplateFormat::Html,
                &ctx.to_json(),
            )
            .unwrap();
        assert_eq!(
            out,
            "Ann <ann@example.com> https://ee.example.com bob@example.com https://ee.example.com/unsubscribe?data=x&sig=y"
        );
    }

    #[test]
    fn errors_name_the_field() {
        let renderer = TemplateRenderer::new();
        let err = renderer
            .render(
                &TemplateContent {
                    subject: Some("fine".into()),
                    html: Some("{{#if}}broken".into()),
                    ..Default::default()
                },
                TemplateFormat::Html,
                &context(json!({})),
            )
            .unwrap_err();
        assert_eq!(err.to_string(), "Failed rendering html template");
        let err = renderer
            .render_field(
                TemplateField::PreviewText,
                "{{#equals}}",
                TemplateFormat::Html,
                &json!({}),
            )
            .unwrap_err();
        assert_eq!(err.to_string(), "Failed rendering previewText template");
        let err = renderer
            .render_field(
                TemplateField::Subject,
                "{{equals 1 1}}",
                TemplateFormat::Html,
                &json!({}),
            )
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "Failed rendering subject template",
            "block helpers need a block"
        );
    }

    #[test]
    fn builtins_work() {
        assert_eq!(
            render(
                "{{#if params.on}}on{{else}}off{{/if}} {{#each params.list}}[{{this}}]{{/each}} {{#with params.o}}{{k}}{{/with}} {{lookup params.o \"k\"}} {{#unless params.off}}u{{/unless}}",
                json!({"on": true, "list": [1, "b"], "o": {"k": "v"}, "off": false})
            ),
            "on [1][b] v v u"
        );
        assert_eq!(render("[{{params.missing}}]", json!({})), "[]");
    }

    #[test]
    fn render_request_from_payload() {
        let p = |v: Value| RenderRequest::from_payload(v.as_object().unwrap());
        assert_eq!(p(json!({})), None);
        assert_eq!(p(json!({"render": false})), None);
        assert_eq!(
            p(json!({"render": {"format": "markdown", "params": {"a": 1}}})),
            Some(RenderRequest {
                format: TemplateFormat::Markdown,
                params: json!({"a": 1})
            })
        );
        assert_eq!(
            p(json!({"listId": "test-list"})),
            Some(RenderRequest {
                format: TemplateFormat::Html,
                params: json!({})
            }),
            "listId forces rendering"
        );
    }

    #[test]
    fn applying_a_template_overwrites_fields_and_sets_the_format() {
        let mut payload = json!({"subject": "old", "text": "keep", "render": false})
            .as_object()
            .unwrap()
            .clone();
        apply_template(
            &mut payload,
            TemplateFormat::Markdown,
            &TemplateContent {
                subject: Some("new".into()),
                html: Some("# hi".into()),
                ..Default::default()
            },
        );
        assert_eq!(
            Value::Object(payload),
            json!({"subject": "new", "text": "keep", "render": {"format": "markdown"}, "html": "# hi"})
        );
        let mut text_only = Map::new();
        apply_template(
            &mut text_only,
            TemplateFormat::Markdown,
            &TemplateContent {
                text: Some("t".into()),
                ..Default::default()
            },
        );
        assert_eq!(
            Value::Object(text_only),
            json!({"text": "t"}),
            "no html: rendering untouched"
        );
    }

    #[test]
    fn preview_text_goes_after_body() {
        let div = "<div style=\"display:none;font-size:1px;color:#ffffff;line-height:1px;max-height:0px;max-width:0px;opacity:0;overflow:hidden;\">Soon</div>";
        assert_eq!(
            preview_text_html("<html><BODY class=\"x\"><p>Hi</p></body></html>", "Soon"),
            format!("<html><BODY class=\"x\">{div}<p>Hi</p></body></html>")
        );
        assert_eq!(
            preview_text_html("<p>Hi</p>", "Soon"),
            format!("{div}<p>Hi</p>")
        );
        assert_eq!(
            preview_text_html("<bodyguard><body>", "Soon"),
            format!("<bodyguard><body>{div}"),
            "whole tag name"
        );
    }

    proptest::proptest! {
        #[test]
        fn rendering_never_panics(source in "\\PC{0,60}") {
            let _ = TemplateRenderer::new().render_field(
                TemplateField::Html, &source, TemplateFormat::Markdown, &json!({"params": {}}));
        }
    }
}
