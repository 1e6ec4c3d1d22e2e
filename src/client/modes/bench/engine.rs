//! The loop of a mode benchmark: connect every connection, turn each as
//! the poll reports it, open and close the measured window, then end the
//! way the mode ends (discard: FIN for FIN; framed: the last replies).

use std::io;
use std::net::{Shutdown, SocketAddr};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use mio::net::TcpStream;
use mio::{Events, Interest, Poll, Token};

use super::chargen::Chargen;
use super::discard::Discard;
use super::framed::Framed;
use super::report::{ModeReport, ServerFigures};
use super::{Counters, Driver, ModeBench, Step};
use crate::client::bench::interval::{Intervals, Unit};
use crate::client::bench::window::MAX_LATENCY_NS;
use crate::client::error::ClientError;
use crate::client::modes::ServiceMode;
use crate::client::pattern::{Pattern, MAX_WINDOW};
use crate::client::session::{connect_error, connect_outcome};
use crate::os::procstat;
use crate::os::signal::StopSignals;

const SIGNALS: Token = Token(usize::MAX);
/// Read buffer shared by every connection.
const SCRATCH: usize = 256 * 1024;

struct Conn {
    stream: TcpStream,
    driver: Box<dyn Driver>,
    /// Marked for a turn in this pass.
    ready: bool,
    /// The server has closed its side (at the end: the FIN came).
    closed: bool,
}

/// Counters at one end of the window.
struct Mark {
    at: Instant,
    up: u64,
    down: u64,
    replies: u64,
    server: Option<procstat::ProcessSample>,
}

