//! The metrics endpoint's HTTP connection ([`HttpConn`]) against a model:
//! "the answers are those of parsing the whole byte stream at once".
//!
//! The script (decoded from fuzz bytes) is what the client and the kernel
//! do: send a chunk (raw bytes, or pieces of real requests so the fuzzer
//! reaches the interesting paths quickly), open or close the send window
//! (`WouldBlock` on writes), interrupt a read, half-close, reset, and give
//! the connection a turn. `Host` headers name the endpoint (an IP literal,
//! localhost, the one allowed name `a`) or another server, or are
//! malformed, so the 421 and 400 paths are reached too. Checked after every
//! turn:
//! - request input held never exceeds [`MAX_REQUEST`];
//! - at most one response is pending, and nothing is answered after an
//!   answer that closes;
//! - what was written is a prefix of the expected responses' concatenation;
//! - liveness: when the script ends with the window open and the client
//!   closing, the connection answers every complete request the model
//!   finds, in order, with the model's statuses, and then closes.
//!
//! The model parses the whole stream with [`crate::logic::http::parse`], one
//! request after another, each within a window of [`MAX_REQUEST`] bytes
//! (what the connection can hold): the check is that chunking, short
//! writes, pipelining and the per-turn budget never change the answers.

use super::stream::ScriptedStream;
use super::{Input, Violation};
use crate::logic::http::conn::{HttpClose, HttpConn, HttpNext, RESPONSES_PER_TURN};
use crate::logic::http::{parse, AllowedHosts, Parse, Response, Route, Status, MAX_REQUEST};

/// Operations decoded from one input at most.
const MAX_STEPS: usize = 2048;
/// Turns the settling phase may take before it counts as a stall.
const MAX_SETTLE_TURNS: usize = 10_000;

/// Pieces the script can send, so requests that parse are common.
const WORDS: [&[u8]; 24] = [
    b"GET ",
    b"HEAD ",
    b"POST ",
    b"/ ",
    b"/metrics ",
    b"/stats.json ",
    b"/healthz?x=1 ",
    b"/nope ",
    b"HTTP/1.1\r\n",
    b"HTTP/1.0\r\n",
    b"Host: a\r\n",
    b"Connection: close\r\n",
    b"Connection: keep-alive\r\n",
    b"Content-Length: 3\r\n",
    b"Transfer-Encoding: chunked\r\n",
    b"\r\n",
    b"\r\n\r\n",
    b"GET /healthz HTTP/1.1\r\nHost: a\r\n\r\n",
    b"\x00\xff",
    b" ",
    b"Host: rebind.attacker.example\r\n",
    b"Host: [::1]:9187\r\n",
    b"Host: LocalHost\r\n",
    b"Host: a b\r\n",
];

/// The names the check's endpoint allows beside IP literals and
/// localhost: `Host: a` is answered, `Host: rebind.attacker.example` is
/// misdirected.
fn hosts() -> AllowedHosts<'static> {
    static NAMES: std::sync::OnceLock<[String; 1]> = std::sync::OnceLock::new();
    AllowedHosts::new(NAMES.get_or_init(|| ["a".to_string()]))
}

/// What one script did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpRun {
    /// Bytes the client sent.
    pub sent: usize,
    /// Status codes answered, in order.
    pub statuses: Vec<u16>,
    /// How the connection ended.
    pub closed: HttpClose,
}

/// The body the check's responder sends for a route.
fn respond(outcome: Result<Route, Status>) -> Response {
    match outcome {
        Ok(route) => Response::ok("text/plain", format!("{route:?}\n")),
        Err(status) => Response::error(status),
    }
}

