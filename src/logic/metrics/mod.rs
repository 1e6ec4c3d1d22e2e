//! What the metrics endpoint reports: the counters the echo side does not
//! keep itself (closes by reason, histograms, TCP_INFO totals, HTTP
//! answers) and the [`Snapshot`] a response is written from, as Prometheus
//! text (`/metrics`, prometheus.rs) or JSON (`/stats.json`, stats_json.rs).
//! Pure: the server collects the snapshot, this module only counts and
//! writes.

use std::net::SocketAddr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::Serialize;

use crate::logic::echo::{CloseReason, Phase};
use crate::logic::http::HttpCounts;
use crate::logic::stats::Totals;
use crate::logic::tcp_info::TcpInfo;

mod history;
mod prometheus;
mod stats_json;
pub mod tls;

pub use history::{History, HistorySeries, Rates};
pub use prometheus::{render_prometheus, PROMETHEUS_CONTENT_TYPE};
pub use stats_json::render_json;

/// Upper bounds of the connection-duration buckets, seconds.
pub const DURATION_BUCKETS: &[f64] = &[0.001, 0.01, 0.1, 1.0, 10.0, 60.0, 300.0, 1800.0, 3600.0];
/// Upper bounds of the bytes-per-connection buckets (bytes received).
pub const BYTES_BUCKETS: &[f64] = &[
    0.0,
    64.0,
    1024.0,
    16384.0,
    262_144.0,
    1_048_576.0,
    16_777_216.0,
    268_435_456.0,
    4_294_967_296.0,
];
/// Upper bounds of the smoothed-RTT buckets, seconds: from 10 µs, so that
/// loopback and LAN connections spread over several buckets, to 1 s.
pub const SRTT_BUCKETS: &[f64] = &[
    0.000_01, 0.000_025, 0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025,
    0.05, 0.1, 0.25, 0.5, 1.0,
];

/// A Prometheus histogram with fixed buckets.
#[derive(Debug, Clone, PartialEq)]
pub struct Histogram {
    bounds: &'static [f64],
    /// Observations per bucket (not cumulative); the last is `+Inf`.
    counts: Vec<u64>,
    sum: f64,
    count: u64,
}

impl Histogram {
    /// An empty histogram over `bounds` (ascending upper bounds).
    pub fn new(bounds: &'static [f64]) -> Self {
        Self {
            bounds,
            counts: vec![0; bounds.len() + 1],
            sum: 0.0,
            count: 0,
        }
    }

    /// Records one value.
    pub fn observe(&mut self, value: f64) {
        let i = self
            .bounds
            .iter()
            .position(|&b| value <= b)
            .unwrap_or(self.bounds.len());
        self.counts[i] += 1;
        self.sum += value;
        self.count += 1;
    }

    /// Observations so far.
    pub fn count(&self) -> u64 {
        self.count
    }

    /// Sum of the observed values.
    pub fn sum(&self) -> f64 {
        self.sum
    }
}

/// The counters only the endpoint reports, kept beside the [`Totals`]
/// that the log reports too.
#[derive(Debug, Clone, PartialEq)]
pub struct EndpointCounters {
    /// Echo connections closed, by [`CloseReason::index`].
    pub closed: [u64; CloseReason::LABELS.len()],
    /// How long closed connections were open.
    pub durations: Histogram,
    /// Bytes each closed connection sent us.
    pub conn_bytes: Histogram,
    /// Smoothed RTT of each connection, read at close.
    pub srtt: Histogram,
    /// Segments retransmitted, summed over all connections (sampled).
    pub retransmits: u64,
    /// HTTP answers by status.
    pub http: HttpCounts,
    /// HTTP connections accepted.
    pub http_accepted: u64,
    /// HTTP connections over the endpoint's limit, answered `503`.
    pub http_rejected: u64,
    /// When the server started.
    pub started: SystemTime,
    /// TLS handshakes by result.
    pub tls_handshakes: tls::HandshakeCounts,
}

impl Default for EndpointCounters {
    fn default() -> Self {
        Self {
            closed: [0; CloseReason::LABELS.len()],
            durations: Histogram::new(DURATION_BUCKETS),
            conn_bytes: Histogram::new(BYTES_BUCKETS),
            srtt: Histogram::new(SRTT_BUCKETS),
            retransmits: 0,
            http: HttpCounts::default(),
            http_accepted: 0,
            http_rejected: 0,
            started: SystemTime::now(),
            tls_handshakes: tls::HandshakeCounts::default(),
        }
    }
}

