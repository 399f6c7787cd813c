//! Calendars and address books of an account and their resources
//! (iCalendar objects, vCards): create, read, write with preconditions,
//! delete as tombstones, and what changed since a sync token.

use async_trait::async_trait;

use crate::sql::{Backend, Conn, Row, Size, SqlStore, params};
use crate::*;

/// Calendars, address books and their resources.
#[async_trait]
pub trait CollectionStore: Send + Sync + 'static {
    /// Creates a collection in an account; fails with
    /// [`StoreError::AlreadyExists`] if the account has one of that kind and name.
    async fn create_collection(
        &self,
        account: PrincipalId,
        new: NewCollection,
    ) -> Result<Collection>;
    /// Lists an account's collections of a kind, by name.
    async fn list_collections(
        &self,
        account: PrincipalId,
        kind: CollectionKind,
    ) -> Result<Vec<Collection>>;
    /// Finds an account's collection by kind and name.
    async fn find_collection(
        &self,
        account: PrincipalId,
        kind: CollectionKind,
        name: &str,
    ) -> Result<Option<Collection>>;
    /// Changes a collection's properties; returns it as it is now.
    async fn update_collection(
        &self,
        account: PrincipalId,
        id: CollectionId,
        patch: CollectionPatch,
    ) -> Result<Collection>;
    /// Deletes a collection with its resources and their change log.
    async fn delete_collection(&self, account: PrincipalId, id: CollectionId) -> Result<()>;
    /// Reads resources of a collection by name, in the order asked, with
    /// their content; names that do not exist are left out.
    async fn get_objects(
        &self,
        account: PrincipalId,
        collection: CollectionId,
        names: &[String],
    ) -> Result<Vec<DavObject>>;
    /// The live resources of a collection that may match `filter`, by name;
    /// with content where `with_data`.
    async fn find_objects(
        &self,
        account: PrincipalId,
        collection: CollectionId,
        filter: ObjectFilter,
        with_data: bool,
    ) -> Result<Vec<DavObject>>;
    /// Stores a resource if `condition` holds (else
    /// [`StoreError::PreconditionFailed`]) and no other resource of the
    /// collection has its UID (else [`StoreError::UidInUse`]).
    async fn put_object(
        &self,
        account: PrincipalId,
        collection: CollectionId,
        new: NewDavObject,
        condition: WriteCondition,
    ) -> Result<PutOutcome>;
    /// Deletes a resource if `condition` holds; returns it as it was,
    /// without content. It stays as a tombstone for sync-collection.
    async fn delete_object(
        &self,
        account: PrincipalId,
        collection: CollectionId,
        name: &str,
        condition: WriteCondition,
    ) -> Result<DavObject>;
    /// Shares a collection of `owner` with a principal (an account or a
    /// group), replacing an earlier share with that principal.
    async fn share_collection(
        &self,
        owner: PrincipalId,
        collection: CollectionId,
        grantee: PrincipalId,
        rights: ShareRights,
    ) -> Result<()>;
    /// Ends a share; [`StoreError::NotFound`] if there was none.
    async fn unshare_collection(
        &self,
        owner: PrincipalId,
        collection: CollectionId,
        grantee: PrincipalId,
    ) -> Result<()>;
    /// The shares of a collection of `owner`: grantee and rights.
    async fn collection_shares(
        &self,
        owner: PrincipalId,
        collection: CollectionId,
    ) -> Result<Vec<(PrincipalId, ShareRights)>>;
    /// The collections of a kind shared with an account, directly or
    /// through a group it is a member of, with the greatest right.
    async fn shared_with(
        &self,
        account: PrincipalId,
        kind: CollectionKind,
    ) -> Result<Vec<SharedCollection>>;
    /// What changed in a collection after `since` (a MODSEQ it returned
    /// earlier; 0 for everything); `None` when `since` is not one the
    /// collection can have given (RFC 6578 §3.2 valid-sync-token).
    async fn collection_changes(
        &self,
        account: PrincipalId,
        collection: CollectionId,
        since: u64,
    ) -> Result<Option<CollectionChanges>>;
}

const COLLECTION_COLUMNS: &str =
    "id, account_id, kind, name, display_name, description, color, components, highest_modseq";

