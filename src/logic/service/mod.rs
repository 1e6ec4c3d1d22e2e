//! Services: what a connection does with the bytes it reads (`--mode`).
//!
//! The connection's state machine ([`Echo`](crate::logic::echo::Echo))
//! is the same for every mode: the loop, the one bounded buffer,
//! backpressure, half-close, idle timeout, counters and shutdown. A
//! [`Service`] only turns the bytes one read brought in into the bytes to
//! send back, which it writes into that buffer through an [`Output`].
//! Dispatch is a `match` per read (or per generated chunk), never per byte.
//!
//! Echo itself takes a fast path the others cannot: its bytes go straight
//! back from the read buffer, and only echo may splice (every other mode
//! must see the bytes). A new mode is one file here, a variant of
//! [`Mode`] and [`Service`], and its arms in the `match`es below.
//!
//! The buffer bound holds for every mode because a read never takes more
//! input than the service can answer in the room left
//! ([`Service::input_room`]): each service knows the most it can write
//! for a given input. A reply that is not yet complete (a line under
//! `--max-line`, a frame) is *held*: it sits at the end of the buffer and
//! is not sent until it is complete, or is dropped if it turns out too
//! long. Replies that come later (prime checks) have their room kept
//! free while they are pending.

mod chargen;
mod discard;
mod echo;
mod framed;
mod lines;
pub mod prime;
mod upper;

pub use chargen::Chargen;
pub use framed::{Framed, FRAMED_HEADROOM};
pub use lines::{Lines, LINES_HEADROOM};
pub use prime::PrimeTest;

use crate::logic::buffer::PendingBuffer;

/// What the server does with a connection's bytes (`--mode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Mode {
    /// Every byte back as it came (the default).
    #[default]
    Echo,
    /// ASCII letters uppercased, every other byte as it came.
    Upper,
    /// RFC 863: read and count, send nothing.
    Discard,
    /// RFC 864: a rotating pattern of printable characters, as fast as the
    /// client reads; its input is read and dropped.
    Chargen,
    /// The framed protocol: `*` on connect, `^…$` frames answered with
    /// each byte plus one, `^P<digits>$` with `prime` or `composite`.
    Framed,
}

impl Mode {
    /// Every mode, in the order `--help` lists them.
    pub const ALL: [Mode; 5] = [
        Mode::Echo,
        Mode::Upper,
        Mode::Discard,
        Mode::Chargen,
        Mode::Framed,
    ];

    /// Its name on the command line, in logs and on the endpoint.
    pub fn name(self) -> &'static str {
        match self {
            Mode::Echo => "echo",
            Mode::Upper => "upper",
            Mode::Discard => "discard",
            Mode::Chargen => "chargen",
            Mode::Framed => "framed",
        }
    }

    /// The mode called `name`.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|m| m.name() == name)
    }

    /// True for the modes `--max-line` applies to.
    pub fn takes_lines(self) -> bool {
        matches!(self, Mode::Echo | Mode::Upper)
    }
}

/// A connection's output: its one bounded buffer, whose newest `held`
/// bytes are an unfinished reply that must not be sent yet.
#[derive(Debug)]
pub struct Output<'a> {
    pending: &'a mut PendingBuffer,
    held: &'a mut usize,
}

impl<'a> Output<'a> {
    /// The output over `pending`, of which the newest `held` are held.
    pub fn new(pending: &'a mut PendingBuffer, held: &'a mut usize) -> Self {
        Self { pending, held }
    }

    /// Bytes held back so far.
    pub fn held(&self) -> usize {
        *self.held
    }

    /// Appends bytes to send as soon as the socket takes them. Nothing may
    /// be held (they would overtake it).
    pub fn send(&mut self, bytes: &[u8]) {
        debug_assert_eq!(*self.held, 0, "sent past a held reply");
        let kept = self.pending.push(bytes);
        debug_assert_eq!(kept, bytes.len(), "a service outgrew its room");
    }

    /// Appends bytes to the held reply.
    pub fn hold(&mut self, bytes: &[u8]) {
        let kept = self.pending.push(bytes);
        debug_assert_eq!(kept, bytes.len(), "a service outgrew its room");
        *self.held += kept;
    }

    /// The held reply is complete: it may be sent.
    pub fn release_held(&mut self) {
        *self.held = 0;
    }

    /// The held reply is refused: its bytes are dropped.
    pub fn drop_held(&mut self) {
        self.pending.truncate_back(*self.held);
        *self.held = 0;
    }
}

