//! The loop of a mode benchmark: connect every connection, turn each as
//! the poll reports it, open and close the measured window, then end the
//! way the mode ends (discard: FIN for FIN; framed: the last replies).
//!
//! This file holds the loop; `connect` opens the connections, `turn` is one
//! pass of the poll, `window` the measured window and its intervals,
//! `finish` the end.

mod connect;
mod finish;
mod turn;
mod window;

use std::io;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use mio::net::TcpStream;
use mio::{Events, Poll, Token};

use self::connect::connect_all;
use self::finish::finish;
use self::turn::{turn_all, Pass};
use self::window::{figures, mark, unit, Mark, Seen};
use super::report::ModeReport;
use super::{Counters, Driver, ModeBench};
use crate::client::bench::interval::Intervals;
use crate::client::bench::window::MAX_LATENCY_NS;
use crate::client::error::ClientError;
use crate::client::modes::ServiceMode;
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
