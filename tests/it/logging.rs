//! Log output: events, counts, format, verbosity levels, statistics.

use crate::support::*;
use std::io::Write;
use std::net::SocketAddr;
use std::process::Command;
use std::thread;
use std::time::Duration;

const LOG_WAIT: Duration = Duration::from_secs(5);

#[test]
fn connect_and_disconnect_lines_carry_address_and_byte_counts() {
    // Proves: CONNECT/DISCONNECT lines name the client ip:port and report duration, exact RX/TX and `peer closed`.
    let srv = Server::start(&[]);
    let mut c = connect(srv.addr());
    let local = c.local_addr().unwrap();
    let mut sent = 0u64;
    for n in [10usize, 200, 3000] {
        let m = Rng::new(n as u64).bytes(n);
        echo_roundtrip(&mut c, &m);
        sent += n as u64;
    }
    thread::sleep(Duration::from_millis(1200));
    drop(c);
    let d = srv.wait_disconnect(local, LOG_WAIT);
    let lines = srv.lines();
    let connect_idx = lines
        .iter()
        .position(|l| l.ends_with(&format!("[CONNECT] {local}")))
        .unwrap_or_else(|| panic!("no CONNECT line for {local}\n{}", srv.dump()));
    let disc_idx = lines
        .iter()
        .position(|l| l.contains(&format!("[DISCONNECT] {local} (")))
        .unwrap();
    assert!(connect_idx < disc_idx, "CONNECT logged before DISCONNECT");
    let cl = parse_log(&lines[connect_idx]).unwrap();
    assert_eq!(
        (cl.level.as_str(), cl.details.as_str()),
        ("INFO", local.to_string().as_str())
    );
    assert_eq!(parse_log(&lines[disc_idx]).unwrap().level, "INFO");
    assert_eq!(d.addr, local.to_string());
    assert_eq!((d.rx, d.tx), (sent, sent), "{d:?}");
    assert_eq!(d.reason, "peer closed");
    assert!(
        (1.0..30.0).contains(&d.secs),
        "connected for ~1.2 s, logged {}s",
        d.secs
    );
}

#[test]
fn every_log_line_has_the_documented_format_and_utc_time() {
    // Proves: each stdout line after the banner is `<UTC ts> <LEVEL:5> [EVENT] details` (or the Summary), with current UTC timestamps.
    let mut srv = Server::start(&["--verbose"]);
    let mut c = connect(srv.addr());
    echo_roundtrip(&mut c, b"format check\n");
    drop(c);
    srv.wait_for("[DISCONNECT]", LOG_WAIT);
    let exit = srv.stop("INT", Duration::from_secs(10));
    assert_eq!(exit.code(), Some(0), "{}", exit.describe());
    let now = now_millis();
    let lines = &exit.stdout;
    assert_eq!(lines[0], "Echo Server v0.1.0");
    assert!(lines[1].starts_with("Listening on 127.0.0.1:"));
    assert_eq!(lines[2], "Mode: echo");
    assert_eq!(lines[3], "Press Ctrl+C to stop");
    let mut prev_ts = 0;
    let mut seen = Vec::new();
    for line in &lines[4..] {
        if line.is_empty() || line.starts_with("Summary: ") {
            continue;
        }
        let log = parse_log(line).unwrap_or_else(|| panic!("not a log line: {line:?}"));
        let ts = parse_ts_millis(&log.ts).unwrap();
        assert!(
            (ts - now).abs() < 120_000,
            "timestamp {} is not current UTC (now {now} ms)",
            log.ts
        );
        assert!(ts >= prev_ts, "timestamps go backwards at {line:?}");
        prev_ts = ts;
        let expected_level = match log.event.as_str() {
            "DATA" => "DEBUG",
            "REJECT" => "WARN",
            "ERROR" => "ERROR",
            _ => "INFO",
        };
        assert_eq!(log.level, expected_level, "level of {line:?}");
        seen.push(log.event);
    }
    for ev in ["CONNECT", "DATA", "DISCONNECT", "SHUTDOWN"] {
        assert!(
            seen.iter().any(|e| e == ev),
            "no {ev} line\n{}",
            exit.describe()
        );
    }
    assert!(
        lines.last().unwrap().starts_with("Summary: "),
        "Summary is the last line\n{}",
        exit.describe()
    );
}