/// Runs the benchmark against `addr`; the report says what was measured
/// and how it ended. `Err` only when it could not start.
pub fn run(cfg: &ModeBench, addr: SocketAddr) -> Result<ModeReport, ClientError> {
    let setup = |e: io::Error| ClientError::Other(format!("cannot set up the event loop: {e}"));
    let mut poll = Poll::new().map_err(setup)?;
    let mut signals = StopSignals::install().map_err(setup)?;
    signals.register(poll.registry(), SIGNALS).map_err(setup)?;
    let mut events = Events::with_capacity(1024);
    let mut conns = connect_all(cfg, addr, &mut poll, &mut events, &mut signals)?;
    let mut counters = Counters {
        up: 0,
        down: 0,
        replies: 0,
        measuring: false,
        // Bounded, as the echo bench's: an auto-resizing histogram would
        // clamp every `saturating_record` to its initial 2 ns ceiling.
        latency: Histogram::new_with_bounds(1, MAX_LATENCY_NS, 3)
            .map_err(|e| ClientError::Other(format!("histogram: {e}")))?,
        intervals: match cfg.intervals {
            Some((period, output)) => Some(Intervals::of(
                period,
                output,
                unit(cfg.mode),
                Instant::now(),
            )?),
            None => None,
        },
    };
    let mut seen = Seen::default();
    let mut scratch = vec![0u8; SCRATCH];
    let started = Instant::now();
    let window_start = started + cfg.warmup;
    let mut window_end = window_start + cfg.duration;
    let mut first: Option<Mark> = None;
    let mut interrupted = false;
    let mut error = None;
    let mut again: Vec<usize> = (0..conns.len()).collect();
    let mut last_progress = (Instant::now(), 0u64);
    loop {
        let now = Instant::now();
        if first.is_none() && now >= window_start {
            counters.measuring = true;
            let opened = mark(cfg, &counters);
            // The window lasts --duration from when it opened: its last
            // interval ends with it.
            window_end = opened.at + cfg.duration;
            seen = Seen::of(&counters);
            if let Some(intervals) = &mut counters.intervals {
                intervals.open(opened.at);
            }
            first = Some(opened);
        }
        seen.count(cfg, &mut counters);
        if now >= window_end {
            break;
        }
        if let Some(intervals) = &mut counters.intervals {
            intervals.tick(now);
        }
        let moved = counters.up + counters.down;
        if moved != last_progress.1 {
            last_progress = (now, moved);
        } else if now >= last_progress.0 + cfg.timeout {
            error = Some(ClientError::Silent {
                mode: cfg.mode.name(),
                after: cfg.timeout,
            });
            break;
        }
        let next = if first.is_none() {
            window_start
        } else {
            window_end
        };
        let next = match counters.intervals.as_ref().filter(|i| i.running()) {
            Some(intervals) => next.min(intervals.next),
            None => next,
        };
        let wait = if again.is_empty() {
            Some(
                next.min(last_progress.0 + cfg.timeout)
                    .saturating_duration_since(now),
            )
        } else {
            Some(Duration::ZERO)
        };
        match turn_all(
            &mut poll,
            &mut events,
            &mut signals,
            &mut conns,
            &mut again,
            wait,
            true,
            &mut counters,
            &mut scratch,
        ) {
            Ok(Pass::Going) => {}
            Ok(Pass::Interrupted) => {
                interrupted = true;
                break;
            }
            Err(e) => {
                error = Some(e);
                break;
            }
        }
        if let Some(c) = conns.iter().find(|c| c.closed) {
            let _ = c;
            error = Some(ClientError::ServiceClosed {
                mode: cfg.mode.name(),
                reset: false,
            });
            break;
        }
    }
    let last = mark(cfg, &counters);
    counters.measuring = false;
    seen.count(cfg, &mut counters);
    if let Some(intervals) = &mut counters.intervals {
        // What arrived between the end and this mark counts in the last
        // interval, as in the report.
        intervals.close(last.at.min(window_end));
    }
    // A window shorter than the timeout can pass with nothing moved: that
    // is no throughput to report.
    if let (None, false, Some(f)) = (&error, interrupted, &first) {
        let moved = match cfg.mode {
            ServiceMode::Chargen => last.down - f.down,
            ServiceMode::Framed => last.replies - f.replies,
            _ => last.up - f.up,
        };
        if moved == 0 {
            error = Some(ClientError::Silent {
                mode: cfg.mode.name(),
                after: last.at - f.at,
            });
        }
    }
    if error.is_none() && !interrupted {
        match finish(
            cfg,
            &mut poll,
            &mut events,
            &mut signals,
            &mut conns,
            &mut counters,
            &mut scratch,
        ) {
            Ok(()) => {}
            Err(ClientError::Interrupted) => interrupted = true,
            Err(e) => error = Some(e),
        }
    }
    Ok(ModeReport::new(
        cfg,
        addr,
        first.map(|f| (f, last)).map(|(f, l)| figures(&f, &l, cfg)),
        counters,
        error,
        interrupted,
    ))
}

/// What an interval of `mode` counts.
fn unit(mode: ServiceMode) -> Unit {
    match mode {
        ServiceMode::Chargen => Unit::Blocks,
        ServiceMode::Framed => Unit::Frames,
        _ => Unit::Writes,
    }
}

/// The counters when the intervals last counted them.
#[derive(Default)]
struct Seen {
    up: u64,
    down: u64,
    replies: u64,
}

impl Seen {
    fn of(counters: &Counters) -> Self {
        Self {
            up: counters.up,
            down: counters.down,
            replies: counters.replies,
        }
    }

    /// Counts in the current interval what moved since the last look, in
    /// the mode's direction: discard's `--size` writes and bytes sent,
    /// chargen's `--size` blocks and bytes received, framed's replies and
    /// bytes sent (the report's MB/s).
    fn count(&mut self, cfg: &ModeBench, counters: &mut Counters) {
        let now = Self::of(counters);
        let Some(intervals) = counters.intervals.as_mut().filter(|i| i.running()) else {
            return;
        };
        let size = cfg.size as u64;
        let (messages, bytes) = match cfg.mode {
            ServiceMode::Chargen => (now.down / size - self.down / size, now.down - self.down),
            ServiceMode::Framed => (now.replies - self.replies, now.up - self.up),
            _ => (now.up / size - self.up / size, now.up - self.up),
        };
        intervals.count(messages, bytes);
        *self = now;
    }
}

