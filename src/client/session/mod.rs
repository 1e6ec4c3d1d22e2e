//! One connection driven by its own mio `Poll`, for the `send` and `ping`
//! modes: connect with a timeout, write a payload while reading its echo,
//! and notice Ctrl+C at any point (the signal pipes sit in the same `Poll`).
//!
//! This file holds the poll, the wait and the end of a connection;
//! `connect` opens one, `transfer` moves bytes and checks their echo.

mod connect;
mod link;
mod transfer;
mod udp;

pub use self::connect::Connected;
pub(crate) use self::connect::{connect_error, connect_outcome};
pub use self::link::Link;
pub use self::transfer::{Chunk, Feed, Progress};
pub use self::udp::MAX_DATAGRAM;

use std::io::{self, ErrorKind, Read};
use std::time::{Duration, Instant};

use mio::{Events, Poll, Token, Waker};

use super::error::{ClientError, Mismatch};
use super::tls::TlsClient;
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
    /// Read with the kernel's receive timestamps (`ping`, after
    /// [`crate::os::rx_timestamp::enable`] on the connection).
    rx_stamps: bool,
    /// The last `exchange`'s RTT by the kernel's receive timestamp.
    stamped_rtt: Option<Duration>,
    /// With `--tls`: every connection is a TLS one, its handshake part
    /// of connecting.
    tls: Option<TlsClient>,
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
            rx_stamps: false,
            stamped_rtt: None,
            tls: None,
        })
    }

    /// Makes every later connection a TLS one (`None`: plain TCP).
    pub fn set_tls(&mut self, tls: Option<TlsClient>) {
        self.tls = tls;
    }

    /// Whether `exchange` reads the kernel's receive timestamps: only for a
    /// connection whose stamping was turned on.
    pub fn use_rx_stamps(&mut self, on: bool) {
        self.rx_stamps = on;
    }

    /// The last `exchange`'s RTT from the write to the kernel's receive
    /// timestamp of the reply's last segment, when the kernel stamped it
    /// (and the stamp is not later than the clock after the read).
    pub fn take_stamped_rtt(&mut self) -> Option<Duration> {
        self.stamped_rtt.take()
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

    /// After a complete echo: half-closes and waits up to `grace` for the
    /// server's FIN, failing if any byte beyond the `sent` ones arrives. A
    /// server that keeps the connection open past `grace` is not an error.
    pub fn finish(
        &mut self,
        stream: &mut Link,
        sent: u64,
        grace: Duration,
    ) -> Result<(), ClientError> {
        stream.shutdown_write();
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
    pub fn check_nothing_more(&mut self, stream: &mut Link, sent: u64) -> Result<(), ClientError> {
        self.read_beyond(stream, sent).unwrap_or(Ok(()))
    }

    /// Reads after a complete echo of `sent` bytes: any byte is one too
    /// many; the end of the stream or a reset loses nothing of the check.
    /// `None` while nothing has arrived yet.
    fn read_beyond(&mut self, stream: &mut Link, sent: u64) -> Option<Result<(), ClientError>> {
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
    pub fn close(&mut self, mut stream: Link) {
        // Dropping closes the descriptor, which also removes it from epoll.
        let _ = self.poll.registry().deregister(stream.tcp());
    }
}
