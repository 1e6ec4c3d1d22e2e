//! `echo-server`: parses the command line, binds, and runs the event loop.

use std::error::Error;
use std::process::ExitCode;

use clap::Parser;
use log::{info, warn};

use echo_server::cli::Cli;
use echo_server::limits::{raise_open_file_limit, FileLimit};
use echo_server::signal::{self, StopSignals};
use echo_server::{listener, logging, Config, Server, Stop};

/// Exit code for "could not start" (2 is clap's, for a bad command line).
const EXIT_CANNOT_START: u8 = 1;
/// Exit code after a second stop signal: 128 + SIGINT, as shells report it.
const EXIT_ABANDONED: u8 = 130;
/// Descriptors the process needs besides connections: stdio, listener,
/// poll, signal pipes, and one spare for the accept that gets rejected.
const RESERVED_FDS: u64 = 10;
/// Queue of endpoint clients not yet accepted: scrapers and browsers, few.
const METRICS_BACKLOG: u32 = 128;

fn main() -> ExitCode {
    signal::restore_default_sigpipe();
    let config = Cli::parse().into_config();
    match run(config) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(EXIT_CANNOT_START)
        }
    }
}

fn run(config: Config) -> Result<ExitCode, Box<dyn Error>> {
    logging::init(config.log_level, config.log_format)?;
    let limit = raise_open_file_limit();
    let listener = listener::bind(config.listen, config.backlog)?;
    let signals = StopSignals::install()?;
    let max_connections = config.max_connections;
    let metrics = config.metrics;
    let mut server = Server::new(listener, config, signals)?;
    let metrics_addr = match metrics {
        // Same clear errors as the echo port ("address in use", …).
        Some(addr) => {
            let echo_port = server.local_addr().port();
            let bound = listener::bind(addr, METRICS_BACKLOG).map_err(|e| {
                if e.kind() == std::io::ErrorKind::AddrInUse && addr.port() == echo_port {
                    format!(
                        "--metrics: cannot listen on {addr}: the echo port is {echo_port}; \
                         give --metrics another port"
                    )
                } else {
                    format!("--metrics: {}", e.for_option("--metrics"))
                }
            })?;
            Some(server.serve_metrics(bound)?)
        }
        None => None,
    };

    println!("Echo Server v{}", env!("CARGO_PKG_VERSION"));
    println!("Listening on {}", server.local_addr());
    if let Some(addr) = metrics_addr {
        println!("Metrics on http://{addr}/ (dashboard /, /metrics, /stats.json, /healthz)");
    }
    println!("Press Ctrl+C to stop");
    log_file_limit(limit, max_connections);

    let stop = server.run()?;
    // Through the log's writer: after a stop, a reader of stdout that went
    // away must not turn the clean exit into a death by SIGPIPE.
    logging::print_line(&server.stats().summary().to_string());
    Ok(match stop {
        Stop::Clean => ExitCode::SUCCESS,
        Stop::Abandoned => ExitCode::from(EXIT_ABANDONED),
    })
}

fn log_file_limit(limit: FileLimit, max_connections: usize) {
    let show = |n: Option<u64>| n.map_or_else(|| "unlimited".to_string(), |n| n.to_string());
    if limit.before == limit.after {
        info!(target: "LIMIT", "open file limit is {}", show(limit.after));
    } else {
        info!(
            target: "LIMIT",
            "open file limit raised from {} to {}",
            show(limit.before),
            show(limit.after)
        );
    }
    if let Some(after) = limit.after {
        let usable = after.saturating_sub(RESERVED_FDS);
        if usable < max_connections as u64 {
            warn!(
                target: "LIMIT",
                "the open file limit allows about {usable} connections, fewer than \
                 --max-connections {max_connections}; raise it with `ulimit -n`"
            );
        }
    }
}
