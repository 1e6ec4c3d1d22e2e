//! The address the client talks to: `host:port`, `[v6]:port`, a bare host
//! or IP (port 7878), parsed purely and then resolved.

use std::fmt;
use std::net::{IpAddr, SocketAddr, ToSocketAddrs};

use super::error::ClientError;

/// The port used when the address names none: echo-server's default.
pub const DEFAULT_PORT: u16 = 7878;

/// A host (name or IP literal) and a port, as the user wrote them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// Host name or IP address literal (IPv6 without brackets).
    pub host: String,
    /// TCP port, never 0.
    pub port: u16,
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.host.contains(':') {
            write!(f, "[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{}:{}", self.host, self.port)
        }
    }
}

/// Parses `127.0.0.1:7878`, `[::1]:7878`, `::1`, `localhost:9000` or
/// `example.net` (port [`DEFAULT_PORT`]).
///
/// ```
/// use echo_server::client::target::parse_target;
/// assert_eq!(parse_target("[::1]:9000").unwrap().to_string(), "[::1]:9000");
/// assert_eq!(parse_target("localhost").unwrap().port, 7878);
/// assert!(parse_target("host:http").is_err());
/// ```
pub fn parse_target(text: &str) -> Result<Target, String> {
    let text = text.trim();
    if text.is_empty() {
        return Err("empty address; expected HOST:PORT such as 127.0.0.1:7878".into());
    }
    if let Ok(addr) = text.parse::<SocketAddr>() {
        return with_port(addr.ip().to_string(), addr.port());
    }
    if let Ok(ip) = text.parse::<IpAddr>() {
        if let Some((host, port)) = port_lookalike(text) {
            return Err(format!(
                "'{text}' is ambiguous: write [{host}]:{port} for port {port} on {host}, \
                 or [{text}] for that address on port {DEFAULT_PORT}"
            ));
        }
        return with_port(ip.to_string(), DEFAULT_PORT);
    }
    if let Some(rest) = text.strip_prefix('[') {
        let (inside, after) = rest
            .split_once(']')
            .ok_or("unclosed '[' in address; expected [IPv6]:PORT such as [::1]:7878")?;
        let ip: std::net::Ipv6Addr = inside
            .parse()
            .map_err(|_| format!("'{inside}' is not an IPv6 address"))?;
        let port = match after {
            "" => DEFAULT_PORT,
            _ => parse_port(after.strip_prefix(':').ok_or(format!(
                "unexpected '{after}' after ']'; expected [IPv6]:PORT"
            ))?)?,
        };
        return with_port(ip.to_string(), port);
    }
    match text.matches(':').count() {
        0 => with_port(check_host(text)?, DEFAULT_PORT),
        1 => {
            let (host, port) = text.split_once(':').unwrap_or((text, ""));
            with_port(check_host(host)?, parse_port(port)?)
        }
        _ => Err(format!(
            "'{text}' is not a valid address; IPv6 addresses with a port need brackets, as in [::1]:7878"
        )),
    }
}

/// An unbracketed IPv6 literal that also reads as `IPv6:PORT`: `::1:4000`
/// is an address of its own, but far more likely meant port 4000 on `::1`.
fn port_lookalike(text: &str) -> Option<(&str, &str)> {
    let (host, last) = text.rsplit_once(':')?;
    let digits = (1..=5).contains(&last.len()) && last.bytes().all(|b| b.is_ascii_digit());
    (digits && host.parse::<std::net::Ipv6Addr>().is_ok()).then_some((host, last))
}

fn check_host(host: &str) -> Result<String, String> {
    let valid = !host.is_empty()
        && host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '-' || c == '_');
    if valid {
        Ok(host.to_string())
    } else if host.is_empty() {
        Err("missing host before ':'; expected HOST:PORT such as 127.0.0.1:7878".into())
    } else {
        Err(format!("'{host}' is not a valid host name"))
    }
}

fn parse_port(text: &str) -> Result<u16, String> {
    text.parse::<u16>()
        .map_err(|_| format!("'{text}' is not a port number (1-65535)"))
}

fn with_port(host: String, port: u16) -> Result<Target, String> {
    if port == 0 {
        return Err("port 0 cannot be connected to; give the port the server printed".into());
    }
    Ok(Target { host, port })
}

impl Target {
    /// Resolves the host; IP literals resolve to themselves without a lookup.
    pub fn resolve(&self) -> Result<Vec<SocketAddr>, ClientError> {
        let resolve_error = |detail: String| ClientError::Resolve {
            host: self.host.clone(),
            detail,
        };
        let addrs: Vec<SocketAddr> = (self.host.as_str(), self.port)
            .to_socket_addrs()
            .map_err(|e| resolve_error(e.to_string()))?
            .collect();
        if addrs.is_empty() {
            return Err(resolve_error("no addresses found".into()));
        }
        Ok(addrs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(text: &str) -> (String, u16) {
        let t = parse_target(text).unwrap_or_else(|e| panic!("{text}: {e}"));
        (t.host, t.port)
    }

    #[test]
    fn accepted_forms() {
        assert_eq!(ok("127.0.0.1:7878"), ("127.0.0.1".into(), 7878));
        assert_eq!(ok("127.0.0.1"), ("127.0.0.1".into(), 7878));
        assert_eq!(ok("[::1]:9"), ("::1".into(), 9));
        assert_eq!(ok("[::1]"), ("::1".into(), 7878));
        assert_eq!(ok("::1"), ("::1".into(), 7878));
        // Unbracketed IPv6 whose last group cannot be a port, or whose
        // front is no address of its own.
        assert_eq!(ok("fe80::1"), ("fe80::1".into(), 7878));
        assert_eq!(ok("2001:db8::abcd"), ("2001:db8::abcd".into(), 7878));
        assert_eq!(ok("::ffff:10.0.0.1"), ("::ffff:10.0.0.1".into(), 7878));
        assert_eq!(ok("[::1:4000]"), ("::1:4000".into(), 7878));
        assert_eq!(ok("localhost:65535"), ("localhost".into(), 65535));
        assert_eq!(
            ok(" echo.example-1.net "),
            ("echo.example-1.net".into(), 7878)
        );
    }

    #[test]
    fn rejected_forms_say_why() {
        for (text, needle) in [
            ("", "empty"),
            (":7878", "missing host"),
            ("host:", "not a port"),
            ("host:99999", "not a port"),
            ("host:0", "port 0"),
            ("[::1", "unclosed"),
            ("[::1]7878", "unexpected"),
            ("[nope]:1", "not an IPv6"),
            ("fe80::1:2:x:7878", "brackets"),
            // Read literally these are addresses on port 7878, but the user
            // almost surely meant a port.
            (
                "::1:4000",
                "ambiguous: write [::1]:4000 for port 4000 on ::1",
            ),
            ("2001:db8::1:80", "or [2001:db8::1:80] for that address"),
            ("bad host", "not a valid host"),
        ] {
            let err = parse_target(text).expect_err(text);
            assert!(err.contains(needle), "{text}: {err}");
        }
    }

    #[test]
    fn display_round_trips() {
        for text in ["127.0.0.1:1", "[::1]:7878", "localhost:80"] {
            assert_eq!(parse_target(text).unwrap().to_string(), text);
        }
    }

    #[test]
    fn literals_resolve_without_lookup() {
        let addrs = parse_target("[::1]:7").unwrap().resolve().unwrap();
        assert_eq!(addrs, vec!["[::1]:7".parse().unwrap()]);
    }
}
