//! `echo-client --mode`: send and ping check what upper and framed answer
//! (not mere equality), bench measures discard uploads and chargen
//! downloads (every chargen byte checked against RFC 864) and framed
//! frames. Peers: xinetd's own discard and chargen (real RFC 863/864
//! servers), and fakes that answer as upper, framed and chargen do, or
//! get one byte wrong on purpose: that must be a mismatch, exit 1.

use crate::support::client::{client, json_of, num};
use crate::support::peers::{Peer, Service, Xinetd};
use crate::support::{assert_no_panic, require_tool};

fn assert_code(exit: &crate::support::Exit, code: i32) {
    assert_eq!(exit.code(), Some(code), "{}", exit.describe());
    assert_no_panic(&exit.stderr);
}

#[test]
fn send_upper_checks_the_uppercased_reply() {
    let peer = Peer::start(Service::Upper(None));
    let exit = client(&["send", &peer.addr(), "héllo, World 7", "--mode", "upper"]);
    assert_code(&exit, 0);
    assert!(
        exit.stdout
            .iter()
            .any(|l| l == "Received reply: HéLLO, WORLD 7"),
        "{}",
        exit.describe()
    );
    // The same peer fails plain echo: the check is the mode's, not equality.
    let exit = client(&["send", &peer.addr(), "hello"]);
    assert_code(&exit, 1);
}

#[test]
fn send_upper_reports_a_wrong_case_byte() {
    let peer = Peer::start(Service::Upper(Some(4)));
    let exit = client(&[
        "send",
        &peer.addr(),
        "hello world",
        "--mode",
        "upper",
        "--json",
    ]);
    assert_code(&exit, 1);
    assert!(
        exit.stderr.contains(
            "upper reply differs from what that mode answers at byte offset 4: expected 0x4f 'O', received 0x6f 'o'"
        ),
        "{}",
        exit.describe()
    );
    let doc = json_of(&exit);
    assert_eq!(
        (doc["match"].as_bool(), doc["mismatch_offset"].as_u64()),
        (Some(false), Some(4))
    );
}

#[test]
fn send_upper_streams_a_file() {
    let peer = Peer::start(Service::Upper(None));
    let path = std::env::temp_dir().join(format!("echo-upper-{}.bin", std::process::id()));
    let data: Vec<u8> = (0..300_000u32).map(|i| (i * 7 % 251) as u8).collect();
    std::fs::write(&path, &data).unwrap();
    let exit = client(&[
        "send",
        &peer.addr(),
        "--mode",
        "upper",
        "--file",
        path.to_str().unwrap(),
    ]);
    let _ = std::fs::remove_file(&path);
    assert_code(&exit, 0);
}

#[test]
fn ping_upper_checks_every_probe() {
    let peer = Peer::start(Service::Upper(None));
    let exit = client(&[
        "ping",
        &peer.addr(),
        "--mode",
        "upper",
        "-c",
        "3",
        "-i",
        "0.05",
        "-s",
        "200",
    ]);
    assert_code(&exit, 0);
    let bad = Peer::start(Service::Upper(Some(250)));
    let exit = client(&[
        "ping",
        &bad.addr(),
        "--mode",
        "upper",
        "-c",
        "3",
        "-i",
        "0.05",
        "-s",
        "200",
    ]);
    assert_code(&exit, 1);
    assert!(
        exit.stdout
            .iter()
            .any(|l| l.starts_with("seq=2 MISMATCH: upper reply differs")
                && l.contains("offset 250")),
        "{}",
        exit.describe()
    );
}

