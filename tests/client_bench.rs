//! `echo-client bench` against the real echo-server: exact message counts,
//! verified bytes (its counts agree with the server's own), depth, bulk,
//! fixed rate without coordinated omission, 10,000 connections from one
//! process, and faulty servers whose corruption or early close is caught.

#[path = "support/client.rs"]
mod client_support;
mod common;

use std::time::Duration;

use client_support::{client, closed_port, json_of, num, Fault, FaultyServer};
use common::{raise_nofile, skip, Server};

/// The server's summary line, after a clean stop, for its byte counters.
fn server_bytes_in(mut server: Server) -> u64 {
    let exit = server.stop("INT", Duration::from_secs(10));
    let summary = exit
        .stdout
        .iter()
        .find(|l| l.starts_with("Summary:"))
        .unwrap_or_else(|| panic!("no summary:\n{}", exit.describe()))
        .clone();
    // "Summary: C connections served, N bytes in, M bytes out, ..."
    let part = summary
        .split(", ")
        .find(|p| p.ends_with(" bytes in"))
        .unwrap_or_else(|| panic!("no 'bytes in' in {summary}"));
    part.trim_end_matches(" bytes in")
        .parse()
        .expect("bytes in")
}

/// `--requests` sends exactly that many messages; every one is echoed,
/// verified and counted, and the server saw exactly those bytes (plus
/// nothing: the reachability probe sends no data).
#[test]
fn request_count_is_exact_and_agrees_with_the_server() {
    let server = Server::start(&[]);
    let exit = client(&[
        "bench",
        &server.addr().to_string(),
        "-c",
        "10",
        "-n",
        "5000",
        "-s",
        "100",
        "--json",
    ]);
    assert_eq!(exit.code(), Some(0), "{}", exit.describe());
    let doc = json_of(&exit);
    assert_eq!(doc["mode"], "bench");
    assert_eq!(doc["messages"], 5000);
    assert_eq!(doc["bytes"], 500_000);
    assert_eq!(doc["connected"], 10);
    assert_eq!(doc["mismatches"], 0);
    let l = |k| num(&doc, &["latency_us", k]);
    assert!(l("min") > 0.0 && l("min") <= l("p50") && l("p50") <= l("p90"));
    assert!(l("p90") <= l("p95") && l("p95") <= l("p99") && l("p99") <= l("p999"));
    assert!(l("p999") <= l("max") && l("min") <= l("mean") && l("mean") <= l("max"));
    assert!(num(&doc, &["msgs_per_s"]) > 0.0);
    assert_eq!(server_bytes_in(server), 500_000);
}

/// Duration mode with warm-up and pipelining: messages are counted only in
/// the window, MB/s agrees with messages × size, and --server-pid reports
/// the server's CPU time and memory.
#[test]
fn duration_window_depth_and_server_usage() {
    let server = Server::start(&[]);
    let pid = server.pid().to_string();
    let exit = client(&[
        "bench",
        &server.addr().to_string(),
        "-c",
        "4",
        "-s",
        "4K",
        "-d",
        "4",
        "--duration",
        "0.5",
        "--warmup",
        "0.2",
        "--server-pid",
        &pid,
        "--json",
    ]);
    assert_eq!(exit.code(), Some(0), "{}", exit.describe());
    let doc = json_of(&exit);
    let messages = num(&doc, &["messages"]);
    assert!(messages > 0.0);
    assert_eq!(num(&doc, &["bytes"]), messages * 4096.0);
    let elapsed = num(&doc, &["elapsed_s"]);
    assert!((0.45..=0.7).contains(&elapsed), "window {elapsed}");
    let rate = num(&doc, &["msgs_per_s"]);
    assert!((rate - messages / elapsed).abs() / rate < 0.01);
    assert_eq!(doc["server"]["pid"].as_u64(), Some(server.pid() as u64));
    assert!(num(&doc, &["server", "cpu_s"]) > 0.0);
    assert!(num(&doc, &["server", "cpu_ns_per_msg"]) > 0.0);
    assert!(num(&doc, &["server", "rss_kib"]) > 0.0);
    // Not a terminal: no progress line, and nothing else on stderr.
    assert!(exit.stderr.is_empty(), "{}", exit.stderr);
}

