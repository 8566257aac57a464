//! Handlebars rendering of message content at submit time (spec §18.3): which fields are
//! escaped, Markdown after escaped Handlebars, the context object and EmailEngine's helpers
//! with JavaScript's comparison rules. Also the hidden pre-header for `previewText` (§17.1).
//!
//! Loading templates and deciding where content comes from is the caller's; see
//! [`apply_template`] for how a stored template overwrites payload fields.

use std::borrow::Cow;
use std::sync::LazyLock;

use chrono::{DateTime, Datelike, FixedOffset, NaiveDate, NaiveDateTime, Timelike, Utc};
use handlebars::{
    Context, Handlebars, Helper, HelperDef, HelperResult, Output, PathAndJson, RenderContext,
    RenderError, RenderErrorReason, Renderable, ScopedJson,
};
use regex::Regex;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use crate::{Error, Result};

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
        register_helpers(&mut escaped);
        let mut plain = Handlebars::new();
        plain.register_escape_fn(handlebars::no_escape);
        register_helpers(&mut plain);
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

fn register_helpers(registry: &mut Handlebars<'static>) {
    registry.register_helper("formatDate", Box::new(FormatDate));
    registry.register_helper("insert", Box::new(Insert));
    registry.register_helper("length", Box::new(Length));
    registry.register_helper("greaterThan", Box::new(Condition(greater_than)));
    registry.register_helper("lessThan", Box::new(Condition(less_than)));
    registry.register_helper("equals", Box::new(Condition(equals)));
    registry.register_helper("notEquals", Box::new(Condition(not_equals)));
    registry.register_helper("and", Box::new(Condition(all_truthy)));
    registry.register_helper("or", Box::new(Condition(any_truthy)));
}

/// `{{formatDate ts "format" [utcOffset]}}`.
struct FormatDate;

impl HelperDef for FormatDate {
    fn call_inner<'reg: 'rc, 'rc>(
        &self,
        h: &Helper<'rc>,
        _: &'reg Handlebars<'reg>,
        _: &'rc Context,
        _: &mut RenderContext<'reg, 'rc>,
    ) -> std::result::Result<ScopedJson<'rc>, RenderError> {
        let time = match h.param(0) {
            None => Some(Utc::now().fixed_offset()),
            Some(p) if p.is_value_missing() => Some(Utc::now().fixed_offset()),
            Some(p) => parse_moment_input(p.value()),
        };
        let format = h
            .param(1)
            .and_then(|p| p.value().as_str())
            .unwrap_or(MOMENT_DEFAULT_FORMAT);
        let offset = h.param(2).and_then(|p| utc_offset(p.value()));
        let text = match time {
            Some(t) => {
                let t = offset.map_or(t, |o| t.with_timezone(&o));
                format_moment(&t, format)
            }
            None => "Invalid date".to_string(),
        };
        Ok(ScopedJson::Derived(Value::String(text)))
    }
}

/// `{{insert value "default=fallback"}}` (the fallback may also be a `default=` hash
/// argument): the value, or the fallback when the value is missing, null or empty.
struct Insert;

impl HelperDef for Insert {
    fn call_inner<'reg: 'rc, 'rc>(
        &self,
        h: &Helper<'rc>,
        _: &'reg Handlebars<'reg>,
        _: &'rc Context,
        _: &mut RenderContext<'reg, 'rc>,
    ) -> std::result::Result<ScopedJson<'rc>, RenderError> {
        let value = h.param(0).map(PathAndJson::value);
        let empty = match value {
            None | Some(Value::Null) => true,
            Some(Value::String(s)) => s.is_empty(),
            Some(_) => false,
        };
        if !empty {
            return Ok(ScopedJson::Derived(value.cloned().unwrap_or(Value::Null)));
        }
        let fallback = h
            .params()
            .iter()
            .skip(1)
            .filter_map(|p| p.value().as_str())
            .find_map(|s| s.strip_prefix("default="))
            .map(Value::from)
            .or_else(|| h.hash_get("default").map(|p| p.value().clone()))
            .unwrap_or(Value::Null);
        Ok(ScopedJson::Derived(fallback))
    }
}

