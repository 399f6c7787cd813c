//! Aggregating selected entries into what an incident asks: sessions, the
//! sessions grouped by (principal, client address, client software), who
//! read an account's data, and per account what was read, searched,
//! listed and changed. [`Activity::add`] takes one entry at a time, so it
//! runs over [`crate::query::entries`] without holding the entries; what it
//! keeps grows with the answer (sessions, messages read), not the ledger.
//!
//! Times are milliseconds since the epoch; the caller shows them in its
//! time zone. Owners are account ids; the caller names them.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::Path;

use serde::Serialize;

use crate::query::{Filter, entries};
use crate::{Record, Result};

/// Operations that return message content.
pub const READS: [&str; 4] = ["read-header", "read-body", "read-attachment", "export"];

/// Whether a container is a calendar or address book (core names them
/// `calendar:NAME` and `addressbook:NAME`), whose objects are not messages.
pub fn is_collection(container: &str) -> bool {
    container.starts_with("calendar:") || container.starts_with("addressbook:")
}

/// Operations that change data.
pub const CHANGES: [&str; 9] = [
    "create",
    "modify",
    "delete",
    "move",
    "flag",
    "share",
    "rule-change",
    "credential-change",
    "administer",
];

/// Whether `operation` returns message content.
pub fn is_read(operation: &str) -> bool {
    READS.contains(&operation)
}

/// One session: who, from where, with what software, when, how much.
#[derive(Serialize, Clone, Debug, Default)]
pub struct SessionSummary {
    /// The session id.
    pub session: String,
    /// Who authenticated (the account, once one logged in).
    pub principal: String,
    /// How.
    pub auth: String,
    /// The client's address, `-` when there was none.
    pub client: String,
    /// The protocol.
    pub protocol: String,
    /// Every software name the session told, in order (usually one).
    pub client_software: Vec<String>,
    /// First entry.
    pub first: i64,
    /// Last entry.
    pub last: i64,
    /// Entries.
    pub entries: usize,
    /// Successful logins.
    pub logins: usize,
    /// Failed logins.
    pub failed_logins: usize,
    /// Message-reading entries (one may name many messages).
    pub reads: usize,
    /// Bytes of user data returned.
    pub bytes: u64,
}

impl SessionSummary {
    /// The session's software as one text, `-` when it told none.
    pub fn software(&self) -> String {
        if self.client_software.is_empty() {
            "-".into()
        } else {
            self.client_software.join(" / ")
        }
    }
}

/// Sessions of one principal from one address with one client software.
#[derive(Serialize, Clone, Debug, Default)]
pub struct SessionGroup {
    /// Who authenticated.
    pub principal: String,
    /// From where.
    pub client: String,
    /// With what software (`-`: it did not say).
    pub client_software: String,
    /// Protocols of these sessions.
    pub protocols: BTreeSet<String>,
    /// Authentication methods of these sessions.
    pub auth: BTreeSet<String>,
    /// How many sessions.
    pub sessions: usize,
    /// Their entries.
    pub entries: usize,
    /// Successful logins.
    pub logins: usize,
    /// Failed logins.
    pub failed_logins: usize,
    /// Message-reading entries.
    pub reads: usize,
    /// Bytes of user data returned.
    pub bytes: u64,
    /// First entry of any of them.
    pub first: i64,
    /// Last entry of any of them.
    pub last: i64,
}

/// One principal at one address that read an account's messages.
#[derive(Serialize, Clone, Debug, Default)]
pub struct Reader {
    /// Who.
    pub principal: String,
    /// From where.
    pub client: String,
    /// Protocol of the first read.
    pub protocol: String,
    /// How it authenticated.
    pub auth: String,
    /// Every software name its reads named.
    pub client_software: BTreeSet<String>,
    /// The messages read.
    pub messages: BTreeSet<i64>,
    /// Bytes returned.
    pub bytes: u64,
    /// First read.
    pub first: i64,
    /// Last read.
    pub last: i64,
}

/// One message read, with how and in which sessions.
#[derive(Serialize, Clone, Debug, Default)]
pub struct MessageRead {
    /// The mailbox it was read in.
    pub mailbox: String,
    /// When it was first read.
    pub first_read: i64,
    /// How (read-header, read-body, ...).
    pub operations: BTreeSet<String>,
    /// In which sessions.
    pub sessions: BTreeSet<String>,
}

/// One search (the consecutive search entries of one session in one
/// mailbox: one per batch examined).
#[derive(Serialize, Clone, Debug, Default)]
pub struct Search {
    /// When.
    pub at: i64,
    /// Which session.
    pub session: String,
    /// In which mailbox.
    pub mailbox: String,
    /// Ledger entries of this search.
    pub entries: usize,
    /// Messages examined or found.
    pub objects: Vec<i64>,
}

