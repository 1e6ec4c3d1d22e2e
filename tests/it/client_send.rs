//! `echo-client` send mode against the real echo-server, and against servers
//! that corrupt, drop, add or withhold bytes: every one of those must be
//! caught with its own message and exit code.

use std::time::Duration;

use crate::support::client::{
    client, client_interrupted_when, client_with_input, json_of, Fault, FaultyServer,
};
use crate::support::{assert_no_panic, closed_port, Rng, Server};

/// The issue's own example: what it connected to, what it sent, what came
/// back and the RTT, exit 0.
#[test]
fn sends_a_message_and_shows_its_echo_and_rtt() {
    let server = Server::start(&[]);
    let addr = server.addr().to_string();
    let exit = client(&[&addr, "hello world"]);
    assert_eq!(exit.code(), Some(0), "{}", exit.describe());
    let out = &exit.stdout;
    assert_eq!(out[0], format!("Connecting to {addr} ..."));
    assert!(
        out[1].starts_with(&format!("Connected to {addr} in ")),
        "{out:?}"
    );
    assert_eq!(out[2], "Sent 11 bytes: hello world");
    assert_eq!(out[3], "Received echo: hello world");
    let rtt: f64 = out[4]
        .strip_prefix("RTT: ")
        .and_then(|r| r.strip_suffix(" ms"))
        .and_then(|r| r.parse().ok())
        .unwrap_or_else(|| panic!("RTT line: {}", out[4]));
    assert!(rtt > 0.0 && rtt < 5_000.0, "{rtt}");
    assert!(exit.stderr.is_empty(), "{}", exit.stderr);
}

/// The message defaults to `hello`; host names and IPv6 literals work.
#[test]
fn default_message_hostnames_and_ipv6() {
    let server = Server::start(&[]);
    let exit = client(&[&format!("localhost:{}", server.port())]);
    assert_eq!(exit.code(), Some(0), "{}", exit.describe());
    assert!(exit.stdout.contains(&"Sent 5 bytes: hello".to_string()));
    assert!(exit.stdout.contains(&"Received echo: hello".to_string()));

    let v6 = Server::start_raw(&["--port", "0", "--bind", "::1"]);
    let exit = client(&[&format!("[::1]:{}", v6.port()), "over v6"]);
    assert_eq!(exit.code(), Some(0), "{}", exit.describe());
    assert!(exit.stdout[1].starts_with(&format!("Connected to [::1]:{}", v6.port())));
}

/// A file of every byte value, and stdin with NULs, come back identical.
#[test]
fn files_and_stdin_are_sent_binary_safe() {
    let server = Server::start(&[]);
    let addr = server.addr().to_string();
    let mut rng = Rng::new(7);
    let data: Vec<u8> = (0..3 * 1024 * 1024).map(|_| rng.next_u64() as u8).collect();
    let path = std::env::temp_dir().join(format!("echo-client-test-{}.bin", std::process::id()));
    std::fs::write(&path, &data).unwrap();
    let exit = client(&[&addr, "--file", path.to_str().unwrap()]);
    std::fs::remove_file(&path).unwrap();
    assert_eq!(exit.code(), Some(0), "{}", exit.describe());
    assert!(exit
        .stdout
        .contains(&format!("Received echo: {} bytes, identical", data.len())));

    let input = b"line one\n\0\xff\xfe binary\r\n";
    let exit = client_with_input(&[&addr, "-f", "-", "--json"], input);
    assert_eq!(exit.code(), Some(0), "{}", exit.describe());
    let doc = json_of(&exit);
    assert_eq!(doc["bytes_sent"], input.len());
    assert_eq!(doc["bytes_received"], input.len());
    assert_eq!(doc["match"], true);
}

/// A flipped bit: exit 1 and the exact offset where the echo differs.
#[test]
fn corrupted_echo_is_caught_at_its_offset() {
    let faulty = FaultyServer::start(Fault::FlipByteAt(6));
    let exit = client(&[&faulty.addr(), "hello world"]);
    assert_eq!(exit.code(), Some(1), "{}", exit.describe());
    assert!(
        exit.stderr.contains(
            "echo differs from what was sent at byte offset 6: sent 0x77 'w', received 0x76 'v'"
        ),
        "{}",
        exit.stderr
    );
    let exit = client(&[&faulty.addr(), "hello world", "--json"]);
    assert_eq!(exit.code(), Some(1));
    let doc = json_of(&exit);
    assert_eq!(doc["match"], false);
    assert_eq!(doc["error_kind"], "mismatch");
    assert_eq!(doc["mismatch_offset"], 6);
}

/// A dropped byte shifts the stream; an added byte is more than was sent.
#[test]
fn dropped_and_extra_bytes_are_mismatches() {
    let dropping = FaultyServer::start(Fault::DropByteAt(3));
    let exit = client(&[&dropping.addr(), "abcdefgh"]);
    assert_eq!(exit.code(), Some(1), "{}", exit.describe());
    assert!(
        exit.stderr
            .contains("at byte offset 3: sent 0x64 'd', received 0x65 'e'"),
        "{}",
        exit.stderr
    );

    let adding = FaultyServer::start(Fault::ExtraByte);
    let exit = client(&[&adding.addr(), "abc"]);
    assert_eq!(exit.code(), Some(1), "{}", exit.describe());
    assert!(
        exit.stderr
            .contains("more than was sent: an extra byte at offset 3"),
        "{}",
        exit.stderr
    );
}

