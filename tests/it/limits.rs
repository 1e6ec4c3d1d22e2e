//! Connection limit and file-descriptor exhaustion: clients over
//! --max-connections are rejected at once and counted; a server out of
//! descriptors neither spins nor floods its log, keeps serving, and accepts
//! its queued clients as descriptors come free (80 clients freed at once,
//! and 200 clients on 64 descriptors served in waves).

use crate::support::*;
use std::collections::HashMap;
use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::process::Command;
use std::thread;
use std::time::{Duration, Instant};

const LOG_WAIT: Duration = Duration::from_secs(10);

#[test]
fn connections_over_the_limit_are_rejected_promptly() {
    // Proves: with --max-connections 3 a 4th client is closed at once (REJECT logged) while the 3 keep echoing; a freed slot is reusable.
    let srv = Server::start(&["--max-connections", "3"]);
    let mut held: Vec<TcpStream> = (0..3).map(|_| connect(srv.addr())).collect();
    for (i, c) in held.iter_mut().enumerate() {
        echo_roundtrip(c, format!("held {i}").as_bytes());
    }
    let mut fourth = connect(srv.addr());
    let f_addr = fourth.local_addr().unwrap();
    let _ = fourth.write_all(b"let me in");
    let t = Instant::now();
    expect_closed(&mut fourth, Duration::from_secs(3));
    eprintln!("4th connection closed after {:?}", t.elapsed());
    let line = srv.wait_for(&format!("[REJECT] {f_addr} "), LOG_WAIT);
    let log = parse_log(&line).unwrap();
    assert_eq!(log.level, "WARN");
    assert_eq!(
        log.details,
        format!("{f_addr} over the connection limit of 3")
    );
    for (i, c) in held.iter_mut().enumerate() {
        echo_roundtrip(c, format!("still served {i}").as_bytes());
    }
    // Free a slot: a new client is served again.
    let gone = held.pop().unwrap();
    let gone_addr = gone.local_addr().unwrap();
    drop(gone);
    srv.wait_disconnect(gone_addr, LOG_WAIT);
    let mut again = connect(srv.addr());
    echo_roundtrip(&mut again, b"slot was freed");
    assert_eq!(srv.count(|l| l.contains("[REJECT]")), 1);
}

#[test]
fn reject_burst_is_rate_limited_but_fully_counted() {
    // Proves: 40 rejects in a burst give only 1-2 REJECT lines, the suppressed ones are reported a
    // second later even with no further reject, a later reject is logged again, and the Summary
    // counts all.
    let mut srv = Server::start(&["--max-connections", "1"]);
    let mut held = connect(srv.addr());
    echo_roundtrip(&mut held, b"the one allowed client");
    let mut burst: Vec<TcpStream> = (0..40).map(|_| connect(srv.addr())).collect();
    for c in burst.iter_mut() {
        expect_closed(c, Duration::from_secs(5));
    }
    thread::sleep(Duration::from_millis(300));
    let burst_lines = srv.events("REJECT").len();
    assert!(
        (1..=2).contains(&burst_lines),
        "40 rejects within a fraction of a second produced {burst_lines} REJECT lines (at most one per second)\n{}",
        srv.dump()
    );
    // A second later the held-back ones are reported on their own line.
    let accounted = |srv: &Server| -> u64 {
        srv.events("REJECT")
            .iter()
            .map(|l| rejects_in(&l.details))
            .sum()
    };
    assert!(
        wait_until(Duration::from_secs(5), || accounted(&srv) == 40),
        "held-back rejects never reported\n{}",
        srv.dump()
    );
    // One more reject after that is logged as usual.
    thread::sleep(Duration::from_millis(1100));
    let mut late = connect(srv.addr());
    expect_closed(&mut late, Duration::from_secs(5));
    assert!(wait_until(LOG_WAIT, || accounted(&srv) == 41));
    let lines = srv.events("REJECT");
    for l in &lines {
        assert_eq!(l.level, "WARN");
        assert!(
            l.details.contains(" over the connection limit of 1"),
            "{:?}",
            l.details
        );
    }
    assert_eq!(
        accounted(&srv),
        41,
        "REJECT lines must account for every reject: {:?}",
        lines.iter().map(|l| &l.details).collect::<Vec<_>>()
    );
    echo_roundtrip(&mut held, b"unaffected");
    drop(held);
    thread::sleep(Duration::from_millis(200));
    let exit = srv.stop("INT", Duration::from_secs(10));
    assert_eq!(exit.code(), Some(0), "{}", exit.describe());
    let s = summary_of(&exit);
    assert_eq!((s.served, s.rejected, s.peak), (1, 41, 1), "{s:?}");
}

