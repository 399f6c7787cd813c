//! PROPFIND and PROPPATCH (RFC 4918 §9.1-9.2) and the properties of each
//! kind of resource (RFC 4791 §5.2, §6.2; RFC 6352 §6.2, §7.1; RFC 5397;
//! RFC 6578 §4; RFC 4331).

use bytes::Bytes;
use hyper::header::HeaderMap;
use rampart_core::model::{
    Collection, CollectionKind, CollectionPatch, DavObject, DeadProp, ObjectFilter,
};

use crate::caller::{Caller, not_found};
use crate::error::DavError;
use crate::handler::{Reply, multistatus, parse_body};
use crate::mkcol::patch_of;
use crate::paths::{self, Target};
use crate::xml::{
    self, APPLE_ICAL, CALDAV, CALSERVER, CARDDAV, DAV, Element, MULTISTATUS_CLOSE,
    MULTISTATUS_OPEN, escape,
};

/// What a property request names.
pub(crate) type PropName = (String, String);

/// A resource whose properties are asked for.
pub(crate) enum Node<'a> {
    Root,
    Principals,
    Principal,
    Home(CollectionKind),
    Collection(&'a Collection),
    Object(&'a Collection, &'a DavObject),
}

/// What a PROPFIND asks for (RFC 4918 §14.20).
enum Wanted {
    All(Vec<PropName>),
    Names,
    Props(Vec<PropName>),
}

/// The properties `allprop` returns: the DAV ones every resource has and
/// the cheap ones of ours (RFC 4918 §9.1 leaves the rest to `include`).
const ALLPROP: &[(&str, &str)] = &[
    (DAV, "resourcetype"),
    (DAV, "displayname"),
    (DAV, "getetag"),
    (DAV, "getcontenttype"),
    (DAV, "getcontentlength"),
    (DAV, "current-user-principal"),
    (DAV, "sync-token"),
    (CALSERVER, "getctag"),
];

/// Most dead properties one collection keeps.
pub(crate) const MAX_DEAD_PROPS: usize = 32;
/// Largest dead property, as XML.
pub(crate) const MAX_DEAD_PROP_BYTES: usize = 4096;

/// Whether a property is one Rampart computes (live, RFC 4918 §4.2).
pub(crate) fn is_live(ns: &str, name: &str) -> bool {
    ALL_NAMES.iter().any(|(n, l)| *n == ns && *l == name)
        || (ns == DAV && matches!(name, "creationdate" | "lockdiscovery" | "supportedlock"))
}

/// The names of every property a resource of this kind may have, for
/// `propname`.
const ALL_NAMES: &[(&str, &str)] = &[
    (DAV, "resourcetype"),
    (DAV, "displayname"),
    (DAV, "getetag"),
    (DAV, "getcontenttype"),
    (DAV, "getcontentlength"),
    (DAV, "getlastmodified"),
    (DAV, "current-user-principal"),
    (DAV, "principal-URL"),
    (DAV, "principal-collection-set"),
    (DAV, "owner"),
    (DAV, "current-user-privilege-set"),
    (DAV, "supported-report-set"),
    (DAV, "sync-token"),
    (DAV, "quota-used-bytes"),
    (DAV, "quota-available-bytes"),
    (CALDAV, "calendar-home-set"),
    (CALDAV, "calendar-user-address-set"),
    (CALDAV, "calendar-description"),
    (CALDAV, "supported-calendar-component-set"),
    (CALDAV, "supported-calendar-data"),
    (CALDAV, "max-resource-size"),
    (CALDAV, "max-instances"),
    (CALDAV, "calendar-data"),
    (CARDDAV, "addressbook-home-set"),
    (CARDDAV, "addressbook-description"),
    (CARDDAV, "supported-address-data"),
    (CARDDAV, "max-resource-size"),
    (CARDDAV, "address-data"),
    (CALSERVER, "getctag"),
    (APPLE_ICAL, "calendar-color"),
];

fn names(list: &[(&str, &str)]) -> Vec<PropName> {
    list.iter()
        .map(|(n, l)| ((*n).to_owned(), (*l).to_owned()))
        .collect()
}

/// The names in a `<D:prop>` element.
pub(crate) fn prop_names(prop: &Element) -> Vec<PropName> {
    prop.children
        .iter()
        .map(|p| (p.ns.clone(), p.name.clone()))
        .collect()
}

