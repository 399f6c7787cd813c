//! `[listen]`: the services Rampart offers and the addresses of each.

use std::fmt;
use std::net::SocketAddr;

use anyhow::bail;
use serde::Deserialize;

/// The network services Rampart offers, each switchable on its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Service {
    /// Inbound SMTP (MX), port 25 in production.
    Smtp,
    /// SMTP submission with STARTTLS, port 587 in production.
    Submission,
    /// SMTP submission over implicit TLS, port 465 in production.
    Submissions,
    /// IMAP with STARTTLS, port 143 in production.
    Imap,
    /// IMAP over implicit TLS, port 993 in production.
    Imaps,
    /// The web app, CalDAV/CardDAV and discovery, port 443 in production.
    Https,
    /// The admin API and UI (loopback only by default).
    Admin,
}

impl Service {
    /// Every service, in the order they are printed.
    pub const ALL: [Service; 7] = [
        Service::Smtp,
        Service::Submission,
        Service::Submissions,
        Service::Imap,
        Service::Imaps,
        Service::Https,
        Service::Admin,
    ];

    /// The key in `[listen]`.
    pub fn key(self) -> &'static str {
        match self {
            Service::Smtp => "smtp",
            Service::Submission => "submission",
            Service::Submissions => "submissions",
            Service::Imap => "imap",
            Service::Imaps => "imaps",
            Service::Https => "https",
            Service::Admin => "admin",
        }
    }

    /// Whether the connection starts with a TLS handshake.
    pub fn implicit_tls(self) -> bool {
        matches!(
            self,
            Service::Submissions | Service::Imaps | Service::Https | Service::Admin
        )
    }

    /// The default loopback port (unprivileged, so no root is needed to try Rampart).
    pub fn default_port(self) -> u16 {
        match self {
            Service::Smtp => 2525,
            Service::Submission => 2587,
            Service::Submissions => 2465,
            Service::Imap => 2143,
            Service::Imaps => 2993,
            Service::Https => 8443,
            Service::Admin => 8444,
        }
    }
}

impl fmt::Display for Service {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.key())
    }
}

fn loopback(port: u16) -> Vec<SocketAddr> {
    vec![SocketAddr::from(([127, 0, 0, 1], port))]
}

/// `[listen]`: the addresses of each service; an empty list switches it off.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ListenConfig {
    /// Inbound SMTP.
    pub smtp: Vec<SocketAddr>,
    /// Submission (STARTTLS).
    pub submission: Vec<SocketAddr>,
    /// Submission (implicit TLS).
    pub submissions: Vec<SocketAddr>,
    /// IMAP (STARTTLS).
    pub imap: Vec<SocketAddr>,
    /// IMAP (implicit TLS).
    pub imaps: Vec<SocketAddr>,
    /// HTTPS.
    pub https: Vec<SocketAddr>,
    /// Admin HTTPS.
    pub admin: Vec<SocketAddr>,
}

impl Default for ListenConfig {
    fn default() -> Self {
        ListenConfig {
            smtp: loopback(Service::Smtp.default_port()),
            submission: loopback(Service::Submission.default_port()),
            submissions: loopback(Service::Submissions.default_port()),
            imap: loopback(Service::Imap.default_port()),
            imaps: loopback(Service::Imaps.default_port()),
            https: loopback(Service::Https.default_port()),
            admin: loopback(Service::Admin.default_port()),
        }
    }
}

impl ListenConfig {
    /// The addresses of one service.
    pub fn addresses(&self, service: Service) -> &[SocketAddr] {
        match service {
            Service::Smtp => &self.smtp,
            Service::Submission => &self.submission,
            Service::Submissions => &self.submissions,
            Service::Imap => &self.imap,
            Service::Imaps => &self.imaps,
            Service::Https => &self.https,
            Service::Admin => &self.admin,
        }
    }

    /// Checks that no two services share an address.
    pub fn validate(&self) -> anyhow::Result<()> {
        let mut seen: Vec<(SocketAddr, Service)> = Vec::new();
        for service in Service::ALL {
            for addr in self.addresses(service) {
                // Port 0 asks the system for any free port, so it never clashes.
                let clash = seen.iter().find(|(a, _)| a == addr && addr.port() != 0);
                if let Some((_, other)) = clash {
                    bail!(
                        "listen.{service} and listen.{other} both use {addr}: give each service its own port"
                    );
                }
                seen.push((*addr, service));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_two_services_on_one_port() {
        let addr = SocketAddr::from(([127, 0, 0, 1], 9000));
        let l = ListenConfig {
            smtp: vec![addr],
            imaps: vec![addr],
            ..ListenConfig::default()
        };
        let e = l.validate().unwrap_err().to_string();
        assert_eq!(
            e,
            "listen.imaps and listen.smtp both use 127.0.0.1:9000: give each service its own port"
        );
    }

    #[test]
    fn port_zero_never_clashes() {
        let any = SocketAddr::from(([127, 0, 0, 1], 0));
        let l = ListenConfig {
            smtp: vec![any],
            imap: vec![any],
            ..ListenConfig::default()
        };
        assert!(l.validate().is_ok());
    }
}
