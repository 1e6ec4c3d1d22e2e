//! Idle-timeout bookkeeping: a hashed timing wheel and the clock that feeds it.
//!
//! [`TimerWheel`] is Varghese & Lauck's "scheme 6": a single array of slots,
//! each entry hashed into slot `deadline mod slots` while keeping its
//! *absolute* deadline. Insert and remove touch one slot; advancing visits
//! only the slots between the last processed tick and now, and at most one
//! full revolution however long the pause was. An entry whose slot is
//! visited but whose deadline lies in a later revolution simply stays put.
//! The price is that a slot may hold entries from several revolutions, which
//! is cheap to skip and much cheaper than the cascading of a hierarchical
//! wheel for timeouts that are mostly re-armed rather than fired.
//!
//! The wheel never reads the clock. It counts abstract ticks and is moved
//! only by [`TimerWheel::advance`], so every behaviour, including long
//! pauses and wrap-around, is deterministic and testable by passing
//! numbers; the server owns the one place where real time becomes ticks.
//!
//! That place is [`TickClock`], and its rounding is what makes a timeout
//! never fire early. Due-ness is judged with [`TickClock::floor`] (the last
//! tick that has started) and a deadline is stamped with
//! [`TickClock::ceil`] (the first tick that starts at or after it), so
//! [`TickClock::deadline`] `ceil(since + timeout)` only becomes due once
//! `since + timeout` has passed, and less than one tick after that,
//! provided the caller sleeps no longer than [`TimerWheel::next_wakeup`]
//! says.
//!
//! Re-arming is lazy: activity only updates a connection's last-active
//! instant, and when its entry fires, [`TickClock::expiry`] decides whether
//! to close it or arm it again at its new deadline. Busy connections thus
//! cost one wheel operation per idle period, not one per read. The server's
//! idle connections, its metrics endpoint's HTTP clients and the timer
//! model (`model_check::timer`) all ask that one function.

use std::time::{Duration, Instant};

const NANOS_PER_SEC: u128 = 1_000_000_000;

/// Turns instants into whole ticks since `origin`.
#[derive(Debug, Clone, Copy)]
pub struct TickClock {
    origin: Instant,
    tick: Duration,
}

impl TickClock {
    /// A clock whose tick 0 starts at `origin` and whose ticks last `tick`.
    ///
    /// # Panics
    /// If `tick` is zero: the tick length comes from the program, not from
    /// input, so a zero is a programming error.
    pub fn new(origin: Instant, tick: Duration) -> Self {
        assert!(!tick.is_zero(), "TickClock tick length must be non-zero");
        Self { origin, tick }
    }

    /// Number of whole ticks elapsed at `now` (instants before the origin
    /// give 0). Used for "what is due now": a tick counts only once it has
    /// started.
    pub fn floor(&self, now: Instant) -> u64 {
        saturate(self.elapsed_nanos(now) / self.tick.as_nanos())
    }

    /// The smallest tick whose start instant is at or after `at`. Used to
    /// stamp activity, so a deadline computed from it is never early.
    pub fn ceil(&self, at: Instant) -> u64 {
        saturate(self.elapsed_nanos(at).div_ceil(self.tick.as_nanos()))
    }

    /// The instant at which `tick` starts (`origin + tick * tick_len`).
    ///
    /// Saturates instead of panicking when that instant is not
    /// representable: the result is then the latest whole-second offset from
    /// the origin that is, which for a poll timeout means "far away".
    pub fn instant_of(&self, tick: u64) -> Instant {
        let offset = self
            .tick
            .as_nanos()
            .checked_mul(u128::from(tick))
            .and_then(duration_from_nanos)
            .unwrap_or(Duration::MAX);
        saturating_add(self.origin, offset)
    }

    /// The tick at which `timeout` after `since` counts as passed: the
    /// first tick starting at or after `since + timeout`, so judged with
    /// [`floor`](Self::floor) it is never early.
    pub fn deadline(&self, since: Instant, timeout: Duration) -> u64 {
        self.ceil(since + timeout)
    }

