//! The integration tests, one crate: each module runs the real
//! `echo-server` and `echo-client` binaries and checks what they do from
//! the outside. One file's tests: `cargo test --release --test it <file>::`.
//!
//! All tests run in this one process, in parallel; those that load the
//! machine or are bounded by timings take turns (`support::one_at_a_time`).

mod support;

mod abrupt_disconnects;
mod admission;
mod backpressure;
mod busy_poll;
mod churn;
mod client_bench;
mod client_bench_faults;
mod client_bench_rtt;
mod client_bench_stream;
mod client_completions;
mod client_help;
mod client_memory;
mod client_modes;
mod client_output;
mod client_ping;
mod client_probe;
mod client_rate;
mod client_report_formats;
mod client_self_connect;
mod client_send;
mod client_tls;
mod client_values;
mod config_file;
mod dashboard;
mod deploy;
mod echo;
mod endpoint_load;
mod endpoint_security;
mod half_close;
mod integrity;
mod limits;
mod listen;
mod listeners;
mod log_never_blocks;
mod logging;
mod modes_client;
mod modes_framed;
mod modes_text;
mod observability;
mod other_protocols;
mod proxy_protocol;
mod readme_examples;
mod scale;
mod server_exit_codes;
mod shutdown;
mod timeouts;
mod tls;
mod udp;
mod zero_copy;
