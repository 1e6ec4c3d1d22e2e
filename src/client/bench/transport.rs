//! What a bench connection moves bytes over: a plain socket or a TLS
//! connection. The engine is compiled once for each (`Engine<TcpStream>`,
//! `Engine<TlsStream>`), so the plain run's loop has no TLS branch in it.

use std::io::{self, Read, Write};
use std::time::Duration;

use mio::net::TcpStream;

use crate::client::error::ClientError;
use crate::client::tls::{TlsClient, TlsStream};
use crate::os::rx_timestamp;

/// A connection's byte stream, started on a socket whose connect is in
/// progress.
pub(crate) trait Transport: Read + Write + Sized {
    /// Whether a read shorter than the buffer means the socket is drained,
    /// so the edge-triggered loop may wait for the next edge. Not for TLS:
    /// a record's plaintext may be short while more ciphertext waits.
    const SHORT_READ_DRAINS: bool;
    /// Whether bulk writes may bypass the stream through a pipe (splice):
    /// only when the bytes on the wire are the bytes sent.
    const SPLICES: bool;

    /// Wraps a socket just asked to connect.
    fn start(tcp: TcpStream, tls: Option<&TlsClient>) -> Result<Self, ClientError>;

    /// The socket beneath.
    fn tcp(&self) -> &TcpStream;

    /// The socket beneath, for the poll's registration.
    fn tcp_mut(&mut self) -> &mut TcpStream;

    /// Once TCP is connected: moves the transport's own handshake on;
    /// `Ok(true)` when data may flow.
    fn handshake(&mut self) -> Result<bool, ClientError>;

    /// Asks the kernel to stamp what this connection receives; `false`
    /// where the stamps would not time the bytes read (TLS) or the kernel
    /// refused.
    fn enable_rx_stamps(&self) -> bool;

    /// Reads like `read`; with `stamped`, also returns the kernel's receive
    /// timestamp of the last segment read, when it gave one.
    fn read_stamped(
        &mut self,
        buf: &mut [u8],
        stamped: bool,
    ) -> io::Result<(usize, Option<Duration>)>;
}

impl Transport for TcpStream {
    const SHORT_READ_DRAINS: bool = true;
    const SPLICES: bool = true;

    fn start(tcp: TcpStream, _tls: Option<&TlsClient>) -> Result<Self, ClientError> {
        Ok(tcp)
    }

    fn tcp(&self) -> &TcpStream {
        self
    }

    fn tcp_mut(&mut self) -> &mut TcpStream {
        self
    }

    fn handshake(&mut self) -> Result<bool, ClientError> {
        Ok(true)
    }

    fn enable_rx_stamps(&self) -> bool {
        rx_timestamp::enable(self).is_ok()
    }

    fn read_stamped(
        &mut self,
        buf: &mut [u8],
        stamped: bool,
    ) -> io::Result<(usize, Option<Duration>)> {
        if stamped {
            rx_timestamp::recv(self, buf)
        } else {
            self.read(buf).map(|n| (n, None))
        }
    }
}

impl Transport for TlsStream {
    const SHORT_READ_DRAINS: bool = false;
    const SPLICES: bool = false;

    fn start(tcp: TcpStream, tls: Option<&TlsClient>) -> Result<Self, ClientError> {
        let tls = tls.ok_or_else(|| ClientError::Other("a TLS run without TLS settings".into()))?;
        TlsStream::new(tcp, tls)
    }

    fn tcp(&self) -> &TcpStream {
        &self.tcp
    }

    fn tcp_mut(&mut self) -> &mut TcpStream {
        &mut self.tcp
    }

    fn handshake(&mut self) -> Result<bool, ClientError> {
        self.handshake_step()
    }

    /// The bytes read are plaintext that rustls assembled from records:
    /// which segment's stamp belongs to a message's last byte is hidden.
    fn enable_rx_stamps(&self) -> bool {
        false
    }

    fn read_stamped(
        &mut self,
        buf: &mut [u8],
        _stamped: bool,
    ) -> io::Result<(usize, Option<Duration>)> {
        self.read(buf).map(|n| (n, None))
    }
}
