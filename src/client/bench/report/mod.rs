//! What a benchmark run measured, and its text for people; `document` is the JSON for scripts.

use std::fmt;
use std::net::SocketAddr;
use std::time::Duration;

use hdrhistogram::Histogram;
use serde::Serialize;

use super::in_flight::InFlight;
use super::interval::IntervalFigures;
use super::rate::{throughput, RateFormat};
use crate::os::procstat::ProcessSample;

mod document;
mod rtt_source;

pub use rtt_source::RttSources;

/// Latency percentiles, in microseconds.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Latency {
    /// Fastest.
    pub min: f64,
    /// Mean.
    pub mean: f64,
    /// Median.
    pub p50: f64,
    /// 90th percentile.
    pub p90: f64,
    /// 95th percentile.
    pub p95: f64,
    /// 99th percentile.
    pub p99: f64,
    /// 99.9th percentile.
    pub p999: f64,
    /// Slowest.
    pub max: f64,
}

impl Latency {
    /// Reads the summary off a histogram of nanoseconds; `None` if empty.
    pub fn from_nanos(h: &Histogram<u64>) -> Option<Self> {
        if h.is_empty() {
            return None;
        }
        let us = |ns: u64| ns as f64 / 1e3;
        Some(Self {
            min: us(h.min()),
            mean: h.mean() / 1e3,
            p50: us(h.value_at_quantile(0.50)),
            p90: us(h.value_at_quantile(0.90)),
            p95: us(h.value_at_quantile(0.95)),
            p99: us(h.value_at_quantile(0.99)),
            p999: us(h.value_at_quantile(0.999)),
            max: us(h.max()),
        })
    }

    /// To the nanosecond, as `--json` writes it.
    pub(crate) fn rounded(&self) -> Self {
        Self {
            min: round3(self.min),
            mean: round3(self.mean),
            p50: round3(self.p50),
            p90: round3(self.p90),
            p95: round3(self.p95),
            p99: round3(self.p99),
            p999: round3(self.p999),
            max: round3(self.max),
        }
    }
}

/// The server's resource use over the measured window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServerUsage {
    /// Its process id.
    pub pid: u32,
    /// CPU time it used during the window.
    pub cpu: Duration,
    /// Its resident memory at the end of the window (connections still open).
    pub rss_kib: u64,
    /// Its peak resident memory since it started.
    pub peak_rss_kib: u64,
}

impl ServerUsage {
    /// The difference between two samples of the same process.
    pub fn between(pid: u32, start: ProcessSample, end: ProcessSample) -> Self {
        Self {
            pid,
            cpu: end.cpu.saturating_sub(start.cpu),
            rss_kib: end.rss_kib,
            peak_rss_kib: end.peak_rss_kib,
        }
    }
}

