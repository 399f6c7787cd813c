//! Calendars and address books (CalDAV, CardDAV): the owner's collections
//! and their resources, each access checked and recorded.
//!
//! Collections are found by the caller's account, so a collection of
//! another account is "not found" exactly as one never made (no probing of
//! other users' calendar names).

use rampart_store::{
    Collection, CollectionChanges, CollectionId, CollectionKind, CollectionPatch, DavObject,
    NewCollection, NewDavObject, ObjectFilter, PrincipalId, PutOutcome, ShareRights,
    SharedCollection, WriteCondition,
};

use crate::{Access, Core, CoreError, CoreResult, Event, Operation};

/// Longest name of a collection or resource (a path segment), in bytes.
pub const MAX_DAV_NAME_BYTES: usize = 255;

/// The name of the calendar every account has.
pub const DEFAULT_CALENDAR: &str = "calendar";
/// The name of the task list every account has.
pub const DEFAULT_TASKS: &str = "tasks";
/// The name of the address book every account has.
pub const DEFAULT_ADDRESS_BOOK: &str = "contacts";

/// A resource to store, as the protocol parsed it; core gives it its
/// entity tag.
#[derive(Clone, Debug)]
pub struct ResourceWrite {
    /// Its name in the collection.
    pub name: String,
    /// The UID of its iCalendar object or vCard.
    pub uid: String,
    /// Its main component (`VEVENT`, `VTODO`, `VJOURNAL`, `VCARD`).
    pub component: String,
    /// The start of its first instance (ms since the epoch), where known.
    pub starts_at: Option<i64>,
    /// The end of its last instance (ms), `None` when endless or unknown.
    pub ends_at: Option<i64>,
    /// Whether it has more than one instance.
    pub recurring: bool,
    /// The content.
    pub data: String,
}

/// The strong entity tag of a resource's content.
pub fn resource_etag(data: &[u8]) -> String {
    blake3::hash(data).to_hex()[..32].to_owned()
}

/// Checks a collection's or resource's name: one path segment, printable,
/// not `.` or `..`, within [`MAX_DAV_NAME_BYTES`].
pub fn check_dav_name(name: &str) -> CoreResult<()> {
    // A leading `~` names a collection shared by someone else in URLs.
    if name.is_empty() || name == "." || name == ".." || name.starts_with('~') {
        return Err(CoreError::Invalid(format!("{name:?} is not a usable name")));
    }
    if name.len() > MAX_DAV_NAME_BYTES {
        return Err(CoreError::Limit {
            what: format!("a name of {} bytes", name.len()),
            limit: MAX_DAV_NAME_BYTES as u64,
            key: "built-in name limit",
        });
    }
    if name
        .chars()
        .any(|c| c.is_control() || c == '/' || c == '\\')
    {
        return Err(CoreError::Invalid(format!(
            "{name:?} contains a slash or a control character"
        )));
    }
    Ok(())
}

fn container_name(collection: &Collection) -> String {
    format!("{}:{}", collection.kind, collection.name)
}

fn defaults(kind: CollectionKind) -> Vec<NewCollection> {
    let new = |name: &str, display: &str, components: &[&str]| NewCollection {
        kind,
        name: name.into(),
        display_name: display.into(),
        description: String::new(),
        color: String::new(),
        components: components.iter().map(|c| (*c).to_owned()).collect(),
    };
    match kind {
        CollectionKind::Calendar => vec![
            new(DEFAULT_CALENDAR, "Calendar", &["VEVENT"]),
            new(DEFAULT_TASKS, "Tasks", &["VTODO"]),
        ],
        CollectionKind::AddressBook => vec![new(DEFAULT_ADDRESS_BOOK, "Contacts", &[])],
    }
}

impl Core {
    fn dav_account(&self, access: &Access) -> CoreResult<PrincipalId> {
        access
            .account()
            .ok_or_else(|| CoreError::Denied("only an account has calendars".into()))
    }

