//! The end of an unbounded run: sampling the measured window, stopping
//! the threads and waiting for the last echoes, and the report.

use std::io;
use std::net::Shutdown;
use std::sync::atomic::Ordering;
use std::thread::JoinHandle;
use std::time::Instant;

use super::reader::Ending;
use super::Streams;
use crate::client::bench::in_flight::InFlight;
use crate::client::bench::report::{BenchReport, ServerUsage};
use crate::client::bench::StopAfter;
use crate::client::error::{exit, ClientError, Mismatch};
use crate::os::procstat;

impl Streams<'_> {
    pub(super) fn verified(&self) -> Vec<u64> {
        (self.conns.iter())
            .map(|o| o.conn.verified.load(Ordering::SeqCst))
            .collect()
    }

    pub(super) fn open_window(&mut self) {
        self.window.open = true;
        self.verified_at_open = self.verified();
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
            // Stopped in the warm-up: nothing is measured.
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
        let size = self.config.size as u64;
        for (at_open, at_close) in self.verified_at_open.iter().zip(self.verified()) {
            self.window.bytes += at_close - at_open;
            self.window.messages += at_close / size - at_open / size;
        }
        if let (Some(pid), Some(start)) = (self.config.server_pid, self.window.server_start) {
            match procstat::sample(pid) {
                Ok(end) => self.window.server = Some(ServerUsage::between(pid, start, end)),
                Err(e) => self.note_server(pid, "when the window closed", &e),
            }
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
        let end = self.window.end.unwrap_or(self.window.start);
        let decisive = self.failures.decisive();
        let exit_code = decisive.map_or(exit::OK, ClientError::exit_code);
        let error = decisive.map(ClientError::to_string);
        let warmup = self.run_start.map_or(self.config.warmup, |start| {
            self.window.start.saturating_duration_since(start)
        });
        BenchReport {
            target: self.config.target.clone(),
            address: self.addr,
            connections: self.config.connections,
            size: self.config.size,
            depth: self.config.depth,
            bulk: true,
            in_flight: Some((InFlight::Unbounded, self.most_in_flight)),
            rate: None,
            warmup,
            ended_in_warmup: warmup < self.config.warmup,
            elapsed: end.saturating_duration_since(self.window.start),
            messages: self.window.messages,
            bytes: self.window.bytes,
            latency: None,
            rtt_sources: Default::default(),
            send_lag: None,
            behind_schedule: None,
            connected: self.conns.len(),
            connect_errors: self.connect_errors,
            mismatches: self.mismatches,
            closed_early: self.closed_early,
            incomplete: self.incomplete,
            error,
            server: self.window.server,
            server_note: self.server_note.take(),
            interrupted: self.interrupted,
            exit_code,
            format: self.config.format,
            intervals: None,
        }
    }
}
