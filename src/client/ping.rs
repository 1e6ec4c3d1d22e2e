//! `ping` mode: TCP probes at a fixed interval, one line each, then the
//! loss and RTT statistics; the handshake time is reported on its own, per
//! probe with `--reconnect`.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use super::cli::PingArgs;
use super::error::{exit, seconds, ClientError};
use super::pattern::Pattern;
use super::rtt::{millis, RttSummary};
use super::session::{Connected, Session, CLOSE_GRACE};
use crate::json::JsonObject;

/// One probe's outcome.
#[derive(Debug)]
struct Probe {
    seq: u64,
    connect: Option<Duration>,
    result: Result<Duration, ClientError>,
}

/// Everything a ping run saw.
#[derive(Debug, Default)]
struct PingRun {
    probes: Vec<Probe>,
    connects: Vec<Duration>,
    last_addr: Option<SocketAddr>,
    interrupted: bool,
    started: Option<Instant>,
}

/// Runs `ping` mode and returns the exit code.
pub fn run(args: &PingArgs) -> u8 {
    let addrs = match args.address.resolve() {
        Ok(addrs) => addrs,
        Err(e) => return fatal(args, e),
    };
    let mut session = match Session::new() {
        Ok(s) => s,
        Err(e) => return fatal(args, e),
    };
    if !args.json {
        println!(
            "ECHO PING {}: {}-byte probes {}, every {}, timeout {}",
            args.address,
            args.size,
            if args.reconnect {
                "on a new connection each"
            } else {
                "over one connection"
            },
            seconds(args.interval),
            seconds(args.timeout)
        );
    }
    let run = probe_all(args, &addrs, &mut session);
    if args.json {
        println!("{}", json(args, &run));
    } else {
        print_summary(args, &run);
    }
    exit_code(&run)
}

fn fatal(args: &PingArgs, e: ClientError) -> u8 {
    eprintln!("echo-client: {e}");
    if args.json {
        println!("{}", e.json_document("ping", &args.address.to_string()));
    }
    e.exit_code()
}

fn probe_all(args: &PingArgs, addrs: &[SocketAddr], session: &mut Session) -> PingRun {
    let pattern = Pattern::new();
    let mut run = PingRun::default();
    let mut conn: Option<Connected> = None;
    // Offset in the current connection's stream: every probe carries
    // different bytes, so a server replaying an old probe is caught.
    let mut offset = 0u64;
    let started = Instant::now();
    run.started = Some(started);
    let mut due = started;
    let mut payload = Vec::with_capacity(args.size);
    for seq in 1.. {
        if args.count != 0 && seq > args.count {
            break;
        }
        if let Err(ClientError::Interrupted) = session.sleep_until(due) {
            run.interrupted = true;
            break;
        }
        // Bytes that came after the last echo belong to that probe.
        if let Some(c) = conn.as_mut() {
            if let Err(e) = session.check_nothing_more(&mut c.stream, offset) {
                amend_last(args, &mut run, e);
                close(session, &mut conn);
            }
        }
        let probe_started = Instant::now();
        // The interval runs from this probe's start: after a slow or lost
        // probe the next ones keep their spacing instead of catching up
        // back to back, which would also flatter the RTTs.
        due = probe_started + args.interval;
        let unanswered = |connecting| ClientError::Unanswered {
            waited: probe_started.elapsed(),
            connecting,
        };
        let mut connect_time = None;
        if conn.is_none() {
            match session.connect_any(addrs, args.timeout) {
                Ok(c) => {
                    connect_time = Some(c.connect_time);
                    run.connects.push(c.connect_time);
                    run.last_addr = Some(c.addr);
                    if !args.reconnect && !args.json {
                        println!(
                            "Connected to {} in {:.3} ms",
                            c.addr,
                            millis(c.connect_time)
                        );
                    }
                    conn = Some(c);
                    offset = 0;
                }
                // A probe in progress when Ctrl+C came is sent and lost, as
                // ping counts it: the run must not look cleaner than it was.
                Err(ClientError::Interrupted) => {
                    run.interrupted = true;
                    record(args, &mut run, seq, None, Err(unanswered(true)));
                    break;
                }
                Err(e) => {
                    record(args, &mut run, seq, None, Err(e));
                    continue;
                }
            }
        }
        let Some(c) = conn.as_mut() else { continue };
        payload.clear();
        pattern.extend(0, offset, args.size, &mut payload);
        let result = session.exchange(&mut c.stream, &payload, args.timeout);
        offset += args.size as u64;
        let shown_connect = if args.reconnect { connect_time } else { None };
        if let Err(ClientError::Interrupted) = result {
            run.interrupted = true;
            record(args, &mut run, seq, shown_connect, Err(unanswered(false)));
            break;
        }
        let failed = result.is_err();
        record(args, &mut run, seq, shown_connect, result);
        if args.reconnect && !failed {
            finish(args, &mut run, session, &mut conn, offset);
        }
        // After a failure the stream's position is unknown: start afresh.
        if failed || args.reconnect {
            close(session, &mut conn);
        }
    }
    if run.interrupted {
        // Ctrl+C: no waiting, only what has already arrived.
        if let Some(c) = conn.as_mut() {
            if let Err(e) = session.check_nothing_more(&mut c.stream, offset) {
                amend_last(args, &mut run, e);
            }
        }
    } else {
        finish(args, &mut run, session, &mut conn, offset);
    }
    close(session, &mut conn);
    run
}

