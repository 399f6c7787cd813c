//! Sequence sets (RFC 9051 §9 `sequence-set`, `seq-last-command`).

/// A number in a sequence set: a value or `*` (the largest in use).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SeqNum {
    /// A message sequence number or UID.
    Value(u32),
    /// `*`.
    Largest,
}

/// A sequence set: ranges of sequence numbers or UIDs (`1:4,7,9:*`), or
/// the saved search result `$`, which is the set with no ranges.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SequenceSet(pub Vec<(SeqNum, SeqNum)>);

impl SequenceSet {
    /// `$`, the search result variable (RFC 9051 §6.4.4.1). It is held as
    /// no ranges, so until the session puts the saved result in its place
    /// it names no message: what `$` holds before any SEARCH RETURN (SAVE).
    pub fn saved() -> Self {
        SequenceSet(Vec::new())
    }

    /// Whether this is `$` (no text but `$` parses to an empty set).
    pub fn is_saved(&self) -> bool {
        self.0.is_empty()
    }

    /// Parses `1:4,7,9:*` or `$`; `max_ranges` bounds the number of ranges.
    pub fn parse(s: &str, max_ranges: usize) -> Result<Self, String> {
        // seq-last-command = "$", alone: `1,$` is no sequence set.
        if s == "$" {
            return Ok(Self::saved());
        }
        let mut out = Vec::new();
        for item in s.split(',') {
            if out.len() >= max_ranges {
                return Err(format!(
                    "[LIMIT] Sequence set has more than {max_ranges} ranges"
                ));
            }
            let num = |n: &str| -> Result<SeqNum, String> {
                if n == "*" {
                    return Ok(SeqNum::Largest);
                }
                match n.parse::<u32>() {
                    Ok(v) if v > 0 && n.bytes().all(|b| b.is_ascii_digit()) => Ok(SeqNum::Value(v)),
                    _ => Err(format!("Invalid sequence set item {n:?}")),
                }
            };
            match item.split_once(':') {
                Some((a, b)) => out.push((num(a)?, num(b)?)),
                None => {
                    let n = num(item)?;
                    out.push((n, n));
                }
            }
        }
        Ok(SequenceSet(out))
    }

    /// Whether `n` is in the set, with `*` meaning `largest`.
    pub fn contains(&self, n: u32, largest: u32) -> bool {
        self.0.iter().any(|&(a, b)| {
            let v = |s: SeqNum| match s {
                SeqNum::Value(v) => v,
                SeqNum::Largest => largest,
            };
            let (lo, hi) = (v(a).min(v(b)), v(a).max(v(b)));
            lo <= n && n <= hi
        })
    }

    /// The set's ranges with `*` resolved, as inclusive (low, high) pairs.
    pub fn ranges(&self, largest: u32) -> Vec<(u32, u32)> {
        self.0
            .iter()
            .map(|&(a, b)| {
                let v = |s: SeqNum| match s {
                    SeqNum::Value(v) => v,
                    SeqNum::Largest => largest,
                };
                (v(a).min(v(b)), v(a).max(v(b)))
            })
            .collect()
    }
}

/// Formats numbers as a compact sequence set (`1:3,7`); `nums` sorted.
pub fn compact_set(nums: &[u32]) -> String {
    let mut out = String::new();
    let mut i = 0;
    while i < nums.len() {
        let start = nums[i];
        let mut end = start;
        while i + 1 < nums.len() && nums[i + 1] == end + 1 {
            i += 1;
            end = nums[i];
        }
        if !out.is_empty() {
            out.push(',');
        }
        if start == end {
            out.push_str(&start.to_string());
        } else {
            out.push_str(&format!("{start}:{end}"));
        }
        i += 1;
    }
    out
}