/// Everything a run measured.
#[derive(Debug, Clone)]
pub struct BenchReport {
    /// The address as the user gave it.
    pub target: String,
    /// The address connected to.
    pub address: SocketAddr,
    /// Connections asked for.
    pub connections: usize,
    /// Message (bulk: write) size.
    pub size: usize,
    /// Messages in flight per connection.
    pub depth: usize,
    /// Bulk streaming instead of messages.
    pub bulk: bool,
    /// Bulk: the bound on unechoed bytes asked for, and the largest any
    /// connection had (auto follows the send buffer; unbounded: the most
    /// any connection had written and not yet seen echoed).
    pub in_flight: Option<(InFlight, u64)>,
    /// Fixed request rate, if any.
    pub rate: Option<f64>,
    /// Warm-up before the window, as it passed.
    pub warmup: Duration,
    /// The run ended before the warm-up asked for was over: nothing was
    /// measured.
    pub ended_in_warmup: bool,
    /// Length of the measured window.
    pub elapsed: Duration,
    /// Messages echoed and verified in the window.
    pub messages: u64,
    /// Bytes echoed and verified in the window.
    pub bytes: u64,
    /// Latency of the window's messages (not for bulk).
    pub latency: Option<Latency>,
    /// What ended those latencies.
    pub rtt_sources: RttSources,
    /// `--rate`: for each wake-up of the client that found messages due,
    /// how far behind the earliest one's intended time it was. This
    /// lateness is part of `latency`, so a large lag means the client, not
    /// the server, set the figures.
    pub send_lag: Option<Latency>,
    /// `--rate`: messages that fell due and were never sent, because the
    /// connections' `depth` was still taken when the run stopped.
    pub behind_schedule: Option<u64>,
    /// Connections established.
    pub connected: usize,
    /// Connections that could not be established.
    pub connect_errors: usize,
    /// Connections whose echo differed from what was sent.
    pub mismatches: usize,
    /// Connections the server closed or reset while they had bytes out.
    pub closed_early: usize,
    /// Connections still waiting for echo when the drain timed out.
    pub incomplete: usize,
    /// The failure the exit code stands for (the first of the most serious
    /// class seen), for the one-line explanation.
    pub error: Option<String>,
    /// Server CPU and memory, with `--server-pid`.
    pub server: Option<ServerUsage>,
    /// Why there are no server figures although `--server-pid` asked.
    pub server_note: Option<String>,
    /// Stopped early by Ctrl+C.
    pub interrupted: bool,
    /// The process exit code these results call for: 0 when every byte
    /// came back exactly, else that of the worst failure (mismatch first).
    pub exit_code: u8,
    /// How the text writes throughput.
    pub format: RateFormat,
    /// `-i` with `--json`: the latest intervals, and how many were left out.
    pub intervals: Option<(Duration, Vec<IntervalFigures>, u64)>,
}

fn round3(x: f64) -> f64 {
    (x * 1e3).round() / 1e3
}

/// To the microsecond, for durations: a one-message run lasts well under
/// a millisecond, and its rate must agree with its length.
fn round6(x: f64) -> f64 {
    (x * 1e6).round() / 1e6
}

impl BenchReport {
    /// Messages per second over the window.
    pub fn msgs_per_s(&self) -> f64 {
        per_second(self.messages as f64, self.elapsed)
    }

    /// Echoed megabytes (10⁶ bytes) per second over the window.
    pub fn mb_per_s(&self) -> f64 {
        per_second(self.bytes as f64 / 1e6, self.elapsed)
    }

    /// Whether `behind` unsent messages mean the run could not keep its
    /// rate: more than one waiting per connection (one may always be
    /// waiting for the echo before it) and over 1% of what was echoed.
    fn fell_behind(&self, behind: u64) -> bool {
        behind > self.connections as u64 && behind * 100 > self.messages
    }

    /// Server CPU nanoseconds per echoed message.
    pub fn server_ns_per_msg(&self) -> Option<f64> {
        let server = self.server?;
        (self.messages > 0).then(|| server.cpu.as_nanos() as f64 / self.messages as f64)
    }
}

fn per_second(amount: f64, elapsed: Duration) -> f64 {
    if elapsed.is_zero() {
        0.0
    } else {
        amount / elapsed.as_secs_f64()
    }
}

/// `1234567` → `1,234,567`, for counts a person reads.
pub fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

