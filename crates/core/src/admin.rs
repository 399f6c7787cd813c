//! Administration of domains, accounts, aliases and groups, and recipient
//! resolution. Administrators manage principals; they never read their data
//! through these calls (rule R6).

use crate::DirectoryEntry;
use std::collections::BTreeSet;

use rampart_store::{
    Alias, Domain, MailboxRole, NewMailbox, NewPrincipal, PasswordHash, Principal, PrincipalKind,
    PrincipalUpdate,
};

use crate::auth::check_new_password;
use crate::{
    Access, Actor, Address, Core, CoreError, CoreResult, Event, Operation, normalize_domain,
    random_password,
};

/// What is needed to add a user.
#[derive(Clone)]
pub struct NewUser {
    /// The primary address.
    pub address: String,
    /// Name shown to people; defaults to the local part.
    pub display_name: Option<String>,
    /// The password (checked against the length rules).
    pub password: String,
    /// Quota in bytes; `None` takes the configured default.
    pub quota_bytes: Option<u64>,
    /// Administrator flag.
    pub is_admin: bool,
}

/// The outcome of first-start set-up.
#[derive(Clone)]
pub struct Bootstrap {
    /// The first domain.
    pub domain: String,
    /// The administrator's address.
    pub admin_address: String,
    /// The administrator's password: shown once, never stored in clear.
    pub admin_password: String,
}

// Passwords never reach a log line or a panic message through Debug.
impl std::fmt::Debug for NewUser {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NewUser")
            .field("address", &self.address)
            .field("display_name", &self.display_name)
            .field("password", &"..")
            .field("quota_bytes", &self.quota_bytes)
            .field("is_admin", &self.is_admin)
            .finish()
    }
}

impl std::fmt::Debug for Bootstrap {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Bootstrap")
            .field("domain", &self.domain)
            .field("admin_address", &self.admin_address)
            .field("admin_password", &"..")
            .finish()
    }
}

/// The accounts an address delivers to, after alias and group expansion.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RecipientSet {
    /// Enabled user accounts, deduplicated.
    pub accounts: Vec<Recipient>,
}

/// One account an address delivers to: its id and address, and nothing
/// else of the principal (no password hash leaves core this way).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Recipient {
    /// The account.
    pub id: rampart_store::PrincipalId,
    /// Its primary address.
    pub address: String,
}

const BOOTSTRAP_KEY: &str = "bootstrap_done";

impl Core {
    /// Checks that the caller may administer principals: the local operator,
    /// or an enabled administrator account.
    pub(crate) async fn require_admin(&self, access: &Access) -> CoreResult<()> {
        let allowed = match access.principal() {
            Actor::Operator { .. } => true,
            Actor::Account { id, .. } => self
                .store
                .get_principal(*id)
                .await?
                .is_some_and(|p| p.is_admin && !p.disabled),
            Actor::Service { .. } => false,
        };
        if allowed {
            Ok(())
        } else {
            Err(CoreError::Denied("administrator rights needed".into()))
        }
    }

    pub(crate) async fn admin_event(
        &self,
        access: &Access,
        what: String,
        objects: Vec<i64>,
    ) -> CoreResult<()> {
        self.record(
            access,
            Event::new(Operation::Administer, None)
                .container(what)
                .objects(objects),
        )
        .await
    }

    pub(crate) async fn domain_of(&self, name: &str) -> CoreResult<Domain> {
        let name = normalize_domain(name)?;
        self.store
            .find_domain(&name)
            .await?
            .ok_or_else(|| CoreError::NotFound {
                kind: "domain",
                name: format!("{name} (add it with `rampart domain add {name}`)"),
            })
    }

