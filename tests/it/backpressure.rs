//! Memory stays bounded: a client that does not read cannot make the server
//! buffer without limit, and idle connections cost little; a slow reader is
//! stopped by backpressure while others are still served promptly.

use crate::support::*;
use std::io::{self, Write};
use std::net::Shutdown;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

const MIB: u64 = 1024 * 1024;

#[test]
fn non_reading_client_cannot_grow_server_memory() {
    // Proves: with --buffer-size 16K a client writing 64 MiB without reading stalls instead of growing server RSS, then gets every byte back in order.
    const TOTAL: u64 = 64 * MIB;
    let srv = Server::start(&["--buffer-size", "16K"]);
    // Baseline after one small warm-up exchange (allocator and logger initialised).
    {
        let mut c = connect(srv.addr());
        echo_roundtrip(&mut c, b"warm-up");
    }
    thread::sleep(Duration::from_millis(200));
    let baseline = srv.rss_kib();

    let mut c = connect(srv.addr());
    c.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let written = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let mut w = c.try_clone().unwrap();
    // Short write timeout: blocking is expected; the writer just retries until done or stopped.
    w.set_write_timeout(Some(Duration::from_millis(250)))
        .unwrap();
    let (wc, ws) = (written.clone(), stop.clone());
    let writer = thread::spawn(move || -> Result<(), String> {
        let mut buf = vec![0u8; 64 * 1024];
        let mut off = 0u64;
        let deadline = Instant::now() + Duration::from_secs(120);
        while off < TOTAL {
            if ws.load(Ordering::Relaxed) || Instant::now() > deadline {
                return Err(format!("writer stopped after {off} bytes"));
            }
            let n = ((TOTAL - off) as usize).min(buf.len());
            pattern_fill(1234, off, &mut buf[..n]);
            let mut done = 0;
            while done < n {
                match w.write(&buf[done..n]) {
                    Ok(k) => done += k,
                    Err(e)
                        if e.kind() == io::ErrorKind::WouldBlock
                            || e.kind() == io::ErrorKind::TimedOut
                            || e.kind() == io::ErrorKind::Interrupted =>
                    {
                        if ws.load(Ordering::Relaxed) || Instant::now() > deadline {
                            return Err(format!(
                                "writer stopped after {} bytes",
                                off + done as u64
                            ));
                        }
                    }
                    Err(e) => return Err(format!("write after {} bytes: {e}", off + done as u64)),
                }
                wc.store(off + done as u64, Ordering::Relaxed);
            }
            off += n as u64;
        }
        w.shutdown(std::net::Shutdown::Write)
            .map_err(|e| e.to_string())
    });

    // Wait until the writer stalls (no progress for 1 s), sampling RSS meanwhile.
    let mut peak_rss = baseline;
    let mut last = 0;
    let mut last_change = Instant::now();
    let deadline = Instant::now() + Duration::from_secs(30);
    while last_change.elapsed() < Duration::from_secs(1) && Instant::now() < deadline {
        thread::sleep(Duration::from_millis(100));
        peak_rss = peak_rss.max(srv.rss_kib());
        let now = written.load(Ordering::Relaxed);
        if now != last {
            last = now;
            last_change = Instant::now();
        }
    }
    // Stay stalled a little longer and keep measuring.
    for _ in 0..10 {
        thread::sleep(Duration::from_millis(100));
        peak_rss = peak_rss.max(srv.rss_kib());
    }
    let stalled_at = written.load(Ordering::Relaxed);
    let growth = peak_rss.saturating_sub(baseline);
    eprintln!(
        "backpressure: writer stalled at {} KiB; server RSS {baseline} KiB -> peak {peak_rss} KiB",
        stalled_at / 1024
    );
    if stalled_at >= TOTAL || growth >= 24 * 1024 {
        stop.store(true, Ordering::Relaxed);
        let _ = writer.join();
        panic!(
            "server kept reading from a client that does not read: writer got {stalled_at} of {TOTAL} bytes out, \
             server RSS grew by {growth} KiB (bound 24 MiB)\n{}",
            srv.dump()
        );
    }

    // Now drain: every byte comes back, in order, and the stalled writer resumes by itself.
    let res = read_pattern(&mut c, 1234, TOTAL);
    if res.is_err() {
        stop.store(true, Ordering::Relaxed);
    }
    let wres = writer.join().unwrap();
    res.unwrap_or_else(|e| panic!("echo after backpressure: {e}\n{}", srv.dump()));
    wres.expect("writer");
    assert!(
        read_to_eof(&mut c).is_empty(),
        "nothing after the 64 MiB stream"
    );
    let d = srv.wait_disconnect(c.local_addr().unwrap(), Duration::from_secs(5));
    assert_eq!(
        (d.rx, d.tx, d.reason.as_str()),
        (TOTAL, TOTAL, "peer closed")
    );
    let final_rss = srv.rss_kib();
    assert!(
        final_rss < baseline + 24 * 1024,
        "RSS after the transfer {final_rss} KiB vs baseline {baseline} KiB"
    );
}

