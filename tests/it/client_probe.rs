//! `echo-client probe` against the real server on some ports of a list and
//! nothing on the others, against servers that misbehave, against a path
//! that drops packets (a network namespace of the test's own), and the
//! `--udp` modes (`probe`, `send`, `ping`) against a UDP echo peer.

use std::process::Command;
use std::time::{Duration, Instant};

use crate::support::client::{client, json_of, Fault, FaultyServer, CLIENT};
use crate::support::udp::{closed_udp_port, UdpEcho};
use crate::support::{
    assert_no_panic, closed_port, is_root, require_tool, run_cmd_to_exit, skip, Server,
};

/// The table's line for `port`.
fn row(stdout: &[String], port: u16) -> String {
    stdout
        .iter()
        .find(|l| l.split_whitespace().next() == Some(&port.to_string()))
        .unwrap_or_else(|| panic!("no row for port {port}: {stdout:#?}"))
        .clone()
}

fn state(stdout: &[String], port: u16) -> String {
    let line = row(stdout, port);
    line[port.to_string().len()..].trim().to_string()
}

/// Two servers, two ports where nothing listens: the open ones show their
/// connect time and RTT, the others `refused`, sorted by port, with the
/// summary and exit 8 (not every port answered); the open ones alone exit 0.
#[test]
fn open_and_refused_ports_in_one_run() {
    let a = Server::start(&[]);
    let b = Server::start(&[]);
    let (c1, c2) = (closed_port(), closed_port());
    let list = format!("{},{},{c1},{c2},{}", b.port(), a.port(), a.port());
    let exit = client(&["probe", "127.0.0.1", &list, "-W", "2"]);
    assert_eq!(exit.code(), Some(8), "{}", exit.describe());
    let out = &exit.stdout;
    assert!(
        out[0].starts_with("PROBE 127.0.0.1 (127.0.0.1): 4 TCP ports"),
        "{out:?}"
    );
    for port in [a.port(), b.port()] {
        let line = state(out, port);
        assert!(line.starts_with("open") && line.ends_with(" ms"), "{line}");
    }
    for port in [c1, c2] {
        assert_eq!(state(out, port), "refused");
    }
    let rows: Vec<u16> = out[2..out.len() - 1]
        .iter()
        .map(|l| l.split_whitespace().next().unwrap().parse().unwrap())
        .collect();
    let mut sorted = vec![a.port(), b.port(), c1, c2];
    sorted.sort_unstable();
    assert_eq!(rows, sorted, "one row per port, sorted");
    assert_eq!(out.last().unwrap(), "2 open, 2 refused");
    assert_no_panic(&exit.stderr);
    // Each server saw one probe, echoed.
    for s in [&a, &b] {
        assert_eq!(s.events("CONNECT").len(), 1, "{}", s.dump());
    }

    let exit = client(&[
        "probe",
        "localhost",
        &format!("{},{}", a.port(), b.port()),
        "--json",
    ]);
    assert_eq!(exit.code(), Some(0), "{}", exit.describe());
    let doc = json_of(&exit);
    assert_eq!(doc["all_open"], true);
    assert_eq!(doc["summary"]["open"], 2);
    assert_eq!(doc["ports"][0]["state"], "open");
    assert!(doc["ports"][0]["connect_ms"].as_f64().unwrap() >= 0.0);
    assert!(doc["ports"][0]["rtt_ms"].as_f64().unwrap() >= 0.0);
}

/// A server that flips a byte, one that closes, one that resets, one that
/// never answers: each port says which, and a wrong echo makes it exit 1.
#[test]
fn misbehaving_ports_are_told_apart() {
    let flip = FaultyServer::start(Fault::FlipByteAt(3));
    let close = FaultyServer::start(Fault::CloseAfter(0));
    let reset = FaultyServer::start(Fault::ResetAfter(0));
    let silent = FaultyServer::start(Fault::Silent);
    let port = |s: &FaultyServer| s.addr().rsplit(':').next().unwrap().parse::<u16>().unwrap();
    let list = [&flip, &close, &reset, &silent]
        .map(port)
        .map(|p| p.to_string())
        .join(",");
    let exit = client(&["probe", "127.0.0.1", &list, "-W", "0.5"]);
    assert_eq!(exit.code(), Some(1), "{}", exit.describe());
    let out = &exit.stdout;
    assert_eq!(state(out, port(&flip)), "wrong echo (differs at byte 3)");
    assert_eq!(state(out, port(&close)), "closed without echo");
    assert_eq!(state(out, port(&reset)), "reset");
    assert_eq!(
        state(out, port(&silent)),
        "no echo in 0.500 s (0 bytes came back)"
    );
    assert_eq!(
        out.last().unwrap(),
        "0 open, 1 reset, 1 closed, 1 wrong echo, 1 no echo"
    );
}

