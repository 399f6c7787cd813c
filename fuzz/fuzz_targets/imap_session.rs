//! The IMAP session state machine over a real core and SQLite store: any
//! sequence of commands from a logged-in client gets responses and never
//! panics. Each input runs as one session with INBOX selected.
#![no_main]

use std::sync::{Arc, OnceLock};

use libfuzzer_sys::fuzz_target;
use rampart_store::{OpenMode, StoreConfig};
use rampart_core::{Core, CoreConfig, LogRecorder, NewUser, PasswordParams, Protocol};
use rampart_imap::parser::Framer;
use rampart_imap::{ImapConfig, Limiter, Next, Session};

struct World {
    runtime: tokio::runtime::Runtime,
    core: Arc<Core>,
    config: Arc<ImapConfig>,
    limiter: Arc<Limiter>,
    _dir: tempfile::TempDir,
}

fn world() -> &'static World {
    static WORLD: OnceLock<World> = OnceLock::new();
    WORLD.get_or_init(|| {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let core = runtime.block_on(async {
            let store = rampart_store::open(
                &StoreConfig::Sqlite {
                    data_dir: dir.path().to_path_buf(),
                    pool_size: 2,
                },
                OpenMode::CreateIfMissing,
            )
            .await
            .unwrap();
            let config = CoreConfig {
                passwords: PasswordParams {
                    memory_kib: 1024,
                    iterations: 1,
                    parallelism: 1,
                },
                // The fuzzed session logs in over plain loopback.
                plaintext_login_on_loopback: vec![Protocol::Imap],
                ..CoreConfig::default()
            };
            let (core, privileged) = Core::new(store, config, Arc::new(LogRecorder))
                .await
                .unwrap();
            let operator = privileged.operator("fuzz".into());
            core.add_domain(&operator, "example.org").await.unwrap();
            core.add_user(
                &operator,
                NewUser {
                    address: "fuzz@example.org".into(),
                    display_name: None,
                    password: "fuzz password 1234".into(),
                    quota_bytes: None,
                    is_admin: false,
                },
            )
            .await
            .unwrap();
            Arc::new(core)
        });
        let mut config = ImapConfig::new("fuzz.example.org");
        config.frame.max_append_bytes = 65536;
        config.auth_without_tls_on_loopback = true;
        World {
            runtime,
            core,
            config: Arc::new(config),
            limiter: Arc::new(Limiter::default()),
            _dir: dir,
        }
    })
}

fuzz_target!(|data: &[u8]| {
    let w = world();
    w.runtime.block_on(async {
        let mut session = Session::new(
            w.core.clone(),
            w.config.clone(),
            w.limiter.clone(),
            Some("127.0.0.1".parse().unwrap()),
            false,
            false,
        );
        let mut framer = Framer::new(w.config.frame);
        framer.push(b"a LOGIN fuzz@example.org \"fuzz password 1234\"\r\nb SELECT INBOX\r\n");
        framer.push(data);
        framer.push(b"\r\nz LOGOUT\r\n");
        let mut steps = 0;
        while let Some(frame) = framer.next_frame() {
            steps += 1;
            if steps > 200 {
                break;
            }
            let mut reply = session.frame(frame).await;
            loop {
                match reply.next {
                    Next::More => reply = session.more().await,
                    Next::AuthResponse => {
                        let line = framer.take_line().unwrap_or_default();
                        reply = session.auth_response(&line).await;
                    }
                    Next::Idle => {
                        let _ = session.idle_update().await;
                        let line = framer.take_line().unwrap_or_default();
                        reply = session.idle_line(&line);
                    }
                    Next::Close => return,
                    Next::Command | Next::StartTls => break,
                }
            }
        }
    });
});
