//! The byte stream the pure state machines drive. They see only this
//! trait, so tests and fuzzers drive them with scripted streams and the
//! server with its sockets (see `server::connection`).

use std::io::{self, Read, Write};

/// A byte stream that can be read, written and half-closed. Reads and
/// writes follow the non-blocking convention: `WouldBlock` means "wait for
/// the next readiness edge".
pub trait Stream: Read + Write {
    /// Sends FIN: the peer reads EOF after the bytes already written.
    fn shutdown_write(&mut self) -> io::Result<()>;
}
