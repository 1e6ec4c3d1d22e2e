//! `echo-client bench` when things go wrong: a server that stops echoing
//! ends the run after `--timeout` instead of hanging it, the exit code and
//! the error line name the same failure, a close after everything came
//! back is no failure, Ctrl+C in the warm-up or with echoes outstanding is
//! reported for what it is, and failures before any result still give one
//! JSON document.

use std::time::{Duration, Instant};

use crate::support::client::{client, client_interrupted_when, json_of, num, Fault, FaultyServer};
use crate::support::{closed_port, Server};

/// A server that reads but never echoes: a `--requests` run (which would
/// otherwise wait for its count forever) and a bulk run both end after
/// `--timeout` without an echo, exit 5, and say so.
#[test]
fn a_server_that_stops_echoing_ends_the_run() {
    let silent = FaultyServer::start(Fault::Silent);
    let addr = silent.addr();
    for extra in [&["-c", "2", "-n", "1000"][..], &["--bulk", "-n", "1000"]] {
        let started = Instant::now();
        let mut args = vec!["bench", &addr, "-W", "0.5", "--json"];
        args.extend(extra);
        let exit = client(&args);
        assert!(started.elapsed() < Duration::from_secs(20), "{extra:?}");
        assert_eq!(exit.code(), Some(5), "{extra:?}\n{}", exit.describe());
        let doc = json_of(&exit);
        let error = doc["error"].as_str().unwrap();
        assert!(
            error.starts_with("no byte echoed for 0.500 s while ")
                && error.ends_with(": the server stopped echoing"),
            "{doc}"
        );
        assert!(num(&doc, &["incomplete"]) >= 1.0, "{doc}");
    }
}

/// One connection closed early, another corrupted: the exit code is the
/// mismatch's (1), and so is the error printed, whichever came first.
#[test]
fn the_exit_code_and_the_error_name_the_same_failure() {
    // Connection 0 is the client's reachability probe, which sends nothing.
    let mixed = FaultyServer::start(Fault::CloseNthFlipOthers(1, 640, 6400));
    let exit = client(&["bench", &mixed.addr(), "-c", "2", "-n", "1000", "--json"]);
    assert_eq!(exit.code(), Some(1), "{}", exit.describe());
    let doc = json_of(&exit);
    assert_eq!(
        (doc["mismatches"].clone(), doc["closed_early"].clone()),
        (1.into(), 1.into())
    );
    let error = doc["error"].as_str().unwrap();
    assert!(error.contains("at byte offset 6400"), "{doc}");
    assert!(
        exit.stderr.contains("at byte offset 6400"),
        "{}",
        exit.stderr
    );
}

/// A server that closes right after echoing the last requested message
/// cost the run nothing: exit 0, no early close, every time.
#[test]
fn a_close_after_everything_came_back_is_no_failure() {
    let closing = FaultyServer::start(Fault::CloseAfter(6400));
    for _ in 0..5 {
        let exit = client(&["bench", &closing.addr(), "-n", "100", "--json"]);
        assert_eq!(exit.code(), Some(0), "{}", exit.describe());
        let doc = json_of(&exit);
        assert_eq!(doc["closed_early"], 0, "{doc}");
        assert_eq!(doc["messages"], 100, "{doc}");
    }
}

/// When sending stops, messages issued but still queued in the client were
/// never sent: the drain waits only for what the server got. A deep queue
/// of large messages used to be reported as the server timing out.
#[test]
fn messages_never_sent_are_not_waited_for() {
    let server = Server::start(&[]);
    let exit = client(&[
        "bench",
        &server.addr().to_string(),
        "-s",
        "1M",
        "-d",
        "512",
        "--duration",
        "0.5",
        "--warmup",
        "0",
        "-W",
        "2",
        "--json",
    ]);
    assert_eq!(exit.code(), Some(0), "{}", exit.describe());
    let doc = json_of(&exit);
    assert_eq!(doc["incomplete"], 0, "{doc}");
    assert!(num(&doc, &["messages"]) > 0.0, "{doc}");
}

