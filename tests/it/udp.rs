//! `--udp`: UDP echo (RFC 862) on the server's port, against the real
//! binary: exact bytes back (0 and 65,507 bytes included), `nc -u`,
//! `echo-client ping --udp`, a flood from one loopback source while
//! another is served, `--allow`, counters in `/metrics` and the Summary,
//! off by default, and bad options.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use crate::support::client::client;
use crate::support::endpoint::{self, get, metric};
use crate::support::{
    one_at_a_time, require_tool, run_to_exit, stdout_chunks, KillOnDrop, Rng, Server,
};

/// The largest UDP payload over IPv4.
const MAX_DATAGRAM: usize = 65_507;

/// A UDP socket on `source` (any port) that waits at most `wait` for a
/// datagram.
fn socket_on(source: &str, wait: Duration) -> UdpSocket {
    let socket = UdpSocket::bind(format!("{source}:0")).expect("bind udp");
    socket.set_read_timeout(Some(wait)).unwrap();
    socket
}

/// Sends `payload` to `to` and returns what came back, from where.
fn exchange(socket: &UdpSocket, to: SocketAddr, payload: &[u8]) -> (Vec<u8>, SocketAddr) {
    socket.send_to(payload, to).expect("send");
    let mut buf = vec![0u8; 70_000];
    let (n, from) = socket
        .recv_from(&mut buf)
        .unwrap_or_else(|e| panic!("no echo of {} bytes: {e}", payload.len()));
    buf.truncate(n);
    (buf, from)
}

/// UDP sockets the process `pid` holds, from its descriptors and the
/// kernel's UDP tables.
fn udp_sockets_of(pid: u32) -> usize {
    let inodes: Vec<String> = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .expect("fd dir")
        .filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
        .filter_map(|target| {
            let t = target.to_string_lossy().into_owned();
            t.strip_prefix("socket:[")
                .and_then(|rest| rest.strip_suffix(']'))
                .map(str::to_string)
        })
        .collect();
    ["/proc/net/udp", "/proc/net/udp6"]
        .iter()
        .filter_map(|table| std::fs::read_to_string(table).ok())
        .flat_map(|text| {
            text.lines()
                .skip(1)
                .filter_map(|l| l.split_whitespace().nth(9).map(str::to_string))
                .collect::<Vec<_>>()
        })
        .filter(|inode| inodes.contains(inode))
        .count()
}

// Proves: with --udp, datagrams sent to the TCP port's number come back
// byte for byte from that port, sizes 0 to 65,507 (never larger, never cut),
// and the banner names the UDP address.
#[test]
fn datagrams_come_back_unchanged() {
    let srv = Server::start(&["--udp"]);
    let banner = srv.wait_for("UDP echo on ", Duration::from_secs(5));
    assert!(
        banner.starts_with(&format!(
            "UDP echo on {} (per source: 100 datagrams/s",
            srv.addr()
        )),
        "{banner}"
    );
    let socket = socket_on("127.0.0.1", Duration::from_secs(5));
    let mut rng = Rng::new(21);
    for len in [0, 1, 64, 1472, 9000, 65_000, MAX_DATAGRAM] {
        let payload = rng.bytes(len);
        let (echo, from) = exchange(&socket, srv.addr(), &payload);
        assert_eq!(from, srv.addr(), "answered from the port asked");
        assert_eq!(echo.len(), len, "a reply is exactly as long as its request");
        assert!(echo == payload, "{len} bytes came back changed");
    }
    assert_eq!(udp_sockets_of(srv.pid()), 1, "one UDP socket per port");
}

// Proves: a real `nc -u` gets its line back.
#[test]
fn nc_u_gets_its_line_back() {
    if !require_tool("udp::nc_u_gets_its_line_back", "nc") {
        return;
    }
    let srv = Server::start(&["--udp"]);
    let mut child = Command::new("nc")
        .args(["-u", "127.0.0.1", &srv.port().to_string()])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn nc");
    let mut stdin = child.stdin.take().unwrap();
    let rx = stdout_chunks(child.stdout.take().unwrap());
    let _child = KillOnDrop(child);
    stdin.write_all(b"hello over udp\n").unwrap();
    stdin.flush().unwrap();
    let mut got = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    while got.len() < 15 && Instant::now() < deadline {
        if let Ok(chunk) = rx.recv_timeout(Duration::from_millis(100)) {
            got.extend(chunk);
        }
    }
    assert_eq!(got, b"hello over udp\n", "{}", srv.dump());
}

