//! Port lists as people write them (`7000-7010,8443`) and the server's
//! `--listen ADDR:PORTS[/MODE]`, parsed into sorted, deduplicated ports.
//!
//! Overlapping ranges and repeated ports are merged, not refused: a rule
//! set copied from a firewall often names a port twice, and listening on it
//! once is what was meant. Reversed ranges, port 0 and anything that is not
//! a port are refused with the part that is wrong. The count is bounded by
//! the caller (each port costs a descriptor on the server); the bound is
//! checked on distinct ports, without expanding a range into memory first.

use std::fmt;
use std::net::IpAddr;

/// Most ports the server's `--port` and `--listen` may name in all.
pub const MAX_LISTEN_PORTS: usize = 1024;

/// Every port there is: the bound for a list that needs none.
pub const ALL_PORTS: usize = 65_535;

/// Parses `7000-7010,8443` (spaces around items allowed) into sorted,
/// distinct ports; `max` bounds how many.
pub fn parse_port_list(text: &str, max: usize) -> Result<Vec<u16>, String> {
    let mut seen = PortSet::new();
    if text.trim().is_empty() {
        return Err("empty port list; expected ports and ranges such as 7000-7010,8443".into());
    }
    for item in text.split(',') {
        let item = item.trim();
        if item.is_empty() {
            return Err(format!(
                "empty item in port list '{}'; separate ports with single commas",
                shorten(text.trim())
            ));
        }
        let (first, last) = match item.split_once('-') {
            Some((a, b)) => {
                let (first, last) = (port(a.trim(), item)?, port(b.trim(), item)?);
                if first > last {
                    return Err(format!("range '{item}' is reversed; write {last}-{first}"));
                }
                (first, last)
            }
            None => {
                let p = port(item, item)?;
                (p, p)
            }
        };
        seen.insert_range(first, last);
    }
    let count = seen.count();
    if count > max {
        return Err(format!(
            "'{}' names {count} ports; at most {max} are allowed",
            shorten(text.trim())
        ));
    }
    Ok(seen.ports())
}

/// One port of an item, 1 to 65535.
fn port(text: &str, item: &str) -> Result<u16, String> {
    let valid = !text.is_empty() && text.len() <= 5 && text.bytes().all(|b| b.is_ascii_digit());
    match text.parse::<u32>() {
        Ok(0) if valid => Err(format!(
            "port 0 in '{item}' cannot be listened on or probed; ports are 1-65535"
        )),
        Ok(p) if valid && p <= 65_535 => Ok(p as u16),
        _ if text.is_empty() => Err(format!("'{item}' is missing a port on one side of '-'")),
        _ => Err(format!("'{text}' in '{item}' is not a port (1-65535)")),
    }
}

/// Long hostile input is cut in messages, so one error is one short line.
fn shorten(text: &str) -> String {
    const SHOWN: usize = 40;
    match text.char_indices().nth(SHOWN) {
        Some((at, _)) => format!("{}…", &text[..at]),
        None => text.to_string(),
    }
}

/// The ports as a compact list: runs of three or more become ranges
/// (`7000-7010,8443`), so `parse_port_list` reads back the same ports.
pub fn format_port_list(ports: &[u16]) -> String {
    let mut out = String::new();
    let mut i = 0;
    while i < ports.len() {
        let mut j = i;
        while j + 1 < ports.len()
            && ports[j + 1] == ports[j].wrapping_add(1)
            && ports[j] != u16::MAX
        {
            j += 1;
        }
        if !out.is_empty() {
            out.push(',');
        }
        match j - i {
            0 => out.push_str(&ports[i].to_string()),
            1 => out.push_str(&format!("{},{}", ports[i], ports[j])),
            _ => out.push_str(&format!("{}-{}", ports[i], ports[j])),
        }
        i = j + 1;
    }
    out
}

/// 65,536 bits: dedups any list in 8 KiB, however long its ranges.
struct PortSet(Box<[u64; 1024]>);

impl PortSet {
    fn new() -> Self {
        Self(Box::new([0; 1024]))
    }

