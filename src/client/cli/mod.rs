//! The client's command line: the default `send` mode, `ping` and `bench`.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

use super::bench::in_flight::InFlight;
use super::bench::rate::RateFormat;
use super::help;
use super::modes::ServiceMode;
use super::target::{parse_target, Target};
use super::tls::TlsArgs;
use crate::config::units::{parse_seconds, parse_size, MAX_SECONDS};
use crate::logic::port_list::{parse_port_list, ALL_PORTS};

/// Client for echo-server: send a message and check its echo, ping a path
/// with TCP or UDP probes, check which ports answer, or benchmark a server
/// with many connections.
///
/// Every mode checks that what comes back is exactly what was sent.
#[derive(Debug, Parser)]
#[command(
    name = "echo-client",
    version,
    // The summary comes from the doc comment above; a bare `about` would
    // take the crate's description, which describes the server.
    long_about = None,
    after_help = help::with_exit_codes(help::MAIN_EXAMPLES),
    args_conflicts_with_subcommands = true
)]
pub struct ClientCli {
    /// The mode; without one, the arguments are those of `send`.
    #[command(subcommand)]
    pub mode: Option<Mode>,

    /// `send` arguments when no mode is named.
    #[command(flatten)]
    pub send: SendArgs,
}

/// What the client does.
#[derive(Debug, Subcommand)]
pub enum Mode {
    /// Send one message (or a file) and check the echo (the default mode).
    #[command(after_help = help::with_exit_codes(help::SEND_EXAMPLES))]
    Send(SendArgs),
    /// Probe the path repeatedly, like ping or tcping: RTT per probe, loss,
    /// percentiles, and the TCP connect time.
    #[command(after_help = help::with_exit_codes(help::PING_EXAMPLES))]
    Ping(PingArgs),
    /// Load a server with many connections and report messages/s, MB/s and
    /// latency percentiles.
    #[command(after_help = help::with_exit_codes(help::BENCH_EXAMPLES))]
    Bench(BenchArgs),
    /// Check which of a host's ports answer, TCP or UDP: per port the
    /// connect time and one verified echo, or refused, filtered, reset,
    /// closed without echo, wrong echo; a table sorted by port and a
    /// summary. Exit 0 only when every port echoed, 1 when one echoed
    /// wrong bytes, 8 when some did not answer.
    #[command(after_help = help::with_exit_codes(help::PROBE_EXAMPLES))]
    Probe(ProbeArgs),
}

/// Arguments of `send`.
#[derive(Debug, Args)]
pub struct SendArgs {
    /// Server address: HOST:PORT, [IPv6]:PORT, or HOST for port 7878.
    #[arg(value_name = "ADDR", default_value = "127.0.0.1:7878", value_parser = parse_target)]
    pub address: Target,

    /// The message to send.
    #[arg(value_name = "MESSAGE", default_value = "hello", value_parser = clap::builder::NonEmptyStringValueParser::new())]
    pub message: String,

    /// Send this file's bytes instead of MESSAGE (binary-safe); `-` reads
    /// standard input. The input is streamed and its echo checked as it
    /// arrives, with at most 4 MiB held unverified, so any size runs in
    /// bounded memory; an endless one (/dev/zero, a pipe) runs until
    /// Ctrl+C, which reports the bytes verified so far (exit 130).
    #[arg(short, long, value_name = "PATH", conflicts_with = "message")]
    pub file: Option<PathBuf>,

    /// Longest wait, in seconds, for the connection or for the next echoed byte.
    #[arg(short = 'W', long, default_value = "5", value_name = "SECS", value_parser = positive_seconds, allow_negative_numbers = true)]
    pub timeout: Duration,

    /// What the server does with the bytes (echo-server --mode): the reply
    /// is checked against what that mode answers. upper: letters come back
    /// uppercased. framed: MESSAGE goes as one frame `^MESSAGE$` after the
    /// server's `*`, and must come back each byte + 1 and a newline, or,
    /// for P and digits (P1000000007), as prime or composite.
    #[arg(long, value_enum, default_value_t = ServiceMode::Echo, value_name = "MODE")]
    pub mode: ServiceMode,
    /// Send MESSAGE as one UDP datagram (at most 65507 bytes) and check
    /// the datagram that comes back.
    #[arg(short, long, conflicts_with = "file")]
    pub udp: bool,

