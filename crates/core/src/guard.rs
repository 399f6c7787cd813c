//! Failed-login throttling and address bans, shared by every protocol of the
//! process (rule R7): each failure is counted per client address and per
//! account; failures slow the next attempt down, and an address past the
//! threshold is banned for a while on every service.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Settings of the guard (`[security]` in the config).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GuardConfig {
    /// Failures from one address within `window` that ban it.
    pub failures_before_ban: u32,
    /// How long failures are remembered.
    pub window: Duration,
    /// How long a ban lasts.
    pub ban: Duration,
    /// Delay added per recent failure (of the address or the account) before answering.
    pub delay_per_failure: Duration,
    /// The longest delay.
    pub max_delay: Duration,
}

impl Default for GuardConfig {
    fn default() -> Self {
        GuardConfig {
            failures_before_ban: 10,
            window: Duration::from_secs(600),
            ban: Duration::from_secs(3600),
            delay_per_failure: Duration::from_millis(500),
            max_delay: Duration::from_secs(5),
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct Failures {
    count: u32,
    first: Instant,
}

#[derive(Default)]
struct State {
    by_address: HashMap<IpAddr, Failures>,
    by_account: HashMap<String, Failures>,
    banned: HashMap<IpAddr, Instant>,
}

/// Accounts are counted by their (bounded, lower-cased) login name, whether or not they exist.
fn account_key(login: &str) -> String {
    login.chars().take(320).collect::<String>().to_lowercase()
}

/// Most entries kept per map; the oldest go first (bounds memory under a spray of addresses).
const MAX_ENTRIES: usize = 100_000;

/// The failed-login guard.
pub struct Guard {
    config: GuardConfig,
    state: Mutex<State>,
}

impl Guard {
    /// A guard with the given settings.
    pub fn new(config: GuardConfig) -> Self {
        Guard {
            config,
            state: Mutex::new(State::default()),
        }
    }

    /// Whether the address is banned now.
    pub fn is_banned(&self, ip: IpAddr) -> bool {
        let mut state = self.state.lock().expect("guard lock");
        match state.banned.get(&ip) {
            Some(until) if *until > Instant::now() => true,
            Some(_) => {
                state.banned.remove(&ip);
                false
            }
            None => false,
        }
    }

    fn recent(&self, f: Option<&Failures>) -> u32 {
        f.filter(|f| f.first.elapsed() < self.config.window)
            .map_or(0, |f| f.count)
    }

    /// How long to wait before answering an attempt, given earlier failures.
    pub fn delay(&self, ip: Option<IpAddr>, account: &str) -> Duration {
        let state = self.state.lock().expect("guard lock");
        let by_ip = ip.map_or(0, |ip| self.recent(state.by_address.get(&ip)));
        let by_account = self.recent(state.by_account.get(&account_key(account)));
        let n = by_ip.max(by_account);
        (self.config.delay_per_failure * n).min(self.config.max_delay)
    }

    /// Counts a failure; returns true when it banned the address.
    pub fn failed(&self, ip: Option<IpAddr>, account: &str) -> bool {
        let mut state = self.state.lock().expect("guard lock");
        let now = Instant::now();
        let window = self.config.window;
        let bump = |map_entry: &mut Failures| {
            if map_entry.first.elapsed() >= window {
                *map_entry = Failures {
                    count: 0,
                    first: now,
                };
            }
            map_entry.count += 1;
            map_entry.count
        };
        if state.by_account.len() >= MAX_ENTRIES {
            state.by_account.retain(|_, f| f.first.elapsed() < window);
        }
        let account_key: String = account.chars().take(320).collect::<String>().to_lowercase();
        bump(state.by_account.entry(account_key).or_insert(Failures {
            count: 0,
            first: now,
        }));
        let Some(ip) = ip else { return false };
        if state.by_address.len() >= MAX_ENTRIES {
            state.by_address.retain(|_, f| f.first.elapsed() < window);
        }
        let count = bump(state.by_address.entry(ip).or_insert(Failures {
            count: 0,
            first: now,
        }));
        if count >= self.config.failures_before_ban {
            state.by_address.remove(&ip);
            state.banned.insert(ip, now + self.config.ban);
            return true;
        }
        false
    }

    /// Forgets the account's failures after a success (the address's stay).
    pub fn succeeded(&self, account: &str) {
        let mut state = self.state.lock().expect("guard lock");
        state.by_account.remove(&account_key(account));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bans_after_threshold_and_slows_down_before() {
        let g = Guard::new(GuardConfig {
            failures_before_ban: 3,
            delay_per_failure: Duration::from_millis(100),
            ..GuardConfig::default()
        });
        let ip: IpAddr = "198.51.100.9".parse().unwrap();
        let other: IpAddr = "198.51.100.10".parse().unwrap();
        assert_eq!(g.delay(Some(ip), "a@x"), Duration::ZERO);
        assert!(!g.failed(Some(ip), "a@x"));
        assert_eq!(g.delay(Some(ip), "b@x"), Duration::from_millis(100));
        // The account's failures slow attempts from other addresses too.
        assert_eq!(g.delay(Some(other), "A@x"), Duration::from_millis(100));
        assert!(!g.failed(Some(ip), "b@x"));
        assert!(!g.is_banned(ip));
        assert!(g.failed(Some(ip), "c@x"));
        assert!(g.is_banned(ip));
        assert!(!g.is_banned(other));
        g.succeeded("a@x");
        assert_eq!(g.delay(Some(other), "a@x"), Duration::ZERO);
    }
}
