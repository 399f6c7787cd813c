//! `rampart ledger ...`: verifying the access ledger, exporting its
//! checkpoints, and the questions an administrator and a data protection
//! officer ask after an incident (report, who-read, subjects, incident).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::io::Write;
use std::path::PathBuf;

use anyhow::{Context, bail};
use clap::{Args, Subcommand, ValueEnum};
use rampart_core::calendar::{civil_from_days, days_from_civil};
use rampart_core::{Core, parse_summary};
use rampart_ledger::{self, Ledger, Record};
use rampart_store::{MessageId, OpenMode};
use serde::Serialize;

use crate::config::Config;

/// `rampart ledger ...`.
#[derive(Subcommand, Debug)]
pub enum LedgerCommand {
    /// Prove that no entry was edited, reordered, inserted or deleted, and
    /// (with exported checkpoints) that the ledger was not cut short.
    Verify {
        /// Checkpoints exported earlier (`ledger checkpoint --export`), kept elsewhere.
        #[arg(long, value_name = "FILE")]
        checkpoints: Option<PathBuf>,
    },
    /// Sign a checkpoint of the current head now and print it.
    Checkpoint {
        /// Print every checkpoint ever signed, as text to keep elsewhere.
        #[arg(long)]
        export: bool,
    },
    /// Everything read or changed, grouped by account and mailbox, with totals.
    Report {
        #[command(flatten)]
        filter: Filter,
        #[arg(long, value_enum, default_value = "markdown")]
        format: Format,
    },
    /// Every principal and address that read an account's data.
    WhoRead {
        #[command(flatten)]
        filter: Filter,
        #[arg(long, value_enum, default_value = "markdown")]
        format: Format,
    },
    /// The persons whose personal data was in what was read, with counts.
    Subjects {
        #[command(flatten)]
        filter: Filter,
        #[arg(long, value_enum, default_value = "markdown")]
        format: Format,
    },
    /// A Markdown report for the data protection officer.
    Incident {
        #[command(flatten)]
        filter: Filter,
    },
}

/// Which entries a question is about.
#[derive(Args, Debug, Default, Clone, Serialize)]
pub struct Filter {
    /// Client address, e.g. 203.0.113.7.
    #[arg(long, value_name = "IP")]
    address: Option<String>,
    /// Session id.
    #[arg(long, value_name = "ID")]
    session: Option<String>,
    /// Who authenticated (an address, or operator:NAME).
    #[arg(long, value_name = "WHO")]
    principal: Option<String>,
    /// Whose data (an account's address).
    #[arg(long, value_name = "ADDRESS")]
    owner: Option<String>,
    /// Only this mailbox (with --owner).
    #[arg(long, value_name = "NAME")]
    mailbox: Option<String>,
    /// From this time (2026-11-27, 2026-11-27T10:00:00Z, or milliseconds since 1970).
    #[arg(long, value_name = "TIME", value_parser = parse_time)]
    since: Option<i64>,
    /// Until this time (exclusive).
    #[arg(long, value_name = "TIME", value_parser = parse_time)]
    until: Option<i64>,
}

/// Output format.
#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Markdown,
    Json,
    Csv,
}

