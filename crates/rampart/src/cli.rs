//! The administration commands. They work on the same store whether or not
//! the server runs (SQLite in WAL mode lets both write; PostgreSQL anyway).

use std::io::{BufRead, IsTerminal, Write};
use std::sync::Arc;

use anyhow::{Context, bail};
use rampart_core::{Core, NewUser};
use rampart_store::{OpenMode, PrincipalKind, SystemFlags};

use crate::config::{Config, Service};
use crate::{
    AliasCommand, AppPasswordCommand, DomainCommand, GroupCommand, MailCommand, PasswordSource,
    QueueCommand, UserCommand,
};
use rampart_core::mbox::MboxReader;

/// Opens the store and the core under it, with the operator's access.
pub(crate) async fn open_core(
    config: &Config,
    mode: OpenMode,
) -> anyhow::Result<(Core, rampart_core::Access)> {
    let store = rampart_store::open(&config.store_config(), mode)
        .await
        .context("cannot open the store")?;
    let (core, privileged) = Core::new(store, config.core_config(), config.recorder(None)?).await?;
    Ok((with_derivers(core), crate::operator(&privileged)))
}

/// Registers what protocols compute once per stored message (IMAP's
/// ENVELOPE and BODYSTRUCTURE), for the server and for `mail import` alike.
pub fn with_derivers(mut core: Core) -> Core {
    core.add_deriver(Arc::new(rampart_imap::StructureDeriver));
    core
}

/// Parses a size such as `500M`, `2G`, `1024` or `0`.
pub fn parse_size(s: &str) -> Result<u64, String> {
    let s = s.trim();
    let (digits, unit) = match s.find(|c: char| !c.is_ascii_digit()) {
        Some(i) => s.split_at(i),
        None => (s, ""),
    };
    let n: u64 = digits
        .parse()
        .map_err(|_| format!("{s:?} is not a size: use a number with an optional K, M, G or T"))?;
    let mult: u64 = match unit.to_ascii_uppercase().trim_end_matches(['B', 'I']) {
        "" => 1,
        "K" => 1 << 10,
        "M" => 1 << 20,
        "G" => 1 << 30,
        "T" => 1 << 40,
        _ => return Err(format!("{s:?}: unknown unit {unit:?} (use K, M, G or T)")),
    };
    n.checked_mul(mult)
        .ok_or_else(|| format!("{s:?} is too large"))
}

fn human_size(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut unit = 0;
    while v >= 1024.0 && unit < UNITS.len() - 1 {
        v /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[unit])
    }
}

/// Gets a new password as the flags say; returns it and whether to print it.
fn new_password(source: &PasswordSource) -> anyhow::Result<(String, bool)> {
    if source.generate_password {
        return Ok((rampart_core::random_password(), true));
    }
    if source.password_stdin {
        let mut line = String::new();
        std::io::stdin().lock().read_line(&mut line)?;
        let password = line.trim_end_matches(['\r', '\n']).to_owned();
        if password.is_empty() {
            bail!("no password on standard input");
        }
        return Ok((password, false));
    }
    if !std::io::stdin().is_terminal() {
        bail!("standard input is not a terminal: pass --password-stdin or --generate-password");
    }
    let first = rpassword::prompt_password("New password: ")?;
    let second = rpassword::prompt_password("Repeat it: ")?;
    if first != second {
        bail!("the two passwords differ; nothing was changed");
    }
    Ok((first, false))
}

/// Makes DKIM keys for every local domain that has none (new domains, and
/// stores from before DKIM); returns the domains that got keys.
pub async fn ensure_dkim_keys(
    core: &Core,
    access: &rampart_core::Access,
    selector: &str,
) -> anyhow::Result<Vec<String>> {
    let mut made = Vec::new();
    for domain in core.list_domains(access).await? {
        if !core.dkim_keys(access, &domain.name).await?.is_empty() {
            continue;
        }
        let selector = selector.to_owned();
        // RSA key generation takes a while: keep it off the async threads.
        let keys =
            tokio::task::spawn_blocking(move || rampart_smtp::dkim::generate(&selector)).await??;
        core.add_dkim_keys(access, &domain.name, keys).await?;
        made.push(domain.name);
    }
    Ok(made)
}

