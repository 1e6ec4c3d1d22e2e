//! What to do with bytes and time, as pure code over plain types: no
//! sockets, no system calls. Tested and fuzzed without a kernel.

pub mod buffer;
pub mod busy_poll;
pub mod cidr;
pub mod cpu_budget;
pub mod echo;
pub mod http;
pub mod json;
pub mod metrics;
pub mod port_list;
pub mod proxy_protocol;
pub mod service;
pub mod spin_probe;
pub mod stats;
pub mod stream;
pub mod tcp_info;
pub mod timer;
pub mod token_bucket;
pub mod udp;
