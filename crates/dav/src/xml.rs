//! WebDAV request bodies read into a small bounded tree, and the writing
//! of multistatus responses.
//!
//! The reader takes no DTD (a `<!DOCTYPE` is refused, so no entity can be
//! declared, let alone expanded: no billion laughs, no external entities);
//! only the five predefined entities and character references are
//! resolved. Depth and element count are bounded by configuration.

use quick_xml::NsReader;
use quick_xml::events::Event;
use quick_xml::name::ResolveResult;

/// The DAV: namespace (RFC 4918).
pub const DAV: &str = "DAV:";
/// The CalDAV namespace (RFC 4791).
pub const CALDAV: &str = "urn:ietf:params:xml:ns:caldav";
/// The CardDAV namespace (RFC 6352).
pub const CARDDAV: &str = "urn:ietf:params:xml:ns:carddav";
/// Apple's and CalendarServer's namespace (getctag).
pub const CALSERVER: &str = "http://calendarserver.org/ns/";
/// Apple's iCal namespace (calendar-color, calendar-order).
pub const APPLE_ICAL: &str = "http://apple.com/ns/ical/";

/// Bounds on a request body's XML.
#[derive(Clone, Copy, Debug)]
pub struct XmlLimits {
    /// Deepest nesting of elements.
    pub max_depth: usize,
    /// Most elements in one document.
    pub max_elements: usize,
}

/// Why a request body is not usable XML.
#[derive(Debug, thiserror::Error)]
pub enum XmlError {
    /// Not well-formed, or uses what we refuse (a DTD, an unknown entity).
    #[error("malformed XML: {0}")]
    Malformed(String),
    /// Deeper or larger than the limits allow.
    #[error("XML {what} exceeds the limit of {limit} (config key {key})")]
    Limit {
        what: &'static str,
        limit: usize,
        key: &'static str,
    },
}

/// One element: its namespace, local name, attributes (unprefixed ones by
/// local name), child elements and text.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Element {
    /// The namespace URI, empty when unbound.
    pub ns: String,
    /// The local name.
    pub name: String,
    /// Attributes by local name, in document order.
    pub attrs: Vec<(String, String)>,
    /// Child elements, in document order.
    pub children: Vec<Element>,
    /// The text directly inside it, entities resolved.
    pub text: String,
}

impl Element {
    /// Whether it is `{ns}name`.
    pub fn is(&self, ns: &str, name: &str) -> bool {
        self.ns == ns && self.name == name
    }

    /// The first child `{ns}name`.
    pub fn child(&self, ns: &str, name: &str) -> Option<&Element> {
        self.children.iter().find(|c| c.is(ns, name))
    }

