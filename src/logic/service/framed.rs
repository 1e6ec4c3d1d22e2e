//! `--mode framed`: the protocol of the concurrent-server project.
//!
//! - The server greets with `*`.
//! - Requests are frames `^…$`; bytes outside a frame are ignored.
//! - A frame's reply is each of its bytes plus one (255 wraps to 0), then
//!   a newline: `^abc$` → `bcd\n`.
//! - A frame of `P` and decimal digits asks whether the number is prime:
//!   `^P7$` → `prime\n`, `^P8$` → `composite\n`. The check runs on a
//!   worker thread; its reply is written when it completes, so later
//!   frames on the same connection may be answered first.
//! - Bounds: a frame whose reply would not fit the buffer (its length
//!   over the buffer size less [`FRAMED_HEADROOM`]) → `error: frame too
//!   long\n`, and the rest of it up to `$` is ignored; a number beyond
//!   `u64` → `error: number too large\n`; more than
//!   [`MAX_PENDING_CHECKS`] checks owed to one connection, or the workers'
//!   queue full → `error: busy\n`.
//!
//! The frame being read is held in the connection's buffer, already
//! transformed, until its `$`: a frame that turns out to be a check or too
//! long is dropped from there. Whether it is a check is decided as its
//! bytes come (`P`, then digits only), so no second copy is kept.

use std::collections::VecDeque;

use super::Output;

/// What the server sends on connect.
pub(super) const GREETING: &[u8] = b"*";
/// Checks one connection may have owed at once; more are answered busy.
pub(super) const MAX_PENDING_CHECKS: usize = 16;
/// Room kept in the buffer beside a frame: replies of pending checks and
/// the longest error, with some to spare so reads never shrink to nothing.
pub const FRAMED_HEADROOM: usize = 256;

const PRIME: &[u8] = b"prime\n";
const COMPOSITE: &[u8] = b"composite\n";
/// The longest reply a check can have.
const LONGEST_ANSWER: usize = COMPOSITE.len();
const TOO_LONG: &[u8] = b"error: frame too long\n";
const TOO_LARGE: &[u8] = b"error: number too large\n";
const BUSY: &[u8] = b"error: busy\n";
/// The longest reply written at once.
const LONGEST_REPLY: usize = TOO_LARGE.len();
/// The most bytes one byte of input can add to the output: `^P1$` (four
/// bytes) may be answered `error: busy\n` (twelve).
const GROWTH: usize = 3;

/// Where the parser is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Between frames: everything but `^` is ignored.
    Outside,
    /// In a frame of `len` bytes so far.
    Frame { len: usize, kind: Kind },
    /// In a frame that was too long: everything up to `$` is ignored.
    Skipping,
}

/// What the frame being read may still be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// Nothing read yet.
    Empty,
    /// `P` so far.
    P,
    /// `P` and digits: the number so far, `None` once past `u64`.
    Number(Option<u64>),
    /// Anything else: an echo frame.
    Echo,
}

impl Kind {
    fn next(self, byte: u8) -> Kind {
        let digit = byte.wrapping_sub(b'0');
        match self {
            Kind::Empty if byte == b'P' => Kind::P,
            Kind::P if digit < 10 => Kind::Number(Some(u64::from(digit))),
            Kind::Number(n) if digit < 10 => Kind::Number(
                n.and_then(|n| n.checked_mul(10))
                    .and_then(|n| n.checked_add(u64::from(digit))),
            ),
            _ => Kind::Echo,
        }
    }
}

/// One connection's framed protocol.
#[derive(Debug)]
pub struct Framed {
    state: State,
    /// The longest frame answered.
    max_frame: usize,
    /// Checks handed to the workers and not back yet.
    in_flight: usize,
    /// Answers that came back while a frame was held, oldest first; they
    /// go out when it ends (at most [`MAX_PENDING_CHECKS`]).
    ready: VecDeque<bool>,
}

impl Framed {
    /// The protocol for a buffer of `capacity` bytes (at least twice
    /// [`FRAMED_HEADROOM`], which the command line makes sure of).
    pub fn new(capacity: usize) -> Self {
        Self {
            state: State::Outside,
            max_frame: capacity.saturating_sub(FRAMED_HEADROOM).max(1),
            in_flight: 0,
            ready: VecDeque::new(),
        }
    }

    /// Checks owed: submitted, or answered and not yet written.
    pub(super) fn outstanding(&self) -> usize {
        self.in_flight + self.ready.len()
    }

    /// Input whose replies surely fit in `free`, with the room for the
    /// owed checks' answers kept aside.
    pub(super) fn input_room(&self, free: usize) -> usize {
        let kept = self.outstanding() * LONGEST_ANSWER + LONGEST_REPLY;
        free.saturating_sub(kept) / GROWTH
    }

    pub(super) fn feed(
        &mut self,
        input: &mut [u8],
        out: &mut Output<'_>,
        submit: &mut impl FnMut(u64) -> bool,
    ) {
        let mut rest = input;
        while !rest.is_empty() {
            match self.state {
                State::Outside => match rest.iter().position(|&b| b == b'^') {
                    Some(i) => {
                        self.state = State::Frame {
                            len: 0,
                            kind: Kind::Empty,
                        };
                        rest = &mut std::mem::take(&mut rest)[i + 1..];
                    }
                    None => return,
                },
                State::Skipping => match rest.iter().position(|&b| b == b'$') {
                    Some(i) => {
                        self.state = State::Outside;
                        rest = &mut std::mem::take(&mut rest)[i + 1..];
                    }
                    None => return,
                },
                State::Frame { len, kind } => {
                    let end = rest.iter().position(|&b| b == b'$');
                    let body_len = end.unwrap_or(rest.len());
                    let (body, tail) = std::mem::take(&mut rest).split_at_mut(body_len);
                    rest = tail;
                    if len + body.len() > self.max_frame {
                        out.drop_held();
                        out.send(TOO_LONG);
                        self.send_ready(out);
                        self.state = State::Skipping;
                        continue;
                    }
                    let kind = body.iter().fold(kind, |kind, &b| kind.next(b));
                    for b in body.iter_mut() {
                        *b = b.wrapping_add(1);
                    }
                    out.hold(body);
                    self.state = State::Frame {
                        len: len + body.len(),
                        kind,
                    };
                    if end.is_some() {
                        rest = &mut std::mem::take(&mut rest)[1..];
                        self.end_frame(kind, out, submit);
                    }
                }
            }
        }
    }

