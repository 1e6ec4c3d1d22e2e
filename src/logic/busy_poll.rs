//! When to poll for events instead of sleeping for them: the decision
//! only, over plain durations; the loop does the polling (`server::wait`).
//!
//! Why: waking a sleeping thread costs an inter-processor interrupt (on a
//! VM, a hypervisor exit), a large part of a short round trip. Why adaptive
//! (as Linux's haltpoll cpuidle governor): a fixed window would be burned
//! after every event even when the next is seconds away, so sparse traffic
//! must cost no spinning at all. ARCHITECTURE.md ("Waiting for events")
//! gives the rule and what it buys.

use std::time::{Duration, Instant};

use crate::logic::cpu_budget::CpuBudget;
use crate::logic::spin_probe::SpinProbe;

/// The adaptive spin window of one event loop.
#[derive(Debug, Clone)]
pub struct BusyPoll {
    /// The longest window; zero turns spinning off.
    limit: Duration,
    /// How long the next wait may spin before it sleeps.
    window: Duration,
    /// Since the last wait, the peers served (see [`BusyPoll::note_served`]).
    prompt: Prompt,
    /// Whether spinning pays for streams.
    probe: SpinProbe,
}

/// Who was served since the last wait.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Prompt {
    Nobody,
    /// Only streams (reads that filled the buffer): spin if the probe
    /// found that it pays.
    Streams,
    /// A peer exchanging messages: spin.
    Messages,
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
            prompt: Prompt::Nobody,
            probe: SpinProbe::new(),
        }
    }

    /// Tells that a peer was served since the last wait (or a new one
    /// came), so the next wait may spin for it. `stream`: the peer streams,
    /// and is spun for only where the [`SpinProbe`] finds that it pays: a
    /// peer whose writer never waits for its echo sets the pace itself,
    /// and spinning for it only burns a CPU.
    pub fn note_served(&mut self, stream: bool) {
        let prompt = if stream {
            Prompt::Streams
        } else {
            Prompt::Messages
        };
        self.prompt = self.prompt.max(prompt);
    }

    /// Counts bytes a stream read at `now`, for the probe.
    pub fn stream_moved(&mut self, bytes: u64, now: Instant) {
        if !self.limit.is_zero() {
            self.probe.moved(bytes, now);
        }
    }

    /// How long the next wait may spin: the window, but never past the
    /// wait's own timeout (a due timer must not be delayed by spinning),
    /// and not at all without a peer worth it.
    pub fn spin_for(&mut self, timeout: Option<Duration>, now: Instant) -> Duration {
        let worth_it = match self.prompt {
            Prompt::Nobody => false,
            Prompt::Streams => self.probe.spin(now),
            Prompt::Messages => true,
        };
        if !worth_it {
            return Duration::ZERO;
        }
        timeout.map_or(self.window, |timeout| self.window.min(timeout))
    }

    /// Learns from one finished wait: how long it lasted in all (spinning
    /// and sleeping), and whether it ended with an event rather than its
    /// timeout.
    pub fn record(&mut self, waited: Duration, woke_by_event: bool) {
        self.prompt = Prompt::Nobody;
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

/// What `--busy-poll` asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BusyPollSetting {
    /// The default window, unless the CPU budget says spinning would take
    /// time from real work.
    Auto,
    /// Exactly this window (zero: never spin), whatever the budget.
    Window(Duration),
}

impl BusyPollSetting {
    /// The window this setting gives once decided: `auto` must have been
    /// replaced by [`choose`]'s result; left undecided it never spins.
    pub fn window(self) -> Duration {
        match self {
            Self::Auto => Duration::ZERO,
            Self::Window(window) => window,
        }
    }
}

/// The window a server starts with, and why spinning is off if it is.
#[derive(Debug, Clone, PartialEq)]
pub struct BusyPollChoice {
    pub limit: Duration,
    /// Set when `auto` turned spinning off: the reason, for the log.
    pub off_because: Option<String>,
}

