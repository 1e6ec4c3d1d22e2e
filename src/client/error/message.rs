//! The one line each client failure prints (also its `--json` `error`),
//! and the durations and hints those lines use.

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use super::{ClientError, Mismatch, ReplyMismatch, TlsFailure};

impl fmt::Display for Mismatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.received {
            Some(received) => write!(
                f,
                "echo differs from what was sent at byte offset {}: sent {}, received {}",
                self.offset,
                show_byte(self.sent),
                show_byte(received)
            ),
            None => write!(
                f,
                "server sent back more than was sent: an extra byte at offset {}",
                self.offset
            ),
        }
    }
}

impl fmt::Display for ReplyMismatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let context = if self.context.is_empty() {
            String::new()
        } else {
            format!(" ({})", self.context)
        };
        match (self.expected, self.received) {
            (Some(expected), Some(received)) => write!(
                f,
                "{} reply differs from what that mode answers at byte offset {}{context}: expected {}, received {}",
                self.mode,
                self.offset,
                show_byte(expected),
                show_byte(received)
            ),
            (_, Some(received)) => write!(
                f,
                "{}: the server sent a byte where that mode sends none, at offset {}{context}: {}",
                self.mode,
                self.offset,
                show_byte(received)
            ),
            (_, None) => write!(
                f,
                "{}: the server sent more than that mode answers: an extra byte at offset {}{context}",
                self.mode, self.offset
            ),
        }
    }
}

fn show_byte(byte: u8) -> String {
    if byte.is_ascii_graphic() || byte == b' ' {
        format!("0x{byte:02x} '{}'", byte as char)
    } else {
        format!("0x{byte:02x}")
    }
}

impl fmt::Display for ClientError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Refused(addr) => write!(
                f,
                "nothing is listening on {addr} — is echo-server running?{}",
                OtherFamily(*addr)
            ),
            Self::Resolve { host, detail } => {
                write!(f, "cannot resolve host '{host}': {detail}")
            }
            Self::ConnectTimeout(addr, after) => write!(
                f,
                "no answer from {addr} within {} (a firewall dropping packets, or the host is down)",
                seconds(*after)
            ),
            Self::EchoTimeout {
                received,
                expected,
                after,
            } => write!(
                f,
                "timed out after {} waiting for the echo: {received} of {expected} bytes came back",
                seconds(*after)
            ),
            Self::DrainTimeout {
                connections,
                bytes,
                after,
            } => write!(
                f,
                "{bytes} bytes on {} were still not echoed {} after sending stopped",
                connections_text(*connections),
                seconds(*after)
            ),
            Self::Stalled {
                connections,
                bytes,
                after,
            } => write!(
                f,
                "no byte echoed for {} while {bytes} bytes on {} waited: the server stopped echoing",
                seconds(*after),
                connections_text(*connections)
            ),
            Self::ServiceClosed { mode, reset } => write!(
                f,
                "server {} a connection while the {mode} run still needed it",
                if *reset { "reset" } else { "closed" }
            ),
            Self::Silent { mode, after } => write!(
                f,
                "nothing moved for {} of the {mode} run: the server {}",
                seconds(*after),
                match *mode {
                    "discard" => "took no byte",
                    "chargen" => "sent no byte",
                    _ => "answered nothing",
                }
            ),
            Self::NoFin { connections, after } => write!(
                f,
                "the server did not close {} within {} of the client's FIN",
                connections_text(*connections),
                seconds(*after)
            ),
            Self::ClosedEarly {
                received,
                expected,
                reset,
            } if received == expected => write!(
                f,
                "server {} the connection after echoing all {received} bytes sent on it, while the run was still going",
                if *reset { "reset" } else { "closed" }
            ),
            Self::ClosedEarly {
                received,
                expected,
                reset,
            } => write!(
                f,
                "server {} the connection after echoing {received} of {expected} bytes",
                if *reset { "reset" } else { "closed" }
            ),
            Self::Mismatch(mismatch) => mismatch.fmt(f),
            Self::Reply(mismatch) => mismatch.fmt(f),
            Self::NoDatagram(after) => write!(
                f,
                "no datagram came back within {} (lost, dropped by a firewall, or no UDP echo there)",
                seconds(*after)
            ),
            Self::DatagramSize { sent, received } => write!(
                f,
                "the echoed datagram is {received} bytes, but {sent} bytes were sent"
            ),
            Self::Interrupted => f.write_str("interrupted"),
            Self::Unanswered { waited, connecting } => write!(
                f,
                "no {} after {}, when Ctrl+C stopped the wait",
                if *connecting { "connection" } else { "echo" },
                seconds(*waited)
            ),
            Self::Connect(addr, e) => write!(f, "cannot connect to {addr}: {e}"),
            Self::Usage(text) | Self::Other(text) => f.write_str(text),
            Self::Tls { failure, detail } => match failure {
                TlsFailure::Handshake => write!(f, "TLS handshake failed: {detail}"),
                TlsFailure::Untrusted => {
                    write!(f, "the server's TLS certificate is not trusted: {detail}")
                }
                TlsFailure::Fingerprint => write!(
                    f,
                    "the server's TLS certificate is not the one --tls-fingerprint pins: {detail}"
                ),
            },
        }
    }
}