/// Ends the connection the way `send` does (half-close, then up to
/// [`CLOSE_GRACE`] for the server's FIN), so bytes the server sends after
/// the last echo are charged to the last probe.
fn finish(
    args: &PingArgs,
    run: &mut PingRun,
    session: &mut Session,
    conn: &mut Option<Connected>,
    sent: u64,
) {
    let Some(c) = conn.as_mut() else { return };
    match session.finish(&mut c.stream, sent, args.timeout.min(CLOSE_GRACE)) {
        Ok(()) => {}
        Err(ClientError::Interrupted) => run.interrupted = true,
        Err(e) => amend_last(args, run, e),
    }
}

fn close(session: &mut Session, conn: &mut Option<Connected>) {
    if let Some(c) = conn.take() {
        session.close(c.stream);
    }
}

/// The last probe turned out wrong after all (extra bytes followed its
/// echo): it is reported again, and counted, as that failure.
fn amend_last(args: &PingArgs, run: &mut PingRun, error: ClientError) {
    let Some(probe) = run.probes.last_mut() else {
        return;
    };
    if !args.json {
        match &error {
            ClientError::Mismatch(m) => println!("seq={} MISMATCH: {m}", probe.seq),
            other => println!("seq={} lost: {other}", probe.seq),
        }
    }
    probe.result = Err(error);
}

fn record(
    args: &PingArgs,
    run: &mut PingRun,
    seq: u64,
    connect: Option<Duration>,
    result: Result<Duration, ClientError>,
) {
    if !args.json {
        match &result {
            Ok(rtt) => {
                let addr = run.last_addr.map(|a| a.to_string()).unwrap_or_default();
                let connect = connect
                    .map(|c| format!(" connect={:.3} ms", millis(c)))
                    .unwrap_or_default();
                println!(
                    "{} bytes from {addr}: seq={seq}{connect} time={:.3} ms",
                    args.size,
                    millis(*rtt)
                );
            }
            Err(ClientError::Mismatch(m)) => println!("seq={seq} MISMATCH: {m}"),
            Err(e) => println!("seq={seq} lost: {e}"),
        }
    }
    run.probes.push(Probe {
        seq,
        connect,
        result,
    });
}

struct Totals {
    sent: usize,
    received: usize,
    mismatched: usize,
    rtts: Vec<Duration>,
}

fn totals(run: &PingRun) -> Totals {
    let rtts: Vec<Duration> = run
        .probes
        .iter()
        .filter_map(|p| p.result.as_ref().ok().copied())
        .collect();
    let mismatched = run
        .probes
        .iter()
        .filter(|p| matches!(p.result, Err(ClientError::Mismatch(_))))
        .count();
    Totals {
        sent: run.probes.len(),
        received: rtts.len(),
        mismatched,
        rtts,
    }
}

fn loss_percent(t: &Totals) -> f64 {
    if t.sent == 0 {
        0.0
    } else {
        (t.sent - t.received) as f64 * 100.0 / t.sent as f64
    }
}

