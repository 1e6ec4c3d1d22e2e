//! `--proxy-protocol`: the phase before a connection is served, in which
//! it sends the PROXY header a load balancer puts first. These connections
//! live in their own slab under their own tokens, so the echo path never
//! looks at this state.
//!
//! The header is read with `MSG_PEEK` and then consumed up to its last
//! byte only: bytes the client sent after it stay in the socket for the
//! service, and registering the socket again for the service raises the
//! edge that reads them.

use std::io;
use std::net::SocketAddr;
use std::os::fd::AsFd;
use std::time::{Duration, Instant};

use log::debug;
use mio::net::TcpStream;
use mio::{Interest, Token};
use rustix::net::RecvFlags;
use slab::Slab;

use super::admission::Refusal;
use super::{token, Server};
use crate::logic::proxy_protocol::{Parsed, ProxyParser};

/// Bytes looked at per peek: a v1 header and more; a longer v2 header
/// (TLVs) takes several.
const PEEK: usize = 512;

/// A connection whose header is not complete yet.
#[derive(Debug)]
struct Pending {
    stream: TcpStream,
    /// The direct peer (the proxy).
    peer: SocketAddr,
    token: Token,
    /// Index of the listener that accepted it.
    listener: usize,
    parser: ProxyParser,
    /// Header bytes consumed from the socket so far.
    consumed: usize,
    /// Tick of its deadline in the timer wheel.
    deadline: u64,
}

/// The connections awaiting their header.
#[derive(Debug, Default)]
pub struct PendingHeaders {
    slab: Slab<Pending>,
}

impl PendingHeaders {
    /// How many there are.
    pub fn len(&self) -> usize {
        self.slab.len()
    }

    /// True when there are none.
    pub fn is_empty(&self) -> bool {
        self.slab.is_empty()
    }
}

/// What reading a connection's header came to.
enum Outcome {
    Wait,
    /// Serve it as coming from this client (`None`: its direct peer).
    Serve(Option<SocketAddr>),
    Refuse(&'static str),
}

impl Server {
    /// Starts the header phase of a connection `peer` made to `listener`.
    pub(super) fn await_header(
        &mut self,
        mut stream: TcpStream,
        peer: SocketAddr,
        listener: usize,
        timeout: Duration,
    ) {
        self.generation = self.generation.wrapping_add(1);
        let entry = self.pending.slab.vacant_entry();
        let token = token::proxy(entry.key(), self.generation);
        if let Err(e) = self
            .poll
            .registry()
            .register(&mut stream, token, Interest::READABLE)
        {
            log::error!(target: "ERROR", "{peer}: cannot watch the connection, closing it: {e}");
            return;
        }
        let deadline = self.clock.deadline(Instant::now(), timeout);
        self.wheel.insert(deadline, token);
        entry.insert(Pending {
            stream,
            peer,
            token,
            listener,
            parser: ProxyParser::new(),
            consumed: 0,
            deadline,
        });
        // The header may be in already; the registration's edge says so,
        // but reading now saves a turn.
        self.read_header(token);
    }

    /// Reads what a pending connection sent; once its header is complete,
    /// hands it to the admission checks as its real client, or closes it.
    pub(super) fn read_header(&mut self, token: Token) {
        let key = token::proxy_key(token);
        let Some(pending) = self.pending.slab.get_mut(key).filter(|p| p.token == token) else {
            return;
        };
        let outcome = match advance(pending) {
            Ok(outcome) => outcome,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Outcome::Wait,
            Err(_) => Outcome::Refuse("connection failed before the header was complete"),
        };
        let peer = pending.peer;
        match outcome {
            Outcome::Wait => {}
            Outcome::Refuse(why) => {
                self.drop_pending(key);
                self.reject(peer, Refusal::ProxyHeader(why));
            }
            Outcome::Serve(source) => {
                let Some((mut stream, listener)) = self.drop_pending(key) else {
                    return;
                };
                if self.stop_deadline.is_some() {
                    // Stopping: no new clients.
                    return;
                }
                // Registered again for the service, it gets an edge for
                // any bytes that followed the header.
                let _ = self.poll.registry().deregister(&mut stream);
                match source {
                    Some(source) => {
                        let source = SocketAddr::new(source.ip().to_canonical(), source.port());
                        debug!(target: "PROXY", "{peer}: PROXY header names the client {source}");
                        self.admit_from(stream, source, listener, Some(peer));
                    }
                    None => {
                        debug!(target: "PROXY", "{peer}: PROXY LOCAL, served as the direct peer");
                        self.admit_from(stream, peer, listener, None);
                    }
                }
            }
        }
    }

    /// A pending connection's deadline passed: its header is late.
    pub(super) fn expire_header(&mut self, token: Token) {
        let key = token::proxy_key(token);
        let Some(pending) = self.pending.slab.get(key).filter(|p| p.token == token) else {
            return;
        };
        let peer = pending.peer;
        self.drop_pending(key);
        let timeout = self.config.proxy_protocol.unwrap_or_default();
        self.reject(peer, Refusal::ProxyTimeout(timeout));
    }

    /// Takes a pending connection out of the header phase (its timer
    /// cancelled), returning its socket and listener.
    fn drop_pending(&mut self, key: usize) -> Option<(TcpStream, usize)> {
        let pending = self.pending.slab.try_remove(key)?;
        let token = pending.token;
        self.wheel.remove(pending.deadline, |armed| *armed == token);
        Some((pending.stream, pending.listener))
    }
}

/// Feeds the parser what the socket holds, consuming header bytes only.
fn advance(pending: &mut Pending) -> io::Result<Outcome> {
    let mut buf = [0u8; PEEK];
    loop {
        let (seen, _) = rustix::net::recv(pending.stream.as_fd(), &mut buf, RecvFlags::PEEK)?;
        if seen == 0 {
            return Ok(Outcome::Refuse(
                "the client closed before the header was complete",
            ));
        }
        // A copy decides how much of what is seen is header, so that only
        // that much is taken from the socket.
        let mut trial = pending.parser.clone();
        let parsed = trial.feed(&buf[..seen]);
        let (take, outcome) = match parsed {
            Parsed::NeedMore => (seen, None),
            Parsed::Done {
                source, header_len, ..
            } => (
                header_len - pending.consumed,
                Some(Outcome::Serve(Some(source))),
            ),
            Parsed::Local { header_len } => {
                (header_len - pending.consumed, Some(Outcome::Serve(None)))
            }
            Parsed::Invalid(why) => return Ok(Outcome::Refuse(why)),
        };
        consume(&pending.stream, take)?;
        pending.consumed += take;
        pending.parser = trial;
        if let Some(outcome) = outcome {
            return Ok(outcome);
        }
    }
}

/// Takes `len` bytes already seen by a peek off the socket.
fn consume(stream: &TcpStream, mut len: usize) -> io::Result<()> {
    let mut sink = [0u8; PEEK];
    while len > 0 {
        let n = len.min(PEEK);
        let (read, _) = rustix::net::recv(stream.as_fd(), &mut sink[..n], RecvFlags::empty())?;
        if read == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        len -= read;
    }
    Ok(())
}
