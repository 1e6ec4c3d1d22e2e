//! One connection driven by its own mio `Poll`, for the `send` and `ping`
//! modes: connect with a timeout, write a payload while reading its echo,
//! and notice Ctrl+C at any point (the signal pipes sit in the same `Poll`).

use std::collections::VecDeque;
use std::io::{self, ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr};
use std::time::{Duration, Instant};

use mio::net::TcpStream;
use mio::{Events, Interest, Poll, Token, Waker};

use super::error::{is_reset, ClientError, Mismatch};
use super::pattern::first_difference;
use crate::os::signal::StopSignals;

const STREAM: Token = Token(0);
const SIGNALS: Token = Token(usize::MAX);
/// The [`Waker`] a producer of input uses to say a chunk is ready.
const INPUT: Token = Token(1);
/// Read size: large enough that a file echo moves in few calls.
const READ_CHUNK: usize = 64 * 1024;
/// How long to wait for the server's FIN after a complete echo, to catch
/// bytes it sends beyond the echo.
pub const CLOSE_GRACE: Duration = Duration::from_millis(500);

/// The poll, its events and the Ctrl+C pipes, reused across connections.
#[derive(Debug)]
pub struct Session {
    poll: Poll,
    events: Events,
    signals: StopSignals,
    scratch: Vec<u8>,
}

/// A connected socket and how long the handshake took.
#[derive(Debug)]
pub struct Connected {
    /// The socket, registered with the session's `Poll`.
    pub stream: TcpStream,
    /// The address it is connected to.
    pub addr: SocketAddr,
    /// From `connect` to the handshake completing.
    pub connect_time: Duration,
}

/// What a [`Feed`] has for [`Session::transfer`].
#[derive(Debug)]
pub enum Chunk {
    /// More bytes to send.
    Data(Vec<u8>),
    /// Nothing yet: the producer wakes the session's poll when there is.
    NotYet,
    /// The input is over.
    End,
}

/// The bytes [`Session::transfer`] sends, a chunk at a time.
pub trait Feed {
    /// The next chunk, without blocking.
    fn next_chunk(&mut self) -> Result<Chunk, ClientError>;
}

/// How far a [`Session::transfer`] got, kept up to date as it runs so
/// that a failure or Ctrl+C can say what was verified.
#[derive(Debug, Default, Clone, Copy)]
pub struct Progress {
    /// Bytes written to the connection.
    pub sent: u64,
    /// Bytes echoed and found identical to what was sent.
    pub verified: u64,
    /// When the first byte was written.
    pub started: Option<Instant>,
}

/// What happened while waiting.
enum Wake {
    Ready,
    TimedOut,
}

impl Session {
    /// Creates the poll and installs the Ctrl+C / SIGTERM handlers.
    pub fn new() -> Result<Self, ClientError> {
        let setup = |e: io::Error| ClientError::Other(format!("cannot set up the event loop: {e}"));
        let poll = Poll::new().map_err(setup)?;
        let mut signals = StopSignals::install().map_err(setup)?;
        signals.register(poll.registry(), SIGNALS).map_err(setup)?;
        Ok(Self {
            poll,
            events: Events::with_capacity(16),
            signals,
            scratch: vec![0; READ_CHUNK],
        })
    }

    /// Blocks until the socket may be ready, `deadline` passes, or a signal
    /// arrives (then `Err(Interrupted)`).
    fn wait(&mut self, deadline: Option<Instant>) -> Result<Wake, ClientError> {
        let timeout = deadline.map(|d| d.saturating_duration_since(Instant::now()));
        match self.poll.poll(&mut self.events, timeout) {
            Ok(()) => {}
            // A signal interrupted the poll; its pipe is readable next time.
            Err(e) if e.kind() == ErrorKind::Interrupted => return Ok(Wake::Ready),
            Err(e) => return Err(ClientError::Other(format!("poll failed: {e}"))),
        }
        let mut signalled = false;
        for event in self.events.iter() {
            if self.signals.take(SIGNALS, event.token()).is_some() {
                signalled = true;
            }
        }
        if signalled {
            return Err(ClientError::Interrupted);
        }
        match deadline {
            Some(d) if Instant::now() >= d => Ok(Wake::TimedOut),
            _ => Ok(Wake::Ready),
        }
    }

