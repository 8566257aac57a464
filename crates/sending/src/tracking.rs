//! Open and click tracking (spec §19): links in HTML rewritten to signed `/redirect` URLs, the
//! open pixel, the same applied to every `text/html` part of a finished RFC 822 message, and
//! the checks the public `/redirect` and `/open.gif` routes make.
//!
//! Which messages get tracked (settings, per-message flags) and the webhooks are the caller's.

use std::borrow::Cow;
use std::sync::LazyLock;

use base64::Engine as _;
use emailengine_core::signed::{self, SignedError};
use mail_parser::{MessageParser, MimeHeaders, PartType};
use regex::Regex;
use serde_json::{Value, json};
use url::Url;

use crate::{Error, Result};

/// The transparent 1×1 GIF `/open.gif` answers with.
pub const OPEN_GIF: [u8; 42] = [
    0x47, 0x49, 0x46, 0x38, 0x39, 0x61, 0x01, 0x00, 0x01, 0x00, 0x80, 0x00, 0x00, 0x00, 0x00, 0x00,
    0xff, 0xff, 0xff, 0x21, 0xf9, 0x04, 0x01, 0x00, 0x00, 0x00, 0x00, 0x2c, 0x00, 0x00, 0x00, 0x00,
    0x01, 0x00, 0x01, 0x00, 0x00, 0x02, 0x01, 0x44, 0x00, 0x3b,
];

/// The response headers of `/open.gif`, so no cache keeps the pixel from being fetched again.
pub const OPEN_GIF_HEADERS: [(&str, &str); 4] = [
    ("Content-Type", "image/gif"),
    ("Content-Disposition", "inline; filename=\"open.gif\""),
    (
        "Cache-Control",
        "no-store, no-cache, must-revalidate, max-age=0, post-check=0, pre-check=0",
    ),
    ("Pragma", "no-cache"),
];

/// `<a ... href=...>` with the value in double, single or no quotes.
static LINK: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r#"(?i)<a(?:\s[^>]*?)?\shref\s*=\s*(?:"([^"]*)"|'([^']*)'|([^\s"'>]+))"#)
        .expect("constant pattern")
});

static BODY_CLOSE: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"(?i)</body").expect("constant pattern"));

/// Signs tracking links for one message. Not `Debug`: it holds the secret.
#[derive(Clone)]
pub struct Tracker<'a> {
    secret: &'a [u8],
    account: &'a str,
    message_id: &'a str,
    redirect: String,
    open_gif: String,
    origin: url::Origin,
    own_paths: [String; 2],
}

impl<'a> Tracker<'a> {
    /// `base` is the payload's `baseUrl` or the `serviceUrl` setting; link paths resolve
    /// against it as `new URL("redirect", base)` does. `message_id` is the Message-ID header
    /// value, brackets included.
    pub fn new(
        secret: &'a [u8],
        base: &Url,
        account: &'a str,
        message_id: &'a str,
    ) -> Result<Self> {
        let join = |path: &str| base.join(path).map_err(|_| Error::InvalidBaseUrl);
        let redirect = join("redirect")?;
        let unsubscribe = join("unsubscribe")?;
        Ok(Self {
            secret,
            account,
            message_id,
            open_gif: join("open.gif")?.to_string(),
            own_paths: [redirect.path().to_string(), unsubscribe.path().to_string()],
            redirect: redirect.to_string(),
            origin: base.origin(),
        })
    }

