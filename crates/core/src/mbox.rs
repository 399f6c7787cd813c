//! Reading messages from an mbox file (mboxrd/mboxo), for `rampart mail import`.

use std::io::BufRead;

/// Reads an mbox stream message by message, without holding it all in memory.
pub struct MboxReader<R> {
    input: R,
    pending_from: bool,
    max_message_bytes: usize,
    done: bool,
}

/// Why reading a message failed.
#[derive(Debug, thiserror::Error)]
pub enum MboxError {
    /// The stream does not start with a `From ` line.
    #[error("not an mbox file: the first line must start with \"From \"")]
    NotMbox,
    /// A message is larger than the limit.
    #[error("message {index} is larger than limits.max_message_bytes ({limit} bytes)")]
    TooLarge { index: usize, limit: usize },
    /// Reading failed.
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

impl<R: BufRead> MboxReader<R> {
    /// Wraps an input stream.
    pub fn new(input: R, max_message_bytes: usize) -> Self {
        MboxReader {
            input,
            pending_from: false,
            max_message_bytes,
            done: false,
        }
    }

    /// The next message with CRLF line endings, `>From ` unquoted; `None` at the end.
    pub fn next_message(&mut self, index: usize) -> Result<Option<Vec<u8>>, MboxError> {
        if self.done {
            return Ok(None);
        }
        let mut line = Vec::new();
        if !self.pending_from {
            // Skip leading blank lines, then expect the first separator.
            loop {
                line.clear();
                if self.input.read_until(b'\n', &mut line)? == 0 {
                    self.done = true;
                    return Ok(None);
                }
                if line.iter().all(|b| b.is_ascii_whitespace()) {
                    continue;
                }
                if !line.starts_with(b"From ") {
                    return Err(MboxError::NotMbox);
                }
                break;
            }
        }
        self.pending_from = false;
        let mut message = Vec::new();
        let mut blank_before = false;
        loop {
            line.clear();
            if self.input.read_until(b'\n', &mut line)? == 0 {
                self.done = true;
                break;
            }
            if blank_before && line.starts_with(b"From ") {
                self.pending_from = true;
                break;
            }
            let content = line
                .strip_suffix(b"\n")
                .map(|l| l.strip_suffix(b"\r").unwrap_or(l))
                .unwrap_or(&line);
            blank_before = content.is_empty();
            let unquoted = match content.iter().position(|&b| b != b'>') {
                Some(n) if n > 0 && content[n..].starts_with(b"From ") => &content[1..],
                _ => content,
            };
            message.extend_from_slice(unquoted);
            message.extend_from_slice(b"\r\n");
            if message.len() > self.max_message_bytes {
                return Err(MboxError::TooLarge {
                    index,
                    limit: self.max_message_bytes,
                });
            }
        }
        // The blank line before the next separator belongs to the mbox format.
        if self.pending_from && message.ends_with(b"\r\n\r\n") {
            message.truncate(message.len() - 2);
        }
        Ok(Some(message))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all(input: &str) -> Vec<String> {
        let mut r = MboxReader::new(input.as_bytes(), 1 << 20);
        let mut out = Vec::new();
        while let Some(m) = r.next_message(out.len()).unwrap() {
            out.push(String::from_utf8(m).unwrap());
        }
        out
    }

    #[test]
    fn splits_and_unquotes() {
        let mbox = "From a@b Sat Jan  1 00:00:00 2000\nSubject: one\n\nbody\n>From the start\n>>From deeper\n\nFrom c@d Sat Jan  1 00:00:00 2000\nSubject: two\n\nx\n";
        let msgs = all(mbox);
        assert_eq!(msgs.len(), 2);
        assert_eq!(
            msgs[0],
            "Subject: one\r\n\r\nbody\r\nFrom the start\r\n>From deeper\r\n"
        );
        assert_eq!(msgs[1], "Subject: two\r\n\r\nx\r\n");
    }

    #[test]
    fn refuses_non_mbox_and_oversize() {
        let mut r = MboxReader::new(&b"Subject: x\n\nbody\n"[..], 1 << 20);
        assert!(matches!(r.next_message(0), Err(MboxError::NotMbox)));
        let big = format!("From x\nSubject: y\n\n{}\n", "a".repeat(5000));
        let mut r = MboxReader::new(big.as_bytes(), 1000);
        assert!(matches!(r.next_message(0), Err(MboxError::TooLarge { .. })));
        assert!(all("").is_empty());
    }
}
