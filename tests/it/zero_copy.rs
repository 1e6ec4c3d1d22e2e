//! The zero-copy path: a client that streams faster than the server copies
//! (a deep backlog) is echoed through a kernel pipe (splice), byte for
//! byte; one with little in flight keeps copying; and the ways a peer can
//! end a stream never take the server down.

use crate::support::*;
use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::thread;
use std::time::Duration;

const MIB: u64 = 1024 * 1024;
/// The DEBUG line (`-v`) that says a connection switched.
const SWITCHED: &str = "streams: echoing through a kernel pipe";

/// Writes `total` bytes of stream `seed` on a clone of `s` while reading
/// and checking the echo here; returns the bytes verified. Reading starts
/// 200 ms late: on a client connected with a small receive buffer
/// ([`streaming_client`]) the echo then backs up, so the server's reads
/// fill its buffer and it switches to the pipe whatever the scheduling (a
/// reader as fast as the writer gets loopback segments just short of a
/// full buffer, and a connection may then never switch).
fn stream_and_verify(s: &mut TcpStream, seed: u64, total: u64) -> u64 {
    let mut w = s.try_clone().expect("clone");
    let writer = thread::spawn(move || {
        let mut buf = vec![0u8; 64 * 1024];
        let mut off = 0;
        while off < total {
            let n = ((total - off) as usize).min(buf.len());
            pattern_fill(seed, off, &mut buf[..n]);
            w.write_all(&buf[..n]).expect("stream write");
            off += n as u64;
        }
    });
    thread::sleep(Duration::from_millis(200));
    let mut got = vec![0u8; 256 * 1024];
    let mut want = vec![0u8; 256 * 1024];
    let mut verified = 0;
    while verified < total {
        let n = match s.read(&mut got) {
            Ok(0) => panic!("EOF after {verified} of {total} bytes"),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => panic!("read after {verified} of {total} bytes: {e}"),
        };
        pattern_fill(seed, verified, &mut want[..n]);
        if got[..n] != want[..n] {
            let i = got[..n].iter().zip(&want[..n]).position(|(a, b)| a != b);
            panic!(
                "echo differs at offset {}",
                verified + i.unwrap_or(0) as u64
            );
        }
        verified += n as u64;
    }
    writer.join().expect("writer thread");
    verified
}

#[test]
fn streaming_client_is_echoed_exactly_through_the_pipe() {
    // Proves: a client streaming 32 MiB with a concurrent reader is
    // switched to the zero-copy path once a read that fills the buffer
    // leaves bytes queued behind it (here a backlog of 1 byte: the default
    // 512 KiB builds up or not depending on which side is slower; the
    // next test shows a shallow stream kept on the copying path); the
    // switch is logged, the stream comes back in order, and the DISCONNECT
    // line counts every byte both ways.
    const TOTAL: u64 = 32 * MIB;
    let srv = Server::start(&["-v", "--splice-backlog", "1"]);
    let mut c = streaming_client(&srv);
    let client = c.local_addr().unwrap();
    assert_eq!(stream_and_verify(&mut c, 7, TOTAL), TOTAL);
    srv.wait_for(&format!("{client} {SWITCHED}"), IO_TIMEOUT);
    shutdown_write(&c);
    assert_eq!(expect_closed(&mut c, IO_TIMEOUT), Closed::Eof);
    let d = srv.wait_disconnect(client, IO_TIMEOUT);
    assert_eq!(
        (d.rx, d.tx, d.reason.as_str()),
        (TOTAL, TOTAL, "peer closed")
    );
}

#[test]
fn no_splice_copies_and_echoes_the_same() {
    // Proves: --no-splice keeps every connection on the copying path (no
    // switch logged) with the same exact echo.
    const TOTAL: u64 = 8 * MIB;
    let srv = Server::start(&["-v", "--no-splice"]);
    let mut c = connect(srv.addr());
    let client = c.local_addr().unwrap();
    assert_eq!(stream_and_verify(&mut c, 8, TOTAL), TOTAL);
    shutdown_write(&c);
    assert_eq!(expect_closed(&mut c, IO_TIMEOUT), Closed::Eof);
    let d = srv.wait_disconnect(client, IO_TIMEOUT);
    assert_eq!((d.rx, d.tx), (TOTAL, TOTAL));
    assert_eq!(srv.count(|l| l.contains(SWITCHED)), 0, "{}", srv.dump());
}

