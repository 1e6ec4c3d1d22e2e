//! A run's settings, as the command line checked them.

use std::io::{self, IsTerminal};
use std::time::Duration;

use super::in_flight::InFlight;
use super::interval::IntervalOutput;
use super::rate::RateFormat;
use crate::client::cli::BenchArgs;

/// When the sending stops.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum StopAfter {
    /// After this long past the warm-up.
    Duration(Duration),
    /// After this many messages (warm-up included) have been sent.
    Requests(u64),
}

/// A benchmark run's settings, checked by the command line.
#[derive(Debug, Clone)]
pub struct BenchConfig {
    /// The address as the user wrote it, for the report.
    pub target: String,
    /// Connections to open.
    pub connections: usize,
    /// Message size (bulk: write size).
    pub size: usize,
    /// Messages in flight per connection.
    pub depth: usize,
    /// When to stop sending.
    pub stop: StopAfter,
    /// Time after start during which nothing is counted.
    pub warmup: Duration,
    /// Fixed total rate in messages per second (open loop).
    pub rate: Option<f64>,
    /// Stream continuously instead of sending messages.
    pub bulk: bool,
    /// Bulk: how many bytes each connection may have unechoed.
    pub in_flight: InFlight,
    /// Longest wait for a connect, and for the last echoes at the end.
    pub timeout: Duration,
    /// Process to report CPU time and memory of (the server, on this host).
    pub server_pid: Option<u32>,
    /// Print progress to stderr once a second.
    pub progress: bool,
    /// `-i`: the window's intervals, how long and where they go.
    pub intervals: Option<(Duration, IntervalOutput)>,
    /// How throughput is written in text.
    pub format: RateFormat,
    /// `--tls`: every connection speaks TLS with these settings.
    pub tls: Option<crate::client::tls::TlsClient>,
    /// Time echoes to the kernel's receive timestamps where it gives them
    /// (off with `--rtt-clock`).
    pub rx_stamps: bool,
}

impl BenchConfig {
    /// Whether a live progress line makes sense: a terminal on stderr, and
    /// a run longer than a couple of seconds.
    pub fn wants_progress(&self, quiet: bool) -> bool {
        let long = match self.stop {
            StopAfter::Duration(d) => d + self.warmup > Duration::from_secs(2),
            StopAfter::Requests(_) => true,
        };
        !quiet && long && io::stderr().is_terminal()
    }
}

/// `-i`'s period and where its intervals go; `--json-stream` reports
/// every second unless `-i` says otherwise.
pub fn interval_setting(args: &BenchArgs) -> Option<(Duration, IntervalOutput)> {
    let output = if args.json_stream {
        IntervalOutput::Stream
    } else if args.json {
        IntervalOutput::Report
    } else {
        IntervalOutput::Text(args.format)
    };
    let period = args
        .interval
        .or(args.json_stream.then_some(Duration::from_secs(1)))?;
    Some((period, output))
}
