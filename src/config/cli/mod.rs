//! The command line: clap definitions and their translation into [`Config`].
//!
//! This is the only module that knows clap. Every value is checked here, so
//! a bad one ends in clap's one-line `error: invalid value …` and exit code
//! 2 before anything is bound or logged.

use std::net::SocketAddr;
use std::ops::RangeInclusive;
use std::path::PathBuf;
use std::time::Duration;

use clap::builder::BoolishValueParser;
use clap::Parser;
use log::LevelFilter;

use crate::config::tls::TlsFlags;
use crate::config::units::{parse_seconds, parse_size};
use crate::config::{Config, ListenGroup, UdpSettings, DEFAULT_METRICS};
use crate::logic::busy_poll::BusyPollSetting;
use crate::logic::cidr::{parse_cidr, AllowList};
use crate::logic::port_list::{parse_listen, parse_port_list, MAX_LISTEN_PORTS};
use crate::logic::service::{Mode, PrimeTest, FRAMED_HEADROOM, LINES_HEADROOM};
use crate::os::listener::{check_listenable, parse_listen_ip, ListenIp};
use crate::server::logging::LogFormat;

/// The end of `--help`: where settings come from besides flags.
const SOURCES_HELP: &str = "Every option can also be set by the environment variable shown \
with it ([env: ECHO_SERVER_...]) or in the --config file under its long name; flags win over \
variables, variables over the file, the file over the defaults. Boolean variables take \
true/false, 1/0, yes/no or on/off; ECHO_SERVER_METRICS_ALLOW_HOST takes a comma-separated list.";

/// Smallest and largest accepted `--buffer-size`.
const BUFFER_SIZES: RangeInclusive<usize> = 1..=16 << 20;
/// Accepted `--busy-poll`: beyond 100 ms a wait that polls is no longer
/// catching a peer that answers at once, only burning the CPU.
const BUSY_POLL_USECS: RangeInclusive<u64> = 0..=100_000;
/// Accepted `--max-connections`: connection tokens hold the slab key in 32
/// bits, and a million is far beyond any descriptor limit in practice.
const MAX_CONNECTIONS: RangeInclusive<usize> = 1..=1_000_000;
/// Accepted `--max-line`: a line is held in the connection's buffer, which
/// is at most 16 MiB.
const MAX_LINE: RangeInclusive<usize> = 1..=16 << 20;
/// Accepted `--workers`: threads for prime checks.
const WORKERS: RangeInclusive<usize> = 1..=1024;
/// Accepted `--udp-rate`, datagrams per second per source: 0 would echo
/// nothing, and beyond ten million one source's limit is no limit.
const UDP_RATES: RangeInclusive<u64> = 1..=10_000_000;
/// Accepted `--udp-bytes`, bytes per second per source (up to 16 GiB/s).
const UDP_BYTES: RangeInclusive<u64> = 1..=16 << 30;

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

/// `--workers`: a count, or one less than the usable CPUs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Workers {
    /// The CPUs the process may use, minus one, at least one.
    Auto,
    /// This many.
    Count(usize),
}

impl Workers {
    /// How many threads, given the CPUs the process may use.
    pub fn resolve(self, cpus: usize) -> usize {
        match self {
            Workers::Auto => cpus.saturating_sub(1).max(1),
            Workers::Count(n) => n,
        }
    }
}

fn mode(text: &str) -> Result<Mode, String> {
    Mode::from_name(text.trim()).ok_or_else(|| {
        let names: Vec<&str> = Mode::ALL.iter().map(|m| m.name()).collect();
        format!("expected one of {}", names.join(", "))
    })
}

fn max_line(text: &str) -> Result<usize, String> {
    whole_number_in(text, &MAX_LINE, "of bytes such as 20", " bytes")
}

fn workers(text: &str) -> Result<Workers, String> {
    if text.trim() == "auto" {
        return Ok(Workers::Auto);
    }
    whole_number_in(text, &WORKERS, "such as 3, or auto", "").map(Workers::Count)
}

