//! Connecting: one address with a timeout, or each of a name's in turn; the
//! outcome of a non-blocking connect, self-connects refused; connect errors.

use std::io::{self, ErrorKind};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use mio::net::TcpStream;
use mio::Interest;

use super::{Link, Session, Wake, STREAM};
use crate::client::error::seconds;
use crate::client::error::{ClientError, TlsFailure};
use crate::client::tls::{TlsFacts, TlsStream};

/// A connected socket and how long the handshake took.
#[derive(Debug)]
pub struct Connected {
    /// The socket, registered with the session's `Poll` (with `--tls`,
    /// its TLS handshake done).
    pub stream: Link,
    /// The address it is connected to.
    pub addr: SocketAddr,
    /// From `connect` to the handshake completing.
    pub connect_time: Duration,
    /// With `--tls`: the handshake's facts (its time apart from the
    /// connect time).
    pub tls: Option<TlsFacts>,
}

impl Session {
    /// Connects to `addr`, giving up after `timeout`, then with `--tls`
    /// completes the TLS handshake within another `timeout`.
    pub fn connect(
        &mut self,
        addr: SocketAddr,
        timeout: Duration,
    ) -> Result<Connected, ClientError> {
        let started = Instant::now();
        let deadline = started + timeout;
        let mut stream = TcpStream::connect(addr).map_err(|e| connect_error(addr, e, timeout))?;
        self.poll
            .registry()
            .register(&mut stream, STREAM, Interest::READABLE | Interest::WRITABLE)
            .map_err(|e| ClientError::Other(format!("cannot register the socket: {e}")))?;
        loop {
            match connect_outcome(&stream) {
                Some(Ok(())) => break,
                Some(Err(e)) => return Err(connect_error(addr, e, timeout)),
                None => {}
            }
            if let Wake::TimedOut = self.wait(Some(deadline))? {
                return Err(ClientError::ConnectTimeout(addr, timeout));
            }
        }
        let connect_time = started.elapsed();
        // Without it, a probe written while an earlier segment is unacked
        // waits for the delayed ACK and the RTT shows a 40 ms stall.
        stream
            .set_nodelay(true)
            .map_err(|e| ClientError::Other(format!("cannot set TCP_NODELAY: {e}")))?;
        let Some(client) = self.tls.clone() else {
            return Ok(Connected {
                stream: Link::Plain(stream),
                addr,
                connect_time,
                tls: None,
            });
        };
        let started = Instant::now();
        let deadline = started + timeout;
        let mut tls = TlsStream::new(stream, &client)?;
        while !tls.handshake_step()? {
            if let Wake::TimedOut = self.wait(Some(deadline))? {
                return Err(ClientError::Tls {
                    failure: TlsFailure::Handshake,
                    detail: format!(
                        "no answer to the ClientHello within {} (is it a TLS server?)",
                        seconds(timeout)
                    ),
                });
            }
        }
        let facts = tls.facts(started.elapsed(), &client);
        Ok(Connected {
            stream: Link::Tls(Box::new(tls)),
            addr,
            connect_time,
            tls: Some(facts),
        })
    }

    /// Tries each address in turn (as `nc` does for a name with both IPv6
    /// and IPv4 addresses) and returns the first connection; the error of
    /// the last attempt otherwise.
    pub fn connect_any(
        &mut self,
        addrs: &[SocketAddr],
        timeout: Duration,
    ) -> Result<Connected, ClientError> {
        let mut last = ClientError::Other("no address to connect to".into());
        for &addr in addrs {
            match self.connect(addr, timeout) {
                Ok(connected) => return Ok(connected),
                Err(ClientError::Interrupted) => return Err(ClientError::Interrupted),
                // The server answered: another address would be another
                // server, not a way around its refusal.
                Err(e @ ClientError::Tls { .. }) => return Err(e),
                Err(e) => last = e,
            }
        }
        Err(last)
    }
}

/// Whether a non-blocking connect has finished: `None` while it is in
/// progress, else its result. It has finished when the socket holds a
/// pending error (failed) or has a peer address (succeeded). Every mode
/// connects through here.
pub fn connect_outcome(stream: &TcpStream) -> Option<io::Result<()>> {
    match stream.take_error() {
        Ok(Some(e)) | Err(e) => return Some(Err(e)),
        Ok(None) => {}
    }
    match stream.peer_addr() {
        Ok(peer) => Some(refuse_self_connect(stream.local_addr(), peer)),
        Err(e) if e.kind() == ErrorKind::NotConnected => None,
        Err(e) => Some(Err(e)),
    }
}

/// A connection to a local port nothing listens on can succeed by TCP
/// simultaneous open when the kernel happens to pick that very port as the
/// client's own: the socket is then connected to itself and "echoes"
/// everything. Nothing listens there, so it counts as refused.
fn refuse_self_connect(local: io::Result<SocketAddr>, peer: SocketAddr) -> io::Result<()> {
    if local? == peer {
        return Err(io::Error::new(
            ErrorKind::ConnectionRefused,
            "the socket connected to itself: nothing listens there",
        ));
    }
    Ok(())
}

/// Maps a connect failure to the error the user should see; `timeout` is the
/// one in force, for the kernel's own SYN timeout.
pub fn connect_error(addr: SocketAddr, e: io::Error, timeout: Duration) -> ClientError {
    match e.kind() {
        ErrorKind::ConnectionRefused => ClientError::Refused(addr),
        ErrorKind::TimedOut => ClientError::ConnectTimeout(addr, timeout),
        _ => ClientError::Connect(addr, e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_socket_connected_to_itself_is_refused() {
        let a: SocketAddr = "127.0.0.1:40000".parse().unwrap();
        let b: SocketAddr = "127.0.0.1:40001".parse().unwrap();
        assert!(refuse_self_connect(Ok(b), a).is_ok());
        let e = refuse_self_connect(Ok(a), a).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::ConnectionRefused);
        assert!(matches!(
            connect_error(a, e, Duration::from_secs(1)),
            ClientError::Refused(addr) if addr == a
        ));
    }

    /// A real self-connected socket (bound to the port it then connects
    /// to, which Linux completes by simultaneous open) goes through the
    /// same check the client's connects use.
    #[test]
    fn a_real_self_connect_is_refused() {
        // A free port: bound, then released.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
        let socket =
            socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
        socket.set_reuse_address(true).unwrap();
        socket.bind(&addr.into()).unwrap();
        socket.connect(&addr.into()).expect("self-connect");
        let stream = TcpStream::from_std(socket.into());
        assert_eq!(stream.peer_addr().unwrap(), stream.local_addr().unwrap());
        let e = connect_outcome(&stream)
            .expect("finished")
            .expect_err("a self-connect must fail");
        assert_eq!(e.kind(), ErrorKind::ConnectionRefused);
    }
}
