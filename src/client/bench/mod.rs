//! `bench` mode: many connections driven by one mio `Poll`, each keeping
//! `depth` messages in flight (or following a fixed `--rate`, or streaming
//! in bulk), every echoed byte verified, latency in an HDR histogram.
//!
//! The loop mirrors the server's: connections are registered once for
//! read and write readiness, reads and writes go until WouldBlock (a short
//! read ends a turn unless the peer hung up), and the next message of a
//! closed-loop connection is written in the same turn its echo completed.
//!
//! Bulk connections send without copying where the kernel lets them: each
//! gets a pipe, the pattern's pages are queued in it by reference
//! (`vmsplice`) and spliced on into the socket, so the client's CPU goes to
//! reading and checking the echo, not to copying what it sends. Any refusal
//! (no descriptor left, pipe pages rationed, vmsplice unavailable) leaves
//! that connection on plain writes. Echoes are read and compared as always.
//!
//! This file holds the engine's state and its loop; the rest by job:
//! `config` (the settings), `connect` (opening connections), `issue` (what
//! each may send now), `transfer` (a connection's turn: read, check, write),
//! `bulk` (the pipes), `phase` (what moves the run from connecting to
//! running to draining, and when it must look next), `window` (the
//! measured window), `progress` (the live line), `end` (stopping,
//! draining, the report's figures).
//!
//! `--bulk --in-flight unbounded` runs another engine, `stream`: a writer
//! and a reader thread per connection on blocking sockets, the shape of
//! `nc` or socat, with the same report.

mod bulk;
mod config;
mod connect;
mod end;
pub(crate) mod failures;
pub(crate) mod flow;
pub mod in_flight;
pub mod interval;
mod issue;
mod phase;
mod progress;
pub mod rate;
pub(crate) mod report;
pub(crate) mod schedule;
mod stream;
mod transfer;
mod transport;
mod wake;
pub(crate) mod window;

pub use self::config::{interval_setting, BenchConfig, StopAfter};

use std::io::{self, ErrorKind};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use mio::event::Event;
use mio::net::TcpStream;
use mio::{Events, Poll, Token};

use self::failures::Failures;
use self::flow::Flow;
use self::in_flight::InFlightLimit;
use self::interval::Intervals;
use self::progress::Progress;
use self::report::BenchReport;
use self::schedule::RateSchedule;
use self::transport::Transport;
use self::wake::PreciseWake;
use self::window::Window;
use super::error::ClientError;
use super::pattern::Pattern;
use super::tls::TlsStream;
use crate::os::signal::StopSignals;
use crate::os::splice::Pipe;

/// Tokens at the top of the range belong to the signal pipes and the
/// schedule's timer; connections use their index.
const SIGNALS: Token = Token(usize::MAX);
/// The `--rate` schedule's timer, below the signal pipes' tokens.
const WAKE: Token = Token(usize::MAX - 16);
/// Read buffer shared by all connections.
const READ_CHUNK: usize = 256 * 1024;

#[derive(Debug)]
enum State {
    NotStarted,
    Connecting(Instant),
    Open,
    Closed,
}

#[derive(Debug)]
struct Conn<T> {
    stream: Option<T>,
    state: State,
    flow: Flow<Instant>,
    /// `--rate`: how many of its scheduled messages it has issued; those
    /// due beyond that wait for `depth` to allow them.
    scheduled: u64,
    /// Bulk: the pipe this connection sends through without copying; none
    /// means plain writes.
    pipe: Option<Pipe>,
    /// The pipe stopped taking memory: the bytes in it go out, then the
    /// connection copies.
    pipe_failed: bool,
    /// Bulk: the bound on its bytes written and not yet echoed.
    in_flight: InFlightLimit,
    /// Its reads come with the kernel's receive timestamps.
    rx_stamps: bool,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Phase {
    Connecting,
    Running,
    Draining(Instant),
}

struct Engine<'a, T> {
    config: &'a BenchConfig,
    addr: SocketAddr,
    poll: Poll,
    signals: StopSignals,
    conns: Vec<Conn<T>>,
    pattern: Pattern,
    scratch: Vec<u8>,
    phase: Phase,
    next_to_connect: usize,
    connecting: usize,
    connected: usize,
    /// Connections open now (connected minus those closed since).
    open: usize,
    issued: u64,
    /// Bytes issued on open connections but not yet echoed.
    outstanding: u64,
    schedule: Option<RateSchedule>,
    /// `--rate`: wakes the loop when the next message falls due.
    wake: Option<PreciseWake>,
    run_start: Option<Instant>,
    window: Window,
    /// `-i`: the window's intervals.
    intervals: Option<Intervals>,
    progress: Progress,
    connect_errors: usize,
    mismatches: usize,
    closed_early: usize,
    incomplete: usize,
    failures: Failures,
    interrupted: bool,
    /// The last time an echo arrived, or nothing was awaited: a run with
    /// bytes out and no echo for `timeout` since has stalled.
    last_progress: Instant,
    /// How long the drain waits for the last echoes (shorter after Ctrl+C).
    drain_wait: Duration,
    /// Why the server's usage could not be measured, with `--server-pid`.
    server_note: Option<String>,
    /// What ended the window's latencies (kernel stamp or clock).
    rtt_sources: report::RttSources,
    /// Places the kernel's receive stamps on the clock of the sends.
    stamp_clock: crate::os::rx_timestamp::StampClock,
}

