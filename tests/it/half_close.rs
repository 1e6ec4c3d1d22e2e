//! Half-close: a client that shuts its write side still gets every byte it
//! sent, then a clean EOF; with real `nc -N` (from `hello` to 8 MiB files)
//! and with `shutdown(Write)`, alone, behind a full buffer, and 200 at once.

use crate::support::*;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

const LOG_WAIT: Duration = Duration::from_secs(10);

/// Pipes `input` through `nc -N 127.0.0.1 PORT` and returns what nc printed,
/// once nc has exited by itself (it does when the server's EOF arrives).
fn through_nc(port: u16, input: &[u8], timeout: Duration) -> Vec<u8> {
    let dir = std::env::temp_dir().join(format!("echo-fault-nc-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(format!("input-{}", input.len()));
    std::fs::write(&path, input).unwrap();
    let stdin = std::fs::File::open(&path).unwrap();
    let mut child = KillOnDrop(
        Command::new("nc")
            .args(["-N", "127.0.0.1", &port.to_string()])
            .stdin(stdin)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn nc"),
    );
    let mut out = child.0.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        let mut v = Vec::new();
        let _ = out.read_to_end(&mut v);
        let _ = tx.send(v);
    });
    let output = rx
        .recv_timeout(timeout)
        .unwrap_or_else(|_| panic!("nc did not finish within {timeout:?}"));
    let deadline = Instant::now() + Duration::from_secs(5);
    let status = loop {
        if let Some(status) = child.0.try_wait().unwrap() {
            break status;
        }
        assert!(Instant::now() < deadline, "nc did not exit after EOF");
        thread::sleep(Duration::from_millis(10));
    };
    assert!(status.success(), "nc exited with {status}");
    let _ = std::fs::remove_file(&path);
    output
}

#[test]
fn half_close_gets_full_echo_then_eof() {
    // Proves: after shutdown(Write) the client still receives every byte it sent, then a clean EOF.
    const TOTAL: u64 = 1024 * 1024;
    let srv = Server::start(&["--buffer-size", "16K"]);
    let mut c = connect(srv.addr());
    let mut w = c.try_clone().unwrap();
    let writer = thread::spawn(move || {
        write_pattern(&mut w, 5, TOTAL)?;
        w.shutdown(std::net::Shutdown::Write)
    });
    let res = read_pattern(&mut c, 5, TOTAL);
    writer.join().unwrap().expect("writer");
    res.unwrap_or_else(|e| panic!("half-close echo: {e}"));
    assert_eq!(
        expect_closed(&mut c, Duration::from_secs(5)),
        Closed::Eof,
        "clean EOF (FIN), not a reset, after the echo"
    );
    let d = srv.wait_disconnect(c.local_addr().unwrap(), LOG_WAIT);
    assert_eq!(
        (d.rx, d.tx, d.reason.as_str()),
        (TOTAL, TOTAL, "peer closed")
    );
}

#[test]
fn half_close_with_real_nc() {
    // Proves: `printf 'hello' | nc -N HOST PORT` prints exactly `hello` and exits (half-close with a real tool).
    if !require_tool("half_close_with_real_nc", "nc") {
        return;
    }
    let srv = Server::start(&[]);
    let mut cmd = Command::new("nc");
    cmd.args(["-N", "127.0.0.1", &srv.port().to_string()]);
    let exit = run_with_input(cmd, b"hello", Duration::from_secs(10));
    assert!(exit.status.success(), "nc failed\n{}", exit.describe());
    assert_eq!(
        exit.stdout,
        vec!["hello".to_string()],
        "{}",
        exit.describe()
    );
    let line = srv.wait_for("[DISCONNECT]", LOG_WAIT);
    let d = parse_disconnect(&parse_log(&line).unwrap().details).unwrap();
    assert_eq!((d.rx, d.tx, d.reason.as_str()), (5, 5, "peer closed"));
}

