//! A connection's writer thread: the pattern in `--size` writes, as fast as
//! the kernel takes them, never waiting for the echo.

use std::io::{ErrorKind, Write};
use std::net::{Shutdown, TcpStream};
use std::sync::atomic::Ordering;

use super::{Conn, Run};
use crate::client::pattern::{MAX_WINDOW, PERIOD};

/// Writes until the run stops it, its share of `--requests` is sent, or
/// the socket fails; then publishes the final count and half-closes, so the
/// server sees the end of the stream as it would from `nc`.
pub(super) fn write<S: Write + HalfClose>(mut stream: S, conn: &Conn, run: &Run) {
    let size = run.size as u64;
    // Writes above the pattern's window come from one buffer holding a
    // period and a write: the stream repeats every PERIOD bytes, so any
    // write is one slice of it.
    let long = (run.size > MAX_WINDOW).then(|| {
        let mut bytes = Vec::with_capacity(PERIOD + run.size);
        run.pattern
            .extend(conn.id, 0, PERIOD + run.size, &mut bytes);
        bytes
    });
    let mut written = 0u64;
    'writes: while !run.stop.load(Ordering::Relaxed) {
        if let Some(left) = &run.writes_left {
            let claimed =
                left.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1));
            if claimed.is_err() {
                break;
            }
        }
        let end = written + size;
        // Before the bytes go: their echo can be read before `write` returns.
        conn.offered.store(end, Ordering::SeqCst);
        while written < end {
            let len = (end - written) as usize;
            let bytes = match &long {
                Some(long) => {
                    let at = (written % PERIOD as u64) as usize;
                    &long[at..at + len]
                }
                None => run.pattern.window(conn.id, written, len),
            };
            match stream.write(bytes) {
                Ok(0) => break 'writes,
                Ok(n) => {
                    written += n as u64;
                    conn.written.store(written, Ordering::SeqCst);
                }
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                // Stopped (the coordinator's shutdown), or the server went:
                // the reader reports what that cost.
                Err(_) => break 'writes,
            }
        }
    }
    conn.offered.store(written, Ordering::SeqCst);
    conn.written.store(written, Ordering::SeqCst);
    conn.writer_done.store(true, Ordering::SeqCst);
    stream.shutdown_write();
    run.wake();
}

/// The end of a writer's stream: FIN, or close_notify then FIN.
pub(super) trait HalfClose {
    fn shutdown_write(&mut self);
}

impl HalfClose for TcpStream {
    fn shutdown_write(&mut self) {
        let _ = self.shutdown(Shutdown::Write);
    }
}
