//! Finding colleagues (RFC 3744 §9.4-9.5): principal-property-search over
//! the caller's organisation, as Apple Calendar and Evolution use it to
//! complete attendees, and principal-search-property-set.
//!
//! The people come from core's address list (own domain only); the read
//! is recorded there as a directory query of every entry examined, as an
//! IMAP SEARCH records the messages it examined.

use rampart_core::ListedPrincipal;

use crate::caller::Caller;
use crate::error::DavError;
use crate::paths;
use crate::props::{PropName, found_element, prop_names, write_response};
use crate::vcard::{MatchType, text_matches};
use crate::xml::{
    CALDAV, CALSERVER, DAV, Element, MULTISTATUS_CLOSE, MULTISTATUS_OPEN, empty_element, escape,
};

/// The properties a search may match on.
const SEARCHABLE: &[(&str, &str, &str)] = &[
    (DAV, "displayname", "Name"),
    (CALDAV, "calendar-user-address-set", "E-mail address"),
    (CALSERVER, "email-address-set", "E-mail address"),
];

/// The `principal-search-property-set` answer (RFC 3744 §9.5).
pub(crate) fn search_property_set() -> String {
    let mut out = String::from(
        "<?xml version=\"1.0\" encoding=\"utf-8\"?>\n<D:principal-search-property-set xmlns:D=\"DAV:\" xmlns:C=\"urn:ietf:params:xml:ns:caldav\" xmlns:CS=\"http://calendarserver.org/ns/\">",
    );
    for (ns, name, description) in SEARCHABLE {
        out.push_str(&format!(
            "<D:principal-search-property><D:prop>{}</D:prop><D:description xml:lang=\"en\">{description}</D:description></D:principal-search-property>",
            empty_element(ns, name)
        ));
    }
    out.push_str("</D:principal-search-property-set>\n");
    out
}

/// The value of a searchable or commonly asked property of a colleague.
fn value(p: &ListedPrincipal, ns: &str, name: &str) -> Option<String> {
    let href = |h: &str| format!("<D:href>{}</D:href>", escape(h));
    Some(match (ns, name) {
        (DAV, "displayname") => escape(if p.display_name.is_empty() {
            &p.address
        } else {
            &p.display_name
        }),
        (DAV, "principal-URL") => href(&paths::principal(&p.address)),
        (DAV, "resourcetype") => "<D:principal/>".into(),
        (CALDAV, "calendar-user-address-set") => href(&format!("mailto:{}", p.address)),
        (CALDAV, "calendar-user-type") => match p.kind {
            rampart_core::model::PrincipalKind::Group => "GROUP".into(),
            _ => "INDIVIDUAL".into(),
        },
        (CALSERVER, "email-address-set") => {
            format!(
                "<CS:email-address>{}</CS:email-address>",
                escape(&p.address)
            )
        }
        _ => return None,
    })
}

/// The texts of a colleague a property search compares.
fn texts(p: &ListedPrincipal, ns: &str, name: &str) -> Vec<String> {
    match (ns, name) {
        (DAV, "displayname") => vec![p.display_name.clone()],
        (CALDAV, "calendar-user-address-set") => vec![format!("mailto:{}", p.address)],
        (CALSERVER, "email-address-set") => vec![p.address.clone()],
        _ => Vec::new(),
    }
}

/// Answers a principal-property-search: the caller's colleagues whose
/// properties contain the texts (case-insensitively), with the
/// properties asked for.
pub(crate) async fn property_search(
    caller: &Caller<'_>,
    body: &Element,
) -> Result<String, DavError> {
    let all = body.attr("test") != Some("anyof");
    let mut searches: Vec<(Vec<PropName>, String)> = Vec::new();
    for s in body.children_named(DAV, "property-search") {
        let props = s.child(DAV, "prop").map(prop_names).unwrap_or_default();
        let needle = s
            .child(DAV, "match")
            .map(|m| m.text.trim().to_owned())
            .unwrap_or_default();
        if needle.is_empty() || props.is_empty() {
            return Err(DavError::bad_request(
                "a property-search needs a prop and a non-empty match",
            ));
        }
        searches.push((props, needle));
    }
    if searches.is_empty() {
        return Err(DavError::bad_request("no property-search given"));
    }
    let wanted = body.child(DAV, "prop").map(prop_names).unwrap_or_default();
    let list = caller.core.address_list(&caller.access).await?;
    let mut out = String::from(MULTISTATUS_OPEN);
    let mut count = 0;
    for p in &list.principals {
        let test = |(props, needle): &(Vec<PropName>, String)| {
            props.iter().any(|(ns, name)| {
                texts(p, ns, name)
                    .iter()
                    .any(|t| text_matches(t, needle, MatchType::Contains, false))
            })
        };
        let pass = if all {
            searches.iter().all(test)
        } else {
            searches.iter().any(test)
        };
        if !pass {
            continue;
        }
        count += 1;
        if count > caller.config.max_results {
            return Err(crate::props::too_many(caller));
        }
        let mut found = Vec::new();
        let mut missing = Vec::new();
        for (ns, name) in &wanted {
            match value(p, ns, name) {
                Some(v) => found.push(found_element(ns, name, &v)),
                None => missing.push((ns.clone(), name.clone())),
            }
        }
        write_response(&mut out, &paths::principal(&p.address), &found, &missing);
    }
    out.push_str(MULTISTATUS_CLOSE);
    Ok(out)
}

/// The response for a colleague's principal: found in the caller's own
/// organisation by address (recorded as a read of that one entry), else
/// not found. Only the address list's properties are answered.
pub(crate) async fn colleague(
    caller: &Caller<'_>,
    address: &str,
    wanted: &[PropName],
    report_missing: bool,
) -> Result<String, DavError> {
    let Some((local, domain)) = address.rsplit_once('@') else {
        return Err(crate::caller::not_found());
    };
    let list = caller
        .core
        .address_list_entries(&caller.access, &[local.to_owned()], &[])
        .await?;
    let p = list
        .principals
        .iter()
        .find(|p| p.address.eq_ignore_ascii_case(&format!("{local}@{domain}")))
        .ok_or_else(crate::caller::not_found)?;
    let mut found = Vec::new();
    let mut missing = Vec::new();
    for (ns, name) in wanted {
        match value(p, ns, name) {
            Some(v) => found.push(found_element(ns, name, &v)),
            None if report_missing => missing.push((ns.clone(), name.clone())),
            None => {}
        }
    }
    let mut out = String::new();
    write_response(&mut out, &paths::principal(&p.address), &found, &missing);
    Ok(out)
}
