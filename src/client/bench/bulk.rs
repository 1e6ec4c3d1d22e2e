//! Bulk sending without copying: each connection's pipe, fed by vmsplice, spliced into the socket.

use std::io::ErrorKind;
use std::os::fd::AsFd;
use std::time::Instant;

use super::transport::Transport;
use super::{Engine, State};
use crate::client::error::is_reset;
use crate::os::splice::Pipe;

/// Size asked for each bulk connection's pipe. A pipe holds one page per
/// slot, and a 64 KiB window of the pattern (the default write) spans up
/// to 17 pages, so the 16 slots of a default pipe would split every write
/// in two calls; the kernel rounds this up to 32 slots, which take a whole
/// window and part of the next.
const PIPE_BYTES: usize = 128 * 1024;
/// Smallest pipe worth sending through. A user whose pipes already hold
/// `/proc/sys/fs/pipe-user-pages-soft` pages gets new pipes of 2 slots;
/// queuing 8 KiB per pair of calls costs more than copying.
const MIN_PIPE_BYTES: usize = 64 * 1024;
/// Bulk connections that get a pipe, at most: 256 × 32 pages is a quarter
/// of the default per-user pipe budget (16,384 pages), so a server on this
/// host running as the same user keeps most of it for its own pipes. The
/// other connections copy, as before.
const MAX_PIPES: usize = 256;

impl<T: Transport> Engine<'_, T> {
    /// Gives open bulk connections a pipe to send through, once every
    /// connect is done, so pipes never take a descriptor a connection
    /// needed. The first refusal ends it: a descriptor limit, the pipe
    /// page budget or a sandbox would refuse the next ones too.
    pub(super) fn open_pipes(&mut self) {
        if !T::SPLICES {
            return;
        }
        let open = self
            .conns
            .iter_mut()
            .filter(|c| matches!(c.state, State::Open));
        for conn in open.take(MAX_PIPES) {
            match Pipe::with_capacity(PIPE_BYTES) {
                Ok(pipe) if pipe.capacity() >= MIN_PIPE_BYTES => conn.pipe = Some(pipe),
                Ok(_) | Err(_) => return,
            }
        }
    }

    /// Sends through connection `i`'s pipe: the next bytes of its stream
    /// are queued in the pipe by reference, then spliced into the socket,
    /// oldest first. Only what reached the socket counts as written.
    pub(super) fn write_spliced(&mut self, i: usize) {
        let now = Instant::now();
        loop {
            self.top_up(i, now);
            let conn = &mut self.conns[i];
            let (Some(stream), Some(pipe)) = (&conn.stream, &conn.pipe) else {
                return;
            };
            let queued = conn.flow.in_pipe() as usize;
            let room = pipe.capacity().saturating_sub(queued);
            let chunk = conn.flow.next_write(&self.pattern);
            let chunk = &chunk[..chunk.len().min(room)];
            if !conn.pipe_failed && !chunk.is_empty() {
                match pipe.vmsplice_from(chunk) {
                    Ok(n) => conn.flow.piped(n),
                    // Every slot is taken: the socket takes some first.
                    Err(e) if e.kind() == ErrorKind::WouldBlock && queued > 0 => {}
                    Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                    // Memory cannot be queued (ENOMEM, a seccomp filter,
                    // an empty pipe that takes nothing...): copy from now
                    // on, once what the pipe holds has gone out.
                    Err(_) => conn.pipe_failed = true,
                }
            }
            let queued = conn.flow.in_pipe() as usize;
            if queued == 0 {
                if conn.pipe_failed {
                    conn.pipe = None;
                    self.write_copied(i);
                }
                return;
            }
            match pipe.drain_into(stream.tcp().as_fd(), queued) {
                // Only an empty pipe gives 0, which the counts rule out;
                // if it happened, the bytes would be missing and the run
                // would end reporting them incomplete, without spinning.
                Ok(0) => return,
                Ok(n) => conn.flow.spliced(n),
                Err(e) if e.kind() == ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => {
                    self.closed(i, is_reset(&e));
                    return;
                }
            }
        }
    }
}
