//! Test harness: runs the real `echo-server` binary and observes it from the outside.
//!
//! Every wait has a deadline and every socket has read/write timeouts, so a broken
//! server fails a test instead of hanging it. The child is killed (by PID) on Drop.
#![allow(dead_code)]

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::os::unix::process::CommandExt;
use std::process::{Child, ChildStdout, Command, ExitStatus, Stdio};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Path of the server binary built by cargo for these tests.
pub const BIN: &str = env!("CARGO_BIN_EXE_echo-server");
/// Default read/write timeout of test sockets.
pub const IO_TIMEOUT: Duration = Duration::from_secs(10);
/// How long the server may take to print its `Listening on` banner.
pub const START_TIMEOUT: Duration = Duration::from_secs(10);

/// The standard arguments every test server gets: loopback, ephemeral port.
pub const LOOPBACK_ARGS: [&str; 4] = ["--port", "0", "--bind", "127.0.0.1"];

// ---------------------------------------------------------------------------
// Captured output
// ---------------------------------------------------------------------------

#[derive(Default)]
struct OutState {
    lines: Vec<String>,
    eof: bool,
}

#[derive(Default)]
struct Captured {
    state: Mutex<OutState>,
    cv: Condvar,
}

fn spawn_line_reader<R: Read + Send + 'static>(src: R, cap: Arc<Captured>) -> JoinHandle<()> {
    thread::spawn(move || {
        let mut reader = BufReader::new(src);
        let mut buf = Vec::new();
        loop {
            buf.clear();
            match reader.read_until(b'\n', &mut buf) {
                Ok(0) | Err(_) => break,
                Ok(_) => {
                    while matches!(buf.last(), Some(b'\n') | Some(b'\r')) {
                        buf.pop();
                    }
                    let line = String::from_utf8_lossy(&buf).into_owned();
                    let mut st = cap.state.lock().unwrap();
                    st.lines.push(line);
                    drop(st);
                    cap.cv.notify_all();
                }
            }
        }
        cap.state.lock().unwrap().eof = true;
        cap.cv.notify_all();
    })
}

fn spawn_byte_reader<R: Read + Send + 'static>(
    mut src: R,
    sink: Arc<Mutex<Vec<u8>>>,
) -> JoinHandle<()> {
    thread::spawn(move || {
        let mut buf = [0u8; 4096];
        loop {
            match src.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => sink.lock().unwrap().extend_from_slice(&buf[..n]),
            }
        }
    })
}

/// What a finished process left behind.
#[derive(Debug)]
pub struct Exit {
    pub status: ExitStatus,
    pub stdout: Vec<String>,
    pub stderr: String,
    pub elapsed: Duration,
}

impl Exit {
    pub fn code(&self) -> Option<i32> {
        self.status.code()
    }
    pub fn describe(&self) -> String {
        format!(
            "status: {:?}\n--- stdout ---\n{}\n--- stderr ---\n{}",
            self.status,
            tail(&self.stdout, 60),
            self.stderr
        )
    }
}

fn tail(lines: &[String], n: usize) -> String {
    let start = lines.len().saturating_sub(n);
    let mut s = String::new();
    if start > 0 {
        s.push_str(&format!("... ({start} earlier lines)\n"));
    }
    for l in &lines[start..] {
        s.push_str(l);
        s.push('\n');
    }
    s
}

/// Waits (bounded) for a child spawned with piped stderr to exit on its
/// own, then returns its status and stderr; kills it and panics with
/// `what` if it is still running after `timeout`.
pub fn wait_child_exit(child: &mut Child, timeout: Duration, what: &str) -> (ExitStatus, String) {
    let deadline = Instant::now() + timeout;
    let status = loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{what} (still running after {timeout:?}; killed it)");
        }
        thread::sleep(Duration::from_millis(20));
    };
    let mut stderr = String::new();
    if let Some(mut err) = child.stderr.take() {
        let _ = err.read_to_string(&mut stderr);
    }
    (status, stderr)
}

