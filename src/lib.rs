//! # echo-server
//!
//! A TCP echo server for network diagnostics: every byte a client sends
//! comes back, in order, from one thread running one mio `Poll` loop.
//!
//! ## Layout
//! - [`cli`]: the command line (clap) turned into a checked [`Config`].
//! - [`listener`]: binding the listening socket, with clear errors.
//! - [`limits`]: raising the open-file limit at start.
//! - [`signal`]: SIGINT/SIGTERM as readable pipes in the `Poll`.
//! - [`server`]: the event loop: accept, dispatch by token, resume, expire
//!   idle connections, stop; and the metrics endpoint's connections in it.
//! - [`connection`]: one client as the loop holds it (socket, peer, timer).
//! - [`echo`]: the echo state machine over any byte stream (pure).
//! - [`buffer`]: the bounded, on-demand buffer of unechoed bytes (pure).
//! - [`timer`]: the hashed timing wheel and tick clock (pure).
//! - [`busy_poll`]: when the loop polls instead of sleeping (pure).
//! - [`token`]: connection tokens that survive slab key reuse.
//! - [`stats`], [`logging`], [`units`]: counters, log setup, value parsers.
//! - [`log_writer`]: the bounded queue and thread that write the log, so a
//!   reader of stdout that stops reading never stops the loop.
//! - [`client`]: the `echo-client` binary's modes (send, ping, bench).
//! - [`json`], [`procstat`]: JSON output, process CPU/memory from `/proc`.
//! - [`http`]: the metrics endpoint's requests, routes and responses (pure),
//!   and one HTTP connection's state machine.
//! - [`metrics`]: endpoint counters, histograms, Prometheus text and JSON.
//! - [`splice`]: a kernel pipe that echoes streaming connections without copying.
//! - [`sigpipe`]: SIGPIPE kept blocked on a splicing thread until it prints.
//! - [`tcp_info`]: `TCP_INFO` (RTT, retransmits, cwnd) of a connection.
//!
//! See ARCHITECTURE.md for the state machine and the invariants.

#![deny(missing_docs)]
#![warn(rust_2018_idioms)]

pub mod buffer;
pub mod busy_poll;
pub mod cli;
pub mod client;
pub mod config;
pub mod connection;
pub mod echo;
pub mod http;
pub mod json;
pub mod limits;
pub mod listener;
pub mod log_writer;
pub mod logging;
pub mod metrics;
pub mod model_check;
pub mod procstat;
pub mod server;
pub mod signal;
pub mod sigpipe;
pub mod splice;
pub mod stats;
pub mod tcp_info;
pub mod timer;
pub mod token;
pub mod units;

pub use config::Config;
pub use server::{Server, Stop};