/// More ports than may be probed at once, and a time limit: every port is
/// still reported, the unprobed ones as such, and the run ends in time.
#[test]
fn concurrency_and_time_are_bounded() {
    let server = Server::start(&[]);
    let closed: Vec<u16> = (0..20).map(|_| closed_port()).collect();
    let mut ports: Vec<String> = closed.iter().map(u16::to_string).collect();
    ports.push(server.port().to_string());
    let list = ports.join(",");
    let exit = client(&["probe", "127.0.0.1", &list, "--concurrency", "3", "--json"]);
    let doc = json_of(&exit);
    assert_eq!(doc["summary"]["open"], 1);
    assert_eq!(
        doc["summary"]["refused"].as_u64().unwrap() + 1,
        doc["ports"].as_array().unwrap().len() as u64
    );

    // Two ports that never echo, one at a time, and a time limit shorter
    // than a probe: the first is probed to its timeout, the second never
    // starts, and the run ends then.
    let silent = [Fault::Silent, Fault::Silent].map(FaultyServer::start);
    let mut ports = silent
        .each_ref()
        .map(|s| s.addr().rsplit(':').next().unwrap().parse::<u16>().unwrap());
    ports.sort_unstable();
    let started = Instant::now();
    let exit = client(&[
        "probe",
        "127.0.0.1",
        &format!("{},{}", ports[0], ports[1]),
        "--concurrency",
        "1",
        "-W",
        "1",
        "--max-time",
        "0.3",
    ]);
    let took = started.elapsed();
    assert!(
        took >= Duration::from_secs(1) && took < Duration::from_secs(10),
        "{took:?}"
    );
    assert_eq!(exit.code(), Some(8), "{}", exit.describe());
    let out = &exit.stdout;
    assert_eq!(
        state(out, ports[0]),
        "no echo in 1.000 s (0 bytes came back)"
    );
    assert_eq!(state(out, ports[1]), "not probed (time limit or Ctrl+C)");
    assert_eq!(
        silent[1].accepted() + silent[0].accepted(),
        1,
        "only one port contacted"
    );
}

/// Bad port lists and hosts: a clear message and exit 2, no probe.
#[test]
fn bad_arguments_are_refused() {
    for (args, needle) in [
        (
            &["probe", "127.0.0.1", "7010-7000"][..],
            "reversed; write 7000-7010",
        ),
        (&["probe", "127.0.0.1", "0,80"], "port 0"),
        (&["probe", "127.0.0.1", "80,,81"], "empty item"),
        (&["probe", "127.0.0.1:80", "80"], "the ports go in PORTS"),
        (
            &["probe", "127.0.0.1", "http"],
            "'http' in 'http' is not a port",
        ),
    ] {
        let exit = client(args);
        assert_eq!(exit.code(), Some(2), "{args:?}: {}", exit.describe());
        assert!(exit.stderr.contains(needle), "{args:?}: {}", exit.stderr);
        assert!(exit.stdout.is_empty());
    }
}

/// Packets dropped on the way: in a network namespace of the test's own,
/// the probe's SYNs go out over a veth pair to a neighbour address that no
/// one holds, so nothing answers, as behind a DROP rule. `filtered` is
/// shown after the timeout. Needs root, `unshare` and `ip`; the
/// classification itself is unit-tested (src/client/probe/classify.rs).
#[test]
fn dropped_packets_show_as_filtered() {
    let test = "client_probe::dropped_packets_show_as_filtered";
    if !is_root() {
        skip(test, "needs root for a network namespace");
        return;
    }
    if !require_tool(test, "unshare") || !require_tool(test, "ip") {
        return;
    }
    let script = format!(
        "ip link set lo up && \
         ip link add pr0 type veth peer name pr1 && \
         ip addr add 10.9.0.1/24 dev pr0 && ip link set pr0 up && ip link set pr1 up && \
         ip neigh add 10.9.0.2 lladdr 02:00:00:00:00:02 dev pr0 nud permanent || exit 99; \
         exec {CLIENT} probe 10.9.0.2 7,9 -W 0.5"
    );
    let mut cmd = Command::new("unshare");
    cmd.args(["-n", "sh", "-c", &script]);
    let exit = run_cmd_to_exit(cmd, Duration::from_secs(30));
    if exit.code() == Some(99) || exit.stderr.contains("unshare:") {
        skip(
            test,
            &format!("no namespace with a veth pair here: {}", exit.stderr.trim()),
        );
        return;
    }
    assert_eq!(exit.code(), Some(8), "{}", exit.describe());
    for port in [7, 9] {
        assert_eq!(state(&exit.stdout, port), "filtered (no answer in 0.500 s)");
    }
    assert_eq!(exit.stdout.last().unwrap(), "0 open, 2 filtered");
}

