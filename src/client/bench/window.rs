//! The measured window: its counters and histograms, opening and closing it, the server's usage.

use std::io;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;

use super::report::ServerUsage;
use super::schedule::RateSchedule;
use super::transport::Transport;
use super::{Engine, Phase, State, StopAfter};
use crate::client::error::ClientError;
use crate::os::procstat::{self, ProcessSample};

/// Latency histogram range: 1 ns to 1 hour at 3 significant digits.
pub(crate) const MAX_LATENCY_NS: u64 = 3_600_000_000_000;

/// Counters of the measured window.
pub(super) struct Window {
    pub(super) start: Instant,
    pub(super) end: Option<Instant>,
    pub(super) open: bool,
    pub(super) closed: bool,
    pub(super) messages: u64,
    pub(super) bytes: u64,
    pub(super) latency: Histogram<u64>,
    /// `--rate`: per wake-up that found messages due, how late the loop
    /// got to the earliest of them (the client's own share of `latency`).
    pub(super) send_lag: Histogram<u64>,
    pub(super) server_start: Option<ProcessSample>,
    pub(super) server: Option<ServerUsage>,
}

impl Window {
    /// An empty window, to be placed when the connections are open.
    pub(super) fn new(now: Instant) -> Result<Self, ClientError> {
        let histogram = || {
            Histogram::new_with_bounds(1, MAX_LATENCY_NS, 3)
                .map_err(|e| ClientError::Other(format!("latency histogram: {e}")))
        };
        Ok(Self {
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
        })
    }

    /// Whether what happens at `now` counts in the measurement.
    pub(super) fn counts(&self, now: Instant) -> bool {
        self.open && self.end.map_or(true, |end| now <= end)
    }
}

impl<T: Transport> Engine<'_, T> {
    pub(super) fn start_running(&mut self, now: Instant) {
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

    pub(super) fn open_window(&mut self) {
        self.window.open = true;
        if let Some(intervals) = &mut self.intervals {
            intervals.open(self.window.start);
        }
        if let Some(pid) = self.config.server_pid {
            match procstat::sample(pid) {
                Ok(sample) => self.window.server_start = Some(sample),
                Err(e) => self.note_server(pid, "when the window opened", &e),
            }
        }
    }

    pub(super) fn note_server(&mut self, pid: u32, when: &str, e: &io::Error) {
        self.server_note.get_or_insert_with(|| {
            format!("pid {pid} could not be read {when} ({e}); no CPU or memory figures")
        });
    }

    pub(super) fn close_window(&mut self, now: Instant) {
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
        if let Some(intervals) = &mut self.intervals {
            intervals.close(end.max(self.window.start));
        }
        if let (Some(pid), Some(start)) = (self.config.server_pid, self.window.server_start) {
            match procstat::sample(pid) {
                Ok(end_sample) => {
                    self.window.server = Some(ServerUsage::between(pid, start, end_sample));
                }
                Err(e) => self.note_server(pid, "when the window closed", &e),
            }
        }
    }
}
