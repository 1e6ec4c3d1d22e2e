//! The real echo-client against the real echo-server in each mode: what
//! each side checks of the other agrees (upper's letters, framed's +1 and
//! verdicts, discard's silence and FIN, chargen's RFC 864 ring), and a
//! client checking the wrong mode is told so.

use crate::support::client::{client, json_of, num};
use crate::support::{assert_no_panic, Server};

fn assert_code(exit: &crate::support::Exit, code: i32) {
    assert_eq!(exit.code(), Some(code), "{}", exit.describe());
    assert_no_panic(&exit.stderr);
}

fn addr(srv: &Server) -> String {
    srv.addr().to_string()
}

#[test]
fn upper_is_checked_end_to_end() {
    let srv = Server::start(&["--mode", "upper"]);
    let exit = client(&["send", &addr(&srv), "héllo, World 7", "--mode", "upper"]);
    assert_code(&exit, 0);
    let exit = client(&[
        "ping",
        &addr(&srv),
        "--mode",
        "upper",
        "-c",
        "3",
        "-i",
        "0.01",
    ]);
    assert_code(&exit, 0);
    // A client expecting plain echo sees the uppercased letters as a mismatch.
    let exit = client(&["send", &addr(&srv), "hello"]);
    assert_code(&exit, 1);
}

#[test]
fn framed_is_checked_end_to_end() {
    let srv = Server::start(&["--mode", "framed", "--workers", "1"]);
    for message in ["abc", "P1000000007", "P1000000008", "P18446744073709551616"] {
        let exit = client(&["send", &addr(&srv), message, "--mode", "framed"]);
        assert_code(&exit, 0);
    }
    let exit = client(&[
        "ping",
        &addr(&srv),
        "--mode",
        "framed",
        "-c",
        "3",
        "-i",
        "0.01",
    ]);
    assert_code(&exit, 0);
    let exit = client(&[
        "bench",
        &addr(&srv),
        "--mode",
        "framed",
        "-c",
        "4",
        "--duration",
        "0.3",
        "--warmup",
        "0",
        "--json",
    ]);
    assert_code(&exit, 0);
    let doc = json_of(&exit);
    assert!(num(&doc, &["frames"]) > 0.0, "{doc}");
    // A loopback round trip takes microseconds, not nanoseconds (a
    // histogram that clamped every sample reported 0.002 µs).
    let p50 = num(&doc, &["latency_us", "p50"]);
    assert!((1.0..100_000.0).contains(&p50), "p50 {p50} µs: {doc}");
}

#[test]
fn discard_and_chargen_are_measured_end_to_end() {
    let discard = Server::start(&["--mode", "discard"]);
    let exit = client(&[
        "bench",
        &addr(&discard),
        "--mode",
        "discard",
        "-c",
        "2",
        "--duration",
        "0.3",
        "--warmup",
        "0",
        "--json",
    ]);
    assert_code(&exit, 0);
    let doc = json_of(&exit);
    assert!(num(&doc, &["bytes_up"]) > 0.0, "{doc}");
    assert_eq!(num(&doc, &["bytes_down"]), 0.0, "{doc}");

    let chargen = Server::start(&["--mode", "chargen"]);
    let exit = client(&[
        "bench",
        &addr(&chargen),
        "--mode",
        "chargen",
        "-c",
        "2",
        "--duration",
        "0.3",
        "--warmup",
        "0",
        "--json",
    ]);
    assert_code(&exit, 0);
    assert!(num(&json_of(&exit), &["bytes_down"]) > 100_000.0);
    // The wrong check for the mode: chargen's stream is not discard's nothing.
    let exit = client(&[
        "bench",
        &addr(&chargen),
        "--mode",
        "discard",
        "--duration",
        "0.3",
        "--warmup",
        "0",
    ]);
    assert_code(&exit, 1);
}

/// `-i 0.5` with `--mode`: text lines, `--json`'s `intervals` and the
/// `--json-stream` events, as echo's, in each mode's own figure: discard's
/// writes and bytes sent, chargen's `--size` blocks and bytes received,
/// framed's replies with their p50 and p99, and bytes sent.
#[test]
fn intervals_for_each_mode() {
    use crate::client_bench_stream::{assert_intervals, Shape};
    let _turn = crate::support::one_at_a_time();
    for (mode, shape) in [
        (
            "discard",
            Shape {
                unit: "writes",
                timed: false,
                bytes: "bytes_up",
                messages: None,
                text_bytes: ("Measured:", " bytes up,"),
            },
        ),
        (
            "chargen",
            Shape {
                unit: "blocks",
                timed: false,
                bytes: "bytes_down",
                messages: None,
                text_bytes: ("Measured:", " bytes down"),
            },
        ),
        (
            "framed",
            Shape {
                unit: "frames",
                timed: true,
                bytes: "bytes_up",
                messages: Some("frames"),
                text_bytes: ("Measured:", " bytes up,"),
            },
        ),
    ] {
        let server = Server::start(&["--mode", mode]);
        let addr = addr(&server);
        assert_intervals(&["bench", &addr, "--mode", mode, "-c", "2"], shape);
    }
}
