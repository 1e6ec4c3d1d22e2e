//! `ping` mode: TCP probes at a fixed interval, one line each, then the
//! loss and RTT statistics; the handshake time is reported on its own, per
//! probe with `--reconnect`.
//!
//! This file runs the probe loop; `probe` holds its helpers (one probe,
//! reporting and amending it, ending the connection); `summary` prints
//! what they found.

mod probe;
mod summary;
mod udp;

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use self::probe::{amend_last, close, finish, probe, record, record_probe, tls_connected};
use self::summary::{exit_code, json, print_summary, start_json};
use super::cli::PingArgs;
use super::error::{seconds, ClientError};
use super::modes::{framed, ServiceMode};
use super::output::{self, errln, outln};
use super::pattern::Pattern;
use super::rtt::{millis, RttStats};
use super::session::{Connected, Session, MAX_DATAGRAM};
use super::tls::{TlsClient, TlsFacts};
use crate::logic::tcp_info::TcpInfo;
use crate::os::{rx_timestamp, tcp_info};

/// One probe's outcome.
#[derive(Debug)]
struct Probe {
    seq: u64,
    connect: Option<Duration>,
    result: Result<Duration, ClientError>,
    /// The RTT runs to the kernel's receive timestamp, not to the clock
    /// after the read.
    stamped: bool,
}

/// Most probes a `--json` document lists: the latest ones, so a run of
/// any length prints a bounded document (the totals count them all).
pub const JSON_PROBES: usize = 10_000;

/// Everything a ping run saw, in memory that does not grow with the number
/// of probes.
#[derive(Debug, Default)]
struct PingRun {
    /// The latest probe, not yet in the figures below: bytes that arrive
    /// after its echo may still turn it into a failure.
    last: Option<Probe>,
    sent: u64,
    received: u64,
    mismatched: u64,
    /// Exit code of the latest failure other than a mismatch.
    last_failure: Option<u8>,
    rtts: RttStats,
    connects: RttStats,
    /// For `--json`: the latest probes, at most [`JSON_PROBES`].
    recent: VecDeque<Probe>,
    /// Probes that no longer fit in `recent`.
    omitted: u64,
    json: bool,
    last_addr: Option<SocketAddr>,
    interrupted: bool,
    started: Option<Instant>,
    /// Replies timed by the kernel's receive timestamp.
    stamped: u64,
    /// TCP_INFO of the client's socket after the latest reply.
    tcp_info: Option<TcpInfo>,
    /// With `--tls`: the TLS handshake times, apart from the connects.
    handshakes: RttStats,
    /// With `--tls`: the latest connection's handshake.
    tls: Option<TlsFacts>,
}

impl PingRun {
    /// Counts `probe` in the totals (and keeps it for `--json`).
    fn fold(&mut self, probe: Probe) {
        self.sent += 1;
        match &probe.result {
            Ok(rtt) => {
                self.received += 1;
                self.stamped += u64::from(probe.stamped);
                self.rtts.record(*rtt);
            }
            Err(ClientError::Mismatch(_) | ClientError::Reply(_)) => self.mismatched += 1,
            Err(e) => self.last_failure = Some(e.exit_code()),
        }
        if self.json {
            if self.recent.len() == JSON_PROBES {
                self.recent.pop_front();
                self.omitted += 1;
            }
            self.recent.push_back(probe);
        }
    }

    /// Folds the last probe in: the run is over.
    fn settle(&mut self) {
        if let Some(probe) = self.last.take() {
            self.fold(probe);
        }
    }
}

/// Runs `ping` mode and returns the exit code.
pub fn run(args: &PingArgs) -> u8 {
    if matches!(args.mode, ServiceMode::Discard | ServiceMode::Chargen) {
        return fatal(args, args.mode.unsupported("ping", "echo, upper, framed"));
    }
    if args.udp && args.mode != ServiceMode::Echo {
        return fatal(
            args,
            ClientError::Usage("--udp probes a UDP echo; --mode is for TCP".into()),
        );
    }
    let addrs = match args.address.resolve() {
        Ok(addrs) => addrs,
        Err(e) => return fatal(args, e),
    };
    let mut session = match Session::new() {
        Ok(s) => s,
        Err(e) => return fatal(args, e),
    };
    if args.udp && args.tls.tls {
        let e = ClientError::Usage("--tls runs over TCP; --udp probes with datagrams".into());
        return fatal(args, e);
    }
    match TlsClient::from_args(&args.tls, &args.address.host) {
        Ok(tls) => session.set_tls(tls),
        Err(e) => return fatal(args, e),
    }
    if args.udp && args.size > MAX_DATAGRAM {
        let e = ClientError::Usage(format!("--size with --udp is at most {MAX_DATAGRAM} bytes"));
        return fatal(args, e);
    }
    if args.json_stream {
        output::stream_event("start", &start_json(args));
    }
    if args.text() {
        outln!(
            "ECHO PING {}: {}-byte probes {}, every {}, timeout {}",
            args.address,
            args.size,
            if args.udp {
                "as UDP datagrams"
            } else if args.reconnect {
                "on a new connection each"
            } else {
                "over one connection"
            },
            seconds(args.interval),
            seconds(args.timeout)
        );
    }
    let run = if args.udp {
        match udp::probe_all(args, &addrs, &mut session) {
            Ok(run) => run,
            Err(e) => return fatal(args, e),
        }
    } else {
        probe_all(args, &addrs, &mut session)
    };
    if args.json {
        outln!("{}", json(args, &run));
    } else if args.json_stream {
        output::stream_event("end", &json(args, &run));
    } else {
        print_summary(args, &run);
    }
    exit_code(&run, args.strict)
}

