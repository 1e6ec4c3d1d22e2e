//! `--allow` networks: IPv4 and IPv6 CIDRs, and the check of a source
//! address against them.
//!
//! An IPv4-mapped IPv6 address (`::ffff:a.b.c.d`, what a dual-stack `::`
//! listener reports for an IPv4 client) is matched as the IPv4 address it
//! carries, and a mapped network written with a prefix of 96 or more is
//! stored as the IPv4 network it means: a rule is about a client, not about
//! the socket family that happened to accept it. IPv6 rules (`::/0`
//! included) therefore never match IPv4 clients; admitting everyone takes
//! `0.0.0.0/0` and `::/0`.
//!
//! A network with host bits set (`10.1.0.0/8`) is refused rather than
//! masked: it is almost always a typo for a narrower or a different
//! network, and silently widening it would admit sources the user did not
//! name. The error names the network it would have been.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// One network: its address with the host bits clear, and its prefix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    net: IpAddr,
    prefix: u8,
}

impl Cidr {
    /// Whether `ip` lies in this network (IPv4-mapped IPv6 as IPv4).
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.net, canonical(ip)) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                u32::from(ip) & mask32(self.prefix) == u32::from(net)
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                u128::from(ip) & mask128(self.prefix) == u128::from(net)
            }
            _ => false,
        }
    }

    /// The network's address.
    pub fn network(&self) -> IpAddr {
        self.net
    }

    /// The prefix length.
    pub fn prefix(&self) -> u8 {
        self.prefix
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.net, self.prefix)
    }
}

/// An IPv4-mapped IPv6 address as IPv4; any other address as it is.
pub fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => ip,
        },
        v4 => v4,
    }
}

fn mask32(prefix: u8) -> u32 {
    u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0)
}

fn mask128(prefix: u8) -> u128 {
    u128::MAX.checked_shl(128 - u32::from(prefix)).unwrap_or(0)
}

/// Parses `10.0.0.0/8`, `2001:db8::/32`, `::1/128`, or a bare address (a
/// network of that one address).
pub fn parse_cidr(text: &str) -> Result<Cidr, String> {
    let text = text.trim();
    let (addr, prefix) = match text.split_once('/') {
        Some((addr, prefix)) => (addr, Some(prefix)),
        None => (text, None),
    };
    let ip: IpAddr = addr
        .strip_prefix('[')
        .and_then(|a| a.strip_suffix(']'))
        .unwrap_or(addr)
        .parse()
        .map_err(|_| {
            format!(
                "'{}' is not an IPv4 or IPv6 address; expected a network such as 10.0.0.0/8 or 2001:db8::/32",
                shorten(addr)
            )
        })?;
    let max = if ip.is_ipv4() { 32 } else { 128 };
    let prefix = match prefix {
        None => max,
        Some(p) => {
            let valid = !p.is_empty() && p.len() <= 3 && p.bytes().all(|b| b.is_ascii_digit());
            match p.parse::<u8>() {
                Ok(n) if valid && n <= max => n,
                _ => {
                    return Err(format!(
                        "'/{}' in '{}' is not a prefix length (0-{max} for {})",
                        shorten(p),
                        shorten(text),
                        if max == 32 { "IPv4" } else { "IPv6" }
                    ))
                }
            }
        }
    };
    let (net, prefix) = match ip {
        IpAddr::V6(v6) if prefix >= 96 => match v6.to_ipv4_mapped() {
            Some(v4) => (IpAddr::V4(v4), prefix - 96),
            None => (ip, prefix),
        },
        _ => (ip, prefix),
    };
    let masked = match net {
        IpAddr::V4(v4) => IpAddr::V4(Ipv4Addr::from(u32::from(v4) & mask32(prefix))),
        IpAddr::V6(v6) => IpAddr::V6(Ipv6Addr::from(u128::from(v6) & mask128(prefix))),
    };
    if masked != net {
        return Err(format!(
            "'{}' has host bits set after /{prefix}; did you mean {masked}/{prefix}?",
            shorten(text)
        ));
    }
    Ok(Cidr { net, prefix })
}

fn shorten(text: &str) -> String {
    const SHOWN: usize = 60;
    match text.char_indices().nth(SHOWN) {
        Some((at, _)) => format!("{}…", &text[..at]),
        None => text.to_string(),
    }
}

/// The networks `--allow` named. Empty means no `--allow` was given, and
/// then every source is admitted.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AllowList {
    networks: Vec<Cidr>,
}

