//! Child processes run to their end or watched while they run: their
//! output captured line by line, every wait bounded.

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::process::CommandExt;
use std::process::{Child, ChildStdout, Command, ExitStatus, Stdio};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

#[derive(Default)]
pub(super) struct OutState {
    pub(super) lines: Vec<String>,
    pub(super) eof: bool,
}

#[derive(Default)]
pub(super) struct Captured {
    pub(super) state: Mutex<OutState>,
    pub(super) cv: Condvar,
}

pub(super) fn spawn_line_reader<R: Read + Send + 'static>(
    src: R,
    cap: Arc<Captured>,
) -> JoinHandle<()> {
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

pub(super) fn spawn_byte_reader<R: Read + Send + 'static>(
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

pub(super) fn tail(lines: &[String], n: usize) -> String {
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
    let _ = r1.join();
    let _ = r2.join();
    let stdout = out.state.lock().unwrap().lines.clone();
    let stderr = String::from_utf8_lossy(&err.lock().unwrap()).into_owned();
    Exit {
        status,
        stdout,
        stderr,
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

/// Kills (by PID) and reaps a child this test started if the test ends early.
pub struct KillOnDrop(pub Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl std::ops::Deref for KillOnDrop {
    type Target = Child;
    fn deref(&self) -> &Child {
        &self.0
    }
}

impl std::ops::DerefMut for KillOnDrop {
    fn deref_mut(&mut self) -> &mut Child {
        &mut self.0
    }
}
