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

pub mod failures;
pub mod flow;
pub mod in_flight;
pub mod report;
pub mod schedule;
mod wake;

use std::io::{self, ErrorKind, IsTerminal, Read, Write};
use std::net::SocketAddr;
use std::os::fd::AsFd;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use mio::event::Event;
use mio::net::TcpStream;
use mio::{Events, Interest, Poll, Token};

use self::failures::Failures;
use self::flow::Flow;
use self::in_flight::{InFlight, InFlightLimit};
use self::report::{thousands, BenchReport, Latency, ServerUsage};
use self::schedule::RateSchedule;
use self::wake::PreciseWake;
use super::error::{exit, is_reset, ClientError};
use super::output;
use super::pattern::Pattern;
use super::session::{connect_error, connect_outcome};
use crate::os::procstat::{self, ProcessSample};
use crate::os::signal::StopSignals;
use crate::os::splice::Pipe;

/// Tokens at the top of the range belong to the signal pipes and the
/// schedule's timer; connections use their index.
const SIGNALS: Token = Token(usize::MAX);
/// The `--rate` schedule's timer, below the signal pipes' tokens.
const WAKE: Token = Token(usize::MAX - 16);
/// Handshakes in progress at once: enough to open 10,000 connections in a
/// moment, few enough not to overflow a small listen backlog (socat's is 5).
const MAX_CONNECTING: usize = 256;
/// Read buffer shared by all connections.
const READ_CHUNK: usize = 256 * 1024;
/// Latency histogram range: 1 ns to 1 hour at 3 significant digits.
const MAX_LATENCY_NS: u64 = 3_600_000_000_000;
/// Size asked for each bulk connection's pipe. A pipe holds one page per
/// slot, and a 64 KiB window of the pattern (the default write) spans up
/// to 17 pages, so the 16 slots of a default pipe would split every write
/// in two calls; the kernel rounds this up to 32 slots, which take a whole
/// window and part of the next.
const PIPE_BYTES: usize = 128 * 1024;
/// Smallest pipe worth sending through. A user whose pipes already hold
/// `/proc/sys/fs/pipe-user-pages-soft` pages gets new pipes of 2 slots;
/// queuing 8 KiB per pair of calls costs more than copying.
const MIN_PIPE_BYTES: usize = 64 * 1024;
/// Bulk connections that get a pipe, at most: 256 × 32 pages is a quarter
/// of the default per-user pipe budget (16,384 pages), so a server on this
/// host running as the same user keeps most of it for its own pipes. The
/// other connections copy, as before.
const MAX_PIPES: usize = 256;

/// When the sending stops.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum StopAfter {
    /// After this long past the warm-up.
    Duration(Duration),
    /// After this many messages (warm-up included) have been sent.
    Requests(u64),
}

/// A benchmark run's settings, checked by the command line.
#[derive(Debug, Clone)]
pub struct BenchConfig {
    /// The address as the user wrote it, for the report.
    pub target: String,
    /// Connections to open.
    pub connections: usize,
    /// Message size (bulk: write size).
    pub size: usize,
    /// Messages in flight per connection.
    pub depth: usize,
    /// When to stop sending.
    pub stop: StopAfter,
    /// Time after start during which nothing is counted.
    pub warmup: Duration,
    /// Fixed total rate in messages per second (open loop).
    pub rate: Option<f64>,
    /// Stream continuously instead of sending messages.
    pub bulk: bool,
    /// Bulk: how many bytes each connection may have unechoed.
    pub in_flight: InFlight,
    /// Longest wait for a connect, and for the last echoes at the end.
    pub timeout: Duration,
    /// Process to report CPU time and memory of (the server, on this host).
    pub server_pid: Option<u32>,
    /// Print progress to stderr once a second.
    pub progress: bool,
}

impl BenchConfig {
    /// Whether a live progress line makes sense: a terminal on stderr, and
    /// a run longer than a couple of seconds.
    pub fn wants_progress(&self, quiet: bool) -> bool {
        let long = match self.stop {
            StopAfter::Duration(d) => d + self.warmup > Duration::from_secs(2),
            StopAfter::Requests(_) => true,
        };
        !quiet && long && io::stderr().is_terminal()
    }
}