fn data_lines_for(srv: &Server, client: SocketAddr) -> Vec<(String, u64, u64)> {
    srv.events("DATA")
        .into_iter()
        .filter(|l| l.details.starts_with(&format!("{client} ")))
        .map(|l| {
            let rest = &l.details[client.to_string().len() + 1..];
            let n = numbers(rest);
            assert_eq!(
                rest,
                format!("RX: {} bytes, TX: {} bytes", n[0], n[1]),
                "DATA format"
            );
            (l.level, n[0], n[1])
        })
        .collect()
}

#[test]
fn data_lines_only_with_verbose() {
    // Proves: DATA lines (DEBUG, with RX/TX byte counts) appear with -v/--verbose and never without it.
    let msg = [b'z'; 42];
    // Without --verbose: no DATA.
    {
        let srv = Server::start(&[]);
        let mut c = connect(srv.addr());
        echo_roundtrip(&mut c, &msg);
        let local = c.local_addr().unwrap();
        drop(c);
        srv.wait_disconnect(local, LOG_WAIT);
        assert_eq!(srv.count(|l| l.contains("[DATA]")), 0, "{}", srv.dump());
    }
    for flag in ["--verbose", "-v"] {
        let srv = Server::start(&[flag]);
        let mut c = connect(srv.addr());
        echo_roundtrip(&mut c, &msg);
        let local = c.local_addr().unwrap();
        drop(c);
        srv.wait_disconnect(local, LOG_WAIT);
        let data = data_lines_for(&srv, local);
        assert!(!data.is_empty(), "{flag}: no DATA line\n{}", srv.dump());
        for (level, rx, tx) in &data {
            assert_eq!(level, "DEBUG");
            assert!(*rx <= 42 && *tx <= 42, "{data:?}");
        }
        // Per-event or cumulative counts: either way they account for the 42 bytes each way.
        let sum_rx: u64 = data.iter().map(|d| d.1).sum();
        let sum_tx: u64 = data.iter().map(|d| d.2).sum();
        let max_rx = data.iter().map(|d| d.1).max().unwrap();
        let max_tx = data.iter().map(|d| d.2).max().unwrap();
        assert!(
            (sum_rx == 42 || max_rx == 42) && (sum_tx == 42 || max_tx == 42),
            "{flag}: DATA lines do not account for 42 bytes each way: {data:?}"
        );
    }
}

#[test]
fn quiet_hides_info_and_warn_lines() {
    // Proves: with -q/--quiet no INFO/WARN/DEBUG line is printed (connects, rejects, shutdown), but banner and Summary are.
    for flag in ["--quiet", "-q"] {
        let mut srv = Server::start(&[flag, "--max-connections", "1"]);
        let mut a = connect(srv.addr());
        echo_roundtrip(&mut a, b"quiet please");
        let mut b = connect(srv.addr()); // rejected: would be a WARN line
        expect_closed(&mut b, Duration::from_secs(5));
        drop(a);
        thread::sleep(Duration::from_millis(300));
        let exit = srv.stop("INT", Duration::from_secs(10));
        assert_eq!(exit.code(), Some(0), "{}", exit.describe());
        let logs: Vec<&String> = exit
            .stdout
            .iter()
            .filter(|l| parse_log(l).is_some())
            .collect();
        assert!(logs.is_empty(), "{flag}: log lines printed: {logs:?}");
        assert!(
            exit.stdout[1].starts_with("Listening on "),
            "banner still printed"
        );
        let s = summary_of(&exit);
        assert_eq!((s.served, s.rejected), (1, 1), "{s:?}");
    }
}

