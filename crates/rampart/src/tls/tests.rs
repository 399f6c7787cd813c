//! The first-start certificate as clients meet it: parsed back, verified by
//! rustls' WebPKI verifier, and presented in real TLS handshakes; and its
//! life across starts.

use std::io::{Read, Write};
use std::net::TcpListener;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::sync::Arc;

use rustls::client::danger::ServerCertVerifier;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use time::{Duration, OffsetDateTime};
use x509_parser::extensions::GeneralName;

use super::*;

const HOST: &str = "mail.example.org";
/// Every name a client may reach a default install by.
const NAMES: [&str; 4] = [HOST, "localhost", "127.0.0.1", "::1"];

fn config(data: &Path, hostname: &str) -> Config {
    Config::parse(&format!(
        "[server]\nhostname = \"{hostname}\"\ndata_dir = \"{}\"\n",
        data.display()
    ))
    .unwrap()
}

fn certs(path: &Path) -> Vec<CertificateDer<'static>> {
    rustls_pemfile::certs(&mut &fs::read(path).unwrap()[..])
        .collect::<Result<_, _>>()
        .unwrap()
}

fn roots(path: &Path) -> Arc<rustls::RootCertStore> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in certs(path) {
        roots.add(cert).unwrap();
    }
    Arc::new(roots)
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Verifies the server chain in `files` for `name` as a client trusting
/// the PEM certificates in `trusted` would, at time `at`.
fn verify(
    files: &TlsFiles,
    trusted: &Path,
    name: &str,
    at: OffsetDateTime,
) -> Result<(), rustls::Error> {
    let verifier =
        rustls::client::WebPkiServerVerifier::builder_with_provider(roots(trusted), provider())
            .build()
            .unwrap();
    let chain = certs(&files.cert);
    let at = UnixTime::since_unix_epoch(std::time::Duration::from_secs(at.unix_timestamp() as u64));
    verifier
        .verify_server_cert(
            &chain[0],
            &chain[1..],
            &ServerName::try_from(name).unwrap().to_owned(),
            &[],
            at,
        )
        .map(|_| ())
}

/// A TLS handshake over a real socket, the server loaded from `files`, the
/// client trusting only `trusted` and asking for `name`; then one line each
/// way.
fn handshake(files: &TlsFiles, trusted: &Path, name: &str) -> Result<(), rustls::Error> {
    let server = load(files).unwrap().config;
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let server = std::thread::spawn(move || {
        let (tcp, _) = listener.accept().unwrap();
        let conn = rustls::ServerConnection::new(server).unwrap();
        let mut tls = rustls::StreamOwned::new(conn, tcp);
        let mut buf = [0u8; 5];
        if tls.read_exact(&mut buf).is_ok() {
            let _ = tls.write_all(b"pong\n");
            let _ = tls.flush();
        }
    });
    let client = rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots(trusted))
        .with_no_client_auth();
    let conn = rustls::ClientConnection::new(
        Arc::new(client),
        ServerName::try_from(name).unwrap().to_owned(),
    )
    .unwrap();
    let tcp = std::net::TcpStream::connect(addr).unwrap();
    let mut tls = rustls::StreamOwned::new(conn, tcp);
    let result = tls.write_all(b"ping\n").and_then(|_| {
        let mut reply = [0u8; 5];
        tls.read_exact(&mut reply).map(|_| reply)
    });
    drop(tls);
    server.join().unwrap();
    match result {
        Ok(reply) => {
            assert_eq!(&reply, b"pong\n");
            Ok(())
        }
        Err(e) => Err(*e
            .into_inner()
            .expect("a TLS error")
            .downcast::<rustls::Error>()
            .expect("a rustls error")),
    }
}

fn parse<'a>(der: &'a CertificateDer<'a>) -> x509_parser::certificate::X509Certificate<'a> {
    x509_parser::parse_x509_certificate(der).unwrap().1
}

