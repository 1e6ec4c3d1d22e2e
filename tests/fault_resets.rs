//! Fault scenario 4 (issue #4): thousands of resets mid-transfer,
//! interleaved with new connections. (tests/echo.rs has a single reset and
//! 800 resets of connections whose echo was not flowing yet.)
mod common;

use common::*;
use std::collections::HashMap;
use std::io::Write;
use std::thread;
use std::time::{Duration, Instant};

#[test]
fn resets_mid_transfer_never_leak_into_new_connections() {
    // Proves: connections that are reset (SO_LINGER=0, so the kernel sends
    // RST) while their echo is flowing, each immediately followed by a new
    // connection that may reuse the freed slab key, never make a new
    // connection receive anything but its own unique bytes (stale-token
    // safety); every reset is logged as `reset by peer`; the server stays up,
    // its fd count returns to the baseline, and it exits cleanly after.
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
