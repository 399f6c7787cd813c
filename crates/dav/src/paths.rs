//! The URL layout: where principals, homes, collections and resources live.
//!
//! ```text
//! /.well-known/caldav, /.well-known/carddav   -> 301 /dav/ (RFC 6764 §5)
//! /dav/principals/{address}/                   a user's principal
//! /dav/calendars/{address}/                    their calendar home
//! /dav/calendars/{address}/{calendar}/{name}   an iCalendar resource
//! /dav/addressbooks/{address}/{book}/{name}    a vCard
//! ```

use percent_encoding::{AsciiSet, CONTROLS, percent_decode_str, utf8_percent_encode};
use rampart_core::model::CollectionKind;

/// Where the DAV tree starts.
pub const ROOT: &str = "/dav/";

/// What a request's path names.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Target {
    /// `/` or `/dav/`: where discovery starts.
    Root,
    /// A well-known URI (RFC 6764).
    WellKnown,
    /// `/dav/principals/`.
    Principals,
    /// A user's principal.
    Principal(String),
    /// A user's calendar or address-book home.
    Home(CollectionKind, String),
    /// A collection in a home.
    Collection(CollectionKind, String, String),
    /// A resource in a collection.
    Object(CollectionKind, String, String, String),
    /// Anything else.
    Unknown,
}

fn kind_segment(kind: CollectionKind) -> &'static str {
    match kind {
        CollectionKind::Calendar => "calendars",
        CollectionKind::AddressBook => "addressbooks",
    }
}

/// Parses a request path (without query) into what it names.
pub fn parse(path: &str) -> Target {
    let path = path.split('?').next().unwrap_or_default();
    if path == "/" || path.is_empty() || path == "/dav" || path == ROOT {
        return Target::Root;
    }
    if matches!(
        path.trim_end_matches('/'),
        "/.well-known/caldav" | "/.well-known/carddav"
    ) {
        return Target::WellKnown;
    }
    let Some(rest) = path.strip_prefix(ROOT) else {
        return Target::Unknown;
    };
    let mut segments = Vec::new();
    for raw in rest.split('/').filter(|s| !s.is_empty()) {
        match percent_decode_str(raw).decode_utf8() {
            Ok(s) if s != "." && s != ".." => segments.push(s.into_owned()),
            _ => return Target::Unknown,
        }
    }
    let kind = match segments.first().map(String::as_str) {
        Some("principals") => {
            return match segments.len() {
                1 => Target::Principals,
                2 => Target::Principal(segments.swap_remove(1)),
                _ => Target::Unknown,
            };
        }
        Some("calendars") => CollectionKind::Calendar,
        Some("addressbooks") => CollectionKind::AddressBook,
        _ => return Target::Unknown,
    };
    let mut it = segments.into_iter().skip(1);
    match (it.next(), it.next(), it.next(), it.next()) {
        (Some(user), None, _, _) => Target::Home(kind, user),
        (Some(user), Some(coll), None, _) => Target::Collection(kind, user, coll),
        (Some(user), Some(coll), Some(name), None) => Target::Object(kind, user, coll, name),
        _ => Target::Unknown,
    }
}

/// What a path segment may hold unencoded: RFC 3986 pchar minus what
/// clients trip over.
const SEGMENT: &AsciiSet = &CONTROLS
    .add(b' ')
    .add(b'"')
    .add(b'#')
    .add(b'%')
    .add(b'/')
    .add(b'<')
    .add(b'>')
    .add(b'?')
    .add(b'[')
    .add(b'\\')
    .add(b']')
    .add(b'^')
    .add(b'`')
    .add(b'{')
    .add(b'|')
    .add(b'}');

fn seg(s: &str) -> String {
    utf8_percent_encode(s, SEGMENT).to_string()
}

/// The href of a user's principal.
pub fn principal(user: &str) -> String {
    format!("{ROOT}principals/{}/", seg(user))
}

/// The href of a user's home of a kind.
pub fn home(kind: CollectionKind, user: &str) -> String {
    format!("{ROOT}{}/{}/", kind_segment(kind), seg(user))
}

/// The href of a collection.
pub fn collection(kind: CollectionKind, user: &str, name: &str) -> String {
    format!("{}{}/", home(kind, user), seg(name))
}

/// The href of a resource.
pub fn object(kind: CollectionKind, user: &str, coll: &str, name: &str) -> String {
    format!("{}{}", collection(kind, user, coll), seg(name))
}

/// The path of an href a client sent (absolute URL or path).
pub fn href_path(href: &str) -> &str {
    let href = href.trim();
    match href.find("://") {
        Some(i) => {
            let after = &href[i + 3..];
            after.find('/').map_or("/", |j| &after[j..])
        }
        None => href,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_round_trip() {
        let user = "anna.b@town.example";
        let name = "ev nt@1.ics";
        let href = object(CollectionKind::Calendar, user, "work", name);
        assert_eq!(
            href,
            "/dav/calendars/anna.b@town.example/work/ev%20nt@1.ics"
        );
        assert_eq!(
            parse(&href),
            Target::Object(
                CollectionKind::Calendar,
                user.into(),
                "work".into(),
                name.into()
            )
        );
        assert_eq!(
            parse(&home(CollectionKind::AddressBook, user)),
            Target::Home(CollectionKind::AddressBook, user.into())
        );
        assert_eq!(parse(&principal(user)), Target::Principal(user.into()));
        assert_eq!(parse("/"), Target::Root);
        assert_eq!(parse("/.well-known/caldav"), Target::WellKnown);
        assert_eq!(parse("/dav/calendars/u/../x"), Target::Unknown);
        assert_eq!(parse("/dav/calendars/u/c/o/extra"), Target::Unknown);
        assert_eq!(parse("/dav/calendars/u/%FF/"), Target::Unknown);
        assert_eq!(parse("/elsewhere"), Target::Unknown);
        assert_eq!(href_path("https://h:8443/dav/x?y"), "/dav/x?y");
        assert_eq!(href_path("/dav/x"), "/dav/x");
    }
}
