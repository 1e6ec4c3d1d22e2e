//! `echo-client bench` against the real echo-server: exact message counts,
//! verified bytes (its counts agree with the server's own), depth, bulk,
//! 10,000 connections from one process, and faulty servers whose
//! corruption or early close is caught. `--rate` has its own file,
//! `client_rate.rs`.

use std::time::Duration;

use crate::support::client::{client, json_of, num, Fault, FaultyServer};
use crate::support::{closed_port, one_at_a_time, raise_nofile, skip, Server};

/// The server's summary line, after a clean stop, for its byte counters.
pub(crate) fn server_bytes_in(mut server: Server) -> u64 {
    let exit = server.stop("INT", Duration::from_secs(10));
    let summary = exit
        .stdout
        .iter()
        .find(|l| l.starts_with("Summary:"))
        .unwrap_or_else(|| panic!("no summary:\n{}", exit.describe()))
        .clone();
    crate::support::parse_summary(&summary)
        .unwrap_or_else(|| panic!("malformed summary: {summary}"))
        .bytes_in
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

/// What a silent server has read once the client's bytes stop arriving
/// (they are all written by the time the client exits).
fn settled_received(server: &FaultyServer) -> u64 {
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    let mut last = server.received();
    loop {
        std::thread::sleep(Duration::from_millis(100));
        let now = server.received();
        if now == last || std::time::Instant::now() > deadline {
            return now;
        }
        last = now;
    }
}

/// Runs a 1 s bulk benchmark against a server that reads everything and
/// echoes nothing, and returns what it reported and what the server read.
fn bulk_into_silence(extra: &[&str]) -> (serde_json::Value, u64) {
    let silent = FaultyServer::start(Fault::Silent);
    let mut args = vec![
        "bench",
        "--bulk",
        "--duration",
        "1",
        "--warmup",
        "0",
        "-W",
        "1",
        "--json",
    ];
    args.extend_from_slice(extra);
    let addr = silent.addr();
    args.push(&addr);
    let exit = client(&args);
    // No echo ever came: the drain times out with the bytes unechoed.
    assert_eq!(exit.code(), Some(5), "{}", exit.describe());
    let doc = json_of(&exit);
    assert_eq!(doc["incomplete"], 1, "{doc}");
    (doc, settled_received(&silent))
}

/// Bulk keeps at most --in-flight bytes written and not yet echoed: a
/// server that reads promptly and never echoes gets exactly the whole
/// 64 KiB writes that fit, where an unbounded sender would push
/// gigabytes into it in the same second. By default the bound follows the
/// socket's send buffer, which the kernel keeps within tcp_wmem's maximum;
/// it stays within a quarter of tcp_rmem's maximum, and never below 1 MiB.
#[test]
fn bulk_keeps_at_most_in_flight_bytes_unechoed() {
    const WRITE: u64 = 65536;
    for (arg, limit) in [("300K", 300 * 1024), ("3M", 3 << 20)] {
        let (doc, received) = bulk_into_silence(&["--in-flight", arg]);
        assert_eq!(doc["in_flight"]["auto"], false, "{doc}");
        assert_eq!(doc["in_flight"]["largest_bytes"], limit, "{doc}");
        assert_eq!(received, limit / WRITE * WRITE, "--in-flight {arg}");
    }

    let max_of = |name: &str| -> u64 {
        std::fs::read_to_string(format!("/proc/sys/net/ipv4/{name}"))
            .expect(name)
            .split_whitespace()
            .nth(2)
            .and_then(|v| v.parse().ok())
            .expect("the maximum")
    };
    let ceiling = max_of("tcp_wmem").min(max_of("tcp_rmem") / 4).max(1 << 20);
    let (doc, received) = bulk_into_silence(&[]);
    assert_eq!(doc["in_flight"]["auto"], true, "{doc}");
    let largest = num(&doc, &["in_flight", "largest_bytes"]) as u64;
    assert!(largest >= 1 << 20 && largest <= ceiling, "{doc}");
    assert!(
        received >= (1 << 20) && received <= largest,
        "{received} bytes in flight, limit {largest}"
    );
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

/// What one client run under strace did: the pipes it got or was refused,
/// and the bytes it moved with each call that can reach a socket.
#[derive(Debug, Default)]
struct Traced {
    pipes: u64,
    pipes_refused: u64,
    vmsplices: u64,
    /// Sum of splice results: in the client, only pipe to socket.
    spliced: u64,
    /// Sum of sendto results: std's copying socket writes.
    sent: u64,
}

/// Runs `sh -c script` (which execs the client) under strace, with
/// `strace_args` added (fault injection), and adds up the calls. `None`
/// after printing SKIP when strace cannot trace here.
fn traced(
    test: &str,
    strace_args: &[&str],
    script: &str,
) -> Option<(crate::support::Exit, Traced)> {
    let log =
        std::env::temp_dir().join(format!("echo-client-{test}-{}.strace", std::process::id()));
    let mut cmd = std::process::Command::new("strace");
    cmd.args(["-f", "-qq", "-s", "0", "-o"])
        .arg(&log)
        .args(["-e", "trace=pipe2,vmsplice,splice,sendto"])
        .args(strace_args)
        .args(["sh", "-c", script]);
    let exit = crate::support::run_cmd_to_exit(cmd, Duration::from_secs(30));
    let text = std::fs::read_to_string(&log).unwrap_or_default();
    let _ = std::fs::remove_file(&log);
    if exit.stderr.contains("strace:") && exit.stderr.contains("ptrace") {
        skip(
            test,
            &format!("strace cannot trace here: {}", exit.stderr.trim()),
        );
        return None;
    }
    let mut t = Traced::default();
    for line in text.lines() {
        // "PID name(args) = RESULT [ERRNO (text)]"
        let call = line
            .trim_start_matches(|c: char| c.is_ascii_digit())
            .trim_start();
        let Some((name, _)) = call.split_once('(') else {
            continue;
        };
        let Some((_, result)) = call.rsplit_once(") = ") else {
            panic!("unexpected strace line: {line}");
        };
        let value: i64 = result
            .split_whitespace()
            .next()
            .and_then(|r| r.parse().ok())
            .unwrap_or_else(|| panic!("unexpected strace line: {line}"));
        match (name, value) {
            ("pipe2", 0) => t.pipes += 1,
            ("pipe2", _) => t.pipes_refused += 1,
            ("vmsplice", n) if n > 0 => t.vmsplices += 1,
            ("splice", n) if n > 0 => t.spliced += n as u64,
            ("sendto", n) if n > 0 => t.sent += n as u64,
            _ => {}
        }
    }
    Some((exit, t))
}

/// The shell command of a bulk run on 3 connections: `writes` writes of
/// `size` bytes in all, JSON out.
fn bulk_script(server: &Server, writes: u64, size: u64) -> String {
    format!(
        "exec '{}' bench {} --bulk -c 3 -s {size} -n {writes} --json",
        crate::support::client::CLIENT,
        server.addr()
    )
}

/// Bulk sends without copying: every byte reaches the socket through a
/// pipe filled by vmsplice, none through a copying send, and the bytes
/// spliced are exactly those the server received and the client verified.
#[test]
fn bulk_sends_through_a_pipe_without_copying() {
    const TEST: &str = "bulk_sends_through_a_pipe_without_copying";
    const WRITES: u64 = 300;
    const SIZE: u64 = 100_003;
    if !crate::support::require_tool(TEST, "strace") {
        return;
    }
    let server = Server::start(&[]);
    let script = bulk_script(&server, WRITES, SIZE);
    let Some((exit, t)) = traced(TEST, &[], &script) else {
        return;
    };
    assert_eq!(exit.code(), Some(0), "{}", exit.describe());
    let doc = json_of(&exit);
    assert_eq!(doc["mismatches"], 0);
    assert_eq!(doc["bytes"], WRITES * SIZE);
    assert_eq!((t.pipes, t.pipes_refused), (3, 0), "{t:?}");
    assert!(t.vmsplices >= WRITES, "{t:?}");
    assert_eq!(t.spliced, WRITES * SIZE, "{t:?}");
    assert_eq!(t.sent, 0, "{t:?}");
    assert_eq!(server_bytes_in(server), WRITES * SIZE);
}

/// A connection that cannot have a pipe (no descriptor left once the
/// connections are open) copies instead, next to connections that splice,
/// and every byte is still verified. The open file limit is raised one by
/// one until every connection gets its pipe; the limits in between leave
/// some connections without.
#[test]
fn bulk_connections_without_a_pipe_copy_instead() {
    const TEST: &str = "bulk_connections_without_a_pipe_copy_instead";
    if !crate::support::require_tool(TEST, "strace") {
        return;
    }
    let server = Server::start(&[]);
    let mut mixed = 0;
    let mut all_piped = false;
    for limit in 16..64 {
        let script = format!(
            "ulimit -n {limit} && exec '{}' bench {} --bulk -c 3 -s 100003 \
             --duration 0.3 --warmup 0 --json",
            crate::support::client::CLIENT,
            server.addr()
        );
        let Some((exit, t)) = traced(TEST, &[], &script) else {
            return;
        };
        if exit.code() != Some(0) && exit.stderr.contains("open files") {
            // Too few even for the connections: the client refuses to start.
            continue;
        }
        assert_eq!(exit.code(), Some(0), "limit {limit}: {}", exit.describe());
        let doc = json_of(&exit);
        assert_eq!(doc["mismatches"], 0);
        assert_eq!(doc["incomplete"], 0);
        assert!(num(&doc, &["bytes"]) > 0.0);
        if t.pipes_refused == 0 {
            assert_eq!((t.pipes, t.sent), (3, 0), "limit {limit}: {t:?}");
            all_piped = true;
            break;
        }
        // The first refusal ends the attempts.
        assert_eq!(t.pipes_refused, 1, "limit {limit}: {t:?}");
        assert!(t.sent > 0, "limit {limit}: {t:?}");
        if t.pipes > 0 {
            assert!(t.vmsplices > 0 && t.spliced > 0, "limit {limit}: {t:?}");
            mixed += 1;
        } else {
            assert_eq!((t.vmsplices, t.spliced), (0, 0), "limit {limit}: {t:?}");
        }
    }
    assert!(all_piped, "no limit up to 63 gave every connection a pipe");
    assert!(mixed > 0, "no limit left some connections without a pipe");
}

/// When vmsplice fails (strace makes it: ENOSYS on every call, as under a
/// sandbox that forbids it; ENOMEM from the fifth call on, after bytes went
/// through the pipes), the connections copy instead, and the server still
/// receives exactly the bytes sent, every one verified.
#[test]
fn bulk_copies_when_vmsplice_fails() {
    const TEST: &str = "bulk_copies_when_vmsplice_fails";
    const WRITES: u64 = 300;
    const SIZE: u64 = 100_003;
    if !crate::support::require_tool(TEST, "strace") {
        return;
    }
    let server = Server::start(&[]);
    let script = bulk_script(&server, WRITES, SIZE);
    for (inject, piped) in [
        ("inject=vmsplice:error=ENOSYS", false),
        ("inject=vmsplice:error=ENOMEM:when=5+", true),
    ] {
        let Some((exit, t)) = traced(TEST, &["-e", inject], &script) else {
            return;
        };
        assert_eq!(exit.code(), Some(0), "{inject}: {}", exit.describe());
        let doc = json_of(&exit);
        assert_eq!(doc["mismatches"], 0);
        assert_eq!(doc["bytes"], WRITES * SIZE);
        assert_eq!(t.pipes, 3, "{inject}: {t:?}");
        assert_eq!(t.spliced > 0, piped, "{inject}: {t:?}");
        assert_eq!(t.spliced + t.sent, WRITES * SIZE, "{inject}: {t:?}");
    }
    assert_eq!(server_bytes_in(server), 2 * WRITES * SIZE);
}

/// The checks hold for bytes sent through pipes: a flipped byte on each of
/// three bulk connections, and a dropped byte, are reported at their
/// offset with exit code 1.
#[test]
fn bulk_corruption_is_caught_at_its_offset() {
    let bulk = ["--bulk", "--duration", "2", "--warmup", "0", "--json"];
    let corrupting = FaultyServer::start(Fault::FlipByteAt(1_000_003));
    let addr = corrupting.addr();
    let mut args = vec!["bench", &addr, "-c", "3"];
    args.extend(bulk);
    let exit = client(&args);
    assert_eq!(exit.code(), Some(1), "{}", exit.describe());
    let doc = json_of(&exit);
    assert_eq!(doc["mismatches"], 3, "{doc}");
    let error = doc["error"].as_str().unwrap();
    assert!(error.contains("at byte offset 1000003"), "{doc}");

    let dropping = FaultyServer::start(Fault::DropByteAt(2_000_001));
    let addr = dropping.addr();
    let mut args = vec!["bench", &addr];
    args.extend(bulk);
    let exit = client(&args);
    assert_eq!(exit.code(), Some(1), "{}", exit.describe());
    let doc = json_of(&exit);
    assert_eq!(doc["mismatches"], 1, "{doc}");
    let error = doc["error"].as_str().unwrap();
    assert!(error.contains("at byte offset 2000001"), "{doc}");
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
        format!("echo-client: nothing is listening on 127.0.0.1:{port} — is echo-server running? (or on IPv6 only: try [::1]:{port})")
    );
}

/// One client process holds 10,000 connections on one event loop, and every
/// one of them echoes exactly.
#[test]
fn ten_thousand_connections_from_one_process() {
    let _turn = one_at_a_time();
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
    if !crate::support::require_tool("progress_on_a_terminal_unless_quiet", "script") {
        return;
    }
    let server = Server::start(&[]);
    let run = |extra: &str| {
        let command = format!(
            "{} bench {} --duration 2.5 --warmup 0 {extra}",
            crate::support::client::CLIENT,
            server.addr()
        );
        let mut cmd = std::process::Command::new("script");
        cmd.args(["-qec", &command, "/dev/null"]);
        crate::support::run_cmd_to_exit(cmd, Duration::from_secs(30))
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
    let mut child = std::process::Command::new(crate::support::client::CLIENT)
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
    let stopped = crate::support::wait_until(Duration::from_secs(10), || {
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
