//! EmailEngine's template helpers (spec §18.3): `formatDate`, `insert`, `length` and the
//! block helpers `greaterThan`, `lessThan`, `equals`, `notEquals`, `and`, `or`, which compare
//! with JavaScript's rules.

use chrono::Utc;
use handlebars::{
    Context, Handlebars, Helper, HelperDef, HelperResult, Output, PathAndJson, RenderContext,
    RenderError, RenderErrorReason, Renderable, ScopedJson,
};
use serde_json::Value;

use super::js::{Js, js_less_than, js_loose_eq};
use super::moment::{MOMENT_DEFAULT_FORMAT, format_moment, parse_moment_input, utc_offset};

pub(super) fn register(registry: &mut Handlebars<'static>) {
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
                // moment shows parsed times in local time, which is UTC here.
                let t = offset.map_or_else(
                    || t.with_timezone(&Utc).fixed_offset(),
                    |o| t.with_timezone(&o),
                );
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

#[cfg(test)]
mod tests {
    use crate::template::{TemplateContext, TemplateField, TemplateFormat, TemplateRenderer};
    use serde_json::{Value, json};

    fn render(source: &str, params: Value) -> String {
        let context = TemplateContext {
            params,
            account_name: None,
            account_email: None,
            service_url: None,
            recipient: None,
        };
        TemplateRenderer::new()
            .render_field(
                TemplateField::Text,
                source,
                TemplateFormat::Html,
                &context.to_json(),
            )
            .unwrap()
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
            "2023-11-14 07:00 +00:00",
            "shown in local time, not in the parsed offset"
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
        assert_eq!(
            now,
            chrono::Utc::now().format("%Y").to_string(),
            "undefined is now"
        );
    }
}
