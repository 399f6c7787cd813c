//! `rampart contact ...`: the organisation's contacts that are not
//! accounts (suppliers, services, partners), shown to every user of the
//! domain in the address list (the read-only `directory` address book).

use anyhow::bail;
use clap::Subcommand;
use rampart_core::model::NewOrgContact;
use rampart_store::OpenMode;

use crate::cli::open_core;
use crate::config::Config;

/// Most cards one import takes.
const MAX_IMPORT_CARDS: usize = 100_000;

/// `rampart contact ...`.
#[derive(Subcommand, Debug)]
pub enum ContactCommand {
    /// Add a contact to a domain's address list.
    Add {
        /// The domain (the organisation).
        domain: String,
        /// The name shown.
        #[arg(long)]
        name: String,
        /// E-mail address.
        #[arg(long)]
        email: Option<String>,
        /// Phone number.
        #[arg(long)]
        phone: Option<String>,
        /// Organisation or department.
        #[arg(long)]
        org: Option<String>,
    },
    /// Import every card of a vCard file (3.0 or 4.0) into a domain's address list.
    Import {
        /// The domain.
        domain: String,
        /// The .vcf file.
        file: std::path::PathBuf,
    },
    /// List a domain's contacts.
    List {
        /// The domain.
        domain: String,
    },
    /// Remove a contact by its UID.
    Remove {
        /// The domain.
        domain: String,
        /// The contact's UID, as `list` shows it.
        uid: String,
    },
}

/// Escapes a vCard text value (RFC 6350 §3.4).
fn text(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace(',', "\\,")
        .replace(';', "\\;")
        .replace('\n', "\\n")
        .replace('\r', "")
}

pub async fn contact(config: &Config, command: ContactCommand) -> anyhow::Result<()> {
    let (core, access) = open_core(config, OpenMode::MustExist).await?;
    match command {
        ContactCommand::Add {
            domain,
            name,
            email,
            phone,
            org,
        } => {
            if name.trim().is_empty() {
                bail!("a contact needs a name");
            }
            let seed = format!("{name}\n{email:?}\n{}", rampart_store::now_millis());
            // A content hash of name, address and time: unique enough for
            // one organisation's list, and stable in the card once made.
            let uid = format!(
                "urn:rampart:contact:{}",
                &rampart_core::resource_etag(seed.as_bytes())[..24]
            );
            let mut data = format!(
                "BEGIN:VCARD\r\nVERSION:4.0\r\nUID:{uid}\r\nKIND:individual\r\nFN:{}\r\n",
                text(name.trim())
            );
            if let Some(e) = &email {
                data.push_str(&format!("EMAIL;TYPE=work:{}\r\n", text(e.trim())));
            }
            if let Some(p) = &phone {
                data.push_str(&format!("TEL;TYPE=work;VALUE=text:{}\r\n", text(p.trim())));
            }
            if let Some(o) = &org {
                data.push_str(&format!("ORG:{}\r\n", text(o.trim())));
            }
            data.push_str("END:VCARD\r\n");
            let added = core
                .add_org_contact(
                    &access,
                    &domain,
                    NewOrgContact {
                        uid,
                        display_name: name.trim().to_owned(),
                        email: email.unwrap_or_default().trim().to_owned(),
                        data,
                    },
                )
                .await?;
            println!("added {} ({})", added.display_name, added.uid);
        }
        ContactCommand::Import { domain, file } => {
            let text = std::fs::read_to_string(&file)
                .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", file.display()))?;
            let (mut added, mut refused) = (0, 0);
            for card in rampart_dav::vcard::cards(&text, MAX_IMPORT_CARDS) {
                let result = match card {
                    Ok(c) => core
                        .add_org_contact(
                            &access,
                            &domain,
                            NewOrgContact {
                                uid: c.uid.clone(),
                                display_name: c.name,
                                email: c.email,
                                data: c.data,
                            },
                        )
                        .await
                        .map(|_| ())
                        .map_err(|e| format!("{}: {e}", c.uid)),
                    Err(why) => Err(why),
                };
                match result {
                    Ok(()) => added += 1,
                    Err(why) => {
                        refused += 1;
                        eprintln!("skipped: {why}");
                    }
                }
            }
            println!("imported {added} contacts into {domain}; {refused} skipped");
        }
        ContactCommand::List { domain } => {
            for c in core.org_contacts(&access, &domain).await? {
                println!("{}\t{}\t{}", c.uid, c.display_name, c.email);
            }
        }
        ContactCommand::Remove { domain, uid } => {
            core.remove_org_contact(&access, &domain, &uid).await?;
            println!("removed {uid}");
        }
    }
    Ok(())
}
