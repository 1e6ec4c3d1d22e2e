//! Opening an unbounded run's connections: each one's socket, its two
//! threads, and the start once all are open.

use std::io;
use std::net::TcpStream;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::thread;
use std::time::Instant;

use super::{reader, tls, writer, Conn, Open, Streams};
use crate::client::bench::StopAfter;
use crate::client::error::ClientError;
use crate::client::session::connect_error;

impl Streams<'_> {
    /// Connects every connection in turn and starts its two threads; the
    /// run starts once all are open, as in the other modes.
    pub(super) fn open_all(&mut self) -> Result<(), ClientError> {
        for id in 0..self.config.connections as u64 {
            if self.signalled()? > 0 {
                return Err(ClientError::Interrupted);
            }
            match TcpStream::connect_timeout(&self.addr, self.config.timeout) {
                Ok(stream) => self.start(id, stream)?,
                Err(e) => {
                    self.connect_errors += 1;
                    (self.failures).note(connect_error(self.addr, e, self.config.timeout));
                }
            }
        }
        if self.conns.is_empty() {
            return Err(self
                .failures
                .take_decisive()
                .unwrap_or_else(|| ClientError::Other("no connection".into())));
        }
        let now = Instant::now();
        self.run_start = Some(now);
        self.last_progress = now;
        self.window.start = now + self.config.warmup;
        if let StopAfter::Duration(d) = self.config.stop {
            self.window.end = Some(self.window.start + d);
        }
        // Without a warm-up the window opens before the first byte goes:
        // opened at the loop's first turn, it would leave out whatever had
        // already come back (a whole TLS record, on loopback).
        if self.config.warmup.is_zero() {
            self.open_window();
        }
        self.run.started.store(true, Ordering::SeqCst);
        for open in &self.conns {
            if let Some(writer) = &open.writer {
                writer.thread().unpark();
            }
        }
        Ok(())
    }

    fn start(&mut self, id: u64, stream: TcpStream) -> Result<(), ClientError> {
        let local = |what: &str, e: io::Error| {
            ClientError::Other(format!("connection {id}: cannot {what}: {e}"))
        };
        // As in the other modes: a short last write is not held back.
        let _ = stream.set_nodelay(true);
        if let Some(client) = &self.config.tls {
            let (writer, reader) = tls::split(&stream, client, self.config.timeout)?;
            return self.spawn(id, stream, writer, reader);
        }
        let for_writer = stream
            .try_clone()
            .map_err(|e| local("clone the socket", e))?;
        let for_reader = stream
            .try_clone()
            .map_err(|e| local("clone the socket", e))?;
        self.spawn(id, stream, for_writer, for_reader)
    }

    /// Starts connection `id`'s reader and writer threads on their halves
    /// (`stream` stays here, to stop them).
    fn spawn<W, R>(
        &mut self,
        id: u64,
        stream: TcpStream,
        for_writer: W,
        for_reader: R,
    ) -> Result<(), ClientError>
    where
        W: io::Write + writer::HalfClose + Send + 'static,
        R: io::Read + reader::Close + Send + 'static,
    {
        let local = |what: &str, e: io::Error| {
            ClientError::Other(format!("connection {id}: cannot {what}: {e}"))
        };
        let conn = Arc::new(Conn {
            id,
            ..Conn::default()
        });
        let mut open = Open {
            stream,
            conn: conn.clone(),
            writer: None,
            reader: None,
        };
        let (run, shared) = (self.run.clone(), conn.clone());
        let reader = thread::Builder::new()
            .name(format!("reader-{id}"))
            .spawn(move || reader::read(for_reader, &shared, &run));
        open.reader = Some(reader.map_err(|e| local("start a thread", e))?);
        // Pushed before the writer starts: `finish` then always stops it.
        self.conns.push(open);
        let run = self.run.clone();
        let writer = thread::Builder::new()
            .name(format!("writer-{id}"))
            .spawn(move || {
                // Every connection starts writing once all are open.
                while !run.started.load(Ordering::SeqCst) && !run.quit.load(Ordering::SeqCst) {
                    thread::park();
                }
                writer::write(for_writer, &conn, &run);
            });
        let open = self.conns.last_mut().expect("just pushed");
        open.writer = Some(writer.map_err(|e| local("start a thread", e))?);
        Ok(())
    }
}
