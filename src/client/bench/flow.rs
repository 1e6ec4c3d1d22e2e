//! One benchmark connection's byte accounting, without the socket: what to
//! write next, and what an echoed chunk means (verified bytes, completed
//! messages and their send stamps, or the offset where it went wrong).
//!
//! Pure over plain values so the invariants (verified ≤ written ≤ issued,
//! one completion per message, stamps in order) are unit-tested here and
//! the event loop only moves bytes.

use std::collections::VecDeque;

use crate::client::error::Mismatch;
use crate::client::pattern::{Pattern, MAX_WINDOW};

/// A message-level view of one connection's echo stream.
#[derive(Debug, Clone)]
pub struct Flow<T> {
    stream_id: u64,
    size: u64,
    /// Bytes the connection has been told to send so far.
    issued: u64,
    /// Bytes handed to the socket.
    written: u64,
    /// Bytes echoed back and checked.
    verified: u64,
    /// One stamp per issued message not yet fully echoed, oldest first
    /// (bulk streams issue bytes without stamps).
    stamps: VecDeque<T>,
}

impl<T> Flow<T> {
    /// A flow for stream `stream_id` whose messages are `size` bytes.
    pub fn new(stream_id: u64, size: usize) -> Self {
        Self {
            stream_id,
            size: size.max(1) as u64,
            issued: 0,
            written: 0,
            verified: 0,
            stamps: VecDeque::new(),
        }
    }

    /// Queues one more message; `stamp` comes back when its echo completes.
    pub fn issue(&mut self, stamp: T) {
        self.issued += self.size;
        self.stamps.push_back(stamp);
    }

    /// Queues `bytes` more of a continuous stream (bulk mode: no stamps).
    pub fn issue_bytes(&mut self, bytes: u64) {
        self.issued += bytes;
    }

    /// Messages issued whose echo has not fully come back.
    pub fn in_flight(&self) -> usize {
        self.stamps.len()
    }

    /// Bytes issued but not yet written.
    pub fn unwritten(&self) -> u64 {
        self.issued - self.written
    }

    /// Bytes written but not yet echoed.
    pub fn unechoed(&self) -> u64 {
        self.written - self.verified
    }

    /// Bytes echoed and verified so far.
    pub fn verified(&self) -> u64 {
        self.verified
    }

    /// The next bytes to write (empty when nothing is unwritten).
    pub fn next_write<'p>(&self, pattern: &'p Pattern) -> &'p [u8] {
        let len = self.unwritten().min(MAX_WINDOW as u64) as usize;
        pattern.window(self.stream_id, self.written, len)
    }

    /// Records that the socket took `n` bytes of [`Flow::next_write`].
    pub fn wrote(&mut self, n: usize) {
        self.written = (self.written + n as u64).min(self.issued);
    }

    /// Checks an echoed chunk and calls `complete` with the stamp of each
    /// message it finishes, oldest first (`None` for bulk bytes). Returns
    /// how many messages completed, or where the echo went wrong: a wrong
    /// byte, or a byte beyond everything written.
    pub fn echoed(
        &mut self,
        data: &[u8],
        pattern: &Pattern,
        mut complete: impl FnMut(Option<T>),
    ) -> Result<u64, Mismatch> {
        let room = self.unechoed() as usize;
        let checked = &data[..data.len().min(room)];
        if let Some(i) = pattern.first_mismatch(self.stream_id, self.verified, checked) {
            let offset = self.verified + i as u64;
            return Err(Mismatch {
                offset,
                sent: pattern.window(self.stream_id, offset, 1)[0],
                received: Some(checked[i]),
            });
        }
        if data.len() > room {
            return Err(Mismatch {
                offset: self.written,
                sent: 0,
                received: None,
            });
        }
        let before = self.verified / self.size;
        self.verified += data.len() as u64;
        let done = self.verified / self.size - before;
        for _ in 0..done {
            complete(self.stamps.pop_front());
        }
        Ok(done)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write_all<T>(flow: &mut Flow<T>, pattern: &Pattern) -> Vec<u8> {
        let mut out = Vec::new();
        loop {
            let chunk = flow.next_write(pattern).to_vec();
            if chunk.is_empty() {
                return out;
            }
            flow.wrote(chunk.len());
            out.extend_from_slice(&chunk);
        }
    }

    #[test]
    fn messages_complete_in_order_whatever_the_chunking() {
        let pattern = Pattern::new();
        let mut flow = Flow::new(2, 10);
        for stamp in 0..5 {
            flow.issue(stamp);
        }
        let bytes = write_all(&mut flow, &pattern);
        assert_eq!(bytes.len(), 50);
        let mut done = Vec::new();
        for chunk in [&bytes[..3], &bytes[3..25], &bytes[25..26], &bytes[26..]] {
            flow.echoed(chunk, &pattern, |s| done.push(s)).unwrap();
        }
        assert_eq!(done, [Some(0), Some(1), Some(2), Some(3), Some(4)]);
        assert_eq!(
            (flow.in_flight(), flow.unechoed(), flow.verified()),
            (0, 0, 50)
        );
    }

    #[test]
    fn corrupted_byte_is_reported_at_its_stream_offset() {
        let pattern = Pattern::new();
        let mut flow = Flow::new(0, 64);
        flow.issue(());
        flow.issue(());
        let mut bytes = write_all(&mut flow, &pattern);
        flow.echoed(&bytes[..64], &pattern, |_| {}).unwrap();
        bytes[100] ^= 1;
        let m = flow.echoed(&bytes[64..], &pattern, |_| {}).unwrap_err();
        assert_eq!(m.offset, 100);
        assert_eq!(m.received, Some(bytes[100]));
        assert_eq!(m.sent, bytes[100] ^ 1);
    }

    #[test]
    fn bytes_never_written_are_a_mismatch() {
        let pattern = Pattern::new();
        let mut flow: Flow<()> = Flow::new(0, 8);
        flow.issue(());
        let bytes = write_all(&mut flow, &pattern);
        let mut echo = bytes.clone();
        echo.push(0);
        let m = flow.echoed(&echo, &pattern, |_| {}).unwrap_err();
        assert_eq!((m.offset, m.received), (8, None));
        // Unsolicited bytes before anything was written.
        let mut idle: Flow<()> = Flow::new(1, 8);
        assert_eq!(idle.echoed(b"x", &pattern, |_| {}).unwrap_err().offset, 0);
    }

    #[test]
    fn bulk_bytes_count_as_messages_of_the_write_size() {
        let pattern = Pattern::new();
        let mut flow: Flow<()> = Flow::new(0, 1000);
        flow.issue_bytes(200_000);
        let bytes = write_all(&mut flow, &pattern);
        assert_eq!(bytes.len(), 200_000);
        let mut completions = 0;
        let done = flow.echoed(&bytes[..150_500], &pattern, |s| {
            assert!(s.is_none());
            completions += 1;
        });
        assert_eq!(done, Ok(150));
        assert_eq!(completions, 150);
    }
}