/// A change or a listing.
#[derive(Serialize, Clone, Debug, Default)]
pub struct Other {
    /// When.
    pub at: i64,
    /// Which session.
    pub session: String,
    /// What.
    pub operation: String,
    /// In which container.
    pub container: String,
    /// How many objects.
    pub objects: u64,
    /// The ids of what was listed or changed, as ranges.
    pub ids: Vec<(i64, i64)>,
    /// `ok`, `denied`, `failed: ...`.
    pub outcome: String,
}

/// What happened to one account's data.
#[derive(Serialize, Clone, Debug, Default)]
pub struct AccountActivity {
    /// The account (`None`: entries about no account, such as logins of
    /// unknown names).
    pub owner: Option<i64>,
    /// Bytes of messages returned.
    pub bytes: u64,
    /// Every message read, by id.
    pub messages_read: BTreeMap<i64, MessageRead>,
    /// Calendar objects and contacts read, by collection (`calendar:NAME`,
    /// `addressbook:NAME`): their ids are not message ids.
    pub collection_reads: BTreeMap<String, BTreeSet<i64>>,
    /// Searches.
    pub searches: Vec<Search>,
    /// Changes.
    pub changes: Vec<Other>,
    /// Listings and other reads without message content.
    pub listings: Vec<Other>,
}

/// Everything aggregated from a selection of entries.
#[derive(Clone, Debug, Default)]
pub struct Activity {
    /// Entries seen.
    pub entries: usize,
    /// Time of the first.
    pub first: Option<i64>,
    /// Time of the last.
    pub last: Option<i64>,
    sessions: HashMap<String, SessionSummary>,
    accounts: BTreeMap<Option<i64>, AccountActivity>,
    readers: BTreeMap<(String, String), Reader>,
    /// Entries of the address list returned, by container
    /// (`directory:DOMAIN` names principals, `directory-contacts:DOMAIN`
    /// the organisation's contacts).
    directory: BTreeMap<String, BTreeSet<i64>>,
    /// Per session, the account and index of its search in progress.
    open_search: HashMap<String, (Option<i64>, String, usize)>,
}

/// Totals over an activity.
#[derive(Serialize, Clone, Debug, Default)]
pub struct Totals {
    /// Entries.
    pub entries: usize,
    /// Sessions.
    pub sessions: usize,
    /// Accounts whose messages were read.
    pub accounts: usize,
    /// Messages read.
    pub messages_read: usize,
    /// Bytes of messages returned.
    pub bytes: u64,
    /// Searches.
    pub searches: usize,
    /// Changes.
    pub changes: usize,
}

impl Activity {
    /// Reads every entry of the ledger in `dir` that `filter` selects.
    pub fn collect(dir: &Path, filter: &Filter) -> Result<Activity> {
        let mut activity = Activity::default();
        for record in entries(dir, filter.clone())? {
            activity.add(&record?);
        }
        Ok(activity)
    }