    /// The idle rule, for a timer that fired at `tick` (`floor(now)`) on a
    /// connection last active at `last_active`: close it once `timeout`
    /// has passed since then, else arm it again at its deadline.
    pub fn expiry(&self, last_active: Instant, timeout: Duration, tick: u64) -> Expiry {
        let due = self.deadline(last_active, timeout);
        if due <= tick {
            Expiry::Close
        } else {
            Expiry::Rearm(due)
        }
    }

    fn elapsed_nanos(&self, at: Instant) -> u128 {
        at.saturating_duration_since(self.origin).as_nanos()
    }
}

/// What [`TickClock::expiry`] decided for a fired idle timer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expiry {
    /// The timeout has passed since the last activity: close.
    Close,
    /// There was activity since the timer was armed: arm it at this tick.
    Rearm(u64),
}

/// Tick counts past `u64::MAX` are centuries beyond any real uptime;
/// clamping keeps the arithmetic total instead of wrapping to the past.
fn saturate(ticks: u128) -> u64 {
    u64::try_from(ticks).unwrap_or(u64::MAX)
}

fn duration_from_nanos(nanos: u128) -> Option<Duration> {
    let secs = u64::try_from(nanos / NANOS_PER_SEC).ok()?;
    // The remainder is below one second's worth of nanoseconds, so it fits.
    let subsec = (nanos % NANOS_PER_SEC) as u32;
    Some(Duration::new(secs, subsec))
}

/// `Instant` has no `MAX` and its range is platform-defined, so the
/// saturation point is found by bisecting whole seconds. This only runs
/// when the exact sum overflows, which takes an absurd tick number.
fn saturating_add(base: Instant, offset: Duration) -> Instant {
    if let Some(at) = base.checked_add(offset) {
        return at;
    }
    let fits = |secs: u64| base.checked_add(Duration::from_secs(secs)).is_some();
    // Invariant: `lo` seconds fit; everything above `hi` does not.
    let (mut lo, mut hi) = (0, offset.as_secs());
    while lo < hi {
        let mid = lo + (hi - lo).div_ceil(2);
        if fits(mid) {
            lo = mid;
        } else {
            hi = mid - 1;
        }
    }
    base + Duration::from_secs(lo)
}

/// Bounds for [`TimerWheel::new`]: at least two slots so hashing means
/// something, at most 64 Ki slots so an idle revolution scan stays cheap.
const MIN_SLOT_BITS: u32 = 1;
const MAX_SLOT_BITS: u32 = 16;

#[derive(Debug)]
struct Entry<T> {
    /// The deadline exactly as given to `insert`, which is what `remove`
    /// is called with; see [`TimerWheel::insert`] for where it is stored.
    deadline: u64,
    value: T,
}

/// Hashed timing wheel keyed by absolute deadline ticks.
///
/// Placement rule: an entry lives in the slot of
/// `max(deadline, current_tick at insert)`, and it keeps its `deadline`
/// unchanged. Invariant: every stored entry's placement tick is
/// `>= current_tick`, because [`advance`](Self::advance) fires everything up
/// to the tick it reaches; that is what lets a bounded scan find every due
/// entry and lets [`remove`](Self::remove) look in a single slot.
#[derive(Debug)]
pub struct TimerWheel<T> {
    slots: Vec<Vec<Entry<T>>>,
    /// `slots.len() - 1`; the slot count is a power of two so hashing a
    /// tick is a mask, not a division.
    mask: u64,
    /// The first tick not yet processed.
    current: u64,
    len: usize,
    /// Cached answer of `next_wakeup`: a tick no later than the earliest
    /// deadline. Lowered by `insert`, recomputed only when `advance` passes
    /// it, so the poll loop asks for it in O(1) on every iteration.
    wakeup: Option<u64>,
}

impl<T> TimerWheel<T> {
    /// A wheel with `1 << slot_bits` slots, starting at tick 0.
    ///
    /// # Panics
    /// If `slot_bits` is outside `1..=16`; the size is chosen by the
    /// program, so anything else is a programming error.
    pub fn new(slot_bits: u32) -> Self {
        assert!(
            (MIN_SLOT_BITS..=MAX_SLOT_BITS).contains(&slot_bits),
            "TimerWheel slot_bits must be in {MIN_SLOT_BITS}..={MAX_SLOT_BITS}, got {slot_bits}"
        );
        let slot_count = 1usize << slot_bits;
        Self {
            slots: std::iter::repeat_with(Vec::new).take(slot_count).collect(),
            mask: (1u64 << slot_bits) - 1,
            current: 0,
            len: 0,
            wakeup: None,
        }
    }

