//! Who may connect: `--allow`, `--max-per-source`, and the reasons a
//! connection is turned away, each counted for `/metrics`.

use std::collections::HashMap;
use std::fmt;
use std::net::IpAddr;
use std::time::Duration;

use crate::config::Config;

/// Why a connection was closed at once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// Over `--max-connections`.
    ConnectionLimit(usize),
    /// Its source is in no `--allow` network.
    NotAllowed,
    /// Its source already has `--max-per-source` connections open.
    PerSource(usize),
    /// `--proxy-protocol`: the header was not valid (or the client left).
    ProxyHeader(&'static str),
    /// `--proxy-protocol`: no complete header within the timeout.
    ProxyTimeout(Duration),
}

impl Refusal {
    /// The `reason` label values of `/metrics`, by [`index`](Self::index).
    pub const LABELS: [&'static str; 5] = [
        "limit",
        "not_allowed",
        "per_source_limit",
        "proxy_header",
        "proxy_timeout",
    ];

    /// Its place in [`LABELS`](Self::LABELS).
    pub fn index(&self) -> usize {
        match self {
            Refusal::ConnectionLimit(_) => 0,
            Refusal::NotAllowed => 1,
            Refusal::PerSource(_) => 2,
            Refusal::ProxyHeader(_) => 3,
            Refusal::ProxyTimeout(_) => 4,
        }
    }
}

/// As the REJECT line says it, after the peer.
impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Refusal::ConnectionLimit(max) => write!(f, "over the connection limit of {max}"),
            Refusal::NotAllowed => write!(f, "not allowed by --allow"),
            Refusal::PerSource(max) => write!(f, "over --max-per-source {max}"),
            Refusal::ProxyHeader(why) => write!(f, "PROXY header: {why}"),
            Refusal::ProxyTimeout(after) => {
                write!(f, "no PROXY header within {:.1}s", after.as_secs_f64())
            }
        }
    }
}

/// The admission checks' state: connections open per source (only with
/// `--max-per-source`) and refusals by reason.
#[derive(Debug, Default)]
pub struct Admission {
    /// Open connections per client address; an address leaves the map
    /// when its last connection closes, so it holds at most one entry per
    /// open connection.
    per_source: HashMap<IpAddr, usize>,
    /// Refusals since start, by [`Refusal::index`].
    pub refused: [u64; Refusal::LABELS.len()],
    /// Refusals not yet logged, by [`Refusal::index`].
    pub unreported: [u64; Refusal::LABELS.len()],
}

impl Admission {
    /// Why a client at `source` may not be served, if it may not: the
    /// connection limit is the caller's.
    pub fn check(&self, source: IpAddr, config: &Config) -> Option<Refusal> {
        if let Some(allow) = &config.allow {
            if !allow.allows(source) {
                return Some(Refusal::NotAllowed);
            }
        }
        let max = config.max_per_source?;
        let open = self.per_source.get(&source).copied().unwrap_or(0);
        (open >= max).then_some(Refusal::PerSource(max))
    }

    /// Counts a connection from `source` taken into service.
    pub fn opened(&mut self, source: IpAddr, config: &Config) {
        if config.max_per_source.is_some() {
            *self.per_source.entry(source).or_insert(0) += 1;
        }
    }

    /// Counts a connection from `source` that ended.
    pub fn closed(&mut self, source: IpAddr) {
        if let Some(open) = self.per_source.get_mut(&source) {
            *open -= 1;
            if *open == 0 {
                self.per_source.remove(&source);
            }
        }
    }

    /// Refusals since start, with their `/metrics` labels.
    pub fn refused_by_label(&self) -> Vec<(&'static str, u64)> {
        Refusal::LABELS.iter().copied().zip(self.refused).collect()
    }

    /// Counts a refusal; `held` says whether its log line is held back.
    pub fn refused(&mut self, refusal: &Refusal, held: bool) {
        self.refused[refusal.index()] += 1;
        if held {
            self.unreported[refusal.index()] += 1;
        }
    }

