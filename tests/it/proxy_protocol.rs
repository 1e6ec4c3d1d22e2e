//! `--proxy-protocol` (issue 21): PROXY v1 and v2 headers written by the
//! test as a load balancer would, the client they name in the logs and
//! the admission checks, and the connections closed for a bad or late one.

use std::io::Write;
use std::net::SocketAddr;
use std::thread;
use std::time::{Duration, Instant};

use crate::admission::connect_from;
use crate::support::endpoint::{self, get};
use crate::support::*;

const WAIT: Duration = Duration::from_secs(10);
/// The server logs at most one REJECT line per second (the rest are
/// counted); tests that check each line wait this long between refusals.
const REJECT_INTERVAL: Duration = Duration::from_millis(1100);
const SIGNATURE: &[u8; 12] = b"\r\n\r\n\0\r\nQUIT\n";

/// A v2 PROXY header for a TCP connection from `src` to `dst`.
fn v2(src: SocketAddr, dst: SocketAddr) -> Vec<u8> {
    let mut h = SIGNATURE.to_vec();
    h.push(0x21);
    let (family, addrs): (u8, Vec<u8>) = match (src, dst) {
        (SocketAddr::V4(s), SocketAddr::V4(d)) => {
            (0x11, [s.ip().octets(), d.ip().octets()].concat())
        }
        (SocketAddr::V6(s), SocketAddr::V6(d)) => {
            (0x21, [s.ip().octets(), d.ip().octets()].concat())
        }
        _ => panic!("mixed families"),
    };
    h.push(family);
    // A TLV the server must step over (PP2_TYPE_NOOP, 3 bytes).
    let tlv = [0x04, 0x00, 0x03, 1, 2, 3];
    let len = addrs.len() + 4 + tlv.len();
    h.extend_from_slice(&(len as u16).to_be_bytes());
    h.extend_from_slice(&addrs);
    h.extend_from_slice(&src.port().to_be_bytes());
    h.extend_from_slice(&dst.port().to_be_bytes());
    h.extend_from_slice(&tlv);
    h
}

/// The CONNECT line of a client `source` reached through `via`.
fn connect_line(srv: &Server, source: &str, via: SocketAddr) -> String {
    srv.wait_for(&format!("[CONNECT] {source} (via {via})"), WAIT)
}

#[test]
fn v1_header_names_the_client_and_is_never_echoed() {
    // Proves: a v1 header and data in one write: only the data comes back,
    // and the CONNECT and DISCONNECT lines name the client of the header.
    let srv = Server::start(&["--proxy-protocol"]);
    let mut c = connect(srv.addr());
    let via = c.local_addr().unwrap();
    c.write_all(b"PROXY TCP4 192.0.2.1 198.51.100.1 56324 7878\r\nhello behind a proxy\n")
        .unwrap();
    assert_eq!(read_exactly(&mut c, 21), b"hello behind a proxy\n");
    connect_line(&srv, "192.0.2.1:56324", via);
    echo_roundtrip(&mut c, b"and more\n");
    drop(c);
    let d = srv.wait_disconnect("192.0.2.1:56324".parse().unwrap(), WAIT);
    assert_eq!((d.rx, d.tx), (30, 30), "header bytes counted as data");
}

#[test]
fn v2_header_split_across_many_writes() {
    // Proves: a v2 header (IPv6, with a TLV) sent a byte at a time is read
    // whole; the bytes after it are the client's, echoed.
    let srv = Server::start(&["--proxy-protocol"]);
    let mut c = connect(srv.addr());
    let via = c.local_addr().unwrap();
    let header = v2(
        "[2001:db8::7]:4000".parse().unwrap(),
        "[2001:db8::1]:7878".parse().unwrap(),
    );
    for byte in &header {
        c.write_all(&[*byte]).unwrap();
        thread::sleep(Duration::from_millis(2));
    }
    echo_roundtrip(&mut c, b"split header\n");
    connect_line(&srv, "[2001:db8::7]:4000", via);
}

#[test]
fn local_command_is_served_as_the_direct_peer() {
    // Proves: a v2 LOCAL header (a load balancer's health check) is served
    // as coming from the socket's own peer.
    let srv = Server::start(&["--proxy-protocol"]);
    let mut c = connect(srv.addr());
    let me = c.local_addr().unwrap();
    let mut local = SIGNATURE.to_vec();
    local.extend_from_slice(&[0x20, 0x00, 0x00, 0x00]);
    c.write_all(&local).unwrap();
    echo_roundtrip(&mut c, b"health check\n");
    srv.wait_for_line(
        |l| l.contains("[CONNECT]") && l.contains(&me.to_string()),
        WAIT,
    );
}

