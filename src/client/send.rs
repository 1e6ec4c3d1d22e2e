//! `send` mode: one message or file, its echo checked byte for byte, the
//! connect time and the round-trip time. A file or standard input is
//! streamed, its echo checked as it arrives, so any size (an endless
//! `/dev/zero` too) runs in bounded memory.

use std::fs::File;
use std::io::{self, Read};
use std::net::SocketAddr;
use std::sync::mpsc::{self, Receiver, TryRecvError};
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use mio::Waker;
use serde::Serialize;

use super::cli::SendArgs;
use super::error::{exit, ClientError};
use super::modes::{framed, ByteMap, ServiceMode};
use super::output::{errln, outln};
use super::rtt::millis;
use super::session::{Chunk, Connected, Feed, Progress, Session, CLOSE_GRACE, MAX_DATAGRAM};
use super::target::Target;
use super::tls::{TlsClient, TlsFacts};
use crate::logic::json;

/// Longest payload shown verbatim; longer ones are summarized.
const SHOW_LIMIT: usize = 200;
/// Most bytes held at once: read from the input but not yet verified in
/// the echo. Bounds memory for an input of any size.
pub const WINDOW: usize = 4 << 20;
/// Size of each read from a file or standard input.
const READ_CHUNK: usize = 64 * 1024;
/// Chunks the reader thread may have ready ahead of the sender.
const READ_AHEAD: usize = 4;

/// What is sent: the message, or a file or standard input, streamed.
enum Payload {
    Message(Vec<u8>),
    Stream(Stream),
}

/// A file or standard input, its first chunk read (so an unreadable or
/// empty input fails before connecting), the rest still to read.
struct Stream {
    name: String,
    first: Vec<u8>,
    rest: Box<dyn Read + Send>,
}

/// Runs `send` mode and returns the exit code. Text goes to stdout as it
/// happens; errors to stderr.
pub fn run(args: &SendArgs) -> u8 {
    let mut out = Output::new(args);
    match send(args, &mut out) {
        Ok(()) => {
            out.finish(None);
            exit::OK
        }
        Err(e) => {
            errln!("echo-client: {e}");
            let code = e.exit_code();
            out.finish(Some(e));
            code
        }
    }
}

fn send(args: &SendArgs, out: &mut Output<'_>) -> Result<(), ClientError> {
    if args.udp && args.tls.tls {
        return Err(ClientError::Usage(
            "--tls runs over TCP; --udp sends a datagram".into(),
        ));
    }
    if args.udp {
        if args.mode != ServiceMode::Echo {
            return Err(ClientError::Usage(
                "--udp sends to a UDP echo; --mode is for TCP".into(),
            ));
        }
        return send_datagram(args, out);
    }
    let map = match args.mode {
        ServiceMode::Echo => ByteMap::Same,
        ServiceMode::Upper => ByteMap::Upper,
        ServiceMode::Framed => return send_frame(args, out),
        other => return Err(other.unsupported("send", "echo, upper, framed")),
    };
    let payload = load(args)?;
    let (mut session, mut connected) = connect(args, out)?;
    let (mut feed, shown, name): (Box<dyn Feed>, Option<String>, Option<String>) = match payload {
        Payload::Message(bytes) => {
            let shown = show(&bytes);
            (Box::new(Once(Some(bytes))), Some(shown), None)
        }
        Payload::Stream(stream) => {
            let name = stream.name.clone();
            (
                Box::new(spawn_reader(stream, session.waker()?)?),
                None,
                Some(name),
            )
        }
    };
    let mut progress = Progress::default();
    let result = session
        .transfer(
            &mut connected.stream,
            feed.as_mut(),
            WINDOW,
            args.timeout,
            &mut progress,
            map,
        )
        .map_err(|e| map.relabel(e));
    let rtt = progress.started.map_or(Duration::ZERO, |s| s.elapsed());
    let sent = progress.sent;
    out.doc.bytes_sent = Some(sent);
    out.doc.bytes_received = Some(progress.verified);
    if let Err(e) = result {
        if let (ClientError::Interrupted, Some(name)) = (&e, &name) {
            out.say(format!(
                "Sent {sent} bytes from {name} until Ctrl+C; {} came back identical",
                progress.verified
            ));
        }
        return Err(e);
    }
    out.say(match (&name, &shown) {
        (Some(name), _) => format!("Sent {sent} bytes from {name}"),
        (None, shown) => format!("Sent {sent} bytes: {}", shown.as_deref().unwrap_or("")),
    });
    match session.finish(&mut connected.stream, sent, args.timeout.min(CLOSE_GRACE)) {
        // The echo is verified already; Ctrl+C only cut short the wait for
        // extra bytes, which is no reason to turn a pass into a failure.
        Ok(()) | Err(ClientError::Interrupted) => {}
        Err(e) => return Err(e),
    }
    session.close(connected.stream);
    out.doc.rtt_ms = Some(round(millis(rtt)));
    out.say(match (&name, &shown, map) {
        (Some(_), _, ByteMap::Same) => format!("Received echo: {sent} bytes, identical"),
        (Some(_), _, _) => format!("Received reply: {sent} bytes, uppercased as upper answers"),
        (None, shown, ByteMap::Same) => {
            format!("Received echo: {}", shown.as_deref().unwrap_or(""))
        }
        (None, _, _) => format!(
            "Received reply: {}",
            show(&args.message.to_ascii_uppercase().into_bytes())
        ),
    });
    out.say(if name.is_some() && !rtt.is_zero() {
        format!(
            "RTT: {:.3} ms (first byte sent to last byte back), {:.2} MB/s",
            millis(rtt),
            sent as f64 / rtt.as_secs_f64() / 1e6
        )
    } else {
        format!("RTT: {:.3} ms", millis(rtt))
    });
    Ok(())
}