    /// Finds a principal by its primary address or an alias: administrators,
    /// the server's services, and an account asking about itself; anyone
    /// else is told it does not exist. Recorded as a directory query.
    pub async fn principal_by_address(
        &self,
        access: &Access,
        address: &str,
    ) -> CoreResult<DirectoryEntry> {
        let found = self.principal_row(address).await?;
        let own = access.account() == Some(found.id);
        let allowed = own
            || access.principal().service_role().is_some()
            || self.require_admin(access).await.is_ok();
        if !allowed {
            // The same answer as for an address nobody has: no probing.
            return Err(CoreError::NotFound {
                kind: "account or group",
                name: Address::parse(address)?.to_string(),
            });
        }
        self.record(
            access,
            Event::new(Operation::DirectoryQuery, None)
                .container(address.to_owned())
                .objects(vec![found.id.0])
                .metadata(),
        )
        .await?;
        Ok(found.into())
    }

    /// The row of a principal by its primary address or an alias.
    pub(crate) async fn principal_row(&self, address: &str) -> CoreResult<Principal> {
        let a = Address::parse(address)?;
        self.store
            .find_principal(&a.local_part, &a.domain)
            .await?
            .ok_or_else(|| CoreError::NotFound {
                kind: "account or group",
                name: a.to_string(),
            })
    }

    /// Adds a local domain.
    pub async fn add_domain(&self, access: &Access, name: &str) -> CoreResult<Domain> {
        self.require_admin(access).await?;
        let name = normalize_domain(name)?;
        let domain = self.store.create_domain(&name).await?;
        self.admin_event(access, format!("domain add {name}"), vec![domain.id.0])
            .await?;
        Ok(domain)
    }

    /// Lists local domains.
    pub async fn list_domains(&self, access: &Access) -> CoreResult<Vec<Domain>> {
        self.require_admin(access).await?;
        Ok(self.store.list_domains().await?)
    }

    /// Removes a domain that has no accounts, groups or aliases.
    pub async fn remove_domain(&self, access: &Access, name: &str) -> CoreResult<()> {
        self.require_admin(access).await?;
        let domain = self.domain_of(name).await?;
        self.store
            .delete_domain(domain.id)
            .await
            .map_err(|e| match e {
                rampart_store::StoreError::Conflict(msg) => {
                    CoreError::Invalid(format!("cannot remove {}: {msg}", domain.name))
                }
                other => other.into(),
            })?;
        self.admin_event(
            access,
            format!("domain remove {}", domain.name),
            vec![domain.id.0],
        )
        .await
    }

    /// Adds a user with the standard special-use mailboxes.
    pub async fn add_user(&self, access: &Access, new: NewUser) -> CoreResult<DirectoryEntry> {
        self.require_admin(access).await?;
        let address = Address::parse(&new.address)?;
        check_new_password(&new.password)?;
        let domain = self.domain_of(&address.domain).await?;
        let hash = self.hash_password(new.password).await?;
        let principal = self
            .store
            .create_principal(NewPrincipal {
                kind: PrincipalKind::User,
                domain_id: domain.id,
                local_part: address.local_part.clone(),
                display_name: new
                    .display_name
                    .unwrap_or_else(|| address.local_part.clone()),
                password_hash: Some(hash),
                quota_bytes: new.quota_bytes.unwrap_or(self.config.default_quota_bytes),
                is_admin: new.is_admin,
                mailboxes: MailboxRole::ALL
                    .into_iter()
                    .map(|role| NewMailbox {
                        name: role.default_name().into(),
                        role: Some(role),
                    })
                    .collect(),
            })
            .await
            .map_err(|e| match e {
                rampart_store::StoreError::AlreadyExists(_) => {
                    CoreError::AlreadyExists(format!("address {address}"))
                }
                other => other.into(),
            })?;
        // The default mailboxes are subscribed once, here; CREATE later
        // subscribes nothing by itself (RFC 9051 §6.3.4).
        for role in MailboxRole::ALL {
            self.store
                .set_subscription(principal.id, role.default_name(), true)
                .await?;
        }
        self.admin_event(access, format!("user add {address}"), vec![principal.id.0])
            .await?;
        Ok(principal.into())
    }

    async fn hash_password(&self, password: String) -> CoreResult<PasswordHash> {
        Ok(PasswordHash::new(
            self.hashers.hash(self.config.passwords, password).await?,
        ))
    }

