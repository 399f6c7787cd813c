//! E-mail addresses and domain names as the core accepts them.

use std::fmt;

use crate::{CoreError, CoreResult};

/// A normalised (lower-case) e-mail address of the form `local@domain`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Address {
    /// The part before `@`.
    pub local_part: String,
    /// The domain.
    pub domain: String,
}

/// Longest local part RFC 5321 allows.
const MAX_LOCAL: usize = 64;
/// Longest domain name RFC 1035 allows.
const MAX_DOMAIN: usize = 253;

impl Address {
    /// Parses and normalises `local@domain`; says what is wrong otherwise.
    pub fn parse(input: &str) -> CoreResult<Self> {
        let input = input.trim();
        let (local, domain) = input.rsplit_once('@').ok_or_else(|| {
            CoreError::Invalid(format!(
                "{input:?} is not an e-mail address (expected local@domain)"
            ))
        })?;
        let local_part = local.to_lowercase();
        if local_part.is_empty() || local_part.len() > MAX_LOCAL {
            return Err(CoreError::Invalid(format!(
                "the local part of {input:?} must be 1 to {MAX_LOCAL} bytes"
            )));
        }
        if local_part.starts_with('.') || local_part.ends_with('.') || local_part.contains("..") {
            return Err(CoreError::Invalid(format!(
                "the local part of {input:?} may not start or end with a dot or hold two in a row"
            )));
        }
        if let Some(bad) = local_part
            .chars()
            .find(|c| c.is_control() || c.is_whitespace() || "@<>()[]\\,;:\"".contains(*c))
        {
            return Err(CoreError::Invalid(format!(
                "the local part of {input:?} may not contain {bad:?}"
            )));
        }
        Ok(Address {
            local_part,
            domain: normalize_domain(domain)?,
        })
    }
}

impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}@{}", self.local_part, self.domain)
    }
}

/// Checks and lower-cases a domain name; internationalised names (as
/// SMTPUTF8 clients send them) are turned into their `xn--` form.
pub fn normalize_domain(input: &str) -> CoreResult<String> {
    let trimmed = input.trim().trim_end_matches('.');
    let domain = if trimmed.is_ascii() {
        trimmed.to_ascii_lowercase()
    } else {
        idna::domain_to_ascii(trimmed).map_err(|_| {
            CoreError::Invalid(format!(
                "domain {input:?} is not a valid internationalised domain name"
            ))
        })?
    };
    if domain.is_empty() || domain.len() > MAX_DOMAIN {
        return Err(CoreError::Invalid(format!(
            "domain {input:?} must be 1 to {MAX_DOMAIN} characters"
        )));
    }
    for label in domain.split('.') {
        let ok = !label.is_empty()
            && label.len() <= 63
            && !label.starts_with('-')
            && !label.ends_with('-')
            && label
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-');
        if !ok {
            return Err(CoreError::Invalid(format!(
                "domain {input:?} has an invalid label {label:?} (letters, digits and inner hyphens, 1 to 63 characters)"
            )));
        }
    }
    Ok(domain)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_normalises() {
        let a = Address::parse(" Alice.Smith@Example.ORG. ").unwrap();
        assert_eq!(a.to_string(), "alice.smith@example.org");
    }

    #[test]
    fn rejects_malformed() {
        for bad in [
            "alice",
            "@example.org",
            "a..b@example.org",
            ".a@example.org",
            "a b@example.org",
            "a@exa_mple.org",
            "a@-example.org",
            "a@",
            "a@bü cher.de",
        ] {
            assert!(Address::parse(bad).is_err(), "{bad} should be rejected");
        }
        // Internationalised domains take their ASCII form.
        assert_eq!(
            Address::parse("Jörg@Bücher.de").unwrap().to_string(),
            "jörg@xn--bcher-kva.de"
        );
        let long = format!("{}@example.org", "a".repeat(65));
        assert!(Address::parse(&long).is_err());
    }
}
