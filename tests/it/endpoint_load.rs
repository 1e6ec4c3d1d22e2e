//! The metrics endpoint under load must not hold up the echo. A few
//! scrapers that pipeline `/stats.json` against a server with 1,000
//! connections used to stall every echo client for 0.2 to 1 s at a time:
//! each page took over a millisecond to build and was rebuilt for every
//! request, dozens of times per pass of the loop.
//!
//! Its tests take their turn (`one_at_a_time`): the timing below must not
//! share the machine with other heavy tests.

use crate::support::endpoint::{read_reply, start};
use crate::support::*;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

const IDLE: usize = 1000;
const SCRAPERS: usize = 20;
const PIPELINED: usize = 8;

/// A server with the endpoint and [`IDLE`] echo connections open (so its
/// pages are large), with descriptors for `more` connections besides;
/// `None` after a SKIP line when the descriptors cannot be had.
fn server_with_idle(
    test: &str,
    more: usize,
) -> Option<(Server, std::net::SocketAddr, Vec<TcpStream>)> {
    let want = (IDLE + more) as u64 + 200;
    if raise_nofile(want) < want {
        skip(test, "not enough file descriptors");
        return None;
    }
    let (srv, maddr) = start(&["-q"]);
    let idle = (0..IDLE).map(|_| connect(srv.addr())).collect();
    Some((srv, maddr, idle))
}

#[test]
fn scrapers_do_not_hold_up_the_echo() {
    // Proves: with 20 clients each keeping 8 `/stats.json` requests in
    // flight against a server holding 1,000 connections, an echo client's
    // median round trip stays within 50 ms (it was about 200 ms), and the
    // scrapers are still answered.
    let _turn = one_at_a_time();
    let Some((srv, maddr, _idle)) = server_with_idle("scrapers_do_not_hold_up_the_echo", 0) else {
        return;
    };
    let stop = Arc::new(AtomicBool::new(false));
    let answered = Arc::new(AtomicU64::new(0));
    let scrapers: Vec<_> = (0..SCRAPERS)
        .map(|_| {
            let (stop, answered) = (stop.clone(), answered.clone());
            thread::spawn(move || {
                let mut s = connect(maddr);
                let requests =
                    b"GET /stats.json HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".repeat(PIPELINED);
                // Bounded: the test sets `stop` after its probes.
                while !stop.load(Ordering::Relaxed) {
                    s.write_all(&requests).unwrap();
                    for _ in 0..PIPELINED {
                        assert_eq!(read_reply(&mut s).status, 200);
                        answered.fetch_add(1, Ordering::Relaxed);
                    }
                }
            })
        })
        .collect();
    // Let the scrapers get going, then time small echoes.
    assert!(wait_until(Duration::from_secs(10), || answered
        .load(Ordering::Relaxed)
        >= (SCRAPERS * PIPELINED) as u64));
    let mut probe = connect(srv.addr());
    let mut rtts = Vec::new();
    for i in 0..30u8 {
        let sent = [i; 64];
        let t = Instant::now();
        probe.write_all(&sent).unwrap();
        let mut back = [0u8; 64];
        probe.read_exact(&mut back).unwrap();
        rtts.push(t.elapsed());
        assert_eq!(back, sent);
        thread::sleep(Duration::from_millis(20));
    }
    stop.store(true, Ordering::Relaxed);
    for s in scrapers {
        s.join().expect("every scrape answered 200");
    }
    rtts.sort();
    let median = rtts[rtts.len() / 2];
    eprintln!(
        "echo RTT under scraping: median {median:?}, max {:?}; {} pages served",
        rtts[rtts.len() - 1],
        answered.load(Ordering::Relaxed)
    );
    assert!(
        median < Duration::from_millis(50),
        "echo median RTT {median:?} while scraped; all: {rtts:?}"
    );
}

#[test]
fn clients_that_do_not_read_share_one_page() {
    // Proves: 500 endpoint clients that ask for `/stats.json` (260 KB with
    // 1,000 connections) and never read hold references to the pages built,
    // not a copy each: the server grows by well under 40 MiB (it grew by
    // 126 MiB), and echo still answers.
    const CLIENTS: usize = 500;
    let _turn = one_at_a_time();
    let Some((srv, maddr, _idle)) =
        server_with_idle("clients_that_do_not_read_share_one_page", CLIENTS)
    else {
        return;
    };
    let mut probe = connect(srv.addr());
    echo_roundtrip(&mut probe, b"before");
    let before = srv.rss_kib();
    let stuck: Vec<TcpStream> = (0..CLIENTS)
        .map(|_| {
            let socket =
                socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
            socket.set_recv_buffer_size(4096).unwrap();
            socket.connect(&maddr.into()).unwrap();
            let mut s: TcpStream = socket.into();
            s.write_all(b"GET /stats.json HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
                .unwrap();
            s
        })
        .collect();
    // Every request answered as far as the clients let it.
    thread::sleep(Duration::from_millis(1500));
    let grown = srv.rss_kib().saturating_sub(before);
    echo_roundtrip(&mut probe, b"after");
    drop(stuck);
    assert!(
        grown < 40 * 1024,
        "{CLIENTS} non-reading endpoint clients grew the server by {grown} KiB"
    );
}
