//! The metrics endpoint's HTTP/1.x, as pure code: parsing a request head
//! (with httparse), routing it, and writing a response. No sockets here;
//! [`conn`] drives one HTTP connection over any byte stream, and the server
//! loop gives it its turns beside the echo connections.
//!
//! Only what a browser, Prometheus and a load-balancer probe need: `GET`
//! and `HEAD`, no request bodies, keep-alive, and a bounded request head.

pub mod conn;

use std::fmt::Write as _;
use std::sync::Arc;

/// Largest request head (request line and headers) accepted; a longer one
/// is answered `431` and the connection closed. Browsers send about 1 KiB.
pub const MAX_REQUEST: usize = 8 * 1024;
/// Most headers parsed in one request; more is a `431`.
pub const MAX_HEADERS: usize = 32;

/// What the server serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    /// `GET /`: the HTML dashboard.
    Dashboard,
    /// `GET /metrics`: Prometheus text format.
    Metrics,
    /// `GET /stats.json`: figures and active connections as JSON.
    StatsJson,
    /// `GET /healthz`: `200 ok`.
    Health,
}

/// One parsed request head, reduced to what the server acts on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// Where it goes, or the error status to answer with.
    pub outcome: Result<Route, Status>,
    /// `HEAD`: send the headers only.
    pub head_only: bool,
    /// The client wants the connection kept open after the response.
    pub keep_alive: bool,
    /// Bytes of the buffer this request used.
    pub consumed: usize,
}

/// A response status this server sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// 200 OK.
    Ok,
    /// 400 Bad Request: the request did not parse or carries a body.
    BadRequest,
    /// 404 Not Found.
    NotFound,
    /// 405 Method Not Allowed: anything but GET and HEAD.
    MethodNotAllowed,
    /// 431: the request head is larger than [`MAX_REQUEST`] or has more
    /// than [`MAX_HEADERS`] headers.
    TooLarge,
}

impl Status {
    /// The numeric code.
    pub fn code(self) -> u16 {
        match self {
            Self::Ok => 200,
            Self::BadRequest => 400,
            Self::NotFound => 404,
            Self::MethodNotAllowed => 405,
            Self::TooLarge => 431,
        }
    }

    fn reason(self) -> &'static str {
        match self {
            Self::Ok => "OK",
            Self::BadRequest => "Bad Request",
            Self::NotFound => "Not Found",
            Self::MethodNotAllowed => "Method Not Allowed",
            Self::TooLarge => "Request Header Fields Too Large",
        }
    }

    /// Whether the connection must close after this response: after a
    /// malformed or oversized request the stream position is unknown.
    pub fn closes(self) -> bool {
        matches!(self, Self::BadRequest | Self::TooLarge)
    }
}

/// Result of looking for a request at the start of a buffer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Parse {
    /// A whole request head is there.
    Complete(Request),
    /// More bytes are needed (and the buffer is still under the limit).
    Partial,
}

