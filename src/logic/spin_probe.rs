//! Does busy polling pay for a stream? Found out by trying, over plain
//! byte counts and instants.
//!
//! For small messages spinning is what makes a round trip short, and the
//! loop spins for them whenever the window is open. A stream (reads that
//! fill the whole buffer) comes in two kinds the server cannot tell apart
//! by looking: a peer that waits for its echo before sending more (a
//! bounded window in flight; waking sooner moves more bytes), and a peer
//! whose writer never waits (`nc host port < file`; it sets the pace, and
//! spinning only burns a CPU). The bytes tell: the probe alternates short
//! epochs with and without spinning and keeps spinning for streams only if
//! the spinning epochs moved clearly more. It then holds that answer for a
//! while and asks again, since a stream can change kind.

use std::time::{Duration, Instant};

/// Length of one probing epoch.
const EPOCH: Duration = Duration::from_millis(25);
/// Epochs per probe: alternately with and without spinning, so a drift in
/// the stream's rate hits both alike.
const EPOCHS: u32 = 8;
/// How long an answer holds before the next probe.
const HOLD: Duration = Duration::from_secs(1);
/// How much more the spinning epochs must move for spinning to pay: less
/// is within what a stream's rate wanders by on its own.
const MARGIN: f64 = 0.05;

#[derive(Debug, Clone, Copy, PartialEq)]
enum State {
    /// No stream seen yet, or it stopped: the next one starts a probe.
    Idle,
    /// Trying: epoch `epoch` began at `since`; bytes moved so far in the
    /// epochs with and without spinning.
    Probing {
        epoch: u32,
        since: Instant,
        spinning: u64,
        sleeping: u64,
    },
    /// The answer until `until`.
    Holding { spin: bool, until: Instant },
}

/// The probe of one event loop.
#[derive(Debug, Clone)]
pub struct SpinProbe {
    state: State,
    /// The last time a stream moved bytes.
    last_stream: Option<Instant>,
}

impl Default for SpinProbe {
    fn default() -> Self {
        Self::new()
    }
}

impl SpinProbe {
    pub fn new() -> Self {
        Self {
            state: State::Idle,
            last_stream: None,
        }
    }

    /// Counts bytes a stream moved at `now`.
    pub fn moved(&mut self, bytes: u64, now: Instant) {
        self.advance(now);
        self.last_stream = Some(now);
        match &mut self.state {
            State::Idle => {
                self.state = State::Probing {
                    epoch: 0,
                    since: now,
                    spinning: bytes,
                    sleeping: 0,
                };
            }
            State::Probing {
                epoch,
                spinning,
                sleeping,
                ..
            } => {
                if *epoch % 2 == 0 {
                    *spinning += bytes;
                } else {
                    *sleeping += bytes;
                }
            }
            State::Holding { .. } => {}
        }
    }

    /// Whether a wait at `now` may spin for streams.
    pub fn spin(&mut self, now: Instant) -> bool {
        self.advance(now);
        match self.state {
            State::Idle => true,
            State::Probing { epoch, .. } => epoch % 2 == 0,
            State::Holding { spin, .. } => spin,
        }
    }

