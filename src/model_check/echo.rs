//! The echo state machine against a scripted peer and an edge-triggered
//! readiness model.
//!
//! This file is long for one job: it is test and fuzz code only (never
//! shipped), and the script decoder, the reference peer with its readiness
//! model, the invariant checks and the planted faults that prove the checks
//! can fail all share the peer's state; split, each part would reach into
//! the others.
//!
//! The script (decoded from fuzz bytes) is what the peer and the kernel do:
//! the peer sends bytes (now, or just after the server's next read found
//! the queue empty), reads some of its echo (so the send buffer takes `K`
//! more bytes), fills the send buffer (`WouldBlock`), half-closes, resets;
//! a signal interrupts the next read or write; the server begins shutdown;
//! a spurious event arrives. [`Echo::pump`] runs only when the server's
//! loop would run it: on a readable edge (new data, EOF or error, with the
//! hang-up hint for the last two), on a writable edge (only after a write
//! found the send buffer full, as Linux raises EPOLLOUT), after `Resume`,
//! after `begin_shutdown`, and on the spurious event.
//!
//! Urgent data too (the script byte [`URGENT_OP`]): a send with TCP's
//! urgent mark in it, announced with EPOLLPRI. A read stops short before
//! the mark and goes on past it once there; a splice never moves past it,
//! and at the mark returns what it does on an empty socket: `WouldBlock`,
//! or 0 once the peer's FIN has arrived, though bytes are still queued.
//!
//! The zero-copy path is in the script too. Its first byte says whether
//! the machine may splice ([`Echo::allow_splice`]) and what the kernel does
//! when it asks for a pipe: grant the capacity asked, grant less (down to
//! one byte), or refuse (the connection must go on copying). The pipe is a
//! queue of bytes inside the peer: `splice_in` follows the rules of `read`
//! (interrupts, reset, EOF, `WouldBlock`, the readable edge of late data)
//! but puts the bytes in the pipe, and `splice_out` those of `write`
//! (room, short writes, the writable edge) taking them from the pipe's
//! front. Script operations make the pipe run out of slots: the next
//! `splice_in` moves at most K bytes with more still queued, or gets
//! `WouldBlock` while the pipe holds bytes, so a short splice is never
//! proof that the socket is empty.
//!
//! Checked after every pump, against a reference that is just "the bytes
//! the peer sent, and how many the socket handed over":
//! - the bytes written back are always a prefix of the bytes sent;
//! - the counters (`received`, `echoed`, `pending`, `discarded`, and the
//!   turn's [`Progress`]) equal the bytes the socket actually moved;
//! - no read is issued while the buffer is full, and no read asks for more
//!   than the buffer can still hold;
//! - the same bound holds in the pipe: no splice into it asks for more than
//!   the capacity it reported, less what is owed;
//! - order across the two paths: the pipe is attached only with nothing
//!   buffered in user space, nothing is read or written through the copy
//!   path while the pipe holds bytes, no splice before the pipe is attached
//!   or with a length of 0, and a pipe only where splicing was allowed;
//!   `began_splicing` and `is_splicing` say what happened;
//! - FIN is sent only once everything read has been echoed, and nothing is
//!   written after it;
//! - after EOF with a drained buffer the connection closes, and each close
//!   reason matches what the peer did (`peer closed` only with the whole
//!   echo delivered);
//! - liveness: when the script ends, the peer reads everything and waits
//!   for its echo; with no further events than a real kernel would raise,
//!   every byte it sent must be read and echoed (a short read or splice
//!   taken for an empty socket leaves bytes no edge will announce). Then
//!   the peer closes, and the connection must close. A turn that returns
//!   `Wait` with work left and no edge coming shows up here as a stall.

use std::collections::VecDeque;
use std::io::{self, ErrorKind, Read, Write};

use super::{Input, Violation};
use crate::logic::echo::{CloseReason, Echo, Next, Phase, Progress, Transport};

/// Buffer sizes the script chooses from: tiny ones reach the ring's
/// wrap-around and the full-buffer paths within a few bytes; the larger
/// ones cover multi-chunk reads and writes.
const CAPACITIES: [usize; 8] = [1, 2, 3, 5, 8, 64, 255, 4096];
/// Operations decoded from one input at most; keeps each run short.
const MAX_STEPS: usize = 4096;
/// Bytes the peer can have sent and not yet read by the server (its send
/// buffer and the server's receive buffer); a send is cut to what fits, as
/// TCP's window would. Bounds the backlog a pipe of one byte drains one
/// byte a turn.
const RECEIVE_WINDOW: usize = 256 * 1024;
/// Consecutive pumps in which the socket moves nothing before it counts as
/// a livelock. A turn that moves nothing ends in `Wait` or `Close` (a
/// `Resume` follows reads that all found data), so the real machine never
/// has more than a couple in a row. Pumps that move bytes are not limited:
/// with a pipe of one byte and one read a turn, each moves just one.
const MAX_IDLE_PUMPS: usize = 1_000;
/// The kinds of operation a script byte below [`PIPE_OPS`] selects (by its
/// value modulo this).
const OPS: u8 = 12;
/// Script bytes from here up select the pipe's operations instead, so the
/// seed corpus, written when there were only the twelve above, keeps its
/// meaning.
const PIPE_OPS: u8 = 240;
/// The last script byte sends urgent data instead (it selected a pipe
/// operation before; the others keep theirs).
const URGENT_OP: u8 = 255;

/// What one script did, for tests that check a corpus covers the ground.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EchoRun {
    /// Buffer capacity chosen by the script.
    pub capacity: usize,
    /// Bytes the peer sent.
    pub sent: usize,
    /// Bytes echoed back.
    pub echoed: usize,
    /// Calls to [`Echo::pump`].
    pub pumps: usize,
    /// How the connection ended (every script ends in a close).
    pub closed: CloseReason,
    /// True when the close happened while the script ran, not in the final
    /// settling phase.
    pub closed_during_script: bool,
    /// True when the pending buffer (or the pipe) was full after some pump.
    pub buffer_filled: bool,
    /// True when the script let the machine splice ([`Echo::allow_splice`]).
    pub splice_allowed: bool,
    /// True when a pipe was attached: bytes went through the zero-copy path.
    pub spliced: bool,
    /// True when the attached pipe holds less than the capacity asked.
    pub pipe_smaller: bool,
    /// True when the machine asked for a pipe and was refused.
    pub attach_refused: bool,
    /// True when a splice into the pipe moved less than asked while more
    /// was queued (the pipe ran out of slots).
    pub short_splice: bool,
    /// True when a splice into the pipe got `WouldBlock` while more was
    /// queued (the pipe, holding bytes, had no slot left).
    pub slots_full: bool,
    /// True when a splice met the urgent mark with the peer's FIN queued
    /// behind it, and so returned 0 with bytes still unread.
    pub zero_at_mark: bool,
}

/// Runs the script in `data` against [`Echo`]; see the module docs for
/// what is checked.
pub fn check_echo(data: &[u8]) -> Result<EchoRun, Violation> {
    Harness::new(data, echo_machine).run()
}

/// The real machine as the server builds it, with or without splicing.
fn echo_machine(capacity: usize, splice: bool) -> Echo {
    let echo = Echo::new(capacity);
    if splice {
        // No backlog: the switch may come after any full read, the earliest
        // point the server's machine can take it (its backlog only delays
        // the switch to a later full read).
        echo.allow_splice(0)
    } else {
        echo
    }
}

/// What the harness needs from the state machine; [`Echo`] is the real
/// one, and the tests substitute broken ones to prove the checks catch them.
pub(crate) trait Machine {
    fn pump(&mut self, peer: &mut Peer, scratch: &mut [u8], max_reads: usize) -> Progress;
    fn note_peer_hangup(&mut self);
    fn note_urgent(&mut self);
    fn begin_shutdown(&mut self);
    fn phase(&self) -> Phase;
    fn received(&self) -> u64;
    fn echoed(&self) -> u64;
    fn discarded(&self) -> u64;
    fn pending(&self) -> usize;
    fn is_splicing(&self) -> bool;
}