    /// A waker for the [`Feed`] of a [`Session::transfer`], which may live
    /// on another thread.
    pub fn waker(&self) -> Result<Waker, ClientError> {
        Waker::new(self.poll.registry(), INPUT)
            .map_err(|e| ClientError::Other(format!("cannot set up the event loop: {e}")))
    }

    /// Sleeps until `until`, or returns `Err(Interrupted)` on Ctrl+C.
    pub fn sleep_until(&mut self, until: Instant) -> Result<(), ClientError> {
        while Instant::now() < until {
            self.wait(Some(until))?;
        }
        Ok(())
    }

    /// Connects to `addr`, giving up after `timeout`.
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
        Ok(Connected {
            stream,
            addr,
            connect_time,
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
                Err(e) => last = e,
            }
        }
        Err(last)
    }

    /// Writes `payload` while reading its echo, checking every byte; returns
    /// the time from the first write to the last echoed byte. `timeout` is
    /// the longest wait for progress, so a large file over a slow path does
    /// not time out while it is still moving.
    pub fn exchange(
        &mut self,
        stream: &mut TcpStream,
        payload: &[u8],
        timeout: Duration,
    ) -> Result<Duration, ClientError> {
        let expected = payload.len() as u64;
        let started = Instant::now();
        let mut written = 0;
        let mut received = 0;
        let mut deadline = started + timeout;
        while received < payload.len() {
            let mut progressed = false;
            while written < payload.len() {
                match stream.write(&payload[written..]) {
                    Ok(n) => {
                        written += n;
                        progressed = true;
                    }
                    Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                    Err(e) if e.kind() == ErrorKind::Interrupted => {}
                    Err(e) => return Err(stream_error(e, received as u64, expected)),
                }
            }
            loop {
                match stream.read(&mut self.scratch) {
                    // The peer stopped sending before the echo was complete.
                    Ok(0) => {
                        return Err(ClientError::ClosedEarly {
                            received: received as u64,
                            expected,
                            reset: false,
                        })
                    }
                    Ok(n) => {
                        check_echo(&payload[received..], &self.scratch[..n], received as u64)?;
                        received += n;
                        progressed = true;
                        if received == payload.len() {
                            break;
                        }
                    }
                    Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                    Err(e) if e.kind() == ErrorKind::Interrupted => {}
                    Err(e) => return Err(stream_error(e, received as u64, expected)),
                }
            }
            if received == payload.len() {
                break;
            }
            let now = Instant::now();
            if progressed {
                deadline = now + timeout;
            }
            if let Wake::TimedOut = self.wait(Some(deadline))? {
                return Err(ClientError::EchoTimeout {
                    received: received as u64,
                    expected,
                    after: timeout,
                });
            }
        }
        Ok(started.elapsed())
    }

    /// Sends everything `feed` yields while reading the echo, checking each
    /// byte as it arrives: at most `window` bytes are held (read from the
    /// feed but not yet verified), so an input of any size, even an endless
    /// one, streams in bounded memory. `timeout` is the longest wait for the
    /// next echoed byte while some are awaited; waiting for input has no
    /// limit. `progress` says how far it got, whatever the outcome.
    pub fn transfer(
        &mut self,
        stream: &mut TcpStream,
        feed: &mut dyn Feed,
        window: usize,
        timeout: Duration,
        progress: &mut Progress,
    ) -> Result<(), ClientError> {
        let mut held = Held::default();
        let mut ended = false;
        let mut last_progress = Instant::now();
        loop {
            let mut progressed = false;
            while !ended && held.len() < window {
                match feed.next_chunk()? {
                    Chunk::Data(chunk) => held.push(chunk),
                    Chunk::NotYet => break,
                    Chunk::End => ended = true,
                }
            }
            while let Some(unsent) = held.unsent(progress.sent) {
                match stream.write(unsent) {
                    Ok(n) => {
                        progress.started.get_or_insert_with(Instant::now);
                        progress.sent += n as u64;
                        progressed = true;
                    }
                    Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                    Err(e) if e.kind() == ErrorKind::Interrupted => {}
                    Err(e) => return Err(stream_error(e, progress.verified, progress.sent)),
                }
            }
            loop {
                match stream.read(&mut self.scratch) {
                    // The peer stopped sending before the echo was complete.
                    Ok(0) => {
                        return Err(ClientError::ClosedEarly {
                            received: progress.verified,
                            expected: progress.sent,
                            reset: false,
                        })
                    }
                    Ok(n) => {
                        held.verify(&self.scratch[..n], progress)?;
                        progressed = true;
                    }
                    Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                    Err(e) if e.kind() == ErrorKind::Interrupted => {}
                    Err(e) => return Err(stream_error(e, progress.verified, progress.sent)),
                }
            }
            if ended && held.len() == 0 {
                return Ok(());
            }
            if progressed {
                // Verified echo may have made room in the window while the
                // feed's wake-ups were spent: pull again before waiting.
                last_progress = Instant::now();
                continue;
            }
            let awaited = progress.sent > progress.verified;
            let deadline = awaited.then(|| last_progress + timeout);
            if let Wake::TimedOut = self.wait(deadline)? {
                return Err(ClientError::EchoTimeout {
                    received: progress.verified,
                    expected: progress.sent,
                    after: timeout,
                });
            }
            // Time spent waiting for input counts for nothing against the
            // echo's timeout.
            if !awaited {
                last_progress = Instant::now();
            }
        }
    }

    /// After a complete echo: half-closes and waits up to `grace` for the
    /// server's FIN, failing if any byte beyond the `sent` ones arrives. A
    /// server that keeps the connection open past `grace` is not an error.
    pub fn finish(
        &mut self,
        stream: &mut TcpStream,
        sent: u64,
        grace: Duration,
    ) -> Result<(), ClientError> {
        // The server may already have closed; the shutdown result adds nothing.
        let _ = stream.shutdown(Shutdown::Write);
        let deadline = Instant::now() + grace;
        loop {
            if let Some(verdict) = self.read_beyond(stream, sent) {
                return verdict;
            }
            if let Wake::TimedOut = self.wait(Some(deadline))? {
                return Ok(());
            }
        }
    }

    /// Between two echoes on one connection, without waiting: fails if the
    /// server sent anything beyond the `sent` bytes echoed so far. A close
    /// or reset is left for the next exchange to report.
    pub fn check_nothing_more(
        &mut self,
        stream: &mut TcpStream,
        sent: u64,
    ) -> Result<(), ClientError> {
        self.read_beyond(stream, sent).unwrap_or(Ok(()))
    }

    /// Reads after a complete echo of `sent` bytes: any byte is one too
    /// many; the end of the stream or a reset loses nothing of the check.
    /// `None` while nothing has arrived yet.
    fn read_beyond(
        &mut self,
        stream: &mut TcpStream,
        sent: u64,
    ) -> Option<Result<(), ClientError>> {
        loop {
            return match stream.read(&mut self.scratch) {
                Ok(0) => Some(Ok(())),
                Ok(_) => Some(Err(ClientError::Mismatch(Mismatch {
                    offset: sent,
                    sent: 0,
                    received: None,
                }))),
                Err(e) if e.kind() == ErrorKind::WouldBlock => None,
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(_) => Some(Ok(())),
            };
        }
    }

    /// Removes a socket from the poll before it is dropped.
    pub fn close(&mut self, mut stream: TcpStream) {
        // Dropping closes the descriptor, which also removes it from epoll.
        let _ = self.poll.registry().deregister(&mut stream);
    }
}

