//! One HTTP request: authentication, routing, and the methods that are
//! not PROPFIND, PROPPATCH or REPORT (RFC 4918 §9, RFC 4791 §5.3).

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::header::{self, HeaderMap, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use rampart_core::model::{
    Collection, CollectionChanges, CollectionKind, CollectionPatch, DavObject, DeadProp,
    NewCollection, ObjectFilter, PutOutcome, ShareRights, SharedCollection, WriteCondition,
};
use rampart_core::{Access, Actor, Core, CoreError, SessionContext};

use crate::error::{DavError, uid_conflict};
use crate::paths::{self, Target};
use crate::xml::{self, APPLE_ICAL, CALDAV, CARDDAV, DAV, Element, XmlLimits};
use crate::{DavConfig, Login, copymove, directory, discovery, ical, props, report, vcard};

/// A response as this crate builds it.
pub(crate) type Reply = Response<Full<Bytes>>;

/// Who asks, with what the handlers need.
pub(crate) struct Caller<'a> {
    pub(crate) core: &'a Core,
    pub(crate) config: &'a DavConfig,
    pub(crate) access: Access,
    /// The caller's primary address: the `{address}` of their URLs.
    pub(crate) user: String,
    /// Collections shared with the caller met in this request: their
    /// path segment in the caller's home (`~OWNER~NAME`) and the right.
    pub(crate) shared: std::sync::Mutex<std::collections::HashMap<i64, (String, ShareRights)>>,
}

