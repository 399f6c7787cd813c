//! Mailboxes and messages: append, deliver, list, read, flag, expunge.

use mail_parser::{HeaderValue, MessageParser};
use rampart_store::{
    Appended, Mailbox, MailboxId, MailboxRole, MessageRecord, NewMessage, PrincipalId, SystemFlags,
};
use serde::{Deserialize, Serialize};

use crate::{Access, Actor, Core, CoreError, CoreResult, Event, Operation};

/// A name and address from a message header.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AddressSummary {
    /// Display name, if given.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The address, if given.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,
}

/// What the store keeps about a message besides its raw bytes: enough for
/// message lists, threading and the ledger's list of affected persons.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MessageSummary {
    /// Subject header, decoded.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
    /// Date header, seconds since the epoch.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub date: Option<i64>,
    /// The Date header's zone, minutes east of UTC: with `date`, the day
    /// the sender wrote (RFC 9051 §6.4.4 SENTON and friends).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub date_zone: Option<i32>,
    /// From.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub from: Vec<AddressSummary>,
    /// To.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub to: Vec<AddressSummary>,
    /// Cc.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub cc: Vec<AddressSummary>,
    /// Reply-To.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub reply_to: Vec<AddressSummary>,
    /// Message-ID without angle brackets.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message_id: Option<String>,
    /// Whether the message has attachments.
    #[serde(default)]
    pub has_attachments: bool,
}

impl MessageSummary {
    /// The day (since the epoch) of the Date header in the sender's own
    /// zone, disregarding time and zone (RFC 9051 §6.4.4).
    pub fn sent_day(&self) -> Option<i64> {
        let local = self.date? + i64::from(self.date_zone.unwrap_or(0)) * 60;
        Some(local.div_euclid(86_400))
    }
}

/// What a caller is told of a mailbox that does not exist or is not theirs.
fn not_found(mailbox: MailboxId) -> CoreError {
    CoreError::NotFound {
        kind: "mailbox",
        name: mailbox.to_string(),
    }
}

/// The account setting that turns the server's copy of sent mail off.
const SENT_COPY_SETTING: &str = "sent_copy";

/// Reads a stored summary back; `None` if it is not one.
pub fn parse_summary(json: &str) -> Option<MessageSummary> {
    serde_json::from_str(json).ok()
}

/// Headers longer than this are cut in the summary (the raw message keeps them whole).
const MAX_SUMMARY_FIELD: usize = 998;
/// At most this many addresses per header are summarised.
const MAX_SUMMARY_ADDRESSES: usize = 1000;
/// At most this many References are used for threading.
const MAX_REFERENCES: usize = 100;

fn clip(s: &str) -> String {
    let mut end = s.len().min(MAX_SUMMARY_FIELD);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s[..end].to_owned()
}

fn addresses(value: Option<&mail_parser::Address<'_>>) -> Vec<AddressSummary> {
    value
        .map(|a| {
            a.iter()
                .take(MAX_SUMMARY_ADDRESSES)
                .map(|addr| AddressSummary {
                    name: addr.name().map(clip),
                    address: addr.address().map(|s| clip(&s.to_lowercase())),
                })
                .collect()
        })
        .unwrap_or_default()
}

fn header_ids(value: &HeaderValue<'_>) -> Vec<String> {
    match value {
        HeaderValue::Text(t) => vec![clip(t)],
        HeaderValue::TextList(list) => list.iter().map(|t| clip(t)).collect(),
        _ => Vec::new(),
    }
}

