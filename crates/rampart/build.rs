//! Marks tests as ignored, with a reason `cargo test` prints, when what they
//! need is missing: a PostgreSQL test database, or Python 3 as a real client.
fn main() {
    println!("cargo::rerun-if-env-changed=RAMPART_TEST_POSTGRES_URL");
    println!("cargo::rerun-if-env-changed=PATH");
    println!("cargo::rustc-check-cfg=cfg(rampart_test_postgres)");
    println!("cargo::rustc-check-cfg=cfg(rampart_test_python)");
    if std::env::var_os("RAMPART_TEST_POSTGRES_URL").is_some_and(|v| !v.is_empty()) {
        println!("cargo::rustc-cfg=rampart_test_postgres");
    }
    let python = std::process::Command::new("python3")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if python {
        println!("cargo::rustc-cfg=rampart_test_python");
    }
}
