//! Rendering what a ledger question found: Markdown for people, JSON and
//! CSV for tools. Every text an attacker could choose (subjects, names,
//! client software, mailbox names) goes through [`cell`] or [`csv_cell`].

use std::collections::BTreeSet;
use std::io::Write;

use rampart_ledger::report::{SessionGroup, SessionSummary};
use serde_json::{Value, json};

use super::time::zone_name;
use super::{Audit, Format};

/// The JSON keys that hold times (milliseconds in the query API), shown in
/// the report's zone.
const TIME_KEYS: [&str; 6] = ["at", "first", "last", "first_read", "since", "until"];

impl Audit {
    /// Times in `value` (under [`TIME_KEYS`]) as text in the report's zone.
    fn localise(&self, value: &mut Value) {
        match value {
            Value::Object(map) => {
                for (k, v) in map.iter_mut() {
                    match v.as_i64() {
                        Some(ms) if TIME_KEYS.contains(&k.as_str()) => {
                            *v = Value::String(self.at(ms));
                        }
                        _ => self.localise(v),
                    }
                }
            }
            Value::Array(items) => items.iter_mut().for_each(|v| self.localise(v)),
            _ => {}
        }
    }

    fn json_accounts(&self) -> anyhow::Result<Vec<Value>> {
        let mut out = Vec::new();
        for a in self.activity.accounts() {
            let mut v = serde_json::to_value(a)?;
            v["owner"] = Value::String(self.owner_name(a.owner));
            let mut read = serde_json::Map::new();
            for (id, m) in &a.messages_read {
                let mut entry = serde_json::to_value(m)?;
                if let (Value::Object(entry), Value::Object(info)) = (
                    &mut entry,
                    serde_json::to_value(self.messages.get(id).cloned().unwrap_or_default())?,
                ) {
                    entry.extend(info);
                }
                read.insert(id.to_string(), entry);
            }
            v["messages_read"] = Value::Object(read);
            out.push(v);
        }
        Ok(out)
    }