#[test]
fn a_stream_with_little_in_flight_keeps_copying() {
    // Proves: a client that keeps at most 64 KiB unechoed never queues the
    // backlog that makes splicing pay (512 KiB by default), so its
    // connection stays on the copying path, which is the faster one then,
    // even though every read fills the whole buffer; every byte comes back.
    const CHUNK: usize = 64 * 1024;
    const ROUNDS: u64 = 256;
    let srv = Server::start(&["-v"]);
    let mut c = connect(srv.addr());
    let client = c.local_addr().unwrap();
    let (mut sent, mut got) = (vec![0u8; CHUNK], vec![0u8; CHUNK]);
    for round in 0..ROUNDS {
        pattern_fill(9, round * CHUNK as u64, &mut sent);
        c.write_all(&sent).expect("write a chunk");
        c.read_exact(&mut got).expect("read its echo");
        assert!(got == sent, "the echo of chunk {round} differs");
    }
    shutdown_write(&c);
    assert_eq!(expect_closed(&mut c, IO_TIMEOUT), Closed::Eof);
    let d = srv.wait_disconnect(client, IO_TIMEOUT);
    let total = ROUNDS * CHUNK as u64;
    assert_eq!((d.rx, d.tx), (total, total));
    assert_eq!(srv.count(|l| l.contains(SWITCHED)), 0, "{}", srv.dump());
}

#[test]
fn half_close_mid_stream_flushes_the_pipe_then_closes() {
    // Proves: a streaming client that half-closes while its echo is still
    // in the pipe gets all of it, then EOF.
    const TOTAL: u64 = 4 * MIB;
    let srv = Server::start(&["-v", "--splice-backlog", "0"]);
    let mut c = streaming_client(&srv);
    let client = c.local_addr().unwrap();
    let mut w = c.try_clone().unwrap();
    let writer = thread::spawn(move || {
        let mut buf = vec![0u8; 64 * 1024];
        let mut off = 0;
        while off < TOTAL {
            pattern_fill(9, off, &mut buf);
            w.write_all(&buf).expect("stream write");
            off += buf.len() as u64;
        }
        w.shutdown(std::net::Shutdown::Write).expect("FIN");
    });
    // Not reading at first lets a backlog build, so the server's reads fill
    // its buffer and it switches to the pipe: read as fast as it writes, a
    // loopback stream arrives in segments just short of a full buffer.
    thread::sleep(Duration::from_millis(300));
    let echo = read_to_eof(&mut c);
    writer.join().unwrap();
    let mut want = vec![0u8; TOTAL as usize];
    pattern_fill(9, 0, &mut want);
    assert_same(&echo, &want, "echo after half-close");
    srv.wait_for(&format!("{client} {SWITCHED}"), IO_TIMEOUT);
    let d = srv.wait_disconnect(client, IO_TIMEOUT);
    assert_eq!(
        (d.rx, d.tx, d.reason.as_str()),
        (TOTAL, TOTAL, "peer closed")
    );
}

/// A client whose echo backs up soon when it does not read (16 KiB
/// receive buffer), for tests that need the switch to the pipe.
fn streaming_client(srv: &Server) -> TcpStream {
    connect_with_rcvbuf(srv.addr(), 16 * 1024)
}

/// RX and TX of the server's last DATA line (`-v`) about `client`.
fn last_turn(srv: &Server, client: std::net::SocketAddr) -> Option<(u64, u64)> {
    let prefix = format!("[DATA] {client} RX: ");
    let lines = srv.lines();
    let line = lines.iter().rev().find(|l| l.contains(&prefix))?;
    let (_, rest) = line.split_once(&prefix)?;
    let (rx, rest) = rest.split_once(" bytes, TX: ")?;
    let (tx, _) = rest.split_once(" bytes")?;
    Some((rx.parse().ok()?, tx.parse().ok()?))
}

/// With the client no longer reading, sends 16 KiB at a time until a server
/// turn echoes less than it read: the rest now waits in the pipe, while the
/// server's receive queue is (nearly) empty, so a FIN still gets through.
fn leave_echo_in_the_pipe(srv: &Server, c: &mut TcpStream, seed: u64, mut off: u64) {
    let client = c.local_addr().unwrap();
    let mut buf = vec![0u8; 16 * 1024];
    for _ in 0..4096 {
        let before = srv.count(|l| l.contains("[DATA]"));
        pattern_fill(seed, off, &mut buf);
        c.write_all(&buf)
            .expect("write while the server still reads");
        off += buf.len() as u64;
        srv.wait_count(|l| l.contains("[DATA]"), before + 1, IO_TIMEOUT);
        if let Some((rx, tx)) = last_turn(srv, client) {
            if tx < rx {
                return;
            }
        }
    }
    panic!("64 MiB sent and the echo never backed up: {}", srv.dump());
}