impl Machine for Echo {
    fn pump(&mut self, peer: &mut Peer, scratch: &mut [u8], max_reads: usize) -> Progress {
        Echo::pump(self, peer, scratch, max_reads)
    }
    fn note_peer_hangup(&mut self) {
        Echo::note_peer_hangup(self)
    }
    fn note_urgent(&mut self) {
        Echo::note_urgent(self)
    }
    fn begin_shutdown(&mut self) {
        Echo::begin_shutdown(self)
    }
    fn phase(&self) -> Phase {
        Echo::phase(self)
    }
    fn received(&self) -> u64 {
        Echo::received(self)
    }
    fn echoed(&self) -> u64 {
        Echo::echoed(self)
    }
    fn discarded(&self) -> u64 {
        Echo::discarded(self)
    }
    fn pending(&self) -> usize {
        Echo::pending(self)
    }
    fn is_splicing(&self) -> bool {
        Echo::is_splicing(self)
    }
}

/// The connected socket as the server sees it, driven by the script, and
/// the reference model of what it has moved.
#[derive(Debug, Default)]
pub(crate) struct Peer {
    capacity: usize,
    /// Every byte the peer sent, in order.
    sent: Vec<u8>,
    /// Arrived and not yet read (a suffix of `sent`).
    inbound: VecDeque<u8>,
    /// Lands right after the next read call, raising a readable edge.
    arriving: Vec<u8>,
    /// Bytes handed to the server before it sent FIN: owed back.
    kept: u64,
    /// Bytes handed to the server after its FIN: thrown away.
    discarded: u64,
    /// Bytes the socket accepted from the server; they matched `sent`.
    written: u64,
    /// The peer half-closed after `sent`.
    eof: bool,
    /// The peer reset the connection.
    reset: bool,
    /// What the send buffer still takes before `WouldBlock`.
    room: usize,
    /// Freed right after the next write call (the peer read meanwhile).
    room_arriving: usize,
    /// A write found the send buffer full since the last writable edge.
    starved: bool,
    fin_sent: bool,
    interrupt_read: bool,
    interrupt_write: bool,
    readable_edge: bool,
    writable_edge: bool,
    /// The next event carries EPOLLRDHUP/EPOLLERR.
    hangup: bool,
    /// Where in `sent` TCP's urgent mark stands, until a read passes it: a
    /// read stops short before it, and a splice never moves past it.
    urgent_mark: Option<usize>,
    /// The next event carries EPOLLPRI.
    urgent: bool,
    /// Urgent data was sent at some point of the script.
    urgent_seen: bool,
    /// A splice met the urgent mark with the FIN queued behind it.
    zero_at_mark: bool,
    turn_read: u64,
    turn_written: u64,
    /// First broken rule seen inside a read or write call.
    violation: Option<String>,
    /// The machine was built with [`Echo::allow_splice`].
    splice_allowed: bool,
    /// What the next `attach_pipe` does: refuse (`None`) or grant at most
    /// this many bytes (and at least one).
    pipe_plan: Option<usize>,
    /// The kernel pipe, once attached: bytes spliced in, not yet out.
    pipe: Option<VecDeque<u8>>,
    /// What the pipe may hold, as `attach_pipe` reported it.
    pipe_capacity: usize,
    /// The next `splice_in` that finds data moves at most this many bytes:
    /// the pipe runs out of slots before the socket runs out of data.
    splice_limit: Option<usize>,
    /// The pipe's slots are used up: the next `splice_in` made while the
    /// pipe holds bytes gets `WouldBlock` (an empty pipe always has room).
    slots_full: bool,
    /// A pipe was attached during the current pump.
    attached_in_turn: bool,
    /// What happened on the zero-copy path, for [`EchoRun`].
    attach_refused: bool,
    pipe_smaller: bool,
    short_splice: bool,
    slots_blocked: bool,
}

impl Peer {
    fn flag(&mut self, message: String) {
        self.violation.get_or_insert(message);
    }

    fn send(&mut self, bytes: impl IntoIterator<Item = u8>, later: bool) {
        let start = self.sent.len();
        self.sent.extend(bytes);
        let new = &self.sent[start..];
        if later {
            self.arriving.extend_from_slice(new);
        } else {
            // TCP keeps order: bytes still in flight arrive before these.
            self.inbound.extend(self.arriving.drain(..));
            self.inbound.extend(new.iter().copied());
            self.readable_edge = true;
        }
    }

    /// The peer read its echo, freeing `n` bytes of send buffer; the kernel
    /// raises EPOLLOUT only if a write had found the buffer full.
    fn free_room(&mut self, n: usize) {
        self.room = self.room.saturating_add(n);
        if self.starved && n > 0 {
            self.starved = false;
            self.writable_edge = true;
        }
    }

    /// Bytes in the pipe (0 without one).
    fn in_pipe(&self) -> usize {
        self.pipe.as_ref().map_or(0, VecDeque::len)
    }

    /// Flags a copy-path call while the pipe holds bytes: whatever it moved
    /// would overtake them.
    fn check_copy_path(&mut self, call: &str) {
        let in_pipe = self.in_pipe();
        // Bytes read past an urgent mark are buffered while the pipe is
        // empty, so they may still be written out ahead of bytes spliced
        // after them; `take_echo` checks that order byte by byte.
        if in_pipe > 0 && !(call == "write" && self.urgent_seen) {
            self.flag(format!(
                "{call} through the copy path with {in_pipe} bytes in the pipe (echo order)"
            ));
        }
    }

    /// The checks of a call that takes up to `asked` bytes in, against what
    /// the buffer (or pipe) holding them may hold.
    fn check_room(&mut self, call: &str, asked: usize, capacity: usize, what: &str) {
        if self.fin_sent {
            return;
        }
        let pending = self.kept - self.written;
        if asked == 0 {
            self.flag(format!("{call} of 0 bytes (Ok(0) would look like EOF)"));
        } else if pending >= capacity as u64 {
            self.flag(format!(
                "{call} while the {what} is full ({pending} pending)"
            ));
        } else if pending + asked as u64 > capacity as u64 {
            self.flag(format!(
                "{call} of {asked} bytes with {pending} pending: more than the {what}'s \
                 capacity {capacity}"
            ));
        }
    }

