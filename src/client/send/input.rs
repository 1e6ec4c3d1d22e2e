//! What `send` sends: the message, or a file or standard input read on a
//! thread of its own, a chunk at a time, so any size runs in bounded
//! memory.

use std::fs::File;
use std::io::{self, Read};
use std::sync::mpsc::{self, Receiver, TryRecvError};
use std::sync::Arc;
use std::thread;

use mio::Waker;

use super::super::cli::SendArgs;
use super::super::error::ClientError;
use super::super::session::{Chunk, Feed};

/// Size of each read from a file or standard input.
const READ_CHUNK: usize = 64 * 1024;
/// Chunks the reader thread may have ready ahead of the sender.
const READ_AHEAD: usize = 4;

/// What is sent: the message, or a file or standard input, streamed.
pub(super) enum Payload {
    Message(Vec<u8>),
    Stream(Stream),
}

/// A file or standard input, its first chunk read (so an unreadable or
/// empty input fails before connecting), the rest still to read.
pub(super) struct Stream {
    pub(super) name: String,
    first: Vec<u8>,
    rest: Box<dyn Read + Send>,
}

pub(super) fn load(args: &SendArgs) -> Result<Payload, ClientError> {
    let Some(path) = &args.file else {
        return Ok(Payload::Message(args.message.as_bytes().to_vec()));
    };
    let (mut rest, name): (Box<dyn Read + Send>, String) = if path.as_os_str() == "-" {
        (Box::new(io::stdin()), "standard input".to_string())
    } else {
        let file = File::open(path)
            .map_err(|e| ClientError::Other(format!("cannot read {}: {e}", path.display())))?;
        (Box::new(file), path.display().to_string())
    };
    let first = read_chunk(rest.as_mut())
        .map_err(|e| ClientError::Other(format!("cannot read {name}: {e}")))?;
    if first.is_empty() {
        return Err(ClientError::Other(format!(
            "{name} is empty: there is nothing to echo"
        )));
    }
    Ok(Payload::Stream(Stream { name, first, rest }))
}

/// Up to [`READ_CHUNK`] bytes; empty at the end of the input.
fn read_chunk(input: &mut dyn Read) -> io::Result<Vec<u8>> {
    let mut chunk = vec![0; READ_CHUNK];
    loop {
        match input.read(&mut chunk) {
            Ok(n) => {
                chunk.truncate(n);
                return Ok(chunk);
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
}

/// The message: one chunk.
pub(super) struct Once(pub(super) Option<Vec<u8>>);

impl Feed for Once {
    fn next_chunk(&mut self) -> Result<Chunk, ClientError> {
        Ok(self.0.take().map_or(Chunk::End, Chunk::Data))
    }
}

/// A file or standard input, read on a thread of its own: a read may
/// block (a terminal, a pipe with no writer yet) and the connection must
/// still be served and Ctrl+C noticed. The channel holds at most
/// [`READ_AHEAD`] chunks, so the reader never runs far ahead.
pub(super) struct Reader {
    name: String,
    first: Option<Vec<u8>>,
    chunks: Receiver<io::Result<Vec<u8>>>,
    /// Held here as well as by the thread: dropping the last handle closes
    /// the eventfd, which takes its pending wake-up out of the poll, and
    /// the thread's handle goes as soon as it has sent the end.
    _waker: Arc<Waker>,
}

pub(super) fn spawn_reader(stream: Stream, waker: Waker) -> Result<Reader, ClientError> {
    let (tx, rx) = mpsc::sync_channel(READ_AHEAD);
    let mut input = stream.rest;
    let waker = Arc::new(waker);
    let thread_waker = Arc::clone(&waker);
    thread::Builder::new()
        .name("input".into())
        .spawn(move || loop {
            let chunk = read_chunk(input.as_mut());
            let last = !matches!(&chunk, Ok(c) if !c.is_empty());
            // An empty chunk marks the end; a send fails once the sender
            // has stopped, and then there is no one left to read for.
            if tx.send(chunk).is_err() || thread_waker.wake().is_err() || last {
                return;
            }
        })
        .map_err(|e| ClientError::Other(format!("cannot start the input thread: {e}")))?;
    Ok(Reader {
        name: stream.name,
        first: Some(stream.first),
        chunks: rx,
        _waker: waker,
    })
}

impl Feed for Reader {
    fn next_chunk(&mut self) -> Result<Chunk, ClientError> {
        if let Some(first) = self.first.take() {
            return Ok(Chunk::Data(first));
        }
        match self.chunks.try_recv() {
            Ok(Ok(chunk)) if chunk.is_empty() => Ok(Chunk::End),
            Ok(Ok(chunk)) => Ok(Chunk::Data(chunk)),
            Ok(Err(e)) => Err(ClientError::Other(format!(
                "cannot read {}: {e}",
                self.name
            ))),
            Err(TryRecvError::Empty) => Ok(Chunk::NotYet),
            Err(TryRecvError::Disconnected) => Ok(Chunk::End),
        }
    }
}
