//! `--tls`: the client's side of a TLS connection, for `send`, `ping` and
//! `bench`.
//!
//! - [`args`]: the options.
//! - [`TlsClient`]: the rustls configuration built from them (ring
//!   provider, TLS 1.2 and 1.3) and the server name to use.
//! - [`stream`]: a non-blocking rustls connection over a mio socket,
//!   driven by whoever polls it (the session, the bench loop).
//! - [`verify`]: pinning a fingerprint, or `--insecure`.
//! - [`cert`]: the server certificate's facts for the report.

pub mod args;
pub mod cert;
pub mod stream;
mod verify;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::{CertificateError, ClientConfig, ClientConnection, RootCertStore};
use serde::Serialize;

pub use self::args::TlsArgs;
pub use self::cert::{CertFacts, Fingerprint};
pub use self::stream::TlsStream;
use self::verify::{Accept, FingerprintMismatch, Verifier};
use super::error::{ClientError, TlsFailure};
use super::rtt::millis;
use crate::logic::json;

/// Everything a connection needs to start its handshake.
#[derive(Debug, Clone)]
pub struct TlsClient {
    config: Arc<ClientConfig>,
    name: ServerName<'static>,
    client_certificate: bool,
}

impl TlsClient {
    /// The configuration `args` ask for, towards `host` (the host of the
    /// target); `None` without `--tls`. Unreadable or malformed files, or
    /// no way to trust the server, are usage errors.
    pub fn from_args(args: &TlsArgs, host: &str) -> Result<Option<Self>, ClientError> {
        if !args.tls {
            return Ok(None);
        }
        let provider = Arc::new(provider());
        let builder = ClientConfig::builder_with_provider(Arc::clone(&provider))
            .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
            .map_err(|e| ClientError::Other(format!("cannot set up TLS: {e}")))?;
        let builder = if let Some(ca) = &args.ca {
            builder.with_root_certificates(roots(ca)?)
        } else {
            let accept = match (args.tls_fingerprint, args.insecure) {
                (Some(pin), _) => Accept::Pinned(pin),
                (None, true) => Accept::Any,
                (None, false) => {
                    return Err(ClientError::Usage(
                        "--tls needs a way to trust the server: --ca PEM (the system's bundle works: --ca /etc/ssl/certs/ca-certificates.crt), --tls-fingerprint HEX, or --insecure".into(),
                    ))
                }
            };
            builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(Verifier::new(accept, provider)))
        };
        let config = match (&args.cert, &args.key) {
            (Some(cert), Some(key)) => builder
                .with_client_auth_cert(certificates(cert, "--cert")?, private_key(key)?)
                .map_err(|e| {
                    ClientError::Usage(format!(
                        "--cert {} and --key {} do not go together: {e}",
                        cert.display(),
                        key.display()
                    ))
                })?,
            _ => builder.with_no_client_auth(),
        };
        let wanted = args.sni.as_deref().unwrap_or(host);
        let name = ServerName::try_from(wanted.to_string()).map_err(|_| {
            ClientError::Usage(format!(
                "'{wanted}' cannot be a TLS server name (a DNS name or an IP address)"
            ))
        })?;
        Ok(Some(Self {
            config: Arc::new(config),
            name,
            client_certificate: args.cert.is_some(),
        }))
    }

    /// A new client connection, its ClientHello ready to send.
    pub fn connection(&self) -> Result<ClientConnection, ClientError> {
        ClientConnection::new(Arc::clone(&self.config), self.name.clone())
            .map_err(|e| ClientError::Other(format!("cannot start a TLS connection: {e}")))
    }

    /// Whether a client certificate is configured (`--cert`).
    pub fn has_client_certificate(&self) -> bool {
        self.client_certificate
    }

    /// The SNI the handshake sends: none for an IP address.
    pub fn sni(&self) -> Option<String> {
        match &self.name {
            ServerName::DnsName(name) => Some(name.as_ref().to_string()),
            _ => None,
        }
    }
}

/// rustls's ring provider. 0.23.48 deprecates it for lacking post-quantum
/// key exchange (aws-lc-rs has it), but the project builds without a C
/// toolchain's cmake, and the server uses the same provider and suites.
#[allow(deprecated)]
pub fn provider() -> rustls::crypto::CryptoProvider {
    rustls::crypto::ring::default_provider()
}

