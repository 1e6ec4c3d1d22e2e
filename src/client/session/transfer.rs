//! Moving bytes and checking their echo: a whole payload (`exchange`), or
//! a stream from a [`Feed`] in a bounded window (`transfer`).

use std::collections::VecDeque;
use std::io::{self, ErrorKind, Read, Write};
use std::time::{Duration, Instant};

use super::{Link, Session, Wake};
use crate::client::error::{is_reset, ClientError, Mismatch};
use crate::client::modes::ByteMap;
use crate::client::pattern::first_difference;
use crate::client::tls::stream::tls_error;
use crate::os::rx_timestamp::{self, wall_clock};

/// What a [`Feed`] has for [`Session::transfer`].
#[derive(Debug)]
pub enum Chunk {
    /// More bytes to send.
    Data(Vec<u8>),
    /// Nothing yet: the producer wakes the session's poll when there is.
    NotYet,
    /// The input is over.
    End,
}

/// The bytes [`Session::transfer`] sends, a chunk at a time.
pub trait Feed {
    /// The next chunk, without blocking.
    fn next_chunk(&mut self) -> Result<Chunk, ClientError>;
}

/// How far a [`Session::transfer`] got, kept up to date as it runs so
/// that a failure or Ctrl+C can say what was verified.
#[derive(Debug, Default, Clone, Copy)]
pub struct Progress {
    /// Bytes written to the connection.
    pub sent: u64,
    /// Bytes echoed and found identical to what was sent.
    pub verified: u64,
    /// When the first byte was written.
    pub started: Option<Instant>,
}

impl Session {
    /// Writes `payload` while reading the reply, checking that it is
    /// exactly `reply` (the payload itself for an echo); returns the time
    /// from the first write to the last byte back. `timeout` is the
    /// longest wait for progress, so a large file over a slow path does
    /// not time out while it is still moving. A mismatch's `sent` is the
    /// byte of `reply` that was due.
    pub fn exchange(
        &mut self,
        stream: &mut Link,
        payload: &[u8],
        reply: &[u8],
        timeout: Duration,
    ) -> Result<Duration, ClientError> {
        let expected = reply.len() as u64;
        self.stamped_rtt = None;
        let sent_at = self.rx_stamps.then(wall_clock);
        // The kernel's stamp of the latest read: the last one completes it.
        let mut arrived = None;
        let started = Instant::now();
        let mut written = 0;
        let mut received = 0;
        let mut deadline = started + timeout;
        while received < reply.len() {
            let mut progressed = false;
            while written < payload.len() {
                match stream.write(&payload[written..]) {
                    Ok(n) => {
                        written += n;
                        progressed = true;
                    }
                    Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                    Err(e) if e.kind() == ErrorKind::Interrupted => {}
                    Err(e) => return Err(stream_error(e, received as u64, expected)),
                }
            }
            loop {
                let read = match stream.plain().filter(|_| self.rx_stamps) {
                    Some(tcp) => rx_timestamp::recv(tcp, &mut self.scratch).map(|(n, stamp)| {
                        arrived = stamp;
                        n
                    }),
                    None => stream.read(&mut self.scratch),
                };
                match read {
                    // The peer stopped sending before the echo was complete.
                    Ok(0) => {
                        return Err(ClientError::ClosedEarly {
                            received: received as u64,
                            expected,
                            reset: false,
                        })
                    }
                    Ok(n) => {
                        check_echo(
                            &reply[received..],
                            &self.scratch[..n],
                            received as u64,
                            ByteMap::Same,
                        )?;
                        received += n;
                        progressed = true;
                        if received == reply.len() {
                            break;
                        }
                    }
                    Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                    Err(e) if e.kind() == ErrorKind::Interrupted => {}
                    Err(e) => return Err(stream_error(e, received as u64, expected)),
                }
            }
            if received == reply.len() {
                break;
            }
            let now = Instant::now();
            if progressed {
                deadline = now + timeout;
            }
            if let Wake::TimedOut = self.wait(Some(deadline))? {
                return Err(ClientError::EchoTimeout {
                    received: received as u64,
                    expected,
                    after: timeout,
                });
            }
        }
        let rtt = started.elapsed();
        if let (Some(sent), Some(arrived)) = (sent_at, arrived) {
            // Wall-clock times: a clock step between them gives nonsense,
            // which the bound by the monotonic figure catches.
            self.stamped_rtt = arrived
                .checked_sub(sent)
                .filter(|stamped| !stamped.is_zero() && *stamped <= rtt);
        }
        Ok(rtt)
    }

