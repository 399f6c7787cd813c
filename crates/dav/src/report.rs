//! REPORT: calendar-multiget and calendar-query (RFC 4791 §7.8-7.9),
//! addressbook-multiget and addressbook-query (RFC 6352 §8.6-8.7) and
//! sync-collection (RFC 6578 §3).

use bytes::Bytes;
use calcard::icalendar::{ICalendar, ICalendarComponent, ICalendarEntry};
use rampart_core::model::{Collection, CollectionKind, DavObject, ObjectFilter};

use crate::caller::Caller;
use crate::error::DavError;
use crate::handler::{Reply, multistatus, parse_body};
use crate::ical;
use crate::paths::{self, Target};
use crate::props::{
    Extras, Node, PropName, found_element, href, parse_sync_token, prop_names, sync_token,
    too_many, value, write_response,
};
use crate::vcard::{self, MatchType};
use crate::xml::{CALDAV, CARDDAV, DAV, Element, MULTISTATUS_CLOSE, MULTISTATUS_OPEN, escape};

/// How the data property of a report is to be returned.
#[derive(Clone, Debug, Default)]
struct DataRequest {
    /// `<C:expand start end>`: instances in the range, in UTC.
    expand: Option<(i64, i64)>,
    /// `<CR:address-data version>`: the vCard version.
    version: Option<String>,
}

struct PropRequest {
    names: Vec<PropName>,
    data: DataRequest,
    wants_data: bool,
}

fn prop_request(caller: &Caller<'_>, body: &Element) -> Result<PropRequest, DavError> {
    let Some(prop) = body.child(DAV, "prop") else {
        return Ok(PropRequest {
            names: vec![(DAV.into(), "getetag".into())],
            data: DataRequest::default(),
            wants_data: false,
        });
    };
    let mut data = DataRequest::default();
    let mut wants_data = false;
    for p in &prop.children {
        if p.is(CALDAV, "calendar-data") {
            wants_data = true;
            if let Some(e) = p.child(CALDAV, "expand") {
                let start = e.attr("start").and_then(ical::parse_utc);
                let end = e.attr("end").and_then(ical::parse_utc);
                let (Some(start), Some(end)) = (start, end) else {
                    return Err(valid_filter("expand needs a UTC start and end"));
                };
                check_range(caller, start, end)?;
                data.expand = Some((start, end));
            }
        } else if p.is(CARDDAV, "address-data") {
            wants_data = true;
            data.version = p.attr("version").map(str::to_owned);
        }
    }
    Ok(PropRequest {
        names: prop_names(prop),
        data,
        wants_data,
    })
}

fn valid_filter(reason: &str) -> DavError {
    DavError::Precondition {
        status: 403,
        ns: CALDAV,
        condition: "valid-filter",
        reason: reason.into(),
    }
}

fn check_range(caller: &Caller<'_>, start: i64, end: i64) -> Result<(), DavError> {
    if end <= start {
        return Err(valid_filter(
            "the end of a time range must be after its start",
        ));
    }
    let days = (end - start) / 86_400_000;
    if days > i64::from(caller.config.max_expand_days) {
        return Err(DavError::Status(
            403,
            format!(
                "an expansion over {days} days exceeds the limit of {} (config key dav.max_expand_days)",
                caller.config.max_expand_days
            ),
        ));
    }
    Ok(())
}

