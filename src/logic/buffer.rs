//! The bytes a connection has read but not yet echoed.
//!
//! A [`PendingBuffer`] is a ring buffer with a hard capacity. Its storage is
//! allocated only when bytes must actually wait (the peer is not reading
//! fast enough) and released as soon as it drains, so an idle connection,
//! or one doing ping-pong whose echo always fits in the kernel's send
//! buffer, holds no buffer memory at all. The fast path of the server reads
//! into one shared scratch buffer and writes straight back; only what the
//! socket refuses lands here.
//!
//! The capacity is the backpressure bound: while the buffer is full the
//! connection does not read, so the kernel's receive window closes and the
//! peer is slowed down instead of the server growing.

/// A fixed-capacity FIFO of bytes, allocated on demand.
///
/// Invariant: `len <= capacity`, `head < capacity` when storage exists, and
/// storage is `None` whenever `len == 0`.
///
/// (Example: the test `a_full_buffer_keeps_its_cap_and_frees_when_drained`.)
#[derive(Debug)]
pub struct PendingBuffer {
    storage: Option<Box<[u8]>>,
    capacity: usize,
    head: usize,
    len: usize,
}

impl PendingBuffer {
    /// An empty buffer that will never hold more than `capacity` bytes.
    ///
    /// # Panics
    /// If `capacity` is zero: the command line rejects that value, so it
    /// can only come from a programming error.
    pub fn new(capacity: usize) -> Self {
        assert!(capacity > 0, "PendingBuffer capacity must be at least 1");
        Self {
            storage: None,
            capacity,
            head: 0,
            len: 0,
        }
    }

    /// The most bytes this buffer will ever hold.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Bytes waiting to be written.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True when nothing is waiting.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// True when no more bytes fit: the connection must stop reading.
    pub fn is_full(&self) -> bool {
        self.len == self.capacity
    }

    /// Bytes that can still be added.
    pub fn free(&self) -> usize {
        self.capacity - self.len
    }

    /// True while heap storage is held.
    #[cfg(test)]
    fn is_allocated(&self) -> bool {
        self.storage.is_some()
    }

    /// The oldest waiting bytes, as one contiguous slice. When the data
    /// wraps around the end of the ring this is only the first part; after
    /// [`consume`](Self::consume)-ing it, the rest follows.
    pub fn readable(&self) -> &[u8] {
        match &self.storage {
            Some(storage) => {
                let end = (self.head + self.len).min(self.capacity);
                &storage[self.head..end]
            }
            None => &[],
        }
    }

    /// Drops the first `n` waiting bytes (they were written to the peer).
    /// Releases the storage when the buffer becomes empty.
    ///
    /// # Panics
    /// If `n` exceeds [`len`](Self::len).
    pub fn consume(&mut self, n: usize) {
        assert!(n <= self.len, "consumed {n} of {} pending bytes", self.len);
        self.len -= n;
        if self.len == 0 {
            self.release();
        } else {
            self.head = (self.head + n) % self.capacity;
        }
    }

    /// The free space right after the waiting bytes, as one contiguous
    /// slice to read into; empty when the buffer is full. Allocates the
    /// storage if needed. Follow with [`commit`](Self::commit).
    pub fn writable(&mut self) -> &mut [u8] {
        let capacity = self.capacity;
        let tail = (self.head + self.len) % capacity;
        // Free space ends where the data starts, or at the end of storage.
        let end = if self.len == 0 || tail > self.head {
            capacity
        } else {
            self.head
        };
        let len = if self.is_full() { 0 } else { end - tail };
        let storage = self
            .storage
            .get_or_insert_with(|| vec![0; capacity].into_boxed_slice());
        &mut storage[tail..tail + len]
    }

    /// Marks `n` bytes of the slice last returned by
    /// [`writable`](Self::writable) as filled.
    ///
    /// # Panics
    /// If `n` is larger than the free space.
    pub fn commit(&mut self, n: usize) {
        assert!(
            n <= self.free(),
            "committed {n} bytes, {} free",
            self.free()
        );
        self.len += n;
        if self.len == 0 {
            // A zero-byte read into fresh storage must not keep it alive.
            self.release();
        }
    }

    /// Appends as much of `data` as fits and returns how many bytes that
    /// was. Used for the part of an echo the socket did not take.
    pub fn push(&mut self, data: &[u8]) -> usize {
        let mut copied = 0;
        while copied < data.len() && !self.is_full() {
            let space = self.writable();
            let n = space.len().min(data.len() - copied);
            space[..n].copy_from_slice(&data[copied..copied + n]);
            self.commit(n);
            copied += n;
        }
        copied
    }

    /// Drops the newest `n` waiting bytes (an unfinished line or frame a
    /// service held back and then refused). Releases the storage when the
    /// buffer becomes empty.
    ///
    /// # Panics
    /// If `n` exceeds [`len`](Self::len).
    pub fn truncate_back(&mut self, n: usize) {
        assert!(n <= self.len, "truncated {n} of {} pending bytes", self.len);
        self.len -= n;
        if self.len == 0 {
            self.release();
        }
    }

