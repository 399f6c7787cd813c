//! Any byte stream a client sends frames, tokenises and parses cleanly,
//! within the limits, whatever way it is cut into reads.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rampart_imap::command::{CommandLimits, parse_command};
use rampart_imap::parser::{Frame, FrameLimits, Framer, tokenize};

const FRAME: FrameLimits = FrameLimits {
    max_command_bytes: 8192,
    max_append_bytes: 65536,
    max_list_depth: 16,
};

const COMMAND: CommandLimits = CommandLimits {
    max_sequence_ranges: 1000,
    max_search_depth: 16,
    max_search_keys: 256,
};

fuzz_target!(|data: &[u8]| {
    let Some((&cut, stream)) = data.split_first() else {
        return;
    };
    let step = usize::from(cut).max(1);
    let mut framer = Framer::new(FRAME);
    for piece in stream.chunks(step) {
        framer.push(piece);
        while let Some(frame) = framer.next_frame() {
            if let Frame::Command(raw) = frame {
                assert!(raw.len() <= FRAME.max_command_bytes + FRAME.max_append_bytes);
                if let Ok((_, tokens)) = tokenize(&raw, FRAME.max_list_depth) {
                    let _ = parse_command(&tokens, COMMAND);
                }
            }
        }
        assert!(framer.buffered() <= FRAME.max_command_bytes + FRAME.max_append_bytes + step);
    }
});
