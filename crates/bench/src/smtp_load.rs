#![forbid(unsafe_code)]
//! SMTP load client: sends N messages of a realistic size mix over K
//! concurrent connections and reports throughput and the latency of the
//! final reply (the moment the server says the message is safe).

use std::time::{Duration, Instant};

use clap::Parser;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

mod messages;
use messages::message;

/// Sends mail as fast as the server takes it and reports how fast that was.
#[derive(Parser, Debug)]
struct Args {
    /// Server address, host:port.
    #[arg(long)]
    server: String,
    /// Messages in all.
    #[arg(long, default_value_t = 2000)]
    messages: usize,
    /// Concurrent connections.
    #[arg(long, default_value_t = 16)]
    connections: usize,
    /// Envelope recipient.
    #[arg(long)]
    rcpt: String,
    /// Envelope sender: of a domain not ours, as inbound mail on the MX is
    /// (mail in our own domain's name needs our own DKIM signature there).
    #[arg(long, default_value = "load@sender.example")]
    sender: String,
    /// Messages per connection before reconnecting.
    #[arg(long, default_value_t = 50)]
    per_connection: usize,
}

async fn reply(r: &mut BufReader<TcpStream>) -> anyhow::Result<u16> {
    loop {
        let mut line = String::new();
        if r.read_line(&mut line).await? == 0 {
            anyhow::bail!("connection closed");
        }
        if line.as_bytes().get(3) != Some(&b'-') {
            return Ok(line.get(..3).unwrap_or("000").parse()?);
        }
    }
}

async fn expect(r: &mut BufReader<TcpStream>, want: u16, what: &str) -> anyhow::Result<()> {
    let code = reply(r).await?;
    anyhow::ensure!(code == want, "{what}: expected {want}, got {code}");
    Ok(())
}

async fn worker(args: &Args, ids: Vec<usize>) -> anyhow::Result<Vec<Duration>> {
    let mut latencies = Vec::with_capacity(ids.len());
    for chunk in ids.chunks(args.per_connection) {
        let stream = TcpStream::connect(&args.server).await?;
        stream.set_nodelay(true)?;
        let mut r = BufReader::new(stream);
        expect(&mut r, 220, "greeting").await?;
        r.get_mut()
            .write_all(b"EHLO load.bench.example\r\n")
            .await?;
        expect(&mut r, 250, "EHLO").await?;
        for &i in chunk {
            let body = message(i);
            r.get_mut()
                .write_all(
                    format!(
                        "MAIL FROM:<{}>\r\nRCPT TO:<{}>\r\nDATA\r\n",
                        args.sender, args.rcpt
                    )
                    .as_bytes(),
                )
                .await?;
            expect(&mut r, 250, "MAIL").await?;
            expect(&mut r, 250, "RCPT").await?;
            expect(&mut r, 354, "DATA").await?;
            r.get_mut().write_all(&body).await?;
            let sent = Instant::now();
            r.get_mut().write_all(b".\r\n").await?;
            expect(&mut r, 250, "end of data").await?;
            latencies.push(sent.elapsed());
        }
        r.get_mut().write_all(b"QUIT\r\n").await?;
        let _ = reply(&mut r).await;
    }
    Ok(latencies)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: &'static Args = Box::leak(Box::new(Args::parse()));
    let bytes: usize = (0..args.messages).map(|i| message(i).len()).sum();
    let start = Instant::now();
    let mut tasks = Vec::new();
    for w in 0..args.connections {
        let ids: Vec<usize> = (0..args.messages)
            .filter(|i| i % args.connections == w)
            .collect();
        tasks.push(tokio::spawn(worker(args, ids)));
    }
    let mut latencies = Vec::new();
    for t in tasks {
        latencies.extend(t.await??);
    }
    let elapsed = start.elapsed();
    latencies.sort();
    let pct = |p: f64| latencies[((latencies.len() as f64 - 1.0) * p).round() as usize];
    println!(
        "messages={} connections={} bytes={} seconds={:.3} msgs_per_sec={:.1} p50_ms={:.2} p99_ms={:.2}",
        latencies.len(),
        args.connections,
        bytes,
        elapsed.as_secs_f64(),
        latencies.len() as f64 / elapsed.as_secs_f64(),
        pct(0.50).as_secs_f64() * 1000.0,
        pct(0.99).as_secs_f64() * 1000.0,
    );
    Ok(())
}