/// Asserts stderr carries neither a panic message nor a backtrace.
pub fn assert_no_panic(stderr: &str) {
    let low = stderr.to_lowercase();
    assert!(
        !low.contains("panicked") && !low.contains("backtrace"),
        "stderr shows a panic/backtrace:\n{stderr}"
    );
}

// ---------------------------------------------------------------------------
// Server
// ---------------------------------------------------------------------------

/// A running server child process.
pub struct Server {
    child: Option<Child>,
    pid: u32,
    addr: SocketAddr,
    out: Arc<Captured>,
    err: Arc<Mutex<Vec<u8>>>,
    readers: Vec<JoinHandle<()>>,
    started: Instant,
}

impl Server {
    /// Starts the server on 127.0.0.1 with an ephemeral port, plus `extra` arguments.
    pub fn start(extra: &[&str]) -> Server {
        let mut args: Vec<&str> = LOOPBACK_ARGS.to_vec();
        args.extend_from_slice(extra);
        Server::start_raw(&args)
    }

    /// Starts the server with exactly `args`.
    pub fn start_raw(args: &[&str]) -> Server {
        let mut cmd = Command::new(BIN);
        cmd.args(args);
        Server::start_cmd(cmd)
    }

    /// Starts the server through a wrapper command (e.g. `prlimit ... BIN ...`) that
    /// execs the binary, so the PID is the server's.
    pub fn start_cmd(mut cmd: Command) -> Server {
        cmd.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot spawn {cmd:?}: {e}"));
        let pid = child.id();
        let out = Arc::new(Captured::default());
        let err = Arc::new(Mutex::new(Vec::new()));
        let readers = vec![
            spawn_line_reader(child.stdout.take().unwrap(), out.clone()),
            spawn_byte_reader(child.stderr.take().unwrap(), err.clone()),
        ];
        let mut srv = Server {
            child: Some(child),
            pid,
            addr: "0.0.0.0:0".parse().unwrap(),
            out,
            err,
            readers,
            started: Instant::now(),
        };
        let banner = srv.wait_for_line(|l| l.starts_with("Listening on "), START_TIMEOUT);
        let text = banner.trim_start_matches("Listening on ").trim();
        srv.addr = text
            .parse()
            .unwrap_or_else(|e| panic!("banner address {text:?} does not parse: {e}"));
        assert_ne!(
            srv.addr.port(),
            0,
            "banner must show the real port: {banner}"
        );
        srv
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }
    pub fn port(&self) -> u16 {
        self.addr.port()
    }
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// Snapshot of every stdout line so far.
    pub fn lines(&self) -> Vec<String> {
        self.out.state.lock().unwrap().lines.clone()
    }
    pub fn line_count(&self) -> usize {
        self.out.state.lock().unwrap().lines.len()
    }
    pub fn stderr(&self) -> String {
        String::from_utf8_lossy(&self.err.lock().unwrap()).into_owned()
    }

    /// Parsed log lines with the given event name (e.g. "CONNECT").
    pub fn events(&self, event: &str) -> Vec<LogLine> {
        events(&self.lines(), event)
    }

    /// Human readable dump for failure messages.
    pub fn dump(&self) -> String {
        format!(
            "--- server stdout (tail) ---\n{}--- server stderr ---\n{}",
            tail(&self.lines(), 60),
            self.stderr()
        )
    }

    /// Waits for the first line (from the start) matching `pred`.
    pub fn wait_for_line(&self, pred: impl Fn(&str) -> bool, timeout: Duration) -> String {
        self.wait_for_line_from(0, pred, timeout).1
    }

    /// Waits for a line containing `needle`.
    pub fn wait_for(&self, needle: &str, timeout: Duration) -> String {
        self.wait_for_line(|l| l.contains(needle), timeout)
    }

