//! The echo state machine against a scripted peer and an edge-triggered
//! readiness model.
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
//! Checked after every pump, against a reference that is just "the bytes
//! the peer sent, and how many the socket handed over":
//! - the bytes written back are always a prefix of the bytes sent;
//! - the counters (`received`, `echoed`, `pending`, `discarded`, and the
//!   turn's [`Progress`]) equal the bytes the socket actually moved;
//! - no read is issued while the buffer is full, and no read asks for more
//!   than the buffer can still hold;
//! - FIN is sent only once everything read has been echoed, and nothing is
//!   written after it;
//! - after EOF with a drained buffer the connection closes, and each close
//!   reason matches what the peer did (`peer closed` only with the whole
//!   echo delivered);
//! - liveness: when the script ends, the peer reads everything and closes;
//!   with no further events than a real kernel would raise, the connection
//!   must deliver every byte and close. A turn that returns `Wait` with
//!   work left and no edge coming shows up here as a stall.

use std::collections::VecDeque;
use std::io::{self, ErrorKind, Read, Write};

use super::{Input, Violation};
use crate::echo::{CloseReason, Echo, Next, Phase, Progress, Transport};

/// Buffer sizes the script chooses from: tiny ones reach the ring's
/// wrap-around and the full-buffer paths within a few bytes; the larger
/// ones cover multi-chunk reads and writes.
const CAPACITIES: [usize; 8] = [1, 2, 3, 5, 8, 64, 255, 4096];
/// Operations decoded from one input at most; keeps each run short.
const MAX_STEPS: usize = 4096;
/// Consecutive pumps one step may cause before it counts as a livelock:
/// each must move a byte or end, and no step queues this many.
const MAX_PUMPS_PER_STEP: usize = 100_000;
/// The kinds of operation a script byte can select.
const OPS: u8 = 12;

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
    /// True when the pending buffer was full after some pump.
    pub buffer_filled: bool,
}

/// Runs the script in `data` against [`Echo`]; see the module docs for
/// what is checked.
pub fn check_echo(data: &[u8]) -> Result<EchoRun, Violation> {
    Harness::new(data, Echo::new).run()
}

/// What the harness needs from the state machine; [`Echo`] is the real
/// one, and the tests substitute broken ones to prove the checks catch them.
pub(crate) trait Machine {
    fn pump(&mut self, peer: &mut Peer, scratch: &mut [u8], max_reads: usize) -> Progress;
    fn note_peer_hangup(&mut self);
    fn begin_shutdown(&mut self);
    fn phase(&self) -> Phase;
    fn received(&self) -> u64;
    fn echoed(&self) -> u64;
    fn discarded(&self) -> u64;
    fn pending(&self) -> usize;
}

impl Machine for Echo {
    fn pump(&mut self, peer: &mut Peer, scratch: &mut [u8], max_reads: usize) -> Progress {
        Echo::pump(self, peer, scratch, max_reads)
    }
    fn note_peer_hangup(&mut self) {
        Echo::note_peer_hangup(self)
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
    turn_read: u64,
    turn_written: u64,
    /// First broken rule seen inside a read or write call.
    violation: Option<String>,
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

    fn read_now(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if std::mem::take(&mut self.interrupt_read) {
            return Err(ErrorKind::Interrupted.into());
        }
        if self.reset {
            return Err(ErrorKind::ConnectionReset.into());
        }
        if !self.fin_sent {
            let pending = self.kept - self.written;
            if buf.is_empty() {
                self.flag("read with an empty buffer (Ok(0) would look like EOF)".into());
            } else if pending >= self.capacity as u64 {
                self.flag(format!("read while the buffer is full ({pending} pending)"));
            } else if pending + buf.len() as u64 > self.capacity as u64 {
                self.flag(format!(
                    "read of {} bytes with {pending} pending: more than the capacity {}",
                    buf.len(),
                    self.capacity
                ));
            }
        }
        if self.inbound.is_empty() {
            return if self.eof {
                Ok(0)
            } else {
                Err(ErrorKind::WouldBlock.into())
            };
        }
        let n = buf.len().min(self.inbound.len());
        for (slot, byte) in buf.iter_mut().zip(self.inbound.drain(..n)) {
            *slot = byte;
        }
        if self.fin_sent {
            self.discarded += n as u64;
        } else {
            self.kept += n as u64;
            self.turn_read += n as u64;
        }
        Ok(n)
    }

    fn write_now(&mut self, buf: &[u8]) -> io::Result<usize> {
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
        let at = self.written as usize;
        if at + n > self.kept as usize {
            self.flag(format!(
                "echoed bytes {at}..{} but only {} were read",
                at + n,
                self.kept
            ));
        } else if buf[..n] != self.sent[at..at + n] {
            let i = buf[..n]
                .iter()
                .zip(&self.sent[at..at + n])
                .position(|(a, b)| a != b)
                .unwrap_or(0);
            self.flag(format!(
                "echo differs from the input at offset {}: {:#04x} instead of {:#04x}",
                at + i,
                buf[i],
                self.sent[at + i]
            ));
        }
        self.room -= n;
        self.written += n as u64;
        self.turn_written += n as u64;
        if n < buf.len() {
            self.starved = true;
        }
        Ok(n)
    }
}

impl Read for Peer {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let result = self.read_now(buf);
        // Data that arrives just as the kernel reports the queue empty: its
        // edge is the only thing that brings the server back for it.
        if !self.arriving.is_empty() {
            self.inbound.extend(self.arriving.drain(..));
            self.readable_edge = true;
        }
        result
    }
}