/// Bulk streams 64 KiB writes with a concurrent reader; the echoed bytes
/// are verified and reported as MB/s, with no per-message latency.
#[test]
fn bulk_mode_measures_verified_throughput() {
    let server = Server::start(&[]);
    let exit = client(&[
        "bench",
        &server.addr().to_string(),
        "--bulk",
        "--duration",
        "0.5",
        "--warmup",
        "0",
        "--json",
    ]);
    assert_eq!(exit.code(), Some(0), "{}", exit.describe());
    let doc = json_of(&exit);
    assert_eq!(doc["size"], 65536);
    assert!(doc["latency_us"].is_null());
    let bytes = num(&doc, &["bytes"]);
    assert!(bytes > 1e6, "only {bytes} bytes in 0.5 s");
    assert_eq!(num(&doc, &["messages"]), (bytes / 65536.0).floor());
    assert!((num(&doc, &["mb_per_s"]) - bytes / 1e6 / num(&doc, &["elapsed_s"])).abs() < 1.0);
}

/// With --requests, bulk sends exactly that many writes in all, every
/// byte is echoed and verified, and the server received exactly those
/// bytes (odd-sized writes, so no write lines up with a page or the
/// pattern's period).
#[test]
fn bulk_request_count_is_exact_and_agrees_with_the_server() {
    const WRITES: u64 = 300;
    const SIZE: u64 = 100_003;
    let server = Server::start(&[]);
    let exit = client(&[
        "bench",
        &server.addr().to_string(),
        "--bulk",
        "-c",
        "3",
        "-s",
        &SIZE.to_string(),
        "-n",
        &WRITES.to_string(),
        "--json",
    ]);
    assert_eq!(exit.code(), Some(0), "{}", exit.describe());
    let doc = json_of(&exit);
    assert_eq!(doc["mismatches"], 0);
    assert_eq!(doc["incomplete"], 0);
    assert_eq!(doc["messages"], WRITES);
    assert_eq!(doc["bytes"], WRITES * SIZE);
    assert_eq!(server_bytes_in(server), WRITES * SIZE);
}