    /// Waits for the first line at index >= `start` matching `pred`; returns (index, line).
    pub fn wait_for_line_from(
        &self,
        start: usize,
        pred: impl Fn(&str) -> bool,
        timeout: Duration,
    ) -> (usize, String) {
        let deadline = Instant::now() + timeout;
        let mut next = start;
        let mut st = self.out.state.lock().unwrap();
        loop {
            while next < st.lines.len() {
                if pred(&st.lines[next]) {
                    return (next, st.lines[next].clone());
                }
                next += 1;
            }
            let now = Instant::now();
            if st.eof || now >= deadline {
                let why = if st.eof {
                    "server stdout closed"
                } else {
                    "timed out"
                };
                drop(st);
                // Give stderr a moment to be collected for the message.
                thread::sleep(Duration::from_millis(50));
                panic!(
                    "waiting for a log line: {why} after {:?}\n{}",
                    timeout,
                    self.dump()
                );
            }
            let wait = (deadline - now).min(Duration::from_millis(100));
            st = self.out.cv.wait_timeout(st, wait).unwrap().0;
        }
    }

    /// Waits until at least `n` lines match `pred`; returns the count seen.
    pub fn wait_count(&self, pred: impl Fn(&str) -> bool, n: usize, timeout: Duration) -> usize {
        let deadline = Instant::now() + timeout;
        let mut scanned = 0;
        let mut count = 0;
        let mut st = self.out.state.lock().unwrap();
        loop {
            while scanned < st.lines.len() {
                if pred(&st.lines[scanned]) {
                    count += 1;
                }
                scanned += 1;
            }
            if count >= n {
                return count;
            }
            let now = Instant::now();
            if st.eof || now >= deadline {
                drop(st);
                panic!(
                    "expected {n} matching log lines, saw {count} within {timeout:?}\n{}",
                    self.dump()
                );
            }
            let wait = (deadline - now).min(Duration::from_millis(100));
            st = self.out.cv.wait_timeout(st, wait).unwrap().0;
        }
    }

    /// Number of stdout lines matching `pred` right now.
    pub fn count(&self, pred: impl Fn(&str) -> bool) -> usize {
        self.out
            .state
            .lock()
            .unwrap()
            .lines
            .iter()
            .filter(|l| pred(l))
            .count()
    }

    /// Waits for the DISCONNECT line of the client whose local address is `client`.
    pub fn wait_disconnect(&self, client: SocketAddr, timeout: Duration) -> Disconnect {
        let prefix = format!("[DISCONNECT] {client} (");
        let line = self.wait_for_line(|l| l.contains(&prefix), timeout);
        let log = parse_log(&line).unwrap_or_else(|| panic!("malformed log line: {line:?}"));
        parse_disconnect(&log.details)
            .unwrap_or_else(|| panic!("malformed DISCONNECT line: {line:?}"))
    }

    /// Sends a signal with `kill -<sig> <pid>`.
    pub fn signal(&self, sig: &str) {
        let st = Command::new("kill")
            .arg(format!("-{sig}"))
            .arg(self.pid.to_string())
            .status()
            .expect("run kill");
        assert!(st.success(), "kill -{sig} {} failed", self.pid);
    }

    pub fn is_running(&mut self) -> bool {
        match self.child.as_mut() {
            Some(c) => matches!(c.try_wait(), Ok(None)),
            None => false,
        }
    }

    /// Waits (bounded) for the process to exit and collects its output.
    pub fn wait_exit(&mut self, timeout: Duration) -> Exit {
        let t0 = Instant::now();
        let deadline = t0 + timeout;
        let mut child = self.child.take().expect("server already waited for");
        let status = loop {
            match child.try_wait() {
                Ok(Some(s)) => break s,
                Ok(None) if Instant::now() < deadline => thread::sleep(Duration::from_millis(10)),
                Ok(None) => {
                    let _ = child.kill();
                    let _ = child.wait();
                    for r in self.readers.drain(..) {
                        let _ = r.join();
                    }
                    panic!(
                        "server (pid {}) did not exit within {timeout:?}; killed it\n{}",
                        self.pid,
                        self.dump()
                    );
                }
                Err(e) => panic!("try_wait: {e}"),
            }
        };
        let elapsed = t0.elapsed();
        for r in self.readers.drain(..) {
            let _ = r.join();
        }
        Exit {
            status,
            stdout: self.lines(),
            stderr: self.stderr(),
            elapsed,
        }
    }

