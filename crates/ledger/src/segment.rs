//! The files of a ledger directory: segments of chained entries, the
//! checkpoints, the notes of retention cuts, and the key.
//!
//! A segment starts with a header line (JSON: first sequence number and
//! the chain hash before it); every further line is one entry, its JSON and
//! its chain hash separated by a tab (compact JSON never holds a raw tab).
//! The chain hash of entry n is BLAKE3(hash of entry n-1 || JSON of entry n).
//!
//! The segment being written may end in zero bytes: space the writer
//! claimed ahead so that syncing an entry does not also have to write the
//! file's new size. Compact JSON never holds a raw NUL, so they cannot be
//! mistaken for entries; a sealed segment has none.

use std::fs;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::{LedgerError, Result};

/// The chain hash before the first entry.
pub const GENESIS: [u8; 32] = [0; 32];

/// The chain hash of an entry's JSON after `prev`.
pub fn chain(prev: &[u8; 32], json: &str) -> [u8; 32] {
    let mut h = blake3::Hasher::new();
    h.update(prev);
    h.update(json.as_bytes());
    *h.finalize().as_bytes()
}

/// The first line of a segment.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct SegmentHeader {
    /// Sequence number of the segment's first entry.
    pub first_seq: u64,
    /// Chain hash before that entry (hex).
    pub prev: String,
    /// When the segment was started, milliseconds since the epoch.
    pub created: i64,
}

/// One entry line as stored.
#[derive(Clone, Debug)]
pub struct RawEntry {
    /// The entry's JSON, exactly as hashed.
    pub json: String,
    /// The stored chain hash (hex), as written.
    pub hash: String,
    /// 1-based line number in the segment file.
    pub line: usize,
}

/// A segment read from disk.
#[derive(Debug)]
pub struct Segment {
    /// Its file.
    pub path: PathBuf,
    /// Its header.
    pub header: SegmentHeader,
    /// Its complete entry lines.
    pub entries: Vec<RawEntry>,
    /// Bytes after the last newline, not counting the zero padding (a
    /// write cut short by a crash).
    pub torn_tail: usize,
    /// Byte length up to the end of the last complete line.
    pub complete_len: u64,
    /// The file's whole length, zero padding included.
    pub file_len: u64,
}

pub(crate) fn segment_path(dir: &Path, first_seq: u64) -> PathBuf {
    dir.join(format!("segment-{first_seq:020}.log"))
}

/// The segment files of a ledger directory, by first sequence number.
pub fn list_segments(dir: &Path) -> Result<Vec<(u64, PathBuf)>> {
    let mut out = Vec::new();
    let read = match fs::read_dir(dir) {
        Ok(r) => r,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
        Err(e) => return Err(LedgerError::io(dir, e)),
    };
    for entry in read {
        let entry = entry.map_err(|e| LedgerError::io(dir, e))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if let Some(seq) = name
            .strip_prefix("segment-")
            .and_then(|n| n.strip_suffix(".log"))
            .and_then(|n| n.parse::<u64>().ok())
        {
            out.push((seq, entry.path()));
        }
    }
    out.sort();
    Ok(out)
}

/// Reads a whole segment.
pub fn read_segment(path: &Path) -> Result<Segment> {
    let bytes = fs::read(path).map_err(|e| LedgerError::io(path, e))?;
    let end = bytes.iter().rposition(|&b| b != 0).map_or(0, |i| i + 1);
    let complete = bytes[..end]
        .iter()
        .rposition(|&b| b == b'\n')
        .map_or(0, |i| i + 1);
    let torn_tail = end - complete;
    let text = String::from_utf8_lossy(&bytes[..complete]);
    let mut lines = text.lines().enumerate();
    let header_line = lines
        .next()
        .ok_or_else(|| LedgerError::Format(format!("{}: no header line", path.display())))?
        .1;
    let header: SegmentHeader = serde_json::from_str(header_line).map_err(|e| {
        LedgerError::Format(format!("{}: header line is damaged: {e}", path.display()))
    })?;
    let mut entries = Vec::new();
    for (i, line) in lines {
        let (json, hash) = line.rsplit_once('\t').unwrap_or((line, ""));
        entries.push(RawEntry {
            json: json.to_owned(),
            hash: hash.to_owned(),
            line: i + 1,
        });
    }
    Ok(Segment {
        path: path.to_owned(),
        header,
        entries,
        torn_tail,
        complete_len: complete as u64,
        file_len: bytes.len() as u64,
    })
}
