//! Fault scenario 9 (issue #4): SIGINT while 200 clients are mid-transfer.
//! (tests/shutdown.rs has the one-client cases.)
mod common;

use common::*;
use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

const CLIENTS: usize = 200;
const SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(10);

/// Time from now until a connect to `addr` is refused (bounded by `limit`).
/// How long after now connects start being refused (`None`: not within
/// `limit`), and how many connects succeeded before that: the server may
/// still have accepted those, in the loop turn that was running when the
/// signal arrived.
fn refused_after(addr: SocketAddr, limit: Duration) -> (Option<Duration>, u64) {
    let t = Instant::now();
    let mut connected = 0;
    let refused = wait_until(limit, || {
        match TcpStream::connect_timeout(&addr, Duration::from_secs(1)) {
            Err(e) if e.kind() == ErrorKind::ConnectionRefused => true,
            Ok(_) => {
                connected += 1;
                false
            }
            Err(_) => false,
        }
    });
    (refused.then(|| t.elapsed()), connected)
}

struct Client {
    /// For SIOCOUTQ and the final FIN; the threads own clones.
    stream: TcpStream,
    written: Arc<AtomicU64>,
    received: Arc<AtomicU64>,
    writer: thread::JoinHandle<Result<(), String>>,
    reader: thread::JoinHandle<Result<u64, String>>,
}

/// A client streaming pattern `seed` until `freeze`, while reading (a little
/// slower than the server can echo, so echo is always in flight) and
/// checking every byte until EOF; after EOF it sends its own FIN.
fn client(addr: SocketAddr, seed: u64, freeze: Arc<AtomicBool>) -> Client {
    let stream = connect(addr);
    let written = Arc::new(AtomicU64::new(0));
    let received = Arc::new(AtomicU64::new(0));
    let mut w = stream.try_clone().unwrap();
    // Short timeout: a blocked write re-checks `freeze` often.
    w.set_write_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    let wc = written.clone();
    let writer = thread::spawn(move || {
        let mut sizes = Rng::new(seed);
        let mut buf = vec![0u8; 64 * 1024];
        let mut off = 0u64;
        let deadline = Instant::now() + Duration::from_secs(60);
        while !freeze.load(Ordering::SeqCst) {
            if Instant::now() > deadline {
                return Err("writer ran past its deadline".to_string());
            }
            let n = 1 + sizes.below(buf.len() as u64) as usize;
            pattern_fill(seed, off, &mut buf[..n]);
            match w.write(&buf[..n]) {
                Ok(k) => off += k as u64,
                Err(e)
                    if matches!(
                        e.kind(),
                        ErrorKind::WouldBlock | ErrorKind::TimedOut | ErrorKind::Interrupted
                    ) => {}
                Err(e) => return Err(format!("write after {off} bytes: {e}")),
            }
            wc.store(off, Ordering::SeqCst);
        }
        Ok(())
    });
    let mut r = stream.try_clone().unwrap();
    r.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let rc = received.clone();
    let reader = thread::spawn(move || {
        let mut buf = vec![0u8; 16 * 1024];
        let mut off = 0u64;
        loop {
            match r.read(&mut buf) {
                Ok(0) => {
                    let _ = r.shutdown(Shutdown::Write);
                    return Ok(off);
                }
                Ok(n) => {
                    if let Some(i) = pattern_check(seed, off, &buf[..n]) {
                        return Err(format!("wrong byte at offset {}", off + i as u64));
                    }
                    off += n as u64;
                    rc.store(off, Ordering::SeqCst);
                    thread::sleep(Duration::from_millis(1));
                }
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => return Err(format!("read after {off} bytes: {e}")),
            }
        }
    });
    Client {
        stream,
        written,
        received,
        writer,
        reader,
    }
}

