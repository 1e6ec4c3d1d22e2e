//! A rustls client connection over a non-blocking mio socket: `Read` and
//! `Write` move plaintext and return `WouldBlock` exactly when the socket
//! did, so the callers' edge-triggered loops stay as they are for TCP.
//! Ciphertext left unsent by one call goes out with the next read or
//! write, and rustls never holds more than one chunk of it.

use std::io::{self, ErrorKind, Read, Write};
use std::net::Shutdown;
use std::time::Duration;

use mio::net::TcpStream;
use rustls::ClientConnection;

use super::cert::CertFacts;
use super::{failure, ServerCert, TlsClient, TlsFacts};
use crate::client::error::{is_reset, ClientError, TlsFailure};
use crate::client::rtt::millis;

/// Most plaintext taken per write: its records fit well within rustls's
/// default 64 KiB buffer limit, so a write never meets that limit.
const WRITE_CHUNK: usize = 32 * 1024;

/// One TLS connection and its socket.
#[derive(Debug)]
pub struct TlsStream {
    /// The socket, carrying ciphertext.
    pub tcp: TcpStream,
    /// rustls's state: what it holds is bounded by [`WRITE_CHUNK`] plus a
    /// record or so read ahead.
    pub conn: ClientConnection,
}

impl TlsStream {
    /// Starts a handshake on a connected socket.
    pub fn new(tcp: TcpStream, client: &TlsClient) -> Result<Self, ClientError> {
        Ok(Self {
            tcp,
            conn: client.connection()?,
        })
    }

    /// Moves the handshake on as far as the socket allows: `Ok(true)` once
    /// it is complete, `Ok(false)` when it waits for the socket.
    pub fn handshake_step(&mut self) -> Result<bool, ClientError> {
        loop {
            match self.send_pending() {
                Ok(()) => {}
                Err(e) if e.kind() == ErrorKind::WouldBlock => {}
                Err(e) => return Err(handshake_io(&e)),
            }
            if !self.conn.is_handshaking() {
                return Ok(true);
            }
            if !self.conn.wants_read() {
                return Ok(false);
            }
            match self.conn.read_tls(&mut self.tcp) {
                Ok(0) => {
                    return Err(ClientError::Tls {
                        failure: TlsFailure::Handshake,
                        detail: "the server closed the connection during the handshake (not a TLS server, or it refused this client)".into(),
                    })
                }
                Ok(_) => {
                    if let Err(e) = self.conn.process_new_packets() {
                        // The alert rustls queued tells the server why.
                        let _ = self.send_pending();
                        return Err(failure(&e));
                    }
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => return Ok(false),
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => return Err(handshake_io(&e)),
            }
        }
    }

    /// What the finished handshake negotiated.
    pub fn facts(&self, handshake: Duration, client: &TlsClient) -> TlsFacts {
        let version = match self.conn.protocol_version() {
            Some(rustls::ProtocolVersion::TLSv1_3) => "TLSv1.3".to_string(),
            Some(rustls::ProtocolVersion::TLSv1_2) => "TLSv1.2".to_string(),
            Some(other) => format!("{other:?}"),
            None => "?".to_string(),
        };
        let cipher_suite = self
            .conn
            .negotiated_cipher_suite()
            .map(|s| format!("{:?}", s.suite()))
            .unwrap_or_else(|| "?".into());
        let server_certificate = self
            .conn
            .peer_certificates()
            .and_then(|chain| chain.first())
            .map(|leaf| {
                let facts = CertFacts::of(leaf);
                ServerCert {
                    subject: facts.subject,
                    not_after: facts.not_after,
                    sha256: facts.fingerprint,
                }
            });
        TlsFacts {
            version,
            cipher_suite,
            sni: client.sni(),
            handshake,
            handshake_ms: (millis(handshake) * 1e3).round() / 1e3,
            server_certificate,
            client_certificate: client.has_client_certificate(),
        }
    }

    /// Writes the ciphertext rustls holds; `WouldBlock` if the socket
    /// cannot take all of it.
    pub fn send_pending(&mut self) -> io::Result<()> {
        while self.conn.wants_write() {
            match self.conn.write_tls(&mut self.tcp) {
                Ok(_) => {}
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// close_notify, then FIN: the TLS half-close.
    pub fn shutdown_write(&mut self) {
        self.conn.send_close_notify();
        // Best effort, as a plain shutdown's result is ignored too.
        let _ = self.send_pending();
        let _ = self.tcp.shutdown(Shutdown::Write);
    }
}

fn handshake_io(e: &io::Error) -> ClientError {
    if is_reset(e) {
        ClientError::Tls {
            failure: TlsFailure::Handshake,
            detail: format!("the server reset the connection during the handshake ({e})"),
        }
    } else {
        ClientError::Other(format!("connection failed during the TLS handshake: {e}"))
    }
}

impl Read for TlsStream {
    /// Plaintext; `Ok(0)` at the end of the stream, with or without the
    /// server's close_notify (every byte is checked, so a truncation shows
    /// as a short echo). A TLS error is an `io::Error` wrapping the
    /// `rustls::Error` ([`tls_error`] gets it back).
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self.send_pending() {
            Ok(()) => {}
            Err(e) if e.kind() == ErrorKind::WouldBlock => {}
            Err(e) => return Err(e),
        }
        loop {
            match self.conn.reader().read(buf) {
                Ok(n) => return Ok(n),
                Err(e) if e.kind() == ErrorKind::WouldBlock => {}
                Err(e) if e.kind() == ErrorKind::UnexpectedEof => return Ok(0),
                Err(e) => return Err(e),
            }
            match self.conn.read_tls(&mut self.tcp) {
                Ok(_) => {
                    let processed = self.conn.process_new_packets();
                    // Alerts and key updates rustls answers with.
                    let _ = self.send_pending();
                    if let Err(e) = processed {
                        return Err(io::Error::other(e));
                    }
                }
                Err(e) => return Err(e),
            }
        }
    }
}

impl Write for TlsStream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        // Unsent ciphertext first: the bound on what rustls holds.
        self.send_pending()?;
        let n = self
            .conn
            .writer()
            .write(&buf[..buf.len().min(WRITE_CHUNK)])?;
        match self.send_pending() {
            // The rest goes with the next read or write; an error shows there.
            Ok(()) | Err(_) => Ok(n),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        self.send_pending()
    }
}

/// The TLS failure inside an I/O error from [`TlsStream`], if it is one.
pub fn tls_error(e: &io::Error) -> Option<ClientError> {
    e.get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>())
        .map(failure)
}
