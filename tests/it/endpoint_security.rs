//! The metrics endpoint against the real binary: it answers only requests
//! whose `Host` names it (DNS rebinding), and a client over its connection
//! limit reads a `503` instead of meeting a reset (issue 16, points 3 and
//! 8c).

use crate::support::endpoint::{get, metric, read_reply, start};
use crate::support::*;
use echo_server::server::MAX_HTTP_CONNECTIONS;
use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

/// GET `path` with the given `Host` header (none when `None`) on a new
/// connection; the reply and whether the server closed after it.
fn get_as(
    addr: SocketAddr,
    path: &str,
    host: Option<&str>,
) -> (crate::support::endpoint::Reply, bool) {
    let mut s = connect(addr);
    let host = host.map_or(String::new(), |h| format!("Host: {h}\r\n"));
    write!(s, "GET {path} HTTP/1.1\r\n{host}\r\n").unwrap();
    let reply = read_reply(&mut s);
    let closed = reply
        .headers
        .get("connection")
        .is_some_and(|v| v == "close")
        && expect_closed(&mut s, Duration::from_secs(5)) == Closed::Eof;
    (reply, closed)
}

#[test]
fn requests_for_other_hosts_get_421_without_client_addresses() {
    // Proves: with an echo client connected, a request for /stats.json
    // with `Host: rebind.attacker.example` (what a DNS-rebinding page
    // sends) gets 421 naming --metrics-allow-host, no client address, and
    // a close, and the 421s are counted in /metrics; the endpoint's own
    // address, `[::1]` and other IP literals, and localhost names get 200
    // with the list; HTTP/1.1 without Host is a 400.
    let (srv, maddr) = start(&[]);
    let mut echo = connect(srv.addr());
    echo_roundtrip(&mut echo, b"visible to the endpoint");
    let client = echo.local_addr().unwrap().to_string();

    let port = maddr.port();
    for host in [
        "rebind.attacker.example".to_string(),
        format!("rebind.attacker.example:{port}"),
        format!("localhost.attacker.example:{port}"),
        "metrics.example.test".to_string(),
    ] {
        for path in ["/stats.json", "/metrics", "/"] {
            let (reply, closed) = get_as(maddr, path, Some(&host));
            let body = reply.text();
            assert_eq!(reply.status, 421, "{host} {path}: {body}");
            assert!(body.contains("--metrics-allow-host"), "{body}");
            assert!(!body.contains(&client) && !body.contains("127.0.0.1"));
            assert!(closed, "{host} {path}: not closed after the 421");
        }
    }
    let (reply, _) = get_as(maddr, "/stats.json", None);
    assert_eq!(reply.status, 400, "HTTP/1.1 without Host");

    for host in [
        format!("127.0.0.1:{port}"),
        "127.0.0.1".to_string(),
        format!("[::1]:{port}"),
        "[::1]".to_string(),
        "192.0.2.7:80".to_string(),
        format!("localhost:{port}"),
        "LocalHost".to_string(),
        "dashboard.localhost".to_string(),
    ] {
        let (reply, closed) = get_as(maddr, "/stats.json", Some(&host));
        assert_eq!(reply.status, 200, "{host}: {}", reply.text());
        assert!(reply.text().contains(&client), "{host}");
        assert!(!closed, "{host}: closed after a 200");
    }
    // Twelve 421s, counted (and the 400).
    assert_eq!(metric(maddr, "echo_http_requests_total{code=\"421\"}"), 12);
    assert_eq!(metric(maddr, "echo_http_requests_total{code=\"400\"}"), 1);
}

#[test]
fn allow_host_names_are_answered() {
    // Proves: a name given with --metrics-allow-host (any case, with or
    // without the port) is answered 200 with the client list; other names
    // still get 421.
    let (srv, maddr) = start(&[
        "--metrics-allow-host",
        "Metrics.Example.test",
        "--metrics-allow-host",
        "box.lan",
    ]);
    let mut echo = connect(srv.addr());
    echo_roundtrip(&mut echo, b"listed");
    let client = echo.local_addr().unwrap().to_string();
    let port = maddr.port();
    for host in [
        "metrics.example.test".to_string(),
        format!("METRICS.example.test:{port}"),
        format!("box.lan:{port}"),
    ] {
        let (reply, _) = get_as(maddr, "/stats.json", Some(&host));
        assert_eq!(reply.status, 200, "{host}: {}", reply.text());
        assert!(reply.text().contains(&client), "{host}");
    }
    let (reply, _) = get_as(maddr, "/stats.json", Some("rebind.attacker.example"));
    assert_eq!(reply.status, 421);
}

#[test]
fn bad_allow_host_is_a_usage_error() {
    // Proves: a name with a port is refused with exit code 2 and a message
    // naming the option, before anything listens.
    let exit = run_to_exit(
        &[
            "--metrics",
            "127.0.0.1:0",
            "--metrics-allow-host",
            "host:9187",
        ],
        Duration::from_secs(10),
    );
    assert_eq!(exit.code(), Some(2), "{}", exit.describe());
    assert!(
        exit.stderr.contains("--metrics-allow-host") && exit.stderr.contains("without a port"),
        "{}",
        exit.describe()
    );
}

/// Reads until the server closes; panics on a reset or a timeout (what
/// an over-limit client met before: its request destroyed by an RST).
fn read_answer(mut s: impl Read, what: &str) -> String {
    let mut got = Vec::new();
    let mut chunk = [0u8; 1024];
    loop {
        match s.read(&mut chunk) {
            Ok(0) => return String::from_utf8_lossy(&got).into_owned(),
            Ok(n) => got.extend_from_slice(&chunk[..n]),
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => panic!(
                "{what}: {e} after {:?}",
                String::from_utf8_lossy(&got).into_owned()
            ),
        }
    }
}

