//! The metrics endpoint's HTTP/1.x, as pure code: parsing a request head
//! (with httparse), routing it, and writing a response. No sockets here:
//! [`conn`] drives one HTTP connection over any
//! [`Stream`](crate::logic::stream::Stream), and the server loop holds the
//! socket and gives it its turns beside the echo connections.
//!
//! Only what a browser, Prometheus and a load-balancer probe need: `GET`
//! and `HEAD`, no request bodies, keep-alive, and a bounded request head.
//!
//! Only requests whose `Host` names this endpoint are answered (see
//! [`AllowedHosts`]): the pages list client addresses, and a web page the
//! operator visits could otherwise read them through DNS rebinding.

pub mod conn;

use std::fmt::Write as _;
use std::net::{Ipv4Addr, Ipv6Addr};
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
    /// 421 Misdirected Request: the `Host` names a server other than this
    /// endpoint (see [`AllowedHosts`]).
    Misdirected,
    /// 431: the request head is larger than [`MAX_REQUEST`] or has more
    /// than [`MAX_HEADERS`] headers.
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

/// Result of looking for a request at the start of a buffer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Parse {
    /// A whole request head is there.
    Complete(Request),
    /// More bytes are needed (and the buffer is still under the limit).
    Partial,
}

/// Parses the request head at the start of `buf`; `hosts` says which
/// `Host` values name this endpoint.
///
/// Malformed requests, requests with a body, oversized heads and requests
/// for another host come back as a `Complete` request whose outcome is the
/// error status (the caller answers and closes); nothing here panics on
/// any input.
///
/// ```
/// use echo_server::logic::http::{parse, AllowedHosts, Parse, Route, Status};
/// let hosts = AllowedHosts::default();
/// let get = |raw: &[u8]| match parse(raw, hosts) {
///     Parse::Complete(req) => req,
///     Parse::Partial => panic!(),
/// };
/// let req = get(b"GET /metrics HTTP/1.1\r\nHost: 127.0.0.1:9187\r\n\r\n");
/// assert_eq!(req.outcome, Ok(Route::Metrics));
/// assert!(req.keep_alive);
/// let req = get(b"GET /metrics HTTP/1.1\r\nHost: rebind.example\r\n\r\n");
/// assert_eq!(req.outcome, Err(Status::Misdirected));
/// assert_eq!(parse(b"GET /metr", hosts), Parse::Partial);
/// ```
pub fn parse(buf: &[u8], hosts: AllowedHosts<'_>) -> Parse {
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
    // RFC 9112 3.2: HTTP/1.1 needs exactly one Host, and a valid one.
    let mut host = header(headers, "host");
    let host = match (host.next(), host.next()) {
        (None, _) if version >= 1 => HostVerdict::Invalid,
        (None, _) => HostVerdict::Ours,
        (Some(value), None) => hosts.check(value),
        (Some(_), Some(_)) => HostVerdict::Invalid,
    };
    let outcome = if host == HostVerdict::Invalid {
        Err(Status::BadRequest)
    } else if host == HostVerdict::Foreign {
        Err(Status::Misdirected)
    } else if method != "GET" && !head_only {
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
    /// The answers after which the connection may stay open.
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

/// Which `Host` values name this endpoint (the port is ignored, and case):
/// - any IP address literal (`127.0.0.1`, `[::1]`, the bound address or
///   one a NAT or container maps to it): DNS rebinding needs a host name;
/// - `localhost` and names under `.localhost`, always loopback (RFC 6761);
/// - the names given with `--metrics-allow-host`, for a public bind
///   reached by its DNS name.
///
/// A web page can only reach the endpoint through another name by making
/// that name resolve to the endpoint's address (DNS rebinding); the
/// browser then sends that name, which none of the above matches.
#[derive(Debug, Clone, Copy, Default)]
pub struct AllowedHosts<'a> {
    names: &'a [String],
}

/// What a `Host` value is to this endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HostVerdict {
    /// It names this endpoint.
    Ours,
    /// A well-formed name of some other server: answered `421`.
    Foreign,
    /// Not a valid `host[:port]`: answered `400`.
    Invalid,
}

impl<'a> AllowedHosts<'a> {
    /// The IP literals and localhost names, plus `names` (host names
    /// without a port; compared ignoring case and a trailing dot).
    pub fn new(names: &'a [String]) -> Self {
        Self { names }
    }