#[test]
fn send_framed_checks_plus_one_and_primes() {
    let peer = Peer::start(Service::Framed(None));
    let exit = client(&["send", &peer.addr(), "abc", "--mode", "framed"]);
    assert_code(&exit, 0);
    assert!(
        exit.stdout.iter().any(|l| l == "Sent frame: ^abc$"),
        "{}",
        exit.describe()
    );
    assert!(
        exit.stdout.iter().any(|l| l == "Received reply: bcd\\n"),
        "{}",
        exit.describe()
    );
    for (n, verdict) in [("P1000000007", "prime\\n"), ("P1000000008", "composite\\n")] {
        let exit = client(&["send", &peer.addr(), n, "--mode", "framed"]);
        assert_code(&exit, 0);
        assert!(
            exit.stdout
                .iter()
                .any(|l| l == &format!("Received reply: {verdict}")),
            "{}",
            exit.describe()
        );
    }
    // A message that cannot be one frame is refused before connecting.
    let exit = client(&["send", &peer.addr(), "a$b", "--mode", "framed"]);
    assert_code(&exit, 2);
    assert!(
        exit.stderr.contains("cannot contain '$'"),
        "{}",
        exit.describe()
    );
}

#[test]
fn send_framed_reports_a_wrong_byte() {
    // Offset 2 of the output: the `*`, then "bcd\n": the 'c'.
    let peer = Peer::start(Service::Framed(Some(2)));
    let exit = client(&["send", &peer.addr(), "abc", "--mode", "framed"]);
    assert_code(&exit, 1);
    assert!(
        exit.stderr.contains("framed reply differs from what that mode answers at byte offset 2 (in the reply to frame 1, expected \"bcd\\n\"): expected 0x63 'c', received 0x64 'd'"),
        "{}",
        exit.describe()
    );
    // A wrong handshake is caught too.
    let peer = Peer::start(Service::Framed(Some(0)));
    let exit = client(&["send", &peer.addr(), "abc", "--mode", "framed"]);
    assert_code(&exit, 1);
    assert!(exit.stderr.contains("handshake"), "{}", exit.describe());
}

#[test]
fn ping_framed_sends_frames_and_checks_each_reply() {
    let peer = Peer::start(Service::Framed(None));
    let exit = client(&[
        "ping",
        &peer.addr(),
        "--mode",
        "framed",
        "-c",
        "3",
        "-i",
        "0.05",
        "-s",
        "300",
        "--json",
    ]);
    assert_code(&exit, 0);
    let doc = json_of(&exit);
    assert_eq!(num(&doc, &["received"]), 3.0, "{doc}");
    // Probe 2's reply starts after `*` and probe 1's 301 bytes.
    let bad = Peer::start(Service::Framed(Some(1 + 301 + 10)));
    let exit = client(&[
        "ping",
        &bad.addr(),
        "--mode",
        "framed",
        "-c",
        "3",
        "-i",
        "0.05",
        "-s",
        "300",
    ]);
    assert_code(&exit, 1);
    assert!(
        exit.stdout
            .iter()
            .any(|l| l.starts_with("seq=2 MISMATCH: framed reply differs")
                && l.contains("offset 312")),
        "{}",
        exit.describe()
    );
}

#[test]
fn bench_framed_counts_checked_frames() {
    let peer = Peer::start(Service::Framed(None));
    let exit = client(&[
        "bench",
        &peer.addr(),
        "--mode",
        "framed",
        "-c",
        "4",
        "--depth",
        "2",
        "--duration",
        "0.5",
        "--warmup",
        "0",
        "--json",
    ]);
    assert_code(&exit, 0);
    let doc = json_of(&exit);
    assert_eq!(doc["service"], "framed", "{doc}");
    assert!(
        num(&doc, &["frames"]) > 0.0 && num(&doc, &["frames_per_s"]) > 0.0,
        "{doc}"
    );
    assert!(num(&doc, &["latency_us", "p50"]) > 0.0, "{doc}");
    let bad = Peer::start(Service::Framed(Some(5000)));
    let exit = client(&[
        "bench",
        &bad.addr(),
        "--mode",
        "framed",
        "--duration",
        "2",
        "--warmup",
        "0",
        "--json",
    ]);
    assert_code(&exit, 1);
    let doc = json_of(&exit);
    assert_eq!(
        (doc["mismatches"].as_u64(), doc["error_kind"].as_str()),
        (Some(1), Some("mismatch")),
        "{doc}"
    );
    assert!(
        doc["error"].as_str().unwrap().contains("byte offset 5000"),
        "{doc}"
    );
}