    /// Sends `sig` and waits for exit.
    pub fn stop(&mut self, sig: &str, timeout: Duration) -> Exit {
        self.signal(sig);
        self.wait_exit(timeout)
    }

    fn proc_file(&self, name: &str) -> String {
        std::fs::read_to_string(format!("/proc/{}/{}", self.pid, name))
            .unwrap_or_else(|e| panic!("read /proc/{}/{name}: {e}", self.pid))
    }

    /// Resident set size in KiB.
    pub fn rss_kib(&self) -> u64 {
        let status = self.proc_file("status");
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .expect("VmRSS in /proc/PID/status")
    }

    /// utime + stime in clock ticks.
    pub fn cpu_ticks(&self) -> u64 {
        let stat = self.proc_file("stat");
        let after = &stat[stat.rfind(')').expect("comm in stat") + 1..];
        let f: Vec<&str> = after.split_whitespace().collect();
        // after ')' : f[0] = state (field 3), so utime (14) = f[11], stime (15) = f[12]
        f[11].parse::<u64>().unwrap() + f[12].parse::<u64>().unwrap()
    }

    /// How many times the server has gone to sleep of its own accord
    /// (`voluntary_ctxt_switches`): once per wait that blocked.
    pub fn voluntary_switches(&self) -> u64 {
        let status = self.proc_file("status");
        status
            .lines()
            .find_map(|l| l.strip_prefix("voluntary_ctxt_switches:"))
            .and_then(|v| v.trim().parse().ok())
            .expect("voluntary_ctxt_switches in /proc/PID/status")
    }

    /// Number of open file descriptors of the server.
    pub fn open_fds(&self) -> usize {
        std::fs::read_dir(format!("/proc/{}/fd", self.pid))
            .expect("read /proc/PID/fd")
            .count()
    }

    /// The server's soft RLIMIT_NOFILE as the kernel reports it.
    pub fn nofile_soft_limit(&self) -> u64 {
        let limits = self.proc_file("limits");
        let line = limits
            .lines()
            .find(|l| l.starts_with("Max open files"))
            .expect("Max open files in /proc/PID/limits");
        line["Max open files".len()..]
            .split_whitespace()
            .next()
            .unwrap()
            .parse()
            .unwrap()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        for r in self.readers.drain(..) {
            let _ = r.join();
        }
    }
}

/// Runs the binary with `args` until it exits (bounded); for start-up error tests.
pub fn run_to_exit(args: &[&str], timeout: Duration) -> Exit {
    let mut cmd = Command::new(BIN);
    cmd.args(args);
    run_cmd_to_exit(cmd, timeout)
}

/// Runs `cmd` (stdin closed) until it exits, killing it after `timeout`.
pub fn run_cmd_to_exit(cmd: Command, timeout: Duration) -> Exit {
    run_with_input(cmd, b"", timeout)
}

/// Runs `cmd` in its own process group, feeds `input` on stdin then closes it, and
/// collects its output. On timeout the whole group (that we started) is killed.
pub fn run_with_input(mut cmd: Command, input: &[u8], timeout: Duration) -> Exit {
    cmd.stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0);
    let t0 = Instant::now();
    let mut child = cmd
        .spawn()
        .unwrap_or_else(|e| panic!("cannot spawn {cmd:?}: {e}"));
    let out = Arc::new(Captured::default());
    let err = Arc::new(Mutex::new(Vec::new()));
    let r1 = spawn_line_reader(child.stdout.take().unwrap(), out.clone());
    let r2 = spawn_byte_reader(child.stderr.take().unwrap(), err.clone());
    {
        let mut stdin = child.stdin.take().unwrap();
        let _ = stdin.write_all(input);
        // dropped: EOF on the child's stdin
    }
    let deadline = t0 + timeout;
    let status = loop {
        match child.try_wait().expect("try_wait") {
            Some(s) => break s,
            None if Instant::now() < deadline => thread::sleep(Duration::from_millis(10)),
            None => {
                kill_group(child.id());
                let _ = child.wait();
                let _ = r1.join();
                let _ = r2.join();
                let lines = out.state.lock().unwrap().lines.clone();
                panic!(
                    "{cmd:?} did not exit within {timeout:?}; killed it\n--- stdout ---\n{}\n--- stderr ---\n{}",
                    tail(&lines, 40),
                    String::from_utf8_lossy(&err.lock().unwrap())
                );
            }
        }
    };
    let elapsed = t0.elapsed();
    let _ = r1.join();
    let _ = r2.join();
    let stdout = out.state.lock().unwrap().lines.clone();
    let stderr = String::from_utf8_lossy(&err.lock().unwrap()).into_owned();
    Exit {
        status,
        stdout,
        stderr,
        elapsed,
    }
}