fn collection_from(r: &mut Row) -> Result<Collection> {
    let kind = r.str(2)?;
    let kind = CollectionKind::parse(kind)
        .ok_or_else(|| StoreError::Corrupt(format!("unknown collection kind {kind:?}")))?;
    let components = r.text(7)?;
    Ok(Collection {
        id: CollectionId(r.int(0)?),
        account: PrincipalId(r.int(1)?),
        kind,
        name: r.text(3)?,
        display_name: r.text(4)?,
        description: r.text(5)?,
        color: r.text(6)?,
        components: components
            .split(',')
            .filter(|c| !c.is_empty())
            .map(str::to_owned)
            .collect(),
        highest_modseq: r.uint(8)?,
        dead_props: Vec::new(),
    })
}

/// Fills in the dead properties of collections just read.
async fn with_dead_props(c: &mut dyn Conn, collections: &mut [Collection]) -> Result<()> {
    for col in collections.iter_mut() {
        col.dead_props = c
            .query(
                "SELECT ns, name, value FROM dav_collection_props
                 WHERE collection_id = $1 ORDER BY ns, name",
                params![col.id.0],
            )
            .await?
            .into_iter()
            .map(|mut r| {
                Ok(DeadProp {
                    ns: r.text(0)?,
                    name: r.text(1)?,
                    value: r.text(2)?,
                })
            })
            .collect::<Result<_>>()?;
    }
    Ok(())
}

/// The columns of a resource without its content; `data` may follow as the
/// next column.
const OBJECT_COLUMNS: &str =
    "id, name, uid, etag, component, size, modseq, starts_at, ends_at, recurring, updated_at";

fn object_from(r: &mut Row, with_data: bool) -> Result<DavObject> {
    Ok(DavObject {
        id: DavObjectId(r.int(0)?),
        name: r.text(1)?,
        uid: r.text(2)?,
        etag: r.text(3)?,
        component: r.text(4)?,
        size: r.uint(5)?,
        modseq: r.uint(6)?,
        starts_at: r.opt_int(7)?,
        ends_at: r.opt_int(8)?,
        recurring: r.int(9)? != 0,
        updated_at: r.int(10)?,
        data: if with_data { Some(r.text(11)?) } else { None },
    })
}

fn rights_from(s: &str) -> Result<ShareRights> {
    ShareRights::parse(s).ok_or_else(|| StoreError::Corrupt(format!("unknown share rights {s:?}")))
}

fn no_collection(id: CollectionId) -> StoreError {
    StoreError::NotFound {
        kind: "collection",
        name: id.to_string(),
    }
}

fn no_object(name: &str) -> StoreError {
    StoreError::NotFound {
        kind: "resource",
        name: name.to_owned(),
    }
}

/// Allocates the collection's next MODSEQ, checking that it belongs to
/// `account`; the update locks the row until the transaction ends, which
/// orders concurrent writes to one collection. Returns (modseq, kind).
async fn next_modseq(
    c: &mut dyn Conn,
    account: PrincipalId,
    collection: CollectionId,
) -> Result<(i64, String)> {
    let mut r = c
        .query_opt(
            "UPDATE dav_collections SET highest_modseq = highest_modseq + 1
             WHERE id = $1 AND account_id = $2 RETURNING highest_modseq, kind",
            params![collection.0, account.0],
        )
        .await?
        .ok_or_else(|| no_collection(collection))?;
    Ok((r.int(0)?, r.text(1)?))
}

/// Checks that a collection belongs to `account`; returns its MODSEQ.
async fn collection_in(
    c: &mut dyn Conn,
    account: PrincipalId,
    collection: CollectionId,
) -> Result<u64> {
    c.query_opt(
        "SELECT highest_modseq FROM dav_collections WHERE id = $1 AND account_id = $2",
        params![collection.0, account.0],
    )
    .await?
    .ok_or_else(|| no_collection(collection))?
    .uint(0)
}

/// Whether a write's precondition holds against the live resource's
/// entity tag (`None`: there is none). RFC 7232 §3.1, §3.2.
fn condition_holds(condition: &WriteCondition, live_etag: Option<&str>) -> bool {
    match condition {
        WriteCondition::Any => true,
        WriteCondition::Exists => live_etag.is_some(),
        WriteCondition::Absent => live_etag.is_none(),
        WriteCondition::Matches(etag) => live_etag == Some(etag.as_str()),
    }
}

async fn log_change(
    c: &mut dyn Conn,
    account: PrincipalId,
    kind: &str,
    collection: CollectionId,
    modseq: i64,
    object: i64,
    change: &str,
) -> Result<()> {
    c.execute(
        "INSERT INTO changes (account_id, collection_kind, collection_id, modseq, object_id, uid, kind, at)
         VALUES ($1, $2, $3, $4, $5, 0, $6, $7)",
        params![account.0, kind, collection.0, modseq, object, change, now_millis()],
    )
    .await?;
    Ok(())
}