impl Caller<'_> {
    /// Whether a URL's `{address}` is the caller's own.
    pub(crate) fn owns(&self, user: &str) -> bool {
        user.eq_ignore_ascii_case(&self.user)
    }

    /// Bounds on request XML.
    pub(crate) fn xml_limits(&self) -> XmlLimits {
        XmlLimits {
            max_depth: self.config.max_xml_depth,
            max_elements: self.config.max_xml_elements,
        }
    }

    /// A collection named in a URL of the caller's home: their own, the
    /// directory, or one shared with them (`~OWNER~NAME`); anything else,
    /// another user's home included, is not found.
    pub(crate) async fn collection(
        &self,
        kind: CollectionKind,
        user: &str,
        name: &str,
    ) -> Result<Collection, DavError> {
        if !self.owns(user) {
            return Err(not_found());
        }
        if kind == CollectionKind::AddressBook && name == directory::NAME {
            return directory::collection(self).await;
        }
        if let Some((owner, shared_name)) = name.strip_prefix('~').and_then(|r| r.split_once('~')) {
            return self
                .shared_collections(kind)
                .await?
                .into_iter()
                .find(|s| {
                    s.owner_address.eq_ignore_ascii_case(owner) && s.collection.name == shared_name
                })
                .map(|s| s.collection)
                .ok_or_else(not_found);
        }
        Ok(self.core.dav_collection(&self.access, kind, name).await?)
    }

    /// The collections others share with the caller, remembered for hrefs.
    pub(crate) async fn shared_collections(
        &self,
        kind: CollectionKind,
    ) -> Result<Vec<SharedCollection>, DavError> {
        let shared = self.core.dav_shared(&self.access, kind).await?;
        let mut known = self.shared.lock().unwrap_or_else(|e| e.into_inner());
        for s in &shared {
            known.insert(
                s.collection.id.0,
                (
                    format!("~{}~{}", s.owner_address, s.collection.name),
                    s.rights,
                ),
            );
        }
        Ok(shared)
    }

    /// A collection's path segment in the caller's home.
    pub(crate) fn segment(&self, c: &Collection) -> String {
        self.shared
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&c.id.0)
            .filter(|_| !directory::is_directory(c))
            .map_or_else(|| c.name.clone(), |(segment, _)| segment.clone())
    }

    /// The right the caller has on a collection shared with them; `None`
    /// for their own (and the directory, which no one writes).
    pub(crate) fn share_rights(&self, c: &Collection) -> Option<ShareRights> {
        self.shared
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&c.id.0)
            .map(|(_, r)| *r)
    }

    /// A collection whose properties and existence only its owner changes.
    pub(crate) async fn owned(
        &self,
        kind: CollectionKind,
        user: &str,
        name: &str,
    ) -> Result<Collection, DavError> {
        let c = self.writable(kind, user, name).await?;
        if self.share_rights(&c).is_some() {
            return Err(DavError::Precondition {
                status: 403,
                ns: crate::xml::DAV,
                condition: "need-privileges",
                reason: "only its owner can change or delete a shared collection".into(),
            });
        }
        Ok(c)
    }

    /// A collection the caller may write to: not the directory.
    pub(crate) async fn writable(
        &self,
        kind: CollectionKind,
        user: &str,
        name: &str,
    ) -> Result<Collection, DavError> {
        let c = self.collection(kind, user, name).await?;
        if directory::is_directory(&c) {
            return Err(directory::read_only());
        }
        Ok(c)
    }

    /// The resources of a collection that may match `filter`.
    pub(crate) async fn objects(
        &self,
        c: &Collection,
        filter: ObjectFilter,
        with_data: bool,
    ) -> Result<Vec<DavObject>, DavError> {
        if directory::is_directory(c) {
            let mut cards = directory::load(self).await?.1;
            if !with_data {
                cards.iter_mut().for_each(|o| o.data = None);
            }
            return Ok(cards);
        }
        Ok(self
            .core
            .dav_objects(&self.access, c, filter, with_data)
            .await?)
    }

    /// Resources of a collection by name, with their content.
    pub(crate) async fn get(
        &self,
        c: &Collection,
        names: &[String],
    ) -> Result<Vec<DavObject>, DavError> {
        if directory::is_directory(c) {
            let cards = directory::load_named(self, names).await?;
            return Ok(names
                .iter()
                .filter_map(|n| cards.iter().find(|o| &o.name == n).cloned())
                .collect());
        }
        Ok(self.core.dav_get(&self.access, c, names).await?)
    }

    /// What changed after `since`; the directory has no history: from its
    /// current version nothing, from 0 everything, else start again.
    pub(crate) async fn changes(
        &self,
        c: &Collection,
        since: u64,
    ) -> Result<Option<CollectionChanges>, DavError> {
        if directory::is_directory(c) {
            return Ok(match since {
                0 => Some(CollectionChanges {
                    highest_modseq: c.highest_modseq,
                    changed: self.objects(c, ObjectFilter::default(), false).await?,
                    removed: Vec::new(),
                }),
                s if s == c.highest_modseq => Some(CollectionChanges {
                    highest_modseq: s,
                    changed: Vec::new(),
                    removed: Vec::new(),
                }),
                _ => None,
            });
        }
        Ok(self.core.dav_changes(&self.access, c, since).await?)
    }
}

pub(crate) fn not_found() -> DavError {
    DavError::Status(404, "not found".into())
}

/// Builds a response.
pub(crate) fn reply(status: u16, content_type: Option<&str>, body: impl Into<Bytes>) -> Reply {
    let mut r = Response::new(Full::new(body.into()));
    *r.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    if let Some(ct) = content_type
        && let Ok(v) = HeaderValue::from_str(ct)
    {
        r.headers_mut().insert(header::CONTENT_TYPE, v);
    }
    r
}

/// A 207 Multi-Status with an XML body.
pub(crate) fn multistatus(body: String) -> Reply {
    reply(207, Some("application/xml; charset=utf-8"), body)
}

fn error_reply(e: &DavError) -> Reply {
    let (status, condition, reason) = e.parts();
    if status >= 500 {
        tracing::warn!("dav: {status}: {e}");
    }
    let mut r = match condition {
        Some((ns, name)) => reply(
            status,
            Some("application/xml; charset=utf-8"),
            xml::error_body(ns, name, &reason),
        ),
        None => reply(
            status,
            Some("text/plain; charset=utf-8"),
            format!("{reason}\n"),
        ),
    };
    if status == 401 {
        challenge(&mut r);
    }
    r
}