/// Refused, unknown host, silence, close and reset: one clear line each,
/// each with its own documented exit code.
#[test]
fn failures_have_clear_messages_and_distinct_codes() {
    let port = closed_port();
    let exit = client(&[&format!("127.0.0.1:{port}")]);
    assert_eq!(exit.code(), Some(3), "{}", exit.describe());
    assert_eq!(
        exit.stderr.trim(),
        format!("echo-client: nothing is listening on 127.0.0.1:{port} — is echo-server running? (or on IPv6 only: try [::1]:{port})")
    );

    let exit = client(&["no-such-host.invalid:7878"]);
    assert_eq!(exit.code(), Some(4), "{}", exit.describe());
    assert!(
        exit.stderr
            .contains("cannot resolve host 'no-such-host.invalid'"),
        "{}",
        exit.stderr
    );

    let silent = FaultyServer::start(Fault::Silent);
    let exit = client(&[&silent.addr(), "anyone there?", "--timeout", "0.3"]);
    assert_eq!(exit.code(), Some(5), "{}", exit.describe());
    assert!(
        exit.stderr
            .contains("timed out after 0.300 s waiting for the echo: 0 of 13 bytes came back"),
        "{}",
        exit.stderr
    );

    let closing = FaultyServer::start(Fault::CloseAfter(2));
    let exit = client(&[&closing.addr(), "hello world"]);
    assert_eq!(exit.code(), Some(6), "{}", exit.describe());
    assert!(
        exit.stderr
            .contains("server closed the connection after echoing 2 of 11 bytes"),
        "{}",
        exit.stderr
    );

    let resetting = FaultyServer::start(Fault::ResetAfter(2));
    let exit = client(&[&resetting.addr(), "hello world"]);
    assert_eq!(exit.code(), Some(6), "{}", exit.describe());
    assert!(
        exit.stderr.contains("server reset the connection"),
        "{}",
        exit.stderr
    );

    assert_no_panic(&exit.stderr);
}

/// Bad command lines exit 2 with clap's message naming the problem; the
/// help lists the exit codes.
#[test]
fn bad_arguments_exit_2_and_help_documents_exit_codes() {
    for (args, needle) in [
        (&["host:99999"][..], "not a port number"),
        (&["127.0.0.1:1", ""][..], "MESSAGE"),
        (&["--timeout", "0", "127.0.0.1:1"], "--timeout"),
        (&["ping", "--size", "0"], "--size"),
        (&["bench", "--connections", "0"], "--connections"),
        (&["bench", "--rate", "-5"], "--rate"),
        (&["bench", "--depth", "lots"], "--depth"),
        (&["127.0.0.1:1", "--file", "/nonexistent/x"], ""),
        // An unbracketed IPv6 address ending in what looks like a port.
        (&["ping", "::1:4000"], "write [::1]:4000 for port 4000"),
    ] {
        let exit = client(args);
        assert_no_panic(&exit.stderr);
        if needle.is_empty() {
            // A file that cannot be read is a local error, not a usage error.
            assert_eq!(exit.code(), Some(7), "{args:?}: {}", exit.describe());
            assert!(
                exit.stderr.contains("cannot read /nonexistent/x"),
                "{}",
                exit.stderr
            );
        } else {
            assert_eq!(exit.code(), Some(2), "{args:?}: {}", exit.describe());
            assert!(exit.stderr.contains(needle), "{args:?}: {}", exit.stderr);
        }
    }
    let help = client(&["--help"]);
    assert_eq!(help.code(), Some(0));
    let text = help.stdout.join("\n");
    // It introduces the client, not the server.
    assert!(text.starts_with("Client for echo-server"), "{text}");
    for line in [
        "  3    connection refused",
        "  4    host name could not be resolved",
        "  5    timed out",
        "  6    the server closed or reset",
    ] {
        assert!(text.contains(line), "help lacks {line:?}:\n{text}");
    }
}

/// `--json` prints one document and nothing else on stdout, with the
/// measured figures.
#[test]
fn json_output_is_one_document() {
    let server = Server::start(&[]);
    let exit = client(&[&server.addr().to_string(), "ab\"c\\", "--json"]);
    assert_eq!(exit.code(), Some(0), "{}", exit.describe());
    let doc = json_of(&exit);
    assert_eq!(doc["mode"], "send");
    assert_eq!(doc["address"], server.addr().to_string());
    assert_eq!(doc["bytes_sent"], 5);
    assert_eq!(doc["match"], true);
    assert!(doc["error"].is_null());
    assert!(crate::support::client::num(&doc, &["rtt_ms"]) > 0.0);
    assert!(crate::support::client::num(&doc, &["connect_ms"]) > 0.0);

    let exit = client(&[&format!("127.0.0.1:{}", closed_port()), "--json"]);
    assert_eq!(exit.code(), Some(3));
    let doc = json_of(&exit);
    assert_eq!(doc["error_kind"], "refused");
}

/// Ctrl+C after the echo was verified, while the client waits for the
/// server to close (to catch extra bytes), keeps the verdict: the echo
/// matched, so the exit is 0 and the RTT is printed.
#[test]
fn ctrl_c_after_a_verified_echo_keeps_the_pass() {
    let open = FaultyServer::start(Fault::KeepOpen);
    let addr = open.addr();
    // "Sent" is printed once the echo is complete; the wait for the close
    // lasts up to 0.5 s after it.
    let (code, text) = client_interrupted_when(
        &[&addr, "hello"],
        |t| t.contains("Sent 5 bytes"),
        Duration::from_millis(100),
    );
    assert_eq!(code, Some(0), "{text}");
    assert!(text.contains("Received echo: hello"), "{text}");
    assert!(text.contains("RTT: "), "{text}");
}
