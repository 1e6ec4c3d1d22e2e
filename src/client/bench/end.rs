//! How the run ends: stop sending, drain, stall, what was left, and the report.

use std::time::Instant;

use super::report::{BenchReport, Latency};
use super::transport::Transport;
use super::{Engine, Phase, State, StopAfter};
use crate::client::error::{exit, ClientError};

impl<T: Transport> Engine<'_, T> {
    pub(super) fn stop_sending(&mut self, now: Instant) {
        if let StopAfter::Duration(_) = self.config.stop {
            self.close_window(now);
        }
        // Scheduled messages not yet issued are not part of the run: from
        // here on nothing is issued. Nor are issued bytes that never left:
        // the drain waits only for the echo of what the server was sent.
        self.phase = Phase::Draining(now + self.config.timeout);
        self.drain_wait = self.config.timeout;
        for conn in &mut self.conns {
            if matches!(conn.state, State::Open) {
                self.outstanding -= conn.flow.withdraw_unsent();
            }
        }
    }

    /// No echo for `timeout` while bytes were out: the run ends here
    /// rather than wait forever for a server that stopped echoing.
    pub(super) fn stalled(&mut self, now: Instant) {
        self.failures.note(ClientError::Stalled {
            connections: self.waiting_connections(),
            bytes: self.outstanding,
            after: self.config.timeout,
        });
        self.close_window(now);
        self.count_incomplete();
    }

    /// Open connections with bytes still to be echoed.
    pub(super) fn waiting_connections(&self) -> usize {
        (self.conns.iter())
            .filter(|c| matches!(c.state, State::Open))
            .filter(|c| c.flow.unechoed() + c.flow.unwritten() > 0)
            .count()
    }

    pub(super) fn count_incomplete(&mut self) {
        self.incomplete = self.waiting_connections();
        if self.incomplete > 0 {
            self.failures.note(ClientError::DrainTimeout {
                connections: self.incomplete,
                bytes: self.outstanding,
                after: self.drain_wait,
            });
        }
    }

    /// `--rate`: messages that had fallen due on open connections and were
    /// never sent, because `depth` were still out when the run stopped.
    pub(super) fn behind_schedule(&self) -> Option<u64> {
        let schedule = self.schedule.as_ref()?;
        let unsent: u64 = (self.conns.iter().enumerate())
            .filter(|(_, c)| matches!(c.state, State::Open))
            .map(|(i, c)| schedule.due_on(i).saturating_sub(c.scheduled))
            .sum();
        Some(match self.config.stop {
            // Messages past the count were never going to be sent.
            StopAfter::Requests(n) => unsent.min(n.saturating_sub(self.issued)),
            StopAfter::Duration(_) => unsent,
        })
    }

    pub(super) fn report(mut self) -> BenchReport {
        let end = self.window.end.unwrap_or(self.window.start);
        let decisive = self.failures.decisive();
        let exit_code = decisive.map_or(exit::OK, ClientError::exit_code);
        let error = decisive.map(ClientError::to_string);
        // The warm-up that actually passed: shorter when the run ended in it.
        let warmup = self.run_start.map_or(self.config.warmup, |start| {
            self.window.start.saturating_duration_since(start)
        });
        BenchReport {
            target: self.config.target.clone(),
            address: self.addr,
            connections: self.config.connections,
            size: self.config.size,
            depth: self.config.depth,
            bulk: self.config.bulk,
            in_flight: self.config.bulk.then(|| {
                let largest = self.conns.iter().map(|c| c.in_flight.largest()).max();
                (self.config.in_flight, largest.unwrap_or(0))
            }),
            rate: self.config.rate,
            warmup,
            ended_in_warmup: warmup < self.config.warmup,
            elapsed: end.saturating_duration_since(self.window.start),
            messages: self.window.messages,
            bytes: self.window.bytes,
            latency: if self.config.bulk {
                None
            } else {
                Latency::from_nanos(&self.window.latency)
            },
            rtt_sources: self.rtt_sources,
            send_lag: Latency::from_nanos(&self.window.send_lag),
            behind_schedule: self.behind_schedule(),
            connected: self.connected,
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
            intervals: self.intervals.take().and_then(|intervals| {
                let period = self.config.intervals?.0;
                Some((period, Vec::from(intervals.kept), intervals.omitted))
            }),
        }
    }
}