/// Operations that return message content.
const READS: [&str; 4] = ["read-header", "read-body", "read-attachment", "export"];
/// Operations that change data.
const CHANGES: [&str; 9] = [
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

/// Parses 2026-11-27, 2026-11-27T10:00[:00][Z], or milliseconds since 1970 (UTC).
pub fn parse_time(s: &str) -> Result<i64, String> {
    let s = s.trim();
    if let Ok(ms) = s.parse::<i64>() {
        return Ok(ms);
    }
    let bad = || format!("{s:?} is not a time: use 2026-11-27 or 2026-11-27T10:00:00Z (UTC)");
    let (date, time) = s.split_once(['T', ' ']).unwrap_or((s, "00:00:00"));
    let d: Vec<i64> = date
        .split('-')
        .map(|p| p.parse().map_err(|_| bad()))
        .collect::<Result<_, _>>()?;
    let t: Vec<i64> = time
        .trim_end_matches('Z')
        .split(':')
        .map(|p| p.parse().map_err(|_| bad()))
        .collect::<Result<_, _>>()?;
    if d.len() != 3 || !(1..=12).contains(&d[1]) || !(1..=31).contains(&d[2]) || t.len() < 2 {
        return Err(bad());
    }
    let secs = days_from_civil(d[0], d[1] as u32, d[2] as u32) * 86_400
        + t[0] * 3600
        + t[1] * 60
        + t.get(2).copied().unwrap_or(0);
    Ok(secs * 1000)
}

/// A time as `2026-11-27T10:00:00Z`.
pub fn format_time(ms: i64) -> String {
    let secs = ms.div_euclid(1000);
    let (y, m, d) = civil_from_days(secs.div_euclid(86_400));
    let rem = secs.rem_euclid(86_400);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// `rampart ledger ...`.
pub async fn ledger(config: &Config, command: LedgerCommand) -> anyhow::Result<()> {
    let dir = config.ledger_dir();
    match command {
        LedgerCommand::Verify { checkpoints } => verify(&dir, checkpoints),
        LedgerCommand::Checkpoint { export } => {
            let ledger = Ledger::open(config.ledger_config())
                .with_context(|| format!("cannot open the ledger in {}", dir.display()))?;
            let made = ledger.checkpoint().await?;
            drop(ledger);
            if export {
                println!(
                    "# Rampart access ledger checkpoints of node {:?}; keep this file off this machine.",
                    config.ledger_config().node
                );
                for c in rampart_ledger::checkpoints(&dir)? {
                    println!("{}", c.to_line());
                }
            } else {
                match made.or_else(|| rampart_ledger::checkpoints(&dir).ok()?.pop()) {
                    Some(c) => println!("{}", c.to_line()),
                    None => println!("the ledger has no entries yet"),
                }
            }
            Ok(())
        }
        LedgerCommand::Report { filter, format } => {
            let audit = Audit::load(config, &filter).await?;
            audit.report(format)
        }
        LedgerCommand::WhoRead { filter, format } => {
            if filter.owner.is_none() {
                bail!("who-read needs --owner ADDRESS");
            }
            let audit = Audit::load(config, &filter).await?;
            audit.who_read(format)
        }
        LedgerCommand::Subjects { filter, format } => {
            let audit = Audit::load(config, &filter).await?;
            audit.subjects(format)
        }
        LedgerCommand::Incident { filter } => {
            let audit = Audit::load(config, &filter).await?;
            audit.incident(&dir)
        }
    }
}

fn verify(dir: &std::path::Path, checkpoints: Option<PathBuf>) -> anyhow::Result<()> {
    let extra = match &checkpoints {
        Some(path) => rampart_ledger::parse_checkpoints(
            &std::fs::read_to_string(path).with_context(|| format!("{}", path.display()))?,
        )?,
        None => Vec::new(),
    };
    let report = rampart_ledger::verify(dir, &extra)?;
    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "ledger {}: {} entries in {} segments{}; {} checkpoints match the chain",
        dir.display(),
        report.entries,
        report.segments,
        match (report.first_seq, report.last_seq) {
            (Some(a), Some(b)) => format!(" (entries {a} to {b})"),
            _ => String::new(),
        },
        report.checkpoints_matched
    )?;
    for note in &report.notes {
        writeln!(out, "note: {note}")?;
    }
    for problem in &report.problems {
        writeln!(out, "PROBLEM: {problem}")?;
    }
    if !report.intact() {
        bail!(
            "the ledger failed verification: {} problem(s); the first is: {}",
            report.problems.len(),
            report.problems[0]
        );
    }
    writeln!(out, "intact")?;
    Ok(())
}

/// One message as a report shows it.
#[derive(Serialize, Clone, Debug, Default)]
struct MessageInfo {
    id: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    date: Option<String>,
    from: String,
    to: String,
    subject: String,
    size: u64,
    /// Whether the message is still stored (its details are gone otherwise).
    stored: bool,
    #[serde(skip)]
    persons: Vec<(String, String)>,
}

/// The entries a question selects, with what the store still knows about them.
struct Audit {
    records: Vec<Record>,
    addresses: HashMap<i64, String>,
    messages: HashMap<i64, MessageInfo>,
    filter: Filter,
}

fn join_addresses(list: &[rampart_core::AddressSummary]) -> String {
    list.iter()
        .map(|a| match (&a.name, &a.address) {
            (Some(n), Some(ad)) => format!("{n} <{ad}>"),
            (None, Some(ad)) => ad.clone(),
            (Some(n), None) => n.clone(),
            (None, None) => String::new(),
        })
        .collect::<Vec<_>>()
        .join(", ")
}

impl Audit {
    async fn load(config: &Config, filter: &Filter) -> anyhow::Result<Audit> {
        let store = rampart_store::open(&config.store_config(), OpenMode::MustExist)
            .await
            .context("cannot open the store")?;
        let (core, privileged) =
            Core::new(store, config.core_config(), config.recorder(None)?).await?;
        let operator = crate::operator(&privileged);
        let addresses: HashMap<i64, String> = core
            .list_principals(&operator, None)
            .await?
            .into_iter()
            .map(|p| (p.id.0, p.address()))
            .collect();
        let owner_id = match &filter.owner {
            Some(owner) => Some(
                addresses
                    .iter()
                    .find(|(_, a)| a.eq_ignore_ascii_case(owner))
                    .map(|(id, _)| *id)
                    .with_context(|| format!("no account {owner}"))?,
            ),
            None => None,
        };
        let mut records = Vec::new();
        rampart_ledger::for_each_record(&config.ledger_dir(), |r| {
            if selected(filter, owner_id, &r) {
                records.push(r);
            }
        })?;
        let read_ids: BTreeSet<i64> = records
            .iter()
            .filter(|r| READS.contains(&r.operation.as_str()))
            .flat_map(|r| r.object_ids().collect::<Vec<_>>())
            .collect();
        let ids: Vec<MessageId> = read_ids.iter().map(|&id| MessageId(id)).collect();
        let mut messages = HashMap::new();
        for m in core.audit_messages(&operator, &ids).await? {
            let s = parse_summary(&m.summary).unwrap_or_default();
            let mut persons = Vec::new();
            for a in s.from.iter().chain(&s.to).chain(&s.cc).chain(&s.reply_to) {
                if let Some(address) = &a.address {
                    persons.push((address.to_lowercase(), a.name.clone().unwrap_or_default()));
                }
            }
            messages.insert(
                m.id.0,
                MessageInfo {
                    id: m.id.0,
                    date: s.date.map(|d| format_time(d * 1000)),
                    from: join_addresses(&s.from),
                    to: join_addresses(&s.to),
                    subject: s.subject.unwrap_or_default(),
                    size: m.size,
                    stored: true,
                    persons,
                },
            );
        }
        for id in read_ids {
            messages.entry(id).or_insert(MessageInfo {
                id,
                ..Default::default()
            });
        }
        Ok(Audit {
            records,
            addresses,
            messages,
            filter: filter.clone(),
        })
    }

    fn owner_name(&self, id: Option<i64>) -> String {
        match id {
            Some(id) => self
                .addresses
                .get(&id)
                .cloned()
                .unwrap_or_else(|| format!("account #{id} (removed)")),
            None => "-".into(),
        }
    }

    fn report_data(&self) -> Report {
        let mut accounts: BTreeMap<String, AccountReport> = BTreeMap::new();
        let mut sessions: BTreeMap<String, SessionReport> = BTreeMap::new();
        // The searches of one command arrive as consecutive entries of a
        // session (one per batch examined); they are one search.
        let mut last_search: HashMap<String, (String, usize)> = HashMap::new();
        for r in &self.records {
            let s = sessions
                .entry(r.session.clone())
                .or_insert_with(|| SessionReport {
                    session: r.session.clone(),
                    principal: r.principal.clone(),
                    auth: r.auth.clone(),
                    client: r.client.clone().unwrap_or_else(|| "-".into()),
                    protocol: r.protocol.clone(),
                    first: format_time(r.at),
                    ..Default::default()
                });
            s.last = format_time(r.at);
            s.entries += 1;
            if r.principal.contains('@') {
                s.principal = r.principal.clone();
                s.auth = r.auth.clone();
            }
            match r.operation.as_str() {
                "login-success" => s.logins += 1,
                "login-failure" => s.failed_logins += 1,
                _ => {}
            }
            let op = r.operation.as_str();
            if op.starts_with("login") {
                last_search.remove(&r.session);
                continue;
            }
            let owner = self.owner_name(r.owner);
            let a = accounts
                .entry(owner.clone())
                .or_insert_with(|| AccountReport {
                    owner: owner.clone(),
                    ..Default::default()
                });
            let mailbox = r.container.clone().unwrap_or_default();
            if READS.contains(&op) {
                a.bytes += r.bytes;
                for id in r.object_ids() {
                    let entry = a.messages_read.entry(id).or_insert_with(|| ReadMessage {
                        mailbox: mailbox.clone(),
                        first_read: format_time(r.at),
                        info: self.messages.get(&id).cloned().unwrap_or_default(),
                        operations: BTreeSet::new(),
                        sessions: BTreeSet::new(),
                    });
                    entry.operations.insert(r.operation.clone());
                    entry.sessions.insert(r.session.clone());
                }
                last_search.remove(&r.session);
            } else if op == "search" {
                match last_search.get(&r.session) {
                    Some((m, index)) if *m == mailbox => {
                        let search = &mut a.searches[*index];
                        search.entries += 1;
                        search.objects.extend(r.object_ids());
                    }
                    _ => {
                        a.searches.push(SearchReport {
                            at: format_time(r.at),
                            session: r.session.clone(),
                            mailbox: mailbox.clone(),
                            entries: 1,
                            objects: r.object_ids().collect(),
                        });
                        last_search.insert(r.session.clone(), (mailbox, a.searches.len() - 1));
                    }
                }
            } else {
                last_search.remove(&r.session);
                let item = OtherReport {
                    at: format_time(r.at),
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
        let accounts: Vec<AccountReport> = accounts.into_values().collect();
        let totals = Totals {
            entries: self.records.len(),
            sessions: sessions.len(),
            accounts: accounts
                .iter()
                .filter(|a| !a.messages_read.is_empty())
                .count(),
            messages_read: accounts.iter().map(|a| a.messages_read.len()).sum(),
            bytes: accounts.iter().map(|a| a.bytes).sum(),
            searches: accounts.iter().map(|a| a.searches.len()).sum(),
            changes: accounts.iter().map(|a| a.changes.len()).sum(),
        };
        Report {
            filter: self.filter.clone(),
            first: self.records.first().map(|r| format_time(r.at)),
            last: self.records.last().map(|r| format_time(r.at)),
            sessions: sessions.into_values().collect(),
            accounts,
            totals,
        }
    }

    fn report(&self, format: Format) -> anyhow::Result<()> {
        let report = self.report_data();
        let mut out = std::io::stdout().lock();
        match format {
            Format::Json => writeln!(out, "{}", serde_json::to_string_pretty(&report)?)?,
            Format::Csv => {
                writeln!(
                    out,
                    "owner,mailbox,kind,operation,id,date,from,to,subject,at,session"
                )?;
                for a in &report.accounts {
                    for (id, m) in &a.messages_read {
                        let ops = m.operations.iter().cloned().collect::<Vec<_>>().join(" ");
                        csv_row(
                            &mut out,
                            &[
                                &a.owner,
                                &m.mailbox,
                                "read",
                                &ops,
                                &id.to_string(),
                                m.info.date.as_deref().unwrap_or(""),
                                &m.info.from,
                                &m.info.to,
                                &m.info.subject,
                                &m.first_read,
                                &m.sessions.iter().cloned().collect::<Vec<_>>().join(" "),
                            ],
                        )?;
                    }
                    for s in &a.searches {
                        csv_row(
                            &mut out,
                            &[
                                &a.owner, &s.mailbox, "search", "search", "", "", "", "", "",
                                &s.at, &s.session,
                            ],
                        )?;
                    }
                    for c in a.changes.iter().chain(&a.listings) {
                        csv_row(
                            &mut out,
                            &[
                                &a.owner,
                                &c.container,
                                "other",
                                &c.operation,
                                "",
                                "",
                                "",
                                "",
                                "",
                                &c.at,
                                &c.session,
                            ],
                        )?;
                    }
                }
            }
            Format::Markdown => {
                writeln!(out, "# Access report\n")?;
                writeln!(out, "Selection: {}\n", describe_filter(&report.filter))?;
                writeln!(
                    out,
                    "Entries: {} from {} to {}; {} sessions; {} messages read in {} accounts ({} bytes); {} searches; {} changes.\n",
                    report.totals.entries,
                    report.first.as_deref().unwrap_or("-"),
                    report.last.as_deref().unwrap_or("-"),
                    report.totals.sessions,
                    report.totals.messages_read,
                    report.totals.accounts,
                    report.totals.bytes,
                    report.totals.searches,
                    report.totals.changes
                )?;
                sessions_table(&mut out, &report.sessions)?;
                for a in &report.accounts {
                    writeln!(out, "## {}\n", a.owner)?;
                    if !a.messages_read.is_empty() {
                        writeln!(
                            out,
                            "Messages read: {} ({} bytes)\n",
                            a.messages_read.len(),
                            a.bytes
                        )?;
                        writeln!(
                            out,
                            "| id | mailbox | date | from | to | subject | first read | how |"
                        )?;
                        writeln!(out, "|---|---|---|---|---|---|---|---|")?;
                        for (id, m) in &a.messages_read {
                            writeln!(
                                out,
                                "| {id} | {} | {} | {} | {} | {} | {} | {} |",
                                cell(&m.mailbox),
                                m.info.date.as_deref().unwrap_or(if m.info.stored {
                                    ""
                                } else {
                                    "(no longer stored)"
                                }),
                                cell(&m.info.from),
                                cell(&m.info.to),
                                cell(&m.info.subject),
                                m.first_read,
                                m.operations.iter().cloned().collect::<Vec<_>>().join(", ")
                            )?;
                        }
                        writeln!(out)?;
                    }
                    for s in &a.searches {
                        writeln!(
                            out,
                            "- search in {} at {} (session {}): {} messages examined or found",
                            cell(&s.mailbox),
                            s.at,
                            s.session,
                            s.objects.iter().collect::<BTreeSet<_>>().len()
                        )?;
                    }
                    for c in a.changes.iter().chain(&a.listings) {
                        writeln!(
                            out,
                            "- {} {} at {} (session {}): {} objects, {}",
                            c.operation,
                            cell(&c.container),
                            c.at,
                            c.session,
                            c.objects,
                            c.outcome
                        )?;
                    }
                    writeln!(out)?;
                }
            }
        }
        Ok(())
    }

    fn who_read(&self, format: Format) -> anyhow::Result<()> {
        #[derive(Serialize, Default)]
        struct Reader {
            principal: String,
            client: String,
            protocol: String,
            auth: String,
            messages: BTreeSet<i64>,
            bytes: u64,
            first: String,
            last: String,
        }
        let mut readers: BTreeMap<(String, String), Reader> = BTreeMap::new();
        for r in self
            .records
            .iter()
            .filter(|r| READS.contains(&r.operation.as_str()))
        {
            let client = r.client.clone().unwrap_or_else(|| "-".into());
            let e = readers
                .entry((r.principal.clone(), client.clone()))
                .or_insert_with(|| Reader {
                    principal: r.principal.clone(),
                    client,
                    protocol: r.protocol.clone(),
                    auth: r.auth.clone(),
                    first: format_time(r.at),
                    ..Default::default()
                });
            e.messages.extend(r.object_ids());
            e.bytes += r.bytes;
            e.last = format_time(r.at);
        }
        let readers: Vec<Reader> = readers.into_values().collect();
        let mut out = std::io::stdout().lock();
        match format {
            Format::Json => writeln!(out, "{}", serde_json::to_string_pretty(&readers)?)?,
            Format::Csv => {
                writeln!(
                    out,
                    "principal,client,protocol,auth,messages,bytes,first,last"
                )?;
                for r in &readers {
                    csv_row(
                        &mut out,
                        &[
                            &r.principal,
                            &r.client,
                            &r.protocol,
                            &r.auth,
                            &r.messages.len().to_string(),
                            &r.bytes.to_string(),
                            &r.first,
                            &r.last,
                        ],
                    )?;
                }
            }
            Format::Markdown => {
                writeln!(out, "# Who read {}\n", describe_filter(&self.filter))?;
                writeln!(
                    out,
                    "| principal | address | protocol | auth | messages | bytes | first | last |"
                )?;
                writeln!(out, "|---|---|---|---|---|---|---|---|")?;
                for r in &readers {
                    writeln!(
                        out,
                        "| {} | {} | {} | {} | {} | {} | {} | {} |",
                        cell(&r.principal),
                        r.client,
                        r.protocol,
                        r.auth,
                        r.messages.len(),
                        r.bytes,
                        r.first,
                        r.last
                    )?;
                }
            }
        }
        Ok(())
    }

    /// The persons in the messages read: address, names seen, messages.
    fn persons(&self) -> Vec<Person> {
        let report = self.report_data();
        let mut persons: BTreeMap<String, Person> = BTreeMap::new();
        for a in &report.accounts {
            for id in a.messages_read.keys() {
                let Some(m) = self.messages.get(id) else {
                    continue;
                };
                let mut seen_here = BTreeSet::new();
                for (address, name) in &m.persons {
                    let p = persons.entry(address.clone()).or_insert_with(|| Person {
                        address: address.clone(),
                        ..Default::default()
                    });
                    if !name.is_empty() {
                        p.names.insert(name.clone());
                    }
                    if seen_here.insert(address.clone()) {
                        p.messages += 1;
                    }
                }
            }
        }
        persons.into_values().collect()
    }

    fn subjects(&self, format: Format) -> anyhow::Result<()> {
        let persons = self.persons();
        let unknown = self.messages.values().filter(|m| !m.stored).count();
        let mut out = std::io::stdout().lock();
        match format {
            Format::Json => writeln!(out, "{}", serde_json::to_string_pretty(&persons)?)?,
            Format::Csv => {
                writeln!(out, "address,names,messages")?;
                for p in &persons {
                    let names = p.names.iter().cloned().collect::<Vec<_>>().join("; ");
                    csv_row(&mut out, &[&p.address, &names, &p.messages.to_string()])?;
                }
            }
            Format::Markdown => {
                writeln!(
                    out,
                    "# Persons whose data was read ({})\n",
                    describe_filter(&self.filter)
                )?;
                writeln!(
                    out,
                    "From the From, To, Cc and Reply-To of every message read. Contacts, directory entries and events: this version serves none, so none were read.\n"
                )?;
                writeln!(out, "| address | names | messages |")?;
                writeln!(out, "|---|---|---|")?;
                for p in &persons {
                    let names = p.names.iter().cloned().collect::<Vec<_>>().join("; ");
                    writeln!(out, "| {} | {} | {} |", p.address, cell(&names), p.messages)?;
                }
            }
        }
        if unknown > 0 {
            eprintln!(
                "note: {unknown} messages read are no longer stored; their persons are not listed"
            );
        }
        Ok(())
    }

    fn incident(&self, dir: &std::path::Path) -> anyhow::Result<()> {
        let report = self.report_data();
        let persons = self.persons();
        let verified = rampart_ledger::verify(dir, &[])?;
        let mut out = std::io::stdout().lock();
        writeln!(out, "# Incident report\n")?;
        writeln!(out, "Selection: {}.\n", describe_filter(&report.filter))?;
        writeln!(out, "## Time window\n")?;
        writeln!(
            out,
            "First recorded access: {}. Last recorded access: {}. {} ledger entries.\n",
            report.first.as_deref().unwrap_or("none"),
            report.last.as_deref().unwrap_or("none"),
            report.totals.entries
        )?;
        writeln!(out, "## The ledger\n")?;
        if verified.intact() {
            writeln!(
                out,
                "Verified intact: {} entries, {} checkpoints match.",
                verified.entries, verified.checkpoints_matched
            )?;
        } else {
            writeln!(
                out,
                "The ledger FAILED verification; what follows may be incomplete:"
            )?;
            for p in &verified.problems {
                writeln!(out, "- {p}")?;
            }
        }
        if verified.notes.is_empty() {
            writeln!(out, "No gaps: no retention cut, no clock jump.\n")?;
        } else {
            writeln!(out, "Gaps and caveats:")?;
            for n in &verified.notes {
                writeln!(out, "- {n}")?;
            }
            writeln!(out)?;
        }
        writeln!(out, "## How access happened\n")?;
        let mut by = |label: &str, key: &dyn Fn(&SessionReport) -> String| -> std::io::Result<()> {
            let mut counts: BTreeMap<String, usize> = BTreeMap::new();
            for s in &report.sessions {
                *counts.entry(key(s)).or_default() += 1;
            }
            let parts: Vec<String> = counts.iter().map(|(k, n)| format!("{k} ({n})")).collect();
            writeln!(out, "- {label}: {}", parts.join(", "))
        };
        by("client addresses", &|s| s.client.clone())?;
        by("protocols", &|s| s.protocol.clone())?;
        by("authentication", &|s| s.auth.clone())?;
        by("principals", &|s| s.principal.clone())?;
        writeln!(out)?;
        sessions_table(&mut out, &report.sessions)?;
        writeln!(out, "## What was affected\n")?;
        writeln!(
            out,
            "- messages read: {} ({} bytes returned)",
            report.totals.messages_read, report.totals.bytes
        )?;
        writeln!(out, "- searches: {}", report.totals.searches)?;
        writeln!(out, "- changes: {}", report.totals.changes)?;
        writeln!(
            out,
            "- contacts, directory entries, calendar events read: none (not served by this version)"
        )?;
        writeln!(
            out,
            "- persons whose addresses were in the messages read: {}\n",
            persons.len()
        )?;
        for a in &report.accounts {
            writeln!(out, "### Account {}\n", a.owner)?;
            let mailboxes: BTreeSet<&str> = a
                .messages_read
                .values()
                .map(|m| m.mailbox.as_str())
                .collect();
            writeln!(
                out,
                "- messages read: {} in {}",
                a.messages_read.len(),
                if mailboxes.is_empty() {
                    "-".to_string()
                } else {
                    mailboxes.into_iter().collect::<Vec<_>>().join(", ")
                }
            )?;
            writeln!(out, "- bytes returned: {}", a.bytes)?;
            writeln!(
                out,
                "- searches: {}; changes: {}; listings: {}\n",
                a.searches.len(),
                a.changes.len(),
                a.listings.len()
            )?;
        }
        writeln!(
            out,
            "Details: `rampart ledger report` and `rampart ledger subjects` with the same selection."
        )?;
        Ok(())
    }
}

fn selected(f: &Filter, owner_id: Option<i64>, r: &Record) -> bool {
    f.address
        .as_ref()
        .is_none_or(|a| r.client.as_deref() == Some(a.as_str()))
        && f.session.as_ref().is_none_or(|s| &r.session == s)
        && f.principal
            .as_ref()
            .is_none_or(|p| r.principal.eq_ignore_ascii_case(p))
        && owner_id.is_none_or(|o| r.owner == Some(o))
        && f.mailbox
            .as_ref()
            .is_none_or(|m| r.container.as_deref() == Some(m.as_str()))
        && f.since.is_none_or(|t| r.at >= t)
        && f.until.is_none_or(|t| r.at < t)
}

fn describe_filter(f: &Filter) -> String {
    let mut parts = Vec::new();
    let mut add = |k: &str, v: &Option<String>| {
        if let Some(v) = v {
            parts.push(format!("{k} {v}"));
        }
    };
    add("address", &f.address);
    add("session", &f.session);
    add("principal", &f.principal);
    add("owner", &f.owner);
    add("mailbox", &f.mailbox);
    if let Some(t) = f.since {
        parts.push(format!("since {}", format_time(t)));
    }
    if let Some(t) = f.until {
        parts.push(format!("until {}", format_time(t)));
    }
    if parts.is_empty() {
        "every entry".into()
    } else {
        parts.join(", ")
    }
}

/// A Markdown table cell. Reports carry attacker-chosen text (subjects,
/// display names), so nothing in it may end the cell, start code or become
/// HTML in a renderer: `\`, `|` and backticks are escaped, `<`, `>` and `&`
/// become entities, line breaks spaces.
fn cell(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '\\' | '|' | '`' => {
                out.push('\\');
                out.push(c);
            }
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '&' => out.push_str("&amp;"),
            '\r' | '\n' => out.push(' '),
            c => out.push(c),
        }
    }
    out
}

/// One CSV cell: quoted where needed, and a cell a spreadsheet would run
/// as a formula (starting with `=`, `+`, `-`, `@`, tab or CR) is prefixed
/// with `'` (OWASP's CSV-injection rule).
fn csv_cell(f: &str) -> String {
    let f = if f.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        format!("'{f}")
    } else {
        f.to_owned()
    };
    if f.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", f.replace('"', "\"\""))
    } else {
        f
    }
}

