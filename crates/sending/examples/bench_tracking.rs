//! Measures the per-request cost of the `/redirect` check and the cost of adding tracking to
//! a typical 20 KB HTML newsletter, as a string and as a complete MIME message.
//!
//! `cargo run --release -p emailengine-sending --example bench_tracking`

use std::hint::black_box;
use std::time::Instant;

use emailengine_sending::tracking::{Tracker, verify_click};
use mail_builder::MessageBuilder;
use url::Url;

const SECRET: &[u8] = b"4c1f0b1d2e3a4b5c6d7e8f9012345678";
const MESSAGE_ID: &str = "<0f3c2a1b-9d8e-4f7a-b6c5-d4e3f2a1b0c9@example.com>";

/// A newsletter: table layout, inline styles, 40 links (some with entities), about 20 KB.
fn newsletter() -> String {
    let mut html = String::from(
        "<!DOCTYPE html><html><head><meta charset=\"utf-8\"><title>News</title>\
         <style>body{margin:0;padding:0}.btn{color:#fff;background:#0070f3}</style></head>\
         <body style=\"margin:0;padding:0;background:#f4f4f4\"><table role=\"presentation\" \
         width=\"100%\" cellspacing=\"0\" cellpadding=\"0\" border=\"0\">",
    );
    let mut n = 0;
    while html.len() < 19_500 {
        html.push_str(&format!(
            "<tr><td style=\"padding:16px 24px;font-family:Helvetica,Arial,sans-serif;font-size:15px;\
             line-height:22px;color:#333333\"><h2 style=\"margin:0 0 8px 0\">Story number {n}</h2>\
             <p style=\"margin:0 0 12px 0\">Lorem ipsum dolor sit amet, consectetur adipiscing elit, \
             sed do eiusmod tempor incididunt ut labore et dolore magna aliqua. Ut enim ad minim \
             veniam, quis nostrud exercitation ullamco laboris.</p>\
             <a class=\"btn\" href=\"https://www.example.com/articles/{n}?utm_source=newsletter&amp;utm_medium=email&amp;utm_campaign=weekly\" \
             style=\"display:inline-block;padding:8px 16px;border-radius:4px\">Read more</a> \
             <a href=\"mailto:editor@example.com\">Reply</a></td></tr>"
        ));
        n += 1;
    }
    html.push_str(
        "<tr><td><a href=\"https://www.example.com/preferences\">Preferences</a></td></tr>\
         </table></body></html>",
    );
    html
}

fn median_ns(samples: &mut [f64]) -> f64 {
    samples.sort_by(f64::total_cmp);
    samples[samples.len() / 2]
}

/// Runs `f` in `rounds` timed batches of `batch` calls and returns the median ns per call.
fn measure(rounds: usize, batch: usize, mut f: impl FnMut()) -> f64 {
    for _ in 0..batch {
        f();
    }
    let mut samples: Vec<f64> = (0..rounds)
        .map(|_| {
            let start = Instant::now();
            for _ in 0..batch {
                f();
            }
            start.elapsed().as_nanos() as f64 / batch as f64
        })
        .collect();
    median_ns(&mut samples)
}

fn main() {
    let base = Url::parse("https://ee.example.com/").expect("constant URL");
    let tracker = Tracker::new(SECRET, &base, "example", MESSAGE_ID).expect("valid base");
    let html = newsletter();
    let links = html.matches("href=\"https://").count();

    let rewritten = tracker.rewrite_links(&html).into_owned();
    let query = rewritten
        .split("redirect?")
        .nth(1)
        .and_then(|q| q.split('"').next())
        .expect("a rewritten link")
        .replace("&amp;", "&");
    let (data, sig) = query
        .trim_start_matches("data=")
        .split_once("&sig=")
        .expect("data and sig");

    let verify = measure(51, 2_000, || {
        black_box(verify_click(SECRET, black_box(data), black_box(sig)).is_ok());
    });
    let rewrite = measure(31, 50, || {
        black_box(tracker.rewrite_links(black_box(&html)).len());
    });
    let both = measure(31, 50, || {
        let linked = tracker.rewrite_links(black_box(&html));
        black_box(tracker.add_open_pixel(&linked).len());
    });

    let message = MessageBuilder::new()
        .from(("Sender", "sender@example.com"))
        .to("rcpt@example.com")
        .subject("Weekly news")
        .message_id(MESSAGE_ID.trim_matches(['<', '>']))
        .text_body("Read the news at https://www.example.com/\n".repeat(40))
        .html_body(html.as_str())
        .write_to_vec()
        .expect("writing to a Vec");
    let tracked = tracker.track_message(&message, true, true);
    let tracked_html = mail_parser::MessageParser::default()
        .parse(&tracked)
        .and_then(|m| m.body_html(0).map(|h| h.into_owned()))
        .unwrap_or_default();
    let tracked_links = tracked_html
        .matches("href=\"https://ee.example.com/redirect?")
        .count();
    let pixels = tracked_html.matches("open.gif?data=").count();
    let mime = measure(31, 50, || {
        black_box(tracker.track_message(black_box(&message), true, true).len());
    });

    println!("HTML size: {} bytes, {links} http links", html.len());
    println!(
        "MIME size: {} bytes (multipart/alternative), after tracking {} bytes with {tracked_links} \
         tracked links and {pixels} pixel",
        message.len(),
        tracked.len()
    );
    println!(
        "verify /redirect blob (data {} chars):  {:>9.2} µs median",
        data.len(),
        verify / 1e3
    );
    println!(
        "rewrite links in 20 KB HTML:            {:>9.2} µs median",
        rewrite / 1e3
    );
    println!(
        "rewrite links + open pixel:             {:>9.2} µs median",
        both / 1e3
    );
    println!(
        "track complete MIME message:            {:>9.2} µs median",
        mime / 1e3
    );
}
