//! The connection a session moves bytes over: plain TCP or TLS. Send and
//! ping go through `Read`/`Write` here; one branch per call is nothing
//! beside their system calls.

use std::io::{self, Read, Write};
use std::net::Shutdown;

use mio::net::TcpStream;

use crate::client::tls::TlsStream;

/// A connected stream, plain or TLS.
#[derive(Debug)]
pub enum Link {
    /// Plain TCP.
    Plain(TcpStream),
    /// TLS over TCP, its handshake done.
    Tls(Box<TlsStream>),
}

impl Link {
    /// The socket beneath.
    pub fn tcp(&mut self) -> &mut TcpStream {
        match self {
            Self::Plain(s) => s,
            Self::Tls(t) => &mut t.tcp,
        }
    }

    /// The socket beneath, for the kernel's figures about it (TCP_INFO).
    pub fn socket(&self) -> &TcpStream {
        match self {
            Self::Plain(s) => s,
            Self::Tls(t) => &t.tcp,
        }
    }

    /// The socket when nothing is layered over it: only then may its bytes
    /// be read past the stream (with the kernel's receive timestamps).
    pub fn plain(&self) -> Option<&TcpStream> {
        match self {
            Self::Plain(s) => Some(s),
            Self::Tls(_) => None,
        }
    }

    /// Half-closes: FIN, or close_notify then FIN. The server may already
    /// have closed; the result adds nothing.
    pub fn shutdown_write(&mut self) {
        match self {
            Self::Plain(s) => {
                let _ = s.shutdown(Shutdown::Write);
            }
            Self::Tls(t) => t.shutdown_write(),
        }
    }
}

impl Read for Link {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Self::Plain(s) => s.read(buf),
            Self::Tls(t) => t.read(buf),
        }
    }
}

impl Write for Link {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Self::Plain(s) => s.write(buf),
            Self::Tls(t) => t.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            Self::Plain(s) => s.flush(),
            Self::Tls(t) => t.flush(),
        }
    }
}
