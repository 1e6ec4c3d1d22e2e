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

/// Length of one probing epoch: long enough for a bounded window's gain
/// to show (a stream's queues take tens of milliseconds to settle into
/// the pace that waking sooner or later gives).
const EPOCH: Duration = Duration::from_millis(100);
/// Epochs per probe: pairs of one with and one without spinning, so a
/// drift in the stream's rate hits both alike.
const EPOCHS: u32 = 8;
/// Pairs whose spinning epoch must have moved more for spinning to pay:
/// a stream's rate wanders by several percent from one epoch to the next,
/// and a gain that is real shows in nearly every pair.
const WINS_NEEDED: u32 = EPOCHS / 2 - 1;
/// How long a new stream is spun for before the first probe: a stream
/// starting up (TCP's windows still growing) moves as little either way,
/// and a probe then would stop the spinning a bounded window needs to
/// reach its pace.
const WARM_UP: Duration = Duration::from_secs(1);
/// How long an answer holds before the next probe.
const HOLD: Duration = Duration::from_secs(4);
/// How much more the spinning epochs must move in all: a gain of a few
/// percent is not worth a CPU spinning all the time.
const MARGIN: f64 = 0.1;

#[derive(Debug, Clone, Copy, PartialEq)]
enum State {
    /// No stream seen yet, or it stopped: the next one is spun for while
    /// it warms up, then probed.
    Idle,
    /// Trying: epoch `epoch` began at `since`; bytes moved so far in the
    /// epochs with and without spinning.
    Probing {
        epoch: u32,
        since: Instant,
        spinning: Tally,
        sleeping: Tally,
        /// Pairs so far whose spinning epoch moved more.
        wins: u32,
    },
    /// The answer until `until`.
    Holding { spin: bool, until: Instant },
}

/// Whether a connection counts as a stream: one of its turns within the
/// last epoch moved at least half its buffer, or filled it. Remembered for
/// an epoch because a loop that spins catches a stream's bytes as they
/// arrive, so some of its turns read only a part of a write; taken for
/// messages, those would keep the loop spinning for a stream that paces
/// itself.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StreamMemory {
    last_stream_turn: Option<Instant>,
}

impl StreamMemory {
    /// Notes a turn that read `received` bytes of a `buffer`-sized buffer
    /// (`filled`: a read filled it, or bytes went through the pipe) and
    /// tells whether the connection streams.
    pub fn note_turn(
        &mut self,
        received: usize,
        filled: bool,
        buffer: usize,
        now: Instant,
    ) -> bool {
        if filled || received >= buffer / 2 {
            self.last_stream_turn = Some(now);
        }
        self.last_stream_turn
            .is_some_and(|last| now.saturating_duration_since(last) <= EPOCH)
    }
}

/// Bytes moved in the current epoch of a kind, and in all of them.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
struct Tally {
    epoch: u64,
    total: u64,
}

