//! The open-loop send schedule for `--rate`: message `k` of the whole run is
//! due at `start + k / rate` on connection `k mod N`.
//!
//! Latency is measured from these intended times, not from when the write
//! happened, so a server that stalls cannot hide the stall by slowing the
//! sender down (no coordinated omission).

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::time::{Duration, Instant};

/// Due times per connection, earliest first.
#[derive(Debug)]
pub struct RateSchedule {
    start: Instant,
    rate: f64,
    connections: u64,
    /// Next message index per connection (its `j`-th message is global
    /// message `j * N + conn`).
    next: Vec<u64>,
    due: BinaryHeap<Reverse<(Instant, usize)>>,
}

impl RateSchedule {
    /// A schedule of `rate` messages per second in all, spread evenly over
    /// `connections`, starting at `start`.
    pub fn new(start: Instant, rate: f64, connections: usize) -> Self {
        let mut schedule = Self {
            start,
            rate,
            connections: connections as u64,
            next: vec![0; connections],
            due: BinaryHeap::with_capacity(connections),
        };
        for conn in 0..connections {
            let at = schedule.intended(conn, 0);
            schedule.due.push(Reverse((at, conn)));
        }
        schedule
    }

    fn intended(&self, conn: usize, j: u64) -> Instant {
        let k = j * self.connections + conn as u64;
        self.start + Duration::from_secs_f64(k as f64 / self.rate)
    }

    /// When the next message falls due.
    pub fn next_due(&self) -> Option<Instant> {
        self.due.peek().map(|Reverse((at, _))| *at)
    }

    /// The next message due at or before `now`, as (connection, intended
    /// time); the connection's following message is scheduled.
    pub fn pop_due(&mut self, now: Instant) -> Option<(usize, Instant)> {
        let Reverse((at, conn)) = *self.due.peek()?;
        if at > now {
            return None;
        }
        self.due.pop();
        self.next[conn] += 1;
        let following = self.intended(conn, self.next[conn]);
        self.due.push(Reverse((following, conn)));
        Some((conn, at))
    }

    /// Stops scheduling for a connection that closed.
    pub fn forget(&mut self, conn: usize) {
        self.due.retain(|Reverse((_, c))| *c != conn);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_are_spread_evenly_in_global_order() {
        let start = Instant::now();
        let mut s = RateSchedule::new(start, 1000.0, 3);
        let mut got = Vec::new();
        while let Some((conn, at)) = s.pop_due(start + Duration::from_micros(5_500)) {
            got.push((conn, (at - start).as_micros()));
        }
        // Six messages, one per millisecond, round-robin over connections.
        assert_eq!(
            got,
            [
                (0, 0),
                (1, 1000),
                (2, 2000),
                (0, 3000),
                (1, 4000),
                (2, 5000)
            ]
        );
        assert_eq!(s.next_due(), Some(start + Duration::from_millis(6)));
    }

    #[test]
    fn a_late_caller_still_gets_the_intended_times() {
        let start = Instant::now();
        let mut s = RateSchedule::new(start, 10.0, 1);
        // Polled 1 s late: ten messages are overdue, each with its own time.
        let late = start + Duration::from_secs(1);
        let times: Vec<u128> = std::iter::from_fn(|| s.pop_due(late))
            .map(|(_, at)| (at - start).as_millis())
            .collect();
        assert_eq!(
            times,
            [0, 100, 200, 300, 400, 500, 600, 700, 800, 900, 1000]
        );
    }

    #[test]
    fn forgotten_connections_get_nothing() {
        let start = Instant::now();
        let mut s = RateSchedule::new(start, 1000.0, 2);
        s.forget(0);
        let conns: Vec<usize> = std::iter::from_fn(|| s.pop_due(start + Duration::from_millis(4)))
            .map(|(c, _)| c)
            .collect();
        assert_eq!(conns, [1, 1]);
    }
}
