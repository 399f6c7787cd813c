//! Password hashing and verification (argon2id).

use argon2::password_hash::{Output, PasswordHash, PasswordHasher, SaltString};
use argon2::{Algorithm, Argon2, Block, Params, Version};
use rand::rngs::OsRng;

use crate::{CoreError, CoreResult};

/// Argon2id cost parameters (`[auth]` in the config).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PasswordParams {
    /// Memory in KiB.
    pub memory_kib: u32,
    /// Iterations.
    pub iterations: u32,
    /// Lanes.
    pub parallelism: u32,
}

impl Default for PasswordParams {
    /// The OWASP recommendation for argon2id: 19 MiB, 2 iterations, 1 lane.
    fn default() -> Self {
        PasswordParams {
            memory_kib: 19 * 1024,
            iterations: 2,
            parallelism: 1,
        }
    }
}

/// Shortest password accepted for an account.
pub const MIN_PASSWORD_LEN: usize = 12;
/// Longest password accepted (bounds the work an attacker can ask of argon2's input hashing).
pub const MAX_PASSWORD_LEN: usize = 1024;

impl PasswordParams {
    fn hasher(&self) -> CoreResult<Argon2<'static>> {
        let params = Params::new(self.memory_kib, self.iterations, self.parallelism, None)
            .map_err(|e| CoreError::Invalid(format!("argon2 parameters in [auth]: {e}")))?;
        Ok(Argon2::new(Algorithm::Argon2id, Version::V0x13, params))
    }

    /// Hashes a password into a PHC string.
    pub fn hash(&self, password: &str) -> CoreResult<String> {
        let salt = SaltString::generate(&mut OsRng);
        Ok(self
            .hasher()?
            .hash_password(password.as_bytes(), &salt)
            .map_err(|e| CoreError::Invalid(format!("cannot hash password: {e}")))?
            .to_string())
    }

    /// Verifies a password against a PHC string, in constant time for equal-length hashes.
    /// The stored hash's own parameters are used, so changing the config does
    /// not lock anybody out.
    pub fn verify(&self, password: &str, phc: &str) -> bool {
        verify_with_memory(password, phc, &mut Vec::new())
    }
}

/// Verifies like [`PasswordParams::verify`], with the argon2 working memory
/// given by the caller so that a worker thread reuses one allocation.
fn verify_with_memory(password: &str, phc: &str, memory: &mut Vec<Block>) -> bool {
    let Ok(parsed) = PasswordHash::new(phc) else {
        return false;
    };
    let (Some(expected), Some(salt)) = (parsed.hash, parsed.salt) else {
        return false;
    };
    let Ok(algorithm) = Algorithm::try_from(parsed.algorithm) else {
        return false;
    };
    let version = parsed
        .version
        .and_then(|v| Version::try_from(v).ok())
        .unwrap_or(Version::V0x13);
    let Ok(params) = Params::try_from(&parsed) else {
        return false;
    };
    let mut salt_bytes = [0u8; 64];
    let Ok(salt) = salt.decode_b64(&mut salt_bytes) else {
        return false;
    };
    let blocks = params.block_count();
    if memory.len() < blocks {
        memory.resize(blocks, Block::default());
    }
    let mut out = vec![0u8; expected.len()];
    let argon = Argon2::new(algorithm, version, params);
    if argon
        .hash_password_into_with_memory(password.as_bytes(), salt, &mut out, &mut memory[..blocks])
        .is_err()
    {
        return false;
    }
    // Output's equality is constant-time.
    Output::new(&out).is_ok_and(|o| o == expected)
}

/// Hashes like [`PasswordParams::hash`], with caller-given working memory.
fn hash_with_memory(
    params: PasswordParams,
    password: &str,
    memory: &mut Vec<Block>,
) -> CoreResult<String> {
    let argon = params.hasher()?;
    let blocks = argon.params().block_count();
    if memory.len() < blocks {
        memory.resize(blocks, Block::default());
    }
    let salt = SaltString::generate(&mut OsRng);
    let mut salt_bytes = [0u8; 64];
    let raw_salt = salt
        .decode_b64(&mut salt_bytes)
        .map_err(|e| CoreError::Invalid(format!("cannot make a salt: {e}")))?;
    let mut out = [0u8; 32];
    argon
        .hash_password_into_with_memory(
            password.as_bytes(),
            raw_salt,
            &mut out,
            &mut memory[..blocks],
        )
        .map_err(|e| CoreError::Invalid(format!("cannot hash password: {e}")))?;
    let output = Output::new(&out).map_err(|e| CoreError::Invalid(e.to_string()))?;
    let phc = PasswordHash {
        algorithm: Algorithm::Argon2id.ident(),
        version: Some(Version::V0x13.into()),
        params: argon
            .params()
            .try_into()
            .map_err(|e: argon2::password_hash::Error| CoreError::Invalid(e.to_string()))?,
        salt: Some(salt.as_salt()),
        hash: Some(output),
    };
    Ok(phc.to_string())
}

