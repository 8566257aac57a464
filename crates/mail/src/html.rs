//! Web-safe message HTML (`webSafeHtml`): the message's HTML sanitised by ammonia (scripts,
//! event handlers and unknown schemes removed), with `cid:` images replaced by `data:` URLs of
//! the parts they name, and plain text rendered as HTML when a message has no HTML part.

use std::borrow::Cow;

use base64::Engine as _;

/// An inline part a `cid:` reference can point at.
pub struct InlineImage<'a> {
    /// The Content-ID without angle brackets.
    pub content_id: &'a str,
    pub content_type: &'a str,
    pub content: &'a [u8],
}

/// Replaces `cid:` references with `data:` URLs of the matching parts.
fn inline_images(html: &str, images: &[InlineImage<'_>]) -> String {
    let mut out = html.to_string();
    for image in images {
        let data = format!(
            "data:{};base64,{}",
            image.content_type,
            base64::engine::general_purpose::STANDARD.encode(image.content)
        );
        for quote in ['"', '\''] {
            out = out.replace(
                &format!("{quote}cid:{}{quote}", image.content_id),
                &format!("{quote}{data}{quote}"),
            );
        }
    }
    out
}

/// The message HTML, sanitised, with inline images embedded.
pub fn web_safe_html(html: &str, images: &[InlineImage<'_>]) -> String {
    let embedded = inline_images(html, images);
    ammonia::Builder::default()
        .add_url_schemes(&["data", "cid"])
        .attribute_filter(|element, attribute, value| {
            // `data:` is only let through as an image source, never as a link target.
            let is_data = value.trim_start().to_ascii_lowercase().starts_with("data:");
            if is_data && !(element == "img" && attribute == "src" && is_image_data(value)) {
                return None;
            }
            Some(Cow::Borrowed(value))
        })
        .clean(&embedded)
        .to_string()
}

fn is_image_data(value: &str) -> bool {
    value
        .trim_start()
        .to_ascii_lowercase()
        .starts_with("data:image/")
}

/// Plain text as HTML: escaped, paragraphs at blank lines, line breaks kept.
pub fn text_to_html(text: &str) -> String {
    let normalized = text.replace("\r\n", "\n");
    normalized
        .split("\n\n")
        .filter(|p| !p.trim().is_empty())
        .map(|p| {
            let escaped = html_escape::encode_text(p.trim_matches('\n')).replace('\n', "<br />");
            format!("<p>{escaped}</p>")
        })
        .collect::<Vec<_>>()
        .join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scripts_go_images_stay_inline() {
        let html = "<p onclick=\"x()\">Hi<script>alert(1)</script><img src=\"cid:logo@x\"><a href=\"javascript:y()\">l</a><a href=\"data:text/html,evil\">d</a></p>";
        let images = [InlineImage {
            content_id: "logo@x",
            content_type: "image/png",
            content: b"PNG",
        }];
        let safe = web_safe_html(html, &images);
        assert_eq!(
            safe,
            "<p>Hi<img src=\"data:image/png;base64,UE5H\"><a rel=\"noopener noreferrer\">l</a><a rel=\"noopener noreferrer\">d</a></p>"
        );
    }

    #[test]
    fn text_becomes_paragraphs() {
        assert_eq!(
            text_to_html("Hello <you>\r\nline two\r\n\r\nBye & thanks"),
            "<p>Hello &lt;you&gt;<br />line two</p>\n<p>Bye &amp; thanks</p>"
        );
    }
}