#[test]
fn bad_and_missing_headers_are_closed_and_counted() {
    // Proves: no header (plain data), garbage after a v1 prefix, and a
    // client that closes mid-header are each closed at once without an
    // echo, logged as REJECT with the reason and counted in /metrics.
    let (srv, metrics) = endpoint::start(&["--proxy-protocol"]);
    for (bytes, half_close) in [
        (&b"hello, no header\n"[..], false),
        (b"PROXY TCP4 not-an-address\r\n", false),
        (b"PROXY TCP4 192.0.2.1 ", true),
    ] {
        let mut c = connect(srv.addr());
        let me = c.local_addr().unwrap();
        c.write_all(bytes).unwrap();
        if half_close {
            shutdown_write(&c);
        }
        expect_closed(&mut c, WAIT);
        let line = srv.wait_for(&format!("[REJECT] {me} (PROXY header: "), WAIT);
        assert!(!line.contains("within"), "{line}");
        // The next REJECT line would be held back for a second.
        thread::sleep(REJECT_INTERVAL);
    }
    assert!(srv.events("CONNECT").is_empty(), "{}", srv.dump());
    let body = get(metrics, "/metrics").text();
    assert!(
        body.contains("echo_connections_rejected_total{reason=\"proxy_header\"} 3\n"),
        "{body}"
    );
}

#[test]
fn late_header_is_closed_at_the_deadline() {
    // Proves: a client that sends part of a header and then nothing, and
    // one that sends nothing at all, are closed once --proxy-timeout has
    // passed (not before), logged with the reason and counted.
    let (srv, metrics) = endpoint::start(&["--proxy-protocol", "--proxy-timeout", "0.5"]);
    for partial in [&b"PROXY TCP4 192.0.2.1"[..], b""] {
        let started = Instant::now();
        let mut c = connect(srv.addr());
        c.write_all(partial).unwrap();
        let me = c.local_addr().unwrap();
        expect_closed(&mut c, WAIT);
        assert!(started.elapsed() >= Duration::from_millis(500));
        srv.wait_for(
            &format!("[REJECT] {me} (no PROXY header within 0.5s)"),
            WAIT,
        );
        thread::sleep(REJECT_INTERVAL);
    }
    let body = get(metrics, "/metrics").text();
    assert!(
        body.contains("echo_connections_rejected_total{reason=\"proxy_timeout\"} 2\n"),
        "{body}"
    );
}

#[test]
fn allow_and_per_source_limits_judge_the_real_client() {
    // Proves: --allow and --max-per-source look at the client the header
    // names, not at the proxy: the same proxy address is refused for one
    // client and served for another.
    let srv = Server::start(&[
        "--proxy-protocol",
        "--allow",
        "192.0.2.0/24",
        "--max-per-source",
        "1",
    ]);
    let header = |src: &str| format!("PROXY TCP4 {src} 198.51.100.1 1000 7878\r\n");
    let mut first = connect_from("127.0.0.1", srv.addr());
    first.write_all(header("192.0.2.1").as_bytes()).unwrap();
    echo_roundtrip(&mut first, b"first\n");
    // Same client again: over its limit of one.
    let mut again = connect_from("127.0.0.1", srv.addr());
    again.write_all(header("192.0.2.1").as_bytes()).unwrap();
    expect_closed(&mut again, WAIT);
    srv.wait_for("[REJECT] 192.0.2.1:1000 (over --max-per-source 1)", WAIT);
    thread::sleep(REJECT_INTERVAL);
    // Another client through the same proxy: served.
    let mut other = connect_from("127.0.0.1", srv.addr());
    other.write_all(header("192.0.2.2").as_bytes()).unwrap();
    echo_roundtrip(&mut other, b"other\n");
    // A client outside --allow, though the proxy itself is loopback.
    let mut outside = connect_from("127.0.0.1", srv.addr());
    outside.write_all(header("203.0.113.9").as_bytes()).unwrap();
    expect_closed(&mut outside, WAIT);
    srv.wait_for("[REJECT] 203.0.113.9:1000 (not allowed by --allow)", WAIT);
}

#[test]
fn framed_greeting_waits_for_the_header() {
    // Proves: in --mode framed the `*` greeting is sent only after the
    // header, so a proxy that sends the header first sees the greeting as
    // the first byte of the client's stream.
    let srv = Server::start(&["--proxy-protocol", "--mode", "framed"]);
    let mut c = connect(srv.addr());
    c.set_read_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    let mut buf = [0u8; 8];
    let early = std::io::Read::read(&mut c, &mut buf);
    assert!(early.is_err(), "greeting before the header: {early:?}");
    c.set_read_timeout(Some(WAIT)).unwrap();
    c.write_all(b"PROXY TCP4 192.0.2.1 198.51.100.1 5 7878\r\n")
        .unwrap();
    assert_eq!(read_exactly(&mut c, 1), b"*");
}
