//! What the metrics endpoint reports: the counters the echo side does not
//! keep itself (closes by reason, histograms, TCP_INFO totals, HTTP
//! answers), and the rendering of a [`Snapshot`] as Prometheus text
//! (`/metrics`) and as JSON (`/stats.json`). Pure: the server collects the
//! snapshot, this module only counts and writes.

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::logic::echo::CloseReason;
use crate::logic::http::HttpCounts;
use crate::logic::json::JsonObject;
use crate::logic::stats::Stats;
use crate::os::tcp_info::{ms, TcpInfo};

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

/// Labels of the closed-connection counter, in [`Observed::closed`] order.
pub const CLOSE_REASONS: [&str; 5] = ["peer", "reset", "idle_timeout", "shutdown", "error"];

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

    fn render(&self, out: &mut String, name: &str, help: &str) {
        header(out, name, help, "histogram");
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
    /// Echo connections closed, by [`CLOSE_REASONS`].
    pub closed: [u64; 5],
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
            closed: [0; 5],
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
        let i = match reason {
            CloseReason::PeerClosed => 0,
            CloseReason::Reset => 1,
            CloseReason::IdleTimeout => 2,
            CloseReason::Shutdown => 3,
            CloseReason::Error(_) => 4,
        };
        self.closed[i] += 1;
        self.durations.observe(duration.as_secs_f64());
        self.conn_bytes.observe(received as f64);
        if let Some(tcp) = tcp {
            self.srtt.observe(f64::from(tcp.rtt_us) / 1e6);
        }
    }
}

/// Figures of the server process itself.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
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
    /// Its phase: `echoing`, `peer_done`, `draining`, `lingering`.
    pub state: &'static str,
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

