//! When to poll for events instead of sleeping for them: the decision
//! only, over plain durations; the loop does the polling (`server::wait`).
//!
//! Why: waking a sleeping thread costs an inter-processor interrupt (on a
//! VM, a hypervisor exit), a large part of a short round trip. Why adaptive
//! (as Linux's haltpoll cpuidle governor): a fixed window would be burned
//! after every event even when the next is seconds away, so sparse traffic
//! must cost no spinning at all. ARCHITECTURE.md ("Waiting for events")
//! gives the rule and what it buys.

use std::time::Duration;

/// The adaptive spin window of one event loop.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BusyPoll {
    /// The longest window; zero turns spinning off.
    limit: Duration,
    /// How long the next wait may spin before it sleeps.
    window: Duration,
}

/// A window that has halved below `limit / FLOOR_DIVISOR` drops to zero, and
/// one that grows from zero starts there: spins much shorter than the limit
/// catch too little to pay for the system calls they make.
const FLOOR_DIVISOR: u32 = 4;

impl BusyPoll {
    /// A window that may grow to `limit`; it starts closed, so an idle
    /// server never spins.
    pub fn new(limit: Duration) -> Self {
        Self {
            limit,
            window: Duration::ZERO,
        }
    }

    /// How long the next wait may spin: the window, but never past the
    /// wait's own timeout (a due timer must not be delayed by spinning).
    pub fn spin_for(&self, timeout: Option<Duration>) -> Duration {
        timeout.map_or(self.window, |timeout| self.window.min(timeout))
    }

    /// Learns from one finished wait: how long it lasted in all (spinning
    /// and sleeping), and whether it ended with an event rather than its
    /// timeout.
    pub fn record(&mut self, waited: Duration, woke_by_event: bool) {
        if self.limit.is_zero() {
            return;
        }
        let floor = self.limit / FLOOR_DIVISOR;
        if woke_by_event && waited <= self.limit {
            self.window = (self.window * 2).clamp(floor, self.limit);
        } else {
            self.window /= 2;
            if self.window < floor {
                self.window = Duration::ZERO;
            }
        }
    }

    /// The current window (what the next wait spins for at most).
    #[cfg(test)]
    fn window(&self) -> Duration {
        self.window
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMIT: Duration = Duration::from_micros(50);

    fn us(n: u64) -> Duration {
        Duration::from_micros(n)
    }

    #[test]
    fn an_idle_loop_never_spins() {
        let poll = BusyPoll::new(LIMIT);
        assert_eq!(poll.spin_for(None), Duration::ZERO);
        assert_eq!(poll.spin_for(Some(us(100))), Duration::ZERO);
    }

    #[test]
    fn dense_traffic_opens_the_window_to_its_limit() {
        let mut poll = BusyPoll::new(LIMIT);
        // A client that answers within 30 µs: the first quick wake opens the
        // window at a quarter of the limit, each further one doubles it.
        poll.record(us(30), true);
        assert_eq!(poll.window(), us(12) + Duration::from_nanos(500));
        poll.record(us(30), true);
        assert_eq!(poll.window(), us(25));
        poll.record(us(30), true);
        assert_eq!(poll.window(), LIMIT);
        poll.record(us(1), true);
        assert_eq!(poll.window(), LIMIT, "never past the limit");
        assert_eq!(poll.spin_for(None), LIMIT);
    }

    #[test]
    fn sparse_traffic_closes_the_window() {
        let mut poll = BusyPoll::new(LIMIT);
        for _ in 0..3 {
            poll.record(us(10), true);
        }
        assert_eq!(poll.window(), LIMIT);
        // Pings a second apart: each wait outlasts the limit.
        poll.record(Duration::from_secs(1), true);
        assert_eq!(poll.window(), us(25));
        poll.record(Duration::from_secs(1), true);
        assert_eq!(poll.window(), us(12) + Duration::from_nanos(500));
        poll.record(Duration::from_secs(1), true);
        assert_eq!(poll.window(), Duration::ZERO);
        poll.record(Duration::from_secs(1), true);
        assert_eq!(poll.window(), Duration::ZERO, "stays closed");
    }

    #[test]
    fn what_a_burst_can_cost_after_it_ends_is_bounded() {
        let mut poll = BusyPoll::new(LIMIT);
        for _ in 0..10 {
            poll.record(us(5), true);
        }
        // Traffic stops: every later wait spins its whole window, then
        // sleeps until a timer.
        let mut spun = Duration::ZERO;
        for _ in 0..100 {
            let spin = poll.spin_for(None);
            spun += spin;
            poll.record(Duration::from_millis(100), false);
        }
        assert!(spun < LIMIT * 2, "spun {spun:?} after the burst");
    }

    #[test]
    fn a_timer_that_ends_a_wait_is_not_traffic() {
        let mut poll = BusyPoll::new(LIMIT);
        poll.record(us(10), true);
        poll.record(us(10), true);
        assert_eq!(poll.window(), us(25));
        // A due timer ended this short wait; no peer is known to be close.
        poll.record(us(10), false);
        assert_eq!(poll.window(), us(12) + Duration::from_nanos(500));
    }

    #[test]
    fn a_spin_never_outlasts_the_timeout() {
        let mut poll = BusyPoll::new(LIMIT);
        for _ in 0..3 {
            poll.record(us(1), true);
        }
        assert_eq!(poll.spin_for(Some(us(7))), us(7));
        assert_eq!(poll.spin_for(Some(Duration::ZERO)), Duration::ZERO);
        assert_eq!(poll.spin_for(Some(Duration::from_secs(1))), LIMIT);
    }

    #[test]
    fn a_zero_limit_turns_spinning_off() {
        let mut poll = BusyPoll::new(Duration::ZERO);
        for _ in 0..10 {
            poll.record(Duration::ZERO, true);
        }
        assert_eq!(poll.spin_for(None), Duration::ZERO);
    }
}
