//! Any message gives an ENVELOPE, a BODYSTRUCTURE and its sections without
//! panicking, and sections stay within the message.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rampart_imap::command::{Section, SectionText};
use rampart_imap::mime::Mime;
use rampart_imap::render;

fuzz_target!(|data: &[u8]| {
    let mime = Mime::parse(data);
    let mut out = Vec::new();
    render::envelope(&mut out, &mime, &mime.root);
    render::body_structure(&mut out, &mime, &mime.root, true);
    for part in [vec![], vec![1], vec![1, 1], vec![2], vec![1, 2, 1]] {
        for text in [
            None,
            Some(SectionText::Header),
            Some(SectionText::Text),
            Some(SectionText::Mime),
            Some(SectionText::HeaderFields(vec!["Subject".into()])),
        ] {
            if let Some(bytes) = mime.section(&Section {
                part: part.clone(),
                text,
            }) {
                // Only a header section may add its blank line.
                assert!(bytes.len() <= data.len() + 2);
            }
        }
        let _ = mime.binary(&part);
    }
});
