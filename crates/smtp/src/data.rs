//! The DATA reader: a sans-I/O parser of the message body after `DATA`.
//!
//! It ends the message only at a strict `CRLF . CRLF` and refuses a bare CR
//! or LF anywhere in the body: a server that treats `LF . LF` as the end while
//! the next hop does not is how SMTP smuggling works. On any error it keeps
//! reading (and discarding) up to the strict terminator, so the session stays
//! in step with the client and can answer with one clear reply.

/// Why a message body was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DataError {
    /// A CR not followed by LF, or an LF not preceded by CR.
    BareLineEnding,
    /// The body exceeds the size limit.
    TooLarge,
    /// A line exceeds the line-length limit.
    LineTooLong,
}

/// What feeding bytes produced.
#[derive(Debug, PartialEq, Eq)]
pub enum DataProgress {
    /// More input is needed.
    NeedMore,
    /// The terminator was seen; `consumed` bytes of the last input belong to the body.
    Done {
        /// The outcome: the unstuffed message, or why it was refused.
        result: Result<Vec<u8>, DataError>,
        /// How many bytes of the last `feed` call were used (the rest is the next command).
        consumed: usize,
    },
}

/// Incremental DATA body parser.
#[derive(Debug)]
pub struct DataReader {
    message: Vec<u8>,
    line: Vec<u8>,
    max_size: usize,
    max_line: usize,
    error: Option<DataError>,
    /// The previous byte was a CR that has not yet been matched with LF.
    pending_cr: bool,
}

impl DataReader {
    /// A reader that refuses bodies over `max_size` bytes or lines over `max_line` bytes.
    pub fn new(max_size: usize, max_line: usize) -> Self {
        DataReader {
            message: Vec::new(),
            line: Vec::new(),
            max_size,
            max_line,
            error: None,
            pending_cr: false,
        }
    }

    fn fail(&mut self, e: DataError) {
        if self.error.is_none() {
            self.error = Some(e);
        }
        self.message = Vec::new();
    }

    /// Feeds bytes; returns `Done` once the terminator arrives.
    pub fn feed(&mut self, input: &[u8]) -> DataProgress {
        for (i, &b) in input.iter().enumerate() {
            if self.pending_cr {
                self.pending_cr = false;
                if b != b'\n' {
                    self.fail(DataError::BareLineEnding);
                    // The CR ends nothing: it stays in the line (so ".\r\r\n"
                    // is no terminator), and this byte is read as usual.
                    self.push_line_byte(b'\r');
                } else {
                    if self.end_line() {
                        let result = match self.error {
                            Some(e) => Err(e),
                            None => Ok(std::mem::take(&mut self.message)),
                        };
                        return DataProgress::Done {
                            result,
                            consumed: i + 1,
                        };
                    }
                    continue;
                }
            }
            match b {
                b'\r' => self.pending_cr = true,
                b'\n' => {
                    self.fail(DataError::BareLineEnding);
                    // Not a line end: the strict terminator is the only way out.
                    self.push_line_byte(b);
                }
                _ => self.push_line_byte(b),
            }
        }
        DataProgress::NeedMore
    }

    fn push_line_byte(&mut self, b: u8) {
        if self.line.len() >= self.max_line {
            self.fail(DataError::LineTooLong);
            // Keep only enough of the line to recognise a lone ".".
            return;
        }
        self.line.push(b);
    }

    /// Handles a complete CRLF-terminated line; returns true at the terminator.
    fn end_line(&mut self) -> bool {
        let line = std::mem::take(&mut self.line);
        if line == b"." {
            return true;
        }
        if self.error.is_some() {
            return false;
        }
        let content = line.strip_prefix(b".").unwrap_or(&line);
        if self.message.len() + content.len() + 2 > self.max_size {
            self.fail(DataError::TooLarge);
            return false;
        }
        self.message.extend_from_slice(content);
        self.message.extend_from_slice(b"\r\n");
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read_all(input: &[u8]) -> (Result<Vec<u8>, DataError>, usize) {
        let mut r = DataReader::new(1000, 100);
        match r.feed(input) {
            DataProgress::Done { result, consumed } => (result, consumed),
            DataProgress::NeedMore => panic!("no terminator found in {input:?}"),
        }
    }

    #[test]
    fn unstuffs_and_stops_at_terminator() {
        let (r, used) = read_all(b"Subject: x\r\n\r\n..dot\r\nbody\r\n.\r\nQUIT\r\n");
        assert_eq!(r.unwrap(), b"Subject: x\r\n\r\n.dot\r\nbody\r\n");
        assert_eq!(used, 30);
    }

    #[test]
    fn works_byte_by_byte() {
        let input = b"a\r\n..b\r\n.\r\n";
        let mut r = DataReader::new(1000, 100);
        for (i, b) in input.iter().enumerate() {
            match r.feed(std::slice::from_ref(b)) {
                DataProgress::NeedMore => assert!(i < input.len() - 1),
                DataProgress::Done { result, consumed } => {
                    assert_eq!(i, input.len() - 1);
                    assert_eq!(consumed, 1);
                    assert_eq!(result.unwrap(), b"a\r\n.b\r\n");
                }
            }
        }
    }

    #[test]
    fn smuggling_attempts_are_refused_and_resynchronised() {
        // LF.LF and CR.CR must neither end the message nor be accepted.
        for attack in [
            &b"a\n.\nMAIL FROM:<x>\r\n.\r\n"[..],
            b"a\r.\rMAIL FROM:<x>\r\n.\r\n",
            b"a\r\n.\nMAIL FROM:<x>\r\n.\r\n",
            b"a\n.\r\nMAIL FROM:<x>\r\n.\r\n",
            // Found by the fuzzer: a bare CR before CRLF must not make "." a line.
            b"a\r\n.\r\r\nMAIL FROM:<x>\r\n.\r\n",
        ] {
            let (r, used) = read_all(attack);
            assert_eq!(r, Err(DataError::BareLineEnding), "{attack:?}");
            assert_eq!(used, attack.len(), "{attack:?}");
        }
    }

    #[test]
    fn limits() {
        let big = [b"x".repeat(90).as_slice(), b"\r\n"].concat().repeat(20);
        let (r, _) = read_all(&[big.as_slice(), b".\r\n"].concat());
        assert_eq!(r, Err(DataError::TooLarge));
        let long = [b"y".repeat(500).as_slice(), b"\r\n.\r\n"].concat();
        let (r, used) = read_all(&long);
        assert_eq!(r, Err(DataError::LineTooLong));
        assert_eq!(used, long.len());
    }
}
