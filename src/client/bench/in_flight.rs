//! How many bytes a bulk connection may have written and not yet seen
//! echoed.
//!
//! One thread both sends and reads. Left unbounded, it writes whenever the
//! socket takes bytes, and on a fast path (loopback) the echoes then pile
//! up in its own receive queue faster than it reads them: the kernel grows
//! that queue to its ceiling (32 MiB by default), and once it overruns, it
//! collapses the queue, clamps the window to two segments and leaves the
//! connection crawling for the rest of the run. The run then measures the
//! kernel's memory pressure, not the server, and swings threefold from one
//! run to the next (BENCHMARKS.md, "bulk").
//!
//! A bound that is too small is as wrong the other way: a path carries
//! bandwidth × round-trip bytes at once, and a client that holds back
//! below that measures its own limit. So by default the bound follows the
//! socket's send buffer, which the kernel sizes from the path's congestion
//! window (and so from bandwidth × RTT, up to `net.ipv4.tcp_wmem`'s
//! maximum, the same limit a single iperf3 stream has), with a floor, and
//! with a ceiling of a quarter of `net.ipv4.tcp_rmem`'s maximum: every byte
//! in flight may end up waiting in this client's receive queue, so on a
//! host tuned with a large send buffer the bound still keeps that queue
//! well inside what the kernel lets it grow to.

use std::time::{Duration, Instant};

/// The floor of the automatic limit. A new connection's send buffer is
/// small until its congestion window grows, and a path needs several
/// writes in flight to grow it; 1 MiB is far below the tens of MiB at
/// which the receive queue collapses.
pub const AUTO_FLOOR: u64 = 1 << 20;

/// Where the kernel's TCP receive buffer limits are.
const TCP_RMEM: &str = "/proc/sys/net/ipv4/tcp_rmem";

/// The ceiling of the automatic limit on this host: a quarter of the most
/// a TCP receive queue may grow to (`tcp_rmem`'s third field), or none if
/// that cannot be read.
pub fn auto_ceiling() -> u64 {
    std::fs::read_to_string(TCP_RMEM)
        .ok()
        .and_then(|text| parse_ceiling(&text))
        .unwrap_or(u64::MAX)
}

fn parse_ceiling(tcp_rmem: &str) -> Option<u64> {
    let max: u64 = tcp_rmem.split_whitespace().nth(2)?.parse().ok()?;
    Some(max / 4)
}

/// How often, at most, the automatic limit asks the kernel for the send
/// buffer's size again (only while the limit holds a write back).
pub const AUTO_REFRESH: Duration = Duration::from_millis(10);

/// The user's choice of bound.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InFlight {
    /// Follow the socket's send buffer, at least [`AUTO_FLOOR`] and at
    /// most [`auto_ceiling`] (when that is above the floor).
    Auto,
    /// At most this many bytes.
    Bytes(u64),
    /// No bound: a writer thread and a reader thread per connection, as
    /// `nc` or socat load a server (the `stream` engine, not this one).
    Unbounded,
}

/// One connection's bound, as it stands.
#[derive(Debug, Clone)]
pub struct InFlightLimit {
    choice: InFlight,
    ceiling: u64,
    limit: u64,
    largest: u64,
    refreshed: Option<Instant>,
}

impl InFlightLimit {
    /// A connection's limit under `choice`; `ceiling` caps the automatic
    /// limit (see [`auto_ceiling`]), never below [`AUTO_FLOOR`].
    pub fn new(choice: InFlight, ceiling: u64) -> Self {
        let limit = match choice {
            InFlight::Auto => AUTO_FLOOR,
            InFlight::Bytes(n) => n,
            InFlight::Unbounded => u64::MAX,
        };
        Self {
            choice,
            ceiling: ceiling.max(AUTO_FLOOR),
            limit,
            largest: limit,
            refreshed: None,
        }
    }

    /// The bound now.
    #[cfg(test)]
    pub fn limit(&self) -> u64 {
        self.limit
    }

    /// The largest bound this connection has had.
    pub fn largest(&self) -> u64 {
        self.largest
    }

