//! Clients that talk before the greeting (RFC 5321 §3.1: the client waits
//! for the 220). Spam software often sends its whole transaction at once;
//! as Postfix's postscreen does, the MX holds its greeting back for a moment
//! and drops a client that has spoken meanwhile. A client that passed is
//! remembered for a day and greeted at once.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use rampart_core::client_key;

/// How long a client that waited is greeted without waiting again
/// (postscreen's `postscreen_greet_ttl` is one day too).
const PASS_TTL: Duration = Duration::from_secs(24 * 3600);
/// Most clients remembered; past it the memory starts over.
const MAX_REMEMBERED: usize = 1 << 16;

/// The clients that waited for the greeting recently.
#[derive(Debug, Default)]
pub struct PregreetPasses(Mutex<HashMap<IpAddr, Instant>>);

impl PregreetPasses {
    /// Whether `ip` must wait for the greeting: not loopback when
    /// `skip_loopback` (local tools), and not seen waiting within the last day.
    pub fn must_wait(&self, ip: IpAddr, skip_loopback: bool) -> bool {
        if skip_loopback && ip.is_loopback() {
            return false;
        }
        let passes = self.0.lock().unwrap_or_else(|e| e.into_inner());
        passes
            .get(&client_key(ip))
            .is_none_or(|at| at.elapsed() >= PASS_TTL)
    }

    /// Remembers that `ip` waited.
    pub fn passed(&self, ip: IpAddr) {
        let mut passes = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if passes.len() >= MAX_REMEMBERED {
            passes.clear();
        }
        passes.insert(client_key(ip), Instant::now());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_never_waits_and_a_pass_covers_the_whole_v6_64() {
        let passes = PregreetPasses::default();
        assert!(!passes.must_wait("127.0.0.1".parse().unwrap(), true));
        assert!(!passes.must_wait("::1".parse().unwrap(), true));
        assert!(passes.must_wait("127.0.0.1".parse().unwrap(), false));
        let a: IpAddr = "2001:db8:1:2::10".parse().unwrap();
        let b: IpAddr = "2001:db8:1:2:ffff::1".parse().unwrap();
        let other: IpAddr = "2001:db8:1:3::10".parse().unwrap();
        assert!(passes.must_wait(a, true));
        passes.passed(a);
        assert!(!passes.must_wait(b, true), "same /64");
        assert!(passes.must_wait(other, true), "another /64");
    }
}
