//! vCard intake (RFC 6352 §5.1, §6.3.2.1), text matching for
//! addressbook-query (§10.5) and conversion between vCard 3.0 and 4.0.

use calcard::vcard::{VCard, VCardEntry, VCardValue, VCardVersion};
use calcard::{Entry, Parser};
use rampart_core::ResourceWrite;

use crate::error::DavError;
use crate::xml::CARDDAV;

fn invalid(condition: &'static str, reason: impl Into<String>) -> DavError {
    DavError::Precondition {
        status: 403,
        ns: CARDDAV,
        condition,
        reason: reason.into(),
    }
}

/// Parses a vCard text.
pub fn parse(data: &str) -> Result<VCard, String> {
    card_of(Parser::new(data).entry())
}

fn card_of(entry: Entry) -> Result<VCard, String> {
    match entry {
        Entry::VCard(card) => Ok(card),
        Entry::ICalendar(_) => Err("an iCalendar object, not a vCard".into()),
        Entry::Eof => Err("empty".into()),
        other => Err(format!("not a valid vCard: {other:?}")),
    }
}

/// Checks a PUT's body: one vCard with a UID, of at most `max_properties`.
pub fn intake(name: &str, data: &str, max_properties: usize) -> Result<ResourceWrite, DavError> {
    let mut parser = Parser::new(data);
    let card = card_of(parser.entry()).map_err(|r| invalid("valid-address-data", r))?;
    // One vCard per resource (RFC 6352 §5.1): nothing may follow it.
    if !matches!(parser.entry(), Entry::Eof) {
        return Err(invalid(
            "valid-address-data",
            "more than one vCard in one resource",
        ));
    }
    if card.entries.len() > max_properties {
        return Err(DavError::Precondition {
            status: 403,
            ns: CARDDAV,
            condition: "max-resource-size",
            reason: format!(
                "{} properties exceed the limit of {max_properties} (config key dav.max_components)",
                card.entries.len()
            ),
        });
    }
    let uid = card
        .uid()
        .filter(|u| !u.trim().is_empty())
        .ok_or_else(|| invalid("valid-address-data", "a vCard without UID"))?;
    Ok(ResourceWrite {
        name: name.to_owned(),
        uid: uid.to_owned(),
        component: "VCARD".into(),
        starts_at: None,
        ends_at: None,
        recurring: false,
        data: data.to_owned(),
    })
}

/// One card of a file of several (an export), ready for the address list.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CardSummary {
    /// Its UID.
    pub uid: String,
    /// Its FN.
    pub name: String,
    /// Its first EMAIL, or empty.
    pub email: String,
    /// The card alone, as vCard 4.0.
    pub data: String,
}

/// Every card in a text of one or more (`rampart contact import`); each a
/// summary or why it was refused (no UID, no FN). At most `max` cards.
pub fn cards(text: &str, max: usize) -> Vec<Result<CardSummary, String>> {
    let mut parser = Parser::new(text);
    let mut out = Vec::new();
    while out.len() < max {
        match parser.entry() {
            Entry::VCard(card) => {
                let uid = card.uid().map(str::trim).unwrap_or_default().to_owned();
                let name = property_texts(&card, "FN")
                    .into_iter()
                    .next()
                    .unwrap_or_default();
                let email = property_texts(&card, "EMAIL")
                    .into_iter()
                    .next()
                    .unwrap_or_default();
                if uid.is_empty() || name.trim().is_empty() {
                    out.push(Err(format!(
                        "a card without {} ({name:?})",
                        if uid.is_empty() { "UID" } else { "FN" }
                    )));
                    continue;
                }
                let mut data = String::new();
                if card.write_to(&mut data, VCardVersion::V4_0).is_err() {
                    out.push(Err(format!("{uid}: cannot be written as vCard 4.0")));
                    continue;
                }
                out.push(Ok(CardSummary {
                    uid,
                    name: name.trim().to_owned(),
                    email: email.trim().to_owned(),
                    data,
                }));
            }
            Entry::Eof => break,
            Entry::ICalendar(_) => out.push(Err("an iCalendar object, not a vCard".into())),
            other => out.push(Err(format!("not a vCard: {other:?}"))),
        }
    }
    out
}

/// The text of an entry's values, components joined by spaces.
fn entry_text(entry: &VCardEntry) -> String {
    let mut out = String::new();
    for v in &entry.values {
        let piece = match v {
            VCardValue::Text(t) => t.clone(),
            VCardValue::Component(parts) => parts.join(" "),
            VCardValue::Integer(i) => i.to_string(),
            _ => continue,
        };
        if !out.is_empty() {
            out.push(' ');
        }
        out.push_str(&piece);
    }
    out
}

/// The values of a card's properties of a name (`EMAIL`), as text.
pub fn property_texts(card: &VCard, name: &str) -> Vec<String> {
    card.entries
        .iter()
        .filter(|e| e.name.as_str().eq_ignore_ascii_case(name))
        .map(entry_text)
        .collect()
}