/// Writes an object's response, with its data as asked.
fn write_object(
    out: &mut String,
    caller: &Caller<'_>,
    collection: &Collection,
    object: &DavObject,
    request: &PropRequest,
) {
    let node = Node::Object(collection, object);
    let extras = Extras { quota: None };
    let mut found = Vec::new();
    let mut missing = Vec::new();
    for (ns, name) in &request.names {
        let special = match (ns.as_str(), name.as_str()) {
            (CALDAV, "calendar-data") if collection.kind == CollectionKind::Calendar => {
                object.data.as_deref().map(|d| match request.data.expand {
                    Some((start, end)) => match ical::parse(d) {
                        Ok(parsed) => escape(&ical::expand(
                            &parsed,
                            start,
                            end,
                            caller.config.max_instances,
                        )),
                        Err(_) => escape(d),
                    },
                    None => escape(d),
                })
            }
            (CARDDAV, "address-data") if collection.kind == CollectionKind::AddressBook => object
                .data
                .as_deref()
                .map(|d| escape(&vcard::in_version(d, request.data.version.as_deref()))),
            _ => value(caller, &node, &extras, ns, name),
        };
        match special {
            Some(v) => found.push(found_element(ns, name, &v)),
            None => missing.push((ns.clone(), name.clone())),
        }
    }
    write_response(out, &href(caller, &node), &found, &missing);
}

fn status_response(out: &mut String, href: &str, status: &str) {
    out.push_str(&format!(
        "<D:response><D:href>{}</D:href><D:status>HTTP/1.1 {status}</D:status></D:response>",
        escape(href)
    ));
}

/// Answers a REPORT on a collection.
pub(crate) async fn report(
    caller: &Caller<'_>,
    target: Target,
    body: &Bytes,
) -> Result<Reply, DavError> {
    let body =
        parse_body(caller, body)?.ok_or_else(|| DavError::bad_request("a REPORT needs a body"))?;
    // RFC 3744 §9.4-9.5, on the principals collection (or a principal,
    // or the root, where clients send it).
    if matches!(
        target,
        Target::Principals | Target::Principal(_) | Target::Root
    ) {
        if body.is(DAV, "principal-property-search") {
            return Ok(multistatus(
                crate::principals::property_search(caller, &body).await?,
            ));
        }
        if body.is(DAV, "principal-search-property-set") {
            return Ok(crate::handler::reply(
                200,
                Some("application/xml; charset=utf-8"),
                crate::principals::search_property_set(),
            ));
        }
    }
    let Target::Collection(kind, user, name) = target else {
        return Err(unsupported());
    };
    let collection = caller.collection(kind, &user, &name).await?;
    let calendar = kind == CollectionKind::Calendar;
    if calendar && body.is(CALDAV, "free-busy-query") {
        return free_busy(caller, &collection, &body).await;
    }
    let out = match (body.ns.as_str(), body.name.as_str()) {
        (CALDAV, "calendar-multiget") if calendar => multiget(caller, &collection, &body).await?,
        (CARDDAV, "addressbook-multiget") if !calendar => {
            multiget(caller, &collection, &body).await?
        }
        (CALDAV, "calendar-query") if calendar => {
            calendar_query(caller, &collection, &body).await?
        }
        (CARDDAV, "addressbook-query") if !calendar => {
            addressbook_query(caller, &collection, &body).await?
        }
        (DAV, "sync-collection") => sync_collection(caller, &collection, &body).await?,
        _ => return Err(unsupported()),
    };
    Ok(multistatus(out))
}

/// CALDAV:free-busy-query (RFC 4791 §7.10): the busy time of the
/// calendar in a range as one VFREEBUSY, nothing of the events' content.
async fn free_busy(
    caller: &Caller<'_>,
    collection: &Collection,
    body: &Element,
) -> Result<Reply, DavError> {
    let range =
        time_range(body)?.ok_or_else(|| valid_filter("a free-busy-query needs a time-range"))?;
    let (Some(start), Some(end)) = range else {
        return Err(valid_filter("a free-busy-query needs a start and an end"));
    };
    check_range(caller, start, end)?;
    let pre = ObjectFilter {
        component: Some("VEVENT".into()),
        start: Some(start),
        end: Some(end),
    };
    let mut busy = Vec::new();
    for o in caller.objects(collection, pre, true).await? {
        if let Some(parsed) = o.data.as_deref().and_then(|d| ical::parse(d).ok()) {
            busy.extend(ical::busy_intervals(
                &parsed,
                start,
                end,
                caller.config.max_instances,
            ));
        }
    }
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64);
    Ok(crate::handler::reply(
        200,
        Some("text/calendar; charset=utf-8"),
        ical::freebusy_calendar(busy, start, end, now),
    ))
}

