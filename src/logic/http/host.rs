//! The `Host` check: which `Host` values name this endpoint, so that a web
//! page cannot read the pages through DNS rebinding.

use std::net::{Ipv4Addr, Ipv6Addr};

/// Which `Host` values name this endpoint (the port is ignored, and case):
/// - any IP address literal (`127.0.0.1`, `[::1]`, the bound address or
///   one a NAT or container maps to it): DNS rebinding needs a host name;
/// - `localhost` and names under `.localhost`, always loopback (RFC 6761);
/// - the names given with `--metrics-allow-host`, for a public bind
///   reached by its DNS name.
///
/// A web page can only reach the endpoint through another name by making
/// that name resolve to the endpoint's address (DNS rebinding); the
/// browser then sends that name, which none of the above matches.
#[derive(Debug, Clone, Copy, Default)]
pub struct AllowedHosts<'a> {
    names: &'a [String],
}

/// What a `Host` value is to this endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HostVerdict {
    /// It names this endpoint.
    Ours,
    /// A well-formed name of some other server: answered `421`.
    Foreign,
    /// Not a valid `host[:port]`: answered `400`.
    Invalid,
}

impl<'a> AllowedHosts<'a> {
    /// The IP literals and localhost names, plus `names` (host names
    /// without a port; compared ignoring case and a trailing dot).
    pub fn new(names: &'a [String]) -> Self {
        Self { names }
    }

    /// Classifies the value of a `Host` header.
    ///
    /// (Example: the test `hosts_are_ours_foreign_or_invalid`.)
    pub fn check(&self, value: &[u8]) -> HostVerdict {
        let value = value.trim_ascii();
        let (host, port) = if let Some(rest) = value.strip_prefix(b"[") {
            // An IPv6 literal; zone identifiers are not accepted.
            let Some(end) = rest.iter().position(|&b| b == b']') else {
                return HostVerdict::Invalid;
            };
            let port = match &rest[end + 1..] {
                [] => &[][..],
                [b':', port @ ..] => port,
                _ => return HostVerdict::Invalid,
            };
            if !port.iter().all(u8::is_ascii_digit) {
                return HostVerdict::Invalid;
            }
            return match std::str::from_utf8(&rest[..end]).map(str::parse::<Ipv6Addr>) {
                Ok(Ok(_)) => HostVerdict::Ours,
                _ => HostVerdict::Invalid,
            };
        } else {
            match value.iter().position(|&b| b == b':') {
                Some(colon) => (&value[..colon], &value[colon + 1..]),
                None => (value, &[][..]),
            }
        };
        if !port.iter().all(u8::is_ascii_digit) || !host.iter().all(|&b| is_reg_name_byte(b)) {
            return HostVerdict::Invalid;
        }
        let name = host.strip_suffix(b".").unwrap_or(host);
        // Only ASCII passed the check above.
        let name = std::str::from_utf8(name).unwrap_or_default();
        if name.is_empty() {
            // An empty Host names no server (a request for a URI without
            // an authority); no browser sends it.
            return HostVerdict::Foreign;
        }
        let localhost = name.eq_ignore_ascii_case("localhost")
            || name.len() > ".localhost".len()
                && name
                    .get(name.len() - ".localhost".len()..)
                    .is_some_and(|tail| tail.eq_ignore_ascii_case(".localhost"));
        let allowed = localhost
            || name.parse::<Ipv4Addr>().is_ok()
            || self
                .names
                .iter()
                .any(|n| n.strip_suffix('.').unwrap_or(n).eq_ignore_ascii_case(name));
        if allowed {
            HostVerdict::Ours
        } else {
            HostVerdict::Foreign
        }
    }
}

/// A byte of a `reg-name` or IPv4 address (RFC 3986: unreserved,
/// percent-encoded or sub-delims).
fn is_reg_name_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"-._~%!$&'()*+,;=".contains(&b)
}

#[cfg(test)]
mod tests {
    use super::*;

    // Only IP literals, localhost names and the configured names are
    // answered; the port and case do not matter.
    #[test]
    fn host_names_this_endpoint_or_is_refused() {
        let names = ["metrics.example.org".to_string(), "Box.Lan.".to_string()];
        let hosts = AllowedHosts::new(&names);
        for ours in [
            "127.0.0.1",
            "127.0.0.1:9187",
            "10.1.2.3:80",
            "[::1]",
            "[::1]:9187",
            "[2001:db8::7]:1",
            "localhost",
            "LOCALHOST:9187",
            "localhost.",
            "app.localhost",
            "a.b.LocalHost:1",
            "metrics.example.org",
            "METRICS.example.org:443",
            "metrics.example.org.",
            "box.lan",
            " 127.0.0.1 ",
            "localhost:",
        ] {
            assert_eq!(hosts.check(ours.as_bytes()), HostVerdict::Ours, "{ours}");
        }
        for foreign in [
            "rebind.attacker.example",
            "rebind.attacker.example:9187",
            "localhost.attacker.example",
            "xlocalhost",
            ".localhost",
            "127.0.0.1.nip.io",
            "example.org",
            "sub.metrics.example.org",
            "",
            ":9187",
            "127.1",
        ] {
            assert_eq!(
                hosts.check(foreign.as_bytes()),
                HostVerdict::Foreign,
                "{foreign}"
            );
            let default = AllowedHosts::default();
            assert_eq!(default.check(foreign.as_bytes()), HostVerdict::Foreign);
        }
        assert_eq!(
            AllowedHosts::default().check(b"metrics.example.org"),
            HostVerdict::Foreign
        );
        for invalid in [
            "a b",
            "::1",
            "[::1",
            "[::1]x",
            "[::1]:x",
            "[fe80::1%25eth0]",
            "[not-ip]",
            "host:port",
            "host:1:2",
            "h\u{e9}",
            "a/b",
            "a@b",
        ] {
            assert_eq!(
                hosts.check(invalid.as_bytes()),
                HostVerdict::Invalid,
                "{invalid}"
            );
        }
    }
}

#[cfg(test)]
mod example {
    // The example the docs above point to.
    #[test]
    fn hosts_are_ours_foreign_or_invalid() {
        use crate::logic::http::host::{AllowedHosts, HostVerdict};
        let names = ["metrics.example.org".to_string()];
        let hosts = AllowedHosts::new(&names);
        assert_eq!(hosts.check(b"[::1]:9187"), HostVerdict::Ours);
        assert_eq!(hosts.check(b"Metrics.Example.org"), HostVerdict::Ours);
        assert_eq!(hosts.check(b"evil.example"), HostVerdict::Foreign);
        assert_eq!(hosts.check(b"a b"), HostVerdict::Invalid);
    }
}
