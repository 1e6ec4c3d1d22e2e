//! One turn of a connection ([`Echo::pump`]): flush what waits, then read
//! and echo (or answer, for another service) until the stream would
//! block, the read budget runs out or the connection ends; the copying
//! steps and the end of a connection.

use std::io::{self, ErrorKind};

use super::pipe::Splice;
use super::{CloseReason, Echo, Next, Phase, Progress, Transport};
use crate::logic::service::Output;

/// What is left of one turn's loop besides the counters in [`Progress`].
#[derive(Default)]
pub(super) struct Turn {
    /// Reads (and splices in) taken, against the turn's budget.
    pub(super) reads: usize,
    /// This turn has asked how deep the receive queue is.
    pub(super) depth_asked: bool,
    /// A read showed the kernel's receive queue empty.
    pub(super) drained: bool,
    /// A write showed the kernel's send buffer full.
    pub(super) write_blocked: bool,
}

/// Where a step of the turn leaves its loop.
pub(super) enum Flow {
    /// Back to the top: flush, then read again.
    Again,
    /// On to the next step of the same pass.
    Proceed,
    /// The turn ends with this.
    Stop(Next),
}

/// How a single read or write attempt ended.
pub(super) enum Attempt {
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
pub(super) fn retry_interrupted(mut op: impl FnMut() -> io::Result<usize>) -> Attempt {
    loop {
        match op() {
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            result => return attempt(result),
        }
    }
}

impl Echo {
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
            streamed: false,
        };
        if self.service.is_echo() {
            progress.next = self.exchange::<T, true>(stream, scratch, max_reads, &mut progress);
            debug_assert_eq!(
                self.received,
                self.echoed + self.pending() as u64,
                "echo accounting broken"
            );
        } else {
            progress.next = self.exchange::<T, false>(stream, scratch, max_reads, &mut progress);
        }
        debug_assert!(self.pending() <= self.pending.capacity() && self.held <= self.pending.len());
        progress
    }

    /// The turn: flush what waits, then read (or splice) and echo, until
    /// the stream would block, the budget runs out or the connection ends.
    /// `ECHO`: the service is plain echo (the fast path, the pipe); else
    /// the bytes go through the service, and a generating one (chargen)
    /// writes a chunk whenever nothing waits.
    fn exchange<T: Transport, const ECHO: bool>(
        &mut self,
        stream: &mut T,
        scratch: &mut [u8],
        max_reads: usize,
        progress: &mut Progress,
    ) -> Next {
        let mut turn = Turn::default();
        loop {
            // Waiting bytes go first: echo order is the contract.
            if !turn.write_blocked && self.flushable::<ECHO>() > 0 {
                match self.flush(stream, progress, &mut turn) {
                    Flow::Again => continue,
                    Flow::Proceed => {}
                    Flow::Stop(next) => return next,
                }
            }
            if self.flushable::<ECHO>() == 0 {
                if let Some(next) = self.end_phase::<T, ECHO>(stream, &turn) {
                    return next;
                }
            }
            if self.phase == Phase::Lingering {
                return self.discard(stream, scratch, max_reads - turn.reads.min(max_reads));
            }
            if !ECHO && !turn.write_blocked && self.pending.is_empty() {
                match self.generate(stream, scratch, max_reads, progress, &mut turn) {
                    // A peer that reads as fast as bytes are generated never
                    // blocks a write: unless its input is known drained,
                    // read it between chunks, or it is never counted.
                    Flow::Again if turn.drained || self.phase == Phase::PeerDone => continue,
                    Flow::Again | Flow::Proceed => {}
                    Flow::Stop(next) => return next,
                }
            }
            if self.phase == Phase::PeerDone || turn.drained || self.is_full::<ECHO>() {
                return Next::Wait;
            }
            if turn.reads == max_reads {
                return Next::Resume;
            }
            turn.reads += 1;

            if ECHO
                && self.splice == Splice::Due
                && self.pending.is_empty()
                && self.phase == Phase::Echoing
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
            let read = if ECHO {
                self.read_in(stream, scratch, progress, &mut turn)
            } else {
                self.read_for_service(stream, scratch, progress, &mut turn)
            };
            if let Err(reason) = read {
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
            // Held bytes (an unfinished reply) stay.
            let chunk = &chunk[..chunk.len().min(self.pending.len() - self.held)];
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
    /// and lingers. Answers still owed (prime checks) are waited for; a
    /// generating service goes on after the peer's FIN (it only said it
    /// sends no more).
    fn end_phase<T: Transport, const ECHO: bool>(
        &mut self,
        stream: &mut T,
        turn: &Turn,
    ) -> Option<Next> {
        if !ECHO
            && (self.service.outstanding() > 0
                || (self.phase == Phase::PeerDone && self.service.generator().is_some()))
        {
            return None;
        }
        match self.phase {
            Phase::PeerDone => Some(Next::Close(Self::end_of_stream(stream))),
            Phase::Draining if turn.drained && self.held > 0 => {
                // What the peer sent is all read: its unfinished line is
                // answered as at EOF, then the FIN.
                self.finish_input();
                None
            }
            Phase::Draining if turn.drained => self.end_drain(stream),
            _ => None,
        }
    }

    /// The drain is done: FIN, then linger, or close at once with nothing
    /// in flight. Out of line: it runs once per connection, and inlined
    /// into every turn it cost each echoed message instructions (callgrind).
    #[inline(never)]
    fn end_drain<T: Transport>(&mut self, stream: &mut T) -> Option<Next> {
        // Lingering protects echo bytes still in flight from the reset a
        // close with late input would send; with every byte acknowledged
        // there are none, and an idle peer (an interactive `nc`) would hold
        // the stop to its timeout.
        let nothing_in_flight = stream.unacknowledged().is_ok_and(|n| n == 0);
        if let Err(e) = stream.shutdown_write() {
            return Some(Next::Close(CloseReason::from_io(&e)));
        }
        if nothing_in_flight {
            return Some(Next::Close(CloseReason::Shutdown));
        }
        self.phase = Phase::Lingering;
        None
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
                if n == want {
                    progress.streamed = true;
                    if !turn.depth_asked {
                        self.ask_depth(stream, turn);
                    }
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

    /// One plain read for a service other than echo: at most what its
    /// answer has room for, answered into the buffer at once.
    fn read_for_service<T: Transport>(
        &mut self,
        stream: &mut T,
        scratch: &mut [u8],
        progress: &mut Progress,
        turn: &mut Turn,
    ) -> Result<(), CloseReason> {
        let room = self.service.input_room(self.pending.free());
        let want = scratch.len().min(room);
        match retry_interrupted(|| stream.read(&mut scratch[..want])) {
            Attempt::Moved(0) => {
                self.phase = Phase::PeerDone;
                self.finish_input();
            }
            Attempt::Moved(n) => {
                self.received += n as u64;
                progress.received += n;
                turn.drained = n < want && !self.peer_hung_up && !self.urgent;
                progress.streamed |= n == want;
                let mut out = Output::new(&mut self.pending, &mut self.held);
                self.service
                    .feed(&mut scratch[..n], &mut out, &mut |number| {
                        stream.submit_check(number)
                    });
            }
            Attempt::WouldBlock => {
                turn.drained = true;
                self.urgent = false;
            }
            Attempt::Failed(e) => return Err(CloseReason::from_io(&e)),
        }
        Ok(())
    }

    /// The peer sent all it will: the service answers what it held.
    fn finish_input(&mut self) {
        let mut out = Output::new(&mut self.pending, &mut self.held);
        self.service.finish(&mut out);
    }

    /// A generating service (chargen) with nothing waiting writes its next
    /// chunk, at most a buffer's worth, straight from `scratch`; what the
    /// socket does not take waits in the buffer. Until the connection
    /// drains or lingers, whether or not the peer still sends.
    fn generate<T: Transport>(
        &mut self,
        stream: &mut T,
        scratch: &mut [u8],
        max_reads: usize,
        progress: &mut Progress,
        turn: &mut Turn,
    ) -> Flow {
        if !matches!(self.phase, Phase::Echoing | Phase::PeerDone) {
            return Flow::Proceed;
        }
        let want = scratch.len().min(self.pending.capacity());
        let Some(generator) = self.service.generator() else {
            return Flow::Proceed;
        };
        if turn.reads == max_reads {
            return Flow::Stop(Next::Resume);
        }
        turn.reads += 1;
        generator.generate(&mut scratch[..want]);
        match self.echo_from_scratch(stream, &scratch[..want], progress, &mut turn.write_blocked) {
            Ok(()) => Flow::Again,
            Err(reason) => Flow::Stop(Next::Close(reason)),
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

    /// Writes freshly read (or generated) bytes straight out; whatever the
    /// socket does not take waits in the pending buffer (it fits: it is at
    /// most one read).
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

    // Ping-pong costs exactly one read and one write: the short read stops
    // the turn without a WouldBlock syscall.
    #[test]
    fn ping_pong_is_one_read_one_write() {
        let mut echo = Echo::new(1024);
        let mut io = MockStream::new(b"hello", usize::MAX);
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
        let mut io = MockStream::new(&input, 0);
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
        let mut io = MockStream::new(b"abcdef", 2);
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
        let mut io = MockStream::new(b"bye", 100);
        io.eof = true;
        assert_eq!(echo.pump(&mut io, &mut scratch, 16).next, Next::Wait);

        let mut echo = Echo::new(64);
        let mut io = MockStream::new(b"bye", 100);
        io.eof = true;
        echo.note_peer_hangup();
        let progress = echo.pump(&mut io, &mut scratch, 16);
        assert_eq!(progress.next, Next::Close(CloseReason::PeerClosed));
        assert_eq!(io.output, b"bye");
    }

    // A flooding peer gets at most `max_reads` reads per turn, then yields.
    #[test]
    fn read_budget_yields() {
        let mut echo = Echo::new(8);
        let mut io = MockStream::new(&[7; 1000], usize::MAX);
        let progress = echo.pump(&mut io, &mut [0; 8], 3);
        assert_eq!(progress.next, Next::Resume);
        assert_eq!(progress.received, 24);
        assert_eq!(io.output.len(), 24);
    }

    // Shutdown: echo what was queued, send FIN, drop late input, close on EOF.
    #[test]
    fn drain_then_fin_then_linger() {
        let mut echo = Echo::new(64);
        let mut io = MockStream::new(b"last words", 100);
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

    // Shutdown with every echoed byte acknowledged: FIN, then close at
    // once; nothing is in flight for a linger to protect.
    #[test]
    fn drain_closes_at_once_with_nothing_in_flight() {
        let mut echo = Echo::new(64);
        let mut io = MockStream::new(b"", 100);
        io.unacknowledged = Some(0);
        echo.begin_shutdown();
        let progress = echo.pump(&mut io, &mut [0; 64], 16);
        assert_eq!(progress.next, Next::Close(CloseReason::Shutdown));
        assert!(io.fin_sent);
        // Bytes not yet acknowledged: it lingers for the peer's FIN.
        let mut echo = Echo::new(64);
        let mut io = MockStream::new(b"", 100);
        io.unacknowledged = Some(1);
        echo.begin_shutdown();
        assert_eq!(echo.pump(&mut io, &mut [0; 64], 16).next, Next::Wait);
        assert_eq!(echo.phase(), Phase::Lingering);
    }

    // Urgent data (MSG_OOB, telnet's interrupt): a read stops short at the
    // mark with the rest still queued, which must not pass for an empty
    // socket once the event source reported urgent data.
    #[test]
    fn urgent_data_is_read_past_its_mark() {
        let input: Vec<u8> = [[b'A'; 100], [b'B'; 100]].concat();
        let mut io = MockStream::new(&input, usize::MAX);
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
        let mut io = MockStream::new(&input, usize::MAX);
        io.urgent_mark = Some(100);
        Echo::new(1024).pump(&mut io, &mut [0; 1024], 16);
        assert_eq!(io.output.len(), 100);
    }

    // A close with bytes still queued resets the peer: it is not `peer
    // closed`, even when a read reported EOF.
    #[test]
    fn unread_bytes_at_close_are_not_a_clean_end() {
        let mut io = MockStream::new(b"left behind", usize::MAX);
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
}