    /// The first tick not yet processed: every entry with a deadline below
    /// this has already fired, except ones inserted with an overdue deadline
    /// since the last advance, which fire on the next one. Only the tests
    /// and the timer model look at it.
    #[cfg(any(test, feature = "model-check"))]
    pub fn current_tick(&self) -> u64 {
        self.current
    }

    /// Number of scheduled entries.
    #[cfg(any(test, feature = "model-check"))]
    pub fn len(&self) -> usize {
        self.len
    }

    /// True when nothing is scheduled.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Schedule `value` to fire at `deadline`.
    ///
    /// A deadline already in the past (below the current tick)
    /// is placed in the slot of `current_tick` and fires on the next
    /// `advance(now)` with `now >= current_tick`; it still keeps the deadline it was
    /// given, so [`remove`](Self::remove) finds it with that same value.
    pub fn insert(&mut self, deadline: u64, value: T) {
        let effective = deadline.max(self.current);
        let slot = self.slot_of(effective);
        self.slots[slot].push(Entry { deadline, value });
        self.len += 1;
        self.wakeup = Some(self.wakeup.map_or(effective, |w| w.min(effective)));
    }

    /// Remove the first entry scheduled at exactly `deadline` (as given to
    /// [`insert`](Self::insert)) for which `matches` returns true, and
    /// return it; `None` if there is none, including when it already fired.
    ///
    /// Looks in one slot only, that of `max(deadline, current_tick)`. That
    /// is always where a still-present entry lives: if its deadline was not
    /// in the past at insert, placement is the deadline itself and, the
    /// entry not having fired, still `>= current_tick`; if it was in the
    /// past, placement was the then-current tick, and the entry not having
    /// fired means no advance has moved `current_tick` since.
    pub fn remove(&mut self, deadline: u64, mut matches: impl FnMut(&T) -> bool) -> Option<T> {
        let index = self.slot_of(deadline.max(self.current));
        let slot = &mut self.slots[index];
        // Comparing deadlines too keeps a stale handle from taking a
        // different entry that happens to share the slot and the value.
        let pos = slot
            .iter()
            .position(|e| e.deadline == deadline && matches(&e.value))?;
        self.len -= 1;
        // Order within a slot carries no meaning, so the O(1) removal is fine.
        Some(slot.swap_remove(pos).value)
    }

    /// Fire everything with a deadline `<= now`: push the values into
    /// `fired` (in no particular order) and set `current_tick` to `now + 1`.
    /// If `now < current_tick`, nothing happens. Entries due in a later
    /// revolution stay in their slot.
    ///
    /// Visits `min(now - current_tick + 1, slots)` slots, so a long pause
    /// costs one revolution, never one step per elapsed tick. At
    /// `now == u64::MAX` the current tick saturates at `u64::MAX`.
    pub fn advance(&mut self, now: u64, fired: &mut Vec<T>) {
        if now < self.current {
            return;
        }
        // Every stored placement tick is >= current, so the due ones are
        // hashed into the slots of current..=now, and a span of a full
        // revolution or more covers every slot.
        let span = (now - self.current).saturating_add(1);
        let visits = span.min(self.mask + 1);
        for step in 0..visits {
            let index = self.slot_of(self.current.wrapping_add(step));
            let slot = &mut self.slots[index];
            let mut i = 0;
            while i < slot.len() {
                // A past deadline placed at a later tick is still <= now here.
                if slot[i].deadline <= now {
                    fired.push(slot.swap_remove(i).value);
                    self.len -= 1;
                } else {
                    i += 1;
                }
            }
        }
        self.current = now.saturating_add(1);
        if self.wakeup.is_some_and(|w| w <= now) {
            self.wakeup = self.scan_for_wakeup();
        }
    }