/// The window's figures from its two marks.
fn figures(first: &Mark, last: &Mark, cfg: &ModeBench) -> super::report::Window {
    super::report::Window {
        elapsed: last.at - first.at,
        up: last.up - first.up,
        down: last.down - first.down,
        replies: last.replies - first.replies,
        server: match (&first.server, &last.server, cfg.server_pid) {
            (Some(a), Some(b), Some(pid)) => Some(ServerFigures {
                pid,
                cpu: b.cpu.saturating_sub(a.cpu),
                rss_kib: b.rss_kib,
                peak_rss_kib: b.peak_rss_kib,
            }),
            _ => None,
        },
    }
}

fn mark(cfg: &ModeBench, counters: &Counters) -> Mark {
    Mark {
        at: Instant::now(),
        up: counters.up,
        down: counters.down,
        replies: counters.replies,
        server: cfg.server_pid.and_then(|pid| procstat::sample(pid).ok()),
    }
}

fn driver(cfg: &ModeBench, i: usize) -> Box<dyn Driver> {
    match cfg.mode {
        ServiceMode::Chargen => Box::new(Chargen::new(cfg.size)),
        ServiceMode::Framed => Box::new(Framed::new(i as u64, cfg.size, cfg.depth)),
        _ => Box::new(Discard {
            payload: Pattern::new().window(i as u64, 0, cfg.size.min(MAX_WINDOW)),
        }),
    }
}

/// Opens every connection and waits until all are up, or the first fails.
fn connect_all(
    cfg: &ModeBench,
    addr: SocketAddr,
    poll: &mut Poll,
    events: &mut Events,
    signals: &mut StopSignals,
) -> Result<Vec<Conn>, ClientError> {
    let mut conns = Vec::with_capacity(cfg.connections);
    for i in 0..cfg.connections {
        let mut stream =
            TcpStream::connect(addr).map_err(|e| connect_error(addr, e, cfg.timeout))?;
        poll.registry()
            .register(
                &mut stream,
                Token(i),
                Interest::READABLE | Interest::WRITABLE,
            )
            .map_err(|e| ClientError::Other(format!("cannot register a socket: {e}")))?;
        conns.push(Conn {
            stream,
            driver: driver(cfg, i),
            ready: false,
            closed: false,
        });
    }
    let deadline = Instant::now() + cfg.timeout;
    let mut up = vec![false; conns.len()];
    loop {
        for (i, c) in conns.iter().enumerate() {
            if up[i] {
                continue;
            }
            match connect_outcome(&c.stream) {
                Some(Ok(())) => {
                    // Frames and their replies are small: no Nagle delay.
                    let _ = c.stream.set_nodelay(true);
                    up[i] = true;
                }
                Some(Err(e)) => return Err(connect_error(addr, e, cfg.timeout)),
                None => {}
            }
        }
        if up.iter().all(|&u| u) {
            return Ok(conns);
        }
        let now = Instant::now();
        if now >= deadline {
            return Err(ClientError::ConnectTimeout(addr, cfg.timeout));
        }
        if let Pass::Interrupted = wait(poll, events, signals, Some(deadline - now))? {
            return Err(ClientError::Interrupted);
        }
    }
}

enum Pass {
    Going,
    Interrupted,
}

fn wait(
    poll: &mut Poll,
    events: &mut Events,
    signals: &mut StopSignals,
    timeout: Option<Duration>,
) -> Result<Pass, ClientError> {
    match poll.poll(events, timeout) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::Interrupted => return Ok(Pass::Going),
        Err(e) => return Err(ClientError::Other(format!("poll failed: {e}"))),
    }
    let mut signalled = false;
    for event in events.iter() {
        if signals.take(SIGNALS, event.token()).is_some() {
            signalled = true;
        }
    }
    Ok(if signalled {
        Pass::Interrupted
    } else {
        Pass::Going
    })
}