    /// Replaces every `http…` link target with a signed `/redirect` URL. Targets are
    /// entity-decoded before signing and the new URL is entity-encoded; links to this
    /// service's own `/redirect` and `/unsubscribe` stay as they are.
    pub fn rewrite_links<'h>(&self, html: &'h str) -> Cow<'h, str> {
        let mut out = String::new();
        let mut copied = 0;
        for caps in LINK.captures_iter(html) {
            let Some(value) = caps.get(1).or_else(|| caps.get(2)).or_else(|| caps.get(3)) else {
                continue;
            };
            let target = html_escape::decode_html_entities(value.as_str().trim());
            let is_http = target
                .get(..4)
                .is_some_and(|p| p.eq_ignore_ascii_case("http"));
            if !is_http || self.is_own_link(&target) {
                continue;
            }
            if out.is_empty() {
                out.reserve(html.len() + html.len() / 4);
            }
            out.push_str(&html[copied..value.start()]);
            push_attribute_escaped(&mut out, &self.click_url(&target));
            copied = value.end();
        }
        if copied == 0 {
            return Cow::Borrowed(html);
        }
        out.push_str(&html[copied..]);
        Cow::Owned(out)
    }

    /// Inserts the open pixel before `</body`, or appends it.
    pub fn add_open_pixel(&self, html: &str) -> String {
        let signed = signed::sign(
            self.secret,
            &json!({"act": "open", "acc": self.account, "msg": self.message_id}),
        );
        let pixel = format!(
            "<img src=\"{}?{}\" style=\"border: 0px; width:1px; height: 1px;\" tabindex=\"-1\" \
             width=\"1\" height=\"1\" alt=\"\">",
            self.open_gif,
            signed.query()
        );
        let at = BODY_CLOSE.find(html).map_or(html.len(), |m| m.start());
        let mut out = String::with_capacity(html.len() + pixel.len());
        out.push_str(&html[..at]);
        out.push_str(&pixel);
        out.push_str(&html[at..]);
        out
    }

    /// Applies click and/or open tracking to every `text/html` part of a complete message
    /// (attachments and embedded messages excluded); the pixel goes into the first such part
    /// only. Each rewritten part keeps its charset and transfer encoding; all other bytes of
    /// the message are kept as they are. A part whose charset cannot be written back is left
    /// untouched.
    pub fn track_message(&self, raw: &[u8], clicks: bool, opens: bool) -> Vec<u8> {
        if !clicks && !opens {
            return raw.to_vec();
        }
        let Some(message) = MessageParser::default().parse(raw) else {
            return raw.to_vec();
        };
        let eol = line_ending(raw);
        let mut edits: Vec<(usize, usize, Vec<u8>)> = Vec::new();
        let mut pixel_pending = opens;
        for part in &message.parts {
            let PartType::Html(html) = &part.body else {
                continue;
            };
            let attachment = part
                .content_disposition()
                .is_some_and(|d| d.ctype().eq_ignore_ascii_case("attachment"));
            if attachment || part.is_encoding_problem {
                continue;
            }
            let charset = part.content_type().and_then(|c| c.attribute("charset"));
            let Some(charset) = OutputCharset::of(charset) else {
                continue;
            };
            let mut html: Cow<'_, str> = Cow::Borrowed(html.as_ref());
            if clicks && let Cow::Owned(rewritten) = self.rewrite_links(&html) {
                html = Cow::Owned(rewritten);
            }
            if pixel_pending {
                html = Cow::Owned(self.add_open_pixel(&html));
                pixel_pending = false;
            }
            if let Cow::Borrowed(_) = html {
                continue;
            }
            let (start, end) = (part.offset_body as usize, part.offset_end as usize);
            let Some(original) = raw.get(start..end) else {
                continue;
            };
            let Some(bytes) = charset.encode(&html) else {
                continue;
            };
            let body = match part.encoding {
                mail_parser::Encoding::QuotedPrintable => encode_quoted_printable(&bytes, eol),
                mail_parser::Encoding::Base64 => {
                    encode_base64(&bytes, eol, original.ends_with(b"\n"))
                }
                mail_parser::Encoding::None => bytes.into_owned(),
            };
            edits.push((start, end, body));
        }
        edits.sort_by_key(|e| e.0);
        let mut out =
            Vec::with_capacity(raw.len() + edits.iter().map(|e| e.2.len()).sum::<usize>());
        let mut copied = 0;
        for (start, end, body) in edits {
            if start < copied {
                continue;
            }
            out.extend_from_slice(&raw[copied..start]);
            out.extend_from_slice(&body);
            copied = end;
        }
        out.extend_from_slice(&raw[copied..]);
        out
    }

    fn click_url(&self, target: &str) -> String {
        let signed = signed::sign(
            self.secret,
            &json!({"act": "click", "url": target, "acc": self.account, "msg": self.message_id}),
        );
        format!("{}?{}", self.redirect, signed.query())
    }

    fn is_own_link(&self, target: &str) -> bool {
        Url::parse(target).is_ok_and(|u| {
            u.origin() == self.origin && self.own_paths.iter().any(|p| p == u.path())
        })
    }
}

