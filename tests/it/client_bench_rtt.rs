//! `echo-client bench` times each echo to the kernel's receive timestamp
//! of the read that completed it on plain TCP (the clock when the client
//! woke is the fallback, and under TLS the only source), says which in
//! text, `--json` and `--json-stream`'s end event, and so does not charge
//! its own wake-up to the path: through a proxy that adds 10 ms, a client
//! stopped for 150 ms still measures about 10 ms.

use std::process::{Command, Stdio};
use std::time::Duration;

use crate::support::client::{client, json_of, num, CLIENT};
use crate::support::tls::{PeerOptions, Pki, TlsPeer};
use crate::support::{delay_proxy, one_at_a_time, wait_child_exit, KillOnDrop, Server};

const KERNEL_TEXT: &str = "Measured to: the kernel's receive timestamp (SO_TIMESTAMPING)";

/// The rtt source and its counts, checked against the messages counted.
fn rtt_source(doc: &serde_json::Value) -> (String, f64, f64) {
    let source = doc["rtt_source"].as_str().unwrap_or_default().to_string();
    let kernel = num(doc, &["rtt_source_counts", "kernel"]);
    let clock = num(doc, &["rtt_source_counts", "clock"]);
    assert_eq!(kernel + clock, num(doc, &["messages"]), "{doc}");
    (source, kernel, clock)
}

/// On a plain loopback run every message counted is timed to the kernel's
/// stamp (the warm-up covers the moment the kernel takes to turn stamping
/// on), in `--json`, in the text and in `--json-stream`'s end event; with
/// `--rtt-clock` by the clock. Bulk times no message and names no source.
#[test]
fn plain_runs_are_timed_by_the_kernel_stamp() {
    let server = Server::start(&[]);
    let addr = server.addr().to_string();
    let run = ["bench", &addr, "-c", "4", "-d", "2", "--duration", "0.4"];
    let warmup = ["--warmup", "0.4"];

    let exit = client(&[&run[..], &warmup, &["--json"]].concat());
    assert_eq!(exit.code(), Some(0), "{}", exit.describe());
    let doc = json_of(&exit);
    assert!(num(&doc, &["messages"]) > 0.0, "{doc}");
    let (source, _, clock) = rtt_source(&doc);
    assert_eq!((source.as_str(), clock), ("kernel", 0.0), "{doc}");

    let exit = client(&[&run[..], &warmup].concat());
    assert_eq!(exit.code(), Some(0), "{}", exit.describe());
    let latency = exit
        .stdout
        .iter()
        .position(|l| l.starts_with("Latency µs: "));
    let next = latency.and_then(|i| exit.stdout.get(i + 1));
    assert_eq!(
        next.map(String::as_str),
        Some(KERNEL_TEXT),
        "{}",
        exit.describe()
    );

    let exit = client(&[&run[..], &warmup, &["--json-stream"]].concat());
    assert_eq!(exit.code(), Some(0), "{}", exit.describe());
    let end: serde_json::Value = serde_json::from_str(exit.stdout.last().unwrap()).unwrap();
    assert_eq!(end["event"], "end", "{}", exit.describe());
    let (source, _, clock) = rtt_source(&end["data"]);
    assert_eq!((source.as_str(), clock), ("kernel", 0.0), "{end}");

    // --rtt-clock: the clock by choice, for every message, and said so.
    let exit = client(&[&run[..], &warmup, &["--rtt-clock", "--json"]].concat());
    assert_eq!(exit.code(), Some(0), "{}", exit.describe());
    let (source, kernel, _) = rtt_source(&json_of(&exit));
    assert_eq!(
        (source.as_str(), kernel),
        ("clock", 0.0),
        "{}",
        exit.describe()
    );
    let exit = client(&[&run[..], &warmup, &["--rtt-clock"]].concat());
    assert!(
        exit.stdout.iter().any(|l| l
            == "Measured to: the clock when the client woke for the reply (--rtt-clock)"),
        "{}",
        exit.describe()
    );

    let exit = client(&["bench", &addr, "--bulk", "--duration", "0.2", "--json"]);
    assert_eq!(exit.code(), Some(0), "{}", exit.describe());
    let doc = json_of(&exit);
    assert!(num(&doc, &["bytes"]) > 0.0, "{doc}");
    assert!(doc["latency_us"].is_null(), "{doc}");
    assert!(doc["rtt_source"].is_null(), "{doc}");
    assert!(doc["rtt_source_counts"].is_null(), "{doc}");
}

