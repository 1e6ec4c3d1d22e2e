//! `bench --bulk --in-flight unbounded`: per connection, a writer thread
//! that sends the pattern as fast as the kernel takes it, never waiting for
//! the echo, and a reader thread that reads and checks every byte. This is
//! how `nc host port < big > out`, socat or any tool with one thread per
//! direction loads a server; the event-loop engine keeps a bound in flight
//! instead, and a server's cost can differ between the two shapes.
//!
//! The sockets are plain blocking ones. This thread only coordinates: it
//! sleeps in a `Poll` holding the Ctrl+C pipes and a waker the threads ring
//! when they end, samples the counters as the window opens, at each of its
//! intervals (`-i`) and as it closes, stops the
//! writers (a flag, and `shutdown(Write)` on the socket, which also ends a
//! write blocked on a full socket), waits for the last echoes up to
//! `--timeout`, and then ends the readers (`shutdown(Both)`).
//!
//! `connect` opens the connections and starts their threads, `writer` and
//! `reader` are the threads, `drive` the coordinator's loop, `end` the
//! measured window, the stop and the report (the other bulk modes').

mod connect;
mod drive;
mod end;
mod reader;
mod tls;
mod writer;

use std::io;
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use mio::{Poll, Token, Waker};

use self::reader::ReaderEnd;
use super::failures::Failures;
use super::interval::Intervals;
use super::report::BenchReport;
use super::window::Window;
use super::{BenchConfig, StopAfter};
use crate::client::error::ClientError;
use crate::client::pattern::Pattern;
use crate::os::signal::StopSignals;

/// The signal pipes' tokens, from the top down.
const SIGNALS: Token = Token(usize::MAX);
/// The threads' waker.
const WAKE: Token = Token(0);
/// How often the coordinator looks while no byte is awaited.
const IDLE_LOOK: Duration = Duration::from_millis(10);

/// What all threads of a run share.
struct Run {
    size: usize,
    pattern: Pattern,
    start: Instant,
    /// Every connection is open: the writers may start.
    started: AtomicBool,
    /// Writers stop.
    stop: AtomicBool,
    /// Readers stop: the run is over.
    quit: AtomicBool,
    /// `--requests`: writes not yet claimed by any writer.
    writes_left: Option<AtomicU64>,
    waker: Waker,
}

impl Run {
    fn wake(&self) {
        // A failed wake only delays the coordinator to its next deadline.
        let _ = self.waker.wake();
    }

    fn since_start(&self, now: Instant) -> u64 {
        now.saturating_duration_since(self.start).as_nanos() as u64
    }
}

/// One connection's counters, shared by its two threads and the
/// coordinator.
#[derive(Default)]
struct Conn {
    /// Its stream of the pattern.
    id: u64,
    /// Bytes handed, or being handed, to the kernel.
    offered: AtomicU64,
    /// Bytes the kernel took.
    written: AtomicU64,
    /// The writer has stopped: `written` is final.
    writer_done: AtomicBool,
    /// Bytes echoed and checked.
    verified: AtomicU64,
    /// When the last echo arrived, in nanoseconds since the run started.
    last_echo_ns: AtomicU64,
    /// The reader stopped on its own (the server closed, or a failure).
    reader_done: AtomicBool,
}

impl Conn {
    /// Everything written has come back, or nothing more will.
    fn finished(&self) -> bool {
        self.reader_done.load(Ordering::SeqCst)
            || (self.writer_done.load(Ordering::SeqCst)
                && self.verified.load(Ordering::SeqCst) >= self.written.load(Ordering::SeqCst))
    }

    /// Bytes sent (or being sent) and not yet echoed, while the reader waits.
    fn outstanding(&self) -> u64 {
        if self.reader_done.load(Ordering::SeqCst) {
            return 0;
        }
        let offered = self.offered.load(Ordering::SeqCst);
        offered.saturating_sub(self.verified.load(Ordering::SeqCst))
    }
}

/// A connection as the coordinator holds it.
struct Open {
    /// Its handle on the socket, to stop the threads with `shutdown`.
    stream: TcpStream,
    conn: Arc<Conn>,
    writer: Option<JoinHandle<()>>,
    reader: Option<JoinHandle<ReaderEnd>>,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Phase {
    Running,
    Draining(Instant),
}

/// The coordinator.
struct Streams<'a> {
    config: &'a BenchConfig,
    addr: SocketAddr,
    poll: Poll,
    signals: StopSignals,
    run: Arc<Run>,
    conns: Vec<Open>,
    phase: Phase,
    run_start: Option<Instant>,
    window: Window,
    /// `-i`: the window's intervals.
    intervals: Option<Intervals>,
    /// Each connection's verified count when the window last counted it.
    seen: Vec<u64>,
    /// The last echo, or the last time nothing was awaited.
    last_progress: Instant,
    drain_wait: Duration,
    interrupted: bool,
    connect_errors: usize,
    mismatches: usize,
    closed_early: usize,
    incomplete: usize,
    most_in_flight: u64,
    failures: Failures,
    server_note: Option<String>,
}

/// Runs the benchmark against `addr` with a writer and a reader thread per
/// connection. Fails only when nothing could be measured.
pub fn run(config: &BenchConfig, addr: SocketAddr) -> Result<BenchReport, ClientError> {
    let mut streams = Streams::new(config, addr)?;
    let driven = streams.open_all().and_then(|()| streams.drive());
    // Whatever happened, no thread outlives the run.
    streams.finish();
    driven?;
    Ok(streams.report())
}

impl<'a> Streams<'a> {
    fn new(config: &'a BenchConfig, addr: SocketAddr) -> Result<Self, ClientError> {
        let setup = |e: io::Error| ClientError::Other(format!("cannot set up the event loop: {e}"));
        let poll = Poll::new().map_err(setup)?;
        let mut signals = StopSignals::install().map_err(setup)?;
        signals.register(poll.registry(), SIGNALS).map_err(setup)?;
        let waker = Waker::new(poll.registry(), WAKE).map_err(setup)?;
        let now = Instant::now();
        let run = Arc::new(Run {
            size: config.size,
            pattern: Pattern::new(),
            start: now,
            started: AtomicBool::new(false),
            stop: AtomicBool::new(false),
            quit: AtomicBool::new(false),
            writes_left: match config.stop {
                StopAfter::Requests(n) => Some(AtomicU64::new(n)),
                StopAfter::Duration(_) => None,
            },
            waker,
        });
        Ok(Self {
            config,
            addr,
            poll,
            signals,
            run,
            conns: Vec::with_capacity(config.connections),
            phase: Phase::Running,
            run_start: None,
            window: Window::new(now)?,
            intervals: match config.intervals {
                Some((period, output)) => Some(Intervals::new(period, output, true, now)?),
                None => None,
            },
            seen: Vec::new(),
            last_progress: now,
            drain_wait: config.timeout,
            interrupted: false,
            connect_errors: 0,
            mismatches: 0,
            closed_early: 0,
            incomplete: 0,
            most_in_flight: 0,
            failures: Failures::default(),
            server_note: None,
        })
    }
}