/// The bytes a transfer holds: read from the feed, maybe sent, not yet
/// verified; the front chunk goes once its last byte is verified.
#[derive(Debug, Default)]
struct Held {
    chunks: VecDeque<Vec<u8>>,
    /// Stream offset of the first byte of the front chunk.
    base: u64,
    /// Bytes in all chunks.
    bytes: usize,
}

impl Held {
    fn push(&mut self, chunk: Vec<u8>) {
        if !chunk.is_empty() {
            self.bytes += chunk.len();
            self.chunks.push_back(chunk);
        }
    }

    /// Bytes held (the front chunk's verified ones included).
    fn len(&self) -> usize {
        self.bytes
    }

    /// The held bytes from stream offset `at` to the end of their chunk;
    /// `None` when all are sent.
    fn unsent(&self, at: u64) -> Option<&[u8]> {
        let mut skip = usize::try_from(at - self.base).ok()?;
        for chunk in &self.chunks {
            if skip < chunk.len() {
                return Some(&chunk[skip..]);
            }
            skip -= chunk.len();
        }
        None
    }

    /// Checks `echo`, which follows the `progress.verified` bytes already
    /// checked, against what was sent there, and lets go of what it
    /// verifies. Echoed bytes beyond those sent are extra.
    fn verify(&mut self, echo: &[u8], progress: &mut Progress) -> Result<(), ClientError> {
        let mut echo = echo;
        while !echo.is_empty() {
            let awaited = (progress.sent - progress.verified) as usize;
            let front_start = (progress.verified - self.base) as usize;
            let Some(front) = self.chunks.front() else {
                break;
            };
            let sent_here = &front[front_start..];
            let sent_here = &sent_here[..sent_here.len().min(awaited)];
            if sent_here.is_empty() {
                break;
            }
            let n = echo.len().min(sent_here.len());
            check_echo(&sent_here[..n], &echo[..n], progress.verified)?;
            progress.verified += n as u64;
            echo = &echo[n..];
            if front_start + n == front.len() {
                self.base += front.len() as u64;
                self.bytes -= front.len();
                self.chunks.pop_front();
            }
        }
        if !echo.is_empty() {
            return Err(ClientError::Mismatch(Mismatch {
                offset: progress.verified,
                sent: 0,
                received: None,
            }));
        }
        Ok(())
    }
}

