//! Announcements between nodes sharing one database: triggers (schema 11)
//! NOTIFY on the schema's channel whenever a mailbox changes or a client is
//! banned, and each node LISTENs on one connection of its own and passes
//! what others announced on to core (IMAP IDLE, the failed-login guard).

use std::time::Duration;

use tokio::sync::broadcast;
use tokio_postgres::{AsyncMessage, NoTls};

use super::Postgres;
use crate::{Announcement, MailboxId};

/// Announcements kept for a slow receiver before it sees `Lagged`.
const BACKLOG: usize = 1024;

/// Longest wait before reconnecting a lost listening connection.
const MAX_RECONNECT_WAIT: Duration = Duration::from_secs(10);

/// A name for this process's connections (their `application_name`), unique
/// among the nodes, by which a node knows its own announcements.
pub(super) fn node_name() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let seed = format!("{}-{nanos}", std::process::id());
    let hash = blake3::hash(seed.as_bytes()).to_hex();
    format!("rampart-{}", &hash[..16])
}

impl Postgres {
    /// Starts listening on first use; later calls share the one connection.
    pub(super) fn subscribe(&self) -> broadcast::Receiver<Announcement> {
        self.announcements
            .get_or_init(|| {
                let (tx, _) = broadcast::channel(BACKLOG);
                let task = tokio::spawn(listen(
                    self.pg_config.clone(),
                    self.node.clone(),
                    tx.clone(),
                ));
                *self.listener.lock().expect("listener lock") = Some(task.abort_handle());
                tx
            })
            .subscribe()
    }
}

/// Listens until aborted (when the store is dropped), reconnecting with a
/// growing wait when the connection is lost. Announcements made while it
/// was away are not replayed: sessions fall back to their periodic check.
async fn listen(config: tokio_postgres::Config, node: String, tx: broadcast::Sender<Announcement>) {
    let mut wait = Duration::from_millis(100);
    loop {
        match listen_once(&config, &node, &tx).await {
            Ok(()) => tracing::warn!("the PostgreSQL connection for announcements closed"),
            Err(e) => tracing::warn!("cannot listen for other nodes' changes: {e}"),
        }
        tokio::time::sleep(wait).await;
        wait = (wait * 2).min(MAX_RECONNECT_WAIT);
    }
}

async fn listen_once(
    config: &tokio_postgres::Config,
    node: &str,
    tx: &broadcast::Sender<Announcement>,
) -> Result<(), tokio_postgres::Error> {
    let (client, mut connection) = config.connect(NoTls).await?;
    let (notes_tx, mut notes) = tokio::sync::mpsc::unbounded_channel();
    // The connection must be polled for queries to make progress; polling
    // it by messages is what yields the notifications.
    let driver = tokio::spawn(async move {
        while let Some(message) = std::future::poll_fn(|cx| connection.poll_message(cx)).await {
            match message {
                Ok(AsyncMessage::Notification(n)) => {
                    if notes_tx.send(n.payload().to_owned()).is_err() {
                        break;
                    }
                }
                Ok(_) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    });
    let schema: String = client
        .query_one("SELECT current_schema()", &[])
        .await?
        .get(0);
    let channel = format!("rampart_{schema}").replace('"', "\"\"");
    client
        .batch_execute(&format!("LISTEN \"{channel}\""))
        .await?;
    tracing::debug!("listening for other nodes' changes on {channel}");
    while let Some(payload) = notes.recv().await {
        if let Some(announcement) = parse(&payload, node) {
            // No receiver is normal (no session waiting).
            let _ = tx.send(announcement);
        }
    }
    drop(client);
    driver.await.unwrap_or(Ok(()))
}

/// Reads a trigger's payload (`m NODE MAILBOX` or `b NODE UNTIL CLIENT`),
/// skipping this node's own.
fn parse(payload: &str, own_node: &str) -> Option<Announcement> {
    let mut parts = payload.splitn(3, ' ');
    let (kind, node, detail) = (parts.next()?, parts.next()?, parts.next()?);
    if node == own_node {
        return None;
    }
    match kind {
        "m" => Some(Announcement::Mailbox(MailboxId(detail.parse().ok()?))),
        "b" => {
            let (until, client) = detail.split_once(' ')?;
            Some(Announcement::Ban {
                client: client.to_owned(),
                until: until.parse().ok()?,
            })
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payloads_of_other_nodes_are_read_and_own_ones_skipped() {
        assert_eq!(
            parse("m rampart-a 42", "rampart-b"),
            Some(Announcement::Mailbox(MailboxId(42)))
        );
        assert_eq!(parse("m rampart-b 42", "rampart-b"), None);
        assert_eq!(
            parse("b rampart-a 1700000000000 2001:db8::", "rampart-b"),
            Some(Announcement::Ban {
                client: "2001:db8::".into(),
                until: 1_700_000_000_000
            })
        );
        assert_eq!(parse("m rampart-a x", "rampart-b"), None);
        assert_eq!(parse("z rampart-a 1", "rampart-b"), None);
        assert_eq!(parse("m", "rampart-b"), None);
        assert_ne!(node_name(), node_name(), "two processes' names differ");
    }
}