fn prime_test(text: &str) -> Result<PrimeTest, String> {
    [PrimeTest::TrialDivision, PrimeTest::MillerRabin]
        .into_iter()
        .find(|t| t.name() == text.trim())
        .ok_or_else(|| "expected trial-division or miller-rabin".to_string())
}

/// A DNS name for `--metrics-allow-host`: letters, digits, `-` and `_` in
/// dot-separated labels, no port; kept lower-case without a final dot.
fn allow_host_name(text: &str) -> Result<String, String> {
    let name = text.trim().trim_end_matches('.').to_ascii_lowercase();
    if name.contains(':') {
        return Err("expected a host name without a port, such as metrics.example.org".into());
    }
    let label_ok = |l: &str| {
        (1..=63).contains(&l.len())
            && l.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    };
    if name.len() > 253 || !name.split('.').all(label_ok) {
        return Err("expected a host name such as metrics.example.org".into());
    }
    Ok(name)
}

/// `IP:PORT`, `[IPv6]:PORT`, a bare `IP` (port 9187) or a bare `PORT`
/// (on 127.0.0.1); the IP is checked as `--bind`'s is.
fn metrics_addr(text: &str) -> Result<SocketAddr, String> {
    let text = text.trim();
    // `:PORT`, the exporters' convention, keeps the loopback default host.
    if let Some(port) = text.strip_prefix(':').filter(|rest| !rest.contains(':')) {
        return port
            .parse::<u16>()
            .map(|port| SocketAddr::new(DEFAULT_METRICS.ip(), port))
            .map_err(|_| {
                "expected IP:PORT (such as 127.0.0.1:9187), :PORT, an IP address or a port".into()
            });
    }
    if let Ok(port) = text.parse::<u16>() {
        return Ok(SocketAddr::new(DEFAULT_METRICS.ip(), port));
    }
    // localhost is loopback, whatever a resolver would say.
    if let Some(port) = text.strip_prefix("localhost") {
        let port = match port.strip_prefix(':') {
            Some(port) => port.parse::<u16>().map_err(|_| {
                "expected IP:PORT (such as 127.0.0.1:9187), an IP address or a port".to_string()
            })?,
            None if port.is_empty() => DEFAULT_METRICS.port(),
            None => {
                return Err(
                    "expected IP:PORT (such as 127.0.0.1:9187), an IP address or a port".into(),
                )
            }
        };
        return Ok(SocketAddr::new(DEFAULT_METRICS.ip(), port));
    }
    let (host, port) = if let Some(rest) = text.strip_prefix('[') {
        match rest.split_once("]:") {
            Some((host, port)) => (host, Some(port)),
            None => (rest.strip_suffix(']').unwrap_or(rest), None),
        }
    } else if text.matches(':').count() == 1 {
        let (host, port) = text.split_once(':').unwrap_or((text, ""));
        (host, Some(port))
    } else {
        (text, None)
    };
    let syntax =
        || "expected IP:PORT (such as 127.0.0.1:9187), an IP address or a port".to_string();
    let port = match port {
        Some(port) => port.parse::<u16>().map_err(|_| syntax())?,
        None => DEFAULT_METRICS.port(),
    };
    let ip = host.split('%').next().unwrap_or(host);
    if ip.parse::<std::net::IpAddr>().is_err() {
        return Err(syntax());
    }
    parse_listen_ip(host).map(|ip| ip.with_port(port))
}

/// `--port`'s ports: one port (0 included), or a list of ports and ranges.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ports(pub Vec<u16>);

fn ports(text: &str) -> Result<Ports, String> {
    if text.trim() == "0" {
        return Ok(Ports(vec![0]));
    }
    parse_port_list(text, MAX_LISTEN_PORTS).map(Ports)
}

/// `--listen ADDR:PORTS[/MODE]`, its address checked as `--bind`'s and its
/// mode one the server has.
fn listen_group(text: &str) -> Result<ListenGroup, String> {
    let spec = parse_listen(text, MAX_LISTEN_PORTS)?;
    check_listenable(spec.ip)?;
    let mode = match &spec.mode {
        Some(name) => Some(mode(name)?),
        None => None,
    };
    Ok(ListenGroup {
        ip: spec.ip,
        ports: spec.ports,
        mode,
    })
}

