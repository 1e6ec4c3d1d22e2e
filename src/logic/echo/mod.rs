//! The echo state machine of one connection, over any byte stream.
//!
//! [`Echo::pump`] is called whenever the connection may be able to make
//! progress (a readiness event, or the server resuming it after its turn
//! ran out). It moves bytes from the stream back to the stream, oldest
//! first, until the stream would block, and says what should happen next.
//! It knows nothing of sockets, polls or clocks, so tests and fuzzers drive
//! it with scripted streams.
//!
//! Rules it follows, because the event source is edge-triggered:
//! - A read that fills less than it asked for means the kernel's queue is
//!   empty, so it stops without spending a syscall on the `WouldBlock` read;
//!   new data raises a new edge. The exceptions are a peer that has hung up
//!   ([`Echo::note_peer_hangup`]): its EOF raises no further edge, so then
//!   it reads until `Ok(0)` or `WouldBlock`; and urgent data
//!   ([`Echo::note_urgent`], TCP's `MSG_OOB`, which telnet sends on an
//!   interrupt): a read stops short at the urgent mark with more queued
//!   behind it, and a splice does not move past the mark at all, so until
//!   a read sees `WouldBlock` short reads prove nothing and a refused
//!   splice is followed by a plain read, which steps over the mark (the
//!   server keeps urgent bytes inline, so they are echoed in place). Once
//!   the peer's FIN is queued, a splice at the mark returns 0 instead, as
//!   at EOF: a splice's 0 is confirmed by a plain read before the stream
//!   counts as ended.
//! - A write that takes less than it was given means the send buffer is
//!   full; the stream becomes writable again with a new edge.
//! - When it stops reading because its buffer is full, nothing tells it to
//!   start again except its own state: the next pump (after a writable
//!   edge) flushes and then reads, because the buffer has room again.
//!
//! Zero-copy: a connection allowed to ([`Echo::allow_splice`]) switches to
//! a kernel pipe the transport provides ([`Transport::attach_pipe`]) once
//! the peer streams with a deep backlog: a read filled all the room it had,
//! and the receive queue still held at least the allowed backlog
//! ([`Transport::queued_in`], asked at the first such read of a turn). Its bytes
//! then go socket → pipe → socket without entering the process. Copying
//! stays the better path for a stream with little in flight: the bytes are
//! still in the CPU's cache, and copied segments carry a couple of page
//! fragments where spliced ones carry one per pipe page, which costs the
//! receiver more (BENCHMARKS.md, "bulk256k"). The
//! pipe is the same bounded buffer in the kernel: the same rules apply,
//! with one difference: a short splice into the pipe does not show the
//! socket empty (the pipe also runs out of slots), so only `WouldBlock`
//! with an empty pipe counts as drained. The switch happens only with
//! nothing buffered, so buffered bytes always precede piped ones.
//!
//! Services (`--mode`): the same machine drives every mode. What it read
//! goes to its [`Service`], which writes its answer into the same bounded
//! buffer (reads are sized so the answer fits); plain echo alone skips
//! that and writes the bytes straight back, and alone may splice. The turn
//! is compiled once for echo and once for the other services (a const
//! generic), so echo's turn carries none of their steps. A service may hold
//! the newest bytes of the buffer (an unfinished line or frame): they are
//! not sent until it releases them. A service that answers later (prime
//! checks) gets its answers through [`Echo::deliver`], and the server gives
//! the connection a turn to send them.
//!
//! This file holds the connection's state and what the server asks of it;
//! `turn.rs` the turn and its copying steps, `pipe.rs` the zero-copy steps,
//! `transport.rs` the stream it drives, `close.rs` its phases and close
//! reasons.

mod close;
mod pipe;
mod transport;
mod turn;

pub use close::{CloseReason, Phase};
pub use transport::Transport;

use crate::logic::buffer::PendingBuffer;
use crate::logic::service::{Output, Service};
use pipe::Splice;

/// What the caller should do after a pump.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Next {
    /// Nothing more can happen until the stream signals readiness.
    Wait,
    /// The turn's read budget ran out while the stream may still have
    /// data: call `pump` again soon, after other connections had a turn.
    Resume,
    /// Close the connection.
    Close(CloseReason),
}

