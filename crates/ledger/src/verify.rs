//! Proving the ledger intact: every entry's hash, the order of sequence
//! numbers, the links between segments, and the signed checkpoints.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::{Path, PathBuf};

use crate::segment::{chain, list_segments, read_segment};
use crate::{Checkpoint, Record, Result, checkpoints, public_key_of};

/// Something that shows the ledger was changed or damaged.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Problem {
    /// An entry's content does not match its stored hash (edited in place).
    Edited {
        seq: u64,
        file: PathBuf,
        line: usize,
    },
    /// A line that is not a readable entry.
    Unreadable {
        file: PathBuf,
        line: usize,
        why: String,
    },
    /// Sequence numbers jump: entries deleted, inserted or reordered.
    OutOfSequence {
        expected: u64,
        found: u64,
        file: PathBuf,
        line: usize,
    },
    /// A segment does not continue the chain of the one before it.
    BrokenLink { file: PathBuf, first_seq: u64 },
    /// The oldest segment does not start at entry 1 and no retention cut explains it.
    MissingStart { first_seq: u64 },
    /// A sealed segment ends in a half-written line.
    TornSegment { file: PathBuf },
    /// A checkpoint's signature is not valid.
    BadSignature { seq: u64 },
    /// A checkpoint was signed by another key than this ledger's.
    ForeignKey { seq: u64 },
    /// The ledger ends before a checkpoint: entries were cut off its end.
    Truncated { checkpoint_seq: u64, last_seq: u64 },
    /// The chain up to a checkpoint is not the one that was signed.
    Rewritten {
        checkpoint_seq: u64,
        last_good_checkpoint: Option<u64>,
    },
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Problem::Edited { seq, file, line } => write!(
                f,
                "entry {seq} ({}, line {line}) was changed: its content does not match its hash",
                file.display()
            ),
            Problem::Unreadable { file, line, why } => {
                write!(
                    f,
                    "{} line {line} is not a ledger entry: {why}",
                    file.display()
                )
            }
            Problem::OutOfSequence {
                expected,
                found,
                file,
                line,
            } => write!(
                f,
                "entry {expected} expected but entry {found} found ({}, line {line}): entries were {}",
                file.display(),
                if found > expected {
                    "deleted"
                } else {
                    "inserted or reordered"
                }
            ),
            Problem::BrokenLink { file, first_seq } => write!(
                f,
                "{} (from entry {first_seq}) does not continue the chain of the segment before it",
                file.display()
            ),
            Problem::MissingStart { first_seq } => write!(
                f,
                "the ledger starts at entry {first_seq} and no retention cut removed the entries before it"
            ),
            Problem::TornSegment { file } => {
                write!(
                    f,
                    "{} is sealed but ends in a half-written line",
                    file.display()
                )
            }
            Problem::BadSignature { seq } => {
                write!(f, "the checkpoint at entry {seq} has an invalid signature")
            }
            Problem::ForeignKey { seq } => write!(
                f,
                "the checkpoint at entry {seq} was signed by another key than this ledger's"
            ),
            Problem::Truncated {
                checkpoint_seq,
                last_seq,
            } => write!(
                f,
                "the ledger ends at entry {last_seq} but a checkpoint covers entry {checkpoint_seq}: entries were removed from its end"
            ),
            Problem::Rewritten {
                checkpoint_seq,
                last_good_checkpoint,
            } => match last_good_checkpoint {
                Some(good) => write!(
                    f,
                    "the chain up to entry {checkpoint_seq} is not the one signed at that checkpoint: entries {} to {checkpoint_seq} were rewritten",
                    good + 1
                ),
                None => write!(
                    f,
                    "the chain up to entry {checkpoint_seq} is not the one signed at that checkpoint: entries up to {checkpoint_seq} were rewritten"
                ),
            },
        }
    }
}

/// What `verify` found.
#[derive(Clone, Debug, Default)]
pub struct VerifyReport {
    /// Segment files read.
    pub segments: usize,
    /// Entries checked.
    pub entries: u64,
    /// The oldest retained entry.
    pub first_seq: Option<u64>,
    /// The newest entry.
    pub last_seq: Option<u64>,
    /// Checkpoints whose head matched the chain.
    pub checkpoints_matched: usize,
    /// Evidence of change or damage; empty when the ledger is intact.
    pub problems: Vec<Problem>,
    /// Facts a reader of the ledger must know: retention cuts, a half
    /// written last line, the clock going back, checkpoints older than
    /// the retained entries.
    pub notes: Vec<String>,
}

impl VerifyReport {
    /// Whether nothing was found wrong.
    pub fn intact(&self) -> bool {
        self.problems.is_empty()
    }
}

