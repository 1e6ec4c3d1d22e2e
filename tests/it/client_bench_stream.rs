//! `echo-client bench --bulk --in-flight unbounded`: a writer and a reader
//! thread per connection, like `nc host port < big > out`. Every byte is
//! verified and counted against the real server; corruption, a peer that
//! stops echoing, and the option without `--bulk` end with the documented
//! exit code and a message saying what happened.

use std::time::{Duration, Instant};

use crate::client_bench::server_bytes_in;
use crate::support::client::{client, json_lines, json_of, num, Fault, FaultyServer};
use crate::support::{one_at_a_time, Server};

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

/// `-i 0.5` with the stream engine: a text line per interval (writes/s and
/// MB/s of the verified echo, no latency: this engine times none), the
/// `--json` `intervals` array and the `--json-stream` events, all adding
/// up to the report's totals.
#[test]
fn intervals_in_text_json_and_json_stream() {
    let _turn = one_at_a_time();
    let server = Server::start(&[]);
    let addr = server.addr().to_string();
    assert_intervals(&args(&addr, &["--connections", "2"]), Shape::ECHO_BULK);
}

/// What a benchmark's intervals look like, and where its report says the
/// totals they add up to.
pub(crate) struct Shape {
    /// The text line's unit ("writes" for writes/s).
    pub unit: &'static str,
    /// Whether each interval has p50 and p99.
    pub timed: bool,
    /// The report's byte total in `--json`.
    pub bytes: &'static str,
    /// Its message total in `--json`, where it has one.
    pub messages: Option<&'static str>,
    /// The text report's line with the byte total, and the words after it.
    pub text_bytes: (&'static str, &'static str),
}

impl Shape {
    const ECHO_BULK: Shape = Shape {
        unit: "writes",
        timed: false,
        bytes: "bytes",
        messages: Some("messages"),
        text_bytes: ("Echoed:", " bytes,"),
    };
}

