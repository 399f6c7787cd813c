//! MKCALENDAR and extended MKCOL (RFC 4791 §5.3.1, RFC 5689), and the
//! collection properties a PROPPATCH may change.

use crate::caller::Caller;
use crate::error::DavError;
use crate::handler::{Reply, parse_body, reply};
use crate::paths::Target;
use crate::xml::{APPLE_ICAL, CALDAV, CARDDAV, DAV, Element};
use crate::{directory, props};
use bytes::Bytes;
use hyper::header::{self, HeaderValue};
use rampart_core::model::{CollectionKind, CollectionPatch, DeadProp, NewCollection};

/// The properties a MKCALENDAR or extended MKCOL sets (RFC 4791 §5.3.1,
/// RFC 5689 §5.1), and whether the resourcetype asked for a calendar or
/// an address book.
struct NewProps {
    display_name: Option<String>,
    description: Option<String>,
    color: Option<String>,
    components: Option<Vec<String>>,
    resourcetype: Option<(bool, bool)>,
    /// Properties Rampart keeps without interpreting (a time zone, an order).
    dead: Vec<DeadProp>,
}

fn new_props(body: Option<&Element>) -> NewProps {
    let mut out = NewProps {
        display_name: None,
        description: None,
        color: None,
        components: None,
        resourcetype: None,
        dead: Vec::new(),
    };
    let Some(body) = body else { return out };
    for set in body.children_named(DAV, "set") {
        for prop in set.children_named(DAV, "prop") {
            for p in &prop.children {
                match (p.ns.as_str(), p.name.as_str()) {
                    (DAV, "displayname") => out.display_name = Some(p.text.trim().to_owned()),
                    (CALDAV, "calendar-description") | (CARDDAV, "addressbook-description") => {
                        out.description = Some(p.text.trim().to_owned())
                    }
                    (APPLE_ICAL, "calendar-color") => out.color = Some(p.text.trim().to_owned()),
                    (CALDAV, "supported-calendar-component-set") => {
                        out.components = Some(
                            p.children_named(CALDAV, "comp")
                                .filter_map(|c| c.attr("name"))
                                .map(|n| n.to_ascii_uppercase())
                                .collect(),
                        )
                    }
                    (DAV, "resourcetype") => {
                        out.resourcetype = Some((
                            p.child(CALDAV, "calendar").is_some(),
                            p.child(CARDDAV, "addressbook").is_some(),
                        ))
                    }
                    (ns, name) if !props::is_live(ns, name) => {
                        let value = p.inner_xml();
                        if out.dead.len() < props::MAX_DEAD_PROPS
                            && value.len() <= props::MAX_DEAD_PROP_BYTES
                        {
                            out.dead.push(DeadProp {
                                ns: ns.to_owned(),
                                name: name.to_owned(),
                                value,
                            });
                        }
                    }
                    _ => {}
                }
            }
        }
    }
    out
}

pub(crate) async fn mkcol(
    caller: &Caller<'_>,
    method: &str,
    target: Target,
    body: &[u8],
) -> Result<Reply, DavError> {
    let Target::Collection(kind, user, name) = target else {
        return Err(DavError::Status(
            403,
            "collections are made directly in a calendar or address-book home".into(),
        ));
    };
    if !caller.owns(&user) {
        return Err(DavError::Status(403, "not your home".into()));
    }
    if kind == CollectionKind::AddressBook && name == directory::NAME {
        return Err(directory::read_only());
    }
    let body = parse_body(caller, body)?;
    let props = new_props(body.as_ref());
    let wants = match (method, props.resourcetype) {
        ("MKCALENDAR", _) => CollectionKind::Calendar,
        (_, Some((true, false))) => CollectionKind::Calendar,
        (_, Some((false, true))) => CollectionKind::AddressBook,
        // A plain MKCOL in a home makes that home's kind of collection.
        (_, None) => kind,
        _ => {
            return Err(DavError::Precondition {
                status: 403,
                ns: DAV,
                condition: "valid-resourcetype",
                reason: "only calendars and address books can be made".into(),
            });
        }
    };
    if wants != kind {
        return Err(DavError::Precondition {
            status: 403,
            ns: if kind == CollectionKind::Calendar {
                CALDAV
            } else {
                CARDDAV
            },
            condition: if kind == CollectionKind::Calendar {
                "calendar-collection-location-ok"
            } else {
                "addressbook-collection-location-ok"
            },
            reason: format!("a {wants} cannot be made in the {kind} home"),
        });
    }
    let components = match kind {
        CollectionKind::Calendar => props
            .components
            .filter(|c| !c.is_empty())
            .unwrap_or_else(|| vec!["VEVENT".into(), "VTODO".into(), "VJOURNAL".into()]),
        CollectionKind::AddressBook => Vec::new(),
    };
    if let Some(bad) = components
        .iter()
        .find(|c| !matches!(c.as_str(), "VEVENT" | "VTODO" | "VJOURNAL"))
    {
        return Err(DavError::Precondition {
            status: 403,
            ns: CALDAV,
            condition: "supported-calendar-component",
            reason: format!("{bad} calendars are not supported"),
        });
    }
    let created = caller
        .core
        .create_dav_collection(
            &caller.access,
            NewCollection {
                kind,
                display_name: props.display_name.unwrap_or_else(|| name.clone()),
                name,
                description: props.description.unwrap_or_default(),
                color: props.color.unwrap_or_default(),
                components,
            },
        )
        .await?;
    if !props.dead.is_empty() {
        caller
            .core
            .update_dav_collection(
                &caller.access,
                created.id,
                CollectionPatch {
                    set_props: props.dead,
                    ..Default::default()
                },
            )
            .await?;
    }
    let mut r = reply(201, None, Bytes::new());
    r.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    Ok(r)
}

/// A PROPPATCH's changes to a collection, as the store takes them.
pub(crate) fn patch_of(prop: &Element, remove: bool) -> Option<CollectionPatch> {
    let value = || {
        if remove {
            String::new()
        } else {
            prop.text.trim().to_owned()
        }
    };
    let mut patch = CollectionPatch::default();
    match (prop.ns.as_str(), prop.name.as_str()) {
        (DAV, "displayname") => patch.display_name = Some(value()),
        (CALDAV, "calendar-description") | (CARDDAV, "addressbook-description") => {
            patch.description = Some(value())
        }
        (APPLE_ICAL, "calendar-color") => patch.color = Some(value()),
        _ => return None,
    }
    Some(patch)
}
