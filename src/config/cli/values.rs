//! The server's value parsers: each flag's text checked and turned into
//! its value, with the bounds and the wording of its errors.

use std::net::SocketAddr;
use std::ops::RangeInclusive;
use std::time::Duration;

use crate::config::units::{parse_seconds, parse_size};
use crate::config::{ListenGroup, DEFAULT_METRICS};
use crate::logic::busy_poll::BusyPollSetting;
use crate::logic::cidr::parse_cidr;
use crate::logic::port_list::{parse_listen, parse_port_list, MAX_LISTEN_PORTS};
use crate::logic::service::{Mode, PrimeTest};
use crate::os::listener::{check_listenable, parse_listen_ip};

/// Smallest and largest accepted `--buffer-size`.
pub(super) const BUFFER_SIZES: RangeInclusive<usize> = 1..=16 << 20;
/// Accepted `--busy-poll`: beyond 100 ms a wait that polls is no longer
/// catching a peer that answers at once, only burning the CPU.
pub(super) const BUSY_POLL_USECS: RangeInclusive<u64> = 0..=100_000;
/// Accepted `--max-connections`: connection tokens hold the slab key in 32
/// bits, and a million is far beyond any descriptor limit in practice.
pub(super) const MAX_CONNECTIONS: RangeInclusive<usize> = 1..=1_000_000;
/// Accepted `--max-line`: a line is held in the connection's buffer, which
/// is at most 16 MiB.
pub(super) const MAX_LINE: RangeInclusive<usize> = 1..=16 << 20;
/// Accepted `--workers`: threads for prime checks.
pub(super) const WORKERS: RangeInclusive<usize> = 1..=1024;
/// Accepted `--udp-rate`, datagrams per second per source: 0 would echo
/// nothing, and beyond ten million one source's limit is no limit.
pub(super) const UDP_RATES: RangeInclusive<u64> = 1..=10_000_000;
/// Accepted `--udp-bytes`, bytes per second per source (up to 16 GiB/s).
pub(super) const UDP_BYTES: RangeInclusive<u64> = 1..=16 << 30;

/// `--workers`: a count, or one less than the usable CPUs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Workers {
    /// The CPUs the process may use, minus one, at least one.
    Auto,
    /// This many.
    Count(usize),
}

impl Workers {
    /// How many threads, given the CPUs the process may use.
    pub fn resolve(self, cpus: usize) -> usize {
        match self {
            Workers::Auto => cpus.saturating_sub(1).max(1),
            Workers::Count(n) => n,
        }
    }
}

pub(super) fn mode(text: &str) -> Result<Mode, String> {
    Mode::from_name(text.trim()).ok_or_else(|| {
        let names: Vec<&str> = Mode::ALL.iter().map(|m| m.name()).collect();
        format!("expected one of {}", names.join(", "))
    })
}

pub(super) fn max_line(text: &str) -> Result<usize, String> {
    whole_number_in(text, &MAX_LINE, "of bytes such as 20", " bytes")
}

pub(super) fn workers(text: &str) -> Result<Workers, String> {
    if text.trim() == "auto" {
        return Ok(Workers::Auto);
    }
    whole_number_in(text, &WORKERS, "such as 3, or auto", "").map(Workers::Count)
}

pub(super) fn prime_test(text: &str) -> Result<PrimeTest, String> {
    [PrimeTest::TrialDivision, PrimeTest::MillerRabin]
        .into_iter()
        .find(|t| t.name() == text.trim())
        .ok_or_else(|| "expected trial-division or miller-rabin".to_string())
}

/// A DNS name for `--metrics-allow-host`: letters, digits, `-` and `_` in
/// dot-separated labels, no port; kept lower-case without a final dot.
pub(super) fn allow_host_name(text: &str) -> Result<String, String> {
    let name = text.trim().trim_end_matches('.').to_ascii_lowercase();
    if name.contains(':') {
        return Err("expected a host name without a port, such as metrics.example.org".into());
    }
    let label_ok = |l: &str| {
        (1..=63).contains(&l.len())
            && l.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    };
    if name.len() > 253 || !name.split('.').all(label_ok) {
        return Err("expected a host name such as metrics.example.org".into());
    }
    Ok(name)
}

