//! Any vCard body is taken or refused; conversion never panics.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rampart_dav::vcard::{in_version, intake};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(write) = intake("f.vcf", text, 100) {
        assert!(!write.uid.trim().is_empty());
        let _ = in_version(text, Some("3.0"));
        let _ = in_version(text, Some("4.0"));
    }
});
