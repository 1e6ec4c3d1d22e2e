//! Echo without copying: a kernel pipe between a socket's receive queue
//! and its send queue, filled and drained with `splice(2)`.
//!
//! Echoing through user space costs two copies per byte (`recv` into our
//! memory, `send` back out). `splice` moves references to the kernel's
//! pages instead, socket → pipe → socket, so a streaming connection's bytes
//! never enter the process. On loopback bulk transfers this cuts the
//! server's CPU per byte by more than half (BENCHMARKS.md, "bulk").
//!
//! `splice` into a socket has no `MSG_NOSIGNAL`: writing to a peer that
//! has gone raises SIGPIPE, whose default action both binaries keep. So
//! [`Pipe::drain_into`] holds SIGPIPE blocked on the calling thread
//! ([`crate::os::sigpipe`]), and the caller sees `EPIPE` as a plain error.

use std::io;
use std::os::fd::{BorrowedFd, OwnedFd};

use rustix::pipe::{fcntl_getpipe_size, fcntl_setpipe_size, pipe_with, splice, vmsplice};
use rustix::pipe::{IoSliceRaw, PipeFlags, SpliceFlags};

/// Flags of every splice here: never block (the event loop owns waiting),
/// and move pages rather than copy them where the kernel can.
const FLAGS: SpliceFlags = SpliceFlags::NONBLOCK.union(SpliceFlags::MOVE);

/// A non-blocking pipe used as a bounded, in-kernel buffer of bytes.
#[derive(Debug)]
pub struct Pipe {
    read: OwnedFd,
    write: OwnedFd,
    capacity: usize,
}

impl Pipe {
    /// A pipe meant to hold at most `bytes` bytes. The kernel sizes pipes in
    /// powers of two pages, and an unprivileged process cannot go beyond
    /// `/proc/sys/fs/pipe-max-size` (1 MiB by default); [`capacity`](Self::capacity)
    /// is what the caller may then rely on: `bytes` or the pipe's real size,
    /// whichever is smaller.
    pub fn with_capacity(bytes: usize) -> io::Result<Self> {
        let (read, write) = pipe_with(PipeFlags::CLOEXEC | PipeFlags::NONBLOCK)?;
        // A refusal (EPERM above pipe-max-size, ENOMEM) is not fatal: the
        // pipe keeps its default size, which is read back below.
        let size = match fcntl_setpipe_size(&write, bytes.max(1)) {
            Ok(size) => size,
            Err(_) => fcntl_getpipe_size(&write)?,
        };
        Ok(Self {
            read,
            write,
            capacity: bytes.min(size),
        })
    }

    /// Most bytes the pipe is used for at once.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Moves up to `max` bytes queued on `socket` into the pipe. `Ok(0)`
    /// is the peer's EOF, or TCP's urgent mark once the peer's FIN has
    /// arrived (no splice moves past the mark; a plain read does);
    /// `WouldBlock` means the socket had nothing queued
    /// or the pipe had no free slot. A result shorter than `max` does not
    /// show the socket empty: the pipe holds a limited number of pieces
    /// (one per page or packet fragment), whatever their size.
    pub fn fill_from(&self, socket: BorrowedFd<'_>, max: usize) -> io::Result<usize> {
        Ok(splice(socket, None, &self.write, None, max, FLAGS)?)
    }

    /// Moves up to `max` bytes from the pipe into `socket`, without
    /// blocking. SIGPIPE is left blocked on the calling thread, which must
    /// call [`crate::os::sigpipe::release`] before it writes to stdout or
    /// stderr; a gone peer is then an `EPIPE` error, never a signal.
    pub fn drain_into(&self, socket: BorrowedFd<'_>, max: usize) -> io::Result<usize> {
        crate::os::sigpipe::hold();
        Ok(splice(&self.read, None, socket, None, max, FLAGS)?)
    }

