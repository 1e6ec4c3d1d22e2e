//! `echo-client ping`: one line per probe, loss and RTT statistics, connect
//! time per probe with --reconnect, Ctrl+C prints the summary so far (a
//! probe it cut short is lost), the interval holds after a slow probe, and
//! lost or corrupted probes (extra bytes after an echo included) are
//! counted against the right probe and reflected in the exit code.

use std::process::Command;
use std::time::Duration;

use crate::support::client::{
    client, client_interrupted_when, json_of, num, Fault, FaultyServer, CLIENT,
};
use crate::support::{closed_port, delay_proxy, Server};

/// Probe lines carry seq, bytes and RTT; the summary counts them and gives
/// min/avg/max/mdev and p50/p95/p99.
#[test]
fn probes_and_summary() {
    let server = Server::start(&[]);
    let addr = server.addr().to_string();
    let exit = client(&["ping", &addr, "-c", "4", "-i", "0.05", "-s", "100"]);
    assert_eq!(exit.code(), Some(0), "{}", exit.describe());
    let out = &exit.stdout;
    assert!(out[0].starts_with(&format!(
        "ECHO PING {addr}: 100-byte probes over one connection"
    )));
    assert!(
        out[1].starts_with(&format!("Connected to {addr} in ")),
        "{out:?}"
    );
    for seq in 1..=4 {
        let prefix = format!("100 bytes from {addr}: seq={seq} time=");
        assert!(
            out.iter().any(|l| l.starts_with(&prefix)),
            "no {prefix:?} in {out:?}"
        );
    }
    assert!(out
        .iter()
        .any(|l| l.starts_with("4 probes sent, 4 received, 0 lost (0.0% loss), 0 mismatched")));
    assert!(out
        .iter()
        .any(|l| l.starts_with("connect min/avg/max = ") && l.ends_with("over 1 connection")));
    assert!(out.iter().any(|l| l.starts_with("rtt min/avg/max/mdev = ")));
    assert!(out.iter().any(|l| l.starts_with("rtt p50/p95/p99 = ")));
    // One connection carried every probe.
    assert_eq!(
        server.wait_count(|l| l.contains("[CONNECT]"), 1, Duration::from_secs(5)),
        1
    );
}

/// --reconnect: a fresh connection per probe, each with its connect time.
#[test]
fn reconnect_times_each_handshake() {
    let server = Server::start(&[]);
    let addr = server.addr().to_string();
    let exit = client(&[
        "ping",
        &addr,
        "-c",
        "3",
        "-i",
        "0.05",
        "--reconnect",
        "--json",
    ]);
    assert_eq!(exit.code(), Some(0), "{}", exit.describe());
    let doc = json_of(&exit);
    assert_eq!(doc["sent"], 3);
    assert_eq!(doc["received"], 3);
    assert_eq!(doc["connect_ms"]["count"], 3);
    let probes = doc["probes"].as_array().expect("probes");
    assert_eq!(probes.len(), 3);
    for p in probes {
        assert_eq!(p["ok"], true);
        assert!(
            num(p, &["connect_ms"]) > 0.0 && num(p, &["rtt_ms"]) > 0.0,
            "{p}"
        );
    }
    for key in ["min", "avg", "max", "mdev", "p50", "p95", "p99"] {
        assert!(num(&doc, &["rtt_ms", key]) >= 0.0);
    }
    assert!(num(&doc, &["rtt_ms", "min"]) <= num(&doc, &["rtt_ms", "p99"]));
    assert_eq!(
        server.wait_count(|l| l.contains("[CONNECT]"), 3, Duration::from_secs(5)),
        3
    );
}

/// Ctrl+C during an endless ping prints the summary of the probes so far
/// and exits 0 when they all came back.
#[test]
fn ctrl_c_prints_the_summary_so_far() {
    let server = Server::start(&[]);
    let addr = server.addr().to_string();
    // Signalled as soon as probe 3 is printed: well inside the 0.3 s pause
    // before probe 4, so no probe is cut short.
    let (code, text) = client_interrupted_when(
        &["ping", &addr, "-c", "0", "-i", "0.3"],
        |t| t.contains("seq=3 "),
        Duration::ZERO,
    );
    assert_eq!(code, Some(0), "{text}");
    assert!(text.contains("echo ping statistics"), "{text}");
    assert!(
        text.contains("received, 0 lost (0.0% loss), 0 mismatched"),
        "{text}"
    );
    assert!(text.contains("(interrupted)"), "{text}");
}

