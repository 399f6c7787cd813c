//! `rampart ledger ...`: verifying the access ledger, exporting its
//! checkpoints, and the questions an administrator and a data protection
//! officer ask after an incident (report, who-read, subjects, incident).
//!
//! Selection and aggregation are the ledger crate's query API
//! (`rampart_ledger::query`, `rampart_ledger::report`); this module reads
//! the arguments, names accounts and messages (from the store, through
//! core) and renders.

mod render;
mod time;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::io::Write;
use std::path::PathBuf;

use anyhow::{Context, bail};
use clap::{Args, Subcommand, ValueEnum};
use jiff::tz::TimeZone;
use rampart_core::{Core, parse_summary};
use rampart_ledger::query::Filter;
use rampart_ledger::report::Activity;
use rampart_ledger::{self, Ledger};
use rampart_store::{MessageId, OpenMode, PrincipalId};
use serde::Serialize;

use crate::config::Config;

/// A time in UTC (`2026-11-27T10:05:09Z`), for other commands' listings.
pub fn format_time(ms: i64) -> String {
    time::format_utc(ms)
}

/// A time zone by name (`Europe/Berlin`, `UTC`), for checking the config.
pub fn time_zone(name: &str) -> anyhow::Result<TimeZone> {
    time::named(name)
}

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
    /// Sessions grouped by principal, address and client software; then
    /// everything read or changed, by account and mailbox, with totals.
    Report {
        #[command(flatten)]
        filter: FilterArgs,
        #[arg(long, value_enum, default_value = "markdown")]
        format: Format,
        /// Sessions listed one by one after the groups (Markdown; 0: none).
        #[arg(long, value_name = "N", default_value_t = 20)]
        session_detail: usize,
    },
    /// Every principal and address that read an account's data.
    WhoRead {
        #[command(flatten)]
        filter: FilterArgs,
        #[arg(long, value_enum, default_value = "markdown")]
        format: Format,
    },
    /// The persons whose personal data was in what was read, with counts.
    Subjects {
        #[command(flatten)]
        filter: FilterArgs,
        #[arg(long, value_enum, default_value = "markdown")]
        format: Format,
    },
    /// A Markdown report for the data protection officer, in local time.
    Incident {
        #[command(flatten)]
        filter: FilterArgs,
        /// Sessions listed one by one after the groups (0: none).
        #[arg(long, value_name = "N", default_value_t = 20)]
        session_detail: usize,
    },
}

/// Which entries a question is about, as typed.
#[derive(Args, Debug, Default, Clone)]
pub struct FilterArgs {
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
    /// Only entries naming this message id.
    #[arg(long, value_name = "ID")]
    object: Option<i64>,
    /// Only these operations (read-body, search, login-failure, ...; repeat or separate with commas).
    #[arg(long, value_name = "OP", value_delimiter = ',')]
    operation: Vec<String>,
    /// Only sessions whose client software contains this text (any case), e.g. thunderbird.
    #[arg(long, value_name = "TEXT")]
    client_software: Option<String>,
    /// From this time: 2026-11-27, 2026-11-27T10:00 (local time, see --tz),
    /// 2026-11-27T10:00:00Z, 2026-11-27T11:00+01:00, or milliseconds since 1970.
    #[arg(long, value_name = "TIME")]
    since: Option<String>,
    /// Until this time (exclusive); same forms as --since.
    #[arg(long, value_name = "TIME")]
    until: Option<String>,
    /// Time zone for times without one and for the report's times (e.g.
    /// Europe/Berlin, UTC); default: `[server] time_zone`, else the system's.
    #[arg(long, value_name = "ZONE")]
    tz: Option<String>,
}

/// Output format.
#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Markdown,
    Json,
    Csv,
}

