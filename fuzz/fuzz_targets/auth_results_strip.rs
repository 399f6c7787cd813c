//! The Authentication-Results stripper against the header tokenizer: for any
//! message, the tokenizer finds no field left that claims our authserv-id
//! (nor does IMAP's reading of the header, which is what clients are
//! served), every other field survives byte for byte and in order, and the
//! body is untouched.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rampart_core::header;
use rampart_imap::mime::Mime;
use rampart_smtp::authres::{authserv_id, is_forged, strip_forged_results};

const OURS: &str = "mx.example.org";

fuzz_target!(|data: &[u8]| {
    let out = strip_forged_results(data, OURS);

    let (in_len, _) = header::header_end(data);
    let (out_len, _) = header::header_end(&out);
    assert_eq!(&out[out_len..], &data[in_len..], "the body changed");

    let kept: Vec<&[u8]> = header::fields(&data[..in_len])
        .filter(|f| !is_forged(f, OURS))
        .map(|f| f.raw)
        .collect();
    let left: Vec<_> = header::fields(&out[..out_len]).collect();
    assert!(
        left.iter().all(|f| !is_forged(f, OURS)),
        "a forged field survived"
    );
    let left: Vec<&[u8]> = left.iter().map(|f| f.raw).collect();
    assert_eq!(left, kept, "other fields changed");

    // IMAP's own split of the delivered message.
    let mime = Mime::parse_top(&out);
    for (name, value) in mime.fields(&mime.root) {
        let ours = authserv_id(value).is_some_and(|id| {
            let id = id.trim_ascii();
            let id = id.strip_suffix(b".").unwrap_or(id);
            id.eq_ignore_ascii_case(OURS.as_bytes())
        });
        assert!(
            !(name.trim().eq_ignore_ascii_case("Authentication-Results") && ours),
            "IMAP reads a forged field: {name:?}"
        );
    }
});