/// `rampart dns DOMAIN`: the DNS records the domain needs.
pub async fn dns(config: &Config, domain: &str) -> anyhow::Result<()> {
    let (core, access) = open_core(config, OpenMode::MustExist).await?;
    let domain = rampart_core::normalize_domain(domain)?;
    if !core
        .list_domains(&access)
        .await?
        .iter()
        .any(|d| d.name == domain)
    {
        bail!("{domain} is not a local domain: add it with `rampart domain add {domain}`");
    }
    ensure_dkim_keys(&core, &access, &config.dkim.selector).await?;
    let host = &config.server.hostname;
    println!("; DNS records for {domain}. Publish them at your DNS provider.");
    println!("; Mail for {domain} is accepted by {host}; it needs A/AAAA records of its own.");
    println!("{domain}.\tIN MX 10 {host}.");
    println!("{domain}.\tIN TXT \"v=spf1 mx -all\"");
    for key in core.dkim_keys(&access, &domain).await? {
        let record = rampart_smtp::dkim::dns_record(&key);
        // TXT strings are at most 255 bytes each; split longer values.
        let parts: Vec<String> = record
            .as_bytes()
            .chunks(250)
            .map(|c| format!("\"{}\"", String::from_utf8_lossy(c)))
            .collect();
        println!(
            "{}._domainkey.{domain}.\tIN TXT {}",
            key.selector,
            parts.join(" ")
        );
    }
    println!(
        "_dmarc.{domain}.\tIN TXT \"v=DMARC1; p=quarantine; adkim=s; aspf=s; rua=mailto:postmaster@{domain}\""
    );
    // Client discovery (RFC 6186 for mail, RFC 6764 for CalDAV/CardDAV):
    // the first configured port of each service; a service that is off
    // gets the "not available" target ".".
    println!("; Client discovery: mail (RFC 6186), calendars and contacts (RFC 6764).");
    let srv = |name: &str, service: Service| match config.listen.addresses(service).first() {
        Some(addr) => println!("_{name}._tcp.{domain}.\tIN SRV 0 1 {} {host}.", addr.port()),
        None => println!("_{name}._tcp.{domain}.\tIN SRV 0 0 0 ."),
    };
    srv("imaps", Service::Imaps);
    srv("imap", Service::Imap);
    srv("submissions", Service::Submissions);
    srv("submission", Service::Submission);
    srv("caldavs", Service::Https);
    srv("carddavs", Service::Https);
    if !config.listen.addresses(Service::Https).is_empty() {
        println!("_caldavs._tcp.{domain}.\tIN TXT \"path=/dav/\"");
        println!("_carddavs._tcp.{domain}.\tIN TXT \"path=/dav/\"");
        println!("autoconfig.{domain}.\tIN CNAME {host}.");
    }
    Ok(())
}

/// `rampart init`.
pub async fn init(config: &Config, domain: &str) -> anyhow::Result<()> {
    let (core, operator) = open_core(config, OpenMode::CreateIfMissing).await?;
    let bootstrap = core.bootstrap(&operator, domain).await?;
    ensure_dkim_keys(&core, &operator, &config.dkim.selector).await?;
    match bootstrap {
        Some(b) => {
            println!("Created the store in {}", config.server.data_dir.display());
            println!("Created domain {} and its administrator", b.domain);
            println!("  address:  {}", b.admin_address);
            println!("  password: {}", b.admin_password);
            println!("This password is shown only once.");
        }
        None => println!("The store is set up already; nothing changed."),
    }
    Ok(())
}

/// `rampart domain ...`.
pub async fn domain(config: &Config, command: DomainCommand) -> anyhow::Result<()> {
    let (core, access) = open_core(config, OpenMode::MustExist).await?;
    match command {
        DomainCommand::Add { domain } => {
            let d = core.add_domain(&access, &domain).await?;
            ensure_dkim_keys(&core, &access, &config.dkim.selector).await?;
            println!("added domain {} with DKIM keys", d.name);
            println!(
                "publish its DNS records (MX, SPF, DKIM, DMARC), listed by `rampart dns {}`",
                d.name
            );
        }
        DomainCommand::List => {
            for d in core.list_domains(&access).await? {
                println!("{}", d.name);
            }
        }
        DomainCommand::Remove { domain } => {
            core.remove_domain(&access, &domain).await?;
            println!("removed domain {domain}");
        }
    }
    Ok(())
}