fn cn(name: &x509_parser::x509::X509Name<'_>) -> String {
    name.iter_common_name()
        .next()
        .unwrap()
        .as_str()
        .unwrap()
        .to_string()
}

#[test]
fn first_start_makes_a_server_certificate_signed_by_a_name_constrained_ca() {
    let dir = tempfile::tempdir().unwrap();
    let now = OffsetDateTime::now_utc();
    let files = prepare_at(&config(dir.path(), HOST), now).unwrap();
    assert!(files.generated);
    assert_eq!(files.cert, dir.path().join("tls/cert.pem"));
    assert_eq!(files.ca.as_deref(), Some(&*dir.path().join("tls/ca.pem")));
    assert!(files.event.clone().unwrap().contains("made on this start"));
    let mode = fs::metadata(&files.key).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600, "the key is private");

    let chain = certs(&files.cert);
    assert_eq!(
        chain.len(),
        2,
        "cert.pem holds the server certificate, then the CA"
    );
    assert_eq!(certs(&dir.path().join("tls/ca.pem")), chain[1..]);
    let leaf = parse(&chain[0]);
    let ca = parse(&chain[1]);

    // The server certificate: CN and SAN name every way to reach it.
    assert_eq!(cn(leaf.subject()), HOST);
    let san = leaf.subject_alternative_name().unwrap().unwrap();
    let mut names: Vec<String> = san
        .value
        .general_names
        .iter()
        .map(|n| match n {
            GeneralName::DNSName(d) => d.to_string(),
            GeneralName::IPAddress(b) if b.len() == 4 => {
                std::net::IpAddr::from(<[u8; 4]>::try_from(&b[..]).unwrap()).to_string()
            }
            GeneralName::IPAddress(b) => {
                std::net::IpAddr::from(<[u8; 16]>::try_from(&b[..]).unwrap()).to_string()
            }
            other => panic!("unexpected name {other:?}"),
        })
        .collect();
    names.sort();
    let mut expected = NAMES.map(String::from).to_vec();
    expected.sort();
    assert_eq!(names, expected);
    // A day of slack for slow clocks, then two years (under Apple's 825 days).
    let validity = leaf.validity();
    assert_eq!(
        validity.not_before.timestamp(),
        (now - Duration::days(1)).unix_timestamp()
    );
    assert_eq!(
        validity.not_after.timestamp(),
        (now + Duration::days(730)).unix_timestamp()
    );
    // RFC 5280 §4.2.1.9 and §4.2.1.12: an end entity for TLS servers.
    assert!(!leaf.basic_constraints().unwrap().unwrap().value.ca);
    assert!(
        leaf.extended_key_usage()
            .unwrap()
            .unwrap()
            .value
            .server_auth
    );
    assert_eq!(leaf.issuer(), ca.subject());

    // The CA: may sign end entities only (path length 0), only for these
    // names (RFC 5280 §4.2.1.10, critical), and says it is Rampart's.
    assert!(cn(ca.subject()).starts_with("Rampart local CA for mail.example.org"));
    let basic = ca.basic_constraints().unwrap().unwrap();
    assert!(basic.critical && basic.value.ca);
    assert_eq!(basic.value.path_len_constraint, Some(0));
    let constraints = ca.name_constraints().unwrap().unwrap();
    assert!(constraints.critical);
    let permitted: Vec<String> = constraints
        .value
        .permitted_subtrees
        .as_ref()
        .unwrap()
        .iter()
        .map(|s| match &s.base {
            GeneralName::DNSName(d) => d.to_string(),
            GeneralName::IPAddress(b) => format!("{b:02x?}"),
            other => panic!("unexpected subtree {other:?}"),
        })
        .collect();
    assert_eq!(
        permitted,
        [
            HOST.to_string(),
            "localhost".into(),
            format!("{:02x?}", [127u8, 0, 0, 1, 255, 255, 255, 255]),
            format!("{:02x?}", {
                let mut b = [0u8; 32];
                b[15] = 1;
                b[16..].fill(0xff);
                b
            }),
        ]
    );
    assert!(constraints.value.excluded_subtrees.is_none());
    // Nothing but the three PEM files; the CA key is nowhere.
    let mut written: Vec<String> = fs::read_dir(dir.path().join("tls"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    written.sort();
    assert_eq!(written, ["ca.pem", "cert.pem", "key.pem"]);
}

#[test]
fn the_chain_verifies_for_every_name_and_no_other() {
    let dir = tempfile::tempdir().unwrap();
    let now = OffsetDateTime::now_utc();
    let files = prepare_at(&config(dir.path(), HOST), now).unwrap();
    let ca = dir.path().join("tls/ca.pem");
    for name in NAMES {
        verify(&files, &ca, name, now).unwrap_or_else(|e| panic!("{name}: {e}"));
    }
    for name in ["other.example.org", "example.org", "127.0.0.2", "::2"] {
        let err = verify(&files, &ca, name, now).unwrap_err();
        assert!(
            matches!(
                err,
                rustls::Error::InvalidCertificate(rustls::CertificateError::NotValidForName)
                    | rustls::Error::InvalidCertificate(
                        rustls::CertificateError::NotValidForNameContext { .. }
                    )
            ),
            "{name}: {err:?}"
        );
    }
    // Outside its validity the chain does not verify.
    let expired = verify(&files, &ca, HOST, now + Duration::days(731)).unwrap_err();
    assert!(
        matches!(
            expired,
            rustls::Error::InvalidCertificate(
                rustls::CertificateError::Expired | rustls::CertificateError::ExpiredContext { .. }
            )
        ),
        "{expired:?}"
    );
}

#[test]
fn a_hostname_that_is_an_ip_address_goes_in_as_one() {
    let dir = tempfile::tempdir().unwrap();
    let now = OffsetDateTime::now_utc();
    let files = prepare_at(&config(dir.path(), "192.0.2.7"), now).unwrap();
    let ca = dir.path().join("tls/ca.pem");
    for name in ["192.0.2.7", "localhost", "127.0.0.1", "::1"] {
        verify(&files, &ca, name, now).unwrap_or_else(|e| panic!("{name}: {e}"));
    }
}

#[test]
fn an_internationalised_hostname_goes_in_as_its_a_label() {
    let dir = tempfile::tempdir().unwrap();
    let now = OffsetDateTime::now_utc();
    let files = prepare_at(&config(dir.path(), "Mäil.Example.ORG."), now).unwrap();
    let leaf = certs(&files.cert);
    let name = cn(parse(&leaf[0]).subject());
    // RFC 5891 §4.4: the A-label is "xn--" and the Punycode of the U-label.
    assert!(
        name.starts_with("xn--") && name.ends_with(".example.org") && name.is_ascii(),
        "{name}"
    );
    verify(&files, &dir.path().join("tls/ca.pem"), &name, now).unwrap();
}

#[test]
fn handshakes_succeed_for_every_name_trusting_ca_pem_or_cert_pem() {
    let dir = tempfile::tempdir().unwrap();
    let files = prepare(&config(dir.path(), HOST)).unwrap();
    for trusted in [dir.path().join("tls/ca.pem"), files.cert.clone()] {
        for name in NAMES {
            handshake(&files, &trusted, name)
                .unwrap_or_else(|e| panic!("{name} trusting {}: {e}", trusted.display()));
        }
    }
    let err = handshake(&files, &dir.path().join("tls/ca.pem"), "other.example.org").unwrap_err();
    assert!(
        matches!(err, rustls::Error::InvalidCertificate(_)),
        "{err:?}"
    );
}

#[test]
fn a_second_start_keeps_the_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let config = config(dir.path(), HOST);
    let first = prepare(&config).unwrap();
    let pem = fs::read(&first.cert).unwrap();
    let second = prepare(&config).unwrap();
    assert!(second.event.is_none(), "{:?}", second.event);
    assert_eq!(second.ca, first.ca);
    assert_eq!(fs::read(&second.cert).unwrap(), pem);
    assert!(!dir.path().join("tls/cert.pem.old").exists());
}

