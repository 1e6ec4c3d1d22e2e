//! One client connection as the event loop holds it: the socket, who is on
//! the other end, its echo state and its idle-timer bookkeeping.

use std::io::{self, Read, Write};
use std::net::SocketAddr;
use std::os::fd::AsFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

use mio::net::TcpStream;
use mio::Token;
use rustix::net::{RecvFlags, SendFlags};

use super::tls::TlsSession;
use super::workers::Workers;
use crate::logic::echo::{Echo, Progress, Transport};
use crate::logic::service::Service;
use crate::logic::spin_probe::StreamMemory;
use crate::logic::stream::Stream;
use crate::logic::tcp_info::TcpInfo;
use crate::os::send_queue;
use crate::os::splice::Pipe;
use crate::os::tcp_info;

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
    /// The kernel pipe of the zero-copy path, once the client streams.
    pub pipe: Option<Pipe>,
    /// Whether it streams, for the loop's busy polling.
    pub stream_memory: StreamMemory,
    /// Raised when it closes, so that its prime checks stop; made at its
    /// first check.
    pub cancel_checks: Option<Arc<AtomicBool>>,
    /// The TLS session, for a TLS client (rustls between the socket and
    /// `echo`).
    pub tls: Option<Box<TlsSession>>,
}

impl Connection {
    /// A freshly accepted connection of `service` that buffers at most
    /// `buffer_size` bytes, and may switch to the zero-copy path once a
    /// backlog of `splice` bytes builds up (`None`: never; only echo may).
    pub fn new(
        stream: TcpStream,
        peer: SocketAddr,
        token: Token,
        (buffer_size, service): (usize, Service),
        splice: Option<usize>,
        now: Instant,
    ) -> Self {
        let echo = Echo::with_service(buffer_size, service);
        Self {
            stream,
            peer,
            token,
            echo: match splice {
                Some(backlog) => echo.allow_splice(backlog),
                None => echo,
            },
            connected_at: now,
            last_active: now,
            timer: None,
            queued: false,
            tcp: None,
            retrans_counted: 0,
            pipe: None,
            stream_memory: StreamMemory::default(),
            cancel_checks: None,
            tls: None,
        }
    }

    /// Stops its prime checks still queued or running: it is closing.
    pub fn cancel_checks(&self) {
        if let Some(flag) = &self.cancel_checks {
            flag.store(true, Ordering::Relaxed);
        }
    }

    /// Moves what bytes can move now; see [`Echo::pump`]. `pipes_left` is
    /// how many more pipes the server can afford (each costs two file
    /// descriptors); taking one decrements it.
    /// `workers` takes its prime checks (framed).
    pub fn pump(
        &mut self,
        scratch: &mut [u8],
        pipes_left: &mut usize,
        workers: Option<&Workers>,
    ) -> Progress {
        if let Some(session) = self.tls.as_deref_mut() {
            let checks = (self.token, &mut self.cancel_checks, workers);
            return pump_tls(&mut self.echo, session, &mut self.stream, scratch, checks);
        }
        let socket = Socket {
            stream: &mut self.stream,
            pipe: &mut self.pipe,
            pipes_left,
        };
        match workers {
            // Echo's turn: the socket as it always was.
            None => self.echo.pump(&mut { socket }, scratch, READS_PER_TURN),
            Some(workers) => {
                let mut checking = Checking {
                    socket,
                    workers,
                    token: self.token,
                    cancel: &mut self.cancel_checks,
                };
                self.echo.pump(&mut checking, scratch, READS_PER_TURN)
            }
        }
    }

    /// Reads TCP_INFO into [`tcp`](Self::tcp) and returns the retransmits
    /// not yet added to the server-wide counter, marking them added. If
    /// the read fails, the last reading stays and none are new.
    pub fn sample_tcp(&mut self) -> u64 {
        let Ok(info) = tcp_info::sample(&self.stream) else {
            return 0;
        };
        let new = info.total_retrans.saturating_sub(self.retrans_counted);
        self.retrans_counted = self.retrans_counted.max(info.total_retrans);
        self.tcp = Some(info);
        u64::from(new)
    }
}

