//! `echo-client probe`'s arguments: the host, its ports, and how they are probed.

use std::time::Duration;

use clap::Args;

use super::{positive_seconds, sized};
use crate::client::target::parse_target;
use crate::logic::port_list::{parse_port_list, ALL_PORTS};

/// Arguments of `probe`.
#[derive(Debug, Args)]
pub struct ProbeArgs {
    /// The host: a name, or an IPv4 or IPv6 address (brackets optional).
    /// A name is resolved once, and every port is probed on its first address.
    #[arg(value_name = "HOST", value_parser = probe_host)]
    pub host: String,

    /// Ports and ranges, such as 22,80,443,7000-7010 (sorted, duplicates
    /// merged); only these are contacted.
    #[arg(value_name = "PORTS", value_parser = probe_ports)]
    pub ports: Ports,

    /// Probe UDP ports: a datagram each, resent after each --timeout up to
    /// --retries times; an echo, `refused` (ICMP port unreachable) or
    /// `no answer`.
    #[arg(short, long)]
    pub udp: bool,

    /// Seconds to wait for a TCP handshake, then for its echo (UDP: for
    /// each datagram's echo).
    #[arg(short = 'W', long, default_value = "2", value_name = "SECS", value_parser = positive_seconds, allow_negative_numbers = true)]
    pub timeout: Duration,

    /// Ports probed at once.
    #[arg(short, long, default_value_t = 64, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=4096), allow_negative_numbers = true)]
    pub concurrency: u32,

    /// Seconds after which no new probe starts; ports left are reported
    /// as not probed. The run ends at most one probe's time later.
    #[arg(long, default_value = "60", value_name = "SECS", value_parser = positive_seconds, allow_negative_numbers = true)]
    pub max_time: Duration,

    /// With --udp, datagrams resent after a timeout before a port counts
    /// as `no answer`.
    #[arg(long, default_value_t = 2, value_name = "N", value_parser = clap::value_parser!(u32).range(0..=10), allow_negative_numbers = true)]
    pub retries: u32,

    /// Bytes per probe (K suffix allowed, at most 1K).
    #[arg(short, long, default_value = "16", value_name = "BYTES", value_parser = probe_payload, allow_negative_numbers = true)]
    pub size: usize,

    /// Print one JSON document on stdout instead of the table.
    #[arg(long)]
    pub json: bool,
}

/// `probe`'s ports: sorted, distinct, at least one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ports(pub Vec<u16>);

fn probe_ports(text: &str) -> Result<Ports, String> {
    parse_port_list(text, ALL_PORTS).map(Ports)
}

fn probe_host(text: &str) -> Result<String, String> {
    let text = text.trim();
    let bare = text
        .strip_prefix('[')
        .and_then(|t| t.strip_suffix(']'))
        .unwrap_or(text);
    if let Ok(ip) = bare.parse::<std::net::IpAddr>() {
        return Ok(ip.to_string());
    }
    if text.contains(':') || text.contains('[') {
        return Err(format!(
            "'{text}' is not a host: the ports go in PORTS, as in `probe lab-host 22,80,7000-7010`"
        ));
    }
    parse_target(text).map(|target| target.host)
}

fn probe_payload(text: &str) -> Result<usize, String> {
    sized(text, 1024, "1K")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::client::cli::{ClientCli, Mode};
    use clap::Parser;

    #[test]
    fn probe_arguments() {
        let cli =
            ClientCli::try_parse_from(["echo-client", "probe", "[::1]", "8443,7000-7002,7001"])
                .unwrap();
        let Some(Mode::Probe(probe)) = cli.mode else {
            panic!("not probe")
        };
        assert_eq!(probe.host, "::1");
        assert_eq!(probe.ports, Ports(vec![7000, 7001, 7002, 8443]));
        assert_eq!(
            (probe.concurrency, probe.udp, probe.retries),
            (64, false, 2)
        );
        let cli = ClientCli::try_parse_from(["echo-client", "probe", "lab-host", "1-65535", "-u"])
            .unwrap();
        let Some(Mode::Probe(probe)) = cli.mode else {
            panic!("not probe")
        };
        assert_eq!(
            (probe.host.as_str(), probe.ports.0.len(), probe.udp),
            ("lab-host", 65535, true)
        );
        let e = ClientCli::try_parse_from(["echo-client", "probe", "lab:22", "22"]).unwrap_err();
        assert!(e.to_string().contains("the ports go in PORTS"), "{e}");
    }

    // Every accepted rate has an interval the schedule can add to an
}
