//! A wake-up for the bench loop at an exact instant, finer than `poll`'s
//! timeout allows.
//!
//! `epoll_wait` counts its timeout in whole milliseconds and mio rounds up,
//! so a `--rate` message falling due 0.2 ms from now would be sent up to
//! 0.8 ms late. Open-loop latency is measured from the intended send time,
//! so that lateness would be reported as the server's: at 1,000 msgs/s the
//! median came out near 0.5 ms for a server that answers in 0.06 ms. A
//! timerfd is armed in nanoseconds (and, unlike `epoll_wait`, without
//! timer slack) and wakes the same `Poll` as the sockets.

use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::time::{Duration, Instant};

use mio::unix::SourceFd;
use mio::{Interest, Registry, Token};
use rustix::time::{
    timerfd_create, timerfd_settime, Itimerspec, TimerfdClockId, TimerfdFlags, TimerfdTimerFlags,
    Timespec,
};

/// A one-shot timer registered in a `Poll`; its token is reported when the
/// instant it was armed for has come.
#[derive(Debug)]
pub struct PreciseWake {
    fd: OwnedFd,
    /// The instant armed and not yet reported, so an unchanged deadline
    /// costs no system call.
    armed: Option<Instant>,
}

impl PreciseWake {
    /// A disarmed timer, registered with `registry` under `token`.
    pub fn new(registry: &Registry, token: Token) -> io::Result<Self> {
        let fd = timerfd_create(
            TimerfdClockId::Monotonic,
            TimerfdFlags::NONBLOCK | TimerfdFlags::CLOEXEC,
        )?;
        registry.register(&mut SourceFd(&fd.as_raw_fd()), token, Interest::READABLE)?;
        Ok(Self { fd, armed: None })
    }

    /// Makes the token come up at `at` (seen from `now`), replacing any
    /// earlier arming. An instant already past fires at once.
    pub fn arm(&mut self, at: Instant, now: Instant) -> io::Result<()> {
        if self.armed == Some(at) {
            return Ok(());
        }
        // Relative to now: `Instant` does not expose its clock reading. A
        // zero value would disarm the timer instead, hence at least 1 ns.
        let after = at
            .saturating_duration_since(now)
            .max(Duration::from_nanos(1));
        let spec = Itimerspec {
            it_interval: Timespec {
                tv_sec: 0,
                tv_nsec: 0,
            },
            it_value: Timespec {
                tv_sec: i64::try_from(after.as_secs()).unwrap_or(i64::MAX),
                tv_nsec: i64::from(after.subsec_nanos()),
            },
        };
        timerfd_settime(&self.fd, TimerfdTimerFlags::empty(), &spec)?;
        self.armed = Some(at);
        Ok(())
    }

    /// Takes note that the token was reported: the expiry is read off (a
    /// timerfd stays readable until then) and the next `arm` sets the timer
    /// again even for the same instant.
    pub fn fired(&mut self) {
        let mut expirations = [0u8; 8];
        // WouldBlock only means a re-arm already cleared it; nothing else
        // can fail on a valid timerfd with an 8-byte buffer.
        let _ = rustix::io::read(&self.fd, &mut expirations);
        self.armed = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mio::{Events, Poll};

    const WAKE: Token = Token(7);

    fn woken_within(poll: &mut Poll, wait: Duration) -> bool {
        let mut events = Events::with_capacity(4);
        let until = Instant::now() + wait;
        loop {
            let left = until.saturating_duration_since(Instant::now());
            if let Err(e) = poll.poll(&mut events, Some(left)) {
                assert_eq!(e.kind(), io::ErrorKind::Interrupted, "{e}");
            }
            if events.iter().any(|e| e.token() == WAKE) {
                return true;
            }
            if left.is_zero() {
                return false;
            }
        }
    }

    #[test]
    fn wakes_the_poll_at_the_instant_armed_and_not_before() {
        let mut poll = Poll::new().unwrap();
        let mut wake = PreciseWake::new(poll.registry(), WAKE).unwrap();
        let now = Instant::now();
        let at = now + Duration::from_millis(30);
        wake.arm(at, now).unwrap();
        assert!(woken_within(&mut poll, Duration::from_secs(5)));
        assert!(Instant::now() >= at, "woke before the instant armed");
        wake.fired();
        // Nothing armed: no further wake-up.
        assert!(!woken_within(&mut poll, Duration::from_millis(50)));
    }

    #[test]
    fn rearming_replaces_the_earlier_instant_and_a_past_one_fires_at_once() {
        let mut poll = Poll::new().unwrap();
        let mut wake = PreciseWake::new(poll.registry(), WAKE).unwrap();
        let now = Instant::now();
        wake.arm(now + Duration::from_secs(3600), now).unwrap();
        assert!(!woken_within(&mut poll, Duration::from_millis(20)));
        let later = Instant::now();
        wake.arm(later - Duration::from_millis(1), later).unwrap();
        assert!(woken_within(&mut poll, Duration::from_secs(5)));
        wake.fired();
        // Armed again for the same instant after firing: it fires again.
        let again = Instant::now();
        wake.arm(later - Duration::from_millis(1), again).unwrap();
        assert!(woken_within(&mut poll, Duration::from_secs(5)));
    }
}
