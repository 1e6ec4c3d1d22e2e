//! The real `echo-server` binary as a child process, observed from the
//! outside: its log lines, its signals, its exit, and its /proc figures.
//! The child is killed (by PID) on Drop.

use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use super::log::{events, parse_disconnect, parse_log, Disconnect, LogLine};
use super::process::{run_cmd_to_exit, spawn_byte_reader, spawn_line_reader, tail, Captured, Exit};
use super::sockets::connect;

/// Path of the server binary built by cargo for these tests.
pub const BIN: &str = env!("CARGO_BIN_EXE_echo-server");
/// How long the server may take to print its `Listening on` banner.
pub const START_TIMEOUT: Duration = Duration::from_secs(10);

/// The standard arguments every test server gets: loopback, ephemeral port.
pub const LOOPBACK_ARGS: [&str; 4] = ["--port", "0", "--bind", "127.0.0.1"];

/// A running server child process.
pub struct Server {
    child: Option<Child>,
    pid: u32,
    addr: SocketAddr,
    out: Arc<Captured>,
    err: Arc<Mutex<Vec<u8>>>,
    readers: Vec<JoinHandle<()>>,
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
        };
        let banner = srv.wait_for_line(
            |l| banner_text(l).starts_with("Listening on "),
            START_TIMEOUT,
        );
        let banner = banner_text(&banner);
        let text = banner.trim_start_matches("Listening on ").trim();
        // Several listeners (`127.0.0.1:7000-7010,8443 (echo), …`) or a
        // note (`[::]:7878 (IPv6 and IPv4)`): the first address.
        let text = text.split(' ').next().unwrap_or(text);
        let text = text.split([',', '-']).next().unwrap_or(text);
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

    /// Opens `n` (a multiple of 500) connections 500 at a time, waiting
    /// after each batch until the server has logged its CONNECT lines, on
    /// top of the `before` it had logged already.
    pub fn connect_in_batches(&self, n: usize, before: usize) -> Vec<TcpStream> {
        let mut clients = Vec::with_capacity(n);
        for batch in 0..n / 500 {
            for _ in 0..500 {
                clients.push(connect(self.addr()));
            }
            self.wait_count(
                |l| l.contains("[CONNECT] "),
                before + (batch + 1) * 500,
                Duration::from_secs(30),
            );
        }
        clients
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
        for r in self.readers.drain(..) {
            let _ = r.join();
        }
        Exit {
            status,
            stdout: self.lines(),
            stderr: self.stderr(),
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
        rss_kib_of(self.pid).expect("VmRSS in /proc/PID/status")
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

/// Clock ticks per second of `/proc/PID/stat` CPU times (USER_HZ).
pub fn clock_ticks_per_second() -> u64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
        .unwrap_or(100)
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

/// A banner line's text: the line itself, or with `--log-format json`
/// the `message` of its `BANNER` object.
pub fn banner_text(line: &str) -> String {
    if line.starts_with('{') {
        if let Ok(v) = serde_json::from_str::<serde_json::Value>(line) {
            if v["event"] == "BANNER" {
                return v["message"].as_str().unwrap_or_default().to_string();
            }
        }
    }
    line.to_string()
}
