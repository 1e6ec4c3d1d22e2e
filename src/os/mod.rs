//! The thin layer that talks to the kernel: binding, limits, signals,
//! splice pipes, SIGPIPE, TCP_INFO, the send queue, /proc, and the log's writer thread.

pub mod cpu_budget;
pub mod limits;
pub mod listener;
pub mod log_writer;
pub mod priority;
pub mod procstat;
pub mod rx_timestamp;
pub(crate) mod send_queue;
pub mod signal;
pub(crate) mod sigpipe;
pub(crate) mod splice;
pub mod tcp_info;
pub mod udp;