#[test]
fn idle_connections_are_cheap() {
    // Proves: 2,000 open connections with --buffer-size 1M cost well under the buffer size each (no per-connection 1 MiB allocation kept).
    let _turn = one_at_a_time();
    const CONNS: usize = 2_000;
    raise_nofile(CONNS as u64 + 500);
    let srv = Server::start(&["--buffer-size", "1M"]);
    {
        let mut c = connect(srv.addr());
        echo_roundtrip(&mut c, b"warm-up");
    }
    srv.wait_for("[DISCONNECT]", Duration::from_secs(5));
    thread::sleep(Duration::from_millis(200));
    let baseline = srv.rss_kib();

    let mut clients = srv.connect_in_batches(CONNS, 1);
    let msgs: Vec<Vec<u8>> = (0..CONNS).map(|i| Rng::new(i as u64).bytes(1024)).collect();
    for (c, m) in clients.iter_mut().zip(&msgs) {
        c.write_all(m).unwrap();
    }
    for (i, (c, m)) in clients.iter_mut().zip(&msgs).enumerate() {
        let got = read_exactly(c, m.len());
        assert_same(&got, m, &format!("connection {i}"));
    }
    thread::sleep(Duration::from_millis(200));
    let rss = srv.rss_kib();
    let per_conn = rss.saturating_sub(baseline) as f64 / CONNS as f64;
    eprintln!(
        "idle connections: RSS {baseline} KiB -> {rss} KiB, {per_conn:.1} KiB per connection"
    );
    assert!(
        per_conn < 64.0,
        "each idle connection costs {per_conn:.1} KiB of server memory (bound 64 KiB, buffer size 1 MiB)"
    );
    assert_eq!(srv.count(|l| l.contains("[DISCONNECT]")), 1);
}

/// The server's default --buffer-size, which bounds what it holds per client.
const BUFFER_KIB: u64 = 64;
/// "Baseline + a few buffer sizes": the stalled connection's 64 KiB pending
/// buffer, the shared 64 KiB scratch, and allocator slack.
const RSS_BOUND_KIB: u64 = 8 * BUFFER_KIB;

/// Round-trip times of `count` 64-byte pings on a fresh connection.
fn ping_rtts(srv: &Server, count: usize) -> Vec<Duration> {
    let mut c = connect(srv.addr());
    (0..count)
        .map(|i| {
            let msg = format!("{i:063}\n").into_bytes();
            let t = Instant::now();
            echo_roundtrip(&mut c, &msg);
            t.elapsed()
        })
        .collect()
}

