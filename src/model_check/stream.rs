//! A socket stand-in for tests and model checks: the peer's bytes, the
//! kernel's answers and the zero-copy pipe, all set by the script, so the
//! pure logic ([`Echo`](crate::logic::echo::Echo),
//! [`HttpConn`](crate::logic::http::conn::HttpConn)) runs without a kernel.
//!
//! It models what the logic relies on and nothing more: reads return what
//! is queued (stopping at the end of a segment sent with
//! [`ScriptedStream::send`], and short of TCP's urgent mark), then
//! `WouldBlock`, or 0 once the peer has half-closed; writes take what the
//! send buffer has room for, then `WouldBlock`. A write after the stream's
//! own FIN panics: that is a bug in the code under test, never a script.
//! The echo model check keeps its own peer (`model_check::echo`), which
//! also raises readiness edges and checks every call as it is made.

use std::collections::VecDeque;
use std::io::{self, ErrorKind, Read, Write};

use crate::logic::echo::Transport;

/// The scripted stream. Fields are the script: set them between turns.
#[derive(Debug, Default)]
pub(crate) struct ScriptedStream {
    /// Bytes the peer sent that wait to be read (the receive queue).
    pub inbound: VecDeque<u8>,
    /// The peer half-closed: once `inbound` is empty, reads return 0.
    pub eof: bool,
    /// `read` reports EOF whatever is still queued.
    pub false_eof: bool,
    /// The peer reset: reads and writes fail with `ConnectionReset`.
    pub reset: bool,
    /// Every read (and splice in) fails with this.
    pub read_error: Option<ErrorKind>,
    /// The next read (or splice in) fails with `Interrupted`, as when a
    /// signal lands.
    pub interrupt_read: bool,
    /// How many more bytes the send buffer takes before `WouldBlock`
    /// (`usize::MAX`: as many as come).
    pub room: usize,
    /// Everything written (and spliced out), in order.
    pub output: Vec<u8>,
    /// `shutdown_write` was called.
    pub fin_sent: bool,
    /// Calls to `read` (not counting splices).
    pub reads: usize,
    /// Calls to `write` (not counting splices).
    pub writes: usize,
    /// Bytes before TCP's urgent mark: a read stops there, a splice never
    /// moves past it, and a read at the mark goes on past it.
    pub urgent_mark: Option<usize>,
    /// The kernel pipe, once attached: bytes spliced in, not yet out.
    pub pipe: Option<Vec<u8>>,
    /// `attach_pipe` fails (as with EMFILE).
    pub no_pipes: bool,
    /// Calls to `attach_pipe`, granted or not.
    pub pipes_asked: usize,
    /// Most bytes one splice into the pipe moves (the pipe's slots).
    pub splice_limit: Option<usize>,
    /// Calls to `splice_in` and `splice_out`.
    pub splices: usize,
    /// Splices that met the urgent mark with the FIN queued (`Ok(0)`).
    pub zeros_at_mark: usize,
    /// What `unacknowledged` answers (`None`: it fails, as an unknown).
    pub unacknowledged: Option<usize>,
    /// Ends of the segments queued by `send`, as counts of bytes read.
    segment_ends: VecDeque<usize>,
    /// Bytes read (or spliced in) so far.
    taken: usize,
}

impl ScriptedStream {
    /// A stream with `inbound` queued and room for `room` bytes of output.
    pub(crate) fn new(inbound: &[u8], room: usize) -> Self {
        Self {
            inbound: inbound.iter().copied().collect(),
            room,
            ..Self::default()
        }
    }

    /// Queues `bytes` as one segment: a read returns no more than what is
    /// left of it, as a socket's read does when the next segment has not
    /// arrived yet.
    pub(crate) fn send(&mut self, bytes: &[u8]) {
        self.inbound.extend(bytes);
        self.segment_ends.push_back(self.taken + self.inbound.len());
    }

    /// A read's rules, for `read` and `splice_in`.
    fn take(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if std::mem::take(&mut self.interrupt_read) {
            return Err(ErrorKind::Interrupted.into());
        }
        if let Some(kind) = self.read_error {
            return Err(kind.into());
        }
        if self.reset {
            return Err(ErrorKind::ConnectionReset.into());
        }
        if self.inbound.is_empty() || self.false_eof {
            return if self.eof {
                Ok(0)
            } else {
                Err(ErrorKind::WouldBlock.into())
            };
        }
        while self
            .segment_ends
            .front()
            .is_some_and(|&end| end <= self.taken)
        {
            self.segment_ends.pop_front();
        }
        let segment = self
            .segment_ends
            .front()
            .map_or(usize::MAX, |&end| end - self.taken);
        let mut n = buf.len().min(self.inbound.len()).min(segment);
        match self.urgent_mark {
            Some(0) => self.urgent_mark = None,
            Some(before) => {
                n = n.min(before);
                self.urgent_mark = Some(before - n);
            }
            None => {}
        }
        for (slot, byte) in buf.iter_mut().zip(self.inbound.drain(..n)) {
            *slot = byte;
        }
        self.taken += n;
        Ok(n)
    }

    /// A write's rules, for `write` and `splice_out`.
    fn put(&mut self, buf: &[u8]) -> io::Result<usize> {
        if self.reset {
            return Err(ErrorKind::ConnectionReset.into());
        }
        assert!(!self.fin_sent, "write after FIN");
        if self.room == 0 {
            return Err(ErrorKind::WouldBlock.into());
        }
        let n = buf.len().min(self.room);
        self.room -= n;
        self.output.extend_from_slice(&buf[..n]);
        Ok(n)
    }
}

impl Read for ScriptedStream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.reads += 1;
        self.take(buf)
    }
}

impl Write for ScriptedStream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.writes += 1;
        self.put(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Transport for ScriptedStream {
    fn shutdown_write(&mut self) -> io::Result<()> {
        self.fin_sent = true;
        Ok(())
    }

    fn queued_in(&mut self) -> io::Result<usize> {
        Ok(self.inbound.len())
    }

    fn unacknowledged(&mut self) -> io::Result<usize> {
        self.unacknowledged
            .ok_or_else(|| ErrorKind::Unsupported.into())
    }

    fn attach_pipe(&mut self, capacity: usize) -> io::Result<usize> {
        self.pipes_asked += 1;
        if self.no_pipes {
            return Err(ErrorKind::OutOfMemory.into());
        }
        self.pipe = Some(Vec::new());
        Ok(capacity)
    }

    fn splice_in(&mut self, max: usize) -> io::Result<usize> {
        self.splices += 1;
        if self.urgent_mark == Some(0) {
            // As the kernel's: at the mark, 0 once the FIN is queued.
            return if self.eof {
                self.zeros_at_mark += 1;
                Ok(0)
            } else {
                Err(ErrorKind::WouldBlock.into())
            };
        }
        let limit = self.splice_limit.unwrap_or(usize::MAX).min(max);
        let mut chunk = vec![0; limit];
        let n = self.take(&mut chunk)?;
        self.pipe
            .as_mut()
            .expect("splice before attach")
            .extend(&chunk[..n]);
        Ok(n)
    }

    fn splice_out(&mut self, max: usize) -> io::Result<usize> {
        self.splices += 1;
        let pipe = self.pipe.take().expect("splice before attach");
        let result = self.put(&pipe[..max.min(pipe.len())]);
        let n = *result.as_ref().unwrap_or(&0);
        self.pipe = Some(pipe[n..].to_vec());
        result
    }
}
