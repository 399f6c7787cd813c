//! The header tokenizer: where a message's header ends and how it splits
//! into fields (RFC 5322 §2.2, §3.2.2 folding, §4.5.3 obsolete `WSP` before
//! the colon). Byte-exact: each field is a span of the original bytes, so a
//! caller can drop or keep fields without touching the rest.
//!
//! A line ends at LF (CRLF or, leniently, a bare LF); a line that starts with
//! SP or HTAB continues the field before it; the header ends at the first
//! empty line. This is the reading `rampart_imap::mime` serves to clients.

use std::ops::Range;

/// Where a message's header ends: the header's length (through the line
/// break of its last field) and the length of the empty line after it
/// (2 for CRLF, 1 for a bare LF, 0 when the message has no body).
pub fn header_end(message: &[u8]) -> (usize, usize) {
    let mut line_start = 0;
    loop {
        match &message[line_start..] {
            [b'\r', b'\n', ..] => return (line_start, 2),
            [b'\n', ..] => return (line_start, 1),
            rest => match rest.iter().position(|&b| b == b'\n') {
                Some(p) => line_start += p + 1,
                None => return (message.len(), 0),
            },
        }
    }
}

/// One header field: its bytes in the header, folded lines and the final
/// line break included.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Field<'a> {
    /// Offset of the field in the header it was split from.
    pub start: usize,
    /// The field's bytes, from its name through its last line break.
    pub raw: &'a [u8],
}

impl<'a> Field<'a> {
    /// The field's span in the header it was split from.
    pub fn range(&self) -> Range<usize> {
        self.start..self.start + self.raw.len()
    }

    /// The field name: the bytes before the first colon, without the white
    /// space the obsolete syntax allows before it (RFC 5322 §4.5.3
    /// `obs-optional = field-name *WSP ":"`). `None` for a line with no
    /// colon, which is not a field.
    pub fn name(&self) -> Option<&'a [u8]> {
        let colon = self.raw.iter().position(|&b| b == b':')?;
        Some(self.raw[..colon].trim_ascii())
    }

    /// Whether the field's name is `name`, compared without regard to case
    /// (RFC 5322 §1.2.2: field names are case-insensitive).
    pub fn is(&self, name: &str) -> bool {
        self.name()
            .is_some_and(|n| n.eq_ignore_ascii_case(name.as_bytes()))
    }

    /// The raw value after the colon, folding and line break included.
    pub fn value(&self) -> Option<&'a [u8]> {
        let colon = self.raw.iter().position(|&b| b == b':')?;
        Some(&self.raw[colon + 1..])
    }
}

/// Splits a header (as `header_end` delimits it) into its fields, in order.
/// The fields' bytes concatenate back to `header` exactly. A continuation
/// line with no field before it counts as a field of its own.
pub fn fields(header: &[u8]) -> impl Iterator<Item = Field<'_>> {
    let mut pos = 0;
    std::iter::from_fn(move || {
        if pos >= header.len() {
            return None;
        }
        let start = pos;
        loop {
            pos = header[pos..]
                .iter()
                .position(|&b| b == b'\n')
                .map_or(header.len(), |p| pos + p + 1);
            // RFC 5322 §2.2.3: a line starting with WSP is folded into the field.
            if !matches!(header.get(pos), Some(b' ' | b'\t')) {
                break;
            }
        }
        Some(Field {
            start,
            raw: &header[start..pos],
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(header: &[u8]) -> Vec<String> {
        fields(header)
            .map(|f| String::from_utf8_lossy(f.name().unwrap_or(b"-")).into_owned())
            .collect()
    }

    #[test]
    fn header_ends_at_the_first_empty_line() {
        assert_eq!(header_end(b"A: b\r\n\r\nbody\r\n\r\n"), (6, 2));
        assert_eq!(header_end(b"A: b\n\nbody"), (5, 1));
        assert_eq!(header_end(b"\r\nbody"), (0, 2));
        assert_eq!(header_end(b"A: b\r\nC: d"), (10, 0));
        // A line of white space is not empty: it folds into the field above.
        assert_eq!(header_end(b"A: b\r\n \r\nC: d\r\n\r\n"), (15, 2));
    }

    #[test]
    fn fields_keep_their_folded_lines() {
        let header = b"Subject: a\r\n b\r\n\tc\r\nTo: x\r\nno colon\r\nX-Y : z";
        let split: Vec<_> = fields(header).map(|f| f.raw).collect();
        assert_eq!(
            split,
            [
                &b"Subject: a\r\n b\r\n\tc\r\n"[..],
                b"To: x\r\n",
                b"no colon\r\n",
                b"X-Y : z"
            ]
        );
        assert_eq!(names(header), ["Subject", "To", "-", "X-Y"]);
        assert_eq!(split.concat(), header);
    }

    #[test]
    fn names_compare_without_case_or_space_before_the_colon() {
        let header = b"authentication-results:h\r\nAUTHENTICATION-RESULTS \t: h\r\n";
        assert!(fields(header).all(|f| f.is("Authentication-Results")));
        let field = fields(b"X:\r\n v\r\n").next().unwrap();
        assert_eq!(field.value(), Some(&b"\r\n v\r\n"[..]));
    }

    #[test]
    fn a_leading_continuation_is_a_field_of_its_own() {
        let split: Vec<_> = fields(b" x\r\nA: b\n").map(|f| f.range()).collect();
        assert_eq!(split, [0..4, 4..9]);
    }
}
