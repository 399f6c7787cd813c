//! `[dav]`: limits of CalDAV and CardDAV requests on the HTTPS listener.

use serde::Deserialize;

/// `[dav]`: limits of CalDAV and CardDAV requests.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DavSection {
    /// Largest request body in bytes (413 beyond).
    pub max_request_bytes: usize,
    /// Largest iCalendar object or vCard in bytes (403 max-resource-size).
    pub max_resource_bytes: usize,
    /// Deepest XML nesting in a request.
    pub max_xml_depth: usize,
    /// Most XML elements in a request.
    pub max_xml_elements: usize,
    /// Most components of one iCalendar object, or properties of one vCard.
    pub max_components: usize,
    /// Most recurrence instances computed for one object.
    pub max_instances: usize,
    /// Longest time range an `expand` may cover, in days.
    pub max_expand_days: u32,
    /// Most hrefs in one multiget.
    pub max_multiget_hrefs: usize,
    /// Most resources one listing, query or sync returns (507 beyond).
    pub max_results: usize,
    /// Seconds a client has to send a request's head.
    pub header_timeout_seconds: u64,
    /// Seconds a response may wait for a client that reads nothing.
    pub write_timeout_seconds: u64,
    /// Most simultaneous HTTPS connections from one client address; more
    /// are closed at once.
    pub max_connections_per_address: usize,
}

impl Default for DavSection {
    fn default() -> Self {
        let d = rampart_dav::DavConfig::default();
        DavSection {
            max_request_bytes: d.max_request_bytes,
            max_resource_bytes: d.max_resource_bytes,
            max_xml_depth: d.max_xml_depth,
            max_xml_elements: d.max_xml_elements,
            max_components: d.max_components,
            max_instances: d.max_instances,
            max_expand_days: d.max_expand_days,
            max_multiget_hrefs: d.max_multiget_hrefs,
            max_results: d.max_results,
            header_timeout_seconds: d.header_timeout.as_secs(),
            write_timeout_seconds: d.write_timeout.as_secs(),
            max_connections_per_address: 50,
        }
    }
}

impl DavSection {
    /// Checks each limit against its range.
    pub fn validate(&self) -> anyhow::Result<()> {
        super::check_ranges(&[
            (
                "dav.max_request_bytes",
                self.max_request_bytes as u64,
                4096,
                1 << 30,
            ),
            (
                "dav.max_resource_bytes",
                self.max_resource_bytes as u64,
                1024,
                256 << 20,
            ),
            ("dav.max_xml_depth", self.max_xml_depth as u64, 8, 256),
            (
                "dav.max_xml_elements",
                self.max_xml_elements as u64,
                100,
                10_000_000,
            ),
            (
                "dav.max_components",
                self.max_components as u64,
                10,
                1_000_000,
            ),
            (
                "dav.max_instances",
                self.max_instances as u64,
                10,
                10_000_000,
            ),
            (
                "dav.max_expand_days",
                u64::from(self.max_expand_days),
                1,
                100_000,
            ),
            (
                "dav.max_multiget_hrefs",
                self.max_multiget_hrefs as u64,
                1,
                1_000_000,
            ),
            ("dav.max_results", self.max_results as u64, 10, 10_000_000),
            (
                "dav.header_timeout_seconds",
                self.header_timeout_seconds,
                1,
                3600,
            ),
            (
                "dav.write_timeout_seconds",
                self.write_timeout_seconds,
                1,
                3600,
            ),
        ])
    }

    /// The DAV service's settings.
    pub fn dav_config(&self) -> rampart_dav::DavConfig {
        rampart_dav::DavConfig {
            max_request_bytes: self.max_request_bytes,
            max_resource_bytes: self.max_resource_bytes,
            max_xml_depth: self.max_xml_depth,
            max_xml_elements: self.max_xml_elements,
            max_components: self.max_components,
            max_instances: self.max_instances,
            max_expand_days: self.max_expand_days,
            max_multiget_hrefs: self.max_multiget_hrefs,
            max_results: self.max_results,
            header_timeout: std::time::Duration::from_secs(self.header_timeout_seconds),
            write_timeout: std::time::Duration::from_secs(self.write_timeout_seconds),
            // Filled in from the bound listeners when the server starts.
            discovery: Default::default(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_hold_and_a_tiny_body_limit_is_refused() {
        assert!(DavSection::default().validate().is_ok());
        let d = DavSection {
            max_request_bytes: 10,
            ..DavSection::default()
        };
        assert_eq!(
            d.validate().unwrap_err().to_string(),
            "dav.max_request_bytes = 10: expected 4096 to 1073741824"
        );
    }
}
