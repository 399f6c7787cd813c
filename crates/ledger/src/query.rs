//! Selecting ledger entries: a [`Filter`] and a streaming iterator over the
//! entries of a ledger directory that match it ([`entries`]). The command
//! line's reports call this, and so will the admin and web surfaces; the
//! aggregation of what is selected is in [`crate::report`].
//!
//! The iterator reads one segment file at a time, line by line through a
//! buffer, and holds one entry at a time: a ledger of any size is queried
//! in the memory of its longest line.

use std::collections::VecDeque;
use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::segment::list_segments;
use crate::{LedgerError, Record, Result};

/// Which entries a question is about. Every field left `None` (or empty)
/// selects everything; the fields that are set must all match.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Filter {
    /// From this time on, milliseconds since the epoch (inclusive).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub since: Option<i64>,
    /// Before this time, milliseconds since the epoch (exclusive).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub until: Option<i64>,
    /// Who authenticated (an address, `operator:NAME`, `service:NAME`),
    /// compared without regard to ASCII case.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub principal: Option<String>,
    /// Whose data: the owning account's id.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub owner: Option<i64>,
    /// Only these operations (`read-body`, `search`, ...); empty: all.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub operations: Vec<String>,
    /// The container (mailbox name), exactly.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub container: Option<String>,
    /// Entries that name this object (message id).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub object: Option<i64>,
    /// The session id.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub session: Option<String>,
    /// The client's address, as recorded (`203.0.113.7`, `2001:db8::1`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client: Option<String>,
    /// Entries whose client software contains this text, without regard to
    /// case (`thunderbird` matches `Mozilla Thunderbird 128.5.0`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_software: Option<String>,
}

impl Filter {
    /// Whether `r` is selected.
    pub fn matches(&self, r: &Record) -> bool {
        self.since.is_none_or(|t| r.at >= t)
            && self.until.is_none_or(|t| r.at < t)
            && self
                .principal
                .as_ref()
                .is_none_or(|p| r.principal.eq_ignore_ascii_case(p))
            && self.owner.is_none_or(|o| r.owner == Some(o))
            && (self.operations.is_empty() || self.operations.contains(&r.operation))
            && self
                .container
                .as_ref()
                .is_none_or(|c| r.container.as_deref() == Some(c.as_str()))
            && self
                .object
                .is_none_or(|id| r.objects.iter().any(|&(a, b)| (a..=b).contains(&id)))
            && self.session.as_ref().is_none_or(|s| &r.session == s)
            && self
                .client
                .as_ref()
                .is_none_or(|c| r.client.as_deref() == Some(c.as_str()))
            && self.client_software.as_ref().is_none_or(|want| {
                r.client_software
                    .as_ref()
                    .is_some_and(|have| have.to_lowercase().contains(&want.to_lowercase()))
            })
    }
}

/// The entries of a ledger directory that a filter selects, oldest first,
/// read as they are needed. Lines that do not parse as entries are skipped
/// (`verify` reports them); an entry cut short by a crash ends its segment.
pub struct Entries {
    filter: Filter,
    segments: VecDeque<PathBuf>,
    current: Option<(PathBuf, BufReader<File>)>,
    line: Vec<u8>,
}

/// Iterates over the entries of the ledger in `dir` that `filter` selects.
pub fn entries(dir: &Path, filter: Filter) -> Result<Entries> {
    Ok(Entries {
        filter,
        segments: list_segments(dir)?.into_iter().map(|(_, p)| p).collect(),
        current: None,
        line: Vec::new(),
    })
}

impl Entries {
    /// The next entry line of the current segment (without its newline),
    /// opening the next segment when one ends. `Ok(false)` at the end.
    fn next_line(&mut self) -> Result<bool> {
        loop {
            if self.current.is_none() {
                let Some(path) = self.segments.pop_front() else {
                    return Ok(false);
                };
                let file = File::open(&path).map_err(|e| LedgerError::io(&path, e))?;
                let mut reader = BufReader::new(file);
                // The first line is the segment's header.
                self.line.clear();
                reader
                    .read_until(b'\n', &mut self.line)
                    .map_err(|e| LedgerError::io(&path, e))?;
                self.current = Some((path, reader));
            }
            let Some((path, reader)) = &mut self.current else {
                continue;
            };
            self.line.clear();
            let n = reader
                .read_until(b'\n', &mut self.line)
                .map_err(|e| LedgerError::io(path, e))?;
            // The end of the file, a line a crash cut short (no newline), or
            // the zeroed space the writer claimed ahead: the segment is done.
            if n == 0 || self.line.last() != Some(&b'\n') || self.line[0] == 0 {
                self.current = None;
                continue;
            }
            self.line.pop();
            return Ok(true);
        }
    }
}

impl Iterator for Entries {
    type Item = Result<Record>;

    fn next(&mut self) -> Option<Result<Record>> {
        loop {
            match self.next_line() {
                Ok(true) => {}
                Ok(false) => return None,
                Err(e) => return Some(Err(e)),
            }
            let line = String::from_utf8_lossy(&self.line);
            let json = line.rsplit_once('\t').map_or(&*line, |(json, _)| json);
            if let Ok(record) = serde_json::from_str::<Record>(json)
                && self.filter.matches(&record)
            {
                return Some(Ok(record));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ranges;

    #[test]
    fn every_field_selects() {
        let r = Record {
            at: 1_000,
            session: "s1".into(),
            principal: "Alice@example.org".into(),
            client: Some("203.0.113.7".into()),
            client_software: Some("Mozilla Thunderbird 128.5.0".into()),
            operation: "read-body".into(),
            owner: Some(7),
            container: Some("INBOX".into()),
            objects: ranges(&[3, 4, 5, 9]),
            ..Record::default()
        };
        let yes = |f: Filter| assert!(f.matches(&r), "{f:?}");
        let no = |f: Filter| assert!(!f.matches(&r), "{f:?}");
        yes(Filter::default());
        yes(Filter {
            since: Some(1_000),
            until: Some(1_001),
            ..Filter::default()
        });
        no(Filter {
            until: Some(1_000),
            ..Filter::default()
        });
        no(Filter {
            since: Some(1_001),
            ..Filter::default()
        });
        yes(Filter {
            principal: Some("alice@EXAMPLE.org".into()),
            ..Filter::default()
        });
        no(Filter {
            owner: Some(8),
            ..Filter::default()
        });
        yes(Filter {
            operations: vec!["search".into(), "read-body".into()],
            ..Filter::default()
        });
        no(Filter {
            operations: vec!["search".into()],
            ..Filter::default()
        });
        yes(Filter {
            object: Some(4),
            ..Filter::default()
        });
        no(Filter {
            object: Some(6),
            ..Filter::default()
        });
        no(Filter {
            container: Some("inbox".into()),
            ..Filter::default()
        });
        yes(Filter {
            client_software: Some("thunderbird".into()),
            ..Filter::default()
        });
        no(Filter {
            client_software: Some("outlook".into()),
            ..Filter::default()
        });
        // A session that never named its software is not "any software".
        let anonymous = Record {
            client_software: None,
            ..r.clone()
        };
        assert!(
            !Filter {
                client_software: Some("".into()),
                ..Filter::default()
            }
            .matches(&anonymous)
        );
        no(Filter {
            session: Some("s2".into()),
            ..Filter::default()
        });
        no(Filter {
            client: Some("203.0.113.8".into()),
            ..Filter::default()
        });
    }
}
