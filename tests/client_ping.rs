//! `echo-client ping`: one line per probe, loss and RTT statistics, connect
//! time per probe with --reconnect, Ctrl+C prints the summary so far, and
//! lost or corrupted probes are counted and reflected in the exit code.

#[path = "support/client.rs"]
mod client_support;
mod common;

use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::time::Duration;

use client_support::{client, closed_port, json_of, num, Fault, FaultyServer, CLIENT};
use common::{wait_until, Server};

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
    let out_path =
        std::env::temp_dir().join(format!("echo-client-ping-{}.txt", std::process::id()));
    let out_file = std::fs::File::create(&out_path).unwrap();
    let mut child = Command::new(CLIENT)
        .args(["ping", &server.addr().to_string(), "-c", "0", "-i", "0.05"])
        .stdout(out_file)
        .stderr(Stdio::null())
        .process_group(0)
        .spawn()
        .unwrap();
    let seen = wait_until(Duration::from_secs(10), || {
        std::fs::read_to_string(&out_path).is_ok_and(|t| t.contains("seq=3 "))
    });
    let _ = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status();
    let status = wait_until(Duration::from_secs(10), || {
        child.try_wait().unwrap().is_some()
    });
    if !status {
        let _ = child.kill();
    }
    let text = std::fs::read_to_string(&out_path).unwrap();
    std::fs::remove_file(&out_path).unwrap();
    assert!(
        seen && status,
        "ping did not probe or did not stop:\n{text}"
    );
    assert_eq!(child.wait().unwrap().code(), Some(0), "{text}");
    assert!(text.contains("echo ping statistics"), "{text}");
    assert!(
        text.contains("received, 0 lost (0.0% loss), 0 mismatched"),
        "{text}"
    );
    assert!(text.contains("(interrupted)"), "{text}");
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
    let exit = common::run_cmd_to_exit(cmd, Duration::from_secs(20));
    assert_eq!(exit.stdout.len(), 2, "{}", exit.describe());
    common::assert_no_panic(&exit.stderr);
    assert!(exit.stderr.is_empty(), "{}", exit.stderr);
}
