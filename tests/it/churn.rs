//! Connection churn: connect / echo / close, over and over, leaks neither
//! descriptors nor memory.

use crate::support::*;
use std::io::Write;
use std::net::SocketAddr;
use std::thread;
use std::time::{Duration, Instant};

/// Client threads; each runs its share of the cycles one after another.
const THREADS: usize = 2;
/// Cycles run before the baseline is taken, so the allocator and the slab
/// have reached their steady state.
const WARM_UP: usize = 1_000;
/// Samples of fds and RSS taken across the run.
const SAMPLES: usize = 10;
/// Allocator noise allowed between the baseline and any later sample; a
/// leak of even 16 bytes per cycle would exceed it within the CI size.
const RSS_SLACK_KIB: u64 = 128;

/// `count` connect / echo / close cycles, each with a unique message.
fn cycles(addr: SocketAddr, thread: usize, start: usize, count: usize) {
    for i in start..start + count {
        let mut c = connect(addr);
        let msg = format!("churn {thread}:{i} ........").into_bytes();
        c.write_all(&msg).unwrap();
        let got = read_exactly(&mut c, msg.len());
        assert_same(&got, &msg, &format!("cycle {thread}:{i}"));
    }
}

/// Runs `per_thread` cycles on each client thread and waits until the server
/// has closed every connection (its open fds are back at `fds`).
fn run_cycles(srv: &Server, start: usize, per_thread: usize, fds: usize) {
    let handles: Vec<_> = (0..THREADS)
        .map(|t| {
            let addr = srv.addr();
            thread::spawn(move || cycles(addr, t, start, per_thread))
        })
        .collect();
    for h in handles {
        h.join().expect("churn client");
    }
    let settled = wait_until(Duration::from_secs(30), || srv.open_fds() == fds);
    assert!(
        settled,
        "{} fds open, {fds} before the cycles",
        srv.open_fds()
    );
}

#[test]
fn churn_leaks_neither_descriptors_nor_memory() {
    // Proves: after 100,000 connect/echo/close cycles (10,000 in CI), the
    // server's open descriptors (/proc/PID/fd) are back at the baseline
    // taken after a warm-up, at every one of 10 samples along the way, and
    // its RSS never grows beyond the baseline plus allocator noise.
    let _turn = one_at_a_time();
    let total = fault_size("churn: cycles", 10_000usize, 100_000);
    // Quiet: the log's queue holds up to 1 MiB of lines by design (its own
    // bound, tests/it/log_never_blocks.rs), and how much of it a run
    // touches depends on how the log's reader is scheduled, not on the
    // connections. This test is about what each connection leaves behind.
    let mut srv = Server::start(&["-q"]);
    let baseline_fds = srv.open_fds();
    run_cycles(&srv, 0, WARM_UP / THREADS, baseline_fds);
    let mut closed = WARM_UP;
    thread::sleep(Duration::from_millis(100));
    let baseline_rss = srv.rss_kib();

    let per_sample = total / SAMPLES / THREADS;
    let mut samples = Vec::new();
    let t0 = Instant::now();
    for s in 0..SAMPLES {
        run_cycles(&srv, WARM_UP + s * per_sample, per_sample, baseline_fds);
        closed += THREADS * per_sample;
        samples.push((closed - WARM_UP, srv.open_fds(), srv.rss_kib()));
    }
    let took = t0.elapsed();
    eprintln!(
        "churn: {} cycles in {took:?} ({:.0}/s); baseline {baseline_fds} fds, {baseline_rss} KiB; \
         samples (cycles, fds, RSS KiB): {samples:?}",
        closed - WARM_UP,
        (closed - WARM_UP) as f64 / took.as_secs_f64()
    );
    for &(n, fds, rss) in &samples {
        assert_eq!(fds, baseline_fds, "after {n} cycles: descriptors leaked");
        assert!(
            rss <= baseline_rss + RSS_SLACK_KIB,
            "after {n} cycles: RSS {rss} KiB, baseline {baseline_rss} KiB"
        );
    }
    let exit = srv.stop("INT", Duration::from_secs(10));
    assert_eq!(exit.code(), Some(0), "{}", exit.describe());
    let summary = summary_of(&exit);
    assert_eq!(summary.served, closed as u64);
    assert_eq!(summary.rejected + summary.timed_out, 0, "{summary:?}");
}