fn wanted(body: Option<&Element>) -> Result<Wanted, DavError> {
    let Some(body) = body else {
        return Ok(Wanted::All(names(ALLPROP)));
    };
    if !body.is(DAV, "propfind") {
        return Err(DavError::bad_request("the body is not a DAV:propfind"));
    }
    if body.child(DAV, "propname").is_some() {
        return Ok(Wanted::Names);
    }
    if let Some(prop) = body.child(DAV, "prop") {
        return Ok(Wanted::Props(prop_names(prop)));
    }
    if body.child(DAV, "allprop").is_some() {
        let mut all = names(ALLPROP);
        if let Some(include) = body.child(DAV, "include") {
            all.extend(prop_names(include));
        }
        return Ok(Wanted::All(all));
    }
    Err(DavError::bad_request(
        "a propfind needs prop, allprop or propname",
    ))
}

/// The sync token of a collection at a MODSEQ (RFC 6578 §3.2: a URI).
pub(crate) fn sync_token(collection: &Collection, modseq: u64) -> String {
    format!("urn:rampart:sync:{}:{modseq}", collection.id.0)
}

/// The MODSEQ of a token this collection gave, or `None`.
pub(crate) fn parse_sync_token(collection: &Collection, token: &str) -> Option<u64> {
    let rest = token.trim().strip_prefix("urn:rampart:sync:")?;
    let (id, modseq) = rest.split_once(':')?;
    (id.parse::<i64>().ok()? == collection.id.0).then_some(())?;
    modseq.parse().ok()
}

/// The href of a node.
pub(crate) fn href(caller: &Caller<'_>, node: &Node<'_>) -> String {
    match node {
        Node::Root => paths::ROOT.to_owned(),
        Node::Principals => format!("{}principals/", paths::ROOT),
        Node::Principal => paths::principal(&caller.user),
        Node::Home(kind) => paths::home(*kind, &caller.user),
        Node::Collection(c) => paths::collection(c.kind, &caller.user, &caller.segment(c)),
        Node::Object(c, o) => paths::object(c.kind, &caller.user, &caller.segment(c), &o.name),
    }
}

fn href_el(href: &str) -> String {
    format!("<D:href>{}</D:href>", escape(href))
}

const OWNER_PRIVILEGES: &str = "<D:privilege><D:all/></D:privilege><D:privilege><D:read/></D:privilege><D:privilege><D:write/></D:privilege><D:privilege><D:write-properties/></D:privilege><D:privilege><D:write-content/></D:privilege><D:privilege><D:bind/></D:privilege><D:privilege><D:unbind/></D:privilege><D:privilege><D:read-current-user-privilege-set/></D:privilege><D:privilege><C:read-free-busy/></D:privilege>";
const READ_PRIVILEGES: &str = "<D:privilege><D:read/></D:privilege><D:privilege><D:read-current-user-privilege-set/></D:privilege>";

fn report_set(reports: &[(&str, &str)]) -> String {
    reports
        .iter()
        .map(|(ns, name)| {
            format!(
                "<D:supported-report><D:report>{}</D:report></D:supported-report>",
                xml::empty_element(ns, name)
            )
        })
        .collect()
}

/// Context a property may need beyond the node: the account's quota.
pub(crate) struct Extras {
    pub(crate) quota: Option<(u64, u64)>,
}

