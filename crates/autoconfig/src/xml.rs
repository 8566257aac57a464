//! A small element tree built from an XML document with quick-xml, bounded in depth and size,
//! so the two discovery formats (Thunderbird autoconfig, Microsoft Autodiscover) read it by
//! element name instead of walking parser events.

use quick_xml::Reader;
use quick_xml::events::{BytesStart, Event};

const MAX_DEPTH: usize = 32;
const MAX_ELEMENTS: usize = 10_000;

#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Element {
    /// Local name, namespace prefix removed.
    pub name: String,
    pub attributes: Vec<(String, String)>,
    pub children: Vec<Element>,
    pub text: String,
}

impl Element {
    pub fn attribute(&self, name: &str) -> Option<&str> {
        self.attributes
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn children_named<'a, 'n>(
        &'a self,
        name: &'n str,
    ) -> impl Iterator<Item = &'a Element> + use<'a, 'n> {
        self.children
            .iter()
            .filter(move |c| c.name.eq_ignore_ascii_case(name))
    }

    pub fn child(&self, name: &str) -> Option<&Element> {
        self.children
            .iter()
            .find(|c| c.name.eq_ignore_ascii_case(name))
    }

    /// The trimmed text of a direct child, when it has some.
    pub fn child_text(&self, name: &str) -> Option<&str> {
        self.child(name)
            .map(|c| c.text.trim())
            .filter(|t| !t.is_empty())
    }
}

fn open(start: &BytesStart<'_>) -> Element {
    let local = start.local_name();
    let name: &str = local.as_ref();
    let attributes = start
        .attributes()
        .flatten()
        .filter_map(|a| {
            let key = a.key.local_name();
            let key: &str = key.as_ref();
            let value = a
                .normalized_value(quick_xml::XmlVersion::Implicit1_0)
                .ok()?;
            Some((key.to_string(), value.into_owned()))
        })
        .collect();
    Element {
        name: name.to_string(),
        attributes,
        ..Element::default()
    }
}

fn entity(name: &str) -> Option<char> {
    match name {
        "amp" => Some('&'),
        "lt" => Some('<'),
        "gt" => Some('>'),
        "quot" => Some('"'),
        "apos" => Some('\''),
        _ => None,
    }
}

/// Parses a document into its root element; `None` when it is not well-formed or too large.
pub fn parse(text: &str) -> Option<Element> {
    let mut reader = Reader::from_str(text);
    let mut stack: Vec<Element> = Vec::new();
    let mut count = 0usize;
    loop {
        match reader.read_event().ok()? {
            Event::Start(start) => {
                count += 1;
                if stack.len() >= MAX_DEPTH || count > MAX_ELEMENTS {
                    return None;
                }
                stack.push(open(&start));
            }
            Event::Empty(start) => {
                count += 1;
                if count > MAX_ELEMENTS {
                    return None;
                }
                let element = open(&start);
                match stack.last_mut() {
                    Some(parent) => parent.children.push(element),
                    None => return Some(element),
                }
            }
            Event::End(_) => {
                let element = stack.pop()?;
                match stack.last_mut() {
                    Some(parent) => parent.children.push(element),
                    None => return Some(element),
                }
            }
            Event::Text(t) => {
                if let Some(current) = stack.last_mut() {
                    current.text.push_str(&t.xml10_content());
                }
            }
            Event::CData(c) => {
                if let Some(current) = stack.last_mut() {
                    current.text.push_str(&c.xml10_content());
                }
            }
            Event::GeneralRef(r) => {
                let ch = match r.resolve_char_ref() {
                    Ok(Some(ch)) => Some(ch),
                    _ => entity(&r),
                };
                if let (Some(current), Some(ch)) = (stack.last_mut(), ch) {
                    current.text.push(ch);
                }
            }
            Event::Eof => return None,
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builds_a_tree_with_local_names_and_text() {
        let root = parse(
            "<?xml version=\"1.0\"?><a:Root xmlns:a=\"urn:x\"><a:Item kind=\"one\">x &amp; y&#33;</a:Item><Empty/></a:Root>",
        )
        .unwrap();
        assert_eq!(root.name, "Root");
        let item = root.child("item").unwrap();
        assert_eq!(item.attribute("kind"), Some("one"));
        assert_eq!(item.text, "x & y!");
        assert!(root.child("Empty").is_some());
    }

    #[test]
    fn refuses_broken_and_deep_documents() {
        assert_eq!(parse("<a><b></a>"), None);
        assert_eq!(parse("<a>"), None);
        assert_eq!(parse(""), None);
        let deep = "<a>".repeat(40) + &"</a>".repeat(40);
        assert_eq!(parse(&deep), None);
    }
}