impl AllowList {
    /// Parses each `--allow` value; the first bad one is the error, named.
    pub fn parse<'a>(items: impl IntoIterator<Item = &'a str>) -> Result<Self, String> {
        let networks = items
            .into_iter()
            .map(parse_cidr)
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self { networks })
    }

    /// Whether a source at `ip` may connect or send.
    pub fn allows(&self, ip: IpAddr) -> bool {
        self.networks.is_empty() || self.networks.iter().any(|n| n.contains(ip))
    }

    /// The networks, as given (host bits clear, mapped ones as IPv4).
    pub fn networks(&self) -> &[Cidr] {
        &self.networks
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    fn cidr(text: &str) -> Cidr {
        parse_cidr(text).unwrap_or_else(|e| panic!("{text}: {e}"))
    }

    #[test]
    fn ipv4_networks_match_by_prefix() {
        let net = cidr("10.0.0.0/8");
        assert!(net.contains(ip("10.0.0.0")));
        assert!(net.contains(ip("10.255.255.255")));
        assert!(!net.contains(ip("11.0.0.0")));
        assert!(!net.contains(ip("9.255.255.255")));
        assert!(cidr("0.0.0.0/0").contains(ip("203.0.113.9")));
        let host = cidr("127.0.0.2");
        assert_eq!(host.to_string(), "127.0.0.2/32");
        assert!(host.contains(ip("127.0.0.2")));
        assert!(!host.contains(ip("127.0.0.1")));
        assert!(cidr("192.168.1.128/25").contains(ip("192.168.1.200")));
        assert!(!cidr("192.168.1.128/25").contains(ip("192.168.1.127")));
    }

    #[test]
    fn ipv6_networks_match_by_prefix() {
        let net = cidr("2001:db8::/32");
        assert!(net.contains(ip("2001:db8:ffff::1")));
        assert!(!net.contains(ip("2001:db9::1")));
        assert!(cidr("::1/128").contains(ip("::1")));
        assert!(!cidr("::1").contains(ip("::2")));
        assert!(cidr("::/0").contains(ip("fe80::1")));
        assert!(cidr("[::1]/128").contains(ip("::1")));
    }

    #[test]
    fn mapped_addresses_are_ipv4() {
        // A dual-stack listener reports an IPv4 client as ::ffff:a.b.c.d.
        assert!(cidr("10.0.0.0/8").contains(ip("::ffff:10.1.2.3")));
        assert!(!cidr("10.0.0.0/8").contains(ip("::ffff:11.1.2.3")));
        assert!(!cidr("::/0").contains(ip("::ffff:10.1.2.3")));
        assert!(!cidr("::/0").contains(ip("10.1.2.3")));
        assert!(!cidr("0.0.0.0/0").contains(ip("::1")));
        // A mapped network is the IPv4 network it means.
        let mapped = cidr("::ffff:10.0.0.0/104");
        assert_eq!(mapped.to_string(), "10.0.0.0/8");
        assert!(mapped.contains(ip("10.9.9.9")));
        assert_eq!(cidr("::ffff:127.0.0.1").to_string(), "127.0.0.1/32");
    }

    #[test]
    fn bad_networks_say_why() {
        for (text, needle) in [
            (
                "10.0.0.0/33",
                "'/33' in '10.0.0.0/33' is not a prefix length (0-32 for IPv4)",
            ),
            ("::/129", "(0-128 for IPv6)"),
            ("10.0.0.0/", "'/'"),
            ("10.0.0.0/-1", "'/-1'"),
            ("10.0.0.0/+8", "'/+8'"),
            ("10.0.0.0/8/8", "'/8/8'"),
            ("10.0.0/8", "'10.0.0' is not an IPv4 or IPv6 address"),
            ("host/8", "'host'"),
            ("", "'' is not"),
            (
                "10.1.0.0/8",
                "host bits set after /8; did you mean 10.0.0.0/8?",
            ),
            ("2001:db8::1/32", "did you mean 2001:db8::/32?"),
            ("::ffff:10.1.0.0/104", "did you mean 10.0.0.0/8?"),
        ] {
            let e = parse_cidr(text).expect_err(text);
            assert!(e.contains(needle), "{text}: {e}");
        }
    }

    #[test]
    fn display_round_trips() {
        for text in [
            "10.0.0.0/8",
            "::1/128",
            "2001:db8::/32",
            "0.0.0.0/0",
            "::/0",
        ] {
            assert_eq!(cidr(text).to_string(), text);
            assert_eq!(cidr(&cidr(text).to_string()), cidr(text));
        }
    }

    #[test]
    fn allow_lists() {
        let none = AllowList::default();
        assert!(none.allows(ip("203.0.113.1")));
        let list = AllowList::parse(["127.0.0.1", "::1"]).unwrap();
        assert!(list.allows(ip("127.0.0.1")));
        assert!(list.allows(ip("::ffff:127.0.0.1")));
        assert!(list.allows(ip("::1")));
        assert!(!list.allows(ip("127.0.0.2")));
        let e = AllowList::parse(["127.0.0.1", "10.0.0.0/40"]).unwrap_err();
        assert!(e.contains("10.0.0.0/40"), "{e}");
    }
}