    /// Adds one entry (entries must come in ledger order).
    pub fn add(&mut self, r: &Record) {
        self.entries += 1;
        self.first.get_or_insert(r.at);
        self.last = Some(r.at);
        let op = r.operation.as_str();
        let s = self
            .sessions
            .entry(r.session.clone())
            .or_insert_with(|| SessionSummary {
                session: r.session.clone(),
                principal: r.principal.clone(),
                auth: r.auth.clone(),
                client: r.client.clone().unwrap_or_else(|| "-".into()),
                protocol: r.protocol.clone(),
                first: r.at,
                ..Default::default()
            });
        s.last = r.at;
        s.entries += 1;
        // A session is its account's once one logged in (the login
        // attempt itself is recorded as the login service).
        if r.principal.contains('@') {
            s.principal = r.principal.clone();
            s.auth = r.auth.clone();
        }
        if let Some(software) = &r.client_software
            && !s.client_software.contains(software)
        {
            s.client_software.push(software.clone());
        }
        match op {
            "login-success" => s.logins += 1,
            "login-failure" => s.failed_logins += 1,
            _ => {}
        }
        if op.starts_with("login") {
            self.open_search.remove(&r.session);
            return;
        }
        let a = self
            .accounts
            .entry(r.owner)
            .or_insert_with(|| AccountActivity {
                owner: r.owner,
                ..Default::default()
            });
        let mailbox = r.container.clone().unwrap_or_default();
        if op == "directory-query" && mailbox.starts_with("directory") {
            self.directory
                .entry(mailbox.clone())
                .or_default()
                .extend(r.object_ids());
        }
        if is_read(op) {
            s.reads += 1;
            s.bytes += r.bytes;
            a.bytes += r.bytes;
            let collection = is_collection(&mailbox);
            if collection {
                a.collection_reads
                    .entry(mailbox.clone())
                    .or_default()
                    .extend(r.object_ids());
            }
            for id in r.object_ids().filter(|_| !collection) {
                let m = a.messages_read.entry(id).or_insert_with(|| MessageRead {
                    mailbox: mailbox.clone(),
                    first_read: r.at,
                    ..Default::default()
                });
                m.operations.insert(r.operation.clone());
                m.sessions.insert(r.session.clone());
            }
            let client = r.client.clone().unwrap_or_else(|| "-".into());
            let reader = self
                .readers
                .entry((r.principal.clone(), client.clone()))
                .or_insert_with(|| Reader {
                    principal: r.principal.clone(),
                    client,
                    protocol: r.protocol.clone(),
                    auth: r.auth.clone(),
                    first: r.at,
                    ..Default::default()
                });
            if !collection {
                reader.messages.extend(r.object_ids());
            }
            reader.bytes += r.bytes;
            reader.last = r.at;
            reader.client_software.extend(r.client_software.clone());
            self.open_search.remove(&r.session);
        } else if op == "search" {
            match self.open_search.get(&r.session) {
                Some((owner, m, index)) if *owner == r.owner && *m == mailbox => {
                    let search = &mut a.searches[*index];
                    search.entries += 1;
                    search.objects.extend(r.object_ids());
                }
                _ => {
                    a.searches.push(Search {
                        at: r.at,
                        session: r.session.clone(),
                        mailbox: mailbox.clone(),
                        entries: 1,
                        objects: r.object_ids().collect(),
                    });
                    self.open_search
                        .insert(r.session.clone(), (r.owner, mailbox, a.searches.len() - 1));
                }
            }
        } else {
            self.open_search.remove(&r.session);
            let item = Other {
                at: r.at,
                session: r.session.clone(),
                operation: r.operation.clone(),
                container: mailbox,
                objects: r.object_count(),
                ids: r.objects.clone(),
                outcome: r.outcome.clone(),
            };
            if CHANGES.contains(&op) {
                a.changes.push(item);
            } else {
                a.listings.push(item);
            }
        }
    }

    /// Every session, in the order they began.
    pub fn sessions(&self) -> Vec<&SessionSummary> {
        let mut out: Vec<&SessionSummary> = self.sessions.values().collect();
        out.sort_by(|a, b| (a.first, &a.session).cmp(&(b.first, &b.session)));
        out
    }

    /// The sessions grouped by (principal, client address, client
    /// software), ordered by those.
    pub fn groups(&self) -> Vec<SessionGroup> {
        let mut groups: BTreeMap<(String, String, String), SessionGroup> = BTreeMap::new();
        for s in self.sessions.values() {
            let key = (s.principal.clone(), s.client.clone(), s.software());
            let g = groups.entry(key).or_insert_with(|| SessionGroup {
                principal: s.principal.clone(),
                client: s.client.clone(),
                client_software: s.software(),
                first: s.first,
                last: s.last,
                ..Default::default()
            });
            g.protocols.insert(s.protocol.clone());
            g.auth.insert(s.auth.clone());
            g.sessions += 1;
            g.entries += s.entries;
            g.logins += s.logins;
            g.failed_logins += s.failed_logins;
            g.reads += s.reads;
            g.bytes += s.bytes;
            g.first = g.first.min(s.first);
            g.last = g.last.max(s.last);
        }
        groups.into_values().collect()
    }

    /// How many sessions share each value of `key`, ordered by value.
    pub fn count_sessions_by(
        &self,
        key: impl Fn(&SessionSummary) -> String,
    ) -> Vec<(String, usize)> {
        let mut counts: BTreeMap<String, usize> = BTreeMap::new();
        for s in self.sessions.values() {
            *counts.entry(key(s)).or_default() += 1;
        }
        counts.into_iter().collect()
    }

    /// What happened to each account's data, by account id.
    pub fn accounts(&self) -> impl Iterator<Item = &AccountActivity> {
        self.accounts.values()
    }

    /// Who read messages, by (principal, client address).
    pub fn readers(&self) -> impl Iterator<Item = &Reader> {
        self.readers.values()
    }

    /// Every message id read.
    pub fn messages_read(&self) -> BTreeSet<i64> {
        self.accounts
            .values()
            .flat_map(|a| a.messages_read.keys().copied())
            .collect()
    }

    /// The address-list entries returned, by container.
    pub fn directory_entries(&self) -> &BTreeMap<String, BTreeSet<i64>> {
        &self.directory
    }

