//! What the metrics endpoint reports: the counters the echo side does not
//! keep itself (closes by reason, histograms, TCP_INFO totals, HTTP
//! answers), and the rendering of a [`Snapshot`] as Prometheus text
//! (`/metrics`) and as JSON (`/stats.json`). Pure: the server collects the
//! snapshot, this module only counts and writes.

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::ser::{SerializeMap, Serializer};
use serde::Serialize;

use crate::logic::echo::{CloseReason, Phase};
use crate::logic::http::conn::HttpCounts;
use crate::logic::json;
use crate::logic::stats::Stats;
use crate::os::tcp_info::TcpInfo;

/// `Content-Type` of the Prometheus text exposition format.
pub const PROMETHEUS_CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

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
/// Upper bounds of the smoothed-RTT buckets, seconds (100 µs to 1 s).
pub const SRTT_BUCKETS: &[f64] = &[0.0001, 0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0];

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

    /// Its samples: the cumulative buckets, the sum and the count.
    fn render(&self, out: &mut String, name: &str) {
        let mut cumulative = 0;
        for (i, count) in self.counts.iter().enumerate() {
            cumulative += count;
            match self.bounds.get(i) {
                Some(bound) => {
                    let _ = writeln!(out, "{name}_bucket{{le=\"{bound}\"}} {cumulative}");
                }
                None => {
                    let _ = writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {cumulative}");
                }
            }
        }
        let _ = writeln!(out, "{name}_sum {}", self.sum);
        let _ = writeln!(out, "{name}_count {}", self.count);
    }
}

/// Counters kept for the endpoint beside [`Stats`].
#[derive(Debug, Clone, PartialEq)]
pub struct Observed {
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
}

impl Default for Observed {
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
        }
    }
}

impl Observed {
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
}

impl Process {
    /// Reads this process's figures from `/proc`; `None` off Linux.
    pub fn read() -> Option<Self> {
        let sample = crate::os::procstat::sample(std::process::id()).ok()?;
        let open_fds = std::fs::read_dir("/proc/self/fd").ok()?.count() as u64;
        Some(Self {
            resident_bytes: sample.rss_kib * 1024,
            open_fds,
            cpu_seconds: sample.cpu.as_secs_f64(),
        })
    }
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
}

/// Everything one response reports, collected by the server.
#[derive(Debug)]
pub struct Snapshot<'a> {
    /// Echo-side counters.
    pub stats: &'a Stats,
    /// Endpoint counters.
    pub observed: &'a Observed,
    /// Bytes held in echo buffers right now.
    pub buffered: u64,
    /// HTTP connections open now.
    pub http_active: usize,
    /// Active connections listed (at most a bounded number).
    pub connections: Vec<ConnView>,
    /// Process figures, when readable.
    pub process: Option<Process>,
    /// Log lines lost on their way to stdout (see `log_writer`).
    pub log_lines_dropped: u64,
}

/// The Prometheus text exposition (format 0.0.4) of `snap`.
pub fn render_prometheus(snap: &Snapshot<'_>) -> String {
    let mut out = String::with_capacity(4096);
    for family in FAMILIES {
        let Some(value) = (family.value)(snap) else {
            continue;
        };
        let name = family.name;
        let _ = writeln!(out, "# HELP {name} {}", family.help);
        let _ = writeln!(out, "# TYPE {name} {}", family.kind);
        match value {
            Value::Int(v) => {
                let _ = writeln!(out, "{name} {v}");
            }
            Value::Float(v) => {
                let _ = writeln!(out, "{name} {v}");
            }
            Value::Labelled(label, samples) => {
                for (key, v) in samples {
                    let _ = writeln!(out, "{name}{{{label}=\"{key}\"}} {v}");
                }
            }
            Value::Histogram(h) => h.render(&mut out, name),
        }
    }
    out
}

/// One metric family of `/metrics`; [`FAMILIES`] lists them in the order
/// they are written.
struct Family {
    name: &'static str,
    help: &'static str,
    kind: &'static str,
    /// Its figures in a snapshot; `None` leaves the family out.
    value: for<'s> fn(&'s Snapshot<'_>) -> Option<Value<'s>>,
}

/// A family's figures.
enum Value<'s> {
    Int(u64),
    Float(f64),
    /// One sample per value of the label: `name{label="value"} count`.
    Labelled(&'static str, Vec<(String, u64)>),
    Histogram(&'s Histogram),
}

const COUNTER: &str = "counter";
const GAUGE: &str = "gauge";
const HISTOGRAM: &str = "histogram";

fn int(v: u64) -> Option<Value<'static>> {
    Some(Value::Int(v))
}