/// Kills the process group led by `pgid` (a group this test created).
pub fn kill_group(pgid: u32) {
    let _ = Command::new("kill")
        .arg("-KILL")
        .arg("--")
        .arg(format!("-{pgid}"))
        .status();
}

/// Reads everything a child's stdout produces on a background thread; returns a
/// receiver of chunks so the test can wait with a timeout.
pub fn stdout_chunks(mut out: ChildStdout) -> std::sync::mpsc::Receiver<Vec<u8>> {
    let (tx, rx) = std::sync::mpsc::channel();
    thread::spawn(move || {
        let mut buf = [0u8; 4096];
        loop {
            match out.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    if tx.send(buf[..n].to_vec()).is_err() {
                        break;
                    }
                }
            }
        }
    });
    rx
}

// ---------------------------------------------------------------------------
// Tools, limits, misc
// ---------------------------------------------------------------------------

fn on_path(tool: &str) -> bool {
    std::env::var_os("PATH")
        .map(|p| {
            std::env::split_paths(&p).any(|d| {
                let f = d.join(tool);
                std::fs::metadata(&f)
                    .map(|m| {
                        use std::os::unix::fs::PermissionsExt;
                        m.is_file() && m.permissions().mode() & 0o111 != 0
                    })
                    .unwrap_or(false)
            })
        })
        .unwrap_or(false)
}

/// True when the tests must not skip (CI sets ECHO_SERVER_REQUIRE_TOOLS=1).
pub fn tools_required() -> bool {
    std::env::var("ECHO_SERVER_REQUIRE_TOOLS").is_ok_and(|v| v == "1")
}

/// Reports a skip (or panics when skips are forbidden). Always returns false.
pub fn skip(test: &str, what: &str) -> bool {
    let msg = format!("SKIP: {test}: {what}");
    if tools_required() {
        panic!("{msg} (ECHO_SERVER_REQUIRE_TOOLS=1)");
    }
    eprintln!("{msg}");
    false
}

/// Returns true when `tool` is installed; otherwise prints the SKIP line (or panics
/// when ECHO_SERVER_REQUIRE_TOOLS=1) and returns false.
pub fn require_tool(test: &str, tool: &str) -> bool {
    if on_path(tool) {
        true
    } else {
        skip(test, &format!("{tool} not installed"))
    }
}

/// Raises this process's soft RLIMIT_NOFILE to at least `want` (and the hard limit
/// too when running as root). Returns the resulting soft limit.
pub fn raise_nofile(want: u64) -> u64 {
    use rustix::process::{getrlimit, setrlimit, Resource, Rlimit};
    let cur = getrlimit(Resource::Nofile);
    let soft = cur.current.unwrap_or(u64::MAX);
    let hard = cur.maximum.unwrap_or(u64::MAX);
    if soft >= want {
        return soft;
    }
    if hard >= want {
        let _ = setrlimit(
            Resource::Nofile,
            Rlimit {
                current: Some(want),
                maximum: cur.maximum,
            },
        );
    } else if rustix::process::geteuid().is_root() {
        let _ = setrlimit(
            Resource::Nofile,
            Rlimit {
                current: Some(want),
                maximum: Some(want),
            },
        );
    } else {
        let _ = setrlimit(
            Resource::Nofile,
            Rlimit {
                current: Some(hard),
                maximum: cur.maximum,
            },
        );
    }
    getrlimit(Resource::Nofile).current.unwrap_or(u64::MAX)
}