/// Runs the bench `args` with `-i 0.5` over a 2 s window three ways and
/// checks the intervals of each: text lines that add up to the report's
/// bytes within their rounding; `--json`'s `intervals` array, exactly; and
/// `--json-stream`, one JSON object per line (start, intervals as they
/// end, end with the report).
pub(crate) fn assert_intervals(args: &[&str], shape: Shape) {
    let window = ["--duration", "2", "--warmup", "0.2", "-i", "0.5"];
    let run = |extra: &[&str]| client(&[args, &window[..], extra].concat());

    let exit = run(&[]);
    assert_eq!(exit.code(), Some(0), "{}", exit.describe());
    let lines: Vec<&String> = exit.stdout.iter().filter(|l| l.starts_with('[')).collect();
    assert!(lines.len() >= 3, "{}", exit.describe());
    let mut bytes = 0.0;
    let mut slack = 0.0;
    for line in &lines {
        // "[   0.50-   1.00 s]  9,498 writes/s  622.53 MB/s[  p50 … µs  p99 … µs]"
        let (times, rest) = line[1..].split_once(" s]  ").expect(line);
        let (start, end) = times.split_once('-').expect(line);
        let (start, end): (f64, f64) = (start.trim().parse().unwrap(), end.trim().parse().unwrap());
        let fields: Vec<&str> = rest.split("  ").collect();
        assert!(fields[0].ends_with(&format!(" {}/s", shape.unit)), "{line}");
        let mb_per_s: f64 = fields[1]
            .strip_suffix(" MB/s")
            .expect(line)
            .parse()
            .unwrap();
        assert_eq!(
            fields.len() == 4 && fields[2].starts_with("p50 ") && fields[3].starts_with("p99 "),
            shape.timed,
            "{line}"
        );
        bytes += mb_per_s * 1e6 * (end - start);
        // MB/s to 0.01, each end to 0.01 s.
        slack += 0.005e6 * (end - start) + mb_per_s * 1e6 * 0.01;
    }
    let (label, word) = shape.text_bytes;
    let total: f64 = exit
        .stdout
        .iter()
        .find_map(|l| l.strip_prefix(label))
        .and_then(|l| {
            let (before, _) = l.split_once(word)?;
            let count = before.split_whitespace().last()?;
            count.replace(',', "").parse().ok()
        })
        .unwrap_or_else(|| panic!("no {label} … {word} in\n{}", exit.describe()));
    assert!(total > 0.0, "{}", exit.describe());
    assert!(
        (bytes - total).abs() <= slack + 1.0,
        "intervals add up to {bytes} bytes, the report says {total}\n{}",
        exit.describe()
    );

    let exit = run(&["--json"]);
    assert_eq!(exit.code(), Some(0), "{}", exit.describe());
    let doc = json_of(&exit);
    assert_eq!(doc["interval_s"], 0.5, "{doc}");
    let intervals = doc["intervals"].as_array().expect("intervals array");
    assert!(intervals.len() >= 3, "{doc}");
    assert_shape(intervals, &doc, &shape);

    let (lines, code) = json_lines(&[args, &window[..], &["--json-stream"]].concat());
    assert_eq!(code, Some(0), "{lines:?}");
    let event = |at: usize| lines[at].1["event"].as_str().unwrap_or_default();
    assert_eq!(event(0), "start", "{lines:?}");
    assert_eq!(lines[0].1["data"]["interval_s"], 0.5, "{lines:?}");
    let last = lines.len() - 1;
    assert_eq!(event(last), "end", "{lines:?}");
    assert!((1..last).all(|at| event(at) == "interval"), "{lines:?}");
    // Three intervals at least between start and end.
    assert!(last > 3, "{lines:?}");
    assert!(
        lines[last].0 - lines[1].0 >= Duration::from_millis(1000),
        "the intervals were written at the end, not as they ended"
    );
    let intervals: Vec<serde_json::Value> = lines[1..last]
        .iter()
        .map(|(_, v)| v["data"].clone())
        .collect();
    assert_shape(&intervals, &lines[last].1["data"], &shape);
}

/// Each interval has the fields of the event-loop engine's; together they
/// tile the window and add up to the report's totals.
fn assert_shape(intervals: &[serde_json::Value], report: &serde_json::Value, shape: &Shape) {
    let (mut messages, mut bytes) = (0.0, 0.0);
    for (k, iv) in intervals.iter().enumerate() {
        assert_eq!(num(iv, &["start_s"]), k as f64 * 0.5, "{iv}");
        let (m, b, seconds) = (
            num(iv, &["messages"]),
            num(iv, &["bytes"]),
            num(iv, &["end_s"]) - num(iv, &["start_s"]),
        );
        assert!(seconds > 0.0 && seconds <= 0.5 + 1e-9, "{iv}");
        assert!(b > 0.0, "{iv}");
        assert!(
            (num(iv, &["msgs_per_s"]) - m / seconds).abs() <= 0.01,
            "{iv}"
        );
        assert!(
            (num(iv, &["mb_per_s"]) - b / 1e6 / seconds).abs() <= 0.001,
            "{iv}"
        );
        assert!(
            (num(iv, &["bits_per_s"]) - b * 8.0 / seconds).abs() <= 1.0,
            "{iv}"
        );
        if shape.timed {
            let (p50, p99) = (num(iv, &["p50_us"]), num(iv, &["p99_us"]));
            assert!(p50 > 0.0 && p50 <= p99, "{iv}");
        } else {
            assert!(iv["p50_us"].is_null() && iv["p99_us"].is_null(), "{iv}");
        }
        messages += m;
        bytes += b;
    }
    assert_eq!(bytes, num(report, &[shape.bytes]), "{report}");
    if let Some(key) = shape.messages {
        assert_eq!(messages, num(report, &[key]), "{report}");
    }
}
