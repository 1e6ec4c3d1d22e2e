//! `echo-client bench --rate` against the real echo-server: sends follow a
//! fixed schedule, latency is measured from each message's intended send
//! time (no coordinated omission), and the client's own lateness behind
//! the schedule is reported apart.
//!
//! Its timing tests take their turn (`one_at_a_time`): they must not share
//! the machine with heavy tests such as `client_bench.rs`'s 10,000
//! connections.

use std::time::{Duration, Instant};

use crate::support::client::{client, json_of, num, Fault, FaultyServer};
use crate::support::{one_at_a_time, Server};

/// --rate sends on a fixed schedule, and latency is measured from each
/// message's intended send time: one 300 ms server stall shows up in the
/// tail of the distribution instead of as a single slow sample.
#[test]
fn fixed_rate_measures_from_intended_send_times() {
    let _turn = one_at_a_time();
    let server = Server::start(&[]);
    let exit = client(&[
        "bench",
        &server.addr().to_string(),
        "-c",
        "2",
        "--rate",
        "200",
        "--duration",
        "1",
        "--warmup",
        "0",
        "--json",
    ]);
    assert_eq!(exit.code(), Some(0), "{}", exit.describe());
    let doc = json_of(&exit);
    let messages = num(&doc, &["messages"]);
    assert!(
        (180.0..=202.0).contains(&messages),
        "{messages} messages at 200/s for 1 s"
    );

    let stalling = FaultyServer::start(Fault::StallOnce(64 * 20, Duration::from_millis(300)));
    let exit = client(&[
        "bench",
        &stalling.addr(),
        "--rate",
        "100",
        "--duration",
        "1",
        "--warmup",
        "0",
        "--json",
    ]);
    assert_eq!(exit.code(), Some(0), "{}", exit.describe());
    let doc = json_of(&exit);
    // About 30 of 100 messages fell due during the stall, waiting up to
    // 300 ms: the 90th percentile must show it.
    assert!(num(&doc, &["latency_us", "p90"]) > 100_000.0, "{doc}");
    assert!(num(&doc, &["latency_us", "max"]) > 250_000.0, "{doc}");
}

/// The client sends each message when it falls due, not at poll's next
/// whole millisecond. With millisecond timeouts its lateness ran over the
/// whole millisecond (median about 0.5 ms at 1,000 msgs/s) and was reported
/// as the server's latency; woken on time it is a small fraction of that.
#[test]
fn scheduled_sends_leave_on_time() {
    let _turn = one_at_a_time();
    let server = Server::start(&[]);
    let exit = client(&[
        "bench",
        &server.addr().to_string(),
        "--rate",
        "1000",
        "--duration",
        "1",
        "--warmup",
        "0.2",
        "--json",
    ]);
    assert_eq!(exit.code(), Some(0), "{}", exit.describe());
    let doc = json_of(&exit);
    let lag_p50 = num(&doc, &["send_lag_us", "p50"]);
    let latency_p50 = num(&doc, &["latency_us", "p50"]);
    // A message's lag is part of its latency.
    assert!(lag_p50 <= latency_p50, "{doc}");
    assert!(
        lag_p50 < 300.0,
        "the client sent {lag_p50} µs late at the median: {doc}"
    );
    assert!(latency_p50 < 450.0, "{doc}");
    // Kept up: at most the one message that fell due while its echo was
    // still on the way at the end.
    assert!(num(&doc, &["behind_schedule"]) <= 1.0, "{doc}");

    // Text output names the lag beside the latency.
    let exit = client(&[
        "bench",
        &server.addr().to_string(),
        "--rate",
        "500",
        "--duration",
        "0.2",
        "--warmup",
        "0",
    ]);
    assert_eq!(exit.code(), Some(0), "{}", exit.describe());
    assert!(
        exit.stdout
            .iter()
            .any(|l| l.starts_with("Send lag µs: p50 ")),
        "{}",
        exit.describe()
    );
}

/// Closed-loop runs have no schedule, so no lag to report.
#[test]
fn closed_loop_reports_no_send_lag() {
    let server = Server::start(&[]);
    let exit = client(&["bench", &server.addr().to_string(), "-n", "200", "--json"]);
    assert_eq!(exit.code(), Some(0), "{}", exit.describe());
    let doc = json_of(&exit);
    assert!(doc["send_lag_us"].is_null(), "{doc}");
    assert!(doc["latency_us"]["p50"].is_number(), "{doc}");
}

/// A rate far beyond what the connections can carry (the most the command
/// line takes, 10⁹ a second) still ends when the window does, with every
/// sent message verified, and says how far it fell behind. The schedule is
/// arithmetic: falling behind by a billion messages costs no memory and no
/// step per message, where a queue of owed sends ran out of both.
#[test]
fn a_rate_beyond_reach_ends_on_time_and_says_so() {
    let server = Server::start(&[]);
    let started = Instant::now();
    let exit = client(&[
        "bench",
        &server.addr().to_string(),
        "-c",
        "2",
        "--rate",
        "1e9",
        "--duration",
        "1",
        "--warmup",
        "0",
        "--json",
    ]);
    let took = started.elapsed();
    assert_eq!(exit.code(), Some(0), "{}", exit.describe());
    assert!(took < Duration::from_secs(20), "took {took:?}");
    let doc = json_of(&exit);
    assert!(num(&doc, &["messages"]) > 100.0, "{doc}");
    assert_eq!(doc["mismatches"], 0, "{doc}");
    // About 10⁹ fell due in the second; a few tens of thousands went out.
    assert!(num(&doc, &["behind_schedule"]) > 1e8, "{doc}");
    // The wait behind the schedule is in the latency: the median message
    // went out long after it was due.
    assert!(num(&doc, &["latency_us", "p50"]) > 100_000.0, "{doc}");

    let exit = client(&[
        "bench",
        &server.addr().to_string(),
        "--rate",
        "1e9",
        "--duration",
        "0.3",
        "--warmup",
        "0",
    ]);
    assert_eq!(exit.code(), Some(0), "{}", exit.describe());
    let behind = exit
        .stdout
        .iter()
        .find(|l| l.starts_with("Behind: "))
        .unwrap_or_else(|| panic!("no Behind line\n{}", exit.describe()));
    assert!(
        behind.contains("1 connection at depth 1 could not carry 1000000000 msgs/s"),
        "{behind}"
    );
}
