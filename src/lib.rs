//! # echo-server
//!
//! A TCP echo server for network diagnostics: every byte a client sends
//! comes back, in order, from one thread running one mio `Poll` loop.
//!
//! ## Layers
//! Dependencies point one way: `server` and `client` use `os` and `logic`;
//! `os` uses only `logic`'s plain types (a decoded `TcpInfo`); `logic` uses
//! nothing of the crate but itself. What the two binaries (and the
//! fuzz targets) need is public; `logic` is the crate's own.
//! - [`logic`]: what to do with bytes and time, pure (no sockets, no system
//!   calls): the echo state machine, its bounded buffer, the timer wheel,
//!   the busy-poll policy, HTTP requests and answers, metrics rendering,
//!   counters, JSON.
//! - [`os`]: the thin layer over the kernel: binding, the open-file limit,
//!   signals, splice pipes, SIGPIPE, `TCP_INFO`, `/proc`, and the log's
//!   writer thread.
//! - [`config`]: the command line (clap) turned into a checked [`Config`],
//!   and the value parsers both binaries share.
//! - [`server`]: the event loop and what it holds: connections, tokens, the
//!   metrics endpoint, the log.
//! - [`client`]: the `echo-client` binary's modes (send, ping, bench).
//! - `model_check`: reference models the fuzz targets and tests drive the
//!   pure logic against; compiled only for tests and with the `model-check`
//!   feature (which `fuzz/` enables), so it never ships.
//!
//! See ARCHITECTURE.md for the state machine and the invariants.

#![deny(missing_docs)]
#![warn(rust_2018_idioms)]

pub mod client;
pub mod config;
pub(crate) mod logic;
#[cfg(any(test, feature = "model-check"))]
pub mod model_check;
pub mod os;
pub mod server;

pub use config::Config;
pub use server::{Server, Stop};
