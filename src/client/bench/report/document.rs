//! `bench --json`: the report as one JSON object, its schema the types below.

use std::net::SocketAddr;

use serde::Serialize;

use super::{round3, round6, BenchReport, Latency, RttSources};
use crate::client::bench::in_flight::InFlight;
use crate::client::bench::interval::IntervalFigures;
use crate::logic::json;

impl BenchReport {
    /// The machine-readable form (one JSON object).
    pub fn to_json(&self) -> String {
        json::to_string(&BenchDocument {
            mode: "bench",
            target: &self.target,
            address: self.address,
            connections: self.connections,
            size: self.size,
            depth: self.depth,
            bulk: self.bulk,
            in_flight: self.in_flight.map(|(choice, largest)| InFlightJson {
                auto: choice == InFlight::Auto,
                unbounded: choice == InFlight::Unbounded,
                largest_bytes: largest,
            }),
            rate: self.rate,
            warmup_s: round6(self.warmup.as_secs_f64()),
            ended_in_warmup: self.ended_in_warmup,
            elapsed_s: round6(self.elapsed.as_secs_f64()),
            messages: self.messages,
            bytes: self.bytes,
            msgs_per_s: round3(self.msgs_per_s()),
            mb_per_s: round3(self.mb_per_s()),
            bits_per_s: (self.mb_per_s() * 8e6).round(),
            interval_s: (self.intervals.as_ref()).map(|(period, _, _)| period.as_secs_f64()),
            intervals: (self.intervals.as_ref()).map_or(&[][..], |(_, kept, _)| kept),
            intervals_omitted: self
                .intervals
                .as_ref()
                .map_or(0, |(_, _, omitted)| *omitted),
            latency_us: self.latency.as_ref().map(Latency::rounded),
            rtt_source: self.rtt_sources.word(),
            rtt_source_counts: self
                .rtt_sources
                .word()
                .map(|_| RttCounts::from(self.rtt_sources)),
            send_lag_us: self.send_lag.as_ref().map(Latency::rounded),
            behind_schedule: self.behind_schedule,
            connected: self.connected,
            connect_errors: self.connect_errors,
            mismatches: self.mismatches,
            closed_early: self.closed_early,
            incomplete: self.incomplete,
            interrupted: self.interrupted,
            error: self.error.as_deref(),
            server: self.server.map(|server| ServerJson {
                pid: server.pid,
                cpu_s: round3(server.cpu.as_secs_f64() * 1e3) / 1e3,
                cpu_ns_per_msg: self.server_ns_per_msg().map(round3),
                rss_kib: server.rss_kib,
                peak_rss_kib: server.peak_rss_kib,
            }),
            server_error: self.server_note.as_deref(),
        })
    }
}

/// `bench --json`.
#[derive(Serialize)]
struct BenchDocument<'a> {
    mode: &'static str,
    target: &'a str,
    address: SocketAddr,
    connections: usize,
    size: usize,
    depth: usize,
    bulk: bool,
    in_flight: Option<InFlightJson>,
    rate: Option<f64>,
    warmup_s: f64,
    ended_in_warmup: bool,
    elapsed_s: f64,
    messages: u64,
    bytes: u64,
    msgs_per_s: f64,
    mb_per_s: f64,
    bits_per_s: f64,
    interval_s: Option<f64>,
    intervals: &'a [IntervalFigures],
    intervals_omitted: u64,
    latency_us: Option<Latency>,
    /// "kernel", "clock" or "mixed": what ended the latencies.
    rtt_source: Option<&'static str>,
    rtt_source_counts: Option<RttCounts>,
    send_lag_us: Option<Latency>,
    behind_schedule: Option<u64>,
    connected: usize,
    connect_errors: usize,
    mismatches: usize,
    closed_early: usize,
    incomplete: usize,
    interrupted: bool,
    error: Option<&'a str>,
    server: Option<ServerJson>,
    server_error: Option<&'a str>,
}

/// Messages whose latency ran to the kernel's receive timestamp, and
/// those timed by the clock.
#[derive(Serialize)]
struct RttCounts {
    kernel: u64,
    clock: u64,
}

impl From<RttSources> for RttCounts {
    fn from(sources: RttSources) -> Self {
        Self {
            kernel: sources.kernel,
            clock: sources.clock,
        }
    }
}

#[derive(Serialize)]
struct InFlightJson {
    auto: bool,
    unbounded: bool,
    largest_bytes: u64,
}

#[derive(Serialize)]
struct ServerJson {
    pid: u32,
    cpu_s: f64,
    cpu_ns_per_msg: Option<f64>,
    rss_kib: u64,
    peak_rss_kib: u64,
}