/// `send --mode framed`: the server's `*`, then MESSAGE as one frame and
/// its reply, computed here (each byte + 1 and `\n`, or the verdict on a
/// prime).
fn send_frame(args: &SendArgs, out: &mut Output<'_>) -> Result<(), ClientError> {
    if args.file.is_some() {
        return Err(ClientError::Usage(
            "send --mode framed sends MESSAGE as one frame; --file is for echo and upper".into(),
        ));
    }
    let (request, reply) = framed::request(args.message.as_bytes())?;
    let (mut session, mut connected) = connect(args, out)?;
    let stream = &mut connected.stream;
    let handshake = framed::HANDSHAKE;
    framed::exchange(
        &mut session,
        stream,
        b"",
        handshake,
        args.timeout,
        0,
        "the connection (the handshake)",
    )?;
    let base = handshake.len() as u64;
    let rtt = framed::exchange(
        &mut session,
        stream,
        &request,
        &reply,
        args.timeout,
        base,
        "frame 1",
    );
    out.doc.bytes_sent = Some(request.len() as u64);
    let rtt = rtt?;
    let received = base + reply.len() as u64;
    out.doc.bytes_received = Some(received);
    out.say(format!("Sent frame: {}", show(&request)));
    match session.finish(stream, received, args.timeout.min(CLOSE_GRACE)) {
        Ok(()) | Err(ClientError::Interrupted) => {}
        Err(ClientError::Mismatch(m)) => {
            return Err(ClientError::Reply(
                crate::client::error::ReplyMismatch::from_mismatch(
                    "framed",
                    m,
                    0,
                    "after the reply to frame 1".into(),
                ),
            ))
        }
        Err(e) => return Err(e),
    }
    session.close(connected.stream);
    out.doc.rtt_ms = Some(round(millis(rtt)));
    out.say(format!("Received reply: {}", show(&reply)));
    Ok(())
}

/// `send --udp`: the message as one datagram, and the datagram that echoes it.
fn send_datagram(args: &SendArgs, out: &mut Output<'_>) -> Result<(), ClientError> {
    let message = args.message.as_bytes();
    if message.len() > MAX_DATAGRAM {
        return Err(ClientError::Usage(format!(
            "a UDP message is at most {MAX_DATAGRAM} bytes; this one is {}",
            message.len()
        )));
    }
    let addrs = args.address.resolve()?;
    let mut session = Session::new()?;
    let (mut socket, addr) = session.udp_connect(&addrs)?;
    out.doc.address = Some(addr);
    out.doc.bytes_sent = Some(message.len() as u64);
    let shown = show(message);
    out.say(format!("Sending a UDP datagram to {addr} ..."));
    let rtt = session.exchange_datagram(&mut socket, addr, message, args.timeout, &|_| false)?;
    out.doc.bytes_received = Some(message.len() as u64);
    out.doc.rtt_ms = Some(round(millis(rtt)));
    out.say(format!("Sent {} bytes: {shown}", message.len()));
    out.say(format!("Received echo: {shown}"));
    out.say(format!("RTT: {:.3} ms", millis(rtt)));
    Ok(())
}

