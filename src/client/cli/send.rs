//! `echo-client send`'s arguments (also the arguments with no mode named).

use std::path::PathBuf;
use std::time::Duration;

use clap::Args;

use super::positive_seconds;
use crate::client::modes::ServiceMode;
use crate::client::target::{parse_target, Target};
use crate::client::tls::TlsArgs;

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