    /// Classifies the value of a `Host` header.
    ///
    /// ```
    /// use echo_server::logic::http::{AllowedHosts, HostVerdict};
    /// let names = ["metrics.example.org".to_string()];
    /// let hosts = AllowedHosts::new(&names);
    /// assert_eq!(hosts.check(b"[::1]:9187"), HostVerdict::Ours);
    /// assert_eq!(hosts.check(b"Metrics.Example.org"), HostVerdict::Ours);
    /// assert_eq!(hosts.check(b"evil.example"), HostVerdict::Foreign);
    /// assert_eq!(hosts.check(b"a b"), HostVerdict::Invalid);
    /// ```
    pub fn check(&self, value: &[u8]) -> HostVerdict {
        let value = value.trim_ascii();
        let (host, port) = if let Some(rest) = value.strip_prefix(b"[") {
            // An IPv6 literal; zone identifiers are not accepted.
            let Some(end) = rest.iter().position(|&b| b == b']') else {
                return HostVerdict::Invalid;
            };
            let port = match &rest[end + 1..] {
                [] => &[][..],
                [b':', port @ ..] => port,
                _ => return HostVerdict::Invalid,
            };
            if !port.iter().all(u8::is_ascii_digit) {
                return HostVerdict::Invalid;
            }
            return match std::str::from_utf8(&rest[..end]).map(str::parse::<Ipv6Addr>) {
                Ok(Ok(_)) => HostVerdict::Ours,
                _ => HostVerdict::Invalid,
            };
        } else {
            match value.iter().position(|&b| b == b':') {
                Some(colon) => (&value[..colon], &value[colon + 1..]),
                None => (value, &[][..]),
            }
        };
        if !port.iter().all(u8::is_ascii_digit) || !host.iter().all(|&b| is_reg_name_byte(b)) {
            return HostVerdict::Invalid;
        }
        let name = host.strip_suffix(b".").unwrap_or(host);
        // Only ASCII passed the check above.
        let name = std::str::from_utf8(name).unwrap_or_default();
        if name.is_empty() {
            // An empty Host names no server (a request for a URI without
            // an authority); no browser sends it.
            return HostVerdict::Foreign;
        }
        let localhost = name.eq_ignore_ascii_case("localhost")
            || name.len() > ".localhost".len()
                && name
                    .get(name.len() - ".localhost".len()..)
                    .is_some_and(|tail| tail.eq_ignore_ascii_case(".localhost"));
        let allowed = localhost
            || name.parse::<Ipv4Addr>().is_ok()
            || self
                .names
                .iter()
                .any(|n| n.strip_suffix('.').unwrap_or(n).eq_ignore_ascii_case(name));
        if allowed {
            HostVerdict::Ours
        } else {
            HostVerdict::Foreign
        }
    }
}

/// A byte of a `reg-name` or IPv4 address (RFC 3986: unreserved,
/// percent-encoded or sub-delims).
fn is_reg_name_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"-._~%!$&'()*+,;=".contains(&b)
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

#[cfg(test)]
mod tests {
    use super::*;

    fn complete(raw: &[u8]) -> Request {
        match parse(raw, AllowedHosts::default()) {
            Parse::Complete(req) => req,
            Parse::Partial => panic!("{raw:?} is partial"),
        }
    }

    #[test]
    fn routes_and_statuses() {
        let get = |path: &str| {
            complete(format!("GET {path} HTTP/1.1\r\nHost: localhost\r\n\r\n").as_bytes())
        };
        assert_eq!(get("/").outcome, Ok(Route::Dashboard));
        assert_eq!(get("/metrics?x=1").outcome, Ok(Route::Metrics));
        assert_eq!(get("/stats.json").outcome, Ok(Route::StatsJson));
        assert_eq!(get("/healthz").outcome, Ok(Route::Health));
        assert_eq!(get("/nope").outcome, Err(Status::NotFound));
        assert!(get("/nope").keep_alive);
        let post = complete(b"POST /metrics HTTP/1.1\r\nHost: ::1\r\n\r\n");
        assert_eq!(post.outcome, Err(Status::BadRequest), "unbracketed IPv6");
        let post = complete(b"POST /metrics HTTP/1.1\r\nHost: [::1]\r\n\r\n");
        assert_eq!(post.outcome, Err(Status::MethodNotAllowed));
        let head = complete(b"HEAD /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n");
        assert!(head.head_only && head.outcome.is_ok());
    }