#[async_trait]
impl<B: Backend> CollectionStore for SqlStore<B> {
    async fn create_collection(
        &self,
        account: PrincipalId,
        new: NewCollection,
    ) -> Result<Collection> {
        self.write_one(move |c| {
            Box::pin(async move {
                let row = c
                    .query_opt(
                        &format!(
                            "INSERT INTO dav_collections
                                 (account_id, kind, name, display_name, description, color, components, created_at)
                             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
                             ON CONFLICT (account_id, kind, name) DO NOTHING
                             RETURNING {COLLECTION_COLUMNS}"
                        ),
                        params![
                            account.0,
                            new.kind.as_str(),
                            new.name.as_str(),
                            new.display_name.as_str(),
                            new.description.as_str(),
                            new.color.as_str(),
                            new.components.join(","),
                            now_millis(),
                        ],
                    )
                    .await?;
                match row {
                    Some(mut r) => collection_from(&mut r),
                    None => Err(StoreError::AlreadyExists(format!(
                        "{} {:?}",
                        new.kind, new.name
                    ))),
                }
            })
        })
        .await
    }

    async fn list_collections(
        &self,
        account: PrincipalId,
        kind: CollectionKind,
    ) -> Result<Vec<Collection>> {
        self.read(Size::Few, move |c| {
            Box::pin(async move {
                let mut found = c
                    .query(
                        &format!(
                            "SELECT {COLLECTION_COLUMNS} FROM dav_collections
                             WHERE account_id = $1 AND kind = $2 ORDER BY name"
                        ),
                        params![account.0, kind.as_str()],
                    )
                    .await?
                    .iter_mut()
                    .map(collection_from)
                    .collect::<Result<Vec<_>>>()?;
                with_dead_props(c, &mut found).await?;
                Ok(found)
            })
        })
        .await
    }

    async fn find_collection(
        &self,
        account: PrincipalId,
        kind: CollectionKind,
        name: &str,
    ) -> Result<Option<Collection>> {
        let name = name.to_owned();
        self.read(Size::Few, move |c| {
            let name = name.clone();
            Box::pin(async move {
                let mut found = c
                    .query_opt(
                        &format!(
                            "SELECT {COLLECTION_COLUMNS} FROM dav_collections
                             WHERE account_id = $1 AND kind = $2 AND name = $3"
                        ),
                        params![account.0, kind.as_str(), name],
                    )
                    .await?
                    .as_mut()
                    .map(collection_from)
                    .transpose()?;
                if let Some(col) = found.as_mut() {
                    with_dead_props(c, std::slice::from_mut(col)).await?;
                }
                Ok(found)
            })
        })
        .await
    }

    async fn update_collection(
        &self,
        account: PrincipalId,
        id: CollectionId,
        patch: CollectionPatch,
    ) -> Result<Collection> {
        self.write(move |c| {
            Box::pin(async move {
                // A property change is a change of the collection: its
                // CTag moves, so clients that poll it see the new name.
                let mut updated = c
                    .query_opt(
                        &format!(
                            "UPDATE dav_collections SET
                                 display_name = COALESCE($3, display_name),
                                 description = COALESCE($4, description),
                                 color = COALESCE($5, color),
                                 highest_modseq = highest_modseq + 1
                             WHERE id = $1 AND account_id = $2
                             RETURNING {COLLECTION_COLUMNS}"
                        ),
                        params![
                            id.0,
                            account.0,
                            patch.display_name,
                            patch.description,
                            patch.color
                        ],
                    )
                    .await?
                    .as_mut()
                    .map(collection_from)
                    .transpose()?
                    .ok_or_else(|| no_collection(id))?;
                for (ns, name) in &patch.remove_props {
                    c.execute(
                        "DELETE FROM dav_collection_props
                         WHERE collection_id = $1 AND ns = $2 AND name = $3",
                        params![id.0, ns.as_str(), name.as_str()],
                    )
                    .await?;
                }
                for p in &patch.set_props {
                    c.execute(
                        "INSERT INTO dav_collection_props (collection_id, ns, name, value)
                         VALUES ($1, $2, $3, $4)
                         ON CONFLICT (collection_id, ns, name) DO UPDATE SET value = $4",
                        params![id.0, p.ns.as_str(), p.name.as_str(), p.value.as_str()],
                    )
                    .await?;
                }
                with_dead_props(c, std::slice::from_mut(&mut updated)).await?;
                Ok(updated)
            })
        })
        .await
    }

