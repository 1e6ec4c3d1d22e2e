//! One benchmark connection's byte accounting, without the socket: what to
//! write next, and what an echoed chunk means (verified bytes, completed
//! messages and their send stamps, or the offset where it went wrong).
//!
//! Pure over plain values so the invariants (verified ≤ written ≤ written +
//! piped ≤ issued, one completion per message, stamps in order) are
//! unit-tested here and the event loop only moves bytes.
//!
//! Bytes reach the socket either straight from memory ([`Flow::wrote`]) or
//! through a pipe: queued into it ([`Flow::piped`]), then moved on to the
//! socket ([`Flow::spliced`]). Only bytes that reached the socket count as
//! written, so the echo is checked against exactly what the server was
//! sent, in order.

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
    /// Bytes after `written` queued in a pipe, not yet in the socket.
    piped: u64,
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
            piped: 0,
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

    /// Bytes issued but not yet written (those in a pipe included).
    pub fn unwritten(&self) -> u64 {
        self.issued - self.written
    }

    /// Bytes queued in a pipe but not yet in the socket.
    pub fn in_pipe(&self) -> u64 {
        self.piped
    }

    /// Bytes written but not yet echoed.
    pub fn unechoed(&self) -> u64 {
        self.written - self.verified
    }

    /// Bytes echoed and verified so far.
    pub fn verified(&self) -> u64 {
        self.verified
    }

    /// The next bytes to write or queue in a pipe: those after what is
    /// already in the pipe (empty when every issued byte is written or
    /// queued). Part of the process-wide pattern table, so they never change.
    pub fn next_write(&self, pattern: &Pattern) -> &'static [u8] {
        let len = (self.unwritten() - self.piped).min(MAX_WINDOW as u64) as usize;
        pattern.window(self.stream_id, self.written + self.piped, len)
    }

    /// Records that the socket took `n` bytes of [`Flow::next_write`]
    /// (nothing may be in a pipe: those bytes would have to go first).
    pub fn wrote(&mut self, n: usize) {
        debug_assert_eq!(self.piped, 0, "written around bytes in the pipe");
        self.written = (self.written + n as u64).min(self.issued);
    }

    /// Records that a pipe took `n` bytes of [`Flow::next_write`]; they are
    /// not written until [`Flow::spliced`] says they reached the socket.
    pub fn piped(&mut self, n: usize) {
        self.piped = (self.piped + n as u64).min(self.issued - self.written);
    }

    /// Records that `n` bytes went on from the pipe to the socket: the
    /// oldest ones queued, which are the next in the stream.
    pub fn spliced(&mut self, n: usize) {
        let n = (n as u64).min(self.piped);
        self.piped -= n;
        self.written += n;
    }

    /// Takes back what was issued but has not left for the socket (neither
    /// written nor in a pipe), when the run stops sending: those bytes were
    /// never sent, so no echo is owed for them. Returns how many bytes that
    /// was. A message partly sent keeps its stamp; it can no longer
    /// complete, but its sent bytes are still checked.
    pub fn withdraw_unsent(&mut self) -> u64 {
        let sent = self.written + self.piped;
        let withdrawn = self.issued - sent;
        self.issued = sent;
        let started = sent.div_ceil(self.size) - self.verified / self.size;
        self.stamps.truncate(started as usize);
        withdrawn
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
    fn withdrawing_leaves_only_what_reached_the_socket() {
        let pattern = Pattern::new();
        let mut flow = Flow::new(0, 10);
        for stamp in 0..5 {
            flow.issue(stamp);
        }
        // 25 bytes written: messages 0 and 1 whole, message 2 in part.
        let chunk = flow.next_write(&pattern)[..25].to_vec();
        flow.wrote(25);
        let mut done = Vec::new();
        flow.echoed(&chunk[..10], &pattern, |s| done.push(s))
            .unwrap();
        assert_eq!(flow.withdraw_unsent(), 25);
        assert_eq!(
            (flow.unwritten(), flow.unechoed(), flow.in_flight()),
            (0, 15, 2)
        );
        assert!(flow.next_write(&pattern).is_empty());
        // The sent bytes still come back and are checked; message 1
        // completes, the partial message 2 cannot.
        flow.echoed(&chunk[10..], &pattern, |s| done.push(s))
            .unwrap();
        assert_eq!(done, [Some(0), Some(1)]);
        assert_eq!(flow.unechoed(), 0);
        // Nothing more may come back.
        assert!(flow.echoed(b"x", &pattern, |_| {}).is_err());
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

    // Bytes in a pipe are neither written (their echo would be unsolicited)
    // nor handed out again; the socket gets them first and in order, and
    // the stream carries on after them.
    #[test]
    fn piped_bytes_count_once_they_reach_the_socket() {
        let pattern = Pattern::new();
        let mut flow: Flow<()> = Flow::new(5, 1000);
        flow.issue_bytes(100_000);
        let mut expected = Vec::new();
        pattern.extend(5, 0, 100_000, &mut expected);

        let first = flow.next_write(&pattern);
        assert_eq!(first, &expected[..MAX_WINDOW]);
        flow.piped(5000);
        assert_eq!(
            (flow.in_pipe(), flow.unwritten(), flow.unechoed()),
            (5000, 100_000, 0)
        );
        assert_eq!(
            flow.next_write(&pattern),
            &expected[5000..5000 + MAX_WINDOW]
        );
        flow.piped(3000);
        // The server echoes what reached it so far: nothing yet.
        let m = flow.echoed(&expected[..1], &pattern, |_| {}).unwrap_err();
        assert_eq!((m.offset, m.received), (0, None));

        flow.spliced(6000);
        assert_eq!(
            (flow.in_pipe(), flow.unwritten(), flow.unechoed()),
            (2000, 94_000, 6000)
        );
        assert_eq!(
            flow.next_write(&pattern),
            &expected[8000..8000 + MAX_WINDOW]
        );
        assert_eq!(flow.echoed(&expected[..6000], &pattern, |_| {}), Ok(6));
        let m = flow
            .echoed(&expected[6000..6001], &pattern, |_| {})
            .unwrap_err();
        assert_eq!(m.offset, 6000);

        // The rest, queued and spliced in odd pieces, completes the stream.
        let mut flow: Flow<()> = Flow::new(5, 1000);
        flow.issue_bytes(100_000);
        while flow.unwritten() > 0 {
            let chunk = flow.next_write(&pattern);
            flow.piped(chunk.len().min(7777));
            flow.spliced(4321);
        }
        assert_eq!(flow.in_pipe(), 0);
        assert!(flow.next_write(&pattern).is_empty());
        assert_eq!(flow.echoed(&expected, &pattern, |_| {}), Ok(100));
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