/// RFC 3253 §3.6: a report the resource does not support.
fn unsupported() -> DavError {
    DavError::Precondition {
        status: 403,
        ns: DAV,
        condition: "supported-report",
        reason: "this report is not supported on this resource".into(),
    }
}

async fn multiget(
    caller: &Caller<'_>,
    collection: &Collection,
    body: &Element,
) -> Result<String, DavError> {
    let request = prop_request(caller, body)?;
    let hrefs: Vec<&str> = body
        .children_named(DAV, "href")
        .map(|h| h.text.trim())
        .collect();
    if hrefs.len() > caller.config.max_multiget_hrefs {
        return Err(DavError::Status(
            403,
            format!(
                "{} hrefs exceed the limit of {} (config key dav.max_multiget_hrefs)",
                hrefs.len(),
                caller.config.max_multiget_hrefs
            ),
        ));
    }
    // Each href must name a resource of this collection; others are 404.
    let mut names = Vec::with_capacity(hrefs.len());
    for h in &hrefs {
        names.push(match paths::parse(paths::href_path(h)) {
            Target::Object(k, u, c, n)
                if k == collection.kind && caller.owns(&u) && c == caller.segment(collection) =>
            {
                Some(n)
            }
            _ => None,
        });
    }
    let wanted: Vec<String> = names.iter().flatten().cloned().collect();
    let objects = if request.wants_data {
        caller.get(collection, &wanted).await?
    } else {
        caller
            .objects(collection, ObjectFilter::default(), false)
            .await?
            .into_iter()
            .filter(|o| wanted.contains(&o.name))
            .collect()
    };
    let mut out = String::from(MULTISTATUS_OPEN);
    for (h, name) in hrefs.iter().zip(&names) {
        match name
            .as_ref()
            .and_then(|n| objects.iter().find(|o| &o.name == n))
        {
            Some(o) => write_object(&mut out, caller, collection, o, &request),
            None => status_response(&mut out, h, "404 Not Found"),
        }
    }
    out.push_str(MULTISTATUS_CLOSE);
    Ok(out)
}

/// A CALDAV:text-match (RFC 4791 §9.7.5), or CardDAV's (RFC 6352 §10.5.4).
#[derive(Clone, Debug)]
struct TextMatch {
    text: String,
    negate: bool,
    octet: bool,
    how: MatchType,
}

fn text_match(e: &Element) -> Result<TextMatch, DavError> {
    let collation = e.attr("collation").unwrap_or("i;ascii-casemap");
    let octet = match collation {
        "i;octet" => true,
        "i;ascii-casemap" | "i;unicode-casemap" => false,
        other => {
            return Err(DavError::Precondition {
                status: 403,
                ns: if e.ns == CARDDAV { CARDDAV } else { CALDAV },
                condition: "supported-collation",
                reason: format!("collation {other:?} is not supported"),
            });
        }
    };
    let how = match e.attr("match-type").unwrap_or("contains") {
        "equals" => MatchType::Equals,
        "starts-with" => MatchType::StartsWith,
        "ends-with" => MatchType::EndsWith,
        _ => MatchType::Contains,
    };
    Ok(TextMatch {
        text: e.text.clone(),
        negate: e.attr("negate-condition") == Some("yes"),
        octet,
        how,
    })
}

impl TextMatch {
    fn matches(&self, value: &str) -> bool {
        vcard::text_matches(value, &self.text, self.how, self.octet) != self.negate
    }
}

/// A CALDAV:prop-filter on a component's property.
#[derive(Clone, Debug)]
struct PropFilter {
    name: String,
    is_not_defined: bool,
    text: Option<TextMatch>,
}

/// A time range's start and end (ms); either may be open.
type TimeRange = (Option<i64>, Option<i64>);

