//! `echo-client completions SHELL` and `echo-server --completions SHELL`:
//! each binary prints its own completion script, which bash parses and
//! loads as a completion function; a missing or unknown shell is a usage
//! error naming the shells; a host called `completions` is still reached
//! the ways `--help` gives; the script goes out through the client's
//! output path, as every mode's output does.

use std::fs::OpenOptions;
use std::os::unix::process::ExitStatusExt;
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::support::client::{client, CLIENT};
use crate::support::{
    assert_no_panic, require_tool, run_cmd_to_exit, run_to_exit, wait_child_exit, Exit, BIN,
};

/// The shells, as both binaries name them.
const SHELLS: &str = "bash, elvish, fish, powershell, zsh";
const SIGPIPE: i32 = 13;

fn run(binary: &str, args: &[&str]) -> Exit {
    let mut cmd = Command::new(binary);
    cmd.args(args);
    run_cmd_to_exit(cmd, Duration::from_secs(30))
}

/// The script `binary args` prints, which must be its only output.
fn script(binary: &str, args: &[&str]) -> String {
    let exit = run(binary, args);
    assert_eq!(exit.code(), Some(0), "{args:?}: {}", exit.describe());
    assert!(exit.stderr.is_empty(), "{args:?}: {}", exit.describe());
    let text = exit.stdout.join("\n");
    assert!(text.len() > 1000, "{args:?}: {text}");
    text
}

/// `text` parses as bash, and sourced in a bash without start-up files it
/// registers a completion for `name` whose function it defines.
fn assert_bash_completes(test: &str, name: &str, text: &str) {
    if !require_tool(test, "bash") {
        return;
    }
    let path = std::env::temp_dir().join(format!(
        "echo-server-completions-{}-{name}.bash",
        std::process::id()
    ));
    std::fs::write(&path, text).unwrap();
    let mut parse = Command::new("bash");
    parse.arg("-n").arg(&path);
    let exit = run_cmd_to_exit(parse, Duration::from_secs(30));
    assert_eq!(exit.code(), Some(0), "bash -n: {}", exit.describe());

    let mut load = Command::new("bash");
    load.args([
        "--norc",
        "--noprofile",
        "-c",
        r#"source "$1" && complete -p "$2" && declare -F"#,
        "bash",
    ])
    .arg(&path)
    .arg(name);
    let exit = run_cmd_to_exit(load, Duration::from_secs(30));
    let _ = std::fs::remove_file(&path);
    assert_eq!(exit.code(), Some(0), "{name}: {}", exit.describe());
    let spec = &exit.stdout[0];
    assert!(
        spec.starts_with("complete ") && spec.ends_with(&format!(" {name}")),
        "{spec}"
    );
    let function = spec
        .split_whitespace()
        .skip_while(|word| *word != "-F")
        .nth(1)
        .unwrap_or_else(|| panic!("no -F function in {spec}"));
    assert!(
        exit.stdout
            .iter()
            .any(|line| *line == format!("declare -f {function}")),
        "{function} is not defined: {}",
        exit.describe()
    );
}

#[test]
fn bash_loads_both_binaries_completions() {
    let client_script = script(CLIENT, &["completions", "bash"]);
    assert_bash_completes(
        "bash_loads_both_binaries_completions",
        "echo-client",
        &client_script,
    );
    let server_script = script(BIN, &["--completions", "bash"]);
    assert_bash_completes(
        "bash_loads_both_binaries_completions",
        "echo-server",
        &server_script,
    );
}

/// Every shell's script names the binary and completes its modes and
/// options (checked as text: the shells need not be installed).
#[test]
fn every_shell_gets_a_script_for_the_binary() {
    for shell in SHELLS.split(", ") {
        let text = script(CLIENT, &["completions", shell]);
        for needle in [
            "echo-client",
            "ping",
            "bench",
            "probe",
            "completions",
            "json-stream",
        ] {
            assert!(text.contains(needle), "{shell} lacks {needle}");
        }
        let text = script(BIN, &["--completions", shell]);
        for needle in ["echo-server", "busy-poll", "completions"] {
            assert!(text.contains(needle), "{shell} lacks {needle}");
        }
    }
    // How each shell finds the script for the binary.
    assert!(script(CLIENT, &["completions", "zsh"]).starts_with("#compdef echo-client\n"));
    assert!(script(BIN, &["--completions", "zsh"]).starts_with("#compdef echo-server\n"));
    assert!(script(CLIENT, &["completions", "fish"]).contains("complete -c echo-client "));
    assert!(script(BIN, &["--completions", "fish"]).contains("complete -c echo-server "));
}

