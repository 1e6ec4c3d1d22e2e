//! The end of a ping run: the statistics as text, the `--json` document, the exit code.

use std::net::SocketAddr;
use std::time::Duration;

use serde::Serialize;

use super::{PingRun, Probe};
use crate::client::cli::PingArgs;
use crate::client::error::{exit, ClientError};
use crate::client::output::outln;
use crate::client::rtt::millis;
use crate::client::target::Target;
use crate::logic::json;
use crate::logic::tcp_info::TcpInfo;

fn loss_percent(run: &PingRun) -> f64 {
    if run.sent == 0 {
        0.0
    } else {
        (run.sent - run.received) as f64 * 100.0 / run.sent as f64
    }
}

pub(super) fn print_summary(args: &PingArgs, run: &PingRun) {
    let elapsed = run.started.map_or(Duration::ZERO, |s| s.elapsed());
    outln!();
    outln!("--- {} echo ping statistics ---", args.address);
    outln!(
        "{} probes sent, {} received, {} lost ({:.1}% loss), {} mismatched, time {:.0} ms{}",
        run.sent,
        run.received,
        run.sent - run.received,
        loss_percent(run),
        run.mismatched,
        millis(elapsed),
        if run.interrupted {
            " (interrupted)"
        } else {
            ""
        }
    );
    if let Some(c) = run.connects.summary() {
        let n = run.connects.count();
        outln!(
            "connect min/avg/max = {:.3}/{:.3}/{:.3} ms over {} connection{}",
            millis(c.min),
            millis(c.avg),
            millis(c.max),
            n,
            if n == 1 { "" } else { "s" }
        );
    }
    if let Some(h) = run.handshakes.summary() {
        outln!(
            "tls handshake min/avg/max = {:.3}/{:.3}/{:.3} ms",
            millis(h.min),
            millis(h.avg),
            millis(h.max)
        );
    }
    if let Some(r) = run.rtts.summary() {
        outln!(
            "rtt min/avg/max/mdev = {:.3}/{:.3}/{:.3}/{:.3} ms",
            millis(r.min),
            millis(r.avg),
            millis(r.max),
            millis(r.mdev)
        );
        outln!(
            "rtt p50/p95/p99 = {:.3}/{:.3}/{:.3} ms",
            millis(r.p50),
            millis(r.p95),
            millis(r.p99)
        );
        outln!("rtt measured to: {}", rtt_source_text(run));
    }
    if let Some(info) = &run.tcp_info {
        outln!("{}", tcp_info_text(info, args.reconnect));
    }
}

/// Which clock ended the RTTs: the kernel's receive timestamp where it
/// gave one, else the clock read after the reply was read.
fn rtt_source_text(run: &PingRun) -> String {
    const KERNEL: &str = "the kernel's receive timestamp (SO_TIMESTAMPING)";
    const CLOCK: &str = "the clock after the read";
    match (run.stamped, run.received - run.stamped) {
        (_, 0) => KERNEL.to_string(),
        (0, _) => format!("{CLOCK} (no kernel receive timestamp)"),
        (stamped, clocked) => {
            format!("{KERNEL} for {stamped} replies, {CLOCK} for {clocked}")
        }
    }
}

/// The client socket's own view of the path (TCP_INFO).
fn tcp_info_text(info: &TcpInfo, reconnect: bool) -> String {
    format!(
        "tcp_info{}: min_rtt {} ms, srtt {:.3} ms, rttvar {:.3} ms, retransmits {}, path MTU {}",
        if reconnect { " (last connection)" } else { "" },
        info.min_rtt_us
            .map_or("-".to_string(), |us| format!("{:.3}", us as f64 / 1e3)),
        info.srtt_ms(),
        info.rttvar_ms(),
        info.total_retrans,
        info.pmtu
    )
}

fn ms(d: Duration) -> f64 {
    (millis(d) * 1e3).round() / 1e3
}

pub(super) fn json(args: &PingArgs, run: &PingRun) -> String {
    json::to_string(&PingDocument {
        mode: "ping",
        target: &args.address,
        address: run.last_addr,
        size: args.size,
        reconnect: args.reconnect,
        udp: args.udp,
        sent: run.sent,
        received: run.received,
        lost: run.sent - run.received,
        mismatched: run.mismatched,
        loss_pct: (loss_percent(run) * 10.0).round() / 10.0,
        interrupted: run.interrupted,
        connect_ms: run.connects.summary().map(|c| ConnectMs {
            count: run.connects.count(),
            min: ms(c.min),
            avg: ms(c.avg),
            max: ms(c.max),
        }),
        tls_handshake_ms: run.handshakes.summary().map(|h| ConnectMs {
            count: run.handshakes.count(),
            min: ms(h.min),
            avg: ms(h.avg),
            max: ms(h.max),
        }),
        tls: run.tls.as_ref(),
        rtt_ms: run.rtts.summary().map(|r| RttMs {
            min: ms(r.min),
            avg: ms(r.avg),
            max: ms(r.max),
            mdev: ms(r.mdev),
            p50: ms(r.p50),
            p95: ms(r.p95),
            p99: ms(r.p99),
        }),
        rtt_source: RttSource {
            kernel: run.stamped,
            clock: run.received - run.stamped,
        },
        tcp_info: run.tcp_info.map(|info| TcpInfoJson {
            min_rtt_ms: info.min_rtt_us.map(|us| us as f64 / 1e3),
            srtt_ms: info.rtt_us as f64 / 1e3,
            rttvar_ms: info.rttvar_us as f64 / 1e3,
            retransmits: info.total_retrans,
            pmtu: info.pmtu,
        }),
        probes: run.recent.iter().map(ProbeJson::from).collect(),
        probes_omitted: run.omitted,
    })
}

