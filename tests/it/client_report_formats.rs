//! How `ping` and `bench` report for scripts and dashboards: `bench -i`
//! intervals (text lines and the `--json` `intervals` array), iperf3-style
//! `--json-stream` (one event per line, written as it happens) for both,
//! `--format bits`, and bulk runs counting "writes".

use std::time::{Duration, Instant};

use crate::support::client::{client, json_lines, json_of, num};
use crate::support::{one_at_a_time, Exit, Server};

/// `-i 0.5` over a 2 s window: four intervals that tile the window, whose
/// counts add up to the report's, each with its own percentiles.
#[test]
fn bench_intervals_tile_the_window() {
    let _turn = one_at_a_time();
    let server = Server::start(&[]);
    let addr = server.addr().to_string();
    let exit = bench(
        &addr,
        &[
            "--connections",
            "2",
            "--duration",
            "2",
            "--warmup",
            "0.2",
            "-i",
            "0.5",
            "--json",
        ],
    );
    assert_eq!(exit.code(), Some(0), "{}", exit.describe());
    let doc = json_of(&exit);
    assert_eq!(doc["interval_s"], 0.5, "{doc}");
    let intervals = doc["intervals"].as_array().expect("intervals array");
    assert_eq!(intervals.len(), 4, "{doc}");
    let mut messages = 0.0;
    let mut bytes = 0.0;
    for (k, iv) in intervals.iter().enumerate() {
        assert_eq!(num(iv, &["start_s"]), k as f64 * 0.5, "{iv}");
        assert_eq!(num(iv, &["end_s"]), (k + 1) as f64 * 0.5, "{iv}");
        let m = num(iv, &["messages"]);
        assert!(m > 0.0, "{iv}");
        assert_eq!(num(iv, &["bytes"]), m * 64.0, "{iv}");
        assert!((num(iv, &["msgs_per_s"]) - m / 0.5).abs() < 0.01, "{iv}");
        assert!(
            (num(iv, &["bits_per_s"]) - m * 64.0 * 8.0 / 0.5).abs() <= 1.0,
            "{iv}"
        );
        let (p50, p99) = (num(iv, &["p50_us"]), num(iv, &["p99_us"]));
        assert!(p50 > 0.0 && p50 <= p99, "{iv}");
        messages += m;
        bytes += num(iv, &["bytes"]);
    }
    assert_eq!(messages, num(&doc, &["messages"]), "{doc}");
    assert_eq!(bytes, num(&doc, &["bytes"]), "{doc}");
}

/// The text form: a line per interval before the report, in MB/s or, with
/// `--format bits`, in bit/s; a bulk run counts writes, not messages.
#[test]
fn bench_interval_lines_bits_and_writes() {
    let _turn = one_at_a_time();
    let server = Server::start(&[]);
    let addr = server.addr().to_string();
    let exit = bench(&addr, &["--duration", "1", "--warmup", "0", "-i", "0.5"]);
    assert_eq!(exit.code(), Some(0), "{}", exit.describe());
    let lines: Vec<&String> = exit.stdout.iter().filter(|l| l.starts_with('[')).collect();
    assert_eq!(lines.len(), 2, "{}", exit.describe());
    assert!(
        lines[0].starts_with("[   0.00-   0.50 s]  "),
        "{}",
        lines[0]
    );
    assert!(
        lines[1].starts_with("[   0.50-   1.00 s]  "),
        "{}",
        lines[1]
    );
    for line in &lines {
        assert!(
            line.contains(" msgs/s  ")
                && line.contains(" MB/s  p50 ")
                && line.contains(" µs  p99 "),
            "{line}"
        );
    }
    // The intervals come before the report.
    let first_report = exit
        .stdout
        .iter()
        .position(|l| l.starts_with("Benchmark of"))
        .unwrap();
    assert!(
        exit.stdout[..first_report]
            .iter()
            .all(|l| l.starts_with('[')),
        "{}",
        exit.describe()
    );

    let exit = bench(
        &addr,
        &[
            "--connections",
            "2",
            "--bulk",
            "--duration",
            "1",
            "--warmup",
            "0",
            "-i",
            "0.5",
            "--format",
            "bits",
        ],
    );
    assert_eq!(exit.code(), Some(0), "{}", exit.describe());
    let text = exit.stdout.join("\n");
    let throughput = exit
        .stdout
        .iter()
        .find(|l| l.starts_with("Throughput:"))
        .unwrap();
    assert!(throughput.contains(" writes/s, "), "{text}");
    assert!(
        ["Kbit/s", "Mbit/s", "Gbit/s"]
            .iter()
            .any(|u| throughput.ends_with(u)),
        "{text}"
    );
    assert!(
        text.contains(" writes, ") && !text.contains(" messages"),
        "{text}"
    );
    let interval = exit.stdout.iter().find(|l| l.starts_with('[')).unwrap();
    assert!(
        interval.contains(" writes/s  ") && interval.contains("bit/s"),
        "{text}"
    );
}

