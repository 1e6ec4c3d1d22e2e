//! The port-list, `--listen` and CIDR parsers on arbitrary text.
//!
//! Checked for any input: nothing panics; an accepted port list is sorted,
//! distinct, without 0 and within its bound, and its compact form parses
//! back to the same ports; an accepted `--listen` spec prints back to text
//! that parses to the same spec; an accepted network has its host bits
//! clear, contains its own address, prints back to itself, and matches an
//! IPv4-mapped address exactly as the IPv4 address.

use std::net::{IpAddr, Ipv4Addr};

use super::Violation;
use crate::logic::cidr::{canonical, parse_cidr};
use crate::logic::port_list::{
    format_port_list, parse_listen, parse_port_list, ALL_PORTS, MAX_LISTEN_PORTS,
};

/// What one input did, for tests that check a corpus covers the ground.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortCidrRun {
    /// The text parsed as a port list (bounded as the server's).
    pub ports_accepted: bool,
    /// The text parsed as a `--listen` spec.
    pub listen_accepted: bool,
    /// The text parsed as a network.
    pub cidr_accepted: bool,
}

/// Runs every parser on `data` as text.
pub fn check_port_cidr(data: &[u8]) -> Result<PortCidrRun, Violation> {
    let text = String::from_utf8_lossy(data);
    let fail = |what: &str, detail: String| Violation::new(0, format!("{what} {text:?}: {detail}"));
    let mut ports_accepted = false;
    for max in [MAX_LISTEN_PORTS, ALL_PORTS] {
        if let Ok(ports) = parse_port_list(&text, max) {
            ports_accepted |= max == MAX_LISTEN_PORTS;
            let sorted = ports.windows(2).all(|w| w[0] < w[1]);
            if !sorted || ports.is_empty() || ports.len() > max || ports.contains(&0) {
                return Err(fail("port list", format!("accepted {ports:?}")));
            }
            let printed = format_port_list(&ports);
            if parse_port_list(&printed, max).as_ref() != Ok(&ports) {
                return Err(fail("port list", format!("prints as {printed:?}")));
            }
        }
    }
    let listen_accepted = match parse_listen(&text, MAX_LISTEN_PORTS) {
        Ok(spec) => {
            let printed = spec.to_string();
            if parse_listen(&printed, MAX_LISTEN_PORTS).as_ref() != Ok(&spec) {
                return Err(fail("--listen", format!("prints as {printed:?}")));
            }
            true
        }
        Err(_) => false,
    };
    let cidr_accepted = match parse_cidr(&text) {
        Ok(net) => {
            let printed = net.to_string();
            if parse_cidr(&printed) != Ok(net) || !net.contains(net.network()) {
                return Err(fail("network", format!("{net} does not round-trip")));
            }
            if canonical(net.network()) != net.network() {
                return Err(fail("network", format!("{net} kept its IPv4 mapping")));
            }
            if let IpAddr::V4(v4) = net.network() {
                let probe = Ipv4Addr::from(u32::from(v4) | (u32::from(text.len() as u16)));
                let mapped = IpAddr::V6(probe.to_ipv6_mapped());
                if net.contains(IpAddr::V4(probe)) != net.contains(mapped) {
                    return Err(fail(
                        "network",
                        format!("{net}: {probe} and {mapped} differ"),
                    ));
                }
            }
            true
        }
        Err(_) => false,
    };
    Ok(PortCidrRun {
        ports_accepted,
        listen_accepted,
        cidr_accepted,
    })
}
