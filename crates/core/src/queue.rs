//! Outbound mail: submission into the queue, and the calls the queue worker
//! (in the smtp crate) and the CLI make on it.

use rampart_store::{
    DsnRequest, NewQueued, PrincipalId, QueueEntry, QueueId, QueueOutcome, QueuedAddress,
};

use crate::{Access, Core, CoreError, CoreResult, Event, Operation};

impl Core {
    /// The queue is run by its worker; reports and checkpoints join it.
    fn require_service(&self, access: &Access) -> CoreResult<()> {
        use crate::ServiceRole::{QueueWorker, ReportSender, Witness};
        match access.principal().service_role() {
            Some(QueueWorker | ReportSender | Witness) => Ok(()),
            _ => Err(CoreError::Denied(
                "only the server's own services run the queue".into(),
            )),
        }
    }

    /// Accepts a message for delivery: queued for the remote recipients,
    /// delivered at once to the local accounts. Returns once all of it is
    /// durable; the queue worker is woken.
    ///
    /// Who may send what is decided here, for every protocol: an account
    /// sends only as one of its own addresses (envelope, From and Sender),
    /// and only the server's report sender and witness send with a null
    /// sender. Core resolves the recipients itself: local addresses reach
    /// their accounts (aliases and groups expanded), others go to the queue.
    pub async fn submit(
        &self,
        access: &Access,
        sender: &str,
        recipients: &[QueuedAddress],
        dsn: DsnRequest,
        raw: Vec<u8>,
    ) -> CoreResult<Option<QueueId>> {
        use crate::ServiceRole::{ReportSender, Witness};
        if access.account().is_some() {
            let may = match crate::Address::parse(sender) {
                Ok(a) => self.may_send_as(access, &a).await?,
                Err(_) => false,
            };
            if !may {
                return Err(CoreError::Denied(format!(
                    "you may not send as <{}>: use your own address or one of your aliases",
                    sender.chars().take(256).collect::<String>()
                )));
            }
            self.check_author_fields(access, &raw).await?;
        } else if !matches!(
            access.principal().service_role(),
            Some(ReportSender | Witness)
        ) {
            return Err(CoreError::Denied(
                "only accounts and the server's reports submit mail".into(),
            ));
        }
        let mut local: Vec<PrincipalId> = Vec::new();
        let mut remote: Vec<QueuedAddress> = Vec::new();
        for recipient in recipients {
            let address = crate::Address::parse(&recipient.address)?;
            if !self.local_domain(&address.domain).await? {
                remote.push(recipient.clone());
                continue;
            }
            match self.resolve_recipient(access, &address).await? {
                Some(set) if !set.accounts.is_empty() => {
                    local.extend(set.accounts.iter().map(|r| r.id));
                }
                Some(_) => {
                    return Err(CoreError::Invalid(format!("<{address}>: mailbox disabled")));
                }
                None => {
                    return Err(CoreError::NotFound {
                        kind: "recipient",
                        name: address.to_string(),
                    });
                }
            }
        }
        local.sort();
        local.dedup();
        let (local, remote) = (&local[..], &remote[..]);
        let queued = if remote.is_empty() {
            None
        } else {
            self.check_size(raw.len())?;
            let size = raw.len() as u64;
            let shared = std::sync::Arc::new(raw.clone());
            let queued = |blob| NewQueued {
                blob,
                size,
                sender: sender.to_owned(),
                recipients: remote.to_vec(),
                owner: access.account(),
                dsn: dsn.clone(),
            };
            let blob = self.store.put_blob(shared.clone()).await?;
            let id = match self.store.enqueue(queued(blob)).await {
                // A sweep took the blob between storing and naming it: store it again.
                Err(rampart_store::StoreError::BlobDamaged { .. }) => {
                    let blob = self.store.put_blob(shared).await?;
                    self.store.enqueue(queued(blob)).await?
                }
                other => other?,
            };
            self.record(
                access,
                Event::new(Operation::Create, access.account())
                    .container("outbound queue")
                    .objects(vec![id.0])
                    .bytes(size),
            )
            .await?;
            self.queue_wakeup.notify_one();
            Some(id)
        };
        if !local.is_empty() {
            self.deliver(
                &access.through_service(crate::access::LOCAL_DELIVERY),
                local,
                raw,
            )
            .await?;
        }
        Ok(queued)
    }

    /// Waits until a message is queued (or a moment passes); for the queue worker.
    pub async fn queue_wait(&self, at_most: std::time::Duration) {
        let _ = tokio::time::timeout(at_most, self.queue_wakeup.notified()).await;
    }

    /// Claims due messages for delivery (queue worker only).
    pub async fn queue_claim(
        &self,
        access: &Access,
        now: i64,
        lease_until: i64,
        limit: usize,
    ) -> CoreResult<Vec<QueueEntry>> {
        self.require_service(access)?;
        Ok(self.store.queue_claim_due(now, lease_until, limit).await?)
    }

