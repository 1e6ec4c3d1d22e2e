//! `mio-echo`: the smallest correct echo loop on mio, the floor an
//! event-loop server cannot beat by much.
//!
//! One `Poll`, a slab of connections, a fixed 64 KiB buffer per connection
//! allocated at accept. On any event a connection first writes back what it
//! still owes, then reads until the socket is drained (`WouldBlock`, or a
//! read shorter than the buffer), writing each chunk straight back; while
//! unwritten bytes remain it stops reading (backpressure) until a writable
//! event lets it drain them. Each socket is registered once for
//! both readable and writable: mio is edge-triggered, so the writable
//! interest costs nothing while the socket stays writable and no
//! `epoll_ctl` is ever needed after accept. TCP_NODELAY on every connection;
//! no logging, timers or limits.

use std::io::{self, Read, Write};
use std::net::SocketAddr;
use std::process::ExitCode;

use clap::Parser;
use mio::net::{TcpListener, TcpStream};
use mio::{Events, Interest, Poll, Token};
use slab::Slab;
use socket2::{Domain, Protocol, Socket, Type};

use echo_bench_peers::{announce, Listen, BACKLOG, BUFFER_SIZE};

/// The listener's token; connection `key` in the slab uses `Token(key + 1)`.
const LISTENER: Token = Token(0);
/// Readiness events taken from the kernel per `poll`.
const EVENTS_CAPACITY: usize = 1024;

/// Minimal mio echo server, a peer in echo-server's benchmark.
#[derive(Parser, Debug)]
#[command(version)]
struct Cli {
    #[command(flatten)]
    listen: Listen,
}

/// One client: its socket and the bytes read but not yet echoed,
/// `buf[start..end]`.
struct Connection {
    stream: TcpStream,
    buf: Box<[u8]>,
    start: usize,
    end: usize,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli.listen.addr()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("mio-echo: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(addr: SocketAddr) -> io::Result<()> {
    let mut poll = Poll::new()?;
    let mut events = Events::with_capacity(EVENTS_CAPACITY);
    let mut listener = listen(addr)?;
    poll.registry()
        .register(&mut listener, LISTENER, Interest::READABLE)?;
    announce(listener.local_addr()?)?;

    let mut connections: Slab<Connection> = Slab::new();
    loop {
        if let Err(e) = poll.poll(&mut events, None) {
            if interrupted(&e) {
                continue;
            }
            return Err(e);
        }
        for event in events.iter() {
            match event.token() {
                LISTENER => accept_all(&poll, &listener, &mut connections),
                Token(n) => {
                    let key = n - 1;
                    // Sporadic events happen, even for a connection just closed.
                    let Some(conn) = connections.get_mut(key) else {
                        continue;
                    };
                    if let Done::Yes = conn.serve() {
                        let mut conn = connections.remove(key);
                        let _ = poll.registry().deregister(&mut conn.stream);
                    }
                }
            }
        }
    }
}

/// `TcpListener::bind` with echo-server's backlog instead of 128.
fn listen(addr: SocketAddr) -> io::Result<TcpListener> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    socket.set_reuse_address(true)?;
    socket.bind(&addr.into())?;
    socket.listen(BACKLOG as i32)?;
    socket.set_nonblocking(true)?;
    Ok(TcpListener::from_std(socket.into()))
}

/// Accepts every waiting connection (the listener is edge-triggered too).
fn accept_all(poll: &Poll, listener: &TcpListener, connections: &mut Slab<Connection>) {
    loop {
        let (mut stream, _peer) = match listener.accept() {
            Ok(accepted) => accepted,
            Err(e) if would_block(&e) => return,
            Err(e) if interrupted(&e) => continue,
            Err(e) => {
                // E.g. out of descriptors: the rest wait in the kernel's
                // queue until the next connection wakes the listener.
                eprintln!("mio-echo: accept: {e}");
                return;
            }
        };
        if stream.set_nodelay(true).is_err() {
            continue;
        }
        let entry = connections.vacant_entry();
        let token = Token(entry.key() + 1);
        let interest = Interest::READABLE | Interest::WRITABLE;
        if poll
            .registry()
            .register(&mut stream, token, interest)
            .is_ok()
        {
            entry.insert(Connection {
                stream,
                buf: vec![0u8; BUFFER_SIZE].into_boxed_slice(),
                start: 0,
                end: 0,
            });
        }
    }
}

/// Whether a connection is finished and must be dropped.
enum Done {
    Yes,
    No,
}

impl Connection {
    /// Echoes as much as the socket allows right now.
    fn serve(&mut self) -> Done {
        loop {
            match self.flush() {
                Ok(true) => {}
                // The kernel's send buffer is full: stop reading until the
                // writable edge, so at most one buffer is ever held.
                Ok(false) => return Done::No,
                Err(_) => return Done::Yes,
            }
            match self.stream.read(&mut self.buf) {
                // Reading 0 bytes means the peer closed its side; nothing
                // is owed to it, since we only read with nothing pending.
                Ok(0) => return Done::Yes,
                Ok(n) => {
                    self.start = 0;
                    self.end = n;
                    if n < self.buf.len() {
                        // A short read emptied the receive queue: whatever
                        // arrives later raises a new edge, so the read that
                        // would only say WouldBlock is skipped (as tokio does).
                        return self.after_last_read();
                    }
                }
                Err(e) if would_block(&e) => return Done::No,
                Err(e) if interrupted(&e) => {}
                Err(_) => return Done::Yes,
            }
        }
    }

    /// Echoes the final chunk of a drained socket.
    fn after_last_read(&mut self) -> Done {
        match self.flush() {
            Ok(_) => Done::No,
            Err(_) => Done::Yes,
        }
    }

    /// Writes back pending bytes; `Ok(true)` once none are left.
    fn flush(&mut self) -> io::Result<bool> {
        while self.start < self.end {
            match self.stream.write(&self.buf[self.start..self.end]) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => self.start += n,
                Err(e) if would_block(&e) => return Ok(false),
                Err(e) if interrupted(&e) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(true)
    }
}

fn would_block(err: &io::Error) -> bool {
    err.kind() == io::ErrorKind::WouldBlock
}

fn interrupted(err: &io::Error) -> bool {
    err.kind() == io::ErrorKind::Interrupted
}