    pub(super) fn report(&self, format: Format, session_detail: usize) -> anyhow::Result<()> {
        let a = &self.activity;
        let totals = a.totals();
        let mut out = std::io::stdout().lock();
        match format {
            Format::Json => {
                let mut v = json!({
                    "selection": self.selection,
                    "filter": self.filter,
                    "time_zone": zone_name(&self.tz),
                    "first": a.first,
                    "last": a.last,
                    "groups": a.groups(),
                    "sessions": a.sessions(),
                    "accounts": self.json_accounts()?,
                    "totals": totals,
                });
                self.localise(&mut v);
                writeln!(out, "{}", serde_json::to_string_pretty(&v)?)?;
            }
            Format::Csv => {
                writeln!(
                    out,
                    "owner,mailbox,kind,operation,id,date,from,to,subject,at,session"
                )?;
                for acc in a.accounts() {
                    let owner = self.owner_name(acc.owner);
                    for (id, m) in &acc.messages_read {
                        let info = self.messages.get(id).cloned().unwrap_or_default();
                        let ops = m.operations.iter().cloned().collect::<Vec<_>>().join(" ");
                        csv_row(
                            &mut out,
                            &[
                                &owner,
                                &m.mailbox,
                                "read",
                                &ops,
                                &id.to_string(),
                                info.date.as_deref().unwrap_or(""),
                                &info.from,
                                &info.to,
                                &info.subject,
                                &self.at(m.first_read),
                                &m.sessions.iter().cloned().collect::<Vec<_>>().join(" "),
                            ],
                        )?;
                    }
                    for s in &acc.searches {
                        csv_row(
                            &mut out,
                            &[
                                &owner,
                                &s.mailbox,
                                "search",
                                "search",
                                "",
                                "",
                                "",
                                "",
                                "",
                                &self.at(s.at),
                                &s.session,
                            ],
                        )?;
                    }
                    for c in acc.changes.iter().chain(&acc.listings) {
                        csv_row(
                            &mut out,
                            &[
                                &owner,
                                &c.container,
                                "other",
                                &c.operation,
                                "",
                                "",
                                "",
                                "",
                                "",
                                &self.at(c.at),
                                &c.session,
                            ],
                        )?;
                    }
                }
            }
            Format::Markdown => {
                writeln!(out, "# Access report\n")?;
                writeln!(out, "Selection: {}\n", self.selection)?;
                writeln!(
                    out,
                    "Times in {}, each with its UTC offset.\n",
                    zone_name(&self.tz)
                )?;
                let groups = a.groups();
                writeln!(
                    out,
                    "Entries: {} from {} to {}; {} sessions in {} groups (principal, address, client software); {} messages read in {} accounts ({} bytes); {} searches; {} changes.\n",
                    totals.entries,
                    a.first.map_or("-".into(), |t| self.at(t)),
                    a.last.map_or("-".into(), |t| self.at(t)),
                    totals.sessions,
                    groups.len(),
                    totals.messages_read,
                    totals.accounts,
                    totals.bytes,
                    totals.searches,
                    totals.changes
                )?;
                self.groups_table(&mut out, &groups)?;
                self.sessions_table(&mut out, &a.sessions(), session_detail)?;
                for acc in a.accounts() {
                    writeln!(out, "## {}\n", cell(&self.owner_name(acc.owner)))?;
                    if !acc.messages_read.is_empty() {
                        writeln!(
                            out,
                            "Messages read: {} ({} bytes)\n",
                            acc.messages_read.len(),
                            acc.bytes
                        )?;
                        writeln!(
                            out,
                            "| id | mailbox | date | from | to | subject | first read | how |"
                        )?;
                        writeln!(out, "|---|---|---|---|---|---|---|---|")?;
                        for (id, m) in &acc.messages_read {
                            let info = self.messages.get(id).cloned().unwrap_or_default();
                            writeln!(
                                out,
                                "| {id} | {} | {} | {} | {} | {} | {} | {} |",
                                cell(&m.mailbox),
                                info.date.as_deref().unwrap_or(if info.stored {
                                    ""
                                } else {
                                    "(no longer stored)"
                                }),
                                cell(&info.from),
                                cell(&info.to),
                                cell(&info.subject),
                                self.at(m.first_read),
                                m.operations.iter().cloned().collect::<Vec<_>>().join(", ")
                            )?;
                        }
                        writeln!(out)?;
                    }
                    for (collection, ids) in &acc.collection_reads {
                        writeln!(
                            out,
                            "- read in {}: {} calendar objects or contacts (ids {})",
                            cell(collection),
                            ids.len(),
                            ids.iter()
                                .map(i64::to_string)
                                .collect::<Vec<_>>()
                                .join(", ")
                        )?;
                    }
                    for s in &acc.searches {
                        writeln!(
                            out,
                            "- search in {} at {} (session {}): {} messages examined or found",
                            cell(&s.mailbox),
                            self.at(s.at),
                            s.session,
                            s.objects.iter().collect::<BTreeSet<_>>().len()
                        )?;
                    }
                    for c in acc.changes.iter().chain(&acc.listings) {
                        writeln!(
                            out,
                            "- {} {} at {} (session {}): {} objects, {}",
                            c.operation,
                            cell(&c.container),
                            self.at(c.at),
                            c.session,
                            c.objects,
                            cell(&c.outcome)
                        )?;
                    }
                    writeln!(out)?;
                }
            }
        }
        Ok(())
    }