/// The charset a rewritten part is written back in.
enum OutputCharset {
    Utf8,
    Other(&'static encoding_rs::Encoding),
}

impl OutputCharset {
    /// `None` for a charset we cannot write (unknown labels, UTF-16, `replacement`).
    fn of(label: Option<&str>) -> Option<Self> {
        let Some(label) = label else {
            return Some(OutputCharset::Utf8);
        };
        let encoding = encoding_rs::Encoding::for_label(label.trim().as_bytes())?;
        if encoding == encoding_rs::UTF_8 {
            return Some(OutputCharset::Utf8);
        }
        (encoding.output_encoding() == encoding).then_some(OutputCharset::Other(encoding))
    }

    /// Characters the charset lacks become numeric character references, which HTML reads
    /// back as the same characters.
    fn encode<'t>(&self, text: &'t str) -> Option<Cow<'t, [u8]>> {
        match self {
            OutputCharset::Utf8 => Some(Cow::Borrowed(text.as_bytes())),
            OutputCharset::Other(encoding) => {
                let (bytes, used, _) = encoding.encode(text);
                (used == *encoding).then_some(bytes)
            }
        }
    }
}

fn line_ending(raw: &[u8]) -> &'static str {
    match raw.iter().position(|&b| b == b'\n') {
        Some(i) if i > 0 && raw[i - 1] == b'\r' => "\r\n",
        Some(_) => "\n",
        None => "\r\n",
    }
}

/// Quoted-printable (RFC 2045 §6.7) with lines of at most 76 characters; line breaks in the
/// text become hard breaks.
fn encode_quoted_printable(bytes: &[u8], eol: &str) -> Vec<u8> {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    let mut out = Vec::with_capacity(bytes.len() + bytes.len() / 8 + 16);
    let mut line = 0;
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        let crlf = b == b'\r' && bytes.get(i + 1) == Some(&b'\n');
        if b == b'\n' || crlf {
            out.extend_from_slice(eol.as_bytes());
            line = 0;
            i += if crlf { 2 } else { 1 };
            continue;
        }
        let before_break = match bytes.get(i + 1) {
            None | Some(b'\n') => true,
            Some(b'\r') => bytes.get(i + 2) == Some(&b'\n'),
            Some(_) => false,
        };
        let literal = match b {
            b' ' | b'\t' => !before_break,
            33..=60 | 62..=126 => true,
            _ => false,
        };
        let width = if literal { 1 } else { 3 };
        // 75 leaves room for the `=` of a soft break.
        if line + width > 75 {
            out.push(b'=');
            out.extend_from_slice(eol.as_bytes());
            line = 0;
        }
        if literal {
            out.push(b);
        } else {
            out.extend_from_slice(&[b'=', HEX[(b >> 4) as usize], HEX[(b & 15) as usize]]);
        }
        line += width;
        i += 1;
    }
    out
}

/// base64 in lines of 76 characters.
fn encode_base64(bytes: &[u8], eol: &str, trailing_break: bool) -> Vec<u8> {
    let encoded = base64::engine::general_purpose::STANDARD.encode(bytes);
    let mut out = Vec::with_capacity(encoded.len() + encoded.len() / 76 * eol.len() + 2);
    for (n, chunk) in encoded.as_bytes().chunks(76).enumerate() {
        if n > 0 {
            out.extend_from_slice(eol.as_bytes());
        }
        out.extend_from_slice(chunk);
    }
    if trailing_break {
        out.extend_from_slice(eol.as_bytes());
    }
    out
}

fn push_attribute_escaped(out: &mut String, text: &str) {
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            c => out.push(c),
        }
    }
}

/// A verified `/redirect` link.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Click {
    /// `acc` of the blob; not checked to exist.
    pub account: Option<String>,
    pub message_id: Option<String>,
    pub url: String,
}

/// A verified `/open.gif` link.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Open {
    pub account: Option<String>,
    pub message_id: Option<String>,
}

