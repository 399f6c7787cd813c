//! The MTA-STS policy file parser (RFC 8461 §3.2), fed what a policy host
//! may serve: never panics, and a policy it accepts keeps the RFC's
//! bounds (max_age capped, an applying policy names at least one MX).
#![no_main]

use libfuzzer_sys::fuzz_target;
use rampart_smtp::mta_sts::{Mode, Policy};

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    if let Ok(policy) = Policy::parse(&text) {
        assert!(policy.max_age <= 31_557_600);
        assert!(policy.mode == Mode::None || !policy.mx.is_empty());
        // Matching any host named in the input must not panic either.
        for line in text.lines() {
            let _ = policy.matches(line);
        }
    }
});
