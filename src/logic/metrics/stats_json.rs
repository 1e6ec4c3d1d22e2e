//! `/stats.json`: the same snapshot as one JSON document, its schema the
//! types below.

use std::net::SocketAddr;
use std::time::SystemTime;

use serde::ser::{SerializeMap, Serializer};
use serde::Serialize;

use super::tls::{HandshakeResult, TlsView};
use super::{unix_seconds, ConnView, Process, Snapshot};
use crate::logic::echo::CloseReason;
use crate::logic::json;
use crate::logic::tcp_info::ms;

/// The `/stats.json` document of `snap`.
pub fn render_json(snap: &Snapshot<'_>) -> String {
    json::to_string(&StatsDocument::new(snap, SystemTime::now()))
}

/// `/stats.json`: the totals, then the connections open now.
#[derive(Serialize)]
struct StatsDocument {
    version: &'static str,
    /// `--mode`: echo, upper, discard, chargen or framed.
    mode: &'static str,
    time_s: f64,
    uptime_s: f64,
    connections: ConnectionTotals,
    bytes: ByteTotals,
    tcp: TcpTotals,
    http: HttpTotals,
    /// TLS handshakes by result (all zero without TLS).
    #[serde(serialize_with = "by_result")]
    tls_handshakes: [u64; HandshakeResult::LABELS.len()],
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
    /// TLS connections only: version, suite and SNI.
    #[serde(skip_serializing_if = "Option::is_none")]
    tls: Option<TlsView>,
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
            mode: snap.mode,
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
            tls_handshakes: o.tls_handshakes.by_result,
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
            tls: c.tls.clone(),
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

fn by_result<S: Serializer>(counts: &[u64], out: S) -> Result<S::Ok, S::Error> {
    out.collect_map(HandshakeResult::LABELS.iter().zip(counts))
}

fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::logic::metrics::tests::snapshot;
    use crate::logic::metrics::EndpointCounters;
    use crate::logic::stats::Totals;

    // The JSON document carries the connection list.
    #[test]
    fn json_lists_connections() {
        let stats = Totals::default();
        let observed = EndpointCounters::default();
        let doc = render_json(&snapshot(&stats, &observed));
        assert!(
            doc.contains(r#""peer":"127.0.0.1:4000","age_s":1.5"#),
            "{doc}"
        );
        assert!(doc.contains(r#""active_listed":1"#));
        assert!(doc.contains(r#""mode":"framed""#), "{doc}");
    }
}
