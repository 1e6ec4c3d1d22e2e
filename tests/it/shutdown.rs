//! Ctrl+C / SIGTERM: clean stop, pending echo flushed, shutdown timeout,
//! second signal, summary; then the same under load: SIGINT while 200
//! clients stream both ways, and a second SIGINT with 200 stuck clients.

use crate::support::*;
use std::io::{self, ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

const LOG_WAIT: Duration = Duration::from_secs(5);

/// How long after now connects start being refused (`None`: not within
/// `limit`), and how many connects succeeded before that: the server may
/// still have accepted those, in the loop turn that was running when the
/// signal arrived.
fn refused_after(addr: SocketAddr, limit: Duration) -> (Option<Duration>, u64) {
    let t = Instant::now();
    let mut connected = 0;
    // A loopback SYN is answered in microseconds; one that meets the
    // listener in the middle of closing can be dropped, and would then
    // cost a whole second of SYN retransmission: try again instead.
    let refused = wait_until(limit, || {
        match TcpStream::connect_timeout(&addr, Duration::from_millis(50)) {
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

#[test]
fn sigint_stops_cleanly_and_closes_the_listener_at_once() {
    // Proves: Ctrl+C (SIGINT) closes the listener at once (new connects refused while draining), FINs clients, prints the Summary and exits 0 (scenario 7).
    let mut srv = Server::start(&["--buffer-size", "16K"]);
    let addr = srv.addr();
    let mut a = connect(addr);
    echo_roundtrip(&mut a, b"hi");
    // `a` writes 2 MiB and reads none of its echo yet: the server has
    // bytes in flight to it, so it keeps draining after the signal.
    let mut writer = a.try_clone().unwrap();
    let sender = thread::spawn(move || writer.write_all(&[b'x'; 2 << 20]));
    thread::sleep(Duration::from_millis(200));
    srv.signal("INT");
    let line = srv.wait_for("[SHUTDOWN]", LOG_WAIT);
    let log = parse_log(&line).unwrap();
    assert_eq!(log.level, "INFO");
    assert!(log.details.starts_with("SIGINT received"), "{line}");
    assert!(
        refused_after(addr, Duration::from_millis(500)).0.is_some(),
        "new connections must be refused right after SIGINT\n{}",
        srv.dump()
    );
    // The refusal above came from a live server that closed its listener
    // while it still owes `a` its echo.
    thread::sleep(Duration::from_millis(300));
    assert!(
        srv.is_running(),
        "server must keep draining while client `a` is owed its echo\n{}",
        srv.dump()
    );
    let echoed = read_to_close(&mut a, Duration::from_secs(10));
    assert_eq!(echoed, 2 << 20, "every byte echoed, then FIN");
    sender.join().unwrap().expect("all 2 MiB written");
    drop(a);
    let exit = srv.wait_exit(Duration::from_secs(10));
    assert_eq!(exit.code(), Some(0), "{}", exit.describe());
    assert_no_panic(&exit.stderr);
    assert!(exit.stdout.last().unwrap().starts_with("Summary: "));
    assert_eq!(
        summary_of(&exit),
        Summary {
            served: 1,
            bytes_in: 2 + (2 << 20),
            bytes_out: 2 + (2 << 20),
            peak: 1,
            rejected: 0,
            timed_out: 0
        }
    );
}

/// Bytes read until EOF (a reset or the timeout fails the test).
fn read_to_close(s: &mut TcpStream, timeout: Duration) -> usize {
    s.set_read_timeout(Some(timeout)).unwrap();
    let mut buf = vec![0u8; 1 << 16];
    let mut total = 0;
    loop {
        match s.read(&mut buf) {
            Ok(0) => return total,
            Ok(n) => {
                assert!(buf[..n].iter().all(|&b| b == b'x'), "wrong echo");
                total += n;
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => panic!("after {total} bytes: {e}"),
        }
    }
}

#[test]
fn idle_connections_are_closed_at_once_on_stop() {
    // Proves: Ctrl+C with idle clients connected (everything echoed and acknowledged, as an
    // interactive `nc` leaves it) closes them at once with FIN, reason `shutdown` at INFO,
    // and exits well before --shutdown-timeout, with no WARN.
    let mut srv = Server::start(&["--shutdown-timeout", "30"]);
    let mut idle: Vec<TcpStream> = (0..3).map(|_| connect(srv.addr())).collect();
    for (i, c) in idle.iter_mut().enumerate() {
        echo_roundtrip(c, format!("idle {i}").as_bytes());
    }
    thread::sleep(Duration::from_millis(100));
    let started = Instant::now();
    srv.signal("INT");
    for c in &mut idle {
        assert_eq!(expect_closed(c, Duration::from_secs(5)), Closed::Eof);
    }
    // The clients stay open: the server must not wait for them.
    let exit = srv.wait_exit(Duration::from_secs(10));
    let took = started.elapsed();
    assert_eq!(exit.code(), Some(0), "{}", exit.describe());
    assert!(took < Duration::from_secs(10), "took {took:?}");
    let closes = events(&exit.stdout, "DISCONNECT");
    assert_eq!(closes.len(), 3, "{}", exit.describe());
    for close in &closes {
        assert_eq!(close.level, "INFO", "{close:?}");
        assert!(close.details.contains("shutdown"), "{close:?}");
    }
    let warnings: Vec<_> = exit
        .stdout
        .iter()
        .filter(|l| l.contains(" WARN "))
        .collect();
    assert!(warnings.is_empty(), "{warnings:?}");
    drop(idle);
}

#[test]
fn sigterm_stops_cleanly() {
    // Proves: SIGTERM behaves like SIGINT: SHUTDOWN logged, listener closed, Summary, exit 0.
    let mut srv = Server::start(&[]);
    let addr = srv.addr();
    let mut a = connect(addr);
    echo_roundtrip(&mut a, b"term");
    drop(a);
    srv.wait_for("[DISCONNECT]", LOG_WAIT);
    let exit = srv.stop("TERM", Duration::from_secs(10));
    assert_eq!(exit.code(), Some(0), "{}", exit.describe());
    assert_no_panic(&exit.stderr);
    let sd = events(&exit.stdout, "SHUTDOWN");
    assert_eq!(sd.len(), 1, "{}", exit.describe());
    assert!(sd[0].details.starts_with("SIGTERM received"), "{:?}", sd[0]);
    assert_eq!(
        summary_of(&exit),
        Summary {
            served: 1,
            bytes_in: 4,
            bytes_out: 4,
            peak: 1,
            rejected: 0,
            timed_out: 0
        }
    );
    let err = TcpStream::connect_timeout(&addr, Duration::from_secs(2)).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::ConnectionRefused);
}

#[test]
fn pending_echo_is_flushed_on_shutdown() {
    // Proves: data the server has received but not yet echoed (client not reading) is delivered after SIGINT, then EOF; exit 0.
    const TOTAL: u64 = 12 * 1024 * 1024;
    // The server may buffer 16 MiB, so it reads all 12 MiB; the client's receive buffer is
    // small and kernel send buffers are at most a few MiB, so at SIGINT most of the echo
    // still sits in the server's own buffer and must not be dropped.
    let mut srv = Server::start(&["--buffer-size", "16M"]);
    let mut c = connect_with_rcvbuf(srv.addr(), 64 * 1024);
    write_pattern(&mut c, 99, TOTAL).expect("12 MiB write (server keeps reading up to 16 MiB)");
    thread::sleep(Duration::from_millis(500));
    srv.signal("INT");
    srv.wait_for("[SHUTDOWN]", LOG_WAIT);
    read_pattern(&mut c, 99, TOTAL).unwrap_or_else(|e| panic!("after SIGINT: {e}\n{}", srv.dump()));
    assert_eq!(
        expect_closed(&mut c, Duration::from_secs(5)),
        Closed::Eof,
        "EOF after the flushed echo"
    );
    drop(c);
    let exit = srv.wait_exit(Duration::from_secs(10));
    assert_eq!(exit.code(), Some(0), "{}", exit.describe());
    assert_eq!(
        summary_of(&exit),
        Summary {
            served: 1,
            bytes_in: TOTAL,
            bytes_out: TOTAL,
            peak: 1,
            rejected: 0,
            timed_out: 0
        }
    );
}

#[test]
fn written_but_unread_megabyte_is_flushed_on_shutdown() {
    // Proves: with default settings, a client that wrote 1 MiB without reading still gets all 1 MiB back after SIGINT, then EOF.
    const TOTAL: u64 = 1024 * 1024;
    let mut srv = Server::start(&[]);
    let mut c = connect(srv.addr());
    // Kernel buffers plus the server's 64 KiB hold 1 MiB: the write completes while nothing is read.
    write_pattern(&mut c, 7, TOTAL).unwrap_or_else(|e| {
        panic!("precondition: 1 MiB should fit in socket buffers without reading: {e}")
    });
    thread::sleep(Duration::from_millis(300));
    srv.signal("INT");
    srv.wait_for("[SHUTDOWN]", LOG_WAIT);
    read_pattern(&mut c, 7, TOTAL).unwrap_or_else(|e| panic!("after SIGINT: {e}\n{}", srv.dump()));
    assert_eq!(expect_closed(&mut c, Duration::from_secs(5)), Closed::Eof);
    drop(c);
    let exit = srv.wait_exit(Duration::from_secs(10));
    assert_eq!(exit.code(), Some(0), "{}", exit.describe());
    let s = summary_of(&exit);
    assert_eq!((s.bytes_in, s.bytes_out), (TOTAL, TOTAL), "{s:?}");
}

/// A client that writes as fast as it can and never reads, so the server always has
/// unflushable echo for it. Returns the stream (for its address), the stop flag and the writer.
fn stuck_client(srv: &Server) -> (TcpStream, Arc<AtomicBool>, Arc<AtomicU64>, JoinHandle<()>) {
    let c = connect(srv.addr());
    let mut w = c.try_clone().unwrap();
    w.set_write_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let written = Arc::new(AtomicU64::new(0));
    let (s, wr) = (stop.clone(), written.clone());
    let h = thread::spawn(move || {
        let buf = vec![b's'; 64 * 1024];
        let deadline = Instant::now() + Duration::from_secs(60);
        while !s.load(Ordering::Relaxed) && Instant::now() < deadline {
            match w.write(&buf) {
                Ok(n) => {
                    wr.fetch_add(n as u64, Ordering::Relaxed);
                }
                Err(e)
                    if e.kind() == io::ErrorKind::WouldBlock
                        || e.kind() == io::ErrorKind::TimedOut => {}
                Err(_) => break, // server gone
            }
        }
    });
    // Wait until the writer has stalled (no progress for 500 ms).
    let mut last = 0;
    let mut since = Instant::now();
    let deadline = Instant::now() + Duration::from_secs(20);
    while since.elapsed() < Duration::from_millis(500) && Instant::now() < deadline {
        thread::sleep(Duration::from_millis(50));
        let now = written.load(Ordering::Relaxed);
        if now != last {
            last = now;
            since = Instant::now();
        }
    }
    assert!(last > 0, "stuck client wrote nothing");
    (c, stop, written, h)
}

#[test]
fn shutdown_timeout_bounds_the_drain() {
    // Proves: with --shutdown-timeout 1 and a client that never reads, the server exits 0 about 1 s after SIGINT, closing it with reason `shutdown`.
    let mut srv = Server::start(&["--buffer-size", "16K", "--shutdown-timeout", "1"]);
    let (c, stop, _written, writer) = stuck_client(&srv);
    let local = c.local_addr().unwrap();
    let t = Instant::now();
    srv.signal("INT");
    let exit = srv.wait_exit(Duration::from_secs(10));
    let took = t.elapsed();
    stop.store(true, Ordering::Relaxed);
    writer.join().unwrap();
    assert_eq!(exit.code(), Some(0), "{}", exit.describe());
    assert_no_panic(&exit.stderr);
    assert!(
        took >= Duration::from_millis(900),
        "exited after {took:?}: did not give the client its 1 s to drain"
    );
    assert!(
        took <= Duration::from_millis(3500),
        "exited after {took:?} with --shutdown-timeout 1"
    );
    let d = events(&exit.stdout, "DISCONNECT")
        .into_iter()
        .filter_map(|l| parse_disconnect(&l.details))
        .find(|d| d.addr == local.to_string())
        .unwrap_or_else(|| panic!("no DISCONNECT for {local}\n{}", exit.describe()));
    assert_eq!(d.reason, "shutdown", "{d:?}");
    let s = summary_of(&exit);
    assert_eq!(s.served, 1);
    assert!(s.bytes_out <= s.bytes_in && s.bytes_in > 0, "{s:?}");
}

#[test]
fn second_signal_exits_at_once_with_128_plus_its_number() {
    // Proves: a second stop signal while draining exits immediately with
    // 128 + that signal's number (130 for SIGINT, 143 for SIGTERM, as a
    // shell reports a death by it), logging a second SHUTDOWN line. The
    // old server exited 130 after a second SIGTERM too.
    for (first, second, code) in [
        ("INT", "INT", 130),
        ("TERM", "INT", 130),
        ("INT", "TERM", 143),
        ("TERM", "TERM", 143),
    ] {
        let mut srv = Server::start(&["--buffer-size", "16K", "--shutdown-timeout", "30"]);
        let (_c, stop, _w, writer) = stuck_client(&srv);
        srv.signal(first);
        srv.wait_for("[SHUTDOWN]", LOG_WAIT);
        thread::sleep(Duration::from_millis(300));
        assert!(srv.is_running(), "draining with a 30 s shutdown timeout");
        let t = Instant::now();
        srv.signal(second);
        let exit = srv.wait_exit(Duration::from_secs(10));
        let took = t.elapsed();
        stop.store(true, Ordering::Relaxed);
        writer.join().unwrap();
        assert_eq!(
            exit.code(),
            Some(code),
            "SIG{first} then SIG{second}\n{}",
            exit.describe()
        );
        assert_no_panic(&exit.stderr);
        assert!(
            took < Duration::from_secs(3),
            "second signal should exit at once, took {took:?}"
        );
        assert_eq!(
            events(&exit.stdout, "SHUTDOWN").len(),
            2,
            "{}",
            exit.describe()
        );
        // The dropped client still gets its DISCONNECT line, RX and TX.
        let gone = events(&exit.stdout, "DISCONNECT");
        assert_eq!(gone.len(), 1, "{}", exit.describe());
        assert!(
            gone[0].details.contains("reason: shutdown"),
            "{}",
            exit.describe()
        );
    }
}

#[test]
fn one_stop_signal_delivered_twice_is_one_stop() {
    // Proves: the same signal arriving twice at once (a terminal's Ctrl+C
    // reaches both `timeout` and the server it forwards its copy to) is one
    // request to stop: the server drains and exits 0, instead of taking it
    // as "Ctrl+C again" and dropping its clients with 130.
    let mut srv = Server::start(&[]);
    let mut client = connect(srv.addr());
    echo_roundtrip(&mut client, b"hello");
    let pid = srv.pid().to_string();
    let st = std::process::Command::new("kill")
        .args(["-INT", &pid, &pid])
        .status()
        .expect("run kill");
    assert!(st.success());
    // The drain FINs the client, which closes in turn.
    client
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut rest = Vec::new();
    let _ = io::Read::read_to_end(&mut client, &mut rest);
    drop(client);
    let exit = srv.wait_exit(Duration::from_secs(10));
    assert_eq!(exit.code(), Some(0), "{}", exit.describe());
    assert_eq!(
        events(&exit.stdout, "SHUTDOWN").len(),
        1,
        "{}",
        exit.describe()
    );
}

#[test]
fn summary_matches_the_traffic() {
    // Proves: the Summary reports exactly the connections served, bytes in/out and peak concurrency that happened.
    let mut srv = Server::start(&[]);
    let mut a = connect(srv.addr());
    let mut b = connect(srv.addr());
    echo_roundtrip(&mut a, &Rng::new(1).bytes(1000));
    echo_roundtrip(&mut b, &Rng::new(2).bytes(2000));
    echo_roundtrip(&mut a, &Rng::new(3).bytes(500));
    let (aa, ba) = (a.local_addr().unwrap(), b.local_addr().unwrap());
    drop(a);
    drop(b);
    srv.wait_disconnect(aa, LOG_WAIT);
    srv.wait_disconnect(ba, LOG_WAIT);
    let mut c = connect(srv.addr());
    echo_roundtrip(&mut c, &Rng::new(4).bytes(3000));
    let ca = c.local_addr().unwrap();
    drop(c);
    srv.wait_disconnect(ca, LOG_WAIT);
    let exit = srv.stop("INT", Duration::from_secs(10));
    assert_eq!(exit.code(), Some(0), "{}", exit.describe());
    let last = exit.stdout.last().unwrap();
    assert_eq!(
        parse_summary(last),
        Some(Summary {
            served: 3,
            bytes_in: 6500,
            bytes_out: 6500,
            peak: 2,
            rejected: 0,
            timed_out: 0
        }),
        "{last}"
    );
    assert!(
        last.contains(" 6500 bytes in (6.3 KiB), 6500 bytes out (6.3 KiB), "),
        "{last}"
    );
}

#[test]
fn sigusr1_reports_and_sighup_reloads_without_stopping() {
    // Proves: SIGUSR1 logs a STATS line at once (as xinetd dumps its
    // state) and SIGHUP logs that there is nothing to reload; neither ends
    // the server, which goes on echoing and later stops with its Summary.
    // The old server was killed by either, with no drain and no Summary.
    let mut srv = Server::start(&["--stats-interval", "0"]);
    let mut client = connect(srv.addr());
    echo_roundtrip(&mut client, b"before");
    srv.signal("USR1");
    let stats = srv.wait_for("[STATS]", LOG_WAIT);
    let figures = parse_stats(stats.split("] ").nth(1).unwrap()).expect("a STATS line");
    assert_eq!((figures.total, figures.active), (1, 1), "{stats}");
    srv.signal("HUP");
    srv.wait_for("[RELOAD] SIGHUP received: nothing to reload", LOG_WAIT);
    assert!(srv.is_running(), "{}", srv.dump());
    echo_roundtrip(&mut client, b"after");
    drop(client);
    let exit = srv.stop("TERM", Duration::from_secs(10));
    assert_eq!(exit.code(), Some(0), "{}", exit.describe());
    assert_eq!(summary_of(&exit).served, 1);
}

// Under load: 200 clients mid-transfer.

const CLIENTS: usize = 200;
const SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(10);

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
    let _turn = one_at_a_time();
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
    let _turn = one_at_a_time();
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