fn challenge(r: &mut Reply) {
    r.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        HeaderValue::from_static("Basic realm=\"Rampart\", charset=\"UTF-8\""),
    );
}

/// The compliance classes of RFC 4918 §10.1, RFC 4791 §5.1, RFC 6352 §6.1
/// and RFC 5689 §3.
const DAV_CLASSES: &str = "1, 3, extended-mkcol, calendar-access, addressbook";
const ALLOW: &str =
    "OPTIONS, GET, HEAD, PUT, DELETE, PROPFIND, PROPPATCH, MKCOL, MKCALENDAR, REPORT";

/// Answers one request.
pub(crate) async fn handle(
    core: &Core,
    config: &DavConfig,
    ctx: &SessionContext,
    login: &Login,
    request: Request<Incoming>,
) -> Reply {
    if let Some(document) = discovery::document(request.uri().path()) {
        return discovery_reply(config, document, request).await;
    }
    let target = paths::parse(request.uri().path());
    if target == Target::WellKnown {
        // RFC 6764 §5: the context path, for clients to PROPFIND there.
        let mut r = reply(301, None, Bytes::new());
        r.headers_mut()
            .insert(header::LOCATION, HeaderValue::from_static(paths::ROOT));
        return r;
    }
    if let Some(agent) = request
        .headers()
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
    {
        ctx.set_client_software(agent);
    }
    let access = match authenticate(core, ctx, login, request.headers()).await {
        Ok(a) => a,
        Err(e) => return error_reply(&e),
    };
    let user = match access.principal() {
        Actor::Account { address, .. } => address.clone(),
        _ => return error_reply(&DavError::Status(403, "not an account".into())),
    };
    if request.uri().path() == discovery::APPLE_PROFILE_PATH {
        let mut r = reply(
            200,
            Some("application/x-apple-aspen-config"),
            discovery::apple_profile(&config.discovery, &user),
        );
        r.headers_mut().insert(
            header::CONTENT_DISPOSITION,
            HeaderValue::from_static("attachment; filename=\"rampart.mobileconfig\""),
        );
        return r;
    }
    let (parts, body) = request.into_parts();
    let body = match Limited::new(body, config.max_request_bytes).collect().await {
        Ok(b) => b.to_bytes(),
        Err(e) => {
            let too_big = e
                .downcast_ref::<http_body_util::LengthLimitError>()
                .is_some();
            return error_reply(&if too_big {
                DavError::Status(
                    413,
                    format!(
                        "the request body exceeds {} bytes (config key dav.max_request_bytes)",
                        config.max_request_bytes
                    ),
                )
            } else {
                DavError::bad_request(format!("the request body could not be read: {e}"))
            });
        }
    };
    let caller = Caller {
        core,
        config,
        access,
        user,
        shared: Default::default(),
    };
    let head = parts.method == Method::HEAD;
    let result = dispatch(&caller, &parts.method, target, &parts.headers, body).await;
    let mut r = match result {
        Ok(r) => r,
        Err(e) => error_reply(&e),
    };
    if head {
        *r.body_mut() = Full::new(Bytes::new());
    }
    r.headers_mut()
        .insert("DAV", HeaderValue::from_static(DAV_CLASSES));
    r
}

/// Autoconfig and autodiscover, before any login (they name servers only).
async fn discovery_reply(
    config: &DavConfig,
    document: discovery::Document,
    request: Request<Incoming>,
) -> Reply {
    const XML: &str = "text/xml; charset=utf-8";
    match document {
        discovery::Document::Autoconfig => {
            let query = request.uri().query().unwrap_or_default().to_owned();
            reply(
                200,
                Some(XML),
                discovery::autoconfig(&config.discovery, &query),
            )
        }
        discovery::Document::Autodiscover => {
            // A request is a few hundred bytes; a larger one is no request.
            let body = match Limited::new(request.into_body(), 64 * 1024).collect().await {
                Ok(b) => b.to_bytes(),
                Err(_) => return error_reply(&DavError::Status(413, "request too large".into())),
            };
            let limits = XmlLimits {
                max_depth: config.max_xml_depth,
                max_elements: config.max_xml_elements,
            };
            match std::str::from_utf8(&body)
                .ok()
                .and_then(|b| discovery::autodiscover(&config.discovery, b, limits))
            {
                Some(answer) => reply(200, Some(XML), answer),
                None => error_reply(&DavError::bad_request(
                    "not an Outlook autodiscover request",
                )),
            }
        }
    }
}

