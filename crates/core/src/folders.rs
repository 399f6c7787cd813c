//! Mailbox management and the message calls a synchronising client needs:
//! create, rename, delete, subscribe, status, fetch by UID, copy, move and
//! the change log.

use rampart_store::{
    Change, FlagChange, Mailbox, MailboxId, MailboxRole, MailboxStatus, MessageRecord, NewMailbox,
    PrincipalId,
};

use crate::{Access, Core, CoreError, CoreResult, Event, Operation};

/// Longest mailbox name, in bytes of UTF-8.
pub const MAX_MAILBOX_NAME_BYTES: usize = 512;
/// Deepest mailbox hierarchy (levels separated by `/`).
pub const MAX_MAILBOX_DEPTH: usize = 16;

/// Checks a full mailbox name: `/`-separated, no empty level, no control
/// characters, within [`MAX_MAILBOX_NAME_BYTES`] and [`MAX_MAILBOX_DEPTH`].
pub fn check_mailbox_name(name: &str) -> CoreResult<()> {
    if name.is_empty() {
        return Err(CoreError::Invalid("a mailbox name cannot be empty".into()));
    }
    if name.len() > MAX_MAILBOX_NAME_BYTES {
        return Err(CoreError::Limit {
            what: format!("a mailbox name of {} bytes", name.len()),
            limit: MAX_MAILBOX_NAME_BYTES as u64,
            key: "built-in mailbox name limit",
        });
    }
    if name.chars().any(char::is_control) {
        return Err(CoreError::Invalid(
            "a mailbox name cannot contain control characters".into(),
        ));
    }
    let levels: Vec<&str> = name.split('/').collect();
    if levels.iter().any(|l| l.is_empty()) {
        return Err(CoreError::Invalid(format!(
            "mailbox name {name:?} has an empty level"
        )));
    }
    if levels.len() > MAX_MAILBOX_DEPTH {
        return Err(CoreError::Limit {
            what: format!("a mailbox {} levels deep", levels.len()),
            limit: MAX_MAILBOX_DEPTH as u64,
            key: "built-in mailbox depth limit",
        });
    }
    Ok(())
}

fn is_inbox_name(name: &str) -> bool {
    name.eq_ignore_ascii_case("INBOX")
}

/// A message with derived data, or its raw content where there is none yet.
#[derive(Debug)]
pub struct Derived {
    /// The message.
    pub record: MessageRecord,
    /// Derived data kept before.
    pub derived: Option<Vec<u8>>,
    /// The raw message, when there was no derived data.
    pub raw: Option<Vec<u8>>,
}

/// Mailboxes whose owner [`Core::owned`] remembers at most.
const MAX_REMEMBERED_MAILBOXES: usize = 100_000;

/// A mailbox's owner and name, as the hot message calls need them.
#[derive(Clone, Debug)]
pub(crate) struct OwnedMailbox {
    pub(crate) account: PrincipalId,
    pub(crate) name: String,
}

/// Message files read together up to this many bytes are read on the
/// calling thread (see `Store::read_small_blobs`).
const SMALL_READ_BYTES: u64 = 256 * 1024;

impl Core {
    fn own_account(&self, access: &Access) -> CoreResult<PrincipalId> {
        access
            .account()
            .ok_or_else(|| CoreError::Denied("only an account has mailboxes".into()))
    }

    /// A mailbox of the caller's own account, checked.
    async fn own_mailbox(&self, access: &Access, id: MailboxId) -> CoreResult<Mailbox> {
        let mailbox = self.mailbox(access, id).await?;
        self.require_reader(access, mailbox.account, id)?;
        Ok(mailbox)
    }

    /// Bytes the caller's account uses and its quota (0 = unlimited).
    pub async fn quota(&self, access: &Access) -> CoreResult<(u64, u64)> {
        let account = self.own_account(access)?;
        let p = self
            .store
            .get_principal(account)
            .await?
            .ok_or_else(|| CoreError::NotFound {
                kind: "account",
                name: account.to_string(),
            })?;
        Ok((p.used_bytes, p.quota_bytes))
    }