impl Tally {
    fn add(&mut self, bytes: u64) {
        self.epoch += bytes;
        self.total += bytes;
    }
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
                self.state = State::Holding {
                    spin: true,
                    until: now + WARM_UP,
                };
            }
            State::Probing {
                epoch,
                spinning,
                sleeping,
                ..
            } => {
                if *epoch % 2 == 0 {
                    spinning.add(bytes);
                } else {
                    sleeping.add(bytes);
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
                mut epoch,
                mut since,
                mut spinning,
                mut sleeping,
                mut wins,
            } => {
                while now.saturating_duration_since(since) >= EPOCH {
                    if epoch % 2 == 1 {
                        // A pair ends: which of its two epochs moved more.
                        wins += u32::from(spinning.epoch > sleeping.epoch);
                        spinning.epoch = 0;
                        sleeping.epoch = 0;
                    }
                    epoch += 1;
                    since += EPOCH;
                    if epoch == EPOCHS {
                        let gain = spinning.total as f64 > sleeping.total as f64 * (1.0 + MARGIN);
                        self.state = State::Holding {
                            spin: gain && wins >= WINS_NEEDED,
                            until: now + HOLD,
                        };
                        return;
                    }
                }
                self.state = State::Probing {
                    epoch,
                    since,
                    spinning,
                    sleeping,
                    wins,
                };
            }
            State::Holding { until, .. } if now >= until => {
                self.state = State::Probing {
                    epoch: 0,
                    since: now,
                    spinning: Tally::default(),
                    sleeping: Tally::default(),
                    wins: 0,
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
    // its warm-up and the first probe the loop stops spinning, but for the
    // probes that ask again now and then.
    #[test]
    fn a_stream_that_sets_its_own_pace_stops_the_spinning() {
        let mut probe = SpinProbe::new();
        let start = Instant::now();
        let first = WARM_UP + EPOCH * EPOCHS;
        let share = run(&mut probe, start, first, (64_000, 64_000));
        assert!(share > 0.7, "a new stream is spun for while it warms up");
        let share = run(
            &mut probe,
            start + first,
            Duration::from_secs(10),
            (64_000, 64_000),
        );
        assert!(share < 0.1, "spun {share:.2} of the time");
        assert!(!probe.spin(start + first + Duration::from_secs(10)));
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
        run(
            &mut probe,
            start,
            WARM_UP + EPOCH * EPOCHS + STEP,
            (64_000, 62_000),
        );
        assert!(!probe.spin(start + WARM_UP + EPOCH * EPOCHS + STEP * 2));
    }

    // The answer is asked again: a stream that turns into one waiting for
    // its echo gets its spinning back within a hold and a probe.
    #[test]
    fn the_answer_is_asked_again() {
        let mut probe = SpinProbe::new();
        let start = Instant::now();
        let first = WARM_UP + EPOCH * EPOCHS;
        run(&mut probe, start, first, (64_000, 64_000));
        assert!(!probe.spin(start + first));
        let next = HOLD + EPOCH * EPOCHS;
        run(&mut probe, start + first, next, (64_000, 32_000));
        assert!(probe.spin(start + first + next));
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

    /// Like `run`, with each millisecond's rate off by up to ±`noise` (a
    /// fixed pseudo-random sequence), as a real stream's rate wanders.
    fn run_noisy(probe: &mut SpinProbe, duration: Duration, rates: (u64, u64), noise: f64) -> f64 {
        let start = Instant::now();
        let steps = (duration.as_nanos() / STEP.as_nanos()) as u32;
        let mut seed: u64 = 0x2545_f491_4f6c_dd1d;
        let mut factor = 1.0;
        let mut spun = 0;
        for i in 0..steps {
            if i % 10 == 0 {
                seed = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
                let unit = (seed >> 11) as f64 / (1u64 << 53) as f64;
                factor = 1.0 + noise * (2.0 * unit - 1.0);
            }
            let now = start + STEP * i;
            let spin = probe.spin(now);
            spun += u32::from(spin);
            let rate = if spin { rates.0 } else { rates.1 };
            probe.moved((rate as f64 * factor) as u64, now);
        }
        f64::from(spun) / f64::from(steps)
    }

    // The stream's own wandering is not taken for a gain, and a real gain
    // of a fifth (what spinning buys a bounded window on this machine's
    // loopback, BENCHMARKS.md) is found through it.
    #[test]
    fn noise_is_not_a_gain_and_a_real_gain_shows_through_it() {
        let share = run_noisy(
            &mut SpinProbe::new(),
            Duration::from_secs(20),
            (64_000, 64_000),
            0.15,
        );
        assert!(share < 0.2, "spun {share:.2} of the time for nothing");
        let share = run_noisy(
            &mut SpinProbe::new(),
            Duration::from_secs(20),
            (64_000, 53_000),
            0.15,
        );
        assert!(
            share > 0.8,
            "spun only {share:.2} of the time for a 20% gain"
        );
    }

    // A stream stays one through turns that caught only part of a write,
    // for an epoch; a peer exchanging messages never becomes one.
    #[test]
    fn a_stream_is_remembered_through_short_turns() {
        let start = Instant::now();
        let mut conn = StreamMemory::default();
        assert!(!conn.note_turn(64, false, 65_536, start));
        assert!(conn.note_turn(40_000, false, 65_536, start));
        assert!(conn.note_turn(3_000, false, 65_536, start + EPOCH));
        assert!(!conn.note_turn(3_000, false, 65_536, start + EPOCH * 2));
        assert!(conn.note_turn(10, true, 65_536, start + EPOCH * 2));
        let mut chat = StreamMemory::default();
        for i in 0..100 {
            assert!(!chat.note_turn(16_384, false, 65_536, start + STEP * i));
        }
    }
}