// Proves: `echo-client ping --udp` against the server loses nothing and
// exits 0; `send --udp` gets its datagram back.
#[test]
fn client_ping_udp_has_no_loss() {
    let srv = Server::start(&["--udp"]);
    let addr = srv.addr().to_string();
    let exit = client(&["ping", "--udp", &addr, "-c", "20", "-i", "0.01", "-W", "2"]);
    assert_eq!(exit.code(), Some(0), "{}\n{}", exit.describe(), srv.dump());
    assert!(
        exit.stdout
            .iter()
            .any(|l| l.starts_with("20 probes sent, 20 received, 0 lost (0.0% loss)")),
        "{}",
        exit.describe()
    );
    let exit = client(&["send", "--udp", &addr, "one datagram"]);
    assert_eq!(exit.code(), Some(0), "{}", exit.describe());
    assert!(exit
        .stdout
        .contains(&"Received echo: one datagram".to_string()));
}

// Proves: UDP is off by default: the server holds no UDP socket and a
// datagram to its port is refused (ICMP port unreachable: the client's
// exit 3), while the same server with --udp answers.
#[test]
fn udp_is_off_by_default() {
    let srv = Server::start(&[]);
    assert_eq!(udp_sockets_of(srv.pid()), 0);
    assert_eq!(srv.count(|l| l.starts_with("UDP echo on")), 0);
    let exit = client(&["send", "--udp", &srv.addr().to_string(), "x", "-W", "1"]);
    assert_eq!(exit.code(), Some(3), "{}", exit.describe());
}

// Proves: one source flooding far above its limit (127.0.0.2) gets at
// most its rate back (the server is no reflector), while every probe of
// another source (127.0.0.1) is answered and a TCP client is still
// served; the drops are counted by reason in /metrics and /stats.json,
// logged with -v at most about once a second, and in the Summary.
#[test]
fn a_flood_from_one_source_leaves_another_served() {
    let _turn = one_at_a_time();
    let (mut srv, maddr) = endpoint::start(&["--udp", "-v"]);
    let target = srv.addr();
    let stop = Arc::new(AtomicBool::new(false));
    let (sent, echoed) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let started = Instant::now();
    let flood = {
        let (stop, sent, echoed) = (stop.clone(), sent.clone(), echoed.clone());
        thread::spawn(move || {
            let socket = socket_on("127.0.0.2", Duration::from_millis(1));
            socket.set_nonblocking(true).unwrap();
            let payload = [0x5a_u8; 64];
            let mut buf = [0u8; 128];
            let deadline = Instant::now() + Duration::from_secs(20);
            // Bounded: 400,000 datagrams or 20 s, whichever is first.
            for _ in 0..400_000 {
                if stop.load(Ordering::Relaxed) || Instant::now() > deadline {
                    break;
                }
                if socket.send_to(&payload, target).is_ok() {
                    sent.fetch_add(1, Ordering::Relaxed);
                }
                while socket.recv_from(&mut buf).is_ok() {
                    echoed.fetch_add(1, Ordering::Relaxed);
                }
                // About 20,000 a second: 200 times the limit, yet below what
                // the server reads even on a loaded machine, so that its
                // socket's receive queue never overflows (the kernel would
                // then drop datagrams of every source alike).
                if sent.load(Ordering::Relaxed) % 64 == 0 {
                    thread::sleep(Duration::from_millis(3));
                }
            }
            // The last echoes still on their way.
            socket.set_nonblocking(false).unwrap();
            socket
                .set_read_timeout(Some(Duration::from_millis(300)))
                .unwrap();
            while socket.recv_from(&mut buf).is_ok() {
                echoed.fetch_add(1, Ordering::Relaxed);
            }
        })
    };
    // The flood is under way before the probes start.
    assert!(crate::support::wait_until(Duration::from_secs(5), || {
        sent.load(Ordering::Relaxed) > 2000
    }));
    let exit = client(&[
        "ping",
        "--udp",
        &target.to_string(),
        "-c",
        "40",
        "-i",
        "0.02",
        "-W",
        "2",
    ]);
    // TCP is served during the flood too.
    let mut tcp = TcpStream::connect(target).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    tcp.write_all(b"tcp during the flood").unwrap();
    let mut back = [0u8; 20];
    tcp.read_exact(&mut back).unwrap();
    assert_eq!(&back, b"tcp during the flood");
    stop.store(true, Ordering::Relaxed);
    flood.join().unwrap();
    let elapsed = started.elapsed().as_secs_f64();

    assert_eq!(exit.code(), Some(0), "{}\n{}", exit.describe(), srv.dump());
    assert!(
        exit.stdout
            .iter()
            .any(|l| l.starts_with("40 probes sent, 40 received, 0 lost")),
        "{}",
        exit.describe()
    );
    let (sent, echoed) = (sent.load(Ordering::Relaxed), echoed.load(Ordering::Relaxed));
    // 100 at once, then 100 a second: with a second of margin.
    let allowed = 100.0 + 100.0 * (elapsed + 1.0);
    assert!(
        (echoed as f64) <= allowed && echoed >= 100,
        "the flooding source got {echoed} echoes of {sent} in {elapsed:.1}s"
    );
    let dropped = metric(
        maddr,
        "echo_udp_datagrams_dropped_total{reason=\"rate_limit\"}",
    );
    let received = metric(maddr, "echo_udp_datagrams_received_total");
    let echoed_total = metric(maddr, "echo_udp_datagrams_sent_total");
    assert!(dropped >= 1000, "dropped {dropped} of {sent}");
    assert_eq!(
        received,
        echoed_total + dropped,
        "every datagram accounted for"
    );
    assert!(echoed_total >= 40 + 100 && echoed_total as f64 <= 40.0 + allowed);
    assert_eq!(metric(maddr, "echo_udp_sources_tracked"), 2);
    let json = get(maddr, "/stats.json").text();
    assert!(
        json.contains(&format!("\"rate_limit\":{dropped}")),
        "{json}"
    );
    // -v: drop lines name the reason and the source, about once a second.
    let drop_lines = srv.count(|l| {
        l.contains("[UDP] ")
            && l.contains("over the per-source rate limit")
            && l.contains("the last from 127.0.0.2:")
    });
    assert!(drop_lines >= 1, "{}", srv.dump());
    assert!(
        (drop_lines as f64) <= elapsed + 2.0,
        "{drop_lines} drop lines in {elapsed:.1}s"
    );
    let exit = srv.stop("TERM", Duration::from_secs(10));
    let summary = exit
        .stdout
        .iter()
        .find(|l| l.starts_with("Summary:"))
        .unwrap_or_else(|| panic!("{}", exit.describe()));
    assert!(
        summary.contains(&format!(
            "; UDP: {received} datagrams in, {echoed_total} out, "
        )) && summary.contains(&format!(
            "{dropped} dropped ({dropped} over the per-source rate limit)"
        )),
        "{summary}"
    );
}