/// `rampart user ...`.
pub async fn user(config: &Config, command: UserCommand) -> anyhow::Result<()> {
    let (core, access) = open_core(config, OpenMode::MustExist).await?;
    match command {
        UserCommand::Add {
            address,
            name,
            quota,
            admin,
            password,
        } => {
            let (password, show) = new_password(&password)?;
            let p = core
                .add_user(
                    &access,
                    NewUser {
                        address,
                        display_name: name,
                        password: password.clone(),
                        quota_bytes: quota,
                        is_admin: admin,
                    },
                )
                .await?;
            println!("added user {} ({})", p.address(), p.display_name);
            if show {
                println!("password: {password}");
            }
        }
        UserCommand::List { domain } => {
            let principals = core.list_principals(&access, domain.as_deref()).await?;
            let mut out = std::io::stdout().lock();
            writeln!(
                out,
                "{:<40} {:<6} {:<24} {:>22}  state",
                "address", "kind", "name", "used / quota"
            )?;
            for p in principals {
                let kind = match p.kind {
                    PrincipalKind::User => "user",
                    PrincipalKind::Group => "group",
                };
                let quota = if p.kind == PrincipalKind::Group {
                    "-".to_string()
                } else if p.quota_bytes == 0 {
                    format!("{} / unlimited", human_size(p.used_bytes))
                } else {
                    format!(
                        "{} / {}",
                        human_size(p.used_bytes),
                        human_size(p.quota_bytes)
                    )
                };
                let mut state = Vec::new();
                if p.disabled {
                    state.push("disabled");
                }
                if p.is_admin {
                    state.push("admin");
                }
                writeln!(
                    out,
                    "{:<40} {kind:<6} {:<24} {quota:>22}  {}",
                    p.address(),
                    p.display_name,
                    if state.is_empty() {
                        "active".into()
                    } else {
                        state.join(",")
                    }
                )?;
            }
        }
        UserCommand::Passwd { address, password } => {
            let (password, show) = new_password(&password)?;
            core.set_password(&access, &address, password.clone())
                .await?;
            println!("changed the password of {address}");
            if show {
                println!("password: {password}");
            }
        }
        UserCommand::Disable { address } => {
            core.set_disabled(&access, &address, true).await?;
            println!("disabled {address}");
        }
        UserCommand::Enable { address } => {
            core.set_disabled(&access, &address, false).await?;
            println!("enabled {address}");
        }
        UserCommand::SentCopy { address, state } => {
            core.set_sent_copy(&access, &address, state == "on").await?;
            println!("server copy in Sent for {address}: {state}");
        }
        UserCommand::Profile {
            address,
            title,
            department,
            phone,
            office,
        } => {
            let mut profile = core.profile(&access, &address).await?;
            for (field, value) in [
                (&mut profile.title, title),
                (&mut profile.department, department),
                (&mut profile.phone, phone),
                (&mut profile.office, office),
            ] {
                if let Some(v) = value {
                    *field = v.trim().to_owned();
                }
            }
            core.set_profile(&access, &address, profile.clone()).await?;
            println!(
                "{address}: title {:?}, department {:?}, phone {:?}, office {:?}",
                profile.title, profile.department, profile.phone, profile.office
            );
        }
        UserCommand::Quota { address, size } => {
            core.set_quota(&access, &address, size).await?;
            println!(
                "quota of {address}: {}",
                if size == 0 {
                    "unlimited".into()
                } else {
                    human_size(size)
                }
            );
        }
        UserCommand::Remove { address, yes } => {
            if !yes {
                if !std::io::stdin().is_terminal() {
                    bail!("removing {address} deletes all of its mail: confirm with --yes");
                }
                eprint!("Remove {address} and all of its mail? Type the address to confirm: ");
                let mut line = String::new();
                std::io::stdin().lock().read_line(&mut line)?;
                if line.trim() != address {
                    bail!("not confirmed; nothing was removed");
                }
            }
            core.remove_principal(&access, &address).await?;
            println!("removed {address}");
        }
        UserCommand::AppPassword(c) => match c {
            AppPasswordCommand::Add { address, name } => {
                let (added, secret) = core.add_app_password(&access, &address, &name).await?;
                println!("added app password {:?} for {address}", added.name);
                println!("app password: {secret}");
            }
            AppPasswordCommand::List { address } => {
                for a in core.list_app_passwords(&access, &address).await? {
                    println!(
                        "{}  (created {})",
                        a.name,
                        crate::ledger_cli::format_time(a.created_at)
                    );
                }
            }
            AppPasswordCommand::Remove { address, name } => {
                core.remove_app_password(&access, &address, &name).await?;
                println!("removed app password {name:?} of {address}");
            }
        },
    }
    Ok(())
}

/// `rampart alias ...`.
pub async fn alias(config: &Config, command: AliasCommand) -> anyhow::Result<()> {
    let (core, access) = open_core(config, OpenMode::MustExist).await?;
    match command {
        AliasCommand::Add { alias, target } => {
            core.add_alias(&access, &alias, &target).await?;
            println!("{alias} now delivers to {target}");
        }
        AliasCommand::Remove { alias } => {
            core.remove_alias(&access, &alias).await?;
            println!("removed alias {alias}");
        }
        AliasCommand::List { target } => {
            let principals = core.list_principals(&access, None).await?;
            for a in core.list_aliases(&access, target.as_deref()).await? {
                let to = principals
                    .iter()
                    .find(|p| p.id == a.target)
                    .map(|p| p.address())
                    .unwrap_or_else(|| a.target.to_string());
                println!("{} -> {to}", a.address());
            }
        }
    }
    Ok(())
}

