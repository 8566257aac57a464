//! Command-line arguments the way EmailEngine reads them (minimist): `--key=value`,
//! `--key value`, `--flag`, `-d value`, repeatable options, and positional words that pick the
//! command. Dotted options (`--dbs.redis=…`) also feed the configuration tree.

/// Options that never take a value.
const BOOLEAN: &[&str] = &["hash", "help", "version", "log.raw"];

/// Short flags and the long option each stands for.
const ALIASES: &[(&str, &str)] = &[
    ("d", "description"),
    ("s", "scope"),
    ("a", "account"),
    ("t", "token"),
    ("p", "password"),
    ("r", "hash"),
    ("h", "help"),
    ("v", "version"),
];

#[derive(Debug, Default, Clone, PartialEq)]
pub struct Args {
    pub positional: Vec<String>,
    /// `(name, value)` in the order given; flags without a value are `"true"`.
    pub options: Vec<(String, String)>,
}

impl Args {
    pub fn parse<I: IntoIterator<Item = String>>(args: I) -> Self {
        let mut out = Args::default();
        let mut iter = args.into_iter().peekable();
        let mut only_positional = false;
        while let Some(arg) = iter.next() {
            if only_positional || arg == "-" || !arg.starts_with('-') {
                out.positional.push(arg);
                continue;
            }
            if arg == "--" {
                only_positional = true;
                continue;
            }
            let body = arg.trim_start_matches('-');
            let (name, inline) = match body.split_once('=') {
                Some((n, v)) => (n.to_string(), Some(v.to_string())),
                None => (body.to_string(), None),
            };
            let name = if arg.starts_with("--") {
                name
            } else {
                ALIASES
                    .iter()
                    .find(|(short, _)| *short == name)
                    .map_or(name, |(_, long)| long.to_string())
            };
            if let Some(value) = inline {
                out.options.push((name, value));
                continue;
            }
            if let Some(negated) = name.strip_prefix("no-") {
                out.options.push((negated.to_string(), "false".into()));
                continue;
            }
            let takes_value = !BOOLEAN.contains(&name.as_str())
                && iter
                    .peek()
                    .is_some_and(|next| !next.starts_with('-') || next == "-");
            let value = if takes_value {
                iter.next().unwrap_or_default()
            } else {
                "true".to_string()
            };
            out.options.push((name, value));
        }
        out
    }

    /// The last value given for an option.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.options
            .iter()
            .rev()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// Every value given for a repeatable option, in order.
    pub fn all(&self, name: &str) -> Vec<&str> {
        self.options
            .iter()
            .filter(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .collect()
    }

    pub fn flag(&self, name: &str) -> bool {
        self.get(name)
            .is_some_and(|v| !matches!(v, "false" | "0" | "no" | "null" | "undefined" | ""))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Args {
        Args::parse(s.split_whitespace().map(str::to_string))
    }

    #[test]
    fn emailengine_style_arguments() {
        let a =
            parse("tokens issue -d my-token -s api --scope=metrics --dbs.redis=redis://x/1 -a acc");
        assert_eq!(a.positional, ["tokens", "issue"]);
        assert_eq!(a.get("description"), Some("my-token"));
        assert_eq!(a.all("scope"), ["api", "metrics"]);
        assert_eq!(a.get("dbs.redis"), Some("redis://x/1"));
        assert_eq!(a.get("account"), Some("acc"));
    }

    #[test]
    fn booleans_do_not_swallow_words() {
        let a = parse("password -r -p secret123 --hash extra");
        assert!(a.flag("hash"));
        assert_eq!(a.get("password"), Some("secret123"));
        assert_eq!(a.positional, ["password", "extra"]);
    }

    #[test]
    fn flags_and_negation() {
        let a = parse("--log.raw --no-api.proxy --api.port 3001 -- --not-an-option");
        assert!(a.flag("log.raw"));
        assert!(!a.flag("api.proxy"));
        assert_eq!(a.get("api.port"), Some("3001"));
        assert_eq!(a.positional, ["--not-an-option"]);
    }
}
