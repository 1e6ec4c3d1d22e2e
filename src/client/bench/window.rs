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

    /// Opens the window: the server's usage (`--server-pid`) is measured
    /// from here; why it cannot be goes to `note`.
    pub(super) fn open(&mut self, server_pid: Option<u32>, note: &mut Option<String>) {
        self.open = true;
        if let Some(pid) = server_pid {
            match procstat::sample(pid) {
                Ok(sample) => self.server_start = Some(sample),
                Err(e) => note_server(note, pid, "when the window opened", &e),
            }
        }
    }

    /// Whether the window is still to be closed, at `now`. Stopped during
    /// the warm-up, it is empty, here and now, and the echoes still to
    /// come are not counted in it. The caller opens it if it is not yet
    /// open, counts what it counts at the end, then calls [`Self::close`].
    pub(super) fn closing(&mut self, now: Instant) -> bool {
        if self.closed {
            return false;
        }
        if now < self.start {
            self.start = now;
        }
        true
    }

    /// Closes the window at `now`, its end no later than planned, and
    /// measures the server's usage over it; returns the end.
    pub(super) fn close(
        &mut self,
        now: Instant,
        stop: StopAfter,
        server_pid: Option<u32>,
        note: &mut Option<String>,
    ) -> Instant {
        self.closed = true;
        let end = match stop {
            StopAfter::Duration(_) => self.end.map_or(now, |end| end.min(now)),
            StopAfter::Requests(_) => now,
        };
        let end = end.max(self.start);
        self.end = Some(end);
        if let (Some(pid), Some(start)) = (server_pid, self.server_start) {
            match procstat::sample(pid) {
                Ok(end_sample) => self.server = Some(ServerUsage::between(pid, start, end_sample)),
                Err(e) => note_server(note, pid, "when the window closed", &e),
            }
        }
        end
    }
}

/// The first reason the server's usage could not be measured.
fn note_server(note: &mut Option<String>, pid: u32, when: &str, e: &io::Error) {
    note.get_or_insert_with(|| {
        format!("pid {pid} could not be read {when} ({e}); no CPU or memory figures")
    });
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
        (self.window).open(self.config.server_pid, &mut self.server_note);
        if let Some(intervals) = &mut self.intervals {
            intervals.open(self.window.start);
        }
    }

    pub(super) fn close_window(&mut self, now: Instant) {
        if !self.window.closing(now) {
            return;
        }
        if !self.window.open {
            self.open_window();
        }
        let (pid, note) = (self.config.server_pid, &mut self.server_note);
        let end = self.window.close(now, self.config.stop, pid, note);
        if let Some(intervals) = &mut self.intervals {
            intervals.close(end);
        }
    }
}
