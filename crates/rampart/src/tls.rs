//! The TLS server configuration: the configured certificate, or one made
//! on first start (see [`generated`]).

mod generated;
#[cfg(test)]
mod tests;

use std::fs;
use std::io::BufReader;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, bail};
use rustls::ServerConfig;

use crate::config::Config;
use generated::{Names, Verdict};

/// Where the certificate and key come from.
pub struct TlsFiles {
    /// The PEM certificate chain.
    pub cert: PathBuf,
    /// The PEM private key.
    pub key: PathBuf,
    /// The local CA certificate that signed `cert`, when Rampart made both.
    pub ca: Option<PathBuf>,
    /// Whether the files are in DATA/tls/ rather than configured in `[tls]`.
    pub generated: bool,
    /// What this start did to the files in DATA/tls/, for the banner.
    pub event: Option<String>,
}

/// Resolves the certificate files. Without `[tls]` cert and key, makes a
/// certificate in DATA/tls/ on first start, and replaces one made earlier
/// that no longer fits (an earlier Rampart's, another hostname's, or one
/// expiring within 30 days), keeping the old files as `*.old`. Files the
/// operator configured or put in DATA/tls/ themselves are never touched.
pub fn prepare(config: &Config) -> anyhow::Result<TlsFiles> {
    prepare_at(config, time::OffsetDateTime::now_utc())
}

/// [`prepare`] as of the time `now`.
fn prepare_at(config: &Config, now: time::OffsetDateTime) -> anyhow::Result<TlsFiles> {
    if let (Some(cert), Some(key)) = (&config.tls.cert, &config.tls.key) {
        return Ok(TlsFiles {
            cert: cert.clone(),
            key: key.clone(),
            ca: None,
            generated: false,
            event: None,
        });
    }
    let dir = config.server.data_dir.join("tls");
    let mut files = TlsFiles {
        cert: dir.join("cert.pem"),
        key: dir.join("key.pem"),
        ca: None,
        generated: true,
        event: None,
    };
    let ca = dir.join("ca.pem");
    let names = Names::for_hostname(&config.server.hostname);
    // Whether the files in DATA/tls/ are Rampart's own, current ones.
    let ours = if !files.cert.exists() && !files.key.exists() {
        fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
        install(&dir, &files, &ca, &generated::generate(&names, now)?)?;
        files.event = Some(format!(
            "made on this start for {}, signed by a new local CA",
            names.common_name
        ));
        true
    } else if files.cert.exists() && files.key.exists() {
        let pem = fs::read(&files.cert)
            .with_context(|| format!("cannot read {}", files.cert.display()))?;
        match generated::inspect(&pem, &names, now) {
            Verdict::Fresh => true,
            Verdict::Foreign => false,
            Verdict::Stale(reason) => {
                let made = generated::generate(&names, now)?;
                for path in [&files.cert, &files.key, &ca] {
                    if path.exists() {
                        fs::rename(path, suffixed(path, "old"))
                            .with_context(|| format!("cannot keep {} as *.old", path.display()))?;
                    }
                }
                install(&dir, &files, &ca, &made)?;
                files.event = Some(format!(
                    "replaced the certificate made earlier, as {reason}; the old files are kept as *.old, and users must trust the new ca.pem"
                ));
                true
            }
        }
    } else {
        // One of the pair is missing: `load` says which.
        false
    };
    if ours && ca.exists() {
        files.ca = Some(ca);
    }
    Ok(files)
}

/// Writes a generated CA, certificate and key into `dir`: each to a `.new`
/// file first, so that a crash leaves no half-written PEM in place.
fn install(
    dir: &Path,
    files: &TlsFiles,
    ca: &Path,
    made: &generated::Generated,
) -> anyhow::Result<()> {
    let writes = [
        (files.key.as_path(), made.key_pem.as_bytes(), 0o600),
        (ca, made.ca_pem.as_bytes(), 0o644),
        (files.cert.as_path(), made.chain_pem.as_bytes(), 0o644),
    ];
    for (path, data, mode) in writes {
        let new = suffixed(path, "new");
        let _ = fs::remove_file(&new);
        write_file(&new, data, mode)?;
        hand_to_owner_of(dir, &new)?;
        fs::rename(&new, path).with_context(|| format!("cannot write {}", path.display()))?;
    }
    Ok(())
}

/// `path` with `.suffix` appended: `cert.pem` becomes `cert.pem.old`.
fn suffixed(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(".");
    name.push(suffix);
    PathBuf::from(name)
}

