//! The full-text index: which messages still need their text indexed,
//! adding it, and searching. How text is indexed and matched is the
//! backend's (SQLite FTS5 trigrams, PostgreSQL pg_trgm).

use async_trait::async_trait;

use crate::sql::{Backend, Size, SqlStore, params};
use crate::*;

/// The full-text index of messages.
#[async_trait]
pub trait TextIndex: Send + Sync + 'static {
    /// Searches the full-text index of a mailbox for a lower-case needle of
    /// at least three characters (a substring match, as IMAP SEARCH asks).
    async fn search_text(
        &self,
        account: PrincipalId,
        mailbox: MailboxId,
        field: TextField,
        needle: &str,
    ) -> Result<TextMatches>;
    /// Up to `limit` messages that have no indexed text yet, oldest first
    /// (the indexer's work across accounts: ids and blobs, no user data).
    async fn unindexed_messages(&self, limit: usize) -> Result<Vec<(MessageId, BlobHash)>>;
    /// Adds messages' text to the full-text index (messages gone meanwhile are skipped).
    async fn put_text(&self, entries: Vec<(MessageId, MessageText)>) -> Result<()>;
}

#[async_trait]
impl<B: Backend> TextIndex for SqlStore<B> {
    async fn search_text(
        &self,
        account: PrincipalId,
        mailbox: MailboxId,
        field: TextField,
        needle: &str,
    ) -> Result<TextMatches> {
        // The backend's search reads by mailbox; it runs only on a mailbox
        // of the account.
        self.read(Size::Few, move |c| {
            Box::pin(async move { super::mailboxes::mailbox_in(c, account, mailbox, false).await })
        })
        .await?;
        self.backend.search_text(mailbox, field, needle).await
    }

    async fn unindexed_messages(&self, limit: usize) -> Result<Vec<(MessageId, BlobHash)>> {
        self.read(Size::Many, move |c| {
            Box::pin(async move {
                c.query(
                    // The partial index's own condition, stated: the planner
                    // does not infer it from "= 0" (SQLite scanned every message).
                    "SELECT id, blob_hash FROM messages WHERE text_state <> 1 AND text_state = 0
                     ORDER BY id LIMIT $1",
                    params![limit],
                )
                .await?
                .into_iter()
                .map(|r| Ok((MessageId(r.int(0)?), BlobHash::from_hex(r.str(1)?)?)))
                .collect()
            })
        })
        .await
    }

    async fn put_text(&self, entries: Vec<(MessageId, MessageText)>) -> Result<()> {
        if entries.is_empty() {
            return Ok(());
        }
        self.write(move |c| {
            Box::pin(async move {
                for (id, text) in &entries {
                    c.index_text(id.0, text).await?;
                }
                Ok(())
            })
        })
        .await
    }
}
