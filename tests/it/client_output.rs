//! `echo-client` in every mode with stdout and stderr in every state a
//! user can leave them in: full (`/dev/full`), not writable, closed, and
//! read by a process that went away. Every run must end with a code
//! `--help` lists (or by SIGPIPE for a gone reader, the documented
//! convention), and never with a panic.

use std::fs::{File, OpenOptions};
use std::os::unix::process::ExitStatusExt;
use std::process::{Command, ExitStatus, Stdio};
use std::time::Duration;

use crate::support::client::CLIENT;
use crate::support::{assert_no_panic, closed_port, wait_child_exit, Server};

/// The codes `echo-client --help` lists.
const DOCUMENTED: [i32; 9] = [0, 1, 2, 3, 4, 5, 6, 7, 130];
const SIGPIPE: i32 = 13;

fn modes(addr: &str) -> Vec<Vec<String>> {
    let v = |a: &[&str]| a.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    vec![
        v(&[addr, "hello"]),
        v(&[addr, "hello", "--json"]),
        v(&["ping", addr, "-c", "3", "-i", "0.01"]),
        v(&["ping", addr, "-c", "3", "-i", "0.01", "--json"]),
        v(&["bench", addr, "-n", "200"]),
        v(&["bench", addr, "-n", "200", "--json"]),
    ]
}

/// Runs `cmd` to its end (bounded), its stderr captured unless set.
fn run(mut cmd: Command, stderr_set: bool) -> (ExitStatus, String) {
    if !stderr_set {
        cmd.stderr(Stdio::piped());
    }
    cmd.stdin(Stdio::null());
    let mut child = cmd.spawn().expect("spawn echo-client");
    wait_child_exit(
        &mut child,
        Duration::from_secs(30),
        "echo-client did not end",
    )
}

fn client(args: &[String]) -> Command {
    let mut cmd = Command::new(CLIENT);
    cmd.args(args);
    cmd
}

/// Through `sh`, for a redirection Command cannot express (`>&-`).
fn client_sh(args: &[String], redirect: &str) -> Command {
    let mut cmd = Command::new("sh");
    cmd.arg("-c")
        .arg(format!("exec \"$0\" \"$@\" {redirect}"))
        .arg(CLIENT)
        .args(args);
    cmd
}

fn dev_full() -> File {
    OpenOptions::new().write(true).open("/dev/full").unwrap()
}

/// A pipe whose read end is already closed: its reader went away.
fn gone_reader() -> Stdio {
    let (reader, writer) = rustix::pipe::pipe().unwrap();
    drop(reader);
    Stdio::from(writer)
}

fn documented(status: &ExitStatus) -> bool {
    status.code().is_some_and(|c| DOCUMENTED.contains(&c))
}

#[test]
fn a_full_or_unwritable_stdout_is_exit_7_with_a_message() {
    let server = Server::start(&[]);
    for args in modes(&server.addr().to_string()) {
        let mut cmd = client(&args);
        cmd.stdout(dev_full());
        let (status, stderr) = run(cmd, false);
        assert_no_panic(&stderr);
        assert_eq!(status.code(), Some(7), "{args:?} >/dev/full: {stderr}");
        assert!(
            stderr.contains("echo-client: cannot write to standard output: No space left"),
            "{args:?}: {stderr}"
        );

        // Open, but not for writing: std alone would drop the output silently.
        let mut cmd = client(&args);
        cmd.stdout(File::open("/dev/null").unwrap());
        let (status, stderr) = run(cmd, false);
        assert_no_panic(&stderr);
        assert_eq!(status.code(), Some(7), "{args:?} 1</dev/null: {stderr}");
        assert!(
            stderr.contains("cannot write to standard output"),
            "{args:?}: {stderr}"
        );
    }
}

#[test]
fn a_closed_stdout_or_a_bad_stderr_changes_no_verdict() {
    let server = Server::start(&[]);
    for args in modes(&server.addr().to_string()) {
        // Closed: the output goes nowhere, as with >/dev/null.
        let (status, stderr) = run(client_sh(&args, ">&-"), false);
        assert_no_panic(&stderr);
        assert_eq!(status.code(), Some(0), "{args:?} >&-: {stderr}");

        for redirect in ["2>/dev/full", "2>&-"] {
            let (status, _) = run(client_sh(&args, &format!(">/dev/null {redirect}")), true);
            assert_eq!(status.code(), Some(0), "{args:?} {redirect}: {status:?}");
        }
    }
    // A failure whose message cannot be written keeps its own code.
    let refused = format!("127.0.0.1:{}", closed_port());
    for args in modes(&refused) {
        for redirect in [">/dev/null 2>/dev/full", ">/dev/null 2>&-"] {
            let (status, _) = run(client_sh(&args, redirect), true);
            assert_eq!(status.code(), Some(3), "{args:?} {redirect}: {status:?}");
        }
        // Both full: ping stops at its first lost line, before any probe.
        let (status, _) = run(client_sh(&args, ">/dev/full 2>/dev/full"), true);
        assert!(documented(&status), "{args:?} both full: {status:?}");
    }
}

#[test]
fn a_gone_reader_ends_the_client_by_sigpipe() {
    let server = Server::start(&[]);
    for args in modes(&server.addr().to_string()) {
        let mut cmd = client(&args);
        cmd.stdout(gone_reader());
        let (status, stderr) = run(cmd, false);
        assert_no_panic(&stderr);
        assert_eq!(
            status.signal(),
            Some(SIGPIPE),
            "{args:?} | gone: {status:?} {stderr}"
        );
    }
    // The error line of a failed run, to a gone stderr reader.
    let refused = format!("127.0.0.1:{}", closed_port());
    for args in modes(&refused) {
        let mut cmd = client(&args);
        cmd.stdout(Stdio::null()).stderr(gone_reader());
        let (status, _) = run(cmd, true);
        assert!(
            status.signal() == Some(SIGPIPE) || documented(&status),
            "{args:?} 2>| gone: {status:?}"
        );
    }
}