    /// Lists users and groups, of one domain or of all.
    pub async fn list_principals(
        &self,
        access: &Access,
        domain: Option<&str>,
    ) -> CoreResult<Vec<DirectoryEntry>> {
        self.require_admin(access).await?;
        let domain = match domain {
            Some(d) => Some(self.domain_of(d).await?.id),
            None => None,
        };
        Ok(self
            .store
            .list_principals(domain)
            .await?
            .into_iter()
            .map(DirectoryEntry::from)
            .collect())
    }

    pub(crate) async fn user_by_address(&self, address: &str) -> CoreResult<Principal> {
        let p = self.principal_row(address).await?;
        if p.kind != PrincipalKind::User {
            return Err(CoreError::Invalid(format!(
                "{} is a group, not a user",
                p.address()
            )));
        }
        Ok(p)
    }

    /// Sets a user's password.
    pub async fn set_password(
        &self,
        access: &Access,
        address: &str,
        password: String,
    ) -> CoreResult<()> {
        self.require_admin(access).await?;
        check_new_password(&password)?;
        let p = self.user_by_address(address).await?;
        let hash = self.hash_password(password).await?;
        self.store
            .update_principal(
                p.id,
                PrincipalUpdate {
                    password_hash: Some(hash),
                    ..Default::default()
                },
            )
            .await?;
        self.record(
            access,
            Event::new(Operation::CredentialChange, Some(p.id)).container(p.address()),
        )
        .await
    }

    /// Disables or re-enables a user: a disabled user neither logs in nor receives mail.
    pub async fn set_disabled(
        &self,
        access: &Access,
        address: &str,
        disabled: bool,
    ) -> CoreResult<()> {
        self.require_admin(access).await?;
        let p = self.user_by_address(address).await?;
        self.store
            .update_principal(
                p.id,
                PrincipalUpdate {
                    disabled: Some(disabled),
                    ..Default::default()
                },
            )
            .await?;
        let verb = if disabled { "disable" } else { "enable" };
        self.admin_event(access, format!("user {verb} {}", p.address()), vec![p.id.0])
            .await
    }

    /// Changes a user's quota (0 = unlimited).
    pub async fn set_quota(
        &self,
        access: &Access,
        address: &str,
        quota_bytes: u64,
    ) -> CoreResult<()> {
        self.require_admin(access).await?;
        let p = self.user_by_address(address).await?;
        self.store
            .update_principal(
                p.id,
                PrincipalUpdate {
                    quota_bytes: Some(quota_bytes),
                    ..Default::default()
                },
            )
            .await?;
        self.admin_event(
            access,
            format!("user quota {} {quota_bytes}", p.address()),
            vec![p.id.0],
        )
        .await
    }

    /// Removes a user or group and everything it owns.
    pub async fn remove_principal(&self, access: &Access, address: &str) -> CoreResult<()> {
        self.require_admin(access).await?;
        let p = self.principal_row(address).await?;
        let primary = Address::parse(address)?;
        if p.address() != primary.to_string() {
            return Err(CoreError::Invalid(format!(
                "{primary} is an alias of {}: remove the alias with `rampart alias remove {primary}`",
                p.address()
            )));
        }
        self.store.delete_principal(p.id).await?;
        self.admin_event(access, format!("remove {}", p.address()), vec![p.id.0])
            .await
    }

    /// Adds an alias address for a user or group.
    pub async fn add_alias(&self, access: &Access, alias: &str, target: &str) -> CoreResult<()> {
        self.require_admin(access).await?;
        let alias = Address::parse(alias)?;
        let domain = self.domain_of(&alias.domain).await?;
        let target = self.principal_row(target).await?;
        self.store
            .add_alias(domain.id, &alias.local_part, target.id)
            .await
            .map_err(|e| match e {
                rampart_store::StoreError::AlreadyExists(_) => {
                    CoreError::AlreadyExists(format!("address {alias}"))
                }
                other => other.into(),
            })?;
        self.admin_event(
            access,
            format!("alias add {alias} -> {}", target.address()),
            vec![target.id.0],
        )
        .await
    }