/// Parses a raw message (untrusted input) into its summary and the Message-IDs it refers to, for threading.
pub fn summarize(raw: &[u8]) -> (MessageSummary, Vec<String>) {
    let Some(msg) = MessageParser::default().parse(raw) else {
        return (MessageSummary::default(), Vec::new());
    };
    let summary = MessageSummary {
        subject: msg.subject().map(clip),
        date: msg.date().map(|d| d.to_timestamp()),
        date_zone: msg.date().map(|d| {
            let minutes = i32::from(d.tz_hour) * 60 + i32::from(d.tz_minute);
            if d.tz_before_gmt { -minutes } else { minutes }
        }),
        from: addresses(msg.from()),
        to: addresses(msg.to()),
        cc: addresses(msg.cc()),
        reply_to: addresses(msg.reply_to()),
        message_id: msg.message_id().map(clip),
        has_attachments: msg.attachment_count() > 0,
    };
    let mut references = header_ids(msg.in_reply_to());
    references.extend(header_ids(msg.references()).into_iter().rev());
    references.truncate(MAX_REFERENCES);
    (summary, references)
}

/// Messages larger than this are parsed on the blocking pool.
const INLINE_PARSE_BYTES: usize = 256 * 1024;

impl Core {
    /// Checks that the caller may read the data of `owner`. Only the owner may
    /// (delegation comes later); operators and services never read mail (R6).
    ///
    /// Anyone else is told the mailbox does not exist, exactly as for an id
    /// that was never made, so that other accounts' ids cannot be probed
    /// (rule R10: NotFound, never Denied).
    pub(crate) fn require_reader(
        &self,
        access: &Access,
        owner: PrincipalId,
        mailbox: MailboxId,
    ) -> CoreResult<()> {
        match access.acting_as() {
            Actor::Account { id, .. } if *id == owner => Ok(()),
            _ => Err(not_found(mailbox)),
        }
    }

    /// Checks that the caller may add messages for `owner`: the owner, the
    /// operator (imports), or a delivering service (inbound mail, reports,
    /// the witness's checkpoints, and core's own local delivery of
    /// submitted mail); no other service.
    pub(crate) fn require_writer(&self, access: &Access, owner: PrincipalId) -> CoreResult<()> {
        use crate::ServiceRole::{InboundDelivery, ReportSender, Witness};
        match access.acting_as() {
            Actor::Account { id, .. } if *id == owner => Ok(()),
            Actor::Operator { .. } => Ok(()),
            Actor::Service { name } if name == crate::access::LOCAL_DELIVERY => Ok(()),
            service @ Actor::Service { .. }
                if matches!(
                    service.service_role(),
                    Some(InboundDelivery | ReportSender | Witness)
                ) =>
            {
                Ok(())
            }
            _ => Err(CoreError::Denied(
                "only the mailbox owner may change it".into(),
            )),
        }
    }

    /// The mailbox a call acts on, read by (account, id): for an account,
    /// only one of its own (any other is not found, as an id never made);
    /// for the operator and services, the owner's, whom the rights checks
    /// that follow then judge.
    pub(crate) async fn mailbox(&self, access: &Access, id: MailboxId) -> CoreResult<Mailbox> {
        let account = match access.acting_as() {
            Actor::Account { id: account, .. } => *account,
            _ => self
                .store
                .mailbox_owner(id)
                .await?
                .ok_or_else(|| not_found(id))?,
        };
        self.store
            .get_mailbox(account, id)
            .await?
            .ok_or_else(|| not_found(id))
    }

    /// Finds a mailbox of an account by name (for imports and delivery).
    pub async fn find_mailbox(
        &self,
        access: &Access,
        account: PrincipalId,
        name: &str,
    ) -> CoreResult<Mailbox> {
        self.require_writer(access, account)?;
        self.store
            .find_mailbox(account, name)
            .await?
            .ok_or_else(|| CoreError::NotFound {
                kind: "mailbox",
                name: name.into(),
            })
    }

    /// Whether mail for this domain is delivered here.
    pub async fn is_local_domain(&self, access: &Access, domain: &str) -> CoreResult<bool> {
        // Which domains are ours is public (MX records say it); the Access
        // only keeps the call behind the gate like every other.
        let _ = access;
        self.local_domain(domain).await
    }

    /// Whether `domain` is one of ours (inside core).
    pub(crate) async fn local_domain(&self, domain: &str) -> CoreResult<bool> {
        Ok(self
            .store
            .find_domain(&domain.to_ascii_lowercase())
            .await?
            .is_some())
    }