impl Write for Peer {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let result = self.write_now(buf);
        let freed = std::mem::take(&mut self.room_arriving);
        self.free_room(freed);
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
    pub(crate) fn new(data: &'a [u8], make: impl FnOnce(usize) -> M) -> Self {
        let mut input = Input::new(data);
        let capacity = CAPACITIES[input.below(CAPACITIES.len())];
        // The server passes READS_PER_TURN (16); any budget must work.
        let max_reads = 1 + input.below(16);
        let peer = Peer {
            capacity,
            // Registration reports the socket writable once.
            writable_edge: true,
            room: usize::MAX,
            ..Peer::default()
        };
        Self {
            input,
            machine: make(capacity),
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
        })
    }

    fn size(&mut self) -> usize {
        // Up to a few buffers' worth, so sends both fit and overflow.
        1 + self.input.below(3 * self.peer.capacity + 3)
    }

    fn apply_op(&mut self) {
        let peer_can_send = !self.peer.eof && !self.peer.reset;
        match self.input.byte() % OPS {
            // The peer sends bytes; they are in the receive queue now.
            0 | 1 if peer_can_send => {
                let n = self.size();
                let start = self.peer.sent.len();
                self.peer.send(payload(start, n), false);
            }
            // The peer sends bytes that land just after the next read call.
            2 if peer_can_send => {
                let n = self.size();
                let start = self.peer.sent.len();
                self.peer.send(payload(start, n), true);
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
            _ => {}
        }
    }

    /// Pumps for as long as the loop would: while an edge or a queued turn
    /// is waiting.
    fn deliver(&mut self) -> Result<(), Violation> {
        let mut pumps = 0;
        while self.closed.is_none()
            && (self.peer.readable_edge || self.peer.writable_edge || self.resume || self.spurious)
        {
            pumps += 1;
            if pumps > MAX_PUMPS_PER_STEP {
                return Err(self.fail("livelock: the connection keeps asking for turns"));
            }
            self.peer.readable_edge = false;
            self.peer.writable_edge = false;
            self.resume = false;
            self.spurious = false;
            if std::mem::take(&mut self.peer.hangup) {
                self.machine.note_peer_hangup();
            }
            self.peer.turn_read = 0;
            self.peer.turn_written = 0;
            self.pumps += 1;
            let progress = self
                .machine
                .pump(&mut self.peer, &mut self.scratch, self.max_reads);
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
        self.buffer_filled |= pending == peer.capacity;
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

    /// The script is over: no more signals, the peer reads everything and
    /// half-closes. The connection must then deliver the rest and close on
    /// the events a kernel would raise, and nothing else.
    fn settle(&mut self) -> Result<(), Violation> {
        if self.closed.is_some() {
            return Ok(());
        }
        self.step += 1;
        self.peer.interrupt_read = false;
        self.peer.interrupt_write = false;
        if !self.peer.arriving.is_empty() {
            let arriving = std::mem::take(&mut self.peer.arriving);
            self.peer.inbound.extend(arriving);
            self.peer.readable_edge = true;
        }
        self.peer.room_arriving = 0;
        self.peer.room = 0;
        self.peer.free_room(usize::MAX);
        if !self.peer.eof && !self.peer.reset {
            self.peer.eof = true;
            self.peer.readable_edge = true;
            self.peer.hangup = true;
        }
        self.deliver()?;
        let Some(reason) = &self.closed else {
            let p = &self.peer;
            return Err(self.fail(format!(
                "stalled: no event is coming, yet the connection is open with {} of {} bytes \
                 echoed, {} unread (phase {:?})",
                p.written,
                p.sent.len(),
                p.inbound.len(),
                self.machine.phase()
            )));
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
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model_check::XorShift;

    // Builds a script: capacity index, read budget, then operations.
    fn script(capacity: u8, max_reads: u8, ops: &[u8]) -> Vec<u8> {
        let mut v = vec![capacity, max_reads];
        v.extend_from_slice(ops);
        v
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
        let mut rng = XorShift(0x0123_4567_89AB_CDEF);
        let mut reasons = std::collections::HashSet::new();
        for i in 0..3_000 {
            let len = (rng.next() % 300) as usize;
            let data = rng.bytes(len);
            match check_echo(&data) {
                Ok(run) => {
                    reasons.insert(run.closed.to_string());
                }
                Err(v) => panic!("script {i} {data:?}: {v}"),
            }
        }
        assert_eq!(reasons.len(), 3, "{reasons:?}");
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
        /// Reports the first byte of the second write as written without
        /// passing it on.
        LoseAByte,
        /// Says `Wait` where it should say `Resume`.
        ForgetResume,
        /// Overstates the bytes received in a turn.
        MiscountTurn,
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
    }

    impl Machine for Broken {
        fn pump(&mut self, peer: &mut Peer, scratch: &mut [u8], max_reads: usize) -> Progress {
            match self.fault {
                Fault::LoseAByte => {
                    let mut lossy = Lossy { peer, writes: 0 };
                    self.echo.pump(&mut lossy, scratch, max_reads)
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
                Fault::DropHangup => self.echo.pump(peer, scratch, max_reads),
            }
        }
        fn note_peer_hangup(&mut self) {
            if !matches!(self.fault, Fault::DropHangup) {
                self.echo.note_peer_hangup();
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
    }

    fn check_broken(data: &[u8], fault: Fault) -> Result<EchoRun, Violation> {
        Harness::new(data, |capacity| Broken {
            echo: Echo::new(capacity),
            fault,
        })
        .run()
    }

    /// The first generated script on which `fault` is caught, if any.
    fn caught(fault: Fault) -> Option<Violation> {
        let mut rng = XorShift(0xFEED_FACE_CAFE_BEEF);
        (0..2_000).find_map(|_| {
            let len = (rng.next() % 200) as usize;
            check_broken(&rng.bytes(len), fault).err()
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
    }
}
