//! Listening, command line and start-up errors.

use crate::support::*;
use std::io::ErrorKind;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::Command;
use std::time::Duration;

const EXIT_WAIT: Duration = Duration::from_secs(10);

#[test]
fn banner_shows_real_ephemeral_port_and_server_echoes() {
    // Proves: `--port 0` starts, prints the exact 4-line banner with the real port and the mode, and that port echoes.
    let srv = Server::start(&[]);
    let lines = srv.lines();
    assert_eq!(lines[0], "Echo Server v0.1.0", "{}", srv.dump());
    assert_eq!(lines[1], format!("Listening on 127.0.0.1:{}", srv.port()));
    let last = srv.wait_for_line(|l| l == "Press Ctrl+C to stop", Duration::from_secs(5));
    assert_eq!(srv.lines()[2], "Mode: echo");
    assert_eq!(srv.lines()[3], last, "banner line 4 out of place");
    let mut c = connect(srv.addr());
    echo_roundtrip(&mut c, b"Hello, World!\n");
}

#[test]
fn short_flags_p_and_b_work() {
    // Proves: `-p` and `-b` are the short forms of --port and --bind.
    let srv = Server::start_raw(&["-p", "0", "-b", "127.0.0.1"]);
    assert_eq!(
        srv.addr().ip(),
        "127.0.0.1".parse::<std::net::IpAddr>().unwrap()
    );
    let mut c = connect(srv.addr());
    echo_roundtrip(&mut c, b"short flags\n");
}

#[test]
fn ipv6_loopback_listens_and_echoes() {
    // Proves: `--bind ::1` listens on IPv6 loopback and prints `Listening on [::1]:PORT`.
    if TcpListener::bind("[::1]:0").is_err() {
        skip(
            "ipv6_loopback_listens_and_echoes",
            "no IPv6 loopback on this host",
        );
        return;
    }
    let srv = Server::start_raw(&["--port", "0", "--bind", "::1"]);
    assert_eq!(
        srv.lines()[1],
        format!("Listening on [::1]:{}", srv.port()),
        "{}",
        srv.dump()
    );
    assert!(srv.addr().is_ipv6());
    let mut c = connect(srv.addr());
    echo_roundtrip(&mut c, b"over IPv6\n");
    let local = c.local_addr().unwrap();
    drop(c);
    let d = srv.wait_disconnect(local, Duration::from_secs(5));
    assert_eq!(d.addr, local.to_string(), "IPv6 client shown as [ip]:port");
}

fn ss_send_q(test: &str, port: u16) -> Option<String> {
    if !require_tool(test, "ss") {
        return None;
    }
    let out = Command::new("ss")
        .args(["-Hltn", &format!("sport = :{port}")])
        .output()
        .expect("run ss");
    assert!(out.status.success(), "ss failed: {out:?}");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let rows: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(rows.len(), 1, "one listening socket expected:\n{text}");
    // State Recv-Q Send-Q Local Peer; for a listener Send-Q is the backlog.
    let f: Vec<&str> = rows[0].split_whitespace().collect();
    assert_eq!(f[0], "LISTEN", "{text}");
    Some(f[2].to_string())
}

#[test]
fn backlog_flag_sets_listen_queue_length() {
    // Proves: `--backlog 37` reaches listen(2) (visible as Send-Q in ss), and the default is 1024.
    let test = "backlog_flag_sets_listen_queue_length";
    let srv = Server::start(&["--backlog", "37"]);
    let Some(q) = ss_send_q(test, srv.port()) else {
        return;
    };
    assert_eq!(q, "37", "listen backlog");

    let srv = Server::start(&[]);
    let somaxconn: u64 = std::fs::read_to_string("/proc/sys/net/core/somaxconn")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(4096);
    let q = ss_send_q(test, srv.port()).unwrap();
    assert_eq!(
        q,
        1024.min(somaxconn).to_string(),
        "default backlog 1024 (capped by somaxconn {somaxconn})"
    );
}

