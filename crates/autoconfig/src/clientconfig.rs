//! Thunderbird's autoconfig format (`config-v1.1.xml`), served by mail domains themselves and by
//! Mozilla's ISPDB: the first IMAP incoming server and the first SMTP outgoing server, with the
//! `%EMAILADDRESS%`-style placeholders filled in for one address.

use crate::xml::{self, Element};
use crate::{Address, Server};

fn fill(template: &str, address: &Address) -> String {
    template
        .replace("%EMAILADDRESS%", &address.email)
        .replace("%EMAILLOCALPART%", &address.local)
        .replace("%EMAILDOMAIN%", &address.domain)
}

fn server(element: &Element, address: &Address) -> Option<Server> {
    let host = fill(element.child_text("hostname")?, address);
    let port = element.child_text("port")?.parse().ok()?;
    // SSL is TLS from the first byte; STARTTLS and plain start in clear text.
    let secure = element
        .child_text("socketType")
        .is_some_and(|s| s.eq_ignore_ascii_case("SSL") || s.eq_ignore_ascii_case("TLS"));
    let user = element
        .child_text("username")
        .map(|u| fill(u, address))
        .unwrap_or_else(|| address.email.clone());
    Some(Server::new(host, port, secure, user))
}

/// The IMAP and SMTP servers of a config file; `None` unless it names an IMAP server.
pub fn parse(text: &str, address: &Address) -> Option<(Server, Option<Server>)> {
    let root = xml::parse(text)?;
    if !root.name.eq_ignore_ascii_case("clientConfig") {
        return None;
    }
    let provider = root.child("emailProvider")?;
    let of_type = |element: &str, kind: &str| {
        provider
            .children_named(element)
            .filter(|s| {
                s.attribute("type")
                    .is_some_and(|t| t.eq_ignore_ascii_case(kind))
            })
            .find_map(|s| server(s, address))
    };
    let imap = of_type("incomingServer", "imap")?;
    Some((imap, of_type("outgoingServer", "smtp")))
}

#[cfg(test)]
mod tests {
    use super::*;

    const CONFIG: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<clientConfig version="1.1">
  <emailProvider id="example.org">
    <domain>example.org</domain>
    <displayName>Example Mail</displayName>
    <incomingServer type="pop3">
      <hostname>pop.example.org</hostname><port>995</port><socketType>SSL</socketType>
      <username>%EMAILADDRESS%</username>
    </incomingServer>
    <incomingServer type="imap">
      <hostname>imap.%EMAILDOMAIN%</hostname>
      <port>993</port>
      <socketType>SSL</socketType>
      <username>%EMAILLOCALPART%</username>
      <authentication>password-cleartext</authentication>
    </incomingServer>
    <outgoingServer type="smtp">
      <hostname>smtp.example.org</hostname>
      <port>587</port>
      <socketType>STARTTLS</socketType>
      <username>%EMAILADDRESS%</username>
    </outgoingServer>
  </emailProvider>
</clientConfig>"#;

    #[test]
    fn reads_imap_and_smtp_with_placeholders() {
        let address = Address::parse("Ann@Example.org").unwrap();
        let (imap, smtp) = parse(CONFIG, &address).unwrap();
        assert_eq!(
            imap,
            Server::new("imap.example.org".into(), 993, true, "Ann".into())
        );
        assert_eq!(
            smtp,
            Some(Server::new(
                "smtp.example.org".into(),
                587,
                false,
                "Ann@example.org".into()
            ))
        );
    }

    #[test]
    fn without_imap_there_is_nothing() {
        let address = Address::parse("a@example.org").unwrap();
        let pop_only = CONFIG.replace("type=\"imap\"", "type=\"exchange\"");
        assert_eq!(parse(&pop_only, &address), None);
        assert_eq!(parse("<html><body>Not found</body></html>", &address), None);
        assert_eq!(parse("not xml at all", &address), None);
    }
}
