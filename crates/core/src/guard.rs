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
    /// Client addresses that logged into an account before, with when
    /// they last did: their attempts are not slowed by the account's
    /// failures, so that a guesser cannot keep a colleague's logins slow.
    known: HashMap<String, Vec<(IpAddr, Instant)>>,
}

/// Keys are bounded and lower-cased.
fn account_key(key: &str) -> String {
    key.chars().take(320).collect::<String>().to_lowercase()
}

/// The unit a client is counted and banned by: an IPv4 address, or an
/// IPv6 address's /64 (one host owns a whole /64, and picks from it freely).
pub fn client_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let prefix = u128::from(v6) & !((1u128 << 64) - 1);
                IpAddr::V6(std::net::Ipv6Addr::from(prefix))
            }
        },
        v4 => v4,
    }
}

/// Most entries kept per map; the oldest go first (bounds memory under a spray of addresses).
const MAX_ENTRIES: usize = 100_000;

/// Most client addresses remembered per account.
const MAX_KNOWN_CLIENTS: usize = 16;

/// How long a successful login keeps a client address known.
const KNOWN_CLIENT_TTL: Duration = Duration::from_secs(30 * 24 * 3600);

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

    /// Whether the address (its /64 for IPv6) is banned now.
    pub fn is_banned(&self, ip: IpAddr) -> bool {
        let ip = client_key(ip);
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

    /// Bans the client (its /64 for IPv6) for `duration` from now, unless a
    /// longer ban holds already: a ban another node decided, or one that
    /// outlived a restart.
    pub fn ban_for(&self, ip: IpAddr, duration: Duration) {
        let ip = client_key(ip);
        let until = Instant::now() + duration;
        let mut state = self.state.lock().expect("guard lock");
        if state.banned.len() >= MAX_ENTRIES {
            let now = Instant::now();
            state.banned.retain(|_, u| *u > now);
        }
        let entry = state.banned.entry(ip).or_insert(until);
        *entry = (*entry).max(until);
    }

    /// How long a ban lasts.
    pub fn ban_duration(&self) -> Duration {
        self.config.ban
    }

    fn recent(&self, f: Option<&Failures>) -> u32 {
        f.filter(|f| f.first.elapsed() < self.config.window)
            .map_or(0, |f| f.count)
    }

    /// How long to wait before answering an attempt on `account` (the key
    /// of the account it resolves to, however it was spelt), given earlier
    /// failures from the client and on the account. A client that logged
    /// into the account before is slowed only by its own failures.
    pub fn delay(&self, ip: Option<IpAddr>, account: &str) -> Duration {
        let ip = ip.map(client_key);
        let key = account_key(account);
        let state = self.state.lock().expect("guard lock");
        let by_ip = ip.map_or(0, |ip| self.recent(state.by_address.get(&ip)));
        let known = ip.is_some_and(|ip| {
            state.known.get(&key).is_some_and(|clients| {
                clients
                    .iter()
                    .any(|(c, at)| *c == ip && at.elapsed() < KNOWN_CLIENT_TTL)
            })
        });
        let by_account = if known {
            0
        } else {
            self.recent(state.by_account.get(&key))
        };
        let n = by_ip.max(by_account);
        (self.config.delay_per_failure * n).min(self.config.max_delay)
    }

    /// Counts a failure; returns true when it banned the address.
    pub fn failed(&self, ip: Option<IpAddr>, account: &str) -> bool {
        let ip = ip.map(client_key);
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
        bump(
            state
                .by_account
                .entry(account_key(account))
                .or_insert(Failures {
                    count: 0,
                    first: now,
                }),
        );
        let Some(ip) = ip else { return false };
        if state.by_address.len() >= MAX_ENTRIES {
            state.by_address.retain(|_, f| f.first.elapsed() < window);
        }
        if state.banned.len() >= MAX_ENTRIES {
            state.banned.retain(|_, until| *until > now);
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

    /// Remembers the client as one that logs into the account. The
    /// account's failures stay counted: a success of the owner's own
    /// background logins must not reset a guesser's count elsewhere.
    pub fn succeeded(&self, ip: Option<IpAddr>, account: &str) {
        let Some(ip) = ip.map(client_key) else {
            return;
        };
        let mut state = self.state.lock().expect("guard lock");
        if state.known.len() >= MAX_ENTRIES {
            state
                .known
                .retain(|_, c| c.iter().any(|(_, at)| at.elapsed() < KNOWN_CLIENT_TTL));
        }
        let clients = state.known.entry(account_key(account)).or_default();
        clients.retain(|(c, at)| *c != ip && at.elapsed() < KNOWN_CLIENT_TTL);
        if clients.len() >= MAX_KNOWN_CLIENTS {
            clients.remove(0);
        }
        clients.push((ip, Instant::now()));
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
        // A success makes the client known to the account: it is no longer
        // slowed by the account's failures, while other clients still are.
        g.succeeded(Some(other), "a@x");
        assert_eq!(g.delay(Some(other), "a@x"), Duration::ZERO);
        let third: IpAddr = "198.51.100.11".parse().unwrap();
        assert_eq!(g.delay(Some(third), "a@x"), Duration::from_millis(100));
    }

    #[test]
    fn ipv6_clients_count_by_their_64() {
        let g = Guard::new(GuardConfig {
            failures_before_ban: 2,
            ..GuardConfig::default()
        });
        let a: IpAddr = "2001:db8:1:2::1".parse().unwrap();
        let b: IpAddr = "2001:db8:1:2:ffff::7".parse().unwrap();
        let elsewhere: IpAddr = "2001:db8:1:3::1".parse().unwrap();
        assert!(!g.failed(Some(a), "x@y"));
        assert!(
            g.failed(Some(b), "z@y"),
            "the second address of the /64 bans it"
        );
        assert!(g.is_banned(a) && g.is_banned(b));
        assert!(!g.is_banned(elsewhere));
        // A ban decided elsewhere (another node, before a restart) covers the /64 too.
        g.ban_for(elsewhere, Duration::from_secs(60));
        assert!(g.is_banned("2001:db8:1:3:abcd::9".parse().unwrap()));
        let mapped: IpAddr = "::ffff:192.0.2.1".parse().unwrap();
        assert_eq!(client_key(mapped), "192.0.2.1".parse::<IpAddr>().unwrap());
    }
}