/// --rate sends on a fixed schedule, and latency is measured from each
/// message's intended send time: one 300 ms server stall shows up in the
/// tail of the distribution instead of as a single slow sample.
#[test]
fn fixed_rate_measures_from_intended_send_times() {
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

/// Corruption and early closes under load are counted, reported and turned
/// into the documented exit codes.
#[test]
fn faulty_servers_are_caught_under_load() {
    let corrupting = FaultyServer::start(Fault::FlipByteAt(10_000));
    let exit = client(&[
        "bench",
        &corrupting.addr(),
        "-c",
        "3",
        "-n",
        "3000",
        "--json",
    ]);
    assert_eq!(exit.code(), Some(1), "{}", exit.describe());
    let doc = json_of(&exit);
    assert_eq!(doc["mismatches"], 3);
    assert!(
        doc["error"]
            .as_str()
            .unwrap()
            .contains("at byte offset 10000"),
        "{doc}"
    );
    assert!(
        exit.stderr.contains("echo-client: echo differs"),
        "{}",
        exit.stderr
    );

    let closing = FaultyServer::start(Fault::CloseAfter(640));
    let exit = client(&["bench", &closing.addr(), "-c", "2", "-n", "1000", "--json"]);
    assert_eq!(exit.code(), Some(6), "{}", exit.describe());
    let doc = json_of(&exit);
    assert_eq!(doc["closed_early"], 2);

    let port = closed_port();
    let exit = client(&["bench", &format!("127.0.0.1:{port}"), "-n", "10"]);
    assert_eq!(exit.code(), Some(3), "{}", exit.describe());
    assert_eq!(
        exit.stderr.trim(),
        format!("echo-client: nothing is listening on 127.0.0.1:{port} — is echo-server running?")
    );
}

/// One client process holds 10,000 connections on one event loop, and every
/// one of them echoes exactly.
#[test]
fn ten_thousand_connections_from_one_process() {
    const N: u64 = 10_000;
    // The server and the client each need N descriptors plus a margin, and
    // inherit this process's limit.
    if raise_nofile(N + 1_000) < N + 1_000 {
        skip(
            "ten_thousand_connections_from_one_process",
            "cannot raise the open file limit to 11,000",
        );
        return;
    }
    let server = Server::start(&[]);
    let exit = client(&[
        "bench",
        &server.addr().to_string(),
        "-c",
        "10000",
        "-n",
        "20000",
        "-W",
        "20",
        "--json",
    ]);
    assert_eq!(exit.code(), Some(0), "{}", exit.describe());
    let doc = json_of(&exit);
    assert_eq!(doc["connected"], N);
    assert_eq!(doc["messages"], 2 * N);
    assert_eq!(doc["mismatches"], 0);
    assert_eq!(server_bytes_in(server), 2 * N * 64);
}

/// On a terminal, a run longer than two seconds shows live progress once a
/// second on stderr; --quiet suppresses it (and a pipe never gets it, as
/// the other tests check). `script` provides the terminal.
#[test]
fn progress_on_a_terminal_unless_quiet() {
    if !common::require_tool("progress_on_a_terminal_unless_quiet", "script") {
        return;
    }
    let server = Server::start(&[]);
    let run = |extra: &str| {
        let command = format!(
            "{} bench {} --duration 2.5 --warmup 0 {extra}",
            client_support::CLIENT,
            server.addr()
        );
        let mut cmd = std::process::Command::new("script");
        cmd.args(["-qec", &command, "/dev/null"]);
        common::run_cmd_to_exit(cmd, Duration::from_secs(30))
    };
    let shown = run("");
    assert_eq!(shown.code(), Some(0), "{}", shown.describe());
    let text = shown.stdout.join("\n");
    let ticks = text.matches("\x1b[K").count();
    assert!(ticks >= 2, "expected progress updates, got:\n{text:?}");
    assert!(
        text.contains(" s / 2 s: ") && text.contains(" msgs/s, "),
        "{text:?}"
    );
    let quiet = run("--quiet");
    assert_eq!(quiet.code(), Some(0), "{}", quiet.describe());
    let text = quiet.stdout.join("\n");
    assert!(
        !text.contains("\x1b[K") && !text.contains(" s / 2 s: "),
        "{text:?}"
    );
    assert!(text.contains("Throughput:"), "{text:?}");
}

/// Ctrl+C during a long run ends the window there: the report of what was
/// measured so far is printed and the exit code reflects the results (0).
#[test]
fn ctrl_c_reports_what_was_measured() {
    use std::os::unix::process::CommandExt;
    let server = Server::start(&[]);
    let out_path =
        std::env::temp_dir().join(format!("echo-client-bench-{}.json", std::process::id()));
    let mut child = std::process::Command::new(client_support::CLIENT)
        .args([
            "bench",
            &server.addr().to_string(),
            "-c",
            "4",
            "--duration",
            "30",
            "--warmup",
            "0.2",
            "--json",
        ])
        .stdout(std::fs::File::create(&out_path).unwrap())
        .stderr(std::process::Stdio::null())
        .process_group(0)
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(1200));
    let _ = std::process::Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status();
    let stopped = common::wait_until(Duration::from_secs(10), || {
        child.try_wait().unwrap().is_some()
    });
    if !stopped {
        let _ = child.kill();
    }
    let text = std::fs::read_to_string(&out_path).unwrap();
    std::fs::remove_file(&out_path).unwrap();
    assert!(stopped, "bench did not stop on SIGINT");
    assert_eq!(child.wait().unwrap().code(), Some(0), "{text}");
    let doc: serde_json::Value = serde_json::from_str(text.trim()).expect("one JSON document");
    assert_eq!(doc["interrupted"], true);
    assert!(num(&doc, &["messages"]) > 0.0);
    let elapsed = num(&doc, &["elapsed_s"]);
    assert!(
        (0.5..5.0).contains(&elapsed),
        "window {elapsed} s, not the 30 s asked"
    );
}
