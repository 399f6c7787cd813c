//! `[ledger]`: the access ledger.

use std::path::PathBuf;

use anyhow::bail;
use serde::Deserialize;

/// `[ledger]`: the access ledger.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LedgerSection {
    /// Whether accesses are recorded in the ledger. Off only to measure
    /// what the ledger costs: without it nothing says who read what.
    pub enabled: bool,
    /// Seconds between signed checkpoints of the chain's head.
    pub checkpoint_interval_seconds: u64,
    /// Days a sealed segment is kept after its newest entry.
    pub retention_days: u64,
    /// Size at which a segment is sealed, in MiB (it is sealed after a day anyway).
    pub segment_mb: u64,
    /// A file (on another machine's mount, or write-once storage) to which
    /// each new checkpoint is appended as well.
    pub witness_file: Option<PathBuf>,
    /// An address to which the server mails each new checkpoint.
    pub witness_address: Option<String>,
}

impl Default for LedgerSection {
    fn default() -> Self {
        LedgerSection {
            enabled: true,
            checkpoint_interval_seconds: 60,
            retention_days: 400,
            segment_mb: 64,
            witness_file: None,
            witness_address: None,
        }
    }
}

impl LedgerSection {
    /// Checks the checkpoint interval, retention, witness address and segment size.
    pub fn validate(&self) -> anyhow::Result<()> {
        if !(1..=86_400).contains(&self.checkpoint_interval_seconds) {
            bail!(
                "ledger.checkpoint_interval_seconds = {}: expected 1 to 86400",
                self.checkpoint_interval_seconds
            );
        }
        if !(1..=36_500).contains(&self.retention_days) {
            bail!(
                "ledger.retention_days = {}: expected 1 to 36500",
                self.retention_days
            );
        }
        if let Some(a) = &self.witness_address {
            rampart_core::Address::parse(a)
                .map_err(|e| anyhow::anyhow!("ledger.witness_address = {a:?}: {e}"))?;
        }
        if !(1..=4096).contains(&self.segment_mb) {
            bail!(
                "ledger.segment_mb = {}: expected 1 to 4096",
                self.segment_mb
            );
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_zero_retention() {
        let l = LedgerSection {
            retention_days: 0,
            ..LedgerSection::default()
        };
        let e = l.validate().unwrap_err().to_string();
        assert_eq!(e, "ledger.retention_days = 0: expected 1 to 36500");
    }

    #[test]
    fn refuses_a_bad_witness_address() {
        let l = LedgerSection {
            witness_address: Some("nobody".into()),
            ..LedgerSection::default()
        };
        let e = l.validate().unwrap_err().to_string();
        assert!(
            e.starts_with("ledger.witness_address = \"nobody\": "),
            "{e}"
        );
    }
}
