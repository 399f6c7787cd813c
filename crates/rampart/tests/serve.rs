//! `rampart serve` as a newcomer meets it, and the start-up faults an
//! operator meets: each must name the thing and the fix, exit non-zero and
//! overwrite nothing.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::Arc;
use std::time::Duration;

use common::*;

/// Opens a TLS connection that trusts only the server's own certificate, for `localhost`.
fn tls_connect(
    addr: std::net::SocketAddr,
    cert_pem: &[u8],
) -> rustls::StreamOwned<rustls::ClientConnection, std::net::TcpStream> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls_pemfile::certs(&mut &cert_pem[..]) {
        roots.add(cert.unwrap()).unwrap();
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let conn =
        rustls::ClientConnection::new(Arc::new(config), "localhost".try_into().unwrap()).unwrap();
    let tcp = std::net::TcpStream::connect(addr).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    rustls::StreamOwned::new(conn, tcp)
}

#[test]
fn first_start_prints_services_and_credentials_and_second_start_reuses_them() {
    let sb = Sandbox::new();
    let server = sb.serve(&["--domain", "example.org"]);
    for s in SERVICES {
        let addr = server.addr(s);
        assert!(addr.ip().is_loopback(), "{s} must bind loopback: {addr}");
    }
    let address = server.printed("address:").expect("admin address printed");
    let password = server.printed("password:").expect("admin password printed");
    assert_eq!(address, "admin@example.org");
    assert!(password.len() >= 20, "password {password:?} too short");

    // Plain-text services answer with their protocol's own words.
    assert!(read_line_tcp(server.addr("smtp")).starts_with("220 localhost ESMTP"));
    assert!(read_line_tcp(server.addr("submission")).starts_with("220 "));
    let imap = read_line_tcp(server.addr("imap"));
    assert!(
        imap.starts_with("* OK [CAPABILITY IMAP4rev1 IMAP4rev2 STARTTLS LOGINDISABLED"),
        "{imap:?}"
    );

    // TLS services present the self-signed certificate made on first start.
    let cert = file_bytes(&sb.data().join("tls/cert.pem"));
    let mut imaps = tls_connect(server.addr("imaps"), &cert);
    let mut line = String::new();
    BufReader::new(&mut imaps).read_line(&mut line).unwrap();
    assert!(
        line.starts_with("* OK [CAPABILITY IMAP4rev1 IMAP4rev2 AUTH=PLAIN"),
        "{line:?}"
    );
    let mut https = tls_connect(server.addr("https"), &cert);
    https
        .write_all(b"GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut response = String::new();
    let _ = https.read_to_string(&mut response);
    // CalDAV/CardDAV: a challenge before anything else (DAVx5, Apple).
    assert!(response.starts_with("HTTP/1.1 401 "), "{response:?}");
    assert!(
        response
            .to_ascii_lowercase()
            .contains("www-authenticate: basic realm=\"rampart\""),
        "{response:?}"
    );

    // The printed credentials are real: the CLI sees the administrator.
    let users = sb.ok(&["user", "list"], "");
    assert!(
        users.contains("admin@example.org") && users.contains("admin"),
        "{users}"
    );

    assert!(
        server.stop().success(),
        "SIGTERM must end the server cleanly"
    );

    let server = sb.serve(&[]);
    assert!(
        server.printed("password:").is_none(),
        "second start printed a new password"
    );
    assert!(
        server
            .banner
            .iter()
            .any(|l| l.contains("no new credentials"))
    );
    assert!(server.stop().success());
}

#[test]
fn a_service_without_addresses_is_off() {
    let sb = Sandbox::custom("imap = []\nimaps = []\n", "");
    let server = sb.serve(&[]);
    assert!(!server.services.contains_key("imap"));
    assert!(server.banner.iter().any(|l| l.trim() == "imap         off"));
    assert!(server.services.contains_key("smtp"));
    assert!(server.stop().success());
}

#[test]
fn port_in_use_is_named_with_the_fix() {
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let sb = Sandbox::custom(&format!("smtp = [\"127.0.0.1:{port}\"]\n"), "");
    let err = sb.fails(&["serve"], "");
    assert!(
        err.contains(&format!("cannot listen for smtp on 127.0.0.1:{port}"))
            && err.contains("already in use")
            && err.contains("listen.smtp"),
        "{err}"
    );
}

#[test]
fn unreadable_certificate_is_named() {
    let sb = Sandbox::custom(
        "",
        "[tls]\ncert = \"/nonexistent/cert.pem\"\nkey = \"/nonexistent/key.pem\"\n",
    );
    let err = sb.fails(&["serve"], "");
    assert!(
        err.contains("cannot read TLS certificate /nonexistent/cert.pem") && err.contains("[tls]"),
        "{err}"
    );
    // A certificate file that is not PEM.
    let sb = Sandbox::new();
    let bad = sb.dir.path().join("bad.pem");
    std::fs::write(&bad, "not a certificate").unwrap();
    let config = std::fs::read_to_string(sb.config_path()).unwrap();
    sb.write_config(&format!(
        "{config}[tls]\ncert = \"{0}\"\nkey = \"{0}\"\n",
        bad.display()
    ));
    let err = sb.fails(&["serve"], "");
    assert!(
        err.contains("bad.pem") && err.contains("no certificate"),
        "{err}"
    );
}

#[test]
fn corrupt_database_is_refused_and_left_alone() {
    let sb = Sandbox::new();
    std::fs::create_dir_all(sb.data().join("blobs")).unwrap();
    let db = sb.data().join("rampart.db");
    let garbage =
        b"this is not an sqlite database, it is a text file that lost its way".repeat(100);
    std::fs::write(&db, &garbage).unwrap();
    let err = sb.fails(&["serve"], "");
    assert!(
        err.contains("rampart.db") && err.contains("restore it from a backup"),
        "{err}"
    );
    assert_eq!(file_bytes(&db), garbage, "the corrupt file was changed");
    let err = sb.fails(&["user", "list"], "");
    assert!(err.contains("restore it from a backup"), "{err}");
}

#[test]
fn missing_database_beside_blobs_is_refused() {
    let sb = Sandbox::new();
    std::fs::create_dir_all(sb.data().join("blobs/ab")).unwrap();
    let err = sb.fails(&["serve"], "");
    assert!(
        err.contains("no rampart.db") && err.contains("restore it from a backup"),
        "{err}"
    );
    assert!(
        !sb.data().join("rampart.db").exists(),
        "a new database was created"
    );
}

#[test]
fn missing_store_for_cli_says_how_to_create_it() {
    let sb = Sandbox::new();
    let err = sb.fails(&["domain", "list"], "");
    assert!(
        err.contains("there is no Rampart store") && err.contains("rampart serve"),
        "{err}"
    );
    assert!(!sb.data().exists(), "the CLI created a data directory");
}

#[test]
fn newer_schema_is_refused() {
    let sb = Sandbox::new();
    sb.ok(&["init"], "");
    let conn = rusqlite::Connection::open(sb.data().join("rampart.db")).unwrap();
    conn.execute(
        "UPDATE meta SET value = '42' WHERE key = 'schema_version'",
        [],
    )
    .unwrap();
    drop(conn);
    let err = sb.fails(&["serve"], "");
    assert!(
        err.contains("schema version 42") && err.contains("newer than this binary"),
        "{err}"
    );
}

#[test]
fn data_dir_that_is_a_file_is_refused() {
    let sb = Sandbox::new();
    std::fs::write(sb.data(), "x").unwrap();
    let err = sb.fails(&["serve"], "");
    assert!(err.contains("not a directory"), "{err}");
}

#[test]
fn config_errors_name_the_key() {
    let sb = Sandbox::new();
    sb.write_config("[server]\nhostname = \"mail.example.org\"\nlisten_here = true\n");
    let err = sb.fails(&["serve"], "");
    assert!(
        err.contains("listen_here") && err.contains("rampart.toml"),
        "{err}"
    );
    sb.write_config("[limits]\nmax_message_bytes = \"big\"\n");
    let err = sb.fails(&["serve"], "");
    assert!(err.contains("max_message_bytes"), "{err}");
    assert!(!sb.data().exists(), "a bad config must not create anything");
}

#[test]
fn help_is_complete_for_every_command() {
    let top = rampart().arg("--help").output().unwrap();
    assert!(top.status.success());
    let text = String::from_utf8(top.stdout).unwrap();
    for sub in ["serve", "init", "domain", "user", "alias", "group", "mail"] {
        assert!(text.contains(sub), "--help lacks {sub}");
    }
    for args in [
        &["serve", "--help"][..],
        &["domain", "add", "--help"],
        &["domain", "list", "--help"],
        &["domain", "remove", "--help"],
        &["user", "add", "--help"],
        &["user", "list", "--help"],
        &["user", "passwd", "--help"],
        &["user", "disable", "--help"],
        &["user", "enable", "--help"],
        &["user", "quota", "--help"],
        &["user", "remove", "--help"],
        &["alias", "add", "--help"],
        &["alias", "remove", "--help"],
        &["alias", "list", "--help"],
        &["group", "add", "--help"],
        &["group", "members", "--help"],
        &["mail", "import", "--help"],
    ] {
        let out = rampart().args(args).output().unwrap();
        assert!(out.status.success(), "{args:?}");
        let text = String::from_utf8(out.stdout).unwrap();
        assert!(text.contains("Usage: rampart"), "{args:?}: {text}");
        assert!(!text.contains("TODO"), "{args:?}");
    }
}

#[test]
fn drops_root_to_run_as_user() {
    if !nix::unistd::getuid().is_root() {
        eprintln!("skipped: needs root to test dropping privileges");
        return;
    }
    let Ok(Some(nobody)) = nix::unistd::User::from_name("nobody") else {
        eprintln!("skipped: no user 'nobody' on this machine");
        return;
    };
    let sb = Sandbox::custom("", "[server]\nrun_as = \"nobody\"\n");
    // The sandbox lives in a root-only temp directory: let nobody reach its data.
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(sb.dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let server = sb.serve(&[]);
    let status = std::fs::read_to_string(format!("/proc/{}/status", server.child.id())).unwrap();
    let uids = status.lines().find(|l| l.starts_with("Uid:")).unwrap();
    let want = nobody.uid.as_raw().to_string();
    assert!(
        uids.split_whitespace().skip(1).all(|u| u == want),
        "still privileged: {uids}"
    );
    use std::os::unix::fs::MetadataExt;
    let db_owner = std::fs::metadata(sb.data().join("rampart.db"))
        .unwrap()
        .uid();
    assert_eq!(db_owner, nobody.uid.as_raw());
    assert!(server.stop().success());
}
