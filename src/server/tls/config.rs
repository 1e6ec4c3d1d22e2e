//! Building the rustls `ServerConfig` from the TLS settings: the PEM files
//! (or the self-signed pair), the client CA for mutual TLS, the versions
//! and the provider. Used at start (an error stops the server, exit 1) and
//! on SIGHUP (an error is logged and the old configuration kept).

use std::path::Path;
use std::sync::Arc;
use std::time::SystemTime;

use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use rustls::{RootCertStore, ServerConfig};

use super::self_signed::SelfSigned;
use super::validity;
use crate::config::tls::{CertSource, TlsSettings};

/// A configuration ready to serve, with the facts the banner and the log
/// give about its certificate.
#[derive(Debug, Clone)]
pub struct Loaded {
    /// What new handshakes use.
    pub config: Arc<ServerConfig>,
    /// SHA-256 of the leaf certificate, as `AB:CD:…`.
    pub fingerprint: String,
    /// When the leaf certificate expires, if its validity could be read.
    pub not_after: Option<SystemTime>,
}

impl Loaded {
    /// The expiry warning to log, if the certificate has expired by `now`.
    pub fn expired_warning(&self, now: SystemTime) -> Option<String> {
        let not_after = self.not_after?;
        (not_after < now).then(|| {
            format!(
                "the TLS certificate expired on {}: clients that check it will refuse the handshake",
                humantime::format_rfc3339_seconds(not_after)
            )
        })
    }
}

/// The crypto provider every configuration uses: ring, with its default
/// suites (TLS 1.3's three AEADs, TLS 1.2's ECDHE suites).
pub fn provider() -> Arc<CryptoProvider> {
    // Deprecated in 0.23.48 only to point at aws-lc-rs's post-quantum key
    // exchange; ring is the provider chosen here (no C build of aws-lc),
    // and its classical groups are what every TLS client offers.
    #[allow(deprecated)]
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Reads the files `settings` name (or takes `self_signed`) and builds the
/// configuration; the error names the flag and the file.
pub fn load(settings: &TlsSettings, self_signed: Option<&SelfSigned>) -> Result<Loaded, String> {
    let (chain, key) = match (&settings.source, self_signed) {
        (CertSource::Files { cert, key }, _) => (read_chain(cert)?, read_key(key)?),
        (CertSource::SelfSigned, Some(made)) => (vec![made.cert.clone()], made.key.clone_key()),
        (CertSource::SelfSigned, None) => {
            return Err("--tls-self-signed: no certificate was made".into())
        }
    };
    let leaf = chain[0].clone();
    let provider = provider();
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|e| format!("TLS: {e}"))?;
    let builder = match &settings.client_ca {
        Some(path) => {
            let roots = read_roots(path)?;
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                .build()
                .map_err(|e| format!("--tls-client-ca {}: {e}", path.display()))?;
            builder.with_client_cert_verifier(verifier)
        }
        None => builder.with_no_client_auth(),
    };
    let mut config = builder.with_single_cert(chain, key).map_err(|e| match e {
        rustls::Error::InconsistentKeys(_) => format!(
            "--tls-key {}: the key does not match the certificate of --tls-cert {}",
            source_name(settings, Flag::Key),
            source_name(settings, Flag::Cert)
        ),
        other => format!(
            "--tls-key {}: cannot use the key: {other}",
            source_name(settings, Flag::Key)
        ),
    })?;
    // Sessions are resumed by tickets only (no per-client state held here).
    config.session_storage = Arc::new(rustls::server::NoServerSessionStorage {});
    Ok(Loaded {
        config: Arc::new(config),
        fingerprint: fingerprint(&leaf),
        not_after: validity::not_after(&leaf),
    })
}

enum Flag {
    Cert,
    Key,
}

fn source_name(settings: &TlsSettings, flag: Flag) -> String {
    match (&settings.source, flag) {
        (CertSource::Files { cert, .. }, Flag::Cert) => cert.display().to_string(),
        (CertSource::Files { key, .. }, Flag::Key) => key.display().to_string(),
        (CertSource::SelfSigned, _) => "(self-signed)".into(),
    }
}

/// The SHA-256 of a certificate's DER, as upper-case hex pairs joined by
/// colons (as `openssl x509 -fingerprint -sha256` prints it).
pub fn fingerprint(cert: &CertificateDer<'_>) -> String {
    let digest = ring::digest::digest(&ring::digest::SHA256, cert.as_ref());
    let pairs: Vec<String> = digest.as_ref().iter().map(|b| format!("{b:02X}")).collect();
    pairs.join(":")
}

/// Why a PEM file could not be used, in words: the I/O error's own text
/// (no such file, permission denied) or what is wrong with the content.
fn pem_error(error: rustls::pki_types::pem::Error) -> String {
    match error {
        rustls::pki_types::pem::Error::Io(e) => e.to_string(),
        rustls::pki_types::pem::Error::NoItemsFound => "no PEM block of the expected kind".into(),
        other => format!("not valid PEM ({other:?})"),
    }
}

fn read_chain(path: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    let what = |why: String| format!("--tls-cert {}: {why}", path.display());
    let chain = CertificateDer::pem_file_iter(path)
        .map_err(|e| what(pem_error(e)))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| what(pem_error(e)))?;
    if chain.is_empty() {
        return Err(what(
            "no certificate in it (expected `BEGIN CERTIFICATE`)".into(),
        ));
    }
    if let Err(e) = rustls::server::ParsedCertificate::try_from(&chain[0]) {
        return Err(what(format!("not a valid certificate: {e}")));
    }
    Ok(chain)
}

fn read_key(path: &Path) -> Result<PrivateKeyDer<'static>, String> {
    PrivateKeyDer::from_pem_file(path).map_err(|e| {
        let why = match e {
            rustls::pki_types::pem::Error::NoItemsFound => {
                "no private key in it (expected `BEGIN PRIVATE KEY`, `BEGIN RSA PRIVATE KEY` \
                 or `BEGIN EC PRIVATE KEY`)"
                    .into()
            }
            other => pem_error(other),
        };
        format!("--tls-key {}: {why}", path.display())
    })
}

fn read_roots(path: &Path) -> Result<RootCertStore, String> {
    let what = |why: String| format!("--tls-client-ca {}: {why}", path.display());
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| what(pem_error(e)))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| what(pem_error(e)))?;
    let mut roots = RootCertStore::empty();
    for cert in certs {
        roots
            .add(cert)
            .map_err(|e| what(format!("not a usable CA certificate: {e}")))?;
    }
    if roots.is_empty() {
        return Err(what(
            "no certificate in it (expected `BEGIN CERTIFICATE`)".into(),
        ));
    }
    Ok(roots)
}
