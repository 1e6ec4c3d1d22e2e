//! Datagrams for `send --udp` and `ping --udp`: one connected UDP socket in
//! the session's poll, a datagram sent and the one that echoes it awaited,
//! with Ctrl+C noticed as for TCP.

use std::io::ErrorKind;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use mio::net::UdpSocket;
use mio::Interest;

use super::{Session, Wake, STREAM};
use crate::client::error::{ClientError, Mismatch};
use crate::client::pattern::first_difference;
use crate::client::probe::udp::connected_socket;

/// The largest UDP payload over IPv4 (65,535 − 8 − 20 bytes).
pub const MAX_DATAGRAM: usize = 65_507;

impl Session {
    /// A UDP socket connected to the first of `addrs` (UDP has no
    /// handshake that would tell a dead address from a live one) and
    /// registered in the poll; the kernel then reports an ICMP port
    /// unreachable as a refused receive.
    pub fn udp_connect(
        &mut self,
        addrs: &[SocketAddr],
    ) -> Result<(UdpSocket, SocketAddr), ClientError> {
        let addr = *addrs
            .first()
            .ok_or_else(|| ClientError::Other("no address to send to".into()))?;
        let mut socket = connected_socket(addr).map_err(|e| ClientError::Connect(addr, e))?;
        self.poll
            .registry()
            .register(&mut socket, STREAM, Interest::READABLE)
            .map_err(|e| ClientError::Other(format!("cannot register the socket: {e}")))?;
        Ok((socket, addr))
    }

    /// Sends `payload` as one datagram and waits up to `timeout` for the
    /// datagram that echoes it; returns the round trip. Datagrams `stale`
    /// recognizes (late echoes of earlier probes) are passed over.
    pub fn exchange_datagram(
        &mut self,
        socket: &mut UdpSocket,
        addr: SocketAddr,
        payload: &[u8],
        timeout: Duration,
        stale: &dyn Fn(&[u8]) -> bool,
    ) -> Result<Duration, ClientError> {
        if self.scratch.len() <= payload.len() {
            self.scratch.resize(payload.len() + 1, 0);
        }
        let started = Instant::now();
        let deadline = started + timeout;
        match socket.send(payload) {
            Ok(_) => {}
            // A full send queue loses the datagram as the network would.
            Err(e) if e.kind() == ErrorKind::WouldBlock => {}
            Err(e) if e.kind() == ErrorKind::ConnectionRefused => {
                return Err(ClientError::Refused(addr))
            }
            Err(e) => return Err(ClientError::Connect(addr, e)),
        }
        loop {
            match socket.recv(&mut self.scratch[..payload.len() + 1]) {
                Ok(n) => {
                    let got = &self.scratch[..n];
                    if stale(got) {
                        continue;
                    }
                    return check_datagram(payload, got).map(|()| started.elapsed());
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => {}
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(e) if e.kind() == ErrorKind::ConnectionRefused => {
                    return Err(ClientError::Refused(addr))
                }
                Err(e) => return Err(ClientError::Connect(addr, e)),
            }
            if let Wake::TimedOut = self.wait(Some(deadline))? {
                return Err(ClientError::NoDatagram(timeout));
            }
        }
    }
}

/// A datagram is whole: it is the echo only if it is every byte sent.
fn check_datagram(sent: &[u8], got: &[u8]) -> Result<(), ClientError> {
    if let Some(at) = first_difference(sent, got) {
        return Err(ClientError::Mismatch(Mismatch {
            offset: at as u64,
            sent: sent[at],
            received: Some(got[at]),
        }));
    }
    if got.len() != sent.len() {
        return Err(ClientError::DatagramSize {
            sent: sent.len(),
            received: got.len(),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_datagram_must_be_the_whole_echo() {
        assert!(check_datagram(b"abc", b"abc").is_ok());
        match check_datagram(b"abc", b"aXc") {
            Err(ClientError::Mismatch(m)) => assert_eq!((m.offset, m.received), (1, Some(b'X'))),
            other => panic!("{other:?}"),
        }
        for got in [&b"ab"[..], b"abcd", b""] {
            let e = check_datagram(b"abc", got).unwrap_err();
            assert_eq!(e.exit_code(), 1, "{e}");
            assert!(e.to_string().contains("3 bytes were sent"), "{e}");
        }
    }
}
