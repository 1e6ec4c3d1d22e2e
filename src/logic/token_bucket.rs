//! Per-source rate limits for UDP echo: a token bucket for datagrams per
//! second and one for bytes per second, per source address, so the server
//! cannot be used to reflect a flood at an address someone spoofs.
//!
//! The table of sources is bounded: when it is full, a new source evicts
//! the one that entered first. A spoofed flood from many addresses
//! therefore costs a fixed amount of memory; what it can win is a fresh
//! (full) bucket for a source that comes back after being evicted, which is
//! at most one burst per source per turn through the table.

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::time::Instant;

use super::cidr::canonical;

/// The largest UDP payload over IPv4 (65,535 − 8 − 20 bytes).
pub const MAX_DATAGRAM: usize = 65_507;

/// The rates each source may use.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Limits {
    /// Datagrams per second; also the burst a quiet source may send at once.
    pub datagrams_per_sec: f64,
    /// Bytes per second; also the burst, but never less than one
    /// largest datagram, so any datagram can pass when the bucket is full.
    pub bytes_per_sec: f64,
}

impl Limits {
    fn datagram_burst(&self) -> f64 {
        self.datagrams_per_sec.max(1.0)
    }

    fn byte_burst(&self) -> f64 {
        self.bytes_per_sec.max(MAX_DATAGRAM as f64)
    }
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    datagrams: f64,
    bytes: f64,
    refilled: Instant,
}

/// The buckets of at most `max_sources` sources.
#[derive(Debug)]
pub struct SourceLimiter {
    limits: Limits,
    max_sources: usize,
    buckets: HashMap<IpAddr, Bucket>,
    /// Sources in the order they entered the table: the front goes first.
    order: VecDeque<IpAddr>,
    evicted: u64,
}

impl SourceLimiter {
    /// An empty table holding up to `max_sources` (at least 1) sources.
    pub fn new(limits: Limits, max_sources: usize) -> Self {
        let max_sources = max_sources.max(1);
        Self {
            limits,
            max_sources,
            buckets: HashMap::with_capacity(max_sources.min(4096)),
            order: VecDeque::with_capacity(max_sources.min(4096)),
            evicted: 0,
        }
    }

    /// Whether a datagram of `len` bytes from `source` may be echoed now;
    /// if so, its tokens are taken. An IPv4-mapped address counts as the
    /// IPv4 source it is.
    pub fn admit(&mut self, source: IpAddr, len: usize, now: Instant) -> bool {
        let source = canonical(source);
        let limits = self.limits;
        if !self.buckets.contains_key(&source) {
            if self.buckets.len() >= self.max_sources {
                if let Some(oldest) = self.order.pop_front() {
                    self.buckets.remove(&oldest);
                    self.evicted += 1;
                }
            }
            self.order.push_back(source);
            self.buckets.insert(
                source,
                Bucket {
                    datagrams: limits.datagram_burst(),
                    bytes: limits.byte_burst(),
                    refilled: now,
                },
            );
        }
        let Some(bucket) = self.buckets.get_mut(&source) else {
            return false;
        };
        // An Instant earlier than the last refill (the caller's clock read
        // before another's) adds nothing rather than panicking.
        let elapsed = now.saturating_duration_since(bucket.refilled).as_secs_f64();
        if now > bucket.refilled {
            bucket.refilled = now;
        }
        bucket.datagrams =
            (bucket.datagrams + elapsed * limits.datagrams_per_sec).min(limits.datagram_burst());
        bucket.bytes = (bucket.bytes + elapsed * limits.bytes_per_sec).min(limits.byte_burst());
        let len = len as f64;
        if bucket.datagrams >= 1.0 && bucket.bytes >= len {
            bucket.datagrams -= 1.0;
            bucket.bytes -= len;
            true
        } else {
            false
        }
    }

    /// Sources in the table now.
    pub fn sources(&self) -> usize {
        self.buckets.len()
    }

