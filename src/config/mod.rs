//! The server's settings as plain, already validated values.

pub mod cli;
pub mod file;
pub mod help;
pub mod sources;
pub mod tls;
pub mod units;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use log::LevelFilter;

use crate::config::cli::Workers;
use crate::logic::busy_poll::{self, BusyPollSetting};
use crate::logic::cidr::AllowList;
use crate::logic::service::{Mode, PrimeTest};
use crate::os::cpu_budget;
use crate::server::logging::LogFormat;

/// Where `--metrics` without an address listens: loopback only, because
/// the endpoint lists client addresses.
pub const DEFAULT_METRICS: SocketAddr =
    SocketAddr::new(std::net::IpAddr::V4(Ipv4Addr::LOCALHOST), 9187);

/// How long the event loop may poll before sleeping, by default: long
/// enough to catch a peer on the same host or LAN that answers at once,
/// short enough that sparse traffic never makes it spin (how it was
/// chosen: BENCHMARKS.md).
pub const DEFAULT_BUSY_POLL: Duration = Duration::from_micros(100);

/// Everything the server needs to know from the command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// Address and port to listen on (port 0: the kernel picks one); with
    /// several `--port`s, the first.
    pub listen: SocketAddr,
    /// Every `--port` on `listen`'s address, sorted; empty when only
    /// `--listen` was given.
    pub ports: Vec<u16>,
    /// `--listen`: more addresses and ports, each with its mode.
    pub listen_more: Vec<ListenGroup>,
    /// `--bind` not given: `listen` is `::` (IPv6 and IPv4), falling back
    /// to `0.0.0.0` where the host has no IPv6.
    pub dual_stack_default: bool,
    /// `--allow`: the only networks admitted; `None` admits everyone.
    pub allow: Option<AllowList>,
    /// `--max-per-source`: most connections open at once per client address.
    pub max_per_source: Option<usize>,
    /// `--proxy-protocol`: how long a connection's PROXY header may take.
    pub proxy_protocol: Option<Duration>,
    /// Length of the kernel's queue of connections not yet accepted; a
    /// longer queue absorbs bigger bursts of connects.
    pub backlog: u32,
    /// Most bytes a connection may hold read but not yet echoed; also the
    /// size of each read. When a peer stops reading, this is where the
    /// server stops reading from it.
    pub buffer_size: usize,
    /// Let streaming connections echo through a kernel pipe with splice(2)
    /// instead of copying every byte in and out of the process.
    pub splice: bool,
    /// Bytes that must wait to be read, at a read that fills the buffer,
    /// before a connection switches to the pipe (`--splice-backlog`).
    pub splice_backlog: usize,
    /// Close connections that move no byte for this long; `None` never does.
    pub idle_timeout: Option<Duration>,
    /// Longest time a wait for events may keep polling before it sleeps,
    /// while traffic is dense (see `busy_poll`); zero never polls; `auto`
    /// is decided at start from the CPU budget.
    pub busy_poll: BusyPollSetting,
    /// Connections served at once; further ones are accepted and closed.
    pub max_connections: usize,
    /// How long a stop may spend flushing echoes before closing anyway.
    pub shutdown_timeout: Duration,
    /// How often to log a STATS line; `None` never does.
    pub stats_interval: Option<Duration>,
    /// The most detailed log level to print.
    pub log_level: LevelFilter,
    /// Text lines or one JSON object per line.
    pub log_format: LogFormat,
    /// Where to serve the dashboard, `/metrics` and `/stats.json`; `None`
    /// serves nothing.
    pub metrics: Option<SocketAddr>,
    /// Host names the endpoint answers besides IP addresses and localhost
    /// (requests for any other `Host` get `421`).
    pub metrics_allow_hosts: Vec<String>,
    /// What connections do with their bytes (`--mode`).
    pub mode: Mode,
    /// echo and upper: the longest line answered (`--max-line`).
    pub max_line: Option<usize>,
    /// framed: threads for prime checks.
    pub workers: Workers,
    /// framed: how primes are checked.
    pub prime_test: PrimeTest,
    /// UDP echo on the same port(s) (`--udp`), with its per-source limits;
    /// `None` serves no UDP.
    pub udp: Option<UdpSettings>,
    /// TLS, when `--tls-cert`/`--tls-key` or `--tls-self-signed` is given.
    pub tls: Option<Box<tls::TlsSettings>>,
}

/// `--udp`'s per-source limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UdpSettings {
    /// Datagrams per second echoed to one source address (`--udp-rate`).
    pub rate: u64,
    /// Bytes per second echoed to one source address (`--udp-bytes`).
    pub bytes: u64,
}

/// One `--listen ADDR:PORTS[/MODE]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListenGroup {
    /// The address to bind.
    pub ip: IpAddr,
    /// Sorted, distinct ports.
    pub ports: Vec<u16>,
    /// Its service mode; `None`: `--mode`'s.
    pub mode: Option<Mode>,
}

impl Config {
    /// The settings of the server command line `echo-server ARGS`, for
    /// tests; panics on a line the parser refuses.
    #[cfg(test)]
    pub fn from_args(args: &[&str]) -> Config {
        use clap::Parser;
        let argv = std::iter::once("echo-server").chain(args.iter().copied());
        cli::Cli::try_parse_from(argv).unwrap().into_config()
    }

    /// Decides `--busy-poll auto` from the CPU budget the process has now;
    /// returns why it turned busy polling off, if it did.
    pub fn decide_busy_poll(&mut self) -> Option<String> {
        let choice = busy_poll::choose(self.busy_poll, DEFAULT_BUSY_POLL, &cpu_budget::read());
        self.busy_poll = BusyPollSetting::Window(choice.limit);
        choice.off_because
    }
}
