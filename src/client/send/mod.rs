//! `send` mode: one message or file, its echo checked byte for byte, the
//! connect time and the round-trip time. A file or standard input is
//! streamed, its echo checked as it arrives, so any size (an endless
//! `/dev/zero` too) runs in bounded memory.

use std::time::Duration;

use super::cli::SendArgs;
use super::error::{exit, ClientError};
use super::modes::{framed, ByteMap, ServiceMode};
use super::output::errln;
use super::rtt::millis;
use super::session::{Connected, Feed, Progress, Session, CLOSE_GRACE, MAX_DATAGRAM};
use super::tls::TlsClient;

/// Most bytes held at once: read from the input but not yet verified in
/// the echo. Bounds memory for an input of any size.
pub const WINDOW: usize = 4 << 20;

mod input;
mod report;

use input::{load, spawn_reader, Once, Payload};
use report::{round, show, Output};

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