    /// Print one JSON document on stdout instead of text.
    #[arg(long)]
    pub json: bool,

    /// `--tls` and its trust and client-certificate options.
    #[command(flatten)]
    pub tls: TlsArgs,
}

/// Arguments of `ping`.
#[derive(Debug, Args)]
pub struct PingArgs {
    /// Server address: HOST:PORT, [IPv6]:PORT, or HOST for port 7878.
    #[arg(value_name = "ADDR", default_value = "127.0.0.1:7878", value_parser = parse_target)]
    pub address: Target,

    /// Probes to send; 0 sends until Ctrl+C. Memory stays fixed however
    /// long it runs (--json lists the latest 10000 probes).
    #[arg(
        short,
        long,
        default_value_t = 5,
        value_name = "N",
        allow_negative_numbers = true
    )]
    pub count: u64,

    /// Seconds between the starts of two probes (decimals allowed).
    #[arg(short, long, default_value = "1", value_name = "SECS", value_parser = parse_seconds, allow_negative_numbers = true)]
    pub interval: Duration,

    /// Bytes per probe (K and M suffixes allowed, at most 1M).
    #[arg(short, long, default_value = "64", value_name = "BYTES", value_parser = probe_size, allow_negative_numbers = true)]
    pub size: usize,

    /// Seconds a probe (connect, or the next echoed byte) may take before
    /// it counts as lost.
    #[arg(short = 'W', long, default_value = "2", value_name = "SECS", value_parser = positive_seconds, allow_negative_numbers = true)]
    pub timeout: Duration,

    /// Open a fresh connection for every probe, timing each handshake (the
    /// firewall and SYN-path check); by default one connection carries all
    /// probes.
    #[arg(short, long)]
    pub reconnect: bool,

    /// What the server does with the bytes (echo-server --mode): echo,
    /// upper (each probe's letters must come back uppercased) or framed
    /// (each probe is a frame `^…$` of --size bytes, answered each byte
    /// + 1 and a newline, after the server's `*` on connect).
    #[arg(long, value_enum, default_value_t = ServiceMode::Echo, value_name = "MODE")]
    pub mode: ServiceMode,
    /// Probe with UDP datagrams (at most 65507 bytes each): RTT and loss
    /// per probe, a late answer counted as lost.
    #[arg(short, long, conflicts_with = "reconnect")]
    pub udp: bool,

    /// Print one JSON document on stdout instead of text.
    #[arg(long)]
    pub json: bool,

    /// One JSON object per line on stdout as it happens: {"event":"start",
    /// "data":{…}}, a "probe" event per probe (a later one for the same
    /// seq corrects it: bytes that followed its echo), and "end" with the
    /// --json document's totals.
    #[arg(long, conflicts_with = "json")]
    pub json_stream: bool,

    /// Every probe must come back: exit with the last lost probe's code
    /// (see below) instead of 0 when some came back.
    #[arg(long)]
    pub strict: bool,

    /// `--tls` and its trust and client-certificate options.
    #[command(flatten)]
    pub tls: TlsArgs,
}

/// Arguments of `probe`.
#[derive(Debug, Args)]
pub struct ProbeArgs {
    /// The host: a name, or an IPv4 or IPv6 address (brackets optional).
    /// A name is resolved once, and every port is probed on its first address.
    #[arg(value_name = "HOST", value_parser = probe_host)]
    pub host: String,

    /// Ports and ranges, such as 22,80,443,7000-7010 (sorted, duplicates
    /// merged); only these are contacted.
    #[arg(value_name = "PORTS", value_parser = probe_ports)]
    pub ports: Ports,

    /// Probe UDP ports: a datagram each, resent after each --timeout up to
    /// --retries times; an echo, `refused` (ICMP port unreachable) or
    /// `no answer`.
    #[arg(short, long)]
    pub udp: bool,

    /// Seconds to wait for a TCP handshake, then for its echo (UDP: for
    /// each datagram's echo).
    #[arg(short = 'W', long, default_value = "2", value_name = "SECS", value_parser = positive_seconds, allow_negative_numbers = true)]
    pub timeout: Duration,

