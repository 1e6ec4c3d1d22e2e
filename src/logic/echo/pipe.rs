//! The zero-copy steps of a turn: when a connection switches to the
//! transport's pipe, and one splice from the socket into it (the rules are
//! in the module docs of [`echo`](super)).

use super::turn::{retry_interrupted, Attempt, Flow, Turn};
use super::{CloseReason, Echo, Next, Progress, Transport};

/// Where a connection stands with the zero-copy path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Splice {
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

impl Echo {
    /// The switch to the zero-copy path, once it is due and nothing is
    /// buffered; a transport that cannot give a pipe keeps copying.
    pub(super) fn switch_to_pipe<T: Transport>(&mut self, stream: &mut T, progress: &mut Progress) {
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
    pub(super) fn fill_pipe<T: Transport>(
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
                progress.streamed = true;
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

    /// After a read that filled all its room: a connection allowed to
    /// splice asks how deep the receive queue is, and the pipe becomes due
    /// when it holds the backlog. Asked after the echo went out, so that it
    /// never waits on the question; one syscall per turn at most, and only
    /// for a stream: small messages never fill the room.
    pub(super) fn ask_depth<T: Transport>(&mut self, stream: &mut T, turn: &mut Turn) {
        if let Splice::Allowed { backlog } = self.splice {
            turn.depth_asked = true;
            if stream.queued_in().is_ok_and(|q| q >= backlog) {
                self.splice = Splice::Due;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::model_check::stream::ScriptedStream as MockStream;

    // A peer streaming with a deep backlog (a full read leaves at least the
    // allowed backlog queued) is switched to the pipe, and from then on no
    // byte goes through read/write.
    #[test]
    fn streaming_switches_to_the_pipe() {
        let input: Vec<u8> = (0..1000u32).map(|i| (i % 251) as u8).collect();
        let mut echo = Echo::new(64).allow_splice(256);
        let mut io = MockStream::new(&input, usize::MAX);
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
        let mut io = MockStream::new(b"short", usize::MAX);
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
        let mut io = MockStream::new(&[3; 100], usize::MAX);
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
        let mut io = MockStream::new(&input, usize::MAX);
        echo.pump(&mut io, &mut [0; 16], 1);
        io.splice_limit = Some(3);
        let progress = echo.pump(&mut io, &mut [0; 16], 1000);
        assert!(echo.is_splicing());
        assert_eq!(progress.next, Next::Wait);
        assert_eq!(io.output, input);
        assert!(io.inbound.is_empty());
    }

    // A splice never moves past the urgent mark: a plain read steps over
    // it, and the bytes still come back in order, including when the echo
    // is blocked meanwhile.
    #[test]
    fn splicing_gets_past_an_urgent_mark() {
        let input: Vec<u8> = (0..600u32).map(|i| (i % 251) as u8).collect();
        let mut echo = Echo::new(16).allow_splice(0);
        let mut io = MockStream::new(&input[..32], usize::MAX);
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
            let mut io = MockStream::new(&input[..32], usize::MAX);
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

    // When the pipe cannot be had, the connection goes on copying.
    #[test]
    fn no_pipe_keeps_copying() {
        let mut echo = Echo::new(8).allow_splice(0);
        let mut io = MockStream::new(&[9; 100], usize::MAX);
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
        let mut io = MockStream::new(&input, 32);
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
}
