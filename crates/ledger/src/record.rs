//! One ledger entry: who accessed what, from where, how, with what result.

use serde::{Deserialize, Serialize};

/// One access to user data (or to an account), as kept in the ledger.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    /// Position in the chain, from 1; assigned by the ledger.
    pub seq: u64,
    /// Milliseconds since the epoch, on the node's clock.
    pub at: i64,
    /// The node that served the access.
    pub node: String,
    /// The protocol session (connection, web login).
    pub session: String,
    /// Who authenticated: an address, `operator:USER` or `service:NAME`.
    pub principal: String,
    /// The account id of the principal, when it is an account.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub principal_id: Option<i64>,
    /// Whose rights applied (differs from the principal under delegation).
    pub acting_as: String,
    /// How the principal authenticated (password, app-password, ...).
    pub auth: String,
    /// The peer's address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client: Option<String>,
    /// The client's software as it named itself (IMAP ID, SMTP EHLO name,
    /// HTTP User-Agent), sanitised by core; absent when it did not say.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_software: Option<String>,
    /// The protocol (imap, smtp, cli, ...).
    pub protocol: String,
    /// What was done (read-body, search, login-failure, ...).
    pub operation: String,
    /// The account whose data it was.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<i64>,
    /// The container (mailbox name, domain).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container: Option<String>,
    /// Every object touched, as inclusive ranges of ids, ascending.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub objects: Vec<(i64, i64)>,
    /// Bytes of user data returned.
    pub bytes: u64,
    /// `ok`, `denied` or `failed: REASON`.
    pub outcome: String,
}

impl Record {
    /// Every object id, ascending.
    pub fn object_ids(&self) -> impl Iterator<Item = i64> + '_ {
        self.objects.iter().flat_map(|&(a, b)| a..=b)
    }

    /// How many objects the entry names.
    pub fn object_count(&self) -> u64 {
        self.objects
            .iter()
            .map(|&(a, b)| (b - a + 1).max(0) as u64)
            .sum()
    }
}

/// Ids as inclusive ascending ranges, duplicates dropped.
pub fn ranges(ids: &[i64]) -> Vec<(i64, i64)> {
    let mut sorted = ids.to_vec();
    sorted.sort_unstable();
    sorted.dedup();
    let mut out: Vec<(i64, i64)> = Vec::new();
    for id in sorted {
        match out.last_mut() {
            Some((_, end)) if *end + 1 == id => *end = id,
            _ => out.push((id, id)),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_are_compact_and_complete() {
        assert_eq!(
            ranges(&[5, 1, 2, 3, 9, 2, 10]),
            vec![(1, 3), (5, 5), (9, 10)]
        );
        let r = Record {
            objects: ranges(&[4, 6, 5, 40]),
            ..Record::default()
        };
        assert_eq!(r.object_ids().collect::<Vec<_>>(), vec![4, 5, 6, 40]);
        assert_eq!(r.object_count(), 4);
        assert!(ranges(&[]).is_empty());
    }
}
