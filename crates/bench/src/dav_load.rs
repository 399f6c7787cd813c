//! CalDAV load client for bench/dav: the same requests to any CalDAV server
//! (Rampart, Radicale, Cyrus), over TLS with keep-alive connections.
//!
//! Steps: MKCALENDAR; PUT `--events` events (one in ten a weekly series)
//! from `--clients` connections; a calendar-query for one month (with
//! calendar-data, as clients ask); the initial sync-collection; 10 changes
//! then the delta sync-collection; a calendar-multiget of 100. Each read is
//! repeated and the median printed, as `name=value` lines.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use bytes::Bytes;
use clap::Parser;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

#[derive(Parser, Debug)]
struct Args {
    /// host:port of the server.
    #[arg(long)]
    server: String,
    /// Path of the calendar to make and fill, ending in `/`.
    #[arg(long)]
    calendar: String,
    #[arg(long)]
    user: String,
    #[arg(long)]
    password: String,
    /// CA certificate that signed the server's.
    #[arg(long)]
    ca: Option<std::path::PathBuf>,
    /// Plain HTTP (for a peer that serves DAV only so on loopback).
    #[arg(long)]
    plain: bool,
    #[arg(long, default_value_t = 10_000)]
    events: usize,
    #[arg(long, default_value_t = 8)]
    clients: usize,
    /// Repetitions of each timed read.
    #[arg(long, default_value_t = 7)]
    repeat: usize,
}

struct Conn {
    send: SendRequest<Full<Bytes>>,
    host: String,
    auth: String,
    tls: Option<tokio_rustls::TlsConnector>,
    /// Connections opened, the first included (a server that closes
    /// after each response costs a TLS handshake per request).
    opened: usize,
}

async fn connect(
    server: &str,
    tls: &Option<tokio_rustls::TlsConnector>,
) -> anyhow::Result<SendRequest<Full<Bytes>>> {
    let tcp = TcpStream::connect(server).await?;
    tcp.set_nodelay(true)?;
    let Some(tls) = tls else {
        let (send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp)).await?;
        tokio::spawn(conn);
        return Ok(send);
    };
    let name = rustls::pki_types::ServerName::try_from("localhost".to_owned())?;
    let stream = tls.connect(name, tcp).await?;
    let (send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(conn);
    Ok(send)
}

impl Conn {
    async fn open(args: &Args, tls: &Option<tokio_rustls::TlsConnector>) -> anyhow::Result<Conn> {
        let send = connect(&args.server, tls).await?;
        Conn::with(args, tls, send)
    }

    fn with(
        args: &Args,
        tls: &Option<tokio_rustls::TlsConnector>,
        send: SendRequest<Full<Bytes>>,
    ) -> anyhow::Result<Conn> {
        use base64::Engine;
        let auth = format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD
                .encode(format!("{}:{}", args.user, args.password))
        );
        Ok(Conn {
            send,
            host: args.server.clone(),
            auth,
            tls: tls.clone(),
            opened: 1,
        })
    }

    async fn request(
        &mut self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: String,
    ) -> anyhow::Result<(u16, String)> {
        let mut req = hyper::Request::builder()
            .method(method)
            .uri(path)
            .header("Host", &self.host)
            .header("Authorization", &self.auth)
            .header("Content-Length", body.len());
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let req = req.body(Full::new(Bytes::from(body)))?;
        if self.send.ready().await.is_err() {
            self.send = connect(&self.host, &self.tls).await?;
            self.opened += 1;
            self.send.ready().await?;
        }
        let resp = self.send.send_request(req).await?;
        let status = resp.status().as_u16();
        let body = resp.into_body().collect().await?.to_bytes();
        Ok((status, String::from_utf8_lossy(&body).into_owned()))
    }
}

const DAY_MS: i64 = 86_400_000;
/// 2026-01-01T00:00:00Z.
const YEAR_START: i64 = 1_767_225_600_000;

fn stamp(ms: i64) -> String {
    let secs = ms / 1000;
    let days = secs / 86_400;
    let rest = secs % 86_400;
    // Civil date from days (Hinnant).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}{m:02}{d:02}T{:02}{:02}{:02}Z",
        rest / 3600,
        rest % 3600 / 60,
        rest % 60
    )
}

