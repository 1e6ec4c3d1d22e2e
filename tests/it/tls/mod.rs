//! TLS in the server (`--tls-cert`, `--tls-self-signed`, `--tls-client-ca`,
//! `--tls-port`): certificates made here with rcgen, clients are rustls in
//! this process or the real `openssl s_client`.
//! Helpers here; the tests in the files below.

mod echo;
mod errors;
mod mtls;
mod openssl;
mod reload;

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{ClientConfig, ClientConnection, DigitallySignedStruct, RootCertStore};

use crate::support::tls::provider;
pub use crate::support::tls::{fingerprint, Issued, Pki};
use crate::support::*;

/// Starts a server with `args` (after the loopback ones) and returns it
/// with the address of its `TLS on ADDR` banner line.
pub fn start_tls(args: &[&str]) -> (Server, SocketAddr) {
    let srv = Server::start(args);
    let line = srv.wait_for("TLS on ", START_TIMEOUT);
    let addr = line["TLS on ".len()..]
        .split(' ')
        .next()
        .unwrap()
        .parse()
        .unwrap_or_else(|e| panic!("TLS address in {line:?}: {e}"));
    (srv, addr)
}

/// A client configuration trusting the CA of `pki`, presenting `client`
/// if given.
pub fn trusting(pki: &Pki, client: Option<&Issued>) -> Arc<ClientConfig> {
    let mut roots = RootCertStore::empty();
    roots.add(pki.ca.der.clone()).unwrap();
    let builder = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots);
    let config = match client {
        Some(leaf) => {
            let key = PrivateKeyDer::from_pem_file(&leaf.key_pem).unwrap();
            builder
                .with_client_auth_cert(vec![leaf.der.clone()], key)
                .unwrap()
        }
        None => builder.with_no_client_auth(),
    };
    Arc::new(config)
}

/// A client configuration that accepts any server certificate (the test
/// then checks its fingerprint itself, as a pinning client would).
pub fn accepting_any() -> Arc<ClientConfig> {
    let config = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AcceptAny(provider())))
        .with_no_client_auth();
    Arc::new(config)
}

#[derive(Debug)]
struct AcceptAny(Arc<CryptoProvider>);

