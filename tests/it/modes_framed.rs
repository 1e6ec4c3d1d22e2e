//! `--mode framed` against the real binary: the protocol's bytes over raw
//! sockets and `nc`; prime checks on the workers overtaken by later frames
//! (the seed's own scenario), other connections served while every worker
//! is busy; each bound's reply; garbage, binary input, half-close and
//! resets with checks pending.

use crate::support::*;
use std::io::{Read, Write};
use std::net::{Shutdown, TcpStream};
use std::process::Command;
use std::time::{Duration, Instant};

/// The largest prime below 2^63: trial division keeps a worker on it for
/// many seconds.
const BIG_PRIME: &str = "9223372036854775783";

/// Reads until `want` bytes came (or the socket's timeout ends it).
fn read_n(s: &mut TcpStream, want: usize) -> Vec<u8> {
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    while got.len() < want {
        match s.read(&mut buf[..(want - got.len()).min(4096)]) {
            Ok(0) | Err(_) => break,
            Ok(n) => got.extend_from_slice(&buf[..n]),
        }
    }
    got
}

/// A framed connection, its `*` greeting read.
fn framed(srv: &Server) -> TcpStream {
    let mut s = connect(srv.addr());
    assert_eq!(read_n(&mut s, 1), b"*", "no greeting");
    s
}

/// Closes `s` with an RST (SO_LINGER 0).
fn reset(s: TcpStream) {
    socket2::SockRef::from(&s)
        .set_linger(Some(Duration::ZERO))
        .unwrap();
    drop(s);
}

#[test]
fn framed_protocol_bytes() {
    // Proves: `*` on connect, garbage outside frames ignored, each byte of
    // a frame plus one (255 wraps to 0) and a newline, P-frames that are
    // not numbers echoed, checks answered; the banner names the mode, the
    // workers and the test.
    let srv = Server::start(&["--mode", "framed", "--workers", "2"]);
    srv.wait_for(
        "Mode: framed (2 prime-check workers, trial-division)",
        Duration::from_secs(5),
    );
    let mut s = framed(&srv);
    s.write_all(b"garbage\0\xff^abc$ more garbage ^\xff\x00$^$^P$^Pa1$")
        .unwrap();
    let want = b"bcd\n\x00\x01\n\nQ\nQb2\n";
    assert_eq!(read_n(&mut s, want.len()), want);
    s.write_all(b"^P1000000007$").unwrap();
    assert_eq!(read_n(&mut s, 6), b"prime\n");
    s.write_all(b"^P1000000008$").unwrap();
    assert_eq!(read_n(&mut s, 10), b"composite\n");
    // Split anywhere: one byte per write.
    for b in b"xx^hello$^P97$" {
        s.write_all(&[*b]).unwrap();
    }
    assert_eq!(read_n(&mut s, 12), b"ifmmp\nprime\n");
}

#[test]
fn framed_session_with_nc() {
    // Proves: a real nc gets the greeting, an echo frame and a check's
    // answer, and after its half-close the owed answer still comes.
    if !require_tool("framed_session_with_nc", "nc") {
        return;
    }
    let srv = Server::start(&["--mode", "framed"]);
    let mut cmd = Command::new("nc");
    cmd.args(["-N", "127.0.0.1", &srv.port().to_string()]);
    let exit = run_with_input(cmd, b"hello ^abc$ ^P1000000007$\n", Duration::from_secs(15));
    assert_eq!(exit.stdout.join("\n"), "*bcd\nprime", "{}", exit.describe());
}

#[test]
fn long_check_is_overtaken_and_blocks_no_one() {
    // Proves the seed's scenario: with two workers, a prime near 2^63 sent
    // first, then an echo frame, then a small number, on one connection:
    // the echo and the small check come back first. With both workers on
    // long checks, another connection's echo frames are still answered at
    // once (the loop never computes), and Miller-Rabin answers at once.
    let _turn = one_at_a_time();
    let srv = Server::start(&["--mode", "framed", "--workers", "2"]);
    let mut a = framed(&srv);
    a.write_all(format!("^P{BIG_PRIME}$").as_bytes()).unwrap();
    a.write_all(b"^echo$").unwrap();
    a.write_all(b"^P1000000007$").unwrap();
    assert_eq!(read_n(&mut a, 11), b"fdip\nprime\n");
    // Both workers busy now.
    let mut b = framed(&srv);
    b.write_all(format!("^P{BIG_PRIME}$").as_bytes()).unwrap();
    let mut c = framed(&srv);
    for i in 0..20 {
        let started = Instant::now();
        c.write_all(format!("^frame {i}$").as_bytes()).unwrap();
        let want = format!(
            "gsbnf!{}\n",
            i.to_string()
                .bytes()
                .map(|d| (d + 1) as char)
                .collect::<String>()
        );
        assert_eq!(String::from_utf8_lossy(&read_n(&mut c, want.len())), want);
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "an echo frame waited {:?} behind the checks",
            started.elapsed()
        );
    }
    let mut none = [0u8; 1];
    a.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    assert!(
        a.read(&mut none).is_err(),
        "the long check cannot be done yet"
    );

    let srv = Server::start(&["--mode", "framed", "--prime-test", "miller-rabin"]);
    let mut m = framed(&srv);
    m.write_all(format!("^P{BIG_PRIME}$^P18446744073709551615$").as_bytes())
        .unwrap();
    assert_eq!(read_n(&mut m, 16), b"prime\ncomposite\n");
}

