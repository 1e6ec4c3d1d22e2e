//! Bytes of other protocols, and none at all, sent to the plain echo port:
//! each is echoed exactly and nothing else.

use crate::support::*;
use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::time::Duration;

/// Telnet option negotiation a real client opens with (RFC 854/855):
/// IAC DO/WILL/WONT/DONT, a terminal-type subnegotiation, IAC IAC (a literal
/// 0xFF), Are-You-There, and a bare IAC at the very end.
fn telnet_negotiation() -> Vec<u8> {
    const IAC: u8 = 255;
    const SB: u8 = 250;
    const SE: u8 = 240;
    const WILL: u8 = 251;
    const WONT: u8 = 252;
    const DO: u8 = 253;
    const DONT: u8 = 254;
    const AYT: u8 = 246;
    let mut v = vec![
        IAC, DO, 1, IAC, WILL, 3, IAC, DO, 3, IAC, WILL, 24, IAC, WONT, 31, IAC, DONT, 5,
    ];
    v.extend([IAC, SB, 24, 0]);
    v.extend(b"XTERM-256COLOR");
    v.extend([
        IAC, SE, b'h', b'i', IAC, IAC, b'\r', 0, IAC, AYT, b'\r', b'\n', IAC,
    ]);
    v
}

/// A TLS 1.3 ClientHello record as a browser would send it first: SNI,
/// supported versions and groups, a key share, signature algorithms.
fn tls_client_hello() -> Vec<u8> {
    fn with_len16(body: &[u8]) -> Vec<u8> {
        let mut v = (body.len() as u16).to_be_bytes().to_vec();
        v.extend_from_slice(body);
        v
    }
    fn extension(kind: u16, body: &[u8]) -> Vec<u8> {
        let mut v = kind.to_be_bytes().to_vec();
        v.extend(with_len16(body));
        v
    }
    let mut rng = Rng::new(0x7153);
    let mut sni = vec![0];
    sni.extend(with_len16(b"echo.example"));
    let mut extensions = extension(0, &with_len16(&sni));
    extensions.extend(extension(0x2b, &[2, 3, 4]));
    extensions.extend(extension(0x0a, &with_len16(&[0, 0x1d, 0, 0x17])));
    let mut share = vec![0, 0x1d];
    share.extend(with_len16(&rng.bytes(32)));
    extensions.extend(extension(0x33, &with_len16(&share)));
    extensions.extend(extension(0x0d, &with_len16(&[4, 3, 8, 4, 4, 1])));
    let mut hello = vec![3, 3];
    hello.extend(rng.bytes(32));
    hello.push(32);
    hello.extend(rng.bytes(32));
    hello.extend(with_len16(&[0x13, 1, 0x13, 2, 0x13, 3]));
    hello.extend([1, 0]);
    hello.extend(with_len16(&extensions));
    let mut handshake = vec![1];
    handshake.extend(&(hello.len() as u32).to_be_bytes()[1..]);
    handshake.extend(hello);
    let mut record = vec![0x16, 3, 1];
    record.extend(with_len16(&handshake));
    record
}

/// Sends `payload` in writes of `chunk` bytes, checks that exactly it comes
/// back and nothing more (not even after a pause), then half-closes and
/// expects a clean EOF.
fn echoes_exactly(srv: &Server, name: &str, payload: &[u8], chunk: usize) -> TcpStream {
    let mut c = connect(srv.addr());
    let mut w = c.try_clone().unwrap();
    let data = payload.to_vec();
    let writer = std::thread::spawn(move || {
        for part in data.chunks(chunk.max(1)) {
            w.write_all(part).expect("write");
        }
    });
    let got = read_exactly(&mut c, payload.len());
    writer.join().unwrap();
    assert_same(&got, payload, name);
    c.set_read_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    let mut extra = [0u8; 64];
    match c.read(&mut extra) {
        Err(e) if e.kind() == ErrorKind::WouldBlock || e.kind() == ErrorKind::TimedOut => {}
        other => panic!("{name}: after the echo, expected silence, got {other:?}"),
    }
    c.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    shutdown_write(&c);
    assert!(
        read_to_eof(&mut c).is_empty(),
        "{name}: bytes after the echo"
    );
    c
}

#[test]
fn other_protocols_and_random_bytes_are_echoed_and_nothing_else() {
    // Proves: random binary data (every byte value, NULs, 0xFF runs), telnet
    // IAC negotiation (sent whole and byte by byte), a TLS ClientHello, an
    // HTTP request, an HTTP/2 preface, an SSH banner and a PROXY v2 header
    // are each echoed back exactly, nothing else is sent, the connection is
    // not closed by the server, and the server logs only CONNECT and
    // DISCONNECT (`peer closed`, RX = TX = the size) for them: no error, no
    // warning, nothing on stderr.
    let mut srv = Server::start(&[]);
    let mut all_bytes: Vec<u8> = (0..=255u8).collect();
    all_bytes.extend([0; 100]);
    all_bytes.extend([0xFF; 100]);
    all_bytes.extend(Rng::new(10).bytes(1 << 20));
    let mut proxy_v2 = b"\r\n\r\n\0\r\nQUIT\n".to_vec();
    proxy_v2.extend([
        0x21, 0x11, 0, 12, 127, 0, 0, 1, 127, 0, 0, 1, 0x1f, 0x90, 0x1f, 0x91,
    ]);
    let cases: Vec<(&str, Vec<u8>, usize)> = vec![
        ("random 1 MiB", all_bytes, 7_777),
        ("telnet IAC negotiation", telnet_negotiation(), usize::MAX),
        ("telnet IAC byte by byte", telnet_negotiation(), 1),
        ("TLS ClientHello", tls_client_hello(), usize::MAX),
        (
            "HTTP request",
            b"GET / HTTP/1.1\r\nHost: x\r\n\r\n".to_vec(),
            usize::MAX,
        ),
        (
            "HTTP/2 preface",
            b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec(),
            usize::MAX,
        ),
        (
            "SSH banner",
            b"SSH-2.0-OpenSSH_9.6\r\n".to_vec(),
            usize::MAX,
        ),
        ("PROXY v2 header", proxy_v2, usize::MAX),
    ];
    for (name, payload, chunk) in &cases {
        let c = echoes_exactly(&srv, name, payload, *chunk);
        let d = srv.wait_disconnect(c.local_addr().unwrap(), Duration::from_secs(5));
        let n = payload.len() as u64;
        assert_eq!(
            (d.rx, d.tx, d.reason.as_str()),
            (n, n, "peer closed"),
            "{name}"
        );
        eprintln!("garbage: {name}: {n} bytes echoed exactly, then EOF");
    }
    let exit = srv.stop("INT", Duration::from_secs(10));
    assert_eq!(exit.code(), Some(0), "{}", exit.describe());
    assert!(exit.stderr.is_empty(), "stderr: {}", exit.stderr);
    let unexpected: Vec<&String> = exit
        .stdout
        .iter()
        .filter_map(|l| parse_log(l).map(|log| (l, log)))
        .filter(|(_, log)| {
            !["CONNECT", "DISCONNECT", "LIMIT", "SHUTDOWN"].contains(&log.event.as_str())
        })
        .map(|(l, _)| l)
        .collect();
    assert!(
        unexpected.is_empty(),
        "unexpected log lines: {unexpected:?}"
    );
    let s = summary_of(&exit);
    let total: u64 = cases.iter().map(|(_, p, _)| p.len() as u64).sum();
    assert_eq!(
        (s.served, s.bytes_in, s.bytes_out),
        (cases.len() as u64, total, total)
    );
}