/// Parses the request head at the start of `buf`.
///
/// Malformed requests, requests with a body and oversized heads come back
/// as a `Complete` request whose outcome is the error status (the caller
/// answers and closes); nothing here panics on any input.
///
/// ```
/// use echo_server::http::{parse, Parse, Route};
/// let Parse::Complete(req) = parse(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n") else {
///     panic!()
/// };
/// assert_eq!(req.outcome, Ok(Route::Metrics));
/// assert!(req.keep_alive);
/// assert_eq!(parse(b"GET /metr"), Parse::Partial);
/// ```
pub fn parse(buf: &[u8]) -> Parse {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut headers);
    let error = |status| {
        Parse::Complete(Request {
            outcome: Err(status),
            head_only: false,
            keep_alive: false,
            consumed: buf.len(),
        })
    };
    let consumed = match req.parse(buf) {
        Ok(httparse::Status::Complete(n)) if n <= MAX_REQUEST => n,
        Ok(httparse::Status::Complete(_)) => return error(Status::TooLarge),
        Ok(httparse::Status::Partial) if buf.len() < MAX_REQUEST => return Parse::Partial,
        Ok(httparse::Status::Partial) => return error(Status::TooLarge),
        Err(httparse::Error::TooManyHeaders) => return error(Status::TooLarge),
        Err(_) => return error(Status::BadRequest),
    };
    let (Some(method), Some(path), Some(version)) = (req.method, req.path, req.version) else {
        return error(Status::BadRequest);
    };
    let headers = &*req.headers;
    fn header<'h>(
        headers: &'h [httparse::Header<'h>],
        name: &'static str,
    ) -> impl Iterator<Item = &'h [u8]> + 'h {
        headers
            .iter()
            .filter(move |h| h.name.eq_ignore_ascii_case(name))
            .map(|h| h.value)
    }
    let has_body = header(headers, "transfer-encoding").next().is_some()
        || header(headers, "content-length").any(|v| v.iter().any(|&b| b != b'0' && b != b' '));
    let connection = |token: &'static str| {
        header(headers, "connection").any(|v| {
            v.split(|&b| b == b',')
                .any(|t| t.trim_ascii().eq_ignore_ascii_case(token.as_bytes()))
        })
    };
    let keep_alive = if version >= 1 {
        !connection("close")
    } else {
        connection("keep-alive")
    };
    let head_only = method == "HEAD";
    let outcome = if method != "GET" && !head_only {
        Err(Status::MethodNotAllowed)
    } else if has_body {
        Err(Status::BadRequest)
    } else {
        route(path)
    };
    // A body we did not read would be taken for the next request.
    let keep_alive = keep_alive && !has_body && outcome.is_ok_or_not_found();
    Parse::Complete(Request {
        outcome,
        head_only,
        keep_alive,
        consumed,
    })
}

trait OutcomeExt {
    fn is_ok_or_not_found(&self) -> bool;
}

impl OutcomeExt for Result<Route, Status> {
    fn is_ok_or_not_found(&self) -> bool {
        matches!(
            self,
            Ok(_) | Err(Status::NotFound) | Err(Status::MethodNotAllowed)
        )
    }
}

/// The route for a request target; the query string is ignored.
pub fn route(target: &str) -> Result<Route, Status> {
    let path = target.split(['?', '#']).next().unwrap_or(target);
    match path {
        "/" | "/index.html" => Ok(Route::Dashboard),
        "/metrics" => Ok(Route::Metrics),
        "/stats.json" => Ok(Route::StatsJson),
        "/healthz" => Ok(Route::Health),
        _ => Err(Status::NotFound),
    }
}

/// A response to send: status, content type and body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    /// Its status.
    pub status: Status,
    /// The `Content-Type`.
    pub content_type: &'static str,
    /// The body (sent only for `GET`). Shared: the same page, built once,
    /// goes to every client that asked for it in that pass of the loop,
    /// and a client that does not read holds a reference, not a copy.
    pub body: Arc<[u8]>,
}

impl Response {
    /// A `200` with `body`.
    pub fn ok(content_type: &'static str, body: impl Into<Vec<u8>>) -> Self {
        Self::shared(content_type, body.into().into())
    }

    /// A `200` with a body that is already shared.
    pub fn shared(content_type: &'static str, body: Arc<[u8]>) -> Self {
        Self {
            status: Status::Ok,
            content_type,
            body,
        }
    }

    /// The short plain-text answer for an error status.
    pub fn error(status: Status) -> Self {
        let body = format!("{} {}\n", status.code(), status.reason().to_lowercase());
        Self {
            status,
            content_type: "text/plain; charset=utf-8",
            body: body.into_bytes().into(),
        }
    }

    /// Appends the response as sent on the wire to `out`.
    pub fn write_to(&self, out: &mut Vec<u8>, head_only: bool, keep_alive: bool) {
        self.write_head(out, keep_alive);
        if !head_only {
            out.extend_from_slice(&self.body);
        }
    }