/// An `--allow` network, checked here and kept as written.
fn allow_cidr(text: &str) -> Result<String, String> {
    parse_cidr(text).map(|_| text.trim().to_string())
}

fn proxy_timeout(text: &str) -> Result<Duration, String> {
    let secs = parse_seconds(text)?;
    if secs.is_zero() {
        return Err("must be more than 0 seconds".into());
    }
    Ok(secs)
}

fn buffer_size(text: &str) -> Result<usize, String> {
    let size = parse_size(text)?;
    if BUFFER_SIZES.contains(&size) {
        Ok(size)
    } else {
        Err(format!(
            "must be between {} byte and {} MiB",
            BUFFER_SIZES.start(),
            BUFFER_SIZES.end() >> 20
        ))
    }
}

fn busy_poll(text: &str) -> Result<BusyPollSetting, String> {
    if text == "auto" {
        return Ok(BusyPollSetting::Auto);
    }
    whole_number_in(
        text,
        &BUSY_POLL_USECS,
        "of microseconds such as 100, or auto",
        " microseconds",
    )
    .map(|usecs| BusyPollSetting::Window(Duration::from_micros(usecs)))
}

/// `--udp-rate`: `N/s` or `N`, datagrams per second.
fn udp_rate(text: &str) -> Result<u64, String> {
    let number = per_second(text);
    whole_number_in(
        number,
        &UDP_RATES,
        "of datagrams per second such as 100/s",
        "/s",
    )
}

/// `--udp-bytes`: a size (`parse_size`'s suffixes) per second, as `1MB/s`.
fn udp_bytes(text: &str) -> Result<u64, String> {
    let bytes = parse_size(per_second(text))? as u64;
    if UDP_BYTES.contains(&bytes) {
        Ok(bytes)
    } else {
        Err(format!(
            "must be between {} and {} bytes per second (such as 64K/s or 1MB/s)",
            UDP_BYTES.start(),
            UDP_BYTES.end()
        ))
    }
}

/// The number of a per-second rate: `100/s` and `100` are the same.
fn per_second(text: &str) -> &str {
    let text = text.trim();
    text.strip_suffix("/s").unwrap_or(text)
}

fn max_connections(text: &str) -> Result<usize, String> {
    whole_number_in(text, &MAX_CONNECTIONS, "such as 10000", "")
}

/// A whole number within `range`; `example` and `unit` word the errors.
fn whole_number_in<T>(
    text: &str,
    range: &RangeInclusive<T>,
    example: &str,
    unit: &str,
) -> Result<T, String>
where
    T: std::str::FromStr + PartialOrd + std::fmt::Display,
{
    let n: T = text
        .trim()
        .parse()
        .map_err(|_| format!("expected a whole number {example}"))?;
    if range.contains(&n) {
        Ok(n)
    } else {
        Err(format!(
            "must be between {} and {}{unit}",
            range.start(),
            range.end()
        ))
    }
}

/// Zero means "off" for the optional intervals.
fn nonzero(duration: Duration) -> Option<Duration> {
    (!duration.is_zero()).then_some(duration)
}

impl Cli {
    /// The TLS flags, to be checked together.
    fn tls_flags(&self) -> TlsFlags {
        TlsFlags {
            cert: self.tls_cert.clone(),
            key: self.tls_key.clone(),
            self_signed: self.tls_self_signed,
            client_ca: self.tls_client_ca.clone(),
            port: self.tls_port,
            handshake_timeout: self.handshake_timeout,
        }
    }

