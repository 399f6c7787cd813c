//! Who asks, and the reads and checks every method needs: the caller's
//! own, shared and directory collections, and their resources.

use crate::error::DavError;
use crate::xml::XmlLimits;
use crate::{DavConfig, directory};
use rampart_core::model::{
    Collection, CollectionChanges, CollectionKind, DavObject, ObjectFilter, ShareRights,
    SharedCollection,
};
use rampart_core::{Access, Core};

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
