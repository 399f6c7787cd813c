//! `[dns]`: where DNS answers for SPF, DKIM and DMARC come from.

use std::collections::BTreeMap;
use std::net::IpAddr;

use serde::Deserialize;

/// `[dns]`: where DNS answers for SPF, DKIM and DMARC come from.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DnsSection {
    /// `"system"`: the system resolver; `"static"`: only `txt` below (tests, air-gapped sites).
    pub source: DnsSourceName,
    /// TXT records answered locally, by name: `"_dmarc.example.net" = "v=DMARC1; p=reject"`.
    pub txt: BTreeMap<String, String>,
    /// MX hosts answered locally, by domain, best first: `"example.net" = ["mx1.example.net"]`.
    pub mx: BTreeMap<String, Vec<String>>,
    /// Addresses answered locally, by host name: `"mx1.example.net" = ["192.0.2.25"]`.
    pub a: BTreeMap<String, Vec<IpAddr>>,
    /// Check SPF, DKIM, ARC and DMARC of inbound mail and apply DMARC policies.
    pub verify_inbound: bool,
}

impl Default for DnsSection {
    fn default() -> Self {
        DnsSection {
            source: DnsSourceName::System,
            txt: Default::default(),
            mx: Default::default(),
            a: Default::default(),
            verify_inbound: true,
        }
    }
}

/// `dns.source`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DnsSourceName {
    /// The system's resolver.
    System,
    /// Only the configured records.
    Static,
}
