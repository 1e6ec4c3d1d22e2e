//! Busy polling (`--busy-poll`): while a client answers at once, the server
//! stays awake between its messages; when traffic thins out, it goes back to
//! sleeping and spends no CPU waiting.
//!
//! These tests use a 20 ms window rather than the default 100 µs, so that a
//! client delayed by a loaded test machine still answers inside it: what
//! they check is the behaviour, not the default's reach.

use crate::support::*;
use std::net::TcpStream;
use std::thread;
use std::time::Duration;

const WINDOW_USECS: &str = "20000";
const ROUND_TRIPS: u64 = 500;
/// How long the client takes to send its next message: well inside the
/// window, and far longer than the server takes to get back to its wait, so
/// that a server that does not poll surely sleeps before the message comes.
const THINK_TIME: Duration = Duration::from_millis(1);

/// `n` echoes of 64 bytes, each sent only once the previous one is back,
/// as `echo-client ping` and a depth-1 bench do.
fn ping_pong(conn: &mut TcpStream, n: u64) {
    for i in 0..n {
        let message = [(i % 251) as u8; 64];
        echo_roundtrip(conn, &message);
    }
}

/// Sleeps the server did per round trip, for a client that sends each
/// message 1 ms after the previous echo came back.
fn sleeps_per_round_trip(busy_poll: &str) -> f64 {
    let srv = Server::start(&["--busy-poll", busy_poll]);
    let mut conn = connect(srv.addr());
    ping_pong(&mut conn, 100);
    let before = srv.voluntary_switches();
    for _ in 0..ROUND_TRIPS {
        thread::sleep(THINK_TIME);
        ping_pong(&mut conn, 1);
    }
    let slept = srv.voluntary_switches() - before;
    slept as f64 / ROUND_TRIPS as f64
}

#[test]
fn a_client_that_answers_at_once_finds_the_server_awake() {
    // Proves: with busy polling the server does not sleep between a
    // client's messages when they come within the window (no wake-up to pay
    // per round trip); with it off, the same exchange puts it to sleep once
    // per message, so the count tells the two apart.
    let _turn = one_at_a_time();
    let polling = sleeps_per_round_trip(WINDOW_USECS);
    let sleeping = sleeps_per_round_trip("0");
    eprintln!("sleeps per round trip: {polling:.3} polling, {sleeping:.3} with --busy-poll 0");
    assert!(
        polling < 0.2,
        "the server slept {polling:.3} times per round trip with --busy-poll {WINDOW_USECS}"
    );
    assert!(
        sleeping > 0.5,
        "with --busy-poll 0 the server slept only {sleeping:.3} times per round trip: \
         the measurement cannot tell polling from sleeping"
    );
}

#[test]
fn sparse_traffic_and_an_idle_server_cost_no_spinning() {
    // Proves: once messages come further apart than the window, the server
    // stops polling after a few waits (it would otherwise spin the whole
    // window after each of them), and an idle server uses no CPU.
    let _turn = one_at_a_time();
    let srv = Server::start(&["--busy-poll", WINDOW_USECS]);
    let mut conn = connect(srv.addr());
    // Open the window to its 20 ms limit.
    ping_pong(&mut conn, 500);

    let hz = clock_ticks_per_second();
    let before = srv.cpu_ticks();
    for _ in 0..10 {
        thread::sleep(Duration::from_millis(50));
        ping_pong(&mut conn, 1);
    }
    let sparse = srv.cpu_ticks() - before;
    // Polling 20 ms after each of the 10 messages would be 200 ms of CPU;
    // the adaptive window spends 20 + 10 + 5 ms and then sleeps.
    assert!(
        sparse * 10 < hz,
        "the server used {sparse} ticks ({hz}/s) over 10 messages 50 ms apart: \
         it kept polling between them"
    );

    let before = srv.cpu_ticks();
    thread::sleep(Duration::from_millis(500));
    let idle = srv.cpu_ticks() - before;
    assert!(
        idle * 50 < hz,
        "an idle server used {idle} ticks ({hz}/s) in 0.5 s"
    );
    ping_pong(&mut conn, 3);
}

/// The `[CPU]` line `--busy-poll auto` logs when it turns polling off.
fn polling_off_line(srv: &Server) -> Option<String> {
    srv.lines()
        .into_iter()
        .find(|line| line.contains("[CPU] busy polling off"))
}

/// Waits for the start-up lines that follow the banner (the `[CPU]` line
/// comes before the `[LIMIT]` one).
fn started(srv: &Server) {
    srv.wait_for("[LIMIT]", Duration::from_secs(5));
}

#[test]
fn auto_does_not_poll_when_the_server_may_use_one_cpu() {
    // Proves: with one usable CPU (`taskset`, a cpuset), `auto` sleeps for
    // events instead of spinning, says so, and an explicit window still wins.
    if !require_tool(
        "auto_does_not_poll_when_the_server_may_use_one_cpu",
        "taskset",
    ) {
        return;
    }
    let _turn = one_at_a_time();
    let pinned = |extra: &[&str]| {
        let mut cmd = std::process::Command::new("taskset");
        cmd.args(["-c", "0", BIN]).args(LOOPBACK_ARGS).args(extra);
        Server::start_cmd(cmd)
    };
    let srv = pinned(&[]);
    started(&srv);
    let line = polling_off_line(&srv).expect("no [CPU] line with one usable CPU");
    assert!(
        line.contains("busy polling off: only one CPU is usable; --busy-poll USECS turns it on"),
        "{line}"
    );
    let mut conn = connect(srv.addr());
    ping_pong(&mut conn, 3);

    let srv = pinned(&["--busy-poll", "100"]);
    started(&srv);
    assert_eq!(polling_off_line(&srv), None, "an explicit --busy-poll lost");
}

