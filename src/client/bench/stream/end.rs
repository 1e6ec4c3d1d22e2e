//! The end of an unbounded run: sampling the measured window, stopping
//! the threads and waiting for the last echoes, and the report.

use std::net::Shutdown;
use std::sync::atomic::Ordering;
use std::thread::JoinHandle;
use std::time::Instant;

use super::reader::Ending;
use super::Streams;
use crate::client::bench::end::window_report;
use crate::client::bench::in_flight::InFlight;
use crate::client::bench::report::BenchReport;
use crate::client::error::{ClientError, Mismatch};

impl Streams<'_> {
    pub(super) fn verified(&self) -> Vec<u64> {
        (self.conns.iter())
            .map(|o| o.conn.verified.load(Ordering::SeqCst))
            .collect()
    }

    /// Counts in the window, and in its current interval, what was
    /// verified since it last looked: writes completed (`--size` bytes
    /// each, per connection) and bytes.
    pub(super) fn count_window(&mut self) {
        if !self.window.open || self.window.closed {
            return;
        }
        let size = self.config.size as u64;
        let verified = self.verified();
        for (seen, now) in self.seen.iter_mut().zip(verified) {
            let (writes, bytes) = (now / size - *seen / size, now - *seen);
            self.window.messages += writes;
            self.window.bytes += bytes;
            if let Some(intervals) = &mut self.intervals {
                intervals.count(writes, bytes);
            }
            *seen = now;
        }
    }

    pub(super) fn open_window(&mut self) {
        (self.window).open(self.config.server_pid, &mut self.server_note);
        self.seen = self.verified();
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
        self.count_window();
        let (pid, note) = (self.config.server_pid, &mut self.server_note);
        let end = self.window.close(now, self.config.stop, pid, note);
        if let Some(intervals) = &mut self.intervals {
            intervals.close(end);
        }
    }

    /// Ends every thread and counts how each connection ended.
    pub(super) fn finish(&mut self) {
        self.run.stop.store(true, Ordering::SeqCst);
        self.run.quit.store(true, Ordering::SeqCst);
        for open in &self.conns {
            if let Some(writer) = &open.writer {
                writer.thread().unpark();
            }
            let _ = open.stream.shutdown(Shutdown::Both);
        }
        let mut missing = 0;
        for i in 0..self.conns.len() {
            let open = &mut self.conns[i];
            if let Some(writer) = open.writer.take() {
                let _ = writer.join();
            }
            let Some(Ok(end)) = open.reader.take().map(JoinHandle::join) else {
                continue;
            };
            self.most_in_flight = self.most_in_flight.max(end.most_in_flight);
            let conn = &self.conns[i].conn;
            let written = conn.written.load(Ordering::SeqCst);
            let verified = conn.verified.load(Ordering::SeqCst);
            match end.ending {
                _ if verified > written => {
                    self.mismatches += 1;
                    self.failures.note(ClientError::Mismatch(Mismatch {
                        offset: written,
                        sent: 0,
                        received: None,
                    }));
                }
                Ending::Mismatch(mismatch) => {
                    self.mismatches += 1;
                    self.failures.note(ClientError::Mismatch(mismatch));
                }
                Ending::Closed {
                    reset,
                    sending: true,
                } => self.closed_early(verified, written, reset),
                _ if verified == written => {}
                Ending::Stopped => {
                    self.incomplete += 1;
                    missing += written - verified;
                }
                Ending::Closed { reset, .. } => self.closed_early(verified, written, reset),
            }
        }
        if self.incomplete > 0 {
            self.failures.note(ClientError::DrainTimeout {
                connections: self.incomplete,
                bytes: missing,
                after: self.drain_wait,
            });
        }
    }

    pub(super) fn closed_early(&mut self, received: u64, expected: u64, reset: bool) {
        self.closed_early += 1;
        self.failures.note(ClientError::ClosedEarly {
            received,
            expected,
            reset,
        });
    }

    pub(super) fn report(mut self) -> BenchReport {
        let base = window_report(
            self.config,
            self.addr,
            &self.window,
            self.run_start,
            &self.failures,
            self.intervals.take(),
        );
        BenchReport {
            bulk: true,
            in_flight: Some((InFlight::Unbounded, self.most_in_flight)),
            connected: self.conns.len(),
            connect_errors: self.connect_errors,
            mismatches: self.mismatches,
            closed_early: self.closed_early,
            incomplete: self.incomplete,
            server_note: self.server_note.take(),
            interrupted: self.interrupted,
            ..base
        }
    }
}
