//! `bench --mode discard|chargen|framed`: many connections on one `Poll`,
//! each driven by its mode's [`Driver`], measured over a window after the
//! warm-up.
//!
//! - discard: upload MB/s (bytes the server took; anything sent back is a
//!   mismatch; at the end each FIN must be answered with a FIN).
//! - chargen: download MB/s, every byte checked against RFC 864.
//! - framed: echo frames per second and their latency, every reply
//!   checked (each byte + 1, then `\n`).
//!
//! `engine` runs the loop; `discard`, `chargen` and `framed` are the
//! drivers; `report` is what is printed.

mod chargen;
mod discard;
mod engine;
mod framed;
pub mod report;

use std::io::{self, ErrorKind, Read, Write};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use mio::net::TcpStream;

pub use self::engine::run;
use super::ServiceMode;
use crate::client::bench::interval::{IntervalOutput, Intervals};
use crate::client::bench::interval_setting;
use crate::client::error::{is_reset, ClientError};

/// What a mode benchmark is asked to do.
#[derive(Debug, Clone)]
pub struct ModeBench {
    /// The target as given, for the report.
    pub target: String,
    /// discard, chargen or framed.
    pub mode: ServiceMode,
    /// Connections.
    pub connections: usize,
    /// Write size (discard), read size (chargen), frame payload (framed).
    pub size: usize,
    /// Frames in flight per connection (framed).
    pub depth: usize,
    /// Measured seconds.
    pub duration: Duration,
    /// Unmeasured seconds before.
    pub warmup: Duration,
    /// Longest wait for progress, for connecting and for the end.
    pub timeout: Duration,
    /// The server's PID, for its CPU time and memory.
    pub server_pid: Option<u32>,
    /// `-i` (or `--json-stream`): the window's intervals, how long and
    /// where they go.
    pub intervals: Option<(Duration, IntervalOutput)>,
}

/// Figures every driver adds to.
#[derive(Debug)]
pub struct Counters {
    /// Bytes the client wrote.
    pub up: u64,
    /// Bytes the server sent and the check passed.
    pub down: u64,
    /// Replies (framed) complete and right.
    pub replies: u64,
    /// Whether the window is open: latencies count only then.
    pub measuring: bool,
    /// Reply latency in nanoseconds (framed).
    pub latency: Histogram<u64>,
    /// `-i`: the window's intervals.
    pub intervals: Option<Intervals>,
}

impl Counters {
    /// Counts one reply's latency, in the window and in its interval.
    pub fn record_latency(&mut self, ns: u64) {
        self.latency.saturating_record(ns);
        if let Some(intervals) = &mut self.intervals {
            intervals.latency(ns);
        }
    }
}

/// Where a connection's turn left it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// Waits for the socket: it read until empty and wrote until full.
    Wait,
    /// Stopped at its budget with more to move: turn again before polling
    /// (the socket's edge has been spent).
    Again,
    /// The server closed its side.
    Closed,
}

/// Reads or writes one turn may make before giving the others theirs.
pub const TURN_BUDGET: usize = 16;

/// A connection's part in a mode benchmark.
pub trait Driver {
    /// Moves what can move now, at most [`TURN_BUDGET`] reads and as many
    /// writes (none once `sending` is over).
    fn turn(
        &mut self,
        stream: &mut TcpStream,
        scratch: &mut [u8],
        sending: bool,
        counters: &mut Counters,
    ) -> Result<Step, ClientError>;

    /// After sending stops: whether the connection still waits for
    /// replies to what it sent.
    fn awaiting(&self) -> bool {
        false
    }
}

/// Reads into `scratch` until the socket is empty or [`TURN_BUDGET`]
/// reads are done, handing each chunk to `got`.
pub(super) fn read_some(
    mode: ServiceMode,
    stream: &mut TcpStream,
    scratch: &mut [u8],
    mut got: impl FnMut(&[u8]) -> Result<(), ClientError>,
) -> Result<Step, ClientError> {
    for _ in 0..TURN_BUDGET {
        match stream.read(scratch) {
            Ok(0) => return Ok(Step::Closed),
            Ok(n) => got(&scratch[..n])?,
            Err(e) if e.kind() == ErrorKind::WouldBlock => return Ok(Step::Wait),
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => return Err(stream_error(mode, e)),
        }
    }
    Ok(Step::Again)
}

/// The step of a turn whose read and write ended as `read` and `write`.
pub(super) fn both(read: Step, write: Step) -> Step {
    match (read, write) {
        (Step::Closed, _) | (_, Step::Closed) => Step::Closed,
        (Step::Again, _) | (_, Step::Again) => Step::Again,
        _ => Step::Wait,
    }
}

/// Writes as much of `bytes` as the socket takes; the count written.
pub(super) fn write_some(
    mode: ServiceMode,
    stream: &mut TcpStream,
    bytes: &[u8],
) -> Result<usize, ClientError> {
    let mut done = 0;
    while done < bytes.len() {
        match stream.write(&bytes[done..]) {
            Ok(n) => done += n,
            Err(e) if e.kind() == ErrorKind::WouldBlock => break,
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => return Err(stream_error(mode, e)),
        }
    }
    Ok(done)
}

fn stream_error(mode: ServiceMode, e: io::Error) -> ClientError {
    if is_reset(&e) {
        ClientError::ServiceClosed {
            mode: mode.name(),
            reset: true,
        }
    } else {
        ClientError::Other(format!("connection failed: {e}"))
    }
}

/// Nanoseconds since `since`, for the latency histogram.
pub(super) fn nanos_since(since: Instant) -> u64 {
    u64::try_from(since.elapsed().as_nanos()).unwrap_or(u64::MAX)
}

impl ModeBench {
    /// The settings of `bench --mode discard|chargen|framed`, or the usage
    /// error of an option that mode has no use for.
    pub fn from_args(args: &crate::client::cli::BenchArgs) -> Result<Self, ClientError> {
        let mode = args.mode;
        let refuse = |option: &str| {
            Err(ClientError::Usage(format!(
                "bench --mode {mode}: {option} is for echo (a {mode} run streams for --duration)"
            )))
        };
        match mode {
            ServiceMode::Echo | ServiceMode::Upper => {
                return Err(mode.unsupported("bench", "echo, discard, chargen, framed"))
            }
            _ if args.bulk => return refuse("--bulk"),
            _ if args.rate.is_some() => return refuse("--rate"),
            _ if args.requests.is_some() => return refuse("--requests"),
            _ if args.depth != 1 && mode != ServiceMode::Framed => return refuse("--depth"),
            _ => {}
        }
        Ok(Self {
            target: args.address.to_string(),
            mode,
            connections: args.connections as usize,
            size: args.size(),
            depth: args.depth as usize,
            duration: args.duration,
            warmup: args.warmup(),
            timeout: args.timeout,
            server_pid: args.server_pid,
            intervals: interval_setting(args),
        })
    }
}
