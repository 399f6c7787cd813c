//! `[tls]`: the certificate for every TLS service.

use std::path::PathBuf;

use anyhow::bail;
use serde::Deserialize;

/// `[tls]`: the certificate for every TLS service.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TlsConfig {
    /// PEM certificate chain; unset means one Rampart makes in DATA/tls/.
    pub cert: Option<PathBuf>,
    /// PEM private key for `cert`.
    pub key: Option<PathBuf>,
}

impl TlsConfig {
    /// Checks that `cert` and `key` come as a pair.
    pub fn validate(&self) -> anyhow::Result<()> {
        if self.cert.is_some() != self.key.is_some() {
            bail!("tls.cert and tls.key go together: set both, or neither for one Rampart makes");
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_a_key_without_a_cert() {
        let t = TlsConfig {
            cert: None,
            key: Some(PathBuf::from("/k.pem")),
        };
        let e = t.validate().unwrap_err().to_string();
        assert_eq!(
            e,
            "tls.cert and tls.key go together: set both, or neither for one Rampart makes"
        );
    }
}
