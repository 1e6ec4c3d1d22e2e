//! `send` mode: one message or file, its echo checked byte for byte, the
//! connect time and the round-trip time.

use std::fs;
use std::io::{self, Read};

use super::cli::SendArgs;
use super::error::{exit, ClientError};
use super::output::{errln, outln};
use super::rtt::millis;
use super::session::{Session, CLOSE_GRACE};
use crate::json::JsonObject;

/// Longest payload shown verbatim; longer ones are summarized.
const SHOW_LIMIT: usize = 200;

/// What was sent: the message, or a file's bytes and its name.
struct Payload {
    bytes: Vec<u8>,
    source: Option<String>,
}

/// Runs `send` mode and returns the exit code. Text goes to stdout as it
/// happens; errors to stderr.
pub fn run(args: &SendArgs) -> u8 {
    let mut out = Output::new(args.json);
    out.doc
        .str("mode", "send")
        .str("target", &args.address.to_string());
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

fn send(args: &SendArgs, out: &mut Output) -> Result<(), ClientError> {
    let payload = load(args)?;
    out.say(format!("Connecting to {} ...", args.address));
    let addrs = args.address.resolve()?;
    let mut session = Session::new()?;
    let mut connected = session.connect_any(&addrs, args.timeout)?;
    out.doc
        .str("address", &connected.addr.to_string())
        .float("connect_ms", round(millis(connected.connect_time)));
    out.say(format!(
        "Connected to {} in {:.3} ms",
        connected.addr,
        millis(connected.connect_time)
    ));
    let sent = payload.bytes.len();
    out.doc.uint("bytes_sent", sent as u64);
    let rtt = session.exchange(&mut connected.stream, &payload.bytes, args.timeout)?;
    out.say(match &payload.source {
        Some(name) => format!("Sent {sent} bytes from {name}"),
        None => format!("Sent {sent} bytes: {}", show(&payload.bytes)),
    });
    match session.finish(
        &mut connected.stream,
        sent as u64,
        args.timeout.min(CLOSE_GRACE),
    ) {
        // The echo is verified already; Ctrl+C only cut short the wait for
        // extra bytes, which is no reason to turn a pass into a failure.
        Ok(()) | Err(ClientError::Interrupted) => {}
        Err(e) => return Err(e),
    }
    session.close(connected.stream);
    out.doc
        .uint("bytes_received", sent as u64)
        .float("rtt_ms", round(millis(rtt)));
    out.say(match &payload.source {
        Some(_) => format!("Received echo: {sent} bytes, identical"),
        None => format!("Received echo: {}", show(&payload.bytes)),
    });
    out.say(if payload.source.is_some() && !rtt.is_zero() {
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

fn load(args: &SendArgs) -> Result<Payload, ClientError> {
    let Some(path) = &args.file else {
        return Ok(Payload {
            bytes: args.message.as_bytes().to_vec(),
            source: None,
        });
    };
    let (bytes, name) = if path.as_os_str() == "-" {
        let mut bytes = Vec::new();
        io::stdin()
            .read_to_end(&mut bytes)
            .map_err(|e| ClientError::Other(format!("cannot read standard input: {e}")))?;
        (bytes, "standard input".to_string())
    } else {
        let bytes = fs::read(path)
            .map_err(|e| ClientError::Other(format!("cannot read {}: {e}", path.display())))?;
        (bytes, path.display().to_string())
    };
    if bytes.is_empty() {
        return Err(ClientError::Other(format!(
            "{name} is empty: there is nothing to echo"
        )));
    }
    Ok(Payload {
        bytes,
        source: Some(name),
    })
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
struct Output {
    json: bool,
    doc: JsonObject,
}

impl Output {
    fn new(json: bool) -> Self {
        Self {
            json,
            doc: JsonObject::new(),
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
        doc.bool("match", error.is_none());
        match error {
            Some(e) => {
                if let ClientError::Mismatch(m) = &e {
                    doc.uint("mismatch_offset", m.offset);
                }
                doc.str("error_kind", e.kind()).str("error", &e.to_string())
            }
            None => doc.null("error"),
        };
        outln!("{}", doc.finish());
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