    /// The `$` of a frame of `kind`: its reply, or its check submitted.
    fn end_frame(
        &mut self,
        kind: Kind,
        out: &mut Output<'_>,
        submit: &mut impl FnMut(u64) -> bool,
    ) {
        self.state = State::Outside;
        match kind {
            Kind::Number(number) => {
                out.drop_held();
                match number {
                    None => out.send(TOO_LARGE),
                    Some(n) if self.outstanding() < MAX_PENDING_CHECKS && submit(n) => {
                        self.in_flight += 1;
                    }
                    Some(_) => out.send(BUSY),
                }
            }
            _ => {
                out.hold(b"\n");
                out.release_held();
            }
        }
        self.send_ready(out);
    }

    /// Writes the answers that waited for a held frame to end.
    fn send_ready(&mut self, out: &mut Output<'_>) {
        while let Some(prime) = self.ready.pop_front() {
            out.send(answer(prime));
        }
    }

    pub(super) fn finish(&mut self, out: &mut Output<'_>) {
        out.drop_held();
        self.state = State::Outside;
        self.send_ready(out);
    }

    pub(super) fn deliver(&mut self, prime: bool, out: &mut Output<'_>) {
        debug_assert!(self.in_flight > 0, "an answer nobody asked for");
        self.in_flight = self.in_flight.saturating_sub(1);
        if out.held() == 0 {
            out.send(answer(prime));
        } else {
            self.ready.push_back(prime);
        }
    }
}

fn answer(prime: bool) -> &'static [u8] {
    if prime {
        PRIME
    } else {
        COMPOSITE
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::logic::buffer::PendingBuffer;

    /// Feeds `chunks`, with checks taken while `accept` says so; returns
    /// what may be sent, and the numbers submitted.
    fn run(capacity: usize, chunks: &[&[u8]], accept: bool) -> (Vec<u8>, Vec<u64>) {
        let mut framed = Framed::new(capacity);
        let mut pending = PendingBuffer::new(capacity);
        let mut held = 0;
        let mut asked = Vec::new();
        for chunk in chunks {
            let mut input = chunk.to_vec();
            let mut out = Output::new(&mut pending, &mut held);
            framed.feed(&mut input, &mut out, &mut |n| {
                asked.push(n);
                accept
            });
        }
        let flushable = pending.len() - held;
        let mut sent = Vec::new();
        while sent.len() < flushable {
            let chunk = pending.readable();
            let n = chunk.len().min(flushable - sent.len());
            sent.extend_from_slice(&chunk[..n]);
            pending.consume(n);
        }
        (sent, asked)
    }

    // The protocol's own examples, split anywhere.
    #[test]
    fn frames_are_answered_plus_one() {
        let (sent, asked) = run(
            1024,
            &[b"junk^abc$^", b"P1000000007", b"$x^$^P$^Pa1$^\xff$"],
            true,
        );
        assert_eq!(sent, b"bcd\n\nQ\nQb2\n\x00\n");
        assert_eq!(asked, [1_000_000_007]);
        let (sent, _) = run(1024, &[b"^ab"], true);
        assert_eq!(sent, b"", "an unfinished frame is not sent");
    }

    // Each bound has its reply, and the stream goes on after it.
    #[test]
    fn bounds_have_their_errors() {
        let (sent, asked) = run(
            1024,
            &[b"^P18446744073709551616$^P18446744073709551615$"],
            true,
        );
        assert_eq!(sent, b"error: number too large\n");
        assert_eq!(asked, [u64::MAX]);
        let long = [b"^".as_slice(), &[b'a'; 769], b"$^a$"].concat();
        let (sent, _) = run(1024, &[&long], true);
        assert_eq!(sent, b"error: frame too long\nb\n");
        let (sent, _) = run(1024, &[b"^P2$^P3$"], false);
        assert_eq!(sent, b"error: busy\nerror: busy\n");
        let many = b"^P2$".repeat(MAX_PENDING_CHECKS + 1);
        let (sent, asked) = run(1024, &[&many], true);
        assert_eq!(sent, b"error: busy\n");
        assert_eq!(asked.len(), MAX_PENDING_CHECKS);
    }

    // An answer that comes while a frame is held waits for the frame's end.
    #[test]
    fn answers_wait_for_a_held_frame() {
        let mut framed = Framed::new(1024);
        let mut pending = PendingBuffer::new(1024);
        let mut held = 0;
        let mut out = Output::new(&mut pending, &mut held);
        framed.feed(&mut b"^P7$^ab".to_vec(), &mut out, &mut |_| true);
        framed.deliver(true, &mut out);
        assert_eq!(framed.outstanding(), 1);
        framed.feed(&mut b"$".to_vec(), &mut out, &mut |_| true);
        assert_eq!(framed.outstanding(), 0);
        assert_eq!(held, 0);
        assert_eq!(pending.readable(), b"bc\nprime\n");
    }
}