/// The value of a property of a node as XML content, or `None` if the
/// node has no such property. `calendar-data` and `address-data` come
/// from the object's content as stored.
pub(crate) fn value(
    caller: &Caller<'_>,
    node: &Node<'_>,
    extras: &Extras,
    ns: &str,
    name: &str,
) -> Option<String> {
    let principal = paths::principal(&caller.user);
    let is_collection = matches!(
        node,
        Node::Root | Node::Principals | Node::Home(_) | Node::Collection(_)
    );
    let v = match (ns, name) {
        (DAV, "resourcetype") => match node {
            Node::Principal => "<D:principal/>".into(),
            Node::Collection(c) if c.kind == CollectionKind::Calendar => {
                "<D:collection/><C:calendar/>".into()
            }
            Node::Collection(_) => "<D:collection/><CR:addressbook/>".into(),
            Node::Object(..) => String::new(),
            _ => "<D:collection/>".into(),
        },
        (DAV, "displayname") => match node {
            Node::Principal => escape(&caller.user),
            Node::Home(CollectionKind::Calendar) => "Calendars".into(),
            Node::Home(CollectionKind::AddressBook) => "Address books".into(),
            Node::Collection(c) => escape(&c.display_name),
            _ => return None,
        },
        (DAV, "current-user-principal") => href_el(&principal),
        (DAV, "principal-URL") if matches!(node, Node::Principal) => href_el(&principal),
        (DAV, "principal-collection-set") => href_el(&format!("{}principals/", paths::ROOT)),
        (DAV, "owner") if !matches!(node, Node::Root | Node::Principals) => match node {
            Node::Collection(c) | Node::Object(c, _) if caller.share_rights(c).is_some() => {
                let segment = caller.segment(c);
                let owner = segment.trim_start_matches('~').split('~').next().unwrap_or_default();
                href_el(&paths::principal(owner))
            }
            _ => href_el(&principal),
        },
        (DAV, "current-user-privilege-set") => match node {
            Node::Root | Node::Principals | Node::Principal => READ_PRIVILEGES.into(),
            Node::Collection(c) | Node::Object(c, _)
                if crate::directory::is_directory(c)
                    || caller.share_rights(c) == Some(rampart_core::model::ShareRights::Read) =>
            {
                READ_PRIVILEGES.into()
            }
            _ => OWNER_PRIVILEGES.into(),
        },
        (DAV, "supported-report-set") => match node {
            Node::Collection(c) if c.kind == CollectionKind::Calendar => report_set(&[
                (CALDAV, "calendar-multiget"),
                (CALDAV, "calendar-query"),
                (CALDAV, "free-busy-query"),
                (DAV, "sync-collection"),
            ]),
            Node::Collection(_) => report_set(&[
                (CARDDAV, "addressbook-multiget"),
                (CARDDAV, "addressbook-query"),
                (DAV, "sync-collection"),
            ]),
            Node::Principals | Node::Principal => report_set(&[
                (DAV, "principal-property-search"),
                (DAV, "principal-search-property-set"),
            ]),
            _ => return None,
        },
        (DAV, "sync-token") => match node {
            Node::Collection(c) => escape(&sync_token(c, c.highest_modseq)),
            _ => return None,
        },
        (CALSERVER, "getctag") => match node {
            Node::Collection(c) => format!("\"{}\"", c.highest_modseq),
            _ => return None,
        },
        (DAV, "getetag") => match node {
            Node::Object(_, o) => escape(&format!("\"{}\"", o.etag)),
            Node::Collection(c) => format!("\"{}\"", c.highest_modseq),
            _ => return None,
        },
        (DAV, "getcontenttype") => match node {
            Node::Object(c, o) if c.kind == CollectionKind::Calendar => format!(
                "text/calendar; charset=utf-8; component={}",
                o.component.to_ascii_lowercase()
            ),
            Node::Object(..) => "text/vcard; charset=utf-8".into(),
            _ => return None,
        },
        (DAV, "getcontentlength") => match node {
            Node::Object(_, o) => o.size.to_string(),
            _ => return None,
        },
        (DAV, "getlastmodified") => match node {
            Node::Object(_, o) if o.updated_at > 0 => crate::ical::http_date(o.updated_at),
            _ => return None,
        },
        (DAV, "quota-used-bytes") if is_collection => extras.quota?.0.to_string(),
        (DAV, "quota-available-bytes") if is_collection => {
            let (used, quota) = extras.quota?;
            // RFC 4331 §3: no limit, no property.
            if quota == 0 {
                return None;
            }
            quota.saturating_sub(used).to_string()
        }
        (CALDAV, "calendar-home-set") if matches!(node, Node::Principal) => {
            href_el(&paths::home(CollectionKind::Calendar, &caller.user))
        }
        (CARDDAV, "addressbook-home-set") if matches!(node, Node::Principal) => {
            href_el(&paths::home(CollectionKind::AddressBook, &caller.user))
        }
        (CALDAV, "calendar-user-address-set") if matches!(node, Node::Principal) => {
            href_el(&format!("mailto:{}", caller.user))
        }
        (CALDAV, "calendar-description") => match node {
            Node::Collection(c) if c.kind == CollectionKind::Calendar => escape(&c.description),
            _ => return None,
        },
        (CARDDAV, "addressbook-description") => match node {
            Node::Collection(c) if c.kind == CollectionKind::AddressBook => escape(&c.description),
            _ => return None,
        },
        (CALDAV, "supported-calendar-component-set") => match node {
            Node::Collection(c) if c.kind == CollectionKind::Calendar => c
                .components
                .iter()
                .map(|comp| format!("<C:comp name=\"{}\"/>", escape(comp)))
                .collect(),
            _ => return None,
        },
        (CALDAV, "supported-calendar-data") => match node {
            Node::Collection(c) if c.kind == CollectionKind::Calendar => {
                "<C:calendar-data content-type=\"text/calendar\" version=\"2.0\"/>".into()
            }
            _ => return None,
        },
        (CARDDAV, "supported-address-data") => match node {
            Node::Collection(c) if c.kind == CollectionKind::AddressBook => {
                "<CR:address-data-type content-type=\"text/vcard\" version=\"3.0\"/><CR:address-data-type content-type=\"text/vcard\" version=\"4.0\"/>".into()
            }
            _ => return None,
        },
        (CALDAV, "max-resource-size") | (CARDDAV, "max-resource-size") => match node {
            Node::Collection(c)
                if (c.kind == CollectionKind::Calendar) == (ns == CALDAV) =>
            {
                caller.config.max_resource_bytes.to_string()
            }
            _ => return None,
        },
        (CALDAV, "max-instances") => match node {
            Node::Collection(c) if c.kind == CollectionKind::Calendar => {
                caller.config.max_instances.to_string()
            }
            _ => return None,
        },
        (CALDAV, "calendar-data") | (CARDDAV, "address-data") => match node {
            Node::Object(c, o) if (c.kind == CollectionKind::Calendar) == (ns == CALDAV) => {
                escape(o.data.as_deref()?)
            }
            _ => return None,
        },
        (APPLE_ICAL, "calendar-color") => match node {
            Node::Collection(c) if c.kind == CollectionKind::Calendar && !c.color.is_empty() => {
                escape(&c.color)
            }
            _ => return None,
        },
        _ => match node {
            Node::Collection(c) => {
                return c
                    .dead_props
                    .iter()
                    .find(|p| p.ns == ns && p.name == name)
                    .map(|p| p.value.clone());
            }
            _ => return None,
        },
    };
    Some(v)
}

