//! The MTA-STS policy fetch (RFC 8461 §3.3) against a real HTTPS server on
//! a socket: a tiny rustls listener that answers each request with a
//! canned HTTP/1.1 response, so that every framing an origin server may use
//! (Content-Length, chunked, close-delimited) and every way to get it wrong
//! can be served exactly.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rampart_smtp::mta_sts::{Mode, fetch};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_rustls::rustls;

const DOMAIN: &str = "example.test";
const POLICY: &str = "version: STSv1\r\nmode: enforce\r\nmx: mx1.example.test\r\nmx: *.mx.example.test\r\nmax_age: 604800\r\n";

/// What the test server sends after reading a request head.
#[derive(Clone)]
enum Answer {
    /// These bytes, then a clean TLS close.
    Bytes(Vec<u8>),
    /// This head, then chunks of padding for as long as the client reads.
    Endless(String),
    /// Nothing at all: the connection stays open and silent.
    Silent,
}

struct Pki {
    ca: rustls::pki_types::CertificateDer<'static>,
    issuer: rcgen::Issuer<'static, rcgen::KeyPair>,
}

fn pki() -> Pki {
    use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
    let key = KeyPair::generate().unwrap();
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca = params.self_signed(&key).unwrap();
    Pki {
        ca: ca.der().clone(),
        issuer: Issuer::new(params, key),
    }
}

fn client_config(pki: &Pki) -> Arc<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(pki.ca.clone()).unwrap();
    Arc::new(
        rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth(),
    )
}

/// The test server: its address, the request heads it read, and how many.
struct Server {
    addr: SocketAddr,
    requests: Arc<Mutex<Vec<String>>>,
    connections: Arc<AtomicUsize>,
}

async fn serve(pki: &Pki, names: &[&str], answer: Answer) -> Server {
    let key = rcgen::KeyPair::generate().unwrap();
    let params =
        rcgen::CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>())
            .unwrap();
    let cert = params.signed_by(&key, &pki.issuer).unwrap();
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(
        vec![cert.der().clone()],
        rustls::pki_types::PrivateKeyDer::Pkcs8(key.serialize_der().into()),
    )
    .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let server = Server {
        addr: listener.local_addr().unwrap(),
        requests: Default::default(),
        connections: Default::default(),
    };
    let (requests, connections) = (server.requests.clone(), server.connections.clone());
    tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                return;
            };
            connections.fetch_add(1, Ordering::SeqCst);
            let (acceptor, answer, requests) = (acceptor.clone(), answer.clone(), requests.clone());
            tokio::spawn(async move {
                let Ok(mut tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let mut head = Vec::new();
                let mut byte = [0u8; 1];
                while !head.ends_with(b"\r\n\r\n") {
                    if tls.read(&mut byte).await.unwrap_or(0) == 0 {
                        return;
                    }
                    head.push(byte[0]);
                }
                requests
                    .lock()
                    .unwrap()
                    .push(String::from_utf8_lossy(&head).into_owned());
                match answer {
                    Answer::Bytes(bytes) => {
                        let _ = tls.write_all(&bytes).await;
                        let _ = tls.shutdown().await;
                    }
                    Answer::Endless(head) => {
                        let _ = tls.write_all(head.as_bytes()).await;
                        let chunk = format!("400\r\n{}\r\n", "#".repeat(0x400));
                        while tls.write_all(chunk.as_bytes()).await.is_ok() {}
                    }
                    Answer::Silent => {
                        let _ = tls.read(&mut byte).await;
                    }
                }
            });
        }
    });
    server
}

fn bytes(s: &str) -> Answer {
    Answer::Bytes(s.as_bytes().to_vec())
}

async fn fetch_from(server: &Server, pki: &Pki) -> Result<rampart_smtp::mta_sts::Policy, String> {
    fetch(
        DOMAIN,
        &[server.addr],
        client_config(pki),
        Duration::from_secs(30),
    )
    .await
}

#[tokio::test]
async fn a_policy_with_content_length_is_fetched_from_the_well_known_path() {
    let pki = pki();
    let server = serve(
        &pki,
        &["mta-sts.example.test"],
        bytes(&format!(
            "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n\r\n{POLICY}",
            POLICY.len()
        )),
    )
    .await;
    let policy = fetch_from(&server, &pki).await.unwrap();
    assert_eq!(policy.mode, Mode::Enforce);
    assert_eq!(policy.mx, ["mx1.example.test", "*.mx.example.test"]);
    assert_eq!(policy.max_age, 604_800);
    let requests = server.requests.lock().unwrap();
    assert!(
        requests[0].starts_with("GET /.well-known/mta-sts.txt HTTP/1.1\r\n"),
        "{}",
        requests[0]
    );
    assert!(
        requests[0]
            .to_ascii_lowercase()
            .contains("\r\nhost: mta-sts.example.test\r\n"),
        "{}",
        requests[0]
    );
}

#[tokio::test]
async fn a_chunked_policy_with_a_charset_is_fetched() {
    let pki = pki();
    let (a, b) = POLICY.split_at(20);
    let server = serve(
        &pki,
        &["mta-sts.example.test"],
        bytes(&format!(
            "HTTP/1.1 200 OK\r\nContent-Type: text/plain; charset=utf-8\r\nTransfer-Encoding: chunked\r\n\r\n\
             {:x}\r\n{a}\r\n{:x}\r\n{b}\r\n0\r\n\r\n",
            a.len(),
            b.len()
        )),
    )
    .await;
    let policy = fetch_from(&server, &pki).await.unwrap();
    assert_eq!(policy.mode, Mode::Enforce);
    assert_eq!(policy.mx.len(), 2);
}