/// What the model expects for the whole stream `sent`: the answers, in
/// wire form, and their statuses.
fn expected(sent: &[u8]) -> (Vec<u8>, Vec<u16>) {
    let mut wire = Vec::new();
    let mut statuses = Vec::new();
    let mut pos = 0;
    loop {
        let window = &sent[pos..sent.len().min(pos + MAX_REQUEST)];
        let Parse::Complete(req) = parse(window, hosts()) else {
            break;
        };
        let response = respond(req.outcome);
        let keep_alive = req.keep_alive && !response.status.closes();
        response.write_to(&mut wire, req.head_only, keep_alive);
        statuses.push(response.status.code());
        if !keep_alive {
            break;
        }
        pos += req.consumed;
    }
    (wire, statuses)
}

/// Runs the script in `data`; see the module docs for what is checked.
pub fn check_http(data: &[u8]) -> Result<HttpRun, Violation> {
    let mut input = Input::new(data);
    // The scripted client and kernel.
    let mut client = ScriptedStream::new(&[], usize::MAX);
    let mut sent = Vec::new();
    let mut conn = HttpConn::new();
    let mut statuses = Vec::new();
    let mut closed = None;
    let mut step = 0;

    let turn = |conn: &mut HttpConn,
                client: &mut ScriptedStream,
                statuses: &mut Vec<u16>,
                step: usize|
     -> Result<HttpNext, Violation> {
        let mut record = |outcome: Result<Route, Status>| {
            let response = respond(outcome);
            statuses.push(response.status.code());
            response
        };
        let result = conn.pump(client, hosts(), &mut record, RESPONSES_PER_TURN);
        if conn.buffered_input() > MAX_REQUEST {
            return Err(Violation::new(
                step,
                format!("{} bytes of request held", conn.buffered_input()),
            ));
        }
        if result.responses > crate::logic::http::conn::RESPONSES_PER_TURN {
            return Err(Violation::new(step, "turn budget exceeded"));
        }
        Ok(result.next)
    };

    while !input.is_empty() && step < MAX_STEPS && closed.is_none() {
        step += 1;
        match input.below(8) {
            0 | 1 => {
                let n = input.below(48);
                let chunk: Vec<u8> = (0..n).map(|_| input.byte()).collect();
                sent.extend_from_slice(&chunk);
                client.inbound.extend(chunk);
            }
            2 | 3 => {
                let word = WORDS[input.below(WORDS.len())];
                let times = 1 + input.below(4);
                for _ in 0..times {
                    sent.extend_from_slice(word);
                    client.inbound.extend(word);
                }
            }
            4 => {
                client.room = match input.below(4) {
                    0 => usize::MAX,
                    _ => input.below(300),
                }
            }
            5 => client.interrupt_read = true,
            6 => {
                if input.below(8) == 0 {
                    client.reset = true;
                } else {
                    client.eof = true;
                }
            }
            _ => {}
        }
        // The server gives a turn after every step (a readiness edge or a
        // resume); extra turns are harmless and must change nothing.
        if let HttpNext::Close(how) = turn(&mut conn, &mut client, &mut statuses, step)? {
            closed = Some(how);
        }
        check_prefix(&client, &sent, step)?;
    }

    // Settle: the client reads everything and closes its side.
    client.room = usize::MAX;
    client.interrupt_read = false;
    client.eof = true;
    let mut turns = 0;
    while closed.is_none() {
        turns += 1;
        if turns > MAX_SETTLE_TURNS {
            return Err(Violation::new(step, "connection never closes"));
        }
        if let HttpNext::Close(how) = turn(&mut conn, &mut client, &mut statuses, step)? {
            closed = Some(how);
        }
    }
    let closed = closed.unwrap_or(HttpClose::Error);
    check_prefix(&client, &sent, step)?;
    let (wire, want) = expected(&sent);
    if client.reset {
        if !want.starts_with(&statuses) {
            return Err(Violation::new(
                step,
                format!("answered {statuses:?}, model {want:?}"),
            ));
        }
    } else {
        if statuses != want {
            return Err(Violation::new(
                step,
                format!("answered {statuses:?}, model {want:?}"),
            ));
        }
        if client.output != wire {
            return Err(Violation::new(step, "written bytes differ from the model"));
        }
        if closed == HttpClose::Error {
            return Err(Violation::new(step, "error close without a reset"));
        }
    }
    Ok(HttpRun {
        sent: sent.len(),
        statuses,
        closed,
    })
}