    /// Whether the caller may use `address` as a sender: its own primary
    /// address or one of its aliases.
    pub async fn may_send_as(&self, access: &Access, address: &crate::Address) -> CoreResult<bool> {
        let Some(account) = access.account() else {
            return Ok(false);
        };
        Ok(self
            .store
            .find_principal(&address.local_part, &address.domain)
            .await?
            .is_some_and(|p| p.id == account))
    }

    /// Checks the author fields of a message an account submits: exactly
    /// one From (RFC 5322 §3.6), and every address in From and Sender one
    /// the account may send as; otherwise any employee could mail in a
    /// colleague's name under the town's own DKIM signature. Only
    /// accounts are checked (the server's own reports have their own From).
    pub async fn check_author_fields(&self, access: &Access, raw: &[u8]) -> CoreResult<()> {
        if access.account().is_none() {
            return Ok(());
        }
        let (froms, authors) = crate::authors::author_addresses(raw).ok_or_else(|| {
            CoreError::Denied("every From and Sender must name an address you may send as".into())
        })?;
        if froms != 1 {
            return Err(CoreError::Denied(
                "a message needs exactly one From field (RFC 5322 section 3.6)".into(),
            ));
        }
        for author in authors {
            let may = match crate::Address::parse(&author) {
                Ok(a) => self.may_send_as(access, &a).await?,
                Err(_) => false,
            };
            if !may {
                return Err(CoreError::Denied(format!("you may not send as {author}")));
            }
        }
        Ok(())
    }

    /// The local domains a message from outside claims as its origin: the
    /// envelope sender's and those of the addresses in From and Sender. Mail
    /// from outside in these needs the server's own signature (see the SMTP
    /// crate).
    pub async fn claimed_local_domains(
        &self,
        envelope_from: &str,
        raw: &[u8],
    ) -> CoreResult<Vec<String>> {
        // An author field the parser cannot read may still show a reader
        // one of our domains: then every `@domain` in it counts.
        let authors = crate::authors::author_addresses(raw)
            .map(|(_, authors)| authors)
            .unwrap_or_else(|| crate::authors::author_field_domains(raw));
        let mut domains: Vec<String> = authors
            .into_iter()
            .chain(std::iter::once(envelope_from.to_owned()))
            .filter_map(|a| a.rsplit_once('@').map(|(_, d)| d.to_owned()))
            .filter_map(|d| crate::normalize_domain(&d).ok())
            .collect();
        domains.sort();
        domains.dedup();
        let mut local = Vec::new();
        for domain in domains {
            if self.local_domain(&domain).await? {
                local.push(domain);
            }
        }
        Ok(local)
    }

    /// Files a copy of a message the caller sent in its Sent mailbox, marked
    /// \Seen, unless the account turned the server's copy off (`None`).
    pub async fn save_sent(&self, access: &Access, raw: Vec<u8>) -> CoreResult<Option<Appended>> {
        let account = access
            .account()
            .ok_or_else(|| CoreError::Denied("only an account has a Sent mailbox".into()))?;
        if !self.sent_copy(access).await? {
            return Ok(None);
        }
        let sent = self
            .store
            .list_mailboxes(account)
            .await?
            .into_iter()
            .find(|m| m.role == Some(MailboxRole::Sent))
            .ok_or_else(|| CoreError::NotFound {
                kind: "Sent mailbox of",
                name: account.to_string(),
            })?;
        self.append(
            access,
            sent.id,
            raw,
            SystemFlags(SystemFlags::SEEN),
            vec![],
            None,
        )
        .await
        .map(Some)
    }

    /// Whether submission files a copy in the caller's Sent mailbox (the
    /// per-account setting `sent_copy`, on unless set to `off`).
    pub async fn sent_copy(&self, access: &Access) -> CoreResult<bool> {
        let account = access
            .account()
            .ok_or_else(|| CoreError::Denied("only an account has settings".into()))?;
        Ok(self
            .store
            .account_setting(account, SENT_COPY_SETTING)
            .await?
            .is_none_or(|v| v != "off"))
    }

