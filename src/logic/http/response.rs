//! What the endpoint answers: the statuses it sends, a response as written
//! on the wire, and the count of answers by status for `/metrics`.

use std::fmt::Write as _;
use std::sync::Arc;

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
    /// 421 Misdirected Request: the `Host` names a server other than this
    /// endpoint (see [`AllowedHosts`](super::AllowedHosts)).
    Misdirected,
    /// 431: the request head is larger than [`MAX_REQUEST`](super::MAX_REQUEST) or has more
    /// than [`MAX_HEADERS`](super::MAX_HEADERS) headers.
    TooLarge,
    /// 503 Service Unavailable: sent, with `Retry-After`, to a client over
    /// the endpoint's connection limit before closing.
    Unavailable,
}

impl Status {
    /// The numeric code.
    pub fn code(self) -> u16 {
        match self {
            Self::Ok => 200,
            Self::BadRequest => 400,
            Self::NotFound => 404,
            Self::MethodNotAllowed => 405,
            Self::Misdirected => 421,
            Self::TooLarge => 431,
            Self::Unavailable => 503,
        }
    }

    fn reason(self) -> &'static str {
        match self {
            Self::Ok => "OK",
            Self::BadRequest => "Bad Request",
            Self::NotFound => "Not Found",
            Self::MethodNotAllowed => "Method Not Allowed",
            Self::Misdirected => "Misdirected Request",
            Self::TooLarge => "Request Header Fields Too Large",
            Self::Unavailable => "Service Unavailable",
        }
    }

    /// Whether the connection must close after this response: after a
    /// malformed or oversized request the stream position is unknown, and
    /// a client that asked for another server has nothing more for us.
    pub fn closes(self) -> bool {
        matches!(
            self,
            Self::BadRequest | Self::TooLarge | Self::Misdirected | Self::Unavailable
        )
    }
}

/// A response to send: status, content type and body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    /// The status line's code and reason; also decides whether the
    /// connection closes after it ([`Status::closes`]).
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
        let mut body = format!("{} {}\n", status.code(), status.reason().to_lowercase());
        match status {
            Status::Misdirected => body.push_str(
                "This endpoint answers only requests for its IP address or localhost.\n\
                 To reach it by another name, start echo-server with --metrics-allow-host NAME.\n",
            ),
            Status::Unavailable => {
                body.push_str("Too many metrics connections at once; retry shortly.\n")
            }
            _ => {}
        }
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
        if self.status == Status::Unavailable {
            head.push_str("Retry-After: 1\r\n");
        }
        head.push_str("\r\n");
        out.extend_from_slice(head.as_bytes());
    }
}

/// Requests answered, by status; exported in `/metrics`.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct HttpCounts {
    /// 200, 400, 404, 405, 421, 431 in that order.
    pub by_status: [u64; 6],
}

impl HttpCounts {
    /// The statuses counted, in [`by_status`](Self::by_status) order.
    pub const STATUSES: [Status; 6] = [
        Status::Ok,
        Status::BadRequest,
        Status::NotFound,
        Status::MethodNotAllowed,
        Status::Misdirected,
        Status::TooLarge,
    ];

    /// Counts one answer.
    pub fn count(&mut self, status: Status) {
        if let Some(i) = Self::STATUSES.iter().position(|s| *s == status) {
            self.by_status[i] += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
        let mut out = Vec::new();
        Response::error(Status::Unavailable).write_to(&mut out, false, false);
        let text = String::from_utf8(out).unwrap();
        assert!(text.starts_with("HTTP/1.1 503 Service Unavailable\r\n"));
        assert!(text.contains("Retry-After: 1\r\n") && text.contains("Connection: close\r\n"));
        let mut out = Vec::new();
        Response::error(Status::Misdirected).write_to(&mut out, false, false);
        let text = String::from_utf8(out).unwrap();
        assert!(text.starts_with("HTTP/1.1 421 Misdirected Request\r\n"));
        assert!(text.contains("--metrics-allow-host"), "{text}");
    }
}