    /// Whether a write of `size` more bytes may be issued while `unechoed`
    /// are out. A write is always allowed when nothing is out, so a limit
    /// below the write size still makes progress, one write at a time.
    /// `send_buffer` reads the socket's send buffer size; it is called only
    /// under [`InFlight::Auto`], when the current limit would hold the write
    /// back, and at most once per [`AUTO_REFRESH`].
    pub fn allows(
        &mut self,
        unechoed: u64,
        size: u64,
        now: Instant,
        send_buffer: impl FnOnce() -> Option<u64>,
    ) -> bool {
        let fits = |limit: u64| unechoed == 0 || unechoed.saturating_add(size) <= limit;
        if fits(self.limit) {
            return true;
        }
        if self.choice != InFlight::Auto
            || self
                .refreshed
                .is_some_and(|at| now.saturating_duration_since(at) < AUTO_REFRESH)
        {
            return false;
        }
        self.refreshed = Some(now);
        if let Some(bytes) = send_buffer() {
            self.limit = bytes.clamp(AUTO_FLOOR, self.ceiling);
            self.largest = self.largest.max(self.limit);
        }
        fits(self.limit)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const K64: u64 = 64 * 1024;

    #[test]
    fn fixed_limit_holds_writes_back_until_echoes_return() {
        let mut limit = InFlightLimit::new(InFlight::Bytes(4 * K64), u64::MAX);
        let now = Instant::now();
        let never = || -> Option<u64> { panic!("a fixed limit never asks the kernel") };
        assert!(limit.allows(0, K64, now, never));
        assert!(limit.allows(3 * K64, K64, now, never));
        assert!(!limit.allows(3 * K64 + 1, K64, now, never));
        assert!(!limit.allows(4 * K64, K64, now, never));
        assert_eq!(limit.largest(), 4 * K64);
    }

    #[test]
    fn a_limit_below_the_write_size_still_sends_one_at_a_time() {
        let mut limit = InFlightLimit::new(InFlight::Bytes(1000), u64::MAX);
        let now = Instant::now();
        assert!(limit.allows(0, K64, now, || None));
        assert!(!limit.allows(1, K64, now, || None));
    }

    #[test]
    fn auto_follows_the_send_buffer_with_a_floor() {
        let mut limit = InFlightLimit::new(InFlight::Auto, u64::MAX);
        let t0 = Instant::now();
        // Within the floor, the kernel is not asked.
        assert!(limit.allows(AUTO_FLOOR - K64, K64, t0, || panic!("asked")));
        // A small send buffer does not lower the floor.
        assert!(!limit.allows(AUTO_FLOOR, K64, t0, || Some(K64)));
        assert_eq!(limit.limit(), AUTO_FLOOR);
        // A grown one raises the limit, once the refresh interval has passed.
        let later = t0 + AUTO_REFRESH / 2;
        assert!(!limit.allows(AUTO_FLOOR, K64, later, || Some(8 << 20)));
        let after = t0 + AUTO_REFRESH;
        assert!(limit.allows(AUTO_FLOOR, K64, after, || Some(8 << 20)));
        assert_eq!(limit.limit(), 8 << 20);
        // It follows the buffer down again, and remembers the largest.
        let much_later = after + AUTO_REFRESH;
        assert!(!limit.allows(8 << 20, K64, much_later, || Some(2 << 20)));
        assert_eq!((limit.limit(), limit.largest()), (2 << 20, 8 << 20));
    }

    #[test]
    fn auto_stays_under_the_receive_ceiling() {
        let mut limit = InFlightLimit::new(InFlight::Auto, 8 << 20);
        let now = Instant::now();
        assert!(!limit.allows(8 << 20, K64, now, || Some(64 << 20)));
        assert_eq!(limit.limit(), 8 << 20);
        // A ceiling below the floor leaves the floor.
        let mut limit = InFlightLimit::new(InFlight::Auto, K64);
        assert!(!limit.allows(AUTO_FLOOR, K64, now, || Some(4 << 20)));
        assert_eq!(limit.limit(), AUTO_FLOOR);
    }

    #[test]
    fn the_ceiling_is_a_quarter_of_tcp_rmem_max() {
        assert_eq!(parse_ceiling("4096\t131072\t33554432\n"), Some(8 << 20));
        assert_eq!(parse_ceiling("4096 131072"), None);
        assert_eq!(parse_ceiling("a b c"), None);
    }

    #[test]
    fn auto_keeps_its_limit_when_the_kernel_cannot_say() {
        let mut limit = InFlightLimit::new(InFlight::Auto, u64::MAX);
        let now = Instant::now();
        assert!(!limit.allows(AUTO_FLOOR, 1, now, || None));
        assert_eq!(limit.limit(), AUTO_FLOOR);
    }
}
