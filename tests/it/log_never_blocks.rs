//! Whatever happens to stdout, the log never stops the echo: a reader that
//! stops reading, a paused terminal, a full disk, a closed stdout and a
//! reader that went away. Each test runs the real binary with its stdout
//! in that state and checks clients are still echoed and stop signals
//! still stop it.

use crate::support::*;
use std::fs::File;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::fd::{FromRawFd, OwnedFd};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Spawns the server; it is killed if the test fails before it exits.
fn spawn(cmd: &mut Command) -> KillOnDrop {
    KillOnDrop(
        cmd.stdin(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {cmd:?}: {e}")),
    )
}

/// Waits until the server accepts connections on `addr`.
fn wait_listening(addr: SocketAddr, child: &mut Child) {
    let up = wait_until(START_TIMEOUT, || {
        assert!(
            child.try_wait().unwrap().is_none(),
            "server exited before listening"
        );
        TcpStream::connect(addr).is_ok()
    });
    assert!(up, "server not listening on {addr}");
}

/// `n` clients, one after another, each echoed and closed, as the issue's
/// `nc` loop did; each must be served within 2 s.
fn echo_clients(addr: SocketAddr, n: usize) {
    for i in 0..n {
        let mut c = TcpStream::connect_timeout(&addr, Duration::from_secs(2))
            .unwrap_or_else(|e| panic!("client {i}: connect: {e}"));
        c.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
        c.write_all(b"x\n").unwrap();
        let mut got = [0u8; 2];
        c.read_exact(&mut got)
            .unwrap_or_else(|e| panic!("client {i} of {n} got no echo within 2 s: {e}"));
        assert_eq!(&got, b"x\n", "client {i}");
    }
}

/// `n` one-byte round trips on one connection: with `-v`, a DATA line each.
fn round_trips(addr: SocketAddr, n: usize) {
    let mut c = connect(addr);
    c.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    for i in 0..n {
        c.write_all(&[i as u8]).unwrap();
        let mut b = [0u8; 1];
        c.read_exact(&mut b)
            .unwrap_or_else(|e| panic!("round trip {i} of {n}: no echo within 2 s: {e}"));
        assert_eq!(b[0], i as u8);
    }
}

fn signal(child: &Child, sig: &str) {
    let st = Command::new("kill")
        .args([&format!("-{sig}"), &child.id().to_string()])
        .status()
        .unwrap();
    assert!(st.success());
}

fn server_args(port: u16) -> Vec<String> {
    ["--bind", "127.0.0.1", "--port", &port.to_string()]
        .map(String::from)
        .to_vec()
}

#[test]
fn a_reader_that_stops_reading_never_stops_the_echo() {
    // Proves: with a log reader that reads nothing (`echo-server | sleep`),
    // clients are still echoed long after the pipe is full, and the
    // server's memory stays within the queue's bound; lines that do
    // not fit the 1 MiB queue are dropped, a note in the log says how many
    // where they were lost once the reader reads again, and the Summary's
    // count matches the notes. The old server stuck in write() after about
    // 64 KiB of CONNECT/DISCONNECT lines.
    let mut child = spawn(
        Command::new(BIN)
            .args(["--port", "0", "--bind", "127.0.0.1", "-v"])
            .args(["--metrics", "127.0.0.1:0"])
            .stdout(Stdio::piped()),
    );
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    let mut banner = |prefix: &str| loop {
        line.clear();
        assert!(out.read_line(&mut line).unwrap() > 0, "no banner");
        if let Some(a) = line.trim().strip_prefix(prefix) {
            break a.split('/').next().unwrap().parse::<SocketAddr>().unwrap();
        }
    };
    let addr = banner("Listening on ");
    let metrics = banner("Metrics on http://");
    // Nobody reads from here on. 600 clients and 15,000 DATA lines are far
    // more than the pipe (64 KiB) and the queue (1 MiB) hold.
    let rss_before = rss_kib_of(child.id()).unwrap();
    echo_clients(addr, 600);
    round_trips(addr, 15_000);
    round_trips(addr, 15_000);
    let counted = dropped_metric(metrics);
    assert!(counted > 0, "/metrics counts no dropped lines");
    // The queue is bounded in memory too: 1 MiB of lines, their
    // bookkeeping and the writer's 64 KiB chunk, whatever is dropped.
    let grown = rss_kib_of(child.id()).unwrap().saturating_sub(rss_before);
    assert!(
        grown < 3 * 1024,
        "RSS grew {grown} KiB with the log blocked"
    );

    // The reader comes back: the queue drains, and the next lines carry
    // the note of what was lost.
    let reader = std::thread::spawn(move || {
        let mut lines = Vec::new();
        for l in out.lines() {
            lines.push(l.unwrap());
        }
        lines
    });
    echo_clients(addr, 1);
    signal(&child, "TERM");
    let (status, stderr) = wait_child_exit(&mut child, Duration::from_secs(10), "no exit");
    assert_eq!(status.code(), Some(0), "{stderr}");
    let lines = reader.join().unwrap();
    let noted: u64 = lines
        .iter()
        .filter(|l| l.contains("[LOG]"))
        .map(|l| {
            let n = l.split("] ").nth(1).unwrap().split(' ').next().unwrap();
            n.parse::<u64>().unwrap_or_else(|_| panic!("note: {l}"))
        })
        .sum();
    assert!(noted > 0, "no note of dropped lines");
    let summary = lines
        .iter()
        .find(|l| l.starts_with("Summary:"))
        .unwrap_or_else(|| panic!("no Summary in {} lines", lines.len()));
    assert!(
        summary.contains(&format!(", {noted} log lines dropped, up ")),
        "notes say {noted} dropped; {summary}"
    );
    assert!(
        counted <= noted,
        "/metrics said {counted}, the notes {noted}"
    );
    assert_no_panic(&stderr);
}

#[test]
fn stop_signals_work_while_the_log_is_blocked() {
    // Proves: with a log reader that reads nothing, SIGTERM still stops
    // the server within --shutdown-timeout (its last lines are dropped),
    // and a second SIGTERM exits at once with 143. The old server never
    // saw the signals: it was stuck writing its log.
    for twice in [false, true] {
        let port = closed_port();
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let mut child = spawn(
            Command::new(BIN)
                .args(server_args(port))
                .args(["--shutdown-timeout", "2", "-v"])
                .stdout(Stdio::piped()),
        );
        wait_listening(addr, &mut child);
        round_trips(addr, 15_000);
        // One client still owes its echo when the stop comes.
        let mut owed = connect(addr);
        owed.write_all(b"owed").unwrap();
        let t = Instant::now();
        signal(&child, "TERM");
        if twice {
            std::thread::sleep(Duration::from_millis(400));
            signal(&child, "TERM");
        }
        let (status, stderr) = wait_child_exit(
            &mut child,
            Duration::from_secs(10),
            "server did not stop with its log blocked",
        );
        let took = t.elapsed();
        let want = if twice { 143 } else { 0 };
        assert_eq!(status.code(), Some(want), "{stderr}");
        let bound = if twice { 1.5 } else { 3.5 };
        assert!(took.as_secs_f64() < bound, "took {took:?}");
        let mut echo = [0u8; 4];
        if !twice {
            owed.read_exact(&mut echo).unwrap();
            assert_eq!(&echo, b"owed");
        }
    }
}

/// Runs a server on `port` with stdout as `cmd` sets it up, serves 600
/// clients and 15,000 DATA lines' worth of round trips, then stops it with
/// SIGTERM: it must exit 0 within the shutdown timeout.
fn serves_and_stops(mut child: KillOnDrop, port: u16) {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    wait_listening(addr, &mut child);
    echo_clients(addr, 600);
    round_trips(addr, 15_000);
    let t = Instant::now();
    signal(&child, "TERM");
    let (status, stderr) = wait_child_exit(&mut child, Duration::from_secs(10), "no exit");
    assert_eq!(status.code(), Some(0), "{stderr}");
    assert!(
        t.elapsed() < Duration::from_secs(4),
        "took {:?}",
        t.elapsed()
    );
    assert_no_panic(&stderr);
}

#[test]
fn a_paused_terminal_never_stops_the_echo() {
    // Proves: a terminal paused with Ctrl+S (XOFF) takes no output, and the
    // server goes on echoing; when the terminal resumes, the log's lines
    // come out. The old server stuck in write() once the tty's buffer
    // filled.
    let (master, slave) = openpty();
    let mut master = File::from(master);
    master.write_all(b"\x13").unwrap(); // Ctrl+S: the tty stops output
    let port = closed_port();
    let child = spawn(
        Command::new(BIN)
            .args(server_args(port))
            .args(["--shutdown-timeout", "2", "-v"])
            .stdout(Stdio::from(slave)),
    );
    // Read what the terminal shows once resumed, from the start.
    let shown = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_secs(1));
        master.write_all(b"\x11").unwrap(); // Ctrl+Q
        let mut all = Vec::new();
        let mut buf = [0u8; 65536];
        // EIO once the server (the slave's last holder) is gone.
        while let Ok(n) = master.read(&mut buf) {
            if n == 0 {
                break;
            }
            all.extend_from_slice(&buf[..n]);
        }
        String::from_utf8_lossy(&all).into_owned()
    });
    serves_and_stops(child, port);
    let shown = shown.join().unwrap();
    assert!(shown.contains("Listening on 127.0.0.1:"), "{shown:.300}");
    // 600 clients, the round trips' connection and the probe that waited
    // for the listener.
    assert!(
        shown.contains("\nSummary: 602 connections served"),
        "{shown:.300}"
    );
    // The queue filled while the terminal was paused: a gap, noted.
    assert!(shown.contains("[LOG]"), "{shown:.300}");
}