/// Verifies the ledger in `dir` against its own checkpoints and `extra`
/// ones (exported earlier and kept elsewhere).
pub fn verify(dir: &Path, extra: &[Checkpoint]) -> Result<VerifyReport> {
    let mut report = VerifyReport::default();
    let mut all: Vec<Checkpoint> = checkpoints(dir).unwrap_or_default();
    for c in extra {
        if !all.contains(c) {
            all.push(c.clone());
        }
    }
    let wanted: BTreeSet<u64> = all.iter().map(|c| c.seq).collect();
    let mut hashes_at: BTreeMap<u64, [u8; 32]> = BTreeMap::new();
    let cuts = std::fs::read_to_string(dir.join("cuts.log")).unwrap_or_default();
    let segments = list_segments(dir)?;
    report.segments = segments.len();

    let mut expected: Option<u64> = None;
    let mut head: Option<[u8; 32]> = None;
    let mut last_at: Option<i64> = None;
    let count = segments.len();
    for (index, (first_seq, path)) in segments.into_iter().enumerate() {
        let segment = match read_segment(&path) {
            Ok(s) => s,
            Err(e) => {
                report.problems.push(Problem::Unreadable {
                    file: path.clone(),
                    line: 1,
                    why: e.to_string(),
                });
                expected = None;
                head = None;
                continue;
            }
        };
        let prev = decode_hash(&segment.header.prev);
        if segment.header.first_seq != first_seq {
            report.problems.push(Problem::BrokenLink {
                file: path.clone(),
                first_seq,
            });
        }
        match expected {
            None if index == 0 => {
                report.first_seq = Some(first_seq);
                if first_seq > 1 {
                    if cuts.contains(&format!("\"last_seq\":{}", first_seq - 1)) {
                        report.notes.push(format!(
                            "entries before {first_seq} were removed by retention (see cuts.log)"
                        ));
                    } else {
                        report.problems.push(Problem::MissingStart { first_seq });
                    }
                }
            }
            None => {}
            Some(want) => {
                if first_seq != want {
                    report.problems.push(Problem::OutOfSequence {
                        expected: want,
                        found: first_seq,
                        file: path.clone(),
                        line: 1,
                    });
                } else if head.is_some() && prev != head {
                    report.problems.push(Problem::BrokenLink {
                        file: path.clone(),
                        first_seq,
                    });
                }
            }
        }
        let mut prev = prev.unwrap_or([0; 32]);
        let mut want = first_seq;
        for entry in &segment.entries {
            report.entries += 1;
            let record: Record = match serde_json::from_str(&entry.json) {
                Ok(r) => r,
                Err(e) => {
                    report.problems.push(Problem::Unreadable {
                        file: path.clone(),
                        line: entry.line,
                        why: e.to_string(),
                    });
                    want += 1;
                    if let Some(h) = decode_hash(&entry.hash) {
                        prev = h;
                    }
                    continue;
                }
            };
            let computed = chain(&prev, &entry.json);
            if record.seq != want {
                report.problems.push(Problem::OutOfSequence {
                    expected: want,
                    found: record.seq,
                    file: path.clone(),
                    line: entry.line,
                });
            } else if hex::encode(computed) != entry.hash {
                report.problems.push(Problem::Edited {
                    seq: record.seq,
                    file: path.clone(),
                    line: entry.line,
                });
            }
            if wanted.contains(&record.seq) {
                hashes_at.insert(record.seq, computed);
            }
            if let Some(before) = last_at
                && record.at + 1000 < before
            {
                report.notes.push(format!(
                    "the node's clock went back by {} s at entry {}",
                    (before - record.at) / 1000,
                    record.seq
                ));
            }
            last_at = Some(record.at);
            // Go on from what is stored, so that one change is reported once.
            prev = decode_hash(&entry.hash).unwrap_or(computed);
            want = record.seq + 1;
        }
        if segment.torn_tail > 0 {
            if index + 1 == count {
                report.notes.push(format!(
                    "{} ends in {} bytes of an entry being written (or cut short by a crash); not counted",
                    path.display(),
                    segment.torn_tail
                ));
            } else {
                report
                    .problems
                    .push(Problem::TornSegment { file: path.clone() });
            }
        }
        expected = Some(want);
        head = Some(prev);
    }
    report.last_seq = expected.map(|n| n - 1).filter(|&n| n > 0);
    let last_seq = report.last_seq.unwrap_or(0);
    let first_seq = report.first_seq.unwrap_or(1);

    let own_key = public_key_of(dir)?;
    all.sort_by_key(|c| c.seq);
    let mut last_good = None;
    for c in &all {
        if !c.signature_valid() {
            report.problems.push(Problem::BadSignature { seq: c.seq });
            continue;
        }
        if own_key.is_some_and(|k| k != c.key) {
            report.problems.push(Problem::ForeignKey { seq: c.seq });
            continue;
        }
        if c.seq > last_seq {
            report.problems.push(Problem::Truncated {
                checkpoint_seq: c.seq,
                last_seq,
            });
        } else if c.seq < first_seq {
            report.notes.push(format!(
                "the checkpoint at entry {} covers entries retention removed",
                c.seq
            ));
        } else if hashes_at.get(&c.seq) != Some(&c.head) {
            report.problems.push(Problem::Rewritten {
                checkpoint_seq: c.seq,
                last_good_checkpoint: last_good,
            });
        } else {
            report.checkpoints_matched += 1;
            last_good = Some(c.seq);
        }
    }
    Ok(report)
}

fn decode_hash(hex_text: &str) -> Option<[u8; 32]> {
    hex::decode(hex_text).ok()?.try_into().ok()
}
