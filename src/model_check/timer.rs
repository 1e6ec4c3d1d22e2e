//! The idle-timer wheel and tick clock, driven the way the server's loop
//! drives them, against a brute-force list of deadlines.
//!
//! Test and fuzz code only (never shipped); a little over 400 lines because
//! the script, the brute-force reference and the checks share one state.
//!
//! The script opens connections (arming `ceil(now + idle)`), moves bytes
//! on them (only `last_active` changes, as in the server), closes them
//! (removing their entry), lets time pass the way `poll` would (never past
//! the wheel's [`next_wakeup`](crate::logic::timer::TimerWheel::next_wakeup), at
//! sub-tick resolution, landing exactly on tick boundaries or a nanosecond
//! before them), pauses the whole process for long stretches (many
//! revolutions), and inserts bare entries at arbitrary ticks, past ones
//! included. After each loop step, which does what `Server::expire_idle`
//! does (advance to `floor(now)`, then ask [`TickClock::expiry`], the
//! server's own rule, whether to close each fired connection or re-arm it
//! at `ceil(last_active + idle)`), it checks:
//! - never early: nothing fires before its deadline tick, and no connection
//!   is closed before `idle` has passed since its last activity;
//! - at most one tick late: unless the process was paused, a connection is
//!   closed less than one tick after `last_active + idle`;
//! - nothing lost: after a step, no live entry is due and no open
//!   connection is overdue; every open connection has exactly one entry;
//! - nothing fired twice, and `remove` finds an entry exactly while it is
//!   live;
//! - `next_wakeup` is present exactly when entries are, and never later
//!   than the earliest one.

use std::time::{Duration, Instant};

use super::{Input, Violation};
use crate::logic::timer::{Expiry, TickClock, TimerWheel};
use crate::server::TICK;

/// Operations decoded from one input at most.
const MAX_STEPS: usize = 4096;
/// Connections one script may open; ids above this are bare entries.
const MAX_CONNECTIONS: usize = 256;
/// Bare entries are told apart from connections by this bit of the id.
const BARE: u32 = 1 << 31;
const OPS: u8 = 9;

/// What one script did, for tests that check a corpus covers the ground.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TimerRun {
    /// Connections closed by their idle timer.
    pub idle_closes: usize,
    /// Timers that fired on a connection that had been active, and were
    /// armed again.
    pub rearms: usize,
    /// Long pauses taken.
    pub pauses: usize,
    /// Bare entries that fired.
    pub bare_fired: usize,
}

#[derive(Debug)]
struct Connection {
    /// Nanoseconds since the origin of the last byte moved.
    last_active: u64,
    /// Deadline tick of its entry while one is armed.
    timer: Option<u64>,
    open: bool,
}

#[derive(Debug)]
struct Bare {
    deadline: u64,
    /// The wheel's current tick when it was inserted: an advance below it
    /// moves nothing, so the entry fires on the first advance to a tick at
    /// or past both.
    inserted_at: u64,
    live: bool,
}

/// Runs the script in `data` against [`TimerWheel`] and [`TickClock`]; see
/// the module docs for what is checked.
pub fn check_timer(data: &[u8]) -> Result<TimerRun, Violation> {
    let mut input = Input::new(data);
    // The server uses 9 bits; fewer give more collisions and revolutions.
    let slot_bits = 1 + input.below(9) as u32;
    // Milliseconds, deliberately not whole ticks, up to about two minutes:
    // several revolutions of even the largest wheel.
    let idle = Duration::from_millis(1 + u64::from(input.u16()) * 2);
    let mut model = Model {
        origin: Instant::now(),
        clock: None,
        idle,
        wheel: TimerWheel::new(slot_bits),
        now: 0,
        connections: Vec::new(),
        bare: Vec::new(),
        run: TimerRun::default(),
        step: 0,
        fired: Vec::new(),
    };
    model.clock = Some(TickClock::new(model.origin, TICK));
    model.check_state()?;
    while !input.is_empty() && model.step < MAX_STEPS {
        model.step += 1;
        model.apply(&mut input)?;
    }
    // Finally let every remaining timer run out, the way the loop would
    // sleep from wake-up to wake-up, and close every connection.
    model.step += 1;
    // A wake-up hint may be early by whole revolutions for far deadlines
    // (by design: one glance per revolution), so the bound counts them.
    let farthest = model
        .connections
        .iter()
        .map(|c| model.due_tick(c))
        .chain(model.bare.iter().map(|b| b.deadline))
        .max()
        .unwrap_or(0)
        .saturating_sub(model.wheel.current_tick());
    let entries = model.connections.len() + model.bare.len();
    let wakeups = ((farthest >> slot_bits) as usize + 2) * (entries + 2) + 16;
    for _ in 0..wakeups {
        let Some(wake) = model.wheel.next_wakeup() else {
            break;
        };
        model.now = model.now.max(model.nanos_of(wake));
        model.loop_step(false)?;
    }
    if !model.wheel.is_empty() {
        return Err(model.fail("entries still scheduled after sleeping through every wake-up"));
    }
    if let Some(i) = model.connections.iter().position(|c| c.open) {
        return Err(model.fail(format!("connection {i} never timed out")));
    }
    Ok(model.run)
}

