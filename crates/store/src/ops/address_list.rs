//! The organisation's address list: profiles of accounts and groups, and
//! contacts of the organisation that are not accounts, by domain.

use std::collections::HashMap;

use async_trait::async_trait;

use crate::sql::{Backend, Size, SqlStore, params};
use crate::*;

/// The address list of a domain.
#[async_trait]
pub trait AddressListStore: Send + Sync + 'static {
    /// Sets what the address list shows of a principal.
    async fn set_profile(&self, principal: PrincipalId, profile: Profile) -> Result<()>;
    /// The principals of a domain, by local part, each with its profile.
    async fn address_list_members(&self, domain: DomainId) -> Result<Vec<(Principal, Profile)>>;
    /// Adds a contact to a domain's list; [`StoreError::AlreadyExists`]
    /// if one with its UID is there.
    async fn add_org_contact(&self, domain: DomainId, new: NewOrgContact) -> Result<OrgContact>;
    /// A domain's contacts, by name.
    async fn org_contacts(&self, domain: DomainId) -> Result<Vec<OrgContact>>;
    /// Removes a contact by UID; [`StoreError::NotFound`] if there is none.
    async fn remove_org_contact(&self, domain: DomainId, uid: &str) -> Result<()>;
}

#[async_trait]
impl<B: Backend> AddressListStore for SqlStore<B> {
    async fn set_profile(&self, principal: PrincipalId, profile: Profile) -> Result<()> {
        self.write_one(move |c| {
            Box::pin(async move {
                c.execute(
                    "INSERT INTO directory_profiles (principal_id, title, department, phone, office)
                     VALUES ($1, $2, $3, $4, $5)
                     ON CONFLICT (principal_id) DO UPDATE SET title = $2, department = $3,
                         phone = $4, office = $5",
                    params![
                        principal.0,
                        profile.title.as_str(),
                        profile.department.as_str(),
                        profile.phone.as_str(),
                        profile.office.as_str()
                    ],
                )
                .await?;
                Ok(())
            })
        })
        .await
    }

    async fn address_list_members(&self, domain: DomainId) -> Result<Vec<(Principal, Profile)>> {
        self.read(Size::Many, move |c| {
            Box::pin(async move {
                let members = super::directory::query_principals(
                    c,
                    "WHERE p.domain_id = $1 ORDER BY p.local_part",
                    params![domain.0],
                )
                .await?;
                let mut profiles: HashMap<i64, Profile> = HashMap::new();
                for mut r in c
                    .query(
                        "SELECT dp.principal_id, dp.title, dp.department, dp.phone, dp.office
                         FROM directory_profiles dp JOIN principals p ON p.id = dp.principal_id
                         WHERE p.domain_id = $1",
                        params![domain.0],
                    )
                    .await?
                {
                    profiles.insert(
                        r.int(0)?,
                        Profile {
                            title: r.text(1)?,
                            department: r.text(2)?,
                            phone: r.text(3)?,
                            office: r.text(4)?,
                        },
                    );
                }
                Ok(members
                    .into_iter()
                    .map(|p| {
                        let profile = profiles.remove(&p.id.0).unwrap_or_default();
                        (p, profile)
                    })
                    .collect())
            })
        })
        .await
    }

    async fn add_org_contact(&self, domain: DomainId, new: NewOrgContact) -> Result<OrgContact> {
        self.write_one(move |c| {
            Box::pin(async move {
                let row = c
                    .query_opt(
                        "INSERT INTO org_contacts (domain_id, uid, display_name, email, data, created_at)
                         VALUES ($1, $2, $3, $4, $5, $6)
                         ON CONFLICT (domain_id, uid) DO NOTHING RETURNING id",
                        params![
                            domain.0,
                            new.uid.as_str(),
                            new.display_name.as_str(),
                            new.email.as_str(),
                            new.data.as_str(),
                            now_millis()
                        ],
                    )
                    .await?;
                match row {
                    Some(r) => Ok(OrgContact {
                        id: r.int(0)?,
                        uid: new.uid,
                        display_name: new.display_name,
                        email: new.email,
                        data: new.data,
                    }),
                    None => Err(StoreError::AlreadyExists(format!("contact {:?}", new.uid))),
                }
            })
        })
        .await
    }

    async fn org_contacts(&self, domain: DomainId) -> Result<Vec<OrgContact>> {
        self.read(Size::Many, move |c| {
            Box::pin(async move {
                c.query(
                    "SELECT id, uid, display_name, email, data FROM org_contacts
                     WHERE domain_id = $1 ORDER BY display_name, uid",
                    params![domain.0],
                )
                .await?
                .into_iter()
                .map(|mut r| {
                    Ok(OrgContact {
                        id: r.int(0)?,
                        uid: r.text(1)?,
                        display_name: r.text(2)?,
                        email: r.text(3)?,
                        data: r.text(4)?,
                    })
                })
                .collect()
            })
        })
        .await
    }

    async fn remove_org_contact(&self, domain: DomainId, uid: &str) -> Result<()> {
        let uid = uid.to_owned();
        self.write_one(move |c| {
            Box::pin(async move {
                let n = c
                    .execute(
                        "DELETE FROM org_contacts WHERE domain_id = $1 AND uid = $2",
                        params![domain.0, uid.as_str()],
                    )
                    .await?;
                if n == 0 {
                    return Err(StoreError::NotFound {
                        kind: "contact",
                        name: uid,
                    });
                }
                Ok(())
            })
        })
        .await
    }
}
