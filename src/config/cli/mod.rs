//! The command line: the clap definition of every flag (`values.rs` checks
//! each value, `checks.rs` the flags together and turns them into
//! [`crate::config::Config`]).
//!
//! This is the only module that knows clap. Every value is checked here, so
//! a bad one ends in clap's one-line `error: invalid value …` and exit code
//! 2 before anything is bound or logged.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::builder::BoolishValueParser;
use clap::Parser;

use crate::config::units::{parse_seconds, parse_size};
use crate::config::ListenGroup;
use crate::logic::busy_poll::BusyPollSetting;
use crate::logic::service::{Mode, PrimeTest};
use crate::os::listener::{parse_listen_ip, ListenIp};
use crate::server::logging::LogFormat;

mod checks;
pub mod completions;
#[cfg(test)]
mod tests;
mod values;

use completions::Shell;
use values::{
    allow_cidr, allow_host_name, buffer_size, busy_poll, listen_group, max_connections, max_line,
    metrics_addr, mode, ports, prime_test, proxy_timeout, udp_bytes, udp_rate, workers,
};
pub use values::{Ports, Workers};

/// The end of `--help`: where settings come from besides flags.
const SOURCES_HELP: &str = "Every option can also be set by the environment variable shown \
with it ([env: ECHO_SERVER_...]) or in the --config file under its long name; flags win over \
variables, variables over the file, the file over the defaults. Boolean variables take \
true/false, 1/0, yes/no or on/off; ECHO_SERVER_METRICS_ALLOW_HOST takes a comma-separated list.";

/// TCP echo server for network diagnostics: every byte a client sends comes
/// back, in order, on one event-loop thread.
///
/// Examples and exit codes: `crate::config::help`.
#[derive(Debug, Parser)]
#[command(
    name = "echo-server",
    version,
    long_about = None,
    after_help = crate::config::help::after_help(SOURCES_HELP)
)]
pub struct Cli {
    /// Read settings from this TOML file: keys are the long option names
    /// (`port = 7878`, `busy-poll = 0`), values as the flags take them.
    /// Flags and ECHO_SERVER_* variables override it.
    #[arg(long, env = "ECHO_SERVER_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,

    /// Print the effective settings as TOML, each with where it came from
    /// (a flag, a variable, the file or the default), and exit.
    #[arg(long)]
    pub print_config: bool,

    /// Print echo-server's completion script for SHELL on stdout and exit
    /// (for bash: > /etc/bash_completion.d/echo-server).
    #[arg(long, value_name = "SHELL", value_enum)]
    pub completions: Option<Shell>,