/// The result of one [`Echo::pump`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Progress {
    /// Bytes read from the peer in this turn (not counting discarded ones).
    pub received: usize,
    /// Bytes written back to the peer in this turn.
    pub echoed: usize,
    /// What to do next.
    pub next: Next,
    /// True if this turn switched the connection to the zero-copy path.
    pub began_splicing: bool,
    /// True if the peer streams: a read filled all the room it had, or
    /// bytes went through the pipe (only deep streams use it).
    pub streamed: bool,
}

impl Progress {
    /// True if any byte moved, which is what resets the idle timer.
    pub fn moved_bytes(&self) -> bool {
        self.received > 0 || self.echoed > 0
    }
}

/// The echo state of one connection: its pending bytes, phase and counters.
///
/// Invariant, for plain echo: `received == echoed + pending.len() +
/// in_pipe`, so the bytes written back are always a prefix of the bytes
/// read. Every service: at most the buffer's capacity is held.
#[derive(Debug)]
pub struct Echo {
    pending: PendingBuffer,
    phase: Phase,
    received: u64,
    echoed: u64,
    discarded: u64,
    peer_hung_up: bool,
    /// Urgent data was reported and no read has seen the socket empty
    /// since: short reads and refused splices do not show it drained.
    urgent: bool,
    splice: Splice,
    /// Bytes in the transport's pipe, read and not yet echoed.
    in_pipe: usize,
    /// What the connection does with what it reads.
    service: Service,
    /// The newest bytes of `pending` that the service holds back.
    held: usize,
}

impl Echo {
    /// A new echo connection that buffers at most `capacity` unechoed
    /// bytes (the tests' and checks' shorthand).
    #[cfg(any(test, feature = "model-check"))]
    pub fn new(capacity: usize) -> Self {
        Self::with_service(capacity, Service::Echo)
    }

    /// A new connection of `service`, its greeting (if any) queued.
    pub fn with_service(capacity: usize, service: Service) -> Self {
        let mut echo = Self {
            pending: PendingBuffer::new(capacity),
            phase: Phase::Echoing,
            received: 0,
            echoed: 0,
            discarded: 0,
            peer_hung_up: false,
            urgent: false,
            splice: Splice::Off,
            in_pipe: 0,
            service,
            held: 0,
        };
        let greeting = echo.service.greeting();
        echo.pending.push(greeting);
        echo
    }

    /// A prime check this connection submitted has its answer; the caller
    /// must pump soon after, since no event will announce it.
    pub fn deliver(&mut self, prime: bool) {
        let mut out = Output::new(&mut self.pending, &mut self.held);
        self.service.deliver(prime, &mut out);
    }

    /// Lets the connection switch to the transport's pipe once the peer
    /// streams with at least `backlog` bytes waiting to be read (see the
    /// module docs; the server passes `--splice-backlog`).
    pub fn allow_splice(mut self, backlog: usize) -> Self {
        // Every other service must see the bytes.
        if self.service.is_echo() {
            self.splice = Splice::Allowed { backlog };
        }
        self
    }

    /// True once bytes go through the pipe.
    pub fn is_splicing(&self) -> bool {
        matches!(self.splice, Splice::On { .. })
    }

    /// Current phase.
    pub fn phase(&self) -> Phase {
        self.phase
    }

    /// Total bytes read from the peer (and so owed back to it).
    pub fn received(&self) -> u64 {
        self.received
    }

    /// Total bytes written to the peer.
    pub fn echoed(&self) -> u64 {
        self.echoed
    }

    /// Bytes read after the shutdown FIN and thrown away.
    pub fn discarded(&self) -> u64 {
        self.discarded
    }

    /// Bytes waiting to be written (in our buffer, held or not, or the pipe).
    pub fn pending(&self) -> usize {
        self.pending.len() + self.in_pipe
    }

    /// Bytes that may be written now: all but the held ones (echo holds
    /// none).
    fn flushable<const ECHO: bool>(&self) -> usize {
        if ECHO {
            self.pending()
        } else {
            self.pending.len() - self.held + self.in_pipe
        }
    }

