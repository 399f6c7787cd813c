//! The organisation's address list (Exchange's global address list): every
//! user and group of the caller's domain with their profile, and the
//! organisation's own contacts. Administrators fill it; every account of
//! the domain reads it, never another domain's, and each read is recorded
//! with the entries it returned.

use rampart_store::{NewOrgContact, OrgContact, PrincipalId, PrincipalKind, Profile};

use crate::{Access, Core, CoreError, CoreResult, Event, Operation};

/// One person or group in the address list.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ListedPrincipal {
    /// Internal id.
    pub id: PrincipalId,
    /// User or group.
    pub kind: PrincipalKind,
    /// The primary address.
    pub address: String,
    /// The name shown.
    pub display_name: String,
    /// Title, department, phone, office.
    pub profile: Profile,
}

/// A domain's address list as one account sees it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AddressList {
    /// The domain (the organisation).
    pub domain: String,
    /// A hash of everything in it: changes whenever an entry does.
    pub version: u64,
    /// Its users and groups (disabled accounts left out), by address.
    pub principals: Vec<ListedPrincipal>,
    /// Its contacts that are not accounts, by name.
    pub contacts: Vec<OrgContact>,
}

impl Core {
    /// Sets what the address list shows of a user or group (administrators).
    pub async fn set_profile(
        &self,
        access: &Access,
        address: &str,
        profile: Profile,
    ) -> CoreResult<()> {
        self.require_admin(access).await?;
        let p = self.principal_row(address).await?;
        self.store.set_profile(p.id, profile).await?;
        self.admin_event(access, format!("profile {}", p.address()), vec![p.id.0])
            .await
    }

    /// What the address list shows of a user or group (administrators).
    pub async fn profile(&self, access: &Access, address: &str) -> CoreResult<Profile> {
        self.require_admin(access).await?;
        let p = self.principal_row(address).await?;
        Ok(self
            .store
            .address_list_members(p.domain_id)
            .await?
            .into_iter()
            .find(|(m, _)| m.id == p.id)
            .map(|(_, profile)| profile)
            .unwrap_or_default())
    }

    /// Adds a contact to a domain's address list (administrators).
    pub async fn add_org_contact(
        &self,
        access: &Access,
        domain: &str,
        contact: NewOrgContact,
    ) -> CoreResult<OrgContact> {
        self.require_admin(access).await?;
        let d = self.domain_of(domain).await?;
        if contact.uid.trim().is_empty() || contact.display_name.trim().is_empty() {
            return Err(CoreError::Invalid(
                "a contact needs a UID and a name".into(),
            ));
        }
        let added = self.store.add_org_contact(d.id, contact).await?;
        self.admin_event(
            access,
            format!("contact add {} {}", d.name, added.uid),
            vec![added.id],
        )
        .await?;
        Ok(added)
    }

    /// A domain's contacts (administrators).
    pub async fn org_contacts(&self, access: &Access, domain: &str) -> CoreResult<Vec<OrgContact>> {
        self.require_admin(access).await?;
        let d = self.domain_of(domain).await?;
        let contacts = self.store.org_contacts(d.id).await?;
        self.record(
            access,
            Event::new(Operation::DirectoryQuery, None)
                .container(format!("directory-contacts:{}", d.name))
                .objects(contacts.iter().map(|c| c.id).collect()),
        )
        .await?;
        Ok(contacts)
    }

    /// Removes a contact from a domain's address list (administrators).
    pub async fn remove_org_contact(
        &self,
        access: &Access,
        domain: &str,
        uid: &str,
    ) -> CoreResult<()> {
        self.require_admin(access).await?;
        let d = self.domain_of(domain).await?;
        self.store.remove_org_contact(d.id, uid).await?;
        self.admin_event(access, format!("contact remove {} {uid}", d.name), vec![])
            .await
    }

