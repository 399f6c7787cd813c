//! `[auth]`: argon2id cost of new password hashes.

use anyhow::bail;
use rampart_core::{CoreConfig, PasswordParams};
use serde::Deserialize;

/// `[auth]`: argon2id cost of new password hashes.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuthConfig {
    /// Memory per hash, KiB.
    pub argon2_memory_kib: u32,
    /// Iterations.
    pub argon2_iterations: u32,
    /// Lanes.
    pub argon2_parallelism: u32,
    /// Threads that hash passwords: at most this many logins hash at once.
    pub hash_threads: usize,
}

impl Default for AuthConfig {
    fn default() -> Self {
        let p = PasswordParams::default();
        AuthConfig {
            argon2_memory_kib: p.memory_kib,
            argon2_iterations: p.iterations,
            argon2_parallelism: p.parallelism,
            hash_threads: CoreConfig::default().hash_threads,
        }
    }
}

impl AuthConfig {
    /// The argon2 parameters.
    pub fn password_params(&self) -> PasswordParams {
        PasswordParams {
            memory_kib: self.argon2_memory_kib,
            iterations: self.argon2_iterations,
            parallelism: self.argon2_parallelism,
        }
    }

    /// Checks that the argon2 parameters hash and the thread count.
    pub fn validate(&self) -> anyhow::Result<()> {
        // Hashing once is the only sure test that argon2 takes the parameters.
        self.password_params()
            .hash("validate-config")
            .map_err(|e| anyhow::anyhow!("[auth] argon2 parameters: {e}"))?;
        if !(1..=256).contains(&self.hash_threads) {
            bail!(
                "auth.hash_threads = {}: expected 1 to 256",
                self.hash_threads
            );
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_zero_hash_threads() {
        let a = AuthConfig {
            hash_threads: 0,
            ..AuthConfig::default()
        };
        let e = a.validate().unwrap_err().to_string();
        assert_eq!(e, "auth.hash_threads = 0: expected 1 to 256");
    }

    #[test]
    fn refuses_argon2_parameters_argon2_refuses() {
        let a = AuthConfig {
            argon2_memory_kib: 1,
            ..AuthConfig::default()
        };
        let e = a.validate().unwrap_err().to_string();
        assert!(e.starts_with("[auth] argon2 parameters: "), "{e}");
    }
}
