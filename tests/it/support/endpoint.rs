//! Shared by the endpoint tests: a server with `--metrics` on an ephemeral
//! loopback port, and reading its HTTP answers.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};

use super::{connect, read_exactly, Server, START_TIMEOUT};

/// Starts a server with the endpoint on an ephemeral loopback port; returns
/// it and the endpoint's address from the `Metrics on http://…/` line.
pub fn start(extra: &[&str]) -> (Server, SocketAddr) {
    let mut args = vec!["--metrics", "127.0.0.1:0"];
    args.extend_from_slice(extra);
    let srv = Server::start(&args);
    let line = srv.wait_for("Metrics on http://", START_TIMEOUT);
    let addr = line
        .trim_start_matches("Metrics on http://")
        .split('/')
        .next()
        .unwrap()
        .parse()
        .unwrap_or_else(|e| panic!("metrics address in {line:?}: {e}"));
    (srv, addr)
}

/// One HTTP response: status, lower-cased headers, body.
pub struct Reply {
    pub status: u16,
    pub headers: HashMap<String, String>,
    pub body: Vec<u8>,
}

impl Reply {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// Reads one response (with Content-Length) from `s`.
pub fn read_reply(s: &mut TcpStream) -> Reply {
    let mut raw = Vec::new();
    let mut byte = [0u8; 1];
    while !raw.ends_with(b"\r\n\r\n") {
        assert!(raw.len() < 16 * 1024, "response head too long");
        match s.read(&mut byte) {
            Ok(1) => raw.push(byte[0]),
            other => panic!("response head cut short ({other:?}): {raw:?}"),
        }
    }
    let head = String::from_utf8(raw).expect("ASCII head");
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap();
    let status = status_line
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("status line {status_line:?}"));
    let headers: HashMap<String, String> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let len: usize = headers["content-length"].parse().unwrap();
    let body = read_exactly(s, len);
    Reply {
        status,
        headers,
        body,
    }
}

/// GET `path` on a new connection.
pub fn get(addr: SocketAddr, path: &str) -> Reply {
    let mut s = connect(addr);
    write!(s, "GET {path} HTTP/1.1\r\nHost: {addr}\r\n\r\n").unwrap();
    read_reply(&mut s)
}

/// The value of the sample line `name` (with its labels) in `/metrics`.
pub fn metric(addr: SocketAddr, name: &str) -> u64 {
    let text = get(addr, "/metrics").text();
    let line = text
        .lines()
        .find(|l| l.strip_prefix(name).is_some_and(|v| v.starts_with(' ')))
        .unwrap_or_else(|| panic!("no {name} in /metrics:\n{text}"));
    line[name.len()..].trim().parse().unwrap()
}