/// Ctrl+C during the warm-up measures nothing, and says so, instead of
/// counting the warm-up's echoes in a window of no length.
#[test]
fn ctrl_c_during_the_warm_up_measures_nothing() {
    let server = Server::start(&[]);
    let addr = server.addr().to_string();
    let (code, text) = client_interrupted_when(
        &[
            "bench",
            &addr,
            "-c",
            "4",
            "-d",
            "8",
            "--duration",
            "3",
            "--warmup",
            "5",
            "-q",
        ],
        |_| true,
        Duration::from_millis(500),
    );
    assert_eq!(code, Some(0), "{text}");
    assert!(text.contains("Echoed:      0 messages, 0 bytes"), "{text}");
    assert!(
        text.contains("(the run ended during the warm-up: nothing was measured)"),
        "{text}"
    );
    assert!(!text.contains("Latency"), "{text}");
}

/// Ctrl+C while echoes are still owed: the drain gives them a second, and
/// what never came back is reported with the timeout's exit code.
#[test]
fn ctrl_c_with_echoes_owed_says_what_is_missing() {
    let silent = FaultyServer::start(Fault::Silent);
    let addr = silent.addr();
    let (code, text) = client_interrupted_when(
        &["bench", &addr, "-c", "2", "-n", "1000", "-W", "30"],
        |_| true,
        Duration::from_millis(300),
    );
    assert_eq!(code, Some(5), "{text}");
    assert!(
        text.contains(
            "128 bytes on 2 connections were still not echoed 1.000 s after sending stopped"
        ),
        "{text}"
    );
}

/// A run ended by `-n` inside its warm-up reports the warm-up that passed
/// and that nothing was measured; a one-message run's rate agrees with its
/// length (both to the microsecond).
#[test]
fn short_runs_report_what_really_passed() {
    let server = Server::start(&[]);
    let addr = server.addr().to_string();
    let exit = client(&["bench", &addr, "-n", "100", "--warmup", "3", "--json"]);
    assert_eq!(exit.code(), Some(0), "{}", exit.describe());
    let doc = json_of(&exit);
    assert_eq!(doc["ended_in_warmup"], true, "{doc}");
    assert!(num(&doc, &["warmup_s"]) < 3.0, "{doc}");
    assert_eq!(doc["messages"], 0, "{doc}");

    let exit = client(&["bench", &addr, "-n", "1", "--warmup", "0", "--json"]);
    let doc = json_of(&exit);
    let elapsed = num(&doc, &["elapsed_s"]);
    assert!(elapsed > 0.0, "{doc}");
    // One message: the rate is 1/elapsed, and elapsed is rounded to 1 µs.
    let rate = num(&doc, &["msgs_per_s"]);
    assert!((1.0 / rate - elapsed).abs() <= 1e-6, "{doc}");
}

/// Failures before any result still print one JSON document with `--json`,
/// and a `--server-pid` naming no process is refused up front.
#[test]
fn early_failures_are_json_too() {
    let port = closed_port();
    let exit = client(&["bench", &format!("127.0.0.1:{port}"), "-n", "10", "--json"]);
    assert_eq!(exit.code(), Some(3), "{}", exit.describe());
    let doc = json_of(&exit);
    assert_eq!(doc["mode"], "bench", "{doc}");
    assert_eq!(doc["error_kind"], "refused", "{doc}");

    let server = Server::start(&[]);
    // A process that has exited and been reaped.
    let mut gone = std::process::Command::new("true").spawn().unwrap();
    let pid = gone.id().to_string();
    gone.wait().unwrap();
    let exit = client(&[
        "bench",
        &server.addr().to_string(),
        "-n",
        "10",
        "--server-pid",
        &pid,
        "--json",
    ]);
    assert_eq!(exit.code(), Some(2), "{}", exit.describe());
    let doc = json_of(&exit);
    assert_eq!(doc["error_kind"], "usage", "{doc}");
    assert!(
        doc["error"]
            .as_str()
            .unwrap()
            .starts_with(&format!("--server-pid {pid}: cannot read that process")),
        "{doc}"
    );
}
