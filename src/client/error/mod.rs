//! What can go wrong for the client: the failure type, its classes and
//! its exit code; the one line each prints is in `message.rs`.
//!
//! Each failure class has its own code so scripts can tell "the path is
//! blocked" from "the server corrupts data" without parsing text.

use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use serde::Serialize;

use crate::logic::json;

mod message;

pub use message::seconds;

/// Exit codes, as listed in `echo-client --help`.
pub mod exit {
    /// Every echo came back exactly.
    pub const OK: u8 = 0;
    /// An echo differed from what was sent.
    pub const MISMATCH: u8 = 1;
    /// Bad command line (clap's code).
    pub const USAGE: u8 = 2;
    /// Connection refused: nothing listening there.
    pub const REFUSED: u8 = 3;
    /// The host name could not be resolved.
    pub const RESOLVE: u8 = 4;
    /// A connect or an echo took longer than `--timeout`.
    pub const TIMEOUT: u8 = 5;
    /// The server closed or reset the connection before echoing everything.
    pub const CLOSED: u8 = 6;
    /// Any other network or local error (unreachable, file unreadable, …),
    /// or stdout could not be written by a run that otherwise passed.
    pub const OTHER: u8 = 7;
    /// `probe`: some port did not answer with its echo (refused, filtered,
    /// reset, closed, no answer, or not probed in time).
    pub const NOT_ALL_OPEN: u8 = 8;
    /// `--tls`: the handshake failed (an alert, no common version or
    /// suite, a client certificate refused, not a TLS server) or did not
    /// finish within `--timeout`.
    pub const TLS_HANDSHAKE: u8 = 9;
    /// `--tls --ca`: the server's certificate is not trusted (unknown
    /// issuer, expired, not for that name).
    pub const TLS_UNTRUSTED: u8 = 10;
    /// `--tls-fingerprint`: the server's certificate is another one.
    pub const TLS_FINGERPRINT: u8 = 11;
    /// Stopped by Ctrl+C before any result, or while a ping probe was
    /// still waiting for its answer (128 + SIGINT).
    pub const INTERRUPTED: u8 = 130;
}

/// Text for `--help`, kept next to the codes it describes.
pub const EXIT_CODES_HELP: &str = "\
Exit codes:
  0    every echo came back byte for byte
  1    an echo differed from what was sent, or a --mode reply from what
       that mode answers (the offset is printed)
  2    bad command line
  3    connection refused: nothing is listening there
  4    host name could not be resolved
  5    timed out (connect or echo took longer than --timeout)
  6    the server closed or reset the connection before echoing everything
  7    other network or local error, or the output could not be
       written (stdout full or not writable) by a run that passed
  8    probe: some port did not answer with its echo (the table says
       how: refused, filtered, reset, closed, no answer, not probed)
  9    --tls: the TLS handshake failed (alert, no common version or
       suite, client certificate refused, not a TLS server) or did
       not finish within --timeout
  10   --tls --ca: the server's certificate is not trusted (unknown
       issuer, expired, or not for the host / --sni)
  11   --tls-fingerprint: the server's certificate has another
       fingerprint (the one it has is printed)
  130  interrupted by Ctrl+C before any result, or during a send (the
       bytes verified so far are reported); in ping, while a probe was
       still waiting for its answer (counted as lost) with --strict or
       when no probe came back
A reader of stdout or stderr that goes away (echo-client ping | head)
ends the client by SIGPIPE, as it does any filter.";

