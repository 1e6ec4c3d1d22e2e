//! Many listeners in one server (issue 21): `--port` lists and ranges,
//! `--listen ADDR:PORTS/MODE`, the banner, the all-or-nothing bind, the
//! dual-stack default and the port in CONNECT lines and /metrics.

use std::io::Write;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::Command;
use std::time::Duration;

use crate::support::endpoint::get;
use crate::support::*;

const WAIT: Duration = Duration::from_secs(10);

/// `n` ports on 127.0.0.1 that were free a moment ago (bound, then
/// closed); consecutive ones where the kernel happens to give them.
fn free_ports(n: usize) -> Vec<u16> {
    let held: Vec<TcpListener> = (0..n)
        .map(|_| TcpListener::bind("127.0.0.1:0").expect("bind"))
        .collect();
    let mut ports: Vec<u16> = held
        .iter()
        .map(|l| l.local_addr().unwrap().port())
        .collect();
    ports.sort_unstable();
    ports
}

fn on(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

fn list(ports: &[u16]) -> String {
    ports
        .iter()
        .map(u16::to_string)
        .collect::<Vec<_>>()
        .join(",")
}

/// Sends `input` with real `nc -N` (which half-closes after it) to `port`
/// and returns the lines that came back before the server closed.
fn nc(port: u16, input: &[u8]) -> Vec<String> {
    let mut cmd = Command::new("nc");
    cmd.args(["-N", "127.0.0.1", &port.to_string()]);
    let exit = run_with_input(cmd, input, WAIT);
    assert!(exit.status.success(), "nc failed\n{}", exit.describe());
    exit.stdout
}

#[test]
fn every_listener_serves_its_own_mode() {
    // Proves: one server listens on a --port list and on --listen ports
    // with their own modes; each port answers as its mode says (echo,
    // discard, chargen), to real nc and to std sockets; the banner lists
    // them compactly and the CONNECT lines name the local port.
    if !require_tool("every_listener_serves_its_own_mode", "nc") {
        return;
    }
    let ports = free_ports(5);
    let (echo, discard, chargen) = (&ports[..3], ports[3], ports[4]);
    let srv = Server::start_raw(&[
        "--bind",
        "127.0.0.1",
        "--port",
        &list(echo),
        "--listen",
        &format!("127.0.0.1:{discard}/discard"),
        "--listen",
        &format!("127.0.0.1:{chargen}/chargen"),
    ]);
    let banner = srv.wait_for("Listening on ", WAIT);
    let want = format!(
        "Listening on 127.0.0.1:{} (echo), 127.0.0.1:{discard} (discard), 127.0.0.1:{chargen} (chargen)",
        if echo[2] - echo[0] == 2 {
            format!("{}-{}", echo[0], echo[2])
        } else {
            list(echo)
        }
    );
    assert_eq!(banner, want, "{}", srv.dump());
    for &port in echo {
        assert_eq!(
            nc(
                port,
                b"hello over nc
"
            ),
            ["hello over nc"],
            "port {port}"
        );
        let mut c = connect(on(port));
        echo_roundtrip(&mut c, b"std socket\n");
    }
    assert!(
        nc(discard, b"into the void\n").is_empty(),
        "discard answered"
    );
    // chargen never stops: a socket reads its first line.
    let got = read_exactly(&mut connect(on(chargen)), 74);
    assert_eq!(
        &got[..72],
        &b" !\"#$%&'()*+,-./0123456789:;<=>?@ABCDEFGHIJKLMNOPQRSTUVWXYZ[\\]^_`abcdefg"[..]
    );
    for (port, mode) in [
        (echo[1], "echo"),
        (discard, "discard"),
        (chargen, "chargen"),
    ] {
        srv.wait_for_line(
            |l| l.contains("[CONNECT]") && l.ends_with(&format!("(port {port}, mode {mode})")),
            WAIT,
        );
    }
}

#[test]
fn listen_alone_replaces_the_default_port() {
    // Proves: with only --listen, the server listens there alone (banner
    // with its mode) and serves that mode.
    let port = free_ports(1)[0];
    let srv = Server::start_raw(&["--listen", &format!("127.0.0.1:{port}/upper")]);
    assert_eq!(
        srv.wait_for("Listening on ", WAIT),
        format!("Listening on 127.0.0.1:{port} (upper)")
    );
    let mut c = connect(on(port));
    c.write_all(b"quiet please\n").unwrap();
    assert_eq!(read_exactly(&mut c, 13), b"QUIET PLEASE\n");
}

#[test]
fn a_port_in_use_names_itself_and_nothing_stays_open() {
    // Proves: when one of several ports cannot be bound the server exits 1
    // naming that address, and none of the other ports is left listening.
    let ports = free_ports(3);
    let holder = TcpListener::bind(on(ports[1])).expect("hold the middle port");
    let exit = run_to_exit(&["--bind", "127.0.0.1", "--port", &list(&ports)], WAIT);
    assert_eq!(exit.code(), Some(1), "{}", exit.describe());
    assert_no_panic(&exit.stderr);
    let err = exit.stderr.trim_end();
    assert!(
        err.starts_with(&format!(
            "error: cannot listen on 127.0.0.1:{}: address already in use",
            ports[1]
        )),
        "{err}"
    );
    assert!(
        !exit.stdout.iter().any(|l| l.starts_with("Listening on")),
        "{}",
        exit.describe()
    );
    drop(holder);
    for port in [ports[0], ports[2]] {
        // The process is gone; binding again proves no socket was handed on.
        assert!(
            TcpListener::bind(on(port)).is_ok(),
            "port {port} still taken"
        );
    }
}

#[test]
fn too_many_ports_and_bad_lists_are_usage_errors() {
    // Proves: more than 1024 ports, a reversed range, port 0 in a list and a
    // mode the server lacks are refused at start with exit 2, naming the flag.
    for (args, says) in [
        (&["--port", "1000-2100"][..], "1024"),
        (&["--port", "7010-7000"], "--port"),
        (&["--port", "0,7000"], "--port"),
        (&["--listen", "127.0.0.1:9/daytime"], "--listen"),
    ] {
        let exit = run_to_exit(args, WAIT);
        assert_eq!(exit.code(), Some(2), "{args:?}: {}", exit.describe());
        assert!(exit.stderr.contains(says), "{args:?}: {}", exit.stderr);
    }
}

#[test]
fn listeners_and_connection_limit_must_fit_the_file_limit() {
    // Proves: a server asked for more listeners plus connections than the
    // open-file limit allows refuses to start with a clear error (exit 1).
    if !require_tool(
        "listeners_and_connection_limit_must_fit_the_file_limit",
        "prlimit",
    ) {
        return;
    }
    let ports = free_ports(4);
    let mut cmd = Command::new("prlimit");
    cmd.args([
        "--nofile=64:64",
        BIN,
        "--bind",
        "127.0.0.1",
        "--port",
        &list(&ports),
    ]);
    cmd.args(["--max-connections", "100"]);
    let exit = run_cmd_to_exit(cmd, WAIT);
    assert_eq!(exit.code(), Some(1), "{}", exit.describe());
    assert!(
        exit.stderr
            .contains("4 listeners and --max-connections 100 need")
            && exit.stderr.contains("open file limit of 64"),
        "{}",
        exit.stderr
    );
}

#[test]
fn default_listens_on_ipv6_and_ipv4() {
    // Proves: without --bind the server listens on :: for both families
    // (banner says so) and ::1 and 127.0.0.1 are both served; --bind
    // 0.0.0.0 still means IPv4 only.
    if TcpListener::bind("[::1]:0").is_err() {
        skip(
            "default_listens_on_ipv6_and_ipv4",
            "no IPv6 loopback on this host",
        );
        return;
    }
    let srv = Server::start_raw(&["--port", "0"]);
    let banner = srv.wait_for("Listening on ", WAIT);
    assert_eq!(
        banner,
        format!("Listening on [::]:{} (IPv6 and IPv4)", srv.port())
    );
    for ip in ["::1", "127.0.0.1"] {
        let mut c = connect(SocketAddr::new(ip.parse().unwrap(), srv.port()));
        echo_roundtrip(&mut c, format!("over {ip}\n").as_bytes());
    }
    // The IPv4 client is logged as IPv4, not ::ffff:127.0.0.1.
    srv.wait_for_line(|l| l.contains("[CONNECT] 127.0.0.1:"), WAIT);

    let v4 = Server::start_raw(&["--port", "0", "--bind", "0.0.0.0"]);
    assert_eq!(
        v4.wait_for("Listening on ", WAIT),
        format!("Listening on 0.0.0.0:{}", v4.port())
    );
    let refused =
        TcpStream::connect_timeout(&SocketAddr::new("::1".parse().unwrap(), v4.port()), WAIT);
    assert!(refused.is_err(), "--bind 0.0.0.0 took an IPv6 client");
}

#[test]
fn metrics_count_accepts_per_port_and_take_colon_port() {
    // Proves: /metrics counts connections per local port when there are
    // several listeners, and --metrics :PORT serves on 127.0.0.1:PORT.
    let ports = free_ports(3);
    let srv = Server::start_raw(&[
        "--bind",
        "127.0.0.1",
        "--port",
        &list(&ports[..2]),
        "--metrics",
        &format!(":{}", ports[2]),
    ]);
    srv.wait_for(&format!("Metrics on http://127.0.0.1:{}/", ports[2]), WAIT);
    for _ in 0..2 {
        let mut c = connect(on(ports[1]));
        echo_roundtrip(&mut c, b"x\n");
    }
    let mut c = connect(on(ports[0]));
    echo_roundtrip(&mut c, b"y\n");
    let body = get(on(ports[2]), "/metrics").text();
    for (port, n) in [(ports[0], 1), (ports[1], 2)] {
        let line = format!("echo_connections_accepted_by_port_total{{port=\"{port}\"}} {n}\n");
        assert!(body.contains(&line), "{line} missing:\n{body}");
    }
}

#[test]
fn out_of_descriptors_every_listener_is_retried() {
    // Proves: when accepting fails for lack of descriptors while clients
    // queue on two listeners, freeing descriptors gets both queued clients
    // accepted and echoed: the retry covers every listener, not only the
    // one whose accept failed.
    let test = "out_of_descriptors_every_listener_is_retried";
    if !require_tool(test, "prlimit") {
        return;
    }
    let _turn = one_at_a_time();
    let ports = free_ports(2);
    let srv = Server::start_raw(&[
        "--bind",
        "127.0.0.1",
        "--port",
        &list(&ports),
        "--max-connections",
        "100",
    ]);
    srv.wait_for("Press Ctrl+C", WAIT);
    // Room for exactly two more descriptors from now on.
    let soft = srv.open_fds() + 2;
    let status = Command::new("prlimit")
        .args([
            "--pid",
            &srv.pid().to_string(),
            &format!("--nofile={soft}:"),
        ])
        .status()
        .expect("run prlimit");
    assert!(status.success(), "prlimit --pid: {status}");
    assert_eq!(srv.nofile_soft_limit(), soft as u64);
    let mut held: Vec<TcpStream> = (0..2).map(|_| connect(on(ports[0]))).collect();
    for c in &mut held {
        echo_roundtrip(c, b"holding a descriptor\n");
    }
    // These complete their handshakes in the kernel's queues; accepting
    // them fails.
    let mut first = connect(on(ports[0]));
    let mut second = connect(on(ports[1]));
    first.write_all(b"queued on the first\n").unwrap();
    second.write_all(b"queued on the second\n").unwrap();
    srv.wait_for("accept failed", WAIT);
    drop(held);
    assert_eq!(read_exactly(&mut first, 20), b"queued on the first\n");
    assert_eq!(read_exactly(&mut second, 21), b"queued on the second\n");
    srv.wait_for_line(
        |l| l.contains("[CONNECT]") && l.contains(&format!("(port {}, mode echo)", ports[1])),
        WAIT,
    );
}