/// How a text-match compares (RFC 6352 §10.5.4, RFC 4790 collations).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MatchType {
    /// The value equals the text.
    Equals,
    /// The value contains it.
    Contains,
    /// The value starts with it.
    StartsWith,
    /// The value ends with it.
    EndsWith,
}

/// Whether `value` matches `needle` (case-insensitively unless `octet`).
pub fn text_matches(value: &str, needle: &str, how: MatchType, octet: bool) -> bool {
    let (v, n) = if octet {
        (value.to_owned(), needle.to_owned())
    } else {
        (value.to_lowercase(), needle.to_lowercase())
    };
    match how {
        MatchType::Equals => v == n,
        MatchType::Contains => v.contains(&n),
        MatchType::StartsWith => v.starts_with(&n),
        MatchType::EndsWith => v.ends_with(&n),
    }
}

/// A card's text in the version asked for (RFC 6352 §10.4
/// address-data's version), or as stored when it is that version already.
pub fn in_version(data: &str, version: Option<&str>) -> String {
    let wanted = match version {
        Some("3.0") => VCardVersion::V3_0,
        Some("4.0") => VCardVersion::V4_0,
        _ => return data.to_owned(),
    };
    let Ok(card) = parse(data) else {
        return data.to_owned();
    };
    if card.version() == Some(wanted) {
        return data.to_owned();
    }
    let mut out = String::new();
    match card.write_to(&mut out, wanted) {
        Ok(()) => out,
        Err(_) => data.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // RFC 6350 §8's example, shortened.
    const V4: &str = "BEGIN:VCARD\r\nVERSION:4.0\r\nUID:urn:uuid:4fbe8971-0bc3-424c-9c26-36c3e1eff6b1\r\nFN:Simon Perreault\r\nN:Perreault;Simon;;;ing. jr,M.Sc.\r\nEMAIL;TYPE=work:simon.perreault@viagenie.ca\r\nTEL;VALUE=uri;TYPE=\"work,voice\";PREF=1:tel:+1-418-656-9254;ext=102\r\nEND:VCARD\r\n";

    #[test]
    fn cards_are_taken_with_their_uid() {
        let w = intake("s.vcf", V4, 100).unwrap();
        assert_eq!(w.uid, "urn:uuid:4fbe8971-0bc3-424c-9c26-36c3e1eff6b1");
        assert_eq!(w.component, "VCARD");
        let card = parse(V4).unwrap();
        assert_eq!(property_texts(&card, "fn"), ["Simon Perreault"]);
        assert!(text_matches(
            &property_texts(&card, "EMAIL")[0],
            "VIAGENIE",
            MatchType::Contains,
            false
        ));
        assert!(!text_matches("Simon", "simon", MatchType::Equals, true));
    }

    #[test]
    fn bad_cards_are_refused() {
        for bad in [
            "BEGIN:VCARD\r\nVERSION:4.0\r\nFN:No UID\r\nEND:VCARD\r\n",
            "hello",
            "BEGIN:VCALENDAR\r\nEND:VCALENDAR\r\n",
        ] {
            assert!(
                matches!(
                    intake("x.vcf", bad, 100),
                    Err(DavError::Precondition {
                        condition: "valid-address-data",
                        ..
                    })
                ),
                "{bad:?}"
            );
        }
        let two = format!("{V4}{}", V4.replace("4fbe", "5fbe"));
        assert!(intake("x.vcf", &two, 100).is_err());
        assert!(intake("x.vcf", V4, 3).is_err());
    }

    #[test]
    fn exports_split_into_cards() {
        let file = format!(
            "{V4}{}BEGIN:VCARD\r\nVERSION:3.0\r\nFN:No UID\r\nEND:VCARD\r\n",
            V4.replace("4fbe8971", "5fbe8971")
                .replace("Simon Perreault", "Simone P")
        );
        let found = cards(&file, 10);
        assert_eq!(found.len(), 3);
        assert_eq!(found[0].as_ref().unwrap().name, "Simon Perreault");
        assert_eq!(
            found[1].as_ref().unwrap().email,
            "simon.perreault@viagenie.ca"
        );
        assert!(found[2].is_err());
        assert!(found[0].as_ref().unwrap().data.contains("VERSION:4.0"));
        assert_eq!(cards(&file, 1).len(), 1);
    }

    #[test]
    fn versions_convert() {
        let v3 = in_version(V4, Some("3.0"));
        assert!(v3.contains("VERSION:3.0\r\n"), "{v3}");
        assert!(v3.contains("FN:Simon Perreault"), "{v3}");
        assert_eq!(in_version(V4, Some("4.0")), V4);
        assert_eq!(in_version(V4, None), V4);
    }
}
