//! Signals and stopping: SIGUSR1 reports, SIGHUP reloads, a stop signal
//! stops accepting and drains, a second one (or the shutdown timeout)
//! closes what is left; after the loop, the wait for the log's last lines.

use std::io::ErrorKind;
use std::time::{Duration, Instant};

use log::{debug, info, warn};
use mio::Events;

use super::token::{LOG_DRAINED, SIGNALS};
use super::{Server, Stop};
use crate::logic::echo::CloseReason;
use crate::os::signal::{self, Signal};

/// A stop signal this soon after the first is a copy of it, not the user
/// asking again: faster than anyone presses Ctrl+C twice.
const SAME_SIGNAL_WINDOW: Duration = Duration::from_millis(200);

impl Server {
    /// After [`run`](Self::run): waits until the log's writer has written
    /// everything queued, or `deadline`, or a stop signal, whichever comes
    /// first; a stop signal is returned. The loop's own thread never
    /// writes the log, so only here does it wait for it.
    pub fn wait_for_log(&mut self, deadline: Instant) -> std::io::Result<Option<Signal>> {
        crate::os::log_writer::wake_when_drained(mio::Waker::new(
            self.poll.registry(),
            LOG_DRAINED,
        )?);
        let mut events = Events::with_capacity(8);
        while !crate::os::log_writer::is_drained() {
            let now = Instant::now();
            if now >= deadline {
                break;
            }
            match self.poll.poll(&mut events, Some(deadline - now)) {
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                other => other?,
            }
            for event in events.iter() {
                if let Some((signal, count)) = self.signals.take(SIGNALS, event.token()) {
                    if count > 0 && matches!(signal, signal::INT | signal::TERM) {
                        return Ok(Some(signal));
                    }
                }
            }
        }
        Ok(None)
    }

    /// SIGUSR1 reports, SIGHUP reloads; a stop signal stops (see
    /// [`Self::on_stop_signal`]). None of them kills the server outright.
    pub(super) fn on_signal(&mut self, signal: Signal, count: usize) -> Option<Stop> {
        if count == 0 {
            return None;
        }
        match signal {
            signal::USR1 => {
                self.log_stats(Instant::now());
                None
            }
            signal::HUP => {
                // TLS certificates are the only files read after start.
                if !self.reload_tls() {
                    info!(target: "RELOAD", "SIGHUP received: nothing to reload");
                }
                None
            }
            _ => self.on_stop_signal(signal),
        }
    }

    /// First signal: stop accepting and drain. Again: stop at once.
    fn on_stop_signal(&mut self, signal: Signal) -> Option<Stop> {
        let name = signal.name;
        let now = Instant::now();
        // The first signal set the deadline this long after it came.
        let began = self
            .stop_deadline
            .map(|deadline| deadline - self.config.shutdown_timeout);
        match began {
            None => {
                self.begin_stop(name);
                return None;
            }
            // One Ctrl+C can arrive twice: the terminal signals the whole
            // process group, and `timeout(1)` or a shell wrapper in it
            // forwards its copy. That is still one request to stop.
            Some(began) if now.duration_since(began) < SAME_SIGNAL_WINDOW => {
                debug!(target: "SHUTDOWN", "{name} received again at once: taken as the same request");
                return None;
            }
            Some(_) => {}
        }
        self.close_all(&format!("{name} received again: exiting now, dropping"));
        Some(Stop::Abandoned(signal))
    }

    fn begin_stop(&mut self, name: &str) {
        // Closing them (on drop) makes new connects fail at once.
        self.listeners.close_all(self.poll.registry());
        // UDP stops at once: a datagram has no connection to drain.
        if let Some(udp) = &mut self.udp {
            udp.stop(self.poll.registry());
        }
        // The endpoint stops too; the loop ends when the echo side is done.
        if let Some(endpoint) = &mut self.endpoint {
            endpoint.stop(self.poll.registry(), &mut self.wheel);
        }
        self.accept_retry_at = None;
        let timeout = self.config.shutdown_timeout;
        self.stop_deadline = Some(Instant::now() + timeout);
        info!(
            target: "SHUTDOWN",
            "{name} received: no longer accepting; flushing {} connection(s) for up to {:.1}s \
             (send it again to exit at once)",
            self.connections.len(),
            timeout.as_secs_f64()
        );
        // No event will announce the new phase: queue everyone for a turn.
        for (_, conn) in self.connections.iter_mut() {
            conn.echo.begin_shutdown();
            self.resume.push(conn.token, &mut conn.queued);
        }
    }

    /// The drain took the whole shutdown timeout: close what is left.
    pub(super) fn close_all_at_deadline(&mut self) {
        self.close_all("shutdown timeout reached: closing");
    }

    /// Closes every echo connection after a warning that begins with
    /// `what` and says how many there were and what they were still owed.
    /// Each still gets its DISCONNECT line, with what it sent and got.
    fn close_all(&mut self, what: &str) {
        let owed: usize = self.connections.iter().map(|(_, c)| c.echo.pending()).sum();
        warn!(
            target: "SHUTDOWN",
            "{what} {} connection(s) with {owed} bytes not echoed",
            self.connections.len()
        );
        let keys: Vec<usize> = self.connections.iter().map(|(key, _)| key).collect();
        for key in keys {
            self.close(key, CloseReason::Shutdown);
        }
    }
}