/// A probe still waiting for its echo when Ctrl+C comes was sent and got
/// no answer: it is counted as lost (a dead server must not look like 0%
/// loss); with --strict the exit code says the run was cut short.
#[test]
fn ctrl_c_counts_the_unanswered_probe_as_lost() {
    // Two came back: exit 0, as iputils' ping (the default); with
    // --strict the probe Ctrl+C cut short fails the run.
    for (strict, expected) in [(false, 0), (true, 130)] {
        // Echoes two probes, then holds the third for 20 s.
        let stalling = FaultyServer::start(Fault::StallOnce(128, Duration::from_secs(20)));
        let addr = stalling.addr();
        // Probe 3 leaves 0.05 s after probe 2; signalled 0.3 s after that.
        let mut args = vec!["ping", &addr, "-c", "0", "-i", "0.05"];
        if strict {
            args.push("--strict");
        }
        let (code, text) =
            client_interrupted_when(&args, |t| t.contains("seq=2 "), Duration::from_millis(300));
        assert_eq!(code, Some(expected), "strict {strict}: {text}");
        assert!(
            text.lines()
                .any(|l| l.starts_with("seq=3 lost: no echo after ")
                    && l.ends_with(", when Ctrl+C stopped the wait")),
            "{text}"
        );
        assert!(
            text.contains("3 probes sent, 2 received, 1 lost (33.3% loss), 0 mismatched"),
            "{text}"
        );
    }
}

/// The server goes away after some probes came back: exit 0 as iputils'
/// ping exits when any reply came back; with --strict, the code of the last
/// lost probe (3: refused, once the client reconnects).
#[test]
fn exit_zero_when_any_probe_came_back_unless_strict() {
    for (strict, expected) in [(false, 0), (true, 3)] {
        let mut server = Server::start(&["-v"]);
        let addr = server.addr().to_string();
        let mut args = vec!["ping", &addr, "-c", "6", "-i", "0.2", "-W", "1"];
        if strict {
            args.push("--strict");
        }
        let run = {
            let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
            std::thread::spawn(move || {
                let args: Vec<&str> = args.iter().map(String::as_str).collect();
                client(&args)
            })
        };
        // Two probes echoed (a DATA line each), then the server is gone.
        server.wait_count(|l| l.contains("DATA"), 2, Duration::from_secs(10));
        server.stop("KILL", Duration::from_secs(10));
        let exit = run.join().unwrap();
        assert_eq!(
            exit.code(),
            Some(expected),
            "strict {strict}: {}",
            exit.describe()
        );
        let summary = exit
            .stdout
            .iter()
            .find(|l| l.starts_with("6 probes sent, "))
            .unwrap_or_else(|| panic!("no summary\n{}", exit.describe()));
        let received: u64 = summary["6 probes sent, ".len()..]
            .split(' ')
            .next()
            .and_then(|n| n.parse().ok())
            .unwrap();
        assert!((2..6).contains(&received), "{}", exit.describe());
    }
    // None came back: never 0, with or without --strict.
    let refused = format!("127.0.0.1:{}", closed_port());
    let exit = client(&["ping", &refused, "-c", "2", "-i", "0.05"]);
    assert_eq!(exit.code(), Some(3), "{}", exit.describe());
}

/// After a slow probe the next ones keep their interval instead of going
/// out back to back to catch up with the original schedule (which would
/// also flatter their RTTs).
#[test]
fn probes_after_a_slow_one_keep_their_interval() {
    // Probe 2 (bytes 64..128) is held for 0.6 s.
    let stalling = FaultyServer::start(Fault::StallOnce(64, Duration::from_millis(600)));
    let exit = client(&["ping", &stalling.addr(), "-c", "5", "-i", "0.2"]);
    assert_eq!(exit.code(), Some(0), "{}", exit.describe());
    // 0.2 s to probe 2, its 0.6 s, then probes 3, 4 and 5 each 0.2 s after
    // the last one's start: at least 1.2 s in all. Catching up, they took
    // 0.8 s.
    let summary = exit
        .stdout
        .iter()
        .find(|l| l.starts_with("5 probes sent, 5 received"))
        .unwrap_or_else(|| panic!("no summary\n{}", exit.describe()));
    let ms: u64 = summary
        .rsplit_once("time ")
        .and_then(|(_, t)| t.strip_suffix(" ms"))
        .and_then(|t| t.parse().ok())
        .unwrap_or_else(|| panic!("no time in {summary}"));
    assert!(ms >= 1_150, "{summary}");
}