fn check_prefix(client: &ScriptedStream, sent: &[u8], step: usize) -> Result<(), Violation> {
    if client.reset {
        return Ok(());
    }
    let (wire, _) = expected(sent);
    if !wire.starts_with(&client.output) {
        return Err(Violation::new(
            step,
            "written bytes are not a prefix of the model's answers",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model_check::Rng;

    // Hand-written scripts: a pipelined pair, a bad request, a body.
    #[test]
    fn known_scripts() {
        // op 2 (word) 17 (GET /healthz), times 2, then nothing: settles.
        let run = check_http(&[2, 17, 1]).unwrap();
        assert_eq!(run.statuses, vec![200, 200]);
        assert_eq!(run.closed, HttpClose::PeerClosed);
        // GET / HTTP/1.1, Host: a (allowed), CRLF, twice: two 200s, then
        // the settle closes.
        let request = [2, 0, 0, 2, 3, 0, 2, 8, 0, 2, 10, 0, 2, 15, 0];
        let run = check_http(&request.repeat(2)).unwrap();
        assert_eq!(run.statuses, vec![200, 200]);
        assert_eq!(run.closed, HttpClose::PeerClosed);
        // The same with Host: rebind.attacker.example: one 421, closed.
        let mut request = request;
        request[10] = 20;
        let run = check_http(&request.repeat(2)).unwrap();
        assert_eq!(run.statuses, vec![421]);
        // op 0 (raw) of 4 bytes "\0\0\0\0" + CRLFCRLF word: a 400.
        let run = check_http(&[0, 4, 0, 0, 0, 0, 2, 16, 0]).unwrap();
        assert_eq!(run.statuses, vec![400]);
    }

    // Generated scripts of requests built from the words, with window
    // changes, interrupts, raw bytes and closes between them, pass and
    // cover every status.
    #[test]
    fn generated_scripts_pass() {
        let mut rng = Rng(0x5EED_0F47_7400);
        let mut seen = std::collections::BTreeSet::new();
        let pick = |rng: &mut Rng, n: u64| (rng.next() % n) as u8;
        for _ in 0..3_000 {
            let mut data = Vec::new();
            for _ in 0..1 + rng.next() % 4 {
                let method = [0, 0, 0, 1, 2][pick(&mut rng, 5) as usize];
                let path = 3 + pick(&mut rng, 5);
                let version = 8 + pick(&mut rng, 2);
                data.extend_from_slice(&[2, method, 0, 2, path, 0, 2, version, 0]);
                if rng.next() % 4 != 0 {
                    let host = [10, 20, 21, 22, 23][pick(&mut rng, 5) as usize];
                    data.extend_from_slice(&[2, host, 0]);
                }
                if rng.next() % 3 == 0 {
                    data.extend_from_slice(&[2, 10 + pick(&mut rng, 5), 0]);
                }
                match rng.next() % 8 {
                    0 => data.extend_from_slice(&[4, 1, pick(&mut rng, 255)]),
                    1 => data.extend_from_slice(&[5]),
                    2 => data.extend_from_slice(&[0, 2, pick(&mut rng, 255), b'\r']),
                    _ => {}
                }
                data.extend_from_slice(&[2, 15, 0]);
            }
            if rng.next() % 4 == 0 {
                data.extend_from_slice(&[6, pick(&mut rng, 16)]);
            }
            let run = check_http(&data).unwrap_or_else(|v| panic!("{data:?}: {v}"));
            seen.extend(run.statuses);
        }
        for code in [200, 400, 404, 405, 421] {
            assert!(seen.contains(&code), "no script answered {code}: {seen:?}");
        }
    }
}