// Proves: --udp-rate sets the per-source limit (a burst of 50 gets 5 back
// at 5/s) and --allow keeps out sources it does not name, counted as
// not_allowed, while named ones are served.
#[test]
fn rate_and_allow_list_are_honoured() {
    let (srv, maddr) = endpoint::start(&["--udp", "--udp-rate", "5/s", "--allow", "127.0.0.1"]);
    let socket = socket_on("127.0.0.1", Duration::from_millis(300));
    for i in 0..50u8 {
        socket.send_to(&[i], srv.addr()).unwrap();
    }
    let mut buf = [0u8; 16];
    let mut back = Vec::new();
    while let Ok((n, _)) = socket.recv_from(&mut buf) {
        back.push(buf[..n].to_vec());
    }
    // The first five of the burst, each unchanged.
    assert_eq!(back, (0..5u8).map(|i| vec![i]).collect::<Vec<_>>());
    assert_eq!(
        metric(
            maddr,
            "echo_udp_datagrams_dropped_total{reason=\"rate_limit\"}"
        ),
        45
    );

    let outsider = socket_on("127.0.0.2", Duration::from_millis(300));
    for _ in 0..3 {
        outsider.send_to(b"let me in", srv.addr()).unwrap();
    }
    assert!(outsider.recv_from(&mut buf).is_err(), "not in --allow");
    assert!(crate::support::wait_until(Duration::from_secs(5), || {
        metric(
            maddr,
            "echo_udp_datagrams_dropped_total{reason=\"not_allowed\"}",
        ) == 3
    }));
}