fn header(out: &mut String, name: &str, help: &str, kind: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

fn single(out: &mut String, name: &str, help: &str, kind: &str, value: impl std::fmt::Display) {
    header(out, name, help, kind);
    let _ = writeln!(out, "{name} {value}");
}

/// Every metric name `/metrics` exports (histograms by their base name).
pub const METRIC_NAMES: &[&str] = &[
    "echo_connections_accepted_total",
    "echo_connections_active",
    "echo_connections_peak",
    "echo_connections_rejected_total",
    "echo_connections_closed_total",
    "echo_connections_zero_copy_total",
    "echo_bytes_received_total",
    "echo_bytes_sent_total",
    "echo_bytes_buffered",
    "echo_connection_duration_seconds",
    "echo_connection_received_bytes",
    "echo_tcp_srtt_seconds",
    "echo_tcp_retransmitted_segments_total",
    "echo_http_requests_total",
    "echo_http_connections_active",
    "echo_http_connections_rejected_total",
    "echo_log_lines_dropped_total",
    "process_resident_memory_bytes",
    "process_open_fds",
    "process_start_time_seconds",
    "process_cpu_seconds_total",
];

/// The Prometheus text exposition (format 0.0.4) of `snap`.
pub fn render_prometheus(snap: &Snapshot<'_>) -> String {
    let s = snap.stats;
    let o = snap.observed;
    let mut out = String::with_capacity(4096);
    single(
        &mut out,
        "echo_connections_accepted_total",
        "Echo connections accepted and served.",
        "counter",
        s.served,
    );
    single(
        &mut out,
        "echo_connections_active",
        "Echo connections open now.",
        "gauge",
        s.active,
    );
    single(
        &mut out,
        "echo_connections_peak",
        "Most echo connections open at once.",
        "gauge",
        s.peak,
    );
    header(
        &mut out,
        "echo_connections_rejected_total",
        "Connections closed at once, by reason (limit: over --max-connections).",
        "counter",
    );
    let _ = writeln!(
        out,
        "echo_connections_rejected_total{{reason=\"limit\"}} {}",
        s.rejected
    );
    header(
        &mut out,
        "echo_connections_closed_total",
        "Echo connections that ended, by reason.",
        "counter",
    );
    for (reason, count) in CLOSE_REASONS.iter().zip(o.closed) {
        let _ = writeln!(
            out,
            "echo_connections_closed_total{{reason=\"{reason}\"}} {count}"
        );
    }
    single(
        &mut out,
        "echo_connections_zero_copy_total",
        "Echo connections switched to the zero-copy path (splice through a kernel pipe) because their client streamed.",
        "counter",
        s.spliced,
    );
    single(
        &mut out,
        "echo_bytes_received_total",
        "Bytes read from echo clients.",
        "counter",
        s.bytes_in,
    );
    single(
        &mut out,
        "echo_bytes_sent_total",
        "Bytes echoed to clients.",
        "counter",
        s.bytes_out,
    );
    single(
        &mut out,
        "echo_bytes_buffered",
        "Bytes read but not yet echoed, over all connections.",
        "gauge",
        snap.buffered,
    );
    o.durations.render(
        &mut out,
        "echo_connection_duration_seconds",
        "How long closed echo connections were open.",
    );
    o.conn_bytes.render(
        &mut out,
        "echo_connection_received_bytes",
        "Bytes received per closed echo connection.",
    );
    o.srtt.render(
        &mut out,
        "echo_tcp_srtt_seconds",
        "Smoothed RTT (TCP_INFO) of each echo connection, read at close.",
    );
    single(
        &mut out,
        "echo_tcp_retransmitted_segments_total",
        "TCP segments retransmitted on echo connections (TCP_INFO, sampled).",
        "counter",
        o.retransmits,
    );
    header(
        &mut out,
        "echo_http_requests_total",
        "Requests answered by the metrics endpoint, by status code.",
        "counter",
    );
    for (status, count) in HttpCounts::STATUSES.iter().zip(o.http.by_status) {
        let _ = writeln!(
            out,
            "echo_http_requests_total{{code=\"{}\"}} {count}",
            status.code()
        );
    }
    single(
        &mut out,
        "echo_http_connections_active",
        "Metrics endpoint connections open now (not counted as echo connections).",
        "gauge",
        snap.http_active,
    );
    header(
        &mut out,
        "echo_http_connections_rejected_total",
        "Metrics endpoint connections over its limit, answered 503 and closed, by reason.",
        "counter",
    );
    let _ = writeln!(
        out,
        "echo_http_connections_rejected_total{{reason=\"limit\"}} {}",
        o.http_rejected
    );
    single(
        &mut out,
        "echo_log_lines_dropped_total",
        "Log lines lost because stdout did not take them (a reader not keeping up, a full disk, no reader).",
        "counter",
        snap.log_lines_dropped,
    );
    if let Some(p) = snap.process {
        single(
            &mut out,
            "process_resident_memory_bytes",
            "Resident memory size in bytes.",
            "gauge",
            p.resident_bytes,
        );
        single(
            &mut out,
            "process_open_fds",
            "Number of open file descriptors.",
            "gauge",
            p.open_fds,
        );
        single(
            &mut out,
            "process_cpu_seconds_total",
            "Total user and system CPU time spent in seconds.",
            "counter",
            p.cpu_seconds,
        );
    }
    single(
        &mut out,
        "process_start_time_seconds",
        "Start time of the process since unix epoch in seconds.",
        "gauge",
        unix_seconds(o.started),
    );
    out
}

fn unix_seconds(t: SystemTime) -> f64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// The `/stats.json` document of `snap`.
pub fn render_json(snap: &Snapshot<'_>) -> String {
    let s = snap.stats;
    let o = snap.observed;
    let now = SystemTime::now();
    let mut closed = JsonObject::new();
    for (reason, count) in CLOSE_REASONS.iter().zip(o.closed) {
        closed.uint(reason, count);
    }
    let mut conns = JsonObject::new();
    conns
        .uint("accepted", s.served)
        .uint("active", s.active as u64)
        .uint("peak", s.peak as u64)
        .uint("rejected", s.rejected)
        .uint("timed_out", s.timed_out)
        .uint("zero_copy", s.spliced)
        .object("closed", closed);
    let mut bytes = JsonObject::new();
    bytes
        .uint("received", s.bytes_in)
        .uint("sent", s.bytes_out)
        .uint("buffered", snap.buffered);
    let mut tcp = JsonObject::new();
    tcp.uint("retransmitted_segments", o.retransmits)
        .uint("srtt_samples", o.srtt.count());
    if o.srtt.count() > 0 {
        tcp.float(
            "srtt_mean_ms",
            round3(o.srtt.sum() / o.srtt.count() as f64 * 1000.0),
        );
    }
    let mut http = JsonObject::new();
    http.uint("active", snap.http_active as u64)
        .uint("accepted", o.http_accepted)
        .uint("rejected", o.http_rejected);
    let mut log = JsonObject::new();
    log.uint("dropped", snap.log_lines_dropped);
    let mut process = JsonObject::new();
    if let Some(p) = snap.process {
        process
            .uint("resident_bytes", p.resident_bytes)
            .uint("open_fds", p.open_fds)
            .float("cpu_seconds", p.cpu_seconds);
    }
    let list: Vec<JsonObject> = snap
        .connections
        .iter()
        .map(|c| {
            let mut obj = JsonObject::new();
            obj.str("peer", &c.peer.to_string())
                .float("age_s", round3(c.age.as_secs_f64()))
                .float("idle_s", round3(c.idle.as_secs_f64()))
                .uint("bytes_in", c.bytes_in)
                .uint("bytes_out", c.bytes_out)
                .uint("buffered", c.buffered as u64)
                .str("state", c.state)
                .bool("zero_copy", c.zero_copy);
            match &c.tcp {
                Some(t) => {
                    let mut tcp = JsonObject::new();
                    tcp.float("srtt_ms", ms(t.rtt_us))
                        .float("rttvar_ms", ms(t.rttvar_us))
                        .uint("retransmits", u64::from(t.total_retrans))
                        .uint("lost", u64::from(t.lost))
                        .uint("cwnd", u64::from(t.snd_cwnd))
                        .uint("mss", u64::from(t.snd_mss));
                    match t.min_rtt_us {
                        Some(v) => tcp.float("min_rtt_ms", ms(v)),
                        None => tcp.null("min_rtt_ms"),
                    };
                    match t.delivery_rate {
                        Some(v) => tcp.uint("delivery_rate_bps", v),
                        None => tcp.null("delivery_rate_bps"),
                    };
                    obj.object("tcp", tcp);
                }
                None => {
                    obj.null("tcp");
                }
            }
            obj
        })
        .collect();
    let mut doc = JsonObject::new();
    doc.str("version", env!("CARGO_PKG_VERSION"))
        .float("time_s", round3(unix_seconds(now)))
        .float(
            "uptime_s",
            round3(
                now.duration_since(o.started)
                    .map_or(0.0, |d| d.as_secs_f64()),
            ),
        )
        .object("connections", conns)
        .object("bytes", bytes)
        .object("tcp", tcp)
        .object("http", http)
        .object("log", log)
        .object("process", process)
        .uint("active_listed", snap.connections.len() as u64)
        .array("active_connections", list);
    doc.finish()
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
                state: "echoing",
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
        h.render(&mut out, "x", "help");
        assert!(out.contains("x_bucket{le=\"1\"} 2\n"), "{out}");
        assert!(out.contains("x_bucket{le=\"10\"} 3\n"));
        assert!(out.contains("x_bucket{le=\"+Inf\"} 4\n"));
        assert!(out.contains("x_sum 56.5\nx_count 4\n"));
    }

    // Every family has HELP and TYPE, and every exported name is listed in
    // METRIC_NAMES (the Grafana test relies on that list).
    #[test]
    fn every_family_is_declared_and_listed() {
        let stats = Stats::default();
        let mut observed = Observed::default();
        observed.closed(&CloseReason::Reset, Duration::from_secs(2), 100, None);
        let text = render_prometheus(&snapshot(&stats, &observed));
        let mut declared = Vec::new();
        for line in text.lines() {
            if let Some(rest) = line.strip_prefix("# TYPE ") {
                declared.push(rest.split(' ').next().unwrap().to_string());
            }
        }
        for name in &declared {
            assert!(text.contains(&format!("# HELP {name} ")), "{name}");
            assert!(METRIC_NAMES.contains(&name.as_str()), "{name} not listed");
        }
        assert_eq!(declared.len(), METRIC_NAMES.len());
        assert!(text.contains("echo_connections_closed_total{reason=\"reset\"} 1\n"));
        assert!(text.contains("echo_http_requests_total{code=\"421\"} 0\n"));
        assert!(text.contains("echo_http_connections_rejected_total{reason=\"limit\"} 0\n"));
        assert!(text.contains("\necho_log_lines_dropped_total 3\n"));
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