#[test]
fn nc_half_close_returns_files_exactly() {
    // Proves: real `nc -N` (netcat-openbsd, which shuts its write side at
    // the end of stdin) gets back exactly the file it sent, for an empty
    // file, a single byte, sizes around the 64 KiB buffer and an 8 MiB
    // binary file, then EOF from the server makes nc exit 0.
    if !require_tool("nc_half_close_returns_files_exactly", "nc") {
        return;
    }
    let srv = Server::start(&[]);
    let mut rng = Rng::new(3);
    for size in [0usize, 1, 65_535, 65_536, 65_537, 8 << 20] {
        let input = rng.bytes(size);
        let t = Instant::now();
        let output = through_nc(srv.port(), &input, Duration::from_secs(60));
        assert_same(&output, &input, &format!("nc -N with {size} bytes"));
        eprintln!("nc -N: {size} bytes back exactly in {:?}", t.elapsed());
    }
    srv.wait_count(|l| l.contains("reason: peer closed)"), 6, LOG_WAIT);
    assert_eq!(srv.count(|l| l.contains("[DISCONNECT]")), 6);
}

#[test]
fn shutdown_write_with_a_full_buffer_still_gets_everything() {
    // Proves: a client that sends 1 MiB without reading (the server's
    // buffer is full and it has stopped reading) and then shuts its write
    // side still receives all 1 MiB in order, then a clean EOF (not a
    // reset): the FIN waiting behind the unread data is not mistaken for the
    // end of the echo.
    const TOTAL: u64 = 1024 * 1024;
    let srv = Server::start(&[]);
    let mut c = connect(srv.addr());
    write_pattern(&mut c, 11, TOTAL).expect("1 MiB fits in socket buffers without reading");
    shutdown_write(&c);
    thread::sleep(Duration::from_millis(300));
    read_pattern(&mut c, 11, TOTAL).unwrap_or_else(|e| panic!("{e}\n{}", srv.dump()));
    assert_eq!(expect_closed(&mut c, Duration::from_secs(5)), Closed::Eof);
    let d = srv.wait_disconnect(c.local_addr().unwrap(), LOG_WAIT);
    assert_eq!(
        (d.rx, d.tx, d.reason.as_str()),
        (TOTAL, TOTAL, "peer closed")
    );
}

#[test]
fn many_concurrent_half_closes_of_every_size() {
    // Proves: 200 concurrent clients each send a different amount (0 bytes,
    // 1 byte, around the buffer size, up to 2 MiB), shut their write side,
    // and each receives exactly its own bytes followed by EOF; none is
    // reset, none gets a byte of another's stream.
    const CLIENTS: usize = 200;
    let srv = Server::start(&[]);
    let sizes: Vec<usize> = (0..CLIENTS)
        .map(|i| match i % 8 {
            0 => 0,
            1 => 1,
            2 => 65_535,
            3 => 65_536,
            4 => 65_537,
            _ => Rng::new(i as u64).below(2 << 20) as usize,
        })
        .collect();
    let handles: Vec<_> = sizes
        .iter()
        .enumerate()
        .map(|(i, &size)| {
            let addr = srv.addr();
            thread::spawn(move || {
                let mut data = format!("client {i:03} ").into_bytes();
                data.extend(Rng::new(1000 + i as u64).bytes(size));
                data.truncate(size);
                let c = connect(addr);
                let mut w = c.try_clone().unwrap();
                let writer = thread::spawn(move || -> Result<TcpStream, String> {
                    w.write_all(&data).map_err(|e| e.to_string())?;
                    shutdown_write(&w);
                    Ok(w)
                });
                let mut r = c;
                let got = read_to_eof(&mut r);
                writer.join().unwrap().expect("writer");
                (got, r.local_addr().unwrap())
            })
        })
        .collect();
    for (i, h) in handles.into_iter().enumerate() {
        let (got, local) = h.join().unwrap_or_else(|_| panic!("client {i}"));
        let mut want = format!("client {i:03} ").into_bytes();
        want.extend(Rng::new(1000 + i as u64).bytes(sizes[i]));
        want.truncate(sizes[i]);
        assert_same(&got, &want, &format!("client {i} ({} bytes)", sizes[i]));
        let d = srv.wait_disconnect(local, LOG_WAIT);
        assert_eq!(
            (d.rx, d.tx, d.reason.as_str()),
            (sizes[i] as u64, sizes[i] as u64, "peer closed")
        );
    }
    eprintln!(
        "half-close: {CLIENTS} concurrent clients, {} bytes in total, all exact then EOF",
        sizes.iter().sum::<usize>()
    );
}