    /// A tick at or before the earliest deadline at which
    /// [`advance`](Self::advance) should next be called, for computing the
    /// poll timeout; `None` when the wheel is empty.
    ///
    /// O(1): the answer is cached. It is the earliest deadline inserted
    /// since the last recompute, or, after `advance` passed the cached tick,
    /// the first non-empty slot within one revolution (`current_tick +
    /// offset`). That is never
    /// later than the earliest deadline (or than `current_tick` for an
    /// overdue entry), and equals it when every entry is due within one
    /// revolution. It may be earlier when that slot only holds entries of a
    /// later revolution: the caller then wakes, advances, and asks again,
    /// which converges within a couple of revolutions while keeping this
    /// call independent of the number of entries. After a `remove` it may
    /// also be early, with the same harmless effect.
    pub fn next_wakeup(&self) -> Option<u64> {
        if self.is_empty() {
            return None;
        }
        self.wakeup
    }

    /// The first non-empty slot within one revolution of `current_tick`.
    fn scan_for_wakeup(&self) -> Option<u64> {
        if self.is_empty() {
            return None;
        }
        (0..=self.mask)
            .find(|&offset| !self.slots[self.slot_of(self.current.wrapping_add(offset))].is_empty())
            .map(|offset| self.current + offset)
    }