    /// The collection as the store has it, if the caller may act on it with
    /// `need`: its owner may do anything, a grantee what the share allows
    /// (directly or through a group). The caller's copy of the collection
    /// is not trusted: the owner and id are checked against the store's
    /// shares. Anything else is "not found", as for a collection never made.
    async fn permitted(
        &self,
        access: &Access,
        collection: &Collection,
        need: ShareRights,
    ) -> CoreResult<Collection> {
        let account = self.dav_account(access)?;
        if collection.account == account {
            return Ok(collection.clone());
        }
        let not_found = || CoreError::NotFound {
            kind: "collection",
            name: collection.name.clone(),
        };
        let shared = self
            .store
            .shared_with(account, collection.kind)
            .await?
            .into_iter()
            .find(|s| s.collection.id == collection.id)
            .ok_or_else(not_found)?;
        if shared.rights < need {
            return Err(CoreError::Denied(format!(
                "{} is shared with you for reading only",
                collection.name
            )));
        }
        Ok(shared.collection)
    }

    /// The collections of a kind others share with the caller, recorded
    /// as a listing.
    pub async fn dav_shared(
        &self,
        access: &Access,
        kind: CollectionKind,
    ) -> CoreResult<Vec<SharedCollection>> {
        let account = self.dav_account(access)?;
        let shared = self.store.shared_with(account, kind).await?;
        for s in &shared {
            self.record(
                access,
                Event::new(Operation::ListContainers, Some(s.collection.account))
                    .container(container_name(&s.collection))
                    .objects(vec![s.collection.id.0])
                    .metadata(),
            )
            .await?;
        }
        Ok(shared)
    }

    /// The owner's row, if the caller may manage the owner's shares: the
    /// owner or the operator; anyone else hears of no such collection.
    async fn share_manager(
        &self,
        access: &Access,
        owner: &str,
        name: &str,
    ) -> CoreResult<rampart_store::Principal> {
        let owner_row = self.principal_row(owner).await?;
        if access.account() == Some(owner_row.id)
            || matches!(access.principal(), crate::Actor::Operator { .. })
        {
            return Ok(owner_row);
        }
        Err(CoreError::NotFound {
            kind: "collection",
            name: name.to_owned(),
        })
    }

    /// Shares a collection of `owner` with an account or group, or ends
    /// the share (`rights` `None`): the owner, or the operator.
    pub async fn share_dav_collection(
        &self,
        access: &Access,
        owner: &str,
        kind: CollectionKind,
        name: &str,
        grantee: &str,
        rights: Option<ShareRights>,
    ) -> CoreResult<()> {
        let owner_row = self.share_manager(access, owner, name).await?;
        let grantee_row = self.principal_row(grantee).await?;
        if grantee_row.id == owner_row.id {
            return Err(CoreError::Invalid(
                "a collection is its owner's already".into(),
            ));
        }
        let collection = self
            .store
            .find_collection(owner_row.id, kind, name)
            .await?
            .ok_or_else(|| CoreError::NotFound {
                kind: "collection",
                name: format!("{kind} {name} of {owner}"),
            })?;
        match rights {
            Some(r) => {
                self.store
                    .share_collection(owner_row.id, collection.id, grantee_row.id, r)
                    .await?
            }
            None => {
                self.store
                    .unshare_collection(owner_row.id, collection.id, grantee_row.id)
                    .await?
            }
        }
        self.record(
            access,
            Event::new(Operation::Share, Some(owner_row.id))
                .container(format!(
                    "{} with {} {}",
                    container_name(&collection),
                    grantee_row.address(),
                    rights.map_or("removed", ShareRights::as_str)
                ))
                .objects(vec![collection.id.0, grantee_row.id.0]),
        )
        .await
    }

    /// Who a collection of `owner` is shared with: the owner or the operator.
    pub async fn dav_collection_shares(
        &self,
        access: &Access,
        owner: &str,
        kind: CollectionKind,
        name: &str,
    ) -> CoreResult<Vec<(String, ShareRights)>> {
        let owner_row = self.share_manager(access, owner, name).await?;
        let collection = self
            .store
            .find_collection(owner_row.id, kind, name)
            .await?
            .ok_or_else(|| CoreError::NotFound {
                kind: "collection",
                name: name.to_owned(),
            })?;
        let mut out = Vec::new();
        for (grantee, rights) in self
            .store
            .collection_shares(owner_row.id, collection.id)
            .await?
        {
            if let Some(p) = self.store.get_principal(grantee).await? {
                out.push((p.address(), rights));
            }
        }
        Ok(out)
    }