fn assert_startup_error(exit: &Exit, expected_prefix: &str, also: &[&str]) {
    assert_eq!(
        exit.code(),
        Some(1),
        "exit code 1 expected\n{}",
        exit.describe()
    );
    assert_no_panic(&exit.stderr);
    let err = exit.stderr.trim_end();
    assert_eq!(
        err.lines().count(),
        1,
        "start-up error is one line on stderr:\n{err}"
    );
    assert!(
        err.starts_with(expected_prefix),
        "stderr should start with {expected_prefix:?}, got:\n{err}"
    );
    for s in also {
        assert!(err.contains(s), "stderr should mention {s:?}, got:\n{err}");
    }
    assert!(
        !exit.stdout.iter().any(|l| l.starts_with("Listening on")),
        "must not claim to listen:\n{}",
        exit.describe()
    );
}

#[test]
fn port_in_use_is_a_clear_error() {
    // Proves: binding a taken port exits 1 with `error: cannot listen on ADDR: address already in use`.
    let holder = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = holder.local_addr().unwrap().port().to_string();
    let exit = run_to_exit(&["--port", &port, "--bind", "127.0.0.1"], EXIT_WAIT);
    assert_startup_error(
        &exit,
        &format!("error: cannot listen on 127.0.0.1:{port}: address already in use"),
        &[],
    );
    drop(holder);
}

