//! Model checks shared by the fuzz targets in `fuzz/` and by `cargo test`.
//!
//! Each check turns arbitrary bytes into a script of operations, runs the
//! script against the real code (the [`Echo`](crate::logic::echo::Echo) state
//! machine, the [`TimerWheel`](crate::logic::timer::TimerWheel) with its
//! [`TickClock`](crate::logic::timer::TickClock), the value and command-line
//! parsers) and compares it after every step with a simple reference model.
//! A broken invariant is returned as a [`Violation`] naming the step.
//!
//! The fuzz targets are three-line shims that panic on a `Violation`, so
//! libFuzzer records the input as a crash. The same functions replay the
//! checked-in seed corpus (`fuzz/seeds/<target>/`) and every crash ever
//! found (`fuzz/regressions/<target>/`) in `cargo test`, so a crash found
//! once stays fixed, and the checks themselves are compiled and exercised
//! on stable Rust in every CI run.
//!
//! - [`echo::check_echo`]: peer sends, short writes, `WouldBlock`,
//!   `Interrupted`, EOF, reset and shutdown against an edge-triggered
//!   readiness model.
//! - [`timer::check_timer`]: idle timers armed, touched, cancelled and
//!   expired the way the server's loop does it, against a list of deadlines.
//! - [`parsers::check_parsers`]: sizes, seconds and whole command lines.
//! - [`services::check_services`]: the framed protocol and the line
//!   limiter, in arbitrary splits, against one whole write.
//! - [`http::check_http`]: the metrics endpoint's HTTP connection, chunked,
//!   pipelined, blocked and reset, against parsing the whole stream at once.
//! - [`proxy_protocol::check_proxy`]: PROXY protocol headers in arbitrary
//!   splits, against feeding them at once.
//! - [`port_cidr::check_port_cidr`]: port lists, `--listen` and networks.
//! - [`tls::check_tls`]: the TLS layer between a scripted socket and the
//!   echo machine, with a real client, noise and corruption in arbitrary
//!   splits.

use std::error::Error;
use std::fmt;

pub mod echo;
pub mod http;
pub mod parsers;
pub mod port_cidr;
pub mod proxy_protocol;
pub mod services;
pub(crate) mod stream;
pub mod timer;
pub mod tls;

/// An invariant that did not hold, and the script step where it broke.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    /// Index of the operation after which the check failed (0 is the set-up
    /// before the first decoded operation).
    pub step: usize,
    /// What was expected and what happened.
    pub message: String,
}

impl Violation {
    pub(crate) fn new(step: usize, message: impl Into<String>) -> Self {
        Self {
            step,
            message: message.into(),
        }
    }
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "step {}: {}", self.step, self.message)
    }
}

impl Error for Violation {}

/// Reads fuzz bytes as a stream of small numbers. Running out of input is
/// not an error: it yields zeros, so every byte string is a valid script
/// and the fuzzer never wastes time on inputs that are rejected up front.
#[derive(Debug)]
pub(crate) struct Input<'a> {
    data: &'a [u8],
    pos: usize,
}

impl<'a> Input<'a> {
    pub(crate) fn new(data: &'a [u8]) -> Self {
        Self { data, pos: 0 }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.pos >= self.data.len()
    }

    pub(crate) fn byte(&mut self) -> u8 {
        let b = self.data.get(self.pos).copied().unwrap_or(0);
        self.pos += 1;
        b
    }

    pub(crate) fn u16(&mut self) -> u16 {
        u16::from_le_bytes([self.byte(), self.byte()])
    }

    /// A number in `0..n` (n > 0) from one byte, or two when n needs them.
    pub(crate) fn below(&mut self, n: usize) -> usize {
        debug_assert!(n > 0);
        if n <= 256 {
            usize::from(self.byte()) % n
        } else {
            usize::from(self.u16()) % n
        }
    }
}

/// The tests' pseudo-random generator: deterministic, so a failure
/// replays from its seed, and the same xorshift64 the client's payload
/// uses. Generated scripts let stable CI explore beyond the corpus.
#[cfg(test)]
pub(crate) struct Rng(pub(crate) u64);

#[cfg(test)]
impl Rng {
    pub(crate) fn next(&mut self) -> u64 {
        self.0 = crate::client::pattern::xorshift64(self.0);
        self.0
    }