    /// The caller's collections of a kind, by name. An account that has
    /// none gets the default ones first (a calendar and a task list, or an
    /// address book), as clients expect to find something to write to.
    pub async fn dav_collections(
        &self,
        access: &Access,
        kind: CollectionKind,
    ) -> CoreResult<Vec<Collection>> {
        let account = self.dav_account(access)?;
        let mut collections = self.store.list_collections(account, kind).await?;
        if collections.is_empty() {
            for new in defaults(kind) {
                match self.store.create_collection(account, new).await {
                    Ok(c) => {
                        self.record(
                            access,
                            Event::new(Operation::Create, Some(account))
                                .container(container_name(&c))
                                .objects(vec![c.id.0]),
                        )
                        .await?;
                    }
                    // Another request of the same client made it first.
                    Err(rampart_store::StoreError::AlreadyExists(_)) => {}
                    Err(e) => return Err(e.into()),
                }
            }
            collections = self.store.list_collections(account, kind).await?;
        }
        self.record(
            access,
            Event::new(Operation::ListContainers, Some(account))
                .container(kind.as_str())
                .objects(collections.iter().map(|c| c.id.0).collect())
                .metadata(),
        )
        .await?;
        Ok(collections)
    }

    /// One of the caller's collections by kind and name.
    pub async fn dav_collection(
        &self,
        access: &Access,
        kind: CollectionKind,
        name: &str,
    ) -> CoreResult<Collection> {
        let account = self.dav_account(access)?;
        let found = match self.store.find_collection(account, kind, name).await? {
            Some(c) => Some(c),
            // The defaults exist from the first look, whichever URL it is at.
            None if defaults(kind).iter().any(|d| d.name == name) => self
                .dav_collections(access, kind)
                .await?
                .into_iter()
                .find(|c| c.name == name),
            None => None,
        };
        let collection = found.ok_or_else(|| CoreError::NotFound {
            kind: "collection",
            name: name.to_owned(),
        })?;
        self.record(
            access,
            Event::new(Operation::ListContainers, Some(account))
                .container(container_name(&collection))
                .objects(vec![collection.id.0])
                .metadata(),
        )
        .await?;
        Ok(collection)
    }

    /// Creates a collection of the caller's (MKCALENDAR, MKCOL).
    pub async fn create_dav_collection(
        &self,
        access: &Access,
        new: NewCollection,
    ) -> CoreResult<Collection> {
        let account = self.dav_account(access)?;
        check_dav_name(&new.name)?;
        let collection = self.store.create_collection(account, new).await?;
        self.record(
            access,
            Event::new(Operation::Create, Some(account))
                .container(container_name(&collection))
                .objects(vec![collection.id.0]),
        )
        .await?;
        Ok(collection)
    }

    /// Changes a collection's display name, description or colour (PROPPATCH).
    pub async fn update_dav_collection(
        &self,
        access: &Access,
        id: CollectionId,
        patch: CollectionPatch,
    ) -> CoreResult<Collection> {
        let account = self.dav_account(access)?;
        let collection = self.store.update_collection(account, id, patch).await?;
        self.record(
            access,
            Event::new(Operation::Modify, Some(account))
                .container(container_name(&collection))
                .objects(vec![id.0]),
        )
        .await?;
        Ok(collection)
    }

    /// Deletes a collection of the caller's with its resources.
    pub async fn delete_dav_collection(
        &self,
        access: &Access,
        collection: &Collection,
    ) -> CoreResult<()> {
        let account = self.dav_account(access)?;
        self.store.delete_collection(account, collection.id).await?;
        self.record(
            access,
            Event::new(Operation::Delete, Some(account))
                .container(container_name(collection))
                .objects(vec![collection.id.0]),
        )
        .await
    }