    fn insert_range(&mut self, first: u16, last: u16) {
        for p in first..=last {
            self.0[usize::from(p) / 64] |= 1 << (p % 64);
        }
    }

    fn count(&self) -> usize {
        self.0.iter().map(|w| w.count_ones() as usize).sum()
    }

    fn ports(&self) -> Vec<u16> {
        (1..=u16::MAX)
            .filter(|&p| self.0[usize::from(p) / 64] & (1 << (p % 64)) != 0)
            .collect()
    }
}

/// `--listen ADDR:PORTS[/MODE]`: an address, its ports, and a service mode
/// the server checks against the modes it has (the parser only checks that
/// it is a word).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListenSpec {
    /// The address to bind (IPv6 written in brackets).
    pub ip: IpAddr,
    /// Sorted, distinct ports.
    pub ports: Vec<u16>,
    /// The service mode after `/`, lower case, if one was given.
    pub mode: Option<String>,
}

impl fmt::Display for ListenSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.ip {
            IpAddr::V4(ip) => write!(f, "{ip}")?,
            IpAddr::V6(ip) => write!(f, "[{ip}]")?,
        }
        write!(f, ":{}", format_port_list(&self.ports))?;
        if let Some(mode) = &self.mode {
            write!(f, "/{mode}")?;
        }
        Ok(())
    }
}

/// Parses `0.0.0.0:9/discard`, `[::1]:7000-7010,8443` or `127.0.0.1:7`.
pub fn parse_listen(text: &str, max_ports: usize) -> Result<ListenSpec, String> {
    let text = text.trim();
    let example = "expected ADDR:PORTS[/MODE] such as 0.0.0.0:7000-7010/echo or [::1]:9";
    let (rest, mode) = match text.split_once('/') {
        Some((rest, mode)) => (rest, Some(parse_mode(mode, text)?)),
        None => (text, None),
    };
    let (ip, ports) = if let Some(inside) = rest.strip_prefix('[') {
        let (addr, after) = inside
            .split_once(']')
            .ok_or_else(|| format!("unclosed '[' in '{}'; {example}", shorten(text)))?;
        let ip: std::net::Ipv6Addr = addr
            .parse()
            .map_err(|_| format!("'{}' is not an IPv6 address", shorten(addr)))?;
        let ports = after.strip_prefix(':').ok_or_else(|| {
            format!(
                "'{}' has no ':PORTS' after the address; {example}",
                shorten(text)
            )
        })?;
        (IpAddr::V6(ip), ports)
    } else {
        let (addr, ports) = rest
            .split_once(':')
            .ok_or_else(|| format!("'{}' has no ':PORTS'; {example}", shorten(text)))?;
        if ports.contains(':') {
            return Err(format!(
                "'{}': an IPv6 address needs brackets, as in [::1]:7000",
                shorten(text)
            ));
        }
        let ip: std::net::Ipv4Addr = addr.parse().map_err(|_| {
            format!(
                "'{}' is not an IPv4 address (IPv6 goes in brackets: [::1])",
                shorten(addr)
            )
        })?;
        (IpAddr::V4(ip), ports)
    };
    let ports = parse_port_list(ports, max_ports)?;
    Ok(ListenSpec { ip, ports, mode })
}

