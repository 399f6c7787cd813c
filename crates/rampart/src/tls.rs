//! The TLS server configuration: the configured certificate, or a
//! self-signed one made on first start.

use std::fs;
use std::io::BufReader;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, bail};
use rustls::ServerConfig;

use crate::config::Config;

/// Where the certificate and key come from.
pub struct TlsFiles {
    /// The PEM certificate chain.
    pub cert: PathBuf,
    /// The PEM private key.
    pub key: PathBuf,
    /// Whether Rampart made it itself.
    pub self_signed: bool,
}

/// Resolves the certificate files, making a self-signed pair in DATA/tls/
/// when none is configured and none exists yet.
pub fn prepare(config: &Config) -> anyhow::Result<TlsFiles> {
    if let (Some(cert), Some(key)) = (&config.tls.cert, &config.tls.key) {
        return Ok(TlsFiles {
            cert: cert.clone(),
            key: key.clone(),
            self_signed: false,
        });
    }
    let dir = config.server.data_dir.join("tls");
    let files = TlsFiles {
        cert: dir.join("cert.pem"),
        key: dir.join("key.pem"),
        self_signed: true,
    };
    if files.cert.exists() || files.key.exists() {
        return Ok(files);
    }
    fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let mut names = vec![config.server.hostname.clone()];
    if config.server.hostname != "localhost" {
        names.push("localhost".into());
    }
    let certified = rcgen::generate_simple_self_signed(names)
        .context("cannot generate a self-signed certificate")?;
    write_private(&files.key, certified.signing_key.serialize_pem().as_bytes())?;
    fs::write(&files.cert, certified.cert.pem())
        .with_context(|| format!("cannot write {}", files.cert.display()))?;
    Ok(files)
}

fn write_private(path: &Path, data: &[u8]) -> anyhow::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("cannot write {}", path.display()))?;
    f.write_all(data)?;
    f.sync_all()?;
    Ok(())
}

/// Loads the certificate and key into a rustls server configuration.
pub fn load(files: &TlsFiles) -> anyhow::Result<Arc<ServerConfig>> {
    let fix = "fix [tls] cert/key in the config, or remove them to use a self-signed certificate";
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
    Ok(Arc::new(config))
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
