//! The DATA reader, fed arbitrary input in arbitrary pieces: never panics,
//! never returns more than the limit, and never ends before a strict CRLF.CRLF.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rampart_smtp::data::{DataProgress, DataReader};

fuzz_target!(|data: &[u8]| {
    let Some((&split, body)) = data.split_first() else {
        return;
    };
    let mut reader = DataReader::new(2048, 256);
    let piece = (split as usize % 64) + 1;
    let mut fed = 0;
    for chunk in body.chunks(piece) {
        if let DataProgress::Done { result, consumed } = reader.feed(chunk) {
            fed += consumed;
            // The body starts at a line start, so it may end at once with ".\r\n".
            let read = &body[..fed];
            assert!(
                read == b".\r\n" || read.ends_with(b"\r\n.\r\n"),
                "ended without the strict terminator"
            );
            if let Ok(message) = result {
                assert!(message.len() <= 2048);
                assert!(!message.windows(2).any(|w| w[1] == b'\n' && w[0] != b'\r'));
            }
            return;
        }
        fed += chunk.len();
    }
});