/// A found property as an element.
pub(crate) fn found_element(ns: &str, name: &str, inner: &str) -> String {
    if inner.is_empty() {
        xml::empty_element(ns, name)
    } else {
        xml::element(ns, name, inner)
    }
}

/// Writes one `<D:response>` with a 200 propstat of `found` (elements
/// written) and a 404 propstat of `missing`.
pub(crate) fn write_response(out: &mut String, href: &str, found: &[String], missing: &[PropName]) {
    out.push_str("<D:response>");
    out.push_str(&href_el(href));
    if !found.is_empty() {
        out.push_str("<D:propstat><D:prop>");
        for f in found {
            out.push_str(f);
        }
        out.push_str("</D:prop><D:status>HTTP/1.1 200 OK</D:status></D:propstat>");
    }
    if !missing.is_empty() {
        out.push_str("<D:propstat><D:prop>");
        for (ns, name) in missing {
            out.push_str(&xml::empty_element(ns, name));
        }
        out.push_str("</D:prop><D:status>HTTP/1.1 404 Not Found</D:status></D:propstat>");
    }
    if found.is_empty() && missing.is_empty() {
        out.push_str("<D:propstat><D:prop/><D:status>HTTP/1.1 200 OK</D:status></D:propstat>");
    }
    out.push_str("</D:response>");
}

/// Writes a node's response for a list of property names.
pub(crate) fn write_props(
    out: &mut String,
    caller: &Caller<'_>,
    node: &Node<'_>,
    extras: &Extras,
    wanted: &[PropName],
) {
    let mut found = Vec::new();
    let mut missing = Vec::new();
    for (ns, name) in wanted {
        match value(caller, node, extras, ns, name) {
            Some(v) => found.push(found_element(ns, name, &v)),
            None => missing.push((ns.clone(), name.clone())),
        }
    }
    write_response(out, &href(caller, node), &found, &missing);
}

fn write_node(out: &mut String, caller: &Caller<'_>, node: &Node<'_>, extras: &Extras, w: &Wanted) {
    match w {
        Wanted::Props(list) => write_props(out, caller, node, extras, list),
        Wanted::All(list) => {
            // allprop reports only what exists: no 404 propstat; dead
            // properties are part of it (RFC 4918 §9.1).
            let mut found: Vec<String> = list
                .iter()
                .filter_map(|(ns, name)| {
                    value(caller, node, extras, ns, name).map(|v| found_element(ns, name, &v))
                })
                .collect();
            if let Node::Collection(c) = node {
                found.extend(
                    c.dead_props
                        .iter()
                        .filter(|p| !list.iter().any(|(n, l)| *n == p.ns && *l == p.name))
                        .map(|p| found_element(&p.ns, &p.name, &p.value)),
                );
            }
            write_response(out, &href(caller, node), &found, &[]);
        }
        Wanted::Names => {
            let mut found: Vec<String> = ALL_NAMES
                .iter()
                .filter(|(ns, name)| value(caller, node, extras, ns, name).is_some())
                .map(|(ns, name)| xml::empty_element(ns, name))
                .collect();
            if let Node::Collection(c) = node {
                found.extend(
                    c.dead_props
                        .iter()
                        .map(|p| xml::empty_element(&p.ns, &p.name)),
                );
            }
            write_response(out, &href(caller, node), &found, &[]);
        }
    }
}