/// No shell, or one there is no script for: exit 2, the shells named,
/// nothing on stdout and nothing contacted.
#[test]
fn a_missing_or_unknown_shell_is_a_usage_error_naming_the_shells() {
    for (binary, args) in [
        (CLIENT, &["completions"][..]),
        (CLIENT, &["completions", "tcsh"]),
        (CLIENT, &["completions", "Bash"]),
        (BIN, &["--completions", "tcsh"]),
        (BIN, &["--completions"]),
    ] {
        let exit = run(binary, args);
        assert_eq!(exit.code(), Some(2), "{args:?}: {}", exit.describe());
        assert!(exit.stdout.is_empty(), "{args:?}: {}", exit.describe());
        assert!(
            exit.stderr.contains(SHELLS),
            "{args:?} does not name the shells: {}",
            exit.stderr
        );
    }
    let exit = run(CLIENT, &["completions"]);
    assert!(
        exit.stderr
            .contains("name the shell to write the completion script for"),
        "{}",
        exit.stderr
    );
    // A typo of the mode gets the suggestion, as other modes' do.
    let exit = client(&["completion", "bash"]);
    assert_eq!(exit.code(), Some(2), "{}", exit.describe());
    assert!(
        exit.stderr
            .contains("`completion` is not a mode: did you mean `completions`?"),
        "{}",
        exit.stderr
    );
}

/// A host called `completions` is reached as `--help` says: the mode named
/// first, or `--` before it. (Whether the name resolves here does not
/// matter: the client sets out to connect to it instead of printing a
/// script.)
#[test]
fn a_host_named_completions_is_still_reachable() {
    let help = client(&["--help"]).stdout.join("\n");
    assert!(
        help.contains("echo-client send ping:7878") && help.contains("echo-client -- pign"),
        "{help}"
    );
    for args in [&["send", "completions"][..], &["--", "completions"]] {
        let exit = client(args);
        assert_eq!(
            exit.stdout.first().map(String::as_str),
            Some("Connecting to completions:7878 ..."),
            "{args:?}: {}",
            exit.describe()
        );
        assert_ne!(exit.code(), Some(2), "{args:?}: {}", exit.describe());
    }
}

#[test]
fn help_lists_the_mode_and_the_flag_with_examples() {
    let main = client(&["--help"]);
    assert_eq!(main.code(), Some(0), "{}", main.describe());
    let main = main.stdout.join("\n");
    assert!(
        main.contains("  completions  Print the shell completion script for echo-client")
            && main.contains("  echo-client completions bash > /etc/bash_completion.d/echo-client"),
        "{main}"
    );
    let mode = client(&["completions", "--help"]);
    assert_eq!(mode.code(), Some(0), "{}", mode.describe());
    let mode = mode.stdout.join("\n");
    for needle in [
        "Usage: echo-client completions <SHELL>",
        "[possible values: bash, elvish, fish, powershell,",
        "echo-client completions zsh > ",
        "Exit codes:",
        &format!("  2    no SHELL, or not one of {SHELLS}"),
    ] {
        assert!(mode.contains(needle), "lacks {needle:?}:\n{mode}");
    }
    let server = run_to_exit(&["--help"], Duration::from_secs(10));
    let server = server.stdout.join("\n");
    assert!(server.contains("--completions <SHELL>"), "{server}");
}

/// The script goes through the client's output path: a reader that reads
/// ten bytes and leaves ends it by SIGPIPE or finds it done (never a
/// panic), a gone reader by SIGPIPE, a full disk is exit 7 with a message.
#[test]
fn the_script_goes_out_as_every_modes_output_does() {
    let first = script(CLIENT, &["completions", "bash"]);
    let mut head = Command::new("bash");
    head.args([
        "--norc",
        "-c",
        r#""$0" completions bash | head -c 10; s=("${PIPESTATUS[@]}"); printf '\nstatus=%s\n' "${s[0]}""#,
        CLIENT,
    ]);
    let exit = run_cmd_to_exit(head, Duration::from_secs(30));
    assert_no_panic(&exit.stderr);
    assert_eq!(exit.stdout[0], first[..10], "{}", exit.describe());
    assert!(
        ["status=0", "status=141"].contains(&exit.stdout[1].as_str()),
        "{}",
        exit.describe()
    );

    let (reader, writer) = rustix::pipe::pipe().unwrap();
    drop(reader);
    let mut child = Command::new(CLIENT)
        .args(["completions", "bash"])
        .stdin(Stdio::null())
        .stdout(Stdio::from(writer))
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (status, stderr) = wait_child_exit(&mut child, Duration::from_secs(30), "| gone");
    assert_no_panic(&stderr);
    assert_eq!(status.signal(), Some(SIGPIPE), "{status:?} {stderr}");

    let full = OpenOptions::new().write(true).open("/dev/full").unwrap();
    let mut child = Command::new(CLIENT)
        .args(["completions", "bash"])
        .stdin(Stdio::null())
        .stdout(full)
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (status, stderr) = wait_child_exit(&mut child, Duration::from_secs(30), ">/dev/full");
    assert_no_panic(&stderr);
    assert_eq!(status.code(), Some(7), "{stderr}");
    assert!(
        stderr.contains("echo-client: cannot write to standard output: No space left"),
        "{stderr}"
    );
}