#[test]
fn quiet_still_shows_errors() {
    // Proves: with --quiet an ERROR (accept failing for lack of fds) is still logged.
    if !require_tool("quiet_still_shows_errors", "prlimit") {
        return;
    }
    let mut cmd = Command::new("prlimit");
    cmd.arg("--nofile=16:16")
        .arg(BIN)
        .args(LOOPBACK_ARGS)
        .arg("--quiet");
    let mut srv = Server::start_cmd(cmd);
    let clients: Vec<_> = (0..24).map(|_| connect(srv.addr())).collect();
    let line = srv.wait_for("[ERROR]", Duration::from_secs(5));
    let log = parse_log(&line).expect("ERROR is a log line");
    assert_eq!(log.level, "ERROR");
    assert!(log.details.starts_with("accept failed: "), "{line}");
    let non_error: Vec<String> = srv
        .lines()
        .into_iter()
        .filter(|l| parse_log(l).is_some_and(|p| p.level != "ERROR"))
        .collect();
    assert!(non_error.is_empty(), "--quiet printed {non_error:?}");
    drop(clients);
    thread::sleep(Duration::from_millis(500));
    let exit = srv.stop("INT", Duration::from_secs(10));
    assert_eq!(exit.code(), Some(0), "{}", exit.describe());
    summary_of(&exit);
}

#[test]
fn no_line_mentions_mio() {
    // Proves: even with --verbose and RUST_LOG=trace, nothing from mio's internals reaches the output.
    let mut cmd = Command::new(BIN);
    cmd.args(LOOPBACK_ARGS)
        .arg("--verbose")
        .env("RUST_LOG", "trace");
    let mut srv = Server::start_cmd(cmd);
    for i in 0..5 {
        let mut c = connect(srv.addr());
        echo_roundtrip(&mut c, &Rng::new(i).bytes(100_000));
        if i == 4 {
            socket2::SockRef::from(&c)
                .set_linger(Some(Duration::ZERO))
                .unwrap();
            c.write_all(b"bye").unwrap();
        }
    }
    srv.wait_count(|l| l.contains("[DISCONNECT]"), 5, LOG_WAIT);
    let exit = srv.stop("TERM", Duration::from_secs(10));
    let all = format!("{}\n{}", exit.stdout.join("\n"), exit.stderr);
    let bad: Vec<&str> = all
        .lines()
        .filter(|l| l.to_lowercase().contains("mio"))
        .collect();
    assert!(bad.is_empty(), "lines mentioning mio: {bad:?}");
    assert!(
        exit.stdout.iter().any(|l| l.contains("[DATA]")),
        "verbose logging was on"
    );
}

#[test]
fn stats_lines_report_current_counts() {
    // Proves: --stats-interval 1 prints STATS lines every second with correct totals/active/peak/bytes/rejected.
    let srv = Server::start(&["--stats-interval", "1", "--max-connections", "2"]);
    let mut a = connect(srv.addr());
    echo_roundtrip(&mut a, &[1u8; 100]);
    let mut b = connect(srv.addr());
    echo_roundtrip(&mut b, &[2u8; 150]);
    let mut rejected = connect(srv.addr());
    expect_closed(&mut rejected, Duration::from_secs(5));
    srv.wait_for("[REJECT]", LOG_WAIT);
    let a_addr = a.local_addr().unwrap();
    drop(a);
    srv.wait_disconnect(a_addr, LOG_WAIT);
    let disc_idx = srv
        .lines()
        .iter()
        .position(|l| l.contains("[DISCONNECT]"))
        .unwrap();
    let (i1, l1) =
        srv.wait_for_line_from(disc_idx, |l| l.contains("[STATS]"), Duration::from_secs(3));
    let s1 = parse_log(&l1).unwrap();
    assert_eq!(s1.level, "INFO");
    let stats = parse_stats(&s1.details).unwrap_or_else(|| panic!("malformed STATS line: {l1:?}"));
    assert_eq!(
        stats,
        Stats {
            total: 2,
            active: 1,
            peak: 2,
            bytes_in: 250,
            bytes_out: 250,
            rejected: 1,
            timed_out: 0
        },
        "{l1}"
    );
    // And they keep coming, roughly once a second.
    let (_, l2) = srv.wait_for_line_from(i1 + 1, |l| l.contains("[STATS]"), Duration::from_secs(3));
    let t1 = parse_ts_millis(&s1.ts).unwrap();
    let t2 = parse_ts_millis(&parse_log(&l2).unwrap().ts).unwrap();
    assert!(
        (500..=2500).contains(&(t2 - t1)),
        "STATS lines {} ms apart with --stats-interval 1",
        t2 - t1
    );
    drop(b);
}

