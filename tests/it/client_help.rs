//! `--help` of both binaries: examples and exit codes, wrapped; and a
//! first word that is a typo of a mode refused with a suggestion instead
//! of being looked up as a host.

use std::time::Duration;

use crate::support::client::client;
use crate::support::{run_to_exit, Server};

/// Width clap wraps to when stdout is not a terminal.
const WIDTH: usize = 100;

fn assert_help(what: &str, text: &str, needles: &[&str]) {
    for needle in ["Examples:", "Exit codes:"].iter().chain(needles) {
        assert!(text.contains(needle), "{what} lacks {needle:?}:\n{text}");
    }
    for line in text.lines() {
        assert!(
            line.chars().count() <= WIDTH,
            "{what}: line over {WIDTH} columns:\n{line}"
        );
    }
}

#[test]
fn server_help_has_examples_and_exit_codes_wrapped() {
    for flag in ["--help", "-h"] {
        let exit = run_to_exit(&[flag], Duration::from_secs(10));
        assert_eq!(exit.code(), Some(0), "{}", exit.describe());
        let text = exit.stdout.join("\n");
        // Its own summary, not Cargo's description.
        assert!(text.starts_with("TCP echo server for network"), "{text}");
        assert_help(
            flag,
            &text,
            &[
                "echo-server --port 0",
                "  1        could not start",
                "  2        bad command line",
                "128 + N",
                "ECHO_SERVER_",
            ],
        );
    }
}

#[test]
fn client_help_has_examples_and_exit_codes_wrapped() {
    for (mode, needles) in [
        (
            None,
            &[
                "echo-client bench 127.0.0.1:7878 --connections 50",
                "echo-client send ping:7878",
                "-- pign",
            ][..],
        ),
        (Some("send"), &["echo-client send '[::1]:7878' --file"]),
        (Some("ping"), &["--strict", "0 when any probe came back"]),
        (
            Some("bench"),
            &["--connections 4 --bulk", "--connections is also -c"],
        ),
        (
            Some("probe"),
            &["echo-client probe 127.0.0.1 7878,7000-7010"],
        ),
    ] {
        for flag in ["--help", "-h"] {
            let args: Vec<&str> = mode.into_iter().chain([flag]).collect();
            let exit = client(&args);
            assert_eq!(exit.code(), Some(0), "{}", exit.describe());
            let mut needles = needles.to_vec();
            needles.push("  3    connection refused");
            assert_help(&format!("{args:?}"), &exit.stdout.join("\n"), &needles);
        }
    }
}

/// `pign` is `ping` mistyped, not a host: exit 2 with the suggestion and
/// the way to reach a host of that name, and nothing is contacted.
#[test]
fn a_mistyped_mode_gets_a_suggestion() {
    let server = Server::start(&[]);
    let addr = server.addr().to_string();
    for (word, mode) in [("pign", "ping"), ("bnech", "bench"), ("prboe", "probe")] {
        let exit = client(&[word, &addr]);
        assert_eq!(exit.code(), Some(2), "{word}: {}", exit.describe());
        assert!(
            exit.stderr
                .contains(&format!("`{word}` is not a mode: did you mean `{mode}`?")),
            "{}",
            exit.stderr
        );
        assert!(
            exit.stderr.contains(&format!("echo-client send {word}")),
            "{}",
            exit.stderr
        );
    }
    assert_eq!(
        server.count(|l| l.contains("CONNECT")),
        0,
        "{}",
        server.dump()
    );
    // The mode named, the same command runs.
    let exit = client(&["ping", &addr, "-c", "1"]);
    assert_eq!(exit.code(), Some(0), "{}", exit.describe());
}
