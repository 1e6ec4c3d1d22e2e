//! The probes' event loop: one `Poll`, at most `concurrency` probes in
//! flight, each with its own deadline; no new probe starts once the total
//! time is up, and Ctrl+C ends the run with what it has.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use mio::event::Source;
use mio::{Events, Interest, Poll, Token};

use super::classify::Outcome;
use crate::client::error::ClientError;
use crate::os::signal::StopSignals;

const SIGNALS: Token = Token(usize::MAX);

/// What a probe does next.
#[derive(Debug)]
pub(super) enum Step {
    /// Wait for its socket, or until this deadline.
    Wait(Instant),
    /// Its port's answer.
    Done(Outcome),
}

/// One port's probe in flight.
pub(super) trait PortProbe {
    /// The socket, registered in the poll while the probe runs.
    fn source(&mut self) -> &mut dyn Source;
    /// The socket may be ready (edge-triggered: do all there is to do).
    fn ready(&mut self, now: Instant) -> Step;
    /// The deadline it last asked for has passed.
    fn expired(&mut self, now: Instant) -> Step;
}

/// Starts a probe of one address: the probe and its first deadline, or
/// the port's answer already (a connect that failed at once).
pub(super) type Start<'a> =
    dyn FnMut(SocketAddr, Instant) -> Result<(Box<dyn PortProbe>, Instant), Outcome> + 'a;

struct Active {
    index: usize,
    probe: Box<dyn PortProbe>,
    deadline: Instant,
}

/// Every address's outcome, in the order given ([`Outcome::NotProbed`]
/// for those the time or Ctrl+C left), and whether Ctrl+C came.
pub(super) fn run(
    addrs: &[SocketAddr],
    concurrency: usize,
    max_time: Duration,
    start: &mut Start<'_>,
) -> Result<(Vec<Outcome>, bool), ClientError> {
    let setup =
        |e: std::io::Error| ClientError::Other(format!("cannot set up the event loop: {e}"));
    let mut poll = Poll::new().map_err(setup)?;
    let mut signals = StopSignals::install().map_err(setup)?;
    signals.register(poll.registry(), SIGNALS).map_err(setup)?;
    let mut events = Events::with_capacity(256);
    let mut flight = Flight {
        slots: (0..concurrency).map(|_| None).collect(),
        outcomes: vec![Outcome::NotProbed; addrs.len()],
        active: 0,
    };
    let mut next = 0;
    let end = Instant::now() + max_time;
    let mut interrupted = false;
    loop {
        let now = Instant::now();
        while next < addrs.len() && now < end {
            let Some(slot) = flight.slots.iter().position(Option::is_none) else {
                break;
            };
            let index = next;
            next += 1;
            match start(addrs[index], now) {
                Ok((mut probe, deadline)) => {
                    if let Err(e) = poll.registry().register(
                        probe.source(),
                        Token(slot),
                        Interest::READABLE | Interest::WRITABLE,
                    ) {
                        flight.outcomes[index] = Outcome::Error(format!("cannot register: {e}"));
                        continue;
                    }
                    flight.slots[slot] = Some(Active {
                        index,
                        probe,
                        deadline,
                    });
                    flight.active += 1;
                }
                Err(outcome) => flight.outcomes[index] = outcome,
            }
        }
        if flight.active == 0 && (next == addrs.len() || now >= end) {
            break;
        }
        let earliest = flight
            .slots
            .iter()
            .flatten()
            .map(|a| a.deadline)
            .min()
            .map_or(end, |d| if next < addrs.len() { d.min(end) } else { d });
        match poll.poll(&mut events, Some(earliest.saturating_duration_since(now))) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(ClientError::Other(format!("poll failed: {e}"))),
        }
        let now = Instant::now();
        for event in events.iter() {
            if signals.take(SIGNALS, event.token()).is_some() {
                interrupted = true;
                continue;
            }
            let slot = event.token().0;
            let Some(a) = flight.slots.get_mut(slot).and_then(Option::as_mut) else {
                continue;
            };
            let step = a.probe.ready(now);
            flight.settle(&poll, slot, step);
        }
        if interrupted {
            break;
        }
        for slot in 0..flight.slots.len() {
            let step = match flight.slots[slot].as_mut() {
                Some(a) if a.deadline <= now => a.probe.expired(now),
                _ => continue,
            };
            flight.settle(&poll, slot, step);
        }
    }
    Ok((flight.outcomes, interrupted))
}

/// The probes in flight and the answers so far.
struct Flight {
    slots: Vec<Option<Active>>,
    outcomes: Vec<Outcome>,
    active: usize,
}

impl Flight {
    /// Applies a probe's step: a new deadline, or its answer and its end.
    fn settle(&mut self, poll: &Poll, slot: usize, step: Step) {
        match step {
            Step::Wait(deadline) => {
                if let Some(a) = self.slots[slot].as_mut() {
                    a.deadline = deadline;
                }
            }
            Step::Done(outcome) => {
                if let Some(mut a) = self.slots[slot].take() {
                    // Closing the descriptor would remove it from epoll
                    // too; a failed deregister changes nothing for the run.
                    let _ = poll.registry().deregister(a.probe.source());
                    self.outcomes[a.index] = outcome;
                    self.active -= 1;
                }
            }
        }
    }
}
