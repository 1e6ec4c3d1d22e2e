//! TLS for the stream engine's two threads: one rustls connection shared
//! under a lock that is never held across a system call. The writer
//! encrypts under the lock and writes the records after it; the reader
//! reads ciphertext without it and decrypts under it. Only the writer
//! writes to the socket, so records go out in the order rustls made them.

use std::io::{self, ErrorKind, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use rustls::ClientConnection;

use super::reader::Close;
use super::writer::HalfClose;
use crate::client::error::{is_reset, ClientError, TlsFailure};
use crate::client::tls::stream::tls_error;
use crate::client::tls::TlsClient;

/// Plaintext encrypted per write: exactly one record (rustls's largest
/// fragment). A write cut short by the coordinator's shutdown then leaves
/// a truncated record, which the server cannot decrypt, so no byte is
/// echoed that was not counted as written.
const WRITE_CHUNK: usize = 16 * 1024;
/// Ciphertext read per system call.
const READ_CHUNK: usize = 256 * 1024;

type Shared = Arc<Mutex<ClientConnection>>;

fn lock(conn: &Shared) -> MutexGuard<'_, ClientConnection> {
    // A thread that panicked holding it leaves rustls's state usable for
    // the one that reports the run.
    conn.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Completes the handshake on the blocking socket within `timeout`, then
/// hands the connection's two halves to the threads.
pub(super) fn split(
    stream: &TcpStream,
    client: &TlsClient,
    timeout: Duration,
) -> Result<(TlsWriter, TlsReader), ClientError> {
    let local = |e: io::Error| ClientError::Other(format!("TLS socket: {e}"));
    let mut conn = client.connection()?;
    stream.set_read_timeout(Some(timeout)).map_err(local)?;
    stream.set_write_timeout(Some(timeout)).map_err(local)?;
    let mut socket = stream;
    while conn.is_handshaking() {
        if let Err(e) = conn.complete_io(&mut socket) {
            return Err(tls_error(&e).unwrap_or_else(|| ClientError::Tls {
                failure: TlsFailure::Handshake,
                detail: if is_reset(&e) || e.kind() == ErrorKind::UnexpectedEof {
                    format!("the server closed the connection during the handshake ({e})")
                } else {
                    e.to_string()
                },
            }));
        }
    }
    stream.set_read_timeout(None).map_err(local)?;
    stream.set_write_timeout(None).map_err(local)?;
    let shared = Arc::new(Mutex::new(conn));
    let clone = || stream.try_clone().map_err(local);
    Ok((
        TlsWriter {
            tcp: clone()?,
            conn: Arc::clone(&shared),
            records: Vec::new(),
        },
        TlsReader {
            tcp: clone()?,
            conn: shared,
            raw: vec![0; READ_CHUNK],
            fed: 0,
            got: 0,
        },
    ))
}

/// The writer thread's half.
pub(super) struct TlsWriter {
    tcp: TcpStream,
    conn: Shared,
    records: Vec<u8>,
}

impl TlsWriter {
    /// Takes what rustls has to send, then sends it outside the lock.
    fn send(&mut self, conn: MutexGuard<'_, ClientConnection>) -> io::Result<()> {
        let mut conn = conn;
        self.records.clear();
        while conn.wants_write() {
            conn.write_tls(&mut self.records)?;
        }
        drop(conn);
        self.tcp.write_all(&self.records)
    }
}

impl Write for TlsWriter {
    /// Plaintext taken is on the wire when this returns.
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        let shared = Arc::clone(&self.conn);
        let mut conn = lock(&shared);
        let n = conn
            .writer()
            .write(&bytes[..bytes.len().min(WRITE_CHUNK)])?;
        self.send(conn)?;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        let shared = Arc::clone(&self.conn);
        let conn = lock(&shared);
        self.send(conn)
    }
}

impl HalfClose for TlsWriter {
    fn shutdown_write(&mut self) {
        let shared = Arc::clone(&self.conn);
        let mut conn = lock(&shared);
        conn.send_close_notify();
        let _ = self.send(conn);
        let _ = self.tcp.shutdown(Shutdown::Write);
    }
}

/// The reader thread's half.
pub(super) struct TlsReader {
    tcp: TcpStream,
    conn: Shared,
    /// Ciphertext read: `raw[fed..got]` is not yet given to rustls.
    raw: Vec<u8>,
    fed: usize,
    got: usize,
}

impl Read for TlsReader {
    /// Plaintext, blocking; `Ok(0)` at the end of the stream.
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            {
                let mut conn = lock(&self.conn);
                match conn.reader().read(buf) {
                    Ok(n) => return Ok(n),
                    Err(e) if e.kind() == ErrorKind::WouldBlock => {}
                    Err(e) if e.kind() == ErrorKind::UnexpectedEof => return Ok(0),
                    Err(e) => return Err(e),
                }
                // One feed at a time: rustls bounds the plaintext it holds,
                // and it is drained above before the next.
                if self.fed < self.got {
                    let mut rest = &self.raw[self.fed..self.got];
                    let before = rest.len();
                    let taken = conn.read_tls(&mut rest);
                    self.fed += before - rest.len();
                    taken?;
                    conn.process_new_packets().map_err(io::Error::other)?;
                    continue;
                }
            }
            let n = self.tcp.read(&mut self.raw)?;
            (self.fed, self.got) = (0, n);
            if n == 0 {
                // The end of the stream: rustls tells a clean close from a
                // truncation, and both end the read.
                let _ = lock(&self.conn).read_tls(&mut io::empty());
            }
        }
    }
}

impl Close for TlsReader {
    fn shutdown_both(&mut self) {
        let _ = self.tcp.shutdown(Shutdown::Both);
    }
}
