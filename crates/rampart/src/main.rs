#![forbid(unsafe_code)]
//! The `rampart` binary: command line, configuration, listeners, TLS.

mod cli;
mod config;
mod contact_cli;
mod ledger_cli;
mod privileges;
mod serve;
mod share_cli;
mod tls;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

use crate::config::Config;

/// Rampart: mail, calendars, contacts and a web app in one server for small organisations.
#[derive(Parser, Debug)]
#[command(name = "rampart", version, about, long_about = None, propagate_version = true)]
struct Cli {
    /// Configuration file (TOML); without it every setting has its default (see docs/config.md).
    #[arg(long, global = true, env = "RAMPART_CONFIG", value_name = "FILE")]
    config: Option<PathBuf>,
    /// Data directory holding the embedded store, blobs and TLS files; overrides server.data_dir.
    #[arg(long, global = true, env = "RAMPART_DATA", value_name = "DIR")]
    data: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run the server: bind every configured service, create the store on first start, serve until SIGINT/SIGTERM.
    Serve {
        /// The first domain, created with an administrator account on first start.
        #[arg(long, default_value = "localhost", value_name = "DOMAIN")]
        domain: String,
    },
    /// Create the store, first domain and administrator without serving (as on serve's first start).
    Init {
        /// The first domain, created with an administrator account.
        #[arg(long, default_value = "localhost", value_name = "DOMAIN")]
        domain: String,
    },
    /// Manage local domains.
    #[command(subcommand)]
    Domain(DomainCommand),
    /// Manage user accounts.
    #[command(subcommand)]
    User(UserCommand),
    /// Manage alias addresses (extra addresses that deliver to a user or group).
    #[command(subcommand)]
    Alias(AliasCommand),
    /// Manage group addresses (an address that delivers to each member).
    #[command(subcommand)]
    Group(GroupCommand),
    /// Move mail into the store.
    #[command(subcommand)]
    Mail(MailCommand),
    /// Print the DNS records a local domain needs: MX, SPF, DKIM, DMARC.
    Dns {
        /// The domain.
        domain: String,
    },
    /// Inspect and manage the outbound mail queue.
    #[command(subcommand)]
    Queue(QueueCommand),
    /// Verify the access ledger, export its checkpoints, and ask who read what.
    #[command(subcommand)]
    Ledger(ledger_cli::LedgerCommand),
    /// The organisation's contacts that are not accounts, in its address list.
    #[command(subcommand)]
    Contact(contact_cli::ContactCommand),
    /// Share a user's calendar or address book with another account or a group.
    #[command(subcommand)]
    Share(share_cli::ShareCommand),
}

#[derive(Subcommand, Debug)]
enum QueueCommand {
    /// List queued messages with each recipient's state.
    List,
    /// Show one queued message: envelope, attempts and last errors.
    Show {
        /// The queue id (from `queue list`).
        id: i64,
    },
    /// Make a queued message due now (it is retried by the running server).
    Retry {
        /// The queue id.
        id: i64,
    },
    /// Remove a queued message without delivering it (no bounce is sent).
    Remove {
        /// The queue id.
        id: i64,
    },
}

#[derive(Subcommand, Debug)]
enum DomainCommand {
    /// Add a local domain: mail for it is accepted and delivered here.
    Add {
        /// Domain name, e.g. example.org (IDNs in their xn-- form).
        domain: String,
    },
    /// List local domains.
    List,
    /// Remove a domain that has no users, groups or aliases left.
    Remove {
        /// Domain name.
        domain: String,
    },
}

/// How a command gets a new password.
#[derive(Args, Debug)]
struct PasswordSource {
    /// Read the password from the first line of standard input instead of prompting.
    #[arg(long, conflicts_with = "generate_password")]
    password_stdin: bool,
    /// Generate a random password and print it once.
    #[arg(long)]
    generate_password: bool,
}

#[derive(Subcommand, Debug)]
enum UserCommand {
    /// Add a user with the standard mailboxes (INBOX, Sent, Drafts, Trash, Junk, Archive).
    Add {
        /// The user's address, e.g. alice@example.org (its domain must exist).
        address: String,
        /// Name shown to people, e.g. "Alice Martin".
        #[arg(long, value_name = "NAME")]
        name: Option<String>,
        /// Storage quota, e.g. 500M, 2G, or 0 for unlimited (default: limits.default_quota_bytes).
        #[arg(long, value_name = "SIZE", value_parser = cli::parse_size)]
        quota: Option<u64>,
        /// Make the user an administrator (manages accounts; never reads their mail).
        #[arg(long)]
        admin: bool,
        #[command(flatten)]
        password: PasswordSource,
    },
    /// List users and groups with their quotas and state.
    List {
        /// Only this domain.
        #[arg(long, value_name = "DOMAIN")]
        domain: Option<String>,
    },
    /// Set a user's password.
    Passwd {
        /// The user's address.
        address: String,
        #[command(flatten)]
        password: PasswordSource,
    },
    /// Disable a user: no login, no mail delivered (mail already stored is kept).
    Disable {
        /// The user's address.
        address: String,
    },
    /// Enable a disabled user again.
    Enable {
        /// The user's address.
        address: String,
    },
    /// Change a user's storage quota.
    Quota {
        /// The user's address.
        address: String,
        /// New quota, e.g. 500M, 2G, or 0 for unlimited.
        #[arg(value_parser = cli::parse_size)]
        size: u64,
    },
    /// Whether mail the user sends is filed in Sent by the server (on by
    /// default; turn it off for a client that files its own copy and
    /// should not be deduplicated).
    SentCopy {
        /// The user's address.
        address: String,
        /// `on` or `off`.
        #[arg(value_parser = ["on", "off"])]
        state: String,
    },
    /// Set what the organisation's address list shows of a user or group
    /// (given fields only; an empty value clears one).
    Profile {
        /// The address.
        address: String,
        /// Job title.
        #[arg(long)]
        title: Option<String>,
        /// Department.
        #[arg(long)]
        department: Option<String>,
        /// Phone numbers, separated by commas.
        #[arg(long)]
        phone: Option<String>,
        /// Office (building, room).
        #[arg(long)]
        office: Option<String>,
    },
    /// Manage a user's app passwords (one per device or mail client, revocable).
    #[command(subcommand)]
    AppPassword(AppPasswordCommand),
    /// Remove a user (or group) with all of its mail. This cannot be undone.
    Remove {
        /// The primary address.
        address: String,
        /// Confirm the removal without a prompt.
        #[arg(long)]
        yes: bool,
    },
}