#[test]
fn bench_chargen_checks_the_rfc_864_pattern() {
    let peer = Peer::start(Service::Chargen(None));
    let exit = client(&[
        "bench",
        &peer.addr(),
        "--mode",
        "chargen",
        "--duration",
        "0.3",
        "--warmup",
        "0",
        "--json",
    ]);
    assert_code(&exit, 0);
    let doc = json_of(&exit);
    assert!(
        num(&doc, &["bytes_down"]) > 0.0 && num(&doc, &["mb_per_s"]) > 0.0,
        "{doc}"
    );
    assert_eq!(num(&doc, &["bytes_up"]), 0.0, "{doc}");
    let bad = Peer::start(Service::Chargen(Some(100_000)));
    let exit = client(&[
        "bench",
        &bad.addr(),
        "--mode",
        "chargen",
        "--duration",
        "5",
        "--warmup",
        "0",
    ]);
    assert_code(&exit, 1);
    assert!(
        exit.stderr.contains("chargen reply differs from what that mode answers at byte offset 100000 (not the RFC 864 pattern)"),
        "{}",
        exit.describe()
    );
}

#[test]
fn bench_discard_and_chargen_against_xinetd() {
    if !require_tool("bench_discard_and_chargen_against_xinetd", "xinetd") {
        return;
    }
    let x = Xinetd::start();
    let exit = client(&[
        "bench",
        &x.discard,
        "--mode",
        "discard",
        "-c",
        "2",
        "--duration",
        "0.3",
        "--warmup",
        "0",
        "--json",
    ]);
    assert_code(&exit, 0);
    let doc = json_of(&exit);
    assert!(
        num(&doc, &["bytes_up"]) > 0.0 && num(&doc, &["mb_per_s"]) > 0.0,
        "{doc}"
    );
    assert_eq!(num(&doc, &["bytes_down"]), 0.0, "{doc}");
    let exit = client(&[
        "bench",
        &x.chargen,
        "--mode",
        "chargen",
        "-c",
        "2",
        "--duration",
        "0.3",
        "--warmup",
        "0",
        "--json",
    ]);
    assert_code(&exit, 0);
    let doc = json_of(&exit);
    assert!(num(&doc, &["bytes_down"]) > 100_000.0, "{doc}");
    // The wrong mode for the peer: chargen's bytes are not discard's nothing,
    // and discard sends no chargen stream (a stall, exit 5).
    let exit = client(&[
        "bench",
        &x.chargen,
        "--mode",
        "discard",
        "--duration",
        "0.3",
        "--warmup",
        "0",
    ]);
    assert_code(&exit, 1);
    assert!(
        exit.stderr
            .contains("discard: the server sent a byte where that mode sends none"),
        "{}",
        exit.describe()
    );
    let exit = client(&[
        "bench",
        &x.discard,
        "--mode",
        "chargen",
        "--duration",
        "0.3",
        "--warmup",
        "0",
        "-W",
        "0.5",
    ]);
    assert_code(&exit, 5);
}

#[test]
fn modes_without_a_check_are_usage_errors() {
    let peer = Peer::start(Service::Upper(None));
    for (args, says) in [
        (
            &["ping", "--mode", "discard"][..],
            "ping --mode discard: not available",
        ),
        (
            &["send", "--mode", "chargen"][..],
            "send --mode chargen: not available",
        ),
        (
            &["bench", "--mode", "upper"][..],
            "bench --mode upper: not available",
        ),
        (
            &["bench", "--mode", "chargen", "-n", "5"][..],
            "--requests is for echo",
        ),
        (
            &["send", "--udp", "--mode", "upper", "hi"][..],
            "--mode is for TCP",
        ),
        (
            &["ping", "--udp", "--mode", "framed", "-c", "1"][..],
            "--mode is for TCP",
        ),
    ] {
        let mut argv = args.to_vec();
        let addr = peer.addr();
        argv.insert(1, &addr);
        let exit = client(&argv);
        assert_code(&exit, 2);
        assert!(exit.stderr.contains(says), "{argv:?}: {}", exit.describe());
    }
}