    #[test]
    fn keep_alive_follows_the_version_and_header() {
        assert!(!complete(b"GET / HTTP/1.0\r\n\r\n").keep_alive);
        assert!(complete(b"GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n").keep_alive);
        assert!(
            !complete(b"GET / HTTP/1.1\r\nHost: localhost\r\nConnection: foo, close\r\n\r\n")
                .keep_alive
        );
        assert!(complete(b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n").keep_alive);
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

    // Only IP literals, localhost names and the configured names are
    // answered; the port and case do not matter.
    #[test]
    fn host_names_this_endpoint_or_is_refused() {
        let names = ["metrics.example.org".to_string(), "Box.Lan.".to_string()];
        let hosts = AllowedHosts::new(&names);
        for ours in [
            "127.0.0.1",
            "127.0.0.1:9187",
            "10.1.2.3:80",
            "[::1]",
            "[::1]:9187",
            "[2001:db8::7]:1",
            "localhost",
            "LOCALHOST:9187",
            "localhost.",
            "app.localhost",
            "a.b.LocalHost:1",
            "metrics.example.org",
            "METRICS.example.org:443",
            "metrics.example.org.",
            "box.lan",
            " 127.0.0.1 ",
            "localhost:",
        ] {
            assert_eq!(hosts.check(ours.as_bytes()), HostVerdict::Ours, "{ours}");
        }
        for foreign in [
            "rebind.attacker.example",
            "rebind.attacker.example:9187",
            "localhost.attacker.example",
            "xlocalhost",
            ".localhost",
            "127.0.0.1.nip.io",
            "example.org",
            "sub.metrics.example.org",
            "",
            ":9187",
            "127.1",
        ] {
            assert_eq!(
                hosts.check(foreign.as_bytes()),
                HostVerdict::Foreign,
                "{foreign}"
            );
            let default = AllowedHosts::default();
            assert_eq!(default.check(foreign.as_bytes()), HostVerdict::Foreign);
        }
        assert_eq!(
            AllowedHosts::default().check(b"metrics.example.org"),
            HostVerdict::Foreign
        );
        for invalid in [
            "a b",
            "::1",
            "[::1",
            "[::1]x",
            "[::1]:x",
            "[fe80::1%25eth0]",
            "[not-ip]",
            "host:port",
            "host:1:2",
            "h\u{e9}",
            "a/b",
            "a@b",
        ] {
            assert_eq!(
                hosts.check(invalid.as_bytes()),
                HostVerdict::Invalid,
                "{invalid}"
            );
        }
    }

    // In a request: a foreign Host is a 421 that closes, whatever the
    // path; HTTP/1.1 without Host or with two is a 400; HTTP/1.0 without
    // Host is served.
    #[test]
    fn host_header_decides_before_the_route() {
        let req = complete(b"GET /stats.json HTTP/1.1\r\nHost: rebind.attacker.example\r\n\r\n");
        assert_eq!(req.outcome, Err(Status::Misdirected));
        assert!(!req.keep_alive);
        let req = complete(b"HEAD /nope HTTP/1.1\r\nhost: evil.example:80\r\n\r\n");
        assert_eq!(req.outcome, Err(Status::Misdirected));
        let req = complete(b"GET /stats.json HTTP/1.1\r\n\r\n");
        assert_eq!(req.outcome, Err(Status::BadRequest));
        let req = complete(b"GET / HTTP/1.1\r\nHost: localhost\r\nHost: localhost\r\n\r\n");
        assert_eq!(req.outcome, Err(Status::BadRequest));
        assert_eq!(
            complete(b"GET /healthz HTTP/1.0\r\n\r\n").outcome,
            Ok(Route::Health)
        );
        assert_eq!(
            complete(b"GET /healthz HTTP/1.0\r\nHost: evil.example\r\n\r\n").outcome,
            Err(Status::Misdirected)
        );
        let names = ["evil.example".to_string()];
        let Parse::Complete(req) = parse(
            b"GET /stats.json HTTP/1.1\r\nHost: evil.example\r\n\r\n",
            AllowedHosts::new(&names),
        ) else {
            panic!("partial")
        };
        assert_eq!(req.outcome, Ok(Route::StatsJson));
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