/// A CALDAV:comp-filter (RFC 4791 §9.7.1).
#[derive(Clone, Debug)]
struct CompFilter {
    name: String,
    is_not_defined: bool,
    time_range: Option<TimeRange>,
    props: Vec<PropFilter>,
    comps: Vec<CompFilter>,
}

fn time_range(e: &Element) -> Result<Option<TimeRange>, DavError> {
    let Some(t) = e.child(CALDAV, "time-range") else {
        return Ok(None);
    };
    let parse = |a: &str| -> Result<Option<i64>, DavError> {
        t.attr(a)
            .map(|v| {
                ical::parse_utc(v).ok_or_else(|| valid_filter("a time-range needs UTC date-times"))
            })
            .transpose()
    };
    let (start, end) = (parse("start")?, parse("end")?);
    if start.is_none() && end.is_none() {
        return Err(valid_filter("a time-range needs a start or an end"));
    }
    if let (Some(s), Some(e)) = (start, end)
        && e <= s
    {
        return Err(valid_filter(
            "the end of a time range must be after its start",
        ));
    }
    Ok(Some((start, end)))
}

fn comp_filter(e: &Element, depth: usize) -> Result<CompFilter, DavError> {
    if depth > 4 {
        return Err(valid_filter("comp-filters nest too deep"));
    }
    let name = e
        .attr("name")
        .ok_or_else(|| valid_filter("a comp-filter needs a name"))?
        .to_ascii_uppercase();
    let mut props = Vec::new();
    for p in e.children_named(CALDAV, "prop-filter") {
        props.push(PropFilter {
            name: p
                .attr("name")
                .ok_or_else(|| valid_filter("a prop-filter needs a name"))?
                .to_ascii_uppercase(),
            is_not_defined: p.child(CALDAV, "is-not-defined").is_some(),
            text: p.child(CALDAV, "text-match").map(text_match).transpose()?,
        });
    }
    Ok(CompFilter {
        name,
        is_not_defined: e.child(CALDAV, "is-not-defined").is_some(),
        time_range: time_range(e)?,
        props,
        comps: e
            .children_named(CALDAV, "comp-filter")
            .map(|c| comp_filter(c, depth + 1))
            .collect::<Result<_, _>>()?,
    })
}

/// The text of an iCalendar property's value (what follows the colon).
fn entry_value(entry: &ICalendarEntry) -> String {
    let mut line = String::new();
    let _ = entry.write_to(&mut line);
    let unfolded = line.replace("\r\n ", "").replace("\r\n", "");
    // Skip the name and parameters; quoted parameter values may hold ':'.
    let mut quoted = false;
    for (i, c) in unfolded.char_indices() {
        match c {
            '"' => quoted = !quoted,
            ':' if !quoted => return unfolded[i + 1..].to_owned(),
            _ => {}
        }
    }
    String::new()
}

fn prop_matches(comp: &ICalendarComponent, filter: &PropFilter) -> bool {
    let entries: Vec<&ICalendarEntry> = comp
        .entries
        .iter()
        .filter(|e| e.name.as_str().eq_ignore_ascii_case(&filter.name))
        .collect();
    if filter.is_not_defined {
        return entries.is_empty();
    }
    if entries.is_empty() {
        return false;
    }
    match &filter.text {
        Some(t) => entries.iter().any(|e| t.matches(&entry_value(e))),
        None => true,
    }
}