    /// Every child `{ns}name`.
    pub fn children_named<'a>(
        &'a self,
        ns: &'a str,
        name: &'a str,
    ) -> impl Iterator<Item = &'a Element> + 'a {
        self.children.iter().filter(move |c| c.is(ns, name))
    }

    /// An attribute's value.
    pub fn attr(&self, name: &str) -> Option<&str> {
        self.attrs
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

fn malformed(e: impl std::fmt::Display) -> XmlError {
    XmlError::Malformed(e.to_string())
}

fn predefined_entity(name: &str) -> Option<char> {
    Some(match name {
        "lt" => '<',
        "gt" => '>',
        "amp" => '&',
        "quot" => '"',
        "apos" => '\'',
        _ => return None,
    })
}

/// Resolves entity and character references in an attribute value.
fn unescape_attr(raw: &str) -> Result<String, XmlError> {
    let mut out = String::with_capacity(raw.len());
    let mut rest = raw;
    while let Some(at) = rest.find('&') {
        out.push_str(&rest[..at]);
        let after = &rest[at + 1..];
        let end = after
            .find(';')
            .ok_or_else(|| malformed("an unterminated reference in an attribute"))?;
        out.push(reference(&after[..end])?);
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

/// The character a reference (`lt`, `#60`, `#x3C`) stands for.
fn reference(name: &str) -> Result<char, XmlError> {
    if let Some(num) = name.strip_prefix('#') {
        let code = match num.strip_prefix('x') {
            Some(hex) => u32::from_str_radix(hex, 16),
            None => num.parse(),
        }
        .map_err(|_| malformed(format!("bad character reference &{name};")))?;
        return char::from_u32(code)
            .filter(|c| *c != '\0')
            .ok_or_else(|| malformed(format!("bad character reference &{name};")));
    }
    predefined_entity(name)
        .ok_or_else(|| malformed(format!("unknown entity &{name}; (no DTD is read)")))
}

/// Parses a request body into its root element.
pub fn parse(body: &str, limits: XmlLimits) -> Result<Element, XmlError> {
    let mut reader = NsReader::from_str(body);
    reader.config_mut().trim_text(false);
    let mut stack: Vec<Element> = Vec::new();
    let mut elements = 0usize;
    let mut root = None;
    loop {
        let (resolved, event) = reader.read_resolved_event().map_err(malformed)?;
        let ns = match &resolved {
            ResolveResult::Bound(ns) => ns.as_ref().to_owned(),
            ResolveResult::Unbound => String::new(),
            ResolveResult::Unknown(p) => {
                return Err(malformed(format!("undeclared namespace prefix {p:?}")));
            }
        };
        match event {
            Event::Start(ref start) | Event::Empty(ref start) => {
                if root.is_some() {
                    return Err(malformed("content after the root element"));
                }
                elements += 1;
                if elements > limits.max_elements {
                    return Err(XmlError::Limit {
                        what: "element count",
                        limit: limits.max_elements,
                        key: "dav.max_xml_elements",
                    });
                }
                if stack.len() >= limits.max_depth {
                    return Err(XmlError::Limit {
                        what: "depth",
                        limit: limits.max_depth,
                        key: "dav.max_xml_depth",
                    });
                }
                let mut element = Element {
                    ns,
                    name: start.local_name().as_ref().to_owned(),
                    ..Element::default()
                };
                for attr in start.attributes() {
                    let attr = attr.map_err(malformed)?;
                    let key = attr.key;
                    if key.as_ref().starts_with("xmlns") {
                        continue;
                    }
                    let raw: &str = &attr.value;
                    element
                        .attrs
                        .push((key.local_name().as_ref().to_owned(), unescape_attr(raw)?));
                }
                if matches!(event, Event::Empty(_)) {
                    close(&mut stack, &mut root, element);
                } else {
                    stack.push(element);
                }
            }
            Event::End(_) => {
                let element = stack
                    .pop()
                    .ok_or_else(|| malformed("an end tag without a start"))?;
                close(&mut stack, &mut root, element);
            }
            Event::Text(text) => {
                if let Some(top) = stack.last_mut() {
                    top.text.push_str(&text.xml10_content());
                } else if !text.xml10_content().trim().is_empty() {
                    return Err(malformed("text outside the root element"));
                }
            }
            Event::CData(data) => {
                let top = stack
                    .last_mut()
                    .ok_or_else(|| malformed("CDATA outside the root element"))?;
                top.text.push_str(&data.into_inner());
            }
            Event::GeneralRef(r) => {
                let c = reference(&r.into_inner())?;
                if let Some(top) = stack.last_mut() {
                    top.text.push(c);
                }
            }
            Event::DocType(_) => {
                return Err(malformed("a DOCTYPE is not accepted"));
            }
            Event::Decl(_) | Event::PI(_) | Event::Comment(_) => {}
            Event::Eof => break,
        }
    }
    if !stack.is_empty() {
        return Err(malformed("the document ends inside an element"));
    }
    root.ok_or_else(|| malformed("no root element"))
}

fn close(stack: &mut [Element], root: &mut Option<Element>, element: Element) {
    match stack.last_mut() {
        Some(parent) => parent.children.push(element),
        None => *root = Some(element),
    }
}

/// Escapes text for an XML element or attribute.
pub fn escape(s: &str) -> String {
    // Most calendar data has nothing to escape: copy it whole.
    if !s.bytes().any(|b| {
        matches!(b, b'<' | b'>' | b'&' | b'"' | b'\'')
            || (b < 0x20 && !matches!(b, b'\t' | b'\n' | b'\r'))
    }) {
        return s.to_owned();
    }
    let mut out = String::with_capacity(s.len() + 16);
    for c in s.chars() {
        match c {
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '&' => out.push_str("&amp;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            // Not representable in XML 1.0: dropped rather than sent broken.
            c if (c as u32) < 0x20 && !matches!(c, '\t' | '\n' | '\r') => {}
            c => out.push(c),
        }
    }
    out
}

/// The prefix our responses use for a namespace, if it is one of ours.
pub fn prefix_of(ns: &str) -> Option<&'static str> {
    Some(match ns {
        DAV => "D",
        CALDAV => "C",
        CARDDAV => "CR",
        CALSERVER => "CS",
        APPLE_ICAL => "A",
        _ => return None,
    })
}

/// The opening of a multistatus response, with our namespace prefixes.
pub const MULTISTATUS_OPEN: &str = concat!(
    r#"<?xml version="1.0" encoding="utf-8"?>"#,
    "\n",
    r#"<D:multistatus xmlns:D="DAV:" xmlns:C="urn:ietf:params:xml:ns:caldav" xmlns:CR="urn:ietf:params:xml:ns:carddav" xmlns:CS="http://calendarserver.org/ns/" xmlns:A="http://apple.com/ns/ical/">"#
);

/// The closing of a multistatus response.
pub const MULTISTATUS_CLOSE: &str = "</D:multistatus>\n";

/// An empty element `{ns}name` in our prefixes, or with its own
/// namespace declaration for a foreign one.
pub fn empty_element(ns: &str, name: &str) -> String {
    match prefix_of(ns) {
        Some(p) => format!("<{p}:{name}/>"),
        None if ns.is_empty() => format!("<{name} xmlns=\"\"/>"),
        None => format!("<X:{name} xmlns:X=\"{}\"/>", escape(ns)),
    }
}

/// An element `{ns}name` (one of ours) holding already-written content.
pub fn element(ns: &str, name: &str, inner: &str) -> String {
    match prefix_of(ns) {
        Some(p) => format!("<{p}:{name}>{inner}</{p}:{name}>"),
        None if ns.is_empty() => format!("<{name} xmlns=\"\">{inner}</{name}>"),
        None => format!("<X:{name} xmlns:X=\"{}\">{inner}</X:{name}>", escape(ns)),
    }
}

impl Element {
    /// Its content written back as XML (text and child elements, each
    /// child declaring its own namespace), for keeping a dead property.
    pub fn inner_xml(&self) -> String {
        let mut out = escape(&self.text);
        for c in &self.children {
            c.write_to(&mut out, 0);
        }
        out
    }

    fn write_to(&self, out: &mut String, depth: usize) {
        let prefix = format!("N{depth}");
        out.push('<');
        out.push_str(&prefix);
        out.push(':');
        out.push_str(&self.name);
        out.push_str(&format!(" xmlns:{prefix}=\"{}\"", escape(&self.ns)));
        for (k, v) in &self.attrs {
            out.push_str(&format!(" {k}=\"{}\"", escape(v)));
        }
        out.push('>');
        out.push_str(&escape(&self.text));
        for c in &self.children {
            c.write_to(out, depth + 1);
        }
        out.push_str(&format!("</{prefix}:{}>", self.name));
    }
}

/// A precondition error body (RFC 4918 §16): `<D:error><pre/></D:error>`,
/// with the reason for people in an element of our own namespace (which
/// clients ignore, as RFC 4918 §16 lets them).
pub fn error_body(ns: &str, condition: &str, reason: &str) -> String {
    format!(
        "{}\n<D:error xmlns:D=\"DAV:\" xmlns:C=\"{CALDAV}\" xmlns:CR=\"{CARDDAV}\">{}<R:message xmlns:R=\"{RAMPART}\">{}</R:message></D:error>\n",
        r#"<?xml version="1.0" encoding="utf-8"?>"#,
        empty_element(ns, condition),
        escape(reason)
    )
}

/// Our own namespace, for the human-readable reason in error bodies.
pub const RAMPART: &str = "urn:rampart:dav";

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: XmlLimits = XmlLimits {
        max_depth: 8,
        max_elements: 50,
    };

    #[test]
    fn namespaces_are_resolved_whatever_the_prefix() {
        // RFC 4918 §9.1.3's example, with a default namespace and a prefix.
        let e = parse(
            r#"<?xml version="1.0" encoding="utf-8" ?>
               <propfind xmlns="DAV:"><prop>
                 <getcontentlength/><R:bigbox xmlns:R="http://ns.example.com/boxschema/"/>
               </prop></propfind>"#,
            LIMITS,
        )
        .unwrap();
        assert!(e.is(DAV, "propfind"));
        let prop = e.child(DAV, "prop").unwrap();
        assert!(prop.children[0].is(DAV, "getcontentlength"));
        assert!(prop.children[1].is("http://ns.example.com/boxschema/", "bigbox"));
    }

    #[test]
    fn text_and_attributes_are_unescaped() {
        let e = parse(
            r#"<C:text-match xmlns:C="urn:ietf:params:xml:ns:caldav" collation="i;a&amp;b">A &lt;b&gt; &#x263A;<![CDATA[<x>]]></C:text-match>"#,
            LIMITS,
        )
        .unwrap();
        assert_eq!(e.text, "A <b> \u{263A}<x>");
        assert_eq!(e.attr("collation"), Some("i;a&b"));
    }

    #[test]
    fn dtds_and_unknown_entities_are_refused() {
        let bomb = r#"<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;">]><D:prop xmlns:D="DAV:">&lol2;</D:prop>"#;
        assert!(matches!(parse(bomb, LIMITS), Err(XmlError::Malformed(_))));
        assert!(matches!(
            parse(r#"<D:prop xmlns:D="DAV:">&ext;</D:prop>"#, LIMITS),
            Err(XmlError::Malformed(_))
        ));
    }

    #[test]
    fn content_is_written_back_and_reads_the_same() {
        let e = parse(
            r#"<A:x xmlns:A="urn:a" xmlns:B="urn:b">one &amp; <B:y k="v&lt;">two</B:y><z xmlns="urn:c"/></A:x>"#,
            LIMITS,
        )
        .unwrap();
        let inner = e.inner_xml();
        let again = parse(&format!("<A:x xmlns:A=\"urn:a\">{inner}</A:x>"), LIMITS).unwrap();
        assert_eq!(again, e, "{inner}");
    }

    #[test]
    fn escaping_covers_markup_and_drops_control_characters() {
        assert_eq!(escape("plain text\r\n"), "plain text\r\n");
        assert_eq!(escape("a<b>&\"c'"), "a&lt;b&gt;&amp;&quot;c&apos;");
        assert_eq!(escape("bell\u{7}"), "bell");
    }

    #[test]
    fn limits_hold() {
        let deep = format!("{}{}", "<a xmlns=\"DAV:\">".repeat(9), "</a>".repeat(9));
        assert!(matches!(
            parse(&deep, LIMITS),
            Err(XmlError::Limit { what: "depth", .. })
        ));
        let wide = format!("<a xmlns=\"DAV:\">{}</a>", "<b/>".repeat(50));
        assert!(matches!(
            parse(&wide, LIMITS),
            Err(XmlError::Limit {
                what: "element count",
                ..
            })
        ));
    }

    #[test]
    fn malformed_documents_are_refused() {
        for bad in [
            "",
            "<a>",
            "<a></b>",
            "<x:a/>",
            "<a/><b/>",
            "text",
            "<a xmlns=\"DAV:\">&#0;</a>",
        ] {
            assert!(parse(bad, LIMITS).is_err(), "{bad:?} accepted");
        }
    }
}
