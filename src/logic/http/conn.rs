//! One HTTP connection over any byte stream: read a request head, answer
//! it, repeat while the client keeps the connection alive.
//!
//! Like the echo side it is edge-triggered: every turn ends on
//! `WouldBlock` (reading or writing) or in a close. At most one response is
//! pending at a time: the next request is not looked at until the previous
//! answer has been written, so a client that pipelines without reading
//! holds at most one response head, a reference to its (shared) body, and
//! [`MAX_REQUEST`] bytes of input.

use std::io::ErrorKind;
use std::sync::Arc;

use crate::logic::stream::Stream;

use super::{parse, AllowedHosts, Parse, Response, Route, Status, MAX_REQUEST};

/// Responses one connection may send per turn before the others get
/// theirs (a pipelining client would otherwise hold the thread).
pub const RESPONSES_PER_TURN: usize = 8;

/// Why an HTTP connection ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HttpClose {
    /// The server answered and closed (`Connection: close`, or an error
    /// status after which the stream cannot be trusted).
    Answered,
    /// The client closed between requests.
    PeerClosed,
    /// The client reset the connection or another I/O error.
    Error,
}

impl std::fmt::Display for HttpClose {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Answered => "answered",
            Self::PeerClosed => "peer closed",
            Self::Error => "error",
        })
    }
}

/// What the caller should do after a turn.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HttpNext {
    /// Wait for the next readiness edge.
    Wait,
    /// The turn's response budget ran out: give it another turn soon.
    Resume,
    /// Close the connection.
    Close(HttpClose),
}

/// What a turn did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HttpTurn {
    /// What to do next.
    pub next: HttpNext,
    /// Responses completed (queued) in this turn.
    pub responses: usize,
}

/// The state of one HTTP connection, apart from its socket.
#[derive(Debug, Default)]
pub struct HttpConn {
    input: Vec<u8>,
    /// The pending answer's head, then its body; `written` counts across
    /// both.
    head: Vec<u8>,
    body: Option<Arc<[u8]>>,
    written: usize,
    close_after_flush: bool,
    peer_done: bool,
    /// FIN sent after an answer that closes: input is read and dropped
    /// until the client closes, so that closing with unread input does not
    /// turn into an RST that destroys the answer in flight.
    lingering: bool,
    /// Over the connection limit: its only answer is a `503`.
    refusal: bool,
}

impl HttpConn {
    /// A fresh connection.
    pub fn new() -> Self {
        Self::default()
    }

    /// A connection over the endpoint's limit: it answers `503` with
    /// `Retry-After` without reading a request, sends FIN, and reads and
    /// drops what the client sent until it closes (closing with unread
    /// input would reset the connection and destroy the answer).
    pub fn refusing() -> Self {
        let mut head = Vec::new();
        Response::error(Status::Unavailable).write_to(&mut head, false, false);
        Self {
            head,
            close_after_flush: true,
            refusal: true,
            ..Self::default()
        }
    }

    /// True for a connection made by [`refusing`](Self::refusing).
    pub fn is_refusal(&self) -> bool {
        self.refusal
    }

    /// Bytes of request input held (never more than [`MAX_REQUEST`]).
    #[cfg(any(test, feature = "model-check"))]
    pub fn buffered_input(&self) -> usize {
        self.input.len()
    }

    /// Bytes of response not yet written.
    pub fn pending_output(&self) -> usize {
        self.head.len() + self.body.as_ref().map_or(0, |b| b.len()) - self.written
    }

    /// Moves what can move now: writes the pending response, answers the
    /// next buffered request through `respond` (given the route, or the
    /// error status of a bad request or one for a host not in `hosts`),
    /// reads more. Answers at most `max_responses` requests (at most
    /// [`RESPONSES_PER_TURN`], and the loop's budget for all endpoint
    /// clients may be lower); `Resume` when more are waiting.
    pub fn pump<S: Stream>(
        &mut self,
        stream: &mut S,
        hosts: AllowedHosts<'_>,
        respond: &mut dyn FnMut(Result<Route, Status>) -> Response,
        max_responses: usize,
    ) -> HttpTurn {
        let mut responses = 0;
        let next = self.exchange(stream, hosts, respond, &mut responses, max_responses);
        HttpTurn { next, responses }
    }

