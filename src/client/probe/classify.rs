//! What a probe's observations mean for its port, as pure code: the
//! outcome of a connect, of an echo, of a run; the summary line; the exit
//! code.

use std::fmt;
use std::io;
use std::time::Duration;

use crate::client::error::{exit, seconds};
use crate::client::pattern::first_difference;

/// One port's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The echo came back exactly (`connect`: the TCP handshake's time).
    Open {
        /// TCP connect time; none for UDP.
        connect: Option<Duration>,
        /// From sending the probe to its last echoed byte.
        rtt: Duration,
    },
    /// Refused: a TCP RST to the SYN, or an ICMP port unreachable for UDP.
    Refused,
    /// No answer at all to the TCP handshake within the timeout: a
    /// firewall dropping packets, or a host that is down.
    Filtered(Duration),
    /// An ICMP host or network unreachable (a firewall's reject, a route).
    Unreachable(String),
    /// Connected, then reset before the echo was complete.
    Reset,
    /// Connected, then closed after `received` bytes of the echo.
    ClosedWithoutEcho(usize),
    /// The bytes that came back differ from those sent at this offset.
    WrongEcho(usize),
    /// Connected, but no complete echo within the timeout (`received`
    /// bytes of it came): a service that is not echo, or a stalled one.
    NoEcho {
        /// Bytes of the echo that came.
        received: usize,
        /// The timeout.
        after: Duration,
    },
    /// UDP: no echo after this many datagrams (a firewall dropping them,
    /// or nothing that answers).
    NoAnswer(u32),
    /// Not probed: the total time ran out, or Ctrl+C, before its turn.
    NotProbed,
    /// A local failure (no socket could be made, …).
    Error(String),
}

/// The kinds, in the summary's order.
pub const KINDS: [&str; 11] = [
    "open",
    "refused",
    "filtered",
    "unreachable",
    "reset",
    "closed",
    "wrong_echo",
    "no_echo",
    "no_answer",
    "not_probed",
    "error",
];

impl Outcome {
    /// A short name, for `--json` and the summary.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Open { .. } => "open",
            Self::Refused => "refused",
            Self::Filtered(_) => "filtered",
            Self::Unreachable(_) => "unreachable",
            Self::Reset => "reset",
            Self::ClosedWithoutEcho(_) => "closed",
            Self::WrongEcho(_) => "wrong_echo",
            Self::NoEcho { .. } => "no_echo",
            Self::NoAnswer(_) => "no_answer",
            Self::NotProbed => "not_probed",
            Self::Error(_) => "error",
        }
    }
}

/// The table's wording.
impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Open { .. } => f.write_str("open"),
            Self::Refused => f.write_str("refused"),
            Self::Filtered(after) => write!(f, "filtered (no answer in {})", seconds(*after)),
            Self::Unreachable(why) => write!(f, "unreachable ({why})"),
            Self::Reset => f.write_str("reset"),
            Self::ClosedWithoutEcho(0) => f.write_str("closed without echo"),
            Self::ClosedWithoutEcho(n) => write!(f, "closed without echo ({n} bytes came back)"),
            Self::WrongEcho(at) => write!(f, "wrong echo (differs at byte {at})"),
            Self::NoEcho { received, after } => {
                write!(
                    f,
                    "no echo in {} ({received} bytes came back)",
                    seconds(*after)
                )
            }
            Self::NoAnswer(1) => f.write_str("no answer (1 datagram)"),
            Self::NoAnswer(n) => write!(f, "no answer ({n} datagrams)"),
            Self::NotProbed => f.write_str("not probed (time limit or Ctrl+C)"),
            Self::Error(why) => write!(f, "error ({why})"),
        }
    }
}

/// A connect (or, for UDP, a receive) that failed with `e`.
pub fn failed(e: &io::Error, waited: Duration) -> Outcome {
    match e.kind() {
        io::ErrorKind::ConnectionRefused => Outcome::Refused,
        io::ErrorKind::TimedOut => Outcome::Filtered(waited),
        io::ErrorKind::ConnectionReset | io::ErrorKind::ConnectionAborted => Outcome::Reset,
        _ => match e.raw_os_error() {
            Some(libc::EHOSTUNREACH | libc::ENETUNREACH | libc::EACCES | libc::EPERM) => {
                Outcome::Unreachable(short_error(e))
            }
            _ => Outcome::Error(short_error(e)),
        },
    }
}

/// An OS error's text without its " (os error N)" tail.
fn short_error(e: &io::Error) -> String {
    let text = e.to_string();
    match text.find(" (os error") {
        Some(at) => text[..at].to_string(),
        None => text,
    }
}