    /// Port(s) to listen on: one port, or a list and ranges such as
    /// 7000-7010,8443 (at most 1024 in all, with --listen's); 0 alone lets
    /// the kernel pick a free one (the banner shows it). Not listened on
    /// when only --listen is given.
    #[arg(
        short,
        long,
        env = "ECHO_SERVER_PORT",
        default_value = "7878",
        value_name = "PORTS",
        allow_negative_numbers = true,
        value_parser = ports
    )]
    pub port: Option<Ports>,

    /// Address to listen on: 0.0.0.0 for all IPv4 interfaces only, :: for
    /// IPv6 and IPv4, or one address of this host such as 127.0.0.1 or
    /// ::1; a link-local IPv6 address with its interface, as in
    /// fe80::1%eth0. Without it: :: (IPv6 and IPv4) where the host has
    /// IPv6, else 0.0.0.0 (the log says so).
    #[arg(short, long, env = "ECHO_SERVER_BIND", value_name = "ADDR", value_parser = parse_listen_ip)]
    pub bind: Option<ListenIp>,

    /// Also listen on ADDR:PORTS, with its own --mode after a slash
    /// (repeatable), as inetd does: --listen 127.0.0.1:9/discard --listen
    /// [::1]:19/chargen. PORTS as --port takes them; IPv6 in brackets.
    #[arg(long, env = "ECHO_SERVER_LISTEN", value_name = "ADDR:PORTS[/MODE]", value_parser = listen_group)]
    pub listen: Vec<ListenGroup>,

    /// Admit only clients from these networks (repeatable or
    /// comma-separated CIDRs such as 10.0.0.0/8 or 2001:db8::/32, or single
    /// addresses); others are closed at once and logged as REJECT. IPv4
    /// clients of a :: listener match IPv4 networks.
    #[arg(long, env = "ECHO_SERVER_ALLOW", value_name = "CIDR", value_delimiter = ',', value_parser = allow_cidr)]
    pub allow: Vec<String>,

    /// Most connections open at once from one client address; more are
    /// closed at once and logged as REJECT.
    #[arg(long, env = "ECHO_SERVER_MAX_PER_SOURCE", value_name = "N", allow_negative_numbers = true, value_parser = max_connections)]
    pub max_per_source: Option<usize>,

    /// Every connection starts with a PROXY protocol header (v1 or v2, as
    /// HAProxy, AWS NLB, Envoy and nginx send it): the client it names is
    /// the one logged, shown and checked by --allow and --max-per-source;
    /// its bytes are never echoed. A connection without a valid header is
    /// closed and logged as REJECT; LOCAL (health checks) is served as
    /// its direct peer.
    #[arg(long, env = "ECHO_SERVER_PROXY_PROTOCOL", value_parser = BoolishValueParser::new())]
    pub proxy_protocol: bool,

    /// --proxy-protocol: seconds a connection may take to send its whole
    /// header before it is closed. Decimals allowed.
    #[arg(long, env = "ECHO_SERVER_PROXY_TIMEOUT", default_value = "5", value_name = "SECS", allow_negative_numbers = true, value_parser = proxy_timeout)]
    pub proxy_timeout: Duration,

    /// Length of the queue of connections waiting to be accepted (the kernel
    /// caps it at net.core.somaxconn).
    #[arg(long, env = "ECHO_SERVER_BACKLOG", default_value_t = 1024, allow_negative_numbers = true, value_parser = clap::value_parser!(u32).range(1..=65535))]
    pub backlog: u32,

    /// Most bytes held per connection while its client is not reading (the
    /// server then stops reading from it); also the read size. Accepts K and
    /// M suffixes.
    #[arg(long, env = "ECHO_SERVER_BUFFER_SIZE", default_value = "64K", value_name = "BYTES", allow_negative_numbers = true, value_parser = buffer_size)]
    pub buffer_size: usize,

    /// Copy every byte through the server's memory. By default a connection
    /// whose client streams faster than the server copies (512 KiB or more
    /// wait to be read) switches to splice(2) through a kernel pipe, which
    /// echoes the same bytes with less than half the CPU; this turns that
    /// off, for comparison or on kernels where it misbehaves.
    #[arg(long, env = "ECHO_SERVER_NO_SPLICE", value_parser = BoolishValueParser::new())]
    pub no_splice: bool,

    /// How many bytes must wait to be read before a streaming connection
    /// switches to the kernel pipe; 0 switches at its first read that fills
    /// the buffer. Below it, copying is the faster path (the bytes are still
    /// in the CPU's cache). Accepts K and M suffixes.
    // The default sits where the two paths break even (BENCHMARKS.md, "Copy
    // or splice: by how much is in flight"): a queue that deep only forms
    // when the client keeps that much in flight, so the bytes waiting tell
    // the two kinds of stream apart.
    #[arg(long, env = "ECHO_SERVER_SPLICE_BACKLOG", default_value = "512K", value_name = "BYTES", allow_negative_numbers = true, value_parser = parse_size)]
    pub splice_backlog: usize,

    /// Close a connection after this many seconds without a byte in either
    /// direction; 0 never does. Decimals allowed.
    #[arg(long, env = "ECHO_SERVER_IDLE_TIMEOUT", default_value = "300", value_name = "SECS", allow_negative_numbers = true, value_parser = parse_seconds)]
    pub idle_timeout: Duration,

    /// Before sleeping for events, keep polling for up to this many
    /// microseconds while traffic is dense, so that a client's next message
    /// finds the server awake. Waking a sleeping server costs tens of µs (on
    /// a VM, most of a loopback round trip); the window adapts, so traffic
    /// sparser than one event per window never spins. Costs CPU while
    /// traffic is dense; 0 turns it off. auto: 100, but off where spinning
    /// would take CPU from real work (one usable CPU, or a cgroup CPU quota
    /// of at most one CPU, as a Kubernetes CPU limit sets); the log says so.
    #[arg(long, env = "ECHO_SERVER_BUSY_POLL", default_value = "auto", value_name = "USECS|auto", allow_negative_numbers = true, value_parser = busy_poll)]
    pub busy_poll: BusyPollSetting,

    /// Most connections served at once; more are accepted, closed and logged
    /// as REJECT.
    #[arg(long, env = "ECHO_SERVER_MAX_CONNECTIONS", default_value_t = 10_000, value_name = "N", allow_negative_numbers = true, value_parser = max_connections)]
    pub max_connections: usize,

    /// On Ctrl+C or SIGTERM, how many seconds to spend flushing pending echoes
    /// before closing anyway.
    #[arg(long, env = "ECHO_SERVER_SHUTDOWN_TIMEOUT", default_value = "5", value_name = "SECS", allow_negative_numbers = true, value_parser = parse_seconds)]
    pub shutdown_timeout: Duration,

    /// Log a STATS line every this many seconds; 0 turns it off.
    #[arg(long, env = "ECHO_SERVER_STATS_INTERVAL", default_value = "60", value_name = "SECS", allow_negative_numbers = true, value_parser = parse_seconds)]
    pub stats_interval: Duration,

    /// Also log a DATA line for every burst of bytes received and echoed.
    #[arg(short, long, env = "ECHO_SERVER_VERBOSE", value_parser = BoolishValueParser::new())]
    pub verbose: bool,

    /// Log errors only (the banner and the final summary are still printed).
    // Not `conflicts_with = "verbose"`: clap would count ECHO_SERVER_QUIET=false
    // as given. config/sources.rs refuses both on from one source.
    #[arg(short, long, env = "ECHO_SERVER_QUIET", value_parser = BoolishValueParser::new())]
    pub quiet: bool,

    /// Log format: `text` lines, or `json` (one object per line, for log
    /// pipelines).
    #[arg(long, env = "ECHO_SERVER_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text, value_name = "FORMAT")]
    pub log_format: LogFormat,

    /// Serve a live dashboard (/), Prometheus metrics (/metrics),
    /// /stats.json and /healthz over HTTP on ADDR (IP:PORT, IP, PORT or
    /// :PORT; localhost is 127.0.0.1).
    /// Without ADDR: 127.0.0.1:9187. It lists client addresses: keep it on
    /// loopback or a trusted network.
    #[arg(long, env = "ECHO_SERVER_METRICS", value_name = "ADDR", num_args = 0..=1, default_missing_value = "127.0.0.1:9187", value_parser = metrics_addr)]
    pub metrics: Option<SocketAddr>,

    /// Also answer endpoint requests for this host name (repeatable). By
    /// default only requests for an IP address or localhost are answered
    /// and others get 421, so that a web page cannot read the endpoint by
    /// DNS rebinding; give the DNS name a public --metrics bind is reached by.
    #[arg(long, env = "ECHO_SERVER_METRICS_ALLOW_HOST", value_name = "NAME", value_delimiter = ',', value_parser = allow_host_name)]
    pub metrics_allow_host: Vec<String>,

    /// What to do with the bytes: echo (back as sent), upper (ASCII letters
    /// uppercased), discard (RFC 863: read, count, send nothing), chargen
    /// (RFC 864: send 72-character lines of printable ASCII as fast as the
    /// client reads), framed (`*` on connect; `^abc$` → `bcd\n`; `^P7$` →
    /// `prime\n` or `composite\n`, checked on worker threads).
    #[arg(long, env = "ECHO_SERVER_MODE", default_value = "echo", value_name = "MODE", value_parser = mode)]
    pub mode: Mode,

    /// echo and upper: lines longer than N bytes before their newline are
    /// answered `error: line too long (max N)` and dropped up to their
    /// newline. Needs a --buffer-size at least N + 64.
    #[arg(long, env = "ECHO_SERVER_MAX_LINE", value_name = "N", allow_negative_numbers = true, value_parser = max_line)]
    pub max_line: Option<usize>,

    /// framed: threads that run the prime checks; auto: the CPUs this
    /// process may use, minus one (the event loop's), at least one.
    #[arg(long, env = "ECHO_SERVER_WORKERS", default_value = "auto", value_name = "N|auto", allow_negative_numbers = true, value_parser = workers)]
    pub workers: Workers,

    /// framed: how `^P<n>$` is checked: trial-division (up to √n, as the
    /// protocol's origin does: seconds for a large prime) or miller-rabin
    /// (exact for every 64-bit number, in microseconds).
    #[arg(long, env = "ECHO_SERVER_PRIME_TEST", default_value = "trial-division", value_name = "TEST", value_parser = prime_test)]
    pub prime_test: PrimeTest,

    /// Also serve UDP echo (RFC 862) on the same ports: each datagram goes
    /// back to its sender unchanged (up to 65,507 bytes, never a larger
    /// reply), within --udp-rate and --udp-bytes per source address; the
    /// rest are dropped and counted. Off by default.
    #[arg(long, env = "ECHO_SERVER_UDP", value_parser = BoolishValueParser::new())]
    pub udp: bool,

    /// UDP: datagrams per second echoed to each source address (also the
    /// burst a quiet source may send at once); more are dropped and counted.
    #[arg(long, env = "ECHO_SERVER_UDP_RATE", default_value = "100/s", value_name = "N/s", allow_hyphen_values = true, value_parser = udp_rate)]
    pub udp_rate: u64,

    /// UDP: bytes per second echoed to each source address (also its burst,
    /// never less than one 65,507-byte datagram). Accepts K and M suffixes.
    #[arg(long, env = "ECHO_SERVER_UDP_BYTES", default_value = "1MB/s", value_name = "BYTES/s", allow_hyphen_values = true, value_parser = udp_bytes)]
    pub udp_bytes: u64,

    /// Serve TLS (1.2 and 1.3) with this PEM certificate chain (leaf
    /// first); needs --tls-key. Reloaded on SIGHUP.
    #[arg(long, env = "ECHO_SERVER_TLS_CERT", value_name = "PEM")]
    pub tls_cert: Option<PathBuf>,

    /// The private key of --tls-cert (PEM: PKCS#8, PKCS#1 or SEC1).
    #[arg(long, env = "ECHO_SERVER_TLS_KEY", value_name = "PEM")]
    pub tls_key: Option<PathBuf>,

    /// Serve TLS with a key and certificate made at start for localhost,
    /// this host's name and the loopback addresses; the banner prints the
    /// certificate's SHA-256 fingerprint for clients to pin. For a lab.
    #[arg(long, env = "ECHO_SERVER_TLS_SELF_SIGNED", value_parser = BoolishValueParser::new())]
    pub tls_self_signed: bool,

    /// Require client certificates signed by a CA in this PEM file (mutual
    /// TLS); clients without one are refused and logged. Reloaded on SIGHUP.
    #[arg(long, env = "ECHO_SERVER_TLS_CLIENT_CA", value_name = "PEM")]
    pub tls_client_ca: Option<PathBuf>,

    /// Serve TLS on this port and plain TCP on --port; without it, TLS
    /// only, on --port. 0 lets the kernel pick (the banner shows it).
    #[arg(long, env = "ECHO_SERVER_TLS_PORT", value_name = "N")]
    pub tls_port: Option<u16>,

    /// Close a TLS connection whose handshake has not finished this many
    /// seconds after it was accepted. Decimals allowed.
    #[arg(long, env = "ECHO_SERVER_HANDSHAKE_TIMEOUT", default_value = "10", value_name = "SECS", allow_negative_numbers = true, value_parser = parse_seconds)]
    pub handshake_timeout: Duration,
}
