//! The directory: domains, principals (users and groups), their app
//! passwords, aliases, group members, DKIM keys and per-account settings.

use async_trait::async_trait;

use crate::sql::{Backend, Conn, Size, SqlStore, Value, params};
use crate::*;

/// Domains, principals and what hangs off them.
#[async_trait]
pub trait DirectoryStore: Send + Sync + 'static {
    /// Adds a local domain.
    async fn create_domain(&self, name: &str) -> Result<Domain>;
    /// Looks up a domain by name (lower case).
    async fn find_domain(&self, name: &str) -> Result<Option<Domain>>;
    /// Lists every domain, by name.
    async fn list_domains(&self) -> Result<Vec<Domain>>;
    /// Removes a domain that has no accounts, groups or aliases left.
    async fn delete_domain(&self, id: DomainId) -> Result<()>;

    /// Creates a user or group together with its initial mailboxes.
    async fn create_principal(&self, new: NewPrincipal) -> Result<Principal>;
    /// Reads a principal by id.
    async fn get_principal(&self, id: PrincipalId) -> Result<Option<Principal>>;
    /// Finds the principal an address names, directly or through an alias.
    async fn find_principal(&self, local_part: &str, domain: &str) -> Result<Option<Principal>>;
    /// Lists principals, of one domain or of all.
    async fn list_principals(&self, domain: Option<DomainId>) -> Result<Vec<Principal>>;
    /// Changes the given attributes of a principal.
    async fn update_principal(&self, id: PrincipalId, update: PrincipalUpdate) -> Result<()>;
    /// Removes a principal with its mailboxes, messages, aliases and memberships.
    async fn delete_principal(&self, id: PrincipalId) -> Result<()>;

    /// Adds an app password (given as its hash) to a user; fails with
    /// [`StoreError::AlreadyExists`] if the user has one of that name.
    async fn add_app_password(
        &self,
        principal: PrincipalId,
        name: &str,
        secret_hash: &str,
    ) -> Result<AppPassword>;
    /// A user's app passwords, by name.
    async fn list_app_passwords(&self, principal: PrincipalId) -> Result<Vec<AppPassword>>;
    /// Revokes a user's app password by name.
    async fn remove_app_password(&self, principal: PrincipalId, name: &str) -> Result<()>;
    /// The user's app password with this hash, if any.
    async fn find_app_password(
        &self,
        principal: PrincipalId,
        secret_hash: &str,
    ) -> Result<Option<AppPassword>>;

    /// Adds an alias address that delivers to `target`.
    async fn add_alias(
        &self,
        domain: DomainId,
        local_part: &str,
        target: PrincipalId,
    ) -> Result<()>;
    /// Removes an alias address.
    async fn remove_alias(&self, domain: DomainId, local_part: &str) -> Result<()>;
    /// Lists aliases, of one target or of all.
    async fn list_aliases(&self, target: Option<PrincipalId>) -> Result<Vec<Alias>>;

    /// Makes `member` a member of `group`.
    async fn add_group_member(&self, group: PrincipalId, member: PrincipalId) -> Result<()>;
    /// Removes `member` from `group`.
    async fn remove_group_member(&self, group: PrincipalId, member: PrincipalId) -> Result<()>;
    /// Lists the members of a group.
    async fn group_members(&self, group: PrincipalId) -> Result<Vec<Principal>>;

    /// A setting an account chose for itself, if set.
    async fn account_setting(&self, account: PrincipalId, key: &str) -> Result<Option<String>>;
    /// Sets (or with `None` clears) a setting of an account.
    async fn set_account_setting(
        &self,
        account: PrincipalId,
        key: &str,
        value: Option<&str>,
    ) -> Result<()>;

    /// Stores a DKIM signing key for a domain.
    async fn add_dkim_key(&self, domain: DomainId, key: DkimKey) -> Result<()>;
    /// The DKIM signing keys of a domain, oldest first.
    async fn dkim_keys(&self, domain: DomainId) -> Result<Vec<DkimKey>>;
}

const PRINCIPAL_COLUMNS: &str = "p.id, p.kind, p.domain_id, d.name, p.local_part, p.display_name, p.password_hash, \
     p.quota_bytes, p.used_bytes, p.disabled, p.is_admin, p.created_at";