    /// The owner and name of one of the caller's mailboxes, checked. The
    /// owner of a mailbox never changes and ids are never reused, so this is
    /// remembered (names are forgotten on rename) and the hot calls below
    /// make no query for it.
    pub(crate) async fn owned(&self, access: &Access, id: MailboxId) -> CoreResult<OwnedMailbox> {
        let known = self
            .mailbox_owners
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&id)
            .cloned();
        if let Some(m) = known {
            self.require_reader(access, m.account, id)?;
            return Ok(m);
        }
        let mailbox = self.own_mailbox(access, id).await?;
        let m = OwnedMailbox {
            account: mailbox.account,
            name: mailbox.name,
        };
        let mut owners = self
            .mailbox_owners
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if owners.len() >= MAX_REMEMBERED_MAILBOXES {
            owners.clear();
        }
        owners.insert(id, m.clone());
        Ok(m)
    }

    /// Forgets remembered mailbox names (after a rename or delete).
    fn forget_mailboxes(&self) {
        self.mailbox_owners
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clear();
    }

    /// Creates a mailbox of the caller's account, with any missing parents.
    pub async fn create_mailbox(&self, access: &Access, name: &str) -> CoreResult<Mailbox> {
        let account = self.own_account(access)?;
        check_mailbox_name(name)?;
        if is_inbox_name(name) {
            return Err(CoreError::AlreadyExists("INBOX".into()));
        }
        let existing = self.store.list_mailboxes(account).await?;
        if existing.iter().any(|m| m.name == name) {
            return Err(CoreError::AlreadyExists(format!("mailbox {name:?}")));
        }
        let mut created = None;
        let mut prefix = String::new();
        for level in name.split('/') {
            if !prefix.is_empty() {
                prefix.push('/');
            }
            prefix.push_str(level);
            if existing.iter().any(|m| m.name == prefix) {
                continue;
            }
            let mailbox = self
                .store
                .create_mailbox(
                    account,
                    NewMailbox {
                        name: prefix.clone(),
                        role: None,
                    },
                )
                .await?;
            self.record(
                access,
                Event::new(Operation::Create, Some(account))
                    .container(prefix.clone())
                    .objects(vec![mailbox.id.0]),
            )
            .await?;
            created = Some(mailbox);
        }
        created.ok_or_else(|| CoreError::AlreadyExists(format!("mailbox {name:?}")))
    }

    /// Renames a mailbox of the caller's account and every mailbox under it.
    pub async fn rename_mailbox(
        &self,
        access: &Access,
        id: MailboxId,
        new_name: &str,
    ) -> CoreResult<()> {
        let mailbox = self.own_mailbox(access, id).await?;
        check_mailbox_name(new_name)?;
        if mailbox.role == Some(MailboxRole::Inbox) || is_inbox_name(new_name) {
            return Err(CoreError::Invalid(
                "INBOX cannot be renamed, and no mailbox can be renamed to INBOX".into(),
            ));
        }
        let old_prefix = format!("{}/", mailbox.name);
        if new_name.starts_with(&old_prefix) {
            return Err(CoreError::Invalid(
                "a mailbox cannot be moved under itself".into(),
            ));
        }
        let all = self.store.list_mailboxes(mailbox.account).await?;
        let mut renames = vec![(mailbox.id, new_name.to_owned())];
        for child in &all {
            if let Some(rest) = child.name.strip_prefix(&old_prefix) {
                let renamed = format!("{new_name}/{rest}");
                check_mailbox_name(&renamed)?;
                renames.push((child.id, renamed));
            }
        }
        // Missing parents of the new name are created first (RFC 9051 §6.3.6).
        if let Some((parent, _)) = new_name.rsplit_once('/')
            && !all.iter().any(|m| m.name == parent)
        {
            self.create_mailbox(access, parent).await?;
        }
        self.store
            .rename_mailboxes(mailbox.account, &renames)
            .await?;
        self.forget_mailboxes();
        self.record(
            access,
            Event::new(Operation::Modify, Some(mailbox.account))
                .container(format!("{} -> {new_name}", mailbox.name))
                .objects(renames.iter().map(|(id, _)| id.0).collect()),
        )
        .await?;
        Ok(())
    }

    /// Deletes a mailbox of the caller's account with its messages. INBOX
    /// and mailboxes that have children are refused.
    pub async fn delete_mailbox(&self, access: &Access, id: MailboxId) -> CoreResult<()> {
        let mailbox = self.own_mailbox(access, id).await?;
        if mailbox.role == Some(MailboxRole::Inbox) {
            return Err(CoreError::Invalid("INBOX cannot be deleted".into()));
        }
        let prefix = format!("{}/", mailbox.name);
        if self
            .store
            .list_mailboxes(mailbox.account)
            .await?
            .iter()
            .any(|m| m.name.starts_with(&prefix))
        {
            return Err(CoreError::HasChildren(mailbox.name));
        }
        let messages = self.store.list_messages(mailbox.account, id).await?;
        self.store.delete_mailbox(mailbox.account, id).await?;
        self.forget_mailboxes();
        self.record(
            access,
            Event::new(Operation::Delete, Some(mailbox.account))
                .container(mailbox.name)
                .objects(
                    std::iter::once(id.0)
                        .chain(messages.iter().map(|m| m.message.0))
                        .collect(),
                ),
        )
        .await?;
        self.announce(id);
        Ok(())
    }

    /// The names the caller subscribes to, whether or not they exist
    /// (RFC 9051 §6.3.7: a subscription outlives its mailbox).
    pub async fn subscriptions(&self, access: &Access) -> CoreResult<Vec<String>> {
        let account = self.own_account(access)?;
        Ok(self.store.subscriptions(account).await?)
    }

    /// Subscribes the caller to a mailbox name, or unsubscribes; the name
    /// need not exist (RFC 9051 §6.3.7).
    pub async fn set_subscription(&self, access: &Access, name: &str, on: bool) -> CoreResult<()> {
        let account = self.own_account(access)?;
        self.store.set_subscription(account, name, on).await?;
        self.record(
            access,
            Event::new(Operation::Modify, Some(account)).container(name.to_string()),
        )
        .await
    }

    /// Claims the messages of a mailbox that no session has seen as
    /// `\Recent` yet, for the caller's session (RFC 3501 §2.3.2).
    pub async fn claim_recent(&self, access: &Access, id: MailboxId) -> CoreResult<(u32, u32)> {
        let mailbox = self.owned(access, id).await?;
        Ok(self.store.claim_recent(mailbox.account, id).await?)
    }

    /// A mailbox of the caller's with its message counts.
    pub async fn mailbox_status(
        &self,
        access: &Access,
        id: MailboxId,
    ) -> CoreResult<(Mailbox, MailboxStatus)> {
        let owned = self.owned(access, id).await?;
        let (mailbox, status) = self.store.mailbox_status(owned.account, id).await?;
        self.record(
            access,
            Event::new(Operation::ListContainers, Some(mailbox.account))
                .container(mailbox.name.clone())
                .objects(vec![id.0])
                .metadata(),
        )
        .await?;
        Ok((mailbox, status))
    }

    /// The UIDs, flags and MODSEQs of a mailbox's messages (what SELECT
    /// needs), without their summaries; records a metadata-only listing.
    pub async fn list_items(
        &self,
        access: &Access,
        id: MailboxId,
    ) -> CoreResult<(Mailbox, Vec<MessageRecord>)> {
        let mailbox = self.own_mailbox(access, id).await?;
        // RFC 9051 §6.3.2 SELECT needs only state: the summaries (user
        // data) are not even read.
        let messages = self.store.list_message_state(mailbox.account, id).await?;
        self.record(
            access,
            Event::new(Operation::ListItems, Some(mailbox.account))
                .container(mailbox.name.clone())
                .objects(messages.iter().map(|m| m.message.0).collect())
                .metadata(),
        )
        .await?;
        Ok((mailbox, messages))
    }

    /// Messages of a mailbox by UID, with what `read` asks for. The ledger
    /// entry follows from `read` (see [`MessageRead`]); the raw content is
    /// there for [`MessageRead::Header`] (the header only),
    /// [`MessageRead::Body`] and a text search.
    pub async fn fetch_messages(
        &self,
        access: &Access,
        id: MailboxId,
        uids: &[u32],
        read: MessageRead,
    ) -> CoreResult<Vec<(MessageRecord, Option<Vec<u8>>)>> {
        let mailbox = self.owned(access, id).await?;
        let mut records = self.store.get_messages(mailbox.account, id, uids).await?;
        read.strip(&mut records);
        let reads_file = read.reads_file();
        let mut bodies = self
            .read_recorded(access, mailbox, read.operation(), &records, |_, r| {
                if reads_file {
                    (r.size, true)
                } else {
                    (r.summary.len() as u64, false)
                }
            })
            .await?;
        if read == MessageRead::Header {
            for raw in bodies.iter_mut().flatten() {
                let (header, blank) = crate::header::header_end(raw);
                raw.truncate(header + blank);
            }
        }
        Ok(records.into_iter().zip(bodies).collect())
    }

    /// Records a read of `records` and reads the message files of those
    /// `returned` says are needed (it gives, for each record and its index,
    /// the bytes returned and whether its file is read). What goes out is
    /// known from the rows, so the entry is synced while the files are read;
    /// nothing is returned before both are done.
    async fn read_recorded(
        &self,
        access: &Access,
        mailbox: OwnedMailbox,
        purpose: Operation,
        records: &[MessageRecord],
        returned: impl Fn(usize, &MessageRecord) -> (u64, bool),
    ) -> CoreResult<Vec<Option<Vec<u8>>>> {
        let mut event = Event::new(purpose, Some(mailbox.account))
            .container(mailbox.name)
            .objects(records.iter().map(|r| r.message.0).collect())
            .bytes(
                records
                    .iter()
                    .enumerate()
                    .map(|(i, r)| returned(i, r).0)
                    .sum(),
            );
        if purpose == Operation::ListItems {
            // Flags, sizes and dates only (summaries were stripped): no
            // user data to wait for.
            event = event.metadata();
        }
        let (bodies, recorded) = tokio::join!(
            self.read_blobs(records, |i| returned(i, &records[i]).1),
            self.record(access, event)
        );
        recorded?;
        bodies
    }

    /// Reads (and verifies) the blobs of the records whose index `wanted`
    /// selects, in parallel: on a full-mailbox download this is where the
    /// time goes.
    async fn read_blobs(
        &self,
        records: &[MessageRecord],
        wanted: impl Fn(usize) -> bool,
    ) -> CoreResult<Vec<Option<Vec<u8>>>> {
        let mut bodies: Vec<Option<Vec<u8>>> = vec![None; records.len()];
        let wanted: Vec<usize> = (0..records.len()).filter(|&i| wanted(i)).collect();
        if wanted.is_empty() {
            return Ok(bodies);
        }
        let total: u64 = wanted.iter().map(|&i| records[i].size).sum();
        if total <= SMALL_READ_BYTES {
            let hashes = wanted.iter().map(|&i| records[i].blob).collect();
            for (i, raw) in wanted
                .into_iter()
                .zip(self.store.read_small_blobs(hashes).await?)
            {
                bodies[i] = Some(raw);
            }
            return Ok(bodies);
        }
        // Two groups read side by side (one per core of a small server),
        // each in one trip to the store's blocking pool.
        let groups = if wanted.len() >= 8 { 2 } else { 1 };
        let mut reads = tokio::task::JoinSet::new();
        for g in 0..groups {
            let indices: Vec<usize> = wanted.iter().copied().skip(g).step_by(groups).collect();
            let hashes = indices.iter().map(|&i| records[i].blob).collect();
            let store = self.store.clone();
            reads.spawn(async move { (indices, store.read_blobs(hashes).await) });
        }
        while let Some(done) = reads.join_next().await {
            let (indices, raws) =
                done.map_err(|e| CoreError::Invalid(format!("blob read task failed: {e}")))?;
            for (i, raw) in indices.into_iter().zip(raws?) {
                bodies[i] = Some(raw);
            }
        }
        Ok(bodies)
    }

    /// Messages of a mailbox by UID with the derived data of `kind` that a
    /// protocol computed from them before (see [`Core::remember`]), and the
    /// raw content of those that have none yet. Derived data are what a
    /// protocol computes from a message's header and structure (IMAP's
    /// ENVELOPE and BODYSTRUCTURE), so the read is recorded as one of headers.
    pub async fn fetch_derived(
        &self,
        access: &Access,
        id: MailboxId,
        uids: &[u32],
        kind: &str,
    ) -> CoreResult<Vec<Derived>> {
        let mailbox = self.owned(access, id).await?;
        let (records, cached): (Vec<_>, Vec<_>) = self
            .store
            .get_messages_cached(mailbox.account, id, uids, kind)
            .await?
            .into_iter()
            .unzip();
        let bodies =
            self.read_recorded(access, mailbox, Operation::ReadHeader, &records, |i, r| {
                match &cached[i] {
                    Some(d) => (d.len() as u64, false),
                    None => (r.size, true),
                }
            })
            .await?;
        Ok(records
            .into_iter()
            .zip(bodies)
            .zip(cached)
            .map(|((record, raw), derived)| Derived {
                derived,
                record,
                raw,
            })
            .collect())
    }

    /// Keeps derived data of `kind` for messages of the caller's mailbox, by
    /// UID, so that [`Core::fetch_derived`] need not read them again.
    pub async fn remember(
        &self,
        access: &Access,
        id: MailboxId,
        kind: &str,
        entries: Vec<(u32, Vec<u8>)>,
    ) -> CoreResult<()> {
        let mailbox = self.owned(access, id).await?;
        let uids: Vec<u32> = entries.iter().map(|(u, _)| *u).collect();
        let by_uid: std::collections::HashMap<u32, rampart_store::MessageId> = self
            .store
            .get_messages(mailbox.account, id, &uids)
            .await?
            .into_iter()
            .map(|r| (r.uid, r.message))
            .collect();
        let entries = entries
            .into_iter()
            .filter_map(|(uid, data)| by_uid.get(&uid).map(|m| (*m, data)))
            .collect();
        self.store
            .put_cached(mailbox.account, kind, entries)
            .await?;
        Ok(())
    }

    /// Changes flags of messages by UID; returns each changed UID with its
    /// new MODSEQ.
    pub async fn set_flags(
        &self,
        access: &Access,
        id: MailboxId,
        uids: &[u32],
        change: FlagChange,
    ) -> CoreResult<Vec<(u32, u64)>> {
        let mailbox = self.owned(access, id).await?;
        let changed = self
            .store
            .store_flags(mailbox.account, id, uids, change)
            .await?;
        // The answer is flags, no user data: the entry goes into the
        // ledger's next group without the answer waiting for it.
        self.record(
            access,
            Event::new(Operation::Flag, Some(mailbox.account))
                .container(mailbox.name)
                .objects(changed.iter().map(|(_, _, m)| m.0).collect())
                .metadata(),
        )
        .await?;
        if !changed.is_empty() {
            self.announce(id);
        }
        Ok(changed
            .into_iter()
            .map(|(uid, modseq, _)| (uid, modseq))
            .collect())
    }

    /// Removes messages by UID from a mailbox; returns the new HIGHESTMODSEQ.
    pub async fn remove_messages(
        &self,
        access: &Access,
        id: MailboxId,
        uids: &[u32],
    ) -> CoreResult<u64> {
        let mailbox = self.owned(access, id).await?;
        let messages = self.store.get_messages(mailbox.account, id, uids).await?;
        let modseq = self.store.expunge(mailbox.account, id, uids).await?;
        self.record(
            access,
            Event::new(Operation::Delete, Some(mailbox.account))
                .container(mailbox.name)
                .objects(messages.iter().map(|m| m.message.0).collect()),
        )
        .await?;
        if !messages.is_empty() {
            self.announce(id);
        }
        Ok(modseq)
    }

    /// Copies (or with `remove`, moves) messages between two mailboxes of
    /// the caller's account; returns (source UID, new UID) pairs.
    pub async fn copy_messages(
        &self,
        access: &Access,
        from: MailboxId,
        uids: &[u32],
        to: MailboxId,
        remove: bool,
    ) -> CoreResult<Vec<(u32, u32)>> {
        let source = self.owned(access, from).await?;
        let target = self.owned(access, to).await?;
        if target.account != source.account {
            return Err(CoreError::Invalid(
                "messages are copied only between mailboxes of one account".into(),
            ));
        }
        let account = source.account;
        let messages = self.store.get_messages(account, from, uids).await?;
        let pairs = self
            .store
            .copy_messages(account, from, uids, to, remove)
            .await?;
        let operation = if remove {
            Operation::Move
        } else {
            Operation::Create
        };
        self.record(
            access,
            Event::new(operation, Some(source.account))
                .container(format!("{} -> {}", source.name, target.name))
                .objects(messages.iter().map(|m| m.message.0).collect()),
        )
        .await?;
        if !pairs.is_empty() {
            self.announce(to);
            if remove {
                self.announce(from);
            }
        }
        Ok(pairs)
    }

    /// The change log of one of the caller's mailboxes after `since`.
    /// Recorded only when there is something to report, so that idle
    /// sessions checking for news do not fill the ledger.
    pub async fn changes_since(
        &self,
        access: &Access,
        id: MailboxId,
        since: u64,
    ) -> CoreResult<(Mailbox, Vec<Change>)> {
        let mailbox = self.own_mailbox(access, id).await?;
        if mailbox.highest_modseq <= since {
            return Ok((mailbox, Vec::new()));
        }
        let changes = self.store.changes_since(mailbox.account, id, since).await?;
        if !changes.is_empty() {
            self.record(
                access,
                Event::new(Operation::ListItems, Some(mailbox.account))
                    .container(mailbox.name.clone())
                    .objects(changes.iter().map(|c| c.message.0).collect())
                    .metadata(),
            )
            .await?;
        }
        Ok((mailbox, changes))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mailbox_names() {
        assert!(check_mailbox_name("Work/2026/Q1").is_ok());
        assert!(check_mailbox_name("Entwürfe").is_ok());
        for bad in ["", "/a", "a/", "a//b", "a\u{7}b"] {
            assert!(check_mailbox_name(bad).is_err(), "{bad:?}");
        }
        let deep = vec!["x"; MAX_MAILBOX_DEPTH + 1].join("/");
        assert!(matches!(
            check_mailbox_name(&deep),
            Err(CoreError::Limit { .. })
        ));
        let long = "x".repeat(MAX_MAILBOX_NAME_BYTES + 1);
        assert!(matches!(
            check_mailbox_name(&long),
            Err(CoreError::Limit { .. })
        ));
    }
}

