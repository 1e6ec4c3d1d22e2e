//! TLS for the tests of both binaries: certificates made by rcgen (a CA,
//! a server and a client certificate, more on demand, written as PEM
//! files), fingerprints in the binaries' forms, and a small TLS echo peer
//! (rustls, a thread per connection) for the client's tests.

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::Duration;

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use rustls::server::WebPkiClientVerifier;
use rustls::{
    RootCertStore, ServerConfig, ServerConnection, StreamOwned, SupportedProtocolVersion,
};
use sha2::{Digest, Sha256};

/// A certificate, its key, and where their PEM files are.
pub struct Issued {
    pub der: CertificateDer<'static>,
    pub key_der: Vec<u8>,
    pub cert_pem: PathBuf,
    pub key_pem: PathBuf,
}

impl Issued {
    /// The certificate's PEM file.
    pub fn cert(&self) -> &str {
        self.cert_pem.to_str().unwrap()
    }

    /// The key's PEM file.
    pub fn key(&self) -> &str {
        self.key_pem.to_str().unwrap()
    }

    /// SHA-256 of the DER as 64 lower-case hex digits.
    pub fn fingerprint(&self) -> String {
        hex(self.der.as_ref())
    }

    fn private_key(&self) -> PrivateKeyDer<'static> {
        PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(self.key_der.clone()))
    }
}

/// SHA-256 of `der` as the binaries print it: upper-case hex pairs
/// joined by colons.
pub fn fingerprint(der: &[u8]) -> String {
    colons(&hex(der))
}

/// Upper-case hex with colons, as the binaries print fingerprints.
pub fn colons(hex: &str) -> String {
    hex.as_bytes()
        .chunks(2)
        .map(|p| std::str::from_utf8(p).unwrap().to_ascii_uppercase())
        .collect::<Vec<_>>()
        .join(":")
}

fn hex(der: &[u8]) -> String {
    Sha256::digest(der)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// A CA and what it signed, in a directory removed on drop.
pub struct Pki {
    pub dir: PathBuf,
    pub ca: Issued,
    /// For `localhost` and 127.0.0.1, valid until 2040-01-02.
    pub server: Issued,
    /// A client certificate for mutual TLS.
    pub client: Issued,
    ca_key: KeyPair,
    ca_cert: rcgen::Certificate,
}

/// The server certificate's end of validity, as the client reports it.
pub const SERVER_NOT_AFTER: &str = "2040-01-02T00:00:00Z";

impl Pki {
    /// A fresh CA named `ca_name` and its certificates, in a new directory.
    pub fn new(ca_name: &str) -> Pki {
        Pki::valid_until(ca_name, (2040, 1, 2))
    }

    /// The same with the server and client certificates expiring on
    /// this date (year, month, day) instead.
    pub fn valid_until(ca_name: &str, (year, month, day): (i32, u8, u8)) -> Pki {
        let dir = std::env::temp_dir().join(format!(
            "echo-tls-{}-{}-{}",
            std::process::id(),
            ca_name.replace(' ', "-"),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let ca_key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, ca_name);
        let ca_cert = params.self_signed(&ca_key).unwrap();
        let ca = write(&dir, "ca", ca_cert.der().clone(), &ca_cert.pem(), &ca_key);
        let until = |params: &mut CertificateParams| {
            params
                .distinguished_name
                .push(DnType::OrganizationName, "echo tests");
            params.not_after = rcgen::date_time_ymd(year, month, day);
        };
        let server = issue(&dir, (&ca_cert, &ca_key), "localhost", LOCAL_NAMES, until);
        let client = issue(
            &dir,
            (&ca_cert, &ca_key),
            "test-client",
            &["test-client"],
            until,
        );
        Pki {
            dir,
            ca,
            server,
            client,
            ca_key,
            ca_cert,
        }
    }

    /// The CA certificate's PEM file.
    pub fn ca(&self) -> &str {
        self.ca.cert()
    }

    /// A certificate named `name` for localhost and 127.0.0.1 signed by
    /// the CA, as `NAME.pem` and `NAME.key`.
    pub fn leaf(&self, name: &str) -> Issued {
        self.leaf_with(name, |_| {})
    }

    /// As [`leaf`](Self::leaf), its parameters changed by `adjust`.
    pub fn leaf_with(&self, name: &str, adjust: impl FnOnce(&mut CertificateParams)) -> Issued {
        issue(
            &self.dir,
            (&self.ca_cert, &self.ca_key),
            name,
            LOCAL_NAMES,
            adjust,
        )
    }

    /// A file `name` in the directory with `content`.
    pub fn file(&self, name: &str, content: &[u8]) -> String {
        let path = self.dir.join(name);
        std::fs::write(&path, content).unwrap();
        path.to_str().unwrap().to_string()
    }
}

/// The names a server certificate is for.
const LOCAL_NAMES: &[&str] = &["localhost", "127.0.0.1"];

/// A certificate for `sans` named `name`, signed by `ca`, its parameters
/// changed by `adjust`, written in `dir`.
fn issue(
    dir: &Path,
    (ca_cert, ca_key): (&rcgen::Certificate, &KeyPair),
    name: &str,
    sans: &[&str],
    adjust: impl FnOnce(&mut CertificateParams),
) -> Issued {
    let key = KeyPair::generate().unwrap();
    let sans = sans.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    let mut params = CertificateParams::new(sans).unwrap();
    params.distinguished_name.push(DnType::CommonName, name);
    adjust(&mut params);
    let cert = params.signed_by(&key, ca_cert, ca_key).unwrap();
    write(dir, name, cert.der().clone(), &cert.pem(), &key)
}

static NEXT: AtomicUsize = AtomicUsize::new(0);

fn write(dir: &Path, name: &str, der: CertificateDer<'static>, pem: &str, key: &KeyPair) -> Issued {
    let cert_pem = dir.join(format!("{name}.pem"));
    let key_pem = dir.join(format!("{name}.key"));
    std::fs::write(&cert_pem, pem).unwrap();
    std::fs::write(&key_pem, key.serialize_pem()).unwrap();
    Issued {
        der,
        key_der: key.serialize_der(),
        cert_pem,
        key_pem,
    }
}

impl Drop for Pki {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// rustls's ring provider, as both binaries use it.
#[allow(deprecated)]
pub fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// How the peer serves.
pub struct PeerOptions<'a> {
    pub versions: &'a [&'static SupportedProtocolVersion],
    /// Require a client certificate signed by this CA.
    pub client_ca: Option<&'a Issued>,
}

impl Default for PeerOptions<'_> {
    fn default() -> Self {
        PeerOptions {
            versions: rustls::ALL_VERSIONS,
            client_ca: None,
        }
    }
}