/// Starts once as of `made`, then again as of `now` with `hostname`, and
/// returns the second start's files and the first start's PEM files.
fn restart(
    dir: &Path,
    made: OffsetDateTime,
    hostname: &str,
    now: OffsetDateTime,
) -> (TlsFiles, [Vec<u8>; 3]) {
    let first = prepare_at(&config(dir, HOST), made).unwrap();
    let old = [
        fs::read(&first.cert).unwrap(),
        fs::read(&first.key).unwrap(),
        fs::read(dir.join("tls/ca.pem")).unwrap(),
    ];
    (prepare_at(&config(dir, hostname), now).unwrap(), old)
}

/// Asserts the files were replaced, the old ones kept as *.old.
fn assert_replaced(dir: &Path, files: &TlsFiles, old: &[Vec<u8>; 3]) {
    let tls = dir.join("tls");
    for (name, old) in ["cert.pem", "key.pem", "ca.pem"].iter().zip(old) {
        assert_eq!(
            &fs::read(tls.join(format!("{name}.old"))).unwrap(),
            old,
            "{name}.old"
        );
        assert_ne!(&fs::read(tls.join(name)).unwrap(), old, "{name} replaced");
    }
    let mode = fs::metadata(&files.key).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
    assert!(files.ca.is_some());
    load(files).expect("the new pair loads");
}