/// A TLS connection's turn; `checks` takes its prime checks (framed).
/// Out of line: inlined into [`Connection::pump`], its code made every
/// plain turn spill more registers (callgrind).
#[inline(never)]
fn pump_tls(
    echo: &mut Echo,
    session: &mut super::tls::TlsSession,
    stream: &mut TcpStream,
    scratch: &mut [u8],
    (token, cancel, workers): (Token, &mut Option<Arc<AtomicBool>>, Option<&Workers>),
) -> Progress {
    let mut submit = |number| {
        let flag = cancel.get_or_insert_with(|| Arc::new(AtomicBool::new(false)));
        workers.is_some_and(|workers| workers.submit(token, number, flag))
    };
    let checks: Option<&mut dyn FnMut(u64) -> bool> = match workers {
        Some(_) => Some(&mut submit),
        None => None,
    };
    super::tls::pump(echo, session, stream, (scratch, READS_PER_TURN), checks)
}

/// The connection's socket with its pipe, as [`Echo`] moves bytes through.
struct Socket<'a> {
    stream: &'a mut TcpStream,
    pipe: &'a mut Option<Pipe>,
    pipes_left: &'a mut usize,
}

/// The socket of a connection whose service submits prime checks: checks
/// go to the workers with its token and its cancel flag.
struct Checking<'a> {
    socket: Socket<'a>,
    workers: &'a Workers,
    token: Token,
    cancel: &'a mut Option<Arc<AtomicBool>>,
}

impl Read for Checking<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.socket.read(buf)
    }
}

impl Write for Checking<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.socket.write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

// No pipe: only echo splices.
impl Transport for Checking<'_> {
    fn shutdown_write(&mut self) -> io::Result<()> {
        Transport::shutdown_write(&mut self.socket)
    }

    fn queued_in(&mut self) -> io::Result<usize> {
        self.socket.queued_in()
    }

    fn unacknowledged(&mut self) -> io::Result<usize> {
        self.socket.unacknowledged()
    }

    fn submit_check(&mut self, number: u64) -> bool {
        let flag = self
            .cancel
            .get_or_insert_with(|| Arc::new(AtomicBool::new(false)));
        self.workers.submit(self.token, number, flag)
    }
}

impl Socket<'_> {
    fn pipe(&self) -> io::Result<&Pipe> {
        self.pipe
            .as_ref()
            .ok_or_else(|| io::Error::other("splice without a pipe"))
    }
}

// recv and send as raw system calls (rustix), not through libc: the log's
// writer thread makes the process multi-threaded, and glibc then wraps
// every recv and send, which are cancellation points, in bookkeeping that
// costs more user-space work than the rest of an echo's turn.
impl Read for Socket<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let (read, _) = rustix::net::recv(self.stream.as_fd(), buf, RecvFlags::empty())?;
        Ok(read)
    }
}

impl Write for Socket<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        // NOSIGNAL: a peer gone away is an EPIPE error, never a SIGPIPE.
        Ok(rustix::net::send(
            self.stream.as_fd(),
            buf,
            SendFlags::NOSIGNAL,
        )?)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Transport for Socket<'_> {
    fn shutdown_write(&mut self) -> io::Result<()> {
        Stream::shutdown_write(self.stream)
    }

    fn attach_pipe(&mut self, capacity: usize) -> io::Result<usize> {
        if *self.pipes_left == 0 {
            return Err(io::Error::other("no file descriptors to spare for a pipe"));
        }
        let pipe = Pipe::with_capacity(capacity)?;
        let capacity = pipe.capacity();
        *self.pipe = Some(pipe);
        *self.pipes_left -= 1;
        Ok(capacity)
    }

    fn queued_in(&mut self) -> io::Result<usize> {
        let bytes = rustix::io::ioctl_fionread(self.stream.as_fd())?;
        Ok(usize::try_from(bytes).unwrap_or(usize::MAX))
    }

    fn unacknowledged(&mut self) -> io::Result<usize> {
        send_queue::unacknowledged(self.stream.as_fd())
    }

    fn splice_in(&mut self, max: usize) -> io::Result<usize> {
        self.pipe()?.fill_from(self.stream.as_fd(), max)
    }

    // Out of line: inlined, the zero-copy path's code made every turn of
    // the copying path spill more registers (seen under callgrind).
    #[inline(never)]
    fn splice_out(&mut self, max: usize) -> io::Result<usize> {
        self.pipe()?.drain_into(self.stream.as_fd(), max)
    }
}

// The endpoint's clients are driven through mio's own reads and writes:
// they are not on the echo path.
impl Stream for TcpStream {
    fn shutdown_write(&mut self) -> io::Result<()> {
        self.shutdown(std::net::Shutdown::Write)
    }
}
