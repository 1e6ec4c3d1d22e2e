//! One TCP port's probe: a non-blocking connect timed to its handshake,
//! then one payload written and its echo read back and checked.

use std::io::{ErrorKind, Read, Write};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use mio::event::Source;
use mio::net::TcpStream;

use super::classify::{echo, failed, Outcome};
use super::engine::{PortProbe, Step};
use crate::client::error::is_reset;
use crate::client::session::connect_outcome;

/// Read size: enough for the probe's echo and a sign of anything extra.
const READ: usize = 2048;

struct TcpProbe {
    stream: TcpStream,
    started: Instant,
    timeout: Duration,
    deadline: Instant,
    /// Set once the handshake completed.
    connect: Option<Duration>,
    echo_started: Instant,
    sent: Vec<u8>,
    written: usize,
    got: Vec<u8>,
}

/// Starts connecting to `addr`; the probe will send `payload`.
pub(super) fn start(
    addr: SocketAddr,
    payload: Vec<u8>,
    timeout: Duration,
    now: Instant,
) -> Result<(Box<dyn PortProbe>, Instant), Outcome> {
    let stream = TcpStream::connect(addr).map_err(|e| failed(&e, Duration::ZERO))?;
    let deadline = now + timeout;
    let probe = TcpProbe {
        stream,
        started: now,
        timeout,
        deadline,
        connect: None,
        echo_started: now,
        sent: payload,
        written: 0,
        got: Vec::new(),
    };
    Ok((Box::new(probe), deadline))
}

impl TcpProbe {
    /// Writes what is left and reads what came; the answer once known.
    fn pump(&mut self, now: Instant) -> Option<Outcome> {
        while self.written < self.sent.len() {
            match self.stream.write(&self.sent[self.written..]) {
                Ok(n) => self.written += n,
                Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) if is_reset(&e) => return Some(Outcome::Reset),
                Err(e) => return Some(failed(&e, now - self.started)),
            }
        }
        let mut buf = [0u8; READ];
        loop {
            match self.stream.read(&mut buf) {
                Ok(0) => return Some(Outcome::ClosedWithoutEcho(self.got.len())),
                Ok(n) => {
                    self.got.extend_from_slice(&buf[..n]);
                    // The loop's wake time is too coarse for a loopback echo.
                    let rtt = self.echo_started.elapsed();
                    if let Some(outcome) = echo(&self.sent, &self.got, self.connect, rtt) {
                        return Some(outcome);
                    }
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => return None,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) if is_reset(&e) => return Some(Outcome::Reset),
                Err(e) => return Some(failed(&e, now - self.started)),
            }
        }
    }
}

impl PortProbe for TcpProbe {
    fn source(&mut self) -> &mut dyn Source {
        &mut self.stream
    }

    fn ready(&mut self, now: Instant) -> Step {
        if self.connect.is_none() {
            match connect_outcome(&self.stream) {
                None => return Step::Wait(self.deadline),
                Some(Err(e)) => return Step::Done(failed(&e, now - self.started)),
                Some(Ok(())) => {
                    self.connect = Some(now - self.started);
                    // A small write must not wait for a delayed ACK.
                    let _ = self.stream.set_nodelay(true);
                    self.echo_started = Instant::now();
                    self.deadline = now + self.timeout;
                }
            }
        }
        match self.pump(now) {
            Some(outcome) => Step::Done(outcome),
            None => Step::Wait(self.deadline),
        }
    }

    fn expired(&mut self, now: Instant) -> Step {
        // An edge may have been missed between the last wake and now.
        let step = self.ready(now);
        if let Step::Done(_) = step {
            return step;
        }
        Step::Done(match self.connect {
            None => Outcome::Filtered(self.timeout),
            Some(_) => Outcome::NoEcho {
                received: self.got.len(),
                after: self.timeout,
            },
        })
    }
}