fn wants_any(w: &Wanted, props: &[(&str, &str)]) -> bool {
    let list = match w {
        Wanted::Props(l) | Wanted::All(l) => l,
        Wanted::Names => return false,
    };
    list.iter()
        .any(|(ns, name)| props.iter().any(|(n, l)| n == ns && l == name))
}

/// PROPFIND: Depth 0 is the resource, 1 adds its members; "infinity" is
/// answered as 1 (there is nothing deeper than a collection's resources).
pub(crate) async fn propfind(
    caller: &Caller<'_>,
    target: Target,
    headers: &HeaderMap,
    body: &Bytes,
) -> Result<Reply, DavError> {
    let depth1 = headers
        .get("Depth")
        .and_then(|v| v.to_str().ok())
        .is_none_or(|d| d.trim() != "0");
    let body = parse_body(caller, body)?;
    let w = wanted(body.as_ref())?;
    let extras = Extras {
        quota: if wants_any(
            &w,
            &[(DAV, "quota-used-bytes"), (DAV, "quota-available-bytes")],
        ) {
            Some(caller.core.quota(&caller.access).await?)
        } else {
            None
        },
    };
    let mut out = String::from(MULTISTATUS_OPEN);
    match target {
        Target::Root => {
            write_node(&mut out, caller, &Node::Root, &extras, &w);
        }
        Target::Principals => {
            write_node(&mut out, caller, &Node::Principals, &extras, &w);
            if depth1 {
                write_node(&mut out, caller, &Node::Principal, &extras, &w);
            }
        }
        Target::Principal(user) => {
            if caller.owns(&user) {
                write_node(&mut out, caller, &Node::Principal, &extras, &w);
            } else {
                // A colleague (as principal-property-search names them):
                // the few properties the address list shows, nothing else.
                let (listed, missing) = match &w {
                    Wanted::Props(list) => (list.clone(), true),
                    // allprop and propname report what exists only.
                    Wanted::All(list) => (list.clone(), false),
                    Wanted::Names => (Vec::new(), false),
                };
                out.push_str(&crate::principals::colleague(caller, &user, &listed, missing).await?);
            }
        }
        Target::Home(kind, user) => {
            if !caller.owns(&user) {
                return Err(not_found());
            }
            write_node(&mut out, caller, &Node::Home(kind), &extras, &w);
            if depth1 {
                let mut collections = caller.core.dav_collections(&caller.access, kind).await?;
                collections.extend(
                    caller
                        .shared_collections(kind)
                        .await?
                        .into_iter()
                        .map(|s| s.collection),
                );
                if kind == CollectionKind::AddressBook {
                    collections.push(crate::directory::collection(caller).await?);
                }
                for c in &collections {
                    write_node(&mut out, caller, &Node::Collection(c), &extras, &w);
                }
            }
        }
        Target::Collection(kind, user, name) => {
            let collection = caller.collection(kind, &user, &name).await?;
            write_node(
                &mut out,
                caller,
                &Node::Collection(&collection),
                &extras,
                &w,
            );
            if depth1 {
                let with_data =
                    wants_any(&w, &[(CALDAV, "calendar-data"), (CARDDAV, "address-data")]);
                let objects = caller
                    .objects(&collection, ObjectFilter::default(), with_data)
                    .await?;
                if objects.len() > caller.config.max_results {
                    return Err(too_many(caller));
                }
                for o in &objects {
                    write_node(&mut out, caller, &Node::Object(&collection, o), &extras, &w);
                }
            }
        }
        Target::Object(kind, user, coll, name) => {
            let collection = caller.collection(kind, &user, &coll).await?;
            let with_data = wants_any(&w, &[(CALDAV, "calendar-data"), (CARDDAV, "address-data")]);
            let found = if with_data {
                caller.get(&collection, std::slice::from_ref(&name)).await?
            } else {
                caller
                    .objects(&collection, ObjectFilter::default(), false)
                    .await?
                    .into_iter()
                    .filter(|o| o.name == name)
                    .collect()
            };
            let object = found.into_iter().next().ok_or_else(not_found)?;
            write_node(
                &mut out,
                caller,
                &Node::Object(&collection, &object),
                &extras,
                &w,
            );
        }
        Target::WellKnown | Target::Unknown => return Err(not_found()),
    }
    out.push_str(MULTISTATUS_CLOSE);
    Ok(multistatus(out))
}