    /// Turns the server's copy of sent mail in Sent on or off for an account.
    pub async fn set_sent_copy(&self, access: &Access, address: &str, on: bool) -> CoreResult<()> {
        self.require_admin(access).await?;
        let principal = self.principal_row(address).await?;
        self.store
            .set_account_setting(principal.id, SENT_COPY_SETTING, (!on).then_some("off"))
            .await?;
        self.admin_event(
            access,
            format!("user sent-copy {address} {}", if on { "on" } else { "off" }),
            vec![principal.id.0],
        )
        .await
    }

    /// The copy already in Sent of a message the server filed there
    /// recently, if `raw` has its Message-ID: a client's own APPEND of
    /// what it just sent (Thunderbird's default) is then answered with it.
    async fn filed_sent_copy(&self, target: &Mailbox, raw: &[u8]) -> CoreResult<Option<Appended>> {
        let window = self.config.sent_duplicate_window;
        if target.role != Some(MailboxRole::Sent) || window.is_zero() {
            return Ok(None);
        }
        let Some(message_id) = MessageParser::default()
            .parse_headers(raw)
            .and_then(|m| m.message_id().map(clip))
        else {
            return Ok(None);
        };
        let since = rampart_store::now_millis() - window.as_millis() as i64;
        let Some(uid) = self
            .store
            .find_by_message_id(target.account, target.id, &message_id, since)
            .await?
        else {
            return Ok(None);
        };
        Ok(self
            .store
            .get_messages(target.account, target.id, &[uid])
            .await?
            .into_iter()
            .next()
            .map(|r| Appended {
                mailbox: target.id,
                message: r.message,
                uid: r.uid,
                modseq: r.modseq,
                thread: r.thread,
            }))
    }

    /// Lists the caller's own mailboxes.
    pub async fn list_mailboxes(&self, access: &Access) -> CoreResult<Vec<Mailbox>> {
        let account = access
            .account()
            .ok_or_else(|| CoreError::Denied("only an account has mailboxes".into()))?;
        let mailboxes = self.store.list_mailboxes(account).await?;
        self.record(
            access,
            Event::new(Operation::ListContainers, Some(account))
                .objects(mailboxes.iter().map(|m| m.id.0).collect()),
        )
        .await?;
        Ok(mailboxes)
    }

    pub(crate) fn check_size(&self, size: usize) -> CoreResult<()> {
        if size as u64 > self.config.max_message_bytes {
            return Err(CoreError::Limit {
                what: format!("a message of {size} bytes"),
                limit: self.config.max_message_bytes,
                key: "limits.max_message_bytes",
            });
        }
        Ok(())
    }