/// A TLS echo on a loopback port: every connection on its own thread,
/// echoing plaintext until the client's close_notify or FIN.
pub struct TlsPeer {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    accept: Option<JoinHandle<()>>,
    /// Handshakes that failed, with rustls's reason.
    pub refused: Arc<Mutex<Vec<String>>>,
    /// Plaintext bytes echoed, over all connections.
    pub echoed: Arc<AtomicUsize>,
}

impl TlsPeer {
    /// Serves `pki.server`'s certificate.
    pub fn start(pki: &Pki, options: PeerOptions<'_>) -> TlsPeer {
        let builder = ServerConfig::builder_with_provider(provider())
            .with_protocol_versions(options.versions)
            .unwrap();
        let builder = match options.client_ca {
            Some(ca) => {
                let mut roots = RootCertStore::empty();
                roots.add(ca.der.clone()).unwrap();
                let verifier =
                    WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider())
                        .build()
                        .unwrap();
                builder.with_client_cert_verifier(verifier)
            }
            None => builder.with_no_client_auth(),
        };
        let config = Arc::new(
            builder
                .with_single_cert(vec![pki.server.der.clone()], pki.server.private_key())
                .unwrap(),
        );
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let addr = listener.local_addr().unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let refused = Arc::new(Mutex::new(Vec::new()));
        let echoed = Arc::new(AtomicUsize::new(0));
        let (thread_stop, thread_refused, thread_echoed) =
            (Arc::clone(&stop), Arc::clone(&refused), Arc::clone(&echoed));
        let accept = thread::spawn(move || {
            while !thread_stop.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((socket, _)) => {
                        let config = Arc::clone(&config);
                        let refused = Arc::clone(&thread_refused);
                        let echoed = Arc::clone(&thread_echoed);
                        thread::spawn(move || serve(socket, config, &refused, &echoed));
                    }
                    Err(e) if e.kind() == ErrorKind::WouldBlock => {
                        thread::sleep(Duration::from_millis(5))
                    }
                    Err(_) => return,
                }
            }
        });
        TlsPeer {
            addr,
            stop,
            accept: Some(accept),
            refused,
            echoed,
        }
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The reasons of the failed handshakes so far.
    pub fn refusals(&self) -> Vec<String> {
        self.refused.lock().unwrap().clone()
    }
}

fn serve(
    socket: TcpStream,
    config: Arc<ServerConfig>,
    refused: &Mutex<Vec<String>>,
    echoed: &AtomicUsize,
) {
    // A test that failed half-way must not leave this thread forever.
    let _ = socket.set_nonblocking(false);
    let _ = socket.set_read_timeout(Some(Duration::from_secs(20)));
    let _ = socket.set_nodelay(true);
    let conn = ServerConnection::new(config).unwrap();
    let mut tls = StreamOwned::new(conn, socket);
    let mut buf = vec![0; 64 * 1024];
    loop {
        match tls.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                if tls.write_all(&buf[..n]).is_err() {
                    return;
                }
                echoed.fetch_add(n, Ordering::Relaxed);
            }
            Err(e) => {
                if tls.conn.is_handshaking() || e.get_ref().is_some_and(|i| i.is::<rustls::Error>())
                {
                    refused.lock().unwrap().push(e.to_string());
                }
                return;
            }
        }
    }
    tls.conn.send_close_notify();
    let _ = tls.flush();
}

impl Drop for TlsPeer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(accept) = self.accept.take() {
            let _ = accept.join();
        }
    }
}