/// The echo so far (`got`) of `sent`: `None` while it is a correct, short
/// prefix; otherwise the port's outcome (`rtt` for an exact echo).
pub fn echo(sent: &[u8], got: &[u8], connect: Option<Duration>, rtt: Duration) -> Option<Outcome> {
    if let Some(at) = first_difference(sent, got) {
        return Some(Outcome::WrongEcho(at));
    }
    match got.len().cmp(&sent.len()) {
        std::cmp::Ordering::Less => None,
        std::cmp::Ordering::Equal => Some(Outcome::Open { connect, rtt }),
        std::cmp::Ordering::Greater => Some(Outcome::WrongEcho(sent.len())),
    }
}

/// Counts of each kind, for the summary line.
pub fn summary<'a>(outcomes: impl IntoIterator<Item = &'a Outcome>) -> String {
    let mut counts = [0usize; KINDS.len()];
    for outcome in outcomes {
        if let Some(i) = KINDS.iter().position(|k| *k == outcome.kind()) {
            counts[i] += 1;
        }
    }
    KINDS
        .iter()
        .zip(counts)
        .enumerate()
        .filter(|(i, (_, n))| *i == 0 || *n > 0)
        .map(|(_, (kind, n))| format!("{n} {}", kind.replace('_', " ")))
        .collect::<Vec<_>>()
        .join(", ")
}

/// 130 after Ctrl+C; 1 if any port echoed wrong bytes; 8 if any other
/// port did not answer with its echo; 0 when every port did.
pub fn exit_code<'a>(outcomes: impl IntoIterator<Item = &'a Outcome>, interrupted: bool) -> u8 {
    if interrupted {
        return exit::INTERRUPTED;
    }
    let mut code = exit::OK;
    for outcome in outcomes {
        match outcome {
            Outcome::Open { .. } => {}
            Outcome::WrongEcho(_) => return exit::MISMATCH,
            _ => code = exit::NOT_ALL_OPEN,
        }
    }
    code
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: Duration = Duration::from_secs(2);

    #[test]
    fn connect_errors() {
        let refused = io::Error::from(io::ErrorKind::ConnectionRefused);
        assert_eq!(failed(&refused, T), Outcome::Refused);
        // The kernel's own SYN timeout, or ours: no answer is "filtered".
        let timed_out = io::Error::from_raw_os_error(libc::ETIMEDOUT);
        assert_eq!(failed(&timed_out, T), Outcome::Filtered(T));
        assert_eq!(
            Outcome::Filtered(T).to_string(),
            "filtered (no answer in 2.000 s)"
        );
        let unreachable = io::Error::from_raw_os_error(libc::EHOSTUNREACH);
        assert_eq!(
            failed(&unreachable, T).to_string(),
            "unreachable (No route to host)"
        );
        let reset = io::Error::from_raw_os_error(libc::ECONNRESET);
        assert_eq!(failed(&reset, T), Outcome::Reset);
        let other = io::Error::from_raw_os_error(libc::EMFILE);
        assert_eq!(failed(&other, T).kind(), "error");
    }

    #[test]
    fn echoes() {
        let c = Some(Duration::from_millis(1));
        let rtt = Duration::from_millis(2);
        assert_eq!(echo(b"abc", b"", c, rtt), None);
        assert_eq!(echo(b"abc", b"ab", c, rtt), None);
        assert_eq!(
            echo(b"abc", b"abc", c, rtt),
            Some(Outcome::Open { connect: c, rtt })
        );
        assert_eq!(echo(b"abc", b"abX", c, rtt), Some(Outcome::WrongEcho(2)));
        assert_eq!(echo(b"abc", b"X", c, rtt), Some(Outcome::WrongEcho(0)));
        assert_eq!(echo(b"abc", b"abcd", c, rtt), Some(Outcome::WrongEcho(3)));
        // An SSH banner is not an echo.
        assert_eq!(
            echo(b"echo-client probe", b"SSH-2.0-OpenSSH", c, rtt),
            Some(Outcome::WrongEcho(0))
        );
    }

    #[test]
    fn summaries_and_exit_codes() {
        let open = Outcome::Open {
            connect: None,
            rtt: T,
        };
        let mut all = vec![open.clone(); 12];
        assert_eq!(summary(&all), "12 open");
        assert_eq!(exit_code(&all, false), 0);
        assert_eq!(exit_code(&all, true), 130);
        all.extend([Outcome::Refused, Outcome::Refused, Outcome::Refused]);
        all.push(Outcome::Filtered(T));
        assert_eq!(summary(&all), "12 open, 3 refused, 1 filtered");
        assert_eq!(exit_code(&all, false), 8);
        all.push(Outcome::WrongEcho(0));
        all.push(Outcome::NotProbed);
        assert_eq!(
            summary(&all),
            "12 open, 3 refused, 1 filtered, 1 wrong echo, 1 not probed"
        );
        assert_eq!(exit_code(&all, false), 1);
        assert_eq!(summary(&[Outcome::NoAnswer(3)]), "0 open, 1 no answer");
        assert_eq!(exit_code(&[Outcome::NoAnswer(3)], false), 8);
        assert_eq!(exit_code(&[], false), 0);
    }
}
