//! Clients that go away abruptly: a reset (RST) mid-transfer, a killed
//! `nc`, and thousands of resets interleaved with new connections, whose
//! bytes must never cross into another connection's stream.

use crate::support::*;
use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

const LOG_WAIT: Duration = Duration::from_secs(5);

#[test]
fn reset_mid_transfer_is_logged_and_server_keeps_serving() {
    // Proves: a client that aborts with RST mid-transfer is logged `reset by peer` and the server keeps working (scenario 5).
    let srv = Server::start(&[]);
    let mut c = connect(srv.addr());
    let local = c.local_addr().unwrap();
    // Send a lot without reading so echo is in flight in both directions.
    c.set_write_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    let chunk = Rng::new(9).bytes(64 * 1024);
    let mut sent = 0usize;
    let deadline = Instant::now() + Duration::from_secs(5);
    while sent < 4 * 1024 * 1024 && Instant::now() < deadline {
        match c.write(&chunk) {
            Ok(n) => sent += n,
            Err(_) => break, // buffers full: that's "mid-transfer"
        }
    }
    let first = read_exactly(&mut c, 1000);
    assert_same(&first, &chunk[..1000], "start of echo");
    socket2::SockRef::from(&c)
        .set_linger(Some(Duration::ZERO))
        .unwrap();
    drop(c); // RST
    let d = srv.wait_disconnect(local, LOG_WAIT);
    assert_eq!(d.reason, "reset by peer", "{d:?}");
    assert!(d.rx > 0 && d.rx <= sent as u64 && d.tx <= d.rx, "{d:?}");
    // Still serving.
    let mut c2 = connect(srv.addr());
    echo_roundtrip(&mut c2, b"still alive after a reset\n");
    let mut c3 = connect(srv.addr());
    echo_roundtrip(&mut c3, &Rng::new(10).bytes(200_000));
}

#[test]
fn killed_nc_client_is_handled() {
    // Proves: killing a real nc client process mid-session is logged as a disconnect and the server keeps serving (scenario 5).
    if !require_tool("killed_nc_client_is_handled", "nc") {
        return;
    }
    let srv = Server::start(&[]);
    let mut child = Command::new("nc")
        .args(["127.0.0.1", &srv.port().to_string()])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn nc");
    let mut stdin = child.stdin.take().unwrap();
    let rx = stdout_chunks(child.stdout.take().unwrap());
    let mut child = KillOnDrop(child);
    stdin.write_all(b"ping from nc\n").unwrap();
    stdin.flush().unwrap();
    let mut got = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    while got.len() < 13 && Instant::now() < deadline {
        if let Ok(chunk) = rx.recv_timeout(Duration::from_millis(100)) {
            got.extend(chunk);
        }
    }
    if got != b"ping from nc\n" {
        panic!("nc did not get its echo: {got:?}\n{}", srv.dump());
    }
    let connect_line = srv.wait_for("[CONNECT] ", LOG_WAIT);
    let nc_addr = parse_log(&connect_line).unwrap().details;
    child.0.kill().expect("kill nc"); // SIGKILL by PID
    let _ = child.0.wait();
    drop(stdin);
    let prefix = format!("[DISCONNECT] {nc_addr} (");
    let line = srv.wait_for_line(|l| l.contains(&prefix), LOG_WAIT);
    let d = parse_disconnect(&parse_log(&line).unwrap().details).unwrap();
    assert!(
        d.reason == "peer closed" || d.reason == "reset by peer",
        "{d:?}"
    );
    assert_eq!((d.rx, d.tx), (13, 13), "{d:?}");
    let mut c = connect(srv.addr());
    echo_roundtrip(&mut c, b"next client after a killed one\n");
    let mut r = [0u8; 1];
    c.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    assert!(c.read(&mut r).is_err(), "no stray bytes for the new client");
}

#[test]
fn resets_interleaved_with_new_connections_never_cross_streams() {
    // Proves: under churn where connections are reset while others are
    // accepted in the same event batches (slab keys freed and reused at once),
    // every connection gets back exactly its own bytes and the server stays
    // up. (That a stale event cannot reach a new connection is checked
    // directly by the unit test `server::tests::stale_token_misses_reused_key`.)
    let srv = Server::start(&[]);
    let mut rng = Rng::new(0x5eed);
    for round in 0..100u32 {
        // Connections that send and are reset before reading their echo...
        let doomed: Vec<TcpStream> = (0..8)
            .map(|i| {
                let mut s = connect(srv.addr());
                s.write_all(format!("doomed {round} {i} ").repeat(50).as_bytes())
                    .unwrap();
                s
            })
            .collect();
        // ...and fresh ones opened in the middle of those resets, each with
        // its own bytes.
        let mut fresh = Vec::new();
        for s in doomed {
            socket2::SockRef::from(&s)
                .set_linger(Some(Duration::ZERO))
                .unwrap();
            drop(s); // RST
            let mut c = connect(srv.addr());
            let len = 1 + rng.below(3000) as usize;
            let mine = rng.bytes(len);
            c.write_all(&mine).unwrap();
            fresh.push((c, mine));
        }
        for (mut c, mine) in fresh {
            let got = read_exactly(&mut c, mine.len());
            assert_same(&got, &mine, &format!("round {round}: own echo only"));
            shutdown_write(&c);
            assert!(
                read_to_eof(&mut c).is_empty(),
                "round {round}: extra bytes after own echo"
            );
        }
    }
    let mut last = connect(srv.addr());
    echo_roundtrip(&mut last, b"still serving\n");
}