/// When running as root, gives `path` to the owner of `dir`: after the
/// first start as root the data directory belongs to `server.run_as`, and
/// a certificate replaced later must stay readable by that user.
fn hand_to_owner_of(dir: &Path, path: &Path) -> anyhow::Result<()> {
    use std::os::unix::fs::MetadataExt;
    if !nix::unistd::geteuid().is_root() {
        return Ok(());
    }
    let meta = dir.metadata()?;
    std::os::unix::fs::chown(path, Some(meta.uid()), Some(meta.gid())).with_context(|| {
        format!(
            "cannot hand {} to the data directory's owner",
            path.display()
        )
    })
}

fn write_file(path: &Path, data: &[u8], mode: u32) -> anyhow::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)
        .with_context(|| format!("cannot write {}", path.display()))?;
    f.write_all(data)?;
    f.sync_all()?;
    Ok(())
}

/// A loaded server configuration and what the banner says about it.
pub struct Loaded {
    /// The rustls server configuration.
    pub config: Arc<ServerConfig>,
    /// The SHA-256 fingerprint of the server certificate (see [`fingerprint`]).
    pub fingerprint: String,
    /// The last day the server certificate is valid (`2027-06-01`), if readable.
    pub valid_until: Option<String>,
}

/// The SHA-256 fingerprint of a DER certificate as Thunderbird and
/// `openssl x509 -fingerprint -sha256` show it: upper-case hex bytes
/// separated by colons.
pub fn fingerprint(der: &[u8]) -> String {
    let digest = ring::digest::digest(&ring::digest::SHA256, der);
    digest
        .as_ref()
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// Loads the certificate and key into a rustls server configuration.
pub fn load(files: &TlsFiles) -> anyhow::Result<Loaded> {
    let fix = if files.generated {
        "remove the tls directory in the data directory, and Rampart makes a new certificate"
    } else {
        "fix [tls] cert/key in the config, or remove them to use one Rampart makes"
    };
    let cert_file = fs::File::open(&files.cert).with_context(|| {
        format!(
            "cannot read TLS certificate {}: {fix}",
            files.cert.display()
        )
    })?;
    let certs = rustls_pemfile::certs(&mut BufReader::new(cert_file))
        .collect::<Result<Vec<_>, _>>()
        .with_context(|| {
            format!(
                "TLS certificate {} is not valid PEM: {fix}",
                files.cert.display()
            )
        })?;
    if certs.is_empty() {
        bail!(
            "TLS certificate {} holds no certificate: {fix}",
            files.cert.display()
        );
    }
    let key_file = fs::File::open(&files.key)
        .with_context(|| format!("cannot read TLS key {}: {fix}", files.key.display()))?;
    let key = rustls_pemfile::private_key(&mut BufReader::new(key_file))
        .with_context(|| format!("TLS key {} is not valid PEM: {fix}", files.key.display()))?
        .with_context(|| {
            format!(
                "TLS key {} holds no private key: {fix}",
                files.key.display()
            )
        })?;
    let fingerprint = fingerprint(&certs[0]);
    let valid_until = x509_parser::parse_x509_certificate(&certs[0])
        .ok()
        .and_then(|(_, c)| {
            time::OffsetDateTime::from_unix_timestamp(c.validity().not_after.timestamp()).ok()
        })
        .map(|t| t.date().to_string());
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .context("TLS protocol versions")?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .with_context(|| {
            format!(
                "TLS certificate {} and key {} do not belong together: {fix}",
                files.cert.display(),
                files.key.display()
            )
        })?;
    Ok(Loaded {
        config: Arc::new(config),
        fingerprint,
        valid_until,
    })
}

/// A TLS client configuration that verifies servers against the system's
/// trusted roots plus the certificates in `ca_file` (PEM), if given.
pub fn verified_client(ca_file: Option<&Path>) -> anyhow::Result<Arc<rustls::ClientConfig>> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls_native_certs::load_native_certs().certs {
        let _ = roots.add(cert);
    }
    if let Some(path) = ca_file {
        let file = fs::File::open(path)
            .with_context(|| format!("cannot read CA file {}", path.display()))?;
        let before = roots.len();
        for cert in rustls_pemfile::certs(&mut BufReader::new(file)) {
            roots
                .add(cert.with_context(|| format!("{} is not valid PEM", path.display()))?)
                .with_context(|| format!("{} holds an unusable certificate", path.display()))?;
        }
        if roots.len() == before {
            bail!("CA file {} holds no certificate", path.display());
        }
    }
    if roots.is_empty() {
        tracing::warn!(
            "no trusted root certificates on this system: verified TLS (MTA-STS, smarthost) will fail"
        );
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    Ok(Arc::new(
        rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .context("TLS protocol versions")?
            .with_root_certificates(roots)
            .with_no_client_auth(),
    ))
}