/// `rampart group ...`.
pub async fn group(config: &Config, command: GroupCommand) -> anyhow::Result<()> {
    let (core, access) = open_core(config, OpenMode::MustExist).await?;
    match command {
        GroupCommand::Add { address, name } => {
            let g = core.add_group(&access, &address, name).await?;
            println!("added group {}", g.address());
        }
        GroupCommand::Members { group, add, remove } => {
            let members = core
                .change_group_members(&access, &group, &add, &remove)
                .await?;
            if members.is_empty() {
                println!("{group} has no members");
            }
            for m in members {
                println!("{}", m.address());
            }
        }
    }
    Ok(())
}

/// `rampart mail ...`.
pub async fn mail(config: &Config, command: MailCommand) -> anyhow::Result<()> {
    let (core, access) = open_core(config, OpenMode::MustExist).await?;
    match command {
        MailCommand::Import {
            address,
            file,
            mailbox,
            print_uids,
        } => {
            let user = core.principal_by_address(&access, &address).await?;
            if user.kind != PrincipalKind::User {
                bail!("{address} is a group: import into a user's mailbox");
            }
            let target = core.find_mailbox(&access, user.id, &mailbox).await?;
            let input: Box<dyn BufRead> = match &file {
                Some(path) => Box::new(std::io::BufReader::new(
                    std::fs::File::open(path)
                        .with_context(|| format!("cannot read {}", path.display()))?,
                )),
                None => Box::new(std::io::stdin().lock()),
            };
            let limit = usize::try_from(config.limits.max_message_bytes).unwrap_or(usize::MAX);
            let mut reader = MboxReader::new(input, limit);
            let mut count = 0usize;
            let mut out = std::io::stdout().lock();
            // Reading is blocking, but the CLI does nothing else meanwhile.
            while let Some(raw) = reader.next_message(count + 1)? {
                let appended = core
                    .append(
                        &access,
                        target.id,
                        raw,
                        SystemFlags::default(),
                        vec![],
                        None,
                    )
                    .await
                    .with_context(|| format!("message {} was not imported", count + 1))?;
                count += 1;
                if print_uids {
                    writeln!(out, "uid {}", appended.uid)?;
                    out.flush()?;
                }
            }
            writeln!(
                out,
                "imported {count} messages into {}/{}",
                user.address(),
                target.name
            )?;
        }
    }
    Ok(())
}

/// `rampart queue ...`.
pub async fn queue(config: &Config, command: QueueCommand) -> anyhow::Result<()> {
    let (core, access) = open_core(config, OpenMode::MustExist).await?;
    let when = |ms: i64| rampart_smtp::rfc5322_date(ms / 1000);
    match command {
        QueueCommand::List => {
            let entries = core.queue_list(&access).await?;
            if entries.is_empty() {
                println!("the queue is empty");
            }
            for e in entries {
                let sender = if e.sender.is_empty() { "<>" } else { &e.sender };
                println!(
                    "{:<8} {:>9}  from {sender}  queued {}",
                    e.id,
                    human_size(e.size),
                    when(e.created_at)
                );
                for r in e.recipients {
                    println!(
                        "         {:<10} {}  (attempts {}, next {}){}",
                        r.status.as_str(),
                        r.address,
                        r.attempts,
                        when(r.next_attempt_at),
                        r.last_error
                            .map(|e| format!("\n                    last error: {e}"))
                            .unwrap_or_default()
                    );
                }
            }
        }
        QueueCommand::Show { id } => {
            let e = core.queue_get(&access, rampart_store::QueueId(id)).await?;
            println!("id:       {}", e.id);
            println!(
                "sender:   {}",
                if e.sender.is_empty() { "<>" } else { &e.sender }
            );
            println!("size:     {}", human_size(e.size));
            println!("queued:   {}", when(e.created_at));
            for r in e.recipients {
                println!(
                    "recipient {}: {}, {} attempts, next {}",
                    r.address,
                    r.status.as_str(),
                    r.attempts,
                    when(r.next_attempt_at)
                );
                if let Some(err) = r.last_error {
                    println!("  last error: {err}");
                }
            }
        }
        QueueCommand::Retry { id } => {
            core.queue_retry(&access, rampart_store::QueueId(id))
                .await?;
            println!("queued message {id} is due now; the running server retries it");
        }
        QueueCommand::Remove { id } => {
            core.queue_remove(&access, rampart_store::QueueId(id))
                .await?;
            println!("removed queued message {id}");
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("0"), Ok(0));
        assert_eq!(parse_size("1024"), Ok(1024));
        assert_eq!(parse_size("500M"), Ok(500 << 20));
        assert_eq!(parse_size("2g"), Ok(2 << 30));
        assert_eq!(parse_size("2GiB"), Ok(2 << 30));
        assert!(parse_size("2X").is_err());
        assert!(parse_size("lots").is_err());
        assert!(parse_size("99999999999T").is_err());
        assert_eq!(human_size(1536), "1.5 KiB");
    }
}
