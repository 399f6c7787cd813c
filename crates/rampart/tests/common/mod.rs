//! Helpers shared by the binary's integration tests: they run the real
//! `rampart` executable as a child process.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::Duration;

/// The binary under test.
pub fn rampart() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_rampart"));
    c.env_remove("RAMPART_CONFIG")
        .env_remove("RAMPART_DATA")
        .env("RAMPART_LOG", "warn");
    c
}

/// A temporary data directory with a config file that puts every service on a free loopback port.
pub struct Sandbox {
    pub dir: tempfile::TempDir,
    /// The PostgreSQL URL of the sandbox's store (its own schema), if not SQLite.
    pub postgres_url: Option<String>,
}

/// Whether the server-level tests run on PostgreSQL (`RAMPART_TEST_STORE=postgres`,
/// as `.ci/run` does in a second pass) instead of the embedded store.
pub fn on_postgres() -> bool {
    std::env::var("RAMPART_TEST_STORE").is_ok_and(|v| v == "postgres")
}

/// A fresh schema in the test database (`RAMPART_TEST_POSTGRES_URL`), as the
/// URL of a store in it, so that servers of different tests do not meet.
pub fn fresh_postgres_store() -> String {
    let url = std::env::var("RAMPART_TEST_POSTGRES_URL")
        .expect("RAMPART_TEST_POSTGRES_URL names the test database");
    let schema = format!("server_{:016x}", {
        use std::hash::{BuildHasher, Hasher};
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u128(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos(),
        );
        h.finish()
    });
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let (client, conn) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
            .await
            .expect("connect to RAMPART_TEST_POSTGRES_URL");
        tokio::spawn(conn);
        client
            .batch_execute(&format!("CREATE SCHEMA {schema}"))
            .await
            .unwrap();
    });
    let sep = if url.contains('?') { '&' } else { '?' };
    format!("{url}{sep}options=-csearch_path%3D{schema}")
}

/// Every service name in `[listen]`.
pub const SERVICES: [&str; 7] = [
    "smtp",
    "submission",
    "submissions",
    "imap",
    "imaps",
    "https",
    "admin",
];

/// Cheap argon2 settings so tests do not spend seconds hashing.
pub const FAST_AUTH: &str =
    "[auth]\nargon2_memory_kib = 1024\nargon2_iterations = 1\nargon2_parallelism = 1\n";

impl Sandbox {
    pub fn new() -> Sandbox {
        Self::custom("", "")
    }

    /// `listen` holds `[listen]` lines that replace the port-0 default of
    /// their service; `rest` is appended as further tables.
    pub fn custom(listen: &str, rest: &str) -> Sandbox {
        let dir = tempfile::tempdir().unwrap();
        let mut config = String::from("[listen]\n");
        config.push_str(listen);
        for s in SERVICES {
            if !listen.contains(&format!("{s} =")) {
                config.push_str(&format!("{s} = [\"127.0.0.1:0\"]\n"));
            }
        }
        if !rest.contains("[auth]") {
            config.push_str(FAST_AUTH);
        }
        // Tests never ask the network's DNS: only records they configure.
        if !rest.contains("[dns]") {
            config.push_str("[dns]\nsource = \"static\"\n");
        }
        let postgres_url = if rest.contains("[store]") {
            rest.split_once("url = \"")
                .and_then(|(_, tail)| tail.split_once('"'))
                .map(|(url, _)| url.to_owned())
        } else if on_postgres() {
            let url = fresh_postgres_store();
            config.push_str(&format!(
                "[store]\nbackend = \"postgres\"\nurl = \"{url}\"\n"
            ));
            Some(url)
        } else {
            None
        };
        let sandbox = Sandbox { dir, postgres_url };
        sandbox.write_config(&format!("{config}{rest}"));
        sandbox
    }

    pub fn write_config(&self, text: &str) {
        std::fs::write(self.config_path(), text).unwrap();
    }

    pub fn config_path(&self) -> PathBuf {
        self.dir.path().join("rampart.toml")
    }

    pub fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// `rampart --config C --data D ARGS...`
    pub fn cmd(&self, args: &[&str]) -> Command {
        let mut c = rampart();
        c.arg("--config")
            .arg(self.config_path())
            .arg("--data")
            .arg(self.data())
            .args(args);
        c
    }

