//! Any request body parses to a tree within the limits, or to an error.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rampart_dav::xml::{Element, XmlLimits, parse};

const LIMITS: XmlLimits = XmlLimits {
    max_depth: 16,
    max_elements: 500,
};

fn measure(e: &Element, depth: usize) -> (usize, usize) {
    let mut count = 1;
    let mut deepest = depth;
    for c in &e.children {
        let (n, d) = measure(c, depth + 1);
        count += n;
        deepest = deepest.max(d);
    }
    (count, deepest)
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(root) = parse(text, LIMITS) {
        let (count, depth) = measure(&root, 1);
        assert!(count <= LIMITS.max_elements);
        assert!(depth <= LIMITS.max_depth);
        // No entity can expand: the text never outgrows the input.
        assert!(root.text.len() <= text.len());
    }
});