    /// Sends everything `feed` yields while reading the echo, checking each
    /// byte as it arrives: at most `window` bytes are held (read from the
    /// feed but not yet verified), so an input of any size, even an endless
    /// one, streams in bounded memory. `timeout` is the longest wait for the
    /// next echoed byte while some are awaited; waiting for input has no
    /// limit. `progress` says how far it got, whatever the outcome. Each
    /// byte comes back as `map` makes it (unchanged for an echo).
    pub fn transfer(
        &mut self,
        stream: &mut Link,
        feed: &mut dyn Feed,
        window: usize,
        timeout: Duration,
        progress: &mut Progress,
        map: ByteMap,
    ) -> Result<(), ClientError> {
        let mut held = Held::default();
        let mut ended = false;
        let mut last_progress = Instant::now();
        loop {
            let mut progressed = false;
            while !ended && held.len() < window {
                match feed.next_chunk()? {
                    Chunk::Data(chunk) => held.push(chunk),
                    Chunk::NotYet => break,
                    Chunk::End => ended = true,
                }
            }
            while let Some(unsent) = held.unsent(progress.sent) {
                match stream.write(unsent) {
                    Ok(n) => {
                        progress.started.get_or_insert_with(Instant::now);
                        progress.sent += n as u64;
                        progressed = true;
                    }
                    Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                    Err(e) if e.kind() == ErrorKind::Interrupted => {}
                    Err(e) => return Err(stream_error(e, progress.verified, progress.sent)),
                }
            }
            loop {
                match stream.read(&mut self.scratch) {
                    // The peer stopped sending before the echo was complete.
                    Ok(0) => {
                        return Err(ClientError::ClosedEarly {
                            received: progress.verified,
                            expected: progress.sent,
                            reset: false,
                        })
                    }
                    Ok(n) => {
                        held.verify(&self.scratch[..n], progress, map)?;
                        progressed = true;
                    }
                    Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                    Err(e) if e.kind() == ErrorKind::Interrupted => {}
                    Err(e) => return Err(stream_error(e, progress.verified, progress.sent)),
                }
            }
            if ended && held.len() == 0 {
                return Ok(());
            }
            if progressed {
                // Verified echo may have made room in the window while the
                // feed's wake-ups were spent: pull again before waiting.
                last_progress = Instant::now();
                continue;
            }
            let awaited = progress.sent > progress.verified;
            let deadline = awaited.then(|| last_progress + timeout);
            if let Wake::TimedOut = self.wait(deadline)? {
                return Err(ClientError::EchoTimeout {
                    received: progress.verified,
                    expected: progress.sent,
                    after: timeout,
                });
            }
            // Time spent waiting for input counts for nothing against the
            // echo's timeout.
            if !awaited {
                last_progress = Instant::now();
            }
        }
    }
}

/// The bytes a transfer holds: read from the feed, maybe sent, not yet
/// verified; the front chunk goes once its last byte is verified.
#[derive(Debug, Default)]
struct Held {
    chunks: VecDeque<Vec<u8>>,
    /// Stream offset of the first byte of the front chunk.
    base: u64,
    /// Bytes in all chunks.
    bytes: usize,
}

impl Held {
    fn push(&mut self, chunk: Vec<u8>) {
        if !chunk.is_empty() {
            self.bytes += chunk.len();
            self.chunks.push_back(chunk);
        }
    }

    /// Bytes held (the front chunk's verified ones included).
    fn len(&self) -> usize {
        self.bytes
    }