/// The descriptor limit (soft and hard) the out-of-descriptors tests give
/// the server.
const LIMIT: u64 = 64;

/// A server started under `prlimit --nofile=LIMIT`.
fn server_out_of_descriptors() -> Server {
    let mut cmd = Command::new("prlimit");
    cmd.arg(format!("--nofile={LIMIT}:{LIMIT}"))
        .arg(BIN)
        .args(LOOPBACK_ARGS);
    let srv = Server::start_cmd(cmd);
    assert_eq!(
        srv.nofile_soft_limit(),
        LIMIT,
        "prlimit applied to the server"
    );
    srv
}

fn fd_message(i: usize) -> Vec<u8> {
    format!("fd-client-{i:03}\n").into_bytes()
}

#[test]
fn fd_exhaustion_is_survived_without_busy_loop() {
    // Proves: out of fds (prlimit 64), the server logs once, does not spin, keeps serving, and accepts the queued clients when fds free up.
    let _turn = one_at_a_time();
    let test = "fd_exhaustion_is_survived_without_busy_loop";
    if !require_tool(test, "prlimit") {
        return;
    }
    const TOTAL: usize = 80;
    let mut srv = server_out_of_descriptors();
    let limit_line = srv.wait_for("[LIMIT]", LOG_WAIT);
    assert_eq!(
        parse_log(&limit_line).unwrap().details,
        format!("open file limit is {LIMIT}"),
        "hard limit {LIMIT} cannot be raised"
    );

    let mut clients: Vec<Option<TcpStream>> = Vec::new();
    let mut by_addr = HashMap::new();
    for i in 0..TOTAL {
        let mut c = connect(srv.addr());
        c.write_all(&fd_message(i)).unwrap();
        by_addr.insert(c.local_addr().unwrap().to_string(), i);
        clients.push(Some(c));
    }
    let err_line = srv.wait_for("[ERROR]", LOG_WAIT);
    let err = parse_log(&err_line).unwrap();
    assert_eq!(err.level, "ERROR");
    assert!(
        err.details.starts_with("accept failed: ")
            && err.details.ends_with(
                "; out of file descriptors, serving existing connections and retrying every 100 ms"
            ),
        "{err_line}"
    );
    thread::sleep(Duration::from_millis(500));

    // No busy loop while saturated.
    let hz = clock_ticks_per_second();
    let c0 = srv.cpu_ticks();
    thread::sleep(Duration::from_secs(2));
    let used = srv.cpu_ticks() - c0;
    assert!(
        used * 2 < hz,
        "server used {used} ticks ({hz}/s) of CPU in 2 s while out of fds: busy loop"
    );
    assert_eq!(
        srv.count(|l| l.contains("[ERROR]")),
        1,
        "the fd-exhaustion error is logged once per episode\n{}",
        srv.dump()
    );

    let accepted: Vec<usize> = srv
        .events("CONNECT")
        .iter()
        .map(|l| {
            *by_addr
                .get(&l.details)
                .unwrap_or_else(|| panic!("unknown client {}", l.details))
        })
        .collect();
    let queued: Vec<usize> = (0..TOTAL).filter(|i| !accepted.contains(i)).collect();
    eprintln!(
        "{} accepted, {} queued at the fd limit",
        accepted.len(),
        queued.len()
    );
    assert!(
        !queued.is_empty(),
        "80 connections should exceed a 64-fd limit"
    );
    assert!(srv.is_running(), "server died out of fds\n{}", srv.dump());

    // Accepted connections are still served.
    for &i in &accepted {
        let c = clients[i].as_mut().unwrap();
        let got = read_exactly(c, fd_message(i).len());
        assert_same(&got, &fd_message(i), &format!("accepted client {i}"));
        echo_roundtrip(c, b"still served");
    }
    // Queued ones have not been served (nothing silently accepted-and-dropped).
    {
        let c = clients[queued[0]].as_mut().unwrap();
        c.set_read_timeout(Some(Duration::from_millis(200)))
            .unwrap();
        let mut b = [0u8; 64];
        match c.read(&mut b) {
            Err(e) if e.kind() == ErrorKind::WouldBlock || e.kind() == ErrorKind::TimedOut => {}
            other => panic!("queued client should be waiting, got {other:?}"),
        }
        c.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    }

    // Free enough fds for every queued client.
    let close_n = 30.max(queued.len() + 5);
    assert!(
        accepted.len() >= close_n,
        "server accepted only {} of {TOTAL} with {LIMIT} fds",
        accepted.len()
    );
    for &i in &accepted[..close_n] {
        clients[i] = None;
    }
    let line = srv.wait_for("[ACCEPT]", LOG_WAIT);
    let acc = parse_log(&line).unwrap();
    assert_eq!(acc.level, "INFO");
    srv.wait_count(|l| l.contains("[CONNECT] "), TOTAL, LOG_WAIT);
    for &i in &queued {
        let c = clients[i].as_mut().unwrap();
        let got = read_exactly(c, fd_message(i).len());
        assert_same(&got, &fd_message(i), &format!("queued client {i}"));
        echo_roundtrip(c, b"served at last");
    }
    for &i in &accepted[close_n..] {
        echo_roundtrip(clients[i].as_mut().unwrap(), b"and the rest");
    }
    assert_eq!(srv.count(|l| l.contains("[ERROR]")), 1, "{}", srv.dump());
    drop(clients);
    srv.wait_count(|l| l.contains("[DISCONNECT]"), TOTAL, LOG_WAIT);
    let exit = srv.stop("INT", Duration::from_secs(10));
    assert_eq!(exit.code(), Some(0), "{}", exit.describe());
    assert_no_panic(&exit.stderr);
    let s = summary_of(&exit);
    assert_eq!((s.served, s.rejected), (TOTAL as u64, 0), "{s:?}");
    // Exact format of the end-of-episode line (checked last so the behaviour is checked first).
    let n = numbers(&acc.details);
    assert!(
        n.len() == 1
            && acc.details
                == format!(
                    "accepting connections again after {} ms; every queued connection is accepted",
                    n[0]
                ),
        "ACCEPT line not in the documented format: {line}"
    );
}