    /// Runs a CLI command with `stdin` and returns its output.
    pub fn run(&self, args: &[&str], stdin: &str) -> Output {
        let mut child = self
            .cmd(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(stdin.as_bytes())
            .unwrap();
        child.wait_with_output().unwrap()
    }

    /// Runs a CLI command that must succeed; returns its standard output.
    pub fn ok(&self, args: &[&str], stdin: &str) -> String {
        let out = self.run(args, stdin);
        assert!(
            out.status.success(),
            "rampart {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    /// Runs a CLI command that must fail; returns its standard error.
    pub fn fails(&self, args: &[&str], stdin: &str) -> String {
        let out = self.run(args, stdin);
        assert!(
            !out.status.success(),
            "rampart {args:?} should have failed; stdout: {}",
            String::from_utf8_lossy(&out.stdout)
        );
        String::from_utf8(out.stderr).unwrap()
    }

    /// Starts `rampart serve` and waits until it printed its banner.
    pub fn serve(&self, extra_args: &[&str]) -> Server {
        Self::serve_at(&self.config_path(), &self.data(), extra_args)
    }

    /// Starts `rampart serve` on a given config and data directory (for restarts from another thread).
    pub fn serve_at(config: &Path, data: &Path, extra_args: &[&str]) -> Server {
        let mut cmd = rampart();
        cmd.arg("--config")
            .arg(config)
            .arg("--data")
            .arg(data)
            .arg("serve")
            .args(extra_args);
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut banner = Vec::new();
        loop {
            match rx.recv_timeout(Duration::from_secs(60)) {
                Ok(line) => {
                    let done = line.starts_with("This password is shown only once")
                        || line.starts_with("Using the existing store");
                    banner.push(line);
                    if done {
                        break;
                    }
                }
                Err(_) => {
                    let _ = child.kill();
                    let out = child.wait_with_output().unwrap();
                    panic!(
                        "server did not start; stdout so far: {banner:?}; stderr: {}",
                        String::from_utf8_lossy(&out.stderr)
                    );
                }
            }
        }
        let mut services = BTreeMap::new();
        for line in &banner {
            let mut words = line.split_whitespace();
            if let (Some(name), Some(addr)) = (words.next(), words.next())
                && let Ok(addr) = addr.trim_end_matches(',').parse::<SocketAddr>()
            {
                services.insert(name.to_string(), addr);
            }
        }
        Server {
            child,
            banner,
            services,
        }
    }
}

/// A running `rampart serve`.
pub struct Server {
    pub child: Child,
    pub banner: Vec<String>,
    pub services: BTreeMap<String, SocketAddr>,
}

impl Server {
    pub fn addr(&self, service: &str) -> SocketAddr {
        self.services[service]
    }

    /// The value printed after `label:` in the banner.
    pub fn printed(&self, label: &str) -> Option<String> {
        self.banner.iter().find_map(|l| {
            l.trim()
                .strip_prefix(label)
                .map(|rest| rest.trim().to_string())
        })
    }

    /// Sends SIGTERM and waits for a clean exit.
    pub fn stop(mut self) -> std::process::ExitStatus {
        let pid = nix::unistd::Pid::from_raw(self.child.id() as i32);
        nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).unwrap();
        let status = self.child.wait().unwrap();
        std::mem::forget(self);
        status
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Reads one line from a plain TCP connection.
pub fn read_line_tcp(addr: SocketAddr) -> String {
    let stream = std::net::TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut line = String::new();
    BufReader::new(stream).read_line(&mut line).unwrap();
    line
}

/// Whether a program is on PATH.
pub fn have(program: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|paths| std::env::split_paths(&paths).any(|dir| dir.join(program).is_file()))
}

pub fn file_bytes(path: &Path) -> Vec<u8> {
    std::fs::read(path).unwrap()
}

/// Every message in a user's mailbox (by role), read straight from the
/// sandbox's store (SQLite in WAL mode allows this while the server runs;
/// PostgreSQL anyway),
/// with its blob verified against its hash.
pub fn mailbox(
    sb: &Sandbox,
    address: &str,
    role: rampart_store::MailboxRole,
) -> Vec<(rampart_store::MessageRecord, Vec<u8>)> {
    let (local, domain) = address.split_once('@').expect("an address");
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let config = match &sb.postgres_url {
            Some(url) => rampart_store::StoreConfig::Postgres {
                url: url.clone(),
                pool_size: 1,
            },
            None => rampart_store::StoreConfig::Sqlite {
                data_dir: sb.data(),
                pool_size: 1,
            },
        };
        let store = rampart_store::open(&config, rampart_store::OpenMode::MustExist)
            .await
            .expect("the store opens");
        let p = store.find_principal(local, domain).await.unwrap().unwrap();
        let mbox = store
            .list_mailboxes(p.id)
            .await
            .unwrap()
            .into_iter()
            .find(|m| m.role == Some(role))
            .unwrap();
        let mut out = Vec::new();
        for m in store.list_messages(p.id, mbox.id).await.unwrap() {
            let raw = store.read_blob(m.blob).await.expect("blob intact");
            out.push((m, raw));
        }
        out
    })
}

/// Every message in a user's mailbox, as text.
pub fn mailbox_texts(sb: &Sandbox, address: &str, role: rampart_store::MailboxRole) -> Vec<String> {
    mailbox(sb, address, role)
        .into_iter()
        .map(|(_, raw)| String::from_utf8_lossy(&raw).into_owned())
        .collect()
}

/// Runs one scenario of tests/python/smtp_client.py (Python's smtplib as the
/// client) against `server`, trusting `sb`'s self-signed certificate.
pub fn smtp_scenario(sb: &Sandbox, server: &Server, scenario: &str) {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/python/smtp_client.py");
    let out = Command::new("python3")
        .arg(script)
        .arg(scenario)
        .arg(server.addr("smtp").port().to_string())
        .arg(server.addr("submission").port().to_string())
        .arg(server.addr("submissions").port().to_string())
        .arg(sb.data().join("tls/cert.pem"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "scenario {scenario} failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
