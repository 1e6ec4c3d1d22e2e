//! A TLS connection as the echo state machine's [`Transport`]: rustls
//! between the socket and [`Echo`](crate::logic::echo::Echo), so the
//! machine reads and writes plaintext and decides backpressure, half-close
//! and timeouts on it as for plain TCP.
//!
//! The machine's edge-triggered rules hold because of how the two
//! directions are driven here:
//! - `read` returns less than asked only once the socket would block (or
//!   ended): plaintext rustls has decrypted is always handed out first,
//!   and more ciphertext is read only when none is left. A read that
//!   fills the buffer may leave plaintext in rustls; the machine then reads
//!   again, or stops because its buffer is full (the flush that frees room
//!   reads again) or its budget ran out (the server's resume queue).
//! - `write` takes plaintext only when rustls holds no ciphertext, and
//!   returns less than given only when the socket refused ciphertext, so a
//!   short write means a writable edge will come. The ciphertext rustls
//!   holds is at most [`TLS_BUFFER_LIMIT`] plus one record.
//! - Ciphertext left in rustls is flushed first at every turn (see
//!   [`TlsSession::flush`]); a turn that cannot flush it ends there.

use std::io::{self, ErrorKind, Read, Write};
use std::sync::Arc;

use rustls::{ServerConfig, ServerConnection};

use crate::logic::echo::Transport;

/// Most ciphertext (and plaintext before the handshake) rustls may hold
/// for sending: four full records, so that a 64 KiB echo goes out in one
/// `writev` rather than one system call per 16 KiB record (a quarter of
/// the sends per MB, as tokio-rustls makes them; BENCHMARKS.md, TLS).
pub const TLS_BUFFER_LIMIT: usize = 64 * 1024;

/// The byte stream under TLS: the socket, or a test's scripted stream.
pub trait Wire: Read + Write {
    /// Sends FIN.
    fn shutdown_write(&mut self) -> io::Result<()>;
}

/// Where a TLS connection's handshake stands, for the log and the counters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Handshake {
    /// Still going.
    Pending,
    /// Done, not reported yet.
    Done,
    /// Done and reported.
    Reported,
    /// Failed: rustls refused what the peer sent (reason in [`TlsSession::failure`]).
    Failed,
}

/// One TLS connection's rustls state and the bookkeeping beside it.
#[derive(Debug)]
pub struct TlsSession {
    conn: ServerConnection,
    /// FIN is owed once the ciphertext before it (close_notify last) is out.
    fin_owed: bool,
    close_notify_sent: bool,
    /// The peer ended TCP without close_notify.
    unclean_eof: bool,
    /// What rustls refused, if it did.
    failure: Option<rustls::Error>,
    handshake: Handshake,
}

impl TlsSession {
    /// A server-side session using `config`.
    pub fn new(config: Arc<ServerConfig>) -> Result<Self, rustls::Error> {
        let mut conn = ServerConnection::new(config)?;
        conn.set_buffer_limit(Some(TLS_BUFFER_LIMIT));
        Ok(Self {
            conn,
            fin_owed: false,
            close_notify_sent: false,
            unclean_eof: false,
            failure: None,
            handshake: Handshake::Pending,
        })
    }

    /// The rustls connection (negotiated version, suite, SNI, peer
    /// certificates).
    pub fn connection(&self) -> &ServerConnection {
        &self.conn
    }

    /// What rustls refused, if the connection failed.
    pub fn failure(&self) -> Option<&rustls::Error> {
        self.failure.as_ref()
    }

    /// True once the peer closed TCP without a close_notify alert.
    pub fn unclean_eof(&self) -> bool {
        self.unclean_eof
    }

    /// The handshake's state; [`Handshake::Done`] is returned once, then
    /// it reads [`Handshake::Reported`].
    pub fn take_handshake(&mut self) -> Handshake {
        if self.handshake == Handshake::Pending && !self.conn.is_handshaking() {
            self.handshake = Handshake::Done;
        }
        let now = self.handshake.clone();
        if now == Handshake::Done {
            self.handshake = Handshake::Reported;
        }
        now
    }

    /// True while the handshake has not finished (nor failed).
    pub fn is_handshaking(&self) -> bool {
        self.conn.is_handshaking() && self.failure.is_none()
    }

    /// True while ciphertext (or a FIN) waits for the socket.
    pub fn has_unsent(&self) -> bool {
        self.conn.wants_write() || self.fin_owed
    }