#[test]
fn resets_mid_transfer_never_leak_into_new_connections() {
    // Proves: connections that are reset (SO_LINGER=0, so the kernel sends
    // RST) while their echo is flowing, each immediately followed by a new
    // connection that may reuse the freed slab key, never make a new
    // connection receive anything but its own unique bytes (stale-token
    // safety); every reset is logged as `reset by peer`; the server stays up,
    // its fd count returns to the baseline, and it exits cleanly after.
    let _turn = one_at_a_time();
    let resets = fault_size("resets: connections reset mid-transfer", 2_000usize, 10_000);
    let mut srv = Server::start(&[]);
    {
        let mut c = connect(srv.addr());
        echo_roundtrip(&mut c, b"warm-up");
    }
    srv.wait_for("[DISCONNECT]", Duration::from_secs(5));
    // DISCONNECT is logged just before the socket is closed.
    thread::sleep(Duration::from_millis(100));
    let baseline_fds = srv.open_fds();
    let mut rng = Rng::new(0xBAD_5EED);
    // Local addresses repeat (an RST leaves no TIME_WAIT), so count per address.
    let mut doomed_addrs: HashMap<String, u64> = HashMap::new();
    let mut fresh_bytes = 0u64;
    let t0 = Instant::now();
    for i in 0..resets {
        // A connection whose echo is in flight: it sent up to 256 KiB and
        // has read only the first 1000 bytes back.
        let mut doomed = connect(srv.addr());
        let len = 16 * 1024 + rng.below(240 * 1024) as usize;
        let sent = rng.bytes(len);
        doomed
            .write_all(&sent)
            .unwrap_or_else(|e| panic!("doomed {i}: write: {e}"));
        let first = read_exactly(&mut doomed, 1000);
        assert_same(&first, &sent[..1000], &format!("doomed {i}: start of echo"));
        *doomed_addrs
            .entry(doomed.local_addr().unwrap().to_string())
            .or_default() += 1;
        socket2::SockRef::from(&doomed)
            .set_linger(Some(Duration::ZERO))
            .unwrap();
        drop(doomed); // RST

        // A new connection right behind it, with bytes only it knows.
        let mut fresh = connect(srv.addr());
        let mut mine = format!("fresh {i} ").into_bytes();
        let len = 1 + rng.below(4000) as usize;
        mine.extend(rng.bytes(len));
        fresh.write_all(&mine).unwrap();
        let got = read_exactly(&mut fresh, mine.len());
        assert_same(&got, &mine, &format!("fresh {i}: own echo only"));
        shutdown_write(&fresh);
        assert!(
            read_to_eof(&mut fresh).is_empty(),
            "fresh {i}: bytes after its own echo"
        );
        fresh_bytes += mine.len() as u64;
    }
    let took = t0.elapsed();

    // Every reset is logged, as a reset, for the address it came from.
    srv.wait_count(
        |l| l.contains("reason: reset by peer)"),
        resets,
        Duration::from_secs(30),
    );
    let mut logged: HashMap<String, u64> = HashMap::new();
    for line in srv.events("DISCONNECT") {
        let d = parse_disconnect(&line.details).expect("DISCONNECT format");
        if d.reason == "reset by peer" {
            assert!(d.rx >= 1000 && d.tx >= 1000 && d.tx <= d.rx, "{d:?}");
            *logged.entry(d.addr).or_default() += 1;
        } else {
            assert_eq!(d.reason, "peer closed", "{d:?}");
        }
    }
    assert_eq!(
        logged, doomed_addrs,
        "reset DISCONNECT lines per client address"
    );
    assert_eq!(srv.count(|l| l.contains("[ERROR]")), 0, "{}", srv.dump());

    // Still serving, and no descriptor leaked.
    let mut last = connect(srv.addr());
    echo_roundtrip(&mut last, b"still serving\n");
    drop(last);
    srv.wait_count(
        |l| l.contains("[DISCONNECT]"),
        2 * resets + 2,
        Duration::from_secs(10),
    );
    // Bounded wait: the last DISCONNECT is logged just before its close(2).
    wait_until(Duration::from_secs(2), || srv.open_fds() == baseline_fds);
    let fds = srv.open_fds();
    eprintln!(
        "resets: {resets} resets mid-transfer + {resets} fresh connections ({fresh_bytes} bytes \
         verified) in {took:?}; {} reset lines logged; fds {baseline_fds} -> {fds}",
        logged.values().sum::<u64>()
    );
    assert_eq!(fds, baseline_fds, "descriptors leaked");
    let exit = srv.stop("INT", Duration::from_secs(10));
    assert_eq!(exit.code(), Some(0), "{}", exit.describe());
    assert_no_panic(&exit.stderr);
    assert_eq!(summary_of(&exit).served, 2 * resets as u64 + 2);
}