pub(crate) async fn query_principals(
    c: &mut dyn Conn,
    filter: &str,
    params: &[Value],
) -> Result<Vec<Principal>> {
    let sql = format!(
        "SELECT {PRINCIPAL_COLUMNS} FROM principals p JOIN domains d ON d.id = p.domain_id {filter}"
    );
    let rows = c.query(&sql, params).await?;
    rows.into_iter()
        .map(|mut r| {
            Ok(Principal {
                id: PrincipalId(r.int(0)?),
                kind: PrincipalKind::parse(r.str(1)?)?,
                domain_id: DomainId(r.int(2)?),
                domain: r.text(3)?,
                local_part: r.text(4)?,
                display_name: r.text(5)?,
                password_hash: r.opt_text(6)?.map(PasswordHash::new),
                quota_bytes: r.uint(7)?,
                used_bytes: r.uint(8)?,
                disabled: r.flag(9)?,
                is_admin: r.flag(10)?,
                created_at: r.int(11)?,
            })
        })
        .collect()
}

/// Whether a principal or alias holds the address already.
async fn address_taken(c: &mut dyn Conn, domain: DomainId, local_part: &str) -> Result<bool> {
    let row = c
        .query_one(
            "SELECT (SELECT count(*) FROM principals WHERE domain_id = $1 AND local_part = $2)
                  + (SELECT count(*) FROM aliases WHERE domain_id = $1 AND local_part = $2)",
            params![domain.0, local_part],
        )
        .await?;
    Ok(row.int(0)? > 0)
}

fn domain_from(mut r: crate::sql::Row) -> Result<Domain> {
    Ok(Domain {
        id: DomainId(r.int(0)?),
        name: r.text(1)?,
        created_at: r.int(2)?,
    })
}

fn app_password_from(mut r: crate::sql::Row, principal: PrincipalId) -> Result<AppPassword> {
    Ok(AppPassword {
        id: r.int(0)?,
        principal,
        name: r.text(1)?,
        created_at: r.int(2)?,
    })
}

fn not_found(kind: &'static str, name: impl ToString) -> StoreError {
    StoreError::NotFound {
        kind,
        name: name.to_string(),
    }
}

#[async_trait]
impl<B: Backend> DirectoryStore for SqlStore<B> {
    async fn create_domain(&self, name: &str) -> Result<Domain> {
        let name = name.to_owned();
        self.write_one(move |c| {
            Box::pin(async move {
                let created_at = now_millis();
                let row = c
                    .query_opt(
                        "INSERT INTO domains (name, created_at) VALUES ($1, $2)
                         ON CONFLICT (name) DO NOTHING RETURNING id",
                        params![name.as_str(), created_at],
                    )
                    .await?
                    .ok_or_else(|| StoreError::AlreadyExists(format!("domain {name}")))?;
                Ok(Domain {
                    id: DomainId(row.int(0)?),
                    name,
                    created_at,
                })
            })
        })
        .await
    }

    async fn find_domain(&self, name: &str) -> Result<Option<Domain>> {
        let name = name.to_owned();
        self.read(Size::Few, move |c| {
            let name = name.clone();
            Box::pin(async move {
                c.query_opt(
                    "SELECT id, name, created_at FROM domains WHERE name = $1",
                    params![name],
                )
                .await?
                .map(domain_from)
                .transpose()
            })
        })
        .await
    }

    async fn list_domains(&self) -> Result<Vec<Domain>> {
        self.read(Size::Many, |c| {
            Box::pin(async move {
                c.query(
                    "SELECT id, name, created_at FROM domains ORDER BY name",
                    &[],
                )
                .await?
                .into_iter()
                .map(domain_from)
                .collect()
            })
        })
        .await
    }

    async fn delete_domain(&self, id: DomainId) -> Result<()> {
        self.write(move |c| {
            Box::pin(async move {
                c.lock_row("domains", id.0).await?;
                let used = c
                    .query_one(
                        "SELECT (SELECT count(*) FROM principals WHERE domain_id = $1)
                              + (SELECT count(*) FROM aliases WHERE domain_id = $1)",
                        params![id.0],
                    )
                    .await?
                    .int(0)?;
                if used > 0 {
                    return Err(StoreError::Conflict(format!(
                        "the domain still has {used} accounts, groups or aliases: remove them first"
                    )));
                }
                if c.execute("DELETE FROM domains WHERE id = $1", params![id.0])
                    .await?
                    == 0
                {
                    return Err(not_found("domain", id));
                }
                Ok(())
            })
        })
        .await
    }

