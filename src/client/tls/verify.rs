//! Server certificate checks other than a CA's: a pinned fingerprint, or
//! none (`--insecure`). Both still check the handshake's signature with
//! the certificate's key, so the peer holds the key of what it presented.

use std::fmt;
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, CryptoProvider};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{CertificateError, DigitallySignedStruct, Error, OtherError, SignatureScheme};

use super::cert::Fingerprint;

/// What the server's certificate must be.
#[derive(Debug, Clone, Copy)]
pub enum Accept {
    /// The one whose DER hashes to this.
    Pinned(Fingerprint),
    /// Any (`--insecure`).
    Any,
}

/// The verifier for [`Accept`].
#[derive(Debug)]
pub struct Verifier {
    accept: Accept,
    provider: Arc<CryptoProvider>,
}

impl Verifier {
    pub fn new(accept: Accept, provider: Arc<CryptoProvider>) -> Self {
        Self { accept, provider }
    }
}

/// The pinned fingerprint differs from the certificate's: rustls carries
/// it as an `OtherError`, and the client tells it from other refusals by
/// its type.
#[derive(Debug)]
pub struct FingerprintMismatch {
    /// The certificate's fingerprint.
    pub got: Fingerprint,
}

impl fmt::Display for FingerprintMismatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "the server's certificate has fingerprint {}", self.got)
    }
}

impl std::error::Error for FingerprintMismatch {}

impl ServerCertVerifier for Verifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, Error> {
        match self.accept {
            Accept::Any => Ok(ServerCertVerified::assertion()),
            Accept::Pinned(pin) => {
                let got = Fingerprint::of(end_entity);
                if got == pin {
                    Ok(ServerCertVerified::assertion())
                } else {
                    Err(Error::InvalidCertificate(CertificateError::Other(
                        OtherError(Arc::new(FingerprintMismatch { got })),
                    )))
                }
            }
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}
