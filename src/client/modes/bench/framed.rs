//! framed: keep `depth` echo frames in flight, check each reply (every
//! byte + 1, then `\n`) and time it from the write of its frame.

use std::collections::VecDeque;
use std::time::Instant;

use mio::net::TcpStream;

use super::{both, nanos_since, read_some, write_some, Counters, Driver, Step};
use crate::client::error::{ClientError, Mismatch, ReplyMismatch};
use crate::client::modes::framed::{extend_plus_one, sanitize, HANDSHAKE};
use crate::client::modes::ServiceMode;
use crate::client::pattern::{first_difference, Pattern};

/// One framed connection.
pub struct Framed {
    pattern: Pattern,
    stream_id: u64,
    /// Payload bytes issued so far (the offset into the pattern).
    issued: u64,
    size: usize,
    depth: usize,
    /// Frames not yet written whole.
    out: Vec<u8>,
    out_at: usize,
    /// The replies due, in order, the handshake first.
    due: Vec<u8>,
    due_at: usize,
    /// Bytes the server has sent so far.
    received: u64,
    /// Per frame in flight: when it was issued and where its reply ends
    /// in `received` terms.
    in_flight: VecDeque<(Instant, u64)>,
    /// Where the replies issued so far end.
    due_end: u64,
    payload: Vec<u8>,
}

impl Framed {
    /// A connection sending `size`-byte frames, `depth` in flight.
    pub fn new(stream_id: u64, size: usize, depth: usize) -> Self {
        Self {
            pattern: Pattern::new(),
            stream_id,
            issued: 0,
            size,
            depth,
            out: Vec::new(),
            out_at: 0,
            due: HANDSHAKE.to_vec(),
            due_at: 0,
            received: 0,
            in_flight: VecDeque::new(),
            due_end: HANDSHAKE.len() as u64,
            payload: Vec::with_capacity(size),
        }
    }

    fn issue(&mut self) {
        self.payload.clear();
        self.pattern
            .extend(self.stream_id, self.issued, self.size, &mut self.payload);
        self.issued += self.size as u64;
        sanitize(&mut self.payload);
        if self.out_at == self.out.len() {
            self.out.clear();
            self.out_at = 0;
        }
        self.out.push(b'^');
        self.out.extend_from_slice(&self.payload);
        self.out.push(b'$');
        if self.due_at == self.due.len() {
            self.due.clear();
            self.due_at = 0;
        }
        extend_plus_one(&self.payload, &mut self.due);
        self.due_end += self.size as u64 + 1;
        self.in_flight.push_back((Instant::now(), self.due_end));
    }

    fn check(&mut self, data: &[u8], counters: &mut Counters) -> Result<(), ClientError> {
        let due = &self.due[self.due_at..];
        let n = data.len().min(due.len());
        let wrong = first_difference(&due[..n], &data[..n]).map(|i| (i, Some(data[i])));
        let extra = (data.len() > due.len()).then_some((due.len(), None));
        if let Some((i, received)) = wrong.or(extra) {
            let m = Mismatch {
                offset: i as u64,
                sent: due.get(i).copied().unwrap_or(0),
                received,
            };
            let context = match self.received + i as u64 {
                0 => "the handshake, expected \"*\"".into(),
                _ => format!("the reply to frame {}", self.replies_done() + 1),
            };
            return Err(ClientError::Reply(ReplyMismatch::from_mismatch(
                "framed",
                m,
                self.received,
                context,
            )));
        }
        self.due_at += n;
        self.received += n as u64;
        counters.down += n as u64;
        while let Some(&(sent, end)) = self.in_flight.front() {
            if end > self.received {
                break;
            }
            self.in_flight.pop_front();
            counters.replies += 1;
            if counters.measuring {
                counters.record_latency(nanos_since(sent));
            }
        }
        Ok(())
    }

    fn replies_done(&self) -> u64 {
        self.issued / self.size as u64 - self.in_flight.len() as u64
    }
}

impl Driver for Framed {
    fn turn(
        &mut self,
        stream: &mut TcpStream,
        scratch: &mut [u8],
        sending: bool,
        counters: &mut Counters,
    ) -> Result<Step, ClientError> {
        let read = read_some(ServiceMode::Framed, stream, scratch, |data| {
            self.check(data, counters)
        })?;
        if sending {
            while self.in_flight.len() < self.depth {
                self.issue();
            }
        }
        let before = self.out_at;
        self.out_at += write_some(ServiceMode::Framed, stream, &self.out[self.out_at..])?;
        counters.up += (self.out_at - before) as u64;
        // A write short of the whole frame met a full socket: its edge
        // will come.
        Ok(both(read, Step::Wait))
    }

    fn awaiting(&self) -> bool {
        !self.in_flight.is_empty() || self.received < HANDSHAKE.len() as u64
    }
}
