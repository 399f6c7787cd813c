//! Rule R2 in the crate graph: protocol crates cannot depend on the store
//! or the ledger, so they reach data only through core. (That core hands out
//! no way to the store is proven by the compile-fail examples on
//! `rampart_core::model`.)

use std::path::Path;

/// The crates that speak a protocol to the outside.
const PROTOCOL_CRATES: &[&str] = &["imap", "smtp", "dav"];

fn dependencies(manifest: &Path) -> Vec<String> {
    let text = std::fs::read_to_string(manifest).unwrap();
    let doc: toml::Table = text.parse().unwrap();
    ["dependencies", "build-dependencies"]
        .iter()
        .filter_map(|section| doc.get(*section).and_then(|d| d.as_table()))
        .flat_map(|t| t.keys().cloned())
        .collect()
}

#[test]
fn protocol_crates_do_not_depend_on_the_store_or_the_ledger() {
    let crates = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    for name in PROTOCOL_CRATES {
        let manifest = crates.join(name).join("Cargo.toml");
        let deps = dependencies(&manifest);
        assert!(deps.iter().any(|d| d == "rampart-core"), "{name}: {deps:?}");
        for forbidden in ["rampart-store", "rampart-ledger"] {
            assert!(
                !deps.iter().any(|d| d == forbidden),
                "{name} depends on {forbidden}: {deps:?}"
            );
        }
        let lib = std::fs::read_to_string(crates.join(name).join("src/lib.rs")).unwrap();
        // Private fields are no barrier to unsafe code.
        assert!(lib.contains("#![forbid(unsafe_code)]"), "{name}");
    }
}