/// Under TLS the bytes read are plaintext rustls assembled from records,
/// so no stamp is asked for: the clock times every message, and the text
/// says why.
#[test]
fn tls_runs_are_timed_by_the_clock_and_say_why() {
    let _turn = one_at_a_time();
    let pki = Pki::new("bench rtt ca");
    let peer = TlsPeer::start(&pki, PeerOptions::default());
    let target = format!("localhost:{}", peer.addr().port());
    let ca = pki.ca.cert_pem.display().to_string();
    let run = [
        "bench", &target, "--tls", "--ca", &ca, "-c", "2", "-n", "2000",
    ];

    let exit = client(&[&run[..], &["--json"]].concat());
    assert_eq!(exit.code(), Some(0), "{}", exit.describe());
    let doc = json_of(&exit);
    assert_eq!(doc["messages"], 2000, "{doc}");
    let (source, kernel, _) = rtt_source(&doc);
    assert_eq!((source.as_str(), kernel), ("clock", 0.0), "{doc}");

    let exit = client(&run);
    assert_eq!(exit.code(), Some(0), "{}", exit.describe());
    assert!(
        exit.stdout.iter().any(|l| l
            == "Measured to: the clock when the client woke for the reply \
                (no kernel timestamps under TLS: its records hide which bytes a stamp belongs to)"),
        "{}",
        exit.describe()
    );
}

/// Through a proxy that adds 10 ms, every latency is the 10 ms plus
/// loopback scale, to the kernel's stamp; and stopping the client for
/// 150 ms mid-run (SIGSTOP, as a VM's stolen time or a busy client does)
/// does not show in them: the reply that waited is timed to its arrival,
/// where the clock would have charged it the whole pause.
#[test]
fn rtts_through_a_delay_run_to_the_arrival_not_the_wake_up() {
    let _turn = one_at_a_time();
    let server = Server::start(&[]);
    let delay = Duration::from_millis(10);
    // The reachability probe's connection, then the benchmark's.
    let proxy = delay_proxy(server.addr(), delay, 2);
    let child = Command::new(CLIENT)
        .args(["bench", &proxy, "-c", "1", "--warmup", "0.3"])
        .args(["--duration", "1.5", "--json"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut child = KillOnDrop(child);
    let pid = child.id().to_string();
    std::thread::sleep(Duration::from_millis(900));
    let signal = |sig: &str| {
        let status = Command::new("kill").args([sig, &pid]).status().unwrap();
        assert!(status.success(), "kill {sig} {pid}");
    };
    signal("-STOP");
    std::thread::sleep(Duration::from_millis(150));
    signal("-CONT");
    let (status, stderr) = wait_child_exit(&mut child, Duration::from_secs(30), "bench");
    let mut stdout = String::new();
    std::io::Read::read_to_string(child.stdout.as_mut().unwrap(), &mut stdout).unwrap();
    assert!(status.success(), "{status:?}\n{stdout}\n{stderr}");
    let doc: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap();
    assert!(num(&doc, &["messages"]) >= 10.0, "{doc}");
    let (min, max) = (
        num(&doc, &["latency_us", "min"]) / 1e3,
        num(&doc, &["latency_us", "max"]) / 1e3,
    );
    assert!(min >= 10.0, "min {min} ms: {doc}");
    assert!(max < 60.0, "max {max} ms: {doc}");
    let (source, _, clock) = rtt_source(&doc);
    assert_eq!((source.as_str(), clock), ("kernel", 0.0), "{doc}");
}