    /// Removes an alias address.
    pub async fn remove_alias(&self, access: &Access, alias: &str) -> CoreResult<()> {
        self.require_admin(access).await?;
        let alias = Address::parse(alias)?;
        let domain = self.domain_of(&alias.domain).await?;
        self.store
            .remove_alias(domain.id, &alias.local_part)
            .await
            .map_err(|e| match e {
                rampart_store::StoreError::NotFound { .. } => CoreError::NotFound {
                    kind: "alias",
                    name: alias.to_string(),
                },
                other => other.into(),
            })?;
        self.admin_event(access, format!("alias remove {alias}"), vec![])
            .await
    }

    /// Lists aliases, of one principal or of all.
    pub async fn list_aliases(
        &self,
        access: &Access,
        target: Option<&str>,
    ) -> CoreResult<Vec<Alias>> {
        self.require_admin(access).await?;
        let target = match target {
            Some(t) => Some(self.principal_row(t).await?.id),
            None => None,
        };
        Ok(self.store.list_aliases(target).await?)
    }

    /// Adds a group address.
    pub async fn add_group(
        &self,
        access: &Access,
        address: &str,
        display_name: Option<String>,
    ) -> CoreResult<DirectoryEntry> {
        self.require_admin(access).await?;
        let address = Address::parse(address)?;
        let domain = self.domain_of(&address.domain).await?;
        let group = self
            .store
            .create_principal(NewPrincipal {
                kind: PrincipalKind::Group,
                domain_id: domain.id,
                local_part: address.local_part.clone(),
                display_name: display_name.unwrap_or_else(|| address.local_part.clone()),
                password_hash: None,
                quota_bytes: 0,
                is_admin: false,
                mailboxes: vec![],
            })
            .await
            .map_err(|e| match e {
                rampart_store::StoreError::AlreadyExists(_) => {
                    CoreError::AlreadyExists(format!("address {address}"))
                }
                other => other.into(),
            })?;
        self.admin_event(access, format!("group add {address}"), vec![group.id.0])
            .await?;
        Ok(group.into())
    }

    async fn group_by_address(&self, address: &str) -> CoreResult<Principal> {
        let g = self.principal_row(address).await?;
        if g.kind != PrincipalKind::Group {
            return Err(CoreError::Invalid(format!(
                "{} is a user, not a group",
                g.address()
            )));
        }
        Ok(g)
    }

    /// Adds and removes members of a group; returns the members afterwards.
    pub async fn change_group_members(
        &self,
        access: &Access,
        group: &str,
        add: &[String],
        remove: &[String],
    ) -> CoreResult<Vec<DirectoryEntry>> {
        self.require_admin(access).await?;
        let group = self.group_by_address(group).await?;
        // Resolve every address first, so a typo changes nothing.
        let mut to_add = Vec::new();
        for a in add {
            let p = self.principal_row(a).await?;
            if p.id == group.id {
                return Err(CoreError::Invalid(
                    "a group cannot be a member of itself".into(),
                ));
            }
            to_add.push(p);
        }
        let mut to_remove = Vec::new();
        for a in remove {
            to_remove.push(self.principal_row(a).await?);
        }
        for p in &to_add {
            self.store.add_group_member(group.id, p.id).await?;
        }
        for p in &to_remove {
            self.store.remove_group_member(group.id, p.id).await?;
        }
        if !to_add.is_empty() || !to_remove.is_empty() {
            let ids = to_add.iter().chain(&to_remove).map(|p| p.id.0).collect();
            self.admin_event(access, format!("group members {}", group.address()), ids)
                .await?;
        }
        Ok(self
            .store
            .group_members(group.id)
            .await?
            .into_iter()
            .map(DirectoryEntry::from)
            .collect())
    }

