//! GET/HEAD, PUT and DELETE (RFC 4918 §9.4, §9.6-9.7; RFC 4791 §5.3.2),
//! with entity tags and the preconditions of writes.

use crate::caller::{Caller, not_found};
use crate::error::{DavError, uid_conflict};
use crate::handler::{Reply, reply};
use crate::paths::Target;
use crate::xml::{CALDAV, CARDDAV};
use crate::{ical, vcard};
use bytes::Bytes;
use hyper::header::{self, HeaderMap, HeaderValue};
use rampart_core::CoreError;
use rampart_core::model::{Collection, CollectionKind, PutOutcome, WriteCondition};

/// An entity tag from a header, without quotes; weak tags never match a
/// strong comparison (RFC 7232 §2.3.2), so they come back as `None`.
fn strong_tag(raw: &str) -> Option<String> {
    let raw = raw.trim();
    if raw.starts_with("W/") {
        return None;
    }
    Some(raw.trim_matches('"').to_owned())
}

/// The precondition of a write from `If-Match` and `If-None-Match`.
pub(crate) fn write_condition(headers: &HeaderMap) -> Result<WriteCondition, DavError> {
    let get = |h| headers.get(h).and_then(|v: &HeaderValue| v.to_str().ok());
    if let Some(m) = get(header::IF_MATCH) {
        if m.trim() == "*" {
            return Ok(WriteCondition::Exists);
        }
        // Of a list, the first strong tag decides: clients send one.
        let tag = m.split(',').find_map(strong_tag);
        return Ok(match tag {
            Some(t) => WriteCondition::Matches(t),
            None => WriteCondition::Matches(String::new()),
        });
    }
    if let Some(n) = get(header::IF_NONE_MATCH)
        && n.trim() == "*"
    {
        return Ok(WriteCondition::Absent);
    }
    Ok(WriteCondition::Any)
}

fn content_type(kind: CollectionKind) -> &'static str {
    match kind {
        CollectionKind::Calendar => "text/calendar; charset=utf-8",
        CollectionKind::AddressBook => "text/vcard; charset=utf-8",
    }
}

pub(crate) fn etag_header(r: &mut Reply, etag: &str) {
    if let Ok(v) = HeaderValue::from_str(&format!("\"{etag}\"")) {
        r.headers_mut().insert(header::ETAG, v);
    }
}

pub(crate) async fn get(
    caller: &Caller<'_>,
    target: Target,
    headers: &HeaderMap,
) -> Result<Reply, DavError> {
    match target {
        Target::Object(kind, user, coll, name) => {
            let collection = caller.collection(kind, &user, &coll).await?;
            let mut found = caller.get(&collection, std::slice::from_ref(&name)).await?;
            let object = found.pop().ok_or_else(not_found)?;
            let unchanged = headers
                .get(header::IF_NONE_MATCH)
                .and_then(|v| v.to_str().ok())
                .is_some_and(|v| {
                    v.split(',')
                        .any(|t| t.trim() == "*" || strong_tag(t).as_deref() == Some(&object.etag))
                });
            let mut r = if unchanged {
                reply(304, None, Bytes::new())
            } else {
                let data = object.data.unwrap_or_default();
                let data = match kind {
                    CollectionKind::AddressBook => {
                        let accept = headers
                            .get(header::ACCEPT)
                            .and_then(|v| v.to_str().ok())
                            .unwrap_or_default();
                        let version = if accept.contains("version=3.0") {
                            Some("3.0")
                        } else if accept.contains("version=4.0") {
                            Some("4.0")
                        } else {
                            None
                        };
                        vcard::in_version(&data, version)
                    }
                    CollectionKind::Calendar => data,
                };
                reply(200, Some(content_type(kind)), data)
            };
            etag_header(&mut r, &object.etag);
            if object.updated_at > 0
                && let Ok(v) = HeaderValue::from_str(&ical::http_date(object.updated_at))
            {
                r.headers_mut().insert(header::LAST_MODIFIED, v);
            }
            Ok(r)
        }
        Target::Collection(kind, user, coll) => {
            let collection = caller.collection(kind, &user, &coll).await?;
            Ok(reply(
                200,
                Some("text/plain; charset=utf-8"),
                format!(
                    "{}: a {} collection; use a CalDAV or CardDAV client\n",
                    collection.display_name, collection.kind
                ),
            ))
        }
        Target::Root | Target::Principals | Target::Principal(_) | Target::Home(..) => Ok(reply(
            200,
            Some("text/plain; charset=utf-8"),
            "Rampart CalDAV and CardDAV: point your client at this server's address\n",
        )),
        Target::WellKnown | Target::Unknown => Err(not_found()),
    }
}

