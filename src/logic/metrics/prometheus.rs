//! `/metrics`: the Prometheus text exposition (format 0.0.4), written from
//! one table of metric families.

use std::fmt::Write as _;

use super::{unix_seconds, Histogram, Snapshot};
use crate::logic::echo::CloseReason;
use crate::logic::http::HttpCounts;
use crate::logic::udp::{UdpCounts, UdpDrop};

/// `Content-Type` of the Prometheus text exposition format.
pub const PROMETHEUS_CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

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

/// A UDP figure, when `--udp` is on (the families are left out otherwise).
fn udp(s: &Snapshot<'_>, figure: fn(&UdpCounts) -> u64) -> Option<Value<'static>> {
    s.stats.udp.as_ref().map(|u| Value::Int(figure(u)))
}

fn limit(rejected: u64) -> Option<Value<'static>> {
    Some(Value::Labelled("reason", vec![("limit".into(), rejected)]))
}

/// Every family `/metrics` exports, in order. The process figures are left
/// out where `/proc` cannot be read, except the start time, which is ours.
const FAMILIES: &[Family] = &[
    Family {
        name: "echo_server_build_info",
        help: "The server's version, as its label; always 1.",
        kind: GAUGE,
        value: |_| {
            let version = env!("CARGO_PKG_VERSION").to_string();
            Some(Value::Labelled("version", vec![(version, 1)]))
        },
    },
    Family {
        name: "echo_server_mode",
        help: "What the server does with the bytes (--mode), as its label; always 1.",
        kind: GAUGE,
        value: |s| Some(Value::Labelled("mode", vec![(s.mode.to_string(), 1)])),
    },
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
        help: "Connections closed at once, by reason (limit: over --max-connections; not_allowed: --allow; per_source_limit: --max-per-source; proxy_header, proxy_timeout: --proxy-protocol).",
        kind: COUNTER,
        value: |s| {
            if s.rejected_by.is_empty() {
                return limit(s.stats.rejected);
            }
            let labels = s.rejected_by.iter().map(|&(l, n)| (l.to_string(), n));
            Some(Value::Labelled("reason", labels.collect()))
        },
    },
    Family {
        name: "echo_connections_accepted_by_port_total",
        help: "Echo connections accepted and served, by local port (with several listeners).",
        kind: COUNTER,
        value: |s| {
            let ports = s.ports_accepted.iter().map(|&(p, n)| (p.to_string(), n));
            (!s.ports_accepted.is_empty()).then(|| Value::Labelled("port", ports.collect()))
        },
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
        name: "echo_udp_datagrams_received_total",
        help: "UDP datagrams received (--udp).",
        kind: COUNTER,
        value: |s| udp(s, |u| u.datagrams_in),
    },
    Family {
        name: "echo_udp_datagrams_sent_total",
        help: "UDP datagrams echoed (--udp).",
        kind: COUNTER,
        value: |s| udp(s, |u| u.datagrams_out),
    },
    Family {
        name: "echo_udp_bytes_received_total",
        help: "Bytes of UDP datagrams received (--udp).",
        kind: COUNTER,
        value: |s| udp(s, |u| u.bytes_in),
    },
    Family {
        name: "echo_udp_bytes_sent_total",
        help: "Bytes of UDP datagrams echoed (--udp).",
        kind: COUNTER,
        value: |s| udp(s, |u| u.bytes_out),
    },
    Family {
        name: "echo_udp_datagrams_dropped_total",
        help: "UDP datagrams not echoed, by reason (rate_limit: over --udp-rate or --udp-bytes for their source; not_allowed: source not in --allow; send_blocked: send buffer full; send_failed: the kernel refused the reply).",
        kind: COUNTER,
        value: |s| {
            let u = s.stats.udp.as_ref()?;
            let labels = UdpDrop::LABELS.iter().map(|l| l.to_string());
            Some(Value::Labelled("reason", labels.zip(u.dropped).collect()))
        },
    },
    Family {
        name: "echo_udp_sources_tracked",
        help: "Source addresses whose UDP rate is tracked now (a bounded table).",
        kind: GAUGE,
        value: |s| udp(s, |u| u.sources as u64),
    },
    Family {
        name: "echo_udp_sources_evicted_total",
        help: "Sources forgotten to make room in that table (many sources: a spoofed flood, or a busy service).",
        kind: COUNTER,
        value: |s| udp(s, |u| u.sources_evicted),
    },
    Family {
        name: "echo_server_tls_handshakes_total",
        help: "TLS handshakes by result (ok; failed: not TLS or a protocol error; client_cert: mutual TLS refused; timeout: --handshake-timeout; closed: the client left first).",
        kind: COUNTER,
        value: |s| Some(Value::Labelled("result", s.observed.tls_handshakes.labelled())),
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
        name: "process_max_fds",
        help: "Maximum number of open file descriptors.",
        kind: GAUGE,
        value: |s| int(s.process?.max_fds?),
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

impl Histogram {
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

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::logic::metrics::tests::snapshot;
    use crate::logic::metrics::{EndpointCounters, Process};
    use crate::logic::stats::Totals;

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
        let mut stats = Totals {
            udp: Some(UdpCounts::default()),
            ..Totals::default()
        };
        let mut observed = EndpointCounters::default();
        observed.closed(&CloseReason::Reset, Duration::from_secs(2), 100, None);
        let mut snap = snapshot(&stats, &observed);
        let text = render_prometheus(&snap);
        // max_fds unknown: its family is left out, the others stay.
        assert!(!text.contains("process_max_fds"), "{text}");
        snap.process = Some(Process {
            max_fds: Some(1024),
            ..Process::default()
        });
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
        assert_eq!(declared(&text).len(), all.len() - 4);
        assert!(text.contains("\nprocess_start_time_seconds "));
        let text = render_prometheus(&snapshot(&stats, &observed));
        assert!(text.contains("echo_connections_closed_total{reason=\"reset\"} 1\n"));
        assert!(text.contains("echo_connections_rejected_total{reason=\"not_allowed\"} 4\n"));
        assert!(text.contains("echo_connections_accepted_by_port_total{port=\"8443\"} 1\n"));
        assert!(text.contains("echo_http_requests_total{code=\"421\"} 0\n"));
        assert!(text.contains("echo_http_connections_rejected_total{reason=\"limit\"} 0\n"));
        assert!(text.contains("\necho_log_lines_dropped_total 3\n"));
        assert!(text.contains("\necho_server_mode{mode=\"framed\"} 1\n"));
        let version = env!("CARGO_PKG_VERSION");
        assert!(text.starts_with("# HELP echo_server_build_info "));
        assert!(text.contains(&format!(
            "\necho_server_build_info{{version=\"{version}\"}} 1\n"
        )));
        // The UDP families, with --udp only.
        let udp = stats.udp.as_mut().unwrap();
        udp.received(64);
        udp.drop(UdpDrop::RateLimit);
        let text = render_prometheus(&snapshot(&stats, &observed));
        assert!(
            text.contains("\necho_udp_datagrams_received_total 1\n"),
            "{text}"
        );
        assert!(text.contains("\necho_udp_bytes_received_total 64\n"));
        assert!(text.contains("echo_udp_datagrams_dropped_total{reason=\"rate_limit\"} 1\n"));
        assert!(text.contains("echo_udp_datagrams_dropped_total{reason=\"send_blocked\"} 0\n"));
        stats.udp = None;
        let text = render_prometheus(&snapshot(&stats, &observed));
        // The seven UDP families go, and max_fds (unknown in this snapshot).
        assert_eq!(declared(&text).len(), all.len() - 8);
        assert!(!text.contains("echo_udp"));
    }
}
