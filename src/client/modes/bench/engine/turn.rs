//! One pass of the loop: wait for the poll (or Ctrl+C), then give each
//! ready connection its turn.

use std::io;
use std::time::Duration;

use mio::{Events, Poll};

use super::super::{Counters, Step};
use super::{Conn, SIGNALS};
use crate::client::error::ClientError;
use crate::os::signal::StopSignals;

pub(super) enum Pass {
    Going,
    Interrupted,
}

pub(super) fn wait(
    poll: &mut Poll,
    events: &mut Events,
    signals: &mut StopSignals,
    timeout: Option<Duration>,
) -> Result<Pass, ClientError> {
    match poll.poll(events, timeout) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::Interrupted => return Ok(Pass::Going),
        Err(e) => return Err(ClientError::Other(format!("poll failed: {e}"))),
    }
    let mut signalled = false;
    for event in events.iter() {
        if signals.take(SIGNALS, event.token()).is_some() {
            signalled = true;
        }
    }
    Ok(if signalled {
        Pass::Interrupted
    } else {
        Pass::Going
    })
}

/// One pass: waits up to `timeout`, then turns every connection the poll
/// reported and every one left in `again`.
#[allow(clippy::too_many_arguments)]
pub(super) fn turn_all(
    poll: &mut Poll,
    events: &mut Events,
    signals: &mut StopSignals,
    conns: &mut [Conn],
    again: &mut Vec<usize>,
    timeout: Option<Duration>,
    sending: bool,
    counters: &mut Counters,
    scratch: &mut [u8],
) -> Result<Pass, ClientError> {
    if let Pass::Interrupted = wait(poll, events, signals, timeout)? {
        return Ok(Pass::Interrupted);
    }
    let mut turn: Vec<usize> = std::mem::take(again);
    for i in &turn {
        conns[*i].ready = true;
    }
    for event in events.iter() {
        let i = event.token().0;
        if let Some(c) = conns.get_mut(i) {
            if !c.ready {
                c.ready = true;
                turn.push(i);
            }
        }
    }
    for i in turn {
        let c = &mut conns[i];
        c.ready = false;
        if c.closed {
            continue;
        }
        match c.driver.turn(&mut c.stream, scratch, sending, counters)? {
            Step::Wait => {}
            Step::Again => again.push(i),
            Step::Closed => c.closed = true,
        }
    }
    Ok(Pass::Going)
}