/// Checks a `/redirect` query: [`Error::SignatureValidation`] for a missing or wrong
/// signature, [`Error::InvalidQuery`] when the blob is not a click with a URL.
pub fn verify_click(secret: &[u8], data: &str, sig: &str) -> Result<Click> {
    let blob = verify_act(secret, data, sig, "click")?;
    let url = blob
        .get("url")
        .and_then(Value::as_str)
        .filter(|u| !u.is_empty())
        .ok_or(Error::InvalidQuery)?;
    Ok(Click {
        account: text_field(&blob, "acc"),
        message_id: text_field(&blob, "msg"),
        url: url.to_string(),
    })
}

/// Checks an `/open.gif` query, with the errors of [`verify_click`].
pub fn verify_open(secret: &[u8], data: &str, sig: &str) -> Result<Open> {
    let blob = verify_act(secret, data, sig, "open")?;
    Ok(Open {
        account: text_field(&blob, "acc"),
        message_id: text_field(&blob, "msg"),
    })
}

pub(crate) fn verify_act(secret: &[u8], data: &str, sig: &str, act: &str) -> Result<Value> {
    let blob = signed::verify(secret, data, sig).map_err(|e| match e {
        SignedError::Signature => Error::SignatureValidation,
        SignedError::NotJson => Error::InvalidQuery,
    })?;
    if blob.get("act").and_then(Value::as_str) != Some(act) {
        return Err(Error::InvalidQuery);
    }
    Ok(blob)
}