pub fn is_root() -> bool {
    rustix::process::geteuid().is_root()
}

/// Polls `f` every 20 ms until it returns true or `timeout` passes.
pub fn wait_until(timeout: Duration, mut f: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if f() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        thread::sleep(Duration::from_millis(20));
    }
}

// ---------------------------------------------------------------------------
// Sockets
// ---------------------------------------------------------------------------

/// Connects with a connect timeout and read/write timeouts of IO_TIMEOUT.
pub fn connect(addr: SocketAddr) -> TcpStream {
    let s = TcpStream::connect_timeout(&addr, Duration::from_secs(10))
        .unwrap_or_else(|e| panic!("connect to {addr}: {e}"));
    s.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    s.set_write_timeout(Some(IO_TIMEOUT)).unwrap();
    s.set_nodelay(true).unwrap();
    s
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

// ---------------------------------------------------------------------------
// Deterministic payloads
// ---------------------------------------------------------------------------

fn splitmix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Tiny deterministic PRNG (splitmix64).
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(1);
        splitmix(self.0)
    }
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }
    pub fn bytes(&mut self, n: usize) -> Vec<u8> {
        let mut v = Vec::with_capacity(n + 8);
        while v.len() < n {
            v.extend_from_slice(&self.next_u64().to_le_bytes());
        }
        v.truncate(n);
        v
    }
}

/// Position-addressable byte stream: byte `pos` of stream `seed` is always the same,
/// so a reader can check any chunk without keeping the data around.
pub fn pattern_fill(seed: u64, offset: u64, buf: &mut [u8]) {
    let mut pos = offset;
    let mut i = 0;
    while i < buf.len() {
        let word = splitmix(seed ^ (pos / 8).wrapping_mul(0x2545_F491_4F6C_DD1D)).to_le_bytes();
        let start = (pos % 8) as usize;
        let take = (8 - start).min(buf.len() - i);
        buf[i..i + take].copy_from_slice(&word[start..start + take]);
        i += take;
        pos += take as u64;
    }
}