/// `echo-client bench ADDR ARGS…`.
fn bench(addr: &str, args: &[&str]) -> Exit {
    let mut all = vec!["bench", addr];
    all.extend(args);
    client(&all)
}

/// Checks the start, ..., end shape and returns the middle events.
fn events<'a>(
    lines: &'a [(Instant, serde_json::Value)],
    middle: &str,
) -> Vec<&'a (Instant, serde_json::Value)> {
    assert!(lines.len() >= 3, "{lines:?}");
    assert_eq!(lines[0].1["event"], "start", "{lines:?}");
    assert_eq!(lines[lines.len() - 1].1["event"], "end", "{lines:?}");
    let inner = &lines[1..lines.len() - 1];
    assert!(inner.iter().all(|(_, v)| v["event"] == middle), "{lines:?}");
    inner.iter().collect()
}

/// `bench --json-stream`: start, an interval a second as it ends (the
/// first long before the run is over), end with the report.
#[test]
fn bench_json_stream_reports_as_it_goes() {
    let _turn = one_at_a_time();
    let server = Server::start(&[]);
    let addr = server.addr().to_string();
    let (lines, code) = json_lines(&[
        "bench",
        &addr,
        "--duration",
        "3",
        "--warmup",
        "0",
        "--json-stream",
    ]);
    assert_eq!(code, Some(0), "{lines:?}");
    assert_eq!(lines[0].1["data"]["interval_s"], 1.0);
    let intervals = events(&lines, "interval");
    assert_eq!(intervals.len(), 3, "{lines:?}");
    let end = &lines[lines.len() - 1];
    assert!(
        end.0 - intervals[0].0 >= Duration::from_millis(1500),
        "written at the end, not as it went"
    );
    let total: f64 = intervals
        .iter()
        .map(|(_, v)| num(&v["data"], &["messages"]))
        .sum();
    assert_eq!(total, num(&end.1["data"], &["messages"]), "{lines:?}");
}

/// `ping --json-stream`: start, a probe event as each probe ends, end with
/// the totals.
#[test]
fn ping_json_stream_reports_each_probe_as_it_ends() {
    let server = Server::start(&[]);
    let addr = server.addr().to_string();
    let (lines, code) = json_lines(&["ping", &addr, "-c", "3", "-i", "0.6", "--json-stream"]);
    assert_eq!(code, Some(0), "{lines:?}");
    assert_eq!(lines[0].1["data"]["count"], 3);
    let probes = events(&lines, "probe");
    assert_eq!(probes.len(), 3, "{lines:?}");
    for (k, (_, p)) in probes.iter().enumerate() {
        assert_eq!(p["data"]["seq"], k as u64 + 1);
        assert_eq!(p["data"]["ok"], true);
        assert!(num(&p["data"], &["rtt_ms"]) > 0.0);
    }
    let end = &lines[lines.len() - 1];
    assert!(
        end.0 - probes[0].0 >= Duration::from_millis(900),
        "written at the end, not as it went"
    );
    assert_eq!(end.1["data"]["received"], 3, "{lines:?}");
}