fn print_summary(args: &PingArgs, run: &PingRun) {
    let t = totals(run);
    let elapsed = run.started.map_or(Duration::ZERO, |s| s.elapsed());
    println!();
    println!("--- {} echo ping statistics ---", args.address);
    println!(
        "{} probes sent, {} received, {} lost ({:.1}% loss), {} mismatched, time {:.0} ms{}",
        t.sent,
        t.received,
        t.sent - t.received,
        loss_percent(&t),
        t.mismatched,
        millis(elapsed),
        if run.interrupted {
            " (interrupted)"
        } else {
            ""
        }
    );
    if let Some(c) = RttSummary::of(&run.connects) {
        println!(
            "connect min/avg/max = {:.3}/{:.3}/{:.3} ms over {} connection{}",
            millis(c.min),
            millis(c.avg),
            millis(c.max),
            run.connects.len(),
            if run.connects.len() == 1 { "" } else { "s" }
        );
    }
    if let Some(r) = RttSummary::of(&t.rtts) {
        println!(
            "rtt min/avg/max/mdev = {:.3}/{:.3}/{:.3}/{:.3} ms",
            millis(r.min),
            millis(r.avg),
            millis(r.max),
            millis(r.mdev)
        );
        println!(
            "rtt p50/p95/p99 = {:.3}/{:.3}/{:.3} ms",
            millis(r.p50),
            millis(r.p95),
            millis(r.p99)
        );
    }
}

fn ms(d: Duration) -> f64 {
    (millis(d) * 1e3).round() / 1e3
}

fn json(args: &PingArgs, run: &PingRun) -> String {
    let t = totals(run);
    let mut doc = JsonObject::new();
    doc.str("mode", "ping")
        .str("target", &args.address.to_string());
    match run.last_addr {
        Some(addr) => doc.str("address", &addr.to_string()),
        None => doc.null("address"),
    };
    doc.uint("size", args.size as u64)
        .bool("reconnect", args.reconnect)
        .uint("sent", t.sent as u64)
        .uint("received", t.received as u64)
        .uint("lost", (t.sent - t.received) as u64)
        .uint("mismatched", t.mismatched as u64)
        .float("loss_pct", (loss_percent(&t) * 10.0).round() / 10.0)
        .bool("interrupted", run.interrupted);
    match RttSummary::of(&run.connects) {
        Some(c) => {
            let mut o = JsonObject::new();
            o.uint("count", run.connects.len() as u64)
                .float("min", ms(c.min))
                .float("avg", ms(c.avg))
                .float("max", ms(c.max));
            doc.object("connect_ms", o)
        }
        None => doc.null("connect_ms"),
    };
    match RttSummary::of(&t.rtts) {
        Some(r) => {
            let mut o = JsonObject::new();
            o.float("min", ms(r.min))
                .float("avg", ms(r.avg))
                .float("max", ms(r.max))
                .float("mdev", ms(r.mdev))
                .float("p50", ms(r.p50))
                .float("p95", ms(r.p95))
                .float("p99", ms(r.p99));
            doc.object("rtt_ms", o)
        }
        None => doc.null("rtt_ms"),
    };
    let probes = run
        .probes
        .iter()
        .map(|p| {
            let mut o = JsonObject::new();
            o.uint("seq", p.seq).bool("ok", p.result.is_ok());
            match p.connect {
                Some(c) => o.float("connect_ms", ms(c)),
                None => o.null("connect_ms"),
            };
            match &p.result {
                Ok(rtt) => o.float("rtt_ms", ms(*rtt)).null("error"),
                Err(e) => o
                    .null("rtt_ms")
                    .str("error_kind", e.kind())
                    .str("error", &e.to_string()),
            };
            o
        })
        .collect();
    doc.array("probes", probes);
    doc.finish()
}

/// 0 when every probe came back exactly; 1 if any echo differed; else the
/// code of the last failure (130 for a probe Ctrl+C left unanswered); 130
/// if Ctrl+C came before any probe.
fn exit_code(run: &PingRun) -> u8 {
    if run.probes.is_empty() && run.interrupted {
        return exit::INTERRUPTED;
    }
    let mut code = exit::OK;
    for probe in &run.probes {
        match &probe.result {
            Err(ClientError::Mismatch(_)) => return exit::MISMATCH,
            Err(e) => code = e.exit_code(),
            Ok(_) => {}
        }
    }
    code
}
