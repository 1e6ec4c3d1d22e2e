//! The server's exit code is always one of the documented ones (0, 1, 2,
//! 128 + a signal), whatever state stdout and stderr are in: full, closed,
//! or read by nobody.

use crate::support::*;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Command, Stdio};
use std::time::Duration;

/// Runs `echo-server ARGS` through `sh` with the redirections `redirect`
/// (e.g. `>/dev/full`); returns its exit code and stderr when it runs to
/// its end on its own.
fn run_redirected(args: &str, redirect: &str) -> (Option<i32>, String) {
    let mut child = Command::new("sh")
        .args(["-c", &format!("exec {BIN} {args} {redirect}")])
        .stdin(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (status, stderr) = wait_child_exit(&mut child, Duration::from_secs(10), "no exit");
    (status.code(), stderr)
}

/// Starts a server on a free port with `redirect`, echoes one client, stops
/// it with SIGTERM; returns the exit code.
fn serve_and_stop(extra: &str, redirect: &str) -> Option<i32> {
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    // Killed if an assertion below fails before it exits.
    let mut child = KillOnDrop(
        Command::new("sh")
            .args([
                "-c",
                &format!("exec {BIN} --bind 127.0.0.1 --port {port} {extra} {redirect}"),
            ])
            .stdin(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    assert!(
        wait_until(START_TIMEOUT, || TcpStream::connect(addr).is_ok()),
        "not listening (redirect {redirect})"
    );
    echo_roundtrip(&mut connect(addr), b"still echoing");
    let st = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(st.success());
    let (status, _) = wait_child_exit(&mut child, Duration::from_secs(10), "no exit");
    status.code()
}

#[test]
fn a_full_or_closed_stdout_still_exits_0() {
    // Proves: a server whose stdout is full (/dev/full) or closed serves
    // and exits 0 on SIGTERM, with and without -q.
    // The old server exited 101 ("failed printing to stdout") at its
    // banner when stdout was full.
    // (A reader that went away: tests/log_never_blocks.rs.)
    for redirect in [">/dev/full", ">&-", ">/dev/full 2>/dev/full"] {
        for extra in ["", "-q"] {
            assert_eq!(
                serve_and_stop(extra, redirect),
                Some(0),
                "stdout {redirect} {extra}"
            );
        }
    }
}

#[test]
fn start_up_errors_exit_1_whatever_stderr_is() {
    // Proves: a server that cannot start exits 1 (and a bad command line
    // 2) even when stderr is full or closed; the old server exited 101
    // when its error message could not be written.
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let in_use = format!("--bind 127.0.0.1 --port {port}");
    for redirect in ["2>/dev/full", "2>&-", "2>/dev/full >/dev/full", ">&- 2>&-"] {
        let (code, _) = run_redirected(&in_use, redirect);
        assert_eq!(code, Some(1), "port in use, {redirect}");
        let (code, _) = run_redirected("--port nonsense", redirect);
        assert_eq!(code, Some(2), "bad command line, {redirect}");
    }
    // With a working stderr, the message is there.
    let (code, stderr) = run_redirected(&in_use, "");
    assert_eq!(code, Some(1));
    assert!(stderr.contains("address already in use"), "{stderr}");
    drop(taken);
}

#[test]
fn help_and_version_exit_0_whatever_stdout_is() {
    // Proves: --help and --version exit 0 even when stdout cannot take
    // their text (the text is lost, the code is still the documented one).
    for args in ["--help", "--version"] {
        for redirect in [">/dev/full", ">&-", ">/dev/null"] {
            let (code, stderr) = run_redirected(args, redirect);
            assert_eq!(code, Some(0), "{args} {redirect}: {stderr}");
            assert_no_panic(&stderr);
        }
    }
}
