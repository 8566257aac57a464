//! Microsoft Autodiscover (the "POX" XML protocol Outlook uses): the request body for one
//! address, and the IMAP and SMTP `Protocol` entries of the answer.

use crate::xml;
use crate::{Address, Server};

/// The request document for `address`.
pub fn request(address: &Address) -> String {
    format!(
        "<?xml version=\"1.0\" encoding=\"utf-8\"?>\
         <Autodiscover xmlns=\"http://schemas.microsoft.com/exchange/autodiscover/outlook/requestschema/2006\">\
         <Request><EMailAddress>{}</EMailAddress>\
         <AcceptableResponseSchema>http://schemas.microsoft.com/exchange/autodiscover/outlook/responseschema/2006a</AcceptableResponseSchema>\
         </Request></Autodiscover>",
        quick_xml::escape::escape(address.email.as_str())
    )
}

fn protocol(entry: &xml::Element, address: &Address) -> Option<Server> {
    let host = entry.child_text("Server")?.to_string();
    let port: u16 = entry.child_text("Port")?.parse().ok()?;
    let user = entry
        .child_text("LoginName")
        .map(str::to_string)
        .unwrap_or_else(|| address.email.clone());
    // `Encryption` names the mode when present (TLS = STARTTLS, SSL = TLS from the start);
    // otherwise `SSL on` means TLS, implicit on the ports that are implicit by convention.
    let secure = match entry.child_text("Encryption") {
        Some(e) if e.eq_ignore_ascii_case("ssl") => true,
        Some(_) => false,
        None => {
            entry
                .child_text("SSL")
                .is_none_or(|s| s.eq_ignore_ascii_case("on"))
                && matches!(port, 993 | 465)
        }
    };
    Some(Server::new(host, port, secure, user))
}

/// The IMAP and SMTP servers of an answer; `None` unless it names an IMAP server.
pub fn parse(text: &str, address: &Address) -> Option<(Server, Option<Server>)> {
    let root = xml::parse(text)?;
    let account = root.child("Response")?.child("Account")?;
    let of_type = |kind: &str| {
        account
            .children_named("Protocol")
            .filter(|p| {
                p.child_text("Type")
                    .is_some_and(|t| t.eq_ignore_ascii_case(kind))
            })
            .find_map(|p| protocol(p, address))
    };
    let imap = of_type("IMAP")?;
    Some((imap, of_type("SMTP")))
}

#[cfg(test)]
mod tests {
    use super::*;

    const ANSWER: &str = r#"<?xml version="1.0" encoding="utf-8"?>
<Autodiscover xmlns="http://schemas.microsoft.com/exchange/autodiscover/responseschema/2006">
  <Response xmlns="http://schemas.microsoft.com/exchange/autodiscover/outlook/responseschema/2006a">
    <Account>
      <AccountType>email</AccountType>
      <Action>settings</Action>
      <Protocol>
        <Type>IMAP</Type><Server>mail.example.net</Server><Port>993</Port>
        <LoginName>bob</LoginName><SSL>on</SSL>
      </Protocol>
      <Protocol>
        <Type>SMTP</Type><Server>mail.example.net</Server><Port>587</Port>
        <SSL>on</SSL><Encryption>TLS</Encryption>
      </Protocol>
    </Account>
  </Response>
</Autodiscover>"#;

    #[test]
    fn reads_the_protocols() {
        let address = Address::parse("bob@example.net").unwrap();
        let (imap, smtp) = parse(ANSWER, &address).unwrap();
        assert_eq!(
            imap,
            Server::new("mail.example.net".into(), 993, true, "bob".into())
        );
        assert_eq!(
            smtp,
            Some(Server::new(
                "mail.example.net".into(),
                587,
                false,
                "bob@example.net".into()
            ))
        );
    }

    #[test]
    fn the_request_escapes_the_address() {
        let address = Address::parse("a<b@example.net").unwrap();
        assert!(request(&address).contains("<EMailAddress>a&lt;b@example.net</EMailAddress>"));
    }

    #[test]
    fn a_redirect_or_error_answer_has_no_servers() {
        let address = Address::parse("bob@example.net").unwrap();
        let redirect = ANSWER.replace("<Type>IMAP</Type>", "<Type>EXCH</Type>");
        assert_eq!(parse(&redirect, &address), None);
    }
}
