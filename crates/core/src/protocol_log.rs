//! Per-account protocol logs (spec §25.1): the lines an account's IMAP connection exchanges,
//! with every credential taken out before a line is kept. [`Redactor`] follows the
//! conversation, because an `AUTHENTICATE` exchange carries its secrets on later lines.

use serde_json::{Value, json};

/// What stands in for a hidden credential.
pub const HIDDEN: &str = "\"(* value hidden *)\"";

/// Longest line kept; the rest of a longer line (message literals) is cut.
pub const MAX_LINE: usize = 2048;

/// Lines kept per account unless the `logs.maxLogLines` setting says otherwise.
pub const DEFAULT_MAX_LINES: usize = 10_000;

/// Who sent a line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    Client,
    Server,
}

impl Source {
    /// EmailEngine's `src` value: `c` for what we send, `s` for what the server sends.
    pub fn as_str(self) -> &'static str {
        match self {
            Source::Client => "c",
            Source::Server => "s",
        }
    }
}

/// Follows one connection's lines and hides credentials: the password of `LOGIN`, the initial
/// response of `AUTHENTICATE`, every client line of an `AUTHENTICATE` exchange (PLAIN, LOGIN,
/// XOAUTH2 payloads) and the literal that carries a `LOGIN` argument.
#[derive(Debug, Default)]
pub struct Redactor {
    /// The tag of an `AUTHENTICATE` or literal-carrying `LOGIN` still waiting for its answer.
    secret_until: Option<String>,
}

impl Redactor {
    /// The line as it may be kept (without its line break).
    pub fn redact(&mut self, source: Source, line: &str) -> String {
        let line = line.trim_end_matches(['\r', '\n']);
        match source {
            Source::Server => {
                if let Some(tag) = &self.secret_until
                    && line.split(' ').next() == Some(tag.as_str())
                {
                    self.secret_until = None;
                }
                cut(line)
            }
            Source::Client if self.secret_until.is_some() => HIDDEN.to_string(),
            Source::Client => self.client(line),
        }
    }

    fn client(&mut self, line: &str) -> String {
        let mut words = line.splitn(3, ' ');
        let (Some(tag), Some(command)) = (words.next(), words.next()) else {
            return cut(line);
        };
        let rest = words.next().unwrap_or("");
        if command.eq_ignore_ascii_case("AUTHENTICATE") {
            self.secret_until = Some(tag.to_string());
            let mechanism = rest.split(' ').next().unwrap_or("");
            return if rest.trim() == mechanism {
                format!("{tag} {command} {mechanism}")
            } else {
                format!("{tag} {command} {mechanism} {HIDDEN}")
            };
        }
        if command.eq_ignore_ascii_case("LOGIN") {
            let (user, after) = first_argument(rest);
            if after.contains('{') || user.starts_with('{') {
                // A literal: its bytes follow on the next client lines.
                self.secret_until = Some(tag.to_string());
            }
            return if user.starts_with('{') {
                format!("{tag} {command} {HIDDEN}")
            } else {
                format!("{tag} {command} {user} {HIDDEN}")
            };
        }
        cut(line)
    }
}

/// The first IMAP argument of `text` (an atom or a quoted string) and what follows it.
fn first_argument(text: &str) -> (&str, &str) {
    if let Some(body) = text.strip_prefix('"') {
        let mut escaped = false;
        for (i, c) in body.char_indices() {
            match c {
                '\\' if !escaped => escaped = true,
                '"' if !escaped => return (&text[..i + 2], text[i + 2..].trim_start()),
                _ => escaped = false,
            }
        }
        return (text, "");
    }
    match text.split_once(' ') {
        Some((a, b)) => (a, b),
        None => (text, ""),
    }
}

fn cut(line: &str) -> String {
    if line.len() <= MAX_LINE {
        return line.to_string();
    }
    let mut end = MAX_LINE;
    while !line.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &line[..end])
}

