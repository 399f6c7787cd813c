//! Marks the PostgreSQL conformance tests as ignored, with a reason that
//! `cargo test` prints, when no test database is configured.
fn main() {
    println!("cargo::rerun-if-env-changed=RAMPART_TEST_POSTGRES_URL");
    println!("cargo::rustc-check-cfg=cfg(rampart_test_postgres)");
    if std::env::var_os("RAMPART_TEST_POSTGRES_URL").is_some_and(|v| !v.is_empty()) {
        println!("cargo::rustc-cfg=rampart_test_postgres");
    }
}
