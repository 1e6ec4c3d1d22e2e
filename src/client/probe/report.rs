//! What `probe` prints: the heading, the table sorted by port and the
//! summary line, or one `--json` document.

use std::net::IpAddr;

use serde::Serialize;

use super::classify::{self, Outcome, KINDS};
use crate::client::cli::ProbeArgs;
use crate::client::error::{seconds, ClientError};
use crate::client::output::outln;
use crate::client::rtt::millis;
use crate::logic::json;
use crate::logic::port_list::format_port_list;

fn protocol(args: &ProbeArgs) -> &'static str {
    if args.udp {
        "udp"
    } else {
        "tcp"
    }
}

pub(super) fn heading(args: &ProbeArgs, ip: IpAddr, concurrency: usize) {
    let n = args.ports.0.len();
    outln!(
        "PROBE {} ({ip}): {n} {} port{} ({}), timeout {}{}, up to {concurrency} at once",
        args.host,
        protocol(args).to_uppercase(),
        if n == 1 { "" } else { "s" },
        format_port_list(&args.ports.0),
        seconds(args.timeout),
        if args.udp {
            format!(" per datagram, {} tries", args.retries + 1)
        } else {
            String::new()
        },
    );
}

fn ms(d: std::time::Duration) -> String {
    format!("{:.3} ms", millis(d))
}

pub(super) fn table(results: &[(u16, Outcome)], interrupted: bool) {
    outln!(
        "{:<7} {:<44} {:>12} {:>12}",
        "PORT",
        "STATE",
        "CONNECT",
        "RTT"
    );
    for (port, outcome) in results {
        match outcome {
            Outcome::Open { connect, rtt } => outln!(
                "{port:<7} {:<44} {:>12} {:>12}",
                outcome.to_string(),
                connect.map(ms).unwrap_or_else(|| "-".into()),
                ms(*rtt)
            ),
            other => outln!("{port:<7} {other}"),
        }
    }
    let summary = classify::summary(results.iter().map(|(_, o)| o));
    if interrupted {
        outln!("{summary} (interrupted)");
    } else {
        outln!("{summary}");
    }
}

/// `probe --json`.
#[derive(Serialize)]
struct ProbeDocument<'a> {
    mode: &'static str,
    host: &'a str,
    address: IpAddr,
    protocol: &'static str,
    timeout_s: f64,
    ports: Vec<PortJson>,
    /// Count of each kind, every kind present (0 for none).
    summary: serde_json::Map<String, serde_json::Value>,
    all_open: bool,
    interrupted: bool,
}

#[derive(Serialize)]
struct PortJson {
    port: u16,
    state: &'static str,
    detail: String,
    connect_ms: Option<f64>,
    rtt_ms: Option<f64>,
}

fn round_ms(d: std::time::Duration) -> f64 {
    (millis(d) * 1e3).round() / 1e3
}

pub(super) fn json(
    args: &ProbeArgs,
    address: IpAddr,
    results: &[(u16, Outcome)],
    interrupted: bool,
) {
    let mut summary = serde_json::Map::new();
    for kind in KINDS {
        let n = results.iter().filter(|(_, o)| o.kind() == kind).count();
        summary.insert(kind.into(), n.into());
    }
    let ports = results
        .iter()
        .map(|(port, outcome)| {
            let (connect_ms, rtt_ms) = match outcome {
                Outcome::Open { connect, rtt } => (connect.map(round_ms), Some(round_ms(*rtt))),
                _ => (None, None),
            };
            PortJson {
                port: *port,
                state: outcome.kind(),
                detail: outcome.to_string(),
                connect_ms,
                rtt_ms,
            }
        })
        .collect();
    let doc = ProbeDocument {
        mode: "probe",
        host: &args.host,
        address,
        protocol: protocol(args),
        timeout_s: args.timeout.as_secs_f64(),
        ports,
        summary,
        all_open: results
            .iter()
            .all(|(_, o)| matches!(o, Outcome::Open { .. })),
        interrupted,
    };
    outln!("{}", json::to_string(&doc));
}

pub(super) fn failed(args: &ProbeArgs, e: &ClientError) {
    outln!("{}", e.json_document("probe", &args.host));
}