    /// The resources of a collection that may match `filter`, by name.
    /// With `with_data` their content is returned and the read is recorded
    /// as one of bodies, durably before it is returned; without, as a
    /// listing (names and entity tags).
    pub async fn dav_objects(
        &self,
        access: &Access,
        collection: &Collection,
        filter: ObjectFilter,
        with_data: bool,
    ) -> CoreResult<Vec<DavObject>> {
        let collection = &self
            .permitted(access, collection, ShareRights::Read)
            .await?;
        let objects = self
            .store
            .find_objects(collection.account, collection.id, filter, with_data)
            .await?;
        self.record_dav_read(access, collection.account, collection, &objects, with_data)
            .await?;
        Ok(objects)
    }

    /// Resources of a collection by name, with their content (GET,
    /// multiget); names that do not exist are left out.
    pub async fn dav_get(
        &self,
        access: &Access,
        collection: &Collection,
        names: &[String],
    ) -> CoreResult<Vec<DavObject>> {
        let collection = &self
            .permitted(access, collection, ShareRights::Read)
            .await?;
        let objects = self
            .store
            .get_objects(collection.account, collection.id, names)
            .await?;
        self.record_dav_read(access, collection.account, collection, &objects, true)
            .await?;
        Ok(objects)
    }

    async fn record_dav_read(
        &self,
        access: &Access,
        account: PrincipalId,
        collection: &Collection,
        objects: &[DavObject],
        with_data: bool,
    ) -> CoreResult<()> {
        let operation = if with_data {
            Operation::ReadBody
        } else {
            Operation::ListItems
        };
        let mut event = Event::new(operation, Some(account))
            .container(container_name(collection))
            .objects(objects.iter().map(|o| o.id.0).collect());
        if with_data {
            event = event.bytes(objects.iter().map(|o| o.size).sum());
        } else {
            event = event.metadata();
        }
        self.record(access, event).await
    }

    /// Stores a resource in a collection of the caller's if `condition`
    /// holds.
    pub async fn dav_put(
        &self,
        access: &Access,
        collection: &Collection,
        write: ResourceWrite,
        condition: WriteCondition,
    ) -> CoreResult<PutOutcome> {
        let collection = &self
            .permitted(access, collection, ShareRights::Write)
            .await?;
        let account = collection.account;
        check_dav_name(&write.name)?;
        let new = NewDavObject {
            etag: resource_etag(write.data.as_bytes()),
            name: write.name,
            uid: write.uid,
            component: write.component,
            starts_at: write.starts_at,
            ends_at: write.ends_at,
            recurring: write.recurring,
            data: write.data,
        };
        let size = new.data.len() as u64;
        let outcome = self
            .store
            .put_object(account, collection.id, new, condition)
            .await?;
        let (operation, object) = match &outcome {
            PutOutcome::Created(o) => (Operation::Create, o),
            PutOutcome::Replaced(o) => (Operation::Modify, o),
        };
        self.record(
            access,
            Event::new(operation, Some(account))
                .container(container_name(collection))
                .objects(vec![object.id.0])
                .bytes(size),
        )
        .await?;
        Ok(outcome)
    }

    /// Deletes a resource of a collection of the caller's if `condition` holds.
    pub async fn dav_delete(
        &self,
        access: &Access,
        collection: &Collection,
        name: &str,
        condition: WriteCondition,
    ) -> CoreResult<DavObject> {
        let collection = &self
            .permitted(access, collection, ShareRights::Write)
            .await?;
        let account = collection.account;
        let gone = self
            .store
            .delete_object(account, collection.id, name, condition)
            .await?;
        self.record(
            access,
            Event::new(Operation::Delete, Some(account))
                .container(container_name(collection))
                .objects(vec![gone.id.0]),
        )
        .await?;
        Ok(gone)
    }

    /// What changed in a collection after `since` (RFC 6578); `None` for
    /// a token the collection cannot have given. Names and entity tags
    /// only: recorded as a listing.
    pub async fn dav_changes(
        &self,
        access: &Access,
        collection: &Collection,
        since: u64,
    ) -> CoreResult<Option<CollectionChanges>> {
        let collection = &self
            .permitted(access, collection, ShareRights::Read)
            .await?;
        let account = collection.account;
        let changes = self
            .store
            .collection_changes(account, collection.id, since)
            .await?;
        if let Some(c) = &changes {
            self.record_dav_read(access, account, collection, &c.changed, false)
                .await?;
        }
        Ok(changes)
    }
}
