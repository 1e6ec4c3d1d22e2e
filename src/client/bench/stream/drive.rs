//! The coordinator's loop: it sleeps until the next thing to do, opens
//! and closes the window, ends the intervals, stops the writers, waits
//! for the last echoes, and notices a stall or Ctrl+C.

use std::io::ErrorKind;
use std::net::Shutdown;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use mio::Events;

use super::{Phase, Streams, IDLE_LOOK, SIGNALS};
use crate::client::bench::StopAfter;
use crate::client::error::ClientError;

impl Streams<'_> {
    /// Ctrl+C or SIGTERM arrivals since the last look, without waiting.
    pub(super) fn signalled(&mut self) -> Result<usize, ClientError> {
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

    pub(super) fn drive(&mut self) -> Result<(), ClientError> {
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
