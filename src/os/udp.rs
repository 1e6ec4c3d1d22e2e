//! Opening the UDP echo sockets (`--udp`), and saying clearly why one
//! could not be.

use std::fmt;
use std::io::{self, ErrorKind};
use std::net::{SocketAddr, UdpSocket};

use socket2::{Domain, Protocol, Socket, Type};

/// Why a UDP port could not be bound.
#[derive(Debug)]
pub struct UdpBindError {
    addr: SocketAddr,
    error: io::Error,
}

impl UdpBindError {
    /// What the system said.
    pub fn kind(&self) -> ErrorKind {
        self.error.kind()
    }
}

impl fmt::Display for UdpBindError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let addr = self.addr;
        write!(f, "--udp: cannot serve UDP on {addr}: ")?;
        match self.error.kind() {
            ErrorKind::AddrInUse => write!(
                f,
                "address already in use; another program has UDP port {} (find it with \
                 `ss -lunp`), or choose another port with --port",
                addr.port()
            ),
            ErrorKind::PermissionDenied => write!(
                f,
                "permission denied; ports below 1024 need root or CAP_NET_BIND_SERVICE, \
                 choose a port of 1024 or above with --port"
            ),
            _ => write!(f, "{}", self.error),
        }
    }
}

impl std::error::Error for UdpBindError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.error)
    }
}

/// Binds a non-blocking UDP socket on each of `addrs`, in order; the first
/// failure closes the ones already open (they drop) and is the error.
///
/// An IPv6 wildcard (`::`) also serves IPv4 sources, as the TCP listener
/// does. No SO_REUSEADDR: on UDP it would let two servers share the port,
/// each getting some of the datagrams.
pub fn bind_all(addrs: &[SocketAddr]) -> Result<Vec<UdpSocket>, UdpBindError> {
    addrs
        .iter()
        .map(|&addr| open(addr).map_err(|error| UdpBindError { addr, error }))
        .collect()
}

fn open(addr: SocketAddr) -> io::Result<UdpSocket> {
    let socket = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?;
    if addr.is_ipv6() && addr.ip().is_unspecified() {
        socket.set_only_v6(false)?;
    }
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    Ok(socket.into())
}

#[cfg(test)]
mod tests {
    use super::*;

    // A port taken by another UDP socket is refused, named, with advice;
    // a list stops at its first failure.
    #[test]
    fn a_taken_port_is_named() {
        let taken = UdpSocket::bind("127.0.0.1:0").unwrap();
        let addr = taken.local_addr().unwrap();
        let free: SocketAddr = "127.0.0.1:0".parse().unwrap();
        let error = bind_all(&[free, addr]).unwrap_err();
        assert_eq!(error.kind(), ErrorKind::AddrInUse);
        let text = error.to_string();
        assert!(
            text.contains(&format!("cannot serve UDP on {addr}")),
            "{text}"
        );
        assert!(text.contains("ss -lunp"), "{text}");
        let bound = bind_all(&[free, free]).unwrap();
        assert_eq!(bound.len(), 2);
        assert_ne!(bound[0].local_addr().unwrap().port(), 0);
    }
}