    /// Ports probed at once.
    #[arg(short, long, default_value_t = 64, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=4096), allow_negative_numbers = true)]
    pub concurrency: u32,

    /// Seconds after which no new probe starts; ports left are reported
    /// as not probed. The run ends at most one probe's time later.
    #[arg(long, default_value = "60", value_name = "SECS", value_parser = positive_seconds, allow_negative_numbers = true)]
    pub max_time: Duration,

    /// With --udp, datagrams resent after a timeout before a port counts
    /// as `no answer`.
    #[arg(long, default_value_t = 2, value_name = "N", value_parser = clap::value_parser!(u32).range(0..=10), allow_negative_numbers = true)]
    pub retries: u32,

    /// Bytes per probe (K suffix allowed, at most 1K).
    #[arg(short, long, default_value = "16", value_name = "BYTES", value_parser = probe_payload, allow_negative_numbers = true)]
    pub size: usize,

    /// Print one JSON document on stdout instead of the table.
    #[arg(long)]
    pub json: bool,
}

/// `probe`'s ports: sorted, distinct, at least one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ports(pub Vec<u16>);

fn probe_ports(text: &str) -> Result<Ports, String> {
    parse_port_list(text, ALL_PORTS).map(Ports)
}

fn probe_host(text: &str) -> Result<String, String> {
    let text = text.trim();
    let bare = text
        .strip_prefix('[')
        .and_then(|t| t.strip_suffix(']'))
        .unwrap_or(text);
    if let Ok(ip) = bare.parse::<std::net::IpAddr>() {
        return Ok(ip.to_string());
    }
    if text.contains(':') || text.contains('[') {
        return Err(format!(
            "'{text}' is not a host: the ports go in PORTS, as in `probe lab-host 22,80,7000-7010`"
        ));
    }
    parse_target(text).map(|target| target.host)
}

fn probe_payload(text: &str) -> Result<usize, String> {
    sized(text, 1024, "1K")
}

/// Arguments of `bench`.
#[derive(Debug, Args)]
pub struct BenchArgs {
    /// Server address: HOST:PORT, [IPv6]:PORT, or HOST for port 7878.
    #[arg(value_name = "ADDR", default_value = "127.0.0.1:7878", value_parser = parse_target)]
    pub address: Target,

    /// Connections, all driven by one event loop.
    #[arg(short, long, default_value_t = 1, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=1_000_000), allow_negative_numbers = true)]
    pub connections: u32,

    /// Message size; in --bulk mode, the write size (default 64, bulk 64K;
    /// K and M suffixes allowed, at most 16M).
    #[arg(short, long, value_name = "BYTES", value_parser = message_size, allow_negative_numbers = true)]
    pub size: Option<usize>,

    /// Messages in flight per connection (pipelining).
    #[arg(short, long, default_value_t = 1, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=4096), allow_negative_numbers = true)]
    pub depth: u32,

    /// Seconds to measure, after the warm-up.
    #[arg(long, default_value = "10", value_name = "SECS", value_parser = positive_seconds, conflicts_with = "requests", allow_negative_numbers = true)]
    pub duration: Duration,

    /// Stop after sending this many messages in all (warm-up included;
    /// with --bulk, writes of --size) instead of after --duration.
    #[arg(short = 'n', long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..), allow_negative_numbers = true)]
    pub requests: Option<u64>,

    /// Seconds of load before measuring starts [default: 1, or 0 with --requests].
    #[arg(long, value_name = "SECS", value_parser = parse_seconds, allow_negative_numbers = true)]
    pub warmup: Option<Duration>,

    /// Send at this fixed total rate (messages per second) instead of as
    /// fast as echoes return; latency is then measured from each message's
    /// intended send time, so server stalls are not hidden.
    #[arg(long, value_name = "MSGS_PER_SEC", value_parser = positive_rate, conflicts_with = "bulk", allow_negative_numbers = true)]
    pub rate: Option<f64>,

    /// Stream continuous writes on each connection while reading the echo
    /// concurrently, to measure echoed MB/s.
    #[arg(long)]
    pub bulk: bool,

