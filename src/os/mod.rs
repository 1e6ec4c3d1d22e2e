//! The thin layer that talks to the kernel: binding, limits, signals,
//! splice pipes, SIGPIPE, TCP_INFO, /proc, and the log's writer thread.

pub mod cpu_budget;
pub mod limits;
pub mod listener;
pub mod log_writer;
pub mod priority;
pub mod procstat;
pub mod rx_timestamp;
pub mod signal;
pub(crate) mod sigpipe;
pub(crate) mod splice;
pub mod tcp_info;
