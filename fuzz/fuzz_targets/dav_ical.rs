//! Any PUT body is taken or refused with a precondition; what is taken has
//! bounds in order and its data unchanged.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rampart_dav::ical::{IcalLimits, intake};

const LIMITS: IcalLimits = IcalLimits {
    max_components: 50,
    max_instances: 200,
};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let allowed = ["VEVENT".to_owned(), "VTODO".to_owned(), "VJOURNAL".to_owned()];
    if let Ok((write, _)) = intake("f.ics", text, &allowed, LIMITS) {
        assert_eq!(write.data, text);
        assert!(!write.uid.is_empty() || text.contains("UID"));
        if let (Some(s), Some(e)) = (write.starts_at, write.ends_at) {
            assert!(s <= e);
        }
    }
});