    /// Sources evicted to make room, since the start.
    pub fn evicted(&self) -> u64 {
        self.evicted
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    const LIMITS: Limits = Limits {
        datagrams_per_sec: 100.0,
        bytes_per_sec: 1_000_000.0,
    };

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn a_burst_is_cut_at_the_rate_and_refills_with_time() {
        let mut limiter = SourceLimiter::new(LIMITS, 16);
        let t0 = Instant::now();
        let a = ip("127.0.0.1");
        let passed = (0..1000).filter(|_| limiter.admit(a, 64, t0)).count();
        assert_eq!(passed, 100);
        // 10 ms at 100/s is one more datagram.
        let t1 = t0 + Duration::from_millis(10);
        assert!(limiter.admit(a, 64, t1));
        assert!(!limiter.admit(a, 64, t1));
        // Another source is served while the first is over its limit.
        let b = ip("127.0.0.2");
        assert_eq!((0..50).filter(|_| limiter.admit(b, 64, t1)).count(), 50);
        // A long pause refills only to the burst.
        let later = t1 + Duration::from_secs(3600);
        assert_eq!(
            (0..1000).filter(|_| limiter.admit(a, 64, later)).count(),
            100
        );
    }

    #[test]
    fn bytes_are_limited_too() {
        let mut limiter = SourceLimiter::new(LIMITS, 16);
        let t0 = Instant::now();
        let a = ip("::1");
        // 1 MB of burst: fifteen 65,507-byte datagrams, not sixteen.
        let passed = (0..100)
            .filter(|_| limiter.admit(a, MAX_DATAGRAM, t0))
            .count();
        assert_eq!(passed, 15);
        // The largest datagram always fits a full bucket, even at a low rate.
        let slow = Limits {
            datagrams_per_sec: 10.0,
            bytes_per_sec: 1000.0,
        };
        let mut limiter = SourceLimiter::new(slow, 16);
        assert!(limiter.admit(a, MAX_DATAGRAM, t0));
        assert!(!limiter.admit(a, MAX_DATAGRAM, t0 + Duration::from_secs(1)));
        assert!(limiter.admit(a, MAX_DATAGRAM, t0 + Duration::from_secs(66)));
    }

    #[test]
    fn mapped_sources_share_the_ipv4_bucket() {
        let mut limiter = SourceLimiter::new(LIMITS, 16);
        let t0 = Instant::now();
        for _ in 0..60 {
            assert!(limiter.admit(ip("10.0.0.1"), 1, t0));
        }
        let passed = (0..100)
            .filter(|_| limiter.admit(ip("::ffff:10.0.0.1"), 1, t0))
            .count();
        assert_eq!(passed, 40);
        assert_eq!(limiter.sources(), 1);
    }

    #[test]
    fn a_spoofed_flood_cannot_grow_the_table() {
        let mut limiter = SourceLimiter::new(LIMITS, 1000);
        let t0 = Instant::now();
        for i in 0..200_000u32 {
            limiter.admit(IpAddr::from(i.to_be_bytes()), 64, t0);
            assert!(limiter.sources() <= 1000);
        }
        assert_eq!(limiter.sources(), 1000);
        assert_eq!(limiter.evicted(), 199_000);
        assert!(limiter.buckets.capacity() < 4096);
        assert_eq!(limiter.order.len(), 1000);
        // The oldest went first: the latest 1,000 remain.
        assert!(limiter
            .buckets
            .contains_key(&IpAddr::from(199_999u32.to_be_bytes())));
        assert!(!limiter
            .buckets
            .contains_key(&IpAddr::from(198_999u32.to_be_bytes())));
    }

    #[test]
    fn a_clock_read_out_of_order_does_not_panic_or_refill() {
        let mut limiter = SourceLimiter::new(LIMITS, 4);
        let t1 = Instant::now() + Duration::from_secs(1);
        let a = ip("127.0.0.1");
        assert_eq!((0..200).filter(|_| limiter.admit(a, 1, t1)).count(), 100);
        assert!(!limiter.admit(a, 1, t1 - Duration::from_secs(1)));
    }
}