    /// True when no read can be taken until some bytes are written.
    fn is_full<const ECHO: bool>(&self) -> bool {
        if !ECHO {
            // Chargen and discard read (and drop) whatever the buffer holds.
            return self.service.input_room(self.pending.free()) == 0;
        }
        match self.splice {
            // Stepping over an urgent mark can leave bytes buffered beside
            // the pipe; together they stay within the bound.
            Splice::On { capacity } => self.in_pipe + self.pending.len() >= capacity,
            _ => self.pending.is_full(),
        }
    }

    /// Records that the event source reported the peer's hang-up (EPOLLRDHUP
    /// or an error), so reads must continue until they see it.
    pub fn note_peer_hangup(&mut self) {
        self.peer_hung_up = true;
    }

    /// Records that the event source reported urgent data (EPOLLPRI): reads
    /// must go on until `WouldBlock` to get past its mark.
    pub fn note_urgent(&mut self) {
        self.urgent = true;
    }

    /// Switches to [`Phase::Draining`]; the caller must pump soon after,
    /// since no event will announce the change.
    pub fn begin_shutdown(&mut self) {
        if self.phase == Phase::Echoing {
            self.phase = Phase::Draining;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::model_check::stream::ScriptedStream as MockStream;
    use crate::model_check::Rng;

    // Random chunking of input and of socket room never reorders, loses or
    // invents a byte, and the buffer never exceeds its cap; urgent marks
    // land anywhere in what is queued, and the peer's FIN comes at random
    // too, often while a mark is still ahead (where a splice returns 0):
    // the connection closes, as `peer closed`, only with everything sent
    // read and echoed.
    #[test]
    fn random_schedules_echo_exactly() {
        let mut rng = Rng(0x2545_F491_4F6C_DD1D);
        let mut next = move |bound: u64| rng.below(bound);
        let mut zeros_at_mark = 0;
        for (capacity, splice) in [
            (1usize, false),
            (5, false),
            (64, false),
            (5, true),
            (64, true),
        ] {
            for episode in 0..60u32 {
                let mut echo = Echo::new(capacity);
                if splice {
                    echo = echo.allow_splice(capacity);
                }
                let mut io = MockStream::default();
                let mut scratch = vec![0; capacity];
                let mut sent = Vec::new();
                let mut closed = None;
                let what = format!("capacity {capacity}, splice {splice}, episode {episode}");
                for step in 0..next(300) as u32 {
                    if !io.eof {
                        let chunk = next(3 * capacity as u64 + 2) as usize;
                        sent.extend((0..chunk).map(|i| (step as usize + i) as u8));
                        io.inbound.extend(&sent[sent.len() - chunk..]);
                    }
                    io.room += next(2 * capacity as u64 + 1) as usize;
                    io.splice_limit = Some(1 + next(capacity as u64) as usize);
                    // Now and then urgent data somewhere in what is queued,
                    // with its event.
                    if io.urgent_mark.is_none() && !io.inbound.is_empty() && next(8) == 0 {
                        io.urgent_mark = Some(next(io.inbound.len() as u64) as usize);
                        echo.note_urgent();
                    }
                    // The FIN, likelier with a mark still ahead; its event
                    // carries the hang-up.
                    let odds = if io.urgent_mark.is_some() { 4 } else { 100 };
                    if !io.eof && next(odds) == 0 {
                        io.eof = true;
                        echo.note_peer_hangup();
                    }
                    let progress = echo.pump(&mut io, &mut scratch, 1 + next(4) as usize);
                    assert!(echo.pending() <= capacity);
                    assert_eq!(io.output[..], sent[..io.output.len()]);
                    if let Next::Close(reason) = progress.next {
                        closed = Some(reason);
                        break;
                    }
                }
                io.room = usize::MAX;
                if !io.eof {
                    io.eof = true;
                    echo.note_peer_hangup();
                }
                for _ in 0..1000 {
                    if closed.is_some() {
                        break;
                    }
                    if let Next::Close(reason) = echo.pump(&mut io, &mut scratch, 16).next {
                        closed = Some(reason);
                    }
                }
                assert_eq!(closed, Some(CloseReason::PeerClosed), "{what}");
                assert!(io.inbound.is_empty(), "{what}: closed with bytes unread");
                assert_eq!(io.output, sent, "{what}");
                zeros_at_mark += io.zeros_at_mark;
            }
        }
        assert!(
            zeros_at_mark >= 20,
            "only {zeros_at_mark} splices met a mark with the FIN queued"
        );
    }
}