    async fn store_message(
        &self,
        targets: &[(PrincipalId, MailboxId)],
        raw: Vec<u8>,
        flags: SystemFlags,
        keywords: Vec<String>,
        received_at: Option<i64>,
    ) -> CoreResult<Vec<Appended>> {
        self.check_size(raw.len())?;
        let size = raw.len() as u64;
        let raw = std::sync::Arc::new(raw);
        // The blob is written and synced on the blocking pool while the
        // message is parsed here: the fsync is most of an APPEND's time.
        // The row naming the blob is written only after both.
        let parse = {
            let (raw, derivers) = (raw.clone(), self.derivers.clone());
            move || {
                let (summary, references) = summarize(&raw);
                let derived: Vec<(String, Vec<u8>)> = derivers
                    .iter()
                    .map(|d| (d.kind().to_owned(), d.derive(&raw)))
                    .collect();
                (summary, references, derived)
            }
        };
        let (blob, parsed) = tokio::join!(self.store.put_blob(raw.clone()), async {
            // A large message takes milliseconds to parse: not on a runtime
            // thread, where it would stall every session sharing it.
            if raw.len() > INLINE_PARSE_BYTES {
                tokio::task::spawn_blocking(parse)
                    .await
                    .map_err(|e| CoreError::Invalid(format!("message parse failed: {e}")))
            } else {
                Ok(parse())
            }
        });
        let blob = blob?;
        let (summary, references, derived) = parsed?;
        let new_message = |blob| NewMessage {
            blob,
            size,
            received_at: received_at.unwrap_or_else(rampart_store::now_millis),
            message_id_header: summary.message_id.clone(),
            references: references.clone(),
            summary: serde_json::to_string(&summary).unwrap_or_else(|_| "{}".into()),
            flags,
            keywords: keywords.clone(),
            derived: derived.clone(),
            // Indexed when deliveries pause (see `Core::run_text_indexer`):
            // trigram indexing in the delivery's transaction doubled SMTP's
            // p99, and right after it still took a fifth of a burst's CPU.
            text: None,
        };
        let appended = match self.store.append_message(targets, new_message(blob)).await {
            // A sweep took the blob between storing and naming it: store it again.
            Err(rampart_store::StoreError::BlobDamaged { .. }) => {
                let blob = self.store.put_blob(raw).await?;
                self.store
                    .append_message(targets, new_message(blob))
                    .await?
            }
            other => other?,
        };
        self.text_wakeup.notify_one();
        Ok(appended)
    }

    /// Appends a message to one mailbox (IMAP APPEND, import). Returns once
    /// the message is durable.
    pub async fn append(
        &self,
        access: &Access,
        mailbox: MailboxId,
        raw: Vec<u8>,
        flags: SystemFlags,
        keywords: Vec<String>,
        received_at: Option<i64>,
    ) -> CoreResult<Appended> {
        let target = self.mailbox(access, mailbox).await?;
        // Another account is told the mailbox does not exist, as for an id
        // never made, so that ids cannot be probed by appending.
        if matches!(access.acting_as(), Actor::Account { id, .. } if *id != target.account) {
            return Err(not_found(mailbox));
        }
        self.require_writer(access, target.account)?;
        if let Some(filed) = self.filed_sent_copy(&target, &raw).await? {
            return Ok(filed);
        }
        let bytes = raw.len() as u64;
        let appended = self
            .store_message(
                &[(target.account, mailbox)],
                raw,
                flags,
                keywords,
                received_at,
            )
            .await?
            .pop()
            .ok_or_else(|| CoreError::Invalid("append stored nothing".into()))?;
        // The answer (APPENDUID) releases no user data, so it need not wait
        // for the entry to be durable; the entry keeps its place in order.
        self.record(
            access,
            Event::new(Operation::Create, Some(target.account))
                .container(target.name)
                .objects(vec![appended.message.0])
                .bytes(bytes)
                .metadata(),
        )
        .await?;
        self.announce(mailbox);
        Ok(appended)
    }

    /// Delivers a message into the Inbox of each account, atomically: all get
    /// it or none does. Returns once it is durable for every recipient.
    pub async fn deliver(
        &self,
        access: &Access,
        accounts: &[PrincipalId],
        raw: Vec<u8>,
    ) -> CoreResult<Vec<Appended>> {
        self.deliver_to(access, accounts, raw, MailboxRole::Inbox)
            .await
    }

