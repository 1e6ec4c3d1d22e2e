//! A request head: parsed with httparse, checked (body, `Host`, method,
//! size) and reduced to the route or the error status to answer with.

use super::host::{AllowedHosts, HostVerdict};
use super::response::Status;

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
    /// `GET /favicon.ico`: the icon browsers ask for.
    Favicon,
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
/// (Example: the test `a_request_parses_routes_and_checks_its_host`.)
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
        "/favicon.ico" => Ok(Route::Favicon),
        _ => Err(Status::NotFound),
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
        assert_eq!(get("/favicon.ico").outcome, Ok(Route::Favicon));
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
}

#[cfg(test)]
mod example {
    // The example the docs above point to.
    #[test]
    fn a_request_parses_routes_and_checks_its_host() {
        use crate::logic::http::{parse, AllowedHosts, Parse, Route, Status};
        let hosts = AllowedHosts::default();
        let get = |raw: &[u8]| match parse(raw, hosts) {
            Parse::Complete(req) => req,
            Parse::Partial => panic!(),
        };
        let req = get(b"GET /metrics HTTP/1.1\r\nHost: 127.0.0.1:9187\r\n\r\n");
        assert_eq!(req.outcome, Ok(Route::Metrics));
        assert!(req.keep_alive);
        let req = get(b"GET /metrics HTTP/1.1\r\nHost: rebind.example\r\n\r\n");
        assert_eq!(req.outcome, Err(Status::Misdirected));
        assert_eq!(parse(b"GET /metr", hosts), Parse::Partial);
    }
}