pub(crate) async fn put(
    caller: &Caller<'_>,
    target: Target,
    headers: &HeaderMap,
    body: Bytes,
) -> Result<Reply, DavError> {
    let Target::Object(kind, user, coll, name) = target else {
        return Err(DavError::Status(
            405,
            "PUT creates resources inside a calendar or address book".into(),
        ));
    };
    let card = kind == CollectionKind::AddressBook;
    let (ns, data_condition) = if card {
        (CARDDAV, "valid-address-data")
    } else {
        (CALDAV, "valid-calendar-data")
    };
    // RFC 4918 §9.7.1: a PUT into a collection that does not exist.
    let collection = match caller.writable(kind, &user, &coll).await {
        Err(DavError::Core(CoreError::NotFound { .. })) => {
            return Err(DavError::Status(409, "no such collection".into()));
        }
        other => other?,
    };
    if let Some(ct) = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
    {
        let media = ct
            .split(';')
            .next()
            .unwrap_or_default()
            .trim()
            .to_ascii_lowercase();
        let fits = if card {
            matches!(
                media.as_str(),
                "text/vcard" | "text/x-vcard" | "text/directory"
            )
        } else {
            media == "text/calendar"
        };
        if !fits {
            return Err(DavError::Precondition {
                status: 415,
                ns,
                condition: if card {
                    "supported-address-data"
                } else {
                    "supported-calendar-data"
                },
                reason: format!("{media} is not taken here"),
            });
        }
    }
    let text = std::str::from_utf8(&body).map_err(|_| DavError::Precondition {
        status: 400,
        ns,
        condition: data_condition,
        reason: "the body is not UTF-8".into(),
    })?;
    let condition = write_condition(headers)?;
    let outcome = store_resource(caller, &collection, &name, text, condition).await?;
    let (status, object) = match &outcome {
        PutOutcome::Created(o) => (201, o),
        PutOutcome::Replaced(o) => (204, o),
    };
    let mut r = reply(status, None, Bytes::new());
    etag_header(&mut r, &object.etag);
    Ok(r)
}

/// Checks a resource's content for its collection and stores it under
/// `name` if `condition` holds (PUT, COPY, MOVE).
pub(crate) async fn store_resource(
    caller: &Caller<'_>,
    collection: &Collection,
    name: &str,
    text: &str,
    condition: WriteCondition,
) -> Result<PutOutcome, DavError> {
    let card = collection.kind == CollectionKind::AddressBook;
    let (ns, data_condition) = if card {
        (CARDDAV, "valid-address-data")
    } else {
        (CALDAV, "valid-calendar-data")
    };
    if text.len() > caller.config.max_resource_bytes {
        return Err(DavError::Precondition {
            status: 403,
            ns,
            condition: "max-resource-size",
            reason: format!(
                "the resource exceeds {} bytes (config key dav.max_resource_bytes)",
                caller.config.max_resource_bytes
            ),
        });
    }
    let write = if card {
        vcard::intake(name, text, caller.config.max_components)
    } else {
        ical::intake(
            name,
            text,
            &collection.components,
            ical::IcalLimits {
                max_components: caller.config.max_components,
                max_instances: caller.config.max_instances,
            },
        )
        .map(|(w, _)| w)
    };
    let write = write.map_err(|e| match e {
        // Unparsable content is a bad request; the body still names the
        // precondition for clients that look for it.
        DavError::Precondition {
            ns,
            condition,
            reason,
            ..
        } if condition == data_condition => DavError::Precondition {
            status: 400,
            ns,
            condition,
            reason,
        },
        other => other,
    })?;
    match caller
        .core
        .dav_put(&caller.access, collection, write, condition)
        .await
    {
        Err(CoreError::UidInUse(other)) => Err(uid_conflict(card, &other)),
        other => Ok(other?),
    }
}

pub(crate) async fn delete(
    caller: &Caller<'_>,
    target: Target,
    headers: &HeaderMap,
) -> Result<Reply, DavError> {
    match target {
        Target::Object(kind, user, coll, name) => {
            let collection = caller.writable(kind, &user, &coll).await?;
            let condition = match write_condition(headers)? {
                WriteCondition::Absent => {
                    return Err(DavError::Status(412, "the resource exists".into()));
                }
                c => c,
            };
            caller
                .core
                .dav_delete(&caller.access, &collection, &name, condition)
                .await?;
            Ok(reply(204, None, Bytes::new()))
        }
        Target::Collection(kind, user, coll) => {
            let collection = caller.owned(kind, &user, &coll).await?;
            caller
                .core
                .delete_dav_collection(&caller.access, &collection)
                .await?;
            Ok(reply(204, None, Bytes::new()))
        }
        Target::Unknown | Target::WellKnown => Err(not_found()),
        _ => Err(DavError::Status(403, "this cannot be deleted".into())),
    }
}
