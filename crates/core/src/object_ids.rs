//! Object ids that protocols put on the wire (IMAP EMAILID, THREADID and
//! MAILBOXID of RFC 8474; DAV hrefs, web URLs and JMAP ids to come): the
//! store's row ids under a keyed permutation, so that an id tells nobody how
//! many messages, threads or mailboxes the server holds, nor lets anyone
//! guess a neighbour's (issue 12 point 7). The permutation is reversible,
//! so a URL's id leads back to its row.
//!
//! It is a four-round Feistel network over the 64-bit id whose round
//! function is keyed BLAKE3 (Luby-Rackoff: four rounds of a pseudorandom
//! function make a strong pseudorandom permutation), separated per kind so
//! that a message and a mailbox with the same row id get unrelated ids.

/// What an object id names; each kind has its own permutation and prefix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ObjectKind {
    /// A message (IMAP EMAILID).
    Email,
    /// A conversation (IMAP THREADID).
    Thread,
    /// A mailbox (IMAP MAILBOXID).
    Mailbox,
}

impl ObjectKind {
    fn prefix(self) -> char {
        match self {
            ObjectKind::Email => 'M',
            ObjectKind::Thread => 'T',
            ObjectKind::Mailbox => 'F',
        }
    }
}

/// Rounds of the Feistel network.
const ROUNDS: u8 = 4;

/// The server's keyed permutation of row ids (one key per store, so every
/// node names an object alike).
pub(crate) struct ObjectIds {
    key: [u8; 32],
}

impl ObjectIds {
    pub(crate) fn new(key: [u8; 32]) -> Self {
        ObjectIds { key }
    }

    fn round(&self, kind: ObjectKind, round: u8, half: u32) -> u32 {
        let mut input = [0u8; 6];
        input[0] = kind.prefix() as u8;
        input[1] = round;
        input[2..].copy_from_slice(&half.to_be_bytes());
        let hash = blake3::keyed_hash(&self.key, &input);
        let bytes = hash.as_bytes();
        u32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]])
    }

    /// The wire id of row `id`: the kind's letter and 16 hex digits
    /// (RFC 8474 §4: 1 to 255 of ALPHA, DIGIT, "_", "-").
    pub(crate) fn encode(&self, kind: ObjectKind, id: i64) -> String {
        let value = id as u64;
        let (mut left, mut right) = ((value >> 32) as u32, value as u32);
        for round in 0..ROUNDS {
            (left, right) = (right, left ^ self.round(kind, round, right));
        }
        format!(
            "{}{:016x}",
            kind.prefix(),
            (u64::from(left) << 32) | u64::from(right)
        )
    }

    /// The row id a wire id of this kind names, if it is one.
    pub(crate) fn decode(&self, kind: ObjectKind, wire: &str) -> Option<i64> {
        let hex = wire.strip_prefix(kind.prefix())?;
        if hex.len() != 16 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            return None;
        }
        let value = u64::from_str_radix(hex, 16).ok()?;
        let (mut left, mut right) = ((value >> 32) as u32, value as u32);
        for round in (0..ROUNDS).rev() {
            (left, right) = (right ^ self.round(kind, round, left), left);
        }
        Some(((u64::from(left) << 32) | u64::from(right)) as i64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_round_trip_and_reveal_no_order() {
        let ids = ObjectIds::new([7; 32]);
        let mut seen = std::collections::HashSet::new();
        for id in (1..2000).chain([0, -1, i64::MAX, i64::MIN]) {
            let wire = ids.encode(ObjectKind::Email, id);
            assert_eq!(wire.len(), 17);
            assert!(wire.starts_with('M'));
            assert_eq!(ids.decode(ObjectKind::Email, &wire), Some(id));
            assert!(seen.insert(wire), "a permutation never repeats");
        }
        // Neighbouring rows get unrelated ids.
        let (a, b) = (
            ids.encode(ObjectKind::Email, 41),
            ids.encode(ObjectKind::Email, 42),
        );
        let differing = a.chars().zip(b.chars()).filter(|(x, y)| x != y).count();
        assert!(differing >= 8, "{a} vs {b}");
        // Kinds and keys are separate.
        let m = ids.encode(ObjectKind::Mailbox, 42);
        assert_ne!(m[1..], b[1..]);
        assert_eq!(ids.decode(ObjectKind::Email, &m), None);
        assert_ne!(ObjectIds::new([8; 32]).encode(ObjectKind::Email, 42), b);
        for bad in ["", "M", "M42", "Mzzzzzzzzzzzzzzzz", "M0000000000000000000"] {
            assert_eq!(ids.decode(ObjectKind::Email, bad), None, "{bad}");
        }
    }
}