/// The caller's access: the connection's if it sent the same credentials
/// before, else a fresh login (RFC 7617 Basic; rule R7 is core's).
async fn authenticate(
    core: &Core,
    ctx: &SessionContext,
    login: &Login,
    headers: &HeaderMap,
) -> Result<Access, DavError> {
    use base64::Engine;
    let unauthorized = || DavError::Status(401, "authentication required".into());
    let value = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .ok_or_else(unauthorized)?;
    let (scheme, encoded) = value.trim().split_once(' ').ok_or_else(unauthorized)?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return Err(unauthorized());
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .map_err(|_| unauthorized())?;
    let decoded = String::from_utf8(decoded).map_err(|_| unauthorized())?;
    let (address, password) = decoded.split_once(':').ok_or_else(unauthorized)?;
    let key = *blake3::hash(decoded.as_bytes()).as_bytes();
    if let Some((known, access)) = login.lock().unwrap_or_else(|e| e.into_inner()).as_ref()
        && *known == key
    {
        return Ok(access.clone());
    }
    match core.authenticate(ctx, address, password).await {
        Ok(access) => {
            *login.lock().unwrap_or_else(|e| e.into_inner()) = Some((key, access.clone()));
            Ok(access)
        }
        Err(CoreError::AuthFailed) => Err(DavError::Status(401, "authentication failed".into())),
        Err(e) => Err(e.into()),
    }
}

async fn dispatch(
    caller: &Caller<'_>,
    method: &Method,
    target: Target,
    headers: &HeaderMap,
    body: Bytes,
) -> Result<Reply, DavError> {
    match method.as_str() {
        "OPTIONS" => {
            let mut r = reply(200, None, Bytes::new());
            r.headers_mut()
                .insert(header::ALLOW, HeaderValue::from_static(ALLOW));
            Ok(r)
        }
        "PROPFIND" => props::propfind(caller, target, headers, &body).await,
        "PROPPATCH" => props::proppatch(caller, target, &body).await,
        "REPORT" => report::report(caller, target, &body).await,
        "MKCALENDAR" | "MKCOL" => mkcol(caller, method.as_str(), target, &body).await,
        "GET" | "HEAD" => get(caller, target, headers).await,
        "PUT" => put(caller, target, headers, body).await,
        "DELETE" => delete(caller, target, headers).await,
        "COPY" | "MOVE" => {
            copymove::copy_or_move(caller, method.as_str() == "MOVE", target, headers).await
        }
        _ => {
            let mut r = reply(
                405,
                Some("text/plain; charset=utf-8"),
                "method not supported here\n",
            );
            r.headers_mut()
                .insert(header::ALLOW, HeaderValue::from_static(ALLOW));
            Ok(r)
        }
    }
}

/// Parses an XML request body, or `None` when there is none.
pub(crate) fn parse_body(caller: &Caller<'_>, body: &[u8]) -> Result<Option<Element>, DavError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(None);
    }
    let text = std::str::from_utf8(body)
        .map_err(|_| DavError::bad_request("the request body is not UTF-8"))?;
    match xml::parse(text, caller.xml_limits()) {
        Ok(e) => Ok(Some(e)),
        Err(e @ xml::XmlError::Limit { .. }) => Err(DavError::Status(413, e.to_string())),
        Err(e) => Err(DavError::bad_request(e.to_string())),
    }
}

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

async fn get(caller: &Caller<'_>, target: Target, headers: &HeaderMap) -> Result<Reply, DavError> {
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

async fn put(
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

async fn delete(
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

async fn mkcol(
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