    /// Writes the ciphertext rustls holds, then a FIN owed after it.
    /// `Ok(true)`: all out; `Ok(false)`: the socket would block (a writable
    /// edge will come).
    pub fn flush(&mut self, wire: &mut impl Wire) -> io::Result<bool> {
        while self.conn.wants_write() {
            match self.conn.write_tls(wire) {
                Ok(0) => return Err(ErrorKind::WriteZero.into()),
                Ok(_) => {}
                Err(e) if e.kind() == ErrorKind::WouldBlock => return Ok(false),
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        if self.fin_owed {
            self.fin_owed = false;
            wire.shutdown_write()?;
        }
        Ok(true)
    }

    /// Queues close_notify (once); [`flush`](Self::flush) sends it.
    pub fn close_notify(&mut self) {
        if !self.close_notify_sent {
            self.close_notify_sent = true;
            self.conn.send_close_notify();
        }
    }

    /// This session over `wire`, as the echo machine's transport.
    pub fn over<'a, W: Wire>(&'a mut self, wire: &'a mut W) -> TlsStream<'a, W> {
        TlsStream {
            wire,
            session: self,
            checks: None,
        }
    }

    /// Takes what rustls has received and acts on it; a refusal is kept
    /// (its alert queued for the peer) and returned as an error.
    fn process(&mut self) -> io::Result<()> {
        // Once refused, rustls is done with this peer: asked again, it
        // would queue a second fatal alert (a debug assertion in rustls).
        if let Some(e) = &self.failure {
            return Err(io::Error::new(ErrorKind::InvalidData, format!("TLS: {e}")));
        }
        match self.conn.process_new_packets() {
            Ok(_) => Ok(()),
            Err(e) => {
                let text = format!("TLS: {e}");
                self.failure = Some(e);
                if self.conn.is_handshaking() {
                    self.handshake = Handshake::Failed;
                }
                Err(io::Error::new(ErrorKind::InvalidData, text))
            }
        }
    }
}

/// A TLS session over its wire for one turn: the echo machine's transport.
pub struct TlsStream<'a, W> {
    wire: &'a mut W,
    session: &'a mut TlsSession,
    /// Takes the prime checks of `--mode framed`.
    checks: Option<&'a mut dyn FnMut(u64) -> bool>,
}

impl<W> std::fmt::Debug for TlsStream<'_, W> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsStream").finish_non_exhaustive()
    }
}

impl<'a, W: Wire> TlsStream<'a, W> {
    /// See [`TlsSession::flush`].
    pub fn flush_tls(&mut self) -> io::Result<bool> {
        self.session.flush(self.wire)
    }

    /// Sends the prime checks of `--mode framed` to `submit`.
    pub fn with_checks(mut self, submit: &'a mut dyn FnMut(u64) -> bool) -> Self {
        self.checks = Some(submit);
        self
    }
}

impl<W: Wire> Read for TlsStream<'_, W> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let session = &mut *self.session;
        let mut filled = 0;
        loop {
            match session.conn.reader().read(&mut buf[filled..]) {
                Ok(n) if n > 0 => {
                    filled += n;
                    if filled == buf.len() {
                        return Ok(filled);
                    }
                }
                // close_notify received (or an empty buffer).
                Ok(_) => return Ok(filled),
                Err(e) if e.kind() == ErrorKind::WouldBlock => {}
                Err(e) if e.kind() == ErrorKind::UnexpectedEof => {
                    // TCP ended without close_notify: the peer's data may
                    // have been cut short; it still gets its echo.
                    session.unclean_eof = true;
                    return Ok(filled);
                }
                Err(e) => return Err(e),
            }
            // No plaintext left: more ciphertext from the wire.
            match session.conn.read_tls(self.wire) {
                Ok(_) => {}
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(e) if e.kind() == ErrorKind::WouldBlock => {
                    // The peer's handshake messages may need an answer.
                    session.flush(self.wire)?;
                    return if filled > 0 {
                        Ok(filled)
                    } else {
                        Err(ErrorKind::WouldBlock.into())
                    };
                }
                Err(e) => return Err(e),
            }
            if let Err(e) = session.process() {
                // The alert, if the socket takes it.
                let _ = session.flush(self.wire);
                return Err(e);
            }
        }
    }
}

impl<W: Wire> Write for TlsStream<'_, W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let session = &mut *self.session;
        if !session.flush(self.wire)? {
            return Err(ErrorKind::WouldBlock.into());
        }
        let mut taken = 0;
        while taken < buf.len() {
            let n = session.conn.writer().write(&buf[taken..])?;
            taken += n;
            if !session.flush(self.wire)? || n == 0 {
                break;
            }
        }
        if taken == 0 {
            return Err(ErrorKind::WouldBlock.into());
        }
        Ok(taken)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

// No pipe: TLS bytes must pass through rustls, so the copying path.
impl<W: Wire> Transport for TlsStream<'_, W> {
    fn shutdown_write(&mut self) -> io::Result<()> {
        self.session.close_notify();
        self.session.fin_owed = true;
        self.session.flush(self.wire).map(|_| ())
    }

    fn submit_check(&mut self, number: u64) -> bool {
        self.checks.as_mut().is_some_and(|submit| submit(number))
    }
}