fn roots(path: &Path) -> Result<RootCertStore, ClientError> {
    let mut roots = RootCertStore::empty();
    let (added, _ignored) = roots.add_parsable_certificates(certificates(path, "--ca")?);
    if added == 0 {
        return Err(ClientError::Usage(format!(
            "--ca {}: no usable CA certificate in it",
            path.display()
        )));
    }
    Ok(roots)
}

fn certificates(path: &Path, option: &str) -> Result<Vec<CertificateDer<'static>>, ClientError> {
    let unreadable =
        |e: &dyn std::fmt::Display| ClientError::Usage(format!("{option} {}: {e}", path.display()));
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| unreadable(&e))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| unreadable(&e))?;
    if certs.is_empty() {
        return Err(unreadable(&"no PEM certificate (BEGIN CERTIFICATE) in it"));
    }
    Ok(certs)
}

fn private_key(path: &Path) -> Result<PrivateKeyDer<'static>, ClientError> {
    PrivateKeyDer::from_pem_file(path)
        .map_err(|e| ClientError::Usage(format!("--key {}: {e}", path.display())))
}

/// The failure a rustls error stands for: the certificate refused
/// (fingerprint, or not trusted), or anything else in the handshake.
pub fn failure(e: &rustls::Error) -> ClientError {
    let (failure, detail) = match e {
        rustls::Error::InvalidCertificate(CertificateError::Other(other)) => {
            match other.0.downcast_ref::<FingerprintMismatch>() {
                Some(mismatch) => (TlsFailure::Fingerprint, mismatch.to_string()),
                None => (TlsFailure::Untrusted, e.to_string()),
            }
        }
        rustls::Error::InvalidCertificate(_) => (TlsFailure::Untrusted, e.to_string()),
        other => (TlsFailure::Handshake, other.to_string()),
    };
    ClientError::Tls { failure, detail }
}

/// The handshake's facts, for the report.
#[derive(Debug, Clone, Serialize)]
pub struct TlsFacts {
    /// `TLSv1.3` or `TLSv1.2`.
    pub version: String,
    /// The IANA name, e.g. `TLS13_AES_256_GCM_SHA384`.
    pub cipher_suite: String,
    /// The name sent as SNI (none for an IP address).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sni: Option<String>,
    /// From the ClientHello to the handshake's end, after the TCP connect.
    #[serde(skip)]
    pub handshake: Duration,
    /// The same in milliseconds, to the microsecond.
    pub handshake_ms: f64,
    /// The server's leaf certificate.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub server_certificate: Option<ServerCert>,
    /// Whether the client presented a certificate.
    pub client_certificate: bool,
}

/// The certificate as JSON shows it.
#[derive(Debug, Clone, Serialize)]
pub struct ServerCert {
    /// As `CN=…, O=…`.
    pub subject: String,
    /// The end of its validity, RFC 3339 UTC.
    pub not_after: String,
    /// SHA-256 of its DER, what `--tls-fingerprint` pins.
    #[serde(serialize_with = "json::display")]
    pub sha256: Fingerprint,
}

impl TlsFacts {
    /// A JSON document (an object) with these facts as its last key, `tls`,
    /// its other keys kept in their order.
    pub fn append_to(&self, document: &str) -> String {
        match document.strip_suffix('}') {
            Some(head) if head.len() > 1 => format!("{head},\"tls\":{}}}", json::to_string(self)),
            _ => document.to_string(),
        }
    }

    /// The report's text lines.
    pub fn lines(&self) -> Vec<String> {
        let sni = self
            .sni
            .as_deref()
            .map(|s| format!(", SNI {s}"))
            .unwrap_or_default();
        let mut lines = vec![format!(
            "TLS handshake in {:.3} ms: {}, {}{sni}{}",
            millis(self.handshake),
            self.version,
            self.cipher_suite,
            if self.client_certificate {
                ", client certificate sent"
            } else {
                ""
            }
        )];
        if let Some(cert) = &self.server_certificate {
            lines.push(format!(
                "Server certificate: {}, expires {}, SHA-256 {}",
                if cert.subject.is_empty() {
                    "(no subject)"
                } else {
                    &cert.subject
                },
                cert.not_after,
                cert.sha256
            ));
        }
        lines
    }
}