    /// Moves the epochs on to `now`, concluding a probe whose last epoch
    /// ended and starting over once an answer has been held long enough.
    fn advance(&mut self, now: Instant) {
        // A stream that paused for a whole epoch is no longer the stream
        // being measured: start afresh with the next one.
        if self
            .last_stream
            .is_some_and(|last| now.saturating_duration_since(last) > EPOCH)
        {
            self.state = State::Idle;
            self.last_stream = None;
            return;
        }
        match self.state {
            State::Probing {
                epoch,
                since,
                spinning,
                sleeping,
            } => {
                let elapsed = now.saturating_duration_since(since);
                let passed = (elapsed.as_nanos() / EPOCH.as_nanos()) as u32;
                if passed == 0 {
                    return;
                }
                let epoch = epoch + passed;
                if epoch >= EPOCHS {
                    let spin = spinning as f64 > sleeping as f64 * (1.0 + MARGIN);
                    self.state = State::Holding {
                        spin,
                        until: now + HOLD,
                    };
                } else {
                    self.state = State::Probing {
                        epoch,
                        since: since + EPOCH * passed,
                        spinning,
                        sleeping,
                    };
                }
            }
            State::Holding { until, .. } if now >= until => {
                self.state = State::Probing {
                    epoch: 0,
                    since: now,
                    spinning: 0,
                    sleeping: 0,
                };
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const STEP: Duration = Duration::from_micros(100);

    /// Drives the probe over `duration` of a stream that moves
    /// `spinning_rate` or `sleeping_rate` bytes per step depending on what
    /// the probe lets the loop do; returns the share of steps that spun.
    fn run(probe: &mut SpinProbe, start: Instant, duration: Duration, rates: (u64, u64)) -> f64 {
        let steps = (duration.as_nanos() / STEP.as_nanos()) as u32;
        let mut spun = 0;
        for i in 0..steps {
            let now = start + STEP * i;
            let spin = probe.spin(now);
            spun += u32::from(spin);
            probe.moved(if spin { rates.0 } else { rates.1 }, now);
        }
        f64::from(spun) / f64::from(steps)
    }

    // A writer that never waits moves the same bytes either way: after
    // the first probe the loop stops spinning, but for the probes that
    // ask again now and then.
    #[test]
    fn a_stream_that_sets_its_own_pace_stops_the_spinning() {
        let mut probe = SpinProbe::new();
        let start = Instant::now();
        let share = run(&mut probe, start, Duration::from_secs(5), (64_000, 64_000));
        assert!(share < 0.15, "spun {share:.2} of the time");
        assert!(!probe.spin(start + Duration::from_secs(5)));
    }

    // A peer that waits for its echo moves more while the loop spins:
    // spinning goes on, but for the probes' sleeping epochs.
    #[test]
    fn a_stream_that_waits_for_its_echo_keeps_it() {
        let mut probe = SpinProbe::new();
        let start = Instant::now();
        let share = run(&mut probe, start, Duration::from_secs(5), (64_000, 54_000));
        assert!(share > 0.85, "spun only {share:.2} of the time");
        assert!(probe.spin(start + Duration::from_secs(5)));
    }

    // Noise within the margin is not a reason to spin.
    #[test]
    fn a_gain_within_the_margin_does_not_count() {
        let mut probe = SpinProbe::new();
        let start = Instant::now();
        run(&mut probe, start, EPOCH * EPOCHS + STEP, (64_000, 62_000));
        assert!(!probe.spin(start + EPOCH * EPOCHS + STEP * 2));
    }

    // The answer is asked again: a stream that turns into one waiting for
    // its echo gets its spinning back within a hold and a probe.
    #[test]
    fn the_answer_is_asked_again() {
        let mut probe = SpinProbe::new();
        let start = Instant::now();
        run(&mut probe, start, Duration::from_secs(2), (64_000, 64_000));
        let later = start + Duration::from_secs(2);
        let share = run(&mut probe, later, HOLD + EPOCH * EPOCHS, (64_000, 32_000));
        assert!(probe.spin(later + HOLD + EPOCH * EPOCHS));
        assert!(share > 0.2, "{share:.2}");
    }

    // A pause longer than an epoch forgets the stream: the next one is
    // spun for at once and probed afresh.
    #[test]
    fn a_pause_starts_over() {
        let mut probe = SpinProbe::new();
        let start = Instant::now();
        run(&mut probe, start, Duration::from_secs(1), (64_000, 64_000));
        let after_pause = start + Duration::from_secs(1) + EPOCH * 2;
        assert!(probe.spin(after_pause), "a new stream starts spinning");
    }
}