#[test]
fn reset_after_half_close_with_a_full_pipe_does_not_kill_the_server() {
    // Proves: the case where splicing into the socket raises SIGPIPE (the
    // peer half-closed, then reset, while echo bytes wait in the pipe: the
    // kernel reports EPIPE) ends that connection as a reset and nothing
    // else: the server keeps running and echoing for others.
    let srv = Server::start(&["-v", "--splice-backlog", "0"]);
    let mut c = streaming_client(&srv);
    let client = c.local_addr().unwrap();
    // Stream a while with a reader, so the connection switches to the pipe.
    stream_and_verify(&mut c, 11, 4 * MIB);
    srv.wait_for(&format!("{client} {SWITCHED}"), IO_TIMEOUT);
    // Stop reading, until echo bytes wait in the pipe.
    leave_echo_in_the_pipe(&srv, &mut c, 11, 4 * MIB);
    shutdown_write(&c);
    thread::sleep(Duration::from_millis(200));
    // RST on top of the FIN, with the echo still owed.
    socket2::SockRef::from(&c)
        .set_linger(Some(Duration::ZERO))
        .unwrap();
    drop(c);

    let d = srv.wait_disconnect(client, IO_TIMEOUT);
    assert_eq!(d.reason, "reset by peer", "{}", srv.dump());
    let mut other = connect(srv.addr());
    echo_roundtrip(&mut other, b"still here");
    let mut srv = srv;
    assert!(srv.is_running(), "server died: {}", srv.dump());
}

#[test]
fn a_log_reader_gone_after_splicing_does_not_end_the_server() {
    // Proves: splicing keeps SIGPIPE blocked on the loop's thread, and a
    // log reader that goes away once the connection streams through the
    // pipe (`echo-server -v | head`) costs nothing: the stream is echoed
    // whole, the next client too, and SIGTERM still ends the server with
    // exit 0, without a panic or a death by SIGPIPE.
    use std::io::{BufRead, BufReader};
    use std::process::{Command, Stdio};
    use std::sync::mpsc;

    let mut child = Command::new(BIN)
        .args(LOOPBACK_ARGS)
        .args(["-v", "--splice-backlog", "0"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn echo-server");
    let stdout = child.stdout.take().expect("piped stdout");
    let (lines_tx, lines) = mpsc::channel();
    // Reads the log up to the first switch to the pipe, then hangs up.
    let log_reader = thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            let switched = line.contains(SWITCHED);
            if lines_tx.send(line).is_err() || switched {
                break;
            }
        }
    });
    let addr = loop {
        let line = lines.recv_timeout(START_TIMEOUT).expect("banner");
        if let Some(rest) = line.trim().strip_prefix("Listening on ") {
            break rest.parse::<std::net::SocketAddr>().expect("address");
        }
    };

    let total = 16 * MIB;
    let mut c = connect(addr);
    let mut w = c.try_clone().expect("clone");
    let writer = thread::spawn(move || write_pattern(&mut w, 3, total));
    read_pattern(&mut c, 3, total).expect("the whole stream, echoed");
    writer.join().unwrap().expect("the client's writes");
    log_reader.join().expect("log reader thread");
    let seen: Vec<String> = lines.try_iter().collect();
    assert!(
        seen.iter().any(|l| l.contains(SWITCHED)),
        "never switched to the pipe; log: {seen:?}"
    );
    drop(c);
    // The log's reader is gone: the lines since have nowhere to go.
    echo_roundtrip(&mut connect(addr), b"the next client");

    let st = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(st.success());
    let (status, stderr) = wait_child_exit(&mut child, IO_TIMEOUT, "no exit after SIGTERM");
    assert_eq!(status.code(), Some(0), "{status:?}; stderr: {stderr}");
    assert_no_panic(&stderr);
}

#[test]
fn urgent_data_is_echoed_in_place_on_both_paths() {
    // Proves: TCP urgent data (MSG_OOB; telnet sends it on an interrupt)
    // in the middle of a stream comes back in place, with everything after
    // it, on the copying path and on the pipe. A read stops short at the
    // urgent mark and a splice never moves past it, so the echo used to
    // stall until the client sent more, and on the pipe for good.
    let (a, c) = ([b'A'; 1000], [b'C'; 1000]);
    let mut want = a.to_vec();
    want.push(b'B');
    want.extend_from_slice(&c);
    for flags in [&["-v", "--no-splice"][..], &["-v", "--splice-backlog", "0"]] {
        let srv = Server::start(flags);
        let mut conn = streaming_client(&srv);
        let client = conn.local_addr().unwrap();
        if flags.contains(&"--splice-backlog") {
            assert_eq!(stream_and_verify(&mut conn, 3, MIB), MIB);
            srv.wait_for(&format!("{client} {SWITCHED}"), IO_TIMEOUT);
        }
        conn.write_all(&a).unwrap();
        socket2::SockRef::from(&conn)
            .send_out_of_band(b"B")
            .expect("urgent byte");
        conn.write_all(&c).unwrap();
        // The connection stays open: nothing but the urgent data may make
        // the server read past the mark.
        conn.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let mut got = vec![0u8; want.len()];
        let read = conn.read_exact(&mut got);
        assert!(
            read.is_ok(),
            "{flags:?}: echo stalled ({read:?})\n{}",
            srv.dump()
        );
        assert_same(&got, &want, "echo around the urgent byte");
    }
}

