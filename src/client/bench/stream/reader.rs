//! A connection's reader thread: large reads, every byte checked against
//! the pattern as it arrives.

use std::io::{ErrorKind, Read};
use std::net::{Shutdown, TcpStream};
use std::sync::atomic::Ordering;
use std::time::Instant;

use super::{Conn, Run};
use crate::client::bench::flow::Flow;
use crate::client::error::{is_reset, Mismatch};

/// Bytes per read, as a streaming tool reads.
const READ_CHUNK: usize = 256 * 1024;

/// How a reader stopped.
#[derive(Debug)]
pub(super) enum Ending {
    /// The coordinator stopped it (the run is over).
    Stopped,
    /// The echo differed from what was sent.
    Mismatch(Mismatch),
    /// The server closed or reset the connection.
    Closed {
        /// With an RST.
        reset: bool,
        /// While this connection was still sending: a failure whatever
        /// came back. Otherwise only if some of what was sent did not.
        sending: bool,
    },
}

/// What a reader thread hands back.
#[derive(Debug)]
pub(super) struct ReaderEnd {
    pub(super) ending: Ending,
    /// The most bytes written and not yet echoed it saw before a read.
    pub(super) most_in_flight: u64,
}

/// Reads until the run stops it or the connection ends.
pub(super) fn read<S: Read + Close>(mut stream: S, conn: &Conn, run: &Run) -> ReaderEnd {
    let mut flow: Flow<()> = Flow::new(conn.id, run.size);
    let mut buf = vec![0u8; READ_CHUNK];
    let mut offered = 0u64;
    let mut most_in_flight = 0;
    let ending = loop {
        let result = stream.read(&mut buf);
        if run.quit.load(Ordering::Relaxed) {
            break Ending::Stopped;
        }
        let sending =
            || !run.stop.load(Ordering::SeqCst) && !conn.writer_done.load(Ordering::SeqCst);
        let n = match result {
            Ok(0) => {
                break Ending::Closed {
                    reset: false,
                    sending: sending(),
                }
            }
            Ok(n) => n,
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(e) => {
                break Ending::Closed {
                    reset: is_reset(&e),
                    sending: sending(),
                }
            }
        };
        let written = conn.written.load(Ordering::SeqCst);
        most_in_flight = most_in_flight.max(written.saturating_sub(flow.verified()));
        // The flow may expect up to what the writer has offered: a write's
        // first bytes can come back before the call that sent them returns.
        let now_offered = conn.offered.load(Ordering::SeqCst);
        if now_offered > offered {
            flow.issue_bytes(now_offered - offered);
            flow.wrote((now_offered - offered) as usize);
            offered = now_offered;
        }
        if let Err(mismatch) = flow.echoed(&buf[..n], &run.pattern, |_| {}) {
            break Ending::Mismatch(mismatch);
        }
        conn.last_echo_ns
            .store(run.since_start(Instant::now()), Ordering::Relaxed);
        conn.verified.store(flow.verified(), Ordering::SeqCst);
        // Once the writer is done, the coordinator waits for this count.
        if conn.writer_done.load(Ordering::SeqCst) {
            run.wake();
        }
    };
    if !matches!(ending, Ending::Stopped) {
        // The writer stops too: nothing more on this connection counts.
        stream.shutdown_both();
        conn.reader_done.store(true, Ordering::SeqCst);
        run.wake();
    }
    ReaderEnd {
        ending,
        most_in_flight,
    }
}

/// Ends both directions of a reader's connection, so its writer stops too.
pub(super) trait Close {
    fn shutdown_both(&mut self);
}

impl Close for TcpStream {
    fn shutdown_both(&mut self) {
        let _ = self.shutdown(Shutdown::Both);
    }
}
