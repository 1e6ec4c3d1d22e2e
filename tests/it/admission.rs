//! Who may connect (issue 21): `--allow` and `--max-per-source`, from
//! 127.0.0.1 and 127.0.0.2 (both loopback), with the REJECT lines and the
//! counts by reason in /metrics.

use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use socket2::{Domain, Socket, Type};

use crate::support::endpoint::{self, get};
use crate::support::*;

const WAIT: Duration = Duration::from_secs(10);

/// A client connected to `to` from the loopback address `from`.
pub fn connect_from(from: &str, to: SocketAddr) -> TcpStream {
    let socket = Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
    let local: SocketAddr = format!("{from}:0").parse().unwrap();
    socket
        .bind(&local.into())
        .expect("bind the client to its loopback address");
    socket.connect_timeout(&to.into(), WAIT).expect("connect");
    let s: TcpStream = socket.into();
    s.set_read_timeout(Some(WAIT)).unwrap();
    s.set_write_timeout(Some(WAIT)).unwrap();
    s
}

/// The value of `name{reason="reason"}` in a /metrics body.
fn rejected(body: &str, reason: &str) -> u64 {
    let prefix = format!("echo_connections_rejected_total{{reason=\"{reason}\"}} ");
    body.lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .unwrap_or_else(|| panic!("no {prefix} in:\n{body}"))
        .parse()
        .unwrap()
}

#[test]
fn allow_list_admits_only_its_networks() {
    // Proves: with --allow 127.0.0.1/32 a client from 127.0.0.1 is echoed
    // and one from 127.0.0.2 is closed at once without a byte, logged as
    // REJECT with the reason and counted as not_allowed in /metrics.
    let (srv, metrics) = endpoint::start(&["--allow", "127.0.0.1/32"]);
    let mut ok = connect_from("127.0.0.1", srv.addr());
    echo_roundtrip(&mut ok, b"allowed\n");
    let mut refused = connect_from("127.0.0.2", srv.addr());
    let local = refused.local_addr().unwrap();
    let _ = std::io::Write::write_all(&mut refused, b"let me in\n");
    expect_closed(&mut refused, WAIT);
    srv.wait_for(&format!("[REJECT] {local} (not allowed by --allow)"), WAIT);
    assert!(
        !srv.lines()
            .iter()
            .any(|l| l.contains(&format!("[CONNECT] {local}"))),
        "{}",
        srv.dump()
    );
    let body = get(metrics, "/metrics").text();
    assert_eq!(rejected(&body, "not_allowed"), 1, "{body}");
    assert_eq!(rejected(&body, "limit"), 0, "{body}");
    echo_roundtrip(&mut ok, b"still served\n");
}

#[test]
fn per_source_limit_caps_one_address_only() {
    // Proves: --max-per-source 2 refuses a third connection from 127.0.0.1
    // (REJECT with the reason, counted), serves 127.0.0.2 meanwhile, and
    // admits 127.0.0.1 again once one of its connections closed.
    let (srv, metrics) = endpoint::start(&["--max-per-source", "2"]);
    let mut a1 = connect_from("127.0.0.1", srv.addr());
    let mut a2 = connect_from("127.0.0.1", srv.addr());
    echo_roundtrip(&mut a1, b"one\n");
    echo_roundtrip(&mut a2, b"two\n");
    let mut a3 = connect_from("127.0.0.1", srv.addr());
    let third = a3.local_addr().unwrap();
    expect_closed(&mut a3, WAIT);
    srv.wait_for(&format!("[REJECT] {third} (over --max-per-source 2)"), WAIT);
    let mut b = connect_from("127.0.0.2", srv.addr());
    echo_roundtrip(&mut b, b"other source\n");
    let gone = a1.local_addr().unwrap();
    drop(a1);
    srv.wait_disconnect(gone, WAIT);
    let mut a4 = connect_from("127.0.0.1", srv.addr());
    echo_roundtrip(&mut a4, b"room again\n");
    let body = get(metrics, "/metrics").text();
    assert_eq!(rejected(&body, "per_source_limit"), 1, "{body}");
}

#[test]
fn refusals_are_rate_limited_and_every_one_accounted() {
    // Proves: a burst of refused connections logs at most a few REJECT
    // lines, whose counts (the line itself plus its "N more") add up to
    // every refusal, and /metrics counts them all.
    let _turn = one_at_a_time();
    let (mut srv, metrics) = endpoint::start(&["--allow", "127.0.0.1"]);
    const N: u64 = 40;
    for _ in 0..N {
        let mut c = connect_from("127.0.0.2", srv.addr());
        expect_closed(&mut c, WAIT);
    }
    let body = get(metrics, "/metrics").text();
    assert_eq!(rejected(&body, "not_allowed"), N, "{body}");
    let exit = srv.stop("INT", WAIT);
    let lines = events(&exit.stdout, "REJECT");
    assert!(lines.len() < 10, "not rate-limited:\n{}", exit.describe());
    let accounted: u64 = lines
        .iter()
        .map(|l| {
            let d = &l.details;
            if let Some((n, _)) = d.split_once(" more connection(s) rejected since the last report")
            {
                n.parse::<u64>().unwrap()
            } else {
                rejects_in(d)
            }
        })
        .sum();
    assert_eq!(accounted, N, "{}", exit.describe());
}
