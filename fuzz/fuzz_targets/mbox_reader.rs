//! Reading an arbitrary mbox stream must not panic, and no message exceeds the limit.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rampart_core::mbox::MboxReader;

const LIMIT: usize = 4096;

fuzz_target!(|data: &[u8]| {
    let mut reader = MboxReader::new(data, LIMIT);
    let mut index = 0;
    while let Ok(Some(message)) = reader.next_message(index) {
        assert!(message.len() <= LIMIT);
        index += 1;
        assert!(index <= data.len() + 1, "more messages than input lines");
    }
});
