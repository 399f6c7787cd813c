//! `[server]`: identity, data directory, process.

use std::path::PathBuf;

use anyhow::bail;
use serde::Deserialize;

/// `[server]`: identity, data directory, process.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
    /// The host name in greetings and the certificate Rampart makes.
    pub hostname: String,
    /// Where the embedded store, blobs and TLS files live.
    pub data_dir: PathBuf,
    /// The user to switch to after binding ports when started as root.
    pub run_as: Option<String>,
    /// Seconds open sessions get to finish at shutdown.
    pub shutdown_grace_seconds: u64,
    /// This node's name in the access ledger (defaults to the hostname).
    pub node_name: Option<String>,
    /// The zone reports speak in and read zone-less times in (an IANA name
    /// such as `Europe/Berlin`, or `UTC`); default: the system's, else UTC.
    pub time_zone: Option<String>,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            hostname: "localhost".into(),
            data_dir: PathBuf::from("rampart-data"),
            run_as: None,
            shutdown_grace_seconds: 10,
            node_name: None,
            time_zone: None,
        }
    }
}

impl ServerConfig {
    /// Checks the values of `[server]`.
    pub fn validate(&self) -> anyhow::Result<()> {
        if let Some(zone) = &self.time_zone {
            crate::ledger_cli::time_zone(zone)
                .map_err(|e| anyhow::anyhow!("server.time_zone: {e}"))?;
        }
        if rampart_core::normalize_domain(&self.hostname).is_err() {
            bail!(
                "server.hostname = {:?}: expected a host name such as mail.example.org",
                self.hostname
            );
        }
        Ok(())
    }

    /// This node's name in the ledger and the core: `node_name`, else the hostname.
    pub fn node(&self) -> String {
        self.node_name
            .clone()
            .unwrap_or_else(|| self.hostname.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_a_bad_hostname() {
        let s = ServerConfig {
            hostname: "not a host".into(),
            ..ServerConfig::default()
        };
        let e = s.validate().unwrap_err().to_string();
        assert_eq!(
            e,
            "server.hostname = \"not a host\": expected a host name such as mail.example.org"
        );
        assert!(ServerConfig::default().validate().is_ok());
    }
}