/// One stored log entry, as EmailEngine keeps them: `{level, t, cid, lo, msg, src}`.
pub fn entry(connection: &str, sequence: u64, at_ms: i64, source: Source, msg: &str) -> Value {
    json!({
        "level": 10,
        "t": at_ms,
        "cid": connection,
        "lo": sequence,
        "msg": msg,
        "src": source.as_str(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use Source::{Client, Server};

    fn run(lines: &[(Source, &str)]) -> Vec<String> {
        let mut r = Redactor::default();
        lines.iter().map(|(s, l)| r.redact(*s, l)).collect()
    }

    #[test]
    fn login_password_is_hidden() {
        assert_eq!(
            run(&[
                (Client, "A1 LOGIN ann s3cret\r\n"),
                (Client, "A2 LOGIN \"ann smith\" \"pa ss\\\"word\"\r\n"),
                (Server, "A2 OK Logged in"),
            ]),
            [
                "A1 LOGIN ann \"(* value hidden *)\"",
                "A2 LOGIN \"ann smith\" \"(* value hidden *)\""
            ]
            .iter()
            .map(|s| s.to_string())
            .chain(["A2 OK Logged in".to_string()])
            .collect::<Vec<_>>()
        );
    }

    #[test]
    fn login_literals_are_hidden_until_the_answer() {
        let out = run(&[
            (Client, "A1 LOGIN {3}"),
            (Server, "+ OK"),
            (Client, "ann {6}"),
            (Server, "+ OK"),
            (Client, "s3cret"),
            (Server, "A1 OK done"),
            (Client, "A2 SELECT INBOX"),
        ]);
        assert_eq!(out[0], format!("A1 LOGIN {HIDDEN}"));
        assert_eq!(out[2], HIDDEN);
        assert_eq!(out[4], HIDDEN);
        assert_eq!(out[6], "A2 SELECT INBOX");
    }

    #[test]
    fn authenticate_exchanges_are_hidden() {
        let plain = "AGFubgBzM2NyZXQ="; // \0ann\0s3cret
        let xoauth = "dXNlcj1hbm4BYXV0aD1CZWFyZXIgeWEyOS50b2tlbgEB";
        let out = run(&[
            (Client, &format!("A1 AUTHENTICATE PLAIN {plain}")),
            (Server, "A1 NO bad"),
            (Client, "A2 AUTHENTICATE LOGIN"),
            (Server, "+ VXNlcm5hbWU6"),
            (Client, "YW5u"),
            (Server, "+ UGFzc3dvcmQ6"),
            (Client, "czNjcmV0"),
            (Server, "A2 NO bad"),
            (Client, "A3 AUTHENTICATE XOAUTH2"),
            (Server, "+ "),
            (Client, xoauth),
            (Server, "A3 OK"),
            (Client, "A4 NOOP"),
        ]);
        let all = out.join("\n");
        for secret in [plain, "YW5u", "czNjcmV0", xoauth] {
            assert!(!all.contains(secret), "{secret} leaked: {all}");
        }
        assert_eq!(out[0], format!("A1 AUTHENTICATE PLAIN {HIDDEN}"));
        assert_eq!(out[2], "A2 AUTHENTICATE LOGIN");
        assert_eq!(out[8], "A3 AUTHENTICATE XOAUTH2");
        assert_eq!(out[12], "A4 NOOP");
    }

    #[test]
    fn long_lines_are_cut() {
        let long = "* 1 FETCH ".to_string() + &"é".repeat(3000);
        let kept = Redactor::default().redact(Server, &long);
        assert!(kept.len() <= MAX_LINE + "…".len());
        assert!(kept.ends_with('…'));
    }

    #[test]
    fn entries_have_emailengine_fields() {
        assert_eq!(
            entry("c1", 3, 1_700_000_000_000, Client, "A1 NOOP"),
            json!({"level": 10, "t": 1_700_000_000_000i64, "cid": "c1", "lo": 3, "msg": "A1 NOOP", "src": "c"})
        );
    }
}