/// Bytes the server sends after a probe's echo (here 50 ms later) are that
/// probe's fault: caught before the next probe, or at the end of the run,
/// and never blamed on the probe after.
#[test]
fn bytes_after_an_echo_are_charged_to_its_probe() {
    let late = FaultyServer::start(Fault::LateExtraByte(Duration::from_millis(50)));
    let addr = late.addr();
    for (args, probes) in [
        (&["-c", "2", "-i", "0.2"][..], 2),
        (&["-c", "1"][..], 1),
        (&["-c", "2", "-i", "0.05", "--reconnect"][..], 2),
    ] {
        let mut all = vec!["ping", &addr, "--json"];
        all.extend(args);
        let exit = client(&all);
        assert_eq!(exit.code(), Some(1), "{args:?}\n{}", exit.describe());
        let doc = json_of(&exit);
        assert_eq!(doc["mismatched"], probes, "{args:?}\n{doc}");
        for probe in doc["probes"].as_array().unwrap() {
            assert_eq!(probe["error_kind"], "mismatch", "{args:?}\n{doc}");
            let error = probe["error"].as_str().unwrap();
            // Every probe's extra byte follows its own 64 bytes: offset 64
            // on its connection.
            assert!(
                error.ends_with("an extra byte at offset 64"),
                "{args:?}\n{doc}"
            );
        }
    }
}

/// Lost probes (nothing listening, or a silent server) are counted as lost
/// with their reason, and the exit code says which failure it was.
#[test]
fn lost_probes_are_counted_with_their_reason() {
    let port = closed_port();
    let exit = client(&[
        "ping",
        &format!("127.0.0.1:{port}"),
        "-c",
        "2",
        "-i",
        "0.05",
    ]);
    assert_eq!(exit.code(), Some(3), "{}", exit.describe());
    assert!(exit
        .stdout
        .iter()
        .any(|l| l.starts_with("seq=1 lost: nothing is listening on")));
    assert!(exit
        .stdout
        .iter()
        .any(|l| l.starts_with("2 probes sent, 0 received, 2 lost (100.0% loss)")));

    let silent = FaultyServer::start(Fault::Silent);
    let exit = client(&[
        "ping",
        &silent.addr(),
        "-c",
        "2",
        "-i",
        "0.05",
        "-W",
        "0.2",
        "--json",
    ]);
    assert_eq!(exit.code(), Some(5), "{}", exit.describe());
    let doc = json_of(&exit);
    assert_eq!(
        (doc["sent"].clone(), doc["lost"].clone()),
        (2.into(), 2.into())
    );
    assert_eq!(doc["probes"][0]["error_kind"], "timeout");
    // After a timeout the stream is out of step: the next probe reconnects.
    assert_eq!(silent.accepted(), 2);
}

/// A server that corrupts the second probe: that probe is a mismatch, the
/// others succeed, and the exit code is 1.
#[test]
fn a_corrupted_probe_is_a_mismatch() {
    let faulty = FaultyServer::start(Fault::FlipByteAt(64 + 10));
    let exit = client(&["ping", &faulty.addr(), "-c", "3", "-i", "0.05"]);
    assert_eq!(exit.code(), Some(1), "{}", exit.describe());
    assert!(
        exit.stdout
            .iter()
            .any(|l| l
                .starts_with("seq=2 MISMATCH: echo differs from what was sent at byte offset 10")),
        "{}",
        exit.describe()
    );
    assert!(exit
        .stdout
        .iter()
        .any(|l| l.starts_with("3 probes sent, 2 received, 1 lost (33.3% loss), 1 mismatched")));
}

/// `echo-client ping | head -n 2`: when the reader of stdout goes away the
/// client ends quietly, like any Unix filter, instead of panicking.
#[test]
fn closed_stdout_ends_quietly() {
    let server = Server::start(&[]);
    let command = format!("{CLIENT} ping {} -c 0 -i 0.01 | head -n 2", server.addr());
    let mut cmd = Command::new("sh");
    cmd.args(["-c", &command]);
    let exit = crate::support::run_cmd_to_exit(cmd, Duration::from_secs(20));
    assert_eq!(exit.stdout.len(), 2, "{}", exit.describe());
    crate::support::assert_no_panic(&exit.stderr);
    assert!(exit.stderr.is_empty(), "{}", exit.stderr);
}