/// Runs the benchmark against `addr` and returns what it measured. Fails
/// only when nothing could be measured (no connection at all, Ctrl+C twice,
/// or local setup errors); per-connection failures are counted instead.
pub fn run(config: &BenchConfig, addr: SocketAddr) -> Result<BenchReport, ClientError> {
    if config.bulk && config.in_flight == in_flight::InFlight::Unbounded {
        return stream::run(config, addr);
    }
    if config.tls.is_some() {
        return run_engine::<TlsStream>(config, addr);
    }
    run_engine::<TcpStream>(config, addr)
}

fn run_engine<T: Transport>(
    config: &BenchConfig,
    addr: SocketAddr,
) -> Result<BenchReport, ClientError> {
    let mut engine = Engine::<T>::new(config, addr)?;
    let driven = engine.drive();
    // Splicing left SIGPIPE blocked; the caller prints next.
    crate::os::sigpipe::release();
    driven?;
    Ok(engine.report())
}

impl<'a, T: Transport> Engine<'a, T> {
    fn new(config: &'a BenchConfig, addr: SocketAddr) -> Result<Self, ClientError> {
        let setup = |e: io::Error| ClientError::Other(format!("cannot set up the event loop: {e}"));
        let poll = Poll::new().map_err(setup)?;
        let mut signals = StopSignals::install().map_err(setup)?;
        signals.register(poll.registry(), SIGNALS).map_err(setup)?;
        let ceiling = in_flight::auto_ceiling();
        let conns = (0..config.connections)
            .map(|i| Conn {
                stream: None,
                state: State::NotStarted,
                flow: Flow::new(i as u64, config.size),
                scheduled: 0,
                pipe: None,
                pipe_failed: false,
                in_flight: InFlightLimit::new(config.in_flight, ceiling),
                rx_stamps: false,
            })
            .collect();
        let wake = match config.rate {
            Some(_) => Some(PreciseWake::new(poll.registry(), WAKE).map_err(setup)?),
            None => None,
        };
        let now = Instant::now();
        let intervals = match config.intervals {
            Some((period, output)) => Some(Intervals::new(period, output, config.bulk, now)?),
            None => None,
        };
        Ok(Self {
            config,
            addr,
            poll,
            signals,
            conns,
            pattern: Pattern::new(),
            scratch: vec![0; READ_CHUNK],
            phase: Phase::Connecting,
            next_to_connect: 0,
            connecting: 0,
            connected: 0,
            open: 0,
            issued: 0,
            outstanding: 0,
            schedule: None,
            wake,
            run_start: None,
            window: Window::new(now)?,
            intervals,
            progress: Progress::new(config.progress, now),
            connect_errors: 0,
            mismatches: 0,
            closed_early: 0,
            incomplete: 0,
            failures: Failures::default(),
            interrupted: false,
            last_progress: now,
            drain_wait: config.timeout,
            server_note: None,
            rtt_sources: report::RttSources {
                tls: config.tls.is_some(),
                chosen: !config.rx_stamps,
                ..Default::default()
            },
            stamp_clock: Default::default(),
        })
    }

    fn drive(&mut self) -> Result<(), ClientError> {
        let mut events = Events::with_capacity(1024);
        loop {
            let now = Instant::now();
            if !self.advance(now)? {
                break;
            }
            let timeout = match (self.next_deadline(), &mut self.wake) {
                (Some(at), _) if at <= now => Some(Duration::ZERO),
                (Some(at), Some(wake)) => {
                    wake.arm(at, now)
                        .map_err(|e| ClientError::Other(format!("cannot arm the timer: {e}")))?;
                    None
                }
                (at, _) => at.map(|at| at - now),
            };
            match self.poll.poll(&mut events, timeout) {
                Ok(()) => {}
                // A signal interrupted the wait; its pipe is readable next.
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(e) => return Err(ClientError::Other(format!("poll failed: {e}"))),
            }
            for event in events.iter() {
                if let Some((_, count)) = self.signals.take(SIGNALS, event.token()) {
                    self.on_signal(count)?;
                } else if event.token() == WAKE {
                    if let Some(wake) = &mut self.wake {
                        wake.fired();
                    }
                } else if event.token().0 < self.conns.len() {
                    self.on_event(event);
                }
            }
        }
        self.finish_progress();
        Ok(())
    }

    fn on_event(&mut self, event: &Event) {
        let i = event.token().0;
        match self.conns[i].state {
            State::Connecting(_) => self.finish_connect(i),
            State::Open => {
                let hung_up = event.is_read_closed() || event.is_error();
                if self.read(i, hung_up) {
                    self.write(i);
                }
            }
            State::NotStarted | State::Closed => {}
        }
    }
}
