//! How a mode benchmark ends: framed's last replies, the half-close, and
//! discard's FIN for FIN.

use std::net::Shutdown;
use std::time::{Duration, Instant};

use mio::{Events, Poll};

use super::super::{Counters, ModeBench};
use super::turn::{turn_all, Pass};
use super::Conn;
use crate::client::error::ClientError;
use crate::client::modes::ServiceMode;
use crate::os::signal::StopSignals;

/// After the window: framed waits for the replies still due; then every
/// connection half-closes and, for discard, the server's FIN must follow.
pub(super) fn finish(
    cfg: &ModeBench,
    poll: &mut Poll,
    events: &mut Events,
    signals: &mut StopSignals,
    conns: &mut [Conn],
    counters: &mut Counters,
    scratch: &mut [u8],
) -> Result<(), ClientError> {
    let mut l = Looper {
        poll,
        events,
        signals,
        counters,
        scratch,
    };
    let drained = l.turn_until(conns, cfg.timeout, |conns| {
        if conns.iter().any(|c| c.closed && c.driver.awaiting()) {
            return Err(ClientError::ServiceClosed {
                mode: cfg.mode.name(),
                reset: false,
            });
        }
        Ok(!conns.iter().any(|c| c.driver.awaiting() && !c.closed))
    })?;
    if !drained {
        return Err(ClientError::DrainTimeout {
            connections: conns.iter().filter(|c| c.driver.awaiting()).count(),
            bytes: 0,
            after: cfg.timeout,
        });
    }
    for c in conns.iter_mut() {
        // A server that closed first makes this fail; nothing is lost.
        let _ = c.stream.shutdown(Shutdown::Write);
    }
    if cfg.mode != ServiceMode::Discard {
        return Ok(());
    }
    if !l.turn_until(conns, cfg.timeout, |conns| {
        Ok(conns.iter().all(|c| c.closed))
    })? {
        return Err(ClientError::NoFin {
            connections: conns.iter().filter(|c| !c.closed).count(),
            after: cfg.timeout,
        });
    }
    Ok(())
}

/// The loop's parts, for the end's waits.
struct Looper<'a> {
    poll: &'a mut Poll,
    events: &'a mut Events,
    signals: &'a mut StopSignals,
    counters: &'a mut Counters,
    scratch: &'a mut [u8],
}

impl Looper<'_> {
    /// Turns the connections (sending over) until `done` says so, or
    /// `timeout` passes (`Ok(false)`).
    fn turn_until(
        &mut self,
        conns: &mut [Conn],
        timeout: Duration,
        done: impl Fn(&[Conn]) -> Result<bool, ClientError>,
    ) -> Result<bool, ClientError> {
        let deadline = Instant::now() + timeout;
        let mut again: Vec<usize> = (0..conns.len()).collect();
        while !done(conns)? {
            let now = Instant::now();
            if now >= deadline {
                return Ok(false);
            }
            let wait = if again.is_empty() {
                deadline - now
            } else {
                Duration::ZERO
            };
            if let Pass::Interrupted = turn_all(
                self.poll,
                self.events,
                self.signals,
                conns,
                &mut again,
                Some(wait),
                false,
                self.counters,
                self.scratch,
            )? {
                return Err(ClientError::Interrupted);
            }
        }
        Ok(true)
    }
}