#[test]
fn a_changed_hostname_replaces_the_certificate_and_keeps_the_old_one() {
    let dir = tempfile::tempdir().unwrap();
    let now = OffsetDateTime::now_utc();
    let (files, old) = restart(dir.path(), now, "mx.example.net", now);
    assert_replaced(dir.path(), &files, &old);
    let event = files.event.clone().unwrap();
    assert!(
        event.contains("server.hostname is now \"mx.example.net\""),
        "{event}"
    );
    verify(
        &files,
        &dir.path().join("tls/ca.pem"),
        "mx.example.net",
        now,
    )
    .unwrap();
    assert!(verify(&files, &dir.path().join("tls/ca.pem"), HOST, now).is_err());
}

#[test]
fn a_certificate_expiring_within_30_days_is_replaced() {
    let dir = tempfile::tempdir().unwrap();
    let now = OffsetDateTime::now_utc();
    // Made 701 days ago: 29 days left.
    let (files, old) = restart(dir.path(), now - Duration::days(701), HOST, now);
    assert_replaced(dir.path(), &files, &old);
    assert!(files.event.clone().unwrap().contains("it expires on"));
    let leaf = certs(&files.cert);
    assert_eq!(
        parse(&leaf[0]).validity().not_after.timestamp(),
        (now + Duration::days(730)).unix_timestamp()
    );
}

#[test]
fn a_certificate_with_more_than_30_days_left_is_kept() {
    let dir = tempfile::tempdir().unwrap();
    let now = OffsetDateTime::now_utc();
    // Made 699 days ago: 31 days left.
    let (files, old) = restart(dir.path(), now - Duration::days(699), HOST, now);
    assert!(files.event.is_none(), "{:?}", files.event);
    assert_eq!(fs::read(&files.cert).unwrap(), old[0]);
}

/// Writes a certificate the way Rampart 0.1 did on first start.
fn write_old_rcgen_pair(cert: &Path, key: &Path) {
    let old = rcgen::generate_simple_self_signed(vec![HOST.into(), "localhost".into()]).unwrap();
    fs::create_dir_all(cert.parent().unwrap()).unwrap();
    fs::write(cert, old.cert.pem()).unwrap();
    fs::write(key, old.signing_key.serialize_pem()).unwrap();
}