/// A failure that ends a client run.
#[derive(Debug)]
pub enum ClientError {
    /// Nothing is listening at the address.
    Refused(SocketAddr),
    /// The host name did not resolve.
    Resolve {
        /// The name as given.
        host: String,
        /// What the resolver said.
        detail: String,
    },
    /// Connecting took longer than the timeout.
    ConnectTimeout(SocketAddr, Duration),
    /// The echo did not complete within the timeout.
    EchoTimeout {
        /// Bytes echoed before the timeout.
        received: u64,
        /// Bytes expected.
        expected: u64,
        /// The timeout.
        after: Duration,
    },
    /// At the end of a benchmark, echoes still missing after the timeout.
    DrainTimeout {
        /// Connections still waiting.
        connections: usize,
        /// Bytes not echoed.
        bytes: u64,
        /// The timeout.
        after: Duration,
    },
    /// During a benchmark, no byte echoed for the timeout while some were
    /// awaited: the server stopped echoing.
    Stalled {
        /// Connections waiting for echo.
        connections: usize,
        /// Bytes not echoed.
        bytes: u64,
        /// The timeout.
        after: Duration,
    },
    /// In a `bench --mode` run, nothing moved for `after`: the server took
    /// no byte (discard), sent none (chargen) or answered no frame.
    Silent {
        /// The mode.
        mode: &'static str,
        /// How long nothing moved.
        after: Duration,
    },
    /// After the client's FIN, the server's did not come within the
    /// timeout (discard answers FIN with FIN).
    NoFin {
        /// Connections still open from the server's side.
        connections: usize,
        /// The timeout.
        after: Duration,
    },
    /// In a `bench --mode` run, the server closed or reset a connection
    /// while the run still needed it.
    ServiceClosed {
        /// The mode.
        mode: &'static str,
        /// Whether with an RST.
        reset: bool,
    },
    /// The server closed (`reset` = with an RST) before echoing everything.
    ClosedEarly {
        /// Bytes echoed before the close.
        received: u64,
        /// Bytes expected.
        expected: u64,
        /// Whether the connection was reset rather than closed.
        reset: bool,
    },
    /// The echo differs from what was sent.
    Mismatch(Mismatch),
    /// A reply of a `--mode` other than echo differs from what that mode
    /// answers (`upper`, `framed`, `chargen`, `discard`).
    Reply(ReplyMismatch),
    /// UDP: no datagram came back within the timeout.
    NoDatagram(Duration),
    /// UDP: the datagram that came back is shorter or longer than the one sent.
    DatagramSize {
        /// Bytes sent.
        sent: usize,
        /// Bytes that came back.
        received: usize,
    },
    /// Ctrl+C before a result.
    Interrupted,
    /// A ping probe still unanswered when Ctrl+C stopped the wait.
    Unanswered {
        /// How long it had waited.
        waited: Duration,
        /// Whether it was still connecting (else waiting for the echo).
        connecting: bool,
    },
    /// Connecting failed for another reason (unreachable, …).
    Connect(SocketAddr, io::Error),
    /// A setting the command line could not check on its own (a process
    /// that does not exist, too few descriptors for the connections).
    Usage(String),
    /// Anything else, with what was being done.
    Other(String),
    /// `--tls`: the handshake failed or the server was not trusted.
    Tls {
        /// Which of the TLS exit codes.
        failure: TlsFailure,
        /// What rustls or the socket said.
        detail: String,
    },
}

/// The classes of TLS failure, each with its exit code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TlsFailure {
    /// Anything in the handshake but the certificate check.
    Handshake,
    /// The certificate does not chain to `--ca`, has expired, or names
    /// another host.
    Untrusted,
    /// The certificate is not the pinned one.
    Fingerprint,
}

/// Where an echo first differs from what was sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Mismatch {
    /// Offset in the connection's byte stream.
    pub offset: u64,
    /// The byte that was sent there.
    pub sent: u8,
    /// The byte that came back instead (`None`: extra bytes came back
    /// beyond what was sent, and `sent` is meaningless).
    pub received: Option<u8>,
}

/// Where a mode's reply first differs from what the mode answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplyMismatch {
    /// The mode (`upper`, `framed`, …).
    pub mode: &'static str,
    /// Offset in the bytes the server sent on the connection.
    pub offset: u64,
    /// The byte the mode answers there (`None`: nothing was due, the
    /// server sent more than the mode answers).
    pub expected: Option<u8>,
    /// The byte that came instead (`None` when only known to be extra).
    pub received: Option<u8>,
    /// Where in the exchange, e.g. "in the reply to frame 3".
    pub context: String,
}

impl ReplyMismatch {
    /// A [`Mismatch`] found by comparing with what `mode` answers (its
    /// `sent` being the expected byte), `base` bytes into the replies.
    pub fn from_mismatch(mode: &'static str, m: Mismatch, base: u64, context: String) -> Self {
        Self {
            mode,
            offset: base + m.offset,
            expected: m.received.map(|_| m.sent),
            received: m.received,
            context,
        }
    }
}