/// Event `i` of `n`, spread over 2026 in business hours.
fn event(i: usize, n: usize, revision: usize) -> String {
    let day = (i as i64 * 365 / n.max(1) as i64) % 365;
    let hour = 8 + (i as i64 % 9);
    let start = YEAR_START + day * DAY_MS + hour * 3_600_000;
    let rrule = if i.is_multiple_of(10) {
        "RRULE:FREQ=WEEKLY;COUNT=10\r\n"
    } else {
        ""
    };
    format!(
        "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//Rampart bench//EN\r\nBEGIN:VEVENT\r\nUID:bench-{i}@example.org\r\nDTSTAMP:20260101T000000Z\r\nDTSTART:{}\r\nDTEND:{}\r\n{rrule}SUMMARY:Meeting {i} revision {revision}\r\nLOCATION:Room {}\r\nDESCRIPTION:Agenda for meeting {i}: budget, roads, schools and the town fair.\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n",
        stamp(start),
        stamp(start + 3_600_000),
        i % 40
    )
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

fn sync_body(token: &str) -> String {
    format!(
        r#"<?xml version="1.0" encoding="utf-8"?><D:sync-collection xmlns:D="DAV:"><D:sync-token>{token}</D:sync-token><D:sync-level>1</D:sync-level><D:prop><D:getetag/></D:prop></D:sync-collection>"#
    )
}

fn token_of(body: &str) -> anyhow::Result<String> {
    // Servers pick their own prefixes: find the element by local name.
    let start = body
        .find("sync-token>")
        .context("no sync-token in the response")?
        + "sync-token>".len();
    let end = body[start..].find('<').context("unterminated sync-token")?;
    Ok(body[start..start + end].trim().to_owned())
}

/// A REPORT that must answer 207; returns its body.
async fn report(conn: &mut Conn, path: &str, body: String, depth1: bool) -> anyhow::Result<String> {
    let mut headers = vec![("Content-Type", "application/xml")];
    if depth1 {
        headers.push(("Depth", "1"));
    }
    let (status, answer) = conn.request("REPORT", path, &headers, body).await?;
    if status != 207 {
        bail!("REPORT answered {status}: {answer}");
    }
    Ok(answer)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Arc::new(Args::parse());
    let tls = if args.plain {
        None
    } else {
        let mut roots = rustls::RootCertStore::empty();
        let ca = args.ca.as_ref().context("--ca is needed unless --plain")?;
        let pem = std::fs::read(ca).context("reading the CA certificate")?;
        for cert in rustls_pemfile::certs(&mut pem.as_slice()) {
            roots.add(cert?)?;
        }
        let config = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth();
        Some(tokio_rustls::TlsConnector::from(Arc::new(config)))
    };

    let mut main = Conn::open(&args, &tls).await?;
    let (status, body) = main
        .request(
            "MKCALENDAR",
            &args.calendar,
            &[("Content-Type", "application/xml")],
            String::new(),
        )
        .await?;
    if status != 201 {
        bail!("MKCALENDAR answered {status}: {body}");
    }

    // PUT from several connections at once.
    let started = Instant::now();
    let mut tasks = Vec::new();
    for c in 0..args.clients {
        let args = args.clone();
        let tls = tls.clone();
        tasks.push(tokio::spawn(async move {
            let mut conn = Conn::open(&args, &tls).await?;
            let mut latencies = Vec::new();
            for i in (c..args.events).step_by(args.clients) {
                let t = Instant::now();
                let (status, body) = conn
                    .request(
                        "PUT",
                        &format!("{}bench-{i}.ics", args.calendar),
                        &[("Content-Type", "text/calendar; charset=utf-8")],
                        event(i, args.events, 0),
                    )
                    .await?;
                if status != 201 && status != 204 {
                    bail!("PUT answered {status}: {body}");
                }
                latencies.push(t.elapsed().as_secs_f64() * 1000.0);
            }
            anyhow::Ok(latencies)
        }));
    }
    let mut latencies = Vec::new();
    for t in tasks {
        latencies.extend(t.await??);
    }
    let elapsed = started.elapsed().as_secs_f64();
    println!("put_per_s={:.0}", args.events as f64 / elapsed);
    latencies.sort_by(|a, b| a.total_cmp(b));
    println!("put_p50_ms={:.2}", latencies[latencies.len() / 2]);

    // One month: March 2026, with the data (as clients fill a month view).
    let month = r#"<?xml version="1.0" encoding="utf-8"?><C:calendar-query xmlns:D="DAV:" xmlns:C="urn:ietf:params:xml:ns:caldav"><D:prop><D:getetag/><C:calendar-data/></D:prop><C:filter><C:comp-filter name="VCALENDAR"><C:comp-filter name="VEVENT"><C:time-range start="20260301T000000Z" end="20260401T000000Z"/></C:comp-filter></C:comp-filter></C:filter></C:calendar-query>"#;
    let mut times = Vec::new();
    let mut found = 0;
    for _ in 0..args.repeat {
        let t = Instant::now();
        let body = report(&mut main, &args.calendar, month.to_owned(), true).await?;
        times.push(t.elapsed().as_secs_f64() * 1000.0);
        found = body.matches("BEGIN:VEVENT").count();
    }
    println!("month_query_ms={:.2}", median(times));
    println!("month_query_events={found}");

    // The initial full sync (hrefs and ETags of everything).
    let mut times = Vec::new();
    let mut token = String::new();
    let mut listed = 0;
    for _ in 0..args.repeat {
        let t = Instant::now();
        let body = report(&mut main, &args.calendar, sync_body(""), false).await?;
        times.push(t.elapsed().as_secs_f64() * 1000.0);
        listed = body.matches("getetag>").count() / 2;
        token = token_of(&body)?;
    }
    println!("initial_sync_ms={:.2}", median(times));
    println!("initial_sync_resources={listed}");

    // 10 changes, then the delta; repeated, each round with its own changes.
    let mut delta_times = Vec::new();
    let mut delta_seen = 0;
    for round in 0..args.repeat {
        for k in 0..10 {
            let i = (round * 10 + k) * 7 % args.events;
            let (status, body) = main
                .request(
                    "PUT",
                    &format!("{}bench-{i}.ics", args.calendar),
                    &[("Content-Type", "text/calendar; charset=utf-8")],
                    event(i, args.events, round + 1),
                )
                .await?;
            if status != 204 && status != 201 {
                bail!("PUT answered {status}: {body}");
            }
        }
        let t = Instant::now();
        let (status, body) = main
            .request(
                "REPORT",
                &args.calendar,
                &[("Content-Type", "application/xml")],
                sync_body(&token),
            )
            .await?;
        delta_times.push(t.elapsed().as_secs_f64() * 1000.0);
        if status != 207 {
            bail!("delta sync answered {status}: {body}");
        }
        delta_seen = body.matches("getetag>").count() / 2;
        token = token_of(&body)?;
    }
    println!("delta_sync_ms={:.2}", median(delta_times));
    println!("delta_sync_resources={delta_seen}");

    // A multiget of 100 (what a client fetches after a sync).
    let hrefs: String = (0..100)
        .map(|k| {
            format!(
                "<D:href>{}bench-{}.ics</D:href>",
                args.calendar,
                k * (args.events / 100).max(1)
            )
        })
        .collect();
    let multiget = format!(
        r#"<?xml version="1.0" encoding="utf-8"?><C:calendar-multiget xmlns:D="DAV:" xmlns:C="urn:ietf:params:xml:ns:caldav"><D:prop><D:getetag/><C:calendar-data/></D:prop>{hrefs}</C:calendar-multiget>"#
    );
    let mut times = Vec::new();
    let mut got = 0;
    for _ in 0..args.repeat {
        let t = Instant::now();
        let body = report(&mut main, &args.calendar, multiget.clone(), true).await?;
        times.push(t.elapsed().as_secs_f64() * 1000.0);
        got = body.matches("BEGIN:VEVENT").count();
    }
    let multiget_ms = median(times);
    println!("multiget_100_ms={multiget_ms:.2}");
    println!("multiget_100_events={got}");
    tokio::time::sleep(Duration::from_millis(10)).await;
    Ok(())
}