// Proves: bad UDP options stop the start with exit 2 and a message naming
// the flag; a UDP port already taken stops it with exit 1, naming the port,
// and nothing is left running.
#[test]
fn bad_udp_options_are_refused() {
    for (args, says) in [
        (&["--udp-rate", "0"][..], "must be between 1 and"),
        (
            &["--udp-rate", "lots"],
            "expected a whole number of datagrams per second",
        ),
        (&["--udp-rate", "100/min"], "expected a whole number"),
        (&["--udp-bytes", "0"], "must be between 1 and"),
        (&["--udp-bytes", "1G/s"], "unknown size suffix"),
        (&["--allow", "10.1.0.0/8"], "host bits set"),
        (&["--allow", "300.0.0.1"], ""),
    ] {
        let mut all = vec!["--port", "0", "--udp"];
        all.extend_from_slice(args);
        let exit = run_to_exit(&all, Duration::from_secs(10));
        assert_eq!(exit.code(), Some(2), "{args:?}: {}", exit.describe());
        assert!(
            exit.stderr.contains(&format!("for '{} <", args[0])) && exit.stderr.contains(says),
            "{args:?}: {}",
            exit.stderr
        );
        assert!(!exit.stderr.contains("panicked"), "{}", exit.stderr);
    }

    // A UDP port taken whose TCP port is free, so that UDP is what fails.
    let (_taken, port) = (0..100)
        .find_map(|_| {
            let taken = UdpSocket::bind("127.0.0.1:0").unwrap();
            let port = taken.local_addr().unwrap().port();
            std::net::TcpListener::bind(("127.0.0.1", port))
                .ok()
                .map(|_| (taken, port.to_string()))
        })
        .expect("a port free for TCP whose UDP port is taken");
    let exit = run_to_exit(
        &["--bind", "127.0.0.1", "--port", &port, "--udp"],
        Duration::from_secs(10),
    );
    assert_eq!(exit.code(), Some(1), "{}", exit.describe());
    assert!(
        exit.stderr.contains(&format!(
            "--udp: cannot serve UDP on 127.0.0.1:{port}: address already in use"
        )),
        "{}",
        exit.stderr
    );
    assert!(!exit.stdout.iter().any(|l| l.starts_with("Listening on")));
}

// Proves: a burst longer than one socket's turn (64 datagrams) is all
// answered, each once, with nothing more arriving to raise a new edge:
// the socket whose turn ran out gets another without one.
#[test]
fn a_burst_longer_than_a_turn_is_all_answered() {
    let srv = Server::start(&["--udp", "--udp-rate", "10000/s"]);
    let socket = socket_on("127.0.0.1", Duration::from_secs(2));
    // Fewer than the kernel's default receive buffer holds (about 250 small
    // datagrams): its drops are not the server's.
    let burst = 150u32;
    for i in 0..burst {
        socket.send_to(&i.to_be_bytes(), srv.addr()).unwrap();
    }
    let mut seen = vec![false; burst as usize];
    let mut buf = [0u8; 16];
    for _ in 0..burst {
        let (n, _) = socket.recv_from(&mut buf).unwrap_or_else(|e| {
            panic!(
                "{} of {burst} answered: {e}",
                seen.iter().filter(|s| **s).count()
            )
        });
        assert_eq!(n, 4);
        let i = u32::from_be_bytes(buf[..4].try_into().unwrap()) as usize;
        assert!(!seen[i], "{i} answered twice");
        seen[i] = true;
    }
}

/// Sleeps the server did per UDP round trip, for a client that sends each
/// datagram 1 ms after the previous echo came back.
fn udp_sleeps_per_round_trip(busy_poll: &str) -> f64 {
    const ROUND_TRIPS: u64 = 300;
    let srv = Server::start(&["--udp", "--udp-rate", "100000/s", "--busy-poll", busy_poll]);
    let socket = socket_on("127.0.0.1", Duration::from_secs(5));
    for _ in 0..50 {
        exchange(&socket, srv.addr(), &[7u8; 64]);
    }
    let before = srv.voluntary_switches();
    for _ in 0..ROUND_TRIPS {
        thread::sleep(Duration::from_millis(1));
        exchange(&socket, srv.addr(), &[7u8; 64]);
    }
    (srv.voluntary_switches() - before) as f64 / ROUND_TRIPS as f64
}

// Proves: a UDP peer waiting for each echo keeps the server awake between
// its datagrams within the busy-poll window (a 20 ms one, so that a loaded
// machine still answers inside it), as a TCP ping-pong does; with
// --busy-poll 0 the same exchange puts it to sleep once per datagram.
#[test]
fn a_udp_ping_pong_finds_the_server_awake() {
    let _turn = one_at_a_time();
    let polling = udp_sleeps_per_round_trip("20000");
    let sleeping = udp_sleeps_per_round_trip("0");
    assert!(
        polling < 0.2,
        "the server slept {polling:.3} times per UDP round trip while polling"
    );
    assert!(
        sleeping > 0.5,
        "with --busy-poll 0 it slept only {sleeping:.3} times per round trip: \
         the measurement cannot tell polling from sleeping"
    );
}