fn csv_row(out: &mut impl Write, fields: &[&str]) -> std::io::Result<()> {
    let row: Vec<String> = fields.iter().map(|f| csv_cell(f)).collect();
    writeln!(out, "{}", row.join(","))
}

fn sessions_table(out: &mut impl Write, sessions: &[SessionReport]) -> std::io::Result<()> {
    writeln!(
        out,
        "| session | principal | auth | address | protocol | first | last | entries | logins | failed |"
    )?;
    writeln!(out, "|---|---|---|---|---|---|---|---|---|---|")?;
    for s in sessions {
        writeln!(
            out,
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            s.session,
            cell(&s.principal),
            s.auth,
            s.client,
            s.protocol,
            s.first,
            s.last,
            s.entries,
            s.logins,
            s.failed_logins
        )?;
    }
    writeln!(out)
}

#[derive(Serialize)]
struct Report {
    filter: Filter,
    first: Option<String>,
    last: Option<String>,
    sessions: Vec<SessionReport>,
    accounts: Vec<AccountReport>,
    totals: Totals,
}

#[derive(Serialize, Default)]
struct Totals {
    entries: usize,
    sessions: usize,
    accounts: usize,
    messages_read: usize,
    bytes: u64,
    searches: usize,
    changes: usize,
}

#[derive(Serialize, Default, Clone)]
struct SessionReport {
    session: String,
    principal: String,
    auth: String,
    client: String,
    protocol: String,
    first: String,
    last: String,
    entries: usize,
    logins: usize,
    failed_logins: usize,
}