/// Decides the spin window from the setting and the CPU budget.
///
/// `auto` spins only where a spinning loop cannot take CPU time from real
/// work: not with one usable CPU (the peer, the kernel's network work and
/// the log's thread would wait for it), and not under a cgroup quota of at
/// most one CPU. At exactly one CPU, the loop spinning through every idle
/// moment uses the whole quota, so the group is throttled, stalling every
/// connection for the rest of a period (100 ms by default), as soon as the
/// log's thread or the kernel's work charged to it take any time at all.
pub fn choose(setting: BusyPollSetting, default: Duration, budget: &CpuBudget) -> BusyPollChoice {
    match setting {
        BusyPollSetting::Window(limit) => BusyPollChoice {
            limit,
            off_because: None,
        },
        BusyPollSetting::Auto if default.is_zero() => BusyPollChoice {
            limit: default,
            off_because: None,
        },
        BusyPollSetting::Auto => {
            let off_because = match budget.quota_cpus {
                Some(quota) if quota <= 1.0 => {
                    Some(format!("the CPU quota is {quota:.2} CPU (cgroup)"))
                }
                _ if budget.usable_cpus <= 1 => Some("only one CPU is usable".to_string()),
                _ => None,
            };
            BusyPollChoice {
                limit: if off_because.is_some() {
                    Duration::ZERO
                } else {
                    default
                },
                off_because,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMIT: Duration = Duration::from_micros(50);

    fn us(n: u64) -> Duration {
        Duration::from_micros(n)
    }

    fn now() -> Instant {
        Instant::now()
    }

    #[test]
    fn an_idle_loop_never_spins() {
        let mut poll = BusyPoll::new(LIMIT);
        assert_eq!(poll.spin_for(None, now()), Duration::ZERO);
        assert_eq!(poll.spin_for(Some(us(100)), now()), Duration::ZERO);
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
        poll.note_served(false);
        assert_eq!(poll.spin_for(None, now()), LIMIT);
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
            poll.note_served(false);
            let spin = poll.spin_for(None, now());
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
        poll.note_served(false);
        assert_eq!(poll.spin_for(Some(us(7)), now()), us(7));
        assert_eq!(poll.spin_for(Some(Duration::ZERO), now()), Duration::ZERO);
        assert_eq!(poll.spin_for(Some(Duration::from_secs(1)), now()), LIMIT);
    }

    #[test]
    fn a_zero_limit_turns_spinning_off() {
        let mut poll = BusyPoll::new(Duration::ZERO);
        for _ in 0..10 {
            poll.record(Duration::ZERO, true);
        }
        poll.note_served(false);
        assert_eq!(poll.spin_for(None, now()), Duration::ZERO);
    }

    // A wait after a batch that served nobody (a timer, the endpoint) does
    // not spin, however dense the traffic was; the next batch with a peer
    // does again.
    #[test]
    fn only_a_served_peer_is_worth_spinning_for() {
        let mut poll = BusyPoll::new(LIMIT);
        for _ in 0..3 {
            poll.record(us(5), true);
        }
        assert_eq!(poll.window(), LIMIT);
        assert_eq!(
            poll.spin_for(None, now()),
            Duration::ZERO,
            "nobody to spin for"
        );
        poll.note_served(false);
        assert_eq!(poll.spin_for(None, now()), LIMIT);
        // Each wait uses up what the batch before it told.
        poll.record(us(5), true);
        assert_eq!(poll.spin_for(None, now()), Duration::ZERO);
        assert_eq!(
            poll.window(),
            LIMIT,
            "the window is kept for when one comes"
        );
    }

    // Streams are spun for only while the probe finds it pays; a peer
    // exchanging messages beside them is spun for regardless.
    #[test]
    fn streams_are_spun_for_only_where_it_pays() {
        let mut poll = BusyPoll::new(LIMIT);
        for _ in 0..3 {
            poll.record(us(5), true);
        }
        let start = now();
        // A stream that moves as much whether the loop spins or not, past
        // its warm-up and first probe.
        let mut t = start;
        while t < start + Duration::from_secs(2) {
            poll.stream_moved(64 * 1024, t);
            t += us(100);
        }
        poll.note_served(true);
        assert_eq!(poll.spin_for(None, t), Duration::ZERO);
        poll.note_served(false);
        assert_eq!(poll.spin_for(None, t), LIMIT);
    }

    fn budget(usable_cpus: usize, quota_cpus: Option<f64>) -> CpuBudget {
        CpuBudget {
            usable_cpus,
            quota_cpus,
        }
    }

    #[test]
    fn auto_spins_with_a_cpu_to_spare() {
        for spare in [budget(2, None), budget(8, Some(1.5)), budget(2, Some(64.0))] {
            let choice = choose(BusyPollSetting::Auto, LIMIT, &spare);
            assert_eq!(choice.limit, LIMIT, "{spare:?}");
            assert_eq!(choice.off_because, None);
        }
    }

    #[test]
    fn auto_does_not_spin_under_a_quota_of_one_cpu_or_less() {
        for quota in [0.1, 0.5, 0.999, 1.0] {
            let choice = choose(BusyPollSetting::Auto, LIMIT, &budget(4, Some(quota)));
            assert_eq!(choice.limit, Duration::ZERO, "quota {quota}");
            assert!(
                choice.off_because.as_deref().unwrap().contains("CPU quota"),
                "{choice:?}"
            );
        }
        let choice = choose(BusyPollSetting::Auto, LIMIT, &budget(4, Some(0.5)));
        assert_eq!(
            choice.off_because.as_deref(),
            Some("the CPU quota is 0.50 CPU (cgroup)")
        );
    }

    #[test]
    fn auto_does_not_spin_on_a_single_cpu() {
        let choice = choose(BusyPollSetting::Auto, LIMIT, &budget(1, None));
        assert_eq!(choice.limit, Duration::ZERO);
        assert_eq!(
            choice.off_because.as_deref(),
            Some("only one CPU is usable")
        );
        // A quota does not give back a CPU the affinity mask took away.
        let choice = choose(BusyPollSetting::Auto, LIMIT, &budget(1, Some(4.0)));
        assert_eq!(choice.limit, Duration::ZERO);
    }

    #[test]
    fn an_explicit_window_wins() {
        let tight = budget(1, Some(0.2));
        let choice = choose(BusyPollSetting::Window(us(30)), LIMIT, &tight);
        assert_eq!((choice.limit, choice.off_because), (us(30), None));
        let choice = choose(
            BusyPollSetting::Window(Duration::ZERO),
            LIMIT,
            &budget(8, None),
        );
        assert_eq!(choice.limit, Duration::ZERO);
    }
}