/// One connection's service: the mode with its per-connection state.
#[derive(Debug)]
pub enum Service {
    /// See [`Mode::Echo`]; the connection's fast path does the work.
    Echo,
    /// See [`Mode::Upper`].
    Upper,
    /// `echo` or `upper` with `--max-line`.
    Lines(Lines),
    /// See [`Mode::Discard`].
    Discard,
    /// See [`Mode::Chargen`].
    Chargen(Chargen),
    /// See [`Mode::Framed`].
    Framed(Framed),
}

impl Service {
    /// The service of `mode` for a connection whose buffer holds
    /// `capacity` bytes; `max_line` applies to echo and upper. The
    /// command line makes sure the buffer leaves the room each needs.
    pub fn new(mode: Mode, max_line: Option<usize>, capacity: usize) -> Self {
        match (mode, max_line) {
            (Mode::Echo, None) => Service::Echo,
            (Mode::Upper, None) => Service::Upper,
            (Mode::Echo | Mode::Upper, Some(max)) => {
                Service::Lines(Lines::new(max, mode == Mode::Upper))
            }
            (Mode::Discard, _) => Service::Discard,
            (Mode::Chargen, _) => Service::Chargen(Chargen::default()),
            (Mode::Framed, _) => Service::Framed(Framed::new(capacity)),
        }
    }

    /// True for plain echo, the one service whose bytes may go straight
    /// back (and through the kernel pipe) without being looked at.
    #[inline(always)]
    pub fn is_echo(&self) -> bool {
        matches!(self, Service::Echo)
    }

    /// What the peer reads first, before it sends anything.
    pub fn greeting(&self) -> &'static [u8] {
        match self {
            Service::Framed(_) => framed::GREETING,
            _ => b"",
        }
    }

    /// The most input one read may take when `free` bytes of the buffer
    /// are free: whatever the bytes are, the replies to them fit.
    pub fn input_room(&self, free: usize) -> usize {
        match self {
            Service::Echo | Service::Upper => free,
            Service::Lines(lines) => lines.input_room(free),
            Service::Discard | Service::Chargen(_) => usize::MAX,
            Service::Framed(framed) => framed.input_room(free),
        }
    }

    /// Answers the bytes of one read into `out`; `submit` hands a prime
    /// check to the workers and says whether they took it.
    pub fn feed(
        &mut self,
        input: &mut [u8],
        out: &mut Output<'_>,
        submit: &mut impl FnMut(u64) -> bool,
    ) {
        match self {
            Service::Echo => out.send(input),
            Service::Upper => upper::feed(input, out),
            Service::Lines(lines) => lines.feed(input, out),
            Service::Discard | Service::Chargen(_) => discard::feed(input),
            Service::Framed(framed) => framed.feed(input, out, submit),
        }
    }

    /// The peer's input ended: a final line without its newline is still a
    /// line; an unfinished frame gets no reply.
    pub fn finish(&mut self, out: &mut Output<'_>) {
        match self {
            Service::Lines(lines) => lines.finish(out),
            Service::Framed(framed) => framed.finish(out),
            _ => {}
        }
    }

    /// The generator of a service that sends without being asked (chargen).
    pub fn generator(&mut self) -> Option<&mut Chargen> {
        match self {
            Service::Chargen(chargen) => Some(chargen),
            _ => None,
        }
    }

    /// Replies owed that have not been written yet (prime checks): the
    /// connection must not end before they are.
    pub fn outstanding(&self) -> usize {
        match self {
            Service::Framed(framed) => framed.outstanding(),
            _ => 0,
        }
    }

    /// A prime check this connection submitted has its answer.
    pub fn deliver(&mut self, prime: bool, out: &mut Output<'_>) {
        if let Service::Framed(framed) = self {
            framed.deliver(prime, out);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Names round-trip, and only echo and upper take --max-line.
    #[test]
    fn mode_names_round_trip() {
        for mode in Mode::ALL {
            assert_eq!(Mode::from_name(mode.name()), Some(mode));
        }
        assert_eq!(Mode::from_name("Echo"), None);
        assert!(Mode::Upper.takes_lines() && !Mode::Framed.takes_lines());
    }

    // Held bytes are dropped from the end, sent bytes stay.
    #[test]
    fn output_holds_releases_and_drops() {
        let mut pending = PendingBuffer::new(16);
        let mut held = 0;
        let mut out = Output::new(&mut pending, &mut held);
        out.send(b"ab");
        out.hold(b"cd");
        out.drop_held();
        out.hold(b"ef");
        out.release_held();
        assert_eq!(out.held(), 0);
        assert_eq!(pending.readable(), b"abef");
    }
}