struct Model {
    origin: Instant,
    clock: Option<TickClock>,
    idle: Duration,
    wheel: TimerWheel<u32>,
    /// Nanoseconds since `origin`.
    now: u64,
    connections: Vec<Connection>,
    bare: Vec<Bare>,
    run: TimerRun,
    step: usize,
    fired: Vec<u32>,
}

impl Model {
    fn fail(&self, message: impl Into<String>) -> Violation {
        Violation::new(self.step, format!("at {} ns: {}", self.now, message.into()))
    }

    fn clock(&self) -> &TickClock {
        self.clock.as_ref().expect("clock set at start")
    }

    fn instant(&self, nanos: u64) -> Instant {
        self.origin + Duration::from_nanos(nanos)
    }

    fn nanos_of(&self, tick: u64) -> u64 {
        let at = self.clock().instant_of(tick);
        u64::try_from(at.duration_since(self.origin).as_nanos()).unwrap_or(u64::MAX)
    }

    fn idle_nanos(&self) -> u64 {
        self.idle.as_nanos() as u64
    }

    /// The tick at which the server would consider this connection idle.
    fn due_tick(&self, conn: &Connection) -> u64 {
        self.clock()
            .deadline(self.instant(conn.last_active), self.idle)
    }

    fn pick_open(&self, input: &mut Input<'_>) -> Option<usize> {
        let open: Vec<usize> = (0..self.connections.len())
            .filter(|&i| self.connections[i].open)
            .collect();
        (!open.is_empty()).then(|| open[input.below(open.len())])
    }

    fn apply(&mut self, input: &mut Input<'_>) -> Result<(), Violation> {
        match input.byte() % OPS {
            // Accept: arm the idle timer at ceil(now + idle), as `admit` does.
            0 if self.connections.len() < MAX_CONNECTIONS => {
                let deadline = self.clock().deadline(self.instant(self.now), self.idle);
                let id = self.connections.len() as u32;
                self.wheel.insert(deadline, id);
                self.connections.push(Connection {
                    last_active: self.now,
                    timer: Some(deadline),
                    open: true,
                });
            }
            // Bytes moved: only last_active changes.
            1 => {
                if let Some(i) = self.pick_open(input) {
                    self.connections[i].last_active = self.now;
                }
            }
            // The peer closed: the entry is removed with the deadline stored.
            2 => {
                if let Some(i) = self.pick_open(input) {
                    let deadline = self.connections[i]
                        .timer
                        .take()
                        .ok_or_else(|| self.fail(format!("open connection {i} has no timer")))?;
                    if self.wheel.remove(deadline, |&v| v == i as u32) != Some(i as u32) {
                        return Err(
                            self.fail(format!("remove({deadline}) missed live connection {i}"))
                        );
                    }
                    self.connections[i].open = false;
                }
            }
            // Time passes as `poll` lets it: at most until the next wake-up.
            3 | 4 => {
                let sleep = u64::from(input.u16()) * 100_000 + u64::from(input.byte());
                self.sleep_bounded(sleep);
                self.loop_step(false)?;
            }
            // Wake exactly at the next wake-up tick, or a nanosecond or two
            // before it: the boundaries where rounding errors would show.
            5 => {
                if let Some(wake) = self.wheel.next_wakeup() {
                    let at = self
                        .nanos_of(wake)
                        .saturating_sub(u64::from(input.byte() % 3));
                    self.now = self.now.max(at);
                }
                self.loop_step(false)?;
            }
            // The whole process stops (SIGSTOP, a suspended VM) for up to
            // about 11 minutes, far past the poll timeout.
            6 => {
                self.now += u64::from(input.u16()) * 10_000_000 + u64::from(input.byte());
                self.run.pauses += 1;
                self.loop_step(true)?;
            }
            // A bare entry at any tick within a few revolutions, past ones too.
            7 => {
                let current = self.wheel.current_tick();
                let offset = i64::from(input.u16() % 4096) - 1024;
                let deadline = current.saturating_add_signed(offset);
                let id = BARE | self.bare.len() as u32;
                self.wheel.insert(deadline, id);
                self.bare.push(Bare {
                    deadline,
                    inserted_at: current,
                    live: true,
                });
            }
            // Remove a bare entry: found exactly while it has not fired, and
            // never under a different deadline.
            8 if !self.bare.is_empty() => {
                let j = input.below(self.bare.len());
                let id = BARE | j as u32;
                let deadline = self.bare[j].deadline;
                if self
                    .wheel
                    .remove(deadline.wrapping_add(1), |&v| v == id)
                    .is_some()
                {
                    return Err(self.fail(format!("bare entry {j} removed under a wrong deadline")));
                }
                let found = self.wheel.remove(deadline, |&v| v == id).is_some();
                if found != self.bare[j].live {
                    return Err(self.fail(format!(
                        "remove of bare entry {j} found it: {found}, live: {}",
                        self.bare[j].live
                    )));
                }
                self.bare[j].live = false;
            }
            _ => {}
        }
        self.check_state()
    }

