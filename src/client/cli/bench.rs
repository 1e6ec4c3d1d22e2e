//! `echo-client bench`'s arguments, their mode-dependent defaults and
//! value parsers (sizes, in-flight bound, rate, report interval).

use std::time::Duration;

use clap::Args;

use super::{positive_seconds, sized};
use crate::client::bench::in_flight::InFlight;
use crate::client::bench::rate::RateFormat;
use crate::client::modes::ServiceMode;
use crate::client::target::{parse_target, Target};
use crate::client::tls::TlsArgs;
use crate::config::units::{parse_seconds, MAX_SECONDS};

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
    /// iperf3 prints them: msgs/s (bulk and --mode discard: writes/s of
    /// --size bytes; chargen: blocks/s of --size bytes; framed: frames/s),
    /// MB/s, and p50 and p99 latency where each message is timed (echo
    /// without --bulk, framed); with --json, the report's `intervals` array.
    #[arg(short = 'i', long, value_name = "SECS", value_parser = report_interval, allow_negative_numbers = true)]
    pub interval: Option<Duration>,

    /// One JSON object per line on stdout as it happens (as iperf3's
    /// --json-stream): {"event":"start","data":{…}}, an "interval" event
    /// every -i SECS (default 1), and "end" with the --json document.
    #[arg(long, conflicts_with = "json")]
    pub json_stream: bool,

    /// Time each echo by the clock when the client wakes for it, instead
    /// of the kernel's receive timestamp of its arrival. Asking for
    /// timestamps makes the kernel stamp every packet the host receives,
    /// which costs the client (and a server on the same host) CPU: for
    /// runs that measure messages/s rather than latency.
    #[arg(long)]
    pub rtt_clock: bool,

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
    use crate::client::cli::{ClientCli, Mode};
    use clap::Parser;

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
}
