//! `echo-client` keeps its memory bounded whatever the input or the run
//! length: `send` streams an endless input (a file or stdin) and a
//! `ping -c 0 -i 0` keeps fixed statistics. The resident set is sampled
//! from /proc over a few seconds of each run against the real server.

use std::fs::File;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::support::client::{Fault, FaultyServer, CLIENT};
use crate::support::{rss_kib_of, wait_child_exit, Server};

/// Growth allowed after the first second: allocator slack, not a leak.
const SLACK_KIB: u64 = 4 * 1024;

/// RSS after 1 s, and the most seen over the next `watch`; stops early
/// (and kills the child) once growth passes a bound no fixed-memory run
/// reaches, so a leaking client cannot take the host's memory.
fn watch_rss(child: &mut Child, watch: Duration) -> (u64, u64) {
    std::thread::sleep(Duration::from_secs(1));
    let pid = child.id();
    let first = rss_kib_of(pid).expect("client still running after 1 s");
    let mut most = first;
    let end = Instant::now() + watch;
    while Instant::now() < end {
        std::thread::sleep(Duration::from_millis(100));
        match rss_kib_of(pid) {
            Some(rss) => most = most.max(rss),
            None => break,
        }
        if most > first + 64 * SLACK_KIB {
            let _ = child.kill();
            break;
        }
    }
    (first, most)
}

fn interrupt(child: &Child) {
    let _ = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status();
}

fn check_endless_send(stdin: Stdio, args: &[&str], out_name: &str) {
    let server = Server::start(&[]);
    let out_path = std::env::temp_dir().join(format!("{out_name}-{}.txt", std::process::id()));
    let mut child = Command::new(CLIENT)
        .arg(server.addr().to_string())
        .args(args)
        .stdin(stdin)
        .stdout(File::create(&out_path).unwrap())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (first, most) = watch_rss(&mut child, Duration::from_secs(3));
    interrupt(&child);
    let (status, stderr) =
        wait_child_exit(&mut child, Duration::from_secs(10), "send after SIGINT");
    let out = std::fs::read_to_string(&out_path).unwrap();
    std::fs::remove_file(&out_path).unwrap();
    assert!(
        most <= first + SLACK_KIB,
        "RSS grew from {first} KiB to {most} KiB\n{out}{stderr}"
    );
    // Ctrl+C reports what was verified so far.
    assert_eq!(status.code(), Some(130), "{status:?}\n{out}{stderr}");
    let line = out
        .lines()
        .find(|l| l.contains("until Ctrl+C;"))
        .unwrap_or_else(|| panic!("no Ctrl+C report:\n{out}{stderr}"));
    let verified: u64 = line
        .split("; ")
        .nth(1)
        .and_then(|t| t.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("{line}"));
    // At least a few windows' worth went through.
    assert!(verified > 16 << 20, "{line}");
}

#[test]
fn send_streams_an_endless_file_in_bounded_memory() {
    check_endless_send(Stdio::null(), &["--file", "/dev/zero"], "client-mem-file");
}

#[test]
fn send_streams_endless_stdin_in_bounded_memory() {
    let zero = File::open("/dev/zero").unwrap();
    check_endless_send(Stdio::from(zero), &["--file", "-"], "client-mem-stdin");
}

/// Streaming still finds the first wrong byte, far past the window.
#[test]
fn a_streamed_input_is_checked_to_its_first_wrong_byte() {
    let at: u64 = 9 << 20 | 12_345;
    let faulty = FaultyServer::start(Fault::FlipByteAt(at));
    // Capped at 1 GiB of address space, so a client that reads it all into
    // memory fails fast instead of taking the host's memory.
    let out = Command::new("sh")
        .args(["-c", "ulimit -v 1048576 && exec \"$0\" \"$@\"", CLIENT])
        .args([&faulty.addr(), "--file", "/dev/zero", "--json"])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc["mismatch_offset"], at, "{doc}");
    assert_eq!(doc["error_kind"], "mismatch");
}

#[test]
fn an_endless_ping_keeps_fixed_memory() {
    let server = Server::start(&[]);
    let mut child = Command::new(CLIENT)
        .args(["ping", &server.addr().to_string(), "-c", "0", "-i", "0"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (first, most) = watch_rss(&mut child, Duration::from_secs(5));
    interrupt(&child);
    let (status, stderr) =
        wait_child_exit(&mut child, Duration::from_secs(10), "ping after SIGINT");
    // 1 KiB of growth: the old per-probe list grew by about 0.7 MB/s.
    assert!(
        most <= first + 1024,
        "RSS grew from {first} KiB to {most} KiB\n{stderr}"
    );
    // With -i 0 Ctrl+C nearly always lands on a probe in flight: lost, 130.
    assert!(
        matches!(status.code(), Some(0 | 130)),
        "{status:?}\n{stderr}"
    );
}