    /// Settings that do not go together, as the error to stop with.
    pub fn conflicts(&self) -> Option<String> {
        if let Some(message) = self.listener_conflicts() {
            return Some(message);
        }
        // --print-config shows each TLS flag as given, alone too; the
        // pairs are checked when the server is to start.
        if let Some(message) = self.tls_flags().conflicts().filter(|_| !self.print_config) {
            return Some(message);
        }
        let buffer = self.buffer_size;
        if let Some(max) = self.max_line {
            if !self.mode.takes_lines() {
                return Some(format!(
                    "--max-line applies to --mode echo and upper, not {}",
                    self.mode.name()
                ));
            }
            if max.saturating_add(LINES_HEADROOM) > buffer {
                return Some(format!(
                    "--max-line {max} needs a --buffer-size of at least {} (the line is held \
                     in the connection's buffer, with room for the error)",
                    max + LINES_HEADROOM
                ));
            }
        }
        if self.mode == Mode::Framed && buffer < 2 * FRAMED_HEADROOM {
            return Some(format!(
                "--mode framed needs a --buffer-size of at least {} (a frame is held in the \
                 connection's buffer, with room kept for replies)",
                2 * FRAMED_HEADROOM
            ));
        }
        None
    }

    /// `--port` and `--listen` together: the bound on listeners, each
    /// address and port named once, and the buffer a framed one needs.
    fn listener_conflicts(&self) -> Option<String> {
        let ports = self.port.as_ref().map_or(0, |p| p.0.len());
        let total = ports + self.listen.iter().map(|g| g.ports.len()).sum::<usize>();
        if total > MAX_LISTEN_PORTS {
            return Some(format!(
                "--port and --listen name {total} ports in all; at most {MAX_LISTEN_PORTS} \
                 (each is a listening socket and a file descriptor)"
            ));
        }
        let bind_ip = self.bind.map(|b| b.ip);
        let mut seen = std::collections::HashSet::new();
        let port_ips = self
            .port
            .iter()
            .flat_map(|p| p.0.iter().map(|&port| (bind_ip, port)));
        let group_ips = self
            .listen
            .iter()
            .flat_map(|g| g.ports.iter().map(|&port| (Some(g.ip), port)));
        for (ip, port) in port_ips.chain(group_ips) {
            if port != 0 && !seen.insert((ip, port)) {
                let ip = ip.map_or_else(|| "the default address".to_string(), |ip| ip.to_string());
                return Some(format!(
                    "port {port} on {ip} is named twice by --port and --listen"
                ));
            }
        }
        let framed = self.listen.iter().any(|g| g.mode == Some(Mode::Framed));
        if framed && self.buffer_size < 2 * FRAMED_HEADROOM {
            return Some(format!(
                "--listen …/framed needs a --buffer-size of at least {}",
                2 * FRAMED_HEADROOM
            ));
        }
        None
    }