    /// Takes `n` queued bytes as read: owed back, or thrown away after FIN.
    fn take_inbound(&mut self, n: usize) -> std::collections::vec_deque::Drain<'_, u8> {
        if self.fin_sent {
            self.discarded += n as u64;
        } else {
            self.kept += n as u64;
            self.turn_read += n as u64;
        }
        self.inbound.drain(..n)
    }

    fn read_now(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.check_copy_path("read");
        if std::mem::take(&mut self.interrupt_read) {
            return Err(ErrorKind::Interrupted.into());
        }
        if self.reset {
            return Err(ErrorKind::ConnectionReset.into());
        }
        self.check_room("read", buf.len(), self.capacity, "buffer");
        if self.inbound.is_empty() {
            return if self.eof {
                Ok(0)
            } else {
                Err(ErrorKind::WouldBlock.into())
            };
        }
        let n = buf.len().min(self.inbound.len()).min(self.before_mark());
        if self.before_mark() == 0 {
            // A read at the mark goes on past it (the byte stays inline).
            self.urgent_mark = None;
        }
        let n = if n == 0 {
            buf.len().min(self.inbound.len())
        } else {
            n
        };
        for (slot, byte) in buf.iter_mut().zip(self.take_inbound(n)) {
            *slot = byte;
        }
        Ok(n)
    }

    /// Offset of the next byte the server would read.
    fn read_at(&self) -> usize {
        self.sent.len() - self.arriving.len() - self.inbound.len()
    }

    /// Bytes a read or splice may take before the urgent mark (all of them
    /// without one); 0 at the mark.
    fn before_mark(&self) -> usize {
        self.urgent_mark
            .map_or(usize::MAX, |mark| mark.saturating_sub(self.read_at()))
    }

    fn write_now(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.check_copy_path("write");
        if std::mem::take(&mut self.interrupt_write) {
            return Err(ErrorKind::Interrupted.into());
        }
        if self.fin_sent {
            self.flag("write after FIN".into());
        }
        if buf.is_empty() {
            self.flag("write of zero bytes".into());
        }
        if self.reset {
            return Err(ErrorKind::ConnectionReset.into());
        }
        if self.room == 0 {
            self.starved = true;
            return Err(ErrorKind::WouldBlock.into());
        }
        let n = buf.len().min(self.room);
        self.take_echo(&buf[..n]);
        if n < buf.len() {
            self.starved = true;
        }
        Ok(n)
    }

    /// The socket takes `echo` (it had room for it): it must continue the
    /// bytes sent, right after those already echoed.
    fn take_echo(&mut self, echo: &[u8]) {
        let n = echo.len();
        let at = self.written as usize;
        if at + n > self.kept as usize {
            self.flag(format!(
                "echoed bytes {at}..{} but only {} were read",
                at + n,
                self.kept
            ));
        } else if echo != &self.sent[at..at + n] {
            let i = echo
                .iter()
                .zip(&self.sent[at..at + n])
                .position(|(a, b)| a != b)
                .unwrap_or(0);
            self.flag(format!(
                "echo differs from the input at offset {}: {:#04x} instead of {:#04x}",
                at + i,
                echo[i],
                self.sent[at + i]
            ));
        }
        self.room -= n;
        self.written += n as u64;
        self.turn_written += n as u64;
    }

    /// `splice_in` without the late data: `read`'s rules, into the pipe.
    fn splice_in_now(&mut self, max: usize) -> io::Result<usize> {
        let Some(in_pipe) = self.pipe.as_ref().map(VecDeque::len) else {
            self.flag("splice_in before attach_pipe".into());
            return Err(ErrorKind::Unsupported.into());
        };
        if self.fin_sent {
            self.flag("splice_in after FIN: those bytes could never be echoed".into());
        }
        if std::mem::take(&mut self.interrupt_read) {
            return Err(ErrorKind::Interrupted.into());
        }
        if self.reset {
            return Err(ErrorKind::ConnectionReset.into());
        }
        self.check_room("splice_in", max, self.pipe_capacity, "pipe");
        if self.slots_full && in_pipe > 0 {
            self.slots_full = false;
            self.slots_blocked |= !self.inbound.is_empty();
            return Err(ErrorKind::WouldBlock.into());
        }
        if self.inbound.is_empty() {
            return if self.eof {
                Ok(0)
            } else {
                Err(ErrorKind::WouldBlock.into())
            };
        }
        if self.before_mark() == 0 {
            // The kernel's splice from TCP never moves past the mark; there
            // it returns what it does with nothing queued (tcp_splice_read):
            // 0 once the FIN has arrived, as at EOF, else `WouldBlock`.
            self.zero_at_mark |= self.eof;
            return if self.eof {
                Ok(0)
            } else {
                Err(ErrorKind::WouldBlock.into())
            };
        }
        let limit = self.splice_limit.take().unwrap_or(usize::MAX);
        let n = max
            .min(self.inbound.len())
            .min(limit)
            .min(self.before_mark());
        self.short_splice |= n < max && n < self.inbound.len();
        let bytes: Vec<u8> = self.take_inbound(n).collect();
        if let Some(pipe) = self.pipe.as_mut() {
            pipe.extend(bytes);
        }
        Ok(n)
    }

    /// `splice_out` without the late room: `write`'s rules, from the pipe.
    fn splice_out_now(&mut self, max: usize) -> io::Result<usize> {
        let Some(in_pipe) = self.pipe.as_ref().map(VecDeque::len) else {
            self.flag("splice_out before attach_pipe".into());
            return Err(ErrorKind::Unsupported.into());
        };
        if std::mem::take(&mut self.interrupt_write) {
            return Err(ErrorKind::Interrupted.into());
        }
        if self.fin_sent {
            self.flag("splice_out after FIN".into());
        }
        if max == 0 {
            self.flag("splice_out of 0 bytes".into());
        }
        if self.reset {
            // A splice into a reset socket fails with EPIPE (SIGPIPE blocked).
            return Err(ErrorKind::BrokenPipe.into());
        }
        if in_pipe == 0 {
            self.flag("splice_out from an empty pipe".into());
            return Err(ErrorKind::WouldBlock.into());
        }
        if self.room == 0 {
            self.starved = true;
            return Err(ErrorKind::WouldBlock.into());
        }
        let offered = max.min(in_pipe);
        let n = offered.min(self.room);
        let echo: Vec<u8> = match self.pipe.as_mut() {
            Some(pipe) => pipe.drain(..n).collect(),
            None => Vec::new(),
        };
        self.take_echo(&echo);
        if n < offered {
            self.starved = true;
        }
        Ok(n)
    }

    /// Data that arrives just as the kernel reports the queue empty: its
    /// edge is the only thing that brings the server back for it.
    fn land_arriving(&mut self) {
        if !self.arriving.is_empty() {
            self.inbound.extend(self.arriving.drain(..));
            self.readable_edge = true;
        }
    }

    /// The peer read its echo during the last write or splice.
    fn land_room(&mut self) {
        let freed = std::mem::take(&mut self.room_arriving);
        self.free_room(freed);
    }
}

impl Read for Peer {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let result = self.read_now(buf);
        self.land_arriving();
        result
    }
}

impl Write for Peer {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let result = self.write_now(buf);
        self.land_room();
        result
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Transport for Peer {
    fn shutdown_write(&mut self) -> io::Result<()> {
        if self.fin_sent {
            self.flag("FIN sent twice".into());
        }
        if self.written != self.kept {
            self.flag(format!(
                "FIN sent with {} of {} read bytes echoed",
                self.written, self.kept
            ));
        }
        self.fin_sent = true;
        if self.reset {
            return Err(ErrorKind::ConnectionReset.into());
        }
        Ok(())
    }

    fn attach_pipe(&mut self, capacity: usize) -> io::Result<usize> {
        if !self.splice_allowed {
            self.flag("attach_pipe on a connection not allowed to splice".into());
        }
        if self.pipe.is_some() {
            self.flag("attach_pipe with a pipe already attached".into());
        }
        if capacity == 0 {
            self.flag("attach_pipe for 0 bytes".into());
        }
        let buffered = self.kept - self.written;
        if buffered > 0 {
            self.flag(format!(
                "attach_pipe with {buffered} bytes buffered: bytes spliced after them \
                 could overtake them"
            ));
        }
        let Some(most) = self.pipe_plan else {
            self.attach_refused = true;
            return Err(io::Error::other("no file descriptors to spare for a pipe"));
        };
        let granted = most.min(capacity).max(1);
        self.pipe_smaller |= granted < capacity;
        self.pipe = Some(VecDeque::new());
        self.pipe_capacity = granted;
        self.attached_in_turn = true;
        Ok(granted)
    }

    fn queued_in(&mut self) -> io::Result<usize> {
        Ok(self.inbound.len())
    }

    fn splice_in(&mut self, max: usize) -> io::Result<usize> {
        let result = self.splice_in_now(max);
        self.land_arriving();
        result
    }

    fn splice_out(&mut self, max: usize) -> io::Result<usize> {
        let result = self.splice_out_now(max);
        self.land_room();
        result
    }
}

/// Deterministic, position-dependent bytes, so a reordered, duplicated or
/// lost byte shows up as a mismatch.
fn payload(start: usize, n: usize) -> impl Iterator<Item = u8> {
    (start..start + n).map(|i| ((i as u32).wrapping_mul(0x9E37_79B1) >> 24) as u8 ^ (i as u8))
}

pub(crate) struct Harness<'a, M> {
    input: Input<'a>,
    machine: M,
    peer: Peer,
    scratch: Vec<u8>,
    max_reads: usize,
    step: usize,
    pumps: usize,
    resume: bool,
    spurious: bool,
    shutdown_begun: bool,
    closed: Option<CloseReason>,
    buffer_filled: bool,
}

