//! The store's operations, each written once for both backends, one
//! module (and one trait) per concern.

mod address_list;
mod blobs;
mod collections;
mod directory;
mod login_bans;
mod mailboxes;
mod messages;
mod queue;
mod sts_policies;
mod text;

pub use address_list::AddressListStore;
pub use blobs::BlobStore;
pub use collections::CollectionStore;
pub use directory::DirectoryStore;
pub use login_bans::LoginBanStore;
pub use mailboxes::MailboxStore;
pub use messages::MessageStore;
pub use queue::QueueStore;
pub use sts_policies::StsPolicyStore;
pub use text::TextIndex;