fn limit(rejected: u64) -> Option<Value<'static>> {
    Some(Value::Labelled("reason", vec![("limit".into(), rejected)]))
}

/// Every family `/metrics` exports, in order. The process figures are left
/// out where `/proc` cannot be read, except the start time, which is ours.
const FAMILIES: &[Family] = &[
    Family {
        name: "echo_connections_accepted_total",
        help: "Echo connections accepted and served.",
        kind: COUNTER,
        value: |s| int(s.stats.served),
    },
    Family {
        name: "echo_connections_active",
        help: "Echo connections open now.",
        kind: GAUGE,
        value: |s| int(s.stats.active as u64),
    },
    Family {
        name: "echo_connections_peak",
        help: "Most echo connections open at once.",
        kind: GAUGE,
        value: |s| int(s.stats.peak as u64),
    },
    Family {
        name: "echo_connections_rejected_total",
        help: "Connections closed at once, by reason (limit: over --max-connections).",
        kind: COUNTER,
        value: |s| limit(s.stats.rejected),
    },
    Family {
        name: "echo_connections_closed_total",
        help: "Echo connections that ended, by reason.",
        kind: COUNTER,
        value: |s| {
            let labels = CloseReason::LABELS.iter().map(|l| l.to_string());
            Some(Value::Labelled("reason", labels.zip(s.observed.closed).collect()))
        },
    },
    Family {
        name: "echo_connections_zero_copy_total",
        help: "Echo connections switched to the zero-copy path (splice through a kernel pipe) because their client streamed.",
        kind: COUNTER,
        value: |s| int(s.stats.spliced),
    },
    Family {
        name: "echo_bytes_received_total",
        help: "Bytes read from echo clients.",
        kind: COUNTER,
        value: |s| int(s.stats.bytes_in),
    },
    Family {
        name: "echo_bytes_sent_total",
        help: "Bytes echoed to clients.",
        kind: COUNTER,
        value: |s| int(s.stats.bytes_out),
    },
    Family {
        name: "echo_bytes_buffered",
        help: "Bytes read but not yet echoed, over all connections.",
        kind: GAUGE,
        value: |s| int(s.buffered),
    },
    Family {
        name: "echo_connection_duration_seconds",
        help: "How long closed echo connections were open.",
        kind: HISTOGRAM,
        value: |s| Some(Value::Histogram(&s.observed.durations)),
    },
    Family {
        name: "echo_connection_received_bytes",
        help: "Bytes received per closed echo connection.",
        kind: HISTOGRAM,
        value: |s| Some(Value::Histogram(&s.observed.conn_bytes)),
    },
    Family {
        name: "echo_tcp_srtt_seconds",
        help: "Smoothed RTT (TCP_INFO) of each echo connection, read at close.",
        kind: HISTOGRAM,
        value: |s| Some(Value::Histogram(&s.observed.srtt)),
    },
    Family {
        name: "echo_tcp_retransmitted_segments_total",
        help: "TCP segments retransmitted on echo connections (TCP_INFO, sampled).",
        kind: COUNTER,
        value: |s| int(s.observed.retransmits),
    },
    Family {
        name: "echo_http_requests_total",
        help: "Requests answered by the metrics endpoint, by status code.",
        kind: COUNTER,
        value: |s| {
            let codes = HttpCounts::STATUSES.iter().map(|st| st.code().to_string());
            Some(Value::Labelled("code", codes.zip(s.observed.http.by_status).collect()))
        },
    },
    Family {
        name: "echo_http_connections_active",
        help: "Metrics endpoint connections open now (not counted as echo connections).",
        kind: GAUGE,
        value: |s| int(s.http_active as u64),
    },
    Family {
        name: "echo_http_connections_rejected_total",
        help: "Metrics endpoint connections over its limit, answered 503 and closed, by reason.",
        kind: COUNTER,
        value: |s| limit(s.observed.http_rejected),
    },
    Family {
        name: "echo_log_lines_dropped_total",
        help: "Log lines lost because stdout did not take them (a reader not keeping up, a full disk, no reader).",
        kind: COUNTER,
        value: |s| int(s.log_lines_dropped),
    },
    Family {
        name: "process_resident_memory_bytes",
        help: "Resident memory size in bytes.",
        kind: GAUGE,
        value: |s| int(s.process?.resident_bytes),
    },
    Family {
        name: "process_open_fds",
        help: "Number of open file descriptors.",
        kind: GAUGE,
        value: |s| int(s.process?.open_fds),
    },
    Family {
        name: "process_cpu_seconds_total",
        help: "Total user and system CPU time spent in seconds.",
        kind: COUNTER,
        value: |s| Some(Value::Float(s.process?.cpu_seconds)),
    },
    Family {
        name: "process_start_time_seconds",
        help: "Start time of the process since unix epoch in seconds.",
        kind: GAUGE,
        value: |s| Some(Value::Float(unix_seconds(s.observed.started))),
    },
];