    /// The checked settings these arguments ask for.
    pub fn into_config(self) -> Config {
        let tls = self.tls_flags().into_settings().map(Box::new);
        let log_level = if self.quiet {
            LevelFilter::Error
        } else if self.verbose {
            LevelFilter::Debug
        } else {
            LevelFilter::Info
        };
        let ports = self.port.map_or_else(Vec::new, |p| p.0);
        let first = ports.first().copied().unwrap_or(0);
        let listen = match self.bind {
            Some(bind) => bind.with_port(first),
            None => SocketAddr::from((std::net::Ipv6Addr::UNSPECIFIED, first)),
        };
        let allow = (!self.allow.is_empty()).then(|| {
            // Each was checked by its value parser.
            AllowList::parse(self.allow.iter().map(String::as_str)).unwrap_or_default()
        });
        Config {
            listen,
            ports,
            listen_more: self.listen,
            dual_stack_default: self.bind.is_none(),
            allow,
            max_per_source: self.max_per_source,
            proxy_protocol: self.proxy_protocol.then_some(self.proxy_timeout),
            backlog: self.backlog,
            buffer_size: self.buffer_size,
            splice: !self.no_splice,
            splice_backlog: self.splice_backlog,
            idle_timeout: nonzero(self.idle_timeout),
            busy_poll: self.busy_poll,
            max_connections: self.max_connections,
            shutdown_timeout: self.shutdown_timeout,
            stats_interval: nonzero(self.stats_interval),
            log_level,
            log_format: self.log_format,
            metrics: self.metrics,
            metrics_allow_hosts: self.metrics_allow_host,
            mode: self.mode,
            max_line: self.max_line,
            workers: self.workers,
            prime_test: self.prime_test,
            udp: self.udp.then_some(UdpSettings {
                rate: self.udp_rate,
                bytes: self.udp_bytes,
            }),
            tls,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    fn parse(args: &[&str]) -> Result<Config, clap::Error> {
        let argv = std::iter::once("echo-server").chain(args.iter().copied());
        Cli::try_parse_from(argv).map(Cli::into_config)
    }

    // clap's own consistency checks on the whole definition.
    #[test]
    fn command_is_well_formed() {
        Cli::command().debug_assert();
    }

    // No arguments gives the documented defaults (README's options table;
    // FR-1: port 7878 on all interfaces, IPv6 and IPv4 where the host has
    // IPv6). The defaults themselves live
    // only in the clap attributes above.
    #[test]
    fn defaults_match_the_documented_config() {
        let documented = Config {
            listen: SocketAddr::from((std::net::Ipv6Addr::UNSPECIFIED, 7878)),
            ports: vec![7878],
            listen_more: Vec::new(),
            dual_stack_default: true,
            allow: None,
            max_per_source: None,
            proxy_protocol: None,
            backlog: 1024,
            buffer_size: 64 * 1024,
            splice: true,
            splice_backlog: 512 * 1024,
            idle_timeout: Some(Duration::from_secs(300)),
            busy_poll: BusyPollSetting::Auto,
            max_connections: 10_000,
            shutdown_timeout: Duration::from_secs(5),
            stats_interval: Some(Duration::from_secs(60)),
            log_level: LevelFilter::Info,
            log_format: LogFormat::Text,
            metrics: None,
            metrics_allow_hosts: Vec::new(),
            mode: Mode::Echo,
            max_line: None,
            workers: Workers::Auto,
            prime_test: PrimeTest::TrialDivision,
            udp: None,
            tls: None,
        };
        assert_eq!(parse(&[]).unwrap(), documented);
    }

    // Every flag reaches the config, short forms included.
    #[test]
    fn flags_reach_the_config() {
        let config = parse(&[
            "-p",
            "0",
            "-b",
            "::1",
            "--backlog",
            "64",
            "--buffer-size",
            "16K",
            "--splice-backlog",
            "1M",
            "--idle-timeout",
            "0.5",
            "--busy-poll",
            "200",
            "--max-connections",
            "3",
            "--shutdown-timeout",
            "1",
            "--stats-interval",
            "0",
            "-v",
        ])
        .unwrap();
        assert_eq!(config.listen, "[::1]:0".parse().unwrap());
        assert_eq!(config.backlog, 64);
        assert_eq!(config.buffer_size, 16384);
        assert_eq!(config.splice_backlog, 1 << 20);
        assert_eq!(parse(&["--splice-backlog", "0"]).unwrap().splice_backlog, 0);
        assert_eq!(config.idle_timeout, Some(Duration::from_millis(500)));
        assert_eq!(
            config.busy_poll,
            BusyPollSetting::Window(Duration::from_micros(200))
        );
        assert_eq!(
            parse(&["--busy-poll", "0"]).unwrap().busy_poll,
            BusyPollSetting::Window(Duration::ZERO)
        );
        assert_eq!(
            parse(&["--busy-poll", "auto"]).unwrap().busy_poll,
            BusyPollSetting::Auto
        );
        assert_eq!(config.max_connections, 3);
        assert_eq!(config.shutdown_timeout, Duration::from_secs(1));
        assert_eq!(config.stats_interval, None);
        assert_eq!(config.log_level, LevelFilter::Debug);
        assert_eq!(parse(&["-q"]).unwrap().log_level, LevelFilter::Error);
        assert_eq!(parse(&["--idle-timeout", "0"]).unwrap().idle_timeout, None);
        assert_eq!(
            parse(&["--metrics"]).unwrap().metrics,
            Some(DEFAULT_METRICS)
        );
        let metrics = |v: &str| parse(&["--metrics", v]).unwrap().metrics.unwrap();
        assert_eq!(metrics("0.0.0.0:80"), "0.0.0.0:80".parse().unwrap());
        assert_eq!(metrics("::1"), "[::1]:9187".parse().unwrap());
        assert_eq!(metrics("9000"), "127.0.0.1:9000".parse().unwrap());
        assert_eq!(
            parse(&["--log-format", "json"]).unwrap().log_format,
            LogFormat::Json
        );
        let modes = parse(&[
            "--mode",
            "upper",
            "--max-line",
            "20",
            "--workers",
            "3",
            "--prime-test",
            "miller-rabin",
        ])
        .unwrap();
        assert_eq!(modes.mode, Mode::Upper);
        assert_eq!(modes.max_line, Some(20));
        assert_eq!(modes.workers, Workers::Count(3));
        assert_eq!(modes.prime_test, PrimeTest::MillerRabin);
        assert_eq!(Workers::Auto.resolve(1), 1);
        assert_eq!(Workers::Auto.resolve(8), 7);
        assert_eq!(Workers::Count(2).resolve(8), 2);
    }

    // --metrics-allow-host repeats, and is kept lower-case without the
    // final dot; a port or a bad name is a usage error naming the flag.
    #[test]
    fn metrics_allow_host_names() {
        let config = parse(&[
            "--metrics-allow-host",
            "Metrics.Example.org.",
            "--metrics-allow-host",
            "box-1.lan",
        ])
        .unwrap();
        assert_eq!(
            config.metrics_allow_hosts,
            vec!["metrics.example.org".to_string(), "box-1.lan".to_string()]
        );
        for bad in ["host:9187", "", "a b", "a..b", "*.example.org", "[::1]"] {
            let error = parse(&["--metrics-allow-host", bad]).expect_err(bad);
            assert_eq!(error.exit_code(), 2, "{bad}");
            assert!(error.to_string().contains("--metrics-allow-host"), "{bad}");
        }
    }

    // A link-local address keeps its interface as the socket's scope, on
    // --bind and --metrics alike.
    #[test]
    fn link_local_addresses_keep_their_scope() {
        let listen = parse(&["--bind", "fe80::1%lo", "-p", "7"]).unwrap().listen;
        let std::net::SocketAddr::V6(v6) = listen else {
            panic!("{listen}")
        };
        assert_eq!((v6.ip().segments()[0], v6.port()), (0xfe80, 7));
        assert_ne!(v6.scope_id(), 0);
        let numeric = format!("fe80::1%{}", v6.scope_id());
        assert_eq!(
            parse(&["--bind", &numeric, "-p", "7"]).unwrap().listen,
            listen
        );
        let metrics = |v: &str| parse(&["--metrics", v]).unwrap().metrics.unwrap();
        assert_eq!(metrics("[fe80::1%lo]:7"), listen);
        assert_eq!(metrics("fe80::1%lo").port(), 9187);
    }

    // --udp is off by default; on, its rates take N/s and sizes per second;
    // --allow repeats and lists networks.
    #[test]
    fn udp_and_allow_reach_the_config() {
        let config = parse(&[
            "--udp",
            "--udp-rate",
            "50/s",
            "--udp-bytes",
            "64K/s",
            "--allow",
            "127.0.0.1",
            "--allow",
            "10.0.0.0/8,::1/128",
        ])
        .unwrap();
        assert_eq!(
            config.udp,
            Some(UdpSettings {
                rate: 50,
                bytes: 65_536
            })
        );
        let allow = config.allow.expect("allow list");
        assert_eq!(allow.networks().len(), 3);
        assert!(allow.allows("10.2.3.4".parse().unwrap()));
        assert!(!allow.allows("127.0.0.2".parse().unwrap()));
        let defaults = parse(&["--udp"]).unwrap().udp.unwrap();
        assert_eq!((defaults.rate, defaults.bytes), (100, 1 << 20));
        assert_eq!(parse(&["--udp-rate", "7"]).unwrap().udp, None);
    }

    // --port takes lists and ranges; --listen adds addresses with their
    // own modes, and alone replaces the default port; --bind absent means
    // the dual-stack default; the admission and PROXY flags reach the config.
    #[test]
    fn listeners_and_admission_reach_the_config() {
        let config = parse(&["--port", "7000-7002,8443,7001", "--bind", "0.0.0.0"]).unwrap();
        assert_eq!(config.ports, vec![7000, 7001, 7002, 8443]);
        assert_eq!(config.listen, "0.0.0.0:7000".parse().unwrap());
        assert!(!config.dual_stack_default);
        let config = parse(&[
            "--listen",
            "127.0.0.1:9/discard",
            "--listen",
            "[::1]:19,20/chargen",
        ])
        .unwrap();
        assert_eq!(
            config.listen_more,
            vec![
                ListenGroup {
                    ip: "127.0.0.1".parse().unwrap(),
                    ports: vec![9],
                    mode: Some(Mode::Discard)
                },
                ListenGroup {
                    ip: "::1".parse().unwrap(),
                    ports: vec![19, 20],
                    mode: Some(Mode::Chargen)
                },
            ]
        );
        let both = parse(&["-p", "7", "--listen", "127.0.0.1:9"]).unwrap();
        assert_eq!(
            (both.ports.as_slice(), both.listen_more[0].mode),
            (&[7][..], None)
        );
        let config = parse(&[
            "--allow",
            "10.0.0.0/8,::1",
            "--allow",
            "192.0.2.7",
            "--max-per-source",
            "3",
            "--proxy-protocol",
            "--proxy-timeout",
            "0.5",
        ])
        .unwrap();
        let allow = config.allow.unwrap();
        assert_eq!(allow.networks().len(), 3);
        assert!(allow.allows("10.1.2.3".parse().unwrap()));
        assert!(!allow.allows("192.0.2.8".parse().unwrap()));
        assert_eq!(config.max_per_source, Some(3));
        assert_eq!(config.proxy_protocol, Some(Duration::from_millis(500)));
        assert_eq!(parse(&[]).unwrap().proxy_protocol, None);
        assert_eq!(
            parse(&["--proxy-protocol"]).unwrap().proxy_protocol,
            Some(Duration::from_secs(5))
        );
        let metrics = |v: &str| parse(&["--metrics", v]).unwrap().metrics.unwrap();
        assert_eq!(metrics(":9300"), "127.0.0.1:9300".parse().unwrap());
        assert_eq!(metrics("localhost:9300"), "127.0.0.1:9300".parse().unwrap());
        assert_eq!(metrics("localhost"), "127.0.0.1:9187".parse().unwrap());
    }

    // Listener mistakes are usage errors (exit 2) saying what is wrong.
    #[test]
    fn listener_mistakes_are_refused() {
        let refused = |args: &[&str], says: &str| {
            let argv = std::iter::once("echo-server").chain(args.iter().copied());
            let cli = Cli::try_parse_from(argv);
            let text = match cli {
                Err(e) => {
                    assert_eq!(e.exit_code(), 2, "{args:?}");
                    e.to_string()
                }
                Ok(cli) => cli
                    .conflicts()
                    .unwrap_or_else(|| panic!("{args:?} accepted")),
            };
            assert!(text.contains(says), "{args:?}: {text}");
        };
        refused(&["--port", "1-2000"], "1024");
        refused(&["--port", "10-5"], "--port");
        refused(&["--port", "0,7"], "--port");
        refused(
            &["--port", "1-600", "--listen", "127.0.0.1:1000-1600"],
            "1201 ports",
        );
        refused(
            &[
                "--port",
                "7",
                "--bind",
                "127.0.0.1",
                "--listen",
                "127.0.0.1:7/discard",
            ],
            "port 7 on 127.0.0.1 is named twice",
        );
        refused(&["--listen", "127.0.0.1:9/daytime"], "expected one of");
        refused(&["--listen", "224.0.0.1:9"], "multicast");
        refused(&["--listen", "localhost:9"], "--listen");
        refused(
            &["--listen", "127.0.0.1:9/framed", "--buffer-size", "10"],
            "framed needs",
        );
        refused(&["--allow", "10.1.0.0/8"], "--allow");
        refused(&["--allow", "300.0.0.0/8"], "--allow");
        refused(&["--max-per-source", "0"], "--max-per-source");
        refused(&["--proxy-timeout", "0"], "--proxy-timeout");
        refused(&["--metrics", "localhost:x"], "--metrics");
        refused(&["--metrics", ":x"], "--metrics");
    }

    // Sub-nanosecond durations round up: the idle timeout stays on.
    #[test]
    fn tiny_durations_do_not_turn_off() {
        let config = parse(&[
            "--idle-timeout",
            "0.0000000001",
            "--stats-interval",
            "0.00000000001",
        ])
        .unwrap();
        assert_eq!(config.idle_timeout, Some(Duration::from_nanos(1)));
        assert_eq!(config.stats_interval, Some(Duration::from_nanos(1)));
    }

    // Every setting reads ECHO_SERVER_ and its long name in upper snake
    // case (what README and --help promise), and nothing else reads one
    // but --config.
    #[test]
    fn every_option_has_its_environment_variable() {
        let cmd = Cli::command();
        for arg in cmd.get_arguments() {
            let id = arg.get_id().as_str();
            let env = arg.get_env().map(|e| e.to_string_lossy().into_owned());
            match (id, arg.get_long()) {
                ("print_config" | "help" | "version", _) | (_, None) => {
                    assert_eq!(env, None, "{id}")
                }
                (_, Some(long)) => assert_eq!(
                    env.as_deref(),
                    Some(format!("ECHO_SERVER_{}", long.to_uppercase().replace('-', "_")).as_str()),
                    "{id}"
                ),
            }
        }
    }

    // Out-of-range and malformed values are usage errors naming the flag.
    #[test]
    fn bad_values_are_rejected() {
        for args in [
            &["--port", "70000"][..],
            &["--port", "abc"],
            &["--bind", "localhost:1"],
            &["--backlog", "0"],
            &["--buffer-size", "0"],
            &["--buffer-size", "17M"],
            &["--idle-timeout", "-1"],
            &["--busy-poll", "-1"],
            &["--busy-poll", "100001"],
            &["--busy-poll", "0.5"],
            &["--busy-poll", "Auto"],
            &["--max-connections", "0"],
            &["--max-connections", "2000000"],
            &["--stats-interval", "soon"],
            &["--metrics", "localhost:x"],
            &["--bind", "224.0.0.1"],
            &["--bind", "255.255.255.255"],
            &["--bind", "ff02::1"],
            &["--bind", "fe80::1"],
            &["--bind", "fe80::1%no-such-if0"],
            &["--bind", "::1%lo"],
            &["--metrics", "224.0.0.1:9187"],
            &["--metrics", "255.255.255.255"],
            &["--metrics", "[ff02::1]:80"],
            &["--metrics", "[fe80::1%no-such-if0]:80"],
            &["--metrics", "[::1]:x"],
            &["--idle-timeout", "1e300"],
            &["--shutdown-timeout", "1e20"],
            &["--shutdown-timeout", "31536000.5"],
            &["--log-format", "xml"],
            &["--mode", "Echo"],
            &["--mode", "daytime"],
            &["--max-line", "0"],
            &["--max-line", "-3"],
            &["--workers", "0"],
            &["--workers", "many"],
            &["--prime-test", "fermat"],
            &["--udp-rate", "0"],
            &["--udp-rate", "0/s"],
            &["--udp-rate", "-5/s"],
            &["--udp-rate", "fast"],
            &["--udp-rate", "100/min"],
            &["--udp-rate", "20000000/s"],
            &["--udp-bytes", "0"],
            &["--udp-bytes", "1GB/s"],
            &["--udp-bytes", "-1K/s"],
            &["--udp-bytes", "17000M/s"],
            &["--allow", "10.1.0.0/8"],
            &["--allow", "10.0.0.0/33"],
            &["--allow", "example.org"],
        ] {
            let error = parse(args).expect_err(&format!("{args:?} accepted"));
            assert_eq!(error.exit_code(), 2, "{args:?}");
            let text = error.to_string();
            assert!(text.contains(args[0]), "{args:?}: {text}");
        }
    }
}