    /// The body of [`pump`](Self::pump): write, answer, read, until the
    /// stream blocks, the budget runs out or the connection ends.
    fn exchange<S: Stream>(
        &mut self,
        stream: &mut S,
        hosts: AllowedHosts<'_>,
        respond: &mut dyn FnMut(Result<Route, Status>) -> Response,
        responses: &mut usize,
        max_responses: usize,
    ) -> HttpNext {
        let mut chunk = [0u8; 4096];
        if self.lingering {
            return linger(stream, &mut chunk);
        }
        loop {
            while self.pending_output() > 0 {
                let chunk = match self.written.checked_sub(self.head.len()) {
                    None => &self.head[self.written..],
                    Some(into_body) => &self.body.as_deref().unwrap_or_default()[into_body..],
                };
                match stream.write(chunk) {
                    Ok(0) => return HttpNext::Close(HttpClose::Error),
                    Ok(n) => self.written += n,
                    Err(e) if e.kind() == ErrorKind::WouldBlock => return HttpNext::Wait,
                    Err(e) if e.kind() == ErrorKind::Interrupted => {}
                    Err(_) => return HttpNext::Close(HttpClose::Error),
                }
            }
            self.head.clear();
            self.body = None;
            self.written = 0;
            if self.close_after_flush {
                if self.peer_done || stream.shutdown_write().is_err() {
                    return HttpNext::Close(HttpClose::Answered);
                }
                self.lingering = true;
                self.input = Vec::new();
                return linger(stream, &mut chunk);
            }
            if let Parse::Complete(req) = parse(&self.input, hosts) {
                if *responses >= max_responses {
                    return HttpNext::Resume;
                }
                let response = respond(req.outcome);
                let keep_alive = req.keep_alive && !response.status.closes();
                response.write_head(&mut self.head, keep_alive);
                if !req.head_only {
                    self.body = Some(response.body);
                }
                self.input.drain(..req.consumed.min(self.input.len()));
                self.close_after_flush = !keep_alive;
                *responses += 1;
                continue;
            }
            // Partial: `parse` guarantees the input is under the limit.
            if self.peer_done {
                return HttpNext::Close(HttpClose::PeerClosed);
            }
            let room = MAX_REQUEST
                .saturating_sub(self.input.len())
                .min(chunk.len());
            match stream.read(&mut chunk[..room]) {
                Ok(0) => self.peer_done = true,
                Ok(n) => self.input.extend_from_slice(&chunk[..n]),
                Err(e) if e.kind() == ErrorKind::WouldBlock => return HttpNext::Wait,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(_) => return HttpNext::Close(HttpClose::Error),
            }
        }
    }
}