/// UDP: the echo peer's port is open with its RTT, a closed port is
/// refused (ICMP port unreachable), and a peer that drops the first
/// datagram is still found open on a retry.
#[test]
fn udp_ports_are_probed() {
    let peer = UdpEcho::start(false);
    let lossy = UdpEcho::start(true);
    let closed = closed_udp_port();
    let list = format!("{},{},{closed}", peer.port(), lossy.port());
    let exit = client(&["probe", "127.0.0.1", &list, "--udp", "-W", "0.3"]);
    assert_eq!(exit.code(), Some(8), "{}", exit.describe());
    let out = &exit.stdout;
    assert!(out[0].contains("3 UDP ports"), "{out:?}");
    assert!(state(out, peer.port()).starts_with("open"), "{out:?}");
    assert!(state(out, lossy.port()).starts_with("open"), "{out:?}");
    assert_eq!(lossy.received(), 2, "dropped once, answered on the retry");
    assert_eq!(state(out, closed), "refused");

    let exit = client(&[
        "probe",
        "127.0.0.1",
        &peer.port().to_string(),
        "-u",
        "--json",
    ]);
    assert_eq!(exit.code(), Some(0), "{}", exit.describe());
    assert_eq!(json_of(&exit)["protocol"], "udp");

    // A peer that never answers: `no answer` after the retries.
    let sink = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let port = sink.local_addr().unwrap().port().to_string();
    let exit = client(&[
        "probe",
        "127.0.0.1",
        &port,
        "-u",
        "-W",
        "0.2",
        "--retries",
        "1",
    ]);
    assert_eq!(
        state(&exit.stdout, port.parse().unwrap()),
        "no answer (2 datagrams)"
    );
    let mut buf = [0u8; 64];
    sink.set_read_timeout(Some(Duration::from_secs(1))).unwrap();
    assert_eq!(
        sink.recv(&mut buf).unwrap(),
        16,
        "the probe's datagram arrived"
    );
}

/// `send --udp`: one datagram and its echo; a closed port is refused (3),
/// a silent one times out (5).
#[test]
fn send_udp() {
    let peer = UdpEcho::start(false);
    let exit = client(&["send", "--udp", &peer.addr(), "hello udp"]);
    assert_eq!(exit.code(), Some(0), "{}", exit.describe());
    assert_eq!(
        exit.stdout[..3],
        [
            format!("Sending a UDP datagram to {} ...", peer.addr()),
            "Sent 9 bytes: hello udp".to_string(),
            "Received echo: hello udp".to_string()
        ]
    );
    assert!(exit.stdout[3].starts_with("RTT: "), "{:?}", exit.stdout);

    let exit = client(&[
        "send",
        "-u",
        &format!("127.0.0.1:{}", closed_udp_port()),
        "x",
    ]);
    assert_eq!(exit.code(), Some(3), "{}", exit.describe());
    let sink = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let addr = sink.local_addr().unwrap().to_string();
    let exit = client(&["send", "-u", &addr, "x", "-W", "0.2", "--json"]);
    assert_eq!(exit.code(), Some(5), "{}", exit.describe());
    assert_eq!(json_of(&exit)["error_kind"], "timeout");
    let big = "x".repeat(65_508);
    let exit = client(&["send", "-u", &addr, &big]);
    assert_eq!(exit.code(), Some(2), "{}", exit.describe());
    assert!(
        exit.stderr.contains("at most 65507 bytes"),
        "{}",
        exit.stderr
    );
}

/// `ping --udp` against a peer that drops every other datagram: half the
/// probes lost, each one reported, RTT for the others; exit 0 since some
/// came back (as iputils' ping), exit 5 (timeout) with --strict.
#[test]
fn ping_udp_counts_loss() {
    let lossy = UdpEcho::start(true);
    let args = [
        "ping",
        "--udp",
        &lossy.addr(),
        "-c",
        "6",
        "-i",
        "0.05",
        "-W",
        "0.3",
    ];
    assert_eq!(client(&args).code(), Some(0));
    let exit = client(&[&args[..], &["--strict"]].concat());
    assert_eq!(exit.code(), Some(5), "{}", exit.describe());
    let out = &exit.stdout;
    assert!(
        out[0].contains("64-byte probes as UDP datagrams"),
        "{out:?}"
    );
    let answered: Vec<&String> = out
        .iter()
        .filter(|l| l.starts_with("64 bytes from"))
        .collect();
    let lost: Vec<&String> = out
        .iter()
        .filter(|l| l.contains(" lost: no datagram"))
        .collect();
    assert_eq!((answered.len(), lost.len()), (3, 3), "{out:#?}");
    for seq in [2, 4, 6] {
        assert!(
            answered.iter().any(|l| l.contains(&format!("seq={seq} "))),
            "{out:#?}"
        );
    }
    assert!(
        out.iter()
            .any(|l| l.starts_with("6 probes sent, 3 received, 3 lost (50.0% loss), 0 mismatched")),
        "{out:#?}"
    );
    let exit = client(&[
        "ping",
        "-u",
        &lossy.addr(),
        "-c",
        "2",
        "-i",
        "0.05",
        "-W",
        "0.3",
        "--json",
    ]);
    let doc = json_of(&exit);
    assert_eq!(
        (doc["sent"].as_u64(), doc["received"].as_u64()),
        (Some(2), Some(1))
    );
    assert_eq!(doc["udp"], true);
}
