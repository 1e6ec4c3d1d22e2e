//! Idle timeout: idle clients are closed on time, active ones are not, 0 disables it.
mod common;

use common::*;
use std::io::Write;
use std::thread;
use std::time::{Duration, Instant};

/// One tick (0.1 s) plus generous scheduling slack for a shared machine.
const LATE_SLACK: Duration = Duration::from_millis(700);

/// Sends one byte, reads it back, then measures when the server closes the idle connection.
/// Returns (client addr, time from the last send to the close, time from the echo to the close).
fn idle_close(srv: &Server, timeout: Duration) -> (std::net::SocketAddr, Duration, Duration) {
    let mut c = connect(srv.addr());
    let local = c.local_addr().unwrap();
    let t_send = Instant::now();
    c.write_all(b"x").unwrap();
    let got = read_exactly(&mut c, 1);
    let t_echo = Instant::now();
    assert_eq!(got, b"x");
    let how = expect_closed(&mut c, timeout + Duration::from_secs(5));
    let t_close = Instant::now();
    assert_eq!(how, Closed::Eof, "idle close should be an orderly FIN");
    (local, t_close - t_send, t_close - t_echo)
}

#[test]
fn idle_connection_is_closed_on_time_and_logged() {
    // Proves: --idle-timeout 1 closes an idle client no earlier than 1 s after its last byte and not much later, logging TIMEOUT then DISCONNECT `idle timeout`.
    let srv = Server::start(&["--idle-timeout", "1"]);
    let (local, since_send, since_echo) = idle_close(&srv, Duration::from_secs(1));
    assert!(
        since_send >= Duration::from_secs(1),
        "closed {since_send:?} after the last byte: earlier than the 1 s idle timeout"
    );
    assert!(
        since_echo <= Duration::from_secs(1) + LATE_SLACK,
        "closed {since_echo:?} after the last byte moved (limit 1 s + tick + slack)"
    );
    let d = srv.wait_disconnect(local, Duration::from_secs(5));
    assert_eq!(d.reason, "idle timeout", "{d:?}");
    assert_eq!((d.rx, d.tx), (1, 1));
    let lines = srv.lines();
    let t_idx = lines
        .iter()
        .position(|l| l.contains(&format!("[TIMEOUT] {local} idle for ")))
        .unwrap_or_else(|| panic!("no TIMEOUT line for {local}\n{}", srv.dump()));
    let d_idx = lines
        .iter()
        .position(|l| l.contains(&format!("[DISCONNECT] {local} (")))
        .unwrap();
    assert!(t_idx < d_idx, "TIMEOUT is logged before its DISCONNECT");
    let t = parse_log(&lines[t_idx]).unwrap();
    assert_eq!(t.level, "INFO");
    let secs: f64 = t
        .details
        .rsplit_once("idle for ")
        .and_then(|(_, s)| s.strip_suffix('s'))
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("malformed TIMEOUT line {:?}", t.details));
    assert!((1.0..3.0).contains(&secs), "idle for {secs}s");
}

#[test]
fn activity_keeps_the_connection_open() {
    // Proves: a client active every 0.3 s for 2.5 s is never timed out with --idle-timeout 1; once quiet it is.
    let srv = Server::start(&["--idle-timeout", "1"]);
    let mut c = connect(srv.addr());
    let local = c.local_addr().unwrap();
    let start = Instant::now();
    let mut i = 0;
    while start.elapsed() < Duration::from_millis(2500) {
        echo_roundtrip(&mut c, format!("keepalive {i}\n").as_bytes());
        i += 1;
        thread::sleep(Duration::from_millis(300));
    }
    assert!(i >= 5, "only {i} exchanges happened");
    assert_eq!(
        srv.count(|l| l.contains("[TIMEOUT]") || l.contains("[DISCONNECT]")),
        0,
        "active client was timed out\n{}",
        srv.dump()
    );
    // Now go quiet: it must be closed by the timeout.
    expect_closed(&mut c, Duration::from_secs(5));
    let d = srv.wait_disconnect(local, Duration::from_secs(5));
    assert_eq!(d.reason, "idle timeout");
}

#[test]
fn fractional_idle_timeout_is_honoured() {
    // Proves: --idle-timeout 0.5 is accepted and closes an idle client after 0.5 s (not 0, not 1).
    let srv = Server::start(&["--idle-timeout", "0.5"]);
    let (local, since_send, since_echo) = idle_close(&srv, Duration::from_millis(500));
    assert!(
        since_send >= Duration::from_millis(500),
        "closed after {since_send:?}, before the 0.5 s timeout"
    );
    assert!(
        since_echo <= Duration::from_millis(500) + LATE_SLACK,
        "closed after {since_echo:?} (limit 0.5 s + tick + slack)"
    );
    assert_eq!(
        srv.wait_disconnect(local, Duration::from_secs(5)).reason,
        "idle timeout"
    );
}

#[test]
fn sub_nanosecond_idle_timeout_rounds_up_and_still_closes() {
    // Proves: --idle-timeout 0.0000000001 (ten decimals) is not silently 0
    // ("never"): it rounds up to a nanosecond, and so to the timer's first
    // 0.1 s tick, and the idle client is closed.
    let srv = Server::start(&["--idle-timeout", "0.0000000001"]);
    let (local, _, since_echo) = idle_close(&srv, Duration::from_millis(100));
    assert!(
        since_echo <= Duration::from_millis(100) + LATE_SLACK,
        "closed after {since_echo:?} (limit one tick + slack)"
    );
    assert_eq!(
        srv.wait_disconnect(local, Duration::from_secs(5)).reason,
        "idle timeout"
    );
}

#[test]
fn zero_disables_the_idle_timeout() {
    // Proves: --idle-timeout 0 never closes an idle client (still echoing after 2 s of silence).
    let srv = Server::start(&["--idle-timeout", "0"]);
    let mut c = connect(srv.addr());
    echo_roundtrip(&mut c, b"before");
    thread::sleep(Duration::from_secs(2));
    echo_roundtrip(&mut c, b"after 2 s idle");
    assert_eq!(
        srv.count(|l| l.contains("[TIMEOUT]") || l.contains("[DISCONNECT]")),
        0,
        "{}",
        srv.dump()
    );
}

#[test]
fn timed_out_connections_are_counted_in_the_summary() {
    // Proves: the Summary's `timed out` figure counts idle-timeout closes (and only those).
    let mut srv = Server::start(&["--idle-timeout", "0.5"]);
    let mut a = connect(srv.addr());
    let mut b = connect(srv.addr());
    echo_roundtrip(&mut a, b"aa");
    echo_roundtrip(&mut b, b"bbb");
    expect_closed(&mut a, Duration::from_secs(5));
    expect_closed(&mut b, Duration::from_secs(5));
    let mut c = connect(srv.addr());
    echo_roundtrip(&mut c, b"c");
    let c_addr = c.local_addr().unwrap();
    drop(c); // closed by the peer, not timed out
    srv.wait_disconnect(c_addr, Duration::from_secs(5));
    srv.wait_count(
        |l| l.contains("reason: idle timeout)"),
        2,
        Duration::from_secs(5),
    );
    let exit = srv.stop("INT", Duration::from_secs(10));
    assert_eq!(exit.code(), Some(0), "{}", exit.describe());
    assert_eq!(
        summary_of(&exit),
        Summary {
            served: 3,
            bytes_in: 6,
            bytes_out: 6,
            peak: 2,
            rejected: 0,
            timed_out: 2
        }
    );
}