/// Whether a calendar object passes a VCALENDAR comp-filter.
fn object_matches(ical: &ICalendar, filter: &CompFilter, max_instances: usize) -> bool {
    if filter.name != "VCALENDAR" {
        return false;
    }
    if filter.is_not_defined {
        return false;
    }
    let Some(root) = ical.components.first() else {
        return false;
    };
    filter.comps.iter().all(|inner| {
        let members: Vec<&ICalendarComponent> = root
            .component_ids
            .iter()
            .filter_map(|&id| ical.components.get(id as usize))
            .filter(|c| c.component_type.as_str().eq_ignore_ascii_case(&inner.name))
            .collect();
        if inner.is_not_defined {
            return members.is_empty();
        }
        if members.is_empty() {
            return false;
        }
        if let Some((start, end)) = inner.time_range
            && !ical::overlaps(
                ical,
                start.unwrap_or(i64::MIN / 2),
                end.unwrap_or(i64::MAX / 2),
                max_instances,
            )
        {
            return false;
        }
        // Nested filters (VALARM) are not evaluated: such objects pass.
        members
            .iter()
            .any(|c| inner.props.iter().all(|p| prop_matches(c, p)))
    })
}

async fn calendar_query(
    caller: &Caller<'_>,
    collection: &Collection,
    body: &Element,
) -> Result<String, DavError> {
    let request = prop_request(caller, body)?;
    let filter = body
        .child(CALDAV, "filter")
        .and_then(|f| f.child(CALDAV, "comp-filter"))
        .ok_or_else(|| valid_filter("a calendar-query needs a VCALENDAR comp-filter"))?;
    let filter = comp_filter(filter, 0)?;
    // The store preselects by the first inner filter's component and range.
    let mut pre = ObjectFilter::default();
    if let Some(inner) = filter.comps.first() {
        if filter.comps.len() == 1 && !inner.is_not_defined {
            pre.component = Some(inner.name.clone());
        }
        if let Some((start, end)) = inner.time_range {
            pre.start = start;
            pre.end = end;
        }
    }
    let objects = caller.objects(collection, pre, true).await?;
    // A filter on one component type and a time range alone is decided
    // for a resource with one occurrence by the bounds kept with it; only
    // recurring ones are parsed and expanded.
    let by_bounds = match filter.comps.as_slice() {
        [inner]
            if !filter.is_not_defined
                && !inner.is_not_defined
                && inner.props.is_empty()
                && inner.comps.is_empty() =>
        {
            Some(inner.time_range)
        }
        _ => None,
    };
    let mut out = String::from(MULTISTATUS_OPEN);
    let mut count = 0;
    for o in &objects {
        let decided = match (by_bounds, o.recurring, o.starts_at) {
            (Some(None), false, Some(_)) => Some(true),
            (Some(Some((start, end))), false, Some(s)) => Some(ical::occurrence_in(
                s,
                o.ends_at.unwrap_or(s),
                start.unwrap_or(i64::MIN / 2),
                end.unwrap_or(i64::MAX / 2),
            )),
            _ => None,
        };
        let pass = match decided {
            Some(p) => p,
            None => o
                .data
                .as_deref()
                .and_then(|d| ical::parse(d).ok())
                .is_some_and(|parsed| {
                    object_matches(&parsed, &filter, caller.config.max_instances)
                }),
        };
        if !pass {
            continue;
        }
        count += 1;
        if count > caller.config.max_results {
            return Err(too_many(caller));
        }
        write_object(&mut out, caller, collection, o, &request);
    }
    out.push_str(MULTISTATUS_CLOSE);
    Ok(out)
}

/// A CARDDAV:prop-filter (RFC 6352 §10.5).
struct CardFilter {
    name: String,
    is_not_defined: bool,
    all: bool,
    matches: Vec<TextMatch>,
}

fn card_matches(card: &calcard::vcard::VCard, f: &CardFilter) -> bool {
    let values = vcard::property_texts(card, &f.name);
    if f.is_not_defined {
        return values.is_empty();
    }
    if values.is_empty() {
        return false;
    }
    if f.matches.is_empty() {
        return true;
    }
    let test = |t: &TextMatch| values.iter().any(|v| t.matches(v));
    if f.all {
        f.matches.iter().all(test)
    } else {
        f.matches.iter().any(test)
    }
}

