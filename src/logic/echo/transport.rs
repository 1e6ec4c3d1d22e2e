//! What the echo state machine needs of its byte stream: read, write,
//! half-close, and optionally the zero-copy pipe (the server's sockets and
//! the tests' scripted streams implement it).

use std::io::{self, ErrorKind, Read, Write};

/// A byte stream the echo logic can read, write and half-close.
pub trait Transport: Read + Write {
    /// Sends FIN: the peer reads EOF after the bytes already written.
    fn shutdown_write(&mut self) -> io::Result<()>;

    /// Sets up the zero-copy path: a kernel pipe meant to hold `capacity`
    /// bytes. Returns how many it may hold (at most `capacity`); an error
    /// means this stream keeps copying.
    fn attach_pipe(&mut self, capacity: usize) -> io::Result<usize> {
        let _ = capacity;
        Err(ErrorKind::Unsupported.into())
    }

    /// How many bytes the peer has sent that wait to be read. Only asked
    /// when deciding whether to switch to the pipe; an error means "do not".
    fn queued_in(&mut self) -> io::Result<usize> {
        Err(ErrorKind::Unsupported.into())
    }

    /// Moves up to `max` bytes from the peer into the pipe. `Ok(0)` is EOF,
    /// or the urgent mark with the peer's FIN queued behind it.
    fn splice_in(&mut self, max: usize) -> io::Result<usize> {
        let _ = max;
        Err(ErrorKind::Unsupported.into())
    }

    /// Bytes written that the peer has not acknowledged yet. Asked only
    /// when a stop begins; an error means "unknown", and the connection
    /// lingers for the peer's FIN as it would with bytes in flight.
    fn unacknowledged(&mut self) -> io::Result<usize> {
        Err(ErrorKind::Unsupported.into())
    }

    /// Hands `number` to the prime-check workers for this connection;
    /// false if they cannot take it now (the answer is then `busy`). The
    /// answer comes back through [`Echo::deliver`](super::Echo::deliver).
    fn submit_check(&mut self, number: u64) -> bool {
        let _ = number;
        false
    }

    /// Moves up to `max` bytes from the pipe back to the peer.
    fn splice_out(&mut self, max: usize) -> io::Result<usize> {
        let _ = max;
        Err(ErrorKind::Unsupported.into())
    }
}

// Every echo transport is a stream the HTTP side can drive too.
impl<T: Transport + ?Sized> crate::logic::stream::Stream for T {
    fn shutdown_write(&mut self) -> io::Result<()> {
        Transport::shutdown_write(self)
    }
}