    fn slot_of(&self, tick: u64) -> usize {
        // The mask keeps at most 16 bits, so this always fits in usize.
        (tick & self.mask) as usize
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model_check::Rng;
    use std::collections::HashSet;

    const BITS: u32 = 3;
    const SLOTS: u64 = 1 << BITS;

    fn wheel() -> TimerWheel<u32> {
        TimerWheel::new(BITS)
    }

    /// Advances and returns what fired, sorted so tests can compare.
    fn fire(w: &mut TimerWheel<u32>, now: u64) -> Vec<u32> {
        let mut fired = Vec::new();
        w.advance(now, &mut fired);
        fired.sort_unstable();
        fired
    }

    // An entry fires at its deadline tick and not one tick earlier.
    #[test]
    fn fires_exactly_at_deadline() {
        let mut w = wheel();
        w.insert(5, 1);
        assert_eq!(fire(&mut w, 4), Vec::<u32>::new());
        assert_eq!(w.current_tick(), 5);
        assert_eq!(fire(&mut w, 5), vec![1]);
        assert_eq!(w.current_tick(), 6);
        assert!(w.is_empty());
    }

    // A deadline of tick 0 on a fresh wheel is due at the very first advance.
    #[test]
    fn fires_at_tick_zero() {
        let mut w = wheel();
        w.insert(0, 7);
        assert_eq!(fire(&mut w, 0), vec![7]);
    }

    // Deadlines d and d + SLOTS share a slot; each fires only in its own revolution.
    #[test]
    fn hash_collision_fires_only_due_revolution() {
        let mut w = wheel();
        w.insert(3, 1);
        w.insert(3 + SLOTS, 2);
        assert_eq!(fire(&mut w, 3), vec![1]);
        assert_eq!(w.len(), 1);
        assert_eq!(fire(&mut w, 2 + SLOTS), Vec::<u32>::new());
        assert_eq!(fire(&mut w, 3 + SLOTS), vec![2]);
        assert!(w.is_empty());
    }

    // A jump over many revolutions fires every due entry once and nothing early.
    #[test]
    fn long_pause_fires_due_entries_once() {
        let mut w = wheel();
        for d in 0..100 {
            w.insert(d, d as u32);
        }
        w.insert(10_000_001, 1000);
        w.insert(20_000_000, 2000);
        assert_eq!(fire(&mut w, 10_000_000), (0..100).collect::<Vec<u32>>());
        assert_eq!(w.len(), 2);
        assert_eq!(w.current_tick(), 10_000_001);
        assert_eq!(fire(&mut w, 10_000_001), vec![1000]);
        assert_eq!(fire(&mut w, 19_999_999), Vec::<u32>::new());
        assert_eq!(fire(&mut w, 20_000_000), vec![2000]);
        assert!(w.is_empty());
    }

    // Advancing is bounded by one revolution: a per-tick loop could never finish these.
    #[test]
    fn long_pause_work_is_bounded() {
        let mut w = wheel();
        w.insert(9_999_999, 1);
        assert_eq!(fire(&mut w, 10_000_000), vec![1]);
        w.insert(u64::MAX, 2);
        assert_eq!(fire(&mut w, u64::MAX - 1), Vec::<u32>::new());
        assert_eq!(w.len(), 1);
        assert_eq!(fire(&mut w, u64::MAX), vec![2]);
        // The current tick saturates rather than wrapping back to 0.
        assert_eq!(w.current_tick(), u64::MAX);
        assert_eq!(fire(&mut w, u64::MAX), Vec::<u32>::new());
    }

    // Deadlines beyond the slot count and around 1 << 40 fire on exactly their tick.
    #[test]
    fn wrap_around_and_large_deadlines() {
        let mut w = wheel();
        let small = [SLOTS, SLOTS + 1, 2 * SLOTS, 2 * SLOTS + 1, 100];
        for &d in &small {
            w.insert(d, d as u32);
        }
        for t in 0..=100 {
            let expected: Vec<u32> = small
                .iter()
                .filter(|&&d| d == t)
                .map(|&d| d as u32)
                .collect();
            assert_eq!(fire(&mut w, t), expected, "tick {t}");
        }

        let base = 1u64 << 40;
        fire(&mut w, base - 3);
        let big = [
            base - 1,
            base,
            base + 1,
            base + SLOTS - 1,
            base + SLOTS,
            base + 3 * SLOTS,
        ];
        for (i, &d) in big.iter().enumerate() {
            w.insert(d, i as u32);
        }
        for t in base - 2..=base + 3 * SLOTS {
            let expected: Vec<u32> = big
                .iter()
                .enumerate()
                .filter(|&(_, &d)| d == t)
                .map(|(i, _)| i as u32)
                .collect();
            assert_eq!(fire(&mut w, t), expected, "tick {t}");
        }
        assert!(w.is_empty());
    }

    // A deadline already past fires on the next advance, and remove finds it until then.
    #[test]
    fn past_deadline_insert() {
        let mut w = wheel();
        fire(&mut w, 10);
        w.insert(3, 1);
        w.insert(3, 2);
        assert_eq!(w.len(), 2);
        // A backwards advance moves nothing, so the entry is still where remove looks.
        assert_eq!(fire(&mut w, 9), Vec::<u32>::new());
        assert_eq!(w.remove(3, |&v| v == 2), Some(2));
        assert_eq!(fire(&mut w, 11), vec![1]);
        assert_eq!(w.remove(3, |&v| v == 1), None);
        assert!(w.is_empty());
    }

    // A past deadline lands in a slot shared with revolutions ahead without disturbing them.
    #[test]
    fn past_deadline_shares_slot_with_future_entry() {
        let mut w = wheel();
        fire(&mut w, 10);
        // Both live in slot(11): one clamped from the past, one due a revolution later.
        w.insert(2, 1);
        w.insert(11 + SLOTS, 1);
        assert_eq!(w.remove(2, |&v| v == 1), Some(1));
        assert_eq!(w.len(), 1);
        w.insert(2, 3);
        assert_eq!(fire(&mut w, 11), vec![3]);
        assert_eq!(w.remove(11 + SLOTS, |&v| v == 1), Some(1));
        assert!(w.is_empty());
    }

    // remove takes only the matching entry and reports absent or fired ones as None.
    #[test]
    fn remove_only_matching() {
        let mut w = wheel();
        w.insert(5, 1);
        w.insert(5, 2);
        w.insert(5 + SLOTS, 3);
        w.insert(6, 4);
        assert_eq!(w.remove(5, |&v| v == 2), Some(2));
        assert_eq!(w.len(), 3);
        assert_eq!(w.remove(5, |&v| v == 2), None);
        // Same slot, wrong revolution: the deadline must match, not just the value.
        assert_eq!(w.remove(5 + SLOTS, |&v| v == 1), None);
        assert_eq!(w.remove(6, |&v| v == 1), None);
        assert_eq!(w.remove(5, |&v| v == 99), None);
        assert_eq!(w.len(), 3);
        assert_eq!(fire(&mut w, 5), vec![1]);
        assert_eq!(w.remove(5, |&v| v == 1), None);
        assert_eq!(w.remove(5 + SLOTS, |&v| v == 3), Some(3));
        assert_eq!(w.len(), 1);
        assert_eq!(fire(&mut w, 100), vec![4]);
        assert!(w.is_empty());
    }

    // next_wakeup is None when empty, exact within one revolution, early (never late) beyond it.
    #[test]
    fn next_wakeup_bounds() {
        let mut w = wheel();
        assert_eq!(w.next_wakeup(), None);
        w.insert(5, 1);
        w.insert(7, 2);
        assert_eq!(w.next_wakeup(), Some(5));
        fire(&mut w, 5);
        assert_eq!(w.next_wakeup(), Some(7));
        fire(&mut w, 7);
        assert_eq!(w.next_wakeup(), None);

        // Once 13 has fired, the hint is recomputed by scanning. From tick
        // 14, slot 4 first comes round at tick 20 while its entry is due at
        // 28: the answer is early but never late, and asking again after
        // advancing converges on it.
        w.insert(5 + 8, 4);
        w.insert(28, 3);
        fire(&mut w, 13);
        let mut wakeups = Vec::new();
        while let Some(t) = w.next_wakeup() {
            assert!(t <= 28);
            wakeups.push(t);
            let fired = fire(&mut w, t);
            assert_eq!(fired.is_empty(), t < 28);
        }
        assert_eq!(wakeups, vec![20, 28]);
    }

    // An overdue entry asks for a wake-up at the current tick, the earliest useful advance.
    #[test]
    fn next_wakeup_for_overdue_entry() {
        let mut w = wheel();
        fire(&mut w, 10);
        w.insert(4, 1);
        assert_eq!(w.next_wakeup(), Some(11));
        assert_eq!(fire(&mut w, 11), vec![1]);
    }

    // Advancing backwards or repeating a tick fires nothing and never fires twice.
    #[test]
    fn advance_backwards_is_noop() {
        let mut w = wheel();
        fire(&mut w, 10);
        w.insert(15, 1);
        assert_eq!(fire(&mut w, 5), Vec::<u32>::new());
        assert_eq!(w.current_tick(), 11);
        assert_eq!(fire(&mut w, 10), Vec::<u32>::new());
        assert_eq!(w.current_tick(), 11);
        assert_eq!(fire(&mut w, 15), vec![1]);
        assert_eq!(fire(&mut w, 15), Vec::<u32>::new());
        assert_eq!(fire(&mut w, 3), Vec::<u32>::new());
        assert_eq!(w.current_tick(), 16);
    }

    // The wheel size is a programming choice, checked at construction.
    #[test]
    #[should_panic(expected = "slot_bits")]
    fn zero_slot_bits_panics() {
        let _ = wheel_of(0);
    }

    // The upper bound on slot_bits is enforced as well.
    #[test]
    #[should_panic(expected = "slot_bits")]
    fn too_many_slot_bits_panics() {
        let _ = wheel_of(MAX_SLOT_BITS + 1);
    }

    // Both extremes of the allowed range build a wheel of the right size.
    #[test]
    fn slot_bits_bounds_accepted() {
        assert_eq!(wheel_of(MIN_SLOT_BITS).slots.len(), 2);
        assert_eq!(wheel_of(MAX_SLOT_BITS).slots.len(), 1 << 16);
    }

    fn wheel_of(bits: u32) -> TimerWheel<u32> {
        TimerWheel::new(bits)
    }

    // Random insert/remove/advance agree with a brute-force list at every step.
    #[test]
    fn randomized_against_model() {
        for seed in [0x9E37_79B9_7F4A_7C15, 0xDEAD_BEEF_CAFE_F00D, 1] {
            run_model(seed, 10_000);
        }
    }

    fn run_model(seed: u64, ops: usize) {
        let mut rng = Rng(seed);
        let mut w = wheel();
        let mut model: Vec<(u64, u32)> = Vec::new();
        let mut fired_ids: HashSet<u32> = HashSet::new();
        let mut fired_log: Vec<(u64, u32)> = Vec::new();
        let mut next_id = 0u32;
        let mut fired = Vec::new();

        for op in 0..ops {
            let current = w.current_tick();
            match rng.below(10) {
                0..=4 => {
                    // One insert in eight is overdue, to exercise clamping.
                    let deadline = if rng.below(8) == 0 {
                        current.saturating_sub(rng.below(2 * SLOTS))
                    } else {
                        current + rng.below(3 * SLOTS)
                    };
                    w.insert(deadline, next_id);
                    model.push((deadline, next_id));
                    next_id += 1;
                }
                5..=6 => {
                    if !model.is_empty() && rng.below(4) != 0 {
                        let i = rng.below(model.len() as u64) as usize;
                        let (deadline, id) = model.swap_remove(i);
                        assert_eq!(w.remove(deadline, |&v| v == id), Some(id), "op {op}");
                    } else if !fired_log.is_empty() && rng.below(2) == 0 {
                        let i = rng.below(fired_log.len() as u64) as usize;
                        let (deadline, id) = fired_log[i];
                        assert_eq!(w.remove(deadline, |&v| v == id), None, "op {op}");
                    } else {
                        let deadline = current + rng.below(3 * SLOTS);
                        assert_eq!(w.remove(deadline, |&v| v == u32::MAX), None);
                    }
                }
                _ => {
                    // by == 0 yields current - 1: the backwards no-op case.
                    let now = (current + rng.below(3 * SLOTS)).saturating_sub(1);
                    fired.clear();
                    w.advance(now, &mut fired);
                    if now < current {
                        assert!(fired.is_empty(), "op {op}");
                        assert_eq!(w.current_tick(), current);
                    } else {
                        assert_eq!(w.current_tick(), now + 1);
                    }
                    for &id in &fired {
                        assert!(fired_ids.insert(id), "id {id} fired twice (op {op})");
                        let i = model
                            .iter()
                            .position(|&(_, m)| m == id)
                            .expect("fired id not scheduled");
                        let (deadline, _) = model.swap_remove(i);
                        assert!(deadline <= now, "id {id} fired early: {deadline} > {now}");
                        fired_log.push((deadline, id));
                    }
                    if now >= current {
                        assert!(
                            model.iter().all(|&(d, _)| d > now),
                            "due entry left (op {op})"
                        );
                    }
                }
            }

            assert_eq!(w.len(), model.len(), "op {op}");
            assert_eq!(w.is_empty(), model.is_empty());
            let current = w.current_tick();
            match (w.next_wakeup(), model.iter().map(|&(d, _)| d).min()) {
                (None, None) => {}
                (Some(wake), Some(earliest)) => {
                    let due = earliest.max(current);
                    // Early is allowed (a removal or a later-revolution
                    // slot leaves the cached hint early); late never is.
                    assert!(wake >= current && wake <= due, "op {op}: {wake} vs {due}");
                }
                other => panic!("op {op}: next_wakeup/model disagree: {other:?}"),
            }
        }
        assert!(
            !fired_ids.is_empty() && next_id > 1000,
            "the model test did little"
        );
    }

    const TICK: Duration = Duration::from_millis(10);
    const NS: Duration = Duration::from_nanos(1);

    fn clock() -> (Instant, TickClock) {
        // Offset from now so instants before the origin are representable.
        let origin = Instant::now() + Duration::from_secs(60);
        (origin, TickClock::new(origin, TICK))
    }

    // floor and ceil agree on tick boundaries and differ by one just past them.
    #[test]
    fn clock_floor_ceil_at_boundaries() {
        let (origin, c) = clock();
        assert_eq!((c.floor(origin), c.ceil(origin)), (0, 0));
        assert_eq!((c.floor(origin + NS), c.ceil(origin + NS)), (0, 1));
        assert_eq!(
            (c.floor(origin + TICK - NS), c.ceil(origin + TICK - NS)),
            (0, 1)
        );
        assert_eq!((c.floor(origin + TICK), c.ceil(origin + TICK)), (1, 1));
        assert_eq!(
            (c.floor(origin + TICK + NS), c.ceil(origin + TICK + NS)),
            (1, 2)
        );
        assert_eq!(
            (
                c.floor(origin + TICK * 7 / 2),
                c.ceil(origin + TICK * 7 / 2)
            ),
            (3, 4)
        );
    }

    // Instants before the origin count as tick 0 for both roundings.
    #[test]
    fn clock_before_origin_is_zero() {
        let (origin, c) = clock();
        assert_eq!(c.floor(origin - NS), 0);
        assert_eq!(c.ceil(origin - NS), 0);
        assert_eq!(c.floor(origin - TICK * 5), 0);
        assert_eq!(c.ceil(origin - TICK * 5), 0);
    }

    // ceil never rounds below floor, and the tick it picks never starts before the instant.
    #[test]
    fn clock_ceil_is_never_early() {
        let (origin, c) = clock();
        let step = Duration::from_nanos(1_234_567);
        for i in 0..500u32 {
            let at = origin - TICK * 3 + step * i;
            let (lo, hi) = (c.floor(at), c.ceil(at));
            assert!(hi >= lo && hi - lo <= 1, "{i}: floor {lo} ceil {hi}");
            assert!(
                c.instant_of(hi) >= at,
                "{i}: tick {hi} starts before the instant"
            );
            if at >= origin {
                assert!(
                    c.instant_of(lo) <= at,
                    "{i}: tick {lo} starts after the instant"
                );
            }
        }
    }

    // instant_of is the start of the tick: floor maps it back, and it saturates instead of panicking.
    #[test]
    fn clock_instant_of() {
        let (origin, c) = clock();
        assert_eq!(c.instant_of(0), origin);
        assert_eq!(c.instant_of(3), origin + TICK * 3);
        for t in [0, 1, 2, 99, 1 << 20] {
            assert_eq!(c.floor(c.instant_of(t)), t);
            assert_eq!(c.ceil(c.instant_of(t)), t);
        }
        let far = c.instant_of(u64::MAX);
        assert!(far >= c.instant_of(1 << 40));
        let huge = TickClock::new(origin, Duration::MAX);
        assert!(huge.instant_of(u64::MAX) >= huge.instant_of(1));
    }

    // A deadline is the first tick starting at or after `since + timeout`.
    #[test]
    fn clock_deadline_rounds_up() {
        let (origin, c) = clock();
        assert_eq!(c.deadline(origin, Duration::ZERO), 0);
        assert_eq!(c.deadline(origin, NS), 1);
        assert_eq!(c.deadline(origin, TICK), 1);
        assert_eq!(c.deadline(origin + NS, TICK), 2);
        assert_eq!(c.deadline(origin, TICK + NS), 2);
        assert_eq!(c.deadline(origin, Duration::from_secs(30)), 3000);
    }

    // A fired timer closes once the timeout has passed since the last
    // activity, and re-arms at the deadline before that.
    #[test]
    fn expiry_closes_or_rearms() {
        let (origin, c) = clock();
        let idle = TICK * 5 + NS;
        assert_eq!(c.expiry(origin, idle, 5), Expiry::Rearm(6));
        assert_eq!(c.expiry(origin, idle, 6), Expiry::Close);
        assert_eq!(c.expiry(origin, idle, 60), Expiry::Close);
        // Activity since arming moves the deadline.
        assert_eq!(c.expiry(origin + TICK * 3, idle, 6), Expiry::Rearm(9));
        assert_eq!(c.expiry(origin + TICK * 3, TICK * 5, 8), Expiry::Close);
    }

    // A zero tick length is rejected up front.
    #[test]
    #[should_panic(expected = "non-zero")]
    fn clock_zero_tick_panics() {
        let _ = TickClock::new(Instant::now(), Duration::ZERO);
    }

    // End to end: a timer armed at `deadline` and judged by `expiry` on the
    // floor of the clock never closes early and is under a tick late.
    #[test]
    fn idle_timeout_never_early_at_most_one_tick_late() {
        let (origin, c) = clock();
        let idle = TICK * 50;
        let step = Duration::from_nanos(3_333_337);
        for i in 0..200u32 {
            let activity = origin + step * i;
            let deadline = c.deadline(activity, idle);
            let mut w = wheel();
            w.insert(deadline, i);
            let due_at = c.instant_of(deadline);
            assert!(due_at >= activity + idle, "{i}: would fire early");
            assert!(due_at < activity + idle + TICK, "{i}: over a tick late");
            assert_eq!(fire(&mut w, c.floor(due_at - NS)), Vec::<u32>::new());
            assert_eq!(fire(&mut w, c.floor(due_at)), vec![i]);
            assert_eq!(c.expiry(activity, idle, c.floor(due_at)), Expiry::Close);
            assert_eq!(
                c.expiry(activity, idle, c.floor(due_at - NS)),
                Expiry::Rearm(deadline)
            );
        }
    }
}
