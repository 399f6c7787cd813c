//! The records of calendars and address books (CalDAV, CardDAV).

use std::fmt;

id_type!(
    /// Internal id of a calendar or address book.
    CollectionId
);
id_type!(
    /// Internal id of one calendar object or vCard in a collection.
    DavObjectId
);

/// What a collection holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum CollectionKind {
    /// iCalendar objects (RFC 4791).
    Calendar,
    /// vCards (RFC 6352).
    AddressBook,
}

impl CollectionKind {
    /// The name in the store and the change log.
    pub fn as_str(self) -> &'static str {
        match self {
            CollectionKind::Calendar => "calendar",
            CollectionKind::AddressBook => "addressbook",
        }
    }

    pub(crate) fn parse(s: &str) -> Option<Self> {
        match s {
            "calendar" => Some(CollectionKind::Calendar),
            "addressbook" => Some(CollectionKind::AddressBook),
            _ => None,
        }
    }
}

impl fmt::Display for CollectionKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A calendar or address book of an account.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Collection {
    /// Internal id.
    pub id: CollectionId,
    /// The owning account.
    pub account: crate::PrincipalId,
    /// What it holds.
    pub kind: CollectionKind,
    /// Its path segment in the owner's home.
    pub name: String,
    /// The name shown to users.
    pub display_name: String,
    /// A longer description.
    pub description: String,
    /// A colour as clients set it (`#RRGGBB` or `#RRGGBBAA`), or empty.
    pub color: String,
    /// The component types a calendar takes (`VEVENT`, `VTODO`...); empty for address books.
    pub components: Vec<String>,
    /// The MODSEQ of its last change: the sync token and CTag.
    pub highest_modseq: u64,
    /// Properties clients set that Rampart does not interpret: namespace,
    /// name and XML content, by namespace and name.
    pub dead_props: Vec<DeadProp>,
}

/// A WebDAV dead property (RFC 4918 §4.2): kept, returned, never read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeadProp {
    /// The namespace URI.
    pub ns: String,
    /// The local name.
    pub name: String,
    /// The XML content, as given.
    pub value: String,
}

/// A collection to create.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewCollection {
    /// What it holds.
    pub kind: CollectionKind,
    /// Its path segment in the owner's home.
    pub name: String,
    /// The name shown to users.
    pub display_name: String,
    /// A longer description.
    pub description: String,
    /// A colour, or empty.
    pub color: String,
    /// The component types a calendar takes.
    pub components: Vec<String>,
}

/// Properties of a collection to change; `None` leaves one as it is.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CollectionPatch {
    /// A new display name.
    pub display_name: Option<String>,
    /// A new description.
    pub description: Option<String>,
    /// A new colour.
    pub color: Option<String>,
    /// Dead properties to set (replacing any of the same name).
    pub set_props: Vec<DeadProp>,
    /// Dead properties to remove, by namespace and name.
    pub remove_props: Vec<(String, String)>,
}

/// One resource of a collection: an iCalendar object or a vCard.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DavObject {
    /// Internal id.
    pub id: DavObjectId,
    /// Its name in the collection (the last segment of its href).
    pub name: String,
    /// The iCalendar or vCard UID.
    pub uid: String,
    /// Its strong entity tag, without quotes.
    pub etag: String,
    /// The main component type (`VEVENT`, `VTODO`, `VJOURNAL`, `VCARD`).
    pub component: String,
    /// Its size in bytes.
    pub size: u64,
    /// The MODSEQ of its last change.
    pub modseq: u64,
    /// The start of its first occurrence (ms), where known.
    pub starts_at: Option<i64>,
    /// The end of its last occurrence (ms), where known.
    pub ends_at: Option<i64>,
    /// Whether it has more than one occurrence (then the bounds only
    /// enclose them; else they are its one occurrence).
    pub recurring: bool,
    /// When it was last written (ms since the epoch).
    pub updated_at: i64,
    /// Its content, where the read asked for it.
    pub data: Option<String>,
}

/// A resource to store.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewDavObject {
    /// Its name in the collection.
    pub name: String,
    /// The UID, unique in the collection.
    pub uid: String,
    /// Its strong entity tag, without quotes.
    pub etag: String,
    /// The main component type.
    pub component: String,
    /// The start of the first instance (ms since the epoch), where known:
    /// the store preselects time-range queries by it.
    pub starts_at: Option<i64>,
    /// The end of the last instance (ms); `None` for one without end (an
    /// endless recurrence).
    pub ends_at: Option<i64>,
    /// Whether it has more than one instance.
    pub recurring: bool,
    /// The content.
    pub data: String,
}

/// What must hold for a write of a resource to go ahead (RFC 7232 §3.1-3.2).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum WriteCondition {
    /// None.
    Any,
    /// The resource exists with this entity tag (`If-Match`).
    Matches(String),
    /// The resource exists (`If-Match: *`).
    Exists,
    /// The resource does not exist (`If-None-Match: *`).
    Absent,
}

/// What a write of a resource did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PutOutcome {
    /// It made a new resource.
    Created(DavObject),
    /// It replaced one.
    Replaced(DavObject),
}

/// What changed in a collection after a MODSEQ (RFC 6578).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CollectionChanges {
    /// The collection's MODSEQ now: the new sync token.
    pub highest_modseq: u64,
    /// Resources created or changed, without content.
    pub changed: Vec<DavObject>,
    /// Names of resources removed.
    pub removed: Vec<String>,
}

/// Which resources of a collection a query wants; the store preselects by
/// it and the caller decides on each from its content.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ObjectFilter {
    /// Only resources whose main component is this one.
    pub component: Option<String>,
    /// Only resources that may end after this instant (ms).
    pub start: Option<i64>,
    /// Only resources that may start before this instant (ms).
    pub end: Option<i64>,
}

/// What the address list shows of a person beyond name and address.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Profile {
    /// Job title.
    pub title: String,
    /// Department.
    pub department: String,
    /// Phone number(s), as typed.
    pub phone: String,
    /// Office (building, room).
    pub office: String,
}

/// A contact of the organisation that is not an account (a supplier, the
/// fire brigade), kept as the vCard it was imported as.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OrgContact {
    /// Internal id.
    pub id: i64,
    /// The vCard's UID.
    pub uid: String,
    /// The name shown.
    pub display_name: String,
    /// The first e-mail address, or empty.
    pub email: String,
    /// The vCard.
    pub data: String,
}

/// An organisation contact to add.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewOrgContact {
    /// The vCard's UID, unique in the domain.
    pub uid: String,
    /// The name shown.
    pub display_name: String,
    /// The first e-mail address, or empty.
    pub email: String,
    /// The vCard.
    pub data: String,
}

/// What a share of a collection allows.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ShareRights {
    /// List and read its resources.
    Read,
    /// Read, and create, change and delete its resources.
    Write,
}

impl ShareRights {
    /// The name in the store and the command line.
    pub fn as_str(self) -> &'static str {
        match self {
            ShareRights::Read => "read",
            ShareRights::Write => "write",
        }
    }

    /// The rights of a name, if it is one.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "read" => Some(ShareRights::Read),
            "write" => Some(ShareRights::Write),
            _ => None,
        }
    }
}

/// A collection shared with an account, directly or through a group.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SharedCollection {
    /// The collection (its `account` is the owner).
    pub collection: Collection,
    /// The owner's primary address.
    pub owner_address: String,
    /// The greatest right among the shares that reach the account.
    pub rights: ShareRights,
}