#[derive(Serialize, Default)]
struct AccountReport {
    owner: String,
    bytes: u64,
    messages_read: BTreeMap<i64, ReadMessage>,
    searches: Vec<SearchReport>,
    changes: Vec<OtherReport>,
    listings: Vec<OtherReport>,
}

#[derive(Serialize)]
struct ReadMessage {
    mailbox: String,
    first_read: String,
    #[serde(flatten)]
    info: MessageInfo,
    operations: BTreeSet<String>,
    sessions: BTreeSet<String>,
}

#[derive(Serialize)]
struct SearchReport {
    at: String,
    session: String,
    mailbox: String,
    /// Ledger entries of this search (one per batch of messages examined).
    entries: usize,
    /// Messages examined or found.
    objects: Vec<i64>,
}

#[derive(Serialize)]
struct OtherReport {
    at: String,
    session: String,
    operation: String,
    container: String,
    objects: u64,
    /// The ids of what was listed or changed (messages, mailboxes), as ranges.
    ids: Vec<(i64, i64)>,
    outcome: String,
}

#[derive(Serialize, Default)]
struct Person {
    address: String,
    names: BTreeSet<String>,
    messages: usize,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_round_trip() {
        let t = parse_time("2026-11-27T10:05:09Z").unwrap();
        assert_eq!(format_time(t), "2026-11-27T10:05:09Z");
        assert_eq!(parse_time("1970-01-02").unwrap(), 86_400_000);
        assert_eq!(format_time(0), "1970-01-01T00:00:00Z");
        assert_eq!(
            parse_time("2024-02-29 23:59").map(format_time).unwrap(),
            "2024-02-29T23:59:00Z"
        );
        assert!(parse_time("yesterday").is_err());
        assert!(parse_time("2026-13-01").is_err());
    }

    /// Attacker-chosen text cannot break out of a report's cells.
    #[test]
    fn report_cells_are_neutralised() {
        assert_eq!(
            cell("a|b `c` \\ <img src=x onerror=alert(1)> & d\r\ne"),
            "a\\|b \\`c\\` \\\\ &lt;img src=x onerror=alert(1)&gt; &amp; d  e"
        );
        for (input, expected) in [
            (
                "=HYPERLINK(\"http://x\")",
                "\"'=HYPERLINK(\"\"http://x\"\")\"",
            ),
            ("+1", "'+1"),
            ("-2", "'-2"),
            ("@SUM(A1)", "'@SUM(A1)"),
            ("\tx", "'\tx"),
            ("\rx", "\"'\rx\""),
            ("plain, text", "\"plain, text\""),
            ("Invoice 3", "Invoice 3"),
        ] {
            assert_eq!(csv_cell(input), expected, "{input:?}");
        }
    }
}
