//! Echo correctness: exact bytes, message sizes, many clients, a real telnet.

use crate::support::*;
use std::io::Write;
use std::net::TcpStream;
use std::process::Command;
use std::sync::{Arc, Barrier};
use std::thread;
use std::time::Duration;

const LOG_WAIT: Duration = Duration::from_secs(5);

#[test]
fn one_client_gets_its_message_back() {
    // Proves: a single client's message comes back byte for byte (test scenario 2).
    let srv = Server::start(&[]);
    let mut c = connect(srv.addr());
    echo_roundtrip(&mut c, b"Hello, World!\n");
}

#[test]
fn several_messages_on_one_connection() {
    // Proves: one connection carries many request/response exchanges of varying sizes (scenario 3).
    let srv = Server::start(&[]);
    let mut c = connect(srv.addr());
    let mut rng = Rng::new(3);
    for i in 0..30 {
        let len = 1 + rng.below(3000) as usize;
        let mut msg = format!("message {i}: ").into_bytes();
        msg.extend(rng.bytes(len));
        echo_roundtrip(&mut c, &msg);
    }
}

#[test]
fn binary_data_is_echoed_exactly() {
    // Proves: every byte value, NULs, invalid UTF-8 and CR/LF pass through unchanged.
    let srv = Server::start(&[]);
    let mut c = connect(srv.addr());
    let all: Vec<u8> = (0..=255u8).collect();
    let mut rev = all.clone();
    rev.reverse();
    let cases: Vec<Vec<u8>> = vec![
        all.clone(),
        rev,
        vec![0u8; 1000],
        b"\0".to_vec(),
        vec![
            0xff, 0xfe, 0xc3, 0x28, 0xa0, 0xa1, 0xe2, 0x28, 0xa1, 0xf0, 0x90, 0x28, 0xbc,
        ],
        b"\r\n\r\n\n\r\r\r\n".to_vec(),
        b"line1\nline2\r\nline3\rend".to_vec(),
        b"\x04\x03\x1a\x1b[0m\x7f".to_vec(), // EOT, ^C, ^Z, ESC sequence, DEL
        all.repeat(64),
    ];
    for case in &cases {
        echo_roundtrip(&mut c, case);
    }
    // All of it back-to-back in one write as well.
    let joined: Vec<u8> = cases.concat();
    echo_roundtrip(&mut c, &joined);
}

#[test]
fn single_bytes_are_echoed() {
    // Proves: 1-byte messages are echoed promptly one at a time (no waiting for a fuller buffer).
    let srv = Server::start(&[]);
    let mut c = connect(srv.addr());
    for b in [b'x', 0u8, b'\n', 0xff] {
        echo_roundtrip(&mut c, &[b]);
    }
    for i in 0..200u32 {
        echo_roundtrip(&mut c, &[(i % 251) as u8]);
    }
}

#[test]
fn messages_larger_than_buffer_size_are_echoed() {
    // Proves: --buffer-size limits buffering, not message size: 100 KB flows through a 1-byte and a 4 KiB buffer.
    for size in ["1", "4096"] {
        let srv = Server::start(&["--buffer-size", size]);
        let mut c = connect(srv.addr());
        let data = Rng::new(7).bytes(100_000);
        let mut w = c.try_clone().unwrap();
        let d2 = data.clone();
        let writer = thread::spawn(move || w.write_all(&d2));
        let got = read_exactly(&mut c, data.len());
        writer.join().unwrap().expect("writer");
        assert_same(&got, &data, &format!("--buffer-size {size}"));
    }
}

#[test]
fn pipelined_messages_come_back_in_order() {
    // Proves: 1000 small writes sent without waiting are all echoed, complete and in order.
    let srv = Server::start(&[]);
    let mut c = connect(srv.addr());
    let mut rng = Rng::new(11);
    let msgs: Vec<Vec<u8>> = (0..1000)
        .map(|i| {
            let mut m = format!("<{i}>").into_bytes();
            let n = rng.below(40) as usize;
            m.extend(rng.bytes(n));
            m
        })
        .collect();
    let expected: Vec<u8> = msgs.concat();
    let mut w = c.try_clone().unwrap();
    let writer = thread::spawn(move || -> std::io::Result<()> {
        for m in &msgs {
            w.write_all(m)?;
        }
        Ok(())
    });
    let got = read_exactly(&mut c, expected.len());
    writer.join().unwrap().expect("writer");
    assert_same(&got, &expected, "pipelined echo");
}

