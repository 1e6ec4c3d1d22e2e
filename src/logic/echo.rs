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

use std::fmt;
use std::io::{self, ErrorKind, Read, Write};

use crate::logic::buffer::PendingBuffer;

/// How many bytes must wait in a connection's receive queue before it
/// switches to the pipe, when the server builds it (see the module docs).
///
/// It sits where the two paths break even (BENCHMARKS.md, "Copy or splice:
/// by how much is in flight"): with less in flight copying is faster, with
/// more splicing is. A queue that deep only forms when the client keeps
/// that much in flight, so the bytes waiting tell the two kinds of stream
/// apart.
pub const SPLICE_BACKLOG: usize = 512 * 1024;

/// A byte stream the echo logic can read, write and half-close.
pub trait Transport: Read + Write {
    /// Sends FIN: the peer reads EOF after the bytes already written.
    fn shutdown_write(&mut self) -> io::Result<()>;

    /// Sets up the zero-copy path: a kernel pipe meant to hold `capacity`
    /// bytes. Returns how many it may hold (at most `capacity`); an error
    /// means this stream keeps copying.
    fn attach_pipe(&mut self, capacity: usize) -> io::Result<usize> {
        let _ = capacity;
        Err(ErrorKind::Unsupported.into())
    }

    /// How many bytes the peer has sent that wait to be read. Only asked
    /// when deciding whether to switch to the pipe; an error means "do not".
    fn queued_in(&mut self) -> io::Result<usize> {
        Err(ErrorKind::Unsupported.into())
    }

    /// Moves up to `max` bytes from the peer into the pipe. `Ok(0)` is EOF,
    /// or the urgent mark with the peer's FIN queued behind it.
    fn splice_in(&mut self, max: usize) -> io::Result<usize> {
        let _ = max;
        Err(ErrorKind::Unsupported.into())
    }

    /// Moves up to `max` bytes from the pipe back to the peer.
    fn splice_out(&mut self, max: usize) -> io::Result<usize> {
        let _ = max;
        Err(ErrorKind::Unsupported.into())
    }
}

// Every echo transport is a stream the HTTP side can drive too.
impl<T: Transport + ?Sized> crate::logic::stream::Stream for T {
    fn shutdown_write(&mut self) -> io::Result<()> {
        Transport::shutdown_write(self)
    }
}

/// Where a connection is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Reading and echoing.
    Echoing,
    /// The peer shut its write side (read returned 0): flush the rest of
    /// its echo, then close.
    PeerDone,
    /// The server is stopping: echo what the peer has already sent (until
    /// a read finds nothing queued), then send FIN.
    Draining,
    /// FIN sent during shutdown: read and discard until the peer closes, so
    /// that closing never turns unread input into an RST that would destroy
    /// echo bytes still in flight.
    Lingering,
}

impl Phase {
    /// Its name where the endpoint lists connections (`/stats.json`).
    pub fn name(self) -> &'static str {
        match self {
            Self::Echoing => "echoing",
            Self::PeerDone => "peer_done",
            Self::Draining => "draining",
            Self::Lingering => "lingering",
        }
    }
}

/// Why a connection ended, as the DISCONNECT log line says it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CloseReason {
    /// The peer closed its side and got its whole echo.
    PeerClosed,
    /// The peer reset the connection (RST, killed process, broken pipe).
    Reset,
    /// Nothing moved for the idle timeout.
    IdleTimeout,
    /// The server stopped.
    Shutdown,
    /// Any other I/O error, with its text.
    Error(String),
}

impl CloseReason {
    /// Each reason's label on the endpoint's closed-connection counters,
    /// at its [`CloseReason::index`].
    pub const LABELS: [&'static str; 5] = ["peer", "reset", "idle_timeout", "shutdown", "error"];

    /// Its place in [`CloseReason::LABELS`] (and in counters kept by reason).
    pub fn index(&self) -> usize {
        match self {
            Self::PeerClosed => 0,
            Self::Reset => 1,
            Self::IdleTimeout => 2,
            Self::Shutdown => 3,
            Self::Error(_) => 4,
        }
    }

    /// Classifies an I/O error that ended a connection.
    pub fn from_io(error: &io::Error) -> Self {
        match error.kind() {
            ErrorKind::ConnectionReset | ErrorKind::ConnectionAborted | ErrorKind::BrokenPipe => {
                Self::Reset
            }
            _ => Self::Error(error.to_string()),
        }
    }
}

impl fmt::Display for CloseReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::PeerClosed => f.write_str("peer closed"),
            Self::Reset => f.write_str("reset by peer"),
            Self::IdleTimeout => f.write_str("idle timeout"),
            Self::Shutdown => f.write_str("shutdown"),
            Self::Error(text) => write!(f, "error: {text}"),
        }
    }
}

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
}