/// After the final answer and FIN: drop input until the client closes (the
/// server's HTTP timer bounds how long that may take).
fn linger<S: Stream>(stream: &mut S, chunk: &mut [u8]) -> HttpNext {
    loop {
        match stream.read(chunk) {
            Ok(0) => return HttpNext::Close(HttpClose::Answered),
            Ok(_) => {}
            Err(e) if e.kind() == ErrorKind::WouldBlock => return HttpNext::Wait,
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(_) => return HttpNext::Close(HttpClose::Answered),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model_check::stream::ScriptedStream;

    fn ok(outcome: Result<Route, Status>) -> Response {
        match outcome {
            Ok(route) => Response::ok("text/plain", format!("{route:?}")),
            Err(status) => Response::error(status),
        }
    }

    // Two pipelined requests on a keep-alive connection get two answers in
    // order, and the connection waits for more.
    #[test]
    fn pipelined_keep_alive() {
        let mut s = ScriptedStream::new(&[], usize::MAX);
        s.send(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\nGET /metrics HTTP/1.1\r\nHost: localhost\r\n\r\n");
        let mut conn = HttpConn::new();
        let turn = conn.pump(&mut s, AllowedHosts::default(), &mut ok, RESPONSES_PER_TURN);
        assert_eq!(
            turn,
            HttpTurn {
                next: HttpNext::Wait,
                responses: 2
            }
        );
        let text = String::from_utf8(s.output).unwrap();
        assert!(text.find("Health").unwrap() < text.find("Metrics").unwrap());
    }

    // A request split into single bytes is still answered once complete;
    // EOF after it closes the connection.
    #[test]
    fn byte_by_byte_then_eof() {
        let mut s = ScriptedStream::new(&[], usize::MAX);
        for b in b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n" {
            s.send(&[*b]);
        }
        s.eof = true;
        let mut conn = HttpConn::new();
        let turn = conn.pump(&mut s, AllowedHosts::default(), &mut ok, RESPONSES_PER_TURN);
        assert_eq!(turn.next, HttpNext::Close(HttpClose::PeerClosed));
        assert_eq!(turn.responses, 1);
    }

    // A garbage request is answered 400 and closed; a blocked writer keeps
    // the response pending until the next turn.
    #[test]
    fn bad_request_closes_after_the_answer() {
        let mut s = ScriptedStream::default();
        s.send(b"\x16\x03\x01garbage\r\n\r\n");
        let mut conn = HttpConn::new();
        assert_eq!(
            conn.pump(&mut s, AllowedHosts::default(), &mut ok, RESPONSES_PER_TURN)
                .next,
            HttpNext::Wait
        );
        assert!(conn.pending_output() > 0);
        s.room = usize::MAX;
        let turn = conn.pump(&mut s, AllowedHosts::default(), &mut ok, RESPONSES_PER_TURN);
        assert_eq!(turn.next, HttpNext::Wait, "lingers after FIN");
        assert!(s.fin_sent && s.output.starts_with(b"HTTP/1.1 400 "));
        s.send(b"more garbage");
        s.eof = true;
        let turn = conn.pump(&mut s, AllowedHosts::default(), &mut ok, RESPONSES_PER_TURN);
        assert_eq!(turn.next, HttpNext::Close(HttpClose::Answered));
        assert_eq!(s.output.iter().filter(|&&b| b == b'\n').count(), 7);
    }

    // An endless header line stops at the limit with a 431.
    #[test]
    fn oversized_head_is_431() {
        let mut s = ScriptedStream::new(&[], usize::MAX);
        s.send(b"GET /");
        s.send(&[b'a'; 3 * MAX_REQUEST]);
        s.eof = true;
        let mut conn = HttpConn::new();
        let turn = conn.pump(&mut s, AllowedHosts::default(), &mut ok, RESPONSES_PER_TURN);
        assert_eq!(turn.next, HttpNext::Close(HttpClose::Answered));
        assert!(s.output.starts_with(b"HTTP/1.1 431 "));
    }

    // A refusal answers 503 without waiting for a request, sends FIN, then
    // reads and drops what the client sends until it closes.
    #[test]
    fn refusal_answers_503_then_drains_until_eof() {
        let mut s = ScriptedStream::new(&[], usize::MAX);
        let mut conn = HttpConn::refusing();
        assert!(conn.is_refusal() && !HttpConn::new().is_refusal());
        let turn = conn.pump(&mut s, AllowedHosts::default(), &mut ok, RESPONSES_PER_TURN);
        assert_eq!(turn.next, HttpNext::Wait);
        assert_eq!(turn.responses, 0, "no request was answered");
        let text = String::from_utf8(s.output.clone()).unwrap();
        assert!(
            text.starts_with("HTTP/1.1 503 Service Unavailable\r\n"),
            "{text}"
        );
        assert!(text.contains("Retry-After: 1\r\n") && text.contains("Connection: close\r\n"));
        assert!(s.fin_sent);
        s.send(b"GET /metrics HTTP/1.1\r\nHost: localhost\r\n\r\n");
        let turn = conn.pump(&mut s, AllowedHosts::default(), &mut ok, RESPONSES_PER_TURN);
        assert_eq!(turn.next, HttpNext::Wait);
        assert!(s.inbound.is_empty(), "the request was read and dropped");
        s.eof = true;
        let turn = conn.pump(&mut s, AllowedHosts::default(), &mut ok, RESPONSES_PER_TURN);
        assert_eq!(turn.next, HttpNext::Close(HttpClose::Answered));
        assert_eq!(s.output, text.as_bytes(), "nothing more was written");
    }

    // Many pipelined requests are answered a bounded number per turn.
    #[test]
    fn responses_per_turn_are_bounded() {
        let mut s = ScriptedStream::new(&[], usize::MAX);
        s.send(&b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n".repeat(RESPONSES_PER_TURN + 2));
        let mut conn = HttpConn::new();
        let turn = conn.pump(&mut s, AllowedHosts::default(), &mut ok, RESPONSES_PER_TURN);
        assert_eq!(turn.next, HttpNext::Resume);
        let turn = conn.pump(&mut s, AllowedHosts::default(), &mut ok, RESPONSES_PER_TURN);
        assert_eq!(
            turn,
            HttpTurn {
                next: HttpNext::Wait,
                responses: 2
            }
        );
        // A lower budget (the loop's, shared by all clients) bounds it too.
        s.send(&b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n".repeat(5));
        let turn = conn.pump(&mut s, AllowedHosts::default(), &mut ok, 3);
        assert_eq!(
            turn,
            HttpTurn {
                next: HttpNext::Resume,
                responses: 3
            }
        );
    }
}