    /// `poll` returns at the earlier of the requested sleep and the wheel's
    /// next wake-up (never later than that; possibly at once when overdue).
    fn sleep_bounded(&mut self, sleep: u64) {
        let mut target = self.now.saturating_add(sleep);
        if let Some(wake) = self.wheel.next_wakeup() {
            target = target.min(self.nanos_of(wake).max(self.now));
        }
        self.now = target;
    }

    /// One pass of the server loop's idle handling at `self.now`.
    fn loop_step(&mut self, paused: bool) -> Result<(), Violation> {
        let tick = self.clock().floor(self.instant(self.now));
        let before = self.wheel.current_tick();
        let mut fired = std::mem::take(&mut self.fired);
        fired.clear();
        self.wheel.advance(tick, &mut fired);
        if tick < before && !fired.is_empty() {
            return Err(self.fail(format!("advance({tick}) below current {before} fired")));
        }
        for &id in &fired {
            if id & BARE != 0 {
                self.bare_fired(id & !BARE, tick)?;
            } else {
                self.connection_fired(id as usize, tick, paused)?;
            }
        }
        self.fired = fired;
        // Nothing lost: after an advance to `tick`, nothing due is left.
        if tick >= before {
            for (j, b) in self.bare.iter().enumerate() {
                if b.live && b.deadline <= tick {
                    return Err(self.fail(format!(
                        "bare entry {j} due at {} still scheduled after advance({tick})",
                        b.deadline
                    )));
                }
            }
        }
        for (i, conn) in self.connections.iter().enumerate() {
            if conn.open && self.due_tick(conn) <= tick.max(before.saturating_sub(1)) {
                return Err(self.fail(format!(
                    "connection {i} idle since {} ns is overdue at tick {tick} and still open",
                    conn.last_active
                )));
            }
        }
        self.check_state()
    }

    fn bare_fired(&mut self, j: u32, tick: u64) -> Result<(), Violation> {
        let Some(b) = self.bare.get_mut(j as usize) else {
            return Err(self.fail(format!("unknown bare entry {j} fired")));
        };
        if !b.live {
            return Err(self.fail(format!("bare entry {j} fired twice or after removal")));
        }
        if b.deadline > tick || b.inserted_at > tick {
            let deadline = b.deadline;
            return Err(self.fail(format!(
                "bare entry {j} due at {deadline} fired early at {tick}"
            )));
        }
        b.live = false;
        self.run.bare_fired += 1;
        Ok(())
    }

