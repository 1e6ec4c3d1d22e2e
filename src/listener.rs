//! Opening the listening socket, and saying clearly why it failed.

use std::fmt;
use std::io::{self, ErrorKind};
use std::net::{SocketAddr, TcpListener};

use socket2::{Domain, Protocol, Socket, Type};

/// Why the server could not start listening, with advice for the user.
#[derive(Debug)]
pub struct BindError {
    addr: SocketAddr,
    error: io::Error,
    /// The option the advice tells the user to change.
    option: &'static str,
}

impl BindError {
    /// Names `option` (say `--metrics`) in the advice instead of `--port`.
    pub fn for_option(mut self, option: &'static str) -> Self {
        self.option = option;
        self
    }

    /// What the system said.
    pub fn kind(&self) -> ErrorKind {
        self.error.kind()
    }
}

impl fmt::Display for BindError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let addr = self.addr;
        let ip = addr.ip();
        write!(f, "cannot listen on {addr}: ")?;
        match self.error.kind() {
            ErrorKind::AddrInUse => write!(
                f,
                "address already in use; another program listens on port {} \
                 (find it with `ss -ltnp`), or choose another port with {}",
                addr.port(),
                self.option
            ),
            ErrorKind::PermissionDenied => write!(
                f,
                "permission denied; ports below 1024 need root or CAP_NET_BIND_SERVICE, \
                 choose a port of 1024 or above with {}",
                self.option
            ),
            ErrorKind::AddrNotAvailable => write!(
                f,
                "address not available; {ip} is not an address of this host, \
                 use 0.0.0.0 (all interfaces) or one listed by `ip addr`"
            ),
            _ => write!(f, "{}", self.error),
        }
    }
}

impl std::error::Error for BindError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.error)
    }
}

/// Binds a non-blocking listener on `addr` with a listen queue of `backlog`.
///
/// SO_REUSEADDR lets a restarted server bind while old connections sit in
/// TIME_WAIT. An IPv6 wildcard (`::`) also accepts IPv4 clients, whatever
/// the system default for IPV6_V6ONLY is, so `--bind ::` means "everything".
pub fn bind(addr: SocketAddr, backlog: u32) -> Result<TcpListener, BindError> {
    open(addr, backlog).map_err(|error| BindError {
        addr,
        error,
        option: "--port",
    })
}

fn open(addr: SocketAddr, backlog: u32) -> io::Result<TcpListener> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    socket.set_reuse_address(true)?;
    if addr.is_ipv6() && addr.ip().is_unspecified() {
        socket.set_only_v6(false)?;
    }
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    // The CLI caps the backlog at 65535, so it always fits an i32.
    socket.listen(i32::try_from(backlog).unwrap_or(i32::MAX))?;
    Ok(socket.into())
}

#[cfg(test)]
mod tests {
    use super::*;

    // Each common failure gets its own advice, naming the address.
    #[test]
    fn errors_explain_what_to_do() {
        let addr: SocketAddr = "192.0.2.1:7878".parse().unwrap();
        let text = |kind: ErrorKind| {
            BindError {
                addr,
                error: kind.into(),
                option: "--port",
            }
            .to_string()
        };
        assert!(text(ErrorKind::AddrInUse).contains("address already in use"));
        assert!(text(ErrorKind::AddrInUse).contains("--port"));
        assert!(text(ErrorKind::PermissionDenied).contains("below 1024"));
        assert!(
            text(ErrorKind::AddrNotAvailable).contains("192.0.2.1 is not an address of this host")
        );
        assert!(text(ErrorKind::Other).starts_with("cannot listen on 192.0.2.1:7878: "));
    }

    // Port 0 binds an ephemeral port on loopback, and a second bind of the
    // same port fails as "in use".
    #[test]
    fn binds_and_detects_port_in_use() {
        let first = bind("127.0.0.1:0".parse().unwrap(), 16).unwrap();
        let addr = first.local_addr().unwrap();
        assert_ne!(addr.port(), 0);
        let error = bind(addr, 16).unwrap_err();
        assert_eq!(error.error.kind(), ErrorKind::AddrInUse);
    }
}