    /// Reads a queued message's content to send it on (queue worker only; recorded).
    pub async fn queue_message(&self, access: &Access, entry: &QueueEntry) -> CoreResult<Vec<u8>> {
        self.require_service(access)?;
        let raw = self.store.read_blob(entry.blob).await?;
        self.record(
            access,
            Event::new(Operation::ReadBody, entry.owner)
                .container("outbound queue")
                .objects(vec![entry.id.0])
                .bytes(raw.len() as u64),
        )
        .await?;
        Ok(raw)
    }

    /// Records the outcome for one recipient (queue worker only).
    pub async fn queue_record(
        &self,
        access: &Access,
        recipient: i64,
        outcome: QueueOutcome,
    ) -> CoreResult<()> {
        self.require_service(access)?;
        Ok(self.store.queue_record(recipient, outcome).await?)
    }

    /// Drops messages that are done with (queue worker only).
    pub async fn queue_collect(&self, access: &Access) -> CoreResult<Vec<QueueId>> {
        self.require_service(access)?;
        Ok(self.store.queue_collect_finished().await?)
    }

    /// Lists the queue (administrators).
    pub async fn queue_list(&self, access: &Access) -> CoreResult<Vec<QueueEntry>> {
        self.require_admin(access).await?;
        Ok(self.store.queue_list().await?)
    }

    /// One queued message (administrators).
    pub async fn queue_get(&self, access: &Access, id: QueueId) -> CoreResult<QueueEntry> {
        self.require_admin(access).await?;
        self.store
            .queue_get(id)
            .await?
            .ok_or_else(|| CoreError::NotFound {
                kind: "queued message",
                name: id.to_string(),
            })
    }

    /// Makes a queued message due now (administrators).
    pub async fn queue_retry(&self, access: &Access, id: QueueId) -> CoreResult<()> {
        self.require_admin(access).await?;
        self.store.queue_retry_now(id).await?;
        self.record(
            access,
            Event::new(Operation::Administer, None).container(format!("queue retry {id}")),
        )
        .await?;
        self.queue_wakeup.notify_one();
        Ok(())
    }

    /// Removes a queued message without delivering it (administrators).
    pub async fn queue_remove(&self, access: &Access, id: QueueId) -> CoreResult<()> {
        self.require_admin(access).await?;
        self.store.queue_remove(id).await?;
        self.record(
            access,
            Event::new(Operation::Administer, None).container(format!("queue remove {id}")),
        )
        .await
    }
}

impl Core {
    /// The DKIM signing keys of a local domain (the server's services, and administrators).
    pub async fn dkim_keys(
        &self,
        access: &Access,
        domain: &str,
    ) -> CoreResult<Vec<rampart_store::DkimKey>> {
        if access.principal().service_role() != Some(crate::ServiceRole::DkimSigner) {
            self.require_admin(access).await?;
        }
        self.domain_dkim_keys(domain).await
    }

    /// The DKIM keys of a local domain; none for a domain not ours.
    async fn domain_dkim_keys(&self, domain: &str) -> CoreResult<Vec<rampart_store::DkimKey>> {
        let Some(d) = self
            .store
            .find_domain(&crate::normalize_domain(domain)?)
            .await?
        else {
            return Ok(Vec::new());
        };
        Ok(self.store.dkim_keys(d.id).await?)
    }

    /// The public halves of a local domain's DKIM keys, to check the server's
    /// own signature on mail that comes back in (inbound delivery, the
    /// signer, administrators).
    pub async fn dkim_public_keys(
        &self,
        access: &Access,
        domain: &str,
    ) -> CoreResult<Vec<DkimPublicKey>> {
        let role = access.principal().service_role();
        if !matches!(
            role,
            Some(crate::ServiceRole::InboundDelivery | crate::ServiceRole::DkimSigner)
        ) {
            self.require_admin(access).await?;
        }
        Ok(self
            .domain_dkim_keys(domain)
            .await?
            .into_iter()
            .map(|k| DkimPublicKey {
                selector: k.selector,
                algorithm: k.algorithm,
                public_key: k.public_key,
            })
            .collect())
    }

    /// Stores new DKIM signing keys for a local domain (administrators).
    pub async fn add_dkim_keys(
        &self,
        access: &Access,
        domain: &str,
        keys: Vec<rampart_store::DkimKey>,
    ) -> CoreResult<()> {
        self.require_admin(access).await?;
        let name = crate::normalize_domain(domain)?;
        let d = self
            .store
            .find_domain(&name)
            .await?
            .ok_or_else(|| CoreError::NotFound {
                kind: "domain",
                name: name.clone(),
            })?;
        for key in keys {
            let selector = key.selector.clone();
            self.store.add_dkim_key(d.id, key).await?;
            self.record(
                access,
                Event::new(Operation::CredentialChange, None)
                    .container(format!("dkim key {selector}._domainkey.{name}")),
            )
            .await?;
        }
        Ok(())
    }
}

/// The public half of a DKIM key, as published in DNS.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DkimPublicKey {
    /// The selector (`<selector>._domainkey.<domain>`).
    pub selector: String,
    /// `ed25519-sha256` or `rsa-sha256`.
    pub algorithm: String,
    /// The public key (base64 of this goes into `p=`).
    pub public_key: Vec<u8>,
}