#[test]
fn slow_reader_costs_bounded_memory_and_gets_every_byte() {
    // Proves: a client that writes TOTAL bytes and does not read is stopped
    // by backpressure while the server's RSS stays within baseline + a few
    // buffer sizes; another client's ping-pong keeps a bounded p99 meanwhile
    // (and while the stream flows again); when the slow client finally
    // reads, every byte it sent comes back in order, then EOF.
    let _turn = one_at_a_time();
    let total = fault_size("slow reader: bytes written", 64 * MIB, 256 * MIB);
    let srv = Server::start(&[]);
    {
        // Warm-up: allocator, logger and the shared scratch are touched.
        let mut c = connect(srv.addr());
        echo_roundtrip(&mut c, &Rng::new(1).bytes(64 * 1024));
    }
    srv.wait_for("[DISCONNECT]", Duration::from_secs(5));
    thread::sleep(Duration::from_millis(200));
    let baseline = srv.rss_kib();

    let mut slow = connect(srv.addr());
    slow.set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let mut w = slow.try_clone().unwrap();
    // Blocking is expected: the writer retries on timeouts until done or stopped.
    w.set_write_timeout(Some(Duration::from_millis(250)))
        .unwrap();
    let written = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let (wc, ws) = (written.clone(), stop.clone());
    let writer = thread::spawn(move || -> Result<(), String> {
        let mut buf = vec![0u8; 64 * 1024];
        let mut off = 0u64;
        let deadline = Instant::now() + Duration::from_secs(300);
        while off < total {
            let n = ((total - off) as usize).min(buf.len());
            pattern_fill(42, off, &mut buf[..n]);
            let mut done = 0;
            while done < n {
                if ws.load(Ordering::Relaxed) || Instant::now() > deadline {
                    return Err(format!("writer stopped after {} bytes", off + done as u64));
                }
                match w.write(&buf[done..n]) {
                    Ok(k) => done += k,
                    Err(e)
                        if matches!(
                            e.kind(),
                            io::ErrorKind::WouldBlock
                                | io::ErrorKind::TimedOut
                                | io::ErrorKind::Interrupted
                        ) => {}
                    Err(e) => return Err(format!("write after {} bytes: {e}", off + done as u64)),
                }
                wc.store(off + done as u64, Ordering::Relaxed);
            }
            off += n as u64;
        }
        w.shutdown(Shutdown::Write).map_err(|e| e.to_string())
    });

    // Phase 1: the writer stalls (no progress for 1 s) and stays stalled.
    let stalled_rss = RssSampler::start(srv.pid(), Duration::from_millis(20));
    let mut last = 0;
    let mut last_change = Instant::now();
    let deadline = Instant::now() + Duration::from_secs(30);
    while last_change.elapsed() < Duration::from_secs(1) && Instant::now() < deadline {
        thread::sleep(Duration::from_millis(50));
        let now = written.load(Ordering::Relaxed);
        if now != last {
            last = now;
            last_change = Instant::now();
        }
    }
    let mut stalled_pings = ping_rtts(&srv, 500);
    let stalled_at = written.load(Ordering::Relaxed);
    let stalled_peak = stalled_rss.peak();
    if stalled_at >= total {
        stop.store(true, Ordering::Relaxed);
        let _ = writer.join();
        panic!("the client wrote all {total} bytes without reading: no backpressure");
    }

    // Phase 2: the client reads; the writer resumes; every byte is checked
    // while a second client keeps pinging.
    let flowing_rss = RssSampler::start(srv.pid(), Duration::from_millis(20));
    let t_read = Instant::now();
    let reader = thread::spawn(move || {
        let result = read_pattern(&mut slow, 42, total);
        (result, slow)
    });
    let mut flowing_pings = ping_rtts(&srv, 200);
    let (result, mut slow) = reader.join().unwrap();
    if result.is_err() {
        stop.store(true, Ordering::Relaxed);
    }
    let write_result = writer.join().unwrap();
    result.unwrap_or_else(|e| panic!("slow reader's echo: {e}\n{}", srv.dump()));
    write_result.expect("writer");
    let transfer = t_read.elapsed();
    assert!(read_to_eof(&mut slow).is_empty(), "bytes after the stream");
    let flowing_peak = flowing_rss.peak();
    let d = srv.wait_disconnect(slow.local_addr().unwrap(), Duration::from_secs(10));
    assert_eq!(
        (d.rx, d.tx, d.reason.as_str()),
        (total, total, "peer closed")
    );

    let stalled_p99 = percentile(&mut stalled_pings, 99.0);
    let flowing_p99 = percentile(&mut flowing_pings, 99.0);
    eprintln!(
        "slow reader: {total} bytes; writer stalled at {} KiB; server RSS baseline {baseline} KiB, \
         peak while stalled {stalled_peak} KiB (+{}), peak while flowing {flowing_peak} KiB (+{}); \
         ping p50/p99/max while stalled {:?}/{stalled_p99:?}/{:?}, while flowing {:?}/{flowing_p99:?}/{:?}; \
         {total} bytes verified in {transfer:?}",
        stalled_at / 1024,
        stalled_peak.saturating_sub(baseline),
        flowing_peak.saturating_sub(baseline),
        percentile(&mut stalled_pings, 50.0),
        stalled_pings.last().unwrap(),
        percentile(&mut flowing_pings, 50.0),
        flowing_pings.last().unwrap(),
    );
    assert!(
        stalled_peak <= baseline + RSS_BOUND_KIB,
        "RSS {stalled_peak} KiB while a client did not read, baseline {baseline} KiB (bound +{RSS_BOUND_KIB} KiB)"
    );
    assert!(
        flowing_peak <= baseline + RSS_BOUND_KIB,
        "RSS {flowing_peak} KiB while the stream flowed, baseline {baseline} KiB (bound +{RSS_BOUND_KIB} KiB)"
    );
    assert!(
        stalled_p99 < Duration::from_millis(50),
        "ping p99 {stalled_p99:?} while a client does not read"
    );
    assert!(
        flowing_p99 < Duration::from_millis(500),
        "ping p99 {flowing_p99:?} while another client streams at full speed"
    );
}
