//! The organisation's address list as a read-only address book,
//! `directory`, in every user's address-book home (RFC 6352): clients that
//! only list the home find it beside their own books.
//!
//! Its cards are made from core's address list on each request; its sync
//! token is a hash of them all, so a changed list makes clients resync.

use rampart_core::model::{Collection, CollectionId, CollectionKind, DavObject, DavObjectId};
use rampart_core::{AddressList, ListedPrincipal, resource_etag};

use crate::caller::Caller;
use crate::error::DavError;

/// Its name in the address-book home; no user's own book can have it.
pub const NAME: &str = "directory";

/// The id the directory's synthetic collection carries (never a row id).
const ID: i64 = -1;

/// Whether a collection is the directory.
pub fn is_directory(c: &Collection) -> bool {
    c.id.0 == ID
}

/// Escapes a vCard text value (RFC 6350 §3.4).
fn text(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            ',' => out.push_str("\\,"),
            ';' => out.push_str("\\;"),
            '\n' => out.push_str("\\n"),
            '\r' => {}
            c if c.is_control() => {}
            c => out.push(c),
        }
    }
    out
}

/// The structured name of a display name: the last word as family name.
fn structured_name(display: &str) -> String {
    match display.trim().rsplit_once(' ') {
        Some((given, family)) => format!("{};{};;;", text(family), text(given)),
        None => format!("{};;;;", text(display.trim())),
    }
}

fn principal_card(domain: &str, p: &ListedPrincipal) -> String {
    let kind = match p.kind {
        rampart_core::model::PrincipalKind::Group => "group",
        _ => "individual",
    };
    let name = if p.display_name.trim().is_empty() {
        p.address.as_str()
    } else {
        p.display_name.as_str()
    };
    let mut card = format!(
        "BEGIN:VCARD\r\nVERSION:4.0\r\nUID:urn:rampart:directory:{}\r\nKIND:{kind}\r\nFN:{}\r\nN:{}\r\nEMAIL;TYPE=work:{}\r\n",
        text(&p.address),
        text(name),
        structured_name(name),
        text(&p.address)
    );
    let pr = &p.profile;
    card.push_str(&format!(
        "ORG:{};{}\r\n",
        text(domain),
        text(&pr.department)
    ));
    if !pr.title.is_empty() {
        card.push_str(&format!("TITLE:{}\r\n", text(&pr.title)));
    }
    for phone in pr.phone.split(',').map(str::trim).filter(|t| !t.is_empty()) {
        card.push_str(&format!("TEL;TYPE=work;VALUE=text:{}\r\n", text(phone)));
    }
    if !pr.office.is_empty() {
        // The office (building, room) is the work address's extended part.
        card.push_str(&format!("ADR;TYPE=work:;{};;;;;\r\n", text(&pr.office)));
    }
    card.push_str("END:VCARD\r\n");
    card
}

fn object(name: String, uid: String, data: String, id: i64) -> DavObject {
    DavObject {
        id: DavObjectId(id),
        etag: resource_etag(data.as_bytes()),
        size: data.len() as u64,
        name,
        uid,
        component: "VCARD".into(),
        modseq: 0,
        starts_at: None,
        ends_at: None,
        recurring: false,
        updated_at: 0,
        data: Some(data),
    }
}

fn collection_of(domain: &str, version: u64) -> Collection {
    Collection {
        id: CollectionId(ID),
        account: rampart_core::model::PrincipalId(ID),
        kind: CollectionKind::AddressBook,
        name: NAME.into(),
        display_name: format!("Directory ({domain})"),
        description: format!("Everyone at {domain}"),
        color: String::new(),
        components: Vec::new(),
        highest_modseq: version,
        dead_props: Vec::new(),
    }
}

/// The directory's collection alone, for listings and sync checks: no
/// entry is read (a client polling its address books reads nobody).
pub(crate) async fn collection(caller: &Caller<'_>) -> Result<Collection, DavError> {
    let (domain, version) = caller.core.address_list_version(&caller.access).await?;
    Ok(collection_of(&domain, version))
}

/// The directory's collection and every card in it, by name (recorded
/// by core as a read of every entry).
pub(crate) async fn load(caller: &Caller<'_>) -> Result<(Collection, Vec<DavObject>), DavError> {
    cards_of(caller.core.address_list(&caller.access).await?)
}

/// The cards of these names only (GET, multiget), recorded as reads of
/// those alone.
pub(crate) async fn load_named(
    caller: &Caller<'_>,
    names: &[String],
) -> Result<Vec<DavObject>, DavError> {
    let mut locals = Vec::new();
    let mut contacts = Vec::new();
    for name in names {
        let Some(stem) = name.strip_suffix(".vcf") else {
            continue;
        };
        match stem.strip_prefix("contact-").map(str::parse::<i64>) {
            Some(Ok(id)) => contacts.push(id),
            _ => locals.push(stem.to_owned()),
        }
    }
    let list = caller
        .core
        .address_list_entries(&caller.access, &locals, &contacts)
        .await?;
    Ok(cards_of(list)?.1)
}

fn cards_of(list: AddressList) -> Result<(Collection, Vec<DavObject>), DavError> {
    let mut cards: Vec<DavObject> = list
        .principals
        .iter()
        .map(|p| {
            let data = principal_card(&list.domain, p);
            let local = p.address.split('@').next().unwrap_or_default();
            object(
                format!("{local}.vcf"),
                format!("urn:rampart:directory:{}", p.address),
                data,
                p.id.0,
            )
        })
        .chain(list.contacts.iter().map(|c| {
            object(
                format!("contact-{}.vcf", c.id),
                c.uid.clone(),
                c.data.clone(),
                c.id,
            )
        }))
        .collect();
    cards.sort_by(|a, b| a.name.cmp(&b.name));
    Ok((collection_of(&list.domain, list.version), cards))
}

/// A refusal of any write to the directory.
pub(crate) fn read_only() -> DavError {
    DavError::Precondition {
        status: 403,
        ns: crate::xml::DAV,
        condition: "need-privileges",
        reason: "the directory is read-only; administrators change it with `rampart contact` and `rampart user profile`".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rampart_core::model::{PrincipalId, PrincipalKind, Profile};

    #[test]
    fn cards_parse_and_escape() {
        let p = ListedPrincipal {
            id: PrincipalId(3),
            kind: PrincipalKind::User,
            address: "anna.schmidt@town.example".into(),
            display_name: "Anna Schmidt".into(),
            profile: Profile {
                title: "Head, Registry; acting".into(),
                department: "Bürgerbüro".into(),
                phone: "+49 30 1, +49 171 2".into(),
                office: "Town hall, room 2".into(),
            },
        };
        let card = principal_card("town.example", &p);
        assert!(
            card.contains("TITLE:Head\\, Registry\\; acting\r\n"),
            "{card}"
        );
        assert!(card.contains("N:Schmidt;Anna;;;\r\n"), "{card}");
        assert_eq!(card.matches("TEL;").count(), 2, "{card}");
        let parsed = crate::vcard::parse(&card).unwrap();
        assert_eq!(
            crate::vcard::property_texts(&parsed, "FN"),
            ["Anna Schmidt"]
        );
        assert!(crate::vcard::intake("a.vcf", &card, 100).is_ok());
        let v3 = crate::vcard::in_version(&card, Some("3.0"));
        assert!(v3.contains("VERSION:3.0"), "{v3}");
    }
}
