//! One HTTP request: discovery documents before login, authentication,
//! the request body, routing to the methods, and the responses.

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::header::{self, HeaderMap, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use rampart_core::{Access, Actor, Core, CoreError, SessionContext};

use crate::caller::Caller;
use crate::error::DavError;
use crate::mkcol::mkcol;
use crate::paths::{self, Target};
use crate::resources::{delete, get, put};
use crate::xml::{self, Element, XmlLimits};
use crate::{DavConfig, Login, copymove, discovery, props, report};

/// A response as this crate builds it.
pub(crate) type Reply = Response<Full<Bytes>>;

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