    /// A number in `0..n` (n > 0).
    pub(crate) fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    /// `n` bytes, the low byte of each draw.
    pub(crate) fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next() as u8).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::{Path, PathBuf};

    /// Every file under `fuzz/<kind>/<target>/`, sorted for stable output.
    fn files(kind: &str, target: &str) -> Vec<PathBuf> {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("fuzz")
            .join(kind)
            .join(target);
        let Ok(entries) = std::fs::read_dir(&dir) else {
            return Vec::new();
        };
        let mut paths: Vec<PathBuf> = entries
            .map(|e| e.expect("read fuzz corpus entry").path())
            .filter(|p| p.is_file())
            .collect();
        paths.sort();
        paths
    }

    /// Runs `check` on every seed and every past crash of `target`; the seed
    /// corpus must exist, or a missing directory would make this pass
    /// without checking anything.
    fn replay<T, E: fmt::Display>(target: &str, check: impl Fn(&[u8]) -> Result<T, E>) -> Vec<T> {
        let seeds = files("seeds", target);
        assert!(
            seeds.len() >= 5,
            "fuzz/seeds/{target}/ holds {} files; the seed corpus is missing",
            seeds.len()
        );
        let mut results = Vec::new();
        for path in seeds.iter().chain(&files("regressions", target)) {
            let data = std::fs::read(path).expect("read corpus file");
            match check(&data) {
                Ok(result) => results.push(result),
                Err(e) => panic!("{}: {e}", path.display()),
            }
        }
        results
    }

    // The checked-in echo corpus passes, and between them its scripts end
    // in every way a connection can end, reach the full-buffer path and
    // splice up to an urgent mark with the peer's FIN behind it, so the
    // replay exercises what the fuzzer found interesting.
    #[test]
    fn echo_corpus_replays() {
        let runs = replay("echo", echo::check_echo);
        use crate::logic::echo::CloseReason;
        for reason in [
            CloseReason::PeerClosed,
            CloseReason::Reset,
            CloseReason::Shutdown,
        ] {
            assert!(
                runs.iter().any(|r| r.closed == reason),
                "no seed ends with {reason}"
            );
        }
        assert!(
            runs.iter().any(|r| r.buffer_filled),
            "no seed fills the buffer"
        );
        assert!(runs.iter().any(|r| r.closed_during_script));
        assert!(
            runs.iter().filter(|r| r.zero_at_mark).count() >= 5,
            "too few seeds reach the urgent mark on the pipe after the FIN"
        );
    }

    // The checked-in timer corpus passes and includes idle closes, re-arms
    // and long pauses.
    #[test]
    fn timer_corpus_replays() {
        let runs = replay("timer", timer::check_timer);
        assert!(runs.iter().any(|r| r.idle_closes > 0));
        assert!(runs.iter().any(|r| r.rearms > 0));
        assert!(runs.iter().any(|r| r.pauses > 0));
    }

    // The checked-in parser corpus passes and includes accepted and
    // rejected command lines.
    #[test]
    fn parsers_corpus_replays() {
        let runs = replay("parsers", parsers::check_parsers);
        assert!(runs.iter().any(|r| r.command_line_accepted));
        assert!(runs.iter().any(|r| !r.command_line_accepted));
    }

    // The checked-in HTTP corpus passes and between them its scripts get
    // answers of several statuses, closing answers included.
    #[test]
    fn http_corpus_replays() {
        let runs = replay("http", http::check_http);
        for code in [200, 400, 404, 405] {
            assert!(
                runs.iter().any(|r| r.statuses.contains(&code)),
                "no seed answered {code}"
            );
        }
    }

    // The PROXY corpus passes and reaches every kind of answer.
    #[test]
    fn proxy_protocol_corpus_replays() {
        use crate::logic::proxy_protocol::Parsed;
        let runs = replay("proxy_protocol", proxy_protocol::check_proxy);
        assert!(runs.iter().any(|r| matches!(r.parsed, Parsed::Done { .. })));
        assert!(runs
            .iter()
            .any(|r| matches!(r.parsed, Parsed::Local { .. })));
        assert!(runs.iter().any(|r| matches!(r.parsed, Parsed::Invalid(_))));
        assert!(runs.iter().any(|r| r.parsed == Parsed::NeedMore));
    }

    // The port and network corpus passes, with accepted and refused text.
    #[test]
    fn port_cidr_corpus_replays() {
        let runs = replay("port_cidr", port_cidr::check_port_cidr);
        assert!(runs.iter().any(|r| r.ports_accepted));
        assert!(runs.iter().any(|r| r.listen_accepted));
        assert!(runs.iter().any(|r| r.cidr_accepted));
        assert!(runs.iter().any(|r| !r.ports_accepted && !r.cidr_accepted));
    }

    // The services corpus (framed and --max-line scripts) passes, and so
    // does every script the fuzzer once broke it with.
    #[test]
    fn services_corpus_replays() {
        replay("services", services::check_services);
    }

    // The TLS corpus passes, and between them its scripts finish a
    // handshake and echo, and get refused.
    #[test]
    fn tls_corpus_replays() {
        let runs = replay("tls", tls::check_tls);
        assert!(runs.iter().any(|r| r.handshake_done && r.echoed > 0));
        assert!(runs.iter().any(|r| r.refused));
    }

    // Missing input reads as zeros, and `below` stays in range.
    #[test]
    fn input_is_total() {
        let mut input = Input::new(&[7, 1, 2]);
        assert_eq!(input.byte(), 7);
        assert_eq!(input.u16(), 0x0201);
        assert!(input.is_empty());
        assert_eq!(input.byte(), 0);
        assert_eq!(input.below(3), 0);
        let mut input = Input::new(&[255, 255]);
        assert_eq!(input.below(1000), 65535 % 1000);
    }
}