/// A cgroup of the test's own with a CPU quota of half a CPU, removed on
/// Drop (after the processes in it are gone).
struct QuotaGroup {
    dir: std::path::PathBuf,
}

impl QuotaGroup {
    /// Creates it under a cgroup v1 `cpu` hierarchy or the v2 one, where
    /// this process may; `None` otherwise.
    fn create() -> Option<QuotaGroup> {
        let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").ok()?;
        let name = format!("echo-server-test-{}", std::process::id());
        for line in mountinfo.lines() {
            let (before, after) = line.split_once(" - ")?;
            let point = before.split(' ').nth(4)?;
            let mut after = after.split(' ');
            let fstype = after.next()?;
            let options = after.nth(1).unwrap_or("");
            let v1_cpu = fstype == "cgroup" && options.split(',').any(|o| o == "cpu");
            if !(v1_cpu || fstype == "cgroup2") {
                continue;
            }
            let dir = std::path::Path::new(point).join(&name);
            if std::fs::create_dir(&dir).is_err() {
                continue;
            }
            let group = QuotaGroup { dir };
            let set = if v1_cpu {
                std::fs::write(group.dir.join("cpu.cfs_period_us"), "100000")
                    .and_then(|()| std::fs::write(group.dir.join("cpu.cfs_quota_us"), "50000"))
            } else {
                std::fs::write(group.dir.join("cpu.max"), "50000 100000")
            };
            if set.is_ok() {
                return Some(group);
            }
        }
        None
    }
}

impl Drop for QuotaGroup {
    fn drop(&mut self) {
        for _ in 0..50 {
            if std::fs::remove_dir(&self.dir).is_ok() {
                return;
            }
            thread::sleep(Duration::from_millis(20));
        }
    }
}

#[test]
fn auto_does_not_poll_under_a_cpu_quota_below_one_cpu() {
    // Proves: started inside a cgroup whose quota is half a CPU (as a
    // Kubernetes pod with `limits.cpu: 500m`), the server reads the quota
    // and sleeps for events instead of spinning, and says why.
    let Some(group) = QuotaGroup::create() else {
        skip(
            "auto_does_not_poll_under_a_cpu_quota_below_one_cpu",
            "cannot create a cgroup with a CPU quota here (needs root and a writable cgroup v1 cpu or v2 hierarchy)",
        );
        return;
    };
    let mut cmd = std::process::Command::new("sh");
    cmd.arg("-c")
        .arg(format!(
            "echo $$ > '{}/cgroup.procs' && exec \"$0\" \"$@\"",
            group.dir.display()
        ))
        .arg(BIN)
        .args(LOOPBACK_ARGS);
    let mut srv = Server::start_cmd(cmd);
    started(&srv);
    let line = polling_off_line(&srv).expect("no [CPU] line under a quota of half a CPU");
    assert!(
        line.contains("busy polling off: the CPU quota is 0.50 CPU (cgroup)"),
        "{line}"
    );
    let mut conn = connect(srv.addr());
    ping_pong(&mut conn, 3);
    drop(conn);
    srv.stop("TERM", Duration::from_secs(10));
    drop(group);
}

#[test]
fn a_stream_that_sets_its_own_pace_is_not_spun_for() {
    // Proves: a peer whose writer never waits for its echo (as `nc host
    // port < file`) paces the stream itself, so the server stops spinning
    // for it once its probe finds that spinning moves no more bytes,
    // although every wait is far shorter than the window.
    let _turn = one_at_a_time();
    let srv = Server::start(&["--busy-poll", WINDOW_USECS]);
    let conn = connect(srv.addr());
    let mut reader = conn.try_clone().unwrap();
    let sink = thread::spawn(move || {
        let mut buf = vec![0u8; 256 * 1024];
        let mut total = 0u64;
        while let Ok(n) = std::io::Read::read(&mut reader, &mut buf) {
            if n == 0 {
                break;
            }
            total += n as u64;
        }
        total
    });
    // 256 KiB every 4 ms: reads that fill the server's 64 KiB buffer, with
    // waits of a few ms, each well inside the 20 ms window.
    let chunk = vec![7u8; 256 * 1024];
    let mut writer = conn;
    let mut write_for = |duration: Duration| {
        let end = std::time::Instant::now() + duration;
        while std::time::Instant::now() < end {
            std::io::Write::write_all(&mut writer, &chunk).unwrap();
            thread::sleep(Duration::from_millis(4));
        }
    };
    // A new stream is spun for while it warms up (1 s), then probed (0.8 s).
    write_for(Duration::from_millis(2000));
    let hz = clock_ticks_per_second();
    let before = srv.cpu_ticks();
    let window = Duration::from_secs(2);
    write_for(window);
    let used = srv.cpu_ticks() - before;
    writer.shutdown(std::net::Shutdown::Write).unwrap();
    let echoed = sink.join().unwrap();
    assert!(echoed > 0);
    let share = used as f64 / (hz as f64 * window.as_secs_f64());
    eprintln!("server CPU over the paced stream: {:.0}%", share * 100.0);
    assert!(
        share < 0.4,
        "the server used {:.0}% of a CPU on a stream of 64 MB/s: it kept spinning",
        share * 100.0
    );
}