    /// With --bulk, most bytes a connection keeps written but not yet
    /// echoed: BYTES (K and M suffixes, at most 1024M), or auto, which
    /// follows the socket's send buffer as the kernel sizes it from the
    /// path (at least 1M, at most a quarter of tcp_rmem's maximum). Raise
    /// it on a path whose bandwidth × RTT is larger. unbounded: per
    /// connection, one thread writes as fast as the kernel takes the bytes
    /// and another reads and checks the echo, as `nc host port < file`
    /// or socat load a server.
    #[arg(long, default_value = "auto", value_name = "BYTES|auto|unbounded", value_parser = in_flight, requires = "bulk", allow_negative_numbers = true)]
    pub in_flight: InFlight,

    /// Longest wait, in seconds, for a connection, and for the last echoes
    /// once sending stops.
    #[arg(short = 'W', long, default_value = "5", value_name = "SECS", value_parser = positive_seconds, allow_negative_numbers = true)]
    pub timeout: Duration,

    /// Also report this process's CPU time and memory over the measured
    /// window (the server's PID, when it runs on this host).
    #[arg(long, value_name = "PID", allow_negative_numbers = true)]
    pub server_pid: Option<u32>,

    /// What the server does with the bytes (echo-server --mode): echo;
    /// discard (measures upload MB/s: each connection writes --size
    /// blocks, default 64K, and nothing may come back; at the end each FIN
    /// must be answered with a FIN); chargen (download MB/s, every byte
    /// checked against the RFC 864 pattern); framed (echo frames per
    /// second and their latency: --size-byte frames, --depth in flight,
    /// every reply checked). Not with --bulk, --rate or --requests.
    #[arg(long, value_enum, default_value_t = ServiceMode::Echo, value_name = "MODE")]
    pub mode: ServiceMode,

    /// Print one JSON document on stdout instead of text.
    #[arg(long)]
    pub json: bool,

    /// Every SECS of the measured window (at least 0.1), its figures as
    /// iperf3 prints them: msgs/s (bulk: writes/s), MB/s, p50 and p99
    /// latency; with --json, the report's `intervals` array. Not with
    /// --mode other than echo, nor --in-flight unbounded.
    #[arg(short = 'i', long, value_name = "SECS", value_parser = report_interval, allow_negative_numbers = true)]
    pub interval: Option<Duration>,

    /// One JSON object per line on stdout as it happens (as iperf3's
    /// --json-stream): {"event":"start","data":{…}}, an "interval" event
    /// every -i SECS (default 1), and "end" with the --json document.
    #[arg(long, conflicts_with = "json")]
    pub json_stream: bool,

    /// Throughput in the text as bytes (MB/s) or bits (Kbit/s, Mbit/s,
    /// Gbit/s, as iperf3 prints them); --json has both.
    #[arg(long, value_enum, default_value_t = RateFormat::Bytes, value_name = "UNIT")]
    pub format: RateFormat,

    /// No live progress line on stderr.
    #[arg(short, long)]
    pub quiet: bool,

    /// `--tls` and its trust and client-certificate options.
    #[command(flatten)]
    pub tls: TlsArgs,
}

impl PingArgs {
    /// Whether the output is text for people (neither JSON form).
    pub fn text(&self) -> bool {
        !self.json && !self.json_stream
    }
}

impl BenchArgs {
    /// The message or write size, with the mode's default.
    pub fn size(&self) -> usize {
        let streams = self.bulk || matches!(self.mode, ServiceMode::Discard | ServiceMode::Chargen);
        self.size.unwrap_or(if streams { 64 * 1024 } else { 64 })
    }

    /// The warm-up, with the default that suits the stop condition.
    pub fn warmup(&self) -> Duration {
        self.warmup.unwrap_or(if self.requests.is_some() {
            Duration::ZERO
        } else {
            Duration::from_secs(1)
        })
    }
}

/// Shortest `bench -i`: iperf3's.
const MIN_INTERVAL: Duration = Duration::from_millis(100);

fn report_interval(text: &str) -> Result<Duration, String> {
    let d = parse_seconds(text)?;
    if d < MIN_INTERVAL {
        return Err("must be at least 0.1 seconds".into());
    }
    Ok(d)
}