async fn addressbook_query(
    caller: &Caller<'_>,
    collection: &Collection,
    body: &Element,
) -> Result<String, DavError> {
    let request = prop_request(caller, body)?;
    let filter = body.child(CARDDAV, "filter");
    let all = filter.and_then(|f| f.attr("test")) == Some("allof");
    let mut filters = Vec::new();
    for p in filter
        .into_iter()
        .flat_map(|f| f.children_named(CARDDAV, "prop-filter"))
    {
        filters.push(CardFilter {
            name: p
                .attr("name")
                .ok_or_else(|| DavError::bad_request("a prop-filter needs a name"))?
                .to_owned(),
            is_not_defined: p.child(CARDDAV, "is-not-defined").is_some(),
            all: p.attr("test") == Some("allof"),
            matches: p
                .children_named(CARDDAV, "text-match")
                .map(text_match)
                .collect::<Result<_, _>>()?,
        });
    }
    let limit = body
        .child(CARDDAV, "limit")
        .and_then(|l| l.child(CARDDAV, "nresults"))
        .and_then(|n| n.text.trim().parse::<usize>().ok());
    let objects = caller
        .objects(collection, ObjectFilter::default(), true)
        .await?;
    let mut out = String::from(MULTISTATUS_OPEN);
    let mut count = 0;
    let mut truncated = false;
    for o in &objects {
        let Some(card) = o.data.as_deref().and_then(|d| vcard::parse(d).ok()) else {
            continue;
        };
        let pass = if filters.is_empty() {
            true
        } else if all {
            filters.iter().all(|f| card_matches(&card, f))
        } else {
            filters.iter().any(|f| card_matches(&card, f))
        };
        if !pass {
            continue;
        }
        if limit.is_some_and(|l| count >= l) {
            truncated = true;
            break;
        }
        count += 1;
        if count > caller.config.max_results {
            return Err(too_many(caller));
        }
        write_object(&mut out, caller, collection, o, &request);
    }
    if truncated {
        // RFC 6352 §8.6.1: the request-URI with 507 says the result was cut.
        out.push_str(&format!(
            "<D:response><D:href>{}</D:href><D:status>HTTP/1.1 507 Insufficient Storage</D:status><D:error><D:number-of-matches-within-limits/></D:error></D:response>",
            escape(&paths::collection(collection.kind, &caller.user, &caller.segment(collection)))
        ));
    }
    out.push_str(MULTISTATUS_CLOSE);
    Ok(out)
}

