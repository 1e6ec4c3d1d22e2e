//! From the parsed flags to the server's [`Config`]: the settings that do
//! not go together, then the translation.

use std::net::SocketAddr;

use log::LevelFilter;

use super::values::nonzero;
use super::Cli;
use crate::config::tls::TlsFlags;
use crate::config::{Config, UdpSettings};
use crate::logic::cidr::AllowList;
use crate::logic::port_list::MAX_LISTEN_PORTS;
use crate::logic::service::{Mode, FRAMED_HEADROOM, LINES_HEADROOM};

impl Cli {
    /// The TLS flags, to be checked together.
    fn tls_flags(&self) -> TlsFlags {
        TlsFlags {
            cert: self.tls_cert.clone(),
            key: self.tls_key.clone(),
            self_signed: self.tls_self_signed,
            client_ca: self.tls_client_ca.clone(),
            port: self.tls_port,
            handshake_timeout: self.handshake_timeout,
        }
    }

    /// Settings that do not go together, as the error to stop with.
    pub fn conflicts(&self) -> Option<String> {
        if let Some(message) = self.listener_conflicts() {
            return Some(message);
        }
        // --print-config shows each TLS flag as given, alone too; the
        // pairs are checked when the server is to start.
        if let Some(message) = self.tls_flags().conflicts().filter(|_| !self.print_config) {
            return Some(message);
        }
        let buffer = self.buffer_size;
        if let Some(max) = self.max_line {
            if !self.mode.takes_lines() {
                return Some(format!(
                    "--max-line applies to --mode echo and upper, not {}",
                    self.mode.name()
                ));
            }
            if max.saturating_add(LINES_HEADROOM) > buffer {
                return Some(format!(
                    "--max-line {max} needs a --buffer-size of at least {} (the line is held \
                     in the connection's buffer, with room for the error)",
                    max + LINES_HEADROOM
                ));
            }
        }
        if self.mode == Mode::Framed && buffer < 2 * FRAMED_HEADROOM {
            return Some(format!(
                "--mode framed needs a --buffer-size of at least {} (a frame is held in the \
                 connection's buffer, with room kept for replies)",
                2 * FRAMED_HEADROOM
            ));
        }
        None
    }

    /// `--port` and `--listen` together: the bound on listeners, each
    /// address and port named once, and the buffer a framed one needs.
    fn listener_conflicts(&self) -> Option<String> {
        let ports = self.port.as_ref().map_or(0, |p| p.0.len());
        let total = ports + self.listen.iter().map(|g| g.ports.len()).sum::<usize>();
        if total > MAX_LISTEN_PORTS {
            return Some(format!(
                "--port and --listen name {total} ports in all; at most {MAX_LISTEN_PORTS} \
                 (each is a listening socket and a file descriptor)"
            ));
        }
        let bind_ip = self.bind.map(|b| b.ip);
        let mut seen = std::collections::HashSet::new();
        let port_ips = self
            .port
            .iter()
            .flat_map(|p| p.0.iter().map(|&port| (bind_ip, port)));
        let group_ips = self
            .listen
            .iter()
            .flat_map(|g| g.ports.iter().map(|&port| (Some(g.ip), port)));
        for (ip, port) in port_ips.chain(group_ips) {
            if port != 0 && !seen.insert((ip, port)) {
                let ip = ip.map_or_else(|| "the default address".to_string(), |ip| ip.to_string());
                return Some(format!(
                    "port {port} on {ip} is named twice by --port and --listen"
                ));
            }
        }
        let framed = self.listen.iter().any(|g| g.mode == Some(Mode::Framed));
        if framed && self.buffer_size < 2 * FRAMED_HEADROOM {
            return Some(format!(
                "--listen …/framed needs a --buffer-size of at least {}",
                2 * FRAMED_HEADROOM
            ));
        }
        None
    }

    /// The checked settings these arguments ask for.
    pub fn into_config(self) -> Config {
        let tls = self.tls_flags().into_settings().map(Box::new);
        let log_level = if self.quiet {
            LevelFilter::Error
        } else if self.verbose {
            LevelFilter::Debug
        } else {
            LevelFilter::Info
        };
        let ports = self.port.map_or_else(Vec::new, |p| p.0);
        let first = ports.first().copied().unwrap_or(0);
        let listen = match self.bind {
            Some(bind) => bind.with_port(first),
            None => SocketAddr::from((std::net::Ipv6Addr::UNSPECIFIED, first)),
        };
        let allow = (!self.allow.is_empty()).then(|| {
            // Each was checked by its value parser.
            AllowList::parse(self.allow.iter().map(String::as_str)).unwrap_or_default()
        });
        Config {
            listen,
            ports,
            listen_more: self.listen,
            dual_stack_default: self.bind.is_none(),
            allow,
            max_per_source: self.max_per_source,
            proxy_protocol: self.proxy_protocol.then_some(self.proxy_timeout),
            backlog: self.backlog,
            buffer_size: self.buffer_size,
            splice: !self.no_splice,
            splice_backlog: self.splice_backlog,
            idle_timeout: nonzero(self.idle_timeout),
            busy_poll: self.busy_poll,
            max_connections: self.max_connections,
            shutdown_timeout: self.shutdown_timeout,
            stats_interval: nonzero(self.stats_interval),
            log_level,
            log_format: self.log_format,
            metrics: self.metrics,
            metrics_allow_hosts: self.metrics_allow_host,
            mode: self.mode,
            max_line: self.max_line,
            workers: self.workers,
            prime_test: self.prime_test,
            udp: self.udp.then_some(UdpSettings {
                rate: self.udp_rate,
                bytes: self.udp_bytes,
            }),
            tls,
        }
    }
}