fn connections_text(n: usize) -> String {
    format!("{n} connection{}", if n == 1 { "" } else { "s" })
}

/// A duration for people: seconds to the millisecond, or milliseconds to
/// the microsecond below one, so a 50 µs timeout does not read "0.000 s".
pub fn seconds(d: Duration) -> String {
    if d < Duration::from_millis(1) && !d.is_zero() {
        format!("{:.3} ms", d.as_secs_f64() * 1e3)
    } else {
        format!("{:.3} s", d.as_secs_f64())
    }
}

/// The hint after a refusal: a server may listen on one family only, so
/// the other family's address of the same host may answer.
struct OtherFamily(SocketAddr);

impl fmt::Display for OtherFamily {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let port = self.0.port();
        match self.0.ip() {
            IpAddr::V6(ip) if ip.is_loopback() => write!(
                f,
                " (or on IPv4 only, as with --bind 0.0.0.0: try 127.0.0.1:{port})"
            ),
            IpAddr::V6(_) => f.write_str(
                " (or on IPv4 only, as with --bind 0.0.0.0: try the host's IPv4 address)",
            ),
            IpAddr::V4(ip) if ip.is_loopback() => {
                write!(f, " (or on IPv6 only: try [::1]:{port})")
            }
            IpAddr::V4(_) => f.write_str(" (or on IPv6 only: try the host's IPv6 address)"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_say_what_happened() {
        let addr: SocketAddr = "127.0.0.1:7878".parse().unwrap();
        assert_eq!(
            ClientError::Refused(addr).to_string(),
            "nothing is listening on 127.0.0.1:7878 — is echo-server running? \
             (or on IPv6 only: try [::1]:7878)"
        );
        let v6: SocketAddr = "[::1]:7878".parse().unwrap();
        assert_eq!(
            ClientError::Refused(v6).to_string(),
            "nothing is listening on [::1]:7878 — is echo-server running? \
             (or on IPv4 only, as with --bind 0.0.0.0: try 127.0.0.1:7878)"
        );
        let far: SocketAddr = "[2001:db8::7]:7".parse().unwrap();
        assert!(ClientError::Refused(far)
            .to_string()
            .ends_with("(or on IPv4 only, as with --bind 0.0.0.0: try the host's IPv4 address)"));
        let m = Mismatch {
            offset: 6,
            sent: b'w',
            received: Some(0),
        };
        assert_eq!(
            m.to_string(),
            "echo differs from what was sent at byte offset 6: sent 0x77 'w', received 0x00"
        );
        let waited = ClientError::Unanswered {
            waited: Duration::from_millis(4012),
            connecting: false,
        };
        assert_eq!(
            waited.to_string(),
            "no echo after 4.012 s, when Ctrl+C stopped the wait"
        );
    }

    #[test]
    fn short_durations_keep_their_digits() {
        assert_eq!(seconds(Duration::from_micros(50)), "0.050 ms");
        assert_eq!(seconds(Duration::from_millis(200)), "0.200 s");
        assert_eq!(seconds(Duration::from_secs(2)), "2.000 s");
        assert_eq!(seconds(Duration::ZERO), "0.000 s");
        let timeout = ClientError::EchoTimeout {
            received: 0,
            expected: 64,
            after: Duration::from_micros(50),
        };
        assert!(timeout.to_string().starts_with("timed out after 0.050 ms "));
    }
}