impl<'a, M: Machine> Harness<'a, M> {
    /// `make` builds the machine for a buffer capacity, allowed to splice
    /// or not.
    pub(crate) fn new(data: &'a [u8], make: impl FnOnce(usize, bool) -> M) -> Self {
        let mut input = Input::new(data);
        // The first byte: capacity (bits 0-2), splicing allowed (bit 3), and
        // what the kernel does when asked for a pipe (bits 4-7).
        let head = input.byte();
        let capacity = CAPACITIES[usize::from(head) % CAPACITIES.len()];
        let splice_allowed = head & 0x08 != 0;
        let pipe_plan = match head >> 4 {
            0..=9 => Some(usize::MAX),
            10..=12 => None,
            13 => Some(1),
            14 => Some(capacity / 2),
            _ => Some(capacity - 1),
        };
        // The server passes READS_PER_TURN (16); any budget must work.
        let max_reads = 1 + input.below(16);
        let peer = Peer {
            capacity,
            // Registration reports the socket writable once.
            writable_edge: true,
            room: usize::MAX,
            splice_allowed,
            pipe_plan,
            ..Peer::default()
        };
        Self {
            input,
            machine: make(capacity, splice_allowed),
            peer,
            // As in the server: the shared scratch is one buffer-size long.
            scratch: vec![0; capacity],
            max_reads,
            step: 0,
            pumps: 0,
            resume: false,
            spurious: false,
            shutdown_begun: false,
            closed: None,
            buffer_filled: false,
        }
    }

    fn fail(&self, message: impl Into<String>) -> Violation {
        Violation::new(self.step, message)
    }

    pub(crate) fn run(mut self) -> Result<EchoRun, Violation> {
        self.deliver()?;
        while self.closed.is_none() && !self.input.is_empty() && self.step < MAX_STEPS {
            self.step += 1;
            self.apply_op();
            self.deliver()?;
        }
        let closed_during_script = self.closed.is_some();
        self.settle()?;
        let closed = self
            .closed
            .clone()
            .ok_or_else(|| self.fail("settled without closing"))?;
        Ok(EchoRun {
            capacity: self.peer.capacity,
            sent: self.peer.sent.len(),
            echoed: self.peer.written as usize,
            pumps: self.pumps,
            closed,
            closed_during_script,
            buffer_filled: self.buffer_filled,
            splice_allowed: self.peer.splice_allowed,
            spliced: self.peer.pipe.is_some(),
            pipe_smaller: self.peer.pipe_smaller,
            attach_refused: self.peer.attach_refused,
            short_splice: self.peer.short_splice,
            slots_full: self.peer.slots_blocked,
            zero_at_mark: self.peer.zero_at_mark,
        })
    }

    /// What holds the bytes owed: the pipe once attached, else the buffer.
    fn buffer(&self) -> usize {
        if self.peer.pipe.is_some() {
            self.peer.pipe_capacity
        } else {
            self.peer.capacity
        }
    }

    fn size(&mut self) -> usize {
        // Up to a few buffers' worth, so sends both fit and overflow.
        1 + self.input.below(3 * self.buffer() + 3)
    }

    /// A send of up to a few buffers' worth, cut to the window left.
    fn send_size(&mut self) -> usize {
        let unread = self.peer.inbound.len() + self.peer.arriving.len();
        self.size().min(RECEIVE_WINDOW.saturating_sub(unread))
    }

    fn apply_op(&mut self) {
        let peer_can_send = !self.peer.eof && !self.peer.reset;
        let byte = self.input.byte();
        let op = if byte == URGENT_OP {
            OPS + 3
        } else if byte >= PIPE_OPS {
            OPS + (byte - PIPE_OPS) % 3
        } else {
            byte % OPS
        };
        match op {
            // The peer sends bytes; they are in the receive queue now.
            0 | 1 if peer_can_send => {
                let n = self.send_size();
                let start = self.peer.sent.len();
                if n > 0 {
                    self.peer.send(payload(start, n), false);
                }
            }
            // The peer sends bytes, one of them urgent (MSG_OOB): its mark,
            // and EPOLLPRI on the event. A later mark replaces an earlier
            // one, as TCP keeps one urgent pointer.
            15 if peer_can_send => {
                let n = self.send_size();
                let start = self.peer.sent.len();
                if n > 0 {
                    let at = start + self.input.below(n);
                    self.peer.send(payload(start, n), false);
                    self.peer.urgent_mark = Some(at);
                    self.peer.urgent = true;
                    self.peer.urgent_seen = true;
                }
            }
            // The peer sends bytes that land just after the next read call.
            2 if peer_can_send => {
                let n = self.send_size();
                let start = self.peer.sent.len();
                if n > 0 {
                    self.peer.send(payload(start, n), true);
                }
            }
            // The peer reads K bytes of echo: the socket takes K more.
            3 => {
                let n = self.size();
                self.peer.free_room(n);
            }
            // The socket accepts only K more bytes (then WouldBlock).
            4 => {
                let n = self.size();
                if n > self.peer.room {
                    let more = n - self.peer.room;
                    self.peer.free_room(more);
                } else {
                    self.peer.room = n;
                }
            }
            // The peer reads K bytes just after the next write call.
            5 => {
                let n = self.size();
                self.peer.room_arriving = self.peer.room_arriving.saturating_add(n);
            }
            // The send buffer is full: the next write gets WouldBlock.
            6 => self.peer.room = 0,
            // A signal interrupts the next read or write.
            7 => {
                if self.input.byte() % 2 == 0 {
                    self.peer.interrupt_read = true;
                } else {
                    self.peer.interrupt_write = true;
                }
            }
            // The peer half-closes (EPOLLRDHUP).
            8 if peer_can_send => {
                // The FIN follows whatever is still in flight.
                let arriving = std::mem::take(&mut self.peer.arriving);
                self.peer.inbound.extend(arriving);
                self.peer.eof = true;
                self.peer.readable_edge = true;
                self.peer.hangup = true;
            }
            // The peer resets the connection (EPOLLERR | EPOLLHUP).
            9 if !self.peer.reset => {
                // An RST overtakes nothing: data in flight is simply lost.
                self.peer.arriving.clear();
                self.peer.reset = true;
                self.peer.readable_edge = true;
                self.peer.hangup = true;
            }
            // The server begins shutdown and queues the connection.
            10 => {
                self.machine.begin_shutdown();
                self.shutdown_begun = true;
                self.resume = true;
            }
            // An event with nothing behind it: mio documents they happen.
            11 => self.spurious = true,
            // The next request for a pipe is refused (out of descriptors),
            // or granted with room for only K bytes.
            12 => {
                self.peer.pipe_plan = if self.input.byte() % 4 == 0 {
                    None
                } else {
                    Some(1 + self.input.below(self.peer.capacity))
                };
            }
            // The pipe runs out of slots: the next splice into it that finds
            // data moves at most K bytes, whatever the socket holds.
            13 => self.peer.splice_limit = Some(1 + self.input.below(self.buffer())),
            // The pipe has no free slot: the next splice into it while it
            // holds bytes gets `WouldBlock`.
            14 => self.peer.slots_full = true,
            _ => {}
        }
    }