#[test]
fn large_transfer_64mib_is_exact() {
    // Proves: a 64 MiB stream written while reading comes back complete and unaltered, then EOF after half-close.
    const TOTAL: u64 = 64 * 1024 * 1024;
    let srv = Server::start(&[]);
    let mut c = connect(srv.addr());
    c.set_write_timeout(Some(Duration::from_secs(30))).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let mut w = c.try_clone().unwrap();
    let writer = thread::spawn(move || {
        write_pattern(&mut w, 42, TOTAL)?;
        w.shutdown(std::net::Shutdown::Write)
    });
    let res = read_pattern(&mut c, 42, TOTAL);
    let wres = writer.join().unwrap();
    res.unwrap_or_else(|e| panic!("64 MiB echo: {e}"));
    wres.expect("writer");
    let rest = read_to_eof(&mut c);
    assert!(
        rest.is_empty(),
        "{} extra bytes after the stream",
        rest.len()
    );
    let local = c.local_addr().unwrap();
    drop(c);
    let d = srv.wait_disconnect(local, LOG_WAIT);
    assert_eq!((d.rx, d.tx), (TOTAL, TOTAL), "{d:?}");
}

#[test]
fn five_simultaneous_clients() {
    // Proves: 5 clients connected at the same time are served concurrently, each getting only its own data (scenario 4).
    let srv = Server::start(&[]);
    let clients: Vec<TcpStream> = (0..5).map(|_| connect(srv.addr())).collect();
    srv.wait_count(|l| l.contains("[CONNECT] "), 5, LOG_WAIT);
    let barrier = Arc::new(Barrier::new(5));
    let handles: Vec<_> = clients
        .into_iter()
        .enumerate()
        .map(|(i, mut c)| {
            let barrier = barrier.clone();
            thread::spawn(move || {
                barrier.wait();
                let mut rng = Rng::new(100 + i as u64);
                for round in 0..20 {
                    let mut msg = format!("client {i} round {round}:").into_bytes();
                    let n = 1 + rng.below(2000) as usize;
                    msg.extend(rng.bytes(n));
                    echo_roundtrip(&mut c, &msg);
                }
                c
            })
        })
        .collect();
    let clients: Vec<TcpStream> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    assert_eq!(
        srv.count(|l| l.contains("[DISCONNECT]")),
        0,
        "nobody disconnected while all 5 were active\n{}",
        srv.dump()
    );
    drop(clients);
    srv.wait_count(|l| l.contains("reason: peer closed)"), 5, LOG_WAIT);
}

#[test]
fn hundred_simultaneous_clients() {
    // Proves: 100 connections open at once each get exactly their own unique payload back, over several rounds.
    raise_nofile(1024);
    let srv = Server::start(&[]);
    let mut clients: Vec<TcpStream> = (0..100).map(|_| connect(srv.addr())).collect();
    for round in 0..3 {
        let payloads: Vec<Vec<u8>> = (0..clients.len())
            .map(|i| {
                let mut m = format!("[{round}:{i}]").into_bytes();
                m.extend(Rng::new((round * 1000 + i) as u64).bytes(1 + i * 7));
                m
            })
            .collect();
        for (c, p) in clients.iter_mut().zip(&payloads) {
            c.write_all(p).unwrap();
        }
        for (i, (c, p)) in clients.iter_mut().zip(&payloads).enumerate() {
            let got = read_exactly(c, p.len());
            assert_same(&got, p, &format!("client {i} round {round}"));
        }
    }
    assert_eq!(srv.count(|l| l.contains("[CONNECT] ")), 100);
}

#[test]
fn telnet_session_is_echoed() {
    // Proves: a real telnet client connects and sees its typed line echoed back (acceptance criterion 2).
    if !require_tool("telnet_session_is_echoed", "telnet") {
        return;
    }
    let srv = Server::start(&[]);
    let script = format!(
        "(printf 'hello telnet\\r\\n'; sleep 1) | telnet 127.0.0.1 {}",
        srv.port()
    );
    let mut cmd = Command::new("sh");
    cmd.args(["-c", &script]);
    let exit = run_with_input(cmd, b"", Duration::from_secs(15));
    let out = exit.stdout.join("\n");
    assert!(
        out.contains("Connected to 127.0.0.1"),
        "telnet did not connect\n{}",
        exit.describe()
    );
    assert!(
        exit.stdout
            .iter()
            .any(|l| l.trim_matches('\0') == "hello telnet"),
        "echoed line missing from telnet output\n{}",
        exit.describe()
    );
    let line = srv.wait_for("[DISCONNECT]", LOG_WAIT);
    let d = parse_disconnect(&parse_log(&line).unwrap().details).unwrap();
    assert!(d.rx >= 13 && d.rx == d.tx, "{d:?}");
}