impl fmt::Display for BenchReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = if self.bulk {
            let limit = match self.in_flight {
                Some((InFlight::Unbounded, largest)) => format!(
                    ", unbounded in flight (a writer and a reader thread per connection; \
                     at most {} B were written and not yet echoed)",
                    thousands(largest)
                ),
                Some((choice, largest)) => format!(
                    ", at most {} B in flight{}",
                    thousands(largest),
                    if choice == InFlight::Auto {
                        " (auto: the send buffer)"
                    } else {
                        ""
                    }
                ),
                None => String::new(),
            };
            format!("bulk stream, {} B writes{limit}", self.size)
        } else {
            format!("{} B messages, depth {}", self.size, self.depth)
        };
        writeln!(
            f,
            "Benchmark of {} ({}): {} connection{}, {}{}",
            self.target,
            self.address,
            self.connections,
            if self.connections == 1 { "" } else { "s" },
            kind,
            self.rate
                .map(|r| format!(", fixed rate {r} msgs/s"))
                .unwrap_or_default()
        )?;
        writeln!(
            f,
            "Window:      {:.3} s after {:.3} s warm-up{}{}",
            self.elapsed.as_secs_f64(),
            self.warmup.as_secs_f64(),
            if self.ended_in_warmup {
                " (the run ended during the warm-up: nothing was measured)"
            } else {
                ""
            },
            if self.interrupted {
                " (stopped by Ctrl+C)"
            } else {
                ""
            }
        )?;
        writeln!(
            f,
            "Connections: {} connected, {} failed to connect, {} closed early, {} incomplete",
            self.connected, self.connect_errors, self.closed_early, self.incomplete
        )?;
        // In bulk a "message" is one --size write.
        let (unit, unit_rate) = if self.bulk {
            ("writes", "writes/s")
        } else {
            ("messages", "msgs/s")
        };
        writeln!(
            f,
            "Echoed:      {} {unit}, {} bytes, all verified ({} mismatches)",
            thousands(self.messages),
            thousands(self.bytes),
            self.mismatches
        )?;
        writeln!(
            f,
            "Throughput:  {} {unit_rate}, {}",
            thousands(self.msgs_per_s().round() as u64),
            throughput(self.mb_per_s() * 1e6, self.format)
        )?;
        if let Some(l) = &self.latency {
            writeln!(
                f,
                "Latency µs:  min {:.1}  p50 {:.1}  p90 {:.1}  p99 {:.1}  p99.9 {:.1}  max {:.1}  (mean {:.1})",
                l.min, l.p50, l.p90, l.p99, l.p999, l.max, l.mean
            )?;
            writeln!(f, "Measured to: {}", self.rtt_sources.text())?;
        }
        if let Some(l) = &self.send_lag {
            writeln!(
                f,
                "Send lag µs: p50 {:.1}  p99 {:.1}  max {:.1}  (the client's own lateness behind \
                 the schedule, included in the latency)",
                l.p50, l.p99, l.max
            )?;
        }
        if let Some(behind) = self.behind_schedule.filter(|&n| self.fell_behind(n)) {
            writeln!(
                f,
                "Behind:      {} messages fell due and were never sent: {} connection{} at depth {} \
                 could not carry {} msgs/s, and the latency above counts their wait \
                 (more --connections or --depth would, if the server can)",
                thousands(behind),
                self.connections,
                if self.connections == 1 { "" } else { "s" },
                self.depth,
                self.rate.unwrap_or_default()
            )?;
        }
        if let Some(server) = self.server {
            write!(
                f,
                "Server:      pid {}: {:.3} s CPU",
                server.pid,
                server.cpu.as_secs_f64()
            )?;
            if let Some(ns) = self.server_ns_per_msg() {
                write!(f, ", {ns:.0} ns per message")?;
            }
            writeln!(
                f,
                ", RSS {} KiB (peak {} KiB)",
                server.rss_kib, server.peak_rss_kib
            )?;
        }
        if let Some(note) = &self.server_note {
            writeln!(f, "Server:      {note}")?;
        }
        if let Some(e) = &self.error {
            writeln!(f, "Error:       {e}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thousands_separators() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1000), "1,000");
        assert_eq!(thousands(1234567), "1,234,567");
    }

    #[test]
    fn percentiles_come_from_the_histogram() {
        let mut h = Histogram::<u64>::new(3).unwrap();
        for us in 1..=1000u64 {
            h.record(us * 1000).unwrap();
        }
        let l = Latency::from_nanos(&h).unwrap();
        assert!((l.p50 - 500.0).abs() <= 1.0, "{l:?}");
        assert!((l.p99 - 990.0).abs() <= 1.0, "{l:?}");
        assert!((l.min - 1.0).abs() < 0.01 && (l.max - 1000.0).abs() <= 1.0);
        assert!(Latency::from_nanos(&Histogram::<u64>::new(3).unwrap()).is_none());
    }
}