fn assert_503(answer: &str, what: &str) {
    assert!(
        answer.starts_with("HTTP/1.1 503 Service Unavailable\r\n"),
        "{what}: {answer:?}"
    );
    assert!(
        answer.contains("\r\nRetry-After: 1\r\n"),
        "{what}: {answer}"
    );
    assert!(
        answer.contains("\r\nConnection: close\r\n"),
        "{what}: {answer}"
    );
}

#[test]
fn clients_over_the_limit_read_503_not_a_reset() {
    // Proves: with MAX_HTTP_CONNECTIONS idle endpoint clients open, one
    // more that sends a request reads `503 Service Unavailable` with
    // `Retry-After: 1` and `Connection: close`, then EOF (the server used
    // to drop it: a reset, or EOF with no answer); so do 100 more that send
    // nothing and never close, beyond the server's room to linger; the
    // refusals are counted in /metrics and /stats.json, and the endpoint
    // serves again once clients leave.
    const EXTRA: usize = 100;
    let want = (MAX_HTTP_CONNECTIONS + EXTRA) as u64 + 200;
    if raise_nofile(want) < want {
        skip(
            "clients_over_the_limit_read_503_not_a_reset",
            "not enough file descriptors",
        );
        return;
    }
    let (_srv, maddr) = start(&["-q"]);
    let started = Instant::now();
    // Accepted in order: these take every slot before the next arrives.
    let mut idle: Vec<TcpStream> = (0..MAX_HTTP_CONNECTIONS).map(|_| connect(maddr)).collect();
    let mut over = connect(maddr);
    over.write_all(b"GET /stats.json HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        .unwrap();
    let answer = read_answer(&mut over, "over-limit client with a request");
    // The idle ones hold their slots for the server's 5 s HTTP timeout.
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "too slow to fill the slots ({:?}): the idle clients may have timed out",
        started.elapsed()
    );
    assert_503(&answer, "over-limit client with a request");
    assert!(answer.ends_with("retry shortly.\n"), "{answer}");

    let silent: Vec<TcpStream> = (0..EXTRA).map(|_| connect(maddr)).collect();
    for (i, s) in silent.iter().enumerate() {
        let answer = read_answer(s, &format!("silent over-limit client {i}"));
        assert_503(&answer, &format!("silent over-limit client {i}"));
    }

    // Room again: the endpoint answers (a scrape that still finds no room
    // is refused and counted too).
    idle.truncate(MAX_HTTP_CONNECTIONS - 8);
    let mut refused_scrapes = 0;
    let mut stats = None;
    assert!(wait_until(Duration::from_secs(10), || {
        let reply = get(maddr, "/stats.json");
        match reply.status {
            503 => refused_scrapes += 1,
            200 => stats = Some(reply.text()),
            other => panic!("scrape answered {other}"),
        }
        stats.is_some()
    }));
    let stats: serde_json::Value = serde_json::from_str(&stats.unwrap()).unwrap();
    let refused = (1 + EXTRA + refused_scrapes) as u64;
    assert_eq!(stats["http"]["rejected"], refused, "{stats}");
    let rejected = metric(
        maddr,
        "echo_http_connections_rejected_total{reason=\"limit\"}",
    );
    assert_eq!(rejected, refused, "counted in /metrics");
    let active = metric(maddr, "echo_http_connections_active");
    assert!(
        active <= MAX_HTTP_CONNECTIONS as u64,
        "{active} endpoint connections served at once"
    );
    drop(silent);
    drop(idle);
}

#[test]
fn refused_client_sending_a_large_request_still_reads_503() {
    // Proves: an over-limit client whose request is still arriving when
    // the server answers (several KiB of headers, sent after the 503 was
    // written) reads the whole 503 and EOF, and its connection is not
    // reset: the server reads and drops its input until it closes.
    let want = MAX_HTTP_CONNECTIONS as u64 + 200;
    if raise_nofile(want) < want {
        skip(
            "refused_client_sending_a_large_request_still_reads_503",
            "not enough file descriptors",
        );
        return;
    }
    let (_srv, maddr) = start(&["-q"]);
    let _idle: Vec<TcpStream> = (0..MAX_HTTP_CONNECTIONS).map(|_| connect(maddr)).collect();
    let mut over = connect(maddr);
    // Let the server accept it and send the 503 before the request comes.
    let mut first = [0u8; 12];
    over.read_exact(&mut first).unwrap();
    assert_eq!(&first, b"HTTP/1.1 503");
    let mut request = b"GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\n".to_vec();
    for i in 0..100 {
        request.extend_from_slice(format!("X-Pad-{i}: {}\r\n", "p".repeat(60)).as_bytes());
    }
    request.extend_from_slice(b"\r\n");
    // The server may already have closed its side for writing; our data
    // is still read (and dropped) by it.
    over.write_all(&request).unwrap();
    let rest = read_answer(&mut over, "over-limit client after its request");
    assert_503(&format!("HTTP/1.1 503{rest}"), "over-limit client");
    // The server is still reading (and dropping) what the client sends
    // rather than having closed with the request unread, which would have
    // answered it with a reset: a later write still goes through.
    std::thread::sleep(Duration::from_millis(200));
    over.write_all(b"\r\n")
        .expect("the refused connection was reset");
}