/// `rampart ledger ...`.
pub async fn ledger(config: &Config, command: LedgerCommand) -> anyhow::Result<()> {
    let dir = config.ledger_dir();
    let zone = |f: &FilterArgs| time::zone(f.tz.as_deref(), config.server.time_zone.as_deref());
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
        LedgerCommand::Report {
            filter,
            format,
            session_detail,
        } => {
            let audit = Audit::load(config, &filter, zone(&filter)?).await?;
            audit.report(format, session_detail)
        }
        LedgerCommand::WhoRead { filter, format } => {
            if filter.owner.is_none() {
                bail!("who-read needs --owner ADDRESS");
            }
            let audit = Audit::load(config, &filter, zone(&filter)?).await?;
            audit.who_read(format)
        }
        LedgerCommand::Subjects { filter, format } => {
            let audit = Audit::load(config, &filter, zone(&filter)?).await?;
            audit.subjects(format)
        }
        LedgerCommand::Incident {
            filter,
            session_detail,
        } => {
            let audit = Audit::load(config, &filter, zone(&filter)?).await?;
            audit.incident(&dir, session_detail)
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

/// One person whose address was in a message read.
#[derive(Serialize, Default)]
struct Person {
    address: String,
    names: BTreeSet<String>,
    messages: usize,
    /// Whether the address list returned this person's entry.
    in_directory: bool,
}

/// The entries a question selects, aggregated, with what the store still
/// knows about the accounts and messages they name.
struct Audit {
    activity: Activity,
    addresses: HashMap<i64, String>,
    /// The address-list entries returned: address and name.
    directory_people: Vec<(String, String)>,
    messages: HashMap<i64, MessageInfo>,
    /// The selection in words, times in the report's zone.
    selection: String,
    /// The selection as asked (for JSON).
    filter: Filter,
    tz: TimeZone,
}

impl Audit {
    async fn load(config: &Config, args: &FilterArgs, tz: TimeZone) -> anyhow::Result<Audit> {
        let store = rampart_store::open(&config.store_config(), OpenMode::MustExist)
            .await
            .context("cannot open the store")?;
        let (core, privileged) =
            Core::new(store, config.core_config(), config.recorder(None)?).await?;
        let operator = crate::operator(&privileged);
        let principals = core.list_principals(&operator, None).await?;
        let addresses: HashMap<i64, String> =
            principals.iter().map(|p| (p.id.0, p.address())).collect();
        let display_names: HashMap<i64, String> = principals
            .iter()
            .map(|p| (p.id.0, p.display_name.clone()))
            .collect();
        let owner = match &args.owner {
            Some(owner) => Some(
                addresses
                    .iter()
                    .find(|(_, a)| a.eq_ignore_ascii_case(owner))
                    .map(|(id, _)| *id)
                    .with_context(|| format!("no account {owner}"))?,
            ),
            None => None,
        };
        let when = |s: &Option<String>| -> anyhow::Result<Option<i64>> {
            s.as_deref()
                .map(|s| time::parse_time(s, &tz).map_err(anyhow::Error::msg))
                .transpose()
        };
        let filter = Filter {
            since: when(&args.since)?,
            until: when(&args.until)?,
            principal: args.principal.clone(),
            owner,
            operations: args.operation.clone(),
            container: args.mailbox.clone(),
            object: args.object,
            session: args.session.clone(),
            client: args.address.clone(),
            client_software: args.client_software.clone(),
        };
        let activity = Activity::collect(&config.ledger_dir(), &filter)?;
        let read_ids = activity.messages_read();
        let mut found = Vec::new();
        for (owner, read) in activity.messages_read_by_owner() {
            let ids: Vec<MessageId> = read.iter().map(|&id| MessageId(id)).collect();
            found.extend(
                core.audit_messages(&operator, PrincipalId(owner), &ids)
                    .await?,
            );
        }
        let mut messages = HashMap::new();
        for m in found {
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
                    date: s.date.map(|d| time::format_in(d * 1000, &tz)),
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
        let mut directory_people = Vec::new();
        for (container, ids) in activity.directory_entries() {
            if container.starts_with("directory:") {
                for id in ids {
                    if let Some(address) = addresses.get(id) {
                        let name = display_names.get(id).cloned().unwrap_or_default();
                        directory_people.push((address.to_lowercase(), name));
                    }
                }
            } else if let Some(domain) = container.strip_prefix("directory-contacts:") {
                // Contacts removed since are no longer known by name.
                let Ok(contacts) = core.org_contacts(&operator, domain).await else {
                    continue;
                };
                for c in contacts.iter().filter(|c| ids.contains(&c.id)) {
                    let address = if c.email.is_empty() {
                        format!("(no address: {})", c.uid)
                    } else {
                        c.email.to_lowercase()
                    };
                    directory_people.push((address, c.display_name.clone()));
                }
            }
        }
        let selection = describe(args, &filter, &tz);
        Ok(Audit {
            activity,
            addresses,
            directory_people,
            messages,
            selection,
            filter,
            tz,
        })
    }

    /// A time in the report's zone.
    fn at(&self, ms: i64) -> String {
        time::format_in(ms, &self.tz)
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

    /// The persons in the messages read: address, names seen, messages.
    fn persons(&self) -> Vec<Person> {
        let mut persons: BTreeMap<String, Person> = BTreeMap::new();
        for id in self.activity.messages_read() {
            let Some(m) = self.messages.get(&id) else {
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
        for (address, name) in &self.directory_people {
            let p = persons.entry(address.clone()).or_insert_with(|| Person {
                address: address.clone(),
                ..Default::default()
            });
            if !name.is_empty() {
                p.names.insert(name.clone());
            }
            p.in_directory = true;
        }
        persons.into_values().collect()
    }
}

/// The selection in words, with times in the report's zone.
fn describe(args: &FilterArgs, f: &Filter, tz: &TimeZone) -> String {
    let mut parts = Vec::new();
    let mut add = |k: &str, v: &Option<String>| {
        if let Some(v) = v {
            parts.push(format!("{k} {v}"));
        }
    };
    add("address", &args.address);
    add("session", &args.session);
    add("principal", &args.principal);
    add("owner", &args.owner);
    add("mailbox", &args.mailbox);
    add("message", &args.object.map(|id| id.to_string()));
    add("client software containing", &args.client_software);
    if !args.operation.is_empty() {
        parts.push(format!("operations {}", args.operation.join(", ")));
    }
    if let Some(t) = f.since {
        parts.push(format!("since {}", time::format_in(t, tz)));
    }
    if let Some(t) = f.until {
        parts.push(format!("until {}", time::format_in(t, tz)));
    }
    if parts.is_empty() {
        "every entry".into()
    } else {
        parts.join(", ")
    }
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