/// A new pseudo-terminal: (master, slave).
fn openpty() -> (OwnedFd, OwnedFd) {
    let (mut master, mut slave) = (-1, -1);
    // SAFETY: openpty writes the two descriptors it opens into the valid
    // locals; the name, termios and winsize pointers may be null.
    let rc = unsafe {
        libc::openpty(
            &mut master,
            &mut slave,
            std::ptr::null_mut(),
            std::ptr::null(),
            std::ptr::null(),
        )
    };
    assert_eq!(rc, 0, "openpty: {}", std::io::Error::last_os_error());
    // SAFETY: both descriptors were just opened by openpty and are owned
    // by nothing else.
    unsafe { (OwnedFd::from_raw_fd(master), OwnedFd::from_raw_fd(slave)) }
}

#[test]
fn a_full_disk_never_stops_the_echo() {
    // Proves: with its log in a regular file on a full file system
    // (a 16 KiB tmpfs in a mount namespace of the test's own), the server
    // drops what does not fit (ENOSPC) and goes on echoing.
    if !require_tool("a_full_disk_never_stops_the_echo", "unshare") {
        return;
    }
    let probe = Command::new("unshare")
        .args(["-m", "sh", "-c", "mount -t tmpfs -o size=16k none /mnt"])
        .output()
        .unwrap();
    if !probe.status.success() {
        skip(
            "a_full_disk_never_stops_the_echo",
            &format!(
                "cannot mount a tmpfs in a new mount namespace: {}",
                String::from_utf8_lossy(&probe.stderr)
            ),
        );
        return;
    }
    let port = closed_port();
    let script = format!(
        "mount -t tmpfs -o size=16k none /mnt && exec {BIN} {} --shutdown-timeout 2 -v > /mnt/log",
        server_args(port).join(" ")
    );
    // unshare and sh exec: the child's PID is the server's.
    let child = spawn(Command::new("unshare").args(["-m", "sh", "-c", &script]));
    let pid = child.id();
    let log = format!("/proc/{pid}/root/mnt/log");
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let mut child = child;
    wait_listening(addr, &mut child);
    echo_clients(addr, 600);
    let size = std::fs::metadata(&log).map(|m| m.len()).unwrap_or(0);
    assert!(
        (8_000..=16_384).contains(&size),
        "the log should have filled the 16 KiB disk: {size} bytes"
    );
    serves_and_stops(child, port);
}

