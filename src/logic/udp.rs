//! UDP echo's counters and the wording that reports them: datagrams and
//! bytes each way, and datagrams dropped by reason.

use std::fmt;

/// Why a datagram was not echoed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UdpDrop {
    /// Its source was over `--udp-rate` or `--udp-bytes`.
    RateLimit,
    /// Its source is not in `--allow`.
    NotAllowed,
    /// The socket's send buffer was full: dropped rather than held, as
    /// UDP itself would.
    SendBlocked,
    /// The kernel refused the reply (an unreachable source, say).
    SendFailed,
}

impl UdpDrop {
    /// Every reason, in the order of [`UdpCounts::dropped`].
    pub const ALL: [UdpDrop; 4] = [
        UdpDrop::RateLimit,
        UdpDrop::NotAllowed,
        UdpDrop::SendBlocked,
        UdpDrop::SendFailed,
    ];
    /// The `reason` label of each, in the same order.
    pub const LABELS: [&'static str; 4] =
        ["rate_limit", "not_allowed", "send_blocked", "send_failed"];

    /// Its place in [`UdpCounts::dropped`].
    pub fn index(self) -> usize {
        self as usize
    }

    /// How the log and the Summary say it.
    pub fn words(self) -> &'static str {
        match self {
            UdpDrop::RateLimit => "over the per-source rate limit",
            UdpDrop::NotAllowed => "not allowed",
            UdpDrop::SendBlocked => "send buffer full",
            UdpDrop::SendFailed => "send failed",
        }
    }
}

/// UDP echo's totals since the start.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct UdpCounts {
    /// Datagrams received.
    pub datagrams_in: u64,
    /// Datagrams echoed.
    pub datagrams_out: u64,
    /// Bytes received.
    pub bytes_in: u64,
    /// Bytes echoed.
    pub bytes_out: u64,
    /// Datagrams not echoed, by [`UdpDrop::index`].
    pub dropped: [u64; UdpDrop::ALL.len()],
    /// Source addresses whose rate is tracked now (a bounded table).
    pub sources: usize,
    /// Sources forgotten to make room for new ones, since the start.
    pub sources_evicted: u64,
}

impl UdpCounts {
    /// Counts a datagram received.
    pub fn received(&mut self, len: usize) {
        self.datagrams_in += 1;
        self.bytes_in += len as u64;
    }

    /// Counts a datagram echoed.
    pub fn sent(&mut self, len: usize) {
        self.datagrams_out += 1;
        self.bytes_out += len as u64;
    }

    /// Counts a datagram dropped.
    pub fn drop(&mut self, why: UdpDrop) {
        self.dropped[why.index()] += 1;
    }

    /// Datagrams dropped, for every reason.
    pub fn dropped_total(&self) -> u64 {
        self.dropped.iter().sum()
    }

    /// The Summary's and the STATS line's UDP part.
    pub fn report(&self) -> UdpLine<'_> {
        UdpLine(self)
    }
}

/// Drops not yet logged, by reason, for the rate-limited log line.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct HeldDrops(pub [u64; UdpDrop::ALL.len()]);

impl HeldDrops {
    /// True when nothing waits to be logged.
    pub fn is_empty(&self) -> bool {
        self.0.iter().all(|&n| n == 0)
    }

    /// The breakdown, as `3 over the per-source rate limit, 1 not allowed`
    /// (reasons with none left out).
    pub fn describe(&self) -> String {
        describe(&self.0)
    }
}

fn describe(by_reason: &[u64; UdpDrop::ALL.len()]) -> String {
    UdpDrop::ALL
        .iter()
        .zip(by_reason)
        .filter(|(_, &n)| n > 0)
        .map(|(why, n)| format!("{n} {}", why.words()))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Displays as `UDP: 5 datagrams in, 4 out, 320 bytes in, 256 out, 1
/// dropped (1 over the per-source rate limit)`.
pub struct UdpLine<'a>(&'a UdpCounts);

impl fmt::Display for UdpLine<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let c = self.0;
        write!(
            f,
            "UDP: {} datagrams in, {} out, {} bytes in, {} out, {} dropped",
            c.datagrams_in,
            c.datagrams_out,
            c.bytes_in,
            c.bytes_out,
            c.dropped_total()
        )?;
        if c.dropped_total() > 0 {
            write!(f, " ({})", describe(&c.dropped))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Each reason counts apart, under its own label, and the line names
    // only the reasons that happened.
    #[test]
    fn drops_count_by_reason() {
        let mut c = UdpCounts::default();
        c.received(64);
        c.received(0);
        c.sent(0);
        for (n, why) in UdpDrop::ALL.iter().enumerate() {
            assert_eq!(UdpDrop::LABELS[why.index()], UdpDrop::LABELS[n]);
            for _ in 0..=n {
                c.drop(*why);
            }
        }
        assert_eq!(c.dropped, [1, 2, 3, 4]);
        assert_eq!(c.dropped_total(), 10);
        assert_eq!(
            c.report().to_string(),
            "UDP: 2 datagrams in, 1 out, 64 bytes in, 0 out, 10 dropped (1 over the \
             per-source rate limit, 2 not allowed, 3 send buffer full, 4 send failed)"
        );
        let quiet = UdpCounts::default();
        assert_eq!(
            quiet.report().to_string(),
            "UDP: 0 datagrams in, 0 out, 0 bytes in, 0 out, 0 dropped"
        );
        let held = HeldDrops([5, 0, 0, 1]);
        assert!(!held.is_empty() && HeldDrops::default().is_empty());
        assert_eq!(
            held.describe(),
            "5 over the per-source rate limit, 1 send failed"
        );
    }
}
