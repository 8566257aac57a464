//! JavaScript's view of template values, so the comparison helpers behave as in EmailEngine:
//! loose `==`, relational `<` and truthiness over JSON values.

use std::borrow::Cow;

use handlebars::PathAndJson;
use serde_json::Value;

/// A template value seen with JavaScript's eyes, for `==`, `<` and truthiness.
#[derive(Debug, Clone)]
pub(super) enum Js<'a> {
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
    pub(super) fn of_param(p: &'a PathAndJson<'_>) -> Self {
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

    pub(super) fn truthy(&self) -> bool {
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
pub(super) fn js_loose_eq(a: &Js<'_>, b: &Js<'_>) -> bool {
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
pub(super) fn js_less_than(a: &Js<'_>, b: &Js<'_>) -> bool {
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