/// `{{length value}}`: items of an array, UTF-16 units of a string (as JavaScript counts),
/// keys of an object; nothing otherwise.
struct Length;

impl HelperDef for Length {
    fn call_inner<'reg: 'rc, 'rc>(
        &self,
        h: &Helper<'rc>,
        _: &'reg Handlebars<'reg>,
        _: &'rc Context,
        _: &mut RenderContext<'reg, 'rc>,
    ) -> std::result::Result<ScopedJson<'rc>, RenderError> {
        let length = match h.param(0).map(PathAndJson::value) {
            Some(Value::Array(a)) => Value::from(a.len()),
            Some(Value::String(s)) => Value::from(s.encode_utf16().count()),
            Some(Value::Object(o)) => Value::from(o.len()),
            _ => Value::Null,
        };
        Ok(ScopedJson::Derived(length))
    }
}

/// A block helper that renders its block when the predicate holds over its arguments and its
/// `{{else}}` block otherwise. Used without a block it is an error, as in EmailEngine.
struct Condition(fn(&[Js<'_>]) -> bool);

impl HelperDef for Condition {
    fn call<'reg: 'rc, 'rc>(
        &self,
        h: &Helper<'rc>,
        r: &'reg Handlebars<'reg>,
        ctx: &'rc Context,
        rc: &mut RenderContext<'reg, 'rc>,
        out: &mut dyn Output,
    ) -> HelperResult {
        if !h.is_block() {
            return Err(RenderErrorReason::BlockContentRequired.into());
        }
        let args: Vec<Js<'_>> = h.params().iter().map(Js::of_param).collect();
        let branch = if (self.0)(&args) {
            h.template()
        } else {
            h.inverse()
        };
        match branch {
            Some(t) => t.render(r, ctx, rc, out),
            None => Ok(()),
        }
    }
}

fn pair<'a, 'b>(args: &'b [Js<'a>]) -> (&'b Js<'a>, &'b Js<'a>) {
    (
        args.first().unwrap_or(&Js::Undefined),
        args.get(1).unwrap_or(&Js::Undefined),
    )
}

fn greater_than(args: &[Js<'_>]) -> bool {
    let (a, b) = pair(args);
    js_less_than(b, a)
}

fn less_than(args: &[Js<'_>]) -> bool {
    let (a, b) = pair(args);
    js_less_than(a, b)
}

fn equals(args: &[Js<'_>]) -> bool {
    let (a, b) = pair(args);
    js_loose_eq(a, b)
}

fn not_equals(args: &[Js<'_>]) -> bool {
    !equals(args)
}

fn all_truthy(args: &[Js<'_>]) -> bool {
    args.iter().all(Js::truthy)
}

fn any_truthy(args: &[Js<'_>]) -> bool {
    args.iter().any(Js::truthy)
}

/// A template value seen with JavaScript's eyes, for `==`, `<` and truthiness.
#[derive(Debug, Clone)]
enum Js<'a> {
    Undefined,
    Null,
    Bool(bool),
    Number(f64),
    String(Cow<'a, str>),
    /// Arrays and objects. Distinct JavaScript objects are never `==`; template values have no
    /// identity, so equal structures count as the same object.
    Object(&'a Value),
}

impl<'a> Js<'a> {
    fn of_param(p: &'a PathAndJson<'_>) -> Self {
        if p.is_value_missing() {
            Js::Undefined
        } else {
            Js::of(p.value())
        }
    }

    fn of(v: &'a Value) -> Self {
        match v {
            Value::Null => Js::Null,
            Value::Bool(b) => Js::Bool(*b),
            Value::Number(n) => Js::Number(n.as_f64().unwrap_or(f64::NAN)),
            Value::String(s) => Js::String(Cow::Borrowed(s)),
            Value::Array(_) | Value::Object(_) => Js::Object(v),
        }
    }

    fn truthy(&self) -> bool {
        match self {
            Js::Undefined | Js::Null => false,
            Js::Bool(b) => *b,
            Js::Number(n) => *n != 0.0 && !n.is_nan(),
            Js::String(s) => !s.is_empty(),
            Js::Object(_) => true,
        }
    }

    /// ToPrimitive: objects become their string form, everything else stays.
    fn primitive(&self) -> Js<'a> {
        match self {
            Js::Object(v) => Js::String(Cow::Owned(js_string_of_value(v))),
            other => other.clone(),
        }
    }

    fn number(&self) -> f64 {
        match self {
            Js::Undefined => f64::NAN,
            Js::Null => 0.0,
            Js::Bool(b) => f64::from(u8::from(*b)),
            Js::Number(n) => *n,
            Js::String(s) => js_string_to_number(s),
            Js::Object(v) => js_string_to_number(&js_string_of_value(v)),
        }
    }
}

/// JavaScript's `a == b`.
fn js_loose_eq(a: &Js<'_>, b: &Js<'_>) -> bool {
    match (a, b) {
        (Js::Undefined | Js::Null, Js::Undefined | Js::Null) => true,
        (Js::Undefined | Js::Null, _) | (_, Js::Undefined | Js::Null) => false,
        (Js::Bool(x), Js::Bool(y)) => x == y,
        (Js::Number(x), Js::Number(y)) => x == y,
        (Js::String(x), Js::String(y)) => x == y,
        (Js::Object(x), Js::Object(y)) => x == y,
        (Js::Bool(_), _) => js_loose_eq(&Js::Number(a.number()), b),
        (_, Js::Bool(_)) => js_loose_eq(a, &Js::Number(b.number())),
        (Js::Number(x), Js::String(_)) => *x == b.number(),
        (Js::String(_), Js::Number(y)) => a.number() == *y,
        (Js::Object(_), _) => js_loose_eq(&a.primitive(), b),
        (_, Js::Object(_)) => js_loose_eq(a, &b.primitive()),
    }
}

/// JavaScript's `a < b`: strings compare by UTF-16 code units, anything else as numbers.
fn js_less_than(a: &Js<'_>, b: &Js<'_>) -> bool {
    match (a.primitive(), b.primitive()) {
        (Js::String(x), Js::String(y)) => x.encode_utf16().lt(y.encode_utf16()),
        (x, y) => x.number() < y.number(),
    }
}

/// JavaScript's `String(value)` for JSON values (arrays joined with commas).
fn js_string_of_value(v: &Value) -> String {
    match v {
        Value::Null => "null".into(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => js_number_string(n),
        Value::String(s) => s.clone(),
        Value::Array(items) => items
            .iter()
            .map(|i| match i {
                Value::Null => String::new(),
                other => js_string_of_value(other),
            })
            .collect::<Vec<_>>()
            .join(","),
        Value::Object(_) => "[object Object]".into(),
    }
}

fn js_number_string(n: &serde_json::Number) -> String {
    match n.as_f64() {
        Some(f) if n.is_f64() && f.fract() == 0.0 && f.abs() < 1e21 => format!("{f:.0}"),
        _ => n.to_string(),
    }
}

/// JavaScript's `Number(string)`.
fn js_string_to_number(text: &str) -> f64 {
    let t = text.trim();
    if t.is_empty() {
        return 0.0;
    }
    let radix =
        |digits: &str, base: u32| u64::from_str_radix(digits, base).map_or(f64::NAN, |n| n as f64);
    if let Some(rest) = t.strip_prefix("0x").or_else(|| t.strip_prefix("0X")) {
        return radix(rest, 16);
    }
    if let Some(rest) = t.strip_prefix("0o").or_else(|| t.strip_prefix("0O")) {
        return radix(rest, 8);
    }
    if let Some(rest) = t.strip_prefix("0b").or_else(|| t.strip_prefix("0B")) {
        return radix(rest, 2);
    }
    match t {
        "Infinity" | "+Infinity" => return f64::INFINITY,
        "-Infinity" => return f64::NEG_INFINITY,
        _ => {}
    }
    // Rust also reads "inf" and "nan", which JavaScript does not.
    if !t
        .bytes()
        .all(|b| b.is_ascii_digit() || matches!(b, b'.' | b'e' | b'E' | b'+' | b'-'))
    {
        return f64::NAN;
    }
    t.parse().unwrap_or(f64::NAN)
}

/// moment's format when none is given.
const MOMENT_DEFAULT_FORMAT: &str = "YYYY-MM-DDTHH:mm:ssZ";

/// What `moment(input)` accepts: epoch milliseconds, ISO 8601 strings (without a zone they
/// are local time, taken here as UTC) and, as `Date` would, RFC 2822 dates.
fn parse_moment_input(value: &Value) -> Option<DateTime<FixedOffset>> {
    match value {
        Value::Number(n) => {
            let ms = n.as_f64()?;
            if !ms.is_finite() {
                return None;
            }
            DateTime::from_timestamp_millis(ms as i64).map(|t| t.fixed_offset())
        }
        Value::String(s) => parse_date_text(s.trim()),
        _ => None,
    }
}

fn parse_date_text(s: &str) -> Option<DateTime<FixedOffset>> {
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Some(t);
    }
    let spaced = s.replacen(' ', "T", 1);
    for candidate in [s, spaced.as_str()] {
        for f in ["%Y-%m-%dT%H:%M:%S%.f%:z", "%Y-%m-%dT%H:%M:%S%.f%z"] {
            if let Ok(t) = DateTime::parse_from_str(candidate, f) {
                return Some(t);
            }
        }
        if let Some(t) = candidate
            .strip_suffix('Z')
            .and_then(parse_naive)
            .or_else(|| parse_naive(candidate))
        {
            return Some(t.and_utc().fixed_offset());
        }
    }
    DateTime::parse_from_rfc2822(s).ok()
}

fn parse_naive(s: &str) -> Option<NaiveDateTime> {
    ["%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%dT%H:%M"]
        .iter()
        .find_map(|f| NaiveDateTime::parse_from_str(s, f).ok())
        .or_else(|| {
            NaiveDate::parse_from_str(s, "%Y-%m-%d")
                .ok()
                .and_then(|d| d.and_hms_opt(0, 0, 0))
        })
}

/// moment's `utcOffset(x)`: a number of minutes, or of hours when its magnitude is below 16;
/// or a string such as `+02:00`, `-0530`, `+03` or `Z`.
fn utc_offset(value: &Value) -> Option<FixedOffset> {
    let minutes = match value {
        Value::Number(n) => {
            let n = n.as_f64()?;
            if n.abs() < 16.0 { n * 60.0 } else { n }
        }
        Value::String(s) => offset_from_string(s)?,
        _ => return None,
    };
    FixedOffset::east_opt((minutes.round() as i32).checked_mul(60)?)
}

static SHORT_OFFSET: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"(?i)Z|([+-])(\d\d)(?::?(\d\d))?").expect("constant pattern"));

fn offset_from_string(s: &str) -> Option<f64> {
    let caps = SHORT_OFFSET.captures_iter(s).last()?;
    let Some(sign) = caps.get(1) else {
        return Some(0.0);
    };
    let hours: f64 = caps.get(2)?.as_str().parse().ok()?;
    let mins: f64 = caps.get(3).map_or(Some(0.0), |m| m.as_str().parse().ok())?;
    let total = hours * 60.0 + mins;
    Some(if sign.as_str() == "-" { -total } else { total })
}

const MONTHS: [&str; 12] = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
];
const WEEKDAYS: [&str; 7] = [
    "Sunday",
    "Monday",
    "Tuesday",
    "Wednesday",
    "Thursday",
    "Friday",
    "Saturday",
];

/// The moment tokens this renderer knows, longest first where one is a prefix of another.
const MOMENT_TOKENS: &[&str] = &[
    "YYYY", "YY", "Y", "MMMM", "MMM", "MM", "M", "DDDD", "DDD", "Do", "DD", "D", "dddd", "ddd",
    "dd", "d", "HH", "H", "hh", "h", "mm", "m", "ss", "s", "SSS", "SS", "S", "A", "a", "ZZ", "Z",
    "X", "x",
];

/// Formats with moment's tokens (English names); `[...]` is literal text, as in moment.
fn format_moment(t: &DateTime<FixedOffset>, format: &str) -> String {
    let mut out = String::with_capacity(format.len() + 16);
    let mut rest = format;
    while let Some(c) = rest.chars().next() {
        if c == '['
            && let Some(close) = rest[1..].find(']')
            && !rest[1..1 + close].contains('[')
        {
            out.push_str(&rest[1..1 + close]);
            rest = &rest[close + 2..];
            continue;
        }
        match MOMENT_TOKENS.iter().find(|tok| rest.starts_with(**tok)) {
            Some(tok) => {
                push_token(&mut out, t, tok);
                rest = &rest[tok.len()..];
            }
            None => {
                out.push(c);
                rest = &rest[c.len_utf8()..];
            }
        }
    }
    out
}

fn push_token(out: &mut String, t: &DateTime<FixedOffset>, token: &str) {
    use std::fmt::Write as _;
    let hour12 = match t.hour() % 12 {
        0 => 12,
        h => h,
    };
    let weekday = t.weekday().num_days_from_sunday() as usize;
    let month = t.month0() as usize;
    let offset = t.offset().local_minus_utc() / 60;
    let (sign, off_h, off_m) = (
        if offset < 0 { '-' } else { '+' },
        offset.abs() / 60,
        offset.abs() % 60,
    );
    // Writing into a String cannot fail.
    let _ = match token {
        "YYYY" => write!(out, "{:04}", t.year()),
        "YY" => write!(out, "{:02}", t.year().rem_euclid(100)),
        "Y" if t.year() > 9999 => write!(out, "+{}", t.year()),
        "Y" => write!(out, "{:04}", t.year()),
        "MMMM" => write!(out, "{}", MONTHS[month]),
        "MMM" => write!(out, "{}", &MONTHS[month][..3]),
        "MM" => write!(out, "{:02}", t.month()),
        "M" => write!(out, "{}", t.month()),
        "DDDD" => write!(out, "{:03}", t.ordinal()),
        "DDD" => write!(out, "{}", t.ordinal()),
        "Do" => write!(out, "{}{}", t.day(), ordinal_suffix(t.day())),
        "DD" => write!(out, "{:02}", t.day()),
        "D" => write!(out, "{}", t.day()),
        "dddd" => write!(out, "{}", WEEKDAYS[weekday]),
        "ddd" => write!(out, "{}", &WEEKDAYS[weekday][..3]),
        "dd" => write!(out, "{}", &WEEKDAYS[weekday][..2]),
        "d" => write!(out, "{weekday}"),
        "HH" => write!(out, "{:02}", t.hour()),
        "H" => write!(out, "{}", t.hour()),
        "hh" => write!(out, "{hour12:02}"),
        "h" => write!(out, "{hour12}"),
        "mm" => write!(out, "{:02}", t.minute()),
        "m" => write!(out, "{}", t.minute()),
        "ss" => write!(out, "{:02}", t.second()),
        "s" => write!(out, "{}", t.second()),
        "SSS" => write!(out, "{:03}", t.timestamp_subsec_millis()),
        "SS" => write!(out, "{:02}", t.timestamp_subsec_millis() / 10),
        "S" => write!(out, "{}", t.timestamp_subsec_millis() / 100),
        "A" => write!(out, "{}", if t.hour() < 12 { "AM" } else { "PM" }),
        "a" => write!(out, "{}", if t.hour() < 12 { "am" } else { "pm" }),
        "ZZ" => write!(out, "{sign}{off_h:02}{off_m:02}"),
        "Z" => write!(out, "{sign}{off_h:02}:{off_m:02}"),
        "X" => write!(out, "{}", t.timestamp()),
        "x" => write!(out, "{}", t.timestamp_millis()),
        other => write!(out, "{other}"),
    };
}

fn ordinal_suffix(day: u32) -> &'static str {
    match (day % 10, day % 100) {
        (_, 11..=13) => "th",
        (1, _) => "st",
        (2, _) => "nd",
        (3, _) => "rd",
        _ => "th",
    }
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
    fn equals_is_loose() {
        let cases = [
            (json!("1"), json!(1), true),
            (json!(1), json!(1.0), true),
            (json!("1.0"), json!(1), true),
            (json!(""), json!(0), true),
            (json!(" 2 "), json!(2), true),
            (json!("0x10"), json!(16), true),
            (json!(true), json!(1), true),
            (json!(true), json!("1"), true),
            (json!(false), json!(""), true),
            (json!(null), json!(0), false),
            (json!(null), json!(false), false),
            (json!("a"), json!("A"), false),
            (json!([1, 2]), json!("1,2"), true),
            (json!([1]), json!(1), true),
            (json!({"a": 1}), json!("[object Object]"), true),
            (json!("abc"), json!(0), false),
            (json!("inf"), json!("inf"), true),
        ];
        for (a, b, expected) in cases {
            let out = render(
                "{{#equals params.a params.b}}yes{{else}}no{{/equals}}|{{#notEquals params.a params.b}}yes{{else}}no{{/notEquals}}",
                json!({"a": a, "b": b}),
            );
            let want = if expected { "yes|no" } else { "no|yes" };
            assert_eq!(out, want, "{a} == {b}");
        }
        assert_eq!(
            render(
                "{{#equals params.x params.y}}yes{{/equals}}",
                json!({"y": null})
            ),
            "yes",
            "undefined == null"
        );
        assert_eq!(
            render(
                "{{#equals params.name \"Bob\"}}hi Bob{{/equals}}",
                json!({"name": "Bob"})
            ),
            "hi Bob"
        );
    }

    #[test]
    fn comparisons_follow_javascript() {
        let gt = |a: Value, b: Value| {
            render(
                "{{#greaterThan params.a params.b}}gt{{else}}no{{/greaterThan}}{{#lessThan params.a params.b}}lt{{/lessThan}}",
                json!({"a": a, "b": b}),
            )
        };
        assert_eq!(gt(json!(2), json!(1)), "gt");
        assert_eq!(gt(json!("10"), json!(9)), "gt", "number comparison");
        assert_eq!(gt(json!("10"), json!("9")), "nolt", "string comparison");
        assert_eq!(gt(json!(null), json!(-1)), "gt", "null is 0");
        assert_eq!(gt(json!("x"), json!(1)), "no", "NaN compares false");
        assert_eq!(gt(json!(1), json!(1)), "no");
        assert_eq!(
            render(
                "{{#lessThan params.missing 5}}lt{{else}}no{{/lessThan}}",
                json!({})
            ),
            "no",
            "undefined is NaN"
        );
        assert_eq!(
            render("{{#greaterThan 3 2}}literal{{/greaterThan}}", json!({})),
            "literal"
        );
    }

    #[test]
    fn and_or_use_javascript_truthiness() {
        let t = "{{#and params.a params.b params.c}}and{{else}}-{{/and}}{{#or params.a params.b params.c}}or{{else}}-{{/or}}";
        assert_eq!(render(t, json!({"a": 1, "b": "x", "c": []})), "andor");
        assert_eq!(render(t, json!({"a": 1, "b": "", "c": {}})), "-or");
        assert_eq!(render(t, json!({"a": 0, "b": null, "c": false})), "--");
    }

    #[test]
    fn insert_and_length() {
        assert_eq!(
            render(
                "{{insert params.name \"default=Friend\"}}/{{insert params.other \"default=Friend\"}}/{{insert params.empty default=\"x\"}}/{{insert params.zero \"default=n\"}}",
                json!({"name": "Bob", "empty": "", "zero": 0})
            ),
            "Bob/Friend/x/0"
        );
        assert_eq!(
            render(
                "{{length params.list}} {{length params.word}} {{length params.obj}} [{{length params.n}}]",
                json!({"list": [1, 2, 3], "word": "héllo😀", "obj": {"a": 1, "b": 2}, "n": 5})
            ),
            "3 7 2 []"
        );
        let html = TemplateRenderer::new()
            .render_field(
                TemplateField::Html,
                "{{insert params.x \"default=<none>\"}}",
                TemplateFormat::Html,
                &json!({"params": {}}),
            )
            .unwrap();
        assert_eq!(html, "&lt;none&gt;", "helper output is escaped in html");
    }

    #[test]
    fn format_date_tokens() {
        let ts = json!(1_700_000_000_123i64); // 2023-11-14T22:13:20.123Z, a Tuesday
        let f = |fmt: &str| {
            render(
                &format!("{{{{formatDate params.ts \"{fmt}\"}}}}"),
                json!({"ts": ts}),
            )
        };
        assert_eq!(
            f("YYYY YY MMMM MMM MM M DD D dddd ddd HH H hh h mm m ss s A a Z ZZ"),
            "2023 23 November Nov 11 11 14 14 Tuesday Tue 22 22 10 10 13 13 20 20 PM pm +00:00 +0000"
        );
        assert_eq!(
            f("Do DDD DDDD dd d SSS X x [YYYY at] h:mm a"),
            "14th 318 318 Tu 2 123 1700000000 1700000000123 YYYY at 10:13 pm"
        );
        assert_eq!(
            render("{{formatDate params.ts}}", json!({"ts": ts})),
            "2023-11-14T22:13:20+00:00",
            "moment's default format"
        );
    }

    #[test]
    fn format_date_offsets_and_inputs() {
        let f = |ts: Value, extra: &str| {
            render(
                &format!("{{{{formatDate params.ts \"YYYY-MM-DD HH:mm Z\" {extra}}}}}"),
                json!({"ts": ts}),
            )
        };
        let ts = json!("2023-11-14T22:13:20.123Z");
        assert_eq!(f(ts.clone(), ""), "2023-11-14 22:13 +00:00");
        assert_eq!(f(ts.clone(), "2"), "2023-11-15 00:13 +02:00", "hours");
        assert_eq!(f(ts.clone(), "-330"), "2023-11-14 16:43 -05:30", "minutes");
        assert_eq!(f(ts.clone(), "\"+05:45\""), "2023-11-15 03:58 +05:45");
        assert_eq!(f(ts.clone(), "\"-0800\""), "2023-11-14 14:13 -08:00");
        assert_eq!(
            f(json!("2023-11-14T10:00:00+03:00"), ""),
            "2023-11-14 10:00 +03:00",
            "keeps the parsed offset"
        );
        assert_eq!(f(json!("2023-11-14"), ""), "2023-11-14 00:00 +00:00");
        assert_eq!(f(json!("2023-11-14 08:30"), ""), "2023-11-14 08:30 +00:00");
        assert_eq!(
            f(json!("Tue, 14 Nov 2023 22:13:20 +0000"), ""),
            "2023-11-14 22:13 +00:00"
        );
        assert_eq!(f(json!("not a date"), ""), "Invalid date");
        assert_eq!(f(json!(null), ""), "Invalid date");
        assert_eq!(f(json!(0), ""), "1970-01-01 00:00 +00:00");
        let now = render("{{formatDate params.missing \"YYYY\"}}", json!({}));
        assert_eq!(now, Utc::now().format("%Y").to_string(), "undefined is now");
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

    #[test]
    fn moment_literals_and_unknown_letters() {
        let t = DateTime::parse_from_rfc3339("2024-01-02T03:04:05Z").unwrap();
        assert_eq!(format_moment(&t, "[at] HH[h] q é"), "at 03h q é");
        assert_eq!(
            format_moment(&t, "[unclosed YYYY"),
            "[unclo5e2 2024",
            "an unclosed bracket is literal, the letters after it are tokens"
        );
        assert_eq!(format_moment(&t, "Do"), "2nd");
    }

    proptest::proptest! {
        #[test]
        fn rendering_never_panics(source in "\\PC{0,60}") {
            let _ = TemplateRenderer::new().render_field(
                TemplateField::Html, &source, TemplateFormat::Markdown, &json!({"params": {}}));
        }

        #[test]
        fn moment_format_never_panics(format in "\\PC{0,40}") {
            let t = DateTime::parse_from_rfc3339("2024-01-02T03:04:05Z").unwrap();
            let _ = format_moment(&t, &format);
        }
    }
}