/// A `--json-stream` "probe" event's data: the probe as `--json` lists
/// it, and when its outcome was known, in seconds from the run's start.
pub(super) fn probe_json(probe: &Probe, started: Option<std::time::Instant>) -> String {
    #[derive(Serialize)]
    struct Event<'a> {
        #[serde(flatten)]
        probe: ProbeJson<'a>,
        time_s: f64,
    }
    let time_s = started.map_or(0.0, |s| (s.elapsed().as_secs_f64() * 1e6).round() / 1e6);
    json::to_string(&Event {
        probe: ProbeJson::from(probe),
        time_s,
    })
}

/// A `--json-stream` "start" event's data: what the run is about to do.
pub(super) fn start_json(args: &PingArgs) -> String {
    #[derive(Serialize)]
    struct Start<'a> {
        mode: &'static str,
        #[serde(serialize_with = "json::display")]
        target: &'a Target,
        size: usize,
        count: u64,
        interval_s: f64,
        timeout_s: f64,
        reconnect: bool,
        udp: bool,
    }
    json::to_string(&Start {
        mode: "ping",
        target: &args.address,
        size: args.size,
        count: args.count,
        interval_s: args.interval.as_secs_f64(),
        timeout_s: args.timeout.as_secs_f64(),
        reconnect: args.reconnect,
        udp: args.udp,
    })
}

/// `ping --json`.
#[derive(Serialize)]
struct PingDocument<'a> {
    mode: &'static str,
    #[serde(serialize_with = "json::display")]
    target: &'a Target,
    address: Option<SocketAddr>,
    size: usize,
    reconnect: bool,
    udp: bool,
    sent: u64,
    received: u64,
    lost: u64,
    mismatched: u64,
    loss_pct: f64,
    interrupted: bool,
    connect_ms: Option<ConnectMs>,
    /// With `--tls`: handshake times, apart from `connect_ms`.
    #[serde(skip_serializing_if = "Option::is_none")]
    tls_handshake_ms: Option<ConnectMs>,
    /// With `--tls`: the latest connection's version, suite, certificate.
    #[serde(skip_serializing_if = "Option::is_none")]
    tls: Option<&'a crate::client::tls::TlsFacts>,
    rtt_ms: Option<RttMs>,
    rtt_source: RttSource,
    tcp_info: Option<TcpInfoJson>,
    probes: Vec<ProbeJson<'a>>,
    probes_omitted: u64,
}

/// Replies whose RTT ran to the kernel's receive timestamp, and those
/// timed by the clock after the read.
#[derive(Serialize)]
struct RttSource {
    kernel: u64,
    clock: u64,
}

/// TCP_INFO of the client's socket after the latest reply.
#[derive(Serialize)]
struct TcpInfoJson {
    min_rtt_ms: Option<f64>,
    srtt_ms: f64,
    rttvar_ms: f64,
    retransmits: u32,
    pmtu: u32,
}

#[derive(Serialize)]
struct ConnectMs {
    count: u64,
    min: f64,
    avg: f64,
    max: f64,
}

#[derive(Serialize)]
struct RttMs {
    min: f64,
    avg: f64,
    max: f64,
    mdev: f64,
    p50: f64,
    p95: f64,
    p99: f64,
}

/// One probe: `rtt_ms` if it came back, else `error_kind` and `error`.
#[derive(Serialize)]
struct ProbeJson<'a> {
    seq: u64,
    ok: bool,
    connect_ms: Option<f64>,
    rtt_ms: Option<f64>,
    /// "kernel" or "clock": what ended the RTT.
    #[serde(skip_serializing_if = "Option::is_none")]
    rtt_source: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error_kind: Option<&'static str>,
    error: Option<&'a ClientError>,
}

impl<'a> From<&'a Probe> for ProbeJson<'a> {
    fn from(p: &'a Probe) -> Self {
        let error = p.result.as_ref().err();
        Self {
            seq: p.seq,
            ok: error.is_none(),
            connect_ms: p.connect.map(ms),
            rtt_ms: p.result.as_ref().ok().map(|rtt| ms(*rtt)),
            rtt_source: (p.result.is_ok()).then_some(if p.stamped { "kernel" } else { "clock" }),
            error_kind: error.map(ClientError::kind),
            error,
        }
    }
}

/// As iputils' ping: 0 when any probe came back, even if others were
/// lost; when none did, the code of the last failure (never 0). With
/// `strict`, every probe must come back: the last failure's code (130 for a
/// probe Ctrl+C left unanswered). Any echo that differed is 1 either way:
/// corruption is never a pass. 130 if Ctrl+C came before any probe.
pub(super) fn exit_code(run: &PingRun, strict: bool) -> u8 {
    if run.sent == 0 && run.interrupted {
        return exit::INTERRUPTED;
    }
    if run.mismatched > 0 {
        return exit::MISMATCH;
    }
    if run.received > 0 && !strict {
        return exit::OK;
    }
    run.last_failure.unwrap_or(exit::OK)
}
