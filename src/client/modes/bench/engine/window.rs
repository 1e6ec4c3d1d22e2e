//! The measured window of a mode benchmark: the counters at its two ends,
//! its figures, and what each interval counts.

use std::time::Instant;

use super::super::report::{ServerFigures, Window};
use super::super::{Counters, ModeBench};
use crate::client::bench::interval::Unit;
use crate::client::modes::ServiceMode;
use crate::os::procstat;

/// Counters at one end of the window.
pub(super) struct Mark {
    pub(super) at: Instant,
    pub(super) up: u64,
    pub(super) down: u64,
    pub(super) replies: u64,
    pub(super) server: Option<procstat::ProcessSample>,
}

/// What an interval of `mode` counts.
pub(super) fn unit(mode: ServiceMode) -> Unit {
    match mode {
        ServiceMode::Chargen => Unit::Blocks,
        ServiceMode::Framed => Unit::Frames,
        _ => Unit::Writes,
    }
}

/// The counters when the intervals last counted them.
#[derive(Default)]
pub(super) struct Seen {
    up: u64,
    down: u64,
    replies: u64,
}

impl Seen {
    pub(super) fn of(counters: &Counters) -> Self {
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
    pub(super) fn count(&mut self, cfg: &ModeBench, counters: &mut Counters) {
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
pub(super) fn figures(first: &Mark, last: &Mark, cfg: &ModeBench) -> Window {
    Window {
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

pub(super) fn mark(cfg: &ModeBench, counters: &Counters) -> Mark {
    Mark {
        at: Instant::now(),
        up: counters.up,
        down: counters.down,
        replies: counters.replies,
        server: cfg.server_pid.and_then(|pid| procstat::sample(pid).ok()),
    }
}