fn positive_seconds(text: &str) -> Result<Duration, String> {
    let d = parse_seconds(text)?;
    if d.is_zero() {
        return Err("must be more than 0".into());
    }
    Ok(d)
}

fn sized(text: &str, max: usize, max_text: &str) -> Result<usize, String> {
    match parse_size(text)? {
        0 => Err("must be at least 1 byte".into()),
        n if n > max => Err(format!("at most {max_text}")),
        n => Ok(n),
    }
}

fn probe_size(text: &str) -> Result<usize, String> {
    sized(text, 1 << 20, "1M")
}

fn message_size(text: &str) -> Result<usize, String> {
    sized(text, 16 << 20, "16M")
}

fn in_flight(text: &str) -> Result<InFlight, String> {
    if text.trim().eq_ignore_ascii_case("auto") {
        return Ok(InFlight::Auto);
    }
    if text.trim().eq_ignore_ascii_case("unbounded") {
        return Ok(InFlight::Unbounded);
    }
    sized(text, 1 << 30, "1024M")
        .map(|n| InFlight::Bytes(n as u64))
        .map_err(|e| format!("{e} (or auto, or unbounded)"))
}

/// The slowest `--rate`: one message a year, the longest any duration
/// option allows. The schedule turns `1 / rate` into a `Duration` past an
/// `Instant`; a slower rate would overflow both (a panic).
pub const MIN_RATE: f64 = 1.0 / MAX_SECONDS as f64;
/// The fastest `--rate`, in messages per second.
pub const MAX_RATE: f64 = 1e9;

