//! The live progress line on stderr, once a second.

use std::time::{Duration, Instant};

use super::rate::throughput;
use super::report::thousands;
use super::transport::Transport;
use super::{Engine, Phase, StopAfter};
use crate::client::output;

/// The live line's counters.
pub(super) struct Progress {
    pub(super) enabled: bool,
    pub(super) next: Instant,
    pub(super) last_messages: u64,
    pub(super) last_bytes: u64,
    /// All completions, warm-up included, for the live line.
    pub(super) messages: u64,
    pub(super) bytes: u64,
}

impl Progress {
    pub(super) fn new(enabled: bool, now: Instant) -> Self {
        Self {
            enabled,
            next: now,
            last_messages: 0,
            last_bytes: 0,
            messages: 0,
            bytes: 0,
        }
    }
}

impl<T: Transport> Engine<'_, T> {
    pub(super) fn tick_progress(&mut self, now: Instant) {
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
            "\r\x1b[K{:.0} s{}: {} {}, {}{}",
            elapsed.as_secs_f64(),
            total,
            thousands(messages),
            if self.config.bulk {
                "writes/s"
            } else {
                "msgs/s"
            },
            throughput(bytes as f64, self.config.format),
            if self.window.open {
                ""
            } else {
                " (warming up)"
            }
        ));
    }

    pub(super) fn finish_progress(&self) {
        if self.progress.enabled {
            output::err_text(format_args!("\r\x1b[K"));
        }
    }
}