async fn sync_collection(
    caller: &Caller<'_>,
    collection: &Collection,
    body: &Element,
) -> Result<String, DavError> {
    let request = prop_request(caller, body)?;
    let token = body
        .child(DAV, "sync-token")
        .map(|t| t.text.trim())
        .unwrap_or_default();
    let invalid_token = || DavError::Precondition {
        status: 403,
        ns: DAV,
        condition: "valid-sync-token",
        reason: "the sync token is unknown or expired: sync again from the start".into(),
    };
    let since = if token.is_empty() {
        0
    } else {
        parse_sync_token(collection, token).ok_or_else(invalid_token)?
    };
    let changes = caller
        .changes(collection, since)
        .await?
        .ok_or_else(invalid_token)?;
    if changes.changed.len() + changes.removed.len() > caller.config.max_results {
        return Err(too_many(caller));
    }
    let changed = if request.wants_data && !changes.changed.is_empty() {
        let names: Vec<String> = changes.changed.iter().map(|o| o.name.clone()).collect();
        caller.get(collection, &names).await?
    } else {
        changes.changed
    };
    let mut out = String::from(MULTISTATUS_OPEN);
    for o in &changed {
        write_object(&mut out, caller, collection, o, &request);
    }
    for name in &changes.removed {
        status_response(
            &mut out,
            &paths::object(
                collection.kind,
                &caller.user,
                &caller.segment(collection),
                name,
            ),
            "404 Not Found",
        );
    }
    out.push_str(&format!(
        "<D:sync-token>{}</D:sync-token>",
        escape(&sync_token(collection, changes.highest_modseq))
    ));
    out.push_str(MULTISTATUS_CLOSE);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::xml::{XmlLimits, parse};

    fn filter(xml: &str) -> CompFilter {
        let e = parse(
            xml,
            XmlLimits {
                max_depth: 16,
                max_elements: 100,
            },
        )
        .unwrap();
        comp_filter(&e, 0).unwrap()
    }

    const EVENT: &str = "BEGIN:VCALENDAR\r\nBEGIN:VEVENT\r\nUID:abc@example.org\r\nSUMMARY:Budget meeting\r\nDTSTART:20260310T100000Z\r\nDTEND:20260310T110000Z\r\nATTENDEE;CN=\"Doe: Jane\":mailto:jane@example.org\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n";

    #[test]
    fn rfc4791_filters_select() {
        let ical = ical::parse(EVENT).unwrap();
        let cases = [
            // §7.8.1-style time range that holds the event, and one that does not.
            (
                r#"<C:comp-filter xmlns:C="urn:ietf:params:xml:ns:caldav" name="VCALENDAR"><C:comp-filter name="VEVENT"><C:time-range start="20260310T000000Z" end="20260311T000000Z"/></C:comp-filter></C:comp-filter>"#,
                true,
            ),
            (
                r#"<C:comp-filter xmlns:C="urn:ietf:params:xml:ns:caldav" name="VCALENDAR"><C:comp-filter name="VEVENT"><C:time-range start="20260311T000000Z"/></C:comp-filter></C:comp-filter>"#,
                false,
            ),
            // §7.8.6-style: by UID, and by a text the property does not hold.
            (
                r#"<C:comp-filter xmlns:C="urn:ietf:params:xml:ns:caldav" name="VCALENDAR"><C:comp-filter name="VEVENT"><C:prop-filter name="UID"><C:text-match collation="i;octet">abc@example.org</C:text-match></C:prop-filter></C:comp-filter></C:comp-filter>"#,
                true,
            ),
            (
                r#"<C:comp-filter xmlns:C="urn:ietf:params:xml:ns:caldav" name="VCALENDAR"><C:comp-filter name="VEVENT"><C:prop-filter name="SUMMARY"><C:text-match>BUDGET</C:text-match></C:prop-filter></C:comp-filter></C:comp-filter>"#,
                true,
            ),
            (
                r#"<C:comp-filter xmlns:C="urn:ietf:params:xml:ns:caldav" name="VCALENDAR"><C:comp-filter name="VEVENT"><C:prop-filter name="SUMMARY"><C:text-match negate-condition="yes">budget</C:text-match></C:prop-filter></C:comp-filter></C:comp-filter>"#,
                false,
            ),
            (
                r#"<C:comp-filter xmlns:C="urn:ietf:params:xml:ns:caldav" name="VCALENDAR"><C:comp-filter name="VEVENT"><C:prop-filter name="ATTENDEE"><C:text-match>mailto:jane@</C:text-match></C:prop-filter></C:comp-filter></C:comp-filter>"#,
                true,
            ),
            (
                r#"<C:comp-filter xmlns:C="urn:ietf:params:xml:ns:caldav" name="VCALENDAR"><C:comp-filter name="VEVENT"><C:prop-filter name="LOCATION"><C:is-not-defined/></C:prop-filter></C:comp-filter></C:comp-filter>"#,
                true,
            ),
            (
                r#"<C:comp-filter xmlns:C="urn:ietf:params:xml:ns:caldav" name="VCALENDAR"><C:comp-filter name="VTODO"/></C:comp-filter>"#,
                false,
            ),
            (
                r#"<C:comp-filter xmlns:C="urn:ietf:params:xml:ns:caldav" name="VCALENDAR"/>"#,
                true,
            ),
        ];
        for (xml, expected) in cases {
            assert_eq!(object_matches(&ical, &filter(xml), 100), expected, "{xml}");
        }
    }
}
