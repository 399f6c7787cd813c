//! A damaged or forged ledger directory (any segment bytes, any checkpoint
//! text) must give a verify report or an error, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rampart_ledger::{parse_checkpoints, verify};

fuzz_target!(|data: &[u8]| {
    // First byte: where the checkpoint text starts.
    let Some((&split, rest)) = data.split_first() else {
        return;
    };
    let split = (split as usize * rest.len() / 255).min(rest.len());
    let (segment, checkpoints) = rest.split_at(split);
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("segment-00000000000000000001.log"), segment).unwrap();
    let extra = parse_checkpoints(&String::from_utf8_lossy(checkpoints)).unwrap_or_default();
    let _ = verify(dir.path(), &extra);
});