// Out of descriptors for longer: 200 clients on 64, served in waves.

const ATTEMPTS: usize = 200;
/// Clients closed per wave once the server is saturated.
const WAVE: usize = 10;

/// Indices of the clients the server has accepted so far, in CONNECT order.
fn accepted(srv: &Server, by_addr: &HashMap<String, usize>) -> Vec<usize> {
    srv.events("CONNECT")
        .iter()
        .map(|l| {
            *by_addr
                .get(&l.details)
                .unwrap_or_else(|| panic!("CONNECT from unknown client {}", l.details))
        })
        .collect()
}

/// True when nothing has been echoed to `c` yet (it waits in the kernel's queue).
fn not_served(c: &mut TcpStream) -> bool {
    c.set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    let mut b = [0u8; 64];
    let waiting = matches!(
        c.read(&mut b),
        Err(e) if e.kind() == ErrorKind::WouldBlock || e.kind() == ErrorKind::TimedOut
    );
    c.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    waiting
}

#[test]
fn two_hundred_clients_on_sixty_four_descriptors() {
    // Proves: under `prlimit --nofile=64`, 200 connection attempts leave the
    // server alive and idle (under 5% of one core while saturated, measured
    // in /proc/PID/stat ticks), with one ERROR line for the whole episode
    // (no flooding while it retries); each time clients close, queued
    // clients are accepted and served with their bytes intact, until all
    // 200 are served; then one ACCEPT line ends the episode.
    let _turn = one_at_a_time();
    let test = "two_hundred_clients_on_sixty_four_descriptors";
    if !require_tool(test, "prlimit") {
        return;
    }
    raise_nofile(ATTEMPTS as u64 + 100);
    let mut srv = server_out_of_descriptors();

    let mut clients: Vec<Option<TcpStream>> = Vec::new();
    let mut by_addr = HashMap::new();
    for i in 0..ATTEMPTS {
        let mut c = connect(srv.addr());
        c.write_all(&fd_message(i)).unwrap();
        by_addr.insert(c.local_addr().unwrap().to_string(), i);
        clients.push(Some(c));
    }
    srv.wait_for("[ERROR]", LOG_WAIT);
    thread::sleep(Duration::from_millis(500));
    let lines_saturated = srv.line_count();

    // Saturated: nearly no CPU, and nothing more logged while it retries.
    let hz = clock_ticks_per_second();
    let t = Instant::now();
    let c0 = srv.cpu_ticks();
    thread::sleep(Duration::from_secs(3));
    let used = srv.cpu_ticks() - c0;
    let cpu_share = used as f64 / hz as f64 / t.elapsed().as_secs_f64();
    assert!(
        cpu_share < 0.05,
        "server used {used} ticks ({hz}/s) in 3 s while out of descriptors: busy loop"
    );
    assert_eq!(
        srv.line_count(),
        lines_saturated,
        "the server logged while saturated\n{}",
        srv.dump()
    );
    assert!(
        srv.is_running(),
        "server died out of descriptors\n{}",
        srv.dump()
    );

    let first = accepted(&srv, &by_addr);
    let capacity = first.len();
    assert!(
        (30..ATTEMPTS).contains(&capacity),
        "{capacity} of {ATTEMPTS} accepted with {LIMIT} descriptors"
    );
    for &i in &first {
        let c = clients[i].as_mut().unwrap();
        let got = read_exactly(c, fd_message(i).len());
        assert_same(&got, &fd_message(i), &format!("accepted client {i}"));
    }
    let waiting: Vec<usize> = (0..ATTEMPTS).filter(|i| !first.contains(i)).collect();
    assert!(not_served(clients[waiting[0]].as_mut().unwrap()));

    // Waves: close WAVE served clients, and WAVE queued ones get in and are
    // served, until everyone has been.
    let mut served: Vec<usize> = first.clone();
    let mut closed = 0;
    let mut waves = 0;
    while served.len() < ATTEMPTS {
        waves += 1;
        assert!(waves <= ATTEMPTS, "no progress through the queue");
        for &i in &served[closed..closed + WAVE] {
            clients[i] = None;
        }
        closed += WAVE;
        let want = (served.len() + WAVE).min(ATTEMPTS);
        srv.wait_count(|l| l.contains("[CONNECT] "), want, LOG_WAIT);
        let now_accepted = accepted(&srv, &by_addr);
        for &i in &now_accepted[served.len()..] {
            let c = clients[i].as_mut().unwrap();
            let got = read_exactly(c, fd_message(i).len());
            assert_same(
                &got,
                &fd_message(i),
                &format!("queued client {i}, wave {waves}"),
            );
            echo_roundtrip(c, b"served after waiting\n");
        }
        served = now_accepted;
    }
    // Everyone is in. If the last wave filled the descriptors exactly, an
    // accept still fails (EMFILE comes before the kernel looks at the
    // queue), so the episode ends only once a descriptor comes free.
    clients[served[closed]] = None;
    srv.wait_for("[ACCEPT]", LOG_WAIT);
    let used_total = srv.cpu_ticks();
    assert_eq!(srv.count(|l| l.contains("[ERROR]")), 1, "{}", srv.dump());
    assert_eq!(srv.count(|l| l.contains("[ACCEPT]")), 1, "{}", srv.dump());
    for (i, c) in clients.iter_mut().enumerate() {
        if let Some(c) = c {
            echo_roundtrip(c, format!("still here {i}\n").as_bytes());
        }
    }
    eprintln!(
        "fd exhaustion: {ATTEMPTS} clients, {LIMIT} descriptors, {capacity} served at once; \
         {used} CPU ticks ({:.2}% of a core) in 3 s saturated; {waves} waves of {WAVE} until all \
         were served; 1 ERROR + 1 ACCEPT line; {used_total} CPU ticks in total",
        cpu_share * 100.0
    );
    drop(clients);
    srv.wait_count(|l| l.contains("[DISCONNECT]"), ATTEMPTS, LOG_WAIT);
    let exit = srv.stop("INT", Duration::from_secs(10));
    assert_eq!(exit.code(), Some(0), "{}", exit.describe());
    assert_no_panic(&exit.stderr);
    let s = summary_of(&exit);
    assert_eq!((s.served, s.rejected), (ATTEMPTS as u64, 0), "{s:?}");
}
