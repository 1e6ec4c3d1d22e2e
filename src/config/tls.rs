//! The TLS settings (`--tls-cert`, `--tls-key`, `--tls-self-signed`,
//! `--tls-client-ca`, `--tls-port`, `--handshake-timeout`) as checked
//! values. The files themselves are read at start and on SIGHUP
//! (src/server/tls/config.rs), not here: a missing file is a start-up
//! error (exit 1), a bad combination of flags a command-line one (exit 2).

use std::path::PathBuf;
use std::time::Duration;

/// Where the served certificate and its key come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CertSource {
    /// PEM files, read again on SIGHUP.
    Files {
        /// The certificate chain, leaf first.
        cert: PathBuf,
        /// Its private key (PKCS#8, PKCS#1 or SEC1).
        key: PathBuf,
    },
    /// A key and certificate made at start for this host's names.
    SelfSigned,
}

/// How the server speaks TLS.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsSettings {
    /// The certificate and key.
    pub source: CertSource,
    /// Clients must present a certificate signed by this CA (mutual TLS).
    pub client_ca: Option<PathBuf>,
    /// TLS on this port beside plain TCP on `--port`; `None`: TLS on
    /// `--port` itself.
    pub port: Option<u16>,
    /// A handshake not finished this long after the accept is closed.
    pub handshake_timeout: Duration,
}

/// The TLS flags as given, before they are checked together.
#[derive(Debug, Clone, Default)]
pub struct TlsFlags {
    /// `--tls-cert`.
    pub cert: Option<PathBuf>,
    /// `--tls-key`.
    pub key: Option<PathBuf>,
    /// `--tls-self-signed`.
    pub self_signed: bool,
    /// `--tls-client-ca`.
    pub client_ca: Option<PathBuf>,
    /// `--tls-port`.
    pub port: Option<u16>,
    /// `--handshake-timeout`.
    pub handshake_timeout: Duration,
}

impl TlsFlags {
    /// Flags that do not go together, as the error to stop with.
    pub fn conflicts(&self) -> Option<String> {
        match (&self.cert, &self.key, self.self_signed) {
            (Some(_), _, true) | (_, Some(_), true) => {
                return Some(
                    "--tls-self-signed makes its own certificate: give it without \
                     --tls-cert and --tls-key"
                        .into(),
                )
            }
            (Some(_), None, false) => return Some("--tls-cert needs --tls-key".into()),
            (None, Some(_), false) => return Some("--tls-key needs --tls-cert".into()),
            _ => {}
        }
        let on = self.self_signed || self.cert.is_some();
        if !on && self.client_ca.is_some() {
            return Some("--tls-client-ca needs --tls-cert/--tls-key or --tls-self-signed".into());
        }
        if !on && self.port.is_some() {
            return Some("--tls-port needs --tls-cert/--tls-key or --tls-self-signed".into());
        }
        if self.handshake_timeout.is_zero() {
            return Some("--handshake-timeout must be more than 0 seconds".into());
        }
        None
    }

    /// The settings, if TLS is on (after [`conflicts`](Self::conflicts)
    /// found nothing).
    pub fn into_settings(self) -> Option<TlsSettings> {
        let source = match (self.cert, self.key, self.self_signed) {
            (Some(cert), Some(key), false) => CertSource::Files { cert, key },
            (None, None, true) => CertSource::SelfSigned,
            _ => return None,
        };
        Some(TlsSettings {
            source,
            client_ca: self.client_ca,
            port: self.port,
            handshake_timeout: self.handshake_timeout,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flags() -> TlsFlags {
        TlsFlags {
            handshake_timeout: Duration::from_secs(10),
            ..TlsFlags::default()
        }
    }

    // Half a pair, or a pair beside --tls-self-signed, is refused with the
    // flag named; the TLS-only flags need TLS on.
    #[test]
    fn incomplete_or_doubled_sources_are_refused() {
        let cert = Some(PathBuf::from("c.pem"));
        let key = Some(PathBuf::from("k.pem"));
        let only_cert = TlsFlags {
            cert: cert.clone(),
            ..flags()
        };
        assert_eq!(only_cert.conflicts().unwrap(), "--tls-cert needs --tls-key");
        let both = TlsFlags {
            cert: cert.clone(),
            key: key.clone(),
            self_signed: true,
            ..flags()
        };
        assert!(both.conflicts().unwrap().contains("--tls-self-signed"));
        let ca_alone = TlsFlags {
            client_ca: Some("ca.pem".into()),
            ..flags()
        };
        assert!(ca_alone.conflicts().unwrap().starts_with("--tls-client-ca"));
        let port_alone = TlsFlags {
            port: Some(1),
            ..flags()
        };
        assert!(port_alone.conflicts().unwrap().starts_with("--tls-port"));
        assert_eq!(flags().conflicts(), None);
        assert_eq!(flags().into_settings(), None);
        let pair = TlsFlags {
            cert,
            key,
            ..flags()
        };
        assert_eq!(pair.conflicts(), None);
        assert!(matches!(
            pair.into_settings().unwrap().source,
            CertSource::Files { .. }
        ));
    }
}
