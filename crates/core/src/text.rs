//! Full-text search: the decoded text of a message as searches see it, and
//! the index that answers substring searches without reading messages.
//!
//! The index keeps exactly the text [`SearchableText`] builds, so an
//! answer from it equals what reading the messages would give.

use mail_parser::{HeaderValue, MessageParser};
use rampart_store::{MailboxId, MessageId, MessageText, TextField, TextMatches};

use crate::{Access, Core, CoreResult, Event, Operation};

/// Shortest needle the index answers: it indexes runs of three characters.
pub const MIN_INDEXED_NEEDLE_CHARS: usize = 3;

/// Decoded, lower-cased text of a message: encoded words and transfer
/// encodings undone, charsets converted to UTF-8, HTML turned into text.
#[derive(Clone, Debug, Default)]
pub struct SearchableText {
    /// (lower-case field name, lower-case decoded value), in message order.
    pub headers: Vec<(String, String)>,
    /// Lower-case text of the text parts, each followed by a newline.
    pub body: String,
}

/// An address header as searched: display names, addresses and, for group
/// syntax, the group's name (RFC 9051 §6.4.4 searches the field's text).
fn address_text(a: &mail_parser::Address<'_>) -> String {
    let one = |addr: &mail_parser::Addr<'_>| {
        format!(
            "{} <{}>",
            addr.name().unwrap_or(""),
            addr.address().unwrap_or("")
        )
    };
    match a {
        mail_parser::Address::List(list) => list.iter().map(one).collect::<Vec<_>>().join(", "),
        mail_parser::Address::Group(groups) => groups
            .iter()
            .map(|g| {
                let members: Vec<String> = g.addresses.iter().map(one).collect();
                match g.name.as_deref() {
                    Some(name) => format!("{name}: {};", members.join(", ")),
                    None => members.join(", "),
                }
            })
            .collect::<Vec<_>>()
            .join(" "),
    }
}

impl SearchableText {
    /// Decodes a raw message.
    pub fn new(raw: &[u8]) -> Self {
        let Some(message) = MessageParser::default().parse(raw) else {
            return SearchableText {
                headers: Vec::new(),
                body: String::from_utf8_lossy(raw).to_lowercase(),
            };
        };
        let mut headers = Vec::new();
        for h in message.headers() {
            let raw_value = || {
                let (s, e) = (h.offset_start() as usize, h.offset_end() as usize);
                String::from_utf8_lossy(raw.get(s..e).unwrap_or_default())
                    .trim()
                    .to_owned()
            };
            // Message-ID-like fields are searched as written, with their
            // angle brackets (RFC 9051 §6.4.4: a substring of the field).
            let as_written = matches!(
                h.name().to_ascii_lowercase().as_str(),
                "message-id" | "in-reply-to" | "references" | "resent-message-id" | "content-id"
            );
            let value = match h.value() {
                _ if as_written => raw_value(),
                HeaderValue::Text(t) => t.to_string(),
                HeaderValue::TextList(l) => l.join(" "),
                HeaderValue::Address(a) => address_text(a),
                _ => raw_value(),
            };
            headers.push((h.name().to_ascii_lowercase(), value.to_lowercase()));
        }
        let mut body = String::new();
        for i in 0..message.text_body_count() {
            if let Some(t) = message.body_text(i) {
                body.push_str(&t.to_lowercase());
                body.push('\n');
            }
        }
        SearchableText { headers, body }
    }

    /// Whether a field of this name contains the lower-case needle.
    pub fn header_contains(&self, name: &str, needle: &str) -> bool {
        self.headers
            .iter()
            .any(|(n, v)| n.eq_ignore_ascii_case(name) && v.contains(needle))
    }

    /// Whether the body contains the lower-case needle.
    pub fn body_contains(&self, needle: &str) -> bool {
        self.body.contains(needle)
    }

    /// Whether a field name, a field value or the body contains the lower-case needle.
    pub fn text_contains(&self, needle: &str) -> bool {
        self.body.contains(needle)
            || self
                .headers
                .iter()
                .any(|(n, v)| n.contains(needle) || v.contains(needle))
    }

    /// The form the index keeps, cut at `limit` bytes of body (and of headers).
    pub fn into_index(self, limit: usize) -> MessageText {
        let mut headers = String::new();
        for (n, v) in &self.headers {
            // A newline separates name and value, so that no needle the
            // index answers (they hold no control characters) spans two.
            headers.push_str(n);
            headers.push('\n');
            headers.push_str(v);
            headers.push('\n');
        }
        let complete = headers.len() <= limit && self.body.len() <= limit;
        MessageText {
            headers: cut(headers, limit),
            body: cut(self.body, limit),
            complete,
        }
    }
}

/// `s` cut to at most `limit` bytes, at a character boundary.
fn cut(mut s: String, limit: usize) -> String {
    if s.len() > limit {
        let mut end = limit;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        s.truncate(end);
    }
    s
}

/// The lower-case form of a needle the index can answer, if it can.
pub fn indexable_needle(needle: &str) -> Option<String> {
    let needle = needle.to_lowercase();
    (needle.chars().count() >= MIN_INDEXED_NEEDLE_CHARS && !needle.chars().any(char::is_control))
        .then_some(needle)
}

/// Messages indexed in one write: small, so that deliveries waiting for the
/// store's writer meanwhile wait little.
const TEXT_BATCH: usize = 16;
/// The indexer starts once deliveries paused this long ...
const TEXT_QUIET: std::time::Duration = std::time::Duration::from_millis(200);
/// ... or once the first message it was told of waited this long.
const TEXT_MAX_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

