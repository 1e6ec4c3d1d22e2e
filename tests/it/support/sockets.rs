//! Test-side sockets: every connect, read and write is bounded by a
//! timeout, so a broken server fails a test instead of hanging it.

use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::time::Duration;

use super::rng::{pattern_check, pattern_fill};

/// Default read/write timeout of test sockets.
pub const IO_TIMEOUT: Duration = Duration::from_secs(10);

/// Connects with a connect timeout and read/write timeouts of IO_TIMEOUT.
pub fn connect(addr: SocketAddr) -> TcpStream {
    let s = TcpStream::connect_timeout(&addr, Duration::from_secs(10))
        .unwrap_or_else(|e| panic!("connect to {addr}: {e}"));
    s.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    s.set_write_timeout(Some(IO_TIMEOUT)).unwrap();
    s.set_nodelay(true).unwrap();
    s
}

/// A client socket whose receive buffer is set to `bytes` before it
/// connects (which also turns off its autotuning), with timeouts: a peer
/// that reads little makes the server's echo back up quickly.
pub fn connect_with_rcvbuf(addr: SocketAddr, bytes: usize) -> TcpStream {
    use socket2::{Domain, Socket, Type};
    let s = Socket::new(Domain::for_address(addr), Type::STREAM, None).unwrap();
    s.set_recv_buffer_size(bytes).unwrap();
    s.connect_timeout(&addr.into(), Duration::from_secs(10))
        .unwrap();
    let s: TcpStream = s.into();
    s.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    s.set_write_timeout(Some(IO_TIMEOUT)).unwrap();
    s
}

/// A port on 127.0.0.1 where nothing listens (bound, then closed): for a
/// client that must fail to connect, or a server whose banner cannot be read.
pub fn closed_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind");
    l.local_addr().expect("addr").port()
}

/// Reads exactly `n` bytes (bounded by the socket's read timeout).
pub fn read_exactly(s: &mut TcpStream, n: usize) -> Vec<u8> {
    let mut buf = vec![0u8; n];
    let mut got = 0;
    while got < n {
        match s.read(&mut buf[got..]) {
            Ok(0) => panic!("EOF after {got} of {n} expected bytes"),
            Ok(k) => got += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => panic!("read failed after {got} of {n} expected bytes: {e}"),
        }
    }
    buf
}

/// Writes `data` and asserts exactly the same bytes come back.
pub fn echo_roundtrip(s: &mut TcpStream, data: &[u8]) {
    s.write_all(data)
        .unwrap_or_else(|e| panic!("write of {} bytes failed: {e}", data.len()));
    let got = read_exactly(s, data.len());
    assert_same(&got, data, "echo");
}

/// Compares byte strings with a compact diagnostic (first difference).
pub fn assert_same(got: &[u8], want: &[u8], what: &str) {
    if got == want {
        return;
    }
    let i = got
        .iter()
        .zip(want)
        .position(|(a, b)| a != b)
        .unwrap_or(got.len().min(want.len()));
    let show = |v: &[u8]| {
        let end = (i + 16).min(v.len());
        format!("{:?}", &v[i.min(v.len())..end])
    };
    panic!(
        "{what}: {} bytes received, {} expected; first difference at offset {i}: got {} want {}",
        got.len(),
        want.len(),
        show(got),
        show(want)
    );
}

/// How a connection ended from the client's point of view.
#[derive(Debug, PartialEq, Eq)]
pub enum Closed {
    Eof,
    Reset,
}

/// Reads until the server closes; fails on any data or on timeout.
pub fn expect_closed(s: &mut TcpStream, timeout: Duration) -> Closed {
    s.set_read_timeout(Some(timeout)).unwrap();
    let mut buf = [0u8; 1024];
    match s.read(&mut buf) {
        Ok(0) => Closed::Eof,
        Ok(n) => panic!(
            "expected the server to close, got {n} bytes: {:?}",
            &buf[..n]
        ),
        Err(e) if e.kind() == io::ErrorKind::ConnectionReset => Closed::Reset,
        Err(e) => panic!("expected the server to close within {timeout:?}: {e}"),
    }
}

