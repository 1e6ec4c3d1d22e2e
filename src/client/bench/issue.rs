//! What each connection may send now: closed loop up to `depth`, the `--rate` schedule, bulk writes.

use std::time::Instant;

use super::transport::Transport;
use super::{Engine, Phase, State, StopAfter};

impl<T: Transport> Engine<'_, T> {
    pub(super) fn may_issue(&self) -> bool {
        self.phase == Phase::Running
            && match self.config.stop {
                StopAfter::Requests(n) => self.issued < n,
                StopAfter::Duration(_) => true,
            }
    }

    /// Issues what connection `i` may send now: closed loop, up to `depth`
    /// messages; open loop, the owed ones up to `depth`; bulk, the next write
    /// (which is what `--requests` counts in bulk mode).
    pub(super) fn top_up(&mut self, i: usize, now: Instant) {
        let size = self.config.size as u64;
        if self.config.bulk {
            let may_issue = self.may_issue();
            let conn = &mut self.conns[i];
            let (flow, stream) = (&conn.flow, &conn.stream);
            // The kernel's current size of this socket's send buffer.
            let send_buffer = || {
                let bytes = socket2::SockRef::from(stream.as_ref()?.tcp())
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

    pub(super) fn send_due(&mut self, now: Instant) {
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
}
