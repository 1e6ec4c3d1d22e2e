//! `echo-client ping`'s arguments.

use std::time::Duration;

use clap::Args;

use super::{positive_seconds, sized};
use crate::client::modes::ServiceMode;
use crate::client::target::{parse_target, Target};
use crate::client::tls::TlsArgs;
use crate::config::units::parse_seconds;

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

impl PingArgs {
    /// Whether the output is text for people (neither JSON form).
    pub fn text(&self) -> bool {
        !self.json && !self.json_stream
    }
}

fn probe_size(text: &str) -> Result<usize, String> {
    sized(text, 1 << 20, "1M")
}
