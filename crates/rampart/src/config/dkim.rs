//! `[dkim]`: naming of the signing keys made for each domain.

use anyhow::bail;
use serde::Deserialize;

/// `[dkim]`: naming of the signing keys made for each domain.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DkimSection {
    /// Selector base: keys are published at `<selector>-ed25519._domainkey` and `<selector>-rsa._domainkey`.
    pub selector: String,
}

impl Default for DkimSection {
    fn default() -> Self {
        DkimSection {
            selector: "rampart".into(),
        }
    }
}

impl DkimSection {
    /// Checks that the selector is a short DNS label.
    pub fn validate(&self) -> anyhow::Result<()> {
        if self.selector.is_empty()
            || self.selector.len() > 40
            || !self
                .selector
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        {
            bail!(
                "dkim.selector = {:?}: expected 1 to 40 letters, digits or hyphens",
                self.selector
            );
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_a_selector_with_a_dot() {
        let d = DkimSection {
            selector: "a.b".into(),
        };
        let e = d.validate().unwrap_err().to_string();
        assert_eq!(
            e,
            "dkim.selector = \"a.b\": expected 1 to 40 letters, digits or hyphens"
        );
        assert!(DkimSection::default().validate().is_ok());
    }
}
