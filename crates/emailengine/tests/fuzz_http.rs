//! Malformed input over HTTP: random tokens, query strings and bodies must never produce a 5xx,
//! and every error must be EmailEngine's JSON error shape. Bounded and seeded, so it is
//! repeatable; the parsers themselves are property-tested in the core crate.

mod common;

use common::*;
use reqwest::Method;

/// A small deterministic generator (xorshift), so failures can be replayed.
struct Gen(u64);

impl Gen {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn text(&mut self, max: usize) -> String {
        const PIECES: &[&str] = &[
            "a",
            "f",
            "0",
            "9",
            "%",
            "%2",
            "%zz",
            "=",
            "&",
            "{",
            "}",
            "[",
            "]",
            "\"",
            ":",
            ",",
            "null",
            "true",
            "-1",
            "1e309",
            "é",
            "\u{0}",
            "\\",
            "/",
            "..",
            " ",
            "*",
            "api",
            "account",
            "description",
            "scopes",
            "permissions",
            "restrictions",
            "rateLimit",
            "webhooks",
            "http://",
            "$wd01$",
            "ffffffffffffffff",
        ];
        let n = self.below(max + 1);
        (0..n).map(|_| PIECES[self.below(PIECES.len())]).collect()
    }
}

fn is_error_shape(status: u16, body: &serde_json::Value) -> bool {
    body["statusCode"] == status && body["error"].is_string() && body["message"].is_string()
}

#[tokio::test]
async fn random_input_never_causes_a_server_error() {
    let env = Env::new("fuzz");
    let admin = env.issue(&[]);
    let server = env.start(&["--api.maxBodySize=64k"]).await;
    let mut g = Gen(0x9e37_79b9_7f4a_7c15);
    let routes = [
        (Method::GET, "/v1/stats"),
        (Method::GET, "/v1/settings"),
        (Method::POST, "/v1/settings"),
        (Method::GET, "/v1/tokens"),
        (Method::POST, "/v1/tokens"),
        (Method::GET, "/v1/tokens/{x}"),
        (Method::DELETE, "/v1/tokens/{x}"),
        (Method::GET, "/v1/tokens/account/{x}"),
        (Method::GET, "/metrics"),
    ];
    for i in 0..600 {
        let (method, template) = &routes[g.below(routes.len())];
        let segment: String = g
            .text(4)
            .chars()
            .filter(|c| c.is_ascii_alphanumeric())
            .collect();
        let path = template.replace("{x}", if segment.is_empty() { "x" } else { &segment });
        let query = g.text(6).replace([' ', '#'], "");
        let url = format!("{}?{}", server.url(&path), query);
        let mut req = server.http.request(method.clone(), &url);
        req = match g.below(4) {
            0 => req.bearer_auth(&admin),
            1 => req.bearer_auth(g.text(5)),
            2 => req.header("Authorization", g.text(3)),
            _ => req,
        };
        if *method == Method::POST {
            let body = if g.below(2) == 0 {
                format!(
                    "{{\"description\":\"{}\",\"{}\":{}}}",
                    g.text(3),
                    g.text(2),
                    g.text(3)
                )
            } else {
                g.text(12)
            };
            req = req.header("content-type", "application/json").body(body);
        }
        let Ok(resp) = req.send().await else {
            // reqwest refuses some generated header values before sending; nothing reached us.
            continue;
        };
        let (status, body) = into_json(resp).await;
        assert!(
            status < 500,
            "request {i} {method} {url} -> {status} {body}"
        );
        if status >= 400 {
            assert!(
                is_error_shape(status, &body),
                "request {i} {method} {url} -> {status} {body}"
            );
        }
    }
    // The server is still healthy afterwards.
    assert_eq!(server.get("/health", None).await.0, 200);
}
