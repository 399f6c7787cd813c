//! The small messages `imap-stress` appends: each one's octets follow from
//! its id alone, so that any client can tell whether a fetched copy is
//! exactly what was appended.

/// The header field that names a stress message's id.
const ID_FIELD: &str = "X-Stress-Id: ";

/// The message with the given id (`seed-client-counter`), 0.3-3 KB, CRLF lines.
pub fn stress_message(id: &str) -> Vec<u8> {
    let mut h = 0xcbf2_9ce4_8422_2325u64;
    for b in id.bytes() {
        h = (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3);
    }
    let mut m = format!(
        "From: Stress <stress@stress.example>\r\nTo: <rcpt@stress.example>\r\n\
         Subject: stress message {id}\r\nMessage-ID: <stress-{id}@stress.example>\r\n\
         {ID_FIELD}{id}\r\nDate: Fri, 27 Nov 2026 10:00:00 +0000\r\nMIME-Version: 1.0\r\n\
         Content-Type: text/plain; charset=utf-8\r\n\r\n"
    );
    for k in 0..(3 + h % 40) {
        m.push_str(&format!(
            "Line {k} of {id}: the quick brown fox jumps over the lazy dog.\r\n"
        ));
    }
    m.into_bytes()
}

/// The id a fetched header or message names, if it is a stress message.
pub fn stress_id(octets: &[u8]) -> Option<String> {
    let end = find(octets, b"\r\n\r\n").unwrap_or(octets.len());
    let header = &octets[..end];
    let at = find(header, ID_FIELD.as_bytes())? + ID_FIELD.len();
    let rest = &header[at..];
    let stop = find(rest, b"\r\n").unwrap_or(rest.len());
    Some(String::from_utf8_lossy(&rest[..stop]).into_owned())
}

/// The header part (through the blank line) of a message, as `BODY[HEADER]` returns it (RFC 9051 §6.4.5).
pub fn header_of(message: &[u8]) -> &[u8] {
    match find(message, b"\r\n\r\n") {
        Some(at) => &message[..at + 4],
        None => message,
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn id_round_trips() {
        let m = stress_message("7-3-12");
        assert_eq!(stress_id(&m).as_deref(), Some("7-3-12"));
        assert_eq!(stress_id(header_of(&m)).as_deref(), Some("7-3-12"));
        assert!(header_of(&m).ends_with(b"utf-8\r\n\r\n"));
        assert_eq!(stress_id(b"Subject: x\r\n\r\nX-Stress-Id: 1\r\n"), None);
    }
}