#[derive(Debug)]
enum State {
    NotStarted,
    Connecting(Instant),
    Open,
    Closed,
}

#[derive(Debug)]
struct Conn {
    stream: Option<TcpStream>,
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
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Phase {
    Connecting,
    Running,
    Draining(Instant),
}

/// Counters of the measured window.
struct Window {
    start: Instant,
    end: Option<Instant>,
    open: bool,
    closed: bool,
    messages: u64,
    bytes: u64,
    latency: Histogram<u64>,
    /// `--rate`: per wake-up that found messages due, how late the loop
    /// got to the earliest of them (the client's own share of `latency`).
    send_lag: Histogram<u64>,
    server_start: Option<ProcessSample>,
    server: Option<ServerUsage>,
}

impl Window {
    /// Whether what happens at `now` counts in the measurement.
    fn counts(&self, now: Instant) -> bool {
        self.open && self.end.map_or(true, |end| now <= end)
    }
}

struct Progress {
    enabled: bool,
    next: Instant,
    last_messages: u64,
    last_bytes: u64,
    /// All completions, warm-up included, for the live line.
    messages: u64,
    bytes: u64,
}

struct Engine<'a> {
    config: &'a BenchConfig,
    addr: SocketAddr,
    poll: Poll,
    signals: StopSignals,
    conns: Vec<Conn>,
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
}

/// Runs the benchmark against `addr` and returns what it measured. Fails
/// only when nothing could be measured (no connection at all, Ctrl+C twice,
/// or local setup errors); per-connection failures are counted instead.
pub fn run(config: &BenchConfig, addr: SocketAddr) -> Result<BenchReport, ClientError> {
    let mut engine = Engine::new(config, addr)?;
    let driven = engine.drive();
    // Splicing left SIGPIPE blocked; the caller prints next.
    crate::os::sigpipe::release();
    driven?;
    Ok(engine.report())
}