#[test]
fn bounds_have_their_replies() {
    // Proves: a frame too long for the buffer, a number beyond u64 and
    // more checks than a connection may have pending each get their reply
    // and the connection goes on; a client that resets with checks pending
    // leaves nothing behind: the server keeps serving, and its only worker
    // is free again for the next client.
    let srv = Server::start(&[
        "--mode",
        "framed",
        "--workers",
        "1",
        "--buffer-size",
        "1024",
    ]);
    let mut s = framed(&srv);
    let long = format!("^{}$^ok$", "x".repeat(800));
    s.write_all(long.as_bytes()).unwrap();
    assert_eq!(read_n(&mut s, 25), b"error: frame too long\npl\n");
    s.write_all(b"^P18446744073709551616$^P00018446744073709551615$")
        .unwrap();
    // Too large at once; u64::MAX (divisible by 3) once the worker says so.
    assert_eq!(read_n(&mut s, 34), b"error: number too large\ncomposite\n");
    // 16 checks fill the connection's share; the 17th is busy.
    s.write_all(format!("^P{BIG_PRIME}$").repeat(17).as_bytes())
        .unwrap();
    assert_eq!(read_n(&mut s, 12), b"error: busy\n");
    let peer = s.local_addr().unwrap();
    reset(s);
    let d = srv.wait_disconnect(peer, Duration::from_secs(5));
    assert_eq!(d.reason, "reset by peer", "{d:?}");
    // The lone worker dropped the gone client's checks.
    let mut t = framed(&srv);
    t.write_all(b"^P7$").unwrap();
    assert_eq!(read_n(&mut t, 6), b"prime\n");
    assert_no_panic(&srv.stderr());
}

#[test]
fn garbage_half_close_and_resets_mid_frame() {
    // Proves: binary garbage without frames gets nothing back and grows
    // nothing; a reset in the middle of a frame and one with a check
    // pending are just disconnects; after a half-close the owed answers
    // come, then the server's FIN.
    let srv = Server::start(&["--mode", "framed", "--workers", "1"]);
    let mut g = framed(&srv);
    let garbage: Vec<u8> = Rng::new(4)
        .bytes(4 << 20)
        .into_iter()
        .map(|b| if b == b'^' { b'v' } else { b })
        .collect();
    g.write_all(&garbage).unwrap();
    g.write_all(b"^ab$").unwrap();
    assert_eq!(read_n(&mut g, 3), b"bc\n");

    let mut r = framed(&srv);
    r.write_all(b"^half a fra").unwrap();
    reset(r);
    let mut p = framed(&srv);
    p.write_all(format!("^P{BIG_PRIME}$^ab").as_bytes())
        .unwrap();
    reset(p);

    let mut h = framed(&srv);
    h.write_all(b"^P1000000007$^x$^unfinished").unwrap();
    h.shutdown(Shutdown::Write).unwrap();
    let got = read_to_eof(&mut h);
    assert_eq!(String::from_utf8_lossy(&got), "y\nprime\n");
    assert_no_panic(&srv.stderr());
}

#[test]
fn prime_workers_yield_to_the_loop() {
    // Proves: the check threads run at nice 19, so the event loop (nice 0)
    // preempts a long check as soon as it wakes, even on a shared CPU (a
    // pinned server; BENCHMARKS.md, framedwait).
    let srv = Server::start(&["--mode", "framed", "--workers", "2"]);
    let threads = || {
        let mut found = Vec::new();
        for task in std::fs::read_dir(format!("/proc/{}/task", srv.pid())).unwrap() {
            let path = task.unwrap().path();
            let name = std::fs::read_to_string(path.join("comm")).unwrap_or_default();
            let stat = std::fs::read_to_string(path.join("stat")).unwrap_or_default();
            // Field 19 is the nice value; the command may hold spaces, so
            // count from the closing parenthesis.
            let after = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
            let nice: i32 = after.split_whitespace().nth(16).unwrap().parse().unwrap();
            found.push((name.trim().to_string(), nice));
        }
        found
    };
    // A thread lowers itself as it starts: give the two a moment.
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut seen = threads();
    // A thread names itself as it starts, too: until both have, keep looking.
    let settled = |seen: &[(String, i32)]| {
        let primes: Vec<_> = seen
            .iter()
            .filter(|(n, _)| n.starts_with("prime-"))
            .collect();
        primes.len() == 2 && primes.iter().all(|(_, nice)| *nice == 19)
    };
    while Instant::now() < deadline && !settled(&seen) {
        std::thread::sleep(Duration::from_millis(20));
        seen = threads();
    }
    let primes = seen.iter().filter(|(n, _)| n.starts_with("prime-")).count();
    assert_eq!(primes, 2, "{seen:?}");
    assert!(
        seen.iter()
            .filter(|(n, _)| n.starts_with("prime-"))
            .all(|(_, nice)| *nice == 19),
        "{seen:?}"
    );
    let main = seen
        .iter()
        .find(|(n, _)| n == "echo-server")
        .expect("the loop's thread");
    assert_eq!(main.1, 0, "{seen:?}");
}
