//! How the run ends: stop sending, drain, stall, what was left, and the report.

use std::net::SocketAddr;
use std::time::Instant;

use super::failures::Failures;
use super::interval::Intervals;
use super::report::{BenchReport, Latency};
use super::transport::Transport;
use super::window::Window;
use super::{BenchConfig, Engine, Phase, State, StopAfter};
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
        let base = window_report(
            self.config,
            self.addr,
            &self.window,
            self.run_start,
            &self.failures,
            self.intervals.take(),
        );
        BenchReport {
            bulk: self.config.bulk,
            in_flight: self.config.bulk.then(|| {
                let largest = self.conns.iter().map(|c| c.in_flight.largest()).max();
                (self.config.in_flight, largest.unwrap_or(0))
            }),
            rate: self.config.rate,
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
            server_note: self.server_note.take(),
            interrupted: self.interrupted,
            ..base
        }
    }
}

/// The report's figures both engines take alike: the settings, the
/// measured window, the failure the exit code stands for, the intervals.
/// The engine fills in the rest by struct update (how it sent, its
/// latency, how its connections fared); here they are empty.
pub(super) fn window_report(
    config: &BenchConfig,
    addr: SocketAddr,
    window: &Window,
    run_start: Option<Instant>,
    failures: &Failures,
    intervals: Option<Intervals>,
) -> BenchReport {
    let end = window.end.unwrap_or(window.start);
    let decisive = failures.decisive();
    // The warm-up that actually passed: shorter when the run ended in it.
    let warmup = run_start.map_or(config.warmup, |start| {
        window.start.saturating_duration_since(start)
    });
    BenchReport {
        target: config.target.clone(),
        address: addr,
        connections: config.connections,
        size: config.size,
        depth: config.depth,
        bulk: false,
        in_flight: None,
        rate: None,
        warmup,
        ended_in_warmup: warmup < config.warmup,
        elapsed: end.saturating_duration_since(window.start),
        messages: window.messages,
        bytes: window.bytes,
        latency: None,
        rtt_sources: Default::default(),
        send_lag: None,
        behind_schedule: None,
        connected: 0,
        connect_errors: 0,
        mismatches: 0,
        closed_early: 0,
        incomplete: 0,
        error: decisive.map(ClientError::to_string),
        server: window.server,
        server_note: None,
        interrupted: false,
        exit_code: decisive.map_or(exit::OK, ClientError::exit_code),
        format: config.format,
        intervals: intervals.map(Intervals::into_report),
    }
}