/// Returns the index of the first byte of `buf` that differs from the pattern.
pub fn pattern_check(seed: u64, offset: u64, buf: &[u8]) -> Option<usize> {
    let mut want = vec![0u8; buf.len()];
    pattern_fill(seed, offset, &mut want);
    buf.iter().zip(&want).position(|(a, b)| a != b)
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

// ---------------------------------------------------------------------------
// Log parsing (contract: `<timestamp> <LEVEL padded to 5> [<EVENT>] <details>`)
// ---------------------------------------------------------------------------

#[derive(Debug, Clone)]
pub struct LogLine {
    pub ts: String,
    pub level: String,
    pub event: String,
    pub details: String,
}

/// Parses a log line; None when the line is not a log line in the contract format.
pub fn parse_log(line: &str) -> Option<LogLine> {
    let (ts, rest) = line.split_once(' ')?;
    parse_ts_millis(ts)?;
    if rest.len() < 7 || !rest.is_char_boundary(5) || rest.as_bytes()[5] != b' ' {
        return None;
    }
    let level = rest[..5].trim_end();
    if !["ERROR", "WARN", "INFO", "DEBUG", "TRACE"].contains(&level) {
        return None;
    }
    let rest = rest[6..].strip_prefix('[')?;
    let (event, details) = rest.split_once(']')?;
    let details = details.strip_prefix(' ').unwrap_or(details);
    Some(LogLine {
        ts: ts.to_string(),
        level: level.to_string(),
        event: event.to_string(),
        details: details.to_string(),
    })
}

/// All log lines of `event`.
pub fn events(lines: &[String], event: &str) -> Vec<LogLine> {
    lines
        .iter()
        .filter_map(|l| parse_log(l))
        .filter(|l| l.event == event)
        .collect()
}

/// `YYYY-MM-DDTHH:MM:SS.mmmZ` (UTC) -> milliseconds since the Unix epoch.
pub fn parse_ts_millis(ts: &str) -> Option<i64> {
    let b = ts.as_bytes();
    if b.len() != 24 {
        return None;
    }
    let shape_ok = b.iter().enumerate().all(|(i, &c)| match i {
        4 | 7 => c == b'-',
        10 => c == b'T',
        13 | 16 => c == b':',
        19 => c == b'.',
        23 => c == b'Z',
        _ => c.is_ascii_digit(),
    });
    if !shape_ok {
        return None;
    }
    let num = |r: std::ops::Range<usize>| ts[r].parse::<i64>().unwrap();
    let (y, mo, d) = (num(0..4), num(5..7), num(8..10));
    let (h, mi, s, ms) = (num(11..13), num(14..16), num(17..19), num(20..23));
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || s > 60 {
        return None;
    }
    // days from civil (Howard Hinnant)
    let y2 = if mo <= 2 { y - 1 } else { y };
    let era = y2.div_euclid(400);
    let yoe = y2 - era * 400;
    let mp = (mo + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146097 + doe - 719468;
    Some((((days * 24 + h) * 60 + mi) * 60 + s) * 1000 + ms)
}

pub fn now_millis() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

#[derive(Debug, Clone, PartialEq)]
pub struct Disconnect {
    pub addr: String,
    pub secs: f64,
    pub rx: u64,
    pub tx: u64,
    pub reason: String,
}

/// `<ip:port> (<secs>s connected, RX: <n> bytes, TX: <m> bytes, reason: <reason>)`
pub fn parse_disconnect(details: &str) -> Option<Disconnect> {
    let (addr, rest) = details.split_once(" (")?;
    // The TCP figures (srtt, rttvar, retransmits) follow the parenthesis.
    let (rest, _tcp) = rest.rsplit_once(')')?;
    let (secs, rest) = rest.split_once("s connected, RX: ")?;
    let (rx, rest) = rest.split_once(" bytes, TX: ")?;
    let (tx, reason) = rest.split_once(" bytes, reason: ")?;
    Some(Disconnect {
        addr: addr.to_string(),
        secs: secs.parse().ok()?,
        rx: rx.parse().ok()?,
        tx: tx.parse().ok()?,
        reason: reason.to_string(),
    })
}

/// Every unsigned integer in `s`, in order.
pub fn numbers(s: &str) -> Vec<u64> {
    let mut out = Vec::new();
    let mut cur: Option<u64> = None;
    for c in s.chars() {
        if let Some(d) = c.to_digit(10) {
            cur = Some(cur.unwrap_or(0) * 10 + d as u64);
        } else if let Some(v) = cur.take() {
            out.push(v);
        }
    }
    out.extend(cur);
    out
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Summary {
    pub served: u64,
    pub bytes_in: u64,
    pub bytes_out: u64,
    pub peak: u64,
    pub rejected: u64,
    pub timed_out: u64,
}

impl Summary {
    pub fn line(&self) -> String {
        format!(
            "Summary: {} connections served, {} bytes in, {} bytes out, peak {} concurrent, {} rejected, {} timed out",
            self.served, self.bytes_in, self.bytes_out, self.peak, self.rejected, self.timed_out
        )
    }
}

/// Parses the plain `Summary: ...` line, checking its exact shape.
pub fn parse_summary(line: &str) -> Option<Summary> {
    let n = numbers(line);
    if n.len() != 6 {
        return None;
    }
    let s = Summary {
        served: n[0],
        bytes_in: n[1],
        bytes_out: n[2],
        peak: n[3],
        rejected: n[4],
        timed_out: n[5],
    };
    (s.line() == line).then_some(s)
}

/// Finds and parses the Summary line in a finished server's stdout.
pub fn summary_of(exit: &Exit) -> Summary {
    let line = exit
        .stdout
        .iter()
        .find(|l| l.starts_with("Summary:"))
        .unwrap_or_else(|| panic!("no Summary line\n{}", exit.describe()));
    parse_summary(line).unwrap_or_else(|| panic!("malformed Summary line: {line:?}"))
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stats {
    pub total: u64,
    pub active: u64,
    pub peak: u64,
    pub bytes_in: u64,
    pub bytes_out: u64,
    pub rejected: u64,
    pub timed_out: u64,
}

/// `connections: <total> total, <active> active, <peak> peak; bytes: <in> in, <out> out; rejected: <r>; timed out: <t>`
pub fn parse_stats(details: &str) -> Option<Stats> {
    let n = numbers(details);
    if n.len() != 7 {
        return None;
    }
    let s = Stats {
        total: n[0],
        active: n[1],
        peak: n[2],
        bytes_in: n[3],
        bytes_out: n[4],
        rejected: n[5],
        timed_out: n[6],
    };
    let canon = format!(
        "connections: {} total, {} active, {} peak; bytes: {} in, {} out; rejected: {}; timed out: {}",
        s.total, s.active, s.peak, s.bytes_in, s.bytes_out, s.rejected, s.timed_out
    );
    (canon == details).then_some(s)
}

// ---------------------------------------------------------------------------
// Fault suite (tests/fault_*.rs)
// ---------------------------------------------------------------------------

/// True when `ECHO_SERVER_FULL_FAULTS=1`: the fault suite then runs the sizes
/// issue #4 names instead of the reduced ones that keep CI within minutes.
pub fn full_faults() -> bool {
    std::env::var("ECHO_SERVER_FULL_FAULTS").is_ok_and(|v| v == "1")
}

/// `full` under `ECHO_SERVER_FULL_FAULTS=1`, else `ci`; prints the choice so a
/// `--nocapture` run says which size it measured.
pub fn fault_size<T: Copy + std::fmt::Debug>(what: &str, ci: T, full: T) -> T {
    let (size, which) = if full_faults() {
        (full, "full")
    } else {
        (ci, "CI")
    };
    eprintln!("{what}: {size:?} ({which} size; CI {ci:?}, full {full:?})");
    size
}

/// Clock ticks per second of `/proc/PID/stat` CPU times (USER_HZ).
pub fn clock_ticks_per_second() -> u64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
        .unwrap_or(100)
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

/// The `p`-th percentile (0..=100) of `samples`, which it sorts.
pub fn percentile(samples: &mut [Duration], p: f64) -> Duration {
    assert!(!samples.is_empty(), "percentile of no samples");
    samples.sort_unstable();
    let rank = ((p / 100.0) * samples.len() as f64).ceil() as usize;
    samples[rank.clamp(1, samples.len()) - 1]
}

/// Number of rejects one REJECT line stands for: itself plus the suppressed
/// ones it reports.
pub fn rejects_in(details: &str) -> u64 {
    const SUFFIX: &str = " more rejected since the last report)";
    match details.strip_suffix(SUFFIX) {
        Some(head) => {
            let (_, k) = head
                .rsplit_once(" (")
                .unwrap_or_else(|| panic!("malformed REJECT line: {details:?}"));
            1 + k
                .parse::<u64>()
                .unwrap_or_else(|_| panic!("malformed REJECT count: {details:?}"))
        }
        None => 1,
    }
}

/// Samples the server's RSS every `every` on a thread until stopped; the
/// peak is what a bounded-memory claim has to hold against.
pub struct RssSampler {
    stop: Arc<std::sync::atomic::AtomicBool>,
    handle: Option<JoinHandle<u64>>,
}

impl RssSampler {
    pub fn start(pid: u32, every: Duration) -> RssSampler {
        use std::sync::atomic::{AtomicBool, Ordering};
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let handle = thread::spawn(move || {
            let mut peak = 0;
            // Bounded: the owner stops it, and a vanished process ends it.
            for _ in 0..1_000_000 {
                let Some(rss) = rss_kib_of(pid) else { break };
                peak = peak.max(rss);
                if flag.load(Ordering::Relaxed) {
                    break;
                }
                thread::sleep(every);
            }
            peak
        });
        RssSampler {
            stop,
            handle: Some(handle),
        }
    }

    /// Stops sampling and returns the peak RSS seen, in KiB.
    pub fn peak(mut self) -> u64 {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        self.handle.take().unwrap().join().unwrap()
    }
}

impl Drop for RssSampler {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
    }
}

/// VmRSS of any process in KiB, `None` once it is gone.
pub fn rss_kib_of(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}