    async fn delete_collection(&self, account: PrincipalId, id: CollectionId) -> Result<()> {
        self.write(move |c| {
            Box::pin(async move {
                let (_, kind) = next_modseq(c, account, id).await?;
                c.execute(
                    "DELETE FROM changes WHERE collection_kind = $1 AND collection_id = $2",
                    params![kind, id.0],
                )
                .await?;
                c.execute("DELETE FROM dav_collections WHERE id = $1", params![id.0])
                    .await?;
                Ok(())
            })
        })
        .await
    }

    async fn get_objects(
        &self,
        account: PrincipalId,
        collection: CollectionId,
        names: &[String],
    ) -> Result<Vec<DavObject>> {
        let names = names.to_vec();
        self.read(Size::Few, move |c| {
            let names = names.clone();
            Box::pin(async move {
                collection_in(c, account, collection).await?;
                let mut found = Vec::with_capacity(names.len());
                for name in &names {
                    if let Some(mut r) = c
                        .query_opt(
                            &format!(
                                "SELECT {OBJECT_COLUMNS}, data FROM dav_objects
                                 WHERE collection_id = $1 AND name = $2 AND deleted = 0"
                            ),
                            params![collection.0, name.as_str()],
                        )
                        .await?
                    {
                        found.push(object_from(&mut r, true)?);
                    }
                }
                Ok(found)
            })
        })
        .await
    }

    async fn find_objects(
        &self,
        account: PrincipalId,
        collection: CollectionId,
        filter: ObjectFilter,
        with_data: bool,
    ) -> Result<Vec<DavObject>> {
        self.read(Size::Many, move |c| {
            let filter = filter.clone();
            Box::pin(async move {
                collection_in(c, account, collection).await?;
                let data = if with_data { ", data" } else { "" };
                // Resources without known bounds (NULL) always pass: the
                // caller decides on them from their content. `>=`: an
                // instant at the range's start is in it (RFC 4791 §9.9).
                let mut out = c
                    .query(
                        &format!(
                            "SELECT {OBJECT_COLUMNS}{data} FROM dav_objects
                             WHERE collection_id = $1 AND deleted = 0
                               AND (CAST($2 AS TEXT) IS NULL OR component = $2)
                               AND (CAST($3 AS BIGINT) IS NULL OR ends_at IS NULL OR ends_at >= $3)
                               AND (CAST($4 AS BIGINT) IS NULL OR starts_at IS NULL OR starts_at < $4)"
                        ),
                        params![collection.0, filter.component, filter.start, filter.end],
                    )
                    .await?
                    .iter_mut()
                    .map(|r| object_from(r, with_data))
                    .collect::<Result<Vec<_>>>()?;
                out.sort_by(|a, b| a.name.cmp(&b.name));
                Ok(out)
            })
        })
        .await
    }

