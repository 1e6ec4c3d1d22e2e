//! Shared by the client tests: running the real `echo-client` binary, and
//! echo servers that misbehave on purpose so the client's checks are proven
//! to catch what they claim to catch.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use super::{run_with_input, wait_until, Exit};

/// Path of the client binary built by cargo for these tests.
pub const CLIENT: &str = env!("CARGO_BIN_EXE_echo-client");

/// Runs the client with `args` (stdin empty) and waits for it, bounded.
pub fn client(args: &[&str]) -> Exit {
    client_with_input(args, b"")
}

/// Runs the client with `args`, feeding `input` on stdin.
pub fn client_with_input(args: &[&str], input: &[u8]) -> Exit {
    let mut cmd = Command::new(CLIENT);
    cmd.args(args);
    run_with_input(cmd, input, Duration::from_secs(60))
}

/// Runs the client with `args`, its stdout in a file, and sends it SIGINT
/// `then` after that output satisfies `ready`; returns its exit code and
/// output.
pub fn client_interrupted_when(
    args: &[&str],
    ready: impl Fn(&str) -> bool,
    then: Duration,
) -> (Option<i32>, String) {
    static RUNS: AtomicUsize = AtomicUsize::new(0);
    let out_path = std::env::temp_dir().join(format!(
        "echo-client-ping-{}-{}.txt",
        std::process::id(),
        RUNS.fetch_add(1, Ordering::Relaxed)
    ));
    let out_file = std::fs::File::create(&out_path).unwrap();
    let mut child = Command::new(CLIENT)
        .args(args)
        .stdout(out_file)
        .stderr(Stdio::null())
        .process_group(0)
        .spawn()
        .unwrap();
    let seen = wait_until(Duration::from_secs(10), || {
        std::fs::read_to_string(&out_path).is_ok_and(|t| ready(&t))
    });
    std::thread::sleep(then);
    let _ = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status();
    let status = wait_until(Duration::from_secs(10), || {
        child.try_wait().unwrap().is_some()
    });
    if !status {
        let _ = child.kill();
    }
    let text = std::fs::read_to_string(&out_path).unwrap();
    std::fs::remove_file(&out_path).unwrap();
    assert!(
        seen && status,
        "the client did not get there or did not stop:\n{text}"
    );
    (child.wait().unwrap().code(), text)
}

/// Parses the client's stdout as exactly one JSON document.
pub fn json_of(exit: &Exit) -> serde_json::Value {
    assert_eq!(
        exit.stdout.len(),
        1,
        "--json must print exactly one line on stdout\n{}",
        exit.describe()
    );
    serde_json::from_str(&exit.stdout[0])
        .unwrap_or_else(|e| panic!("stdout is not JSON ({e}):\n{}", exit.describe()))
}

/// How a [`FaultyServer`] misbehaves; offsets count bytes on each connection.
#[derive(Debug, Clone, Copy)]
pub enum Fault {
    /// Flips one bit of the byte at this offset.
    FlipByteAt(u64),
    /// Leaves out the byte at this offset.
    DropByteAt(u64),
    /// Echoes this many bytes, then closes.
    CloseAfter(u64),
    /// Echoes this many bytes, then resets (SO_LINGER 0).
    ResetAfter(u64),
    /// Reads and never answers.
    Silent,
    /// Adds one byte after the first echoed chunk.
    ExtraByte,
    /// Stops echoing for this long once, after the first this-many bytes.
    StallOnce(u64, Duration),
    /// Echoes, then sends one byte more this long after the first echo.
    LateExtraByte(Duration),
    /// Echoes exactly but keeps the connection open (up to 10 s) after the
    /// client has finished sending.
    KeepOpen,
    /// Echoes the first this-many bytes, then reads and drops the rest,
    /// keeping the connection open as [`Fault::KeepOpen`] does.
    EchoFirst(u64),
    /// The connection accepted `n`-th (from 0) closes after this many
    /// bytes; every other one flips the byte at the second offset.
    CloseNthFlipOthers(usize, u64, u64),
}

/// A thread-per-connection echo server on 127.0.0.1 with a [`Fault`].
pub struct FaultyServer {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    accepted: Arc<AtomicUsize>,
    received: Arc<AtomicU64>,
    thread: Option<JoinHandle<()>>,
}