/// `IP:PORT`, `[IPv6]:PORT`, a bare `IP` (port 9187) or a bare `PORT`
/// (on 127.0.0.1); the IP is checked as `--bind`'s is.
pub(super) fn metrics_addr(text: &str) -> Result<SocketAddr, String> {
    let text = text.trim();
    // `:PORT`, the exporters' convention, keeps the loopback default host.
    if let Some(port) = text.strip_prefix(':').filter(|rest| !rest.contains(':')) {
        return port
            .parse::<u16>()
            .map(|port| SocketAddr::new(DEFAULT_METRICS.ip(), port))
            .map_err(|_| {
                "expected IP:PORT (such as 127.0.0.1:9187), :PORT, an IP address or a port".into()
            });
    }
    if let Ok(port) = text.parse::<u16>() {
        return Ok(SocketAddr::new(DEFAULT_METRICS.ip(), port));
    }
    // localhost is loopback, whatever a resolver would say.
    if let Some(port) = text.strip_prefix("localhost") {
        let port = match port.strip_prefix(':') {
            Some(port) => port.parse::<u16>().map_err(|_| {
                "expected IP:PORT (such as 127.0.0.1:9187), an IP address or a port".to_string()
            })?,
            None if port.is_empty() => DEFAULT_METRICS.port(),
            None => {
                return Err(
                    "expected IP:PORT (such as 127.0.0.1:9187), an IP address or a port".into(),
                )
            }
        };
        return Ok(SocketAddr::new(DEFAULT_METRICS.ip(), port));
    }
    let (host, port) = if let Some(rest) = text.strip_prefix('[') {
        match rest.split_once("]:") {
            Some((host, port)) => (host, Some(port)),
            None => (rest.strip_suffix(']').unwrap_or(rest), None),
        }
    } else if text.matches(':').count() == 1 {
        let (host, port) = text.split_once(':').unwrap_or((text, ""));
        (host, Some(port))
    } else {
        (text, None)
    };
    let syntax =
        || "expected IP:PORT (such as 127.0.0.1:9187), an IP address or a port".to_string();
    let port = match port {
        Some(port) => port.parse::<u16>().map_err(|_| syntax())?,
        None => DEFAULT_METRICS.port(),
    };
    let ip = host.split('%').next().unwrap_or(host);
    if ip.parse::<std::net::IpAddr>().is_err() {
        return Err(syntax());
    }
    parse_listen_ip(host).map(|ip| ip.with_port(port))
}

/// `--port`'s ports: one port (0 included), or a list of ports and ranges.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ports(pub Vec<u16>);

pub(super) fn ports(text: &str) -> Result<Ports, String> {
    if text.trim() == "0" {
        return Ok(Ports(vec![0]));
    }
    parse_port_list(text, MAX_LISTEN_PORTS).map(Ports)
}

/// `--listen ADDR:PORTS[/MODE]`, its address checked as `--bind`'s and its
/// mode one the server has.
pub(super) fn listen_group(text: &str) -> Result<ListenGroup, String> {
    let spec = parse_listen(text, MAX_LISTEN_PORTS)?;
    check_listenable(spec.ip)?;
    let mode = match &spec.mode {
        Some(name) => Some(mode(name)?),
        None => None,
    };
    Ok(ListenGroup {
        ip: spec.ip,
        ports: spec.ports,
        mode,
    })
}

/// An `--allow` network, checked here and kept as written.
pub(super) fn allow_cidr(text: &str) -> Result<String, String> {
    parse_cidr(text).map(|_| text.trim().to_string())
}

pub(super) fn proxy_timeout(text: &str) -> Result<Duration, String> {
    let secs = parse_seconds(text)?;
    if secs.is_zero() {
        return Err("must be more than 0 seconds".into());
    }
    Ok(secs)
}

pub(super) fn buffer_size(text: &str) -> Result<usize, String> {
    let size = parse_size(text)?;
    if BUFFER_SIZES.contains(&size) {
        Ok(size)
    } else {
        Err(format!(
            "must be between {} byte and {} MiB",
            BUFFER_SIZES.start(),
            BUFFER_SIZES.end() >> 20
        ))
    }
}

pub(super) fn busy_poll(text: &str) -> Result<BusyPollSetting, String> {
    if text == "auto" {
        return Ok(BusyPollSetting::Auto);
    }
    whole_number_in(
        text,
        &BUSY_POLL_USECS,
        "of microseconds such as 100, or auto",
        " microseconds",
    )
    .map(|usecs| BusyPollSetting::Window(Duration::from_micros(usecs)))
}

/// `--udp-rate`: `N/s` or `N`, datagrams per second.
pub(super) fn udp_rate(text: &str) -> Result<u64, String> {
    let number = per_second(text);
    whole_number_in(
        number,
        &UDP_RATES,
        "of datagrams per second such as 100/s",
        "/s",
    )
}

/// `--udp-bytes`: a size (`parse_size`'s suffixes) per second, as `1MB/s`.
pub(super) fn udp_bytes(text: &str) -> Result<u64, String> {
    let bytes = parse_size(per_second(text))? as u64;
    if UDP_BYTES.contains(&bytes) {
        Ok(bytes)
    } else {
        Err(format!(
            "must be between {} and {} bytes per second (such as 64K/s or 1MB/s)",
            UDP_BYTES.start(),
            UDP_BYTES.end()
        ))
    }
}

/// The number of a per-second rate: `100/s` and `100` are the same.
pub(super) fn per_second(text: &str) -> &str {
    let text = text.trim();
    text.strip_suffix("/s").unwrap_or(text)
}

pub(super) fn max_connections(text: &str) -> Result<usize, String> {
    whole_number_in(text, &MAX_CONNECTIONS, "such as 10000", "")
}

/// A whole number within `range`; `example` and `unit` word the errors.
pub(super) fn whole_number_in<T>(
    text: &str,
    range: &RangeInclusive<T>,
    example: &str,
    unit: &str,
) -> Result<T, String>
where
    T: std::str::FromStr + PartialOrd + std::fmt::Display,
{
    let n: T = text
        .trim()
        .parse()
        .map_err(|_| format!("expected a whole number {example}"))?;
    if range.contains(&n) {
        Ok(n)
    } else {
        Err(format!(
            "must be between {} and {}{unit}",
            range.start(),
            range.end()
        ))
    }
}

/// Zero means "off" for the optional intervals.
pub(super) fn nonzero(duration: Duration) -> Option<Duration> {
    (!duration.is_zero()).then_some(duration)
}