#[test]
fn an_earlier_rampart_certificate_is_replaced() {
    let dir = tempfile::tempdir().unwrap();
    let tls = dir.path().join("tls");
    write_old_rcgen_pair(&tls.join("cert.pem"), &tls.join("key.pem"));
    let old = [
        fs::read(tls.join("cert.pem")).unwrap(),
        fs::read(tls.join("key.pem")).unwrap(),
    ];
    let files = prepare(&config(dir.path(), HOST)).unwrap();
    assert!(files.event.clone().unwrap().contains("earlier Rampart"));
    assert_eq!(fs::read(tls.join("cert.pem.old")).unwrap(), old[0]);
    assert_eq!(fs::read(tls.join("key.pem.old")).unwrap(), old[1]);
    assert!(!tls.join("ca.pem.old").exists(), "there was no ca.pem");
    for name in NAMES {
        handshake(&files, &tls.join("ca.pem"), name).unwrap();
    }
}

#[test]
fn a_configured_certificate_is_never_touched() {
    let dir = tempfile::tempdir().unwrap();
    let own = dir.path().join("etc");
    let (cert, key) = (own.join("fullchain.pem"), own.join("privkey.pem"));
    // Even one that looks exactly like a stale generated one.
    write_old_rcgen_pair(&cert, &key);
    let before = fs::read(&cert).unwrap();
    let data = dir.path().join("data");
    let config = Config::parse(&format!(
        "[server]\nhostname = \"{HOST}\"\ndata_dir = \"{}\"\n[tls]\ncert = \"{}\"\nkey = \"{}\"\n",
        data.display(),
        cert.display(),
        key.display()
    ))
    .unwrap();
    let files = prepare(&config).unwrap();
    assert!(!files.generated && files.ca.is_none() && files.event.is_none());
    assert_eq!(files.cert, cert);
    assert_eq!(fs::read(&cert).unwrap(), before);
    let mut left: Vec<_> = fs::read_dir(&own)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    left.sort();
    assert_eq!(left, ["fullchain.pem", "privkey.pem"]);
    assert!(!data.join("tls").exists());
}

#[test]
fn a_certificate_someone_else_put_in_data_tls_is_left_alone() {
    let dir = tempfile::tempdir().unwrap();
    let tls = dir.path().join("tls");
    fs::create_dir_all(&tls).unwrap();
    // Made by another tool, for another name, expiring tomorrow.
    let mut params = rcgen::CertificateParams::new(vec!["other.example.org".into()]).unwrap();
    params.distinguished_name = rcgen::DistinguishedName::new();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "other.example.org");
    params.not_after = OffsetDateTime::now_utc() + Duration::days(1);
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = params.self_signed(&key).unwrap();
    fs::write(tls.join("cert.pem"), cert.pem()).unwrap();
    fs::write(tls.join("key.pem"), key.serialize_pem()).unwrap();
    let files = prepare(&config(dir.path(), HOST)).unwrap();
    assert!(files.event.is_none() && files.ca.is_none());
    assert_eq!(fs::read(&files.cert).unwrap(), cert.pem().as_bytes());
    assert!(!tls.join("cert.pem.old").exists());
    assert_eq!(load(&files).unwrap().fingerprint, fingerprint(cert.der()));
}

#[test]
fn fingerprint_is_colon_separated_upper_case_sha256() {
    // FIPS 180-2, appendix B.1: SHA-256("abc").
    assert_eq!(
        fingerprint(b"abc"),
        "BA:78:16:BF:8F:01:CF:EA:41:41:40:DE:5D:AE:22:23:\
         B0:03:61:A3:96:17:7A:9C:B4:10:FF:61:F2:00:15:AD"
    );
    // The banner's is the server certificate's, not the CA's.
    let dir = tempfile::tempdir().unwrap();
    let files = prepare(&config(dir.path(), HOST)).unwrap();
    let loaded = load(&files).unwrap();
    assert_eq!(loaded.fingerprint, fingerprint(&certs(&files.cert)[0]));
}