    /// Pumps for as long as the loop would: while an edge or a queued turn
    /// is waiting.
    fn deliver(&mut self) -> Result<(), Violation> {
        let mut idle_pumps = 0;
        while self.closed.is_none()
            && (self.peer.readable_edge || self.peer.writable_edge || self.resume || self.spurious)
        {
            if idle_pumps == MAX_IDLE_PUMPS {
                return Err(self.fail(format!(
                    "livelock: the connection asked for {idle_pumps} turns in a row \
                     without moving a byte"
                )));
            }
            self.peer.readable_edge = false;
            self.peer.writable_edge = false;
            self.resume = false;
            self.spurious = false;
            if std::mem::take(&mut self.peer.hangup) {
                self.machine.note_peer_hangup();
            }
            if std::mem::take(&mut self.peer.urgent) {
                self.machine.note_urgent();
            }
            self.peer.turn_read = 0;
            self.peer.turn_written = 0;
            self.peer.attached_in_turn = false;
            self.pumps += 1;
            let discarded = self.peer.discarded;
            let progress = self
                .machine
                .pump(&mut self.peer, &mut self.scratch, self.max_reads);
            let moved =
                self.peer.turn_read + self.peer.turn_written + self.peer.discarded - discarded;
            idle_pumps = if moved == 0 { idle_pumps + 1 } else { 0 };
            if let Some(message) = self.peer.violation.take() {
                return Err(self.fail(message));
            }
            self.check_after_pump(&progress)?;
            match progress.next {
                Next::Wait => {}
                Next::Resume => self.resume = true,
                Next::Close(reason) => {
                    self.check_close(&reason)?;
                    self.closed = Some(reason);
                }
            }
        }
        Ok(())
    }

    fn check_after_pump(&mut self, progress: &Progress) -> Result<(), Violation> {
        let peer = &self.peer;
        let m = &self.machine;
        if (progress.received as u64, progress.echoed as u64) != (peer.turn_read, peer.turn_written)
        {
            return Err(self.fail(format!(
                "turn reports {} in / {} out, the socket moved {} / {}",
                progress.received, progress.echoed, peer.turn_read, peer.turn_written
            )));
        }
        let counters = (m.received(), m.echoed(), m.discarded());
        if counters != (peer.kept, peer.written, peer.discarded) {
            return Err(self.fail(format!(
                "counters received/echoed/discarded {counters:?}, the socket moved {:?}",
                (peer.kept, peer.written, peer.discarded)
            )));
        }
        let pending = m.pending();
        if pending as u64 != peer.kept - peer.written {
            return Err(self.fail(format!(
                "pending {pending}, but {} bytes were read and not echoed",
                peer.kept - peer.written
            )));
        }
        if pending > peer.capacity {
            return Err(self.fail(format!(
                "{pending} bytes buffered, capacity {}",
                peer.capacity
            )));
        }
        self.buffer_filled |=
            pending == peer.capacity || (peer.pipe.is_some() && pending == peer.pipe_capacity);
        if progress.began_splicing != peer.attached_in_turn {
            return Err(self.fail(format!(
                "turn reports began_splicing {}, but a pipe was {}attached in it",
                progress.began_splicing,
                if peer.attached_in_turn { "" } else { "not " }
            )));
        }
        if m.is_splicing() != peer.pipe.is_some() {
            return Err(self.fail(format!(
                "is_splicing {} with {}",
                m.is_splicing(),
                if peer.pipe.is_some() {
                    "a pipe attached"
                } else {
                    "no pipe"
                }
            )));
        }
        let phase = m.phase();
        if peer.fin_sent != (phase == Phase::Lingering) {
            return Err(self.fail(format!("phase {phase:?} with FIN sent: {}", peer.fin_sent)));
        }
        if !self.shutdown_begun && matches!(phase, Phase::Draining | Phase::Lingering) {
            return Err(self.fail(format!("phase {phase:?} without a shutdown")));
        }
        if phase == Phase::PeerDone && !(peer.eof && peer.inbound.is_empty()) {
            return Err(self.fail("PeerDone before the peer's EOF was read"));
        }
        if phase == Phase::PeerDone
            && pending == 0
            && progress.next != Next::Close(CloseReason::PeerClosed)
        {
            return Err(self.fail(format!(
                "EOF read and buffer drained, but the turn ended with {:?}",
                progress.next
            )));
        }
        Ok(())
    }

    fn check_close(&self, reason: &CloseReason) -> Result<(), Violation> {
        let peer = &self.peer;
        let ok = match reason {
            CloseReason::PeerClosed => {
                peer.eof
                    && peer.inbound.is_empty()
                    && !peer.fin_sent
                    && peer.kept == peer.sent.len() as u64
                    && peer.written == peer.kept
            }
            CloseReason::Reset => peer.reset,
            CloseReason::Shutdown => peer.fin_sent && peer.eof && peer.inbound.is_empty(),
            CloseReason::IdleTimeout | CloseReason::Error(_) => false,
        };
        if ok {
            Ok(())
        } else {
            Err(self.fail(format!(
                "closed with `{reason}` after sending {} bytes, {} read, {} echoed \
                 (eof {}, reset {}, FIN sent {})",
                peer.sent.len(),
                peer.kept,
                peer.written,
                peer.eof,
                peer.reset,
                peer.fin_sent
            )))
        }
    }

    /// The script is over: no more signals; the peer reads everything and
    /// waits for its echo, then half-closes. On the events a kernel would
    /// raise, and nothing else, the connection must first echo every byte
    /// sent (a peer waiting for its echo sends nothing that would raise a
    /// new edge), then close.
    fn settle(&mut self) -> Result<(), Violation> {
        if self.closed.is_some() {
            return Ok(());
        }
        self.step += 1;
        self.peer.interrupt_read = false;
        self.peer.interrupt_write = false;
        self.peer.splice_limit = None;
        self.peer.slots_full = false;
        if !self.peer.arriving.is_empty() {
            let arriving = std::mem::take(&mut self.peer.arriving);
            self.peer.inbound.extend(arriving);
            self.peer.readable_edge = true;
        }
        self.peer.room_arriving = 0;
        self.peer.room = 0;
        self.peer.free_room(usize::MAX);
        self.deliver()?;
        let p = &self.peer;
        if self.closed.is_none() && !p.reset && !(p.inbound.is_empty() && p.written == p.kept) {
            return Err(self.stalled("the peer waits for its echo"));
        }
        if !self.peer.eof && !self.peer.reset {
            self.peer.eof = true;
            self.peer.readable_edge = true;
            self.peer.hangup = true;
        }
        self.deliver()?;
        let Some(reason) = &self.closed else {
            return Err(self.stalled("the peer closed"));
        };
        let expected = if self.peer.reset {
            CloseReason::Reset
        } else if self.peer.fin_sent {
            CloseReason::Shutdown
        } else {
            CloseReason::PeerClosed
        };
        if *reason != expected {
            return Err(self.fail(format!("settled with `{reason}`, expected `{expected}`")));
        }
        Ok(())
    }