/// Connects, saying so as it goes.
fn connect(args: &SendArgs, out: &mut Output<'_>) -> Result<(Session, Connected), ClientError> {
    out.say(format!("Connecting to {} ...", args.address));
    let addrs = args.address.resolve()?;
    let mut session = Session::new()?;
    session.set_tls(TlsClient::from_args(&args.tls, &args.address.host)?);
    let connected = session.connect_any(&addrs, args.timeout)?;
    out.doc.address = Some(connected.addr);
    out.doc.connect_ms = Some(round(millis(connected.connect_time)));
    out.say(format!(
        "Connected to {} in {:.3} ms",
        connected.addr,
        millis(connected.connect_time)
    ));
    if let Some(tls) = &connected.tls {
        for line in tls.lines() {
            out.say(line);
        }
        out.doc.tls = Some(tls.clone());
    }
    Ok((session, connected))
}

fn load(args: &SendArgs) -> Result<Payload, ClientError> {
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
struct Once(Option<Vec<u8>>);

impl Feed for Once {
    fn next_chunk(&mut self) -> Result<Chunk, ClientError> {
        Ok(self.0.take().map_or(Chunk::End, Chunk::Data))
    }
}

/// A file or standard input, read on a thread of its own: a read may
/// block (a terminal, a pipe with no writer yet) and the connection must
/// still be served and Ctrl+C noticed. The channel holds at most
/// [`READ_AHEAD`] chunks, so the reader never runs far ahead.
struct Reader {
    name: String,
    first: Option<Vec<u8>>,
    chunks: Receiver<io::Result<Vec<u8>>>,
    /// Held here as well as by the thread: dropping the last handle closes
    /// the eventfd, which takes its pending wake-up out of the poll, and
    /// the thread's handle goes as soon as it has sent the end.
    _waker: Arc<Waker>,
}

fn spawn_reader(stream: Stream, waker: Waker) -> Result<Reader, ClientError> {
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

/// The message as text, with control and non-UTF-8 bytes escaped.
fn show(bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(&bytes[..bytes.len().min(SHOW_LIMIT)]);
    let mut shown: String = text.chars().flat_map(char::escape_debug).collect();
    if bytes.len() > SHOW_LIMIT {
        shown.push_str(&format!("… ({} more bytes)", bytes.len() - SHOW_LIMIT));
    }
    shown
}

fn round(x: f64) -> f64 {
    (x * 1e3).round() / 1e3
}

/// Text lines as they happen, or one JSON document at the end.
struct Output<'a> {
    json: bool,
    doc: SendDocument<'a>,
}

/// `send --json`: the figures appear as the run gets that far.
#[derive(Serialize)]
struct SendDocument<'a> {
    mode: &'static str,
    #[serde(serialize_with = "json::display")]
    target: &'a Target,
    #[serde(skip_serializing_if = "Option::is_none")]
    address: Option<SocketAddr>,
    #[serde(skip_serializing_if = "Option::is_none")]
    connect_ms: Option<f64>,
    /// With `--tls`: version, suite, handshake time, certificate.
    #[serde(skip_serializing_if = "Option::is_none")]
    tls: Option<TlsFacts>,
    #[serde(skip_serializing_if = "Option::is_none")]
    bytes_sent: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    bytes_received: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    rtt_ms: Option<f64>,
    #[serde(rename = "match")]
    matched: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    mismatch_offset: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error_kind: Option<&'static str>,
    error: Option<ClientError>,
}

impl<'a> Output<'a> {
    fn new(args: &'a SendArgs) -> Self {
        Self {
            json: args.json,
            doc: SendDocument {
                mode: "send",
                target: &args.address,
                address: None,
                connect_ms: None,
                tls: None,
                bytes_sent: None,
                bytes_received: None,
                rtt_ms: None,
                matched: false,
                mismatch_offset: None,
                error_kind: None,
                error: None,
            },
        }
    }

    fn say(&self, line: String) {
        if !self.json {
            outln!("{line}");
        }
    }

    fn finish(self, error: Option<ClientError>) {
        if !self.json {
            return;
        }
        let mut doc = self.doc;
        doc.matched = error.is_none();
        match &error {
            Some(ClientError::Mismatch(m)) => doc.mismatch_offset = Some(m.offset),
            Some(ClientError::Reply(m)) => doc.mismatch_offset = Some(m.offset),
            _ => {}
        }
        doc.error_kind = error.as_ref().map(ClientError::kind);
        doc.error = error;
        outln!("{}", json::to_string(&doc));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_are_shown_safely() {
        assert_eq!(show(b"hello world"), "hello world");
        assert_eq!(show(b"a\r\n\x00"), "a\\r\\n\\0");
        let long = vec![b'x'; SHOW_LIMIT + 5];
        assert!(show(&long).ends_with("… (5 more bytes)"));
    }
}