    /// Delivers a message into the mailbox with `role` (Inbox, or Junk for
    /// quarantined mail) of each account, atomically.
    pub async fn deliver_to(
        &self,
        access: &Access,
        accounts: &[PrincipalId],
        raw: Vec<u8>,
        role: MailboxRole,
    ) -> CoreResult<Vec<Appended>> {
        let mut inboxes = Vec::with_capacity(accounts.len());
        for &account in accounts {
            self.require_writer(access, account)?;
            let inbox = self
                .store
                .list_mailboxes(account)
                .await?
                .into_iter()
                .find(|m| m.role == Some(role))
                .ok_or_else(|| CoreError::NotFound {
                    kind: "mailbox for delivery of account",
                    name: format!("{account} ({})", role.as_str()),
                })?;
            if !inboxes.iter().any(|(id, _)| *id == inbox.id) {
                inboxes.push((inbox.id, account));
            }
        }
        let bytes = raw.len() as u64;
        let appended = self
            .store_message(
                &inboxes
                    .iter()
                    .map(|&(id, account)| (account, id))
                    .collect::<Vec<_>>(),
                raw,
                SystemFlags::default(),
                vec![],
                None,
            )
            .await?;
        for (a, &(_, account)) in appended.iter().zip(&inboxes) {
            self.record(
                access,
                Event::new(Operation::Create, Some(account))
                    .container(role.default_name())
                    .objects(vec![a.message.0])
                    .bytes(bytes),
            )
            .await?;
        }
        for a in &appended {
            self.announce(a.mailbox);
        }
        Ok(appended)
    }

    /// Lists a mailbox's messages with their summaries.
    pub async fn list_messages(
        &self,
        access: &Access,
        mailbox: MailboxId,
    ) -> CoreResult<Vec<MessageRecord>> {
        let target = self.mailbox(access, mailbox).await?;
        self.require_reader(access, target.account, mailbox)?;
        let messages = self.store.list_messages(target.account, mailbox).await?;
        let bytes = messages.iter().map(|m| m.summary.len() as u64).sum();
        self.record(
            access,
            Event::new(Operation::ReadHeader, Some(target.account))
                .container(target.name)
                .objects(messages.iter().map(|m| m.message.0).collect())
                .bytes(bytes),
        )
        .await?;
        Ok(messages)
    }

    /// Reads a whole raw message by UID.
    pub async fn read_message(
        &self,
        access: &Access,
        mailbox: MailboxId,
        uid: u32,
    ) -> CoreResult<Vec<u8>> {
        let target = self.mailbox(access, mailbox).await?;
        self.require_reader(access, target.account, mailbox)?;
        let record = self
            .store
            .get_messages(target.account, mailbox, &[uid])
            .await?
            .pop()
            .ok_or_else(|| CoreError::NotFound {
                kind: "message with UID",
                name: uid.to_string(),
            })?;
        let raw = self.store.read_blob(record.blob).await?;
        self.record(
            access,
            Event::new(Operation::ReadBody, Some(target.account))
                .container(target.name)
                .objects(vec![record.message.0])
                .bytes(raw.len() as u64),
        )
        .await?;
        Ok(raw)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summarizes_headers_and_threading() {
        let raw = b"From: \"Alice Example\" <Alice@Example.org>\r\n\
To: bob@example.org, Carol <carol@example.net>\r\n\
Subject: =?utf-8?q?Gr=C3=BC=C3=9Fe?=\r\n\
Message-ID: <m2@example.org>\r\n\
In-Reply-To: <m1@example.org>\r\n\
References: <m0@example.org> <m1@example.org>\r\n\
Date: Tue, 1 Sep 2026 10:00:00 +0000\r\n\
\r\n\
hello\r\n";
        let (s, refs) = summarize(raw);
        assert_eq!(s.subject.as_deref(), Some("Grüße"));
        assert_eq!(s.from[0].address.as_deref(), Some("alice@example.org"));
        assert_eq!(s.from[0].name.as_deref(), Some("Alice Example"));
        assert_eq!(s.to.len(), 2);
        assert_eq!(s.message_id.as_deref(), Some("m2@example.org"));
        assert_eq!(
            refs,
            vec!["m1@example.org", "m1@example.org", "m0@example.org"]
        );
        assert_eq!(s.date, Some(1_788_256_800));
    }

    #[test]
    fn summarizes_garbage_without_panicking() {
        for raw in [
            &b""[..],
            b"\r\n\r\n",
            b"From: <<<@@@>>>\r\n\r\n",
            &[0xff, 0xfe, 0, 1],
        ] {
            let _ = summarize(raw);
        }
    }
}