/// What a read of messages returns, and so what the ledger records for it:
/// core derives the entry from the request, so no caller can label a read of
/// mail as a listing of flags.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MessageRead {
    /// UIDs, flags, keywords, MODSEQs, sizes and dates: no user data, so a
    /// metadata entry. Summaries come back empty.
    State,
    /// The state and each message's summary (subject, sender, recipients):
    /// a read of headers.
    Summary,
    /// The summary and each message's header (its raw bytes up to and with
    /// the empty line): a read of headers.
    Header,
    /// The summary and each whole message: a read of bodies.
    Body,
    /// What a search examines: the summaries, and with `text` the whole
    /// messages.
    Search {
        /// Whether the messages' text is searched.
        text: bool,
    },
}

impl MessageRead {
    /// The ledger operation of this read.
    fn operation(self) -> Operation {
        match self {
            MessageRead::State => Operation::ListItems,
            MessageRead::Summary | MessageRead::Header => Operation::ReadHeader,
            MessageRead::Body => Operation::ReadBody,
            MessageRead::Search { .. } => Operation::Search,
        }
    }

    /// Whether the message files are read.
    fn reads_file(self) -> bool {
        matches!(
            self,
            MessageRead::Header | MessageRead::Body | MessageRead::Search { text: true }
        )
    }

    /// Removes what this read does not return.
    fn strip(self, records: &mut [MessageRecord]) {
        if self == MessageRead::State {
            for r in records {
                r.summary = String::new();
            }
        }
    }
}
