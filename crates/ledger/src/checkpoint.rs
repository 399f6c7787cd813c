//! Signed checkpoints: the chain's head at a sequence number, signed with the
//! node's Ed25519 ledger key, written as one line of text.

use ring::signature::{ED25519, Ed25519KeyPair, KeyPair, UnparsedPublicKey};

use crate::{LedgerError, Result};

const MAGIC: &str = "rampart-ledger-checkpoint v1";

/// A signed statement that the chain had `head` after entry `seq`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Checkpoint {
    /// The node whose ledger it is.
    pub node: String,
    /// The last entry covered.
    pub seq: u64,
    /// When it was made, milliseconds since the epoch.
    pub at: i64,
    /// The chain hash after entry `seq`.
    pub head: [u8; 32],
    /// The Ed25519 public key that signed it.
    pub key: [u8; 32],
    /// The signature over the line up to ` sig=`.
    pub signature: Vec<u8>,
}

impl Checkpoint {
    /// Makes and signs a checkpoint.
    pub(crate) fn sign(
        node: &str,
        seq: u64,
        at: i64,
        head: [u8; 32],
        key: &Ed25519KeyPair,
    ) -> Self {
        let mut public = [0u8; 32];
        public.copy_from_slice(key.public_key().as_ref());
        let mut c = Checkpoint {
            node: node.split_whitespace().collect::<Vec<_>>().join("_"),
            seq,
            at,
            head,
            key: public,
            signature: Vec::new(),
        };
        c.signature = key.sign(c.signed_text().as_bytes()).as_ref().to_vec();
        c
    }

    fn signed_text(&self) -> String {
        format!(
            "{MAGIC} node={} seq={} at={} head={} key={}",
            self.node,
            self.seq,
            self.at,
            hex::encode(self.head),
            hex::encode(self.key)
        )
    }

    /// The checkpoint as one line of text (without a newline).
    pub fn to_line(&self) -> String {
        format!(
            "{} sig={}",
            self.signed_text(),
            hex::encode(&self.signature)
        )
    }

    /// Parses a line written by [`Checkpoint::to_line`].
    pub fn parse(line: &str) -> Result<Self> {
        let bad = |why: &str| LedgerError::Format(format!("checkpoint {line:?}: {why}"));
        let rest = line
            .trim()
            .strip_prefix(MAGIC)
            .ok_or_else(|| bad("not a Rampart ledger checkpoint"))?;
        let mut fields = std::collections::HashMap::new();
        for part in rest.split_whitespace() {
            let (k, v) = part.split_once('=').ok_or_else(|| bad("field without ="))?;
            fields.insert(k, v);
        }
        let get = |k: &str| {
            fields
                .get(k)
                .copied()
                .ok_or_else(|| bad(&format!("no {k}")))
        };
        let hash32 = |k: &str| -> Result<[u8; 32]> {
            let bytes = hex::decode(get(k)?).map_err(|_| bad(&format!("{k} is not hex")))?;
            bytes
                .try_into()
                .map_err(|_| bad(&format!("{k} is not 32 bytes")))
        };
        Ok(Checkpoint {
            node: get("node")?.to_owned(),
            seq: get("seq")?
                .parse()
                .map_err(|_| bad("seq is not a number"))?,
            at: get("at")?.parse().map_err(|_| bad("at is not a number"))?,
            head: hash32("head")?,
            key: hash32("key")?,
            signature: hex::decode(get("sig")?).map_err(|_| bad("sig is not hex"))?,
        })
    }

    /// Whether the signature is valid for the key the checkpoint names.
    pub fn signature_valid(&self) -> bool {
        UnparsedPublicKey::new(&ED25519, self.key)
            .verify(self.signed_text().as_bytes(), &self.signature)
            .is_ok()
    }
}

/// Parses every checkpoint line of a text (blank lines and `#` comments skipped).
pub fn parse_all(text: &str) -> Result<Vec<Checkpoint>> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(Checkpoint::parse)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_tamper() {
        let rng = ring::rand::SystemRandom::new();
        let pkcs8 = Ed25519KeyPair::generate_pkcs8(&rng).unwrap();
        let key = Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).unwrap();
        let c = Checkpoint::sign("mail one", 42, 1_700_000_000_000, [7; 32], &key);
        assert_eq!(c.node, "mail_one");
        let parsed = Checkpoint::parse(&c.to_line()).unwrap();
        assert_eq!(parsed, c);
        assert!(parsed.signature_valid());
        let forged = Checkpoint::parse(&c.to_line().replace("seq=42", "seq=41")).unwrap();
        assert!(!forged.signature_valid());
        assert!(Checkpoint::parse("hello").is_err());
    }
}