    async fn create_principal(&self, new: NewPrincipal) -> Result<Principal> {
        self.write(move |c| {
            Box::pin(async move {
                // Serialise address allocation within the domain across nodes.
                c.lock_row("domains", new.domain_id.0).await?;
                if address_taken(c, new.domain_id, &new.local_part).await? {
                    return Err(StoreError::AlreadyExists(format!(
                        "address {}@domain #{}",
                        new.local_part, new.domain_id
                    )));
                }
                let id = c
                    .query_one(
                        "INSERT INTO principals (kind, domain_id, local_part, display_name, password_hash,
                             quota_bytes, is_admin, created_at)
                         VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING id",
                        params![
                            new.kind.as_str(),
                            new.domain_id.0,
                            new.local_part.as_str(),
                            new.display_name.as_str(),
                            new.password_hash.as_ref().map(PasswordHash::expose),
                            new.quota_bytes,
                            new.is_admin,
                            now_millis(),
                        ],
                    )
                    .await?
                    .int(0)?;
                let id = PrincipalId(id);
                for mailbox in &new.mailboxes {
                    super::mailboxes::insert_mailbox(c, id, mailbox).await?;
                }
                query_principals(c, "WHERE p.id = $1", params![id.0])
                    .await?
                    .pop()
                    .ok_or_else(|| StoreError::Backend("inserted principal vanished".into()))
            })
        })
        .await
    }

    async fn get_principal(&self, id: PrincipalId) -> Result<Option<Principal>> {
        self.read(Size::Few, move |c| {
            Box::pin(async move {
                Ok(query_principals(c, "WHERE p.id = $1", params![id.0])
                    .await?
                    .pop())
            })
        })
        .await
    }

    async fn find_principal(&self, local_part: &str, domain: &str) -> Result<Option<Principal>> {
        let (local_part, domain) = (local_part.to_owned(), domain.to_owned());
        self.read(Size::Few, move |c| {
            let (local_part, domain) = (local_part.clone(), domain.clone());
            Box::pin(async move {
                let direct = query_principals(
                    c,
                    "WHERE d.name = $1 AND p.local_part = $2",
                    params![domain.as_str(), local_part.as_str()],
                )
                .await?
                .pop();
                if direct.is_some() {
                    return Ok(direct);
                }
                Ok(query_principals(
                    c,
                    "JOIN aliases a ON a.target_id = p.id JOIN domains ad ON ad.id = a.domain_id
                     WHERE ad.name = $1 AND a.local_part = $2",
                    params![domain, local_part],
                )
                .await?
                .pop())
            })
        })
        .await
    }

    async fn list_principals(&self, domain: Option<DomainId>) -> Result<Vec<Principal>> {
        self.read(Size::Many, move |c| {
            Box::pin(async move {
                query_principals(
                    c,
                    "WHERE CAST($1 AS BIGINT) IS NULL OR p.domain_id = $1 ORDER BY d.name, p.local_part",
                    params![domain.map(|d| d.0)],
                )
                .await
            })
        })
        .await
    }

    async fn update_principal(&self, id: PrincipalId, update: PrincipalUpdate) -> Result<()> {
        self.write_one(move |c| {
            Box::pin(async move {
                let n = c
                    .execute(
                        "UPDATE principals SET
                             password_hash = coalesce($2, password_hash),
                             disabled = coalesce($3, disabled),
                             quota_bytes = coalesce($4, quota_bytes),
                             display_name = coalesce($5, display_name)
                         WHERE id = $1",
                        params![
                            id.0,
                            update.password_hash.as_ref().map(PasswordHash::expose),
                            update.disabled,
                            update.quota_bytes,
                            update.display_name,
                        ],
                    )
                    .await?;
                if n == 0 {
                    return Err(not_found("principal", id));
                }
                Ok(())
            })
        })
        .await
    }

    async fn delete_principal(&self, id: PrincipalId) -> Result<()> {
        self.write(move |c| {
            Box::pin(async move {
                // Release blob references before the cascade removes the rows.
                c.execute(
                    "UPDATE blobs SET refcount = refcount - m.n
                     FROM (SELECT blob_hash, count(*) AS n FROM messages
                           WHERE account_id = $1 GROUP BY blob_hash) AS m
                     WHERE blobs.hash = m.blob_hash",
                    params![id.0],
                )
                .await?;
                c.execute("DELETE FROM messages WHERE account_id = $1", params![id.0])
                    .await?;
                c.execute("DELETE FROM changes WHERE account_id = $1", params![id.0])
                    .await?;
                if c.execute("DELETE FROM principals WHERE id = $1", params![id.0])
                    .await?
                    == 0
                {
                    return Err(not_found("principal", id));
                }
                Ok(())
            })
        })
        .await
    }

    async fn add_app_password(
        &self,
        principal: PrincipalId,
        name: &str,
        secret_hash: &str,
    ) -> Result<AppPassword> {
        let (name, secret_hash) = (name.to_owned(), secret_hash.to_owned());
        self.write_one(move |c| {
            Box::pin(async move {
                let created_at = now_millis();
                let row = c
                    .query_opt(
                        "INSERT INTO app_passwords (principal_id, name, secret_hash, created_at)
                         VALUES ($1, $2, $3, $4)
                         ON CONFLICT (principal_id, name) DO NOTHING RETURNING id",
                        params![principal.0, name.as_str(), secret_hash, created_at],
                    )
                    .await?
                    .ok_or_else(|| StoreError::AlreadyExists(format!("app password {name:?}")))?;
                Ok(AppPassword {
                    id: row.int(0)?,
                    principal,
                    name,
                    created_at,
                })
            })
        })
        .await
    }

    async fn list_app_passwords(&self, principal: PrincipalId) -> Result<Vec<AppPassword>> {
        self.read(Size::Few, move |c| {
            Box::pin(async move {
                c.query(
                    "SELECT id, name, created_at FROM app_passwords WHERE principal_id = $1 ORDER BY name",
                    params![principal.0],
                )
                .await?
                .into_iter()
                .map(|r| app_password_from(r, principal))
                .collect()
            })
        })
        .await
    }

    async fn remove_app_password(&self, principal: PrincipalId, name: &str) -> Result<()> {
        let name = name.to_owned();
        self.write_one(move |c| {
            Box::pin(async move {
                if c.execute(
                    "DELETE FROM app_passwords WHERE principal_id = $1 AND name = $2",
                    params![principal.0, name.as_str()],
                )
                .await?
                    == 0
                {
                    return Err(not_found("app password", name));
                }
                Ok(())
            })
        })
        .await
    }

    async fn find_app_password(
        &self,
        principal: PrincipalId,
        secret_hash: &str,
    ) -> Result<Option<AppPassword>> {
        let secret_hash = secret_hash.to_owned();
        self.read(Size::Few, move |c| {
            let secret_hash = secret_hash.clone();
            Box::pin(async move {
                c.query_opt(
                    "SELECT id, name, created_at FROM app_passwords
                     WHERE principal_id = $1 AND secret_hash = $2",
                    params![principal.0, secret_hash],
                )
                .await?
                .map(|r| app_password_from(r, principal))
                .transpose()
            })
        })
        .await
    }

    async fn add_alias(
        &self,
        domain: DomainId,
        local_part: &str,
        target: PrincipalId,
    ) -> Result<()> {
        let local_part = local_part.to_owned();
        self.write(move |c| {
            Box::pin(async move {
                c.lock_row("domains", domain.0).await?;
                if address_taken(c, domain, &local_part).await? {
                    return Err(StoreError::AlreadyExists(format!("address {local_part}@…")));
                }
                c.execute(
                    "INSERT INTO aliases (domain_id, local_part, target_id) VALUES ($1, $2, $3)",
                    params![domain.0, local_part, target.0],
                )
                .await?;
                Ok(())
            })
        })
        .await
    }

    async fn remove_alias(&self, domain: DomainId, local_part: &str) -> Result<()> {
        let local_part = local_part.to_owned();
        self.write_one(move |c| {
            Box::pin(async move {
                if c.execute(
                    "DELETE FROM aliases WHERE domain_id = $1 AND local_part = $2",
                    params![domain.0, local_part.as_str()],
                )
                .await?
                    == 0
                {
                    return Err(not_found("alias", local_part));
                }
                Ok(())
            })
        })
        .await
    }

    async fn list_aliases(&self, target: Option<PrincipalId>) -> Result<Vec<Alias>> {
        self.read(Size::Many, move |c| {
            Box::pin(async move {
                c.query(
                    "SELECT a.local_part, d.name, a.target_id FROM aliases a
                     JOIN domains d ON d.id = a.domain_id
                     WHERE CAST($1 AS BIGINT) IS NULL OR a.target_id = $1
                     ORDER BY d.name, a.local_part",
                    params![target.map(|t| t.0)],
                )
                .await?
                .into_iter()
                .map(|mut r| {
                    Ok(Alias {
                        local_part: r.text(0)?,
                        domain: r.text(1)?,
                        target: PrincipalId(r.int(2)?),
                    })
                })
                .collect()
            })
        })
        .await
    }

    async fn add_group_member(&self, group: PrincipalId, member: PrincipalId) -> Result<()> {
        self.write_one(move |c| {
            Box::pin(async move {
                c.execute(
                    "INSERT INTO group_members (group_id, member_id) VALUES ($1, $2)
                     ON CONFLICT DO NOTHING",
                    params![group.0, member.0],
                )
                .await?;
                Ok(())
            })
        })
        .await
    }

    async fn remove_group_member(&self, group: PrincipalId, member: PrincipalId) -> Result<()> {
        self.write_one(move |c| {
            Box::pin(async move {
                c.execute(
                    "DELETE FROM group_members WHERE group_id = $1 AND member_id = $2",
                    params![group.0, member.0],
                )
                .await?;
                Ok(())
            })
        })
        .await
    }

    async fn group_members(&self, group: PrincipalId) -> Result<Vec<Principal>> {
        self.read(Size::Many, move |c| {
            Box::pin(async move {
                query_principals(
                    c,
                    "JOIN group_members g ON g.member_id = p.id WHERE g.group_id = $1
                     ORDER BY d.name, p.local_part",
                    params![group.0],
                )
                .await
            })
        })
        .await
    }

    async fn account_setting(&self, account: PrincipalId, key: &str) -> Result<Option<String>> {
        let key = key.to_owned();
        self.read(Size::Few, move |c| {
            let key = key.clone();
            Box::pin(async move {
                c.query_opt(
                    "SELECT value FROM account_settings WHERE account_id = $1 AND key = $2",
                    params![account.0, key],
                )
                .await?
                .map(|mut r| r.text(0))
                .transpose()
            })
        })
        .await
    }

    async fn set_account_setting(
        &self,
        account: PrincipalId,
        key: &str,
        value: Option<&str>,
    ) -> Result<()> {
        let (key, value) = (key.to_owned(), value.map(str::to_owned));
        self.write_one(move |c| {
            Box::pin(async move {
                match value {
                    Some(v) => {
                        c.execute(
                            "INSERT INTO account_settings (account_id, key, value) VALUES ($1, $2, $3)
                             ON CONFLICT (account_id, key) DO UPDATE SET value = excluded.value",
                            params![account.0, key, v],
                        )
                        .await?
                    }
                    None => {
                        c.execute(
                            "DELETE FROM account_settings WHERE account_id = $1 AND key = $2",
                            params![account.0, key],
                        )
                        .await?
                    }
                };
                Ok(())
            })
        })
        .await
    }

    async fn add_dkim_key(&self, domain: DomainId, key: DkimKey) -> Result<()> {
        self.write_one(move |c| {
            Box::pin(async move {
                let n = c
                    .execute(
                        "INSERT INTO dkim_keys (domain_id, selector, algorithm, private_key, public_key, created_at)
                         VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (domain_id, selector) DO NOTHING",
                        params![
                            domain.0,
                            key.selector.as_str(),
                            key.algorithm.as_str(),
                            key.private_key.as_slice(),
                            key.public_key.as_slice(),
                            now_millis(),
                        ],
                    )
                    .await?;
                if n == 0 {
                    return Err(StoreError::AlreadyExists(format!(
                        "DKIM selector {}",
                        key.selector
                    )));
                }
                Ok(())
            })
        })
        .await
    }

    async fn dkim_keys(&self, domain: DomainId) -> Result<Vec<DkimKey>> {
        self.read(Size::Few, move |c| {
            Box::pin(async move {
                c.query(
                    "SELECT selector, algorithm, private_key, public_key FROM dkim_keys
                     WHERE domain_id = $1 ORDER BY id",
                    params![domain.0],
                )
                .await?
                .into_iter()
                .map(|mut r| {
                    Ok(DkimKey {
                        selector: r.text(0)?,
                        algorithm: r.text(1)?,
                        private_key: r.bytes(2)?,
                        public_key: r.bytes(3)?,
                    })
                })
                .collect()
            })
        })
        .await
    }
}