fn unix_seconds(t: SystemTime) -> f64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

fn ms(us: u32) -> f64 {
    f64::from(us) / 1000.0
}

/// The `/stats.json` document of `snap`.
pub fn render_json(snap: &Snapshot<'_>) -> String {
    json::to_string(&StatsDocument::new(snap, SystemTime::now()))
}

/// `/stats.json`: the totals, then the connections open now.
#[derive(Serialize)]
struct StatsDocument {
    version: &'static str,
    time_s: f64,
    uptime_s: f64,
    connections: ConnectionTotals,
    bytes: ByteTotals,
    tcp: TcpTotals,
    http: HttpTotals,
    log: LogTotals,
    /// `{}` off Linux: the dashboard reads its members from an object.
    #[serde(serialize_with = "empty_if_none")]
    process: Option<Process>,
    active_listed: usize,
    active_connections: Vec<ListedConnection>,
}

#[derive(Serialize)]
struct ConnectionTotals {
    accepted: u64,
    active: usize,
    peak: usize,
    rejected: u64,
    timed_out: u64,
    zero_copy: u64,
    #[serde(serialize_with = "by_reason")]
    closed: [u64; CloseReason::LABELS.len()],
}

#[derive(Serialize)]
struct ByteTotals {
    received: u64,
    sent: u64,
    buffered: u64,
}

#[derive(Serialize)]
struct TcpTotals {
    retransmitted_segments: u64,
    srtt_samples: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    srtt_mean_ms: Option<f64>,
}

#[derive(Serialize)]
struct HttpTotals {
    active: usize,
    accepted: u64,
    rejected: u64,
}

#[derive(Serialize)]
struct LogTotals {
    dropped: u64,
}

/// One entry of `active_connections`.
#[derive(Serialize)]
struct ListedConnection {
    peer: SocketAddr,
    age_s: f64,
    idle_s: f64,
    bytes_in: u64,
    bytes_out: u64,
    buffered: usize,
    state: &'static str,
    zero_copy: bool,
    tcp: Option<ListedTcp>,
}

/// A listed connection's last TCP_INFO reading.
#[derive(Serialize)]
struct ListedTcp {
    srtt_ms: f64,
    rttvar_ms: f64,
    retransmits: u32,
    lost: u32,
    cwnd: u32,
    mss: u32,
    min_rtt_ms: Option<f64>,
    delivery_rate_bps: Option<u64>,
}

impl StatsDocument {
    fn new(snap: &Snapshot<'_>, now: SystemTime) -> Self {
        let s = snap.stats;
        let o = snap.observed;
        let srtt_samples = o.srtt.count();
        Self {
            version: env!("CARGO_PKG_VERSION"),
            time_s: round3(unix_seconds(now)),
            uptime_s: round3(
                now.duration_since(o.started)
                    .map_or(0.0, |d| d.as_secs_f64()),
            ),
            connections: ConnectionTotals {
                accepted: s.served,
                active: s.active,
                peak: s.peak,
                rejected: s.rejected,
                timed_out: s.timed_out,
                zero_copy: s.spliced,
                closed: o.closed,
            },
            bytes: ByteTotals {
                received: s.bytes_in,
                sent: s.bytes_out,
                buffered: snap.buffered,
            },
            tcp: TcpTotals {
                retransmitted_segments: o.retransmits,
                srtt_samples,
                srtt_mean_ms: (srtt_samples > 0)
                    .then(|| round3(o.srtt.sum() / srtt_samples as f64 * 1000.0)),
            },
            http: HttpTotals {
                active: snap.http_active,
                accepted: o.http_accepted,
                rejected: o.http_rejected,
            },
            log: LogTotals {
                dropped: snap.log_lines_dropped,
            },
            process: snap.process,
            active_listed: snap.connections.len(),
            active_connections: snap
                .connections
                .iter()
                .map(ListedConnection::from)
                .collect(),
        }
    }
}

