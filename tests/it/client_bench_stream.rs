//! `echo-client bench --bulk --in-flight unbounded`: a writer and a reader
//! thread per connection, like `nc host port < big > out`. Every byte is
//! verified and counted against the real server; corruption, a peer that
//! stops echoing, and the option without `--bulk` end with the documented
//! exit code and a message saying what happened.

use std::time::{Duration, Instant};

use crate::client_bench::server_bytes_in;
use crate::support::client::{client, json_of, num, Fault, FaultyServer};
use crate::support::Server;

const UNBOUNDED: [&str; 3] = ["--bulk", "--in-flight", "unbounded"];

fn args<'a>(addr: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
    let mut args = vec!["bench", addr];
    args.extend(UNBOUNDED);
    args.extend(extra);
    args
}

/// Against the real server: MB/s over the window, in text and in JSON,
/// the server's CPU and memory with --server-pid, nothing left unechoed.
#[test]
fn streams_and_verifies_against_the_real_server() {
    let server = Server::start(&[]);
    let addr = server.addr().to_string();
    let pid = server.pid().to_string();
    let window = ["--duration", "0.5", "--warmup", "0.2", "--server-pid", &pid];
    let exit = client(&args(&addr, &[&window[..], &["--json"]].concat()));
    assert_eq!(exit.code(), Some(0), "{}", exit.describe());
    let doc = json_of(&exit);
    assert_eq!(doc["bulk"], true, "{doc}");
    assert_eq!(doc["in_flight"]["unbounded"], true, "{doc}");
    assert_eq!(doc["in_flight"]["auto"], false, "{doc}");
    assert!(num(&doc, &["in_flight", "largest_bytes"]) > 0.0, "{doc}");
    assert!(doc["latency_us"].is_null(), "{doc}");
    let bytes = num(&doc, &["bytes"]);
    assert!(bytes > 1e6, "only {bytes} bytes in 0.5 s");
    // Writes completed in the window: the warm-up ends in the middle of one.
    assert!(
        (num(&doc, &["messages"]) - bytes / 65536.0).abs() <= 1.0,
        "{doc}"
    );
    let elapsed = num(&doc, &["elapsed_s"]);
    assert!((0.45..=0.7).contains(&elapsed), "{doc}");
    assert!(
        (num(&doc, &["mb_per_s"]) - bytes / 1e6 / elapsed).abs() < 1.0,
        "{doc}"
    );
    assert!(num(&doc, &["warmup_s"]) >= 0.2, "{doc}");
    assert_eq!(
        (&doc["mismatches"], &doc["incomplete"], &doc["closed_early"]),
        (&0.into(), &0.into(), &0.into()),
        "{doc}"
    );
    assert!(num(&doc, &["server", "cpu_s"]) > 0.0, "{doc}");
    assert!(num(&doc, &["server", "rss_kib"]) > 0.0, "{doc}");

    let exit = client(&args(&addr, &window));
    assert_eq!(exit.code(), Some(0), "{}", exit.describe());
    let text = exit.stdout.join("\n");
    assert!(
        text.contains("1 connection, bulk stream, 65536 B writes, unbounded in flight (a writer and a reader thread per connection"),
        "{text}"
    );
    assert!(text.contains(" all verified (0 mismatches)"), "{text}");
    let mb_per_s: f64 = text
        .lines()
        .find_map(|l| l.strip_prefix("Throughput:"))
        .and_then(|l| l.split(", ").nth(1)?.strip_suffix(" MB/s")?.parse().ok())
        .unwrap_or_else(|| panic!("no MB/s in:\n{text}"));
    assert!(mb_per_s > 2.0, "{text}");
    assert!(
        text.contains(&format!("Server:      pid {pid}: ")),
        "{text}"
    );
    assert!(exit.stderr.is_empty(), "{}", exit.stderr);
}

/// With --requests the writers share exactly that many writes (odd-sized
/// ones, longer than the pattern's window), every byte comes back, and the
/// server read exactly those bytes: the half-close at the end loses none.
#[test]
fn request_count_is_exact_and_agrees_with_the_server() {
    const WRITES: u64 = 200;
    const SIZE: u64 = 100_003;
    let server = Server::start(&[]);
    let addr = server.addr().to_string();
    let (writes, size) = (WRITES.to_string(), SIZE.to_string());
    let exit = client(&args(
        &addr,
        &["-c", "3", "-s", &size, "-n", &writes, "--json"],
    ));
    assert_eq!(exit.code(), Some(0), "{}", exit.describe());
    let doc = json_of(&exit);
    assert_eq!(doc["connected"], 3, "{doc}");
    assert_eq!(doc["messages"], WRITES, "{doc}");
    assert_eq!(doc["bytes"], WRITES * SIZE, "{doc}");
    assert_eq!(doc["incomplete"], 0, "{doc}");
    assert_eq!(server_bytes_in(server), WRITES * SIZE);
}