    /// Queues up to `data.len()` bytes of `data` in the pipe by reference,
    /// without copying them (`vmsplice(2)`, no `SPLICE_F_GIFT`), and
    /// without blocking: `WouldBlock` means the pipe has no free slot. A
    /// short count is normal: each slot holds at most one page of `data`.
    ///
    /// The pipe then holds the pages of `data` themselves, and so does every
    /// socket buffer they are later spliced into, possibly after the pipe,
    /// the socket and the process are gone; what is sent is whatever those
    /// pages hold when the kernel finally reads them. Hence `'static`:
    /// shared memory that lives, unchanged, as long as the process.
    pub fn vmsplice_from(&self, data: &'static [u8]) -> io::Result<usize> {
        let slices = [IoSliceRaw::from_slice(data)];
        // SAFETY: `self.write` is the pipe's write end, so the kernel only
        // reads the memory `slices` describes (it maps the pages into the
        // pipe), never writes it: passing an immutable slice is sound.
        // Without GIFT there is no alignment requirement. The pages stay
        // referenced by the kernel after the call returns; `data` is
        // `&'static [u8]` (no interior mutability), so its bytes are neither
        // freed nor changed for the rest of the process, and the kernel's
        // own page references keep them after exit.
        let moved = unsafe { vmsplice(&self.write, &slices, SpliceFlags::NONBLOCK) }?;
        Ok(moved)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::os::sigpipe::tests::sigpipe_pending;
    use std::io::{Read, Write};
    use std::net::{Shutdown, TcpListener, TcpStream};
    use std::os::fd::AsFd;

    fn pair() -> (TcpStream, TcpStream) {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind loopback");
        let client = TcpStream::connect(listener.local_addr().expect("addr")).expect("connect");
        let (server, _) = listener.accept().expect("accept");
        (client, server)
    }

    // Bytes go socket -> pipe -> socket unchanged, and the byte counts the
    // calls return are what moved.
    #[test]
    fn echoes_through_the_pipe() {
        let (mut client, server) = pair();
        server.set_nonblocking(true).expect("nonblocking");
        let pipe = Pipe::with_capacity(64 * 1024).expect("pipe");
        assert_eq!(pipe.capacity(), 64 * 1024);
        let message: Vec<u8> = (0..5000u32).map(|i| (i * 7 % 251) as u8).collect();
        client.write_all(&message).expect("send");
        let mut moved = 0;
        while moved < message.len() {
            match pipe.fill_from(server.as_fd(), pipe.capacity()) {
                Ok(n) => moved += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => std::thread::yield_now(),
                Err(e) => panic!("splice in: {e}"),
            }
        }
        let out = pipe.drain_into(server.as_fd(), moved).expect("splice out");
        assert_eq!(out, message.len());
        let mut back = vec![0; message.len()];
        client.read_exact(&mut back).expect("echo");
        assert_eq!(back, message);
    }

    // Nothing queued: WouldBlock, not Ok(0), which would read as EOF.
    #[test]
    fn empty_socket_would_block_and_eof_is_zero() {
        let (client, server) = pair();
        server.set_nonblocking(true).expect("nonblocking");
        let pipe = Pipe::with_capacity(4096).expect("pipe");
        let err = pipe
            .fill_from(server.as_fd(), 4096)
            .expect_err("nothing queued");
        assert_eq!(err.kind(), io::ErrorKind::WouldBlock);
        client.shutdown(Shutdown::Write).expect("FIN");
        let mut eof = None;
        for _ in 0..1000 {
            match pipe.fill_from(server.as_fd(), 4096) {
                Ok(n) => {
                    eof = Some(n);
                    break;
                }
                Err(_) => std::thread::sleep(std::time::Duration::from_millis(1)),
            }
        }
        assert_eq!(eof, Some(0));
    }

    // TCP's urgent mark: a splice moves the bytes before it and never the
    // mark's byte; once the peer's FIN has arrived, a splice at the mark
    // returns 0 as at EOF, though bytes are still queued. A plain read
    // (with SO_OOBINLINE, as the server sets it) steps over the mark, and
    // only then is a 0 the end of the stream. The echo machine and its
    // model checker rely on exactly this.
    #[test]
    fn a_splice_at_the_urgent_mark_after_fin_returns_zero() {
        let (mut client, mut server) = pair();
        socket2::SockRef::from(&server)
            .set_out_of_band_inline(true)
            .expect("SO_OOBINLINE");
        server.set_nonblocking(true).expect("nonblocking");
        let pipe = Pipe::with_capacity(64 * 1024).expect("pipe");
        client.write_all(b"before").expect("send");
        socket2::SockRef::from(&client)
            .send_out_of_band(b"!")
            .expect("urgent byte");
        client.write_all(b"after").expect("send");
        client.shutdown(Shutdown::Write).expect("FIN");
        let queued = || rustix::io::ioctl_fionread(server.as_fd()).expect("FIONREAD");
        for _ in 0..1000 {
            if queued() >= 12 {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        assert_eq!(pipe.fill_from(server.as_fd(), 4096).expect("splice"), 6);
        // At the mark: `WouldBlock` until the FIN is in, then 0.
        let mut at_mark = None;
        for _ in 0..1000 {
            match pipe.fill_from(server.as_fd(), 4096) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    std::thread::sleep(std::time::Duration::from_millis(1))
                }
                result => {
                    at_mark = Some(result.expect("splice at the mark"));
                    break;
                }
            }
        }
        assert_eq!(at_mark, Some(0), "a splice at the mark with the FIN queued");
        assert_eq!(queued(), 6, "the urgent byte and those after it");
        let mut rest = [0u8; 64];
        let n = server.read(&mut rest).expect("read over the mark");
        assert_eq!(&rest[..n], b"!after");
        assert_eq!(pipe.fill_from(server.as_fd(), 4096).expect("EOF"), 0);
        assert_eq!(server.read(&mut rest).expect("EOF"), 0);
    }

    // Splicing into a socket that can no longer send returns EPIPE. The
    // SIGPIPE the kernel raised with it waits, blocked, until the thread
    // releases the hold, which takes it off, so it can never be delivered.
    #[test]
    fn a_gone_peer_is_an_error_not_a_signal() {
        let (mut client, server) = pair();
        server.set_nonblocking(true).expect("nonblocking");
        let pipe = Pipe::with_capacity(64 * 1024).expect("pipe");
        client.write_all(&[1; 1000]).expect("send");
        let mut moved = 0;
        while moved < 1000 {
            if let Ok(n) = pipe.fill_from(server.as_fd(), 1000 - moved) {
                moved += n;
            }
        }
        // Shutting the server's own write side is the surest way to EPIPE.
        drop(client);
        server.shutdown(Shutdown::Write).expect("shutdown");
        let err = pipe
            .drain_into(server.as_fd(), moved)
            .expect_err("write after shutdown");
        assert_eq!(err.raw_os_error(), Some(libc::EPIPE));
        assert!(sigpipe_pending(), "splice raised no SIGPIPE to hold");
        crate::os::sigpipe::release();
        assert!(
            !sigpipe_pending(),
            "the SIGPIPE raised by splice is still pending"
        );
    }

    static MESSAGE: [u8; 10_000] = {
        let mut bytes = [0u8; 10_000];
        let mut i = 0;
        while i < bytes.len() {
            bytes[i] = (i * 13 % 251) as u8;
            i += 1;
        }
        bytes
    };

    // Memory queued by reference comes out of the socket byte for byte, in
    // as many calls as the pipe's slots need; a full pipe is WouldBlock.
    #[test]
    fn vmspliced_memory_reaches_the_socket() {
        let (client, mut server) = pair();
        client.set_nonblocking(true).expect("nonblocking");
        let pipe = Pipe::with_capacity(64 * 1024).expect("pipe");
        let mut queued = 0;
        while queued < MESSAGE.len() {
            queued += pipe.vmsplice_from(&MESSAGE[queued..]).expect("vmsplice");
        }
        let mut sent = 0;
        while sent < queued {
            sent += pipe
                .drain_into(client.as_fd(), queued - sent)
                .expect("splice");
        }
        let mut back = vec![0; MESSAGE.len()];
        server.read_exact(&mut back).expect("read");
        assert_eq!(back, MESSAGE);

        // Two slots: at most two pages go in, then the pipe is full.
        let small = Pipe::with_capacity(4096).expect("pipe");
        let _ = fcntl_setpipe_size(&small.write, 2 * 4096);
        let slots = fcntl_getpipe_size(&small.write).expect("size") / 4096;
        let mut queued = 0;
        let err = loop {
            match small.vmsplice_from(&MESSAGE) {
                Ok(n) => queued += n,
                Err(e) => break e,
            }
        };
        assert_eq!(err.kind(), io::ErrorKind::WouldBlock);
        assert!(
            queued > 0 && queued <= slots * 4096,
            "{queued} in {slots} slots"
        );
    }

    // The pipe never promises more than was asked, even though the kernel
    // rounds sizes up to powers of two pages.
    #[test]
    fn capacity_is_what_was_asked_at_most() {
        assert_eq!(Pipe::with_capacity(5000).expect("pipe").capacity(), 5000);
        assert_eq!(Pipe::with_capacity(1).expect("pipe").capacity(), 1);
    }
}