/// One pass: waits up to `timeout`, then turns every connection the poll
/// reported and every one left in `again`.
#[allow(clippy::too_many_arguments)]
fn turn_all(
    poll: &mut Poll,
    events: &mut Events,
    signals: &mut StopSignals,
    conns: &mut [Conn],
    again: &mut Vec<usize>,
    timeout: Option<Duration>,
    sending: bool,
    counters: &mut Counters,
    scratch: &mut [u8],
) -> Result<Pass, ClientError> {
    if let Pass::Interrupted = wait(poll, events, signals, timeout)? {
        return Ok(Pass::Interrupted);
    }
    let mut turn: Vec<usize> = std::mem::take(again);
    for i in &turn {
        conns[*i].ready = true;
    }
    for event in events.iter() {
        let i = event.token().0;
        if let Some(c) = conns.get_mut(i) {
            if !c.ready {
                c.ready = true;
                turn.push(i);
            }
        }
    }
    for i in turn {
        let c = &mut conns[i];
        c.ready = false;
        if c.closed {
            continue;
        }
        match c.driver.turn(&mut c.stream, scratch, sending, counters)? {
            Step::Wait => {}
            Step::Again => again.push(i),
            Step::Closed => c.closed = true,
        }
    }
    Ok(Pass::Going)
}

/// After the window: framed waits for the replies still due; then every
/// connection half-closes and, for discard, the server's FIN must follow.
fn finish(
    cfg: &ModeBench,
    poll: &mut Poll,
    events: &mut Events,
    signals: &mut StopSignals,
    conns: &mut [Conn],
    counters: &mut Counters,
    scratch: &mut [u8],
) -> Result<(), ClientError> {
    let mut l = Looper {
        poll,
        events,
        signals,
        counters,
        scratch,
    };
    let drained = l.turn_until(conns, cfg.timeout, |conns| {
        if conns.iter().any(|c| c.closed && c.driver.awaiting()) {
            return Err(ClientError::ServiceClosed {
                mode: cfg.mode.name(),
                reset: false,
            });
        }
        Ok(!conns.iter().any(|c| c.driver.awaiting() && !c.closed))
    })?;
    if !drained {
        return Err(ClientError::DrainTimeout {
            connections: conns.iter().filter(|c| c.driver.awaiting()).count(),
            bytes: 0,
            after: cfg.timeout,
        });
    }
    for c in conns.iter_mut() {
        // A server that closed first makes this fail; nothing is lost.
        let _ = c.stream.shutdown(Shutdown::Write);
    }
    if cfg.mode != ServiceMode::Discard {
        return Ok(());
    }
    if !l.turn_until(conns, cfg.timeout, |conns| {
        Ok(conns.iter().all(|c| c.closed))
    })? {
        return Err(ClientError::NoFin {
            connections: conns.iter().filter(|c| !c.closed).count(),
            after: cfg.timeout,
        });
    }
    Ok(())
}

/// The loop's parts, for the end's waits.
struct Looper<'a> {
    poll: &'a mut Poll,
    events: &'a mut Events,
    signals: &'a mut StopSignals,
    counters: &'a mut Counters,
    scratch: &'a mut [u8],
}

impl Looper<'_> {
    /// Turns the connections (sending over) until `done` says so, or
    /// `timeout` passes (`Ok(false)`).
    fn turn_until(
        &mut self,
        conns: &mut [Conn],
        timeout: Duration,
        done: impl Fn(&[Conn]) -> Result<bool, ClientError>,
    ) -> Result<bool, ClientError> {
        let deadline = Instant::now() + timeout;
        let mut again: Vec<usize> = (0..conns.len()).collect();
        while !done(conns)? {
            let now = Instant::now();
            if now >= deadline {
                return Ok(false);
            }
            let wait = if again.is_empty() {
                deadline - now
            } else {
                Duration::ZERO
            };
            if let Pass::Interrupted = turn_all(
                self.poll,
                self.events,
                self.signals,
                conns,
                &mut again,
                Some(wait),
                false,
                self.counters,
                self.scratch,
            )? {
                return Err(ClientError::Interrupted);
            }
        }
        Ok(true)
    }
}
