//! `--tls-self-signed`: a key and a certificate made at start, so that a
//! lab needs no certificate files; clients pin its fingerprint.

use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

/// A key pair and its self-signed certificate, kept for the life of the
/// process (a reload keeps them: there is no file to read again).
#[derive(Debug)]
pub struct SelfSigned {
    /// The certificate (ECDSA P-256), for the names in [`names`].
    pub cert: CertificateDer<'static>,
    /// Its private key.
    pub key: PrivateKeyDer<'static>,
    /// The names and addresses it is valid for.
    pub names: Vec<String>,
}

impl SelfSigned {
    /// Makes a key and certificate for `localhost`, this host's name and
    /// the loopback addresses.
    pub fn generate() -> Result<Self, String> {
        let mut names = vec!["localhost".to_string()];
        if let Some(host) = host_name() {
            if !names.contains(&host) {
                names.push(host);
            }
        }
        names.extend(["127.0.0.1".to_string(), "::1".to_string()]);
        let made = rcgen::generate_simple_self_signed(names.clone())
            .map_err(|e| format!("--tls-self-signed: cannot make a certificate: {e}"))?;
        Ok(Self {
            cert: made.cert.der().clone(),
            key: PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(made.key_pair.serialize_der())),
            names,
        })
    }
}

/// The kernel's host name, if it is one a certificate can carry.
fn host_name() -> Option<String> {
    let name = std::fs::read_to_string("/proc/sys/kernel/hostname").ok()?;
    let name = name.trim().to_ascii_lowercase();
    let ok = !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.');
    ok.then_some(name)
}