/// Reads until EOF, returning every byte; panics on timeout or error.
pub fn read_to_eof(s: &mut TcpStream) -> Vec<u8> {
    let mut v = Vec::new();
    s.read_to_end(&mut v)
        .unwrap_or_else(|e| panic!("read to EOF failed after {} bytes: {e}", v.len()));
    v
}

/// Half-closes the write side.
pub fn shutdown_write(s: &TcpStream) {
    s.shutdown(Shutdown::Write).expect("shutdown(Write)");
}

/// Writes `total` pattern bytes in 64 KiB chunks (bounded by the write timeout).
pub fn write_pattern(s: &mut TcpStream, seed: u64, total: u64) -> io::Result<()> {
    let mut buf = vec![0u8; 64 * 1024];
    let mut off = 0u64;
    while off < total {
        let n = ((total - off) as usize).min(buf.len());
        pattern_fill(seed, off, &mut buf[..n]);
        s.write_all(&buf[..n])?;
        off += n as u64;
    }
    Ok(())
}

/// Reads `total` bytes and checks them against the pattern; then expects EOF if asked.
pub fn read_pattern(s: &mut TcpStream, seed: u64, total: u64) -> Result<(), String> {
    let mut buf = vec![0u8; 64 * 1024];
    let mut off = 0u64;
    while off < total {
        let want = ((total - off) as usize).min(buf.len());
        match s.read(&mut buf[..want]) {
            Ok(0) => return Err(format!("EOF after {off} of {total} bytes")),
            Ok(n) => {
                if let Some(i) = pattern_check(seed, off, &buf[..n]) {
                    return Err(format!("wrong byte at stream offset {}", off + i as u64));
                }
                off += n as u64;
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(format!("read failed after {off} of {total} bytes: {e}")),
        }
    }
    Ok(())
}

/// Bytes written to `s` that the peer's kernel has not acknowledged yet
/// (SIOCOUTQ). Zero means everything written has reached the peer's socket,
/// whether or not the peer's program has read it.
pub fn unacked_bytes(s: &TcpStream) -> usize {
    use std::os::fd::AsRawFd;
    let mut n: libc::c_int = 0;
    // SAFETY: SIOCOUTQ writes one c_int through the pointer, which points to
    // a live c_int; the descriptor is owned by `s` for the whole call.
    let rc = unsafe { libc::ioctl(s.as_raw_fd(), libc::TIOCOUTQ, &mut n) };
    assert_eq!(rc, 0, "ioctl(SIOCOUTQ): {}", io::Error::last_os_error());
    n as usize
}

/// A proxy on 127.0.0.1 that holds every chunk from the client for
/// `delay` before passing it to `upstream`; the answers go back at once.
/// Serves `connections` connections (one thread each, so each adds the
/// delay independently), each until either side closes.
pub fn delay_proxy(upstream: SocketAddr, delay: Duration, connections: usize) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    std::thread::spawn(move || {
        for _ in 0..connections {
            let Ok((client, _)) = listener.accept() else {
                return;
            };
            std::thread::spawn(move || relay_delayed(client, upstream, delay));
        }
    });
    addr
}

fn relay_delayed(mut client: TcpStream, upstream: SocketAddr, delay: Duration) {
    let Ok(mut server) = TcpStream::connect(upstream) else {
        return;
    };
    client.set_nodelay(true).unwrap();
    server.set_nodelay(true).unwrap();
    let (mut client_back, mut server_back) =
        (client.try_clone().unwrap(), server.try_clone().unwrap());
    let back = std::thread::spawn(move || {
        let mut buf = [0u8; 65536];
        while let Ok(n @ 1..) = server_back.read(&mut buf) {
            if client_back.write_all(&buf[..n]).is_err() {
                break;
            }
        }
        let _ = client_back.shutdown(Shutdown::Write);
    });
    let mut buf = [0u8; 65536];
    while let Ok(n @ 1..) = client.read(&mut buf) {
        std::thread::sleep(delay);
        if server.write_all(&buf[..n]).is_err() {
            break;
        }
    }
    let _ = server.shutdown(Shutdown::Write);
    let _ = back.join();
}