    /// One fired connection timer, decided as `Server::expire_idle` decides
    /// it, and checked against the model's own clock.
    fn connection_fired(&mut self, i: usize, tick: u64, paused: bool) -> Result<(), Violation> {
        let Some(conn) = self.connections.get(i) else {
            return Err(self.fail(format!("unknown connection {i} fired")));
        };
        if !conn.open {
            return Err(self.fail(format!("timer of closed connection {i} fired")));
        }
        let Some(deadline) = conn.timer else {
            return Err(self.fail(format!("connection {i} fired twice")));
        };
        if deadline > tick {
            return Err(self.fail(format!(
                "connection {i} due at {deadline} fired early at {tick}"
            )));
        }
        let idle_since = conn.last_active;
        match self
            .clock()
            .expiry(self.instant(idle_since), self.idle, tick)
        {
            Expiry::Close => {
                let idle_until = idle_since + self.idle_nanos();
                if self.now < idle_until {
                    return Err(self.fail(format!(
                        "connection {i} closed {} ns before its idle timeout",
                        idle_until - self.now
                    )));
                }
                let late = self.now - idle_until;
                if !paused && late >= TICK.as_nanos() as u64 {
                    return Err(self.fail(format!(
                        "connection {i} closed {late} ns after its idle timeout (more than a tick)"
                    )));
                }
                let conn = &mut self.connections[i];
                conn.timer = None;
                conn.open = false;
                self.run.idle_closes += 1;
            }
            Expiry::Rearm(due) => {
                if due <= tick {
                    return Err(self.fail(format!(
                        "connection {i} re-armed at {due}, not after the tick {tick} it fired at"
                    )));
                }
                self.wheel.insert(due, i as u32);
                self.connections[i].timer = Some(due);
                self.run.rearms += 1;
            }
        }
        Ok(())
    }

    fn check_state(&self) -> Result<(), Violation> {
        let open = self.connections.iter().filter(|c| c.open).count();
        let bare = self.bare.iter().filter(|b| b.live).count();
        if self.wheel.len() != open + bare {
            return Err(self.fail(format!(
                "wheel holds {} entries for {open} open connections and {bare} bare entries",
                self.wheel.len()
            )));
        }
        for (i, conn) in self.connections.iter().enumerate() {
            if conn.open != conn.timer.is_some() {
                return Err(self.fail(format!(
                    "connection {i}: open {} with timer {:?}",
                    conn.open, conn.timer
                )));
            }
            // Lazy re-arming relies on the entry never being later than the
            // activity-based deadline; activity only moves the latter.
            if let Some(deadline) = conn.timer {
                if deadline > self.due_tick(conn) {
                    return Err(self.fail(format!("connection {i} armed past its idle deadline")));
                }
            }
        }
        let current = self.wheel.current_tick();
        let earliest = self
            .connections
            .iter()
            .filter_map(|c| c.timer)
            .chain(self.bare.iter().filter(|b| b.live).map(|b| b.deadline))
            .map(|d| d.max(current))
            .min();
        match (self.wheel.next_wakeup(), earliest) {
            (None, None) => Ok(()),
            (Some(wake), Some(due)) if wake >= current && wake <= due => Ok(()),
            (wake, due) => Err(self.fail(format!(
                "next_wakeup {wake:?} with current tick {current} and earliest due {due:?}"
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model_check::Rng;

    // An empty script is a valid, trivially passing run.
    #[test]
    fn empty_script_passes() {
        assert_eq!(check_timer(&[]).unwrap(), TimerRun::default());
    }

    // One connection opened and left alone times out, on time.
    #[test]
    fn idle_connection_times_out() {
        // 512 slots, idle = 1 + 2 * 700 ms; open; then the final sleep-through.
        let run = check_timer(&[8, 0xBC, 0x02, 0]).unwrap();
        assert_eq!(run.idle_closes, 1);
    }

    // Generated scripts pass: stable CI explores beyond the corpus.
    #[test]
    fn generated_scripts_pass() {
        let mut rng = Rng(0x5151_7777_0101_2323);
        let mut total = TimerRun::default();
        for i in 0..1_500 {
            let len = (rng.next() % 200) as usize;
            let mut data = rng.bytes(len);
            // Mostly short idle timeouts, so scripts see closes and re-arms.
            if data.len() > 2 {
                data[2] = 0;
            }
            match check_timer(&data) {
                Ok(run) => {
                    total.idle_closes += run.idle_closes;
                    total.rearms += run.rearms;
                    total.pauses += run.pauses;
                    total.bare_fired += run.bare_fired;
                }
                Err(v) => panic!("script {i} {data:?}: {v}"),
            }
        }
        assert!(
            total.idle_closes > 100
                && total.rearms > 100
                && total.pauses > 100
                && total.bare_fired > 100,
            "{total:?}"
        );
    }
}
