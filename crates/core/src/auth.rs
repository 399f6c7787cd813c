//! Password hashing and verification (argon2id).

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
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
        let Ok(parsed) = PasswordHash::new(phc) else {
            return false;
        };
        Argon2::default()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok()
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