#[test]
fn privileged_port_is_permission_denied() {
    // Proves: an unprivileged user asking for port 1 gets exit 1 and a `permission denied` message.
    let test = "privileged_port_is_permission_denied";
    let start: u32 = std::fs::read_to_string("/proc/sys/net/ipv4/ip_unprivileged_port_start")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(1024);
    if start <= 1 {
        skip(
            test,
            "ip_unprivileged_port_start <= 1: port 1 is not privileged here",
        );
        return;
    }
    let exit = if is_root() {
        if !require_tool(test, "setpriv") {
            return;
        }
        let drop_args = [
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            "--inh-caps=-all",
        ];
        // Can this environment drop privileges at all?
        let probe = Command::new("setpriv")
            .args(drop_args)
            .arg("true")
            .output()
            .expect("run setpriv");
        if !probe.status.success() {
            skip(
                test,
                &format!(
                    "setpriv cannot drop privileges here: {}",
                    String::from_utf8_lossy(&probe.stderr).trim()
                ),
            );
            return;
        }
        // uid 65534 must be able to execute the binary: copy it to a fresh 0755 dir.
        use std::os::unix::fs::PermissionsExt;
        let dir = std::env::temp_dir().join(format!(
            "echo-server-privtest-{}-{}",
            std::process::id(),
            now_millis()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
        let bin = dir.join("echo-server");
        std::fs::copy(BIN, &bin).unwrap();
        std::fs::set_permissions(&bin, std::fs::Permissions::from_mode(0o755)).unwrap();
        let mut cmd = Command::new("setpriv");
        cmd.args(drop_args)
            .arg(&bin)
            .args(["--port", "1", "--bind", "127.0.0.1"]);
        let exit = run_cmd_to_exit(cmd, EXIT_WAIT);
        let _ = std::fs::remove_dir_all(&dir);
        exit
    } else {
        run_to_exit(&["--port", "1", "--bind", "127.0.0.1"], EXIT_WAIT)
    };
    assert_startup_error(
        &exit,
        "error: cannot listen on 127.0.0.1:1: permission denied",
        &[],
    );
}

#[test]
fn non_local_address_is_a_clear_error() {
    // Proves: `--bind 192.0.2.1` (not ours) exits 1 saying the address is not available / not local.
    let exit = run_to_exit(&["--port", "0", "--bind", "192.0.2.1"], EXIT_WAIT);
    assert_startup_error(
        &exit,
        "error: cannot listen on 192.0.2.1:0: address not available",
        &["192.0.2.1 is not an address of this host"],
    );
}

#[test]
fn invalid_values_exit_2_naming_the_flag() {
    // Proves: each invalid option value is refused with exit 2 and a message naming the flag.
    // Each case adds its bad value to `--port 0 --bind 127.0.0.1` (minus the
    // flag under test), so the server would start if the value were accepted.
    let cases: &[(&[&str], &str)] = &[
        (&["--port", "abc"], "--port"),
        (&["--port", "70000"], "--port"),
        (&["--bind", "not-an-ip"], "--bind"),
        (&["--buffer-size", "0"], "--buffer-size"),
        (&["--buffer-size", "17M"], "--buffer-size"),
        (&["--buffer-size", "16777217"], "--buffer-size"),
        (&["--buffer-size", "12Q"], "--buffer-size"),
        (&["--idle-timeout", "-1"], "--idle-timeout"),
        (&["--idle-timeout=-1"], "--idle-timeout"),
        (&["--idle-timeout", "abc"], "--idle-timeout"),
        (&["--max-connections", "0"], "--max-connections"),
        (&["--backlog", "0"], "--backlog"),
        (&["--backlog", "65536"], "--backlog"),
        (&["--shutdown-timeout", "soon"], "--shutdown-timeout"),
        (&["--stats-interval", "often"], "--stats-interval"),
    ];
    let mut failures = Vec::new();
    for (bad, flag) in cases {
        let mut args: Vec<&str> = Vec::new();
        for (base, value) in [("--port", "0"), ("--bind", "127.0.0.1")] {
            if !bad.contains(&base) {
                args.extend([base, value]);
            }
        }
        args.extend_from_slice(bad);
        let exit = run_to_exit(&args, EXIT_WAIT);
        assert_no_panic(&exit.stderr);
        let ok = exit.code() == Some(2)
            && exit.stderr.contains(flag)
            && exit.stderr.contains("error")
            && !exit.stdout.iter().any(|l| l.starts_with("Listening on"));
        if !ok {
            failures.push(format!(
                "{args:?}: want exit 2 and a message naming {flag}; got {:?}, stderr: {}",
                exit.code(),
                exit.stderr.trim()
            ));
        }
    }
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
}

#[test]
fn valid_edge_values_are_accepted() {
    // Proves: documented value forms (K/M suffixes, bounds, decimals) are accepted and the server runs.
    let cases: &[&[&str]] = &[
        &["--buffer-size", "1"],
        &["--buffer-size", "4096"],
        &["--buffer-size", "16K"],
        &["--buffer-size", "16M"],
        &["--idle-timeout", "0.5"],
        &["--idle-timeout", "0"],
        &["--shutdown-timeout", "0.25"],
        &["--stats-interval", "0"],
        &["--stats-interval", "2.5"],
        &["--backlog", "1"],
        &["--backlog", "65535"],
        &["--max-connections", "1"],
        &["-v"],
        &["-q"],
    ];
    for extra in cases {
        let mut srv = Server::start(extra);
        let mut c = connect(srv.addr());
        echo_roundtrip(&mut c, b"ok?");
        drop(c);
        let exit = srv.stop("INT", EXIT_WAIT);
        assert_eq!(exit.code(), Some(0), "{extra:?}\n{}", exit.describe());
        assert_no_panic(&exit.stderr);
    }
}

#[test]
fn connecting_when_no_server_runs_is_refused() {
    // Proves: once the server has stopped, its port refuses connections (client fails fast, no hang).
    let mut srv = Server::start(&[]);
    let addr: SocketAddr = srv.addr();
    let exit = srv.stop("INT", EXIT_WAIT);
    assert_eq!(exit.code(), Some(0), "{}", exit.describe());
    let err = TcpStream::connect_timeout(&addr, Duration::from_secs(5))
        .expect_err("connect must fail when no server runs");
    assert_eq!(err.kind(), ErrorKind::ConnectionRefused, "{err}");
}

#[test]
fn unusable_addresses_are_refused_before_listening() {
    // Proves: --bind and --metrics refuse multicast and broadcast addresses
    // (which start but that nothing can connect to), a link-local address
    // without its interface and an unknown interface: exit 2, the reason
    // on stderr, no "Listening on".
    let cases: &[(&[&str], &str, &str)] = &[
        (
            &["--bind", "224.0.0.1"],
            "--bind",
            "224.0.0.1 is a multicast address, which TCP cannot listen on",
        ),
        (
            &["--bind", "239.1.2.3"],
            "--bind",
            "239.1.2.3 is a multicast address",
        ),
        (
            &["--bind", "ff02::1"],
            "--bind",
            "ff02::1 is a multicast address",
        ),
        (
            &["--bind", "255.255.255.255"],
            "--bind",
            "255.255.255.255 is the broadcast address, which TCP cannot listen on",
        ),
        (
            &["--bind", "fe80::1"],
            "--bind",
            "fe80::1 is a link-local address: name its interface too, as in fe80::1%eth0",
        ),
        (
            &["--bind", "fe80::1%no-such-if0"],
            "--bind",
            "no network interface named 'no-such-if0'",
        ),
        (
            &["--bind", "127.0.0.1", "--metrics", "224.0.0.1:0"],
            "--metrics",
            "224.0.0.1 is a multicast address",
        ),
        (
            &["--bind", "127.0.0.1", "--metrics", "255.255.255.255:0"],
            "--metrics",
            "255.255.255.255 is the broadcast address",
        ),
    ];
    let mut failures = Vec::new();
    for (bad, flag, why) in cases {
        let mut args = vec!["--port", "0"];
        args.extend_from_slice(bad);
        let exit = run_to_exit(&args, EXIT_WAIT);
        assert_no_panic(&exit.stderr);
        let ok = exit.code() == Some(2)
            && exit.stderr.contains(flag)
            && exit.stderr.contains(why)
            && !exit.stdout.iter().any(|l| l.starts_with("Listening on"));
        if !ok {
            failures.push(format!(
                "{args:?}: want exit 2 and {why:?}; got {:?}\n{}",
                exit.code(),
                exit.describe()
            ));
        }
    }
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
}

const NETNS_GUARD: &str = "ECHO_SERVER_TEST_IN_OWN_NETNS";

#[test]
fn link_local_address_with_its_interface_listens_and_echoes() {
    // Proves: `--bind fe80::1%lo` and `--bind fe80::1%1` bind with the
    // interface as the socket's scope, the banner shows the address with
    // its scope, and a client connecting to it gets its bytes back. Runs
    // `link_local_in_own_netns` in a network namespace of its own, where
    // loopback gets a link-local address.
    const TEST: &str = "link_local_address_with_its_interface_listens_and_echoes";
    if !require_tool(TEST, "unshare") || !require_tool(TEST, "ip") {
        return;
    }
    match Command::new("unshare").args(["--net", "true"]).output() {
        Ok(probe) if probe.status.success() => {}
        Ok(probe) => {
            // Not a missing tool: no privilege for namespaces here.
            eprintln!(
                "SKIP: {TEST}: cannot create a network namespace: {}",
                String::from_utf8_lossy(&probe.stderr).trim()
            );
            return;
        }
        Err(e) => panic!("cannot run unshare: {e}"),
    }
    let mut cmd = Command::new("unshare");
    cmd.arg("--net")
        .arg("--")
        .arg(std::env::current_exe().unwrap())
        .args([
            "--exact",
            // The full name in the test crate, module path included.
            "listen::link_local_in_own_netns",
            "--ignored",
            "--nocapture",
        ])
        .env(NETNS_GUARD, "1");
    let exit = run_cmd_to_exit(cmd, Duration::from_secs(120));
    assert_eq!(exit.code(), Some(0), "{}", exit.describe());
    assert!(
        exit.stdout.iter().any(|l| l.contains("1 passed")),
        "the namespaced test did not run:\n{}",
        exit.describe()
    );
}

#[test]
#[ignore = "run in a network namespace of its own by link_local_address_with_its_interface_listens_and_echoes"]
fn link_local_in_own_netns() {
    assert_eq!(
        std::env::var(NETNS_GUARD).as_deref(),
        Ok("1"),
        "changes loopback's addresses: only run in a namespace of its own"
    );
    for args in [
        &["link", "set", "lo", "up"][..],
        &["-6", "addr", "add", "fe80::1/64", "dev", "lo", "nodad"],
    ] {
        let status = Command::new("ip").args(args).status().unwrap();
        assert!(status.success(), "ip {args:?}: {status}");
    }
    // Loopback is interface 1 in every fresh network namespace.
    for zone in ["lo", "1"] {
        let bind = format!("fe80::1%{zone}");
        let mut srv = Server::start_raw(&["--port", "0", "--bind", &bind]);
        let banner = srv.wait_for("Listening on ", START_TIMEOUT);
        let want = format!("Listening on [fe80::1%1]:{}", srv.port());
        assert_eq!(banner.trim(), want, "--bind {bind}");
        let SocketAddr::V6(addr) = srv.addr() else {
            panic!("{bind}: banner shows {}", srv.addr())
        };
        assert_eq!(addr.scope_id(), 1, "--bind {bind}");
        let mut c = connect(srv.addr());
        echo_roundtrip(&mut c, format!("hello over {bind}").as_bytes());
        drop(c);
        let exit = srv.stop("INT", EXIT_WAIT);
        assert_eq!(exit.code(), Some(0), "--bind {bind}\n{}", exit.describe());
        assert_no_panic(&exit.stderr);
    }
}