impl FaultyServer {
    pub fn start(fault: Fault) -> FaultyServer {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        listener.set_nonblocking(true).expect("nonblocking");
        let addr = listener.local_addr().expect("addr");
        let stop = Arc::new(AtomicBool::new(false));
        let accepted = Arc::new(AtomicUsize::new(0));
        let received = Arc::new(AtomicU64::new(0));
        let (stop2, accepted2, received2) = (stop.clone(), accepted.clone(), received.clone());
        let stalled = Arc::new(AtomicBool::new(false));
        let thread = thread::spawn(move || {
            // Bounded: the owner sets `stop` on drop; each poll sleeps 5 ms.
            while !stop2.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((stream, _)) => {
                        let index = accepted2.fetch_add(1, Ordering::Relaxed);
                        let fault = match fault {
                            Fault::CloseNthFlipOthers(n, close, _) if index == n => {
                                Fault::CloseAfter(close)
                            }
                            Fault::CloseNthFlipOthers(_, _, flip) => Fault::FlipByteAt(flip),
                            other => other,
                        };
                        let stop3 = stop2.clone();
                        let stalled = stalled.clone();
                        let received = received2.clone();
                        thread::spawn(move || serve(stream, fault, &stop3, &stalled, &received));
                    }
                    Err(_) => thread::sleep(Duration::from_millis(5)),
                }
            }
        });
        FaultyServer {
            addr,
            stop,
            accepted,
            received,
            thread: Some(thread),
        }
    }

    pub fn addr(&self) -> String {
        self.addr.to_string()
    }

    /// Connections accepted so far.
    pub fn accepted(&self) -> usize {
        self.accepted.load(Ordering::Relaxed)
    }

    /// Bytes read from all connections so far.
    pub fn received(&self) -> u64 {
        self.received.load(Ordering::Relaxed)
    }
}

impl Drop for FaultyServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn serve(
    mut stream: TcpStream,
    fault: Fault,
    stop: &AtomicBool,
    stalled: &AtomicBool,
    received: &AtomicU64,
) {
    stream
        .set_read_timeout(Some(Duration::from_millis(50)))
        .expect("timeout");
    let _ = stream.set_nodelay(true);
    let mut offset = 0u64;
    let mut buf = vec![0u8; 64 * 1024];
    let mut first = true;
    let deadline = Instant::now() + Duration::from_secs(60);
    while !stop.load(Ordering::Relaxed) && Instant::now() < deadline {
        let n = match stream.read(&mut buf) {
            Ok(0) => {
                if let Fault::KeepOpen | Fault::EchoFirst(_) = fault {
                    thread::sleep(Duration::from_secs(10));
                }
                return;
            }
            Ok(n) => {
                received.fetch_add(n as u64, Ordering::Relaxed);
                n
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => continue,
            Err(e) if e.kind() == std::io::ErrorKind::TimedOut => continue,
            Err(_) => return,
        };
        let chunk = &mut buf[..n];
        let start = offset;
        offset += n as u64;
        let inside = |at: u64| at >= start && at < offset;
        let mut out: Vec<u8> = chunk.to_vec();
        match fault {
            Fault::Silent => {}
            Fault::FlipByteAt(at) if inside(at) => out[(at - start) as usize] ^= 0x01,
            Fault::DropByteAt(at) if inside(at) => {
                out.remove((at - start) as usize);
            }
            Fault::CloseAfter(limit) | Fault::ResetAfter(limit) if offset >= limit => {
                let keep = limit.saturating_sub(start) as usize;
                let _ = stream.write_all(&out[..keep]);
                if let Fault::ResetAfter(_) = fault {
                    let _ = socket2::SockRef::from(&stream).set_linger(Some(Duration::ZERO));
                }
                return;
            }
            Fault::EchoFirst(limit) => out.truncate(limit.saturating_sub(start) as usize),
            Fault::ExtraByte if first => out.push(b'!'),
            Fault::LateExtraByte(after) if first => {
                if stream.write_all(&out).is_err() {
                    return;
                }
                thread::sleep(after);
                out = vec![b'!'];
            }
            Fault::StallOnce(after, pause)
                if offset > after && !stalled.swap(true, Ordering::Relaxed) =>
            {
                thread::sleep(pause);
            }
            _ => {}
        }
        first = false;
        if let Fault::Silent = fault {
            continue;
        }
        if stream.write_all(&out).is_err() {
            return;
        }
    }
}

/// A float field of a JSON object, with a clear failure.
pub fn num(v: &serde_json::Value, path: &[&str]) -> f64 {
    let mut cur = v;
    for key in path {
        cur = &cur[*key];
    }
    cur.as_f64()
        .unwrap_or_else(|| panic!("{path:?} is not a number in {v}"))
}

/// Runs the client, returning each stdout line, parsed as one JSON object,
/// with when it arrived (`--json-stream`).
pub fn json_lines(args: &[&str]) -> (Vec<(Instant, serde_json::Value)>, Option<i32>) {
    let child = Command::new(CLIENT)
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn echo-client");
    let mut child = super::KillOnDrop(child);
    let stdout = child.0.stdout.take().unwrap();
    let mut lines = Vec::new();
    for line in BufReader::new(stdout).lines().take(1000) {
        let line = line.unwrap();
        let value: serde_json::Value = serde_json::from_str(&line)
            .unwrap_or_else(|e| panic!("not one JSON object per line ({e}): {line}"));
        assert!(value.is_object(), "{line}");
        lines.push((Instant::now(), value));
    }
    let code = child.0.wait().unwrap().code();
    (lines, code)
}