/// Through a proxy that adds 10 ms, each RTT is the 10 ms plus loopback
/// scale, timed to the kernel's receive timestamp (the clock after the
/// read is the fallback, reported as such); the summary and --json carry
/// the client socket's TCP_INFO.
#[test]
fn rtt_is_timed_by_the_kernel_stamp_and_tcp_info_is_reported() {
    let _turn = crate::support::one_at_a_time();
    let server = Server::start(&[]);
    let delay = Duration::from_millis(10);
    let proxy = delay_proxy(server.addr(), delay, 1);
    let exit = client(&["ping", &proxy, "-c", "5", "-i", "0.05", "--json"]);
    assert_eq!(exit.code(), Some(0), "{}", exit.describe());
    let doc = json_of(&exit);
    assert_eq!(doc["received"], 5, "{doc}");
    let (kernel, clock) = (
        num(&doc, &["rtt_source", "kernel"]),
        num(&doc, &["rtt_source", "clock"]),
    );
    assert_eq!(kernel + clock, 5.0, "{doc}");
    // The kernel switches stamping on a moment after the first socket asks
    // (deferred work): the first probe may fall back to the clock.
    assert!(kernel >= 4.0, "{doc}");
    for probe in doc["probes"].as_array().unwrap() {
        let rtt = num(probe, &["rtt_ms"]);
        assert!((10.0..60.0).contains(&rtt), "{probe}");
        assert!(
            probe["rtt_source"] == "kernel" || probe["rtt_source"] == "clock",
            "{probe}"
        );
    }
    let info = &doc["tcp_info"];
    assert!(num(info, &["srtt_ms"]) > 0.0, "{doc}");
    assert!(num(info, &["min_rtt_ms"]) > 0.0, "{doc}");
    assert_eq!(info["retransmits"], 0, "{doc}");
    assert!(num(info, &["pmtu"]) >= 1280.0, "{doc}");

    let proxy = delay_proxy(server.addr(), delay, 1);
    let exit = client(&["ping", &proxy, "-c", "3", "-i", "0.05"]);
    assert_eq!(exit.code(), Some(0), "{}", exit.describe());
    let text = exit.stdout.join("\n");
    assert!(
        text.contains("\nrtt measured to: the kernel's receive timestamp (SO_TIMESTAMPING)"),
        "{text}"
    );
    assert!(
        exit.stdout.iter().any(
            |l| l.starts_with("tcp_info: min_rtt ") && l.contains(", retransmits 0, path MTU ")
        ),
        "{text}"
    );
}

/// `rtt min/avg/max/mdev = a/b/c/d ms`, as iputils' ping and ours print it.
fn rtt_line(output: &str) -> Option<[f64; 4]> {
    let line = output
        .lines()
        .find(|l| l.starts_with("rtt min/avg/max/mdev = "))?;
    let figures = line
        .trim_start_matches("rtt min/avg/max/mdev = ")
        .trim_end_matches(" ms");
    let v: Vec<f64> = figures.split('/').filter_map(|x| x.parse().ok()).collect();
    v.try_into().ok()
}

/// At loopback scale the echo's RTT is of ICMP's order, as the real
/// `ping` measures it on the same host a moment before: an independent
/// check that the figure is the path's and not the client's own wake-up
/// (tens of µs on a VM) or a unit slip.
#[test]
fn rtt_is_of_icmp_pings_order_at_loopback() {
    if !crate::support::require_tool(
        "client_ping::rtt_is_of_icmp_pings_order_at_loopback",
        "ping",
    ) {
        return;
    }
    let _turn = crate::support::one_at_a_time();
    let icmp = Command::new("ping")
        .args(["-n", "-c", "10", "-i", "0.05", "127.0.0.1"])
        .output()
        .unwrap();
    let icmp_text = String::from_utf8_lossy(&icmp.stdout);
    let Some(icmp_rtt) = rtt_line(&icmp_text) else {
        // ICMP not allowed here (no raw sockets, no ping group): no reference.
        println!("SKIP: client_ping::rtt_is_of_icmp_pings_order_at_loopback: ping cannot send ICMP here: {icmp_text}");
        assert!(
            std::env::var_os("ECHO_SERVER_REQUIRE_TOOLS").is_none(),
            "ICMP ping required: {}",
            String::from_utf8_lossy(&icmp.stderr)
        );
        return;
    };
    let server = Server::start(&[]);
    let exit = client(&["ping", &server.addr().to_string(), "-c", "10", "-i", "0.05"]);
    assert_eq!(exit.code(), Some(0), "{}", exit.describe());
    let ours = rtt_line(&exit.stdout.join("\n")).unwrap_or_else(|| panic!("{}", exit.describe()));
    let (icmp_avg, our_avg) = (icmp_rtt[1], ours[1]);
    assert!(our_avg > 0.0 && ours[0] > 0.0, "{ours:?}");
    // An echo through a server is more work than ICMP, but of its order:
    // well under a millisecond where ICMP is, never many times it plus a
    // fixed margin for the server's own turn.
    assert!(
        our_avg <= icmp_avg * 10.0 + 0.2,
        "echo avg {our_avg} ms against ICMP avg {icmp_avg} ms\n{}",
        exit.describe()
    );
    assert!(our_avg < 1.0, "{ours:?}");
}