    /// Appends the status line and headers (through the blank line).
    pub fn write_head(&self, out: &mut Vec<u8>, keep_alive: bool) {
        let mut head = String::with_capacity(160);
        let _ = write!(
            head,
            "HTTP/1.1 {} {}\r\nContent-Type: {}\r\nContent-Length: {}\r\n\
             Cache-Control: no-store\r\nConnection: {}\r\n",
            self.status.code(),
            self.status.reason(),
            self.content_type,
            self.body.len(),
            if keep_alive { "keep-alive" } else { "close" }
        );
        if self.status == Status::MethodNotAllowed {
            head.push_str("Allow: GET, HEAD\r\n");
        }
        head.push_str("\r\n");
        out.extend_from_slice(head.as_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn complete(raw: &[u8]) -> Request {
        match parse(raw) {
            Parse::Complete(req) => req,
            Parse::Partial => panic!("{raw:?} is partial"),
        }
    }

    #[test]
    fn routes_and_statuses() {
        let get = |path: &str| complete(format!("GET {path} HTTP/1.1\r\n\r\n").as_bytes());
        assert_eq!(get("/").outcome, Ok(Route::Dashboard));
        assert_eq!(get("/metrics?x=1").outcome, Ok(Route::Metrics));
        assert_eq!(get("/stats.json").outcome, Ok(Route::StatsJson));
        assert_eq!(get("/healthz").outcome, Ok(Route::Health));
        assert_eq!(get("/nope").outcome, Err(Status::NotFound));
        assert!(get("/nope").keep_alive);
        let post = complete(b"POST /metrics HTTP/1.1\r\n\r\n");
        assert_eq!(post.outcome, Err(Status::MethodNotAllowed));
        let head = complete(b"HEAD /healthz HTTP/1.1\r\n\r\n");
        assert!(head.head_only && head.outcome.is_ok());
    }

    #[test]
    fn keep_alive_follows_the_version_and_header() {
        assert!(!complete(b"GET / HTTP/1.0\r\n\r\n").keep_alive);
        assert!(complete(b"GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n").keep_alive);
        assert!(!complete(b"GET / HTTP/1.1\r\nConnection: foo, close\r\n\r\n").keep_alive);
    }

    #[test]
    fn bad_input_is_a_status_not_a_panic() {
        assert_eq!(
            complete(b"\x00\x01 / HTTP/1.1\r\n\r\n").outcome,
            Err(Status::BadRequest)
        );
        assert_eq!(
            complete(b"GET / HTTP/9.9\r\n\r\n").outcome,
            Err(Status::BadRequest)
        );
        let body = complete(b"GET / HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello");
        assert_eq!(body.outcome, Err(Status::BadRequest));
        assert!(!body.keep_alive);
        let huge = vec![b'a'; MAX_REQUEST + 1];
        let mut long = b"GET /".to_vec();
        long.extend_from_slice(&huge);
        assert_eq!(complete(&long).outcome, Err(Status::TooLarge));
        let mut many = b"GET / HTTP/1.1\r\n".to_vec();
        for i in 0..MAX_HEADERS + 1 {
            many.extend_from_slice(format!("X-{i}: y\r\n").as_bytes());
        }
        many.extend_from_slice(b"\r\n");
        assert_eq!(complete(&many).outcome, Err(Status::TooLarge));
    }

    #[test]
    fn responses_are_well_formed() {
        let mut out = Vec::new();
        Response::ok("text/plain", "ok\n").write_to(&mut out, false, true);
        let text = String::from_utf8(out).unwrap();
        assert!(text.starts_with("HTTP/1.1 200 OK\r\n"));
        assert!(text.contains("Content-Length: 3\r\n"));
        assert!(text.ends_with("\r\n\r\nok\n"));
        let mut out = Vec::new();
        Response::error(Status::MethodNotAllowed).write_to(&mut out, true, false);
        let text = String::from_utf8(out).unwrap();
        assert!(text.contains("Allow: GET, HEAD\r\n") && text.ends_with("\r\n\r\n"));
    }
}
