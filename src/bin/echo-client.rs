//! `echo-client`: parses the command line and runs the chosen mode.

use std::net::SocketAddr;
use std::process::ExitCode;

use clap::CommandFactory;
use echo_server::client::bench::interval::StreamStart;
use echo_server::client::bench::{self, interval_setting, BenchConfig, StopAfter};
use echo_server::client::cli::{BenchArgs, ClientCli, Mode};
use echo_server::client::error::{exit, ClientError};
use echo_server::client::modes::bench::ModeBench;
use echo_server::client::modes::{self, ServiceMode};
use echo_server::client::output::{self, stream_event};
use echo_server::client::session::Session;
use echo_server::client::tls::{TlsClient, TlsFacts};
use echo_server::client::{ping, probe, send, suggest};
use echo_server::config::cli::completions;
use echo_server::os::limits::raise_open_file_limit;
use echo_server::os::procstat;
use echo_server::os::signal;

/// Descriptors the client needs besides its connections: stdio, poll,
/// signal pipes, and a margin.
const RESERVED_FDS: u64 = 16;

fn main() -> ExitCode {
    signal::restore_default_sigpipe();
    let cli = suggest::parse();
    let code = match cli.mode {
        None => send::run(&cli.send),
        Some(Mode::Send(args)) => send::run(&args),
        Some(Mode::Ping(args)) => ping::run(&args),
        Some(Mode::Bench(args)) => run_bench(&args),
        Some(Mode::Probe(args)) => probe::run(&args),
        Some(Mode::Completions(args)) => {
            let script = completions::script(args.shell, ClientCli::command());
            output::text(format_args!("{script}"));
            exit::OK
        }
    };
    ExitCode::from(output::exit_code(code))
}

fn run_bench(args: &BenchArgs) -> u8 {
    match bench_report(args) {
        Ok(code) => code,
        Err(e) => {
            output::err_line(format_args!("echo-client: {e}"));
            let doc = e.json_document("bench", &args.address.to_string());
            if args.json {
                output::line(format_args!("{doc}"));
            } else if args.json_stream {
                stream_event("end", &doc);
            }
            e.exit_code()
        }
    }
}

fn bench_report(args: &BenchArgs) -> Result<u8, ClientError> {
    let tls = TlsClient::from_args(&args.tls, &args.address.host)?;
    if tls.is_some() && args.mode != ServiceMode::Echo {
        return Err(ClientError::Usage(
            "bench --tls measures the echo; --mode benches run over plain TCP".into(),
        ));
    }
    let mode = (args.mode != ServiceMode::Echo)
        .then(|| ModeBench::from_args(args))
        .transpose()?;
    let connections = args.connections as usize;
    let limit = raise_open_file_limit().after;
    if let Some(limit) = limit {
        if connections as u64 + RESERVED_FDS > limit {
            return Err(ClientError::Usage(format!(
                "{connections} connections need {} open files, but the limit is {limit}; raise it (ulimit -n) or use fewer connections",
                connections as u64 + RESERVED_FDS
            )));
        }
    }
    // A wrong pid would otherwise only show as missing figures at the end.
    if let Some(pid) = args.server_pid {
        if let Err(e) = procstat::sample(pid) {
            return Err(ClientError::Usage(format!(
                "--server-pid {pid}: cannot read that process's CPU time and memory ({e})"
            )));
        }
    }
    // The probe's session stays alive to the end: its signal pipes remain
    // registered with signal-hook, whose handler would otherwise write to a
    // closed pipe on Ctrl+C and raise SIGPIPE.
    let (addr, _probe_session, handshake) = reachable_address(args, tls.clone())?;
    if args.json_stream {
        stream_start(args, addr);
    }
    if let Some(mode) = mode {
        let report = modes::bench::run(&mode, addr)?;
        if args.json_stream {
            stream_event("end", &report.to_json());
        } else if args.json {
            output::line(format_args!("{}", report.to_json()));
        } else {
            output::text(format_args!("{report}"));
        }
        if let Some(e) = &report.error {
            output::err_line(format_args!("echo-client: {e}"));
        }
        return Ok(report.exit_code());
    }
    let config = BenchConfig {
        target: args.address.to_string(),
        connections,
        size: args.size(),
        depth: args.depth as usize,
        stop: match args.requests {
            Some(n) => StopAfter::Requests(n),
            None => StopAfter::Duration(args.duration),
        },
        warmup: args.warmup(),
        rate: args.rate,
        bulk: args.bulk,
        in_flight: args.in_flight,
        timeout: args.timeout,
        server_pid: args.server_pid,
        progress: false,
        intervals: interval_setting(args),
        format: args.format,
        tls,
        rx_stamps: !args.rtt_clock,
    };
    let config = BenchConfig {
        progress: config.wants_progress(args.quiet || args.json || args.json_stream),
        ..config
    };
    let report = bench::run(&config, addr)?;
    let with_tls = |document: String| match &handshake {
        Some(facts) => facts.append_to(&document),
        None => document,
    };
    if args.json_stream {
        stream_event("end", &with_tls(report.to_json()));
    } else if args.json {
        output::line(format_args!("{}", with_tls(report.to_json())));
    } else {
        if let Some(facts) = &handshake {
            for line in facts.lines() {
                output::line(format_args!("{line}"));
            }
        }
        output::text(format_args!("{report}"));
    }
    if let Some(e) = &report.error {
        output::err_line(format_args!("echo-client: {e}"));
    }
    Ok(report.exit_code)
}

/// `--json-stream`'s first line: what the run is about to do.
fn stream_start(args: &BenchArgs, addr: SocketAddr) {
    let start = StreamStart {
        mode: "bench",
        service: args.mode.name(),
        target: args.address.to_string(),
        address: addr,
        connections: args.connections,
        size: args.size(),
        depth: args.depth,
        bulk: args.bulk,
        interval_s: interval_setting(args).map(|(period, _)| period.as_secs_f64()),
    };
    stream_event("start", &start.to_json());
}

/// Resolves the target and finds the address that accepts connections (a
/// name may resolve to an IPv6 address nothing listens on), with one probe
/// connection, so a dead target fails with one clear line. With `--tls`
/// the probe completes a handshake: a certificate the client does not
/// trust fails here, once, and its facts head the report.
fn reachable_address(
    args: &BenchArgs,
    tls: Option<TlsClient>,
) -> Result<(SocketAddr, Session, Option<TlsFacts>), ClientError> {
    let addrs = args.address.resolve()?;
    let mut session = Session::new()?;
    session.set_tls(tls);
    let probe = session.connect_any(&addrs, args.timeout)?;
    let addr = probe.addr;
    session.close(probe.stream);
    Ok((addr, session, probe.tls))
}
