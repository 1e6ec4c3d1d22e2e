//! `echo-server`: parses the command line, binds, and runs the event loop.

use std::error::Error;
use std::io::Write;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use log::{info, warn};

use echo_server::config::sources::{self, Startup};
use echo_server::os::limits::check_listener_fds;
use echo_server::os::limits::{raise_open_file_limit, FileLimit};
use echo_server::os::signal::{self, StopSignals};
use echo_server::os::{listener, log_writer};
use echo_server::server::tls::TlsServing;
use echo_server::server::{listeners, logging, reserved_fds};
use echo_server::{Config, Server, Stop};

/// Exit code for "could not start" (2 is clap's, for a bad command line,
/// variable or --config file).
const EXIT_CANNOT_START: u8 = 1;
/// Exit code after a second stop signal is 128 + its number, as shells
/// report a death by that signal: 130 for SIGINT, 143 for SIGTERM.
const EXIT_SIGNAL_BASE: i32 = 128;
/// After the loop, how long the log's last lines may take at least, even
/// when the drain used all of `--shutdown-timeout`.
const LOG_GRACE: Duration = Duration::from_millis(100);
/// Queue of endpoint clients not yet accepted: scrapers and browsers, few.
const METRICS_BACKLOG: u32 = 128;

fn main() -> ExitCode {
    signal::restore_default_sigpipe();
    let config = match sources::load(std::env::args_os()) {
        Ok(Startup::Run(config)) => *config,
        Ok(Startup::Print(text)) => {
            let mut out = std::io::stdout().lock();
            return match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
                Ok(()) => ExitCode::SUCCESS,
                Err(_) => ExitCode::from(EXIT_CANNOT_START),
            };
        }
        // A bad flag, variable or --config file: clap's message, exit 2
        // (help and --version: exit 0).
        Err(e) => e.exit(),
    };
    match run(config) {
        Ok(code) => code,
        Err(e) => {
            // A stderr that cannot take it (full, closed) leaves only the
            // exit code to tell; `eprintln!` would panic and exit 101.
            let _ = writeln!(std::io::stderr(), "error: {e}");
            ExitCode::from(EXIT_CANNOT_START)
        }
    }
}

fn run(mut config: Config) -> Result<ExitCode, Box<dyn Error>> {
    let started = Instant::now();
    logging::init(config.log_level, config.log_format)?;
    let busy_poll_off_because = config.decide_busy_poll();
    let limit = raise_open_file_limit();
    let dual_stack = !config.dual_stack_default || listener::dual_stack_available();
    let plan = listeners::plan(&config, dual_stack);
    let max_connections = config.max_connections;
    let reserved = reserved_fds(&config);
    check_listener_fds(plan.listeners.len(), max_connections, reserved)?;
    // Before binding: a bad certificate or key stops the start (exit 1).
    let tls = config
        .tls
        .clone()
        .map(|settings| TlsServing::start(*settings))
        .transpose()?;
    let bound = listeners::open_all(&plan, config.backlog)?;
    let signals = StopSignals::install_server()?;
    let metrics = config.metrics;
    // --tls-port is served on the address the first listener has.
    let tls_ip = plan
        .listeners
        .first()
        .map_or(config.listen.ip(), |first| first.addr.ip());
    let backlog = config.backlog;
    let mut server = Server::new(bound, config, signals)?;
    let tls_banner = match tls {
        Some(serving) => {
            let tls_listener = match serving.port() {
                Some(port) => Some(
                    listener::bind(std::net::SocketAddr::new(tls_ip, port), backlog)
                        .map_err(|e| format!("--tls-port: {}", e.for_option("--tls-port")))?,
                ),
                None => None,
            };
            let warning = serving.expired_warning();
            let about = serving.banner();
            let addr = server.serve_tls(serving, tls_listener)?;
            Some((format!("TLS on {addr} {about}"), warning))
        }
        None => None,
    };
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

    // Through the log's writer, like every line: stdout may not be taking
    // them (a paused terminal, a full disk).
    logging::print_line(&format!("Echo Server v{}", env!("CARGO_PKG_VERSION")));
    logging::print_line(&format!("Listening on {}", server.listening_on()));
    if let Some(line) = server.udp_banner() {
        logging::print_line(&line);
    }
    logging::print_line(&mode_line(&server));
    if let Some((line, _)) = &tls_banner {
        logging::print_line(line);
    }
    if let Some(addr) = metrics_addr {
        logging::print_line(&format!(
            "Metrics on http://{addr}/ (dashboard /, /metrics, /stats.json, /healthz)"
        ));
    }
    logging::print_line("Press Ctrl+C to stop");
    if let Some(reason) = plan.ipv4_only_because {
        info!(
            target: "LISTEN",
            "{reason}: listening on IPv4 only (0.0.0.0); --bind chooses the address"
        );
    }
    if let Some(reason) = busy_poll_off_because {
        info!(target: "CPU", "busy polling off: {reason}; --busy-poll USECS turns it on");
    }
    log_file_limit(limit, max_connections, reserved);
    if let Some((_, Some(warning))) = &tls_banner {
        warn!(target: "TLS", "{warning}");
    }

    let stop = server.run()?;
    let dropped = log_writer::dropped();
    logging::print_summary(&server.stats().summary(dropped, started.elapsed()));
    // The last lines get what is left of the shutdown timeout; a reader
    // that takes none of them cannot hold the exit past it.
    let ended = Instant::now();
    let (log_deadline, abandoned) = match stop {
        Stop::Clean => (
            server
                .stop_deadline()
                .map_or(ended + LOG_GRACE, |deadline| {
                    deadline.max(ended + LOG_GRACE)
                }),
            None,
        ),
        Stop::Abandoned(by) => (ended + LOG_GRACE, Some(by)),
    };
    // A stop signal while they wait still means "exit at once".
    let abandoned = abandoned.or(server.wait_for_log(log_deadline)?);
    Ok(abandoned.map_or(ExitCode::SUCCESS, |by| {
        ExitCode::from(u8::try_from(EXIT_SIGNAL_BASE + by.number).unwrap_or(u8::MAX))
    }))
}

/// The banner's line for `--mode`: the mode, and what shapes it.
fn mode_line(server: &Server) -> String {
    let config = server.config();
    let mut line = format!("Mode: {}", config.mode.name());
    if let Some(max) = config.max_line {
        line.push_str(&format!(" (lines of at most {max} bytes)"));
    }
    if let Some(workers) = server.prime_workers() {
        line.push_str(&format!(
            " ({workers} prime-check worker{}, {})",
            if workers == 1 { "" } else { "s" },
            config.prime_test.name()
        ));
    }
    line
}

/// Logs the open-file limit, and warns when it leaves fewer descriptors
/// than `max_connections` beside the `reserved` ones the server holds.
fn log_file_limit(limit: FileLimit, max_connections: usize, reserved: u64) {
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
        let usable = after.saturating_sub(reserved);
        if usable < max_connections as u64 {
            warn!(
                target: "LIMIT",
                "the open file limit allows about {usable} connections, fewer than \
                 --max-connections {max_connections}; raise it with `ulimit -n`"
            );
        }
    }
}
