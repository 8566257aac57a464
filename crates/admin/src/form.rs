//! A submitted admin form (`application/x-www-form-urlencoded`), parsed once by the guard
//! (which needs its CSRF field) and handed to the handler. Keeps repeated fields (checkbox
//! groups) that a map would lose.

#[derive(Debug, Clone, Default)]
pub struct FormData(Vec<(String, String)>);

impl FormData {
    pub fn parse(body: &[u8]) -> Self {
        Self(
            url::form_urlencoded::parse(body)
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect(),
        )
    }

    /// The first value of a field, trimmed; `None` when absent or blank.
    pub fn text(&self, name: &str) -> Option<String> {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.trim().to_string())
            .filter(|v| !v.is_empty())
    }

    /// The first value as given (passwords keep their spaces).
    pub fn raw(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .filter(|v| !v.is_empty())
    }

    /// Every non-blank value of a field, in order.
    pub fn all(&self, name: &str) -> Vec<String> {
        self.0
            .iter()
            .filter(|(k, v)| k == name && !v.trim().is_empty())
            .map(|(_, v)| v.trim().to_string())
            .collect()
    }

    /// Whether a checkbox was ticked.
    pub fn checked(&self, name: &str) -> bool {
        self.0.iter().any(|(k, v)| k == name && v != "false")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields() {
        let f = FormData::parse(b"a=+x+&s=api&s=smtp&s=&pw=+sp+ace&on=1&off=false&e=");
        assert_eq!(f.text("a").as_deref(), Some("x"));
        assert_eq!(f.all("s"), vec!["api", "smtp"]);
        assert_eq!(f.raw("pw"), Some(" sp ace"));
        assert!(f.checked("on"));
        assert!(!f.checked("off"));
        assert!(!f.checked("missing"));
        assert_eq!(f.text("e"), None);
    }
}