type Job = Box<dyn FnOnce(&mut Vec<Block>) + Send>;

/// A fixed set of threads that run argon2. Bounds how many hashes run at
/// once (each takes `argon2_memory_kib`, so unbounded parallel logins would
/// be a memory exhaustion attack) and reuses each thread's working memory
/// instead of allocating it per login.
pub(crate) struct HashWorkers {
    jobs: std::sync::mpsc::Sender<Job>,
}

impl HashWorkers {
    /// Starts `threads` workers.
    pub(crate) fn new(threads: usize) -> Self {
        let (jobs, queue) = std::sync::mpsc::channel::<Job>();
        let queue = std::sync::Arc::new(std::sync::Mutex::new(queue));
        for i in 0..threads.max(1) {
            let queue = queue.clone();
            let spawned = std::thread::Builder::new()
                .name(format!("rampart-argon2-{i}"))
                .spawn(move || {
                    let mut memory = Vec::new();
                    loop {
                        let job = match queue.lock() {
                            Ok(q) => q.recv(),
                            Err(_) => return,
                        };
                        match job {
                            Ok(job) => job(&mut memory),
                            Err(_) => return,
                        }
                    }
                });
            if let Err(e) = spawned {
                tracing::error!("cannot start password hashing thread: {e}");
            }
        }
        HashWorkers { jobs }
    }

    async fn run<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Vec<Block>) -> T + Send + 'static,
    ) -> CoreResult<T> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.jobs
            .send(Box::new(move |memory| {
                let _ = tx.send(f(memory));
            }))
            .map_err(|_| CoreError::Invalid("password hashing threads stopped".into()))?;
        rx.await
            .map_err(|_| CoreError::Invalid("password hashing thread failed".into()))
    }

    /// Verifies a password on a worker thread.
    pub(crate) async fn verify(&self, password: String, phc: String) -> CoreResult<bool> {
        self.run(move |memory| verify_with_memory(&password, &phc, memory))
            .await
    }

    /// Hashes a password on a worker thread.
    pub(crate) async fn hash(
        &self,
        params: PasswordParams,
        password: String,
    ) -> CoreResult<String> {
        self.run(move |memory| hash_with_memory(params, &password, memory))
            .await?
    }
}

/// Checks a new password against the length rules.
pub fn check_new_password(password: &str) -> CoreResult<()> {
    let len = password.chars().count();
    if len < MIN_PASSWORD_LEN {
        return Err(CoreError::Invalid(format!(
            "the password is too short: use at least {MIN_PASSWORD_LEN} characters"
        )));
    }
    if password.len() > MAX_PASSWORD_LEN {
        return Err(CoreError::Invalid(format!(
            "the password is too long: at most {MAX_PASSWORD_LEN} bytes"
        )));
    }
    Ok(())
}

/// A random password of 24 letters and digits (about 142 bits).
pub fn random_password() -> String {
    use rand::Rng;
    use rand::distributions::Alphanumeric;
    OsRng
        .sample_iter(&Alphanumeric)
        .take(24)
        .map(char::from)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cheap() -> PasswordParams {
        PasswordParams {
            memory_kib: 1024,
            iterations: 1,
            parallelism: 1,
        }
    }

    #[test]
    fn hash_then_verify() {
        let p = cheap();
        let h = p.hash("correct horse battery").unwrap();
        assert!(h.starts_with("$argon2id$v=19$m=1024,t=1,p=1$"));
        assert!(p.verify("correct horse battery", &h));
        assert!(!p.verify("correct horse batterY", &h));
        assert!(!p.verify("x", "not a phc string"));
    }

    #[test]
    fn pooled_hashes_match_the_reference_implementation() {
        use argon2::PasswordVerifier;
        let p = cheap();
        let mut memory = Vec::new();
        let h = hash_with_memory(p, "correct horse battery", &mut memory).unwrap();
        assert!(h.starts_with("$argon2id$v=19$m=1024,t=1,p=1$"), "{h}");
        let parsed = PasswordHash::new(&h).unwrap();
        assert!(
            Argon2::default()
                .verify_password(b"correct horse battery", &parsed)
                .is_ok()
        );
        // And hashes the reference implementation made verify here, reusing memory.
        let reference = p.hasher().unwrap();
        let salt = SaltString::generate(&mut OsRng);
        let made = reference
            .hash_password(b"another password", &salt)
            .unwrap()
            .to_string();
        assert!(verify_with_memory("another password", &made, &mut memory));
        assert!(!verify_with_memory("another passworD", &made, &mut memory));
        assert!(!verify_with_memory(
            "x",
            "$argon2id$v=19$m=1024,t=1,p=1$bad",
            &mut memory
        ));
    }

    #[test]
    fn password_rules() {
        assert!(check_new_password("short").is_err());
        assert!(check_new_password(&"x".repeat(2000)).is_err());
        assert!(check_new_password("long enough pw").is_ok());
        let r = random_password();
        assert_eq!(r.len(), 24);
        assert!(check_new_password(&r).is_ok());
        assert_ne!(r, random_password());
    }
}
