//! Any command line the SMTP session can be handed parses or fails cleanly.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // The driver hands the parser one line of at most max_command_line bytes.
    let line = &data[..data.len().min(4096)];
    let _ = smtp_proto::Request::parse(&mut line.iter());
});
