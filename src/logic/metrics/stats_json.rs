//! `/stats.json`: the same snapshot as one JSON document, its schema the
//! types below.

use std::net::SocketAddr;
use std::time::{Duration, SystemTime};

use serde::ser::{SerializeMap, Serializer};
use serde::Serialize;

use super::tls::{HandshakeResult, TlsView};
use super::{unix_seconds, ConnView, HistorySeries, Process, Rates, Snapshot};
use crate::logic::echo::{CloseReason, Phase};
use crate::logic::json;
use crate::logic::tcp_info::ms;
use crate::logic::udp::{UdpCounts, UdpDrop};

/// The `/stats.json` document of `snap`.
pub fn render_json(snap: &Snapshot<'_>) -> String {
    json::to_string(&StatsDocument::new(snap, SystemTime::now()))
}

/// A connection with nothing buffered and no byte moved for this long is
/// shown as idle (the dashboard refreshes once a second).
const IDLE_AFTER: Duration = Duration::from_secs(1);

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
    /// With `--udp` only.
    #[serde(skip_serializing_if = "Option::is_none")]
    udp: Option<UdpTotals>,
    /// `{}` off Linux: the dashboard reads its members from an object.
    #[serde(serialize_with = "empty_if_none")]
    process: Option<Process>,
    /// Throughput over the last seconds, from the server's counters;
    /// `null` in the first moment after the start.
    rates: Option<Rates>,
    /// The last minutes, one point a second.
    history: HistorySeries,
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
struct UdpTotals {
    datagrams_received: u64,
    datagrams_sent: u64,
    bytes_received: u64,
    bytes_sent: u64,
    #[serde(serialize_with = "udp_by_reason")]
    dropped: [u64; UdpDrop::ALL.len()],
    sources_tracked: usize,
    sources_evicted: u64,
}

impl From<&UdpCounts> for UdpTotals {
    fn from(u: &UdpCounts) -> Self {
        Self {
            datagrams_received: u.datagrams_in,
            datagrams_sent: u.datagrams_out,
            bytes_received: u.bytes_in,
            bytes_sent: u.bytes_out,
            dropped: u.dropped,
            sources_tracked: u.sources,
            sources_evicted: u.sources_evicted,
        }
    }
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
    /// What it is doing: idle, echoing, zero-copy or draining.
    activity: &'static str,
    /// Bytes per second over the last second; `null` until measured.
    rate_in_bps: Option<f64>,
    rate_out_bps: Option<f64>,
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
        let time_s = unix_seconds(now);
        Self {
            version: env!("CARGO_PKG_VERSION"),
            mode: snap.mode,
            time_s: round3(time_s),
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
            udp: s.udp.as_ref().map(UdpTotals::from),
            process: snap.process,
            rates: snap.history.rates(time_s, s),
            history: snap.history.series(),
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
            activity: activity(c),
            rate_in_bps: c.rates.map(|r| round3(r.0)),
            rate_out_bps: c.rates.map(|r| round3(r.1)),
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

/// What a listed connection is doing, as the dashboard shows it.
fn activity(c: &ConnView) -> &'static str {
    match c.state {
        Phase::Echoing if c.buffered == 0 && c.idle >= IDLE_AFTER => "idle",
        Phase::Echoing if c.zero_copy => "zero-copy",
        Phase::Echoing => "echoing",
        Phase::PeerDone | Phase::Draining | Phase::Lingering => "draining",
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

fn udp_by_reason<S: Serializer>(dropped: &[u64], out: S) -> Result<S::Ok, S::Error> {
    out.collect_map(UdpDrop::LABELS.iter().zip(dropped))
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
        assert!(!doc.contains(r#""udp""#), "{doc}");
        assert!(
            doc.contains(r#""activity":"zero-copy","rate_in_bps":1000,"rate_out_bps":500"#),
            "{doc}"
        );
        assert!(doc.contains(r#""history":{"step_s":1,"t":[]"#), "{doc}");
    }

    // Idle, echoing, zero-copy and draining are told apart.
    #[test]
    fn activity_names_what_a_connection_does() {
        let stats = Totals::default();
        let observed = EndpointCounters::default();
        let base = snapshot(&stats, &observed).connections[0].clone();
        let with = |f: &dyn Fn(&mut ConnView)| {
            let mut c = base.clone();
            f(&mut c);
            activity(&c)
        };
        assert_eq!(with(&|_| {}), "zero-copy");
        assert_eq!(with(&|c| c.zero_copy = false), "echoing");
        let idle = |c: &mut ConnView| {
            c.buffered = 0;
            c.idle = Duration::from_secs(3);
        };
        assert_eq!(with(&idle), "idle");
        // Bytes still waiting to go out: not idle, however long the wait.
        assert_eq!(with(&|c| c.idle = Duration::from_secs(3)), "zero-copy");
        for phase in [Phase::PeerDone, Phase::Draining, Phase::Lingering] {
            assert_eq!(
                with(&|c| {
                    idle(c);
                    c.state = phase;
                }),
                "draining"
            );
        }
    }

    // With --udp, the document has its totals, drops by reason.
    #[test]
    fn json_has_udp_totals_when_on() {
        let mut udp = UdpCounts::default();
        udp.received(10);
        udp.sent(10);
        udp.drop(UdpDrop::NotAllowed);
        let stats = Totals {
            udp: Some(udp),
            ..Totals::default()
        };
        let observed = EndpointCounters::default();
        let doc = render_json(&snapshot(&stats, &observed));
        assert!(
            doc.contains(
                r#""udp":{"datagrams_received":1,"datagrams_sent":1,"bytes_received":10,"bytes_sent":10,"dropped":{"rate_limit":0,"not_allowed":1,"send_blocked":0,"send_failed":0},"sources_tracked":0,"sources_evicted":0}"#
            ),
            "{doc}"
        );
    }
}