    fn release(&mut self) {
        self.storage = None;
        self.head = 0;
        self.len = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model_check::Rng;
    use std::collections::VecDeque;

    fn drain(buffer: &mut PendingBuffer) -> Vec<u8> {
        let mut out = Vec::new();
        while !buffer.is_empty() {
            let chunk = buffer.readable().to_vec();
            assert!(!chunk.is_empty(), "readable() empty while len > 0");
            buffer.consume(chunk.len());
            out.extend_from_slice(&chunk);
        }
        out
    }

    // A new buffer owns no memory: idle connections cost no buffer.
    #[test]
    fn starts_unallocated_and_empty() {
        let buffer = PendingBuffer::new(16);
        assert!(buffer.is_empty());
        assert!(!buffer.is_allocated());
        assert_eq!(buffer.readable(), b"");
        assert_eq!(buffer.free(), 16);
    }

    // Storage is freed the moment the last waiting byte is consumed.
    #[test]
    fn releases_storage_when_drained() {
        let mut buffer = PendingBuffer::new(8);
        assert_eq!(buffer.push(b"abc"), 3);
        assert!(buffer.is_allocated());
        buffer.consume(2);
        assert!(buffer.is_allocated());
        buffer.consume(1);
        assert!(!buffer.is_allocated());
        assert_eq!(buffer.free(), 8);
    }

    // The cap is hard: push stops at capacity and writable() is empty when full.
    #[test]
    fn never_holds_more_than_capacity() {
        let mut buffer = PendingBuffer::new(4);
        assert_eq!(buffer.push(b"abcdef"), 4);
        assert!(buffer.is_full());
        assert_eq!(buffer.writable().len(), 0);
        assert_eq!(buffer.push(b"x"), 0);
        assert_eq!(drain(&mut buffer), b"abcd");
    }

    // Data that wraps around the end of storage comes out whole and in order.
    #[test]
    fn wraps_around_in_order() {
        let mut buffer = PendingBuffer::new(5);
        buffer.push(b"abcd");
        buffer.consume(3); // head = 3, "d" waits
        assert_eq!(buffer.push(b"efgh"), 4); // "d" + "efgh" = full, wrapped
        assert!(buffer.is_full());
        assert_eq!(buffer.readable(), b"de");
        assert_eq!(drain(&mut buffer), b"defgh");
    }

    // writable() + commit() (the read path) and push() (the copy path) agree.
    #[test]
    fn writable_then_commit_appends() {
        let mut buffer = PendingBuffer::new(6);
        buffer.push(b"ab");
        let space = buffer.writable();
        assert_eq!(space.len(), 4);
        space[..3].copy_from_slice(b"cde");
        buffer.commit(3);
        assert_eq!(drain(&mut buffer), b"abcde");
    }

    // A read that returns 0 bytes must not leave storage allocated.
    #[test]
    fn zero_commit_on_empty_releases() {
        let mut buffer = PendingBuffer::new(6);
        let _ = buffer.writable();
        buffer.commit(0);
        assert!(!buffer.is_allocated());
    }

    // Dropping the newest bytes keeps the oldest, in order, across the
    // wrap, and frees the storage when nothing is left.
    #[test]
    fn truncate_back_drops_the_newest() {
        let mut buffer = PendingBuffer::new(5);
        buffer.push(b"abcd");
        buffer.consume(3);
        buffer.push(b"efgh");
        buffer.truncate_back(3);
        assert_eq!(buffer.len(), 2);
        buffer.push(b"xyz");
        assert_eq!(drain(&mut buffer), b"dexyz");
        buffer.push(b"ab");
        buffer.truncate_back(2);
        assert!(!buffer.is_allocated());
    }

    // Over-consuming is a logic error and is caught.
    #[test]
    #[should_panic(expected = "consumed 2 of 1")]
    fn consume_more_than_len_panics() {
        let mut buffer = PendingBuffer::new(4);
        buffer.push(b"a");
        buffer.consume(2);
    }

    // Against a VecDeque model, random pushes and partial consumes keep
    // order and never exceed the cap.
    #[test]
    fn matches_a_vecdeque_model() {
        let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
        for capacity in [1usize, 2, 3, 7, 64] {
            let mut buffer = PendingBuffer::new(capacity);
            let mut model = VecDeque::new();
            let mut counter = 0u8;
            for _ in 0..5_000 {
                if rng.next() % 2 == 0 {
                    let n = (rng.next() % (capacity as u64 + 3)) as usize;
                    let data: Vec<u8> = (0..n)
                        .map(|_| {
                            counter = counter.wrapping_add(1);
                            counter
                        })
                        .collect();
                    let pushed = buffer.push(&data);
                    assert_eq!(pushed, n.min(capacity - model.len()));
                    model.extend(&data[..pushed]);
                } else if !buffer.is_empty() {
                    let chunk = buffer.readable().len();
                    let n = 1 + (rng.next() as usize % chunk);
                    for (i, byte) in buffer.readable()[..n].iter().enumerate() {
                        assert_eq!(Some(byte), model.get(i));
                    }
                    buffer.consume(n);
                    model.drain(..n);
                }
                assert_eq!(buffer.len(), model.len());
                assert!(buffer.len() <= capacity);
                assert_eq!(buffer.is_allocated(), !model.is_empty());
            }
        }
    }
}

#[cfg(test)]
mod example {
    // The example the docs above point to.
    #[test]
    fn a_full_buffer_keeps_its_cap_and_frees_when_drained() {
        use crate::logic::buffer::PendingBuffer;
        let mut pending = PendingBuffer::new(4);
        assert_eq!(pending.push(b"hello"), 4); // the cap is hard
        assert_eq!(pending.readable(), b"hell");
        pending.consume(4);
        assert!(pending.is_empty()); // drained: its memory is released too
    }
}