impl Progress {
    /// True if any byte moved, which is what resets the idle timer.
    pub fn moved_bytes(&self) -> bool {
        self.received > 0 || self.echoed > 0
    }
}

/// The echo state of one connection: its pending bytes, phase and counters.
///
/// Invariant: `received == echoed + pending.len() + in_pipe`, so the bytes
/// written back are always a prefix of the bytes read.
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
}

/// Where a connection stands with the zero-copy path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Splice {
    /// Copies through user space for good (not allowed, or the pipe could
    /// not be set up).
    Off,
    /// Allowed once a full read leaves at least `backlog` bytes queued.
    Allowed { backlog: usize },
    /// Such a read happened: switch once nothing is buffered.
    Due,
    /// Bytes go through the pipe, which may hold `capacity` of them.
    On { capacity: usize },
}

/// What is left of one turn's loop besides the counters in [`Progress`].
#[derive(Default)]
struct Turn {
    /// Reads (and splices in) taken, against the turn's budget.
    reads: usize,
    /// This turn has asked how deep the receive queue is.
    depth_asked: bool,
    /// A read showed the kernel's receive queue empty.
    drained: bool,
    /// A write showed the kernel's send buffer full.
    write_blocked: bool,
}

/// Where a step of the turn leaves its loop.
enum Flow {
    /// Back to the top: flush, then read again.
    Again,
    /// On to the next step of the same pass.
    Proceed,
    /// The turn ends with this.
    Stop(Next),
}

/// How a single read or write attempt ended.
enum Attempt {
    Moved(usize),
    WouldBlock,
    Failed(io::Error),
}

fn attempt(result: io::Result<usize>) -> Attempt {
    match result {
        Ok(n) => Attempt::Moved(n),
        Err(e) if e.kind() == ErrorKind::WouldBlock => Attempt::WouldBlock,
        Err(e) => Attempt::Failed(e),
    }
}

/// Retries a syscall interrupted by a signal; the loop is bounded because
/// the self-pipe signal handler returns at once.
fn retry_interrupted(mut op: impl FnMut() -> io::Result<usize>) -> Attempt {
    loop {
        match op() {
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            result => return attempt(result),
        }
    }
}

impl Echo {
    /// A new connection that buffers at most `capacity` unechoed bytes.
    pub fn new(capacity: usize) -> Self {
        Self {
            pending: PendingBuffer::new(capacity),
            phase: Phase::Echoing,
            received: 0,
            echoed: 0,
            discarded: 0,
            peer_hung_up: false,
            urgent: false,
            splice: Splice::Off,
            in_pipe: 0,
        }
    }

