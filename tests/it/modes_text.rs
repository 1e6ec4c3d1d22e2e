//! `--mode upper`, `discard`, `chargen` and `--max-line` against the real
//! binary: exact bytes over raw sockets, `nc` and `telnet`, half-close,
//! binary input, and a chargen client that never reads.

use crate::support::*;
use std::io::{Read, Write};
use std::net::Shutdown;
use std::process::{Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

const LOG_WAIT: Duration = Duration::from_secs(5);

/// What `upper` must send back for `input`.
fn uppercased(input: &[u8]) -> Vec<u8> {
    input.iter().map(u8::to_ascii_uppercase).collect()
}

/// Writes `input` from a thread (so a large one cannot deadlock against
/// the reply), half-closes, and reads everything the server sends.
fn exchange(srv: &Server, input: Vec<u8>) -> Vec<u8> {
    let mut s = connect(srv.addr());
    let mut w = s.try_clone().unwrap();
    let writer = thread::spawn(move || {
        w.write_all(&input).unwrap();
        w.shutdown(Shutdown::Write).unwrap();
    });
    let got = read_to_eof(&mut s);
    writer.join().unwrap();
    got
}

/// Runs `nc -N` (half-close at the end of its input) with `input`.
fn nc(srv: &Server, input: &[u8]) -> Exit {
    let mut cmd = Command::new("nc");
    cmd.args(["-N", "127.0.0.1", &srv.port().to_string()]);
    run_with_input(cmd, input, Duration::from_secs(15))
}

// The 95-character ring's stream, from line `first`, `len` bytes.
fn chargen_stream(first: usize, len: usize) -> Vec<u8> {
    let mut out = Vec::new();
    let mut line = first;
    while out.len() < len {
        out.extend((0..72).map(|i| b' ' + ((line + i) % 95) as u8));
        out.extend_from_slice(b"\r\n");
        line += 1;
    }
    out.truncate(len);
    out
}

#[test]
fn upper_changes_ascii_letters_only() {
    // Proves: upper sends back every byte, ASCII letters uppercased and
    // everything else (UTF-8, NUL, CR/LF, all 256 values) untouched, through
    // backpressure and a half-close; the banner and CONNECT name the mode.
    let srv = Server::start(&["--mode", "upper", "--buffer-size", "4K"]);
    srv.wait_for("Mode: upper", LOG_WAIT);
    let mut input = "héllo wörld, ça va?\0\r\n".as_bytes().to_vec();
    for i in 0..2000u32 {
        input.extend((0..=255u8).map(|b| b.wrapping_add(i as u8)));
    }
    let got = exchange(&srv, input.clone());
    assert_same(&got, &uppercased(&input), "upper");
    assert!(got.starts_with("HéLLO WöRLD, çA VA?\0\r\n".as_bytes()));
    let connect_line = srv.wait_for("[CONNECT] ", LOG_WAIT);
    assert!(connect_line.contains("(mode upper)"), "{connect_line}");
    let line = srv.wait_for("[DISCONNECT]", LOG_WAIT);
    let d = parse_disconnect(&parse_log(&line).unwrap().details).unwrap();
    assert_eq!((d.rx, d.tx), (input.len() as u64, input.len() as u64));
    assert_eq!(d.reason, "peer closed");
}

#[test]
fn upper_with_nc_and_telnet() {
    // Proves: a real nc and a real telnet get their lines uppercased.
    let srv = Server::start(&["--mode", "upper"]);
    if require_tool("upper_with_nc_and_telnet", "nc") {
        let exit = nc(&srv, b"hello nc, 42!\n");
        assert_eq!(
            exit.stdout.join("\n"),
            "HELLO NC, 42!",
            "{}",
            exit.describe()
        );
    }
    if !require_tool("upper_with_nc_and_telnet", "telnet") {
        return;
    }
    let script = format!(
        "(printf 'hello telnet\\r\\n'; sleep 1) | telnet 127.0.0.1 {}",
        srv.port()
    );
    let mut cmd = Command::new("sh");
    cmd.args(["-c", &script]);
    let exit = run_with_input(cmd, b"", Duration::from_secs(15));
    assert!(
        exit.stdout
            .iter()
            .any(|l| l.trim_matches('\0') == "HELLO TELNET"),
        "uppercased line missing from telnet output\n{}",
        exit.describe()
    );
}

#[test]
fn max_line_refuses_long_lines_to_their_newline() {
    // Proves: with --max-line 20 a line of 20 bytes comes back, one of 21
    // gets the error and is dropped to its newline (even when it arrives a
    // byte at a time), short lines after it come back, and the last line
    // without newline is answered at EOF; in upper mode, uppercased.
    let srv = Server::start(&["--max-line", "20"]);
    let twenty = "a".repeat(20);
    let long = "b".repeat(25);
    let input = format!("{twenty}\n{long}\nok\n{long}{long}\nlast");
    let want =
        format!("{twenty}\nerror: line too long (max 20)\nok\nerror: line too long (max 20)\nlast");
    assert_eq!(
        String::from_utf8_lossy(&exchange(&srv, input.clone().into_bytes())),
        want
    );
    // Byte by byte.
    let mut s = connect(srv.addr());
    for b in input.bytes() {
        s.write_all(&[b]).unwrap();
    }
    s.shutdown(Shutdown::Write).unwrap();
    assert_eq!(String::from_utf8_lossy(&read_to_eof(&mut s)), want);

    let srv = Server::start(&["--mode", "upper", "--max-line", "5"]);
    srv.wait_for("Mode: upper (lines of at most 5 bytes)", LOG_WAIT);
    let got = exchange(&srv, b"abc\nabcdef\nxyz".to_vec());
    assert_eq!(got, b"ABC\nerror: line too long (max 5)\nXYZ");
}

#[test]
fn discard_reads_counts_and_answers_fin_with_fin() {
    // Proves: discard sends nothing, reads everything (counted in the
    // DISCONNECT line), and answers the client's FIN with its own; nc
    // exits on its own with no output.
    let srv = Server::start(&["--mode", "discard"]);
    let input = Rng::new(19).bytes(3 << 20);
    let got = exchange(&srv, input.clone());
    assert!(got.is_empty(), "discard sent {} bytes", got.len());
    let line = srv.wait_for("[DISCONNECT]", LOG_WAIT);
    let d = parse_disconnect(&parse_log(&line).unwrap().details).unwrap();
    assert_eq!((d.rx, d.tx), (input.len() as u64, 0), "{d:?}");
    assert_eq!(d.reason, "peer closed");
    if require_tool("discard_reads_counts_and_answers_fin_with_fin", "nc") {
        let exit = nc(&srv, b"into the void\n");
        assert_eq!(exit.code(), Some(0), "{}", exit.describe());
        assert!(exit.stdout.is_empty(), "{}", exit.describe());
    }
}

#[test]
fn chargen_sends_the_rfc_864_pattern() {
    // Proves: chargen sends 72-character lines of the 95 printable
    // characters, each starting one further, CRLF-terminated, across the
    // ring's wrap; what the client sends is read and counted, not echoed;
    // a real nc receives the same stream.
    // -v: the DATA lines show when the server has read the input.
    let srv = Server::start(&["--mode", "chargen", "-v"]);
    let mut s = connect(srv.addr());
    s.write_all(b"ignored input\n").unwrap();
    let got = read_exactly(&mut s, 95 * 74 * 3 + 100);
    assert_same(&got, &chargen_stream(0, got.len()), "chargen");
    s.shutdown(Shutdown::Write).unwrap();
    // The peer's FIN does not end the stream: it only said it sends no
    // more. (Reading well past the first chunk also gives the server the
    // turns in which it reads, and counts, what was sent.)
    let more = read_exactly(&mut s, 200_000);
    assert!(more
        .iter()
        .all(|&b| b == b'\r' || b == b'\n' || (b' '..=b'~').contains(&b)));
    let peer = s.local_addr().unwrap();
    // A first turn may fill the socket with chargen before the input
    // arrives (its read found none); the input is read in the next turn,
    // which must come before this close resets the connection and the
    // kernel drops what was still unread.
    srv.wait_for_line(|l| l.contains(&format!("{peer} RX: 14 bytes")), LOG_WAIT);
    drop(s);
    let d = srv.wait_disconnect(peer, LOG_WAIT);
    assert_eq!(d.rx, 14, "{d:?}");
    assert!(d.tx >= got.len() as u64, "{d:?}");

    if !require_tool("chargen_sends_the_rfc_864_pattern", "nc") {
        return;
    }
    let mut child = KillOnDrop(
        Command::new("nc")
            .args(["127.0.0.1", &srv.port().to_string()])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn nc"),
    );
    let mut out = child.0.stdout.take().unwrap();
    let mut got = vec![0; 74 * 200];
    out.read_exact(&mut got).expect("nc's output");
    assert_same(&got, &chargen_stream(0, got.len()), "chargen through nc");
}

#[test]
fn chargen_to_clients_that_never_read_keeps_memory_flat() {
    // Proves: chargen generates only what the socket takes, so clients
    // that never read (and keep sending) hold the server at one buffer
    // each: its RSS stays flat while they sit there, and another client
    // is served meanwhile.
    let _turn = one_at_a_time();
    let srv = Server::start(&["--mode", "chargen"]);
    let clients: Vec<_> = (0..20)
        .map(|_| connect_with_rcvbuf(srv.addr(), 4096))
        .collect();
    thread::sleep(Duration::from_millis(500));
    let settled = srv.rss_kib();
    let until = Instant::now() + Duration::from_secs(2);
    let mut peak = settled;
    let mut sent = 0;
    while Instant::now() < until {
        for mut c in &clients {
            c.set_nonblocking(true).unwrap();
            if let Ok(n) = c.write(&[b'x'; 512]) {
                sent += n;
            }
        }
        peak = peak.max(srv.rss_kib());
        thread::sleep(Duration::from_millis(50));
    }
    assert!(sent > 0);
    assert!(
        peak <= settled + 2048,
        "RSS grew from {settled} KiB to {peak} KiB with 20 stalled chargen clients"
    );
    let mut other = connect(srv.addr());
    let got = read_exactly(&mut other, 7400);
    assert_same(
        &got,
        &chargen_stream(0, 7400),
        "chargen beside stalled clients",
    );
}