fn fatal(args: &PingArgs, e: ClientError) -> u8 {
    errln!("echo-client: {e}");
    let doc = e.json_document("ping", &args.address.to_string());
    if args.json {
        outln!("{doc}");
    } else if args.json_stream {
        output::stream_event("end", &doc);
    }
    e.exit_code()
}

fn probe_all(args: &PingArgs, addrs: &[SocketAddr], session: &mut Session) -> PingRun {
    let pattern = Pattern::new();
    let mut run = PingRun {
        json: args.json,
        ..PingRun::default()
    };
    let mut conn: Option<Connected> = None;
    // Offset in the current connection's stream: every probe carries
    // different bytes, so a server replaying an old probe is caught.
    let mut offset = 0u64;
    // Ctrl+C came while a probe waited for its echo.
    let mut cut_short = false;
    let started = Instant::now();
    run.started = Some(started);
    let mut due = started;
    let mut payload = Vec::with_capacity(args.size);
    let mut reply = Vec::with_capacity(args.size + 1);
    for seq in 1.. {
        if args.count != 0 && seq > args.count {
            break;
        }
        // With stdout gone (a full disk), probing on would be unseen.
        if output::stdout_failed() {
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
                    // Without stamps, each reply is timed by the clock.
                    // Under TLS the bytes go through rustls: no stamps to read.
                    session.use_rx_stamps(
                        c.stream
                            .plain()
                            .is_some_and(|tcp| rx_timestamp::enable(tcp).is_ok()),
                    );
                    connect_time = Some(c.connect_time);
                    run.connects.record(c.connect_time);
                    run.last_addr = Some(c.addr);
                    if !args.reconnect && args.text() {
                        outln!(
                            "Connected to {} in {:.3} ms",
                            c.addr,
                            millis(c.connect_time)
                        );
                    }
                    if let Some(tls) = &c.tls {
                        tls_connected(args, &mut run, tls);
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
        let result = if offset == 0 && args.mode == ServiceMode::Framed {
            // The server's `*` comes first on each connection.
            framed::exchange(
                session,
                &mut c.stream,
                b"",
                framed::HANDSHAKE,
                args.timeout,
                0,
                "the connection (the handshake)",
            )
            .map(|_| offset = framed::HANDSHAKE.len() as u64)
        } else {
            Ok(())
        };
        let result = result.and_then(|()| {
            probe(
                args,
                session,
                &mut c.stream,
                &mut payload,
                &mut reply,
                offset,
                seq,
            )
        });
        offset += reply.len() as u64;
        let shown_connect = if args.reconnect { connect_time } else { None };
        if let Err(ClientError::Interrupted) = result {
            run.interrupted = true;
            cut_short = true;
            record(args, &mut run, seq, shown_connect, Err(unanswered(false)));
            break;
        }
        let failed = result.is_err();
        let stamped = session.take_stamped_rtt().filter(|_| !failed);
        if !failed {
            if let Some(info) = conn
                .as_ref()
                .and_then(|c| tcp_info::sample(c.stream.socket()).ok())
            {
                run.tcp_info = Some(info);
            }
        }
        record_probe(
            args,
            &mut run,
            Probe {
                seq,
                connect: shown_connect,
                result: stamped.map_or(result, Ok),
                stamped: stamped.is_some(),
            },
        );
        if args.reconnect && !failed {
            finish(args, &mut run, session, &mut conn, offset);
        }
        // After a failure the stream's position is unknown: start afresh.
        if failed || args.reconnect {
            close(session, &mut conn);
        }
    }
    if run.interrupted && !cut_short {
        // Ctrl+C between probes: no waiting, only what has already arrived.
        // (After a probe cut short, what arrives may be its own late echo:
        // that probe is counted lost, not wrong.)
        if let Some(c) = conn.as_mut() {
            if let Err(e) = session.check_nothing_more(&mut c.stream, offset) {
                amend_last(args, &mut run, e);
            }
        }
    } else if !run.interrupted {
        finish(args, &mut run, session, &mut conn, offset);
    }
    close(session, &mut conn);
    run.settle();
    run
}
