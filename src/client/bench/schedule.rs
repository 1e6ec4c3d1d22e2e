//! The open-loop send schedule for `--rate`: message `k` of the whole run is
//! due at `start + k / rate` on connection `k mod N`.
//!
//! Latency is measured from these intended times, not from when the write
//! happened, so a server that stalls cannot hide the stall by slowing the
//! sender down (no coordinated omission).
//!
//! The schedule is arithmetic, not a queue: what fell due is a range of
//! message numbers, and a connection's backlog is a count. A rate above
//! what the server (or the client) can carry therefore costs neither
//! memory nor a step per message that fell due, only per message sent.

use std::ops::Range;
use std::time::{Duration, Instant};

/// Which messages are due, for the whole run and per connection.
#[derive(Debug)]
pub struct RateSchedule {
    start: Instant,
    rate: f64,
    connections: u64,
    /// Messages `0..due` have fallen due.
    due: u64,
}

impl RateSchedule {
    /// A schedule of `rate` messages per second in all, spread evenly over
    /// `connections` (at least one), starting at `start`.
    pub fn new(start: Instant, rate: f64, connections: usize) -> Self {
        Self {
            start,
            rate,
            connections: connections.max(1) as u64,
            due: 0,
        }
    }

    /// When message `k` of the run is due.
    pub fn due_at(&self, k: u64) -> Instant {
        self.start + Duration::from_secs_f64(k as f64 / self.rate)
    }

    /// When the next message falls due.
    pub fn next_due(&self) -> Instant {
        self.due_at(self.due)
    }

    /// Takes in what fell due by `now`: the run's message numbers since the
    /// last call (empty if none).
    pub fn advance(&mut self, now: Instant) -> Range<u64> {
        let before = self.due;
        if now < self.due_at(before) {
            return before..before;
        }
        let elapsed = now.saturating_duration_since(self.start).as_secs_f64();
        // Message k is due once k / rate has elapsed. The float estimate can
        // be a message off either way from `at`, which decides.
        let mut due = ((elapsed * self.rate).floor() as u64).saturating_add(1);
        due = due.max(before + 1);
        while due > before + 1 && self.due_at(due - 1) > now {
            due -= 1;
        }
        while self.due_at(due) <= now {
            due += 1;
        }
        self.due = due;
        before..due
    }

    /// The connections a range of message numbers falls on, each once.
    pub fn connections_of(&self, messages: Range<u64>) -> impl Iterator<Item = usize> {
        let n = self.connections;
        let count = (messages.end.saturating_sub(messages.start)).min(n);
        let first = messages.start % n;
        (0..count).map(move |i| ((first + i) % n) as usize)
    }

    /// How many of connection `conn`'s messages have fallen due (its `j`-th
    /// is message `j * N + conn` of the run).
    pub fn due_on(&self, conn: usize) -> u64 {
        let conn = conn as u64;
        if self.due <= conn {
            0
        } else {
            (self.due - conn - 1) / self.connections + 1
        }
    }

    /// When connection `conn`'s `j`-th message is due.
    pub fn intended(&self, conn: usize, j: u64) -> Instant {
        self.due_at(j * self.connections + conn as u64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn micros(start: Instant, at: Instant) -> u128 {
        (at - start).as_micros()
    }

    #[test]
    fn messages_are_spread_evenly_in_global_order() {
        let start = Instant::now();
        let mut s = RateSchedule::new(start, 1000.0, 3);
        let fell = s.advance(start + Duration::from_micros(5_500));
        // Six messages, one per millisecond, round-robin over connections.
        assert_eq!(fell, 0..6);
        assert_eq!((0..3).map(|c| s.due_on(c)).collect::<Vec<_>>(), [2, 2, 2]);
        let times: Vec<(usize, u64, u128)> = (0..2)
            .flat_map(|j| (0..3).map(move |c| (c, j)))
            .map(|(c, j)| (c, j, micros(start, s.intended(c, j))))
            .collect();
        assert_eq!(
            times,
            [
                (0, 0, 0),
                (1, 0, 1000),
                (2, 0, 2000),
                (0, 1, 3000),
                (1, 1, 4000),
                (2, 1, 5000)
            ]
        );
        assert_eq!(s.next_due(), start + Duration::from_millis(6));
        // Nothing more until then.
        assert_eq!(s.advance(start + Duration::from_micros(5_999)), 6..6);
        assert_eq!(s.advance(start + Duration::from_millis(6)), 6..7);
        assert_eq!(s.due_on(0), 3);
        assert_eq!(s.due_on(1), 2);
    }

    #[test]
    fn a_late_caller_still_gets_the_intended_times() {
        let start = Instant::now();
        let mut s = RateSchedule::new(start, 10.0, 1);
        // Polled 1 s late: eleven messages are due, each with its own time.
        assert_eq!(s.advance(start + Duration::from_secs(1)), 0..11);
        let times: Vec<u128> = (0..s.due_on(0))
            .map(|j| (s.intended(0, j) - start).as_millis())
            .collect();
        assert_eq!(
            times,
            [0, 100, 200, 300, 400, 500, 600, 700, 800, 900, 1000]
        );
    }

    #[test]
    fn the_connections_touched_are_each_named_once() {
        let s = RateSchedule::new(Instant::now(), 1000.0, 4);
        let touched = |r: Range<u64>| s.connections_of(r).collect::<Vec<_>>();
        assert_eq!(touched(5..5), Vec::<usize>::new());
        assert_eq!(touched(5..7), [1, 2]);
        assert_eq!(touched(7..10), [3, 0, 1]);
        assert_eq!(touched(3..1_000_000), [3, 0, 1, 2]);
    }

    #[test]
    fn a_rate_far_beyond_reach_costs_nothing_per_message_due() {
        let start = Instant::now();
        // The most the command line accepts, a billion a second.
        let mut s = RateSchedule::new(start, 1e9, 10);
        // An hour of it: one step, and counts.
        let fell = s.advance(start + Duration::from_secs(3600));
        assert_eq!(fell.end - fell.start, 3_600_000_000_001);
        assert_eq!(s.due_on(0), 360_000_000_001);
        assert_eq!(s.due_on(9), 360_000_000_000);
        assert!(s.due_at(fell.end - 1) <= start + Duration::from_secs(3600));
        assert!(s.next_due() > start + Duration::from_secs(3600));
    }

    #[test]
    fn due_counts_agree_with_due_times() {
        // Whatever the rate, message k is counted due exactly when its
        // intended time has come.
        for rate in [3.0, 7.77, 1000.0, 123_456.789, 3e6, 1e9] {
            let start = Instant::now();
            let mut s = RateSchedule::new(start, rate, 3);
            let mut now = start;
            for step in 0..2_000u64 {
                now += Duration::from_nanos(37_003 * (step % 7 + 1));
                s.advance(now);
                let due = s.due;
                assert!(s.due_at(due - 1) <= now, "rate {rate}, step {step}");
                assert!(s.due_at(due) > now, "rate {rate}, step {step}");
            }
        }
    }
}
