//! The run's phases (connecting, running, draining): what moves it from
//! one to the next, when the loop must wake next, and what Ctrl+C does.

use std::time::{Duration, Instant};

use super::schedule::RateSchedule;
use super::transport::Transport;
use super::{Engine, Phase, State, StopAfter};
use crate::client::error::ClientError;

impl<T: Transport> Engine<'_, T> {
    /// Moves the run through its phases; `false` when it is over.
    pub(super) fn advance(&mut self, now: Instant) -> Result<bool, ClientError> {
        if let Some(intervals) = &mut self.intervals {
            intervals.tick(now);
        }
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

    /// The soonest moment the loop must wake for, if any.
    pub(super) fn next_deadline(&self) -> Option<Instant> {
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
        if let Some(intervals) = self.intervals.as_ref().filter(|i| i.running()) {
            consider(Some(intervals.next));
        }
        next
    }

    /// Ctrl+C: the first ends the window and drains for a moment; a
    /// second (or one while connecting) ends the run.
    pub(super) fn on_signal(&mut self, count: usize) -> Result<(), ClientError> {
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
}
