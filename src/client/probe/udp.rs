//! One UDP port's probe: a datagram sent, resent after each timeout up to
//! the retries, and the first datagram that comes back checked against it.
//! The socket is connected, so the kernel reports an ICMP port unreachable
//! as a refused receive.

use std::io::ErrorKind;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::{Duration, Instant};

use mio::event::Source;
use mio::net::UdpSocket;

use super::classify::{echo, failed, Outcome};
use super::engine::{PortProbe, Step};

struct UdpProbe {
    socket: UdpSocket,
    sent: Vec<u8>,
    /// One byte longer than `sent`, so a longer answer shows as such.
    buf: Vec<u8>,
    tries: u32,
    max_tries: u32,
    timeout: Duration,
    sent_at: Instant,
    deadline: Instant,
}

/// A socket of `addr`'s family, bound to an ephemeral port and connected.
pub fn connected_socket(addr: SocketAddr) -> std::io::Result<UdpSocket> {
    let any: SocketAddr = match addr {
        SocketAddr::V4(_) => (Ipv4Addr::UNSPECIFIED, 0).into(),
        SocketAddr::V6(_) => (Ipv6Addr::UNSPECIFIED, 0).into(),
    };
    let socket = UdpSocket::bind(any)?;
    socket.connect(addr)?;
    Ok(socket)
}

/// Sends the first datagram to `addr`; `tries` datagrams in all at most.
pub(super) fn start(
    addr: SocketAddr,
    payload: Vec<u8>,
    timeout: Duration,
    tries: u32,
    now: Instant,
) -> Result<(Box<dyn PortProbe>, Instant), Outcome> {
    let socket = connected_socket(addr).map_err(|e| failed(&e, Duration::ZERO))?;
    let mut probe = UdpProbe {
        socket,
        buf: vec![0; payload.len() + 1],
        sent: payload,
        tries: 0,
        max_tries: tries.max(1),
        timeout,
        sent_at: now,
        deadline: now,
    };
    match probe.send(now) {
        Step::Wait(deadline) => Ok((Box::new(probe), deadline)),
        Step::Done(outcome) => Err(outcome),
    }
}

impl UdpProbe {
    fn send(&mut self, now: Instant) -> Step {
        self.tries += 1;
        self.sent_at = Instant::now();
        self.deadline = now + self.timeout;
        match self.socket.send(&self.sent) {
            Ok(_) => Step::Wait(self.deadline),
            // A full send queue loses this datagram like the network would.
            Err(e) if e.kind() == ErrorKind::WouldBlock => Step::Wait(self.deadline),
            Err(e) => Step::Done(failed(&e, Duration::ZERO)),
        }
    }
}

impl PortProbe for UdpProbe {
    fn source(&mut self) -> &mut dyn Source {
        &mut self.socket
    }

    fn ready(&mut self, now: Instant) -> Step {
        loop {
            return match self.socket.recv(&mut self.buf) {
                Ok(n) => {
                    let got = &self.buf[..n];
                    let rtt = self.sent_at.elapsed();
                    // A datagram is whole: one shorter than sent is wrong too.
                    Step::Done(echo(&self.sent, got, None, rtt).unwrap_or(Outcome::WrongEcho(n)))
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => Step::Wait(self.deadline),
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(e) => Step::Done(failed(&e, now - self.sent_at)),
            };
        }
    }

    fn expired(&mut self, now: Instant) -> Step {
        if let step @ Step::Done(_) = self.ready(now) {
            return step;
        }
        if self.tries < self.max_tries {
            self.send(now)
        } else {
            Step::Done(Outcome::NoAnswer(self.tries))
        }
    }
}
