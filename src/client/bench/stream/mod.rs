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
//! `writer` and `reader` hold the threads; `end` the measured window,
//! the stop and the report (the other bulk modes').

mod end;
mod reader;
mod tls;
mod writer;

use std::io::{self, ErrorKind};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use mio::{Events, Poll, Token, Waker};

use self::reader::ReaderEnd;
use super::failures::Failures;
use super::interval::Intervals;
use super::report::BenchReport;
use super::window::Window;
use super::{BenchConfig, StopAfter};
use crate::client::error::ClientError;
use crate::client::pattern::Pattern;
use crate::client::session::connect_error;
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

    /// Connects every connection in turn and starts its two threads; the
    /// run starts once all are open, as in the other modes.
    fn open_all(&mut self) -> Result<(), ClientError> {
        for id in 0..self.config.connections as u64 {
            if self.signalled()? > 0 {
                return Err(ClientError::Interrupted);
            }
            match TcpStream::connect_timeout(&self.addr, self.config.timeout) {
                Ok(stream) => self.start(id, stream)?,
                Err(e) => {
                    self.connect_errors += 1;
                    (self.failures).note(connect_error(self.addr, e, self.config.timeout));
                }
            }
        }
        if self.conns.is_empty() {
            return Err(self
                .failures
                .take_decisive()
                .unwrap_or_else(|| ClientError::Other("no connection".into())));
        }
        let now = Instant::now();
        self.run_start = Some(now);
        self.last_progress = now;
        self.window.start = now + self.config.warmup;
        if let StopAfter::Duration(d) = self.config.stop {
            self.window.end = Some(self.window.start + d);
        }
        // Without a warm-up the window opens before the first byte goes:
        // opened at the loop's first turn, it would leave out whatever had
        // already come back (a whole TLS record, on loopback).
        if self.config.warmup.is_zero() {
            self.open_window();
        }
        self.run.started.store(true, Ordering::SeqCst);
        for open in &self.conns {
            if let Some(writer) = &open.writer {
                writer.thread().unpark();
            }
        }
        Ok(())
    }

    fn start(&mut self, id: u64, stream: TcpStream) -> Result<(), ClientError> {
        let local = |what: &str, e: io::Error| {
            ClientError::Other(format!("connection {id}: cannot {what}: {e}"))
        };
        // As in the other modes: a short last write is not held back.
        let _ = stream.set_nodelay(true);
        if let Some(client) = &self.config.tls {
            let (writer, reader) = tls::split(&stream, client, self.config.timeout)?;
            return self.spawn(id, stream, writer, reader);
        }
        let for_writer = stream
            .try_clone()
            .map_err(|e| local("clone the socket", e))?;
        let for_reader = stream
            .try_clone()
            .map_err(|e| local("clone the socket", e))?;
        self.spawn(id, stream, for_writer, for_reader)
    }

    /// Starts connection `id`'s reader and writer threads on their halves
    /// (`stream` stays here, to stop them).
    fn spawn<W, R>(
        &mut self,
        id: u64,
        stream: TcpStream,
        for_writer: W,
        for_reader: R,
    ) -> Result<(), ClientError>
    where
        W: io::Write + writer::HalfClose + Send + 'static,
        R: io::Read + reader::Close + Send + 'static,
    {
        let local = |what: &str, e: io::Error| {
            ClientError::Other(format!("connection {id}: cannot {what}: {e}"))
        };
        let conn = Arc::new(Conn {
            id,
            ..Conn::default()
        });
        let mut open = Open {
            stream,
            conn: conn.clone(),
            writer: None,
            reader: None,
        };
        let (run, shared) = (self.run.clone(), conn.clone());
        let reader = thread::Builder::new()
            .name(format!("reader-{id}"))
            .spawn(move || reader::read(for_reader, &shared, &run));
        open.reader = Some(reader.map_err(|e| local("start a thread", e))?);
        // Pushed before the writer starts: `finish` then always stops it.
        self.conns.push(open);
        let run = self.run.clone();
        let writer = thread::Builder::new()
            .name(format!("writer-{id}"))
            .spawn(move || {
                // Every connection starts writing once all are open.
                while !run.started.load(Ordering::SeqCst) && !run.quit.load(Ordering::SeqCst) {
                    thread::park();
                }
                writer::write(for_writer, &conn, &run);
            });
        let open = self.conns.last_mut().expect("just pushed");
        open.writer = Some(writer.map_err(|e| local("start a thread", e))?);
        Ok(())
    }

    /// Ctrl+C or SIGTERM arrivals since the last look, without waiting.
    fn signalled(&mut self) -> Result<usize, ClientError> {
        let mut events = Events::with_capacity(8);
        match self.poll.poll(&mut events, Some(Duration::ZERO)) {
            Ok(()) => {}
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => return Err(ClientError::Other(format!("poll failed: {e}"))),
        }
        let mut count = 0;
        for event in events.iter() {
            if let Some((_, n)) = self.signals.take(SIGNALS, event.token()) {
                count += n;
            }
        }
        Ok(count)
    }

    fn drive(&mut self) -> Result<(), ClientError> {
        let mut events = Events::with_capacity(8);
        loop {
            let now = Instant::now();
            let Some(next) = self.advance(now) else {
                return Ok(());
            };
            match self
                .poll
                .poll(&mut events, Some(next.saturating_duration_since(now)))
            {
                Ok(()) => {}
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(e) => return Err(ClientError::Other(format!("poll failed: {e}"))),
            }
            for event in events.iter() {
                if let Some((_, count)) = self.signals.take(SIGNALS, event.token()) {
                    self.on_signal(count)?;
                }
            }
        }
    }

    /// Moves the run on; the next time to look again, or `None` when over.
    fn advance(&mut self, now: Instant) -> Option<Instant> {
        self.count_window();
        // At the window's end its last interval waits for the close, which
        // counts the echoes that arrived since.
        if let Some(intervals) = &mut self.intervals {
            if self.window.end.map_or(true, |end| now < end) {
                intervals.tick(now);
            }
        }
        let next = self.advance_phase(now)?;
        Some(match self.intervals.as_ref().filter(|i| i.running()) {
            Some(intervals) => next.min(intervals.next),
            None => next,
        })
    }

    fn advance_phase(&mut self, now: Instant) -> Option<Instant> {
        match self.phase {
            Phase::Running => {
                if !self.window.open && now >= self.window.start {
                    self.open_window();
                }
                let outstanding: u64 = self.conns.iter().map(|o| o.conn.outstanding()).sum();
                if outstanding == 0 {
                    self.last_progress = now;
                } else {
                    let last_echo = (self.conns.iter())
                        .map(|o| o.conn.last_echo_ns.load(Ordering::Relaxed))
                        .max()
                        .map(|ns| self.run.start + Duration::from_nanos(ns));
                    self.last_progress = self.last_progress.max(last_echo.unwrap_or(now));
                    if now >= self.last_progress + self.config.timeout {
                        self.stalled(now, outstanding);
                        return None;
                    }
                }
                let all_gone = self
                    .conns
                    .iter()
                    .all(|o| o.conn.reader_done.load(Ordering::SeqCst));
                let done_sending = all_gone
                    || match self.config.stop {
                        StopAfter::Duration(_) => self.window.end.is_some_and(|end| now >= end),
                        StopAfter::Requests(_) => {
                            (self.conns.iter()).all(|o| o.conn.writer_done.load(Ordering::SeqCst))
                        }
                    };
                if done_sending {
                    self.stop_sending(now, self.config.timeout);
                    return self.advance(now);
                }
                let mut next = self.window.end.unwrap_or(now + Duration::from_secs(3600));
                if !self.window.open {
                    next = next.min(self.window.start);
                }
                next = next.min(if outstanding > 0 {
                    self.last_progress + self.config.timeout
                } else {
                    // No thread says when bytes go out: look again soon, so a
                    // stall is timed from (nearly) when they did.
                    now + IDLE_LOOK.min(self.config.timeout)
                });
                Some(next)
            }
            Phase::Draining(deadline) => {
                if now >= deadline || self.conns.iter().all(|o| o.conn.finished()) {
                    self.close_window(now);
                    return None;
                }
                Some(deadline)
            }
        }
    }

    /// Stops the writers and waits up to `wait` for the last echoes.
    fn stop_sending(&mut self, now: Instant, wait: Duration) {
        if let StopAfter::Duration(_) = self.config.stop {
            self.close_window(now);
        }
        self.drain_wait = wait;
        self.phase = Phase::Draining(now + wait);
        self.run.stop.store(true, Ordering::SeqCst);
        for open in &self.conns {
            // Ends a write blocked on a full socket, too.
            let _ = open.stream.shutdown(Shutdown::Write);
        }
    }

    /// No echo for `--timeout` while bytes were out: the server stopped
    /// echoing, and the run ends rather than wait for it.
    fn stalled(&mut self, now: Instant, outstanding: u64) {
        let waiting = self
            .conns
            .iter()
            .filter(|o| o.conn.outstanding() > 0)
            .count();
        self.failures.note(ClientError::Stalled {
            connections: waiting.max(1),
            bytes: outstanding,
            after: self.config.timeout,
        });
        self.close_window(now);
    }

    fn on_signal(&mut self, count: usize) -> Result<(), ClientError> {
        if count == 0 {
            return Ok(());
        }
        if self.interrupted {
            return Err(ClientError::Interrupted);
        }
        self.interrupted = true;
        let now = Instant::now();
        self.close_window(now);
        // Give the echoes already on the way a moment, not the full timeout.
        self.stop_sending(now, self.config.timeout.min(Duration::from_secs(1)));
        Ok(())
    }
}