    /// The held bytes from stream offset `at` to the end of their chunk;
    /// `None` when all are sent.
    fn unsent(&self, at: u64) -> Option<&[u8]> {
        let mut skip = usize::try_from(at - self.base).ok()?;
        for chunk in &self.chunks {
            if skip < chunk.len() {
                return Some(&chunk[skip..]);
            }
            skip -= chunk.len();
        }
        None
    }

    /// Checks `echo`, which follows the `progress.verified` bytes already
    /// checked, against what was sent there, and lets go of what it
    /// verifies. Echoed bytes beyond those sent are extra.
    fn verify(
        &mut self,
        echo: &[u8],
        progress: &mut Progress,
        map: ByteMap,
    ) -> Result<(), ClientError> {
        let mut echo = echo;
        while !echo.is_empty() {
            let awaited = (progress.sent - progress.verified) as usize;
            let front_start = (progress.verified - self.base) as usize;
            let Some(front) = self.chunks.front() else {
                break;
            };
            let sent_here = &front[front_start..];
            let sent_here = &sent_here[..sent_here.len().min(awaited)];
            if sent_here.is_empty() {
                break;
            }
            let n = echo.len().min(sent_here.len());
            check_echo(&sent_here[..n], &echo[..n], progress.verified, map)?;
            progress.verified += n as u64;
            echo = &echo[n..];
            if front_start + n == front.len() {
                self.base += front.len() as u64;
                self.bytes -= front.len();
                self.chunks.pop_front();
            }
        }
        if !echo.is_empty() {
            return Err(ClientError::Mismatch(Mismatch {
                offset: progress.verified,
                sent: 0,
                received: None,
            }));
        }
        Ok(())
    }
}

/// Compares a chunk of echo with what was sent at the same place, each
/// sent byte as `map` makes it; a mismatch's `sent` is that mapped byte.
fn check_echo(
    expected_rest: &[u8],
    got: &[u8],
    offset: u64,
    map: ByteMap,
) -> Result<(), ClientError> {
    let differs = match map {
        ByteMap::Same => first_difference(expected_rest, got),
        _ => map.first_difference(expected_rest, got),
    };
    if let Some(i) = differs {
        return Err(ClientError::Mismatch(Mismatch {
            offset: offset + i as u64,
            sent: map.apply(expected_rest[i]),
            received: Some(got[i]),
        }));
    }
    if got.len() > expected_rest.len() {
        return Err(ClientError::Mismatch(Mismatch {
            offset: offset + expected_rest.len() as u64,
            sent: 0,
            received: None,
        }));
    }
    Ok(())
}

fn stream_error(e: io::Error, received: u64, expected: u64) -> ClientError {
    // A TLS alert after the handshake: in TLS 1.3 a refused client
    // certificate arrives here, with the first read.
    if let Some(tls) = tls_error(&e) {
        return tls;
    }
    if is_reset(&e) {
        ClientError::ClosedEarly {
            received,
            expected,
            reset: true,
        }
    } else {
        ClientError::Other(format!("connection failed: {e}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn echo_check_finds_wrong_and_extra_bytes() {
        assert!(check_echo(b"hello", b"hel", 0, ByteMap::Same).is_ok());
        match check_echo(b"llo", b"lLo", 2, ByteMap::Same) {
            Err(ClientError::Mismatch(m)) => {
                assert_eq!((m.offset, m.sent, m.received), (3, b'l', Some(b'L')))
            }
            other => panic!("{other:?}"),
        }
        match check_echo(b"o", b"o!", 4, ByteMap::Same) {
            Err(ClientError::Mismatch(m)) => assert_eq!((m.offset, m.received), (5, None)),
            other => panic!("{other:?}"),
        }
        assert!(check_echo(b"a\xe9b\n", b"A\xe9B\n", 0, ByteMap::Upper).is_ok());
        match check_echo(b"abc", b"AbC", 7, ByteMap::Upper) {
            Err(ClientError::Mismatch(m)) => {
                assert_eq!((m.offset, m.sent, m.received), (8, b'B', Some(b'b')))
            }
            other => panic!("{other:?}"),
        }
    }
}