impl<'a> Engine<'a> {
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
            })
            .collect();
        let histogram = || {
            Histogram::new_with_bounds(1, MAX_LATENCY_NS, 3)
                .map_err(|e| ClientError::Other(format!("latency histogram: {e}")))
        };
        let wake = match config.rate {
            Some(_) => Some(PreciseWake::new(poll.registry(), WAKE).map_err(setup)?),
            None => None,
        };
        let now = Instant::now();
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
            window: Window {
                start: now,
                end: None,
                open: false,
                closed: false,
                messages: 0,
                bytes: 0,
                latency: histogram()?,
                send_lag: histogram()?,
                server_start: None,
                server: None,
            },
            progress: Progress {
                enabled: config.progress,
                next: now,
                last_messages: 0,
                last_bytes: 0,
                messages: 0,
                bytes: 0,
            },
            connect_errors: 0,
            mismatches: 0,
            closed_early: 0,
            incomplete: 0,
            failures: Failures::default(),
            interrupted: false,
            last_progress: now,
            drain_wait: config.timeout,
            server_note: None,
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

    /// Moves the run through its phases; `false` when it is over.
    fn advance(&mut self, now: Instant) -> Result<bool, ClientError> {
        match self.phase {
            Phase::Connecting => {
                self.expire_connects(now);
                self.start_connects(now);
                if self.connecting == 0 && self.next_to_connect == self.conns.len() {
                    if self.connected == 0 {
                        return Err(self
                            .failures
                            .take_decisive()
                            .unwrap_or_else(|| ClientError::Other("no connection".into())));
                    }
                    self.start_running(Instant::now());
                }
            }
            Phase::Running => {
                if !self.window.open && now >= self.window.start {
                    self.open_window();
                }
                // With every connection gone there is nothing left to measure.
                let done_sending = self.open == 0
                    || match self.config.stop {
                        StopAfter::Duration(_) => self.window.end.is_some_and(|end| now >= end),
                        StopAfter::Requests(n) => self.issued >= n,
                    };
                if self.outstanding == 0 {
                    self.last_progress = now;
                } else if now >= self.last_progress + self.config.timeout {
                    self.stalled(now);
                    return Ok(false);
                }
                if done_sending {
                    self.stop_sending(now);
                    // Straight to the drain check: with nothing outstanding
                    // (every connection gone, say) no event would come to
                    // end the wait before the drain deadline.
                    return self.advance(now);
                } else {
                    self.send_due(now);
                }
            }
            Phase::Draining(deadline) => {
                if self.outstanding == 0 || now >= deadline {
                    self.close_window(now);
                    self.count_incomplete();
                    return Ok(false);
                }
            }
        }
        self.tick_progress(now);
        Ok(true)
    }

    fn next_deadline(&self) -> Option<Instant> {
        let mut next: Option<Instant> = None;
        let mut consider = |t: Option<Instant>| {
            if let Some(t) = t {
                next = Some(next.map_or(t, |n| n.min(t)));
            }
        };
        match self.phase {
            Phase::Connecting => {
                let oldest = self.conns.iter().find_map(|c| match c.state {
                    State::Connecting(since) => Some(since + self.config.timeout),
                    _ => None,
                });
                consider(oldest);
            }
            Phase::Running => {
                if !self.window.open {
                    consider(Some(self.window.start));
                }
                consider(self.window.end);
                consider(self.schedule.as_ref().map(RateSchedule::next_due));
                if self.outstanding > 0 {
                    consider(Some(self.last_progress + self.config.timeout));
                }
            }
            Phase::Draining(deadline) => consider(Some(deadline)),
        }
        if self.progress.enabled {
            consider(Some(self.progress.next));
        }
        next
    }

    fn start_connects(&mut self, now: Instant) {
        while self.connecting < MAX_CONNECTING && self.next_to_connect < self.conns.len() {
            let i = self.next_to_connect;
            self.next_to_connect += 1;
            match TcpStream::connect(self.addr) {
                Ok(mut stream) => {
                    let interest = Interest::READABLE | Interest::WRITABLE;
                    if let Err(e) = self
                        .poll
                        .registry()
                        .register(&mut stream, Token(i), interest)
                    {
                        self.connect_failed(i, ClientError::Other(format!("register: {e}")));
                        continue;
                    }
                    self.conns[i].stream = Some(stream);
                    self.conns[i].state = State::Connecting(now);
                    self.connecting += 1;
                }
                Err(e) => {
                    let error = connect_error(self.addr, e, self.config.timeout);
                    self.connect_failed(i, error);
                }
            }
        }
    }

    fn expire_connects(&mut self, now: Instant) {
        for i in 0..self.conns.len() {
            if let State::Connecting(since) = self.conns[i].state {
                if now >= since + self.config.timeout {
                    self.connecting -= 1;
                    let error = ClientError::ConnectTimeout(self.addr, self.config.timeout);
                    self.connect_failed(i, error);
                }
            }
        }
    }

    fn connect_failed(&mut self, i: usize, error: ClientError) {
        self.connect_errors += 1;
        self.failures.note(error);
        self.drop_conn(i);
    }

    fn drop_conn(&mut self, i: usize) {
        let conn = &mut self.conns[i];
        if let State::Open = conn.state {
            self.open -= 1;
        }
        if let Some(mut stream) = conn.stream.take() {
            // Dropping closes the socket, which also leaves the epoll set.
            let _ = self.poll.registry().deregister(&mut stream);
        }
        conn.state = State::Closed;
        // Bytes still in the pipe never reach the socket; they are part of
        // `unwritten` and leave the count with it.
        conn.pipe = None;
        self.outstanding -= conn.flow.unwritten() + conn.flow.unechoed();
    }

    fn start_running(&mut self, now: Instant) {
        self.phase = Phase::Running;
        // Connecting 10,000 connections can take longer than the timeout;
        // the wait for echoes starts now.
        self.last_progress = now;
        self.run_start = Some(now);
        self.window.start = now + self.config.warmup;
        if let StopAfter::Duration(d) = self.config.stop {
            self.window.end = Some(self.window.start + d);
        }
        self.progress.next = now + Duration::from_secs(1);
        if let Some(rate) = self.config.rate {
            // A connection that never opened keeps its share of the
            // schedule and sends nothing: the rate is per run, as asked.
            self.schedule = Some(RateSchedule::new(now, rate, self.conns.len()));
        }
        if !self.window.open && now >= self.window.start {
            self.open_window();
        }
        if self.config.bulk {
            self.open_pipes();
        }
        for i in 0..self.conns.len() {
            if matches!(self.conns[i].state, State::Open) {
                self.top_up(i, now);
                self.write(i);
            }
        }
    }

    /// Gives open bulk connections a pipe to send through, once every
    /// connect is done, so pipes never take a descriptor a connection
    /// needed. The first refusal ends it: a descriptor limit, the pipe
    /// page budget or a sandbox would refuse the next ones too.
    fn open_pipes(&mut self) {
        let open = self
            .conns
            .iter_mut()
            .filter(|c| matches!(c.state, State::Open));
        for conn in open.take(MAX_PIPES) {
            match Pipe::with_capacity(PIPE_BYTES) {
                Ok(pipe) if pipe.capacity() >= MIN_PIPE_BYTES => conn.pipe = Some(pipe),
                Ok(_) | Err(_) => return,
            }
        }
    }

    fn open_window(&mut self) {
        self.window.open = true;
        if let Some(pid) = self.config.server_pid {
            match procstat::sample(pid) {
                Ok(sample) => self.window.server_start = Some(sample),
                Err(e) => self.note_server(pid, "when the window opened", &e),
            }
        }
    }

    fn note_server(&mut self, pid: u32, when: &str, e: &io::Error) {
        self.server_note.get_or_insert_with(|| {
            format!("pid {pid} could not be read {when} ({e}); no CPU or memory figures")
        });
    }

    fn close_window(&mut self, now: Instant) {
        if self.window.closed {
            return;
        }
        self.window.closed = true;
        if now < self.window.start {
            // Stopped during the warm-up: the window is empty, here and
            // now, and the echoes still to come are not counted in it.
            self.window.start = now;
        }
        if !self.window.open {
            self.open_window();
        }
        let end = match self.config.stop {
            StopAfter::Duration(_) => self.window.end.map_or(now, |end| end.min(now)),
            StopAfter::Requests(_) => now,
        };
        self.window.end = Some(end.max(self.window.start));
        if let (Some(pid), Some(start)) = (self.config.server_pid, self.window.server_start) {
            match procstat::sample(pid) {
                Ok(end_sample) => {
                    self.window.server = Some(ServerUsage::between(pid, start, end_sample));
                }
                Err(e) => self.note_server(pid, "when the window closed", &e),
            }
        }
    }

    fn may_issue(&self) -> bool {
        self.phase == Phase::Running
            && match self.config.stop {
                StopAfter::Requests(n) => self.issued < n,
                StopAfter::Duration(_) => true,
            }
    }

    /// Issues what connection `i` may send now: closed loop, up to `depth`
    /// messages; open loop, the owed ones up to `depth`; bulk, the next write
    /// (which is what `--requests` counts in bulk mode).
    fn top_up(&mut self, i: usize, now: Instant) {
        let size = self.config.size as u64;
        if self.config.bulk {
            let may_issue = self.may_issue();
            let conn = &mut self.conns[i];
            let (flow, stream) = (&conn.flow, &conn.stream);
            // The kernel's current size of this socket's send buffer.
            let send_buffer = || {
                let bytes = socket2::SockRef::from(stream.as_ref()?)
                    .send_buffer_size()
                    .ok()?;
                Some(bytes as u64)
            };
            if may_issue
                && flow.unwritten() == 0
                && conn
                    .in_flight
                    .allows(flow.unechoed(), size, now, send_buffer)
            {
                conn.flow.issue_bytes(size);
                self.issued += 1;
                self.outstanding += size;
            }
            return;
        }
        while self.conns[i].flow.in_flight() < self.config.depth && self.may_issue() {
            let stamp = match &self.schedule {
                Some(schedule) => {
                    let j = self.conns[i].scheduled;
                    if j >= schedule.due_on(i) {
                        break;
                    }
                    self.conns[i].scheduled += 1;
                    schedule.intended(i, j)
                }
                None => now,
            };
            self.conns[i].flow.issue(stamp);
            self.issued += 1;
            self.outstanding += size;
        }
    }

    fn send_due(&mut self, now: Instant) {
        let Some(schedule) = &mut self.schedule else {
            return;
        };
        let fell = schedule.advance(now);
        if fell.is_empty() {
            return;
        }
        let window = &mut self.window;
        if window.counts(now) {
            // One sample per wake-up, not per message: a rate beyond reach
            // must not make the loop's work grow with what fell due.
            let late = now.saturating_duration_since(schedule.due_at(fell.start));
            window
                .send_lag
                .saturating_record((late.as_nanos() as u64).max(1));
        }
        let touched: Vec<usize> = schedule.connections_of(fell).collect();
        for i in touched {
            if matches!(self.conns[i].state, State::Open) {
                self.top_up(i, now);
                self.write(i);
            }
        }
    }

    fn stop_sending(&mut self, now: Instant) {
        if let StopAfter::Duration(_) = self.config.stop {
            self.close_window(now);
        }
        // Scheduled messages not yet issued are not part of the run: from
        // here on nothing is issued. Nor are issued bytes that never left:
        // the drain waits only for the echo of what the server was sent.
        self.phase = Phase::Draining(now + self.config.timeout);
        self.drain_wait = self.config.timeout;
        for conn in &mut self.conns {
            if matches!(conn.state, State::Open) {
                self.outstanding -= conn.flow.withdraw_unsent();
            }
        }
    }

    /// No echo for `timeout` while bytes were out: the run ends here
    /// rather than wait forever for a server that stopped echoing.
    fn stalled(&mut self, now: Instant) {
        self.failures.note(ClientError::Stalled {
            connections: self.waiting_connections(),
            bytes: self.outstanding,
            after: self.config.timeout,
        });
        self.close_window(now);
        self.count_incomplete();
    }

    /// Open connections with bytes still to be echoed.
    fn waiting_connections(&self) -> usize {
        (self.conns.iter())
            .filter(|c| matches!(c.state, State::Open))
            .filter(|c| c.flow.unechoed() + c.flow.unwritten() > 0)
            .count()
    }

    fn count_incomplete(&mut self) {
        self.incomplete = self.waiting_connections();
        if self.incomplete > 0 {
            self.failures.note(ClientError::DrainTimeout {
                connections: self.incomplete,
                bytes: self.outstanding,
                after: self.drain_wait,
            });
        }
    }

    fn on_signal(&mut self, count: usize) -> Result<(), ClientError> {
        if count == 0 {
            return Ok(());
        }
        if self.interrupted || self.phase == Phase::Connecting {
            return Err(ClientError::Interrupted);
        }
        self.interrupted = true;
        let now = Instant::now();
        self.close_window(now);
        // Give the echoes already on the way a moment, not the full timeout.
        self.drain_wait = self.config.timeout.min(Duration::from_secs(1));
        self.phase = Phase::Draining(now + self.drain_wait);
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

    fn finish_connect(&mut self, i: usize) {
        let Some(stream) = &self.conns[i].stream else {
            return;
        };
        match connect_outcome(stream) {
            None => return,
            Some(Ok(())) => {}
            Some(Err(e)) => {
                self.connecting -= 1;
                let error = connect_error(self.addr, e, self.config.timeout);
                self.connect_failed(i, error);
                return;
            }
        }
        // Echo servers answer small messages at once; Nagle would hold the
        // next one back for the delayed ACK and show 40 ms latencies.
        let _ = stream.set_nodelay(true);
        self.connecting -= 1;
        self.connected += 1;
        self.open += 1;
        self.conns[i].state = State::Open;
    }

    /// Reads and checks everything available; `false` if the connection
    /// was closed.
    fn read(&mut self, i: usize, hung_up: bool) -> bool {
        let now = Instant::now();
        let mut completed = 0;
        loop {
            let Some(stream) = &mut self.conns[i].stream else {
                return false;
            };
            match stream.read(&mut self.scratch) {
                Ok(0) => {
                    self.closed(i, false);
                    return false;
                }
                Ok(n) => {
                    self.last_progress = now;
                    let window = &mut self.window;
                    let counting = window.counts(now);
                    let result =
                        self.conns[i]
                            .flow
                            .echoed(&self.scratch[..n], &self.pattern, |stamp| {
                                if let (true, Some(sent)) = (counting, stamp) {
                                    let ns = now.saturating_duration_since(sent).as_nanos() as u64;
                                    window.latency.saturating_record(ns.max(1));
                                }
                            });
                    match result {
                        Ok(done) => {
                            completed += done;
                            self.outstanding -= n as u64;
                            self.progress.bytes += n as u64;
                            self.progress.messages += done;
                            if counting {
                                window.messages += done;
                                window.bytes += if self.config.bulk {
                                    n as u64
                                } else {
                                    done * self.config.size as u64
                                };
                            }
                        }
                        Err(mismatch) => {
                            self.mismatches += 1;
                            self.failures.note(ClientError::Mismatch(mismatch));
                            self.drop_conn(i);
                            return false;
                        }
                    }
                    // A short read drained the socket; the next arrival
                    // raises a new edge. After a hang-up no edge follows,
                    // so read on to the end.
                    if n < self.scratch.len() && !hung_up {
                        break;
                    }
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => {
                    self.closed(i, is_reset(&e));
                    return false;
                }
            }
        }
        if completed > 0 || self.config.bulk {
            self.top_up(i, now);
        }
        true
    }

    /// Sends what connection `i` has issued until the socket is full.
    fn write(&mut self, i: usize) {
        if self.conns[i].pipe.is_some() {
            self.write_spliced(i);
        } else {
            self.write_copied(i);
        }
    }

    /// Sends through connection `i`'s pipe: the next bytes of its stream
    /// are queued in the pipe by reference, then spliced into the socket,
    /// oldest first. Only what reached the socket counts as written.
    fn write_spliced(&mut self, i: usize) {
        let now = Instant::now();
        loop {
            self.top_up(i, now);
            let conn = &mut self.conns[i];
            let (Some(stream), Some(pipe)) = (&conn.stream, &conn.pipe) else {
                return;
            };
            let queued = conn.flow.in_pipe() as usize;
            let room = pipe.capacity().saturating_sub(queued);
            let chunk = conn.flow.next_write(&self.pattern);
            let chunk = &chunk[..chunk.len().min(room)];
            if !conn.pipe_failed && !chunk.is_empty() {
                match pipe.vmsplice_from(chunk) {
                    Ok(n) => conn.flow.piped(n),
                    // Every slot is taken: the socket takes some first.
                    Err(e) if e.kind() == ErrorKind::WouldBlock && queued > 0 => {}
                    Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                    // Memory cannot be queued (ENOMEM, a seccomp filter,
                    // an empty pipe that takes nothing...): copy from now
                    // on, once what the pipe holds has gone out.
                    Err(_) => conn.pipe_failed = true,
                }
            }
            let queued = conn.flow.in_pipe() as usize;
            if queued == 0 {
                if conn.pipe_failed {
                    conn.pipe = None;
                    self.write_copied(i);
                }
                return;
            }
            match pipe.drain_into(stream.as_fd(), queued) {
                // Only an empty pipe gives 0, which the counts rule out;
                // if it happened, the bytes would be missing and the run
                // would end reporting them incomplete, without spinning.
                Ok(0) => return,
                Ok(n) => conn.flow.spliced(n),
                Err(e) if e.kind() == ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => {
                    self.closed(i, is_reset(&e));
                    return;
                }
            }
        }
    }

    /// Writes what connection `i` has issued, copied from memory, until the
    /// socket is full.
    fn write_copied(&mut self, i: usize) {
        let now = Instant::now();
        loop {
            self.top_up(i, now);
            let conn = &mut self.conns[i];
            let chunk = conn.flow.next_write(&self.pattern);
            if chunk.is_empty() {
                return;
            }
            let Some(stream) = &mut conn.stream else {
                return;
            };
            match stream.write(chunk) {
                Ok(n) => conn.flow.wrote(n),
                Err(e) if e.kind() == ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => {
                    self.closed(i, is_reset(&e));
                    return;
                }
            }
        }
    }

    /// The server ended connection `i`.
    fn closed(&mut self, i: usize, reset: bool) {
        let flow = &self.conns[i].flow;
        let expected = flow.verified() + flow.unechoed() + flow.unwritten();
        let received = flow.verified();
        if received == expected && !self.may_issue() {
            // Everything sent came back and nothing more will be sent on it:
            // the connection was done, so the close cost the run nothing.
            self.drop_conn(i);
            return;
        }
        self.closed_early += 1;
        self.failures.note(ClientError::ClosedEarly {
            received,
            expected,
            reset,
        });
        self.drop_conn(i);
    }

    fn tick_progress(&mut self, now: Instant) {
        if !self.progress.enabled || now < self.progress.next || self.phase == Phase::Connecting {
            return;
        }
        let p = &mut self.progress;
        let messages = p.messages - p.last_messages;
        let bytes = p.bytes - p.last_bytes;
        p.last_messages = p.messages;
        p.last_bytes = p.bytes;
        p.next = now + Duration::from_secs(1);
        let elapsed = self.run_start.map_or(Duration::ZERO, |s| now - s);
        let total = match self.config.stop {
            StopAfter::Duration(d) => format!(" / {:.0} s", (self.config.warmup + d).as_secs_f64()),
            StopAfter::Requests(n) => {
                format!(", {} of {} sent", thousands(self.issued), thousands(n))
            }
        };
        output::err_text(format_args!(
            "\r\x1b[K{:.0} s{}: {} msgs/s, {:.2} MB/s{}",
            elapsed.as_secs_f64(),
            total,
            thousands(messages),
            bytes as f64 / 1e6,
            if self.window.open {
                ""
            } else {
                " (warming up)"
            }
        ));
    }

    fn finish_progress(&self) {
        if self.progress.enabled {
            output::err_text(format_args!("\r\x1b[K"));
        }
    }

    /// `--rate`: messages that had fallen due on open connections and were
    /// never sent, because `depth` were still out when the run stopped.
    fn behind_schedule(&self) -> Option<u64> {
        let schedule = self.schedule.as_ref()?;
        let unsent: u64 = (self.conns.iter().enumerate())
            .filter(|(_, c)| matches!(c.state, State::Open))
            .map(|(i, c)| schedule.due_on(i).saturating_sub(c.scheduled))
            .sum();
        Some(match self.config.stop {
            // Messages past the count were never going to be sent.
            StopAfter::Requests(n) => unsent.min(n.saturating_sub(self.issued)),
            StopAfter::Duration(_) => unsent,
        })
    }

    fn report(mut self) -> BenchReport {
        let end = self.window.end.unwrap_or(self.window.start);
        let decisive = self.failures.decisive();
        let exit_code = decisive.map_or(exit::OK, ClientError::exit_code);
        let error = decisive.map(ClientError::to_string);
        // The warm-up that actually passed: shorter when the run ended in it.
        let warmup = self.run_start.map_or(self.config.warmup, |start| {
            self.window.start.saturating_duration_since(start)
        });
        BenchReport {
            target: self.config.target.clone(),
            address: self.addr,
            connections: self.config.connections,
            size: self.config.size,
            depth: self.config.depth,
            bulk: self.config.bulk,
            in_flight: self.config.bulk.then(|| {
                let largest = self.conns.iter().map(|c| c.in_flight.largest()).max();
                (self.config.in_flight, largest.unwrap_or(0))
            }),
            rate: self.config.rate,
            warmup,
            ended_in_warmup: warmup < self.config.warmup,
            elapsed: end.saturating_duration_since(self.window.start),
            messages: self.window.messages,
            bytes: self.window.bytes,
            latency: if self.config.bulk {
                None
            } else {
                Latency::from_nanos(&self.window.latency)
            },
            send_lag: Latency::from_nanos(&self.window.send_lag),
            behind_schedule: self.behind_schedule(),
            connected: self.connected,
            connect_errors: self.connect_errors,
            mismatches: self.mismatches,
            closed_early: self.closed_early,
            incomplete: self.incomplete,
            error,
            server: self.window.server,
            server_note: self.server_note.take(),
            interrupted: self.interrupted,
            exit_code,
        }
    }
}
