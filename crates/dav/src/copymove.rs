//! COPY and MOVE of a resource between the caller's collections of one
//! kind (RFC 4918 §9.8-9.9), with `Destination` and `Overwrite`.

use bytes::Bytes;
use hyper::header::HeaderMap;
use rampart_core::model::{PutOutcome, WriteCondition};

use crate::caller::{Caller, not_found};
use crate::error::DavError;
use crate::handler::{Reply, reply};
use crate::paths::{self, Target};
use crate::resources::{etag_header, store_resource};

/// Copies or moves the resource `target` names to the `Destination`.
pub(crate) async fn copy_or_move(
    caller: &Caller<'_>,
    moving: bool,
    target: Target,
    headers: &HeaderMap,
) -> Result<Reply, DavError> {
    let Target::Object(kind, user, coll, name) = target else {
        return Err(DavError::Status(
            403,
            "only calendar objects and contacts can be copied or moved".into(),
        ));
    };
    let destination = headers
        .get("Destination")
        .and_then(|v| v.to_str().ok())
        .ok_or_else(|| DavError::bad_request("a Destination header is needed"))?;
    let Target::Object(to_kind, to_user, to_coll, to_name) =
        paths::parse(paths::href_path(destination))
    else {
        return Err(DavError::Status(
            403,
            "the destination must be a resource in a calendar or address book".into(),
        ));
    };
    // RFC 4918 §9.8.5: 502 for a destination on another server; here,
    // another user's home or another kind of collection is refused.
    if to_kind != kind || !caller.owns(&to_user) {
        return Err(DavError::Status(
            403,
            "the destination must be in one of your collections of the same kind".into(),
        ));
    }
    if to_coll == coll && to_name == name {
        return Err(DavError::Status(
            403,
            "the source and the destination are the same".into(),
        ));
    }
    // RFC 4918 §10.6: Overwrite is T unless the client says F.
    let overwrite = !headers
        .get("Overwrite")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("F"));
    let source = caller.collection(kind, &user, &coll).await?;
    let dest = match caller.writable(kind, &to_user, &to_coll).await {
        // RFC 4918 §9.8.5: 409 when the destination's collection is missing.
        Err(DavError::Core(rampart_core::CoreError::NotFound { .. })) => {
            return Err(DavError::Status(
                409,
                "no such destination collection".into(),
            ));
        }
        other => other?,
    };
    if moving && crate::directory::is_directory(&source) {
        return Err(crate::directory::read_only());
    }
    let object = caller
        .get(&source, std::slice::from_ref(&name))
        .await?
        .pop()
        .ok_or_else(not_found)?;
    let data = object.data.unwrap_or_default();
    let condition = if overwrite {
        WriteCondition::Any
    } else {
        WriteCondition::Absent
    };
    // A move within one collection keeps the UID, which the store would
    // see as taken by the source: free it first.
    let outcome = if moving && dest.id == source.id {
        caller
            .core
            .dav_delete(&caller.access, &source, &name, WriteCondition::Any)
            .await?;
        match store_resource(caller, &dest, &to_name, &data, condition).await {
            Ok(o) => o,
            Err(e) => {
                // Put the source back as it was, then report the failure.
                store_resource(caller, &source, &name, &data, WriteCondition::Absent).await?;
                return Err(e);
            }
        }
    } else {
        let outcome = store_resource(caller, &dest, &to_name, &data, condition).await?;
        if moving {
            caller
                .core
                .dav_delete(&caller.access, &source, &name, WriteCondition::Any)
                .await?;
        }
        outcome
    };
    let (status, stored) = match &outcome {
        PutOutcome::Created(o) => (201, o),
        PutOutcome::Replaced(o) => (204, o),
    };
    let mut r = reply(status, None, Bytes::new());
    etag_header(&mut r, &stored.etag);
    Ok(r)
}
