//! Busy polling (`--busy-poll`): while a client answers at once, the server
//! stays awake between its messages; when traffic thins out, it goes back to
//! sleeping and spends no CPU waiting.
//!
//! These tests use a 20 ms window rather than the default 100 µs, so that a
//! client delayed by a loaded test machine still answers inside it: what
//! they check is the behaviour, not the default's reach.

use crate::support::*;
use std::net::TcpStream;
use std::thread;
use std::time::Duration;

const WINDOW_USECS: &str = "20000";
const ROUND_TRIPS: u64 = 500;
/// How long the client takes to send its next message: well inside the
/// window, and far longer than the server takes to get back to its wait, so
/// that a server that does not poll surely sleeps before the message comes.
const THINK_TIME: Duration = Duration::from_millis(1);

/// `n` echoes of 64 bytes, each sent only once the previous one is back,
/// as `echo-client ping` and a depth-1 bench do.
fn ping_pong(conn: &mut TcpStream, n: u64) {
    for i in 0..n {
        let message = [(i % 251) as u8; 64];
        echo_roundtrip(conn, &message);
    }
}

/// Sleeps the server did per round trip, for a client that sends each
/// message 1 ms after the previous echo came back.
fn sleeps_per_round_trip(busy_poll: &str) -> f64 {
    let srv = Server::start(&["--busy-poll", busy_poll]);
    let mut conn = connect(srv.addr());
    ping_pong(&mut conn, 100);
    let before = srv.voluntary_switches();
    for _ in 0..ROUND_TRIPS {
        thread::sleep(THINK_TIME);
        ping_pong(&mut conn, 1);
    }
    let slept = srv.voluntary_switches() - before;
    slept as f64 / ROUND_TRIPS as f64
}

#[test]
fn a_client_that_answers_at_once_finds_the_server_awake() {
    // Proves: with busy polling the server does not sleep between a
    // client's messages when they come within the window (no wake-up to pay
    // per round trip); with it off, the same exchange puts it to sleep once
    // per message, so the count tells the two apart.
    let _turn = one_at_a_time();
    let polling = sleeps_per_round_trip(WINDOW_USECS);
    let sleeping = sleeps_per_round_trip("0");
    eprintln!("sleeps per round trip: {polling:.3} polling, {sleeping:.3} with --busy-poll 0");
    assert!(
        polling < 0.2,
        "the server slept {polling:.3} times per round trip with --busy-poll {WINDOW_USECS}"
    );
    assert!(
        sleeping > 0.5,
        "with --busy-poll 0 the server slept only {sleeping:.3} times per round trip: \
         the measurement cannot tell polling from sleeping"
    );
}

#[test]
fn sparse_traffic_and_an_idle_server_cost_no_spinning() {
    // Proves: once messages come further apart than the window, the server
    // stops polling after a few waits (it would otherwise spin the whole
    // window after each of them), and an idle server uses no CPU.
    let _turn = one_at_a_time();
    let srv = Server::start(&["--busy-poll", WINDOW_USECS]);
    let mut conn = connect(srv.addr());
    // Open the window to its 20 ms limit.
    ping_pong(&mut conn, 500);

    let hz = clock_ticks_per_second();
    let before = srv.cpu_ticks();
    for _ in 0..10 {
        thread::sleep(Duration::from_millis(50));
        ping_pong(&mut conn, 1);
    }
    let sparse = srv.cpu_ticks() - before;
    // Polling 20 ms after each of the 10 messages would be 200 ms of CPU;
    // the adaptive window spends 20 + 10 + 5 ms and then sleeps.
    assert!(
        sparse * 10 < hz,
        "the server used {sparse} ticks ({hz}/s) over 10 messages 50 ms apart: \
         it kept polling between them"
    );

    let before = srv.cpu_ticks();
    thread::sleep(Duration::from_millis(500));
    let idle = srv.cpu_ticks() - before;
    assert!(
        idle * 50 < hz,
        "an idle server used {idle} ticks ({hz}/s) in 0.5 s"
    );
    ping_pong(&mut conn, 3);
}