#[derive(Subcommand, Debug)]
enum AppPasswordCommand {
    /// Make an app password and print it (once; only a hash is kept).
    Add {
        /// The user's address.
        address: String,
        /// What it is for, e.g. "phone" or "Thunderbird at home".
        name: String,
    },
    /// List a user's app passwords.
    List {
        /// The user's address.
        address: String,
    },
    /// Revoke an app password.
    Remove {
        /// The user's address.
        address: String,
        /// Its name.
        name: String,
    },
}

#[derive(Subcommand, Debug)]
enum AliasCommand {
    /// Add an alias address delivering to a user or group.
    Add {
        /// The new address, e.g. info@example.org.
        alias: String,
        /// The user or group it delivers to.
        target: String,
    },
    /// Remove an alias address.
    Remove {
        /// The alias address.
        alias: String,
    },
    /// List aliases.
    List {
        /// Only aliases of this user or group.
        #[arg(long, value_name = "ADDRESS")]
        target: Option<String>,
    },
}

#[derive(Subcommand, Debug)]
enum GroupCommand {
    /// Add a group address; mail to it goes to every member.
    Add {
        /// The group's address, e.g. council@example.org.
        address: String,
        /// Name shown to people.
        #[arg(long, value_name = "NAME")]
        name: Option<String>,
    },
    /// Show a group's members, adding or removing some first.
    Members {
        /// The group's address.
        group: String,
        /// Add this user or group (repeatable).
        #[arg(long, value_name = "ADDRESS")]
        add: Vec<String>,
        /// Remove this member (repeatable).
        #[arg(long, value_name = "ADDRESS")]
        remove: Vec<String>,
    },
}

#[derive(Subcommand, Debug)]
enum MailCommand {
    /// Import messages from an mbox file (or standard input) into a user's mailbox.
    Import {
        /// The user's address.
        address: String,
        /// The mbox file; standard input when absent.
        file: Option<PathBuf>,
        /// The mailbox to import into.
        #[arg(long, default_value = "INBOX", value_name = "NAME")]
        mailbox: String,
        /// Print the UID of each message as soon as it is stored durably.
        #[arg(long)]
        print_uids: bool,
    },
}

/// The access of whoever runs this command on the machine.
/// The operator at this machine's command line, named by the OS user.
fn operator(privileged: &rampart_core::Privileged) -> rampart_core::Access {
    let uid = nix::unistd::getuid();
    let name = nix::unistd::User::from_uid(uid)
        .ok()
        .flatten()
        .map(|u| u.name)
        .unwrap_or_else(|| format!("uid {uid}"));
    privileged.operator(name)
}

fn load_config(cli: &Cli) -> anyhow::Result<Config> {
    let mut config = match &cli.config {
        Some(path) => Config::load(path)?,
        None => Config::default(),
    };
    if let Some(dir) = &cli.data {
        config.server.data_dir = dir.clone();
    }
    Ok(config)
}

fn init_logging(config: &Config, serving: bool) {
    // Administration commands print their results; their log stays quiet
    // unless asked for, so scripts read clean output.
    let default = if serving {
        config.log.level.clone()
    } else {
        "warn".into()
    };
    let filter = std::env::var("RAMPART_LOG").unwrap_or(default);
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_new(filter)
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .try_init();
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?)
}

fn run(cli: Cli) -> anyhow::Result<()> {
    let config = load_config(&cli)?;
    init_logging(&config, matches!(cli.command, Command::Serve { .. }));
    match cli.command {
        Command::Serve { domain } => {
            rampart_core::normalize_domain(&domain)?;
            // Binding and dropping root happen before any runtime thread exists.
            let prepared = serve::prepare(config)?;
            runtime()?.block_on(serve::run(prepared, &domain))
        }
        Command::Init { domain } => runtime()?.block_on(cli::init(&config, &domain)),
        Command::Domain(c) => runtime()?.block_on(cli::domain(&config, c)),
        Command::User(c) => runtime()?.block_on(cli::user(&config, c)),
        Command::Alias(c) => runtime()?.block_on(cli::alias(&config, c)),
        Command::Group(c) => runtime()?.block_on(cli::group(&config, c)),
        Command::Mail(c) => runtime()?.block_on(cli::mail(&config, c)),
        Command::Queue(c) => runtime()?.block_on(cli::queue(&config, c)),
        Command::Dns { domain } => runtime()?.block_on(cli::dns(&config, &domain)),
        Command::Contact(c) => runtime()?.block_on(contact_cli::contact(&config, c)),
        Command::Share(c) => runtime()?.block_on(share_cli::share(&config, c)),
        Command::Ledger(c) => runtime()?.block_on(ledger_cli::ledger(&config, c)),
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("rampart: {e:#}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_definition_is_consistent() {
        Cli::command().debug_assert();
    }
}