    async fn put_object(
        &self,
        account: PrincipalId,
        collection: CollectionId,
        new: NewDavObject,
        condition: WriteCondition,
    ) -> Result<PutOutcome> {
        self.write(move |c| {
            Box::pin(async move {
                let (modseq, kind) = next_modseq(c, account, collection).await?;
                let existing = c
                    .query_opt(
                        "SELECT id, etag, deleted FROM dav_objects
                         WHERE collection_id = $1 AND name = $2",
                        params![collection.0, new.name.as_str()],
                    )
                    .await?;
                let (existing_id, live_etag) = match existing {
                    Some(mut r) => {
                        let live = r.int(2)? == 0;
                        (Some(r.int(0)?), live.then(|| r.text(1)).transpose()?)
                    }
                    None => (None, None),
                };
                if !condition_holds(&condition, live_etag.as_deref()) {
                    return Err(StoreError::PreconditionFailed(new.name));
                }
                // RFC 4791 §5.3.2.1 no-uid-conflict, RFC 6352 §6.3.2.1.
                if let Some(mut r) = c
                    .query_opt(
                        "SELECT name FROM dav_objects
                         WHERE collection_id = $1 AND uid = $2 AND deleted = 0 AND name <> $3",
                        params![collection.0, new.uid.as_str(), new.name.as_str()],
                    )
                    .await?
                {
                    return Err(StoreError::UidInUse { name: r.text(0)? });
                }
                let size = new.data.len();
                let now = now_millis();
                let id = match existing_id {
                    Some(id) => {
                        c.execute(
                            "UPDATE dav_objects SET uid = $2, etag = $3, component = $4,
                                 starts_at = $5, ends_at = $6, data = $7, size = $8, modseq = $9,
                                 deleted = 0, updated_at = $10, recurring = $11
                             WHERE id = $1",
                            params![
                                id,
                                new.uid.as_str(),
                                new.etag.as_str(),
                                new.component.as_str(),
                                new.starts_at,
                                new.ends_at,
                                new.data.as_str(),
                                size,
                                modseq,
                                now,
                                i64::from(new.recurring)
                            ],
                        )
                        .await?;
                        id
                    }
                    None => c
                        .query_one(
                            "INSERT INTO dav_objects (account_id, collection_id, name, uid, etag,
                                 component, starts_at, ends_at, data, size, modseq, updated_at, recurring)
                             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)
                             RETURNING id",
                            params![
                                account.0,
                                collection.0,
                                new.name.as_str(),
                                new.uid.as_str(),
                                new.etag.as_str(),
                                new.component.as_str(),
                                new.starts_at,
                                new.ends_at,
                                new.data.as_str(),
                                size,
                                modseq,
                                now,
                                i64::from(new.recurring)
                            ],
                        )
                        .await?
                        .int(0)?,
                };
                let replaced = live_etag.is_some();
                let change = if replaced { "modified" } else { "created" };
                log_change(c, account, &kind, collection, modseq, id, change).await?;
                let stored = DavObject {
                    id: DavObjectId(id),
                    name: new.name,
                    uid: new.uid,
                    etag: new.etag,
                    component: new.component,
                    size: size as u64,
                    modseq: modseq as u64,
                    starts_at: new.starts_at,
                    ends_at: new.ends_at,
                    recurring: new.recurring,
                    updated_at: now,
                    data: None,
                };
                Ok(if replaced {
                    PutOutcome::Replaced(stored)
                } else {
                    PutOutcome::Created(stored)
                })
            })
        })
        .await
    }

    async fn delete_object(
        &self,
        account: PrincipalId,
        collection: CollectionId,
        name: &str,
        condition: WriteCondition,
    ) -> Result<DavObject> {
        let name = name.to_owned();
        self.write(move |c| {
            Box::pin(async move {
                let (modseq, kind) = next_modseq(c, account, collection).await?;
                let mut gone = c
                    .query_opt(
                        &format!(
                            "SELECT {OBJECT_COLUMNS} FROM dav_objects
                             WHERE collection_id = $1 AND name = $2 AND deleted = 0"
                        ),
                        params![collection.0, name.as_str()],
                    )
                    .await?
                    .as_mut()
                    .map(|r| object_from(r, false))
                    .transpose()?
                    .ok_or_else(|| no_object(&name))?;
                if !condition_holds(&condition, Some(&gone.etag)) {
                    return Err(StoreError::PreconditionFailed(name));
                }
                c.execute(
                    "UPDATE dav_objects SET deleted = 1, data = '', size = 0, modseq = $2,
                         starts_at = NULL, ends_at = NULL, updated_at = $3
                     WHERE id = $1",
                    params![gone.id.0, modseq, now_millis()],
                )
                .await?;
                log_change(c, account, &kind, collection, modseq, gone.id.0, "removed").await?;
                gone.modseq = modseq as u64;
                Ok(gone)
            })
        })
        .await
    }

    async fn share_collection(
        &self,
        owner: PrincipalId,
        collection: CollectionId,
        grantee: PrincipalId,
        rights: ShareRights,
    ) -> Result<()> {
        self.write(move |c| {
            Box::pin(async move {
                collection_in(c, owner, collection).await?;
                c.execute(
                    "INSERT INTO collection_shares (collection_id, grantee_id, rights)
                     VALUES ($1, $2, $3)
                     ON CONFLICT (collection_id, grantee_id) DO UPDATE SET rights = $3",
                    params![collection.0, grantee.0, rights.as_str()],
                )
                .await?;
                Ok(())
            })
        })
        .await
    }

    async fn unshare_collection(
        &self,
        owner: PrincipalId,
        collection: CollectionId,
        grantee: PrincipalId,
    ) -> Result<()> {
        self.write(move |c| {
            Box::pin(async move {
                collection_in(c, owner, collection).await?;
                let n = c
                    .execute(
                        "DELETE FROM collection_shares WHERE collection_id = $1 AND grantee_id = $2",
                        params![collection.0, grantee.0],
                    )
                    .await?;
                if n == 0 {
                    return Err(StoreError::NotFound {
                        kind: "share",
                        name: format!("{collection} with {grantee}"),
                    });
                }
                Ok(())
            })
        })
        .await
    }

    async fn collection_shares(
        &self,
        owner: PrincipalId,
        collection: CollectionId,
    ) -> Result<Vec<(PrincipalId, ShareRights)>> {
        self.read(Size::Few, move |c| {
            Box::pin(async move {
                collection_in(c, owner, collection).await?;
                c.query(
                    "SELECT grantee_id, rights FROM collection_shares
                     WHERE collection_id = $1 ORDER BY grantee_id",
                    params![collection.0],
                )
                .await?
                .into_iter()
                .map(|r| {
                    let rights = rights_from(r.str(1)?)?;
                    Ok((PrincipalId(r.int(0)?), rights))
                })
                .collect()
            })
        })
        .await
    }

    async fn shared_with(
        &self,
        account: PrincipalId,
        kind: CollectionKind,
    ) -> Result<Vec<SharedCollection>> {
        self.read(Size::Few, move |c| {
            Box::pin(async move {
                let cols = COLLECTION_COLUMNS
                    .split(", ")
                    .map(|col| format!("dc.{col}"))
                    .collect::<Vec<_>>()
                    .join(", ");
                let rows = c
                    .query(
                        &format!(
                            "SELECT {cols}, p.local_part || '@' || d.name, s.rights
                             FROM collection_shares s
                             JOIN dav_collections dc ON dc.id = s.collection_id
                             JOIN principals p ON p.id = dc.account_id
                             JOIN domains d ON d.id = p.domain_id
                             WHERE dc.kind = $2 AND dc.account_id <> $1
                               AND (s.grantee_id = $1 OR s.grantee_id IN
                                    (SELECT group_id FROM group_members WHERE member_id = $1))
                             ORDER BY dc.id"
                        ),
                        params![account.0, kind.as_str()],
                    )
                    .await?;
                let mut out: Vec<SharedCollection> = Vec::new();
                for mut r in rows {
                    let collection = collection_from(&mut r)?;
                    let owner_address = r.text(9)?;
                    let rights = rights_from(r.str(10)?)?;
                    // Shared directly and through a group: the greater right.
                    match out.iter_mut().find(|s| s.collection.id == collection.id) {
                        Some(s) => s.rights = s.rights.max(rights),
                        None => out.push(SharedCollection {
                            collection,
                            owner_address,
                            rights,
                        }),
                    }
                }
                for shared in out.iter_mut() {
                    with_dead_props(c, std::slice::from_mut(&mut shared.collection)).await?;
                }
                Ok(out)
            })
        })
        .await
    }

    async fn collection_changes(
        &self,
        account: PrincipalId,
        collection: CollectionId,
        since: u64,
    ) -> Result<Option<CollectionChanges>> {
        self.read(Size::Many, move |c| {
            Box::pin(async move {
                let highest = collection_in(c, account, collection).await?;
                if since > highest {
                    return Ok(None);
                }
                let rows = if since == 0 {
                    c.query(
                        &format!(
                            "SELECT {OBJECT_COLUMNS}, deleted FROM dav_objects
                             WHERE collection_id = $1 AND deleted = 0"
                        ),
                        params![collection.0],
                    )
                    .await?
                } else {
                    // The change log names what changed; each resource's
                    // row says what it is now.
                    c.query(
                        &format!(
                            "SELECT {OBJECT_COLUMNS}, deleted FROM dav_objects
                             WHERE id IN (SELECT object_id FROM changes
                                          WHERE collection_kind IN ('calendar', 'addressbook')
                                            AND collection_id = $1 AND modseq > $2)"
                        ),
                        params![collection.0, since],
                    )
                    .await?
                };
                let mut changes = CollectionChanges {
                    highest_modseq: highest,
                    changed: Vec::new(),
                    removed: Vec::new(),
                };
                for mut r in rows {
                    if r.int(11)? == 0 {
                        changes.changed.push(object_from(&mut r, false)?);
                    } else {
                        changes.removed.push(r.text(1)?);
                    }
                }
                changes.changed.sort_by(|a, b| a.name.cmp(&b.name));
                changes.removed.sort();
                Ok(Some(changes))
            })
        })
        .await
    }
}