#[test]
fn a_closed_stdout_never_stops_the_echo() {
    // Proves: started with stdout closed (`echo-server >&-`), the server
    // serves and stops as usual; nothing it logs lands in a client's
    // socket (which could take descriptor 1 if it stayed free).
    let port = closed_port();
    let script = format!(
        "exec {BIN} {} --shutdown-timeout 2 -v >&-",
        server_args(port).join(" ")
    );
    let child = spawn(Command::new("sh").args(["-c", &script]));
    serves_and_stops(child, port);
}

#[test]
fn a_reader_gone_never_stops_the_echo() {
    // Proves: when the program reading the log goes away (`echo-server |
    // head`), the server goes on serving (its writes fail with EPIPE and
    // are dropped) and still stops with exit 0. The old server died by
    // SIGPIPE at its next line.
    let port = closed_port();
    let mut child = spawn(
        Command::new(BIN)
            .args(server_args(port))
            .args(["--shutdown-timeout", "2", "-v"])
            .stdout(Stdio::piped()),
    );
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut first = String::new();
    out.read_line(&mut first).unwrap();
    assert!(first.starts_with("Echo Server"), "{first}");
    drop(out);
    serves_and_stops(child, port);
}

/// `echo_log_lines_dropped_total` from the endpoint at `metrics`.
fn dropped_metric(metrics: SocketAddr) -> u64 {
    let mut c = connect(metrics);
    c.write_all(b"GET /metrics HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")
        .unwrap();
    let text = String::from_utf8(read_to_eof(&mut c)).unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix("echo_log_lines_dropped_total "))
        .unwrap_or_else(|| panic!("no echo_log_lines_dropped_total in {text}"))
        .parse()
        .unwrap()
}