    /// The refusals held back since the last REJECT line, taken, worded by
    /// reason (`2 not allowed by --allow, 1 over --max-per-source 3`).
    pub fn take_unreported(&mut self, config: &Config) -> Option<String> {
        let counts = std::mem::take(&mut self.unreported);
        let parts: Vec<String> = counts
            .iter()
            .enumerate()
            .filter(|(_, &n)| n > 0)
            .map(|(i, n)| match i {
                3 => format!("{n} without a valid PROXY header"),
                _ => format!("{n} {}", Self::reason_of(i, config)),
            })
            .collect();
        (!parts.is_empty()).then(|| parts.join(", "))
    }

    /// Whether every refusal held back is over the connection limit.
    pub fn only_limit_unreported(&self) -> bool {
        self.unreported[1..].iter().all(|&n| n == 0)
    }

    fn reason_of(index: usize, config: &Config) -> Refusal {
        match index {
            0 => Refusal::ConnectionLimit(config.max_connections),
            1 => Refusal::NotAllowed,
            2 => Refusal::PerSource(config.max_per_source.unwrap_or(0)),
            3 => Refusal::ProxyHeader("not valid"),
            _ => Refusal::ProxyTimeout(config.proxy_protocol.unwrap_or_default()),
        }
    }
}

impl super::Server {
    /// The REJECT line of a refusal other than the connection limit's,
    /// with the count of those held back since the last line.
    pub(super) fn log_refusal(
        &self,
        peer: std::net::SocketAddr,
        refusal: &Refusal,
        unreported: u64,
    ) {
        let reason = refusal.to_string();
        if unreported > 0 {
            log::warn!(
                target: "REJECT",
                peer:% = peer,
                reason:% = reason;
                "{peer} ({reason}) ({unreported} more rejected since the last report)"
            );
        } else {
            log::warn!(target: "REJECT", peer:% = peer, reason:% = reason; "{peer} ({reason})");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(args: &[&str]) -> Config {
        Config::from_args(args)
    }

    // The per-source count rises and falls with the connections, refuses
    // the one over the bound, and forgets an address with none open.
    #[test]
    fn per_source_counts_follow_opens_and_closes() {
        let config = config(&["--max-per-source", "2"]);
        let mut admission = Admission::default();
        let a: IpAddr = "127.0.0.1".parse().unwrap();
        let b: IpAddr = "127.0.0.2".parse().unwrap();
        admission.opened(a, &config);
        assert_eq!(admission.check(a, &config), None);
        admission.opened(a, &config);
        assert_eq!(admission.check(a, &config), Some(Refusal::PerSource(2)));
        assert_eq!(admission.check(b, &config), None);
        admission.closed(a);
        assert_eq!(admission.check(a, &config), None);
        admission.closed(a);
        assert!(admission.per_source.is_empty());
    }

    // --allow admits its networks only; without it everyone is admitted
    // and nothing is kept per source.
    #[test]
    fn allow_list_decides_first() {
        let config = config(&["--allow", "127.0.0.1/32,::1"]);
        let admission = Admission::default();
        assert_eq!(admission.check("127.0.0.1".parse().unwrap(), &config), None);
        assert_eq!(admission.check("::1".parse().unwrap(), &config), None);
        assert_eq!(
            admission.check("127.0.0.2".parse().unwrap(), &config),
            Some(Refusal::NotAllowed)
        );
        let open = self::config(&[]);
        let mut admission = Admission::default();
        admission.opened("10.0.0.1".parse().unwrap(), &open);
        assert!(admission.per_source.is_empty());
        assert_eq!(admission.check("10.0.0.1".parse().unwrap(), &open), None);
    }

    // Held-back refusals are worded by reason, then forgotten.
    #[test]
    fn unreported_refusals_are_worded_by_reason() {
        let config = config(&["--max-per-source", "3", "--max-connections", "9"]);
        let mut admission = Admission::default();
        admission.refused(&Refusal::NotAllowed, true);
        admission.refused(&Refusal::NotAllowed, true);
        admission.refused(&Refusal::PerSource(3), true);
        admission.refused(&Refusal::ConnectionLimit(9), false);
        assert!(!admission.only_limit_unreported());
        assert_eq!(
            admission.take_unreported(&config).as_deref(),
            Some("2 not allowed by --allow, 1 over --max-per-source 3")
        );
        assert_eq!(admission.take_unreported(&config), None);
        assert_eq!(admission.refused, [1, 2, 1, 0, 0]);
    }
}
