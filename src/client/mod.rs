//! `echo-client`: the diagnostics client, as library code the binary calls.
//!
//! - [`cli`]: the command line (`send`, `ping`, `bench`, `probe`).
//! - [`send`], [`ping`], [`bench`], [`probe`]: the four modes.
//! - [`session`]: one connection on its own `Poll` (send and ping).
//! - [`target`]: parsing and resolving `HOST:PORT`.
//! - [`pattern`]: the bytes sent and the check of their echo.
//! - [`rtt`]: ping's exact RTT statistics.
//! - [`error`]: failures, their messages and exit codes.
//! - [`output`]: stdout and stderr, whose failed writes never panic.
//! - [`tls`]: `--tls`, the TLS connection for send, ping and bench.

pub mod bench;
pub mod cli;
pub mod error;
pub mod help;
pub mod modes;
pub mod output;
pub(crate) mod pattern;
pub mod ping;
pub mod probe;
pub(crate) mod rtt;
pub mod send;
pub mod session;
pub mod suggest;
pub mod target;
pub mod tls;