    /// The ids of every message read, by the account that owns them (as
    /// the store finds messages: by account and id).
    pub fn messages_read_by_owner(&self) -> BTreeMap<i64, BTreeSet<i64>> {
        self.accounts
            .iter()
            .filter_map(|(owner, a)| {
                let owner = (*owner)?;
                let read: BTreeSet<i64> = a.messages_read.keys().copied().collect();
                (!read.is_empty()).then_some((owner, read))
            })
            .collect()
    }

    /// The totals.
    pub fn totals(&self) -> Totals {
        let accounts = || self.accounts.values();
        Totals {
            entries: self.entries,
            sessions: self.sessions.len(),
            accounts: accounts().filter(|a| !a.messages_read.is_empty()).count(),
            messages_read: accounts().map(|a| a.messages_read.len()).sum(),
            bytes: accounts().map(|a| a.bytes).sum(),
            searches: accounts().map(|a| a.searches.len()).sum(),
            changes: accounts().map(|a| a.changes.len()).sum(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ranges;

    fn entry(at: i64, session: &str, client: &str, software: Option<&str>, op: &str) -> Record {
        Record {
            at,
            session: session.into(),
            principal: "alice@example.org".into(),
            auth: "password".into(),
            client: Some(client.into()),
            client_software: software.map(Into::into),
            protocol: "imap".into(),
            operation: op.into(),
            owner: Some(1),
            container: Some("INBOX".into()),
            objects: ranges(&[at]),
            bytes: 10,
            outcome: "ok".into(),
            ..Record::default()
        }
    }

    /// Reads of calendar objects and contacts are theirs, not messages.
    #[test]
    fn collection_reads_are_not_counted_as_messages() {
        let mut a = Activity::default();
        a.add(&Record {
            container: Some("calendar:work".into()),
            ..entry(5, "s1", "192.0.2.1", None, "read-body")
        });
        a.add(&entry(6, "s1", "192.0.2.1", None, "read-body"));
        assert_eq!(a.messages_read(), BTreeSet::from([6]));
        let account = &a.accounts[&Some(1)];
        assert_eq!(
            account.collection_reads["calendar:work"],
            BTreeSet::from([5])
        );
        assert_eq!(a.readers.len(), 1);
    }

    /// A thousand short sessions of two clients make two groups.
    #[test]
    fn sessions_group_by_principal_address_and_software() {
        let mut a = Activity::default();
        for i in 0..1000 {
            let (client, software) = if i % 4 == 0 {
                ("203.0.113.7", None)
            } else {
                ("192.0.2.1", Some("Mozilla Thunderbird 128.5.0"))
            };
            let session = format!("s{i}");
            // The login entry comes before the client tells its name.
            a.add(&Record {
                principal: "service:login".into(),
                ..entry(i, &session, client, None, "login-success")
            });
            a.add(&entry(i, &session, client, software, "read-body"));
        }
        let groups = a.groups();
        assert_eq!(groups.len(), 2, "{groups:#?}");
        let tb = &groups[0];
        assert_eq!(
            (tb.client.as_str(), tb.client_software.as_str()),
            ("192.0.2.1", "Mozilla Thunderbird 128.5.0")
        );
        assert_eq!(
            (tb.sessions, tb.entries, tb.reads, tb.logins),
            (750, 1500, 750, 750)
        );
        assert_eq!((tb.first, tb.last), (1, 999));
        let other = &groups[1];
        assert_eq!((other.client_software.as_str(), other.sessions), ("-", 250));
        assert_eq!(a.totals().messages_read, 1000);
        assert_eq!(a.sessions().len(), 1000);
        assert_eq!(a.sessions()[0].session, "s0");
        let readers: Vec<&Reader> = a.readers().collect();
        assert_eq!(readers.len(), 2);
        assert_eq!(
            a.count_sessions_by(|s| s.software()),
            vec![
                ("-".to_string(), 250),
                ("Mozilla Thunderbird 128.5.0".to_string(), 750)
            ]
        );
    }

    /// The search entries of one command (one per batch) are one search;
    /// a read in between starts another.
    #[test]
    fn consecutive_search_entries_are_one_search() {
        let mut a = Activity::default();
        for (at, op) in [
            (1, "search"),
            (2, "search"),
            (3, "read-body"),
            (4, "search"),
        ] {
            a.add(&entry(at, "s", "192.0.2.1", None, op));
        }
        let account = a.accounts().next().unwrap();
        assert_eq!(account.searches.len(), 2);
        assert_eq!(account.searches[0].entries, 2);
        assert_eq!(account.searches[0].objects, vec![1, 2]);
        assert_eq!(a.totals().searches, 2);
    }
}