impl From<&ConnView> for ListedConnection {
    fn from(c: &ConnView) -> Self {
        Self {
            peer: c.peer,
            age_s: round3(c.age.as_secs_f64()),
            idle_s: round3(c.idle.as_secs_f64()),
            bytes_in: c.bytes_in,
            bytes_out: c.bytes_out,
            buffered: c.buffered,
            state: c.state.name(),
            zero_copy: c.zero_copy,
            tcp: c.tcp.as_ref().map(|t| ListedTcp {
                srtt_ms: ms(t.rtt_us),
                rttvar_ms: ms(t.rttvar_us),
                retransmits: t.total_retrans,
                lost: t.lost,
                cwnd: t.snd_cwnd,
                mss: t.snd_mss,
                min_rtt_ms: t.min_rtt_us.map(ms),
                delivery_rate_bps: t.delivery_rate,
            }),
        }
    }
}

fn empty_if_none<S: Serializer>(process: &Option<Process>, out: S) -> Result<S::Ok, S::Error> {
    match process {
        Some(p) => p.serialize(out),
        None => out.serialize_map(Some(0))?.end(),
    }
}

fn by_reason<S: Serializer>(closed: &[u64], out: S) -> Result<S::Ok, S::Error> {
    out.collect_map(CloseReason::LABELS.iter().zip(closed))
}

fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn snapshot<'a>(stats: &'a Stats, observed: &'a Observed) -> Snapshot<'a> {
        Snapshot {
            stats,
            observed,
            buffered: 5,
            http_active: 1,
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
            }],
            log_lines_dropped: 3,
            process: Some(Process::default()),
        }
    }

    // Buckets are cumulative and end with +Inf equal to the count.
    #[test]
    fn histogram_is_cumulative() {
        let mut h = Histogram::new(&[1.0, 10.0]);
        for v in [0.5, 1.0, 5.0, 50.0] {
            h.observe(v);
        }
        let mut out = String::new();
        h.render(&mut out, "x");
        assert!(out.contains("x_bucket{le=\"1\"} 2\n"), "{out}");
        assert!(out.contains("x_bucket{le=\"10\"} 3\n"));
        assert!(out.contains("x_bucket{le=\"+Inf\"} 4\n"));
        assert!(out.contains("x_sum 56.5\nx_count 4\n"));
    }

    // Every family has HELP and TYPE, in the table's order; without /proc
    // the process figures but the start time are left out.
    #[test]
    fn every_family_is_declared_once_in_order() {
        let stats = Stats::default();
        let mut observed = Observed::default();
        observed.closed(&CloseReason::Reset, Duration::from_secs(2), 100, None);
        let mut snap = snapshot(&stats, &observed);
        let declared = |text: &str| -> Vec<String> {
            let mut names = Vec::new();
            for line in text.lines() {
                if let Some(rest) = line.strip_prefix("# TYPE ") {
                    let name = rest.split(' ').next().unwrap().to_string();
                    assert!(text.contains(&format!("# HELP {name} ")), "{name}");
                    names.push(name);
                }
            }
            names
        };
        let all: Vec<&str> = FAMILIES.iter().map(|f| f.name).collect();
        assert_eq!(declared(&render_prometheus(&snap)), all);
        snap.process = None;
        let text = render_prometheus(&snap);
        assert_eq!(declared(&text).len(), all.len() - 3);
        assert!(text.contains("\nprocess_start_time_seconds "));
        let text = render_prometheus(&snapshot(&stats, &observed));
        assert!(text.contains("echo_connections_closed_total{reason=\"reset\"} 1\n"));
        assert!(text.contains("echo_http_requests_total{code=\"421\"} 0\n"));
        assert!(text.contains("echo_http_connections_rejected_total{reason=\"limit\"} 0\n"));
        assert!(text.contains("\necho_log_lines_dropped_total 3\n"));
    }

    // Each close reason counts under a label of its own.
    #[test]
    fn close_reasons_count_apart() {
        let mut observed = Observed::default();
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

    // The JSON document carries the connection list.
    #[test]
    fn json_lists_connections() {
        let stats = Stats::default();
        let observed = Observed::default();
        let doc = render_json(&snapshot(&stats, &observed));
        assert!(
            doc.contains(r#""peer":"127.0.0.1:4000","age_s":1.5"#),
            "{doc}"
        );
        assert!(doc.contains(r#""active_listed":1"#));
    }
}