    pub(super) fn who_read(&self, format: Format) -> anyhow::Result<()> {
        let readers: Vec<_> = self.activity.readers().collect();
        let software = |r: &rampart_ledger::report::Reader| {
            r.client_software
                .iter()
                .cloned()
                .collect::<Vec<_>>()
                .join(" / ")
        };
        let mut out = std::io::stdout().lock();
        match format {
            Format::Json => {
                let mut v = serde_json::to_value(&readers)?;
                self.localise(&mut v);
                writeln!(out, "{}", serde_json::to_string_pretty(&v)?)?;
            }
            Format::Csv => {
                writeln!(
                    out,
                    "principal,client,protocol,auth,messages,bytes,first,last,client_software"
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
                            &self.at(r.first),
                            &self.at(r.last),
                            &software(r),
                        ],
                    )?;
                }
            }
            Format::Markdown => {
                writeln!(out, "# Who read {}\n", self.selection)?;
                writeln!(out, "Times in {}.\n", zone_name(&self.tz))?;
                writeln!(
                    out,
                    "| principal | address | client software | protocol | auth | messages | bytes | first | last |"
                )?;
                writeln!(out, "|---|---|---|---|---|---|---|---|---|")?;
                for r in &readers {
                    writeln!(
                        out,
                        "| {} | {} | {} | {} | {} | {} | {} | {} | {} |",
                        cell(&r.principal),
                        r.client,
                        cell(&software(r)),
                        r.protocol,
                        r.auth,
                        r.messages.len(),
                        r.bytes,
                        self.at(r.first),
                        self.at(r.last)
                    )?;
                }
            }
        }
        Ok(())
    }

    pub(super) fn subjects(&self, format: Format) -> anyhow::Result<()> {
        let persons = self.persons();
        let unknown = self.messages.values().filter(|m| !m.stored).count();
        let mut out = std::io::stdout().lock();
        match format {
            Format::Json => writeln!(out, "{}", serde_json::to_string_pretty(&persons)?)?,
            Format::Csv => {
                writeln!(out, "address,names,messages,in_directory")?;
                for p in &persons {
                    let names = p.names.iter().cloned().collect::<Vec<_>>().join("; ");
                    csv_row(
                        &mut out,
                        &[
                            &p.address,
                            &names,
                            &p.messages.to_string(),
                            if p.in_directory { "yes" } else { "no" },
                        ],
                    )?;
                }
            }
            Format::Markdown => {
                writeln!(out, "# Persons whose data was read ({})\n", self.selection)?;
                writeln!(
                    out,
                    "From the From, To, Cc and Reply-To of every message read, and every entry of the address list (directory) returned. Calendar objects and personal contacts read are listed by collection in `rampart ledger report`; the persons in them are not counted here yet.\n"
                )?;
                writeln!(
                    out,
                    "| address | names | messages | in the directory read |"
                )?;
                writeln!(out, "|---|---|---|---|")?;
                for p in &persons {
                    let names = p.names.iter().cloned().collect::<Vec<_>>().join("; ");
                    writeln!(
                        out,
                        "| {} | {} | {} | {} |",
                        cell(&p.address),
                        cell(&names),
                        p.messages,
                        if p.in_directory { "yes" } else { "no" }
                    )?;
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

    pub(super) fn incident(
        &self,
        dir: &std::path::Path,
        session_detail: usize,
    ) -> anyhow::Result<()> {
        let a = &self.activity;
        let totals = a.totals();
        let persons = self.persons();
        let verified = rampart_ledger::verify(dir, &[])?;
        let mut out = std::io::stdout().lock();
        writeln!(out, "# Incident report\n")?;
        writeln!(out, "Selection: {}.\n", self.selection)?;
        writeln!(
            out,
            "All times are in {}, each with its offset from UTC.\n",
            zone_name(&self.tz)
        )?;
        writeln!(out, "## Time window\n")?;
        writeln!(
            out,
            "First recorded access: {}. Last recorded access: {}. {} ledger entries.\n",
            a.first.map_or("none".into(), |t| self.at(t)),
            a.last.map_or("none".into(), |t| self.at(t)),
            totals.entries
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
        let mut by =
            |label: &str, key: &dyn Fn(&SessionSummary) -> String| -> std::io::Result<()> {
                let parts: Vec<String> = a
                    .count_sessions_by(key)
                    .iter()
                    .map(|(k, n)| format!("{} ({n})", cell(k)))
                    .collect();
                writeln!(out, "- {label}: {}", parts.join(", "))
            };
        by("client addresses", &|s| s.client.clone())?;
        by("client software", &|s| s.software())?;
        by("protocols", &|s| s.protocol.clone())?;
        by("authentication", &|s| s.auth.clone())?;
        by("principals", &|s| s.principal.clone())?;
        writeln!(out)?;
        self.groups_table(&mut out, &a.groups())?;
        self.sessions_table(&mut out, &a.sessions(), session_detail)?;
        writeln!(out, "## What was affected\n")?;
        writeln!(
            out,
            "- messages read: {} ({} bytes returned)",
            totals.messages_read, totals.bytes
        )?;
        writeln!(out, "- searches: {}", totals.searches)?;
        writeln!(out, "- changes: {}", totals.changes)?;
        writeln!(
            out,
            "- contacts, directory entries, calendar events read: none (not served by this version)"
        )?;
        writeln!(
            out,
            "- persons whose addresses were in the messages read: {}\n",
            persons.len()
        )?;
        for acc in a.accounts() {
            writeln!(out, "### Account {}\n", cell(&self.owner_name(acc.owner)))?;
            let mailboxes: BTreeSet<String> = acc
                .messages_read
                .values()
                .map(|m| cell(&m.mailbox))
                .collect();
            writeln!(
                out,
                "- messages read: {} in {}",
                acc.messages_read.len(),
                if mailboxes.is_empty() {
                    "-".to_string()
                } else {
                    mailboxes.into_iter().collect::<Vec<_>>().join(", ")
                }
            )?;
            writeln!(out, "- bytes returned: {}", acc.bytes)?;
            writeln!(
                out,
                "- searches: {}; changes: {}; listings: {}\n",
                acc.searches.len(),
                acc.changes.len(),
                acc.listings.len()
            )?;
        }
        writeln!(
            out,
            "Details: `rampart ledger report` and `rampart ledger subjects` with the same selection."
        )?;
        Ok(())
    }

    /// Sessions grouped by principal, address and client software.
    fn groups_table(&self, out: &mut impl Write, groups: &[SessionGroup]) -> std::io::Result<()> {
        writeln!(
            out,
            "## Sessions by principal, address and client software\n"
        )?;
        writeln!(
            out,
            "| principal | address | client software | protocols | auth | sessions | entries | reads | bytes | logins | failed | first | last |"
        )?;
        writeln!(out, "|---|---|---|---|---|---|---|---|---|---|---|---|---|")?;
        for g in groups {
            let join = |s: &BTreeSet<String>| s.iter().cloned().collect::<Vec<_>>().join(", ");
            writeln!(
                out,
                "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
                cell(&g.principal),
                g.client,
                cell(&g.client_software),
                join(&g.protocols),
                join(&g.auth),
                g.sessions,
                g.entries,
                g.reads,
                g.bytes,
                g.logins,
                g.failed_logins,
                self.at(g.first),
                self.at(g.last)
            )?;
        }
        writeln!(out)
    }

    /// The first `limit` sessions one by one, and how many more there are.
    fn sessions_table(
        &self,
        out: &mut impl Write,
        sessions: &[&SessionSummary],
        limit: usize,
    ) -> std::io::Result<()> {
        if limit == 0 || sessions.is_empty() {
            return Ok(());
        }
        writeln!(out, "## Sessions\n")?;
        writeln!(
            out,
            "| session | principal | auth | address | client software | protocol | first | last | entries | logins | failed |"
        )?;
        writeln!(out, "|---|---|---|---|---|---|---|---|---|---|---|")?;
        for s in sessions.iter().take(limit) {
            writeln!(
                out,
                "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
                s.session,
                cell(&s.principal),
                s.auth,
                s.client,
                cell(&s.software()),
                s.protocol,
                self.at(s.first),
                self.at(s.last),
                s.entries,
                s.logins,
                s.failed_logins
            )?;
        }
        if sessions.len() > limit {
            writeln!(
                out,
                "\n{} more sessions not listed (`--session-detail {}` lists all).",
                sessions.len() - limit,
                sessions.len()
            )?;
        }
        writeln!(out)
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

#[cfg(test)]
mod tests {
    use super::*;

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
