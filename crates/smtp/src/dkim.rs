//! DKIM keys and signatures for outgoing mail (RFC 6376, RFC 8463).

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use mail_auth::common::crypto::{Ed25519Key, RsaKey, Sha256};
use mail_auth::common::headers::HeaderWriter;
use mail_auth::dkim::DkimSigner;
use mail_auth::dkim::generate::DkimKeyPair;
use rampart_core::model::DkimKey;

/// The algorithm name of Ed25519 keys.
pub const ED25519: &str = "ed25519-sha256";
/// The algorithm name of RSA keys.
pub const RSA: &str = "rsa-sha256";

/// Headers covered by the signature, in signing order.
const SIGNED_HEADERS: [&str; 12] = [
    "From",
    "To",
    "Cc",
    "Subject",
    "Date",
    "Message-ID",
    "Reply-To",
    "In-Reply-To",
    "References",
    "MIME-Version",
    "Content-Type",
    "Content-Transfer-Encoding",
];

/// Why a key could not be made or used.
#[derive(Debug, thiserror::Error)]
#[error("DKIM: {0}")]
pub struct DkimError(String);

/// Generates an Ed25519 and an RSA-2048 key, named `<base>-ed25519` and `<base>-rsa`.
pub fn generate(selector_base: &str) -> Result<Vec<DkimKey>, DkimError> {
    let ed = DkimKeyPair::generate_ed25519().map_err(|e| DkimError(e.to_string()))?;
    let rsa = DkimKeyPair::generate_rsa(2048).map_err(|e| DkimError(e.to_string()))?;
    let (ed_private, ed_public) = ed.into_inner();
    let (rsa_private, rsa_public) = rsa.into_inner();
    Ok(vec![
        DkimKey {
            selector: format!("{selector_base}-ed25519"),
            algorithm: ED25519.into(),
            private_key: ed_private,
            public_key: ed_public,
        },
        DkimKey {
            selector: format!("{selector_base}-rsa"),
            algorithm: RSA.into(),
            private_key: rsa_private,
            // Published as SubjectPublicKeyInfo, the form every verifier reads.
            public_key: rsa_spki(&rsa_public),
        },
    ])
}

/// The TXT record value to publish at `<selector>._domainkey.<domain>`.
pub fn dns_record(key: &DkimKey) -> String {
    public_record(&key.algorithm, &key.public_key)
}

/// The TXT record value of a public key with its algorithm name.
pub fn public_record(algorithm: &str, public_key: &[u8]) -> String {
    let k = if algorithm == ED25519 {
        "ed25519"
    } else {
        "rsa"
    };
    format!("v=DKIM1; k={k}; p={}", B64.encode(public_key))
}

/// Signs `message` for `domain` with every key; returns the header lines to prepend.
pub fn sign(message: &[u8], domain: &str, keys: &[DkimKey]) -> Result<String, DkimError> {
    let mut headers = String::new();
    for key in keys {
        let bad_key = |e: mail_auth::Error| DkimError(format!("key {}: {e}", key.selector));
        let signature = match key.algorithm.as_str() {
            ED25519 => sign_with(
                Ed25519Key::from_pkcs8_der(&key.private_key).map_err(bad_key)?,
                domain,
                &key.selector,
                message,
            ),
            RSA => {
                let der = rustls_pki_types::PrivateKeyDer::Pkcs1(key.private_key.clone().into());
                sign_with(
                    RsaKey::<Sha256>::from_key_der(der).map_err(bad_key)?,
                    domain,
                    &key.selector,
                    message,
                )
            }
            other => return Err(DkimError(format!("unknown algorithm {other}"))),
        }
        .map_err(|e| DkimError(format!("signing with {}: {e}", key.selector)))?;
        headers.push_str(&signature.to_header());
    }
    Ok(headers)
}

fn sign_with<K: mail_auth::common::crypto::SigningKey>(
    key: K,
    domain: &str,
    selector: &str,
    message: &[u8],
) -> mail_auth::Result<mail_auth::dkim::Signature> {
    DkimSigner::from_key(key)
        .domain(domain)
        .selector(selector)
        .headers(SIGNED_HEADERS)
        .sign(message)
}

/// Wraps a PKCS#1 RSAPublicKey in a SubjectPublicKeyInfo (DER).
fn rsa_spki(pkcs1: &[u8]) -> Vec<u8> {
    // AlgorithmIdentifier { rsaEncryption, NULL }
    const ALGORITHM: [u8; 15] = [
        0x30, 0x0d, 0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01, 0x05, 0x00,
    ];
    let mut bit_string = vec![0x00];
    bit_string.extend_from_slice(pkcs1);
    let mut body = ALGORITHM.to_vec();
    body.push(0x03);
    der_len(&mut body, bit_string.len());
    body.extend_from_slice(&bit_string);
    let mut out = vec![0x30];
    der_len(&mut out, body.len());
    out.extend_from_slice(&body);
    out
}

fn der_len(out: &mut Vec<u8>, len: usize) {
    if len < 0x80 {
        out.push(len as u8);
    } else {
        let bytes: Vec<u8> = len
            .to_be_bytes()
            .into_iter()
            .skip_while(|&b| b == 0)
            .collect();
        out.push(0x80 | bytes.len() as u8);
        out.extend_from_slice(&bytes);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_sign_and_publish() {
        let keys = generate("test").unwrap();
        assert_eq!(keys[0].selector, "test-ed25519");
        assert_eq!(keys[1].selector, "test-rsa");
        assert!(dns_record(&keys[0]).starts_with("v=DKIM1; k=ed25519; p="));
        // An RSA-2048 SPKI starts with SEQUENCE, length 0x0122.
        assert_eq!(&keys[1].public_key[..4], &[0x30, 0x82, 0x01, 0x22]);
        let headers = sign(
            b"From: a@example.org\r\nSubject: x\r\n\r\nbody\r\n",
            "example.org",
            &keys,
        )
        .unwrap();
        assert_eq!(headers.matches("DKIM-Signature:").count(), 2);
        assert!(headers.contains("d=example.org") && headers.contains("s=test-rsa"));
    }
}
