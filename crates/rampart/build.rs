//! Marks tests as ignored, with a reason `cargo test` prints, when what they
//! need is missing: a PostgreSQL test database, or Python 3 (with the caldav library), vdirsyncer, swaks, isync (mbsync) or offlineimap as real clients.
fn main() {
    println!("cargo::rerun-if-env-changed=RAMPART_TEST_POSTGRES_URL");
    println!("cargo::rerun-if-env-changed=PATH");
    println!("cargo::rustc-check-cfg=cfg(rampart_test_postgres)");
    println!("cargo::rustc-check-cfg=cfg(rampart_test_python)");
    println!("cargo::rustc-check-cfg=cfg(rampart_test_swaks)");
    println!("cargo::rustc-check-cfg=cfg(rampart_test_mbsync)");
    println!("cargo::rustc-check-cfg=cfg(rampart_test_offlineimap)");
    println!("cargo::rustc-check-cfg=cfg(rampart_test_caldav)");
    println!("cargo::rustc-check-cfg=cfg(rampart_test_vdirsyncer)");
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
    let caldav = std::process::Command::new("python3")
        .args(["-c", "import caldav"])
        .output()
        .is_ok_and(|o| o.status.success());
    if caldav {
        println!("cargo::rustc-cfg=rampart_test_caldav");
    }
    let vdirsyncer = std::process::Command::new("vdirsyncer")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if vdirsyncer && caldav {
        println!("cargo::rustc-cfg=rampart_test_vdirsyncer");
    }
    let swaks = std::process::Command::new("swaks")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if swaks {
        println!("cargo::rustc-cfg=rampart_test_swaks");
    }
    let mbsync = std::process::Command::new("mbsync")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if mbsync && python {
        println!("cargo::rustc-cfg=rampart_test_mbsync");
    }
    let offlineimap = std::process::Command::new("offlineimap")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if offlineimap && python {
        println!("cargo::rustc-cfg=rampart_test_offlineimap");
    }
}