/// Compares a chunk of echo with what was sent at the same place.
fn check_echo(expected_rest: &[u8], got: &[u8], offset: u64) -> Result<(), ClientError> {
    if let Some(i) = first_difference(expected_rest, got) {
        return Err(ClientError::Mismatch(Mismatch {
            offset: offset + i as u64,
            sent: expected_rest[i],
            received: Some(got[i]),
        }));
    }
    if got.len() > expected_rest.len() {
        return Err(ClientError::Mismatch(Mismatch {
            offset: offset + expected_rest.len() as u64,
            sent: 0,
            received: None,
        }));
    }
    Ok(())
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
pub fn refuse_self_connect(local: io::Result<SocketAddr>, peer: SocketAddr) -> io::Result<()> {
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

fn stream_error(e: io::Error, received: u64, expected: u64) -> ClientError {
    if is_reset(&e) {
        ClientError::ClosedEarly {
            received,
            expected,
            reset: true,
        }
    } else {
        ClientError::Other(format!("connection failed: {e}"))
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

    #[test]
    fn echo_check_finds_wrong_and_extra_bytes() {
        assert!(check_echo(b"hello", b"hel", 0).is_ok());
        match check_echo(b"llo", b"lLo", 2) {
            Err(ClientError::Mismatch(m)) => {
                assert_eq!((m.offset, m.sent, m.received), (3, b'l', Some(b'L')))
            }
            other => panic!("{other:?}"),
        }
        match check_echo(b"o", b"o!", 4) {
            Err(ClientError::Mismatch(m)) => assert_eq!((m.offset, m.received), (5, None)),
            other => panic!("{other:?}"),
        }
    }
}
