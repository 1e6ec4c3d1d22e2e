//! Waiting for readiness: spin on a non-blocking poll while traffic is
//! dense, then sleep (see [`crate::logic::busy_poll`] for why and when).

use std::io::{self, ErrorKind};
use std::time::{Duration, Instant};

use mio::{Events, Poll};

use crate::logic::busy_poll::BusyPoll;

/// Fills `events` with what is ready, waiting at most `timeout` (`None`:
/// until something is) from `began`, and returns when the wait ended. The
/// first part of the wait may be spent polling without sleeping, as `busy`
/// allows; how the wait went is then fed back to `busy`.
pub(super) fn wait_for_events(
    poll: &mut Poll,
    events: &mut Events,
    timeout: Option<Duration>,
    busy: &mut BusyPoll,
    began: Instant,
) -> io::Result<Instant> {
    // A poll told not to wait (connections queued to resume) is no wait:
    // it says nothing about how soon the peers send.
    if timeout == Some(Duration::ZERO) {
        poll_once(poll, events, timeout)?;
        return Ok(Instant::now());
    }
    let spin = busy.spin_for(timeout, began);
    let mut now = began;
    if !spin.is_zero() {
        let until = began + spin;
        loop {
            poll_once(poll, events, Some(Duration::ZERO))?;
            now = Instant::now();
            if !events.is_empty() {
                busy.record(now - began, true);
                return Ok(now);
            }
            if now >= until {
                break;
            }
        }
    }
    let rest = timeout.map(|timeout| timeout.saturating_sub(now - began));
    poll_once(poll, events, rest)?;
    let now = Instant::now();
    busy.record(now - began, !events.is_empty());
    Ok(now)
}

/// One `epoll_wait`. A signal that interrupts it leaves its pipe readable,
/// so the next poll sees it; until then the batch is simply empty.
fn poll_once(poll: &mut Poll, events: &mut Events, timeout: Option<Duration>) -> io::Result<()> {
    match poll.poll(events, timeout) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == ErrorKind::Interrupted => {
            events.clear();
            Ok(())
        }
        Err(e) => Err(e),
    }
}
