//! Summarising an arbitrary message must not panic, and stays within its bounds.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let (summary, references) = rampart_core::summarize(data);
    assert!(references.len() <= 100);
    assert!(summary.subject.as_ref().is_none_or(|s| s.len() <= 998));
    assert!(summary.from.len() <= 1000 && summary.to.len() <= 1000);
});