fn parse_mode(mode: &str, text: &str) -> Result<String, String> {
    let valid = !mode.is_empty()
        && mode.len() <= 32
        && mode
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if valid {
        Ok(mode.to_ascii_lowercase())
    } else {
        Err(format!(
            "'{}' after '/' in '{}' is not a service mode name",
            shorten(mode),
            shorten(text)
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(text: &str) -> Vec<u16> {
        parse_port_list(text, MAX_LISTEN_PORTS).unwrap_or_else(|e| panic!("{text}: {e}"))
    }

    fn err(text: &str) -> String {
        parse_port_list(text, MAX_LISTEN_PORTS).expect_err(text)
    }

    #[test]
    fn lists_and_ranges_are_sorted_and_merged() {
        assert_eq!(ok("8443,7000-7003"), [7000, 7001, 7002, 7003, 8443]);
        assert_eq!(ok(" 22 , 80,443 "), [22, 80, 443]);
        assert_eq!(
            ok("7000-7002,7001-7004,7002,7002"),
            [7000, 7001, 7002, 7003, 7004]
        );
        assert_eq!(ok("65535"), [65535]);
        assert_eq!(ok("9-9"), [9]);
        assert_eq!(ok("1-1024").len(), 1024);
        assert_eq!(parse_port_list("1-65535", ALL_PORTS).unwrap().len(), 65_535);
    }

    #[test]
    fn bad_lists_name_the_bad_part() {
        for (text, needle) in [
            ("", "empty port list"),
            ("7000,,8000", "empty item"),
            ("7000,", "empty item"),
            (
                "7010-7000",
                "range '7010-7000' is reversed; write 7000-7010",
            ),
            ("0", "port 0 in '0'"),
            ("0-10", "port 0 in '0-10'"),
            ("80,http", "'http' in 'http' is not a port"),
            ("65536", "'65536' in '65536' is not a port"),
            ("7000-", "missing a port"),
            ("-7000", "missing a port"),
            ("1-2-3", "'2-3' in '1-2-3' is not a port"),
            ("+80", "'+80'"),
            ("000080", "'000080'"),
            ("1-1025", "names 1025 ports; at most 1024"),
            ("1-65535", "names 65535 ports"),
        ] {
            let e = err(text);
            assert!(e.contains(needle), "{text}: {e}");
        }
        // Overlaps count once: 1,024 distinct ports fit.
        assert_eq!(ok("1-1000,500-1024").len(), 1024);
        assert!(err(&"1-1,".repeat(1000)).chars().count() < 200);
    }

    #[test]
    fn compact_form_round_trips() {
        for ports in [
            vec![],
            vec![7],
            vec![7, 8],
            vec![7, 8, 9, 11, 65534, 65535],
            vec![1, 3, 5],
            (7000..=7010).chain([8443]).collect(),
        ] {
            let text = format_port_list(&ports);
            if !ports.is_empty() {
                assert_eq!(ok(&text), ports, "{text}");
            }
        }
        assert_eq!(
            format_port_list(&(7000..=7010).chain([8443, 8444]).collect::<Vec<_>>()),
            "7000-7010,8443,8444"
        );
    }

    #[test]
    fn listen_specs() {
        let spec = parse_listen("0.0.0.0:9/Discard", MAX_LISTEN_PORTS).unwrap();
        assert_eq!(spec.ip, IpAddr::from([0, 0, 0, 0]));
        assert_eq!(spec.ports, [9]);
        assert_eq!(spec.mode.as_deref(), Some("discard"));
        assert_eq!(spec.to_string(), "0.0.0.0:9/discard");
        let spec = parse_listen("[::1]:7000-7002,8443", MAX_LISTEN_PORTS).unwrap();
        assert_eq!(spec.to_string(), "[::1]:7000-7002,8443");
        assert_eq!(spec.mode, None);
        assert_eq!(parse_listen(&spec.to_string(), MAX_LISTEN_PORTS), Ok(spec));
        for (text, needle) in [
            ("9", "no ':PORTS'"),
            ("::1:9", "needs brackets"),
            ("[::1:9", "unclosed"),
            ("[::1]9", "no ':PORTS' after"),
            ("[nope]:9", "'nope' is not an IPv6"),
            ("localhost:9", "'localhost' is not an IPv4"),
            ("1.2.3.4:0", "port 0"),
            ("1.2.3.4:9/", "'' after '/'"),
            ("1.2.3.4:9/echo/x", "'echo/x' after '/'"),
            ("1.2.3.4:9/ec ho", "not a service mode"),
            ("1.2.3.4:9-1", "reversed"),
        ] {
            let e = parse_listen(text, MAX_LISTEN_PORTS).expect_err(text);
            assert!(e.contains(needle), "{text}: {e}");
        }
    }
}