#[tokio::test]
async fn a_close_delimited_policy_is_fetched() {
    let pki = pki();
    let server = serve(
        &pki,
        &["mta-sts.example.test"],
        bytes(&format!(
            "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nConnection: close\r\n\r\n{POLICY}"
        )),
    )
    .await;
    assert_eq!(fetch_from(&server, &pki).await.unwrap().mode, Mode::Enforce);
}

/// RFC 8461 §3.3: "HTTP 3xx redirects MUST NOT be followed".
#[tokio::test]
async fn a_redirect_is_a_failure_and_is_not_followed() {
    let pki = pki();
    let server = serve(
        &pki,
        &["mta-sts.example.test"],
        bytes(
            "HTTP/1.1 301 Moved Permanently\r\nLocation: https://mta-sts.example.test/policy.txt\r\n\
             Content-Type: text/plain\r\nContent-Length: 0\r\n\r\n",
        ),
    )
    .await;
    let err = fetch_from(&server, &pki).await.unwrap_err();
    assert!(err.contains("301") && err.contains("redirect"), "{err}");
    assert_eq!(server.requests.lock().unwrap().len(), 1);
    assert_eq!(server.connections.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn a_policy_not_served_as_text_plain_is_refused() {
    let pki = pki();
    for content_type in [
        "Content-Type: text/html\r\n",
        "Content-Type: application/octet-stream\r\n",
        "",
    ] {
        let server = serve(
            &pki,
            &["mta-sts.example.test"],
            bytes(&format!(
                "HTTP/1.1 200 OK\r\n{content_type}Content-Length: {}\r\n\r\n{POLICY}",
                POLICY.len()
            )),
        )
        .await;
        let err = fetch_from(&server, &pki).await.unwrap_err();
        assert!(
            err.contains("not text/plain") || err.contains("without a Content-Type"),
            "{content_type}: {err}"
        );
    }
}

/// The body is read only up to 64 KB: an endless one fails on its size
/// (not on the timeout, which is far off), declared or not.
#[tokio::test]
async fn a_policy_over_64_kb_is_refused_without_reading_it_all() {
    let pki = pki();
    let server = serve(
        &pki,
        &["mta-sts.example.test"],
        Answer::Endless(format!(
            "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nTransfer-Encoding: chunked\r\n\r\n{:x}\r\n{POLICY}\r\n",
            POLICY.len()
        )),
    )
    .await;
    let err = fetch_from(&server, &pki).await.unwrap_err();
    assert!(err.contains("larger than 64 KB"), "{err}");

    let big = format!("{POLICY}{}", "#".repeat(64 * 1024));
    let server = serve(
        &pki,
        &["mta-sts.example.test"],
        bytes(&format!(
            "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n\r\n{big}",
            big.len()
        )),
    )
    .await;
    let err = fetch_from(&server, &pki).await.unwrap_err();
    assert!(err.contains("larger than 64 KB"), "{err}");
}

/// A connection cut short must not pass for a shorter policy.
#[tokio::test]
async fn a_body_cut_short_is_refused() {
    let pki = pki();
    let server = serve(
        &pki,
        &["mta-sts.example.test"],
        bytes(&format!(
            "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n\r\n{POLICY}",
            POLICY.len() + 40
        )),
    )
    .await;
    assert!(fetch_from(&server, &pki).await.is_err());
    let server = serve(
        &pki,
        &["mta-sts.example.test"],
        bytes(&format!(
            "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nTransfer-Encoding: chunked\r\n\r\n{:x}\r\n{POLICY}\r\n",
            POLICY.len()
        )),
    )
    .await;
    assert!(fetch_from(&server, &pki).await.is_err());
}

#[tokio::test]
async fn the_certificate_must_be_valid_for_the_policy_host() {
    let pki = pki();
    let answer = bytes(&format!(
        "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n\r\n{POLICY}",
        POLICY.len()
    ));
    // A certificate from the trusted CA, but for another name.
    let server = serve(&pki, &["example.test", "www.example.test"], answer.clone()).await;
    let err = fetch_from(&server, &pki).await.unwrap_err();
    assert!(err.contains("TLS"), "{err}");
    assert!(server.requests.lock().unwrap().is_empty());
    // The right name, from a CA nobody trusts.
    let untrusted = self::pki();
    let server = serve(&untrusted, &["mta-sts.example.test"], answer).await;
    let err = fetch_from(&server, &pki).await.unwrap_err();
    assert!(err.contains("TLS"), "{err}");
}

#[tokio::test]
async fn a_silent_server_times_out_and_the_next_address_is_tried() {
    let pki = pki();
    let silent = serve(&pki, &["mta-sts.example.test"], Answer::Silent).await;
    let err = fetch(
        DOMAIN,
        &[silent.addr],
        client_config(&pki),
        Duration::from_secs(1),
    )
    .await
    .unwrap_err();
    assert!(err.contains("timed out"), "{err}");
    let good = serve(
        &pki,
        &["mta-sts.example.test"],
        bytes(&format!(
            "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n\r\n{POLICY}",
            POLICY.len()
        )),
    )
    .await;
    let policy = fetch(
        DOMAIN,
        &[silent.addr, good.addr],
        client_config(&pki),
        Duration::from_secs(1),
    )
    .await
    .unwrap();
    assert_eq!(policy.mode, Mode::Enforce);
}