    /// The caller's domain and the entries of its address list, unrecorded.
    async fn own_address_list(&self, access: &Access) -> CoreResult<AddressList> {
        let account = access
            .account()
            .ok_or_else(|| CoreError::Denied("only an account reads the address list".into()))?;
        let own = self
            .store
            .get_principal(account)
            .await?
            .ok_or_else(|| CoreError::NotFound {
                kind: "account",
                name: account.to_string(),
            })?;
        let principals: Vec<ListedPrincipal> = self
            .store
            .address_list_members(own.domain_id)
            .await?
            .into_iter()
            .filter(|(p, _)| !p.disabled)
            .map(|(p, profile)| ListedPrincipal {
                id: p.id,
                kind: p.kind,
                address: p.address(),
                display_name: p.display_name.clone(),
                profile,
            })
            .collect();
        let contacts = self.store.org_contacts(own.domain_id).await?;
        let mut hasher = blake3::Hasher::new();
        for p in &principals {
            for field in [
                p.address.as_str(),
                p.display_name.as_str(),
                if p.kind == PrincipalKind::Group {
                    "group"
                } else {
                    "user"
                },
                p.profile.title.as_str(),
                p.profile.department.as_str(),
                p.profile.phone.as_str(),
                p.profile.office.as_str(),
            ] {
                hasher.update(field.as_bytes());
                hasher.update(&[0]);
            }
        }
        for c in &contacts {
            hasher.update(&c.id.to_le_bytes());
            hasher.update(c.data.as_bytes());
            hasher.update(&[0]);
        }
        let digest = hasher.finalize();
        let mut first = [0u8; 8];
        first.copy_from_slice(&digest.as_bytes()[..8]);
        // Positive, so that it is a valid MODSEQ-like token everywhere.
        let version = (u64::from_le_bytes(first) >> 2).max(1);
        Ok(AddressList {
            domain: own.domain,
            version,
            principals,
            contacts,
        })
    }

    /// The caller's domain and the version of its address list (a hash
    /// of every entry), without any entry: what a client polling for
    /// changes needs. Recorded as a listing without user data.
    pub async fn address_list_version(&self, access: &Access) -> CoreResult<(String, u64)> {
        let list = self.own_address_list(access).await?;
        self.record(
            access,
            Event::new(Operation::ListContainers, None)
                .container(format!("directory:{}", list.domain))
                .metadata(),
        )
        .await?;
        Ok((list.domain, list.version))
    }

    /// The address list of the caller's own domain. Recorded as directory
    /// queries naming every principal and contact returned, durably before
    /// they are.
    pub async fn address_list(&self, access: &Access) -> CoreResult<AddressList> {
        self.address_list_where(access, |_| true, |_| true).await
    }

    /// Some entries of the caller's address list: the principals whose
    /// local parts and the contacts whose ids are named (a client fetching
    /// a few cards), recorded as reads of those alone.
    pub async fn address_list_entries(
        &self,
        access: &Access,
        local_parts: &[String],
        contact_ids: &[i64],
    ) -> CoreResult<AddressList> {
        self.address_list_where(
            access,
            |p| {
                let local = p.address.split('@').next().unwrap_or_default();
                local_parts.iter().any(|l| l.eq_ignore_ascii_case(local))
            },
            |c| contact_ids.contains(&c.id),
        )
        .await
    }

    async fn address_list_where(
        &self,
        access: &Access,
        principal: impl Fn(&ListedPrincipal) -> bool,
        contact: impl Fn(&OrgContact) -> bool,
    ) -> CoreResult<AddressList> {
        let mut list = self.own_address_list(access).await?;
        list.principals.retain(|p| principal(p));
        list.contacts.retain(|c| contact(c));
        self.record(
            access,
            Event::new(Operation::DirectoryQuery, None)
                .container(format!("directory:{}", list.domain))
                .objects(list.principals.iter().map(|p| p.id.0).collect()),
        )
        .await?;
        if !list.contacts.is_empty() {
            self.record(
                access,
                Event::new(Operation::DirectoryQuery, None)
                    .container(format!("directory-contacts:{}", list.domain))
                    .objects(list.contacts.iter().map(|c| c.id).collect()),
            )
            .await?;
        }
        Ok(list)
    }
}