impl ServerCertVerifier for AcceptAny {
    fn verify_server_cert(
        &self,
        _: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// A TLS client connection over a non-blocking socket, driven by hand so
/// that a test can write without reading (and see backpressure).
pub struct TlsClient {
    pub conn: ClientConnection,
    pub sock: TcpStream,
}

impl TlsClient {
    /// Connects and completes the handshake (or returns rustls's error).
    pub fn connect(
        addr: SocketAddr,
        config: Arc<ClientConfig>,
        sni: &str,
    ) -> Result<TlsClient, String> {
        let mut client = TlsClient::start(addr, config, sni);
        client.handshake()?;
        Ok(client)
    }

    /// Connects TCP; the handshake is left to [`handshake`](Self::handshake).
    pub fn start(addr: SocketAddr, config: Arc<ClientConfig>, sni: &str) -> TlsClient {
        TlsClient::over(connect(addr), config, sni)
    }

    /// As [`connect`](Self::connect) over the TCP connection `sock`.
    pub fn over(sock: TcpStream, config: Arc<ClientConfig>, sni: &str) -> TlsClient {
        let name = ServerName::try_from(sni.to_string()).unwrap();
        let conn = ClientConnection::new(config, name).unwrap();
        sock.set_nonblocking(true).unwrap();
        TlsClient { conn, sock }
    }

    /// Drives the handshake to its end; then, since TLS 1.3's server
    /// judges a client certificate after the client finished, listens a
    /// little longer for its verdict.
    pub fn handshake(&mut self) -> Result<(), String> {
        let deadline = Instant::now() + Duration::from_secs(10);
        while self.conn.is_handshaking() {
            assert!(Instant::now() < deadline, "handshake did not finish");
            if !self.turn()? {
                std::thread::sleep(Duration::from_millis(1));
            }
        }
        for _ in 0..20 {
            self.turn()?;
            std::thread::sleep(Duration::from_millis(5));
        }
        Ok(())
    }

    /// Sends what rustls holds and takes what the socket has; false when
    /// nothing moved. A TLS error (an alert from the server) is returned.
    pub fn turn(&mut self) -> Result<bool, String> {
        let mut moved = false;
        while self.conn.wants_write() {
            match self.conn.write_tls(&mut self.sock) {
                Ok(_) => moved = true,
                Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                Err(e) => return Err(format!("write: {e}")),
            }
        }
        match self.conn.read_tls(&mut self.sock) {
            Ok(0) => {
                self.conn.process_new_packets().map_err(|e| e.to_string())?;
                return Err("eof".into());
            }
            Ok(_) => {
                moved = true;
                self.conn.process_new_packets().map_err(|e| e.to_string())?;
            }
            Err(e) if e.kind() == ErrorKind::WouldBlock => {}
            Err(e) => return Err(format!("read: {e}")),
        }
        Ok(moved)
    }

    /// Plaintext received so far, appended to `into`.
    pub fn take(&mut self, into: &mut Vec<u8>) {
        let mut buf = [0u8; 16384];
        loop {
            match self.conn.reader().read(&mut buf) {
                Ok(0) => return,
                Ok(n) => into.extend_from_slice(&buf[..n]),
                Err(_) => return,
            }
        }
    }

    /// Sends `data` from byte `sent` on (those before were sent already)
    /// and reads until all of it came back, within `timeout`.
    pub fn echo(&mut self, data: &[u8], sent: usize, timeout: Duration) -> Vec<u8> {
        let deadline = Instant::now() + timeout;
        let mut sent = sent;
        let mut got = Vec::with_capacity(data.len());
        while got.len() < data.len() {
            assert!(
                Instant::now() < deadline,
                "echo stalled: sent {sent}, got {} of {}",
                got.len(),
                data.len()
            );
            let mut moved = false;
            if sent < data.len() && !self.conn.wants_write() {
                let end = data.len().min(sent + 16384);
                let n = self.conn.writer().write(&data[sent..end]).unwrap();
                sent += n;
                moved |= n > 0;
            }
            moved |= self.turn().unwrap();
            self.take(&mut got);
            if !moved {
                std::thread::sleep(Duration::from_millis(1));
            }
        }
        got
    }

    /// Writes `data` without reading until the socket stops taking it
    /// for `quiet`; returns how much plaintext went out.
    pub fn write_until_blocked(&mut self, data: &[u8], quiet: Duration) -> usize {
        let mut sent = 0;
        let mut last_move = Instant::now();
        while last_move.elapsed() < quiet && sent < data.len() {
            if !self.conn.wants_write() {
                let end = data.len().min(sent + 16384);
                sent += self.conn.writer().write(&data[sent..end]).unwrap();
            }
            match self.conn.write_tls(&mut self.sock) {
                Ok(_) => last_move = Instant::now(),
                Err(e) if e.kind() == ErrorKind::WouldBlock => {
                    std::thread::sleep(Duration::from_millis(2))
                }
                Err(e) => panic!("write: {e}"),
            }
        }
        sent
    }

    /// The server's certificate.
    pub fn server_cert(&self) -> CertificateDer<'static> {
        self.conn.peer_certificates().unwrap()[0]
            .clone()
            .into_owned()
    }
}

/// The path as a str, for argument lists.
pub fn s(path: &Path) -> &str {
    path.to_str().unwrap()
}

/// Reads until the server closes `s` (EOF or reset), within `timeout`;
/// returns what it sent before (a TLS alert, say).
pub fn read_until_closed(s: &mut TcpStream, timeout: Duration) -> Vec<u8> {
    let deadline = Instant::now() + timeout;
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        assert!(
            !left.is_zero(),
            "not closed within {timeout:?}; got {got:?}"
        );
        s.set_read_timeout(Some(left)).unwrap();
        match s.read(&mut buf) {
            Ok(0) => return got,
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == ErrorKind::ConnectionReset => return got,
            // A signal to the test process (another test's child stopping,
            // say) interrupts a read with a timeout even under SA_RESTART.
            Err(e)
                if matches!(
                    e.kind(),
                    ErrorKind::WouldBlock | ErrorKind::TimedOut | ErrorKind::Interrupted
                ) => {}
            Err(e) => panic!("reading until closed: {e}"),
        }
    }
}
