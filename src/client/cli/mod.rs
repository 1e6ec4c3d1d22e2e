//! The client's command line: the top-level parser, its modes, and the
//! value parsers the modes share; each mode's arguments are in its file.

use std::time::Duration;

use clap::{Parser, Subcommand};

use super::help;
use crate::config::units::{parse_seconds, parse_size};

mod bench;
mod completions;
mod ping;
mod probe;
mod send;

pub use bench::{BenchArgs, MAX_RATE, MIN_RATE};
pub use completions::{name_the_shells, CompletionsArgs};
pub use ping::PingArgs;
pub use probe::{Ports, ProbeArgs};
pub use send::SendArgs;

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
    /// Print the shell completion script for echo-client on stdout.
    #[command(after_help = help::completions_help())]
    Completions(CompletionsArgs),
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
