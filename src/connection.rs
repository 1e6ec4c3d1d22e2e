//! One client connection as the event loop holds it: the socket, who is on
//! the other end, its echo state and its idle-timer bookkeeping.

use std::net::SocketAddr;
use std::time::Instant;

use mio::net::TcpStream;
use mio::Token;

use crate::echo::{Echo, Progress};
use crate::tcp_info::TcpInfo;

/// How many reads one connection may do per turn before the others get
/// theirs: a client flooding at loopback speed would otherwise hold the
/// only thread while everyone else's ping waits.
pub const READS_PER_TURN: usize = 16;

/// A client connection in the server's slab.
#[derive(Debug)]
pub struct Connection {
    /// The socket, registered for both readable and writable edges.
    pub stream: TcpStream,
    /// The client's address, as logged.
    pub peer: SocketAddr,
    /// The token its events carry: slab key plus generation.
    pub token: Token,
    /// Bytes owed and counters.
    pub echo: Echo,
    /// When it was accepted.
    pub connected_at: Instant,
    /// When a byte last moved; the idle timer re-arms from here when it
    /// fires, so activity itself never touches the timer wheel.
    pub last_active: Instant,
    /// Deadline tick of its entry in the timer wheel, if one is armed.
    pub timer: Option<u64>,
    /// True while it sits in the server's queue of connections to resume.
    pub queued: bool,
    /// The last TCP_INFO reading (taken at the stats interval, on endpoint
    /// requests and at close; never per message).
    pub tcp: Option<TcpInfo>,
    /// Retransmits already added to the server-wide counter.
    pub retrans_counted: u32,
}

impl Connection {
    /// A freshly accepted connection that buffers at most `buffer_size` bytes.
    pub fn new(
        stream: TcpStream,
        peer: SocketAddr,
        token: Token,
        buffer_size: usize,
        now: Instant,
    ) -> Self {
        Self {
            stream,
            peer,
            token,
            echo: Echo::new(buffer_size),
            connected_at: now,
            last_active: now,
            timer: None,
            queued: false,
            tcp: None,
            retrans_counted: 0,
        }
    }

    /// Moves what bytes can move now; see [`Echo::pump`].
    pub fn pump(&mut self, scratch: &mut [u8]) -> Progress {
        self.echo.pump(&mut self.stream, scratch, READS_PER_TURN)
    }
}
