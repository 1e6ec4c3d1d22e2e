//! Signals delivered as readable events in a `Poll`: SIGINT and SIGTERM
//! (stop), and for the server also SIGUSR1 (report now) and SIGHUP (reload).
//!
//! signal-hook's handler writes one byte into a socket pair per signal (the
//! self-pipe pattern), so the event loop learns of a signal like any other
//! readiness and acts on it outside the handler. A signal that interrupts
//! `poll` makes it return EINTR; the loop just polls again and finds the
//! pipe readable.

use std::io::{self, ErrorKind, Read};

use mio::net::UnixStream;
use mio::{Interest, Registry, Token};
use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM, SIGUSR1};
use signal_hook::low_level::pipe;

/// A signal the process handles.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Signal {
    /// Its number (`SIGTERM` is 15).
    pub number: i32,
    /// Its name, for the log.
    pub name: &'static str,
}

/// Asks to stop (the first time: drain; again: at once).
pub const INT: Signal = Signal {
    number: SIGINT,
    name: "SIGINT",
};
/// Asks to stop, as [`INT`].
pub const TERM: Signal = Signal {
    number: SIGTERM,
    name: "SIGTERM",
};
/// Asks the server to reload its files.
pub const HUP: Signal = Signal {
    number: SIGHUP,
    name: "SIGHUP",
};
/// Asks the server for a STATS line now (as xinetd dumps its state).
pub const USR1: Signal = Signal {
    number: SIGUSR1,
    name: "SIGUSR1",
};

/// The signals the server handles (see [`StopSignals::install_server`]).
pub const SERVER_SIGNALS: [Signal; 4] = [INT, TERM, HUP, USR1];

/// One self-pipe per handled signal, so the log can name the one that
/// arrived.
#[derive(Debug)]
pub struct StopSignals {
    pipes: Vec<(Signal, UnixStream)>,
}

impl StopSignals {
    /// Installs the handlers for SIGINT and SIGTERM. From now on they no
    /// longer kill the process: they only make the pipes readable.
    pub fn install() -> io::Result<Self> {
        Self::install_for(&[INT, TERM])
    }

    /// As [`install`](Self::install), and SIGHUP and SIGUSR1 too, which
    /// by default would kill the server without its drain or Summary.
    pub fn install_server() -> io::Result<Self> {
        Self::install_for(&SERVER_SIGNALS)
    }

    fn install_for(signals: &[Signal]) -> io::Result<Self> {
        let mut pipes = Vec::with_capacity(signals.len());
        for &signal in signals {
            let (reader, writer) = UnixStream::pair()?;
            pipe::register(signal.number, writer)?;
            pipes.push((signal, reader));
        }
        Ok(Self { pipes })
    }

    /// Registers the read ends with tokens `first`, `first - 1`, ….
    pub fn register(&mut self, registry: &Registry, first: Token) -> io::Result<()> {
        for (i, (_, reader)) in self.pipes.iter_mut().enumerate() {
            registry.register(reader, Token(first.0 - i), Interest::READABLE)?;
        }
        Ok(())
    }

    /// If `token` is one of ours, drains its pipe and returns the signal
    /// with how many times it arrived (0 for a spurious wake-up).
    pub fn take(&mut self, first: Token, token: Token) -> Option<(Signal, usize)> {
        let index = first.0.checked_sub(token.0)?;
        let (signal, reader) = self.pipes.get_mut(index)?;
        let mut count = 0;
        let mut bytes = [0u8; 16];
        loop {
            match reader.read(&mut bytes) {
                Ok(0) => break,
                Ok(n) => count += n,
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                // WouldBlock: drained. Anything else cannot be acted on
                // better than by treating what was read so far as the news.
                Err(_) => break,
            }
        }
        Some((*signal, count))
    }
}

/// Call first thing in `main`. Rust starts programs with SIGPIPE ignored, so
/// a line printed after the reader of stdout went away (`echo-server | head`,
/// `echo-client ping | head`) would make `println!` panic. Restoring the
/// default makes the process end quietly instead, like any Unix filter.
/// Sockets never raise SIGPIPE: std sends with MSG_NOSIGNAL. signal-hook's
/// handler does not, so a [`StopSignals`] must live as long as the process.
pub fn restore_default_sigpipe() {
    // SAFETY: `signal` has no memory-safety preconditions; it runs first in
    // `main`, before any other thread or signal handler exists, and SIG_DFL
    // is a valid disposition for SIGPIPE.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}