/// A flipped byte on each of three connections, and a dropped byte, are
/// reported at their offset with exit code 1.
#[test]
fn corruption_is_caught_at_its_offset() {
    let corrupting = FaultyServer::start(Fault::FlipByteAt(1_000_003));
    let addr = corrupting.addr();
    let exit = client(&args(
        &addr,
        &["-c", "3", "--duration", "2", "--warmup", "0", "--json"],
    ));
    assert_eq!(exit.code(), Some(1), "{}", exit.describe());
    let doc = json_of(&exit);
    assert_eq!(doc["mismatches"], 3, "{doc}");
    let error = doc["error"].as_str().unwrap();
    assert!(error.contains("at byte offset 1000003"), "{doc}");
    assert!(
        exit.stderr.contains("at byte offset 1000003"),
        "{}",
        exit.stderr
    );

    let dropping = FaultyServer::start(Fault::DropByteAt(2_000_001));
    let addr = dropping.addr();
    let exit = client(&args(
        &addr,
        &["--duration", "2", "--warmup", "0", "--json"],
    ));
    assert_eq!(exit.code(), Some(1), "{}", exit.describe());
    let doc = json_of(&exit);
    assert_eq!(doc["mismatches"], 1, "{doc}");
    assert!(
        doc["error"]
            .as_str()
            .unwrap()
            .contains("at byte offset 2000001"),
        "{doc}"
    );
}

/// What a peer has read once the client's bytes stop arriving.
fn settled_received(server: &FaultyServer) -> u64 {
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut last = server.received();
    loop {
        std::thread::sleep(Duration::from_millis(100));
        let now = server.received();
        if now == last || Instant::now() > deadline {
            return now;
        }
        last = now;
    }
}

/// The number before `marker` in `text`.
fn count_before(text: &str, marker: &str) -> u64 {
    let head = &text[..text
        .find(marker)
        .unwrap_or_else(|| panic!("{marker:?} in {text}"))];
    head.rsplit(' ')
        .next()
        .unwrap()
        .parse()
        .unwrap_or_else(|_| panic!("{text}"))
}

/// What the peer of the two tests below echoes before it stops.
const ECHOED: u64 = 1_000_000;

/// Runs the client against a peer that echoes the first `ECHOED` bytes,
/// then reads and drops the rest and keeps the connection open; the run
/// must end with exit 5 in bounded time. Returns the JSON document, the
/// error line and the peer.
fn against_a_peer_that_stops_echoing(extra: &[&str]) -> (serde_json::Value, String, FaultyServer) {
    let peer = FaultyServer::start(Fault::EchoFirst(ECHOED));
    let addr = peer.addr();
    let started = Instant::now();
    let exit = client(&args(
        &addr,
        &[extra, &["--warmup", "0", "--json"]].concat(),
    ));
    let took = started.elapsed();
    assert!(
        took < Duration::from_secs(10),
        "{took:?}\n{}",
        exit.describe()
    );
    assert_eq!(exit.code(), Some(5), "{}", exit.describe());
    let doc = json_of(&exit);
    assert_eq!(doc["incomplete"], 1, "{doc}");
    let error = doc["error"].as_str().unwrap().to_string();
    (doc, error, peer)
}

/// While the writer still sends, the run ends after --timeout without an
/// echo, naming the bytes waiting; the window counts what did come back.
#[test]
fn a_peer_that_stops_echoing_mid_run_is_a_stall() {
    let (doc, error, _peer) = against_a_peer_that_stops_echoing(&["--duration", "30", "-W", "1"]);
    assert!(
        error.starts_with("no byte echoed for 1.000 s while "),
        "{doc}"
    );
    assert!(
        error.ends_with(" bytes on 1 connection waited: the server stopped echoing"),
        "{doc}"
    );
    assert!(count_before(&error, " bytes on 1 connection") > 0, "{doc}");
    assert_eq!(doc["bytes"], ECHOED, "{doc}");
}

/// Once the writer has stopped, the drain waits --timeout and names
/// exactly the bytes the peer read and never echoed.
#[test]
fn a_peer_that_stops_echoing_leaves_the_missing_bytes_named() {
    let (doc, error, peer) = against_a_peer_that_stops_echoing(&["--duration", "0.5", "-W", "1"]);
    assert!(
        error.ends_with(
            " bytes on 1 connection were still not echoed 1.000 s after sending stopped"
        ),
        "{doc}"
    );
    let missing = count_before(&error, " bytes on 1 connection");
    assert_eq!(missing, settled_received(&peer) - ECHOED, "{doc}");
}

/// `--in-flight unbounded` is a bulk setting: without --bulk the command
/// line is refused (exit 2) and the message names the missing option.
#[test]
fn unbounded_without_bulk_is_a_usage_error() {
    let exit = client(&["bench", "127.0.0.1:9", "--in-flight", "unbounded"]);
    assert_eq!(exit.code(), Some(2), "{}", exit.describe());
    assert!(exit.stderr.contains("--bulk"), "{}", exit.stderr);
    assert!(exit.stdout.is_empty(), "{}", exit.describe());
}
