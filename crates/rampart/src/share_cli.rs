//! `rampart share ...`: a user's calendar or address book shared with
//! another account or a group, for reading or for reading and writing.

use clap::{Subcommand, ValueEnum};
use rampart_core::model::{CollectionKind, ShareRights};
use rampart_store::OpenMode;

use crate::cli::open_core;
use crate::config::Config;

/// Which kind of collection.
#[derive(ValueEnum, Clone, Copy, Debug)]
pub enum Kind {
    Calendar,
    Addressbook,
}

impl From<Kind> for CollectionKind {
    fn from(k: Kind) -> Self {
        match k {
            Kind::Calendar => CollectionKind::Calendar,
            Kind::Addressbook => CollectionKind::AddressBook,
        }
    }
}

/// Read only, or read and write.
#[derive(ValueEnum, Clone, Copy, Debug)]
pub enum Rights {
    Read,
    Write,
}

/// `rampart share ...`.
#[derive(Subcommand, Debug)]
pub enum ShareCommand {
    /// Share a collection (e.g. `share add alice@example.org calendar work bob@example.org`).
    Add {
        /// The owner's address.
        owner: String,
        kind: Kind,
        /// The collection's name (its last path segment, e.g. `calendar`).
        name: String,
        /// The account or group to share it with.
        grantee: String,
        #[arg(long, value_enum, default_value = "read")]
        rights: Rights,
    },
    /// End a share.
    Remove {
        owner: String,
        kind: Kind,
        name: String,
        grantee: String,
    },
    /// Who a collection is shared with.
    List {
        owner: String,
        kind: Kind,
        name: String,
    },
}

pub async fn share(config: &Config, command: ShareCommand) -> anyhow::Result<()> {
    let (core, access) = open_core(config, OpenMode::MustExist).await?;
    match command {
        ShareCommand::Add {
            owner,
            kind,
            name,
            grantee,
            rights,
        } => {
            let rights = match rights {
                Rights::Read => ShareRights::Read,
                Rights::Write => ShareRights::Write,
            };
            core.share_dav_collection(&access, &owner, kind.into(), &name, &grantee, Some(rights))
                .await?;
            println!(
                "{name} of {owner} shared with {grantee} ({})",
                rights.as_str()
            );
        }
        ShareCommand::Remove {
            owner,
            kind,
            name,
            grantee,
        } => {
            core.share_dav_collection(&access, &owner, kind.into(), &name, &grantee, None)
                .await?;
            println!("{name} of {owner} no longer shared with {grantee}");
        }
        ShareCommand::List { owner, kind, name } => {
            for (grantee, rights) in core
                .dav_collection_shares(&access, &owner, kind.into(), &name)
                .await?
            {
                println!("{grantee}\t{}", rights.as_str());
            }
        }
    }
    Ok(())
}
