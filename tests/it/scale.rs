//! Scale and fairness: 10,000 concurrent connections; a flooding client does not starve others.

use crate::support::*;
use std::io::{Read, Write};
use std::net::Shutdown;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

const N: usize = 10_000;

fn message(i: usize) -> Vec<u8> {
    // 8..=16 bytes, unique per index.
    let len = 8 + i % 9;
    let mut m = format!("#{i:05}:").into_bytes();
    let mut rng = Rng::new(i as u64);
    while m.len() < len {
        m.push(b'a' + rng.below(26) as u8);
    }
    m
}

#[test]
fn ten_thousand_concurrent_connections() {
    // Proves: 10,000 connections can be open at once (the default limit) and each gets exactly its own message back;
    // each costs the server under 4 KiB of RSS (fault scenario 7 of issue #4: `--nocapture` prints the figure).
    let _turn = one_at_a_time();
    let have = raise_nofile(N as u64 + 2_000);
    assert!(
        have >= N as u64 + 200,
        "this test needs RLIMIT_NOFILE >= {} for its own sockets, have {have}",
        N + 200
    );
    let mut srv = Server::start(&[]);

    // The server reports its (possibly raised) fd limit, and the figure is the real one.
    let limit_line = srv.wait_for("[LIMIT]", Duration::from_secs(5));
    let limit = parse_log(&limit_line).expect("LIMIT is a log line");
    assert_eq!(limit.level, "INFO");
    let real = srv.nofile_soft_limit();
    assert!(
        limit.details == format!("open file limit is {real}")
            || (limit.details.starts_with("open file limit raised from ")
                && limit.details.ends_with(&format!(" to {real}"))),
        "LIMIT line {:?} vs actual soft limit {real}",
        limit.details
    );
    assert!(
        real > N as u64,
        "server fd limit {real} cannot hold {N} connections"
    );

    // Fault scenario 7 (issue #4) also reports what each connection costs.
    thread::sleep(Duration::from_millis(200));
    let baseline_rss = srv.rss_kib();

    // Connect in batches so the listen queue never overflows; wait for the server to accept each batch.
    let mut clients = srv.connect_in_batches(N, 0);
    for (i, c) in clients.iter_mut().enumerate() {
        c.write_all(&message(i))
            .unwrap_or_else(|e| panic!("write on connection {i}: {e}"));
    }
    let mut total = 0u64;
    for (i, c) in clients.iter_mut().enumerate() {
        let want = message(i);
        let got = read_exactly(c, want.len());
        assert_same(&got, &want, &format!("connection {i}"));
        total += want.len() as u64;
    }
    assert_eq!(
        srv.count(|l| l.contains("[DISCONNECT]") || l.contains("[REJECT]")),
        0,
        "no connection closed or rejected while all {N} were open\n{}",
        srv.dump()
    );
    assert!(
        srv.open_fds() >= N,
        "server holds {} fds for {N} connections",
        srv.open_fds()
    );
    let rss = srv.rss_kib();
    let per_conn = rss.saturating_sub(baseline_rss) as f64 / N as f64;
    eprintln!(
        "10,000 connections: all echoed exactly; server RSS {baseline_rss} KiB -> {rss} KiB, \
         {per_conn:.2} KiB per connection; {} fds",
        srv.open_fds()
    );
    // Idle connections hold no echo buffer: a few hundred bytes of state
    // each (slab entry, poll registration), not the 64 KiB buffer size.
    assert!(
        per_conn < 4.0,
        "{per_conn:.2} KiB of server memory per idle connection"
    );

    drop(clients);
    srv.wait_count(
        |l| l.contains("reason: peer closed)"),
        N,
        Duration::from_secs(60),
    );
    let exit = srv.stop("INT", Duration::from_secs(15));
    assert_eq!(exit.code(), Some(0), "{}", exit.describe());
    assert_no_panic(&exit.stderr);
    assert_eq!(
        summary_of(&exit),
        Summary {
            served: N as u64,
            bytes_in: total,
            bytes_out: total,
            peak: N as u64,
            rejected: 0,
            timed_out: 0
        }
    );
}

#[test]
fn flooding_client_does_not_starve_others() {
    // Proves: while one client floods the server, another client's pings are all answered, each within 2 s.
    let _turn = one_at_a_time();
    let srv = Server::start(&[]);
    let flood = connect(srv.addr());
    // A block whose length is not a power of two, so misordered chunks would be caught.
    let block = Arc::new(Rng::new(77).bytes(65_537));
    let stop = Arc::new(AtomicBool::new(false));
    let received = Arc::new(AtomicU64::new(0));

    let mut w = flood.try_clone().unwrap();
    let (wb, ws) = (block.clone(), stop.clone());
    let writer = thread::spawn(move || -> Result<u64, String> {
        let mut sent = 0u64;
        let deadline = Instant::now() + Duration::from_secs(30);
        while !ws.load(Ordering::Relaxed) && Instant::now() < deadline {
            w.write_all(&wb).map_err(|e| format!("flood write: {e}"))?;
            sent += wb.len() as u64;
        }
        w.shutdown(Shutdown::Write).map_err(|e| e.to_string())?;
        Ok(sent)
    });
    let mut r = flood;
    let (rb, rc) = (block.clone(), received.clone());
    let reader = thread::spawn(move || -> Result<u64, String> {
        let mut buf = vec![0u8; 256 * 1024];
        let mut off = 0u64;
        loop {
            match r.read(&mut buf) {
                Ok(0) => return Ok(off),
                Ok(n) => {
                    let mut j = 0;
                    while j < n {
                        let at = ((off + j as u64) % rb.len() as u64) as usize;
                        let k = (n - j).min(rb.len() - at);
                        if buf[j..j + k] != rb[at..at + k] {
                            return Err(format!("flood echo wrong near offset {}", off + j as u64));
                        }
                        j += k;
                    }
                    off += n as u64;
                    rc.store(off, Ordering::Relaxed);
                }
                Err(e) => return Err(format!("flood read after {off} bytes: {e}")),
            }
        }
    });

    thread::sleep(Duration::from_millis(300));
    let t_start = Instant::now();
    let before = received.load(Ordering::Relaxed);
    let mut ping = connect(srv.addr());
    let mut worst = Duration::ZERO;
    let mut slow = Vec::new();
    for i in 0..50 {
        let msg = format!("ping {i:02} ........").into_bytes();
        let t = Instant::now();
        echo_roundtrip(&mut ping, &msg);
        let rtt = t.elapsed();
        worst = worst.max(rtt);
        if rtt > Duration::from_secs(2) {
            slow.push((i, rtt));
        }
        thread::sleep(Duration::from_millis(50));
    }
    let during = received.load(Ordering::Relaxed) - before;
    if let Some(rest) = Duration::from_secs(3).checked_sub(t_start.elapsed()) {
        thread::sleep(rest);
    }
    stop.store(true, Ordering::Relaxed);
    let sent = writer.join().unwrap().expect("flood writer");
    let got = reader.join().unwrap().expect("flood reader");
    assert!(
        slow.is_empty(),
        "pings slower than 2 s while flooding: {slow:?}"
    );
    assert!(
        during > 1024 * 1024,
        "the flood must keep flowing while pings are served (moved {during} bytes)"
    );
    assert_eq!(got, sent, "flood echo complete");
    eprintln!("fairness: worst ping {worst:?}, flood moved {sent} bytes");
}
