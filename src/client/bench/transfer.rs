//! One connection's turn: read and check the echo, write what it has issued, the server's close.

use std::io::ErrorKind;
use std::time::Instant;

use super::transport::Transport;
use super::Engine;
use crate::client::error::{is_reset, ClientError};
use crate::client::tls::stream::tls_error;

impl<T: Transport> Engine<'_, T> {
    /// Reads and checks everything available; `false` if the connection
    /// was closed.
    ///
    /// Each message completed by a read is timed to that read's kernel
    /// stamp, the arrival of the last segment it took: for the message
    /// whose last byte came in that segment, its arrival; one completed
    /// by an earlier segment of the same read is charged the gap to the
    /// last. Without a stamp (TLS, the kernel refused or gave none), the
    /// clock when this turn began.
    pub(super) fn read(&mut self, i: usize, hung_up: bool) -> bool {
        let now = Instant::now();
        let stamped = self.conns[i].rx_stamps;
        let mut completed = 0;
        loop {
            let Some(stream) = &mut self.conns[i].stream else {
                return false;
            };
            match stream.read_stamped(&mut self.scratch, stamped) {
                Ok((0, _)) => {
                    self.closed(i, false);
                    return false;
                }
                Ok((n, stamp)) => {
                    self.last_progress = now;
                    let window = &mut self.window;
                    let intervals = &mut self.intervals;
                    let sources = &mut self.rtt_sources;
                    let counting = window.counts(now);
                    let arrived = stamp.and_then(|stamp| self.stamp_clock.instant_of(stamp, now));
                    let result =
                        self.conns[i]
                            .flow
                            .echoed(&self.scratch[..n], &self.pattern, |sent| {
                                if let (true, Some(sent)) = (counting, sent) {
                                    // A stamp before the send: the wall
                                    // clock stepped; the clock is safer.
                                    let kernel = arrived.filter(|&at| at >= sent);
                                    let end = kernel.unwrap_or(now);
                                    let ns = end.saturating_duration_since(sent).as_nanos() as u64;
                                    window.latency.saturating_record(ns.max(1));
                                    if let Some(intervals) = intervals.as_mut() {
                                        intervals.latency(ns);
                                    }
                                    sources.count(kernel.is_some());
                                }
                            });
                    match result {
                        Ok(done) => {
                            completed += done;
                            self.outstanding -= n as u64;
                            self.progress.bytes += n as u64;
                            self.progress.messages += done;
                            if counting {
                                let bytes = if self.config.bulk {
                                    n as u64
                                } else {
                                    done * self.config.size as u64
                                };
                                window.messages += done;
                                window.bytes += bytes;
                                if let Some(intervals) = intervals.as_mut() {
                                    intervals.count(done, bytes);
                                }
                            }
                        }
                        Err(mismatch) => {
                            self.mismatches += 1;
                            self.failures.note(ClientError::Mismatch(mismatch));
                            self.drop_conn(i);
                            return false;
                        }
                    }
                    // A short read drained the socket; the next arrival
                    // raises a new edge. After a hang-up no edge follows,
                    // so read on to the end.
                    if T::SHORT_READ_DRAINS && n < self.scratch.len() && !hung_up {
                        break;
                    }
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => {
                    // A TLS alert (a refused client certificate arrives
                    // after a TLS 1.3 handshake) is that failure, not a close.
                    if let Some(tls) = tls_error(&e) {
                        self.connect_errors += 1;
                        self.failures.note(tls);
                        self.drop_conn(i);
                    } else {
                        self.closed(i, is_reset(&e));
                    }
                    return false;
                }
            }
        }
        if completed > 0 || self.config.bulk {
            self.top_up(i, now);
        }
        true
    }

    /// Sends what connection `i` has issued until the socket is full.
    pub(super) fn write(&mut self, i: usize) {
        if self.conns[i].pipe.is_some() {
            self.write_spliced(i);
        } else {
            self.write_copied(i);
        }
    }

    /// Writes what connection `i` has issued, copied from memory, until the
    /// socket is full.
    pub(super) fn write_copied(&mut self, i: usize) {
        let now = Instant::now();
        loop {
            self.top_up(i, now);
            let conn = &mut self.conns[i];
            let chunk = conn.flow.next_write(&self.pattern);
            if chunk.is_empty() {
                return;
            }
            let Some(stream) = &mut conn.stream else {
                return;
            };
            match stream.write(chunk) {
                Ok(n) => conn.flow.wrote(n),
                Err(e) if e.kind() == ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => {
                    self.closed(i, is_reset(&e));
                    return;
                }
            }
        }
    }

    /// The server ended connection `i`.
    pub(super) fn closed(&mut self, i: usize, reset: bool) {
        let flow = &self.conns[i].flow;
        let expected = flow.verified() + flow.unechoed() + flow.unwritten();
        let received = flow.verified();
        if received == expected && !self.may_issue() {
            // Everything sent came back and nothing more will be sent on it:
            // the connection was done, so the close cost the run nothing.
            self.drop_conn(i);
            return;
        }
        self.closed_early += 1;
        self.failures.note(ClientError::ClosedEarly {
            received,
            expected,
            reset,
        });
        self.drop_conn(i);
    }
}