impl Core {
    /// Runs the full-text indexer until `stop` resolves. Stored messages
    /// are indexed from the store once deliveries pause for [`TEXT_QUIET`]
    /// (a burst of mail gets the CPU; what it stored is indexed in the gap
    /// after it), and at the latest [`TEXT_MAX_WAIT`] after the first of
    /// them, so that under steady load the index keeps up; every `pass`
    /// the indexer also takes whatever is left (messages stored before the
    /// index existed, or by the command line). Until a message is indexed,
    /// searches read it whole, so their answers do not change.
    pub async fn run_text_indexer(
        &self,
        pass: std::time::Duration,
        stop: impl std::future::Future<Output = ()>,
    ) {
        tokio::pin!(stop);
        let mut backfill = tokio::time::interval(pass);
        loop {
            let (first, pass_due) = tokio::select! {
                _ = &mut stop => break,
                _ = self.text_wakeup.notified() => (std::time::Instant::now(), false),
                _ = backfill.tick() => (std::time::Instant::now(), true),
            };
            loop {
                if pass_due || first.elapsed() >= TEXT_MAX_WAIT {
                    // Steady load: catch up now, however long that takes.
                    self.index_all_pending(false).await;
                    break;
                }
                tokio::select! {
                    _ = &mut stop => return,
                    _ = self.text_wakeup.notified() => continue,
                    _ = tokio::time::sleep(TEXT_QUIET) => {
                        // A pause: index until the next delivery comes.
                        if self.index_all_pending(true).await {
                            break;
                        }
                    }
                }
            }
        }
    }

    /// Indexes stored messages not yet indexed, a batch per write; with
    /// `yielding`, stops when another message is stored meanwhile. Returns
    /// whether none are left.
    async fn index_all_pending(&self, yielding: bool) -> bool {
        let mut total = 0;
        let done = loop {
            match self.index_pending_text(TEXT_BATCH).await {
                Ok(0) => break true,
                Ok(n) => total += n,
                Err(e) => {
                    tracing::warn!("full-text index: {e}; the next pass retries");
                    break true;
                }
            }
            // A message stored meanwhile (its wake-up is waiting): the
            // deliveries go first.
            if yielding
                && tokio::time::timeout(std::time::Duration::ZERO, self.text_wakeup.notified())
                    .await
                    .is_ok()
            {
                break false;
            }
        };
        if total > 0 {
            tracing::debug!("full-text index: added {total} messages");
        }
        done
    }

    /// Looks a needle up in the full-text index of the caller's mailbox.
    /// None when the index cannot answer it (shorter than three characters,
    /// or holding control characters): the caller reads the messages.
    /// Messages the index does not cover are listed for the caller to read.
    pub async fn search_text(
        &self,
        access: &Access,
        id: MailboxId,
        field: TextField,
        needle: &str,
    ) -> CoreResult<Option<TextMatches>> {
        let mailbox = self.owned(access, id).await?;
        let Some(needle) = indexable_needle(needle) else {
            return Ok(None);
        };
        let matches = self
            .store
            .search_text(mailbox.account, id, field, &needle)
            .await?;
        self.record(
            access,
            Event::new(Operation::Search, Some(mailbox.account))
                .container(mailbox.name)
                .objects(matches.matched.iter().map(|(_, m)| m.0).collect()),
        )
        .await?;
        Ok(Some(matches))
    }

    /// Indexes up to `batch` stored messages not indexed yet; returns how
    /// many. Run until it returns 0.
    pub async fn index_pending_text(&self, batch: usize) -> CoreResult<usize> {
        let pending = self.store.unindexed_messages(batch).await?;
        if pending.is_empty() {
            return Ok(0);
        }
        let hashes = pending.iter().map(|(_, h)| *h).collect();
        let raws = self.store.read_blobs(hashes).await?;
        let limit = self.config.max_indexed_text_bytes;
        let entries: Vec<(MessageId, MessageText)> = pending
            .iter()
            .zip(raws)
            .map(|((id, _), raw)| (*id, SearchableText::new(&raw).into_index(limit)))
            .collect();
        let n = entries.len();
        self.store.put_text(entries).await?;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_and_cuts() {
        let raw = b"Subject: =?utf-8?q?Sch=C3=B6ne_Gr=C3=BC=C3=9Fe?=\r\nFrom: Anna <anna@example.org>\r\n\r\nHallo Welt\r\n";
        let t = SearchableText::new(raw);
        assert!(t.header_contains("SUBJECT", "schöne grüße"));
        assert!(t.text_contains("anna@example.org"));
        assert!(t.body_contains("hallo welt"));
        let index = t.clone().into_index(1 << 20);
        assert!(index.complete);
        assert!(index.headers.contains("subject\nschöne grüße\n"));
        let cut = t.into_index(5);
        assert!(!cut.complete);
        assert!(cut.body.len() <= 5 && cut.headers.len() <= 5);
        // A cut never splits a character.
        assert_eq!(super::cut("aöb".into(), 2), "a");
    }

    #[test]
    fn needles_the_index_answers() {
        assert_eq!(indexable_needle("Rat").as_deref(), Some("rat"));
        assert_eq!(indexable_needle("ab"), None);
        assert_eq!(indexable_needle("a\r\nb"), None);
        assert_eq!(indexable_needle("GRÜß").as_deref(), Some("grüß"));
    }
}