/// The 507 of a response that would list more than allowed (RFC 5323
/// §2.3 / RFC 6352 §8.6.1 number-of-matches-within-limits).
pub(crate) fn too_many(caller: &Caller<'_>) -> DavError {
    DavError::Precondition {
        status: 507,
        ns: DAV,
        condition: "number-of-matches-within-limits",
        reason: format!(
            "more than {} resources would be listed (config key dav.max_results)",
            caller.config.max_results
        ),
    }
}

/// PROPPATCH on a collection: display name, description and colour; all
/// or nothing (RFC 4918 §9.2).
pub(crate) async fn proppatch(
    caller: &Caller<'_>,
    target: Target,
    body: &Bytes,
) -> Result<Reply, DavError> {
    let Target::Collection(kind, user, name) = target else {
        return Err(DavError::Status(
            403,
            "only a calendar's or address book's properties can be changed".into(),
        ));
    };
    let collection = caller.owned(kind, &user, &name).await?;
    let body = parse_body(caller, body)?
        .ok_or_else(|| DavError::bad_request("a propertyupdate body is needed"))?;
    if !body.is(DAV, "propertyupdate") {
        return Err(DavError::bad_request(
            "the body is not a DAV:propertyupdate",
        ));
    }
    let mut patch = CollectionPatch::default();
    let mut accepted = Vec::new();
    let mut refused = Vec::new();
    for op in &body.children {
        let remove = op.is(DAV, "remove");
        if !remove && !op.is(DAV, "set") {
            continue;
        }
        for prop in op
            .children_named(DAV, "prop")
            .flat_map(|p| p.children.iter())
        {
            let key = (prop.ns.clone(), prop.name.clone());
            match patch_of(prop, remove) {
                Some(p) => {
                    patch.display_name = p.display_name.or(patch.display_name);
                    patch.description = p.description.or(patch.description);
                    patch.color = p.color.or(patch.color);
                    accepted.push(key);
                }
                // A live property of ours that is not settable (RFC 4918
                // §15: protected) is refused; anything else is kept as a
                // dead property, within bounds.
                None if is_live(&prop.ns, &prop.name) => refused.push(key),
                None if remove => {
                    patch.remove_props.push(key.clone());
                    accepted.push(key);
                }
                None => {
                    let value = prop.inner_xml();
                    let total = collection.dead_props.len() + patch.set_props.len();
                    if value.len() > MAX_DEAD_PROP_BYTES || total >= MAX_DEAD_PROPS {
                        refused.push(key);
                    } else {
                        patch.set_props.push(DeadProp {
                            ns: prop.ns.clone(),
                            name: prop.name.clone(),
                            value,
                        });
                        accepted.push(key);
                    }
                }
            }
        }
    }
    let mut out = String::from(MULTISTATUS_OPEN);
    out.push_str("<D:response>");
    out.push_str(&href_el(&paths::collection(
        kind,
        &caller.user,
        &caller.segment(&collection),
    )));
    let propstat = |out: &mut String, props: &[PropName], status: &str| {
        if props.is_empty() {
            return;
        }
        out.push_str("<D:propstat><D:prop>");
        for (ns, name) in props {
            out.push_str(&xml::empty_element(ns, name));
        }
        out.push_str(&format!(
            "</D:prop><D:status>HTTP/1.1 {status}</D:status></D:propstat>"
        ));
    };
    if refused.is_empty() {
        if !accepted.is_empty() {
            caller
                .core
                .update_dav_collection(&caller.access, collection.id, patch)
                .await?;
        }
        propstat(&mut out, &accepted, "200 OK");
    } else {
        propstat(&mut out, &refused, "403 Forbidden");
        propstat(&mut out, &accepted, "424 Failed Dependency");
    }
    out.push_str("</D:response>");
    out.push_str(MULTISTATUS_CLOSE);
    Ok(multistatus(out))
}