impl ClientError {
    /// The process exit code for this failure.
    pub fn exit_code(&self) -> u8 {
        match self {
            Self::Refused(_) => exit::REFUSED,
            Self::Resolve { .. } => exit::RESOLVE,
            Self::ConnectTimeout(..)
            | Self::EchoTimeout { .. }
            | Self::DrainTimeout { .. }
            | Self::Stalled { .. }
            | Self::NoFin { .. }
            | Self::Silent { .. }
            | Self::NoDatagram(_) => exit::TIMEOUT,
            Self::ClosedEarly { .. } | Self::ServiceClosed { .. } => exit::CLOSED,
            Self::Mismatch(_) | Self::Reply(_) | Self::DatagramSize { .. } => exit::MISMATCH,
            Self::Interrupted | Self::Unanswered { .. } => exit::INTERRUPTED,
            Self::Usage(_) => exit::USAGE,
            Self::Connect(..) | Self::Other(_) => exit::OTHER,
            Self::Tls { failure, .. } => match failure {
                TlsFailure::Handshake => exit::TLS_HANDSHAKE,
                TlsFailure::Untrusted => exit::TLS_UNTRUSTED,
                TlsFailure::Fingerprint => exit::TLS_FINGERPRINT,
            },
        }
    }

    /// A short name for the failure class, for JSON output.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Refused(_) => "refused",
            Self::Resolve { .. } => "resolve",
            Self::ConnectTimeout(..) => "connect_timeout",
            Self::EchoTimeout { .. }
            | Self::DrainTimeout { .. }
            | Self::Stalled { .. }
            | Self::NoFin { .. }
            | Self::Silent { .. }
            | Self::NoDatagram(_) => "timeout",
            Self::ClosedEarly { reset: false, .. } | Self::ServiceClosed { reset: false, .. } => {
                "closed"
            }
            Self::ClosedEarly { reset: true, .. } | Self::ServiceClosed { reset: true, .. } => {
                "reset"
            }
            Self::Mismatch(_) | Self::Reply(_) | Self::DatagramSize { .. } => "mismatch",
            Self::Interrupted => "interrupted",
            Self::Unanswered { .. } => "unanswered",
            Self::Connect(..) => "connect",
            Self::Usage(_) => "usage",
            Self::Other(_) => "error",
            Self::Tls { failure, .. } => match failure {
                TlsFailure::Handshake => "tls_handshake",
                TlsFailure::Untrusted => "tls_untrusted",
                TlsFailure::Fingerprint => "tls_fingerprint",
            },
        }
    }

    /// The one document a `--json` run prints when it fails before it has
    /// any result to report.
    pub fn json_document(&self, mode: &str, target: &str) -> String {
        json::to_string(&FailedRun {
            mode,
            target,
            error_kind: self.kind(),
            error: self,
        })
    }
}

/// A `--json` run's document when it failed before measuring anything.
#[derive(Serialize)]
struct FailedRun<'a> {
    mode: &'a str,
    target: &'a str,
    error_kind: &'static str,
    error: &'a ClientError,
}

/// In a JSON document, an error is its one-line message.
impl Serialize for ClientError {
    fn serialize<S: serde::Serializer>(&self, out: S) -> Result<S::Ok, S::Error> {
        out.collect_str(self)
    }
}

impl std::error::Error for ClientError {}

/// True for the errors a peer's RST produces.
pub fn is_reset(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionReset
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::BrokenPipe
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_class_has_a_distinct_documented_code() {
        let addr: SocketAddr = "127.0.0.1:7878".parse().unwrap();
        let errors = [
            ClientError::Mismatch(Mismatch {
                offset: 0,
                sent: b'a',
                received: Some(b'b'),
            }),
            ClientError::Refused(addr),
            ClientError::Resolve {
                host: "x".into(),
                detail: "y".into(),
            },
            ClientError::ConnectTimeout(addr, Duration::from_secs(1)),
            ClientError::ClosedEarly {
                received: 0,
                expected: 1,
                reset: false,
            },
            ClientError::Other("z".into()),
            ClientError::Usage("u".into()),
            ClientError::Interrupted,
            ClientError::Unanswered {
                waited: Duration::from_secs(1),
                connecting: false,
            },
            ClientError::Tls {
                failure: TlsFailure::Handshake,
                detail: "h".into(),
            },
            ClientError::Tls {
                failure: TlsFailure::Untrusted,
                detail: "t".into(),
            },
            ClientError::Tls {
                failure: TlsFailure::Fingerprint,
                detail: "f".into(),
            },
        ];
        let codes: Vec<u8> = errors.iter().map(ClientError::exit_code).collect();
        assert_eq!(codes, [1, 3, 4, 5, 6, 7, 2, 130, 130, 9, 10, 11]);
        for code in codes {
            assert!(EXIT_CODES_HELP.contains(&format!("\n  {code} ")));
        }
    }
}
