//! Integrity under load: 50 clients send random data in random-sized
//! writes while reading, and each gets back exactly what it sent.

use crate::support::*;
use sha2::{Digest, Sha256};
use std::io::{ErrorKind, Read, Write};
use std::net::Shutdown;
use std::thread;
use std::time::{Duration, Instant};

const CLIENTS: usize = 50;
const MIB: u64 = 1024 * 1024;

/// What one side of a client saw: byte count and SHA-256 of the stream.
type Seen = (u64, [u8; 32]);

/// Writes `total` random bytes in random-sized writes (1 B to 128 KiB),
/// hashing them as they go; then half-closes.
fn send_random(mut s: std::net::TcpStream, seed: u64, total: u64) -> Seen {
    let mut rng = Rng::new(seed);
    let mut sizes = Rng::new(seed ^ 0x0051_57E5);
    let mut hash = Sha256::new();
    let mut sent = 0u64;
    while sent < total {
        let n = (1 + sizes.below(128 * 1024)).min(total - sent) as usize;
        let chunk = rng.bytes(n);
        hash.update(&chunk);
        s.write_all(&chunk)
            .unwrap_or_else(|e| panic!("client {seed}: write after {sent} bytes: {e}"));
        sent += n as u64;
    }
    s.shutdown(Shutdown::Write).expect("shutdown(Write)");
    (sent, hash.finalize().into())
}

/// Reads until EOF in random-sized reads, hashing what arrives.
fn receive(mut s: std::net::TcpStream, seed: u64) -> Seen {
    let mut sizes = Rng::new(seed ^ 0xEAD5);
    let mut buf = vec![0u8; 128 * 1024];
    let mut hash = Sha256::new();
    let mut got = 0u64;
    loop {
        let want = 1 + sizes.below(buf.len() as u64) as usize;
        match s.read(&mut buf[..want]) {
            Ok(0) => return (got, hash.finalize().into()),
            Ok(n) => {
                hash.update(&buf[..n]);
                got += n as u64;
            }
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => panic!("client {seed}: read after {got} bytes: {e}"),
        }
    }
}

#[test]
fn fifty_clients_get_back_exactly_what_they_sent() {
    // Proves: 50 clients, each sending random data in random-sized writes
    // while reading concurrently in random-sized reads, all at once, each
    // get back a stream whose length and SHA-256 equal what they sent, then
    // EOF; the server logs each as `peer closed` with RX = TX = the size.
    let _turn = one_at_a_time();
    let per_client = fault_size("integrity: bytes per client", 4 * MIB, 16 * MIB);
    let srv = Server::start(&[]);
    let t0 = Instant::now();
    let clients: Vec<_> = (0..CLIENTS as u64)
        .map(|i| {
            let s = connect(srv.addr());
            s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
            s.set_write_timeout(Some(Duration::from_secs(60))).unwrap();
            let local = s.local_addr().unwrap();
            let w = s.try_clone().unwrap();
            let writer = thread::spawn(move || send_random(w, i, per_client));
            let reader = thread::spawn(move || receive(s, i));
            (local, writer, reader)
        })
        .collect();
    let mut verified = 0u64;
    for (i, (local, writer, reader)) in clients.into_iter().enumerate() {
        let sent = writer
            .join()
            .unwrap_or_else(|_| panic!("client {i} writer"));
        let got = reader
            .join()
            .unwrap_or_else(|_| panic!("client {i} reader"));
        assert_eq!(sent.0, per_client);
        assert_eq!(
            got, sent,
            "client {i}: (bytes, SHA-256) back differ from what it sent"
        );
        let d = srv.wait_disconnect(local, Duration::from_secs(10));
        assert_eq!(
            (d.rx, d.tx, d.reason.as_str()),
            (per_client, per_client, "peer closed"),
            "client {i}"
        );
        verified += got.0;
    }
    let took = t0.elapsed();
    eprintln!(
        "integrity: {CLIENTS} clients x {per_client} bytes = {verified} bytes echoed and \
         SHA-256 verified in {took:?} ({:.0} MiB/s each way)",
        verified as f64 / MIB as f64 / took.as_secs_f64()
    );
    assert_eq!(srv.count(|l| l.contains("[ERROR]")), 0, "{}", srv.dump());
}