fn positive_rate(text: &str) -> Result<f64, String> {
    match text.trim().parse::<f64>() {
        Ok(rate) if (MIN_RATE..=MAX_RATE).contains(&rate) => Ok(rate),
        // MIN_RATE is 3.1709…e-8: the bound shown is the first 3-digit
        // value above it, so that it is itself accepted.
        Ok(_) => {
            Err("must be between 3.18e-8 (one message a year) and 1e9 messages per second".into())
        }
        Err(_) => Err("expected messages per second such as 1000 or 0.5".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn definition_is_consistent() {
        ClientCli::command().debug_assert();
    }

    #[test]
    fn bare_arguments_are_send_mode() {
        let cli = ClientCli::try_parse_from(["echo-client", "[::1]:9", "hi there"]).unwrap();
        assert!(cli.mode.is_none());
        assert_eq!(cli.send.address.to_string(), "[::1]:9");
        assert_eq!(cli.send.message, "hi there");
        let cli = ClientCli::try_parse_from(["echo-client"]).unwrap();
        assert_eq!(cli.send.address.to_string(), "127.0.0.1:7878");
        assert_eq!(cli.send.message, "hello");
    }

    #[test]
    fn modes_and_defaults() {
        let cli = ClientCli::try_parse_from(["echo-client", "bench", "--bulk"]).unwrap();
        let Some(Mode::Bench(bench)) = cli.mode else {
            panic!("not bench")
        };
        assert_eq!(
            (bench.size(), bench.warmup(), bench.in_flight),
            (65536, Duration::from_secs(1), InFlight::Auto)
        );
        let cli =
            ClientCli::try_parse_from(["echo-client", "bench", "--bulk", "--in-flight", "4M"])
                .unwrap();
        let Some(Mode::Bench(bench)) = cli.mode else {
            panic!("not bench")
        };
        assert_eq!(bench.in_flight, InFlight::Bytes(4 << 20));
        let cli = ClientCli::try_parse_from([
            "echo-client",
            "bench",
            "--bulk",
            "--in-flight",
            "Unbounded",
        ])
        .unwrap();
        let Some(Mode::Bench(bench)) = cli.mode else {
            panic!("not bench")
        };
        assert_eq!(bench.in_flight, InFlight::Unbounded);
        let cli = ClientCli::try_parse_from(["echo-client", "bench", "-n", "10"]).unwrap();
        let Some(Mode::Bench(bench)) = cli.mode else {
            panic!("not bench")
        };
        assert_eq!((bench.size(), bench.warmup()), (64, Duration::ZERO));
    }

    #[test]
    fn probe_arguments() {
        let cli =
            ClientCli::try_parse_from(["echo-client", "probe", "[::1]", "8443,7000-7002,7001"])
                .unwrap();
        let Some(Mode::Probe(probe)) = cli.mode else {
            panic!("not probe")
        };
        assert_eq!(probe.host, "::1");
        assert_eq!(probe.ports, Ports(vec![7000, 7001, 7002, 8443]));
        assert_eq!(
            (probe.concurrency, probe.udp, probe.retries),
            (64, false, 2)
        );
        let cli = ClientCli::try_parse_from(["echo-client", "probe", "lab-host", "1-65535", "-u"])
            .unwrap();
        let Some(Mode::Probe(probe)) = cli.mode else {
            panic!("not probe")
        };
        assert_eq!(
            (probe.host.as_str(), probe.ports.0.len(), probe.udp),
            ("lab-host", 65535, true)
        );
        let e = ClientCli::try_parse_from(["echo-client", "probe", "lab:22", "22"]).unwrap_err();
        assert!(e.to_string().contains("the ports go in PORTS"), "{e}");
    }

    // Every accepted rate has an interval the schedule can add to an
    // Instant: at most a year, never a panic.
    #[test]
    fn rate_bounds() {
        assert_eq!(positive_rate("3.18e-8"), Ok(3.18e-8));
        assert_eq!(positive_rate("1e9"), Ok(1e9));
        assert_eq!(positive_rate(" 0.5 "), Ok(0.5));
        for bad in ["1e-20", "3.17e-8", "0", "-0", "1e10", "NaN", "inf"] {
            let error = positive_rate(bad).unwrap_err();
            assert!(
                error.contains("3.18e-8") && error.contains("1e9"),
                "{bad}: {error}"
            );
        }
        assert!(positive_rate("fast").unwrap_err().contains("such as"));
        let slowest = Duration::from_secs_f64(1.0 / MIN_RATE);
        assert!(slowest <= Duration::from_secs(MAX_SECONDS) + Duration::from_micros(1));
    }

    #[test]
    fn bad_values_are_refused() {
        for args in [
            &["echo-client", "ping", "--size", "0"][..],
            &["echo-client", "ping", "--size", "2M"],
            &["echo-client", "bench", "--rate", "0"],
            &["echo-client", "bench", "--rate", "1e-20"],
            &["echo-client", "bench", "--rate", "3.17e-8"],
            &["echo-client", "bench", "--rate", "-5"],
            &["echo-client", "bench", "--rate", "NaN"],
            &["echo-client", "bench", "--rate", "inf"],
            &["echo-client", "bench", "--rate", "1.1e9"],
            &["echo-client", "bench", "--rate", "10", "--bulk"],
            &["echo-client", "bench", "--duration", "1", "--requests", "5"],
            &["echo-client", "bench", "--connections", "0"],
            &["echo-client", "bench", "--in-flight", "1M"],
            &["echo-client", "bench", "--in-flight", "unbounded"],
            &["echo-client", "bench", "--bulk", "--in-flight", "0"],
            &["echo-client", "bench", "--bulk", "--in-flight", "2048M"],
            &["echo-client", "bench", "--bulk", "--in-flight", "lots"],
            &["echo-client", "send", "host:0"],
            &["echo-client", "--timeout", "0"],
            &["echo-client", "--file", "x", "127.0.0.1:9", "message"],
            &["echo-client", "send", "--udp", "--file", "x"],
            &["echo-client", "ping", "--udp", "--reconnect"],
            &["echo-client", "probe", "host"],
            &["echo-client", "probe", "host:80", "80"],
            &["echo-client", "probe", "[::1]:80", "80"],
            &["echo-client", "probe", "host", "0"],
            &["echo-client", "probe", "host", "90-80"],
            &["echo-client", "probe", "host", "80", "--concurrency", "0"],
            &["echo-client", "probe", "host", "80", "--size", "2K"],
            &["echo-client", "probe", "host", "80", "--retries", "11"],
            &["echo-client", "bench", "-i", "0.05"],
            &["echo-client", "bench", "--json", "--json-stream"],
            &["echo-client", "ping", "--json", "--json-stream"],
            &["echo-client", "bench", "--format", "nibbles"],
        ] {
            assert!(ClientCli::try_parse_from(args).is_err(), "{args:?}");
        }
    }
}
