//! Full-text search in SQLite: a contentless FTS5 table with the trigram
//! tokenizer, so a quoted phrase matches as a substring.

use rusqlite::{Connection, params};

use crate::*;

/// The FTS5 query for a needle in one field.
pub(super) fn fts_query(field: TextField, needle: &str) -> String {
    let phrase = format!("\"{}\"", needle.replace('"', "\"\""));
    match field {
        TextField::Headers => format!("headers : {phrase}"),
        TextField::Body => format!("body : {phrase}"),
        TextField::All => phrase,
    }
}

/// The messages of a mailbox whose indexed text matches, and those not indexed.
pub(super) fn search(c: &mut Connection, mailbox: MailboxId, query: &str) -> Result<TextMatches> {
    let mut stmt = c.prepare_cached(
        // The index first: as a join, SQLite would run the full-text query
        // once per message of the mailbox.
        "SELECT mm.uid, mm.message_id FROM mailbox_messages mm
         WHERE mm.mailbox_id = ?2
           AND mm.message_id IN (SELECT rowid FROM message_text WHERE message_text MATCH ?1)
         ORDER BY mm.uid",
    )?;
    let matched = stmt
        .query_map(params![query, mailbox.0], |r| {
            Ok((r.get::<_, i64>(0)? as u32, MessageId(r.get(1)?)))
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    let mut stmt = c.prepare_cached(
        "SELECT mm.uid FROM mailbox_messages mm
         WHERE mm.mailbox_id = ?1
           AND mm.message_id IN (SELECT id FROM messages WHERE text_state != 1)
         ORDER BY mm.uid",
    )?;
    let unindexed = stmt
        .query_map(params![mailbox.0], |r| Ok(r.get::<_, i64>(0)? as u32))?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(TextMatches { matched, unindexed })
}
