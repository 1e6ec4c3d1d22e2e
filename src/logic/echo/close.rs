//! How a connection stands and how it ended: its [`Phase`], and the
//! [`CloseReason`] the DISCONNECT log line and the counters report.

use std::fmt;
use std::io::{self, ErrorKind};

/// Where a connection is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Reading and echoing.
    Echoing,
    /// The peer shut its write side (read returned 0): flush the rest of
    /// its echo, then close.
    PeerDone,
    /// The server is stopping: echo what the peer has already sent (until
    /// a read finds nothing queued), then send FIN.
    Draining,
    /// FIN sent during shutdown: read and discard until the peer closes, so
    /// that closing never turns unread input into an RST that would destroy
    /// echo bytes still in flight.
    Lingering,
}

impl Phase {
    /// Its name where the endpoint lists connections (`/stats.json`).
    pub fn name(self) -> &'static str {
        match self {
            Self::Echoing => "echoing",
            Self::PeerDone => "peer_done",
            Self::Draining => "draining",
            Self::Lingering => "lingering",
        }
    }
}

/// Why a connection ended, as the DISCONNECT log line says it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CloseReason {
    /// The peer closed its side and got its whole echo.
    PeerClosed,
    /// The peer reset the connection (RST, killed process, broken pipe).
    Reset,
    /// Nothing moved for the idle timeout.
    IdleTimeout,
    /// The server stopped.
    Shutdown,
    /// Any other I/O error, with its text.
    Error(String),
}

impl CloseReason {
    /// Each reason's label on the endpoint's closed-connection counters,
    /// at its [`CloseReason::index`].
    pub const LABELS: [&'static str; 5] = ["peer", "reset", "idle_timeout", "shutdown", "error"];

    /// Its place in [`CloseReason::LABELS`] (and in counters kept by reason).
    pub fn index(&self) -> usize {
        match self {
            Self::PeerClosed => 0,
            Self::Reset => 1,
            Self::IdleTimeout => 2,
            Self::Shutdown => 3,
            Self::Error(_) => 4,
        }
    }

    /// Classifies an I/O error that ended a connection.
    pub fn from_io(error: &io::Error) -> Self {
        match error.kind() {
            ErrorKind::ConnectionReset | ErrorKind::ConnectionAborted | ErrorKind::BrokenPipe => {
                Self::Reset
            }
            _ => Self::Error(error.to_string()),
        }
    }
}

impl fmt::Display for CloseReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::PeerClosed => f.write_str("peer closed"),
            Self::Reset => f.write_str("reset by peer"),
            Self::IdleTimeout => f.write_str("idle timeout"),
            Self::Shutdown => f.write_str("shutdown"),
            Self::Error(text) => write!(f, "error: {text}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use super::super::{Echo, Next};
    use crate::model_check::stream::ScriptedStream as MockStream;

    // A reset is reported as such, not as a generic error.
    #[test]
    fn reset_closes_with_reason() {
        let mut echo = Echo::new(64);
        let mut io = MockStream::new(b"", 100);
        io.read_error = Some(ErrorKind::ConnectionReset);
        let progress = echo.pump(&mut io, &mut [0; 64], 16);
        assert_eq!(progress.next, Next::Close(CloseReason::Reset));
        assert_eq!(CloseReason::Reset.to_string(), "reset by peer");
    }
}