    /// Lets the connection switch to the transport's pipe once the peer
    /// streams with at least `backlog` bytes waiting to be read (see the
    /// module docs; the server passes [`SPLICE_BACKLOG`]).
    pub fn allow_splice(mut self, backlog: usize) -> Self {
        self.splice = Splice::Allowed { backlog };
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

    /// Total bytes written back to the peer.
    pub fn echoed(&self) -> u64 {
        self.echoed
    }

    /// Bytes read after the shutdown FIN and thrown away.
    pub fn discarded(&self) -> u64 {
        self.discarded
    }

    /// Bytes read but not yet written back (in our buffer or the pipe).
    pub fn pending(&self) -> usize {
        self.pending.len() + self.in_pipe
    }

    /// True when no read can be taken until some bytes are echoed.
    fn is_full(&self) -> bool {
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

    /// Moves bytes until the stream would block, at most `max_reads` reads.
    ///
    /// `scratch` is shared by all connections: the fast path reads into it
    /// and writes straight back, so only bytes the socket refuses to take
    /// are copied into this connection's own buffer.
    pub fn pump<T: Transport>(
        &mut self,
        stream: &mut T,
        scratch: &mut [u8],
        max_reads: usize,
    ) -> Progress {
        let mut progress = Progress {
            received: 0,
            echoed: 0,
            next: Next::Wait,
            began_splicing: false,
        };
        progress.next = self.run(stream, scratch, max_reads, &mut progress);
        debug_assert_eq!(
            self.received,
            self.echoed + self.pending() as u64,
            "echo accounting broken"
        );
        progress
    }

    /// The turn: flush what waits, then read (or splice) and echo, until
    /// the stream would block, the budget runs out or the connection ends.
    fn run<T: Transport>(
        &mut self,
        stream: &mut T,
        scratch: &mut [u8],
        max_reads: usize,
        progress: &mut Progress,
    ) -> Next {
        let mut turn = Turn::default();
        loop {
            // Waiting bytes go first: echo order is the contract.
            if !turn.write_blocked && self.pending() > 0 {
                match self.flush(stream, progress, &mut turn) {
                    Flow::Again => continue,
                    Flow::Proceed => {}
                    Flow::Stop(next) => return next,
                }
            }
            if self.pending() == 0 {
                if let Some(next) = self.end_phase(stream, &turn) {
                    return next;
                }
            }
            if self.phase == Phase::Lingering {
                return self.discard(stream, scratch, max_reads - turn.reads.min(max_reads));
            }
            if self.phase == Phase::PeerDone || turn.drained || self.is_full() {
                return Next::Wait;
            }
            if turn.reads == max_reads {
                return Next::Resume;
            }
            turn.reads += 1;

            if self.splice == Splice::Due && self.pending.is_empty() && self.phase == Phase::Echoing
            {
                self.switch_to_pipe(stream, progress);
            }
            if let Splice::On { capacity } = self.splice {
                match self.fill_pipe(stream, capacity, progress, &mut turn) {
                    Flow::Again => continue,
                    Flow::Proceed => {}
                    Flow::Stop(next) => return next,
                }
            }
            if let Err(reason) = self.read_in(stream, scratch, progress, &mut turn) {
                return Next::Close(reason);
            }
        }
    }

    /// One write of the oldest waiting bytes. Buffered bytes precede piped
    /// ones (the pipe is attached only when nothing is buffered, and then
    /// nothing is buffered again).
    fn flush<T: Transport>(
        &mut self,
        stream: &mut T,
        progress: &mut Progress,
        turn: &mut Turn,
    ) -> Flow {
        let from_pipe = self.pending.is_empty();
        let (want, outcome) = if from_pipe {
            let in_pipe = self.in_pipe;
            (in_pipe, retry_interrupted(|| stream.splice_out(in_pipe)))
        } else {
            let chunk = self.pending.readable();
            (chunk.len(), retry_interrupted(|| stream.write(chunk)))
        };
        match outcome {
            Attempt::Moved(0) => {
                Flow::Stop(Next::Close(CloseReason::Error("write returned 0".into())))
            }
            Attempt::Moved(n) => {
                if from_pipe {
                    self.in_pipe -= n;
                } else {
                    self.pending.consume(n);
                }
                self.echoed += n as u64;
                progress.echoed += n;
                turn.write_blocked = n < want;
                // Again: the ring may hold a second, wrapped part.
                Flow::Again
            }
            Attempt::WouldBlock => {
                turn.write_blocked = true;
                Flow::Proceed
            }
            Attempt::Failed(e) => Flow::Stop(Next::Close(CloseReason::from_io(&e))),
        }
    }

    /// With the whole echo out: a peer that is done is closed, and a
    /// draining connection whose peer has nothing more queued sends FIN
    /// and lingers.
    fn end_phase<T: Transport>(&mut self, stream: &mut T, turn: &Turn) -> Option<Next> {
        match self.phase {
            Phase::PeerDone => Some(Next::Close(Self::end_of_stream(stream))),
            Phase::Draining if turn.drained => {
                if let Err(e) = stream.shutdown_write() {
                    return Some(Next::Close(CloseReason::from_io(&e)));
                }
                self.phase = Phase::Lingering;
                None
            }
            _ => None,
        }
    }

    /// The switch to the zero-copy path, once it is due and nothing is
    /// buffered; a transport that cannot give a pipe keeps copying.
    fn switch_to_pipe<T: Transport>(&mut self, stream: &mut T, progress: &mut Progress) {
        self.splice = match stream.attach_pipe(self.pending.capacity()) {
            Ok(capacity) if capacity > 0 => {
                progress.began_splicing = true;
                Splice::On { capacity }
            }
            _ => Splice::Off,
        };
    }

    /// One splice from the socket into the pipe, which holds `capacity`.
    /// `Proceed` means: try a plain read instead.
    fn fill_pipe<T: Transport>(
        &mut self,
        stream: &mut T,
        capacity: usize,
        progress: &mut Progress,
        turn: &mut Turn,
    ) -> Flow {
        let want = capacity - self.in_pipe - self.pending.len();
        match retry_interrupted(|| stream.splice_in(want)) {
            // A splice at the urgent mark returns 0 once the peer's FIN is
            // queued, with the mark's byte and more still unread: only the
            // plain read tells that from EOF. Bytes it read would overtake
            // those in the pipe, so they go out first; bytes in the pipe
            // mean the last flush was blocked, and its writable edge brings
            // the connection back.
            Attempt::Moved(0) if self.in_pipe > 0 => Flow::Stop(Next::Wait),
            Attempt::Moved(0) => Flow::Proceed,
            Attempt::Moved(n) => {
                self.in_pipe += n;
                self.received += n as u64;
                progress.received += n;
                Flow::Again
            }
            // Maybe stuck at an urgent mark, which no splice moves past: the
            // plain read steps over it. With the pipe empty its bytes are
            // older than any spliced next, and buffered bytes go out first,
            // so the order holds. The buffer has room: `is_full` counts it
            // with the pipe, whose capacity is at most the buffer's.
            Attempt::WouldBlock if self.in_pipe == 0 && self.urgent => Flow::Proceed,
            // With bytes in the pipe, the pipe may be what is full: only an
            // empty pipe proves the socket empty. Bytes in it mean the last
            // flush was blocked, and its writable edge brings the connection
            // back.
            Attempt::WouldBlock if self.in_pipe == 0 => {
                turn.drained = true;
                Flow::Again
            }
            Attempt::WouldBlock => Flow::Stop(Next::Wait),
            Attempt::Failed(e) => Flow::Stop(Next::Close(CloseReason::from_io(&e))),
        }
    }

    /// One plain read: into `scratch` and straight back out when nothing
    /// waits (the fast path), else behind the buffered bytes.
    fn read_in<T: Transport>(
        &mut self,
        stream: &mut T,
        scratch: &mut [u8],
        progress: &mut Progress,
        turn: &mut Turn,
    ) -> Result<(), CloseReason> {
        let (want, outcome) = if self.pending.is_empty() {
            let want = scratch.len().min(self.pending.capacity());
            (
                want,
                retry_interrupted(|| stream.read(&mut scratch[..want])),
            )
        } else {
            let space = self.pending.writable();
            let want = space.len();
            let outcome = retry_interrupted(|| stream.read(space));
            if let Attempt::Moved(n) = outcome {
                self.pending.commit(n);
            }
            (want, outcome)
        };
        match outcome {
            Attempt::Moved(0) => self.phase = Phase::PeerDone,
            Attempt::Moved(n) => {
                self.received += n as u64;
                progress.received += n;
                turn.drained = n < want && !self.peer_hung_up && !self.urgent;
                if self.pending.is_empty() {
                    // Fast path: the bytes are in `scratch`, echo them now.
                    let data = &scratch[..n];
                    self.echo_from_scratch(stream, data, progress, &mut turn.write_blocked)?;
                }
                if n == want && !turn.depth_asked {
                    self.ask_depth(stream, turn);
                }
            }
            Attempt::WouldBlock => {
                turn.drained = true;
                self.urgent = false;
            }
            Attempt::Failed(e) => return Err(CloseReason::from_io(&e)),
        }
        Ok(())
    }

    /// After a read that filled all its room: a connection allowed to
    /// splice asks how deep the receive queue is, and the pipe becomes due
    /// when it holds the backlog. Asked after the echo went out, so that it
    /// never waits on the question; one syscall per turn at most, and only
    /// for a stream: small messages never fill the room.
    fn ask_depth<T: Transport>(&mut self, stream: &mut T, turn: &mut Turn) {
        if let Splice::Allowed { backlog } = self.splice {
            turn.depth_asked = true;
            if stream.queued_in().is_ok_and(|q| q >= backlog) {
                self.splice = Splice::Due;
            }
        }
    }

    /// Why a connection whose peer's EOF was read, and whose echo is all
    /// out, closes: `peer closed`, unless bytes still wait in the receive
    /// queue, which the close turns into a reset of the peer; the log must
    /// not call that a clean end. The kernel's EOF comes after every byte,
    /// so this only guards against taking something else for it.
    fn end_of_stream<T: Transport>(stream: &mut T) -> CloseReason {
        match stream.queued_in() {
            Ok(unread) if unread > 0 => {
                CloseReason::Error(format!("closed with {unread} bytes unread after EOF"))
            }
            _ => CloseReason::PeerClosed,
        }
    }

    /// Writes freshly read bytes straight back; whatever the socket does not
    /// take waits in the pending buffer (it fits: it is at most one read).
    fn echo_from_scratch<T: Transport>(
        &mut self,
        stream: &mut T,
        data: &[u8],
        progress: &mut Progress,
        write_blocked: &mut bool,
    ) -> Result<(), CloseReason> {
        let written = match retry_interrupted(|| stream.write(data)) {
            Attempt::Moved(n) => n,
            Attempt::WouldBlock => 0,
            Attempt::Failed(e) => {
                // The bytes stay owed, so the counters still add up.
                self.pending.push(data);
                return Err(CloseReason::from_io(&e));
            }
        };
        self.echoed += written as u64;
        progress.echoed += written;
        if written < data.len() {
            *write_blocked = true;
            let kept = self.pending.push(&data[written..]);
            debug_assert_eq!(kept, data.len() - written, "one read always fits");
        }
        Ok(())
    }

    /// After the shutdown FIN: reads and drops input until the peer closes.
    fn discard<T: Transport>(&mut self, stream: &mut T, scratch: &mut [u8], reads: usize) -> Next {
        for _ in 0..reads {
            match retry_interrupted(|| stream.read(scratch)) {
                Attempt::Moved(0) => return Next::Close(CloseReason::Shutdown),
                Attempt::Moved(n) => self.discarded += n as u64,
                Attempt::WouldBlock => return Next::Wait,
                Attempt::Failed(e) => return Next::Close(CloseReason::from_io(&e)),
            }
        }
        Next::Resume
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::model_check::stream::ScriptedStream as MockStream;
    use crate::model_check::Rng;

    fn stream(inbound: &[u8], room: usize) -> MockStream {
        MockStream::new(inbound, room)
    }

    // Ping-pong costs exactly one read and one write: the short read stops
    // the turn without a WouldBlock syscall.
    #[test]
    fn ping_pong_is_one_read_one_write() {
        let mut echo = Echo::new(1024);
        let mut io = stream(b"hello", usize::MAX);
        let mut scratch = vec![0; 1024];
        let progress = echo.pump(&mut io, &mut scratch, 16);
        assert_eq!(progress.next, Next::Wait);
        assert_eq!(io.output, b"hello");
        assert_eq!((io.reads, io.writes), (1, 1));
        assert_eq!((progress.received, progress.echoed), (5, 5));
        assert_eq!(echo.pending(), 0);
    }

    // A peer that does not read fills at most `capacity` bytes, then the
    // connection stops reading; it resumes by itself once the peer drains.
    #[test]
    fn backpressure_stops_reading_and_resumes() {
        let input: Vec<u8> = (0..100u8).collect();
        let mut echo = Echo::new(16);
        let mut io = stream(&input, 0);
        let mut scratch = vec![0; 16];
        let progress = echo.pump(&mut io, &mut scratch, 16);
        assert_eq!(progress.next, Next::Wait);
        assert_eq!(echo.pending(), 16);
        assert_eq!(io.inbound.len(), 84, "read past the cap");

        // A writable event with nothing new to read: state alone resumes it.
        let reads_before = io.reads;
        let progress = echo.pump(&mut io, &mut scratch, 16);
        assert_eq!(progress.next, Next::Wait);
        assert_eq!(io.reads, reads_before, "read while the buffer was full");

        io.room = usize::MAX;
        for _ in 0..100 {
            echo.pump(&mut io, &mut scratch, 2);
            if io.inbound.is_empty() && echo.pending() == 0 {
                break;
            }
        }
        assert_eq!(io.output, input);
    }

    // Half-close: after EOF the whole echo is flushed, then it closes.
    #[test]
    fn eof_flushes_then_closes() {
        let mut echo = Echo::new(64);
        let mut io = stream(b"abcdef", 2);
        io.eof = true;
        echo.note_peer_hangup();
        let mut scratch = vec![0; 64];
        assert_eq!(echo.pump(&mut io, &mut scratch, 16).next, Next::Wait);
        assert_eq!(echo.phase(), Phase::PeerDone);
        io.room = 3;
        assert_eq!(echo.pump(&mut io, &mut scratch, 16).next, Next::Wait);
        io.room = 100;
        let progress = echo.pump(&mut io, &mut scratch, 16);
        assert_eq!(progress.next, Next::Close(CloseReason::PeerClosed));
        assert_eq!(io.output, b"abcdef");
    }

    // Without the hang-up hint a short read ends the turn; with it, the
    // pump keeps reading and sees the EOF that will raise no new edge.
    #[test]
    fn hangup_hint_makes_eof_visible() {
        let mut scratch = vec![0; 64];
        let mut echo = Echo::new(64);
        let mut io = stream(b"bye", 100);
        io.eof = true;
        assert_eq!(echo.pump(&mut io, &mut scratch, 16).next, Next::Wait);

        let mut echo = Echo::new(64);
        let mut io = stream(b"bye", 100);
        io.eof = true;
        echo.note_peer_hangup();
        let progress = echo.pump(&mut io, &mut scratch, 16);
        assert_eq!(progress.next, Next::Close(CloseReason::PeerClosed));
        assert_eq!(io.output, b"bye");
    }

    // A reset is reported as such, not as a generic error.
    #[test]
    fn reset_closes_with_reason() {
        let mut echo = Echo::new(64);
        let mut io = stream(b"", 100);
        io.read_error = Some(ErrorKind::ConnectionReset);
        let progress = echo.pump(&mut io, &mut [0; 64], 16);
        assert_eq!(progress.next, Next::Close(CloseReason::Reset));
        assert_eq!(CloseReason::Reset.to_string(), "reset by peer");
    }

    // A flooding peer gets at most `max_reads` reads per turn, then yields.
    #[test]
    fn read_budget_yields() {
        let mut echo = Echo::new(8);
        let mut io = stream(&[7; 1000], usize::MAX);
        let progress = echo.pump(&mut io, &mut [0; 8], 3);
        assert_eq!(progress.next, Next::Resume);
        assert_eq!(progress.received, 24);
        assert_eq!(io.output.len(), 24);
    }

    // Shutdown: echo what was queued, send FIN, drop late input, close on EOF.
    #[test]
    fn drain_then_fin_then_linger() {
        let mut echo = Echo::new(64);
        let mut io = stream(b"last words", 100);
        let mut scratch = vec![0; 64];
        echo.begin_shutdown();
        assert_eq!(echo.pump(&mut io, &mut scratch, 16).next, Next::Wait);
        assert_eq!(io.output, b"last words");
        assert!(io.fin_sent);
        assert_eq!(echo.phase(), Phase::Lingering);
        io.inbound = b"late".to_vec().into();
        io.eof = true;
        let progress = echo.pump(&mut io, &mut scratch, 16);
        assert_eq!(progress.next, Next::Close(CloseReason::Shutdown));
        assert_eq!(echo.discarded(), 4);
        assert_eq!(echo.received(), 10);
    }

    // A peer streaming with a deep backlog (a full read leaves at least the
    // allowed backlog queued) is switched to the pipe, and from then on no
    // byte goes through read/write.
    #[test]
    fn streaming_switches_to_the_pipe() {
        let input: Vec<u8> = (0..1000u32).map(|i| (i % 251) as u8).collect();
        let mut echo = Echo::new(64).allow_splice(256);
        let mut io = stream(&input, usize::MAX);
        let mut scratch = vec![0; 64];
        let first = echo.pump(&mut io, &mut scratch, 2);
        assert!(first.began_splicing);
        assert!(echo.is_splicing());
        assert_eq!((io.reads, io.writes), (1, 1), "only the first read copies");
        while echo.pump(&mut io, &mut scratch, 2).next == Next::Resume {}
        assert_eq!(io.output, input);
        assert_eq!((io.reads, io.writes), (1, 1));
        assert!(io.splices > 0);
        assert_eq!(echo.pending(), 0);
    }

    // Short reads never switch; nor do full reads with a shallow queue
    // behind them (copying is faster there); and without `allow_splice`
    // nothing does.
    #[test]
    fn only_allowed_deep_streams_splice() {
        let mut echo = Echo::new(64).allow_splice(256);
        let mut io = stream(b"short", usize::MAX);
        echo.pump(&mut io, &mut [0; 64], 16);
        io.inbound = vec![1; 63].into();
        echo.pump(&mut io, &mut [0; 64], 16);
        assert!(!echo.is_splicing(), "switched before a full read was seen");
        io.inbound = vec![2; 64 + 255].into();
        while echo.pump(&mut io, &mut [0; 64], 16).next == Next::Resume {}
        assert!(!echo.is_splicing(), "switched with 255 bytes queued");
        assert_eq!(io.pipes_asked, 0);
        io.inbound = vec![3; 64 + 256].into();
        echo.pump(&mut io, &mut [0; 64], 16);
        assert!(echo.is_splicing(), "256 bytes queued did not switch");

        let mut echo = Echo::new(8);
        let mut io = stream(&[3; 100], usize::MAX);
        while echo.pump(&mut io, &mut [0; 8], 16).next == Next::Resume {}
        assert!(!echo.is_splicing() && io.splices == 0);
        assert_eq!(io.output, [3; 100]);
    }

    // A short splice does not prove the socket empty (the pipe ran out of
    // slots): the turn goes on until a splice finds nothing with the pipe
    // empty, so no byte waits for an edge that will never come.
    #[test]
    fn short_splices_do_not_end_the_turn() {
        let input: Vec<u8> = (0..200u8).collect();
        let mut echo = Echo::new(16).allow_splice(0);
        let mut io = stream(&input, usize::MAX);
        echo.pump(&mut io, &mut [0; 16], 1);
        io.splice_limit = Some(3);
        let progress = echo.pump(&mut io, &mut [0; 16], 1000);
        assert!(echo.is_splicing());
        assert_eq!(progress.next, Next::Wait);
        assert_eq!(io.output, input);
        assert!(io.inbound.is_empty());
    }

    // Urgent data (MSG_OOB, telnet's interrupt): a read stops short at the
    // mark with the rest still queued, which must not pass for an empty
    // socket once the event source reported urgent data.
    #[test]
    fn urgent_data_is_read_past_its_mark() {
        let input: Vec<u8> = [[b'A'; 100], [b'B'; 100]].concat();
        let mut io = stream(&input, usize::MAX);
        io.urgent_mark = Some(100);
        let mut echo = Echo::new(1024);
        echo.note_urgent();
        let progress = echo.pump(&mut io, &mut [0; 1024], 16);
        assert_eq!(progress.next, Next::Wait);
        assert_eq!(io.output, input);
        // Past the mark, short reads end turns again.
        io.inbound = b"ping".to_vec().into();
        let reads = io.reads;
        echo.pump(&mut io, &mut [0; 1024], 16);
        assert_eq!(io.reads - reads, 1);

        // Without the report, the turn ends at the mark, as it must for
        // the usual short read.
        let mut io = stream(&input, usize::MAX);
        io.urgent_mark = Some(100);
        Echo::new(1024).pump(&mut io, &mut [0; 1024], 16);
        assert_eq!(io.output.len(), 100);
    }

    // A splice never moves past the urgent mark: a plain read steps over
    // it, and the bytes still come back in order, including when the echo
    // is blocked meanwhile.
    #[test]
    fn splicing_gets_past_an_urgent_mark() {
        let input: Vec<u8> = (0..600u32).map(|i| (i % 251) as u8).collect();
        let mut echo = Echo::new(16).allow_splice(0);
        let mut io = stream(&input[..32], usize::MAX);
        echo.pump(&mut io, &mut [0; 16], 1000);
        assert!(echo.is_splicing());
        io.inbound = input[32..].to_vec().into();
        io.urgent_mark = Some(100);
        io.splice_limit = Some(7);
        io.room = 150;
        echo.note_urgent();
        let mut turns = 0;
        while io.output.len() < input.len() && turns < 1000 {
            echo.pump(&mut io, &mut [0; 16], 8);
            io.room += 50;
            turns += 1;
        }
        assert_eq!(io.output, input);
        assert_eq!(echo.pending(), 0);
    }

    // The peer's FIN is queued behind an urgent mark: a splice at the mark
    // then returns 0, as at EOF, with the mark's byte and more still
    // queued. The connection confirms with a plain read, which steps over
    // the mark, and echoes every byte before it closes; with bytes in the
    // pipe and the echo blocked, it first waits for the writable edge
    // (a read now would overtake them).
    #[test]
    fn splice_zero_at_the_mark_is_not_eof() {
        let input: Vec<u8> = (0..300u32).map(|i| (i % 251) as u8).collect();
        for room in [usize::MAX, 40] {
            let mut echo = Echo::new(16).allow_splice(0);
            let mut io = stream(&input[..32], usize::MAX);
            echo.pump(&mut io, &mut [0; 16], 1000);
            assert!(echo.is_splicing());
            io.inbound = input[32..].to_vec().into();
            io.urgent_mark = Some(100);
            io.eof = true;
            io.room = room;
            echo.note_urgent();
            echo.note_peer_hangup();
            let mut closed = None;
            for _ in 0..1000 {
                if let Next::Close(reason) = echo.pump(&mut io, &mut [0; 16], 8).next {
                    closed = Some(reason);
                    break;
                }
                io.room = io.room.saturating_add(40);
            }
            assert_eq!(closed, Some(CloseReason::PeerClosed), "room {room}");
            assert_eq!(io.output, input, "room {room}");
            assert!(io.inbound.is_empty());
        }
    }

    // A close with bytes still queued resets the peer: it is not `peer
    // closed`, even when a read reported EOF.
    #[test]
    fn unread_bytes_at_close_are_not_a_clean_end() {
        let mut io = stream(b"left behind", usize::MAX);
        io.eof = true;
        io.false_eof = true;
        let mut echo = Echo::new(64);
        echo.note_peer_hangup();
        let progress = echo.pump(&mut io, &mut [0; 64], 16);
        let Next::Close(reason) = progress.next else {
            panic!("{progress:?}");
        };
        assert_eq!(
            reason.to_string(),
            "error: closed with 11 bytes unread after EOF"
        );
    }

    // When the pipe cannot be had, the connection goes on copying.
    #[test]
    fn no_pipe_keeps_copying() {
        let mut echo = Echo::new(8).allow_splice(0);
        let mut io = stream(&[9; 100], usize::MAX);
        io.no_pipes = true;
        while echo.pump(&mut io, &mut [0; 8], 2).next == Next::Resume {}
        assert_eq!(io.pipes_asked, 1, "asked for a pipe once, then gave up");
        assert!(!echo.is_splicing());
        assert_eq!(io.output, [9; 100]);
    }

    // Backpressure holds in the pipe too: at most `capacity` bytes owed,
    // and the writable edge alone resumes reading.
    #[test]
    fn pipe_is_bounded_and_resumes() {
        let input: Vec<u8> = (0..100u8).collect();
        let mut echo = Echo::new(16).allow_splice(0);
        let mut io = stream(&input, 32);
        let mut scratch = vec![0; 16];
        assert_eq!(echo.pump(&mut io, &mut scratch, 2).next, Next::Resume);
        echo.pump(&mut io, &mut scratch, 16);
        assert!(echo.is_splicing());
        assert_eq!(echo.pending(), 16);
        let before = io.splices;
        assert_eq!(echo.pump(&mut io, &mut scratch, 16).next, Next::Wait);
        assert_eq!(io.splices, before + 1, "only the blocked flush is tried");
        io.room = usize::MAX;
        while echo.pump(&mut io, &mut scratch, 16).next == Next::Resume {}
        assert_eq!(io.output, input);
    }

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
