//! A connection to a port nothing listens on must never "echo": when the
//! kernel picks the target port as the client's own, TCP simultaneous open
//! connects the socket to itself, and every byte comes back. The client
//! refuses such a connection (exit 3) in every mode.
//!
//! The self-connect is made certain, not waited for: each run happens in a
//! network namespace of its own (`unshare -rn`) whose ephemeral port range
//! is the one target port, so the kernel has no other port to choose.

use std::process::Command;
use std::time::Duration;

use crate::support::client::CLIENT;
use crate::support::{assert_no_panic, require_tool, run_cmd_to_exit, skip, Exit};

const PORT: u16 = 40_000;

/// Runs the client with `args` in a fresh user + network namespace whose
/// loopback is up and whose only ephemeral port is [`PORT`]; `None` (after
/// a SKIP line) when this host does not allow such namespaces.
fn in_one_port_namespace(args: &[&str]) -> Option<Exit> {
    let script = format!(
        "ip link set lo up && echo '{PORT} {PORT}' > /proc/sys/net/ipv4/ip_local_port_range && exec \"$0\" \"$@\""
    );
    let mut probe = Command::new("unshare");
    probe.args(["-rn", "sh", "-c", "ip link set lo up && echo ok"]);
    let works = probe.output().is_ok_and(|o| o.status.success());
    if !works {
        skip(
            "client_self_connect",
            "unshare -rn (user and network namespaces) is not permitted here",
        );
        return None;
    }
    let mut cmd = Command::new("unshare");
    cmd.args(["-rn", "sh", "-c", &script, CLIENT]).args(args);
    Some(run_cmd_to_exit(cmd, Duration::from_secs(30)))
}

#[test]
fn a_socket_connected_to_itself_is_refused_in_every_mode() {
    if !require_tool("client_self_connect", "unshare") || !require_tool("client_self_connect", "ip")
    {
        return;
    }
    let target = format!("127.0.0.1:{PORT}");
    let runs: [&[&str]; 6] = [
        &[&target, "hello"],
        &[&target, "hello", "--json"],
        // One probe each: the self-connected socket leaves the namespace's
        // only port in TIME_WAIT, so a second connect cannot even start.
        &["ping", &target, "-c", "1"],
        &["ping", &target, "-c", "1", "--reconnect", "--json"],
        &["bench", &target, "-n", "10"],
        &["bench", &target, "-n", "10", "--json"],
    ];
    for args in runs {
        let Some(exit) = in_one_port_namespace(args) else {
            return;
        };
        let all = exit.stdout.join("\n");
        assert_no_panic(&exit.stderr);
        assert_eq!(exit.code(), Some(3), "{args:?}\n{}", exit.describe());
        // Nothing was echoed: no probe answered, no message came back.
        assert!(
            !all.contains("bytes from") && !all.contains("Received echo"),
            "{args:?}\n{}",
            exit.describe()
        );
        if args.contains(&"--json") {
            assert!(all.contains("\"refused\""), "{args:?}\n{}", exit.describe());
        } else {
            assert!(
                all.contains("nothing is listening")
                    || exit.stderr.contains("nothing is listening"),
                "{args:?}\n{}",
                exit.describe()
            );
        }
    }
}
