//! Full-text search in PostgreSQL: LIKE over the text rows, which pg_trgm's
//! GIN indexes answer where the extension is available.

use crate::*;

/// A LIKE pattern that matches `needle` anywhere.
fn like_pattern(needle: &str) -> String {
    let mut p = String::with_capacity(needle.len() + 2);
    p.push('%');
    for ch in needle.chars() {
        if matches!(ch, '%' | '_' | '\\') {
            p.push('\\');
        }
        p.push(ch);
    }
    p.push('%');
    p
}

/// The messages of a mailbox whose indexed text matches, and those not indexed.
pub(super) async fn search(
    c: &deadpool_postgres::Client,
    mailbox: MailboxId,
    field: TextField,
    needle: &str,
) -> Result<TextMatches> {
    let pattern = like_pattern(needle);
    let condition = match field {
        TextField::Headers => "t.headers LIKE $2",
        TextField::Body => "t.body LIKE $2",
        TextField::All => "(t.headers LIKE $2 OR t.body LIKE $2)",
    };
    let matched = c
        .query(
            &format!(
                "SELECT mm.uid, mm.message_id FROM message_text t
                 JOIN mailbox_messages mm ON mm.message_id = t.message_id
                 WHERE mm.mailbox_id = $1 AND {condition}
                 ORDER BY mm.uid"
            ),
            &[&mailbox.0, &pattern],
        )
        .await?
        .iter()
        .map(|r| (r.get::<_, i64>(0) as u32, MessageId(r.get(1))))
        .collect();
    let unindexed = c
        .query(
            "SELECT mm.uid FROM messages m
             JOIN mailbox_messages mm ON mm.message_id = m.id
             WHERE m.text_state <> 1 AND mm.mailbox_id = $1
             ORDER BY mm.uid",
            &[&mailbox.0],
        )
        .await?
        .iter()
        .map(|r| r.get::<_, i64>(0) as u32)
        .collect();
    Ok(TextMatches { matched, unindexed })
}