    /// The enabled user accounts an address delivers to, expanding aliases and
    /// (nested) groups; `None` when the address is not local or unknown.
    /// Every lookup is on record (a directory query, as metadata): who
    /// asked for which address, and which accounts it named.
    pub async fn resolve_recipient(
        &self,
        access: &Access,
        address: &Address,
    ) -> CoreResult<Option<RecipientSet>> {
        let found = self.expand_recipient(address).await?;
        let named = found
            .as_ref()
            .map(|set| set.accounts.iter().map(|r| r.id.0).collect())
            .unwrap_or_default();
        self.record(
            access,
            Event::new(Operation::DirectoryQuery, None)
                .container(address.to_string())
                .objects(named)
                .metadata(),
        )
        .await?;
        Ok(found)
    }

    async fn expand_recipient(&self, address: &Address) -> CoreResult<Option<RecipientSet>> {
        let Some(first) = self
            .store
            .find_principal(&address.local_part, &address.domain)
            .await?
        else {
            return Ok(None);
        };
        let mut seen = BTreeSet::new();
        let mut out = RecipientSet::default();
        let mut level = vec![first];
        for _depth in 0..=self.config.max_group_depth {
            let mut next = Vec::new();
            for p in level {
                if !seen.insert(p.id) {
                    continue;
                }
                match p.kind {
                    PrincipalKind::User if !p.disabled => out.accounts.push(Recipient {
                        id: p.id,
                        address: p.address(),
                    }),
                    PrincipalKind::User => {}
                    PrincipalKind::Group => next.extend(self.store.group_members(p.id).await?),
                }
            }
            if next.is_empty() {
                return Ok(Some(out));
            }
            level = next;
        }
        Err(CoreError::Limit {
            what: format!("group nesting under {address}"),
            limit: self.config.max_group_depth as u64,
            key: "limits.max_group_depth",
        })
    }

    /// First start: creates the first domain and an administrator with a random
    /// password, exactly once per store. Returns `None` when this was done before.
    pub async fn bootstrap(&self, access: &Access, domain: &str) -> CoreResult<Option<Bootstrap>> {
        self.require_admin(access).await?;
        if self.store.get_meta(BOOTSTRAP_KEY).await?.is_some() {
            return Ok(None);
        }
        let domain = normalize_domain(domain)?;
        if self.store.find_domain(&domain).await?.is_none() {
            self.add_domain(access, &domain).await?;
        }
        let admin_address = format!("admin@{domain}");
        let admin_password = random_password();
        // A crash after creating the account but before the marker below
        // lands here again: the password printed then may never have been
        // seen, so it is replaced.
        match self.store.find_principal("admin", &domain).await? {
            Some(_) => {
                self.set_password(access, &admin_address, admin_password.clone())
                    .await?
            }
            None => {
                self.add_user(
                    access,
                    NewUser {
                        address: admin_address.clone(),
                        display_name: Some("Administrator".into()),
                        password: admin_password.clone(),
                        quota_bytes: None,
                        is_admin: true,
                    },
                )
                .await?;
            }
        }
        if !self
            .store
            .set_meta_if_absent(BOOTSTRAP_KEY, &admin_address)
            .await?
        {
            // Another process finished bootstrap at the same time; its password stands.
            return Ok(None);
        }
        Ok(Some(Bootstrap {
            domain,
            admin_address,
            admin_password,
        }))
    }
}

impl Core {
    /// Stored messages of one account by id, for an audit of the access
    /// ledger by the machine's operator (only they may; the read is itself
    /// recorded).
    pub async fn audit_messages(
        &self,
        access: &Access,
        owner: rampart_store::PrincipalId,
        ids: &[rampart_store::MessageId],
    ) -> CoreResult<Vec<rampart_store::StoredMessage>> {
        if !matches!(access.principal(), Actor::Operator { .. }) {
            return Err(CoreError::Denied(
                "only the machine's operator audits the ledger".into(),
            ));
        }
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let found = self.store.messages_by_id(owner, ids).await?;
        self.record(
            access,
            Event::new(Operation::ReadHeader, Some(owner))
                .container("ledger audit")
                .objects(found.iter().map(|m| m.id.0).collect()),
        )
        .await?;
        Ok(found)
    }
}