    fn stalled(&self, peer: &str) -> Violation {
        let p = &self.peer;
        self.fail(format!(
            "stalled: {peer}, no event is coming, yet the connection is open with {} of {} \
             bytes echoed, {} unread (phase {:?})",
            p.written,
            p.sent.len(),
            p.inbound.len(),
            self.machine.phase()
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model_check::Rng;

    // Builds a script: capacity index, read budget, then operations.
    fn script(capacity: u8, max_reads: u8, ops: &[u8]) -> Vec<u8> {
        let mut v = vec![capacity, max_reads];
        v.extend_from_slice(ops);
        v
    }

    // The same, with splicing allowed and the kernel's answer to a request
    // for a pipe (`plan`, 0..16: see `Harness::new`).
    fn splice_script(capacity: u8, plan: u8, max_reads: u8, ops: &[u8]) -> Vec<u8> {
        script(capacity | 0x08 | plan << 4, max_reads, ops)
    }

    // Operation bytes of the pipe (see `apply_op`).
    const PIPE_PLAN: u8 = PIPE_OPS;
    const SPLICE_LIMIT: u8 = PIPE_OPS + 1;
    const SLOTS_FULL: u8 = PIPE_OPS + 2;

    // Capacity 8, 16 reads a turn; the peer sends 8 bytes, a full read, so
    // the connection switches to the pipe at once.
    const STREAM_8: [u8; 2] = [0, 7];

    // A short splice (the pipe's slots ran out) with the peer's EOF already
    // behind the rest: the hang-up raises no further edge, so only going on
    // after the short splice delivers the 17 bytes still queued.
    fn short_splice_before_eof() -> Vec<u8> {
        let mut ops = STREAM_8.to_vec();
        // 20 bytes in flight, a splice limited to 3, then the FIN.
        ops.extend([2, 19, SPLICE_LIMIT, 2, 8]);
        splice_script(4, 0, 15, &ops)
    }

    #[test]
    fn short_splice_is_not_drained() {
        let run = check_echo(&short_splice_before_eof()).unwrap();
        assert!(run.spliced && run.short_splice, "{run:?}");
        assert_eq!((run.sent, run.echoed), (28, 28));
        assert_eq!(run.closed, CloseReason::PeerClosed);
        assert!(run.closed_during_script, "{run:?}");
    }

    // The pipe holds bytes its socket will not take and has no slot left:
    // the splice in gets `WouldBlock` with 10 bytes queued, and the
    // writable edge of the peer reading its echo brings the rest.
    #[test]
    fn pipe_out_of_slots_resumes_on_the_writable_edge() {
        let mut ops = STREAM_8.to_vec();
        // Send buffer full, 5 bytes, no free slot, 10 bytes, peer reads 3.
        ops.extend([6, 0, 4, SLOTS_FULL, 0, 9, 3, 29]);
        let run = check_echo(&splice_script(4, 0, 15, &ops)).unwrap();
        assert!(
            run.spliced && run.slots_full && run.buffer_filled,
            "{run:?}"
        );
        assert_eq!((run.sent, run.echoed), (23, 23));
        assert_eq!(run.closed, CloseReason::PeerClosed);
    }

    // A refused pipe leaves the connection copying; a pipe of one byte
    // (granted by the first byte, or by the operation) still echoes all.
    #[test]
    fn refused_and_small_pipes() {
        let streaming = [0, 7, 0, 26, 2, 26, 0, 26];
        let run = check_echo(&splice_script(4, 10, 3, &streaming)).unwrap();
        assert!(run.attach_refused && !run.spliced, "{run:?}");
        assert_eq!((run.sent, run.echoed), (89, 89));

        // Sizes are a few pipes' worth once it is attached: 8 + 3 × 3.
        let run = check_echo(&splice_script(4, 13, 3, &streaming)).unwrap();
        assert!(run.spliced && run.pipe_smaller, "{run:?}");
        assert_eq!((run.sent, run.echoed), (17, 17));

        let mut ops = vec![PIPE_PLAN, 1, 0];
        ops.extend(streaming);
        let run = check_echo(&splice_script(4, 0, 3, &ops)).unwrap();
        assert!(run.spliced && run.pipe_smaller, "{run:?}");
        let mut ops = vec![PIPE_PLAN, 0];
        ops.extend(streaming);
        let run = check_echo(&splice_script(4, 0, 3, &ops)).unwrap();
        assert!(run.attach_refused && !run.spliced, "{run:?}");

        // Without the flag, nothing asks for a pipe.
        let run = check_echo(&script(4, 3, &streaming)).unwrap();
        assert!(!run.splice_allowed && !run.spliced && !run.attach_refused);
    }

    // The peer's own rules for the pipe: each misuse is flagged.
    #[test]
    fn pipe_misuse_is_flagged() {
        fn peer() -> Peer {
            Peer {
                capacity: 8,
                room: usize::MAX,
                splice_allowed: true,
                pipe_plan: Some(usize::MAX),
                ..Peer::default()
            }
        }
        fn flagged(peer: &mut Peer) -> String {
            peer.violation.take().unwrap_or_default()
        }
        let mut p = peer();
        let _ = p.splice_in(4);
        assert!(flagged(&mut p).contains("before attach_pipe"));
        let _ = p.splice_out(4);
        assert!(flagged(&mut p).contains("before attach_pipe"));

        let mut p = peer();
        p.send(payload(0, 6), false);
        let _ = p.read(&mut [0; 4]);
        let _ = p.attach_pipe(8);
        assert!(flagged(&mut p).contains("4 bytes buffered"));

        let mut p = peer();
        p.send(payload(0, 4), false);
        assert_eq!(p.attach_pipe(8).unwrap(), 8);
        assert_eq!(p.splice_in(4).unwrap(), 4);
        assert_eq!(p.violation, None);
        let _ = p.read(&mut [0; 2]);
        assert!(flagged(&mut p).contains("read through the copy path"));
        p.room = 0;
        let _ = p.write(&[0]);
        assert!(flagged(&mut p).contains("write through the copy path"));
        p.room = usize::MAX;
        let _ = p.splice_in(0);
        assert!(flagged(&mut p).contains("splice_in of 0 bytes"));
        let _ = p.splice_in(5);
        assert!(flagged(&mut p).contains("more than the pipe's capacity"));
        let _ = p.splice_out(0);
        assert!(flagged(&mut p).contains("splice_out of 0 bytes"));
        assert_eq!(p.splice_out(9).unwrap(), 4, "the pipe's bytes, and no more");
        assert_eq!(p.violation, None);

        let mut p = peer();
        p.splice_allowed = false;
        let _ = p.attach_pipe(8);
        assert!(flagged(&mut p).contains("not allowed to splice"));
        p.splice_allowed = true;
        let _ = p.attach_pipe(8);
        assert!(flagged(&mut p).contains("already attached"));
    }

    // An empty input still runs the settle phase and closes cleanly.
    #[test]
    fn empty_script_closes_cleanly() {
        let run = check_echo(&[]).unwrap();
        assert_eq!(run.closed, CloseReason::PeerClosed);
        assert_eq!(run.sent, 0);
    }

    // Sends beyond the buffer with a stalled peer, then a reset: the
    // checker sees the buffer fill and the reset close.
    #[test]
    fn backpressure_then_reset() {
        // Capacity 3, budget 16: send buffer full, 9 bytes sent, reset.
        let run = check_echo(&script(2, 15, &[6, 0, 8, 9])).unwrap();
        assert!(run.buffer_filled, "{run:?}");
        assert_eq!(run.closed, CloseReason::Reset);
        assert!(run.closed_during_script);
    }

    // Shutdown with bytes owed: they are echoed before FIN, then late
    // input is discarded and the peer's EOF closes with `shutdown`.
    #[test]
    fn shutdown_flushes_then_lingers() {
        let run = check_echo(&script(5, 3, &[6, 0, 40, 10, 3, 100, 8])).unwrap();
        assert_eq!(run.closed, CloseReason::Shutdown, "{run:?}");
        assert_eq!(run.echoed, 41);
    }

    // Thousands of generated scripts pass: stable CI explores beyond the
    // checked-in corpus on every run.
    #[test]
    fn generated_scripts_pass() {
        let mut rng = Rng(0x0123_4567_89AB_CDEF);
        let mut reasons = std::collections::HashSet::new();
        let mut runs = Vec::new();
        for i in 0..3_000 {
            let len = (rng.next() % 300) as usize;
            let data = rng.bytes(len);
            match check_echo(&data) {
                Ok(run) => {
                    reasons.insert(run.closed.to_string());
                    runs.push(run);
                }
                Err(v) => panic!("script {i} {data:?}: {v}"),
            }
        }
        assert_eq!(reasons.len(), 3, "{reasons:?}");
        assert_reaches_the_pipe(&runs, 10);
    }

    // The same, leaning on the zero-copy path: splicing allowed, and about
    // one byte in five a pipe operation (uniform bytes select one in 16).
    #[test]
    fn generated_splice_scripts_pass() {
        let mut rng = Rng(0x5EED_0F50_11CE);
        let mut runs = Vec::new();
        for i in 0..3_000 {
            let len = (rng.next() % 300) as usize;
            let mut data = rng.bytes(len);
            if let Some(head) = data.first_mut() {
                *head |= 0x08;
            }
            for byte in data.iter_mut().skip(2) {
                if rng.next() % 5 == 0 {
                    *byte = PIPE_OPS + (rng.next() % 16) as u8;
                }
            }
            match check_echo(&data) {
                Ok(run) => runs.push(run),
                Err(v) => panic!("script {i} {data:?}: {v}"),
            }
        }
        let short = runs.iter().filter(|r| r.short_splice).count();
        let slots = runs.iter().filter(|r| r.slots_full).count();
        assert!(
            short >= 100 && slots >= 50,
            "{short} short, {slots} out of slots"
        );
    }

    /// A generated script leaning on urgent data and the FIN on the
    /// zero-copy path: splicing allowed, about one operation in six an
    /// urgent send, one in fifteen the peer's FIN and one in ten a full
    /// send buffer (which holds the server back before a mark), so that a
    /// FIN often arrives with a mark still ahead.
    fn urgent_fin_script(rng: &mut Rng) -> Vec<u8> {
        let len = (rng.next() % 200) as usize;
        let mut data = rng.bytes(len);
        if let Some(head) = data.first_mut() {
            *head |= 0x08;
        }
        for byte in data.iter_mut().skip(2) {
            match rng.next() % 30 {
                0..=4 => *byte = URGENT_OP,
                5 | 6 => *byte = 8,
                7..=9 => *byte = 6,
                _ => {}
            }
        }
        data
    }

    // Urgent data and FINs on the pipe: a splice meets the mark with the
    // FIN queued (and returns 0) in many scripts, and every byte still
    // comes back before a `peer closed`.
    #[test]
    fn generated_urgent_fin_scripts_pass() {
        let mut rng = Rng(0x0B0B_F1F0_A11C_E5ED);
        let mut zero = 0;
        for i in 0..3_000 {
            let data = urgent_fin_script(&mut rng);
            match check_echo(&data) {
                Ok(run) => zero += usize::from(run.zero_at_mark),
                Err(v) => panic!("script {i} {data:?}: {v}"),
            }
        }
        assert!(zero >= 50, "{zero} scripts met the mark after the FIN");
    }

    /// At least `least` of `runs` took each turn of the zero-copy path, and
    /// as many stayed on the copying one.
    fn assert_reaches_the_pipe(runs: &[EchoRun], least: usize) {
        let count = |f: fn(&EchoRun) -> bool| runs.iter().filter(|r| f(r)).count();
        let counts = [
            ("copying only", count(|r| !r.splice_allowed)),
            ("spliced", count(|r| r.spliced)),
            ("pipe smaller than asked", count(|r| r.pipe_smaller)),
            ("pipe refused", count(|r| r.attach_refused)),
            ("short splice", count(|r| r.short_splice)),
            ("pipe out of slots", count(|r| r.slots_full)),
            ("pipe full", count(|r| r.spliced && r.buffer_filled)),
        ];
        for (what, n) in counts {
            assert!(n >= least, "{what}: {n} of {} runs; {counts:?}", runs.len());
        }
    }

    // The checked-in seeds reach the zero-copy path too, so replaying them
    // (`model_check::tests::echo_corpus_replays`) covers it.
    #[test]
    fn seeds_reach_the_pipe() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/seeds/echo");
        let runs: Vec<EchoRun> = std::fs::read_dir(&dir)
            .expect("seed corpus")
            .map(|entry| {
                let path = entry.expect("seed").path();
                let data = std::fs::read(&path).expect("read seed");
                check_echo(&data).unwrap_or_else(|v| panic!("{}: {v}", path.display()))
            })
            .collect();
        assert_reaches_the_pipe(&runs, 1);
    }

    /// A deliberately broken state machine wrapping the real one.
    struct Broken {
        echo: Echo,
        fault: Fault,
    }

    #[derive(Clone, Copy)]
    enum Fault {
        /// Ignores the hang-up hint, so an EOF behind a short read is
        /// never seen.
        DropHangup,
        /// Ignores EPOLLPRI, so bytes behind an urgent mark are never read.
        DropUrgent,
        /// Reports the first byte of the second write as written without
        /// passing it on.
        LoseAByte,
        /// Says `Wait` where it should say `Resume`.
        ForgetResume,
        /// Overstates the bytes received in a turn.
        MiscountTurn,
        /// Takes a short splice into the pipe for a drained socket.
        ShortSpliceDrains,
        /// Says `Resume` where it should say `Wait`, so it spins.
        ResumeForever,
        /// Takes a splice's 0 for the peer's EOF, as the machine did before
        /// it confirmed one with a plain read.
        SpliceZeroIsEof,
    }

    /// Forwards to the peer, losing one byte of the second write.
    struct Lossy<'p> {
        peer: &'p mut Peer,
        writes: usize,
    }

    impl Read for Lossy<'_> {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            self.peer.read(buf)
        }
    }

    impl Write for Lossy<'_> {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.writes += 1;
            if self.writes == 2 && buf.len() > 1 {
                return self.peer.write(&buf[1..]).map(|n| n + 1);
            }
            self.peer.write(buf)
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    impl Transport for Lossy<'_> {
        fn shutdown_write(&mut self) -> io::Result<()> {
            self.peer.shutdown_write()
        }
        fn queued_in(&mut self) -> io::Result<usize> {
            self.peer.queued_in()
        }
        fn attach_pipe(&mut self, capacity: usize) -> io::Result<usize> {
            self.peer.attach_pipe(capacity)
        }
        fn splice_in(&mut self, max: usize) -> io::Result<usize> {
            self.peer.splice_in(max)
        }
        fn splice_out(&mut self, max: usize) -> io::Result<usize> {
            self.peer.splice_out(max)
        }
    }

    /// Forwards to the peer, but after a splice into the pipe that moved
    /// less than asked, reports the socket empty (`WouldBlock`) for the
    /// rest of the turn: the machine then stops as if a short splice meant
    /// a drained socket, as the copying path may for a short read.
    struct Hasty<'p> {
        peer: &'p mut Peer,
        drained: bool,
    }

    impl Read for Hasty<'_> {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            self.peer.read(buf)
        }
    }

    impl Write for Hasty<'_> {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.peer.write(buf)
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    impl Transport for Hasty<'_> {
        fn shutdown_write(&mut self) -> io::Result<()> {
            self.peer.shutdown_write()
        }
        fn queued_in(&mut self) -> io::Result<usize> {
            self.peer.queued_in()
        }
        fn attach_pipe(&mut self, capacity: usize) -> io::Result<usize> {
            self.peer.attach_pipe(capacity)
        }
        fn splice_in(&mut self, max: usize) -> io::Result<usize> {
            if self.drained {
                return Err(ErrorKind::WouldBlock.into());
            }
            let result = self.peer.splice_in(max);
            self.drained = matches!(result, Ok(n) if n > 0 && n < max);
            result
        }
        fn splice_out(&mut self, max: usize) -> io::Result<usize> {
            self.peer.splice_out(max)
        }
    }

    /// Forwards to the peer, but once a splice into the pipe returned 0,
    /// reads report EOF too: the machine's confirming read then agrees
    /// with the splice, as if the machine had never asked.
    struct Credulous<'p> {
        peer: &'p mut Peer,
        eof: bool,
    }

    impl Read for Credulous<'_> {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            if self.eof {
                return Ok(0);
            }
            self.peer.read(buf)
        }
    }

    impl Write for Credulous<'_> {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.peer.write(buf)
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    impl Transport for Credulous<'_> {
        fn shutdown_write(&mut self) -> io::Result<()> {
            self.peer.shutdown_write()
        }
        fn queued_in(&mut self) -> io::Result<usize> {
            self.peer.queued_in()
        }
        fn attach_pipe(&mut self, capacity: usize) -> io::Result<usize> {
            self.peer.attach_pipe(capacity)
        }
        fn splice_in(&mut self, max: usize) -> io::Result<usize> {
            let result = self.peer.splice_in(max);
            self.eof |= matches!(result, Ok(0));
            result
        }
        fn splice_out(&mut self, max: usize) -> io::Result<usize> {
            self.peer.splice_out(max)
        }
    }

    impl Machine for Broken {
        fn pump(&mut self, peer: &mut Peer, scratch: &mut [u8], max_reads: usize) -> Progress {
            match self.fault {
                Fault::LoseAByte => {
                    let mut lossy = Lossy { peer, writes: 0 };
                    self.echo.pump(&mut lossy, scratch, max_reads)
                }
                Fault::ResumeForever => {
                    let mut progress = self.echo.pump(peer, scratch, max_reads);
                    if progress.next == Next::Wait {
                        progress.next = Next::Resume;
                    }
                    progress
                }
                Fault::ForgetResume => {
                    let mut progress = self.echo.pump(peer, scratch, max_reads);
                    if progress.next == Next::Resume {
                        progress.next = Next::Wait;
                    }
                    progress
                }
                Fault::MiscountTurn => {
                    let mut progress = self.echo.pump(peer, scratch, max_reads);
                    if progress.received > 0 {
                        progress.received += 1;
                    }
                    progress
                }
                Fault::ShortSpliceDrains => {
                    let mut hasty = Hasty {
                        peer,
                        drained: false,
                    };
                    self.echo.pump(&mut hasty, scratch, max_reads)
                }
                Fault::SpliceZeroIsEof => {
                    let mut credulous = Credulous { peer, eof: false };
                    self.echo.pump(&mut credulous, scratch, max_reads)
                }
                Fault::DropHangup | Fault::DropUrgent => self.echo.pump(peer, scratch, max_reads),
            }
        }
        fn note_peer_hangup(&mut self) {
            if !matches!(self.fault, Fault::DropHangup) {
                self.echo.note_peer_hangup();
            }
        }
        fn note_urgent(&mut self) {
            if !matches!(self.fault, Fault::DropUrgent) {
                self.echo.note_urgent();
            }
        }
        fn begin_shutdown(&mut self) {
            self.echo.begin_shutdown();
        }
        fn phase(&self) -> Phase {
            self.echo.phase()
        }
        fn received(&self) -> u64 {
            self.echo.received()
        }
        fn echoed(&self) -> u64 {
            self.echo.echoed()
        }
        fn discarded(&self) -> u64 {
            self.echo.discarded()
        }
        fn pending(&self) -> usize {
            self.echo.pending()
        }
        fn is_splicing(&self) -> bool {
            self.echo.is_splicing()
        }
    }

    fn check_broken(data: &[u8], fault: Fault) -> Result<EchoRun, Violation> {
        Harness::new(data, |capacity, splice| Broken {
            echo: echo_machine(capacity, splice),
            fault,
        })
        .run()
    }

    /// The first generated script on which `fault` is caught, if any.
    fn caught(fault: Fault) -> Option<Violation> {
        caught_as(fault, "", 2_000)
    }

    /// The first of `scripts` generated scripts on which `fault` is caught
    /// with a complaint that contains `complaint`, if any.
    fn caught_as(fault: Fault, complaint: &str, scripts: usize) -> Option<Violation> {
        let mut rng = Rng(0xFEED_FACE_CAFE_BEEF);
        (0..scripts).find_map(|_| {
            let len = (rng.next() % 200) as usize;
            check_broken(&rng.bytes(len), fault)
                .err()
                .filter(|v| v.message.contains(complaint))
        })
    }

    // The checks can fail: each kind of bug a state machine could have is
    // caught by some generated script, with the matching complaint.
    #[test]
    fn broken_machines_are_caught() {
        let v = caught(Fault::DropHangup).expect("lost EOF not caught");
        assert!(v.message.contains("stalled"), "{v}");
        let v = caught(Fault::LoseAByte).expect("lost byte not caught");
        assert!(v.message.contains("echo differs"), "{v}");
        let v = caught(Fault::ForgetResume).expect("forgotten resume not caught");
        assert!(v.message.contains("stalled"), "{v}");
        let v = caught(Fault::MiscountTurn).expect("miscount not caught");
        assert!(v.message.contains("turn reports"), "{v}");
        let v = caught(Fault::ResumeForever).expect("spinning not caught");
        assert!(v.message.contains("livelock"), "{v}");
        // Rarer: the pipe's slots ran out with data queued, and the peer
        // then only waits for its echo (about one script in 10,000).
        let waits = "stalled: the peer waits for its echo";
        caught_as(Fault::ShortSpliceDrains, waits, 20_000)
            .expect("short splice as drained not caught");
        // A splice's 0 at the urgent mark taken for EOF, on scripts that
        // lean on urgent data and FINs.
        let mut rng = Rng(0xFEED_FACE_CAFE_BEEF);
        let v = (0..2_000)
            .find_map(|_| check_broken(&urgent_fin_script(&mut rng), Fault::SpliceZeroIsEof).err())
            .expect("splice's 0 as EOF not caught");
        assert!(v.message.contains("before the peer's EOF was read"), "{v}");
    }

    // Urgent data: a send of 20 bytes with its mark at byte 7 stops the
    // read (or, on the pipe, the splice) there. The real machine gets past
    // the mark and echoes all 20; one that ignores EPOLLPRI takes the short
    // read (or refused splice) for an empty socket and stalls.
    #[test]
    fn urgent_data_is_read_past_its_mark() {
        // Capacity 64, 16 reads a turn: [urgent send of 1 + 19, mark at 7].
        let copying = script(5, 15, &[URGENT_OP, 19, 7]);
        // Capacity 8, splicing: 21 bytes switch to the pipe, then the same.
        let splicing = splice_script(4, 0, 15, &[0, 20, URGENT_OP, 19, 7]);
        for data in [copying, splicing] {
            let run = check_echo(&data).unwrap_or_else(|v| panic!("{data:?}: {v}"));
            assert_eq!(run.echoed, run.sent, "{run:?}");
            let v = check_broken(&data, Fault::DropUrgent).expect_err("ignored urgent data");
            assert!(v.message.contains("stalled"), "{v}");
        }
        let run = check_echo(&splice_script(4, 0, 15, &[0, 20, URGENT_OP, 19, 7])).unwrap();
        assert!(run.spliced && run.sent == 41, "{run:?}");
    }

    // The scripted case in point: the same short splice that the real
    // machine gets through (`short_splice_is_not_drained`) stalls one that
    // takes it for a drained socket.
    #[test]
    fn short_splice_taken_for_drained_stalls() {
        let v = check_broken(&short_splice_before_eof(), Fault::ShortSpliceDrains).unwrap_err();
        assert!(v.message.contains("stalled"), "{v}");
        assert!(
            v.message.contains("11 of 28 bytes echoed, 17 unread"),
            "{v}"
        );
    }

    // Capacity 8, splicing: 8 bytes switch to the pipe, the send buffer
    // fills, 20 bytes come with the urgent mark at their 8th, and 7 of them
    // are spliced up to it; then the FIN. The next splice meets the mark
    // and returns 0, with 7 bytes in the pipe and 13 queued behind the
    // mark. Then the peer reads its echo (`free` bytes of it first, so the
    // pipe drains in two steps, if not `None`).
    fn fin_after_the_mark(free: Option<u8>) -> Vec<u8> {
        let mut ops = STREAM_8.to_vec();
        ops.extend([6, URGENT_OP, 19, 7, 8]);
        if let Some(k) = free {
            ops.extend([4, k]);
        }
        splice_script(4, 0, 15, &ops)
    }

    // The real machine does not take that 0 for EOF: it waits for the
    // writable edge (a read now would overtake the pipe), and once the
    // pipe is empty confirms the 0 with a plain read, which steps over the
    // mark; all 28 bytes come back before it closes. A machine that takes
    // the 0 for EOF ends with 13 bytes unread.
    #[test]
    fn splice_zero_at_the_urgent_mark_is_not_eof() {
        for data in [fin_after_the_mark(None), fin_after_the_mark(Some(9))] {
            let run = check_echo(&data).unwrap_or_else(|v| panic!("{data:?}: {v}"));
            assert!(run.spliced && run.zero_at_mark, "{run:?}");
            assert_eq!((run.sent, run.echoed), (28, 28));
            assert_eq!(run.closed, CloseReason::PeerClosed);
            let v = check_broken(&data, Fault::SpliceZeroIsEof).expect_err("0 taken for EOF");
            assert!(
                v.message
                    .contains("PeerDone before the peer's EOF was read"),
                "{v}"
            );
        }
    }
}