impl EndpointCounters {
    /// Records an echo connection that ended.
    pub fn closed(
        &mut self,
        reason: &CloseReason,
        duration: Duration,
        received: u64,
        tcp: Option<&TcpInfo>,
    ) {
        self.closed[reason.index()] += 1;
        self.durations.observe(duration.as_secs_f64());
        self.conn_bytes.observe(received as f64);
        if let Some(tcp) = tcp {
            self.srtt.observe(f64::from(tcp.rtt_us) / 1e6);
        }
    }
}

/// Figures of the server process itself, named as `/stats.json` writes them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Process {
    /// Resident memory, bytes.
    pub resident_bytes: u64,
    /// Open file descriptors.
    pub open_fds: u64,
    /// CPU time used, seconds.
    pub cpu_seconds: f64,
    /// The open-files limit (soft RLIMIT_NOFILE), when readable.
    pub max_fds: Option<u64>,
}

/// One active echo connection as the endpoint shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct ConnView {
    /// The client.
    pub peer: SocketAddr,
    /// Time since it was accepted.
    pub age: Duration,
    /// Time since a byte last moved.
    pub idle: Duration,
    /// Bytes received from it.
    pub bytes_in: u64,
    /// Bytes echoed to it.
    pub bytes_out: u64,
    /// Bytes read but not yet echoed.
    pub buffered: usize,
    /// Its phase.
    pub state: Phase,
    /// True once it echoes through a kernel pipe (zero-copy).
    pub zero_copy: bool,
    /// The last TCP_INFO reading, if any.
    pub tcp: Option<TcpInfo>,
    /// Bytes per second in and out over the last history step, once the
    /// connection was seen at two steps.
    pub rates: Option<(f64, f64)>,
    /// What it negotiated, for a TLS connection.
    pub tls: Option<tls::TlsView>,
}

/// Everything one response reports, collected by the server.
#[derive(Debug)]
pub struct Snapshot<'a> {
    /// Echo-side counters.
    pub stats: &'a Totals,
    /// Endpoint counters.
    pub observed: &'a EndpointCounters,
    /// Bytes held in echo buffers right now.
    pub buffered: u64,
    /// HTTP connections open now.
    pub http_active: usize,
    /// What the server does with the bytes (`--mode`).
    pub mode: &'static str,
    /// Connections closed at once, by reason label; empty: all are
    /// counted in `stats.rejected` as over the connection limit.
    pub rejected_by: Vec<(&'static str, u64)>,
    /// Connections served per local port, with several listeners (one
    /// figure per listener at most, so bounded by the listener bound).
    pub ports_accepted: Vec<(u16, u64)>,
    /// Active connections listed (at most a bounded number).
    pub connections: Vec<ConnView>,
    /// Process figures, when readable.
    pub process: Option<Process>,
    /// Log lines lost on their way to stdout (see `log_writer`).
    pub log_lines_dropped: u64,
    /// The totals of the last minutes (charted by the dashboard).
    pub history: &'a History,
}

fn unix_seconds(t: SystemTime) -> f64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(super) fn snapshot<'a>(stats: &'a Totals, observed: &'a EndpointCounters) -> Snapshot<'a> {
        static HISTORY: History = History::new();
        Snapshot {
            stats,
            observed,
            buffered: 5,
            http_active: 1,
            mode: "framed",
            rejected_by: vec![("limit", 0), ("not_allowed", 4)],
            ports_accepted: vec![(7000, 2), (8443, 1)],
            connections: vec![ConnView {
                peer: "127.0.0.1:4000".parse().unwrap(),
                age: Duration::from_millis(1500),
                idle: Duration::from_millis(20),
                bytes_in: 10,
                bytes_out: 5,
                buffered: 5,
                state: Phase::Echoing,
                zero_copy: true,
                tcp: Some(TcpInfo::default()),
                rates: Some((1000.0, 500.0)),
                tls: None,
            }],
            log_lines_dropped: 3,
            process: Some(Process::default()),
            history: &HISTORY,
        }
    }

    // Each close reason counts under a label of its own.
    #[test]
    fn close_reasons_count_apart() {
        let mut observed = EndpointCounters::default();
        let reasons = [
            CloseReason::PeerClosed,
            CloseReason::Reset,
            CloseReason::IdleTimeout,
            CloseReason::Shutdown,
            CloseReason::Error("x".into()),
        ];
        for (n, reason) in reasons.iter().enumerate() {
            for _ in 0..=n {
                observed.closed(reason, Duration::ZERO, 0, None);
            }
        }
        assert_eq!(observed.closed, [1, 2, 3, 4, 5]);
    }
}