pub(crate) fn text_field(blob: &Value, key: &str) -> Option<String> {
    blob.get(key).and_then(Value::as_str).map(str::to_string)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef";
    const MSG: &str = "<test@example.com>";
    // Blobs and signatures computed with Python's `json`, `hmac` and `base64` modules.
    const CLICK_QUERY: &str = "data=eyJhY3QiOiJjbGljayIsInVybCI6Imh0dHBzOi8vZXhhbXBsZS5jb20vP2E9MSZiPTIiLCJhY2MiOiJleGFtcGxlIiwibXNnIjoiPHRlc3RAZXhhbXBsZS5jb20-In0&sig=Mtr8eQDqtHS_Ew4vRwk2yuOPo2PGAlm6BAIJ-G3Idxo";
    const OPEN_QUERY: &str = "data=eyJhY3QiOiJvcGVuIiwiYWNjIjoiZXhhbXBsZSIsIm1zZyI6Ijx0ZXN0QGV4YW1wbGUuY29tPiJ9&sig=fUzm4AkA4EXknFGRyFSweuzATmBNSdNRtFt1hJ3NUCY";

    fn base() -> Url {
        Url::parse("https://ee.example.com").unwrap()
    }

    fn tracker(base: &Url) -> Tracker<'_> {
        Tracker::new(SECRET, base, "example", MSG).unwrap()
    }

    fn escaped(query: &str) -> String {
        query.replace('&', "&amp;")
    }

    #[test]
    fn gif_is_the_documented_image() {
        let expected = base64::engine::general_purpose::STANDARD
            .decode("R0lGODlhAQABAIAAAAAAAP///yH5BAEAAAAALAAAAAABAAEAAAIBRAA7")
            .unwrap();
        assert_eq!(OPEN_GIF.to_vec(), expected);
    }

    #[test]
    fn links_are_rewritten_with_exact_blobs() {
        let base = base();
        let html = r#"<p><a class="btn" href="https://example.com/?a=1&amp;b=2">Go</a></p>"#;
        assert_eq!(
            tracker(&base).rewrite_links(html),
            format!(
                r#"<p><a class="btn" href="https://ee.example.com/redirect?{}">Go</a></p>"#,
                escaped(CLICK_QUERY)
            )
        );
    }

    #[test]
    fn quoting_styles_and_case() {
        let base = base();
        let t = tracker(&base);
        let target = "https://example.com/?a=1&b=2";
        let new = format!("https://ee.example.com/redirect?{}", escaped(CLICK_QUERY));
        for (input, expected) in [
            (
                format!("<A HREF='{target}'>x</A>"),
                format!("<A HREF='{new}'>x</A>"),
            ),
            (
                "<a\nhref = https://example.com/?a=1&amp;b=2>x</a>".to_string(),
                format!("<a\nhref = {new}>x</a>"),
            ),
            (
                "<a href=\"https://example.com/?a=1&#38;b=2\">".to_string(),
                format!("<a href=\"{new}\">"),
            ),
        ] {
            assert_eq!(t.rewrite_links(&input), expected, "{input}");
        }
    }

    #[test]
    fn non_http_and_own_links_stay() {
        let base = base();
        let t = tracker(&base);
        for html in [
            r#"<a href="mailto:a@example.com">m</a>"#,
            r##"<a href="#top">t</a>"##,
            r#"<a name="x">n</a>"#,
            r#"<a data-href="https://example.com/">d</a>"#,
            r#"<link href="https://example.com/style.css">"#,
            r#"<abbr href="https://example.com/">"#,
            r#"<a href="https://ee.example.com/redirect?data=x&amp;sig=y">r</a>"#,
            r#"<a href="https://EE.example.com:443/unsubscribe?data=x">u</a>"#,
        ] {
            assert!(
                matches!(t.rewrite_links(html), Cow::Borrowed(h) if h == html),
                "{html}"
            );
        }
        let other_origin = r#"<a href="https://other.example.com/redirect">r</a>"#;
        assert_ne!(t.rewrite_links(other_origin), other_origin);
    }

    #[test]
    fn entities_in_targets_are_decoded_before_signing() {
        let base = base();
        let t = tracker(&base);
        let out = t.rewrite_links(r#"<a href="https://example.com/caf&eacute;?q=&quot;x&quot;">"#);
        let query = out
            .split("redirect?")
            .nth(1)
            .unwrap()
            .trim_end_matches("\">")
            .replace("&amp;", "&");
        let (data, sig) = query.split_once("&sig=").unwrap();
        let click = verify_click(SECRET, data.trim_start_matches("data="), sig).unwrap();
        assert_eq!(click.url, "https://example.com/café?q=\"x\"");
        assert_eq!(click.account.as_deref(), Some("example"));
        assert_eq!(click.message_id.as_deref(), Some(MSG));
    }

    #[test]
    fn link_paths_resolve_against_the_base() {
        let base = Url::parse("https://ee.example.com/ee/").unwrap();
        let t = tracker(&base);
        let out = t.rewrite_links(r#"<a href="http://x.example/">"#);
        assert!(
            out.starts_with(r#"<a href="https://ee.example.com/ee/redirect?data="#),
            "{out}"
        );
        let own = r#"<a href="https://ee.example.com/ee/redirect?data=x">"#;
        assert_eq!(t.rewrite_links(own), own);
        assert!(Tracker::new(SECRET, &Url::parse("mailto:x@y").unwrap(), "a", MSG).is_err());
    }

    #[test]
    fn open_pixel_goes_before_body_close() {
        let base = base();
        let pixel = format!(
            r#"<img src="https://ee.example.com/open.gif?{OPEN_QUERY}" style="border: 0px; width:1px; height: 1px;" tabindex="-1" width="1" height="1" alt="">"#
        );
        let t = tracker(&base);
        assert_eq!(
            t.add_open_pixel("<html><body><p>x</p></BODY></html>"),
            format!("<html><body><p>x</p>{pixel}</BODY></html>")
        );
        assert_eq!(t.add_open_pixel("<p>x</p>"), format!("<p>x</p>{pixel}"));
    }

    #[test]
    fn verification_distinguishes_signature_from_query() {
        let (data, sig) = OPEN_QUERY
            .trim_start_matches("data=")
            .split_once("&sig=")
            .unwrap();
        assert_eq!(
            verify_open(SECRET, data, sig),
            Ok(Open {
                account: Some("example".into()),
                message_id: Some(MSG.into())
            })
        );
        assert_eq!(
            verify_click(SECRET, data, sig),
            Err(Error::InvalidQuery),
            "act is open"
        );
        let mut bad = sig.to_string();
        bad.replace_range(..1, "g");
        assert_eq!(
            verify_open(SECRET, data, &bad),
            Err(Error::SignatureValidation)
        );
        assert_eq!(
            verify_open(SECRET, data, ""),
            Err(Error::SignatureValidation)
        );
        let no_url = signed::sign(SECRET, &json!({"act": "click", "acc": "a"}));
        assert_eq!(
            verify_click(SECRET, &no_url.data, &no_url.sig),
            Err(Error::InvalidQuery)
        );
        let (cdata, csig) = CLICK_QUERY
            .trim_start_matches("data=")
            .split_once("&sig=")
            .unwrap();
        assert_eq!(
            verify_click(SECRET, cdata, csig).unwrap().url,
            "https://example.com/?a=1&b=2"
        );
        assert_eq!(
            Error::SignatureValidation.to_string(),
            "Signature validation failed"
        );
        assert_eq!(Error::InvalidQuery.to_string(), "Invalid query");
    }

    const ALTERNATIVE: &str = "From: a@example.com\r\n\
        To: b@example.com\r\n\
        Subject: Hi\r\n\
        Content-Type: multipart/alternative; boundary=\"b1\"\r\n\
        \r\n\
        --b1\r\n\
        Content-Type: text/plain; charset=utf-8\r\n\
        Content-Transfer-Encoding: quoted-printable\r\n\
        \r\n\
        Visit https://example.com/?a=3D1&b=3D2 caf=C3=A9\r\n\
        --b1\r\n\
        Content-Type: text/html; charset=utf-8\r\n\
        Content-Transfer-Encoding: quoted-printable\r\n\
        \r\n\
        <html><body><p>Caf=C3=A9 <a href=3D\"https://example.com/?a=3D1&amp;b=3D2\">=\r\n\
        link</a></p></body></html>\r\n\
        --b1--\r\n";

    #[test]
    fn multipart_alternative_qp_html_is_rewritten_and_text_kept() {
        let base = base();
        let out = tracker(&base).track_message(ALTERNATIVE.as_bytes(), true, true);
        let out_text = String::from_utf8(out.clone()).unwrap();
        let split = ALTERNATIVE.find("--b1\r\nContent-Type: text/html").unwrap();
        assert_eq!(
            &out_text[..split],
            &ALTERNATIVE[..split],
            "headers and the text part are byte-identical"
        );
        assert!(out_text.ends_with("\r\n--b1--\r\n"));
        let parsed = MessageParser::default().parse(&out).unwrap();
        let html = parsed.body_html(0).unwrap();
        assert_eq!(
            html,
            format!(
                "<html><body><p>Café <a href=\"https://ee.example.com/redirect?{}\">link</a></p>\
                 <img src=\"https://ee.example.com/open.gif?{OPEN_QUERY}\" style=\"border: 0px; width:1px; height: 1px;\" tabindex=\"-1\" width=\"1\" height=\"1\" alt=\"\"></body></html>",
                escaped(CLICK_QUERY)
            )
        );
        assert_eq!(
            parsed.body_text(0).unwrap(),
            "Visit https://example.com/?a=1&b=2 café"
        );
        for line in out_text.split("\r\n") {
            assert!(line.len() <= 76, "QP line too long: {line}");
        }
    }

    #[test]
    fn base64_and_latin1_parts_keep_their_encodings() {
        let html = "<p>\u{e9}t\u{e9} <a href=\"http://x.example/\">x</a> \u{2603}</p>";
        let (latin1, _, _) = encoding_rs::WINDOWS_1252.encode(html);
        let body = base64::engine::general_purpose::STANDARD.encode(&latin1);
        let raw = format!(
            "Content-Type: text/html; charset=iso-8859-1\r\nContent-Transfer-Encoding: base64\r\n\r\n{body}\r\n"
        );
        let base = base();
        let out = tracker(&base).track_message(raw.as_bytes(), true, false);
        let out_text = String::from_utf8(out.clone()).unwrap();
        assert!(out_text.starts_with(
            "Content-Type: text/html; charset=iso-8859-1\r\nContent-Transfer-Encoding: base64\r\n\r\n"
        ));
        assert!(out_text.ends_with("\r\n"));
        let encoded_body = out_text.split("\r\n\r\n").nth(1).unwrap();
        for line in encoded_body.split("\r\n") {
            assert!(line.len() <= 76);
        }
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(encoded_body.replace("\r\n", ""))
            .unwrap();
        let (decoded, _, _) = encoding_rs::WINDOWS_1252.decode(&bytes);
        assert!(
            decoded.starts_with("<p>\u{e9}t\u{e9} <a href=\"https://ee.example.com/redirect?data=")
        );
        assert!(
            decoded.ends_with("\">x</a> &#9731;</p>"),
            "a character Latin-1 lacks becomes a reference: {decoded}"
        );
    }

    #[test]
    fn plain_8bit_single_part_and_untracked_parts() {
        let raw = "Subject: x\nContent-Type: text/html\n\n<a href=\"http://x.example/\">x</a>\n";
        let base = base();
        let out =
            String::from_utf8(tracker(&base).track_message(raw.as_bytes(), true, false)).unwrap();
        assert!(out.starts_with(
            "Subject: x\nContent-Type: text/html\n\n<a href=\"https://ee.example.com/redirect?data="
        ));
        assert!(out.ends_with("\">x</a>\n"));

        let mixed = "Content-Type: multipart/mixed; boundary=\"m\"\r\n\r\n\
            --m\r\nContent-Type: text/html\r\n\r\n<p>a</p>\r\n\
            --m\r\nContent-Type: text/html\r\nContent-Disposition: attachment; filename=a.html\r\n\r\n<a href=\"http://x.example/\">x</a>\r\n\
            --m\r\nContent-Type: message/rfc822\r\n\r\nContent-Type: text/html\r\n\r\n<a href=\"http://y.example/\">y</a>\r\n\
            --m--\r\n";
        let out =
            String::from_utf8(tracker(&base).track_message(mixed.as_bytes(), true, true)).unwrap();
        assert_eq!(out.matches("open.gif").count(), 1);
        assert!(
            out.contains("<p>a</p><img src="),
            "pixel in the first html part"
        );
        assert!(
            out.contains("<a href=\"http://x.example/\">x</a>"),
            "attachment untouched"
        );
        assert!(
            out.contains("<a href=\"http://y.example/\">y</a>"),
            "embedded message untouched"
        );
        assert_eq!(
            tracker(&base).track_message(mixed.as_bytes(), false, false),
            mixed.as_bytes()
        );
    }

    #[test]
    fn quoted_printable_encoder() {
        assert_eq!(
            encode_quoted_printable(b"a=b \t\r\nend ", "\r\n"),
            b"a=3Db =09\r\nend=20"
        );
        assert_eq!(
            encode_quoted_printable("é\n".as_bytes(), "\r\n"),
            b"=C3=A9\r\n"
        );
        let long = "x".repeat(80);
        assert_eq!(
            encode_quoted_printable(long.as_bytes(), "\r\n"),
            format!("{}=\r\n{}", "x".repeat(75), "x".repeat(5)).into_bytes()
        );
        let eq = "=".repeat(30);
        let out = String::from_utf8(encode_quoted_printable(eq.as_bytes(), "\n")).unwrap();
        assert_eq!(out, format!("{}=\n{}", "=3D".repeat(25), "=3D".repeat(5)));
    }

    proptest::proptest! {
        #[test]
        fn quoted_printable_round_trips(text in "[ -~\\t\\né\u{2603}]{0,300}") {
            let encoded = encode_quoted_printable(text.as_bytes(), "\r\n");
            let raw = [b"Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n".as_slice(), &encoded].concat();
            let parsed = MessageParser::default().parse(&raw).unwrap();
            let body = parsed.body_text(0).map(|b| b.into_owned()).unwrap_or_default();
            proptest::prop_assert_eq!(body, text.replace('\n', "\r\n"));
            for line in String::from_utf8(encoded).unwrap().split("\r\n") {
                proptest::prop_assert!(line.len() <= 76);
            }
        }

        #[test]
        fn rewriting_never_panics(html in "\\PC{0,200}") {
            let base = base();
            let t = tracker(&base);
            let _ = t.rewrite_links(&html);
            let _ = t.track_message(html.as_bytes(), true, true);
        }
    }
}