#[test]
fn stats_interval_zero_disables_stats() {
    // Proves: --stats-interval 0 means no STATS lines at all (not one per tick).
    let srv = Server::start(&["--stats-interval", "0"]);
    let mut c = connect(srv.addr());
    for _ in 0..5 {
        echo_roundtrip(&mut c, b"tick");
        thread::sleep(Duration::from_millis(500));
    }
    assert_eq!(srv.count(|l| l.contains("[STATS]")), 0, "{}", srv.dump());
}

/// A server whose stdout this test reads itself (so it can stop reading),
/// with that reader and the address from the banner.
fn server_with_log_pipe() -> (
    std::process::Child,
    std::io::BufReader<std::process::ChildStdout>,
    SocketAddr,
) {
    use std::io::BufRead;
    use std::process::Stdio;

    let mut child = Command::new(env!("CARGO_BIN_EXE_echo-server"))
        .args(["--port", "0", "--bind", "127.0.0.1"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn echo-server");
    let mut stdout = std::io::BufReader::new(child.stdout.take().unwrap());
    let addr = (0..5)
        .find_map(|_| {
            let mut line = String::new();
            stdout.read_line(&mut line).unwrap();
            line.trim()
                .strip_prefix("Listening on ")
                .map(|a| a.parse::<SocketAddr>().unwrap())
        })
        .expect("banner with the address");
    (child, stdout, addr)
}

#[test]
fn a_log_reader_gone_at_shutdown_does_not_cut_the_drain_short() {
    // Proves: once asked to stop, the server finishes its drain even if the
    // reader of its log is gone (`echo-server | tee log` and Ctrl+C end
    // `tee` as well): the client still gets the echo of what it had sent,
    // and the server exits 0 instead of dying by SIGPIPE on its SHUTDOWN
    // line.
    use std::io::{BufRead, Read, Write};

    let (mut child, mut stdout, addr) = server_with_log_pipe();
    let mut next_line = || {
        let mut line = String::new();
        stdout.read_line(&mut line).unwrap();
        line
    };
    // A client whose echo is still owed when the stop comes: it has sent a
    // megabyte and not read a byte of it back.
    let mut client = std::net::TcpStream::connect(addr).expect("connect");
    let sent = Rng::new(9).bytes(1 << 20);
    let writer = {
        let mut c = client.try_clone().unwrap();
        let data = sent.clone();
        std::thread::spawn(move || c.write_all(&data))
    };
    while !next_line().contains("[CONNECT]") {}
    drop(stdout); // the log reader goes away, as `tee` does on Ctrl+C
    std::thread::sleep(Duration::from_millis(200));
    let st = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(st.success());

    client
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    let mut echoed = Vec::new();
    client.read_to_end(&mut echoed).expect("the echo, then EOF");
    writer.join().unwrap().expect("the client's write");
    assert!(
        echoed == sent,
        "echoed {} of {} bytes",
        echoed.len(),
        sent.len()
    );
    drop(client);
    let (status, stderr) = wait_child_exit(
        &mut child,
        Duration::from_secs(10),
        "server kept running after the drain",
    );
    assert_eq!(status.code(), Some(0), "{status:?}; stderr: {stderr}");
    assert_no_panic(&stderr);
}