#[test]
fn urgent_byte_then_fin_on_the_pipe_is_echoed_whole() {
    // Proves: a spliced stream whose urgent mark is still ahead when the
    // peer's FIN has already arrived is echoed whole and closed cleanly.
    // A splice at the mark then returns 0, as at EOF, though the urgent
    // byte and 5,000 more wait behind it; the server must not take that 0
    // for the end of the stream (which closed with them unread, so the
    // kernel reset the client, and logged `peer closed` regardless).
    // The client's 4 KiB receive buffer and its late reading make the
    // server stop with its send buffer full while everything, FIN included,
    // queues on its side: the mark is reached only after the FIN.
    let flags = ["-v", "--buffer-size", "4K", "--splice-backlog", "0"];
    urgent_byte_then_fin(
        &flags,
        100_000,
        Some(4096),
        Duration::from_millis(500),
        true,
    );
}

#[test]
fn urgent_byte_then_fin_after_8_mib_at_default_settings() {
    // Proves: the same at default settings: 8 MiB usually switch the
    // connection to the pipe (not always on a loaded machine, so it is not
    // required here), and a client that starts reading only after 1 s gets
    // all of it, the urgent byte and the 5,000 bytes after it, then EOF.
    urgent_byte_then_fin(
        &["-v"],
        8 * MIB as usize,
        None,
        Duration::from_secs(1),
        false,
    );
}

/// Sends `before` bytes, one urgent byte, 5,000 more and FIN on a client
/// with receive buffer `rcvbuf` that starts reading after `delay`; checks
/// the whole echo, a clean EOF and the DISCONNECT line, and, if
/// `must_switch`, that the connection went through the pipe.
fn urgent_byte_then_fin(
    flags: &[&str],
    before: usize,
    rcvbuf: Option<usize>,
    delay: Duration,
    must_switch: bool,
) {
    use socket2::{Domain, Socket, Type};

    const AFTER: usize = 5_000;
    let srv = Server::start(flags);
    let socket = Socket::new(Domain::IPV4, Type::STREAM, None).expect("socket");
    if let Some(bytes) = rcvbuf {
        // Before connecting, so the window it advertises is small from the
        // start.
        socket.set_recv_buffer_size(bytes).expect("SO_RCVBUF");
    }
    socket
        .connect_timeout(&srv.addr().into(), IO_TIMEOUT)
        .expect("connect");
    let mut c: TcpStream = socket.into();
    c.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    c.set_write_timeout(Some(IO_TIMEOUT)).unwrap();
    let client = c.local_addr().unwrap();

    let mut want = vec![0u8; before + 1 + AFTER];
    pattern_fill(21, 0, &mut want);
    let mut w = c.try_clone().expect("clone");
    let sent = want.clone();
    let writer = thread::spawn(move || {
        w.write_all(&sent[..before]).expect("bytes before the mark");
        let urgent = socket2::SockRef::from(&w)
            .send_out_of_band(&sent[before..=before])
            .expect("urgent byte");
        assert_eq!(urgent, 1);
        w.write_all(&sent[before + 1..])
            .expect("bytes after the mark");
        w.shutdown(std::net::Shutdown::Write).expect("FIN");
    });
    thread::sleep(delay);

    let mut got = Vec::with_capacity(want.len());
    let mut buf = vec![0u8; 64 * 1024];
    let end = loop {
        match c.read(&mut buf) {
            Ok(0) => break Closed::Eof,
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) if e.kind() == io::ErrorKind::ConnectionReset => break Closed::Reset,
            Err(e) => panic!("read after {} bytes: {e}\n{}", got.len(), srv.dump()),
        }
    };
    writer.join().expect("writer thread");
    assert_eq!(
        end,
        Closed::Eof,
        "{} of {} bytes came back, then a reset\n{}",
        got.len(),
        want.len(),
        srv.dump()
    );
    // SO_OOBINLINE on the server: the urgent byte comes back in place.
    assert_same(&got, &want, "echo around an urgent byte before FIN");
    let d = srv.wait_disconnect(client, IO_TIMEOUT);
    if must_switch {
        srv.wait_for(&format!("{client} {SWITCHED}"), IO_TIMEOUT);
    }
    let total = want.len() as u64;
    assert_eq!(
        (d.rx, d.tx, d.reason.as_str()),
        (total, total, "peer closed"),
        "{}",
        srv.dump()
    );
}