#[test]
fn sigint_mid_transfer_delivers_every_byte_sent_before_it() {
    // Proves: SIGINT while 200 clients stream in both directions: the
    // listener is refused at once; every client receives every byte it had
    // sent before the signal (all of it on the server's side of the wire:
    // SIOCOUTQ was 0), checked byte by byte, then EOF; the server exits 0
    // well within --shutdown-timeout, its Summary counting exactly those
    // bytes in and out.
    let mut srv = Server::start(&["--shutdown-timeout", "10"]);
    let freeze = Arc::new(AtomicBool::new(false));
    let clients: Vec<Client> = (0..CLIENTS)
        .map(|i| client(srv.addr(), 7_000 + i as u64, freeze.clone()))
        .collect();
    thread::sleep(Duration::from_secs(1));

    // The clients stop sending; wait until their kernels have delivered
    // every byte to the server's socket, so "sent before the signal" is
    // exact; their echo is still on its way.
    freeze.store(true, Ordering::SeqCst);
    let mut sent = Vec::with_capacity(CLIENTS);
    for (i, c) in clients.iter().enumerate() {
        let deadline = Instant::now() + Duration::from_secs(5);
        while !c.writer.is_finished() {
            assert!(Instant::now() < deadline, "writer {i} did not stop");
            thread::sleep(Duration::from_millis(5));
        }
        sent.push(c.written.load(Ordering::SeqCst));
    }
    for (i, c) in clients.iter().enumerate() {
        assert!(
            wait_until(Duration::from_secs(20), || unacked_bytes(&c.stream) == 0),
            "client {i}: {} bytes never reached the server",
            unacked_bytes(&c.stream)
        );
    }
    let in_flight: u64 = clients
        .iter()
        .zip(&sent)
        .map(|(c, &s)| s - c.received.load(Ordering::SeqCst))
        .sum();
    let mid = clients
        .iter()
        .zip(&sent)
        .filter(|(c, &s)| c.received.load(Ordering::SeqCst) < s)
        .count();

    let t_signal = Instant::now();
    srv.signal("INT");
    let (refused, probes) = refused_after(srv.addr(), Duration::from_millis(500));
    srv.wait_for("[SHUTDOWN]", Duration::from_secs(5));

    let mut total = 0u64;
    for (i, (c, &s)) in clients.into_iter().zip(&sent).enumerate() {
        c.writer
            .join()
            .unwrap()
            .unwrap_or_else(|e| panic!("client {i}: {e}"));
        let got = c
            .reader
            .join()
            .unwrap()
            .unwrap_or_else(|e| panic!("client {i}: {e}\n{}", srv.dump()));
        assert_eq!(got, s, "client {i}: bytes back before EOF vs bytes sent");
        total += s;
    }
    let exit = srv.wait_exit(SHUTDOWN_TIMEOUT + Duration::from_secs(5));
    let took = t_signal.elapsed();
    eprintln!(
        "shutdown: {CLIENTS} clients, {total} bytes sent before SIGINT, {in_flight} of them \
         still in flight for {mid} clients at the signal; connects refused {refused:?} after \
         it; every byte back, then EOF; exit {:?} after {took:?}",
        exit.code()
    );
    assert!(
        mid > 0,
        "no echo was in flight at the signal: the test proved nothing"
    );
    let refused = refused.expect("connects still accepted 500 ms after SIGINT");
    assert!(
        refused < Duration::from_millis(200),
        "refused only after {refused:?}"
    );
    assert_eq!(exit.code(), Some(0), "{}", exit.describe());
    assert_no_panic(&exit.stderr);
    assert!(took < SHUTDOWN_TIMEOUT, "exit after {took:?}");
    let s = summary_of(&exit);
    // Probes that connected before the listener closed may have been
    // served (with no bytes) too.
    assert!(
        (CLIENTS as u64..=CLIENTS as u64 + probes).contains(&s.served),
        "{s:?}, {probes} probes connected"
    );
    assert_eq!((s.bytes_in, s.bytes_out), (total, total), "{s:?}");
    // Every client is closed by the shutdown; so may be a probe that got in
    // before the listener closed and was still open when the stop began.
    let reasons = events(&exit.stdout, "DISCONNECT")
        .iter()
        .filter(|l| l.details.contains("reason: shutdown)"))
        .count() as u64;
    assert!(
        (CLIENTS as u64..=CLIENTS as u64 + probes).contains(&reasons),
        "{reasons} DISCONNECT lines say shutdown, {probes} probes connected\n{}",
        exit.describe()
    );
}

#[test]
fn second_sigint_under_load_exits_at_once() {
    // Proves: with 200 clients that have sent data and never read their
    // echo (so draining cannot finish within --shutdown-timeout 30), the
    // first SIGINT refuses new connections at once and keeps draining; a
    // second SIGINT makes the server exit with 130 at once.
    let mut srv = Server::start(&["--shutdown-timeout", "30"]);
    let block = Rng::new(5).bytes(256 * 1024);
    let clients: Vec<TcpStream> = (0..CLIENTS)
        .map(|_| {
            let mut c = connect(srv.addr());
            c.write_all(&block).expect("256 KiB fits in socket buffers");
            c
        })
        .collect();
    srv.wait_count(
        |l| l.contains("[CONNECT] "),
        CLIENTS,
        Duration::from_secs(10),
    );
    thread::sleep(Duration::from_millis(300));
    srv.signal("INT");
    let refused = refused_after(srv.addr(), Duration::from_millis(500))
        .0
        .expect("connects still accepted 500 ms after SIGINT");
    srv.wait_for("[SHUTDOWN]", Duration::from_secs(5));
    thread::sleep(Duration::from_millis(500));
    assert!(
        srv.is_running(),
        "drain ended although no client read\n{}",
        srv.dump()
    );
    let t = Instant::now();
    srv.signal("INT");
    let exit = srv.wait_exit(Duration::from_secs(10));
    let took = t.elapsed();
    eprintln!(
        "second SIGINT: {CLIENTS} stuck clients; connects refused {refused:?} after the first \
         signal; exit {:?} {took:?} after the second",
        exit.code()
    );
    assert_eq!(exit.code(), Some(130), "{}", exit.describe());
    assert_no_panic(&exit.stderr);
    assert!(took < Duration::from_secs(1), "second SIGINT took {took:?}");
    assert_eq!(
        events(&exit.stdout, "SHUTDOWN").len(),
        2,
        "{}",
        exit.describe()
    );
    drop(clients);
}
